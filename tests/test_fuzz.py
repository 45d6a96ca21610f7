"""test_fuzz.py: a bounded libFuzzer run (25 s) of the dump reader and of what the views build
from an accepted dump (tests/fuzz/fuzz_load.c: symbolization, merging, exports, growth search,
call trees; built with clang -fsanitize=fuzzer,address,undefined) from the seed corpus in
tests/fuzz/corpus/ plus a fresh real dump. Any crash, leak, sanitizer report or timeout fails
the test. New inputs go to a temporary directory; the committed corpus is only read.
`python3 tests/test_fuzz.py --seeds` rewrites the seed corpus (synthetic dumps, no machine
paths)."""
import os
import shutil
import struct
import subprocess
import sys

import lib

FUZZ_DIR = os.path.join(lib.ROOT, "tests", "fuzz")
SECONDS = 25


def record(tag, payload):
    return struct.pack("<IIQ", tag, 0, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def synth_dump(nchains=3, unknown_tag=False, classes=True, version=2, sources=False):
    """A small valid dump built by hand from the format in include/mapprof_dump.h (version 2:
    a FRAMES record and frame indices; version 1: each chain's frames inline)."""
    out = b"MAPPROF\0" + struct.pack("<II", version, 16)
    out += record(1, struct.pack("<QQQQIIIIQQQ", 4242, 1, 10**18, 10**18 + 5000, 1, 64, 0, 0,
                                 0, 0, 1))
    out += record(2, b"/usr/bin/prog")
    out += record(3, b"/usr/bin/prog\0--flag\0")
    mods = [(b"/usr/bin/prog", 1), (b"/usr/lib/libfoo.so.1", 0)]
    for i, (path, flags) in enumerate(mods):
        bid = bytes(range(i, i + 20))
        rng = struct.pack("<QQQII", 0x400000 + i * 0x100000, 0x401000 + i * 0x100000, 0, 5, 0)
        out += record(4, struct.pack("<IIQIIII", i, flags, 0x400000 * i, 1, len(bid), len(path),
                                     0) + rng + bid + path)
    if unknown_tag:
        out += record(0x99, b"future record")
    if sources:  # a merged dump's SOURCES: two process images
        out += record(7, b"".join(struct.pack("<QQQQII", pid, 1, 10**18, 4096 * seq, seq,
                                              len(exe)) + exe +
                                  b"\0" * (-len(exe) % 8)
                                  for pid, seq, exe in ((4242, 0, b"/usr/bin/prog"),
                                                        (4243, 2, b"/usr/bin/other-prog"))))
    tot = [0, 0, 0, 0]
    table = []
    for c in range(nchains):
        table += [(k % 2 if k != 2 else 0xFFFFFFFF, 0x1000 + c * 16 + k) for k in range(c + 1)]
    if version >= 2:
        out += record(6, b"".join(struct.pack("<IIQ", m, 0, o) for m, o in table))
    first = 0
    for c in range(nchains):
        if version >= 2:
            ids = list(range(first, first + c + 1))
            frames = struct.pack("<%dI" % len(ids), *ids) + b"\0" * (4 * (len(ids) % 2))
        else:
            frames = b"".join(struct.pack("<IIQ", m, 0, o) for m, o in table[first:first + c + 1])
        first += c + 1
        size = 16 << c
        n = 3 + c
        cls = struct.pack("<IIQQQQ", size.bit_length(), 0, n, n * size, size, size) if classes else b""
        alloc = (n, n * size, 1, size)
        out += record(5, struct.pack("<IIIIQQQQ", c, 1 if c == 2 else 0, c + 1, 1 if classes else 0,
                                     *alloc) + frames + cls)
        tot = [a + b for a, b in zip(tot, alloc)]
    out += record(0x454E44, struct.pack("<QQQQQQ", nchains, len(mods), *tot))
    return out


def write_seeds():
    d = os.path.join(FUZZ_DIR, "corpus")
    os.makedirs(d, exist_ok=True)
    seeds = {"empty-profile": synth_dump(0), "three-chains": synth_dump(3),
             "unknown-tag": synth_dump(2, unknown_tag=True),
             "no-classes": synth_dump(2, classes=False),
             "three-chains-v1": synth_dump(3, version=1),
             "merged-sources": synth_dump(3, sources=True)}
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


def build_fuzzer():
    if not shutil.which("clang"):
        raise lib.Skip("clang is not installed")
    out = os.path.join(lib.BUILD, "tests", "fuzz_load")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    report = os.path.join(lib.ROOT, "report")
    # the whole report tool but its main()
    srcs = [os.path.join(FUZZ_DIR, "fuzz_load.c")] + \
        sorted(os.path.join(report, f) for f in os.listdir(report)
               if f.endswith(".c") and f != "main.c")
    cmd = ["clang", "-std=gnu11", "-g", "-O1", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
           "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=all",
           "-I" + os.path.join(lib.ROOT, "include"), "-I" + report,
           "-o", out] + srcs + ["-ldw", "-lelf", "-lz", "-liberty", "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if "fuzzer" in r.stderr and ("cannot find" in r.stderr or "not found" in r.stderr):
            raise lib.Skip("libFuzzer runtime missing (libclang-rt-14-dev)")
        raise AssertionError("building the fuzzer failed:\n" + r.stderr[-1500:])
    return out


def test_fuzz_seeds_are_valid_dumps():
    """The synthetic seeds are dumps the report accepts, with the totals they were built with,
    and every view runs on each of them."""
    d = lib.tmpdir("mapprof-seeds-")
    path = os.path.join(d, "three.dump")
    with open(path, "wb") as f:
        f.write(synth_dump(3))
    prof = lib.profile_json([path])
    assert prof["totals"]["alloc_objects"] == 3 + 4 + 5
    assert prof["totals"]["alloc_space"] == 3 * 16 + 4 * 32 + 5 * 64
    assert [m["symbols"] for m in prof["modules"]] == ["missing", "missing"]
    # every view, on every seed (the empty profile included), under the sanitizers
    out = os.path.join(d, "out")
    for name in sorted(os.listdir(os.path.join(FUZZ_DIR, "corpus"))):
        seed = os.path.join(FUZZ_DIR, "corpus", name)
        for view in (["top"], ["top", "--lines"], ["tree"], ["tree", "--json"], ["peek", "."],
                     ["growth"], ["diff", seed], ["export"],
                     ["export", "--format", "collapsed"],
                     ["export", "--format", "pprof", "-o", out], ["flame", "-o", out],
                     ["flame", seed, "-o", out], ["merge", "-o", out]):
            if os.path.exists(out):
                os.unlink(out)
            lib.mapprof(*(view + ["-q", seed]))


def test_fuzz_loader_bounded_run():
    exe = build_fuzzer()
    work = lib.tmpdir("mapprof-fuzz-")
    new = os.path.join(work, "new")
    seeds = os.path.join(work, "seeds")
    os.makedirs(new)
    shutil.copytree(os.path.join(FUZZ_DIR, "corpus"), seeds)
    # a real dump of a real run joins the seeds
    cp, dump = lib.run_profiled(["/bin/true"])
    if os.path.exists(dump):
        shutil.copy(dump, os.path.join(seeds, "real.dump"))
    r = subprocess.run([exe, "-max_total_time=%d" % SECONDS, "-timeout=10", "-rss_limit_mb=1024",
                        "-max_len=16384", "-print_final_stats=1", "-artifact_prefix=" + work + "/",
                        new, seeds], capture_output=True, text=True, timeout=SECONDS + 120)
    log = r.stderr
    crashes = [f for f in os.listdir(work) if f.startswith(("crash-", "leak-", "timeout-", "oom-"))]
    assert r.returncode == 0 and not crashes, \
        "fuzzer exit %d, artifacts %s:\n%s" % (r.returncode, crashes, log[-3000:])
    assert "stat::number_of_executed_units" in log, log[-1000:]


if __name__ == "__main__" and "--seeds" in sys.argv:
    write_seeds()
