/* report_rustnames.c: functions named as rustc names them in its legacy mangling (the default
 * through Rust 1.7x): "_ZN" path elements with "$LT$"-style escapes and ".." for "::", a hash
 * element "h" + 16 hex digits, and LLVM's ThinLTO suffix ".llvm.N" on one of them. The innermost
 * grows a buffer by doubling under hashbrown's growth function name, as a Rust HashMap does;
 * one more allocates under a trait method of a reference type. Prints its allocation counts as
 * one JSON line.
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
#define CALL_ONCE "_ZN4core3ops8function6FnOnce9call_once17h8899aabbccddeeffE.llvm.12345"
#define WRITE_STR                                                                                  \
	"_ZN50_$LT$$RF$mut$u20$W$u20$as$u20$core..fmt..Write$GT$9write_str17hfedcba9876543210E"

static struct truth_site site = {"reserve_rehash", 0, 0, 0, 0};

SITE void *reserve_rehash(void *old, size_t n) __asm__(RESERVE_REHASH);
SITE void *from_iter(int steps) __asm__(FROM_ITER);
SITE void *call_once(int steps) __asm__(CALL_ONCE);
SITE void *write_str(size_t n) __asm__(WRITE_STR);

static struct truth_site other = {"write_str", 0, 0, 0, 0};

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
	struct truth_site sites[2] = {site, other};
	truth_print("rustnames", sites, 2);
	free(p);
	free(q);
	return 0;
}
