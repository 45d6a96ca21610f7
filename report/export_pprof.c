/* export_pprof.c: `mapprof export --format pprof -o FILE.pb.gz`: the profile as a gzip'd
 * profile.proto (github.com/google/pprof/proto/profile.proto) with Go heap profiles' four sample
 * types, Mappings with build-ids, one Location per return address (its Lines innermost first,
 * inlined frames included; an address without a symbol gets a Function named module+offset) and
 * Functions. The protobuf encoding is written by hand (a few varints and length-delimited
 * fields); it never emits a field profile.proto does not define. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "usage.h"
#include "views.h"

static void varint(struct strbuf *sb, uint64_t v)
{
	while (v >= 0x80) {
		sb_addch(sb, (int)(v & 0x7f) | 0x80);
		v >>= 7;
	}
	sb_addch(sb, (int)v);
}

static void field_varint(struct strbuf *sb, unsigned field, uint64_t v)
{
	varint(sb, (uint64_t)field << 3 | 0);
	varint(sb, v);
}

static void field_bytes(struct strbuf *sb, unsigned field, const void *p, size_t n)
{
	varint(sb, (uint64_t)field << 3 | 2);
	varint(sb, n);
	sb_add(sb, p, n);
}

/* The string table: index 0 is "". Strings are interned pointers or built ones. */
struct strtab {
	struct strpool pool;
	struct node_table ix; /* interned pointer -> index (in flat[0]) */
	const char **v;
	size_t n, alloc;
};

static uint64_t str_index(struct strtab *t, const char *s)
{
	const char *k = strpool_intern(&t->pool, s ? s : "");
	size_t i = nodes_find(&t->ix, k);
	if (i != SIZE_MAX)
		return t->ix.v[i].flat[0];
	i = nodes_get(&t->ix, k);
	t->ix.v[i].flat[0] = t->n;
	ALLOC_GROW(t->v, t->n + 1, t->alloc);
	t->v[t->n] = k;
	return t->n++;
}

/* Appends a string that no other field names (an address's own name), without looking for it
 * first: S must live as long as the table (the profile's interned names do). */
static uint64_t str_once(struct strtab *t, const char *s)
{
	ALLOC_GROW(t->v, t->n + 1, t->alloc);
	t->v[t->n] = s;
	return t->n++;
}

/* A Function record: id, name and system name, file. */
static void add_function(struct strbuf *funcs, struct strbuf *tmp, uint64_t id, uint64_t name,
                         uint64_t file)
{
	sb_reset(tmp);
	field_varint(tmp, 1, id);
	field_varint(tmp, 2, name);
	field_varint(tmp, 3, name);
	field_varint(tmp, 4, file);
	field_bytes(funcs, 5, tmp->buf, tmp->len);
}

/* A Line record of a Location: function id and line number (0: unknown). */
static void add_line(struct strbuf *loc, struct strbuf *tmp, uint64_t function, int line)
{
	sb_reset(tmp);
	field_varint(tmp, 1, function);
	field_varint(tmp, 2, (uint64_t)(line > 0 ? line : 0));
	field_bytes(loc, 4, tmp->buf, tmp->len);
}

static void value_type(struct strbuf *sb, unsigned field, struct strtab *st, const char *type,
                       const char *unit)
{
	struct strbuf m = STRBUF_INIT;
	field_varint(&m, 1, str_index(st, type));
	field_varint(&m, 2, str_index(st, unit));
	field_bytes(sb, field, m.buf, m.len);
	sb_release(&m);
}

struct loc {
	int module;
	uint64_t offset;
	uint64_t id;
	const struct pframe *frame; /* its frame that is not inlined */
};

static void gzip_write(const struct strbuf *raw, const char *path)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		die("zlib: deflateInit2 failed");
	struct strbuf out = STRBUF_INIT;
	sb_grow(&out, deflateBound(&z, raw->len) + 64);
	z.next_in = (Bytef *)(raw->buf ? raw->buf : "");
	z.avail_in = (uInt)raw->len;
	z.next_out = (Bytef *)out.buf;
	z.avail_out = (uInt)(out.alloc - 1);
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("zlib: deflate failed");
	out.len = z.total_out;
	deflateEnd(&z);
	struct options o = {.output = path};
	emit(&o, &out);
	sb_release(&out);
}

void export_pprof(struct profile *p, const struct options *o)
{
	struct strtab st;
	memset(&st, 0, sizeof(st));
	str_index(&st, "");
	struct strbuf pb = STRBUF_INIT;
	/* Without frees there are no inuse values: pprof then offers only the alloc ones. */
	int nsamples = profile_nsamples(p);
	for (int s = 0; s < nsamples; s++)
		value_type(&pb, 1, &st, sample_names[s],
		           s == S_ALLOC_SPACE || s == S_INUSE_SPACE ? "bytes" : "count");

	/* locations: one per distinct (module, offset), ids from 1 */
	struct loc *locs = NULL;
	size_t nlocs = 0, locs_alloc = 0;
	/* an address's frames are shared by every chain through it, and its one frame that is
	 * not inlined stands for it: location ids by frame id (0: none yet) */
	uint64_t *loc_of = xcalloc(p->nframes + 1, sizeof(*loc_of));
	struct strbuf key = STRBUF_INIT;
	struct strbuf m = STRBUF_INIT;
	uint64_t *ids = NULL;
	size_t ids_alloc = 0;
	for (size_t i = 0; i < p->nchains; i++) {
		const struct pchain *c = &p->chains[i];
		if (c->hidden)
			continue;
		size_t nids = 0;
		for (size_t k = 0; k < c->nframes; k++) {
			const struct pframe *f = c->frames[k];
			if (f->inlined)
				continue; /* one location per address: its last (caller) frame */
			if (!loc_of[f->id]) {
				ALLOC_GROW(locs, nlocs + 1, locs_alloc);
				locs[nlocs] = (struct loc){f->module, f->offset, nlocs + 1, f};
				loc_of[f->id] = ++nlocs;
			}
			ALLOC_GROW(ids, nids + 1, ids_alloc);
			ids[nids++] = loc_of[f->id];
		}
		sb_reset(&m);
		sb_reset(&key);
		for (size_t k = 0; k < nids; k++)
			varint(&key, ids[k]);
		field_bytes(&m, 1, key.buf, key.len);
		sb_reset(&key);
		for (int s = 0; s < nsamples; s++)
			varint(&key, c->v[s]);
		field_bytes(&m, 2, key.buf, key.len);
		field_bytes(&pb, 2, m.buf, m.len);
	}
	/* mappings: one per module, ids from 1 */
	for (size_t i = 0; i < p->sym.nmods; i++) {
		const struct sym_module *sm = &p->sym.mods[i];
		enum sym_state state = sym_module_state(&p->sym, (int)i);
		const struct mp_range *r = sm->ranges;
		uint64_t lo = 0, hi = 0, foff = 0;
		for (uint32_t k = 0; k < sm->nranges; k++) {
			if (!k || r[k].start < lo) {
				lo = r[k].start;
				foff = r[k].file_offset;
			}
			if (r[k].end > hi)
				hi = r[k].end;
		}
		sb_reset(&m);
		field_varint(&m, 1, i + 1);
		field_varint(&m, 2, lo);
		field_varint(&m, 3, hi);
		field_varint(&m, 4, foff);
		field_varint(&m, 5, str_index(&st, sm->path));
		sb_reset(&key);
		for (size_t k = 0; k < sm->buildid_len; k++)
			sb_addf(&key, "%02x", sm->buildid[k]);
		field_varint(&m, 6, str_index(&st, sb_str(&key)));
		bool syms = state == SYM_DWARF || state == SYM_SYMTAB;
		field_varint(&m, 7, syms);
		field_varint(&m, 8, state == SYM_DWARF);
		field_varint(&m, 9, state == SYM_DWARF);
		field_varint(&m, 10, state == SYM_DWARF);
		field_bytes(&pb, 3, m.buf, m.len);
	}
	/* locations with their lines; functions keyed by (name, file) */
	struct node_table fix;
	memset(&fix, 0, sizeof(fix));
	struct strbuf funcs = STRBUF_INIT;
	struct strbuf line = STRBUF_INIT;
	uint64_t nfuncs = 0;
	for (size_t i = 0; i < nlocs; i++) {
		const struct loc *l = &locs[i];
		const struct sym_frame *sf;
		size_t ns = sym_lookup(&p->sym, l->module, l->offset, &sf);
		sb_reset(&m);
		field_varint(&m, 1, l->id);
		if (l->module >= 0) {
			field_varint(&m, 2, (uint64_t)l->module + 1);
			field_varint(&m, 3, l->offset + p->sym.mods[l->module].load_bias);
		} else {
			field_varint(&m, 3, l->offset);
		}
		/* An address without a symbol (a stripped library's own code) gets one Line of a
		 * Function of its own, named as the views name it, "module+0xOFF": without a Line
		 * pprof makes one node of every such address in a module ("[libpython3.11.so]"),
		 * and its top would no longer give mapprof top's rows. The name is the address's
		 * alone, so it is neither looked up nor indexed (a profile of a million such
		 * addresses must not pay two hash tables for them). */
		if (!ns || !sf[0].function) {
			add_function(&funcs, &line, ++nfuncs, str_once(&st, l->frame->name), 0);
			add_line(&m, &line, nfuncs, 0);
		}
		for (size_t k = 0; k < ns && sf[0].function; k++) {
			const char *fn = sf[k].function ? sf[k].function : "??";
			sb_reset(&key);
			sb_addf(&key, "%s\n%s", fn, sf[k].file ? sf[k].file : "");
			const char *kk = strpool_intern(&st.pool, sb_str(&key));
			size_t x = nodes_find(&fix, kk);
			if (x == SIZE_MAX) {
				x = nodes_get(&fix, kk);
				fix.v[x].flat[0] = ++nfuncs;
				add_function(&funcs, &line, nfuncs, str_index(&st, fn),
				             str_index(&st, sf[k].file));
			}
			add_line(&m, &line, fix.v[x].flat[0], sf[k].line);
		}
		field_bytes(&pb, 4, m.buf, m.len);
	}
	sb_add(&pb, funcs.buf ? funcs.buf : "", funcs.len);
	/* time, duration, period type, default sample type come before the string table is
	 * complete; the string table goes last (fields may appear in any order) */
	const struct dump *d = p->dumps[0];
	field_varint(&pb, 9, d->info.start_ns);
	if (d->info.end_ns > d->info.start_ns)
		field_varint(&pb, 10, d->info.end_ns - d->info.start_ns);
	value_type(&pb, 11, &st, "space", "bytes");
	field_varint(&pb, 12, d->info.sample_period ? d->info.sample_period : 1);
	field_varint(&pb, 14, str_index(&st, sample_names[o->sample]));
	for (size_t i = 0; i < st.n; i++)
		field_bytes(&pb, 6, st.v[i], strlen(st.v[i]));
	refuse_terminal(o, "export --format pprof writes gzip'd protobuf", "-o FILE.pb.gz");
	gzip_write(&pb, o->output);
	sb_release(&pb);
	sb_release(&m);
	sb_release(&key);
	sb_release(&funcs);
	sb_release(&line);
	free(locs);
	free(ids);
	free(loc_of);
	nodes_free(&fix);
	nodes_free(&st.ix);
	free(st.v);
	strpool_free(&st.pool);
}
