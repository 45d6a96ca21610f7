/* figures_onefn.c: one function, named at build time (-DFN=name), makes every counted allocation:
 * COUNT mallocs of 48 bytes, all freed. Built twice under two names it gives the two sides of a
 * diff whose only change is a renamed function: one frame only in BASE, one only in NEW. It
 * prints its own counts as one JSON line, after the allocations.
 *
 * Usage: figures_onefn [COUNT]      (default 1000) */
#include <stdio.h>
#include <stdlib.h>

#ifndef FN
#error "build with -DFN=function_name"
#endif
#define STR_(x) #x
#define STR(x)  STR_(x)

/* Keeps the compiler from removing a malloc/free pair. */
#define USE(p) __asm__ volatile("" ::"r"(p) : "memory")

__attribute__((noinline)) static void FN(long count)
{
	for (long i = 0; i < count; i++) {
		void *p = malloc(48);
		USE(p);
		free(p);
	}
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 1000;
	FN(count);
	printf("{\"function\":\"%s\",\"objects\":%ld,\"bytes\":%ld}\n", STR(FN), count, count * 48);
	return 0;
}
