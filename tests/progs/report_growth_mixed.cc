// report_growth_mixed.cc: many small std::unordered_maps grown through one call chain and one
// large map grown through another, for the order of `mapprof growth`'s sites. It counts the
// bucket arrays libstdc++ allocates for each (every change of bucket_count() is one, the first
// array included) and prints them as one JSON line; it never allocates after that line.
//
// Usage: report_growth_mixed NSMALL K NBIG   NSMALL maps of K elements, one map of NBIG
#include <cstdio>
#include <cstdlib>
#include <unordered_map>
#include <vector>

struct count {
	unsigned long containers, allocations, bytes, final_bytes;
};

// Inserts n keys into m, counting its bucket arrays into c.
__attribute__((always_inline)) static inline void fill(std::unordered_map<long, long> &m, long n,
                                                       count &c)
{
	size_t last = 0;
	for (long i = 0; i < n; i++) {
		size_t before = m.bucket_count();
		m.emplace(i * 7, i);
		size_t after = m.bucket_count();
		if (after != before) {
			c.allocations++;
			c.bytes += after * sizeof(void *);
			last = after * sizeof(void *);
		}
	}
	c.containers++;
	c.final_bytes += last;
}

__attribute__((noinline)) static void fill_small(std::vector<std::unordered_map<long, long>> &v,
                                                 long k, count &c)
{
	for (auto &m : v)
		fill(m, k, c);
}

__attribute__((noinline)) static void fill_big(std::unordered_map<long, long> &m, long n, count &c)
{
	fill(m, n, c);
}

static void print(const char *name, const count &c, const char *sep)
{
	printf(
	    "\"%s\":{\"containers\":%lu,\"allocations\":%lu,\"bytes\":%lu,\"final_bytes\":%lu}%s",
	    name, c.containers, c.allocations, c.bytes, c.final_bytes, sep);
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	long nsmall = atol(argv[1]), k = atol(argv[2]), nbig = atol(argv[3]);
	std::vector<std::unordered_map<long, long>> small((size_t)nsmall);
	std::unordered_map<long, long> big;
	count cs = {}, cb = {};
	fill_small(small, k, cs);
	fill_big(big, nbig, cb);
	printf("{");
	print("small", cs, ",");
	print("big", cb, "}\n");
	fflush(stdout);
	return 0;
}
