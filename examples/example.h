/* example.h: what every example program shares: exact counters of the allocations the program
 * makes (or has a library make) while it builds its map, and the one JSON line of truth it prints.
 * It must never allocate on its own behalf, so the counts it keeps are exactly the program's. */
#ifndef EXAMPLE_H
#define EXAMPLE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One pair of counters, in the profiler's terms: objects is the number of allocation calls,
 * bytes the sum of their requested sizes (what alloc_objects and alloc_space count). */
struct ex_tally {
	unsigned long long objects;
	unsigned long long bytes;
};

#define EX_MAX_SIZES 64

/* Everything one run knows about itself. Filled by the helpers below, printed by ex_print(). */
struct ex_truth {
	struct ex_tally allocs; /* every allocation the program counted */
	struct ex_tally live;   /* counted and not yet freed */
	struct ex_tally growth; /* allocations made only because the container outgrew itself */
	unsigned long long sizes[EX_MAX_SIZES]; /* growth request sizes, in order */
	unsigned nsizes;
};

static struct ex_truth ex_truth;

#define EX_INLINE static inline __attribute__((always_inline))
#define EX_FUNC   static __attribute__((unused))

/* The counters are updated by inline code so that a counted call site is the program's own call
 * site, exactly as it would be without the counting: no extra frame appears in the profile. */
EX_INLINE void ex_count_alloc(size_t n)
{
	ex_truth.allocs.objects++;
	ex_truth.allocs.bytes += n;
	ex_truth.live.objects++;
	ex_truth.live.bytes += n;
}

EX_INLINE void ex_count_free(size_t n)
{
	ex_truth.live.objects--;
	ex_truth.live.bytes -= n;
}

/* realloc(p, n) with n > 0 is one object of n bytes that releases p (and realloc(NULL, n) is a
 * plain malloc), the rule the profiler's dump documents. */
EX_INLINE void ex_count_realloc(size_t old, size_t n)
{
	if (old)
		ex_count_free(old);
	ex_count_alloc(n);
}

EX_INLINE void ex_count_growth(size_t n)
{
	ex_truth.growth.objects++;
	ex_truth.growth.bytes += n;
	if (ex_truth.nsizes < EX_MAX_SIZES)
		ex_truth.sizes[ex_truth.nsizes++] = n;
}

EX_FUNC void ex_die(const char *what)
{
	fprintf(stderr, "example: %s: %s\n", what, strerror(errno ? errno : ENOMEM));
	exit(1);
}

EX_INLINE void *ex_malloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		ex_die("malloc");
	ex_count_alloc(n);
	return p;
}

EX_INLINE void ex_free(void *p, size_t n)
{
	if (!p)
		return;
	ex_count_free(n);
	free(p);
}

EX_INLINE char *ex_strdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		ex_die("strdup");
	ex_count_alloc(strlen(s) + 1);
	return p;
}

/* Command line shared by all examples: PROG [ITEMS] [--presize]. */
EX_FUNC void ex_args(int argc, char **argv, unsigned long *items, int *presize)
{
	*items = 10000;
	*presize = 0;
	for (int i = 1; i < argc; i++) {
		char *end;
		if (!strcmp(argv[i], "--presize")) {
			*presize = 1;
			continue;
		}
		errno = 0;
		unsigned long v = strtoul(argv[i], &end, 10);
		if (errno || end == argv[i] || *end || v == 0 || v > 100000000ul) {
			fprintf(stderr, "usage: %s [ITEMS] [--presize]\n", argv[0]);
			exit(1);
		}
		*items = v;
	}
}

/* Prints the run's truth as one JSON line on stdout. scope names the function under which every
 * counted allocation happens (a test selects the profile's chains through it); extra is a JSON
 * fragment of fields particular to the example (starting with a comma), or "". */
EX_FUNC void ex_print(const char *example, const char *scope, unsigned long items, int presized,
                      const char *extra)
{
	printf("{\"example\":\"%s\",\"items\":%lu,\"presized\":%s,\"scope\":\"%s\"", example, items,
	       presized ? "true" : "false", scope);
	printf(",\"allocs\":{\"objects\":%llu,\"bytes\":%llu}", ex_truth.allocs.objects,
	       ex_truth.allocs.bytes);
	printf(",\"live\":{\"objects\":%llu,\"bytes\":%llu}", ex_truth.live.objects,
	       ex_truth.live.bytes);
	printf(",\"growth\":{\"allocations\":%llu,\"bytes\":%llu,\"sizes\":[",
	       ex_truth.growth.objects, ex_truth.growth.bytes);
	for (unsigned i = 0; i < ex_truth.nsizes; i++)
		printf("%s%llu", i ? "," : "", ex_truth.sizes[i]);
	printf("]}%s}\n", extra);
}

#ifdef __cplusplus
}
#endif

#endif /* EXAMPLE_H */
