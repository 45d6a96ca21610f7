/* realloc_grow.c: benchmark workload 3: buffers grown by realloc a few bytes at a time, the way a
 * naive string builder appends. Prints its exact allocation count as one JSON line; it must
 * never allocate anything but the counted buffers while it runs.
 *
 * Usage: realloc_grow [ROUNDS]      (default 60000)
 *
 * Each round grows 8 buffers side by side from nothing to 1-4 KiB in steps of 8-64 bytes (each
 * realloc is one allocation: the first one is a malloc), then frees them. Growing several at
 * once keeps glibc from extending every buffer in place, so some reallocs move. */
#include "bench.h"

#define NBUF 8

struct buf {
	char *data;
	size_t len, limit;
};

static BENCH_NOINLINE int append(struct buf *b, size_t n)
{
	char *p = realloc(b->data, b->len + n);
	if (!p)
		return -1;
	memset(p + b->len, 'x', n);
	b->data = p;
	b->len += n;
	return 0;
}

static BENCH_NOINLINE unsigned long long round_of_growth(unsigned long long *seed)
{
	struct buf bufs[NBUF];
	unsigned long long allocs = 0;
	for (int i = 0; i < NBUF; i++)
		bufs[i] = (struct buf){NULL, 0, 1024 + (size_t)(bench_rand(seed) % 3073)};
	for (int growing = NBUF; growing;) {
		growing = 0;
		for (int i = 0; i < NBUF; i++) {
			struct buf *b = &bufs[i];
			if (b->len >= b->limit)
				continue;
			if (append(b, 8 + (size_t)(bench_rand(seed) % 57)) != 0) {
				fprintf(stderr, "realloc_grow: out of memory\n");
				exit(1);
			}
			allocs++;
			growing++;
		}
	}
	for (int i = 0; i < NBUF; i++)
		free(bufs[i].data);
	return allocs;
}

int main(int argc, char **argv)
{
	unsigned long long rounds = bench_arg(argc, argv, 1, 60000, "[ROUNDS]");
	unsigned long long seed = 0x2545f4914f6cdd1dull, allocs = 0;
	for (unsigned long long r = 0; r < rounds; r++)
		allocs += round_of_growth(&seed);
	printf("{\"workload\":\"realloc_grow\",\"rounds\":%llu,\"allocs\":%llu}\n", rounds, allocs);
	return 0;
}
