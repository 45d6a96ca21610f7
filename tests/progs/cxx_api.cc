/* cxx_api.cc: C++ allocation through libstdc++'s operators (new, new[], aligned new, nothrow new,
 * delete, sized and aligned delete, an allocator-aware container), each from its own call site,
 * counting per site what reached the allocator; prints that truth (truth.h). It must never
 * allocate outside its site_* functions: no iostream, no std::string.
 *
 * usage: cxx_api [ITERATIONS] */
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "truth.h"

#define SITES(X)                                                                                   \
	X(site_new_obj)                                                                            \
	X(site_new_array)                                                                          \
	X(site_new_array_dtor)                                                                     \
	X(site_new_aligned)                                                                        \
	X(site_new_aligned_array)                                                                  \
	X(site_new_nothrow)                                                                        \
	X(site_vector)

#define ENUM(n) S_##n,
#define NAME(n) {#n, 0, 0, 0, 0},
enum { SITES(ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(NAME)};

struct Obj {
	long a[5];
};

struct WithDtor {
	long a[3];
	~WithDtor()
	{
		a[0] = 0;
	}
};

struct alignas(64) Aligned {
	char x[128];
};

/* The Itanium C++ ABI puts a cookie holding the element count before an array of a type with a
 * non-trivial destructor: max(sizeof(size_t), alignof(T)) bytes more are requested. */
static const size_t COOKIE = sizeof(size_t) > alignof(WithDtor) ? sizeof(size_t)
                                                                : alignof(WithDtor);

/* An allocator that counts what the container asks for, at the site that uses it. */
template <class T> struct Counting {
	typedef T value_type;
	Counting() = default;
	template <class U> Counting(const Counting<U> &)
	{
	}
	T *allocate(size_t n)
	{
		T *p = static_cast<T *>(::operator new(n * sizeof(T)));
		truth_alloc(&sites[S_site_vector], n * sizeof(T));
		return p;
	}
	void deallocate(T *p, size_t n)
	{
		truth_free(&sites[S_site_vector], n * sizeof(T));
		::operator delete(p);
	}
	bool operator==(const Counting &) const
	{
		return true;
	}
	bool operator!=(const Counting &) const
	{
		return false;
	}
};

extern "C" {

SITE Obj *site_new_obj(void)
{
	Obj *o = new Obj();
	truth_alloc(&sites[S_site_new_obj], sizeof(Obj));
	return o;
}

SITE char *site_new_array(size_t n)
{
	char *p = new char[n];
	truth_alloc(&sites[S_site_new_array], n);
	return p;
}

SITE WithDtor *site_new_array_dtor(size_t k)
{
	WithDtor *p = new WithDtor[k];
	truth_alloc(&sites[S_site_new_array_dtor], k * sizeof(WithDtor) + COOKIE);
	return p;
}

SITE Aligned *site_new_aligned(void)
{
	Aligned *p = new Aligned();
	truth_alloc(&sites[S_site_new_aligned], sizeof(Aligned));
	return p;
}

SITE char *site_new_aligned_array(size_t n, size_t align)
{
	char *p = new (std::align_val_t(align)) char[n];
	/* mapprof counts the size asked of operator new, not libstdc++'s rounding of it up to a
	 * multiple of the alignment for aligned_alloc: what the program asked for. */
	truth_alloc(&sites[S_site_new_aligned_array], n);
	return p;
}

SITE char *site_new_nothrow(size_t n)
{
	char *p = new (std::nothrow) char[n];
	if (p)
		truth_alloc(&sites[S_site_new_nothrow], n);
	return p;
}

SITE size_t site_vector(std::vector<int, Counting<int>> *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v->push_back((int)i);
	return v->size();
}
}

typedef std::vector<int, Counting<int>> Vec;
#define MAXVEC 2000
struct vec_slot {
	alignas(Vec) unsigned char bytes[sizeof(Vec)];
};
static vec_slot vec_store[MAXVEC];
static size_t nvec;

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 1000;
	if (iters < 1 || iters > 100000)
		return 2;
	/* Every third of each kind is kept until exit (live), the rest deleted. */
	for (long i = 0; i < iters; i++) {
		size_t n = 1 + (size_t)(i * 53) % 900;
		bool keep = i % 3 == 0;

		Obj *o = site_new_obj();
		if (!keep) {
			delete o;
			truth_free(&sites[S_site_new_obj], sizeof(Obj));
		}
		char *a = site_new_array(n);
		if (!keep) {
			delete[] a;
			truth_free(&sites[S_site_new_array], n);
		}
		size_t k = 1 + i % 5;
		WithDtor *w = site_new_array_dtor(k);
		if (!keep) {
			delete[] w;
			truth_free(&sites[S_site_new_array_dtor], k * sizeof(WithDtor) + COOKIE);
		}
		Aligned *al = site_new_aligned();
		if (!keep) {
			delete al; /* sized, aligned delete */
			truth_free(&sites[S_site_new_aligned], sizeof(Aligned));
		}
		size_t align = (size_t)16 << (i % 6);
		char *aa = site_new_aligned_array(n, align);
		if (!keep) {
			operator delete[](aa, std::align_val_t(align));
			truth_free(&sites[S_site_new_aligned_array], n);
		}
		char *nt = site_new_nothrow(n);
		if (!keep && nt) {
			delete[] nt;
			truth_free(&sites[S_site_new_nothrow], n);
		}
		if (i % 50 == 0 && nvec < MAXVEC) {
			/* The vector object itself lives in static storage: only its elements are
			 * allocated, by its allocator, under site_vector. */
			Vec *v = new (&vec_store[nvec++]) Vec();
			site_vector(v, 1 + (size_t)i % 700);
			if (!keep)
				Vec().swap(*v);
		}
		delete static_cast<Obj *>(nullptr);
	}
	truth_print("main", sites, NSITES);
	return 0;
}
