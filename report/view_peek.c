/* view_peek.c: `mapprof peek REGEX`: for every function matching REGEX, its callers (leading
 * in), the function itself and the calls below it down to the allocator, with values; pprof's
 * -peek, extended downwards to the allocator. Reads only the profile. */
#include <string.h>

#include "trie.h"
#include "usage.h"

struct peek {
	const char *key;
	struct node_table callers; /* flat[] holds the value entering from each caller */
	struct trie below;         /* root = the function; children = its callees */
	uint64_t v[NSAMPLES];
};

int cmd_peek(struct options *o)
{
	need_args(o, 2, -1, "REGEX and at least one DUMP");
	regex_t re;
	int rc = regcomp(&re, o->args[0], REG_EXTENDED | REG_NOSUB);
	if (rc) {
		char msg[256];
		regerror(rc, &re, msg, sizeof(msg));
		die_usage("peek: bad REGEX '%s': %s", o->args[0], msg);
	}
	struct profile p;
	load_profile(&p, o, 1);
	enum sample_index s = o->sample;
	struct peek *pk = NULL;
	size_t npk = 0, pk_alloc = 0;
	for (size_t i = 0; i < p.nchains; i++) {
		const struct pchain *c = &p.chains[i];
		if (c->hidden)
			continue;
		/* Each matching function once per chain, at its outermost occurrence. */
		for (size_t k = c->nframes; k-- > 0;) {
			const struct pframe *f = &c->frames[k];
			if (!frame_matches(&p, f, &re))
				continue;
			const char *key = node_key(&p, f, o->lines);
			bool seen = false;
			for (size_t j = k + 1; j < c->nframes && !seen; j++)
				seen = node_key(&p, &c->frames[j], o->lines) == key;
			if (seen)
				continue;
			size_t x = 0;
			while (x < npk && pk[x].key != key)
				x++;
			if (x == npk) {
				ALLOC_GROW(pk, npk + 1, pk_alloc);
				memset(&pk[x], 0, sizeof(pk[x]));
				pk[x].key = key;
				trie_init(&pk[x].below);
				pk[x].below.n[0].key = key;
				pk[x].below.n[0].frame = f;
				npk++;
			}
			for (int t = 0; t < NSAMPLES; t++)
				pk[x].v[t] += c->v[t];
			const char *ck = k + 1 < c->nframes
			                     ? node_key(&p, &c->frames[k + 1], o->lines)
			                     : "(root)";
			size_t ci = nodes_get(&pk[x].callers, ck);
			for (int t = 0; t < NSAMPLES; t++)
				pk[x].callers.v[ci].flat[t] += c->v[t];
			if (k > 0) {
				trie_add(&pk[x].below, &p, 0, c, k - 1, o->lines, c->v);
			} else {
				for (int t = 0; t < NSAMPLES; t++) {
					pk[x].below.n[0].v[t] += c->v[t];
					pk[x].below.n[0].self[t] += c->v[t];
				}
			}
		}
	}
	struct strbuf sb = STRBUF_INIT;
	uint64_t total = p.total[s];
	if (o->json)
		sb_addf(&sb, "{\"sample\":\"%s\",\"total\":%llu,\"functions\":[", sample_names[s],
		        (unsigned long long)total);
	else
		text_header(&sb, &p, o);
	if (!npk && !o->json)
		sb_addf(&sb, "No function matches '%s'.\n", o->args[0]);
	for (size_t x = 0; x < npk; x++) {
		struct peek *e = &pk[x];
		nodes_sort_flat(&e->callers, s);
		trie_sort(&e->below, s);
		if (o->json) {
			sb_adds(&sb, x ? ",{\"name\":" : "{\"name\":");
			sb_json_str(&sb, e->key);
			sb_addf(&sb, ",\"cum\":%llu,\"self\":%llu,\"callers\":[",
			        (unsigned long long)e->v[s],
			        (unsigned long long)e->below.n[0].self[s]);
			for (size_t i = 0; i < e->callers.n; i++) {
				sb_adds(&sb, i ? ",{\"name\":" : "{\"name\":");
				sb_json_str(&sb, e->callers.v[i].key);
				sb_addf(&sb, ",\"value\":%llu}",
				        (unsigned long long)e->callers.v[i].flat[s]);
			}
			sb_adds(&sb, "],\"callees\":");
			trie_json(&sb, &e->below, 0, s);
			sb_addch(&sb, '}');
			continue;
		}
		sb_adds(&sb, "----------------------------------------------------------------\n");
		sb_adds(&sb, "  callers (leading in):\n");
		for (size_t i = 0; i < e->callers.n; i++) {
			struct strbuf v = STRBUF_INIT;
			format_value(&v, s, e->callers.v[i].flat[s]);
			sb_addf(&sb, "%10s %6.2f%%    %s\n", sb_str(&v),
			        percent(e->callers.v[i].flat[s], total), e->callers.v[i].key);
			sb_release(&v);
		}
		struct strbuf v = STRBUF_INIT;
		format_value(&v, s, e->v[s]);
		sb_addf(&sb, "%10s %6.2f%%  | %s", sb_str(&v), percent(e->v[s], total), e->key);
		if (e->below.n[0].self[s]) {
			sb_reset(&v);
			format_value(&v, s, e->below.n[0].self[s]);
			sb_addf(&sb, "  (calls the allocator itself: %s)", sb_str(&v));
		}
		sb_release(&v);
		sb_adds(&sb, "\n  callees (down to the allocator):\n");
		if (!e->below.n[0].nkids)
			sb_adds(&sb, "               (none: it calls the allocator directly)\n");
		trie_print(&sb, &e->below, 0, 2, s, total, o->nodecount, 0);
	}
	if (o->json)
		sb_adds(&sb, "]}\n");
	emit(o, &sb);
	sb_release(&sb);
	for (size_t x = 0; x < npk; x++) {
		nodes_free(&pk[x].callers);
		trie_free(&pk[x].below);
	}
	free(pk);
	regfree(&re);
	profile_free(&p);
	return 0;
}
