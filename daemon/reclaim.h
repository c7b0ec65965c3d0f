/* SPDX-License-Identifier: MIT */
/*
 * daemon/reclaim.h - the reclaim thread: who is evicted, when, and how much.
 *
 * Policy on top of the mechanism of daemon/evict.h.  One thread wakes every
 * interval_ms, or at once when a fault thread kicks it (a client went over
 * its high watermark), and per round:
 *
 *   1. reads memory pressure (PSI "some avg10", MemAvailable) when its
 *      interval has passed;
 *   2. gives each client a goal (uzd_reclaim_goals()): down to its low
 *      watermark when over its high one; a share of the excess when one
 *      uid's clients together hold more than uid_max_resident, or all
 *      clients together more than max_resident; and, under pressure,
 *      an eighth of what it holds above its floor;
 *   3. evicts each goal in fault-in order (daemon/lru.h), a chunk of pages
 *      per client in turn so that one big client does not hold up the
 *      others.  Policy workingset keeps three queues per client:
 *        probation  pages in fault-in order;
 *        inactive   the oldest of them, zapped for access sampling
 *                   (daemon/sample.h), sample_pct of the budget times the
 *                   client's share (below): their verdict comes when they
 *                   reach the front, so a page has as long to show it is
 *                   used as the stage takes to pass;
 *        protected  pages restored HOT (a refault distance under the
 *                   budget less the inactive stage, fault.c) and inactive
 *                   pages found touched, at most RECLAIM_PROTECTED_PCT of
 *                   the budget, demoted to probation's end oldest first.
 *      Victims are the untouched pages at the front of the inactive stage
 *      (the kernel's active/inactive lists, with the reference bit read
 *      from the pagemap); without sampling (swap on, sample_pct 0, or a
 *      client the daemon cannot sample), the front of probation, as 2Q's.
 *      Sampling pays only when it finds touched pages, so each client has
 *      a share of its victim batches that go through the stage, set from
 *      its verdicts (uzd_reclaim_sample_share); the other batches come
 *      from the front of probation, and the stage shrinks with the share.
 *      Policy fifo marks nothing HOT and samples nothing: everything goes
 *      through probation in fault-in order.
 *
 * The fault path never waits for any of this (design.md §2): a client over
 * its budget is served anyway and the kick only shortens the wait.
 *
 * Clients come from the server through @snapshot, each with a reference
 * that reclaim drops when its round is done.  Locks taken: a client's
 * region table (read), its lru, the pool's (inside eviction); never the
 * server's.
 *
 * Two things reach the thread from outside, both under its lock and both
 * taken at the top of a round, so that the thread alone ever reads its
 * settings and its eviction context:
 *   - a reload's settings (uzd_reclaim_set_config): a copy, applied whole
 *     between two rounds, so no round sees half of the old settings and
 *     half of the new; a new codec or max_compressed gets a new eviction
 *     context there (restores decode any codec, daemon/fault.h);
 *   - admin requests (uzd_reclaim_request): evict up to N pages of given
 *     clients, or compact the pool, answered through the request's done
 *     callback on the reclaim thread, in the order they came.
 */
#ifndef UZSWAP_DAEMON_RECLAIM_H
#define UZSWAP_DAEMON_RECLAIM_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/client.h"
#include "daemon/config.h"

struct uzd_reclaim;

/*
 * Fill @out with up to @max clients, taking a reference on each
 * (uzd_client_get); return how many.
 */
typedef size_t (*uzd_reclaim_snapshot_fn)(void *arg, struct uzd_client **out, size_t max);

struct uzd_reclaim_stats {
	uint64_t rounds;	  /* rounds that evicted something */
	uint64_t pressure_rounds; /* of which under memory pressure */
	uint64_t evicted;	  /* pages */
	uint64_t pool_full;	  /* rounds cut short because the pool was full */
	uint64_t rebuilds;	  /* fault-in queues rebuilt from the tables */
	uint64_t compactions;	  /* pool compactions run, and pages they freed */
	uint64_t compacted_pages;
	uint64_t psi_some_avg10_centi; /* last read; 0 when unknown */
	uint64_t mem_available;	       /* bytes, last read; 0 when unknown */
};

/* One client's figures for uzd_reclaim_goals(), in pages. */
struct uzd_reclaim_need {
	uint64_t resident, budget;
	uid_t uid;     /* whose client: uid_max_resident is per uid */
	uint64_t goal; /* out: pages to evict */
};

/*
 * The goals of one round (pure arithmetic, see above): per client, down to
 * low_watermark% of its budget once above high_watermark%; then, for each
 * uid whose clients' remaining total exceeds high_watermark% of
 * cfg->uid_max_resident, and then for all clients together when theirs
 * exceeds high_watermark% of @max_resident pages, the excess down to the
 * low watermark shared in proportion to what each holds above @floor;
 * then, when @pressure, an eighth of each client's pages above @floor.
 * No goal takes a client below @floor except its own budget.
 */
void uzd_reclaim_goals(const struct uzd_config *cfg, uint64_t max_resident, uint64_t floor,
		       bool pressure, struct uzd_reclaim_need *need, size_t n);

/*
 * Start the thread.  @cfg is copied; @pool is the shared pool (compacted
 * when evictions find it full).  -ENOMEM, -EAGAIN, or the codec's error.
 */
int uzd_reclaim_start(const struct uzd_config *cfg, struct zpool *pool,
		      uzd_reclaim_snapshot_fn snapshot, void *arg, struct uzd_reclaim **out);

/*
 * Stop and join the thread, free everything.  A request still queued is
 * answered first, with -ESHUTDOWN.  NULL is a no-op.
 */
void uzd_reclaim_stop(struct uzd_reclaim *rc);

/* New settings from @cfg (copied), for the rounds after the current one (any thread). */
void uzd_reclaim_set_config(struct uzd_reclaim *rc, const struct uzd_config *cfg);

enum uzd_reclaim_req_kind {
	UZD_RECLAIM_EVICT,   /* up to pages of clients[], in their order */
	UZD_RECLAIM_COMPACT, /* the pool */
};

/*
 * An admin request.  The submitter fills kind, clients (each with a
 * reference, which the thread drops), n_clients, pages and done; the
 * thread owns the request until it calls done(req) (on the reclaim thread,
 * no lock held), having set
 *   status  0; -ENOSPC: the pool refused pages before the goal was met;
 *           -ESHUTDOWN: the daemon stopped first (nothing more was done)
 *   done_pages  pages evicted (EVICT) or pool pages freed (COMPACT)
 */
struct uzd_reclaim_req {
	enum uzd_reclaim_req_kind kind;
	struct uzd_client **clients;
	size_t n_clients;
	uint64_t pages;
	void (*done)(struct uzd_reclaim_req *req);
	void *arg; /* the submitter's */
	int status;
	uint64_t done_pages;
	struct uzd_reclaim_req *next; /* the queue (reclaim's) */
};

/*
 * Queue @req (any thread) and wake the thread.  -ESHUTDOWN when it is
 * stopping: the request is then the caller's again (references included).
 */
int uzd_reclaim_request(struct uzd_reclaim *rc, struct uzd_reclaim_req *req);

/* Run a round now (cheap; any thread). */
void uzd_reclaim_kick(struct uzd_reclaim *rc);

/* A snapshot of the counters. */
void uzd_reclaim_stats(struct uzd_reclaim *rc, struct uzd_reclaim_stats *st);

/*
 * The refault distance under which @policy calls a restored page hot: the
 * budget less the pages in the inactive stage (@sample_pages), which is
 * what the protected and probation queues hold.  Like the kernel's
 * workingset detection, which weighs a refault against the active list:
 * a page evicted from the end of the inactive stage that comes back within
 * that distance would have stayed resident had the stage been that much
 * longer, at the expense of pages that have not shown they are used.
 */
uint32_t uzd_reclaim_hot_distance(enum uzd_reclaim_policy policy, uint64_t budget_pages,
				  uint64_t sample_pages);

/*
 * The share (of UZD_SHARE_ONE) of a client's victim batches that sampling
 * should judge next, from its current @share and the verdicts since it was
 * set: @judged sampled pages, @touched of them found touched.  Sampling
 * every batch pays once @touched_pct percent of the sampled pages turn out
 * touched: a zap and its pagemap read cost reclaim about 2 us and the
 * client a TLB shootdown, while a touched page found saves an eviction and
 * the refault after it, about 30 us.  Below that, the share goes in
 * proportion, down to 1 in 32, so that a client streaming through its
 * memory (nothing touched twice) pays almost nothing for sampling, and
 * still shows when that changes.  Moves halfway to that each time;
 * @touched_pct 0: every batch.
 */
uint32_t uzd_reclaim_sample_share(uint32_t share, uint32_t judged, uint32_t touched,
				  unsigned int touched_pct);

/*
 * Evict up to @goal pages of client @c, oldest fault-in first (the
 * mechanism of one round, exposed for tests and benchmarks); @ec is the
 * caller's eviction context.  Returns the pages evicted; *pool_full is set
 * when the pool refused one.
 */
struct uzd_evict_ctx;
uint64_t uzd_reclaim_client(struct uzd_evict_ctx *ec, struct uzd_client *c, uint64_t goal,
			    bool *pool_full, uint64_t *rebuilds);

#endif /* UZSWAP_DAEMON_RECLAIM_H */
