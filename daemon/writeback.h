/* SPDX-License-Identifier: MIT */
/*
 * daemon/writeback.h - tier 2: the pool's coldest objects to the backing
 * file, and the pool limit that calls for it.
 *
 * The zpool contract of shared/reference/ applied by the daemon.  When the
 * pool holds more than accept_threshold% of [pool] max_size, the writeback
 * thread asks the allocator to shrink; the allocator takes its least
 * recently used pool page and calls uzd_wb's evict callback for each live
 * object in it, which
 *
 *   finds the owner (the object header, or daemon/rawtab.h for a RAW page)
 *   -> checks the owner's entry still holds the handle (table read lock)
 *   -> appends the object, checksummed, to the backing file's staging
 *      buffer (daemon/bfile.h; flushing it when full)
 *   -> repoints the entry POOL -> FILE in one compare-and-swap
 *      (uzd_region_repoint: the entry is never BUSY, so a fault is never
 *      left waiting, and is served from the pool before the swap and from
 *      the staging buffer, in memory, after it until the write is done)
 *   -> frees the handle.
 *
 * Pool limit: a store is refused (the page stays resident, counted as
 * rejected_pool_full) once the pool reaches max_size, and until writeback
 * has brought it below the accept threshold: zswap's hysteresis.  With
 * writeback on, the allocator itself has no limit, so that objects whose
 * write failed can always go back into it.
 *
 * Errors lose nothing: a full file (max_size, or ENOSPC) leaves objects in
 * the pool; a failed write puts the written objects back into the pool
 * (and while one cannot be, keeps it readable in the staging buffer);
 * a failed or corrupt read is the fault path's to poison (fault.c).
 *
 * Locking.  The callback takes a client's table read lock around each
 * look and swap, never across I/O; bfile's and rawtab's locks are leaves;
 * wb->lock only wakes the thread.  Order: table lock, then pool, bfile or
 * rawtab locks.  Clients are found by id through @find, with a reference
 * that the thread keeps until its round ends (a client's last reference
 * may thus be dropped here, outside any lock and outside the allocator).
 *
 * A reload moves the limits, the switch and the thread's nice value
 * (uzd_wb_set_config): each is a relaxed atomic that every reader loads
 * afresh, so the eviction path (reclaim), the thread and the status writer
 * see the new values at their next look; no reader needs two of them to
 * agree (a store admitted under the old accept threshold is harmless).
 * Turned off, the tier writes nothing more but keeps what the file holds
 * readable and its space managed, and the pool limit holds without the
 * hysteresis, as if the daemon had started with writeback = no.  An admin
 * request (uzd_wb_request) writes back a given number of pool pages now,
 * on the writeback thread, and is answered through its done callback.
 *
 * Never: write back from a fault thread; hold a table lock over a write;
 * free a handle before its entry no longer names it.
 */
#ifndef UZSWAP_DAEMON_WRITEBACK_H
#define UZSWAP_DAEMON_WRITEBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc/zpool.h"
#include "daemon/bfile.h"
#include "daemon/client.h"
#include "daemon/config.h"

struct uzd_wb;

/* The live client with id @id, with a reference (uzd_client_get), or NULL. */
typedef struct uzd_client *(*uzd_wb_find_fn)(void *arg, uint32_t id);
/* The ids of up to @max live clients into @ids; how many. */
typedef size_t (*uzd_wb_ids_fn)(void *arg, uint32_t *ids, size_t max);

/*
 * Counters.  An object the callback could not write back stays in the pool
 * and counts once in a rejected_* by reason; one that went back to the pool
 * after a failed write counts in put_back (and was counted written first,
 * unless the cleaner was moving it).
 */
struct uzd_wb_stats {
	uint64_t rounds;	       /* rounds of the writeback thread that wrote */
	uint64_t pool_full;	       /* times the pool reached max_size and closed */
	uint64_t written_pages;	       /* objects moved from the pool to the file */
	uint64_t written_bytes;	       /* their compressed bytes */
	uint64_t rejected_file_full;   /* the file is at max_size (or the disk was full) */
	uint64_t rejected_write_error; /* writes were failing: writeback paused */
	uint64_t rejected_raced;       /* the page changed while it was being written */
	uint64_t rejected_owner_gone;  /* its client or region is going away */
	uint64_t put_back;	       /* written, then back to the pool: the write failed */
	uint64_t put_back_bytes;       /* their compressed bytes */
	uint64_t put_back_failed;      /* of those, kept in memory: the pool had no room */
	uint64_t restores;	       /* pages restored from the file */
	uint64_t busy_ns;	       /* time the thread spent writing back */
	uint64_t clean_ns;	       /* and cleaning the file */
	struct uzd_hist restore_ns;    /* their fault latency, message to wake */
	uint64_t accept_bytes;	       /* the threshold, bytes */
	bool pool_closed;	       /* full now: refusing stores until below it */
};

/*
 * Set up the tier for @cfg (writeback must be on): opens the backing file.
 * The thread starts with uzd_wb_start().  0 or -errno with @why filled.
 */
int uzd_wb_create(const struct uzd_config *cfg, uzd_wb_find_fn find, void *arg, struct uzd_wb **out,
		  char *why, size_t whylen);
/*
 * How writeback finds every owner of an object fork relatives share
 * (daemon/shared.h): without it (tests), such objects stay in the pool.
 * Before the thread starts.
 */
void uzd_wb_set_owners(struct uzd_wb *wb, uzd_wb_ids_fn ids, void *arg, struct uzd_shared *shared);
/* The pool's settings: evict callback, and no limit of its own (see above). */
void uzd_wb_pool_config(struct uzd_wb *wb, struct zpool_config *pc);
/* Start the thread on @pool (created with uzd_wb_pool_config).  -errno. */
int uzd_wb_start(struct uzd_wb *wb, struct zpool *pool);
/*
 * For tests and benchmarks: bind @pool without a thread, and run one round
 * (resolve, write back, clean, punch) in the caller's thread.  Never while
 * the thread runs.
 */
void uzd_wb_bind(struct uzd_wb *wb, struct zpool *pool);
void uzd_wb_round(struct uzd_wb *wb);
/* Stop and join the thread (it drops every reference it holds).  NULL: no-op. */
void uzd_wb_stop(struct uzd_wb *wb);
/* Close the file; after every client is gone.  NULL: no-op. */
void uzd_wb_free(struct uzd_wb *wb);
/* Run a round soon (cheap, any thread). */
void uzd_wb_kick(struct uzd_wb *wb);

/*
 * A reload's [pool] max_size and accept_threshold, [backing] writeback and
 * [reclaim] nice (any thread; see above).  The backing file's own settings
 * (path, max_size) stay as they were opened.
 */
void uzd_wb_set_config(struct uzd_wb *wb, const struct uzd_config *cfg);
/* Is the tier writing back (not turned off by a reload)? */
bool uzd_wb_enabled(struct uzd_wb *wb);

/*
 * An admin request: free up to @pages pool pages by writing back their
 * objects, now.  The thread owns it until done(req) (on the writeback
 * thread), having set status (0; -EOPNOTSUPP: writeback is off; -ENOSPC:
 * the file is full; -EIO or the write's error: writes are failing; -EAGAIN:
 * nothing could move; -ESHUTDOWN: the daemon stopped first) and what moved.
 */
struct uzd_wb_req {
	uint64_t pages;
	void (*done)(struct uzd_wb_req *req);
	void *arg; /* the submitter's */
	int status;
	uint64_t freed_pages;	  /* pool pages freed */
	uint64_t written_objects; /* objects written to the file (not those put back) */
	uint64_t written_bytes;	  /* their compressed bytes */
	uint64_t put_back;	  /* objects whose write failed, back in the pool */
	struct uzd_wb_req *next;  /* the queue (writeback's) */
};

/* Queue @req and wake the thread (any thread); -ESHUTDOWN when it is not running. */
int uzd_wb_request(struct uzd_wb *wb, struct uzd_wb_req *req);

/* ---- eviction (reclaim), with the client's table read lock held ---- */

/* May a page be stored in the pool now?  false: it is full (the hysteresis above). */
bool uzd_wb_pool_admit(struct uzd_wb *wb);
/* A RAW object @handle was stored for page @addr of client @id; -ENOMEM. */
int uzd_wb_raw_stored(struct uzd_wb *wb, unsigned long handle, uint32_t id, uint64_t addr);
/* A RAW object is being freed (any thread, any path). */
void uzd_wb_raw_freed(struct uzd_wb *wb, unsigned long handle);

/* ---- restores (fault threads) and frees (anyone) ---- */

/* The record of @slot, as uzd_bfile_read(). */
int uzd_wb_read(struct uzd_wb *wb, uint64_t slot, void *buf, struct uzd_bfile_rec *h);
/* Page restored from @slot in @ns (from the message to the wake). */
void uzd_wb_restored(struct uzd_wb *wb, uint64_t ns);
/* A FILE entry of client @c let go of @slot (restore, drop, exit): free it. */
void uzd_wb_file_freed(struct uzd_wb *wb, struct uzd_client *c, uint64_t slot);
/*
 * A SHARED FILE entry of @c let go of @slot while a fork relative still
 * holds it (daemon/shared.h): only @c's count of file bytes goes.
 */
void uzd_wb_file_unshared(struct uzd_client *c, uint64_t slot);

/* A snapshot of the counters and of the file's figures. */
void uzd_wb_stats(struct uzd_wb *wb, struct uzd_wb_stats *st, struct uzd_bfile_stats *fst);

#endif /* UZSWAP_DAEMON_WRITEBACK_H */
