/* robust_exit_race.c: threads that end the process while the main thread does. MODE: "exit"
 * (main calls exit), "return" (main returns), "quick_exit"; the 16 other threads call exit
 * (EXIT_HOW "exit") or _exit ("_exit") with the same status at about the same moment. Before
 * that, main allocates COUNT blocks of 48 bytes at one site and keeps them. Whichever thread's
 * end comes first, the status is 3 and one dump holds at least the COUNT blocks. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "robust.h"

#define THREADS 16

static const char *how;
void *kept[100000]; /* still in use at the end */
static pthread_barrier_t ready;

static void *ender(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&ready);
	if (strcmp(how, "_exit") == 0)
		_exit(3);
	exit(3);
}

SITE static void *keep(size_t n)
{
	void *p = malloc(n);
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	const char *mode = argv[1];
	how = argv[2];
	long count = atol(argv[3]);
	for (long i = 0; i < count && i < 100000; i++)
		kept[i] = keep(48);
	pthread_barrier_init(&ready, NULL, THREADS + 1);
	for (int i = 0; i < THREADS; i++) {
		pthread_t t;
		if (spawn(&t, ender, NULL) != 0)
			return 4;
	}
	pthread_barrier_wait(&ready);
	if (strcmp(mode, "quick_exit") == 0)
		quick_exit(3);
	if (strcmp(mode, "exit") == 0)
		exit(3);
	return 3;
}
