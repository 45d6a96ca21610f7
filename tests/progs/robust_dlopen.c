/* robust_dlopen.c: allocates through a library it dlopens and then dlcloses before exit (so its
 * frames must still symbolize), then through a second library that the loader may well put at
 * the same address, kept loaded. Frees some of the first library's blocks after its dlclose.
 * Prints its truth (sites site_lib_a, site_lib_b, site_main); allocations made by dlopen itself
 * (the loader's) happen in load(), at no site.
 *
 * usage: robust_dlopen LIB_A LIB_B */
#include <dlfcn.h>
#include <stdlib.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_lib_a)                                                                              \
	X(site_lib_b)                                                                              \
	X(site_main)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

typedef int (*lib_alloc_fn)(void **, int, size_t);

static void *blocks_a[200], *blocks_b[100];

SITE static void *site_main(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_main], n);
	return p;
}

/* dlopen allocates (link maps, scopes): the loader's own allocations, through this frame. */
SITE static void *load(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	__asm__ volatile("" ::: "memory");
	return h;
}

SITE static int unload(void *h)
{
	int r = dlclose(h);
	__asm__ volatile("" ::: "memory");
	return r;
}

static int use(const char *path, int site, void **blocks, int n, size_t size, int close_it)
{
	void *h = load(path);
	if (!h)
		return -1;
	lib_alloc_fn fn = (lib_alloc_fn)dlsym(h, "lib_alloc");
	if (!fn)
		return -1;
	int got = fn(blocks, n, size);
	for (int i = 0; i < got; i++)
		truth_alloc(&sites[site], size + (size_t)i);
	if (close_it && unload(h) != 0)
		return -1;
	return got;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	void *m = site_main(77);
	if (use(argv[1], S_site_lib_a, blocks_a, 200, 40, 1) != 200)
		return 3;
	/* The library is gone; its blocks are not: free half of them. */
	for (int i = 0; i < 200; i += 2) {
		free(blocks_a[i]);
		truth_free(&sites[S_site_lib_a], 40 + (size_t)i);
	}
	if (use(argv[2], S_site_lib_b, blocks_b, 100, 500, 0) != 100)
		return 3;
	free(m);
	truth_free(&sites[S_site_main], 77);
	truth_print("main", sites, NSITES);
	return 0;
}
