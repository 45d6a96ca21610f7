/* load.c: reads a dump file and checks every length, count, id and total before any view sees
 * it (see load.h). It must never read past the buffer, loop without consuming bytes, or
 * allocate more than a small multiple of the file size, whatever the file holds. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "load.h"
#include "strbuf.h"
#include "usage.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the dump reader assumes a little-endian host (the format is little-endian)"
#endif

_Static_assert(sizeof(struct mp_file_header) == 16, "file header");
_Static_assert(sizeof(struct mp_record_header) == 16, "record header");
_Static_assert(sizeof(struct mp_info) == 72, "info");
_Static_assert(sizeof(struct mp_module) == 32, "module");
_Static_assert(sizeof(struct mp_range) == 32, "range");
_Static_assert(sizeof(struct mp_frame) == 16, "frame");
_Static_assert(sizeof(struct mp_chain) == 48, "chain");
_Static_assert(sizeof(struct mp_size_class) == 40, "size class");
_Static_assert(sizeof(struct mp_end) == 48, "end");
_Static_assert(sizeof(struct mp_source) == 40, "source");

struct parser {
	struct dump *d;
	const unsigned char *p;
	size_t size;
	char *err;
	uint32_t version;
	size_t modules_alloc, chains_alloc;
};

__attribute__((format(printf, 3, 4))) static int fail(struct parser *ps, uint64_t off,
                                                      const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sb_vaddf(&sb, fmt, ap);
	va_end(ap);
	sb_addf(&sb, " (at offset %llu)", (unsigned long long)off);
	ps->err = sb_detach(&sb);
	return -1;
}

static const char *tag_name(uint32_t tag)
{
	switch (tag) {
	case MP_TAG_INFO:
		return "INFO";
	case MP_TAG_EXE:
		return "EXE";
	case MP_TAG_CMDLINE:
		return "CMDLINE";
	case MP_TAG_MODULE:
		return "MODULE";
	case MP_TAG_CHAIN:
		return "CHAIN";
	case MP_TAG_FRAMES:
		return "FRAMES";
	case MP_TAG_SOURCES:
		return "SOURCES";
	case MP_TAG_END:
		return "END";
	}
	return "unknown";
}

/* a + b, failing on overflow of the 64-bit sums the END record holds. */
bool add_u64(uint64_t *a, uint64_t b)
{
	return !__builtin_add_overflow(*a, b, a);
}

/* SOURCES: entries that fill the record exactly, each a header, a path without NUL and padding. */
static int parse_sources(struct parser *ps, const unsigned char *pl, uint64_t len, uint64_t off)
{
	struct dump *d = ps->d;
	if (d->sources)
		return fail(ps, off, "second SOURCES record");
	size_t cap = 0;
	for (uint64_t at = 0; at < len;) {
		struct mp_source e;
		if (len - at < sizeof(e))
			return fail(ps, off,
			            "SOURCES entry %zu cut short (%llu bytes left, needs %zu)",
			            d->nsources, (unsigned long long)(len - at), sizeof(e));
		memcpy(&e, pl + at, sizeof(e));
		at += sizeof(e);
		uint64_t padded = ((uint64_t)e.exe_len + 7) & ~(uint64_t)7;
		if (padded > len - at)
			return fail(ps, off,
			            "SOURCES entry %zu: path of %u bytes past the record's end",
			            d->nsources, e.exe_len);
		if (memchr(pl + at, '\0', e.exe_len))
			return fail(ps, off, "SOURCES entry %zu: path holds a NUL byte",
			            d->nsources);
		if (d->nsources == cap) {
			cap = cap ? cap * 2 : 8;
			d->sources = xreallocarray(d->sources, cap, sizeof(*d->sources));
		}
		d->sources[d->nsources++] = (struct dump_source){
		    e.pid,           e.ppid,     e.start_ns,
		    e.sample_period, e.sequence, xstrndup((const char *)pl + at, e.exe_len)};
		at += padded;
	}
	if (!d->nsources)
		return fail(ps, off, "empty SOURCES record");
	return 0;
}

static int parse_module(struct parser *ps, const unsigned char *pl, uint64_t len, uint64_t off)
{
	struct dump *d = ps->d;
	struct mp_module m;
	if (len < sizeof(m))
		return fail(ps, off, "MODULE record too short (%llu bytes, needs %zu)",
		            (unsigned long long)len, sizeof(m));
	memcpy(&m, pl, sizeof(m));
	uint64_t want =
	    sizeof(m) + (uint64_t)m.nranges * sizeof(struct mp_range) + m.buildid_len + m.path_len;
	if (want != len)
		return fail(ps, off,
		            "MODULE record of %llu bytes does not match its %u ranges, %u-byte "
		            "build-id and %u-byte path",
		            (unsigned long long)len, m.nranges, m.buildid_len, m.path_len);
	/* ids are 0..n-1 and every MODULE record takes at least 48 bytes, so an id past
	 * size / 48 cannot be valid: refusing it keeps memory bounded by the file size */
	if (m.id >= ps->size / 48)
		return fail(ps, off, "module id %u is out of range", m.id);
	/* Modules are stored by id; ids are 0..n-1 and checked against END later. */
	if (m.id >= ps->modules_alloc) {
		size_t old = ps->modules_alloc;
		ALLOC_GROW(d->modules, (size_t)m.id + 1, ps->modules_alloc);
		memset(d->modules + old, 0, (ps->modules_alloc - old) * sizeof(*d->modules));
	}
	struct dump_module *dm = &d->modules[m.id];
	if (dm->path)
		return fail(ps, off, "module id %u appears twice", m.id);
	dm->m = m;
	dm->ranges = (const struct mp_range *)(pl + sizeof(m));
	dm->buildid = pl + sizeof(m) + (size_t)m.nranges * sizeof(struct mp_range);
	const char *path = (const char *)dm->buildid + m.buildid_len;
	if (memchr(path, '\0', m.path_len))
		return fail(ps, off, "module %u's path holds a NUL byte", m.id);
	dm->path = xstrndup(path, m.path_len);
	if (m.id + 1 > d->nmodules)
		d->nmodules = m.id + 1;
	return 0;
}

static int parse_chain(struct parser *ps, const unsigned char *pl, uint64_t len, uint64_t off)
{
	struct dump *d = ps->d;
	struct mp_chain c;
	if (len < sizeof(c))
		return fail(ps, off, "CHAIN record too short (%llu bytes, needs %zu)",
		            (unsigned long long)len, sizeof(c));
	memcpy(&c, pl, sizeof(c));
	bool v1 = ps->version == 1;
	if (!v1 && !d->have_frames)
		return fail(ps, off, "CHAIN record %u before the FRAMES record", c.id);
	/* Version 2: 4-byte frame indices, padded to 8 bytes. */
	uint64_t frames_len = v1 ? (uint64_t)c.nframes * sizeof(struct mp_frame)
	                         : ((uint64_t)c.nframes * sizeof(uint32_t) + 7) / 8 * 8;
	uint64_t want =
	    sizeof(c) + frames_len + (uint64_t)c.nclasses * sizeof(struct mp_size_class);
	if (want != len)
		return fail(
		    ps, off,
		    "CHAIN record %u of %llu bytes does not match its %u frames and %u size "
		    "classes",
		    c.id, (unsigned long long)len, c.nframes, c.nclasses);
	if (c.nframes > d->info.max_depth)
		return fail(ps, off, "chain %u has %u frames, more than the dump's depth limit %u",
		            c.id, c.nframes, d->info.max_depth);
	if (c.inuse_objects > c.alloc_objects || c.inuse_space > c.alloc_space)
		return fail(ps, off, "chain %u has more in use than it allocated", c.id);
	if (!c.alloc_objects && c.alloc_space)
		return fail(ps, off, "chain %u has %llu bytes in no object", c.id,
		            (unsigned long long)c.alloc_space);
	const struct mp_frame *frames = v1 ? (const struct mp_frame *)(pl + sizeof(c)) : NULL;
	const uint32_t *ids = v1 ? NULL : (const uint32_t *)(pl + sizeof(c));
	for (uint32_t k = 0; ids && k < c.nframes; k++)
		if (ids[k] >= d->nframes)
			return fail(
			    ps, off + 16 + sizeof(c) + (uint64_t)k * sizeof(*ids),
			    "chain %u frame %u is frame %u, past the %zu of the FRAMES record",
			    c.id, k, ids[k], d->nframes);
	const struct mp_size_class *cls =
	    (const struct mp_size_class *)(pl + sizeof(c) + (size_t)frames_len);
	uint64_t objects = 0, bytes = 0;
	for (uint32_t i = 0; i < c.nclasses; i++) {
		const struct mp_size_class *k = &cls[i];
		uint64_t coff = off + 16 + (uint64_t)((const unsigned char *)k - pl);
		if (k->log2 >= MP_SIZE_CLASSES || (i && k->log2 <= cls[i - 1].log2))
			return fail(ps, coff, "chain %u: size class %u is out of order or range",
			            c.id, k->log2);
		uint64_t lo = k->log2 ? 1ull << (k->log2 - 1) : 0;
		uint64_t hi = k->log2 == 0 ? 0 : k->log2 == 64 ? UINT64_MAX : (1ull << k->log2) - 1;
		if (!k->objects || k->min_size > k->max_size || k->min_size < lo ||
		    k->max_size > hi)
			return fail(ps, coff,
			            "chain %u: size class %u holds sizes %llu..%llu outside it",
			            c.id, k->log2, (unsigned long long)k->min_size,
			            (unsigned long long)k->max_size);
		if (!add_u64(&objects, k->objects) || !add_u64(&bytes, k->bytes))
			return fail(ps, coff, "chain %u: size class totals overflow", c.id);
	}
	if (c.nclasses && (objects != c.alloc_objects || bytes != c.alloc_space))
		return fail(
		    ps, off,
		    "chain %u: size classes sum to %llu objects, %llu bytes, the chain says "
		    "%llu, %llu",
		    c.id, (unsigned long long)objects, (unsigned long long)bytes,
		    (unsigned long long)c.alloc_objects, (unsigned long long)c.alloc_space);
	ALLOC_GROW(d->chains, d->nchains + 1, ps->chains_alloc);
	struct dump_chain *dc = &d->chains[d->nchains++];
	dc->c = c;
	dc->frames = frames;
	dc->frame_ids = ids;
	dc->classes = cls;
	return 0;
}

static int parse_cmdline(struct parser *ps, const unsigned char *pl, uint64_t len)
{
	struct dump *d = ps->d;
	size_t n = 0;
	for (uint64_t i = 0; i < len; i++)
		n += pl[i] == '\0';
	if (len && pl[len - 1] != '\0')
		n++;
	/* one copy of the payload (NUL-terminated at the end) that argv points into: a pointer
	 * per argument, never an allocation per argument */
	d->args_buf = xmalloc((size_t)len + 1);
	memcpy(d->args_buf, pl, (size_t)len);
	d->args_buf[len] = '\0';
	d->argv = xcalloc(n + 1, sizeof(char *));
	size_t start = 0;
	for (uint64_t i = 0; i <= len && d->argc < n; i++) {
		if (i == len || pl[i] == '\0') {
			d->argv[d->argc++] = d->args_buf + start;
			start = (size_t)i + 1;
		}
	}
	return 0;
}

static int check_end(struct parser *ps, uint64_t off)
{
	struct dump *d = ps->d;
	const struct mp_end *e = &d->end;
	if (e->nchains != d->nchains)
		return fail(ps, off, "END says %llu chains, the file holds %zu",
		            (unsigned long long)e->nchains, d->nchains);
	if (e->nmodules != d->nmodules)
		return fail(ps, off, "END says %llu modules, the file holds %zu",
		            (unsigned long long)e->nmodules, d->nmodules);
	for (size_t i = 0; i < d->nmodules; i++)
		if (!d->modules[i].path)
			return fail(ps, off, "module id %zu is missing", i);
	uint64_t sum[4] = {0, 0, 0, 0};
	for (size_t i = 0; i < d->nchains; i++) {
		const struct dump_chain *c = &d->chains[i];
		if (!add_u64(&sum[0], c->c.alloc_objects) || !add_u64(&sum[1], c->c.alloc_space) ||
		    !add_u64(&sum[2], c->c.inuse_objects) || !add_u64(&sum[3], c->c.inuse_space))
			return fail(ps, off, "chain totals overflow");
		for (uint32_t j = 0; c->frames && j < c->c.nframes; j++) {
			uint32_t m = c->frames[j].module;
			if (m != MP_MODULE_NONE && m >= d->nmodules)
				return fail(ps, off,
				            "chain %u frame %u names module %u, which is not "
				            "in the file",
				            c->c.id, j, m);
		}
	}
	for (size_t i = 0; i < d->nframes; i++) {
		uint32_t m = d->frames[i].module;
		if (m != MP_MODULE_NONE && m >= d->nmodules)
			return fail(ps, off, "frame %zu names module %u, which is not in the file",
			            i, m);
	}
	const char *what[4] = {"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
	uint64_t endv[4] = {e->alloc_objects, e->alloc_space, e->inuse_objects, e->inuse_space};
	for (int k = 0; k < 4; k++)
		if (endv[k] != sum[k])
			return fail(ps, off,
			            "END total %s is %llu but the chains sum to %llu (corrupt or "
			            "spliced file)",
			            what[k], (unsigned long long)endv[k],
			            (unsigned long long)sum[k]);
	return 0;
}

static int parse(struct parser *ps)
{
	struct dump *d = ps->d;
	const unsigned char *p = ps->p;
	size_t size = ps->size;
	if (size == 0)
		return fail(ps, 0, "file is empty, not a mapprof dump");
	if (size < sizeof(struct mp_file_header) || memcmp(p, MP_MAGIC, MP_MAGIC_LEN) != 0) {
		if (size >= MP_MAGIC_LEN && memcmp(p, MP_MAGIC, MP_MAGIC_LEN) == 0)
			return fail(ps, size, "truncated file header (%zu bytes)", size);
		if (size < MP_MAGIC_LEN && memcmp(p, MP_MAGIC, size) == 0)
			return fail(ps, size, "truncated file header (%zu bytes)", size);
		return fail(ps, 0, "not a mapprof dump (no MAPPROF magic)");
	}
	struct mp_file_header h;
	memcpy(&h, p, sizeof(h));
	if (h.version != MP_VERSION && h.version != 1)
		return fail(ps, 8,
		            "dump format version %u is not supported (this mapprof reads versions "
		            "1 to %u)",
		            h.version, MP_VERSION);
	ps->version = h.version;
	if (h.header_size < sizeof(h) || h.header_size % 8 || h.header_size > size)
		return fail(ps, 12, "bad header size %u", h.header_size);
	size_t off = h.header_size;
	bool have_info = false, have_end = false;
	while (off < size) {
		if (have_end)
			return fail(ps, off, "data after the END record");
		if (size - off < sizeof(struct mp_record_header))
			return fail(ps, off, "truncated record header (%zu bytes left)",
			            size - off);
		struct mp_record_header rh;
		memcpy(&rh, p + off, sizeof(rh));
		/* what the header alone shows first: a stream is read only up to it */
		if (!have_info && rh.tag != MP_TAG_INFO)
			return fail(ps, off, "first record is %s (tag %#x), not INFO",
			            tag_name(rh.tag), rh.tag);
		if (have_info && rh.tag == MP_TAG_INFO)
			return fail(ps, off, "second INFO record");
		size_t left = size - off - sizeof(rh);
		if (rh.length > left)
			return fail(ps, off,
			            "%s record (tag %#x) claims %llu bytes but only %zu remain "
			            "(truncated file?)",
			            tag_name(rh.tag), rh.tag, (unsigned long long)rh.length, left);
		const unsigned char *pl = p + off + sizeof(rh);
		uint64_t len = rh.length;
		int r = 0;
		switch (rh.tag) {
		case MP_TAG_INFO:
			if (len < sizeof(d->info))
				return fail(ps, off,
				            "INFO record too short (%llu bytes, needs %zu)",
				            (unsigned long long)len, sizeof(d->info));
			memcpy(&d->info, pl, sizeof(d->info));
			have_info = true;
			break;
		case MP_TAG_EXE:
			if (memchr(pl, '\0', len))
				return fail(ps, off, "EXE path holds a NUL byte");
			free(d->exe);
			d->exe = xstrndup((const char *)pl, len);
			break;
		case MP_TAG_CMDLINE:
			if (d->argv)
				return fail(ps, off, "second CMDLINE record");
			r = parse_cmdline(ps, pl, len);
			break;
		case MP_TAG_MODULE:
			r = parse_module(ps, pl, len, off);
			break;
		case MP_TAG_SOURCES:
			r = parse_sources(ps, pl, len, off);
			break;
		case MP_TAG_CHAIN:
			r = parse_chain(ps, pl, len, off);
			break;
		case MP_TAG_FRAMES:
			if (ps->version == 1)
				break; /* not a version 1 record: skipped, as unknown tags are */
			if (d->have_frames)
				return fail(ps, off, "second FRAMES record");
			if (len % sizeof(struct mp_frame))
				return fail(ps, off,
				            "FRAMES record of %llu bytes is not a whole number of "
				            "%zu-byte frames",
				            (unsigned long long)len, sizeof(struct mp_frame));
			d->frames = (const struct mp_frame *)pl;
			d->nframes = len / sizeof(struct mp_frame);
			d->have_frames = true;
			break;
		case MP_TAG_END:
			if (len < sizeof(d->end))
				return fail(ps, off, "END record too short (%llu bytes, needs %zu)",
				            (unsigned long long)len, sizeof(d->end));
			memcpy(&d->end, pl, sizeof(d->end));
			have_end = true;
			r = check_end(ps, off);
			break;
		default:
			break; /* a newer writer's record: skipped, as the format asks */
		}
		if (r)
			return r;
		uint64_t padded = (len + 7) & ~(uint64_t)7;
		if (padded > left)
			padded = left; /* the last record's padding may be cut by nothing else */
		off += sizeof(rh) + (size_t)padded;
	}
	if (!have_info)
		return fail(ps, off, "no INFO record");
	if (!have_end)
		return fail(ps, size, "truncated: no END record (the file ends early)");
	return 0;
}

int dump_parse(struct dump *d, unsigned char *data, size_t size, char **err)
{
	struct parser ps = {.d = d, .p = data, .size = size};
	d->data = data;
	d->size = size;
	if (parse(&ps)) {
		*err = ps.err;
		return -1;
	}
	if (!d->exe)
		d->exe = xstrdup("");
	if (!d->argv)
		d->argv = xcalloc(1, sizeof(char *));
	return 0;
}

/* The files dumps were read from, so that an output never overwrites one (out_open). */
struct loaded_file {
	dev_t dev;
	ino_t ino;
	char *path;
};
static struct loaded_file *loaded;
static size_t nloaded, loaded_alloc;

const char *dump_loaded_from(dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < nloaded; i++)
		if (loaded[i].dev == dev && loaded[i].ino == ino)
			return loaded[i].path;
	return NULL;
}

/* Reading a dump: the file named may be anything (/dev/zero, a FIFO that never ends, a
 * 100 GB image), so bytes are read as the format asks for them and reading stops at the first
 * header that cannot begin a dump; the parser then says what is wrong with what was read.
 * Memory stays within twice the bytes read, which a regular file's size bounds. */
struct reader {
	const char *path;
	int fd;
	bool regular;  /* a regular file: its size bounds what any record can claim */
	uint64_t size; /* that size */
	unsigned char *buf;
	size_t len, alloc;
	bool eof;
	/* A gzip'd dump: bytes come from inflating what is read from fd into gz_in (gz_len
	 * bytes, of room for gz_alloc), a buffer's worth at a time, as the records ask for
	 * them: a pipe that keeps sending gzip'd data is read no further than a plain one. */
	z_stream *gz;
	unsigned char *gz_in;
	size_t gz_len, gz_alloc;
	bool gz_in_eof;      /* fd has no more compressed bytes */
	bool gz_member_done; /* a gzip member ended with no input left: the next starts anew */
};

/* Reads more compressed bytes, once all before are inflated; false at the input's end. */
static bool gz_read(struct reader *r)
{
	z_stream *z = r->gz;
	if (z->avail_in || r->gz_in_eof)
		return z->avail_in != 0;
	for (;;) {
		ssize_t n = read(r->fd, r->gz_in, r->gz_alloc);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: read error: %s", r->path, strerror(errno));
		r->gz_len = (size_t)n;
		z->next_in = r->gz_in;
		z->avail_in = (unsigned)n;
		r->gz_in_eof = n == 0;
		return n != 0;
	}
}

/* Inflates into r->buf, as far as there is room and there is input (reading it when READ):
 * every gzip member in turn, as gunzip does. */
static void inflate_more(struct reader *r, bool read)
{
	z_stream *z = r->gz;
	if (!z->avail_in && (!read || !gz_read(r))) {
		if (r->gz_in_eof && r->gz_member_done)
			r->eof = true;
		else if (r->gz_in_eof)
			die("%s: truncated gzip data (%zu bytes inflated)", r->path, r->len);
		return;
	}
	if (r->gz_member_done) {
		inflateReset(z); /* the next member */
		r->gz_member_done = false;
	}
	z->next_out = r->buf + r->len;
	size_t room = r->alloc - r->len;
	z->avail_out = room > UINT_MAX ? UINT_MAX : (unsigned)room;
	unsigned before = z->avail_out;
	int rc = inflate(z, Z_NO_FLUSH);
	r->len += before - z->avail_out;
	if (rc == Z_STREAM_END) {
		/* the end of the input, or another member: the next call reads on if need be
		 * (not now: a writer may keep the pipe open after the dump) */
		r->gz_member_done = true;
		if (!z->avail_in && r->gz_in_eof)
			r->eof = true;
		return;
	}
	if (rc != Z_OK && rc != Z_BUF_ERROR)
		die("%s: corrupt gzip data: %s", r->path, z->msg ? z->msg : "inflate failed");
}

/* Doubles the room for bytes read (a regular file's size bounds the first allocation). */
static void grow(struct reader *r)
{
	size_t n = r->alloc ? r->alloc * 2 : 1 << 16;
	if (!r->alloc && r->regular && !r->gz && r->size + 8 < n)
		n = (size_t)r->size + 8;
	r->buf = xreallocarray(r->buf, n, 1);
	r->alloc = n;
}

/* Reads until len >= want or the end of the input; true when len >= want. Grows the buffer
 * only as bytes arrive, never to a size a header merely claims. */
static bool fill(struct reader *r, uint64_t want)
{
	while (r->len < want && !r->eof) {
		if (r->len == r->alloc)
			grow(r);
		if (r->gz) {
			inflate_more(r, true);
			continue;
		}
		/* As much as there is room for, not just what is wanted: a record
		 * at a time would be two system calls a record. */
		ssize_t n = read(r->fd, r->buf + r->len, r->alloc - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("%s: read error: %s", r->path, strerror(errno));
		if (n == 0)
			r->eof = true;
		r->len += (size_t)n;
	}
	return r->len >= want;
}

/* The size of a record's fixed part: no shorter record of the tag is valid. */
static uint64_t fixed_part(uint32_t tag)
{
	switch (tag) {
	case MP_TAG_INFO:
		return sizeof(struct mp_info);
	case MP_TAG_MODULE:
		return sizeof(struct mp_module);
	case MP_TAG_CHAIN:
		return sizeof(struct mp_chain);
	case MP_TAG_END:
		return sizeof(struct mp_end);
	}
	return 0;
}

/* How long a stream may stay silent after its END record before the dump is taken as
 * whole: data after END is refused (two dumps concatenated, a dump followed by junk), but a
 * writer that keeps the pipe open once the dump is through (a FIFO, a remote command that
 * lingers) must not hang the reader. */
#define AFTER_END_WAIT_MS 200

/* Reads what follows the END record that ends at off, for the parser to refuse: in a regular
 * file, a few bytes if there are any; from a stream, what arrives within AFTER_END_WAIT_MS. */
static void after_end(struct reader *r, uint64_t off)
{
	if (r->regular || r->eof || r->len > off) {
		if (r->regular)
			fill(r, off + (r->gz ? 1 : 8)); /* gzip'd: inflated as far as a byte more */
		return;
	}
	struct pollfd p = {.fd = r->fd, .events = POLLIN};
	for (;;) {
		if (r->gz) {
			/* what has come inflated first: a byte more, or the end of the input */
			while (r->len <= off && !r->eof && r->gz->avail_in) {
				if (r->len == r->alloc)
					grow(r);
				inflate_more(r, false);
			}
			if (r->len > off || r->eof)
				return;
		}
		int n;
		while ((n = poll(&p, 1, AFTER_END_WAIT_MS)) < 0 && errno == EINTR)
			;
		if (n <= 0)
			return;
		if (!r->gz) {
			fill(r, off + 1); /* one read returns what is there, or the end */
			return;
		}
		if (!gz_read(r) && !r->gz_member_done) /* the end, inside a member */
			die("%s: truncated gzip data (%zu bytes inflated)", r->path, r->len);
		if (r->gz_in_eof) {
			r->eof = true;
			return;
		}
	}
}

/* Reads the file header, then record by record up to the END record and what follows it
 * (after_end, for the parser to refuse). Reading stops at the first header the parser refuses
 * whatever follows: a foreign magic, an unknown version or header size, a first record that is not
 * INFO (or a second INFO), a record shorter than its fixed part; in a regular file, a record
 * longer than the rest of the file (read whole then, which its size bounds, for the parser to
 * say how much is there). A stream that never ends but keeps looking like records (of an
 * unknown tag, so skipped) is read until it ends or memory does. */
static void read_records(struct reader *r)
{
	const struct mp_file_header *h;
	if (!fill(r, sizeof(*h)))
		return;
	h = (const struct mp_file_header *)r->buf;
	if (memcmp(h->magic, MP_MAGIC, MP_MAGIC_LEN) != 0 ||
	    (h->version != MP_VERSION && h->version != 1) || h->header_size < sizeof(*h) ||
	    h->header_size % 8 || (r->regular && h->header_size > r->size))
		return;
	uint64_t off = h->header_size;
	for (bool first = true;; first = false) {
		struct mp_record_header rh;
		if (!fill(r, off + sizeof(rh)))
			return;
		memcpy(&rh, r->buf + off, sizeof(rh));
		if ((rh.tag == MP_TAG_INFO) != first)
			return;
		uint64_t start = off + sizeof(rh);
		uint64_t left = !r->regular       ? UINT64_MAX - 8 - start
		                : r->size > start ? r->size - start
		                                  : 0;
		if (rh.length > left) {
			if (r->regular)
				fill(r, r->size);
			return;
		}
		off = start + ((rh.length + 7) & ~(uint64_t)7);
		if (!fill(r, off) || rh.length < fixed_part(rh.tag))
			return;
		if (rh.tag == MP_TAG_END) {
			after_end(r, off);
			return;
		}
	}
}

/* From standard input when STDIN (PATH names it in messages). */
static unsigned char *read_all(const char *path, bool stdin_, size_t *size)
{
	int fd =
	    stdin_ ? fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("%s: cannot open: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0)
		die("%s: cannot open: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		die("%s: is a directory, not a dump", path);
	ALLOC_GROW(loaded, nloaded + 1, loaded_alloc);
	loaded[nloaded++] = (struct loaded_file){st.st_dev, st.st_ino, xstrdup(path)};
	/* a regular file's size bounds the dump (one that reports none, as in /proc, is read
	 * as a stream) */
	struct reader r = {.path = path,
	                   .fd = fd,
	                   .regular = S_ISREG(st.st_mode) && st.st_size > 0,
	                   .size = (uint64_t)st.st_size};
	if (fill(&r, 2) && r.buf[0] == 0x1f && r.buf[1] == 0x8b) {
		/* gzip'd (a CI artefact, say): read and inflated only as the records are read, so
		 * that data which are no dump, or data after a dump's END, are refused without
		 * inflating them all (gzip's ratio reaches 1000:1), and a pipe is read as a plain
		 * one is (it was read to its end first: a writer that kept it open held the
		 * reader, and one that never ended took its memory) */
		z_stream zs;
		memset(&zs, 0, sizeof(zs));
		if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
			die("%s: zlib: inflateInit2 failed", path);
		zs.next_in = r.buf;
		zs.avail_in = (unsigned)r.len;
		struct reader z = {.path = path,
		                   .fd = fd,
		                   .gz = &zs,
		                   .gz_in = r.buf,
		                   .gz_len = r.len,
		                   .gz_alloc = r.alloc};
		read_records(&z);
		inflateEnd(&zs);
		close(fd);
		free(r.buf);
		*size = z.len;
		return z.buf ? z.buf : xmalloc(1);
	}
	read_records(&r);
	close(fd);
	*size = r.len;
	return r.buf ? r.buf : xmalloc(1);
}

struct dump *dump_load(const char *arg)
{
	/* "-" is standard input, as for -o; ./- names a file called "-" */
	bool stdin_ = strcmp(arg, "-") == 0;
	const char *path = stdin_ ? "stdin" : arg;
	static bool stdin_read;
	if (stdin_ && stdin_read)
		die_usage("- (standard input) given twice: it holds one dump");
	stdin_read |= stdin_;
	struct dump *d = xcalloc(1, sizeof(*d));
	size_t size;
	unsigned char *data = read_all(path, stdin_, &size);
	char *err = NULL;
	d->path = xstrdup(path);
	if (dump_parse(d, data, size, &err)) {
		/* freed first: once d is out of every register, LeakSanitizer (the test suite's
		 * build) reported it at exit, now and then, and exited 1 where the error is 2 */
		dump_free(d);
		die("%s: %s", path, err);
	}
	return d;
}

struct dump_source dump_image(const struct dump *d, size_t i)
{
	if (d->nsources)
		return d->sources[i];
	return (struct dump_source){d->info.pid,           d->info.ppid,     d->info.start_ns,
	                            d->info.sample_period, d->info.sequence, d->exe};
}

uint64_t dump_sampled(const struct dump *d)
{
	uint64_t period = d->info.sample_period;
	for (size_t i = 0; i < d->nsources; i++)
		if (d->sources[i].sample_period > period)
			period = d->sources[i].sample_period;
	return period;
}

void dump_free(struct dump *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nmodules; i++)
		free(d->modules[i].path);
	free(d->modules);
	for (size_t i = 0; i < d->nsources; i++)
		free(d->sources[i].exe);
	free(d->sources);
	free(d->chains);
	free(d->args_buf);
	free(d->argv);
	free(d->exe);
	free(d->data);
	free(d->path);
	free(d);
}
