/* robust_stackinfo.c: threads that ask pthread_getattr_np about their own stack before they
 * allocate anything, as garbage collectors (Boehm's GC_get_stack_base) and language runtimes
 * (Rust's main-thread guard page) do. glibc's pthread_getattr_np holds the thread's lock while it
 * allocates (realloc of the affinity mask; on the main thread, fopen of /proc/self/maps too), so
 * that allocation is the thread's first: a profiler that learns the thread's stack with the same
 * call then waits on a lock its own thread holds. Then pairs of threads ask about each other at
 * the same moment, and allocate.
 *
 * The allocations inside pthread_getattr_np are libc's, made from ask(); the program's own are at
 * site_thread and site_main. Self-checks (the same with and without the profiler): every thread
 * finds its own frame inside the stack it is told of, and a thread made with a 256 KiB stack is
 * told 256 KiB.
 *
 * With "dlvsym" or "libc", every ask goes to the C library's pthread_getattr_np without the
 * pthread_getattr_np a preloaded library may define: dlvsym(RTLD_NEXT, ..., "GLIBC_2.2.5"), or
 * dlsym on dlopen("libc.so.6", RTLD_NOLOAD | RTLD_NOW), as a runtime that looks its functions up
 * itself would (resolve's allocations are the loader's). The check bypass_in_libc says the function
 * found lies in libc.so.6.
 *
 * With "thrd", the threads are made with C11's thrd_create (which reaches glibc's pthread_create
 * from inside the C library) and so get the default stack; the check c11_returned counts the
 * threads whose int result thrd_join gave back as returned.
 *
 * usage: robust_stackinfo first THREADS [dlvsym|libc|direct] [thrd] */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_main)                                                                               \
	X(site_thread)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES];
static const char *const names[NSITES] = {
#define NAME_ONLY(n) #n,
    SITES(NAME_ONLY)};

#define STACK_SIZE (256u << 10)

static int inside, sized, asked_other;
static pthread_barrier_t pair_start;

SITE void *site_main(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_main], n);
	return p;
}

SITE void *site_thread(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_thread], n);
	return p;
}

SITE static void free_at(int site, void *p, size_t n)
{
	free(p);
	truth_free(&sites[site], n);
}

typedef int (*getattr_fn)(pthread_t, pthread_attr_t *);
static getattr_fn getattr = pthread_getattr_np;
static int bypassing, bypass_in_libc;

SITE static int resolve(const char *how)
{
	void *f = NULL;
	if (strcmp(how, "dlvsym") == 0) {
		f = dlvsym(RTLD_NEXT, "pthread_getattr_np", "GLIBC_2.2.5");
	} else if (strcmp(how, "direct") == 0) {
		return 0; /* the program's own pthread_getattr_np, as without an argument */
	} else if (strcmp(how, "libc") == 0) {
		void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_NOW);
		if (libc)
			f = dlsym(libc, "pthread_getattr_np");
	}
	Dl_info info;
	if (f && dladdr(f, &info) && info.dli_fname && strstr(info.dli_fname, "/libc.so.6"))
		bypass_in_libc = 1;
	*(void **)&getattr = f;
	bypassing = 1;
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return f ? 0 : -1;
}

/* Asks about thread t: its stack's bounds, 0 if it cannot. */
SITE static int ask(pthread_t t, char **lo, size_t *size)
{
	pthread_attr_t attr;
	int r = getattr(t, &attr);
	if (r != 0)
		return r;
	void *addr;
	r = pthread_attr_getstack(&attr, &addr, size);
	*lo = addr;
	pthread_attr_destroy(&attr);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return r;
}

static int own_frame_inside(void)
{
	char *lo;
	size_t size;
	char here;
	if (ask(pthread_self(), &lo, &size) != 0)
		return 0;
	return &here >= lo && &here < lo + size;
}

static void allocate(int site, int n)
{
	void *keep[8];
	for (int i = 0; i < n; i++) {
		size_t sz = 24 + (size_t)i * 8;
		void *p = site == S_site_main ? site_main(sz) : site_thread(sz);
		if (!p)
			_exit(4);
		if (i < 8)
			keep[i] = p;
		else
			free_at(site, p, sz);
	}
	for (int i = 0; i < n && i < 8; i++)
		free_at(site, keep[i], 24 + (size_t)i * 8);
}

static void *first_thing(void *arg)
{
	(void)arg;
	/* Before this thread allocates anything. */
	if (own_frame_inside())
		__atomic_add_fetch(&inside, 1, __ATOMIC_RELAXED);
	char *lo;
	size_t size;
	if (ask(pthread_self(), &lo, &size) == 0 && size == STACK_SIZE)
		__atomic_add_fetch(&sized, 1, __ATOMIC_RELAXED);
	allocate(S_site_thread, 40);
	return NULL;
}

static int use_thrd, c11_returned;

static int first_thing_c11(void *arg)
{
	first_thing(arg);
	return 0x5a5a;
}

_Static_assert(sizeof(thrd_t) == sizeof(pthread_t), "glibc's thrd_t is a pthread_t");

/* pthread_create with a stack size, or thrd_create; the runtime's allocations for the thread are
 * made here. */
SITE static int spawn_sized(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            thrd_start_t c11, void *arg)
{
	int r = use_thrd ? (thrd_create((thrd_t *)t, c11, arg) == thrd_success ? 0 : -1)
	                 : pthread_create(t, attr, fn, arg);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return r;
}

static void join(pthread_t t, int want)
{
	if (use_thrd) {
		int res = 0;
		if (thrd_join((thrd_t)t, &res) == thrd_success && res == want)
			__atomic_add_fetch(&c11_returned, 1, __ATOMIC_RELAXED);
	} else {
		pthread_join(t, NULL);
	}
}

struct pair {
	pthread_t other;
	int ready;
};

/* Each of two threads asks about the other, at the same moment, first thing. */
static void *ask_other(void *arg)
{
	struct pair *p = arg;
	while (!__atomic_load_n(&p->ready, __ATOMIC_ACQUIRE))
		;
	pthread_barrier_wait(&pair_start);
	char *lo;
	size_t size;
	if (ask(p->other, &lo, &size) == 0 && size > 0)
		__atomic_add_fetch(&asked_other, 1, __ATOMIC_RELAXED);
	pthread_barrier_wait(&pair_start); /* the other is still there while it is asked about */
	allocate(S_site_thread, 10);
	return NULL;
}

static int ask_other_c11(void *arg)
{
	ask_other(arg);
	return -3; /* negative: comes back whole through the int */
}

static int run_first(int threads)
{
	/* The main thread, before it allocates anything. */
	check_val("main_inside", own_frame_inside());
	pthread_attr_t attr;
	if (pthread_attr_init(&attr) != 0 || pthread_attr_setstacksize(&attr, STACK_SIZE) != 0)
		return 5;
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		if (spawn_sized(&t, &attr, first_thing, first_thing_c11, NULL) != 0)
			return 6;
		join(t, 0x5a5a);
	}
	pthread_attr_destroy(&attr);
	allocate(S_site_main, 20);
	int pairs = threads / 2;
	for (int i = 0; i < pairs; i++) {
		pthread_t a, b;
		struct pair pa = {0, 0}, pb = {0, 0};
		pthread_barrier_init(&pair_start, NULL, 2);
		if (use_thrd ? spawn_sized(&a, NULL, ask_other, ask_other_c11, &pa) != 0 ||
		                   spawn_sized(&b, NULL, ask_other, ask_other_c11, &pb) != 0
		             : spawn(&a, ask_other, &pa) != 0 || spawn(&b, ask_other, &pb) != 0)
			return 6;
		pa.other = b;
		pb.other = a;
		__atomic_store_n(&pa.ready, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&pb.ready, 1, __ATOMIC_RELEASE);
		join(a, -3);
		join(b, -3);
		pthread_barrier_destroy(&pair_start);
	}
	check_val("threads_inside", inside);
	check_val("threads_sized", sized);
	check_val("asked_other", asked_other);
	if (bypassing)
		check_val("bypass_in_libc", bypass_in_libc);
	if (use_thrd)
		check_val("c11_returned", c11_returned);
	truth_print("first", sites, NSITES);
	return 0;
}

int main(int argc, char **argv)
{
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	use_thrd = argc >= 5 && strcmp(argv[4], "thrd") == 0;
	if (argc >= 4 && resolve(argv[3]) != 0)
		return 7;
	if (argc >= 3 && strcmp(argv[1], "first") == 0)
		return run_first(atoi(argv[2]));
	return 2;
}
