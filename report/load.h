/* load.h: reads and validates one dump file (format: include/mapprof_dump.h) into memory.
 * A dump that is not exactly valid is refused with one line naming the file, what is wrong and
 * the offset; the loader never trusts a length before checking it against the bytes that remain. */
#ifndef MP_LOAD_H
#define MP_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include "mapprof_dump.h"

struct dump_module {
	struct mp_module m;
	const struct mp_range *ranges; /* m.nranges, inside the dump's buffer */
	const uint8_t *buildid;        /* m.buildid_len bytes */
	char *path;                    /* NUL-terminated copy */
};

struct dump_chain {
	struct mp_chain c;
	const struct mp_frame *frames;       /* c.nframes, at most info.max_depth */
	const struct mp_size_class *classes; /* c.nclasses, log2 strictly increasing */
};

struct dump {
	char *path; /* as named on the command line */
	struct mp_info info;
	char *exe;   /* "" when the dump has no EXE record */
	char **argv; /* argc strings, pointing into args_buf */
	char *args_buf;
	size_t argc;
	struct dump_module *modules; /* indexed by module id */
	size_t nmodules;
	struct dump_chain *chains;
	size_t nchains;
	struct mp_end end;
	unsigned char *data; /* the whole file */
	size_t size;
};

/* Parses a dump from memory; on failure returns -1 and puts "what is wrong (at offset N)" in
 * *err (malloc'd). `data` must stay valid and is owned by the dump on success. */
int dump_parse(struct dump *d, unsigned char *data, size_t size, char **err);
/* Reads and parses PATH; dies with "mapprof: PATH: what is wrong" (exit 2) when it cannot. */
struct dump *dump_load(const char *path);
void dump_free(struct dump *d);

#endif
