/* robust_ondemand.c: a long-running program profiled without exiting. In mode "signal" it asks
 * for a dump with the MAPPROF_SIGNAL signal twice (once raised by itself, once sent by another
 * thread while the main thread is blocked in read(), which must not fail), waiting each time for
 * DIR/<pid>.dump.<n>; in mode "interval" it waits for MAPPROF_INTERVAL dumps between phases.
 * Before each awaited dump it prints its cumulative truth (role "seq", check "seq": n). It must
 * never allocate outside its site_* functions (and spawn()).
 *
 * usage: robust_ondemand signal DIR SIGNO | robust_ondemand interval DIR */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_phase1)                                                                             \
	X(site_phase2)                                                                             \
	X(site_phase3)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

static const char *dir;
static int signo;
static int pipefd[2];
static void *keep[1000];

SITE static void *site_phase1(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_phase1], n);
	return p;
}

SITE static void *site_phase2(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_phase2], n);
	return p;
}

SITE static void *site_phase3(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_phase3], n);
	return p;
}

/* Phase k: 100 * k blocks, every other one freed; frees some of the earlier phases' too. */
static void phase(int k)
{
	void *(*site)(size_t) = k == 1 ? site_phase1 : k == 2 ? site_phase2 : site_phase3;
	for (int i = 0; i < 100 * k; i++) {
		size_t n = 10 + (size_t)(i * k) % 300;
		void *p = site(n);
		if (i % 2 == 0) {
			free(p);
			truth_free(&sites[k - 1], n);
		} else {
			keep[(k - 1) * 300 + i / 2] = p;
		}
	}
	if (k > 1) /* phase k-1's first ten live blocks */
		for (int i = 0; i < 10; i++) {
			int j = 2 * i + 1;
			free(keep[(k - 2) * 300 + j / 2]);
			truth_free(&sites[k - 2], 10 + (size_t)(j * (k - 1)) % 300);
		}
}

static void dump_path(char *buf, size_t size, int seq)
{
	snprintf(buf, size, "%s/%d.dump.%d", dir, (int)getpid(), seq);
}

static int exists(int seq)
{
	char path[4096];
	dump_path(path, sizeof(path), seq);
	return access(path, F_OK) == 0;
}

static int wait_seq(int seq)
{
	char path[4096];
	dump_path(path, sizeof(path), seq);
	return robust_wait_file(path, 30);
}

static void print_seq(int seq)
{
	checks_len = 0;
	check_val("seq", seq);
	truth_print("seq", sites, NSITES);
}

static void *asker(void *arg)
{
	(void)arg;
	kill(getpid(), signo);
	int ok = wait_seq(2) == 0;
	char c = ok ? 'y' : 'n';
	if (write(pipefd[1], &c, 1) != 1)
		_exit(3);
	return NULL;
}

static int by_signal(void)
{
	phase(1);
	print_seq(1);
	raise(signo);
	if (wait_seq(1) != 0)
		return 4;
	phase(2);
	print_seq(2);
	if (pipe(pipefd) != 0)
		return 3;
	pthread_t t;
	if (spawn(&t, asker, NULL) != 0)
		return 3;
	char c = 0;
	errno = 0;
	ssize_t r = read(pipefd[0], &c, 1); /* the signal may land here: SA_RESTART */
	pthread_join(t, NULL);
	if (r != 1 || c != 'y')
		return 5;
	phase(3);
	checks_len = 0;
	check_val("seq", 0);
	truth_print("final", sites, NSITES);
	return 0;
}

/* Dumps come on a timer: after a phase, the second dump to appear was certainly taken after it,
 * while the program did nothing but wait. */
static int by_interval(void)
{
	for (int k = 1; k <= 2; k++) {
		phase(k);
		int m = 0;
		while (exists(m + 1))
			m++;
		if (wait_seq(m + 2) != 0)
			return 4;
		print_seq(m + 2);
	}
	phase(3);
	checks_len = 0;
	check_val("seq", 0);
	truth_print("final", sites, NSITES);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	dir = argv[2];
	if (strcmp(argv[1], "signal") == 0 && argc > 3) {
		signo = atoi(argv[3]);
		return by_signal();
	}
	if (strcmp(argv[1], "interval") == 0)
		return by_interval();
	return 2;
}
