/* table.c: what one allocation costs. A per-thread table keyed by the hash
 * of the return addresses and the size class (and the frame count of the
 * frame-pointer walk that found the chain) holds the chain's id and its
 * counters (one global uthash table of chains is locked only for a (chain,
 * class) the thread has not seen; per-thread tables are folded into one
 * global counters table), and the live-block map remembers blocks for their
 * frees.
 * Runs inside malloc: never allocate through malloc, never block on I/O. */
#include <fenv.h>
#include <math.h>
#include <sched.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "hashkeys.h"
#include "shim.h"

/* Per-thread counters, keyed by (chain, size class). A table of keys in
 * buckets of TC_WAYS (one cache line), compared all at once, and beside it
 * the entries: the chain's id and its counters, 32 bytes, two to a line.
 *
 * How the lookup goes is what the hot path's time hangs on, more than cache
 * misses: it comes right after the walk, and a mispredicted branch there
 * waits for the walk's whole chain of loads before the CPU goes on. A
 * linear-probing table stops after a random number of probes; with 64-byte
 * entries at most half full (workload 1's 2,500 pairs in 512 KiB) that was
 * a mispredict on about one call in five, and packing the entries tighter
 * made it worse. A key is almost always in its home bucket (the table is at
 * most 3/4 full), found without a branch on where. The table grows to
 * TC_MAX entries, then is flushed into the global table. */
#define TC_WAYS 8
#define TC_MIN  64 /* 2.5 KiB: a table is filled at random places, a page fault each */
#define TC_MAX  65536

/* An entry: the chain and class (tag, published last: a dump reads the
 * entries while the thread counts) and the counts. Requests of 2^32 bytes
 * or more, whose sizes min and max cannot hold, are counted in the global
 * table. */
struct tc_entry {
	uint64_t objects, bytes;
	uint32_t min, max; /* of the sizes counted: UINT32_MAX and 0 while none */
	uint32_t tag;      /* TC_USED | class << 24 | chain id; 0: empty */
	uint32_t reserved;
};
_Static_assert(sizeof(struct tc_entry) == 32, "two entries to a cache line");
_Static_assert(MP_MAX_CHAINS < (1u << 24), "a chain id fits an entry's tag");
#define TC_USED (1u << 31)
/* The suite's test build lowers this (test_shim_size_classes). */
#ifndef MP_TC_BIG
#define MP_TC_BIG UINT32_MAX /* larger requests are counted in the global table */
#endif
#define TC_BIG ((uint64_t)MP_TC_BIG)

static inline uint32_t tc_tag(uint32_t id, unsigned cls)
{
	return TC_USED | (uint32_t)cls << 24 | id;
}
static inline uint32_t tc_id(uint32_t tag)
{
	return tag & ((1u << 24) - 1);
}
static inline unsigned tc_cls(uint32_t tag)
{
	return (tag >> 24) & 0x7f;
}

struct mp_tcache {
	struct mp_tcache *next, *prev;
	const int *unwinding; /* the owner's mp_unwinding */
	/* Grown and flushed under mp.lock (a dump reads the entries): cap keys
	 * (0: empty), then cap entries, entry i for key i, in one mapping. */
	uint64_t *keys;
	struct tc_entry *tab;
	uint64_t cap, used;
	uint32_t shift;       /* 64 - log2 of the number of buckets */
	uint32_t fast_misses; /* fp mode: fast walks in a row that were of no use */
	uint32_t fast_skip;   /* fp mode: calls left that go straight to the checked walk */
	bool stack_unknown;   /* made inside pthread_getattr_np: learn the stack later */
	uint64_t epoch;       /* the unload epoch when it was last emptied (mp_chain_word) */
};

static __thread struct mp_tcache *tls_tc;
static __thread bool tls_dead; /* past our thread-exit hook: use the global table */
uint8_t mp_sample_filter[MP_FILTER_SIZE];
static __thread uint64_t tls_rng;

#define META_CHAIN_BITS 24
#define META_SIZE_MAX   ((1ull << 40) - 1)

static inline uint64_t meta_make(uint32_t chain, uint64_t size)
{
	if (size > META_SIZE_MAX)
		size = META_SIZE_MAX;
	return size << META_CHAIN_BITS | chain;
}
static inline uint32_t meta_chain(uint64_t meta)
{
	return (uint32_t)(meta & ((1u << META_CHAIN_BITS) - 1));
}
static inline uint64_t meta_size(uint64_t meta)
{
	return meta >> META_CHAIN_BITS;
}

/* Spin until *flag is 0: pausing, and now and then giving the processor
 * away (the thread that will clear it may be waiting for one). */
static void wait_zero(const int *flag)
{
	unsigned spins = 0;
	while (__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		if (++spins % 256 == 0)
			sched_yield();
	}
}

void mp_spin_wait(int *l)
{
	do
		wait_zero(l);
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE));
}

static inline void bump(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, *p + v, __ATOMIC_RELAXED);
}

static void lost(void)
{
	__atomic_add_fetch(&mp.not_recorded, 1, __ATOMIC_RELAXED);
}

/* ---- chains ---- */

/* Products with a different random odd multiplier per position are
 * independent of each other, so the CPU overlaps them (a sequential mix was
 * the largest cost of the hot path); one final mix spreads the sum. The
 * per-thread table matches a chain by this 64-bit hash alone and never reads
 * the chain's stored key, which costs several cache misses: a false match
 * needs two distinct keys whose sums of products with the (fixed, randomly
 * drawn) odd multipliers agree modulo 2^64; the key keeps 63 bits of it
 * (tc_key), so about 2^-63 per pair of a thread's (chain, class) entries
 * (for 100,000 of them, about 5 in 10^10). The global table compares
 * keys in full. */
_Static_assert(MP_HASHKEYS >= MP_MAX_DEPTH + 2, "a multiplier per key position");
static inline uint64_t hash_ips(const uintptr_t *ips, uint32_t n)
{
	struct mp_hash s = {0};
	for (uint32_t i = 0; i < n; i++)
		mp_hash_add(&s, ips[i], i);
	return mp_hash_final(s, n);
}

static bool chains_grow(void)
{
	uint32_t cap = mp.chains_cap ? mp.chains_cap * 2 : 4096;
	struct mp_chain_rec **c = mp_map_table(cap * sizeof(*c), mp.chains_cap);
	if (!c)
		return false;
	if (mp.chains)
		memcpy(c, mp.chains, mp.nchains * sizeof(*c));
	mp_unmap(mp.chains, mp.chains_cap * sizeof(*c));
	mp.chains = c;
	mp.chains_cap = cap;
	return true;
}

/* ---- distinct frames ---- */

static inline uint64_t frame_home(uint32_t module, uint64_t offset, uint64_t cap)
{
	uint64_t h = (offset ^ (uint64_t)module << 44) * 0x9e3779b97f4a7c15ull;
	return h >> (64 - __builtin_ctzll(cap));
}

/* The first frame table holds this many frames: a page of frames and two of
 * slots. Small, because its slots are written at random places, and on some
 * virtual machines a page faulted in costs over 10 us; a grown table is
 * mapped filled (mp_map_table). */
#define FRAMES_MIN 256

/* Room for one more frame. mp.lock held. */
static bool frames_make_room(void)
{
	if (mp.nframes == mp.frames_cap) {
		if (mp.frames_cap >= UINT32_MAX / 2)
			return false;
		uint32_t cap = mp.frames_cap ? mp.frames_cap * 2 : FRAMES_MIN;
		struct mp_frame *f = mp_map_table((size_t)cap * sizeof(*f), mp.frames_cap);
		if (!f)
			return false;
		if (mp.frames)
			memcpy(f, mp.frames, (size_t)mp.nframes * sizeof(*f));
		mp_unmap(mp.frames, (size_t)mp.frames_cap * sizeof(*f));
		mp.frames = f;
		mp.frames_cap = cap;
	}
	if (((uint64_t)mp.nframes + 1) * 2 <= mp.frame_slots_cap)
		return true;
	uint64_t cap = mp.frame_slots_cap ? mp.frame_slots_cap * 2 : 2 * FRAMES_MIN;
	struct mp_frame_slot *slots = mp_map_table(cap * sizeof(*slots), mp.frame_slots_cap);
	if (!slots)
		return false;
	for (uint64_t i = 0; i < mp.frame_slots_cap; i++) {
		const struct mp_frame_slot *o = &mp.frame_slots[i];
		if (!o->id1)
			continue;
		uint64_t j = frame_home(o->module, o->offset, cap);
		while (slots[j].id1)
			j = (j + 1) & (cap - 1);
		slots[j] = *o;
	}
	mp_unmap(mp.frame_slots, mp.frame_slots_cap * sizeof(*slots));
	mp.frame_slots = slots;
	mp.frame_slots_cap = cap;
	return true;
}

/* The id of frame f in mp.frames, added if new. mp.lock held. */
static bool frame_intern(const struct mp_frame *f, uint32_t *id)
{
	if (!frames_make_room())
		return false;
	uint64_t mask = mp.frame_slots_cap - 1, i = frame_home(f->module, f->offset, mask + 1);
	for (; mp.frame_slots[i].id1; i = (i + 1) & mask) {
		const struct mp_frame_slot *o = &mp.frame_slots[i];
		if (o->offset == f->offset && o->module == f->module) {
			*id = o->id1 - 1;
			return true;
		}
	}
	*id = mp.nframes++;
	mp.frames[*id] = (struct mp_frame){.module = f->module, .offset = f->offset};
	mp.frame_slots[i] = (struct mp_frame_slot){f->offset, f->module, *id + 1};
	return true;
}

/* The chain whose frames (and flags) are those of frames[0..n], or NULL.
 * mp.lock held. */
static struct mp_chain_rec *chain_by_frames(const uint32_t *frames, uint32_t n)
{
	struct mp_chain_rec *c;
	HASH_FIND(hh_frames, mp.chain_frames, frames, (unsigned)((n + 1) * sizeof(*frames)), c);
	return c;
}

/* key: ips[0..n-1] plus the flags word at ips[n]; the frames, resolved by
 * the caller, in mp.resolving. A key new only by its epoch (mp_chain_word)
 * whose frames an older chain has is that chain, and its record takes the
 * new key (the same frames are the same addresses: a module fixes its load
 * address). So the dump (mp.chains) holds each chain once. mp.lock held. */
static struct mp_chain_rec *chain_new(const uintptr_t *key, uint32_t n, uint64_t h)
{
	static uint32_t ids[MP_MAX_DEPTH + 1]; /* under mp.lock */
	for (uint32_t k = 0; k < n; k++)
		if (!frame_intern(&mp.resolving[k], &ids[k]))
			return NULL;
	ids[n] = (uint32_t)key[n];
	unsigned keylen = (unsigned)((n + 1) * sizeof(*key));
	struct mp_chain_rec *c = chain_by_frames(ids, n);
	if (c) {
		HASH_DELETE(hh, mp.chain_table, c);
		c->ips[n] = key[n];
		c->hash = h;
	} else {
		if (mp.nchains >= MP_MAX_CHAINS || (mp.nchains == mp.chains_cap && !chains_grow()))
			return NULL;
		c = mp_arena_alloc(sizeof(*c));
		uintptr_t *ips = mp_arena_alloc(keylen);
		uint32_t *frames = mp_arena_alloc((n + 1) * sizeof(*frames));
		if (!c || !ips || !frames)
			return NULL;
		memcpy(ips, key, keylen);
		memcpy(frames, ids, (n + 1) * sizeof(*frames));
		*c = (struct mp_chain_rec){
		    .id = mp.nchains,
		    .flags = (uint32_t)key[n],
		    .nframes = n,
		    .hash = h,
		    .ips = ips,
		    .frames = frames,
		};
		HASH_ADD_KEYPTR(hh_frames, mp.chain_frames, c->frames,
		                (unsigned)((n + 1) * sizeof(*frames)), c);
		if (!mp.chain_frames)
			return NULL;
		mp.chains[mp.nchains++] = c;
	}
	HASH_ADD_KEYPTR_BYHASHVALUE(hh, mp.chain_table, c->ips, keylen, (unsigned)h, c);
	if (!mp.chain_table)
		return NULL; /* uthash could not make its table */
	mp.chain_keys++;
	return c;
}

/* The chain of key[0..n) (key[n] holds its flags word, h is its hash),
 * found or made in the global table; NULL when it cannot be recorded. */
static struct mp_chain_rec *chain_find(uintptr_t *key, uint32_t n, uint64_t h)
{
	struct mp_chain_rec *c;
	unsigned keylen = (unsigned)((n + 1) * sizeof(*key));
	pthread_mutex_lock(&mp.lock);
	HASH_FIND_BYHASHVALUE(hh, mp.chain_table, key, keylen, (unsigned)h, c);
	uint32_t seen = mp.chain_keys;
	pthread_mutex_unlock(&mp.lock);
	if (c)
		return c;
	/* A new chain: bring the module map up to date first, without mp.lock
	 * (see modules.c for the lock order); resolving its frames only reads
	 * the map. */
	mp_modules_check();
	pthread_mutex_lock(&mp.lock);
	/* Another thread may have made it meanwhile; if no key was added at
	 * all since the lookup above, no need to look again. */
	if (mp.chain_keys != seen)
		HASH_FIND_BYHASHVALUE(hh, mp.chain_table, key, keylen, (unsigned)h, c);
	if (!c) {
		mp_frames_resolve(key, n, mp.resolving);
		c = chain_new(key, n, h);
	}
	pthread_mutex_unlock(&mp.lock);
	return c;
}

/* ---- counters ---- */

/* An entry's key: the chain's hash h, the size class and, for a chain a
 * checked frame-pointer walk found, the number of frames that walk took
 * (nfp, 0 otherwise). The fast walk can use only such an entry, one whose
 * every step was checked and which ended where it did (mp_stack_fp_fast),
 * and it finds one by asking for its own nfp: an entry libunwind made for
 * the same chain (nfp 0) is another entry, which the dump adds to it. Never
 * 0 (an empty slot). */
static inline uint64_t tc_key(uint64_t h, uint32_t nfp, unsigned cls)
{
	return (h + nfp * 0xc2b2ae3d27d4eb4full + cls * 0x165667b19e3779f9ull) | 1;
}

static inline size_t tc_bytes(uint64_t cap)
{
	return cap * (sizeof(uint64_t) + sizeof(struct tc_entry));
}

static inline uint64_t tc_bucket(uint64_t key, uint32_t shift)
{
	return (key * 0x9e3779b97f4a7c15ull) >> shift;
}

/* The slots of a bucket that hold key (key 0: the empty ones), as a bit
 * mask, without a branch. */
#if defined(__SSE2__)
static inline unsigned tc_match(const uint64_t *bucket, uint64_t key)
{
	__m128i k = _mm_set1_epi64x((long long)key);
	unsigned m = 0;
	for (int i = 0; i < TC_WAYS / 2; i++) {
		__m128i c = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)bucket + i), k);
		c = _mm_and_si128(c, _mm_shuffle_epi32(c, _MM_SHUFFLE(2, 3, 0, 1)));
		m |= (unsigned)_mm_movemask_pd(_mm_castsi128_pd(c)) << (2 * i);
	}
	return m;
}
#else
static inline unsigned tc_match(const uint64_t *bucket, uint64_t key)
{
	unsigned m = 0;
	for (int i = 0; i < TC_WAYS; i++)
		m |= (unsigned)(bucket[i] == key) << i;
	return m;
}
#endif

/* This thread's entry of key, or NULL. A key is stored in the first bucket
 * from its home on that has room, and nothing is removed but by emptying the
 * whole table: a bucket with an empty slot ends the search. */
static inline struct tc_entry *tc_find(struct mp_tcache *tc, uint64_t key)
{
	if (unlikely(!tc->cap))
		return NULL;
	uint64_t mask = tc->cap / TC_WAYS - 1;
	uint64_t home = tc_bucket(key, tc->shift);
	/* The entry is most likely in the bucket's first ways (filled first):
	 * its line is fetched while the keys are compared. */
	__builtin_prefetch(&tc->tab[home * TC_WAYS]);
	__builtin_prefetch(&tc->tab[home * TC_WAYS + 2]);
	for (uint64_t b = home, n = 0; n <= mask; n++, b = (b + 1) & mask) {
		const uint64_t *bucket = tc->keys + b * TC_WAYS;
		unsigned hit = tc_match(bucket, key);
		if (likely(hit))
			return &tc->tab[b * TC_WAYS + (unsigned)__builtin_ctz(hit)];
		if (tc_match(bucket, 0))
			break;
	}
	return NULL;
}

/* Where key goes (tc_find's rule), in a table of cap slots with room. */
static uint64_t tc_free_slot(const uint64_t *keys, uint64_t cap, uint32_t shift, uint64_t key)
{
	uint64_t mask = cap / TC_WAYS - 1;
	for (uint64_t b = tc_bucket(key, shift);; b = (b + 1) & mask) {
		unsigned empty = tc_match(keys + b * TC_WAYS, 0);
		if (empty)
			return b * TC_WAYS + (unsigned)__builtin_ctz(empty);
	}
}

/* An entry's counts, as the global table keeps them. */
static inline struct mp_counts tc_counts(const struct tc_entry *e)
{
	uint64_t objects = __atomic_load_n(&e->objects, __ATOMIC_ACQUIRE); /* see tc_count */
	uint32_t mn = __atomic_load_n(&e->min, __ATOMIC_RELAXED);
	return (struct mp_counts){
	    0,
	    objects,
	    __atomic_load_n(&e->bytes, __ATOMIC_RELAXED),
	    objects ? mn : UINT64_MAX,
	    __atomic_load_n(&e->max, __ATOMIC_RELAXED),
	};
}

/* The key of an entry's (chain, class) in a table of mp_counts. */
static inline uint64_t tc_counts_key(uint32_t tag)
{
	return mp_counts_key(tc_id(tag), tc_cls(tag));
}

/* The global counters of a flushed entry. mp.lock held. */
static void tc_fold(const struct tc_entry *e)
{
	struct mp_counts *g = mp_ctable_slot(&mp.global, tc_counts_key(e->tag), true);
	struct mp_counts src = tc_counts(e);
	if (g)
		mp_counts_add(g, &src);
}

/* Fold this thread's counters into the global table and empty its table.
 * mp.lock held. */
static void tcache_flush_locked(struct mp_tcache *tc)
{
	bool room = mp_ctable_reserve(&mp.global, tc->used);
	if (!room)
		__atomic_add_fetch(&mp.not_recorded, tc->used, __ATOMIC_RELAXED);
	/* Only the entries in use are written: the rest of the table may never
	 * have been touched, and stays unfaulted. */
	for (uint64_t i = 0; i < tc->cap && tc->used; i++) {
		if (!tc->keys[i])
			continue;
		if (room)
			tc_fold(&tc->tab[i]);
		memset(&tc->tab[i], 0, sizeof(tc->tab[i]));
		tc->keys[i] = 0;
	}
	tc->used = 0;
}

/* Whether one more entry keeps the table at most 3/4 full. */
static inline bool tc_has_room(const struct mp_tcache *tc)
{
	return (tc->used + 1) * 4 <= tc->cap * 3;
}

/* Make room for one more entry: grow, or flush at TC_MAX. mp.lock held. */
static void tcache_make_room_locked(struct mp_tcache *tc)
{
	if (tc_has_room(tc))
		return;
	/* A module holding chains' frames was unloaded since the table was
	 * emptied: its keys of the epochs before are never met again, so it is
	 * emptied into the global table rather than grown to hold more. */
	uint64_t epoch = __atomic_load_n(&mp.unload_epoch, __ATOMIC_RELAXED);
	if (tc->epoch != epoch) {
		tc->epoch = epoch;
		if (tc->used) {
			tcache_flush_locked(tc);
			return;
		}
	}
	uint64_t cap = tc->cap ? tc->cap * 2 : TC_MIN;
	/* A rehash fills 3/8 of the next table at random places: every page. */
	uint64_t *keys = cap <= TC_MAX ? mp_map_table(tc_bytes(cap), tc->cap) : NULL;
	if (!keys) {
		tcache_flush_locked(tc);
		return;
	}
	struct tc_entry *tab = (struct tc_entry *)(keys + cap);
	uint32_t shift = 64 - (uint32_t)__builtin_ctzll(cap / TC_WAYS);
	for (uint64_t i = 0; i < tc->cap; i++) {
		if (!tc->keys[i])
			continue;
		uint64_t j = tc_free_slot(keys, cap, shift, tc->keys[i]);
		keys[j] = tc->keys[i];
		tab[j] = tc->tab[i];
	}
	if (tc->cap)
		mp_unmap(tc->keys, tc_bytes(tc->cap));
	tc->keys = keys;
	tc->tab = tab;
	tc->cap = cap;
	tc->shift = shift;
}

/* A new entry for key, of chain id and class cls, or NULL (no memory). */
static struct tc_entry *tc_insert(struct mp_tcache *tc, uint64_t key, unsigned cls, uint32_t id)
{
	if (!tc_has_room(tc)) {
		pthread_mutex_lock(&mp.lock);
		tcache_make_room_locked(tc);
		pthread_mutex_unlock(&mp.lock);
		if (!tc->cap)
			return NULL;
	}
	uint64_t i = tc_free_slot(tc->keys, tc->cap, tc->shift, key);
	struct tc_entry *e = &tc->tab[i];
	e->objects = e->bytes = 0;
	e->min = UINT32_MAX;
	e->max = 0;
	__atomic_store_n(&e->tag, tc_tag(id, cls), __ATOMIC_RELEASE); /* a dump may read it now */
	tc->keys[i] = key;
	tc->used++;
	return e;
}

static void tcache_free(struct mp_tcache *tc)
{
	if (tc->cap)
		mp_unmap(tc->keys, tc_bytes(tc->cap));
	mp_unmap(tc, sizeof(*tc));
}

/* The thread's first call: its cache made and registered. Out of line, and
 * called from the small frames of the hot path: learning the thread's stack
 * (pthread_getattr_np) takes a lot of stack of its own, and the first call
 * may come from a signal handler on a small alternate stack. */
static __attribute__((noinline)) struct mp_tcache *tcache_make(void)
{
	if (tls_dead)
		return NULL;
	int saved = errno;
	struct mp_tcache *tc = mp_map(sizeof(*tc));
	if (!tc) {
		errno = saved;
		return NULL;
	}
	/* Whole before it is linked: a fork on another thread reads every
	 * cache's unwinding flag under mp.lock (mp_tcaches_unwinding), and read
	 * a NULL one when this was set after. */
	tc->unwinding = &mp_unwinding;
	pthread_mutex_lock(&mp.lock);
	tc->next = mp.tcaches;
	if (mp.tcaches)
		mp.tcaches->prev = tc;
	mp.tcaches = tc;
	pthread_mutex_unlock(&mp.lock);
	__atomic_add_fetch(&mp.threads, 1, __ATOMIC_RELAXED);
	tls_tc = tc;
	mp_unwind_registered = true;
	mp_thread_watch(tc);
	/* Every mode: mp_stack_room and libunwind's reads use the bounds. */
	tc->stack_unknown = !mp_stack_thread_init();
	errno = saved;
	return tc;
}

/* The first call past the one made inside pthread_getattr_np that made the
 * thread's cache. Out of line, from the hot path's small frames, as
 * tcache_make. */
static __attribute__((noinline)) void tcache_learn_stack(struct mp_tcache *tc)
{
	int saved = errno;
	tc->stack_unknown = !mp_stack_thread_init();
	errno = saved;
}

static inline struct mp_tcache *tcache_get(void)
{
	struct mp_tcache *tc = tls_tc;
	return likely(tc) ? tc : tcache_make();
}

/* The pthread key destructor: fold the thread's counters into the global
 * table so they outlive it. Allocations after this (later TLS destructors)
 * go straight to the global table. */
void mp_thread_exit(void *arg)
{
	struct mp_tcache *tc = arg;
	mp_tl.in_hook++; /* holding the shim's lock (see endsig.c) */
	pthread_mutex_lock(&mp.lock);
	mp_unwind_registered = false;
	tcache_flush_locked(tc);
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		mp.tcaches = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	pthread_mutex_unlock(&mp.lock);
	tls_tc = NULL;
	tls_dead = true;
	tcache_free(tc);
	mp_stack_thread_exit();
	mp_tl.in_hook--;
}

static inline void count(uint64_t *objects, uint64_t *bytes, uint64_t *min, uint64_t *max,
                         uint64_t size)
{
	bump(objects, 1);
	bump(bytes, size);
	if (size < *min)
		__atomic_store_n(min, size, __ATOMIC_RELAXED);
	if (size > *max)
		__atomic_store_n(max, size, __ATOMIC_RELAXED);
}

/* Count a request of size bytes (at most TC_BIG) in entry e. The count
 * goes last, released: a dump reading the entry meanwhile (tc_counts) that
 * sees a count sees a min and max that hold its requests. Counted first, a
 * new entry could be read with one object, min UINT32_MAX and max 0, which
 * the reader refuses (a size class's min above its max). */
static inline void tc_count(struct tc_entry *e, uint64_t size)
{
	uint32_t s = (uint32_t)size;
	if (s < e->min)
		__atomic_store_n(&e->min, s, __ATOMIC_RELAXED);
	if (s > e->max)
		__atomic_store_n(&e->max, s, __ATOMIC_RELAXED);
	bump(&e->bytes, size);
	__atomic_store_n(&e->objects, e->objects + 1, __ATOMIC_RELEASE);
}

/* A thread without a cache (past its exit hook, or no memory for one)
 * counts in the global table, under mp.lock; so do requests above TC_BIG. */
static bool count_global(uint32_t id, unsigned cls, uint64_t size)
{
	pthread_mutex_lock(&mp.lock);
	struct mp_counts *c = mp_ctable_reserve(&mp.global, 1)
	                          ? mp_ctable_slot(&mp.global, mp_counts_key(id, cls), true)
	                          : NULL;
	if (c)
		count(&c->objects, &c->bytes, &c->min, &c->max, size);
	pthread_mutex_unlock(&mp.lock);
	return c != NULL;
}

/* ---- live-block map ---- */

/* The shard comes from the block's 2 MiB region, not from its hash: threads
 * allocate from regions of their own (glibc's per-thread arenas, jemalloc's
 * and tcmalloc's per-thread caches), so each thread mostly works on shards no
 * other thread touches and the shard locks' cache lines stay put. */
static inline struct mp_live_shard *shard_of(uintptr_t p)
{
	uint64_t region = (uint64_t)(p >> 21) * 0x9e3779b97f4a7c15ull;
	return &mp.live[region >> 58];
}

/* The home bucket of block p. */
static inline uint64_t home_of(uintptr_t p, uint32_t bits)
{
	return ((uint64_t)p * 0x9e3779b97f4a7c15ull) >> (64 - bits);
}

/* The slots of a bucket that hold v (v = 0: the empty ones), as a bit mask,
 * found without a branch: which slot holds a block is anybody's guess, and
 * a linear-probing table, whose probe and backward-shift loops ended at
 * random, cost a mispredicted branch or two on most calls. */
#if defined(__SSE2__) && MP_LIVE_WAYS == 4
/* Four 64-bit compares in two SSE2 registers (SSE2 compares 32-bit lanes:
 * a slot matches when both its halves do). */
static inline unsigned bucket_match(const struct mp_live_bucket *b, uintptr_t v)
{
	__m128i k = _mm_set1_epi64x((long long)v);
	__m128i lo = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)&b->ptr[0]), k);
	__m128i hi = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)&b->ptr[2]), k);
	lo = _mm_and_si128(lo, _mm_shuffle_epi32(lo, _MM_SHUFFLE(2, 3, 0, 1)));
	hi = _mm_and_si128(hi, _mm_shuffle_epi32(hi, _MM_SHUFFLE(2, 3, 0, 1)));
	return (unsigned)_mm_movemask_pd(_mm_castsi128_pd(lo)) |
	       (unsigned)_mm_movemask_pd(_mm_castsi128_pd(hi)) << 2;
}
#else
static inline unsigned bucket_match(const struct mp_live_bucket *b, uintptr_t v)
{
	unsigned m = 0;
	for (int i = 0; i < MP_LIVE_WAYS; i++)
		m |= (unsigned)(b->ptr[i] == v) << i;
	return m;
}
#endif

/* A shard's table: 1 << bits buckets, then their overflow counts. */
static inline size_t live_bytes(uint32_t bits)
{
	return (sizeof(struct mp_live_bucket) + sizeof(uint32_t)) << bits;
}

/* The slot of p, whose home bucket is home (its bucket in *bucket), or -1.
 * Shard locked, table there. */
static inline int live_find(const struct mp_live_shard *s, uintptr_t p, uint64_t home,
                            uint64_t *bucket)
{
	uint64_t mask = (1ull << s->bits) - 1, b = home;
	for (uint64_t n = 0; n <= mask; n++, b = (b + 1) & mask) {
		unsigned m = bucket_match(&s->tab[b], p);
		if (likely(m)) {
			*bucket = b;
			return __builtin_ctz(m);
		}
		if (likely(!s->overflow[b]))
			break;
	}
	return -1;
}

/* Store p, known not to be in the table, which has room: in the first
 * bucket from its home with a free slot, counting an overflow in each full
 * one it passes. */
static void live_put(struct mp_live_bucket *tab, uint32_t *overflow, uint32_t bits, uintptr_t p,
                     uint64_t meta)
{
	uint64_t mask = (1ull << bits) - 1, b = home_of(p, bits);
	unsigned m;
	while (!(m = bucket_match(&tab[b], 0))) {
		overflow[b]++;
		b = (b + 1) & mask;
	}
	unsigned i = (unsigned)__builtin_ctz(m);
	tab[b].ptr[i] = p;
	tab[b].meta[i] = meta;
}

/* Shard locks biased to one thread. Most shards are only ever used by one
 * thread (threads allocate from regions of their own), and the lock's atomic
 * exchange is a full barrier: it waits for the stores before it, such as the
 * counters the call has just updated, whose cache line may still be on its
 * way. So the first thread to lock a shard becomes its owner and from then
 * on enters it without the lock: it raises owner_busy, then checks that it
 * is still the owner. Another thread takes the lock, takes the ownership
 * away (for good: LIVE_SHARED), makes every thread of the process pass a
 * full barrier (membarrier), then waits for owner_busy to fall: the owner
 * either saw the change and goes to the lock, or is seen inside. A dump
 * and a fork take ownership away for the moment only (0: the next locker may
 * own the shard). Without membarrier no shard has an owner. */
#define LIVE_SHARED ((uintptr_t)1)

static inline uintptr_t self_token(void)
{
	return (uintptr_t)&mp_tl; /* unique among live threads */
}

/* Take the shard from its owner. Shard locked. */
static void shard_disown(struct mp_live_shard *s, uintptr_t to)
{
	__atomic_store_n(&s->owner, to, __ATOMIC_RELAXED);
	mp_heavy_barrier();
	wait_zero(&s->owner_busy);
}

/* Enter shard s; returns whether the lock was taken (pass it to shard_leave). */
static inline bool shard_enter(struct mp_live_shard *s)
{
	uintptr_t me = self_token();
	if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == me) {
		__atomic_store_n(&s->owner_busy, 1, __ATOMIC_RELAXED);
		__atomic_signal_fence(__ATOMIC_SEQ_CST); /* the other side is membarrier */
		if (likely(__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == me))
			return false;
		__atomic_store_n(&s->owner_busy, 0, __ATOMIC_RELEASE);
	}
	mp_spin_lock(&s->lock);
	uintptr_t owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
	if (!owner && mp.membarrier_ok)
		__atomic_store_n(&s->owner, me, __ATOMIC_RELAXED);
	else if (owner && owner != me && owner != LIVE_SHARED)
		shard_disown(s, LIVE_SHARED);
	return true;
}

static inline void shard_leave(struct mp_live_shard *s, bool locked)
{
	if (locked)
		mp_spin_unlock(&s->lock);
	else
		__atomic_store_n(&s->owner_busy, 0, __ATOMIC_RELEASE);
}

/* Lock every shard and take each from its owner for the moment, with one
 * barrier for all (a fork). */
static void shards_lock_all(void)
{
	bool owned = false;
	for (int i = 0; i < MP_LIVE_SHARDS; i++) {
		struct mp_live_shard *s = &mp.live[i];
		mp_spin_lock(&s->lock);
		uintptr_t owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
		if (owner != 0 && owner != LIVE_SHARED) {
			__atomic_store_n(&s->owner, 0, __ATOMIC_RELAXED);
			owned = true;
		}
	}
	if (!owned)
		return;
	mp_heavy_barrier();
	for (int i = 0; i < MP_LIVE_SHARDS; i++)
		wait_zero(&mp.live[i].owner_busy);
}

static void shards_unlock_all(void)
{
	for (int i = 0; i < MP_LIVE_SHARDS; i++)
		mp_spin_unlock(&mp.live[i].lock);
}

/* In sampling mode most blocks are not tracked; a counting filter answers
 * "certainly not tracked" for them with one load and no lock (the free hook).
 * A slot that reaches UINT8_MAX stays there: "maybe tracked" for good. */
static void filter_add(uintptr_t p)
{
	uint8_t *f = mp_filter_slot(p);
	uint8_t v = __atomic_load_n(f, __ATOMIC_RELAXED);
	while (v != UINT8_MAX && !__atomic_compare_exchange_n(f, &v, (uint8_t)(v + 1), true,
	                                                      __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

static void filter_remove(uintptr_t p)
{
	uint8_t *f = mp_filter_slot(p);
	uint8_t v = __atomic_load_n(f, __ATOMIC_RELAXED);
	while (v != UINT8_MAX && v != 0 &&
	       !__atomic_compare_exchange_n(f, &v, (uint8_t)(v - 1), true, __ATOMIC_RELEASE,
	                                    __ATOMIC_RELAXED))
		;
}

static bool live_grow(struct mp_live_shard *s)
{
	uint32_t bits = s->tab ? s->bits + 1 : 8;
	struct mp_live_bucket *tab = mp_map_table(live_bytes(bits), s->tab);
	if (!tab)
		return false;
	uint32_t *overflow = (uint32_t *)(tab + (1ull << bits));
	for (uint64_t b = 0; s->tab && b < (1ull << s->bits); b++)
		for (int i = 0; i < MP_LIVE_WAYS; i++)
			if (s->tab[b].ptr[i])
				live_put(tab, overflow, bits, s->tab[b].ptr[i], s->tab[b].meta[i]);
	if (s->tab)
		mp_unmap(s->tab, live_bytes(s->bits));
	s->tab = tab;
	s->overflow = overflow;
	s->bits = bits;
	s->limit = (3ull * MP_LIVE_WAYS << bits) / 4;
	return true;
}

/* Insert p; if p is already there (freed behind our back, e.g. from a signal
 * handler that interrupted the shim), replace its stale record: returns 1
 * then, 0 when p is new, -1 when there is no room. A shard grows when 3/4
 * full. The hot path tries live_insert_fast first. */
static __attribute__((noinline)) int live_insert(uintptr_t p, uint64_t meta)
{
	struct mp_live_shard *s = shard_of(p);
	bool locked = shard_enter(s);
	if (unlikely(s->count >= s->limit) && !live_grow(s)) {
		shard_leave(s, locked);
		return -1;
	}
	uint64_t b;
	int i = live_find(s, p, home_of(p, s->bits), &b);
	if (unlikely(i >= 0)) {
		s->tab[b].meta[i] = meta;
		shard_leave(s, locked);
		return 1;
	}
	live_put(s->tab, s->overflow, s->bits, p, meta);
	s->count++;
	if (mp.sample_period)
		filter_add(p);
	shard_leave(s, locked);
	return 0;
}

/* The owner's way into its shard (shard_enter without the lock), or false. */
static inline bool shard_enter_owned(struct mp_live_shard *s)
{
	uintptr_t me = self_token();
	if (__atomic_load_n(&s->owner, __ATOMIC_RELAXED) != me)
		return false;
	__atomic_store_n(&s->owner_busy, 1, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* the other side is membarrier */
	if (likely(__atomic_load_n(&s->owner, __ATOMIC_RELAXED) == me))
		return true;
	__atomic_store_n(&s->owner_busy, 0, __ATOMIC_RELEASE);
	return false;
}

/* live_insert's common case, inlined into the hot path: the thread owns the
 * shard, which has room, and p's home bucket has an empty slot and nothing
 * stored past it. Returns false, having done nothing, otherwise. */
static inline bool live_insert_fast(uintptr_t p, uint64_t meta)
{
	struct mp_live_shard *s = shard_of(p);
	if (!shard_enter_owned(s))
		return false;
	bool done = false;
	if (likely(s->count < s->limit)) {
		uint64_t home = home_of(p, s->bits);
		struct mp_live_bucket *b = &s->tab[home];
		unsigned empty = bucket_match(b, 0);
		if (likely(empty && !bucket_match(b, p) && !s->overflow[home])) {
			unsigned i = (unsigned)__builtin_ctz(empty);
			b->ptr[i] = p;
			b->meta[i] = meta;
			s->count++;
			if (mp.sample_period)
				filter_add(p);
			done = true;
		}
	}
	shard_leave(s, false);
	return done;
}

/* Remove p (mp_live_take past its fast path). */
static bool live_take_locked(uintptr_t p, uint64_t *meta);

/* Keeps errno (the shard's lock may wait), as the fast path does by making
 * no call. */
static __attribute__((noinline)) bool live_take(uintptr_t p, uint64_t *meta)
{
	int saved = errno;
	bool found = live_take_locked(p, meta);
	errno = saved;
	return found;
}

static bool live_take_locked(uintptr_t p, uint64_t *meta)
{
	struct mp_live_shard *s = shard_of(p);
	bool locked = shard_enter(s);
	uint64_t home = s->tab ? home_of(p, s->bits) : 0, b;
	int i = s->tab ? live_find(s, p, home, &b) : -1;
	if (i < 0) {
		shard_leave(s, locked);
		return false;
	}
	*meta = s->tab[b].meta[i];
	s->tab[b].ptr[i] = 0;
	/* Stored past full buckets: they no longer have it beyond them. */
	uint64_t mask = (1ull << s->bits) - 1;
	for (uint64_t h = home; h != b; h = (h + 1) & mask)
		s->overflow[h]--;
	s->count--;
	shard_leave(s, locked);
	if (mp.sample_period)
		filter_remove(p);
	return true;
}

bool mp_live_take(void *ptr, uint64_t *meta)
{
	uintptr_t p = (uintptr_t)ptr;
	if (!__atomic_load_n(mp_filter_slot(p), __ATOMIC_ACQUIRE))
		return false; /* certainly not tracked (see the free hook) */
	/* The common case inline: the thread owns the shard and p is in its
	 * home bucket (so no bucket's overflow count changes). */
	struct mp_live_shard *s = shard_of(p);
	if (shard_enter_owned(s)) {
		if (likely(s->tab)) {
			struct mp_live_bucket *b = &s->tab[home_of(p, s->bits)];
			unsigned hit = bucket_match(b, p);
			if (likely(hit)) {
				unsigned i = (unsigned)__builtin_ctz(hit);
				*meta = b->meta[i];
				b->ptr[i] = 0;
				s->count--;
				shard_leave(s, false);
				if (mp.sample_period)
					filter_remove(p);
				return true;
			}
		}
		shard_leave(s, false);
	}
	return live_take(p, meta);
}

void mp_live_restore(void *p, uint64_t meta)
{
	if (live_insert((uintptr_t)p, meta) < 0)
		lost();
}

/* ---- sampling ---- */

/* An exponential draw with mean sample_period: sampling then is a Poisson
 * process over allocated bytes, as in tcmalloc and Go's MemProfileRate, so an
 * allocation of s bytes is sampled with probability 1 - exp(-s / period). */
static int64_t next_sample_gap(void)
{
	if (!tls_rng)
		tls_rng = (uint64_t)(uintptr_t)&tls_rng ^ mp_now_ns() ^ 0x9e3779b97f4a7c15ull;
	tls_rng ^= tls_rng >> 12;
	tls_rng ^= tls_rng << 25;
	tls_rng ^= tls_rng >> 27;
	uint64_t r = tls_rng * 0x2545f4914f6cdd1dull;
	/* The program's floating-point state is its own: no exception flag
	 * raised (inexact, always, here), and no trap it enabled taken. */
	fenv_t env;
	feholdexcept(&env);
	double u = ((double)(r >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
	double gap = -log(u) * (double)mp.sample_period;
	int64_t left = gap >= 9e18 ? INT64_MAX : (int64_t)gap + 1;
	fesetenv(&env);
	return left;
}

bool mp_sample_skip(size_t size)
{
	int64_t left = mp_tl.sample_left ? mp_tl.sample_left : next_sample_gap();
	left -= (int64_t)(size > INT64_MAX ? INT64_MAX : size);
	/* Stored only when positive: the hooks' countdown relies on it. */
	mp_tl.sample_left = left > 0 ? left : next_sample_gap();
	return left > 0;
}

/* ---- the two entry points of the hot path ---- */

/* fp mode: is the fast walk worth its cost on this thread? On code without
 * frame pointers it never finds a checked chain (it walks garbage, or stops
 * early) and only adds to the checked walk's cost, so after FAST_GIVE_UP
 * useless tries in a row it rests for FAST_REST calls, then tries again. */
#define FAST_GIVE_UP 64
#define FAST_REST    4096

static inline bool fast_worth_trying(struct mp_tcache *tc)
{
	if (likely(tc->fast_misses < FAST_GIVE_UP))
		return true;
	if (tc->fast_skip) {
		tc->fast_skip--;
		return false;
	}
	/* Rested: one more try, and a rest again if it is of no use either. */
	tc->fast_skip = FAST_REST;
	tc->fast_misses = FAST_GIVE_UP - 1;
	return true;
}

/* record_live past live_insert_fast. Keeps errno, as every path out of the
 * hot path's inline part does (the hooks count on it: the inline part
 * itself makes no call that could change it). */
static __attribute__((noinline)) void record_live_slow(void *p, uint64_t meta)
{
	int saved = errno;
	int r = live_insert((uintptr_t)p, meta);
	/* r > 0: the address was in the map already (its free happened behind
	 * our back, from a handler that interrupted the shim): the stale record
	 * is gone, replaced. r < 0: no room to remember the block: it is not
	 * counted as live (inuse stays a lower bound; its free will not be
	 * seen), and the dump says how many calls could not be recorded. */
	if (unlikely(r < 0))
		lost();
	errno = saved;
}

/* The block's record in the live map, once its chain is known. */
static inline void record_live(void *p, uint32_t id, size_t size)
{
	if (mp.frees_off)
		return;
	uint64_t meta = meta_make(id, size);
	if (likely(live_insert_fast((uintptr_t)p, meta)))
		return;
	record_live_slow(p, meta);
}

/* A call the fast walk could not place: the checked walk (libunwind, or
 * frame pointers checked against it), the chain found or made. Kept out of
 * mp_record_alloc (in record_slow) so that the fast path's frame stays
 * small: this one holds the walk's buffers, some kilobytes of stack. */
static inline __attribute__((always_inline)) void record_checked(void *p, size_t size, unsigned cls,
                                                                 struct mp_tcache *tc)
{
	uintptr_t key[MP_CAPTURE_ROOM];
	bool truncated;
	uint32_t nfp;
	uint32_t n = mp_stack_capture(key, mp.max_depth, &truncated, &nfp);
	key[n] = mp_chain_word(truncated ? MP_CHAIN_TRUNCATED : 0);
	uint64_t h = hash_ips(key, n + 1);
	if (size > TC_BIG)
		tc = NULL;
	struct tc_entry *e = tc ? tc_find(tc, tc_key(h, nfp, cls)) : NULL;
	if (!e) {
		struct mp_chain_rec *c = chain_find(key, n, h);
		if (unlikely(!c)) {
			lost();
			return;
		}
		e = tc ? tc_insert(tc, tc_key(h, nfp, cls), cls, c->id) : NULL;
		if (!e) {
			if (!count_global(c->id, cls, size))
				lost();
			record_live(p, c->id, size);
			return;
		}
	}
	tc_count(e, size);
	record_live(p, tc_id(e->tag), size);
}

/* Everything past the fast walk: the thread's first call, the checked
 * walk. errno is kept here, so the fast path needs no call to find it. One
 * function with record_checked, whose frame libunwind would otherwise walk
 * (and skip) on every call: a frame costs the default mode some 10 ns. */
struct checked_call {
	void *p;
	size_t size;
	unsigned cls;
	struct mp_tcache *tc;
};

static void record_checked_call(void *arg)
{
	struct checked_call *a = arg;
	record_checked(a->p, a->size, a->cls, a->tc);
}

static __attribute__((noinline)) void record_slow(void *p, size_t size, unsigned cls,
                                                  struct mp_tcache *tc)
{
	int saved = errno;
	if (likely(mp_stack_room() == MP_ROOM))
		record_checked(p, size, cls, tc);
	else if (!mp_on_spare(record_checked_call, &(struct checked_call){p, size, cls, tc}))
		lost(); /* no stack to walk on */
	errno = saved;
}

void mp_record_alloc(void *p, size_t size)
{
	unsigned cls = mp_size_class(size);
	struct mp_tcache *tc = tcache_get(); /* first: registers the thread's unwind flag */
	if (mp.unwinder == MP_UNWIND_FP && likely(tc) && likely(size <= TC_BIG) &&
	    fast_worth_trying(tc)) {
		/* A trusting walk, used if a checked one found the same chain
		 * with as many frames (tc_key). */
		struct mp_hash sum;
		bool truncated;
		uint32_t nfp;
		int n = mp_stack_fp_fast(mp.max_depth, &truncated, &nfp, &sum);
		if (n >= 0) {
			mp_hash_add(&sum, mp_chain_word(truncated ? MP_CHAIN_TRUNCATED : 0),
			            (uint32_t)n);
			uint64_t h = mp_hash_final(sum, (uint32_t)n + 1);
			struct tc_entry *e = tc_find(tc, tc_key(h, nfp, cls));
			if (likely(e)) {
				tc->fast_misses = 0;
				tc_count(e, size);
				record_live(p, tc_id(e->tag), size);
				return;
			}
		}
		tc->fast_misses++;
	}
	if (unlikely(tc && tc->stack_unknown))
		tcache_learn_stack(tc);
	record_slow(p, size, cls, tc);
}

bool mp_record_free(void *p)
{
	uint64_t meta;
	return mp_live_take(p, &meta);
}

/* One shard at a time, so that a dump holds up the program's other threads
 * no longer than it reads that shard. */
void mp_live_sum(uint64_t *objects, uint64_t *bytes, uint32_t nchains)
{
	for (int i = 0; i < MP_LIVE_SHARDS; i++) {
		struct mp_live_shard *s = &mp.live[i];
		mp_spin_lock(&s->lock);
		uintptr_t owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED);
		if (owner != 0 && owner != LIVE_SHARED)
			shard_disown(s, 0);
		for (uint64_t b = 0; s->tab && b < (1ull << s->bits); b++) {
			for (int k = 0; k < MP_LIVE_WAYS; k++) {
				if (!s->tab[b].ptr[k])
					continue;
				uint64_t meta = s->tab[b].meta[k];
				uint32_t chain = meta_chain(meta);
				if (chain < nchains) {
					objects[chain]++;
					bytes[chain] += meta_size(meta);
				}
			}
		}
		mp_spin_unlock(&s->lock);
	}
}

/* ---- snapshot for the dump ---- */

bool mp_counts_any(void)
{
	bool any = mp.global.used != 0;
	pthread_mutex_lock(&mp.lock);
	for (struct mp_tcache *tc = mp.tcaches; tc && !any; tc = tc->next)
		any = __atomic_load_n(&tc->used, __ATOMIC_RELAXED) != 0;
	pthread_mutex_unlock(&mp.lock);
	return any;
}

long mp_counts_snapshot(struct mp_counts **out, size_t *bytes)
{
	uint64_t total = mp.global.used;
	for (struct mp_tcache *tc = mp.tcaches; tc; tc = tc->next)
		total += __atomic_load_n(&tc->used, __ATOMIC_RELAXED);
	struct mp_ctable t = {NULL, 0, 0};
	if (!mp_ctable_reserve(&t, total + 1))
		return -1;
	for (uint64_t i = 0; i < mp.global.cap; i++)
		if (mp.global.slots[i].key)
			mp_counts_add(mp_ctable_slot(&t, mp.global.slots[i].key, true),
			              &mp.global.slots[i]);
	for (struct mp_tcache *tc = mp.tcaches; tc; tc = tc->next) {
		for (uint64_t i = 0; i < tc->cap; i++) {
			const struct tc_entry *e = &tc->tab[i];
			uint32_t tag = __atomic_load_n(&e->tag, __ATOMIC_ACQUIRE);
			if (!tag)
				continue;
			if (!mp_ctable_reserve(&t, 1))
				break;
			struct mp_counts src = tc_counts(e);
			mp_counts_add(mp_ctable_slot(&t, tc_counts_key(tag), true), &src);
		}
	}
	*out = t.slots;
	*bytes = t.cap * sizeof(*t.slots);
	return (long)t.cap;
}

bool mp_tcaches_unwinding(const int *own)
{
	for (struct mp_tcache *tc = mp.tcaches; tc; tc = tc->next)
		if (tc->unwinding != own && __atomic_load_n(tc->unwinding, __ATOMIC_ACQUIRE))
			return true;
	return false;
}

/* ---- fork ---- */

/* Take every lock so that no thread holds one across the fork; the order
 * is the order in which the shim ever nests them. */
void mp_fork_prepare(void)
{
	pthread_mutex_lock(&mp.lock);
	mp_unwind_drain();
	mp_spin_lock(&mp.modules_lock);
	mp_spin_lock(&mp.arena_lock);
	shards_lock_all();
}

void mp_fork_parent(void)
{
	mp_unwind_reopen(false);
	shards_unlock_all();
	mp_spin_unlock(&mp.arena_lock);
	mp_spin_unlock(&mp.modules_lock);
	pthread_mutex_unlock(&mp.lock);
}

/* The child profiles only what it allocates from now on: counters and the
 * live map start empty; the chains and the module map stay valid. */
void mp_fork_child(void)
{
	mp_unwind_reopen(true);
	for (int i = 0; i < MP_LIVE_SHARDS; i++) {
		struct mp_live_shard *s = &mp.live[i];
		if (s->tab)
			memset(s->tab, 0, live_bytes(s->bits));
		s->count = 0;
		s->lock = 0;
		s->owner = 0;
		s->owner_busy = 0;
	}
	if (mp.global.slots)
		memset(mp.global.slots, 0, mp.global.cap * sizeof(*mp.global.slots));
	if (mp.sample_period)
		memset(mp_sample_filter, 0, sizeof(mp_sample_filter));
	mp.global.used = 0;
	struct mp_tcache *tc = mp.tcaches;
	while (tc) {
		struct mp_tcache *next = tc->next;
		if (tc != tls_tc)
			tcache_free(tc);
		tc = next;
	}
	mp.tcaches = tls_tc;
	mp.threads = 0;
	if (tls_tc) {
		tls_tc->next = tls_tc->prev = NULL;
		if (tls_tc->cap)
			memset(tls_tc->keys, 0, tc_bytes(tls_tc->cap));
		tls_tc->used = 0;
		mp.threads = 1;
	}
	mp.not_recorded = 0;
	mp.arena_lock = 0;
	mp.modules_lock = 0;
	pthread_mutex_init(&mp.lock, NULL);
}
