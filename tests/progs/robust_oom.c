/* robust_oom.c: out of memory. Mode "rlimit" grows glibc's heap first, then caps the address
 * space (RLIMIT_AS) near what is mapped: glibc keeps serving small blocks from its heap while
 * mapprof's bookkeeping (which maps memory of its own) runs short, and a large request fails.
 * Mode "huge" makes requests no allocator can satisfy. Each failure must return NULL / ENOMEM as
 * without mapprof (self-checks); the truth counts only the allocations that succeeded.
 *
 * usage: robust_oom rlimit | robust_oom huge */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_warm)                                                                               \
	X(site_many)                                                                               \
	X(site_fail)                                                                               \
	X(site_ok)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

#define NMANY 300000
static void *many[NMANY];

SITE static void *site_warm(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_warm], n);
	return p;
}

SITE static void *site_many(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_many], n);
	return p;
}

SITE static void *site_ok(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_ok], n);
	return p;
}

/* Each kind of failing request; the truth counts any that unexpectedly succeed. */
SITE static void site_fail(const char *label, size_t n)
{
	char name[64];
	void *p = NULL;
	errno = 0;
	if (strcmp(label, "malloc") == 0) {
		p = malloc(n);
	} else if (strcmp(label, "calloc") == 0) {
		p = calloc(n / 8, 16); /* overflows or is too large */
	} else if (strcmp(label, "realloc") == 0) {
		void *q = site_ok(16);
		p = realloc(q, n);
		snprintf(name, sizeof(name), "%s_old_intact", label);
		check_val(name,
		          p == NULL && q != NULL && ((volatile char *)q)[0] == ((char *)q)[0]);
		if (!p)
			free(q), truth_free(&sites[S_site_ok], 16);
	} else if (strcmp(label, "posix_memalign") == 0) {
		int r = posix_memalign(&p, 64, n);
		errno = r;
		if (r)
			p = NULL;
	} else if (strcmp(label, "aligned_alloc") == 0) {
		p = aligned_alloc(64, n & ~(size_t)63);
	}
	int e = errno;
	snprintf(name, sizeof(name), "%s_null", label);
	check_val(name, p == NULL);
	snprintf(name, sizeof(name), "%s_errno", label);
	check_val(name, e);
	if (p) {
		truth_alloc(&sites[S_site_fail], n);
		free(p);
		truth_free(&sites[S_site_fail], n);
	}
}

static long vm_bytes(void)
{
	char buf[256];
	int fd = open("/proc/self/statm", O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atol(buf) * sysconf(_SC_PAGESIZE);
}

static int rlimit_mode(void)
{
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	mallopt(M_TOP_PAD, 0);
	/* 64 MiB of heap, freed again: glibc keeps it for the small blocks below. */
	static void *warm[128];
	for (int i = 0; i < 128; i++)
		warm[i] = site_warm(512 << 10);
	for (int i = 0; i < 128; i++) {
		free(warm[i]);
		truth_free(&sites[S_site_warm], 512 << 10);
	}
	struct rlimit old, lim;
	getrlimit(RLIMIT_AS, &old);
	long vm = vm_bytes();
	if (vm < 0)
		return 3;
	lim.rlim_cur = (rlim_t)vm + (2 << 20);
	lim.rlim_max = old.rlim_max;
	if (setrlimit(RLIMIT_AS, &lim) != 0)
		return 3;
	int got = 0;
	for (int i = 0; i < NMANY; i++) {
		many[i] = site_many(64);
		got += many[i] != NULL;
	}
	check_val("many_got", got);
	site_fail("malloc", 256 << 20);
	for (int i = 0; i < NMANY; i += 2) {
		if (many[i]) {
			free(many[i]);
			truth_free(&sites[S_site_many], 64);
		}
	}
	if (setrlimit(RLIMIT_AS, &old) != 0)
		return 3;
	truth_print("main", sites, NSITES);
	return 0;
}

static int huge_mode(void)
{
	void *keep = site_ok(100);
	site_fail("malloc", SIZE_MAX - 4096);
	site_fail("malloc", (size_t)1 << 62);
	site_fail("calloc", SIZE_MAX);
	site_fail("realloc", SIZE_MAX - 4096);
	site_fail("posix_memalign", SIZE_MAX - 4096);
	site_fail("aligned_alloc", SIZE_MAX - 8191);
	void *after = site_ok(200); /* allocation still works */
	check_val("after_ok", after != NULL && keep != NULL);
	truth_print("main", sites, NSITES);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	if (strcmp(argv[1], "rlimit") == 0)
		return rlimit_mode();
	if (strcmp(argv[1], "huge") == 0)
		return huge_mode();
	return 2;
}
