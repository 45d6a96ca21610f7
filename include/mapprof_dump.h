/* mapprof_dump.h: the one definition of the mapprof dump file format.
 * Shared by the shim (writer) and the report tool (reader); docs/dump-format.md
 * explains it for other readers. Plain data only: no functions, no allocation. */
#ifndef MAPPROF_DUMP_H
#define MAPPROF_DUMP_H

#include <stdint.h>

/* A dump is a file header followed by records. Every integer is little-endian
 * and every record starts on an 8-byte boundary (payloads are zero-padded).
 *
 *   file header   (struct mp_file_header)
 *   record*       (struct mp_record_header + payload)
 *   END record    (last; its totals must equal the sum over CHAIN records)
 *
 * Version 2 stores each distinct frame once, in a FRAMES record before the
 * first CHAIN, and a chain's frames as 32-bit indices into it. Version 1
 * stored each chain's frames in full (struct mp_frame each) and had no
 * FRAMES record; readers may still accept it.
 *
 * A reader must reject a version it does not know and skip record tags it
 * does not know (their length says how far). Version changes whenever an
 * existing record's layout changes; new record tags do not bump it. */

#define MP_MAGIC     "MAPPROF\0"
#define MP_MAGIC_LEN 8
#define MP_VERSION   2u

struct mp_file_header {
	char magic[MP_MAGIC_LEN]; /* MP_MAGIC */
	uint32_t version;         /* MP_VERSION */
	uint32_t header_size;     /* sizeof(struct mp_file_header) == 16 */
};

struct mp_record_header {
	uint32_t tag;    /* enum mp_tag */
	uint32_t flags;  /* per-tag; 0 when unused */
	uint64_t length; /* payload bytes, excluding padding to 8 */
};

enum mp_tag {
	MP_TAG_INFO = 1,       /* struct mp_info: one, first record */
	MP_TAG_EXE = 2,        /* payload: executable path bytes (no NUL) */
	MP_TAG_CMDLINE = 3,    /* payload: argv strings, each NUL-terminated */
	MP_TAG_MODULE = 4,     /* struct mp_module + ranges + build-id + path */
	MP_TAG_CHAIN = 5,      /* struct mp_chain + frame indices + size classes */
	MP_TAG_FRAMES = 6,     /* struct mp_frame[]: every frame the chains use, once */
	MP_TAG_SOURCES = 7,    /* mapprof merge: struct mp_source entries, one per input */
	MP_TAG_END = 0x454e44u /* "END": struct mp_end, last record */
};

/* mp_info.flags */
#define MP_INFO_FREES_TRACKED 0x1u /* inuse_* are meaningful */
#define MP_INFO_SAMPLED       0x2u /* sample_period > 0: counts are samples */
#define MP_INFO_FORKED        0x4u /* this process is a fork child: counts start at the fork */

/* mp_info.unwinder */
#define MP_UNWIND_LIBUNWIND 0u
#define MP_UNWIND_FP        1u

struct mp_info {
	uint64_t pid;
	uint64_t ppid;
	uint64_t start_ns;      /* CLOCK_REALTIME at profiling start (or fork) */
	uint64_t end_ns;        /* CLOCK_REALTIME when the dump was taken */
	uint32_t flags;         /* MP_INFO_* */
	uint32_t max_depth;     /* MAPPROF_DEPTH in effect */
	uint32_t unwinder;      /* MP_UNWIND_* */
	uint32_t sequence;      /* 0 for the exit dump; n for the n-th on-demand dump */
	uint64_t sample_period; /* mean bytes between samples; 0 = every call recorded */
	uint64_t not_recorded;  /* calls forwarded but not recorded (bookkeeping out of memory) */
	uint64_t threads;       /* threads that allocated while profiled */
};

/* mp_module.flags */
#define MP_MODULE_MAIN     0x1u /* the executable */
#define MP_MODULE_UNLOADED 0x2u /* dlclose'd before the dump */
#define MP_MODULE_VDSO     0x4u /* kernel vDSO: no file on disk */

/* One loaded ELF object. A frame's offset is relative to load_bias, so it is
 * the ELF virtual address in the file (what addr2line and libdw expect). */
struct mp_module {
	uint32_t id; /* referenced by mp_frame.module; ids are 0..n-1 */
	uint32_t flags;
	uint64_t load_bias;   /* runtime address minus ELF vaddr (dl_iterate_phdr's dlpi_addr) */
	uint32_t nranges;     /* struct mp_range entries that follow */
	uint32_t buildid_len; /* bytes of GNU build-id after the ranges (0 if none) */
	uint32_t path_len;    /* bytes of path after the build-id (no NUL) */
	uint32_t reserved;
	/* struct mp_range ranges[nranges]; uint8_t buildid[]; char path[]; */
};

/* One PT_LOAD segment as mapped at run time. */
struct mp_range {
	uint64_t start; /* runtime address */
	uint64_t end;   /* exclusive */
	uint64_t file_offset;
	uint32_t prot; /* PF_R | PF_W | PF_X from the ELF program header */
	uint32_t reserved;
};

#define MP_MODULE_NONE 0xffffffffu /* frame outside every module: offset is the raw address */

/* A frame is a return address (the instruction after the call). A chain
 * lists its frames innermost first; its first is in the function that called
 * the allocator. Subtract one from offset before looking up a line. The
 * FRAMES record holds each distinct frame once; index i is its i-th entry. */
struct mp_frame {
	uint32_t module; /* mp_module.id or MP_MODULE_NONE */
	uint32_t reserved;
	uint64_t offset; /* address - module load_bias */
};

/* mp_chain.flags */
#define MP_CHAIN_TRUNCATED 0x1u /* the stack was deeper than max_depth */

/* Requests are grouped in log2 size classes: class 0 holds size 0 and class
 * c >= 1 holds sizes in [2^(c-1), 2^c). Classes with no allocation are left out. */
#define MP_SIZE_CLASSES 65

struct mp_chain {
	uint32_t id;
	uint32_t flags;    /* MP_CHAIN_* */
	uint32_t nframes;  /* uint32_t frame indices that follow (zero-padded to 8 bytes) */
	uint32_t nclasses; /* struct mp_size_class entries after the frame indices */
	uint64_t alloc_objects;
	uint64_t alloc_space;
	uint64_t inuse_objects; /* still allocated at the dump */
	uint64_t inuse_space;
	/* uint32_t frames[nframes]; 4 zero bytes if nframes is odd;
	 * struct mp_size_class classes[nclasses]; */
};

struct mp_size_class {
	uint32_t log2; /* size class, 0..64 */
	uint32_t reserved;
	uint64_t objects;  /* allocations in this class */
	uint64_t bytes;    /* their requested bytes */
	uint64_t min_size; /* smallest request in this class */
	uint64_t max_size; /* largest request in this class */
};

struct mp_end {
	uint64_t nchains;
	uint64_t nmodules;
	uint64_t alloc_objects; /* sums over all chains */
	uint64_t alloc_space;
	uint64_t inuse_objects;
	uint64_t inuse_space;
};

/* SOURCES (written by mapprof merge, at most one): the process images a merged
 * profile came from, one entry each, in the order they were merged. An entry
 * is this header, then exe_len bytes of executable path (no NUL), then zero
 * bytes up to a multiple of 8. A merge of merged dumps lists their sources. */
struct mp_source {
	uint64_t pid; /* the input's INFO pid, ppid, start_ns, sample_period and sequence */
	uint64_t ppid;
	uint64_t start_ns;
	uint64_t sample_period; /* > 0: the input was sampled (its counts merged as estimates) */
	uint32_t sequence;
	uint32_t exe_len;
};

#endif /* MAPPROF_DUMP_H */
