/* SPDX-License-Identifier: MIT */
/*
 * daemon/fork.c - snapshot a parent's regions for its fork child (fork.h).
 *
 * One pass per parent region, under the parent's table write lock:
 *   1. a child region with the same range and memfd offset, on the child's
 *      memfd (the table shares one descriptor among its regions);
 *   2. for each data extent of the parent's memfd in the region's range:
 *      fence it (UFFDIO_WRITEPROTECT), copy it, and mark those child pages
 *      RESIDENT and queued for reclaim;
 *   3. for each SAME, POOL or FILE entry left (stopping once the counts say
 *      all were seen): the child's entry becomes the same value, payloads
 *      shared through the shared table.
 * A page with data in the memfd is copied whatever its entry says, so even
 * a page the daemon never saw being written reaches the child.
 *
 * Locks: the parent's table (write), then the child's (create, inside);
 * the pool's and the shared table's inside those.  Nobody else touches the
 * child's table yet: its client has no userfaultfd and is in no list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon/bfile.h"
#include "daemon/fork.h"
#include "daemon/uffd.h"

#define FORK_TRIES 100	      /* snapshots begun again after -EAGAIN */
#define FORK_RETRY_NS 1000000 /* 1 ms between them */
#define FENCE_TRIES 50	      /* fence calls retried inside one snapshot... */
#define FENCE_RETRY_NS 100000 /* ...100 us apart */
#define COPY_CHUNK (4u << 20) /* bytes per copy_file_range call */

static void sleep_ns(long ns)
{
	struct timespec ts = { 0, ns };

	nanosleep(&ts, NULL);
}

static int fence(struct uzd_client *p, uint64_t addr, uint64_t len)
{
	int ret = 0;

	for (int i = 0; i < FENCE_TRIES; i++) {
		ret = uzd_uffd_writeprotect(p->uffd, addr, len, true, false);
		if (ret != -EAGAIN)
			break;
		sleep_ns(FENCE_RETRY_NS);
	}
	/* -ENOENT: unmapped meanwhile (its UNMAP is unread): nothing to fence. */
	return ret == -ENOENT ? 0 : ret;
}

/* pread/pwrite, for kernels whose copy_file_range refuses two memfds. */
static int copy_slow(int from, int to, off_t off, size_t len)
{
	static __thread unsigned char buf[64 * 1024];

	while (len) {
		size_t n = len < sizeof(buf) ? len : sizeof(buf);
		ssize_t got = pread(from, buf, n, off);

		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		if (pwrite(to, buf, (size_t)got, off) != got)
			return -EIO;
		off += got;
		len -= (size_t)got;
	}
	return 0;
}

static int copy_range(int from, int to, off_t off, size_t len)
{
	off_t in = off, out = off;

	while (len) {
		ssize_t n = copy_file_range(from, &in, to, &out,
					    len < COPY_CHUNK ? len : COPY_CHUNK, 0);

		if (n < 0 &&
		    (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
			return copy_slow(from, to, in, len);
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		len -= (size_t)n;
	}
	return 0;
}

/* Step 2: fence and copy the data extents of @r into @cr. */
static int copy_data(struct uzd_client *p, struct uzd_client *c, struct uzd_region *r,
		     struct uzd_region *cr, struct uzd_fork_result *res)
{
	off_t pos = (off_t)r->memfd_off, end = (off_t)(r->memfd_off + r->len);
	int ret;

	while (pos < end) {
		off_t d = lseek(r->memfd, pos, SEEK_DATA), h;
		uint64_t addr;

		if (d < 0)
			return errno == ENXIO ? 0 : -errno;
		if (d >= end)
			return 0;
		h = lseek(r->memfd, d, SEEK_HOLE);
		if (h < 0 || h > end)
			h = end;
		addr = r->start + (uint64_t)(d - (off_t)r->memfd_off);
		ret = fence(p, addr, (uint64_t)(h - d));
		if (ret == 0)
			ret = copy_range(r->memfd, cr->memfd, d, (size_t)(h - d));
		if (ret)
			return ret;
		for (uint64_t a = addr; a < addr + (uint64_t)(h - d); a += UZD_PAGE_SIZE) {
			uzd_region_set_entry(cr, (a - cr->start) >> UZD_PAGE_SHIFT,
					     uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
			uzd_lru_push(&c->lru, a);
			res->copied_pages++;
		}
		pos = h;
	}
	return 0;
}

/* Share the payload of parent entry *@e with the child's page @pgidx of @cr. */
static int share_payload(struct uzd_client *p, struct uzd_client *c, uint64_t *e,
			 struct uzd_region *cr, size_t pgidx)
{
	uint64_t v = *e;
	bool pool = uzd_entry_state(v) == UZD_ENTRY_POOL;
	uint64_t key = pool ? uzd_shared_pool_key(uzd_entry_pool_handle(v)) :
			      uzd_shared_file_key(uzd_entry_file_slot(v));
	uint64_t shared = uzd_entry_with_flags(v, uzd_entry_flags(v) | UZD_ENTRY_SHARED);
	int ret;

	if (!p->shared)
		return -EOPNOTSUPP;
	ret = uzd_shared_get(p->shared, key);
	if (ret)
		return ret;
	/* The write lock is held: nobody claims or flips this entry meanwhile. */
	__atomic_store_n(e, shared, __ATOMIC_RELEASE);
	uzd_region_set_entry(cr, pgidx, shared);
	if (pool)
		__atomic_fetch_add(&c->stats.pool_bytes, uzd_client_object_bytes(p->pool, v),
				   __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&c->stats.file_bytes, uzd_bfile_slot_len(uzd_entry_file_slot(v)),
				   __ATOMIC_RELAXED);
	return 0;
}

/* Step 3: the entries that are not data in the memfd. */
static int copy_entries(struct uzd_client *p, struct uzd_client *c, struct uzd_region *r,
			struct uzd_region *cr, struct uzd_fork_result *res)
{
	struct uzd_region_counts n;
	uint64_t left;
	int ret;

	uzd_region_counts(r, &n);
	left = n.same + n.pool + n.file;
	for (size_t i = 0; left && i < r->npages; i++) {
		uint64_t v = __atomic_load_n(&r->entries[i], __ATOMIC_ACQUIRE);
		enum uzd_entry_state s = uzd_entry_state(v);

		if (s != UZD_ENTRY_SAME && s != UZD_ENTRY_POOL && s != UZD_ENTRY_FILE)
			continue;
		left--;
		if (cr->entries[i])
			continue; /* its data was in the memfd, and was copied */
		if (s == UZD_ENTRY_SAME) {
			uzd_region_set_entry(cr, i, v);
			continue;
		}
		ret = share_payload(p, c, &r->entries[i], cr, i);
		if (ret)
			return ret;
		res->shared_pages++;
	}
	return 0;
}

static int snapshot_region(struct uzd_client *p, struct uzd_client *c, struct uzd_region *r,
			   int memfd, struct uzd_fork_result *res)
{
	struct uzd_region_args a = {
		.start = r->start,
		.len = r->len,
		.memfd_off = r->memfd_off,
		.name = r->name,
	};
	struct uzd_region *cr;
	uint32_t id;
	int ret;

	a.memfd = fcntl(memfd, F_DUPFD_CLOEXEC, 0);
	if (a.memfd < 0)
		return -errno;
	ret = uzd_region_create(&c->regions, &a, &id);
	if (ret) {
		close(a.memfd);
		return ret;
	}
	cr = uzd_region_find(&c->regions, id);
	res->regions++;
	ret = copy_data(p, c, r, cr, res);
	return ret ? ret : copy_entries(p, c, r, cr, res);
}

/* Unprotect every region of @p (write lock held); wake when @wake. */
static void unfence(struct uzd_client *p, bool wake)
{
	for (size_t i = 0; i < p->regions.n; i++) {
		const struct uzd_region *r = p->regions.regions[i];

		for (int t = 0; t < FENCE_TRIES; t++) {
			if (uzd_uffd_writeprotect(p->uffd, r->start, r->len, false, wake) !=
			    -EAGAIN)
				break;
			sleep_ns(FENCE_RETRY_NS);
		}
	}
}

/* Empty @c's table again after a failed try. */
static void discard(struct uzd_client *c)
{
	while (c->regions.n)
		uzd_region_destroy(&c->regions, c->regions.regions[0]->id, uzd_client_release, c);
	uzd_lru_clear(&c->lru);
}

static int try_snapshot(struct uzd_client *p, struct uzd_client *c, int memfd,
			struct uzd_fork_result *res)
{
	int ret = 0;

	memset(res, 0, sizeof(*res));
	pthread_rwlock_wrlock(&p->regions.lock);
	for (size_t i = 0; i < p->regions.n && ret == 0; i++)
		ret = snapshot_region(p, c, p->regions.regions[i], memfd, res);
	if (ret == 0)
		__atomic_store_n(&p->forking, true, __ATOMIC_RELEASE);
	else
		unfence(p, true);
	pthread_rwlock_unlock(&p->regions.lock);
	if (ret)
		discard(c);
	return ret;
}

int uzd_fork_snapshot(struct uzd_client *parent, struct uzd_client *child, int memfd,
		      struct uzd_fork_result *res)
{
	int ret = -EAGAIN;

	for (int i = 0; i < FORK_TRIES && ret == -EAGAIN; i++) {
		if (i)
			sleep_ns(FORK_RETRY_NS);
		ret = try_snapshot(parent, child, memfd, res);
	}
	return ret;
}

void uzd_fork_done(struct uzd_client *p)
{
	pthread_rwlock_wrlock(&p->regions.lock);
	if (!p->forking) {
		pthread_rwlock_unlock(&p->regions.lock);
		return;
	}
	unfence(p, false);
	/*
	 * Cleared under the write lock, woken after: a fault checked before
	 * this saw the fence and was left, and the wake below retries it; one
	 * checked after is served.
	 */
	__atomic_store_n(&p->forking, false, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&p->regions.lock);
	uzd_region_read_lock(&p->regions);
	for (size_t i = 0; i < p->regions.n; i++)
		uzd_uffd_wake(p->uffd, p->regions.regions[i]->start, p->regions.regions[i]->len);
	uzd_region_read_unlock(&p->regions);
}
