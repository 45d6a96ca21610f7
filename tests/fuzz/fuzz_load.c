/* fuzz_load.c: libFuzzer target for the dump reader (report/load.c) and what reads its result.
 * Any input must be either refused with an error message or accepted; an accepted dump then goes
 * through everything the views build from it (symbolization, with its modules' files mostly
 * missing; merging by symbols; sampled scaling; the JSON and collapsed exports; the growth
 * search; the per-function table and the call tree), without a memory error, undefined
 * behaviour, a leak or a hang. Built and run for a bounded time by tests/test_fuzz.py; the seed
 * corpus is tests/fuzz/corpus/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "profile.h"
#include "trie.h"
#include "views.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void views(struct dump *d)
{
	struct options o;
	memset(&o, 0, sizeof(o));
	o.quiet = true;
	o.fail_if_increase = -1;
	struct profile p;
	profile_init(&p, &o);
	profile_add_dump(&p, d); /* the profile owns the dump from here */
	profile_filter(&p, &o);
	uint64_t sum[NSAMPLES] = {0, 0, 0, 0};
	for (size_t i = 0; i < p.nchains; i++)
		for (int s = 0; s < NSAMPLES; s++)
			sum[s] += p.chains[i].v[s];
	if (memcmp(sum, p.total, sizeof(sum)) != 0)
		abort(); /* merging by symbols loses or invents nothing */

	struct strbuf sb = STRBUF_INIT;
	export_json(&sb, &p, NULL);
	sb_reset(&sb);
	export_collapsed(&sb, &p, S_ALLOC_SPACE, false, NULL);
	sb_reset(&sb);
	export_collapsed(&sb, &p, S_ALLOC_OBJECTS, true, NULL);
	sb_release(&sb);

	bool *marks = calloc(p.nchains + 1, sizeof(bool));
	if (marks)
		growth_mark(&p, &o, marks);
	free(marks);

	struct node_table t;
	nodes_build(&t, &p, true);
	nodes_sort_flat(&t, S_ALLOC_OBJECTS);
	nodes_free(&t);

	struct trie tr;
	trie_init(&tr);
	for (size_t i = 0; i < p.nchains; i++)
		if (p.chains[i].nframes)
			trie_add(&tr, &p, 0, &p.chains[i], p.chains[i].nframes - 1, false,
			         p.chains[i].v, NULL, 0);
	trie_sort(&tr, S_INUSE_SPACE);
	trie_free(&tr);
	profile_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);
	struct dump *d = calloc(1, sizeof(*d));
	if (!d) {
		free(buf);
		return 0;
	}
	char *err = NULL;
	if (dump_parse(d, buf, size, &err) != 0) {
		/* refused: there must be a message, and the dump is still freeable */
		if (!err || !err[0])
			abort();
		free(err);
		dump_free(d); /* frees buf too */
		return 0;
	}
	if (d->end.nchains != d->nchains)
		abort(); /* accepted dumps are consistent */
	d->path = strdup("fuzz.dump");
	views(d);
	return 0;
}
