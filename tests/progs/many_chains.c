/* many_chains.c: makes many distinct call chains from many distinct return addresses, on several
 * threads at once, so that every table the shim keeps must grow while it counts: its per-thread
 * counters (several size classes a chain, past the point where a thread's table is flushed into
 * the global one), its table of distinct frames (over 300 return addresses), its list of chains
 * and its arena. Prints the truth (truth.h): the leaf site's counts and, as checks, the number of
 * chains and the allocations each chain makes.
 *
 * Chain i (0 <= i < CHAINS) runs through three stage functions out of NSTAGE, chosen by the
 * digits of i in base NSTAGE and a third one derived from i, and allocates REPS blocks of
 * 24 << r + i % 8 bytes (r < REPS: one size class each) at site_leaf; every second block is
 * freed at once, the rest stay live. Every thread makes every chain, so a chain's counts come
 * from all of them. pthread_create's own allocation is made in spawn().
 *
 * usage: many_chains [THREADS [CHAINS]]   (default 2 x 12000) */
#include <pthread.h>
#include <stdlib.h>

#include "truth.h"

#define NSTAGE 320
#define LEVELS 3
#define REPS   6

static struct truth_site sites[] = {{"site_leaf", 0, 0, 0, 0}};
static unsigned long chains = 12000;

SITE static void *site_leaf(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[0], n);
	return p;
}

typedef int (*stage_fn)(unsigned level, unsigned long i);
static const stage_fn stages[NSTAGE];

/* The stage taken at LEVEL for chain i. */
static unsigned digit(unsigned level, unsigned long i)
{
	if (level == 2)
		return (unsigned)(i % NSTAGE);
	if (level == 1)
		return (unsigned)(i / NSTAGE % NSTAGE);
	return (unsigned)((i * 7 + 3) % NSTAGE);
}

/* The leaf: REPS blocks, every second one freed. */
static int leaf(unsigned long i)
{
	for (unsigned r = 0; r < REPS; r++) {
		size_t n = ((size_t)24 << r) + i % 8;
		char *p = site_leaf(n);
		if (!p)
			return -1;
		p[0] = (char)r;
		if (r % 2 == 0) {
			free(p);
			truth_free(&sites[0], n);
		}
	}
	return 0;
}

static int next(unsigned level, unsigned long i)
{
	return level ? stages[digit(level - 1, i)](level - 1, i) : leaf(i);
}

/* NSTAGE functions, each with one call site of its own; not inlined, not a tail call. */
#define STAGE(n)                                                                                   \
	SITE static int stage_##n(unsigned level, unsigned long i)                                 \
	{                                                                                          \
		int r = next(level, i);                                                            \
		__asm__ volatile("" ::: "memory");                                                 \
		return r;                                                                          \
	}
#define STAGE8(a)                                                                                  \
	STAGE(a##0)                                                                                \
	STAGE(a##1) STAGE(a##2) STAGE(a##3) STAGE(a##4) STAGE(a##5) STAGE(a##6) STAGE(a##7)
STAGE8(10)
STAGE8(11)
STAGE8(12)
STAGE8(13)
STAGE8(14)
STAGE8(15)
STAGE8(16)
STAGE8(17)
STAGE8(18)
STAGE8(19)
STAGE8(20)
STAGE8(21)
STAGE8(22)
STAGE8(23)
STAGE8(24)
STAGE8(25)
STAGE8(26)
STAGE8(27)
STAGE8(28)
STAGE8(29)
STAGE8(30)
STAGE8(31)
STAGE8(32)
STAGE8(33)
STAGE8(34)
STAGE8(35)
STAGE8(36)
STAGE8(37)
STAGE8(38)
STAGE8(39)
STAGE8(40)
STAGE8(41)
STAGE8(42)
STAGE8(43)
STAGE8(44)
STAGE8(45)
STAGE8(46)
STAGE8(47)
STAGE8(48)
STAGE8(49)

#define REF8(a)                                                                                    \
	stage_##a##0, stage_##a##1, stage_##a##2, stage_##a##3, stage_##a##4, stage_##a##5,        \
	    stage_##a##6, stage_##a##7
static const stage_fn stages[NSTAGE] = {
    REF8(10), REF8(11), REF8(12), REF8(13), REF8(14), REF8(15), REF8(16), REF8(17),
    REF8(18), REF8(19), REF8(20), REF8(21), REF8(22), REF8(23), REF8(24), REF8(25),
    REF8(26), REF8(27), REF8(28), REF8(29), REF8(30), REF8(31), REF8(32), REF8(33),
    REF8(34), REF8(35), REF8(36), REF8(37), REF8(38), REF8(39), REF8(40), REF8(41),
    REF8(42), REF8(43), REF8(44), REF8(45), REF8(46), REF8(47), REF8(48), REF8(49),
};

static void *worker(void *arg)
{
	(void)arg;
	for (unsigned long i = 0; i < chains; i++)
		if (next(LEVELS, i) != 0)
			return (void *)1;
	return NULL;
}

SITE static int spawn(pthread_t *t)
{
	int r = pthread_create(t, NULL, worker, NULL);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return r;
}

int main(int argc, char **argv)
{
	unsigned long nthreads = argc > 1 ? strtoul(argv[1], NULL, 10) : 2;
	if (argc > 2)
		chains = strtoul(argv[2], NULL, 10);
	if (nthreads < 1 || nthreads > 16 || chains < 1 || chains > (unsigned long)NSTAGE * NSTAGE)
		return 2;
	pthread_t t[16];
	for (unsigned long k = 0; k < nthreads; k++)
		if (spawn(&t[k]) != 0)
			return 3;
	for (unsigned long k = 0; k < nthreads; k++) {
		void *r;
		if (pthread_join(t[k], &r) != 0 || r)
			return 4;
	}
	check_val("chains", (long long)chains);
	check_val("allocs_per_chain", (long long)(nthreads * REPS));
	truth_print("main", sites, 1);
	return 0;
}
