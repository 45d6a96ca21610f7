/* report_sites.c: allocations at known call sites with known counts, for the report's view tests
 * (top, tree, peek, export, diff, merge). It prints its own counts as one JSON line; it must
 * never allocate through malloc outside the counted sites before that line is printed.
 *
 * Usage: report_sites [SCALE]      (SCALE multiplies every count; default 1) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

static void *keep[100000];
static size_t nkeep;

/* Keeps the compiler from removing a malloc/free pair (gcc -O2 does). */
#define USE(p) __asm__ volatile("" ::"r"(p) : "memory")

/* leaf_alpha: 100*SCALE mallocs of 32 bytes, the first 40*SCALE stay live. */
NOINLINE static void leaf_alpha(int scale)
{
	for (int i = 0; i < 100 * scale; i++) {
		void *p = malloc(32);
		USE(p);
		if (i < 40 * scale)
			keep[nkeep++] = p;
		else
			free(p);
	}
	__asm__ volatile("" ::: "memory");
}

/* leaf_beta: 50*SCALE callocs of 64 bytes (8 x 8), all freed. */
NOINLINE static void leaf_beta(int scale)
{
	for (int i = 0; i < 50 * scale; i++) {
		void *p = calloc(8, 8);
		USE(p);
		free(p);
	}
	__asm__ volatile("" ::: "memory");
}

/* inner_gamma is always inlined into outer_delta: 7*SCALE mallocs of 1000 bytes, freed. */
static inline __attribute__((always_inline)) void inner_gamma(int scale)
{
	for (int i = 0; i < 7 * scale; i++) {
		void *p = malloc(1000);
		USE(p);
		free(p);
	}
}

NOINLINE static void outer_delta(int scale)
{
	inner_gamma(scale);
	__asm__ volatile("" ::: "memory");
}

/* mid_epsilon calls leaf_alpha and leaf_beta: two paths into the leaves. */
NOINLINE static void mid_epsilon(int scale)
{
	leaf_alpha(scale);
	leaf_beta(scale);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	int scale = argc > 1 ? atoi(argv[1]) : 1;
	if (scale < 1 || scale > 100)
		scale = 1;
	leaf_alpha(scale);  /* main -> leaf_alpha */
	mid_epsilon(scale); /* main -> mid_epsilon -> leaf_alpha, leaf_beta */
	outer_delta(scale);
	printf(
	    "{\"scale\":%d,"
	    "\"leaf_alpha\":{\"objects\":%d,\"bytes\":%d,\"inuse_objects\":%d,\"inuse_bytes\":%d},"
	    "\"leaf_beta\":{\"objects\":%d,\"bytes\":%d},"
	    "\"inner_gamma\":{\"objects\":%d,\"bytes\":%d},"
	    "\"mid_epsilon\":{\"objects\":%d,\"bytes\":%d}}\n",
	    scale, 200 * scale, 6400 * scale, 80 * scale, 2560 * scale, 50 * scale, 3200 * scale,
	    7 * scale, 7000 * scale, 150 * scale, 6400 * scale);
	fflush(stdout);
	for (size_t i = 0; i < nkeep; i++)
		__asm__ volatile("" ::"r"(keep[i]));
	return 0;
}
