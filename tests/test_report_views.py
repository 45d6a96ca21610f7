"""test_report_views.py: the mapprof views (top, tree, peek, export, diff, merge, help) on dumps of
tests/progs/report_sites.c, a program that knows exactly how many allocations each of its call
sites makes (it prints them). Every expected number comes from the program's own JSON line."""
import json
import os
import re
import subprocess

import lib

SRC = os.path.join(lib.ROOT, "tests", "progs", "report_sites.c")
_bins = {}


def text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def prog(opt="O2"):
    if opt not in _bins:
        _bins[opt] = lib.build_prog("report_sites_" + opt, [SRC], flags=["-" + opt, "-g"])
    return _bins[opt]


def run_sites(scale=1, opt="O2", env=None):
    """Runs report_sites under the profiler; returns (its truth, dump path)."""
    cp, dump = lib.run_profiled([prog(opt), str(scale)], env=env)
    assert cp.returncode == 0, "report_sites exited %d" % cp.returncode
    lines = [l for l in text(cp.stdout).splitlines() if l.startswith("{")]
    assert lines, "report_sites printed no JSON"
    return json.loads(lines[-1]), dump


def view_json(*args):
    cp = lib.mapprof(*args)
    return json.loads(text(cp.stdout))


def rows_by_name(top):
    return {r["name"]: r for r in top["rows"]}


def check_top(opt):
    truth, dump = run_sites(1, opt)
    for sample, key in (("alloc_objects", "objects"), ("alloc_space", "bytes")):
        rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", "--sample", sample,
                                      dump))
        assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"][key], (sample, rows["leaf_alpha"])
        assert rows["leaf_alpha"]["cum"] == truth["leaf_alpha"][key]
        assert rows["leaf_beta"]["flat"] == truth["leaf_beta"][key]
        # inner_gamma is inlined into outer_delta: the inlined frame gets the flat value
        assert rows["inner_gamma"]["flat"] == truth["inner_gamma"][key]
        assert rows["outer_delta"]["flat"] == 0
        assert rows["outer_delta"]["cum"] == truth["inner_gamma"][key]
        assert rows["mid_epsilon"]["cum"] == truth["mid_epsilon"][key]
        assert rows["main"]["cum"] >= truth["leaf_alpha"][key] + truth["leaf_beta"][key] + \
            truth["inner_gamma"][key]
    rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", "--sample",
                                  "inuse_objects", dump))
    assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"]["inuse_objects"]
    assert rows.get("leaf_beta", {"flat": 0})["flat"] == 0
    rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", "--sample",
                                  "inuse_space", dump))
    assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"]["inuse_bytes"]


def test_report_top_counts_O2():
    check_top("O2")


def test_report_top_counts_O0():
    check_top("O0")


def test_report_top_text_header():
    truth, dump = run_sites(1)
    prof = lib.profile_json([dump])
    out = text(lib.mapprof("top", dump).stdout)
    head = out.splitlines()[:4]
    assert any(str(prof["dumps"][0]["pid"]) in l and "report_sites" in l for l in head), head
    assert any("alloc_objects %d" % prof["totals"]["alloc_objects"] in l for l in head), head
    assert re.search(r"^\s*flat\s+flat%\s+sum%\s+cum\s+cum%", out, re.M), out
    m = re.search(r"^\s*(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+leaf_alpha$", out, re.M)
    assert m and int(m.group(1)) == truth["leaf_alpha"]["objects"], out


def source_line(needle):
    with open(SRC) as f:
        for i, l in enumerate(f, 1):
            if needle in l:
                return i
    raise AssertionError(needle)


def test_report_top_lines():
    for opt in ("O0", "O2"):
        truth, dump = run_sites(1, opt)
        top = view_json("top", "--json", "--lines", "--nodecount", "0", dump)
        want = source_line("void *p = malloc(32);")
        rows = [r for r in top["rows"] if r["name"] == "leaf_alpha" and r["flat"]]
        assert len(rows) == 1 and rows[0]["line"] == want and \
            rows[0]["file"].endswith("report_sites.c"), (opt, rows)
        assert rows[0]["flat"] == truth["leaf_alpha"]["objects"]
        gamma = [r for r in top["rows"] if r["name"] == "inner_gamma" and r["flat"]]
        assert gamma and gamma[0]["line"] == source_line("void *p = malloc(1000);"), gamma


def test_report_focus_ignore():
    truth, dump = run_sites(2)
    rows = rows_by_name(view_json("top", "--json", "--focus", "mid_epsilon", dump))
    assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"]["objects"] // 2
    assert rows["leaf_beta"]["flat"] == truth["leaf_beta"]["objects"]
    assert "inner_gamma" not in rows
    rows = rows_by_name(view_json("top", "--json", "--ignore", "mid_epsilon", dump))
    assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"]["objects"] // 2
    assert "leaf_beta" not in rows
    assert rows["inner_gamma"]["flat"] == truth["inner_gamma"]["objects"]
    # the same options on every view: export honours them too
    prof = json.loads(text(lib.mapprof("export", "--focus", "leaf_beta", dump).stdout))
    assert prof["totals"]["alloc_objects"] == truth["leaf_beta"]["objects"]
    assert lib.mapprof("top", "--focus", "(", dump, check=False).returncode == 1


def test_report_focus_ignore_every_view():
    """--focus and --ignore select the same chains in every view and export: focused on
    leaf_beta, each one shows exactly leaf_beta's allocations; ignoring it, the rest."""
    import gzip
    import xml.etree.ElementTree as ET
    from test_report_exports import fields, varint
    t1, a = run_sites(2)
    t2, b = run_sites(3)
    beta, total = t1["leaf_beta"]["objects"], lib.profile_json([a])["totals"]["alloc_objects"]
    for opt, want in (("--focus", beta), ("--ignore", total - beta)):
        args = (opt, "leaf_beta")
        assert view_json("top", "--json", *args, a)["shown"] == want
        assert view_json("tree", "--json", *args, a)["tree"]["value"] == want
        (main,) = view_json("peek", "--json", *args, "^main$", a)["functions"]
        assert main["cum"] == want
        assert lib.profile_json([a] + ["--focus" if opt == "--focus" else "--ignore",
                                       "leaf_beta"])["totals"]["alloc_objects"] == want
        out = text(lib.mapprof("export", "--format", "collapsed", *args, a).stdout)
        assert sum(int(l.rsplit(" ", 1)[1]) for l in out.splitlines()) == want
        pb = os.path.join(lib.tmpdir(), "f.pb.gz")
        lib.mapprof("export", "--format", "pprof", *args, "-o", pb, a)
        with gzip.open(pb) as f:
            samples = [dict(fields(v))[2] for n, v in fields(f.read()) if n == 2]
        assert sum(varint(v, 0)[0] for v in samples) == want
        svg = os.path.join(lib.tmpdir(), "f.svg")
        lib.mapprof("flame", *args, a, "-o", svg)
        ns = "{http://www.w3.org/2000/svg}"
        (root,) = [g for g in ET.parse(svg).getroot().iter(ns + "g") if g.get("data-d") == "0"]
        assert root.find(ns + "title").text.startswith("all (%d," % want), \
            root.find(ns + "title").text
        merged = os.path.join(lib.tmpdir(), "focus.dump")
        lib.mapprof("merge", *args, a, "-o", merged)
        assert lib.read_dump(merged)["totals"]["alloc_objects"] == want
        d = view_json("diff", "--json", *args, a, b)
        want_b = t2["leaf_beta"]["objects"] if opt == "--focus" else \
            lib.profile_json([b])["totals"]["alloc_objects"] - t2["leaf_beta"]["objects"]
        assert (d["base_total"], d["new_total"]) == (want, want_b), d
    # growth: the uthash growth site is found through fill_uthash and dropped without it
    exe = lib.build_prog("report_growth_O2", [os.path.join(lib.ROOT, "tests", "progs",
                                                           "report_growth.c")],
                         flags=["-O2", "-g"])
    cp, dump = lib.run_profiled([exe, "uthash", "5000"])
    assert cp.returncode == 0
    assert len(view_json("growth", "--json", "--focus", "fill_uthash", dump)["sites"]) == 1
    assert view_json("growth", "--json", "--ignore", "fill_uthash", dump)["sites"] == []


def find_path(node, names):
    for n in names:
        node = next((c for c in node["children"] if c["name"] == n), None)
        if node is None:
            return None
    return node


def test_report_tree():
    truth, dump = run_sites(1)
    tree = view_json("tree", "--json", dump)["tree"]
    main = None
    stack = [tree]
    while stack and main is None:
        n = stack.pop()
        main = next((c for c in n["children"] if c["name"] == "main"), None)
        stack.extend(n["children"])
    assert main, "no main in the tree"
    half = truth["leaf_alpha"]["objects"] // 2
    assert find_path(main, ["leaf_alpha"])["value"] == half
    assert find_path(main, ["mid_epsilon", "leaf_alpha"])["value"] == half
    assert find_path(main, ["mid_epsilon", "leaf_beta"])["value"] == truth["leaf_beta"]["objects"]
    assert find_path(main, ["outer_delta", "inner_gamma"])["value"] == \
        truth["inner_gamma"]["objects"]
    out = text(lib.mapprof("tree", dump).stdout)
    # callers above callees: mid_epsilon's line comes before its leaf_beta child, indented more
    lines = out.splitlines()
    i = next(i for i, l in enumerate(lines) if l.rstrip().endswith(" mid_epsilon"))
    j = next(j for j, l in enumerate(lines) if l.rstrip().endswith(" leaf_beta"))
    def indent(line):
        return len(re.match(r"\s*\S+\s+\S+%(\s*)", line).group(1))
    assert i < j and indent(lines[j]) > indent(lines[i]), out


def test_report_peek():
    truth, dump = run_sites(1)
    peek = view_json("peek", "--json", "^leaf_alpha$", dump)
    (f,) = peek["functions"]
    assert f["name"] == "leaf_alpha" and f["cum"] == truth["leaf_alpha"]["objects"]
    assert f["self"] == truth["leaf_alpha"]["objects"]
    callers = {c["name"]: c["value"] for c in f["callers"]}
    half = truth["leaf_alpha"]["objects"] // 2
    assert callers == {"main": half, "mid_epsilon": half}, callers
    peek = view_json("peek", "--json", "outer_delta", dump)
    (f,) = peek["functions"]
    callees = {c["name"]: c["value"] for c in f["callees"]["children"]}
    assert callees == {"inner_gamma": truth["inner_gamma"]["objects"]}, callees
    out = text(lib.mapprof("peek", "mid_epsilon", dump).stdout)
    assert "callers" in out and "callees" in out and "leaf_beta" in out, out
    assert lib.mapprof("peek", dump, check=False).returncode == 1


def test_report_peek_by_the_chosen_sample():
    """peek lists the matching functions that have a value of the chosen sample, largest first,
    as top does. It listed them in the order the chains met them, and with --sample inuse_*
    also every function whose blocks were all freed, at 0 (leaf_beta frees all it allocates)."""
    truth, dump = run_sites(1)
    fns = view_json("peek", "--json", "--sample", "inuse_objects", "^leaf_", dump)["functions"]
    assert [(f["name"], f["cum"]) for f in fns] == [
        ("leaf_alpha", truth["leaf_alpha"]["inuse_objects"])], fns
    for f in view_json("peek", "--json", "--sample", "inuse_objects", ".", dump)["functions"]:
        assert f["cum"] > 0 and all(c["value"] > 0 for c in f["callers"]), f
    out = text(lib.mapprof("peek", "--sample", "inuse_objects", "^leaf_beta$", dump).stdout)
    assert "No function matching '^leaf_beta$' has any inuse_objects." in out, out
    fns = view_json("peek", "--json", "--sample", "alloc_space",
                    "^(leaf_alpha|leaf_beta|inner_gamma)$", dump)["functions"]
    assert [f["name"] for f in fns] == ["inner_gamma", "leaf_alpha", "leaf_beta"], fns
    assert [f["cum"] for f in fns] == [truth[n]["bytes"] for n in
                                       ("inner_gamma", "leaf_alpha", "leaf_beta")], fns
    values = [f["cum"] for f in view_json("peek", "--json", ".", dump)["functions"]]
    assert values == sorted(values, reverse=True), values


def test_report_export_json_schema():
    truth, dump = run_sites(1)
    prof = lib.profile_json([dump])
    assert prof["format"] == "mapprof-profile" and prof["version"] == 1
    assert prof["sample_types"] == ["alloc_objects", "alloc_space", "inuse_objects",
                                    "inuse_space"]
    d = prof["dumps"][0]
    for k, t in (("path", str), ("pid", int), ("ppid", int), ("exe", str), ("cmdline", list),
                 ("start_ns", int), ("end_ns", int), ("max_depth", int), ("sample_period", int),
                 ("not_recorded", int), ("threads", int), ("forked", bool),
                 ("frees_tracked", bool), ("sequence", int)):
        assert isinstance(d[k], t), (k, d[k])
    assert d["cmdline"][1:] == ["1"] and d["frees_tracked"] and d["sample_period"] == 0
    for m in prof["modules"]:
        assert m["symbols"] in ("dwarf", "symtab", "none", "missing", "mismatch"), m
        assert m["build_id"] is None or re.fullmatch(r"[0-9a-f]+", m["build_id"]), m
    main_mod = [m for m in prof["modules"] if m["path"].endswith("report_sites_O2")]
    assert main_mod and main_mod[0]["symbols"] == "dwarf"
    for k in prof["sample_types"]:
        assert prof["totals"][k] == sum(c[k] for c in prof["chains"])
    alpha = [c for c in prof["chains"] if c["frames"] and c["frames"][0]["function"] == "leaf_alpha"]
    assert sum(c["alloc_objects"] for c in alpha) == truth["leaf_alpha"]["objects"]
    for c in alpha:
        assert c["sizes"] == [{"log2": 6, "objects": c["alloc_objects"],
                               "bytes": 32 * c["alloc_objects"], "min": 32, "max": 32}], c["sizes"]
    gamma = [c for c in prof["chains"] if c["frames"] and c["frames"][0]["function"] == "inner_gamma"]
    assert len(gamma) == 1
    f0, f1 = gamma[0]["frames"][:2]
    assert f0["inlined"] is True and f1["function"] == "outer_delta" and f1["inlined"] is False
    assert f0["offset"] == f1["offset"] and re.fullmatch(r"0x[0-9a-f]+", f0["offset"])
    assert f0["file"].endswith("report_sites.c") and isinstance(f0["line"], int)


def test_report_json_on_every_view():
    _, a = run_sites(1)
    _, b = run_sites(2)
    for args in (["top", a], ["tree", a], ["peek", "leaf", a], ["growth", a], ["diff", a, b],
                 ["top", a, b], ["export", a]):
        json.loads(text(lib.mapprof(*(args[:1] + ["--json"] + args[1:])).stdout))


def test_report_several_dumps_merge_by_symbols():
    t1, a = run_sites(1)
    t2, b = run_sites(3)
    rows = rows_by_name(view_json("top", "--json", a, b))
    assert rows["leaf_alpha"]["flat"] == t1["leaf_alpha"]["objects"] + t2["leaf_alpha"]["objects"]
    prof = lib.profile_json([a, b])
    one = lib.profile_json([a])
    assert len(prof["chains"]) == len(one["chains"]), "identical chains were not merged"
    assert len(prof["dumps"]) == 2
    # the other views take several dumps the same way
    both = t1["leaf_beta"]["objects"] + t2["leaf_beta"]["objects"]
    tree = view_json("tree", "--json", "--focus", "leaf_beta", a, b)["tree"]
    assert tree["value"] == both
    (f,) = view_json("peek", "--json", "^leaf_beta$", a, b)["functions"]
    assert f["cum"] == f["self"] == both
    out = text(lib.mapprof("export", "--format", "collapsed", "--focus", "leaf_beta", a,
                           b).stdout)
    assert sum(int(l.rsplit(" ", 1)[1]) for l in out.splitlines()) == both
    g = view_json("growth", "--json", a, b)
    assert g["total_objects"] == prof["totals"]["alloc_objects"] and g["sites"] == []


def test_report_merge_writes_a_valid_dump():
    t1, a = run_sites(1)
    t2, b = run_sites(2, "O0")
    out = os.path.join(os.path.dirname(a), "merged-%d.dump" % os.getpid())
    if os.path.exists(out):
        os.unlink(out)
    lib.mapprof("merge", a, b, "-o", out)
    both = lib.profile_json([a, b])
    merged = lib.profile_json([out])
    assert merged["totals"] == both["totals"]
    key = lambda c: json.dumps([(f["function"], f["file"], f["line"], f["inlined"])
                                for f in c["frames"]])
    want = sorted((key(c), c["alloc_objects"], c["alloc_space"], c["inuse_objects"],
                   c["inuse_space"], json.dumps(c["sizes"])) for c in both["chains"])
    got = sorted((key(c), c["alloc_objects"], c["alloc_space"], c["inuse_objects"],
                  c["inuse_space"], json.dumps(c["sizes"])) for c in merged["chains"])
    assert got == want
    # the independent reader accepts it too
    try:
        d = lib.read_dump(out)
        assert d
    except lib.Skip:
        pass


def test_report_diff_says_sampled():
    """A sampled dump in a diff is said to be one (its values are estimates), in the text
    header, in the JSON (base_sampled, new_sampled) and in the --fail-if-increase line, which
    otherwise gated on an estimate without notice."""
    _, exact = run_sites(1)
    _, sampled = run_sites(20, env={"MAPPROF_SAMPLE": "4096"})
    out = text(lib.mapprof("diff", exact, sampled).stdout).splitlines()
    assert out[0].startswith("Base: ") and "sampled" not in out[0], out[:2]
    assert out[1].startswith("New: ") and "sampled (one allocation per 4.00kB on average)" in \
        out[1], out[:2]
    d = view_json("diff", "--json", exact, sampled)
    assert d["base_sampled"] is False and d["new_sampled"] is True, d
    cp = lib.mapprof("diff", "--fail-if-increase", "1", exact, sampled, check=False)
    assert cp.returncode == 3 and "estimates from a sampled dump" in text(cp.stderr), \
        text(cp.stderr)


def test_report_diff_from_nothing():
    """A BASE total of 0 (here --focus leaf_ keeps nothing of another program) and a NEW one
    above it: delta_pct is null, where it was 0.0, which a script gating on it took for no change
    (the text says "0 -> 250 (+250)" and --fail-if-increase trips)."""
    cp, a = lib.run_profiled([inline_prog("O2")])
    assert cp.returncode == 0, cp.returncode
    t, b = run_sites(1)
    d = view_json("diff", "--json", "--focus", "leaf_", a, b)
    want = t["leaf_alpha"]["objects"] + t["leaf_beta"]["objects"]
    assert (d["base_total"], d["new_total"], d["delta"]) == (0, want, want), d
    assert d["delta_pct"] is None, d
    d = view_json("diff", "--json", "--focus", "leaf_", b, a)
    assert d["delta_pct"] == -100.0, d
    d = view_json("diff", "--json", "--focus", "leaf_", a, a)
    assert d["delta_pct"] == 0.0, d
    # the gate is over the chains kept, as docs/cli.md says
    cp = lib.mapprof("diff", "--focus", "leaf_", "--fail-if-increase", "1000", a, b, check=False)
    assert cp.returncode == 3 and "0 -> %d" % want in text(cp.stderr), text(cp.stderr)
    assert lib.mapprof("diff", "--focus", "nomatch", "--fail-if-increase", "0", a, b,
                       check=False).returncode == 0


def test_report_diff_names_merged_sides():
    """A merged dump as a side of diff is named with its processes, as the other views' header
    does; it was named with its first input's pid alone, as if it held one process."""
    ta, a = run_sites(1)
    tb, b = run_sites(2)
    merged = os.path.join(lib.tmpdir(), "ab.dump")
    lib.mapprof("merge", a, b, "-o", merged)
    pids = [x["pid"] for x in lib.read_dump(merged, merged=True)["sources"]]
    out = text(lib.mapprof("diff", a, merged).stdout).splitlines()
    assert out[0] == "Base: %s (pid %d)" % (a, lib.read_dump(a)["info"]["pid"]), out[:2]
    assert out[1] == "New:  %s (merged: 2 dumps, pids %d %d)" % (merged, pids[0], pids[1]), \
        out[:2]


def test_report_diff():
    t1, a = run_sites(1)
    t2, b = run_sites(3)
    d = view_json("diff", "--json", "--nodecount", "0", a, b)
    ta = lib.profile_json([a])["totals"]["alloc_objects"]
    tb = lib.profile_json([b])["totals"]["alloc_objects"]
    assert d["base_total"] == ta and d["new_total"] == tb and d["delta"] == tb - ta
    f = {r["name"]: r for r in d["functions"]}
    assert f["leaf_alpha"]["base_flat"] == t1["leaf_alpha"]["objects"]
    assert f["leaf_alpha"]["new_flat"] == t2["leaf_alpha"]["objects"]
    assert f["mid_epsilon"]["new_cum"] - f["mid_epsilon"]["base_cum"] == \
        t2["mid_epsilon"]["objects"] - t1["mid_epsilon"]["objects"]
    # the largest change comes first
    deltas = [abs(r["new_flat"] - r["base_flat"]) for r in d["functions"]]
    assert deltas == sorted(deltas, reverse=True)
    # a rebuilt binary (-O0 vs -O2) still matches chains by symbols
    t3, c = run_sites(1, "O0")
    d = view_json("diff", "--json", "--focus", "leaf_", a, c)
    assert d["delta"] == 0 and d["chains"] == [], d
    # CI gate
    assert lib.mapprof("diff", "--fail-if-increase", "10", a, b, check=False).returncode == 3
    assert lib.mapprof("diff", "--fail-if-increase", "1000", a, b, check=False).returncode == 0
    assert lib.mapprof("diff", "--fail-if-increase", "0", b, a, check=False).returncode == 0
    assert lib.mapprof("diff", a, check=False).returncode == 1


def inline_prog(opt):
    key = ("inline", opt)
    if key not in _bins:
        _bins[key] = lib.build_prog("report_inline_" + opt,
                                    [os.path.join(lib.ROOT, "tests", "progs", "report_inline.c")],
                                    flags=["-" + opt, "-g"])
    return _bins[key]


def fill_children(tree):
    """The children of fill in a `tree --json` tree, as (name, inlined, value)."""
    stack = [tree]
    while stack:
        n = stack.pop()
        if n["name"] == "fill":
            return sorted((c["name"], bool(c.get("inlined")), c["value"])
                          for c in n["children"])
        stack.extend(n["children"])
    raise AssertionError("no fill in the tree")


def test_report_diff_across_inlining():
    """report_inline.c's static mk_item is called at -O0 and inlined at -O2 (its own malloc and
    the one of name_of under it): the same call paths. diff of the two builds must show no
    chain and no change (it showed a -N/+N pair per path with identical text), both ways round
    and with the samples of one build split between an inlined and a called mk_item on one
    line; merging the two builds gives one mk_item under fill. Within one build the tree keeps
    the inlined mk_item apart from the called one."""
    dumps = {}
    for opt in ("O0", "O2"):
        for mode in ([], ["both"]):
            cp, dump = lib.run_profiled([inline_prog(opt), "1000"] + mode)
            assert cp.returncode == 0, cp.stderr
            dumps[(opt,) + tuple(mode)] = dump
    # the builds differ as the test needs: -O2 inlined mk_item, -O0 called it
    assert fill_children(view_json("tree", "--json", dumps[("O0",)])["tree"]) == \
        [("mk_item", False, 2000)]
    assert fill_children(view_json("tree", "--json", dumps[("O2",)])["tree"]) == \
        [("mk_item", True, 2000)]
    assert fill_children(view_json("tree", "--json", dumps[("O2", "both")])["tree"]) == \
        [("mk_item", False, 1000), ("mk_item", True, 1000)]
    for a, b in ((("O0",), ("O2",)), (("O2",), ("O0",)), (("O0", "both"), ("O2", "both")),
                 (("O2", "both"), ("O0", "both")), (("O2", "both"), ("O0",)),
                 (("O0",), ("O2", "both"))):
        for sample in ("alloc_objects", "alloc_space", "inuse_objects"):
            d = view_json("diff", "--json", "--sample", sample, dumps[a], dumps[b])
            assert d["delta"] == 0 and d["chains"] == [] and d["functions"] == [], (a, b, d)
        out = text(lib.mapprof("diff", dumps[a], dumps[b]).stdout)
        assert out.count("(no change)") == 2, out
    # dumps of the two builds merged: one call path, one mk_item
    both = view_json("tree", "--json", dumps[("O0",)], dumps[("O2",)])["tree"]
    assert fill_children(both) == [("mk_item", False, 4000)], fill_children(both)


def test_report_sampled_dump_is_scaled():
    truth, dump = run_sites(100, env={"MAPPROF_SAMPLE": "256"})
    prof = lib.profile_json([dump])
    assert prof["dumps"][0]["sample_period"] == 256
    rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", dump))
    for name in ("leaf_alpha", "inner_gamma"):
        got, want = rows[name]["flat"], truth[name]["objects"]
        # 32-byte requests are sampled with p = 1 - exp(-32/256) ~ 12%: thousands of samples,
        # so the unbiased estimate lands well within 15%
        assert abs(got - want) <= 0.15 * want, (name, got, want)


def test_report_help_and_usage():
    cp = lib.mapprof("--help")
    out = text(cp.stdout)
    for cmd in ("top", "tree", "peek", "growth", "diff", "merge", "export", "flame"):
        assert re.search(r"^\s+%s\s" % cmd, out, re.M), cmd
        h = text(lib.mapprof("help", cmd).stdout)
        assert h.startswith("usage: mapprof " + cmd) and "--sample" in h
        assert text(lib.mapprof(cmd, "--help").stdout) == h
    assert re.match(r"mapprof \d+\.\d+", text(lib.mapprof("--version").stdout))
    for bad in (["nosuchcmd"], ["top", "--nosuchopt", "x"], ["top"], [],
                ["top", "--sample", "bogus", "x"], ["top", "--nodecount", "-1", "x"],
                ["export", "--format", "bogus", "x"]):
        cp = lib.mapprof(*bad, check=False)
        assert cp.returncode == 1, (bad, cp.returncode)
        assert text(cp.stderr).startswith("mapprof: ") or bad == [], (bad, cp.stderr)


def test_report_missing_binary_warns_once():
    import shutil
    d = lib.tmpdir("mapprof-missing-")
    exe = os.path.join(d, "gone_prog")
    shutil.copy(prog("O2"), exe)
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0
    os.unlink(exe)
    cp = lib.mapprof("top", "--nodecount", "0", dump)
    err = text(cp.stderr)
    assert err.count(exe) == 1 and "module+offset" in err, err
    assert "leaf_alpha" not in text(cp.stdout)
    prof = lib.profile_json([dump])
    (m,) = [m for m in prof["modules"] if m["path"] == exe]
    assert m["symbols"] == "missing"
    frames = [f for c in prof["chains"] for f in c["frames"] if f["module"] == exe]
    assert frames and all(f["function"] is None and f["offset"].startswith("0x") for f in frames)
    # rebuilt since the run: build-id mismatch, same treatment
    shutil.copy(prog("O0"), exe)
    cp = lib.mapprof("export", dump)
    assert text(cp.stderr).count(exe) == 1 and "build-id" in text(cp.stderr), cp.stderr
    prof = json.loads(text(cp.stdout))
    (m,) = [m for m in prof["modules"] if m["path"] == exe]
    assert m["symbols"] == "mismatch"
    # -q silences it
    assert text(lib.mapprof("top", "-q", dump).stderr) == ""


def test_report_top_many_functions():
    """A real program with hundreds of distinct functions (the Python interpreter importing a
    few modules): every view completes, and the flat column adds up to the total."""
    py = "/usr/bin/python3"
    if not os.path.exists(py):
        raise lib.Skip("no %s" % py)
    cp, dump = lib.run_profiled([py, "-c", "import json, email.parser, http.client, decimal"],
                                out=os.path.join(lib.tmpdir(), "python.dump"))
    assert cp.returncode == 0, cp.stderr
    top = view_json("top", "--json", "--nodecount", "0", dump)
    assert len(top["rows"]) > 256, len(top["rows"])
    assert sum(r["flat"] for r in top["rows"]) == top["total"]
    assert all(r["cum"] >= r["flat"] for r in top["rows"])
    for view in ("tree", "growth", "peek"):
        args = [view, "--json"] + (["Py"] if view == "peek" else []) + [dump]
        json.loads(text(lib.mapprof(*args).stdout))


def test_report_inline_frames_match_addr2line():
    """Inline expansion checked against binutils: for every address in the executable, the
    file:line of each expanded frame (innermost first) equals `addr2line -i` of address - 1."""
    import shutil
    import subprocess
    a2l = shutil.which("addr2line")
    if not a2l:
        raise lib.Skip("no addr2line (binutils)")
    exe = lib.build_prog("report_umap_O2", [os.path.join(lib.ROOT, "tests", "progs",
                                                         "report_umap.cc")],
                         flags=["-O2", "-g"], lang="c++")
    cp, dump = lib.run_profiled([exe, "2000"])
    assert cp.returncode == 0
    prof = lib.profile_json([dump])
    groups = {}
    for c in prof["chains"]:
        for f in c["frames"]:
            if f["module"] == exe:
                key = f["offset"]
                seq = groups.setdefault(key, [])
                if len(seq) < sum(1 for g in c["frames"] if g["offset"] == key and
                                  g["module"] == exe):
                    seq.append((os.path.basename(f["file"] or "??"), f["line"] or 0))
    assert len(groups) >= 5, groups
    addrs = ["0x%x" % (int(k, 16) - 1) for k in groups]
    assert any(len(seq) > 3 for seq in groups.values()), "no deeply inlined address"
    # addr2line prints one or more "file:line" lines per address; split them with -a markers
    r = subprocess.run([a2l, "-a", "-i", "-e", exe] + addrs, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    want, cur = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("0x"):
            cur = "0x%x" % (int(line, 16) + 1)
            want[cur] = []
        else:
            path, _, ln = line.rpartition(":")
            ln = ln.split()[0]
            want[cur].append((os.path.basename(path), int(ln) if ln.isdigit() else 0))
    for key, seq in groups.items():
        assert seq == want[key], (key, seq, want[key])


def test_report_separate_debug_file():
    """A stripped executable whose DWARF lives in a separate file named by .gnu_debuglink (as
    Debian's -dbgsym packages do, there under /usr/lib/debug): functions and lines still come
    from DWARF. Stripped of everything (no debug link, no symbol table), frames are module+offset."""
    import shutil
    import subprocess
    if not (shutil.which("objcopy") and shutil.which("strip")):
        raise lib.Skip("no binutils")
    d = lib.tmpdir("mapprof-debuglink-")
    exe = os.path.join(d, "sites")
    shutil.copy(prog("O2"), exe)
    subprocess.run(["objcopy", "--only-keep-debug", exe, exe + ".debug"], check=True)
    subprocess.run(["strip", "--strip-all", exe], check=True)
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + exe + ".debug", exe], cwd=d, check=True)
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0
    prof = lib.profile_json([dump])
    (m,) = [m for m in prof["modules"] if m["path"] == exe]
    assert m["symbols"] == "dwarf", m
    rows = rows_by_name(view_json("top", "--json", "--lines", "--nodecount", "0", dump))
    assert rows["leaf_alpha"]["line"] == source_line("void *p = malloc(32);"), rows["leaf_alpha"]
    # no debug file, no symbol table: module+offset frames, and still a valid profile
    os.unlink(exe + ".debug")
    prof = lib.profile_json([dump])
    (m,) = [m for m in prof["modules"] if m["path"] == exe]
    assert m["symbols"] in ("none", "symtab"), m
    frames = [f for c in prof["chains"] for f in c["frames"] if f["module"] == exe]
    assert frames and not [f for f in frames if f["function"] == "leaf_alpha"]
    out = text(lib.mapprof("top", dump).stdout)
    assert re.search(r"sites\+0x[0-9a-f]+", out), out


def test_report_debug_dir_and_symtab():
    """Separate debug files found by build-id (DIR/.build-id/xx/rest.debug, Debian's layout
    under /usr/lib/debug) and by .gnu_debuglink under a debug directory (DIR/<the binary's
    directory>/<link>), given with --debug-dir; and a binary with only its ELF symbol table
    (strip --strip-debug): function names, no file:line."""
    import shutil
    import subprocess
    if not (shutil.which("objcopy") and shutil.which("strip") and shutil.which("readelf")):
        raise lib.Skip("no binutils")
    d = lib.tmpdir("mapprof-debugdir-")
    exe = os.path.join(d, "sites")
    shutil.copy(prog("O2"), exe)
    # the debug file is kept out of the binary's directory: libdw looks for NAME.debug there
    os.makedirs(os.path.join(d, "keep"))
    debug = os.path.join(d, "keep", "sites.debug")
    subprocess.run(["objcopy", "--only-keep-debug", exe, debug], check=True)
    subprocess.run(["strip", "--strip-all", exe], check=True)
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0
    want_line = source_line("void *p = malloc(32);")

    def module_state(*opts):
        prof = json.loads(text(lib.mapprof("export", "-q", *opts, dump).stdout))
        (m,) = [m for m in prof["modules"] if m["path"] == exe]
        return m

    def alpha_row(*opts):
        rows = rows_by_name(view_json("top", "--json", "--lines", "--nodecount", "0", "-q",
                                      *opts, dump))
        return rows.get("leaf_alpha")

    # stripped: a few dynamic symbols at most, none of the program's functions
    assert module_state()["symbols"] in ("none", "symtab") and alpha_row() is None
    # by build-id
    bid = module_state()["build_id"]
    by_id = os.path.join(d, "by-id")
    os.makedirs(os.path.join(by_id, ".build-id", bid[:2]))
    shutil.copy(debug, os.path.join(by_id, ".build-id", bid[:2], bid[2:] + ".debug"))
    assert module_state("--debug-dir", by_id)["symbols"] == "dwarf"
    assert alpha_row("--debug-dir", by_id)["line"] == want_line
    # by .gnu_debuglink, the debug file under DIR/<the binary's directory>/
    linked = os.path.join(d, "linked")
    shutil.copy(exe, linked)
    subprocess.run(["objcopy", "--add-gnu-debuglink=" + debug, linked], check=True)
    cp, dump = lib.run_profiled([linked, "1"])
    assert cp.returncode == 0
    under = os.path.join(d, "debug-root")
    os.makedirs(under + d)
    shutil.move(debug, os.path.join(under + d, "sites.debug"))
    prof = json.loads(text(lib.mapprof("export", "-q", dump).stdout))
    assert [m["symbols"] for m in prof["modules"] if m["path"] == linked] in (["none"],
                                                                               ["symtab"])
    prof = json.loads(text(lib.mapprof("export", "-q", "--debug-dir", under, dump).stdout))
    assert [m["symbols"] for m in prof["modules"] if m["path"] == linked] == ["dwarf"]
    rows = rows_by_name(view_json("top", "--json", "--lines", "--nodecount", "0",
                                  "--debug-dir", under, dump))
    assert rows["leaf_alpha"]["line"] == want_line
    # a directory that does not exist is skipped, with a warning, and the others searched
    cp = lib.mapprof("top", "--json", "--lines", "--nodecount", "0", "--debug-dir",
                     os.path.join(d, "nope") + ":" + under, dump)
    assert "nope" in text(cp.stderr) and "skipped" in text(cp.stderr), cp.stderr
    assert rows_by_name(json.loads(cp.stdout))["leaf_alpha"]["line"] == want_line
    # symbol table only: names without lines
    symtab = os.path.join(d, "symtab")
    shutil.copy(prog("O2"), symtab)
    subprocess.run(["strip", "--strip-debug", symtab], check=True)
    truth, _ = run_sites(1)
    cp, dump = lib.run_profiled([symtab, "1"])
    assert cp.returncode == 0
    prof = lib.profile_json([dump])
    (m,) = [m for m in prof["modules"] if m["path"] == symtab]
    assert m["symbols"] == "symtab", m
    rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", dump))
    assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"]["objects"]
    frames = [f for c in prof["chains"] for f in c["frames"] if f["module"] == symtab]
    assert frames and all(f["file"] is None and f["line"] is None for f in frames)
    # inner_gamma was inlined: without DWARF its allocations belong to outer_delta
    assert rows["outer_delta"]["flat"] == truth["inner_gamma"]["objects"]


def test_report_each_address_symbolized_once():
    """Every distinct return address of the dumps (counted here by the independent reader) is
    symbolized exactly once, however many chains and dumps pass through it (--stats)."""
    exe = lib.build_prog("report_umap_O2", [os.path.join(lib.ROOT, "tests", "progs",
                                                         "report_umap.cc")],
                         flags=["-O2", "-g"], lang="c++")
    dumps = []
    for n in ("3000", "5000"):
        cp, dump = lib.run_profiled([exe, n])
        assert cp.returncode == 0
        dumps.append(dump)
    _, a = run_sites(1)
    dumps.append(a)
    addrs, raw, chains = set(), 0, 0
    for path in dumps:
        d = lib.read_dump(path)
        mods = {m["id"]: (m["path"], m["build_id"]) for m in d["modules"]}
        for c in d["chains"]:
            chains += 1
            raw += len(c["frames"])
            addrs.update((mods.get(m), o) for m, o in c["frames"])
    cp = lib.mapprof("top", "--stats", *dumps)
    m = re.search(r"^mapprof: stats: 3 dumps \(\d+ bytes\), (\d+) chains \(\d+ after merging "
                  r"by symbols\), (\d+) return addresses, (\d+) distinct addresses symbolized "
                  r"once each", text(cp.stderr), re.M)
    assert m, cp.stderr
    assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (chains, raw, len(addrs)), \
        (m.groups(), chains, raw, len(addrs))


def test_report_truncated_chains():
    """With MAPPROF_DEPTH=3 every chain of report_sites is deeper than the limit: the export
    marks them truncated, the tree and the collapsed stacks put them under "(truncated)", and the
    counts still add up to what the program made."""
    truth, dump = run_sites(1, env={"MAPPROF_DEPTH": "3"})
    prof = lib.profile_json([dump])
    trunc = [c for c in prof["chains"] if c["truncated"]]
    assert trunc and all(len(c["frames"]) >= 3 for c in trunc)
    alpha = sum(c["alloc_objects"] for c in prof["chains"]
                if c["frames"][0]["function"] == "leaf_alpha")
    assert alpha == truth["leaf_alpha"]["objects"]
    tree = view_json("tree", "--json", dump)["tree"]
    (t,) = [c for c in tree["children"] if c["name"] == "(truncated)"]
    assert t["value"] == sum(c["alloc_objects"] for c in trunc)
    out = text(lib.mapprof("export", "--format", "collapsed", dump).stdout)
    assert sum(int(l.rsplit(" ", 1)[1]) for l in out.splitlines()
               if l.startswith("(truncated);")) == t["value"]


def test_report_rust_legacy_names():
    """Rust symbols in rustc's legacy mangling (tests/progs/report_rustnames.c names its
    functions so) read as Rust prints them: the hash element dropped, "$LT$"-style escapes and
    ".." undone, LLVM's ".llvm.N" suffix taken off first; short names drop generic arguments but
    keep both sides of "<Type as Trait>::method"; the growth view names hashbrown's growth
    function. They used to show as "hashbrown::raw::RawTable$LT$T$C$A$GT$::reserve_rehash::h..."
    and, with the suffix, not demangled at all."""
    src = os.path.join(lib.ROOT, "tests", "progs", "report_rustnames.c")
    exe = lib.build_prog("report_rustnames", [src], flags=["-O2", "-g", "-fno-omit-frame-pointer"])
    cp, dump = lib.run_profiled([exe, "10"])
    assert cp.returncode == 0, text(cp.stderr)
    truth = lib.truth(cp, "rustnames")["sites"]["reserve_rehash"]
    rehash = "hashbrown::raw::RawTable::reserve_rehash"
    from_iter = "<alloc::vec::Vec as core::iter::traits::collect::FromIterator>::from_iter"
    call_once = "core::ops::function::FnOnce::call_once"
    rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", dump))
    assert rows[rehash]["flat"] == truth["objects"], sorted(rows)
    assert rows[from_iter]["cum"] == rows[call_once]["cum"] == truth["objects"], sorted(rows)
    full = rows_by_name(view_json("top", "--json", "--nodecount", "0", "--full-names", dump))
    assert {"hashbrown::raw::RawTable<T,A>::reserve_rehash", call_once,
            "<alloc::vec::Vec<T> as core::iter::traits::collect::FromIterator<T>>::from_iter"} \
        <= set(full), sorted(full)
    assert not [n for n in full if "$" in n or "::h0" in n or ".llvm." in n], sorted(full)
    # a space inside the Type of "<Type as Trait>" is no return type's end
    write_str = "<&mut W as core::fmt::Write>::write_str"
    assert rows[write_str]["flat"] == lib.truth(cp, "rustnames")["sites"]["write_str"]["objects"]
    g = view_json("growth", "--json", dump)
    (site,) = [s for s in g["sites"] if s["container"] == "Rust hashbrown HashMap/HashSet"]
    assert site["growth_allocations"] == truth["objects"] and site["save_objects"] == 9, site
    # a Vec's growth through RawVec (it used to be taken for a uthash table by its sizes)
    vec = lib.truth(cp, "rustnames")["sites"]["finish_grow"]
    (site,) = [s for s in g["sites"] if s["container"] == "Rust Vec/String"]
    assert site["growth_function"] == "alloc::raw_vec::RawVecInner<A>::finish_grow", site
    assert site["growth_allocations"] == vec["objects"] == 11, (site, vec)
    assert "with_capacity" in site["knob"] and len(g["sites"]) == 2, g["sites"]


def test_report_rust_v0_names():
    """Rust symbols in the v0 mangling ("_R...", which Rust's standard library uses since 2025;
    tests/progs/report_rustv0.c takes its names from a real build) are demangled, the growth
    function's ".llvm.N" suffix too. Short names drop generic arguments and the turbofish with
    its "::" ("std::rt::lang_start::{closure#0}"), give an inherent method's type as a plain path
    ("hashbrown::raw::RawTable::reserve_rehash", as the legacy mangling reads) and keep both
    sides of "<Type as Trait>::method". They used to show mangled, every frame of a Rust program
    built by a current rustc."""
    src = os.path.join(lib.ROOT, "tests", "progs", "report_rustv0.c")
    exe = lib.build_prog("report_rustv0", [src], flags=["-O2", "-g", "-fno-omit-frame-pointer"])
    cp, dump = lib.run_profiled([exe, "10"])
    assert cp.returncode == 0, text(cp.stderr)
    truth = lib.truth(cp, "rustv0")["sites"]["reserve_rehash"]
    chain = ["std::rt::lang_start::{closure#0}", "m::main", "hashbrown::map::HashMap::insert",
             "hashbrown::raw::RawTable::reserve_rehash",
             "<alloc::alloc::Global as core::alloc::Allocator>::allocate"]
    rows = rows_by_name(view_json("top", "--json", "--nodecount", "0", dump))
    for name in chain:
        assert rows[name]["cum"] == truth["objects"], (name, sorted(rows))
    assert rows[chain[-1]]["flat"] == truth["objects"], sorted(rows)
    full = rows_by_name(view_json("top", "--json", "--nodecount", "0", "--full-names", dump))
    assert {"std::rt::lang_start::<()>::{closure#0}",
            "<hashbrown::map::HashMap<u64, u64, std::hash::random::RandomState>>::insert",
            "<hashbrown::raw::RawTable<(u64, u64)>>::reserve_rehash::<hashbrown::map::"
            "make_hasher<u64, u64, std::hash::random::RandomState>::{closure#0}>"} <= set(full), \
        sorted(full)
    assert not [n for n in full if n.startswith("_R") or ".llvm." in n], sorted(full)
    g = view_json("growth", "--json", dump)
    (site,) = g["sites"]
    assert site["container"] == "Rust hashbrown HashMap/HashSet", site
    assert site["growth_allocations"] == truth["objects"] and site["save_objects"] == 9, site
    out = text(lib.mapprof("growth", dump).stdout)
    assert "through growth function hashbrown::raw::RawTable::reserve_rehash\n" in out, out


def test_report_deeply_qualified_name():
    """A function named "<<<...a>::f>::f...>::f", nested 20,000 deep (a crafted symbol: rustc's
    own names nest a few levels): its short name is made in memory linear in its length. Each
    level copied what was left of the name, which took a gigabyte and seconds here."""
    exe_report = os.path.join(lib.BUILD, "mapprof")
    if not os.path.exists(exe_report):
        raise lib.Skip("%s is not built (make build/mapprof)" % exe_report)
    depth = 20000
    src = os.path.join(lib.tmpdir(), "deep_name.c")
    name = "<" * depth + "a" + ">::f" * depth
    with open(src, "w") as f:
        f.write('#include <stdlib.h>\n'
                '__attribute__((noinline)) void *deep(size_t n) __asm__("\\"%s\\"");\n'
                '__attribute__((noinline)) void *deep(size_t n) { return malloc(n); }\n'
                'int main(void) { void *volatile p = deep(24); free(p); return 0; }\n' % name)
    exe = lib.build_prog("deep_name", [src], flags=["-O1", "-g0"])
    cp, dump = lib.run_profiled([exe])
    assert cp.returncode == 0, text(cp.stderr)
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, timeout=120)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,\n"
             "      int(b'<<<<<<<<' in r.stdout))\n")
    p = subprocess.run(["python3", "-c", probe, exe_report, "top", "-q", dump],
                       capture_output=True, text=True, timeout=180)
    rc, kb, shown = p.stdout.split()
    assert rc == "0", p.stderr[-500:]
    assert int(kb) < 200 * 1024, "%d MiB to shorten one name of %d bytes" % (int(kb) // 1024,
                                                                           len(name))
    assert shown == "1", "the deep name is not in the top view"
