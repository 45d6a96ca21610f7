/* robust_stress.c: threads, forks and signals at once for SECONDS. Workers allocate, reallocate
 * and free, start and join short threads; a signaller interrupts them with SIGUSR1 (whose handler
 * allocates when the worker is outside the C library) and asks for on-demand dumps with SIGUSR2;
 * the main thread forks children that allocate, start a thread, sometimes fork a grandchild, and
 * end by exit or _exit. Every process writes its truth to DIR/truth.<exe>.<pid>.json. It must
 * never allocate outside its site_* functions (and spawn()).
 *
 * usage: robust_stress SECONDS DIR */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_worker_malloc)                                                                      \
	X(site_worker_calloc)                                                                      \
	X(site_worker_realloc)                                                                     \
	X(site_short)                                                                              \
	X(site_handler)                                                                            \
	X(site_child)                                                                              \
	X(site_child_thread)                                                                       \
	X(site_grandchild)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};
static const char *const names[NSITES] = {
#define NAME_ONLY(n) #n,
    SITES(NAME_ONLY)};

#define WORKERS 3
#define RING    64

static const char *dir;
static int stop;
static long threads_created;
static pthread_t workers[WORKERS];
static __thread volatile sig_atomic_t busy = 1; /* inside the C library: no allocation */

static inline void set_busy(int v)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	busy = v;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

#define SITE_FN(name, call)                                                                        \
	SITE static void *name(size_t n)                                                           \
	{                                                                                          \
		set_busy(1);                                                                       \
		void *p = call;                                                                    \
		set_busy(0);                                                                       \
		if (p)                                                                             \
			truth_alloc(&sites[S_##name], n);                                          \
		return p;                                                                          \
	}

SITE_FN(site_worker_malloc, malloc(n))
SITE_FN(site_worker_calloc, calloc(1, n))
SITE_FN(site_short, malloc(n))
SITE_FN(site_child, malloc(n))
SITE_FN(site_child_thread, malloc(n))
SITE_FN(site_grandchild, malloc(n))

SITE static void *site_worker_realloc(void *old, size_t oldn, size_t n)
{
	set_busy(1);
	void *p = realloc(old, n);
	set_busy(0);
	if (p) {
		if (old)
			truth_free(&sites[S_site_worker_realloc], oldn);
		truth_alloc(&sites[S_site_worker_realloc], n);
	}
	return p;
}

SITE static void *site_handler(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_handler], n);
	return p;
}

static void release(void *p, int site, size_t n)
{
	set_busy(1);
	free(p);
	set_busy(0);
	if (p)
		truth_free(&sites[site], n);
}

static void on_usr1(int sig)
{
	(void)sig;
	if (busy)
		return;
	int saved = errno;
	void *p = site_handler(40);
	if (p) {
		free(p);
		truth_free(&sites[S_site_handler], 40);
	}
	errno = saved;
}

static void reset_truth(void)
{
	memset(sites, 0, sizeof(sites));
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	threads_created = 0;
	checks_len = 0;
}

static void *short_thread(void *arg)
{
	set_busy(0);
	long k = (long)arg;
	for (int i = 0; i < 10; i++)
		release(site_short(8 + (size_t)(k + i) % 100), S_site_short,
		        8 + (size_t)(k + i) % 100);
	void *keep = site_short(24); /* live */
	(void)keep;
	set_busy(1);
	return NULL;
}

static int start_join(void *(*fn)(void *), long arg, long *created)
{
	pthread_t t;
	set_busy(1);
	int r = spawn(&t, fn, (void *)arg);
	if (r == 0) {
		__atomic_add_fetch(created, 1, __ATOMIC_RELAXED);
		pthread_join(t, NULL);
	}
	set_busy(0);
	return r;
}

static void *worker(void *arg)
{
	long id = (long)arg;
	void *ring[RING] = {0};
	size_t sz[RING] = {0};
	int kind[RING] = {0};
	static const int site_of[3] = {S_site_worker_malloc, S_site_worker_calloc,
	                               S_site_worker_realloc};
	set_busy(0);
	for (unsigned long i = 0; !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); i++) {
		int s = (int)((i * 7 + (unsigned long)id) % RING);
		size_t n = 1 + (i * 13 + (unsigned long)id * 101) % 700;
		if (ring[s] && kind[s] == 2 && i % 2) {
			ring[s] = site_worker_realloc(ring[s], sz[s], n);
			sz[s] = n;
			continue;
		}
		if (ring[s])
			release(ring[s], site_of[kind[s]], sz[s]);
		kind[s] = (int)(i % 3);
		sz[s] = n;
		ring[s] = kind[s] == 0   ? site_worker_malloc(n)
		          : kind[s] == 1 ? site_worker_calloc(n)
		                         : site_worker_realloc(NULL, 0, n);
		if (i % 2000 == 1999)
			start_join(short_thread, (long)i, &threads_created);
	}
	set_busy(1);
	return NULL;
}

static void *signaller(void *arg)
{
	(void)arg;
	for (unsigned long i = 0; !__atomic_load_n(&stop, __ATOMIC_ACQUIRE); i++) {
		pthread_kill(workers[i % WORKERS], SIGUSR1);
		if (i % 3000 == 2999)
			kill(getpid(), SIGUSR2); /* an on-demand dump */
		robust_sleep_us(100);
	}
	return NULL;
}

static void *child_thread(void *arg)
{
	(void)arg;
	set_busy(0);
	for (int i = 0; i < 50; i++) {
		void *p = site_child_thread(16 + (size_t)i);
		if (i % 2)
			release(p, S_site_child_thread, 16 + (size_t)i);
	}
	set_busy(1);
	return NULL;
}

static void child(int k)
{
	reset_truth();
	set_busy(0);
	for (int i = 0; i < 100; i++) {
		void *p = site_child(32 + (size_t)(i + k) % 64);
		if (i % 3 == 0)
			release(p, S_site_child, 32 + (size_t)(i + k) % 64);
	}
	start_join(child_thread, 0, &threads_created);
	if (k % 3 == 0) {
		set_busy(1);
		pid_t g = fork();
		set_busy(0);
		if (g == 0) {
			reset_truth();
			for (int i = 0; i < 30; i++)
				site_grandchild(64);
			robust_truth_file(dir, "grandchild", sites, NSITES);
			exit(0);
		}
		if (g < 0)
			_exit(3);
		/* The grandchild is not waited for: it may outlive its parent. */
	}
	check_val("threads", threads_created);
	robust_truth_file(dir, "child", sites, NSITES);
	if (k % 4 == 0)
		_exit(0);
	exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int seconds = atoi(argv[1]);
	dir = argv[2];
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* Only the workers take SIGUSR1. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	for (long i = 0; i < WORKERS; i++) {
		if (spawn(&workers[i], worker, (void *)i) != 0)
			return 3;
		threads_created++;
	}
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_t sig;
	if (spawn(&sig, signaller, NULL) != 0)
		return 3;
	threads_created++;
	long children = 0;
	pid_t pids[4096];
	for (long waited = 0; waited < seconds * 1000000L; waited += 50000) {
		robust_sleep_us(50000);
		if (children >= 4096)
			continue;
		set_busy(1);
		pid_t pid = fork();
		set_busy(0);
		if (pid == 0) {
			pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
			child((int)children);
		}
		if (pid < 0)
			return 3;
		pids[children++] = pid;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	pthread_join(sig, NULL);
	int failed = 0;
	for (long i = 0; i < children; i++) {
		int status;
		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			failed++;
	}
	check_val("children", children);
	check_val("children_failed", failed);
	check_val("threads", __atomic_load_n(&threads_created, __ATOMIC_RELAXED));
	robust_truth_file(dir, "parent", sites, NSITES);
	return failed ? 5 : 0;
}
