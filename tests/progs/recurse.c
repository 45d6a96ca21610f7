/* recurse.c: allocates at the bottom of recursions of given depths, a size of its own per depth
 * (1000 + depth), so a test can tell the chains apart and check what a depth limit does to them.
 * Prints the truth (truth.h) with a check entry per depth; never allocates outside site_leaf.
 *
 * usage: recurse DEPTH:COUNT...   (a recursion DEPTH calls deep, COUNT times) */
#include <stdlib.h>
#include <string.h>

#include "truth.h"

static struct truth_site sites[] = {{"site_leaf", 0, 0, 0, 0}};

#define MAXKEPT  100000
#define MAXDEPTH 4096
void *kept[MAXKEPT];
static int kept_depth[MAXKEPT];
static size_t nkept;
static long objects[MAXDEPTH], live[MAXDEPTH];

SITE static void *site_leaf(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[0], n);
	return p;
}

/* Recursion the compiler must keep: not inlined, not a loop, not a tail call. */
SITE static int recurse(int depth, int level)
{
	if (level == 0) {
		void *p = site_leaf(1000 + (size_t)depth);
		if (!p)
			return -1;
		kept_depth[nkept] = depth;
		kept[nkept++] = p;
		return 0;
	}
	int r = recurse(depth, level - 1);
	__asm__ volatile("" ::: "memory");
	return r;
}

int main(int argc, char **argv)
{
	char name[64];
	for (int i = 1; i < argc; i++) {
		int depth = atoi(argv[i]);
		const char *colon = strchr(argv[i], ':');
		int count = colon ? atoi(colon + 1) : 1;
		if (depth < 0 || depth >= MAXDEPTH || count < 0 || nkept + (size_t)count > MAXKEPT)
			return 2;
		for (int k = 0; k < count; k++)
			if (recurse(depth, depth) != 0)
				return 3;
		objects[depth] += count;
		live[depth] += count;
	}
	/* Every second block is freed, so inuse is checked through truncation too. */
	for (size_t k = 0; k < nkept; k += 2) {
		free(kept[k]);
		truth_free(&sites[0], 1000 + (size_t)kept_depth[k]);
		live[kept_depth[k]]--;
	}
	for (int d = 0; d < MAXDEPTH; d++) {
		if (!objects[d])
			continue;
		snprintf(name, sizeof(name), "depth_%d_objects", d);
		check_val(name, objects[d]);
		snprintf(name, sizeof(name), "depth_%d_live", d);
		check_val(name, live[d]);
	}
	truth_print("main", sites, 1);
	return 0;
}
