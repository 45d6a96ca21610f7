"""test_robust_stackinfo.py: a program whose threads ask pthread_getattr_np about their stacks
before they allocate anything (as garbage collectors and language runtimes do) runs to its end
under every unwinding mode, is told the same stacks as without mapprof, and its dump holds exactly
what it counted. glibc's pthread_getattr_np allocates while it holds the thread's lock, and the
shim learns a thread's stack with the same call: asked again from inside, it waited forever."""
import os

import lib
import robust

THREADS = 12
MODES = {"libunwind": {}, "fp": {"MAPPROF_UNWIND": "fp"}, "sampled": {"MAPPROF_SAMPLE": "1"},
         "frees_off": {"MAPPROF_INUSE": "0"}}


def prog():
    return robust.build("robust_stackinfo", flags=("-O2", "-fno-omit-frame-pointer"))


def run_mode(mode):
    p = prog()
    native, _ = lib.run([p, "first", str(THREADS)])
    assert native.returncode == 0, native.stderr
    want = lib.truth(native, "first")["checks"]
    assert want == {"main_inside": 1, "threads_inside": THREADS, "threads_sized": THREADS,
                    "asked_other": THREADS // 2 * 2}, want
    cp, dump = lib.run_profiled([p, "first", str(THREADS)], env=MODES[mode], timeout=30)
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
                         via=("ask", "spawn_sized"))


def test_stackinfo_first_thing_libunwind():
    run_mode("libunwind")


def test_stackinfo_first_thing_fp():
    run_mode("fp")


def test_stackinfo_first_thing_sampled():
    run_mode("sampled")


def test_stackinfo_first_thing_frees_off():
    run_mode("frees_off")
