/* floor.c: reference points for workload 1, preloaded in place of libmapprof.so. Built twice:
 * floor_forward.so only forwards malloc and free to the next allocator (the price of any
 * preloaded wrapper), floor_fpwalk.so also walks the frame pointers and hashes the return
 * addresses on every malloc, as MAPPROF_UNWIND=fp's fast path does (with a 128-bit product sum,
 * where the fast path now sums only the low halves), and records nothing.
 * The gap between floor_fpwalk and mapprof fp is what counting and tracking frees cost; the gap
 * between native and floor_fpwalk is the least any profiler that walks the stack on every call
 * can cost on this workload. Only malloc and free are wrapped: workload 1 calls nothing else. */
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

static void *(*next_malloc)(size_t);
static void (*next_free)(void *);
static char boot[4096]; /* dlsym's own allocations, before next_malloc is known */
static size_t boot_used;

__attribute__((constructor)) static void floor_init(void)
{
	next_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	next_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
}

#ifdef FLOOR_WALK
static __thread uintptr_t stack_lo, stack_hi;
static __thread int busy;
volatile uint64_t floor_sink;

/* The thread's stack bounds (pthread_getattr_np allocates: busy keeps that out of the walk). */
static void stack_bounds(void)
{
	pthread_attr_t attr;
	void *addr;
	size_t size;
	busy = 1;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
			stack_lo = (uintptr_t)addr;
			stack_hi = stack_lo + size;
		}
		pthread_attr_destroy(&attr);
	}
	busy = 0;
}

/* Every record on the stack and above the last, as mapprof's walk checks; a hash of the return
 * addresses, each times a multiplier of its own. */
__attribute__((noinline)) static void walk(void)
{
	uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
	uint64_t h = 0, c = 0;
	for (unsigned n = 0; n < 64; n++) {
		if (fp < stack_lo || fp > stack_hi - 2 * sizeof(uintptr_t) || (fp & 7))
			break;
		const uintptr_t *frame = (const uintptr_t *)fp;
		uintptr_t next = frame[0], ra = frame[1];
		if (!ra)
			break;
		unsigned __int128 p = (unsigned __int128)ra * (0x9e3779b97f4a7c15ull + 2 * n);
		h += (uint64_t)p;
		c += (uint64_t)(p >> 64);
		if (next <= fp || next >= stack_hi)
			break;
		fp = next;
	}
	floor_sink = h ^ c;
}
#endif

void *malloc(size_t size)
{
	if (__builtin_expect(!next_malloc, 0)) {
		size_t at = (boot_used + 15) & ~(size_t)15;
		if (at + size > sizeof(boot))
			return NULL;
		boot_used = at + size;
		return boot + at;
	}
#ifdef FLOOR_WALK
	if (!busy) {
		if (__builtin_expect(!stack_hi, 0))
			stack_bounds();
		walk();
	}
#endif
	return next_malloc(size);
}

void free(void *p)
{
	if ((char *)p >= boot && (char *)p < boot + sizeof(boot))
		return;
	if (next_free)
		next_free(p);
}
