/* report_inline.c: one call path that -O0 and -O2 build differently, for diff and merge across
 * builds: mk_item is a static helper with no inline attribute, which gcc -O2 inlines into fill
 * and -O0 calls. It allocates once itself (the innermost frame is mk_item) and once through
 * name_of (mk_item is a frame in the middle of that chain). It prints its counts as one JSON
 * line and must never allocate through malloc outside those sites before printing it.
 *
 * Usage: report_inline N [both]   (N items; "both": every other item's mk_item is called through
 * a function pointer on the same line, so that one build has the inlined and the called
 * mk_item on one path) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

struct item {
	char *name;
	int id;
};

static struct item *keep[100000];

NOINLINE static char *name_of(int id)
{
	char *s = malloc(24);
	snprintf(s, 24, "item-%d", id);
	return s;
}

/* -O2 inlines it into fill (it is small, static and has two callers at most) */
static struct item *mk_item(int id)
{
	struct item *it = malloc(sizeof(*it));
	it->id = id;
	it->name = name_of(id);
	return it;
}

/* volatile: the compiler cannot see through it, so this call stays a call at -O2 */
static struct item *(*volatile mk_called)(int) = mk_item;

NOINLINE static void fill(int n, int both)
{
	for (int i = 0; i < n; i++)
		keep[i] = both && (i & 1) ? mk_called(i) : mk_item(i);
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	int both = argc > 2 && strcmp(argv[2], "both") == 0;
	if (n < 1 || n > 100000)
		n = 1000;
	fill(n, both);
	printf("{\"items\":%d,\"both\":%s,\"objects\":%d,\"bytes\":%zu}\n", n,
	       both ? "true" : "false", 2 * n, (size_t)n * (sizeof(struct item) + 24));
	fflush(stdout);
	for (int i = 0; i < n; i++) {
		free(keep[i]->name);
		free(keep[i]);
	}
	return 0;
}
