/* endsig.c: MAPPROF_END_SIGNALS, a dump from a program that a signal ends.
 *
 * A program stopped with Ctrl-C or kill, which has no handler of its own for
 * the signal, dies without running its exit path, and so without a dump. With
 * MAPPROF_END_SIGNALS=INT,TERM the shim puts its own handler where the
 * program has the default action. When the signal comes, the shim's dump
 * thread (lifecycle.c, which blocks every signal and has a stack of its own)
 * writes the dump and then ends the process by the same signal with the
 * default action: the parent sees the same wait status (and a core for
 * SIGQUIT where the program would have left one). The thread the signal came
 * to raises it again itself when it waits in the handler, so that a core
 * shows that thread first, not the dump thread.
 *
 * The handler only marks the process as ending and wakes the dump thread. A
 * thread the signal found outside the shim then waits in the handler until
 * the process ends, as it would have ended at once without the shim: none of
 * its calls returns EINTR, and it cannot exit with a status of its own. A
 * thread found inside the shim (its hooks, a fork, its thread-exit hook, a
 * dump at exit) returns to let go of the shim's locks, which the dump needs;
 * an exit (a return from main too), quick_exit, fork, exec or spawn that
 * comes meanwhile waits (lifecycle.c).
 * A dump already under way before an exec is finished and the process then
 * ended by the signal; one under way at an exit is finished and the exit goes
 * on with its own status (the process would have been gone without the
 * shim). Every wait of the end is bounded: a dump that stands still (a
 * stopped thread holds a lock it needs) gives way to the signal.
 *
 * The program does not see the handler: the shim's sigaction, signal,
 * bsd_signal, sysv_signal (what signal is in a strict ISO C build) and sigset
 * report the default action where the shim's stands in for it, as the C
 * library would report it; a program that sets the default action gets the
 * shim's handler again. So a runtime that installs its own handler only where
 * it finds the default one (Python's KeyboardInterrupt) still does, and then
 * the signal is the program's. */
#include <linux/futex.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

/* The C library's own, for calls before the shim has looked its next ones up. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);

/* What the program believes is installed where the shim's handler stands in
 * for the default action: the default action, as the C library reports it
 * (flags, restorer, and the mask the kernel keeps). */
static struct sigaction apparent[MP_END_SIGNALS];

static int real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int (*real)(int, const struct sigaction *, struct sigaction *) =
	    __atomic_load_n(&mp_real.sigaction, __ATOMIC_RELAXED);
	return (real ? real : __sigaction)(sig, act, old);
}

static inline bool watched(int sig)
{
	return sig > 0 && sig < MP_END_SIGNALS && (mp.end_signals >> (sig - 1) & 1);
}

static void on_end_signal(int sig, siginfo_t *info, void *ctx);

static bool is_ours(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == on_end_signal;
}

static void our_action(struct sigaction *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sa_sigaction = on_end_signal;
	sa->sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa->sa_mask); /* nothing else runs on this thread meanwhile */
}

/* Into a program's struct sigaction, as the C library fills one: the mask's
 * first 64 bits (the kernel's), the rest of the program's buffer as it was. */
static void report(struct sigaction *out, const struct sigaction *a)
{
	out->sa_sigaction = a->sa_sigaction;
	out->sa_flags = a->sa_flags;
	out->sa_restorer = a->sa_restorer;
	memcpy(&out->sa_mask, &a->sa_mask, _NSIG / 8);
}

void mp_end_signals_die(int sig)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	for (;;) {
		/* Pending on this thread, then let in: the default action. */
		syscall(SYS_tgkill, getpid(), gettid(), sig);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	}
}

/* How long the end may stand still. A thread the signal stopped may hold a
 * lock that the dump needs, directly or through another thread: the C
 * library's (a malloc arena, the stdio list, which a fork takes while the
 * shim's fork hook holds the shim's lock) or the loader's (which an on-demand
 * dump under way waits for). Such a dump never ends; the process then ends by
 * the signal without it, as it would have without the shim.
 *
 * Standing still is judged by the dump thread's CPU time and the dumps'
 * progress count, over a number of naps rather than wall time: a dump thread
 * starved of CPU by the program's busy threads still moves on, and a process
 * stopped (SIGSTOP, a freezer) takes no naps meanwhile. */
#define NAP_NS      (20 * 1000000)
#define STALL_NAPS  250 /* 5 s of naps */
#define UNPARK_NAPS 10  /* 200 ms: a fork waits for what a parked thread holds */

static uint64_t progress_mark(void)
{
	uint64_t mark = __atomic_load_n(&mp.dump_progress, __ATOMIC_RELAXED);
	struct timespec cpu;
	/* Not once the dump thread itself only waits (for an exit's dump, say):
	 * its naps take CPU time too. */
	if (mp.dump_thread_clocked && !__atomic_load_n(&mp.dump_thread_idle, __ATOMIC_ACQUIRE) &&
	    clock_gettime(mp.dump_thread_clock, &cpu) == 0)
		mark += (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec;
	return mark;
}

/* Returns when *busy is 0 (never if busy is NULL) or, for a thread the
 * signal stopped in its handler (receiver), when a fork waits on it; ends the
 * process by sig when the end stands still, or when it is over (receiver). */
static void wait_end(int sig, const int *busy, bool receiver)
{
	uint64_t seen = progress_mark();
	int still = 0;
	while (!busy || __atomic_load_n(busy, __ATOMIC_ACQUIRE)) {
		nanosleep(&(struct timespec){0, NAP_NS}, NULL);
		if (receiver && __atomic_load_n(&mp.end_done, __ATOMIC_ACQUIRE))
			mp_end_signals_die(__atomic_load_n(&mp.end_signal, __ATOMIC_ACQUIRE));
		uint64_t now = progress_mark();
		if (now != seen) {
			seen = now;
			still = 0;
			continue;
		}
		still++;
		/* Stopped inside the C library (a malloc arena's lock, say) while
		 * another thread forks: the fork waits for that lock holding the
		 * shim's, which the dump needs. This thread goes on instead, as the
		 * program's other threads do, and lets go of the lock. */
		if (receiver && still >= UNPARK_NAPS &&
		    __atomic_load_n(&mp.forking, __ATOMIC_ACQUIRE))
			return;
		if (still >= STALL_NAPS) {
			static int told;
			if (!__atomic_exchange_n(&told, 1, __ATOMIC_ACQ_REL))
				mp_log("no dump: it made no progress for %d s after SIG%s (a "
				       "thread the "
				       "signal stopped holds a lock it needs); ending the process",
				       STALL_NAPS * (NAP_NS / 1000000) / 1000,
				       sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
			mp_end_signals_die(sig);
		}
	}
}

void mp_end_signals_wait_while(int sig, const int *busy)
{
	wait_end(sig, busy, false);
}

void mp_end_signals_finish(int sig)
{
	__atomic_store_n(&mp.end_done, true, __ATOMIC_RELEASE);
	/* A thread waiting in the handler sees it within one of its naps. */
	for (int i = 0; i < 50 && __atomic_load_n(&mp.end_parked, __ATOMIC_ACQUIRE); i++)
		nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	mp_end_signals_die(sig);
}

static void on_end_signal(int sig, siginfo_t *info, void *ctx)
{
	(void)info;
	(void)ctx;
	int saved = errno;
	/* A vfork child shares our memory and not our dump thread; a process
	 * whose dump thread could not be started has none. */
	if (getpid() != mp.pid || !__atomic_load_n(&mp.dump_thread_started, __ATOMIC_ACQUIRE))
		mp_end_signals_die(sig);
	/* Counted before the dump thread is woken: it ends the process on this
	 * thread, which it then waits for. */
	bool park = !mp_tl.in_hook;
	if (park)
		__atomic_add_fetch(&mp.end_parked, 1, __ATOMIC_ACQ_REL);
	int none = 0;
	__atomic_compare_exchange_n(&mp.end_signal, &none, sig, false, __ATOMIC_ACQ_REL,
	                            __ATOMIC_ACQUIRE);
	__atomic_add_fetch(&mp.wake, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &mp.wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	if (park) {
		wait_end(sig, NULL, true);
		__atomic_sub_fetch(&mp.end_parked, 1, __ATOMIC_ACQ_REL);
	}
	errno = saved;
}

void mp_end_signals_wait(void)
{
	int sig = __atomic_load_n(&mp.end_signal, __ATOMIC_ACQUIRE);
	if (sig && getpid() == mp.pid) /* not a vfork child, which shares our memory */
		mp_end_signals_wait_while(sig, NULL);
}

/* Puts the shim's handler where the program has the default action of a
 * signal of MAPPROF_END_SIGNALS; run once, at start, once the dump thread
 * runs. */
void mp_end_signals_install(void)
{
	for (int sig = 1; sig < MP_END_SIGNALS; sig++) {
		if (!watched(sig))
			continue;
		struct sigaction old, ours;
		memset(&old, 0, sizeof(old));
		if (real_sigaction(sig, NULL, &old) != 0)
			continue;
		if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
			continue; /* the program's own handler, or ignored (nohup) */
		apparent[sig] = old;
		our_action(&ours);
		real_sigaction(sig, &ours, NULL);
	}
}

/* A fork child: its own signals end it as they would. */
void mp_end_signals_forked(void)
{
	__atomic_store_n(&mp.end_signal, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&mp.end_parked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&mp.end_done, false, __ATOMIC_RELAXED);
}

/* Why sig may not be listed, or NULL if it may: it must be caught, and end
 * the process by default, but not be one a fault raises (SIGSEGV and the
 * like: the program is broken then) nor SIGABRT (abort writes its dump
 * already). */
const char *mp_end_signal_refusal(int sig)
{
	switch (sig) {
	case SIGHUP:
	case SIGINT:
	case SIGQUIT:
	case SIGPIPE:
	case SIGALRM:
	case SIGTERM:
	case SIGUSR1:
	case SIGUSR2:
	case SIGSTKFLT:
	case SIGXCPU:
	case SIGXFSZ:
	case SIGVTALRM:
	case SIGPROF:
	case SIGIO:
	case SIGPWR:
		return NULL;
	case SIGSEGV:
	case SIGBUS:
	case SIGFPE:
	case SIGILL:
	case SIGTRAP:
	case SIGSYS:
		return "is raised by faults (the program is broken then, and no dump is written)";
	case SIGABRT:
		return "is abort's, which writes the dump already";
	case SIGKILL:
	case SIGSTOP:
		return "cannot be caught";
	default:
		if (sig >= SIGRTMIN && sig <= SIGRTMAX)
			return sig < MP_END_SIGNALS ? NULL : "is above 64";
		return "does not end a program by default";
	}
}

/* A handler the program sets with SA_RESETHAND (what signal is in a strict
 * ISO C build): the kernel would reset the action to the default itself when
 * the signal comes, behind the shim's back, and a handler that cleans up and
 * raises the signal again, as C programs do, would then end the process
 * without a dump. So the shim installs it without SA_RESETHAND, through
 * one_shot, which does the reset itself (to the shim's handler: the default
 * action as the program sees it) and then calls the program's handler. */
static struct sigaction one_shot_act[MP_END_SIGNALS];  /* the program's, as it set it */
static struct sigaction one_shot_seen[MP_END_SIGNALS]; /* as the C library reports it */
static int one_shot_armed[MP_END_SIGNALS];

static void one_shot(int sig, siginfo_t *info, void *ctx)
{
	if (!__atomic_exchange_n(&one_shot_armed[sig], 0, __ATOMIC_ACQ_REL)) {
		on_end_signal(sig, info, ctx); /* reset already: the default's turn */
		return;
	}
	struct sigaction prog = one_shot_act[sig], ours;
	/* As the kernel resets it: the handler only, flags and mask kept. */
	apparent[sig] = one_shot_seen[sig];
	apparent[sig].sa_handler = SIG_DFL;
	our_action(&ours);
	real_sigaction(sig, &ours, NULL);
	if (prog.sa_flags & SA_SIGINFO)
		prog.sa_sigaction(sig, info, ctx);
	else
		prog.sa_handler(sig);
}

static bool is_one_shot(const struct sigaction *sa)
{
	return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == one_shot;
}

/* What the program believes is installed, for a struct the kernel holds. */
static const struct sigaction *believed(int sig, const struct sigaction *was)
{
	return is_ours(was) ? &apparent[sig] : is_one_shot(was) ? &one_shot_seen[sig] : was;
}

/* Sets want (the old action into was) and reads it back into seen, as the C
 * library keeps it (flags, restorer, the kernel's mask), for the shim to
 * report when its own stands in; 0 or sigaction's error. */
static int set_and_read_back(int sig, const struct sigaction *want, struct sigaction *was,
                             struct sigaction *seen)
{
	memset(seen, 0, sizeof(*seen));
	int r = real_sigaction(sig, want, was);
	if (r == 0)
		real_sigaction(sig, NULL, seen);
	return r;
}

MP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (likely(!watched(sig)))
		return real_sigaction(sig, act, old);
	struct sigaction want, was;
	if (act)
		want = *act; /* act and old may be the same struct */
	memset(&was, 0, sizeof(was));
	bool own = getpid() == mp.pid; /* not a vfork child, whose memory is ours */
	bool handler = act && ((want.sa_flags & SA_SIGINFO) ||
	                       (want.sa_handler != SIG_DFL && want.sa_handler != SIG_IGN));
	if (own && handler && (want.sa_flags & SA_RESETHAND) &&
	    __atomic_load_n(&mp.dump_thread_started, __ATOMIC_ACQUIRE)) {
		/* Set as asked, read back as the C library keeps it, then through
		 * one_shot. A signal in between takes the program's handler and
		 * the kernel's reset, as it would without the shim. */
		struct sigaction seen, tramp;
		int r = set_and_read_back(sig, &want, &was, &seen);
		if (r != 0)
			return r;
		one_shot_act[sig] = want;
		one_shot_seen[sig] = seen;
		__atomic_store_n(&one_shot_armed[sig], 1, __ATOMIC_RELEASE);
		tramp = want;
		tramp.sa_sigaction = one_shot;
		tramp.sa_flags = (want.sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
		real_sigaction(sig, &tramp, NULL);
		if (old)
			report(old, believed(sig, &was));
		return 0;
	}
	if (!own || !act || handler || want.sa_handler != SIG_DFL) {
		int r = real_sigaction(sig, act ? &want : NULL, &was);
		if (r == 0 && old)
			report(old, believed(sig, &was));
		return r;
	}
	/* The default action: set as asked, so that it is read back as the C
	 * library keeps it, then the shim's in its place. A signal in between
	 * takes the default action, as it would without the shim. */
	struct sigaction seen, ours;
	int r = set_and_read_back(sig, &want, &was, &seen);
	if (r != 0)
		return r;
	apparent[sig] = seen;
	our_action(&ours);
	real_sigaction(sig, &ours, NULL);
	if (old)
		report(old, believed(sig, &was));
	return 0;
}

typedef void (*handler_fn)(int);

/* signal and its variants, through the sigaction above, with the C
 * library's flags for each. */
static handler_fn set_action(int sig, handler_fn handler, int flags, bool mask_self)
{
	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	struct sigaction act, old;
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	if (mask_self)
		sigaddset(&act.sa_mask, sig);
	act.sa_flags = flags;
	if (sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

static struct {
	void *signal, *bsd_signal, *sysv_signal, *__sysv_signal, *sigset;
} next;

/* BSD semantics (glibc's signal): the handler stays, the signal is blocked
 * while it runs, interrupted calls restart. */
MP_EXPORT handler_fn signal(int sig, handler_fn handler)
{
	if (likely(!watched(sig)))
		return ((handler_fn(*)(int, handler_fn))mp_next_sym(&next.signal, "signal"))(
		    sig, handler);
	return set_action(sig, handler, SA_RESTART, true);
}

MP_EXPORT handler_fn bsd_signal(int sig, handler_fn handler)
{
	if (likely(!watched(sig)))
		return ((handler_fn(*)(int, handler_fn))mp_next_sym(&next.bsd_signal,
		                                                    "bsd_signal"))(sig, handler);
	return set_action(sig, handler, SA_RESTART, true);
}

/* System V semantics: the handler is reset when it runs, the signal not
 * blocked, interrupted calls not restarted. */
MP_EXPORT handler_fn sysv_signal(int sig, handler_fn handler)
{
	if (likely(!watched(sig)))
		return ((handler_fn(*)(int, handler_fn))mp_next_sym(&next.sysv_signal,
		                                                    "sysv_signal"))(sig, handler);
	return set_action(sig, handler, SA_RESETHAND | SA_NODEFER, false);
}

MP_EXPORT handler_fn __sysv_signal(int sig, handler_fn handler)
{
	if (likely(!watched(sig)))
		return ((handler_fn(*)(int, handler_fn))mp_next_sym(&next.__sysv_signal,
		                                                    "__sysv_signal"))(sig, handler);
	return set_action(sig, handler, SA_RESETHAND | SA_NODEFER, false);
}

/* System V's sigset: SIG_HOLD blocks the signal; anything else is set with
 * an empty mask and no flags, and unblocks it. Returns SIG_HOLD if the signal
 * was blocked, else the action it replaced. */
MP_EXPORT handler_fn sigset(int sig, handler_fn disp)
{
	if (likely(!watched(sig)))
		return ((handler_fn(*)(int, handler_fn))mp_next_sym(&next.sigset, "sigset"))(sig,
		                                                                             disp);
	sigset_t one, was_blocked;
	sigemptyset(&one);
	sigaddset(&one, sig);
	struct sigaction old;
	if (disp == SIG_HOLD) {
		if (sigaction(sig, NULL, &old) != 0 ||
		    pthread_sigmask(SIG_BLOCK, &one, &was_blocked) != 0)
			return SIG_ERR;
		return sigismember(&was_blocked, sig) ? SIG_HOLD : old.sa_handler;
	}
	handler_fn prev = set_action(sig, disp, 0, false);
	if (prev == SIG_ERR || pthread_sigmask(SIG_UNBLOCK, &one, &was_blocked) != 0)
		return SIG_ERR;
	return sigismember(&was_blocked, sig) ? SIG_HOLD : prev;
}

/* New processes: while a listed signal ends the process, a thread that
 * starts one waits for the end, as fork and exec do (the process would be
 * gone without the shim). posix_spawn and popen make their children without
 * fork's handlers (CLONE_VM | CLONE_VFORK), and system through them. */
static struct {
	void *posix_spawn, *posix_spawnp, *system, *popen;
} spawn_next;

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

MP_EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                          const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	mp_end_signals_wait();
	return ((spawn_fn)mp_next_sym(&spawn_next.posix_spawn, "posix_spawn"))(pid, path, fa, attr,
	                                                                       argv, envp);
}

MP_EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                           const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	mp_end_signals_wait();
	return ((spawn_fn)mp_next_sym(&spawn_next.posix_spawnp, "posix_spawnp"))(pid, file, fa,
	                                                                         attr, argv, envp);
}

MP_EXPORT int system(const char *command)
{
	mp_end_signals_wait();
	return ((int (*)(const char *))mp_next_sym(&spawn_next.system, "system"))(command);
}

MP_EXPORT FILE *popen(const char *command, const char *type)
{
	mp_end_signals_wait();
	return ((FILE * (*)(const char *, const char *))
	            mp_next_sym(&spawn_next.popen, "popen"))(command, type);
}
