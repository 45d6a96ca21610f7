/* size_classes.c: allocations whose size classes the program knows exactly (count, bytes, smallest
 * and largest request of each power-of-two class, per call site), from threads that each make
 * thousands of calls per (site, class): also for the counters' own limit (requests too large for
 * a per-thread entry are counted globally), which a test build of the shim lowers so that every
 * run crosses it.
 *
 * Usage: size_classes [THREADS] [ROUNDS]      (defaults: 2, 3000)
 *
 * Prints two JSON lines: the usual truth (truth.h, role "size_classes"), then {"classes":
 * {"site": [[log2, objects, bytes, min, max], ...]}} over all threads. Sizes come from a fixed
 * pseudo-random sequence per thread; every fourth block stays live until exit. */
#include <pthread.h>
#include <stdint.h>

#include "truth.h"

#define NSITES   3
#define NCLASSES 65
#define MAXLIVE  (1 << 16)

struct cls {
	unsigned long long objects, bytes, min, max;
};

static struct truth_site sites[NSITES] = {
    {.name = "site_small"}, {.name = "site_mixed"}, {.name = "site_calloc"}};
static struct cls classes[NSITES][NCLASSES];
static pthread_mutex_t classes_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned rounds = 3000;

static unsigned log2_class(size_t n)
{
	return n ? 64u - (unsigned)__builtin_clzll(n) : 0u;
}

/* Keeps a call from becoming a tail call (the site's frame must be on the stack). */
#define KEEP(p) __asm__ volatile("" ::"r"(p) : "memory")

SITE static void *site_small(size_t n)
{
	void *p = malloc(n);
	KEEP(p);
	return p;
}

SITE static void *site_mixed(size_t n)
{
	void *p = malloc(n);
	KEEP(p);
	return p;
}

SITE static void *site_calloc(size_t n)
{
	void *p = calloc(n, 1);
	KEEP(p);
	return p;
}

static unsigned long long next_rand(unsigned long long *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* A size for site k: small sizes (1..300) at site_small, up to 256 KiB at the others. */
static size_t pick_size(unsigned k, unsigned long long r)
{
	if (k == 0)
		return 1 + r % 300;
	unsigned cls = 1 + (unsigned)(r >> 20) % 18; /* classes 1..18: 1 byte to 256 KiB */
	size_t lo = (size_t)1 << (cls - 1);
	return lo + (size_t)(r >> 40) % lo;
}

static void *worker(void *arg)
{
	unsigned long long seed = 0x9e3779b97f4a7c15ull * ((unsigned long long)(uintptr_t)arg + 1);
	struct cls local[NSITES][NCLASSES];
	memset(local, 0, sizeof(local));
	void *live[MAXLIVE / 4]; /* on the thread's stack: TLS this size would come from malloc */
	size_t live_size[MAXLIVE / 4];
	unsigned live_site[MAXLIVE / 4];
	unsigned nlive = 0;
	for (unsigned i = 0; i < rounds; i++) {
		for (unsigned k = 0; k < NSITES; k++) {
			size_t n = pick_size(k, next_rand(&seed));
			void *p = k == 0 ? site_small(n) : k == 1 ? site_mixed(n) : site_calloc(n);
			if (!p) {
				check_val("failed", 1);
				continue;
			}
			((volatile char *)p)[0] = 1;
			truth_alloc(&sites[k], n);
			struct cls *c = &local[k][log2_class(n)];
			if (!c->objects || n < c->min)
				c->min = n;
			if (n > c->max)
				c->max = n;
			c->objects++;
			c->bytes += n;
			if (i % 4 == 0 && nlive < MAXLIVE / 4) {
				live[nlive] = p;
				live_size[nlive] = n;
				live_site[nlive++] = k;
			} else {
				free(p);
				truth_free(&sites[k], n);
			}
		}
	}
	pthread_mutex_lock(&classes_lock);
	for (unsigned k = 0; k < NSITES; k++)
		for (unsigned c = 0; c < NCLASSES; c++) {
			struct cls *g = &classes[k][c], *l = &local[k][c];
			if (!l->objects)
				continue;
			if (!g->objects || l->min < g->min)
				g->min = l->min;
			if (l->max > g->max)
				g->max = l->max;
			g->objects += l->objects;
			g->bytes += l->bytes;
		}
	pthread_mutex_unlock(&classes_lock);
	/* Half of the kept blocks are freed now, the rest stay live to the end. */
	for (unsigned j = 0; j < nlive; j += 2) {
		free(live[j]);
		truth_free(&sites[live_site[j]], live_size[j]);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned threads = argc > 1 ? (unsigned)atoi(argv[1]) : 2;
	if (argc > 2)
		rounds = (unsigned)atoi(argv[2]);
	if (threads < 1 || threads > 16 || rounds < 1) {
		fprintf(stderr, "usage: size_classes [THREADS 1-16] [ROUNDS]\n");
		return 2;
	}
	pthread_t t[16];
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i) != 0)
			return 1;
	for (unsigned i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	truth_print("size_classes", sites, NSITES);
	/* The classes, on a JSON line of their own after the truth line. */
	truth_len = 0;
	truth_put("{\"classes\":{");
	for (unsigned k = 0; k < NSITES; k++) {
		truth_put("%s\"%s\":[", k ? "," : "", sites[k].name);
		int first = 1;
		for (unsigned c = 0; c < NCLASSES; c++) {
			struct cls *g = &classes[k][c];
			if (!g->objects)
				continue;
			truth_put("%s[%u,%llu,%llu,%llu,%llu]", first ? "" : ",", c, g->objects,
			          g->bytes, g->min, g->max);
			first = 0;
		}
		truth_put("]");
	}
	truth_put("}}\n");
	if (write(1, truth_buf, truth_len) != (ssize_t)truth_len)
		return 3;
	return 0;
}
