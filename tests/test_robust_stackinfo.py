"""test_robust_stackinfo.py: a program whose threads ask pthread_getattr_np about their stacks
before they allocate anything (as garbage collectors and language runtimes do) runs to its end
under every unwinding mode, is told the same stacks as without mapprof, and its dump holds exactly
what it counted. glibc's pthread_getattr_np allocates while it holds the thread's lock, and the
shim learns a thread's stack with the same call: asked again from inside, it waited forever.
The same with every ask made to the C library's pthread_getattr_np directly (dlvsym, dlsym on a
handle of libc), which bypasses the shim's own: the shim learns the stack of a thread made with
pthread_create (or C11's thrd_create) before the thread's start routine runs, and the main
thread's when it starts."""
import os

import lib
import robust

THREADS = 12
MODES = {"libunwind": {}, "fp": {"MAPPROF_UNWIND": "fp"}, "sampled": {"MAPPROF_SAMPLE": "1"},
         "frees_off": {"MAPPROF_INUSE": "0"}}


def prog():
    return robust.build("robust_stackinfo", flags=("-O2", "-fno-omit-frame-pointer"))


def run_mode(mode, bypass=None, thrd=False):
    p = prog()
    args = [p, "first", str(THREADS)] + ([bypass or "direct", "thrd"] if thrd else
                                         [bypass] if bypass else [])
    native, _ = lib.run(args)
    assert native.returncode == 0, native.stderr
    want = lib.truth(native, "first")["checks"]
    expect = {"main_inside": 1, "threads_inside": THREADS, "threads_sized": THREADS,
              "asked_other": THREADS // 2 * 2}
    if bypass:
        expect["bypass_in_libc"] = 1
    if thrd:  # thrd_create sets no stack size; every int result comes back through thrd_join
        expect["threads_sized"] = 0
        expect["c11_returned"] = THREADS + THREADS // 2 * 2
    assert want == expect, want
    cp, dump = lib.run_profiled(args, env=MODES[mode], timeout=30)
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, mode)
    t = lib.truth(cp, "first")
    assert t["checks"] == want, "%s: told %s, without mapprof %s" % (mode, t["checks"], want)
    d = lib.read_dump(dump)
    assert d["info"]["not_recorded"] == 0, d["info"]
    # the shim's wrapper of pthread_getattr_np is among the callers of the allocations inside
    # it: its frame is dropped, as the hooks' are
    shim = os.path.realpath(lib.LIB)
    own = [c for c in d["chains"] for m, _ in c["frames"]
           if m != lib.MODULE_NONE and os.path.realpath(lib.module_of(d, m)) == shim]
    assert not own, "%s: chains through the shim's own frames: %s" % (
        mode, [lib.describe(d, c, p) for c in own][:3])
    inside = [c for c in d["chains"] if "ask" in lib.frame_functions(d, c, lib.Symbols(p))]
    assert inside, "%s: no allocation inside pthread_getattr_np was recorded" % mode
    if mode == "sampled":
        return  # every byte sampled: exact per site, but the runtime's own may differ in size
    robust.check_process(d, p, t, mode, threads=THREADS // 2 * 2, exact_threads=False,
                         via=("ask", "spawn_sized", "resolve"))


def test_stackinfo_first_thing_libunwind():
    run_mode("libunwind")


def test_stackinfo_first_thing_fp():
    run_mode("fp")


def test_stackinfo_first_thing_sampled():
    run_mode("sampled")


def test_stackinfo_first_thing_frees_off():
    run_mode("frees_off")


# Every ask bypasses the shim's pthread_getattr_np: dlvsym(RTLD_NEXT, ..., "GLIBC_2.2.5") finds
# the C library's, not the shim's unversioned one; so does dlsym on a handle of libc. A thread
# whose first allocation was inside such a call hung before the shim wrapped pthread_create.


def test_stackinfo_first_thing_bypassing_the_wrapper_dlvsym_libunwind():
    run_mode("libunwind", bypass="dlvsym")


def test_stackinfo_first_thing_bypassing_the_wrapper_dlvsym_fp():
    run_mode("fp", bypass="dlvsym")


def test_stackinfo_first_thing_bypassing_the_wrapper_dlvsym_sampled():
    run_mode("sampled", bypass="dlvsym")


def test_stackinfo_first_thing_bypassing_the_wrapper_dlvsym_frees_off():
    run_mode("frees_off", bypass="dlvsym")


def test_stackinfo_first_thing_bypassing_the_wrapper_libc_libunwind():
    run_mode("libunwind", bypass="libc")


def test_stackinfo_first_thing_bypassing_the_wrapper_libc_fp():
    run_mode("fp", bypass="libc")


def test_stackinfo_first_thing_bypassing_the_wrapper_libc_sampled():
    run_mode("sampled", bypass="libc")


def test_stackinfo_first_thing_bypassing_the_wrapper_libc_frees_off():
    run_mode("frees_off", bypass="libc")


# The threads are made with C11's thrd_create, which reaches glibc's pthread_create from inside
# the C library, past the shim's pthread_create: the shim wraps thrd_create too. A thread whose
# first allocation was inside a bypassing call hung before it did; its int result must come back
# through the trampoline whole.


def test_stackinfo_first_thing_thrd_create_libunwind():
    run_mode("libunwind", thrd=True)


def test_stackinfo_first_thing_thrd_create_bypassing_the_wrapper_dlvsym_libunwind():
    run_mode("libunwind", bypass="dlvsym", thrd=True)


def test_stackinfo_first_thing_thrd_create_bypassing_the_wrapper_dlvsym_fp():
    run_mode("fp", bypass="dlvsym", thrd=True)


def test_stackinfo_first_thing_thrd_create_bypassing_the_wrapper_libc_frees_off():
    run_mode("frees_off", bypass="libc", thrd=True)
