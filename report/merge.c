/* merge.c: `mapprof merge A B ... -o OUT`: writes the merged profile as one dump in the same
 * format (include/mapprof_dump.h). Chains merge by symbols; each merged chain keeps the
 * module+offset frames of its first occurrence; sampled dumps are written already scaled (the
 * output has sample_period 0). OUT is written as every command's output is (out_open: a
 * regular file through a temporary file and a rename, '-' is stdout), and never holds a file
 * the loader would refuse. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "usage.h"
#include "views.h"

static void put(struct strbuf *sb, const void *p, size_t n)
{
	sb_add(sb, p, n);
}

static void record(struct strbuf *sb, uint32_t tag, const void *payload, size_t len)
{
	struct mp_record_header h = {.tag = tag, .flags = 0, .length = len};
	put(sb, &h, sizeof(h));
	put(sb, payload, len);
	static const char zeros[8];
	put(sb, zeros, (8 - len % 8) % 8);
}

/* The frames of a chain, as indices into the FRAMES record, which gets each address the first
 * time a chain names it (index[] maps profile frames to those indices). An address symbolizes
 * to its inlined frames followed by exactly one frame that is not inlined: those are the
 * addresses. */
static size_t frame_ids(const struct pchain *c, uint32_t *index, struct strbuf *frames,
                        uint32_t *nframes, uint32_t *out)
{
	size_t n = 0;
	for (size_t k = 0; k < c->nframes; k++) {
		const struct pframe *pf = c->frames[k];
		if (pf->inlined)
			continue;
		if (index[pf->id] == UINT32_MAX) {
			struct mp_frame f = {
			    .module = pf->module < 0 ? MP_MODULE_NONE : (uint32_t)pf->module,
			    .offset = pf->offset,
			};
			put(frames, &f, sizeof(f));
			index[pf->id] = (*nframes)++;
		}
		out[n++] = index[pf->id];
	}
	return n;
}

/* Whether c's size classes sum, without overflowing 64 bits, to its alloc_objects and
 * alloc_space, as the loader requires. They may not: chains merged from a dump whose chain has
 * classes and one whose chain has none (which the format allows), or counts capped at 2^64 - 1
 * (a sum, or a sampled dump's scaling). Such a chain is written without classes, which the
 * format reads as "the totals as they are". */
static bool classes_add_up(const struct pchain *c)
{
	uint64_t objects = 0, bytes = 0;
	for (size_t k = 0; k < c->nclasses; k++)
		if (__builtin_add_overflow(objects, c->classes[k].objects, &objects) ||
		    __builtin_add_overflow(bytes, c->classes[k].bytes, &bytes))
			return false;
	return objects == c->v[S_ALLOC_OBJECTS] && bytes == c->v[S_ALLOC_SPACE];
}

static void add_source(struct strbuf *rec, const struct dump_source *src)
{
	struct mp_source e = {src->pid,           src->ppid,     src->start_ns,
	                      src->sample_period, src->sequence, (uint32_t)strlen(src->exe)};
	const char *exe = src->exe;
	static const char zeros[8];
	put(rec, &e, sizeof(e));
	put(rec, exe, e.exe_len);
	put(rec, zeros, (8 - e.exe_len % 8) % 8);
}

/* SOURCES: each input, or the sources of an input that is itself a merge. */
static void write_sources(struct strbuf *sb, const struct profile *p)
{
	struct strbuf rec = STRBUF_INIT;
	for (size_t i = 0; i < p->ndumps; i++) {
		for (size_t k = 0; k < dump_nimages(p->dumps[i]); k++) {
			struct dump_source src = dump_image(p->dumps[i], k);
			add_source(&rec, &src);
		}
	}
	record(sb, MP_TAG_SOURCES, rec.buf, rec.len);
	sb_release(&rec);
}

static void merge_write(struct profile *p, const struct options *o)
{
	struct strbuf sb = STRBUF_INIT;
	struct mp_file_header fh = {.version = MP_VERSION, .header_size = sizeof(fh)};
	memcpy(fh.magic, MP_MAGIC, MP_MAGIC_LEN);
	put(&sb, &fh, sizeof(fh));

	struct mp_info info;
	memset(&info, 0, sizeof(info));
	const struct dump *first = p->dumps[0];
	info.pid = first->info.pid;
	info.ppid = first->info.ppid;
	info.start_ns = first->info.start_ns;
	info.flags = MP_INFO_FREES_TRACKED;
	for (size_t i = 0; i < p->ndumps; i++) {
		const struct mp_info *in = &p->dumps[i]->info;
		if (in->start_ns < info.start_ns)
			info.start_ns = in->start_ns;
		if (in->end_ns > info.end_ns)
			info.end_ns = in->end_ns;
		if (in->max_depth > info.max_depth)
			info.max_depth = in->max_depth;
		if (!(in->flags & MP_INFO_FREES_TRACKED))
			info.flags &= ~MP_INFO_FREES_TRACKED;
		info.unwinder = in->unwinder;
		info.not_recorded += in->not_recorded;
		info.threads += in->threads;
	}
	record(&sb, MP_TAG_INFO, &info, sizeof(info));
	record(&sb, MP_TAG_EXE, first->exe, strlen(first->exe));
	struct strbuf cmd = STRBUF_INIT;
	for (size_t i = 0; i < first->argc; i++)
		sb_add(&cmd, first->argv[i], strlen(first->argv[i]) + 1);
	record(&sb, MP_TAG_CMDLINE, cmd.buf ? cmd.buf : "", cmd.len);
	sb_release(&cmd);
	write_sources(&sb, p);

	for (size_t i = 0; i < p->sym.nmods; i++) {
		const struct sym_module *m = &p->sym.mods[i];
		struct strbuf rec = STRBUF_INIT;
		struct mp_module mm = {
		    .id = (uint32_t)i,
		    .flags = (m->main ? MP_MODULE_MAIN : 0) |
		             (m->unloaded ? MP_MODULE_UNLOADED : 0) |
		             (m->vdso ? MP_MODULE_VDSO : 0),
		    .load_bias = m->load_bias,
		    .nranges = m->nranges,
		    .buildid_len = (uint32_t)m->buildid_len,
		    .path_len = (uint32_t)strlen(m->path),
		};
		put(&rec, &mm, sizeof(mm));
		put(&rec, m->ranges, (size_t)m->nranges * sizeof(struct mp_range));
		put(&rec, m->buildid, m->buildid_len);
		put(&rec, m->path, mm.path_len);
		record(&sb, MP_TAG_MODULE, rec.buf, rec.len);
		sb_release(&rec);
	}

	struct mp_end end = {.nmodules = p->sym.nmods};
	uint32_t *index = xreallocarray(NULL, p->nframes + 1, sizeof(*index));
	memset(index, 0xff, (p->nframes + 1) * sizeof(*index));
	struct strbuf frames = STRBUF_INIT, chains = STRBUF_INIT;
	uint32_t nframes = 0;
	uint32_t *ids = NULL;
	size_t ids_alloc = 0;
	uint32_t id = 0;
	for (size_t i = 0; i < p->nchains; i++) {
		const struct pchain *c = &p->chains[i];
		if (c->hidden || !c->v[S_ALLOC_OBJECTS])
			continue; /* no objects: no bytes either (the loader refuses bytes alone) */
		ALLOC_GROW(ids, c->nframes + 1, ids_alloc);
		size_t nf = frame_ids(c, index, &frames, &nframes, ids);
		struct mp_chain mc = {
		    .id = id,
		    .flags = c->truncated ? MP_CHAIN_TRUNCATED : 0,
		    .nframes = (uint32_t)nf,
		    .nclasses = classes_add_up(c) ? (uint32_t)c->nclasses : 0,
		    .alloc_objects = c->v[S_ALLOC_OBJECTS],
		    .alloc_space = c->v[S_ALLOC_SPACE],
		    /* scaled in-use values can round past the allocated ones: clamp; a merge
		     * with a dump that did not track frees has none (frees_tracked) */
		    .inuse_objects = c->v[S_INUSE_OBJECTS] < c->v[S_ALLOC_OBJECTS]
		                         ? c->v[S_INUSE_OBJECTS]
		                         : c->v[S_ALLOC_OBJECTS],
		    .inuse_space = c->v[S_INUSE_SPACE] < c->v[S_ALLOC_SPACE] ? c->v[S_INUSE_SPACE]
		                                                             : c->v[S_ALLOC_SPACE],
		};
		if (!p->frees_tracked)
			mc.inuse_objects = mc.inuse_space = 0;
		struct strbuf rec = STRBUF_INIT;
		put(&rec, &mc, sizeof(mc));
		put(&rec, ids, nf * sizeof(*ids));
		static const uint32_t zero;
		if (nf & 1)
			put(&rec, &zero, sizeof(zero));
		for (size_t k = 0; k < mc.nclasses; k++) {
			const struct pclass *z = &c->classes[k];
			struct mp_size_class sc = {.log2 = z->log2,
			                           .objects = z->objects,
			                           .bytes = z->bytes,
			                           .min_size = z->min,
			                           .max_size = z->max};
			put(&rec, &sc, sizeof(sc));
		}
		record(&chains, MP_TAG_CHAIN, rec.buf, rec.len);
		id++;
		sb_release(&rec);
		end.nchains++;
		/* The loader refuses END totals that overflow: so does the writer. */
		if (!add_u64(&end.alloc_objects, mc.alloc_objects) ||
		    !add_u64(&end.alloc_space, mc.alloc_space) ||
		    !add_u64(&end.inuse_objects, mc.inuse_objects) ||
		    !add_u64(&end.inuse_space, mc.inuse_space))
			die("merge: the merged totals pass 2^64 - 1, which a dump cannot hold");
	}
	free(ids);
	free(index);
	record(&sb, MP_TAG_FRAMES, frames.buf ? frames.buf : "", frames.len);
	put(&sb, chains.buf ? chains.buf : "", chains.len);
	sb_release(&frames);
	sb_release(&chains);
	record(&sb, MP_TAG_END, &end, sizeof(end));

	emit(o, &sb);
	sb_release(&sb);
}

int cmd_merge(struct options *o)
{
	refuse_terminal(o, "merge writes a binary dump", "-o FILE");
	struct profile p;
	load_profile(&p, o, 0);
	merge_write(&p, o);
	profile_free(&p);
	return 0;
}
