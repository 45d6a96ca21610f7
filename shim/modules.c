/* modules.c: the module map (path, build-id, load ranges) that lets the report
 * tool symbolize frames offline. Used when a new chain is first seen or a dump
 * is written, never on the per-call path; never malloc.
 * Lock order: the loader's lock (inside dl_iterate_phdr) before modules_lock,
 * never the reverse, and never with mp.lock held: a program may allocate from
 * its own dl_iterate_phdr callback. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

struct counters {
	unsigned long long adds, subs;
};

static int read_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct counters *c = arg;
	if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
		return 1;
	c->adds = info->dlpi_adds;
	c->subs = info->dlpi_subs;
	return 1;
}

/* The /proc/self/maps line whose range holds addr: its range, the end of
 * the line before it, and (if path) its path, cut to size. Read with
 * system calls into a buffer on the stack: no malloc, no stdio, so it
 * serves where those cannot be used. False if not found or unreadable. */
bool mp_maps_find(uintptr_t addr, struct mp_maps_hit *hit, char *path, size_t size)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[1024];
	uintptr_t field[2] = {0, 0}, last_to = 0;
	/* 0, 1: reading the line's from, to; 2..5: perms, offset, device, inode
	 * (each ended by a space); 6: the spaces before the path, 7: the path */
	int at = 0;
	size_t len = 0;
	bool found = false;
	ssize_t n;
	while (!found && (n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n') {
				if (at >= 2 && field[0] <= addr && addr < field[1]) {
					found = true;
					break;
				}
				last_to = field[1];
				field[0] = field[1] = 0;
				at = 0;
				len = 0;
			} else if (at < 2) {
				int d = c >= '0' && c <= '9'   ? c - '0'
				        : c >= 'a' && c <= 'f' ? c - 'a' + 10
				                               : -1;
				if (d >= 0)
					field[at] = field[at] << 4 | (uintptr_t)d;
				else
					at++; /* the '-' after from, the ' ' after to */
			} else if (at < 6) {
				at += c == ' ';
			} else if (at == 6 && c == ' ') {
				continue;
			} else if (path && field[0] <= addr && addr < field[1]) {
				at = 7;
				if (len + 1 < size)
					path[len++] = c;
			}
		}
	}
	close(fd);
	if (!found)
		return false;
	if (path && size)
		path[len] = '\0';
	hit->from = field[0];
	hit->to = field[1];
	hit->prev_to = last_to;
	return true;
}

static uint32_t build_id(struct dl_phdr_info *info, const uint8_t **out)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		const char *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const char *name = p + sizeof(*nh);
			const char *desc = name + ((nh->n_namesz + 3) & ~3u);
			if (desc + nh->n_descsz > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0) {
				*out = (const uint8_t *)desc;
				return nh->n_descsz;
			}
			p = desc + ((nh->n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

struct walk {
	bool first;   /* the next object the loader reports is its first */
	uint64_t gen; /* this refresh's number */
};

/* The record of this object at this place, if there is one, marked found
 * by refresh gen (and loaded again, if it was unloaded): by its path, or by
 * the loader's name for it where that was relative (dlname). A file rebuilt
 * and loaded again under its name (a plugin reloaded) is another object,
 * told apart by its build-id. */
static bool mark_known(struct dl_phdr_info *info, const char *name, bool by_dlname,
                       const uint8_t *bid, uint32_t bid_len, uint64_t gen)
{
	bool found = false;
	mp_spin_lock(&mp.modules_lock);
	for (struct mp_module_rec *m = mp.modules; m && !found; m = m->next) {
		const char *known = by_dlname ? m->dlname : m->path;
		if (known && m->load_bias == info->dlpi_addr && strcmp(known, name) == 0 &&
		    m->buildid_len == bid_len &&
		    (!bid_len || memcmp(m->buildid, bid, bid_len) == 0)) {
			if (m->seen < gen)
				m->seen = gen;
			m->flags &= ~MP_MODULE_UNLOADED;
			found = true;
		}
	}
	mp_spin_unlock(&mp.modules_lock);
	return found;
}

static int add_new(struct dl_phdr_info *info, const char *path, const char *dlname, uint32_t flags,
                   const uint8_t *bid, uint32_t bid_len, uint64_t gen);

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct walk *wk = arg;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	uint32_t flags = 0;
	if (wk->first && name[0] == 0) {
		name = mp.exe;
		flags |= MP_MODULE_MAIN;
	} else if (strncmp(name, "linux-vdso", 10) == 0 || strncmp(name, "linux-gate", 10) == 0) {
		flags |= MP_MODULE_VDSO;
	}
	wk->first = false;
	const uint8_t *bid = NULL;
	uint32_t bid_len = build_id(info, &bid);
	/* A relative name (LD_PRELOAD=./lib.so, dlopen("./plugin.so")) is
	 * relative to the working directory of the day: the report, run
	 * elsewhere, could not open it. The mapping's own path is whole, read
	 * once per object (the record keeps the loader's name too); under a
	 * lock, the buffer being static (a page: too much for the small stacks
	 * this may run on). */
	bool relative = name[0] && name[0] != '/' && !(flags & (MP_MODULE_MAIN | MP_MODULE_VDSO));
	if (mark_known(info, name, relative, bid, bid_len, wk->gen))
		return 0;
	if (!relative)
		return add_new(info, name, NULL, flags, bid, bid_len, wk->gen);
	static char whole[MP_PATH_MAX];
	static int whole_lock;
	struct mp_maps_hit hit;
	uintptr_t at = 0;
	for (int i = 0; i < info->dlpi_phnum && !at; i++)
		if (info->dlpi_phdr[i].p_type == PT_LOAD)
			at = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
	mp_spin_lock(&whole_lock);
	const char *path = name;
	if (at && mp_maps_find(at, &hit, whole, sizeof(whole)) && whole[0] == '/') {
		size_t n = strlen(whole), k = sizeof(" (deleted)") - 1;
		if (n > k && strcmp(whole + n - k, " (deleted)") == 0)
			whole[n - k] = '\0'; /* the name it had */
		path = whole;
	}
	int r = add_new(info, path, name, flags, bid, bid_len, wk->gen);
	mp_spin_unlock(&whole_lock);
	return r;
}

/* A record for an object not recorded yet. */
static int add_new(struct dl_phdr_info *info, const char *path, const char *dlname, uint32_t flags,
                   const uint8_t *bid, uint32_t bid_len, uint64_t gen)
{
	uint32_t nranges = 0;
	for (int i = 0; i < info->dlpi_phnum; i++)
		nranges += info->dlpi_phdr[i].p_type == PT_LOAD;
	if (nranges == 0)
		return 0;
	size_t path_len = strlen(path);

	struct mp_module_rec *m = mp_arena_alloc(sizeof(*m));
	struct mp_range *r = mp_arena_alloc(nranges * sizeof(*r));
	uint8_t *bcopy = bid_len ? mp_arena_alloc(bid_len) : NULL;
	char *pcopy = mp_arena_strdup(path, path_len);
	char *dcopy = dlname ? mp_arena_strdup(dlname, strlen(dlname)) : NULL;
	if (!m || !r || (bid_len && !bcopy) || !pcopy || (dlname && !dcopy))
		return 0;
	uint32_t k = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		r[k].start = info->dlpi_addr + ph->p_vaddr;
		r[k].end = r[k].start + ph->p_memsz;
		r[k].file_offset = ph->p_offset;
		r[k].prot = ph->p_flags & (PF_R | PF_W | PF_X);
		r[k].reserved = 0;
		k++;
	}
	if (bid_len)
		memcpy(bcopy, bid, bid_len);
	mp_spin_lock(&mp.modules_lock);
	*m = (struct mp_module_rec){
	    .next = mp.modules,
	    .id = mp.nmodules,
	    .flags = flags,
	    .load_bias = info->dlpi_addr,
	    .nranges = nranges,
	    .buildid_len = bid_len,
	    .path_len = (uint32_t)path_len,
	    .ranges = r,
	    .buildid = bcopy,
	    .path = pcopy,
	    .dlname = dcopy,
	    .seen = gen,
	};
	/* An older module where this one now lies was unloaded: find() must
	 * not take it for a frame of this one. */
	for (struct mp_module_rec *o = mp.modules; o; o = o->next)
		for (uint32_t i = 0; i < o->nranges; i++)
			for (uint32_t j = 0; j < nranges; j++)
				if (o->ranges[i].start < r[j].end && r[j].start < o->ranges[i].end)
					__atomic_store_n(&o->shadowed, true, __ATOMIC_RELAXED);
	/* Publish complete: find() reads the list without the lock. */
	__atomic_store_n(&mp.modules, m, __ATOMIC_RELEASE);
	mp.nmodules++;
	mp_spin_unlock(&mp.modules_lock);
	return 0;
}

/* dl_iterate_phdr holds the loader's lock while it calls back, and a fork
 * child inherits that lock held (glibc does not reset it): a fork while this
 * thread is inside would hang the child's first unwind. So it passes the same
 * gate as libunwind's walks (stack.c), which a fork waits for. */
static void iterate(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
	bool registered = mp_gate_enter();
	dl_iterate_phdr(cb, arg);
	mp_gate_leave(registered);
}

/* Refreshes may run at once (a dlclose on each of two threads): each has a
 * number, and a module is unloaded for one only if neither it nor any
 * refresh begun after it found the module. */
static void refresh(bool mark_unloaded)
{
	struct counters c = {0, 0};
	iterate(read_counters, &c);
	struct walk wk = {true, __atomic_add_fetch(&mp.refreshes, 1, __ATOMIC_ACQ_REL)};
	iterate(add_module, &wk);
	bool epoch = false;
	mp_spin_lock(&mp.modules_lock);
	if (mark_unloaded)
		for (struct mp_module_rec *m = mp.modules; m; m = m->next)
			if (m->seen < wk.gen && !(m->flags & MP_MODULE_UNLOADED)) {
				m->flags |= MP_MODULE_UNLOADED;
				epoch |= __atomic_load_n(&m->used, __ATOMIC_RELAXED);
			}
	mp.dl_adds = c.adds;
	mp.dl_subs = c.subs;
	mp_spin_unlock(&mp.modules_lock);
	/* A module that holds chains' frames is gone: the next object loaded at
	 * its addresses would make the very return addresses of those chains
	 * and be counted to them. A new epoch makes every chain key new; the
	 * next call of each chain finds its chain again by its frames (table.c),
	 * and code at the unloaded module's addresses gets chains of its own. */
	if (epoch)
		__atomic_add_fetch(&mp.unload_epoch, MP_EPOCH_ONE, __ATOMIC_RELEASE);
}

/* Before a dump: also marks the modules dlclose'd since they were recorded. */
void mp_modules_refresh(void)
{
	refresh(true);
}

void mp_modules_check(void)
{
	struct counters c = {0, 0};
	iterate(read_counters, &c);
	bool subs = c.subs != __atomic_load_n(&mp.dl_subs, __ATOMIC_RELAXED);
	if (subs || c.adds != __atomic_load_n(&mp.dl_adds, __ATOMIC_RELAXED) ||
	    !__atomic_load_n(&mp.modules, __ATOMIC_ACQUIRE))
		refresh(subs);
}

/* dlclose, watched for what it unloads (see refresh); other unloads (the C
 * library's own, of its NSS or iconv modules) are seen at the next new
 * chain or dump. dlclose does not depend on its caller, so wrapping it
 * changes nothing for the program; its errno and dlerror() are kept. */
MP_EXPORT int dlclose(void *handle)
{
	static void *next;
	int r = ((int (*)(void *))mp_next_sym(&next, "dlclose"))(handle);
	if (r == 0 && mp_ready() && mp_enabled() && !mp_tl.in_hook) {
		int saved = errno;
		mp_tl.in_hook++;
		mp_modules_refresh();
		mp_tl.in_hook--;
		errno = saved;
	}
	return r;
}

static bool contains(const struct mp_module_rec *m, uintptr_t ip)
{
	for (uint32_t i = 0; i < m->nranges; i++)
		if (ip >= m->ranges[i].start && ip < m->ranges[i].end)
			return true;
	return false;
}

/* Newest first: an object loaded where an unloaded one was wins, and a
 * frame is resolved when its chain is first seen, while its object is loaded. */
static struct mp_module_rec *find(uintptr_t ip)
{
	for (struct mp_module_rec *m = __atomic_load_n(&mp.modules, __ATOMIC_ACQUIRE); m;
	     m = m->next)
		if (contains(m, ip))
			return m;
	return NULL;
}

/* Return addresses point after the call; ip - 1 is inside the calling
 * instruction and therefore inside the module even at a segment's end. A
 * chain's frames mostly lie in a few modules: each frame first tries the
 * module of the one before, unless a newer module overlaps that one (then
 * only find()'s newest-first order is right). */
void mp_frames_resolve(const uintptr_t *ips, uint32_t n, struct mp_frame *out)
{
	struct mp_module_rec *last = NULL;
	for (uint32_t k = 0; k < n; k++) {
		uintptr_t ip = ips[k] - 1; /* a return address: the call lies before it */
		struct mp_module_rec *m = last;
		if (!m || __atomic_load_n(&m->shadowed, __ATOMIC_RELAXED) || !contains(m, ip))
			m = find(ip);
		out[k].reserved = 0;
		if (m) {
			if (!__atomic_load_n(&m->used, __ATOMIC_RELAXED))
				__atomic_store_n(&m->used, true, __ATOMIC_RELAXED);
			out[k].module = m->id;
			out[k].offset = ips[k] - m->load_bias;
		} else {
			out[k].module = MP_MODULE_NONE;
			out[k].offset = ips[k];
		}
		last = m;
	}
}
