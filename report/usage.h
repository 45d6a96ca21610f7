/* usage.h: fatal and non-fatal messages of the report tool (after git's usage.c) and the
 * allocation wrappers that die instead of returning NULL. Every message is one line starting
 * with "mapprof: "; nothing here ever returns to a caller after a fatal error. */
#ifndef MP_USAGE_H
#define MP_USAGE_H

#include <stddef.h>
#include <stdlib.h>

#define EXIT_USAGE    1 /* bad command line */
#define EXIT_BADINPUT 2 /* a dump (or other input) is unreadable or invalid */

/* Bad input or an environment failure: "mapprof: MSG", exit 2. */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Bad command line: "mapprof: MSG" and a hint to --help, exit 1. */
void die_usage(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* The command whose help die_usage points to (NULL: mapprof --help). */
void usage_for(const char *cmd);
/* A recoverable problem: prints "mapprof: MSG" and returns -1. */
int error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "mapprof: warning: MSG". */
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
/* realloc for an array of n elements of size bytes, with an overflow check. */
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Grows *arr (with *alloc slots of size elem) so that index `need - 1` is valid. */
#define ALLOC_GROW(arr, need, alloc)                                                               \
	do {                                                                                       \
		if ((size_t)(need) > (alloc)) {                                                    \
			size_t na_ = (alloc) ? (alloc)*2 : 16;                                     \
			while (na_ < (size_t)(need))                                               \
				na_ *= 2;                                                          \
			(arr) = xreallocarray((arr), na_, sizeof(*(arr)));                         \
			(alloc) = na_;                                                             \
		}                                                                                  \
	} while (0)

#endif
