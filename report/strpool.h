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

/* The mixing step of the report's hash tables, which index by the low bits: the final shift
 * folds the product's high bits into them (without it, keys that differ only above bit 20,
 * such as addresses of one module in different dumps, all land in the same few slots). */
static inline uint64_t mp_hash_mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 29);
}

#endif
