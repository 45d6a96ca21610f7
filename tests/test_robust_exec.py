"""test_robust_exec.py: exec and process creation. exec through each of the eight wrappers writes
the dump of the image that ran before it (named after its own executable) and the new image
writes its own under the same pid; a failed exec returns as without mapprof, leaves no dump
behind and profiling goes on; fork+exec, posix_spawn, vfork+exec, system() and a double fork give
each process image exactly its own dump, no more; fork children that allocate nothing and end
without an exec write none."""
import os

import lib
import robust

WRAPPERS = ["execv", "execve", "execvp", "execvpe", "execl", "execlp", "execle", "fexecve"]


def progs():
    return robust.build("robust_exec", sources=["robust_exec.c"]), \
        robust.build("robust_exec_other", sources=["robust_exec.c"])


def run(args, status=0):
    prog, other = progs()
    out = lib.tmpdir()
    env = {"PATH": os.path.dirname(other) + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
    cp, dump = lib.run_profiled([prog] + args, out=os.path.join(out, "%e.%p.dump"), env=env)
    what = " ".join(args).replace(os.path.dirname(other) + "/", "")
    assert cp.returncode == status, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-800:])
    robust.no_temp_files(out)
    return cp, out, what


def check_images(cp, out, what, extra_ok=()):
    """Every truth line is one process image with a dump named after its executable and pid,
    holding exactly its truth; the only other dumps are of executables in EXTRA_OK."""
    prog, other = progs()
    lines = lib.json_lines(cp.stdout)
    want = {}
    for t in lines:
        binary = other if t["role"] == "leaf" else prog
        name = "%s.%d.dump" % (os.path.basename(binary), t["pid"])
        assert name not in want, "%s: two images claim %s" % (what, name)
        want[name] = (t, binary)
    have = robust.files(out)
    missing = sorted(set(want) - set(have))
    assert not missing, "%s: no dump %s; files: %s" % (what, missing, have)
    for name in sorted(set(have) - set(want)):
        d = lib.read_dump(os.path.join(out, name))
        assert os.path.basename(d["exe"]) in extra_ok, "%s: unexpected dump %s of %s" % (
            what, name, d["exe"])
    for name, (t, binary) in sorted(want.items()):
        d = lib.read_dump(os.path.join(out, name))
        robust.check_process(d, binary, t, "%s: %s" % (what, t["role"]))
        assert d["info"]["ppid"] == t["ppid"], "%s: %s ppid %d, program says %d" % (
            what, t["role"], d["info"]["ppid"], t["ppid"])
        assert os.path.realpath(d["exe"]) == os.path.realpath(binary), (what, d["exe"])
    return {t["role"]: t for t in lines}


def check_exec(wrapper):
    prog, other = progs()
    cp, out, what = run(["exec", wrapper, other])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["before", "leaf"], roles
    assert roles["before"]["pid"] == roles["leaf"]["pid"] == cp.pid
    d = lib.read_dump(os.path.join(out, "robust_exec_other.%d.dump" % cp.pid))
    assert d["cmdline"] == [other, "leaf"], d["cmdline"]


def test_exec_execv():
    check_exec("execv")


def test_exec_execve():
    check_exec("execve")


def test_exec_execvp():
    check_exec("execvp")


def test_exec_execvpe():
    check_exec("execvpe")


def test_exec_execl():
    check_exec("execl")


def test_exec_execlp():
    check_exec("execlp")


def test_exec_execle():
    check_exec("execle")


def test_exec_fexecve():
    check_exec("fexecve")


def test_exec_failures_keep_profiling():
    """Each wrapper fails (ENOENT; EACCES for fexecve of /dev/null) exactly as without mapprof;
    the dump written before each attempt is taken back; the one exit dump holds everything."""
    prog, _ = progs()
    native, _ = lib.run([prog, "execfail"])
    assert native.returncode == 0, native.stderr
    cp, out, what = run(["execfail"])
    robust.no_shim_lines(cp, what)
    a, b = lib.truth(native)["checks"], lib.truth(cp)["checks"]
    assert a == b, "without / with mapprof: %s / %s" % (a, b)
    for w in WRAPPERS:
        assert b[w + "_ret"] == -1 and b[w + "_errno"] in (2, 13), (w, b)
    roles = check_images(cp, out, what)
    assert list(roles) == ["main"]
    assert robust.files(out) == ["robust_exec.%d.dump" % cp.pid], robust.files(out)


def test_exec_fork_then_exec():
    """A fork child that execs without allocating leaves no dump of its own; the exec'd image
    does."""
    _, other = progs()
    cp, out, what = run(["forkexec", other])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["leaf", "parent"], roles
    assert len(robust.files(out)) == 2, robust.files(out)


def test_exec_fork_alloc_then_exec():
    """A fork child that allocates before its exec writes its dump first (fork-child counts
    only), then the exec'd image writes its own under the same pid."""
    _, other = progs()
    cp, out, what = run(["forkexec", other, "alloc"])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["child", "leaf", "parent"], roles
    assert roles["child"]["pid"] == roles["leaf"]["pid"]
    d = lib.read_dump(os.path.join(out, "robust_exec.%d.dump" % roles["child"]["pid"]))
    assert d["info"]["flags"] & lib.INFO_FORKED


def test_exec_fork_children_that_allocate_nothing():
    """Fork children that allocate nothing and end by _exit or by exit (a daemon's first fork, a
    worker that fails at once) write no dump: only the parent's is there."""
    cp, out, what = run(["forkquiet"])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["parent"], roles
    assert robust.files(out) == ["robust_exec.%d.dump" % cp.pid], robust.files(out)


def test_exec_posix_spawn():
    _, other = progs()
    cp, out, what = run(["spawn", other])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["leaf", "parent"] and len(robust.files(out)) == 2, \
        robust.files(out)


def test_exec_vfork():
    """The vfork child shares the parent's memory until its exec: it must write no dump (the
    parent's counts would be in it) and must not disturb the parent's profile."""
    _, other = progs()
    cp, out, what = run(["vfork", other])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["leaf", "parent"] and len(robust.files(out)) == 2, \
        robust.files(out)


def test_exec_system():
    """system() runs /bin/sh, which is profiled too: its dumps are valid and named after it."""
    _, other = progs()
    cp, out, what = run(["system", other])
    robust.no_shim_lines(cp, what)
    shells = {os.path.basename(os.path.realpath(p)) for p in ("/bin/sh", "/bin/dash", "/bin/bash")
              if os.path.exists(p)}
    roles = check_images(cp, out, what, extra_ok=shells)
    assert sorted(roles) == ["leaf", "parent"], roles


def test_exec_double_fork():
    cp, out, what = run(["doublefork"])
    robust.no_shim_lines(cp, what)
    roles = check_images(cp, out, what)
    assert sorted(roles) == ["child", "grandchild", "parent"], roles
    assert len(robust.files(out)) == 3, robust.files(out)


def test_exec_same_executable_keeps_both_dumps():
    """exec of the program's own executable: same pid, same name, two images. The first image's
    dump keeps its name; the second, finding it taken, writes <pid>-2 instead of losing its
    dump (and never replaces the first)."""
    prog, _ = progs()
    out = lib.tmpdir()
    cp, _ = lib.run_profiled([prog, "exec", "execv", prog], out=os.path.join(out, "%e.%p.dump"))
    what = "exec of itself"
    assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode, cp.stderr[-800:])
    robust.no_shim_lines(cp, what)
    robust.no_temp_files(out)
    roles = {t["role"]: t for t in lib.json_lines(cp.stdout)}
    assert sorted(roles) == ["before", "leaf"], roles
    base = "robust_exec.%d" % cp.pid
    assert sorted(robust.files(out)) == [base + "-2.dump", base + ".dump"], robust.files(out)
    for name, role in ((base + ".dump", "before"), (base + "-2.dump", "leaf")):
        d = lib.read_dump(os.path.join(out, name))
        robust.check_process(d, prog, roles[role], "%s: %s" % (what, role))
