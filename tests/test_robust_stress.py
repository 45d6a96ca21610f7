"""test_robust_stress.py: threads, forks and signals at once (tests/progs/robust_stress.c): after
the run every process (parent, children that end by exit or _exit, orphaned grandchildren) has a
dump holding exactly its truth, per site and in total; the parent's on-demand dumps taken in the
middle of it all are valid and cumulative. test_stress runs for a few seconds in the suite;
test_soak runs for MAPPROF_TEST_SOAK_SECONDS (make soak) and is skipped otherwise; test_stress_fp
runs a frame-pointer build under MAPPROF_UNWIND=fp, whose fast walk and per-thread tables then see
the same threads, forks and signals."""
import json
import os
import time

import lib
import robust

STRESS_SECONDS = 8


def check_run(seconds, exe="robust_stress", flags=("-O2",), env=None):
    prog = robust.build(exe, flags=flags, sources=["robust_stress.c"])
    out = lib.tmpdir()
    cp, dump = lib.run_profiled([prog, str(seconds), out], out=os.path.join(out, "%e.%p.dump"),
                                env=dict({"MAPPROF_SIGNAL": "USR2"}, **(env or {})),
                                timeout=seconds * 3 + 60)
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-800:])
    robust.no_shim_lines(cp, "robust_stress")
    # Orphaned grandchildren may still be finishing; their stdout is not ours to wait on.
    deadline = time.time() + 30
    truths = {}
    while True:
        truths = {}
        for f in os.listdir(out):
            if f.startswith("truth."):
                with open(os.path.join(out, f)) as fh:
                    text = fh.read()
                if text.endswith("\n"):
                    truths[f] = json.loads(text)
        want = {"%s.%d.dump" % (exe, t["pid"]) for t in truths.values()}
        if want <= set(os.listdir(out)) or time.time() > deadline:
            break
        time.sleep(0.2)
    parent = [t for t in truths.values() if t["role"] == "parent"]
    assert len(parent) == 1, "no parent truth: %s" % sorted(truths)
    parent = parent[0]
    assert parent["pid"] == cp.pid and parent["checks"]["children_failed"] == 0
    assert parent["sites"]["site_handler"]["objects"] > 0, "no signal handler allocated"
    roles = [t["role"] for t in truths.values()]
    assert roles.count("child") == parent["checks"]["children"] > 0, roles
    assert roles.count("grandchild") == (parent["checks"]["children"] + 2) // 3, roles
    robust.no_temp_files(out)
    for name, t in sorted(truths.items()):
        path = os.path.join(out, "%s.%d.dump" % (exe, t["pid"]))
        what = "%s %d" % (t["role"], t["pid"])
        assert os.path.exists(path), "%s wrote no dump" % what
        d = lib.read_dump(path)
        robust.check_process(d, prog, t, what, threads=t["checks"].get("threads", 0),
                             exact_threads=False)
        assert d["info"]["not_recorded"] == 0, what
        assert bool(d["info"]["flags"] & lib.INFO_FORKED) == (t["role"] != "parent"), what
    # The parent's on-demand dumps: valid, numbered 1..n, cumulative.
    seqs = sorted(int(f.rsplit(".", 1)[1]) for f in os.listdir(out)
                  if f.startswith("%s.%d.dump." % (exe, cp.pid)))
    assert seqs == list(range(1, len(seqs) + 1)) and seqs, "on-demand dumps %s" % seqs
    prev = None
    for n in seqs + [0]:
        d = lib.read_dump(dump + (".%d" % n if n else ""))
        assert d["info"]["sequence"] == n
        if prev:
            for k in ("alloc_objects", "alloc_space"):
                assert d["totals"][k] >= prev["totals"][k], "dump %d: %s went down" % (n, k)
        prev = d
    return truths


def test_stress():
    check_run(STRESS_SECONDS)


def test_stress_fp():
    check_run(STRESS_SECONDS, "robust_stress_fp", ("-O2", "-fno-omit-frame-pointer"),
              {"MAPPROF_UNWIND": "fp"})


def test_soak():
    seconds = os.environ.get("MAPPROF_TEST_SOAK_SECONDS")
    if not seconds:
        raise lib.Skip("the soak runs with make soak (MAPPROF_TEST_SOAK_SECONDS)")
    check_run(int(seconds))
