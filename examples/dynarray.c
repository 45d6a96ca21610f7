/* dynarray.c: a growable array of sensor readings, grown by realloc doubling or sized once
 * (--presize). It counts its own allocations and prints them as one JSON line; it must never
 * allocate outside the counters of example.h.
 *
 * Usage: dynarray [ITEMS] [--presize]      (ITEMS defaults to 10000)
 *
 * The array is the vector every C code base writes: push() reallocs to twice the capacity when
 * the array is full, starting at 16 elements. Each realloc is one allocation of the new size at
 * the same call site (the profiler counts realloc(p, n) as one object of n bytes that releases p),
 * so a growing array leaves a doubling run of sizes at one line: 16, 32, 64, ... elements. For
 * 10,000 readings of 40 bytes that is 1 + 10 allocations (640 B up to 640 KiB, 1.3 MB in all) for
 * an array that ends 400,000 bytes long. Sized once with reserve(), it is one malloc of exactly
 * what it needs and push() never reallocates. */
#include <stdint.h>

#include "example.h"

struct reading {
	char sensor[16]; /* "temp-0042" */
	double value;
	int64_t timestamp;
	uint32_t flags;
};

struct readings {
	struct reading *v;
	size_t len, cap;
};

#define FIRST_CAP 16

/* Sizes the array once for n elements: the pre-sized path. */
static void reserve(struct readings *a, size_t n)
{
	void *p = realloc(a->v, n * sizeof(*a->v));
	if (!p)
		ex_die("realloc");
	ex_count_realloc(a->cap * sizeof(*a->v), n * sizeof(*a->v));
	a->v = p;
	a->cap = n;
}

static void push(struct readings *a, const struct reading *r)
{
	if (a->len == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : FIRST_CAP;
		void *p = realloc(a->v, cap * sizeof(*a->v));
		if (!p)
			ex_die("realloc");
		ex_count_realloc(a->cap * sizeof(*a->v), cap * sizeof(*a->v));
		if (a->cap) /* the first allocation any array needs; the rest is growth */
			ex_count_growth(cap * sizeof(*a->v));
		a->v = p;
		a->cap = cap;
	}
	a->v[a->len++] = *r;
}

/* Collects the readings and averages them. Every counted allocation happens under this
 * function (the "scope" of the JSON line). */
__attribute__((noinline)) static double collect(struct readings *a, unsigned long items,
                                                int presize)
{
	if (presize)
		reserve(a, items);
	for (unsigned long i = 0; i < items; i++) {
		struct reading r;
		memset(&r, 0, sizeof(r));
		snprintf(r.sensor, sizeof(r.sensor), "temp-%04lu", i % 1000);
		r.value = 20.0 + (double)(i % 97) / 10.0;
		r.timestamp = 1700000000 + (int64_t)i;
		r.flags = (uint32_t)(i & 3);
		push(a, &r);
	}
	double sum = 0;
	for (size_t i = 0; i < a->len; i++)
		sum += a->v[i].value;
	return a->len ? sum / (double)a->len : 0;
}

int main(int argc, char **argv)
{
	unsigned long items;
	int presize;
	ex_args(argc, argv, &items, &presize);

	struct readings a = {NULL, 0, 0};
	double mean = collect(&a, items, presize);
	size_t cap = a.cap;
	ex_free(a.v, a.cap * sizeof(*a.v));

	char extra[160];
	snprintf(extra, sizeof(extra),
	         ",\"element_size\":%zu,\"final_capacity\":%zu,\"final_bytes\":%zu,\"mean\":%.3f",
	         sizeof(struct reading), cap, cap * sizeof(struct reading), mean);
	ex_print("dynarray", "collect", items, presize, extra);
	return 0;
}
