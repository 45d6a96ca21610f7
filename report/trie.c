/* trie.c: call trees for tree, peek and flame (see trie.h). A child is found by (parent, key) in
 * one hash table for the whole tree, so a node with thousands of children costs no more per
 * insertion than one with two. */
#include <string.h>

#include "trie.h"
#include "usage.h"

void trie_init(struct trie *t)
{
	memset(t, 0, sizeof(*t));
	ALLOC_GROW(t->n, 1, t->alloc);
	memset(&t->n[0], 0, sizeof(t->n[0]));
	t->n[0].key = "(root)";
	t->len = 1;
}

const char trie_truncated[] = "(truncated)";

/* A function inlined into its caller and the same function called from it are two children:
 * the text marks the first "(inlined)", so that a function inlined into its namesake (glibc's
 * aliases do this) does not read as recursion. */
static bool inlined(const struct pframe *f)
{
	return f && f->inlined;
}

static uint64_t child_hash(size_t parent, const char *key, bool inl)
{
	return mp_hash_mix(mp_hash_mix(inl, parent), (uintptr_t)key);
}

static void index_grow(struct trie *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	size_t *ix = xmalloc(cap * sizeof(*ix));
	memset(ix, 0xff, cap * sizeof(*ix));
	for (size_t p = 0; p < t->len; p++) {
		for (size_t i = 0; i < t->n[p].nkids; i++) {
			size_t c = t->n[p].kids[i];
			size_t j = child_hash(p, t->n[c].key, inlined(t->n[c].frame)) & (cap - 1);
			while (ix[j] != SIZE_MAX)
				j = (j + 1) & (cap - 1);
			ix[j] = c;
		}
	}
	free(t->index);
	t->index = ix;
	t->cap = cap;
}

size_t trie_child(struct trie *t, size_t at, const char *key, const struct pframe *f)
{
	if (t->len * 2 >= t->cap)
		index_grow(t);
	bool inl = inlined(f);
	size_t j = child_hash(at, key, inl) & (t->cap - 1);
	while (t->index[j] != SIZE_MAX) {
		size_t c = t->index[j];
		if (t->n[c].key == key && t->n[c].parent == at && inlined(t->n[c].frame) == inl)
			return c;
		j = (j + 1) & (t->cap - 1);
	}
	ALLOC_GROW(t->n, t->len + 1, t->alloc);
	struct tnode *nd = &t->n[t->len];
	memset(nd, 0, sizeof(*nd));
	nd->key = key;
	nd->frame = f;
	nd->parent = at;
	struct tnode *parent = &t->n[at];
	if (parent->nkids == parent->kids_alloc) {
		/* most nodes have one child: grow from one, not from ALLOC_GROW's sixteen */
		parent->kids_alloc = parent->kids_alloc ? parent->kids_alloc * 2 : 1;
		parent->kids =
		    xreallocarray(parent->kids, parent->kids_alloc, sizeof(*parent->kids));
	}
	parent->kids[parent->nkids++] = t->len;
	t->index[j] = t->len;
	return t->len++;
}

size_t trie_add(struct trie *t, struct profile *p, size_t at, const struct pchain *c, size_t from,
                bool lines, const uint64_t v[NSAMPLES], const uint64_t *base, uint64_t growth)
{
	/* values along the whole path, the node at `at` included */
#define TRIE_ADD_VALUES(node)                                                                      \
	do {                                                                                       \
		for (int s_ = 0; s_ < NSAMPLES; s_++) {                                            \
			(node)->v[s_] = sat_add((node)->v[s_], v[s_]);                             \
			if (base)                                                                  \
				(node)->base[s_] = sat_add((node)->base[s_], base[s_]);            \
		}                                                                                  \
		(node)->growth_v = sat_add((node)->growth_v, growth);                              \
	} while (0)
	TRIE_ADD_VALUES(&t->n[at]);
	bool cut = c->truncated && at == 0 && from + 1 == c->nframes;
	if (from >= TRIE_MAX_DEPTH) {
		/* deeper than any real stack: the outermost frames are left out, as for a chain
		 * cut at the depth limit (this bounds the recursion of the printers) */
		from = TRIE_MAX_DEPTH - 1;
		cut = true;
	}
	if (cut) {
		at = trie_child(t, at, trie_truncated, NULL);
		TRIE_ADD_VALUES(&t->n[at]);
	}
	for (size_t k = from + 1; k-- > 0;) {
		const struct pframe *f = c->frames[k];
		at = trie_child(t, at, node_key(p, f, lines), f);
		TRIE_ADD_VALUES(&t->n[at]);
	}
#undef TRIE_ADD_VALUES
	for (int s = 0; s < NSAMPLES; s++)
		t->n[at].self[s] = sat_add(t->n[at].self[s], v[s]);
	return at;
}

struct kid_order {
	const struct trie *t;
	enum sample_index s;
};

static int cmp_kids(const void *a, const void *b, void *arg)
{
	const struct kid_order *k = arg;
	const struct tnode *x = &k->t->n[*(const size_t *)a];
	const struct tnode *y = &k->t->n[*(const size_t *)b];
	if (x->v[k->s] != y->v[k->s])
		return x->v[k->s] > y->v[k->s] ? -1 : 1;
	return strcmp(x->key, y->key);
}

void trie_sort(struct trie *t, enum sample_index s)
{
	struct kid_order k = {t, s};
	for (size_t i = 0; i < t->len; i++)
		if (t->n[i].nkids > 1)
			qsort_r(t->n[i].kids, t->n[i].nkids, sizeof(size_t), cmp_kids, &k);
}

void trie_free(struct trie *t)
{
	for (size_t i = 0; i < t->len; i++)
		free(t->n[i].kids);
	free(t->n);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

static void value_col(struct strbuf *sb, enum sample_index s, uint64_t v)
{
	struct strbuf tmp = STRBUF_INIT;
	format_value(&tmp, s, v);
	sb_addf(sb, "%10s", sb_str(&tmp));
	sb_release(&tmp);
}

static void indent(struct strbuf *sb, int depth)
{
	size_t n = (size_t)(depth <= 100 ? depth : 100) * 2;
	sb_grow(sb, n);
	memset(sb->buf + sb->len, ' ', n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	if (depth > 100)
		sb_addf(sb, "[%d] ", depth);
}

/* Which children of a node are shown: the text and the JSON of a tree make the same choice.
 * Children come largest first; those with no value are left out, and those past the first
 * `nodecount` (when it is above 0) or under min_value fold into one "(N more)" entry. */
enum kid_show { KID_NONE, KID_SHOWN, KID_FOLDED };

static enum kid_show kid_show(const struct tnode *k, size_t i, enum sample_index s, long nodecount,
                              uint64_t min_value)
{
	if (!k->v[s])
		return KID_NONE;
	if ((nodecount > 0 && i >= (size_t)nodecount) || k->v[s] < min_value)
		return KID_FOLDED;
	return KID_SHOWN;
}

void trie_print(struct strbuf *sb, const struct trie *t, size_t at, int depth, enum sample_index s,
                uint64_t total, long nodecount, uint64_t min_value, struct output *out)
{
	const struct tnode *nd = &t->n[at];
	uint64_t folded = 0;
	size_t nfolded = 0;
	for (size_t i = 0; i < nd->nkids; i++) {
		const struct tnode *k = &t->n[nd->kids[i]];
		enum kid_show show = kid_show(k, i, s, nodecount, min_value);
		if (show == KID_NONE)
			continue;
		if (show == KID_FOLDED) {
			folded = sat_add(folded, k->v[s]);
			nfolded++;
			continue;
		}
		value_col(sb, s, k->v[s]);
		sb_addf(sb, " %6.2f%%  ", percent(k->v[s], total));
		/* indentation shows the depth up to 100 levels; deeper, a number does (it keeps
		 * the output of a very deep tree linear in its size) */
		indent(sb, depth);
		sb_adds(sb, k->key);
		if (inlined(k->frame))
			sb_adds(sb, " (inlined)");
		if (k->self[s] && k->nkids) {
			sb_adds(sb, "  (self ");
			format_value(sb, s, k->self[s]);
			sb_addch(sb, ')');
		}
		sb_addch(sb, '\n');
		if (out)
			out_flush(out, sb, OUT_CHUNK);
		trie_print(sb, t, nd->kids[i], depth + 1, s, total, nodecount, min_value, out);
	}
	if (nfolded) {
		value_col(sb, s, folded);
		sb_addf(sb, " %6.2f%%  ", percent(folded, total));
		indent(sb, depth);
		sb_addf(sb, "(%zu more)\n", nfolded);
	}
}

void trie_json(struct strbuf *sb, const struct trie *t, size_t at, enum sample_index s,
               long nodecount, uint64_t min_value, struct output *out)
{
	const struct tnode *nd = &t->n[at];
	sb_adds(sb, "{\"name\":");
	sb_json_str(sb, nd->key);
	if (inlined(nd->frame))
		sb_adds(sb, ",\"inlined\":true");
	sb_addf(sb, ",\"value\":%llu,\"self\":%llu,\"children\":[", (unsigned long long)nd->v[s],
	        (unsigned long long)nd->self[s]);
	bool first = true;
	uint64_t folded = 0;
	size_t nfolded = 0;
	for (size_t i = 0; i < nd->nkids; i++) {
		const struct tnode *k = &t->n[nd->kids[i]];
		enum kid_show show = kid_show(k, i, s, nodecount, min_value);
		if (show == KID_NONE)
			continue;
		if (show == KID_FOLDED) {
			folded = sat_add(folded, k->v[s]);
			nfolded++;
			continue;
		}
		if (!first)
			sb_addch(sb, ',');
		first = false;
		if (out)
			out_flush(out, sb, OUT_CHUNK);
		trie_json(sb, t, nd->kids[i], s, nodecount, min_value, out);
	}
	if (nfolded)
		sb_addf(sb,
		        "%s{\"name\":\"(%zu more)\",\"value\":%llu,\"self\":0,\"folded\":%zu,"
		        "\"children\":[]}",
		        first ? "" : ",", nfolded, (unsigned long long)folded, nfolded);
	sb_adds(sb, "]}");
}
