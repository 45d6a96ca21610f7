/* view_diff.c: `mapprof diff BASE NEW`: per-function and per-chain deltas (NEW - BASE) of the
 * chosen sample, largest change first, with totals. Both sides go into one profile, so chains
 * match by call path (function, file:line; not inlining, which is the build's), never by
 * addresses. --fail-if-increase PCT exits 3.
 * Values are whole 64-bit counts: a delta is kept as a sign and a magnitude, never as a signed
 * 64-bit number, which cannot hold every difference of two of them. */
#include <stdlib.h>
#include <string.h>

#include "usage.h"
#include "views.h"

struct drow {
	const char *name;
	const struct pchain *c; /* chain rows */
	uint64_t base, now, base_cum, now_cum;
};

/* |a - b| */
static uint64_t distance(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

static int cmp_rows(const void *a, const void *b)
{
	const struct drow *x = a, *y = b;
	uint64_t dx = distance(x->now, x->base), dy = distance(y->now, y->base);
	if (dx != dy)
		return dx > dy ? -1 : 1;
	uint64_t cx = distance(x->now_cum, x->base_cum), cy = distance(y->now_cum, y->base_cum);
	if (cx != cy)
		return cx > cy ? -1 : 1;
	/* equal changes: the more specific function (smaller cum) first, not _start */
	uint64_t sx = sat_add(x->base_cum, x->now_cum), sy = sat_add(y->base_cum, y->now_cum);
	if (sx != sy)
		return sx < sy ? -1 : 1;
	return x->name && y->name ? strcmp(x->name, y->name) : 0;
}

/* NEW - BASE with its sign: "+5", "-1.00kB", "0". */
static void add_delta(struct strbuf *sb, enum sample_index s, uint64_t base, uint64_t now)
{
	if (now != base)
		sb_addch(sb, now > base ? '+' : '-');
	format_value(sb, s, distance(now, base));
}

static void signed_value(struct strbuf *sb, enum sample_index s, uint64_t base, uint64_t now)
{
	struct strbuf t = STRBUF_INIT;
	add_delta(&t, s, base, now);
	sb_addf(sb, "%11s", sb_str(&t));
	sb_release(&t);
}

static void value(struct strbuf *sb, enum sample_index s, uint64_t v)
{
	struct strbuf t = STRBUF_INIT;
	format_value(&t, s, v);
	sb_addf(sb, "%10s", sb_str(&t));
	sb_release(&t);
}

/* NEW - BASE as a JSON number (exact, whatever its size). */
static void json_delta(struct strbuf *sb, uint64_t base, uint64_t now)
{
	sb_addf(sb, now >= base ? "%llu" : "-%llu", (unsigned long long)distance(now, base));
}

static double delta_pct(uint64_t base, uint64_t now)
{
	if (base == 0)
		return now == 0 ? 0.0 : 1e9;
	double d = (double)distance(now, base);
	return 100.0 * (now >= base ? d : -d) / (double)base;
}

/* "innermost <- caller <- ..." for a chain row, up to main. */
static void chain_label(struct strbuf *sb, struct profile *p, const struct pchain *c)
{
	for (size_t k = 0; k < c->nframes; k++) {
		if (k)
			sb_adds(sb, " <- ");
		frame_name(p, c->frames[k], sb);
		if (c->frames[k]->file) {
			sb_addch(sb, ' ');
			frame_where(c->frames[k], sb);
		}
		if (c->frames[k]->function && strcmp(c->frames[k]->function, "main") == 0)
			break;
	}
}

/* A side's name and process: its pid, or a merged dump's (up to 8). */
static void side_name(struct strbuf *sb, const struct dump *d)
{
	size_t n = dump_nimages(d);
	sb_addf(sb, "%s (", d->path);
	if (d->nsources)
		sb_addf(sb, "merged: %zu dump%s, ", n, n == 1 ? "" : "s");
	sb_adds(sb, n == 1 ? "pid" : "pids");
	for (size_t i = 0; i < n && i < 8; i++)
		sb_addf(sb, " %llu", (unsigned long long)dump_image(d, i).pid);
	sb_adds(sb, n > 8 ? " ...)" : ")");
}

/* A sampled dump's values are estimates: said beside its name, with the sampling period. */
static void sampled_note(struct strbuf *sb, const struct dump *d)
{
	uint64_t period = dump_sampled(d);
	if (!period)
		return;
	sb_adds(sb, ", sampled (one allocation per ");
	format_value(sb, S_ALLOC_SPACE, period);
	sb_adds(sb, " on average): its values are estimates");
}

int cmd_diff(struct options *o)
{
	need_args(o, 2, 2, "BASE and NEW dumps");
	struct profile p;
	profile_load_diff(&p, o, o->args[0], o->args[1]);
	const struct dump *base = p.dumps[0], *now = p.dumps[1];
	enum sample_index s = o->sample;

	/* per function: flat and cum of each side */
	struct node_table t;
	memset(&t, 0, sizeof(t));
	struct drow *fr = NULL;
	size_t fr_alloc = 0;
	for (size_t i = 0; i < p.nchains; i++) {
		const struct pchain *c = &p.chains[i];
		if (c->hidden)
			continue;
		for (size_t k = 0; k < c->nframes; k++) {
			const char *key = node_key(&p, c->frames[k], o->lines);
			size_t x = nodes_get(&t, key);
			if (x >= fr_alloc) {
				size_t old = fr_alloc;
				ALLOC_GROW(fr, x + 1, fr_alloc);
				memset(fr + old, 0, (fr_alloc - old) * sizeof(*fr));
			}
			fr[x].name = key;
			if (k == 0) {
				fr[x].base = sat_add(fr[x].base, c->base[s]);
				fr[x].now = sat_add(fr[x].now, c->v[s]);
			}
			if (t.v[x].last_chain != i) {
				t.v[x].last_chain = i;
				fr[x].base_cum = sat_add(fr[x].base_cum, c->base[s]);
				fr[x].now_cum = sat_add(fr[x].now_cum, c->v[s]);
			}
		}
	}
	/* only the functions that changed, as only the chains that did */
	size_t nf = 0;
	for (size_t i = 0; i < t.n; i++)
		if (fr[i].base != fr[i].now || fr[i].base_cum != fr[i].now_cum)
			fr[nf++] = fr[i];
	if (nf)
		qsort(fr, nf, sizeof(*fr), cmp_rows);
	/* Per call path: the chains one build keeps apart because it inlined a frame on one and
	 * called it on the other (profile.c, chain_match) are one row, so that the paths of two
	 * builds compare alike whichever side has them apart. */
	struct drow *cr = xcalloc(p.nchains + 1, sizeof(*cr));
	for (size_t i = 0; i < p.nchains; i++) {
		const struct pchain *c = &p.chains[i];
		if (c->hidden)
			continue;
		struct drow *r = &cr[c->path];
		r->c = &p.chains[c->path];
		r->base = sat_add(r->base, c->base[s]);
		r->now = sat_add(r->now, c->v[s]);
	}
	size_t nc = 0;
	for (size_t i = 0; i < p.nchains; i++)
		if (cr[i].c && cr[i].base != cr[i].now)
			cr[nc++] = cr[i];
	if (nc)
		qsort(cr, nc, sizeof(*cr), cmp_rows);
	/* rows of each table: -n N, all with -n 0; without -n, 20 in text and all in JSON */
	size_t limit = o->nodecount > 0               ? (size_t)o->nodecount
	               : o->nodecount == 0 || o->json ? SIZE_MAX
	                                              : 20;
	uint64_t bt = p.base_shown[s], nt = p.shown[s];
	double pct = delta_pct(bt, nt);

	struct strbuf sb = STRBUF_INIT;
	if (o->json) {
		sb_addf(
		    &sb,
		    "{\"sample\":\"%s\",\"base_sampled\":%s,\"new_sampled\":%s,\"base_total\":%llu,"
		    "\"new_total\":%llu,\"delta\":",
		    sample_names[s], dump_sampled(base) ? "true" : "false",
		    dump_sampled(now) ? "true" : "false", (unsigned long long)bt,
		    (unsigned long long)nt);
		json_delta(&sb, bt, nt);
		/* from nothing to something is no percentage: null, where 0 read as "no change"
		 * to a script gating on it */
		if (bt || !nt)
			sb_addf(&sb, ",\"delta_pct\":%.4f,\"functions\":[", bt ? pct : 0.0);
		else
			sb_adds(&sb, ",\"delta_pct\":null,\"functions\":[");
		for (size_t i = 0; i < nf && i < limit; i++) {
			const struct drow *r = &fr[i];
			sb_adds(&sb, i ? ",{\"name\":" : "{\"name\":");
			sb_json_str(&sb, r->name);
			sb_addf(
			    &sb,
			    ",\"base_flat\":%llu,\"new_flat\":%llu,\"base_cum\":%llu,\"new_cum\":"
			    "%llu}",
			    (unsigned long long)r->base, (unsigned long long)r->now,
			    (unsigned long long)r->base_cum, (unsigned long long)r->now_cum);
		}
		sb_adds(&sb, "],\"chains\":[");
		for (size_t i = 0; i < nc && i < limit; i++) {
			sb_addf(&sb, "%s{\"base\":%llu,\"new\":%llu,\"frames\":", i ? "," : "",
			        (unsigned long long)cr[i].base, (unsigned long long)cr[i].now);
			json_frames(&sb, &p, cr[i].c);
			sb_addch(&sb, '}');
		}
		sb_adds(&sb, "]}\n");
	} else {
		sb_adds(&sb, "Base: ");
		side_name(&sb, base);
		sampled_note(&sb, base);
		sb_adds(&sb, "\nNew:  ");
		side_name(&sb, now);
		sampled_note(&sb, now);
		sb_addch(&sb, '\n');
		sb_addf(&sb, "Total %s: ", sample_names[s]);
		format_value(&sb, s, bt);
		sb_adds(&sb, " -> ");
		format_value(&sb, s, nt);
		sb_adds(&sb, " (");
		add_delta(&sb, s, bt, nt);
		if (bt)
			sb_addf(&sb, ", %+.2f%%", pct);
		sb_adds(
		    &sb,
		    ")\n\nPer function (flat = allocator calls made by the function itself):\n");
		sb_adds(&sb,
		        "   flat base   flat new  flat delta    cum base    cum new   cum delta  "
		        "function\n");
		size_t shown = nf < limit ? nf : limit;
		for (size_t i = 0; i < shown; i++) {
			const struct drow *r = &fr[i];
			value(&sb, s, r->base);
			sb_addch(&sb, ' ');
			value(&sb, s, r->now);
			sb_addch(&sb, ' ');
			signed_value(&sb, s, r->base, r->now);
			sb_addch(&sb, ' ');
			value(&sb, s, r->base_cum);
			sb_addch(&sb, ' ');
			value(&sb, s, r->now_cum);
			sb_addch(&sb, ' ');
			signed_value(&sb, s, r->base_cum, r->now_cum);
			sb_addf(&sb, "  %s\n", r->name);
		}
		if (!shown)
			sb_adds(&sb, "  (no change)\n");
		else if (nf > shown)
			sb_addf(&sb, "  (%zu more changed functions; --nodecount 0 shows all)\n",
			        nf - shown);
		sb_adds(&sb, "\nPer chain (innermost <- callers):\n");
		sb_adds(&sb, "      base        new       delta  chain\n");
		for (size_t i = 0; i < nc && i < limit; i++) {
			value(&sb, s, cr[i].base);
			sb_addch(&sb, ' ');
			value(&sb, s, cr[i].now);
			sb_addch(&sb, ' ');
			signed_value(&sb, s, cr[i].base, cr[i].now);
			sb_adds(&sb, "  ");
			chain_label(&sb, &p, cr[i].c);
			sb_addch(&sb, '\n');
		}
		if (!nc)
			sb_adds(&sb, "  (no change)\n");
		else if (nc > limit)
			sb_addf(&sb, "  (%zu more changed chains; --nodecount 0 shows all)\n",
			        nc - limit);
	}
	emit(o, &sb);
	sb_release(&sb);
	int rc = 0;
	if (o->fail_if_increase >= 0 && nt > bt && (bt == 0 || pct > o->fail_if_increase)) {
		fflush(stdout);
		fprintf(
		    stderr, "mapprof: %s grew by %s%.2f%% (%llu -> %llu), more than %.2f%%%s\n",
		    sample_names[s], bt ? "" : "more than ", bt ? pct : 100.0,
		    (unsigned long long)bt, (unsigned long long)nt, o->fail_if_increase,
		    dump_sampled(base) || dump_sampled(now)
		        ? " (estimates from a sampled dump: a sampled run's totals vary from run "
		          "to run)"
		        : "");
		rc = 3;
	}
	free(cr);
	free(fr);
	nodes_free(&t);
	profile_free(&p);
	return rc;
}
