/* robust_process.c: what a process does that the shim must not change. Each mode prints what it
 * saw (or ends with a known status); the test compares with a run without mapprof.
 *
 *   exit_in_handler [abort]  a timer's handler calls _exit(3) (or abort) while the program
 *                            allocates: the process ends with that status, every time
 *   fork_in_handler          a timer's handler forks (the child leaves at once) 200 times while
 *                            the program allocates
 *   fenv                     allocations raise no floating-point exception flag
 *   cancel                   a thread with a cancellation pending allocates: malloc and free are
 *                            not cancellation points, it returns normally
 *   cancel_exit [exit]       such a thread calls _exit(5) (or exit(5)): the process ends with 5
 *   fsize                    prints, then exits 0 (run under a small RLIMIT_FSIZE)
 *   smallstack N             threads with the smallest stack POSIX allows allocate N frames of
 *                            256 bytes deep
 *   smallstack_big N         the same, each thread's first block 64 MiB (run under a sampling
 *                            period of 1 MiB, it is the process's first sampled call)
 *   altstack                 a signal handler on an alternate stack of 8 KiB allocates
 *   keys                     threads allocate, then the program creates pthread keys until none
 *                            is left: it gets as many as without mapprof */
#include <fenv.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;
static volatile int use_abort, forks, go, use_exit;

static void churn(unsigned long i)
{
	sink = malloc(16 + i % 512);
	free(sink);
}

static void exit_on_alarm(int sig)
{
	(void)sig;
	if (use_abort)
		abort();
	_exit(3);
}

static void fork_on_alarm(int sig)
{
	(void)sig;
	pid_t c = fork();
	if (c == 0)
		syscall(SYS_exit_group, 0);
	if (c > 0)
		waitpid(c, NULL, 0);
	forks++;
}

static void timer_us(long us, int repeat)
{
	struct itimerval it = {{0, repeat ? us : 0}, {0, us}};
	setitimer(ITIMER_REAL, &it, NULL);
}

static void *cancel_worker(void *arg)
{
	while (!go) /* no cancellation point */
		;
	sink = malloc(100);
	free(sink);
	if (arg) {
		if (use_exit)
			exit(5);
		_exit(5);
	}
	return NULL;
}

static int cancelled(int exiting)
{
	pthread_t t;
	if (pthread_create(&t, NULL, cancel_worker, exiting ? (void *)1 : NULL) != 0)
		return 2;
	pthread_cancel(t);
	go = 1;
	void *ret;
	pthread_join(t, &ret);
	printf("{\"worker\": \"%s\"}\n", ret == PTHREAD_CANCELED ? "cancelled" : "returned");
	return 0;
}

static volatile int big_first; /* smallstack_big: one large block first, sure to be sampled */

__attribute__((noinline)) static void deep(int depth)
{
	char pad[256];
	pad[0] = (char)depth;
	sink = pad;
	if (depth)
		deep(depth - 1);
	else if (big_first) {
		sink = malloc(64u << 20);
		free(sink);
		churn(32);
	} else
		churn(32);
	__asm__ volatile("" : : "r"(pad) : "memory");
}

static void *small_thread(void *arg)
{
	deep((int)(long)arg);
	return NULL;
}

static char alt[8192]; /* the classic SIGSTKSZ (with _GNU_SOURCE it is not a constant) */

static void alloc_on_signal(int sig)
{
	(void)sig;
	churn(100);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";
	if (!strcmp(mode, "exit_in_handler")) {
		use_abort = !strcmp(arg, "abort");
		signal(SIGALRM, exit_on_alarm);
		timer_us(20000, 0);
		for (unsigned long i = 0;; i++)
			churn(i);
	}
	if (!strcmp(mode, "fork_in_handler")) {
		signal(SIGALRM, fork_on_alarm);
		timer_us(3000, 1);
		for (unsigned long i = 0; forks < 200; i++)
			churn(i);
		timer_us(0, 0);
		printf("{\"forks_done\": %d}\n", forks >= 200);
		return 0;
	}
	if (!strcmp(mode, "fenv")) {
		int raised = 0;
		for (unsigned long i = 0; i < 100000; i++) {
			feclearexcept(FE_ALL_EXCEPT);
			churn(1000 + i);
			raised |= fetestexcept(FE_ALL_EXCEPT);
		}
		printf("{\"raised\": %d}\n", raised);
		return 0;
	}
	if (!strcmp(mode, "cancel"))
		return cancelled(0);
	if (!strcmp(mode, "cancel_exit")) {
		use_exit = !strcmp(arg, "exit");
		churn(0);
		return cancelled(1);
	}
	if (!strcmp(mode, "fsize")) {
		for (unsigned long i = 0; i < 1000; i++)
			churn(i);
		printf("{\"printed\": 1}\n");
		return 0;
	}
	if (!strcmp(mode, "smallstack") || !strcmp(mode, "smallstack_big")) {
		big_first = !strcmp(mode, "smallstack_big");
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, PTHREAD_STACK_MIN);
		for (int i = 0; i < 4; i++) {
			pthread_t t;
			if (pthread_create(&t, &a, small_thread, (void *)atol(arg)) != 0)
				return 2;
			pthread_join(t, NULL);
		}
		printf("{\"threads_done\": 1}\n");
		return 0;
	}
	if (!strcmp(mode, "altstack")) {
		stack_t ss = {.ss_sp = alt, .ss_size = sizeof(alt)};
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = alloc_on_signal;
		sa.sa_flags = SA_ONSTACK;
		if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0)
			return 2;
		for (int i = 0; i < 4; i++)
			raise(SIGUSR1);
		printf("{\"handled\": 1}\n");
		return 0;
	}
	if (!strcmp(mode, "keys")) {
		pthread_t t;
		for (int i = 0; i < 2; i++) {
			if (pthread_create(&t, NULL, small_thread, (void *)2L) != 0)
				return 2;
			pthread_join(t, NULL);
		}
		churn(0);
		int keys = 0;
		pthread_key_t k;
		while (keys < 100000 && pthread_key_create(&k, NULL) == 0)
			keys++;
		printf("{\"keys\": %d}\n", keys);
		return 0;
	}
	fprintf(stderr, "usage: robust_process MODE [ARG]\n");
	return 2;
}
