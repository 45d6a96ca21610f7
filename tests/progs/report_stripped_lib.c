/* report_stripped_lib.c: a shared library built stripped (-s) whose allocating functions are
 * static, so that no symbol names them: the report shows each of their call sites as
 * module+offset, as it does for a stripped system library's own code. Only its entry point,
 * report_stripped_run, is exported. */
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))
#define EXPORT   __attribute__((visibility("default")))

/* Keeps the compiler from removing a malloc/free pair. */
#define USE(p) __asm__ volatile("" ::"r"(p) : "memory")

NOINLINE static void st_one(int n)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(40);
		USE(p);
		free(p);
	}
	__asm__ volatile("" ::: "memory");
}

static void *keep[20000];

/* these stay live */
NOINLINE static void st_two(int n)
{
	for (int i = 0; i < n && i < 20000; i++) {
		keep[i] = malloc(80);
		USE(keep[i]);
	}
	__asm__ volatile("" ::: "memory");
}

NOINLINE static void st_three(int n)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(120);
		USE(p);
		free(p);
	}
	__asm__ volatile("" ::: "memory");
}

/* n, 2n and 3n allocations of 40, 80 and 120 bytes at three sites without a symbol (n up to
 * 10000), the 2n of 80 bytes left live */
EXPORT void report_stripped_run(int n)
{
	st_one(n);
	st_two(2 * n);
	st_three(3 * n);
	__asm__ volatile("" ::: "memory");
}
