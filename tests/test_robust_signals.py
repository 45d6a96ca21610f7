"""test_robust_signals.py: signals. Allocation from signal handlers never deadlocks; a handler that
interrupts ordinary code is counted exactly, one that interrupts the allocator (and so perhaps
mapprof's own bookkeeping) is forwarded and counted at most once. MAPPROF_SIGNAL (by name, with
or without SIG, or by number) writes numbered dumps on demand without disturbing the program;
MAPPROF_INTERVAL writes them on a timer; each holds exactly the program's cumulative truth at
the moment it was taken, counts never decrease from one to the next, and two of them diff."""
import json
import os
import signal

import lib
import robust

NSIGNALS = "20000"


def check_handlers(args, env=None):
    prog = robust.build("robust_signals")
    cp, dump = lib.run_profiled([prog, NSIGNALS] + args, env=env, timeout=60)
    what = "robust_signals %s %s" % (" ".join(args), env or "")
    assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, what)
    t = lib.truth(cp, "main")
    d = lib.read_dump(dump)
    assert t["checks"]["handled"] > 0 and t["sites"]["site_handler_in"]["objects"] > 0, \
        "%s: no handler interrupted an allocation: %s" % (what, t["checks"])
    # site_handler_in: counted or not, per call; everything else exactly.
    inside = t["sites"].pop("site_handler_in")
    got, other = lib.by_site(d, prog)
    got_in = got.pop("site_handler_in", dict.fromkeys(lib.COUNTS, 0))
    assert got_in["alloc_objects"] <= inside["objects"], \
        "%s: %d handler allocations inside malloc counted, %d made" % (
            what, got_in["alloc_objects"], inside["objects"])
    assert got_in["alloc_space"] == got_in["alloc_objects"] * 200
    assert got_in["inuse_objects"] == 0 and got_in["inuse_space"] == 0, \
        "%s: handler blocks freed at once are live in the dump: %s" % (what, got_in)
    for name, want in t["sites"].items():
        g = got.get(name, dict.fromkeys(lib.COUNTS, 0))
        assert g == lib.as_counts(want), "%s: %s: dump %s, program %s" % (
            what, name, lib.fmt_counts(g), lib.fmt_counts(lib.as_counts(want)))
    extra = robust.runtime_other(d, prog, other, threads=1, what=what)
    total = {k: v - lib.as_counts(inside)[k] for k, v in lib.as_counts(t["total"]).items()}
    want = lib.add_counts(lib.add_counts(total, extra), got_in)
    assert d["totals"] == want, "%s totals: dump %s, want %s" % (
        what, lib.fmt_counts(d["totals"]), lib.fmt_counts(want))


def test_signal_handlers_allocate():
    check_handlers([])


def test_signal_handlers_allocate_fp_altstack():
    """The same on an alternate signal stack with the frame-pointer unwinder (which cannot walk
    a stack it does not know and must fall back)."""
    check_handlers(["--altstack"], env={"MAPPROF_UNWIND": "fp"})


# ---- dumps on demand ----

def on_demand(mode, env, args=()):
    prog = robust.build("robust_ondemand")
    out = lib.tmpdir()
    cp, final = lib.run_profiled([prog, mode, out] + list(args), env=env,
                                 out=os.path.join(out, "%p.dump"), timeout=60)
    what = "robust_ondemand %s %s" % (mode, env)
    assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, what)
    robust.no_temp_files(out)
    seqs = sorted(int(f.rsplit(".", 1)[1]) for f in os.listdir(out)
                  if f.startswith("%d.dump." % cp.pid))
    assert seqs and seqs == list(range(1, len(seqs) + 1)), \
        "%s: dump sequence numbers %s" % (what, seqs)
    assert sorted(os.listdir(out)) == sorted(["%d.dump" % cp.pid] +
                                             ["%d.dump.%d" % (cp.pid, n) for n in seqs])
    dumps = {n: lib.read_dump("%s.%d" % (final, n)) for n in seqs}
    dumps[0] = lib.read_dump(final)
    truths = {t["checks"]["seq"]: t for t in lib.json_lines(cp.stdout)}
    threads = 1 if mode == "signal" else 0
    for n, t in sorted(truths.items()):
        d = dumps[n]
        assert d["info"]["sequence"] == n, "%s: dump .%d says sequence %d" % (
            what, n, d["info"]["sequence"])
        robust.check_process(d, prog, t, "%s: dump %d" % (what, n),
                             threads=threads if n in (0, 2) else 0)
    # Cumulative: per chain, allocations never decrease from one dump to the next.
    order = seqs + [0]
    for a, b in zip(order, order[1:]):
        da, db = dumps[a], dumps[b]
        assert da["info"]["end_ns"] <= db["info"]["end_ns"]
        assert da["info"]["start_ns"] == db["info"]["start_ns"]
        ca = {tuple(c["frames"]): c for c in da["chains"]}
        cb = {tuple(c["frames"]): c for c in db["chains"]}
        for k, c in ca.items():
            assert k in cb and cb[k]["alloc_objects"] >= c["alloc_objects"] and \
                cb[k]["alloc_space"] >= c["alloc_space"], \
                "%s: a chain's counts decrease from dump %d to %d" % (what, a, b)
    return prog, final, dumps, truths


def check_signal(value):
    prog, final, dumps, truths = on_demand("signal", {"MAPPROF_SIGNAL": value},
                                           [str(int(signal.SIGUSR2))])
    assert sorted(truths) == [0, 1, 2], sorted(truths)
    assert sorted(dumps) == [0, 1, 2], "dumps %s for two signals" % sorted(dumps)


def test_signal_dump_by_name():
    check_signal("USR2")


def test_signal_dump_by_sig_name():
    check_signal("SIGUSR2")


def test_signal_dump_by_number():
    check_signal(str(int(signal.SIGUSR2)))


def test_interval_dumps_and_diff():
    prog, final, dumps, truths = on_demand("interval", {"MAPPROF_INTERVAL": "1"})
    assert len(truths) == 3, sorted(truths)
    a, b = sorted(n for n in truths if n)
    cp = lib.mapprof("diff", "--json", "--sample", "alloc_objects",
                     "%s.%d" % (final, a), "%s.%d" % (final, b))
    j = json.loads(cp.stdout)
    assert j["base_total"] == dumps[a]["totals"]["alloc_objects"], j
    assert j["new_total"] == dumps[b]["totals"]["alloc_objects"], j
    grew = truths[b]["sites"]["site_phase2"]["objects"] - truths[a]["sites"]["site_phase2"][
        "objects"]
    assert grew > 0 and j["new_total"] - j["base_total"] == grew, (grew, j)
    fn = {f["name"]: f for f in j["functions"]}
    assert "site_phase2" in fn and fn["site_phase2"]["new_flat"] - \
        fn["site_phase2"]["base_flat"] == grew, j["functions"]
