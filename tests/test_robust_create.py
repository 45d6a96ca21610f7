"""test_robust_create.py: the shim's pthread_create starts each thread at a trampoline that learns
the thread's stack before the program's start routine runs, then jumps to it. The program must see
no difference: the start routine's caller is libc's thread start as without mapprof (no frame of
the shim's in between, in backtrace() or in mapprof's chains), its argument, errno, return value,
pthread_exit, cancellation, a failed pthread_create's error and errno, detached threads, C11
threads (which do not go through the wrapper), 16 KiB stacks. The slots that carry start routine
and argument to the new thread must not grow with the number of threads made (or failed), and
threads made from a library's constructor, before the shim's own constructor ran, are started
through it too."""
import os

import lib
import robust

MODES = {"libunwind": {}, "fp": {"MAPPROF_UNWIND": "fp"}, "sampled": {"MAPPROF_SAMPLE": "1"},
         "frees_off": {"MAPPROF_INUSE": "0"}}
# the program's functions from which the C runtime allocates at no site of the program:
# pthread_create with attributes (the new thread's DTV), pthread_attr_setaffinity_np (the
# attributes' extension), backtrace() and pthread_cancel or
# pthread_exit (libgcc_s loaded), thrd_create, pthread_join
VIA = ("spawn_attr", "attr_affinity", "warm", "cancel_it", "join_it", "c11_spawn", "fn_exit", "fn_cancel")


def prog():
    return robust.build("robust_create", flags=("-O2", "-fno-omit-frame-pointer"))


def no_shim_frames(d, binary, what):
    shim = os.path.realpath(lib.LIB)
    own = [c for c in d["chains"] for m, _ in c["frames"]
           if m != lib.MODULE_NONE and os.path.realpath(lib.module_of(d, m)) == shim]
    assert not own, "%s: chains through the shim's own frames: %s" % (
        what, [lib.describe(d, c, binary) for c in own][:3])


def semantics(mode):
    p = prog()
    native, _ = lib.run([p, "semantics"])
    assert native.returncode == 0, native.stderr
    want = lib.truth(native, "semantics")["checks"]
    # without mapprof: the start routine is called from libc (start_thread), and backtrace()
    # finds two frames of libc's above it (start_thread, clone3)
    assert want["start_caller_libc_offset"] > 0, want
    assert want["bt_above_start_0"] == want["start_caller_libc_offset"], want
    assert want["bt_above_start_1"] > 0 and want["bt_above_start_2"] == -2, want
    assert want["start_errno"] == 0 and want["start_arg"] == 1, want
    cp, dump = lib.run_profiled([p, "semantics"], env=MODES[mode], timeout=60)
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, mode)
    t = lib.truth(cp, "semantics")
    assert t["checks"] == want, "%s: the program saw %s, without mapprof %s" % (
        mode, t["checks"], want)
    d = lib.read_dump(dump)
    assert d["info"]["not_recorded"] == 0, d["info"]
    no_shim_frames(d, p, mode)
    # mapprof's chains of the start routine's allocations go from it straight into libc, at the
    # return addresses backtrace() found without mapprof
    syms = lib.Symbols(p)
    libc = [m["id"] for m in d["modules"] if os.path.basename(m["path"]) == "libc.so.6"]
    above = [(libc[0] if libc else -1, want["bt_above_start_0"]),
             (libc[0] if libc else -1, want["bt_above_start_1"])]
    plain = [c for c in d["chains"] if lib.frame_functions(d, c, syms)[:2] ==
             ["site_thread", "fn_plain"]]
    if mode != "sampled" or plain:
        assert len(plain) == 1, "%s: %d chains of fn_plain's allocation" % (mode, len(plain))
        got = [tuple(f) for f in plain[0]["frames"][2:]]
        assert got == above, "%s: above the start routine %s, without mapprof %s" % (
            mode, got, above)
    if mode == "sampled":
        return
    # at most one DTV per thread made: fewer when glibc reuses a cached stack
    robust.check_process(d, p, t, mode, threads=80, exact_threads=False, via=VIA + ("spawn",))


def test_create_semantics_libunwind():
    semantics("libunwind")


def test_create_semantics_fp():
    semantics("fp")


def test_create_semantics_sampled():
    semantics("sampled")


def test_create_semantics_frees_off():
    semantics("frees_off")


def churn(mode, n=10000):
    p = prog()
    cp, dump = lib.run_profiled([p, "churn", str(n)], env=MODES[mode], timeout=300)
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, mode)
    t = lib.truth(cp, "churn")
    # a slot left behind per thread would be 24 bytes: 33,000 of them some 800 KiB
    assert t["checks"]["vm_growth_kb"] <= 64, "%s: the mappings grew by %d KiB" % (
        mode, t["checks"]["vm_growth_kb"])
    d = lib.read_dump(dump)
    assert d["info"]["not_recorded"] == 0, d["info"]
    no_shim_frames(d, p, mode)
    robust.check_process(d, p, t, mode, threads=n + n // 10, exact_threads=False,
                         via=VIA)


def test_create_churn_libunwind():
    """10,000 threads made and joined, 10,000 failed calls, 10,000 detached threads."""
    churn("libunwind")


def test_create_churn_fp():
    churn("fp")


def test_create_from_library_constructor():
    """A library's constructor, which runs before the shim's, makes threads that ask libc's
    pthread_getattr_np about their stacks first thing (dlvsym, bypassing the shim's); before
    that its main thread does the same, the process's first allocation: the shim starts inside
    that call, and learns the main thread's stack without asking pthread_getattr_np."""
    lib_path = lib.build_prog("librobust_create.so", ["robust_create_lib.c"],
                              flags=["-O2", "-shared", "-fPIC"])
    p = robust.build("robust_create_ctor", sources=["robust_create.c"],
                     flags=("-O2", "-fno-omit-frame-pointer", "-DCTOR", "-rdynamic", "-Wl,--no-as-needed", lib_path,
                            "-Wl,-rpath," + os.path.dirname(lib_path)))
    native, _ = lib.run([p, "ctor"])
    assert native.returncode == 0, native.stderr
    want = lib.truth(native, "ctor")["checks"]
    assert want == {"ctor_main_inside": 1, "ctor_threads_inside": 4}, want
    for mode, env in MODES.items():
        cp, dump = lib.run_profiled([p, "ctor"], env=env, timeout=30)
        assert cp.returncode == 0, "%s: exit %d: %s" % (mode, cp.returncode, cp.stderr[-500:])
        robust.no_shim_lines(cp, mode)
        t = lib.truth(cp, "ctor")
        assert t["checks"] == want, "%s: %s, without mapprof %s" % (mode, t["checks"], want)
        d = lib.read_dump(dump)
        assert d["info"]["not_recorded"] == 0, d["info"]
        no_shim_frames(d, p, mode)
        if mode != "sampled":
            robust.check_process(d, p, t, mode, threads=4, exact_threads=False,
                                 via=("ask_own", "robust_create_ctor"))
