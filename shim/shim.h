/* shim.h: the internal interfaces of libmapprof.so and its one state struct.
 * Everything declared here may run inside malloc: it must never allocate through
 * malloc, never block on I/O, and never know about symbols or views. */
#ifndef MAPPROF_SHIM_H
#define MAPPROF_SHIM_H

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <threads.h>

#include "mapprof_dump.h"

/* uthash keeps the global chain table; its memory comes from mmap, never malloc. */
void *mp_uthash_alloc(size_t size);
void mp_uthash_free(void *p, size_t size);
#define uthash_malloc(sz)    mp_uthash_alloc(sz)
#define uthash_free(ptr, sz) mp_uthash_free(ptr, sz)
#define HASH_NONFATAL_OOM    1
#include <uthash.h>

#define MP_EXPORT   __attribute__((visibility("default")))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define MP_DEFAULT_DEPTH 64
#define MP_MAX_DEPTH     256
/* Room for the frames libunwind and the shim add on top of the caller, so
 * that a stack deeper than the limit is still seen to be: unw_backtrace and
 * the gate, mp_stack_capture, record_checked, mp_record_alloc, the hooks
 * (operator new forwarding to malloc, sampling's slow path). An optimized
 * build inlines most of them; one built for debugging (-O0) has 10 of its
 * own frames on its deepest path. */
#define MP_SKIP_ROOM    16
#define MP_CAPTURE_ROOM (MP_MAX_DEPTH + MP_SKIP_ROOM + 1)
#define MP_MAX_CHAINS   ((1u << 24) - 1) /* chain ids fit the live map's 24 bits */
#define MP_PATH_MAX     4096
#define MP_DEFAULT_OUT  "mapprof.%e.%p.dump" /* MAPPROF_OUT's default */

/* The next allocator in the lookup order (glibc, or jemalloc/tcmalloc
 * preloaded after us), found with dlsym(RTLD_NEXT, ...). */
struct mp_real {
	void (*exit)(int) __attribute__((noreturn));
	void (*exit_)(int) __attribute__((noreturn));
	void (*Exit_)(int) __attribute__((noreturn));
	void (*abort)(void) __attribute__((noreturn));
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*getattr_np)(pthread_t, pthread_attr_t *);
	int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	int (*thrd_create)(thrd_t *, thrd_start_t, void *);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*reallocarray)(void *, size_t, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
};

/* A distinct call chain. ips are the raw return addresses the hot path
 * compares; frames are the same addresses as module + offset, resolved once
 * when the chain is first seen (so a later dlclose cannot change them), as
 * ids in the process's table of distinct frames (mp.frames). */
struct mp_chain_rec {
	UT_hash_handle hh;        /* keyed by ips[0..nframes] (the last word: flags, epoch) */
	UT_hash_handle hh_frames; /* keyed by frames[0..nframes] (the last: flags) */
	uint32_t id;
	uint32_t flags; /* MP_CHAIN_* */
	uint32_t nframes;
	uint64_t hash;
	uintptr_t *ips;
	uint32_t *frames;
};

/* The distinct frames of all chains, each once (table.c): chains share
 * their callers' frames, so a compiler's 71,000 chains of 42 frames hold
 * about 5,000. */
struct mp_frame_slot {
	uint64_t offset;
	uint32_t module;
	uint32_t id1; /* the frame's id + 1; 0 when the slot is empty */
};

/* A loaded (or since unloaded) ELF object. */
struct mp_module_rec {
	struct mp_module_rec *next; /* newest first */
	uint32_t id;
	uint32_t flags; /* MP_MODULE_* */
	uint64_t load_bias;
	uint32_t nranges;
	uint32_t buildid_len;
	uint32_t path_len;
	struct mp_range *ranges;
	uint8_t *buildid;
	char *path;
	char *dlname;  /* the loader's name for it, where that was relative; else NULL */
	uint64_t seen; /* the newest refresh that found it (mp.refreshes) */
	bool shadowed; /* a newer module overlaps it (its address range was reused) */
	bool used;     /* atomic: a chain has a frame in it */
};

/* Counters of one (chain, size class) pair. The same layout serves the
 * per-thread tables and the global table they are flushed into. */
struct mp_counts {
	uint64_t key; /* mp_counts_key(); 0 marks an empty slot */
	uint64_t objects;
	uint64_t bytes;
	uint64_t min;
	uint64_t max;
};

static inline uint64_t mp_counts_key(uint32_t chain, unsigned cls)
{
	return ((uint64_t)chain << 8 | cls) + 1;
}
static inline uint64_t mp_counts_chain(uint64_t key)
{
	return (key - 1) >> 8;
}
static inline unsigned mp_counts_class(uint64_t key)
{
	return (unsigned)((key - 1) & 0xff);
}

static inline unsigned mp_size_class(uint64_t size)
{
	return size ? 64u - (unsigned)__builtin_clzll(size) : 0u;
}

/* An open-addressing table of mp_counts (power-of-two capacity). */
struct mp_ctable {
	struct mp_counts *slots;
	uint64_t cap;
	uint64_t used;
};

struct mp_tcache;

/* One shard of the live-block map: address -> (chain, size), for frees.
 * Buckets of MP_LIVE_WAYS entries, one cache line each: a block is looked
 * for in its home bucket, and in the next ones only while they say an entry
 * went past them full (overflow). */
#define MP_LIVE_SHARDS 64
#define MP_LIVE_WAYS   4
#define MP_FILTER_SIZE (1u << 16)
struct mp_live_bucket {
	uintptr_t ptr[MP_LIVE_WAYS]; /* 0 marks an empty slot */
	uint64_t meta[MP_LIVE_WAYS]; /* size << 24 | chain id */
} __attribute__((aligned(64)));
struct mp_live_shard {
	int lock;
	int owner_busy;  /* written by the owner only: inside the shard without the lock */
	uintptr_t owner; /* the thread using the shard without the lock (table.c), or 0 or 1 */
	uint32_t bits;   /* 1 << bits buckets */
	uint64_t count;
	uint64_t limit; /* count at which the table grows: 3/4 full (0: no table) */
	struct mp_live_bucket *tab;
	uint32_t *overflow; /* per bucket: entries stored past it because it was full */
} __attribute__((aligned(64)));

/* All of the shim's global state. */
struct mp_state {
	int init_state; /* 0 none, 1 initializing, 2 ready */
	uint32_t hot;   /* MP_HOT_*: the fast paths' one load; recording iff >= MP_HOT_ALL */
	bool secure;    /* AT_SECURE: ignore the environment, write nothing */
	bool dumped;    /* the exit dump is written; stop recording */
	uint32_t max_depth;
	/* atomic: the unload epoch, in the high half (MP_EPOCH_ONE a step):
	 * bumped when dlclose unloads a module that holds a chain's frames;
	 * part of every chain's key (its flags word), so code loaded later at
	 * those addresses makes chains of its own (modules.c) */
	uint64_t unload_epoch;
	uint32_t unwinder;        /* MP_UNWIND_* */
	uint64_t sample_period;   /* MAPPROF_SAMPLE; 0 = record every call */
	bool frees_off;           /* MAPPROF_INUSE=0: no live-block map, frees only forwarded */
	uint32_t info_flags;      /* MP_INFO_* */
	uint32_t sequence;        /* on-demand dumps written so far */
	int dump_signal;          /* MAPPROF_SIGNAL, or 0 */
	unsigned interval;        /* MAPPROF_INTERVAL seconds, or 0 */
	uint64_t end_signals;     /* MAPPROF_END_SIGNALS: bit n - 1 for signal n (endsig.c) */
	int end_signal;           /* atomic: the listed signal that is ending the process, or 0 */
	bool end_dump;            /* the dump thread writes the dump of a process a signal ends */
	int final_writing;        /* atomic: final dumps being written (lifecycle.c) */
	uint32_t dump_progress;   /* atomic: bumped as a dump goes on (endsig.c's deadline) */
	int end_parked;           /* atomic: threads waiting in the end signal's handler */
	bool end_done;            /* atomic: the end's dump is over; the signal ends the process */
	uint32_t wake;            /* futex: the dump signal's count (lifecycle.c) */
	bool dump_thread_started; /* the dump thread (on-demand and end-signal dumps) runs */
	clockid_t dump_thread_clock; /* its CPU-time clock (endsig.c's deadline) */
	bool dump_thread_clocked;    /* dump_thread_clock is set */
	bool dump_thread_idle;       /* atomic: it waits for the end, its CPU time is no progress */
	int forking;                 /* atomic: threads inside fork, past the shim's fork hook */
	bool final_by_exit;          /* the final dump being written is an exit's, not an exec's */
	char last_dump[MP_PATH_MAX]; /* written before an exec, removed if it fails */
	char out_template[MP_PATH_MAX];
	pid_t pid;
	pid_t ppid;
	uint64_t start_ns;

	pthread_mutex_t lock;              /* chains, global counters, tcache list */
	int modules_lock;                  /* spin: the module list (modules.c) */
	int arena_lock;                    /* spin: the bookkeeping arena (arena.c) */
	struct mp_chain_rec *chain_table;  /* uthash head: by return addresses */
	struct mp_chain_rec *chain_frames; /* uthash head: by frames, each chain once */
	uint32_t chain_keys;               /* keys ever added to chain_table */
	struct mp_chain_rec **chains;      /* by id */
	uint32_t nchains;
	struct mp_frame *frames; /* distinct frames, by id */
	uint32_t nframes, frames_cap;
	struct mp_frame_slot *frame_slots; /* open addressing over frames, at most half full */
	uint64_t frame_slots_cap;
	struct mp_frame resolving[MP_MAX_DEPTH]; /* a new chain's frames, before interning */
	struct mp_ctable global;                 /* flushed per-thread counters */
	struct mp_module_rec *modules;
	uint32_t nmodules;
	unsigned long long dl_adds, dl_subs;
	uint64_t refreshes; /* atomic: refreshes of the module map begun (modules.c) */
	struct mp_tcache *tcaches;
	struct mp_live_shard live[MP_LIVE_SHARDS];
	uint32_t chains_cap;

	int fork_pending;                /* a fork waits for libunwind to be idle */
	bool membarrier_ok;              /* the unwind gate's fast side is a compiler barrier */
	uint64_t unwinding_unregistered; /* atomic: threads without a cache inside libunwind */

	uint64_t not_recorded;      /* atomic */
	uint64_t threads;           /* atomic */
	uintptr_t self_lo, self_hi; /* our own text, stripped from stacks */
	uintptr_t unw_lo, unw_hi;   /* libunwind's text, likewise */

	char exe[MP_PATH_MAX];
	char *cmdline;
	size_t cmdline_len;
};

extern struct mp_state mp;
extern struct mp_real mp_real;
/* The hot path's per-thread state, in one initial-exec TLS block so a hook
 * reaches all of it through one offset. */
struct mp_thread {
	union {
		struct {
			int in_hook;  /* > 0 while the shim itself runs on this thread */
			int in_newop; /* inside a forwarded C++ operator new or delete (cxx.c) */
		};
		uint64_t guards; /* both at once: zero when neither is raised */
	};
	int64_t sample_left; /* sampling mode: bytes until the next sample */
	/* > 0 inside pthread_getattr_np (lifecycle.c), which holds a thread's
	 * lock while it allocates: the shim must not call it then. */
	int in_getattr;
	/* > 0 inside the shim's pthread_create (start.c): like in_getattr, its
	 * frame is among the callers of the allocations made inside. */
	int in_create;
};
extern __thread struct mp_thread mp_tl;

/* What the malloc and free fast paths do, in one word (mp.hot). */
enum {
	MP_HOT_COLD,   /* not initialized yet */
	MP_HOT_PASS,   /* not recording: forward */
	MP_HOT_ALL,    /* record every call */
	MP_HOT_SAMPLE, /* sampling mode */
};
void mp_set_enabled(bool on); /* sets mp.hot */
void mp_free_cold(void *p);   /* mp_real.free until init */

/* lifecycle.c: settings, init, and the dumps at exit, exec and on demand. */
bool mp_ready_slow(void);
static inline bool mp_ready(void)
{
	return likely(__atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) == 2) || mp_ready_slow();
}
void mp_dump_final(void);

/* Spin locks for short sections that never block (table.c). */
void mp_spin_wait(int *l); /* the lock was taken: wait for it */
static inline void mp_spin_lock(int *l)
{
	if (unlikely(__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)))
		mp_spin_wait(l);
}
static inline void mp_spin_unlock(int *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* arena.c: memory for the shim's own bookkeeping, straight from mmap. */
void *mp_map(size_t size);
/* The same, with every page faulted in by the one call: for memory about to
 * be written through (a table rebuilt by a rehash, the dump's tables). A page
 * faulted in one at a time cost 11 to 15 us on a VM we measured on, 8 to 10
 * times more than MAP_POPULATE's; lazily mapped memory is for tables that
 * may stay mostly empty (a thread's first counters table). */
void *mp_map_filled(size_t size);
/* Fault in the pages of [p, p + size) that are mapped already, by one call
 * (MADV_POPULATE_WRITE), for memory about to be written through a page at a
 * time (the arena, a buffer). Best effort: a kernel without it (before 5.14)
 * faults them one by one as before. errno is kept. */
void mp_populate(void *p, size_t size);
/* A table's memory: its first one lazily mapped (it may stay mostly empty),
 * one rebuilt bigger (grown) filled, since a rehash writes it all through. */
static inline void *mp_map_table(size_t size, bool grown)
{
	return grown ? mp_map_filled(size) : mp_map(size);
}
void mp_unmap(void *p, size_t size);
void *mp_arena_alloc(size_t size); /* never freed; NULL when out of memory */
char *mp_arena_strdup(const char *s, size_t len);

/* stack.c: raw return addresses of the allocating thread, innermost first,
 * without the shim's and libunwind's own frames. */
void mp_stack_init(void);
bool mp_stack_thread_init(void); /* this thread's stack bounds: known, or false (ask later) */
/* *nfp: in fp mode, how many of the frames a checked frame-pointer walk
 * found (0: libunwind's walk). */
/* ips: room for MP_CAPTURE_ROOM words; the first (returned) hold the chain. */
uint32_t mp_stack_capture(uintptr_t *ips, uint32_t max, bool *truncated, uint32_t *nfp);
/* Room on this stack for mp_stack_capture: enough, too little (the thread's
 * stack or its alternate signal stack, deep), or unknown (a coroutine's). */
enum mp_room { MP_ROOM, MP_ROOM_SHORT, MP_ROOM_UNKNOWN };
enum mp_room mp_stack_room(void);
/* fn(arg) on this thread's spare stack, mapped at its first use; false
 * (fn not called) without one (no memory, the thread's end, no support). */
bool mp_on_spare(void (*fn)(void *), void *arg);
void mp_stack_thread_exit(void); /* unmaps the spare stack */
/* fp mode's fast path: the hash of a trusting walk's chain, or -1 (see
 * stack.c for when it may be used). */
struct mp_hash;
int mp_stack_fp_fast(uint32_t max, bool *truncated, uint32_t *nfp, struct mp_hash *sum);
/* The unwind gate: a fork waits until no other thread is inside libunwind,
 * whose internal locks would otherwise stay locked in the child forever.
 * mp_unwinding is this thread's flag, published in its cache. */
extern __thread int mp_unwinding;
extern __thread bool mp_unwind_registered;
void mp_unwind_drain(void); /* fork prepare, mp.lock held */
/* Pass the gate (returns what to give mp_gate_leave): no fork starts while
 * this thread is inside, and a pending fork is waited for first. */
bool mp_gate_enter(void);
void mp_gate_leave(bool registered);
/* A full memory barrier on every thread of the process (membarrier, when
 * mp.membarrier_ok): the other side of a fast path that has only a compiler
 * barrier. */
void mp_heavy_barrier(void);
void mp_unwind_reopen(bool child); /* fork parent and child */

/* modules.c: the module map (never call with mp.lock held). */
void mp_modules_refresh(void);
void mp_modules_check(void); /* refresh if anything was loaded or unloaded */
struct mp_maps_hit {
	uintptr_t from, to; /* the mapping's range */
	uintptr_t prev_to;  /* the end of the mapping listed before it */
};
bool mp_maps_find(uintptr_t addr, struct mp_maps_hit *hit, char *path, size_t size);
/* The flags word of a chain key: flags (MP_CHAIN_*) and the unload epoch. */
#define MP_EPOCH_ONE (1ull << 32)
static inline uint64_t mp_chain_word(uint32_t flags)
{
	return __atomic_load_n(&mp.unload_epoch, __ATOMIC_RELAXED) | flags;
}
/* ips[0..n) as module + offset; the modules are those loaded now. */
void mp_frames_resolve(const uintptr_t *ips, uint32_t n, struct mp_frame *out);

/* ctable.c: counters tables. */
struct mp_counts *mp_ctable_slot(struct mp_ctable *t, uint64_t key, bool insert);
bool mp_ctable_reserve(struct mp_ctable *t, uint64_t n);
void mp_counts_add(struct mp_counts *dst, const struct mp_counts *src);

/* table.c: chains, per-thread counters and the live-block map.
 * mp_record_alloc and mp_record_free keep errno; mp_live_restore may not. */
void mp_record_alloc(void *p, size_t size);
bool mp_sample_skip(size_t size);             /* sampling mode: true if this call is not sampled */
bool mp_record_free(void *p);                 /* false if p was not tracked */
bool mp_live_take(void *p, uint64_t *meta);   /* remove p, give its record */
void mp_live_restore(void *p, uint64_t meta); /* undo mp_live_take */
/* What is live, per chain id (arrays of mp.nchains entries): summed from
 * the live-block map, which holds exactly the blocks allocated and not yet
 * freed, so frees need no counters of their own. */
void mp_live_sum(uint64_t *objects, uint64_t *bytes, uint32_t nchains);
void mp_thread_exit(void *tcache);
void mp_thread_watch(void *tcache); /* call mp_thread_exit when this thread exits (lifecycle.c) */
bool mp_tcaches_unwinding(const int *own); /* mp.lock held: another thread inside libunwind? */
void mp_fork_prepare(void);
void mp_fork_parent(void);
void mp_fork_child(void);
/* Sum of the global and all per-thread counters, a table of mp_counts in no
 * particular order (empty slots have key 0); mp.lock held.
 * Returns the number of entries or -1; *out is mp_map()ed, *bytes its size. */
bool mp_counts_any(void); /* anything recorded since start (or fork)? */
long mp_counts_snapshot(struct mp_counts **out, size_t *bytes);

/* dump.c */
/* Write a dump (sequence 0: the final one); the path written goes to path_out. */
int mp_dump_write(uint32_t sequence, char *path_out, size_t path_size);
void mp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mp_log_init(void); /* at init: which file mp_log's lines go to */

/* The next definition of name (dlsym(RTLD_NEXT, ...), errno kept), looked up
 * once into *slot: for wrappers called before init or only forwarding. */
void *mp_next_sym(void **slot, const char *name);

/* endsig.c: MAPPROF_END_SIGNALS. Signals 1 to MP_END_SIGNALS - 1 can be listed
 * (SIGRTMAX is 64): signal n is bit n - 1 of mp.end_signals. */
#define MP_END_SIGNALS 65
const char *mp_end_signal_refusal(int sig);
void mp_end_signals_install(void);
void mp_end_signals_forked(void);
/* Ends the process by sig with the default action; never returns. */
void mp_end_signals_die(int sig) __attribute__((noreturn));
/* While a listed signal ends this process (not a vfork child of it), an exit,
 * exec, fork or spawn waits for the end; returns at once otherwise. */
void mp_end_signals_wait(void);
/* Waits while *busy is not 0 (forever if busy is NULL), as long as the dumps
 * go on; if they make no progress for a while, ends the process by sig. */
void mp_end_signals_wait_while(int sig, const int *busy);
/* The dump thread, its dump over: the signal ends the process, on a thread
 * it came to if one waits in the handler (a core then shows that thread). */
void mp_end_signals_finish(int sig) __attribute__((noreturn));

uint64_t mp_now_ns(void);

/* hooks.c and cxx.c: is this call the program's, to be recorded? */
static inline bool mp_enabled(void)
{
	return __atomic_load_n(&mp.hot, __ATOMIC_ACQUIRE) >= MP_HOT_ALL;
}

static inline bool mp_recording(void)
{
	return !mp_tl.in_hook && mp_enabled();
}

/* cxx.c: inside a forwarded C++ operator new or delete on this thread, and
 * whether a return address lies in the code of one (its own calls of malloc). */
bool mp_from_newop(uintptr_t ra);

static inline bool mp_recording_from(uintptr_t ra)
{
	return mp_recording() && (likely(!mp_tl.in_newop) || !mp_from_newop(ra));
}

/* Sampling mode's fast path, inline in the hooks. Counts size down from the
 * bytes left until the next sample on this thread (table.c draws the gaps); false when the
 * countdown runs out (then mp_sample_skip decides). The countdown is only ever set in sampling
 * mode (elsewhere it stays 0, so this is false) and never stored negative. Makes no call, so a
 * hook using it keeps a frameless fast path. */
static inline bool mp_sample_countdown(size_t size)
{
	int64_t left = mp_tl.sample_left;
	if (likely(size < (uint64_t)left)) {
		mp_tl.sample_left = left - (int64_t)size;
		return true;
	}
	return false;
}

static inline bool mp_sample_skip_fast(size_t size)
{
	return mp_sample_countdown(size) || mp_sample_skip(size);
}

/* A counting filter of the tracked blocks (table.c): in sampling mode it
 * counts them; when every call is recorded it is all UINT8_MAX ("maybe
 * tracked"); else all zero. A static array, so the free hook finds it
 * without a load. */
extern uint8_t mp_sample_filter[MP_FILTER_SIZE];

/* Sampling mode: the counting filter's slot of a block address: one byte
 * per 64-byte granule, by address bits, not a hash. Blocks next to each
 * other share a cache line of the filter, so a free costs one load that
 * mostly hits: a hashed index missed the cache on most frees, and 16-byte
 * granules of 16-bit counters (8x the footprint) on many. Tracked blocks are
 * few, so a granule rarely holds one next to an untracked block (whose free
 * then only looks in the live map). */
static inline uint8_t *mp_filter_slot(uintptr_t p)
{
	return &mp_sample_filter[(p >> 6) & (MP_FILTER_SIZE - 1)];
}

/* Record an allocation or a free of the program's, with the re-entry guard
 * raised. Both keep errno as the program left it: their fast paths make no
 * call that could change it, and their slow paths save it (one call to find
 * errno costs the hot path as much as a few of its steps). */
static inline void mp_record_alloc_guarded(void *p, size_t size)
{
	mp_tl.in_hook++;
	mp_record_alloc(p, size);
	mp_tl.in_hook--;
}

static inline void mp_record_free_guarded(void *p)
{
	mp_tl.in_hook++;
	mp_record_free(p);
	mp_tl.in_hook--;
}

/* Record a successful allocation of size bytes at p (sampling decides). */
static inline void *mp_after_alloc(void *p, size_t size)
{
	if (p && (!mp.sample_period || !mp_sample_skip_fast(size)))
		mp_record_alloc_guarded(p, size);
	return p;
}

#endif
