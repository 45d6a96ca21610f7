/* view_top.c: `mapprof top`: flat, flat%, sum%, cum, cum% per function (or per source line with
 * --lines), largest flat first, like `pprof -top`. Reads only the profile. */
#include "usage.h"
#include "views.h"

int cmd_top(struct options *o)
{
	struct profile p;
	load_profile(&p, o, 0);
	struct node_table t;
	nodes_build(&t, &p, o->lines);
	nodes_sort_flat(&t, o->sample);
	enum sample_index s = o->sample;
	size_t n = o->nodecount > 0 && (size_t)o->nodecount < t.n ? (size_t)o->nodecount : t.n;
	/* nodes with no value are noise: pprof hides them too */
	while (n && !t.v[n - 1].flat[s] && !t.v[n - 1].cum[s])
		n--;
	uint64_t total = p.total[s], sum = 0;
	struct strbuf sb = STRBUF_INIT;
	if (o->json) {
		sb_addf(&sb, "{\"sample\":\"%s\",\"total\":%llu,\"shown\":%llu,\"rows\":[",
		        sample_names[s], (unsigned long long)total, (unsigned long long)p.shown[s]);
		for (size_t i = 0; i < n; i++) {
			const struct node *nd = &t.v[i];
			sb_adds(&sb, i ? ",{\"name\":" : "{\"name\":");
			sb_json_str(&sb, nd->name);
			sb_adds(&sb, ",\"file\":");
			sb_json_str(&sb, o->lines ? nd->frame->file : NULL);
			if (o->lines && nd->frame->file)
				sb_addf(&sb, ",\"line\":%d", nd->frame->line);
			else
				sb_adds(&sb, ",\"line\":null");
			sb_addf(&sb,
			        ",\"flat\":%llu,\"flat_pct\":%.4f,\"cum\":%llu,\"cum_pct\":%.4f}",
			        (unsigned long long)nd->flat[s], percent(nd->flat[s], total),
			        (unsigned long long)nd->cum[s], percent(nd->cum[s], total));
		}
		sb_adds(&sb, "]}\n");
	} else {
		text_header(&sb, &p, o);
		uint64_t shown = 0;
		for (size_t i = 0; i < n; i++)
			shown = sat_add(shown, t.v[i].flat[s]);
		sb_adds(&sb, "Showing nodes accounting for ");
		format_value(&sb, s, shown);
		sb_addf(&sb, ", %.2f%% of ", percent(shown, total));
		format_value(&sb, s, total);
		sb_addf(&sb, " %s total", sample_names[s]);
		if (n < t.n)
			sb_addf(&sb, "; dropped %zu nodes", t.n - n);
		sb_adds(&sb, "\n      flat  flat%   sum%        cum   cum%\n");
		for (size_t i = 0; i < n; i++) {
			const struct node *nd = &t.v[i];
			sum = sat_add(sum, nd->flat[s]);
			size_t at = sb.len;
			format_value(&sb, s, nd->flat[s]);
			char tmp[64];
			size_t w = sb.len - at;
			/* right-align the value in 10 columns */
			if (w < 10) {
				snprintf(tmp, sizeof(tmp), "%.*s", (int)w, sb.buf + at);
				sb.len = at;
				sb_addf(&sb, "%10s", tmp);
			}
			sb_addf(&sb, " %6.2f%% %6.2f%% ", percent(nd->flat[s], total),
			        percent(sum, total));
			at = sb.len;
			format_value(&sb, s, nd->cum[s]);
			w = sb.len - at;
			if (w < 10) {
				snprintf(tmp, sizeof(tmp), "%.*s", (int)w, sb.buf + at);
				sb.len = at;
				sb_addf(&sb, "%10s", tmp);
			}
			sb_addf(&sb, " %6.2f%%  %s\n", percent(nd->cum[s], total), nd->key);
		}
	}
	emit(o, &sb);
	sb_release(&sb);
	nodes_free(&t);
	profile_free(&p);
	return 0;
}
