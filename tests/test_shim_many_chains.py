"""test_shim_many_chains.py: 12,000 distinct chains through 320 distinct return addresses, six
size classes each, made on two threads at once: every table the shim keeps has to grow while it
counts (the per-thread counters past the size where a thread's table is flushed into the global
one, the table of distinct frames, the list of chains, the arena). Every chain is there once, with
exactly the allocations the program made through it, in both unwinding modes."""
import lib
import test_shim_api

THREADS = 2
CHAINS = 12000


def check(env=None, flags=("-O2",), name="many_chains"):
    prog = lib.build_prog(name, ["many_chains.c"], flags=flags)
    cp, dump = lib.run_profiled([prog, str(THREADS), str(CHAINS)], env=env)
    assert cp.returncode == 0, "many_chains exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)
    d = lib.read_dump(dump)
    assert d["info"]["not_recorded"] == 0, d["info"]
    other = lib.check_sites(d, prog, truth["sites"], "many_chains")
    extra = test_shim_api.runtime_chains(d, prog, other, nthreads=THREADS)
    test_shim_api.check_totals(d, truth, extra, "many_chains")
    # One chain per path through the stages, each with the program's count and six classes.
    syms = lib.Symbols(prog)
    paths = {}
    for c in d["chains"]:
        names = [n for n in lib.frame_functions(d, c, syms) if n]
        if not names or names[0] != "site_leaf":
            continue
        path = tuple(n for n in names if n.startswith("stage_"))
        assert len(path) == 3, "a chain through %s" % names
        assert path not in paths, "two chains through %s" % (path,)
        paths[path] = c
        want = truth["checks"]["allocs_per_chain"]
        assert c["alloc_objects"] == want and len(c["classes"]) == 6, \
            "%s: %d allocations in %d classes; the program made %d in 6" % (
                path, c["alloc_objects"], len(c["classes"]), want)
        assert c["inuse_objects"] == want // 2, (path, c["inuse_objects"])
    assert len(paths) == truth["checks"]["chains"] == CHAINS, len(paths)
    return d


def test_many_chains():
    check()


def test_many_chains_fp_unwinder():
    d = check(env={"MAPPROF_UNWIND": "fp"}, flags=("-O2", "-fno-omit-frame-pointer"),
              name="many_chains_fp")
    assert d["info"]["unwinder"] == 1
