/* view_peek.c: `mapprof peek REGEX`: for every function matching REGEX, its callers (leading
 * in), the function itself and the calls below it down to the allocator, with values; pprof's
 * -peek, extended downwards to the allocator. Reads only the profile. The tree below each
 * function is built, printed and freed one function at a time, and the output is written as it
 * is made: `peek .` of a large profile prints far more than the profile holds. */
#include <stdlib.h>
#include <string.h>

#include "trie.h"
#include "usage.h"

struct peek {
	const char *key;
	const struct pframe *frame;
	struct node_table callers; /* flat[] holds the value entering from each caller */
	uint64_t v[NSAMPLES];
	size_t first, n; /* its occurrences in occ[] (after grouping) */
};

/* A matching function's outermost frame in one chain. */
struct occurrence {
	size_t peek;
	uint32_t chain, frame;
};

static void print_one(struct strbuf *sb, struct profile *p, const struct options *o, struct peek *e,
                      const struct trie *below, bool first, struct output *out)
{
	enum sample_index s = o->sample;
	uint64_t total = p->total[s];
	uint64_t self = below->n[0].self[s];
	if (o->json) {
		sb_adds(sb, first ? "{\"name\":" : ",{\"name\":");
		sb_json_str(sb, e->key);
		sb_addf(sb, ",\"cum\":%llu,\"self\":%llu,\"callers\":[",
		        (unsigned long long)e->v[s], (unsigned long long)self);
		for (size_t i = 0, n = 0; i < e->callers.n; i++) {
			if (!e->callers.v[i].flat[s])
				continue; /* sorted: the rest are 0 too */
			sb_adds(sb, n++ ? ",{\"name\":" : "{\"name\":");
			sb_json_str(sb, e->callers.v[i].key);
			sb_addf(sb, ",\"value\":%llu}",
			        (unsigned long long)e->callers.v[i].flat[s]);
		}
		sb_adds(sb, "],\"callees\":");
		trie_json(sb, below, 0, s, o->nodecount, 0, out);
		sb_addch(sb, '}');
		return;
	}
	sb_adds(sb, "----------------------------------------------------------------\n");
	sb_adds(sb, "  callers (leading in):\n");
	for (size_t i = 0; i < e->callers.n && e->callers.v[i].flat[s]; i++) {
		struct strbuf v = STRBUF_INIT;
		format_value(&v, s, e->callers.v[i].flat[s]);
		sb_addf(sb, "%10s %6.2f%%    %s\n", sb_str(&v),
		        percent(e->callers.v[i].flat[s], total), e->callers.v[i].key);
		sb_release(&v);
	}
	struct strbuf v = STRBUF_INIT;
	format_value(&v, s, e->v[s]);
	sb_addf(sb, "%10s %6.2f%%  | %s", sb_str(&v), percent(e->v[s], total), e->key);
	if (self) {
		sb_reset(&v);
		format_value(&v, s, self);
		sb_addf(sb, "  (calls the allocator itself: %s)", sb_str(&v));
	}
	sb_release(&v);
	sb_adds(sb, "\n  callees (down to the allocator):\n");
	if (!below->n[0].nkids)
		sb_adds(sb, "               (none: it calls the allocator directly)\n");
	trie_print(sb, below, 0, 2, s, total, o->nodecount, 0, out);
}

/* Orders matched functions (indices into arg's peeks) by their value of the chosen sample,
 * largest first, then as found (outermost first along the first chain through them). */
struct peek_order {
	const struct peek *pk;
	enum sample_index s;
};

static int cmp_peek(const void *a, const void *b, void *arg)
{
	const struct peek_order *po = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	uint64_t u = po->pk[i].v[po->s], v = po->pk[j].v[po->s];
	if (u != v)
		return u > v ? -1 : 1;
	return i < j ? -1 : i > j;
}

int cmd_peek(struct options *o)
{
	need_args(o, 2, -1, "REGEX and at least one DUMP");
	regex_t re;
	compile_regex(&re, o->args[0], "peek: REGEX");
	struct profile p;
	load_profile(&p, o, 1);
	enum sample_index s = o->sample;
	struct peek *pk = NULL;
	size_t npk = 0, pk_alloc = 0;
	struct occurrence *occ = NULL;
	size_t nocc = 0, occ_alloc = 0;
	unsigned char *match = frames_matching(&p, &re);
	struct node_table byname; /* key -> index in pk (in flat[0]); last_chain dedups */
	memset(&byname, 0, sizeof(byname));
	for (size_t i = 0; i < p.nchains; i++) {
		const struct pchain *c = &p.chains[i];
		if (c->hidden)
			continue;
		/* Each matching function once per chain, at its outermost occurrence; frames
		 * deeper than the call trees go (TRIE_MAX_DEPTH) are left out, as in `tree`. */
		size_t depth = c->nframes < TRIE_MAX_DEPTH ? c->nframes : TRIE_MAX_DEPTH;
		for (size_t k = depth; k-- > 0;) {
			const struct pframe *f = c->frames[k];
			if (!match[f->id])
				continue;
			const char *key = node_key(&p, f, o->lines);
			size_t bx = nodes_get(&byname, key);
			if (byname.v[bx].last_chain == i)
				continue; /* seen further out in this chain */
			if (byname.v[bx].last_chain == SIZE_MAX) {
				byname.v[bx].flat[0] = npk;
				ALLOC_GROW(pk, npk + 1, pk_alloc);
				memset(&pk[npk], 0, sizeof(pk[npk]));
				pk[npk].key = key;
				pk[npk].frame = f;
				npk++;
			}
			byname.v[bx].last_chain = i;
			size_t x = (size_t)byname.v[bx].flat[0];
			for (int t = 0; t < NSAMPLES; t++)
				pk[x].v[t] += c->v[t];
			const char *ck = k + 1 < c->nframes
			                     ? node_key(&p, c->frames[k + 1], o->lines)
			                     : "(root)";
			size_t ci = nodes_get(&pk[x].callers, ck);
			for (int t = 0; t < NSAMPLES; t++)
				pk[x].callers.v[ci].flat[t] += c->v[t];
			ALLOC_GROW(occ, nocc + 1, occ_alloc);
			occ[nocc++] = (struct occurrence){x, (uint32_t)i, (uint32_t)k};
			pk[x].n++;
		}
	}
	/* the functions to show: those with a value of the chosen sample (a function that only
	 * made blocks since freed has no inuse value, and top and tree leave it out too),
	 * largest first, as in top */
	size_t *order = xreallocarray(NULL, npk + 1, sizeof(*order));
	size_t nshow = 0;
	for (size_t x = 0; x < npk; x++)
		if (pk[x].v[s])
			order[nshow++] = x;
	qsort_r(order, nshow, sizeof(*order), cmp_peek, &(struct peek_order){pk, s});
	/* group the occurrences by function, keeping chain order */
	size_t at = 0;
	for (size_t x = 0; x < npk; x++) {
		pk[x].first = at;
		at += pk[x].n;
		pk[x].n = 0;
	}
	struct occurrence *grouped = xreallocarray(NULL, nocc + 1, sizeof(*grouped));
	for (size_t i = 0; i < nocc; i++) {
		struct peek *e = &pk[occ[i].peek];
		grouped[e->first + e->n++] = occ[i];
	}
	free(occ);

	struct output out;
	out_open(&out, o);
	struct strbuf sb = STRBUF_INIT;
	if (o->json)
		sb_addf(&sb, "{\"sample\":\"%s\",\"total\":%llu,\"functions\":[", sample_names[s],
		        (unsigned long long)p.total[s]);
	else
		text_header(&sb, &p, o);
	if (!npk && !o->json)
		sb_addf(&sb, "No function matches '%s'.\n", o->args[0]);
	else if (!nshow && !o->json)
		sb_addf(&sb, "No function matching '%s' has any %s.\n", o->args[0],
		        sample_names[s]);
	for (size_t ox = 0; ox < nshow; ox++) {
		size_t x = order[ox];
		struct peek *e = &pk[x];
		struct trie below;
		trie_init(&below);
		below.n[0].key = e->key;
		below.n[0].frame = e->frame;
		for (size_t i = 0; i < e->n; i++) {
			const struct occurrence *oc = &grouped[e->first + i];
			const struct pchain *c = &p.chains[oc->chain];
			if (oc->frame > 0) {
				trie_add(&below, &p, 0, c, oc->frame - 1, o->lines, c->v, NULL, 0);
			} else {
				for (int t = 0; t < NSAMPLES; t++) {
					below.n[0].v[t] += c->v[t];
					below.n[0].self[t] += c->v[t];
				}
			}
		}
		nodes_sort_flat(&e->callers, s);
		trie_sort(&below, s);
		print_one(&sb, &p, o, e, &below, ox == 0, &out);
		trie_free(&below);
		out_flush(&out, &sb, OUT_CHUNK);
	}
	for (size_t x = 0; x < npk; x++)
		nodes_free(&pk[x].callers);
	free(order);
	if (o->json)
		sb_adds(&sb, "]}\n");
	out_close(&out, &sb);
	sb_release(&sb);
	free(grouped);
	free(pk);
	free(match);
	nodes_free(&byname);
	regfree(&re);
	profile_free(&p);
	return 0;
}
