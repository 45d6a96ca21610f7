/* fs_faults.c: a preloaded library that makes the file system calls a dump is written with fail
 * the way some systems fail them, so the tests reach the shim's other ways of writing it, and
 * says on stderr what it did, so a test knows the way was taken:
 *
 *   FS_FAULTS=noflink    linkat of an open file by its descriptor (AT_EMPTY_PATH) fails with
 *                        ENOENT, as for a process without CAP_DAC_READ_SEARCH on kernels that ask
 *                        for it ("fs_faults: refused linkat AT_EMPTY_PATH")
 *   FS_FAULTS=notmpfile  open with O_TMPFILE fails with EOPNOTSUPP, as on a file system without
 *                        unnamed files ("fs_faults: refused O_TMPFILE")
 *   FS_FAULTS=closecheck no fault: a close of a descriptor that is not open (a double close, which
 *                        would close another thread's file had it reused the number) prints
 *                        "fs_faults: close(N) of a closed descriptor"
 *   FS_FAULTS=log        no fault: each linkat, sendfile and renameat2 that succeeds prints
 *                        "fs_faults: linkat fd", "fs_faults: linkat /proc/self/fd",
 *                        "fs_faults: sendfile" or "fs_faults: renameat2"
 *
 * Every other call goes to libc unchanged; errno is kept across the messages. Words may be
 * combined: FS_FAULTS=noflink,log. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

static int fault(const char *word)
{
	const char *v = getenv("FS_FAULTS");
	return v && strstr(v, word) != NULL;
}

static void say(const char *what)
{
	int saved = errno;
	char line[128];
	int n = snprintf(line, sizeof(line), "fs_faults: %s\n", what);
	if (write(2, line, (size_t)n) < 0)
		(void)0;
	errno = saved;
}

static void *next_fn(void **slot, const char *name)
{
	if (!*slot)
		*slot = dlsym(RTLD_NEXT, name);
	return *slot;
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	static void *slot;
	int (*next)(int, const char *, int, const char *, int) =
	    (int (*)(int, const char *, int, const char *, int))next_fn(&slot, "linkat");
	if ((flags & AT_EMPTY_PATH) && fault("noflink")) {
		say("refused linkat AT_EMPTY_PATH");
		errno = ENOENT;
		return -1;
	}
	int r = next(olddirfd, oldpath, newdirfd, newpath, flags);
	if (r == 0 && fault("log"))
		say(flags & AT_EMPTY_PATH                         ? "linkat fd"
		    : strncmp(oldpath, "/proc/self/fd/", 14) == 0 ? "linkat /proc/self/fd"
		                                                  : "linkat");
	return r;
}

int open(const char *path, int flags, ...)
{
	static void *slot;
	int (*next)(const char *, int, ...) =
	    (int (*)(const char *, int, ...))next_fn(&slot, "open");
	mode_t mode = 0;
	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if ((flags & __O_TMPFILE) == __O_TMPFILE && fault("notmpfile")) {
		say("refused O_TMPFILE");
		errno = EOPNOTSUPP;
		return -1;
	}
	return next(path, flags, mode);
}

ssize_t sendfile(int out, int in, off_t *offset, size_t count)
{
	static void *slot;
	ssize_t (*next)(int, int, off_t *, size_t) =
	    (ssize_t(*)(int, int, off_t *, size_t))next_fn(&slot, "sendfile");
	ssize_t r = next(out, in, offset, count);
	if (r >= 0 && fault("log"))
		say("sendfile");
	return r;
}

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
              unsigned int flags)
{
	static void *slot;
	int (*next)(int, const char *, int, const char *, unsigned int) =
	    (int (*)(int, const char *, int, const char *, unsigned int))next_fn(&slot,
	                                                                         "renameat2");
	int r = next(olddirfd, oldpath, newdirfd, newpath, flags);
	if (r == 0 && fault("log"))
		say("renameat2");
	return r;
}

int close(int fd)
{
	static void *slot;
	int (*next)(int) = (int (*)(int))next_fn(&slot, "close");
	int r = next(fd);
	if (r != 0 && errno == EBADF && fault("closecheck")) {
		char what[64];
		snprintf(what, sizeof(what), "close(%d) of a closed descriptor", fd);
		say(what);
	}
	return r;
}
