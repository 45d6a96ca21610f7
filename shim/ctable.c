/* ctable.c: open-addressing tables of (chain, size class) counters, used both
 * per thread (lock-free, owner writes) and globally (under mp.lock).
 * Memory comes from mmap; never malloc, never I/O. */
#include <string.h>

#include "shim.h"

/* The top bits of a multiplicative hash. Tables of different sizes then
 * order keys alike: copying one table into another in slot order (a flush,
 * a snapshot) inserts in home order, never into one long cluster, as taking
 * the low bits of the same hash did (copying into a smaller table then cost
 * a quadratic number of probes). */
static inline uint64_t slot_of(uint64_t key, uint64_t cap)
{
	return (key * 0x9e3779b97f4a7c15ull) >> (64 - __builtin_ctzll(cap));
}

/* Find key's slot; with insert, claim an empty one (the caller keeps the
 * load factor below one half, so probing always ends). */
struct mp_counts *mp_ctable_slot(struct mp_ctable *t, uint64_t key, bool insert)
{
	if (!t->cap)
		return NULL;
	uint64_t mask = t->cap - 1;
	for (uint64_t i = slot_of(key, t->cap);; i = (i + 1) & mask) {
		struct mp_counts *c = &t->slots[i];
		if (c->key == key)
			return c;
		if (c->key == 0) {
			if (!insert)
				return NULL;
			c->min = UINT64_MAX;
			__atomic_store_n(&c->key, key, __ATOMIC_RELEASE);
			t->used++;
			return c;
		}
	}
}

/* Make room for n more keys, keeping the load factor at most one half. */
bool mp_ctable_reserve(struct mp_ctable *t, uint64_t n)
{
	if ((t->used + n) * 2 <= t->cap)
		return true;
	uint64_t cap = t->cap ? t->cap : 1024;
	while ((t->used + n) * 2 > cap)
		cap *= 2;
	/* A rehash, or a table sized for entries it gets at once (a dump's
	 * snapshot), is written all through. */
	struct mp_counts *slots = mp_map_table(cap * sizeof(*slots), t->cap || cap > 1024);
	if (!slots)
		return false;
	struct mp_ctable bigger = {slots, cap, 0};
	for (uint64_t i = 0; i < t->cap; i++) {
		if (t->slots[i].key) {
			struct mp_counts *c = mp_ctable_slot(&bigger, t->slots[i].key, true);
			*c = t->slots[i];
		}
	}
	mp_unmap(t->slots, t->cap * sizeof(*t->slots));
	*t = bigger;
	return true;
}

void mp_counts_add(struct mp_counts *dst, const struct mp_counts *src)
{
	dst->objects += __atomic_load_n(&src->objects, __ATOMIC_RELAXED);
	dst->bytes += __atomic_load_n(&src->bytes, __ATOMIC_RELAXED);
	uint64_t mn = __atomic_load_n(&src->min, __ATOMIC_RELAXED);
	uint64_t mx = __atomic_load_n(&src->max, __ATOMIC_RELAXED);
	if (mn < dst->min)
		dst->min = mn;
	if (mx > dst->max)
		dst->max = mx;
}
