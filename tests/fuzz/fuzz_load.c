/* fuzz_load.c: libFuzzer target for the dump reader (report/load.c). Any input must be either
 * accepted or refused with an error message, without a memory error, a leak or a hang. Built and
 * run for a bounded time by tests/test_fuzz.py; the seed corpus is tests/fuzz/corpus/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	} else if (d->end.nchains != d->nchains) {
		abort(); /* accepted dumps are consistent */
	}
	dump_free(d); /* frees buf too */
	return 0;
}
