/* strpool.h: interned strings. Equal strings get the same pointer, so symbolized frames compare
 * and hash by pointer. Strings live until strpool_free; the pool never hands out a copy twice. */
#ifndef MP_STRPOOL_H
#define MP_STRPOOL_H

#include <stddef.h>
#include <stdint.h>

struct strpool {
	char **slots;
	size_t n, cap;
};

/* The pool's copy of s (NULL stays NULL). */
const char *strpool_intern(struct strpool *sp, const char *s);
void strpool_free(struct strpool *sp);

/* FNV-1a style mixing used by the report's hash tables. */
static inline uint64_t mp_hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

#endif
