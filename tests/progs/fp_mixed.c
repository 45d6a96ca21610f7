/* fp_mixed.c: functions with and without frame pointers on one call path, for the frame-pointer
 * unwinder (MAPPROF_UNWIND=fp), which must never trust a frame pointer a function did not keep.
 * Built with -fno-omit-frame-pointer, except the mid_* functions marked NOFP:
 *   - mid_keep leaves rbp alone, so rbp still holds its caller's frame: a trusting walk would
 *     step from mid_keep straight to its caller's caller and lose a frame;
 *   - mid_busy points rbp at two words of its own that are no frame record;
 *   - mid_fp keeps a frame pointer.
 * Each is called from top_a and top_b, and mid_keep also from via, directly and through top_k;
 * every path allocates a size of its own, so a test can check that each chain names exactly its
 * path: site_leaf, mid_*, its callers, main. The paths alternate in every round, so the unwinder's
 * caches see the same return addresses on different paths over and over.
 *
 * usage: fp_mixed [ROUNDS] */
#include <stdint.h>
#include <stdlib.h>

#include "truth.h"

#if defined(__clang__)
#define NOFP SITE /* clang has no per-function switch: these keep frame pointers there */
#else
#define NOFP SITE __attribute__((optimize("omit-frame-pointer")))
#endif

static struct truth_site sites[] = {{"site_leaf", 0, 0, 0, 0}};
static void *volatile sink;

SITE static void site_leaf(size_t n)
{
	void *p = malloc(n);
	if (p) {
		truth_alloc(&sites[0], n);
		free(p);
		truth_free(&sites[0], n);
	}
	__asm__ volatile("" ::: "memory");
}

NOFP static void mid_keep(size_t n)
{
	site_leaf(n);
	__asm__ volatile("" ::: "memory"); /* not a tail call */
}

NOFP static void mid_busy(size_t n, long r)
{
	/* rbp holds the address of two words that are no frame record: a walk that trusted it
	 * would take r + 1 for a return address and r for the next frame. */
	long local[2] = {r, r + 1};
#if defined(__x86_64__) && !defined(__clang__)
	register long *fake __asm__("rbp") = local;
	__asm__ volatile("" : "+r"(fake)::"memory");
	site_leaf(n);
	__asm__ volatile("" : "+r"(fake)::"memory");
	sink = fake;
#else
	sink = local;
	site_leaf(n);
	__asm__ volatile("" ::: "memory");
#endif
}

SITE static void mid_fp(size_t n)
{
	site_leaf(n);
	__asm__ volatile("" ::: "memory");
}

SITE static void top_a(int mid, long r)
{
	if (mid == 0)
		mid_keep(16);
	else if (mid == 1)
		mid_busy(32, r);
	else
		mid_fp(48);
	__asm__ volatile("" ::: "memory");
}

SITE static void top_b(int mid, long r)
{
	if (mid == 0)
		mid_keep(64);
	else if (mid == 1)
		mid_busy(80, r);
	else
		mid_fp(96);
	__asm__ volatile("" ::: "memory");
}

/* One call instruction in via calls either top_k or mid_keep, so both return to the same
 * address. A trusting walk of via -> top_k -> mid_keep -> site_leaf loses top_k (mid_keep leaves
 * rbp alone) and yields exactly the chain of via -> mid_keep -> site_leaf, a real one. */
SITE static void top_k(size_t n)
{
	mid_keep(n);
	__asm__ volatile("" ::: "memory");
}

static void (*volatile via_fns[2])(size_t) = {top_k, mid_keep};
static volatile int via_calls = 2;

SITE static void via(int which, size_t n)
{
	via_fns[which](n);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? atol(argv[1]) : 1000;
	for (long r = 0; r < rounds; r++) {
		for (int mid = 0; mid < 3; mid++) {
			top_a(mid, r);
			top_b(mid, r);
		}
		for (int w = 0; w < via_calls; w++) /* one call site of via for both */
			via(w, w ? 144 : 128);
	}
	truth_print("main", sites, 1);
	return 0;
}
