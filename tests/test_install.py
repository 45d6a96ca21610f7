"""test_install.py: `make install PREFIX=...` (and DESTDIR) puts the library, the command and the
dump format header where the README says, and the installed pair works: the installed library
profiles a program and the installed command reads its dump with the same totals as the dump
holds. `make uninstall` removes exactly what was installed."""
import os
import subprocess

import lib
import test_shim_api


def make(*args):
    cp = subprocess.run(["make", "--no-print-directory", "-C", lib.ROOT] + list(args),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert cp.returncode == 0, "make %s: %s" % (" ".join(args), cp.stdout.decode()[-1500:])


def installed_files(root):
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


# README.md beside docs/, as in the sources, so that its links work where it is installed.
DOCS = ["README.md", "docs/cli.md", "docs/dump-format.md", "docs/flame-uthash.svg"]


def test_install_prefix_and_uninstall():
    prefix = os.path.join(lib.tmpdir("mapprof-install-"), "usr")
    make("install", "PREFIX=" + prefix)
    docs = ["share/doc/mapprof/" + f for f in DOCS]
    assert installed_files(prefix) == ["bin/mapprof", "include/mapprof_dump.h",
                                       "lib/libmapprof.so"] + docs, installed_files(prefix)
    assert os.access(os.path.join(prefix, "bin/mapprof"), os.X_OK)
    # the installed command's --help names the installed docs
    helped = subprocess.run([os.path.join(prefix, "bin/mapprof"), "--help"],
                            stdout=subprocess.PIPE, universal_newlines=True)
    assert os.path.join(prefix, "share/doc/mapprof/docs/cli.md") in helped.stdout, helped.stdout[-300:]
    prog = lib.build_prog("threads", ["threads.c"])
    d = lib.tmpdir()
    dump = os.path.join(d, "inst.dump")
    env = dict(os.environ, LD_PRELOAD=os.path.join(prefix, "lib/libmapprof.so"),
               MAPPROF_OUT=dump)
    cp = subprocess.run([prog, "2", "1000"], env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, timeout=120, universal_newlines=True)
    assert cp.returncode == 0, cp.stderr
    truth = lib.truth(cp)
    dumped = lib.read_dump(dump)
    other = lib.check_sites(dumped, prog, truth["sites"], "installed library")
    extra = test_shim_api.runtime_chains(dumped, prog, other, nthreads=2)
    test_shim_api.check_totals(dumped, truth, extra, "installed library")
    out = subprocess.run([os.path.join(prefix, "bin/mapprof"), "top", "--json", dump],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert out.returncode == 0, out.stderr
    make("uninstall", "PREFIX=" + prefix)
    assert installed_files(prefix) == [], installed_files(prefix)


def test_install_destdir():
    dest = lib.tmpdir("mapprof-destdir-")
    make("install", "DESTDIR=" + dest, "PREFIX=/opt/mapprof")
    assert installed_files(dest) == ["opt/mapprof/bin/mapprof", "opt/mapprof/include/mapprof_dump.h",
                                     "opt/mapprof/lib/libmapprof.so"] + [
        "opt/mapprof/share/doc/mapprof/" + f for f in DOCS], installed_files(dest)
