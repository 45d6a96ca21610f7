"""test_report_io.py: what mapprof reads and writes around the profile itself. Output files
(-o): a regular file is replaced whole or not at all (a write that fails on a full disk or past
a file size limit leaves the old file and no temporary file), a device or FIFO is written in
place and never replaced, '-' is stdout, an input dump or an empty name is refused. Inputs that
are not dumps (/dev/zero, a huge sparse file, an endless pipe) are refused at their first bad
header, fast. The option parser: bundled short options, numbers that must be finite decimals.
The symbolizer's warnings: a rebuilt binary without a build-id, a stripped one, a truncated one.
The text header of several dumps and of sampled ones. Every dump is from a real run of
tests/progs/report_sites.c."""
import json
import os
import pty
import resource
import select
import shutil
import signal
import stat
import struct
import subprocess
import threading
import time
import zlib

import lib

SRC = os.path.join(lib.ROOT, "tests", "progs", "report_sites.c")
_cache = {}


def text(b):
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def prog(opt="O2", extra=()):
    key = (opt,) + tuple(extra)
    if key not in _cache:
        name = "report_io_" + opt + "".join(e.replace("-", "_").replace(",", "_").replace("=", "_")
                                            for e in extra)
        _cache[key] = lib.build_prog(name, [SRC], flags=["-" + opt, "-g"] + list(extra))
    return _cache[key]


def sites_dump(env=None, scale=1):
    """A dump of report_sites (cached per settings)."""
    key = ("dump", scale, tuple(sorted((env or {}).items())))
    if key not in _cache:
        cp, dump = lib.run_profiled([prog(), str(scale)], env=env)
        assert cp.returncode == 0, cp.stderr[-500:]
        _cache[key] = dump
    return _cache[key]


def run(*args, cwd=None, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, fsize=None,
        timeout=60):
    """The sanitized report tool, bytes in and out. FSIZE: a file size limit (ulimit -f)."""
    if not os.path.exists(lib.MAPPROF):
        raise lib.Skip("%s is not built (make build/mapprof-asan)" % lib.MAPPROF)
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)

    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return subprocess.run([lib.MAPPROF] + [str(a) for a in args], cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, stdin=stdin, env=env, timeout=timeout,
                          preexec_fn=limit)


def one_error(cp, code, *words):
    err = text(cp.stderr).strip().splitlines()
    assert cp.returncode == code, (cp.args[1:], cp.returncode, err)
    assert err and err[0].startswith("mapprof: "), (cp.args[1:], err)
    for w in words:
        assert w in err[0], (cp.args[1:], w, err)
    return err[0]


def totals(path):
    return lib.read_dump(path)["totals"]


# ---- output files ----

def test_report_io_special_outputs_written_in_place():
    """merge -o through a symbolic link to /dev/null, and into a FIFO, writes to them: the
    device stays a device, the link a link, the FIFO a FIFO, and the FIFO's reader gets the
    whole dump. (merge used to write OUT.tmp.PID and rename it over OUT.)"""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    link = os.path.join(d, "null")
    os.symlink("/dev/null", link)
    for args in (["merge", dump], ["top", dump], ["export", dump], ["flame", dump]):
        cp = run(*args, "-o", link)
        assert cp.returncode == 0, (args, text(cp.stderr))
        assert os.path.islink(link) and os.readlink(link) == "/dev/null", args
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no longer a device"
    assert sorted(os.listdir(d)) == ["null"], os.listdir(d)

    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo)
    # a reader that never blocks: open O_NONBLOCK before the writer, drain while it runs
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    got = bytearray()
    try:
        p = subprocess.Popen([lib.MAPPROF, "merge", dump, "-o", fifo], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = p.poll() is not None
            select.select([fd], [], [], 0.05)
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                chunk = None
            if chunk:
                got += chunk
            elif done:
                break
        err = p.communicate(timeout=60)[1]
    finally:
        os.close(fd)
    assert p.returncode == 0, text(err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a regular file"
    out = os.path.join(d, "from-fifo.dump")
    with open(out, "wb") as f:
        f.write(got)
    assert totals(out) == totals(dump)


def test_report_io_dash_is_stdout():
    """-o - is stdout for merge as for every other command: the dump arrives on stdout and no
    file named '-' appears; merge refuses to write it to a terminal."""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    cp = run("merge", dump, "-o", "-", cwd=d)
    assert cp.returncode == 0, text(cp.stderr)
    assert os.listdir(d) == [], os.listdir(d)
    out = os.path.join(lib.tmpdir("mapprof-io-"), "stdout.dump")
    with open(out, "wb") as f:
        f.write(cp.stdout)
    assert totals(out) == totals(dump)
    cp = run("top", dump, "-o", "-", cwd=d)
    assert cp.returncode == 0 and b"leaf_alpha" in cp.stdout and os.listdir(d) == []
    master, slave = pty.openpty()
    try:
        cp = run("merge", dump, "-o", "-", cwd=d, stdout=slave)
    finally:
        os.close(slave)
        os.close(master)
    one_error(cp, 1, "terminal")


def test_report_io_binary_outputs_without_o():
    """merge, flame and export --format pprof write their file to stdout without -o, when it
    is not a terminal (flame > f.svg used to be refused with 'needs -o'); to a terminal they
    refuse, naming it, and point to the command's own help."""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    cp = run("merge", dump, cwd=d)
    assert cp.returncode == 0, text(cp.stderr)
    out = os.path.join(lib.tmpdir("mapprof-io-"), "merged.dump")
    with open(out, "wb") as f:
        f.write(cp.stdout)
    assert totals(out) == totals(dump)
    cp = run("flame", dump, cwd=d)
    assert cp.returncode == 0 and cp.stdout.startswith(b"<?xml") and b"leaf_alpha" in \
        cp.stdout, text(cp.stderr)
    cp = run("export", "--format", "pprof", dump, cwd=d)
    assert cp.returncode == 0 and cp.stdout[:2] == b"\x1f\x8b", text(cp.stderr)
    assert os.listdir(d) == [], os.listdir(d)
    for cmd in (("merge", dump), ("flame", dump), ("export", "--format", "pprof", dump)):
        master, slave = pty.openpty()
        try:
            cp = run(*cmd, cwd=d, stdout=slave)
        finally:
            os.close(slave)
            os.close(master)
        one_error(cp, 1, "terminal")
        assert "Run 'mapprof %s --help'" % cmd[0] in text(cp.stderr), text(cp.stderr)
    # -o naming a terminal is refused the same way (merge -o /dev/tty wrote the binary dump to
    # the terminal); the terminal is left as it was.
    for cmd in (("merge", dump), ("flame", dump), ("export", "--format", "pprof", dump)):
        master, slave = pty.openpty()
        try:
            cp = run(*cmd, "-o", os.ttyname(slave), cwd=d)
            os.set_blocking(master, False)
            try:
                got = os.read(master, 4096)
            except BlockingIOError:
                got = b""
        finally:
            os.close(slave)
            os.close(master)
        one_error(cp, 1, "terminal", "/dev/pts/")
        assert got == b"", got[:80]
    assert os.listdir(d) == [], os.listdir(d)


def test_report_io_options_of_other_commands_are_refused():
    """An option that means something to other commands only is a usage error, not silently
    ignored: a CI line `mapprof top --fail-if-increase 5` would never fail."""
    dump = sites_dump()
    for args, name, owners in ((("top", "--fail-if-increase", "5"), "fail-if-increase", "diff"),
                               (("top", "--format", "pprof"), "format", "export"),
                               (("tree", "--growth-fn", "x"), "growth-fn", "growth flame"),
                               (("flame", "--json", "-o", "-"), "json", "top tree peek")):
        cp = run(*(args + (dump,)))
        line = one_error(cp, 1, "option '--%s' is for %s" % (name, owners), args[0])
        assert not cp.stdout, (args, cp.stdout[:200])
        assert "Run 'mapprof %s --help'" % args[0] in text(cp.stderr), (args, line)
    for args in (("diff", "--fail-if-increase", "5", dump, dump), ("growth", "--growth-fn", "x",
                                                                    dump),
                 ("export", "--format", "collapsed", dump), ("growth", "--json", dump)):
        cp = run(*args)
        assert cp.returncode == 0, (args, text(cp.stderr))


def test_report_io_failed_write_keeps_old_file():
    """Past a file size limit (ulimit -f: the write fails with EFBIG, as on a full disk) every
    command exits 2 naming the file, leaves the existing file exactly as it was and leaves no
    temporary file; a new file is not created at all."""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    old = os.path.join(d, "out")
    commands = (["top"], ["tree"], ["peek", "main"], ["growth"], ["export"],
                ["export", "--format", "collapsed"], ["export", "--format", "pprof"], ["flame"],
                ["merge"])
    for args in commands:
        with open(old, "w") as f:
            f.write("old contents\n")
        cp = run(*args, dump, "-o", old, fsize=200)
        one_error(cp, 2, old, "write error")
        with open(old) as f:
            assert f.read() == "old contents\n", (args, "the old file was changed")
        assert os.listdir(d) == ["out"], (args, os.listdir(d))
        cp = run(*args, dump, "-o", os.path.join(d, "new"), fsize=200)
        one_error(cp, 2, "write error")
        assert os.listdir(d) == ["out"], (args, os.listdir(d))
        # without the limit the same command replaces the file
        cp = run(*args, dump, "-o", old)
        assert cp.returncode == 0 and os.path.getsize(old) > 200, (args, text(cp.stderr))


def test_report_io_full_disk():
    """On a real full file system (a small tmpfs, filled up): exit 2 with ENOSPC, the old file
    untouched, no temporary file. Needs root and a working mount."""
    if os.geteuid() != 0:
        raise lib.Skip("mounting a small tmpfs needs root")
    d = lib.tmpdir("mapprof-io-")
    mnt = os.path.join(d, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise lib.Skip("cannot mount a tmpfs here: %s" % r.stderr.strip()[-200:])
    try:
        old = os.path.join(mnt, "out.svg")
        with open(old, "w") as f:
            f.write("old contents\n")
        try:
            with open(os.path.join(mnt, "filler"), "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        for args in (["flame"], ["merge"], ["export"]):
            cp = run(*args, sites_dump(), "-o", old)
            one_error(cp, 2, old, "No space left on device")
            with open(old) as f:
                assert f.read() == "old contents\n", args
            assert sorted(os.listdir(mnt)) == ["filler", "out.svg"], (args, os.listdir(mnt))
        # /dev/full: a device, written in place, and the error is reported
        cp = run("top", sites_dump(), "-o", "/dev/full")
        one_error(cp, 2, "/dev/full", "No space left on device")
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    finally:
        subprocess.run(["umount", mnt], check=False)


def test_report_io_output_refusals():
    """-o naming an input dump (by its path, a symbolic link or a hard link) and -o "" are usage
    errors (exit 1) that leave the dump as it was; a directory is refused as bad output."""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    mine = os.path.join(d, "in.dump")
    shutil.copy(dump, mine)
    with open(mine, "rb") as f:
        before = f.read()
    link, hard = os.path.join(d, "link.dump"), os.path.join(d, "hard.dump")
    os.symlink(mine, link)
    os.link(mine, hard)
    other = sites_dump(scale=2)  # another process: the copy of dump would be left out of a sum
    for args in (["merge", mine, "-o", mine], ["merge", other, mine, "-o", link],
                 ["top", mine, "-o", hard], ["flame", mine, "-o", mine],
                 ["diff", dump, mine, "-o", link], ["export", mine, "--output=" + mine]):
        line = one_error(run(*args), 1, "input dump")
        assert mine in line or link in line or hard in line, line
        with open(mine, "rb") as f:
            assert f.read() == before, args
    assert sorted(os.listdir(d)) == ["hard.dump", "in.dump", "link.dump"], os.listdir(d)
    for args in (["top", dump, "-o", ""], ["merge", dump, "--output="], ["flame", dump, "-o", ""]):
        line = one_error(run(*args), 1, "empty")
        assert "cannot create" not in line, line
    one_error(run("top", dump, "-o", d), 2, "directory")


def test_report_io_output_keeps_mode_and_links():
    """Replacing an existing file keeps its permissions; through a symbolic link the file it
    names is replaced and the link stays a link."""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    out = os.path.join(d, "top.txt")
    with open(out, "w") as f:
        f.write("old\n")
    os.chmod(out, 0o640)
    assert run("top", dump, "-o", out).returncode == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640
    with open(out) as f:
        assert "leaf_alpha" in f.read()
    link = os.path.join(d, "link.txt")
    os.symlink("top.txt", link)
    assert run("export", dump, "-o", link).returncode == 0
    assert os.path.islink(link) and os.readlink(link) == "top.txt"
    with open(out) as f:
        assert json.load(f)["format"] == "mapprof-profile"
    assert sorted(os.listdir(d)) == ["link.txt", "top.txt"], os.listdir(d)


# ---- inputs that are not dumps ----

def test_report_io_endless_and_huge_inputs():
    """/dev/zero, a sparse 64 GiB file and endless pipes are refused at their first bad header,
    within seconds and without reading them whole (the reader used to read everything first)."""
    def quick(*args, stdin=subprocess.DEVNULL):
        t0 = time.monotonic()
        cp = run(*args, stdin=stdin, timeout=60)
        assert time.monotonic() - t0 < 30, args
        return cp

    one_error(quick("top", "/dev/zero"), 2, "/dev/zero: not a mapprof dump")
    d = lib.tmpdir("mapprof-io-")
    huge = os.path.join(d, "huge.img")
    with open(huge, "wb") as f:
        f.truncate(64 << 30)
    one_error(quick("top", huge), 2, "not a mapprof dump")
    with open(sites_dump(), "rb") as f:
        data = f.read()
    tail = os.path.join(d, "tail.dump")
    with open(tail, "wb") as f:
        f.write(data)
        f.truncate(64 << 30)
    one_error(quick("top", tail), 2, "data after the END record (at offset %d)" % len(data))

    def endless(prefix, want):
        p = subprocess.Popen([lib.MAPPROF, "top", "/dev/stdin"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def feed():
            try:
                p.stdin.write(prefix)
                while True:
                    p.stdin.write(b"\0" * (1 << 16))
            except (BrokenPipeError, ValueError, OSError):
                pass
        t = threading.Thread(target=feed, daemon=True)
        t.start()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError("an endless stream after %r was read on and on" % prefix[:24])
        err = text(p.stderr.read())
        p.stdout.close()
        assert p.returncode == 2 and want in err, (prefix[:24], p.returncode, err)

    endless(b"", "not a mapprof dump")
    endless(data[:16], "first record is unknown (tag 0), not INFO")
    endless(data[:24] + struct.pack("<Q", 0), "INFO record too short")
    endless(data, "data after the END record")
    # and a dump through a pipe still loads
    cp = run("top", "--json", "/dev/stdin", stdin=open(sites_dump(), "rb"))
    assert cp.returncode == 0, text(cp.stderr)
    assert json.loads(cp.stdout)["total"] == lib.read_dump(sites_dump())["totals"]["alloc_objects"]


def test_report_io_stream_left_open_after_end():
    """A dump whose writer keeps the pipe open once the dump is through (a FIFO, a command
    that lingers) is read when its END record has come: the reader waits a moment for data
    after END (refused if any comes, as in the test above), not for the writer to close. It
    used to wait for the close."""
    with open(sites_dump(), "rb") as f:
        data = f.read()
    p = subprocess.Popen([lib.MAPPROF, "top", "--json", "/dev/stdin"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.stdin.write(data)
        p.stdin.flush()
        try:
            p.wait(timeout=20)  # its output is a few hundred bytes: no pipe fills
        except subprocess.TimeoutExpired:
            raise AssertionError("a whole dump from a pipe still open was not read")
        out, err = p.stdout.read(), p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
        p.stdin.close()
        p.wait()
    assert p.returncode == 0, text(err)
    assert json.loads(out)["total"] == lib.read_dump(sites_dump())["totals"]["alloc_objects"]


def test_report_io_gzip_stream_read_as_it_comes():
    """gzip'd data on a pipe are read and inflated as the records ask for them, as plain data
    are: a whole gzip'd dump from a pipe its writer keeps open is read without waiting for the
    close, and an endless gzip'd stream that is no dump (or has data after END) is refused at
    once. The compressed stream was read to its end first: the first waited for the writer, the
    second read on and on, its memory growing. Data of a second gzip member right after END is
    still refused, and a stream that ends inside a member is truncated."""
    import gzip
    with open(sites_dump(), "rb") as f:
        data = f.read()

    def piped(first, then=None, timeout=20):
        p = subprocess.Popen([lib.MAPPROF, "top", "--json", "-"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def feed():
            try:
                p.stdin.write(first)
                p.stdin.flush()
                while then is not None:
                    p.stdin.write(then)
            except (BrokenPipeError, ValueError, OSError):
                pass
        t = threading.Thread(target=feed, daemon=True)
        t.start()
        try:
            p.wait(timeout=timeout)
            return p.returncode, p.stdout.read(), text(p.stderr.read())
        except subprocess.TimeoutExpired:
            raise AssertionError("gzip'd stream %r... not read as it came" % first[:16])
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()
            try:
                p.stdin.close()
            except OSError:
                pass

    rc, out, err = piped(gzip.compress(data))  # the writer keeps the pipe open
    assert rc == 0, err
    assert json.loads(out)["total"] == lib.read_dump(sites_dump())["totals"]["alloc_objects"]
    endless = zlib.compressobj(1, zlib.DEFLATED, 31)
    head = endless.compress(b"y\n" * (1 << 16)) + endless.flush(zlib.Z_SYNC_FLUSH)
    chunk = endless.compress(b"y\n" * (1 << 16)) + endless.flush(zlib.Z_SYNC_FLUSH)
    rc, _, err = piped(head, chunk)
    assert rc == 2 and "not a mapprof dump" in err, (rc, err)
    endless = zlib.compressobj(1, zlib.DEFLATED, 31)
    head = endless.compress(data + b"\0" * 4096) + endless.flush(zlib.Z_SYNC_FLUSH)
    chunk = endless.compress(b"\0" * (1 << 16)) + endless.flush(zlib.Z_SYNC_FLUSH)
    rc, _, err = piped(head, chunk)
    assert rc == 2 and "data after the END record (at offset %d)" % len(data) in err, (rc, err)
    rc, _, err = piped(gzip.compress(data) + gzip.compress(b"x"))
    assert rc == 2 and "data after the END record" in err, (rc, err)
    p = subprocess.run([lib.MAPPROF, "top", "-"], input=gzip.compress(data)[:-4],
                       capture_output=True, timeout=20)
    assert p.returncode == 2 and b"truncated gzip data" in p.stderr, p.stderr


# ---- options ----

def test_report_io_short_option_bundles():
    """Short options bundle as with getopt; a letter that is no option is an error, never
    silently dropped (-qx and -hfoo used to be -q and -h)."""
    dump = sites_dump()
    for bad, letter in (("-qx", "-x"), ("-hfoo", "-f"), ("-nq", None)):
        cp = run("top", bad, dump)
        if letter:
            one_error(cp, 1, "unknown option '%s' in '%s'" % (letter, bad))
        else:
            one_error(cp, 1, "whole number")
    cp = run("top", "-qh")
    assert cp.returncode == 0 and cp.stdout.startswith(b"usage: mapprof top"), cp.stdout[:80]
    cp = run("top", "--json", "-qn1", dump)
    assert cp.returncode == 0 and len(json.loads(cp.stdout)["rows"]) == 1
    out = os.path.join(lib.tmpdir("mapprof-io-"), "top.json")
    cp = run("top", "--json", "-qo", out, dump)
    assert cp.returncode == 0 and cp.stdout == b""
    with open(out) as f:
        assert json.load(f)["sample"] == "alloc_objects"
    cp = run("top", "--json", "-qo" + out, "-sample_index=alloc_space", dump)
    assert cp.returncode == 0, text(cp.stderr)
    with open(out) as f:
        assert json.load(f)["sample"] == "alloc_space"
    one_error(run("top", "-json=1", dump), 1, "takes no value")


def test_report_io_numbers():
    """--fail-if-increase and --nodecount take finite decimal numbers only: NaN (which silently
    disabled the CI gate), infinities, hex, signs and blanks are usage errors."""
    a, b = sites_dump(), sites_dump(scale=2)
    for v in ("nan", "NaN", "inf", "-inf", "infinity", "0x10", "1e999", "-1", "+5", " 5", "",
              "5%"):
        one_error(run("diff", "--fail-if-increase", v, a, b), 1, "decimal number")
    for v in ("0x10", "+5", " 5", "1.5", "-0", "1e2"):
        one_error(run("top", "--nodecount", v, a), 1, "whole number")
    # the gate works with what is accepted: b made more allocations than a
    for v in ("0", "0.5", ".5", "5.", "1e-3"):
        cp = run("diff", "--fail-if-increase", v, a, b)
        assert cp.returncode == 3, (v, cp.returncode, text(cp.stderr))
    assert run("diff", "--fail-if-increase", "1e9", a, b).returncode == 0
    assert run("top", "--nodecount", "007", a).returncode == 0


# ---- symbols ----

def test_report_io_rebuilt_without_build_id():
    """A binary linked without a build-id and rebuilt since the run (other code: -O0 instead of
    -O2) gets the rebuilt-binary warning, once, and module+offset frames; it used to be named
    silently from the new file's symbols, wrongly. Unchanged, it gets no warning."""
    nobid = ["-Wl,--build-id=none"]
    d = lib.tmpdir("mapprof-io-")
    exe = os.path.join(d, "nobid_prog")
    shutil.copy(prog("O2", nobid), exe)
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0
    (m,) = [m for m in lib.read_dump(dump)["modules"] if m["path"] == exe]
    if m["build_id"] is not None:
        raise lib.Skip("the linker wrote a build-id despite --build-id=none")
    cp = run("top", "--json", "-n", "0", dump)
    assert cp.returncode == 0 and text(cp.stderr) == "", text(cp.stderr)
    rows = {r["name"]: r for r in json.loads(cp.stdout)["rows"]}
    assert rows["leaf_alpha"]["flat"] > 0
    shutil.copy(prog("O0", nobid), exe)
    cp = run("top", "-n", "0", dump)
    err = text(cp.stderr)
    assert cp.returncode == 0 and err.count(exe) == 1, \
        "one warning naming the rebuilt %s expected, stderr: %r" % (exe, err)
    assert "rebuilt since the run" in err and "no build-id" in err and \
        "module+offset" in err, err
    assert "leaf_alpha" not in text(cp.stdout) and "nobid_prog+0x" in text(cp.stdout)
    prof = json.loads(run("export", "-q", dump).stdout)
    assert [m["symbols"] for m in prof["modules"] if m["path"] == exe] == ["mismatch"]
    assert run("top", "-q", dump).stderr == b""


def test_report_io_stripped_binary_notice():
    """A stripped binary whose debug file cannot be found gets one warning saying so (it used to
    get +0x... frames with no word); a binary with its symbol table gets none; -q silences it."""
    if not shutil.which("strip"):
        raise lib.Skip("no strip (binutils)")
    d = lib.tmpdir("mapprof-io-")
    for kind in ("--strip-all", "--strip-debug"):
        exe = os.path.join(d, "sites" + kind.replace("-", "_"))
        shutil.copy(prog(), exe)
        subprocess.run(["strip", kind, exe], check=True)
        cp, dump = lib.run_profiled([exe, "1"])
        assert cp.returncode == 0
        for view in ("top", "tree", "export"):
            cp = run(view, dump)
            assert cp.returncode == 0
            lines = [l for l in text(cp.stderr).splitlines() if "stripped" in l]
            if kind == "--strip-all":
                assert len(lines) == 1 and lines[0].startswith("mapprof: warning: %s: " % exe) \
                    and "module+offset" in lines[0], (view, text(cp.stderr))
                assert text(cp.stderr).count(exe) == 1, text(cp.stderr)
            else:
                assert lines == [], (view, text(cp.stderr))
        assert run("top", "-q", dump).stderr == b""


def test_report_io_truncated_binary_notice():
    """A binary cut short since the run (a partial copy: its build-id note is in what is left,
    so it still matches) gets one warning saying it is truncated or damaged, with where its
    headers say it ends and its size; it used to be called stripped, sending the user looking
    for a debug file. Its frames are module+offset; -q silences the warning."""
    d = lib.tmpdir("mapprof-io-")
    exe = os.path.join(d, "sites_cut")
    shutil.copy(prog(), exe)
    with open(exe, "rb") as f:
        whole = f.read()
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0
    for cut in (3000, len(whole) // 2, len(whole) - 1):
        with open(exe, "wb") as f:
            f.write(whole[:cut])
        for view in ("top", "tree", "export"):
            cp = run(view, dump)
            err = text(cp.stderr)
            assert cp.returncode == 0 and err.count(exe) == 1, (cut, view, err)
            (line,) = [l for l in err.splitlines() if exe in l]
            assert line.startswith("mapprof: warning: %s: truncated or damaged (" % exe) and \
                "the file has %d bytes" % cut in line and "module+offset" in line and \
                "stripped" not in line, (cut, view, line)
        out = text(run("top", "-n", "0", dump).stdout)
        assert "leaf_alpha" not in out and "sites_cut+0x" in out, (cut, out)
        prof = json.loads(run("export", "-q", dump).stdout)
        frames = [f for c in prof["chains"] for f in c["frames"] if f["module"] == exe]
        assert frames and all(f["function"] is None for f in frames), (cut, frames[:3])
        assert run("top", "-q", dump).stderr == b""


# ---- the text header ----

def test_report_io_header_dumps_and_sampling():
    """Several dumps: 'and 1 more dump', 'and 2 more dumps'; sampled dumps say so whether one
    or several are shown ('1 of the 2 dumps sampled' when not all are), and from how many
    samples the values are scaled."""
    # Dumps of different processes (two of one process would be read once).
    a, a2, a3 = sites_dump(), sites_dump(scale=2), sites_dump(scale=3)
    s = sites_dump(env={"MAPPROF_SAMPLE": "256"})
    s2 = sites_dump(env={"MAPPROF_SAMPLE": "256"}, scale=2)

    def head(*dumps):
        cp = run("top", "-q", *dumps)
        assert cp.returncode == 0, text(cp.stderr)
        return text(cp.stdout).splitlines()[0]
    assert " and 1 more dump (pids " in head(a, a2)
    assert " and 2 more dumps (pids " in head(a, a2, a3)
    assert "sampled" not in head(a, a2)
    # how many samples the estimates rest on: the dumps' own counts, before scaling
    n, n2 = (sum(c["alloc_objects"] for c in lib.read_dump(d)["chains"]) for d in (s, s2))
    assert n > 0 and n2 > 0
    assert head(s).endswith("), sampled (values scaled from %d samples)" % n), head(s)
    assert head(s, s2).endswith("), sampled (values scaled from %d samples)" % (n + n2)), \
        head(s, s2)
    assert head(a, s).endswith("), 1 of the 2 dumps sampled (values scaled from %d samples)"
                               % n), head(a, s)
    for view in ("tree", "growth"):
        cp = run(view, "-q", a, s)
        assert "1 of the 2 dumps sampled" in text(cp.stdout).splitlines()[0]
    # a merged dump with a sampled input (written already scaled, its own sample_period 0) is
    # still said to hold estimates; the header said nothing of sampling
    d = lib.tmpdir("mapprof-io-")
    ms, ms2 = os.path.join(d, "as.dump"), os.path.join(d, "ss2.dump")
    assert run("merge", "-q", a, s, "-o", ms).returncode == 0
    assert run("merge", "-q", s, s2, "-o", ms2).returncode == 0
    assert head(ms).endswith("), 1 of the 2 dumps sampled (values are estimates, scaled when "
                             "merged)"), head(ms)
    assert head(ms2).endswith("), sampled (values are estimates, scaled when merged)"), head(ms2)
    assert head(ms, a2).endswith("), 1 of the 3 dumps sampled (values are estimates, scaled "
                                 "when merged)"), head(ms, a2)
    assert head(ms, s2).endswith("), 2 of the 3 dumps sampled (values scaled from %d samples, "
                                 "and estimates scaled when merged)" % n2), head(ms, s2)


def test_report_io_missing_debug_dir_is_skipped():
    """A --debug-dir entry that does not exist is skipped with one warning (it ended the
    command with exit 2 and no output); the others are still searched."""
    dump = sites_dump()
    cp = run("top", "--debug-dir", "/nonexistent-debug-dir:" + lib.tmpdir("mapprof-io-"), dump)
    assert cp.returncode == 0 and b"leaf_alpha" in cp.stdout, text(cp.stderr)
    err = text(cp.stderr).strip().splitlines()
    assert err == ["mapprof: warning: --debug-dir /nonexistent-debug-dir: No such file or "
                   "directory; skipped"], err
    # a file is no directory to search: said so as well (it was skipped without a word)
    cp = run("top", "--debug-dir", dump, dump)
    assert cp.returncode == 0 and b"leaf_alpha" in cp.stdout, text(cp.stderr)
    err = text(cp.stderr).strip().splitlines()
    assert err == ["mapprof: warning: --debug-dir %s: Not a directory; skipped" % dump], err


def test_report_io_debug_dir_twice_and_stdin_twice():
    """--debug-dir given twice searches both lists, in order (the second replaced the first, so
    a debug file in the first was not found); - given twice is a usage error that says so (the
    second read found standard input empty)."""
    import shutil
    if not (shutil.which("objcopy") and shutil.which("strip")):
        raise lib.Skip("no binutils")
    d = lib.tmpdir("mapprof-io-")
    exe = os.path.join(d, "sites")
    shutil.copy(prog(), exe)
    debug = os.path.join(d, "sites.debug.keep")
    subprocess.run(["objcopy", "--only-keep-debug", exe, debug], check=True)
    subprocess.run(["strip", "--strip-all", exe], check=True)
    cp, dump = lib.run_profiled([exe, "1"])
    assert cp.returncode == 0
    bid = lib.read_dump(dump)["modules"][0]["build_id"]
    by_id = os.path.join(d, "by-id")
    os.makedirs(os.path.join(by_id, ".build-id", bid[:2]))
    shutil.copy(debug, os.path.join(by_id, ".build-id", bid[:2], bid[2:] + ".debug"))
    empty = lib.tmpdir("mapprof-io-")
    for opts in (["--debug-dir", by_id, "--debug-dir", empty],
                 ["--debug-dir", empty, "--debug-dir", by_id]):
        cp = run("top", "-q", *(opts + [dump]))
        assert cp.returncode == 0 and b"leaf_alpha" in cp.stdout, (opts, text(cp.stdout)[:300])
    with open(sites_dump(), "rb") as f:
        one_error(run_input(f.read(), "top", "-", "-"), 1, "given twice")


def test_report_io_gzip_dump():
    """A gzip'd dump reads as the dump itself, in one gzip member or several (gzip a; gzip b;
    cat: gunzip reads that too); truncated or corrupt gzip data is bad input (exit 2) that says
    so, never a crash."""
    import gzip
    dump = sites_dump()
    with open(dump, "rb") as f:
        raw = f.read()
    d = lib.tmpdir("mapprof-io-")
    whole, members, cut, bad = (os.path.join(d, n) for n in ("a.dump.gz", "m.dump.gz",
                                                             "cut.dump.gz", "bad.dump.gz"))
    with open(whole, "wb") as f:
        f.write(gzip.compress(raw))
    with open(members, "wb") as f:
        f.write(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    with open(cut, "wb") as f:
        f.write(gzip.compress(raw)[:-40])
    z = bytearray(gzip.compress(raw))
    z[len(z) // 2] ^= 0xff
    with open(bad, "wb") as f:
        f.write(bytes(z))
    want = run("top", "--json", dump)
    assert want.returncode == 0
    for gz in (whole, members):
        cp = run("top", "--json", gz)
        assert cp.returncode == 0, text(cp.stderr)
        assert json.loads(cp.stdout)["rows"] == json.loads(want.stdout)["rows"], gz
    one_error(run("top", cut), 2, cut, "gzip")
    one_error(run("top", bad), 2, bad, "gzip")


def test_report_io_gzip_bomb():
    """gzip'd data are inflated only as the records are read: 2 GB of zeros (9 MB of gzip)
    fail at once as no dump, and a dump followed by such a member as data after its END, each
    with memory near the report's usual (before: inflated whole first, 2 GB of memory, before
    the same error)."""
    import zlib
    dump = sites_dump()
    with open(dump, "rb") as f:
        raw = f.read()
    d = lib.tmpdir("mapprof-io-")
    c = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing, fast: 2 GB in a second or two
    zeros = b"".join(c.compress(bytes(1 << 24)) for _ in range(128)) + c.flush()
    only, after = os.path.join(d, "zeros.dump.gz"), os.path.join(d, "after.dump.gz")
    with open(only, "wb") as f:
        f.write(zeros)
    with open(after, "wb") as f:
        import gzip
        f.write(gzip.compress(raw) + zeros)
    exe = os.path.join(lib.BUILD, "mapprof")  # the optimized build: the sanitizers' memory
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run(sys.argv[1:], capture_output=True, timeout=60)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
             "sys.stdout.write(r.stderr.decode())\n")
    for path, words in ((only, "not a mapprof dump"), (after, "after the END record")):
        cp = subprocess.run(["python3", "-c", probe, exe, "top", path], capture_output=True,
                            text=True, timeout=120)
        rc, kb = cp.stdout.split("\n", 1)[0].split()
        assert rc == "2" and words in cp.stdout, cp.stdout
        assert int(kb) < 64 * 1024, "%s: %d MiB" % (path, int(kb) // 1024)


def test_report_io_regex_back_references_refused():
    """--focus, --ignore, --growth-fn and peek take POSIX extended regular expressions, which
    have no back-references; glibc accepts them, and its matcher for them is exponential (a
    --focus of '^(.*)(.*)(.*)\\3\\2\\1x$' on C++ names ran for minutes). They are a usage error
    now, at once; a backslash-1 inside a bracket expression or after an escaped backslash is
    no back-reference and still works."""
    dump = sites_dump()
    for args in (["top", "--focus", r"^(.*)(.*)(.*)\3\2\1x$"], ["top", "--ignore", r"(a*)\1b"],
                 ["growth", "--growth-fn", r"(x)\1"], ["peek", r"(leaf)\1"]):
        cp = run(*(args + [dump]))
        one_error(cp, 1, "back-references")
    for args in (["top", "--focus", r"[\1]|leaf"], ["top", "--focus", r"\\1|leaf"],
                 ["top", "--focus", r"[[:alpha:]\1]"]):
        cp = run(*(args + [dump]))
        assert cp.returncode == 0, (args, text(cp.stderr))


def test_report_io_output_long_name_and_signals():
    """-o FILE writes FILE.tmp.XXXXXX and renames it: a FILE name of 250 bytes (NAME_MAX is
    255) left no room for that and always failed ('File name too long'); it gets a short
    temporary name in the same directory now. A signal that ends the report while it writes
    (SIGUSR1, SIGALRM, as SIGTERM and SIGINT did) removes the temporary file."""
    dump = sites_dump()
    d = lib.tmpdir("mapprof-io-")
    long_name = os.path.join(d, "a" * 250)
    cp = run("top", "-o", long_name, dump)
    assert cp.returncode == 0, text(cp.stderr)
    with open(long_name) as f:
        assert f.read() == text(run("top", dump).stdout)
    assert os.listdir(d) == ["a" * 250], os.listdir(d)
    # a dump big enough that export takes a while under the sanitizers
    big = lib.build_prog("many_chains", ["many_chains.c"])
    cp, bigdump = lib.run_profiled([big, "1", "30000"])
    assert cp.returncode == 0
    for sig in (signal.SIGUSR1, signal.SIGALRM):
        out_dir = lib.tmpdir("mapprof-io-")
        out = os.path.join(out_dir, "all.json")
        p = subprocess.Popen([lib.MAPPROF, "export", "-q", "-o", out, bigdump],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not os.listdir(out_dir) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        seen = os.listdir(out_dir)
        p.send_signal(sig)
        p.wait(60)
        if p.returncode == 0:
            continue  # done before the signal came: nothing to see
        assert seen and p.returncode == -sig, (sig, p.returncode, seen)
        assert os.listdir(out_dir) == [], "left behind after %s: %s" % (sig, os.listdir(out_dir))


def run_input(data, *args):
    """The sanitized report tool with DATA on a pipe as its standard input."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return subprocess.run([lib.MAPPROF] + list(args), input=data, capture_output=True, env=env,
                          timeout=60)


def test_report_io_dash_is_stdin():
    """- as a dump is standard input, as -o - is stdout: a dump piped in (plain or gzip'd)
    reads as the file does, messages name it stdin, and ./- is still a file called '-'."""
    import gzip
    dump = sites_dump()
    with open(dump, "rb") as f:
        raw = f.read()
    want = json.loads(run("top", "--json", dump).stdout)["rows"]
    for data in (raw, gzip.compress(raw)):
        cp = run_input(data, "top", "--json", "-")
        assert cp.returncode == 0, text(cp.stderr)
        assert json.loads(cp.stdout)["rows"] == want
    one_error(run_input(b"", "top", "-"), 2, "stdin", "empty")
    d = lib.tmpdir("mapprof-io-")
    shutil.copy(dump, os.path.join(d, "-"))
    cp = run("top", "--json", "./-", cwd=d)
    assert cp.returncode == 0 and json.loads(cp.stdout)["rows"] == want, text(cp.stderr)
