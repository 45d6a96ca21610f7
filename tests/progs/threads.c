/* threads.c: many threads allocating at once, each from the same call sites, with mixed sizes,
 * freeing about half of what it allocates (some of it in another thread); prints the exact
 * truth per site (truth.h). It must never allocate outside its site_* functions, except what
 * pthread_create itself allocates for each thread (done in spawn(), which the test accounts for).
 *
 * usage: threads [THREADS [ALLOCS_PER_THREAD]]   (default 8 x 200000) */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truth.h"

#define SITES(X)                                                                                   \
	X(site_thread_malloc)                                                                      \
	X(site_thread_calloc)                                                                      \
	X(site_thread_realloc)                                                                     \
	X(site_main_malloc)

#define ENUM(n) S_##n,
#define NAME(n) [S_##n] = {#n, 0, 0, 0, 0},
enum { SITES(ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(NAME)};

/* Per-thread counts, merged into sites[] when the thread ends. */
struct local {
	struct truth_site s[NSITES];
};

static void local_alloc(struct local *l, int site, size_t n)
{
	l->s[site].objects++;
	l->s[site].bytes += n;
	l->s[site].live_objects++;
	l->s[site].live_bytes += n;
}

static void local_free(struct local *l, int site, size_t n)
{
	l->s[site].live_objects--;
	l->s[site].live_bytes -= n;
}

SITE static void *site_thread_malloc(struct local *l, size_t n)
{
	void *p = malloc(n);
	if (p)
		local_alloc(l, S_site_thread_malloc, n);
	return p;
}

SITE static void *site_thread_calloc(struct local *l, size_t k, size_t n)
{
	void *p = calloc(k, n);
	if (p)
		local_alloc(l, S_site_thread_calloc, k * n);
	return p;
}

SITE static void *site_thread_realloc(struct local *l, void *p, int *site, size_t *size, size_t n)
{
	void *q = realloc(p, n);
	if (q) {
		local_free(l, *site, *size);
		local_alloc(l, S_site_thread_realloc, n);
		*site = S_site_thread_realloc;
		*size = n;
	}
	return q;
}

SITE static void *site_main_malloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_main_malloc], n);
	return p;
}

struct worker {
	pthread_t tid;
	long allocs;
	unsigned seed;
	struct local l;
	/* Blocks handed to main to free after the join: a free in another thread. */
	void *handed[64];
	int handed_site[64];
	size_t handed_size[64];
	int nhanded;
};

static size_t pick_size(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	if ((*x & 63) == 0)
		return 1000 + (size_t)(*x >> 20) % 4000;
	return (size_t)(*x >> 24) % 129; /* 0..128, 0 included */
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct local *l = &w->l;
	uint64_t x = 0x9e3779b97f4a7c15ull * (w->seed + 1);
	void *pending = NULL;
	int pending_site = 0;
	size_t pending_size = 0;
	for (long i = 0; i < w->allocs; i++) {
		size_t n = pick_size(&x);
		void *p;
		int site;
		if (i % 8 == 3) {
			p = site_thread_calloc(l, 1 + (size_t)i % 4, n);
			site = S_site_thread_calloc;
			n *= 1 + (size_t)i % 4;
		} else {
			p = site_thread_malloc(l, n);
			site = S_site_thread_malloc;
		}
		if (!p)
			_exit(4);
		if (i % 16 == 5) {
			size_t m = n * 2 + 8;
			p = site_thread_realloc(l, p, &site, &n, m);
			if (!p)
				_exit(4);
			i++; /* a realloc is an allocation of its own */
		}
		/* Odd-numbered blocks are freed one allocation later; even ones stay live. */
		if (pending) {
			free(pending);
			local_free(l, pending_site, pending_size);
			pending = NULL;
		}
		if (i & 1) {
			pending = p, pending_site = site, pending_size = n;
		} else if (w->nhanded < 64 && i % 1000 == 0) {
			w->handed[w->nhanded] = p;
			w->handed_site[w->nhanded] = site;
			w->handed_size[w->nhanded++] = n;
		}
	}
	if (pending) {
		free(pending);
		local_free(l, pending_site, pending_size);
	}
	return NULL;
}

static struct worker workers[256];

/* pthread_create allocates for each thread (glibc's DTV and the like); the test identifies those
 * allocations as the chains through spawn() that reach no site. */
SITE static int spawn(int nthreads)
{
	for (int t = 0; t < nthreads; t++)
		if (pthread_create(&workers[t].tid, NULL, work, &workers[t]) != 0)
			return -1;
	return 0;
}

int main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 8;
	long allocs = argc > 2 ? atol(argv[2]) : 200000;
	if (nthreads < 1 || nthreads > 256 || allocs < 1)
		return 2;
	void *before = site_main_malloc(12345);
	for (int t = 0; t < nthreads; t++) {
		workers[t].allocs = allocs;
		workers[t].seed = (unsigned)t;
	}
	if (spawn(nthreads) != 0)
		return 3;
	for (int t = 0; t < nthreads; t++) {
		struct worker *w = &workers[t];
		pthread_join(w->tid, NULL);
		/* Free in main what the thread allocated: the thread's chain loses it. */
		for (int k = 0; k < w->nhanded; k += 2) {
			free(w->handed[k]);
			local_free(&w->l, w->handed_site[k], w->handed_size[k]);
		}
		for (int s = 0; s < NSITES; s++) {
			sites[s].objects += w->l.s[s].objects;
			sites[s].bytes += w->l.s[s].bytes;
			sites[s].live_objects += w->l.s[s].live_objects;
			sites[s].live_bytes += w->l.s[s].live_bytes;
		}
	}
	free(before);
	truth_free(&sites[S_site_main_malloc], 12345);
	check_val("threads", nthreads);
	truth_print("main", sites, NSITES);
	return 0;
}
