/* robust_coro.c: allocations on a stack the profiler knows nothing of, a coroutine's, made with
 * makecontext on a small stack. Natively the coroutine needs under 2 KiB of it; the profiler
 * must not take much more (its walk runs on a stack of its own). The coroutine allocates and
 * frees at site_coro, 1 to 4 frames below its entry, and yields back to main after each round;
 * after the last round it is left suspended, never returning. main's own allocation of the
 * coroutine's stack (mode heap) is at site_main.
 *
 *   mmap: the stack is mapped, with an inaccessible guard page below it (an overflow faults);
 *   heap: the stack is the top of a malloc'd block whose bottom 4 KiB hold a pattern (an
 *         overflow would write over it, or over the heap below, silently): checked at the end.
 *
 * Prints the truth, with checks rounds_done and canary_ok.
 *
 * usage: robust_coro mmap|heap STACK_BYTES ROUNDS */
#include <stdint.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "truth.h"

#define CANARY 4096

static struct truth_site sites[] = {{"site_coro", 0, 0, 0, 0}, {"site_main", 0, 0, 0, 0}};
static ucontext_t main_ctx, co_ctx;
static unsigned rounds, rounds_done;

SITE static void *site_coro(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[0], n);
	return p;
}

SITE static void *site_main(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[1], n);
	return p;
}

SITE static void step(unsigned depth, size_t n)
{
	if (depth) {
		step(depth - 1, n);
		return;
	}
	char *p = site_coro(n);
	if (p) {
		p[0] = 1;
		truth_free(&sites[0], n);
		free(p);
	}
}

static void body(void)
{
	for (;;) {
		for (unsigned i = 0; i < 100; i++)
			step(i % 4, 16 + (i * 24) % 400);
		rounds_done++;
		swapcontext(&co_ctx, &main_ctx);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int heap = strcmp(argv[1], "heap") == 0;
	size_t size = strtoul(argv[2], NULL, 0) & ~(size_t)15;
	rounds = (unsigned)strtoul(argv[3], NULL, 0);
	unsigned char *base, *stack;
	if (heap) {
		base = site_main(size + CANARY);
		if (!base)
			return 4;
		memset(base, 0x5a, CANARY);
		stack = base + CANARY;
	} else {
		base = mmap(NULL, size + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		            -1, 0);
		if (base == MAP_FAILED || mprotect(base, 4096, PROT_NONE) != 0)
			return 4;
		stack = base + 4096;
	}
	getcontext(&co_ctx);
	co_ctx.uc_stack.ss_sp = stack;
	co_ctx.uc_stack.ss_size = size;
	co_ctx.uc_link = &main_ctx;
	makecontext(&co_ctx, body, 0);
	for (unsigned r = 0; r < rounds; r++)
		swapcontext(&main_ctx, &co_ctx);
	int canary_ok = 1;
	for (size_t i = 0; heap && i < CANARY; i++)
		canary_ok &= base[i] == 0x5a;
	check_val("rounds_done", rounds_done);
	check_val("canary_ok", canary_ok);
	truth_print("main", sites, sizeof(sites) / sizeof(sites[0]));
	return 0;
}
