/* robust_exc.cc: C++ exceptions thrown through frames that allocate: each level of a recursion
 * owns a block (freed by its destructor during unwinding), the innermost level throws, the
 * handler allocates too; a failing operator new throws std::bad_alloc. Every allocation of its
 * own is at a site_* function; the exception objects are libstdc++'s (under throw_here).
 *
 * usage: robust_exc [THROWS] */
#include <cstdint>
#include <new>
#include <stdexcept>

#include "truth.h"

#define SITES(X)                                                                                   \
	X(site_level)                                                                              \
	X(site_handler)                                                                            \
	X(site_new_array)

#define ENUM(n) S_##n,
#define NAME(n) [S_##n] = {#n, 0, 0, 0, 0},
enum { SITES(ENUM) NSITES };
static struct truth_site sites[NSITES];
static const char *const names[NSITES] = {
#define NAME_ONLY(n) #n,
    SITES(NAME_ONLY)};

struct Block {
	size_t n;
	char *p;
	explicit Block(size_t size);
	~Block();
};

extern "C" { /* unmangled names, as nm shows them */

SITE char *site_level(size_t n)
{
	char *p = static_cast<char *>(operator new(n));
	truth_alloc(&sites[S_site_level], n);
	return p;
}

SITE char *site_new_array(size_t n)
{
	char *p = new char[n];
	truth_alloc(&sites[S_site_new_array], n);
	return p;
}

SITE void *site_handler(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_handler], n);
	return p;
}

/* operator new fails and throws std::bad_alloc: libstdc++ allocates the exception object under
 * this frame. */
SITE void try_huge(void)
{
	volatile size_t huge = SIZE_MAX / 2;
	char *q = new char[huge];
	truth_alloc(&sites[S_site_new_array], huge);
	delete[] q;
}

} /* extern "C" */

Block::Block(size_t size) : n(size), p(site_level(size))
{
}

Block::~Block()
{
	operator delete(p);
	truth_free(&sites[S_site_level], n);
}

extern "C" {

SITE void throw_here(int k)
{
	throw std::runtime_error(k % 2 ? "odd" : "even");
}

SITE int level(int depth, int k)
{
	Block b(32 + (size_t)depth * 8);
	int r = b.p[0];
	if (depth > 0)
		r += level(depth - 1, k);
	else
		throw_here(k);
	__asm__ volatile("" ::: "memory");
	return r;
}
}

int main(int argc, char **argv)
{
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	int throws = argc > 1 ? atoi(argv[1]) : 100;
	int caught = 0, bad_alloc = 0;
	for (int k = 0; k < throws; k++) {
		try {
			level(k % 8, k);
		} catch (const std::runtime_error &e) {
			caught++;
			void *p = site_handler(16 + (size_t)(e.what()[0] == 'o'));
			free(p);
			truth_free(&sites[S_site_handler], 16 + (size_t)(e.what()[0] == 'o'));
		}
	}
	try {
		try_huge();
	} catch (const std::bad_alloc &) {
		bad_alloc++;
	}
	/* After the failed operator new threw through mapprof's operator: still counted. */
	char *kept = site_new_array(64); /* live at exit */
	check_val("caught", caught);
	check_val("bad_alloc", bad_alloc);
	check_val("kept", kept != nullptr);
	truth_print("main", sites, NSITES);
	return 0;
}
