/* trie.c: call trees for tree, peek and flame (see trie.h). Children are found by a linear scan
 * of their parent's list; fan-out in allocation call trees is small. */
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

size_t trie_child(struct trie *t, size_t at, const char *key, const struct pframe *f)
{
	for (size_t i = 0; i < t->n[at].nkids; i++)
		if (t->n[t->n[at].kids[i]].key == key)
			return t->n[at].kids[i];
	ALLOC_GROW(t->n, t->len + 1, t->alloc);
	struct tnode *nd = &t->n[t->len];
	memset(nd, 0, sizeof(*nd));
	nd->key = key;
	nd->frame = f;
	struct tnode *parent = &t->n[at];
	ALLOC_GROW(parent->kids, parent->nkids + 1, parent->kids_alloc);
	parent->kids[parent->nkids++] = t->len;
	return t->len++;
}

size_t trie_add(struct trie *t, struct profile *p, size_t at, const struct pchain *c, size_t from,
                bool lines, const uint64_t v[NSAMPLES])
{
	for (int s = 0; s < NSAMPLES; s++)
		t->n[at].v[s] += v[s];
	if (c->truncated && at == 0 && from + 1 == c->nframes) {
		/* the outermost frames were cut at the depth limit: say so at the root */
		static const char truncated[] = "(truncated)";
		at = trie_child(t, at, truncated, NULL);
		for (int s = 0; s < NSAMPLES; s++)
			t->n[at].v[s] += v[s];
	}
	for (size_t k = from + 1; k-- > 0;) {
		const struct pframe *f = &c->frames[k];
		at = trie_child(t, at, node_key(p, f, lines), f);
		for (int s = 0; s < NSAMPLES; s++)
			t->n[at].v[s] += v[s];
	}
	for (int s = 0; s < NSAMPLES; s++)
		t->n[at].self[s] += v[s];
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
	memset(t, 0, sizeof(*t));
}

static void value_col(struct strbuf *sb, enum sample_index s, uint64_t v)
{
	struct strbuf tmp = STRBUF_INIT;
	format_value(&tmp, s, v);
	sb_addf(sb, "%10s", sb_str(&tmp));
	sb_release(&tmp);
}

void trie_print(struct strbuf *sb, const struct trie *t, size_t at, int depth, enum sample_index s,
                uint64_t total, long nodecount, uint64_t min_value)
{
	const struct tnode *nd = &t->n[at];
	uint64_t folded = 0;
	size_t nfolded = 0;
	for (size_t i = 0; i < nd->nkids; i++) {
		const struct tnode *k = &t->n[nd->kids[i]];
		if (!k->v[s])
			continue;
		if ((nodecount && (long)i >= nodecount) || k->v[s] < min_value) {
			folded += k->v[s];
			nfolded++;
			continue;
		}
		value_col(sb, s, k->v[s]);
		sb_addf(sb, " %6.2f%%  %*s%s", percent(k->v[s], total), depth * 2, "", k->key);
		if (k->self[s] && k->nkids) {
			sb_adds(sb, "  (self ");
			format_value(sb, s, k->self[s]);
			sb_addch(sb, ')');
		}
		sb_addch(sb, '\n');
		trie_print(sb, t, nd->kids[i], depth + 1, s, total, nodecount, min_value);
	}
	if (nfolded) {
		value_col(sb, s, folded);
		sb_addf(sb, " %6.2f%%  %*s(%zu more)\n", percent(folded, total), depth * 2, "",
		        nfolded);
	}
}

void trie_json(struct strbuf *sb, const struct trie *t, size_t at, enum sample_index s)
{
	const struct tnode *nd = &t->n[at];
	sb_adds(sb, "{\"name\":");
	sb_json_str(sb, nd->key);
	sb_addf(sb, ",\"value\":%llu,\"self\":%llu,\"children\":[", (unsigned long long)nd->v[s],
	        (unsigned long long)nd->self[s]);
	int first = 1;
	for (size_t i = 0; i < nd->nkids; i++) {
		if (!t->n[nd->kids[i]].v[s])
			continue;
		if (!first)
			sb_addch(sb, ',');
		first = 0;
		trie_json(sb, t, nd->kids[i], s);
	}
	sb_adds(sb, "]}");
}
