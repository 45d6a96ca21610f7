/* robust_stderr.c: a program that puts a file of its own on descriptor 2. It allocates, closes
 * its standard error, opens FILE (which gets descriptor 2), writes one record there and, with
 * DIR, moves to DIR (where the profiler's default dump name cannot be written). The file must
 * hold the record and nothing else: the profiler's messages belong to the standard error the
 * process started with.
 *
 * usage: robust_stderr FILE [DIR] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) static void *site(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	free(site(100));
	close(2);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd != 2)
		return 3;
	if (dprintf(fd, "record\n") != 7)
		return 4;
	if (argc > 2 && chdir(argv[2]) != 0)
		return 5;
	return 0;
}
