/* thread_waves.c: waves of short-lived threads: in each wave WIDTH threads start, wait for each
 * other (so that all of them are alive at once), each allocates from two call sites reached by
 * paths of their own, frees the first site's blocks and hands the second's to main, which frees
 * them after the join. A thread's first walk is its first allocation; its stack is then given to
 * the next wave (glibc keeps a cache of them). Prints the exact truth per site (truth.h); its
 * only other allocations are pthread_create's (made in spawn()).
 *
 * usage: thread_waves WIDTH:WAVES[,WIDTH:WAVES...] ALLOCS_PER_SITE */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truth.h"

#define SITES(X)                                                                                   \
	X(site_wave_malloc)                                                                        \
	X(site_wave_calloc)

#define ENUM(n) S_##n,
#define NAME(n) [S_##n] = {#n, 0, 0, 0, 0},
enum { SITES(ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(NAME)};

#define MAX_WIDTH 512
#define MAX_KEEP  64

SITE static void *site_wave_malloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_wave_malloc], n);
	return p;
}

SITE static void *site_wave_calloc(size_t n)
{
	void *p = calloc(1, n);
	if (p)
		truth_alloc(&sites[S_site_wave_calloc], n);
	return p;
}

SITE static void *path_malloc(size_t n)
{
	void *p = site_wave_malloc(n);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

SITE static void *path_calloc(size_t n)
{
	void *p = site_wave_calloc(n);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

struct worker {
	pthread_t tid;
	unsigned seed;
	int failed;
	void *kept[MAX_KEEP];
	size_t kept_size[MAX_KEEP];
};

static pthread_barrier_t barrier;
static long per_site;

SITE static void *work(void *arg)
{
	struct worker *w = arg;
	pthread_barrier_wait(&barrier);
	for (long i = 0; i < per_site; i++) {
		size_t n = 16 + (w->seed * 7 + (unsigned)i * 13) % 200;
		void *p = path_malloc(n);
		void *q = path_calloc(n + 1);
		if (!p || !q) {
			w->failed = 1;
			break;
		}
		memset(p, 1, n);
		free(p);
		truth_free(&sites[S_site_wave_malloc], n);
		w->kept[i] = q;
		w->kept_size[i] = n + 1;
	}
	return NULL;
}

static struct worker workers[MAX_WIDTH];

SITE static int spawn(struct worker *w)
{
	int r = pthread_create(&w->tid, NULL, work, w);
	__asm__ volatile("" : : "r"(r) : "memory"); /* no tail call: spawn keeps its frame */
	return r;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	per_site = atol(argv[2]);
	if (per_site < 1 || per_site > MAX_KEEP)
		return 2;
	long threads = 0, waves = 0;
	for (char *s = argv[1]; *s;) {
		char *end;
		long width = strtol(s, &end, 10), count;
		if (*end != ':' || width < 1 || width > MAX_WIDTH)
			return 2;
		count = strtol(end + 1, &end, 10);
		if (count < 1 || (*end && *end != ','))
			return 2;
		s = *end ? end + 1 : end;
		for (long k = 0; k < count; k++, waves++) {
			if (pthread_barrier_init(&barrier, NULL, (unsigned)width) != 0)
				return 1;
			for (long i = 0; i < width; i++) {
				workers[i] = (struct worker){.seed = (unsigned)(threads + i)};
				if (spawn(&workers[i]) != 0)
					return 1;
			}
			for (long i = 0; i < width; i++) {
				pthread_join(workers[i].tid, NULL);
				if (workers[i].failed)
					return 1;
				for (long j = 0; j < per_site; j++) {
					free(workers[i].kept[j]);
					truth_free(&sites[S_site_wave_calloc],
					           workers[i].kept_size[j]);
				}
			}
			pthread_barrier_destroy(&barrier);
			threads += width;
		}
	}
	check_val("threads", threads);
	check_val("waves", waves);
	truth_print("main", sites, NSITES);
	return 0;
}
