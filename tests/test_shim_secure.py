"""test_shim_secure.py: secure-execution mode (AT_SECURE, e.g. a setuid program). The shim must
ignore every MAPPROF_ variable and write nothing, and the program must run as usual.

In secure mode glibc's ld.so ignores LD_PRELOAD entries with a slash and loads a bare name only
from a system library directory, and only if the file has its set-user-ID bit. So the test
installs a copy of libmapprof.so under a unique name, mode 4755, in the system library directory
for the duration of the test (removed afterwards, whatever happens), and runs a setuid-nobody copy
of a probe program as root: real uid 0, effective uid nobody, AT_SECURE=1. A control run of a
plain copy with the same preload proves that the library is loaded and would have written a dump.
Needs root; skips otherwise."""
import os
import shutil

import lib

SYSLIB = "/usr/lib/x86_64-linux-gnu"


def run_probe(binary, libname, cwd):
    env = {"LD_PRELOAD": libname, "MAPPROF_OUT": os.path.join(cwd, "secure-%p.dump"),
           "MAPPROF_DEPTH": "abc"}
    cp, _ = lib.run([binary], env=env, cwd=cwd)
    assert cp.returncode == 0, "%s exited %d: %s" % (binary, cp.returncode, cp.stderr[-500:])
    return cp, lib.truth(cp)


def test_secure_mode_writes_nothing():
    if os.geteuid() != 0:
        raise lib.Skip("needs root (a setuid copy of a program, a library in %s)" % SYSLIB)
    if not os.path.isdir(SYSLIB):
        raise lib.Skip("no %s" % SYSLIB)
    lib.need_lib()
    probe = lib.build_prog("secure_probe", ["secure_probe.c"])
    d = lib.tmpdir()
    os.chmod(d, 0o777)  # so that nobody could write a dump here, were the shim to try
    plain = os.path.join(d, "probe_plain")
    setuid = os.path.join(d, "probe_setuid")
    shutil.copy(probe, plain)
    shutil.copy(probe, setuid)
    os.chown(setuid, 65534, 65534)
    os.chmod(setuid, 0o4755)
    libname = "libmapprof-securetest-%d.so" % os.getpid()
    installed = os.path.join(SYSLIB, libname)
    try:
        shutil.copy(lib.LIB, installed)
        os.chmod(installed, 0o4755)

        # Control: not secure, the library loaded by bare name writes its dump and complains
        # about the bad MAPPROF_DEPTH.
        cp, t = run_probe(plain, libname, d)
        assert t["checks"]["at_secure"] == 0 and t["checks"]["mapprof_mapped"] == 1, t
        dumps = [f for f in os.listdir(d) if f.endswith(".dump")]
        assert dumps == ["secure-%d.dump" % t["pid"]], dumps
        assert len(lib.shim_lines(cp.stderr)) == 1, cp.stderr
        os.unlink(os.path.join(d, dumps[0]))

        cp, t = run_probe(setuid, libname, d)
        c = t["checks"]
        if c["euid"] != 65534 or c["at_secure"] != 1:
            raise lib.Skip("the setuid copy did not run in secure mode here (%s): a nosuid "
                           "mount or no_new_privs?" % c)
        if c["mapprof_mapped"] != 1:
            raise lib.Skip("ld.so did not preload %s in secure mode" % installed)
    finally:
        if os.path.exists(installed):
            os.unlink(installed)
    assert t["total"]["objects"] == 100, t
    assert not cp.stderr, "stderr in secure mode: %r" % cp.stderr
    left = sorted(set(os.listdir(d)) - {"probe_plain", "probe_setuid"})
    assert not left, "the shim wrote %s in secure mode" % left
