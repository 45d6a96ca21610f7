/* fs_faults.c: a preloaded library that makes the file system calls a dump is written with fail
 * the way some systems fail them, so the tests reach the shim's other ways of writing it:
 *
 *   FS_FAULTS=noflink    linkat of an open file by its descriptor (AT_EMPTY_PATH) fails with
 *                        ENOENT, as for a process without CAP_DAC_READ_SEARCH on kernels that ask
 *                        for it
 *   FS_FAULTS=notmpfile  open with O_TMPFILE fails with EOPNOTSUPP, as on a file system without
 *                        unnamed files
 *   FS_FAULTS=closecheck no fault: a close of a descriptor that is not open (a double close, which
 *                        would close another thread's file had it reused the number) prints a
 *                        line "fs_faults: close(N) of a closed descriptor" on stderr
 *
 * Every other call goes to libc unchanged. Words may be combined: FS_FAULTS=noflink,notmpfile. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fault(const char *word)
{
	const char *v = getenv("FS_FAULTS");
	return v && strstr(v, word) != NULL;
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	static int (*next)(int, const char *, int, const char *, int);
	if (!next)
		next =
		    (int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");
	if ((flags & AT_EMPTY_PATH) && fault("noflink")) {
		errno = ENOENT;
		return -1;
	}
	return next(olddirfd, oldpath, newdirfd, newpath, flags);
}

int open(const char *path, int flags, ...)
{
	static int (*next)(const char *, int, ...);
	if (!next)
		next = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	mode_t mode = 0;
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if ((flags & __O_TMPFILE) == __O_TMPFILE && fault("notmpfile")) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return next(path, flags, mode);
}

int close(int fd)
{
	static int (*next)(int);
	if (!next)
		next = (int (*)(int))dlsym(RTLD_NEXT, "close");
	int r = next(fd);
	if (r != 0 && errno == EBADF && fault("closecheck")) {
		int saved = errno;
		char line[64];
		int n = snprintf(line, sizeof(line),
		                 "fs_faults: close(%d) of a closed descriptor\n", fd);
		if (write(2, line, (size_t)n) < 0)
			(void)0;
		errno = saved;
	}
	return r;
}
