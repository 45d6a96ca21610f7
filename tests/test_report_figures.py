"""test_report_figures.py: the report's figures are right at the edges. A diff flame graph keeps
every frame inside the picture and inside its parent (all run under ASan and UBSan). Expected
numbers come from the programs' own counts."""
import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET

import lib

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
