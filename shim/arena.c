/* arena.c: memory for the shim's own bookkeeping, taken straight from mmap so
 * that recording an allocation never re-enters the allocator it watches.
 * Never call malloc here; nothing here blocks on I/O. */
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

#define ARENA_CHUNK (1u << 20)

static struct {
	int lock;
	char *cur;
	size_t left;
} arena;

void *mp_map(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void mp_unmap(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

static void arena_lock(void)
{
	while (__atomic_exchange_n(&arena.lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&arena.lock, __ATOMIC_RELAXED))
			;
}

static void arena_unlock(void)
{
	__atomic_store_n(&arena.lock, 0, __ATOMIC_RELEASE);
}

/* Small, long-lived objects (chains, module records): bump-allocated, 16-byte
 * aligned, never freed. Large requests get their own mapping. */
void *mp_arena_alloc(size_t size)
{
	size = (size + 15) & ~(size_t)15;
	if (size >= ARENA_CHUNK / 4)
		return mp_map(size);
	arena_lock();
	if (arena.left < size) {
		char *chunk = mp_map(ARENA_CHUNK);
		if (!chunk) {
			arena_unlock();
			return NULL;
		}
		arena.cur = chunk;
		arena.left = ARENA_CHUNK;
	}
	void *p = arena.cur;
	arena.cur += size;
	arena.left -= size;
	arena_unlock();
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
