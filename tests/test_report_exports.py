"""test_report_exports.py: the exports read by other tools. Collapsed stacks add up to the
profile; the pprof export read by `go tool pprof` shows the same totals and top functions as
`mapprof top`; the SVG flame graph is well-formed, self-contained, highlights the growth chains
and, as a diff, colours growth and shrink. All on dumps of programs that count their own
allocations (tests/progs/report_sites.c, report_growth.c)."""
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
    key = [k for k in folded if k.endswith(";main;outer_delta;inner_gamma")]
    assert len(key) == 1 and int(folded[key[0]]) == truth["inner_gamma"]["objects"]


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


def test_report_export_pprof_go_tool():
    go = shutil.which("go")
    if not go:
        raise lib.Skip("go (Debian golang-go) is not installed")
    truth, dump = run("report_sites.c", "report_sites_O2", 3)
    out = os.path.join(lib.tmpdir(), "sites.pb.gz")
    lib.mapprof("export", "--format", "pprof", "-o", out, dump)
    env = dict(os.environ, HOME=lib.tmpdir(), GOCACHE=lib.tmpdir(), GOFLAGS="-mod=mod",
               PPROF_TMPDIR=lib.tmpdir())
    for sample in ("alloc_objects", "alloc_space"):
        r = subprocess.run([go, "tool", "pprof", "-top", "-nodecount=5", "-sample_index=" + sample,
                            out], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-1000:]
        ours = json.loads(text(lib.mapprof("top", "--json", "--sample", sample, dump).stdout))
        m = re.search(r"of (\S+) total", r.stdout)
        assert m, r.stdout
        if sample == "alloc_objects":
            assert int(m.group(1)) == ours["total"], (r.stdout, ours["total"])
        rows = re.findall(r"^ *(\d\S*) +\S+% +\S+% +(\S+) +\S+% +(\S+)", r.stdout, re.M)
        # pprof marks a function shown only inlined with " (inline)"; the regex stops before it
        go_top = [name for flat, cum, name in rows][:3]
        go_top = [n[:-len(" (inline)")] if n.endswith(" (inline)") else n for n in go_top]
        assert go_top == [row["name"] for row in ours["rows"][:3]], (r.stdout, ours["rows"][:3])
        if sample == "alloc_objects":
            assert int(rows[0][0]) == ours["rows"][0]["flat"] == truth["leaf_alpha"]["objects"]


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
    assert lib.mapprof("flame", dump, check=False).returncode == 1  # no -o


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


def test_report_flame_renders_in_a_browser():
    """Headless Chromium loads the SVG, runs its script (which lays out and labels the frames)
    and takes a screenshot. Skips where no Chromium is installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise lib.Skip("no chromium (Debian package chromium) to render the SVG")
    _, dump = run("report_sites.c", "report_sites_O2", 1)
    d = lib.tmpdir()
    svg = os.path.join(d, "flame.svg")
    lib.mapprof("flame", dump, "-o", svg)
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                        "file://" + svg], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-1000:]
    # after the script ran, frame labels hold text (they are empty in the file)
    assert re.search(r"<text[^>]*>leaf_alpha</text>", r.stdout), r.stdout[:2000]
    png = os.path.join(d, "flame.png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    "--screenshot=" + png, "--window-size=1200,600", "file://" + svg],
                   capture_output=True, timeout=120)
    assert os.path.getsize(png) > 1000


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
