/* trie.h: call trees built from the profile's chains (outermost caller at the root), shared by
 * tree, peek and flame. Children are keyed by node_key() (function, or function file:line) and
 * whether the frame is inlined, so the same function reached by two paths is two nodes. It never
 * changes the profile. */
#ifndef MP_TRIE_H
#define MP_TRIE_H

#include "views.h"

struct tnode {
	const char *key;
	const struct pframe *frame; /* representative */
	uint64_t v[NSAMPLES];       /* everything below (cum) */
	uint64_t self[NSAMPLES];    /* allocations made here (this frame called the allocator) */
	uint64_t base[NSAMPLES];    /* diff flame graphs: the base profile's cum */
	size_t *kids;
	size_t nkids, kids_alloc;
	size_t parent;
	uint64_t growth_v; /* flame: value of the chosen sample on growth chains */
	int growth;        /* flame: mostly growth (drawn highlighted) */
};

struct trie {
	struct tnode *n; /* n[0] is the root */
	size_t len, alloc;
	size_t *index; /* (parent, key) -> child, open addressing; SIZE_MAX empty */
	size_t cap;
};

/* The key of the node that holds truncated chains, under the root. */
extern const char trie_truncated[];

void trie_init(struct trie *t);
/* Call trees are at most this deep (plus the root and a "(truncated)" node): frames beyond it,
 * which no real stack has, are left out as if the chain had been cut at the depth limit. */
#define TRIE_MAX_DEPTH 1024

/* Adds frames[from] (outermost) down to frames[0] with value v under node `at`; returns the
 * leaf node index. A chain cut at the depth limit goes under a "(truncated)" node of the root.
 * BASE (if not NULL) adds to the nodes' base values and GROWTH to their growth_v, along the
 * same path. */
size_t trie_add(struct trie *t, struct profile *p, size_t at, const struct pchain *c, size_t from,
                bool lines, const uint64_t v[NSAMPLES], const uint64_t *base, uint64_t growth);
/* The child of `at` with this (interned or static) key, created with frame f if missing. */
size_t trie_child(struct trie *t, size_t at, const char *key, const struct pframe *f);
/* Sorts every node's children by sample s, largest first. */
void trie_sort(struct trie *t, enum sample_index s);
void trie_free(struct trie *t);

/* Prints the subtree under `at` as indented text: "value pct  name", children largest first,
 * at most nodecount per node (0 or less: all), the rest and nodes under min_value folded into
 * one "(N more)" line. With OUT, the text is written out as it grows (see out_flush). */
void trie_print(struct strbuf *sb, const struct trie *t, size_t at, int depth, enum sample_index s,
                uint64_t total, long nodecount, uint64_t min_value, struct output *out);
/* The subtree under `at` as JSON:
 * {"name":..,["inlined":true,]"value":..,"self":..,"children":[..]}, with the children trie_print
 * shows and its "(N more)" line as a last child {"name":"(N more)","value":..,
 * "self":0,"folded":N,"children":[]}. */
void trie_json(struct strbuf *sb, const struct trie *t, size_t at, enum sample_index s,
               long nodecount, uint64_t min_value, struct output *out);

#endif
