/* report_growth.c: containers that grow, and twins that allocate as much without growing, for
 * `mapprof growth` tests. It counts its own growth allocations and prints them as one JSON line.
 *
 * Usage: report_growth uthash N               a uthash table of N string keys (macro growth;
 *                                              pre-sized when built with -DUT_PRESIZE=LOG2)
 *        report_growth vector N [--presize]   an array grown by realloc doubling at one line
 *        report_growth flat N                 as many bytes as `vector N`, in equal requests
 *        report_growth varied N               N strings of assorted lengths (no growth)
 *        report_growth arrays K               K arrays of 24-byte elements grown by realloc
 *                                              doubling at one line, array i to 16 << i
 *                                              elements: K containers through one chain */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

/* Built a second time with -DUT_PRESIZE=LOG2: the table starts at 2^LOG2 buckets (uthash 2.3
 * defines these without #ifndef, so they are replaced after the include). */
#ifdef UT_PRESIZE
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS_LOG2 UT_PRESIZE
#define HASH_INITIAL_NUM_BUCKETS      (1U << HASH_INITIAL_NUM_BUCKETS_LOG2)
#endif

#define NOINLINE __attribute__((noinline))
/* Keeps the compiler from removing a malloc/free pair (gcc -O2 does). */
#define USE(p) __asm__ volatile("" ::"r"(p) : "memory")

struct item {
	char key[24];
	int value;
	UT_hash_handle hh;
};

static unsigned long growth_allocs, growth_bytes;
static unsigned long containers, final_bytes; /* arrays mode */
static unsigned long sizes[64];
static int nsizes;

static void note_growth(unsigned long bytes)
{
	growth_allocs++;
	growth_bytes += bytes;
	if (nsizes < 64)
		sizes[nsizes++] = bytes;
}

static void print_truth(const char *mode, long n, int presize)
{
	printf("{\"mode\":\"%s\",\"n\":%ld,\"presize\":%s,\"growth\":{\"allocations\":%lu,"
	       "\"bytes\":%lu,\"sizes\":[",
	       mode, n, presize ? "true" : "false", growth_allocs, growth_bytes);
	for (int i = 0; i < nsizes; i++)
		printf("%s%lu", i ? "," : "", sizes[i]);
	printf("],\"containers\":%lu,\"final_bytes\":%lu}}\n", containers, final_bytes);
	fflush(stdout);
}

NOINLINE static struct item *fill_uthash(long n)
{
	struct item *table = NULL;
	for (long i = 0; i < n; i++) {
		struct item *it = calloc(1, sizeof(*it));
		snprintf(it->key, sizeof(it->key), "k%09ld", i);
		it->value = (int)i;
		unsigned before = table ? table->hh.tbl->num_buckets : 0;
		HASH_ADD_STR(table, key, it);
		unsigned after = table->hh.tbl->num_buckets;
		if (before && after != before)
			note_growth(after * sizeof(UT_hash_bucket));
	}
	return table;
}

NOINLINE static void *fill_vector(long n, int presize)
{
	size_t cap = presize ? (size_t)n : 16, len = 0;
	double *v = malloc(cap * sizeof(double));
	for (long i = 0; i < n; i++) {
		if (len == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(double));
			note_growth(cap * sizeof(double));
		}
		v[len++] = (double)i;
	}
	return v;
}

/* The same bytes as fill_vector(n, 0) makes, requested in equal pieces at one line. */
NOINLINE static void fill_flat(long n)
{
	size_t cap = 16, total = cap * sizeof(double);
	int pieces = 1;
	while (cap < (size_t)n) {
		cap *= 2;
		total += cap * sizeof(double);
		pieces++;
	}
	for (int i = 0; i < pieces; i++) {
		void *p = malloc(total / (size_t)pieces);
		USE(p);
		free(p);
	}
}

struct point {
	double x, y, z;
};

/* Array i of k is grown from nothing, 16 elements first, doubling at one line (its first
 * allocation too), to 16 << i elements: k containers grow through one call chain. */
NOINLINE static void fill_arrays(long k)
{
	for (long i = 0; i < k; i++) {
		struct point *v = NULL;
		size_t cap = 0, len = 0, want = (size_t)16 << i;
		while (len < want) {
			if (len == cap) {
				cap = cap ? cap * 2 : 16;
				v = realloc(v, cap * sizeof(*v));
				note_growth(cap * sizeof(*v));
			}
			v[len++] = (struct point){(double)len, 0, 0};
		}
		containers++;
		final_bytes += cap * sizeof(*v);
		free(v);
	}
}

/* Strings of assorted lengths at one line: sizes vary, but not geometrically. */
NOINLINE static void fill_varied(long n)
{
	for (long i = 0; i < n; i++) {
		size_t len = 5 + (size_t)((i * 7919) % 97);
		char *s = malloc(len);
		memset(s, 'x', len);
		USE(s);
		free(s);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *mode = argv[1];
	long n = atol(argv[2]);
	int presize = argc > 3 && strcmp(argv[3], "--presize") == 0;
	if (strcmp(mode, "uthash") == 0) {
#ifdef UT_PRESIZE
		presize = 1;
#endif
		struct item *t = fill_uthash(n);
		print_truth(mode, n, presize);
		struct item *it, *tmp;
		HASH_ITER(hh, t, it, tmp)
		{
			HASH_DEL(t, it);
			free(it);
		}
	} else if (strcmp(mode, "vector") == 0) {
		void *v = fill_vector(n, presize);
		print_truth(mode, n, presize);
		free(v);
	} else if (strcmp(mode, "flat") == 0) {
		fill_flat(n);
		print_truth(mode, n, 0);
	} else if (strcmp(mode, "arrays") == 0) {
		fill_arrays(n);
		print_truth(mode, n, 0);
	} else if (strcmp(mode, "varied") == 0) {
		fill_varied(n);
		print_truth(mode, n, 0);
	} else {
		return 2;
	}
	return 0;
}
