/* profile.c: builds the symbolized profile (see profile.h): each dump chain's addresses become
 * symbolic frames (inlines expanded), chains of the same call path merge, sampled counts are
 * scaled. Each distinct address is symbolized and named once: its frames are made on first
 * sight and shared by every chain through it. It never prints a view and never reads a dump's
 * bytes after loading. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "profile.h"
#include "usage.h"

/* (module, offset) of one return address -> its frames in addr_frames */
struct addr_entry {
	int module; /* -2 marks an empty slot */
	uint32_t n;
	uint64_t offset;
	size_t first;
};

/* a class of frames equal by one comparison (what frame_same compares, or sites) */
struct sym_class {
	const struct pframe *f; /* the first frame of the class; NULL marks an empty slot */
	uint64_t hash;
};

bool frame_same(const struct pframe *a, const struct pframe *b)
{
	return a->sym == b->sym;
}

/* Whether two frames are one class: the same function, file:line and (when INLINED counts)
 * inlining, or the same module+offset when neither has a function. */
static bool same_symbol(const struct pframe *a, const struct pframe *b, bool inlined)
{
	if (a->function || b->function)
		return a->function == b->function && a->file == b->file && a->line == b->line &&
		       (!inlined || a->inlined == b->inlined);
	return a->module == b->module && a->offset == b->offset;
}

static uint64_t symbol_hash(const struct pframe *f, bool inlined)
{
	uint64_t h = 0;
	if (f->function) {
		h = mp_hash_mix(h, (uintptr_t)f->function);
		h = mp_hash_mix(h, (uintptr_t)f->file);
		return mp_hash_mix(h, (uint64_t)f->line * 2 + (inlined && f->inlined));
	}
	h = mp_hash_mix(h, (uint64_t)(int64_t)f->module);
	return mp_hash_mix(h, f->offset);
}

/* The class of a new frame in table t, by same_symbol with INLINED: the class of an equal frame
 * seen before (its sym, or its site when inlining does not count), or FRESH for a new one. */
static uint32_t symbol_class(struct frame_classes *t, const struct pframe *f, bool inlined,
                             uint32_t fresh)
{
	if ((t->n + 1) * 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct sym_class *v = xcalloc(cap, sizeof(*v));
		for (size_t i = 0; i < t->cap; i++) {
			if (!t->v[i].f)
				continue;
			size_t j = t->v[i].hash & (cap - 1);
			while (v[j].f)
				j = (j + 1) & (cap - 1);
			v[j] = t->v[i];
		}
		free(t->v);
		t->v = v;
		t->cap = cap;
	}
	uint64_t h = symbol_hash(f, inlined);
	size_t j = h & (t->cap - 1);
	while (t->v[j].f) {
		if (t->v[j].hash == h && same_symbol(t->v[j].f, f, inlined))
			return inlined ? t->v[j].f->sym : t->v[j].f->site;
		j = (j + 1) & (t->cap - 1);
	}
	t->v[j].f = f;
	t->v[j].hash = h;
	t->n++;
	return fresh;
}

/* How a new chain compares with one of the profile's. */
enum chain_match {
	CHAIN_OTHER,      /* another call path */
	CHAIN_PATH_APART, /* the same call path, a frame inlined on one and called on the other in
	                     one build: kept apart for the views, one path for diff */
	CHAIN_PATH,       /* the same call path from another build, inlined otherwise: one chain */
	CHAIN_SAME,       /* the same symbols, inlining included */
};

/* A chain is its call path: the frames' functions and file:lines, not whether the compiler
 * inlined them, which changes with the flags of a build (a static helper is called at -O0 and
 * inlined at -O2), so that diff and merge match the chains of two builds of one source. Within
 * one build, though, an inlined frame and a call of the same function are two paths for the
 * views (the tree marks the first "(inlined)"): frames that differ only in inlining make one
 * chain only when they lie in different modules, which different builds are (modules are told
 * apart by build-id). */
static enum chain_match chain_match(const struct pchain *a, const struct pframe *const *frames,
                                    size_t n, bool truncated, uint64_t hash)
{
	if (a->hash != hash || a->nframes != n || a->truncated != truncated)
		return CHAIN_OTHER;
	enum chain_match m = CHAIN_SAME;
	for (size_t i = 0; i < n; i++) {
		const struct pframe *x = a->frames[i], *y = frames[i];
		if (x->site != y->site)
			return CHAIN_OTHER;
		if (x->sym == y->sym)
			continue;
		if (x->module == y->module)
			m = CHAIN_PATH_APART;
		else if (m == CHAIN_SAME)
			m = CHAIN_PATH;
	}
	return m;
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
			t->objects = sat_add(t->objects, k[i].objects);
			t->bytes = sat_add(t->bytes, k[i].bytes);
			t->samples = sat_add(t->samples, k[i].samples);
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

/* Adds v to chain c's values (or its base side), and the size classes. */
static void add_values(struct profile *p, struct pchain *c, const uint64_t v[NSAMPLES],
                       const struct pclass *classes, size_t nclasses)
{
	for (int s = 0; s < NSAMPLES; s++) {
		if (p->loading_base)
			c->base[s] = sat_add(c->base[s], v[s]);
		else
			c->v[s] = sat_add(c->v[s], v[s]);
	}
	if (!p->loading_base)
		merge_classes(c, classes, nclasses);
}

/* Adds a symbolized chain, merging with the same chain (chain_match): one of the same symbols
 * if there is one, else the first of the same call path from another build, whose frames it
 * keeps. Copies frames when it is new. */
static void add_chain(struct profile *p, const struct pframe *const *frames, size_t nframes,
                      bool truncated, const uint64_t v[NSAMPLES], const struct pclass *classes,
                      size_t nclasses)
{
	uint64_t h = truncated ? 0x7472756e63ull : 0;
	for (size_t i = 0; i < nframes; i++)
		h = mp_hash_mix(h, frames[i]->site);
	if ((p->nchains + 1) * 2 > p->index_cap)
		index_grow(p);
	size_t j = h & (p->index_cap - 1);
	struct pchain *merge = NULL;
	int path = (int)p->nchains;
	while (p->index[j] != SIZE_MAX) {
		struct pchain *c = &p->chains[p->index[j]];
		enum chain_match m = chain_match(c, frames, nframes, truncated, h);
		if (m == CHAIN_SAME) {
			add_values(p, c, v, classes, nclasses);
			return;
		}
		if (m == CHAIN_PATH && !merge)
			merge = c;
		if (m != CHAIN_OTHER && c->path < path)
			path = c->path;
		j = (j + 1) & (p->index_cap - 1);
	}
	if (merge) {
		add_values(p, merge, v, classes, nclasses);
		return;
	}
	ALLOC_GROW(p->chains, p->nchains + 1, p->chains_alloc);
	struct pchain *c = &p->chains[p->nchains];
	memset(c, 0, sizeof(*c));
	c->hash = h;
	c->truncated = truncated;
	c->nframes = nframes;
	c->frames = xreallocarray(NULL, nframes ? nframes : 1, sizeof(*c->frames));
	if (nframes)
		memcpy(c->frames, frames, nframes * sizeof(*frames));
	c->id = (int)p->nchains;
	c->path = path;
	if (p->loading_base) {
		memcpy(c->base, v, sizeof(c->base));
	} else {
		memcpy(c->v, v, sizeof(c->v));
		merge_classes(c, classes, nclasses);
	}
	p->index[j] = p->nchains++;
}

static void name_frame(struct profile *p, struct pframe *f);

/* The frames of one return address: symbolized, named and classed on first sight, then
 * shared. Returns how many (at least one) and points *out at them. */
static size_t address_frames(struct profile *p, int mod, uint64_t offset, struct pframe ***out)
{
	if ((p->naddrs + 1) * 2 > p->addrs_cap) {
		size_t cap = p->addrs_cap ? p->addrs_cap * 2 : 1024;
		struct addr_entry *t = xmalloc(cap * sizeof(*t));
		for (size_t i = 0; i < cap; i++)
			t[i].module = -2;
		for (size_t i = 0; i < p->addrs_cap; i++) {
			struct addr_entry *e = &p->addrs[i];
			if (e->module == -2)
				continue;
			size_t j =
			    mp_hash_mix(mp_hash_mix(0, (uint64_t)(int64_t)e->module), e->offset) &
			    (cap - 1);
			while (t[j].module != -2)
				j = (j + 1) & (cap - 1);
			t[j] = *e;
		}
		free(p->addrs);
		p->addrs = t;
		p->addrs_cap = cap;
	}
	size_t j = mp_hash_mix(mp_hash_mix(0, (uint64_t)(int64_t)mod), offset) & (p->addrs_cap - 1);
	while (p->addrs[j].module != -2) {
		struct addr_entry *e = &p->addrs[j];
		if (e->module == mod && e->offset == offset) {
			*out = &p->addr_frames[e->first];
			return e->n;
		}
		j = (j + 1) & (p->addrs_cap - 1);
	}
	const struct sym_frame *sf;
	size_t ns = sym_lookup(&p->sym, mod, offset, &sf);
	ALLOC_GROW(p->addr_frames, p->naddr_frames + ns, p->addr_frames_alloc);
	ALLOC_GROW(p->frames, p->nframes + ns, p->frames_alloc);
	struct pframe *block = xcalloc(ns, sizeof(*block));
	for (size_t x = 0; x < ns; x++) {
		struct pframe *pf = &block[x];
		pf->module = mod;
		pf->offset = offset;
		pf->function = sf[x].function;
		pf->file = sf[x].file;
		pf->line = sf[x].line;
		pf->inlined = sf[x].inlined;
		pf->id = (uint32_t)p->nframes;
		pf->sym = symbol_class(&p->syms, pf, true, (uint32_t)p->syms.n);
		/* a site is named by the sym of its first frame, which no other site has; a frame
		 * without a function is its own site (inlining is a function's) */
		pf->site = pf->function ? symbol_class(&p->sites, pf, false, pf->sym) : pf->sym;
		name_frame(p, pf);
		p->frames[p->nframes++] = pf;
		p->addr_frames[p->naddr_frames + x] = pf;
	}
	struct addr_entry *e = &p->addrs[j];
	e->module = mod;
	e->offset = offset;
	e->n = (uint32_t)ns;
	e->first = p->naddr_frames;
	p->naddr_frames += ns;
	p->naddrs++;
	*out = &p->addr_frames[e->first];
	return ns;
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

/* The objects of one size class. Its samples lean towards its larger sizes
 * (a request of s bytes is sampled in proportion to s while s << P), so the
 * mean sampled size overstates the mean request and scaling by it undercounts
 * objects (by about 4% for sizes spread over a power of two). Instead the
 * class's requests are taken as spread evenly over [min, max]: the chance
 * that one of them is sampled is then the mean of 1 - exp(-s/P) over that
 * range, and each sample stands for 1/that many requests. Exact when all
 * requests have one size (min == max). Bytes need no such care: a sample
 * stands for about P bytes whatever its size, which the mean-size scale
 * already gives. */
static double objects_scale(uint64_t min, uint64_t max, double mean_size, uint64_t period)
{
	if (!period)
		return 1.0;
	if (min == 0 || max <= min)
		return sample_scale(mean_size, period);
	double P = (double)period, a = (double)min, w = (double)(max - min);
	/* mean of 1 - exp(-s/P) over [a, a + w] = 1 + (P / w) exp(-a/P) expm1(-w/P) */
	double q = 1.0 + (P / w) * exp(-a / P) * expm1(-w / P);
	return q > 0 ? 1.0 / q : sample_scale(mean_size, period);
}

/* v * k rounded to an integer, halves away from zero (as llround, but over the whole range of
 * uint64_t). An estimate of 2^64 or more cannot be held: it is capped at UINT64_MAX and *capped
 * is set, so that the caller can say so. */
static uint64_t scaled(uint64_t v, double k, bool *capped)
{
	if (k == 1.0)
		return v;
	double x = round((double)v * k);
	if (!(x < 0x1p64)) { /* (NaN and infinity too, which a scale never is) */
		*capped = true;
		return UINT64_MAX;
	}
	return (uint64_t)x;
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
	bool capped = false;
	struct pclass *cls = NULL;
	size_t cls_alloc = 0;
	const struct pframe **frames = NULL;
	size_t frames_alloc = 0;
	/* A version 2 dump names each distinct frame once: look each up once (where its symbolized
	 * frames start in p->addr_frames, and how many; 0 when not yet looked up). */
	size_t *known_at = d->nframes ? xcalloc(d->nframes, sizeof(*known_at)) : NULL;
	uint32_t *known_n = d->nframes ? xcalloc(d->nframes, sizeof(*known_n)) : NULL;
	for (size_t i = 0; i < d->nchains; i++) {
		const struct dump_chain *dc = &d->chains[i];
		size_t n = 0;
		for (uint32_t k = 0; k < dc->c.nframes; k++) {
			uint32_t fid = dc->frame_ids ? dc->frame_ids[k] : 0;
			struct pframe **af;
			size_t ns;
			if (dc->frame_ids && known_n[fid]) {
				af = &p->addr_frames[known_at[fid]];
				ns = known_n[fid];
			} else {
				const struct mp_frame *f = dump_frame(d, dc, k);
				int mod = f->module == MP_MODULE_NONE ? -1 : map[f->module];
				ns = address_frames(p, mod, f->offset, &af);
				if (dc->frame_ids) {
					known_at[fid] = (size_t)(af - p->addr_frames);
					known_n[fid] = (uint32_t)ns;
				}
			}
			ALLOC_GROW(frames, n + ns, frames_alloc);
			memcpy(frames + n, af, ns * sizeof(*af));
			n += ns;
		}
		p->raw_frames += dc->c.nframes;
		uint64_t v[NSAMPLES] = {dc->c.alloc_objects, dc->c.alloc_space, dc->c.inuse_objects,
		                        dc->c.inuse_space};
		ALLOC_GROW(cls, (size_t)dc->c.nclasses + 1, cls_alloc);
		for (uint32_t k = 0; k < dc->c.nclasses; k++) {
			const struct mp_size_class *mc = &dc->classes[k];
			cls[k] = (struct pclass){mc->log2,     mc->objects,  mc->bytes,
			                         mc->min_size, mc->max_size, mc->objects};
		}
		if (period && !p->loading_base)
			p->samples = sat_add(p->samples, dc->c.alloc_objects);
		if (period) {
			/* Scale per size class by its mean size, then the in-use part by its own.
			 */
			uint64_t o = 0, b = 0;
			for (uint32_t k = 0; k < dc->c.nclasses; k++) {
				double mean = (double)cls[k].bytes / (double)cls[k].objects;
				double so = objects_scale(cls[k].min, cls[k].max, mean, period);
				cls[k].objects = scaled(cls[k].objects, so, &capped);
				cls[k].bytes =
				    scaled(cls[k].bytes, sample_scale(mean, period), &capped);
				o = sat_add(o, cls[k].objects);
				b = sat_add(b, cls[k].bytes);
			}
			if (dc->c.nclasses) {
				v[S_ALLOC_OBJECTS] = o;
				v[S_ALLOC_SPACE] = b;
			}
			if (v[S_INUSE_OBJECTS]) {
				double sc = sample_scale(
				    (double)v[S_INUSE_SPACE] / (double)v[S_INUSE_OBJECTS], period);
				v[S_INUSE_OBJECTS] = scaled(v[S_INUSE_OBJECTS], sc, &capped);
				v[S_INUSE_SPACE] = scaled(v[S_INUSE_SPACE], sc, &capped);
			}
		}
		for (int s = 0; s < NSAMPLES; s++) {
			if (p->loading_base)
				p->base_total[s] = sat_add(p->base_total[s], v[s]);
			else
				p->total[s] = sat_add(p->total[s], v[s]);
		}
		add_chain(p, frames, n, dc->c.flags & MP_CHAIN_TRUNCATED, v, cls, dc->c.nclasses);
	}
	free(known_at);
	free(known_n);
	free(frames);
	free(cls);
	free(map);
	if (capped)
		error("%s: some sampled estimates are 2^64 or more and are shown as %llu, the "
		      "largest 64-bit count",
		      d->path, (unsigned long long)UINT64_MAX);
}

bool frame_matches(const struct profile *p, const struct pframe *f, const regex_t *re)
{
	struct strbuf sb = STRBUF_INIT;
	frame_full_name(p, f, &sb);
	bool m = regexec(re, sb_str(&sb), 0, NULL, 0) == 0;
	if (!m && f->function && !p->full_names)
		m = regexec(re, f->name, 0, NULL, 0) == 0;
	if (!m && f->file) {
		/* file:line matches too, so --focus 'foo\.c:12' works */
		sb_reset(&sb);
		frame_where(f, &sb);
		m = regexec(re, sb_str(&sb), 0, NULL, 0) == 0;
	}
	sb_release(&sb);
	return m;
}

unsigned char *frames_matching(const struct profile *p, const regex_t *re)
{
	unsigned char *out = xcalloc(p->nframes + 1, 1);
	/* frames of one symbol class match alike: test one of each */
	unsigned char *done = xcalloc(p->syms.n + 1, 1);
	for (size_t i = 0; i < p->nframes; i++) {
		const struct pframe *f = p->frames[i];
		if (!done[f->sym])
			done[f->sym] = frame_matches(p, f, re) ? 2 : 1;
		out[i] = done[f->sym] == 2;
	}
	free(done);
	return out;
}

static bool chain_matches(const struct pchain *c, const unsigned char *match)
{
	for (size_t i = 0; i < c->nframes; i++)
		if (match[c->frames[i]->id])
			return true;
	return false;
}

void profile_filter(struct profile *p, const struct options *o)
{
	memset(p->shown, 0, sizeof(p->shown));
	memset(p->base_shown, 0, sizeof(p->base_shown));
	unsigned char *focus = o->focus ? frames_matching(p, &o->focus_re) : NULL;
	unsigned char *ignore = o->ignore ? frames_matching(p, &o->ignore_re) : NULL;
	for (size_t i = 0; i < p->nchains; i++) {
		struct pchain *c = &p->chains[i];
		c->hidden =
		    (focus && !chain_matches(c, focus)) || (ignore && chain_matches(c, ignore));
		if (!c->hidden) {
			for (int s = 0; s < NSAMPLES; s++) {
				p->shown[s] = sat_add(p->shown[s], c->v[s]);
				p->base_shown[s] = sat_add(p->base_shown[s], c->base[s]);
			}
		}
	}
	free(focus);
	free(ignore);
}

void profile_init(struct profile *p, const struct options *o)
{
	memset(p, 0, sizeof(*p));
	p->frees_tracked = true;
	p->full_names = o->full_names;
	p->stats = o->stats;
	p->sym.quiet = o->quiet;
	if (o->debug_dir)
		sym_set_debug_dirs(o->debug_dir);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_stats(const struct profile *p, double t0, double t1, double t2)
{
	if (!p->stats)
		return;
	size_t bytes = 0, chains = 0;
	for (size_t i = 0; i < p->ndumps; i++) {
		bytes += p->dumps[i]->size;
		chains += p->dumps[i]->nchains;
	}
	fflush(stdout);
	fprintf(stderr,
	        "mapprof: stats: %zu dump%s (%zu bytes), %zu chains (%zu after merging by "
	        "symbols), %zu return addresses, %zu distinct addresses symbolized once each "
	        "into %zu frames of %zu symbols; read %.3f s, symbolized and merged %.3f s\n",
	        p->ndumps, p->ndumps == 1 ? "" : "s", bytes, chains, p->nchains, p->raw_frames,
	        p->sym.lookups, p->nframes, p->syms.n, t1 - t0, t2 - t1);
}

/* An inuse sample asked of dumps that did not track frees has no values to show. */
static void need_frees(const struct profile *p, const struct options *o)
{
	if (p->frees_tracked || (o->sample != S_INUSE_OBJECTS && o->sample != S_INUSE_SPACE))
		return;
	for (size_t i = 0; i < p->ndumps; i++)
		if (!(p->dumps[i]->info.flags & MP_INFO_FREES_TRACKED))
			die("%s: no %s: this dump did not track frees (it was recorded with "
			    "MAPPROF_INUSE=0, or merged from one that was); use alloc_objects or "
			    "alloc_space",
			    p->dumps[i]->path, sample_names[o->sample]);
}

void profile_load_diff(struct profile *p, const struct options *o, const char *base,
                       const char *now)
{
	profile_init(p, o);
	double t0 = now_s();
	struct dump *b = dump_load(base);
	struct dump *n = dump_load(now);
	double t1 = now_s();
	p->loading_base = true;
	profile_add_dump(p, b);
	p->loading_base = false;
	profile_add_dump(p, n);
	need_frees(p, o);
	profile_filter(p, o);
	print_stats(p, t0, t1, now_s());
}

/* True when dump a was taken later in its process's life than b (both of one process): the dump
 * at exit (sequence 0) is the last; of two on demand, the higher sequence, then the later
 * end_ns. */
static bool taken_later(const struct dump *a, const struct dump *b)
{
	uint32_t x = a->info.sequence, y = b->info.sequence;
	if (x != y)
		return x == 0 || (y != 0 && x > y);
	return a->info.end_ns > b->info.end_ns;
}

/* Orders dump indices by process (pid, start_ns), then by their place on the command line. */
static int cmp_process(const void *a, const void *b, void *arg)
{
	struct dump *const *ds = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	const struct mp_info *x = &ds[i]->info, *y = &ds[j]->info;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->start_ns != y->start_ns)
		return x->start_ns < y->start_ns ? -1 : 1;
	return i < j ? -1 : i > j;
}

/* Dumps of one process (the same pid and start_ns: a process image, from its start or its
 * fork) are snapshots of one profile that only grows: each holds every allocation up to the
 * moment it was taken. Adding them up would count the early allocations once per snapshot, so
 * only the latest of each process is kept; the others are freed, their entries set to NULL,
 * and one line per process names them. */
static void keep_latest_snapshots(struct dump **ds, size_t n)
{
	size_t *ix = xcalloc(n + 1, sizeof(*ix));
	for (size_t i = 0; i < n; i++)
		ix[i] = i;
	/* A merged dump is no snapshot: its INFO is its first input's (merged_again sees to it). */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!ds[i]->nsources)
			ix[m++] = i;
	n = m;
	qsort_r(ix, n, sizeof(*ix), cmp_process, ds);
	for (size_t g = 0, end; g < n; g = end) {
		const struct mp_info *first = &ds[ix[g]]->info;
		size_t keep = ix[g];
		for (end = g + 1; end < n; end++) {
			const struct mp_info *in = &ds[ix[end]]->info;
			if (in->pid != first->pid || in->start_ns != first->start_ns)
				break;
			if (taken_later(ds[ix[end]], ds[keep]))
				keep = ix[end];
		}
		if (end - g == 1)
			continue;
		/* the others, in command-line order: at most three by name */
		struct strbuf names = STRBUF_INIT;
		size_t nleft = 0;
		bool copies = false;
		for (size_t k = g; k < end; k++) {
			struct dump *d = ds[ix[k]];
			if (ix[k] == keep)
				continue;
			if (!taken_later(ds[keep], d))
				copies = true; /* the same sequence and end time as the one kept */
			if (nleft < 3)
				sb_addf(&names, "%s%s", nleft ? ", " : "", d->path);
			nleft++;
			dump_free(d);
			ds[ix[k]] = NULL;
		}
		if (nleft > 3)
			sb_addf(&names, " and %zu more", nleft - 3);
		error("%s: %s of the process in %s (pid %llu), left out (each snapshot holds all "
		      "the allocations before it)",
		      sb_str(&names),
		      copies
		          ? (nleft > 1 ? "copies or earlier snapshots" : "a copy of the snapshot")
		      : nleft > 1 ? "earlier snapshots"
		                  : "an earlier snapshot",
		      ds[keep]->path, (unsigned long long)ds[keep]->info.pid);
		sb_release(&names);
	}
	free(ix);
}

/* Whether merged dump m holds a process image of d's (*pid; *same when it is the same snapshot). */
static bool shares_image(const struct dump *d, const struct dump *m, uint64_t *pid, bool *same)
{
	for (size_t x = 0; x < dump_nimages(d); x++)
		for (size_t k = 0; k < m->nsources; k++) {
			struct dump_source a = dump_image(d, x), b = m->sources[k];
			if (a.pid == b.pid && a.start_ns == b.start_ns) {
				*same = a.sequence == b.sequence;
				*pid = a.pid;
				return true;
			}
		}
	return false;
}

/* Whether merged dump m holds every process image of merged dump d, each the same snapshot
 * (sequence): d adds nothing to m (the same file given twice, a copy, or a merge of some of m's
 * inputs). */
static bool holds_all(const struct dump *d, const struct dump *m)
{
	for (size_t x = 0; x < d->nsources; x++) {
		bool found = false;
		for (size_t k = 0; k < m->nsources && !found; k++)
			found = d->sources[x].pid == m->sources[k].pid &&
			        d->sources[x].start_ns == m->sources[k].start_ns &&
			        d->sources[x].sequence == m->sources[k].sequence;
		if (!found)
			return false;
	}
	return true;
}

/* A dump whose process image (pid, start_ns) a merged dump lists among its SOURCES: if it is the
 * same snapshot (sequence), the merged dump has it already and it is left out, and so is a
 * merged dump all of whose inputs another merged dump holds (of two that hold the same, the one
 * given later); otherwise the process's early allocations are counted twice, which one line says
 * (as for two merged dumps that share an input). */
static void merged_again(struct dump **ds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n && ds[i]; j++) {
			bool same;
			uint64_t pid;
			if (j == i || !ds[j] || !ds[j]->nsources ||
			    !shares_image(ds[i], ds[j], &pid, &same))
				continue;
			bool in_j = ds[i]->nsources ? holds_all(ds[i], ds[j]) : same;
			bool j_in = ds[i]->nsources && holds_all(ds[j], ds[i]);
			if (in_j && (!j_in || j < i)) {
				error("%s: already in %s (merged), left out", ds[i]->path,
				      ds[j]->path);
				dump_free(ds[i]);
				ds[i] = NULL;
			} else if (!j_in && (!ds[i]->nsources || i < j)) {
				error(
				    "%s and %s both hold process %llu: its allocations are counted "
				    "twice",
				    ds[i]->path, ds[j]->path, (unsigned long long)pid);
			}
		}
}

void profile_load(struct profile *p, const struct options *o, char **paths, int npaths)
{
	profile_init(p, o);
	/* Load (and validate) every dump before symbolizing any, so bad input fails fast. */
	double t0 = now_s();
	struct dump **ds = xcalloc((size_t)npaths + 1, sizeof(*ds));
	for (int i = 0; i < npaths; i++)
		ds[i] = dump_load(paths[i]);
	keep_latest_snapshots(ds, (size_t)npaths);
	merged_again(ds, (size_t)npaths);
	double t1 = now_s();
	for (int i = 0; i < npaths; i++)
		if (ds[i])
			profile_add_dump(p, ds[i]);
	free(ds);
	need_frees(p, o);
	profile_filter(p, o);
	print_stats(p, t0, t1, now_s());
}

void profile_free(struct profile *p)
{
	for (size_t i = 0; i < p->nchains; i++) {
		free(p->chains[i].frames);
		free(p->chains[i].classes);
	}
	free(p->chains);
	free(p->index);
	/* frames were allocated one block per address: free each block once, by its first */
	for (size_t i = 0; i < p->addrs_cap; i++)
		if (p->addrs[i].module != -2)
			free(p->addr_frames[p->addrs[i].first]);
	free(p->addrs);
	free(p->addr_frames);
	free(p->frames);
	free(p->line_keys);
	free(p->syms.v);
	free(p->sites.v);
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

static void simplify_at(const char *in, struct strbuf *sb, int depth, bool part);

/* The characters of a plain path ("alloc::vec::Vec"). */
#define PATH_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:"

/* How deep simplify_qualified goes: each level copies what is left of the name. Rust's own
 * names nest a few levels; a crafted symbol nesting thousands would make it quadratic. */
#define QUALIFIED_DEPTH 8

/* The part of in before end, simplified. */
static void simplify_part(const char *in, const char *end, struct strbuf *sb, int depth)
{
	char *part = xstrndup(in, (size_t)(end - in));
	simplify_at(part, sb, depth, true);
	free(part);
}

/* Rust's qualified paths, "<Type as Trait>::method" (or "<Type>::method"): each side
 * simplified on its own, "<alloc::vec::Vec as core::iter::FromIterator>::from_iter", rather
 * than everything inside the brackets dropped. Returns false, writing nothing, if in is not
 * one. */
static bool simplify_qualified(const char *in, struct strbuf *sb, int depth)
{
	const char *as = NULL, *c = in + 1;
	for (int level = 1; *c && level; c++) {
		if (*c == '<')
			level++;
		else if (*c == '>')
			level--;
		else if (level == 1 && !as && strncmp(c, " as ", 4) == 0)
			as = c;
	}
	if (c[-1] != '>' || strncmp(c, "::", 2) != 0)
		return false;
	size_t open = sb->len;
	sb_addch(sb, '<');
	simplify_part(in + 1, as ? as : c - 1, sb, depth + 1);
	if (as) {
		sb_adds(sb, " as ");
		simplify_part(as + 4, c - 1, sb, depth + 1);
		sb_addch(sb, '>');
	} else if (sb->buf[open + 1] != ':' &&
	           strspn(sb->buf + open + 1, PATH_CHARS) == sb->len - open - 1) {
		/* an inherent method, "<hashbrown::raw::RawTable<T>>::reserve" in the v0
		 * mangling: the type's path as the legacy mangling and C++ give it */
		memmove(sb->buf + open, sb->buf + open + 1, sb->len - open);
		sb->len--;
	} else {
		sb_addch(sb, '>'); /* "<[T]>::to_vec" */
	}
	simplify_at(c, sb, depth + 1, false);
	return true;
}

/* Past the bracketed text that starts at open (nested brackets of the same kind included), or
 * at the end of the string. */
static const char *skip_balanced(const char *open, char lo, char hi)
{
	int level = 0;
	for (const char *c = open; *c; c++) {
		if (*c == lo)
			level++;
		else if (*c == hi && --level == 0)
			return c + 1;
	}
	return open + strlen(open);
}

/* The length of the C++ operator token at s ("+", "<<=", "()", "[]", "->*"), or 0 for a word
 * operator or a conversion ("new", "delete", "bool"). */
static size_t operator_token(const char *s)
{
	static const char *const tokens[] = {
	    "<=>", "<<=", ">>=", "->*", "()", "[]", "<<", ">>", "<=", ">=", "==", "!=", "&&",
	    "||",  "++",  "--",  "->",  "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<",
	    ">",   "+",   "-",   "*",   "/",  "%",  "^",  "&",  "|",  "~",  "!",  "=",  ","};
	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
		if (strncmp(s, tokens[i], strlen(tokens[i])) == 0)
			return strlen(tokens[i]);
	return 0;
}

/* Past a parameter list that starts at open and the qualifiers that may follow it (" const",
 * " volatile", " &", " &&", " noexcept"). */
static const char *after_parameters(const char *open)
{
	const char *c = skip_balanced(open, '(', ')');
	for (;;) {
		static const char *const quals[] = {" const", " volatile", " &&", " &",
		                                    " noexcept"};
		size_t i = 0, n = sizeof(quals) / sizeof(quals[0]);
		while (i < n && strncmp(c, quals[i], strlen(quals[i])) != 0)
			i++;
		if (i == n)
			return c;
		c += strlen(quals[i]);
	}
}

/* pprof's short C++ names: template arguments, parameter lists, const qualifiers and return
 * types dropped ("std::_Hashtable<...>::_M_rehash(unsigned long, ...)" becomes
 * "std::_Hashtable::_M_rehash"); "(anonymous namespace)", "operator new" and lambdas' braces kept.
 * Rust's "<Type as Trait>::method" keeps both sides (simplify_qualified). C names pass through
 * unchanged. */
static void simplify_name(const char *in, struct strbuf *sb)
{
	simplify_at(in, sb, 0, false);
}

/* PART: one side of a qualified path, where a space does not end a return type ("&mut W",
 * "dyn Write"). */
static void simplify_at(const char *in, struct strbuf *sb, int depth, bool part)
{
	if (in[0] == '<' && depth < QUALIFIED_DEPTH && simplify_qualified(in, sb, depth))
		return;
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
			const char *q = c + 8;
			size_t tok = operator_token(q);
			if (tok) {
				/* "operator+", "operator<<", "operator()": the token, then any
				 * template arguments dropped ("operator+<char, ...>") */
				q += tok;
				sb_add(sb, c, (size_t)(q - c));
				if (q[0] == ' ' && q[1] == '<')
					q++; /* "operator< <int>", as the demangler spaces it */
				if (*q == '<')
					q = skip_balanced(q, '<', '>');
				c = q - 1;
				continue;
			}
			/* "operator new", "operator bool": up to the parameter list */
			while (*q && *q != '(')
				q++;
			sb_add(sb, c, (size_t)(q - c));
			c = q - 1;
			continue;
		}
		if (*c == '<') {
			/* Rust's turbofish, "lang_start::<()>::{closure#0}": its "::" goes with it
			 */
			if (!angle && sb->len >= start + 2 && sb->buf[sb->len - 1] == ':' &&
			    sb->buf[sb->len - 2] == ':') {
				sb->len -= 2;
				sb->buf[sb->len] = '\0';
			}
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
			/* the parameter list: dropped, with any qualifiers after it; and the end of
			 * the name, unless a "::" follows, which makes it an enclosing function's
			 * ("work(int)::{lambda()#1}::operator()", "f(int)::Local::go(int)") */
			const char *after = after_parameters(c);
			if (strncmp(after, "::", 2) != 0)
				break;
			c = after - 1;
			continue;
		} else if (*c == ' ' && !part) {
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

/* Works out f->name, once per frame (address_frames). Frames of one function share the
 * interned string. */
static void name_frame(struct profile *p, struct pframe *f)
{
	struct strbuf sb = STRBUF_INIT;
	if (f->function && !p->full_names && strpbrk(f->function, "<( "))
		simplify_name(f->function, &sb);
	else if (f->function)
		sb_adds(&sb, f->function);
	else if (f->module < 0)
		sb_addf(&sb, "0x%llx", (unsigned long long)f->offset);
	else
		sb_addf(&sb, "%s+0x%llx", module_base(p, f->module), (unsigned long long)f->offset);
	/* the symbolizer's pool: names live as long as the profile */
	f->name = strpool_intern(&p->sym.pool, sb_str(&sb));
	sb_release(&sb);
}

void frame_name(const struct profile *p, const struct pframe *f, struct strbuf *sb)
{
	(void)p;
	sb_adds(sb, f->name);
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
