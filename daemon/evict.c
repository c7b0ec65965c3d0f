/* SPDX-License-Identifier: MIT */
/*
 * daemon/evict.c - resident pages to the pool, a batch at a time (evict.h).
 *
 * struct uzd_evict_ctx is one reclaim thread's workspace:
 *   zc      the codec context (compresses with the configured codec)
 *   pg[]    the pages claimed in this batch, sorted by index, no duplicates,
 *           each with its old entry, the value it will be published with,
 *           its pool handle, and its fate (what the rest of the batch does
 *           with it); runs of consecutive indexes become one system call
 *   buf     UZD_EVICT_BATCH page buffers, pg[i] captured into page i
 *   cbuf    the compressor's output for the page being stored
 *   pool_limit  bytes of pool pages past which stores are refused when the
 *           client has no backing-file tier (0: none); set by reclaim from
 *           [pool] max_size, so that a reload can move it
 *
 * Order, and why (design.md §1, region.h "The page protocol"):
 *  - claim before fence: a page is ours (BUSY) before we change its
 *    protection, so no fault restores or re-evicts it under us;
 *  - fence before capture: after UFFDIO_WRITEPROTECT a client write blocks,
 *    so the bytes preadv returns are final;
 *  - store before punch: the pool holds the bytes before the memfd drops
 *    them, so no failure between the two can lose the page;
 *  - unprotect while the claim is held: lifting the fence (without a wake)
 *    while the page is still ours means the only fence we can lift is our
 *    own.  Lifting it after the publish let another reclaimer claim the
 *    restored page and fence it in between, and our late unprotect lifted
 *    that fence before its capture: a lost write (found by review, with
 *    two reclaimers on one client);
 *  - publish before wake.  A fault that finds BUSY returns without an
 *    answer and leaves its thread to our wake.  Every such fault read BUSY
 *    before our publish, hence before our wake, which therefore wakes it;
 *    it refaults and finds POOL or SAME.  Waking first would let a writer
 *    refault while the entry is still BUSY, be passed over a second time,
 *    and then sleep with nobody left to wake it.  So every claimed run is
 *    woken after the settle, fenced or not, stored or aborted.
 * A page that cannot be stored is aborted back to RESIDENT, also before
 * the wake, for the same reason: its writers retry on the intact page.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon/evict.h"
#include "daemon/object.h"
#include "daemon/uffd.h"
#include "daemon/writeback.h"

/*
 * Unprotect retries while a REMOVE/UNMAP event is unread (-EAGAIN): the
 * fault thread reads events promptly, and uffd.h measured the flag
 * outliving the read only "for a moment".  50 us doubling 8 times: 12.75 ms
 * at most, then leave the run protected (see unfence_run()).
 */
#define UNFENCE_TRIES 8
#define UNFENCE_BACKOFF_US 50

enum page_fate {
	FATE_CLAIMED, /* ours, nothing decided yet */
	FATE_SAME,    /* val is a SAME entry */
	FATE_POOL,    /* val is a POOL entry; handle/bytes describe the object */
	FATE_KEEP,    /* stays RESIDENT: abort the claim */
};

struct evict_page {
	size_t idx;
	uint64_t old; /* the entry as claimed; what abort restores */
	uint64_t val; /* FATE_SAME, FATE_POOL: the entry to publish */
	unsigned long handle;
	uint32_t bytes; /* FATE_POOL: object size, header included */
	bool raw;
	enum page_fate fate;
};

struct uzd_evict_ctx {
	struct uzc_ctx *zc;
	enum uzc_codec_id codec;
	size_t n; /* pages claimed */
	struct evict_page pg[UZD_EVICT_BATCH];
	size_t sorted[UZD_EVICT_BATCH];
	struct iovec iov[UZD_EVICT_BATCH];
	unsigned char *buf;
	unsigned char cbuf[UZC_PAGE_SIZE];
	uint64_t pool_limit;
};

int uzd_evict_ctx_new(const struct uzc_spec *spec, size_t max_len, struct uzd_evict_ctx **out)
{
	struct uzd_evict_ctx *ec;
	int ret;

	ec = calloc(1, sizeof(*ec));
	if (!ec)
		return -ENOMEM;
	/* Page-aligned: preadv from shmem then copies whole pages. */
	ec->buf = aligned_alloc(UZD_PAGE_SIZE, UZD_EVICT_BATCH * UZD_PAGE_SIZE);
	if (!ec->buf) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = uzc_ctx_new(spec, max_len, &ec->zc);
	if (ret < 0)
		goto err_buf;
	ec->codec = spec->id;
	*out = ec;
	return 0;

err_buf:
	free(ec->buf);
err_free:
	free(ec);
	return ret;
}

void uzd_evict_ctx_set_pool_limit(struct uzd_evict_ctx *ec, uint64_t bytes)
{
	ec->pool_limit = bytes;
}

void uzd_evict_ctx_free(struct uzd_evict_ctx *ec)
{
	if (!ec)
		return;
	uzc_ctx_free(ec->zc);
	free(ec->buf);
	free(ec);
}

static void stat_add(uint64_t *counter, uint64_t v)
{
	if (v)
		__atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static uint64_t page_addr(const struct uzd_region *r, size_t idx)
{
	return (uint64_t)r->start + ((uint64_t)idx << UZD_PAGE_SHIFT);
}

static off_t page_off(const struct uzd_region *r, size_t idx)
{
	return (off_t)(r->memfd_off + ((uint64_t)idx << UZD_PAGE_SHIFT));
}

static unsigned char *page_buf(struct uzd_evict_ctx *ec, size_t i)
{
	return ec->buf + i * UZD_PAGE_SIZE;
}

/* End of the run of consecutive indexes that starts at pg[i], among pg[0..n). */
static size_t run_end(const struct uzd_evict_ctx *ec, size_t i, size_t n)
{
	size_t j = i + 1;

	while (j < n && ec->pg[j].idx == ec->pg[j - 1].idx + 1)
		j++;
	return j;
}

static bool stored(const struct evict_page *p)
{
	return p->fate == FATE_SAME || p->fate == FATE_POOL;
}

/* As run_end(), for a run whose pages are all stored. */
static size_t stored_run_end(const struct uzd_evict_ctx *ec, size_t i)
{
	size_t j = i + 1;

	while (j < ec->n && stored(&ec->pg[j]) && ec->pg[j].idx == ec->pg[j - 1].idx + 1)
		j++;
	return j;
}

/* ---- 0. the input: sorted, unique, in range ---- */

static int sort_input(struct uzd_evict_ctx *ec, const struct uzd_region *r, const size_t *pgidx,
		      size_t n, size_t *out_n)
{
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		size_t v = pgidx[i], j = m;

		if (v >= r->npages)
			return -EINVAL;
		while (j > 0 && ec->sorted[j - 1] > v)
			j--;
		if (j > 0 && ec->sorted[j - 1] == v)
			continue;
		memmove(&ec->sorted[j + 1], &ec->sorted[j], (m - j) * sizeof(size_t));
		ec->sorted[j] = v;
		m++;
	}
	*out_n = m;
	return 0;
}

/* ---- 1. claim ---- */

/*
 * Second chance for a HOT page: clear the flag by compare-and-swap on the
 * settled RESIDENT entry, never through BUSY, so that no fault can see a
 * BUSY that nobody will follow with a wake.  Returns true if the page was
 * HOT (and is now not), false if it is not a HOT resident page.
 */
static bool clear_hot(struct uzd_region *r, size_t idx)
{
	uint64_t *e = &r->entries[idx];
	uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);

	while (uzd_entry_state(v) == UZD_ENTRY_RESIDENT && (uzd_entry_flags(v) & UZD_ENTRY_HOT)) {
		if (__atomic_compare_exchange_n(e, &v, uzd_entry_with_flags(v, 0), true,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			return true;
	}
	return false;
}

/*
 * A page that became HOT between clear_hot() and our claim (a fault
 * restored it just then) is handed back with the flag cleared; it was BUSY
 * for a moment, so wake the range in case a fault saw it (region.h).
 */
static void give_back_hot(struct uzd_client *c, struct uzd_region *r, size_t idx, uint64_t old)
{
	uzd_region_publish(r, idx, uzd_entry_with_flags(old, 0));
	uzd_uffd_wake(c->uffd, page_addr(r, idx), UZD_PAGE_SIZE);
}

static void claim_page(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
		       size_t idx, struct uzd_evict_result *res)
{
	struct evict_page *p;
	uint64_t old;
	int ret;

	if (clear_hot(r, idx)) {
		res->skipped_hot++;
		return;
	}
	ret = uzd_region_claim(r, idx, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old);
	if (ret == -EBUSY) {
		res->rejected_busy++;
		return;
	}
	if (ret < 0) {
		res->skipped_state++;
		return;
	}
	if (uzd_entry_flags(old) & UZD_ENTRY_HOT) {
		give_back_hot(c, r, idx, old);
		res->skipped_hot++;
		return;
	}
	p = &ec->pg[ec->n++];
	memset(p, 0, sizeof(*p));
	p->idx = idx;
	p->old = old;
	p->fate = FATE_CLAIMED;
}

/* ---- 2. fence, and 7. unfence ---- */

/* Write-protect every claimed run; *nfenced: the pages fenced before an error. */
static int fence(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
		 size_t *nfenced)
{
	size_t i = 0, j;
	int ret;

	while (i < ec->n) {
		j = run_end(ec, i, ec->n);
		ret = uzd_uffd_writeprotect(c->uffd, page_addr(r, ec->pg[i].idx),
					    (uint64_t)(j - i) << UZD_PAGE_SHIFT, true, false);
		if (ret < 0) {
			*nfenced = i;
			return ret;
		}
		i = j;
	}
	*nfenced = ec->n;
	return 0;
}

/*
 * Lift the fence of one run without waking, clearing the uffd-wp markers
 * the punch left (design.md §1).  -EAGAIN (an event came in after our fence
 * and is unread) is retried with a backoff; the bound matters because we
 * hold the table read lock, which the fault thread may need for the very
 * event that blocks us (an UNMAP takes the write lock).  If it persists the
 * run stays protected: the wake that follows the settle still releases its
 * threads (UFFDIO_WAKE does not check mmap_changing: tested).  A writer on
 * a stored page refaults MISSING and is served (a copy over a leftover
 * marker installs a writable page); one on a page that stayed resident
 * takes a WP fault again, which the fault service answers by unprotecting
 * a settled page itself (fault.c serve_wp).  -ENOENT/-ESRCH: the range or
 * the client is gone, and with it every waiter.
 */
static void unfence_run(int uffd, uint64_t addr, uint64_t len)
{
	unsigned int delay = UNFENCE_BACKOFF_US;

	for (int t = 0; t < UNFENCE_TRIES; t++) {
		if (uzd_uffd_writeprotect(uffd, addr, len, false, false) != -EAGAIN)
			return;
		usleep(delay);
		delay *= 2;
	}
}

/* Call @fn on each run of ec->pg[0..n). */
static void for_each_run(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
			 size_t n, void (*fn)(int uffd, uint64_t addr, uint64_t len))
{
	size_t i = 0, j;

	while (i < n) {
		j = run_end(ec, i, n);
		fn(c->uffd, page_addr(r, ec->pg[i].idx), (uint64_t)(j - i) << UZD_PAGE_SHIFT);
		i = j;
	}
}

static void wake_run(int uffd, uint64_t addr, uint64_t len)
{
	uzd_uffd_wake(uffd, addr, len);
}

/* ---- 3. capture ---- */

/* preadv one run of pages into their buffers; short reads continue. */
static int capture_run(struct uzd_evict_ctx *ec, const struct uzd_region *r, size_t i, size_t j)
{
	size_t total = (j - i) * UZD_PAGE_SIZE, done = 0;
	struct iovec *iov = &ec->iov[i];
	int cnt = (int)(j - i);
	ssize_t got;

	for (size_t k = i; k < j; k++)
		ec->iov[k] = (struct iovec){ .iov_base = page_buf(ec, k),
					     .iov_len = UZD_PAGE_SIZE };
	while (done < total) {
		got = preadv(r->memfd, iov, cnt, page_off(r, ec->pg[i].idx) + (off_t)done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EIO; /* 0: the memfd shrank under us */
		done += (size_t)got;
		/* Skip the iovecs filled; a partly filled one is resumed in place. */
		while (cnt && (size_t)got >= iov->iov_len) {
			got -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt && got) {
			iov->iov_base = (char *)iov->iov_base + got;
			iov->iov_len -= (size_t)got;
		}
	}
	return 0;
}

/* @n pages stay resident because @what failed with @err; the first failure is kept. */
static void reject_error(struct uzd_evict_result *res, size_t n, const char *what, int err)
{
	if (!res->rejected_error) {
		res->error_what = what;
		res->error = err;
	}
	res->rejected_error += n;
}

static void capture(struct uzd_evict_ctx *ec, const struct uzd_region *r,
		    struct uzd_evict_result *res)
{
	size_t i = 0, j;
	int ret;

	while (i < ec->n) {
		j = run_end(ec, i, ec->n);
		ret = capture_run(ec, r, i, j);
		if (ret < 0) {
			for (size_t k = i; k < j; k++)
				ec->pg[k].fate = FATE_KEEP;
			reject_error(res, j - i, "reading the memfd", ret);
		}
		i = j;
	}
}

/* ---- 4. store ---- */

/* The next eviction number of the client: the refault-distance clock. */
static uint32_t next_seq(struct uzd_client *c)
{
	return __atomic_fetch_add(&c->evict_seq, 1, __ATOMIC_RELAXED);
}

/*
 * An incompressible page: the page itself, no header, flagged RAW in its
 * entry (object.h); writeback finds its owner in a side table instead.
 */
static int pool_put_raw(struct uzd_client *c, const struct uzd_region *r, struct evict_page *p,
			const void *page)
{
	unsigned long handle;
	unsigned char *obj;
	int ret;

	ret = zpool_malloc(c->pool, UZD_PAGE_SIZE, &handle);
	if (ret < 0)
		return ret;
	obj = zpool_map(c->pool, handle, ZPOOL_MM_WO);
	if (!obj) {
		zpool_free(c->pool, handle);
		return -EIO;
	}
	memcpy(obj, page, UZD_PAGE_SIZE);
	zpool_unmap(c->pool, handle);
	if (c->wb && uzd_wb_raw_stored(c->wb, handle, c->id, page_addr(r, p->idx)) < 0) {
		zpool_free(c->pool, handle);
		return -ENOMEM;
	}
	next_seq(c);
	p->handle = handle;
	p->bytes = UZD_PAGE_SIZE;
	p->val = uzd_entry_make_pool(handle, UZD_ENTRY_RAW);
	p->fate = FATE_POOL;
	return 0;
}

static int pool_put(struct uzd_client *c, const struct uzd_region *r, struct evict_page *p,
		    enum uzc_codec_id codec, const void *src, uint32_t len)
{
	struct uzd_obj_hdr h = { .addr = (uintptr_t)page_addr(r, p->idx),
				 .codec = codec,
				 .len = len,
				 .client_id = c->id };
	unsigned long handle;
	unsigned char *obj;
	int ret;

	ret = zpool_malloc(c->pool, UZD_OBJ_HDR_SIZE + len, &handle);
	if (ret < 0)
		return ret;
	obj = zpool_map(c->pool, handle, ZPOOL_MM_WO);
	if (!obj) {
		zpool_free(c->pool, handle);
		return -EIO;
	}
	h.evict_seq = next_seq(c);
	uzd_obj_hdr_write(obj, &h);
	memcpy(obj + UZD_OBJ_HDR_SIZE, src, len);
	zpool_unmap(c->pool, handle);
	p->handle = handle;
	p->bytes = UZD_OBJ_HDR_SIZE + len;
	p->val = uzd_entry_make_pool(handle, 0);
	p->fate = FATE_POOL;
	return 0;
}

/*
 * Same-filled pages become a word in the entry.  The rest are compressed;
 * an incompressible page, or one the codec fails on (it never should, and
 * raw bytes are always restorable), is stored raw.
 */
static void store_page(struct uzd_evict_ctx *ec, struct uzd_client *c, const struct uzd_region *r,
		       size_t i, struct uzd_evict_result *res)
{
	struct evict_page *p = &ec->pg[i];
	const unsigned char *page = page_buf(ec, i);
	enum uzc_codec_id codec = ec->codec;
	const void *src = ec->cbuf;
	uint64_t word;
	ssize_t len;
	int ret;

	if (uzc_page_same_filled(page, &word) && uzd_entry_same_fits(word)) {
		next_seq(c);
		p->val = uzd_entry_make_same(word, 0);
		p->fate = FATE_SAME;
		return;
	}
	/* Full, and not yet drained below the accept threshold (writeback.h). */
	if (c->wb && !uzd_wb_pool_admit(c->wb)) {
		p->fate = FATE_KEEP;
		res->rejected_pool_full++;
		return;
	}
	/* No tier to drain it: full is full, until restores give room back. */
	if (!c->wb && ec->pool_limit && zpool_total_size(c->pool) >= ec->pool_limit) {
		p->fate = FATE_KEEP;
		res->rejected_pool_full++;
		return;
	}
	len = uzc_compress(ec->zc, page, ec->cbuf, sizeof(ec->cbuf));
	/* With max_compressed near 4096 a page can compress yet not fit with its header. */
	p->raw = len <= 0 || len > ZPOOL_MAX_OBJECT - UZD_OBJ_HDR_SIZE;
	if (p->raw)
		ret = pool_put_raw(c, r, p, page);
	else
		ret = pool_put(c, r, p, codec, src, (uint32_t)len);
	if (ret == -ENOMEM || ret == -ENOSPC) {
		p->fate = FATE_KEEP;
		res->rejected_pool_full++;
	} else if (ret < 0) {
		p->fate = FATE_KEEP;
		reject_error(res, 1, "storing in the pool", ret);
	}
}

static void store(struct uzd_evict_ctx *ec, struct uzd_client *c, const struct uzd_region *r,
		  struct uzd_evict_result *res)
{
	for (size_t i = 0; i < ec->n; i++)
		if (ec->pg[i].fate == FATE_CLAIMED)
			store_page(ec, c, r, i, res);
}

/* ---- 5. punch ---- */

/* Undo a store whose page could not be punched: it stays resident. */
static void unstore(struct uzd_client *c, struct evict_page *p)
{
	if (p->fate == FATE_POOL)
		uzd_client_pool_free(c, p->handle, p->raw);
	p->fate = FATE_KEEP;
}

static void punch(struct uzd_evict_ctx *ec, struct uzd_client *c, const struct uzd_region *r,
		  struct uzd_evict_result *res)
{
	const int mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	size_t i = 0, j;

	while (i < ec->n) {
		if (!stored(&ec->pg[i])) {
			i++;
			continue;
		}
		j = stored_run_end(ec, i);
		if (fallocate(r->memfd, mode, page_off(r, ec->pg[i].idx),
			      (off_t)((j - i) << UZD_PAGE_SHIFT)) < 0) {
			reject_error(res, j - i, "punching the memfd", -errno);
			for (size_t k = i; k < j; k++)
				unstore(c, &ec->pg[k]);
		}
		i = j;
	}
}

/* ---- 6. publish or abort ---- */

/*
 * The client's pool_bytes count the object before it is published: once it
 * is, a fault may restore it, or a drop release it, and subtract its bytes
 * at once (counting after would let the counter wrap below zero).
 */
static void publish_page(struct uzd_client *c, struct uzd_region *r, struct evict_page *p,
			 struct uzd_evict_result *res)
{
	if (p->fate == FATE_POOL)
		stat_add(&c->stats.pool_bytes, p->bytes);
	if (uzd_region_publish(r, p->idx, p->val) == UZD_ENTRY_DROPPED) {
		/* The range was dropped meanwhile: the object is ours to free. */
		if (p->fate == FATE_POOL) {
			uzd_client_pool_free(c, p->handle, p->raw);
			__atomic_fetch_sub(&c->stats.pool_bytes, p->bytes, __ATOMIC_RELAXED);
		}
		res->dropped++;
		return;
	}
	res->evicted++;
	if (p->fate == FATE_SAME) {
		res->same++;
		return;
	}
	res->pool++;
	res->raw += p->raw;
	res->pool_bytes += p->bytes;
}

static void settle(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
		   struct uzd_evict_result *res)
{
	for (size_t i = 0; i < ec->n; i++) {
		struct evict_page *p = &ec->pg[i];

		if (stored(p))
			publish_page(c, r, p, res);
		else /* DROPPED or not, a RESIDENT page holds no payload to free */
			uzd_region_abort(r, p->idx, p->old);
	}
}

static void abort_all(struct uzd_evict_ctx *ec, struct uzd_region *r)
{
	for (size_t i = 0; i < ec->n; i++)
		uzd_region_abort(r, ec->pg[i].idx, ec->pg[i].old);
}

static void account(struct uzd_client *c, const struct uzd_evict_result *res)
{
	stat_add(&c->stats.evicted_same, res->same);
	stat_add(&c->stats.evicted_pool, res->pool);
	stat_add(&c->stats.rejected_pool_full, res->rejected_pool_full);
	stat_add(&c->stats.rejected_busy, res->rejected_busy);
	stat_add(&c->stats.rejected_error, res->rejected_error);
}

int uzd_evict_batch(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
		    const size_t *pgidx, size_t n, struct uzd_evict_result *res)
{
	size_t m, nfenced;
	int ret;

	memset(res, 0, sizeof(*res));
	if (n > UZD_EVICT_BATCH)
		return -EINVAL;
	/* The fork fence (daemon/fork.h): our unfence would lift it.  Retried next round. */
	if (__atomic_load_n(&c->forking, __ATOMIC_ACQUIRE))
		return -EAGAIN;
	ret = sort_input(ec, r, pgidx, n, &m);
	if (ret < 0)
		return ret;
	ec->n = 0;
	for (size_t i = 0; i < m; i++)
		claim_page(ec, c, r, ec->sorted[i], res);
	if (ec->n) {
		ret = fence(ec, c, r, &nfenced);
		if (ret < 0) {
			/* Nothing captured yet: lift what was fenced, put every page back. */
			for_each_run(ec, c, r, nfenced, unfence_run);
			abort_all(ec, r);
			for_each_run(ec, c, r, ec->n, wake_run);
			account(c, res);
			return ret;
		}
		capture(ec, r, res);
		store(ec, c, r, res);
		punch(ec, c, r, res);
		for_each_run(ec, c, r, ec->n, unfence_run);
		settle(ec, c, r, res);
		for_each_run(ec, c, r, ec->n, wake_run);
	}
	account(c, res);
	return 0;
}
