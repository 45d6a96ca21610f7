"""test_robust_threads.py: threads that start, allocate and end before the dump keep their counts,
including what C++ thread_local destructors and pthread key destructors (which run after
mapprof's own thread-exit hook) allocate and free; and an exit dump taken while other threads are
still allocating is consistent and holds at least what was done before it and no more than what
was done in all."""
import os
import struct

import lib
import robust


def prog():
    return robust.build("robust_threads", lang="c++")


def test_threads_churn_with_tls_and_key_destructors():
    p = prog()
    cp, dump = lib.run_profiled([p, "churn", "30", "8"])
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, "churn")
    t = lib.truth(cp, "churn")
    n = t["checks"]["threads"]
    assert n == 240
    for s in ("site_tls_dtor", "site_key_dtor"):
        assert t["sites"][s]["objects"] == 2 * n, (s, t["sites"][s])
    d = lib.read_dump(dump)
    # glibc reuses cached thread stacks (and their DTV): at most one allocation per thread.
    robust.check_process(d, p, t, "churn", threads=n, exact_threads=False, pool_ok=True,
                         via=("short_thread",))
    # libc's record of each thread's thread_local destructor (__cxa_thread_atexit_impl): one
    # allocation per thread, freed when the thread ends; plus, once, the loading of libgcc_s by
    # the first pthread_exit (its unwinder), which stays.
    syms = lib.Symbols(p)
    exe = lib.main_module(d)["id"]
    reg = lib.tally([c for c in d["chains"] if c["frames"][0][0] != exe and
                     "short_thread" in lib.frame_functions(d, c, syms)])
    assert n <= reg["alloc_objects"] <= n + 2 and \
        reg["inuse_objects"] == reg["alloc_objects"] - n, lib.fmt_counts(reg)
    assert d["info"]["threads"] >= 9 and d["info"]["not_recorded"] == 0, d["info"]


def test_threads_churn_fp_unwinder():
    p = prog()
    cp, dump = lib.run_profiled([p, "churn", "10", "8"], env={"MAPPROF_UNWIND": "fp"})
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    t = lib.truth(cp, "churn")
    robust.check_process(lib.read_dump(dump), p, t, "churn fp", threads=80, exact_threads=False,
                         pool_ok=True, via=("short_thread",))


def test_threads_dump_while_others_allocate():
    p = prog()
    counter = os.path.join(lib.tmpdir(), "count")
    cp, dump = lib.run_profiled([p, "busy_exit", counter])
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, "busy_exit")
    t = lib.truth(cp, "busy")
    with open(counter, "rb") as f:
        final = struct.unpack("<Q", f.read(8))[0]
    d = lib.read_dump(dump)  # validates END totals against the chains
    got, other = lib.by_site(d, p)
    busy = got.get("site_busy", dict.fromkeys(lib.COUNTS, 0))["alloc_objects"]
    lo, hi = t["checks"]["before_dump"], final + t["checks"]["workers"]
    assert lo <= busy <= hi, "the dump counts %d allocations of the workers; they had made " \
        "%d before it and %d in all" % (busy, lo, final)
    assert set(got) <= {"site_busy"}, got
    robust.runtime_other(d, p, other, threads=t["checks"]["workers"], pool_ok=True,
                         what="busy_exit")
