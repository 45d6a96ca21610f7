/* lifecycle.c: settings, initialization, and every way a process ends or
 * changes image (exit, _exit, abort, quick_exit, exec, fork) plus dumps on
 * demand (MAPPROF_SIGNAL) and on a timer (MAPPROF_INTERVAL). Nothing here runs
 * per allocation; the signal handler only bumps a word and wakes a futex. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

struct mp_state mp = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .max_depth = MP_DEFAULT_DEPTH,
};
struct mp_real mp_real = {.free = mp_free_cold};
__thread struct mp_thread mp_tl;

void mp_set_enabled(bool on)
{
	uint32_t hot = !on ? MP_HOT_PASS : mp.sample_period ? MP_HOT_SAMPLE : MP_HOT_ALL;
	__atomic_store_n(&mp.hot, hot, __ATOMIC_RELEASE);
}

/* ---- settings ---- */

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v > max)
		return false;
	*out = v;
	return true;
}

/* A byte count: digits, optionally followed by K, M or G (powers of 1024,
 * with or without a trailing "iB" or "B"): 524288, 512K, 512KiB. */
static bool parse_bytes(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return false;
	unsigned shift = 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	}
	if (shift) {
		end++;
		if (end[0] == 'i' && end[1] == 'B')
			end += 2;
		else if (end[0] == 'B')
			end++;
	} else if (end[0] == 'B') {
		end++;
	}
	if (*end || v > (max >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static int parse_signal(const char *s)
{
	uint64_t n;
	if (parse_u64(s, (uint64_t)SIGRTMAX, &n))
		return n > 0 ? (int)n : -1;
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	/* RTMIN, RTMIN+n, RTMAX, RTMAX-n, as kill -l names them */
	bool min = strncasecmp(s, "RTMIN", 5) == 0, max = strncasecmp(s, "RTMAX", 5) == 0;
	if (min || max) {
		int base = min ? SIGRTMIN : SIGRTMAX;
		if (!s[5])
			return base;
		if (s[5] != (min ? '+' : '-') ||
		    !parse_u64(s + 6, (uint64_t)(SIGRTMAX - SIGRTMIN), &n))
			return -1;
		return min ? base + (int)n : base - (int)n;
	}
	for (int sig = 1; sig < NSIG; sig++) {
		const char *name = sigabbrev_np(sig);
		if (name && strcasecmp(name, s) == 0)
			return sig;
	}
	return -1;
}

/* MAPPROF_END_SIGNALS: a comma-separated list of signals (names or
 * numbers); one that cannot be listed is named and left out. */
static void read_end_signals(const char *s)
{
	char buf[256];
	if (strlen(s) >= sizeof(buf)) {
		mp_log("MAPPROF_END_SIGNALS is too long; ignored");
		return;
	}
	strcpy(buf, s);
	char *save = NULL;
	for (char *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		int sig = parse_signal(tok);
		const char *why = sig > 0 ? mp_end_signal_refusal(sig) : NULL;
		if (sig <= 0)
			mp_log("MAPPROF_END_SIGNALS: %s is not a signal's name or number (such as "
			       "INT, TERM, HUP); left out",
			       tok);
		else if (why)
			mp_log("MAPPROF_END_SIGNALS: %s %s; left out", tok, why);
		else if (sig == mp.dump_signal)
			mp_log("MAPPROF_END_SIGNALS: %s is MAPPROF_SIGNAL's; left out", tok);
		else
			mp.end_signals |= 1ull << (sig - 1);
	}
}

static void read_settings(void)
{
	uint64_t v;
	const char *s = getenv("MAPPROF_DEPTH");
	if (s) {
		if (parse_u64(s, UINT64_MAX, &v) && v > 0) {
			if (v > MP_MAX_DEPTH)
				mp_log("MAPPROF_DEPTH=%s is above the maximum; using %d", s,
				       MP_MAX_DEPTH);
			mp.max_depth = v > MP_MAX_DEPTH ? MP_MAX_DEPTH : (uint32_t)v;
		} else {
			mp_log("MAPPROF_DEPTH=%s is not a positive number; using %d", s,
			       MP_DEFAULT_DEPTH);
		}
	}
	s = getenv("MAPPROF_OUT");
	if (s && *s) {
		/* A directory (named so by a final '/', or one that exists) takes
		 * the dumps under their default names. */
		struct stat st;
		size_t n = strlen(s);
		bool dir = s[n - 1] == '/' || (stat(s, &st) == 0 && S_ISDIR(st.st_mode));
		const char *name = !dir              ? ""
		                   : s[n - 1] == '/' ? MP_DEFAULT_OUT
		                                     : "/" MP_DEFAULT_OUT;
		if (n + strlen(name) >= sizeof(mp.out_template))
			mp_log("MAPPROF_OUT is too long; using the default path");
		else
			snprintf(mp.out_template, sizeof(mp.out_template), "%s%s", s, name);
		for (const char *t = strchr(s, '%'); t; t = strchr(t + 2, '%')) {
			if (t[1] == 'p' || t[1] == 'e' || t[1] == '%')
				continue;
			mp_log("MAPPROF_OUT=%s: %%%s is not %%p, %%e or %%%%; kept as it is", s,
			       t[1] ? (char[]){t[1], 0} : "");
			break;
		}
	}
	s = getenv("MAPPROF_UNWIND");
	if (s && *s) {
		if (strcmp(s, "fp") == 0)
			mp.unwinder = MP_UNWIND_FP;
		else if (strcmp(s, "libunwind") != 0)
			mp_log("MAPPROF_UNWIND=%s is not libunwind or fp; using libunwind", s);
	}
	s = getenv("MAPPROF_SAMPLE");
	if (s && *s) {
		if (parse_bytes(s, 1ull << 40, &v))
			mp.sample_period = v;
		else
			mp_log("MAPPROF_SAMPLE=%s is not a byte count (such as 524288 or 512K); "
			       "recording every call",
			       s);
	}
	s = getenv("MAPPROF_INUSE");
	if (s && *s) {
		if (strcmp(s, "0") == 0)
			mp.frees_off = true;
		else if (strcmp(s, "1") != 0)
			mp_log("MAPPROF_INUSE=%s is not 0 or 1; tracking frees", s);
	}
	s = getenv("MAPPROF_SIGNAL");
	if (s && *s) {
		int sig = parse_signal(s);
		if (sig <= 0)
			mp_log("MAPPROF_SIGNAL=%s is not a signal's name or number (such as USR2); "
			       "ignored",
			       s);
		else if (sig == SIGKILL || sig == SIGSTOP)
			mp_log("MAPPROF_SIGNAL=%s cannot be caught; ignored", s);
		else if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
		         sig == SIGTRAP || sig == SIGSYS)
			/* A fault's signal: the handler would return to the faulting
			 * instruction, which faults again, forever (a crash becomes a
			 * hang writing dumps). */
			mp_log("MAPPROF_SIGNAL=%s is raised by faults; ignored", s);
		else if (sig > SIGSYS && sig < SIGRTMIN)
			/* 32 and 33: the C library's own (cancellation, setxid), which
			 * sigaction refuses. */
			mp_log("MAPPROF_SIGNAL=%s is reserved by the C library; ignored", s);
		else
			mp.dump_signal = sig;
	}
	s = getenv("MAPPROF_END_SIGNALS");
	if (s && *s)
		read_end_signals(s);
	s = getenv("MAPPROF_INTERVAL");
	if (s && *s) {
		if (parse_u64(s, 86400 * 365, &v) && v > 0)
			mp.interval = (unsigned)v;
		else
			mp_log("MAPPROF_INTERVAL=%s is not a whole number of seconds from 1 to "
			       "31536000; ignored",
			       s);
	}
}

static void read_process(void)
{
	ssize_t n = readlink("/proc/self/exe", mp.exe, sizeof(mp.exe) - 1);
	mp.exe[n > 0 ? n : 0] = 0;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char buf[8192];
		ssize_t len = read(fd, buf, sizeof(buf));
		close(fd);
		if (len > 0) {
			mp.cmdline = mp_arena_strdup(buf, (size_t)len);
			mp.cmdline_len = mp.cmdline ? (size_t)len : 0;
		}
	}
	mp.pid = getpid();
	mp.ppid = getppid();
	mp.start_ns = mp_now_ns();
}

/* ---- dumps on demand ---- */

/* The handler and the dump thread meet on a futex word, not a pipe: a
 * descriptor of the shim's would take a number the program expects to get,
 * and a daemon that closes every descriptor would then have its own files
 * read and written under that number. */
static void on_dump_signal(int sig)
{
	(void)sig;
	int saved = errno;
	__atomic_add_fetch(&mp.wake, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &mp.wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = saved;
}

static bool dump_final_to(char *path, size_t size);

/* The dump thread's last work, when a signal of MAPPROF_END_SIGNALS ends the
 * process (endsig.c): the final dump, unless an exit or exec is writing it
 * (that one then ends the process by the signal), then the end. The threads
 * the signal found outside the shim wait meanwhile, perhaps inside the
 * loader: the dump does not ask it for the modules unloaded since. */
static __thread bool end_runner; /* this thread is the dump thread in end_process */

static __attribute__((noreturn)) void end_process(int sig)
{
	end_runner = true;
	mp.end_dump = true; /* read by the dump (no module refresh) */
	mp_tl.in_hook--;
	dump_final_to(NULL, 0);
	mp_tl.in_hook++;
	__atomic_store_n(&mp.dump_thread_idle, true, __ATOMIC_RELEASE);
	/* An exit's or exec's dump under way: it ends the process when done,
	 * the exec's by this signal, the exit's with its own status (a few
	 * seconds are left to it for that). */
	mp_end_signals_wait_while(sig, &mp.final_writing);
	if (__atomic_load_n(&mp.final_by_exit, __ATOMIC_ACQUIRE))
		for (int i = 0; i < 500; i++)
			nanosleep(&(struct timespec){0, 10 * 1000000}, NULL);
	mp_end_signals_finish(sig);
}

static void *dump_thread(void *arg)
{
	uint32_t handled = (uint32_t)(uintptr_t)arg; /* the count when the thread was made */
	mp_tl.in_hook++; /* this thread's own allocations are not the program's */
	for (;;) {
		int end = __atomic_load_n(&mp.end_signal, __ATOMIC_ACQUIRE);
		if (end)
			end_process(end);
		uint32_t now = __atomic_load_n(&mp.wake, __ATOMIC_ACQUIRE);
		bool due = now != handled; /* a signal came since the last look */
		if (!due) {
			struct timespec every = {(time_t)mp.interval, 0};
			long r = syscall(SYS_futex, &mp.wake, FUTEX_WAIT_PRIVATE, now,
			                 mp.interval ? &every : NULL, NULL, 0);
			due = r != 0 && errno == ETIMEDOUT;
			if (!due)
				continue; /* woken: look again */
		}
		handled = now;
		if (!mp_enabled() || mp.dumped || __atomic_load_n(&mp.end_signal, __ATOMIC_ACQUIRE))
			continue;
		uint32_t seq = __atomic_add_fetch(&mp.sequence, 1, __ATOMIC_RELAXED);
		mp_dump_write(seq, NULL, 0);
	}
	return NULL;
}

static void start_dump_thread(void)
{
	mp.dump_thread_started = false; /* a fork child has none yet */
	if (!mp.dump_signal && !mp.interval && !mp.end_signals)
		return;
	mp_tl.in_hook++; /* pthread_create's allocations are ours, not the program's */
	/* The thread blocks every signal so the program's signals go where they went. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	uint32_t wake = __atomic_load_n(&mp.wake, __ATOMIC_ACQUIRE);
	int err = pthread_create(&t, &attr, dump_thread, (void *)(uintptr_t)wake);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	mp_tl.in_hook--;
	if (err) {
		mp_log("cannot start the dump thread (%s): no dumps on demand%s", strerror(err),
		       mp.end_signals ? " nor when a signal ends the program" : "");
		return;
	}
	mp.dump_thread_clocked = pthread_getcpuclockid(t, &mp.dump_thread_clock) == 0;
	mp.dump_thread_idle = false;
	__atomic_store_n(&mp.dump_thread_started, true, __ATOMIC_RELEASE);
	if (mp.dump_signal) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_dump_signal;
		sa.sa_flags = SA_RESTART;
		sigemptyset(&sa.sa_mask);
		sigaction(mp.dump_signal, &sa, NULL);
	}
}

/* ---- init ---- */

static void *next_sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

void *mp_next_sym(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_RELAXED);
	if (!f) {
		int saved = errno;
		f = dlsym(RTLD_NEXT, name);
		errno = saved;
		__atomic_store_n(slot, f, __ATOMIC_RELAXED);
	}
	return f;
}

static void resolve_real(void)
{
	mp_real.malloc = next_sym("malloc");
	mp_real.free = next_sym("free");
	mp_real.calloc = next_sym("calloc");
	mp_real.realloc = next_sym("realloc");
	mp_real.reallocarray = next_sym("reallocarray");
	mp_real.posix_memalign = next_sym("posix_memalign");
	mp_real.aligned_alloc = next_sym("aligned_alloc");
	mp_real.memalign = next_sym("memalign");
	mp_real.valloc = next_sym("valloc");
	mp_real.pvalloc = next_sym("pvalloc");
	mp_real.exit = next_sym("exit");
	mp_real.exit_ = next_sym("_exit");
	mp_real.Exit_ = next_sym("_Exit");
	mp_real.abort = next_sym("abort");
	mp_real.execve = next_sym("execve");
	mp_real.execvpe = next_sym("execvpe");
	mp_real.fexecve = next_sym("fexecve");
	mp_real.getattr_np = next_sym("pthread_getattr_np");
	mp_real.create = next_sym("pthread_create");
	mp_real.thrd_create = next_sym("thrd_create");
	mp_real.sigaction = next_sym("sigaction");
}

/* The final dump of this image, once claimed (mp.dumped), is whole (or has
 * failed): 1. A thread that ends the process while another writes that dump
 * (an _exit, exec or second exit from another thread) waits for this, or it
 * would end the process in the middle of the dump and leave none. */
static uint32_t final_done;

static void final_done_set(uint32_t v)
{
	__atomic_store_n(&final_done, v, __ATOMIC_RELEASE);
	if (v)
		syscall(SYS_futex, &final_done, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Bounded: the writer may wait for a lock this thread holds (the loader's,
 * in a library's destructor that calls _exit), and a dump lost is better
 * than a process that never ends. The writer's progress is not measured:
 * 10 seconds is far more than a dump takes. */
static void final_done_wait(void)
{
	for (int i = 0; i < 100 && !__atomic_load_n(&final_done, __ATOMIC_ACQUIRE) &&
	                __atomic_load_n(&mp.dumped, __ATOMIC_ACQUIRE);
	     i++) {
		struct timespec t = {0, 100 * 1000000};
		syscall(SYS_futex, &final_done, FUTEX_WAIT_PRIVATE, 0, &t, NULL, 0);
	}
}

/* A fork from a signal handler that interrupted this thread inside the shim
 * (it may hold the locks a fork takes): nothing is locked, and the child,
 * whose tables the interrupted code goes on to change when the handler
 * returns, only forwards and writes no dump. */
static __thread bool fork_in_shim;

/* The first thread to call exit or quick_exit, or to return from main (its
 * thread_local destructors run first in exit), in this process. */
static pid_t exiting_tid;

static void on_fork_prepare(void)
{
	fork_in_shim = mp_tl.in_hook != 0;
	if (!fork_in_shim) {
		/* A signal of MAPPROF_END_SIGNALS is ending the process: it would
		 * be gone before this fork without the shim, and the fork would
		 * wait, holding the shim's lock, for the C library's locks that the
		 * threads the signal stopped may hold. */
		mp_end_signals_wait();
		/* Inside the shim from here, holding its locks, until the fork
		 * returns (a signal of MAPPROF_END_SIGNALS must not wait here). */
		mp_tl.in_hook++;
		mp_fork_prepare();
		__atomic_add_fetch(&mp.forking, 1, __ATOMIC_ACQ_REL);
	}
}

static void on_fork_parent(void)
{
	if (!fork_in_shim) {
		__atomic_sub_fetch(&mp.forking, 1, __ATOMIC_ACQ_REL);
		mp_fork_parent();
		mp_tl.in_hook--;
	}
	fork_in_shim = false;
}

/* The thread-exit hook, without taking one of the program's pthread keys
 * (it may need every one of PTHREAD_KEYS_MAX): glibc's list of thread_local
 * destructors (__cxa_thread_atexit_impl, which C++ uses), or a key where
 * that is missing. The process's first thread needs none: what it counted
 * is read where it is by the dump at exit. */
extern int __cxa_thread_atexit_impl(void (*dtor)(void *), void *obj, void *dso)
    __attribute__((weak));
extern void *__dso_handle;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

static void make_exit_key(void)
{
	pthread_key_create(&exit_key, mp_thread_exit);
}

void mp_thread_watch(void *tc)
{
	if (syscall(SYS_gettid) == getpid())
		return;
	if (__cxa_thread_atexit_impl) {
		__cxa_thread_atexit_impl(mp_thread_exit, tc, &__dso_handle);
		return;
	}
	pthread_once(&exit_key_once, make_exit_key);
	pthread_setspecific(exit_key, tc);
}

static void on_fork_child(void)
{
	/* The parent's dump thread is not in the child: until this child has
	 * its own, a listed signal ends it at once (endsig.c). */
	bool had_dump_thread = mp.dump_thread_started;
	mp.dump_thread_started = false;
	mp.forking = 0;
	mp_end_signals_forked();
	if (fork_in_shim) {
		fork_in_shim = false;
		/* Not profiled, and without a dump thread. */
		mp.pid = getpid();
		mp.dumped = true;
		final_done_set(1);
		exiting_tid = 0;
		mp_set_enabled(false);
		return;
	}
	mp_fork_child();
	mp_tl.in_hook--; /* raised in on_fork_prepare */
	mp.pid = getpid();
	mp.ppid = getppid();
	mp.start_ns = mp_now_ns();
	mp.info_flags |= MP_INFO_FORKED;
	mp.sequence = 0;
	mp.dumped = false;
	final_done_set(0);
	exiting_tid = 0;
	mp_set_enabled(!mp.secure);
	if (had_dump_thread && mp_enabled())
		start_dump_thread();
}

static void at_quick_exit_hook(void)
{
	mp_dump_final();
}

/* A thread's first recorded call learns its stack (pthread_getattr_np), and
 * glibc's version calls realloc and free through libc's lazily bound PLT:
 * whichever thread calls first runs the dynamic loader's resolver, which
 * takes some KiB of stack. In sampling mode that could be a thread with a
 * 16 KiB stack, deep in its calls, which then overflowed. So the thread that
 * initializes (the main one, nearly always, with stack to spare) has libc
 * call both now: reading a line longer than getdelim's first buffer from a
 * stream in memory makes it call malloc, realloc and free, whether or not
 * /proc is there (pthread_getattr_np on the main thread reaches realloc only
 * by reading /proc/self/maps). Then it learns its own stack. */
static void bind_thread_init(void)
{
	static const char line[256] = {[0 ... 254] = 'x'};
	int saved = errno;
	mp_tl.in_hook++;
	FILE *f = fmemopen((void *)line, sizeof(line) - 1, "r");
	if (f) {
		char *buf = NULL;
		size_t size = 0;
		if (getline(&buf, &size, f) < 0)
			size = 0;
		free(buf);
		fclose(f);
	}
	mp_stack_thread_init();
	mp_tl.in_hook--;
	errno = saved;
}

static void init(void)
{
	int expected = 0;
	if (!__atomic_compare_exchange_n(&mp.init_state, &expected, 1, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		/* Another thread is initializing; its dlsym calls use the bootstrap
		 * buffer, ours wait for the real functions. */
		while (__atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) != 2)
			;
		return;
	}
	mp_tl.in_hook++;
	mp_log_init();
	resolve_real();
	mp.secure = getauxval(AT_SECURE) != 0;
	if (!mp.secure && mp_real.malloc && mp_real.free) {
		read_settings();
		read_process();
		mp_stack_init();
		pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
		at_quick_exit(at_quick_exit_hook);
		mp.info_flags = (mp.frees_off ? 0 : MP_INFO_FREES_TRACKED) |
		                (mp.sample_period ? MP_INFO_SAMPLED : 0);
		/* Recording every call: every block may be tracked (see free()).
		 * Frees not tracked: none is, and the filter stays all zero. */
		if (!mp.sample_period && !mp.frees_off) {
			mp_populate(mp_sample_filter, sizeof(mp_sample_filter));
			memset(mp_sample_filter, UINT8_MAX, sizeof(mp_sample_filter));
		}
		mp_set_enabled(true);
	} else {
		mp_set_enabled(false);
	}
	mp_tl.in_hook--;
	__atomic_store_n(&mp.init_state, 2, __ATOMIC_RELEASE);
	if (mp_enabled())
		bind_thread_init();
}

bool mp_ready_slow(void)
{
	if (__atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) == 2)
		return true;
	if (mp.init_state == 1 && mp_tl.in_hook)
		return false; /* inside our own init: bootstrap */
	init();
	return __atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) == 2;
}

/* A return from main reaches the C library's exit from inside libc, past the
 * shim's exit. That exit runs the main thread's thread_local destructors
 * before the program's atexit handlers: one of them waits there while a
 * signal of MAPPROF_END_SIGNALS ends the process, as the shim's exit does. */
static void exit_begins(void);

static void main_thread_exit_hook(void *arg)
{
	(void)arg;
	mp_end_signals_wait();
	exit_begins();
}

__attribute__((constructor)) static void mp_constructor(void)
{
	if (mp_ready() && mp_enabled()) {
		start_dump_thread();
		if (mp.dump_thread_started && mp.end_signals)
			mp_end_signals_install();
		/* The main thread's (a library loaded later by another thread
		 * would see that thread's end as the process's). */
		if (__cxa_thread_atexit_impl && syscall(SYS_gettid) == getpid()) {
			mp_tl.in_hook++; /* its list entry is the shim's, not the program's */
			__cxa_thread_atexit_impl(main_thread_exit_hook, NULL, &__dso_handle);
			mp_tl.in_hook--;
		}
	}
}

/* ---- the end of a process image ---- */

/* The last dump of this process image. A vfork child shares our memory but
 * not our pid: it must not write the parent's dump. */
static bool dump_final_to(char *path, size_t size)
{
	if (mp_tl.in_hook) {
		/* A signal handler ends the process (_exit, abort, exec) while
		 * this thread is inside the shim, perhaps holding its locks or in
		 * the middle of a table: no dump rather than a hang. If a listed
		 * signal is ending the process (the handler raised it and found
		 * this thread inside the shim), that signal ends it, as it would
		 * have at once without the shim. */
		int end = __atomic_load_n(&mp.end_signal, __ATOMIC_ACQUIRE);
		if (end && !end_runner && getpid() == mp.pid)
			mp_end_signals_die(end);
		if (mp_enabled() && !mp.dumped && getpid() == mp.pid)
			mp_log("no dump: the process ended from a signal handler that interrupted "
			       "the profiler");
		return false;
	}
	if (!mp_ready() || getpid() != mp.pid)
		return false;
	/* A signal of MAPPROF_END_SIGNALS is ending the process: its end, not
	 * this one, which waits (the dump thread writes the dump). */
	if (!end_runner)
		mp_end_signals_wait();
	if (!mp_enabled() || mp.dumped) {
		if (mp.dumped) {
			int saved = errno;
			final_done_wait();
			errno = saved;
		}
		return false;
	}
	int saved = errno;
	mp_tl.in_hook++; /* from here on, a handler that ends the process finds us inside */
	bool ok = false, claimed = false;
	/* A fork child that recorded nothing (fork then exec, or _exit, the
	 * first fork of a daemon) has nothing to say: no dump. */
	if (!(mp.info_flags & MP_INFO_FORKED) || mp_counts_any() ||
	    __atomic_load_n(&mp.not_recorded, __ATOMIC_RELAXED)) {
		/* Counted before the claim, so that the dump thread ending the
		 * process never sees the dump claimed and not under way. */
		__atomic_add_fetch(&mp.final_writing, 1, __ATOMIC_ACQ_REL);
		claimed = !__atomic_exchange_n(&mp.dumped, true, __ATOMIC_ACQ_REL);
		if (claimed) {
			mp.final_by_exit = !path && !end_runner;
			mp_set_enabled(false);
			ok = mp_dump_write(0, path, size) == 0;
			final_done_set(1);
		}
		__atomic_sub_fetch(&mp.final_writing, 1, __ATOMIC_ACQ_REL);
	}
	mp_tl.in_hook--;
	if (!claimed && mp.dumped)
		final_done_wait();
	int end = __atomic_load_n(&mp.end_signal, __ATOMIC_ACQUIRE);
	if (end && !end_runner) {
		/* A listed signal came meanwhile. If the dump thread took the dump,
		 * it ends the process when done: wait for that. If this exec wrote
		 * it, the signal ends the process now, as it would have before the
		 * exec without the shim (the new image would never see it). If
		 * this exit wrote it, the exit goes on: without the shim the
		 * process would have been gone, with its own status, before the
		 * signal came. */
		if (!claimed)
			mp_end_signals_wait();
		else if (path)
			mp_end_signals_die(end);
	}
	errno = saved;
	return ok;
}

void mp_dump_final(void)
{
	dump_final_to(NULL, 0);
}

/* The dump at exit comes after every object's destructors: the loader's
 * _dl_fini runs them all (the shim's own, and then those of libraries that
 * come after it in its order, such as every library the executable links or
 * dlopens that does not depend on the shim), and _dl_fini is the function
 * the loader gives __libc_start_main, which registers it to run at exit. So
 * the shim hands __libc_start_main its own function instead, which calls
 * _dl_fini and then writes the dump: allocations and frees in any library's
 * destructor are counted (they were lost when the dump came from the shim's
 * own destructor). Both versions of __libc_start_main (GLIBC_2.34 and
 * GLIBC_2.2.5) are one function in the C library, so forwarding to the
 * default one is right whichever the executable bound. A program that does
 * not start through it (a Go binary, a custom _start) gets the dump from the
 * shim's destructor, as before. */
typedef int (*main_fn)(int, char **, char **);
typedef int (*start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
                             void *);
static void (*loader_fini)(void);

static void fini_then_dump(void)
{
	loader_fini();
	mp_dump_final();
}

MP_EXPORT int __libc_start_main(main_fn main_, int argc, char **argv, void (*init)(void),
                                void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
	static void *next;
	start_main_fn start = (start_main_fn)mp_next_sym(&next, "__libc_start_main");
	if (rtld_fini && !loader_fini) {
		loader_fini = rtld_fini;
		rtld_fini = fini_then_dump;
	}
	return start(main_, argc, argv, init, fini, rtld_fini, stack_end);
}

__attribute__((destructor)) static void mp_destructor(void)
{
	if (!loader_fini)
		mp_dump_final();
}

/* Another thread calling exit (or quick_exit, or returning from main) while
 * one is exiting: in glibc 2.36 the first takes every exit handler, the
 * loader's destructors and the dump among them, and the second, finding
 * none left, flushes stdio and ends the process at once, in the middle of
 * the first one's dump (half the runs of 16 threads calling exit together
 * left no dump). So the second writes the dump first, or waits for the one
 * being written, and then goes on; what the first one's handlers do after
 * that is not counted (without mapprof, the second's end may cut them short
 * anyway). */
static void exit_begins(void)
{
	pid_t me = (pid_t)syscall(SYS_gettid), first = 0;
	if (getpid() != mp.pid)
		return; /* a vfork child's exit (it shares our memory) */
	if (!__atomic_compare_exchange_n(&exiting_tid, &first, me, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE) &&
	    first != me)
		mp_dump_final();
}

/* exit writes its dump from the shim's destructor, after the program's
 * atexit handlers; while a signal of MAPPROF_END_SIGNALS ends the process it
 * waits before them, as the process would already be gone without the shim. */
MP_EXPORT void exit(int status)
{
	mp_end_signals_wait();
	exit_begins();
	((void (*)(int))mp_next_sym((void **)&mp_real.exit, "exit"))(status);
	__builtin_unreachable();
}

/* quick_exit runs the program's at_quick_exit handlers before the shim's
 * (registered first): while a signal of MAPPROF_END_SIGNALS ends the
 * process, it waits before them, as exit does. */
MP_EXPORT void quick_exit(int status)
{
	static void *next;
	mp_end_signals_wait();
	exit_begins();
	((void (*)(int))mp_next_sym(&next, "quick_exit"))(status);
	__builtin_unreachable();
}

MP_EXPORT void _exit(int status)
{
	mp_dump_final();
	mp_real.exit_(status);
}

MP_EXPORT void _Exit(int status)
{
	mp_dump_final();
	mp_real.Exit_(status);
}

MP_EXPORT void abort(void)
{
	mp_dump_final();
	mp_real.abort();
}

/* exec replaces the process image without running destructors: write the
 * dump first; if exec fails, take it back and go on profiling. */
static bool before_exec(void)
{
	return dump_final_to(mp.last_dump, sizeof(mp.last_dump));
}

static void exec_failed(bool dumped)
{
	if (!dumped)
		return;
	int saved = errno;
	if (mp.last_dump[0]) /* not a FIFO's or a device's */
		unlink(mp.last_dump);
	final_done_set(0); /* first: a thread waiting for it sees dumped go */
	mp.dumped = false;
	mp_set_enabled(true);
	errno = saved;
}

MP_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	mp_ready();
	bool d = before_exec();
	int r = mp_real.execve(path, argv, envp);
	exec_failed(d);
	return r;
}

MP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	mp_ready();
	bool d = before_exec();
	int r = mp_real.execvpe(file, argv, envp);
	exec_failed(d);
	return r;
}

MP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	mp_ready();
	bool d = before_exec();
	int r = mp_real.fexecve(fd, argv, envp);
	exec_failed(d);
	return r;
}

MP_EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

MP_EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

/* The execl family: collect the variadic arguments on the stack. */
#define ARGV_FROM_VA(arg0, argv, ap)                                                               \
	size_t argc_ = 1;                                                                          \
	va_start(ap, arg0);                                                                        \
	while (va_arg(ap, const char *))                                                           \
		argc_++;                                                                           \
	va_end(ap);                                                                                \
	const char *argv[argc_ + 1];                                                               \
	argv[0] = arg0;                                                                            \
	va_start(ap, arg0);                                                                        \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                                     \
		argv[i_] = va_arg(ap, const char *);

MP_EXPORT int execl(const char *path, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_VA(arg, argv, ap);
	va_end(ap);
	return execve(path, (char *const *)argv, environ);
}

MP_EXPORT int execlp(const char *file, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_VA(arg, argv, ap);
	va_end(ap);
	return execvpe(file, (char *const *)argv, environ);
}

MP_EXPORT int execle(const char *path, const char *arg, ...)
{
	va_list ap;
	ARGV_FROM_VA(arg, argv, ap);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return execve(path, (char *const *)argv, envp);
}

/* pthread_getattr_np holds the thread's lock while it allocates; the shim
 * learns a thread's stack with it, so it must know when a call comes from
 * inside it (stack.c, mp_stack_thread_init). A program's runtime often asks
 * first thing on a new thread (garbage collectors, language runtimes), and
 * the allocation it makes then is that thread's first. */
MP_EXPORT int pthread_getattr_np(pthread_t thread, pthread_attr_t *attr)
{
	mp_tl.in_getattr++;
	if (unlikely(!mp_real.getattr_np))
		mp_ready();
	int r = mp_real.getattr_np ? mp_real.getattr_np(thread, attr) : ENOSYS;
	mp_tl.in_getattr--;
	return r;
}
