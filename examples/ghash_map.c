/* ghash_map.c: a GLib GHashTable of accounts keyed by strings, grown one insert at a time; with
 * --presize, the same lookups served by an array sized once, since GLib cannot create a hash
 * table large enough. Prints one JSON line of truth; it must never allocate outside its counters
 * except inside GLib, whose table allocations it predicts from GLib's policy (see below).
 *
 * Usage: ghash_map [ITEMS] [--presize]      (ITEMS defaults to 10000)
 *
 * How GLib 2.74 grows a GHashTable (glib/ghash.c):
 *
 * - Open addressing over three parallel arrays of 2^shift slots: hashes (guint), keys and values
 *   (gpointer; a table whose keys are its values, a "set", shares one array). On 64-bit, keys and
 *   values start as 4-byte entries and are widened to 8 bytes by the first pointer that needs more
 *   than 32 bits (heap pointers do). The table starts at 8 slots.
 * - After an insert that fills an unused slot, g_hash_table_maybe_resize() resizes when
 *   size <= occupied + occupied / 16 (the table is 15/16 full) or shrinks when it is under 1/4
 *   full. g_hash_table_resize() picks the power of two above nnodes * 1.333 (so after growing
 *   the table is 37% to 47% full), g_realloc()s the three arrays to the new size (in that order:
 *   hashes, keys, values) and g_new0()s a bitmap of one bit per slot to rehash in place, freed
 *   before it returns. So one growth is four allocations at four call sites inside GLib, the
 *   three arrays doubling or quadrupling at each. Each size has a prime modulus for the first
 *   probe (hash % prime), then quadratic probing within the power of two.
 * - There is no way to create a GHashTable large enough: g_hash_table_new(), _new_full() and
 *   _new_similar() (2.72) take no size, and emptying a big table (g_hash_table_remove_all) shrinks
 *   it back to 8 slots, so even reusing one does not keep its arrays. GLib's sized constructors
 *   are for arrays (g_array_sized_new, g_ptr_array_sized_new). So --presize shows the honest
 *   alternative when the keys are known up front and then only read: one array of exactly ITEMS
 *   records (g_new), filled in key order and searched with bsearch(). (g_array_sized_new would do
 *   too, but it rounds its allocation up to a power of two and g_array_sort allocates a scratch
 *   buffer: GLib allocations this program could not count exactly.)
 *
 * The program counts exactly the allocations it makes itself (keys with g_strdup, values with
 * g_new; GLib 2.46 and later always allocate with the system malloc). It cannot count GLib's
 * internal ones (there is no allocator hook), so for the table it prints what the policy above
 * makes GLib allocate for its inserts ("table_model"), checked against valgrind and ltrace for
 * GLib 2.74; the profile of a run is the independent measurement of it. */
#include <glib.h>
#include <stdint.h>

#include "example.h"

struct account {
	char key[16]; /* a copy of the key, so the sorted array can search by it */
	uint64_t id;
	double balance;
	unsigned visits;
	char country[4];
};

static const char *const countries[] = {"de", "fr", "us", "jp", "br", "in", "ng"};

static void fill_account(struct account *a, unsigned long i)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->key, sizeof(a->key), "user:%07u", (unsigned)i);
	a->id = 1000003u * i + 17;
	a->balance = (double)(i % 9973) * 1.25;
	a->visits = (unsigned)(i % 31);
	memcpy(a->country, countries[i % 7], 3);
}

/* GLib 2.74's table allocations for a map of big (64-bit) keys and values, as ghash.c makes them
 * for a run of inserts of new keys (see the comment at the top). */
struct table_model {
	struct ex_tally total; /* the table's own allocations during the inserts */
	unsigned long size;    /* slots after the last insert */
	unsigned resizes;      /* times the table grew */
};

static void model_alloc(struct table_model *m, size_t n, int growth)
{
	m->total.objects++;
	m->total.bytes += n;
	if (growth)
		ex_count_growth(n);
}

static void model_inserts(struct table_model *m, unsigned long items)
{
	m->size = 8;
	/* First insert: key != value, so the shared 4-byte key array is copied for the values
	 * (g_memdup2), then keys and values are each widened to 8-byte entries (g_new). */
	model_alloc(m, m->size * 4, 0);
	model_alloc(m, m->size * 8, 0);
	model_alloc(m, m->size * 8, 0);
	for (unsigned long n = 1; n <= items; n++) {
		if (m->size > n + n / 16)
			continue;
		unsigned long want = (unsigned long)((double)n * 1.333), size = 1;
		while (want) { /* g_hash_table_find_closest_shift() */
			want >>= 1;
			size <<= 1;
		}
		if (size < 8)
			size = 8;
		if (size <= m->size)
			continue;
		m->size = size;
		m->resizes++;
		model_alloc(m, size * 4, 1);             /* hashes */
		model_alloc(m, size * 8, 1);             /* keys */
		model_alloc(m, size * 8, 1);             /* values */
		model_alloc(m, (size + 31) / 32 * 4, 1); /* rehash bitmap */
	}
}

/* Builds the table and reads it back. Every allocation the program counts, and every one GLib
 * makes for the table, happens under this function (the "scope" of the JSON line). */
__attribute__((noinline)) static GHashTable *build_table(unsigned long items, double *sum)
{
	GHashTable *table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	for (unsigned long i = 0; i < items; i++) {
		struct account *a = g_new(struct account, 1);
		ex_count_alloc(sizeof(*a));
		fill_account(a, i);
		char *key = g_strdup(a->key);
		ex_count_alloc(strlen(key) + 1);
		g_hash_table_insert(table, key, a);
	}
	*sum = 0;
	for (unsigned long i = 0; i < items; i += 3) {
		char key[16];
		snprintf(key, sizeof(key), "user:%07u", (unsigned)i);
		struct account *a = g_hash_table_lookup(table, key);
		if (!a || a->id != 1000003u * i + 17) {
			fprintf(stderr, "ghash_map: lost %s\n", key);
			exit(1);
		}
		*sum += a->balance;
	}
	return table;
}

static int compare_keys(const void *a, const void *b)
{
	return strcmp(((const struct account *)a)->key, ((const struct account *)b)->key);
}

/* The pre-sized alternative: one array of exactly ITEMS records, filled in key order (as a sorted
 * export or a database index scan delivers them) and binary-searched. */
__attribute__((noinline)) static struct account *build_array(unsigned long items, double *sum)
{
	struct account *array = g_new(struct account, items);
	ex_count_alloc(items * sizeof(struct account));
	for (unsigned long i = 0; i < items; i++)
		fill_account(&array[i], i);
	*sum = 0;
	for (unsigned long i = 0; i < items; i += 3) {
		struct account probe;
		snprintf(probe.key, sizeof(probe.key), "user:%07u", (unsigned)i);
		const struct account *a =
		    bsearch(&probe, array, items, sizeof(*array), compare_keys);
		if (!a || a->id != 1000003u * i + 17) {
			fprintf(stderr, "ghash_map: lost %s\n", probe.key);
			exit(1);
		}
		*sum += a->balance;
	}
	return array;
}

int main(int argc, char **argv)
{
	unsigned long items;
	int presize;
	ex_args(argc, argv, &items, &presize);

	double sum;
	char extra[512];
	if (presize) {
		struct account *array = build_array(items, &sum);
		ex_count_free(items * sizeof(struct account));
		g_free(array);
		snprintf(extra, sizeof(extra),
		         ",\"glib\":\"%u.%u.%u\",\"structure\":\"array\",\"table_model\":null"
		         ",\"checksum\":%.2f",
		         glib_major_version, glib_minor_version, glib_micro_version, sum);
		ex_print("ghash", "build_array", items, presize, extra);
		return 0;
	}

	GHashTable *table = build_table(items, &sum);
	struct table_model m = {{0, 0}, 0, 0};
	model_inserts(&m, items);
	g_hash_table_destroy(table); /* frees every key and value with g_free */
	ex_truth.live = (struct ex_tally){0, 0};
	snprintf(
	    extra, sizeof(extra),
	    ",\"glib\":\"%u.%u.%u\",\"structure\":\"GHashTable\",\"table_model\":{"
	    "\"objects\":%llu,\"bytes\":%llu,\"final_size\":%lu,\"resizes\":%u},\"checksum\":%.2f",
	    glib_major_version, glib_minor_version, glib_micro_version, m.total.objects,
	    m.total.bytes, m.size, m.resizes, sum);
	ex_print("ghash", "build_table", items, presize, extra);
	return 0;
}
