"""test_robust_fds.py: the shim takes no file descriptor from the program. A daemon closes every
descriptor above 2 and opens its own files again; it must get the same numbers as without mapprof,
and nothing it reads or writes through them may change: libunwind's check of the memory it reads
used a pipe kept by number (it read a byte from the program's file and wrote one into another),
and dumps on demand and on a timer woke their thread through a pipe of their own. Each run is
compared with a run of the same program without mapprof, in every unwinding mode."""
import json
import os
import signal

import lib
import robust


def prog():
    return robust.build("robust_fds", flags=["-O2", "-fno-omit-frame-pointer"])


def result(env=None, preload=True, args=()):
    work = lib.tmpdir()
    argv = [prog(), work] + [str(a) for a in args]
    if preload:
        cp, dump = lib.run_profiled(argv, env=env)
    else:
        cp, _ = lib.run(argv, env=env)
        dump = None
    what = "%s %s" % (" ".join("%s=%s" % kv for kv in (env or {}).items()), " ".join(
        str(a) for a in args))
    assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-600:])
    lines = lib.json_lines(cp.stdout)
    assert len(lines) == 1, (what, cp.stdout)
    return lines[0], dump, what


def check(env, args=(), native_args=None):
    native, _, _ = result(preload=False, args=args if native_args is None else native_args)
    assert native["fds"] == [3, 4, 5, 6] and native["copy_ok"] and native["pipe_ok"], native
    got, dump, what = result(env=env, args=args)
    assert got == native, "%s: %s, without mapprof %s" % (what, json.dumps(got),
                                                         json.dumps(native))
    return dump


def test_fds_libunwind():
    dump = check({})
    assert lib.read_dump(dump)["end"]["nchains"] > 0


def test_fds_fp():
    check({"MAPPROF_UNWIND": "fp"})


def test_fds_sampled():
    check({"MAPPROF_SAMPLE": "1"})


def test_fds_dump_signal():
    # Without mapprof nothing handles the signal: that run raises none.
    dump = check({"MAPPROF_SIGNAL": "USR2"}, args=(int(signal.SIGUSR2), 300), native_args=(0, 300))
    assert os.path.exists(dump + ".1"), "no dump on demand next to %s" % dump


def test_fds_interval():
    check({"MAPPROF_INTERVAL": "1"}, args=(0, 1300))


def test_fds_stderr_taken_by_the_program():
    """A program that closes its standard error and opens a file of its own, which gets
    descriptor 2: mapprof's lines (a dump it cannot create, a dump name that is taken) do not go
    into that file, which holds the program's record alone. They went there before."""
    prog = robust.build("robust_stderr", flags=["-O2"])
    d = lib.tmpdir()
    own = os.path.join(d, "own.log")
    # the default dump name, in a directory the process cannot write (it moved to /proc)
    cp, _ = lib.run([prog, own, "/proc"], preload=[lib.LIB])
    assert cp.returncode == 0, cp.returncode
    with open(own) as f:
        assert f.read() == "record\n", "the program's file: %r" % open(own).read()
    # a taken MAPPROF_OUT: the dump goes beside it, and the line that says so is left out
    taken = os.path.join(d, "taken.dump")
    open(taken, "w").close()
    cp, pid = lib.run([prog, own], preload=[lib.LIB], env={"MAPPROF_OUT": taken})
    assert cp.returncode == 0, cp.returncode
    with open(own) as f:
        assert f.read() == "record\n", "the program's file: %r" % open(own).read()
    lib.read_dump("%s.%d" % (taken, pid))
