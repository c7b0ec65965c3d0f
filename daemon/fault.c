/* SPDX-License-Identifier: MIT */
/*
 * daemon/fault.c - serve one client's page faults (see fault.h).
 *
 * struct uzd_fault_ctx is everything one fault thread owns: a codec
 * context and a page buffer for decompression, a queue of fault messages
 * read but not yet served (each with the time it was read, the start of
 * its service time), a batch buffer for reads, its counters and its log
 * rate limiter.  Nothing in it is shared, so nothing in it is locked.
 *
 * Messages are read in batches; each batch is reordered events first and
 * its events are handled at once (design.md §1: until an event is read a
 * fill returns -EAGAIN, and a fault may lie in a range it removed); its
 * faults join the queue.  Serving a fault takes the client's region table
 * read lock for lookup..publish, as region.h requires, and drops it
 * before reading messages again, because an UNMAP takes the write lock.
 *
 * EAGAIN.  A fill that returns -EAGAIN gives its claim back (abort: the
 * page keeps its payload), reads and handles pending events, sleeps a
 * little when there were none (uffd.h: the condition can outlast the read
 * until the client thread that raised the event resumes) and tries again,
 * FAULT_EAGAIN_TRIES times.  If it still fails, the thread is woken
 * instead: it faults again and the kernel queues a fresh message, so no
 * fault is ever lost.  A fault whose range is gone (-ENOENT) is woken too:
 * the kernel finds no registered range and the thread gets the outcome
 * its access deserves (SIGSEGV for unmapped memory).
 *
 * A FILE page is read with one pread (or copied from the staging buffer
 * while its write is in flight), checked (checksum, owner, length),
 * decompressed and installed; its record is freed like a pool object.  A
 * record that cannot be read or does not check out is logged with the
 * client and address and its page poisoned: only a thread touching that
 * page gets SIGBUS.
 *
 * Never: touch client memory except through uffd calls; install bytes we
 * cannot vouch for (poison instead); hold a pool mapping across a uffd
 * call; wait for an eviction (a BUSY page is the evictor's to wake).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compress/codec.h"
#include "daemon/fault.h"
#include "daemon/io.h"
#include "daemon/object.h"
#include "daemon/uffd.h"
#include "daemon/writeback.h"

#define FAULT_BATCH 32		    /* messages per read(2) */
#define FAULT_QUEUE_INIT 64	    /* queued faults before the queue grows */
#define FAULT_EAGAIN_TRIES 64	    /* fill attempts on -EAGAIN ... */
#define FAULT_EAGAIN_SLEEP_NS 20000 /* ... 20 us apart: >1 ms in all */
#define FAULT_LOG_BURST 10	    /* log lines per second, then quiet */
/*
 * Reads per drain: a client whose threads fault without pause would keep
 * its uffd readable forever, and every other client of the fault thread
 * would wait (measured: 256 ms stalls); the thread's level-triggered epoll
 * brings it back to what is left after the others had their turn.
 */
#define FAULT_DRAIN_READS 4

#define PAGE_MASK_ (~(uint64_t)(UZD_PAGE_SIZE - 1))

/* Not an errno: the fault was left for the eviction that owns the page. */
#define FAULT_LEFT 2

/* A fault read but not yet served, with the time it was read. */
struct queued_fault {
	uint64_t addr;
	uint64_t flags;
	uint64_t t0;
};

/*
 *  uzc     decompresses any codec
 *  page    UZD_PAGE_SIZE bytes, page-aligned: the bytes about to be copied
 *  rec     a backing-file record read for a FILE fault (UZD_BFILE_REC_MAX)
 *  q       queued faults q[head..tail), capacity qcap (grows, never shrinks)
 *  batch   one read(2) worth of messages
 *  kind    set by the serve_* function that filled a page, for its histogram
 *  cluster 2^page_cluster: the most pages a fault that continues a run fills
 *          (1: no readahead; see ahead_wanted())
 *  fill_mode  UFFDIO_COPY_MODE_DONTWAKE while a fault's pages ahead are
 *          still to be filled, else 0: the mode of the faulting page's fill
 *  log_*   rate limiter: lines logged in the second starting at log_sec
 */
struct uzd_fault_ctx {
	struct uzc_ctx *uzc;
	unsigned char *page;
	unsigned char *rec;
	struct queued_fault *q;
	size_t head, tail, qcap;
	struct uffd_msg batch[FAULT_BATCH];
	struct uzd_fault_stats stats;
	enum uzd_fault_kind kind; /* what the last fault served restored */
	unsigned int cluster;	  /* readahead: pages filled together, a power of two */
	uint64_t fill_mode;
	uint64_t log_sec;
	unsigned int log_lines, log_quiet;
};

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void stat_add(uint64_t *counter, uint64_t v)
{
	__atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

static void flog(struct uzd_fault_ctx *fc, const struct uzd_client *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * A client can make faults fail at will (unmapping under them), so lines
 * are rate-limited per thread; the count of those held back is said later.
 */
static void flog(struct uzd_fault_ctx *fc, const struct uzd_client *c, const char *fmt, ...)
{
	uint64_t sec = now_ns() / 1000000000u;
	char line[256];
	va_list ap;

	if (sec != fc->log_sec) {
		if (fc->log_quiet)
			fprintf(stderr, "uzswapd: fault: %u similar messages suppressed\n",
				fc->log_quiet);
		fc->log_sec = sec;
		fc->log_lines = 0;
		fc->log_quiet = 0;
	}
	if (fc->log_lines++ >= FAULT_LOG_BURST) {
		fc->log_quiet++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uzswapd: client %" PRIu32 " (pid %d): %s\n", c->id, (int)c->pid, line);
}

/* ---- context ---- */

int uzd_fault_ctx_new(const struct uzc_spec *spec, struct uzd_fault_ctx **out)
{
	struct uzc_spec lz4 = { .id = UZC_CODEC_LZ4, .level = 0 };
	struct uzd_fault_ctx *fc;
	int r;

	fc = calloc(1, sizeof(*fc));
	if (!fc)
		return -ENOMEM;
	fc->page = aligned_alloc(UZD_PAGE_SIZE, UZD_PAGE_SIZE);
	fc->rec = malloc(UZD_BFILE_REC_MAX);
	fc->qcap = FAULT_QUEUE_INIT;
	fc->q = calloc(fc->qcap, sizeof(*fc->q));
	if (!fc->page || !fc->rec || !fc->q) {
		r = -ENOMEM;
		goto err_free;
	}
	r = uzc_ctx_new(spec ? spec : &lz4, UZC_DEFAULT_MAX_LEN, &fc->uzc);
	if (r < 0)
		goto err_free;
	fc->cluster = 1;
	*out = fc;
	return 0;

err_free:
	free(fc->q);
	free(fc->rec);
	free(fc->page);
	free(fc);
	return r;
}

int uzd_fault_ctx_set_cluster(struct uzd_fault_ctx *fc, unsigned int page_cluster)
{
	if (page_cluster > UZD_FAULT_MAX_CLUSTER)
		return -EINVAL;
	fc->cluster = 1u << page_cluster;
	return 0;
}

void uzd_fault_ctx_free(struct uzd_fault_ctx *fc)
{
	if (!fc)
		return;
	uzc_ctx_free(fc->uzc);
	free(fc->q);
	free(fc->rec);
	free(fc->page);
	free(fc);
}

const struct uzd_fault_stats *uzd_fault_stats(const struct uzd_fault_ctx *fc)
{
	return &fc->stats;
}

/* ---- non-fault events ---- */

static void event_remove(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t start,
			 uint64_t end)
{
	int r = uzd_region_drop_range(&c->regions, start, end - start, uzd_client_release, c, NULL);

	if (r < 0)
		flog(fc, c, "remove [%#" PRIx64 ", %#" PRIx64 "): %s", start, end, strerror(-r));
}

static void event_unmap(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t start,
			uint64_t end)
{
	int r = uzd_region_unmap_range(&c->regions, start, end - start, uzd_client_release, c,
				       NULL);

	if (r < 0)
		flog(fc, c, "unmap [%#" PRIx64 ", %#" PRIx64 "): %s", start, end, strerror(-r));
}

/* What page_moved() needs: the client, and the fault thread's record buffer. */
struct moved_ctx {
	struct uzd_fault_ctx *fc;
	struct uzd_client *c;
};

/* A pool object's header learns its page's new address. */
static void readdress_object(struct uzd_client *c, unsigned long handle, uint64_t addr)
{
	struct uzd_obj_hdr h;
	unsigned char *obj;

	obj = zpool_map(c->pool, handle, ZPOOL_MM_RW);
	if (!obj)
		return;
	uzd_obj_hdr_read(obj, &h);
	h.addr = (uintptr_t)addr;
	uzd_obj_hdr_write(obj, &h);
	zpool_unmap(c->pool, handle);
}

/* A pool object for record @h with payload @payload, naming page @addr; 0 or -errno. */
static int record_to_object(struct uzd_client *c, const struct uzd_bfile_rec *h,
			    const unsigned char *payload, uint64_t addr, unsigned long *handle,
			    uint64_t *bytes)
{
	bool raw = h->codec == UZC_CODEC_RAW;
	struct uzd_obj_hdr oh = {
		.addr = (uintptr_t)addr, .codec = h->codec, .len = h->len, .client_id = c->id
	};
	unsigned char *obj;
	int ret;

	*bytes = raw ? UZD_PAGE_SIZE : UZD_OBJ_HDR_SIZE + h->len;
	if (raw && h->len != UZD_PAGE_SIZE)
		return -EBADMSG;
	ret = zpool_malloc(c->pool, *bytes, handle);
	if (ret < 0)
		return ret;
	obj = zpool_map(c->pool, *handle, ZPOOL_MM_WO);
	if (!obj) {
		zpool_free(c->pool, *handle);
		return -EFAULT;
	}
	oh.evict_seq = __atomic_load_n(&c->evict_seq, __ATOMIC_RELAXED);
	if (raw) {
		memcpy(obj, payload, UZD_PAGE_SIZE);
	} else {
		uzd_obj_hdr_write(obj, &oh);
		memcpy(obj + UZD_OBJ_HDR_SIZE, payload, h->len);
	}
	zpool_unmap(c->pool, *handle);
	if (raw && uzd_wb_raw_stored(c->wb, *handle, c->id, addr) < 0) {
		zpool_free(c->pool, *handle);
		return -ENOMEM;
	}
	return 0;
}

/* The record @h read into fc->rec, as a pool object naming @addr in @r's entry; 0 or -errno. */
static int file_to_pool(struct moved_ctx *m, struct uzd_region *r, size_t pgidx, uint64_t entry,
			uint64_t addr, const struct uzd_bfile_rec *h)
{
	bool raw = h->codec == UZC_CODEC_RAW;
	struct uzd_client *c = m->c;
	unsigned long handle;
	uint64_t bytes = 0;
	int ret;

	ret = record_to_object(c, h, m->fc->rec + UZD_BFILE_HDR, addr, &handle, &bytes);
	if (ret < 0)
		return ret;
	ret = uzd_region_repoint(r, pgidx, entry,
				 uzd_entry_make_pool(handle, raw ? UZD_ENTRY_RAW : 0));
	if (ret < 0) {
		uzd_client_pool_free(c, handle, raw);
		return ret;
	}
	stat_add(&c->stats.pool_bytes, bytes);
	return 0;
}

/*
 * No room for an object: the record @h read into fc->rec goes back into
 * the memfd as the page itself, RESIDENT (the client maps it from the page
 * cache on its next touch, no fault to serve), and reclaim evicts it again
 * in its turn.  0 or -errno, with the memfd's page punched again.
 *
 * The one place, with the fork copy (daemon/fork.c), where the daemon
 * writes a client's memfd rather than filling through its userfaultfd:
 * safe under the table's write lock, which keeps every fence and fault of
 * the page away, and the write goes through no registered mapping.  The
 * page is charged to the daemon's memory cgroup until it is evicted again,
 * and a large move can take the client over its budget for a round: the
 * price of not poisoning a page whose record is intact.
 */
static int file_to_memfd(struct moved_ctx *m, struct uzd_region *r, size_t pgidx, uint64_t entry,
			 uint64_t addr, const struct uzd_bfile_rec *h)
{
	const unsigned char *payload = m->fc->rec + UZD_BFILE_HDR;
	off_t off = (off_t)(r->memfd_off + pgidx * UZD_PAGE_SIZE);
	int ret;

	if (h->codec == UZC_CODEC_RAW)
		memcpy(m->fc->page, payload, UZD_PAGE_SIZE);
	else if (uzc_decompress(m->fc->uzc, h->codec, payload, h->len, m->fc->page) < 0)
		return -EBADMSG;
	ret = uzd_pwrite_all(r->memfd, m->fc->page, UZD_PAGE_SIZE, off);
	if (ret == 0)
		ret = uzd_region_repoint(r, pgidx, entry, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	if (ret < 0) {
		/* The entry still says FILE: the memfd must hold nothing there. */
		fallocate(r->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, UZD_PAGE_SIZE);
		return ret;
	}
	uzd_lru_push(&m->c->lru, addr);
	return 0;
}

/*
 * A FILE page moved: its record names the old address, which a restore
 * checks and the cleaner finds the page by (bfile.h), and a record on disk
 * cannot be rewritten in place while its write may be in flight.  So the
 * page comes back into the pool, as an object naming the new address, or,
 * when the pool has no room for it, into the memfd, and the record goes;
 * writeback (or reclaim) takes it out again in its turn.  A record that
 * cannot be read leaves the page in the file and says so: its restore
 * will then refuse the record rather than guess.
 */
static void file_moved(struct moved_ctx *m, struct uzd_region *r, size_t pgidx, uint64_t entry,
		       uint64_t addr)
{
	uint64_t slot = uzd_entry_file_slot(entry);
	struct uzd_client *c = m->c;
	struct uzd_bfile_rec h;
	int ret = -ENODEV;

	if (c->wb)
		ret = uzd_wb_read(c->wb, slot, m->fc->rec, &h);
	if (ret == 0 && h.client_id != c->id)
		ret = -EXDEV;
	if (ret == 0) {
		ret = file_to_pool(m, r, pgidx, entry, addr, &h);
		if (ret == -ENOMEM || ret == -ENOSPC)
			ret = file_to_memfd(m, r, pgidx, entry, addr, &h);
	}
	if (ret == 0) {
		uzd_wb_file_freed(c->wb, c, slot);
		return;
	}
	flog(m->fc, c, "mremap: page now at %#" PRIx64 ": bringing its file record back: %s", addr,
	     ret == -EXDEV ? "the record names another client" : strerror(-ret));
}

/*
 * A page of a region that mremap moved, at its new address now: a resident
 * page joins the fault-in queue there (its old address in the queue is a
 * stale hint, lru.h); a pool object's header, or the owner table entry of
 * a RAW object, learns the new address, which the fault path checks and
 * writeback uses to find the page (object.h, rawtab.h); a FILE page comes
 * back to the pool (file_moved).  A SHARED payload names a relative and
 * stays as it is: its restore does not check the owner (daemon/fork.c), and
 * writeback never takes it.  The write lock is held: no fault or eviction
 * owns the page.
 */
static void page_moved(struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg)
{
	struct moved_ctx *m = arg;
	uint64_t addr = r->start + pgidx * UZD_PAGE_SIZE;
	unsigned int flags = uzd_entry_flags(entry);

	switch (uzd_entry_state(entry)) {
	case UZD_ENTRY_RESIDENT:
		uzd_lru_push(&m->c->lru, addr);
		break;
	case UZD_ENTRY_POOL:
		if (flags & UZD_ENTRY_SHARED)
			break;
		if (!(flags & UZD_ENTRY_RAW))
			readdress_object(m->c, uzd_entry_pool_handle(entry), addr);
		else if (m->c->wb)
			uzd_wb_raw_stored(m->c->wb, uzd_entry_pool_handle(entry), m->c->id, addr);
		break;
	case UZD_ENTRY_FILE:
		if (!(flags & UZD_ENTRY_SHARED))
			file_moved(m, r, pgidx, entry, addr);
		break;
	default:
		break;
	}
}

/*
 * mremap moved [from, from + len) to [to, ...): the regions there follow,
 * with their evicted pages (the part past len, when it grew, is the
 * client's to REGISTER).  The client keeps the memfd offsets, so nothing
 * of the memfd moves.
 */
static void event_remap(struct uzd_fault_ctx *fc, struct uzd_client *c, const struct uffd_msg *m)
{
	uint64_t from = m->arg.remap.from, to = m->arg.remap.to, len = m->arg.remap.len;
	struct moved_ctx mc = { .fc = fc, .c = c };
	int r = uzd_region_move_range(&c->regions, from, to, len, uzd_client_release, page_moved,
				      &mc);

	if (r < 0)
		flog(fc, c,
		     "mremap [%#" PRIx64 ", +%#" PRIx64 ") to %#" PRIx64
		     ": %s: its pages were dropped",
		     from, len, to, strerror(-r));
}

static void handle_event(struct uzd_fault_ctx *fc, struct uzd_client *c, const struct uffd_msg *m)
{
	fc->stats.events++;
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
		event_remove(fc, c, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		event_unmap(fc, c, m->arg.remove.start, m->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		event_remap(fc, c, m);
		break;
	case UFFD_EVENT_FORK:
		/* Refused at SET_UFFD (uzd_uffd_check); the child's descriptor is ours now. */
		close((int)m->arg.fork.ufd);
		flog(fc, c, "unexpected userfaultfd fork event: its descriptor closed");
		break;
	default:
		flog(fc, c, "unexpected userfaultfd event %s", uzd_uffd_event_name(m->event));
		break;
	}
}

/* ---- reading messages ---- */

static int queue_push(struct uzd_fault_ctx *fc, const struct uffd_msg *m, uint64_t t0)
{
	struct queued_fault *q;

	if (fc->head && fc->tail == fc->qcap) {
		memmove(fc->q, fc->q + fc->head, (fc->tail - fc->head) * sizeof(*fc->q));
		fc->tail -= fc->head;
		fc->head = 0;
	}
	if (fc->tail == fc->qcap) {
		q = realloc(fc->q, 2 * fc->qcap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		fc->q = q;
		fc->qcap *= 2;
	}
	fc->q[fc->tail++] = (struct queued_fault){ .addr = m->arg.pagefault.address,
						   .flags = m->arg.pagefault.flags,
						   .t0 = t0 };
	return 0;
}

/*
 * One read(2): handle its events, queue its faults.  *got: messages read.
 * A fault that cannot be queued (no memory) is woken instead, so that its
 * thread faults again later.
 */
static int read_batch(struct uzd_fault_ctx *fc, struct uzd_client *c, size_t *got)
{
	size_t n, nev;
	uint64_t t0;
	int r;

	/*
	 * The client thread that raised an event runs again as soon as it is
	 * read, before it is handled: events_busy covers the gap, so that the
	 * server handles none of the client's requests in between (client.h).
	 */
	__atomic_store_n(&c->events_busy, true, __ATOMIC_SEQ_CST);
	r = uzd_uffd_read_events(c->uffd, fc->batch, FAULT_BATCH, &n);
	*got = n;
	if (r < 0 || n == 0) {
		__atomic_store_n(&c->events_busy, false, __ATOMIC_RELEASE);
		return r;
	}
	t0 = now_ns();
	nev = uzd_uffd_events_first(fc->batch, n);
	for (size_t i = 0; i < nev; i++)
		handle_event(fc, c, &fc->batch[i]);
	__atomic_store_n(&c->events_busy, false, __ATOMIC_RELEASE);
	for (size_t i = nev; i < n; i++) {
		if (queue_push(fc, &fc->batch[i], t0) < 0)
			uzd_uffd_wake(c->uffd, fc->batch[i].arg.pagefault.address & PAGE_MASK_,
				      UZD_PAGE_SIZE);
	}
	return 0;
}

/* ---- serving one MISSING fault ---- */

/*
 * The refault distance is the number of this client's evictions between
 * the page's eviction and this fault (a wrapping 32-bit clock).  Had the
 * page stayed resident, it would have been evicted only after about as
 * many evictions as the client keeps pages resident; a refault within fewer
 * means the page would still be in memory under plain LRU: it is hot and
 * eviction should pass it over (the kernel's workingset detection,
 * design.md §2).  The yardstick is the client's budget, which reclaim
 * keeps in hot_distance, not the resident count of the moment: a resident
 * set that overshoots its budget would otherwise call more refaults hot,
 * protect more pages and overshoot further.
 */
static bool refault_is_hot(struct uzd_client *c, uint32_t evicted_at)
{
	uint32_t distance = __atomic_load_n(&c->evict_seq, __ATOMIC_RELAXED) - evicted_at;

	return distance < __atomic_load_n(&c->hot_distance, __ATOMIC_RELAXED);
}

/* Load a pool object into fc->page; 0, -EBADMSG (corrupt) or -EXDEV (not this page's). */
static int load_object(struct uzd_fault_ctx *fc, struct uzd_client *c, unsigned long handle,
		       uint64_t addr, bool shared, struct uzd_obj_hdr *h)
{
	const unsigned char *obj;
	int r;

	obj = zpool_map(c->pool, handle, ZPOOL_MM_RO);
	if (!obj)
		return -EBADMSG;
	uzd_obj_hdr_read(obj, h);
	/* A SHARED object's header names the relative that evicted it (daemon/fork.c). */
	if (!shared && (h->client_id != c->id || h->addr != addr))
		r = -EXDEV;
	else
		r = uzc_decompress(fc->uzc, h->codec, obj + UZD_OBJ_HDR_SIZE, h->len, fc->page);
	zpool_unmap(c->pool, handle);
	return r == -EINVAL ? -EBADMSG : r;
}

/*
 * The range was dropped (MADV_REMOVE/DONTNEED) while we held the page: the
 * client asked for its contents to go and will read zeros there, but the
 * page we just installed shows the old data.  Punch it from the memfd:
 * the client's next access faults, finds EMPTY and gets zeros.
 *
 * Why that is safe.  Only a thread other than this one can mark our claim
 * DROPPED (this one reads events only while it holds no claim), so the
 * drop and our fill overlap in time, and the client cannot rely on any
 * order between them except this one: once its drop is acknowledged, its
 * page reads zeros.  The punch restores exactly that.  What it could take
 * away is a write the client made after the acknowledgement into the page
 * we installed, in the instructions between our UFFDIO_COPY and our
 * publish: that needs a drop from another thread (a second fault thread
 * on this client, or the server handling the client's own drop message)
 * to finish inside that window.  Restoring with UFFDIO_COPY_MODE_WP and
 * unprotecting after the publish would close it, for an extra ioctl on
 * every fault; with one thread serving a client's events it cannot happen.
 * A page that was filled with zeros needs no punch: zeros are what the
 * dropped page reads anyway, so nothing written after the drop is at risk.
 */
static void punch_dropped(struct uzd_fault_ctx *fc, struct uzd_client *c,
			  const struct uzd_region *r, size_t pgidx)
{
	off_t off = (off_t)(r->memfd_off + pgidx * UZD_PAGE_SIZE);

	if (fallocate(r->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
		      (off_t)UZD_PAGE_SIZE) < 0)
		flog(fc, c, "region %" PRIu32 ": punching dropped page %#" PRIxPTR ": %s", r->id,
		     r->start + pgidx * UZD_PAGE_SIZE, strerror(errno));
}

/* The fill failed: hand the page back as it was. */
static void give_back(struct uzd_client *c, struct uzd_region *r, size_t pgidx, uint64_t old)
{
	if (uzd_region_abort(r, pgidx, old) == UZD_ENTRY_DROPPED)
		uzd_client_release(r, pgidx, old, c);
}

/* The page is in the client now: settle the entry.  zeros: it was filled with zeros. */
static void settle(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
		   size_t pgidx, uint64_t new_value, bool zeros)
{
	if (uzd_region_publish(r, pgidx, new_value) != UZD_ENTRY_DROPPED) {
		/*
		 * Queued for reclaim: a HOT page on the protected queue, any
		 * other on probation (daemon/reclaim.c); a lost push is found
		 * by reclaim's rebuild (lru.h).
		 */
		uzd_lru_push(uzd_entry_flags(new_value) & UZD_ENTRY_HOT ? &c->hot : &c->lru,
			     r->start + pgidx * UZD_PAGE_SIZE);
		return;
	}
	fc->stats.dropped++;
	if (!zeros)
		punch_dropped(fc, c, r, pgidx);
}

/*
 * Poison the page: the client thread touching it gets SIGBUS and nobody
 * else is affected (design.md §1).  Never a zero page where data was.
 */
static int poison(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t addr)
{
	int r = uzd_uffd_poison(c->uffd, addr, UZD_PAGE_SIZE, 0);

	if (r >= 0) {
		fc->stats.poisoned++;
		stat_add(&c->stats.poisoned, 1);
	}
	return r;
}

/*
 * A pool object that cannot give this page back.  Corrupt: it is the
 * page's own, so the entry keeps it (the bytes may help a post-mortem; a
 * drop frees it).  Foreign: it may be another page's live object, so the
 * entry lets go of it without freeing it (a leak is the safe side of this
 * daemon bug) and becomes EMPTY; the poison marker, which only a zap of the
 * page (a drop) removes, keeps that from ever reading as zeros.
 */
static int serve_bad_object(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			    size_t pgidx, uint64_t old, uint64_t addr, int why,
			    const struct uzd_obj_hdr *h)
{
	unsigned long handle = uzd_entry_pool_handle(old);
	int ret;

	if (why == -EXDEV) {
		fc->stats.foreign++;
		flog(fc, c,
		     "BUG: pool object %#lx for page %#" PRIx64 " belongs to client %" PRIu32
		     " page %#" PRIxPTR ": poisoning the page",
		     handle, addr, h->client_id, h->addr);
	} else {
		fc->stats.corrupt++;
		flog(fc, c,
		     "page %#" PRIx64 ": pool object %#lx (%s, %" PRIu32
		     " bytes) does not decompress: poisoning the page",
		     addr, handle, uzc_codec_name(h->codec) ? uzc_codec_name(h->codec) : "?",
		     h->len);
	}
	ret = poison(fc, c, addr);
	if (ret < 0 || why != -EXDEV)
		give_back(c, r, pgidx, old);
	else
		uzd_region_publish(r, pgidx, 0);
	return ret;
}

/*
 * A RAW object is the page itself (daemon/object.h): copied out rather than
 * installed from the mapping, since a pool mapping is never held across a
 * uffd call.  It has no header to check or to give a refault distance.
 */
static int load_raw(struct uzd_fault_ctx *fc, struct uzd_client *c, unsigned long handle)
{
	const unsigned char *obj = zpool_map(c->pool, handle, ZPOOL_MM_RO);

	if (!obj)
		return -EBADMSG;
	memcpy(fc->page, obj, UZD_PAGE_SIZE);
	zpool_unmap(c->pool, handle);
	return 0;
}

/*
 * Copy the page loaded into fc->page in at @addr, for the entry @old held
 * (@held says what, for the log): uzd_uffd_copy()'s result.  On failure the
 * entry goes back to @old.
 */
static int install_loaded(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			  size_t pgidx, uint64_t old, uint64_t addr, const char *held)
{
	int ret = uzd_uffd_copy(c->uffd, addr, fc->page, UZD_PAGE_SIZE, fc->fill_mode);

	if (ret < 0) {
		give_back(c, r, pgidx, old);
		return ret;
	}
	if (ret == UZD_UFFD_EXISTED)
		flog(fc, c,
		     "BUG: page %#" PRIx64 " was present while its entry held %s "
		     "(written through another mapping?): keeping the present page",
		     addr, held);
	return ret;
}

/*
 * The page of POOL entry @old into fc->page: a RAW object copied, any other
 * decompressed, its header into *@h.  *@bytes: what the object counts in
 * pool_bytes, for its free.  0, or load_object()'s -EBADMSG or -EXDEV.
 */
static int load_pool_page(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t old,
			  uint64_t addr, struct uzd_obj_hdr *h, uint64_t *bytes)
{
	unsigned long handle = uzd_entry_pool_handle(old);
	int ret;

	if (uzd_entry_flags(old) & UZD_ENTRY_RAW) {
		*bytes = UZD_PAGE_SIZE;
		return load_raw(fc, c, handle);
	}
	ret = load_object(fc, c, handle, addr, uzd_entry_flags(old) & UZD_ENTRY_SHARED, h);
	*bytes = UZD_OBJ_HDR_SIZE + h->len;
	return ret;
}

static int serve_pool(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
		      size_t pgidx, uint64_t old, uint64_t addr)
{
	struct uzd_obj_hdr h = { .codec = UZC_CODEC_RAW, .len = UZD_PAGE_SIZE };
	unsigned int flags = 0;
	uint64_t bytes;
	int ret;

	ret = load_pool_page(fc, c, old, addr, &h, &bytes);
	if (ret < 0)
		return serve_bad_object(fc, c, r, pgidx, old, addr, ret, &h);
	ret = install_loaded(fc, c, r, pgidx, old, addr, "a pool object");
	if (ret < 0)
		return ret;
	/* Exclusive load: the page lives in the client now, the object goes (if ours alone). */
	uzd_client_free_object(c, old, bytes);
	stat_add(&c->stats.faults_pool, 1);
	fc->kind = UZD_FAULT_POOL;
	if (!(uzd_entry_flags(old) & UZD_ENTRY_RAW) && refault_is_hot(c, h.evict_seq)) {
		flags = UZD_ENTRY_HOT;
		stat_add(&c->stats.refaults_hot, 1);
	}
	settle(fc, c, r, pgidx, uzd_entry_make(UZD_ENTRY_RESIDENT, flags, 0), false);
	return ret;
}

/*
 * The record of a FILE page into fc->page: read (from memory while its
 * write is in flight), checked, decompressed.  0; -EXDEV when the record
 * names another page (a daemon bug); -EBADMSG when it does not decompress;
 * else what uzd_wb_read() said (-ENODATA short, -EBADMSG corrupt, -errno).
 */
static int load_file(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t slot, uint64_t addr,
		     bool shared, struct uzd_bfile_rec *h)
{
	const unsigned char *payload = fc->rec + UZD_BFILE_HDR;
	int r = uzd_wb_read(c->wb, slot, fc->rec, h);

	if (r < 0)
		return r;
	/* A SHARED record names the relative that wrote it back (daemon/fork.c). */
	if (!shared && (h->client_id != c->id || h->addr != addr))
		return -EXDEV;
	if (h->codec == UZC_CODEC_RAW) {
		if (h->len != UZD_PAGE_SIZE)
			return -EBADMSG;
		memcpy(fc->page, payload, UZD_PAGE_SIZE);
		return 0;
	}
	r = uzc_decompress(fc->uzc, h->codec, payload, h->len, fc->page);
	return r == -EINVAL ? -EBADMSG : r;
}

static const char *file_error(int why)
{
	switch (why) {
	case -ENODATA:
		return "short read";
	case -EBADMSG:
		return "bad checksum or data";
	case -EXDEV:
		return "BUG: the record belongs to another page";
	default:
		return strerror(-why);
	}
}

/*
 * A FILE page whose record cannot give it back: poison it, so that only a
 * thread touching it gets SIGBUS (design.md §1).  The entry keeps its slot
 * (freed when the range is dropped or the client goes), as a corrupt pool
 * object keeps its handle.
 */
static int serve_bad_file(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			  size_t pgidx, uint64_t old, uint64_t addr, int why)
{
	uint64_t slot = uzd_entry_file_slot(old);
	int ret;

	fc->stats.file_lost++;
	flog(fc, c,
	     "page %#" PRIx64 ": backing file record at offset %" PRIu64 " (%" PRIu32
	     " bytes) is lost: %s; poisoning the page",
	     addr, uzd_bfile_slot_off(slot), uzd_bfile_slot_len(slot), file_error(why));
	ret = poison(fc, c, addr);
	give_back(c, r, pgidx, old);
	return ret;
}

static int serve_file(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
		      size_t pgidx, uint64_t old, uint64_t addr)
{
	uint64_t slot = uzd_entry_file_slot(old);
	struct uzd_bfile_rec h;
	int ret;

	if (!c->wb) {
		give_back(c, r, pgidx, old);
		return poison(fc, c, addr);
	}
	ret = load_file(fc, c, slot, addr, uzd_entry_flags(old) & UZD_ENTRY_SHARED, &h);
	if (ret < 0)
		return serve_bad_file(fc, c, r, pgidx, old, addr, ret);
	ret = install_loaded(fc, c, r, pgidx, old, addr, "a file record");
	if (ret < 0)
		return ret;
	/* Exclusive load: the page lives in the client now, the record goes (if ours alone). */
	uzd_client_free_record(c, old);
	stat_add(&c->stats.faults_file, 1);
	fc->kind = UZD_FAULT_FILE;
	settle(fc, c, r, pgidx, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0), false);
	return ret;
}

/* ---- sequential readahead ---- */

/*
 * A fault at the address where its region's last fault ended (the page
 * after it and after the pages it filled ahead) continues a run, and fills
 * pages ahead of itself: 1 for the run's second fault, then twice as many
 * as the last one filled, up to cluster - 1, as the kernel's swap
 * readahead grows its window on hits.  Any other fault starts over.  So a
 * client that reads or first touches its memory in order takes one fault
 * per 2^page_cluster pages, and one that touches it at random is never
 * given pages it did not ask for.
 *
 * The pages ahead are filled before the faulting thread is woken (its own
 * page and theirs with DONTWAKE, then one wake): woken first, it runs at
 * once on this CPU, touches the next page before it is in and faults on
 * it, a switch per page (faultbench readahead_seq: 56,000 restores a second
 * that way, 92,000 this way, 25,000-32,000 with no readahead).
 */
static size_t ahead_wanted(const struct uzd_fault_ctx *fc, const struct uzd_region *r,
			   uint64_t addr)
{
	size_t most = fc->cluster - 1;

	if (!most || addr != r->ra_next)
		return 0;
	if (!r->ra_ahead)
		return 1;
	return 2 * r->ra_ahead < most ? 2 * r->ra_ahead : most;
}

/*
 * Fill page @pgidx ahead of a fault: from the pool when @state is POOL,
 * with zeros when EMPTY, without waking.  A page in another state, or one
 * that cannot be loaded, is left (or given back) for its own fault, and
 * never poisoned here.  Returns whether it was filled.
 */
static bool fill_ahead_one(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			   size_t pgidx, enum uzd_entry_state state)
{
	uint64_t addr = r->start + pgidx * UZD_PAGE_SIZE, old, bytes = 0;
	struct uzd_obj_hdr h = { .len = UZD_PAGE_SIZE };
	int ret;

	if (uzd_region_claim(r, pgidx, UZD_STATE_BIT(state), &old) < 0)
		return false;
	if (state == UZD_ENTRY_EMPTY) {
		ret = uzd_uffd_zeropage(c->uffd, addr, UZD_PAGE_SIZE,
					UFFDIO_ZEROPAGE_MODE_DONTWAKE);
	} else {
		ret = load_pool_page(fc, c, old, addr, &h, &bytes);
		if (ret == 0)
			ret = uzd_uffd_copy(c->uffd, addr, fc->page, UZD_PAGE_SIZE,
					    UFFDIO_COPY_MODE_DONTWAKE);
	}
	if (ret != 0) {
		give_back(c, r, pgidx, old);
		return false;
	}
	if (state == UZD_ENTRY_POOL)
		uzd_client_free_object(c, old, bytes);
	stat_add(&c->stats.readahead, 1);
	settle(fc, c, r, pgidx,
	       uzd_entry_make(UZD_ENTRY_RESIDENT,
			      state == UZD_ENTRY_EMPTY ? uzd_entry_flags(old) : 0, 0),
	       state == UZD_ENTRY_EMPTY);
	return true;
}

/* Fill up to @want pages after @pgidx that are in @state, in order; returns how many. */
static size_t fill_ahead(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			 size_t pgidx, enum uzd_entry_state state, size_t want)
{
	size_t done = 0;

	while (done < want && pgidx + 1 + done < r->npages &&
	       fill_ahead_one(fc, c, r, pgidx + 1 + done, state))
		done++;
	return done;
}

/*
 * Where @r's run goes on after the fault at @addr, which was offered @want
 * pages ahead and filled @ahead.  A fault that is offered none in the
 * middle of a run (a SAME or FILE page) lets the run go on past it.
 */
static void run_moved(struct uzd_region *r, uint64_t addr, size_t want, size_t ahead)
{
	if (want)
		r->ra_ahead = ahead;
	else if (addr != r->ra_next)
		r->ra_ahead = 0;
	r->ra_next = addr + (1 + ahead) * UZD_PAGE_SIZE;
}

/* EMPTY or SAME: the page is made from nothing but the entry. */
static int serve_simple(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			size_t pgidx, uint64_t old, uint64_t addr)
{
	int ret;

	if (uzd_entry_state(old) == UZD_ENTRY_EMPTY) {
		ret = uzd_uffd_zeropage(c->uffd, addr, UZD_PAGE_SIZE, fc->fill_mode);
	} else {
		uzc_page_fill(fc->page, uzd_entry_same_word(old));
		ret = uzd_uffd_copy(c->uffd, addr, fc->page, UZD_PAGE_SIZE, fc->fill_mode);
	}
	if (ret < 0) {
		give_back(c, r, pgidx, old);
		return ret;
	}
	if (uzd_entry_state(old) == UZD_ENTRY_EMPTY)
		stat_add(&c->stats.faults_zero, 1);
	else
		stat_add(&c->stats.faults_same, 1);
	fc->kind = uzd_entry_state(old) == UZD_ENTRY_EMPTY ? UZD_FAULT_ZERO : UZD_FAULT_SAME;
	settle(fc, c, r, pgidx, uzd_entry_make(UZD_ENTRY_RESIDENT, uzd_entry_flags(old), 0),
	       uzd_entry_state(old) == UZD_ENTRY_EMPTY || uzd_entry_same_word(old) == 0);
	return ret;
}

/*
 * A RESIDENT page that faults MISSING: another thread's fault restored it
 * (the memfd has the page), or the page is a hole under a RESIDENT entry.
 * The second happens when the client's MADV_REMOVE of it was read (the
 * entry dropped to EMPTY), a queued fault then filled it, and the kernel,
 * which punches only after the event is read, punched the fill away: the
 * client asked for zeros there.  Woken without a page, its thread would
 * fault again for ever.
 */
static bool resident_hole(const struct uzd_region *r, size_t pgidx)
{
	off_t off = (off_t)(r->memfd_off + pgidx * UZD_PAGE_SIZE);

	return lseek(r->memfd, off, SEEK_DATA) != off;
}

/* Zero-fill RESIDENT page @pgidx whose memfd page is gone (resident_hole()). */
static int refill_hole(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
		       size_t pgidx, uint64_t addr)
{
	uint64_t old;
	int ret;

	if (uzd_region_claim(r, pgidx, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old) < 0)
		return uzd_uffd_wake(c->uffd, addr, UZD_PAGE_SIZE);
	ret = uzd_uffd_zeropage(c->uffd, addr, UZD_PAGE_SIZE, 0);
	if (ret < 0) {
		give_back(c, r, pgidx, old);
		return ret;
	}
	fc->stats.refilled_holes++;
	settle(fc, c, r, pgidx, old, true);
	return ret;
}

/*
 * The page could not be claimed.  BUSY: an eviction owns it and will wake
 * the thread when it lets go (region.h), so do nothing.  RESIDENT: another
 * fault restored it; this message is a second thread's: wake it (or fill
 * the hole under it, above).  Any other state is unknown: poison rather
 * than zero-fill.
 */
static int serve_unclaimed(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			   size_t pgidx, int claim, uint64_t old, uint64_t addr)
{
	if (claim == -EBUSY) {
		fc->stats.busy++;
		return FAULT_LEFT;
	}
	if (uzd_entry_state(old) == UZD_ENTRY_RESIDENT) {
		if (resident_hole(r, pgidx))
			return refill_hole(fc, c, r, pgidx, addr);
		stat_add(&c->stats.faults_raced, 1);
		return uzd_uffd_wake(c->uffd, addr, UZD_PAGE_SIZE);
	}
	flog(fc, c, "page %#" PRIx64 " in state %d cannot be restored: poisoning it", addr,
	     (int)uzd_entry_state(old));
	return poison(fc, c, addr);
}

/*
 * Serve claimed page @pgidx by what its entry @old holds, filling pages
 * ahead of it, then waking its thread, when its run calls for it.  Only a
 * page filled from its entry goes on a run: a poisoned one does not.
 */
static int serve_claimed(struct uzd_fault_ctx *fc, struct uzd_client *c, struct uzd_region *r,
			 size_t pgidx, uint64_t old, uint64_t addr)
{
	enum uzd_entry_state st = uzd_entry_state(old);
	size_t want = 0, ahead = 0;
	int ret, woke;

	if (st == UZD_ENTRY_POOL || st == UZD_ENTRY_EMPTY)
		want = ahead_wanted(fc, r, addr);
	fc->fill_mode = want ? UFFDIO_COPY_MODE_DONTWAKE : 0;
	if (st == UZD_ENTRY_POOL)
		ret = serve_pool(fc, c, r, pgidx, old, addr);
	else if (st == UZD_ENTRY_FILE)
		ret = serve_file(fc, c, r, pgidx, old, addr);
	else
		ret = serve_simple(fc, c, r, pgidx, old, addr);
	fc->fill_mode = 0;
	if (want && ret >= 0) {
		if (fc->kind == UZD_FAULT_POOL || fc->kind == UZD_FAULT_ZERO)
			ahead = fill_ahead(fc, c, r, pgidx, st, want);
		woke = uzd_uffd_wake(c->uffd, addr, (1 + ahead) * UZD_PAGE_SIZE);
		if (woke == -ESRCH)
			ret = woke;
	}
	if (ret >= 0)
		run_moved(r, addr, want, ahead);
	return ret;
}

/*
 * Serve a MISSING fault at page @addr once.  Returns the fill's result:
 * 0 or UZD_UFFD_EXISTED when answered, FAULT_LEFT when an eviction will
 * answer it, -EAGAIN to be retried after
 * reading events (the entry is as it was), -ENOENT/-ESRCH when gone.
 */
static int serve_missing(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t addr)
{
	struct uzd_region *r;
	size_t pgidx;
	uint64_t old = 0;
	int ret;

	uzd_region_read_lock(&c->regions);
	if (c->forking) {
		/* The fork fence: FORK_DONE wakes the range, and the thread faults again. */
		ret = FAULT_LEFT;
		goto out;
	}
	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	if (!r) {
		/*
		 * Usually a fault queued before the UNMAP of its range: the
		 * poison then fails with -ENOENT.  If the range is still
		 * registered, the client uses memory it never gave us: we
		 * have nothing to give back, and zeros could be a lie.
		 */
		ret = poison(fc, c, addr);
		if (ret >= 0) {
			fc->stats.unmanaged++;
			flog(fc, c, "fault at %#" PRIx64 " outside its regions: poisoned", addr);
		}
		goto out;
	}
	ret = uzd_region_claim(r, pgidx,
			       UZD_STATE_BIT(UZD_ENTRY_EMPTY) | UZD_STATE_BIT(UZD_ENTRY_SAME) |
				       UZD_STATE_BIT(UZD_ENTRY_POOL) |
				       UZD_STATE_BIT(UZD_ENTRY_FILE),
			       &old);
	if (ret < 0)
		ret = serve_unclaimed(fc, c, r, pgidx, ret, old, addr);
	else
		ret = serve_claimed(fc, c, r, pgidx, old, addr);
out:
	uzd_region_read_unlock(&c->regions);
	return ret;
}

/*
 * A write hit a write-protected page.  Only eviction write-protects, and
 * while it holds the page (BUSY) it will unprotect and wake when it lets
 * go: leave those.  A settled page still protected is one an eviction had
 * to let go of without clearing its fence (an unprotect that kept failing
 * with -EAGAIN, evict.c): release the writer ourselves.  We claim the page
 * first, so that no eviction can fence it between our look and our
 * unprotect (which would lift its fence before its capture and lose a
 * write), then give it back unchanged.
 */
static int serve_wp(struct uzd_client *c, uint64_t addr)
{
	const unsigned int settled = UZD_STATE_BIT(UZD_ENTRY_EMPTY) |
				     UZD_STATE_BIT(UZD_ENTRY_RESIDENT) |
				     UZD_STATE_BIT(UZD_ENTRY_SAME) | UZD_STATE_BIT(UZD_ENTRY_POOL) |
				     UZD_STATE_BIT(UZD_ENTRY_FILE);
	struct uzd_region *r;
	uint64_t old = 0;
	size_t pgidx;
	int ret = 0;

	uzd_region_read_lock(&c->regions);
	/* Under the fork fence the protection is the fence's: FORK_DONE lifts it. */
	r = c->forking ? NULL : uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	/*
	 * No region: the range went (an UNMAP read before this message) or
	 * moved (a REMAP not read yet).  Its thread faults again and finds
	 * out; left asleep it would wait for a wake nobody sends.
	 */
	if (!r && !c->forking)
		ret = uzd_uffd_wake(c->uffd, addr, UZD_PAGE_SIZE);
	if (r && uzd_region_claim(r, pgidx, settled, &old) == 0) {
		ret = uzd_uffd_writeprotect(c->uffd, addr, UZD_PAGE_SIZE, false, true);
		give_back(c, r, pgidx, old);
		/*
		 * -EAGAIN (an event is unread): the WP message is consumed, so no
		 * other will come; wake the writer to fault again, and try again
		 * then, after the fault thread has read the event.
		 */
		if (ret < 0 && ret != -ESRCH)
			ret = uzd_uffd_wake(c->uffd, addr, UZD_PAGE_SIZE);
	}
	uzd_region_read_unlock(&c->regions);
	return ret == -ESRCH ? ret : 0;
}

static void tiny_sleep(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = FAULT_EAGAIN_SLEEP_NS };

	nanosleep(&ts, NULL);
}

/*
 * -EAGAIN: an event is in flight (uffd.h).  Read it (which handles it),
 * and retry; when none came, the event's thread has not resumed yet: wait
 * a little.  A fatal read error is returned.
 */
static int serve_retrying(struct uzd_fault_ctx *fc, struct uzd_client *c, uint64_t addr)
{
	size_t got;
	int ret, rr;

	for (int i = 0;; i++) {
		ret = serve_missing(fc, c, addr);
		if (ret != -EAGAIN || i == FAULT_EAGAIN_TRIES)
			return ret;
		fc->stats.eagain_retry++;
		rr = read_batch(fc, c, &got);
		if (rr < 0)
			return rr;
		if (!got)
			tiny_sleep();
	}
}

/* One queued fault, from its message to its answer. */
static int serve_fault(struct uzd_fault_ctx *fc, struct uzd_client *c, const struct queued_fault *f)
{
	uint64_t addr = f->addr & PAGE_MASK_;
	int ret;

	if (f->flags & UFFD_PAGEFAULT_FLAG_WP) {
		fc->stats.wp++;
		return serve_wp(c, addr);
	}
	fc->kind = UZD_FAULT_KINDS;
	ret = serve_retrying(fc, c, addr);
	if (ret == FAULT_LEFT)
		return 0;
	if (ret >= 0) {
		uint64_t ns = now_ns() - f->t0;

		if (ret == UZD_UFFD_EXISTED)
			stat_add(&c->stats.faults_raced, 1);
		uzd_hist_record(&c->stats.fault_ns, ns);
		if (fc->kind < UZD_FAULT_KINDS)
			uzd_hist_record(&c->stats.kind_ns[fc->kind], ns);
		if (fc->kind == UZD_FAULT_FILE)
			uzd_wb_restored(c->wb, ns);
		return 0;
	}
	if (ret == -ESRCH)
		return ret;
	if (ret != -ENOENT)
		flog(fc, c, "fault at %#" PRIx64 ": %s; waking it to fault again", addr,
		     uzd_uffd_strerror(ret));
	/* A woken thread faults again: a fresh message, or SIGSEGV if unmapped. */
	ret = uzd_uffd_wake(c->uffd, addr, UZD_PAGE_SIZE);
	return ret == -ESRCH ? ret : 0;
}

int uzd_fault_drain(struct uzd_fault_ctx *fc, struct uzd_client *c)
{
	struct queued_fault f;
	size_t got;
	int r;

	for (int reads = 0; reads < FAULT_DRAIN_READS; reads++) {
		r = read_batch(fc, c, &got);
		if (r < 0)
			goto out_drop;
		if (!got && fc->head == fc->tail)
			return 0;
		while (fc->head < fc->tail) {
			f = fc->q[fc->head++];
			r = serve_fault(fc, c, &f);
			if (r < 0)
				goto out_drop;
		}
		fc->head = fc->tail = 0;
	}
	return 0;

out_drop:
	/* The client is gone: its queued faults have no one to answer. */
	fc->head = fc->tail = 0;
	return r;
}
