/* fork_threads.c: threads start (each makes its first allocation, and so its per-thread cache)
 * while another thread forks without pause: a fork's prepare hook walks every thread's cache, and
 * a cache half made must never be seen. Prints "ok" and exits 0.
 *
 * usage: fork_threads THREADS */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int stop;

static void *forker(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
		pid_t c = fork();
		if (c == 0)
			_exit(0);
		if (c < 0 || waitpid(c, NULL, 0) != c)
			exit(3);
	}
	return NULL;
}

static void *once(void *arg)
{
	free(malloc((size_t)(uintptr_t)arg));
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1000;
	pthread_t f;
	if (pthread_create(&f, NULL, forker, NULL) != 0)
		return 3;
	/* 16 at a time, so that the forker often waits for the shim's lock while
	 * a new thread holds it to link its cache, and runs the moment it is let go */
	for (int i = 0; i < threads; i += 16) {
		pthread_t t[16];
		for (int k = 0; k < 16; k++)
			if (pthread_create(&t[k], NULL, once,
			                   (void *)(uintptr_t)(16 + (i + k) % 100)) != 0)
				return 4;
		for (int k = 0; k < 16; k++)
			if (pthread_join(t[k], NULL) != 0)
				return 4;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(f, NULL);
	puts("ok");
	return 0;
}
