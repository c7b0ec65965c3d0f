/* SPDX-License-Identifier: MIT */
/*
 * daemon/evict.h - move a batch of a client's resident pages into the pool.
 *
 * The mechanism of tier 1 (design.md §2), not its policy: the caller (the
 * reclaim thread) picks the victims; uzd_evict_batch() evicts the ones it
 * is given, in one pass per step so that every system call covers a run of
 * pages rather than one page (design.md §1: fence+capture+punch cost about
 * 6 us per page alone, 1.5-2 us in batches of 16 or more):
 *
 *   claim (RESIDENT -> BUSY) -> fence (UFFDIO_WRITEPROTECT) -> capture
 *   (preadv on the memfd) -> store (same-filled word, or compress into a
 *   pool object) -> punch (fallocate) -> publish (BUSY -> SAME/POOL) ->
 *   unprotect + wake.
 *
 * struct uzd_evict_ctx belongs to one reclaim thread: its codec context
 * and its batch buffers are reused for every batch, so a batch allocates
 * nothing but pool objects.  It holds no client state between calls.
 *
 * Locking: the caller holds the client's region table read lock for the
 * whole call (claim..publish must run under it, daemon/region.h); the
 * call takes the pool's locks inside (lock order: table, then pool).
 *
 * Never: touch client memory other than by pread on the memfd (design.md
 * §1); punch a page before the pool holds its bytes; leave BUSY after the
 * fence without unprotecting (a fault that saw BUSY waits for that wake).
 */
#ifndef UZSWAP_DAEMON_EVICT_H
#define UZSWAP_DAEMON_EVICT_H

#include <stddef.h>
#include <stdint.h>

#include "compress/codec.h"
#include "daemon/client.h"
#include "daemon/region.h"

/* Pages per batch at most: 256 KiB of capture buffers per reclaim thread. */
#define UZD_EVICT_BATCH 64

struct uzd_evict_ctx;

/*
 * What one batch did.  Every page given is counted once, in exactly one
 * of: evicted (= same + pool), dropped, skipped_hot, skipped_state,
 * rejected_busy, rejected_pool_full, rejected_error.
 *  same        kept as a word in the entry, no pool space
 *  pool        stored as a pool object; pool_bytes are their sizes
 *              (header included), raw ones counted in raw too
 *  dropped     its range was dropped (MADV_REMOVE) during the batch: the
 *              object just stored was freed again
 *  skipped_hot a HOT page, passed over once: its flag was cleared
 *  skipped_state not RESIDENT (never touched, already evicted...)
 *  rejected_busy   a fault (or another reclaimer) owned it
 *  rejected_pool_full  the pool refused the object (-ENOMEM, -ENOSPC); the
 *              page stays resident
 *  rejected_error  a system call on the memfd failed; the page stays resident
 */
struct uzd_evict_result {
	size_t evicted, same, pool, raw;
	uint64_t pool_bytes;
	size_t dropped;
	size_t skipped_hot, skipped_state;
	size_t rejected_busy, rejected_pool_full, rejected_error;
	/* The first of rejected_error's failures: what failed, and its -errno. */
	const char *error_what;
	int error;
};

/*
 * A context compressing with @spec into at most @max_len bytes (as
 * uzc_ctx_new(); UZC_DEFAULT_MAX_LEN unless configured).  0, -EINVAL,
 * -ENOMEM, or what uzc_ctx_new() returned.
 */
int uzd_evict_ctx_new(const struct uzc_spec *spec, size_t max_len, struct uzd_evict_ctx **out);
void uzd_evict_ctx_free(struct uzd_evict_ctx *ec);

/*
 * The pool limit for clients without the backing-file tier (c->wb NULL):
 * a page is stored only while the pool holds less than @bytes (its pages
 * may then exceed it by the one allocation that crosses it, a zspage at
 * most); 0: no limit.  With the tier, writeback's accept threshold rules
 * instead (daemon/writeback.h).  The owner's thread only.
 */
void uzd_evict_ctx_set_pool_limit(struct uzd_evict_ctx *ec, uint64_t bytes);

/*
 * Evict pages @pgidx[0..n) of region @r of client @c (n <= UZD_EVICT_BATCH;
 * order and duplicates do not matter).  The table read lock is held.
 *
 * Page by page: a page not RESIDENT is skipped; a BUSY one counted as
 * rejected_busy; a RESIDENT page with the HOT flag loses the flag and
 * stays (second chance: it refaulted soon after its last eviction, so the
 * policy's pick is overruled once); the rest are evicted, or stay
 * RESIDENT, unharmed and unprotected, when the pool refuses them.
 * c->evict_seq advances by one per page stored, c->stats by what was done.
 *
 * Returns 0 (then *res says what happened), -EINVAL (n too large, an index
 * out of the region), or an error from the fence: -EAGAIN when a REMOVE/
 * UNMAP/REMAP event of the client is unread (call again after the fault
 * thread has read its events) or its fork fence is up (daemon/fork.h), -ENOENT/-ESRCH when the range or client is
 * gone.  On an error every page claimed was put back as it was and every
 * fence lifted: nothing was evicted; *res still counts the skips.
 */
int uzd_evict_batch(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
		    const size_t *pgidx, size_t n, struct uzd_evict_result *res);

#endif /* UZSWAP_DAEMON_EVICT_H */
