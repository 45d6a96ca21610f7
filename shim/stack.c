/* stack.c: captures the allocating thread's call stack as raw return
 * addresses with libunwind. Runs inside malloc: never allocate through malloc,
 * never block on I/O, never symbolize. */
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <string.h>

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

/* This thread's stack, for validating frame pointers. */
static __thread uintptr_t stack_lo, stack_hi;

void mp_stack_thread_init(void)
{
	pthread_attr_t attr;
	if (pthread_getattr_np(pthread_self(), &attr) != 0)
		return;
	void *addr;
	size_t size;
	if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
		stack_lo = (uintptr_t)addr;
		stack_hi = stack_lo + size;
	}
	pthread_attr_destroy(&attr);
}

/* Walk the frame-pointer chain. Every frame must lie on this thread's stack,
 * above the previous one, and the walk ends where the chain leaves the stack
 * (the C runtime's start code does not keep frame pointers). A frame pointer
 * that points into the stack but not upwards (code built without frame
 * pointers, a corrupt chain) or a thread whose stack is unknown (a signal
 * handler on an alternate stack) returns -1: the caller falls back to
 * libunwind. Never dereferences anything outside the stack. */
__attribute__((noinline)) static int fp_backtrace(void **buf, int want)
{
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
	int n = 0;
	if (!stack_hi || fp < stack_lo || fp >= stack_hi)
		return -1;
	while (n < want) {
		if (fp > stack_hi - 2 * sizeof(uintptr_t) || (fp & 7))
			return -1;
		const uintptr_t *frame = (const uintptr_t *)fp;
		uintptr_t next = frame[0], ra = frame[1];
		if (!ra)
			break;
		buf[n++] = (void *)ra;
		if (next < stack_lo || next >= stack_hi)
			break; /* left the stack: the start code's frames */
		if (next <= fp)
			return -1;
		fp = next;
	}
	return n;
}

/* The frames above the last one a frame-pointer walk reaches (the C
 * runtime's start code, thread start) never change for a given return
 * address, so libunwind finds them once and they are reused: fp mode then
 * gives the same chains as libunwind. */
#define TAIL_CACHE 64
#define TAIL_MAX   6
static struct {
	uintptr_t last; /* 0: free */
	int n;          /* frames in tail, or -1 while being filled */
	uintptr_t tail[TAIL_MAX];
} tails[TAIL_CACHE];

static int tail_find(uintptr_t last, uintptr_t *out)
{
	unsigned h = (unsigned)((last * 0x9e3779b97f4a7c15ull) >> 58);
	if (__atomic_load_n(&tails[h].last, __ATOMIC_ACQUIRE) != last)
		return -1;
	int n = __atomic_load_n(&tails[h].n, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++)
		out[i] = tails[h].tail[i];
	return n;
}

static void tail_learn(uintptr_t last, void **full, int n)
{
	int at = 0;
	while (at < n && (uintptr_t)full[at] != last)
		at++;
	if (at == n || n - at - 1 > TAIL_MAX || n - at - 1 < 0)
		return;
	unsigned h = (unsigned)((last * 0x9e3779b97f4a7c15ull) >> 58);
	uintptr_t expected = 0;
	if (!__atomic_compare_exchange_n(&tails[h].last, &expected, (uintptr_t)-1, false,
	                                 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return; /* taken: this return address keeps using libunwind's full walk */
	tails[h].n = n - at - 1;
	for (int i = 0; i < n - at - 1; i++)
		tails[h].tail[i] = (uintptr_t)full[at + 1 + i];
	__atomic_store_n(&tails[h].last, last, __ATOMIC_RELEASE);
}

static inline bool own_frame(uintptr_t ip)
{
	return (ip >= mp.self_lo && ip < mp.self_hi) || (ip >= mp.unw_lo && ip < mp.unw_hi);
}

uint32_t mp_stack_capture(uintptr_t *ips, uint32_t max, bool *truncated)
{
	void *buf[MP_MAX_DEPTH + SKIP_ROOM + 1];
	int want = (int)max + SKIP_ROOM + 1;
	int n = -1;
	if (mp.unwinder == MP_UNWIND_FP) {
		n = fp_backtrace(buf, want);
		if (n > 0 && n < want) {
			uintptr_t tail[TAIL_MAX];
			int k = tail_find((uintptr_t)buf[n - 1], tail);
			if (k >= 0) {
				for (int i = 0; i < k && n < want; i++)
					buf[n++] = (void *)tail[i];
			} else {
				uintptr_t last = (uintptr_t)buf[n - 1];
				n = unw_backtrace(buf, want);
				tail_learn(last, buf, n);
			}
		}
	}
	if (n < 0)
		n = unw_backtrace(buf, want);
	int skip = 0;
	while (skip < n && own_frame((uintptr_t)buf[skip]))
		skip++;
	uint32_t count = n > skip ? (uint32_t)(n - skip) : 0;
	*truncated = count > max;
	if (count > max)
		count = max;
	memcpy(ips, buf + skip, count * sizeof(*ips));
	return count;
}
