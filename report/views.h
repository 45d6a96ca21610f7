/* views.h: the subcommands (each reads the one profile and prints text or JSON) and the
 * helpers they share: per-function tables, output to stdout or -o FILE, JSON frames. A view
 * never reads a dump file itself; exports only ask the symbolizer for what it has cached (and
 * for module states). */
#ifndef MP_VIEWS_H
#define MP_VIEWS_H

#include "options.h"
#include "profile.h"
#include "strbuf.h"

int cmd_top(struct options *o);
int cmd_tree(struct options *o);
int cmd_peek(struct options *o);
int cmd_growth(struct options *o);
int cmd_diff(struct options *o);
int cmd_merge(struct options *o);
int cmd_export(struct options *o);
int cmd_flame(struct options *o);

/* Per-function (or per-line with --lines) flat and cum values over the visible chains. */
struct node {
	const char *key;            /* interned display name ("fn" or "fn file:line") */
	const char *name;           /* display name of the function */
	const struct pframe *frame; /* a representative frame */
	uint64_t flat[NSAMPLES], cum[NSAMPLES];
	size_t last_chain; /* dedups cum within one chain (recursion) */
};

struct node_table {
	struct node *v;
	size_t n, alloc;
	size_t *index;
	size_t cap;
};

/* The node key of a frame: its name, plus " file:line" with --lines. */
const char *node_key(struct profile *p, const struct pframe *f, bool lines);
void nodes_build(struct node_table *t, struct profile *p, bool lines);
/* Index of the node with this key, creating it; */
size_t nodes_get(struct node_table *t, const char *key);
/* Looks a key up; SIZE_MAX when absent. */
size_t nodes_find(const struct node_table *t, const char *key);
/* Sorts by flat (then cum, then name) of sample s, largest first. */
void nodes_sort_flat(struct node_table *t, enum sample_index s);
void nodes_free(struct node_table *t);

/* Writes sb to -o FILE (truncated first) or stdout; dies on error. */
void emit(const struct options *o, const struct strbuf *sb);

/* Output written as it is made, for views whose output can be much larger than the profile
 * (peek of every function, the JSON export): out_flush writes sb and empties it once it holds
 * more than `keep` bytes. */
#define OUT_CHUNK (1u << 20)
struct output {
	FILE *f;
	const char *name;
};
void out_open(struct output *out, const struct options *o);
/* Dies (usage error) when output that is not text (WRITES says what: "merge writes a binary
 * dump") would go to a terminal: stdout, or -o naming one; HINT is the -o to give instead. */
void refuse_terminal(const struct options *o, const char *writes, const char *hint);
void out_flush(struct output *out, struct strbuf *sb, size_t keep);
void out_close(struct output *out, struct strbuf *sb);
/* Requires at least `min` and at most `max` operands (max < 0: any). */
void need_args(const struct options *o, int min, int max, const char *what);

/* JSON array of a chain's frames (schema of `export --format json`). */
void json_frames(struct strbuf *sb, const struct profile *p, const struct pchain *c);
/* JSON object of a chain (id, counts, sizes, frames). */
void json_chain(struct strbuf *sb, const struct profile *p, const struct pchain *c);
/* Text header line: exe, pids, totals. */
void text_header(struct strbuf *sb, const struct profile *p, const struct options *o);

/* The exports into sb (written out as they grow when out is not NULL). */
void export_json(struct strbuf *sb, struct profile *p, struct output *out);
void export_collapsed(struct strbuf *sb, struct profile *p, enum sample_index s, bool lines,
                      struct output *out);

/* Sets marks[i] for every chain i that `mapprof growth` reports (for the flame graph). */
void growth_mark(struct profile *p, const struct options *o, bool *marks);

/* Loads the profile of the operands (after skipping `skip` of them). */
void load_profile(struct profile *p, struct options *o, int skip);

#endif
