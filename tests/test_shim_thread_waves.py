"""test_shim_thread_waves.py: short-lived threads, one at a time and many alive at once (more than
the shim lists of libunwind's per-thread frame tables, which it keeps for the threads to come when
one ends), each walked first at its first allocation: every allocation of every thread is counted
exactly, and all the threads' allocations at one call site share one chain (the same frames, from
the site down through libc's thread start), in both unwinding modes."""
import lib

WAVES = "1:40,8:8,300:1,2:20"
PER_SITE = 5


def check_waves(env=None):
    prog = lib.build_prog("thread_waves", ["thread_waves.c"])
    cp, dump = lib.run_profiled([prog, WAVES, str(PER_SITE)], env=env)
    assert cp.returncode == 0, "thread_waves exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)
    threads = truth["checks"]["threads"]
    assert threads == 40 + 64 + 300 + 40, truth["checks"]
    for s in ("site_wave_malloc", "site_wave_calloc"):
        assert truth["sites"][s]["objects"] == threads * PER_SITE, truth["sites"][s]
    d = lib.read_dump(dump)
    other = lib.check_sites(d, prog, truth["sites"], "thread_waves")
    syms = lib.Symbols(prog)
    exe = lib.main_module(d)["id"]
    for site, path in (("site_wave_malloc", "path_malloc"), ("site_wave_calloc", "path_calloc")):
        chains = [c for c in d["chains"] if site in lib.frame_functions(d, c, syms)]
        assert len(chains) == 1, "%s: %d chains, one expected:\n  %s" % (
            site, len(chains), "\n  ".join(lib.describe(d, c, prog) for c in chains))
        c = chains[0]
        names = lib.frame_functions(d, c, syms)
        assert names[:3] == [site, path, "work"], lib.describe(d, c, prog)
        # below work: libc's thread start (start_thread, clone3), nothing of the executable
        assert not c["truncated"], lib.describe(d, c, prog)
        tail = c["frames"][3:]
        assert 1 <= len(tail) <= 3 and all(m != exe for m, _ in tail), lib.describe(d, c, prog)
    # pthread_create's allocations (the thread's DTV; glibc reuses a cached stack's): in spawn()
    for c in other:
        assert "spawn" in lib.frame_functions(d, c, syms), lib.describe(d, c, prog)
    spawned = lib.tally(other)["alloc_objects"]
    assert 1 <= spawned <= threads, spawned
    assert d["info"]["not_recorded"] == 0, d["info"]


def test_thread_waves():
    check_waves()


def test_thread_waves_fp():
    check_waves({"MAPPROF_UNWIND": "fp"})
