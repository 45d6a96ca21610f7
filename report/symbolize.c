/* symbolize.c: libdw (elfutils) symbolization of return addresses, with a cache so that each
 * distinct address is looked up once (see symbolize.h). It must never abort on a bad or missing
 * file: every failure degrades to the symbol table, then to module+offset. It never contacts a
 * debuginfod server unless the user set MAPPROF_DEBUGINFOD (main() clears DEBUGINFOD_URLS). */
#include <errno.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libiberty/demangle.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapprof_dump.h"
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

void sym_set_debug_dirs(const char *dirs)
{
	/* libdwfl's list: "" (next to the file), ".debug" (below it), then absolute directories,
	 * searched by build-id (DIR/.build-id/xx/rest.debug) and by .gnu_debuglink
	 * (DIR/<the file's directory>/<link>); the user's before the system's */
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, ":.debug");
	const char *p = dirs;
	while (p && *p) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len) {
			char *dir = xstrndup(p, len);
			/* A directory that is not there (a CI job's artefacts that one
			 * job lacks) is skipped, as gdb's debug-file-directory does. */
			char *abs = realpath(dir, NULL);
			struct stat st;
			if (!abs) {
				warning("--debug-dir %s: %s; skipped", dir, strerror(errno));
			} else if (stat(abs, &st) != 0 || !S_ISDIR(st.st_mode)) {
				/* a file given by mistake (the debug file itself, say) */
				warning("--debug-dir %s: %s; skipped", dir, strerror(ENOTDIR));
				free(abs);
			} else {
				sb_addch(&sb, ':');
				sb_adds(&sb, abs);
				free(abs);
			}
			free(dir);
		}
		p = end ? end + 1 : NULL;
	}
	sb_adds(&sb, ":/usr/lib/debug");
	free(debuginfo_path);
	debuginfo_path = sb_detach(&sb);
}

/* The first candidate debug file that find_debuginfo left unread because it is not a regular
 * file, for open_module to record: libdwfl calls find_debuginfo from inside
 * dwfl_module_getdwarf, which has no way to pass it back. Malloc'd; NULL when none. */
static char *refused_candidate;

/* Whether opening and reading path could block or never end: a FIFO (open waits for a
 * writer), a socket, a terminal or another device. A missing file or a directory is harmless:
 * libdw's open fails, or elf_begin rejects it. */
static bool unsafe_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		return false;
	if (!refused_candidate)
		refused_candidate = xstrdup(path);
	return true;
}

static bool unsafe_join(struct strbuf *sb, const char *a, const char *b, const char *c)
{
	sb_reset(sb);
	if (a) {
		sb_adds(sb, a);
		sb_addch(sb, '/');
	}
	if (b) {
		sb_adds(sb, b);
		sb_addch(sb, '/');
	}
	sb_adds(sb, c);
	return unsafe_path(sb_str(sb));
}

/* HEAD/SUB/LINK, then HEAD/T/LINK for each tail T of SUB after a '/', then HEAD/LINK: the
 * names libdwfl tries below a directory of the debug path (its explore_dir). */
static bool explore_unsafe(struct strbuf *sb, const char *head, const char *sub, const char *link)
{
	for (;;) {
		if (unsafe_join(sb, head, sub, link))
			return true;
		if (!sub)
			return false;
		sub = strchr(sub, '/');
		if (sub && !*++sub)
			return false;
	}
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* The names find_debuginfo checks in each directory of the debug path: the debug link's (or,
 * without one, FILE.debug and FILE's own name, as libdwfl invents them), and the build-ids'
 * DIR/.build-id/xx/rest.debug names, the module's and that of its .gnu_debugaltlink (dwz). */
struct debug_names {
	const char *links[3];
	size_t nlinks;
	char *buildid[2]; /* ".build-id/xx/rest.debug", malloc'd */
	size_t nbuildid;
};

/* Whether no file that libdwfl's standard search may open for one entry of the debug path
 * (dwfl_standard_find_debuginfo: build-id, then .gnu_debuglink in the directory of FILE, below
 * it, and below DIR/ for each tail of FILE's absolute directory; an alternate file also in a
 * .dwz directory) is unsafe to open. A superset of its candidates: one too many only costs a
 * stat. */
static bool entry_safe(const char *entry, const char *file, const struct debug_names *dn)
{
	if (entry[0] == '+' || entry[0] == '-')
		entry++;
	const char *slash = strrchr(file, '/');
	char *dir = slash ? xstrndup(file, (size_t)(slash - file)) : NULL;
	struct strbuf sb = STRBUF_INIT;
	bool unsafe = false;
	for (size_t i = 0; i < dn->nlinks && !unsafe; i++) {
		const char *link = dn->links[i];
		if (!entry[0])
			unsafe = unsafe_join(&sb, dir, NULL, link) ||
			         unsafe_join(&sb, dir, ".dwz", base_name(link));
		else if (entry[0] != '/')
			unsafe = explore_unsafe(&sb, dir, entry, link);
		else
			unsafe =
			    unsafe_join(&sb, entry, NULL, base_name(link)) ||
			    unsafe_join(&sb, entry, ".dwz", base_name(link)) ||
			    (dir && dir[0] == '/' && explore_unsafe(&sb, entry, dir + 1, link));
	}
	for (size_t i = 0; i < dn->nbuildid && entry[0] == '/' && !unsafe; i++)
		unsafe = unsafe_join(&sb, entry, NULL, dn->buildid[i]);
	sb_release(&sb);
	free(dir);
	return !unsafe;
}

static char *buildid_name(const unsigned char *bits, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	sb_adds(&sb, ".build-id/");
	for (size_t i = 0; i < len; i++)
		sb_addf(&sb, i == 1 ? "/%02x" : "%02x", bits[i]);
	sb_adds(&sb, ".debug");
	return sb_detach(&sb);
}

/* The build-id of the dwz file that FILE's .gnu_debugaltlink names (the name, NUL, the
 * build-id), opened as open_module opens a module; NULL when it has none. */
static char *altlink_buildid(const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0)
		return NULL;
	char *r = NULL;
	Elf *elf =
	    fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? elf_begin(fd, ELF_C_READ, NULL) : NULL;
	size_t shstrndx;
	if (elf && elf_getshdrstrndx(elf, &shstrndx) == 0) {
		for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
			GElf_Shdr mem, *sh = gelf_getshdr(scn, &mem);
			const char *name = sh ? elf_strptr(elf, shstrndx, sh->sh_name) : NULL;
			if (!name || strcmp(name, ".gnu_debugaltlink") != 0)
				continue;
			Elf_Data *d = elf_getdata(scn, NULL);
			const char *b = d ? d->d_buf : NULL;
			const char *nul = b ? memchr(b, 0, d->d_size) : NULL;
			size_t len = nul ? d->d_size - (size_t)(nul + 1 - b) : 0;
			if (len >= 2)
				r = buildid_name((const unsigned char *)nul + 1, len);
			break;
		}
	}
	if (elf)
		elf_end(elf);
	close(fd);
	return r;
}

/* libdwfl's standard search opens every candidate debug file with a plain blocking open: a
 * FIFO at one of those paths (FILE.debug next to the binary, in .debug/ or under --debug-dir's
 * .build-id/) would hang the report forever, and a device could be read without end. So the
 * candidates are checked first, and the search runs on a copy of the debug path without the
 * entries that hold an unsafe one: that file is skipped (open_module warns), the rest of the
 * search is the standard one. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, GElf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	const char *path = debuginfo_path ? debuginfo_path : ":.debug:/usr/lib/debug";
	struct debug_names dn = {.nlinks = 0, .nbuildid = 0};
	char *invented = NULL;
	if (debuglink_file) {
		dn.links[dn.nlinks++] = debuglink_file;
	} else if (file_name) {
		struct strbuf sb = STRBUF_INIT;
		sb_adds(&sb, base_name(file_name));
		sb_adds(&sb, ".debug");
		invented = sb_detach(&sb);
		dn.links[dn.nlinks++] = invented;
		dn.links[dn.nlinks++] = base_name(file_name);
	}
	const unsigned char *bits;
	GElf_Addr vaddr;
	int n = dwfl_module_build_id(mod, &bits, &vaddr);
	if (n >= 2)
		dn.buildid[dn.nbuildid++] = buildid_name(bits, (size_t)n);
	if (file_name && debuglink_file && !debuglink_crc) {
		/* libdwfl asks for a dwz file with the name of the file that links it */
		char *alt = altlink_buildid(file_name);
		if (alt)
			dn.buildid[dn.nbuildid++] = alt;
	}
	char *canon = file_name ? realpath(file_name, NULL) : NULL;
	struct strbuf kept = STRBUF_INIT;
	size_t nkept = 0;
	bool all = true;
	for (const char *p = path;;) {
		const char *end = strchr(p, ':');
		char *entry = xstrndup(p, end ? (size_t)(end - p) : strlen(p));
		if (!file_name || (entry_safe(entry, file_name, &dn) &&
		                   (!canon || entry_safe(entry, canon, &dn)))) {
			if (nkept++)
				sb_addch(&kept, ':');
			sb_adds(&kept, entry);
		} else {
			all = false;
		}
		free(entry);
		if (!end)
			break;
		p = end + 1;
	}
	int fd;
	if (all) {
		fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
		                                  debuglink_file, debuglink_crc,
		                                  debuginfo_file_name);
	} else {
		/* dwfl reads the path through a pointer to debuginfo_path at each search. An
		 * empty path would mean the file's own directory: with every entry dropped, one
		 * absolute directory that cannot exist is left, so that only the build-id's
		 * debuginfod query (when enabled) remains. */
		char *saved = debuginfo_path;
		debuginfo_path = nkept ? (char *)sb_str(&kept) : (char *)"/proc/self/fd/-1";
		fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
		                                  debuglink_file, debuglink_crc,
		                                  debuginfo_file_name);
		debuginfo_path = saved;
	}
	sb_release(&kept);
	free(canon);
	free(invented);
	for (size_t i = 0; i < dn.nbuildid; i++)
		free(dn.buildid[i]);
	return fd;
}

static const Dwfl_Callbacks callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = find_debuginfo,
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

static uint64_t module_hash(const char *ipath, const uint8_t *buildid, size_t len)
{
	uint64_t h = mp_hash_mix(0, (uintptr_t)ipath);
	for (size_t i = 0; i < len; i++)
		h = mp_hash_mix(h, buildid[i]);
	return h;
}

static bool module_is(const struct sym_module *m, const char *ipath, const uint8_t *buildid,
                      size_t len)
{
	return m->path == ipath && m->buildid_len == len &&
	       (!len || memcmp(m->buildid, buildid, len) == 0);
}

int sym_add_module(struct symbolizer *s, const char *path, const uint8_t *buildid,
                   size_t buildid_len, uint64_t load_bias, bool main, bool unloaded, bool vdso)
{
	const char *ipath = strpool_intern(&s->pool, path);
	/* modules by (path, build-id) in a hash table, so that many dumps of many modules stay
	 * linear */
	if ((s->nmods + 1) * 2 > s->mods_cap) {
		size_t cap = s->mods_cap ? s->mods_cap * 2 : 64;
		size_t *ix = xmalloc(cap * sizeof(*ix));
		memset(ix, 0xff, cap * sizeof(*ix));
		for (size_t i = 0; i < s->nmods; i++) {
			const struct sym_module *m = &s->mods[i];
			size_t j = module_hash(m->path, m->buildid, m->buildid_len) & (cap - 1);
			while (ix[j] != SIZE_MAX)
				j = (j + 1) & (cap - 1);
			ix[j] = i;
		}
		free(s->mods_index);
		s->mods_index = ix;
		s->mods_cap = cap;
	}
	size_t j = module_hash(ipath, buildid, buildid_len) & (s->mods_cap - 1);
	while (s->mods_index[j] != SIZE_MAX) {
		struct sym_module *m = &s->mods[s->mods_index[j]];
		if (module_is(m, ipath, buildid, buildid_len)) {
			m->unloaded = m->unloaded && unloaded;
			return (int)s->mods_index[j];
		}
		j = (j + 1) & (s->mods_cap - 1);
	}
	s->mods_index[j] = s->nmods;
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

/* Whether the file's PT_LOAD program headers are the ones the dump recorded for the module
 * (start - load bias = p_vaddr, end - start = p_memsz, file offset = p_offset, prot = p_flags),
 * in the same order. A module without recorded ranges, or a file whose headers cannot be
 * read, is not judged. */
static bool same_segments(Dwfl_Module *mod, const struct sym_module *m)
{
	const struct mp_range *r = m->ranges;
	GElf_Addr bias;
	Elf *elf = m->nranges ? dwfl_module_getelf(mod, &bias) : NULL;
	size_t phnum;
	if (!elf || elf_getphdrnum(elf, &phnum) != 0)
		return true;
	uint32_t k = 0;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);
		if (!ph)
			return true;
		if (ph->p_type != PT_LOAD)
			continue;
		if (k == m->nranges || r[k].start - m->load_bias != ph->p_vaddr ||
		    r[k].end - r[k].start != ph->p_memsz || r[k].file_offset != ph->p_offset ||
		    r[k].prot != (ph->p_flags & (PF_R | PF_W | PF_X)))
			return false;
		k++;
	}
	return k == m->nranges;
}

/* Opens a module once: reports its file to a Dwfl of its own at bias 0, so addresses are ELF
 * vaddrs (the dump's offsets) and modules from different processes never overlap. WARN: say
 * when its frames will be module+offset (not for a module that no frame uses, opened only to
 * report its state). */
static void open_module(struct symbolizer *s, struct sym_module *m, bool warn)
{
	if (m->state != SYM_UNOPENED)
		return;
	bool quiet = s->quiet || !warn;
	m->state = SYM_NONE;
	if (m->vdso || !m->path[0])
		return;
	/* O_NONBLOCK and a regular file only: a dump may name anything (a FIFO, /dev/stdin)
	 * and reading it must not block */
	int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int e = fd < 0 ? errno : 0;
		if (fd >= 0)
			close(fd);
		m->state = SYM_MISSING;
		if (!quiet)
			warning("%s: cannot read (%s); its frames are shown as module+offset",
			        m->path, e ? strerror(e) : "not a regular file");
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
		if (!quiet)
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
			if (!quiet)
				warning(
				    "%s: build-id differs from the profiled one (rebuilt since the "
				    "run?); its frames are shown as module+offset",
				    m->path);
			return;
		}
	} else if (!same_segments(mod, m)) {
		/* no build-id to compare: the program headers are the next best witness */
		dwfl_end(dwfl);
		m->state = SYM_MISMATCH;
		if (!quiet)
			warning("%s: segments differ from the profiled one's (rebuilt since the "
			        "run? it has no build-id to compare); its frames are shown as "
			        "module+offset",
			        m->path);
		return;
	}
	m->dwfl = dwfl;
	m->mod = mod;
	Dwarf_Addr bias;
	free(refused_candidate);
	refused_candidate = NULL;
	if (dwfl_module_getdwarf(mod, &bias))
		m->state = SYM_DWARF;
	else if (dwfl_module_getsymtab(mod) > 0)
		m->state = SYM_SYMTAB;
	if (refused_candidate) {
		/* told on the first frame that uses the module (lookup), as a stripped
		 * module is */
		m->refused_debug = strpool_intern(&s->pool, refused_candidate);
		free(refused_candidate);
		refused_candidate = NULL;
	}
}

enum sym_state sym_module_state(struct symbolizer *s, int module)
{
	if (module < 0 || (size_t)module >= s->nmods)
		return SYM_NONE;
	open_module(s, &s->mods[module], false);
	return s->mods[module].state;
}

/* The demangled form of name, or NULL: libiberty's demangler, the one binutils and gdb use.
 * It reads C++ (the Itanium ABI, "_Z"), and Rust in both manglings: the legacy one, which
 * looks like C++ ("_ZN...17h<hash>E") and which it prints as Rust does (the hash dropped, the
 * "$LT$" escapes undone), and v0 ("_R", that of Rust's own standard library since 2025). A
 * trailing ".llvm." and digits (LLVM's ThinLTO) is taken off first: the C++ demangler would
 * show it as a clone ("[clone .llvm.123]"), and two builds' names would then differ. */
static char *demangle(const char *name)
{
	if (name[0] != '_' || (name[1] != 'Z' && name[1] != 'R'))
		return NULL;
	const char *llvm = strstr(name, ".llvm.");
	char *bare = llvm && llvm[6] && strspn(llvm + 6, "0123456789") == strlen(llvm + 6)
	                 ? xstrndup(name, (size_t)(llvm - name))
	                 : NULL;
	char *d = cplus_demangle(bare ? bare : name, DMGL_PARAMS | DMGL_ANSI | DMGL_AUTO);
	free(bare);
	return d;
}

const char *sym_demangle(struct symbolizer *s, const char *name)
{
	if (!name)
		return NULL;
	char *d = demangle(name);
	const char *r = strpool_intern(&s->pool, d ? d : name);
	free(d);
	return r;
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

/* What naming a DIE needs besides the DIE: the module's symbol table (the mangled names of
 * out-of-line copies), the CU's function index (those copies' DIEs) and the unit (its
 * language). */
struct name_ctx {
	struct symbolizer *s;
	struct sym_module *m;
	const struct sym_cu_index *ix; /* NULL when not known */
	Dwarf_Die *cu;
	Dwarf_Addr bias; /* a module address is the DWARF address + bias */
};

static const char *die_name_at(const struct name_ctx *c, Dwarf_Die *die, int depth);
static const char *instance_symbol(const struct name_ctx *c, Dwarf_Die *die, Dwarf_Die *decl);

static bool is_class(int tag)
{
	return tag == DW_TAG_class_type || tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
}

/* A lambda's closure type: an unnamed class whose members gcc names "<lambda>" (its
 * constructors and destructor, "~<lambda>") or whose operator() it marks artificial. */
static bool is_lambda(Dwarf_Die *type, Dwarf_Die *call)
{
	Dwarf_Die child;
	bool found = false;
	if (!is_class(dwarf_tag(type)) || dwarf_diename(type) || dwarf_child(type, &child) != 0)
		return false;
	do {
		const char *n =
		    dwarf_tag(&child) == DW_TAG_subprogram ? dwarf_diename(&child) : NULL;
		if (n && strcmp(n, "operator()") == 0) {
			*call = child;
			found = found || dwarf_hasattr(&child, DW_AT_artificial);
		} else if (n && strstr(n, "<lambda>")) {
			found = true;
		}
	} while (dwarf_siblingof(&child, &child) == 0);
	return found;
}

static void scope_prefix(const struct name_ctx *c, Dwarf_Die *die, struct strbuf *sb, bool *approx,
                         int depth);

/* A type as libiberty's demangler prints it in a parameter list ("int", "char const*",
 * "std::string const&" with typedefs followed to the type the mangling names): enough to tell
 * lambdas apart by their parameters. */
static void type_name(const struct name_ctx *c, Dwarf_Die *type, struct strbuf *sb, int depth)
{
	Dwarf_Attribute a;
	Dwarf_Die inner;
	bool has_inner = dwarf_formref_die(dwarf_attr_integrate(type, DW_AT_type, &a), &inner);
	const char *suffix = NULL;
	bool dummy;
	switch (depth > 16 ? -1 : dwarf_tag(type)) {
	case DW_TAG_base_type:
	case DW_TAG_unspecified_type:
		sb_adds(sb, dwarf_diename(type) ? dwarf_diename(type) : "?");
		return;
	case DW_TAG_typedef:
		if (has_inner)
			type_name(c, &inner, sb, depth + 1);
		else
			sb_adds(sb, "void");
		return;
	case DW_TAG_pointer_type:
		suffix = "*";
		break;
	case DW_TAG_reference_type:
		suffix = "&";
		break;
	case DW_TAG_rvalue_reference_type:
		suffix = "&&";
		break;
	case DW_TAG_const_type:
		suffix = " const";
		break;
	case DW_TAG_volatile_type:
		suffix = " volatile";
		break;
	case DW_TAG_class_type:
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_enumeration_type:
		scope_prefix(c, type, sb, &dummy, depth + 1);
		sb_adds(sb, dwarf_diename(type) ? dwarf_diename(type) : "{unnamed type}");
		return;
	default:
		sb_adds(sb, "?");
		return;
	}
	if (has_inner)
		type_name(c, &inner, sb, depth + 1);
	else
		sb_adds(sb, "void");
	sb_adds(sb, suffix);
}

/* The parameter list of a lambda's operator(), "(int, char const*)", its object parameter
 * left out. */
static void lambda_params(const struct name_ctx *c, Dwarf_Die *call, struct strbuf *sb, int depth)
{
	Dwarf_Die p;
	bool first = true;
	sb_addch(sb, '(');
	if (dwarf_child(call, &p) == 0) {
		do {
			Dwarf_Attribute a;
			Dwarf_Die t;
			if (dwarf_tag(&p) != DW_TAG_formal_parameter ||
			    dwarf_hasattr(&p, DW_AT_artificial))
				continue;
			if (!first)
				sb_adds(sb, ", ");
			first = false;
			if (dwarf_formref_die(dwarf_attr_integrate(&p, DW_AT_type, &a), &t))
				type_name(c, &t, sb, depth + 1);
			else
				sb_adds(sb, "?");
		} while (dwarf_siblingof(&p, &p) == 0);
	}
	sb_addch(sb, ')');
}

/* Whether the compiler of a DIE's unit numbers lambdas separately for each parameter list, as
 * the C++ ABI says ("{lambda()#1}", "{lambda(int)#1}"): gcc does from version 13 (its ABI
 * version 18); gcc 12 and older number all lambdas of a scope in one sequence ("{lambda()#1}",
 * "{lambda(int)#2}"). */
static bool lambdas_by_signature(Dwarf_Die *die)
{
	Dwarf_Die cu;
	Dwarf_Attribute a;
	const char *prod = dwarf_diecu(die, &cu, NULL, NULL)
	                       ? dwarf_formstring(dwarf_attr(&cu, DW_AT_producer, &a))
	                       : NULL;
	/* "GNU C++17 12.2.0 -O2 ...": the version is the first word that starts with a digit */
	const char *v = prod && strncmp(prod, "GNU ", 4) == 0 ? prod : NULL;
	while (v && (v = strchr(v, ' ')) && !(v[1] >= '0' && v[1] <= '9'))
		v++;
	if (!v)
		return true;
	const char *abi = strstr(prod, "-fabi-version=");
	if (abi && atoi(abi + 14) > 0)
		return atoi(abi + 14) >= 18;
	return atoi(v + 1) >= 13;
}

/* The unnamed classes of one scope in DIE order, through its lexical blocks: gcc numbers a
 * function's lambdas, and its other unnamed types, in the order they appear, as the mangling
 * does ("{lambda()#2}", "{unnamed type#1}"). Counts those before TARGET that have the same kind
 * (and, for lambdas numbered by signature, the same parameters, SIG; any lambda when SIG is
 * ""); returns whether TARGET was reached. */
static bool count_before(const struct name_ctx *c, Dwarf_Die *scope, Dwarf_Die *target,
                         const char *sig, struct strbuf *tmp, int *n, int level)
{
	Dwarf_Die child;
	if (level > 64 || dwarf_child(scope, &child) != 0)
		return false;
	do {
		if (child.addr == target->addr)
			return true;
		int tag = dwarf_tag(&child);
		if (tag == DW_TAG_lexical_block) {
			if (count_before(c, &child, target, sig, tmp, n, level + 1))
				return true;
			continue;
		}
		if (!is_class(tag) || dwarf_diename(&child))
			continue;
		Dwarf_Die call = child;
		if (!is_lambda(&child, &call)) {
			*n += !sig;
			continue;
		}
		if (!sig)
			continue;
		if (!sig[0]) {
			++*n;
			continue;
		}
		sb_reset(tmp);
		lambda_params(c, &call, tmp, level);
		*n += strcmp(sb_str(tmp), sig) == 0;
	} while (dwarf_siblingof(&child, &child) == 0);
	return false;
}

/* An unnamed class as the demangler names it: "{lambda(int)#1}" for a lambda's closure type,
 * "{unnamed type#1}" for any other, numbered within SCOPE (the DIE it is declared in). */
static void unnamed_class(const struct name_ctx *c, Dwarf_Die *type, Dwarf_Die *scope,
                          struct strbuf *sb, int depth)
{
	Dwarf_Die call = *type;
	struct strbuf sig = STRBUF_INIT, tmp = STRBUF_INIT;
	bool lambda = is_lambda(type, &call);
	if (lambda)
		lambda_params(c, &call, &sig, depth);
	int n = 1;
	const char *by = !lambda ? NULL : lambdas_by_signature(type) ? sb_str(&sig) : "";
	if (scope && !count_before(c, scope, type, by, &tmp, &n, 0))
		n = 1; /* not found below its scope (a corrupt file): no number to tell */
	if (lambda)
		sb_addf(sb, "{lambda%s#%d}", sb_str(&sig), n);
	else
		sb_addf(sb, "{unnamed type#%d}", n);
	sb_release(&sig);
	sb_release(&tmp);
}

/* Appends the qualification of a declaration, "ns::Class::", as the demangler prints it: a
 * namespace without a name is "(anonymous namespace)", an unnamed class "{lambda()#1}" or
 * "{unnamed type#1}" (unnamed_class), and a function around a local class or function its
 * own full name ("main::", "f(int)::") in place of everything outside it. *approx is set
 * when the result is only DWARF's guess at what the mangled name would say (an unnamed class
 * or an enclosing function). */
static void scope_prefix(const struct name_ctx *c, Dwarf_Die *die, struct strbuf *sb, bool *approx,
                         int depth)
{
	Dwarf_Die *scopes = NULL;
	int n = depth > 8 ? 0 : dwarf_getscopes_die(die, &scopes);
	size_t start = sb->len;
	for (int i = n - 1; i >= 1; i--) {
		int tag = dwarf_tag(&scopes[i]);
		if (tag == DW_TAG_subprogram) {
			const char *fn = die_name_at(c, &scopes[i], depth + 1);
			*approx = true;
			sb->len = start; /* the function's name holds its own qualification */
			sb_adds(sb, fn ? fn : "?");
			sb_adds(sb, "::");
		} else if (tag == DW_TAG_namespace) {
			const char *part = dwarf_diename(&scopes[i]);
			sb_adds(sb, part ? part : "(anonymous namespace)");
			sb_adds(sb, "::");
		} else if (is_class(tag)) {
			const char *part = dwarf_diename(&scopes[i]);
			if (part) {
				sb_adds(sb, part);
			} else {
				*approx = true;
				unnamed_class(c, &scopes[i], i + 1 < n ? &scopes[i + 1] : NULL, sb,
				              depth + 1);
			}
			sb_adds(sb, "::");
		}
	}
	free(scopes);
}

/* The demangled name without gcc's clone suffixes (" [clone .constprop.0]", " [clone
 * .cold]"), which DWARF's names never carry. */
static const char *without_clones(struct symbolizer *s, const char *mangled)
{
	char *d = demangle(mangled);
	if (!d)
		return NULL;
	char *clone = strstr(d, " [clone ");
	if (clone)
		*clone = '\0';
	const char *r = strpool_intern(&s->pool, d);
	free(d);
	return r;
}

/* A C++ name qualified by its enclosing namespaces and classes ("std::_Hashtable<...>::
 * _M_rehash"), for compilers that emit no DW_AT_linkage_name on member functions. Where DWARF
 * can only guess (a lambda's operator(), a member of another unnamed class, a function's
 * local class: gcc gives them no linkage name), the mangled name of an out-of-line copy in the
 * symbol table wins ("main::{lambda()#1}::operator()() const"); an inlined lambda without one
 * gets DWARF's guess in the same form. */
static const char *qualified_name(const struct name_ctx *c, Dwarf_Die *die, const char *name,
                                  int depth)
{
	struct symbolizer *s = c->s;
	Dwarf_Die decl;
	declaration_of(die, &decl);
	uintptr_t dw = (uintptr_t)dwarf_cu_getdwarf(decl.cu);
	uint64_t off = dwarf_dieoffset(&decl);
	struct sym_name_entry *slot = dw ? name_slot(s, dw, off) : NULL;
	if (slot && slot->dwarf)
		return slot->name;
	struct strbuf sb = STRBUF_INIT;
	bool approx = false;
	scope_prefix(c, &decl, &sb, &approx, depth);
	sb_adds(&sb, name);
	/* gcc's own words for unnamed types in a template instance's name ("run<main()::
	 * <lambda()> >"): every instance for a lambda would have the same one */
	if (strstr(name, "<lambda") || strstr(name, "<unnamed"))
		approx = true;
	const char *r = NULL;
	if (approx) {
		const char *sym = instance_symbol(c, die, &decl);
		r = sym ? without_clones(s, sym) : NULL;
	}
	if (!r)
		r = strpool_intern(&s->pool, sb_str(&sb));
	sb_release(&sb);
	/* the table may have grown while the enclosing scopes were named */
	slot = dw ? name_slot(s, dw, off) : NULL;
	if (slot && !slot->dwarf) {
		slot->dwarf = dw;
		slot->offset = off;
		slot->name = r;
		s->nnames++;
	}
	return r;
}

static const char *die_name_at(const struct name_ctx *c, Dwarf_Die *die, int depth)
{
	Dwarf_Attribute a;
	const char *n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &a));
	if (!n)
		n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &a));
	if (n)
		return sym_demangle(c->s, n);
	n = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &a));
	if (n && is_cxx(c->cu))
		return qualified_name(c, die, n, depth);
	return n;
}

static const char *die_name(const struct name_ctx *c, Dwarf_Die *die)
{
	return die_name_at(c, die, 0);
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

/* Address ranges [lo, hi), each of an item (a function entry, a CU), sorted by lo (then the
 * order they were added in) once all are in, with the running maximum of hi: the ranges that
 * hold an address are those below range_upto's count, walked down while maxhi still ends above
 * the address. */
struct addr_range {
	uint64_t lo, hi;
	uint32_t item;
	uint32_t order; /* when it was added (for functions, DIE order) */
};

struct range_index {
	struct addr_range *r;
	uint64_t *maxhi; /* maxhi[i]: the largest hi of r[0..i] */
	size_t n, alloc;
};

static void range_add(struct range_index *x, uint64_t lo, uint64_t hi, uint32_t item)
{
	ALLOC_GROW(x->r, x->n + 1, x->alloc);
	x->r[x->n] = (struct addr_range){lo, hi, item, (uint32_t)x->n};
	x->n++;
}

static int cmp_range(const void *a, const void *b)
{
	const struct addr_range *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void range_seal(struct range_index *x)
{
	if (x->n > 1)
		qsort(x->r, x->n, sizeof(*x->r), cmp_range);
	x->maxhi = xreallocarray(NULL, x->n ? x->n : 1, sizeof(*x->maxhi));
	uint64_t top = 0;
	for (size_t i = 0; i < x->n; i++) {
		if (x->r[i].hi > top)
			top = x->r[i].hi;
		x->maxhi[i] = top;
	}
}

/* The number of ranges that start at or below a. */
static size_t range_upto(const struct range_index *x, uint64_t a)
{
	size_t lo = 0, hi = x->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (x->r[mid].lo <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void range_free(struct range_index *x)
{
	free(x->r);
	free(x->maxhi);
}

struct sym_cu_index {
	uintptr_t dwarf;
	uint64_t cu_offset;
	Dwarf_Die unit; /* the CU, or the split unit of a skeleton CU: where its functions are */
	struct fn_entry *e;
	size_t n, e_alloc;
	struct range_index ranges; /* the functions' code, item: the entry */
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
			size_t first = ix->ranges.n;
			while ((off = dwarf_ranges(&child, off, &base, &lo, &hi)) > 0)
				if (hi > lo)
					range_add(&ix->ranges, lo, hi, (uint32_t)ix->n);
			if (ix->ranges.n > first) {
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

static uint64_t cu_hash(uintptr_t dw, uint64_t off)
{
	return mp_hash_mix(mp_hash_mix(0, dw), off);
}

static char *dir_of(const char *file)
{
	char *real = file ? realpath(file, NULL) : NULL;
	const char *slash = real ? strrchr(real, '/') : NULL;
	char *dir = slash ? xstrndup(real, (size_t)(slash - real)) : NULL;
	free(real);
	return dir;
}

/* Whether a split DWARF file that libdw would open for a skeleton CU is unsafe to open (see
 * unsafe_path): DW_AT_dwo_name when absolute, else in the directory of the file that holds the
 * skeleton (libdw's debugdir: the debug file's, or the module's own; both are checked), then
 * below DW_AT_comp_dir (itself below that directory when relative). *where gets the unsafe
 * file, or the first name libdw tries (for the warning when it is missing). */
static bool split_unsafe(Dwarf_Die *cu, const char *const files[2], char **where)
{
	Dwarf_Attribute a;
	const char *name = dwarf_formstring(dwarf_attr(cu, DW_AT_dwo_name, &a));
	if (!name)
		name = dwarf_formstring(dwarf_attr(cu, DW_AT_GNU_dwo_name, &a));
	const char *comp = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &a));
	if (!name)
		return false;
	struct strbuf sb = STRBUF_INIT;
	bool unsafe = false;
	for (int i = 0; i < 2 && !unsafe; i++) {
		char *dir = dir_of(files[i]);
		/* the name alone (absolute), in dir, below comp_dir, below dir/comp_dir */
		const char *heads[4][2] = {{NULL, NULL}, {dir, NULL}, {comp, NULL}, {dir, comp}};
		for (int k = 0; k < 4 && !unsafe; k++) {
			if ((k == 0) != (name[0] == '/') || (k && !heads[k][0]) ||
			    (k == 2 && comp[0] != '/') || (k == 3 && (!comp || comp[0] == '/')))
				continue;
			sb_reset(&sb);
			for (int h = 0; h < 2; h++)
				if (heads[k][h])
					sb_addf(&sb, "%s/", heads[k][h]);
			sb_adds(&sb, name);
			unsafe = unsafe_path(sb_str(&sb));
			if (unsafe || !*where) {
				free(*where);
				*where = xstrdup(sb_str(&sb));
			}
		}
		free(dir);
	}
	sb_release(&sb);
	/* unsafe_path notes it for open_module; this one is told here */
	free(refused_candidate);
	refused_candidate = NULL;
	return unsafe;
}

/* The unit that holds a CU's functions: the CU itself, or for a skeleton CU (gcc
 * -gsplit-dwarf) its split unit from the .dwo file. A .dwo that is missing, or not a regular
 * file, is told once per module, and the skeleton is used: its functions then show without
 * inlined frames. */
static void unit_of(struct symbolizer *s, struct sym_module *m, Dwarf_Die *cu, Dwarf_Die *out)
{
	uint8_t type = 0;
	*out = *cu;
	if (dwarf_cu_info(cu->cu, NULL, &type, NULL, NULL, NULL, NULL, NULL) != 0 ||
	    type != DW_UT_skeleton)
		return;
	const char *files[2] = {NULL, NULL};
	dwfl_module_info((Dwfl_Module *)m->mod, NULL, NULL, NULL, NULL, NULL, &files[0], &files[1]);
	char *where = NULL;
	bool unsafe = split_unsafe(cu, files, &where);
	Dwarf_Die sub;
	if (!unsafe && dwarf_cu_info(cu->cu, NULL, NULL, NULL, &sub, NULL, NULL, NULL) == 0 &&
	    sub.addr) {
		*out = sub;
	} else if (!m->told_split && !s->quiet) {
		m->told_split = true;
		if (unsafe)
			warning("%s: %s is not a regular file; not read as its split DWARF (.dwo) "
			        "file, so its frames there show no inlined calls",
			        m->path, where);
		else
			warning("%s: split DWARF file %s not found (built with -gsplit-dwarf: "
			        "keep the .dwo files beside it); frames in its functions show no "
			        "inlined calls",
			        m->path, where ? where : "(unnamed)");
	}
	free(where);
}

/* The function index of a CU, built on the first address in it: the CUs touched are kept in
 * a hash table by (Dwarf *, CU offset), so a program with thousands of CUs finds its own in
 * constant time. */
static struct sym_cu_index *cu_index(struct symbolizer *s, struct sym_module *m, Dwarf_Die *cu)
{
	uintptr_t dw = (uintptr_t)dwarf_cu_getdwarf(cu->cu);
	uint64_t off = dwarf_dieoffset(cu);
	if ((s->ncus + 1) * 2 > s->cus_cap) {
		size_t cap = s->cus_cap ? s->cus_cap * 2 : 64;
		struct sym_cu_index **t = xcalloc(cap, sizeof(*t));
		for (size_t i = 0; i < s->cus_cap; i++) {
			struct sym_cu_index *x = s->cus[i];
			if (!x)
				continue;
			size_t j = cu_hash(x->dwarf, x->cu_offset) & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = x;
		}
		free(s->cus);
		s->cus = t;
		s->cus_cap = cap;
	}
	size_t j = cu_hash(dw, off) & (s->cus_cap - 1);
	while (s->cus[j]) {
		if (s->cus[j]->dwarf == dw && s->cus[j]->cu_offset == off)
			return s->cus[j];
		j = (j + 1) & (s->cus_cap - 1);
	}
	struct sym_cu_index *ix = xcalloc(1, sizeof(*ix));
	ix->dwarf = dw;
	ix->cu_offset = off;
	unit_of(s, m, cu, &ix->unit);
	index_children(ix, &ix->unit, -1, 0, 0);
	range_seal(&ix->ranges);
	s->cus[j] = ix;
	s->ncus++;
	return ix;
}

/* The innermost function (concrete or inlined) whose ranges hold pc, or -1: a binary search
 * for the ranges that start at or below pc, then down while some range below still ends
 * past pc. The deepest wins; of equally deep ones, the first in DIE order. */
static int innermost_at(const struct sym_cu_index *ix, uint64_t pc)
{
	const struct range_index *x = &ix->ranges;
	int best = -1;
	uint32_t best_order = 0;
	for (size_t i = range_upto(x, pc); i-- > 0 && x->maxhi[i] > pc;) {
		const struct addr_range *r = &x->r[i];
		if (pc >= r->hi)
			continue;
		int d = ix->e[r->item].depth;
		if (best < 0 || d > ix->e[best].depth ||
		    (d == ix->e[best].depth && r->order < best_order)) {
			best = (int)r->item;
			best_order = r->order;
		}
	}
	return best;
}

/* A module's compilation units by address, from their own DW_AT_low_pc/high_pc or DW_AT_ranges,
 * for files whose .debug_aranges does not cover an address: clang emits none unless asked
 * (-gdwarf-aranges), and libdw 0.188's dwfl_module_addrdie then finds no CU at all. Built once
 * per module on the first such address, so each later one is a binary search. */
struct sym_cu_map {
	struct range_index ranges; /* item: the CU in cus */
	Dwarf_Die *cus;
	size_t ncus, cus_alloc;
	Dwarf_Addr bias;
};

static struct sym_cu_map *build_cu_map(Dwfl_Module *mod)
{
	struct sym_cu_map *map = xcalloc(1, sizeof(*map));
	Dwarf *dw = dwfl_module_getdwarf(mod, &map->bias);
	Dwarf_CU *cu = NULL;
	Dwarf_Die cudie;
	uint8_t type;
	while (dw && dwarf_get_units(dw, cu, &cu, NULL, &type, &cudie, NULL) == 0) {
		/* type units and partial units (dwz) hold no code of their own */
		if (type != DW_UT_compile && type != DW_UT_skeleton)
			continue;
		ALLOC_GROW(map->cus, map->ncus + 1, map->cus_alloc);
		map->cus[map->ncus] = cudie;
		Dwarf_Addr base, lo, hi;
		for (ptrdiff_t off = 0; (off = dwarf_ranges(&cudie, off, &base, &lo, &hi)) > 0;)
			if (hi > lo)
				range_add(&map->ranges, lo, hi, (uint32_t)map->ncus);
		map->ncus++;
	}
	range_seal(&map->ranges);
	return map;
}

static void free_cu_map(struct sym_cu_map *map)
{
	if (!map)
		return;
	range_free(&map->ranges);
	free(map->cus);
	free(map);
}

/* The CU whose ranges hold pc (a module address), or NULL; of nested or overlapping ones (a
 * corrupt file), the one that starts last. */
static Dwarf_Die *cu_by_ranges(struct sym_module *m, Dwarf_Addr pc, Dwarf_Addr *bias)
{
	if (!m->cu_map)
		m->cu_map = build_cu_map((Dwfl_Module *)m->mod);
	struct sym_cu_map *map = m->cu_map;
	const struct range_index *x = &map->ranges;
	uint64_t a = pc - map->bias;
	for (size_t i = range_upto(x, a); i-- > 0 && x->maxhi[i] > a;) {
		if (a < x->r[i].hi) {
			*bias = map->bias;
			return &map->cus[x->r[i].item];
		}
	}
	return NULL;
}

/* Innermost first: each DW_TAG_inlined_subroutine is one inlined frame whose caller's position
 * is its DW_AT_call_file:line; the enclosing DW_TAG_subprogram ends the walk. The line table is
 * the CU's (a skeleton's, with split DWARF); names, languages and call files are read from the
 * unit that holds the functions. */
static void lookup_dwarf(struct symbolizer *s, struct sym_module *m, Dwarf_Addr pc,
                         const char *symname, struct framevec *fv)
{
	Dwarf_Addr bias = 0;
	Dwarf_Die *cu = dwfl_module_addrdie((Dwfl_Module *)m->mod, pc, &bias);
	if (!cu)
		cu = cu_by_ranges(m, pc, &bias);
	const char *file = NULL;
	int line = 0;
	if (cu) {
		Dwarf_Line *l = dwarf_getsrc_die(cu, pc - bias);
		if (l) {
			file = dwarf_linesrc(l, NULL, NULL);
			dwarf_lineno(l, &line);
		}
		struct sym_cu_index *ix = cu_index(s, m, cu);
		Dwarf_Die *unit = &ix->unit;
		struct name_ctx nc = {s, m, ix, unit, bias};
		int depth = 0;
		for (int i = innermost_at(ix, pc - bias); i >= 0 && depth < 256;
		     i = ix->e[i].parent, depth++) {
			struct fn_entry *e = &ix->e[i];
			if (e->tag == DW_TAG_inlined_subroutine) {
				push_frame(s, fv, die_name(&nc, &e->die), file, line, true);
				file = call_file(unit, &e->die);
				line = call_line(&e->die);
			} else {
				const char *name = die_name(&nc, &e->die);
				push_frame(s, fv, name ? name : symname, file, line, false);
				return;
			}
		}
	}
	push_frame(s, fv, symname, file, line, false);
}

/* The ELF symbols of a module sorted by address, built once per module, so that finding the
 * symbol of an address is a binary search (dwfl_module_addrinfo scans the whole symbol table on
 * every call: most of the time `mapprof top` took on a compiler's dump). The choice among
 * symbols that hold an address follows libdwfl's rules: the closest start, then the stronger
 * binding (global, weak, local), then the smaller size; global symbols are searched before
 * local ones; a symbol without a size (an assembly label) only when no sized symbol holds the
 * address, it is in the address's section and no sized symbol ends above it. */
struct sym_entry {
	uint64_t value, size;
	uint64_t sec_lo, sec_hi; /* the symbol's section (sizeless symbols must share it) */
	const char *name;        /* libdw's string: valid while the module's Dwfl is open */
	uint32_t index;          /* in libdw's symbol order: earlier wins a full tie */
	uint8_t bind;            /* 3 global, 2 weak, 1 local */
	bool global;             /* in libdw's global pass */
	bool abs;                /* an absolute or other special-section symbol */
};

struct sym_table {
	struct sym_entry *v; /* sorted by value, then index */
	uint64_t *maxend;    /* maxend[i]: the largest value + size of v[0..i] */
	size_t n;
};

static int binding_value(unsigned char info)
{
	switch (GELF_ST_BIND(info)) {
	case STB_GLOBAL:
		return 3;
	case STB_WEAK:
		return 2;
	case STB_LOCAL:
		return 1;
	default:
		return 0;
	}
}

static int cmp_entry(const void *a, const void *b)
{
	const struct sym_entry *x = a, *y = b;
	if (x->value != y->value)
		return x->value < y->value ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static struct sym_table *build_table(Dwfl_Module *mod)
{
	struct sym_table *t = xcalloc(1, sizeof(*t));
	int n = dwfl_module_getsymtab(mod);
	int first_global = dwfl_module_getsymtab_first_global(mod);
	if (n <= 1)
		return t;
	if (first_global < 0)
		first_global = 0;
	size_t alloc = 0;
	/* the section bounds of the last symbol's section, which the next one usually shares */
	Elf *last_elf = NULL;
	GElf_Word last_shndx = SHN_UNDEF;
	uint64_t last_lo = 0, last_hi = 0;
	for (int i = 1; i < n; i++) {
		GElf_Sym sym;
		GElf_Addr value;
		GElf_Word shndx;
		Elf *elf = NULL;
		Dwarf_Addr bias = 0;
		const char *name =
		    dwfl_module_getsym_info(mod, i, &sym, &value, &shndx, &elf, &bias);
		int type = GELF_ST_TYPE(sym.st_info);
		if (!name || !name[0] || sym.st_shndx == SHN_UNDEF || type == STT_SECTION ||
		    type == STT_FILE || type == STT_TLS)
			continue;
		ALLOC_GROW(t->v, t->n + 1, alloc);
		struct sym_entry *e = &t->v[t->n++];
		e->value = value;
		e->size = sym.st_size;
		e->name = name;
		e->index = (uint32_t)i;
		e->bind = (uint8_t)binding_value(sym.st_info);
		e->global = first_global == 0 || i >= first_global;
		e->abs = shndx >= SHN_LORESERVE;
		e->sec_lo = e->sec_hi = 0;
		if (e->abs || e->size)
			continue;
		if (elf != last_elf || shndx != last_shndx) {
			last_elf = elf;
			last_shndx = shndx;
			last_lo = last_hi = 0;
			GElf_Shdr mem;
			Elf_Scn *scn = elf ? elf_getscn(elf, shndx) : NULL;
			GElf_Shdr *sh = scn ? gelf_getshdr(scn, &mem) : NULL;
			if (sh) {
				/* section addresses of the symbol's file, in the module's terms */
				last_lo = sh->sh_addr + bias;
				last_hi = last_lo + sh->sh_size;
			}
		}
		e->sec_lo = last_lo;
		e->sec_hi = last_hi;
	}
	if (t->n > 1)
		qsort(t->v, t->n, sizeof(*t->v), cmp_entry);
	t->maxend = xreallocarray(NULL, t->n ? t->n : 1, sizeof(*t->maxend));
	uint64_t m = 0;
	for (size_t i = 0; i < t->n; i++) {
		uint64_t end = t->v[i].value + t->v[i].size;
		if (end > m)
			m = end;
		t->maxend[i] = m;
	}
	return t;
}

static void free_table(struct sym_table *t)
{
	if (!t)
		return;
	free(t->v);
	free(t->maxend);
	free(t);
}

struct sym_pick {
	const struct sym_entry *closest;  /* sized, holds the address */
	const struct sym_entry *sizeless; /* the fallback */
};

/* libdwfl's preference between the current pick and another sized symbol that holds addr,
 * seen in symbol-table order. */
static bool better_sized(const struct sym_entry *cur, const struct sym_entry *e)
{
	if (!cur || cur->value < e->value || cur->bind < e->bind)
		return true;
	return cur->value == e->value && ((cur->size > e->size && cur->bind <= e->bind) ||
	                                  (cur->size >= e->size && cur->bind < e->bind));
}

static int cmp_index(const void *a, const void *b)
{
	const struct sym_entry *x = *(const struct sym_entry *const *)a;
	const struct sym_entry *y = *(const struct sym_entry *const *)b;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* One pass (globals or locals) over the symbols at or below addr. */
static void table_pass(const struct sym_table *t, size_t hi, uint64_t addr, bool global,
                       struct sym_pick *pk)
{
	/* the sized symbols that hold addr: walk down while some symbol below still ends past
	 * addr; in libdw's order, since its ties keep the first one found */
	const struct sym_entry *cand[64];
	size_t nc = 0;
	for (size_t i = hi; i-- > 0 && t->maxend[i] > addr;) {
		const struct sym_entry *e = &t->v[i];
		if (e->global != global || !e->size || addr - e->value >= e->size)
			continue;
		if (nc == sizeof(cand) / sizeof(cand[0]))
			break; /* more nested symbols than any real file has: keep the closest */
		cand[nc++] = e;
	}
	if (nc > 1)
		qsort(cand, nc, sizeof(cand[0]), cmp_index);
	for (size_t i = 0; i < nc; i++)
		if (better_sized(pk->closest, cand[i]))
			pk->closest = cand[i];
	if (pk->closest)
		return;
	/* a label: the closest sizeless symbol in addr's section, above every sized symbol's
	 * end below addr */
	uint64_t min_label = hi ? t->maxend[hi - 1] : 0;
	for (size_t i = hi, steps = 0; i-- > 0 && steps < 256; steps++) {
		const struct sym_entry *e = &t->v[i];
		if (e->value < min_label)
			break;
		if (e->global != global || e->size)
			continue;
		bool same = e->abs ? e->value == addr : addr >= e->sec_lo && addr < e->sec_hi;
		if (!same)
			continue;
		if (!pk->sizeless || pk->sizeless->value < e->value ||
		    (pk->sizeless->value == e->value && pk->sizeless->bind < e->bind))
			pk->sizeless = e;
		break;
	}
}

/* The symbol that holds addr, or NULL. */
static const struct sym_entry *table_pick(const struct sym_table *t, uint64_t addr)
{
	/* hi: the number of symbols that start at or below addr */
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->v[mid].value <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	hi = lo;
	struct sym_pick pk = {NULL, NULL};
	table_pass(t, hi, addr, true, &pk);
	if (!pk.closest && (!pk.sizeless || pk.sizeless->value != addr))
		table_pass(t, hi, addr, false, &pk);
	if (pk.closest)
		return pk.closest;
	uint64_t min_label = hi ? t->maxend[hi - 1] : 0;
	if (pk.sizeless && pk.sizeless->value >= min_label)
		return pk.sizeless;
	return NULL;
}

/* The name of the symbol that holds addr, or NULL. */
static const char *table_lookup(const struct sym_table *t, uint64_t addr)
{
	const struct sym_entry *e = table_pick(t, addr);
	return e ? e->name : NULL;
}

/* The mangled name of the function whose code starts at a DWARF function's first address,
 * or NULL. */
static const char *mangled_at(const struct name_ctx *c, Dwarf_Die *fn)
{
	Dwarf_Addr pc, base, lo, hi;
	if (dwarf_entrypc(fn, &pc) != 0) {
		if (dwarf_ranges(fn, 0, &base, &lo, &hi) <= 0)
			return NULL;
		pc = lo;
	}
	if (!c->m->table)
		return NULL;
	const struct sym_entry *e = table_pick(c->m->table, pc + c->bias);
	if (!e || e->value != pc + c->bias || strncmp(e->name, "_Z", 2) != 0)
		return NULL;
	return e->name;
}

/* The mangled name of an out-of-line copy of a function: DIE itself when it is one, else any
 * concrete function of the CU that stands for the same declaration. NULL when it was only ever
 * inlined, or the symbol table lacks it. */
static const char *instance_symbol(const struct name_ctx *c, Dwarf_Die *die, Dwarf_Die *decl)
{
	const char *r = dwarf_tag(die) == DW_TAG_subprogram ? mangled_at(c, die) : NULL;
	for (size_t i = 0; !r && c->ix && i < c->ix->n; i++) {
		Dwarf_Die d;
		if (c->ix->e[i].tag != DW_TAG_subprogram)
			continue;
		declaration_of(&c->ix->e[i].die, &d);
		if (d.addr == decl->addr)
			r = mangled_at(c, &c->ix->e[i].die);
	}
	return r;
}

/* A module without DWARF whose file has no .symtab: at most the dynamic symbols name its
 * functions, the exported ones. */
static bool stripped(Dwfl_Module *mod)
{
	GElf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	for (Elf_Scn *scn = elf ? elf_nextscn(elf, NULL) : NULL; scn; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr mem, *sh = gelf_getshdr(scn, &mem);
		if (sh && sh->sh_type == SHT_SYMTAB)
			return false;
	}
	return elf != NULL;
}

/* The end of [off, off + len), 2^64 - 1 when it does not fit in 64 bits. */
static uint64_t extent(uint64_t off, uint64_t len)
{
	return off > UINT64_MAX - len ? UINT64_MAX : off + len;
}

/* How far a module's file must reach for what its headers say it holds (program headers,
 * section headers, the contents of its PT_LOAD segments and of its sections), when that is past
 * the file's end (*size): a copy cut short (a full disk, an interrupted copy) or a damaged file.
 * A cut anywhere loses the section headers first (they come last), and with them the symbol
 * table: such a file looks stripped, but no debug file is what it lacks. 0 when the file holds
 * all of it, or cannot be judged. */
static uint64_t cut_short(Dwfl_Module *mod, uint64_t *size)
{
	GElf_Addr bias;
	Elf *elf = dwfl_module_getelf(mod, &bias);
	GElf_Ehdr eh;
	size_t raw, phnum;
	if (!elf || !gelf_getehdr(elf, &eh) || !elf_rawfile(elf, &raw))
		return 0;
	uint64_t need = extent(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize);
	uint64_t sh = extent(eh.e_shoff, (uint64_t)eh.e_shnum * eh.e_shentsize);
	if (eh.e_shoff && sh > need)
		need = sh;
	if (elf_getphdrnum(elf, &phnum) != 0)
		phnum = 0;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);
		/* a segment with no file bytes (all .bss) holds nothing of the file's */
		if (ph && ph->p_type == PT_LOAD && ph->p_filesz &&
		    extent(ph->p_offset, ph->p_filesz) > need)
			need = extent(ph->p_offset, ph->p_filesz);
	}
	for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr mem, *shdr = gelf_getshdr(scn, &mem);
		if (shdr && shdr->sh_type != SHT_NOBITS &&
		    extent(shdr->sh_offset, shdr->sh_size) > need)
			need = extent(shdr->sh_offset, shdr->sh_size);
	}
	*size = raw;
	return need > raw ? need : 0;
}

static void lookup(struct symbolizer *s, int module, uint64_t offset, struct framevec *fv)
{
	if (module < 0 || (size_t)module >= s->nmods)
		return;
	struct sym_module *m = &s->mods[module];
	open_module(s, m, true);
	if (!m->mod)
		return;
	if (m->refused_debug && !m->told_refused && !s->quiet) {
		m->told_refused = true;
		warning("%s: %s is not a regular file; not read as a debug file", m->path,
		        m->refused_debug);
	}
	/* A return address: step back into the call instruction, as pprof does. */
	Dwarf_Addr pc = offset ? offset - 1 : 0;
	if (!m->table)
		m->table = build_table((Dwfl_Module *)m->mod);
	const char *symname = table_lookup(m->table, pc);
	if (m->state == SYM_DWARF)
		lookup_dwarf(s, m, pc, symname, fv);
	else if (symname)
		push_frame(s, fv, symname, NULL, 0, false);
	else if (!m->told_stripped && !s->quiet) {
		m->told_stripped = true;
		uint64_t size = 0, need = cut_short((Dwfl_Module *)m->mod, &size);
		if (need)
			warning(
			    "%s: truncated or damaged (its ELF headers place data up to byte "
			    "%llu, the file has %llu bytes), and no debug file found (see "
			    "--debug-dir); its frames it cannot name are shown as module+offset",
			    m->path, (unsigned long long)need, (unsigned long long)size);
		else if (stripped((Dwfl_Module *)m->mod))
			warning("%s: stripped (no symbol table, and no debug file found: see "
			        "--debug-dir); its frames outside exported functions are shown as "
			        "module+offset",
			        m->path);
	}
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
	for (size_t i = 0; i < s->cus_cap; i++) {
		if (!s->cus[i])
			continue;
		free(s->cus[i]->e);
		range_free(&s->cus[i]->ranges);
		free(s->cus[i]);
	}
	free(s->cus);
	for (size_t i = 0; i < s->nmods; i++) {
		free_table(s->mods[i].table);
		free_cu_map(s->mods[i].cu_map);
		if (s->mods[i].dwfl)
			dwfl_end(s->mods[i].dwfl);
		free(s->mods[i].buildid);
	}
	free(s->mods);
	free(s->mods_index);
	strpool_free(&s->pool);
	memset(s, 0, sizeof(*s));
}
