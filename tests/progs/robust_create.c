/* robust_create.c: what a program sees of the threads it makes, which must be the same with and
 * without the profiler (whose pthread_create starts each thread at a trampoline of its own that
 * learns the thread's stack, then jumps to the start routine).
 *
 * usage: robust_create semantics
 *   The start routine's caller is libc's thread start: its return address, and the frames
 *   backtrace() finds above the start routine (as offsets in libc.so.6). The start routine gets
 *   its argument, and errno 0. A thread's value reaches pthread_join from a return and from
 *   pthread_exit; cancellation (at a cancellation point later on, and pending before the thread
 *   runs) gives PTHREAD_CANCELED and runs the cleanup handlers. A pthread_create that fails (a
 *   stack too large to map; a scheduling policy that may be refused) returns the same error and
 *   leaves errno as it was. Detached threads, a C11 thread (thrd_create, which reaches glibc's
 *   pthread_create without the profiler's), and a thread with the smallest stack (16 KiB)
 *   allocate. Sites: site_thread, site_detached, site_c11, site_small.
 *
 * usage: robust_create churn N
 *   N threads made and joined, N pthread_create calls that fail, and N detached threads, each
 *   thread allocating once (site_churn), after a first round of N/10 of each; the check
 *   vm_growth_kb says how much the process's mappings grew in the second round (the
 *   profiler's own bookkeeping must not grow with the number of threads made).
 *
 * usage: robust_create_ctor ctor (built with -DCTOR, linked with robust_create_lib.c's library)
 *   In that library's constructor, before the profiler's own ran and before anything allocated:
 *   the main thread asks the C library's pthread_getattr_np about its stack (dlvsym, bypassing
 *   any preloaded definition), then threads made with pthread_create do the same first thing,
 *   and allocate (site_ctor). Checks: each found its own frame inside the stack it was told of. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_thread)                                                                             \
	X(site_detached)                                                                           \
	X(site_c11)                                                                                \
	X(site_small)                                                                              \
	X(site_churn)                                                                              \
	X(site_ctor)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES];
static const char *const names[NSITES] = {
#define NAME_ONLY(n) #n,
    SITES(NAME_ONLY)};

#define SITE_FN(n)                                                                                 \
	SITE void *n(size_t size)                                                                  \
	{                                                                                          \
		void *p = malloc(size);                                                            \
		if (!p)                                                                            \
			_exit(4);                                                                  \
		truth_alloc(&sites[S_##n], size);                                                  \
		return p;                                                                          \
	}
SITES(SITE_FN)

/* An offset in libc.so.6, or -1 for an address elsewhere. */
static long long libc_offset(void *addr)
{
	Dl_info info;
	if (!dladdr(addr, &info) || !info.dli_fname || !strstr(info.dli_fname, "/libc.so.6"))
		return -1;
	return (long long)((char *)addr - (char *)info.dli_fbase);
}

/* pthread_create with attributes; the runtime's allocations for the thread are made here. */
SITE static int spawn_attr(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	int r = pthread_create(t, attr, fn, arg);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return r;
}

/* pthread_attr_setaffinity_np, which allocates the attributes' extension. */
SITE static int attr_affinity(pthread_attr_t *attr, size_t size, const cpu_set_t *set)
{
	int r = pthread_attr_setaffinity_np(attr, size, set);
	__asm__ volatile("" ::: "memory");
	return r;
}

/* backtrace() loads libgcc_s the first time (its allocations are made here). */
SITE static void warm(void)
{
	void *bt[4];
	backtrace(bt, 4);
	__asm__ volatile("" ::: "memory");
}

static int marker;
static long long seen_ra, seen_bt_n, seen_bt[3], seen_arg, seen_errno;

__attribute__((noinline)) static void *fn_plain(void *arg)
{
	seen_ra = libc_offset(__builtin_return_address(0));
	seen_errno = errno;
	seen_arg = arg == &marker;
	void *bt[8];
	int n = backtrace(bt, 8); /* bt[0] is in this function, then its callers */
	seen_bt_n = n;
	for (int i = 1; i < n && i < 4; i++)
		seen_bt[i - 1] = libc_offset(bt[i]);
	free(site_thread(40));
	truth_free(&sites[S_site_thread], 40);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
	return (void *)0x5eed;
}

__attribute__((noinline)) static void *fn_exit(void *arg)
{
	(void)arg;
	free(site_thread(48));
	truth_free(&sites[S_site_thread], 48);
	pthread_exit((void *)0x7e57);
}

static int cleaned;
static void cleanup(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&cleaned, 1, __ATOMIC_RELAXED);
}

static sem_t started;

__attribute__((noinline)) static void *fn_cancel(void *arg)
{
	pthread_cleanup_push(cleanup, arg);
	if (arg)
		sem_post(&started);
	else
		pthread_testcancel(); /* cancelled before it ran: acts here */
	for (;;)
		robust_sleep_us(1000); /* nanosleep: a cancellation point */
	pthread_cleanup_pop(0);
	return NULL;
}

SITE static int cancel_it(pthread_t t)
{
	int r = pthread_cancel(t);
	__asm__ volatile("" ::: "memory");
	return r;
}

SITE static void *join_it(pthread_t t)
{
	void *v = NULL;
	if (pthread_join(t, &v) != 0)
		_exit(6);
	__asm__ volatile("" ::: "memory");
	return v;
}

static sem_t detached_done;

static void *fn_detached(void *arg)
{
	free(site_detached((size_t)arg));
	truth_free(&sites[S_site_detached], (size_t)arg);
	sem_post(&detached_done);
	return NULL;
}

static int fn_c11(void *arg)
{
	free(site_c11(64));
	truth_free(&sites[S_site_c11], 64);
	return arg == &marker ? 42 : 1;
}

SITE static int c11_spawn(thrd_t *t)
{
	int r = thrd_create(t, fn_c11, &marker);
	__asm__ volatile("" ::: "memory");
	return r;
}

static volatile int small_depth = 4;
static int small_frames(int n)
{
	char pad[256];
	memset(pad, n, sizeof(pad));
	__asm__ volatile("" : : "r"(pad) : "memory");
	return n ? small_frames(n - 1) + pad[3] : (free(site_small(32)), 0);
}

static void *fn_small(void *arg)
{
	(void)arg;
	small_frames(small_depth);
	truth_free(&sites[S_site_small], 32);
	return (void *)1;
}

static int semantics(void)
{
	warm();
	pthread_t t;
	if (spawn(&t, fn_plain, &marker) != 0)
		return 6;
	check_val("plain_value", join_it(t) == (void *)0x5eed);
	check_val("start_caller_libc_offset", seen_ra);
	check_val("start_errno", seen_errno);
	check_val("start_arg", seen_arg);
	check_val("bt_frames", seen_bt_n);
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bt_above_start_%d", i);
		check_val(name, i + 1 < seen_bt_n ? seen_bt[i] : -2);
	}

	if (spawn(&t, fn_exit, NULL) != 0)
		return 6;
	check_val("exit_value", join_it(t) == (void *)0x7e57);

	sem_init(&started, 0, 0);
	if (spawn(&t, fn_cancel, &marker) != 0)
		return 6;
	sem_wait(&started);
	check_val("cancel", cancel_it(t));
	check_val("cancelled", join_it(t) == PTHREAD_CANCELED);
	if (spawn(&t, fn_cancel, NULL) != 0)
		return 6;
	check_val("cancel_early", cancel_it(t));
	check_val("cancelled_early", join_it(t) == PTHREAD_CANCELED);
	check_val("cleanups", cleaned);

	/* A stack too large to map. */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, (size_t)1 << 46);
	errno = 4321;
	check_val("huge_stack", spawn_attr(&t, &attr, fn_plain, &marker));
	check_val("huge_stack_errno", errno);
	pthread_attr_destroy(&attr);
	/* A policy that needs privileges (refused after the thread is made, unless allowed). */
	pthread_attr_init(&attr);
	pthread_attr_setinheritsched(&attr, PTHREAD_EXPLICIT_SCHED);
	pthread_attr_setschedpolicy(&attr, SCHED_FIFO);
	struct sched_param sp = {.sched_priority = sched_get_priority_max(SCHED_FIFO)};
	pthread_attr_setschedparam(&attr, &sp);
	errno = 4321;
	int r = spawn_attr(&t, &attr, fn_exit, NULL);
	check_val("fifo_errno", errno);
	if (r == 0)
		join_it(t);
	else
		check_val("fifo", r);
	pthread_attr_destroy(&attr);

	/* An affinity with no processor of the machine: glibc makes the thread, fails to set it,
	 * and has the thread end without running the start routine. */
	static unsigned long none[4096 / (8 * sizeof(unsigned long))];
	CPU_SET_S(4095, sizeof(none), (cpu_set_t *)none);
	pthread_attr_init(&attr);
	attr_affinity(&attr, sizeof(none), (cpu_set_t *)none);
	int refused = 0;
	errno = 4321;
	for (int i = 0; i < 50; i++) {
		r = spawn_attr(&t, &attr, fn_plain, NULL);
		if (r == 0)
			join_it(t);
		refused += r != 0;
	}
	check_val("bad_affinity_refused", refused);
	check_val("bad_affinity_errno", errno);
	pthread_attr_destroy(&attr);

	sem_init(&detached_done, 0, 0);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < 8; i++)
		if (spawn_attr(&t, &attr, fn_detached, (void *)(size_t)(24 + i)) != 0)
			return 6;
	for (int i = 0; i < 8; i++)
		sem_wait(&detached_done);
	pthread_attr_destroy(&attr);

	thrd_t c;
	int res = 0;
	if (c11_spawn(&c) != thrd_success || thrd_join(c, &res) != thrd_success)
		return 6;
	check_val("c11_value", res);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
	if (spawn_attr(&t, &attr, fn_small, NULL) != 0)
		return 6;
	check_val("small_value", join_it(t) == (void *)1);
	pthread_attr_destroy(&attr);
	return 0;
}

/* The process's mappings, in KiB (VmSize). */
static long vm_kb(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	const char *p = strstr(buf, "VmSize:");
	return p ? atol(p + 7) : -1;
}

static void *fn_churn(void *arg)
{
	(void)arg;
	free(site_churn(16));
	truth_free(&sites[S_site_churn], 16);
	return NULL;
}

static void *fn_churn_detached(void *arg)
{
	fn_churn(arg);
	sem_post(&detached_done);
	return NULL;
}

/* n threads made and joined, n calls that fail, n detached threads (at most 64 at once). */
static int churn_round(int n)
{
	pthread_t t;
	for (int i = 0; i < n; i++) {
		if (spawn(&t, fn_churn, NULL) != 0)
			return 6;
		join_it(t);
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, (size_t)1 << 46);
	int failed = 0;
	for (int i = 0; i < n; i++)
		failed += spawn_attr(&t, &attr, fn_churn, NULL) != 0;
	pthread_attr_destroy(&attr);
	if (failed != n)
		return 7;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (int i = 0; i < n; i++) {
		if (spawn_attr(&t, &attr, fn_churn_detached, NULL) != 0)
			return 6;
		if (i % 64 == 63)
			for (int k = 0; k < 64; k++)
				sem_wait(&detached_done);
	}
	for (int i = 0; i < n % 64; i++)
		sem_wait(&detached_done);
	pthread_attr_destroy(&attr);
	robust_sleep_us(100000); /* the last detached threads finish exiting */
	return 0;
}

/* A first round makes what the allocator and the C library keep (arenas, cached stacks); the
 * mappings must not grow in the next, ten times longer. */
static int churn(int n)
{
	sem_init(&detached_done, 0, 0);
	int r = churn_round(n / 10);
	if (r)
		return r;
	long before = vm_kb();
	r = churn_round(n);
	check_val("vm_growth_kb", vm_kb() - before);
	return r;
}

#ifdef CTOR
typedef int (*getattr_fn)(pthread_t, pthread_attr_t *);
static getattr_fn getattr;
static int ctor_main_inside, ctor_threads_inside;

/* Whether this frame lies inside the stack libc's pthread_getattr_np tells of. */
SITE static int ask_own(void)
{
	pthread_attr_t attr;
	void *lo;
	size_t size;
	char here;
	if (getattr(pthread_self(), &attr) != 0)
		return 0;
	int r = pthread_attr_getstack(&attr, &lo, &size) == 0 && &here >= (char *)lo &&
	        &here < (char *)lo + size;
	pthread_attr_destroy(&attr);
	__asm__ volatile("" ::: "memory");
	return r;
}

static void *fn_ctor(void *arg)
{
	(void)arg;
	if (ask_own())
		__atomic_add_fetch(&ctor_threads_inside, 1, __ATOMIC_RELAXED);
	free(site_ctor(72));
	truth_free(&sites[S_site_ctor], 72);
	return NULL;
}

/* Run by robust_create_lib.c's constructor. */
__attribute__((visibility("default"))) void robust_create_ctor(void)
{
	*(void **)&getattr = dlvsym(RTLD_NEXT, "pthread_getattr_np", "GLIBC_2.2.5");
	if (!getattr)
		_exit(7);
	ctor_main_inside = ask_own();
	for (int i = 0; i < 4; i++) {
		pthread_t t;
		if (spawn(&t, fn_ctor, NULL) != 0)
			_exit(6);
		join_it(t);
	}
}
#endif

int main(int argc, char **argv)
{
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	int r = 2;
#ifdef CTOR
	if (argc >= 2 && strcmp(argv[1], "ctor") == 0) {
		check_val("ctor_main_inside", ctor_main_inside);
		check_val("ctor_threads_inside", ctor_threads_inside);
		r = 0;
	}
#endif
	if (argc >= 2 && strcmp(argv[1], "semantics") == 0)
		r = semantics();
	else if (argc >= 3 && strcmp(argv[1], "churn") == 0)
		r = churn(atoi(argv[2]));
	if (r == 0)
		truth_print(argv[1], sites, NSITES);
	return r;
}
