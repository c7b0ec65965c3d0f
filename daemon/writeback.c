/* SPDX-License-Identifier: MIT */
/*
 * daemon/writeback.c - the writeback thread and the evict callback (see
 * writeback.h for the flow, the limit and the locks).
 *
 * struct uzd_wb:
 *   pool, bf, raw     the shared pool, the backing file, RAW owners
 *   max, accept       [pool] max_size and accept_threshold% of it, bytes;
 *                     margin: how far below accept a round writes back
 *                     (relaxed atomics: a reload moves them, lim_*())
 *   enabled           [backing] writeback, as a reload left it (atomic)
 *   nice, nice_want   the thread's nice value, and a reload's (atomic)
 *   reqs, reqs_tail   admin requests, under lock, in arrival order
 *   full              the pool reached max and has not drained below
 *                     accept yet: stores are refused (relaxed atomic)
 *   kick_pending      a kick since the round began (relaxed atomic): the
 *                     eviction path kicks at most once a round
 *   round[]           the clients this round has looked up, each with a
 *                     reference (NULL: looked up and gone), last the most
 *                     recent hit; the thread's only, released at round end
 *   obj               a pool object copied out, for the append
 *   retry_ns, backoff_ms  after failed writes or a full file: no writeback
 *                     before retry_ns; the pause doubles up to a bound
 *   stats             relaxed atomic counters
 *
 * A round: resolve a pinned write (put the staged records back in the
 * pool, then retry or give the range up); shrink the pool in chunks down
 * to accept - margin, flushing after each; clean the file when it holds
 * too much dead space; punch what died; drop the round's references.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "daemon/object.h"
#include "daemon/rawtab.h"
#include "daemon/region.h"
#include "daemon/writeback.h"

#define WB_TICK_MS 200	  /* a round at least this often: punching, cleaning */
#define WB_CHUNK_PAGES 64 /* pool pages per shrink call, then a flush: 256 KiB writes */
/*
 * Segments cleaned per round at most (4 MiB of reads), one at a time with
 * writeback first whenever the pool is over its threshold, so that the
 * pool never waits for more than one segment's cleaning.  Four a round,
 * not interleaved, let random restores and rewrites take the file to 1.27x
 * the stored bytes (faultbench file_space, quick); sixteen in one go held
 * writeback up long enough to fill the pool.
 */
#define WB_CLEAN_SEGS 16
#define WB_IDLE_BACKOFF_MS 50	/* a round that could write nothing waits this long */
#define WB_ERROR_BACKOFF_MS 100 /* after a failed write, doubling ... */
#define WB_MAX_BACKOFF_MS 5000	/* ... up to 5 s */

struct round_client {
	uint32_t id;
	struct uzd_client *c; /* NULL: gone */
};

struct wb_obj {
	struct uzd_bfile_rec h;
	bool raw;
	unsigned char payload[UZC_PAGE_SIZE];
};

struct uzd_wb {
	struct zpool *pool;
	struct uzd_bfile *bf;
	struct uzd_rawtab raw;
	uint64_t max, accept, margin;
	int nice, nice_want;
	bool enabled;
	bool full;
	bool kick_pending;
	uzd_wb_find_fn find;
	void *find_arg;
	uzd_wb_ids_fn ids; /* every live client, to find all owners of a SHARED object */
	void *ids_arg;
	struct uzd_shared *shared;
	struct round_client *round;
	size_t nround, round_cap, last;
	bool round_full; /* an append found the file full this round */
	struct wb_obj obj;
	uint64_t retry_ns;
	unsigned int backoff_ms;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool kicked, stopping;
	struct uzd_wb_stats stats;
	struct uzd_wb_req *reqs, *reqs_tail;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void count(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static void uncount(uint64_t *c, uint64_t v)
{
	__atomic_fetch_sub(c, v, __ATOMIC_RELAXED);
}

/* ---- the pool limit ---- */

static uint64_t lim_max(const struct uzd_wb *wb)
{
	return __atomic_load_n(&wb->max, __ATOMIC_RELAXED);
}

static uint64_t lim_accept(const struct uzd_wb *wb)
{
	return __atomic_load_n(&wb->accept, __ATOMIC_RELAXED);
}

static uint64_t lim_margin(const struct uzd_wb *wb)
{
	return __atomic_load_n(&wb->margin, __ATOMIC_RELAXED);
}

bool uzd_wb_enabled(struct uzd_wb *wb)
{
	return __atomic_load_n(&wb->enabled, __ATOMIC_RELAXED);
}

bool uzd_wb_pool_admit(struct uzd_wb *wb)
{
	uint64_t total = zpool_total_size(wb->pool);

	/* Turned off: nothing drains the pool, so no hysteresis, as with writeback = no. */
	if (!uzd_wb_enabled(wb))
		return total < lim_max(wb);
	if (__atomic_load_n(&wb->full, __ATOMIC_RELAXED)) {
		if (total >= lim_accept(wb))
			return false;
		__atomic_store_n(&wb->full, false, __ATOMIC_RELAXED);
	}
	if (total >= lim_max(wb)) {
		__atomic_store_n(&wb->full, true, __ATOMIC_RELAXED);
		count(&wb->stats.pool_full, 1);
		uzd_wb_kick(wb);
		return false;
	}
	if (total > lim_accept(wb) && !__atomic_load_n(&wb->kick_pending, __ATOMIC_RELAXED))
		uzd_wb_kick(wb);
	return true;
}

void uzd_wb_kick(struct uzd_wb *wb)
{
	__atomic_store_n(&wb->kick_pending, true, __ATOMIC_RELAXED);
	pthread_mutex_lock(&wb->lock);
	wb->kicked = true;
	pthread_cond_signal(&wb->cond);
	pthread_mutex_unlock(&wb->lock);
}

/* ---- RAW owners ---- */

int uzd_wb_raw_stored(struct uzd_wb *wb, unsigned long handle, uint32_t id, uint64_t addr)
{
	return uzd_rawtab_add(&wb->raw, handle, id, addr);
}

void uzd_wb_raw_freed(struct uzd_wb *wb, unsigned long handle)
{
	if (wb)
		uzd_rawtab_del(&wb->raw, handle);
}

/* ---- the round's clients ---- */

static struct uzd_client *round_client(struct uzd_wb *wb, uint32_t id)
{
	struct round_client *rc;
	size_t i;

	if (wb->nround && wb->round[wb->last].id == id)
		return wb->round[wb->last].c;
	for (i = 0; i < wb->nround && wb->round[i].id != id; i++)
		;
	if (i == wb->nround) {
		if (wb->nround == wb->round_cap) {
			size_t cap = wb->round_cap ? 2 * wb->round_cap : 16;

			rc = realloc(wb->round, cap * sizeof(*rc));
			if (!rc)
				return NULL; /* as if gone: the object stays where it is */
			wb->round = rc;
			wb->round_cap = cap;
		}
		wb->round[i] = (struct round_client){ .id = id, .c = wb->find(wb->find_arg, id) };
		wb->nround++;
	}
	wb->last = i;
	return wb->round[i].c;
}

/* Outside the allocator and every lock: a last reference destroys its client here. */
static void round_release(struct uzd_wb *wb)
{
	for (size_t i = 0; i < wb->nround; i++)
		if (wb->round[i].c)
			uzd_client_put(wb->round[i].c);
	wb->nround = 0;
	wb->last = 0;
}

/* ---- entries ---- */

/* The entry of page @addr of @c now (0 when it is in no region). */
static uint64_t entry_now(struct uzd_client *c, uint64_t addr)
{
	struct uzd_region *r;
	uint64_t v = 0;
	size_t pgidx;

	uzd_region_read_lock(&c->regions);
	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	if (r)
		v = __atomic_load_n(&r->entries[pgidx], __ATOMIC_ACQUIRE);
	uzd_region_read_unlock(&c->regions);
	return v;
}

/* Swap page @addr's entry from @from to @to; 0 or -ESTALE/-EBUSY. */
static int repoint(struct uzd_client *c, uint64_t addr, uint64_t from, uint64_t to)
{
	struct uzd_region *r;
	size_t pgidx;
	int ret = -ESTALE;

	uzd_region_read_lock(&c->regions);
	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	if (r)
		ret = uzd_region_repoint(r, pgidx, from, to);
	uzd_region_read_unlock(&c->regions);
	return ret;
}

/* Page @addr's entry, the table's lock (read or write) held; 0 when not managed. */
static uint64_t entry_now_locked(struct uzd_client *c, uint64_t addr)
{
	struct uzd_region *r;
	size_t pgidx;

	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	return r ? __atomic_load_n(&r->entries[pgidx], __ATOMIC_ACQUIRE) : 0;
}

/* Write lock held, and the entry checked to be @from: swap it, counters moved. */
static void set_entry_locked(struct uzd_client *c, uint64_t addr, uint64_t from, uint64_t to)
{
	struct uzd_region *r;
	size_t pgidx;

	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	if (r)
		uzd_region_repoint(r, pgidx, from, to);
}

static bool holds_pool(uint64_t e, unsigned long handle)
{
	return uzd_entry_state(e) == UZD_ENTRY_POOL && uzd_entry_pool_handle(e) == handle;
}

static bool holds_file(uint64_t e, uint64_t slot)
{
	return uzd_entry_state(e) == UZD_ENTRY_FILE && uzd_entry_file_slot(e) == slot;
}

/* Bytes a pool object takes in the client's pool_bytes (evict.c counts them so). */
static uint64_t pool_bytes(const struct uzd_bfile_rec *h, bool raw)
{
	return raw ? UZC_PAGE_SIZE : UZD_OBJ_HDR_SIZE + h->len;
}

/* ---- the evict callback ---- */

/*
 * Whose object is @handle?  The RAW table, or the object's header.  The
 * header may be garbage (an object being written this instant): the entry
 * check that follows is what counts.  1 when the handle is not live.
 */
static int object_owner(struct uzd_wb *wb, unsigned long handle, struct wb_obj *o)
{
	struct uzd_obj_hdr oh;
	const unsigned char *p;
	uint64_t addr;
	uint32_t id;

	o->raw = uzd_rawtab_get(&wb->raw, handle, &id, &addr) == 0;
	if (o->raw) {
		o->h = (struct uzd_bfile_rec){
			.addr = addr, .client_id = id, .codec = UZC_CODEC_RAW, .len = UZC_PAGE_SIZE
		};
		return 0;
	}
	p = zpool_map(wb->pool, handle, ZPOOL_MM_RO);
	if (p)
		uzd_obj_hdr_read(p, &oh);
	zpool_unmap(wb->pool, handle);
	if (!p)
		return 1;
	o->h = (struct uzd_bfile_rec){
		.addr = oh.addr, .client_id = oh.client_id, .codec = oh.codec, .len = oh.len
	};
	return 0;
}

/*
 * Copy the payload out, after the entry check: an entry holding the handle
 * was published once its object was whole, so the header read now is the
 * object's own, and so is its length.  1 when the handle went meanwhile,
 * -ESTALE if the header no longer names the owner we checked.
 */
static int object_copy(struct uzd_wb *wb, unsigned long handle, struct wb_obj *o)
{
	const unsigned char *p = zpool_map(wb->pool, handle, ZPOOL_MM_RO);
	struct uzd_obj_hdr oh;
	int ret = p ? 0 : 1;

	if (p && !o->raw) {
		uzd_obj_hdr_read(p, &oh);
		if (oh.addr != o->h.addr || oh.client_id != o->h.client_id)
			ret = -ESTALE;
		o->h.codec = oh.codec;
		o->h.len = oh.len;
	}
	if (ret == 0)
		memcpy(o->payload, o->raw ? p : p + UZD_OBJ_HDR_SIZE, o->h.len);
	zpool_unmap(wb->pool, handle);
	return ret;
}

/* Append, flushing a full staging buffer first. */
static int append(struct uzd_wb *wb, const struct wb_obj *o, uint64_t *slot)
{
	int ret = uzd_bfile_append(wb->bf, &o->h, o->payload, slot);

	if (ret == -ENOBUFS) {
		ret = uzd_bfile_flush(wb->bf);
		if (ret == 0)
			ret = uzd_bfile_append(wb->bf, &o->h, o->payload, slot);
	}
	return ret;
}

/* The object is in the file and its entry names it: the pool's copy goes. */
static void written(struct uzd_wb *wb, struct uzd_client *c, unsigned long handle,
		    const struct wb_obj *o)
{
	if (uzd_client_pool_free(c, handle, o->raw) < 0)
		fprintf(stderr,
			"uzswapd: client %" PRIu32 ": BUG: written-back handle %#lx not live\n",
			c->id, handle);
	uncount(&c->stats.pool_bytes, pool_bytes(&o->h, o->raw));
	count(&c->stats.file_bytes, o->h.len);
	count(&c->stats.written_back, 1);
	count(&wb->stats.written_pages, 1);
	count(&wb->stats.written_bytes, o->h.len);
}

static int rejected(struct uzd_wb *wb, int err)
{
	switch (err) {
	case -ENOSPC:
		wb->round_full = true;
		count(&wb->stats.rejected_file_full, 1);
		break;
	case -ESRCH:
		count(&wb->stats.rejected_owner_gone, 1);
		break;
	case -ESTALE:
	case -EBUSY:
		count(&wb->stats.rejected_raced, 1);
		break;
	default:
		count(&wb->stats.rejected_write_error, 1);
		break;
	}
	return err;
}

/* ---- objects fork relatives share ---- */

/* The owners of a SHARED object: clients whose page at the header's address holds it. */
#define WB_MAX_OWNERS 64

struct wb_owners {
	struct uzd_client *c[WB_MAX_OWNERS]; /* ascending id: the order their locks are taken */
	size_t n;
};

static int cmp_client_id(const void *a, const void *b)
{
	uint32_t x = (*(struct uzd_client *const *)a)->id, y = (*(struct uzd_client *const *)b)->id;

	return x < y ? -1 : x > y;
}

/*
 * Every live client whose entry at @addr holds @what (a pool handle, or
 * with @file a file slot), each with the round's reference (dropped at
 * round end, outside the allocator).  Fork keeps addresses, so relatives
 * have the page where the evictor had it; one whose copy mremap moved is
 * not found, and then the count below does not match and the payload
 * stays where it is.
 */
static void find_owners(struct uzd_wb *wb, uint64_t what, bool file, uint64_t addr,
			struct wb_owners *ow)
{
	uint32_t ids[WB_MAX_OWNERS * 4];
	size_t n = wb->ids(wb->ids_arg, ids, sizeof(ids) / sizeof(ids[0]));

	ow->n = 0;
	for (size_t i = 0; i < n && ow->n < WB_MAX_OWNERS; i++) {
		struct uzd_client *c = round_client(wb, ids[i]);
		uint64_t e = c ? entry_now(c, addr) : 0;

		if (c && (file ? holds_file(e, what) : holds_pool(e, (unsigned long)what)))
			ow->c[ow->n++] = c;
	}
	qsort(ow->c, ow->n, sizeof(ow->c[0]), cmp_client_id);
}

/* Under every owner's write lock: each entry is still @e0 (one payload, SHARED). */
static bool owners_hold(struct wb_owners *ow, uint64_t addr, uint64_t e0)
{
	for (size_t i = 0; i < ow->n; i++)
		if (entry_now_locked(ow->c[i], addr) != e0)
			return false;
	return true;
}

/*
 * Repoint every owner of a SHARED payload from @e0 (its shared table key
 * @from_key) to @to (key @to_key) at once, under all their write locks
 * (ascending ids, region.h): no restore, drop, fork or mremap of any of
 * them runs between the check and the last swap, so the count and the
 * entries agree.  One owner left (its relatives are gone) takes the
 * payload alone, its SHARED flag cleared.  0, or -ESTALE.
 */
static int repoint_owners(struct uzd_wb *wb, struct wb_owners *ow, uint64_t addr, uint64_t e0,
			  uint64_t from_key, uint64_t to, uint64_t to_key)
{
	int ret = -ESTALE;

	if (ow->n == 1)
		to = uzd_entry_with_flags(to, uzd_entry_flags(to) & ~UZD_ENTRY_SHARED);
	for (size_t i = 0; i < ow->n; i++)
		uzd_region_write_lock(&ow->c[i]->regions);
	if (owners_hold(ow, addr, e0) && uzd_shared_owners(wb->shared, from_key) == ow->n) {
		for (size_t i = 0; i < ow->n; i++)
			set_entry_locked(ow->c[i], addr, e0, to);
		if (ow->n > 1)
			uzd_shared_rekey(wb->shared, from_key, to_key);
		ret = 0;
	}
	for (size_t i = ow->n; i-- > 0;)
		uzd_region_write_unlock(&ow->c[i]->regions);
	return ret;
}

/* Each owner's figures: its share of the object left the pool for the file. */
static void written_shared(struct uzd_wb *wb, struct wb_owners *ow, unsigned long handle,
			   const struct wb_obj *o)
{
	if (uzd_client_pool_free(ow->c[0], handle, o->raw) < 0)
		fprintf(stderr, "uzswapd: BUG: written-back shared handle %#lx not live\n", handle);
	for (size_t i = 0; i < ow->n; i++) {
		uncount(&ow->c[i]->stats.pool_bytes, pool_bytes(&o->h, o->raw));
		count(&ow->c[i]->stats.file_bytes, o->h.len);
		count(&ow->c[i]->stats.written_back, 1);
	}
	count(&wb->stats.written_pages, 1);
	count(&wb->stats.written_bytes, o->h.len);
}

/* A SHARED object @handle, whose header (or RAW table) names entry @e at o->h.addr. */
static int evict_shared(struct uzd_wb *wb, unsigned long handle, struct wb_obj *o, uint64_t e)
{
	struct wb_owners ow;
	uint64_t slot;
	int ret;

	if (!wb->ids || !wb->shared)
		return rejected(wb, -EBUSY);
	find_owners(wb, handle, false, o->h.addr, &ow);
	if (!ow.n || uzd_shared_owners(wb->shared, uzd_shared_pool_key(handle)) != ow.n)
		return rejected(wb, -EBUSY);
	ret = object_copy(wb, handle, o);
	if (ret)
		return ret > 0 ? 0 : rejected(wb, ret);
	ret = append(wb, o, &slot);
	if (ret)
		return rejected(wb, ret);
	ret = repoint_owners(wb, &ow, o->h.addr, e, uzd_shared_pool_key(handle),
			     uzd_entry_make_file(slot, uzd_entry_flags(e)),
			     uzd_shared_file_key(slot));
	if (ret) {
		uzd_bfile_free(wb->bf, slot);
		return rejected(wb, ret);
	}
	written_shared(wb, &ow, handle, o);
	return 0;
}

/* zpool_evict_fn: move @handle's object to the file (see writeback.h). */
static int wb_evict(struct zpool *pool, unsigned long handle, void *arg)
{
	struct uzd_wb *wb = arg;
	struct wb_obj *o = &wb->obj;
	struct uzd_client *c;
	uint64_t e, slot;
	int ret;

	(void)pool;
	if (object_owner(wb, handle, o))
		return 0;
	c = round_client(wb, o->h.client_id);
	if (!c)
		return rejected(wb, -ESRCH);
	e = entry_now(c, o->h.addr);
	if (!holds_pool(e, handle) || o->raw != !!(uzd_entry_flags(e) & UZD_ENTRY_RAW))
		return rejected(wb, -ESTALE);
	/*
	 * Fork relatives may hold the object too (daemon/shared.h), and the
	 * header names only one of them: all of them move at once.
	 */
	if (uzd_entry_flags(e) & UZD_ENTRY_SHARED)
		return evict_shared(wb, handle, o, e);
	ret = object_copy(wb, handle, o);
	if (ret)
		return ret > 0 ? 0 : rejected(wb, ret);
	ret = append(wb, o, &slot);
	if (ret)
		return rejected(wb, ret);
	ret = repoint(c, o->h.addr, e, uzd_entry_make_file(slot, uzd_entry_flags(e)));
	if (ret) {
		uzd_bfile_free(wb->bf, slot);
		return rejected(wb, ret);
	}
	written(wb, c, handle, o);
	return 0;
}

void uzd_wb_set_owners(struct uzd_wb *wb, uzd_wb_ids_fn ids, void *arg, struct uzd_shared *shared)
{
	wb->ids = ids;
	wb->ids_arg = arg;
	wb->shared = shared;
}

void uzd_wb_pool_config(struct uzd_wb *wb, struct zpool_config *pc)
{
	pc->evict = wb_evict;
	pc->evict_arg = wb;
	pc->max_pages = 0;
}

/* ---- after a failed write: the staged records go back to the pool ---- */

/* A pool object holding @h and @payload, as evict.c would have stored it; the handle. */
static int pool_store(struct uzd_wb *wb, struct uzd_client *c, const struct uzd_bfile_rec *h,
		      const void *payload, bool raw, unsigned long *handle)
{
	/* Not hot when it comes back: its eviction was long ago for all we know. */
	struct uzd_obj_hdr oh = { .addr = h->addr,
				  .codec = h->codec,
				  .len = h->len,
				  .client_id = c->id,
				  .evict_seq = __atomic_load_n(&c->evict_seq, __ATOMIC_RELAXED) -
					       (UINT32_C(1) << 31) };
	unsigned char *p;
	int ret;

	ret = zpool_malloc(wb->pool, pool_bytes(h, raw), handle);
	if (ret < 0)
		return ret;
	p = zpool_map(wb->pool, *handle, ZPOOL_MM_WO);
	if (p) {
		if (!raw)
			uzd_obj_hdr_write(p, &oh);
		memcpy(raw ? p : p + UZD_OBJ_HDR_SIZE, payload, h->len);
	}
	zpool_unmap(wb->pool, *handle);
	ret = p ? 0 : -EIO;
	if (ret == 0 && raw)
		ret = uzd_rawtab_add(&wb->raw, *handle, c->id, h->addr);
	if (ret < 0)
		zpool_free(wb->pool, *handle);
	return ret;
}

/*
 * A staged record that fork relatives share, back into the pool: one
 * object for all its owners, repointed together (repoint_owners()) as
 * evict_shared() moved them out.  When the owners found are not all of them (one
 * moved by mremap, more than WB_MAX_OWNERS, one restoring meanwhile) it
 * stays staged, readable, for the next try or a write that succeeds: never
 * one owner back in the pool and the others on a slot that is freed.
 */
/* Record @h, staged for the file (written back, or moved by the cleaner), is back in the pool. */
static void count_put_back(struct uzd_wb *wb, const struct uzd_bfile_rec *h)
{
	count(&wb->stats.put_back, 1);
	count(&wb->stats.put_back_bytes, h->len);
}

static void put_back_shared(struct uzd_wb *wb, uint64_t slot, const struct uzd_bfile_rec *h,
			    const void *payload)
{
	bool raw = h->codec == UZC_CODEC_RAW;
	struct wb_owners ow;
	unsigned long handle;
	unsigned int flags;
	uint64_t e0;

	if (!wb->ids || !wb->shared)
		return;
	find_owners(wb, slot, true, h->addr, &ow);
	if (!ow.n)
		return; /* its owners are going: their teardown frees the slot */
	e0 = entry_now(ow.c[0], h->addr);
	if (pool_store(wb, ow.c[0], h, payload, raw, &handle) < 0) {
		count(&wb->stats.put_back_failed, 1);
		return;
	}
	flags = (uzd_entry_flags(e0) & ~UZD_ENTRY_RAW) | (raw ? UZD_ENTRY_RAW : 0);
	if (repoint_owners(wb, &ow, h->addr, e0, uzd_shared_file_key(slot),
			   uzd_entry_make_pool(handle, flags), uzd_shared_pool_key(handle)) < 0) {
		uzd_client_pool_free(ow.c[0], handle, raw);
		count(&wb->stats.put_back_failed, 1);
		return;
	}
	uzd_bfile_free(wb->bf, slot);
	for (size_t i = 0; i < ow.n; i++) {
		count(&ow.c[i]->stats.pool_bytes, pool_bytes(h, raw));
		uncount(&ow.c[i]->stats.file_bytes, h->len);
	}
	count_put_back(wb, h);
}

/*
 * uzd_bfile_staged_fn: one staged record back into the pool, if an owner
 * still has it.  The header names the client that evicted it; a record
 * fork relatives share (its entry SHARED, or that client's page no longer
 * holding it while a relative's still may) goes back for all of them.
 */
static void put_back(void *arg, uint64_t slot, const struct uzd_bfile_rec *h, const void *payload)
{
	struct uzd_wb *wb = arg;
	bool raw = h->codec == UZC_CODEC_RAW;
	struct uzd_client *c = round_client(wb, h->client_id);
	unsigned long handle;
	uint64_t e = c ? entry_now(c, h->addr) : 0;

	if (!c || !holds_file(e, slot) || (uzd_entry_flags(e) & UZD_ENTRY_SHARED)) {
		put_back_shared(wb, slot, h, payload);
		return;
	}
	if (pool_store(wb, c, h, payload, raw, &handle) < 0) {
		count(&wb->stats.put_back_failed, 1);
		return; /* stays staged, readable, until a write succeeds */
	}
	if (repoint(c, h->addr, e, uzd_entry_make_pool(handle, raw ? UZD_ENTRY_RAW : 0)) < 0) {
		uzd_client_pool_free(c, handle, raw);
		return;
	}
	uzd_bfile_free(wb->bf, slot);
	count(&c->stats.pool_bytes, pool_bytes(h, raw));
	uncount(&c->stats.file_bytes, h->len);
	count_put_back(wb, h);
}

static void backoff(struct uzd_wb *wb, unsigned int first_ms)
{
	unsigned int ms = wb->backoff_ms ? 2 * wb->backoff_ms : first_ms;

	wb->backoff_ms = ms < WB_MAX_BACKOFF_MS ? ms : WB_MAX_BACKOFF_MS;
	wb->retry_ns = now_ns() + (uint64_t)wb->backoff_ms * 1000000u;
}

/* A write failed (or is still failing): nothing staged may be lost.  0 once resolved. */
static int resolve(struct uzd_wb *wb)
{
	struct uzd_bfile_stats st;
	int ret;

	uzd_bfile_stats(wb->bf, &st);
	if (!st.pinned)
		return 0;
	uzd_bfile_staged(wb->bf, put_back, wb);
	ret = uzd_bfile_resolve(wb->bf);
	return ret;
}

/* Flush; on failure take the records back at once, and pause writeback.  0 when written. */
static int flush(struct uzd_wb *wb)
{
	int ret = uzd_bfile_flush(wb->bf);

	if (ret == 0)
		return 0;
	resolve(wb);
	backoff(wb, WB_ERROR_BACKOFF_MS);
	return ret;
}

/* ---- the cleaner's move ---- */

/* uzd_bfile_move_fn: copy a live record elsewhere in the file and repoint its owner. */
static int wb_move(void *arg, uint64_t old_slot, const struct uzd_bfile_rec *h, const void *record)
{
	struct uzd_wb *wb = arg;
	struct uzd_client *c = round_client(wb, h->client_id);
	uint64_t e, slot;
	int ret;

	if (!c)
		return -ESTALE;
	e = entry_now(c, h->addr);
	/* A SHARED record has owners the header does not name: it stays where it is. */
	if (!holds_file(e, old_slot) || (uzd_entry_flags(e) & UZD_ENTRY_SHARED))
		return -ESTALE;
	ret = uzd_bfile_move(wb->bf, record, &slot);
	if (ret)
		return ret;
	ret = repoint(c, h->addr, e, uzd_entry_make_file(slot, uzd_entry_flags(e)));
	uzd_bfile_free(wb->bf, ret ? slot : old_slot);
	return ret ? -ESTALE : 0;
}

/* ---- the thread ---- */

/* Shrink the pool down to accept - margin, a chunk and a flush at a time. */
static void write_back(struct uzd_wb *wb)
{
	uint64_t accept = lim_accept(wb), margin = lim_margin(wb);
	uint64_t target = accept > margin ? accept - margin : 0, t0 = now_ns();
	bool wrote = false;
	while (zpool_total_size(wb->pool) > target) {
		unsigned int reclaimed = 0;
		int ret = zpool_shrink(wb->pool, WB_CHUNK_PAGES, &reclaimed);

		if (flush(wb) < 0)
			return;
		wrote |= reclaimed != 0;
		if (ret < 0 || !reclaimed || wb->round_full ||
		    __atomic_load_n(&wb->stopping, __ATOMIC_RELAXED))
			break;
	}
	count(&wb->stats.busy_ns, now_ns() - t0);
	if (wrote) {
		count(&wb->stats.rounds, 1);
		wb->backoff_ms = 0;
	} else if (zpool_total_size(wb->pool) > target) {
		/* Nothing could move (owners busy or going, the file full): not at once again. */
		wb->retry_ns = now_ns() + WB_IDLE_BACKOFF_MS * 1000000u;
	}
}

/* Writeback while the pool is over its threshold, and a segment of cleaning between. */
static void write_and_clean(struct uzd_wb *wb)
{
	unsigned int cleaned = 0, n = 1;

	for (unsigned int i = 0; i < WB_CLEAN_SEGS && n; i++) {
		uint64_t t0;

		if (uzd_wb_enabled(wb) && zpool_total_size(wb->pool) > lim_accept(wb) &&
		    now_ns() >= wb->retry_ns)
			write_back(wb);
		t0 = now_ns();
		n = uzd_bfile_clean(wb->bf, 1, wb_move, wb);
		count(&wb->stats.clean_ns, now_ns() - t0);
		cleaned += n;
	}
	/* The file is full and nothing in it can be compacted: not at once again. */
	if (!cleaned && wb->round_full)
		backoff(wb, WB_IDLE_BACKOFF_MS);
	flush(wb);
}

/* ---- admin requests ---- */

/* The counters an admin request reports the change of. */
struct wb_written {
	uint64_t objects, bytes, put_back, put_back_bytes;
};

static struct wb_written written_now(struct uzd_wb *wb)
{
	return (struct wb_written){
		.objects = __atomic_load_n(&wb->stats.written_pages, __ATOMIC_RELAXED),
		.bytes = __atomic_load_n(&wb->stats.written_bytes, __ATOMIC_RELAXED),
		.put_back = __atomic_load_n(&wb->stats.put_back, __ATOMIC_RELAXED),
		.put_back_bytes = __atomic_load_n(&wb->stats.put_back_bytes, __ATOMIC_RELAXED),
	};
}

static uint64_t less(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/*
 * What a request wrote between @at and @now: the objects written less those
 * put back.  The put-backs may include records staged before the request
 * (an earlier put-back that found no room) or moved by the cleaner (never
 * counted written), so the figure is a floor, never a wrapped count.
 */
static void request_written(struct uzd_wb_req *req, const struct wb_written *at,
			    const struct wb_written *now)
{
	req->put_back = now->put_back - at->put_back;
	req->written_objects = less(now->objects - at->objects, req->put_back);
	req->written_bytes = less(now->bytes - at->bytes, now->put_back_bytes - at->put_back_bytes);
}

/* Free up to req->pages pool pages by writing back, a chunk and a flush at a time. */
static void run_request(struct uzd_wb *wb, struct uzd_wb_req *req)
{
	struct wb_written at = written_now(wb), now;
	uint64_t t0 = now_ns();
	int ret = 0;

	req->status = 0;
	req->freed_pages = 0;
	if (!uzd_wb_enabled(wb))
		req->status = -EOPNOTSUPP;
	while (!req->status && req->freed_pages < req->pages) {
		uint64_t left = req->pages - req->freed_pages;
		unsigned int reclaimed = 0;

		if (__atomic_load_n(&wb->stopping, __ATOMIC_RELAXED)) {
			req->status = -ESHUTDOWN;
			break;
		}
		ret = zpool_shrink(wb->pool,
				   left < WB_CHUNK_PAGES ? (unsigned int)left : WB_CHUNK_PAGES,
				   &reclaimed);
		req->freed_pages += reclaimed;
		ret = flush(wb) < 0 ? -EIO : ret;
		if (ret == -EIO)
			req->status = -EIO;
		else if (!reclaimed || wb->round_full)
			break;
	}
	count(&wb->stats.busy_ns, now_ns() - t0);
	now = written_now(wb);
	request_written(req, &at, &now);
	if (!req->status && req->freed_pages < req->pages && !req->freed_pages)
		req->status = wb->round_full ? -ENOSPC : -EAGAIN;
	if (req->freed_pages)
		count(&wb->stats.rounds, 1);
}

static struct uzd_wb_req *take_requests(struct uzd_wb *wb)
{
	struct uzd_wb_req *list;

	pthread_mutex_lock(&wb->lock);
	list = wb->reqs;
	wb->reqs = wb->reqs_tail = NULL;
	pthread_mutex_unlock(&wb->lock);
	return list;
}

/* Each request is answered after the round's references are dropped: done() may free it. */
static void run_requests(struct uzd_wb *wb)
{
	struct uzd_wb_req *req = take_requests(wb), *next, *done = NULL;

	for (; req; req = next) {
		next = req->next;
		wb->round_full = false;
		run_request(wb, req);
		req->next = done;
		done = req;
	}
	round_release(wb);
	for (; done; done = next) {
		next = done->next;
		done->done(done);
	}
}

int uzd_wb_request(struct uzd_wb *wb, struct uzd_wb_req *req)
{
	pthread_mutex_lock(&wb->lock);
	if (!wb->started || wb->stopping) {
		pthread_mutex_unlock(&wb->lock);
		return -ESHUTDOWN;
	}
	req->next = NULL;
	if (wb->reqs_tail)
		wb->reqs_tail->next = req;
	else
		wb->reqs = req;
	wb->reqs_tail = req;
	pthread_cond_signal(&wb->cond);
	pthread_mutex_unlock(&wb->lock);
	return 0;
}

/* ---- settings ---- */

static void set_limits(struct uzd_wb *wb, const struct uzd_config *cfg)
{
	uint64_t max = cfg->pool_max_size;
	uint64_t accept = max / 100 * cfg->accept_threshold +
			  max % 100 * cfg->accept_threshold / 100;
	/* Write back a little below accept, so that a round moves a batch: 1/64 or 256 KiB. */
	uint64_t margin = max / 64 > WB_CHUNK_PAGES * UZD_PAGE_SIZE ?
				  max / 64 :
				  WB_CHUNK_PAGES * UZD_PAGE_SIZE;

	__atomic_store_n(&wb->max, max, __ATOMIC_RELAXED);
	__atomic_store_n(&wb->accept, accept, __ATOMIC_RELAXED);
	__atomic_store_n(&wb->margin, margin, __ATOMIC_RELAXED);
}

void uzd_wb_set_config(struct uzd_wb *wb, const struct uzd_config *cfg)
{
	set_limits(wb, cfg);
	__atomic_store_n(&wb->enabled, cfg->writeback, __ATOMIC_RELAXED);
	__atomic_store_n(&wb->nice_want, cfg->reclaim_nice, __ATOMIC_RELAXED);
	uzd_wb_kick(wb);
}

/* As reclaim's: writeback must keep up with eviction, or stores are refused. */
static void apply_nice(struct uzd_wb *wb)
{
	int want = __atomic_load_n(&wb->nice_want, __ATOMIC_RELAXED);

	if (want == wb->nice)
		return;
	wb->nice = want;
	if (setpriority(PRIO_PROCESS, 0, wb->nice) < 0)
		fprintf(stderr, "uzswapd: warning: writeback thread: nice %d: %s\n", wb->nice,
			strerror(errno));
}

static void run_round(struct uzd_wb *wb)
{
	bool may_write = now_ns() >= wb->retry_ns;

	__atomic_store_n(&wb->kick_pending, false, __ATOMIC_RELAXED);
	wb->round_full = false;
	if (may_write && resolve(wb) != 0) {
		backoff(wb, WB_ERROR_BACKOFF_MS);
		may_write = false;
	}
	if (may_write)
		write_and_clean(wb);
	uzd_bfile_maintain(wb->bf);
	round_release(wb);
}

static void wait_for_work(struct uzd_wb *wb)
{
	uint64_t now = now_ns(), until = now + WB_TICK_MS * 1000000u;
	struct timespec ts;

	/* While backing off, kicks wait too: they would only find the same trouble. */
	if (wb->retry_ns > now && wb->retry_ns < until)
		until = wb->retry_ns;
	ts.tv_sec = (time_t)(until / 1000000000u);
	ts.tv_nsec = (long)(until % 1000000000u);
	pthread_mutex_lock(&wb->lock);
	while (!wb->stopping && !wb->reqs && (!wb->kicked || now_ns() < wb->retry_ns))
		if (pthread_cond_timedwait(&wb->cond, &wb->lock, &ts) == ETIMEDOUT)
			break;
	wb->kicked = false;
	pthread_mutex_unlock(&wb->lock);
}

static void *wb_main(void *arg)
{
	struct uzd_wb *wb = arg;

	wb->nice = INT_MIN; /* not set yet: apply_nice() sets it */
	while (!__atomic_load_n(&wb->stopping, __ATOMIC_RELAXED)) {
		apply_nice(wb);
		wait_for_work(wb);
		run_requests(wb);
		run_round(wb);
	}
	return NULL;
}

/* ---- restores and frees ---- */

int uzd_wb_read(struct uzd_wb *wb, uint64_t slot, void *buf, struct uzd_bfile_rec *h)
{
	return uzd_bfile_read(wb->bf, slot, buf, h);
}

void uzd_wb_restored(struct uzd_wb *wb, uint64_t ns)
{
	count(&wb->stats.restores, 1);
	uzd_hist_record(&wb->stats.restore_ns, ns);
}

void uzd_wb_file_freed(struct uzd_wb *wb, struct uzd_client *c, uint64_t slot)
{
	uzd_bfile_free(wb->bf, slot);
	uncount(&c->stats.file_bytes, uzd_bfile_slot_len(slot));
}

void uzd_wb_file_unshared(struct uzd_client *c, uint64_t slot)
{
	uncount(&c->stats.file_bytes, uzd_bfile_slot_len(slot));
}

#define LOAD(f) (st->f = __atomic_load_n(&wb->stats.f, __ATOMIC_RELAXED))

void uzd_wb_stats(struct uzd_wb *wb, struct uzd_wb_stats *st, struct uzd_bfile_stats *fst)
{
	memset(st, 0, sizeof(*st));
	LOAD(rounds), LOAD(pool_full), LOAD(written_pages), LOAD(written_bytes);
	LOAD(rejected_file_full), LOAD(rejected_write_error), LOAD(rejected_raced);
	LOAD(rejected_owner_gone), LOAD(put_back), LOAD(put_back_bytes), LOAD(put_back_failed);
	LOAD(restores);
	LOAD(busy_ns), LOAD(clean_ns);
	uzd_hist_merge(&st->restore_ns, &wb->stats.restore_ns);
	st->accept_bytes = lim_accept(wb);
	/* The flag is cleared by the next store; until then it may be stale. */
	st->pool_closed = __atomic_load_n(&wb->full, __ATOMIC_RELAXED) && wb->pool &&
			  uzd_wb_enabled(wb) && zpool_total_size(wb->pool) >= lim_accept(wb);
	uzd_bfile_stats(wb->bf, fst);
}
#undef LOAD

/* ---- lifetime ---- */

static int init_sync(struct uzd_wb *wb)
{
	pthread_condattr_t ca;
	int ret = pthread_condattr_init(&ca);

	if (ret)
		return -ret;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&wb->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		return -ret;
	ret = pthread_mutex_init(&wb->lock, NULL);
	if (ret)
		pthread_cond_destroy(&wb->cond);
	return -ret;
}

int uzd_wb_create(const struct uzd_config *cfg, uzd_wb_find_fn find, void *arg, struct uzd_wb **out,
		  char *why, size_t whylen)
{
	struct uzd_wb *wb = calloc(1, sizeof(*wb));
	int ret;

	if (!wb) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	set_limits(wb, cfg);
	wb->enabled = true;
	wb->nice = wb->nice_want = cfg->reclaim_nice;
	wb->find = find;
	wb->find_arg = arg;
	ret = init_sync(wb);
	if (ret < 0) {
		snprintf(why, whylen, "%s", strerror(-ret));
		goto err_free;
	}
	ret = uzd_rawtab_init(&wb->raw);
	if (ret < 0) {
		snprintf(why, whylen, "%s", strerror(-ret));
		goto err_sync;
	}
	ret = uzd_bfile_open(cfg->backing_path, cfg->backing_max_size, &wb->bf, why, whylen);
	if (ret < 0)
		goto err_raw;
	*out = wb;
	return 0;

err_raw:
	uzd_rawtab_fini(&wb->raw);
err_sync:
	pthread_cond_destroy(&wb->cond);
	pthread_mutex_destroy(&wb->lock);
err_free:
	free(wb);
	return ret;
}

void uzd_wb_bind(struct uzd_wb *wb, struct zpool *pool)
{
	wb->pool = pool;
}

void uzd_wb_round(struct uzd_wb *wb)
{
	run_round(wb);
}

int uzd_wb_start(struct uzd_wb *wb, struct zpool *pool)
{
	int ret;

	uzd_wb_bind(wb, pool);
	ret = pthread_create(&wb->thread, NULL, wb_main, wb);
	if (ret)
		return -ret;
	wb->started = true;
	return 0;
}

void uzd_wb_stop(struct uzd_wb *wb)
{
	if (!wb || !wb->started)
		return;
	pthread_mutex_lock(&wb->lock);
	__atomic_store_n(&wb->stopping, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&wb->cond);
	pthread_mutex_unlock(&wb->lock);
	pthread_join(wb->thread, NULL);
	wb->started = false;
	/* Queued after the thread's last look: answered, not run. */
	for (struct uzd_wb_req *req = take_requests(wb), *next; req; req = next) {
		next = req->next;
		req->status = -ESHUTDOWN;
		req->freed_pages = req->written_objects = req->written_bytes = req->put_back = 0;
		req->done(req);
	}
}

void uzd_wb_free(struct uzd_wb *wb)
{
	if (!wb)
		return;
	uzd_wb_stop(wb);
	uzd_bfile_close(wb->bf);
	uzd_rawtab_fini(&wb->raw);
	pthread_cond_destroy(&wb->cond);
	pthread_mutex_destroy(&wb->lock);
	free(wb->round);
	free(wb);
}
