"""test_shim_stacking.py: libmapprof.so in front of another allocator (LD_PRELOAD="libmapprof.so
libjemalloc.so.2", and libtcmalloc_minimal.so.4): the program works, behaves as it does under that
allocator alone (same self-checks), and the counts are exact. jemalloc has no pvalloc (glibc's would
allocate from glibc's heap), so the C program runs with --portable under it."""
import os

import lib
import test_shim_api

LIBDIR = "/usr/lib/x86_64-linux-gnu"
JEMALLOC = os.path.join(LIBDIR, "libjemalloc.so.2")
TCMALLOC = os.path.join(LIBDIR, "libtcmalloc_minimal.so.4")


def stacked(alloc, package, prog, args, nthreads=0):
    if not os.path.exists(alloc):
        raise lib.Skip("%s is not installed (Debian package %s)" % (alloc, package))
    native, _ = lib.run([prog] + args, preload=[alloc])
    assert native.returncode == 0, "%s under %s alone: exit %d: %s" % (
        prog, alloc, native.returncode, native.stderr[-500:])
    cp, dump = lib.run_profiled([prog] + args, preload=[lib.LIB, alloc])
    assert cp.returncode == 0, "%s under mapprof + %s: exit %d: %s" % (
        prog, alloc, cp.returncode, cp.stderr[-500:])
    assert not lib.shim_lines(cp.stderr), cp.stderr
    truth = lib.truth(cp)
    a, b = lib.truth(native)["checks"], truth["checks"]
    assert a == b, "self-checks differ without / with mapprof over %s: %s" % (
        os.path.basename(alloc), {k: (a.get(k), b.get(k)) for k in set(a) | set(b)
                                  if a.get(k) != b.get(k)})
    d = lib.read_dump(dump)
    what = "%s over %s" % (os.path.basename(prog), os.path.basename(alloc))
    other = lib.check_sites(d, prog, truth["sites"], what)
    # The allocator itself links libstdc++, whose emergency pool then appears even in C.
    extra = test_shim_api.runtime_chains(d, prog, other, nthreads=nthreads,
                                         allocator=os.path.basename(alloc).split(".")[0])
    test_shim_api.check_totals(d, truth, extra, what)


def test_jemalloc_c():
    stacked(JEMALLOC, "libjemalloc2", test_shim_api.alloc_api(), ["500", "--portable"])


def test_jemalloc_cxx():
    stacked(JEMALLOC, "libjemalloc2", test_shim_api.cxx_api(), ["300"])


def test_jemalloc_threads():
    prog = lib.build_prog("threads", ["threads.c"])
    stacked(JEMALLOC, "libjemalloc2", prog, ["4", "20000"], nthreads=4)


def test_tcmalloc_c():
    stacked(TCMALLOC, "libtcmalloc-minimal4", test_shim_api.alloc_api(), ["500"])


def test_tcmalloc_cxx():
    stacked(TCMALLOC, "libtcmalloc-minimal4", test_shim_api.cxx_api(), ["300"])


def test_tcmalloc_threads():
    prog = lib.build_prog("threads", ["threads.c"])
    stacked(TCMALLOC, "libtcmalloc-minimal4", prog, ["4", "20000"], nthreads=4)
