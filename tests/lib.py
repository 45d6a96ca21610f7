"""lib.py: helpers shared by the tests: paths, building test programs, running them under the
profiler, an independent pure-Python reader of the dump format and a minimal symbolizer (nm).
It must never take results from the code under test as truth, and never depend on the C reader
(report/) to check what the shim wrote."""
import atexit
import json
import os
import shutil
import struct
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
# MAPPROF_TEST_LIB runs the suite against another build of the shim.
LIB = os.environ.get("MAPPROF_TEST_LIB") or os.path.join(BUILD, "libmapprof.so")
MAPPROF = os.path.join(BUILD, "mapprof-asan")
PROGS = os.path.join(ROOT, "tests", "progs")
TIMEOUT = 120


class Skip(Exception):
    """Raised by a test that cannot run here; the runner prints SKIP with the reason."""


# ---- temporary directories, removed when the run ends (MAPPROF_TEST_KEEP=1 keeps them) ----

_tmpdirs = []


def tmpdir(prefix="mapprof-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


@atexit.register
def _cleanup():
    if os.environ.get("MAPPROF_TEST_KEEP"):
        return
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


# ---- building test programs ----

WARN = ["-Wall", "-Wextra", "-Werror"]


def build_prog(name, sources, flags=("-O2",), lang="c"):
    """Compiles tests/progs/SOURCES (paths relative to tests/progs, or absolute) into
    build/tests/NAME with gcc (lang 'c') or g++ (lang 'c++'), -g and FLAGS; rebuilds only when a
    source or any header of tests/progs is newer than the binary. Returns the binary's path."""
    out_dir = os.path.join(BUILD, "tests")
    os.makedirs(out_dir, exist_ok=True)
    out = os.path.join(out_dir, name)
    srcs = [s if os.path.isabs(s) else os.path.join(PROGS, s) for s in sources]
    deps = srcs + [os.path.join(PROGS, h) for h in os.listdir(PROGS) if h.endswith(".h")]
    deps.append(os.path.abspath(__file__))
    if os.path.exists(out):
        built = os.path.getmtime(out)
        if all(os.path.getmtime(d) <= built for d in deps):
            return out
    if lang == "c":
        cmd = ["gcc", "-std=gnu11"]
    elif lang == "c++":
        cmd = ["g++", "-std=gnu++17"]
    else:
        raise ValueError("lang must be 'c' or 'c++'")
    # Build under a temporary name and rename, so two runs at once never see half a binary.
    tmp = "%s.tmp.%d" % (out, os.getpid())
    cmd += WARN + ["-g", "-D_GNU_SOURCE", "-I" + PROGS] + list(flags) + ["-o", tmp] + srcs + \
        ["-lpthread", "-ldl", "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("cannot build %s: %s\n%s" % (name, " ".join(cmd), r.stderr[-2000:]))
    os.replace(tmp, out)
    return out


# ---- running programs ----

def _text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def expand_out(template, pid, exe):
    """The shim's path expansion: %p pid, %e executable name, %% percent."""
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template) and template[i + 1] in "pe%":
            k = template[i + 1]
            out.append(str(pid) if k == "p" else os.path.basename(exe) if k == "e" else "%")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def need_lib():
    if not os.path.exists(LIB):
        raise AssertionError("%s is not built (make build/libmapprof.so)" % LIB)


def run(argv, env=None, cwd=None, preload=None, timeout=TIMEOUT, user=None, stdin=None,
        preexec_fn=None):
    """Runs ARGV as a real child process (with LD_PRELOAD=PRELOAD when given, a list of paths or
    one string; PREEXEC_FN runs in the child before the exec). Returns (CompletedProcess with text
    stdout/stderr, pid)."""
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("MAPPROF_") and not k.startswith("MAPPROF_TEST"):
            del e[k]  # the caller's own settings must not leak into a test
    e.pop("LD_PRELOAD", None)
    if preload:
        e["LD_PRELOAD"] = preload if isinstance(preload, str) else " ".join(preload)
    e.update(env or {})
    kw = {}
    if user is not None:
        kw["user"] = user
        kw["group"] = user if user != "nobody" else "nogroup"
        kw["extra_groups"] = []
    p = subprocess.Popen(argv, env=e, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL if stdin is None else stdin,
                         preexec_fn=preexec_fn, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s timed out after %ds" % (" ".join(argv), timeout))
    return subprocess.CompletedProcess(argv, p.returncode, _text(out), _text(err)), p.pid


def run_profiled(argv, env=None, cwd=None, out=None, preload=None, timeout=TIMEOUT,
                 preexec_fn=None):
    """Runs ARGV under LD_PRELOAD=libmapprof.so (PRELOAD: the full preload list instead).
    OUT is the MAPPROF_OUT template (default: a fresh directory's %e.%p.dump). Returns
    (completed_process, path of the process's dump), the path expanded from the child's pid;
    the file may be missing if the shim wrote none."""
    need_lib()
    if out is None:
        out = os.path.join(tmpdir(), "%e.%p.dump")
    env = dict(env or {})
    env.setdefault("MAPPROF_OUT", out)
    cp, pid = run(argv, env=env, cwd=cwd, preload=preload or [LIB], timeout=timeout,
                  preexec_fn=preexec_fn)
    path = expand_out(env["MAPPROF_OUT"], pid, argv[0])
    if not os.path.isabs(path):
        path = os.path.join(cwd or os.getcwd(), path)
    cp.pid = pid
    return cp, path


def mapprof(*args, check=True):
    """Runs the report tool (ASan+UBSan build). With CHECK, a non-zero exit fails the test."""
    if not os.path.exists(MAPPROF):
        raise Skip("%s is not built (make build/mapprof-asan)" % MAPPROF)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    cp = subprocess.run([MAPPROF] + [str(a) for a in args], capture_output=True, text=True,
                        env=env, timeout=TIMEOUT)
    if check and cp.returncode != 0:
        raise AssertionError("mapprof %s: exit %d: %s" % (" ".join(map(str, args)), cp.returncode,
                                                          cp.stderr[-2000:]))
    return cp


def profile_json(dump_paths):
    """The symbolized profile of DUMP_PATHS (`mapprof export --format json`)."""
    cp = mapprof("export", "--format", "json", *dump_paths)
    return json.loads(cp.stdout)


def json_lines(text):
    """Every line of TEXT that is a JSON object, parsed."""
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def truth(cp, role=None):
    """The ground truth a test program printed (its last JSON line, or the one of ROLE)."""
    lines = [j for j in json_lines(cp.stdout) if role is None or j.get("role") == role]
    assert lines, "%s printed no truth line%s (exit %d, stderr: %s)" % (
        " ".join(cp.args), "" if role is None else " for " + role, cp.returncode,
        cp.stderr[-1000:])
    return lines[-1]


def shim_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("mapprof:")]


# ---- the dump format (include/mapprof_dump.h), read independently of report/load.c ----

MAGIC = b"MAPPROF\0"
VERSION = 2  # the version the shim writes; version 1 (frames inline in CHAIN) is read too
TAG_INFO, TAG_EXE, TAG_CMDLINE, TAG_MODULE, TAG_CHAIN, TAG_FRAMES, TAG_SOURCES, TAG_END = \
    1, 2, 3, 4, 5, 6, 7, 0x454E44
SOURCE_FMT = "<QQQQII"  # pid, ppid, start_ns, sample_period, sequence, exe_len; then the path
INFO_FREES_TRACKED, INFO_SAMPLED, INFO_FORKED = 1, 2, 4
MODULE_MAIN, MODULE_UNLOADED, MODULE_VDSO = 1, 2, 4
MODULE_NONE = 0xFFFFFFFF
CHAIN_TRUNCATED = 1
SIZE_CLASSES = 65
INFO_FIELDS = ("pid", "ppid", "start_ns", "end_ns", "flags", "max_depth", "unwinder", "sequence",
               "sample_period", "not_recorded", "threads")
INFO_FMT = "<QQQQIIIIQQQ"  # 72 bytes
MODULE_FMT = "<IIQIIII"  # 32 bytes
RANGE_FMT = "<QQQII"  # 32 bytes
CHAIN_FMT = "<IIIIQQQQ"  # 48 bytes
FRAME_FMT = "<IIQ"  # 16 bytes
CLASS_FMT = "<IIQQQQ"  # 40 bytes
END_FMT = "<QQQQQQ"  # 48 bytes
COUNTS = ("alloc_objects", "alloc_space", "inuse_objects", "inuse_space")


class DumpError(Exception):
    pass


def size_class(n):
    return n.bit_length()


def read_dump(path, merged=False):
    """Parses and validates a dump. Returns {"version", "info": {...}, "exe", "cmdline": [str],
    "modules": [{"id", "flags", "load_bias", "ranges": [(start, end, file_offset, prot)],
    "build_id": hex or None, "path"}], "chains": [{"id", "flags", "truncated", "frames":
    [(module, offset)], "classes": [{"log2", "objects", "bytes", "min", "max"}], alloc_objects,
    alloc_space, inuse_objects, inuse_space}], "totals": {...}, "end": {...}}.
    Raises DumpError (with the file offset) on anything the format forbids, including END totals
    that differ from the sum over the chains. MERGED: the dump is `mapprof merge`'s, which may
    write a chain without size classes (the shim writes at least one) and, merging sampled dumps,
    rounds a class's objects and bytes apart (so its bytes are not checked against its sizes)."""
    with open(path, "rb") as f:
        data = f.read()

    def fail(off, what):
        raise DumpError("%s: offset %d: %s" % (path, off, what))

    if len(data) < 16 or data[:8] != MAGIC:
        fail(0, "not a mapprof dump (bad magic)")
    version, header_size = struct.unpack_from("<II", data, 8)
    if version not in (1, VERSION):
        fail(8, "unknown version %d" % version)
    if header_size != 16:
        fail(12, "header_size %d, expected 16" % header_size)
    d = {"version": version, "info": None, "exe": None, "cmdline": None, "modules": [],
         "chains": [], "end": None, "unknown_tags": [], "frames": None, "sources": None}
    off, first = 16, True
    while True:
        if off == len(data):
            fail(off, "no END record (truncated file)")
        if off + 16 > len(data):
            fail(off, "truncated record header")
        tag, rflags, length = struct.unpack_from("<IIQ", data, off)
        start = off + 16
        end = start + length
        if end > len(data):
            fail(off, "record length %d runs past the end of the file" % length)
        payload = data[start:end]
        padded = start + ((length + 7) & ~7)
        if padded > len(data) or any(data[end:padded]):
            fail(end, "bad padding after record")
        if first and tag != TAG_INFO:
            fail(off, "first record is tag %#x, not INFO" % tag)
        first = False
        if tag == TAG_INFO:
            if d["info"] is not None:
                fail(off, "second INFO record")
            if length != struct.calcsize(INFO_FMT):
                fail(off, "INFO length %d" % length)
            d["info"] = dict(zip(INFO_FIELDS, struct.unpack(INFO_FMT, payload)))
        elif tag == TAG_EXE:
            d["exe"] = payload.decode(errors="surrogateescape")
        elif tag == TAG_CMDLINE:
            if payload and not payload.endswith(b"\0"):
                fail(off, "CMDLINE does not end with NUL")
            d["cmdline"] = [a.decode(errors="surrogateescape") for a in payload.split(b"\0")[:-1]]
        elif tag == TAG_MODULE:
            d["modules"].append(_module(payload, off, fail))
        elif tag == TAG_FRAMES and version >= 2:
            if d["frames"] is not None:
                fail(off, "second FRAMES record")
            fs = struct.calcsize(FRAME_FMT)
            if length % fs:
                fail(off, "FRAMES length %d is not a multiple of %d" % (length, fs))
            d["frames"] = [(m, o) for m, _, o in struct.iter_unpack(FRAME_FMT, payload)]
        elif tag == TAG_SOURCES:
            if d["sources"] is not None:
                fail(off, "second SOURCES record")
            d["sources"] = _sources(payload, off, fail)
        elif tag == TAG_CHAIN:
            if version >= 2 and d["frames"] is None:
                fail(off, "CHAIN before the FRAMES record")
            d["chains"].append(_chain(payload, off, fail, d["frames"], merged))
        elif tag == TAG_END:
            if length != struct.calcsize(END_FMT):
                fail(off, "END length %d" % length)
            vals = struct.unpack(END_FMT, payload)
            d["end"] = dict(zip(("nchains", "nmodules") + COUNTS, vals))
            if padded != len(data):
                fail(padded, "%d bytes after END" % (len(data) - padded))
            break
        else:
            d["unknown_tags"].append(tag)
        off = padded
    _validate(d, path)
    return d


def _sources(p, off, fail):
    """SOURCES (mapprof merge): [{"pid", "ppid", "start_ns", "sample_period", "sequence",
    "exe"}]."""
    hs, at, out = struct.calcsize(SOURCE_FMT), 0, []
    while at < len(p):
        if len(p) - at < hs:
            fail(off, "SOURCES entry cut short")
        pid, ppid, start, period, seq, n = struct.unpack_from(SOURCE_FMT, p, at)
        at += hs
        if at + n > len(p) or any(p[at + n:at + (n + 7) // 8 * 8]):
            fail(off, "SOURCES entry's path runs past the record or is badly padded")
        out.append({"pid": pid, "ppid": ppid, "start_ns": start, "sample_period": period,
                    "sequence": seq,
                    "exe": p[at:at + n].decode(errors="surrogateescape")})
        at += (n + 7) // 8 * 8
    if not out:
        fail(off, "empty SOURCES record")
    return out


def _module(p, off, fail):
    hs = struct.calcsize(MODULE_FMT)
    if len(p) < hs:
        fail(off, "MODULE record too short")
    mid, flags, bias, nranges, blen, plen, _ = struct.unpack_from(MODULE_FMT, p)
    rs = struct.calcsize(RANGE_FMT)
    if len(p) != hs + nranges * rs + blen + plen:
        fail(off, "MODULE length %d does not match its counts" % len(p))
    ranges = [struct.unpack_from(RANGE_FMT, p, hs + i * rs)[:4] for i in range(nranges)]
    for s, e, _, prot in ranges:
        if e <= s or prot & ~7:
            fail(off, "bad range %#x-%#x prot %d" % (s, e, prot))
    b = hs + nranges * rs
    bid = p[b:b + blen].hex() if blen else None
    return {"id": mid, "flags": flags, "load_bias": bias, "ranges": ranges, "build_id": bid,
            "path": p[b + blen:].decode(errors="surrogateescape")}


def _chain(p, off, fail, table, merged=False):
    """table: the FRAMES record's frames (version 2), or None (version 1: frames inline)."""
    hs = struct.calcsize(CHAIN_FMT)
    if len(p) < hs:
        fail(off, "CHAIN record too short")
    cid, flags, nframes, nclasses, ao, asp, io, isp = struct.unpack_from(CHAIN_FMT, p)
    fs, cs = struct.calcsize(FRAME_FMT), struct.calcsize(CLASS_FMT)
    flen = nframes * fs if table is None else (nframes * 4 + 7) // 8 * 8
    if len(p) != hs + flen + nclasses * cs:
        fail(off, "CHAIN length %d does not match its counts" % len(p))
    if table is None:
        frames = [struct.unpack_from(FRAME_FMT, p, hs + i * fs) for i in range(nframes)]
        frames = [(m, o) for m, _, o in frames]
    else:
        ids = struct.unpack_from("<%dI" % nframes, p, hs)
        if nframes % 2 and struct.unpack_from("<I", p, hs + nframes * 4)[0]:
            fail(off, "chain %d: padding after its frame indices is not zero" % cid)
        if any(i >= len(table) for i in ids):
            fail(off, "chain %d: frame index past the FRAMES record" % cid)
        frames = [table[i] for i in ids]
    base = hs + flen
    classes = []
    for i in range(nclasses):
        lg, _, objs, nbytes, mn, mx = struct.unpack_from(CLASS_FMT, p, base + i * cs)
        lo, hi = (0, 0) if lg == 0 else (1 << (lg - 1), (1 << lg) - 1)
        # A dump taken while a thread allocates may count a request's bytes before its object
        # (the shim's tc_count): one request's worth above objects * max.
        if lg >= SIZE_CLASSES or objs == 0 or not lo <= mn <= mx <= hi or \
                (not merged and not objs * mn <= nbytes <= (objs + 1) * mx):
            fail(off, "chain %d: bad size class %d (%d objects, %d bytes, min %d, max %d)" % (
                cid, lg, objs, nbytes, mn, mx))
        classes.append({"log2": lg, "objects": objs, "bytes": nbytes, "min": mn, "max": mx})
    if len({c["log2"] for c in classes}) != len(classes):
        fail(off, "chain %d: a size class appears twice" % cid)
    if not classes and merged:
        if asp and not ao:
            fail(off, "chain %d: bytes in no object" % cid)
    elif sum(c["objects"] for c in classes) != ao or sum(c["bytes"] for c in classes) != asp:
        fail(off, "chain %d: size classes do not sum to the chain's counts" % cid)
    if io > ao or isp > asp:
        fail(off, "chain %d: more in use than allocated" % cid)
    return {"id": cid, "flags": flags, "truncated": bool(flags & CHAIN_TRUNCATED),
            "frames": frames, "classes": classes, "alloc_objects": ao, "alloc_space": asp,
            "inuse_objects": io, "inuse_space": isp}


def _validate(d, path):
    def fail(what):
        raise DumpError("%s: %s" % (path, what))

    if d["info"] is None:
        fail("no INFO record")
    ids = [m["id"] for m in d["modules"]]
    if sorted(ids) != list(range(len(ids))):
        fail("module ids are not 0..n-1: %s" % ids)
    cids = [c["id"] for c in d["chains"]]
    if len(set(cids)) != len(cids):
        fail("duplicate chain ids")
    for c in d["chains"]:
        if not c["frames"]:
            fail("chain %d has no frames" % c["id"])
        if len(c["frames"]) > d["info"]["max_depth"]:
            fail("chain %d has %d frames, more than max_depth %d" % (
                c["id"], len(c["frames"]), d["info"]["max_depth"]))
        for m, _ in c["frames"]:
            if m != MODULE_NONE and m >= len(ids):
                fail("chain %d refers to module %d of %d" % (c["id"], m, len(ids)))
    keys = [(tuple(c["frames"]), c["truncated"]) for c in d["chains"]]
    if len(set(keys)) != len(keys):
        fail("two chains have the same frames")
    e = d["end"]
    if e["nchains"] != len(d["chains"]) or e["nmodules"] != len(d["modules"]):
        fail("END counts %d chains / %d modules, the file holds %d / %d" % (
            e["nchains"], e["nmodules"], len(d["chains"]), len(d["modules"])))
    d["totals"] = {k: sum(c[k] for c in d["chains"]) for k in COUNTS}
    for k in COUNTS:
        if e[k] != d["totals"][k]:
            fail("END %s is %d, the chains sum to %d" % (k, e[k], d["totals"][k]))


def main_module(d):
    mains = [m for m in d["modules"] if m["flags"] & MODULE_MAIN]
    assert len(mains) == 1, "the dump has %d main modules" % len(mains)
    return mains[0]


# ---- a small symbolizer for the test programs' own functions (nm), independent of report/ ----

class Symbols:
    """Function symbols of one ELF file from `nm`; lookup(vaddr) -> name or None."""
    _cache = {}

    def __init__(self, path):
        key = (path, os.path.getmtime(path))
        if key not in Symbols._cache:
            r = subprocess.run(["nm", "--defined-only", "-S", path], capture_output=True,
                               text=True)
            syms = []
            for line in r.stdout.splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[2] in "tTwW":
                    syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
            Symbols._cache[key] = sorted(syms)
        self.syms = Symbols._cache[key]

    def lookup(self, addr):
        best = None
        for start, size, name in self.syms:
            if start > addr:
                break
            if addr < start + size:
                best = name
        return best


def frame_functions(d, chain, syms):
    """Names of the chain's frames that lie in the executable (None for other frames), innermost
    first; a frame's offset is a return address, so look up offset - 1."""
    exe = main_module(d)["id"]
    return [syms.lookup(o - 1) if m == exe else None for m, o in chain["frames"]]


def by_site(d, binary, prefix="site_"):
    """Groups the dump's chains by call site: the innermost frame in the executable whose function
    starts with PREFIX. Returns ({site: counts}, [chains through no site])."""
    syms = Symbols(binary)
    sites, other = {}, []
    for c in d["chains"]:
        names = [n for n in frame_functions(d, c, syms) if n and n.startswith(prefix)]
        if not names:
            other.append(c)
            continue
        acc = sites.setdefault(names[0], dict.fromkeys(COUNTS, 0))
        for k in COUNTS:
            acc[k] += c[k]
    return sites, other


def tally(chains):
    return {k: sum(c[k] for c in chains) for k in COUNTS}


def as_counts(t):
    """A truth entry {"objects", "bytes", "live_objects", "live_bytes"} in the dump's terms."""
    return {"alloc_objects": t["objects"], "alloc_space": t["bytes"],
            "inuse_objects": t["live_objects"], "inuse_space": t["live_bytes"]}


def add_counts(a, b):
    return {k: a[k] + b[k] for k in COUNTS}


def check_sites(d, binary, want, what=""):
    """Every site of the program's truth WANT ({"site_x": truth entry}) has exactly its counts in
    the dump, and the dump has no site the program does not know. Returns the chains through no
    site, for the caller to account for."""
    got, other = by_site(d, binary)
    errors = []
    for name, t in sorted(want.items()):
        g = got.get(name, dict.fromkeys(COUNTS, 0))
        if g != as_counts(t):
            errors.append("%s: dump %s, program %s" % (name, fmt_counts(g),
                                                         fmt_counts(as_counts(t))))
    for name in sorted(set(got) - set(want)):
        errors.append("%s: in the dump (%s) but unknown to the program" % (
            name, fmt_counts(got[name])))
    assert not errors, "%s per-site counts differ:\n  %s" % (what, "\n  ".join(errors))
    return other


def fmt_counts(c):
    return "%d obj/%d B allocated, %d obj/%d B live" % tuple(c[k] for k in COUNTS)


def module_of(d, mid):
    return d["modules"][mid]["path"] if mid != MODULE_NONE else "?"


def describe(d, chain, binary=None):
    """One line naming a chain's frames (executable frames by symbol, others by module)."""
    syms = Symbols(binary) if binary else None
    exe = main_module(d)["id"]
    parts = []
    for m, o in chain["frames"][:8]:
        if syms and m == exe:
            parts.append(syms.lookup(o - 1) or hex(o))
        else:
            parts.append("%s+%#x" % (os.path.basename(module_of(d, m)), o))
    return "%s <- %s" % (fmt_counts(chain), " <- ".join(parts))
