/* symbolize.c: libdw (elfutils) symbolization of return addresses, with a cache so that each
 * distinct address is looked up once (see symbolize.h). It must never abort on a bad or missing
 * file: every failure degrades to the symbol table, then to module+offset. It never contacts a
 * debuginfod server unless the user set MAPPROF_DEBUGINFOD (main() clears DEBUGINFOD_URLS). */
#include <dlfcn.h>
#include <errno.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "strbuf.h"
#include "symbolize.h"
#include "usage.h"

struct sym_cache_entry {
	int module; /* -2 marks an empty slot */
	uint64_t offset;
	size_t nframes;
	struct sym_frame *frames;
};

/* Qualified names are cached per declaration: walking a DIE's parents scans its CU, and the same
 * few declarations (allocator_traits::allocate, ...) are inlined at most addresses. */
struct sym_name_entry {
	uintptr_t dwarf; /* Dwarf * of the declaration's file; 0 marks an empty slot */
	uint64_t offset; /* DIE offset of the declaration */
	const char *name;
};

static char *debuginfo_path; /* dwfl keeps a pointer to it: one per process */

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

const char *sym_state_name(enum sym_state st)
{
	switch (st) {
	case SYM_DWARF:
		return "dwarf";
	case SYM_SYMTAB:
		return "symtab";
	case SYM_MISSING:
		return "missing";
	case SYM_MISMATCH:
		return "mismatch";
	default:
		return "none";
	}
}

int sym_add_module(struct symbolizer *s, const char *path, const uint8_t *buildid,
                   size_t buildid_len, uint64_t load_bias, bool main, bool unloaded, bool vdso)
{
	const char *ipath = strpool_intern(&s->pool, path);
	for (size_t i = 0; i < s->nmods; i++) {
		struct sym_module *m = &s->mods[i];
		if (m->path == ipath && m->buildid_len == buildid_len &&
		    (!buildid_len || memcmp(m->buildid, buildid, buildid_len) == 0)) {
			m->unloaded = m->unloaded && unloaded;
			return (int)i;
		}
	}
	ALLOC_GROW(s->mods, s->nmods + 1, s->mods_alloc);
	struct sym_module *m = &s->mods[s->nmods];
	memset(m, 0, sizeof(*m));
	m->path = ipath;
	if (buildid_len) {
		m->buildid = xmalloc(buildid_len);
		memcpy(m->buildid, buildid, buildid_len);
	}
	m->buildid_len = buildid_len;
	m->load_bias = load_bias;
	m->main = main;
	m->unloaded = unloaded;
	m->vdso = vdso;
	return (int)s->nmods++;
}

/* Reports the module's file to a Dwfl of its own at bias 0, so addresses are ELF vaddrs (the
 * dump's offsets) and modules from different processes never overlap. */
static void open_module(struct symbolizer *s, struct sym_module *m)
{
	if (m->state != SYM_UNOPENED)
		return;
	m->state = SYM_NONE;
	if (m->vdso || !m->path[0])
		return;
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		m->state = SYM_MISSING;
		if (!s->quiet)
			warning("%s: cannot read (%s); its frames are shown as module+offset",
			        m->path, strerror(errno));
		return;
	}
	close(fd);
	Dwfl *dwfl = dwfl_begin(&callbacks);
	if (!dwfl)
		return;
	dwfl_report_begin(dwfl);
	Dwfl_Module *mod = dwfl_report_elf(dwfl, m->path, m->path, -1, 0, false);
	dwfl_report_end(dwfl, NULL, NULL);
	if (!mod) {
		dwfl_end(dwfl);
		m->state = SYM_MISSING;
		if (!s->quiet)
			warning("%s: not a readable ELF file (%s); its frames are shown as "
			        "module+offset",
			        m->path, dwfl_errmsg(-1));
		return;
	}
	if (m->buildid_len) {
		const unsigned char *bits;
		GElf_Addr vaddr;
		int n = dwfl_module_build_id(mod, &bits, &vaddr);
		if (n != (int)m->buildid_len || memcmp(bits, m->buildid, m->buildid_len) != 0) {
			dwfl_end(dwfl);
			m->state = SYM_MISMATCH;
			if (!s->quiet)
				warning(
				    "%s: build-id differs from the profiled one (rebuilt since the "
				    "run?); its frames are shown as module+offset",
				    m->path);
			return;
		}
	}
	m->dwfl = dwfl;
	m->mod = mod;
	Dwarf_Addr bias;
	if (dwfl_module_getdwarf(mod, &bias))
		m->state = SYM_DWARF;
	else if (dwfl_module_getsymtab(mod) > 0)
		m->state = SYM_SYMTAB;
}

enum sym_state sym_module_state(struct symbolizer *s, int module)
{
	if (module < 0 || (size_t)module >= s->nmods)
		return SYM_NONE;
	open_module(s, &s->mods[module]);
	return s->mods[module].state;
}

typedef char *(*cxa_demangle_fn)(const char *, char *, size_t *, int *);

/* __cxa_demangle from the C++ runtime, found at run time: libdw has no demangler and the
 * report tool is plain C, so it does not link libstdc++; every Debian system has it (apt needs
 * it). Without it, names stay mangled. */
static cxa_demangle_fn find_demangler(void)
{
	static int tried;
	static cxa_demangle_fn fn;
	if (!tried) {
		tried = 1;
		void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
		if (h)
			*(void **)&fn = dlsym(h, "__cxa_demangle");
	}
	return fn;
}

const char *sym_demangle(struct symbolizer *s, const char *name)
{
	if (!name)
		return NULL;
	if (name[0] == '_' && name[1] == 'Z') {
		cxa_demangle_fn fn = find_demangler();
		int status = -1;
		char *d = fn ? fn(name, NULL, NULL, &status) : NULL;
		if (d && status == 0) {
			const char *r = strpool_intern(&s->pool, d);
			free(d);
			return r;
		}
		free(d);
	}
	return strpool_intern(&s->pool, name);
}

static bool is_cxx(Dwarf_Die *cu)
{
	int lang = dwarf_srclang(cu);
	return lang == DW_LANG_C_plus_plus || lang == DW_LANG_C_plus_plus_03 ||
	       lang == DW_LANG_C_plus_plus_11 || lang == DW_LANG_C_plus_plus_14;
}

/* The declaration a concrete or inlined DIE stands for: abstract origins and specifications
 * followed to the end (bounded, in case of a loop in a corrupt file). */
static void declaration_of(Dwarf_Die *die, Dwarf_Die *out)
{
	*out = *die;
	for (int i = 0; i < 8; i++) {
		Dwarf_Attribute a;
		Dwarf_Die next;
		if (dwarf_attr(out, DW_AT_abstract_origin, &a) == NULL &&
		    dwarf_attr(out, DW_AT_specification, &a) == NULL)
			return;
		if (!dwarf_formref_die(&a, &next))
			return;
		*out = next;
	}
}

/* A C++ name qualified by its enclosing namespaces and classes ("std::_Hashtable<...>::
 * _M_rehash"), for compilers that emit no DW_AT_linkage_name on member functions. */
static struct sym_name_entry *name_slot(struct symbolizer *s, uintptr_t dw, uint64_t off)
{
	if ((s->nnames + 1) * 2 > s->names_cap) {
		size_t cap = s->names_cap ? s->names_cap * 2 : 256;
		struct sym_name_entry *t = xcalloc(cap, sizeof(*t));
		for (size_t i = 0; i < s->names_cap; i++) {
			struct sym_name_entry *e = &s->names[i];
			if (!e->dwarf)
				continue;
			size_t j = mp_hash_mix(e->dwarf, e->offset) & (cap - 1);
			while (t[j].dwarf)
				j = (j + 1) & (cap - 1);
			t[j] = *e;
		}
		free(s->names);
		s->names = t;
		s->names_cap = cap;
	}
	size_t j = mp_hash_mix(dw, off) & (s->names_cap - 1);
	while (s->names[j].dwarf && (s->names[j].dwarf != dw || s->names[j].offset != off))
		j = (j + 1) & (s->names_cap - 1);
	return &s->names[j];
}

static const char *qualified_name(struct symbolizer *s, Dwarf_Die *die, const char *name)
{
	Dwarf_Die decl;
	declaration_of(die, &decl);
	uintptr_t dw = (uintptr_t)dwarf_cu_getdwarf(decl.cu);
	struct sym_name_entry *slot = dw ? name_slot(s, dw, dwarf_dieoffset(&decl)) : NULL;
	if (slot && slot->dwarf)
		return slot->name;
	Dwarf_Die *scopes = NULL;
	int n = dwarf_getscopes_die(&decl, &scopes);
	struct strbuf sb = STRBUF_INIT;
	for (int i = n - 1; i >= 1; i--) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag != DW_TAG_namespace && tag != DW_TAG_class_type &&
		    tag != DW_TAG_structure_type && tag != DW_TAG_union_type)
			continue;
		const char *part = dwarf_diename(&scopes[i]);
		sb_adds(&sb, part ? part : "(anonymous namespace)");
		sb_adds(&sb, "::");
	}
	free(scopes);
	sb_adds(&sb, name);
	const char *r = strpool_intern(&s->pool, sb_str(&sb));
	sb_release(&sb);
	if (slot) {
		slot->dwarf = dw;
		slot->offset = dwarf_dieoffset(&decl);
		slot->name = r;
		s->nnames++;
	}
	return r;
}

static const char *die_name(struct symbolizer *s, Dwarf_Die *cu, Dwarf_Die *die)
{
	Dwarf_Attribute a;
	const char *n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
	if (!n)
		n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a));
	if (n)
		return sym_demangle(s, n);
	n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
	if (n && is_cxx(cu))
		return qualified_name(s, die, n);
	return n;
}

static const char *call_file(Dwarf_Die *cu, Dwarf_Die *inl)
{
	Dwarf_Attribute a;
	Dwarf_Word idx;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_file, &a), &idx) != 0)
		return NULL;
	Dwarf_Files *files;
	size_t nfiles;
	if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0 || idx >= nfiles)
		return NULL;
	return dwarf_filesrc(files, idx, NULL, NULL);
}

static int call_line(Dwarf_Die *inl)
{
	Dwarf_Attribute a;
	Dwarf_Word line;
	if (dwarf_formudata(dwarf_attr(inl, DW_AT_call_line, &a), &line) != 0)
		return 0;
	return (int)line;
}

struct framevec {
	struct sym_frame *v;
	size_t n, alloc;
};

static void push_frame(struct symbolizer *s, struct framevec *fv, const char *fn, const char *file,
                       int line, bool inlined)
{
	ALLOC_GROW(fv->v, fv->n + 1, fv->alloc);
	struct sym_frame *f = &fv->v[fv->n++];
	f->function = sym_demangle(s, fn);
	f->file = strpool_intern(&s->pool, file);
	f->line = file ? line : 0;
	f->inlined = inlined;
}

/* One pass over a CU lists its concrete functions (DW_TAG_subprogram and
 * DW_TAG_inlined_subroutine with pc ranges) and how they nest; every address in the CU is then
 * resolved from that list. (dwarf_getscopes and dwarf_getscopes_die walk the whole CU again for
 * every address, which takes seconds on a template-heavy C++ file.) */
struct fn_entry {
	Dwarf_Die die;
	int parent; /* enclosing function entry, -1 at the top */
	int depth;
	int tag;
};

struct fn_range {
	uint64_t lo, hi;
	uint32_t entry;
};

struct sym_cu_index {
	uintptr_t dwarf;
	uint64_t cu_offset;
	struct fn_entry *e;
	size_t n, e_alloc;
	struct fn_range *r;
	size_t nr, r_alloc;
};

static void index_children(struct sym_cu_index *ix, Dwarf_Die *die, int parent, int depth,
                           int level)
{
	Dwarf_Die child;
	if (level > 256 || dwarf_child(die, &child) != 0)
		return; /* bounded recursion: a corrupt file cannot overflow the stack */
	do {
		int tag = dwarf_tag(&child);
		int me = parent;
		if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine) {
			Dwarf_Addr base, lo, hi;
			ptrdiff_t off = 0;
			size_t first = ix->nr;
			while ((off = dwarf_ranges(&child, off, &base, &lo, &hi)) > 0) {
				if (hi <= lo)
					continue;
				ALLOC_GROW(ix->r, ix->nr + 1, ix->r_alloc);
				ix->r[ix->nr++] = (struct fn_range){lo, hi, (uint32_t)ix->n};
			}
			if (ix->nr > first) {
				ALLOC_GROW(ix->e, ix->n + 1, ix->e_alloc);
				ix->e[ix->n] = (struct fn_entry){child, parent, depth + 1, tag};
				me = (int)ix->n++;
			} else if (tag == DW_TAG_subprogram) {
				continue; /* a declaration or an abstract instance: no code inside
				           */
			}
		} else if (tag != DW_TAG_lexical_block && tag != DW_TAG_namespace &&
		           tag != DW_TAG_class_type && tag != DW_TAG_structure_type &&
		           tag != DW_TAG_union_type && tag != DW_TAG_module) {
			continue; /* variables, types, parameters: no functions below */
		}
		index_children(ix, &child, me, me == parent ? depth : depth + 1, level + 1);
	} while (dwarf_siblingof(&child, &child) == 0);
}

static struct sym_cu_index *cu_index(struct symbolizer *s, Dwarf_Die *cu)
{
	uintptr_t dw = (uintptr_t)dwarf_cu_getdwarf(cu->cu);
	uint64_t off = dwarf_dieoffset(cu);
	for (size_t i = 0; i < s->ncus; i++)
		if (s->cus[i].dwarf == dw && s->cus[i].cu_offset == off)
			return &s->cus[i];
	ALLOC_GROW(s->cus, s->ncus + 1, s->cus_alloc);
	struct sym_cu_index *ix = &s->cus[s->ncus++];
	memset(ix, 0, sizeof(*ix));
	ix->dwarf = dw;
	ix->cu_offset = off;
	index_children(ix, cu, -1, 0, 0);
	return ix;
}

/* The innermost function (concrete or inlined) whose ranges hold pc, or -1. */
static int innermost_at(const struct sym_cu_index *ix, uint64_t pc)
{
	int best = -1;
	for (size_t i = 0; i < ix->nr; i++) {
		const struct fn_range *r = &ix->r[i];
		if (pc >= r->lo && pc < r->hi &&
		    (best < 0 || ix->e[r->entry].depth > ix->e[best].depth))
			best = (int)r->entry;
	}
	return best;
}

/* Innermost first: each DW_TAG_inlined_subroutine is one inlined frame whose caller's position
 * is its DW_AT_call_file:line; the enclosing DW_TAG_subprogram ends the walk. */
static void lookup_dwarf(struct symbolizer *s, Dwfl_Module *mod, Dwarf_Addr pc, const char *symname,
                         struct framevec *fv)
{
	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie(mod, pc, &bias);
	const char *file = NULL;
	int line = 0;
	if (cu) {
		Dwarf_Line *l = dwarf_getsrc_die(cu, pc - bias);
		if (l) {
			file = dwarf_linesrc(l, NULL, NULL);
			dwarf_lineno(l, &line);
		}
		struct sym_cu_index *ix = cu_index(s, cu);
		int depth = 0;
		for (int i = innermost_at(ix, pc - bias); i >= 0 && depth < 256;
		     i = ix->e[i].parent, depth++) {
			struct fn_entry *e = &ix->e[i];
			if (e->tag == DW_TAG_inlined_subroutine) {
				push_frame(s, fv, die_name(s, cu, &e->die), file, line, true);
				file = call_file(cu, &e->die);
				line = call_line(&e->die);
			} else {
				const char *name = die_name(s, cu, &e->die);
				push_frame(s, fv, name ? name : symname, file, line, false);
				return;
			}
		}
	}
	push_frame(s, fv, symname, file, line, false);
}

static void lookup(struct symbolizer *s, int module, uint64_t offset, struct framevec *fv)
{
	if (module < 0 || (size_t)module >= s->nmods)
		return;
	struct sym_module *m = &s->mods[module];
	open_module(s, m);
	if (!m->mod)
		return;
	/* A return address: step back into the call instruction, as pprof does. */
	Dwarf_Addr pc = offset ? offset - 1 : 0;
	GElf_Off symoff;
	GElf_Sym sym;
	const char *symname =
	    dwfl_module_addrinfo((Dwfl_Module *)m->mod, pc, &symoff, &sym, NULL, NULL, NULL);
	if (m->state == SYM_DWARF)
		lookup_dwarf(s, (Dwfl_Module *)m->mod, pc, symname, fv);
	else if (symname)
		push_frame(s, fv, symname, NULL, 0, false);
}

static uint64_t key_hash(int module, uint64_t offset)
{
	return mp_hash_mix(mp_hash_mix(0, (uint64_t)(int64_t)module), offset);
}

static void cache_grow(struct symbolizer *s)
{
	size_t cap = s->cache_cap ? s->cache_cap * 2 : 1024;
	struct sym_cache_entry *c = xcalloc(cap, sizeof(*c));
	for (size_t i = 0; i < cap; i++)
		c[i].module = -2;
	for (size_t i = 0; i < s->cache_cap; i++) {
		struct sym_cache_entry *e = &s->cache[i];
		if (e->module == -2)
			continue;
		size_t j = key_hash(e->module, e->offset) & (cap - 1);
		while (c[j].module != -2)
			j = (j + 1) & (cap - 1);
		c[j] = *e;
	}
	free(s->cache);
	s->cache = c;
	s->cache_cap = cap;
}

size_t sym_lookup(struct symbolizer *s, int module, uint64_t offset, const struct sym_frame **out)
{
	if (module < 0)
		module = -1;
	if ((s->ncache + 1) * 2 > s->cache_cap)
		cache_grow(s);
	size_t j = key_hash(module, offset) & (s->cache_cap - 1);
	while (s->cache[j].module != -2) {
		struct sym_cache_entry *e = &s->cache[j];
		if (e->module == module && e->offset == offset) {
			*out = e->frames;
			return e->nframes;
		}
		j = (j + 1) & (s->cache_cap - 1);
	}
	struct framevec fv = {NULL, 0, 0};
	lookup(s, module, offset, &fv);
	if (!fv.n)
		push_frame(s, &fv, NULL, NULL, 0, false);
	s->lookups++;
	struct sym_cache_entry *e = &s->cache[j];
	e->module = module;
	e->offset = offset;
	e->nframes = fv.n;
	e->frames = fv.v;
	s->ncache++;
	*out = e->frames;
	return e->nframes;
}

void sym_free(struct symbolizer *s)
{
	for (size_t i = 0; i < s->cache_cap; i++)
		if (s->cache[i].module != -2)
			free(s->cache[i].frames);
	free(s->cache);
	free(s->names);
	for (size_t i = 0; i < s->ncus; i++) {
		free(s->cus[i].e);
		free(s->cus[i].r);
	}
	free(s->cus);
	for (size_t i = 0; i < s->nmods; i++) {
		if (s->mods[i].dwfl)
			dwfl_end(s->mods[i].dwfl);
		free(s->mods[i].buildid);
	}
	free(s->mods);
	strpool_free(&s->pool);
	memset(s, 0, sizeof(*s));
}
