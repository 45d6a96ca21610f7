/* hooks.c: the exported allocation API. Each hook guards against re-entry
 * (a thread-local flag in initial-exec TLS), forwards to the next allocator
 * and records the call. Never allocate through the wrapped malloc, never block
 * on I/O on this path; never change what the caller sees (values, errno). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

/* ---- bootstrap: dlsym may allocate before we know the real malloc ---- */

static struct {
	char buf[1 << 16] __attribute__((aligned(64)));
	size_t used;
} boot;

static void *boot_alloc(size_t size, size_t align, bool zero)
{
	(void)zero; /* static memory is zeroed and never reused */
	if (align < 16)
		align = 16;
	size_t start = (boot.used + 16 + align - 1) & ~(align - 1);
	if (start + size > sizeof(boot.buf) || start + size < start)
		return NULL;
	*(size_t *)(boot.buf + start - sizeof(size_t)) = size;
	boot.used = start + size;
	return boot.buf + start;
}

static inline bool is_boot(const void *p)
{
	return (uintptr_t)p - (uintptr_t)boot.buf < sizeof(boot.buf);
}

static size_t boot_size(const void *p)
{
	return *(const size_t *)((const char *)p - sizeof(size_t));
}

/* ---- the hooks ---- */

/* The caller's return address: a call from inside a forwarded C++ operator
 * new is the operator's own (cxx.c). */
#define RA ((uintptr_t)__builtin_return_address(0))

/* malloc and free keep their fast paths (not recording, or sampling mode
 * skipping this call) free of the out-of-line work, so those paths save no
 * registers and end in a tail call to the next allocator. */
static __attribute__((noinline)) void *malloc_recorded(size_t size)
{
	void *p = mp_real.malloc(size);
	if (p)
		mp_record_alloc_guarded(p, size);
	return p;
}

/* Sampling mode, the countdown ran out: draw the next gap and maybe record. */
static __attribute__((noinline)) void *malloc_sample_due(size_t size)
{
	if (mp_sample_skip(size))
		return mp_real.malloc(size);
	return malloc_recorded(size);
}

static __attribute__((noinline)) void *malloc_cold(size_t size)
{
	if (!mp_ready_slow())
		return boot_alloc(size, 16, false);
	return malloc(size);
}

/* A call to record, once the countdown (if any) has run out. Sampling mode
 * draws before the call (a failed call then only moves the countdown on,
 * which changes no estimate). */
static inline void *malloc_counted(size_t size, uint32_t hot)
{
	if (hot == MP_HOT_SAMPLE)
		return malloc_sample_due(size);
	return malloc_recorded(size);
}

/* Inside a forwarded C++ operator new: its own malloc is not counted again. */
static __attribute__((noinline)) void *malloc_in_newop(size_t size, uintptr_t ra, uint32_t hot)
{
	if (mp_from_newop(ra) || mp_sample_countdown(size))
		return mp_real.malloc(size);
	return malloc_counted(size, hot);
}

/* Sampling mode between two samples costs only the thread's countdown;
 * otherwise one load of mp.hot says what to do. */
MP_EXPORT void *malloc(size_t size)
{
	uint64_t guards = mp_tl.guards;
	if (likely(!guards) && likely(mp_sample_countdown(size)))
		return mp_real.malloc(size);
	uint32_t hot = __atomic_load_n(&mp.hot, __ATOMIC_ACQUIRE);
	if (likely(hot >= MP_HOT_ALL)) {
		if (likely(!guards))
			return malloc_counted(size, hot);
		if (!mp_tl.in_hook)
			return malloc_in_newop(size, RA, hot);
	}
	if (unlikely(hot == MP_HOT_COLD))
		return malloc_cold(size);
	return mp_real.malloc(size);
}

static __attribute__((noinline)) void free_recorded(void *p)
{
	mp_record_free_guarded(p);
	mp_real.free(p);
}

/* Until init, mp_real.free leads here (lifecycle.c), so the free hook's
 * fast path needs no test of its own for it. */
__attribute__((noinline)) void mp_free_cold(void *p)
{
	if (!p)
		return;
	if (mp_ready_slow())
		free(p);
	/* else cannot happen: only bootstrap memory exists before init */
}

static __attribute__((noinline)) void free_slow(void *p)
{
	uint32_t hot = __atomic_load_n(&mp.hot, __ATOMIC_ACQUIRE);
	if (p && hot >= MP_HOT_ALL && !mp_tl.in_hook)
		return free_recorded(p);
	mp_real.free(p);
}

/* The filter's slot of a block is zero when the block is certainly not
 * tracked: most blocks in sampling mode, none when every call is recorded
 * and frees are tracked (the filter is then all UINT8_MAX), all before init,
 * when not recording and with MAPPROF_INUSE=0. Those frees cost one load
 * before they are forwarded; NULL needs no test of its own (free(NULL) does
 * nothing, and the live map never holds it). */
MP_EXPORT void free(void *p)
{
	if (unlikely(is_boot(p)))
		return;
	if (likely(!__atomic_load_n(mp_filter_slot((uintptr_t)p), __ATOMIC_ACQUIRE)))
		return mp_real.free(p);
	free_slow(p);
}

MP_EXPORT void *calloc(size_t n, size_t size)
{
	if (unlikely(!mp_ready())) {
		size_t total;
		if (__builtin_mul_overflow(n, size, &total)) {
			errno = ENOMEM;
			return NULL;
		}
		return boot_alloc(total, 16, true);
	}
	if (!mp_recording_from(RA))
		return mp_real.calloc(n, size);
	void *p = mp_real.calloc(n, size);
	return mp_after_alloc(p, n * size); /* no overflow: calloc succeeded */
}

/* Sampling mode between two samples, of a block the filter says is not
 * tracked: only forwarded (with the guard raised, as below). */
static inline bool realloc_unsampled(void *p, size_t size)
{
	return likely(!mp_tl.guards) &&
	       !__atomic_load_n(mp_filter_slot((uintptr_t)p), __ATOMIC_ACQUIRE) &&
	       mp_sample_countdown(size);
}

/* realloc(p, n>0) counts one object of n bytes and releases p;
 * realloc(NULL, n) is a malloc; realloc(p, 0) is what the next allocator
 * makes of it: a free when it returns NULL (glibc), else a free plus a 0-byte
 * object. A failed realloc leaves p as it was. Inlined into both hooks, so
 * their sampling fast path makes no call but the next allocator's. */
static inline __attribute__((always_inline)) void *
realloc_common(void *p, size_t size, void *(*real)(void *, size_t, size_t), size_t n, size_t elem)
{
	if (realloc_unsampled(p, size)) {
		mp_tl.in_hook++;
		void *q = real(p, n, elem);
		mp_tl.in_hook--;
		return q;
	}
	if (!mp_recording())
		return real(p, n, elem);
	int saved = errno;
	uint64_t meta = 0;
	/* The guard stays raised across the real call: glibc's reallocarray
	 * calls realloc through the PLT, which must not count a second time. */
	mp_tl.in_hook++;
	bool tracked = mp_live_take(p, &meta);
	void *q = real(p, n, elem);
	int after = errno;
	if (q || size == 0) {
		if (q && (!mp.sample_period || !mp_sample_skip_fast(size)))
			mp_record_alloc(q, size);
		after = q ? saved : after;
	} else if (tracked) {
		mp_live_restore(p, meta);
	}
	mp_tl.in_hook--;
	errno = after;
	return q;
}

static void *call_realloc(void *p, size_t n, size_t unused)
{
	(void)unused;
	return mp_real.realloc(p, n);
}

static void *call_reallocarray(void *p, size_t n, size_t elem)
{
	if (mp_real.reallocarray)
		return mp_real.reallocarray(p, n, elem);
	size_t total;
	if (__builtin_mul_overflow(n, elem, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return mp_real.realloc(p, total);
}

static void *boot_realloc(void *p, size_t size)
{
	void *q = malloc(size);
	if (q && p) {
		size_t old = boot_size(p);
		memcpy(q, p, old < size ? old : size);
	}
	return q;
}

MP_EXPORT void *realloc(void *p, size_t size)
{
	if (!p)
		return malloc(size);
	if (unlikely(is_boot(p)))
		return boot_realloc(p, size);
	if (unlikely(!mp_ready()))
		return NULL;
	return realloc_common(p, size, call_realloc, size, 0);
}

MP_EXPORT void *reallocarray(void *p, size_t n, size_t elem)
{
	size_t total;
	if (__builtin_mul_overflow(n, elem, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!p)
		return malloc(total);
	if (unlikely(is_boot(p)))
		return boot_realloc(p, total);
	if (unlikely(!mp_ready()))
		return NULL;
	return realloc_common(p, total, call_reallocarray, n, elem);
}

MP_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (unlikely(!mp_ready())) {
		void *p = boot_alloc(size, align, false);
		if (!p)
			return ENOMEM;
		*out = p;
		return 0;
	}
	int r = mp_real.posix_memalign(out, align, size);
	if (r == 0 && mp_recording_from(RA))
		mp_after_alloc(*out, size);
	return r;
}

MP_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (unlikely(!mp_ready()))
		return boot_alloc(size, align, false);
	void *p = mp_real.aligned_alloc ? mp_real.aligned_alloc(align, size)
	                                : mp_real.memalign(align, size);
	return mp_recording_from(RA) ? mp_after_alloc(p, size) : p;
}

MP_EXPORT void *memalign(size_t align, size_t size)
{
	if (unlikely(!mp_ready()))
		return boot_alloc(size, align, false);
	void *p = mp_real.memalign(align, size);
	return mp_recording_from(RA) ? mp_after_alloc(p, size) : p;
}

MP_EXPORT void *valloc(size_t size)
{
	if (unlikely(!mp_ready()))
		return boot_alloc(size, 4096, false);
	void *p = mp_real.valloc ? mp_real.valloc(size)
	                         : mp_real.memalign((size_t)sysconf(_SC_PAGESIZE), size);
	return mp_recording_from(RA) ? mp_after_alloc(p, size) : p;
}

MP_EXPORT void *pvalloc(size_t size)
{
	if (unlikely(!mp_ready()))
		return boot_alloc(size, 4096, false);
	void *p;
	if (mp_real.pvalloc) {
		p = mp_real.pvalloc(size);
	} else {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		p = mp_real.memalign(page, (size + page - 1) & ~(page - 1));
	}
	return mp_recording_from(RA) ? mp_after_alloc(p, size) : p;
}
