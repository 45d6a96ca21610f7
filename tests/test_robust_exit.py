"""test_robust_exit.py: every way a process ends. exit(), return from main, exit from a thread other
than main, the last thread ending after main's pthread_exit, atexit handlers and program
destructors that allocate (counted), _exit and _Exit (dump written), abort (dump written, still
killed by SIGABRT), quick_exit (dump via at_quick_exit, after the program's own handler); a fatal
signal writes no dump. In every case the exit status is the program's own and the dump, when
there is one, holds exactly the program's truth."""
import os
import signal

import lib
import robust

# mode -> (exit status, dump written, threads created)
MODES = {
    "return": (0, True, 0),
    "exit": (7, True, 0),
    "_exit": (8, True, 0),
    "_Exit": (9, True, 0),
    "abort": (-signal.SIGABRT, True, 0),
    "quick_exit": (10, True, 0),
    "thread_exit": (11, True, 1),
    "main_pthread_exit": (0, True, 1),
    "atexit": (12, True, 0),
    "segv": (-signal.SIGSEGV, False, 0),
}


def check_mode(mode):
    prog = robust.build("robust_exit")
    status, dumped, threads = MODES[mode]
    out = lib.tmpdir()
    cp, dump = lib.run_profiled([prog, mode], out=os.path.join(out, "%e.%p.dump"))
    assert cp.returncode == status, "%s: exit status %d, the program's own is %d; stderr %s" % (
        mode, cp.returncode, status, cp.stderr[-500:])
    robust.no_shim_lines(cp, mode)
    truth = lib.truth(cp, mode)
    robust.no_temp_files(out)
    if not dumped:
        assert robust.files(out) == [], "%s: a dump after a fatal signal: %s" % (
            mode, robust.files(out))
        return
    assert robust.files(out) == [os.path.basename(dump)], "%s: files %s" % (mode,
                                                                            robust.files(out))
    d = lib.read_dump(dump)
    # main_pthread_exit: pthread_exit dlopens libgcc_s (ld.so allocates for it).
    robust.check_process(d, prog, truth, mode, threads=threads, via=("end_main_thread",))
    assert d["info"]["sequence"] == 0


def test_exit_return():
    check_mode("return")


def test_exit_exit():
    check_mode("exit")


def test_exit_underscore_exit():
    check_mode("_exit")


def test_exit_underscore_Exit():
    check_mode("_Exit")


def test_exit_abort():
    check_mode("abort")


def test_exit_quick_exit():
    check_mode("quick_exit")


def test_exit_from_other_thread():
    check_mode("thread_exit")


def test_exit_last_thread_after_main_pthread_exit():
    check_mode("main_pthread_exit")


def test_exit_atexit_and_destructor_allocations_counted():
    check_mode("atexit")


def test_exit_fatal_signal_no_dump():
    check_mode("segv")


def test_exit_modes_same_status_without_profiler():
    """The statuses above are the program's own: the same without mapprof."""
    prog = robust.build("robust_exit")
    for mode, (status, _, _) in sorted(MODES.items()):
        cp, _ = lib.run([prog, mode])
        assert cp.returncode == status, "%s without mapprof: status %d, expected %d" % (
            mode, cp.returncode, status)
        lib.truth(cp, mode)


def test_exit_library_destructors_counted():
    """Libraries that allocate and free in their destructors, one linked and one dlopen'd and
    never closed: the loader runs those destructors after the shim's own, and the dump is
    written after all of them. Each library's constructor block is counted and freed (nothing
    in use at exit), and each destructor's allocation is counted. Before, the dump came from the
    shim's destructor: the destructors' allocations were missing and the constructors' blocks
    counted in use."""
    lib1 = lib.build_prog("librobust_dtor1.so", ["robust_dtor_lib.c"],
                          flags=["-O2", "-shared", "-fPIC", "-DTAG=1"])
    lib2 = lib.build_prog("librobust_dtor2.so", ["robust_dtor_lib.c"],
                          flags=["-O2", "-shared", "-fPIC", "-DTAG=2"])
    prog = lib.build_prog("robust_dtor", ["robust_dtor.c", lib1],
                          flags=["-O2", "-Wl,-rpath," + os.path.dirname(lib1)])
    for env in ({}, {"MAPPROF_UNWIND": "fp"}):
        cp, dump = lib.run_profiled([prog, lib2], env=env)
        assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-300:])
        prof = lib.profile_json([dump])
        got = {}
        for c in prof["chains"]:
            name = c["frames"][0]["function"] if c["frames"] else None
            if name and name[1:].startswith("tor_site_"):
                k = got.setdefault(name, [0, 0, 0, 0])
                for i, s in enumerate(("alloc_objects", "alloc_space", "inuse_objects",
                                       "inuse_space")):
                    k[i] += c[s]
        want = {"ctor_site_1": [1, 5000, 0, 0], "dtor_site_1": [1, 1002, 0, 0],
                "ctor_site_2": [1, 10000, 0, 0], "dtor_site_2": [1, 2004, 0, 0]}
        assert got == want, "%s: %s, want %s" % (env, got, want)


def check_race(mode, how, runs=12, count=2000):
    """The main thread ends the process (MODE) while 16 threads call exit or _exit (HOW) at the
    same moment: whichever end comes first, the status is the program's and the one dump is whole,
    with every block main allocated before."""
    prog = robust.build("robust_exit_race")
    syms = lib.Symbols(prog)
    for i in range(runs):
        out = lib.tmpdir()
        cp, dump = lib.run_profiled([prog, mode, how, str(count)],
                                    out=os.path.join(out, "%e.%p.dump"), timeout=60)
        what = "%s with threads calling %s, run %d" % (mode, how, i + 1)
        assert cp.returncode == 3, "%s: status %d: %s" % (what, cp.returncode, cp.stderr[-500:])
        robust.no_shim_lines(cp, what)
        robust.no_temp_files(out)
        assert robust.files(out) == [os.path.basename(dump)], "%s: files %s" % (
            what, robust.files(out))
        d = lib.read_dump(dump)
        kept = sum(c["alloc_objects"] for c in d["chains"]
                   if "keep" in lib.frame_functions(d, c, syms))
        assert kept == count, "%s: %d blocks of main's site in the dump, it allocated %d" % (
            what, kept, count)


def test_exit_race_exit_threads_exit():
    check_race("exit", "exit")


def test_exit_race_return_threads_exit():
    check_race("return", "exit")


def test_exit_race_quick_exit_threads_exit():
    check_race("quick_exit", "exit")


def test_exit_race_exit_threads_underscore_exit():
    check_race("exit", "_exit")
