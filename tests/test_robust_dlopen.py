"""test_robust_dlopen.py: dlopen and dlclose. Allocations made through a library that was
dlclose'd before exit are counted exactly and their frames still symbolize: the dump keeps the
library's module (flagged unloaded) with its path, build-id and ranges, and both nm (through
lib.read_dump) and the report tool name the library's function. A second library, loaded where
the first was, gets its own module. The loader's own allocations come only through load() and
unload()."""
import os
import shutil
import subprocess

import lib
import robust


def build():
    liba = lib.build_prog("librobust_a.so", ["robust_dlib.c"],
                          flags=["-O2", "-shared", "-fPIC", "-DVARIANT=a"])
    libb = lib.build_prog("librobust_b.so", ["robust_dlib.c"],
                          flags=["-O2", "-shared", "-fPIC", "-DVARIANT=b"])
    return robust.build("robust_dlopen"), liba, libb


def lib_sites(d, libpath, name):
    """Counts of the chains whose innermost frame is NAME in the module of LIBPATH."""
    mods = [m for m in d["modules"] if m["path"] == libpath]
    assert len(mods) == 1, "modules for %s: %s" % (libpath, [m["path"] for m in d["modules"]])
    m = mods[0]
    syms = lib.Symbols(libpath)
    chains = [c for c in d["chains"] if c["frames"][0][0] == m["id"]]
    for c in chains:
        fn = syms.lookup(c["frames"][0][1] - 1)
        assert fn == name, "a chain from %s starts in %s, not %s" % (libpath, fn, name)
    return m, chains


def test_dlclosed_library_frames_symbolize():
    prog, liba, libb = build()
    cp, dump = lib.run_profiled([prog, liba, libb])
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    robust.no_shim_lines(cp, "robust_dlopen")
    t = lib.truth(cp, "main")
    d = lib.read_dump(dump)
    ma, ca = lib_sites(d, liba, "site_lib_a")
    mb, cb = lib_sites(d, libb, "site_lib_b")
    assert ma["flags"] & lib.MODULE_UNLOADED, "dlclose'd library not flagged unloaded"
    assert not mb["flags"] & lib.MODULE_UNLOADED, "loaded library flagged unloaded"
    assert ma["build_id"] and ma["ranges"] and mb["build_id"] and ma["id"] != mb["id"]
    for name, chains in (("site_lib_a", ca), ("site_lib_b", cb)):
        assert lib.tally(chains) == lib.as_counts(t["sites"][name]), "%s: dump %s, program %s" % (
            name, lib.fmt_counts(lib.tally(chains)), lib.fmt_counts(lib.as_counts(t["sites"][name])))
    # Every other chain: site_main, or the loader under load()/unload().
    rest = [c for c in d["chains"] if c not in ca and c not in cb]
    got, other = lib.by_site({"modules": d["modules"], "chains": rest}, prog)
    assert got == {"site_main": lib.as_counts(t["sites"]["site_main"])}, got
    robust.runtime_other(d, prog, other, via=("load", "unload"), what="robust_dlopen")

    # The report tool symbolizes the unloaded library's frames from its file.
    prof = lib.profile_json([dump])
    mods = {m["path"]: m for m in prof["modules"]}
    assert mods[liba]["unloaded"] and not mods[libb]["unloaded"], mods[liba]
    found = {}
    for c in prof["chains"]:
        f = c["frames"][0]
        if f["function"] in ("site_lib_a", "site_lib_b"):
            assert f["module"] == (liba if f["function"] == "site_lib_a" else libb), f
            found[f["function"]] = found.get(f["function"], 0) + c["alloc_objects"]
    assert found == {"site_lib_a": t["sites"]["site_lib_a"]["objects"],
                     "site_lib_b": t["sites"]["site_lib_b"]["objects"]}, found


def lib_counts(d, libpath, name, syms):
    """The summed counts of the chains whose innermost frame lies in LIBPATH's module, and the
    names nm gives those frames."""
    ids = {m["id"] for m in d["modules"] if m["path"] == libpath}
    chains = [c for c in d["chains"] if c["frames"][0][0] in ids]
    return lib.tally(chains), {syms.lookup(c["frames"][0][1] - 1) for c in chains}


def check_reuse(env):
    prog = robust.build("robust_dlreuse")
    _, liba, libb = build()
    cp, dump = lib.run_profiled([prog, liba, libb], env=env)
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    if not lib.truth(cp, "where")["same_address"]:
        raise lib.Skip("the loader put the second library elsewhere")
    t = lib.truth(cp, "main")
    d = lib.read_dump(dump)
    for path, name in ((liba, "site_lib_a"), (libb, "site_lib_b")):
        got, names = lib_counts(d, path, name, lib.Symbols(path))
        want = lib.as_counts(t["sites"][name])
        assert got == want and names == {name}, (
            "%s (%s): dump %s at %s, the program counted %s" % (
                name, os.path.basename(path), lib.fmt_counts(got), sorted(names),
                lib.fmt_counts(want)))
    # The program's own site, called before, between and after the libraries (each dlclose a
    # new epoch of chain keys): one chain, all of its calls (lib.read_dump refuses two chains
    # with the same frames).
    syms = lib.Symbols(prog)
    mains = [c for c in d["chains"] if "site_main" in lib.frame_functions(d, c, syms)]
    assert len(mains) == 1 and lib.tally(mains) == lib.as_counts(t["sites"]["site_main"]), (
        "site_main: %d chains, %s; the program counted %s" % (
            len(mains), lib.fmt_counts(lib.tally(mains)),
            lib.fmt_counts(lib.as_counts(t["sites"]["site_main"]))))


def test_dlopen_second_library_where_the_closed_one_was():
    """Library B, loaded where the dlclose'd A was, runs code at A's very return addresses: B's
    allocations are B's chains, not counted to A's (whose frames were resolved while A was
    loaded)."""
    check_reuse({})


def test_dlopen_second_library_where_the_closed_one_was_fp():
    check_reuse({"MAPPROF_UNWIND": "fp"})


def test_dlopen_relative_path_recorded_whole():
    """dlopen("./lib.so") names the library relative to the working directory of the day: the dump
    records its whole path (the mapping's), so the report, run from elsewhere, symbolizes it."""
    prog, liba, libb = build()
    libdir = os.path.dirname(liba)
    cp, dump = lib.run_profiled([prog, "./" + os.path.basename(liba), "./" + os.path.basename(libb)],
                                cwd=libdir)
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    t = lib.truth(cp, "main")
    d = lib.read_dump(dump)
    paths = {m["path"] for m in d["modules"]}
    assert liba in paths and libb in paths, sorted(paths)
    assert not [p for p in paths if p.startswith("./")], sorted(paths)
    # The report tool, from another directory, names the library's function.
    prof = lib.profile_json([dump])
    found = {}
    for c in prof["chains"]:
        for f in c["frames"]:
            if f["function"] in ("site_lib_a", "site_lib_b"):
                found[f["function"]] = found.get(f["function"], 0) + c["alloc_objects"]
    assert found == {"site_lib_a": t["sites"]["site_lib_a"]["objects"],
                     "site_lib_b": t["sites"]["site_lib_b"]["objects"]}, found


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout
    return [l.split()[-1] for l in out.splitlines() if "Build ID" in l][0]


def test_dlopen_rebuilt_plugin_reloaded_under_its_name():
    """A plugin rebuilt and loaded again under its own name, at the same address: another object
    (its build-id), so a module and chains of its own, not the first build's."""
    prog = robust.build("robust_dlreuse")
    _, liba, libb = build()
    d = lib.tmpdir()
    plugin, new = os.path.join(d, "libplugin.so"), os.path.join(d, "new.so")
    shutil.copy(liba, plugin)
    shutil.copy(libb, new)
    cp, dump = lib.run_profiled([prog, plugin, plugin, new])
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    if not lib.truth(cp, "where")["same_address"]:
        raise lib.Skip("the loader put the second build elsewhere")
    t = lib.truth(cp, "main")
    dd = lib.read_dump(dump)
    mods = {m["id"]: m for m in dd["modules"] if m["path"] == plugin}
    assert len(mods) == 2, "modules at %s: %s" % (plugin, list(mods.values()))
    for src, name in ((liba, "site_lib_a"), (libb, "site_lib_b")):
        ids = {i for i, m in mods.items() if m["build_id"] == build_id(src)}
        chains = [c for c in dd["chains"] if c["frames"][0][0] in ids]
        assert len(ids) == 1 and lib.tally(chains) == lib.as_counts(t["sites"][name]), (
            "%s: %d modules, dump %s, the program counted %s" % (
                name, len(ids), lib.fmt_counts(lib.tally(chains)),
                lib.fmt_counts(lib.as_counts(t["sites"][name]))))
