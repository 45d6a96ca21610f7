/* dump.c: writes the dump file (format: include/mapprof_dump.h) atomically:
 * an unnamed file in the target directory, given its name once written whole
 * (a temporary name, then a rename, where the file system has no unnamed
 * files); an existing file is never replaced, a FIFO or a device written into
 * as it is. Runs at exit or on demand, never
 * per call; uses no malloc (its buffer is static and the counters snapshot
 * comes from mmap). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

struct writer {
	int fd;
	int err;       /* first errno seen */
	uint64_t room; /* bytes the file may still take (RLIMIT_FSIZE) */
	size_t len;    /* bytes in buf */
	size_t filled; /* buf is faulted in below this (mp_populate) */
	char buf[1 << 16];
};
#define W_STEP (16u << 10)
_Static_assert(sizeof(((struct writer *)0)->buf) % W_STEP == 0, "a buffer of whole steps");

static struct writer w; /* used only under mp.lock */

/* A write to a pipe nobody reads any more raises SIGPIPE, which would kill
 * the program: it is held back on this thread while the shim writes and, if
 * a write raised it, taken away (one that was pending already stays). */
struct pipe_hold {
	sigset_t old;
	bool was_pending;
};

static void pipe_hold(struct pipe_hold *h)
{
	sigset_t pipe_only, pending;
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, &h->old);
	h->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

static void pipe_release(struct pipe_hold *h, bool raised)
{
	if (raised && !h->was_pending) {
		sigset_t pipe_only;
		sigemptyset(&pipe_only);
		sigaddset(&pipe_only, SIGPIPE);
		struct timespec zero = {0, 0};
		sigtimedwait(&pipe_only, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &h->old, NULL);
}

/* The standard error the process started with. A program may close it and
 * open a file of its own on descriptor 2, or put one there with dup2 (a
 * daemon's log): the shim's lines go only where they went at the start, never
 * into a file of the program's. (No descriptor is kept open for them: the
 * shim keeps none.) */
static struct {
	bool known;
	dev_t dev;
	ino_t ino;
} log_to;

void mp_log_init(void)
{
	struct stat st;
	log_to.known = fstat(2, &st) == 0;
	log_to.dev = st.st_dev;
	log_to.ino = st.st_ino;
}

static bool log_still_there(void)
{
	struct stat st;
	return log_to.known && fstat(2, &st) == 0 && st.st_dev == log_to.dev &&
	       st.st_ino == log_to.ino;
}

void mp_log(const char *fmt, ...)
{
	char line[MP_PATH_MAX + 256];
	int n = snprintf(line, sizeof(line), "mapprof: ");
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* Standard error may be a pipe nobody reads any more. */
	int saved = errno;
	if (!log_still_there()) {
		errno = saved;
		return;
	}
	struct pipe_hold hold;
	pipe_hold(&hold);
	ssize_t r = write(2, line, (size_t)n);
	pipe_release(&hold, r < 0 && errno == EPIPE);
	errno = saved;
}

uint64_t mp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void w_flush(void)
{
	size_t off = 0;
	while (off < w.len && !w.err) {
		/* Past RLIMIT_FSIZE a write raises SIGXFSZ, which kills by default. */
		if (w.len - off > w.room) {
			w.err = EFBIG;
			break;
		}
		ssize_t n = write(w.fd, w.buf + off, w.len - off);
		__atomic_add_fetch(&mp.dump_progress, 1, __ATOMIC_RELAXED);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			w.err = n < 0 ? errno : EIO;
		else {
			off += (size_t)n;
			w.room -= (uint64_t)n;
		}
	}
	w.len = 0;
}

static void w_put(const void *p, size_t n)
{
	const char *s = p;
	while (n) {
		if (w.len == sizeof(w.buf))
			w_flush();
		size_t k = sizeof(w.buf) - w.len;
		if (k > n)
			k = n;
		while (w.len + k > w.filled) {
			mp_populate(w.buf + w.filled, W_STEP);
			w.filled += W_STEP;
		}
		memcpy(w.buf + w.len, s, k);
		w.len += k;
		s += k;
		n -= k;
	}
}

static void w_pad(uint64_t length)
{
	static const char zeros[8];
	w_put(zeros, (8 - (length & 7)) & 7);
}

static void w_record(uint32_t tag, uint64_t length)
{
	struct mp_record_header h = {tag, 0, length};
	w_put(&h, sizeof(h));
}

static void w_blob_record(uint32_t tag, const void *p, size_t n)
{
	w_record(tag, n);
	w_put(p, n);
	w_pad(n);
}

/* Expand %p (pid), %e (executable name) and %% in the path template. */
/* generation > 1 expands %p as <pid>-<generation>: see mp_dump_write. */
static bool expand_path(char *out, size_t size, uint32_t sequence, unsigned generation)
{
	const char *tmpl = mp.out_template[0] ? mp.out_template : MP_DEFAULT_OUT;
	const char *exe = strrchr(mp.exe, '/');
	exe = exe ? exe + 1 : mp.exe;
	size_t n = 0;
	for (const char *t = tmpl; *t; t++) {
		char tmp[32];
		const char *add = tmp;
		if (*t == '%' && t[1] == 'p') {
			if (generation > 1)
				snprintf(tmp, sizeof(tmp), "%d-%u", (int)mp.pid, generation);
			else
				snprintf(tmp, sizeof(tmp), "%d", (int)mp.pid);
			t++;
		} else if (*t == '%' && t[1] == 'e') {
			add = exe[0] ? exe : "unknown";
			t++;
		} else if (*t == '%' && t[1] == '%') {
			tmp[0] = '%', tmp[1] = 0;
			t++;
		} else {
			tmp[0] = *t, tmp[1] = 0;
		}
		size_t k = strlen(add);
		if (n + k >= size)
			return false;
		memcpy(out + n, add, k);
		n += k;
	}
	if (sequence) {
		int k = snprintf(out + n, size - n, ".%u", sequence);
		if (k < 0 || (size_t)k >= size - n)
			return false;
		n += (size_t)k;
	}
	out[n] = 0;
	return true;
}

static void write_info(uint32_t sequence)
{
	struct mp_info info = {
	    .pid = (uint64_t)mp.pid,
	    .ppid = (uint64_t)mp.ppid,
	    .start_ns = mp.start_ns,
	    .end_ns = mp_now_ns(),
	    .flags = mp.info_flags,
	    .max_depth = mp.max_depth,
	    .unwinder = mp.unwinder,
	    .sequence = sequence,
	    .sample_period = mp.sample_period,
	    .not_recorded = __atomic_load_n(&mp.not_recorded, __ATOMIC_RELAXED),
	    .threads = __atomic_load_n(&mp.threads, __ATOMIC_RELAXED),
	};
	w_record(MP_TAG_INFO, sizeof(info));
	w_put(&info, sizeof(info));
	w_blob_record(MP_TAG_EXE, mp.exe, strlen(mp.exe));
	w_blob_record(MP_TAG_CMDLINE, mp.cmdline ? mp.cmdline : "", mp.cmdline_len);
}

static void write_modules(void)
{
	/* Records are kept newest first; write them in id order. */
	for (uint32_t id = 0; id < mp.nmodules; id++) {
		struct mp_module_rec *m = mp.modules;
		while (m && m->id != id)
			m = m->next;
		if (!m)
			continue;
		struct mp_module hdr = {
		    .id = m->id,
		    .flags = m->flags,
		    .load_bias = m->load_bias,
		    .nranges = m->nranges,
		    .buildid_len = m->buildid_len,
		    .path_len = m->path_len,
		};
		uint64_t len = sizeof(hdr) + m->nranges * sizeof(struct mp_range) + m->buildid_len +
		               m->path_len;
		w_record(MP_TAG_MODULE, len);
		w_put(&hdr, sizeof(hdr));
		w_put(m->ranges, m->nranges * sizeof(struct mp_range));
		w_put(m->buildid, m->buildid_len);
		w_put(m->path, m->path_len);
		w_pad(len);
	}
}

/* The snapshot's entries grouped by chain, classes in order: a counting sort
 * into order[], chain id's entries at order[start[id] .. start[id + 1]).
 * (Looking up every chain's 65 classes in the snapshot missed the cache on
 * nearly every probe: 0.3 s for 100,000 chains.) */
struct by_chain {
	uint32_t *start;
	uint32_t *order;
	size_t start_bytes, order_bytes;
};

static bool group_by_chain(const struct mp_counts *snap, long cap, struct by_chain *g)
{
	uint32_t nchains = mp.nchains;
	uint64_t used = 0;
	for (long i = 0; i < cap; i++)
		used += snap[i].key != 0;
	g->start_bytes = ((size_t)nchains + 2) * sizeof(uint32_t);
	g->order_bytes = (used + 1) * sizeof(uint32_t);
	g->start = mp_map_filled(g->start_bytes);
	g->order = mp_map_filled(g->order_bytes);
	if (!g->start || !g->order)
		return false;
	for (long i = 0; i < cap; i++) {
		uint64_t chain = mp_counts_chain(snap[i].key);
		if (snap[i].key && chain < nchains)
			g->start[chain + 2]++;
	}
	for (uint32_t id = 0; id < nchains; id++)
		g->start[id + 2] += g->start[id + 1];
	/* start[id + 1] is now where chain id's entries begin: fill, moving it to their end. */
	for (long i = 0; i < cap; i++) {
		uint64_t chain = mp_counts_chain(snap[i].key);
		if (snap[i].key && chain < nchains)
			g->order[g->start[chain + 1]++] = (uint32_t)i;
	}
	for (uint32_t id = 0; id < nchains; id++) {
		uint32_t *o = g->order + g->start[id];
		uint32_t n = g->start[id + 1] - g->start[id];
		for (uint32_t a = 1; a < n; a++) /* by size class: a handful each */
			for (uint32_t b = a; b > 0 && snap[o[b]].key < snap[o[b - 1]].key; b--) {
				uint32_t t = o[b];
				o[b] = o[b - 1];
				o[b - 1] = t;
			}
	}
	return true;
}

/* Does chain id have anything to write (a size class with allocations)? */
static bool chain_counted(const struct mp_counts *snap, const struct by_chain *g, uint32_t id)
{
	for (uint32_t j = g->start[id]; j < g->start[id + 1]; j++)
		if (snap[g->order[j]].objects)
			return true;
	return false;
}

/* The FRAMES record: every distinct frame of the chains written, once, in
 * the order first used; the written chains' frames as indices, chain after
 * chain, in ids[]. Chains share their callers' frames: for a compiler's
 * 71,000 chains of 42 frames, this made the dump 2.6 times smaller. The
 * chains already hold ids in the process's table of distinct frames
 * (mp.frames); the dump's ids are those of the frames it writes. */
struct frame_table {
	struct mp_frame *frames; /* by dump id */
	uint32_t nframes;
	uint32_t *remap; /* by mp.frames id: dump id + 1, or 0 */
	size_t cap;      /* entries of frames and remap: mp.nframes + 1 */
	uint32_t *ids;
	size_t ids_bytes;
};

static bool frames_build(const struct mp_counts *snap, const struct by_chain *g,
                         struct frame_table *t)
{
	uint64_t total = 0;
	for (uint32_t id = 0; id < mp.nchains; id++)
		if (chain_counted(snap, g, id))
			total += mp.chains[id]->nframes;
	t->ids_bytes = (total + 1) * sizeof(*t->ids);
	t->ids = mp_map_filled(t->ids_bytes);
	t->cap = (size_t)mp.nframes + 1;
	t->frames = mp_map_filled(t->cap * sizeof(*t->frames));
	t->remap = mp_map_filled(t->cap * sizeof(*t->remap));
	if (!t->ids || !t->frames || !t->remap || total >= UINT32_MAX)
		return false;
	uint32_t *out = t->ids;
	for (uint32_t id = 0; id < mp.nchains; id++) {
		const struct mp_chain_rec *c = mp.chains[id];
		if (!chain_counted(snap, g, id))
			continue;
		for (uint32_t k = 0; k < c->nframes; k++) {
			uint32_t f = c->frames[k];
			if (!t->remap[f]) {
				t->frames[t->nframes] = mp.frames[f];
				t->remap[f] = ++t->nframes;
			}
			*out++ = t->remap[f] - 1;
		}
	}
	return true;
}

static void frames_free(struct frame_table *t)
{
	mp_unmap(t->frames, t->cap * sizeof(*t->frames));
	mp_unmap(t->remap, t->cap * sizeof(*t->remap));
	mp_unmap(t->ids, t->ids_bytes);
}

static void write_frames(const struct frame_table *t)
{
	w_record(MP_TAG_FRAMES, (uint64_t)t->nframes * sizeof(struct mp_frame));
	w_put(t->frames, (size_t)t->nframes * sizeof(struct mp_frame));
}

static void write_chains(const struct mp_counts *snap, const struct by_chain *g,
                         const struct frame_table *t, const uint64_t *live_objects,
                         const uint64_t *live_bytes, struct mp_end *end)
{
	static const uint32_t zero;
	const uint32_t *ids = t->ids;
	struct mp_size_class cls[MP_SIZE_CLASSES];
	for (uint32_t id = 0; id < mp.nchains; id++) {
		const struct mp_chain_rec *c = mp.chains[id];
		struct mp_chain hdr = {.id = c->id, .flags = c->flags, .nframes = c->nframes};
		uint32_t n = 0;
		for (uint32_t j = g->start[id]; j < g->start[id + 1] && n < MP_SIZE_CLASSES; j++) {
			const struct mp_counts *e = &snap[g->order[j]];
			if (!e->objects)
				continue;
			cls[n++] = (struct mp_size_class){
			    .log2 = mp_counts_class(e->key),
			    .objects = e->objects,
			    .bytes = e->bytes,
			    .min_size = e->min,
			    .max_size = e->max,
			};
			hdr.alloc_objects += e->objects;
			hdr.alloc_space += e->bytes;
		}
		if (!n)
			continue;
		/* Other threads may run on while this is written (on-demand dumps,
		 * an exit while threads allocate): the live-map scan can be a little
		 * ahead of the counters, never more live than allocated. */
		hdr.inuse_objects =
		    live_objects[id] < hdr.alloc_objects ? live_objects[id] : hdr.alloc_objects;
		hdr.inuse_space =
		    live_bytes[id] < hdr.alloc_space ? live_bytes[id] : hdr.alloc_space;
		hdr.nclasses = n;
		uint64_t len = sizeof(hdr) + ((uint64_t)c->nframes * sizeof(*ids) + 7) / 8 * 8 +
		               n * sizeof(struct mp_size_class);
		w_record(MP_TAG_CHAIN, len);
		w_put(&hdr, sizeof(hdr));
		w_put(ids, c->nframes * sizeof(*ids));
		if (c->nframes & 1)
			w_put(&zero, sizeof(zero));
		ids += c->nframes;
		w_put(cls, n * sizeof(struct mp_size_class));
		end->nchains++;
		end->alloc_objects += hdr.alloc_objects;
		end->alloc_space += hdr.alloc_space;
		end->inuse_objects += hdr.inuse_objects;
		end->inuse_space += hdr.inuse_space;
	}
}

/* The dump's file, open for writing: an unnamed one (O_TMPFILE) in path's
 * directory, so that a process killed while it writes leaves nothing behind
 * (*unnamed set; open for reading too, for copy_unnamed); else tmp, made new.
 * -1 and errno if neither. */
static int dump_open(const char *path, const char *tmp, bool *unnamed)
{
	char dir[MP_PATH_MAX]; /* path fits MP_PATH_MAX, so does its directory */
	const char *slash = strrchr(path, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
	*unnamed = fd >= 0;
	if (fd >= 0)
		return fd;
	/* No unnamed files there (an old kernel, a file system without them),
	 * or no such directory: the named way, which also says what is wrong. */
	return open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
}

/* Give the unnamed file fd the name path, never replacing a file there: 0 or
 * an errno value. Linking an open file needs CAP_DAC_READ_SEARCH by its
 * descriptor, or /proc by its /proc/self/fd name. */
static int link_unnamed(int fd, const char *path)
{
	if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno == EEXIST)
		return EEXIST;
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return 0;
	return errno;
}

/* The first size bytes of file in copied to out: 0 or an errno value. By
 * sendfile, or by read and write where out takes no sendfile (a device). */
static int copy_file(int out, int in, off_t size)
{
	off_t off = 0;
	bool by_sendfile = true;
	while (off < size) {
		size_t step = size - off > (1 << 20) ? 1 << 20 : (size_t)(size - off);
		ssize_t n;
		if (by_sendfile) {
			n = sendfile(out, in, &off, step);
			if (n < 0 && (errno == EINVAL || errno == ENOSYS) && off == 0) {
				by_sendfile = false;
				continue;
			}
		} else {
			char buf[4096]; /* rare (a device): not worth a larger stack */
			n = pread(in, buf, step < sizeof(buf) ? step : sizeof(buf), off);
			if (n > 0)
				n = write(out, buf, (size_t)n);
			if (n > 0)
				off += n;
		}
		__atomic_add_fetch(&mp.dump_progress, 1, __ATOMIC_RELAXED);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : EIO;
	}
	return 0;
}

/* The unnamed file fd copied into tmp, made new (neither way of linking it
 * works here): 0 or an errno value. */
static int copy_unnamed(int fd, const char *tmp)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return errno;
	int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (out < 0)
		return errno;
	int err = copy_file(out, fd, st.st_size);
	if (close(out) != 0 && !err)
		err = errno;
	if (err)
		unlink(tmp);
	return err;
}

static int publish(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return errno;
	/* A file system without RENAME_NOREPLACE: link() also refuses to replace. */
	if (link(tmp, path) != 0)
		return errno;
	unlink(tmp);
	return 0;
}

/* The module map brought up to date, then mp.lock taken, for dump_body. */
static void dump_lock(void)
{
	/* Before mp.lock: see modules.c for the lock order. Not when a signal
	 * ends the process: the threads it stopped may hold the loader's lock. */
	if (!mp.end_dump)
		mp_modules_refresh();
	pthread_mutex_lock(&mp.lock);
	__atomic_add_fetch(&mp.dump_progress, 1, __ATOMIC_RELAXED);
}

/* Write a dump into w.fd: mp.lock held, and let go on return. A regular
 * file is bounded by RLIMIT_FSIZE (past it, a write raises SIGXFSZ). Returns
 * 0 or an errno value. */
static int dump_body(uint32_t sequence, bool regular)
{
	w.err = 0;
	w.len = 0;
	struct rlimit fsize;
	w.room = regular && getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY
	             ? (uint64_t)fsize.rlim_cur
	             : UINT64_MAX;
	struct mp_counts *snap = NULL;
	size_t snap_bytes = 0;
	long cap = mp_counts_snapshot(&snap, &snap_bytes);
	__atomic_add_fetch(&mp.dump_progress, 1, __ATOMIC_RELAXED);
	size_t live_size = ((size_t)mp.nchains + 1) * 2 * sizeof(uint64_t);
	uint64_t *live = mp_map_filled(live_size);
	struct by_chain groups = {0};
	struct frame_table frames = {0};
	if (!live || cap < 0 || !group_by_chain(snap, cap, &groups) ||
	    !frames_build(snap, &groups, &frames))
		cap = -1;
	else
		mp_live_sum(live, live + mp.nchains + 1, mp.nchains);

	struct mp_file_header fh = {.version = MP_VERSION, .header_size = sizeof(fh)};
	memcpy(fh.magic, MP_MAGIC, MP_MAGIC_LEN);
	w_put(&fh, sizeof(fh));
	write_info(sequence);
	write_modules();
	struct mp_end end = {0};
	if (cap >= 0) {
		write_frames(&frames);
		write_chains(snap, &groups, &frames, live, live + mp.nchains + 1, &end);
	}
	end.nmodules = mp.nmodules;
	w_record(MP_TAG_END, sizeof(end));
	w_put(&end, sizeof(end));
	w_flush();
	mp_unmap(snap, snap_bytes);
	mp_unmap(groups.start, groups.start_bytes);
	mp_unmap(groups.order, groups.order_bytes);
	frames_free(&frames);
	if (live)
		mp_unmap(live, live_size);
	/* The writer is the next dump's as soon as the lock is let go (an
	 * on-demand dump and the exit dump can meet here). */
	int err = cap < 0 && !w.err ? ENOMEM : w.err;
	pthread_mutex_unlock(&mp.lock);
	return err;
}

/* MAPPROF_OUT names a FIFO or a character device (a pipe made with mkfifo
 * or a shell's >(...), /dev/null): each dump is written into it as it is.
 * A FIFO nobody has open for reading gets no dump, rather than hold the
 * program up at its end until somebody does. The dump is made in memory
 * (a memfd) under mp.lock and copied out after: a reader that is slow, or
 * never reads, holds up only the thread writing the dump, not every thread
 * that needs the lock. Returns 0 or an errno value, after a line saying
 * why. */
static int dump_stream(uint32_t sequence, const char *path, bool fifo)
{
	int fd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;
		if (err == ENXIO && fifo)
			mp_log("no dump: nothing reads the FIFO %s", path);
		else
			mp_log("cannot open dump %s: %s", path, strerror(err));
		return err;
	}
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* the reader sets the pace */
	/* A memfd is a file RLIMIT_FSIZE bounds: under such a limit, straight
	 * into the FIFO or device, which it does not bound. */
	struct rlimit fsize;
	int mem = getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur == RLIM_INFINITY
	              ? memfd_create("mapprof-dump", MFD_CLOEXEC)
	              : -1;
	struct pipe_hold hold;
	pipe_hold(&hold);
	dump_lock();
	w.fd = mem >= 0 ? mem : fd; /* no memfd: straight into it */
	int err = dump_body(sequence, false);
	if (mem >= 0) {
		struct stat st;
		if (!err)
			err = fstat(mem, &st) == 0 ? copy_file(fd, mem, st.st_size) : errno;
		close(mem);
	}
	if (close(fd) != 0 && !err)
		err = errno;
	pipe_release(&hold, err == EPIPE);
	if (err)
		mp_log("cannot write dump %s: %s", path, strerror(err));
	return err;
}

/* mp_dump_write, at tmp then path (both names expanded; path has room for
 * MP_PATH_MAX bytes, for the names tried after it). */
static int dump_to(uint32_t sequence, char *path, char *tmp, char *path_out, size_t path_size)
{
	int err = 0;
	const char *what = "";

	dump_lock();
	bool unnamed;
	int fd = dump_open(path, tmp, &unnamed);
	if (fd < 0) {
		err = errno;
		what = "cannot create";
		pthread_mutex_unlock(&mp.lock);
		goto fail;
	}
	w.fd = fd;
	err = dump_body(sequence, true);

	if (!unnamed && close(fd) != 0 && !err)
		err = errno;
	if (err) {
		what = "cannot write";
		if (unnamed)
			close(fd);
		else
			unlink(tmp);
		goto fail;
	}
	if (unnamed) {
		err = link_unnamed(fd, path);
		if (err && err != EEXIST) {
			/* Neither way of naming it works: a named copy instead. A
			 * failed copy is final: its EEXIST is about tmp (left by a
			 * process of this pid that was killed), not about path. */
			err = copy_unnamed(fd, tmp);
			close(fd);
			if (err) {
				mp_log("cannot create dump %s: %s", tmp, strerror(err));
				return err;
			}
			unnamed = false;
			err = publish(tmp, path);
		}
	} else
		err = publish(tmp, path);
	/* A name with the pid in it that is taken: an image this process ran
	 * before an exec of the same executable wrote it (the pid stays across
	 * exec). Take <pid>-2, <pid>-3, ... rather than lose this image's dump. */
	for (unsigned g = 2;
	     err == EEXIST && g <= 64 && strstr(mp.out_template[0] ? mp.out_template : "%p", "%p");
	     g++) {
		if (!expand_path(path, MP_PATH_MAX, sequence, g))
			break;
		err = unnamed ? link_unnamed(fd, path) : publish(tmp, path);
	}
	/* Any other name that is taken (a run before this one, a symbolic
	 * link) is left alone, and this dump written next to it, <path>.<pid>,
	 * rather than lost; <path>.<pid>-2, -3, ... when an image this process
	 * ran before an exec took that (a shell script that execs its program,
	 * under one MAPPROF_OUT). */
	char taken[MP_PATH_MAX];
	taken[0] = 0;
	if (err == EEXIST && strlen(path) < sizeof(taken)) {
		strcpy(taken, path);
		for (unsigned g = 1; err == EEXIST && g <= 64; g++) {
			int k =
			    g == 1 ? snprintf(path, MP_PATH_MAX, "%s.%d", taken, (int)mp.pid)
			           : snprintf(path, MP_PATH_MAX, "%s.%d-%u", taken, (int)mp.pid, g);
			if (k <= 0 || k >= MP_PATH_MAX)
				break;
			err = unnamed ? link_unnamed(fd, path) : publish(tmp, path);
		}
		if (err)
			strcpy(path, taken);
	}
	if (unnamed && close(fd) != 0 && !err) {
		/* Named already, but its last writes may not have made it. */
		err = errno;
		unlink(path);
		what = "cannot write";
		goto fail;
	}
	if (err) {
		if (!unnamed)
			unlink(tmp);
		what = err == EEXIST ? "will not replace existing file" : "cannot create";
		goto fail;
	}
	if (taken[0])
		mp_log("%s exists: dump written to %s", taken, path);
	if (path_out && path_size > strlen(path))
		strcpy(path_out, path);
	return 0;
fail:
	if (err == EEXIST && what[0] == 'w')
		mp_log("%s %s", what, path);
	else
		mp_log("%s dump %s: %s", what, err == EEXIST ? tmp : path, strerror(err));
	return err;
}

/* Write one dump; sequence 0 is the exit dump. Returns 0 or an errno value,
 * after printing one line naming the path and the reason. */
int mp_dump_write(uint32_t sequence, char *path_out, size_t path_size)
{
	char path[MP_PATH_MAX], tmp[MP_PATH_MAX + 32];
	if (path_size)
		path_out[0] = 0; /* no file to take back if an exec fails */
	/* A FIFO or a device takes every dump, on-demand ones too; any other
	 * name is the exit dump's, and an on-demand dump's is <name>.<sequence>. */
	struct stat st;
	bool stream = expand_path(path, sizeof(path), 0, 1) && stat(path, &st) == 0 &&
	              (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode));
	if (!stream && !expand_path(path, sizeof(path), sequence, 1)) {
		mp_log("cannot write dump: path from MAPPROF_OUT is too long");
		return ENAMETOOLONG;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)mp.pid);
	/* open and write are cancellation points: a thread cancelled in the dump
	 * (one that calls exit with a cancel pending) would leave mp.lock held
	 * and the dump half written. */
	int cancel_state;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	int err = stream ? dump_stream(sequence, path, S_ISFIFO(st.st_mode))
	                 : dump_to(sequence, path, tmp, path_out, path_size);
	pthread_setcancelstate(cancel_state, NULL);
	return err;
}
