"""test_shim_size_classes.py: every size class of every call site exact (count, bytes, smallest and
largest request), against the program's own tally, from two threads, in both unwinding modes.

The per-thread counters keep an entry's smallest and largest request in 32 bits; a request of
2^32 bytes or more is counted in the global table instead. No test can allocate 4 GiB requests in
numbers, so a test build of the shim (build/tests/libmapprof-limits.so, made by `make`) lowers
that limit to 1,000 bytes (-DMP_TC_BIG=1000): most of site_mixed's and site_calloc's requests then
take the global table's way, mixed with the per-thread entries of the same chains and classes. Its
dump must be as exact as the real build's."""
import os
import subprocess

import lib

LIMITS = os.path.join(lib.BUILD, "tests", "libmapprof-limits.so")
THREADS = 2
ROUNDS = 3000


def limits_lib():
    r = subprocess.run(["make", "-s", "build/tests/libmapprof-limits.so"], cwd=lib.ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, "cannot build the test shim: %s" % r.stderr[-2000:]
    return LIMITS


def site_classes(d, binary):
    """{site: {log2: [objects, bytes, min, max]}} over the dump's chains through each site."""
    syms = lib.Symbols(binary)
    out = {}
    for c in d["chains"]:
        names = [n for n in lib.frame_functions(d, c, syms) if n and n.startswith("site_")]
        if not names:
            continue
        acc = out.setdefault(names[0], {})
        for k in c["classes"]:
            a = acc.get(k["log2"])
            if a is None:
                acc[k["log2"]] = [k["objects"], k["bytes"], k["min"], k["max"]]
            else:
                acc[k["log2"]] = [a[0] + k["objects"], a[1] + k["bytes"], min(a[2], k["min"]),
                                  max(a[3], k["max"])]
    return out


def check(lib_path, env=None, flags=("-O2",), name="size_classes"):
    prog = lib.build_prog(name, ["size_classes.c"], flags=flags)
    cp, dump = lib.run_profiled([prog, str(THREADS), str(ROUNDS)], env=env, preload=[lib_path])
    assert cp.returncode == 0, "size_classes exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp, role="size_classes")
    assert "failed" not in truth["checks"], truth["checks"]
    want_classes = next(j["classes"] for j in lib.json_lines(cp.stdout) if "classes" in j)
    d = lib.read_dump(dump)
    assert d["info"]["not_recorded"] == 0, d["info"]
    lib.check_sites(d, prog, truth["sites"], name)
    got = site_classes(d, prog)
    errors = []
    for site, rows in sorted(want_classes.items()):
        want = {r[0]: r[1:] for r in rows}
        have = got.get(site, {})
        for log2 in sorted(set(want) | set(have)):
            if want.get(log2) != have.get(log2):
                errors.append("%s class %d: dump %s, program %s (objects, bytes, min, max)" % (
                    site, log2, have.get(log2), want.get(log2)))
    assert not errors, "size classes differ:\n  " + "\n  ".join(errors[:20])
    # The classes cover what the program asked for: site_mixed reaches 256 KiB.
    assert max(r[0] for r in want_classes["site_mixed"]) == 18, want_classes["site_mixed"]
    return d


def test_size_classes_exact():
    check(lib.LIB)


def test_size_classes_exact_fp():
    check(lib.LIB, env={"MAPPROF_UNWIND": "fp"}, flags=("-O2", "-fno-omit-frame-pointer"),
          name="size_classes_fp")


def test_size_classes_counter_limits():
    check(limits_lib())


def test_size_classes_counter_limits_fp():
    check(limits_lib(), env={"MAPPROF_UNWIND": "fp"},
          flags=("-O2", "-fno-omit-frame-pointer"), name="size_classes_fp")
