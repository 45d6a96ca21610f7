/* truth.h: the ground truth of the shim tests' programs: each program counts its own
 * allocations per call site and prints them, with its self-checks, as one JSON line. Nothing
 * here may allocate through malloc (static buffers, write(2)), or it would change the truth. */
#ifndef TRUTH_H
#define TRUTH_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A call site: a function of its own that the compiler may neither inline, clone, fold with
 * another nor turn into a tail call, so the dump's innermost executable frame is in it. */
#ifdef __clang__
#define SITE __attribute__((noinline, used))
#else
#define SITE __attribute__((noipa, used))
#endif

struct truth_site {
	const char *name; /* the site function's name, as nm shows it */
	unsigned long long objects, bytes, live_objects, live_bytes;
};

static inline void truth_alloc(struct truth_site *s, size_t n)
{
	__atomic_add_fetch(&s->objects, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->bytes, n, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->live_objects, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->live_bytes, n, __ATOMIC_RELAXED);
}

static inline void truth_free(struct truth_site *s, size_t n)
{
	__atomic_sub_fetch(&s->live_objects, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&s->live_bytes, n, __ATOMIC_RELAXED);
}

/* ---- a JSON line in a static buffer ---- */

static char truth_buf[1 << 16];
static size_t truth_len;

__attribute__((format(printf, 1, 2))) static inline void truth_put(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(truth_buf + truth_len, sizeof(truth_buf) - truth_len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(truth_buf) - truth_len) {
		static const char msg[] = "truth.h: JSON line too long\n";
		ssize_t r = write(2, msg, sizeof(msg) - 1);
		(void)r;
		_exit(3);
	}
	truth_len += (size_t)n;
}

/* Self-checks: "name": value pairs that must be the same with and without the profiler. */
static char checks_buf[1 << 14];
static size_t checks_len;

static inline void check_val(const char *name, long long v)
{
	int n = snprintf(checks_buf + checks_len, sizeof(checks_buf) - checks_len, "%s\"%s\":%lld",
	                 checks_len ? "," : "", name, v);
	if (n > 0 && (size_t)n < sizeof(checks_buf) - checks_len)
		checks_len += (size_t)n;
}

static inline void truth_counts(unsigned long long o, unsigned long long b, unsigned long long lo,
                                unsigned long long lb)
{
	truth_put("{\"objects\":%llu,\"bytes\":%llu,\"live_objects\":%llu,\"live_bytes\":%llu}", o,
	          b, lo, lb);
}

/* Prints {"role": ROLE, "pid": .., "ppid": .., "sites": {...}, "total": {...}, "checks": {...}}
 * on stdout with one write(2). */
static inline void truth_print(const char *role, const struct truth_site *s, size_t n)
{
	unsigned long long t[4] = {0, 0, 0, 0};
	truth_len = 0;
	truth_put("{\"role\":\"%s\",\"pid\":%d,\"ppid\":%d,\"sites\":{", role, (int)getpid(),
	          (int)getppid());
	for (size_t i = 0; i < n; i++) {
		truth_put("%s\"%s\":", i ? "," : "", s[i].name);
		truth_counts(s[i].objects, s[i].bytes, s[i].live_objects, s[i].live_bytes);
		t[0] += s[i].objects;
		t[1] += s[i].bytes;
		t[2] += s[i].live_objects;
		t[3] += s[i].live_bytes;
	}
	truth_put("},\"total\":");
	truth_counts(t[0], t[1], t[2], t[3]);
	truth_put(",\"checks\":{%.*s}}\n", (int)checks_len, checks_buf);
	size_t off = 0;
	while (off < truth_len) {
		ssize_t w = write(1, truth_buf + off, truth_len - off);
		if (w <= 0)
			_exit(3);
		off += (size_t)w;
	}
}

#endif
