"""test_shim_live.py: the live-block map under churn (tests/progs/live_churn.c): a shared array
of blocks, each random step freeing a full slot or filling an empty one from one of three sites
(small, large, aligned to 64..4096 bytes), so the map grows, its buckets overflow and blocks are
deleted from overflowed ones, and with two or four threads one thread frees another's blocks
(a shard's owner loses it to the lock). The
blocks left at the end stay live: every site's alloc and inuse counts must be the program's,
exactly, in both unwinding modes."""
import lib


def check_churn(threads, rounds, slots, env=None):
    prog = lib.build_prog("live_churn", ["live_churn.c"])
    cp, dump = lib.run_profiled([prog, str(threads), str(rounds), str(slots)], env=env)
    assert cp.returncode == 0, "live_churn exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp, "churn")
    d = lib.read_dump(dump)
    lib.check_sites(d, prog, truth["sites"], "live_churn %d x %d" % (threads, rounds))
    live = truth["total"]["live_objects"]
    assert live == truth["checks"]["live"] and live > slots // 3, truth["total"]
    assert d["info"]["not_recorded"] == 0, d["info"]


def test_live_churn_one_thread():
    check_churn(1, 1500000, 300000)


def test_live_churn_two_threads_free_each_others():
    check_churn(2, 600000, 100000)


def test_live_churn_four_threads():
    """Threads that each own shards (no lock) until another thread needs one."""
    check_churn(4, 300000, 50000)


def test_live_churn_fp():
    check_churn(1, 600000, 100000, env={"MAPPROF_UNWIND": "fp"})
