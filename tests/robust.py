"""robust.py: helpers of the robustness tests (tests/test_robust_*.py): checking one process's dump
against the truth it printed, accounting by name for the few allocations the runtime makes at no
site. It must never accept an allocation it cannot explain, nor take numbers from an earlier run."""
import os

import lib


def build(name, lang="c", flags=("-O2",), sources=None):
    src = sources or ["%s.%s" % (name, "c" if lang == "c" else "cc")]
    return lib.build_prog(name, src, flags=list(flags), lang=lang)


def runtime_other(d, binary, chains, threads=0, exact_threads=True, pool_ok=False, what="",
                  via=()):
    """Accounts for the chains that reach no site of the program, by where their frames lie:
    - pthread_create's allocation for a new thread (ld.so allocates its DTV): a chain through the
      program's spawn(), innermost frame outside the executable. One per thread created, or at
      most one when glibc reuses a cached thread stack (EXACT_THREADS False).
    - libstdc++'s emergency exception pool, once at start (POOL_OK): no executable frame,
      innermost frame in libstdc++.
    - the C runtime's own allocations inside a call the program makes from one of the functions
      named in VIA (e.g. pthread_exit loading libgcc_s): a chain through that function whose
      innermost frame is outside the executable.
    Anything else fails. Returns their summed counts."""
    syms = lib.Symbols(binary)
    exe = lib.main_module(d)["id"]
    spawned, pool, runtime = [], [], []
    for c in chains:
        names = [n for n in lib.frame_functions(d, c, syms) if n]
        first = os.path.basename(lib.module_of(d, c["frames"][0][0]))
        if c["frames"][0][0] != exe and "spawn" in names:
            spawned.append(c)
        elif pool_ok and not names and first.startswith("libstdc++"):
            pool.append(c)
        elif c["frames"][0][0] != exe and set(names) & set(via):
            runtime.append(c)
        else:
            raise AssertionError("%s: an allocation at no site of the program and of no known "
                                 "runtime kind: %s" % (what, lib.describe(d, c, binary)))
    n = lib.tally(spawned)["alloc_objects"]
    if exact_threads:
        assert n == threads, "%s: %d allocations under pthread_create for %d threads: %s" % (
            what, n, threads, "; ".join(lib.describe(d, c, binary) for c in spawned))
    else:
        assert n <= threads, "%s: %d allocations under pthread_create for %d threads" % (
            what, n, threads)
    if pool:
        assert lib.tally(pool)["alloc_objects"] == 1, "%s: libstdc++'s pool is one allocation" % what
    return lib.tally(spawned + pool + runtime)


def check_process(d, binary, truth, what, threads=0, exact_threads=True, pool_ok=False, via=()):
    """The dump D of one process holds exactly the program's truth per site and, with the
    runtime's own allocations accounted for, in total."""
    other = lib.check_sites(d, binary, truth["sites"], what)
    extra = runtime_other(d, binary, other, threads, exact_threads, pool_ok, what, via)
    want = lib.add_counts(lib.as_counts(truth["total"]), extra)
    assert d["totals"] == want, "%s totals: dump %s, program's sites + runtime %s" % (
        what, lib.fmt_counts(d["totals"]), lib.fmt_counts(want))
    assert d["info"]["pid"] == truth["pid"], "%s: dump of pid %d, program pid %d" % (
        what, d["info"]["pid"], truth["pid"])


def no_shim_lines(cp, what):
    lines = lib.shim_lines(cp.stderr)
    assert not lines, "%s: mapprof complained: %s" % (what, lines)


def files(d):
    return sorted(os.listdir(d))


def no_temp_files(d):
    tmp = [f for f in os.listdir(d) if ".tmp." in f]
    assert not tmp, "temporary files left in %s: %s" % (d, tmp)
