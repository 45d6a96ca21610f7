/* report_rustnames.c: functions named as rustc names them in its legacy mangling (the default
 * through Rust 1.7x): "_ZN" path elements with "$LT$"-style escapes and ".." for "::", a hash
 * element "h" + 16 hex digits, and LLVM's ThinLTO suffix ".llvm.N" on one of them. The innermost
 * grows a buffer by doubling under hashbrown's growth function name, as a Rust HashMap does;
 * one more allocates under a trait method of a reference type, and a vector grows by realloc
 * under RawVec's growth functions, as a Rust Vec<T> does on push. Prints its allocation counts
 * as one JSON line.
 *
 * usage: report_rustnames STEPS */
#include <stdlib.h>

#include "truth.h"

#define RESERVE_REHASH                                                                             \
	"_ZN9hashbrown3raw21RawTable$LT$T$C$A$GT$14reserve_rehash17h0123456789abcdefE"
#define FROM_ITER                                                                                  \
	"_ZN95_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..iter..traits..collect..FromIterator$" \
	"LT$"                                                                                      \
	"T$GT$$GT$9from_iter17h0011223344556677E"
#define CALL_ONCE   "_ZN4core3ops8function6FnOnce9call_once17h8899aabbccddeeffE.llvm.12345"
#define GROW_ONE    "_ZN5alloc7raw_vec19RawVec$LT$T$C$A$GT$8grow_one17hc3643e08d81861e5E"
#define FINISH_GROW "_ZN5alloc7raw_vec20RawVecInner$LT$A$GT$11finish_grow17h693aba6790000e33E"
#define WRITE_STR                                                                                  \
	"_ZN50_$LT$$RF$mut$u20$W$u20$as$u20$core..fmt..Write$GT$9write_str17hfedcba9876543210E"

static struct truth_site site = {"reserve_rehash", 0, 0, 0, 0};

SITE void *reserve_rehash(void *old, size_t n) __asm__(RESERVE_REHASH);
SITE void *from_iter(int steps) __asm__(FROM_ITER);
SITE void *call_once(int steps) __asm__(CALL_ONCE);
SITE void *write_str(size_t n) __asm__(WRITE_STR);
SITE void *grow_one(void *old, size_t cap) __asm__(GROW_ONE);
SITE void *finish_grow(void *old, size_t n) __asm__(FINISH_GROW);

static struct truth_site other = {"write_str", 0, 0, 0, 0};
static struct truth_site vec = {"finish_grow", 0, 0, 0, 0};

SITE void *finish_grow(void *old, size_t n)
{
	void *p = realloc(old, n);
	if (!p)
		exit(1);
	truth_alloc(&vec, n);
	if (old)
		truth_free(&vec, n / 2);
	return p;
}

/* A Vec<u64> of capacity cap pushed one more: room for twice as many (at least 4) */
SITE void *grow_one(void *old, size_t cap)
{
	void *p = finish_grow(old, (cap ? 2 * cap : 4) * 8);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return p;
}

SITE void *write_str(size_t n)
{
	void *p = malloc(n);
	if (!p)
		exit(1);
	truth_alloc(&other, n);
	return p;
}

SITE void *reserve_rehash(void *old, size_t n)
{
	void *p = malloc(n);
	if (!p)
		exit(1);
	truth_alloc(&site, n);
	if (old) {
		free(old);
		truth_free(&site, n / 2);
	}
	return p;
}

SITE void *from_iter(int steps)
{
	void *p = NULL;
	for (int i = 0; i < steps; i++)
		p = reserve_rehash(p, (size_t)64 << i);
	return p;
}

SITE void *call_once(int steps)
{
	void *p = from_iter(steps);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return p;
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 10;
	void *p = call_once(steps);
	void *q = write_str(100);
	void *v = NULL;
	for (size_t cap = 0; cap < ((size_t)4 << steps); cap = cap ? 2 * cap : 4)
		v = grow_one(v, cap);
	struct truth_site sites[3] = {site, other, vec};
	truth_print("rustnames", sites, 3);
	free(p);
	free(q);
	free(v);
	return 0;
}
