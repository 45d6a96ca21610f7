// report_umap.cc: a std::unordered_map filled one insert at a time (or reserve()d first), for
// `mapprof growth` tests. It counts the bucket arrays libstdc++ allocates (each change of
// bucket_count() is one) and prints them as one JSON line; it never allocates after that line.
//
// Usage: report_umap N [--reserve]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

__attribute__((noinline)) static void fill(std::unordered_map<long, long> &m, long n,
                                           unsigned long *growth, unsigned long *bytes,
                                           std::string &sizes)
{
	for (long i = 0; i < n; i++) {
		size_t before = m.bucket_count();
		m.emplace(i * 7, i);
		size_t after = m.bucket_count();
		if (after != before && before > 1) {
			++*growth;
			*bytes += after * sizeof(void *);
			sizes +=
			    (sizes.empty() ? "" : ",") + std::to_string(after * sizeof(void *));
		}
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	bool reserve = argc > 2 && strcmp(argv[2], "--reserve") == 0;
	std::unordered_map<long, long> m;
	std::string sizes;
	sizes.reserve(4096);
	if (reserve)
		m.reserve((size_t)n);
	unsigned long growth = 0, bytes = 0;
	fill(m, n, &growth, &bytes, sizes);
	printf("{\"n\":%ld,\"presize\":%s,\"growth\":{\"allocations\":%lu,\"bytes\":%lu,"
	       "\"sizes\":[%s]}}\n",
	       n, reserve ? "true" : "false", growth, bytes, sizes.c_str());
	fflush(stdout);
	return 0;
}
