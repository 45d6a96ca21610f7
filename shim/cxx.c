/* cxx.c: C++'s operator new and delete, every variant libstdc++ exports.
 *
 * Without these, new and delete reach the shim through libstdc++'s own
 * operators, which call malloc and free. But an allocator preloaded after the
 * shim (jemalloc, tcmalloc) exports its own operators that never call malloc,
 * and new would go unseen. So the shim exports them too, forwards each to the
 * next definition in the lookup order (the allocator's, or libstdc++'s), and
 * records the call itself. The guard stays raised across the forwarded call,
 * so libstdc++'s operator calling malloc is not counted a second time; it is
 * lowered by a cleanup when the call throws (std::bad_alloc, or a new_handler's
 * exception), which is why the shim is built with -fexceptions. The new_handler
 * loop and the exception are the forwarded operator's: nothing changes for
 * the program. */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>

#include "shim.h"

enum {
	NEW,
	NEW_NT,
	NEW_AL,
	NEW_AL_NT,
	ANEW,
	ANEW_NT,
	ANEW_AL,
	ANEW_AL_NT,
	DEL,
	DEL_SZ,
	DEL_NT,
	DEL_AL,
	DEL_SZ_AL,
	DEL_AL_NT,
	ADEL,
	ADEL_SZ,
	ADEL_NT,
	ADEL_AL,
	ADEL_SZ_AL,
	ADEL_AL_NT,
	NSYMS
};

static const char *const names[NSYMS] = {
    [NEW] = "_Znwm",
    [NEW_NT] = "_ZnwmRKSt9nothrow_t",
    [NEW_AL] = "_ZnwmSt11align_val_t",
    [NEW_AL_NT] = "_ZnwmSt11align_val_tRKSt9nothrow_t",
    [ANEW] = "_Znam",
    [ANEW_NT] = "_ZnamRKSt9nothrow_t",
    [ANEW_AL] = "_ZnamSt11align_val_t",
    [ANEW_AL_NT] = "_ZnamSt11align_val_tRKSt9nothrow_t",
    [DEL] = "_ZdlPv",
    [DEL_SZ] = "_ZdlPvm",
    [DEL_NT] = "_ZdlPvRKSt9nothrow_t",
    [DEL_AL] = "_ZdlPvSt11align_val_t",
    [DEL_SZ_AL] = "_ZdlPvmSt11align_val_t",
    [DEL_AL_NT] = "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    [ADEL] = "_ZdaPv",
    [ADEL_SZ] = "_ZdaPvm",
    [ADEL_NT] = "_ZdaPvRKSt9nothrow_t",
    [ADEL_AL] = "_ZdaPvSt11align_val_t",
    [ADEL_SZ_AL] = "_ZdaPvmSt11align_val_t",
    [ADEL_AL_NT] = "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

static void *next[NSYMS];

/* The code of the next operators, [lo, hi) each. libstdc++'s operators
 * call malloc (aligned_alloc for the aligned ones) and each other through
 * the PLT: those calls, made from inside a forwarded operator, are the
 * operator's own and are not counted again (so are calls whose return
 * address is the shim's own: an operator that tail-calls another, as new[]
 * does new, returns straight into the forwarding code). Anything else the operator
 * leads to is counted as usual: the exception object of a failing new (its
 * return address lies in __cxa_allocate_exception), or what a new_handler
 * allocates. */
static struct {
	uintptr_t lo, hi;
} code[NSYMS];

bool mp_from_newop(uintptr_t ra)
{
	/* libstdc++'s new[] tail-calls new: the return address is then our own. */
	if (ra >= mp.self_lo && ra < mp.self_hi)
		return true;
	for (unsigned i = 0; i < NSYMS; i++)
		if (ra >= __atomic_load_n(&code[i].lo, __ATOMIC_RELAXED) &&
		    ra < __atomic_load_n(&code[i].hi, __ATOMIC_ACQUIRE))
			return true;
	return false;
}

static void newop_drop(int *unused)
{
	(void)unused;
	mp_tl.in_newop--;
}

/* Marks the enclosing block as inside a forwarded operator, exception or not. */
#define NEWOP_BLOCK __attribute__((cleanup(newop_drop), unused)) int newop_ = (mp_tl.in_newop++, 0)

static void guard_drop(int *unused)
{
	(void)unused;
	mp_tl.in_hook--;
}

/* Raises the re-entry guard until the end of the enclosing block, exception or not. */
#define GUARD_BLOCK __attribute__((cleanup(guard_drop), unused)) int guard_ = (mp_tl.in_hook++, 0)

/* The next definition of operator i. libstdc++ may come after the shim in
 * the lookup order (the usual case) or be loaded later, privately, by a
 * dlopen'd library: RTLD_NEXT finds the first, asking libstdc++ by name the
 * second. NULL when no C++ runtime is loaded at all. */
static void *next_op(unsigned i)
{
	void *f = __atomic_load_n(&next[i], __ATOMIC_ACQUIRE);
	if (likely(f))
		return f;
	int saved = errno;
	GUARD_BLOCK; /* dlsym's own allocations are not the program's */
	f = dlsym(RTLD_NEXT, names[i]);
	if (!f) {
		void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
		if (h) {
			f = dlsym(h, names[i]);
			dlclose(h);
		}
	}
	if (f) {
		Dl_info info;
		const ElfW(Sym) *sym = NULL;
		if (dladdr1(f, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && sym->st_size &&
		    info.dli_saddr) {
			__atomic_store_n(&code[i].lo, (uintptr_t)info.dli_saddr, __ATOMIC_RELAXED);
			__atomic_store_n(&code[i].hi, (uintptr_t)info.dli_saddr + sym->st_size,
			                 __ATOMIC_RELEASE);
		}
		__atomic_store_n(&next[i], f, __ATOMIC_RELEASE);
	}
	errno = saved;
	return f;
}

/* No C++ runtime to forward to: plain malloc (which records), and what
 * libstdc++ would do when it cannot allocate. */
static void *fallback_new(size_t size, size_t align, bool nothrow)
{
	void *p = NULL;
	if (!size)
		size = 1;
	if (align > 16) {
		if (posix_memalign(&p, align, size) != 0)
			p = NULL;
	} else {
		p = malloc(size);
	}
	if (!p && !nothrow) {
		fputs("mapprof: operator new failed and no C++ runtime is loaded to throw\n",
		      stderr);
		abort();
	}
	return p;
}

typedef void *(*new_fn)(size_t);
typedef void *(*new_nt_fn)(size_t, const void *);
typedef void *(*new_al_fn)(size_t, size_t);
typedef void *(*new_al_nt_fn)(size_t, size_t, const void *);

static void *op_new(unsigned i, size_t size, size_t align, const void *nt, uintptr_t ra)
{
	if (unlikely(!mp_ready()))
		return fallback_new(size, align, nt != NULL);
	void *f = next_op(i);
	if (unlikely(!f))
		return fallback_new(size, align, nt != NULL);
	bool rec = mp_recording_from(ra);
	void *p;
	{
		NEWOP_BLOCK;
		switch (i) {
		case NEW:
		case ANEW:
			p = ((new_fn)f)(size);
			break;
		case NEW_NT:
		case ANEW_NT:
			p = ((new_nt_fn)f)(size, nt);
			break;
		case NEW_AL:
		case ANEW_AL:
			p = ((new_al_fn)f)(size, align);
			break;
		default:
			p = ((new_al_nt_fn)f)(size, align, nt);
			break;
		}
	}
	return rec ? mp_after_alloc(p, size) : p;
}

typedef void (*del_fn)(void *);
typedef void (*del_2_fn)(void *, size_t);
typedef void (*del_3_fn)(void *, size_t, size_t);
typedef void (*del_nt_fn)(void *, const void *);
typedef void (*del_al_nt_fn)(void *, size_t, const void *);

static void op_delete(unsigned i, void *p, size_t size, size_t align, const void *nt, uintptr_t ra)
{
	if (!p)
		return;
	if (unlikely(!mp_ready())) {
		free(p);
		return;
	}
	void *f = next_op(i);
	/* As in free(): a block the filter says is not tracked is only forwarded. */
	if (__atomic_load_n(mp_filter_slot((uintptr_t)p), __ATOMIC_ACQUIRE) &&
	    mp_recording_from(ra))
		mp_record_free_guarded(p);
	NEWOP_BLOCK;
	if (unlikely(!f)) {
		mp_real.free(p); /* only reached when no C++ runtime allocated p */
		return;
	}
	switch (i) {
	case DEL:
	case ADEL:
		((del_fn)f)(p);
		break;
	case DEL_SZ:
	case ADEL_SZ:
		((del_2_fn)f)(p, size);
		break;
	case DEL_AL:
	case ADEL_AL:
		((del_2_fn)f)(p, align);
		break;
	case DEL_SZ_AL:
	case ADEL_SZ_AL:
		((del_3_fn)f)(p, size, align);
		break;
	case DEL_NT:
	case ADEL_NT:
		((del_nt_fn)f)(p, nt);
		break;
	default:
		((del_al_nt_fn)f)(p, align, nt);
		break;
	}
}

/* The exported operators, by their Itanium ABI names. */
#define RA ((uintptr_t)__builtin_return_address(0))
#define NEW_OPS(pre, N, NT, AL, AL_NT)                                                             \
	MP_EXPORT void *pre(size_t n)                                                              \
	{                                                                                          \
		return op_new(N, n, 0, NULL, RA);                                                  \
	}                                                                                          \
	MP_EXPORT void *pre##RKSt9nothrow_t(size_t n, const void *nt)                              \
	{                                                                                          \
		return op_new(NT, n, 0, nt, RA);                                                   \
	}                                                                                          \
	MP_EXPORT void *pre##St11align_val_t(size_t n, size_t al)                                  \
	{                                                                                          \
		return op_new(AL, n, al, NULL, RA);                                                \
	}                                                                                          \
	MP_EXPORT void *pre##St11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)    \
	{                                                                                          \
		return op_new(AL_NT, n, al, nt, RA);                                               \
	}

#define DELETE_OPS(pre, D, SZ, NT, AL, SZ_AL, AL_NT)                                               \
	MP_EXPORT void pre(void *p)                                                                \
	{                                                                                          \
		op_delete(D, p, 0, 0, NULL, RA);                                                   \
	}                                                                                          \
	MP_EXPORT void pre##m(void *p, size_t n)                                                   \
	{                                                                                          \
		op_delete(SZ, p, n, 0, NULL, RA);                                                  \
	}                                                                                          \
	MP_EXPORT void pre##RKSt9nothrow_t(void *p, const void *nt)                                \
	{                                                                                          \
		op_delete(NT, p, 0, 0, nt, RA);                                                    \
	}                                                                                          \
	MP_EXPORT void pre##St11align_val_t(void *p, size_t al)                                    \
	{                                                                                          \
		op_delete(AL, p, 0, al, NULL, RA);                                                 \
	}                                                                                          \
	MP_EXPORT void pre##mSt11align_val_t(void *p, size_t n, size_t al)                         \
	{                                                                                          \
		op_delete(SZ_AL, p, n, al, NULL, RA);                                              \
	}                                                                                          \
	MP_EXPORT void pre##St11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)      \
	{                                                                                          \
		op_delete(AL_NT, p, 0, al, nt, RA);                                                \
	}

NEW_OPS(_Znwm, NEW, NEW_NT, NEW_AL, NEW_AL_NT)
NEW_OPS(_Znam, ANEW, ANEW_NT, ANEW_AL, ANEW_AL_NT)
DELETE_OPS(_ZdlPv, DEL, DEL_SZ, DEL_NT, DEL_AL, DEL_SZ_AL, DEL_AL_NT)
DELETE_OPS(_ZdaPv, ADEL, ADEL_SZ, ADEL_NT, ADEL_AL, ADEL_SZ_AL, ADEL_AL_NT)
