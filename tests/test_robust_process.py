"""test_robust_process.py: the process's own behaviour, unchanged under the shim in every mode:
_exit or abort from a signal handler that interrupts an allocation ends the process with that
status (the shim, interrupted inside itself, writes no dump rather than wait on its own locks); a
fork from such a handler completes; allocations raise no floating-point exception flag (the
sampling draw keeps the program's state); malloc is not a cancellation point, and a thread that
exits with a cancellation pending is not cancelled in the dump; threads with the smallest
stacks, handlers on small alternate stacks and coroutines on small stacks of their own do not
overflow them (the walk runs on a stack of the shim's own); the program keeps every pthread key; a file size limit smaller than
the dump costs the dump, not the process (no SIGXFSZ); a standard error nobody reads costs a
message, not the process (no SIGPIPE)."""
import json
import os
import resource
import shutil
import subprocess

import lib
import robust

MODES = [{}, {"MAPPROF_UNWIND": "fp"}, {"MAPPROF_SAMPLE": "4096"}, {"MAPPROF_INUSE": "0"}]


def prog():
    return robust.build("robust_process", flags=["-O2", "-fno-omit-frame-pointer"],
                        sources=["robust_process.c"])


def native(args):
    cp, _ = lib.run([prog()] + args, timeout=60)
    return cp


def profiled(args, env):
    cp, dump = lib.run_profiled([prog()] + args, env=env, timeout=60)
    return cp, dump


def same_as_native(args, runs=1, all_recorded=False):
    """Exit status and stdout as without mapprof in every mode; ALL_RECORDED: and no call
    counted as not recorded."""
    want = native(args)
    for env in MODES:
        for _ in range(runs):
            cp, dump = profiled(args, env)
            if all_recorded:
                info = lib.read_dump(dump)["info"]
                assert info["not_recorded"] == 0, "%s %s: %d calls not recorded" % (
                    " ".join(args), env, info["not_recorded"])
            what = "%s %s" % (" ".join(args), env)
            assert (cp.returncode, cp.stdout) == (want.returncode, want.stdout), \
                "%s: exit %d %r, without mapprof exit %d %r; %s" % (
                    what, cp.returncode, cp.stdout, want.returncode, want.stdout,
                    cp.stderr[-400:])
    return want


def test_exit_in_signal_handler():
    # It hung in some 1 run of 4 when the handler interrupted the shim: 5 runs a mode.
    assert same_as_native(["exit_in_handler"], runs=5).returncode == 3


def test_abort_in_signal_handler():
    assert same_as_native(["exit_in_handler", "abort"], runs=5).returncode == -6


def test_fork_in_signal_handler():
    assert '"forks_done": 1' in same_as_native(["fork_in_handler"]).stdout


def test_no_floating_point_flags():
    assert '"raised": 0' in same_as_native(["fenv"]).stdout
    cp, _ = profiled(["fenv"], {"MAPPROF_SAMPLE": "1"})
    assert '"raised": 0' in cp.stdout, cp.stdout + cp.stderr


def test_cancel_pending_in_malloc():
    assert '"worker": "returned"' in same_as_native(["cancel"]).stdout


def test_cancel_pending_at_exit():
    assert same_as_native(["cancel_exit"]).returncode == 5
    assert same_as_native(["cancel_exit", "exit"]).returncode == 5


def test_small_thread_stacks():
    # Threads of PTHREAD_STACK_MIN (16 KiB): the checked walk needs some 6 KiB more than the
    # program's own frames; without room there it runs on the shim's spare stack, and every
    # call is recorded (they were counted as not recorded before).
    for depth in ("4", "16", "28"):
        assert '"threads_done": 1' in same_as_native(["smallstack", depth],
                                                     all_recorded=True).stdout


def test_small_thread_stacks_every_depth_fp():
    # fp mode's first walk of an address it has not judged yet walks twice at once, the second
    # walk's buffer on top of the checked walk's room: on a 16 KiB thread 8 frames deep it
    # overflowed (SIGSEGV in libunwind under learn_and_walk), at depth 64 and, with a buffer
    # sized for 256 frames, at MAPPROF_DEPTH=256 too. The program runs natively at each depth.
    for depth in range(4, 29, 2):
        want = native(["smallstack", str(depth)])
        assert '"threads_done": 1' in want.stdout
        for env in ({"MAPPROF_UNWIND": "fp"}, {"MAPPROF_UNWIND": "fp", "MAPPROF_DEPTH": "256"}):
            cp, _ = profiled(["smallstack", str(depth)], env)
            assert (cp.returncode, cp.stdout) == (want.returncode, want.stdout), \
                "depth %d %s: exit %d; %s" % (depth, env, cp.returncode, cp.stderr[-300:])


def test_small_thread_stack_records_first():
    # The process's first recorded call on a 16 KiB thread stack, 28 frames deep: learning the
    # thread's stack (pthread_getattr_np) calls realloc through libc's lazily bound PLT, and
    # the dynamic loader's resolver overflowed what was left. Sampling at 1 MiB makes each
    # thread's first block (64 MiB) the first sampled call; in sampling mode that happened at
    # random (the smallstack test crashed in about 1 run of 20).
    cp, _ = profiled(["smallstack_big", "28"], {"MAPPROF_SAMPLE": "1M"})
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-400:])
    assert '"threads_done": 1' in cp.stdout


def test_small_thread_stack_records_first_without_proc():
    # The same without /proc (a mount namespace with an empty tmpfs over it, as in some
    # sandboxes): glibc's pthread_getattr_np on the main thread reaches realloc only by reading
    # /proc/self/maps, so the shim's init makes libc call it another way.
    if os.geteuid() != 0 or not shutil.which("unshare"):
        raise lib.Skip("needs root and unshare(1) for a mount namespace")
    out = lib.tmpdir()
    script = 'mount -t tmpfs none /proc && LD_PRELOAD="$1" exec "$2" smallstack_big 28'
    cp, _ = lib.run(["unshare", "--mount", "sh", "-c", script, "sh", lib.LIB, prog()],
                    env={"MAPPROF_SAMPLE": "1M", "MAPPROF_OUT": os.path.join(out, "%p.dump")},
                    timeout=60)
    if "mount" in cp.stderr and cp.returncode not in (0, -11, 139):
        raise lib.Skip("cannot mount over /proc here: %s" % cp.stderr[-200:])
    assert cp.returncode == 0, "exit %d: %s" % (cp.returncode, cp.stderr[-400:])
    assert '"threads_done": 1' in cp.stdout


def test_small_alternate_signal_stack():
    assert '"handled": 1' in same_as_native(["altstack"], all_recorded=True).stdout


def coro():
    return robust.build("robust_coro", flags=["-O2", "-fno-omit-frame-pointer"],
                        sources=["robust_coro.c"])


def test_coroutine_on_a_small_stack():
    """A coroutine (makecontext) on a stack of 4 or 8 KiB, which it needs under 2 KiB of
    natively: mapped with a guard page below (the walk on it faulted: SIGSEGV in every mode),
    or carved from a malloc'd block (the walk wrote over the 4 KiB below it, silently). The walk
    runs on a stack of the shim's own now: same output and status as without mapprof in every
    mode, the block below intact, and every allocation counted at its site."""
    for kind in ("mmap", "heap"):
        for size in ("4096", "8192"):
            args = [kind, size, "20"]
            want, _ = lib.run([coro()] + args, timeout=60)
            assert want.returncode == 0 and '"canary_ok":1' in want.stdout, want.stdout
            for env in MODES:
                what = "%s %s" % (" ".join(args), env)
                cp, dump = lib.run_profiled([coro()] + args, env=env, timeout=60)
                assert cp.returncode == 0, "%s: exit %d: %s" % (what, cp.returncode,
                                                                cp.stderr[-400:])
                assert lib.truth(cp)["checks"] == lib.truth(want)["checks"], \
                    "%s: %s, without mapprof %s" % (what, lib.truth(cp)["checks"],
                                                    lib.truth(want)["checks"])
                d = lib.read_dump(dump)
                assert d["info"]["not_recorded"] == 0, (what, d["info"])
                if not {"MAPPROF_SAMPLE", "MAPPROF_INUSE"} & set(env):  # exact, frees too
                    other = lib.check_sites(d, coro(), lib.truth(cp)["sites"], what)
                    assert not other, "%s: %d chains at no site" % (what, len(other))


def test_pthread_keys_left_to_the_program():
    # The shim's thread-exit hook took one of the PTHREAD_KEYS_MAX keys; it takes none now.
    # libunwind takes one, once a thread has unwound (it frees its per-thread trace cache
    # through a key), and the shim cannot give that one back.
    want = json.loads(native(["keys"]).stdout)["keys"]
    for env in MODES:
        cp, _ = profiled(["keys"], env)
        assert cp.returncode == 0, (env, cp.stderr[-400:])
        got = json.loads(cp.stdout)["keys"]
        assert want - 1 <= got <= want, "%s: %d keys, without mapprof %d" % (env, got, want)


def test_file_size_limit():
    out = lib.tmpdir()
    limit = 1024  # smaller than any dump

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ, LD_PRELOAD=lib.LIB, MAPPROF_OUT=os.path.join(out, "%p.dump"))
    p = subprocess.run([prog(), "fsize"], env=env, preexec_fn=small_files,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 0, "exit %d (SIGXFSZ is 25): %s" % (p.returncode, p.stderr)
    assert '"printed": 1' in p.stdout
    assert "File too large" in p.stderr, p.stderr
    assert os.listdir(out) == [], "left behind: %s" % os.listdir(out)


def test_closed_stderr_pipe():
    # The dump cannot be written, and the message about it goes to a pipe whose reader is gone.
    r, w = os.pipe()
    os.close(r)
    env = dict(os.environ, LD_PRELOAD=lib.LIB, MAPPROF_OUT="/nonexistent-dir/x.dump")
    p = subprocess.run([prog(), "fsize"], env=env, stdout=subprocess.PIPE, stderr=w, text=True,
                       timeout=60)
    os.close(w)
    assert p.returncode == 0, "exit %d (SIGPIPE is -13)" % p.returncode
    assert '"printed": 1' in p.stdout
