/* robust_build.c: one program built many ways (PIE or not, frame pointers or not, -O0 or -O3,
 * stripped or not) to check that every build gives exact counts and whole, correct chains: the
 * allocation at depth D (size 2^(D+4), so its size class names its depth) is made under exactly
 * D+1 frames of recurse_level. It must never allocate outside its site_* functions.
 *
 * usage: robust_build [ROUNDS] */
#include <stdlib.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_malloc)                                                                             \
	X(site_calloc)                                                                             \
	X(site_realloc)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

#define DEPTHS 6
static void *keep[DEPTHS][3];

SITE static void *site_malloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_malloc], n);
	return p;
}

SITE static void *site_calloc(size_t n)
{
	void *p = calloc(1, n);
	if (p)
		truth_alloc(&sites[S_site_calloc], n);
	return p;
}

/* Grows a block by realloc: one object of n bytes, the old one released. */
SITE static void *site_realloc(void *old, size_t oldn, size_t n)
{
	void *p = realloc(old, n);
	if (p) {
		if (old)
			truth_free(&sites[S_site_realloc], oldn);
		truth_alloc(&sites[S_site_realloc], n);
	}
	return p;
}

SITE static void recurse_level(int depth, int at)
{
	if (depth < at) {
		recurse_level(depth + 1, at);
		__asm__ volatile("" ::: "memory"); /* not a tail call */
		return;
	}
	size_t n = (size_t)1 << (depth + 4);
	void *a = site_malloc(n);
	void *b = site_calloc(n);
	keep[depth][2] = site_realloc(keep[depth][2], n, n);
	if (keep[depth][0]) {
		free(keep[depth][0]);
		truth_free(&sites[S_site_malloc], n);
	}
	keep[depth][0] = a;
	free(b);
	truth_free(&sites[S_site_calloc], n);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 10;
	for (int r = 0; r < rounds; r++)
		for (int d = 0; d < DEPTHS; d++)
			recurse_level(0, d);
	truth_print("main", sites, NSITES);
	return 0;
}
