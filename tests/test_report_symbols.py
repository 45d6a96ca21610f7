"""test_report_symbols.py: the symbolizer on the debug information that compilers and tools really
produce, beyond gcc's plain -g: clang's (no .debug_aranges), gcc's split DWARF (-gsplit-dwarf, its
functions in a .dwo file), separate debug files whose path holds a FIFO (which must never block
the report), and gcc's C++ names for lambdas, local classes and anonymous namespaces (no
DW_AT_linkage_name). Counts come from the programs' own JSON lines (tests/progs/report_sites.c,
tests/progs/symbols_closures.cc), lines from their sources, names from `nm -C`.

MAPPROF_TEST_REPORT=PATH runs these tests against another build of the report tool (an older
revision's build/mapprof-asan, to show that they fail there)."""
import json
import os
import re
import shutil
import subprocess

import lib

PROGS = os.path.join(lib.ROOT, "tests", "progs")
SITES = os.path.join(PROGS, "report_sites.c")
LAMBDA = os.path.join(PROGS, "symbols_closures.cc")
REPORT = os.environ.get("MAPPROF_TEST_REPORT") or lib.MAPPROF
# A report that has not finished by then is blocked (on a FIFO): it takes a second here.
HANG = 30


def report(*args, timeout=lib.TIMEOUT):
    """Runs the report tool; it must exit 0 without a sanitizer report. Returns the process."""
    if not os.path.exists(REPORT):
        raise lib.Skip("%s is not built (make build/mapprof-asan)" % REPORT)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    argv = [REPORT] + [str(a) for a in args]
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("mapprof %s: still running after %ds (blocked opening a file?)"
                             % (" ".join(map(str, args)), timeout))
    assert cp.returncode == 0 and "runtime error" not in cp.stderr and \
        "Sanitizer" not in cp.stderr, "mapprof %s: exit %d: %s" % (
            " ".join(map(str, args)), cp.returncode, cp.stderr[-1500:])
    return cp


def warnings(cp):
    return [l for l in cp.stderr.splitlines() if l.startswith("mapprof: warning:")]


def top_rows(dump, *extra):
    cp = report("top", "--json", "--nodecount", "0", *extra, dump)
    return {r["name"]: r for r in json.loads(cp.stdout)["rows"]}


def export(dump, *extra):
    return json.loads(report("export", "--format", "json", *extra, dump).stdout)


def compile_prog(argv, src, out_dir=None, name="prog"):
    """Compiles SRC with ARGV (compiler and flags) into OUT_DIR (a fresh directory, also the
    compiler's working directory: gcc -gsplit-dwarf writes the .dwo files there). Returns the
    binary's path."""
    if shutil.which(argv[0]) is None:
        raise lib.Skip("%s is not installed" % argv[0])
    d = out_dir or lib.tmpdir()
    out = os.path.join(d, name)
    cmd = list(argv) + lib.WARN + ["-D_GNU_SOURCE", "-o", out, src]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
    assert r.returncode == 0, "cannot build: %s\n%s" % (" ".join(cmd), r.stderr[-2000:])
    return out


def profile(exe):
    cp, dump = lib.run_profiled([exe])
    assert cp.returncode == 0, "%s exited %d: %s" % (exe, cp.returncode, cp.stderr[-500:])
    assert os.path.exists(dump), "no dump written"
    return lib.truth(cp), dump


def source_line(path, text):
    """The 1-based number of the only line of PATH that contains TEXT."""
    with open(path) as f:
        hits = [i + 1 for i, l in enumerate(f) if text in l]
    assert len(hits) == 1, (text, hits)
    return hits[0]


def short(fn):
    """A frame's function up to its parameter list (C++ frames have one, C frames not)."""
    return fn.split("(")[0] if fn else fn


def check_sites(dump, truth):
    """report_sites' functions with their counts, file:line and the inlined inner_gamma."""
    rows = top_rows(dump)
    assert rows["leaf_alpha"]["flat"] == truth["leaf_alpha"]["objects"], rows.get("leaf_alpha")
    assert rows["leaf_beta"]["flat"] == truth["leaf_beta"]["objects"]
    assert rows.get("inner_gamma", {}).get("flat") == truth["inner_gamma"]["objects"], \
        "inner_gamma (inlined into outer_delta) missing: %s" % sorted(rows)
    assert rows["outer_delta"]["flat"] == 0 and \
        rows["outer_delta"]["cum"] == truth["inner_gamma"]["objects"], rows["outer_delta"]
    assert rows["mid_epsilon"]["cum"] == truth["mid_epsilon"]["objects"]
    prof = export(dump)
    assert all(m["symbols"] == "dwarf" for m in prof["modules"] if m["id"] == 0), prof["modules"]
    alpha_line = source_line(SITES, "void *p = malloc(32);")
    gamma_line = source_line(SITES, "void *p = malloc(1000);")
    call_line = source_line(SITES, "\tinner_gamma(scale);")
    seen_alpha = seen_gamma = False
    for c in prof["chains"]:
        fr = c["frames"]
        names = [short(f["function"]) for f in fr]
        if "leaf_alpha" in names:
            f = fr[names.index("leaf_alpha")]
            assert f["file"] and f["file"].endswith("report_sites.c") and \
                f["line"] == alpha_line, f
            seen_alpha = True
        if "outer_delta" in names:
            i = names.index("outer_delta")
            assert i > 0 and names[i - 1] == "inner_gamma" and fr[i - 1]["inlined"], fr[:i + 1]
            assert fr[i - 1]["file"].endswith("report_sites.c") and \
                fr[i - 1]["line"] == gamma_line, fr[i - 1]
            assert fr[i]["file"].endswith("report_sites.c") and fr[i]["line"] == call_line, fr[i]
            seen_gamma = True
    assert seen_alpha and seen_gamma


# ---- 1. a FIFO where a separate debug file could be must never block the report ----

def split_debug(d):
    """report_sites built with -O2 -g in D, its debug information moved to D/prog.debug
    (objcopy --only-keep-debug, then stripped, then a .gnu_debuglink); profiled. Returns
    (binary, dump, the debug file's bytes, build-id hex)."""
    exe = compile_prog(["gcc", "-std=gnu11", "-O2", "-g"], SITES, d)
    dbg = exe + ".debug"
    for cmd in (["objcopy", "--only-keep-debug", exe, dbg],
                ["objcopy", "--strip-debug", "--strip-unneeded", exe],
                ["objcopy", "--add-gnu-debuglink=" + dbg, exe]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, "%s: %s" % (" ".join(cmd), r.stderr)
    _, dump = profile(exe)
    bid = lib.read_dump(dump)["modules"][0]["build_id"]
    assert bid, "the test program has no build-id"
    with open(dbg, "rb") as f:
        data = f.read()
    os.unlink(dbg)
    return exe, dump, data, bid


def check_fifo_refused(dump, fifo, *extra):
    cp = report("top", *extra, dump, timeout=HANG)
    assert any(fifo in w and "not a regular file" in w for w in warnings(cp)), cp.stderr
    # without its debug file the stripped program's functions are module+offset
    assert "leaf_alpha" not in cp.stdout and "prog+0x" in cp.stdout, cp.stdout


def test_debug_fifo_beside_the_binary():
    d = lib.tmpdir()
    exe, dump, data, _ = split_debug(d)
    os.mkfifo(exe + ".debug")
    check_fifo_refused(dump, exe + ".debug")


def test_debug_fifo_in_dot_debug():
    d = lib.tmpdir()
    exe, dump, data, _ = split_debug(d)
    os.mkdir(os.path.join(d, ".debug"))
    fifo = os.path.join(d, ".debug", "prog.debug")
    os.mkfifo(fifo)
    check_fifo_refused(dump, fifo)
    # the control: a real debug file there names the functions
    os.unlink(fifo)
    with open(fifo, "wb") as f:
        f.write(data)
    rows = top_rows(dump)
    assert rows["leaf_alpha"]["flat"] == 200, sorted(rows)


def test_debug_fifo_at_build_id_path():
    d = lib.tmpdir()
    exe, dump, data, bid = split_debug(d)
    dirs = lib.tmpdir()
    sub = os.path.join(dirs, ".build-id", bid[:2])
    os.makedirs(sub)
    fifo = os.path.join(sub, bid[2:] + ".debug")
    os.mkfifo(fifo)
    check_fifo_refused(dump, fifo, "--debug-dir", dirs)
    # the rest of the search goes on: the debug file beside the binary is still found
    with open(exe + ".debug", "wb") as f:
        f.write(data)
    cp = report("top", "--debug-dir", dirs, dump, timeout=HANG)
    assert "leaf_alpha" in cp.stdout, cp.stdout
    assert any(fifo in w for w in warnings(cp)), cp.stderr


# ---- 2. clang: no .debug_aranges ----

def check_clang(argv):
    exe = compile_prog(argv, SITES)
    truth, dump = profile(exe)
    check_sites(dump, truth)


def test_clang_O2():
    check_clang(["clang", "-O2", "-g"])


def test_clang_O2_dwarf4_nopie():
    check_clang(["clang", "-O2", "-gdwarf-4", "-no-pie"])


def test_clang_O2_compressed():
    check_clang(["clang", "-O2", "-g", "-gz"])


def test_clang_O0():
    check_clang(["clang", "-O0", "-g"])


def test_clangxx_O2():
    check_clang(["clang++", "-x", "c++", "-O2", "-g"])


def test_clangxx_O0_pie():
    check_clang(["clang++", "-x", "c++", "-O0", "-g", "-fPIE", "-pie"])


# ---- 3. gcc -gsplit-dwarf: the functions are in the .dwo file ----

def split_build(*flags):
    d = lib.tmpdir()
    exe = compile_prog(["gcc", "-std=gnu11", "-O2", "-g", "-gsplit-dwarf"] + list(flags), SITES,
                       d)
    dwo = [f for f in os.listdir(d) if f.endswith(".dwo")]
    assert len(dwo) == 1, os.listdir(d)
    return exe, os.path.join(d, dwo[0])


def test_split_dwarf():
    exe, _ = split_build()
    truth, dump = profile(exe)
    check_sites(dump, truth)


def test_split_dwarf4():
    exe, _ = split_build("-gdwarf-4")
    truth, dump = profile(exe)
    check_sites(dump, truth)


def test_split_dwarf_missing_dwo():
    exe, dwo = split_build()
    truth, dump = profile(exe)
    os.unlink(dwo)
    cp = report("top", "--json", "--nodecount", "0", dump)
    assert any(os.path.basename(dwo) in w and "not found" in w for w in warnings(cp)), cp.stderr
    rows = {r["name"]: r for r in json.loads(cp.stdout)["rows"]}
    assert rows["outer_delta"]["flat"] == truth["inner_gamma"]["objects"], rows["outer_delta"]
    # --quiet silences it
    assert not warnings(report("top", "--quiet", dump))


def test_split_dwarf_fifo_dwo():
    exe, dwo = split_build()
    _, dump = profile(exe)
    os.unlink(dwo)
    os.mkfifo(dwo)
    cp = report("top", dump, timeout=HANG)
    assert any(dwo in w and "not a regular file" in w for w in warnings(cp)), cp.stderr
    assert "leaf_alpha" in cp.stdout


# ---- 4. gcc's C++ names without DW_AT_linkage_name ----

def lambda_prog(opt):
    return lib.build_prog("symbols_closures_" + opt, [LAMBDA], flags=["-" + opt], lang="c++")


def nm_names(exe):
    """The demangled names of EXE's symbols, without gcc's clone suffixes (" [clone
    .constprop.0]": -O2 specializes functions called with constants)."""
    r = subprocess.run(["nm", "-C", "--defined-only", exe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return {l.split(" ", 2)[2].split(" [clone ")[0] for l in r.stdout.splitlines()
            if l.count(" ") >= 2}


def leaf_functions(prof):
    """{alloc_objects: the innermost frame's function} of the program's own chains."""
    return {c["alloc_objects"]: c["frames"][0]["function"] for c in prof["chains"]
            if c["frames"] and
            os.path.basename(c["frames"][0]["module"]).startswith("symbols_closures")}


def check_lambdas(opt):
    exe = lambda_prog(opt)
    truth, dump = profile(exe)
    rows = top_rows(dump)
    assert not any("(anonymous namespace)::operator()" in n for n in rows), sorted(rows)
    # two lambdas with the same parameters stay two rows, named as the demangler does
    assert rows.get("main::{lambda()#1}::operator()", {}).get("flat") == truth["lambda1"], \
        sorted(rows)
    assert rows.get("main::{lambda()#2}::operator()", {}).get("flat") == truth["lambda2"], \
        sorted(rows)
    lam_int = [n for n in rows if re.fullmatch(r"main::\{lambda\(int\)#\d+\}::operator\(\)", n)]
    assert len(lam_int) == 1 and rows[lam_int[0]]["flat"] == truth["lambda_int"], sorted(rows)
    # a real anonymous namespace keeps its name
    assert rows["(anonymous namespace)::anon_alloc"]["flat"] == truth["anon"]
    # short names: an enclosing function's parameter list is dropped, not the rest of the name
    # (the local class and the lambda in work(int) read as with_local_class and work, merged
    # with the functions themselves); an operator template drops its template arguments
    assert rows.get("with_local_class::Local::go", {}).get("flat") == truth["local"], \
        sorted(rows)
    work = [n for n in rows if re.fullmatch(r"work::\{lambda\(\)#\d+\}::operator\(\)", n)]
    assert len(work) == 1 and rows[work[0]]["flat"] == truth["work_lambda"], sorted(rows)
    assert rows.get("operator+", {}).get("flat") == truth["plus"], sorted(rows)
    # --focus matches the lambdas by their names
    focused = top_rows(dump, "--focus", "lambda")
    assert sum(r["flat"] for r in focused.values()) == \
        truth["lambda1"] + truth["lambda2"] + truth["lambda_int"] + truth["work_lambda"], focused
    prof = export(dump)
    leaves = leaf_functions(prof)
    names = nm_names(exe)
    assert leaves[truth["local"]] == "with_local_class(int)::Local::go(int)", leaves
    assert leaves[truth["local"]] in names
    for key in ("lambda1", "lambda2", "lambda_int"):
        fn = leaves[truth[key]]
        if opt == "O0":
            # out of line: exactly the symbol table's name
            assert fn in names, (fn, sorted(n for n in names if "lambda" in n))
        # inlined or not, the same lambda as the one its caller's name holds
        chain = [c for c in prof["chains"] if c["alloc_objects"] == truth[key]][0]
        caller = [f["function"] for f in chain["frames"] if f["function"] and
                  f["function"].startswith(("void run<", "void run_int<"))]
        assert caller, chain["frames"]
        closure = re.search(r"<(main::\{lambda\([^)]*\)#\d+\})>", caller[0]).group(1)
        assert fn.startswith(closure + "::operator()"), (fn, caller[0])


def test_lambda_names_O0():
    check_lambdas("O0")


def test_lambda_names_O2():
    check_lambdas("O2")
