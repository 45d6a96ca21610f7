"""test_shim_sample.py: sampling mode (MAPPROF_SAMPLE, a Poisson process over allocated bytes).
On a large run (one site grows its block with realloc) the report's scaled estimates of alloc_objects and alloc_space per site must lie
within a stated error of the program's exact counts, whether frees are tracked or not
(MAPPROF_INUSE=0).

The error is stated from the sampling itself. A request of s bytes is sampled with probability
p(s) = 1 - exp(-s/P), independently, and the report counts each sample as 1/p requests (and s/p
bytes), so the standard error of an estimate is sqrt(sum over requests of (1 - p)/p) for objects
and sqrt(sum of s^2 (1 - p)/p) for bytes; the test computes both from the program's own sequence
of requests. Each estimate must be within 4 standard errors plus 2% (the report sees each size
class's count, bytes, min and max, not every sampled size). Seeds come from the clock, so a run
that fails by chance is a 4-sigma event."""
import json
import math

import lib

PERIOD = 512 * 1024


def sample_prog():
    return lib.build_prog("sample_sites", ["sample_sites.c"])


def requests(site, rounds):
    """(size, how many) of every request the site makes, as sample_sites.c does."""
    if site == "site_small":
        return [(32, 8 * rounds)]
    if site == "site_large":
        return [(65536, (rounds + 7) // 8)]
    if site == "site_grow":
        return [(n, rounds) for n in (256, 512, 768, 1024)]
    r, mask, out = 88172645463325252, (1 << 64) - 1, {}
    for _ in range(rounds):
        r ^= (r << 13) & mask
        r ^= r >> 7
        r ^= (r << 17) & mask
        n = 64 + r % 8129
        out[n] = out.get(n, 0) + 1
    return sorted(out.items())


def standard_errors(site, rounds):
    var_o = var_b = 0.0
    for size, count in requests(site, rounds):
        p = -math.expm1(-size / PERIOD)
        var_o += count * (1 - p) / p
        var_b += count * size * size * (1 - p) / p
    return {"alloc_objects": math.sqrt(var_o), "alloc_space": math.sqrt(var_b)}


def check_estimates(env):
    """Runs sample_sites under ENV (sampling at 512K); returns the dump read by lib.py."""
    rounds = 200000
    cp, dump = lib.run_profiled([sample_prog(), str(rounds)],
                                env=dict(env, MAPPROF_SAMPLE="512K"))
    assert cp.returncode == 0, cp.stderr
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)["sites"]
    d = lib.read_dump(dump)
    assert d["info"]["sample_period"] == PERIOD, d["info"]
    errors = []
    for sample, key in (("alloc_objects", "objects"), ("alloc_space", "bytes")):
        top = json.loads(lib.mapprof("top", "--json", "--nodecount", "0", "--sample", sample,
                                     dump).stdout)
        rows = {r["name"]: r for r in top["rows"]}
        for site, t in sorted(truth.items()):
            want = t[key]
            got = rows.get(site, {}).get("flat", 0)
            se = standard_errors(site, rounds)[sample]
            bound = 4 * se + 0.02 * want
            if abs(got - want) > bound:
                errors.append("%s %s: estimate %d, exact %d (allowed +-%d: 4 x %.0f + 2%%)"
                              % (site, sample, got, want, bound, se))
    assert not errors, "\n  ".join(errors)
    # The dump is small: samples, not calls, are what it holds.
    exact = sum(t["objects"] for t in truth.values())
    assert d["totals"]["alloc_objects"] < exact / 20, (d["totals"], exact)
    return d


def test_sampled_estimates_within_stated_error():
    d = check_estimates({})
    assert d["info"]["flags"] & lib.INFO_FREES_TRACKED, d["info"]


def test_sampled_estimates_frees_not_tracked():
    """MAPPROF_INUSE=0 with sampling: the same estimates (no sampled block enters the live
    map, so the counting filter stays empty and every free is only forwarded)."""
    d = check_estimates({"MAPPROF_INUSE": "0"})
    assert not d["info"]["flags"] & lib.INFO_FREES_TRACKED, d["info"]
