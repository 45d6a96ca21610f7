/* symbolize.h: turns module + offset into function, file:line and inlined frames, offline, from
 * the files named in the dump's module map (elfutils libdw). Each distinct address is looked up
 * once; a module that is missing or rebuilt gives one warning and bare module+offset frames,
 * never a failure. It never reads the dump file itself. */
#ifndef MP_SYMBOLIZE_H
#define MP_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strpool.h"

enum sym_state {
	SYM_UNOPENED,
	SYM_DWARF,    /* DWARF (from the file or a separate debug file) */
	SYM_SYMTAB,   /* ELF symbol table only: functions, no lines */
	SYM_NONE,     /* the file has neither (or is the vDSO) */
	SYM_MISSING,  /* the file cannot be read */
	SYM_MISMATCH, /* the file's build-id differs from the dump's: rebuilt since the run */
};

struct sym_frame {
	const char *function; /* interned, demangled; NULL when unknown */
	const char *file;     /* interned; NULL when unknown */
	int line;             /* 0 when unknown */
	bool inlined;         /* inlined into the next frame */
};

struct sym_module {
	const char *path; /* interned */
	uint8_t *buildid;
	size_t buildid_len;
	uint64_t load_bias; /* of the first dump that named it */
	const void *ranges; /* struct mp_range[nranges] of that dump (for merge) */
	uint32_t nranges;
	bool unloaded, vdso, main;
	bool told_stripped; /* a frame in it had no name: said if it is stripped or cut short */
	bool told_refused;  /* said that refused_debug was not read */
	bool told_split;    /* said that a split DWARF (.dwo) file was not found or not read */
	const char *refused_debug; /* interned: a candidate debug file that is not a regular file
	                            * (a FIFO, a device), left unread; NULL when none */
	enum sym_state state;
	void *dwfl;                /* Dwfl *, opened on first use */
	void *mod;                 /* Dwfl_Module * */
	struct sym_table *table;   /* the ELF symbols sorted by address, built on first use */
	struct sym_cu_map *cu_map; /* its CUs by address, built when .debug_aranges fails */
};

struct sym_cache_entry;
struct sym_name_entry;
struct sym_cu_index;
struct sym_cu_map;
struct sym_table;

struct symbolizer {
	struct strpool pool;
	struct sym_module *mods;
	size_t nmods, mods_alloc;
	size_t *mods_index; /* open addressing by (path, build-id); SIZE_MAX empty */
	size_t mods_cap;
	struct sym_cache_entry *cache; /* open addressing by (module, offset) */
	size_t ncache, cache_cap;
	struct sym_cu_index **cus; /* function DIEs with their pc ranges, per CU touched; open
	                            * addressing by (Dwarf *, CU offset) */
	size_t ncus, cus_cap;
	struct sym_name_entry *names; /* qualified C++ names by declaration DIE */
	size_t nnames, names_cap;
	size_t lookups; /* distinct addresses symbolized (for tests and --stats) */
	bool quiet;     /* no warnings */
};

/* Adds (or finds: same path and build-id) a module; returns its index. */
int sym_add_module(struct symbolizer *s, const char *path, const uint8_t *buildid,
                   size_t buildid_len, uint64_t load_bias, bool main, bool unloaded, bool vdso);
/* The frames of one return address, innermost (inlined) first, into *out; returns how many
 * (at least 1). module < 0 means the address is in no module. */
size_t sym_lookup(struct symbolizer *s, int module, uint64_t offset, const struct sym_frame **out);
/* Opens a module (if not yet) so its state is known; no warning for a module no frame uses. */
enum sym_state sym_module_state(struct symbolizer *s, int module);
const char *sym_state_name(enum sym_state st);
/* Demangles a C++ name into the pool (or returns it interned unchanged). */
const char *sym_demangle(struct symbolizer *s, const char *name);
void sym_free(struct symbolizer *s);
/* --debug-dir: colon-separated directories searched for separate debug files (by build-id and
 * by .gnu_debuglink) before /usr/lib/debug. Dies when one does not exist. */
void sym_set_debug_dirs(const char *dirs);

#endif
