/* secure_probe.c: reports how it runs (AT_SECURE, real and effective uid, whether libmapprof's
 * code is mapped into it) and allocates a little from one site, printing the truth (truth.h).
 * It must never allocate outside site_alloc (it reads /proc/self/maps with read(2)). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "truth.h"

static struct truth_site sites[] = {{"site_alloc", 0, 0, 0, 0}};

SITE static void *site_alloc(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[0], n);
	return p;
}

/* Is a file whose name contains "libmapprof" mapped? */
static int mapprof_mapped(void)
{
	static char buf[1 << 20];
	int fd = open("/proc/self/maps", O_RDONLY);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	return strstr(buf, "libmapprof") != NULL;
}

int main(void)
{
	for (int i = 0; i < 100; i++) {
		void *p = site_alloc(16 + (size_t)i);
		if (i % 2) {
			free(p);
			truth_free(&sites[0], 16 + (size_t)i);
		}
	}
	check_val("at_secure", (long long)getauxval(AT_SECURE));
	check_val("uid", getuid());
	check_val("euid", geteuid());
	check_val("mapprof_mapped", mapprof_mapped());
	truth_print("main", sites, 1);
	return 0;
}
