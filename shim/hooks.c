/* hooks.c: the exported allocation API. Each hook guards against re-entry
 * (a thread-local flag in initial-exec TLS), forwards to the next allocator
 * and records the call. Never allocate through the wrapped malloc, never block
 * on I/O on this path; never change what the caller sees (values, errno). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "shim.h"

struct mp_state mp = {.lock = PTHREAD_MUTEX_INITIALIZER, .max_depth = MP_DEFAULT_DEPTH};
struct mp_real mp_real;

static __thread int in_hook;

/* ---- bootstrap: dlsym may allocate before we know the real malloc ---- */

static struct {
	char buf[1 << 16] __attribute__((aligned(64)));
	size_t used;
} boot;

static void *boot_alloc(size_t size, size_t align, bool zero)
{
	(void)zero; /* static memory is zeroed and never reused */
	if (align < 16)
		align = 16;
	size_t start = (boot.used + 16 + align - 1) & ~(align - 1);
	if (start + size > sizeof(boot.buf) || start + size < start)
		return NULL;
	*(size_t *)(boot.buf + start - sizeof(size_t)) = size;
	boot.used = start + size;
	return boot.buf + start;
}

static inline bool is_boot(const void *p)
{
	return (const char *)p >= boot.buf && (const char *)p < boot.buf + sizeof(boot.buf);
}

static size_t boot_size(const void *p)
{
	return *(const size_t *)((const char *)p - sizeof(size_t));
}

/* ---- settings ---- */

static uint32_t parse_depth(const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0) {
		mp_log("MAPPROF_DEPTH=%s is not a positive number; using %d", s, MP_DEFAULT_DEPTH);
		return MP_DEFAULT_DEPTH;
	}
	if (v > MP_MAX_DEPTH) {
		mp_log("MAPPROF_DEPTH=%s is above the maximum; using %d", s, MP_MAX_DEPTH);
		return MP_MAX_DEPTH;
	}
	return (uint32_t)v;
}

static void read_settings(void)
{
	const char *s = getenv("MAPPROF_DEPTH");
	if (s)
		mp.max_depth = parse_depth(s);
	s = getenv("MAPPROF_OUT");
	if (s && *s) {
		if (strlen(s) >= sizeof(mp.out_template))
			mp_log("MAPPROF_OUT is too long; using the default path");
		else
			strcpy(mp.out_template, s);
	}
}

static void read_process(void)
{
	ssize_t n = readlink("/proc/self/exe", mp.exe, sizeof(mp.exe) - 1);
	mp.exe[n > 0 ? n : 0] = 0;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		char buf[8192];
		ssize_t len = read(fd, buf, sizeof(buf));
		close(fd);
		if (len > 0) {
			mp.cmdline = mp_arena_strdup(buf, (size_t)len);
			mp.cmdline_len = mp.cmdline ? (size_t)len : 0;
		}
	}
	mp.pid = getpid();
	mp.ppid = getppid();
	mp.start_ns = mp_now_ns();
}

/* ---- init and exit ---- */

static void *next_sym(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

static void resolve_real(void)
{
	mp_real.malloc = next_sym("malloc");
	mp_real.free = next_sym("free");
	mp_real.calloc = next_sym("calloc");
	mp_real.realloc = next_sym("realloc");
	mp_real.reallocarray = next_sym("reallocarray");
	mp_real.posix_memalign = next_sym("posix_memalign");
	mp_real.aligned_alloc = next_sym("aligned_alloc");
	mp_real.memalign = next_sym("memalign");
	mp_real.valloc = next_sym("valloc");
	mp_real.pvalloc = next_sym("pvalloc");
}

static void on_fork_child(void)
{
	mp_fork_child();
	mp.pid = getpid();
	mp.ppid = getppid();
	mp.start_ns = mp_now_ns();
	mp.info_flags |= MP_INFO_FORKED;
	mp.dumped = false;
	mp.enabled = !mp.secure;
}

static void init(void)
{
	int expected = 0;
	if (!__atomic_compare_exchange_n(&mp.init_state, &expected, 1, false, __ATOMIC_ACQ_REL,
	                                 __ATOMIC_ACQUIRE)) {
		/* Another thread is initializing; its dlsym calls use the bootstrap
		 * buffer, ours wait for the real functions. */
		while (__atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) != 2)
			;
		return;
	}
	in_hook++;
	resolve_real();
	mp.secure = getauxval(AT_SECURE) != 0;
	if (!mp.secure) {
		read_settings();
		read_process();
		mp_stack_init();
		pthread_key_create(&mp.tkey, mp_thread_exit);
		pthread_atfork(mp_fork_prepare, mp_fork_parent, on_fork_child);
		mp.info_flags = MP_INFO_FREES_TRACKED;
		mp.enabled = mp_real.malloc && mp_real.free;
	}
	in_hook--;
	__atomic_store_n(&mp.init_state, 2, __ATOMIC_RELEASE);
}

static inline bool ready(void)
{
	if (likely(__atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) == 2))
		return true;
	if (mp.init_state == 1 && in_hook)
		return false; /* inside our own init: bootstrap */
	init();
	return __atomic_load_n(&mp.init_state, __ATOMIC_ACQUIRE) == 2;
}

__attribute__((constructor)) static void mp_constructor(void)
{
	ready();
}

/* Library destructors run after the program's atexit handlers and static
 * destructors, so the dump sees nearly all of the process's allocations. */
__attribute__((destructor)) static void mp_destructor(void)
{
	if (!ready() || !mp.enabled || mp.dumped)
		return;
	int saved = errno;
	in_hook++;
	mp.dumped = true;
	mp.enabled = false;
	mp_dump_write(0);
	in_hook--;
	errno = saved;
}

/* ---- the hooks ---- */

static inline bool recording(void)
{
	return !in_hook && mp.enabled;
}

static inline void *after_alloc(void *p, size_t size)
{
	if (p) {
		int saved = errno;
		in_hook++;
		mp_record_alloc(p, size);
		in_hook--;
		errno = saved;
	}
	return p;
}

MP_EXPORT void *malloc(size_t size)
{
	if (unlikely(!ready()))
		return boot_alloc(size, 16, false);
	if (!recording())
		return mp_real.malloc(size);
	return after_alloc(mp_real.malloc(size), size);
}

MP_EXPORT void free(void *p)
{
	if (!p || unlikely(is_boot(p)))
		return;
	if (unlikely(!ready()))
		return; /* cannot happen: only bootstrap memory exists before init */
	if (recording()) {
		int saved = errno;
		in_hook++;
		mp_record_free(p);
		in_hook--;
		errno = saved;
	}
	mp_real.free(p);
}

MP_EXPORT void *calloc(size_t n, size_t size)
{
	if (unlikely(!ready())) {
		size_t total;
		if (__builtin_mul_overflow(n, size, &total)) {
			errno = ENOMEM;
			return NULL;
		}
		return boot_alloc(total, 16, true);
	}
	if (!recording())
		return mp_real.calloc(n, size);
	void *p = mp_real.calloc(n, size);
	return after_alloc(p, n * size); /* no overflow: calloc succeeded */
}

/* realloc(p, n>0) counts one object of n bytes and releases p;
 * realloc(NULL, n) is a malloc; realloc(p, 0) is what the next allocator
 * makes of it: a free when it returns NULL (glibc), else a free plus a 0-byte
 * object. A failed realloc leaves p as it was. */
static void *realloc_common(void *p, size_t size, void *(*real)(void *, size_t, size_t), size_t n,
                            size_t elem)
{
	if (!recording())
		return real(p, n, elem);
	int saved = errno;
	uint64_t meta = 0;
	in_hook++;
	bool tracked = mp_live_take(p, &meta);
	in_hook--;
	void *q = real(p, n, elem);
	int after = errno;
	in_hook++;
	if (q || size == 0) {
		if (tracked)
			mp_account_free(meta);
		if (q)
			mp_record_alloc(q, size);
		after = q ? saved : after;
	} else if (tracked) {
		mp_live_restore(p, meta);
	}
	in_hook--;
	errno = after;
	return q;
}

static void *call_realloc(void *p, size_t n, size_t unused)
{
	(void)unused;
	return mp_real.realloc(p, n);
}

static void *call_reallocarray(void *p, size_t n, size_t elem)
{
	if (mp_real.reallocarray)
		return mp_real.reallocarray(p, n, elem);
	size_t total;
	if (__builtin_mul_overflow(n, elem, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return mp_real.realloc(p, total);
}

static void *boot_realloc(void *p, size_t size)
{
	void *q = malloc(size);
	if (q && p) {
		size_t old = boot_size(p);
		memcpy(q, p, old < size ? old : size);
	}
	return q;
}

MP_EXPORT void *realloc(void *p, size_t size)
{
	if (!p)
		return malloc(size);
	if (unlikely(is_boot(p)))
		return boot_realloc(p, size);
	if (unlikely(!ready()))
		return NULL;
	return realloc_common(p, size, call_realloc, size, 0);
}

MP_EXPORT void *reallocarray(void *p, size_t n, size_t elem)
{
	size_t total;
	if (__builtin_mul_overflow(n, elem, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!p)
		return malloc(total);
	if (unlikely(is_boot(p)))
		return boot_realloc(p, total);
	if (unlikely(!ready()))
		return NULL;
	return realloc_common(p, total, call_reallocarray, n, elem);
}

MP_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (unlikely(!ready())) {
		void *p = boot_alloc(size, align, false);
		if (!p)
			return ENOMEM;
		*out = p;
		return 0;
	}
	int r = mp_real.posix_memalign(out, align, size);
	if (r == 0 && recording())
		after_alloc(*out, size);
	return r;
}

MP_EXPORT void *aligned_alloc(size_t align, size_t size)
{
	if (unlikely(!ready()))
		return boot_alloc(size, align, false);
	void *p = mp_real.aligned_alloc ? mp_real.aligned_alloc(align, size)
	                                : mp_real.memalign(align, size);
	return recording() ? after_alloc(p, size) : p;
}

MP_EXPORT void *memalign(size_t align, size_t size)
{
	if (unlikely(!ready()))
		return boot_alloc(size, align, false);
	void *p = mp_real.memalign(align, size);
	return recording() ? after_alloc(p, size) : p;
}

MP_EXPORT void *valloc(size_t size)
{
	if (unlikely(!ready()))
		return boot_alloc(size, 4096, false);
	void *p = mp_real.valloc ? mp_real.valloc(size)
	                         : mp_real.memalign((size_t)sysconf(_SC_PAGESIZE), size);
	return recording() ? after_alloc(p, size) : p;
}

MP_EXPORT void *pvalloc(size_t size)
{
	if (unlikely(!ready()))
		return boot_alloc(size, 4096, false);
	void *p;
	if (mp_real.pvalloc) {
		p = mp_real.pvalloc(size);
	} else {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		p = mp_real.memalign(page, (size + page - 1) & ~(page - 1));
	}
	return recording() ? after_alloc(p, size) : p;
}
