/* export_collapsed.c: `mapprof export --format collapsed`: Brendan Gregg's folded stacks, one
 * line per chain, outermost frame first, frames joined by ';', the chosen sample's value last.
 * Chains with a zero value are left out; ';' in a name becomes ':' so lines stay parseable. An
 * inlined frame ends in "_[i]", as stackcollapse-perf.pl --inline writes it (flamegraph.pl
 * colours such frames apart). With --lines a frame is "function file:line", as in the views. */
#include <string.h>

#include "views.h"

static void add_name(struct strbuf *sb, const struct profile *p, const struct pframe *f, bool lines)
{
	size_t at = sb->len;
	frame_name(p, f, sb);
	if (lines && f->file) {
		sb_addch(sb, ' ');
		frame_where(f, sb);
	}
	for (size_t i = at; i < sb->len; i++)
		if (sb->buf[i] == ';' || sb->buf[i] == '\n')
			sb->buf[i] = ':';
	if (f->inlined)
		sb_adds(sb, "_[i]");
}

void export_collapsed(struct strbuf *sb, struct profile *p, enum sample_index s, bool lines,
                      struct output *out)
{
	for (size_t i = 0; i < p->nchains; i++) {
		const struct pchain *c = &p->chains[i];
		if (c->hidden || !c->v[s])
			continue;
		if (c->truncated)
			sb_adds(sb, "(truncated);");
		for (size_t k = c->nframes; k-- > 0;) {
			add_name(sb, p, c->frames[k], lines);
			if (k)
				sb_addch(sb, ';');
		}
		if (!c->nframes)
			sb_adds(sb, "[unknown]");
		sb_addf(sb, " %llu\n", (unsigned long long)c->v[s]);
		if (out)
			out_flush(out, sb, OUT_CHUNK);
	}
}
