/* uthash_map.c: a uthash map of accounts keyed by strings, grown one insert at a time or created
 * with enough buckets up front (--presize). It counts its own allocations and prints them as one
 * JSON line; it must never allocate outside the counters of example.h.
 *
 * Usage: uthash_map [ITEMS] [--presize]      (ITEMS defaults to 10000)
 *
 * How uthash 2.3.0 grows (read /usr/include/uthash.h, HASH_ADD_TO_BKT and HASH_EXPAND_BUCKETS):
 *
 * - The first HASH_ADD makes the table: one UT_hash_table and an array of
 *   HASH_INITIAL_NUM_BUCKETS (32) buckets of 16 bytes, so 512 bytes.
 * - An add puts the item at the head of its bucket's chain. When that one chain reaches
 *   (expand_mult + 1) * HASH_BKT_CAPACITY_THRESH items (10 while expand_mult is 0), the table
 *   doubles: HASH_EXPAND_BUCKETS mallocs a new array of 2 * num_buckets buckets, moves every item
 *   into it and frees the old one. So the trigger is the longest chain, not the average load:
 *   with a good hash a table expands at about 2 to 3 items per bucket on average.
 * - While moving items, the expansion computes the ideal chain length for the new size,
 *   ceil(items / new_buckets), and counts the items that end up beyond it in their chain
 *   (nonideal_items). A bucket whose chain is longer than expand_mult * ideal gets its
 *   expand_mult raised, so that bucket alone must grow to 20, 30, ... items before it triggers
 *   the next expansion: a crowded bucket cannot force expansion after expansion.
 * - If more than half the items are nonideal after an expansion, the expansion was
 *   "ineffective" (ineff_expands++); after two ineffective expansions in a row uthash sets
 *   noexpand and never expands that table again (the hash does not suit the keys, and doubling
 *   would not help). With the default Jenkins hash and these keys that never happens.
 *
 * Every expansion is one malloc of a bucket array twice the size of the last: 1 KiB, 2 KiB, 4 KiB,
 * ... all made inside the HASH_ADD macro, so in a profile they sit on the line of the HASH_ADD in
 * the function that adds, with no growth function on the stack. Only their sizes, doubling at one
 * call site, give them away. For 10,000 of these keys the table expands 7 times, 32 -> 4096
 * buckets.
 *
 * Pre-sizing. uthash has no reserve call and 2.3.0 #defines HASH_INITIAL_NUM_BUCKETS(_LOG2)
 * without #ifndef, so defining them before the #include only gets a redefinition error. Since
 * HASH_MAKE_TABLE is a macro, the value in effect where HASH_ADD is written is the one used: #undef
 * both after the #include and define your own, as below (here they read a variable so that one
 * binary has both behaviours). Pick the size with care: the grown table ends with some chains at
 * 10 items that only its raised expand_mult tolerates; a fresh table of that same size has
 * expand_mult 0 everywhere and usually expands once more. So --presize asks for the power of two
 * at or above ITEMS / 2 buckets (8192 for 10,000), which adds no bucket array after the first. */
#include <stdint.h>

#include "example.h"

/* uthash allocates through these two macros; they count the table's allocations apart from the
 * items' so the JSON can say how much of the total is the table. */
static struct ex_tally table_allocs;
#define uthash_malloc(sz)  count_table_malloc(sz)
#define uthash_free(p, sz) ex_free((p), (sz))

EX_INLINE void *count_table_malloc(size_t n)
{
	table_allocs.objects++;
	table_allocs.bytes += n;
	return ex_malloc(n);
}

#include <uthash.h>

/* The pre-sizing knob; see the comment at the top. */
enum { UTHASH_DEFAULT_LOG2 = HASH_INITIAL_NUM_BUCKETS_LOG2 };
static unsigned initial_log2 = UTHASH_DEFAULT_LOG2;
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS_LOG2 initial_log2
#define HASH_INITIAL_NUM_BUCKETS      (1U << initial_log2)

struct account {
	char *key; /* "user:0000042": allocated on its own, as keys read from input usually are */
	uint64_t id;
	double balance;
	unsigned visits;
	char country[4];
	UT_hash_handle hh;
};

static const char *const countries[] = {"de", "fr", "us", "jp", "br", "in", "ng"};

static struct account *new_account(unsigned long i)
{
	char key[32];
	snprintf(key, sizeof(key), "user:%07lu", i);
	struct account *a = ex_malloc(sizeof(*a));
	a->key = ex_strdup(key);
	a->id = 1000003u * i + 17;
	a->balance = (double)(i % 9973) * 1.25;
	a->visits = (unsigned)(i % 31);
	memcpy(a->country, countries[i % 7], 3);
	return a;
}

/* Adds one account, noting it as growth when the add expanded the buckets. */
static void add_account(struct account **map, struct account *a)
{
	unsigned before = *map ? (*map)->hh.tbl->num_buckets : 0;
	HASH_ADD_KEYPTR(hh, *map, a->key, strlen(a->key), a);
	unsigned after = (*map)->hh.tbl->num_buckets;
	if (before && after != before)
		ex_count_growth(after * sizeof(UT_hash_bucket));
}

/* Builds the map and reads it back, as a program loading an index would. Every counted
 * allocation happens under this function (the "scope" of the JSON line). */
__attribute__((noinline)) static struct account *build_map(unsigned long items, double *sum)
{
	struct account *map = NULL;
	for (unsigned long i = 0; i < items; i++)
		add_account(&map, new_account(i));

	*sum = 0;
	for (unsigned long i = 0; i < items; i += 3) {
		char key[32];
		struct account *a;
		snprintf(key, sizeof(key), "user:%07lu", i);
		HASH_FIND_STR(map, key, a);
		if (!a || a->id != 1000003u * i + 17) {
			fprintf(stderr, "uthash_map: lost %s\n", key);
			exit(1);
		}
		*sum += a->balance;
	}
	return map;
}

__attribute__((noinline)) static void free_map(struct account *map)
{
	struct account *a, *tmp;
	HASH_ITER(hh, map, a, tmp)
	{
		HASH_DEL(map, a);
		ex_free(a->key, strlen(a->key) + 1);
		ex_free(a, sizeof(*a));
	}
}

int main(int argc, char **argv)
{
	unsigned long items;
	int presize;
	ex_args(argc, argv, &items, &presize);
	if (presize)
		while (initial_log2 < 30 && (1ul << initial_log2) < items / 2)
			initial_log2++;

	double sum;
	struct account *map = build_map(items, &sum);
	unsigned buckets = map->hh.tbl->num_buckets;
	unsigned noexpand = map->hh.tbl->noexpand;
	free_map(map);

	char extra[256];
	snprintf(extra, sizeof(extra),
	         ",\"initial_buckets\":%u,\"final_buckets\":%u,\"noexpand\":%s"
	         ",\"table\":{\"objects\":%llu,\"bytes\":%llu},\"checksum\":%.2f",
	         1u << initial_log2, buckets, noexpand ? "true" : "false", table_allocs.objects,
	         table_allocs.bytes, sum);
	ex_print("uthash", "build_map", items, presize, extra);
	return 0;
}
