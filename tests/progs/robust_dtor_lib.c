/* robust_dtor_lib.c: a library that allocates in its constructor and, in its destructor, frees
 * that block and allocates (and frees) another. Built twice: linked by robust_dtor (TAG 1) and
 * dlopen'd by it without a dlclose (TAG 2), so both destructors run from the loader's _dl_fini,
 * after the profiler's own destructor. Sizes: 5000 * TAG at ctor_site_TAG, 1002 * TAG at
 * dtor_site_TAG. */
#include <stdlib.h>

#define CAT_(a, b) a##b
#define CAT(a, b)  CAT_(a, b)

static void *kept;

__attribute__((noinline, used)) static void *CAT(ctor_site_, TAG)(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

__attribute__((noinline, used)) static void *CAT(dtor_site_, TAG)(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

__attribute__((constructor)) static void at_load(void)
{
	kept = CAT(ctor_site_, TAG)(5000 * TAG);
}

__attribute__((destructor)) static void at_unload(void)
{
	free(kept);
	free(CAT(dtor_site_, TAG)(1002 * TAG));
}

int CAT(dtor_lib_loaded_, TAG)(void)
{
	return kept != NULL;
}
