"""test_shim_threads.py: 8 threads x 200,000 allocations at once (malloc, calloc, realloc, mixed
sizes, about half freed, some by another thread): the dump's per-site and total counts equal the
program's own, exactly; the only other allocations are pthread_create's, one per thread."""
import lib
import test_shim_api


def check_threads(nthreads, allocs, env=None):
    prog = lib.build_prog("threads", ["threads.c"])
    cp, dump = lib.run_profiled([prog, str(nthreads), str(allocs)], env=env)
    assert cp.returncode == 0, "threads exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)
    d = lib.read_dump(dump)
    other = lib.check_sites(d, prog, truth["sites"], "threads %d x %d" % (nthreads, allocs))
    extra = test_shim_api.runtime_chains(d, prog, other, nthreads=nthreads)
    test_shim_api.check_totals(d, truth, extra, "threads")
    per_thread = sum(truth["sites"][s]["objects"] for s in
                     ("site_thread_malloc", "site_thread_calloc", "site_thread_realloc"))
    assert per_thread == nthreads * allocs, per_thread
    assert d["info"]["threads"] == nthreads + 1, \
        "INFO says %d threads allocated; main and %d workers did" % (d["info"]["threads"],
                                                                     nthreads)
    assert d["info"]["not_recorded"] == 0
    return d


def test_threads_8x200000():
    check_threads(8, 200000)


def test_threads_many_short():
    """Many threads that start, allocate a little and end before the dump keep their counts."""
    check_threads(64, 2000)


def test_threads_fp_unwinder():
    """The same exact counts with the frame-pointer unwinder."""
    d = check_threads(8, 50000, env={"MAPPROF_UNWIND": "fp"})
    assert d["info"]["unwinder"] == 1
