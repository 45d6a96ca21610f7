/* alloc_pairs.c: benchmark workload 1: malloc+free pairs of mixed small sizes (16 sizes, 16-512
 * bytes) from 32 call sites at stack depths 8-20, on one or more threads. Prints its exact
 * allocation count as one JSON line; it must never allocate anything but the counted blocks while
 * it runs.
 *
 * Usage: alloc_pairs [THREADS] [PAIRS_PER_THREAD]      (defaults: 1, 4000000)
 *
 * Each thread keeps a ring of 256 live blocks: every step frees the oldest block and allocates a
 * new one at a random site, depth and size, so frees come in allocation order, not LIFO. Build
 * with -O2 -fno-omit-frame-pointer so MAPPROF_UNWIND=fp has frame pointers to walk.
 *
 * Sizes come from a table of 16, not from a range: heaptrack 1.4's heaptrack_interpret aborts
 * (std::bad_alloc) once a run has some 40,000 distinct (size, call chain) pairs, and this
 * workload must run under it. */
#include <pthread.h>

#include "bench.h"

#define NSITES 32
#define RING   256
#define MINDEP 2 /* frames: site, MINDEP+1.. descend, run, worker_main, start_thread, clone3 */
#define NDEPTH 13

static const unsigned short sizes[16] = {16,  24,  32,  40,  48,  64,  80,  96,
                                         128, 160, 192, 256, 320, 384, 448, 512};

typedef void *(*site_fn)(size_t);

/* 32 distinct call sites of malloc, one per function. */
#define SITE(n)                                                                                    \
	static BENCH_NOINLINE void *site_##n(size_t size)                                          \
	{                                                                                          \
		char *p = malloc(size);                                                            \
		if (p)                                                                             \
			p[0] = (char)n;                                                            \
		BENCH_KEEP(p);                                                                     \
		return p;                                                                          \
	}
#define SITES8(a)                                                                                  \
	SITE(a##0) SITE(a##1) SITE(a##2) SITE(a##3) SITE(a##4) SITE(a##5) SITE(a##6) SITE(a##7)
SITES8(1)
SITES8(2)
SITES8(3)
SITES8(4)

#define REF8(a)                                                                                    \
	site_##a##0, site_##a##1, site_##a##2, site_##a##3, site_##a##4, site_##a##5, site_##a##6, \
	    site_##a##7
static const site_fn sites[NSITES] = {REF8(1), REF8(2), REF8(3), REF8(4)};

static BENCH_NOINLINE void *descend(unsigned depth, unsigned site, size_t size)
{
	void *p = depth ? descend(depth - 1, site, size) : sites[site](size);
	BENCH_KEEP(p);
	return p;
}

struct worker {
	pthread_t thread;
	unsigned long long seed;
	unsigned long long pairs;
	unsigned long long allocs;
	int failed;
};

static BENCH_NOINLINE void run(struct worker *w)
{
	void *ring[RING] = {0};
	unsigned long long s = w->seed;
	for (unsigned long long i = 0; i < w->pairs; i++) {
		unsigned long long r = bench_rand(&s);
		size_t size = sizes[r % 16];
		unsigned site = (unsigned)(r >> 20) % NSITES;
		unsigned depth = MINDEP + (unsigned)(r >> 40) % NDEPTH;
		unsigned slot = (unsigned)(i % RING);
		free(ring[slot]);
		ring[slot] = descend(depth, site, size);
		if (!ring[slot])
			w->failed = 1;
		w->allocs++;
	}
	for (unsigned i = 0; i < RING; i++)
		free(ring[i]);
}

static void *worker_main(void *arg)
{
	run(arg);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *usage = "[THREADS] [PAIRS_PER_THREAD]";
	unsigned long long threads = bench_arg(argc, argv, 1, 1, usage);
	unsigned long long pairs = bench_arg(argc, argv, 2, 4000000, usage);
	if (threads > 64) {
		fprintf(stderr, "%s: at most 64 threads\n", argv[0]);
		return 1;
	}
	static struct worker workers[64];
	for (unsigned i = 0; i < threads; i++) {
		workers[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
		workers[i].pairs = pairs;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			fprintf(stderr, "%s: cannot create a thread\n", argv[0]);
			return 1;
		}
	}
	unsigned long long allocs = 0;
	int failed = 0;
	for (unsigned i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		allocs += workers[i].allocs;
		failed |= workers[i].failed;
	}
	if (failed) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	printf("{\"workload\":\"alloc_pairs\",\"threads\":%llu,\"allocs\":%llu}\n", threads,
	       allocs);
	return 0;
}
