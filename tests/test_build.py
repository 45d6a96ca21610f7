"""test_build.py: the shim and the report tool build clean (-Wall -Wextra -Werror) with both
gcc and clang, into a build directory of their own, and the sources keep clang-format's style."""
import subprocess

import lib


def build_with(cc):
    out = lib.tmpdir("mapprof-build-%s-" % cc)
    cp = subprocess.run(["make", "--no-print-directory", "-C", lib.ROOT, "CC=" + cc,
                         "BUILD=" + out, "all"], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=900)
    log = cp.stdout.decode(errors="replace")
    assert cp.returncode == 0, "%s build failed:\n%s" % (cc, log[-3000:])
    assert "warning:" not in log, "%s warns:\n%s" % (cc, log[-3000:])


def test_build_gcc_clean():
    build_with("gcc")


def test_build_clang_clean():
    build_with("clang")


def test_format_applied():
    cp = subprocess.run(["make", "--no-print-directory", "-C", lib.ROOT, "format-check"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert cp.returncode == 0, "clang-format would change:\n%s" % cp.stdout.decode()[-3000:]
