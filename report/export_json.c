/* export_json.c: `mapprof export --format json`: the whole symbolized profile as one JSON
 * document (schema in docs/cli.md; the tests read it). It prints what the profile holds and
 * never recomputes or filters counts on its own (--focus/--ignore apply as in every view). */
#include <string.h>

#include "usage.h"
#include "views.h"

static void json_dump(struct strbuf *sb, const struct dump *d)
{
	const struct mp_info *in = &d->info;
	sb_adds(sb, "{\"path\":");
	sb_json_str(sb, d->path);
	sb_addf(sb, ",\"pid\":%llu,\"ppid\":%llu,\"exe\":", (unsigned long long)in->pid,
	        (unsigned long long)in->ppid);
	sb_json_str(sb, d->exe);
	sb_adds(sb, ",\"cmdline\":[");
	for (size_t i = 0; i < d->argc; i++) {
		if (i)
			sb_addch(sb, ',');
		sb_json_str(sb, d->argv[i]);
	}
	sb_addf(sb,
	        "],\"start_ns\":%llu,\"end_ns\":%llu,\"max_depth\":%u,\"sample_period\":%llu,"
	        "\"not_recorded\":%llu,\"threads\":%llu,\"forked\":%s,\"frees_tracked\":%s,"
	        "\"sequence\":%u",
	        (unsigned long long)in->start_ns, (unsigned long long)in->end_ns, in->max_depth,
	        (unsigned long long)in->sample_period, (unsigned long long)in->not_recorded,
	        (unsigned long long)in->threads, in->flags & MP_INFO_FORKED ? "true" : "false",
	        in->flags & MP_INFO_FREES_TRACKED ? "true" : "false", in->sequence);
	if (d->nsources) {
		/* a merged dump: the process images it came from */
		sb_adds(sb, ",\"merged_from\":[");
		for (size_t k = 0; k < d->nsources; k++) {
			const struct dump_source *src = &d->sources[k];
			sb_addf(sb,
			        "%s{\"pid\":%llu,\"ppid\":%llu,\"start_ns\":%llu,\"sequence\":%u,"
			        "\"sample_period\":%llu,\"exe\":",
			        k ? "," : "", (unsigned long long)src->pid,
			        (unsigned long long)src->ppid, (unsigned long long)src->start_ns,
			        src->sequence, (unsigned long long)src->sample_period);
			sb_json_str(sb, src->exe);
			sb_addch(sb, '}');
		}
		sb_addch(sb, ']');
	}
	sb_addch(sb, '}');
}

void export_json(struct strbuf *sb, struct profile *p, struct output *out)
{
	sb_adds(sb, "{\"format\":\"mapprof-profile\",\"version\":1,\"dumps\":[");
	for (size_t i = 0; i < p->ndumps; i++) {
		if (i)
			sb_addch(sb, ',');
		json_dump(sb, p->dumps[i]);
	}
	sb_adds(sb, "],\"sample_types\":[");
	for (int s = 0; s < profile_nsamples(p); s++)
		sb_addf(sb, "%s\"%s\"", s ? "," : "", sample_names[s]);
	sb_adds(sb, "],\"totals\":{");
	for (int s = 0; s < profile_nsamples(p); s++)
		sb_addf(sb, "%s\"%s\":%llu", s ? "," : "", sample_names[s],
		        (unsigned long long)p->shown[s]);
	sb_adds(sb, "},\"modules\":[");
	for (size_t i = 0; i < p->sym.nmods; i++) {
		const struct sym_module *m = &p->sym.mods[i];
		enum sym_state st = sym_module_state(&p->sym, (int)i);
		sb_addf(sb, "%s{\"id\":%zu,\"path\":", i ? "," : "", i);
		sb_json_str(sb, m->path);
		sb_adds(sb, ",\"build_id\":");
		if (m->buildid_len) {
			sb_addch(sb, '"');
			for (size_t k = 0; k < m->buildid_len; k++)
				sb_addf(sb, "%02x", m->buildid[k]);
			sb_addch(sb, '"');
		} else {
			sb_adds(sb, "null");
		}
		sb_addf(sb, ",\"load_bias\":%llu,\"unloaded\":%s,\"symbols\":\"%s\"}",
		        (unsigned long long)m->load_bias, m->unloaded ? "true" : "false",
		        sym_state_name(st));
	}
	sb_adds(sb, "],\"chains\":[");
	int first = 1;
	for (size_t i = 0; i < p->nchains; i++) {
		const struct pchain *c = &p->chains[i];
		if (c->hidden)
			continue;
		if (!first)
			sb_addch(sb, ',');
		first = 0;
		sb_addch(sb, '\n');
		json_chain(sb, p, c);
		if (out)
			out_flush(out, sb, OUT_CHUNK);
	}
	sb_adds(sb, "]}\n");
}

void export_pprof(struct profile *p, const struct options *o);

int cmd_export(struct options *o)
{
	const char *fmt = o->format ? o->format : "json";
	if (strcmp(fmt, "json") && strcmp(fmt, "collapsed") && strcmp(fmt, "pprof"))
		die_usage("export: unknown format '%s' (json, collapsed or pprof)", fmt);
	/* --json is export's own format: with another, one of the two would be ignored */
	if (o->json && strcmp(fmt, "json"))
		die_usage("export: --json and --format %s ask for two formats; give one", fmt);
	struct profile p;
	load_profile(&p, o, 0);
	struct strbuf sb = STRBUF_INIT;
	if (strcmp(fmt, "json") == 0 || strcmp(fmt, "collapsed") == 0) {
		/* written as it is made: the JSON of a large profile is several times its size */
		struct output out;
		out_open(&out, o);
		if (strcmp(fmt, "json") == 0)
			export_json(&sb, &p, &out);
		else
			export_collapsed(&sb, &p, o->sample, o->lines, &out);
		out_close(&out, &sb);
	} else {
		export_pprof(&p, o);
	}
	sb_release(&sb);
	profile_free(&p);
	return 0;
}
