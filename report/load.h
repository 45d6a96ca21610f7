/* load.h: reads and validates one dump file (format: include/mapprof_dump.h) into memory.
 * A dump that is not exactly valid is refused with one line naming the file, what is wrong and
 * the offset; the loader never trusts a length before checking it against the bytes that remain. */
#ifndef MP_LOAD_H
#define MP_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mapprof_dump.h"

struct dump_module {
	struct mp_module m;
	const struct mp_range *ranges; /* m.nranges, inside the dump's buffer */
	const uint8_t *buildid;        /* m.buildid_len bytes */
	char *path;                    /* NUL-terminated copy */
};

struct dump_chain {
	struct mp_chain c;
	const struct mp_frame *frames;       /* version 1: c.nframes frames; else NULL */
	const uint32_t *frame_ids;           /* version 2: c.nframes indices into dump.frames */
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
	const struct mp_frame *frames; /* version 2: the FRAMES record */
	size_t nframes;
	bool have_frames;
	struct mp_end end;
	/* A merged dump's SOURCES: the process images it came from (none: the dump is its own). */
	struct dump_source {
		uint64_t pid, ppid, start_ns, sample_period;
		uint32_t sequence;
		char *exe;
	} * sources;
	size_t nsources;
	unsigned char *data; /* the whole file */
	size_t size;
};

/* Frame k (innermost first) of chain c, at most info.max_depth of them. */
static inline const struct mp_frame *dump_frame(const struct dump *d, const struct dump_chain *c,
                                                uint32_t k)
{
	return c->frame_ids ? &d->frames[c->frame_ids[k]] : &c->frames[k];
}

/* The process images a dump holds: itself, or a merged dump's SOURCES (dump_image(d, 0 ..
 * dump_nimages(d) - 1)). */
static inline size_t dump_nimages(const struct dump *d)
{
	return d->nsources ? d->nsources : 1;
}
struct dump_source dump_image(const struct dump *d, size_t i);

/* The sampling period a dump's values come from: its own, or for a merged dump (written
 * already scaled, sample_period 0) the largest of its sources'. 0: exact counts. */
uint64_t dump_sampled(const struct dump *d);

/* Parses a dump from memory; on failure returns -1 and puts "what is wrong (at offset N)" in
 * *err (malloc'd). `data` must stay valid and is owned by the dump on success. */
int dump_parse(struct dump *d, unsigned char *data, size_t size, char **err);
/* Reads and parses PATH; dies with "mapprof: PATH: what is wrong" (exit 2) when it cannot. */
struct dump *dump_load(const char *path);
void dump_free(struct dump *d);
bool add_u64(uint64_t *a, uint64_t b); /* *a += b; false when it overflows */
/* The path of the dump read from the file with this device and inode, or NULL: an output
 * must never overwrite its input. */
const char *dump_loaded_from(dev_t dev, ino_t ino);

#endif
