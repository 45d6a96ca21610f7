/* sample_sites.c: a large allocation run for the sampling test: four call sites with different
 * size mixes (small fixed, mixed 64 B - 8 KiB, large 64 KiB, and a block grown by realloc from
 * 256 to 1024 bytes), each block freed at once. Counts
 * its own allocations per site (truth.h) so the test can hold mapprof's scaled estimates
 * against the exact figures.
 *
 * Usage: sample_sites [ROUNDS]     (default 200000) */
#include "truth.h"

#define SITES(X) X(site_small) X(site_mixed) X(site_large) X(site_grow)
#define ENUM(n)  S_##n,
#define NAME(n)  #n,
enum { SITES(ENUM) NSITES };
static const char *const names[] = {SITES(NAME)};
static struct truth_site sites[NSITES];

SITE void site_small(void)
{
	char *p = malloc(32);
	if (!p)
		exit(2);
	truth_alloc(&sites[S_site_small], 32);
	p[0] = 1;
	free(p);
	truth_free(&sites[S_site_small], 32);
}

SITE void site_mixed(unsigned long long r)
{
	size_t n = 64 + (size_t)(r % 8129);
	char *p = malloc(n);
	if (!p)
		exit(2);
	truth_alloc(&sites[S_site_mixed], n);
	p[0] = 1;
	free(p);
	truth_free(&sites[S_site_mixed], n);
}

SITE void site_large(void)
{
	char *p = malloc(65536);
	if (!p)
		exit(2);
	truth_alloc(&sites[S_site_large], 65536);
	p[0] = 1;
	free(p);
	truth_free(&sites[S_site_large], 65536);
}

/* realloc(NULL, 256), then realloc to 512, 768 and 1024: four requests. */
SITE void site_grow(void)
{
	char *p = NULL;
	for (size_t n = 256; n <= 1024; n += 256) {
		char *q = realloc(p, n);
		if (!q)
			exit(2);
		if (p)
			truth_free(&sites[S_site_grow], n - 256);
		truth_alloc(&sites[S_site_grow], n);
		p = q;
		p[n - 1] = 1;
	}
	free(p);
	truth_free(&sites[S_site_grow], 1024);
}

int main(int argc, char **argv)
{
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	long rounds = argc > 1 ? atol(argv[1]) : 200000;
	unsigned long long r = 88172645463325252ull;
	for (long i = 0; i < rounds; i++) {
		r ^= r << 13, r ^= r >> 7, r ^= r << 17;
		for (int k = 0; k < 8; k++)
			site_small();
		site_mixed(r);
		site_grow();
		if (i % 8 == 0)
			site_large();
	}
	truth_print("main", sites, NSITES);
	return 0;
}
