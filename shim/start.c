/* start.c: threads made with pthread_create learn their stack before the
 * program's start routine runs.
 *
 * A thread's stack bounds come from pthread_getattr_np, which glibc runs
 * holding the thread's lock while it allocates. Learned lazily, at the
 * thread's first recorded allocation, they cannot be asked for when that
 * allocation is made inside pthread_getattr_np itself: the shim's own
 * pthread_getattr_np (lifecycle.c) tells it so, but a call that bypasses it
 * (dlvsym, dlsym on a handle of libc) does not, and the thread then waited on
 * its own lock. So the shim's pthread_create starts the thread at a
 * trampoline that learns the stack, with the re-entry guard raised, and then
 * jumps to the program's start routine with its argument: a tail call, so
 * that the start routine is called from the C library's thread start exactly
 * as without the shim (its caller's return address, every backtrace, the
 * chains mapprof records), and its return value goes back where it would have
 * gone. C11's thrd_create, which calls glibc's pthread_create from inside
 * the C library, is wrapped the same way. Threads made some other way (a
 * bare clone) keep the lazy path. */
#include <errno.h>

#include "shim.h"

/* The start routine and argument of a thread being started, from when
 * pthread_create is called until the thread runs: in slots of the shim's own
 * memory (never the program's malloc), each reused once its thread has
 * started or pthread_create has failed. A slot is found by index; free ones
 * are on a stack whose head holds a version, bumped by every change, so that
 * a pop that read a slot taken and given back meanwhile fails its exchange
 * (no ABA); no lock, so a fork in the middle leaves nothing locked. At most
 * as many slots as threads started at once (START_MAX, more use the lazy
 * path). */
struct start {
	void *(*fn)(void *);
	void *arg;
	uint32_t index;
	uint32_t next; /* on the free stack: the next free slot's index + 1, or 0 */
};

#define START_CHUNK 256 /* slots per mapping */
#define START_MAX   (START_CHUNK * 4096)

static struct start *start_chunks[START_MAX / START_CHUNK];
static uint32_t start_made; /* indexes handed out */
static uint64_t start_free; /* version << 32 | index + 1 of the top free slot (0: none) */

static inline struct start *start_at(uint32_t i)
{
	return &__atomic_load_n(&start_chunks[i / START_CHUNK], __ATOMIC_ACQUIRE)[i % START_CHUNK];
}

static struct start *start_get(void)
{
	uint64_t head = __atomic_load_n(&start_free, __ATOMIC_ACQUIRE);
	while ((uint32_t)head) {
		struct start *s = start_at((uint32_t)head - 1);
		uint64_t next = __atomic_load_n(&s->next, __ATOMIC_RELAXED);
		if (__atomic_compare_exchange_n(&start_free, &head, ((head >> 32) + 1) << 32 | next,
		                                true, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
			return s;
	}
	/* A new slot: the count goes past START_MAX by at most the calls made
	 * at once, never around. */
	if (__atomic_load_n(&start_made, __ATOMIC_RELAXED) >= START_MAX)
		return NULL;
	uint32_t i = __atomic_fetch_add(&start_made, 1, __ATOMIC_RELAXED);
	if (i >= START_MAX)
		return NULL;
	struct start **chunk = &start_chunks[i / START_CHUNK];
	struct start *c = __atomic_load_n(chunk, __ATOMIC_ACQUIRE);
	if (!c) {
		int saved = errno;
		struct start *fresh = mp_map(START_CHUNK * sizeof(*fresh));
		errno = saved;
		if (!fresh)
			return NULL; /* the index is lost: a later one may map the chunk */
		if (__atomic_compare_exchange_n(chunk, &c, fresh, false, __ATOMIC_ACQ_REL,
		                                __ATOMIC_ACQUIRE))
			c = fresh;
		else /* another thread's came first */
			mp_unmap(fresh, START_CHUNK * sizeof(*fresh));
	}
	c[i % START_CHUNK].index = i;
	return &c[i % START_CHUNK];
}

static void start_put(struct start *s)
{
	uint64_t head = __atomic_load_n(&start_free, __ATOMIC_RELAXED);
	do
		__atomic_store_n(&s->next, (uint32_t)head, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&start_free, &head,
	                                    ((head >> 32) + 1) << 32 | (s->index + 1), true,
	                                    __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* What the trampoline jumps to: returned in two registers (rax and rdx). */
struct start_go {
	void *(*fn)(void *);
	void *arg;
};

/* The new thread's first work, called by the trampoline: take the start
 * routine and its argument, give the slot back, and learn the stack. The
 * thread's errno stays as it started. The allocations inside
 * pthread_getattr_np are the shim's, not the program's. */
__attribute__((visibility("hidden"), used, noinline)) struct start_go
mp_thread_prepare(struct start *s)
{
	struct start_go go = {s->fn, s->arg};
	start_put(s);
	int saved = errno;
	mp_tl.in_hook++;
	mp_stack_thread_init();
	mp_tl.in_hook--;
	errno = saved;
	return go;
}

void *mp_thread_start(void *s) __attribute__((visibility("hidden")));

#if defined(__x86_64__)
/* The trampoline, in assembly so that the jump to the start routine is a
 * tail call whatever the compiler and its options (an unoptimized build
 * makes no sibling calls): the start routine finds its caller's return
 * address, into the C library's thread start, where it would have been. The
 * frame it keeps during the call to mp_thread_prepare has a frame pointer
 * and unwind info, as a compiled one would. */
#ifdef __CET__
#define START_LANDING "endbr64\n\t"
#else
#define START_LANDING ""
#endif
__asm__(".pushsection .text\n\t"
        ".globl mp_thread_start\n\t"
        ".hidden mp_thread_start\n\t"
        ".type mp_thread_start, @function\n\t"
        ".p2align 4\n"
        "mp_thread_start:\n\t"
        ".cfi_startproc\n\t" START_LANDING "pushq %rbp\n\t"
        ".cfi_def_cfa_offset 16\n\t"
        ".cfi_offset %rbp, -16\n\t"
        "movq %rsp, %rbp\n\t"
        ".cfi_def_cfa_register %rbp\n\t"
        "call mp_thread_prepare\n\t" /* rdi: the slot; back: fn in rax, arg in rdx */
        "popq %rbp\n\t"
        ".cfi_def_cfa %rsp, 8\n\t"
        "movq %rdx, %rdi\n\t"
        "jmp *%rax\n\t"
        ".cfi_endproc\n\t"
        ".size mp_thread_start, .-mp_thread_start\n\t"
        ".popsection");
#else
/* Elsewhere the compiler's sibling call: clang's musttail makes it one, or
 * fails the build; gcc makes it when optimizing. */
void *mp_thread_start(void *s)
{
	struct start_go go = mp_thread_prepare(s);
#if defined(__has_attribute) && __has_attribute(musttail)
	__attribute__((musttail))
#endif
	return go.fn(go.arg);
}
#endif

/* The next pthread_create or thrd_create, in *slot: called before the shim
 * initialized (from another library's constructor), it initializes now, as
 * an allocation would. */
static bool next_create(void **slot, const char *name)
{
	if (unlikely(!__atomic_load_n(slot, __ATOMIC_RELAXED)))
		mp_ready();
	return mp_next_sym(slot, name) != NULL;
}

/* A slot for a thread about to start through the trampoline, holding its
 * start routine and argument; NULL (no slot, or the shim is off): start it
 * as asked. */
static struct start *start_prepare(void *(*fn)(void *), void *arg)
{
	struct start *s = mp_enabled() ? start_get() : NULL;
	if (s) {
		s->fn = fn;
		s->arg = arg;
	}
	return s;
}

MP_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                             void *(*start_routine)(void *), void *arg)
{
	if (!next_create((void **)&mp_real.create, "pthread_create"))
		return EAGAIN;
	struct start *s = start_prepare(start_routine, arg);
	if (!s)
		return mp_real.create(thread, attr, start_routine, arg);
	/* Not a tail call (a failed call gives the slot back): the frame is
	 * dropped from the chains of the allocations inside (stack.c). */
	mp_tl.in_create++;
	int r = mp_real.create(thread, attr, mp_thread_start, s);
	mp_tl.in_create--;
	if (r != 0)
		start_put(s); /* the thread never ran */
	return r;
}

/* C11's thrd_create reaches glibc's pthread_create from inside the C
 * library, past the wrapper above, so it gets its own. Its start routine
 * returns an int: the trampoline's tail jump leaves the return value where
 * the start routine put it, for the C library's thread start to read as an
 * int, as it would without the shim. */
MP_EXPORT int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
	if (!next_create((void **)&mp_real.thrd_create, "thrd_create"))
		return thrd_error;
	struct start *s = start_prepare((void *(*)(void *))(void (*)(void))func, arg);
	if (!s)
		return mp_real.thrd_create(thr, func, arg);
	mp_tl.in_create++;
	int r = mp_real.thrd_create(thr, (thrd_start_t)(void (*)(void))mp_thread_start, s);
	mp_tl.in_create--;
	if (r != thrd_success)
		start_put(s);
	return r;
}
