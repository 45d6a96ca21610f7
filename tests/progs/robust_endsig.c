/* robust_endsig.c: programs that a signal ends (Ctrl-C, kill), for MAPPROF_END_SIGNALS.
 *
 *   self SIG           allocates at site_keep (some kept) and site_churn, prints its truth, then
 *                      sends SIG to itself (process-directed, from the only thread) and waits.
 *                      Without a handler of its own the signal ends it.
 *   busy SIG THREADS FILE
 *                      THREADS threads allocate and free at site_busy without end; the main
 *                      thread, which blocks SIG so that a busy thread gets it, waits until they
 *                      have made 20,000 allocations, then sends SIG to the process. FILE (made by
 *                      the caller, 4 KiB) is shared memory: the threads count their allocations
 *                      there after each malloc returns (the truth up to the end), and the main
 *                      thread writes there the count it saw just before it sent SIG.
 *   transparent        asks about and sets the actions of SIGTERM, SIGINT and SIGHUP as programs
 *                      do, and checks what it is told (self-checks, the same with and without
 *                      the profiler); then allocates, prints its truth and exits 0.
 *   forkchild          allocates, then forks a child that allocates, prints its truth and sends
 *                      itself SIGTERM; the parent checks that the child ended by it, prints its
 *                      own truth and exits 0.
 *   The modes below print "ready" and wait for the caller's signals (programs of a review, which
 *   hung, lost the signal or ended with another status before the shim handed the dump to its
 *   dump thread):
 *   forkloop MB        touches MB MiB, then forks children that exit at once, without end (a
 *                      signal that lands inside fork, where the shim holds its locks).
 *   threads_exit       the main thread blocks SIGTERM and makes threads that allocate from many
 *                      chains and exit, one after another (a signal inside a thread's exit).
 *   sleeper BITS       allocates from 2^BITS chains (a dump that takes a while), then a thread
 *                      sleeps in nanosleep and exits with status 3 if it is interrupted (EINTR).
 *   smallstack BYTES   the main thread blocks SIGTERM; a thread with a stack of BYTES allocates
 *                      once and waits for it (the dump must not be written on that stack).
 *   execdump BITS US   allocates from 2^BITS chains, forks a child that sends SIGTERM US
 *                      microseconds after the parent starts exec of sleep 5 (a signal during
 *                      the dump written before an exec).
 *   exit_during BITS   allocates from 2^BITS chains; a thread waits for SIGTERM (the main thread
 *                      blocks it), and the main thread calls exit(4) 50 ms after "ready", with an
 *                      atexit handler that prints "atexit ran" (the signal ends the process first
 *                      without the profiler; with it, the exit must wait for the dump thread).
 *   forkflush STREAMS  a thread that alone takes SIGTERM flushes STREAMS buffered streams
 *                      without end (fflush(NULL) holds the C library's list of streams), while
 *                      another forks children that exit at once (fork takes that list after
 *                      the shim's fork hook has taken the shim's lock): the dump cannot be
 *                      written, and the process must still end by the signal.
 *   phdrloop           a thread that alone takes SIGTERM walks the loaded modules with
 *                      dl_iterate_phdr without end, slowly (it holds the loader's lock, as an
 *                      unwinder does), while the caller asks for on-demand dumps
 *                      (MAPPROF_SIGNAL, whose dump lists the modules through the loader).
 *   forkkill N         forks N children one after another, each waiting for its end, and sends
 *                      each SIGTERM as soon as fork returns (the signal lands in the child
 *                      while it comes out of fork, before the shim has its dump thread
 *                      again); checks that each ended by it, prints "ok" and exits 0.
 *   quitter            allocates; the main thread blocks SIGQUIT and a thread, the only one that
 *                      can take it, prints "ready" and its thread id, then waits for it (where
 *                      SIGQUIT leaves a core, the core must name that thread).
 *   forkmalloc         two threads, the only ones that can take SIGTERM, allocate and free without
 *                      end (so the signal often stops one inside the C library's malloc, holding
 *                      an arena's lock), while another forks children that exit at once (fork
 *                      takes every arena's lock after the shim's fork hook took the shim's).
 *   exit_in_dump BITS  allocates from 2^BITS chains; a thread waits 20 ms, then raises SIGTERM,
 *                      while the main thread calls _exit(3) at once: the signal comes while the
 *                      exit's dump is written, when the process would be gone without the
 *                      profiler (status 3).
 *   quick_during       a thread raises SIGTERM; the main thread calls quick_exit(0) 30 ms later,
 *                      with an at_quick_exit handler that prints "handler ran" (the signal ends
 *                      the process first without the profiler).
 *   spawn_during HOW   allocates from 2^16 chains; a thread starts children without end, with HOW
 *                      (posix_spawn, system or popen): /bin/true, or once a flag is set an echo
 *                      of "started after the signal"; another thread sets the flag and raises
 *                      SIGTERM (without the profiler the process ends first).
 *   phdr_exit          as phdrloop, but without on-demand dumps: the main thread calls _exit(0)
 *                      right after "ready"; its dump waits for the loader's lock to list the
 *                      modules, and the caller's SIGTERM then stops the walker holding it.
 *   oneshot FLAGS      a handler for SIGTERM set with SA_RESETHAND (FLAGS "info" adds SA_SIGINFO,
 *                      "nodefer" SA_NODEFER) that prints what sigaction reports inside it (the
 *                      action reset to the default), then raises SIGTERM again, as C programs
 *                      clean up and die; on stderr, before "ready", what sigaction reports once
 *                      it is set.
 *   main_return        allocates from 2^16 chains; a thread raises SIGTERM; the main thread returns
 *                      from main 30 ms later, with an atexit handler that prints "handler ran"
 *                      (the signal ends the process first without the profiler).
 *   raise_exit         the program's own SIGUSR1 handler raises SIGTERM and then calls
 *                      _exit(3); the main thread allocates and frees without end, so the
 *                      handler often interrupts the shim. Without the profiler, the raise ends
 *                      the process.
 *   ignored            SIGTERM is ignored when the program starts (the caller sets it, as nohup
 *                      and `trap '' TERM` do): it sends itself SIGTERM, goes on, and exits 0.
 */
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_keep)                                                                               \
	X(site_churn)                                                                              \
	X(site_busy)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

SITE void *site_keep(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_keep], n);
	return p;
}

SITE void *site_churn(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_churn], n);
	return p;
}

/* The busy threads count in shared memory (struct shared), not in sites[]. */
SITE void *site_busy(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return p;
}

static void free_at(int site, void *p, size_t n)
{
	free(p);
	truth_free(&sites[site], n);
}

static void allocate(void)
{
	for (int i = 0; i < 20; i++)
		if (!site_keep(48 + (size_t)i))
			_exit(4);
	for (int i = 0; i < 300; i++) {
		size_t n = 16 + (size_t)(i % 7) * 24;
		void *volatile p = site_churn(n);
		if (!p)
			_exit(4);
		free_at(S_site_churn, p, n);
	}
}

static int parse_sig(const char *s)
{
	if (strcmp(s, "TERM") == 0)
		return SIGTERM;
	if (strcmp(s, "INT") == 0)
		return SIGINT;
	if (strcmp(s, "HUP") == 0)
		return SIGHUP;
	if (strcmp(s, "QUIT") == 0)
		return SIGQUIT;
	if (strcmp(s, "PIPE") == 0)
		return SIGPIPE;
	return atoi(s);
}

static __attribute__((noreturn)) void run_self(int sig)
{
	allocate();
	truth_print("self", sites, NSITES);
	kill(getpid(), sig);
	for (;;)
		pause();
}

struct shared {
	unsigned long long objects, bytes; /* the busy threads' allocations, counted after each */
	unsigned long long objects_at_kill, bytes_at_kill;
};
static struct shared *shared;

static void *busy(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	for (;;) {
		seed = seed * 1103515245u + 12345u;
		size_t n = 16 + (seed >> 16) % 200;
		void *volatile p = site_busy(n);
		if (!p)
			_exit(4);
		/* objects last: a reader that sees the count sees the bytes too */
		__atomic_add_fetch(&shared->bytes, n, __ATOMIC_RELAXED);
		__atomic_add_fetch(&shared->objects, 1, __ATOMIC_RELEASE);
		free(p);
	}
	return NULL;
}

static int run_busy(int sig, int threads, const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 5;
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (shared == MAP_FAILED)
		return 5;
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	pthread_sigmask(SIG_BLOCK, &one, NULL); /* the threads are made with it unblocked below */
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		sigset_t old;
		pthread_sigmask(SIG_UNBLOCK, &one, &old);
		int r = spawn(&t, busy, (void *)(uintptr_t)(i + 1));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (r != 0)
			return 6;
	}
	pthread_sigmask(SIG_BLOCK, &one, NULL);
	while (__atomic_load_n(&shared->objects, __ATOMIC_ACQUIRE) < 20000)
		robust_sleep_us(1000);
	unsigned long long o = __atomic_load_n(&shared->objects, __ATOMIC_ACQUIRE);
	shared->bytes_at_kill = __atomic_load_n(&shared->bytes, __ATOMIC_RELAXED);
	shared->objects_at_kill = o;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	kill(getpid(), sig);
	for (;;)
		pause(); /* SIG is blocked here: a busy thread takes it */
}

static volatile sig_atomic_t own_ran;

static void own_handler(int sig)
{
	(void)sig;
	own_ran++;
}

static int is_default(int sig)
{
	struct sigaction o;
	if (sigaction(sig, NULL, &o) != 0)
		return -1;
	return !(o.sa_flags & SA_SIGINFO) && o.sa_handler == SIG_DFL && o.sa_flags == 0 &&
	       sigisemptyset(&o.sa_mask);
}

static int run_transparent(void)
{
	check_val("term_default", is_default(SIGTERM));
	check_val("hup_default", is_default(SIGHUP));
	/* signal() tells the action it replaces */
	void (*was)(int) = signal(SIGTERM, own_handler);
	check_val("signal_was_default", was == SIG_DFL);
	raise(SIGTERM);
	check_val("own_ran_signal", own_ran);
	was = signal(SIGTERM, SIG_DFL);
	check_val("signal_gave_own", was == own_handler);
	check_val("term_default_again", is_default(SIGTERM));
	struct sigaction flags;
	sigaction(SIGTERM, NULL, &flags);
	check_val("term_flags", flags.sa_flags);
	/* sigaction, with a mask and flags of the program's */
	struct sigaction act, old;
	memset(&act, 0, sizeof(act));
	act.sa_handler = own_handler;
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, SIGUSR1);
	act.sa_flags = SA_RESTART | SA_NODEFER;
	check_val("sigaction_ok", sigaction(SIGHUP, &act, &old) == 0);
	check_val("sigaction_old_default", old.sa_handler == SIG_DFL && old.sa_flags == 0);
	raise(SIGHUP);
	check_val("own_ran_sigaction", own_ran);
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaddset(&dfl.sa_mask, SIGUSR2);
	sigaction(SIGHUP, &dfl, &old);
	check_val("sigaction_gave_own",
	          old.sa_handler == own_handler &&
	              (old.sa_flags & (SA_RESTART | SA_NODEFER)) == (SA_RESTART | SA_NODEFER) &&
	              sigismember(&old.sa_mask, SIGUSR1) == 1);
	/* the default action as the program set it, its mask included */
	struct sigaction now;
	sigaction(SIGHUP, NULL, &now);
	check_val("hup_default_as_set",
	          now.sa_handler == SIG_DFL && sigismember(&now.sa_mask, SIGUSR2) == 1);
	/* ignored: the signal does nothing */
	signal(SIGINT, SIG_IGN);
	raise(SIGINT);
	check_val("survived_ignored_int", 1);
	struct sigaction ign;
	sigaction(SIGINT, NULL, &ign);
	check_val("int_ignored", ign.sa_handler == SIG_IGN);
	/* bad arguments fail as they would */
	errno = 0;
	check_val("signal_err_einval", signal(SIGTERM, SIG_ERR) == SIG_ERR && errno == EINVAL);
	errno = 0;
	check_val("sigaction_kill_einval", sigaction(SIGKILL, &act, NULL) == -1 && errno == EINVAL);
	allocate();
	truth_print("transparent", sites, NSITES);
	return 0;
}

static int run_forkchild(void)
{
	allocate();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 5;
	if (pid == 0) {
		for (int i = 0; i < NSITES; i++)
			sites[i].objects = sites[i].bytes = sites[i].live_objects =
			    sites[i].live_bytes = 0;
		allocate();
		truth_print("child", sites, NSITES);
		kill(getpid(), SIGTERM);
		for (;;)
			pause();
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	check_val("child_ended_by_term", WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	truth_print("parent", sites, NSITES);
	return 0;
}

static void *volatile sink;
__attribute__((noinline)) static void chain1(unsigned bits, int d);
__attribute__((noinline)) static void chain0(unsigned bits, int d)
{
	if (!d) {
		sink = malloc(16 + (bits & 7) * 64);
		free(sink);
		return;
	}
	if (bits & 1)
		chain1(bits >> 1, d - 1);
	else
		chain0(bits >> 1, d - 1);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void chain1(unsigned bits, int d)
{
	if (!d) {
		sink = malloc(32 + (bits & 7) * 64);
		free(sink);
		return;
	}
	if (bits & 1)
		chain1(bits >> 1, d - 1);
	else
		chain0(bits >> 1, d - 1);
	__asm__ volatile("" ::: "memory");
}

static void many_chains(int bits)
{
	for (unsigned i = 0; i < (1u << bits); i++)
		chain0(i, bits);
}

static void ready(void)
{
	static const char line[] = "ready\n";
	if (write(1, line, sizeof(line) - 1) < 0)
		_exit(5);
}

static void block_term(int how)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	pthread_sigmask(how, &s, NULL);
}

/* Forks children that exit at once, one after another, without end. */
static __attribute__((noreturn)) void fork_forever(void)
{
	for (;;) {
		pid_t c = fork();
		if (c == 0)
			_exit(0);
		if (c > 0)
			waitpid(c, NULL, 0);
	}
}

static int run_forkloop(size_t mb)
{
	char *p = malloc(mb << 20);
	if (!p)
		return 4;
	memset(p, 1, mb << 20);
	ready();
	fork_forever();
}

static void *flusher(void *arg)
{
	int n = *(int *)arg;
	block_term(SIG_UNBLOCK);
	FILE **files = calloc((size_t)n, sizeof(*files));
	if (!files)
		_exit(6);
	for (int i = 0; i < n; i++) {
		files[i] = fopen("/dev/null", "w");
		if (!files[i])
			_exit(6);
	}
	for (;;) {
		/* Every stream has something to write, so the list is held for a
		 * system call per stream. */
		for (int i = 0; i < n; i++)
			putc('x', files[i]);
		fflush(NULL);
	}
	return NULL;
}

static int run_forkflush(int streams)
{
	block_term(SIG_BLOCK);
	pthread_t t;
	if (pthread_create(&t, NULL, flusher, &streams) != 0)
		return 4;
	robust_sleep_us(100000);
	ready();
	fork_forever();
}

static int slow_look(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	volatile unsigned *sum = arg;
	for (int i = 0; i < 20000; i++)
		*sum += info->dlpi_phnum;
	return 0;
}

static void *module_walker(void *arg)
{
	(void)arg;
	block_term(SIG_UNBLOCK);
	volatile unsigned sum = 0;
	for (;;)
		dl_iterate_phdr(slow_look, (void *)&sum);
	return NULL;
}

static int run_phdrloop(void)
{
	block_term(SIG_BLOCK);
	many_chains(12); /* something to dump */
	pthread_t t;
	if (pthread_create(&t, NULL, module_walker, NULL) != 0)
		return 4;
	ready();
	for (;;)
		pause();
}

static void *quit_taker(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGQUIT);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	char line[64];
	int n = snprintf(line, sizeof(line), "ready\n%d\n", (int)gettid());
	if (write(1, line, (size_t)n) != n)
		_exit(5);
	for (;;)
		pause();
	return NULL;
}

static int run_quitter(void)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	allocate();
	pthread_t t;
	if (pthread_create(&t, NULL, quit_taker, NULL) != 0)
		return 4;
	pthread_join(t, NULL);
	return 0;
}

static int run_forkkill(int n)
{
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		if (c < 0)
			return 4;
		if (c == 0)
			for (;;)
				pause();
		kill(c, SIGTERM);
		int st;
		if (waitpid(c, &st, 0) != c || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
			return 5;
	}
	static const char ok[] = "ok\n";
	return write(1, ok, sizeof(ok) - 1) == sizeof(ok) - 1 ? 0 : 6;
}

static void *malloc_worker(void *arg)
{
	(void)arg;
	block_term(SIG_UNBLOCK);
	for (;;) {
		void *volatile p = malloc(64 + (size_t)(rand() & 1023));
		free(p);
	}
	return NULL;
}

static int run_forkmalloc(void)
{
	block_term(SIG_BLOCK);
	pthread_t t;
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t, NULL, malloc_worker, NULL) != 0)
			return 4;
	ready();
	fork_forever();
}

static void *raise_later(void *arg)
{
	block_term(SIG_UNBLOCK);
	robust_sleep_us((long)(intptr_t)arg);
	raise(SIGTERM);
	return NULL;
}

static int run_exit_in_dump(int bits)
{
	many_chains(bits);
	pthread_t t;
	if (pthread_create(&t, NULL, raise_later, (void *)(intptr_t)20000) != 0)
		return 4;
	ready();
	_exit(3);
}

static void say_handler_ran(void)
{
	static const char line[] = "handler ran\n";
	if (write(1, line, sizeof(line) - 1) < 0)
		_exit(5);
}

/* quick_during and main_return: a thread raises SIGTERM while 2^16 chains
 * are counted; the main thread ends 30 ms later, by quick_exit or a return
 * from main, with a handler of that exit's kind that prints "handler ran". */
static int run_end_during(bool quick)
{
	block_term(SIG_BLOCK);
	if (quick)
		at_quick_exit(say_handler_ran);
	else
		atexit(say_handler_ran);
	many_chains(16); /* a dump that takes a while */
	pthread_t t;
	if (pthread_create(&t, NULL, raise_later, (void *)(intptr_t)0) != 0)
		return 4;
	ready();
	robust_sleep_us(30000);
	if (quick)
		quick_exit(0);
	return 0;
}

extern char **environ;
static volatile int spawn_flag;

static void *spawner(void *how)
{
	for (;;) {
		int after = spawn_flag;
		const char *msg = after ? "started after the signal" : "";
		if (strcmp(how, "system") == 0) {
			char cmd[64];
			snprintf(cmd, sizeof(cmd), after ? "echo '%s'" : "true", msg);
			if (system(cmd) < 0)
				_exit(6);
		} else if (strcmp(how, "popen") == 0) {
			FILE *f = popen(after ? "echo 'started after the signal'" : "true", "r");
			if (!f)
				_exit(6);
			char line[64];
			while (fgets(line, sizeof(line), f))
				if (write(1, line, strlen(line)) < 0)
					_exit(5);
			pclose(f);
		} else {
			char *argv[] = {after ? "/bin/echo" : "/bin/true", (char *)msg, NULL};
			pid_t c;
			if (posix_spawn(&c, argv[0], NULL, NULL, argv, environ) != 0)
				_exit(6);
			waitpid(c, NULL, 0);
		}
	}
	return NULL;
}

static void *flag_then_raise(void *arg)
{
	(void)arg;
	block_term(SIG_UNBLOCK);
	robust_sleep_us(20000);
	spawn_flag = 1;
	raise(SIGTERM);
	return NULL;
}

static int run_spawn_during(char *how)
{
	block_term(SIG_BLOCK);
	many_chains(16);
	pthread_t t;
	if (pthread_create(&t, NULL, spawner, how) != 0 ||
	    pthread_create(&t, NULL, flag_then_raise, NULL) != 0)
		return 4;
	ready();
	for (;;)
		pause();
}

static int run_phdr_exit(void)
{
	block_term(SIG_BLOCK);
	many_chains(12);
	pthread_t t;
	if (pthread_create(&t, NULL, module_walker, NULL) != 0)
		return 4;
	ready();
	_exit(0);
}

static void print_action(int fd, const char *when)
{
	struct sigaction q;
	sigaction(SIGTERM, NULL, &q);
	char line[128];
	int n = snprintf(line, sizeof(line), "%s: %s resethand=%d siginfo=%d nodefer=%d\n", when,
	                 q.sa_handler == SIG_DFL ? "default" : "handler", /* the union's word */
	                 !!(q.sa_flags & SA_RESETHAND), !!(q.sa_flags & SA_SIGINFO),
	                 !!(q.sa_flags & SA_NODEFER));
	if (write(fd, line, (size_t)n) != n)
		_exit(5);
}

static void cleanup_then_die(int sig)
{
	print_action(1, "in handler");
	raise(sig);
}

static void cleanup_then_die_info(int sig, siginfo_t *info, void *ctx)
{
	(void)ctx;
	if (info->si_signo != sig)
		_exit(6);
	cleanup_then_die(sig);
}

static int run_oneshot(const char *flags)
{
	allocate();
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND;
	if (strstr(flags, "nodefer"))
		sa.sa_flags |= SA_NODEFER;
	if (strstr(flags, "info")) {
		sa.sa_flags |= SA_SIGINFO;
		sa.sa_sigaction = cleanup_then_die_info;
	} else {
		sa.sa_handler = cleanup_then_die;
	}
	if (sigaction(SIGTERM, &sa, NULL) != 0)
		return 4;
	print_action(2, "set");
	ready();
	for (;;)
		pause();
}

static void raise_then_exit(int sig)
{
	(void)sig;
	raise(SIGTERM);
	_exit(3);
}

static int run_raise_exit(void)
{
	signal(SIGUSR1, raise_then_exit);
	ready();
	for (volatile int forever = 1; forever;)
		free(site_churn(48));
	return 0;
}

static void *exiting_thread(void *arg)
{
	(void)arg;
	block_term(SIG_UNBLOCK);
	many_chains(12); /* 4,096 chains to fold into the process's counts at its exit */
	return NULL;
}

static int run_threads_exit(void)
{
	block_term(SIG_BLOCK);
	ready();
	for (;;) {
		pthread_t t;
		if (spawn(&t, exiting_thread, NULL) != 0)
			return 6;
		pthread_join(t, NULL);
	}
}

static void *sleeping_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct timespec ts = {10, 0};
		if (nanosleep(&ts, NULL) != 0 && errno == EINTR)
			exit(3); /* cannot happen without the profiler: the signal ends the process
			          */
	}
	return NULL;
}

static int run_sleeper(int bits)
{
	many_chains(bits);
	pthread_t t;
	if (spawn(&t, sleeping_thread, NULL) != 0)
		return 6;
	robust_sleep_us(10000);
	ready();
	for (;;)
		pause();
}

static void *small_thread(void *arg)
{
	(void)arg;
	block_term(SIG_UNBLOCK);
	void *volatile p = malloc(10);
	free(p);
	ready();
	for (;;)
		pause();
	return NULL;
}

static int run_smallstack(size_t bytes)
{
	block_term(SIG_BLOCK); /* only the thread takes it */
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, bytes) != 0 ||
	    pthread_create(&t, &attr, small_thread, NULL) != 0)
		return 6;
	for (;;)
		pause();
}

static int run_execdump(int bits, long us)
{
	many_chains(bits);
	int fds[2];
	if (pipe(fds) != 0)
		return 5;
	pid_t parent = getpid();
	pid_t killer = fork();
	if (killer < 0)
		return 5;
	if (killer == 0) {
		char c;
		close(fds[1]);
		close(1); /* the caller waits for the end of the parent's output, not ours */
		close(2);
		if (read(fds[0], &c, 1) == 1) {
			robust_sleep_us(us);
			kill(parent, SIGTERM);
		}
		_exit(0);
	}
	ready();
	if (write(fds[1], "x", 1) != 1)
		return 5;
	execl("/bin/sleep", "sleep", "5", (char *)NULL);
	return 7;
}

static void *term_thread(void *arg)
{
	(void)arg;
	block_term(SIG_UNBLOCK);
	for (;;)
		pause();
	return NULL;
}

static void said_atexit(void)
{
	static const char line[] = "atexit ran\n";
	if (write(1, line, sizeof(line) - 1) < 0)
		_exit(5);
}

static int run_exit_during(int bits)
{
	many_chains(bits);
	block_term(SIG_BLOCK);
	pthread_t t;
	if (spawn(&t, term_thread, NULL) != 0 || atexit(said_atexit) != 0)
		return 6;
	robust_sleep_us(10000);
	ready();
	robust_sleep_us(50000);
	exit(4);
}

static int run_ignored(void)
{
	struct sigaction o;
	sigaction(SIGTERM, NULL, &o);
	check_val("term_ignored", o.sa_handler == SIG_IGN);
	allocate();
	kill(getpid(), SIGTERM);
	check_val("survived", 1);
	truth_print("ignored", sites, NSITES);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "self") == 0)
		run_self(parse_sig(argv[2]));
	if (argc >= 5 && strcmp(argv[1], "busy") == 0)
		return run_busy(parse_sig(argv[2]), atoi(argv[3]), argv[4]);
	if (argc >= 2 && strcmp(argv[1], "transparent") == 0)
		return run_transparent();
	if (argc >= 3 && strcmp(argv[1], "forkloop") == 0)
		return run_forkloop((size_t)atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "threads_exit") == 0)
		return run_threads_exit();
	if (argc >= 3 && strcmp(argv[1], "sleeper") == 0)
		return run_sleeper(atoi(argv[2]));
	if (argc >= 3 && strcmp(argv[1], "smallstack") == 0)
		return run_smallstack((size_t)atoi(argv[2]));
	if (argc >= 4 && strcmp(argv[1], "execdump") == 0)
		return run_execdump(atoi(argv[2]), atol(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "exit_during") == 0)
		return run_exit_during(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "forkchild") == 0)
		return run_forkchild();
	if (argc >= 3 && strcmp(argv[1], "forkflush") == 0)
		return run_forkflush(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "phdrloop") == 0)
		return run_phdrloop();
	if (argc >= 2 && strcmp(argv[1], "quitter") == 0)
		return run_quitter();
	if (argc >= 3 && strcmp(argv[1], "forkkill") == 0)
		return run_forkkill(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "forkmalloc") == 0)
		return run_forkmalloc();
	if (argc >= 3 && strcmp(argv[1], "exit_in_dump") == 0)
		return run_exit_in_dump(atoi(argv[2]));
	if (argc >= 2 && strcmp(argv[1], "quick_during") == 0)
		return run_end_during(true);
	if (argc >= 3 && strcmp(argv[1], "spawn_during") == 0)
		return run_spawn_during(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "phdr_exit") == 0)
		return run_phdr_exit();
	if (argc >= 3 && strcmp(argv[1], "oneshot") == 0)
		return run_oneshot(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "main_return") == 0)
		return run_end_during(false);
	if (argc >= 2 && strcmp(argv[1], "raise_exit") == 0)
		return run_raise_exit();
	if (argc >= 2 && strcmp(argv[1], "ignored") == 0)
		return run_ignored();
	return 2;
}
