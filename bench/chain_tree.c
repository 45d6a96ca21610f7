/* chain_tree.c: makes many distinct call chains (for the report's read-and-symbolize benchmark)
 * and measures what the profiler keeps per chain, per live block and per call (its resident set
 * at the end of main). Prints one JSON line; it must never allocate outside what it counts.
 *
 * Usage: chain_tree CHAINS [LIVE] [CALLS]      (LIVE and CALLS default to 0; "0" is allowed)
 *
 * Chain i descends through `levels` levels, each through left() or right() as bit k of i says,
 * so chains 0..CHAINS-1 differ in their return addresses and all have the same depth: 17 levels
 * (two frames each) up to 131,072 chains, more above, so runs with different CHAINS compare.
 * Each allocates one block and frees it. Then LIVE blocks of 16
 * bytes are allocated at one site and kept, and CALLS malloc+free pairs run at another. */
#include <fcntl.h>
#include <unistd.h>

#include "bench.h"

static BENCH_NOINLINE void *step(unsigned level, unsigned long long path);

static BENCH_NOINLINE void *left(unsigned level, unsigned long long path)
{
	void *p = step(level - 1, path >> 1);
	BENCH_KEEP(p);
	return p;
}

static BENCH_NOINLINE void *right(unsigned level, unsigned long long path)
{
	void *p = step(level - 1, path >> 1);
	BENCH_KEEP(p);
	return p;
}

static BENCH_NOINLINE void *step(unsigned level, unsigned long long path)
{
	void *p;
	if (!level)
		p = malloc(16 + (path & 63));
	else if (path & 1)
		p = right(level, path);
	else
		p = left(level, path);
	BENCH_KEEP(p);
	return p;
}

static BENCH_NOINLINE void *keep_block(void)
{
	void *p = malloc(16);
	BENCH_KEEP(p);
	return p;
}

static BENCH_NOINLINE void churn(unsigned long long calls)
{
	for (unsigned long long i = 0; i < calls; i++) {
		void *p = malloc(16 + (i & 127));
		BENCH_KEEP(p);
		free(p);
	}
}

/* Resident set in KiB, read without stdio (which would allocate). */
static long rss_kib(void)
{
	char buf[256];
	int fd = open("/proc/self/statm", O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *s = strchr(buf, ' ');
	return s ? strtol(s + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static unsigned long long parse(const char *s, const char *prog)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *end != '\0') {
		fprintf(stderr, "usage: %s CHAINS [LIVE] [CALLS]\n", prog);
		exit(1);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: %s CHAINS [LIVE] [CALLS]\n", argv[0]);
		return 1;
	}
	unsigned long long chains = parse(argv[1], argv[0]);
	unsigned long long live = argc > 2 ? parse(argv[2], argv[0]) : 0;
	unsigned long long calls = argc > 3 ? parse(argv[3], argv[0]) : 0;
	unsigned levels = 17;
	while (levels < 63 && (1ull << levels) < chains)
		levels++;
	unsigned long long allocs = 0;
	for (unsigned long long i = 0; i < chains; i++) {
		void *p = step(levels, i);
		if (!p) {
			fprintf(stderr, "%s: out of memory\n", argv[0]);
			return 1;
		}
		free(p);
		allocs++;
	}
	void **blocks = NULL;
	if (live) {
		blocks = bench_xmalloc(live * sizeof(*blocks));
		allocs++;
		for (unsigned long long i = 0; i < live; i++) {
			blocks[i] = keep_block();
			if (!blocks[i]) {
				fprintf(stderr, "%s: out of memory\n", argv[0]);
				return 1;
			}
		}
		allocs += live;
	}
	churn(calls);
	allocs += calls;
	long rss = rss_kib();
	printf("{\"workload\":\"chain_tree\",\"chains\":%llu,\"levels\":%u,\"live\":%llu,"
	       "\"calls\":%llu,\"allocs\":%llu,\"rss_kib\":%ld}\n",
	       chains, levels, live, calls, allocs, rss);
	fflush(stdout);
	for (unsigned long long i = 0; i < live; i++)
		free(blocks[i]);
	free(blocks);
	return 0;
}
