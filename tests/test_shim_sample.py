"""test_shim_sample.py: sampling mode (MAPPROF_SAMPLE, a Poisson process over allocated bytes).
On a large run the report's scaled estimates of alloc_objects and alloc_space per site must lie
within a stated error of the program's exact counts.

The error is stated from the sampling itself: a site of N allocations of s bytes gives
k ~ N (1 - exp(-s/P)) samples on average, and the relative standard error of the estimate is
about 1/sqrt(k). Each estimate must be within 4 standard errors plus 1% (the 1% covers the
size-class scaling of mixed sizes), and never worse than 10% for a site with more than 1,000
expected samples. Seeds come from the clock, so a run that fails by chance is a 4-sigma event."""
import json
import math

import lib

PERIOD = 512 * 1024


def sample_prog():
    return lib.build_prog("sample_sites", ["sample_sites.c"])


def expected_samples(site, rounds):
    r = 88172645463325252
    mask = (1 << 64) - 1
    k = 0.0
    if site == "site_small":
        return 8 * rounds * (1 - math.exp(-32 / PERIOD))
    if site == "site_large":
        return ((rounds + 7) // 8) * (1 - math.exp(-65536 / PERIOD))
    for _ in range(rounds):
        r ^= (r << 13) & mask
        r ^= r >> 7
        r ^= (r << 17) & mask
        k += 1 - math.exp(-(64 + r % 8129) / PERIOD)
    return k


def test_sampled_estimates_within_stated_error():
    rounds = 200000
    cp, dump = lib.run_profiled([sample_prog(), str(rounds)], env={"MAPPROF_SAMPLE": "512K"})
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
            k = expected_samples(site, rounds)
            bound = want * (4 / math.sqrt(k) + 0.01)
            if k > 1000:
                bound = min(bound, 0.10 * want)
            if abs(got - want) > bound:
                errors.append("%s %s: estimate %d, exact %d (allowed +-%d, %.0f samples expected)"
                              % (site, sample, got, want, bound, k))
    assert not errors, "\n  ".join(errors)
    # The dump is small: samples, not calls, are what it holds.
    exact = sum(t["objects"] for t in truth.values())
    assert d["totals"]["alloc_objects"] < exact / 20, (d["totals"], exact)
