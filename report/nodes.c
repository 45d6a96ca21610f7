/* nodes.c: helpers every view shares (see views.h): per-function tables, output, JSON frames,
 * the header line. Nothing here reads a dump or looks up a symbol. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usage.h"
#include "views.h"

const char *node_key(struct profile *p, const struct pframe *f, bool lines)
{
	if (!lines || !f->file)
		return f->name;
	/* "name file:line", made once per frame */
	if (f->id >= p->nline_keys) {
		p->line_keys = xreallocarray(p->line_keys, p->nframes + 1, sizeof(*p->line_keys));
		memset(p->line_keys + p->nline_keys, 0,
		       (p->nframes + 1 - p->nline_keys) * sizeof(*p->line_keys));
		p->nline_keys = p->nframes + 1;
	}
	if (!p->line_keys[f->id]) {
		struct strbuf sb = STRBUF_INIT;
		sb_adds(&sb, f->name);
		sb_addch(&sb, ' ');
		frame_where(f, &sb);
		p->line_keys[f->id] = strpool_intern(&p->sym.pool, sb_str(&sb));
		sb_release(&sb);
	}
	return p->line_keys[f->id];
}

static void index_grow(struct node_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 256;
	while (cap < (t->n + 1) * 2)
		cap *= 2; /* after nodes_sort_flat the table is rebuilt from empty */
	size_t *ix = xmalloc(cap * sizeof(size_t));
	memset(ix, 0xff, cap * sizeof(size_t));
	for (size_t i = 0; i < t->n; i++) {
		size_t j = mp_hash_mix(0, (uintptr_t)t->v[i].key) & (cap - 1);
		while (ix[j] != SIZE_MAX)
			j = (j + 1) & (cap - 1);
		ix[j] = i;
	}
	free(t->index);
	t->index = ix;
	t->cap = cap;
}

size_t nodes_find(const struct node_table *t, const char *key)
{
	if (!t->cap)
		return SIZE_MAX;
	size_t j = mp_hash_mix(0, (uintptr_t)key) & (t->cap - 1);
	while (t->index[j] != SIZE_MAX) {
		if (t->v[t->index[j]].key == key)
			return t->index[j];
		j = (j + 1) & (t->cap - 1);
	}
	return SIZE_MAX;
}

size_t nodes_get(struct node_table *t, const char *key)
{
	size_t i = nodes_find(t, key);
	if (i != SIZE_MAX)
		return i;
	if ((t->n + 1) * 2 > t->cap)
		index_grow(t);
	ALLOC_GROW(t->v, t->n + 1, t->alloc);
	struct node *nd = &t->v[t->n];
	memset(nd, 0, sizeof(*nd));
	nd->key = key;
	nd->last_chain = SIZE_MAX;
	size_t j = mp_hash_mix(0, (uintptr_t)key) & (t->cap - 1);
	while (t->index[j] != SIZE_MAX)
		j = (j + 1) & (t->cap - 1);
	t->index[j] = t->n;
	return t->n++;
}

void nodes_build(struct node_table *t, struct profile *p, bool lines)
{
	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < p->nchains; i++) {
		const struct pchain *c = &p->chains[i];
		if (c->hidden)
			continue;
		for (size_t k = 0; k < c->nframes; k++) {
			size_t x = nodes_get(t, node_key(p, c->frames[k], lines));
			struct node *nd = &t->v[x];
			if (!nd->frame) {
				nd->frame = c->frames[k];
				nd->name = c->frames[k]->name;
			}
			if (k == 0)
				for (int s = 0; s < NSAMPLES; s++)
					nd->flat[s] = sat_add(nd->flat[s], c->v[s]);
			if (nd->last_chain != i) {
				nd->last_chain = i;
				for (int s = 0; s < NSAMPLES; s++)
					nd->cum[s] = sat_add(nd->cum[s], c->v[s]);
			}
		}
	}
}

static int cmp_flat(const void *a, const void *b, void *arg)
{
	const struct node *x = a, *y = b;
	enum sample_index s = *(const enum sample_index *)arg;
	if (x->flat[s] != y->flat[s])
		return x->flat[s] > y->flat[s] ? -1 : 1;
	if (x->cum[s] != y->cum[s])
		return x->cum[s] > y->cum[s] ? -1 : 1;
	return strcmp(x->key, y->key);
}

void nodes_sort_flat(struct node_table *t, enum sample_index s)
{
	if (t->n > 1)
		qsort_r(t->v, t->n, sizeof(*t->v), cmp_flat, &s);
	/* the index is stale after sorting; rebuild it */
	free(t->index);
	t->index = NULL;
	t->cap = 0;
	index_grow(t);
}

void nodes_free(struct node_table *t)
{
	free(t->v);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

/* The output file being written: a temporary file next to its target, renamed over the target
 * when complete (out_close) and removed when the command fails first (die() exits: atexit) or is
 * killed by a signal that ends it. One command writes at most one file at a time. */
static char *volatile pending_tmp;
static char *pending_target;

/* Done with the temporary file: renamed into place, or (unlink_it) removed. */
static void forget_pending(bool unlink_it)
{
	char *tmp = pending_tmp;
	if (tmp) {
		if (unlink_it)
			unlink(tmp);
		pending_tmp = NULL;
		free(tmp);
		free(pending_target);
		pending_target = NULL;
	}
}

static void remove_pending(void)
{
	forget_pending(true);
}

static void on_fatal_signal(int sig)
{
	char *tmp = pending_tmp;
	if (tmp)
		unlink(tmp); /* async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void watch_pending(void)
{
	static bool installed;
	if (installed)
		return;
	installed = true;
	atexit(remove_pending);
	/* every signal whose default ends the process, but those of faults */
	static const int sigs[] = {SIGINT,  SIGTERM, SIGHUP,  SIGQUIT,   SIGUSR1,
	                           SIGUSR2, SIGALRM, SIGPROF, SIGVTALRM, SIGXCPU};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa;
		if (sigaction(sigs[i], NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
			continue; /* ignored by whoever started us (nohup): keep it so */
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_fatal_signal;
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[i], &sa, NULL);
	}
	/* past a file size limit (ulimit -f) a write fails with EFBIG, reported and cleaned up
	 * like a full disk, instead of SIGXFSZ killing us with the temporary file left behind */
	signal(SIGXFSZ, SIG_IGN);
}

static FILE *open_direct(const char *path, int flags)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0666);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f)
		die("%s: cannot create: %s", path, strerror(errno));
	return f;
}

/* Whether path names a terminal (a character device that isatty takes for one). */
static bool names_terminal(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISCHR(st.st_mode))
		return false;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	bool tty = isatty(fd);
	close(fd);
	return tty;
}

void refuse_terminal(const struct options *o, const char *writes, const char *hint)
{
	if (!o->output || strcmp(o->output, "-") == 0) {
		if (isatty(STDOUT_FILENO))
			die_usage("%s, and stdout is a terminal: give %s or redirect it", writes,
			          hint);
	} else if (names_terminal(o->output)) {
		die_usage("%s, and %s is a terminal: give %s", writes, o->output, hint);
	}
}

void out_open(struct output *out, const struct options *o)
{
	memset(out, 0, sizeof(*out));
	if (!o->output || strcmp(o->output, "-") == 0) {
		out->f = stdout;
		out->name = "stdout";
		return;
	}
	const char *path = o->output;
	out->name = path;
	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (!exists && errno != ENOENT)
		die("%s: cannot create: %s", path, strerror(errno));
	const char *input = exists ? dump_loaded_from(st.st_dev, st.st_ino) : NULL;
	if (input)
		die_usage("-o %s: that is the input dump %s; write somewhere else", path, input);
	if (exists && S_ISDIR(st.st_mode))
		die("%s: cannot create: is a directory", path);
	if (exists && !S_ISREG(st.st_mode)) {
		/* a device, a FIFO, a socket (or a link to one): written in place, never
		 * replaced by a file */
		out->f = open_direct(path, 0);
		return;
	}
	struct stat lst;
	if (!exists && lstat(path, &lst) == 0) {
		/* a dangling symbolic link: create the file it names, as a shell would */
		out->f = open_direct(path, O_CREAT | O_TRUNC);
		return;
	}
	mode_t mode;
	if (exists) {
		mode = st.st_mode & 07777;
	} else {
		mode_t mask = umask(0);
		umask(mask);
		mode = 0666 & ~mask;
	}
	/* through a symbolic link, the file it names is replaced, not the link */
	char *target = exists ? realpath(path, NULL) : NULL;
	if (!target)
		target = xstrdup(path);
	/* FILE.tmp.XXXXXX beside it; a name too long for that (NAME_MAX is 255 bytes) gets a
	 * short one in the same directory, .mapprof.XXXXXX, so that the rename stays on one
	 * file system */
	struct strbuf tmp = STRBUF_INIT;
	const char *slash = strrchr(target, '/');
	const char *base = slash ? slash + 1 : target;
	if (strlen(base) + strlen(".tmp.XXXXXX") <= NAME_MAX)
		sb_addf(&tmp, "%s.tmp.XXXXXX", target);
	else
		sb_addf(&tmp, "%.*s.mapprof.XXXXXX", (int)(base - target), target);
	watch_pending();
	int fd = mkostemp(tmp.buf, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		sb_release(&tmp);
		free(target);
		if (!exists || (e != EACCES && e != EPERM))
			die("%s: cannot create: %s", path, strerror(e));
		/* a file we may write in a directory we may not: written in place, the only
		 * way left */
		out->f = open_direct(path, O_TRUNC);
		return;
	}
	pending_tmp = sb_detach(&tmp);
	pending_target = target;
	if (fchmod(fd, mode) != 0 || !(out->f = fdopen(fd, "w"))) {
		int e = errno;
		close(fd);
		die("%s: cannot create: %s", path, strerror(e));
	}
}

void out_flush(struct output *out, struct strbuf *sb, size_t keep)
{
	if (sb->len <= keep)
		return;
	if (sb_write(sb, out->f))
		die("%s: write error: %s", out->name, strerror(errno));
	sb_reset(sb);
}

void out_close(struct output *out, struct strbuf *sb)
{
	out_flush(out, sb, 0);
	if (out->f == stdout) {
		if (fflush(stdout))
			die("stdout: write error: %s", strerror(errno));
	} else if (fclose(out->f)) {
		die("%s: write error: %s", out->name, strerror(errno));
	}
	out->f = NULL;
	if (pending_tmp && rename(pending_tmp, pending_target))
		die("%s: cannot rename into place: %s", out->name, strerror(errno));
	forget_pending(false);
}

void emit(const struct options *o, const struct strbuf *sb)
{
	struct output out;
	out_open(&out, o);
	if (sb_write(sb, out.f))
		die("%s: write error: %s", out.name, strerror(errno));
	struct strbuf empty = STRBUF_INIT;
	out_close(&out, &empty);
}

void need_args(const struct options *o, int min, int max, const char *what)
{
	if (o->nargs < min)
		die_usage("%s: needs %s", o->cmd, what);
	if (max >= 0 && o->nargs > max)
		die_usage("%s: too many arguments (wants %s)", o->cmd, what);
}

void json_frames(struct strbuf *sb, const struct profile *p, const struct pchain *c)
{
	sb_addch(sb, '[');
	for (size_t k = 0; k < c->nframes; k++) {
		const struct pframe *f = c->frames[k];
		if (k)
			sb_addch(sb, ',');
		sb_adds(sb, "{\"module\":");
		sb_json_str(sb, f->module >= 0 ? p->sym.mods[f->module].path : NULL);
		sb_addf(sb, ",\"offset\":\"0x%llx\",\"function\":", (unsigned long long)f->offset);
		sb_json_str(sb, f->function);
		sb_adds(sb, ",\"file\":");
		sb_json_str(sb, f->file);
		if (f->file)
			sb_addf(sb, ",\"line\":%d", f->line);
		else
			sb_adds(sb, ",\"line\":null");
		sb_addf(sb, ",\"inlined\":%s}", f->inlined ? "true" : "false");
	}
	sb_addch(sb, ']');
}

void json_chain(struct strbuf *sb, const struct profile *p, const struct pchain *c)
{
	sb_addf(sb, "{\"id\":%d,\"truncated\":%s", c->id, c->truncated ? "true" : "false");
	for (int s = 0; s < profile_nsamples(p); s++)
		sb_addf(sb, ",\"%s\":%llu", sample_names[s], (unsigned long long)c->v[s]);
	sb_adds(sb, ",\"sizes\":[");
	for (size_t k = 0; k < c->nclasses; k++) {
		const struct pclass *z = &c->classes[k];
		sb_addf(sb,
		        "%s{\"log2\":%u,\"objects\":%llu,\"bytes\":%llu,\"min\":%llu,\"max\":%llu}",
		        k ? "," : "", z->log2, (unsigned long long)z->objects,
		        (unsigned long long)z->bytes, (unsigned long long)z->min,
		        (unsigned long long)z->max);
	}
	sb_adds(sb, "],\"frames\":");
	json_frames(sb, p, c);
	sb_addch(sb, '}');
}

void text_header(struct strbuf *sb, const struct profile *p, const struct options *o)
{
	/* Sampled process images: a dump with its samples (scaled here), or a merged dump's
	 * sampled inputs (scaled when merged: its own sample_period is 0) */
	size_t sampled = 0, merged_sampled = 0;
	for (size_t i = 0; i < p->ndumps; i++) {
		const struct dump *d = p->dumps[i];
		sampled += d->info.sample_period != 0;
		for (size_t k = 0; k < d->nsources; k++)
			merged_sampled += d->sources[k].sample_period != 0;
	}
	/* The process images the profile holds: each dump, or a merged dump's sources. */
	size_t nimages = 0, nexes = 0, exes_alloc = 0;
	const char **exes = NULL; /* the distinct executables */
	struct strbuf pids = STRBUF_INIT;
	for (size_t i = 0; i < p->ndumps; i++) {
		for (size_t k = 0; k < dump_nimages(p->dumps[i]); k++, nimages++) {
			struct dump_source img = dump_image(p->dumps[i], k);
			size_t x = 0;
			while (x < nexes && strcmp(exes[x], img.exe) != 0)
				x++;
			if (x == nexes) {
				ALLOC_GROW(exes, nexes + 1, exes_alloc);
				exes[nexes++] = img.exe;
			}
			if (nimages < 8)
				sb_addf(&pids, " %llu", (unsigned long long)img.pid);
		}
	}
	if (nimages == 1)
		sb_addf(sb, "Exe: %s (pid%s)", exes[0], sb_str(&pids));
	else if (nexes == 1)
		sb_addf(sb, "Exe: %s and %zu more dump%s (pids%s%s)", exes[0], nimages - 1,
		        nimages == 2 ? "" : "s", sb_str(&pids), nimages > 8 ? " ..." : "");
	else {
		sb_adds(sb, "Exes: ");
		for (size_t x = 0; x < nexes && x < 3; x++)
			sb_addf(sb, "%s%s", x ? ", " : "", exes[x]);
		if (nexes > 3)
			sb_addf(sb, " and %zu more", nexes - 3);
		sb_addf(sb, " (%zu dumps, pids%s%s)", nimages, sb_str(&pids),
		        nimages > 8 ? " ..." : "");
	}
	sb_release(&pids);
	free(exes);
	/* How many samples the estimates rest on: a count of n samples is off by about
	 * 1/sqrt(n) (a Poisson count's relative error). */
	if (sampled + merged_sampled == nimages)
		sb_adds(sb, ", sampled");
	else if (sampled + merged_sampled)
		sb_addf(sb, ", %zu of the %zu dumps sampled", sampled + merged_sampled, nimages);
	if (sampled && merged_sampled)
		sb_addf(sb, " (values scaled from %llu samples, and estimates scaled when merged)",
		        (unsigned long long)p->samples);
	else if (sampled)
		sb_addf(sb, " (values scaled from %llu samples)", (unsigned long long)p->samples);
	else if (merged_sampled)
		sb_adds(sb, " (values are estimates, scaled when merged)");
	sb_addch(sb, '\n');
	sb_adds(sb, "Totals: ");
	for (int s = 0; s < profile_nsamples(p); s++) {
		sb_addf(sb, "%s%s ", s ? ", " : "", sample_names[s]);
		format_value(sb, (enum sample_index)s, p->total[s]);
	}
	if (!p->frees_tracked)
		sb_adds(sb, " (frees not tracked: no inuse values)");
	sb_addch(sb, '\n');
	uint64_t lost = 0;
	for (size_t i = 0; i < p->ndumps; i++)
		lost += p->dumps[i]->info.not_recorded;
	if (lost)
		sb_addf(
		    sb,
		    "Not recorded: %llu allocator calls (the profiler's own bookkeeping ran out of "
		    "memory); the values below miss them\n",
		    (unsigned long long)lost);
	if (o->focus || o->ignore) {
		sb_adds(sb, "Active filters:");
		if (o->focus)
			sb_addf(sb, " focus=%s", o->focus);
		if (o->ignore)
			sb_addf(sb, " ignore=%s", o->ignore);
		sb_addch(sb, '\n');
	}
}

void load_profile(struct profile *p, struct options *o, int skip)
{
	if (o->nargs <= skip)
		die_usage("%s: needs at least one DUMP file", o->cmd);
	profile_load(p, o, o->args + skip, o->nargs - skip);
}
