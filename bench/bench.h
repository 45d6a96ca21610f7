/* bench.h: what the benchmark programs share: a deterministic random generator, a barrier that
 * keeps a call from becoming a tail call (so every frame stays on the stack), argument parsing.
 * It must never allocate: the programs' allocation counts are exact. */
#ifndef BENCH_H
#define BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_NOINLINE __attribute__((noinline))

/* After a call, keeps the call a real call (no sibling-call jump) and its result alive. */
#define BENCH_KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

/* xorshift64*: the same sequence on every run, so every run does the same work. */
static inline unsigned long long bench_rand(unsigned long long *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

/* A positive count from argv[i], or def when absent; exits with a usage line when malformed. */
static inline unsigned long long bench_arg(int argc, char **argv, int i, unsigned long long def,
                                           const char *usage)
{
	if (i >= argc)
		return def;
	char *end;
	unsigned long long v = strtoull(argv[i], &end, 10);
	if (*argv[i] == '\0' || *end != '\0' || v == 0) {
		fprintf(stderr, "usage: %s %s\n", argv[0], usage);
		exit(1);
	}
	return v;
}

static inline void *bench_xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

#endif
