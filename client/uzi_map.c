/* SPDX-License-Identifier: MIT */
/*
 * client/uzi_map.c - the interposer's mechanisms on managed memory.
 *
 * Making a mapping managed (uzi_map_manage): the program's anonymous
 * mapping is already in place, at the address the kernel chose (or the one
 * the program fixed); a slot of the memfd is mapped MAP_SHARED|MAP_FIXED
 * over it, atomically replacing it, marked MADV_DONTFORK (a fork that
 * bypasses our handlers then leaves a hole in the child rather than a
 * shared page, design.md §1 "Fork"), registered MISSING|WP with our
 * userfaultfd, then REGISTERed with the daemon.  A step that fails undoes
 * the ones before and puts an ordinary anonymous mapping back: the program
 * never notices.
 *
 * Giving memory back (release, then the syscall, then forget): the daemon
 * forgets the range first, synchronously (UNREGISTER: it waits for its own
 * evictions in the range, so after the reply it touches those file pages no
 * more); then the program's munmap/mmap/mremap runs; then the range's file
 * pages are punched and its slot may be reused.  Reusing file offsets any
 * earlier could let an old eviction punch new data.  The range stays
 * registered with the userfaultfd until the kernel unmaps it: a thread that
 * touches it meanwhile (a use after free in the program) gets SIGBUS from
 * the daemon, which no longer knows the range, where an unregistered range
 * would show it zeros; the munmap's UNMAP event then finds nothing to do.
 *
 * Dropping pages (MADV_DONTNEED/FREE): on shared memory those would leave
 * the data in the memfd, so they become MADV_REMOVE, which punches the
 * file and raises the REMOVE event through which the daemon frees its
 * copies (design.md §1).
 *
 * mremap: growing needs the file range after the mapping free, which its
 * slot guarantees unless a partial munmap left a second piece there; then
 * the data is copied to a new mapping.  A move keeps the file offsets, and
 * the daemon follows the kernel's REMAP event to the new address.
 *
 * Everything here runs with uzi.lock held.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/uffd.h"
#include "client/uzi.h"
#include "client/uzi_sys.h"

/* A REGISTER that meets a region the daemon has not dropped yet is retried. */
#define REGISTER_TRIES 200
#define REGISTER_RETRY_US 1000

static uintptr_t rec_end(const struct uzi_rec *r)
{
	return r->addr + r->len;
}

/* Put an ordinary anonymous mapping back at [addr, addr + len). */
static void restore_anon(uintptr_t addr, size_t len, int prot, int flags)
{
	int keep = flags & (MAP_NORESERVE | MAP_32BIT);

	uzi_sys_mmap((void *)addr, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | keep, -1,
		     0);
}

static int daemon_register(uintptr_t addr, size_t len, uint64_t off)
{
	struct uzp_register req = { .addr = addr, .length = len, .memfd_offset = off };
	struct uzp_registered ok;
	int err = 0;

	memcpy(req.name, "mmap", 5);
	for (int i = 0; i < REGISTER_TRIES; i++) {
		pthread_mutex_lock(&uzi.conn.lock);
		err = uzs_conn_request(&uzi.conn, UZP_REGISTER, &req, sizeof(req), uzi.memfd, &ok,
				       sizeof(ok), NULL);
		pthread_mutex_unlock(&uzi.conn.lock);
		/* -EEXIST: an UNMAP event of a range there is still being handled. */
		if (err != -EEXIST)
			break;
		usleep(REGISTER_RETRY_US);
	}
	return err;
}

static bool daemon_gone(int err)
{
	return err == -ENOTCONN || err == -EPIPE || err == -ECONNRESET;
}

/* A quota refused a region: say so once, and ask no more until memory is given back. */
static void note_quota(int err)
{
	if (err != -EDQUOT || uzi.over_quota)
		return;
	uzi.over_quota = true;
	uzi_say("over a quota of uzswapd, new mappings stay ordinary memory: %s",
		uzswap_last_error(&uzi.conn));
}

/*
 * A record was just added: if the watcher saw the daemon hang up meanwhile
 * (it found no record, so it did not stop us), stop now (uzi_watch.c).
 */
static void watcher_race(void)
{
	if (__atomic_load_n(&uzi_watch_dead, __ATOMIC_SEQ_CST))
		uzi_conn_failed(-ENOTCONN);
}

int uzi_map_manage(uintptr_t addr, size_t len, int prot, int flags)
{
	struct uzi_rec r = { .addr = addr, .len = len, .prot = prot };
	uint32_t slot;
	void *p;
	int err;

	if (uzi.over_quota)
		return -EDQUOT;
	err = uzi_table_reserve(&uzi.t, 2);
	if (err == 0)
		err = uzi_slot_alloc(&uzi.t, &slot);
	if (err)
		return err;
	r.off = (uint64_t)slot << UZI_SLOT_SHIFT;
	p = uzi_sys_mmap((void *)addr, len, prot, MAP_SHARED | MAP_FIXED, uzi.memfd, (off_t)r.off);
	if (p == MAP_FAILED) {
		err = -errno;
		goto err_slot;
	}
	if (uzi_sys_madvise(p, len, MADV_DONTFORK) < 0) {
		err = -errno;
		goto err_anon;
	}
	err = uzs_uffd_register(uzi.conn.uffd, addr, len, UZP_UFFD_REGISTER_MODES, NULL);
	if (err)
		goto err_anon;
	err = daemon_register(addr, len, r.off);
	note_quota(err);
	if (err)
		goto err_unregister;
	uzi_table_insert(&uzi.t, &r); /* room reserved above */
	uzi_slot_ref(&uzi.t, slot, 1);
	uzi.counters.managed++;
	watcher_race();
	return 0;

err_unregister:
	uzs_uffd_unregister(uzi.conn.uffd, addr, len);
err_anon:
	restore_anon(addr, len, prot, flags);
	fallocate(uzi.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)r.off, (off_t)len);
err_slot:
	uzi_slot_ref(&uzi.t, slot, 0); /* back to the free list */
	if (daemon_gone(err))
		uzi_conn_failed(err);
	return err;
}

/* ---- giving memory back ---- */

int uzi_map_release(uintptr_t addr, size_t len)
{
	struct uzp_range req = { .addr = addr, .length = len };
	int err;

	pthread_mutex_lock(&uzi.conn.lock);
	err = uzs_conn_request(&uzi.conn, UZP_UNREGISTER, &req, sizeof(req), -1, NULL, 0, NULL);
	pthread_mutex_unlock(&uzi.conn.lock);
	if (daemon_gone(err))
		uzi_conn_failed(err);
	uzi.over_quota = false; /* room again, perhaps */
	/* -ENOENT: the daemon holds nothing there (the kernel's UNMAP came first). */
	if (err && err != -ENOENT)
		uzi_say("uzswapd refused to forget [%#" PRIxPTR ", +%#zx): %s", addr, len,
			uzswap_last_error(&uzi.conn));
	return err == -ENOENT ? 0 : err;
}

/* Split the records so that boundaries fall at @addr and @addr + @len. */
static int split_range(uintptr_t addr, size_t len)
{
	int err = uzi_table_split_at(&uzi.t, addr);

	return err ? err : uzi_table_split_at(&uzi.t, addr + len);
}

void uzi_map_forget(uintptr_t addr, size_t len)
{
	uintptr_t end = addr + len;
	size_t i;

	split_range(addr, len);
	i = uzi_table_first_after(&uzi.t, addr);
	while (i < uzi.t.n && uzi.t.v[i].addr < end) {
		struct uzi_rec r = uzi.t.v[i];

		if (r.addr < addr || rec_end(&r) > end) {
			/* A split failed for want of memory: keep what is still mapped. */
			i++;
			continue;
		}
		/* Nobody maps these file pages any more: free them (design.md §1). */
		fallocate(uzi.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)r.off,
			  (off_t)r.len);
		uzi_table_remove(&uzi.t, i);
		uzi_slot_ref(&uzi.t, uzi_slot_of(r.off), -1);
	}
}

/* ---- pages, protection, flags ---- */

int uzi_map_drop(uintptr_t addr, size_t len)
{
	const struct uzi_rec *r = uzi_table_find(&uzi.t, addr);
	int err = 0;

	if (uzi_sys_madvise((void *)addr, len, MADV_REMOVE) == 0)
		return 0;
	/* MADV_REMOVE needs a writable mapping on some kernels: lend it one for the call. */
	if (errno != EACCES || !r)
		return -errno;
	uzi_sys_mprotect((void *)addr, len, PROT_READ | PROT_WRITE);
	if (uzi_sys_madvise((void *)addr, len, MADV_REMOVE) < 0)
		err = -errno;
	uzi_sys_mprotect((void *)addr, len, r->prot);
	uzi.counters.dropped++;
	return err;
}

void uzi_map_protect(uintptr_t addr, size_t len, int prot)
{
	uintptr_t end = addr + len;

	split_range(addr, len);
	for (size_t i = uzi_table_first_after(&uzi.t, addr); i < uzi.t.n && uzi.t.v[i].addr < end;
	     i++)
		uzi.t.v[i].prot = prot;
}

void uzi_map_fork_flags(uintptr_t addr, size_t len, unsigned int set, unsigned int clear)
{
	uintptr_t end = addr + len;

	split_range(addr, len);
	for (size_t i = uzi_table_first_after(&uzi.t, addr); i < uzi.t.n && uzi.t.v[i].addr < end;
	     i++)
		uzi.t.v[i].flags = (uzi.t.v[i].flags & ~clear) | set;
}

/* ---- mremap ---- */

/*
 * The records covering [old, old + len) exactly, one file-contiguous run:
 * their first index, or -1 (the kernel will refuse such a range anyway).
 */
static ssize_t remap_source(uintptr_t old, size_t len)
{
	size_t i, first;

	if (split_range(old, len))
		return -1;
	first = i = uzi_table_first_after(&uzi.t, old);
	if (i >= uzi.t.n || uzi.t.v[i].addr != old)
		return -1;
	for (; i + 1 < uzi.t.n && rec_end(&uzi.t.v[i]) < old + len; i++) {
		const struct uzi_rec *a = &uzi.t.v[i], *b = &uzi.t.v[i + 1];

		if (rec_end(a) != b->addr || a->off + a->len != b->off)
			return -1;
	}
	return rec_end(&uzi.t.v[i]) == old + len ? (ssize_t)first : -1;
}

/* The records of [old, old + old_len) now start at @to (the ranges are disjoint). */
static void records_moved(uintptr_t old, size_t old_len, uintptr_t to)
{
	struct uzi_rec moved[64];
	size_t n, i;

	/* Out a few at a time, shifted, back in order: removals make room for the inserts. */
	do {
		n = 0;
		i = uzi_table_first_after(&uzi.t, old);
		while (i < uzi.t.n && uzi.t.v[i].addr < old + old_len && n < 64) {
			moved[n] = uzi.t.v[i];
			moved[n].addr = moved[n].addr - old + to;
			uzi_table_remove(&uzi.t, i);
			n++;
		}
		for (size_t k = 0; k < n; k++)
			uzi_table_insert(&uzi.t, &moved[k]);
	} while (n == 64);
}

/* The grown part [addr, addr + len) at file offset @off, extending record @r's mapping. */
static int grown_part(uintptr_t addr, size_t len, uint64_t off, const struct uzi_rec *r)
{
	struct uzi_rec g = *r;
	int err;

	g.addr = addr;
	g.len = len;
	g.off = off;
	err = daemon_register(addr, len, off);
	note_quota(err);
	if (err) {
		/* Nobody would serve its faults: make it ordinary memory instead. */
		uzs_uffd_unregister(uzi.conn.uffd, addr, len);
		restore_anon(addr, len, r->prot, 0);
		if (daemon_gone(err))
			uzi_conn_failed(err);
		return 0;
	}
	uzi_slot_ref(&uzi.t, uzi_slot_of(off), 1);
	err = uzi_table_insert(&uzi.t, &g);
	watcher_race();
	return err;
}

/* Release and forget whatever managed memory lies in [addr, addr + len). */
static void release_range(uintptr_t addr, size_t len, bool unmap)
{
	if (!uzi_table_overlaps(&uzi.t, addr, len))
		return;
	uzi_map_release(addr, len);
	if (unmap)
		uzi_sys_munmap((void *)addr, len);
	uzi_map_forget(addr, len);
}

/* Grow or move by copying into a fresh managed mapping (the file range after is taken). */
static void *remap_copy(uintptr_t old, size_t old_len, size_t new_len, int flags,
			uintptr_t new_addr, int prot)
{
	int mflags = MAP_PRIVATE | MAP_ANONYMOUS | (flags & MREMAP_FIXED ? MAP_FIXED : 0);
	void *p;

	if (flags & MREMAP_FIXED)
		release_range(new_addr, new_len, false);
	p = uzi_sys_mmap(flags & MREMAP_FIXED ? (void *)new_addr : NULL, new_len, prot, mflags, -1,
			 0);
	if (p == MAP_FAILED)
		return p;
	uzi_map_manage((uintptr_t)p, new_len, prot, 0);
	/* Faults on evicted pages are served while we hold uzi.lock: the daemon never waits on it. */
	memcpy(p, (void *)old, old_len);
	release_range(old, old_len, true);
	uzi.counters.copied_remap++;
	return p;
}

/* Grow in place only, where the file range after is taken: a second mapping after it. */
static void *grow_beside(uintptr_t old, size_t old_len, size_t new_len, int prot)
{
	uintptr_t at = old + old_len;
	size_t extra = new_len - old_len;
	void *p = uzi_sys_mmap((void *)at, extra, prot,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED) {
		errno = ENOMEM; /* what mremap says when it cannot grow in place */
		return MAP_FAILED;
	}
	uzi_map_manage(at, extra, prot, 0);
	return (void *)old;
}

static void *remap_shrink(uintptr_t old, size_t old_len, size_t new_len)
{
	void *p;

	uzi_map_release(old + new_len, old_len - new_len);
	p = uzi_sys_mremap((void *)old, old_len, new_len, 0, NULL);
	if (p != MAP_FAILED)
		uzi_map_forget(old + new_len, old_len - new_len);
	return p;
}

void *uzi_map_remap(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t new_addr)
{
	ssize_t first;
	struct uzi_rec src, *last;
	void *p;
	int prot;

	if (old_len == 0 || (flags & MREMAP_DONTUNMAP && old_len != new_len) ||
	    (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) && !(flags & MREMAP_MAYMOVE)) ||
	    (flags & MREMAP_FIXED && new_addr < old + old_len && old < new_addr + new_len)) {
		/*
		 * old_len 0 would map the same pages twice; the rest the kernel
		 * refuses too, and must be refused before anything is released.
		 */
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (flags & MREMAP_DONTUNMAP && !(flags & MREMAP_FIXED)) {
		/* DONTUNMAP always moves: to where the kernel would put a new mapping. */
		void *to = uzi_sys_mmap(NULL, new_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
					0);

		if (to == MAP_FAILED)
			return to;
		new_addr = (uintptr_t)to;
		flags |= MREMAP_FIXED;
	}
	first = remap_source(old, old_len);
	if (first < 0)
		return uzi_sys_mremap((void *)old, old_len, new_len, flags, (void *)new_addr);
	src = uzi.t.v[first];
	prot = src.prot;
	if (new_len < old_len) {
		p = remap_shrink(old, old_len, new_len);
		if (p == MAP_FAILED || !(flags & MREMAP_FIXED))
			return p;
		return uzi_map_remap(old, new_len, new_len, flags, new_addr);
	}
	if (new_len > old_len) {
		uint64_t end_off = src.off + old_len;
		uint64_t in_slot = src.off & (UZI_SLOT_SIZE - 1);

		if (in_slot + new_len > UZI_SLOT_SIZE ||
		    uzi_table_file_busy(&uzi.t, end_off, new_len - old_len, NULL))
			return flags & MREMAP_MAYMOVE ?
				       remap_copy(old, old_len, new_len, flags, new_addr, prot) :
				       grow_beside(old, old_len, new_len, prot);
	} else if (!(flags & MREMAP_FIXED)) {
		return (void *)old; /* same size, not moving: nothing to do */
	}
	if (flags & MREMAP_FIXED)
		release_range(new_addr, new_len, false);
	p = uzi_sys_mremap((void *)old, old_len, new_len, flags & ~MREMAP_DONTUNMAP,
			   (void *)new_addr);
	if (p == MAP_FAILED)
		return p;
	if ((uintptr_t)p != old)
		records_moved(old, old_len, (uintptr_t)p);
	if (new_len > old_len) {
		last = uzi_table_find(&uzi.t, (uintptr_t)p + old_len - 1);
		grown_part((uintptr_t)p + old_len, new_len - old_len,
			   last->off + ((uintptr_t)p + old_len - last->addr), last);
	}
	if (flags & MREMAP_DONTUNMAP) {
		/* The old range stays mapped and reads as zeros: fresh memory there. */
		if (uzi_sys_mmap((void *)old, old_len, prot,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
				 0) != MAP_FAILED)
			uzi_map_manage(old, old_len, prot, 0);
	}
	return p;
}
