/* arena.c: memory for the shim's own bookkeeping, taken straight from mmap so
 * that recording an allocation never re-enters the allocator it watches.
 * Never call malloc here; nothing here blocks on I/O. */
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

#define ARENA_CHUNK (1u << 20)

static struct {
	char *cur;
	size_t left;
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
		/* A process that filled a chunk makes chains by the thousand: fault
		 * the next ones in at once (one call instead of 256 page faults). */
		char *chunk = map(ARENA_CHUNK, arena.chunks ? MAP_POPULATE : 0);
		if (!chunk) {
			mp_spin_unlock(&mp.arena_lock);
			return NULL;
		}
		arena.cur = chunk;
		arena.left = ARENA_CHUNK;
		arena.chunks++;
	}
	void *p = arena.cur;
	arena.cur += size;
	arena.left -= size;
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
