/* robust_dlreuse.c: dlopens library A (argv[1]), allocates N_A blocks through it and dlcloses it,
 * then dlopens library B (argv[2]), which the loader usually maps where A was, and allocates N_B
 * blocks through it, from the same call site. The two libraries are robust_dlib.c built twice:
 * the same code at the same offsets, so B's return addresses are A's. Prints whether B's
 * lib_alloc lies where A's did (the test needs that) and the truth per site. The program's own
 * site_main allocates from one call site before A, between A and B and after B: each dlclose
 * starts a new epoch of chain keys, and its chain must still be one chain. With a third argument,
 * that file is renamed over argv[2] before B is loaded: a plugin rebuilt and loaded again under
 * its own name (argv[1] and argv[2] the same path). */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_lib_a)                                                                              \
	X(site_lib_b)                                                                              \
	X(site_main)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

typedef int (*lib_alloc_fn)(void **, int, size_t);

enum { N_A = 100, N_B = 7 };
static void *blocks[N_A];

/* One call site for both libraries. */
static __attribute__((noinline)) int call(lib_alloc_fn fn, int n)
{
	int got = fn(blocks, n, 64);
	__asm__ volatile("" ::: "memory");
	return got;
}

/* n blocks of 48 bytes from one call site, freed. */
static __attribute__((noinline)) void site_main(int n)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(48);
		if (!p)
			exit(4);
		truth_alloc(&sites[S_site_main], 48);
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
		truth_free(&sites[S_site_main], 48);
	}
}

static uintptr_t use(const char *path, int site, int n)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return 0;
	lib_alloc_fn fn = (lib_alloc_fn)dlsym(h, "lib_alloc");
	if (!fn || call(fn, n) != n)
		return 0;
	for (int i = 0; i < n; i++) {
		truth_alloc(&sites[site], 64 + (size_t)i);
		free(blocks[i]);
		truth_free(&sites[site], 64 + (size_t)i);
	}
	dlclose(h);
	return (uintptr_t)fn;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	/* From one call site: the whole stack of B's allocations, and of the loader's for B, is
	 * then A's, return address for return address. */
	uintptr_t at[2];
	for (int k = 0; k < 3; k++) {
		site_main(5 + k);
		if (k == 1 && argc > 3 && rename(argv[3], argv[2]) != 0)
			return 5;
		if (k < 2 && !(at[k] = use(argv[1 + k], k == 0 ? S_site_lib_a : S_site_lib_b,
		                           k == 0 ? N_A : N_B)))
			return 3;
	}
	printf("{\"role\":\"where\",\"same_address\":%d}\n", at[0] == at[1]);
	truth_print("main", sites, NSITES);
	return 0;
}
