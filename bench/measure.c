/* measure.c: runs one command and writes its wall time, CPU time (user, sys) and peak RSS, from
 * wait4, as one JSON line to a file. A small launcher, so the child's peak RSS starts from ours and
 * not from the harness's Python. It must never touch the command's stdin, stdout or stderr.
 *
 * Usage: measure RESULT_FILE [NAME=VALUE...] COMMAND [ARGS...]
 *
 * The NAME=VALUE settings go into the command's environment only (as env(1) does), so an
 * LD_PRELOAD meant for the command never loads into this launcher.
 *
 * CPU and RSS include every descendant the command waited for; RSS is the largest single
 * process, not a sum. Exit status: the command's (128 + signal if it was killed). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s RESULT_FILE [NAME=VALUE...] COMMAND [ARGS...]\n",
		        argv[0]);
		return 1;
	}
	int cmd = 2;
	while (cmd < argc && strchr(argv[cmd], '=') && argv[cmd][0] != '=')
		cmd++;
	if (cmd == argc) {
		fprintf(stderr, "measure: no command\n");
		return 1;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "measure: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		for (int i = 2; i < cmd; i++) {
			if (putenv(argv[i]) != 0) {
				fprintf(stderr, "measure: %s: %s\n", argv[i], strerror(errno));
				_exit(127);
			}
		}
		execvp(argv[cmd], argv + cmd);
		fprintf(stderr, "measure: %s: %s\n", argv[cmd], strerror(errno));
		_exit(127);
	}
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		fprintf(stderr, "measure: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	fprintf(f, "{\"status\":%d,\"wall\":%.6f,\"user\":%.6f,\"sys\":%.6f,\"maxrss_kib\":%ld}\n",
	        code, wall, seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss);
	if (fclose(f) != 0) {
		fprintf(stderr, "measure: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return code;
}
