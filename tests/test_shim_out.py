"""test_shim_out.py: where the dump goes. MAPPROF_OUT with %p, %e and %% expanded; the default
mapprof.<exe>.<pid>.dump in the working directory; and every way the path can be refused (a
directory the process cannot write, a missing directory, an existing file, a symlink): the program
still exits 0 with its own output intact, mapprof prints exactly one stderr line naming the path
and the reason, and nothing at the path is overwritten or followed (a taken name gets the dump
written beside it, <path>.<pid>). And how it is written: unnamed
until whole, so a process killed while writing leaves nothing; named through /proc, copied, or
through a named temporary file where the system allows no better (failures made by a preloaded
library, tests/progs/fs_faults.c). A FIFO or a character device (/dev/null) takes the dump as it is,
without holding the program up or letting a SIGPIPE kill it."""
import os
import shutil
import signal
import subprocess
import time

import lib
import test_robust_exec
import test_shim_api


def prog():
    return test_shim_api.alloc_api()


def run(out, cwd=None, user=None):
    env = {} if out is None else {"MAPPROF_OUT": out}
    cp, pid = lib.run([prog(), "50"], env=env, cwd=cwd, preload=[lib.LIB], user=user)
    assert cp.returncode == 0, "exit %d with MAPPROF_OUT=%s: %s" % (cp.returncode, out,
                                                                    cp.stderr[-500:])
    truth = lib.truth(cp)
    assert truth["pid"] == pid and truth["total"]["objects"] > 0
    return cp, pid


def one_line_about(cp, path, reason):
    lines = cp.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mapprof: "), \
        "expected one mapprof line on stderr, got %r" % cp.stderr
    assert path in lines[0], "the line does not name %s: %r" % (path, lines[0])
    assert reason.lower() in lines[0].lower(), "the line does not say %r: %r" % (reason,
                                                                                 lines[0])


def no_leftovers(d, keep):
    extra = sorted(set(os.listdir(d)) - set(keep))
    assert not extra, "files left in %s: %s" % (d, extra)


def test_out_expands_pid_exe_percent():
    d = lib.tmpdir()
    cp, pid = run(os.path.join(d, "%e-%p-%%.dump"))
    name = "alloc_api-%d-%%.dump" % pid
    no_leftovers(d, [name])
    dump = lib.read_dump(os.path.join(d, name))
    assert dump["info"]["pid"] == pid
    assert not cp.stderr, cp.stderr


def test_out_default_name_in_cwd():
    d = lib.tmpdir()
    cp, pid = run(None, cwd=d)
    name = "mapprof.alloc_api.%d.dump" % pid
    no_leftovers(d, [name])
    assert lib.read_dump(os.path.join(d, name))["info"]["pid"] == pid
    assert not cp.stderr, cp.stderr


def test_out_relative_to_cwd():
    d = lib.tmpdir()
    os.mkdir(os.path.join(d, "sub"))
    cp, pid = run("sub/%p.dump", cwd=d)
    lib.read_dump(os.path.join(d, "sub", "%d.dump" % pid))


def test_out_directory_takes_default_names():
    """MAPPROF_OUT naming a directory (a final '/', or one that exists) puts the dump in it under
    its default name; before, dir/ gave a hidden dir/.<pid> and an existing dir gave dir.<pid>
    beside it."""
    d = lib.tmpdir()
    for out in ("slash/", "exists", "exists/"):
        sub = os.path.join(d, out.rstrip("/"))
        os.makedirs(sub, exist_ok=True)
        cp, pid = run(os.path.join(d, out))
        name = "mapprof.alloc_api.%d.dump" % pid
        no_leftovers(sub, [n for n in os.listdir(sub) if n.startswith("mapprof.")])
        assert lib.read_dump(os.path.join(sub, name))["info"]["pid"] == pid, os.listdir(sub)
        assert not cp.stderr, cp.stderr
    no_leftovers(d, ["slash", "exists"])


def test_out_missing_directory():
    d = lib.tmpdir()
    path = os.path.join(d, "missing", "x.dump")
    cp, _ = run(path)
    one_line_about(cp, path, "No such file or directory")
    no_leftovers(d, [])


def test_out_unwritable_directory():
    """Root writes anywhere, so the program runs as nobody, with a directory it cannot write."""
    if os.geteuid() != 0:
        raise lib.Skip("needs root to run the program as another user")
    d = lib.tmpdir()
    os.chmod(d, 0o755)
    ro = os.path.join(d, "ro")
    os.mkdir(ro, 0o755)
    for p in (lib.LIB, prog()):  # nobody must be able to reach both
        if not os.access(p, os.R_OK) or any(
                not os.stat(a).st_mode & 0o001 for a in parents(p)):
            raise lib.Skip("%s is not reachable by other users" % p)
    path = os.path.join(ro, "x.dump")
    cp, _ = run(path, cwd="/", user="nobody")
    one_line_about(cp, path, "Permission denied")
    no_leftovers(ro, [])


def parents(p):
    p = os.path.dirname(os.path.abspath(p))
    out = []
    while p != "/":
        out.append(p)
        p = os.path.dirname(p)
    return out


def written_beside(cp, pid, path):
    """The run found PATH taken: it left it alone, wrote its dump to PATH.<pid>, and said so
    in one line. Returns the dump."""
    beside = "%s.%d" % (path, pid)
    one_line_about(cp, path, "exists: dump written to " + beside)
    d = lib.read_dump(beside)
    assert d["info"]["pid"] == pid, d["info"]
    return d


def test_out_existing_file_is_kept():
    """A file at the path is never replaced; the dump is written beside it, not lost."""
    d = lib.tmpdir()
    path = os.path.join(d, "taken.dump")
    with open(path, "w") as f:
        f.write("precious\n")
    cp, pid = run(path)
    written_beside(cp, pid, path)
    with open(path) as f:
        assert f.read() == "precious\n", "the existing file was overwritten"
    no_leftovers(d, ["taken.dump", "taken.dump.%d" % pid])


def test_out_symlink_is_not_followed():
    d = lib.tmpdir()
    # A dangling symlink: following it would create the target.
    link, target = os.path.join(d, "link.dump"), os.path.join(d, "target")
    os.symlink(target, link)
    cp, pid1 = run(link)
    written_beside(cp, pid1, link)
    assert os.path.islink(link) and os.readlink(link) == target
    no_leftovers(d, ["link.dump", "link.dump.%d" % pid1])
    # A symlink to an existing file: following it would overwrite the file.
    with open(target, "w") as f:
        f.write("precious\n")
    cp, pid2 = run(link)
    written_beside(cp, pid2, link)
    assert os.path.islink(link)
    with open(target) as f:
        assert f.read() == "precious\n", "the symlink's target was overwritten"
    no_leftovers(d, ["link.dump", "target", "link.dump.%d" % pid1, "link.dump.%d" % pid2])


def test_out_second_run_same_path():
    """Two runs with the same fixed path: the first dump stays, the second run's is written
    beside it, <path>.<pid>, and the run says so; it was lost."""
    d = lib.tmpdir()
    path = os.path.join(d, "fixed.dump")
    run(path)
    first = lib.read_dump(path)
    cp, pid = run(path)
    written_beside(cp, pid, path)
    assert lib.read_dump(path)["info"]["pid"] == first["info"]["pid"]


def test_out_exec_chain_same_path():
    """A script that execs its program, under one fixed MAPPROF_OUT that is taken already: the
    script's image writes <path>.<pid>, and the program's (the same pid) <path>.<pid>-2, each
    said in one line; the program's dump was lost ('will not replace existing file')."""
    d = lib.tmpdir()
    path = os.path.join(d, "fixed.dump")
    open(path, "w").close()
    cp, pid = lib.run(["sh", "-c", 'exec "$0" 50', prog()], env={"MAPPROF_OUT": path},
                      preload=[lib.LIB])
    assert cp.returncode == 0, cp.stderr[-300:]
    lines = cp.stderr.splitlines()
    assert lines == ["mapprof: %s exists: dump written to %s.%d" % (path, path, pid),
                     "mapprof: %s exists: dump written to %s.%d-2" % (path, path, pid)], lines
    shell, program = lib.read_dump("%s.%d" % (path, pid)), lib.read_dump("%s.%d-2" % (path, pid))
    assert shell["info"]["pid"] == program["info"]["pid"] == pid
    assert program["exe"] == os.path.realpath(prog()), program["exe"]
    assert lib.truth(cp)["total"]["objects"] > 0
    no_leftovers(d, ["fixed.dump", "fixed.dump.%d" % pid, "fixed.dump.%d-2" % pid])


def many_chains():
    return lib.build_prog("many_chains", ["many_chains.c"])


def test_out_killed_while_writing_leaves_nothing():
    """A process killed while it writes its dump (SIGKILL, the OOM killer) leaves no file: the
    dump is written unnamed and named only once whole. The kill lands the moment the process has
    a file open in the dump's directory; a named temporary file would be left behind."""
    d = lib.tmpdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPROF_")}
    env.update(LD_PRELOAD=lib.LIB, MAPPROF_OUT=os.path.join(d, "%p.dump"))
    caught = 0
    for _ in range(5):
        p = subprocess.Popen([many_chains(), "1", "100000"], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        fds = "/proc/%d/fd" % p.pid
        while p.poll() is None:
            try:
                links = [os.readlink(os.path.join(fds, f)) for f in os.listdir(fds)]
            except OSError:
                continue  # a descriptor closed between the listing and the readlink
            if any(link.startswith(d + "/") for link in links):
                p.kill()
                caught += 1
                break
            time.sleep(0.0005)
        p.wait()
        assert p.returncode in (0, -signal.SIGKILL), p.returncode
        # Killed while writing: nothing. Killed after the dump was named (before its
        # descriptor was closed), or not killed at all: the whole dump, under its name.
        for f in os.listdir(d):
            assert f == "%d.dump" % p.pid, "files left in %s: %s" % (d, os.listdir(d))
            lib.read_dump(os.path.join(d, f))
            os.unlink(os.path.join(d, f))
    assert caught >= 2, "the dump was seen being written in only %d runs of 5" % caught


def fs_faults():
    return lib.build_prog("libfs_faults.so", ["fs_faults.c"], flags=["-O2", "-shared", "-fPIC"])


def run_with_faults(faults, route, script="true", stale=False):
    """The allocation test program with the dump's file system calls failing as FAULTS says
    (tests/progs/fs_faults.c, which also logs the calls that name the dump and checks for double
    closes), after sh -c SCRIPT in a mount namespace (SCRIPT may mount). ROUTE is what fs_faults
    must say, in order. The dump must be written whole under its name, and nothing else left.
    With STALE, a file is already where the named temporary file goes (left by a killed process
    of the same pid): the copy must then fail with one line about it and touch nothing."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise lib.Skip("needs root and unshare(1) for a mount namespace")
    d = lib.tmpdir()
    if stale:
        script += ' && echo stale > "$4/$$.dump.tmp.$$"'
    cp, _ = lib.run(["unshare", "--mount", "sh", "-c",
                     script + ' && LD_PRELOAD="$1 $2" exec "$3" 50', "sh", lib.LIB, fs_faults(),
                     prog(), d],
                    env={"MAPPROF_OUT": os.path.join(d, "%p.dump"),
                         "FS_FAULTS": faults + ",log,closecheck"})
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    said = [l[len("fs_faults: "):] for l in cp.stderr.splitlines() if l.startswith("fs_faults: ")]
    assert said == route, "%s: fs_faults said %s, want %s" % (faults, said, route)
    others = [l for l in cp.stderr.splitlines() if not l.startswith("fs_faults: ")]
    truth = lib.truth(cp)
    pid = truth["pid"]
    if stale:
        tmp = "%d.dump.tmp.%d" % (pid, pid)
        assert len(others) == 1 and tmp in others[0] and "exists" in others[0], others
        no_leftovers(d, [tmp])
        with open(os.path.join(d, tmp)) as f:
            assert f.read() == "stale\n", "the stale file was changed"
        return
    assert not others, others
    no_leftovers(d, ["%d.dump" % pid])
    lib.check_sites(lib.read_dump(os.path.join(d, "%d.dump" % pid)), prog(), truth["sites"],
                    faults)


def test_out_named_by_descriptor():
    """The usual way: the unnamed dump is linked by its descriptor, and nothing else is tried."""
    run_with_faults("", ["linkat fd"])


def test_out_named_through_proc():
    """Where an open file cannot be linked by its descriptor, the unnamed dump is named through
    /proc/self/fd."""
    run_with_faults("noflink", ["refused linkat AT_EMPTY_PATH", "linkat /proc/self/fd"])


def test_out_copied_without_proc():
    """Where it cannot be linked by its descriptor and there is no /proc (a sandbox), the unnamed
    dump is copied into a named temporary file, which is renamed as before."""
    run_with_faults("noflink", ["refused linkat AT_EMPTY_PATH", "sendfile", "renameat2"],
                    script="mount -t tmpfs none /proc")


def test_out_copy_meets_stale_temporary_file():
    """The copy's temporary name is taken (a process of the same pid killed while it wrote): no
    dump, one line naming that file, which is left as it was and never published as a dump."""
    run_with_faults("noflink", ["refused linkat AT_EMPTY_PATH"],
                    script="mount -t tmpfs none /proc", stale=True)


def test_out_named_file_without_unnamed_files():
    """A file system without unnamed files: a named temporary file, renamed."""
    run_with_faults("notmpfile", ["refused O_TMPFILE", "renameat2"])


def test_out_each_descriptor_closed_once():
    """The dump's descriptor is closed exactly once on every way out: written and named, refused
    (a file is there), named <pid>-2 after an exec of the same executable. A second close could
    close a file another thread has just opened under the same number. A preloaded library
    (tests/progs/fs_faults.c, closecheck) reports any close of a descriptor that is not open."""
    d = lib.tmpdir()
    taken = os.path.join(d, "taken.dump")
    with open(taken, "w") as f:
        f.write("precious\n")
    env = {"FS_FAULTS": "closecheck"}
    preload = [lib.LIB, fs_faults()]
    for out, refused in ((os.path.join(d, "%p.dump"), False), (taken, True)):
        cp, pid = lib.run([prog(), "50"], env=dict(env, MAPPROF_OUT=out), preload=preload)
        assert cp.returncode == 0, cp.stderr[-500:]
        assert "fs_faults" not in cp.stderr, cp.stderr
        if refused:
            one_line_about(cp, taken, "exist")
        else:
            assert not cp.stderr, cp.stderr
            lib.read_dump(os.path.join(d, "%d.dump" % pid))
    with open(taken) as f:
        assert f.read() == "precious\n"
    exe = test_robust_exec.progs()[0]
    cp, pid = lib.run([exe, "exec", "execv", exe], preload=preload,
                      env=dict(env, MAPPROF_OUT=os.path.join(d, "%e.%p.dump")))
    assert cp.returncode == 0, cp.stderr[-500:]
    assert "fs_faults" not in cp.stderr, cp.stderr
    names = sorted(f for f in os.listdir(d) if f.startswith("robust_exec."))
    assert names == ["robust_exec.%d-2.dump" % pid, "robust_exec.%d.dump" % pid], names


def test_out_unknown_percent_is_kept_and_said():
    """%x is not one of %p, %e, %%: the name keeps it as it is, and one line says so."""
    d = lib.tmpdir()
    for tmpl, bad in (("o.%x.dump", "%x"), ("o.%p.dump%", "%")):
        out = os.path.join(d, tmpl)
        cp, pid = lib.run([prog(), "50"], env={"MAPPROF_OUT": out}, preload=[lib.LIB])
        assert cp.returncode == 0, cp
        lines = lib.shim_lines(cp.stderr)
        assert len(lines) == 1 and "MAPPROF_OUT=%s: %s is not %%p, %%e or %%%%" % (out, bad) \
            in lines[0], lines
        lib.read_dump(out.replace("%p", str(pid)))


def test_on_demand_settings_not_understood():
    """Bad MAPPROF_SIGNAL and MAPPROF_INTERVAL values are ignored with one line each that says
    what is wrong with them."""
    for env, said in (({"MAPPROF_SIGNAL": "bogus"}, "MAPPROF_SIGNAL=bogus is not a signal's "
                       "name or number"),
                      ({"MAPPROF_SIGNAL": "KILL"}, "MAPPROF_SIGNAL=KILL cannot be caught"),
                      ({"MAPPROF_INTERVAL": "1.5"}, "MAPPROF_INTERVAL=1.5 is not a whole "
                       "number of seconds")):
        out = os.path.join(lib.tmpdir(), "x.dump")
        cp, _ = lib.run([prog(), "50"], env=dict(env, MAPPROF_OUT=out), preload=[lib.LIB])
        assert cp.returncode == 0, cp
        lines = lib.shim_lines(cp.stderr)
        assert len(lines) == 1 and said in lines[0], (env, lines)
        lib.read_dump(out)


class FifoReader:
    """Reads a FIFO from before the program starts until its writer closes it (or, with LIMIT,
    until LIMIT bytes, then closes it early). The FIFO is open for reading the whole time, so a
    writer's open finds its reader."""

    def __init__(self, path, limit=None):
        import threading
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.limit, self.data, self.done = limit, b"", False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        import select
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while self.limit is None or len(self.data) < self.limit:
            # Before any writer came, a read would say end of file: read only once poll says
            # there is data, or a writer has come and gone (POLLHUP).
            if not poller.poll(100):
                continue
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                break
            self.data += chunk
        self.done = True
        os.close(self.fd)

    def wait(self, timeout=30):
        self.thread.join(timeout)
        assert self.done, "the FIFO's writer never closed it"
        return self.data


def test_out_fifo_takes_the_dump():
    """MAPPROF_OUT naming a FIFO (mkfifo, or a shell's >(...)) streams the dump into it, whole,
    with the program's exact counts; nothing is made beside it."""
    d = lib.tmpdir()
    fifo = os.path.join(d, "dump.fifo")
    os.mkfifo(fifo)
    reader = FifoReader(fifo)
    cp, pid = run(fifo)
    assert not cp.stderr, cp.stderr
    data = reader.wait()
    no_leftovers(d, ["dump.fifo"])
    got = os.path.join(lib.tmpdir(), "from-fifo.dump")
    with open(got, "wb") as f:
        f.write(data)
    dump = lib.read_dump(got)
    assert dump["info"]["pid"] == pid
    other = lib.check_sites(dump, prog(), lib.truth(cp)["sites"], "through a FIFO")
    assert not other, "allocations outside the sites: %d chains" % len(other)
    # And the report reads it as it comes, as in MAPPROF_OUT=>(mapprof top -) ./app: the dump
    # goes to /dev/fd/N, the write end of a pipe whose read end is the report's standard input.
    r, w = os.pipe()
    top = subprocess.Popen([lib.MAPPROF, "top", "-"], stdin=r, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPROF_")}
    env.update(LD_PRELOAD=lib.LIB, MAPPROF_OUT="/dev/fd/%d" % w)
    app = subprocess.run([prog(), "50"], env=env, pass_fds=[w], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, timeout=60)
    os.close(r)
    os.close(w)
    out, err = top.communicate(timeout=60)
    assert app.returncode == 0 and not app.stderr, app.stderr
    assert top.returncode == 0, err.decode()[-500:]
    assert b"alloc_objects" in out and b"site_" in out, out.decode()[-500:]


def test_out_fifo_nobody_reads():
    """A FIFO nobody has open for reading: no dump, one line saying so, and the program ends at
    once with its own status, not held up until a reader comes."""
    d = lib.tmpdir()
    fifo = os.path.join(d, "dump.fifo")
    os.mkfifo(fifo)
    cp, _ = run(fifo)
    one_line_about(cp, fifo, "nothing reads the FIFO")
    no_leftovers(d, ["dump.fifo"])


def test_out_fifo_reader_leaves_early():
    """The FIFO's reader goes away mid-dump: the write fails with EPIPE and the SIGPIPE it raises
    is taken away, so the program still ends with its own status (not killed by SIGPIPE), and
    one line says the dump was cut short."""
    d = lib.tmpdir()
    fifo = os.path.join(d, "dump.fifo")
    os.mkfifo(fifo)
    reader = FifoReader(fifo, limit=4096)  # a dump of 100,000 chains is megabytes
    cp, _ = lib.run([many_chains(), "1", "100000"], env={"MAPPROF_OUT": fifo},
                    preload=[lib.LIB])
    reader.wait()
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-500:])
    one_line_about(cp, fifo, "Broken pipe")


def test_out_device_takes_the_dump():
    """MAPPROF_OUT=/dev/null (a character device) discards the dump: nothing written into /dev
    beside it, no line, the program's status kept. /dev/zero's sibling /dev/full says why the
    dump was lost."""
    before = set(os.listdir("/dev"))
    cp, _ = run("/dev/null")
    assert not cp.stderr, cp.stderr
    assert set(os.listdir("/dev")) - before == set(), set(os.listdir("/dev")) - before
    if os.path.exists("/dev/full"):
        cp, _ = run("/dev/full")
        one_line_about(cp, "/dev/full", "No space left on device")
        assert set(os.listdir("/dev")) - before == set()


def test_out_fifo_kept_after_a_failed_exec():
    """A failed exec takes back the dump written before it, by deleting the file it named; a
    FIFO is not that file, and stays (each image's dump went into it, here to no reader)."""
    d = lib.tmpdir()
    fifo = os.path.join(d, "dump.fifo")
    os.mkfifo(fifo)
    prog_exec, _ = test_robust_exec.progs()
    cp, _ = lib.run([prog_exec, "execfail"], env={"MAPPROF_OUT": fifo}, preload=[lib.LIB])
    assert cp.returncode == 0, cp.stderr[-500:]
    assert os.path.exists(fifo) and stat_is_fifo(fifo), "the FIFO is gone: %s" % os.listdir(d)
    lines = cp.stderr.splitlines()
    assert lines and all("nothing reads the FIFO" in x for x in lines), cp.stderr[-500:]


def stat_is_fifo(path):
    import stat
    return stat.S_ISFIFO(os.stat(path).st_mode)


def test_out_fifo_slow_reader_holds_up_only_the_dump():
    """A FIFO whose reader does not read yet: an on-demand dump (MAPPROF_SIGNAL) waits for it,
    and so does the exit's, but the program's own work does not. The dump is made in memory and
    copied out with the shim's lock let go, so the thread that is making new call chains (each
    needs the lock) goes on to its end."""
    import select
    d = lib.tmpdir()
    fifo = os.path.join(d, "dump.fifo")
    os.mkfifo(fifo)
    hold = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that reads nothing yet
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAPPROF_")}
    env.update(LD_PRELOAD=lib.LIB, MAPPROF_OUT=fifo, MAPPROF_SIGNAL="USR2")
    p = subprocess.Popen([many_chains(), "1", "100000"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)  # some thousands of chains made: a dump of more than a pipe holds
        p.send_signal(signal.SIGUSR2)
        ready = select.select([p.stdout], [], [], 30)[0]
        line = p.stdout.readline() if ready else b""
    finally:
        os.set_blocking(hold, True)
        data = b""
        while True:  # now read both dumps, so the program can end
            chunk = os.read(hold, 1 << 20)
            if not chunk and p.poll() is not None:
                break
            data += chunk
        os.close(hold)
        p.wait(60)
    assert line.startswith(b'{"role":"main"'), \
        "the program stalled while its on-demand dump waited for the FIFO's reader"
    assert p.returncode == 0, p.stderr.read().decode()[-500:]
    assert data.startswith(b"MAPPROF\0") and data.count(b"MAPPROF\0") >= 2 and \
        len(data) > 1 << 16, "%d bytes from the FIFO" % len(data)
