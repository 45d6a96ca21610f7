/* view_growth.c: `mapprof growth`: finds the chains that lead into container growth without
 * being told where: (a) chains through known growth functions (GHashTable resize, libstdc++
 * _M_rehash, CPython dictresize, ...; --growth-fn adds more) and (b) chains whose requests step
 * up geometrically across size classes (uthash's bucket doubling, realloc doubling). It must
 * stay silent for a program that allocates the same amount without growth. */
#include <math.h>
#include <string.h>

#include "usage.h"
#include "views.h"

/* What we know about a container: how to recognise it on a chain and how to size it once. */
struct known {
	const char *re;
	bool growth_fn; /* a frame matching re means the allocation IS growth */
	const char *container;
	const char *knob;
};

static const struct known known[] = {
    {"^g_hash_table_(maybe_)?resize$", true, "GLib GHashTable",
     "GLib has no public way to pre-size a GHashTable (no constructor takes a size, and "
     "g_hash_table_remove_all shrinks it); if the keys are known up front, a sorted array "
     "sized once (g_array_sized_new + bsearch) or a map with a reserve avoids the growth"},
    {"^g_hash_table_(insert|replace|add)", false, "GLib GHashTable",
     "GLib has no public way to pre-size a GHashTable (no constructor takes a size, and "
     "g_hash_table_remove_all shrinks it); if the keys are known up front, a sorted array "
     "sized once (g_array_sized_new + bsearch) or a map with a reserve avoids the growth"},
    {"::_M_rehash(_aux)?([(]|$)", true, "libstdc++ std::unordered_map/set",
     "call reserve(n) (or construct with a bucket count) with the final number of elements "
     "before inserting: std::unordered_map::reserve"},
    {"_M_realloc_insert|_M_realloc_append|_M_default_append", true, "std::vector",
     "call reserve(n) with the final size before push_back/emplace_back"},
    {"^(dictresize|insertion_resize|dict_resize)$|_PyDict_.*Resize", true, "CPython dict",
     "Python code cannot pre-size a dict; build it in one go (dict comprehension, "
     "dict.fromkeys, dict(zip(...))); C extensions can use _PyDict_NewPresized(n)"},
    {"^(list_resize|_PyList_Resize)$", true, "CPython list",
     "build the list in one go ([x] * n, a comprehension) instead of appending"},
    {"^(S_)?hsplit$|^Perl_hv_ksplit$", true, "Perl hash",
     "pre-extend the hash: keys(%h) = N before filling it"},
    {"^luaH_resize$|^luaH_resizearray$", true, "Lua table",
     "create the table at its size: lua_createtable(L, narr, nrec) (table.create in Lua 5.5)"},
    {"^kh_resize_", true, "khash", "call kh_resize(name, h, n) before inserting"},
    {"^(hashmap_)?rehash$", true, "hash map (git hashmap or similar)",
     "pass the final size when creating the map (git: hashmap_init(map, cmp, data, n))"},
    {"reserve_rehash", true, "Rust hashbrown HashMap/HashSet",
     "HashMap::with_capacity(n) or map.reserve(n)"},
    {"alloc::raw_vec::.*(grow_one|grow_amortized|grow_exact|finish_grow|do_reserve_and_handle)",
     true, "Rust Vec/String",
     "Vec::with_capacity(n) or String::with_capacity(n), or v.reserve(n) before pushing"},
    {"basic_string.*::_M_mutate", true, "std::string",
     "call reserve(n) with the final length before appending"},
    {"raw_hash_set<.*(resize|Resize)", true, "abseil flat/node hash map",
     "call reserve(n) before inserting"},
    {"boost::unordered.*(rehash|reserve_for_insert)", true, "boost::unordered",
     "call reserve(n) before inserting"},
    {"QHash.*rehash|QHashPrivate.*rehash", true, "Qt QHash", "call QHash::reserve(n)"},
    {"^g_(array|ptr_array|byte_array)_maybe_expand$|^g_string_maybe_expand$", true,
     "GLib GArray/GPtrArray/GString",
     "create it at its size: g_array_sized_new, g_ptr_array_sized_new, g_string_sized_new"},
};

#define NKNOWN (sizeof(known) / sizeof(known[0]))

struct site {
	const struct pchain *c;
	const struct known *k; /* container recognised, or NULL */
	const char *growth_fn; /* the growth function on the chain, or NULL */
	const struct pframe *growth_frame;
	size_t first, last;      /* run of size classes [first, last] */
	uint64_t objects, bytes; /* growth allocations: the whole run */
	uint64_t save_objects, save_bytes;
	double factor;
};

/* A class's size: its one size, or the mean of its requests kept within [min, max]. Its bytes
 * are not checked against its sizes (docs/dump-format.md: a dump taken while threads allocate,
 * a merged sampled dump), and taken as they are a mean of 0 for requests of 4..7 bytes made
 * the step from the 0-byte class 0 / 0: NaN, which no range test refuses. */
static double class_size(const struct pclass *k)
{
	if (k->min == k->max)
		return (double)k->min;
	double mean = (double)k->bytes / (double)k->objects;
	if (!(mean >= (double)k->min)) /* (NaN too) */
		return (double)k->min;
	return mean > (double)k->max ? (double)k->max : mean;
}

/* The longest run of size classes that step up geometrically. Strict (size steps only, no
 * growth function): every class one exact size, at least three sizes, steps between 1.25x and
 * 4.5x that agree within 1.6x, counts that never rise (several containers growing from the same
 * start), and the run holding most of the chain's allocations. Lenient (a growth function is on
 * the chain): any two or more increasing sizes. A step whose ratio is not a number in range
 * (from a size of 0) is no step: the tests are written so that NaN fails them, and a run's
 * first size is then never 0, which keeps its factor finite. */
static bool find_run(const struct pchain *c, bool strict, size_t *first, size_t *last)
{
	size_t best_len = 0, best_first = 0;
	for (size_t i = 0; i < c->nclasses; i++) {
		if (strict && c->classes[i].min != c->classes[i].max)
			continue;
		size_t j = i;
		double rmin = 1e9, rmax = 0;
		while (j + 1 < c->nclasses) {
			const struct pclass *a = &c->classes[j], *b = &c->classes[j + 1];
			double r = class_size(b) / class_size(a);
			if (strict) {
				double nmin = r < rmin ? r : rmin, nmax = r > rmax ? r : rmax;
				if (b->min != b->max || !(r >= 1.25 && r <= 4.5) ||
				    nmax / nmin > 1.6 || b->objects > a->objects)
					break;
				rmin = nmin;
				rmax = nmax;
			} else if (!(r >= 1.1 && r <= 64)) {
				break;
			}
			j++;
		}
		if (j - i + 1 > best_len) {
			best_len = j - i + 1;
			best_first = i;
		}
	}
	if (best_len < (strict ? 3u : 2u))
		return false;
	*first = best_first;
	*last = best_first + best_len - 1;
	if (strict) {
		uint64_t in = 0;
		for (size_t i = *first; i <= *last; i++)
			in += c->classes[i].objects;
		if (in * 4 < c->v[S_ALLOC_OBJECTS] * 3)
			return false;
	}
	return true;
}

/* Which known patterns (bit k) and the user's --growth-fn (bit 31) match each frame, worked out
 * once per frame rather than once per frame of every chain. */
struct matcher {
	uint32_t *bits; /* by frame id */
};

#define USER_BIT (1u << 31)
_Static_assert(sizeof(known) / sizeof(known[0]) < 31, "too many known growth patterns");

static void matcher_init(struct matcher *m, const struct profile *p, const struct options *o)
{
	m->bits = xcalloc(p->nframes + 1, sizeof(*m->bits));
	for (size_t k = 0; k <= NKNOWN; k++) {
		regex_t re;
		const regex_t *r = &re;
		uint32_t bit = 1u << k;
		if (k == NKNOWN) {
			if (!o->growth_fn)
				break;
			r = &o->growth_fn_re;
			bit = USER_BIT;
		} else if (regcomp(&re, known[k].re, REG_EXTENDED | REG_NOSUB)) {
			die("internal error: bad growth pattern %s", known[k].re);
		}
		unsigned char *hit = frames_matching(p, r);
		for (size_t i = 0; i < p->nframes; i++)
			if (hit[i])
				m->bits[i] |= bit;
		free(hit);
		if (k < NKNOWN)
			regfree(&re);
	}
}

static bool growth_site(const struct matcher *mt, const struct pchain *c, struct site *s)
{
	memset(s, 0, sizeof(*s));
	s->c = c;
	for (size_t f = 0; f < c->nframes && !s->growth_fn; f++) {
		uint32_t bits = mt->bits[c->frames[f]->id];
		if (!bits)
			continue;
		for (size_t k = 0; k < NKNOWN; k++) {
			if (!(bits & (1u << k)))
				continue;
			if (!s->k)
				s->k = &known[k];
			if (known[k].growth_fn) {
				s->k = &known[k];
				s->growth_fn = c->frames[f]->function;
				s->growth_frame = c->frames[f];
				break;
			}
		}
		if (!s->growth_fn && (bits & USER_BIT)) {
			s->growth_fn =
			    c->frames[f]->function ? c->frames[f]->function : "(unnamed)";
			s->growth_frame = c->frames[f];
		}
	}
	if (!find_run(c, !s->growth_fn, &s->first, &s->last))
		return false;
	for (size_t i = s->first; i <= s->last; i++) {
		s->objects += c->classes[i].objects;
		s->bytes += c->classes[i].bytes;
	}
	const struct pclass *lastc = &c->classes[s->last];
	s->save_objects = s->objects - lastc->objects;
	s->save_bytes = s->bytes - lastc->bytes;
	double lo = class_size(&c->classes[s->first]), hi = class_size(lastc);
	s->factor = pow(hi / lo, 1.0 / (double)(s->last - s->first));
	return true;
}

static const char *kind(const struct site *s)
{
	return s->growth_fn ? "growth-function" : "size-steps";
}

/* What to do about it, for sites whose container is not recognised by name. */
static void knob(struct strbuf *sb, const struct site *s)
{
	if (s->k) {
		sb_adds(sb, s->k->knob);
		return;
	}
	const struct pclass *l = &s->c->classes[s->last];
	uint64_t final = l->max;
	bool pow2x16 = s->factor > 1.99 && s->factor < 2.01 && final % 16 == 0 &&
	               ((final / 16) & (final / 16 - 1)) == 0;
	if (pow2x16) {
		unsigned lg = 0;
		while ((16ull << lg) < final)
			lg++;
		sb_addf(
		    sb,
		    "a power-of-two array of 16-byte entries doubling at one line: uthash's bucket "
		    "array grows like this inside HASH_ADD (HASH_EXPAND_BUCKETS). Pre-size it: "
		    "#undef and redefine HASH_INITIAL_NUM_BUCKETS_LOG2 (and "
		    "HASH_INITIAL_NUM_BUCKETS) after #include <uthash.h>, to %u or more (it grew "
		    "to %llu buckets; one more doubling keeps it from expanding again). Otherwise "
		    "(an array doubled by realloc) allocate the final capacity once",
		    lg + 1, (unsigned long long)(final / 16));
		return;
	}
	sb_addf(sb,
	        "allocate the final size (%llu bytes) once: give the container its expected "
	        "capacity up front (a reserve / initial-size argument, or one malloc of n "
	        "elements instead of repeated realloc)",
	        (unsigned long long) final);
}

/* Appends text word-wrapped at `width` columns, continuation lines indented by `indent`; the
 * first line continues the current one (assumed to be `indent` wide). */
static void wrap(struct strbuf *sb, const char *text, int indent, int width)
{
	int col = indent;
	while (*text) {
		const char *sp = strchr(text, ' ');
		int len = sp ? (int)(sp - text) : (int)strlen(text);
		if (col > indent && col + 1 + len > width) {
			sb_addf(sb, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			sb_addch(sb, ' ');
			col++;
		}
		sb_add(sb, text, (size_t)len);
		col += len;
		text += len;
		while (*text == ' ')
			text++;
	}
	sb_addch(sb, '\n');
}

static int cmp_sites(const void *a, const void *b, void *arg)
{
	const struct site *x = a, *y = b;
	int cmp_sites_by = *(const int *)arg;
	uint64_t vx = cmp_sites_by ? x->bytes : x->objects,
	         vy = cmp_sites_by ? y->bytes : y->objects;
	if (vx != vy)
		return vx > vy ? -1 : 1;
	return x->c->id - y->c->id;
}

static void print_chain(struct strbuf *sb, struct profile *p, const struct pchain *c)
{
	/* From main down to the allocator; the C runtime's frames above main are left out. */
	size_t top = c->nframes;
	for (size_t k = 0; k < c->nframes; k++)
		if (c->frames[k]->function && strcmp(c->frames[k]->function, "main") == 0)
			top = k + 1;
	if (c->truncated)
		sb_adds(sb, "      ... (truncated: deeper than the profile's depth limit)\n");
	for (size_t k = top; k-- > 0;) {
		const struct pframe *f = c->frames[k];
		size_t at = sb->len;
		sb_adds(sb, "      ");
		frame_name(p, f, sb);
		if (f->inlined)
			sb_adds(sb, " (inlined)");
		if (f->file) {
			sb_pad(sb, at, 50);
			sb_addch(sb, ' ');
			frame_where(f, sb);
		}
		sb_addch(sb, '\n');
	}
	sb_adds(sb, "      -> allocator\n");
}

static void print_sizes(struct strbuf *sb, const struct pchain *c, size_t first, size_t last)
{
	for (size_t i = first; i <= last; i++) {
		const struct pclass *k = &c->classes[i];
		if (i > first)
			sb_adds(sb, ", ");
		if (i - first == 6 && last - first > 9) {
			sb_adds(sb, "..., ");
			i = last - 2;
			k = &c->classes[i];
		}
		if (k->min == k->max)
			format_value(sb, S_ALLOC_SPACE, k->min);
		else
			sb_addf(sb, "~%.0fB", class_size(k));
		if (k->objects > 1)
			sb_addf(sb, " x%llu", (unsigned long long)k->objects);
	}
}

void growth_mark(struct profile *p, const struct options *o, bool *marks)
{
	struct matcher mt;
	matcher_init(&mt, p, o);
	struct site s;
	for (size_t i = 0; i < p->nchains; i++)
		marks[i] = !p->chains[i].hidden && growth_site(&mt, &p->chains[i], &s);
	free(mt.bits);
}

int cmd_growth(struct options *o)
{
	struct profile p;
	load_profile(&p, o, 0);
	struct matcher mt;
	matcher_init(&mt, &p, o);
	struct site *sites = xcalloc(p.nchains + 1, sizeof(*sites));
	size_t n = 0;
	uint64_t gobj = 0, gbytes = 0, sobj = 0, sbytes = 0;
	for (size_t i = 0; i < p.nchains; i++) {
		if (p.chains[i].hidden || !growth_site(&mt, &p.chains[i], &sites[n]))
			continue;
		gobj += sites[n].objects;
		gbytes += sites[n].bytes;
		sobj += sites[n].save_objects;
		sbytes += sites[n].save_bytes;
		n++;
	}
	int by_bytes = o->sample == S_ALLOC_SPACE || o->sample == S_INUSE_SPACE;
	qsort_r(sites, n, sizeof(*sites), cmp_sites, &by_bytes);
	size_t shown = o->nodecount > 0 && (size_t)o->nodecount < n ? (size_t)o->nodecount : n;
	struct strbuf sb = STRBUF_INIT;
	if (o->json) {
		sb_addf(
		    &sb,
		    "{\"total_objects\":%llu,\"total_bytes\":%llu,\"growth_allocations\":%llu,"
		    "\"growth_bytes\":%llu,\"save_objects\":%llu,\"save_bytes\":%llu,\"sites\":[",
		    (unsigned long long)p.total[S_ALLOC_OBJECTS],
		    (unsigned long long)p.total[S_ALLOC_SPACE], (unsigned long long)gobj,
		    (unsigned long long)gbytes, (unsigned long long)sobj,
		    (unsigned long long)sbytes);
		for (size_t i = 0; i < shown; i++) {
			const struct site *s = &sites[i];
			const struct pchain *c = s->c;
			sb_addf(&sb,
			        "%s\n{\"chain\":%d,\"kind\":\"%s\",\"container\":", i ? "," : "",
			        c->id, kind(s));
			sb_json_str(&sb, s->k ? s->k->container : NULL);
			sb_adds(&sb, ",\"growth_function\":");
			sb_json_str(&sb, s->growth_fn);
			sb_addf(
			    &sb,
			    ",\"growth_allocations\":%llu,\"growth_bytes\":%llu,\"factor\":%.4f,"
			    "\"save_objects\":%llu,\"save_bytes\":%llu,\"final_size\":%llu,"
			    "\"sizes\":[",
			    (unsigned long long)s->objects, (unsigned long long)s->bytes, s->factor,
			    (unsigned long long)s->save_objects, (unsigned long long)s->save_bytes,
			    (unsigned long long)c->classes[s->last].max);
			for (size_t k = s->first; k <= s->last; k++)
				sb_addf(&sb, "%s%.0f", k > s->first ? "," : "",
				        class_size(&c->classes[k]));
			sb_adds(&sb, "],\"counts\":[");
			for (size_t k = s->first; k <= s->last; k++)
				sb_addf(&sb, "%s%llu", k > s->first ? "," : "",
				        (unsigned long long)c->classes[k].objects);
			sb_adds(&sb, "],\"knob\":");
			struct strbuf kb = STRBUF_INIT;
			knob(&kb, s);
			sb_json_str(&sb, sb_str(&kb));
			sb_release(&kb);
			sb_adds(&sb, ",\"frames\":");
			json_frames(&sb, &p, c);
			sb_addch(&sb, '}');
		}
		sb_adds(&sb, "]}\n");
	} else {
		text_header(&sb, &p, o);
		if (!n) {
			sb_adds(&sb, "No container growth found: no chain through a known growth "
			             "function, no call site whose sizes step up geometrically.\n");
		} else {
			sb_addf(&sb, "%zu growth site%s: %llu allocations (", n, n > 1 ? "s" : "",
			        (unsigned long long)gobj);
			format_value(&sb, S_ALLOC_SPACE, gbytes);
			sb_addf(&sb,
			        ") made while containers grew; sizing each once saves %llu "
			        "allocations (",
			        (unsigned long long)sobj);
			format_value(&sb, S_ALLOC_SPACE, sbytes);
			sb_adds(&sb, ")\n");
		}
		for (size_t i = 0; i < shown; i++) {
			const struct site *s = &sites[i];
			const struct pchain *c = s->c;
			sb_addf(&sb, "\n#%zu ", i + 1);
			if (s->k)
				sb_addf(&sb, "%s, ", s->k->container);
			if (s->growth_fn) {
				sb_adds(&sb, "through growth function ");
				frame_name(&p, s->growth_frame, &sb);
				sb_addch(&sb, '\n');
			}
			if (!s->growth_fn)
				sb_addf(&sb,
				        "sizes step up x%.2f at one call site (no growth function "
				        "named "
				        "on the stack)\n",
				        s->factor);
			sb_addf(&sb, "    %llu growth allocations, ",
			        (unsigned long long)s->objects);
			format_value(&sb, S_ALLOC_SPACE, s->bytes);
			sb_addf(&sb, " (%.2f%% of all allocations, %.2f%% of bytes)\n",
			        percent(s->objects, p.total[S_ALLOC_OBJECTS]),
			        percent(s->bytes, p.total[S_ALLOC_SPACE]));
			sb_adds(&sb, "    sizes: ");
			print_sizes(&sb, c, s->first, s->last);
			sb_addf(&sb, " (x%.2f per step)\n", s->factor);
			sb_addf(&sb,
			        "    sizing once at the final size saves %llu allocations and ",
			        (unsigned long long)s->save_objects);
			format_value(&sb, S_ALLOC_SPACE, s->save_bytes);
			struct strbuf kb = STRBUF_INIT;
			knob(&kb, s);
			sb_adds(&sb, "\n    how: ");
			wrap(&sb, sb_str(&kb), 9, 96);
			sb_release(&kb);
			sb_adds(&sb, "    chain (outermost first):\n");
			print_chain(&sb, &p, c);
		}
		if (shown < n)
			sb_addf(&sb, "\n(%zu more sites; --nodecount 0 shows all)\n", n - shown);
	}
	emit(o, &sb);
	sb_release(&sb);
	free(sites);
	free(mt.bits);
	profile_free(&p);
	return 0;
}
