/* profile.c: builds the symbolized profile (see profile.h): each dump chain's addresses become
 * symbolic frames (inlines expanded), chains with the same symbols merge, sampled counts are
 * scaled. It never prints a view and never reads a dump's bytes after loading. */
#include <math.h>
#include <string.h>

#include "profile.h"
#include "usage.h"

bool frame_same(const struct pframe *a, const struct pframe *b)
{
	if (a->function || b->function)
		return a->function == b->function && a->file == b->file && a->line == b->line &&
		       a->inlined == b->inlined;
	return a->module == b->module && a->offset == b->offset;
}

static uint64_t frame_hash(uint64_t h, const struct pframe *f)
{
	if (f->function) {
		h = mp_hash_mix(h, (uintptr_t)f->function);
		h = mp_hash_mix(h, (uintptr_t)f->file);
		return mp_hash_mix(h, (uint64_t)f->line * 2 + f->inlined);
	}
	h = mp_hash_mix(h, (uint64_t)(int64_t)f->module);
	return mp_hash_mix(h, f->offset);
}

static bool chain_same(const struct pchain *a, const struct pchain *b)
{
	if (a->hash != b->hash || a->nframes != b->nframes || a->truncated != b->truncated)
		return false;
	for (size_t i = 0; i < a->nframes; i++)
		if (!frame_same(&a->frames[i], &b->frames[i]))
			return false;
	return true;
}

static void index_grow(struct profile *p)
{
	size_t cap = p->index_cap ? p->index_cap * 2 : 1024;
	size_t *ix = xmalloc(cap * sizeof(size_t));
	memset(ix, 0xff, cap * sizeof(size_t));
	for (size_t i = 0; i < p->nchains; i++) {
		size_t j = p->chains[i].hash & (cap - 1);
		while (ix[j] != SIZE_MAX)
			j = (j + 1) & (cap - 1);
		ix[j] = i;
	}
	free(p->index);
	p->index = ix;
	p->index_cap = cap;
}

static void merge_classes(struct pchain *c, const struct pclass *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t j = 0;
		while (j < c->nclasses && c->classes[j].log2 < k[i].log2)
			j++;
		if (j < c->nclasses && c->classes[j].log2 == k[i].log2) {
			struct pclass *t = &c->classes[j];
			t->objects += k[i].objects;
			t->bytes += k[i].bytes;
			t->min = t->min < k[i].min ? t->min : k[i].min;
			t->max = t->max > k[i].max ? t->max : k[i].max;
			continue;
		}
		c->classes = xreallocarray(c->classes, c->nclasses + 1, sizeof(*c->classes));
		memmove(c->classes + j + 1, c->classes + j,
		        (c->nclasses - j) * sizeof(*c->classes));
		c->classes[j] = k[i];
		c->nclasses++;
	}
}

/* Adds a symbolized chain, merging with an identical one. Takes ownership of frames. */
static void add_chain(struct profile *p, struct pframe *frames, size_t nframes, bool truncated,
                      const uint64_t v[NSAMPLES], const struct pclass *classes, size_t nclasses)
{
	struct pchain key = {.frames = frames, .nframes = nframes, .truncated = truncated};
	uint64_t h = truncated ? 0x7472756e63ull : 0;
	for (size_t i = 0; i < nframes; i++)
		h = frame_hash(h, &frames[i]);
	key.hash = h;
	if ((p->nchains + 1) * 2 > p->index_cap)
		index_grow(p);
	size_t j = h & (p->index_cap - 1);
	while (p->index[j] != SIZE_MAX) {
		struct pchain *c = &p->chains[p->index[j]];
		if (chain_same(c, &key)) {
			for (int s = 0; s < NSAMPLES; s++) {
				if (p->loading_base)
					c->base[s] += v[s];
				else
					c->v[s] += v[s];
			}
			if (!p->loading_base)
				merge_classes(c, classes, nclasses);
			free(frames);
			return;
		}
		j = (j + 1) & (p->index_cap - 1);
	}
	ALLOC_GROW(p->chains, p->nchains + 1, p->chains_alloc);
	struct pchain *c = &p->chains[p->nchains];
	*c = key;
	c->id = (int)p->nchains;
	if (p->loading_base) {
		memcpy(c->base, v, sizeof(c->base));
	} else {
		memcpy(c->v, v, sizeof(c->v));
		merge_classes(c, classes, nclasses);
	}
	p->index[j] = p->nchains++;
}

/* Go's and tcmalloc's unbiasing: with Poisson sampling of mean period P bytes, an allocation of
 * size s is sampled with probability 1 - exp(-s/P), so each sample stands for 1/that many. */
static double sample_scale(double mean_size, uint64_t period)
{
	if (!period || mean_size <= 0)
		return 1.0;
	double q = 1.0 - exp(-mean_size / (double)period);
	return q > 0 ? 1.0 / q : 1.0;
}

static uint64_t scaled(uint64_t v, double k)
{
	return k == 1.0 ? v : (uint64_t)llround((double)v * k);
}

void profile_add_dump(struct profile *p, struct dump *d)
{
	p->dumps = xreallocarray(p->dumps, p->ndumps + 1, sizeof(*p->dumps));
	p->dumps[p->ndumps++] = d;
	if (!(d->info.flags & MP_INFO_FREES_TRACKED))
		p->frees_tracked = false;
	int *map = xcalloc(d->nmodules, sizeof(int));
	for (size_t i = 0; i < d->nmodules; i++) {
		const struct dump_module *m = &d->modules[i];
		const char *path = m->path;
		if (!path[0] && (m->m.flags & MP_MODULE_MAIN))
			path = d->exe;
		map[i] =
		    sym_add_module(&p->sym, path, m->buildid, m->m.buildid_len, m->m.load_bias,
		                   m->m.flags & MP_MODULE_MAIN, m->m.flags & MP_MODULE_UNLOADED,
		                   m->m.flags & MP_MODULE_VDSO);
		struct sym_module *sm = &p->sym.mods[map[i]];
		if (!sm->ranges) {
			sm->ranges = m->ranges;
			sm->nranges = m->m.nranges;
		}
	}
	uint64_t period = d->info.sample_period;
	struct pclass *cls = NULL;
	size_t cls_alloc = 0;
	for (size_t i = 0; i < d->nchains; i++) {
		const struct dump_chain *dc = &d->chains[i];
		struct pframe *frames = NULL;
		size_t n = 0, alloc = 0;
		for (uint32_t k = 0; k < dc->c.nframes; k++) {
			const struct mp_frame *f = &dc->frames[k];
			int mod = f->module == MP_MODULE_NONE ? -1 : map[f->module];
			const struct sym_frame *sf;
			size_t ns = sym_lookup(&p->sym, mod, f->offset, &sf);
			ALLOC_GROW(frames, n + ns, alloc);
			for (size_t x = 0; x < ns; x++) {
				struct pframe *pf = &frames[n++];
				pf->module = mod;
				pf->offset = f->offset;
				pf->function = sf[x].function;
				pf->file = sf[x].file;
				pf->line = sf[x].line;
				pf->inlined = sf[x].inlined;
			}
		}
		uint64_t v[NSAMPLES] = {dc->c.alloc_objects, dc->c.alloc_space, dc->c.inuse_objects,
		                        dc->c.inuse_space};
		ALLOC_GROW(cls, (size_t)dc->c.nclasses + 1, cls_alloc);
		for (uint32_t k = 0; k < dc->c.nclasses; k++) {
			const struct mp_size_class *mc = &dc->classes[k];
			cls[k] = (struct pclass){mc->log2, mc->objects, mc->bytes, mc->min_size,
			                         mc->max_size};
		}
		if (period) {
			/* Scale per size class by its mean size, then the in-use part by its own.
			 */
			uint64_t o = 0, b = 0;
			for (uint32_t k = 0; k < dc->c.nclasses; k++) {
				double sc = sample_scale(
				    (double)cls[k].bytes / (double)cls[k].objects, period);
				cls[k].objects = scaled(cls[k].objects, sc);
				cls[k].bytes = scaled(cls[k].bytes, sc);
				o += cls[k].objects;
				b += cls[k].bytes;
			}
			if (dc->c.nclasses) {
				v[S_ALLOC_OBJECTS] = o;
				v[S_ALLOC_SPACE] = b;
			}
			if (v[S_INUSE_OBJECTS]) {
				double sc = sample_scale(
				    (double)v[S_INUSE_SPACE] / (double)v[S_INUSE_OBJECTS], period);
				v[S_INUSE_OBJECTS] = scaled(v[S_INUSE_OBJECTS], sc);
				v[S_INUSE_SPACE] = scaled(v[S_INUSE_SPACE], sc);
			}
		}
		for (int s = 0; s < NSAMPLES; s++) {
			if (p->loading_base)
				p->base_total[s] += v[s];
			else
				p->total[s] += v[s];
		}
		add_chain(p, frames, n, dc->c.flags & MP_CHAIN_TRUNCATED, v, cls, dc->c.nclasses);
	}
	free(cls);
	free(map);
}

bool frame_matches(const struct profile *p, const struct pframe *f, const regex_t *re)
{
	struct strbuf sb = STRBUF_INIT;
	frame_full_name(p, f, &sb);
	bool m = regexec(re, sb_str(&sb), 0, NULL, 0) == 0;
	if (!m && f->function && !p->full_names) {
		sb_reset(&sb);
		frame_name(p, f, &sb);
		m = regexec(re, sb_str(&sb), 0, NULL, 0) == 0;
	}
	if (!m && f->file) {
		/* file:line matches too, so --focus 'foo\.c:12' works */
		sb_reset(&sb);
		frame_where(f, &sb);
		m = regexec(re, sb_str(&sb), 0, NULL, 0) == 0;
	}
	sb_release(&sb);
	return m;
}

static bool chain_matches(const struct profile *p, const struct pchain *c, const regex_t *re)
{
	for (size_t i = 0; i < c->nframes; i++)
		if (frame_matches(p, &c->frames[i], re))
			return true;
	return false;
}

void profile_filter(struct profile *p, const struct options *o)
{
	memset(p->shown, 0, sizeof(p->shown));
	memset(p->base_shown, 0, sizeof(p->base_shown));
	for (size_t i = 0; i < p->nchains; i++) {
		struct pchain *c = &p->chains[i];
		c->hidden = (o->focus && !chain_matches(p, c, &o->focus_re)) ||
		            (o->ignore && chain_matches(p, c, &o->ignore_re));
		if (!c->hidden) {
			for (int s = 0; s < NSAMPLES; s++) {
				p->shown[s] += c->v[s];
				p->base_shown[s] += c->base[s];
			}
		}
	}
}

static void profile_init(struct profile *p, const struct options *o)
{
	memset(p, 0, sizeof(*p));
	p->frees_tracked = true;
	p->full_names = o->full_names;
	p->sym.quiet = o->quiet;
}

void profile_load_diff(struct profile *p, const struct options *o, const char *base,
                       const char *now)
{
	profile_init(p, o);
	struct dump *b = dump_load(base);
	struct dump *n = dump_load(now);
	p->loading_base = true;
	profile_add_dump(p, b);
	p->loading_base = false;
	profile_add_dump(p, n);
	profile_filter(p, o);
}

void profile_load(struct profile *p, const struct options *o, char **paths, int npaths)
{
	profile_init(p, o);
	/* Load (and validate) every dump before symbolizing any, so bad input fails fast. */
	struct dump **ds = xcalloc((size_t)npaths + 1, sizeof(*ds));
	for (int i = 0; i < npaths; i++)
		ds[i] = dump_load(paths[i]);
	for (int i = 0; i < npaths; i++)
		profile_add_dump(p, ds[i]);
	free(ds);
	profile_filter(p, o);
}

void profile_free(struct profile *p)
{
	for (size_t i = 0; i < p->nchains; i++) {
		free(p->chains[i].frames);
		free(p->chains[i].classes);
	}
	free(p->chains);
	free(p->index);
	for (size_t i = 0; i < p->ndumps; i++)
		dump_free(p->dumps[i]);
	free(p->dumps);
	sym_free(&p->sym);
}

const char *module_base(const struct profile *p, int module)
{
	if (module < 0 || (size_t)module >= p->sym.nmods)
		return "?";
	const char *path = p->sym.mods[module].path;
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* pprof's short C++ names: template arguments, parameter lists, const qualifiers and return
 * types dropped ("std::_Hashtable<...>::_M_rehash(unsigned long, ...)" becomes
 * "std::_Hashtable::_M_rehash"); "(anonymous namespace)", "operator new" and lambdas' braces kept.
 * C names pass through unchanged. */
static void simplify_name(const char *in, struct strbuf *sb)
{
	size_t start = sb->len;
	int angle = 0, brace = 0;
	for (const char *c = in; *c; c++) {
		if (brace) {
			brace += *c == '{' ? 1 : *c == '}' ? -1 : 0;
			sb_addch(sb, *c);
			continue;
		}
		if (!angle && strncmp(c, "operator", 8) == 0 &&
		    (c == in || c[-1] == ':' || c[-1] == ' ')) {
			/* copy the operator's name up to its parameter list */
			const char *q = c + 8;
			if (q[0] == '(' && q[1] == ')')
				q += 2;
			while (*q && *q != '(')
				q++;
			sb_add(sb, c, (size_t)(q - c));
			c = q - 1;
			continue;
		}
		if (*c == '<') {
			angle++;
		} else if (*c == '>' && angle) {
			angle--;
		} else if (angle) {
			continue;
		} else if (*c == '{') {
			brace = 1;
			sb_addch(sb, *c);
		} else if (*c == '(') {
			if (strncmp(c, "(anonymous namespace)", 21) == 0) {
				sb_adds(sb, "(anonymous namespace)");
				c += 20;
				continue;
			}
			break; /* the parameter list: it and any qualifiers after it are dropped */
		} else if (*c == ' ') {
			/* a space outside brackets ends a return type: keep what follows */
			sb->len = start;
			sb->buf[start] = '\0';
		} else {
			sb_addch(sb, *c);
		}
	}
	if (sb->len == start)
		sb_adds(sb, in); /* nothing left: show it whole */
}

void frame_full_name(const struct profile *p, const struct pframe *f, struct strbuf *sb)
{
	if (f->function)
		sb_adds(sb, f->function);
	else if (f->module < 0)
		sb_addf(sb, "0x%llx", (unsigned long long)f->offset);
	else
		sb_addf(sb, "%s+0x%llx", module_base(p, f->module), (unsigned long long)f->offset);
}

void frame_name(const struct profile *p, const struct pframe *f, struct strbuf *sb)
{
	if (f->function && !p->full_names && strpbrk(f->function, "<( "))
		simplify_name(f->function, sb);
	else if (f->function)
		sb_adds(sb, f->function);
	else if (f->module < 0)
		sb_addf(sb, "0x%llx", (unsigned long long)f->offset);
	else
		sb_addf(sb, "%s+0x%llx", module_base(p, f->module), (unsigned long long)f->offset);
}

void frame_where(const struct pframe *f, struct strbuf *sb)
{
	if (f->file)
		sb_addf(sb, "%s:%d", f->file, f->line);
}

void format_value(struct strbuf *sb, enum sample_index s, uint64_t v)
{
	if (s == S_ALLOC_OBJECTS || s == S_INUSE_OBJECTS) {
		sb_addf(sb, "%llu", (unsigned long long)v);
		return;
	}
	/* pprof's units: powers of 1024 named kB, MB, ... */
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
	double x = (double)v;
	int u = 0;
	while (x >= 1024 && u < 5) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		sb_addf(sb, "%lluB", (unsigned long long)v);
	else
		sb_addf(sb, "%.*f%s", x < 10 ? 2 : x < 100 ? 1 : 0, x, units[u]);
}

double percent(uint64_t v, uint64_t total)
{
	return total ? 100.0 * (double)v / (double)total : 0.0;
}
