"""test_examples.py: the example programs of examples/ run under the profiler. Each run's profile
must hold exactly the allocations the program counted itself (it prints them as one JSON line),
`mapprof growth` must find the growth site of every growing map and none in its pre-sized twin.
Never compare with numbers copied from an earlier run: the truth is what the program prints."""
import json
import os
import re
import subprocess

import lib

SMALL, BIG = 100, 10000
_built = []


def example(name, opt="O2"):
    """Path of an example binary, building them all (make examples) the first time."""
    if not _built:
        r = subprocess.run(["make", "-s", "examples"], cwd=lib.ROOT, capture_output=True,
                           text=True)
        if r.returncode != 0:
            raise AssertionError("make examples failed: " + r.stderr[-800:])
        _built.append(True)
    d = os.path.join(lib.BUILD, "examples")
    return os.path.join(d, name) if opt == "O2" else os.path.join(d, opt, name)


def run(name, items, presize=False, opt="O2"):
    """Runs one example under the profiler; returns (its own truth, dump path)."""
    argv = [example(name, opt), str(items)] + (["--presize"] if presize else [])
    cp, dump = lib.run_profiled(argv)
    out = cp.stdout.decode() if isinstance(cp.stdout, bytes) else cp.stdout
    assert cp.returncode == 0, "%s exited %d" % (" ".join(argv), cp.returncode)
    lines = [l for l in (out or "").splitlines() if l.startswith("{")]
    assert lines, "%s printed no JSON line" % " ".join(argv)
    truth = json.loads(lines[-1])
    assert truth["items"] == items and truth["presized"] == presize, truth
    return truth, dump


def names(name):
    """A regex matching NAME as a whole function name in a symbolized frame: C ("build_map",
    "collect.constprop.0") and demangled C++ ("(anonymous namespace)::build_map(...)",
    "std::_Hashtable<...>::_M_rehash(unsigned long, ...)")."""
    return re.compile(r"(?:^|[\s:])" + re.escape(name) + r"(?:$|[.(\s\[<])")


def through(chains, name):
    pat = names(name)
    return [c for c in chains if any(f.get("function") and pat.search(f["function"])
                                     for f in c["frames"])]


def not_through(chains, prefix):
    pat = re.compile(r"(?:^|[\s:])" + re.escape(prefix))
    return [c for c in chains if not any(f.get("function") and pat.search(f["function"])
                                         for f in c["frames"])]


def tally(chains):
    return {"objects": sum(c["alloc_objects"] for c in chains),
            "bytes": sum(c["alloc_space"] for c in chains),
            "inuse_objects": sum(c["inuse_objects"] for c in chains),
            "inuse_bytes": sum(c["inuse_space"] for c in chains)}


def check(what, got, want):
    assert got["objects"] == want["objects"] and got["bytes"] == want["bytes"], \
        "%s: profile has %d objects / %d bytes, the program counted %d / %d" % (
            what, got["objects"], got["bytes"], want["objects"], want["bytes"])


def check_live(what, got, want):
    assert got["inuse_objects"] == want["objects"] and got["inuse_bytes"] == want["bytes"], \
        "%s: profile has %d objects / %d bytes in use at exit, the program %d / %d" % (
            what, got["inuse_objects"], got["inuse_bytes"], want["objects"], want["bytes"])


def scope_chains(truth, dump):
    prof = lib.profile_json([dump])
    chains = through(prof["chains"], truth["scope"])
    assert chains, "no chain through %s in %s" % (truth["scope"], dump)
    return chains


RUNS = [(SMALL, False), (BIG, False), (BIG, True)]


# ---- the profile holds what each program counted ----

def check_uthash(opt):
    for items, presize in RUNS:
        truth, dump = run("uthash_map", items, presize, opt)
        chains = scope_chains(truth, dump)
        what = "uthash_map %d%s -%s" % (items, " --presize" if presize else "", opt)
        check(what, tally(chains), truth["allocs"])
        check_live(what, tally(chains), truth["live"])
        # The table's allocations are the ones made by the HASH_ADD in add_account.
        check(what + " table", tally(through(chains, "add_account")), truth["table"])
        if presize:
            assert truth["growth"]["allocations"] == 0, truth


def test_uthash_counts():
    check_uthash("O2")


def test_uthash_counts_O0():
    check_uthash("O0")


def check_unordered(opt):
    for items, presize in RUNS:
        truth, dump = run("unordered_map", items, presize, opt)
        chains = scope_chains(truth, dump)
        what = "unordered_map %d%s -%s" % (items, " --presize" if presize else "", opt)
        check(what, tally(chains), truth["allocs"])
        check_live(what, tally(chains), truth["live"])
        # Bucket arrays come from _Hashtable::_M_rehash (under emplace, or under reserve).
        check(what + " buckets", tally(through(chains, "_M_rehash")), truth["buckets"])
        check(what + " nodes", tally(not_through(chains, "_M_rehash")), truth["nodes"])
        if presize:
            assert truth["buckets"]["objects"] == 1 and truth["growth"]["allocations"] == 0


def test_unordered_map_counts():
    check_unordered("O2")


def test_unordered_map_counts_O0():
    check_unordered("O0")


def check_dynarray(opt):
    for items, presize in RUNS:
        truth, dump = run("dynarray", items, presize, opt)
        chains = scope_chains(truth, dump)
        what = "dynarray %d%s -%s" % (items, " --presize" if presize else "", opt)
        check(what, tally(chains), truth["allocs"])
        check_live(what, tally(chains), truth["live"])
        pushes = tally(through(chains, "push"))
        if presize:
            assert pushes["objects"] == 0, "%s: push allocated %d times" % (what, pushes["objects"])
        else:
            check(what + " push", pushes, truth["allocs"])


def test_dynarray_counts():
    check_dynarray("O2")


def test_dynarray_counts_O0():
    check_dynarray("O0")


def check_ghash(opt):
    for items, presize in RUNS:
        truth, dump = run("ghash_map", items, presize, opt)
        chains = scope_chains(truth, dump)
        what = "ghash_map %d%s -%s" % (items, " --presize" if presize else "", opt)
        # The program counts its own keys and values exactly; GLib's table allocations are
        # the ones through g_hash_table_* functions.
        own = tally(not_through(chains, "g_hash_table_"))
        check(what, own, truth["allocs"])
        check_live(what, own, truth["live"])
        if presize:
            assert not through(chains, "g_hash_table_insert"), what
            continue
        if not truth["glib"].startswith("2.74."):
            continue  # the program's model of the table is GLib 2.74's policy
        check(what + " table (GLib 2.74 policy)", tally(through(chains, "g_hash_table_insert")),
              truth["table_model"])


def test_ghash_counts():
    check_ghash("O2")


def test_ghash_counts_O0():
    check_ghash("O0")


# ---- mapprof growth finds the growth site, and none when pre-sized ----

# Where each example's growth allocations are made: the function the chain must pass through.
GROWTH_MARK = {"uthash_map": "add_account", "unordered_map": "_M_rehash", "dynarray": "push",
               "ghash_map": "g_hash_table_insert"}


def growth_sites(dump):
    """The sites of `mapprof growth --json DUMP`, or Skip when the command is not there yet."""
    if not os.path.exists(lib.MAPPROF):
        raise lib.Skip("the mapprof command is not built")
    cp = lib.mapprof("growth", "--json", dump, check=False)
    if cp.returncode == 1:
        raise lib.Skip("mapprof growth is not implemented yet")
    assert cp.returncode == 0, "mapprof growth --json %s: exit %d" % (dump, cp.returncode)
    out = cp.stdout.decode() if isinstance(cp.stdout, bytes) else cp.stdout
    return json.loads(out)["sites"]


def sites_through(sites, *marks):
    pats = [names(m) for m in marks]
    return [s for s in sites
            if all(any(f.get("function") and p.search(f["function"]) for f in s["frames"])
                   for p in pats)]


def check_growth(name):
    truth, dump = run(name, BIG)
    mark = GROWTH_MARK[name]
    sites = sites_through(growth_sites(dump), truth["scope"], mark)
    assert sites, "%s: mapprof growth found no site through %s and %s" % (
        name, truth["scope"], mark)
    want = truth["growth"]
    got = sum(s["growth_allocations"] for s in sites)
    # A site may count the container's first allocation of the sequence as well (a pre-sized
    # container makes one allocation there too), so at most one more per site.
    assert want["allocations"] <= got <= want["allocations"] + len(sites), \
        "%s: growth counted %d allocations at %d sites, the program %d" % (
            name, got, len(sites), want["allocations"])
    for s in sites:
        extra = [z for z in s["sizes"] if z not in want["sizes"]]
        assert len(extra) <= 1, "%s: growth sizes %s, the program's %s" % (
            name, s["sizes"], want["sizes"])

    truth, dump = run(name, BIG, presize=True)
    sites = sites_through(growth_sites(dump), truth["scope"], mark)
    assert not [s for s in sites if s["growth_allocations"] > 0], \
        "%s --presize: mapprof growth still reports %s" % (name, sites)


def test_uthash_growth():
    check_growth("uthash_map")
    truth, dump = run("uthash_map", SMALL)
    assert truth["growth"]["allocations"] == 0
    assert not sites_through(growth_sites(dump), truth["scope"]), \
        "a map that never expanded has a growth site"


def test_unordered_map_growth():
    check_growth("unordered_map")


def test_dynarray_growth():
    check_growth("dynarray")


def test_ghash_growth():
    check_growth("ghash_map")
