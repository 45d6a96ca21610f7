"""test_shim_info.py: what a dump says about its process: pid, ppid, executable, command line,
start and end time, settings, frees tracked, and a module map an offline reader can trust (the
executable with the build-id readelf reports, every frame inside an executable range of its
module). Checked with lib.read_dump against facts known outside the shim."""
import os
import re
import struct
import subprocess
import time

import lib
import test_shim_api


def build_id(path):
    r = subprocess.run(["readelf", "-n", path], capture_output=True, text=True)
    m = re.search(r"Build ID: ([0-9a-f]+)", r.stdout)
    return m.group(1) if m else None


def test_info():
    prog = test_shim_api.alloc_api()
    argv = [prog, "20", "--portable"]
    t0 = time.time_ns()
    cp, dump = lib.run_profiled(argv)
    t1 = time.time_ns()
    assert cp.returncode == 0, cp.stderr
    truth = lib.truth(cp)
    d = lib.read_dump(dump)
    info = d["info"]
    assert info["pid"] == cp.pid == truth["pid"]
    assert info["ppid"] == os.getpid() == truth["ppid"]
    assert d["exe"] == os.path.realpath(prog), d["exe"]
    assert d["cmdline"] == argv, d["cmdline"]
    assert t0 <= info["start_ns"] <= info["end_ns"] <= t1, (t0, info["start_ns"], info["end_ns"], t1)
    assert info["flags"] == lib.INFO_FREES_TRACKED, info["flags"]
    assert info["sample_period"] == 0 and info["sequence"] == 0 and info["not_recorded"] == 0
    assert info["max_depth"] == 64 and info["unwinder"] == 0 and info["threads"] == 1
    assert not d["unknown_tags"]


def test_module_map():
    prog = test_shim_api.alloc_api()
    cp, dump = lib.run_profiled([prog, "20"])
    d = lib.read_dump(dump)
    main = lib.main_module(d)
    assert main["path"] == os.path.realpath(prog), main["path"]
    want = build_id(prog)
    assert want and main["build_id"] == want, "build-id %s, readelf says %s" % (
        main["build_id"], want)
    paths = [m["path"] for m in d["modules"]]
    for lib_name in ("libc.so.6", "ld-linux-x86-64.so.2", "libmapprof.so"):
        assert any(os.path.basename(p) == lib_name for p in paths), (lib_name, paths)
    for m in d["modules"]:
        if m["flags"] & lib.MODULE_VDSO or not m["path"].startswith("/"):
            continue
        assert os.path.exists(m["path"]), m["path"]
        bid = build_id(m["path"])
        if bid:
            assert m["build_id"] == bid, "%s: build-id %s, readelf %s" % (m["path"],
                                                                          m["build_id"], bid)
    # Every frame lies in an executable range of its module.
    for c in d["chains"]:
        for mid, off in c["frames"]:
            assert mid != lib.MODULE_NONE, "a frame outside every module: " + lib.describe(d, c)
            m = d["modules"][mid]
            addr = off + m["load_bias"]
            assert any(s <= addr - 1 < e and prot & 1 for s, e, _, prot in m["ranges"]), \
                "frame %#x of %s is in none of its executable ranges" % (off, m["path"])


def test_reader_rejects_damage():
    """lib.read_dump is what the shim tests trust: it must refuse a truncated file, END totals
    that do not match the chains, an unknown version; and skip an unknown record tag."""
    prog = test_shim_api.alloc_api()
    _, dump = lib.run_profiled([prog, "20"])
    with open(dump, "rb") as f:
        data = f.read()
    d = lib.tmpdir()

    def read(blob):
        path = os.path.join(d, "x.dump")
        with open(path, "wb") as f:
            f.write(blob)
        return lib.read_dump(path)

    def rejected(blob, what):
        try:
            read(blob)
        except lib.DumpError:
            return
        raise AssertionError("read_dump accepted " + what)

    rejected(data[:-8], "a truncated file")
    rejected(data[:len(data) // 2], "half a file")
    rejected(data[:8] + struct.pack("<I", 3) + data[12:], "version 3")
    end = len(data) - 48  # END payload: nchains, nmodules, alloc_objects, ...
    n = struct.unpack_from("<Q", data, end + 16)[0]
    rejected(data[:end + 16] + struct.pack("<Q", n + 1) + data[end + 24:], "wrong END totals")
    # An unknown tag (7 bytes of payload, padded) before END is skipped.
    extra = struct.pack("<IIQ", 0x7777, 0, 7) + b"abcdefg\0"
    got = read(data[:end - 16] + extra + data[end - 16:])
    assert got["unknown_tags"] == [0x7777] and got["totals"] == lib.read_dump(dump)["totals"]
