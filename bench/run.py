#!/usr/bin/env python3
# bench/run.py: `make bench`. Runs every workload natively, under each libmapprof.so mode and under
# heaptrack, interleaved, and writes the medians to bench/RESULTS.md. It must never assert timings
# (figures are reported, not tested) and never depend on paths outside the tree and the build dir.
"""Usage: python3 bench/run.py [--build DIR] [--quick] [--runs N] [--only WORKLOAD,...] [--perf]
                             [--output FILE] [--from-json RESULTS_JSON]

BENCH_QUICK=1 (or --quick) gives a run of about a minute with smaller inputs, written to
DIR/bench/RESULTS.quick.md instead of bench/RESULTS.md. --perf records the shim's hot path on
workload 1 with `perf record -g` and prints the top symbols instead of benchmarking.
--from-json writes the Markdown again from an earlier run's DIR/bench/results.json.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# ---- modes: each is one row per workload ----


class Mode:
    """preload: run under libmapprof.so; lib: under this library of build/bench instead (the
    reference points, which record nothing); only: the workloads it runs on (all if None)."""

    def __init__(self, name, env=None, preload=False, heaptrack=False, lib=None, only=None):
        self.name = name
        self.env = env or {}
        self.preload = preload
        self.heaptrack = heaptrack
        self.lib = lib
        self.only = only

    def runs_on(self, wl):
        return self.only is None or wl.key in self.only


MODES = [
    Mode("native"),
    Mode("mapprof", preload=True),
    Mode("mapprof fp", {"MAPPROF_UNWIND": "fp"}, preload=True),
    Mode("mapprof sample=512K", {"MAPPROF_SAMPLE": "524288"}, preload=True),
    # Frees not tracked: what the live-block map costs fp mode on workload 1.
    Mode("mapprof fp inuse=0", {"MAPPROF_UNWIND": "fp", "MAPPROF_INUSE": "0"}, preload=True,
         only=("pairs1", "pairs2")),
    Mode("heaptrack", heaptrack=True),
    # What any wrapper costs, and what walking the frame pointers on every call costs on its own
    # (bench/floor.c): the least MAPPROF_UNWIND=fp could cost on workload 1.
    Mode("ref: forward only", lib="floor_forward.so", only=("pairs1", "pairs2")),
    Mode("ref: forward + fp walk", lib="floor_fpwalk.so", only=("pairs1", "pairs2")),
]

# ---- workloads ----


class Workload:
    """argv(ctx) gives the command; env extra variables; tmp files may go in ctx.work."""

    def __init__(self, key, title, argv, env=None, note=""):
        self.key = key
        self.title = title
        self.argv = argv
        self.env = env or {}
        self.note = note


def cc1plus_argv(ctx, quick):
    """gcc's C++ front end (Debian g++) parsing a header set, as one process."""
    gxx = shutil.which("g++")
    if not gxx:
        return None
    cc1 = subprocess.run([gxx, "-print-prog-name=cc1plus"], capture_output=True, text=True).stdout.strip()
    arch = subprocess.run([gxx, "-print-multiarch"], capture_output=True, text=True).stdout.strip()
    if not cc1 or not os.path.isabs(cc1) or not os.access(cc1, os.X_OK):
        return None
    src = ctx.work / "parse.cc"
    if quick:
        src.write_text("#include <map>\n#include <string>\n#include <vector>\n")
    else:
        src.write_text("#include <bits/stdc++.h>\n")
    argv = [cc1, "-quiet"]
    if arch:
        argv += ["-imultiarch", arch]
    return argv + ["-D_GNU_SOURCE", str(src), "-fsyntax-only", "-o", os.devnull]


def debian_python():
    # Debian's own interpreter first, not whatever a version manager puts first on PATH.
    return shutil.which("python3", path="/usr/bin:/bin") or shutil.which("python3")


def make_workloads(quick):
    s = 5 if quick else 1  # quick runs are about five times smaller
    pairs = 4000000 // s
    items = 1000000 // s
    rounds = 12000 // s
    pykeys = 600000 // s

    def bench_prog(name, *args):
        return lambda ctx: [str(ctx.build / "bench" / name)] + [str(a) for a in args]

    def python_argv(ctx):
        py = debian_python()
        if not py:
            return None
        return [py, "-c", "d = {str(i): [i] for i in range(%d)}" % pykeys]

    return [
        Workload("pairs1", "1. malloc+free pairs, 1 thread", bench_prog("alloc_pairs", 1, pairs),
                 note="{:,} pairs, 32 sites, depth 8-20".format(pairs)),
        Workload("pairs2", "1. malloc+free pairs, 2 threads", bench_prog("alloc_pairs", 2, pairs),
                 note="{:,} pairs per thread".format(pairs)),
        Workload("uthash", "2. uthash map (examples/uthash_map)",
                 lambda ctx: [str(ctx.build / "examples" / "uthash_map"), str(items)],
                 note="{:,} string keys".format(items)),
        Workload("realloc", "3. realloc growth", bench_prog("realloc_grow", rounds),
                 note="{:,} rounds of 8 buffers grown 8-64 bytes at a time".format(rounds)),
        Workload("cc1plus", "4a. g++ front end (cc1plus)", lambda ctx: cc1plus_argv(ctx, quick),
                 note="-fsyntax-only of " + ("<map>, <string>, <vector>" if quick else "<bits/stdc++.h>")),
        Workload("python", "4b. python3 dict", python_argv,
                 env={"PYTHONHASHSEED": "0", "PYTHONMALLOC": "malloc", "PYTHONDONTWRITEBYTECODE": "1"},
                 note="{:,} str keys, PYTHONMALLOC=malloc".format(pykeys)),
    ]


# ---- running ----


class Ctx:
    def __init__(self, build, work):
        self.build = build
        self.work = work
        self.lib = build / "libmapprof.so"
        self.mapprof = build / "mapprof"
        self.measure = build / "bench" / "measure"


def clean_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPROF_") and k != "LD_PRELOAD"}
    env["LC_ALL"] = "C"
    return env


def run_measured(ctx, argv, extra, cwd):
    """Runs argv to completion under build/bench/measure; returns (status, wall s, cpu s, peak RSS
    KiB, stderr tail). CPU and RSS come from wait4, so they include every descendant that was
    waited for (heaptrack's interpreter and compressor); RSS is the largest single process.
    extra: environment settings for the command alone (not for the launcher)."""
    err = tempfile.TemporaryFile()
    res = ctx.work / "measure.json"
    sets = ["%s=%s" % kv for kv in sorted(extra.items())]
    p = subprocess.run([str(ctx.measure), str(res)] + sets + list(argv), env=clean_env(), cwd=cwd,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    err.seek(0)
    tail = err.read()[-600:].decode(errors="replace").strip()
    try:
        m = json.loads(res.read_text())
        res.unlink()
    except (OSError, ValueError):
        return p.returncode or 1, 0.0, 0.0, 0, tail or "measure failed"
    return m["status"], m["wall"], m["user"] + m["sys"], m["maxrss_kib"], tail


def dump_totals(path):
    """(alloc_objects, nchains, mean frames per chain) from a dump's CHAIN and END records."""
    data = Path(path).read_bytes()
    off, objects, nchains, frames = 16, None, 0, 0
    while off + 16 <= len(data):
        tag, _, length = struct.unpack_from("<IIQ", data, off)
        if tag == 5:  # MP_TAG_CHAIN
            nchains += 1
            frames += struct.unpack_from("<I", data, off + 16 + 8)[0]
        elif tag == 0x454E44:  # MP_TAG_END
            objects = struct.unpack_from("<Q", data, off + 16 + 16)[0]
        off += 16 + ((length + 7) & ~7)
    return objects, nchains, (frames / nchains if nchains else 0.0)


def run_mode(ctx, wl, argv, mode, outdir):
    """One measured run; returns a dict, with the output files it left in outdir."""
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(wl.env)
    env.update(mode.env)
    cmd = list(argv)
    if mode.preload:
        env["LD_PRELOAD"] = str(ctx.lib)
        env["MAPPROF_OUT"] = str(outdir / "mapprof.%p.dump")
    if mode.lib:
        env["LD_PRELOAD"] = str(ctx.build / "bench" / mode.lib)
    if mode.heaptrack:
        cmd = ["heaptrack", "-o", str(outdir / "heaptrack")] + cmd
    rc, wall, cpu, rss, tail = run_measured(ctx, cmd, env, ctx.work)
    files = sorted(outdir.iterdir())
    r = {"rc": rc, "wall": wall, "cpu": cpu, "rss_kib": rss, "files": [str(f) for f in files],
         "size": sum(f.stat().st_size for f in files)}
    if rc != 0:
        r["error"] = tail.splitlines()[-1] if tail else "exit status %d" % rc
    return r


def time_report(argv, repeat):
    """Median wall seconds of a report command, or None if it fails."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
        if p.returncode != 0:
            return None
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report_cmd(ctx, mode, files):
    if mode.heaptrack:
        if not shutil.which("heaptrack_print") or not files:
            return None
        return ["heaptrack_print", files[0]]
    if mode.preload and ctx.mapprof.exists() and files:
        return [str(ctx.mapprof), "top"] + files
    return None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def bench_workloads(ctx, workloads, modes, runs, report_repeat):
    results = {}
    plans = []
    for wl in workloads:
        argv = wl.argv(ctx)
        if argv is None:
            log("skip %s: its program is not installed" % wl.key)
            results[wl.key] = {"skipped": "program not installed"}
            continue
        if not os.path.exists(argv[0]):
            log("skip %s: %s is not built" % (wl.key, argv[0]))
            results[wl.key] = {"skipped": "not built"}
            continue
        plans.append((wl, argv))
        results[wl.key] = {"argv": [os.path.basename(argv[0])] + argv[1:], "modes": {}}
        # Warm the page cache and the dynamic loader's caches; not measured.
        run_measured(ctx, argv, wl.env, ctx.work)

    # Interleaved: every round runs every workload in every mode, the mode order rotating, and
    # each run of a mode right after a native run of its own: the machine's speed drifts (other
    # tenants), so a mode is compared with the native run next to it, not with native's median.
    raw = {(wl.key, m.name): [] for wl, _ in plans for m in modes if m.runs_on(wl)}
    pairs = {(wl.key, m.name): [] for wl, _ in plans for m in modes if m.runs_on(wl)}
    native = next(m for m in modes if m.name == "native")
    for rnd in range(runs):
        for wl, argv in plans:
            ms = [m for m in modes if m.runs_on(wl) and m is not native]
            order = ms[rnd % len(ms):] + ms[:rnd % len(ms)]
            for m in order:
                nat_dir = ctx.work / "out" / wl.key / "native" / ("%d-%s" % (rnd, m.name.replace(" ", "_")))
                n = run_mode(ctx, wl, argv, native, nat_dir)
                raw[(wl.key, native.name)].append(n)
                shutil.rmtree(nat_dir)
                outdir = ctx.work / "out" / wl.key / m.name.replace(" ", "_").replace("=", "") / str(rnd)
                r = run_mode(ctx, wl, argv, m, outdir)
                raw[(wl.key, m.name)].append(r)
                if n["rc"] == 0 and r["rc"] == 0:
                    pairs[(wl.key, m.name)].append((n, r))
                if rnd < runs - 1:
                    shutil.rmtree(outdir)  # keep only the last round's dumps and traces
        log("round %d/%d done" % (rnd + 1, runs))

    for wl, argv in plans:
        res = results[wl.key]
        for m in modes:
            if not m.runs_on(wl):
                continue
            rs = raw[(wl.key, m.name)]
            ok = [r for r in rs if r["rc"] == 0]
            entry = {"runs": len(rs), "ok": len(ok)}
            if len(ok) < len(rs):
                entry["error"] = next(r["error"] for r in rs if r["rc"] != 0)
            if ok:
                entry.update(wall=statistics.median(r["wall"] for r in ok),
                             cpu=statistics.median(r["cpu"] for r in ok),
                             rss_kib=statistics.median(r["rss_kib"] for r in ok),
                             walls=[round(r["wall"], 4) for r in ok],
                             size=ok[-1]["size"] if (m.preload or m.heaptrack) else None)
                last = rs[-1]
                if last["rc"] == 0:
                    cmd = report_cmd(ctx, m, last["files"])
                    if cmd:
                        entry["report_s"] = time_report(cmd, report_repeat)
                    if m.preload:
                        dumps = [f for f in last["files"] if f.endswith(".dump")]
                        tot = [dump_totals(f) for f in dumps]
                        if tot and all(t[0] is not None for t in tot):
                            entry["chains"] = sum(t[1] for t in tot)
                            entry["frames"] = sum(t[1] * t[2] for t in tot) / max(1, entry["chains"])
                            if not m.env:
                                res["allocs"] = sum(t[0] for t in tot)
                                res["chains"] = entry["chains"]
            ps = pairs[(wl.key, m.name)]
            if ps:
                entry["pairs"] = [(round(n["wall"], 4), round(n["cpu"], 4), round(r["wall"], 4),
                                   round(r["cpu"], 4)) for n, r in ps]
            res["modes"][m.name] = entry
        derive(res, modes)
    return results


def derive(res, modes):
    """Ratios vs native and overhead per allocation, for every mode that ran: the medians over
    its runs of the ratio to (and the difference from) the native run just before each."""
    nat = res["modes"].get("native", {})
    ht = res["modes"].get("heaptrack", {})
    allocs = res.get("allocs")
    med = statistics.median
    for m in modes:
        e = res["modes"].get(m.name, {})
        if "wall" not in e or "wall" not in nat:
            continue
        if m.name == "native":
            e["wall_x"] = e["cpu_x"] = 1.0
            continue
        ps = e.get("pairs") or [(nat["wall"], nat["cpu"], e["wall"], e["cpu"])]
        e["wall_x"] = med(rw / nw for nw, nc, rw, rc in ps)
        cpus = [rc / nc for nw, nc, rw, rc in ps if nc > 0]
        e["cpu_x"] = med(cpus) if cpus else None
        if allocs:
            e["wall_ns"] = med(rw - nw for nw, nc, rw, rc in ps) / allocs * 1e9
            e["cpu_ns"] = med(rc - nc for nw, nc, rw, rc in ps) / allocs * 1e9
    if allocs and "wall" in ht:
        for m in modes:
            e = res["modes"].get(m.name, {})
            if m.heaptrack or "wall_ns" not in e or m.name == "native" or m.lib:
                continue
            if ht["wall_ns"] > 0:
                e["vs_heaptrack_wall"] = e["wall_ns"] / ht["wall_ns"]
            if ht["cpu_ns"] > 0:
                e["vs_heaptrack_cpu"] = e["cpu_ns"] / ht["cpu_ns"]


# ---- the report's 100,000 chains, and the shim's memory ----


def bench_chains(ctx, nchains, repeat):
    prog = ctx.build / "bench" / "chain_tree"
    if not prog.exists():
        return {"skipped": "not built"}
    argv = [str(prog), str(nchains)]
    wl = Workload("chains", "", lambda c: argv)
    out = {"chains_requested": nchains}
    for m in MODES:
        if m.name not in ("native", "mapprof", "heaptrack"):
            continue
        if m.heaptrack and not shutil.which("heaptrack"):
            continue
        outdir = ctx.work / "out" / "chains" / m.name
        r = run_mode(ctx, wl, argv, m, outdir)
        e = {"wall": r["wall"], "cpu": r["cpu"], "rss_kib": r["rss_kib"]}
        if r["rc"] != 0:
            e["error"] = r["error"]
        elif m.name != "native":
            e["size"] = r["size"]
            cmd = report_cmd(ctx, m, r["files"])
            if cmd:
                e["report_s"] = time_report(cmd, repeat)
            if m.preload:
                objects, n, frames = dump_totals(r["files"][0])
                out.update(dump_chains=n, mean_frames=frames)
        out[m.name] = e
    if "wall" in out.get("mapprof", {}) and "wall" in out.get("native", {}):
        out["us_per_new_chain"] = (out["mapprof"]["wall"] - out["native"]["wall"]) / nchains * 1e6
    return out


def rss_of(ctx, args, preload):
    prog = ctx.build / "bench" / "chain_tree"
    env = clean_env()
    outdir = Path(tempfile.mkdtemp(dir=ctx.work))
    if preload:
        env["LD_PRELOAD"] = str(ctx.lib)
        env["MAPPROF_OUT"] = str(outdir / "m.%p.dump")
    p = subprocess.run([str(prog)] + [str(a) for a in args], env=env, capture_output=True, text=True,
                       cwd=ctx.work)
    shutil.rmtree(outdir)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout.splitlines()[0])["rss_kib"]


def bench_memory(ctx, quick):
    """What the shim keeps, from its resident set at the end of main minus the native one's:
    per distinct chain, per live block (two table loads), and per call (should be ~0)."""
    if not (ctx.build / "bench" / "chain_tree").exists():
        return {"skipped": "not built"}
    base = (1000, 0, 0)
    cases = [("chain", (101000, 0, 0), 100000)]
    for live in ((1000000,) if quick else (1000000, 3000000)):
        cases.append(("live block", (1000, live, 0), live))
    cases.append(("call", (1000, 0, 2000000 if quick else 10000000), 2000000 if quick else 10000000))

    def overhead(args):
        m, n = rss_of(ctx, args, True), rss_of(ctx, args, False)
        return None if m is None or n is None else m - n

    b = overhead(base)
    rows = []
    for what, args, count in cases:
        o = overhead(args)
        if o is None or b is None:
            rows.append({"what": what, "args": args, "error": "run failed"})
            continue
        rows.append({"what": what, "args": list(args), "count": count, "delta_kib": o - b,
                     "bytes_each": (o - b) * 1024 / count})
    return {"base_overhead_kib": b, "rows": rows}


# ---- machine and text ----


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def first_line(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        glibc = "?"
    rev = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                         text=True).stdout.strip()
    try:
        load = open("/proc/loadavg").read().split()[0]
    except OSError:
        load = "?"
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "glibc": glibc, "load": load,
            "cc": first_line(["cc", "--version"]), "heaptrack": first_line(["heaptrack", "--version"]),
            "revision": rev or "?"}


def fmt(v, spec="%.2f", none="—"):
    return none if v is None else spec % v


def size_str(n):
    if n is None:
        return "—"
    for unit, div in (("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return "%.1f %s" % (n / div, unit)
    return "%d B" % n


def render(results, chains, memory, mach, settings, modes, workloads):
    L = []
    L.append("# mapprof benchmarks")
    L.append("")
    L.append("Written by `make bench%s` (bench/run.py) from one real run; do not edit by hand." %
             (" BENCH_QUICK=1" if settings["quick"] else ""))
    L.append("")
    L.append("Machine: %d CPUs, %s; Linux %s; %s; %s; %s. mapprof revision %s. Load average (1 min) "
             "when the run began: %s; the run took %d s." %
             (mach["nproc"], mach["cpu"], mach["kernel"], mach["glibc"], mach["cc"], mach["heaptrack"],
              mach["revision"], settings["load_before"], settings["seconds"]))
    L.append("")
    L.append("Each workload ran %d times in every mode, interleaved (round by round, the order of the modes "
             "rotating), each run right after a native run of its own; times are medians. *x native* is "
             "the median over the runs of the wall (CPU: user+sys) time over the native run next to it "
             "(this machine's speed drifts with its neighbours' load, so a run is compared with its "
             "neighbour, not with native's median). *ns/alloc* is the added time per allocation call "
             "(malloc, calloc, realloc, ...: the exact count comes from the default-mode dump), the "
             "median of those differences, the frees' cost included. *÷ heaptrack* "
             "is that overhead over heaptrack's (wall / CPU). Peak RSS is wait4's: for heaptrack the "
             "largest of its processes (the program, heaptrack_interpret, zstd), not their sum. *Report* "
             "is `mapprof top DUMP` (reads, symbolizes with libdw, prints) vs `heaptrack_print TRACE` "
             "(heaptrack symbolizes while recording, in heaptrack_interpret, so its printer only reads)." %
             settings["runs"])
    L.append("")
    L.append("| workload | mode | wall s | CPU s | wall x native | CPU x native | ns/alloc wall | ns/alloc CPU "
             "| ÷ heaptrack | peak RSS | dump / trace | chains (frames) | report s |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for wl in workloads:
        res = results.get(wl.key, {})
        if "skipped" in res:
            L.append("| %s | (skipped: %s) ||||||||||||" % (wl.title, res["skipped"]))
            continue
        first = True
        for m in (m for m in modes if m.runs_on(wl)):
            e = res["modes"].get(m.name, {})
            label = ""
            if first:
                label = "%s<br><small>%s; %s allocations</small>" % (
                    wl.title, wl.note, "{:,}".format(res["allocs"]) if res.get("allocs") else "?")
            first = False
            if "wall" not in e:
                L.append("| %s | %s | failed: %s ||||||||||" % (label, m.name, e.get("error", "?")))
                continue
            vs = "—"
            if "vs_heaptrack_wall" in e:
                vs = "%.2f / %s" % (e["vs_heaptrack_wall"], fmt(e.get("vs_heaptrack_cpu")))
            native = m.name == "native"
            note = " (%d/%d ok: %s)" % (e["ok"], e["runs"], e["error"]) if e.get("error") else ""
            chain_col = "—"
            if e.get("chains") is not None:
                chain_col = "{:,} ({:.1f})".format(e["chains"], e["frames"])
            L.append("| %s | %s%s | %.3f | %.3f | %s | %s | %s | %s | %s | %.1f MiB | %s | %s | %s |" % (
                label, m.name, note, e["wall"], e["cpu"], fmt(e.get("wall_x")), fmt(e.get("cpu_x")),
                "—" if native else fmt(e.get("wall_ns"), "%.0f"), "—" if native else fmt(e.get("cpu_ns"), "%.0f"),
                vs, e["rss_kib"] / 1024, size_str(e.get("size")), chain_col, fmt(e.get("report_s"), "%.3f")))
    L.append("")
    L += render_targets(results)
    L += render_chains(chains)
    L += render_memory(memory)
    L.append("## Notes")
    L.append("")
    L.append("- Workloads 1 and 3 (`bench/alloc_pairs.c`, `bench/realloc_grow.c`) are built with "
             "`-O2 -fno-omit-frame-pointer`, the uthash example as examples/examples.mk builds it (`-O2`, "
             "no frame pointers). cc1plus and python3 are "
             "Debian's, built without frame pointers: `MAPPROF_UNWIND=fp` is not meant for them; the "
             "chains column shows what it makes of them, next to the default mode's chains.")
    L.append("- *chains (frames)*: distinct chains in the last run's dump and their mean depth. Sampled "
             "runs see fewer chains by design.")
    L.append("- Workload 1 draws its sizes from a table of 16 (16-512 bytes): heaptrack 1.4's "
             "heaptrack_interpret aborts with `std::bad_alloc` (after growing to ~18 GB) once a run "
             "has some 40,000 distinct (size, call chain) pairs; a range of 497 sizes over these chains "
             "got there within 50,000 calls.")
    L.append("- 2 threads: ns/alloc divides the added time by both threads' allocations, so on 2 CPUs "
             "the wall figure is about half the CPU one. The scaling target compares ratios vs native, "
             "so whatever native itself loses on 2 threads cancels. It is one-sided: serialization "
             "would raise the 2-thread ratio. Native malloc+free itself slows down per thread when a "
             "second thread runs beside it (compare its 1- and 2-thread wall times above), more "
             "than mapprof does, so mapprof's 2-thread ratio can come out below its 1-thread one; "
             "that is not a failure to scale.")
    L.append("- heaptrack runs heaptrack_interpret and zstd beside the program: with a CPU to spare "
             "(1 thread on 2 CPUs) its wall overhead is well below its CPU overhead.")
    L.append("")
    return "\n".join(L)


def render_targets(results):
    L = ["## Issue 6 targets (this run)", ""]

    def mode(key, name):
        return results.get(key, {}).get("modes", {}).get(name, {})

    rows = []
    for key, label in (("pairs1", "1 thread"), ("pairs2", "2 threads")):
        e, h = mode(key, "mapprof"), mode(key, "heaptrack")
        # heaptrack does part of its work in a second process, on another CPU when one is idle,
        # so its wall and CPU overheads differ; both comparisons are shown.
        for kind in ("wall", "cpu"):
            if "vs_heaptrack_" + kind in e:
                rows.append(("Default mode overhead per allocation <= 1/2 of heaptrack's, %s, %s" % (
                    label, "wall" if kind == "wall" else "CPU"),
                             "%.0f ns vs %.0f ns (%.2f)" % (e[kind + "_ns"], h[kind + "_ns"],
                                                           e["vs_heaptrack_" + kind]),
                             e["vs_heaptrack_" + kind] <= 0.5))
    for name, label in (("mapprof", "default"), ("mapprof fp", "fp"), ("mapprof sample=512K", "sample=512K")):
        a, b = mode("pairs1", name), mode("pairs2", name)
        if "wall_x" in a and "wall_x" in b:
            d = b["wall_x"] / a["wall_x"] - 1
            dc = b["cpu_x"] / a["cpu_x"] - 1 if a.get("cpu_x") and b.get("cpu_x") else float("nan")
            rows.append(("2 threads scale: %s ratio vs native at most 10%% above 1 thread's" % label,
                         "wall %.2fx (2 threads) vs %.2fx (1 thread): %+.0f%%; CPU %+.0f%%" % (
                             b["wall_x"], a["wall_x"], d * 100, dc * 100),
                         d <= 0.10))
    for key, label in (("pairs1", "1 thread"), ("pairs2", "2 threads")):
        e = mode(key, "mapprof fp")
        if "wall_x" in e:
            rows.append(("fp <= 1.5x native on workload 1, %s" % label, "%.2fx" % e["wall_x"], e["wall_x"] <= 1.5))
        e = mode(key, "mapprof sample=512K")
        if "wall_x" in e:
            rows.append(("sample=512K <= 1.1x native on workload 1, %s" % label, "%.2fx" % e["wall_x"],
                         e["wall_x"] <= 1.1))
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for what, measured, ok in rows:
        L.append("| %s | %s | %s |" % (what, measured, "yes" if ok else "**no**"))
    L.append("")
    fwd, walk, fp, off = (mode("pairs1", n) for n in ("ref: forward only", "ref: forward + fp walk",
                                                       "mapprof fp", "mapprof fp inuse=0"))
    if all("wall_x" in e for e in (fwd, walk, fp, off)):
        L.append("For scale, on workload 1 (1 thread): a preloaded library that only forwards malloc "
                 "and free costs %.2fx native; one that also walks the frame pointers and hashes the "
                 "return addresses on every malloc, recording nothing (`bench/floor.c`, the walk of "
                 "fp mode's fast path), %.2fx. That walk is the least a profiler that unwinds every "
                 "call can cost here; mapprof fp, which also counts each call and tracks each block "
                 "for its free, costs %.2fx, and %.2fx with `MAPPROF_INUSE=0` (frees not tracked)." % (
                     fwd["wall_x"], walk["wall_x"], fp["wall_x"], off["wall_x"]))
        L.append("")
    # The forward-only library does next to nothing: where it reads well above its usual 1.02x to
    # 1.04x, other load disturbed the rounds, and every ratio of that workload reads high with it.
    for key, label in (("pairs1", "1 thread"), ("pairs2", "2 threads")):
        e = mode(key, "ref: forward only")
        if e.get("wall_x", 0) > 1.06:
            L.append("A warning on this run: the forward-only reference read %.2fx on workload 1, "
                     "%s, where it reads 1.02x to 1.04x on a quiet machine: other load disturbed "
                     "those rounds, and that table's ratios read high with it." % (e["wall_x"],
                                                                                 label))
            L.append("")
    return L


def render_chains(c):
    L = ["## Report: a dump of %s distinct chains" % "{:,}".format(c.get("chains_requested", 0)), ""]
    if "skipped" in c:
        return L + ["Skipped: %s." % c["skipped"], ""]
    L.append("`bench/chain_tree.c` allocates once from each of %s call chains (%s in the dump, %.1f frames "
             "each on average), natively, under mapprof (default mode) and under heaptrack." %
             ("{:,}".format(c["chains_requested"]), "{:,}".format(c.get("dump_chains", 0)), c.get("mean_frames", 0)))
    L.append("")
    L.append("| | program wall s | dump / trace | report s |")
    L.append("|---|---:|---:|---:|")
    for name, rep in (("native", "—"), ("mapprof", "`mapprof top`"), ("heaptrack", "`heaptrack_print`")):
        e = c.get(name)
        if not e:
            continue
        if "error" in e:
            L.append("| %s | failed: %s | | |" % (name, e["error"]))
            continue
        L.append("| %s | %.3f | %s | %s |" % (name, e["wall"], size_str(e.get("size")),
                                               fmt(e.get("report_s"), "%.2f") + ("" if name == "native" else " (%s)" % rep)))
    L.append("")
    if "us_per_new_chain" in c:
        L.append("Each new chain cost the shim about %.1f µs here (the program's wall time under mapprof "
                 "minus native, over the chains)." % c["us_per_new_chain"])
        L.append("")
    return L


def render_memory(mem):
    L = ["## The shim's memory", ""]
    if "skipped" in mem:
        return L + ["Skipped: %s." % mem["skipped"], ""]
    L.append("`bench/chain_tree CHAINS LIVE CALLS` reports its resident set at the end of main; the "
             "shim's share is the RSS under mapprof minus the native RSS for the same arguments, and "
             "each row is the growth of that share over the base run (1,000 chains, nothing live; the "
             "shim then holds %s KiB). Every chain has %s frames." %
             (mem.get("base_overhead_kib"), fmt(mem.get("mean_frames"), "%.0f", "the same number of")))
    L.append("")
    L.append("| what grows | arguments | shim's growth | bytes each |")
    L.append("|---|---|---:|---:|")
    for r in mem["rows"]:
        if "error" in r:
            L.append("| %s | %s | %s | |" % (r["what"], " ".join(map(str, r["args"])), r["error"]))
            continue
        L.append("| %s x %s | `%s` | %s KiB | %.1f |" % ("{:,}".format(r["count"]), r["what"],
                                                       " ".join(map(str, r["args"])), "{:,}".format(r["delta_kib"]),
                                                       r["bytes_each"]))
    L.append("")
    L.append("The live-block map is 64 shards of buckets of 4 slots (16 bytes a slot, and 4 bytes a bucket "
             "for its overflow count), doubled at 3/4 full, so the bytes per live block lie between about "
             "23 and 45, depending on where each shard's count falls between powers of two.")
    L.append("")
    return L


# ---- perf ----


def perf_profile(ctx, pairs, only):
    if not shutil.which("perf"):
        log("perf is not installed")
        return 1
    prog = ctx.build / "bench" / "alloc_pairs"
    for m in MODES:
        if not m.preload or (only and m.name not in only):
            continue
        data = ctx.work / ("perf-%s.data" % m.name.replace(" ", "_").replace("=", ""))
        # The program's environment goes through env(1): perf itself must not run under the shim.
        extra = dict(m.env, LD_PRELOAD=str(ctx.lib), MAPPROF_OUT=str(ctx.work / "perf.%p.dump"))
        subprocess.run(["perf", "record", "-q", "-g", "-o", str(data), "--", "env"] +
                       ["%s=%s" % kv for kv in sorted(extra.items())] + [str(prog), "1", str(pairs)],
                       env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        p = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none",
                            "--percent-limit", "1", "--sort", "dso,symbol"], capture_output=True, text=True)
        print("== %s (perf record -g on alloc_pairs 1 %d; self time, >= 1%%)" % (m.name, pairs))
        print("\n".join(l for l in p.stdout.splitlines() if l and not l.startswith("#")))
        print()
    return 0


def rerender(path, output):
    """Writes the Markdown again from a results.json of an earlier real run (no new measurements)."""
    raw = json.loads(Path(path).read_text())
    st = raw["settings"]
    modes = [m for m in MODES if any(m.name in w.get("modes", {}) for w in raw["workloads"].values())]
    workloads = [w for w in make_workloads(st["quick"]) if w.key in raw["workloads"]]
    text = render(raw["workloads"], raw["chains"], raw["memory"], raw["machine"], st, modes, workloads)
    out = Path(output) if output else (ROOT / "bench" / "RESULTS.md")
    out.write_text(text)
    log("bench: wrote %s from %s" % (out, path))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    ap.add_argument("--runs", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated workload keys (with --perf: mode names)")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--output", help="where to write the Markdown (default: see above)")
    ap.add_argument("--from-json", help="only write the Markdown again from an earlier run's results.json")
    args = ap.parse_args()
    if args.from_json:
        return rerender(args.from_json, args.output)

    build = Path(args.build)
    if not build.is_absolute():
        build = (ROOT / build).resolve()
    for need in (build / "libmapprof.so", build / "bench" / "measure"):
        if not need.exists():
            log("bench: %s is missing; run `make all bench-progs` first" % need)
            return 1
    runs = args.runs or (3 if args.quick else 5)
    work = Path(tempfile.mkdtemp(prefix="mapprof-bench-"))
    ctx = Ctx(build, work)
    try:
        if args.perf:
            return perf_profile(ctx, 1000000 if args.quick else 4000000, args.only.split(",") if args.only else [])
        modes = [m for m in MODES if not m.heaptrack or shutil.which("heaptrack")]
        if len(modes) < len(MODES):
            log("heaptrack is not installed: no heaptrack rows")
        workloads = make_workloads(args.quick)
        if args.only:
            keys = set(args.only.split(","))
            workloads = [w for w in workloads if w.key in keys]
        t0 = time.time()
        load_before = machine()["load"]
        try:
            if float(load_before) > 0.5:
                log("bench: the load average is %s: something else is running; figures will be noisy" % load_before)
        except ValueError:
            pass
        results = bench_workloads(ctx, workloads, modes, runs, 1 if args.quick else 3)
        log("chains ...")
        chains = bench_chains(ctx, 100000, 1 if args.quick else 3) if not args.only else {"skipped": "--only"}
        log("memory ...")
        memory = bench_memory(ctx, args.quick) if not args.only else {"skipped": "--only"}
        memory["mean_frames"] = chains.get("mean_frames")
        settings = {"quick": args.quick, "runs": runs, "seconds": round(time.time() - t0),
                    "load_before": load_before}
        mach = machine()
        text = render(results, chains, memory, mach, settings, modes, workloads)
        out = Path(args.output) if args.output else (
            build / "bench" / "RESULTS.quick.md" if (args.quick or args.only) else ROOT / "bench" / "RESULTS.md")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        raw = {"machine": mach, "settings": settings, "workloads": results, "chains": chains, "memory": memory}
        (build / "bench").mkdir(parents=True, exist_ok=True)
        (build / "bench" / "results.json").write_text(json.dumps(raw, indent=1, default=str))
        print(text)
        log("bench: %d s; wrote %s and %s" % (settings["seconds"], out, build / "bench" / "results.json"))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
