"""test_shim_depth.py: MAPPROF_DEPTH. A stack deeper than the limit gives a chain of exactly the
limit's frames marked truncated; a stack of exactly the limit is not truncated; nothing is merged
silently (chains of different depths keep their own exact counts, and the truncated ones together
hold exactly what the deeper recursions allocated). Bad values: one stderr line, a sane value."""
import os
import subprocess

import lib


def recurse():
    return lib.build_prog("recurse", ["recurse.c"])


def depth_of(chain):
    """The recursion depth of a chain's allocations: the program asks 1000 + depth bytes."""
    sizes = {c["min"] for c in chain["classes"]} | {c["max"] for c in chain["classes"]}
    return sorted(s - 1000 for s in sizes)


def profile(specs, env=None, preload=None):
    prog = recurse()
    cp, dump = lib.run_profiled([prog] + ["%d:%d" % s for s in specs], env=env, preload=preload)
    assert cp.returncode == 0, cp.stderr
    return prog, cp, lib.truth(cp), lib.read_dump(dump)


def per_depth(truth, depths):
    c = truth["checks"]
    objs = sum(c["depth_%d_objects" % k] for k in depths)
    live = sum(c["depth_%d_live" % k] for k in depths)
    return {"alloc_objects": objs, "alloc_space": sum(c["depth_%d_objects" % k] * (1000 + k)
                                                      for k in depths),
            "inuse_objects": live, "inuse_space": sum(c["depth_%d_live" % k] * (1000 + k)
                                                      for k in depths)}


def test_depth_limit():
    # First, without a limit in the way, how many frames a recursion of depth k has: base + k.
    _, _, _, d = profile([(0, 1), (3, 1)])
    frames = {depth_of(c)[0]: len(c["frames"]) for c in d["chains"]}
    base = frames[0]
    assert frames[3] == base + 3 and not any(c["truncated"] for c in d["chains"]), frames
    limit = base + 10
    specs = [(8, 5), (9, 7), (10, 11), (11, 13), (12, 17), (40, 19)]
    prog, cp, truth, d = profile(specs, env={"MAPPROF_DEPTH": str(limit)})
    assert not lib.shim_lines(cp.stderr), cp.stderr
    assert d["info"]["max_depth"] == limit
    truncated = [c for c in d["chains"] if c["truncated"]]
    whole = [c for c in d["chains"] if not c["truncated"]]
    # Depths up to 10 fit (depth 10 exactly fills the limit): one exact chain each.
    for k in (8, 9, 10):
        cs = [c for c in whole if depth_of(c) == [k]]
        assert len(cs) == 1 and len(cs[0]["frames"]) == base + k, \
            "depth %d: %s" % (k, [(len(c["frames"]), depth_of(c)) for c in whole])
        got = {key: cs[0][key] for key in lib.COUNTS}
        assert got == per_depth(truth, [k]), "depth %d: dump %s, program %s" % (
            k, got, per_depth(truth, [k]))
    assert len(whole) == 3, [depth_of(c) for c in whole]
    # Deeper ones keep exactly `limit` innermost frames, marked truncated, and hold exactly what
    # the deeper recursions allocated, no more, no less.
    assert truncated, "no truncated chain for stacks deeper than %d frames" % limit
    for c in truncated:
        assert len(c["frames"]) == limit, len(c["frames"])
        assert set(depth_of(c)) <= {11, 12, 40}, depth_of(c)
    assert lib.tally(truncated) == per_depth(truth, [11, 12, 40])
    assert d["totals"] == lib.as_counts(truth["total"])


def test_depth_default_64():
    _, _, truth, d = profile([(2, 3), (100, 5)])
    assert d["info"]["max_depth"] == 64
    deep = [c for c in d["chains"] if 100 in depth_of(c)]
    assert len(deep) == 1 and deep[0]["truncated"] and len(deep[0]["frames"]) == 64
    assert d["totals"] == lib.as_counts(truth["total"])


def test_depth_one():
    prog, _, truth, d = profile([(0, 2), (5, 3)], env={"MAPPROF_DEPTH": "1"})
    syms = lib.Symbols(prog)
    for c in d["chains"]:
        assert len(c["frames"]) == 1 and c["truncated"]
        assert lib.frame_functions(d, c, syms)[0] == "site_leaf"
    assert d["totals"] == lib.as_counts(truth["total"])


def test_depth_bad_values():
    for value, want in (("abc", 64), ("0", 64), ("-5", 64), ("100000", 256)):
        _, cp, truth, d = profile([(1, 2)], env={"MAPPROF_DEPTH": value})
        lines = cp.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("mapprof: ") and \
            "MAPPROF_DEPTH" in lines[0], "MAPPROF_DEPTH=%s: stderr %r" % (value, cp.stderr)
        assert d["info"]["max_depth"] == want, "MAPPROF_DEPTH=%s: max_depth %d" % (
            value, d["info"]["max_depth"])
        assert d["totals"] == lib.as_counts(truth["total"])


def test_depth_limit_unoptimized_shim():
    """A shim built for debugging (make CFLAGS='-O0 -g' SHIM_OPT=) inlines nothing, so more of its
    own frames lie on the stack when it unwinds, the most on the sampling path: a stack deeper
    than the limit is still marked truncated and one that fits is not, sampling or not."""
    out = lib.tmpdir("mapprof-O0-")
    shim = os.path.join(out, "libmapprof.so")
    cp = subprocess.run(["make", "--no-print-directory", "-C", lib.ROOT, "BUILD=" + out,
                         "CFLAGS=-O0 -g", "SHIM_OPT=", shim], stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, timeout=900)
    assert cp.returncode == 0, cp.stdout.decode(errors="replace")[-3000:]
    for env in ({}, {"MAPPROF_SAMPLE": "1"}):
        _, _, _, d = profile([(0, 1)], env=env, preload=shim)
        base = len(d["chains"][0]["frames"])
        limit = base + 10
        _, cp, truth, d = profile([(10, 3), (11, 5), (40, 7)],
                                  env=dict(env, MAPPROF_DEPTH=str(limit)), preload=shim)
        assert not lib.shim_lines(cp.stderr), cp.stderr
        for c in d["chains"]:
            deep = set(depth_of(c)) <= {11, 40}
            assert (depth_of(c) == [10] or deep) and len(c["frames"]) == limit and \
                c["truncated"] == deep, "%s, limit %d: a chain of depths %s has %d frames%s" % (
                    env, limit, depth_of(c), len(c["frames"]),
                    ", truncated" if c["truncated"] else ", not truncated")
        assert d["totals"] == lib.as_counts(truth["total"])
