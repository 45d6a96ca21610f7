"""test_report_figures.py: the report's figures are right at the edges. A diff flame graph keeps
every frame inside the picture and inside its parent; the snapshots one process leaves
(MAPPROF_SIGNAL, MAPPROF_INTERVAL) are counted once, not added up; JSON passes names and paths
through as the UTF-8 they are (and stays valid JSON when they are not UTF-8); `-n 0` shows
everything in every view and the JSON of tree and peek selects what their text shows; counts
near 2^64 (a dump the loader accepts, or sampled estimates) give right deltas and capped
estimates, never undefined behaviour (all run under ASan and UBSan). Expected numbers come from
the programs' own counts or from the dumps the tests build."""
import json
import os
import re
import signal
import struct
import subprocess
import xml.etree.ElementTree as ET

import lib
import robust

PROGS = os.path.join(lib.ROOT, "tests", "progs")
SVG = "{http://www.w3.org/2000/svg}"
WIDTH = 1200
EPS = 1e-6


def mapprof_raw(*args):
    """Runs the sanitized report tool; returns (exit status, stdout bytes, stderr text)."""
    if not os.path.exists(lib.MAPPROF):
        raise lib.Skip("%s is not built (make build/mapprof-asan)" % lib.MAPPROF)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    cp = subprocess.run([lib.MAPPROF] + [str(a) for a in args], capture_output=True, env=env,
                        timeout=lib.TIMEOUT)
    return cp.returncode, cp.stdout, cp.stderr.decode(errors="replace")


def clean_run(*args):
    """mapprof-asan ARGS must exit 0 without a sanitizer report; returns (stdout text, stderr)."""
    rc, out, err = mapprof_raw(*args)
    assert rc == 0 and "runtime error" not in err and "Sanitizer" not in err, \
        "mapprof %s: exit %d: %s" % (" ".join(map(str, args)), rc, err[-1500:])
    return out.decode("utf-8"), err


def messages(err):
    return [l for l in err.splitlines() if l.startswith("mapprof:")]


# ---- 1. diff flame graphs: every frame inside the picture and inside its parent ----

def onefn(name, count):
    exe = lib.build_prog("figures_onefn_" + name, ["figures_onefn.c"],
                         flags=["-O2", "-DFN=" + name])
    cp, dump = lib.run_profiled([exe, str(count)])
    assert cp.returncode == 0, cp.stderr[-500:]
    return lib.truth(cp), dump


def svg_frames(path):
    """[(depth, x, w, title, rect)] of the flame graph's frames, after checking that every
    rectangle lies inside the picture (the SVG's own width) and agrees with its data-x/w."""
    root = ET.parse(path).getroot()
    width = float(root.get("width"))
    assert width == WIDTH, root.get("width")
    out = []
    for g in root.iter(SVG + "g"):
        if g.get("class") != "f":
            continue
        x, w, d = float(g.get("data-x")), float(g.get("data-w")), int(g.get("data-d"))
        title = g.find(SVG + "title").text
        r = g.find(SVG + "rect")
        rx, rw = float(r.get("x")), float(r.get("width"))
        assert 0 <= x and 0 < w and x + w <= 1 + EPS, (title, x, w)
        assert 0 <= rx and rx + rw <= width + 0.01, "%s drawn at x %.2f-%.2f of 0-%d" % (
            title, rx, rx + rw, width)
        assert abs(rx - x * width) < 0.01, (title, rx, x)
        out.append((d, x, w, title, r))
    assert out, "no frames in %s" % path
    return out


def check_nesting(frames, what):
    """Frames of one depth never overlap, and each frame lies inside a frame one row below (its
    parent): so the children of a frame fit inside it, side by side."""
    by_depth = {}
    for d, x, w, title, _ in frames:
        by_depth.setdefault(d, []).append((x, w, title))
    assert len(by_depth[0]) == 1 and abs(by_depth[0][0][1] - 1) < EPS, (what, by_depth[0])
    for d, row in by_depth.items():
        row.sort()
        for (x0, w0, t0), (x1, w1, t1) in zip(row, row[1:]):
            assert x0 + w0 <= x1 + EPS, "%s: %s and %s overlap at depth %d" % (what, t0, t1, d)
        if d == 0:
            continue
        for x, w, t in row:
            assert any(px - EPS <= x and x + w <= px + pw + EPS for px, pw, _ in by_depth[d - 1]), \
                "%s: %s (x %.6f-%.6f, depth %d) lies in no frame of depth %d" % (
                    what, t, x, x + w, d, d - 1)


TITLE = re.compile(r"^(.*) \((\d+) -> (\d+), ")


def test_figures_diff_flame_frames_fit():
    """A one-function program built twice, the function named old_path, then new_path: the diff
    flame graph gives each its own frame under main, one only in BASE, one only in NEW, half the
    picture each; nothing is drawn outside the picture (old_path was at x 1-2 of 0-1). The same
    holds for diffs of a larger tree both ways, and a plain flame graph is unchanged: each frame
    as wide as its share of the total."""
    told, old = onefn("old_path", 1000)
    tnew, new = onefn("new_path", 1000)
    svg = os.path.join(lib.tmpdir(), "diff.svg")
    clean_run("flame", old, new, "-o", svg)
    frames = svg_frames(svg)
    check_nesting(frames, "old_path -> new_path")
    sides = {}
    for d, x, w, title, _ in frames:
        m = TITLE.match(title)
        assert m, title
        sides[m.group(1)] = (d, x, w, int(m.group(2)), int(m.group(3)))
    assert sides["old_path"][3:] == (told["objects"], 0), sides["old_path"]
    assert sides["new_path"][3:] == (0, tnew["objects"]), sides["new_path"]
    # main's width: what it allocates itself (the stdout buffer; the larger side) and both
    # children side by side, each as wide as its one side
    main = sides["main"]
    own = max(main[3] - told["objects"], main[4] - tnew["objects"])
    unit = main[2] / (own + told["objects"] + tnew["objects"])
    for fn, t in (("old_path", told), ("new_path", tnew)):
        d, x, w = sides[fn][:3]
        assert d == main[0] + 1 and abs(w - t["objects"] * unit) < EPS, (fn, sides[fn], main)

    # a larger tree, both ways
    sites = lib.build_prog("report_sites_O2", ["report_sites.c"], flags=["-O2", "-g"])
    dumps = []
    for scale in ("1", "3"):
        cp, dump = lib.run_profiled([sites, scale])
        assert cp.returncode == 0
        dumps.append(dump)
    for a, b in ((dumps[0], dumps[1]), (dumps[1], dumps[0]), (old, dumps[0])):
        clean_run("flame", a, b, "-o", svg)
        check_nesting(svg_frames(svg), "%s -> %s" % (a, b))
    # one profile: widths are the values' shares, as before
    clean_run("flame", dumps[1], "-o", svg)
    frames = svg_frames(svg)
    check_nesting(frames, dumps[1])
    total = lib.profile_json([dumps[1]])["totals"]["alloc_objects"]
    for d, x, w, title, _ in frames:
        v = int(re.match(r"^.* \((\d+), ", title).group(1))
        assert abs(w - v / total) < EPS, (title, w, v, total)


# ---- 2. the snapshots of one process are counted once ----

def snapshots():
    """Runs robust_ondemand, which asks for two dumps with MAPPROF_SIGNAL between its phases and
    prints its cumulative counts before each. Returns (binary, exit dump, [dump.1, dump.2],
    {sequence: truth})."""
    prog = robust.build("robust_ondemand")
    out = lib.tmpdir()
    cp, final = lib.run_profiled([prog, "signal", out, str(int(signal.SIGUSR2))],
                                 env={"MAPPROF_SIGNAL": "USR2"},
                                 out=os.path.join(out, "%p.dump"), timeout=60)
    assert cp.returncode == 0, cp.stderr[-500:]
    truths = {t["checks"]["seq"]: t for t in lib.json_lines(cp.stdout)}
    snaps = ["%s.%d" % (final, n) for n in (1, 2)]
    assert sorted(truths) == [0, 1, 2] and all(os.path.exists(p) for p in snaps + [final])
    for n, path in enumerate([final] + snaps):
        assert lib.read_dump(path)["info"]["sequence"] == n
    return prog, final, snaps, truths


def site_flats(top):
    return {r["name"]: r["flat"] for r in top["rows"] if r["name"].startswith("site_")}


def want_sites(truth):
    return {k: v["objects"] for k, v in truth["sites"].items() if v["objects"]}


def test_figures_snapshots_counted_once():
    """`mapprof top X.dump*` over a process's exit dump and its two snapshots shows exactly what
    the program made (the snapshots hold counts the exit dump holds too), in any order, and says
    once which dumps it left out; the two snapshots alone give the later one's counts; export
    lists one dump; merge writes the exit dump's totals; diff of a snapshot against the exit
    dump (two operands) still shows what was made in between; a file given twice counts once;
    another process's dump still adds."""
    prog, final, snaps, truths = snapshots()
    final_totals = lib.read_dump(final)["totals"]
    for order in ([final] + snaps, snaps[::-1] + [final], [snaps[1], final, snaps[0]]):
        out, err = clean_run("top", "--json", "-n", "0", *order)
        top = json.loads(out)
        assert site_flats(top) == want_sites(truths[0]), (order, site_flats(top))
        assert top["total"] == final_totals["alloc_objects"], (top["total"], final_totals)
        msgs = messages(err)
        assert len(msgs) == 1, msgs
        left = [p for p in order if p != final]
        assert msgs[0].startswith("mapprof: %s: earlier snapshots of the process in %s (pid " %
                                  (", ".join(left), final)) and "left out" in msgs[0], msgs
    # the snapshots alone: the later one
    out, err = clean_run("top", "--json", "-n", "0", *snaps)
    assert site_flats(json.loads(out)) == want_sites(truths[2])
    assert messages(err) == ["mapprof: %s: an earlier snapshot of the process in %s (pid %d), "
                             "left out (each snapshot holds all the allocations before it)" % (
                                 snaps[0], snaps[1], truths[0]["pid"])], err
    # export and merge go through the same loading
    prof = json.loads(clean_run("export", final, *snaps)[0])
    assert [d["sequence"] for d in prof["dumps"]] == [0], prof["dumps"]
    assert prof["totals"] == final_totals
    merged = os.path.join(lib.tmpdir(), "merged.dump")
    clean_run("merge", *snaps, final, "-o", merged)
    m = lib.read_dump(merged)
    assert m["totals"] == final_totals and m["info"]["pid"] == truths[0]["pid"], m["totals"]
    assert m["info"]["threads"] == lib.read_dump(final)["info"]["threads"]
    # diff takes two operands: a snapshot against the exit dump is what happened in between
    d = json.loads(clean_run("diff", "--json", "-n", "0", snaps[0], final)[0])
    fn = {f["name"]: f for f in d["functions"]}
    for site in ("site_phase2", "site_phase3"):
        grew = truths[0]["sites"][site]["objects"] - truths[1]["sites"][site]["objects"]
        assert grew > 0 and fn[site]["new_flat"] - fn[site]["base_flat"] == grew, (site, fn)
    assert d["base_total"] == lib.read_dump(snaps[0])["totals"]["alloc_objects"]
    assert d["new_total"] == final_totals["alloc_objects"]
    # the same file twice
    out, err = clean_run("top", "--json", "-n", "0", final, final)
    assert site_flats(json.loads(out)) == want_sites(truths[0])
    assert len(messages(err)) == 1 and "a copy of the snapshot" in err, err
    # another process adds up
    sites = lib.build_prog("report_sites_O2", ["report_sites.c"], flags=["-O2", "-g"])
    cp, other = lib.run_profiled([sites, "1"])
    out, err = clean_run("top", "--json", "-n", "0", snaps[0], other)
    assert json.loads(out)["total"] == lib.read_dump(snaps[0])["totals"]["alloc_objects"] + \
        lib.read_dump(other)["totals"]["alloc_objects"]
    assert not messages(err), err


# ---- 3. JSON is UTF-8 ----

def build_in(dirname, srcname):
    """report_sites.c copied into DIRNAME/SRCNAME (str, may hold surrogate-escaped bytes) and
    built there with its absolute path in the debug information; returns (source, binary)."""
    os.makedirs(dirname)
    src = os.path.join(dirname, srcname)
    with open(os.path.join(PROGS, "report_sites.c"), "rb") as f, open(src, "wb") as g:
        g.write(f.read())
    exe = os.path.join(dirname, "prog")
    cp = subprocess.run(["gcc", "-std=gnu11", "-O2", "-g", "-o", exe, src], capture_output=True,
                        text=True)
    assert cp.returncode == 0, cp.stderr[-1000:]
    return src, exe


def test_figures_json_utf8_paths():
    """A program built in a directory named in UTF-8 (accents, a euro sign, U+2028): the JSON
    export, top and tree give its executable and source paths exactly, as UTF-8 (U+2028
    escaped); before, each byte became a \\u00XX character ("café" read "cafÃ©"). A directory
    whose name is not UTF-8 gives valid JSON with U+FFFD for each ill-formed sequence, as
    Python's decoder replaces them, and a well-formed flame graph."""
    base = lib.tmpdir()
    name = "caf\u00e9 \u00fcber\u2028\u20ac"
    src, exe = build_in(os.path.join(base, name), "na\u00efve.c")
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0, cp.stderr[-500:]
    out = clean_run("export", dump)[0]
    assert "caf\u00e9" in out and "\\u2028" in out and "\u2028" not in out
    prof = json.loads(out)
    assert prof["dumps"][0]["exe"] == exe, (prof["dumps"][0]["exe"], exe)
    files = {f["file"] for c in prof["chains"] for f in c["frames"]
             if f["function"] == "leaf_alpha"}
    assert files == {src}, (files, src)
    top = json.loads(clean_run("top", "--json", "--lines", "-n", "0", dump)[0])
    assert {r["file"] for r in top["rows"] if r["name"] == "leaf_alpha"} == {src}
    tree = json.loads(clean_run("tree", "--json", "--lines", dump)[0])["tree"]
    keys, stack = [], [tree]
    while stack:
        n = stack.pop()
        keys.append(n["name"])
        stack.extend(n["children"])
    assert any(k.startswith("leaf_alpha " + src + ":") for k in keys), keys

    raw = b"bad\xff\xe2\x82-\xed\xa0\x80-\xc0\xaf-\xf4\x90\x80\x80-ok\xc3\xa9"
    src, exe = build_in(os.path.join(base, os.fsdecode(raw)), "x.c")
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0, cp.stderr[-500:]
    prof = json.loads(clean_run("export", dump)[0])  # strict UTF-8, then JSON
    want = os.fsencode(src).decode("utf-8", "replace")
    assert "\ufffd" in want and want.endswith("-ok\u00e9/x.c")
    assert prof["dumps"][0]["exe"] == os.fsencode(exe).decode("utf-8", "replace")
    files = {f["file"] for c in prof["chains"] for f in c["frames"]
             if f["function"] == "leaf_alpha"}
    assert files == {want}, (files, want)
    # the SVG is XML in UTF-8: the same replacement keeps it well-formed
    svg = os.path.join(base, "lines.svg")
    clean_run("flame", "--lines", dump, "-o", svg)
    titles = [g.find(SVG + "title").text for g in ET.parse(svg).getroot().iter(SVG + "g")
              if g.get("class") == "f"]
    assert any(t.startswith("leaf_alpha " + want + ":") for t in titles), titles


# ---- 4. -n 0 is all, and JSON selects what the text shows ----

def rec(tag, payload):
    return struct.pack("<IIQ", tag, 0, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def make_dump(chains, pid=7, start_ns=1, end_ns=2, sequence=0, period=0):
    """A valid version 2 dump: CHAINS is [(addresses, [(log2, objects, bytes, min, max)])], each
    address a frame outside every module (shown as 0x..)."""
    info = struct.pack("<QQQQIIIIQQQ", pid, 1, start_ns, end_ns, 1 | (2 if period else 0), 64,
                       0, sequence, period, 0, 1)
    out = b"MAPPROF\0" + struct.pack("<II", 2, 16) + rec(1, info) + rec(2, b"/nonexistent/prog")
    out += rec(3, b"prog\0")
    frames, index = [], {}
    for addrs, _ in chains:
        for a in addrs:
            if a not in index:
                index[a] = len(frames)
                frames.append(struct.pack("<IIQ", 0xFFFFFFFF, 0, a))
    out += rec(6, b"".join(frames))
    tot = [0, 0]
    for i, (addrs, classes) in enumerate(chains):
        objs, space = sum(c[1] for c in classes), sum(c[2] for c in classes)
        ids = struct.pack("<%dI" % len(addrs), *[index[a] for a in addrs])
        ids += b"\0" * (-len(ids) % 8)
        out += rec(5, struct.pack("<IIIIQQQQ", i, 0, len(addrs), len(classes), objs, space, 0,
                                  0) + ids + b"".join(struct.pack("<IIQQQQ", *(c[:1] + (0,) +
                                                                               c[1:]))
                                                      for c in classes))
        tot[0] += objs
        tot[1] += space
    return out + rec(0x454E44, struct.pack("<QQQQQQ", len(chains), 0, tot[0], tot[1], 0, 0))


def write(name, data):
    path = os.path.join(lib.tmpdir(), name)
    with open(path, "wb") as f:
        f.write(data)
    lib.read_dump(path)  # the independent reader accepts it
    return path


def test_figures_diff_nodecount():
    """30 functions, each grown from BASE to NEW: the text diff shows 20 rows of each table by
    default and says how many more changed (the function table said nothing), -n 5 shows 5, and
    -n 0 shows all 30 (it showed 20); the JSON shows all by default, N with -n N."""
    n = 30
    base = write("base.dump", make_dump([([0x1000 + 16 * i], [(5, i + 1, 16 * (i + 1), 16, 16)])
                                         for i in range(n)]))
    new = write("new.dump", make_dump([([0x1000 + 16 * i], [(5, 2 * i + 2, 32 * (i + 1), 16, 16)])
                                        for i in range(n)]))

    def tables(*opts):
        out = clean_run("diff", *opts, base, new)[0]
        funcs = re.findall(r"^ .* (0x[0-9a-f]+)$", out.split("Per chain")[0], re.M)
        chains = re.findall(r"^ .*  (0x[0-9a-f]+)$", out.split("Per chain")[1], re.M)
        more = re.findall(r"\((\d+) more changed (functions|chains); --nodecount 0 shows all\)",
                          out)
        return len(funcs), len(chains), sorted(more, key=lambda m: m[1])

    assert tables() == (20, 20, [("10", "chains"), ("10", "functions")]), tables()
    assert tables("-n", "5") == (5, 5, [("25", "chains"), ("25", "functions")])
    assert tables("-n", "0") == (n, n, []), tables("-n", "0")
    assert tables("-n", "40") == (n, n, [])
    for opts, rows in (((), n), (("-n", "0"), n), (("-n", "7"), 7)):
        d = json.loads(clean_run("diff", "--json", *opts, base, new)[0])
        assert len(d["functions"]) == rows and len(d["chains"]) == rows, (opts, d)
    # largest change first
    d = json.loads(clean_run("diff", "--json", "-n", "1", base, new)[0])
    assert d["functions"][0]["name"] == "0x%x" % (0x1000 + 16 * (n - 1))


def text_tree(lines, depth0):
    """(depth, name, value) of trie_print's lines: "%10s %6.2f%%  " then two spaces a level."""
    out = []
    for l in lines:
        value, rest = l[:10].strip(), l[20:]
        name = rest.lstrip(" ")
        name = re.sub(r"  \(self [^)]*\)$", "", name)
        out.append(((len(rest) - len(name)) // 2 - depth0, name, int(value)))
    return out


def json_tree(node, depth=0):
    out = []
    for c in node["children"]:
        # the text marks an inlined frame, the JSON has "inlined": true
        out.append((depth, c["name"] + (" (inlined)" if c.get("inlined") else ""), c["value"]))
        if c["name"].endswith(" more)"):
            assert c["folded"] == int(c["name"][1:].split()[0]) and not c["children"], c
        out += json_tree(c, depth + 1)
    return out


def test_figures_tree_peek_json_nodecount():
    """tree --json and peek --json show the nodes their text shows, with -n N (at most N children
    a node) and tree's folding of nodes under 0.1%: the rest is one "(N more)" child, as the
    text's line (the JSON ignored both and listed every node)."""
    sites = lib.build_prog("report_sites_O2", ["report_sites.c"], flags=["-O2", "-g"])
    cp, dump = lib.run_profiled([sites, "10"])
    assert cp.returncode == 0
    for opts in ((), ("-n", "1"), ("-n", "2"), ("-n", "0")):
        text = clean_run("tree", *opts, dump)[0].splitlines()
        i = next(i for i, l in enumerate(text) if l.strip() == "cum   cum%")
        want = text_tree(text[i + 1:], 0)
        got = json_tree(json.loads(clean_run("tree", "--json", *opts, dump)[0])["tree"])
        assert got == want, (opts, got, want)
        if opts == ("-n", "1"):
            assert any(name == "(1 more)" for _, name, _ in got), got
        if not opts:  # the stdout buffer's one allocation is under 0.1% of 2,571
            assert any(name.endswith(" more)") for _, name, _ in got), got
        if opts in ((), ("-n", "0")):
            # inner_gamma is inlined into outer_delta (report_sites.c): marked, not a call
            assert any(name == "inner_gamma (inlined)" for _, name, _ in got), got
            assert not any(name == "inner_gamma" for _, name, _ in got), got
    for opts in ((), ("-n", "1"), ("-n", "0")):
        text = clean_run("peek", *opts, "^main$", dump)[0].splitlines()
        i = text.index("  callees (down to the allocator):")
        want = text_tree(text[i + 1:], 2)
        (fn,) = json.loads(clean_run("peek", "--json", *opts, "^main$", dump)[0])["functions"]
        got = json_tree(fn["callees"])
        assert got == want, (opts, got, want)
        if opts == ("-n", "1"):
            assert got[-1][1].endswith(" more)") and got[-1][0] == 0, got


# ---- 5. counts near 2^64 ----

U64 = 2**64 - 1


def test_figures_tree_nodefraction():
    """--nodefraction F folds the nodes under F of the total (0.1% by default, as before);
    0 folds none, so the one allocation of the stdout buffer (1 of 2,571) shows; above 1 is a
    usage error, as is the option outside tree."""
    sites = lib.build_prog("report_sites_O2", ["report_sites.c"], flags=["-O2", "-g"])
    cp, dump = lib.run_profiled([sites, "10"])
    assert cp.returncode == 0
    default = json_tree(json.loads(clean_run("tree", "--json", dump)[0])["tree"])
    assert json_tree(json.loads(clean_run("tree", "--json", "--nodefraction", "0.001",
                                          dump)[0])["tree"]) == default
    everything = json_tree(json.loads(clean_run("tree", "--json", "-nodefraction=0",
                                                dump)[0])["tree"])
    assert not any(name.endswith(" more)") for _, name, _ in everything), everything
    assert sum(v for d, _, v in everything if d == 4) == 2571, everything
    # at 30%, under main only mid_epsilon (1,500) and leaf_alpha (1,000) stay
    big = json_tree(json.loads(clean_run("tree", "--json", "--nodefraction", ".3",
                                         dump)[0])["tree"])
    assert [(n, v) for d, n, v in big if d == 4] == [("mid_epsilon", 1500), ("leaf_alpha", 1000),
                                                     ("(2 more)", 71)], big
    text = clean_run("tree", "--nodefraction", "0", dump)[0]
    assert "(callers above callees)" in text and "folded" not in text, text[:400]
    for bad in (("tree", "--nodefraction", "2"), ("top", "--nodefraction", "0")):
        cp = lib.mapprof(*bad, dump, check=False)
        assert cp.returncode == 1 and "nodefraction" in cp.stderr, (bad, cp.stderr)


def test_figures_diff_huge_values():
    """A dump the loader accepts with 2^63 bytes in one chain (size class 64) against one of 16
    bytes: diff both ways gives the exact delta, signed, in JSON and text (UBSan stopped it:
    negation of INT64_MIN, signed overflow), and a flame graph and merge of it work."""
    small = write("small.dump", make_dump([([0x1000], [(5, 1, 16, 16, 16)])]))
    big = write("big63.dump", make_dump([([0x1000], [(64, 1, 2**63, 2**63, 2**63)])], pid=8))
    for a, b, sign in ((small, big, 1), (big, small, -1)):
        d = json.loads(clean_run("diff", "--json", "--sample", "alloc_space", a, b)[0])
        assert d["delta"] == sign * (2**63 - 16), d
        assert d["base_total"] == (16 if sign > 0 else 2**63), d
        (f,) = d["functions"]
        assert (f["base_flat"], f["new_flat"]) == ((16, 2**63) if sign > 0 else (2**63, 16)), f
        out = clean_run("diff", "--sample", "alloc_space", a, b)[0]
        delta = "+8192PB" if sign > 0 else "-8192PB"
        assert re.search(r"^Total alloc_space: .* \(%s, [+-][\d.]+%%\)$" % re.escape(delta), out,
                         re.M), out
        rows = [l for l in out.splitlines() if l.endswith(" 0x1000")]
        assert len(rows) == 2 and all(delta in r for r in rows), rows
        svg = os.path.join(lib.tmpdir(), "huge.svg")
        clean_run("flame", "--sample", "alloc_space", a, b, "-o", svg)
        check_nesting(svg_frames(svg), "huge diff")
    # two such dumps of two processes: the sum is capped, not wrapped around
    big2 = write("big63b.dump", make_dump([([0x1000], [(64, 1, 2**63 + 5, 2**63 + 5,
                                                           2**63 + 5)])], pid=9))
    top = json.loads(clean_run("top", "--json", "--sample", "alloc_space", big, big2)[0])
    assert top["total"] == U64 and top["rows"][0]["flat"] == U64, top


def scale(n, size, period):
    """The documented estimate of N sampled requests of SIZE bytes: N / (1 - exp(-SIZE/P)),
    rounded half away from zero."""
    import math
    x = n / (1.0 - math.exp(-size / period))
    return int(math.floor(x + 0.5))


def test_figures_sampled_estimates_capped():
    """Sampled at 2^40 bytes, 2^40 samples of 1-byte requests stand for about 2^80 requests: the
    estimate is capped at 2^64 - 1 (it read 9223372036854775808, llround's out-of-range value)
    and one line says so; 2^20 samples (about 2^60) are scaled exactly as documented, and
    merge writes the capped profile as a valid dump."""
    period = 2**40
    capped = write("capped.dump", make_dump([([0x1000], [(1, 2**40, 2**40, 1, 1)])],
                                            period=period))
    out, err = clean_run("export", capped)
    prof = json.loads(out)
    assert prof["totals"]["alloc_objects"] == U64 and prof["totals"]["alloc_space"] == U64, \
        prof["totals"]
    (c,) = prof["chains"]
    assert c["sizes"][0]["objects"] == U64 and c["sizes"][0]["bytes"] == U64, c["sizes"]
    msgs = messages(err)
    assert msgs == ["mapprof: %s: some sampled estimates are 2^64 or more and are shown as %d, "
                    "the largest 64-bit count" % (capped, U64)], err
    out = clean_run("top", capped)[0]
    assert "alloc_objects %d," % U64 in out, out
    fits = write("fits.dump", make_dump([([0x1000], [(1, 2**20, 2**20, 1, 1)])], period=period))
    out, err = clean_run("export", fits)
    prof = json.loads(out)
    want = scale(2**20, 1, period)
    assert 2**59 < want < 2**61 and not messages(err), (want, err)
    assert abs(prof["totals"]["alloc_objects"] - want) <= 1, (prof["totals"], want)
    assert prof["totals"]["alloc_space"] == prof["totals"]["alloc_objects"]
    merged = os.path.join(lib.tmpdir(), "capped-merged.dump")
    clean_run("merge", capped, "-o", merged)
    assert lib.read_dump(merged)["totals"]["alloc_objects"] == U64
