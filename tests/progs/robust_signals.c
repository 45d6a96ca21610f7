/* robust_signals.c: allocation from signal handlers. The main thread allocates and frees in a
 * loop while a second thread sends it SIGUSR1 thousands of times; the handler allocates and
 * frees too. A handler that interrupts the main thread outside malloc/free (flag busy clear)
 * allocates at site_handler_out and must be counted exactly; one that interrupts it inside them
 * (possibly inside mapprof's own bookkeeping) allocates at site_handler_in, which mapprof may
 * forward without counting. Sizes stay in glibc's per-thread cache (primed first), so the
 * handler never waits for a malloc lock the interrupted code holds: that would deadlock without
 * mapprof too. It must never allocate outside its site_* functions (and spawn()).
 *
 * usage: robust_signals SIGNALS [--altstack] */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_main)                                                                               \
	X(site_handler_out)                                                                        \
	X(site_handler_in)                                                                         \
	X(site_prime)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

#define MAIN_SIZE    24
#define HANDLER_SIZE 200

static volatile sig_atomic_t busy; /* the main thread is inside malloc or free */
static int done;
static pthread_t main_thread;
static long signals_wanted;
static unsigned long long handled;

static inline void set_busy(int v)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	busy = v;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

SITE static void *site_main(size_t n)
{
	set_busy(1);
	void *p = malloc(n);
	set_busy(0);
	if (p)
		truth_alloc(&sites[S_site_main], n);
	return p;
}

SITE static void *site_handler_out(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_handler_out], n);
	return p;
}

SITE static void *site_handler_in(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_handler_in], n);
	return p;
}

SITE static void *site_prime(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_prime], n);
	return p;
}

static void handler(int sig)
{
	(void)sig;
	int saved = errno;
	int s = busy ? S_site_handler_in : S_site_handler_out;
	void *p =
	    s == S_site_handler_in ? site_handler_in(HANDLER_SIZE) : site_handler_out(HANDLER_SIZE);
	if (p) {
		((volatile char *)p)[0] = 1;
		free(p);
		truth_free(&sites[s], HANDLER_SIZE);
	}
	handled++;
	errno = saved;
}

static void *signaller(void *arg)
{
	(void)arg;
	for (long i = 0; i < signals_wanted; i++) {
		pthread_kill(main_thread, SIGUSR1);
		robust_sleep_us(i % 7 == 0 ? 50 : 5);
	}
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static char altstack[1 << 16];

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	signals_wanted = atol(argv[1]);
	int alt = argc > 2 && strcmp(argv[2], "--altstack") == 0;
	main_thread = pthread_self();
	/* Prime glibc's per-thread cache for both sizes. */
	void *a = site_prime(MAIN_SIZE), *b = site_prime(HANDLER_SIZE);
	free(a);
	free(b);
	truth_free(&sites[S_site_prime], MAIN_SIZE);
	truth_free(&sites[S_site_prime], HANDLER_SIZE);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (alt) {
		stack_t ss = {.ss_sp = altstack, .ss_size = sizeof(altstack), .ss_flags = 0};
		if (sigaltstack(&ss, NULL) != 0)
			return 3;
		sa.sa_flags |= SA_ONSTACK;
	}
	sigaction(SIGUSR1, &sa, NULL);

	pthread_t t;
	if (spawn(&t, signaller, NULL) != 0)
		return 3;
	unsigned long long loops = 0;
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
		void *p = site_main(MAIN_SIZE);
		set_busy(1);
		free(p);
		set_busy(0);
		truth_free(&sites[S_site_main], MAIN_SIZE);
		loops++;
	}
	pthread_join(t, NULL);
	/* Block the signal before printing: every handler has finished. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	check_val("handled", (long long)handled);
	check_val("loops", (long long)loops);
	truth_print("main", sites, NSITES);
	return 0;
}
