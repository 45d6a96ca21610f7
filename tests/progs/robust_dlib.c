/* robust_dlib.c: a library the robustness tests dlopen and dlclose. Built twice, with
 * -DVARIANT=a and -DVARIANT=b, so each copy's allocating function has its own name
 * (site_lib_a, site_lib_b). It only allocates when asked; never at load or unload. */
#include <stdlib.h>

#include "truth.h"

#define CAT2(a, b) a##b
#define CAT(a, b)  CAT2(a, b)
#define SITE_FN    CAT(site_lib_, VARIANT)

SITE static void *SITE_FN(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return p;
}

/* N blocks of SIZE + i bytes into OUT; returns how many it got. */
int lib_alloc(void **out, int n, size_t size)
{
	int got = 0;
	for (int i = 0; i < n; i++) {
		out[i] = SITE_FN(size + (size_t)i);
		got += out[i] != NULL;
	}
	return got;
}
