/* nodes.c: helpers every view shares (see views.h): per-function tables, output, JSON frames,
 * the header line. Nothing here reads a dump or looks up a symbol. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "usage.h"
#include "views.h"

const char *node_key(struct profile *p, const struct pframe *f, bool lines)
{
	if (!lines || !f->file)
		return f->name;
	/* "name file:line", made once per frame */
	if (f->id >= p->nline_keys) {
		p->line_keys = xreallocarray(p->line_keys, p->nframes + 1, sizeof(*p->line_keys));
		memset(p->line_keys + p->nline_keys, 0,
		       (p->nframes + 1 - p->nline_keys) * sizeof(*p->line_keys));
		p->nline_keys = p->nframes + 1;
	}
	if (!p->line_keys[f->id]) {
		struct strbuf sb = STRBUF_INIT;
		sb_adds(&sb, f->name);
		sb_addch(&sb, ' ');
		frame_where(f, &sb);
		p->line_keys[f->id] = strpool_intern(&p->sym.pool, sb_str(&sb));
		sb_release(&sb);
	}
	return p->line_keys[f->id];
}

static void index_grow(struct node_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	while (cap < (t->n + 1) * 2)
		cap *= 2; /* after nodes_sort_flat the table is rebuilt from empty */
	size_t *ix = xmalloc(cap * sizeof(size_t));
	memset(ix, 0xff, cap * sizeof(size_t));
	for (size_t i = 0; i < t->n; i++) {
		size_t j = mp_hash_mix(0, (uintptr_t)t->v[i].key) & (cap - 1);
		while (ix[j] != SIZE_MAX)
			j = (j + 1) & (cap - 1);
		ix[j] = i;
	}
	free(t->index);
	t->index = ix;
	t->cap = cap;
}

size_t nodes_find(const struct node_table *t, const char *key)
{
	if (!t->cap)
		return SIZE_MAX;
	size_t j = mp_hash_mix(0, (uintptr_t)key) & (t->cap - 1);
	while (t->index[j] != SIZE_MAX) {
		if (t->v[t->index[j]].key == key)
			return t->index[j];
		j = (j + 1) & (t->cap - 1);
	}
	return SIZE_MAX;
}

size_t nodes_get(struct node_table *t, const char *key)
{
	size_t i = nodes_find(t, key);
	if (i != SIZE_MAX)
		return i;
	if ((t->n + 1) * 2 > t->cap)
		index_grow(t);
	ALLOC_GROW(t->v, t->n + 1, t->alloc);
	struct node *nd = &t->v[t->n];
	memset(nd, 0, sizeof(*nd));
	nd->key = key;
	nd->last_chain = SIZE_MAX;
	size_t j = mp_hash_mix(0, (uintptr_t)key) & (t->cap - 1);
	while (t->index[j] != SIZE_MAX)
		j = (j + 1) & (t->cap - 1);
	t->index[j] = t->n;
	return t->n++;
}

void nodes_build(struct node_table *t, struct profile *p, bool lines)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < p->nchains; i++) {
		const struct pchain *c = &p->chains[i];
		if (c->hidden)
			continue;
		for (size_t k = 0; k < c->nframes; k++) {
			size_t x = nodes_get(t, node_key(p, c->frames[k], lines));
			struct node *nd = &t->v[x];
			if (!nd->frame) {
				nd->frame = c->frames[k];
				nd->name = c->frames[k]->name;
			}
			if (k == 0)
				for (int s = 0; s < NSAMPLES; s++)
					nd->flat[s] += c->v[s];
			if (nd->last_chain != i) {
				nd->last_chain = i;
				for (int s = 0; s < NSAMPLES; s++)
					nd->cum[s] += c->v[s];
			}
		}
	}
}

static int cmp_flat(const void *a, const void *b, void *arg)
{
	const struct node *x = a, *y = b;
	enum sample_index s = *(const enum sample_index *)arg;
	if (x->flat[s] != y->flat[s])
		return x->flat[s] > y->flat[s] ? -1 : 1;
	if (x->cum[s] != y->cum[s])
		return x->cum[s] > y->cum[s] ? -1 : 1;
	return strcmp(x->key, y->key);
}

void nodes_sort_flat(struct node_table *t, enum sample_index s)
{
	if (t->n > 1)
		qsort_r(t->v, t->n, sizeof(*t->v), cmp_flat, &s);
	/* the index is stale after sorting; rebuild it */
	free(t->index);
	t->index = NULL;
	t->cap = 0;
	index_grow(t);
}

void nodes_free(struct node_table *t)
{
	free(t->v);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

void out_open(struct output *out, const struct options *o)
{
	memset(out, 0, sizeof(*out));
	if (!o->output || strcmp(o->output, "-") == 0) {
		out->f = stdout;
		out->name = "stdout";
		return;
	}
	out->name = o->output;
	out->f = fopen(o->output, "w");
	if (!out->f)
		die("%s: cannot create: %s", o->output, strerror(errno));
}

void out_flush(struct output *out, struct strbuf *sb, size_t keep)
{
	if (sb->len <= keep)
		return;
	if (sb_write(sb, out->f))
		die("%s: write error: %s", out->name, strerror(errno));
	sb_reset(sb);
}

void out_close(struct output *out, struct strbuf *sb)
{
	out_flush(out, sb, 0);
	if (out->f == stdout) {
		if (fflush(stdout))
			die("stdout: write error: %s", strerror(errno));
	} else if (fclose(out->f)) {
		die("%s: write error: %s", out->name, strerror(errno));
	}
	out->f = NULL;
}

void emit(const struct options *o, const struct strbuf *sb)
{
	struct output out;
	out_open(&out, o);
	if (sb_write(sb, out.f))
		die("%s: write error: %s", out.name, strerror(errno));
	struct strbuf empty = STRBUF_INIT;
	out_close(&out, &empty);
}

void need_args(const struct options *o, int min, int max, const char *what)
{
	if (o->nargs < min)
		die_usage("%s: needs %s", o->cmd, what);
	if (max >= 0 && o->nargs > max)
		die_usage("%s: too many arguments (wants %s)", o->cmd, what);
}

void json_frames(struct strbuf *sb, const struct profile *p, const struct pchain *c)
{
	sb_addch(sb, '[');
	for (size_t k = 0; k < c->nframes; k++) {
		const struct pframe *f = c->frames[k];
		if (k)
			sb_addch(sb, ',');
		sb_adds(sb, "{\"module\":");
		sb_json_str(sb, f->module >= 0 ? p->sym.mods[f->module].path : NULL);
		sb_addf(sb, ",\"offset\":\"0x%llx\",\"function\":", (unsigned long long)f->offset);
		sb_json_str(sb, f->function);
		sb_adds(sb, ",\"file\":");
		sb_json_str(sb, f->file);
		if (f->file)
			sb_addf(sb, ",\"line\":%d", f->line);
		else
			sb_adds(sb, ",\"line\":null");
		sb_addf(sb, ",\"inlined\":%s}", f->inlined ? "true" : "false");
	}
	sb_addch(sb, ']');
}

void json_chain(struct strbuf *sb, const struct profile *p, const struct pchain *c)
{
	sb_addf(sb, "{\"id\":%d,\"truncated\":%s", c->id, c->truncated ? "true" : "false");
	for (int s = 0; s < profile_nsamples(p); s++)
		sb_addf(sb, ",\"%s\":%llu", sample_names[s], (unsigned long long)c->v[s]);
	sb_adds(sb, ",\"sizes\":[");
	for (size_t k = 0; k < c->nclasses; k++) {
		const struct pclass *z = &c->classes[k];
		sb_addf(sb,
		        "%s{\"log2\":%u,\"objects\":%llu,\"bytes\":%llu,\"min\":%llu,\"max\":%llu}",
		        k ? "," : "", z->log2, (unsigned long long)z->objects,
		        (unsigned long long)z->bytes, (unsigned long long)z->min,
		        (unsigned long long)z->max);
	}
	sb_adds(sb, "],\"frames\":");
	json_frames(sb, p, c);
	sb_addch(sb, '}');
}

void text_header(struct strbuf *sb, const struct profile *p, const struct options *o)
{
	if (p->ndumps == 1) {
		const struct dump *d = p->dumps[0];
		sb_addf(sb, "Exe: %s (pid %llu)%s\n", d->exe, (unsigned long long)d->info.pid,
		        d->info.sample_period ? ", sampled (values scaled)" : "");
	} else {
		sb_addf(sb, "Exe: %s and %zu more dumps (pids", p->dumps[0]->exe, p->ndumps - 1);
		for (size_t i = 0; i < p->ndumps && i < 8; i++)
			sb_addf(sb, " %llu", (unsigned long long)p->dumps[i]->info.pid);
		sb_adds(sb, p->ndumps > 8 ? " ...)\n" : ")\n");
	}
	sb_adds(sb, "Totals: ");
	for (int s = 0; s < profile_nsamples(p); s++) {
		sb_addf(sb, "%s%s ", s ? ", " : "", sample_names[s]);
		format_value(sb, (enum sample_index)s, p->total[s]);
	}
	if (!p->frees_tracked)
		sb_adds(sb, " (frees not tracked: no inuse values)");
	sb_addch(sb, '\n');
	uint64_t lost = 0;
	for (size_t i = 0; i < p->ndumps; i++)
		lost += p->dumps[i]->info.not_recorded;
	if (lost)
		sb_addf(
		    sb,
		    "Not recorded: %llu allocator calls (the profiler's own bookkeeping ran out of "
		    "memory); the values below miss them\n",
		    (unsigned long long)lost);
	if (o->focus || o->ignore) {
		sb_adds(sb, "Active filters:");
		if (o->focus)
			sb_addf(sb, " focus=%s", o->focus);
		if (o->ignore)
			sb_addf(sb, " ignore=%s", o->ignore);
		sb_addch(sb, '\n');
	}
}

void load_profile(struct profile *p, struct options *o, int skip)
{
	if (o->nargs <= skip)
		die_usage("%s: needs at least one DUMP file", o->cmd);
	profile_load(p, o, o->args + skip, o->nargs - skip);
}
