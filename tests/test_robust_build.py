"""test_robust_build.py: the same program built every way users build: PIE and non-PIE, with and
without frame pointers, -O0 and -O3, stripped; under libunwind and under the frame-pointer
unwinder (which must fall back rather than invent frames in code without frame pointers). Each
gives exact per-site counts and whole chains: an allocation at recursion depth D has exactly D+1
recurse_level frames between the site and main. C++ exceptions thrown through allocating frames
give exact counts too."""
import os
import subprocess

import lib
import robust

VARIANTS = [(opt, pie, fp) for opt in ("-O0", "-O3") for pie in ("pie", "no-pie")
            for fp in ("fp", "nofp")]


def build(opt, pie, fp):
    name = "robust_build_%s_%s_%s" % (opt[1:], pie.replace("-", ""), fp)
    flags = [opt, "-fPIE" if pie == "pie" else "-fno-pie", "-pie" if pie == "pie" else "-no-pie",
             "-fno-omit-frame-pointer" if fp == "fp" else "-fomit-frame-pointer"]
    return lib.build_prog(name, ["robust_build.c"], flags=flags)


def stripped(binary):
    out = binary + "_stripped"
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(binary):
        r = subprocess.run(["strip", "-o", out + ".tmp", binary], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        os.replace(out + ".tmp", out)
    return out


def check(binary, unwinder, run_path=None):
    run_path = run_path or binary
    env = {"MAPPROF_UNWIND": unwinder}
    cp, dump = lib.run_profiled([run_path, "10"], env=env)
    what = "%s (%s)" % (os.path.basename(run_path), unwinder)
    assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, what)
    t = lib.truth(cp, "main")
    d = lib.read_dump(dump)
    assert os.path.realpath(d["exe"]) == os.path.realpath(run_path)
    robust.check_process(d, binary, t, what)  # symbols from the unstripped twin
    syms = lib.Symbols(binary)
    for c in d["chains"]:
        names = lib.frame_functions(d, c, syms)
        depth = c["classes"][0]["log2"] - 5
        assert len(c["classes"]) == 1 and 0 <= depth < 6, \
            "%s: one chain holds sizes of several depths %s: %s" % (
                what, [k["log2"] - 5 for k in c["classes"]], names)
        levels = names.count("recurse_level")
        assert levels == depth + 1 and "main" in names, \
            "%s: an allocation at depth %d has %d recurse_level frames: %s" % (
                what, depth, levels, names)
        # The site, then the recursion, then main: nothing invented in between.
        assert names[0].startswith("site_") and names[1:depth + 2] == ["recurse_level"] * \
            (depth + 1) and names[depth + 2] == "main", "%s: chain %s" % (what, names)
    return d


def test_build_matrix_libunwind():
    for v in VARIANTS:
        check(build(*v), "libunwind")


def test_build_matrix_fp_unwinder():
    for v in VARIANTS:
        if v[2] == "fp":
            check(build(*v), "fp")


def test_build_fp_unwinder_without_frame_pointers():
    """MAPPROF_UNWIND=fp on code built without frame pointers: the chains must still be whole
    (the walk falls back to libunwind rather than skip frames)."""
    for v in VARIANTS:
        if v[2] == "nofp":
            check(build(*v), "fp")


def test_build_stripped():
    for v in (("-O3", "no-pie", "nofp"), ("-O0", "pie", "fp")):
        b = build(*v)
        for unw in ("libunwind", "fp") if v[2] == "fp" else ("libunwind",):
            d = check(b, unw, run_path=stripped(b))
        # The report tool copes with a binary without symbols (no crash, same totals).
        cp, dump = lib.run_profiled([stripped(b), "3"])
        prof = lib.profile_json([dump])
        assert prof["totals"] == lib.read_dump(dump)["totals"]
        assert d["modules"]


# ---- C++ exceptions ----

def check_exc(opt, unwinder):
    prog = lib.build_prog("robust_exc_%s" % opt[1:], ["robust_exc.cc"], flags=[opt], lang="c++")
    cp, dump = lib.run_profiled([prog, "200"], env={"MAPPROF_UNWIND": unwinder})
    what = "robust_exc %s %s" % (opt, unwinder)
    assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, what)
    t = lib.truth(cp, "main")
    assert t["checks"]["caught"] == 200 and t["checks"]["bad_alloc"] == 1, t["checks"]
    d = lib.read_dump(dump)
    other = lib.check_sites(d, prog, t["sites"], what)
    # Under the program's thrower, libstdc++ allocates twice per throw: the exception object
    # (__cxa_allocate_exception) and std::runtime_error's copy of its message; both are freed
    # when the handler ends. Under try_huge, the std::bad_alloc object: one more.
    syms = lib.Symbols(prog)
    exc = [c for c in other if {"throw_here", "try_huge"} & set(lib.frame_functions(d, c, syms)) and
           os.path.basename(lib.module_of(d, c["frames"][0][0])).startswith("libstdc++")]
    rest = [c for c in other if c not in exc]
    n = lib.tally(exc)
    assert n["alloc_objects"] == 2 * t["checks"]["caught"] + 1 and n["inuse_objects"] == 0, \
        "%s: %d allocations for exceptions (%d live), %d thrown" % (
            what, n["alloc_objects"], n["inuse_objects"], t["checks"]["caught"])
    robust.runtime_other(d, prog, rest, pool_ok=True, what=what)


def test_cxx_exceptions_O0():
    check_exc("-O0", "libunwind")


def test_cxx_exceptions_O3():
    check_exc("-O3", "libunwind")


def test_cxx_exceptions_fp_unwinder():
    check_exc("-O3", "fp")


# ---- frame pointers kept by some functions only ----

# fp_mixed.c's paths: size -> the functions between site_leaf and main.
MIXED_PATHS = {16: ["mid_keep", "top_a"], 32: ["mid_busy", "top_a"], 48: ["mid_fp", "top_a"],
               64: ["mid_keep", "top_b"], 80: ["mid_busy", "top_b"], 96: ["mid_fp", "top_b"],
               128: ["mid_keep", "top_k", "via"], 144: ["mid_keep", "via"]}


def test_build_fp_unwinder_mixed():
    """Functions that keep frame pointers and functions that do not, on one path, each reached
    from two callers in turn for 20,000 rounds: under MAPPROF_UNWIND=fp every chain names exactly
    its path (site_leaf, its mid_*, its top_*, main), the counts are exact, and libunwind's dump
    has the same chains. A walk that trusted a frameless function's rbp would lose its caller,
    or mix up the two callers."""
    for opt in ("-O2", "-O0"):
        prog = lib.build_prog("fp_mixed_%s" % opt[1:], ["fp_mixed.c"],
                              flags=[opt, "-fno-omit-frame-pointer"])
        syms = lib.Symbols(prog)
        chains = {}
        for unw in ("fp", "libunwind"):
            what = "fp_mixed %s (%s)" % (opt, unw)
            cp, dump = lib.run_profiled([prog, "20000"], env={"MAPPROF_UNWIND": unw})
            assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-500:])
            robust.no_shim_lines(cp, what)
            t = lib.truth(cp, "main")
            d = lib.read_dump(dump)
            lib.check_sites(d, prog, t["sites"], what)
            seen = {}
            for c in d["chains"]:
                # The executable's frames; the start code's _start closes every chain.
                names = [n for n in lib.frame_functions(d, c, syms) if n and n != "_start"]
                if not names or names[0] != "site_leaf":
                    continue
                assert len(c["classes"]) == 1 and c["classes"][0]["min"] == c["classes"][0]["max"], \
                    "%s: one chain holds several paths' sizes: %s" % (what, c["classes"])
                size = c["classes"][0]["min"]
                assert names == ["site_leaf"] + MIXED_PATHS[size] + ["main"], \
                    "%s: the allocation of %d bytes has the chain %s, not its path %s" % (
                        what, size, names, ["site_leaf"] + MIXED_PATHS[size] + ["main"])
                assert size not in seen, "%s: two chains for the path of %d bytes" % (what, size)
                seen[size] = (c["classes"][0]["objects"], tuple(map(tuple, c["frames"])))
            assert sorted(seen) == sorted(MIXED_PATHS), "%s: paths %s" % (what, sorted(seen))
            assert all(v[0] == 20000 for v in seen.values()), "%s: %s" % (what, seen)
            chains[unw] = {size: v[1] for size, v in seen.items()}
        assert chains["fp"] == chains["libunwind"], \
            "fp_mixed %s: the frame-pointer walk's chains differ from libunwind's" % opt
