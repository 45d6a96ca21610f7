/* thread_churn.c: short-lived threads: each of THREADS threads (one at a time, or BATCH at a
 * time) is created, makes ALLOCS allocations from one call site a few frames deep, frees them and
 * is joined. It measures what a thread's first recorded allocation costs (the unwinder's
 * per-thread setup), the pattern of a server that spawns a thread per request. Prints its exact
 * allocation count as one JSON line.
 *
 * Usage: thread_churn [THREADS] [ALLOCS_PER_THREAD] [BATCH]      (defaults: 2000, 1, 1)
 *
 * Build with -O2 -fno-omit-frame-pointer so MAPPROF_UNWIND=fp has frame pointers to walk. */
#include <pthread.h>

#include "bench.h"

#define MAXBATCH 64

static BENCH_NOINLINE void *site(size_t size)
{
	char *p = malloc(size);
	if (p)
		p[0] = 1;
	BENCH_KEEP(p);
	return p;
}

static BENCH_NOINLINE void *descend(unsigned depth, size_t size)
{
	void *p = depth ? descend(depth - 1, size) : site(size);
	BENCH_KEEP(p);
	return p;
}

struct worker {
	pthread_t thread;
	unsigned long long allocs;
	int failed;
};

static unsigned long long per_thread;

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (unsigned long long i = 0; i < per_thread; i++) {
		void *p = descend(4, 64);
		if (!p)
			w->failed = 1;
		free(p);
		w->allocs++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	const char *usage = "[THREADS] [ALLOCS_PER_THREAD] [BATCH]";
	unsigned long long threads = bench_arg(argc, argv, 1, 2000, usage);
	per_thread = bench_arg(argc, argv, 2, 1, usage);
	unsigned long long batch = bench_arg(argc, argv, 3, 1, usage);
	if (batch > MAXBATCH) {
		fprintf(stderr, "%s: at most %d threads at a time\n", argv[0], MAXBATCH);
		return 1;
	}
	static struct worker workers[MAXBATCH];
	unsigned long long allocs = 0;
	int failed = 0;
	for (unsigned long long done = 0; done < threads;) {
		unsigned long long k = threads - done < batch ? threads - done : batch;
		for (unsigned i = 0; i < k; i++) {
			workers[i] = (struct worker){0};
			if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) !=
			    0) {
				fprintf(stderr, "%s: cannot create a thread\n", argv[0]);
				return 1;
			}
		}
		for (unsigned i = 0; i < k; i++) {
			pthread_join(workers[i].thread, NULL);
			allocs += workers[i].allocs;
			failed |= workers[i].failed;
		}
		done += k;
	}
	if (failed) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	printf("{\"workload\":\"thread_churn\",\"threads\":%llu,\"allocs\":%llu}\n", threads,
	       allocs);
	return 0;
}
