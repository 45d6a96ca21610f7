"""test_shim_inuse.py: MAPPROF_INUSE=0, frees not tracked. The allocations are still counted
exactly, per site (tests/progs/live_churn.c, whose threads free each other's blocks, and
alloc_api.c, the whole C API with realloc); the dump has no inuse values and says so, and the
report leaves them out: its totals, its JSON and pprof exports (two sample types), and an inuse
sample asked of such a dump, or of a merge with one, is refused with a message naming the dump.
C++ operator delete (tests/progs/cxx_api.cc) is counted the same way."""
import gzip
import os

import lib


def churn(threads, env, said=()):
    """Runs live_churn; the shim says exactly the lines SAID (by their text)."""
    prog = lib.build_prog("live_churn", ["live_churn.c"])
    cp, dump = lib.run_profiled([prog, str(threads), "200000", "50000"], env=env)
    assert cp.returncode == 0, "live_churn exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    lines = lib.shim_lines(cp.stderr)
    assert len(lines) == len(said) and all(w in l for w, l in zip(said, lines)), cp.stderr
    return prog, lib.truth(cp, "churn"), dump


def allocated_only(sites):
    """The program's truth with nothing live: what a dump without frees must hold."""
    return {k: dict(t, live_objects=0, live_bytes=0) for k, t in sites.items()}


def check_no_inuse(threads, unwind):
    prog, truth, dump = churn(threads, {"MAPPROF_INUSE": "0", "MAPPROF_UNWIND": unwind})
    d = lib.read_dump(dump)
    assert d["info"]["flags"] & lib.INFO_FREES_TRACKED == 0, d["info"]
    lib.check_sites(d, prog, allocated_only(truth["sites"]), "live_churn, MAPPROF_INUSE=0")
    # the program did leave blocks live: a dump that tracked frees would show them
    assert truth["total"]["live_objects"] > 1000, truth["total"]
    assert d["info"]["not_recorded"] == 0, d["info"]
    return dump


def test_inuse_off_counts_allocations():
    check_no_inuse(1, "libunwind")


def test_inuse_off_threads_fp():
    """Two threads freeing each other's blocks, frame-pointer walks."""
    check_no_inuse(2, "fp")


def test_inuse_off_whole_api():
    """realloc, reallocarray, calloc, the aligned calls: every site's allocations exactly."""
    prog = lib.build_prog("alloc_api", ["alloc_api.c"], flags=["-O2"])
    cp, dump = lib.run_profiled([prog, "1000"], env={"MAPPROF_INUSE": "0"})
    assert cp.returncode == 0, cp.stderr[-500:]
    assert not lib.shim_lines(cp.stderr), cp.stderr
    d = lib.read_dump(dump)
    other = lib.check_sites(d, prog, allocated_only(lib.truth(cp)["sites"]), "alloc_api")
    assert not other


def test_inuse_off_cxx():
    """new, new[], aligned and nothrow forms, and their deletes: every site's allocations
    exactly, the C++ runtime's own as test_shim_api accounts for them."""
    from test_shim_api import cxx_api, runtime_chains

    prog = cxx_api()
    cp, dump = lib.run_profiled([prog, "600"], env={"MAPPROF_INUSE": "0"})
    assert cp.returncode == 0, cp.stderr[-500:]
    assert not lib.shim_lines(cp.stderr), cp.stderr
    d = lib.read_dump(dump)
    truth = lib.truth(cp)
    other = lib.check_sites(d, prog, allocated_only(truth["sites"]), "cxx_api")
    extra = runtime_chains(d, prog, other)
    assert d["totals"]["alloc_objects"] == truth["total"]["objects"] + extra["alloc_objects"]
    assert d["totals"]["inuse_objects"] == 0, d["totals"]


def test_inuse_off_in_the_report():
    from test_report_exports import fields

    _, _, off = churn(1, {"MAPPROF_INUSE": "0"})
    _, _, on = churn(1, {"MAPPROF_INUSE": "1"})
    top = lib.mapprof("top", off).stdout
    assert "(frees not tracked: no inuse values)" in top and "inuse_" not in top, top
    assert "inuse_objects" in lib.mapprof("top", on).stdout
    prof = lib.profile_json([off])
    assert prof["sample_types"] == ["alloc_objects", "alloc_space"], prof["sample_types"]
    assert set(prof["totals"]) == set(prof["sample_types"]) and prof["totals"]["alloc_objects"]
    assert all("inuse_objects" not in c for c in prof["chains"])
    assert not prof["dumps"][0]["frees_tracked"]
    # an inuse sample of such a dump, alone, merged, or diffed, is refused with its name
    merged = os.path.join(lib.tmpdir(), "merged.mprof")
    lib.mapprof("merge", on, off, "-o", merged)
    m = lib.read_dump(merged)
    assert not m["info"]["flags"] & lib.INFO_FREES_TRACKED and m["totals"]["inuse_objects"] == 0
    for args, named in ((["top", off], off), (["tree", on, merged], merged),
                        (["diff", on, off], off)):
        for sample in ("inuse_objects", "inuse_space"):
            cp = lib.mapprof(*args[:1], "--sample", sample, *args[1:], check=False)
            assert cp.returncode == 2 and named in cp.stderr and "MAPPROF_INUSE=0" in \
                cp.stderr, (args, cp.returncode, cp.stderr)
    assert lib.mapprof("top", "--sample", "inuse_space", on).returncode == 0
    # pprof: only the two alloc sample types, each sample with two values
    pb = os.path.join(lib.tmpdir(), "off.pb.gz")
    lib.mapprof("export", "--format", "pprof", "-o", pb, off)
    with gzip.open(pb) as f:
        top = fields(f.read())
    strings = [v.decode() for n, v in top if n == 6]
    types = [strings[dict(fields(v))[1]] for n, v in top if n == 1]
    assert types == ["alloc_objects", "alloc_space"], types
    vals = [dict(fields(v))[2] for n, v in top if n == 2]
    assert vals and all(len(from_varints(v)) == 2 for v in vals)


def from_varints(b):
    from test_report_exports import varint

    out, i = [], 0
    while i < len(b):
        x, i = varint(b, i)
        out.append(x)
    return out


def test_inuse_setting_not_understood():
    """A value other than 0 or 1 is reported and frees stay tracked."""
    prog, truth, dump = churn(1, {"MAPPROF_INUSE": "no"},
                              said=["MAPPROF_INUSE=no is not 0 or 1; tracking frees"])
    d = lib.read_dump(dump)
    assert d["info"]["flags"] & lib.INFO_FREES_TRACKED, d["info"]
    lib.check_sites(d, prog, truth["sites"], "live_churn, MAPPROF_INUSE=no")
