/* live_churn.c: the live-block map under churn. THREADS threads (1 or more) run ROUNDS random
 * steps each over one shared array of SLOTS blocks: an empty slot gets a block from one of three
 * sites (small, large, or 64..4096-byte aligned), a full one is freed, whichever thread allocated
 * it. So the map grows, overflows its buckets and deletes from overflowed ones, and one thread
 * frees another's blocks. The blocks left at the end stay live: the dump's inuse counts must
 * equal the program's.
 *
 * Usage: live_churn THREADS ROUNDS SLOTS */
#include <pthread.h>
#include <stdint.h>

#include "truth.h"

#define MAX_SLOTS 400000
#define STRIPES   1024

static struct truth_site sites[] = {
    {"site_small", 0, 0, 0, 0}, {"site_large", 0, 0, 0, 0}, {"site_aligned", 0, 0, 0, 0}};

/* Each site counts its block itself (after the call, so the call is not a tail call). */
static void *counted(int site, void *p, size_t n)
{
	if (p)
		truth_alloc(&sites[site], n);
	return p;
}

SITE static void *site_small(size_t n)
{
	return counted(0, malloc(n), n);
}

SITE static void *site_large(size_t n)
{
	return counted(1, malloc(n), n);
}

SITE static void *site_aligned(size_t align, size_t n)
{
	void *p = NULL;
	int r = posix_memalign(&p, align, n);
	return counted(2, r == 0 ? p : NULL, n);
}

static void *slot_ptr[MAX_SLOTS];
static uint32_t slot_size[MAX_SLOTS];
static uint8_t slot_site[MAX_SLOTS];
static pthread_mutex_t stripe[STRIPES];
static unsigned long long rounds, nslots;
static int failed;

static unsigned long long next(unsigned long long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *worker(void *arg)
{
	unsigned long long s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
	for (unsigned long long i = 0; i < rounds; i++) {
		unsigned long long r = next(&s);
		size_t k = (size_t)(r % nslots);
		pthread_mutex_lock(&stripe[k % STRIPES]);
		if (slot_ptr[k]) {
			free(slot_ptr[k]);
			truth_free(&sites[slot_site[k]], slot_size[k]);
			slot_ptr[k] = NULL;
		} else {
			unsigned site = (unsigned)(r >> 32) % 3;
			size_t n = site == 0   ? 1 + (r >> 40) % 300
			           : site == 1 ? 1000 + (r >> 40) % 4000
			                       : 64 + (r >> 40) % 960;
			void *p = site == 0   ? site_small(n)
			          : site == 1 ? site_large(n)
			                      : site_aligned((size_t)64 << ((r >> 50) % 7), n);
			if (!p) {
				failed = 1;
			} else {
				slot_ptr[k] = p;
				slot_size[k] = (uint32_t)n;
				slot_site[k] = (uint8_t)site;
			}
		}
		pthread_mutex_unlock(&stripe[k % STRIPES]);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s THREADS ROUNDS SLOTS\n", argv[0]);
		return 2;
	}
	unsigned long long threads = strtoull(argv[1], NULL, 10);
	rounds = strtoull(argv[2], NULL, 10);
	nslots = strtoull(argv[3], NULL, 10);
	if (threads < 1 || threads > 16 || nslots < 1 || nslots > MAX_SLOTS) {
		fprintf(stderr, "%s: 1-16 threads, 1-%d slots\n", argv[0], MAX_SLOTS);
		return 2;
	}
	for (int i = 0; i < STRIPES; i++)
		pthread_mutex_init(&stripe[i], NULL);
	pthread_t t[16];
	for (unsigned long long i = 1; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
			fprintf(stderr, "%s: cannot create a thread\n", argv[0]);
			return 1;
		}
	worker((void *)0);
	for (unsigned long long i = 1; i < threads; i++)
		pthread_join(t[i], NULL);
	if (failed) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	unsigned long long live = 0;
	for (unsigned long long k = 0; k < nslots; k++)
		live += slot_ptr[k] != NULL;
	check_val("live", (long long)live);
	truth_print("churn", sites, 3);
	return 0;
}
