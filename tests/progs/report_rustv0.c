/* report_rustv0.c: functions named as rustc names them in its v0 mangling ("_R", that of Rust's
 * own standard library since 2025; the names come from a real build of a program that fills a
 * HashMap<u64, u64>): a closure under a generic function ("lang_start::<()>::{closure#0}"), a
 * crate's main, inherent methods of generic types ("<hashbrown::map::HashMap<u64, u64, ...>>::
 * insert"), hashbrown's growth function with a generic argument of its own and LLVM's ThinLTO
 * suffix, and a trait method ("<alloc::alloc::Global as core::alloc::Allocator>::allocate").
 * The growth function grows a buffer by doubling, as a HashMap does. Prints its allocation
 * counts as one JSON line.
 *
 * usage: report_rustv0 STEPS */
#include <stdlib.h>

#include "truth.h"

#define LANG_START_CLOSURE "_RNCINvNtCsjrHSEGnQ3l9_3std2rt10lang_startuE0CskK7mfDs1mzF_1m"
#define CRATE_MAIN         "_RNvCskK7mfDs1mzF_1m4main"
#define MAP_INSERT                                                                                 \
	"_RNvMs1_NtCsgvbsrvnw3yD_9hashbrown3mapINtB5_7HashMapyyNtNtNtCsjrHSEGnQ3l9_"               \
	"3std4hash6random"                                                                         \
	"11RandomStateE6insertCskK7mfDs1mzF_1m"
#define RESERVE_REHASH                                                                             \
	"_RINvMs6_NtCsgvbsrvnw3yD_9hashbrown3rawINtB6_8RawTableTyyEE14reserve_rehashNCINvNtB8_"    \
	"3map"                                                                                     \
	"11make_hasheryyNtNtNtCsjrHSEGnQ3l9_3std4hash6random11RandomStateE0ECskK7mfDs1mzF_1m"      \
	".llvm.2176847574169285180"
#define ALLOCATE                                                                                   \
	"_RNvXs_NtCslNYArtu3iFV_5alloc5allocNtB4_6GlobalNtNtCsgEmfK2I1SDS_4core5alloc9Allocator8"  \
	"allocate"

static struct truth_site site = {"reserve_rehash", 0, 0, 0, 0};

SITE void *allocate(size_t n) __asm__(ALLOCATE);
SITE void *reserve_rehash(void *old, size_t n) __asm__(RESERVE_REHASH);
SITE void *map_insert(int steps) __asm__(MAP_INSERT);
SITE void *crate_main(int steps) __asm__(CRATE_MAIN);
SITE void *lang_start_closure(int steps) __asm__(LANG_START_CLOSURE);

SITE void *allocate(size_t n)
{
	void *p = malloc(n);
	if (!p)
		exit(1);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return p;
}

SITE void *reserve_rehash(void *old, size_t n)
{
	void *p = allocate(n);
	truth_alloc(&site, n);
	if (old) {
		free(old);
		truth_free(&site, n / 2);
	}
	return p;
}

SITE void *map_insert(int steps)
{
	void *p = NULL;
	for (int i = 0; i < steps; i++)
		p = reserve_rehash(p, (size_t)64 << i);
	return p;
}

SITE void *crate_main(int steps)
{
	void *p = map_insert(steps);
	__asm__ volatile("" ::: "memory");
	return p;
}

SITE void *lang_start_closure(int steps)
{
	void *p = crate_main(steps);
	__asm__ volatile("" ::: "memory");
	return p;
}

int main(int argc, char **argv)
{
	int steps = argc > 1 ? atoi(argv[1]) : 10;
	void *p = lang_start_closure(steps);
	truth_print("rustv0", &site, 1);
	free(p);
	return 0;
}
