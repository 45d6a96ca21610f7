/* view_growth.c: `mapprof growth`: finds the chains that lead into container growth without
 * being told where: (a) chains through known growth functions (GHashTable resize, libstdc++
 * _M_rehash, CPython dictresize, ...; --growth-fn adds more) and (b) chains whose requests step
 * up geometrically across size classes (uthash's bucket doubling, realloc doubling). It must
 * stay silent for a program that allocates the same amount without growth, count what sizing
 * once saves at the size its advice names, and offer no saving that cannot be had (a container
 * with no way to size it, a sampled dump that holds only the steps that were sampled). */
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
	bool presize; /* it can be sized ahead (false: no saving is offered) */
	/* Bytes of its grown array per element the array holds at most, so that the final size
	 * bounds the element count the how: line names (libstdc++'s buckets: one pointer each,
	 * at the default maximum load factor of 1); 0: not known. */
	unsigned bytes_per_element;
};

#define GHASH_KNOB                                                                                 \
	"GLib has no public way to pre-size a GHashTable (no constructor takes a size, and "       \
	"g_hash_table_remove_all shrinks it); if the keys are known up front, a sorted array "     \
	"sized once (g_array_sized_new + bsearch) or a map with a reserve avoids the growth"

static const struct known known[] = {
    {"^g_hash_table_(maybe_)?resize$", true, "GLib GHashTable", GHASH_KNOB, false, 0},
    {"^g_hash_table_(insert|replace|add)", false, "GLib GHashTable", GHASH_KNOB, false, 0},
    {"::_M_rehash(_aux)?([(]|$)", true, "libstdc++ std::unordered_map/set",
     "call reserve(n) (or construct with a bucket count) with the final number of elements "
     "before inserting: std::unordered_map::reserve",
     true, sizeof(void *)},
    {"_M_realloc_insert|_M_realloc_append|_M_default_append", true, "std::vector",
     "call reserve(n) with the final size before push_back/emplace_back", true, 0},
    {"^(dictresize|insertion_resize|dict_resize)$|_PyDict_.*Resize", true, "CPython dict",
     "Python code cannot reserve a dict, and a comprehension, dict(zip(...)) or "
     "dict.fromkeys(range(n)) grow it step by step all the same; dict.fromkeys(keys) of a set "
     "or dict and dict(d) or d.copy() of a dict are sized once (then assign the values: "
     "existing keys do not grow it); C extensions can use _PyDict_NewPresized(n)",
     true, 0},
    {"^(list_resize|_PyList_Resize)$", true, "CPython list",
     "build the list in one go ([x] * n, a comprehension) instead of appending", true, 0},
    {"^set_table_resize$", true, "CPython set",
     "Python code cannot reserve a set, and set(range(n)), a comprehension or add() grow it "
     "step by step all the same; set(s) or s.copy() of a set and set(d) of a dict are sized "
     "once",
     true, 0},
    {"^(S_)?hsplit$|^Perl_hv_ksplit$", true, "Perl hash",
     "pre-extend the hash: keys(%h) = N before filling it", true, 0},
    {"^luaH_resize$|^luaH_resizearray$", true, "Lua table",
     "create the table at its size: lua_createtable(L, narr, nrec) (table.create in Lua 5.5)", true,
     0},
    {"^kh_resize_", true, "khash", "call kh_resize(name, h, n) before inserting", true, 0},
    {"^(hashmap_)?rehash$", true, "hash map (git hashmap or similar)",
     "pass the final size when creating the map (git: hashmap_init(map, cmp, data, n))", true, 0},
    {"reserve_rehash", true, "Rust hashbrown HashMap/HashSet",
     "HashMap::with_capacity(n) or map.reserve(n)", true, 0},
    {"alloc::raw_vec::.*(grow_one|grow_amortized|grow_exact|finish_grow|do_reserve_and_handle)",
     true, "Rust Vec/String",
     "Vec::with_capacity(n) or String::with_capacity(n), or v.reserve(n) before pushing", true, 0},
    {"basic_string.*::_M_mutate", true, "std::string",
     "call reserve(n) with the final length before appending", true, 0},
    {"raw_hash_set<.*(resize|Resize)", true, "abseil flat/node hash map",
     "call reserve(n) before inserting", true, 0},
    {"boost::unordered.*(rehash|reserve_for_insert)", true, "boost::unordered",
     "call reserve(n) before inserting", true, 0},
    {"QHash.*rehash|QHashPrivate.*rehash", true, "Qt QHash", "call QHash::reserve(n)", true, 0},
    {"^g_(array|ptr_array|byte_array)_maybe_expand$|^g_string_maybe_expand$", true,
     "GLib GArray/GPtrArray/GString",
     "create it at its size: g_array_sized_new, g_ptr_array_sized_new, g_string_sized_new", true,
     0},
};

#define NKNOWN (sizeof(known) / sizeof(known[0]))

struct site {
	const struct pchain *c;
	const struct known *k; /* container recognised, or NULL */
	const char *growth_fn; /* the growth function on the chain, or NULL */
	const struct pframe *growth_frame;
	size_t first, last;      /* run of size classes [first, last] */
	uint64_t objects, bytes; /* growth allocations: the whole run */
	uint64_t samples;        /* the run's allocations as recorded (sampled dumps) */
	double factor;
	/* Sizing once, at the size the how: line recommends: the allocations that leaves (the
	 * run's last class: one per container) and their bytes. What that saves is the run minus
	 * these; bytes can go the other way (uthash: one array twice the final size is more than
	 * every step's array together), so they are kept as a magnitude and a sign. */
	bool presize;        /* false: the container cannot be sized ahead, nothing is offered */
	bool twice;          /* the recommended size is twice the final one (uthash_like) */
	uint64_t containers; /* how many containers the run is: see growth_site */
	uint64_t once_objects, once_bytes;
	uint64_t save_objects, save_bytes;
	bool costs; /* sizing once allocates save_bytes more than the growth did */
	/* The bytes of the arrays that a larger one replaced: the run's bytes less each
	 * container's final array. What growing cost beyond the sizes the containers ended at
	 * (allocated, filled, copied and freed), whatever the knob: the default order. */
	uint64_t outgrown;
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

/* The final array's size: the run's largest request. */
static uint64_t final_size(const struct site *s)
{
	return s->c->classes[s->last].max;
}

/* The HASH_INITIAL_NUM_BUCKETS_LOG2 the how: line recommends: buckets of 16 bytes for twice
 * the final array. */
static unsigned uthash_log2(const struct site *s)
{
	unsigned lg = 0;
	while (lg < 60 && (16ull << lg) < final_size(s))
		lg++;
	return lg + 1;
}

/* A power-of-two array of 16-byte entries doubling at one line, in a container not recognised
 * by name: uthash's bucket array (HASH_EXPAND_BUCKETS), whose pre-sizing knob must be set to
 * twice the final size (knob), or an array doubled by realloc. */
static bool uthash_like(const struct site *s)
{
	uint64_t final = final_size(s);
	return !s->k && s->factor > 1.99 && s->factor < 2.01 && final % 16 == 0 &&
	       ((final / 16) & (final / 16 - 1)) == 0;
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
		s->objects = sat_add(s->objects, c->classes[i].objects);
		s->bytes = sat_add(s->bytes, c->classes[i].bytes);
		s->samples = sat_add(s->samples, c->classes[i].samples);
	}
	const struct pclass *lastc = &c->classes[s->last];
	double lo = class_size(&c->classes[s->first]), hi = class_size(lastc);
	s->factor = pow(hi / lo, 1.0 / (double)(s->last - s->first));
	s->presize = !s->k || s->k->presize;
	s->twice = uthash_like(s);
	/* One chain can be many containers: every dict a module import fills grows through the
	 * same dictresize. Each starts at the run's first size and stops at its own last: the
	 * containers that stopped at a size are the ones that reached it less those that went on
	 * (208B x49, 400B x27, ...: 22 stopped at 208B). Sized once, each makes one allocation at
	 * its own final size; a single container (every size once) makes the run's last. */
	uint64_t once_bytes = 0;
	for (size_t i = s->first; i <= s->last; i++) {
		uint64_t here = c->classes[i].objects,
		         next = i < s->last ? c->classes[i + 1].objects : 0;
		uint64_t ended = here > next ? here - next : 0;
		s->containers = sat_add(s->containers, ended);
		/* their bytes: this class's bytes in proportion */
		uint64_t b =
		    here ? (uint64_t)((double)c->classes[i].bytes * (double)ended / (double)here)
		         : 0;
		once_bytes = sat_add(once_bytes, b);
	}
	if (!s->containers)
		s->containers = 1;
	s->outgrown = s->bytes > once_bytes ? s->bytes - once_bytes : 0;
	s->once_objects = s->containers;
	s->once_bytes = s->twice && once_bytes <= UINT64_MAX / 2 ? 2 * once_bytes : once_bytes;
	s->save_objects = s->objects > s->containers ? s->objects - s->containers : 0;
	s->costs = s->once_bytes > s->bytes;
	s->save_bytes = s->costs ? s->once_bytes - s->bytes : s->bytes - s->once_bytes;
	return true;
}

static const char *kind(const struct site *s)
{
	return s->growth_fn ? "growth-function" : "size-steps";
}

/* What to do about it, for sites whose container is not recognised by name. */
static void knob(struct strbuf *sb, const struct site *s, bool sampled)
{
	if (s->k) {
		sb_adds(sb, s->k->knob);
		unsigned per = s->k->bytes_per_element;
		if (per && s->last > s->first && !sampled) {
			/* It grew past the capacity of the step before and ended within the last's.
			 */
			uint64_t last = (uint64_t)class_size(&s->c->classes[s->last]) / per,
			         before = (uint64_t)class_size(&s->c->classes[s->last - 1]) / per;
			sb_addf(sb,
			        "; its last table had %llu buckets and the one before %llu, so it ",
			        (unsigned long long)last, (unsigned long long)before);
			if (s->containers > 1)
				sb_addf(sb, "(the largest of its %llu) ",
				        (unsigned long long)s->containers);
			sb_addf(sb, "ended with %llu to %llu elements",
			        (unsigned long long)before + 1, (unsigned long long)last);
		}
		return;
	}
	uint64_t final = final_size(s);
	if (s->twice) {
		sb_addf(
		    sb,
		    "a power-of-two array of 16-byte entries doubling at one line: uthash's bucket "
		    "array grows like this inside HASH_ADD (HASH_EXPAND_BUCKETS). Pre-size it: "
		    "#undef and redefine HASH_INITIAL_NUM_BUCKETS_LOG2 (and "
		    "HASH_INITIAL_NUM_BUCKETS) after #include <uthash.h>, to %u or more (it grew "
		    "to %llu buckets; one more doubling keeps it from expanding again). Otherwise "
		    "(an array doubled by realloc) allocate the final capacity once",
		    uthash_log2(s), (unsigned long long)(final / 16));
		return;
	}
	sb_addf(sb,
	        "allocate the final size (%llu bytes) once: give the container its expected "
	        "capacity up front (a reserve / initial-size argument, or one malloc of n "
	        "elements instead of repeated realloc)",
	        (unsigned long long) final);
}

/* Appends text word-wrapped at `width` columns, continuation lines indented by `indent`; the
 * first line continues the current one, which is `col` wide. Ends the line. */
static void wrap(struct strbuf *sb, const char *text, int col, int indent, int width)
{
	int start = col;
	while (*text) {
		const char *sp = strchr(text, ' ');
		int len = sp ? (int)(sp - text) : (int)strlen(text);
		if (col > start && col + 1 + len > width) {
			sb_addf(sb, "\n%*s", indent, "");
			col = start = indent;
		} else if (col > start) {
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

/* "saves N allocations and 1.5kB", or "... but allocates 512B more" when sizing once takes
 * more bytes than the growth did. */
static void add_saving(struct strbuf *sb, uint64_t objects, uint64_t bytes, bool costs)
{
	sb_addf(sb, "saves %llu allocation%s %s ", (unsigned long long)objects,
	        objects == 1 ? "" : "s", costs ? "but allocates" : "and");
	format_value(sb, S_ALLOC_SPACE, bytes);
	if (costs)
		sb_adds(sb, " more");
}

/* What sizing this site once would do, for the text: the saving at the size the how: line
 * recommends, or why there is none to offer. */
static void site_saving(struct strbuf *sb, const struct site *s, bool sampled)
{
	struct strbuf t = STRBUF_INIT;
	if (sampled) {
		sb_adds(&t, "what sizing once would save is not estimated: the steps that were not "
		            "sampled are unknown");
	} else if (!s->presize) {
		sb_addf(&t,
		        "no saving to offer: %s cannot be sized ahead (see how:); growing cost "
		        "%llu allocations and ",
		        s->k->container, (unsigned long long)s->save_objects);
		format_value(&t, S_ALLOC_SPACE,
		             s->bytes > s->once_bytes ? s->bytes - s->once_bytes : 0);
		sb_adds(&t,
		        s->containers > 1 ? " before their final sizes" : " before its final size");
	} else if (s->twice) {
		unsigned lg = uthash_log2(s);
		sb_addf(&t, "sizing once at the recommended %llu buckets (", 1ull << lg);
		format_value(&t, S_ALLOC_SPACE, 16ull << lg);
		sb_adds(&t, ", twice the final array; see how:) ");
		add_saving(&t, s->save_objects, s->save_bytes, s->costs);
		if (s->costs)
			sb_addf(&t,
			        ": that one array is larger than the %llu growth arrays together",
			        (unsigned long long)s->objects);
		/* the other reading of the same sizes: an array doubled by realloc, whose final
		 * size is enough */
		uint64_t last = s->c->classes[s->last].bytes;
		sb_adds(&t, ". An array doubled by realloc, allocated once at its final ");
		format_value(&t, S_ALLOC_SPACE, final_size(s));
		sb_adds(&t, ", ");
		add_saving(&t, s->save_objects, s->bytes - last, false);
	} else if (s->containers > 1) {
		sb_addf(
		    &t,
		    "about %llu containers grew here (the counts of each size above): sizing each "
		    "once at its own final size ",
		    (unsigned long long)s->containers);
		add_saving(&t, s->save_objects, s->save_bytes, s->costs);
	} else {
		sb_adds(&t, "sizing once at the final size ");
		add_saving(&t, s->save_objects, s->save_bytes, s->costs);
	}
	sb_adds(sb, "    ");
	wrap(sb, sb_str(&t), 4, 6, 96);
	sb_release(&t);
}

/* The order of the sites: by default the bytes outgrown, so that one large container (a
 * 200,000-entry dict: 15 steps, 10MB outgrown) comes before the many small ones that grow a
 * step or two through one chain (every dict an import fills), which lead by count; by growth
 * allocations or bytes when --sample asks for objects or space. */
enum order { BY_OUTGROWN, BY_OBJECTS, BY_BYTES };

static const char *const order_names[] = {"outgrown_bytes", "growth_allocations", "growth_bytes"};

static uint64_t order_key(const struct site *s, enum order by, int rank)
{
	static const int keys[][3] = {
	    [BY_OUTGROWN] = {BY_OUTGROWN, BY_OBJECTS, BY_BYTES},
	    [BY_OBJECTS] = {BY_OBJECTS, BY_BYTES, BY_OUTGROWN},
	    [BY_BYTES] = {BY_BYTES, BY_OBJECTS, BY_OUTGROWN},
	};
	switch (keys[by][rank]) {
	case BY_OBJECTS:
		return s->objects;
	case BY_BYTES:
		return s->bytes;
	default:
		return s->outgrown;
	}
}

static int cmp_sites(const void *a, const void *b, void *arg)
{
	const struct site *x = a, *y = b;
	enum order by = *(const enum order *)arg;
	for (int rank = 0; rank < 3; rank++) {
		uint64_t vx = order_key(x, by, rank), vy = order_key(y, by, rank);
		if (vx != vy)
			return vx > vy ? -1 : 1;
	}
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

/* The run's sizes, with each one's count when above 1 (an estimate, "~x7", when sampled). */
static void print_sizes(struct strbuf *sb, const struct pchain *c, size_t first, size_t last,
                        bool sampled)
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
			sb_addf(sb, " %sx%llu", sampled ? "~" : "", (unsigned long long)k->objects);
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

/* Whether the profile's values are scaled from samples, and the note that says what that does
 * to growth: a growth step is in the dump only if it was sampled. */
static bool sampled_note(struct strbuf *sb, const struct profile *p)
{
	size_t nsampled = 0;
	uint64_t period = 0;
	bool one_period = true;
	for (size_t i = 0; i < p->ndumps; i++) {
		uint64_t sp = dump_sampled(p->dumps[i]);
		if (!sp)
			continue;
		one_period = one_period && (!nsampled || sp == period);
		period = sp;
		nsampled++;
	}
	if (!nsampled || !sb)
		return nsampled != 0;
	struct strbuf t = STRBUF_INIT;
	if (p->ndumps == 1)
		sb_adds(&t, "Sampled dump");
	else
		sb_addf(&t, "%zu of the %zu dumps sampled", nsampled, p->ndumps);
	sb_adds(&t, ": a growth step is recorded only when it was sampled");
	if (one_period) {
		sb_adds(&t, " (one sample per ");
		format_value(&t, S_ALLOC_SPACE, period);
		sb_adds(&t, " allocated, on average)");
	}
	sb_adds(&t, ", so steps and whole sites can be missing, small ones most often. The "
	            "allocations and bytes below are estimates");
	if (p->samples)
		sb_addf(&t, " from %llu samples", (unsigned long long)p->samples);
	sb_adds(&t,
	        ", not counts, and what sizing once would save is not estimated. Record without "
	        "MAPPROF_SAMPLE for exact growth figures.");
	wrap(sb, sb_str(&t), 0, 0, 96);
	sb_release(&t);
	return true;
}

/* A signed JSON number from a magnitude and a sign. */
static void json_signed(struct strbuf *sb, uint64_t v, bool negative)
{
	sb_addf(sb, negative && v ? "-%llu" : "%llu", (unsigned long long)v);
}

int cmd_growth(struct options *o)
{
	struct profile p;
	load_profile(&p, o, 0);
	bool sampled = sampled_note(NULL, &p);
	struct matcher mt;
	matcher_init(&mt, &p, o);
	struct site *sites = xcalloc(p.nchains + 1, sizeof(*sites));
	size_t n = 0, nfixed = 0;
	uint64_t gobj = 0, gbytes = 0, gout = 0, sobj = 0, saved = 0, cost = 0;
	const char *fixed_container = NULL; /* of the sites that cannot be sized ahead */
	bool fixed_one = true;
	for (size_t i = 0; i < p.nchains; i++) {
		struct site *s = &sites[n];
		if (p.chains[i].hidden || !growth_site(&mt, &p.chains[i], s))
			continue;
		gobj = sat_add(gobj, s->objects);
		gbytes = sat_add(gbytes, s->bytes);
		gout = sat_add(gout, s->outgrown);
		if (!s->presize) {
			fixed_one = fixed_one && (!nfixed || fixed_container == s->k->container);
			fixed_container = s->k->container;
			nfixed++;
		} else {
			sobj = sat_add(sobj, s->save_objects);
			if (s->costs)
				cost = sat_add(cost, s->save_bytes);
			else
				saved = sat_add(saved, s->save_bytes);
		}
		n++;
	}
	bool costs = cost > saved;
	uint64_t net = costs ? cost - saved : saved - cost;
	enum order by = !o->sample_set                                             ? BY_OUTGROWN
	                : o->sample == S_ALLOC_SPACE || o->sample == S_INUSE_SPACE ? BY_BYTES
	                                                                           : BY_OBJECTS;
	qsort_r(sites, n, sizeof(*sites), cmp_sites, &by);
	size_t shown = o->nodecount > 0 && (size_t)o->nodecount < n ? (size_t)o->nodecount : n;
	struct strbuf sb = STRBUF_INIT;
	if (o->json) {
		/* The savings are null where none can be had: on a sampled dump (not estimated)
		 * and at a site whose container cannot be sized ahead. */
		sb_addf(
		    &sb,
		    "{\"total_objects\":%llu,\"total_bytes\":%llu,\"sampled\":%s,\"samples\":%llu,"
		    "\"growth_allocations\":%llu,\"growth_bytes\":%llu,\"outgrown_bytes\":%llu,"
		    "\"order\":\"%s\",\"save_objects\":",
		    (unsigned long long)p.total[S_ALLOC_OBJECTS],
		    (unsigned long long)p.total[S_ALLOC_SPACE], sampled ? "true" : "false",
		    (unsigned long long)p.samples, (unsigned long long)gobj,
		    (unsigned long long)gbytes, (unsigned long long)gout, order_names[by]);
		if (sampled) {
			sb_adds(&sb, "null,\"save_bytes\":null");
		} else {
			sb_addf(&sb, "%llu,\"save_bytes\":", (unsigned long long)sobj);
			json_signed(&sb, net, costs);
		}
		sb_addf(&sb, ",\"sites_not_presizable\":%zu,\"sites\":[", nfixed);
		for (size_t i = 0; i < shown; i++) {
			const struct site *s = &sites[i];
			const struct pchain *c = s->c;
			sb_addf(&sb,
			        "%s\n{\"chain\":%d,\"kind\":\"%s\",\"container\":", i ? "," : "",
			        c->id, kind(s));
			sb_json_str(&sb, s->k ? s->k->container : NULL);
			sb_adds(&sb, ",\"growth_function\":");
			sb_json_str(&sb, s->growth_fn);
			sb_addf(&sb,
			        ",\"growth_allocations\":%llu,\"growth_bytes\":%llu,"
			        "\"outgrown_bytes\":%llu,\"factor\":%.4f,\"presizable\":%s,"
			        "\"containers\":%llu,",
			        (unsigned long long)s->objects, (unsigned long long)s->bytes,
			        (unsigned long long)s->outgrown, s->factor,
			        s->presize ? "true" : "false", (unsigned long long)s->containers);
			if (s->presize && !sampled) {
				sb_addf(&sb,
				        "\"sized_once_bytes\":%llu,\"save_objects\":%llu,\"save_"
				        "bytes\":",
				        (unsigned long long)s->once_bytes,
				        (unsigned long long)s->save_objects);
				json_signed(&sb, s->save_bytes, s->costs);
			} else {
				sb_adds(&sb, "\"sized_once_bytes\":null,\"save_objects\":null,"
				             "\"save_bytes\":null");
			}
			if (sampled)
				sb_addf(&sb, ",\"samples\":%llu", (unsigned long long)s->samples);
			else
				sb_adds(&sb, ",\"samples\":null");
			sb_addf(&sb, ",\"final_size\":%llu,\"sizes\":[",
			        (unsigned long long)final_size(s));
			for (size_t k = s->first; k <= s->last; k++)
				sb_addf(&sb, "%s%.0f", k > s->first ? "," : "",
				        class_size(&c->classes[k]));
			sb_adds(&sb, "],\"counts\":[");
			for (size_t k = s->first; k <= s->last; k++)
				sb_addf(&sb, "%s%llu", k > s->first ? "," : "",
				        (unsigned long long)c->classes[k].objects);
			sb_adds(&sb, "],\"knob\":");
			struct strbuf kb = STRBUF_INIT;
			knob(&kb, s, sampled);
			sb_json_str(&sb, sb_str(&kb));
			sb_release(&kb);
			sb_adds(&sb, ",\"frames\":");
			json_frames(&sb, &p, c);
			sb_addch(&sb, '}');
		}
		sb_adds(&sb, "]}\n");
	} else {
		text_header(&sb, &p, o);
		sampled_note(&sb, &p);
		struct strbuf t = STRBUF_INIT;
		if (!n && sampled) {
			sb_addf(&t,
			        "No container growth seen in the %llu samples: no sampled chain "
			        "through "
			        "a known growth function, no call site whose sampled sizes step up "
			        "geometrically. Unsampled growth may be there all the same.",
			        (unsigned long long)p.samples);
		} else if (!n) {
			sb_adds(&t, "No container growth found: no chain through a known growth "
			            "function, no call site whose sizes step up geometrically.");
		} else {
			sb_addf(&t, "%zu growth site%s%s: %s%llu allocations (", n,
			        n > 1 ? "s" : "", sampled ? " seen in the samples" : "",
			        sampled ? "about " : "", (unsigned long long)gobj);
			format_value(&t, S_ALLOC_SPACE, gbytes);
			sb_adds(&t, ") made while containers grew");
			if (sampled) {
				sb_adds(&t, " (estimates)");
			} else if (!nfixed) {
				sb_adds(&t, "; sizing each once ");
				add_saving(&t, sobj, net, costs);
			} else {
				/* "GLib GHashTable", or the containers at each site */
				const char *what = fixed_one ? fixed_container : "their containers";
				if (nfixed == n) {
					sb_addf(&t,
					        "; %s cannot be sized ahead, so growth offers no "
					        "saving (see how:)",
					        what);
				} else {
					sb_adds(&t, "; sizing once where it can be done ");
					add_saving(&t, sobj, net, costs);
					sb_addf(
					    &t,
					    " (%zu site%s); the other %zu (%s) cannot be sized "
					    "ahead, so their growth offers no saving (see how:)",
					    n - nfixed, n - nfixed > 1 ? "s" : "", nfixed, what);
				}
			}
		}
		/* one line, however long, as the first line of every view's report */
		sb_addf(&sb, "%s\n", sb_str(&t));
		sb_release(&t);
		if (n > 1) {
			struct strbuf t2 = STRBUF_INIT;
			if (by == BY_OUTGROWN)
				sb_adds(&t2,
				        "Sites in order of the bytes outgrown: the arrays their "
				        "containers allocated and then replaced by larger ones "
				        "(--sample alloc_objects orders them by growth "
				        "allocations, --sample alloc_space by growth bytes).");
			else
				sb_addf(&t2, "Sites in order of growth %s (--sample %s).",
				        by == BY_BYTES ? "bytes" : "allocations",
				        sample_names[o->sample]);
			wrap(&sb, sb_str(&t2), 0, 0, 96);
			sb_release(&t2);
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
			sb_addf(&sb, "    %s%llu growth allocations, ", sampled ? "about " : "",
			        (unsigned long long)s->objects);
			format_value(&sb, S_ALLOC_SPACE, s->bytes);
			sb_addf(&sb, " (%.2f%% of all allocations, %.2f%% of bytes",
			        percent(s->objects, p.total[S_ALLOC_OBJECTS]),
			        percent(s->bytes, p.total[S_ALLOC_SPACE]));
			if (sampled)
				sb_addf(&sb, "; estimated from %llu sample%s",
				        (unsigned long long)s->samples, s->samples == 1 ? "" : "s");
			sb_adds(&sb, "), ");
			format_value(&sb, S_ALLOC_SPACE, s->outgrown);
			sb_adds(&sb, " of it outgrown\n");
			sb_adds(&sb, sampled ? "    sizes seen: " : "    sizes: ");
			print_sizes(&sb, c, s->first, s->last, sampled);
			sb_addf(&sb, " (x%.2f per step)\n", s->factor);
			site_saving(&sb, s, sampled);
			struct strbuf kb = STRBUF_INIT;
			knob(&kb, s, sampled);
			sb_adds(&sb, "    how: ");
			wrap(&sb, sb_str(&kb), 9, 9, 96);
			sb_release(&kb);
			sb_adds(&sb, "    chain (outermost first):\n");
			print_chain(&sb, &p, c);
		}
		if (shown < n)
			sb_addf(&sb, "\n(%zu more site%s; --nodecount 0 shows all)\n", n - shown,
			        n - shown > 1 ? "s" : "");
	}
	emit(o, &sb);
	sb_release(&sb);
	free(sites);
	free(mt.bits);
	profile_free(&p);
	return 0;
}
