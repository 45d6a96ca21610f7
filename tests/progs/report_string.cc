// report_string.cc: a std::string built by appending, for `mapprof growth` tests (libstdc++'s
// _M_mutate allocates each new buffer, capacity + 1 bytes). It counts the buffers by the changes
// of capacity() and prints them as one JSON line; with --reserve it reserve()s the final length
// first, and no append allocates.
//
// Usage: report_string N [--reserve]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

__attribute__((noinline)) static void append_all(std::string &s, long n, unsigned long *growth,
                                                 unsigned long *bytes, char *sizes, size_t room)
{
	size_t used = 0;
	for (long i = 0; i < n; i++) {
		size_t before = s.capacity();
		s += "abc";
		size_t after = s.capacity();
		if (after != before) {
			++*growth;
			*bytes += after + 1;
			used += (size_t)snprintf(sizes + used, room - used, "%s%zu",
			                         used ? "," : "", after + 1);
		}
	}
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	bool reserve = argc > 2 && strcmp(argv[2], "--reserve") == 0;
	static char sizes[4096];
	unsigned long growth = 0, bytes = 0;
	std::string s;
	if (reserve)
		s.reserve((size_t)n * 3);
	append_all(s, n, &growth, &bytes, sizes, sizeof(sizes));
	printf("{\"n\":%ld,\"length\":%zu,\"growth\":{\"allocations\":%lu,\"bytes\":%lu,"
	       "\"sizes\":[%s]}}\n",
	       n, s.size(), growth, bytes, sizes);
	fflush(stdout);
	return 0;
}
