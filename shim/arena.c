/* arena.c: memory for the shim's own bookkeeping, taken straight from mmap so
 * that recording an allocation never re-enters the allocator it watches.
 * Never call malloc here; nothing here blocks on I/O. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "shim.h"

#define ARENA_CHUNK (1u << 20)
/* The first chunk is faulted in this much at a time, ahead of use: a process
 * that makes few chains keeps few pages, and does not fault them in one at a
 * time. One that filled a chunk makes chains by the thousand: the next chunks
 * are faulted in whole, by the call that maps them. */
#define ARENA_STEP (64u << 10)
_Static_assert(ARENA_CHUNK % ARENA_STEP == 0, "a chunk is a whole number of steps");

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static struct {
	char *cur;
	size_t left;
	char *filled; /* the chunk is faulted in below this */
	unsigned chunks;
} arena; /* under mp.arena_lock */

static void *map(size_t size, int flags)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | flags, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *mp_map(size_t size)
{
	return map(size, 0);
}

void *mp_map_filled(size_t size)
{
	return map(size, MAP_POPULATE);
}

void mp_populate(void *p, size_t size)
{
	static uintptr_t page_size;
	uintptr_t page = __atomic_load_n(&page_size, __ATOMIC_RELAXED);
	if (!page) {
		unsigned long sz = getauxval(AT_PAGESZ);
		page = sz && !(sz & (sz - 1)) ? sz : 4096;
		__atomic_store_n(&page_size, page, __ATOMIC_RELAXED);
	}
	uintptr_t lo = (uintptr_t)p & ~(page - 1);
	uintptr_t hi = ((uintptr_t)p + size + page - 1) & ~(page - 1);
	int saved = errno;
	if (size)
		madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
	errno = saved;
}

void mp_unmap(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

/* Small, long-lived objects (chains, module records): bump-allocated, 16-byte
 * aligned, never freed. Large requests get their own mapping. */
void *mp_arena_alloc(size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (size >= ARENA_CHUNK / 4)
		return mp_map(size);
	mp_spin_lock(&mp.arena_lock);
	if (arena.left < size) {
		char *chunk = map(ARENA_CHUNK, arena.chunks ? MAP_POPULATE : 0);
		if (!chunk) {
			mp_spin_unlock(&mp.arena_lock);
			return NULL;
		}
		arena.cur = chunk;
		arena.filled = arena.chunks ? chunk + ARENA_CHUNK : chunk;
		arena.left = ARENA_CHUNK;
		arena.chunks++;
	}
	void *p = arena.cur;
	arena.cur += size;
	arena.left -= size;
	while (arena.cur > arena.filled) { /* the chunk is a whole number of steps */
		mp_populate(arena.filled, ARENA_STEP);
		arena.filled += ARENA_STEP;
	}
	mp_spin_unlock(&mp.arena_lock);
	return p;
}

char *mp_arena_strdup(const char *s, size_t len)
{
	char *p = mp_arena_alloc(len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = 0;
	}
	return p;
}

/* uthash grows its bucket array by doubling; old arrays are large enough to
 * be worth returning, small ones stay in the arena. */
void *mp_uthash_alloc(size_t size)
{
	return size >= ARENA_CHUNK / 4 ? mp_map(size) : mp_arena_alloc(size);
}

void mp_uthash_free(void *p, size_t size)
{
	if (size >= ARENA_CHUNK / 4)
		mp_unmap(p, size);
}
