/* symbols_closures.cc: allocations in lambdas, a function's local class and an anonymous
 * namespace, for the symbolizer's C++ names (tests/test_report_symbols.py). gcc gives these no
 * DW_AT_linkage_name; the names expected are the ones its mangled names demangle to. It prints
 * its own counts as one JSON line; it never allocates through malloc outside the counted sites
 * before that line is printed. */
#include <cstdio>
#include <cstdlib>

#define NOINLINE __attribute__((noinline))

/* Keeps the compiler from removing a malloc/free pair (gcc -O2 does). */
#define USE(p) __asm__ volatile("" ::"r"(p) : "memory")

static void churn(int n, size_t size)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(size);
		USE(p);
		free(p);
	}
}

/* The lambdas run inside these (inlined into them at -O2). */
template <class F> NOINLINE void run(F f)
{
	f();
	__asm__ volatile("" ::: "memory");
}

template <class F> NOINLINE void run_int(F f, int n)
{
	f(n);
	__asm__ volatile("" ::: "memory");
}

namespace
{
NOINLINE void anon_alloc(int n)
{
	for (int i = 0; i < n; i++) {
		void *p = malloc(48);
		USE(p);
		free(p);
	}
	__asm__ volatile("" ::: "memory");
}
} // namespace

NOINLINE static void with_local_class(int n)
{
	struct Local {
		NOINLINE static void go(int k)
		{
			for (int i = 0; i < k; i++) {
				void *p = malloc(80);
				USE(p);
				free(p);
			}
			__asm__ volatile("" ::: "memory");
		}
	};
	Local::go(n);
	__asm__ volatile("" ::: "memory");
}

/* An operator template: its short name is "operator+", without "<int>". */
template <class T> struct Box {
	T v;
};

template <class T> NOINLINE Box<T> operator+(Box<T> a, Box<T> b)
{
	for (int i = 0; i < a.v; i++) {
		void *p = malloc(96);
		USE(p);
		free(p);
	}
	__asm__ volatile("" ::: "memory");
	return Box<T>{a.v + b.v};
}

/* A lambda in a function that takes parameters: work(int)::{lambda()#1}, whose short name
 * keeps the function's "work::" and its own braces. */
NOINLINE static void work(int n)
{
	run([n] {
		for (int i = 0; i < n; i++) {
			void *p = malloc(112);
			USE(p);
			free(p);
		}
	});
	__asm__ volatile("" ::: "memory");
}

int main()
{
	/* main::{lambda()#1}, main::{lambda()#2}, main::{lambda(int)#1} */
	run([] {
		for (int i = 0; i < 3; i++) {
			void *p = malloc(16);
			USE(p);
			free(p);
		}
	});
	run([] {
		for (int i = 0; i < 5; i++) {
			void *p = malloc(32);
			USE(p);
			free(p);
		}
	});
	run_int(
	    [](int n) {
		    for (int i = 0; i < n; i++) {
			    void *p = malloc(64);
			    USE(p);
			    free(p);
		    }
	    },
	    4);
	anon_alloc(6);
	with_local_class(2);
	Box<int> sum = Box<int>{7} + Box<int>{1};
	USE(&sum);
	work(9);
	(void)churn;
	printf("{\"lambda1\":3,\"lambda2\":5,\"lambda_int\":4,\"anon\":6,\"local\":2,"
	       "\"plus\":7,\"work_lambda\":9}\n");
	fflush(stdout);
	return 0;
}
