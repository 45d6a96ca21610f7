/* robust_fds.c: a daemon's file descriptors. It closes every descriptor above 2, as daemons do,
 * then opens a file to read, a file to write and a pipe, and expects the lowest free numbers
 * (3, 4, 5 and 6). It allocates from call chains the profiler has not seen (each one a first
 * unwind), optionally raises a signal and sleeps (for dumps on demand and on a timer), copies the
 * file through, and checks that the copy is the original byte for byte and that the pipe holds
 * exactly what was written. Prints one JSON line; the test compares it with a run without mapprof.
 *
 * Usage: robust_fds DIR [SIGNAL [SLEEP_MS]]   (SIGNAL 0: raise none) */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SIZE 4096

static unsigned char pattern[SIZE];

/* Eight call sites of malloc, reached at several depths: new chains. */
typedef void *(*site_fn)(size_t);
#define SITE(n)                                                                                    \
	__attribute__((noinline)) static void *site_##n(size_t size)                               \
	{                                                                                          \
		void *p = malloc(size);                                                            \
		__asm__ volatile("" : : "r"(p) : "memory");                                        \
		return p;                                                                          \
	}
SITE(0)
SITE(1)
SITE(2)
SITE(3)
SITE(4)
SITE(5)
SITE(6)
SITE(7)
#define NSITES 8
static const site_fn sites[NSITES] = {site_0, site_1, site_2, site_3,
                                      site_4, site_5, site_6, site_7};

__attribute__((noinline)) static void *descend(int depth, int site, size_t size)
{
	void *p = depth ? descend(depth - 1, site, size) : sites[site](size);
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

static void churn(void)
{
	for (int depth = 0; depth < 6; depth++)
		for (int site = 0; site < NSITES; site++)
			free(descend(depth, site, 16 + 8 * (size_t)site));
}

static int readall(int fd, unsigned char *buf, int cap)
{
	int n = 0;
	ssize_t r;
	while (n < cap && (r = read(fd, buf + n, (size_t)(cap - n))) > 0)
		n += (int)r;
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	int sig = argc > 2 ? atoi(argv[2]) : 0;
	int sleep_ms = argc > 3 ? atoi(argv[3]) : 0;
	char src[4096], dst[4096];
	snprintf(src, sizeof(src), "%s/src", argv[1]);
	snprintf(dst, sizeof(dst), "%s/dst", argv[1]);
	for (int i = 0; i < SIZE; i++)
		pattern[i] = (unsigned char)(i * 7 + 1);
	int w = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (w < 0 || write(w, pattern, SIZE) != SIZE || close(w) != 0)
		return 2;

	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	int in = open(src, O_RDONLY);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int p[2] = {-1, -1};
	if (pipe2(p, O_NONBLOCK) != 0)
		return 2;
	static const char msg[] = "through the pipe";
	if (write(p[1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
		return 2;

	churn();
	if (sig)
		raise(sig);
	if (sleep_ms) {
		struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	churn();

	static unsigned char buf[2 * SIZE];
	int n = readall(in, buf, sizeof(buf));
	int copied = n > 0 && write(out, buf, (size_t)n) == n;
	close(out);
	int back = open(dst, O_RDONLY);
	int m = back < 0 ? -1 : readall(back, buf, sizeof(buf));
	int copy_ok = copied && n == SIZE && m == SIZE && memcmp(buf, pattern, SIZE) == 0;
	char pbuf[64];
	ssize_t pn = read(p[0], pbuf, sizeof(pbuf));
	int pipe_ok = pn == (ssize_t)sizeof(msg) && memcmp(pbuf, msg, sizeof(msg)) == 0;
	printf("{\"fds\": [%d, %d, %d, %d], \"read\": %d, \"copy_ok\": %d, \"pipe_read\": %zd, "
	       "\"pipe_ok\": %d}\n",
	       in, out, p[0], p[1], n, copy_ok, pn, pipe_ok);
	return 0;
}
