/* robust_exit.c: allocates at known sites, then ends in the way MODE names, so the tests can
 * check which dump each ending leaves and that the exit status is the program's own. It prints
 * its truth line just before the end; it must never allocate outside its site_* functions
 * (except pthread_create's own allocation, made in spawn()).
 *
 * usage: robust_exit MODE   MODE: return exit _exit _Exit abort quick_exit thread_exit
 *                                 main_pthread_exit atexit segv
 * Exit status: return 0, exit 7, _exit 8, _Exit 9, quick_exit 10, thread_exit 11, atexit 12,
 * main_pthread_exit 0, abort SIGABRT, segv SIGSEGV. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_main)                                                                               \
	X(site_calloc)                                                                             \
	X(site_thread)                                                                             \
	X(site_atexit)                                                                             \
	X(site_destructor)                                                                         \
	X(site_quick)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};

static const char *mode = "";
static void *keep[64];

SITE static void *site_main(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_main], n);
	return p;
}

SITE static void *site_calloc(size_t n)
{
	void *p = calloc(n, 3);
	if (p)
		truth_alloc(&sites[S_site_calloc], n * 3);
	return p;
}

SITE static void *site_thread(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_thread], n);
	return p;
}

SITE static void *site_atexit(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_atexit], n);
	return p;
}

SITE static void *site_destructor(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_destructor], n);
	return p;
}

SITE static void *site_quick(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_quick], n);
	return p;
}

/* The same work in every mode: 100 blocks, half freed; 20 zeroed blocks, all live. */
static void work(void)
{
	for (int i = 0; i < 100; i++) {
		size_t n = 8 + (size_t)i * 5;
		void *p = site_main(n);
		if (i % 2) {
			free(p);
			truth_free(&sites[S_site_main], n);
		} else if (i / 2 < 64) {
			keep[i / 2] = p;
		}
	}
	for (int i = 0; i < 20; i++)
		keep[50 + i % 14] = site_calloc(10 + (size_t)i);
}

static void print(void)
{
	check_val("mode_len", (long long)strlen(mode));
	truth_print(mode, sites, NSITES);
}

static void *exiting_thread(void *arg)
{
	(void)arg;
	for (int i = 0; i < 30; i++)
		keep[i] = site_thread(100 + (size_t)i);
	print();
	exit(11); /* from a thread other than main; main waits in pthread_join */
}

static void *last_thread(void *arg)
{
	(void)arg;
	robust_sleep_us(20000); /* let main reach pthread_exit */
	for (int i = 0; i < 30; i++)
		keep[i] = site_thread(200 + (size_t)i);
	print();
	return NULL; /* the last thread: the process exits with status 0 */
}

/* atexit handlers run in reverse order of registration: alloc_at_exit first, then the
 * destructor below, then mapprof's dump. */
static void alloc_at_exit(void)
{
	for (int i = 0; i < 10; i++) {
		void *p = site_atexit(40 + (size_t)i);
		if (i % 2) {
			free(p);
			truth_free(&sites[S_site_atexit], 40 + (size_t)i);
		}
	}
}

__attribute__((destructor)) static void program_destructor(void)
{
	if (strcmp(mode, "atexit") != 0)
		return;
	for (int i = 0; i < 5; i++)
		keep[i] = site_destructor(70 + (size_t)i);
	print();
}

static void quick_handler(void)
{
	for (int i = 0; i < 7; i++)
		keep[i] = site_quick(300);
	print();
}

/* pthread_exit loads libgcc_s for its unwinding (the C runtime's allocation, not ours): the test
 * accounts for it by this frame. */
SITE static void end_main_thread(void)
{
	pthread_exit(NULL);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	mode = argv[1];
	work();
	if (strcmp(mode, "return") == 0) {
		print();
		return 0;
	}
	if (strcmp(mode, "exit") == 0) {
		print();
		exit(7);
	}
	if (strcmp(mode, "_exit") == 0) {
		print();
		_exit(8);
	}
	if (strcmp(mode, "_Exit") == 0) {
		print();
		_Exit(9);
	}
	if (strcmp(mode, "abort") == 0) {
		print();
		abort();
	}
	if (strcmp(mode, "quick_exit") == 0) {
		at_quick_exit(quick_handler);
		quick_exit(10);
	}
	if (strcmp(mode, "atexit") == 0) {
		atexit(alloc_at_exit);
		exit(12);
	}
	if (strcmp(mode, "segv") == 0) {
		print();
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
		return 1;
	}
	if (strcmp(mode, "fault") == 0) {
		/* A real fault, not a raise: the kernel sends SIGSEGV again each
		 * time a handler returns to the faulting store. */
		print();
		*(volatile int *)(uintptr_t)strlen(mode) = 1;
		return 1;
	}
	if (strcmp(mode, "thread_exit") == 0 || strcmp(mode, "main_pthread_exit") == 0) {
		pthread_t t;
		int other = strcmp(mode, "thread_exit") == 0;
		if (spawn(&t, other ? exiting_thread : last_thread, NULL) != 0)
			return 3;
		if (other) {
			pthread_join(t, NULL);
			return 4; /* not reached: the thread exits the process */
		}
		end_main_thread();
	}
	return 2;
}
