/* view_tree.c: `mapprof tree`: the call tree from the outermost callers down to the functions
 * that call the allocator, cumulative value and share per node, largest first; children under
 * --nodefraction of the total (0.1% by default), and past the first -n N, fold into one
 * "(N more)" line (in the JSON too).
 * Reads only the profile. */
#include "trie.h"
#include "usage.h"

int cmd_tree(struct options *o)
{
	struct profile p;
	load_profile(&p, o, 0);
	struct trie t;
	trie_init(&t);
	for (size_t i = 0; i < p.nchains; i++) {
		const struct pchain *c = &p.chains[i];
		if (!c->hidden && c->nframes)
			trie_add(&t, &p, 0, c, c->nframes - 1, o->lines, c->v, NULL, 0);
	}
	trie_sort(&t, o->sample);
	enum sample_index s = o->sample;
	double fraction = o->nodefraction >= 0 ? o->nodefraction : 0.001;
	uint64_t min_value = (uint64_t)((double)p.total[s] * fraction);
	struct strbuf sb = STRBUF_INIT;
	struct output out;
	out_open(&out, o);
	if (o->json) {
		sb_addf(&sb, "{\"sample\":\"%s\",\"total\":%llu,\"tree\":", sample_names[s],
		        (unsigned long long)p.total[s]);
		trie_json(&sb, &t, 0, s, o->nodecount, min_value, &out);
		sb_adds(&sb, "}\n");
	} else {
		text_header(&sb, &p, o);
		if (fraction > 0)
			sb_addf(&sb,
			        "Call tree of %s (callers above callees; nodes under %g%% folded, "
			        "--nodefraction 0 shows them)\n",
			        sample_names[s], fraction * 100);
		else
			sb_addf(&sb, "Call tree of %s (callers above callees)\n", sample_names[s]);
		sb_adds(&sb, "       cum   cum%\n");
		trie_print(&sb, &t, 0, 0, s, p.total[s], o->nodecount, min_value, &out);
	}
	out_close(&out, &sb);
	sb_release(&sb);
	trie_free(&t);
	profile_free(&p);
	return 0;
}
