/* endsig.c: MAPPROF_END_SIGNALS, a dump from a program that a signal ends.
 *
 * A program stopped with Ctrl-C or kill, which has no handler of its own for
 * the signal, dies without running its exit path, and so without a dump. With
 * MAPPROF_END_SIGNALS=INT,TERM the shim puts its own handler where the
 * program has the default action, writes the dump when the signal comes, and
 * then ends the process by the same signal, with the default action: the
 * parent sees the same wait status (and a core for SIGQUIT where the program
 * would have left one).
 *
 * The program does not see the handler: the shim's sigaction and signal
 * report the default action where it stands in for it, and a program that
 * sets the default action gets the shim's handler again. So a runtime that
 * installs its own handler only where it finds the default one (Python's
 * KeyboardInterrupt) still does, and then the signal is the program's.
 *
 * The handler writes the dump on the thread the signal came to, as an exit
 * from a signal handler does, unless that thread was inside the shim itself
 * (perhaps holding its locks, or in the middle of a table): then it arms a
 * one-shot timer that sends the same signal to the process 1 ms later, when
 * that thread has left the shim, and returns. */
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

/* The C library's own, for calls before the shim has looked its next ones up. */
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
extern void (*bsd_signal(int, void (*)(int)))(int);

/* What the program believes is installed where the shim's handler stands in
 * for the default action: the default action, with the mask and flags the
 * program gave it. */
static struct sigaction apparent[MP_END_SIGNALS];
static int ending;           /* the process is being ended by a signal */
static int retry_timer = -1; /* the timer of a handler that found the shim running */

static int real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	int (*real)(int, const struct sigaction *, struct sigaction *) =
	    __atomic_load_n(&mp_real.sigaction, __ATOMIC_RELAXED);
	return (real ? real : __sigaction)(sig, act, old);
}

static inline bool watched(int sig)
{
	return sig > 0 && sig < MP_END_SIGNALS && (mp.end_signals >> sig & 1);
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

/* Ends the process by sig with the default action, from its handler. */
static __attribute__((noreturn)) void die_by(int sig)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	real_sigaction(sig, &dfl, NULL);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	for (;;) {
		/* Pending on this thread (the handler blocks it), then let in. */
		syscall(SYS_tgkill, getpid(), gettid(), sig);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
	}
}

/* The thread was inside the shim: the same signal again in 1 ms, to the
 * process (a thread that exits meanwhile does not take it with it). False if
 * no timer could be made. */
static bool retry_later(int sig)
{
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = sig;
	int id;
	if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &ev, &id) != 0)
		return false;
	struct itimerspec when = {{0, 0}, {0, 1000000}};
	if (syscall(SYS_timer_settime, id, 0, &when, NULL) != 0) {
		syscall(SYS_timer_delete, id);
		return false;
	}
	int old = __atomic_exchange_n(&retry_timer, id, __ATOMIC_ACQ_REL);
	if (old >= 0)
		syscall(SYS_timer_delete, old);
	return true;
}

static void on_end_signal(int sig, siginfo_t *info, void *ctx)
{
	(void)info;
	(void)ctx;
	int saved = errno;
	if (getpid() != mp.pid)
		die_by(sig); /* a vfork child, which shares our memory: no dump of its own */
	/* Another thread writes the dump and ends the process: this one goes on
	 * meanwhile, as it may hold a lock the dump needs (the shim's, the
	 * loader's). */
	if (__atomic_load_n(&ending, __ATOMIC_ACQUIRE))
		goto back;
	int timer = __atomic_exchange_n(&retry_timer, -1, __ATOMIC_ACQ_REL);
	if (timer >= 0)
		syscall(SYS_timer_delete, timer);
	if (mp_tl.in_hook && retry_later(sig))
		goto back;
	if (__atomic_exchange_n(&ending, 1, __ATOMIC_ACQ_REL))
		goto back;
	mp_dump_final(); /* inside the shim still (no timer): says why there is none */
	die_by(sig);
back:
	errno = saved;
}

/* Puts the shim's handler where the program has the default action of a
 * signal of MAPPROF_END_SIGNALS; run once, at start. */
void mp_end_signals_install(void)
{
	for (int sig = 1; sig < MP_END_SIGNALS; sig++) {
		if (!watched(sig))
			continue;
		struct sigaction old, ours;
		if (real_sigaction(sig, NULL, &old) != 0)
			continue;
		if ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL)
			continue; /* the program's own handler, or ignored (nohup) */
		apparent[sig] = old;
		our_action(&ours);
		real_sigaction(sig, &ours, NULL);
	}
}

/* A fork child, made perhaps while a signal ended the parent: its own
 * signals end it as they would (its handlers are the parent's, its timers
 * none). */
void mp_end_signals_forked(void)
{
	__atomic_store_n(&ending, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&retry_timer, -1, __ATOMIC_RELAXED);
}

/* Whether sig may be listed: caught, and ending the process by default, but
 * not one a fault raises (SIGSEGV and the like: the program is broken then)
 * nor SIGABRT (abort writes its dump already). */
bool mp_end_signal_ok(int sig)
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
		return true;
	default:
		return sig >= SIGRTMIN && sig <= SIGRTMAX && sig < MP_END_SIGNALS;
	}
}

MP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (likely(!watched(sig)))
		return real_sigaction(sig, act, old);
	struct sigaction ours, was;
	const struct sigaction *put = act;
	if (act && !(act->sa_flags & SA_SIGINFO) && act->sa_handler == SIG_DFL) {
		our_action(&ours);
		put = &ours;
	}
	int r = real_sigaction(sig, put, &was);
	if (r != 0)
		return r;
	if (old)
		*old = is_ours(&was) ? apparent[sig] : was;
	if (put == &ours) {
		/* As the C library would tell it: with the flags it adds (glibc's
		 * SA_RESTORER) and its restorer. */
		struct sigaction now;
		struct sigaction seen = *act;
		if (real_sigaction(sig, NULL, &now) == 0) {
			seen.sa_flags |= now.sa_flags & ~ours.sa_flags;
			seen.sa_restorer = now.sa_restorer;
		}
		apparent[sig] = seen;
	}
	return 0;
}

/* glibc's signal (BSD semantics) sets its action with the C library's own
 * sigaction, which the one above does not see. */
MP_EXPORT void (*signal(int sig, void (*handler)(int)))(int)
{
	if (likely(!watched(sig))) {
		void (*(*real)(int, void (*)(int)))(int) =
		    __atomic_load_n(&mp_real.signal, __ATOMIC_RELAXED);
		if (!real)
			real = bsd_signal;
		return real(sig, handler);
	}
	if (handler == SIG_ERR) {
		errno = EINVAL;
		return SIG_ERR;
	}
	struct sigaction act, old;
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, sig);
	act.sa_flags = SA_RESTART;
	if (sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}
