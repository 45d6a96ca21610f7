"""test_robust_settings.py: bad settings and bad places to write. A malformed or out-of-range
MAPPROF_ variable gives exactly one `mapprof:` line naming it, a sane default, and a program that
behaves as without mapprof (same output, same exit status, exact counts). A dump that cannot be
written (full file system, read-only file system, missing directory) gives one line naming the
path and the reason, leaves no temporary file, and the exit status stays the program's."""
import atexit
import os
import subprocess

import lib
import robust

DEFAULTS = {"max_depth": 64, "sample_period": 0, "unwinder": 0}


def run_simple(env, mode="return", status=0, out=None):
    prog = robust.build("robust_exit")
    cp, dump = lib.run_profiled([prog, mode], env=env, out=out)
    assert cp.returncode == status, "%s: exit %d, the program's own is %d: %s" % (
        env, cp.returncode, status, cp.stderr[-500:])
    return prog, cp, dump


def check_bad(var, value, expect=None):
    prog, cp, dump = run_simple({var: value})
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapprof: ") and var in lines[0], \
        "%s=%s: expected one mapprof line naming %s, got %r" % (var, value, var, cp.stderr)
    d = lib.read_dump(dump)
    robust.check_process(d, prog, lib.truth(cp, "return"), "%s=%s" % (var, value))
    want = dict(DEFAULTS, **(expect or {}))
    got = {k: d["info"][k] for k in want}
    assert got == want, "%s=%s: settings in effect %s, expected %s" % (var, value, got, want)


def test_bad_depth_text():
    check_bad("MAPPROF_DEPTH", "abc")


def test_bad_depth_zero():
    check_bad("MAPPROF_DEPTH", "0")


def test_bad_depth_negative():
    check_bad("MAPPROF_DEPTH", "-5")


def test_bad_depth_huge():
    """Above the maximum: the maximum, said once."""
    prog, cp, dump = run_simple({"MAPPROF_DEPTH": "99999999999"})
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and "MAPPROF_DEPTH" in lines[0], cp.stderr
    d = lib.read_dump(dump)
    assert 64 <= d["info"]["max_depth"] <= 4096, d["info"]["max_depth"]
    robust.check_process(d, prog, lib.truth(cp, "return"), "MAPPROF_DEPTH huge")


def test_bad_depth_overflow():
    prog, cp, dump = run_simple({"MAPPROF_DEPTH": "123456789012345678901234567890"})
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and "MAPPROF_DEPTH" in lines[0], cp.stderr
    assert lib.read_dump(dump)["info"]["max_depth"] in (64, 256)


def test_bad_sample():
    check_bad("MAPPROF_SAMPLE", "xyz")


def test_bad_unwind():
    check_bad("MAPPROF_UNWIND", "bogus")


def test_bad_signal_name():
    check_bad("MAPPROF_SIGNAL", "NOPE")


def test_bad_signal_uncatchable():
    check_bad("MAPPROF_SIGNAL", "KILL")


def test_bad_signal_number():
    check_bad("MAPPROF_SIGNAL", "9999")


def test_bad_interval():
    check_bad("MAPPROF_INTERVAL", "-1")


def test_bad_interval_text():
    check_bad("MAPPROF_INTERVAL", "soon")


def test_out_missing_directory_keeps_status():
    d = lib.tmpdir()
    path = os.path.join(d, "no", "such", "dir", "x.dump")
    _, cp, _ = run_simple({}, mode="exit", status=7, out=path)
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and path in lines[0] and "No such file" in lines[0], cp.stderr
    lib.truth(cp, "exit")
    assert os.listdir(d) == []


# ---- file systems that refuse the dump (root with mount permission only) ----

def mount_tmpfs(size_kib, ro=False):
    if os.geteuid() != 0:
        raise lib.Skip("mounting a small tmpfs needs root")
    d = lib.tmpdir()
    opts = "size=%dk" % size_kib + (",ro" if ro else "")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "mapprof-test", d],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise lib.Skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
    atexit.register(lambda: subprocess.run(["umount", "-l", d], capture_output=True))
    return d


def check_refused(d, reason, mode="_exit", status=8):
    path = os.path.join(d, "%p.dump")
    prog, cp, _ = run_simple({}, mode=mode, status=status, out=path)
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapprof: ") and d in lines[0], \
        "expected one mapprof line naming %s, got %r" % (d, cp.stderr)
    assert reason.lower() in lines[0].lower(), "the line does not say %r: %r" % (reason,
                                                                                 lines[0])
    lib.truth(cp, mode)
    return cp


def test_full_disk():
    d = mount_tmpfs(64)
    # Fill the file system to the last few blocks.
    fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError:
        pass
    os.close(fd)
    check_refused(d, "No space left on device", mode="exit", status=7)
    assert os.listdir(d) == ["filler"], os.listdir(d)


def test_read_only_file_system():
    d = mount_tmpfs(64, ro=True)
    check_refused(d, "Read-only file system")
    assert os.listdir(d) == []


def test_bad_signal_fault():
    """A signal raised by faults: refused, like the uncatchable ones. The program's crash stays a
    crash: a handler of mapprof's would return to the faulting instruction, which faults again,
    forever, each time writing a dump."""
    for name in ("SEGV", "SIGBUS", "FPE", "ILL", "TRAP", "SYS", "11"):
        check_bad("MAPPROF_SIGNAL", name)
    prog = robust.build("robust_exit")
    d = lib.tmpdir()
    cp, _ = lib.run_profiled([prog, "fault"], env={"MAPPROF_SIGNAL": "SEGV"},
                             out=os.path.join(d, "%p.dump"), timeout=30)
    assert cp.returncode == -11, "exit %d, the program's own is -11 (SIGSEGV): %s" % (
        cp.returncode, cp.stderr[-500:])
    assert len(os.listdir(d)) <= 1, "%d dumps" % len(os.listdir(d))


def test_bad_signal_reserved():
    """32 and 33 are the C library's own (sigaction refuses them): one line, not silence."""
    for value in ("32", "33"):
        check_bad("MAPPROF_SIGNAL", value)
