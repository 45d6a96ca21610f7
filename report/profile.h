/* profile.h: the one symbolized in-memory profile every view and exporter reads. Dumps are
 * loaded, symbolized and merged by symbols (chains that symbolize identically are one chain, and
 * so are chains of one call path that two builds inlined differently); sampled dumps are scaled
 * to unbiased estimates here and nowhere else. Views never re-read a dump file and never
 * symbolize on their own. */
#ifndef MP_PROFILE_H
#define MP_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "load.h"
#include "options.h"
#include "strbuf.h"
#include "symbolize.h"

/* One symbolic frame of one return address (an address expands to its inlined frames, innermost
 * first). Frames are shared: every chain through the same address points to the same pframes,
 * so a frame's name, its --lines key and what a regex made of it are worked out once. */
struct pframe {
	int module;      /* symbolizer module index, -1 when outside every module */
	int line;        /* (here, so that the struct has no hole: there can be millions) */
	uint64_t offset; /* module offset (return address) */
	const char *function, *file; /* interned; NULL when unknown */
	bool inlined;
	uint32_t id;      /* index in profile.frames */
	uint32_t sym;     /* frames with equal sym are the same symbol (frame_same) */
	uint32_t site;    /* frames with equal site are the same source position, inlined or
	                   * not: what a chain's identity is made of (profile.c, chain_match) */
	const char *name; /* interned display name (frame_name) */
};

struct pclass {
	uint32_t log2;
	uint64_t objects, bytes; /* scaled when the dump was sampled */
	uint64_t min, max;
	uint64_t samples; /* the objects as recorded, before any scaling */
};

struct pchain {
	int id;                  /* index in profile.chains */
	int path;                /* id of the first chain of the same call path: this one, or one
	                          * kept apart because the same build inlined a frame on one and
	                          * called it on the other (diff compares call paths) */
	uint64_t v[NSAMPLES];    /* values, scaled when sampled */
	uint64_t base[NSAMPLES]; /* diff: the BASE profile's values (v holds NEW) */
	bool truncated;
	bool hidden;    /* dropped by --focus/--ignore */
	size_t nframes; /* innermost first, inlined frames expanded */
	const struct pframe **frames;
	size_t nclasses; /* log2 increasing */
	struct pclass *classes;
	uint64_t hash;
};

struct addr_entry;
struct sym_class;

/* Frames in classes of equal frames, by one comparison (open addressing). (symbolize.c has a
 * struct sym_table of its own: the ELF symbols.) */
struct frame_classes {
	struct sym_class *v;
	size_t n, cap;
};

struct profile {
	struct symbolizer sym;
	struct dump **dumps;
	size_t ndumps;
	struct pchain *chains;
	size_t nchains, chains_alloc;
	size_t *index; /* open addressing over chains by hash; SIZE_MAX empty */
	size_t index_cap;
	/* every distinct frame, each allocated once (pointers stay valid) */
	struct pframe **frames;
	size_t nframes, frames_alloc;
	const char **line_keys; /* by frame id: its --lines node key, made on first use */
	size_t nline_keys;
	/* (module, offset) -> the frames of that address, so each address is symbolized and
	 * named once however many chains pass through it */
	struct addr_entry *addrs;
	size_t naddrs, addrs_cap;
	struct pframe **addr_frames; /* the frames of every address, back to back */
	size_t naddr_frames, addr_frames_alloc;
	/* symbol classes: (function, file, line, inlined), or (module, offset) when unknown */
	struct frame_classes syms;
	/* site classes: the same without inlined, each named by the sym of its first frame (a
	 * frame without a function is its own site). Whether a frame was inlined is a property of
	 * the build, not of the call path, so chains match across builds by these. */
	struct frame_classes sites;
	uint64_t total[NSAMPLES]; /* over all chains */
	uint64_t shown[NSAMPLES]; /* over chains kept by --focus/--ignore */
	uint64_t base_total[NSAMPLES], base_shown[NSAMPLES]; /* diff: the BASE side */
	size_t raw_frames;  /* return addresses read from the dumps (for --stats) */
	uint64_t samples;   /* allocations recorded by sampled dumps, before scaling */
	bool loading_base;  /* profile_add_dump adds to the BASE side */
	bool frees_tracked; /* every dump tracked frees */
	bool full_names;    /* --full-names: no C++ name simplification in views */
	bool stats;         /* --stats: timings and counts to stderr */
};

/* Marks frames that RE matches (frame_matches) in a per-frame table, for filters that test
 * many chains: out[frame id] is 1 on a match. The caller frees the table. */
unsigned char *frames_matching(const struct profile *p, const regex_t *re);

/* An empty profile with the options' settings (names, warnings, debug directories). */
void profile_init(struct profile *p, const struct options *o);
/* Loads every path (dying on a bad one), symbolizes and merges; applies --focus/--ignore. */
void profile_load(struct profile *p, const struct options *o, char **paths, int npaths);
/* Loads BASE into the base side and NEW into v, for diff views. */
void profile_load_diff(struct profile *p, const struct options *o, const char *base,
                       const char *now);
/* Adds one more loaded dump (owned by the profile from now on); to the BASE side of a diff
 * when p->loading_base is set. */
void profile_add_dump(struct profile *p, struct dump *d);
/* Marks chains hidden per --focus/--ignore and computes shown[]. */
void profile_filter(struct profile *p, const struct options *o);
void profile_free(struct profile *p);

/* The sample types the profile has values for: all four, or only the alloc
 * ones when a dump did not track frees (they come first). */
static inline int profile_nsamples(const struct profile *p)
{
	return p->frees_tracked ? NSAMPLES : S_INUSE_OBJECTS;
}

/* Appends a frame's display name: the function (C++ names shortened as pprof does, unless
 * --full-names), or "module+0xOFF" when unknown (the same as f->name). */
void frame_name(const struct profile *p, const struct pframe *f, struct strbuf *sb);
/* The same, never shortened (regexes match this one, then the short one). */
void frame_full_name(const struct profile *p, const struct pframe *f, struct strbuf *sb);
/* "file:line" of a frame, or "" when unknown. */
void frame_where(const struct pframe *f, struct strbuf *sb);
/* The basename of a module path (for module+offset names). */
const char *module_base(const struct profile *p, int module);
/* True when two frames are the same symbol (function, file:line, inlined, or module+offset). */
bool frame_same(const struct pframe *a, const struct pframe *b);
/* True when RE matches the frame's full or display name, or its file:line. */
bool frame_matches(const struct profile *p, const struct pframe *f, const regex_t *re);

/* a + b, or UINT64_MAX when that does not fit: the profile's values are counts of up to 64 bits,
 * and a sum of them that does not fit (a merge of huge dumps, scaled estimates) stays at the
 * largest value rather than wrapping around. */
static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Human-readable value of a sample: "1.5MB" for space, "12345" for objects. */
void format_value(struct strbuf *sb, enum sample_index s, uint64_t v);
/* Percentage of v in total, 0 when total is 0. */
double percent(uint64_t v, uint64_t total);

#endif
