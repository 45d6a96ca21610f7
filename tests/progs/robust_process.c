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
 *   fsize                    prints, then exits 0 (run under a small RLIMIT_FSIZE)  */
#include <fenv.h>
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
	fprintf(stderr, "usage: robust_process MODE [ARG]\n");
	return 2;
}
