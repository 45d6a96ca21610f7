/* alloc_api.c: calls every function of the C allocation API, each from its own call site, and
 * counts what it allocated, freed and kept per site; prints that truth and self-checks (return
 * values, errno, alignment, malloc_usable_size) that must not change under the profiler. It must
 * never allocate outside its site_* functions (no stdio: see truth.h).
 *
 * usage: alloc_api [ITERATIONS] [--portable]
 *   --portable  no pvalloc: jemalloc lacks it, so glibc's would allocate from glibc's heap and
 *               the free would hand that block to jemalloc. (glibc's reallocarray calls realloc
 *               through the PLT, so it reaches whichever allocator is in use.) */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "truth.h"

#define SITES(X)                                                                                   \
	X(site_malloc)                                                                             \
	X(site_malloc0)                                                                            \
	X(site_calloc)                                                                             \
	X(site_realloc_null)                                                                       \
	X(site_realloc_grow)                                                                       \
	X(site_realloc_shrink)                                                                     \
	X(site_realloc_zero)                                                                       \
	X(site_reallocarray)                                                                       \
	X(site_reallocarray_null)                                                                  \
	X(site_posix_memalign)                                                                     \
	X(site_aligned_alloc)                                                                      \
	X(site_memalign)                                                                           \
	X(site_valloc)                                                                             \
	X(site_pvalloc)                                                                            \
	X(site_fail)

#define ENUM(n) S_##n,
#define NAME(n) [S_##n] = {#n, 0, 0, 0, 0},
enum { SITES(ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(NAME)};

/* A block the program still holds: where it came from and its size. */
struct block {
	void *p;
	int site;
	size_t size;
};

static void release(struct block *b)
{
	if (!b->p)
		return;
	truth_free(&sites[b->site], b->size);
	free(b->p);
	b->p = NULL;
}

static struct block made(void *p, int site, size_t size)
{
	struct block b = {p, site, size};
	if (!p)
		_exit(4); /* a call the program expects to succeed failed: no truth to print */
	return b;
}

/* ---- the call sites ---- */

SITE static void *site_malloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_malloc], n);
	return p;
}

SITE static void *site_malloc0(void)
{
	void *p = malloc(0);
	if (p)
		truth_alloc(&sites[S_site_malloc0], 0);
	return p;
}

SITE static void *site_calloc(size_t k, size_t n)
{
	void *p = calloc(k, n);
	if (p)
		truth_alloc(&sites[S_site_calloc], k * n);
	return p;
}

SITE static void *site_realloc_null(size_t n)
{
	void *p = realloc(NULL, n);
	if (p)
		truth_alloc(&sites[S_site_realloc_null], n);
	return p;
}

/* realloc(p, n > 0): one object of n bytes here, and p's block released at its own site. */
static void resized(struct block *b, void *q, int site, size_t n)
{
	truth_free(&sites[b->site], b->size);
	truth_alloc(&sites[site], n);
	*b = (struct block){q, site, n};
}

SITE static void site_realloc_grow(struct block *b, size_t n)
{
	void *q = realloc(b->p, n);
	if (!q)
		_exit(4);
	resized(b, q, S_site_realloc_grow, n);
}

SITE static void site_realloc_shrink(struct block *b, size_t n)
{
	void *q = realloc(b->p, n);
	if (!q)
		_exit(4);
	resized(b, q, S_site_realloc_shrink, n);
}

/* realloc(p, 0): glibc frees p and returns NULL; an allocator that returns a block instead has
 * made a 0-byte object. Either way p is gone. */
SITE static void *site_realloc_zero(struct block *b)
{
	void *q = realloc(b->p, 0);
	truth_free(&sites[b->site], b->size);
	if (q) {
		truth_alloc(&sites[S_site_realloc_zero], 0);
		*b = (struct block){q, S_site_realloc_zero, 0};
	} else {
		b->p = NULL;
	}
	return q;
}

SITE static void site_reallocarray(struct block *b, size_t k, size_t n)
{
	void *q = reallocarray(b->p, k, n);
	if (!q)
		_exit(4);
	resized(b, q, S_site_reallocarray, k * n);
}

SITE static void *site_reallocarray_null(size_t k, size_t n)
{
	void *p = reallocarray(NULL, k, n);
	if (p)
		truth_alloc(&sites[S_site_reallocarray_null], k * n);
	return p;
}

SITE static void *site_posix_memalign(size_t align, size_t n)
{
	void *p = NULL;
	if (posix_memalign(&p, align, n) != 0)
		return NULL;
	truth_alloc(&sites[S_site_posix_memalign], n);
	return p;
}

SITE static void *site_aligned_alloc(size_t align, size_t n)
{
	void *p = aligned_alloc(align, n);
	if (p)
		truth_alloc(&sites[S_site_aligned_alloc], n);
	return p;
}

SITE static void *site_memalign(size_t align, size_t n)
{
	void *p = memalign(align, n);
	if (p)
		truth_alloc(&sites[S_site_memalign], n);
	return p;
}

SITE static void *site_valloc(size_t n)
{
	void *p = valloc(n);
	if (p)
		truth_alloc(&sites[S_site_valloc], n);
	return p;
}

/* pvalloc rounds the size up to whole pages; the request is what counts. */
SITE static void *site_pvalloc(size_t n)
{
	void *p = pvalloc(n);
	if (p)
		truth_alloc(&sites[S_site_pvalloc], n);
	return p;
}

/* ---- calls that must fail, with the same result and errno as without the profiler ---- */

/* Opaque to the compiler, which would otherwise reject the calls at build time. */
static volatile size_t huge_size = SIZE_MAX - 8192, half_max = SIZE_MAX / 2;

static void failed(const char *what, void *p, int err)
{
	char name[64];
	snprintf(name, sizeof(name), "%s_null", what);
	check_val(name, p == NULL);
	snprintf(name, sizeof(name), "%s_errno", what);
	check_val(name, err);
	if (p) {
		/* It succeeded after all: count it, so the truth stays true. */
		truth_alloc(&sites[S_site_fail], 0);
		truth_free(&sites[S_site_fail], 0);
		free(p);
	}
}

SITE static void site_fail(struct block *keep, int portable)
{
	const size_t HUGE_SIZE = huge_size, HALF = half_max;
	void *p;
	errno = 0;
	p = malloc(HUGE_SIZE);
	failed("malloc_huge", p, errno);
	errno = 0;
	p = calloc(HALF + 1, 2);
	failed("calloc_overflow", p, errno);
	errno = 0;
	p = calloc(1, HUGE_SIZE);
	failed("calloc_huge", p, errno);
	errno = 0;
	p = realloc(keep->p, HUGE_SIZE);
	failed("realloc_huge", p, errno);
	check_val("realloc_huge_kept", ((unsigned char *)keep->p)[0] == 0xab);
	errno = 0;
	p = reallocarray(keep->p, HALF, 3);
	failed("reallocarray_overflow", p, errno);
	check_val("reallocarray_overflow_kept", ((unsigned char *)keep->p)[0] == 0xab);
	if (!portable) {
		errno = 0;
		p = pvalloc(HUGE_SIZE);
		failed("pvalloc_huge", p, errno);
	}
	errno = 0;
	p = (void *)1;
	int r = posix_memalign(&p, 3, 16);
	check_val("posix_memalign_align3_ret", r);
	check_val("posix_memalign_align3_untouched", p == (void *)1);
	check_val("posix_memalign_align3_errno", errno);
	errno = 0;
	p = NULL;
	r = posix_memalign(&p, 64, HUGE_SIZE);
	check_val("posix_memalign_huge_ret", r);
	failed("posix_memalign_huge", p, errno);
	errno = 0;
	p = aligned_alloc(64, HUGE_SIZE);
	failed("aligned_alloc_huge", p, errno);
	errno = 0;
	p = memalign(64, HUGE_SIZE);
	failed("memalign_huge", p, errno);
	errno = 0;
	p = valloc(HUGE_SIZE);
	failed("valloc_huge", p, errno);
}

/* ---- self-checks on successful calls ---- */

static void checks(int portable)
{
	char name[64];
	/* errno is left alone by successful calls and by free(NULL). */
	errno = 4242;
	struct block b = made(site_malloc(100), S_site_malloc, 100);
	check_val("errno_after_malloc", errno);
	release(&b);
	check_val("errno_after_free", errno);
	free(NULL);
	check_val("errno_after_free_nullptr", errno);
	b = made(site_calloc(10, 10), S_site_calloc, 100);
	check_val("errno_after_calloc", errno);
	site_realloc_grow(&b, 1000);
	check_val("errno_after_realloc", errno);
	release(&b);

	/* malloc_usable_size of fresh blocks, from small to mmapped. */
	static const size_t sizes[] = {1, 24, 25, 100, 1000, 4096, 70000, 300000};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		b = made(site_malloc(sizes[i]), S_site_malloc, sizes[i]);
		snprintf(name, sizeof(name), "usable_%zu", sizes[i]);
		check_val(name, (long long)malloc_usable_size(b.p));
		release(&b);
	}
	check_val("usable_of_nullptr", (long long)malloc_usable_size(NULL));

	/* malloc(0) gives a unique pointer. */
	struct block z1 = made(site_malloc0(), S_site_malloc0, 0);
	struct block z2 = made(site_malloc0(), S_site_malloc0, 0);
	check_val("malloc0_distinct", z1.p != z2.p);
	release(&z1);
	release(&z2);

	/* calloc zeroes memory that malloc had dirtied. */
	b = made(site_malloc(4000), S_site_malloc, 4000);
	memset(b.p, 0x5a, 4000);
	release(&b);
	b = made(site_calloc(40, 100), S_site_calloc, 4000);
	int zero = 1;
	for (size_t i = 0; i < 4000; i++)
		zero &= ((unsigned char *)b.p)[i] == 0;
	check_val("calloc_zeroed", zero);
	release(&b);

	/* realloc keeps the contents. */
	b = made(site_malloc(64), S_site_malloc, 64);
	memset(b.p, 0x77, 64);
	site_realloc_grow(&b, 100000);
	int kept = 1;
	for (size_t i = 0; i < 64; i++)
		kept &= ((unsigned char *)b.p)[i] == 0x77;
	site_realloc_shrink(&b, 10);
	for (size_t i = 0; i < 10; i++)
		kept &= ((unsigned char *)b.p)[i] == 0x77;
	check_val("realloc_kept_contents", kept);
	release(&b);

	/* realloc(p, 0) and what it returns. */
	b = made(site_malloc(50), S_site_malloc, 50);
	errno = 4242;
	void *q = site_realloc_zero(&b);
	check_val("realloc_zero_null", q == NULL);
	check_val("realloc_zero_errno", errno);
	release(&b);

	/* Alignment of the memalign family. */
	long page = sysconf(_SC_PAGESIZE);
	for (size_t a = 16; a <= 65536; a *= 4) {
		b = made(site_posix_memalign(a, 100), S_site_posix_memalign, 100);
		snprintf(name, sizeof(name), "posix_memalign_%zu_aligned", a);
		check_val(name, (uintptr_t)b.p % a == 0);
		release(&b);
		b = made(site_memalign(a, 100), S_site_memalign, 100);
		snprintf(name, sizeof(name), "memalign_%zu_aligned", a);
		check_val(name, (uintptr_t)b.p % a == 0);
		release(&b);
		b = made(site_aligned_alloc(a, a * 2), S_site_aligned_alloc, a * 2);
		snprintf(name, sizeof(name), "aligned_alloc_%zu_aligned", a);
		check_val(name, (uintptr_t)b.p % a == 0);
		release(&b);
	}
	b = made(site_valloc(100), S_site_valloc, 100);
	check_val("valloc_aligned", (uintptr_t)b.p % (uintptr_t)page == 0);
	release(&b);
	if (!portable) {
		b = made(site_pvalloc(100), S_site_pvalloc, 100);
		check_val("pvalloc_aligned", (uintptr_t)b.p % (uintptr_t)page == 0);
		check_val("pvalloc_usable_at_least_page", malloc_usable_size(b.p) >= (size_t)page);
		release(&b);
	}

	/* Failing calls: NULL and errno, and the block given to a failed realloc stays valid. */
	b = made(site_malloc(32), S_site_malloc, 32);
	memset(b.p, 0xab, 32);
	site_fail(&b, portable);
	release(&b);
}

/* ---- the main workload: many calls of every kind, half of them freed ---- */

#define PER_ITER 16

int main(int argc, char **argv)
{
	long iters = 1000;
	int portable = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--portable") == 0)
			portable = 1;
		else
			iters = atol(argv[i]);
	}
	checks(portable);

	static struct block blocks[200000 * PER_ITER];
	if (iters < 0 || iters > 200000)
		return 2;
	size_t nb = 0;
	for (long i = 0; i < iters; i++) {
		size_t sz = 1 + (size_t)(i * 37) % 600;
		struct block *b = &blocks[nb];
		b[0] = made(site_malloc(sz), S_site_malloc, sz);
		b[1] = made(site_malloc0(), S_site_malloc0, 0);
		b[2] = made(site_calloc(1 + i % 7, sz), S_site_calloc, (1 + i % 7) * sz);
		b[3] = made(site_realloc_null(sz / 2 + 1), S_site_realloc_null, sz / 2 + 1);
		b[4] = made(site_malloc(sz), S_site_malloc, sz);
		site_realloc_grow(&b[4], sz * 3);
		b[5] = made(site_malloc(sz * 2 + 16), S_site_malloc, sz * 2 + 16);
		site_realloc_shrink(&b[5], sz / 3 + 1);
		b[6] = made(site_malloc(40), S_site_malloc, 40);
		site_realloc_zero(&b[6]);
		size_t al = (size_t)16 << (i % 9);
		b[7] = made(site_posix_memalign(al, sz), S_site_posix_memalign, sz);
		size_t sz64 = (sz + 63) & ~(size_t)63;
		b[8] = made(site_aligned_alloc(64, sz64), S_site_aligned_alloc, sz64);
		b[9] = made(site_memalign((size_t)32 << (i % 5), sz), S_site_memalign, sz);
		b[10] = made(site_malloc(16), S_site_malloc, 16);
		site_reallocarray(&b[10], 1 + i % 10, 24);
		b[11] = made(site_reallocarray_null(1 + i % 3, sz), S_site_reallocarray_null,
		             (1 + i % 3) * sz);
		if (i % 10 == 0) {
			b[12] = made(site_valloc(sz), S_site_valloc, sz);
			if (!portable)
				b[13] = made(site_pvalloc(sz), S_site_pvalloc, sz);
		}
		free(NULL);
		/* Free two blocks in three, varying which ones. */
		for (int k = 0; k < PER_ITER; k++)
			if ((i + k) % 3 != 0)
				release(&b[k]);
		nb += PER_ITER;
	}
	/* What is still held stays live until exit: the dump must count it as in use. */
	truth_print("main", sites, NSITES);
	return 0;
}
