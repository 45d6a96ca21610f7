/* robust_exec.c: a process image that replaces itself or starts others in every way a C program
 * can: exec through each wrapper, a failed exec, fork+exec, posix_spawn, vfork+exec, system(),
 * and a double fork. Each process image prints its own truth line (role names the image); the
 * started image is this program again under another name (OTHER, mode "leaf"). It must never
 * allocate outside its site_* functions.
 *
 * usage: robust_exec leaf
 *        robust_exec exec WRAPPER OTHER     WRAPPER: execv execve execvp execvpe execl execlp
 *                                                    execle fexecve (the p ones search PATH)
 *        robust_exec execfail
 *        robust_exec forkexec OTHER [alloc]
 *        robust_exec spawn|vfork|system OTHER
 *        robust_exec doublefork
 *        robust_exec forkquiet                 children that allocate nothing, ending by _exit
 *                                              and by exit */
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "robust.h"

#define SITES(X)                                                                                   \
	X(site_before)                                                                             \
	X(site_between)                                                                            \
	X(site_after)                                                                              \
	X(site_child)                                                                              \
	X(site_grandchild)                                                                         \
	X(site_leaf)

enum { SITES(ROBUST_ENUM) NSITES };
static struct truth_site sites[NSITES] = {SITES(ROBUST_NAME)};
static const char *const names[NSITES] = {
#define NAME_ONLY(n) #n,
    SITES(NAME_ONLY)};

extern char **environ;

static void *keep[256];
static int nkeep;

SITE static void *site_before(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_before], n);
	return p;
}

SITE static void *site_between(size_t n)
{
	void *p = calloc(1, n);
	if (p)
		truth_alloc(&sites[S_site_between], n);
	return p;
}

SITE static void *site_after(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_after], n);
	return p;
}

SITE static void *site_child(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_child], n);
	return p;
}

SITE static void *site_grandchild(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_grandchild], n);
	return p;
}

SITE static void *site_leaf(size_t n)
{
	void *p = malloc(n);
	if (p)
		truth_alloc(&sites[S_site_leaf], n);
	return p;
}

/* N blocks from SITE, every third freed. */
static void some(void *(*site)(size_t), int s, int n, size_t base)
{
	for (int i = 0; i < n; i++) {
		size_t size = base + (size_t)i * 3;
		void *p = site(size);
		if (i % 3 == 0) {
			free(p);
			truth_free(&sites[s], size);
		} else if (nkeep < 256) {
			keep[nkeep++] = p;
		}
	}
}

/* A fork child starts a fresh profile: its truth too. */
static void reset_truth(void)
{
	memset(sites, 0, sizeof(sites));
	for (int i = 0; i < NSITES; i++)
		sites[i].name = names[i];
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static int do_exec(const char *wrapper, const char *other)
{
	char *argv[] = {(char *)other, "leaf", NULL};
	if (strcmp(wrapper, "execv") == 0)
		return execv(other, argv);
	if (strcmp(wrapper, "execve") == 0)
		return execve(other, argv, environ);
	if (strcmp(wrapper, "execvp") == 0)
		return execvp(base_name(other), argv);
	if (strcmp(wrapper, "execvpe") == 0)
		return execvpe(base_name(other), argv, environ);
	if (strcmp(wrapper, "execl") == 0)
		return execl(other, other, "leaf", (char *)NULL);
	if (strcmp(wrapper, "execlp") == 0)
		return execlp(base_name(other), other, "leaf", (char *)NULL);
	if (strcmp(wrapper, "execle") == 0)
		return execle(other, other, "leaf", (char *)NULL, environ);
	if (strcmp(wrapper, "fexecve") == 0) {
		int fd = open(other, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		return fexecve(fd, argv, environ);
	}
	errno = EINVAL;
	return -2;
}

/* Every wrapper, each made to fail: -1 with errno as without mapprof, and profiling goes on. */
static void exec_failures(void)
{
	static const char *const wrappers[] = {"execv", "execve", "execvp", "execvpe",
	                                       "execl", "execlp", "execle", "fexecve"};
	char label[64];
	for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); i++) {
		errno = 0;
		/* fexecve of a file that is not executable: EACCES; the others: ENOENT. */
		const char *target = strcmp(wrappers[i], "fexecve") == 0
		                         ? "/dev/null"
		                         : "/nonexistent/robust_exec_no_such_program";
		int r = do_exec(wrappers[i], target);
		int e = errno;
		snprintf(label, sizeof(label), "%s_ret", wrappers[i]);
		check_val(label, r);
		snprintf(label, sizeof(label), "%s_errno", wrappers[i]);
		check_val(label, e);
		some(site_between, S_site_between, 10, 32 + i);
	}
}

static int wait_ok(pid_t pid)
{
	int status;
	if (waitpid(pid, &status, 0) != pid)
		return 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *mode = argv[1];
	const char *other = argc > 2 ? argv[argc > 3 && strcmp(mode, "exec") == 0 ? 3 : 2] : "";
	if (strcmp(mode, "leaf") == 0) {
		some(site_leaf, S_site_leaf, 40, 100);
		truth_print("leaf", sites, NSITES);
		return 0;
	}
	if (strcmp(mode, "exec") == 0 && argc > 3) {
		some(site_before, S_site_before, 60, 16);
		truth_print("before", sites, NSITES);
		do_exec(argv[2], argv[3]);
		return 20; /* the exec failed */
	}
	if (strcmp(mode, "execfail") == 0) {
		some(site_before, S_site_before, 30, 16);
		exec_failures();
		some(site_after, S_site_after, 30, 50);
		truth_print("main", sites, NSITES);
		return 0;
	}
	some(site_before, S_site_before, 50, 24);
	if (strcmp(mode, "forkexec") == 0) {
		pid_t pid = fork();
		if (pid < 0)
			return 3;
		if (pid == 0) {
			if (argc > 3) { /* the child allocates before its exec: a dump of its own */
				reset_truth();
				some(site_child, S_site_child, 20, 64);
				truth_print("child", sites, NSITES);
			}
			char *args[] = {(char *)other, "leaf", NULL};
			execv(other, args);
			_exit(127);
		}
		if (!wait_ok(pid))
			return 5;
	} else if (strcmp(mode, "spawn") == 0) {
		char *args[] = {(char *)other, "leaf", NULL};
		pid_t pid;
		if (posix_spawn(&pid, other, NULL, NULL, args, environ) != 0 || !wait_ok(pid))
			return 5;
	} else if (strcmp(mode, "vfork") == 0) {
		char *args[] = {(char *)other, "leaf", NULL};
		pid_t pid = vfork();
		if (pid < 0)
			return 3;
		if (pid == 0) {
			execv(other, args);
			_exit(127);
		}
		if (!wait_ok(pid))
			return 5;
	} else if (strcmp(mode, "system") == 0) {
		char cmd[4096 + 16];
		snprintf(cmd, sizeof(cmd), "%s leaf", other);
		int r = system(cmd);
		check_val("system", r);
		if (r != 0)
			return 5;
	} else if (strcmp(mode, "forkquiet") == 0) {
		for (int how = 0; how < 2; how++) {
			pid_t pid = fork();
			if (pid < 0)
				return 3;
			if (pid == 0) {
				if (how == 0)
					_exit(0);
				exit(0);
			}
			if (!wait_ok(pid))
				return 5;
		}
	} else if (strcmp(mode, "doublefork") == 0) {
		int fds[2];
		if (pipe(fds) != 0)
			return 3;
		pid_t pid = fork();
		if (pid < 0)
			return 3;
		if (pid == 0) {
			reset_truth();
			some(site_child, S_site_child, 20, 64);
			pid_t g = fork();
			if (g < 0)
				_exit(3);
			if (g == 0) {
				close(fds[0]);
				reset_truth();
				some(site_grandchild, S_site_grandchild, 25, 80);
				truth_print("grandchild", sites, NSITES);
				close(fds[1]);
				exit(0);
			}
			/* Once the grandchild has printed, leave it orphaned. */
			close(fds[1]);
			char c;
			while (read(fds[0], &c, 1) > 0)
				;
			truth_print("child", sites, NSITES);
			_exit(0);
		}
		close(fds[0]);
		close(fds[1]);
		if (!wait_ok(pid))
			return 5;
	} else {
		return 2;
	}
	some(site_after, S_site_after, 10, 200);
	truth_print("parent", sites, NSITES);
	return 0;
}
