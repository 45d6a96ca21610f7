/* stack.c: captures the allocating thread's call stack as raw return
 * addresses with libunwind. Runs inside malloc: never allocate through malloc,
 * never block on I/O, never symbolize. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>

#include "shim.h"

/* Frames libunwind and the shim add on top of the caller: unw_backtrace,
 * mp_stack_capture, mp_record_alloc, the hook; a few spare. */
#define SKIP_ROOM 8

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

void mp_stack_init(void)
{
	object_range((void *)mp_stack_init, &mp.self_lo, &mp.self_hi);
	object_range((void *)unw_backtrace, &mp.unw_lo, &mp.unw_hi);
	/* libunwind keeps its unwind-info cache per thread: no lock on the hot path. */
	unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

static inline bool own_frame(uintptr_t ip)
{
	return (ip >= mp.self_lo && ip < mp.self_hi) || (ip >= mp.unw_lo && ip < mp.unw_hi);
}

uint32_t mp_stack_capture(uintptr_t *ips, uint32_t max, bool *truncated)
{
	void *buf[MP_MAX_DEPTH + SKIP_ROOM + 1];
	int want = (int)max + SKIP_ROOM + 1;
	int n = unw_backtrace(buf, want);
	int skip = 0;
	while (skip < n && own_frame((uintptr_t)buf[skip]))
		skip++;
	uint32_t count = n > skip ? (uint32_t)(n - skip) : 0;
	*truncated = count > max;
	if (count > max)
		count = max;
	for (uint32_t i = 0; i < count; i++)
		ips[i] = (uintptr_t)buf[skip + i];
	return count;
}
