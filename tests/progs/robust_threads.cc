/* robust_threads.cc: threads that come and go while allocating. Mode "churn": rounds of short
 * threads, joined or detached, each allocating, with a C++ thread_local whose destructor
 * allocates and frees, and a pthread key whose destructor (run after mapprof's own thread-exit
 * hook) allocates and frees the thread's blocks. Mode "busy_exit": main returns while workers
 * are still allocating, so the exit dump is taken while they run; the workers count their
 * allocations in a shared file (FILE) the test reads afterwards. It must never allocate outside
 * its site_* functions (and spawn()).
 *
 * usage: robust_threads churn ROUNDS THREADS | robust_threads busy_exit FILE */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_thread)                                                                             \
	X(site_tls_dtor)                                                                           \
	X(site_key_dtor)                                                                           \
	X(site_busy)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES];
static const char *const names[NSITES] = {
#define NAME_ONLY(n) #n,
    SITES(NAME_ONLY)};

static pthread_key_t key;
static int detached_done;

extern "C" {

SITE void *site_thread(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_thread], n);
	return p;
}

SITE void *site_tls_dtor(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_tls_dtor], n);
	return p;
}

SITE void *site_key_dtor(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_key_dtor], n);
	return p;
}

SITE void *site_busy(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_busy], n);
	return p;
}
}

/* The thread's blocks: 20 from site_thread; the key destructor frees them. */
struct blocks {
	void *p[20];
	size_t n[20];
};

struct TlsGuard {
	bool armed = false;
	~TlsGuard()
	{
		if (!armed)
			return;
		void *p = site_tls_dtor(48);
		free(p);
		truth_free(&sites[S_site_tls_dtor], 48);
		void *q = site_tls_dtor(96); /* stays live */
		(void)q;
	}
};
static thread_local TlsGuard guard;

static void key_destructor(void *arg)
{
	struct blocks *b = (struct blocks *)arg;
	void *p = site_key_dtor(64);
	free(p);
	truth_free(&sites[S_site_key_dtor], 64);
	void *q = site_key_dtor(128); /* stays live */
	(void)q;
	for (int i = 0; i < 20; i += 2) {
		free(b->p[i]);
		truth_free(&sites[S_site_thread], b->n[i]);
	}
	munmap(b, sizeof(*b));
}

extern "C" void *short_thread(void *arg);
/* Its first use of the thread_local registers the destructor: libc allocates for that. */
void *short_thread(void *arg)
{
	long k = (long)arg;
	guard.armed = true;
	struct blocks *b =
	    (struct blocks *)mmap(NULL, sizeof(struct blocks), PROT_READ | PROT_WRITE,
	                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		_exit(3);
	for (int i = 0; i < 20; i++) {
		b->n[i] = 16 + (size_t)((k + i) % 50) * 8;
		b->p[i] = site_thread(b->n[i]);
	}
	pthread_setspecific(key, b);
	if (k % 3 == 0)
		pthread_exit(NULL);
	return NULL;
}

static int churn(int rounds, int threads)
{
	pthread_key_create(&key, key_destructor);
	long created = 0;
	for (int r = 0; r < rounds; r++) {
		pthread_t t[64];
		for (int i = 0; i < threads && i < 64; i++) {
			if (spawn(&t[i], short_thread, (void *)(long)(r * threads + i)) != 0)
				return 3;
			created++;
		}
		for (int i = 0; i < threads && i < 64; i++)
			pthread_join(t[i], NULL);
	}
	check_val("threads", created);
	return 0;
}

/* ---- busy_exit ---- */

static unsigned long long *shared_count;
static int busy_workers = 3;

static void *busy(void *arg)
{
	(void)arg;
	for (size_t i = 0;; i++) {
		void *p = site_busy(8 + i % 200);
		__atomic_add_fetch(shared_count, 1, __ATOMIC_SEQ_CST);
		free(p);
	}
	return NULL;
}

/* Registered first, so it runs last of the atexit handlers, just before mapprof's dump. */
static void report_lower_bound(void)
{
	check_val("before_dump", (long long)__atomic_load_n(shared_count, __ATOMIC_SEQ_CST));
	check_val("workers", busy_workers);
	truth_print("busy", sites, NSITES);
}

static int busy_exit(const char *file)
{
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, 4096) != 0)
		return 3;
	shared_count =
	    (unsigned long long *)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (shared_count == MAP_FAILED)
		return 3;
	atexit(report_lower_bound);
	for (int i = 0; i < busy_workers; i++) {
		pthread_t t;
		if (spawn(&t, busy, NULL) != 0)
			return 3;
		pthread_detach(t);
	}
	while (__atomic_load_n(shared_count, __ATOMIC_SEQ_CST) < 200000)
		robust_sleep_us(1000);
	return 0; /* the workers are still allocating */
}

int main(int argc, char **argv)
{
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	if (argc >= 4 && strcmp(argv[1], "churn") == 0) {
		int r = churn(atoi(argv[2]), atoi(argv[3]));
		if (r)
			return r;
		truth_print("churn", sites, NSITES);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "busy_exit") == 0)
		return busy_exit(argv[2]);
	(void)detached_done;
	return 2;
}
