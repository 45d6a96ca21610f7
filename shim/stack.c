/* stack.c: captures the allocating thread's call stack as raw return
 * addresses with libunwind. Runs inside malloc: never allocate through malloc,
 * never block on I/O, never symbolize. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <libunwind.h>
#include <link.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hashkeys.h"
#include "shim.h"

#define SKIP_ROOM MP_SKIP_ROOM

struct text_range {
	uintptr_t addr; /* any address inside the object */
	uintptr_t lo, hi;
};

static int find_text(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct text_range *r = arg;
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t s = info->dlpi_addr + ph->p_vaddr;
		if (s < lo)
			lo = s;
		if (s + ph->p_memsz > hi)
			hi = s + ph->p_memsz;
	}
	if (r->addr >= lo && r->addr < hi) {
		r->lo = lo;
		r->hi = hi;
		return 1;
	}
	return 0;
}

static void object_range(void *addr, uintptr_t *lo, uintptr_t *hi)
{
	struct text_range r = {(uintptr_t)addr, 0, 0};
	dl_iterate_phdr(find_text, &r);
	*lo = r.lo;
	*hi = r.hi;
}

/* ---- libunwind's memory reads ----
 *
 * libunwind checks an address before it reads it in a step (always, as
 * Debian builds it): mincore or msync, then a read and a 1-byte write of
 * the page on a pipe it opens at start, whose two file descriptors it keeps
 * by number. A program that closes every descriptor above 2 (a daemon) and
 * opens files again gets those numbers, and libunwind then reads a byte of
 * the program's file and writes a byte into another. So the shim reads
 * memory for libunwind itself: an address on the thread's stack directly,
 * any other after a check that needs no descriptor (a futex wait with a zero
 * timeout reads the word, and fails with EFAULT where a read would fault),
 * remembered per thread for a few pages; and it closes libunwind's pipe. */
/* This thread's stack, for validating frame pointers and libunwind's reads. */
static __thread uintptr_t stack_lo, stack_hi;
static __thread bool stack_asked; /* mp_stack_thread_init asked once */

/* The spare stack (see mp_on_spare). */
#define SPARE_BYTES ((size_t)256 << 10)
#define SPARE_GUARD ((size_t)4096)
static __thread char *spare;     /* its lowest usable byte, or NULL */
static __thread bool spare_gone; /* the thread's exit hook ran: no new one */

static inline bool on_spare(uintptr_t addr)
{
	return spare && addr - (uintptr_t)spare <= SPARE_BYTES - sizeof(uintptr_t);
}

#define GOOD_PAGES 4
static __thread uintptr_t good_page[GOOD_PAGES];
static __thread unsigned good_next;

static bool page_readable(uintptr_t page)
{
	for (int i = 0; i < GOOD_PAGES; i++)
		if (good_page[i] == page)
			return true;
	struct timespec zero = {0, 0};
	int saved = errno;
	long r = syscall(SYS_futex, (void *)page, FUTEX_WAIT_PRIVATE, 0x5eed1e55u, &zero, NULL, 0);
	bool ok = r == 0 || errno != EFAULT;
	errno = saved;
	if (ok)
		good_page[good_next++ % GOOD_PAGES] = page;
	return ok;
}

static int access_mem(unw_addr_space_t as, unw_word_t addr, unw_word_t *val, int write, void *arg)
{
	(void)as;
	(void)arg;
	if (write) {
		*(unw_word_t *)addr = *val;
		return 0;
	}
	if ((!stack_hi || addr < stack_lo || addr > stack_hi - sizeof(unw_word_t)) &&
	    !on_spare(addr)) {
		uintptr_t first = addr & ~(uintptr_t)4095, last = (addr + 7) & ~(uintptr_t)4095;
		if (!first || !page_readable(first) || (last != first && !page_readable(last)))
			return -UNW_EINVAL;
	}
	*val = *(const unw_word_t *)addr;
	return 0;
}

/* The two lowest free descriptors (pipe2 takes them), or -1. */
static void lowest_free_fds(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) != 0) {
		fds[0] = fds[1] = -1;
		return;
	}
	close(fds[0]);
	close(fds[1]);
}

/* Whether fds are the two ends of one pipe opened non-blocking, as
 * libunwind opens its own. */
static bool is_unwind_pipe(const int fds[2])
{
	struct stat a, b;
	if (fds[0] < 0 || fstat(fds[0], &a) != 0 || fstat(fds[1], &b) != 0)
		return false;
	int fl0 = fcntl(fds[0], F_GETFL), fl1 = fcntl(fds[1], F_GETFL);
	return S_ISFIFO(a.st_mode) && S_ISFIFO(b.st_mode) && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev && fl0 >= 0 && fl1 >= 0 && (fl0 & O_NONBLOCK) &&
	       (fl1 & O_NONBLOCK) && (fl0 & O_ACCMODE) == O_RDONLY && (fl1 & O_ACCMODE) == O_WRONLY;
}

static void unwind_take_reads(void)
{
	int fds[2];
	lowest_free_fds(fds);
	/* libunwind sets itself up, pipe included, at its first call. */
	unw_accessors_t *acc = unw_get_accessors(unw_local_addr_space);
	if (acc)
		acc->access_mem = access_mem;
	/* Its pipe is now unused: close it if it was opened just now, where
	 * pipe2 had to put it. */
	if (is_unwind_pipe(fds)) {
		close(fds[0]);
		close(fds[1]);
	}
}

/* ---- libunwind's trace caches ----
 *
 * unw_backtrace keeps a table of the frames it has seen, one per thread:
 * at a thread's first walk libunwind maps 256 KiB (2^14 entries of 16
 * bytes) and fills every entry, 64 page faults, and a key destructor unmaps
 * it when the thread ends. That was nearly all of what a short-lived thread
 * cost (2,000 threads that allocate once: 1.6 s against 0.12 s without the
 * shim). So libunwind's own calls of mmap and munmap (its GOT entries, no
 * one else's) come here: a table libunwind unmaps is kept, up to KEEP_MAX
 * of them, and handed out again, zeroed as a new mapping would be, at the
 * next request of that size. Only regions handed out here and listed while
 * libunwind holds them are kept (it also unmaps files it mapped): a region
 * not listed (more than LENT_MAX held at once) is unmapped as before. Lock
 * free: these calls come from walks, signal handlers' too. */
#define KEPT_BYTES ((size_t)256 << 10)
#define KEEP_MAX   8 /* 2 MiB at most held for threads to come */
#define LENT_MAX   256
static uintptr_t kept[KEEP_MAX], lent[LENT_MAX];

static void *unwind_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	if (addr || len != KEPT_BYTES || prot != (PROT_READ | PROT_WRITE) ||
	    flags != (MAP_PRIVATE | MAP_ANONYMOUS) || fd != -1 || off != 0)
		return mmap(addr, len, prot, flags, fd, off);
	uintptr_t p = 0;
	for (int i = 0; i < KEEP_MAX && !p; i++)
		if (__atomic_load_n(&kept[i], __ATOMIC_RELAXED))
			p = __atomic_exchange_n(&kept[i], 0, __ATOMIC_ACQUIRE);
	if (p) {
		memset((void *)p, 0, len);
	} else {
		void *m = mmap(addr, len, prot, flags, fd, off);
		if (m == MAP_FAILED)
			return m;
		p = (uintptr_t)m;
	}
	for (int i = 0; i < LENT_MAX; i++) {
		uintptr_t none = 0;
		if (__atomic_compare_exchange_n(&lent[i], &none, p, false, __ATOMIC_RELAXED,
		                                __ATOMIC_RELAXED))
			break;
	}
	return (void *)p;
}

static int unwind_munmap(void *addr, size_t len)
{
	uintptr_t p = (uintptr_t)addr;
	for (int i = 0; p && len == KEPT_BYTES && i < LENT_MAX; i++) {
		uintptr_t was = p;
		if (__atomic_load_n(&lent[i], __ATOMIC_RELAXED) != p ||
		    !__atomic_compare_exchange_n(&lent[i], &was, 0, false, __ATOMIC_RELAXED,
		                                 __ATOMIC_RELAXED))
			continue;
		for (int j = 0; j < KEEP_MAX; j++) {
			uintptr_t none = 0;
			if (__atomic_compare_exchange_n(&kept[j], &none, p, false, __ATOMIC_RELEASE,
			                                __ATOMIC_RELAXED))
				return 0;
		}
		break;
	}
	return munmap(addr, len);
}

#if defined(__x86_64__)
#define GOT_JUMP_SLOT R_X86_64_JUMP_SLOT
#define GOT_GLOB_DAT  R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define GOT_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define GOT_GLOB_DAT  R_AARCH64_GLOB_DAT
#endif

#ifdef GOT_JUMP_SLOT
struct got_find {
	uintptr_t addr; /* any address inside the object */
	uintptr_t mmap_slot, munmap_slot;
	uintptr_t ro_lo, ro_hi; /* the pages the loader made read-only after relocating */
};

static void got_scan(const ElfW(Rela) * r, size_t bytes, const ElfW(Sym) * sym, const char *str,
                     uintptr_t base, struct got_find *f)
{
	for (size_t i = 0; r && i < bytes / sizeof(*r); i++) {
		unsigned long type = ELF64_R_TYPE(r[i].r_info), k = ELF64_R_SYM(r[i].r_info);
		if ((type != GOT_JUMP_SLOT && type != GOT_GLOB_DAT) || !k)
			continue;
		const char *name = str + sym[k].st_name;
		if (!strcmp(name, "mmap") || !strcmp(name, "mmap64"))
			f->mmap_slot = base + r[i].r_offset;
		else if (!strcmp(name, "munmap"))
			f->munmap_slot = base + r[i].r_offset;
	}
}

/* The GOT entries of mmap and munmap in the object that holds f->addr. */
static int got_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct got_find *f = arg;
	uintptr_t base = info->dlpi_addr, page = (uintptr_t)getpagesize();
	const ElfW(Dyn) *dyn = NULL;
	bool inside = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t s = base + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && f->addr >= s && f->addr < s + ph->p_memsz)
			inside = true;
		else if (ph->p_type == PT_DYNAMIC)
			dyn = (const ElfW(Dyn) *)s;
		else if (ph->p_type == PT_GNU_RELRO) {
			f->ro_lo = s & ~(page - 1);
			f->ro_hi = (s + ph->p_memsz) & ~(page - 1);
		}
	}
	if (!inside)
		return 0;
	const ElfW(Sym) *sym = NULL;
	const char *str = NULL;
	const ElfW(Rela) *rela = NULL, *jmprel = NULL;
	size_t relasz = 0, jmprelsz = 0;
	long pltrel = DT_RELA;
	/* The loader has relocated most address entries of a loaded object's
	 * dynamic section in place; on some targets it leaves them relative. */
#define DYN_PTR(d) ((d)->d_un.d_ptr < base ? base + (d)->d_un.d_ptr : (d)->d_un.d_ptr)
	for (const ElfW(Dyn) *d = dyn; d && d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_SYMTAB:
			sym = (const ElfW(Sym) *)DYN_PTR(d);
			break;
		case DT_STRTAB:
			str = (const char *)DYN_PTR(d);
			break;
		case DT_RELA:
			rela = (const ElfW(Rela) *)DYN_PTR(d);
			break;
		case DT_RELASZ:
			relasz = d->d_un.d_val;
			break;
		case DT_JMPREL:
			jmprel = (const ElfW(Rela) *)DYN_PTR(d);
			break;
		case DT_PLTRELSZ:
			jmprelsz = d->d_un.d_val;
			break;
		case DT_PLTREL:
			pltrel = (long)d->d_un.d_val;
			break;
		}
	}
#undef DYN_PTR
	if (sym && str && pltrel == DT_RELA) {
		got_scan(jmprel, jmprelsz, sym, str, base, f);
		got_scan(rela, relasz, sym, str, base, f);
	}
	return 1;
}

static bool got_set(uintptr_t slot, void *fn, const struct got_find *f)
{
	uintptr_t page = (uintptr_t)getpagesize(), at = slot & ~(page - 1);
	bool ro = slot >= f->ro_lo && slot < f->ro_hi;
	if (ro && mprotect((void *)at, page, PROT_READ | PROT_WRITE) != 0)
		return false;
	__atomic_store_n((void **)slot, fn, __ATOMIC_RELEASE);
	if (ro)
		mprotect((void *)at, page, PROT_READ);
	return true;
}

/* munmap first: a region handed out here is then always given back here. */
static void unwind_keep_tables(void)
{
	struct got_find f = {(uintptr_t)unw_backtrace, 0, 0, 0, 0};
	dl_iterate_phdr(got_find_cb, &f);
	if (f.mmap_slot && f.munmap_slot && got_set(f.munmap_slot, (void *)unwind_munmap, &f))
		got_set(f.mmap_slot, (void *)unwind_mmap, &f);
}
#else
static void unwind_keep_tables(void)
{
}
#endif

void mp_stack_init(void)
{
	object_range((void *)mp_stack_init, &mp.self_lo, &mp.self_hi);
	object_range((void *)unw_backtrace, &mp.unw_lo, &mp.unw_hi);
	unwind_take_reads();
	unwind_keep_tables();
	/* Where libunwind is built with thread-local storage, its unwind-info
	 * cache is then kept per thread; Debian's 1.6.2 is not, and keeps it
	 * global, under a lock (a sigprocmask pair and a mutex per frame). The
	 * hot path takes neither: unw_backtrace finds its frames in the trace
	 * cache, per thread either way. */
	unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
	mp.membarrier_ok =
	    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

/* ---- the unwind gate ----
 *
 * libunwind takes internal mutexes while it parses unwind info (its memory
 * pools). A fork while another thread holds one leaves it locked in the child,
 * whose next unwind then hangs. So a fork first waits until no other thread is
 * inside libunwind, and holds new ones back until it is done. It is the
 * asymmetric Dekker pattern: an unwinding thread stores its flag and then
 * loads fork_pending; the forking thread stores fork_pending, runs membarrier
 * (a full barrier on every thread of the process), then loads the flags; one
 * of the two sees the other. The hot side then costs two plain stores, a load
 * and a compiler barrier; without membarrier it takes a full fence.
 * The shim's own dl_iterate_phdr calls (modules.c) pass the same gate: the
 * loader's lock they take is not reset in a fork child either. */
__thread int mp_unwinding;
__thread bool mp_unwind_registered;

void mp_gate_leave(bool registered)
{
	if (registered)
		__atomic_store_n(&mp_unwinding, 0, __ATOMIC_RELEASE);
	else
		__atomic_sub_fetch(&mp.unwinding_unregistered, 1, __ATOMIC_SEQ_CST);
}

bool mp_gate_enter(void)
{
	bool registered;
	for (;;) {
		registered = mp_unwind_registered;
		if (likely(registered)) {
			__atomic_store_n(&mp_unwinding, 1, __ATOMIC_RELAXED);
			if (likely(mp.membarrier_ok))
				__asm__ volatile("" ::: "memory");
			else
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
		} else {
			__atomic_add_fetch(&mp.unwinding_unregistered, 1, __ATOMIC_SEQ_CST);
		}
		if (likely(!__atomic_load_n(&mp.fork_pending, __ATOMIC_RELAXED)))
			return registered;
		mp_gate_leave(registered);
		while (__atomic_load_n(&mp.fork_pending, __ATOMIC_ACQUIRE))
			sched_yield();
	}
}

static int gated_backtrace(void **buf, int want)
{
	bool registered = mp_gate_enter();
	int n = unw_backtrace(buf, want);
	mp_gate_leave(registered);
	return n;
}

void mp_heavy_barrier(void)
{
	if (mp.membarrier_ok &&
	    syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* Waits (bounded: a thread stuck inside libunwind for seconds must not hang
 * the program's fork) until no other thread is inside libunwind. The calling
 * thread's own flag is skipped: it may be a signal handler that interrupted
 * an unwind on this very thread. */
void mp_unwind_drain(void)
{
	__atomic_store_n(&mp.fork_pending, 1, __ATOMIC_SEQ_CST);
	mp_heavy_barrier();
	for (unsigned spins = 0; spins < 200000; spins++) {
		bool busy = __atomic_load_n(&mp.unwinding_unregistered, __ATOMIC_ACQUIRE) >
		            (mp_unwinding && !mp_unwind_registered ? 1u : 0u);
		busy = busy || mp_tcaches_unwinding(&mp_unwinding);
		if (!busy)
			return;
		sched_yield();
	}
}

void mp_unwind_reopen(bool child)
{
	/* The registration belongs to the process image; ask again in a child. */
	if (child && mp.membarrier_ok)
		mp.membarrier_ok =
		    syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
	__atomic_store_n(&mp.fork_pending, 0, __ATOMIC_RELEASE);
}

/* ---- this thread's stack ---- */

extern void *__libc_stack_end; /* the dynamic loader's: the top of the process's first stack */

/* The first thread's stack as glibc's pthread_getattr_np finds it (from the
 * /proc/self/maps line holding __libc_stack_end, and RLIMIT_STACK), but
 * without it: glibc's runs holding the thread's lock while it opens the file,
 * and the shim may start inside such a call, one that bypassed the shim's
 * own pthread_getattr_np (lifecycle.c) from another library's constructor.
 * Read with system calls into a buffer on the stack. NOT_FIRST for another
 * thread (a fork child's thread forked from another than the first has the
 * process's id too, not its stack); UNREAD when the file cannot be read
 * (glibc's would fail as well). */
enum { NOT_FIRST, FIRST_READ, FIRST_UNREAD };

static int first_thread_stack(uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t end = (uintptr_t)__libc_stack_end;
	if (!end || sp > end || end - sp > ((uintptr_t)1 << 30) || syscall(SYS_gettid) != getpid())
		return NOT_FIRST;
	struct rlimit rl;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	if (getrlimit(RLIMIT_STACK, &rl) != 0 || !page || (page & (page - 1)))
		return FIRST_UNREAD;
	uintptr_t top = (end & -page) + page;
	struct mp_maps_hit hit;
	if (!mp_maps_find(end, &hit, NULL, 0))
		return FIRST_UNREAD;
	/* glibc's sums: the limit less what lies above the top, in whole
	 * pages, and no lower than the mapping below. */
	uintptr_t size = ((uintptr_t)rl.rlim_cur - (hit.to - top)) & -page;
	if (size > top - hit.prev_to)
		size = top - hit.prev_to;
	if (sp < top - size || sp >= top)
		return NOT_FIRST;
	*lo = top - size;
	*hi = top;
	return FIRST_READ;
}

/* Learns this thread's stack bounds, once. pthread_getattr_np holds the
 * thread's lock while it allocates (glibc: realloc for the affinity mask,
 * and fopen of /proc/self/maps for the main thread), so it cannot be asked
 * from a call made inside it, on this thread, for this thread or another
 * (two threads asking about each other would wait on each other's lock):
 * false then, and the caller asks again later. The first thread's are read
 * without it. A thread whose bounds stay unknown is walked by libunwind, with
 * every read checked. Asked once only: a thread asked about before its start
 * routine ran (start.c) must not ask again from a later first allocation,
 * which a call of libc's pthread_getattr_np that bypasses the shim's may
 * make. */
bool mp_stack_thread_init(void)
{
	if (stack_hi || stack_asked)
		return true;
	uintptr_t lo = 0, hi = 0;
	int first = first_thread_stack(&lo, &hi);
	if (first != NOT_FIRST) {
		if (first == FIRST_READ) {
			stack_lo = lo;
			stack_hi = hi;
		}
		stack_asked = true;
		return true;
	}
	if (mp_tl.in_getattr)
		return false;
	stack_asked = true;
	pthread_attr_t attr;
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return true; /* asked: nothing to learn */
	void *addr;
	size_t size;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
		stack_lo = (uintptr_t)addr;
		stack_hi = stack_lo + size;
	}
	pthread_attr_destroy(&attr);
	return true;
}

static inline bool own_frame(uintptr_t ip)
{
	return (ip >= mp.self_lo && ip < mp.self_hi) || (ip >= mp.unw_lo && ip < mp.unw_hi);
}

/* Which return addresses a frame-pointer walk may step past. The record a
 * callee saves holds its caller's rbp; that is the caller's own frame only
 * if the caller keeps a frame pointer. So the step from return address ra
 * (inside caller F) to the next record is right exactly when F keeps one, a
 * fact about ra alone, learned once per address by comparing a walk with
 * libunwind's, and kept here: a direct-mapped table of ra << 1 | good, one
 * 64-bit word per slot so a racing reader sees a whole entry or none. An
 * evicted address is learned again. */
#define VERDICT_BITS 14
static uint64_t verdicts[1u << VERDICT_BITS];

enum { RA_UNKNOWN, RA_GOOD, RA_BAD };

static inline unsigned verdict_slot(uintptr_t ra)
{
	return (unsigned)((ra * 0x9e3779b97f4a7c15ull) >> (64 - VERDICT_BITS));
}

static inline int verdict(uintptr_t ra)
{
	uint64_t v = __atomic_load_n(&verdicts[verdict_slot(ra)], __ATOMIC_RELAXED);
	if (v >> 1 != ra)
		return RA_UNKNOWN;
	return v & 1 ? RA_GOOD : RA_BAD;
}

static inline void verdict_set(uintptr_t ra, bool good)
{
	__atomic_store_n(&verdicts[verdict_slot(ra)], (uint64_t)ra << 1 | good, __ATOMIC_RELAXED);
}

/* The rules of a step along the frame-pointer chain, for both walks: a
 * record is read only where it lies whole on the stack, 8-byte aligned; the
 * next one must lie above it, and a chain that leaves the stack ends there
 * (the C runtime's start code does not keep frame pointers). */
static inline bool record_readable(uintptr_t fp, uintptr_t hi)
{
	return fp <= hi - 2 * sizeof(uintptr_t) && !(fp & 7);
}

enum { STEP_ON, STEP_END, STEP_BROKEN };

static inline int step_to(uintptr_t next, uintptr_t fp, uintptr_t lo, uintptr_t hi)
{
	if (next < lo || next >= hi)
		return STEP_END;
	return next <= fp ? STEP_BROKEN : STEP_ON;
}

/* Walk the frame-pointer chain. Every frame must lie on this thread's stack,
 * above the previous one, and the walk ends where the chain leaves the stack
 * (the C runtime's start code does not keep frame pointers). With check, it
 * also stops (returns -1, the caller falls back to libunwind) at a return
 * address not known to lie in a function that keeps a frame pointer: code
 * built without them would make the walk skip frames; *unknown then says
 * whether the address is yet to be learned. A thread whose stack is unknown
 * (a signal handler on an alternate stack) or a broken chain also returns -1.
 * Without check (for learning) every step is trusted and the walk returns
 * what it got as far as the chain goes. *last_depth is the distance of the
 * last record from the top of the stack. Never dereferences anything outside
 * the stack. */
__attribute__((noinline)) static int fp_walk(void **buf, int want, bool check, bool *unknown,
                                             uintptr_t *last_depth)
{
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
	int n = 0;
	*unknown = false;
	if (!stack_hi || fp < stack_lo || fp >= stack_hi)
		return check ? -1 : 0;
	while (n < want) {
		if (!record_readable(fp, stack_hi))
			return check ? -1 : n;
		const uintptr_t *frame = (const uintptr_t *)fp;
		uintptr_t next = frame[0], ra = frame[1];
		if (!ra)
			break;
		buf[n++] = (void *)ra;
		*last_depth = stack_hi - fp;
		int step = step_to(next, fp, stack_lo, stack_hi);
		if (step == STEP_END)
			break;
		if (step == STEP_BROKEN)
			return check ? -1 : n;
		int v = !check || own_frame(ra) ? RA_GOOD : verdict(ra); /* the shim keeps them */
		if (v != RA_GOOD) {
			*unknown = v == RA_UNKNOWN;
			return -1;
		}
		fp = next;
	}
	return n;
}

/* Learn the verdicts of a frame-pointer walk's return addresses from
 * libunwind's walk of the same stack (both taken in mp_stack_capture, so
 * their innermost frames line up once our own are skipped). */
static void verdicts_learn(void **fpw, int nf, void **unw, int nu)
{
	int i = 0, j = 0;
	while (i < nf && own_frame((uintptr_t)fpw[i]))
		i++;
	while (j < nu && own_frame((uintptr_t)unw[j]))
		j++;
	for (; i + 1 < nf && j + 1 < nu; i++, j++) {
		if (unw[j] != fpw[i])
			return;
		bool good = unw[j + 1] == fpw[i + 1];
		verdict_set((uintptr_t)fpw[i], good);
		if (!good)
			return;
	}
}

/* The frames above the last one a frame-pointer walk reaches (the C
 * runtime's start code, thread start: code without frame pointers whose rbp
 * points off the stack) rarely change for a given return address at a given
 * depth below the top of the stack, so libunwind finds them once and they
 * are reused. Not blindly: when learned, the stack slot holding each of those
 * return addresses is found and remembered, and a reuse checks that those
 * slots still hold them (a few loads). A return address reached on another
 * path at the same depth (a function without frame pointers called from
 * several places) has other callers in those slots and takes libunwind's
 * full walk. */
#define TAIL_CACHE 64
#define TAIL_MAX   6
#define TAIL_SCAN  4096 /* words searched for the slots when learning */
static struct tail {
	uintptr_t last; /* 0: free; (uintptr_t)-1: being filled */
	uintptr_t depth;
	int n;
	uintptr_t tail[TAIL_MAX];
	uintptr_t where[TAIL_MAX]; /* stack_hi - address of the slot holding tail[i] */
} tails[TAIL_CACHE];

static inline unsigned tail_slot(uintptr_t last, uintptr_t depth)
{
	return (unsigned)(((last ^ depth * 0xff51afd7ed558ccdull) * 0x9e3779b97f4a7c15ull) >> 58);
}

/* The tail cache's entry for (last, depth) whose slots still hold its
 * return addresses, or NULL; lo and hi are this thread's stack bounds. */
static inline const struct tail *tail_lookup(uintptr_t last, uintptr_t depth, uintptr_t lo,
                                             uintptr_t hi)
{
	const struct tail *t = &tails[tail_slot(last, depth)];
	if (__atomic_load_n(&t->last, __ATOMIC_ACQUIRE) != last || t->depth != depth)
		return NULL;
	for (int i = 0, k = t->n; i < k; i++) {
		uintptr_t w = t->where[i];
		if (w > hi - lo || *(const uintptr_t *)(hi - w) != t->tail[i])
			return NULL;
	}
	return t;
}

/* The tail's return addresses into out; their number, or -1. */
static int tail_find(uintptr_t last, uintptr_t depth, uintptr_t *out)
{
	const struct tail *t = tail_lookup(last, depth, stack_lo, stack_hi);
	if (!t)
		return -1;
	memcpy(out, t->tail, (size_t)t->n * sizeof(*out));
	return t->n;
}

/* For the fast walk: the tail's frames added to *s at positions *n on (up
 * to max, else *truncated), not copied out; false if there is no tail. */
static inline bool tail_hash(uintptr_t last, uintptr_t depth, uintptr_t lo, uintptr_t hi,
                             struct mp_hash *s, uint32_t *n, uint32_t max, bool *truncated)
{
	const struct tail *t = tail_lookup(last, depth, lo, hi);
	if (!t)
		return false;
	for (int i = 0, k = t->n; i < k; i++) {
		if (*n == max) {
			*truncated = true;
			break;
		}
		mp_hash_add(s, t->tail[i], (*n)++);
	}
	return true;
}

/* full[0..n) is libunwind's walk of a stack whose frame-pointer walk ended
 * at last, found in the record at stack_hi - depth. */
static void tail_learn(uintptr_t last, uintptr_t depth, void **full, int n)
{
	int at = 0;
	while (at < n && (uintptr_t)full[at] != last)
		at++;
	int k = n - at - 1;
	if (at == n || k > TAIL_MAX || k < 0)
		return;
	uintptr_t where[TAIL_MAX];
	const uintptr_t *w = (const uintptr_t *)(stack_hi - depth) + 2;
	const uintptr_t *end = (const uintptr_t *)stack_hi;
	if (end - w > TAIL_SCAN)
		end = w + TAIL_SCAN;
	for (int i = 0; i < k; i++) {
		while (w < end && *w != (uintptr_t)full[at + 1 + i])
			w++;
		if (w == end)
			return; /* a slot not found: this address keeps libunwind's full walk */
		where[i] = stack_hi - (uintptr_t)w;
		w++;
	}
	unsigned h = tail_slot(last, depth);
	uintptr_t expected = 0;
	if (!__atomic_compare_exchange_n(&tails[h].last, &expected, (uintptr_t)-1, false,
	                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return; /* taken: this return address keeps using libunwind's full walk */
	tails[h].depth = depth;
	tails[h].n = k;
	for (int i = 0; i < k; i++) {
		tails[h].tail[i] = (uintptr_t)full[at + 1 + i];
		tails[h].where[i] = where[i];
	}
	__atomic_store_n(&tails[h].last, last, __ATOMIC_RELEASE);
}

/* fp mode, a return address not known yet: learn its verdict from both
 * walks. Out of line, so that its buffer takes stack only when it runs, and
 * only as much as the walk wants (81 addresses at the default depth, not
 * MP_CAPTURE_ROOM's 273): a thread of 16 KiB, 8 frames deep, had room for
 * the checked walk (mp_stack_room) but not for 2 KiB more under it. */
static __attribute__((noinline)) int learn_and_walk(void **buf, int want)
{
	void *raw[want];
	bool unknown;
	uintptr_t depth = 0;
	int nr = fp_walk(raw, want, false, &unknown, &depth);
	int n = gated_backtrace(buf, want);
	verdicts_learn(raw, nr, buf, n);
	return n;
}

/* An allocation inside pthread_getattr_np or pthread_create has the shim's wrapper of it
 * (lifecycle.c, start.c) among its callers: the chain loses that frame as it loses the hooks',
 * and *nfp is 0, so that no fast walk, which counts the frame, is taken for it. The new length. */
static __attribute__((noinline)) int drop_inner_own_frames(void **buf, int n, uint32_t *nfp)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		if (!own_frame((uintptr_t)buf[i]))
			buf[k++] = buf[i];
	if (k != n)
		*nfp = 0;
	return k;
}

uint32_t mp_stack_capture(uintptr_t *ips, uint32_t max, bool *truncated, uint32_t *nfp)
{
	void **buf = (void **)ips; /* the walk goes straight into ips, then moves down */
	int want = (int)max + SKIP_ROOM + 1;
	int n = -1;
	*nfp = 0;
	if (mp.unwinder == MP_UNWIND_FP) {
		bool unknown;
		uintptr_t depth = 0;
		n = fp_walk(buf, want, true, &unknown, &depth);
		if (n > 0 && n < want) {
			uintptr_t tail[TAIL_MAX];
			int k = tail_find((uintptr_t)buf[n - 1], depth, tail);
			if (k >= 0) {
				*nfp = (uint32_t)n;
				for (int i = 0; i < k && n < want; i++)
					buf[n++] = (void *)tail[i];
			} else {
				uintptr_t last = (uintptr_t)buf[n - 1];
				n = gated_backtrace(buf, want);
				tail_learn(last, depth, buf, n);
			}
		} else if (n == want) {
			*nfp = (uint32_t)n;
		} else if (n < 0 && unknown) {
			n = learn_and_walk(buf, want);
		}
	}
	if (n < 0)
		n = gated_backtrace(buf, want);
	int skip = 0;
	while (skip < n && own_frame((uintptr_t)buf[skip]))
		skip++;
	if (unlikely(mp_tl.in_getattr | mp_tl.in_create) && n > skip)
		n = skip + drop_inner_own_frames(buf + skip, n - skip, nfp);
	uint32_t count = n > skip ? (uint32_t)(n - skip) : 0;
	*truncated = count > max;
	if (count > max)
		count = max;
	/* Frames the checked walk found, as the fast walk counts them: without
	 * our own, at most max. */
	if (*nfp) {
		*nfp -= (uint32_t)skip;
		if (*nfp > count)
			*nfp = count;
	}
	memmove(ips, buf + skip, count * sizeof(*ips));
	return count;
}

/* Whether this thread has room on its stack for a checked walk (libunwind
 * and the shim take up to some 6 KiB below the hook, more when libunwind
 * binds a symbol lazily): threads made with the smallest stacks, and signal
 * handlers on small alternate stacks, deep in their calls, would overflow
 * it. On a stack the shim knows nothing of (a coroutine's, made with
 * makecontext or by hand, often of 8 KiB or less) the room is unknown.
 * Either way the walk goes to a stack of the shim's own (mp_on_spare). */
#define WALK_ROOM (8u << 10)

enum mp_room mp_stack_room(void)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	/* fp mode may walk twice at once (learn_and_walk): the second walk's
	 * buffer comes on top */
	uintptr_t room =
	    WALK_ROOM +
	    (mp.unwinder == MP_UNWIND_FP ? (mp.max_depth + SKIP_ROOM + 1) * sizeof(void *) : 0);
	if (stack_hi && sp >= stack_lo && sp < stack_hi)
		return sp - stack_lo >= room ? MP_ROOM : MP_ROOM_SHORT;
	stack_t ss;
	if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK) &&
	    sp >= (uintptr_t)ss.ss_sp && sp < (uintptr_t)ss.ss_sp + ss.ss_size)
		return sp - (uintptr_t)ss.ss_sp >= room ? MP_ROOM : MP_ROOM_SHORT;
	return MP_ROOM_UNKNOWN;
}

/* ---- the spare stack ----
 *
 * A stack of the shim's own, one per thread, mapped at the thread's first
 * call without room: the walk and all that follows it (a new chain: the
 * module map, the chain table) run there, and the program's stack holds only
 * the hooks' frames. SPARE_BYTES are reserved and only the pages touched are
 * backed; a guard page lies below. A signal handler that
 * interrupts the walk runs on it too, with at least as much room as the
 * program's stack had left. The trampoline keeps a frame pointer with
 * call-frame information (the canonical frame address from %rbp), so
 * libunwind, gdb and the frame-pointer walk all step from the spare stack
 * back to the program's. Nothing runs there but the shim under its re-entry
 * guard: a handler's allocations there are not recorded, so it is never
 * entered twice. */

#if defined(__x86_64__)
/* mp_spare_call(fn, arg, top): fn(arg) with the stack pointer at top. */
void mp_spare_call(void (*fn)(void *), void *arg, void *top);
__asm__(".text\n"
        ".globl mp_spare_call\n"
        ".hidden mp_spare_call\n"
        ".type mp_spare_call, @function\n"
        "mp_spare_call:\n"
        "\t.cfi_startproc\n"
        "\tpushq %rbp\n"
        "\t.cfi_def_cfa_offset 16\n"
        "\t.cfi_offset %rbp, -16\n"
        "\tmovq %rsp, %rbp\n"
        "\t.cfi_def_cfa_register %rbp\n"
        "\tmovq %rdx, %rsp\n"
        "\tmovq %rdi, %rax\n"
        "\tmovq %rsi, %rdi\n"
        "\tcallq *%rax\n"
        "\tmovq %rbp, %rsp\n"
        "\tpopq %rbp\n"
        "\t.cfi_def_cfa %rsp, 8\n"
        "\tret\n"
        "\t.cfi_endproc\n"
        "\t.size mp_spare_call, .-mp_spare_call\n");
#define HAVE_SPARE 1
#else
#define HAVE_SPARE 0
#endif

bool mp_on_spare(void (*fn)(void *), void *arg)
{
#if HAVE_SPARE
	if (unlikely(!spare)) {
		if (spare_gone)
			return false;
		char *m = mmap(NULL, SPARE_BYTES + SPARE_GUARD, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
		if (m == MAP_FAILED)
			return false;
		mprotect(m, SPARE_GUARD, PROT_NONE);
		spare = m + SPARE_GUARD;
	}
	mp_spare_call(fn, arg, spare + SPARE_BYTES);
	return true;
#else
	(void)fn;
	(void)arg;
	return false;
#endif
}

void mp_stack_thread_exit(void)
{
	if (spare)
		munmap(spare - SPARE_GUARD, SPARE_BYTES + SPARE_GUARD);
	spare = NULL;
	spare_gone = true;
}

/* fp mode's fast path: the hash of the chain a frame-pointer walk finds
 * when it trusts every step (each record is still bounds-checked: on this
 * thread's stack, above the last), without our own frames, plus the start
 * code's frames from the tail cache. It stores nothing (a walk whose chain
 * is not known is done again by mp_stack_capture). Returns the number of
 * frames, or -1 when it cannot say (no stack bounds, a broken chain, an
 * unknown tail). *nfp is the number that came from the walk
 * itself; *sum the hash of the frames (mp_hash_add of each), taken while the
 * walk waits on its loads.
 *
 * A trusted walk may skip the caller of a function without frame pointers.
 * The caller (table.c) uses its result only when it equals, hash and nfp,
 * a chain a checked walk found (mp_stack_capture with *nfp set): every
 * return address of that chain but the last was checked to lie in a
 * function that keeps a frame pointer, a fact about the address alone, so
 * a trusted walk that yields the same addresses took the same, right, steps;
 * and with the same nfp its last step left the stack at the same frame, as
 * the checked walk's did. */
__attribute__((noinline)) int mp_stack_fp_fast(uint32_t max, bool *truncated, uint32_t *nfp,
                                               struct mp_hash *sum)
{
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
	uintptr_t lo = stack_lo, hi = stack_hi;
	if (!hi || fp < lo || fp >= hi)
		return -1;
	/* The highest address a whole, aligned record can start at; a record is
	 * read only at or below it (record_readable). */
	const uintptr_t top = hi - 2 * sizeof(uintptr_t);
	uintptr_t next, ra;
	/* Our own frames first (the hooks', this one's): stepped over, not
	 * taken, by the same rules. */
	for (;;) {
		if (!record_readable(fp, hi))
			return -1;
		next = ((const uintptr_t *)fp)[0];
		ra = ((const uintptr_t *)fp)[1];
		if (!ra)
			return -1; /* no frame of the program's */
		if (!own_frame(ra))
			break;
		if (step_to(next, fp, lo, hi) != STEP_ON)
			return -1;
		fp = next;
	}
	/* The program's frames: fp is a readable record whose return address
	 * ra is not 0. Three tests per step cover what step_to and
	 * record_readable test with five: the next record lies above this one,
	 * no higher than top, and is aligned; anything else is sorted out after
	 * the loop. (One unsigned compare, next - fp - 1 < top - fp, can stand
	 * for the first two, but takes more instructions: 16 more a call on
	 * workload 1 under callgrind.) The hash is summed while the next load
	 * is on its way. */
	uint64_t h = 0;
	const uint64_t *key = mp_hashkeys, *end = mp_hashkeys + max;
	uintptr_t last;
	*truncated = false;
	for (;;) {
		if (unlikely(key == end)) {
			*truncated = true;
			*nfp = max;
			*sum = (struct mp_hash){h};
			return (int)max;
		}
		h += ra * *key++; /* mp_hash_add */
		last = fp;
		if (unlikely(next <= fp) || unlikely(next > top) || unlikely(next & 7))
			break;
		fp = next;
		next = ((const uintptr_t *)fp)[0];
		ra = ((const uintptr_t *)fp)[1];
		if (!ra)
			goto walked;
	}
	/* The step from last that the loop's test refused: the chain leaves
	 * the stack (its end), or goes down or into a record that is not
	 * readable (broken: the checked walk sorts it out). */
	if (step_to(next, fp, lo, hi) != STEP_END)
		return -1;
walked:;
	uint32_t n = (uint32_t)(key - mp_hashkeys);
	struct mp_hash s = {h};
	*nfp = n;
	ra = ((const uintptr_t *)last)[1];
	if (!tail_hash(ra, hi - last, lo, hi, &s, &n, max, truncated))
		return -1;
	*sum = s;
	return (int)n;
}
