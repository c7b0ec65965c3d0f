/* SPDX-License-Identifier: MIT */
/*
 * daemon/client.h - what the daemon holds for one connected client.
 *
 * Shared by the fault service (daemon/fault.c) and eviction
 * (daemon/evict.c), which both work on a client's pages; the server that
 * accepts clients fills it in.  The pool is shared by every client and
 * outlives them.
 *
 *   id         unique among live clients, never 0; stored in pool objects
 *   uffd       the client's userfaultfd (the daemon's copy), O_NONBLOCK
 *   regions    the client's regions and page entries (daemon/region.h)
 *   pool       the compressed pool all clients share (alloc/zpool.h)
 *   evict_seq  evictions of this client's pages so far: the clock that
 *              refault distances are measured on (daemon/object.h)
 *   hot_distance  a restored page whose refault distance is below this is
 *              HOT (passed over once by reclaim); 0: none is (policy fifo).
 *              Set by reclaim, read by the fault service
 *   lru        resident pages in fault-in order (daemon/lru.h): the fault
 *              service appends, reclaim takes victims from the front (the
 *              probation queue)
 *   hot        the protected queue: pages restored HOT (a short refault
 *              distance) or found touched by sampling, in the order they
 *              got there; reclaim demotes the oldest to lru's end when it
 *              holds more than its share of the budget
 *   inactive   pages reclaim has zapped for access sampling (SAMPLED),
 *              oldest first, waiting for their verdict: touched since, they
 *              go to hot; untouched, they are the next victims
 *   sampler    the client process's pidfd and pagemap, for sampling
 *              (daemon/sample.h); inactive when they could not be opened.
 *              Used by reclaim only, set before the client is shared
 *   stats      counters, updated with relaxed atomic adds by any thread
 *   pid, uid, comm  who the client is (SO_PEERCRED and its HELLO), for
 *              statistics and logs; fixed once the client is shared
 *   budget_pages  resident pages the client may keep (its granted budget):
 *              set at HELLO, by an admin (uzswapctl set) and by a reload;
 *              read by reclaim and the fault threads: relaxed atomics, see
 *              uzd_client_budget()
 *   asked_bytes   the budget its HELLO asked for (0: the default), so that a
 *              reload can grant it again under the new default (server loop)
 *   budget_set    an admin set the budget: a reload leaves it (server loop)
 *   sample_pages  how many pages reclaim keeps in the inactive stage; 0: the
 *              client is not sampled.  Set by reclaim each round
 *   share      how much of its eviction goes through sampling (below);
 *              reclaim's alone, but for share.share, which STATUS reads
 *              (relaxed atomics)
 *   reclaim_stalled  reclaim's last try on this client evicted nothing (pool
 *              full, every page busy): set and read with relaxed atomics
 *   evict_error_logged_ns  when reclaim last logged evictions of this
 *              client that failed (0: never); reclaim's alone
 *   refs       references: the server's, the fault thread's, and each
 *              reclaim pass's; the last uzd_client_put() destroys it
 *   wb         the backing-file tier (daemon/writeback.h), shared by every
 *              client like the pool; NULL when writeback is off (then no
 *              page of the client is ever FILE)
 *   shared     the daemon's table of payloads shared with fork relatives
 *              (daemon/shared.h); NULL when nothing is ever shared (tests)
 *   forking    the fork fence is up (daemon/fork.c): no fault of this
 *              client is answered and nothing of it is evicted until
 *              FORK_DONE lifts it; set and cleared under the table's write
 *              lock, read under its read lock
 *   events_busy  the fault thread is reading (and then handling) this
 *              client's userfaultfd events.  A client thread whose munmap
 *              or mremap raised an event runs on once the event is read,
 *              before it is handled; the server waits for this to clear
 *              before it handles the client's next request, so a REGISTER
 *              never meets (and an UNMAP handled late never destroys) a
 *              region of the range the event is about
 *
 * Lifetime: uzd_client_new() gives one reference.  Whoever passes the
 * client to another thread gives it a reference too; destruction (every
 * region destroyed, every pool object freed, the userfaultfd closed) runs
 * in the thread that drops the last one, so it never races a user.
 */
#ifndef UZSWAP_DAEMON_CLIENT_H
#define UZSWAP_DAEMON_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "alloc/zpool.h"
#include "daemon/hist.h"
#include "daemon/lru.h"
#include "daemon/region.h"
#include "daemon/sample.h"
#include "daemon/shared.h"

struct uzd_wb;

/* What a served fault restored, for the latency histograms. */
enum uzd_fault_kind {
	UZD_FAULT_ZERO, /* a first touch */
	UZD_FAULT_SAME, /* a same-filled page */
	UZD_FAULT_POOL, /* a page from the pool */
	UZD_FAULT_FILE, /* a page from the backing file */
	UZD_FAULT_KINDS,
};

struct uzd_client_stats {
	uint64_t faults_zero;	     /* first touches served with a zero page */
	uint64_t faults_same;	     /* restored from a same-filled word */
	uint64_t faults_pool;	     /* restored from the pool */
	uint64_t faults_raced;	     /* the page was already there (EEXIST): woken */
	uint64_t readahead;	     /* pages filled ahead of a fault that came in order */
	uint64_t refaults_hot;	     /* restored pages found hot (refault distance) */
	uint64_t sampled;	     /* resident pages zapped to see if they are touched */
	uint64_t sampled_touched;    /* of which found touched: protected */
	uint64_t sampled_idle;	     /* of which found untouched: offered to eviction */
	uint64_t evicted_same;	     /* evictions kept as a word */
	uint64_t evicted_pool;	     /* evictions stored in the pool */
	uint64_t rejected_pool_full; /* evictions refused: the pool had no room */
	uint64_t rejected_busy;	     /* victims skipped: a fault owned them */
	uint64_t rejected_error;     /* evictions failed on a memfd system call */
	uint64_t poisoned;	     /* pages poisoned: corrupt, foreign, unmanaged */
	uint64_t pool_bytes;	     /* bytes of this client's live pool objects */
	uint64_t evict_ns;	     /* time reclaim spent evicting its pages */
	struct uzd_hist fault_ns;    /* time from reading a fault to waking it */
	struct uzd_hist kind_ns[UZD_FAULT_KINDS]; /* the same, by what was restored */
	uint64_t faults_file;			  /* restored from the backing file */
	uint64_t written_back;			  /* pool objects moved to the backing file */
	uint64_t file_bytes;			  /* compressed bytes of its file records */
};

/*
 * The share of a client's victim batches that sampling judges: share out of
 * UZD_SHARE_ONE, the rest going from probation unjudged; credit dithers the
 * batches; idle_at and touched_at are the client's sampled_idle and
 * sampled_touched when share was last set, so that the verdicts since are
 * what it is set from next (uzd_reclaim_sample_share).
 */
#define UZD_SHARE_ONE 1024u
struct uzd_sample_share {
	uint32_t share;
	uint32_t credit;
	uint64_t idle_at;
	uint64_t touched_at;
};

struct uzd_client {
	uint32_t id;
	int uffd;
	struct uzd_region_table regions;
	struct zpool *pool;
	uint32_t evict_seq;
	uint32_t hot_distance;
	struct uzd_lru lru;
	struct uzd_lru hot;
	struct uzd_lru inactive;
	struct uzd_sampler sampler;
	struct uzd_sample_share share;
	struct uzd_client_stats stats;
	pid_t pid;
	uid_t uid;
	char comm[16];
	uint64_t budget_pages;
	uint64_t sample_pages;
	bool reclaim_stalled;
	uint64_t evict_error_logged_ns;
	int refs;
	struct uzd_wb *wb;
	struct uzd_shared *shared;
	bool forking;
	bool events_busy;
	uint64_t asked_bytes;
	bool budget_set;
};

/*
 * A client with no regions and no userfaultfd yet (uffd -1), one reference.
 * -ENOMEM.
 */
int uzd_client_new(uint32_t id, struct zpool *pool, struct uzd_client **out);
void uzd_client_get(struct uzd_client *c);
void uzd_client_put(struct uzd_client *c);

/*
 * Set up / tear down an embedded client (tests keep theirs on the stack).
 * fini destroys every region, freeing their pool objects; it leaves uffd.
 */
int uzd_client_init(struct uzd_client *c, uint32_t id, struct zpool *pool);
void uzd_client_fini(struct uzd_client *c);

/*
 * uzd_release_fn (daemon/region.h) for a client's pages: frees the pool
 * object of a POOL entry and takes its bytes off the client's pool_bytes,
 * or the record of a FILE entry; @arg is the client.  Takes only the
 * pool's locks and the backing file's (leaves).
 */
void uzd_client_release(const struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg);

/*
 * Free pool object @handle of @c; a RAW one (@raw) is also forgotten by
 * writeback's owner table, which every free of a RAW object must do.  0 or
 * zpool_free()'s -EINVAL.
 */
int uzd_client_pool_free(struct uzd_client *c, unsigned long handle, bool raw);

/*
 * A restore has installed the page of POOL entry @entry (exclusive load):
 * its object of @bytes goes, unless a fork relative still holds it (SHARED,
 * daemon/shared.h).  Takes only the pool's and the shared table's locks.
 */
void uzd_client_free_object(struct uzd_client *c, uint64_t entry, uint64_t bytes);

/*
 * The record of FILE entry @entry is let go (a restore, a drop, an exit):
 * freed, unless a fork relative still holds it (SHARED).  Takes only the
 * shared table's and the backing file's locks.
 */
void uzd_client_free_record(struct uzd_client *c, uint64_t entry);

/* The bytes the object of POOL entry @entry takes, as stats.pool_bytes counts them. */
uint64_t uzd_client_object_bytes(struct zpool *pool, uint64_t entry);

/* The client's budget in pages now (any thread; it may change at any time). */
static inline uint64_t uzd_client_budget(const struct uzd_client *c)
{
	return __atomic_load_n(&c->budget_pages, __ATOMIC_RELAXED);
}

/* A new budget, for reclaim and the fault threads to see at their next look. */
static inline void uzd_client_set_budget(struct uzd_client *c, uint64_t pages)
{
	__atomic_store_n(&c->budget_pages, pages ? pages : 1, __ATOMIC_RELAXED);
}

/* Resident pages of the client now (takes the table read lock). */
uint64_t uzd_client_resident(struct uzd_client *c);

#endif /* UZSWAP_DAEMON_CLIENT_H */
