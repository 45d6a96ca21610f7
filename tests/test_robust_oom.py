"""test_robust_oom.py: out of memory. Requests no allocator can satisfy return NULL with ENOMEM
exactly as without mapprof and count nothing; under an address-space limit that starves mapprof's
own bookkeeping while glibc still serves small blocks from its heap, the program runs on
unchanged, nothing is counted twice, and what could not be recorded is counted in INFO.not_recorded
and said by the report."""
import lib
import robust


def run_both(mode):
    prog = robust.build("robust_oom")
    native, _ = lib.run([prog, mode])
    assert native.returncode == 0, "%s without mapprof: exit %d: %s" % (mode, native.returncode,
                                                                        native.stderr[-300:])
    cp, dump = lib.run_profiled([prog, mode])
    assert cp.returncode == 0, "%s: exit %d: %s" % (mode, cp.returncode, cp.stderr[-500:])
    a, b = lib.truth(native)["checks"], lib.truth(cp)["checks"]
    assert a == b, "%s self-checks without / with mapprof: %s / %s" % (mode, a, b)
    return prog, cp, dump, lib.truth(cp)


def test_oom_huge_requests():
    prog, cp, dump, t = run_both("huge")
    robust.no_shim_lines(cp, "huge")
    for k, v in t["checks"].items():
        if k.endswith("_null") or k.endswith("_intact"):
            assert v == 1, "%s: %s" % (k, t["checks"])
        if k.endswith("_errno"):
            assert v == 12, "%s is %d, not ENOMEM: %s" % (k, v, t["checks"])
    d = lib.read_dump(dump)
    robust.check_process(d, prog, t, "huge")
    assert d["info"]["not_recorded"] == 0


def test_oom_bookkeeping_starved():
    prog, cp, dump, t = run_both("rlimit")
    assert t["checks"]["malloc_null"] == 1 and t["checks"]["malloc_errno"] == 12, t["checks"]
    assert len(cp.stderr.splitlines()) <= 1, "more than one line on stderr: %r" % cp.stderr
    d = lib.read_dump(dump)
    lost = d["info"]["not_recorded"]
    got, other = lib.by_site(d, prog)
    assert not other, [lib.describe(d, c, prog) for c in other]
    zero = dict.fromkeys(lib.COUNTS, 0)
    for name, want in t["sites"].items():
        g = got.get(name, zero)
        if name == "site_many":
            # Every allocation is counted once, or counted as not recorded.
            assert g["alloc_objects"] <= want["objects"] <= g["alloc_objects"] + lost, \
                "site_many: %d counted + %d not recorded, %d made" % (
                    g["alloc_objects"], lost, want["objects"])
            assert want["live_objects"] - lost <= g["inuse_objects"] <= want["live_objects"], \
                "site_many: %d live in the dump, %d in the program, %d not recorded" % (
                    g["inuse_objects"], want["live_objects"], lost)
        else:
            assert g == lib.as_counts(want), "%s: dump %s, program %s" % (
                name, lib.fmt_counts(g), lib.fmt_counts(lib.as_counts(want)))
    assert lost > 0, "the address-space limit left mapprof's bookkeeping untouched; " \
        "the test does not test what it should"
    prof = lib.profile_json([dump])
    assert prof["dumps"][0]["not_recorded"] == lost, prof["dumps"][0]
    top = lib.mapprof("top", dump).stdout
    assert "not recorded" in top.lower(), \
        "mapprof top does not say that %d calls were not recorded:\n%s" % (lost, top[:600])
