"""test_report_exports.py: the exports read by other tools. Collapsed stacks add up to the
profile; the pprof export read by `go tool pprof` shows the same totals and top functions as
`mapprof top` for all four sample types, addresses without a symbol (a stripped library's)
included; the SVG flame graph is well-formed, self-contained, highlights the growth chains and,
as a diff, colours growth and shrink; headless Chromium renders it (screenshots checked pixel by
pixel) and runs its script (zoom and search). All on dumps of programs that count their own
allocations (tests/progs/report_sites.c, report_growth.c, report_stripped.c)."""
import gzip
import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import lib

PROGS = os.path.join(lib.ROOT, "tests", "progs")
SVG = "{http://www.w3.org/2000/svg}"


def text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def run(src, name, *args, flags=("-O2",)):
    exe = lib.build_prog(name, [os.path.join(PROGS, src)], flags=list(flags) + ["-g"])
    cp, dump = lib.run_profiled([exe] + [str(a) for a in args])
    assert cp.returncode == 0
    return json.loads([l for l in text(cp.stdout).splitlines() if l.startswith("{")][-1]), dump


def test_report_export_collapsed():
    truth, dump = run("report_sites.c", "report_sites_O2", 2)
    prof = lib.profile_json([dump])
    for sample in ("alloc_objects", "alloc_space"):
        out = text(lib.mapprof("export", "--format", "collapsed", "--sample", sample, dump).stdout)
        total = 0
        for line in out.splitlines():
            m = re.fullmatch(r"(\S.*) (\d+)", line)
            assert m, line
            total += int(m.group(2))
        assert total == prof["totals"][sample]
    out = text(lib.mapprof("export", "--format", "collapsed", dump).stdout)
    folded = dict(l.rsplit(" ", 1) for l in out.splitlines())
    key = [k for k in folded if k.endswith(";main;mid_epsilon;leaf_beta")]
    assert len(key) == 1 and int(folded[key[0]]) == truth["leaf_beta"]["objects"], folded
    # inner_gamma is inlined into outer_delta: marked as stackcollapse-perf.pl --inline does.
    key = [k for k in folded if k.endswith(";main;outer_delta;inner_gamma_[i]")]
    assert len(key) == 1 and int(folded[key[0]]) == truth["inner_gamma"]["objects"], folded
    assert not any(f.endswith("_[i]") for k in folded for f in k.split(";")
                   if f.split("_[i]")[0] in ("main", "outer_delta", "mid_epsilon", "leaf_beta"))


def test_report_export_collapsed_lines():
    """export --format collapsed --lines names each frame `function file:line`, as the views and
    flame do with --lines; it ignored --lines and wrote the function names alone."""
    truth, dump = run("report_sites.c", "report_sites_O2", 2)
    src = os.path.join(PROGS, "report_sites.c")
    with open(src) as f:
        line = [i for i, l in enumerate(f, 1) if "calloc(8, 8)" in l]
    out = text(lib.mapprof("export", "--format", "collapsed", "--lines", dump).stdout)
    folded = dict(l.rsplit(" ", 1) for l in out.splitlines())
    key = [k for k in folded if k.endswith(";leaf_beta %s:%d" % (src, line[0]))]
    assert len(key) == 1 and int(folded[key[0]]) == truth["leaf_beta"]["objects"], out
    assert ";main %s:" % src in key[0], key
    assert sum(map(int, folded.values())) == lib.profile_json([dump])["totals"]["alloc_objects"]


def test_report_export_json_with_another_format():
    """export --json with --format collapsed or pprof is a usage error (exit 1): it wrote the
    other format, silently ignoring --json, which the docs give export as its JSON switch.
    --json alone, or with --format json, is the JSON export."""
    _, dump = run("report_sites.c", "report_sites_O2", 1)
    for fmt in ("collapsed", "pprof"):
        out = os.path.join(lib.tmpdir("mapprof-export-"), "out")
        cp = lib.mapprof("export", "--json", "--format", fmt, dump, "-o", out, check=False)
        assert cp.returncode == 1, (fmt, cp.returncode, text(cp.stderr))
        assert "--json and --format %s" % fmt in text(cp.stderr), text(cp.stderr)
        assert not os.path.exists(out), fmt
    for args in (("--json",), ("--json", "--format", "json")):
        d = json.loads(text(lib.mapprof("export", *args, dump).stdout))
        assert d["format"] == "mapprof-profile", args


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    """Top-level protobuf fields: [(number, value)], value an int or bytes."""
    out, i = [], 0
    while i < len(b):
        key, i = varint(b, i)
        if key & 7 == 0:
            v, i = varint(b, i)
        elif key & 7 == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise AssertionError("wire type %d" % (key & 7))
        out.append((key >> 3, v))
    return out


def test_report_export_pprof_structure():
    """Decoded by hand (profile.proto): four sample types, sample values that sum to the
    profile's totals, a Mapping with the executable's build-id, Locations with inline Lines."""
    truth, dump = run("report_sites.c", "report_sites_O2", 1)
    out = os.path.join(lib.tmpdir(), "sites.pb.gz")
    lib.mapprof("export", "--format", "pprof", "-o", out, dump)
    with gzip.open(out) as f:
        top = fields(f.read())
    strings = [v.decode() for n, v in top if n == 6]
    assert strings[0] == ""
    types = [(strings[dict(fields(v))[1]], strings[dict(fields(v))[2]]) for n, v in top if n == 1]
    assert types == [("alloc_objects", "count"), ("alloc_space", "bytes"),
                     ("inuse_objects", "count"), ("inuse_space", "bytes")]
    sums = [0, 0, 0, 0]
    for n, v in top:
        if n == 2:
            vals = dict(fields(v))[2]
            k, i = 0, 0
            while i < len(vals):
                x, i = varint(vals, i)
                sums[k] += x
                k += 1
    prof = lib.profile_json([dump])
    assert sums == [prof["totals"][k] for k in prof["sample_types"]]
    exe_mod = [m for m in prof["modules"] if m["path"].endswith("report_sites_O2")][0]
    maps = [dict(fields(v)) for n, v in top if n == 3]
    assert any(strings[m[5]].endswith("report_sites_O2") and strings[m[6]] == exe_mod["build_id"]
               for m in maps), maps
    # the inner_gamma location has two lines: inner_gamma (inlined) then outer_delta
    funcs = {dict(fields(v))[1]: strings[dict(fields(v))[2]] for n, v in top if n == 5}
    locs = [[dict(fields(l)) for k, l in fields(v) if k == 4] for n, v in top if n == 4]
    assert any([funcs[l[1]] for l in ls] == ["inner_gamma", "outer_delta"] for ls in locs), locs


SAMPLES = ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space")


def go_pprof_top(go, profile, sample):
    """`go tool pprof -top` of every node, values in plain units. Returns (total, rows) with
    rows [(name, flat, cum)] in pprof's order."""
    tmp = lib.tmpdir("mapprof-go-")
    env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "cache"), GOFLAGS="-mod=mod",
               PPROF_TMPDIR=tmp, GOTOOLCHAIN="local")
    env.pop("LD_PRELOAD", None)
    r = subprocess.run([go, "tool", "pprof", "-top", "-nodecount=100000", "-nodefraction=0",
                        "-edgefraction=0", "-unit=B", "-sample_index=" + sample, profile],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-1000:]
    assert ("Type: %s\n" % sample) in r.stdout, r.stdout[:500]
    m = re.search(r"of (\d+)B? total", r.stdout)
    assert m, r.stdout
    rows = [(name, int(flat), int(cum)) for flat, cum, name in
            re.findall(r"^ *(\d+)B? +\S+% +\S+% +(\d+)B? +\S+% +(.+)$", r.stdout, re.M)]
    return int(m.group(1)), rows


def short(name):
    """A function name as both tools print it, for comparing: pprof marks a function seen only
    inlined with " (inline)" and keeps C++ return types ("std::pair std::_Hashtable::emplace");
    mapprof drops return types. An address without a symbol is "module+0xOFFSET" in both (the
    export gives it a Function of that name; without one pprof made one node "[module]" of all
    such addresses in a module)."""
    if name.endswith(" (inline)"):
        name = name[:-len(" (inline)")]
    return name.split(" ")[-1]


def check_go_round_trip(go, dump, truth=None):
    out = os.path.join(lib.tmpdir(), "profile.pb.gz")
    lib.mapprof("export", "--format", "pprof", "-o", out, dump)
    totals = lib.profile_json([dump])["totals"]
    for sample in SAMPLES:
        total, rows = go_pprof_top(go, out, sample)
        ours = json.loads(text(lib.mapprof("top", "--json", "--nodecount", "0", "--sample",
                                           sample, dump).stdout))
        # the same total, the one the dump holds
        assert total == ours["total"] == totals[sample], (sample, total, ours["total"])
        # the same functions with the same flat and cum values, an address without a symbol
        # included (its own row in both)
        theirs, mine = {}, {}
        for name, flat, cum in rows:
            e = theirs.setdefault(short(name), [0, 0, 0])
            e[0] += flat
            e[1] = max(e[1], cum)
            e[2] += 1
        for r in ours["rows"]:
            e = mine.setdefault(short(r["name"]), [0, 0, 0])
            e[0] += r["flat"]
            e[1] = max(e[1], r["cum"])
            e[2] += 1
        flat_t = {k: v[0] for k, v in theirs.items() if v[0]}
        flat_m = {k: v[0] for k, v in mine.items() if v[0]}
        assert flat_t == flat_m, (sample, flat_t, flat_m)
        for k, (flat, cum, n) in theirs.items():
            if n == 1 and mine.get(k, [0, 0, 0])[2] == 1:
                assert cum == mine[k][1], (sample, k, cum, mine[k])
        assert set(k for k, v in theirs.items() if v[1]) == set(k for k, v in mine.items()
                                                                 if v[1]), sample
        # the top functions in the same order (ties broken differently: pprof by name,
        # mapprof by cum, so equal values compare as sets)
        def levels(pairs):
            out = {}
            for name, flat in pairs:
                if flat:
                    out.setdefault(flat, set()).add(name)
            return [(v, out[v]) for v in sorted(out, reverse=True)][:3]
        order_t = [flat for n, flat, _ in rows if flat]
        assert order_t == sorted(order_t, reverse=True), rows
        order_m = [r["flat"] for r in ours["rows"] if r["flat"]]
        assert order_m == sorted(order_m, reverse=True), ours["rows"]
        top_t, top_m = levels(flat_t.items()), levels(flat_m.items())
        assert top_t == top_m, (sample, top_t, top_m)
        assert not [n for n, _, _ in rows if n.startswith("[")], (sample, rows)
        if truth:
            key = {"alloc_objects": "objects", "alloc_space": "bytes",
                   "inuse_objects": "inuse_objects", "inuse_space": "inuse_bytes"}[sample]
            assert flat_t["leaf_alpha"] == truth["leaf_alpha"][key], (sample, flat_t)


def test_report_export_pprof_go_tool():
    """`go tool pprof` reads the export and shows, for each of the four sample types, the same
    total and the same functions with the same flat and cum values as `mapprof top`: on a C
    program that counts its allocations, and on a C++ one whose frames are mostly inlined."""
    go = shutil.which("go")
    if not go:
        raise lib.Skip("go (Debian golang-go) is not installed")
    truth, dump = run("report_sites.c", "report_sites_O2", 3)
    check_go_round_trip(go, dump, truth)
    exe = lib.build_prog("report_umap_O2", [os.path.join(PROGS, "report_umap.cc")],
                         flags=["-O2", "-g"], lang="c++")
    cp, dump = lib.run_profiled([exe, "5000"])
    assert cp.returncode == 0
    check_go_round_trip(go, dump)


def stripped_dump(n):
    """A dump of tests/progs/report_stripped.c, whose allocations are made at three sites of a
    stripped shared library with no symbol for them: (truth, dump, library's file name)."""
    out = os.path.join(lib.BUILD, "tests")
    so = lib.build_prog("libreport_stripped.so", [os.path.join(PROGS, "report_stripped_lib.c")],
                        flags=["-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-s"])
    exe = lib.build_prog("report_stripped", [os.path.join(PROGS, "report_stripped.c"), so],
                         flags=["-O2", "-Wl,-rpath," + out])
    cp, dump = lib.run_profiled([exe, str(n)])
    assert cp.returncode == 0, cp.stderr
    truth = json.loads([l for l in text(cp.stdout).splitlines() if l.startswith("{")][-1])
    return truth, dump, os.path.basename(so)


def test_report_export_pprof_unnamed_frames():
    """Frames without a symbol (a stripped library's own code, python3.11's for one) are rows
    of their own in `mapprof top` ("libreport_stripped.so+0x1156"): the pprof export gives each
    such Location a Line of a Function of that name, so that every row of top is a Function
    with the same flat value. They were Locations without a Line, which `go tool pprof` folds
    into one node per module ("[libreport_stripped.so]")."""
    truth, dump, so = stripped_dump(100)
    out = os.path.join(lib.tmpdir(), "stripped.pb.gz")
    lib.mapprof("export", "--format", "pprof", "-o", out, dump)
    with gzip.open(out) as f:
        top = fields(f.read())
    strings = [v.decode() for n, v in top if n == 6]
    funcs = {dict(fields(v))[1]: strings[dict(fields(v))[2]] for n, v in top if n == 5}
    locs = {dict(fields(v))[1]: [funcs[dict(fields(l))[1]] for k, l in fields(v) if k == 4]
            for n, v in top if n == 4}
    assert all(locs.values()), "a Location without a Line: %s" % locs
    for si, sample in enumerate(SAMPLES):
        # flat per Function name, from the samples' innermost Location
        flat = {}
        for n, v in top:
            if n != 2:
                continue
            f = fields(v)
            ids = dict(f)[1]
            loc, _ = varint(ids, 0)
            vals, i = [], 0
            while i < len(dict(f)[2]):
                x, i = varint(dict(f)[2], i)
                vals.append(x)
            name = locs[loc][0]
            flat[name] = flat.get(name, 0) + vals[si]
        ours = json.loads(text(lib.mapprof("top", "--json", "--nodecount", "0", "--sample",
                                           sample, dump).stdout))
        for r in ours["rows"]:
            assert r["name"] in funcs.values(), (sample, r["name"], sorted(funcs.values()))
            assert flat.get(r["name"], 0) == r["flat"], (sample, r, flat)
        if sample == "alloc_objects":
            got = sorted(r["flat"] for r in ours["rows"] if r["name"].startswith(so + "+0x"))
            assert got == sorted(truth["objects"]), (got, truth, ours["rows"])
    go = shutil.which("go")
    if not go:
        raise lib.Skip("go (Debian golang-go) is not installed")
    for sample in SAMPLES:
        total, rows = go_pprof_top(go, out, sample)
        ours = json.loads(text(lib.mapprof("top", "--json", "--nodecount", "0", "--sample",
                                           sample, dump).stdout))
        theirs = {short(n): flat for n, flat, _ in rows if flat}
        mine = {short(r["name"]): r["flat"] for r in ours["rows"] if r["flat"]}
        assert theirs == mine, (sample, theirs, mine)
        assert len([n for n in theirs if n.startswith(so + "+0x")]) == \
            (3 if sample.startswith("alloc") else 1), (sample, theirs)
    check_go_round_trip(go, dump)


def parse_svg(path):
    with open(path) as f:
        data = f.read()
    root = ET.fromstring(data)
    assert root.tag == SVG + "svg"
    # self-contained: no external references of any kind
    assert not re.search(r"(href|src)\s*=", data), "external reference in the SVG"
    assert "<script" in data and "http" not in data.replace("http://www.w3.org/2000/svg", "")
    frames = [g for g in root.iter(SVG + "g") if g.get("class") == "f"]
    return data, frames


def test_report_flame_graph():
    truth, dump = run("report_growth.c", "report_growth_O2", "uthash", 20000)
    out = os.path.join(lib.tmpdir(), "flame.svg")
    lib.mapprof("flame", dump, "-o", out)
    data, frames = parse_svg(out)
    titles = [g.find(SVG + "title").text for g in frames]
    assert any(t.startswith("fill_uthash ") for t in titles), titles[:20]
    growth = [g for g in frames if g.get("data-g") == "1"]
    # the growth allocations get their own frame right under fill_uthash (which also allocates
    # the items); callers up to main are not highlighted
    (fill,) = [g for g in frames if g.find(SVG + "title").text.startswith("fill_uthash ")]
    marked = [g for g in growth if g.find(SVG + "title").text.startswith("(container growth)")]
    assert len(marked) == 1 and int(marked[0].get("data-d")) == int(fill.get("data-d")) + 1
    x, w = float(fill.get("data-x")), float(fill.get("data-w"))
    assert x <= float(marked[0].get("data-x")) < x + w
    assert not [g for g in growth if g.find(SVG + "title").text.startswith(("main ", "fill_"))]
    # widths: the root spans everything; children never exceed their parent
    root = [g for g in frames if g.get("data-d") == "0"]
    assert len(root) == 1 and abs(float(root[0].get("data-w")) - 1.0) < 1e-6
    # drawn in place without the script too (an <img> runs none): every frame has its
    # rectangle, rows stacked upwards by depth, wide frames labelled
    for g in frames:
        r = g.find(SVG + "rect")
        x, w = float(r.get("x")), float(r.get("width"))
        assert abs(x - 1200 * float(g.get("data-x"))) < 0.01 and 0 < w <= 1200
    ys = {int(g.get("data-d")): float(g.find(SVG + "rect").get("y")) for g in frames}
    assert all(ys[d] - ys[d + 1] == 16 for d in ys if d + 1 in ys), ys
    assert [g.find(SVG + "text").text for g in frames if
            g.find(SVG + "title").text.startswith("main ")] == ["main"]
    # a flat program has no growth frames
    truth, dump = run("report_growth.c", "report_growth_O2", "flat", 100000)
    lib.mapprof("flame", dump, "-o", out)
    data, frames = parse_svg(out)
    assert frames and not [g for g in frames if g.get("data-g") == "1"]
    assert lib.mapprof("flame", dump).stdout.startswith("<?xml")  # no -o: stdout, a pipe


def test_report_flame_diff():
    _, a = run("report_sites.c", "report_sites_O2", 1)
    _, b = run("report_sites.c", "report_sites_O2", 3)
    out = os.path.join(lib.tmpdir(), "diff.svg")
    lib.mapprof("flame", a, b, "-o", out)
    data, frames = parse_svg(out)
    fills = {g.find(SVG + "title").text.split(" (")[0]: g.find(SVG + "rect").get("fill")
             for g in frames}
    red = re.compile(r"rgb\(255,\d+,\d+\)")
    assert red.fullmatch(fills["leaf_alpha"]), fills
    out2 = os.path.join(lib.tmpdir(), "diff2.svg")
    lib.mapprof("flame", b, a, "-o", out2)
    data, frames = parse_svg(out2)
    fills = {g.find(SVG + "title").text.split(" (")[0]: g.find(SVG + "rect").get("fill")
             for g in frames}
    assert re.fullmatch(r"rgb\(\d+,\d+,255\)", fills["leaf_alpha"]), fills


# ---- the flame graph in a real browser (headless Chromium) ----

def chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise lib.Skip("no chromium (Debian package chromium) to render the SVG")
    return browser


def headless(browser, url, *args, timeout=90):
    """Runs headless Chromium on URL with ARGS (--dump-dom, --screenshot=...) and returns its
    stdout. It runs as root in CI: no sandbox, a fresh profile directory, and the whole process
    group killed if it outlives TIMEOUT seconds."""
    profile = lib.tmpdir("mapprof-chromium-")
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--hide-scrollbars", "--user-data-dir=" + profile] + list(args) + [url]
    env = dict(os.environ, HOME=profile)
    env.pop("LD_PRELOAD", None)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.communicate()
        raise AssertionError("chromium did not finish in %ds: %s" % (timeout, " ".join(cmd)))
    finally:
        try:
            os.killpg(p.pid, 9)  # helpers (zygote, GPU process) left behind, if any
        except ProcessLookupError:
            pass
    assert p.returncode == 0, "chromium exit %d: %s" % (p.returncode, text(err)[-1500:])
    return text(out)


def read_png(path):
    """(width, height, [(r, g, b)] row by row) of an 8-bit RGB or RGBA PNG (what Chromium's
    --screenshot writes), decoded here so the suite needs no imaging library."""
    import struct
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    i, idat, ihdr = 8, [], None
    while i < len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        body = data[i + 8:i + 8 + n]
        i += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    pixels = []
    for y in range(h):
        at = y * (stride + 1)
        kind, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind == 2:
            for x in range(stride):
                line[x] = (line[x] + prev[x]) & 255
        elif kind == 3:
            for x in range(stride):
                left = line[x - bpp] if x >= bpp else 0
                line[x] = (line[x] + ((left + prev[x]) >> 1)) & 255
        elif kind == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], prev[x - bpp] if x >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[x] = (line[x] + pred) & 255
        else:
            assert kind == 0, "PNG filter %d" % kind
        pixels.extend(tuple(line[x:x + 3]) for x in range(0, stride, bpp))
        prev = line
    return w, h, pixels


def frame_area(frames, pred):
    """Pixels the frames selected by PRED cover as drawn in the file (width x 15-pixel row)."""
    return sum(float(g.find(SVG + "rect").get("width")) * 15 for g in frames if pred(g))


def title(g):
    return g.find(SVG + "title").text


def test_report_flame_renders_in_a_browser():
    """Headless Chromium draws the flame graph: the screenshot is not blank, the frames show in
    the flame palette covering the area the SVG gives them, the growth chain's frame in the
    growth colour, labels in black."""
    browser = chromium()
    _, dump = run("report_growth.c", "report_growth_O2", "uthash", 20000)
    d = lib.tmpdir()
    svg = os.path.join(d, "flame.svg")
    lib.mapprof("flame", "--sample", "alloc_space", dump, "-o", svg)
    _, frames = parse_svg(svg)
    height = int(ET.parse(svg).getroot().get("height"))
    png = os.path.join(d, "flame.png")
    headless(browser, "file://" + svg, "--screenshot=" + png,
             "--window-size=1200,%d" % height)
    w, h, px = read_png(png)
    assert (w, h) == (1200, height), (w, h)
    colours = {}
    for p in px:
        colours[p] = colours.get(p, 0) + 1
    assert len(colours) > 20, "a blank or nearly blank screenshot: %s" % list(colours)[:10]
    background = colours.get((0xF8, 0xF8, 0xF0), 0)
    assert background > 0.2 * w * h, "no flame graph background"
    growth = [g for g in frames if g.get("data-g") == "1"]
    assert growth, "no growth frame in the SVG"
    # the growth frame's purple, over at least half the area the file gives it (labels and
    # anti-aliased edges take some)
    want = frame_area(frames, lambda g: g.get("data-g") == "1")
    got = colours.get((190, 60, 220), 0)
    assert want > 500 and 0.5 * want <= got <= want + 100, (got, want)
    # the other frames: the flame palette (red 205-254, green 80-199, blue 0-54)
    want = frame_area(frames, lambda g: g.get("data-g") != "1")
    got = sum(n for (r, g, b), n in colours.items() if r >= 205 and 80 <= g < 200 and b < 55)
    assert 0.5 * want <= got <= want + 100, (got, want)
    # labels drawn: dark text pixels
    dark = sum(n for (r, g, b), n in colours.items() if r < 80 and g < 80 and b < 80)
    assert dark > 200, dark


def test_report_flame_script_in_a_browser():
    """The SVG's own script runs in Chromium: loaded with ?s=RE&zoom=NAME (a shareable link), it
    zooms into the named frame (full width, frames outside hidden) and highlights the search
    matches, as the DOM after the script and a screenshot both show."""
    browser = chromium()
    _, dump = run("report_sites.c", "report_sites_O2", 1)
    d = lib.tmpdir()
    svg = os.path.join(d, "flame.svg")
    lib.mapprof("flame", dump, "-o", svg)
    _, frames = parse_svg(svg)
    leaves = [g for g in frames if title(g).startswith("leaf_")]
    assert len(leaves) == 3, [title(g) for g in frames]  # main->leaf_alpha, mid->alpha, beta
    url = "file://" + svg + "?s=%5Eleaf_&zoom=mid_epsilon"
    dom = headless(browser, url, "--dump-dom", "--virtual-time-budget=5000")
    assert "matched %d frames" % len(leaves) in dom, dom[-3000:]
    gs = re.findall(r'<g class="f"[^>]*>.*?</g>', dom, re.S)
    assert len(gs) == len(frames), (len(gs), len(frames))

    def drawn(name):
        out = []
        for g in gs:
            if re.search(r"<title>%s \(" % re.escape(name), g):
                style = re.search(r'style="([^"]*)"', g)
                rect = re.search(r"<rect[^>]*>", g).group(0)
                out.append((style.group(1) if style else "", rect))
        assert out, name
        return out

    # zoomed: mid_epsilon spans the width, outer_delta (not under it) is hidden
    ((style, rect),) = drawn("mid_epsilon")
    assert 'width="1199.5"' in rect and "display: none" not in style, (style, rect)
    for style, rect in drawn("outer_delta"):
        assert "display: none" in style, style
    # highlighted: every leaf_ frame, and nothing else
    hits = [g for g in gs if 'fill="rgb(230,0,230)"' in g]
    assert len(hits) == len(leaves), hits
    assert all(re.search(r"<title>leaf_", g) for g in hits)
    # and the picture: the two leaves under mid_epsilon, now the full width, in magenta
    png = os.path.join(d, "zoom.png")
    height = int(ET.parse(svg).getroot().get("height"))
    headless(browser, url, "--screenshot=" + png, "--window-size=1200,%d" % height,
             "--virtual-time-budget=5000")
    w, h, px = read_png(png)
    magenta = sum(1 for p in px if p == (230, 0, 230))
    assert magenta >= 0.5 * 1200 * 15, magenta


def test_report_flame_diff_in_a_browser():
    """A diff flame graph in Chromium: every frame grew from BASE to NEW, so the picture has
    red frames and no blue ones; the other way round, blue and no red."""
    browser = chromium()
    _, a = run("report_sites.c", "report_sites_O2", 1)
    _, b = run("report_sites.c", "report_sites_O2", 3)
    d = lib.tmpdir()
    for base, new, grew in ((a, b, True), (b, a, False)):
        svg = os.path.join(d, "diff.svg")
        lib.mapprof("flame", base, new, "-o", svg)
        height = int(ET.parse(svg).getroot().get("height"))
        png = os.path.join(d, "diff.png")
        headless(browser, "file://" + svg, "--screenshot=" + png,
                 "--window-size=1200,%d" % height)
        w, h, px = read_png(png)
        red = sum(1 for r, g, b in px if r == 255 and g == b and g < 200)
        blue = sum(1 for r, g, b in px if b == 255 and r == g and r < 200)
        big, small = (red, blue) if grew else (blue, red)
        assert big > 1200 * 15 and small == 0, (grew, red, blue)


FAKE_DOM = r"""
const fs = require('fs');
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
function el(attrs, title) {
  const e = {attrs: Object.assign({}, attrs), style: {}, handlers: {}, textContent: title || '',
    kids: {},
    getAttribute(k) { return k in this.attrs ? String(this.attrs[k]) : null; },
    setAttribute(k, v) { this.attrs[k] = v; },
    addEventListener(t, f) { this.handlers[t] = f; },
    dispatchEvent(ev) { if (this.handlers[ev.type]) this.handlers[ev.type](ev); },
    querySelector(sel) { return this.kids[sel]; }};
  return e;
}
const frames = spec.map(f => {
  const g = el({'data-x': f.x, 'data-w': f.w, 'data-d': f.d});
  g.kids.title = el({}, f.title);
  g.kids.rect = el({fill: f.fill});
  g.kids.text = el({});
  return g;
});
const byId = {details: el({}), found: el({}), reset: el({}), search: el({})};
global.Event = function (t) { this.type = t; };
global.prompt = () => 'leaf_';
global.document = {
  querySelectorAll: () => frames, getElementById: id => byId[id],
  addEventListener() {}, documentElement: {}};
eval(fs.readFileSync(process.argv[3], 'utf8'));
const out = {initial: frames.map(g => [g.kids.rect.attrs.width, g.kids.text.textContent,
                                        g.style.display || ''])};
const target = frames.findIndex(g => g.kids.title.textContent.startsWith(spec.zoom_to));
frames[target].handlers.click();
out.zoomed = frames.map(g => [g.kids.rect.attrs.width, g.style.display || '']);
byId.search.handlers.click();
out.search = frames.map(g => g.kids.rect.attrs.fill);
out.found = byId.found.textContent;
byId.reset.handlers.click();
out.reset = frames.map(g => g.kids.rect.attrs.width);
console.log(JSON.stringify(out));
"""


def test_report_flame_script_runs():
    """The flame graph's own script, run by node against a minimal stand-in for the SVG DOM:
    it lays out and labels every frame, zooms into a clicked frame (which then spans the full
    width while frames outside it are hidden), highlights search matches, and resets."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise lib.Skip("no node to run the SVG's script")
    _, dump = run("report_sites.c", "report_sites_O2", 1)
    d = lib.tmpdir()
    svg = os.path.join(d, "flame.svg")
    lib.mapprof("flame", dump, "-o", svg)
    data, frames = parse_svg(svg)
    script = re.search(r"<!\[CDATA\[(.*)\]\]>", data, re.S).group(1)
    spec = [{"x": float(g.get("data-x")), "w": float(g.get("data-w")), "d": int(g.get("data-d")),
             "title": g.find(SVG + "title").text, "fill": g.find(SVG + "rect").get("fill")}
            for g in frames]
    with open(os.path.join(d, "spec.json"), "w") as f:
        json.dump(spec, f)
    with open(os.path.join(d, "script.js"), "w") as f:
        f.write(script)
    with open(os.path.join(d, "dom.js"), "w") as f:
        f.write(FAKE_DOM.replace("spec.zoom_to", "'mid_epsilon'"))
    r = subprocess.run([node, os.path.join(d, "dom.js"), os.path.join(d, "spec.json"),
                        os.path.join(d, "script.js")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    names = [s["title"].split(" (")[0] for s in spec]
    i = names.index("mid_epsilon")
    # initial layout: the root spans the width, wide frames are labelled with their names
    assert abs(float(out["initial"][names.index("all")][0]) - 1199.5) < 1e-6
    assert out["initial"][names.index("main")][1] == "main"
    # zoomed: mid_epsilon spans the width, its child leaf_beta is drawn, outer_delta is hidden
    assert abs(float(out["zoomed"][i][0]) - 1199.5) < 1e-6, out["zoomed"][i]
    assert out["zoomed"][names.index("leaf_beta")][1] == ""
    assert out["zoomed"][names.index("outer_delta")][1] == "none"
    # search 'leaf_' highlights exactly the leaf frames
    hits = [n for n, fill in zip(names, out["search"]) if fill == "rgb(230,0,230)"]
    assert sorted(set(hits)) == ["leaf_alpha", "leaf_beta"], hits
    assert out["found"] == "matched %d frames" % len(hits)
    assert out["reset"] == [w for w, _, _ in out["initial"]]
