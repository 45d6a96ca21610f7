/* fork.c: allocates before and after fork(), in the parent and in each child, frees blocks of the
 * parent in the child and the other way round; optionally a thread allocates all along. Each
 * process prints its own truth line (role "parent" or "child"): a child counts only what it
 * allocated after the fork. It must never allocate outside its site_* functions.
 *
 * usage: fork [CHILDREN] [--thread] */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "truth.h"

#define SITES(X)                                                                                   \
	X(site_before_fork)                                                                        \
	X(site_in_child)                                                                           \
	X(site_after_fork)                                                                         \
	X(site_background)

#define ENUM(n)      S_##n,
#define NAME(n)      [S_##n] = {#n, 0, 0, 0, 0},
#define NAME_ONLY(n) #n,
enum { SITES(ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(NAME)};

#define NBEFORE 1000
static void *before[NBEFORE];
void *after[500]; /* live at exit */

SITE static void *site_before_fork(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_before_fork], n);
	return p;
}

SITE static void *site_in_child(size_t n)
{
	void *p = calloc(1, n);
	if (p)
		truth_alloc(&sites[S_site_in_child], n);
	return p;
}

SITE static void *site_after_fork(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_after_fork], n);
	return p;
}

/* The background thread: allocates and frees until told to stop, so forks happen while it is
 * inside the allocator. Its counts are its own until it stops. */
static int stop;
static unsigned long long bg_objects, bg_bytes;

SITE static void *site_background(size_t n)
{
	void *p = malloc(n);
	if (p) {
		bg_objects++;
		bg_bytes += n;
	}
	return p;
}

static void *background(void *arg)
{
	(void)arg;
	size_t n = 1;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		void *p = site_background(n);
		free(p);
		n = n % 1000 + 7;
	}
	return NULL;
}

/* pthread_create allocates for the thread (glibc's DTV): the test accounts for those chains
 * through spawn(), which reach no site. */
SITE static int spawn(pthread_t *t)
{
	int r = pthread_create(t, NULL, background, NULL);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return r;
}

static size_t size_of(int i)
{
	return 16 + (size_t)(i * 13) % 500;
}

/* The child: a fresh profile. It frees some of the parent's blocks (nothing to count: they were
 * allocated before its profile began) and some of its own. */
static void child(int k)
{
	memset(sites, 0, sizeof(sites));
	static const char *const names[NSITES] = {SITES(NAME_ONLY)};
	(void)names;
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
	void *mine[300];
	for (int i = 0; i < 300; i++)
		mine[i] = site_in_child(size_of(i + k));
	for (int i = 0; i < 300; i += 3) {
		free(mine[i]);
		truth_free(&sites[S_site_in_child], size_of(i + k));
	}
	for (int i = 0; i < NBEFORE; i += 2)
		free(before[i]);
	truth_print("child", sites, NSITES);
	exit(0);
}

int main(int argc, char **argv)
{
	int children = 1, thread = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--thread") == 0)
			thread = 1;
		else
			children = atoi(argv[i]);
	}
	pthread_t bg;
	if (thread && spawn(&bg) != 0)
		return 3;
	for (int i = 0; i < NBEFORE; i++)
		before[i] = site_before_fork(size_of(i));
	for (int k = 0; k < children; k++) {
		pid_t pid = fork();
		if (pid < 0)
			return 3;
		if (pid == 0)
			child(k);
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
			return 5;
	}
	/* After the children: the parent frees half of its own early blocks, allocates more. */
	for (int i = 1; i < NBEFORE; i += 2) {
		free(before[i]);
		truth_free(&sites[S_site_before_fork], size_of(i));
	}
	for (int i = 0; i < 500; i++)
		after[i] = site_after_fork(size_of(i) * 2);
	if (thread) {
		__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
		pthread_join(bg, NULL);
		/* The thread freed each of its blocks at once: none is live. */
		sites[S_site_background].objects = bg_objects;
		sites[S_site_background].bytes = bg_bytes;
	}
	check_val("children", children);
	truth_print("parent", sites, NSITES);
	return 0;
}
