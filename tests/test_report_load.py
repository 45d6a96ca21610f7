"""test_report_load.py: the dump reader refuses bad input with one line `mapprof: FILE: what is
wrong` and exit status 2, never a crash, a hang or a sanitizer report: empty, truncated (at every
record boundary and inside records), corrupt, foreign and newer-version files. Unknown record tags
are skipped. The files are made from a real dump of a real run, changed in known ways. A
version 1 dump (frames inline in each chain, no FRAMES record) still loads, to the same
profile."""
import json
import os
import shutil
import struct
import subprocess

import lib

SRC = os.path.join(lib.ROOT, "tests", "progs", "report_sites.c")
_dump = []
TMP = lib.tmpdir("mapprof-load-")


def text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def real_dump():
    if not _dump:
        exe = lib.build_prog("report_sites_O2", [SRC], flags=["-O2", "-g"])
        cp, dump = lib.run_profiled([exe, "1"])
        assert cp.returncode == 0
        with open(dump, "rb") as f:
            _dump.append(f.read())
    return _dump[0]


def records(data):
    """(offset, tag, length) of every record, walking the format by hand."""
    off, out = 16, []
    while off + 16 <= len(data):
        tag, flags, length = struct.unpack_from("<IIQ", data, off)
        out.append((off, tag, length))
        off += 16 + (length + 7) // 8 * 8
    return out


def write(name, data):
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def refused(name, data, *words):
    """mapprof must exit 2 with one line naming the file; returns the line."""
    path = write(name, data)
    cp = lib.mapprof("top", path, check=False)
    err = text(cp.stderr)
    assert cp.returncode == 2, "%s: exit %d, stderr %r" % (name, cp.returncode, err[-400:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapprof: %s: " % path), (name, err[-400:])
    for w in words:
        assert w in lines[0], (name, w, lines[0])
    return lines[0]


def test_report_load_refusal_is_exit_2_every_time():
    """A dump that fails its checks is refused with exit 2 and one line on every run. The dump
    being read was not freed before dying, and LeakSanitizer (the suite's build) found it
    unreachable now and then, depending on the stack's layout: about half the runs printed a
    leak report and exited 1, which made the checks of bad input in this file fail at random."""
    data = real_dump()
    for name, bad, want in (("flaky-empty.dump", b"", "file is empty"),
                            ("flaky-foreign.dump", b"#!/bin/sh\n" * 8, "not a mapprof dump"),
                            ("flaky-after.dump", data + data, "data after the END record")):
        for _ in range(16):
            refused(name, bad, want)


def test_report_load_accepts_the_real_dump():
    path = write("good.dump", real_dump())
    assert lib.mapprof("top", path).returncode == 0


def test_report_load_empty_foreign_version():
    refused("empty.dump", b"", "empty")
    refused("text.dump", b"hello, world\n" * 10, "not a mapprof dump")
    with open("/bin/sh", "rb") as f:
        refused("elf.dump", f.read(4096), "not a mapprof dump")
    data = bytearray(real_dump())
    struct.pack_into("<I", data, 8, 3)
    refused("v3.dump", bytes(data),
            "dump format version 3 is not supported (this mapprof reads versions 1 to 2)")
    refused("magic-only.dump", b"MAPPROF\0", "truncated")


def test_report_load_truncated_everywhere():
    data = real_dump()
    cuts = {0, 3, 8, 15, 16, 17}
    for off, tag, length in records(data):
        cuts.update({off, off + 8, off + 16, off + 16 + length // 2})
    cuts.update(range(len(data) - 64, len(data)))
    for n in sorted(c for c in cuts if 0 <= c < len(data)):
        line = refused("cut%d.dump" % n, data[:n])
        assert "(at offset" in line or "empty" in line or n < 16, line


def test_report_load_end_totals_checked():
    data = bytearray(real_dump())
    off, tag, length = records(bytes(data))[-1]
    assert tag == 0x454E44
    struct.pack_into("<Q", data, off + 16 + 16, struct.unpack_from("<Q", data, off + 32)[0] + 1)
    refused("total.dump", bytes(data), "END total alloc_objects", "(at offset %d)" % off)
    data = bytearray(real_dump())
    struct.pack_into("<Q", data, off + 16, struct.unpack_from("<Q", data, off + 16)[0] + 1)
    refused("nchains.dump", bytes(data), "chains")


def test_report_load_corrupt_records():
    data = real_dump()
    recs = records(data)
    chain = next(r for r in recs if r[1] == 5)
    module = next(r for r in recs if r[1] == 4)
    # a length that runs past the end of the file
    d = bytearray(data)
    struct.pack_into("<Q", d, chain[0] + 8, 1 << 62)
    refused("huge.dump", bytes(d), "claims")
    # nframes that does not fit the record
    d = bytearray(data)
    struct.pack_into("<I", d, chain[0] + 16 + 8, 0xFFFFFFFF)
    refused("nframes.dump", bytes(d), "does not match")
    # a chain's frame index past the FRAMES record
    frames = next(r for r in recs if r[1] == 6)
    d = bytearray(data)
    struct.pack_into("<I", d, chain[0] + 16 + 48, frames[2] // 16)
    refused("badframe.dump", bytes(d), "frame 0 is frame %d, past the" % (frames[2] // 16))
    # a frame naming a module that does not exist
    d = bytearray(data)
    struct.pack_into("<I", d, frames[0] + 16, 12345)
    refused("badmod.dump", bytes(d), "names module 12345")
    # a FRAMES record that is not whole frames, a second one, and none before the chains
    d = bytearray(data)
    struct.pack_into("<Q", d, frames[0] + 8, frames[2] - 8)
    refused("frames-len.dump", bytes(d), "whole number")
    fr = data[frames[0]:frames[0] + 16 + frames[2]]
    refused("frames-twice.dump", data[:frames[0]] + fr + data[frames[0]:], "second FRAMES")
    end = recs[-1][0]
    refused("frames-late.dump", data[:frames[0]] + data[frames[0] + len(fr):end] + fr +
            data[end:], "before the FRAMES record")
    # a module id far out of range (memory must stay bounded by the input)
    d = bytearray(data)
    struct.pack_into("<I", d, module[0] + 16, 0x7FFFFFFF)
    refused("modid.dump", bytes(d), "module id")
    # size classes that do not sum to the chain's counts
    d = bytearray(data)
    nframes = struct.unpack_from("<I", d, chain[0] + 16 + 8)[0]
    cls = chain[0] + 16 + 48 + (4 * nframes + 7) // 8 * 8
    struct.pack_into("<Q", d, cls + 8, struct.unpack_from("<Q", d, cls + 8)[0] + 1)
    refused("classes.dump", bytes(d), "size classes")
    # INFO not first
    d = bytearray(data)
    struct.pack_into("<I", d, 16, 5)
    refused("noinfo.dump", bytes(d), "INFO")
    # data after END
    refused("trailing.dump", data + b"\0" * 16, "after the END")
    # a directory
    cp = lib.mapprof("top", TMP, check=False)
    assert cp.returncode == 2 and "directory" in text(cp.stderr)
    cp = lib.mapprof("top", os.path.join(TMP, "does-not-exist.dump"), check=False)
    assert cp.returncode == 2 and "cannot open" in text(cp.stderr)


def as_version1(data):
    """The same dump in format version 1: each chain's frames inline, no FRAMES record."""
    recs = records(data)
    frames = next(r for r in recs if r[1] == 6)
    table = data[frames[0] + 16:frames[0] + 16 + frames[2]]
    out = bytearray(data[:16])
    struct.pack_into("<I", out, 8, 1)
    for off, tag, length in recs:
        body = data[off + 16:off + 16 + length]
        if tag == 6:
            continue
        if tag == 5:
            n = struct.unpack_from("<I", body, 8)[0]
            ids = struct.unpack_from("<%dI" % n, body, 48)
            body = body[:48] + b"".join(table[16 * i:16 * i + 16] for i in ids) + \
                body[48 + (4 * n + 7) // 8 * 8:]
        out += struct.pack("<IIQ", tag, 0, len(body)) + body + b"\0" * (-len(body) % 8)
    return bytes(out)


def test_report_load_reads_version1():
    data = real_dump()
    old = as_version1(data)
    assert struct.unpack_from("<I", old, 8)[0] == 1 and len(old) > len(data)
    base = lib.profile_json([write("v2-good.dump", data)])
    got = lib.profile_json([write("v1.dump", old)])
    assert got["totals"] == base["totals"] and got["chains"] == base["chains"]
    assert lib.read_dump(os.path.join(TMP, "v1.dump"))["chains"] == \
        lib.read_dump(os.path.join(TMP, "v2-good.dump"))["chains"]


def test_report_load_skips_unknown_tags():
    data = real_dump()
    end = records(data)[-1][0]
    extra = struct.pack("<IIQ", 0x77, 0, 5) + b"abcde\0\0\0"
    path = write("newtag.dump", data[:end] + extra + data[end:])
    base = lib.profile_json([write("good2.dump", data)])
    got = lib.profile_json([path])
    assert got["totals"] == base["totals"] and len(got["chains"]) == len(base["chains"])


def test_report_load_random_corruption():
    """Flipped bytes at 300 pseudo-random places: each file loads or is refused with exit 2;
    the sanitized build would abort (exit 1 plus a report) on any memory error."""
    import random
    rnd = random.Random(1234)
    data = real_dump()
    for i in range(300):
        d = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            d[rnd.randrange(len(d))] = rnd.randrange(256)
        path = write("flip%d.dump" % i, bytes(d))
        # bytes, not text: a corrupted module path is printed as the bytes it holds
        cp = subprocess.run([lib.MAPPROF, "export", path], capture_output=True, timeout=120)
        err = text(cp.stderr)
        assert cp.returncode in (0, 2) and "Sanitizer" not in err and "runtime error" not in err, \
            (i, cp.returncode, err[-600:])
        os.unlink(path)


# ---- adversarial but valid dumps: time and memory stay linear in the input ----

def rec(tag, payload):
    return struct.pack("<IIQ", tag, 0, len(payload)) + payload + b"\0" * (-len(payload) % 8)


def synthetic(cmdline=b"prog\0", modules=(), chains=(), max_depth=64, pid=7, sequence=0,
              exe=b"/nonexistent/prog", start_ns=0):
    """A valid dump from parts: modules [(path, build_id)], chains [(frames, classes)] with
    frames [(module, offset)] and classes [(log2, objects, size)] (each class one size); a chain
    (frames, [], (objects, bytes)) has no classes and those totals."""
    out = b"MAPPROF\0" + struct.pack("<II", 1, 16)
    out += rec(1, struct.pack("<QQQQIIIIQQQ", pid, 1, start_ns, 0, 1, max_depth, 0, sequence, 0,
                              0, 1))
    out += rec(2, exe)
    out += rec(3, cmdline)
    out += b"".join(rec(4, struct.pack("<IIQIIII", i, 0, 0, 0, len(bid), len(path), 0) + bid +
                        path) for i, (path, bid) in enumerate(modules))
    tot = [0, 0, 0, 0]
    body = []
    for i, ch in enumerate(chains):
        frames, classes = ch[0], ch[1]
        objs = sum(n for _, n, _ in classes)
        space = sum(n * z for _, n, z in classes)
        if len(ch) > 2:
            objs, space = ch[2]
        body.append(rec(5, struct.pack("<IIIIQQQQ", i, 0, len(frames), len(classes), objs, space,
                                       0, 0) +
                        b"".join(struct.pack("<IIQ", m, 0, o) for m, o in frames) +
                        b"".join(struct.pack("<IIQQQQ", lg, 0, n, n * z, z, z)
                                 for lg, n, z in classes)))
        tot[0] += objs
        tot[1] += space
    out += b"".join(body)
    out += rec(0x454E44, struct.pack("<QQQQQQ", len(chains), len(modules), *tot))
    return out


NONE = 0xFFFFFFFF


def adversarial(size):
    """Dumps of about SIZE bytes that stress one dimension each."""
    one = [(5, 1, 16)]
    n = size // 80
    yield "cmdline", synthetic(cmdline=b"\0" * size)
    yield "modules", synthetic(modules=[(b"/nonexistent/lib%d.so" % (i % 7), struct.pack("<Q", i))
                                        for i in range(size // 72)])
    yield "fanout", synthetic(chains=[([(NONE, 0x1000 + 16 * i)], one) for i in range(n)])
    depth = 1000
    yield "deep", synthetic(max_depth=depth, chains=[
        ([(NONE, 0x100000 * i + k) for k in range(depth)], one)
        for i in range(size // (16 * depth + 112))])
    classes = [(lg, 41 - lg, 1 << (lg - 1)) for lg in range(1, 41)]
    yield "classes", synthetic(chains=[([(NONE, 0x1000 + 16 * i)], classes)
                                       for i in range(size // (64 + 16 + 40 * 40))])


def test_report_load_bounded_time_and_memory():
    """Valid dumps built to stress one dimension each (a huge command line, thousands of
    modules, a very wide and a very deep call tree, every size class in every chain): every view
    finishes within seconds, and its peak memory is a small multiple of the input (measured on
    the optimized build: the sanitizers' own memory would hide it)."""
    exe = os.path.join(lib.BUILD, "mapprof")
    if not os.path.exists(exe):
        raise lib.Skip("%s is not built (make build/mapprof)" % exe)
    size = 2 << 20
    out = os.path.join(TMP, "adv.out")
    # (`peek .` of the deep tree prints every function's whole subtree: gigabytes, in time
    # and memory linear in what it prints; here it peeks at the outermost frames)
    views = (["top"], ["tree"], ["peek", "3e7$"], ["growth"], ["diff", None], ["export"],
             ["export", "--format", "collapsed"], ["export", "--format", "pprof", "-o", out],
             ["flame", "-o", out], ["merge", "-o", out])
    # runs the view and prints its exit status and peak RSS (KiB) from the rusage of its child
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.monotonic()\n"
             "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, timeout=60)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,\n"
             "      time.monotonic() - t)\n")
    for name, data in adversarial(size):
        path = write("adv-%s.dump" % name, data)
        for view in views:
            if os.path.exists(out):
                os.unlink(out)
            args = [path if a is None else a for a in view] + ["-q", path]
            cp = subprocess.run(["python3", "-c", probe, exe] + args, capture_output=True,
                                text=True, timeout=120)
            assert cp.returncode == 0, (name, view, "no result in 60 s", cp.stderr[-500:])
            rc, kb, took = cp.stdout.split()
            assert rc == "0", (name, view, rc)
            assert float(took) < 30, (name, view, took)
            # a small profile's footprint plus a small multiple of the input
            assert int(kb) * 1024 < 48 * 2**20 + 40 * size, (name, view, int(kb) // 1024, "MiB")


# ---- merge writes what the reader reads ----

U64 = (1 << 64) - 1


def merged(name, *dumps):
    """mapprof merge of DUMPS (bytes); the output must load, in mapprof and in the test's own
    reader. Returns the test reader's view of it."""
    paths = [write("%s.%d.dump" % (name, i), d) for i, d in enumerate(dumps)]
    out = os.path.join(TMP, name + ".merged.dump")
    lib.mapprof("merge", "-q", *paths, "-o", out)
    cp = lib.mapprof("top", "-q", out, check=False)
    assert cp.returncode == 0, "%s: merge wrote a dump mapprof refuses: %s" % (
        name, text(cp.stderr)[-400:])
    return lib.read_dump(out, merged=True)


def test_report_load_merge_writes_what_it_reads():
    """A merged chain whose size classes do not add up to its totals is written without classes
    (which the format reads as the totals as they are), never refused on reading back: a chain
    with classes merged with the same chain from a dump that has none (the format allows
    nclasses 0), and classes whose sums pass 2^64 - 1 and are capped. A chain's bytes without
    objects is refused on reading (no writer makes one; merge used to drop it silently)."""
    site = [(NONE, 0x1000)]
    with_classes = synthetic(chains=[(site, [(5, 3, 16)])])
    without = synthetic(chains=[(site, [], (2, 100))], pid=8)
    d = merged("noclasses", with_classes, without)
    (c,) = d["chains"]
    assert (c["alloc_objects"], c["alloc_space"], c["classes"]) == (5, 148, []), c
    d = merged("classes", with_classes, synthetic(chains=[(site, [(5, 3, 16)])], pid=8))
    (c,) = d["chains"]
    assert [(k["log2"], k["objects"], k["bytes"]) for k in c["classes"]] == [(5, 6, 96)], c
    big = [(site, [(1, 1 << 63, 1), (2, 1, 2)])]
    d = merged("capped", synthetic(chains=big), synthetic(chains=big, pid=8))
    (c,) = d["chains"]
    assert (c["alloc_objects"], c["alloc_space"], c["classes"]) == (U64, U64, []), c
    refused("bytes-no-objects.dump", synthetic(chains=[(site, [], (0, 1000))]),
            "chain 0 has 1000 bytes in no object")


# ---- a merged dump names the process images it came from (SOURCES) ----

def source(pid, exe, sequence=0, start_ns=0, ppid=1, sample_period=0):
    return struct.pack("<QQQQII", pid, ppid, start_ns, sample_period, sequence, len(exe)) + exe + \
        b"\0" * (-len(exe) % 8)


def test_report_load_merge_names_its_sources():
    """merge writes a SOURCES record: one entry per input (pid, ppid, start time, sequence,
    executable), a merged input's own sources in its place. The views' header names them
    instead of the first input alone; the JSON export lists them; an input that a merged dump
    already holds is left out rather than counted twice, and a different snapshot of such a
    process is counted with a line saying so."""
    site = [(NONE, 0x1000)]
    a = synthetic(chains=[(site, [(5, 3, 16)])], pid=11, exe=b"/bin/alpha", start_ns=5)
    b = synthetic(chains=[(site, [(5, 4, 16)])], pid=12, exe=b"/bin/alpha", start_ns=6)
    c = synthetic(chains=[(site, [(6, 2, 40)])], pid=13, exe=b"/bin/beta", start_ns=7)
    d = merged("src-ab", a, b)
    assert d["sources"] == [
        {"pid": 11, "ppid": 1, "start_ns": 5, "sample_period": 0, "sequence": 0,
         "exe": "/bin/alpha"},
        {"pid": 12, "ppid": 1, "start_ns": 6, "sample_period": 0, "sequence": 0,
         "exe": "/bin/alpha"}], d["sources"]
    ab = os.path.join(TMP, "src-ab.merged.dump")
    head = text(lib.mapprof("top", ab).stdout).splitlines()[0]
    assert head == "Exe: /bin/alpha and 1 more dump (pids 11 12)", head
    # a merge of a merge: its sources, flattened, in order
    abc = os.path.join(TMP, "src-abc.dump")
    lib.mapprof("merge", "-q", ab, write("src-c.dump", c), "-o", abc)
    d = lib.read_dump(abc, merged=True)
    assert [x["pid"] for x in d["sources"]] == [11, 12, 13], d["sources"]
    head = text(lib.mapprof("top", abc).stdout).splitlines()[0]
    assert head == "Exes: /bin/alpha, /bin/beta (3 dumps, pids 11 12 13)", head
    dumps = json.loads(lib.mapprof("export", abc).stdout)["dumps"]
    assert [x["pid"] for x in dumps[0]["merged_from"]] == [11, 12, 13], dumps
    assert dumps[0]["merged_from"][2]["exe"] == "/bin/beta"
    # the same snapshot again: left out, one line; the totals are the merged dump's alone
    cp = lib.mapprof("top", "--json", ab, os.path.join(TMP, "src-ab.0.dump"))
    err = text(cp.stderr).strip().splitlines()
    assert err == ["mapprof: %s: already in %s (merged), left out" % (
        os.path.join(TMP, "src-ab.0.dump"), ab)], err
    assert json.loads(cp.stdout)["total"] == 7, text(cp.stdout)[:300]
    # a later snapshot of a merged process: both counted, and said
    later = write("src-a1.dump", synthetic(chains=[(site, [(5, 9, 16)])], pid=11, sequence=1,
                                           exe=b"/bin/alpha", start_ns=5))
    cp = lib.mapprof("top", "--json", ab, later)
    err = text(cp.stderr).strip().splitlines()
    assert len(err) == 1 and "both hold process 11" in err[0] and "counted twice" in err[0], err
    assert json.loads(cp.stdout)["total"] == 16
    # two merged dumps sharing an input: said once
    ac = os.path.join(TMP, "src-ac.dump")
    lib.mapprof("merge", "-q", os.path.join(TMP, "src-ab.0.dump"), os.path.join(TMP, "src-c.dump"),
                "-o", ac)
    cp = lib.mapprof("top", "--json", ab, ac)
    err = text(cp.stderr).strip().splitlines()
    assert len(err) == 1 and "both hold process 11" in err[0], err
    assert json.loads(cp.stdout)["total"] == 7 + 5, text(cp.stdout)[:300]


def test_report_load_merged_dump_given_again():
    """A merged dump all of whose inputs another merged dump given holds (the same file twice, a
    copy of it, or a merge of some of its inputs) adds nothing: it is left out with one line,
    as a plain dump that a merged one holds is. The same merged file given twice was counted
    twice (every figure doubled, with a line saying so), though the same file given twice is
    documented to be read once."""
    site = [(NONE, 0x1000)]
    a = write("again-a.dump", synthetic(chains=[(site, [(5, 3, 16)])], pid=21, start_ns=5))
    b = write("again-b.dump", synthetic(chains=[(site, [(5, 4, 16)])], pid=22, start_ns=6))
    c = write("again-c.dump", synthetic(chains=[(site, [(6, 2, 40)])], pid=23, start_ns=7))
    ab, abc = os.path.join(TMP, "again-ab.dump"), os.path.join(TMP, "again-abc.dump")
    lib.mapprof("merge", "-q", a, b, "-o", ab)
    lib.mapprof("merge", "-q", a, b, c, "-o", abc)
    copy = os.path.join(TMP, "again-ab-copy.dump")
    shutil.copyfile(ab, copy)
    for args, total, left, into in (((ab, ab), 7, ab, ab), ((ab, copy), 7, copy, ab),
                                    ((copy, ab), 7, ab, copy), ((ab, abc), 9, ab, abc),
                                    ((abc, ab), 9, ab, abc)):
        for cmd in (("top", "--json"), ("merge", "-o", os.path.join(TMP, "again-out.dump"))):
            cp = lib.mapprof(*(cmd + args))
            err = text(cp.stderr).strip().splitlines()
            assert err == ["mapprof: %s: already in %s (merged), left out" % (left, into)], \
                (args, err)
            if cmd[0] == "top":
                assert json.loads(cp.stdout)["total"] == total, (args, text(cp.stdout)[:300])
            else:
                d = lib.read_dump(cmd[2], merged=True)
                assert d["totals"]["alloc_objects"] == total, (args, d["totals"])


def test_report_load_sources_checked():
    """A SOURCES record that is cut short, whose path runs past it or holds a NUL, that is
    empty, or that comes twice: exit 2 with the reason."""
    data = real_dump()
    end = records(data)[-1][0]

    def with_sources(*payloads):
        return data[:end] + b"".join(rec(7, p) for p in payloads) + data[end:]

    good = source(42, b"/bin/x")
    cp = lib.mapprof("top", write("src-good.dump", with_sources(good)))
    assert text(cp.stdout).startswith("Exe: /bin/x (pid 42)"), text(cp.stdout)[:200]
    refused("src-short.dump", with_sources(good[:20]), "SOURCES entry 0 cut short")
    bad = struct.pack("<QQQQII", 42, 1, 0, 0, 0, 100) + b"/bin/x\0\0"
    refused("src-long.dump", with_sources(bad), "past the record's end")
    refused("src-nul.dump", with_sources(source(42, b"/bin\0x")), "NUL")
    refused("src-empty.dump", with_sources(b""), "empty SOURCES")
    refused("src-twice.dump", with_sources(good, good), "second SOURCES")
