"""test_shim_api.py: the whole allocation API (C and C++) under libmapprof.so. Each program counts
its own allocations per call site; the dump, read by lib.read_dump, must hold exactly those counts
per site and in total, and every self-check (return values, errno, alignment, usable sizes) must
come out the same with and without the profiler. Never compare with numbers from an earlier run."""
import os

import lib

C_ITERS = "1000"
CXX_ITERS = "600"


def alloc_api(opt="-O2"):
    return lib.build_prog("alloc_api" + ("" if opt == "-O2" else opt.replace("-", "_")),
                          ["alloc_api.c"], flags=[opt])


def cxx_api(opt="-O2"):
    return lib.build_prog("cxx_api" + ("" if opt == "-O2" else opt.replace("-", "_")),
                          ["cxx_api.cc"], flags=[opt], lang="c++")


def runtime_chains(d, binary, chains, nthreads=0, allocator=None):
    """Accounts for chains that reach no site: allocations the C/C++ runtime makes on its own.
    Each must be one of the two kinds below, identified by where its frames lie; anything else
    fails the test. Returns their summed counts.
    - libstdc++'s emergency exception-handling pool (eh_alloc.cc), allocated once when ld.so runs
      libstdc++'s initializers: no frame in the executable, innermost frame in libstdc++. C++
      programs load libstdc++; so do C programs stacked over jemalloc or tcmalloc.
    - pthread_create's per-thread allocation (ld.so's _dl_allocate_tls allocates the thread's
      DTV): through the program's spawn() and libc, innermost frame outside the executable, one
      object per thread created.
    - when an allocator is stacked under mapprof (ALLOCATOR, the basename prefix of its library),
      what its own initializers allocate through operator new, which mapprof sees now that it
      exports the operators: no frame in the executable, innermost frame in that library."""
    syms = lib.Symbols(binary)
    exe = lib.main_module(d)["id"]
    pool, threads, own = [], [], []
    for c in chains:
        names = [n for n in lib.frame_functions(d, c, syms) if n]
        first = os.path.basename(lib.module_of(d, c["frames"][0][0]))
        if not names and first.startswith("libstdc++"):
            pool.append(c)
        elif c["frames"][0][0] != exe and "spawn" in names:
            threads.append(c)
        elif not names and allocator and first.startswith(allocator):
            own.append(c)
        else:
            raise AssertionError("an allocation at no site of the program and of no known "
                                 "runtime kind: " + lib.describe(d, c, binary))
    if pool:
        assert len(pool) == 1 and pool[0]["alloc_objects"] == 1, \
            "libstdc++'s pool is one allocation: " + "; ".join(lib.describe(d, c) for c in pool)
    got = lib.tally(threads)["alloc_objects"]
    assert got == nthreads, "%d allocations under pthread_create for %d threads: %s" % (
        got, nthreads, "; ".join(lib.describe(d, c, binary) for c in threads))
    return lib.tally(pool + threads + own)


def check_totals(d, truth, extra, what):
    want = lib.add_counts(lib.as_counts(truth["total"]), extra)
    assert d["totals"] == want, "%s totals: dump %s, program's sites + runtime %s" % (
        what, lib.fmt_counts(d["totals"]), lib.fmt_counts(want))


def check_c(opt):
    prog = alloc_api(opt)
    cp, dump = lib.run_profiled([prog, C_ITERS])
    assert cp.returncode == 0, "alloc_api exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)
    d = lib.read_dump(dump)
    other = lib.check_sites(d, prog, truth["sites"], "alloc_api " + opt)
    # The program writes with write(2) and uses no stdio: every allocation is at a site.
    assert not other, "allocations outside the sites: " + "; ".join(
        lib.describe(d, c, prog) for c in other)
    check_totals(d, truth, lib.tally([]), "alloc_api " + opt)
    # The failing calls counted nothing.
    assert truth["sites"]["site_fail"]["objects"] == 0
    # mapprof's own frames are gone: every chain's innermost frame is the site itself.
    syms = lib.Symbols(prog)
    for c in d["chains"]:
        first = lib.frame_functions(d, c, syms)[0]
        assert first and first.startswith("site_"), \
            "innermost frame is not the calling site: " + lib.describe(d, c, prog)


def test_c_api_counts():
    check_c("-O2")


def test_c_api_counts_O0():
    check_c("-O0")


def test_c_api_behaves_the_same():
    """Return values, errno, alignment, zeroing, contents and malloc_usable_size: identical with
    and without libmapprof.so, for the successful and the failing calls."""
    prog = alloc_api()
    native, _ = lib.run([prog, "200"])
    assert native.returncode == 0, native.stderr
    cp, _ = lib.run_profiled([prog, "200"])
    assert cp.returncode == 0, cp.stderr
    a, b = lib.truth(native)["checks"], lib.truth(cp)["checks"]
    diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert not diff, "without / with mapprof: %s" % diff
    # And the facts themselves (glibc): failures return NULL with ENOMEM, a bad alignment EINVAL.
    enomem, einval = 12, 22
    for k, v in b.items():
        if k.endswith("_null"):
            assert v == 1, "%s: the call did not fail" % k
        if k.endswith("_errno") and ("huge" in k or "overflow" in k):
            assert v == enomem, "%s = %d" % (k, v)
    assert b["posix_memalign_align3_ret"] == einval and b["posix_memalign_align3_untouched"]
    assert all(v == 1 for k, v in b.items() if k.endswith("_aligned")), b
    assert b["errno_after_malloc"] == b["errno_after_free"] == 4242


def check_cxx(opt):
    prog = cxx_api(opt)
    cp, dump = lib.run_profiled([prog, CXX_ITERS])
    assert cp.returncode == 0, "cxx_api exited %d: %s" % (cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)
    d = lib.read_dump(dump)
    other = lib.check_sites(d, prog, truth["sites"], "cxx_api " + opt)
    extra = runtime_chains(d, prog, other)
    check_totals(d, truth, extra, "cxx_api " + opt)


def test_cxx_api_counts():
    check_cxx("-O2")


def test_cxx_api_counts_O0():
    check_cxx("-O0")


def test_sites_through_report():
    """The same per-site truth, found through the report tool's symbolized JSON export (function
    names from libdw) instead of nm: the shim's frames symbolize to the calling site."""
    prog = alloc_api()
    cp, dump = lib.run_profiled([prog, "300"])
    truth = lib.truth(cp)
    prof = lib.profile_json([dump])
    got = {}
    for c in prof["chains"]:
        names = [f.get("function") or "" for f in c["frames"]]
        sites = [n for n in names if n.startswith("site_")]
        if sites:
            acc = got.setdefault(sites[0], dict.fromkeys(lib.COUNTS, 0))
            for k in lib.COUNTS:
                acc[k] += c[k]
    for name, t in truth["sites"].items():
        g = got.get(name, dict.fromkeys(lib.COUNTS, 0))
        assert g == lib.as_counts(t), "%s: export %s, program %s" % (
            name, lib.fmt_counts(g), lib.fmt_counts(lib.as_counts(t)))
    assert prof["totals"] == lib.read_dump(dump)["totals"]
