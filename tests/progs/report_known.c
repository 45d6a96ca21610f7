/* report_known.c: tables that grow through functions named like the growth functions of
 * well-known containers (CPython's dictresize and list_resize, Perl's S_hsplit, Lua's luaH_resize,
 * khash's kh_resize_*, git's hashmap rehash), for `mapprof growth`'s recognition of them by name.
 * Each table doubles its slot array in its growth function; a table of another name grows the
 * same way without a known name, and one fills a table it sized once. It counts every growth
 * allocation and prints them as one JSON line.
 *
 * Usage: report_known N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))

struct table {
	void **slots;
	size_t cap, n;
};

struct truth {
	const char *name;
	unsigned long allocations, bytes;
	unsigned long sizes[64];
	int nsizes;
};

static struct truth truths[16];
static int ntruths;

static struct truth *truth_of(const char *name)
{
	for (int i = 0; i < ntruths; i++)
		if (strcmp(truths[i].name, name) == 0)
			return &truths[i];
	truths[ntruths].name = name;
	return &truths[ntruths++];
}

/* The table's first slot array: made outside the growth function, so it is not growth. */
NOINLINE static void table_init(struct table *t, size_t cap)
{
	t->slots = malloc(cap * sizeof(void *));
	if (!t->slots)
		exit(1);
	t->cap = cap;
	t->n = 0;
}

/* The body every growth function shares: a new slot array twice the size, the old one freed. */
static inline __attribute__((always_inline)) void double_slots(struct table *t, const char *name)
{
	size_t cap = t->cap * 2;
	void **s = malloc(cap * sizeof(void *));
	if (!s)
		exit(1);
	memcpy(s, t->slots, t->n * sizeof(void *));
	free(t->slots);
	t->slots = s;
	t->cap = cap;
	struct truth *tr = truth_of(name);
	tr->allocations++;
	tr->bytes += cap * sizeof(void *);
	if (tr->nsizes < 64)
		tr->sizes[tr->nsizes++] = cap * sizeof(void *);
}

/* Named as the real ones are (the regexes of `mapprof growth` match these names). */
NOINLINE void dictresize(struct table *t)
{
	double_slots(t, "dictresize");
}

NOINLINE void list_resize(struct table *t)
{
	double_slots(t, "list_resize");
}

NOINLINE void set_table_resize(struct table *t)
{
	double_slots(t, "set_table_resize");
}

NOINLINE void S_hsplit(struct table *t)
{
	double_slots(t, "S_hsplit");
}

NOINLINE void luaH_resize(struct table *t)
{
	double_slots(t, "luaH_resize");
}

NOINLINE void kh_resize_int(struct table *t)
{
	double_slots(t, "kh_resize_int");
}

NOINLINE void rehash(struct table *t)
{
	double_slots(t, "rehash");
}

/* Grows the same way under a name nobody knows: found by its sizes alone. */
NOINLINE void my_table_enlarge(struct table *t)
{
	double_slots(t, "my_table_enlarge");
}

typedef void (*grow_fn)(struct table *);

NOINLINE static void fill(grow_fn grow, long n, size_t start)
{
	struct table t;
	table_init(&t, start);
	static int value;
	for (long i = 0; i < n; i++) {
		if (t.n == t.cap)
			grow(&t);
		t.slots[t.n++] = &value;
	}
	free(t.slots);
}

/* A table sized once for all its items: no growth. */
NOINLINE static void fill_presized(long n)
{
	struct table t;
	table_init(&t, (size_t)n);
	static int value;
	for (long i = 0; i < n; i++)
		t.slots[t.n++] = &value;
	free(t.slots);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000;
	if (n < 16 || n > 10000000)
		n = 5000;
	static const struct {
		grow_fn fn;
		const char *name;
	} growers[] = {
	    {dictresize, "dictresize"},
	    {list_resize, "list_resize"},
	    {set_table_resize, "set_table_resize"},
	    {S_hsplit, "S_hsplit"},
	    {luaH_resize, "luaH_resize"},
	    {kh_resize_int, "kh_resize_int"},
	    {rehash, "rehash"},
	    {my_table_enlarge, "my_table_enlarge"},
	};
	for (size_t i = 0; i < sizeof(growers) / sizeof(growers[0]); i++) {
		truth_of(growers[i].name);
		fill(growers[i].fn, n, 8);
	}
	fill_presized(n);
	printf("{\"n\":%ld", n);
	for (int i = 0; i < ntruths; i++) {
		struct truth *t = &truths[i];
		printf(",\"%s\":{\"allocations\":%lu,\"bytes\":%lu,\"sizes\":[", t->name,
		       t->allocations, t->bytes);
		for (int k = 0; k < t->nsizes; k++)
			printf("%s%lu", k ? "," : "", t->sizes[k]);
		printf("]}");
	}
	printf("}\n");
	fflush(stdout);
	return 0;
}
