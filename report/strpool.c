/* strpool.c: the intern table (see strpool.h): open addressing, grown at half load. It never
 * frees a string before strpool_free, since frames point into it. */
#include <string.h>

#include "strpool.h"
#include "usage.h"

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void grow(struct strpool *sp)
{
	size_t cap = sp->cap ? sp->cap * 2 : 256;
	char **slots = xcalloc(cap, sizeof(char *));
	for (size_t i = 0; i < sp->cap; i++) {
		if (!sp->slots[i])
			continue;
		size_t j = hash_str(sp->slots[i]) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = sp->slots[i];
	}
	free(sp->slots);
	sp->slots = slots;
	sp->cap = cap;
}

const char *strpool_intern(struct strpool *sp, const char *s)
{
	if (!s)
		return NULL;
	if ((sp->n + 1) * 2 > sp->cap)
		grow(sp);
	size_t j = hash_str(s) & (sp->cap - 1);
	while (sp->slots[j]) {
		if (strcmp(sp->slots[j], s) == 0)
			return sp->slots[j];
		j = (j + 1) & (sp->cap - 1);
	}
	sp->slots[j] = xstrdup(s);
	sp->n++;
	return sp->slots[j];
}

void strpool_free(struct strpool *sp)
{
	for (size_t i = 0; i < sp->cap; i++)
		free(sp->slots[i]);
	free(sp->slots);
	memset(sp, 0, sizeof(*sp));
}
