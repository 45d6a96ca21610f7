"""test_shim_valgrind.py: the dump's totals against valgrind memcheck's heap summary of the same
program run without mapprof ("total heap usage: N allocs, M frees, B bytes allocated" and "in use
at exit: B bytes in N blocks"). Every difference in definition is accounted for below, from what
the program reports, never from numbers of an earlier run. Skips when valgrind is absent.

What valgrind and mapprof count alike (checked by these tests, not assumed):
- realloc(p, n): valgrind counts an alloc of n bytes and a free of p; mapprof one object of n bytes
  and the release of p. So valgrind's frees equal mapprof's alloc_objects - inuse_objects.
- realloc(p, 0) frees p and returns NULL under both, with no new alloc; malloc(0) is an alloc of 0
  bytes under both; failed calls count nothing under both.
- The runtime's own allocations (libstdc++'s emergency exception pool) are seen by both; valgrind's
  own preloaded library allocates nothing that it counts. valgrind frees the runtime's memory at
  exit (__libc_freeres, __gnu_cxx::__freeres) unless told not to; the test tells it not to.
Where they differ:
- pvalloc: valgrind does not implement it (it aborts the program), so the C program runs with
  --portable, which leaves pvalloc out.
- Nothing else: both count C++'s operator new at the size asked of it (for aligned new, before
  libstdc++ rounds it up to a multiple of the alignment for aligned_alloc)."""
import re
import shutil

import lib
import test_shim_api


def valgrind(argv):
    if not shutil.which("valgrind"):
        raise lib.Skip("valgrind is not installed")
    # At exit valgrind normally calls glibc's __libc_freeres and libstdc++'s __gnu_cxx::__freeres
    # to release the runtime's own memory (the emergency pool among it), which a normal process
    # never does: turned off, so both see the process end the same way.
    cp, _ = lib.run(["valgrind", "--tool=memcheck", "--leak-check=no", "--run-libc-freeres=no",
                     "--run-cxx-freeres=no"] + argv, timeout=300)
    assert cp.returncode == 0, "valgrind %s: exit %d: %s" % (argv, cp.returncode, cp.stderr[-1500:])
    num = lambda s: int(s.replace(",", ""))  # noqa: E731
    m = re.search(r"total heap usage: ([\d,]+) allocs, ([\d,]+) frees, ([\d,]+) bytes allocated",
                  cp.stderr)
    u = re.search(r"in use at exit: ([\d,]+) bytes in ([\d,]+) blocks", cp.stderr)
    assert m and u, "no heap summary in valgrind's output: " + cp.stderr[-1500:]
    return cp, {"allocs": num(m.group(1)), "frees": num(m.group(2)), "bytes": num(m.group(3)),
                "live_bytes": num(u.group(1)), "live_blocks": num(u.group(2))}


def compare(d, vg):
    t = d["totals"]
    got = {"allocs": t["alloc_objects"], "frees": t["alloc_objects"] - t["inuse_objects"],
           "bytes": t["alloc_space"], "live_bytes": t["inuse_space"],
           "live_blocks": t["inuse_objects"]}
    assert got == vg, "valgrind %s, mapprof (adjusted) %s" % (vg, got)


def test_valgrind_c():
    prog = test_shim_api.alloc_api()
    argv = [prog, "500", "--portable"]
    cp_vg, vg = valgrind(argv)
    cp, dump = lib.run_profiled(argv)
    assert cp.returncode == 0, cp.stderr
    d = lib.read_dump(dump)
    # Both runs made the same calls: the program's own record of them agrees.
    assert lib.truth(cp_vg)["total"] == lib.truth(cp)["total"]
    compare(d, vg)
    assert vg["allocs"] == lib.truth(cp)["total"]["objects"], \
        "valgrind counted %d allocs, the program %d" % (vg["allocs"],
                                                       lib.truth(cp)["total"]["objects"])


def test_valgrind_cxx():
    prog = test_shim_api.cxx_api()
    argv = [prog, "400"]
    cp_vg, vg = valgrind(argv)
    cp, dump = lib.run_profiled(argv)
    assert cp.returncode == 0, cp.stderr
    d = lib.read_dump(dump)
    t_vg, t = lib.truth(cp_vg), lib.truth(cp)
    assert t_vg["total"] == t["total"] and t_vg["checks"] == t["checks"]
    compare(d, vg)
    # valgrind saw the same runtime allocation (libstdc++'s pool) as mapprof: one more than
    # the program's sites.
    other = lib.check_sites(d, prog, t["sites"], "cxx_api")
    extra = test_shim_api.runtime_chains(d, prog, other)
    assert vg["allocs"] == t["total"]["objects"] + extra["alloc_objects"]
