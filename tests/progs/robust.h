/* robust.h: helpers shared by the robustness programs (tests/progs/robust_*): thread creation
 * at a known function, waiting for a file, and truth lines written to a file named by pid.
 * Nothing here may allocate through malloc (stack buffers, raw system calls), or it would change
 * the truth the programs count. */
#ifndef ROBUST_H
#define ROBUST_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "truth.h"

#define ROBUST_ENUM(n) S_##n,
#define ROBUST_NAME(n) [S_##n] = {#n, 0, 0, 0, 0},

#ifdef __cplusplus
extern "C" { /* unmangled: the tests find spawn by name */
#endif

/* pthread_create allocates for the new thread (glibc's DTV) unless it reuses a cached stack: the
 * tests account for those allocations by this frame, which is at no site. */
SITE static int spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int r = pthread_create(t, NULL, fn, arg);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return r;
}

#ifdef __cplusplus
}
#endif

static inline void robust_sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Waits until PATH exists (a dump appears at once: it is renamed into place). 0, or -1 after
 * SECONDS. */
static inline int robust_wait_file(const char *path, int seconds)
{
	for (long waited = 0; waited < seconds * 1000000L; waited += 2000) {
		if (access(path, F_OK) == 0)
			return 0;
		robust_sleep_us(2000);
	}
	return -1;
}

/* The base name of this executable, from /proc/self/exe, into BUF. */
static inline const char *robust_exe_name(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	buf[n > 0 ? n : 0] = 0;
	const char *slash = strrchr(buf, '/');
	return slash ? slash + 1 : buf;
}

/* truth_print into DIR/truth.<exe>.<pid>.json instead of stdout (one file per process image). */
static inline void robust_truth_file(const char *dir, const char *role, const struct truth_site *s,
                                     size_t n)
{
	char exe[4096], path[4096 + 256];
	snprintf(path, sizeof(path), "%s/truth.%s.%d.json", dir, robust_exe_name(exe, sizeof(exe)),
	         (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(3);
	int saved = dup(1);
	dup2(fd, 1);
	truth_print(role, s, n);
	dup2(saved, 1);
	close(saved);
	close(fd);
}

#endif
