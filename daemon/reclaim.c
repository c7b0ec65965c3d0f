/* SPDX-License-Identifier: MIT */
/*
 * daemon/reclaim.c - the reclaim thread (see reclaim.h for the policy).
 *
 * struct uzd_reclaim is the thread's whole state:
 *   cfg        a copy of the daemon's settings (budgets, watermarks,
 *              pressure thresholds, policy, codec); the thread's alone
 *   next_cfg, cfg_pending  a reload's settings, under lock, until the top
 *              of the next round copies them into cfg (apply_config)
 *   reqs, reqs_tail  admin requests, under lock, in arrival order
 *   pool       the shared pool, compacted when it refuses an object
 *   snapshot   how clients are found (the server's list), with arg
 *   ec         the eviction context: codec and batch buffers, reused
 *   clients, needs  one round's clients and goals (max_clients entries)
 *   lock, cond, kicked, stopping   how the thread is woken and stopped
 *   stats      counters, written by the thread under lock, read by anyone
 *
 * Victims come off the client's inactive stage, or its probation queue
 * when it is not sampled and for the batches its sampled share leaves
 * unjudged (daemon/lru.h, uzd_reclaim_sample_share), oldest first, after the protected
 * queue has been cut back to its share of the budget (its oldest pages
 * demoted to probation's end), a batch at a time, sorted by address so
 * that each region's pages go to one uzd_evict_batch() and the runs in it
 * are contiguous.  The inactive stage is refilled from probation's front
 * before each batch; its system calls (zap, pagemap) run without the
 * region table's lock, and every verdict is checked against the page's
 * entry under it (a page may have moved since).  A page
 * that eviction left resident (HOT and passed over, refused by a full
 * pool, owned by a fault) goes back to the end of the queue: HOT pages
 * thus get their second chance, and a page is never forgotten.  Entries
 * for pages no longer resident are dropped.
 *
 * Never: evict below a goal's arithmetic (uzd_reclaim_goals) or loop on a
 * client whose every page is passed over (a scan limit ends the pass);
 * hold a client's table lock while sleeping or across clients.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "daemon/evict.h"
#include "daemon/reclaim.h"
#include "daemon/sample.h"

/* Pages evicted from one client before the next client's turn. */
#define RECLAIM_CHUNK 1024
/*
 * The protected segment holds at most this share of the budget (2Q's Am):
 * measured on bench/faultbench's zipf scenario, where one extra pass for a
 * hot page (no segment) saved 7% of fifo's refaults.
 */
#define RECLAIM_PROTECTED_PCT 80
/* Under pressure, each round evicts this fraction of what a client holds above its floor. */
#define RECLAIM_PRESSURE_SHIFT 3

struct uzd_reclaim {
	struct uzd_config cfg;
	struct zpool *pool;
	uzd_reclaim_snapshot_fn snapshot;
	void *arg;
	struct uzd_evict_ctx *ec;
	struct uzd_client **clients;
	struct uzd_reclaim_need *needs;
	size_t max_clients;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool kicked, stopping;
	uint64_t pressure_read_ns;
	struct uzd_reclaim_stats stats;
	struct uzd_config next_cfg;
	bool cfg_pending;
	struct uzd_reclaim_req *reqs, *reqs_tail;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t pct(uint64_t v, unsigned int percent)
{
	return v / 100 * percent + v % 100 * percent / 100;
}

/* ---- goals ---- */

static uint64_t above(uint64_t v, uint64_t floor)
{
	return v > floor ? v - floor : 0;
}

static void goals_budget(const struct uzd_config *cfg, struct uzd_reclaim_need *need, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t high = pct(need[i].budget, cfg->high_watermark);
		uint64_t low = pct(need[i].budget, cfg->low_watermark);

		need[i].goal = need[i].resident > high ? need[i].resident - low : 0;
	}
}

/*
 * The clients need[idx[0..m)] together over @limit: share the excess by
 * what each holds above the floor.
 */
static void goals_share(const struct uzd_config *cfg, uint64_t limit, uint64_t floor,
			struct uzd_reclaim_need *need, const size_t *idx, size_t m)
{
	uint64_t total = 0, spare = 0, excess;

	for (size_t k = 0; k < m; k++) {
		const struct uzd_reclaim_need *x = &need[idx ? idx[k] : k];

		total += x->resident - x->goal;
		spare += above(x->resident - x->goal, floor);
	}
	if (total <= pct(limit, cfg->high_watermark) || !spare)
		return;
	excess = total - pct(limit, cfg->low_watermark);
	for (size_t k = 0; k < m; k++) {
		struct uzd_reclaim_need *x = &need[idx ? idx[k] : k];
		uint64_t mine = above(x->resident - x->goal, floor);
		/* Rounded up so that the shares cover the excess; capped by what is there. */
		uint64_t share = (uint64_t)(((unsigned __int128)excess * mine + spare - 1) / spare);

		x->goal += share < mine ? share : mine;
	}
}

struct uid_index {
	uid_t uid;
	size_t i;
};

static int cmp_uid_index(const void *a, const void *b)
{
	const struct uid_index *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Each uid's clients over uid_max_resident.  Nothing to do unless all
 * clients together pass the limit; else the clients sorted by uid, and
 * each run of one uid shared as one group: O(n log n) a round.
 */
static void goals_uids(const struct uzd_config *cfg, uint64_t floor, struct uzd_reclaim_need *need,
		       size_t n)
{
	uint64_t limit = cfg->uid_max_resident / UZD_PAGE_SIZE, total = 0;
	struct uid_index *by_uid;
	size_t *idx;

	for (size_t i = 0; i < n; i++)
		total += need[i].resident - need[i].goal;
	if (total <= pct(limit, cfg->high_watermark))
		return;
	by_uid = malloc(n * sizeof(*by_uid));
	idx = malloc(n * sizeof(*idx));
	if (!by_uid || !idx) {
		/* Out of memory: this round goes without; the global limit still holds. */
		free(by_uid);
		free(idx);
		return;
	}
	for (size_t i = 0; i < n; i++)
		by_uid[i] = (struct uid_index){ .uid = need[i].uid, .i = i };
	qsort(by_uid, n, sizeof(*by_uid), cmp_uid_index);
	for (size_t start = 0, end; start < n; start = end) {
		for (end = start; end < n && by_uid[end].uid == by_uid[start].uid; end++)
			idx[end - start] = by_uid[end].i;
		goals_share(cfg, limit, floor, need, idx, end - start);
	}
	free(by_uid);
	free(idx);
}

void uzd_reclaim_goals(const struct uzd_config *cfg, uint64_t max_resident, uint64_t floor,
		       bool pressure, struct uzd_reclaim_need *need, size_t n)
{
	goals_budget(cfg, need, n);
	goals_uids(cfg, floor, need, n);
	goals_share(cfg, max_resident, floor, need, NULL, n);
	if (!pressure)
		return;
	for (size_t i = 0; i < n; i++) {
		uint64_t mine = above(need[i].resident - need[i].goal, floor);

		need[i].goal += (mine + (1u << RECLAIM_PRESSURE_SHIFT) - 1) >>
				RECLAIM_PRESSURE_SHIFT;
	}
}

uint32_t uzd_reclaim_hot_distance(enum uzd_reclaim_policy policy, uint64_t budget_pages,
				  uint64_t sample_pages)
{
	uint64_t d = budget_pages > sample_pages ? budget_pages - sample_pages : 0;

	if (policy == UZD_POLICY_FIFO)
		return 0;
	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/*
 * Verdicts a share is set from: enough that a client with 10% of its
 * sampled pages touched is told from one with none (±2.7% at 128).
 */
#define SHARE_WINDOW 128
/* Sampling never stops altogether: at least 1 in 32 batches, to see a change. */
#define SHARE_MIN (UZD_SHARE_ONE / 32)

uint32_t uzd_reclaim_sample_share(uint32_t share, uint32_t judged, uint32_t touched,
				  unsigned int touched_pct)
{
	uint64_t want;

	if (!touched_pct)
		return UZD_SHARE_ONE;
	if (!judged)
		return share;
	want = (uint64_t)touched * 100 * UZD_SHARE_ONE / ((uint64_t)judged * touched_pct);
	want = want < SHARE_MIN ? SHARE_MIN : want > UZD_SHARE_ONE ? UZD_SHARE_ONE : want;
	/* Halfway there each window: one unlucky window does not swing it. */
	return (uint32_t)((share + want + 1) / 2);
}

/* ---- one client ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static enum uzd_entry_state entry_state(const struct uzd_region *r, size_t pgidx)
{
	return uzd_entry_state(__atomic_load_n(&r->entries[pgidx], __ATOMIC_ACQUIRE));
}

/* After a batch: what is still resident (or owned by someone) goes to the end of the queue. */
static void requeue(struct uzd_client *c, const struct uzd_region *r, const size_t *idx, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		enum uzd_entry_state st = entry_state(r, idx[i]);

		if (st == UZD_ENTRY_RESIDENT || st == UZD_ENTRY_BUSY)
			uzd_lru_push(&c->lru, r->start + idx[i] * UZD_PAGE_SIZE);
	}
}

/* Lines about a client's failed evictions: at most one per this long. */
#define EVICT_ERROR_LOG_NS (10 * UINT64_C(1000000000))

/*
 * Pages of a batch stayed resident because a system call or the pool failed:
 * nothing is lost, but an admin should hear why eviction does not keep the
 * client to its budget (a sealed or read-only memfd, a failing pool).
 */
static void log_evict_error(struct uzd_client *c, const struct uzd_region *r,
			    const struct uzd_evict_result *res)
{
	uint64_t now = now_ns();

	if (c->evict_error_logged_ns && now - c->evict_error_logged_ns < EVICT_ERROR_LOG_NS)
		return;
	c->evict_error_logged_ns = now;
	fprintf(stderr,
		"uzswapd: warning: client %" PRIu32 " (pid %d): region \"%s\": %zu pages kept "
		"resident: %s: %s (%" PRIu64 " so far; one such line per 10 s)\n",
		c->id, (int)c->pid, r->name, res->rejected_error, res->error_what,
		strerror(-res->error), __atomic_load_n(&c->stats.rejected_error, __ATOMIC_RELAXED));
}

/* Evict pages idx[0..n) of @r; read lock held.  0 or the batch's error. */
static int flush(struct uzd_evict_ctx *ec, struct uzd_client *c, struct uzd_region *r,
		 const size_t *idx, size_t n, uint64_t *evicted, bool *pool_full)
{
	struct uzd_evict_result res;
	int ret;

	if (!n)
		return 0;
	ret = uzd_evict_batch(ec, c, r, idx, n, &res);
	requeue(c, r, idx, n);
	if (ret < 0)
		return ret;
	if (res.rejected_error)
		log_evict_error(c, r, &res);
	*evicted += res.evicted;
	if (res.rejected_pool_full)
		*pool_full = true;
	return 0;
}

/* Evict the queued pages @addrs[0..n), sorted; read lock held. */
static int evict_sorted(struct uzd_evict_ctx *ec, struct uzd_client *c, const uint64_t *addrs,
			size_t n, uint64_t *evicted, bool *pool_full)
{
	size_t idx[UZD_EVICT_BATCH], m = 0, pgidx;
	struct uzd_region *cur = NULL, *r;
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		r = uzd_region_lookup(&c->regions, (uintptr_t)addrs[i], &pgidx);
		if (!r)
			continue; /* unmapped since: forget it */
		if (r != cur) {
			ret = flush(ec, c, cur, idx, m, evicted, pool_full);
			if (ret < 0)
				goto requeue_rest;
			cur = r;
			m = 0;
		}
		idx[m++] = pgidx;
	}
	return flush(ec, c, cur, idx, m, evicted, pool_full);

requeue_rest:
	/* Popped but never tried: back to the queue, or they would be forgotten. */
	for (size_t j = i; j < n; j++)
		uzd_lru_push(&c->lru, addrs[j]);
	return ret;
}

/*
 * Move protected page @addr to the end of the probation queue, its HOT flag
 * cleared (by compare-and-swap, as evict.c's second chance does) so that
 * eviction takes it when its turn comes.  Read lock held.
 */
static void demote_one(struct uzd_client *c, uint64_t addr)
{
	struct uzd_region *r;
	uint64_t *e, v;
	size_t pgidx;

	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	if (!r)
		return;
	e = &r->entries[pgidx];
	v = __atomic_load_n(e, __ATOMIC_ACQUIRE);
	while (uzd_entry_state(v) == UZD_ENTRY_RESIDENT && (uzd_entry_flags(v) & UZD_ENTRY_HOT)) {
		if (__atomic_compare_exchange_n(
			    e, &v, uzd_entry_with_flags(v, uzd_entry_flags(v) & ~UZD_ENTRY_HOT),
			    true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			break;
	}
	if (uzd_entry_state(v) == UZD_ENTRY_RESIDENT || uzd_entry_state(v) == UZD_ENTRY_BUSY)
		uzd_lru_push(&c->lru, addr);
}

/* Demote the oldest protected pages until at most @keep are left. */
static void demote(struct uzd_client *c, size_t keep)
{
	uint64_t addrs[UZD_EVICT_BATCH];
	size_t count, n;

	while ((count = uzd_lru_count(&c->hot)) > keep) {
		n = uzd_lru_pop(&c->hot, addrs,
				count - keep < UZD_EVICT_BATCH ? count - keep : UZD_EVICT_BATCH);
		if (!n)
			break;
		uzd_region_read_lock(&c->regions);
		for (size_t i = 0; i < n; i++)
			demote_one(c, addrs[i]);
		uzd_region_read_unlock(&c->regions);
	}
}

/* ---- access sampling: the inactive stage ---- */

/*
 * Sampling failed for good (the process is gone, or the daemon may not
 * advise its memory): stop sampling this client and give its inactive pages
 * back to probation, where eviction takes them without a verdict.
 */
static void sampling_off(struct uzd_client *c, const char *what, int err)
{
	if (err != -ESRCH)
		fprintf(stderr,
			"uzswapd: warning: client %" PRIu32 " (pid %d): %s: %s: "
			"access sampling off for this client\n",
			c->id, (int)c->pid, what, strerror(-err));
	uzd_sampler_close(&c->sampler);
	__atomic_store_n(&c->sample_pages, 0, __ATOMIC_RELAXED);
}

/* Every inactive page back to probation (sampling is off now). */
static void drain_inactive(struct uzd_client *c)
{
	uint64_t addrs[UZD_EVICT_BATCH];
	size_t n;

	while ((n = uzd_lru_pop(&c->inactive, addrs, UZD_EVICT_BATCH)))
		for (size_t i = 0; i < n; i++)
			uzd_lru_push(&c->lru, addrs[i]);
}

/*
 * Set SAMPLED on the resident pages among @addrs[0..n) (sorted) and move
 * them to the front of @addrs; a page some thread owns goes back to
 * probation, one no longer resident is forgotten.  Returns how many are
 * marked.  Read lock held.
 */
static size_t mark_sampled(struct uzd_client *c, uint64_t *addrs, size_t n)
{
	size_t m = 0, pgidx;

	for (size_t i = 0; i < n; i++) {
		struct uzd_region *r = uzd_region_lookup(&c->regions, (uintptr_t)addrs[i], &pgidx);
		uint64_t *e, v;

		if (!r)
			continue;
		e = &r->entries[pgidx];
		v = __atomic_load_n(e, __ATOMIC_RELAXED);
		while (uzd_entry_state(v) == UZD_ENTRY_RESIDENT &&
		       !__atomic_compare_exchange_n(
			       e, &v,
			       uzd_entry_with_flags(v, uzd_entry_flags(v) | UZD_ENTRY_SAMPLED),
			       true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
		if (uzd_entry_state(v) == UZD_ENTRY_RESIDENT)
			addrs[m++] = addrs[i];
		else if (uzd_entry_state(v) == UZD_ENTRY_BUSY)
			uzd_lru_push(&c->lru, addrs[i]);
	}
	return m;
}

/*
 * Zap @addrs[0..n) (sorted, marked) and queue them inactive.  A page the
 * kernel left mapped (it was not on an LRU list yet, or the client touched
 * it at once) can get no verdict: it goes back to probation.
 */
static int zap_batch(struct uzd_client *c, const uint64_t *addrs, size_t n)
{
	bool present[UZD_EVICT_BATCH];
	int ret;

	ret = uzd_sample_zap(&c->sampler, addrs, n);
	if (ret == 0)
		ret = uzd_sample_present(&c->sampler, addrs, n, present);
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			uzd_lru_push(&c->lru, addrs[i]);
		return ret;
	}
	for (size_t i = 0; i < n; i++)
		uzd_lru_push(present[i] ? &c->lru : &c->inactive, addrs[i]);
	__atomic_fetch_add(&c->stats.sampled, n, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Top the inactive stage up to sample_pages from the front of probation
 * (demoting protected pages when probation runs dry), zapping at most
 * *@budget pages.  Each page queued on probation when it starts is tried
 * once: one the kernel left mapped goes back to probation's end, and when
 * probation is short, popping on would only zap the same pages again
 * (measured on faultbench's zipf: 13 zaps per eviction, most of them of
 * pages still waiting in a per-CPU LRU batch, whose folios the kernel
 * cannot isolate).
 */
static void refill_inactive(struct uzd_client *c, uint64_t *budget)
{
	uint64_t addrs[UZD_EVICT_BATCH], target = c->sample_pages, have;
	uint64_t fresh = uzd_lru_count(&c->lru);
	size_t n, m;
	int ret;

	while (*budget && (have = uzd_lru_count(&c->inactive)) < target) {
		uint64_t want = target - have;

		if (!fresh) {
			if (uzd_lru_count(&c->lru) || !uzd_lru_count(&c->hot))
				return;
			demote(c, uzd_lru_count(&c->hot) > UZD_EVICT_BATCH ?
					  uzd_lru_count(&c->hot) - UZD_EVICT_BATCH :
					  0);
			fresh = uzd_lru_count(&c->lru);
			continue;
		}
		want = want < *budget ? want : *budget;
		want = want < fresh ? want : fresh;
		n = uzd_lru_pop(&c->lru, addrs, want < UZD_EVICT_BATCH ? want : UZD_EVICT_BATCH);
		if (!n)
			return;
		fresh -= n;
		*budget -= n;
		qsort(addrs, n, sizeof(addrs[0]), cmp_u64);
		uzd_region_read_lock(&c->regions);
		m = mark_sampled(c, addrs, n);
		uzd_region_read_unlock(&c->regions);
		/* No lock across the system calls: they wait for the client's mmap lock. */
		ret = m ? zap_batch(c, addrs, m) : 0;
		if (ret < 0)
			return sampling_off(c, "process_madvise(MADV_PAGEOUT)", ret);
	}
}

/*
 * The verdict on inactive page @addr, @present its pagemap bit: touched
 * since its zap, it is promoted to the protected queue (HOT, its SAMPLED
 * mark cleared, by compare-and-swap as everywhere); untouched, it is a
 * victim (true).  A page that faulted in anew since (no mark) starts over
 * on probation.  Read lock held.
 */
static bool judge_one(struct uzd_client *c, uint64_t addr, bool present)
{
	struct uzd_region *r;
	uint64_t *e, v;
	size_t pgidx;

	r = uzd_region_lookup(&c->regions, (uintptr_t)addr, &pgidx);
	if (!r)
		return false;
	e = &r->entries[pgidx];
	v = __atomic_load_n(e, __ATOMIC_RELAXED);
	while (uzd_entry_state(v) == UZD_ENTRY_RESIDENT &&
	       (uzd_entry_flags(v) & UZD_ENTRY_SAMPLED)) {
		if (!present) {
			__atomic_fetch_add(&c->stats.sampled_idle, 1, __ATOMIC_RELAXED);
			return true;
		}
		if (__atomic_compare_exchange_n(
			    e, &v,
			    uzd_entry_with_flags(v, (uzd_entry_flags(v) & ~UZD_ENTRY_SAMPLED) |
							    UZD_ENTRY_HOT),
			    true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
			__atomic_fetch_add(&c->stats.sampled_touched, 1, __ATOMIC_RELAXED);
			uzd_lru_push(&c->hot, addr);
			return false;
		}
	}
	if (uzd_entry_state(v) == UZD_ENTRY_RESIDENT || uzd_entry_state(v) == UZD_ENTRY_BUSY)
		uzd_lru_push(&c->lru, addr);
	return false;
}

/*
 * Take up to @want of the oldest inactive pages and keep in @addrs (sorted)
 * those found untouched: the victims.  *examined: pages taken off the
 * stage.  Returns the victims' count.
 */
static size_t judge_inactive(struct uzd_client *c, uint64_t *addrs, size_t want, size_t *examined)
{
	bool present[UZD_EVICT_BATCH];
	size_t n, m = 0;
	int ret;

	n = uzd_lru_pop(&c->inactive, addrs, want < UZD_EVICT_BATCH ? want : UZD_EVICT_BATCH);
	*examined = n;
	if (!n)
		return 0;
	qsort(addrs, n, sizeof(addrs[0]), cmp_u64);
	ret = uzd_sample_present(&c->sampler, addrs, n, present);
	if (ret < 0) {
		/* No verdict: the oldest pages go as they would without sampling. */
		sampling_off(c, "reading pagemap", ret);
		return n;
	}
	uzd_region_read_lock(&c->regions);
	for (size_t i = 0; i < n; i++)
		if (judge_one(c, addrs[i], present[i]))
			addrs[m++] = addrs[i];
	uzd_region_read_unlock(&c->regions);
	return m;
}

/* The queues lost track (both ran dry, or a push failed): queue every resident page again. */
static void rebuild(struct uzd_client *c)
{
	uzd_lru_clear(&c->lru);
	uzd_lru_clear(&c->hot);
	uzd_lru_clear(&c->inactive);
	uzd_region_read_lock(&c->regions);
	for (size_t i = 0; i < c->regions.n; i++) {
		struct uzd_region *r = c->regions.regions[i];

		for (size_t p = 0; p < r->npages; p++)
			if (entry_state(r, p) == UZD_ENTRY_RESIDENT)
				uzd_lru_push(&c->lru, r->start + p * UZD_PAGE_SIZE);
	}
	uzd_region_read_unlock(&c->regions);
}

static bool queue_lost_track(struct uzd_client *c)
{
	bool lost;

	pthread_mutex_lock(&c->lru.lock);
	lost = c->lru.dropped != 0;
	pthread_mutex_unlock(&c->lru.lock);
	pthread_mutex_lock(&c->hot.lock);
	lost |= c->hot.dropped != 0;
	pthread_mutex_unlock(&c->hot.lock);
	pthread_mutex_lock(&c->inactive.lock);
	lost |= c->inactive.dropped != 0;
	pthread_mutex_unlock(&c->inactive.lock);
	return lost || (uzd_lru_count(&c->lru) == 0 && uzd_lru_count(&c->hot) == 0 &&
			uzd_lru_count(&c->inactive) == 0);
}

/*
 * Zaps one round may make beyond its goal, so that the inactive stage keeps
 * up with the pages that leave it (victims and promotions) without one
 * round zapping a whole budget of a client that has just come in.
 */
#define RECLAIM_REFILL_SLACK 4096

/*
 * Whether the next victim batch is judged by sampling: share.share batches
 * in UZD_SHARE_ONE are, spread evenly.
 */
static bool judged_batch(struct uzd_client *c)
{
	c->share.credit += c->share.share;
	if (c->share.credit < UZD_SHARE_ONE)
		return false;
	c->share.credit -= UZD_SHARE_ONE;
	return true;
}

/*
 * The next victims into @addrs (sorted): when the client is sampled, from
 * the inactive stage for its share of the batches (judged_batch), else, and
 * for the other batches, from the front of probation.  *scanned counts the
 * pages looked at.  Returns how many; 0 with nothing looked at means the
 * queues are empty.
 */
static size_t next_victims(struct uzd_client *c, uint64_t *addrs, uint64_t want, uint64_t *refill,
			   uint64_t *scanned)
{
	size_t n, examined;

	if (!__atomic_load_n(&c->sample_pages, __ATOMIC_RELAXED) ||
	    !uzd_sampler_active(&c->sampler)) {
		if (uzd_lru_count(&c->inactive))
			drain_inactive(c);
	} else if (judged_batch(c) || !uzd_lru_count(&c->lru)) {
		refill_inactive(c, refill);
		/* The refill may have turned sampling off (the client is gone). */
		if (uzd_sampler_active(&c->sampler) && uzd_lru_count(&c->inactive)) {
			n = judge_inactive(c, addrs, want, &examined);
			*scanned += examined;
			if (examined)
				return n;
		}
	}
	n = uzd_lru_pop(&c->lru, addrs, want < UZD_EVICT_BATCH ? want : UZD_EVICT_BATCH);
	*scanned += n;
	qsort(addrs, n, sizeof(addrs[0]), cmp_u64);
	return n;
}

uint64_t uzd_reclaim_client(struct uzd_evict_ctx *ec, struct uzd_client *c, uint64_t goal,
			    bool *pool_full, uint64_t *rebuilds)
{
	uint64_t addrs[UZD_EVICT_BATCH], evicted = 0, scanned = 0, limit, before;
	uint64_t refill = 2 * goal + RECLAIM_REFILL_SLACK;
	bool rebuilt = false;
	size_t n;
	int ret;

	*pool_full = false;
	if (goal && queue_lost_track(c)) {
		rebuild(c);
		rebuilt = true;
		(*rebuilds)++;
	}
	demote(c, uzd_client_budget(c) / 100 * RECLAIM_PROTECTED_PCT);
	/*
	 * Every queued page may be passed over once (HOT) before one is
	 * evicted, and a sampled one judged once more.
	 */
	limit = 3 * ((uint64_t)uzd_lru_count(&c->lru) + uzd_lru_count(&c->hot) +
		     uzd_lru_count(&c->inactive)) +
		goal;
	while (evicted < goal && scanned < limit) {
		before = scanned;
		n = next_victims(c, addrs, goal - evicted, &refill, &scanned);
		if (!n && scanned != before)
			continue; /* every page looked at was touched: protected */
		if (!n && uzd_lru_count(&c->hot)) {
			/* Probation is empty: the protected pages are all that is left. */
			demote(c, uzd_lru_count(&c->hot) - 1 > UZD_EVICT_BATCH ?
					  uzd_lru_count(&c->hot) - UZD_EVICT_BATCH :
					  0);
			continue;
		}
		if (!n) {
			if (rebuilt)
				break;
			rebuild(c);
			rebuilt = true;
			(*rebuilds)++;
			continue;
		}
		uzd_region_read_lock(&c->regions);
		ret = evict_sorted(ec, c, addrs, n, &evicted, pool_full);
		uzd_region_read_unlock(&c->regions);
		/* -EAGAIN: an event is unread; the fault thread reads it, the next round retries. */
		if (ret < 0 || *pool_full)
			break;
	}
	return evicted;
}

/* ---- pressure ---- */

/* "some avg10=12.34 ..." of /proc/pressure/memory, in hundredths of a percent. */
static int read_psi(uint64_t *centi)
{
	unsigned int whole, frac;
	FILE *f = fopen("/proc/pressure/memory", "re");
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "some avg10=%u.%2u", &whole, &frac);
	fclose(f);
	if (n != 2)
		return -EINVAL;
	*centi = (uint64_t)whole * 100 + frac;
	return 0;
}

static int read_mem_available(uint64_t *bytes)
{
	char line[128];
	unsigned long long kib;
	FILE *f = fopen("/proc/meminfo", "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
			*bytes = (uint64_t)kib * 1024;
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

/* Read pressure when its interval has passed; true when the system is under it. */
static bool check_pressure(struct uzd_reclaim *rc)
{
	uint64_t now = now_ns(), psi = 0, avail = 0;
	bool psi_ok, avail_ok;

	if (now - rc->pressure_read_ns < (uint64_t)rc->cfg.interval_ms * 1000000u)
		return false;
	rc->pressure_read_ns = now;
	psi_ok = read_psi(&psi) == 0;
	avail_ok = read_mem_available(&avail) == 0;
	pthread_mutex_lock(&rc->lock);
	rc->stats.psi_some_avg10_centi = psi_ok ? psi : 0;
	rc->stats.mem_available = avail_ok ? avail : 0;
	pthread_mutex_unlock(&rc->lock);
	return (rc->cfg.psi_some_avg10_centi && psi_ok && psi >= rc->cfg.psi_some_avg10_centi) ||
	       (rc->cfg.min_available && avail_ok && avail < rc->cfg.min_available);
}

/* ---- rounds ---- */

static bool stopping(struct uzd_reclaim *rc);

/* Take every goal a chunk per client in turn; returns pages evicted, *pool_full if refused. */
static uint64_t evict_goals(struct uzd_reclaim *rc, size_t n, bool *pool_full)
{
	uint64_t total = 0, rebuilds = 0;
	bool left = true, full;

	*pool_full = false;
	/* A stop need not wait for a round's every chunk: each is whole when it ends. */
	while (left && !*pool_full && !stopping(rc)) {
		left = false;
		for (size_t i = 0; i < n && !*pool_full; i++) {
			uint64_t chunk = rc->needs[i].goal < RECLAIM_CHUNK ? rc->needs[i].goal :
									     RECLAIM_CHUNK;
			uint64_t got, t0;

			if (!chunk)
				continue;
			t0 = now_ns();

			got = uzd_reclaim_client(rc->ec, rc->clients[i], chunk, &full, &rebuilds);
			__atomic_fetch_add(&rc->clients[i]->stats.evict_ns, now_ns() - t0,
					   __ATOMIC_RELAXED);
			total += got;
			*pool_full |= full;
			__atomic_store_n(&rc->clients[i]->reclaim_stalled, got == 0,
					 __ATOMIC_RELAXED);
			/* A client that yields less than asked has nothing more to give now. */
			rc->needs[i].goal = got < chunk ? 0 : rc->needs[i].goal - chunk;
			left |= rc->needs[i].goal != 0;
		}
	}
	pthread_mutex_lock(&rc->lock);
	rc->stats.rebuilds += rebuilds;
	pthread_mutex_unlock(&rc->lock);
	return total;
}

static void compact_pool(struct uzd_reclaim *rc)
{
	size_t freed = zpool_compact(rc->pool);

	pthread_mutex_lock(&rc->lock);
	rc->stats.compactions++;
	rc->stats.compacted_pages += freed;
	pthread_mutex_unlock(&rc->lock);
}

static void round_account(struct uzd_reclaim *rc, uint64_t evicted, bool pressure, bool pool_full)
{
	pthread_mutex_lock(&rc->lock);
	if (evicted) {
		rc->stats.rounds++;
		rc->stats.pressure_rounds += pressure;
	}
	rc->stats.evicted += evicted;
	rc->stats.pool_full += pool_full;
	pthread_mutex_unlock(&rc->lock);
}

/*
 * Client @c's inactive stage, @full pages when every batch is judged: its
 * share of them, so that a page waits in the stage as long whatever the
 * share (the stage drains at the share's rate), and never none.  Sets the
 * share from the verdicts first, once there are enough.
 */
static uint64_t stage_pages(struct uzd_client *c, uint64_t full, unsigned int touched_pct)
{
	/* Verdicts are counted by judge_one() alone, on this thread. */
	uint64_t idle = __atomic_load_n(&c->stats.sampled_idle, __ATOMIC_RELAXED);
	uint64_t touched = __atomic_load_n(&c->stats.sampled_touched, __ATOMIC_RELAXED);
	uint64_t judged = idle - c->share.idle_at + (touched - c->share.touched_at), stage;

	if (judged >= SHARE_WINDOW || !touched_pct) {
		/* Atomic: STATUS reads it (status.c). */
		__atomic_store_n(&c->share.share,
				 uzd_reclaim_sample_share(c->share.share, (uint32_t)judged,
							  (uint32_t)(touched - c->share.touched_at),
							  touched_pct),
				 __ATOMIC_RELAXED);
		c->share.idle_at = idle;
		c->share.touched_at = touched;
	}
	stage = full * c->share.share / UZD_SHARE_ONE;
	return stage || !full ? stage : 1;
}

static void run_round(struct uzd_reclaim *rc)
{
	uint64_t max_pages = rc->cfg.max_resident / UZD_PAGE_SIZE;
	uint64_t floor = rc->cfg.client_min_resident / UZD_PAGE_SIZE, evicted;
	bool pressure = check_pressure(rc), pool_full;
	size_t n = rc->snapshot(rc->arg, rc->clients, rc->max_clients);
	/* With swap, a zap would write the pages out (sample.h): go without. */
	bool sampling = rc->cfg.policy == UZD_POLICY_WORKINGSET && rc->cfg.sample_pct &&
			uzd_sample_usable();

	for (size_t i = 0; i < n; i++) {
		struct uzd_client *c = rc->clients[i];
		uint64_t budget = uzd_client_budget(c);
		uint64_t sample = sampling && uzd_sampler_active(&c->sampler) ?
					  stage_pages(c, pct(budget, rc->cfg.sample_pct),
						      rc->cfg.sample_touched_pct) :
					  0;

		rc->needs[i].resident = uzd_client_resident(c);
		rc->needs[i].budget = budget;
		rc->needs[i].uid = c->uid;
		__atomic_store_n(&c->sample_pages, sample, __ATOMIC_RELAXED);
		__atomic_store_n(&c->hot_distance,
				 uzd_reclaim_hot_distance(rc->cfg.policy, budget, sample),
				 __ATOMIC_RELAXED);
	}
	uzd_reclaim_goals(&rc->cfg, max_pages, floor, pressure, rc->needs, n);
	evicted = evict_goals(rc, n, &pool_full);
	/* A full pool may be a fragmented one: compaction gives whole pages back. */
	if (pool_full)
		compact_pool(rc);
	round_account(rc, evicted, pressure, pool_full);
	for (size_t i = 0; i < n; i++)
		uzd_client_put(rc->clients[i]);
}

static void wait_for_work(struct uzd_reclaim *rc)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += rc->cfg.interval_ms / 1000;
	ts.tv_nsec += (long)(rc->cfg.interval_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rc->lock);
	while (!rc->kicked && !rc->stopping && !rc->reqs && !rc->cfg_pending)
		if (pthread_cond_timedwait(&rc->cond, &rc->lock, &ts) == ETIMEDOUT)
			break;
	rc->kicked = false;
	pthread_mutex_unlock(&rc->lock);
}

static bool stopping(struct uzd_reclaim *rc)
{
	bool s;

	pthread_mutex_lock(&rc->lock);
	s = rc->stopping;
	pthread_mutex_unlock(&rc->lock);
	return s;
}

/* ---- settings from a reload, and admin requests ---- */

static void apply_nice(struct uzd_reclaim *rc)
{
	/*
	 * A client faulting at full speed on a machine with few CPUs would
	 * otherwise outrun eviction and grow far past its budget (measured:
	 * 3.2x with two readers on 2 vCPUs at nice 0, 2x at -10; the fault
	 * path must not wait, design.md §2).  Needs CAP_SYS_NICE to go below 0.
	 */
	if (setpriority(PRIO_PROCESS, 0, rc->cfg.reclaim_nice) < 0)
		fprintf(stderr, "uzswapd: warning: reclaim thread: nice %d: %s\n",
			rc->cfg.reclaim_nice, strerror(errno));
}

/*
 * A reload's settings, whole, between two rounds.  A new codec gets a new
 * eviction context first; if it cannot be had, eviction keeps the old
 * codec (and says so) rather than stop.
 */
static void apply_config(struct uzd_reclaim *rc)
{
	struct uzd_config next;
	struct uzd_evict_ctx *ec;
	int ret;

	pthread_mutex_lock(&rc->lock);
	if (!rc->cfg_pending) {
		pthread_mutex_unlock(&rc->lock);
		return;
	}
	next = rc->next_cfg;
	rc->cfg_pending = false;
	pthread_mutex_unlock(&rc->lock);
	if (next.codec.id != rc->cfg.codec.id || next.codec.level != rc->cfg.codec.level ||
	    next.max_compressed != rc->cfg.max_compressed) {
		ret = uzd_evict_ctx_new(&next.codec, next.max_compressed, &ec);
		if (ret < 0) {
			fprintf(stderr,
				"uzswapd: error: reclaim: codec %s level %d: %s: evictions keep "
				"%s level %d\n",
				uzc_codec_name(next.codec.id), next.codec.level, strerror(-ret),
				uzc_codec_name(rc->cfg.codec.id), rc->cfg.codec.level);
			next.codec = rc->cfg.codec;
			next.max_compressed = rc->cfg.max_compressed;
		} else {
			uzd_evict_ctx_free(rc->ec);
			rc->ec = ec;
			if (next.log_level >= UZD_LOG_INFO)
				fprintf(stderr,
					"uzswapd: info: reclaim: evictions now compress with %s level "
					"%d (max_compressed %u)\n",
					uzc_codec_name(next.codec.id), next.codec.level,
					next.max_compressed);
		}
	}
	uzd_evict_ctx_set_pool_limit(rc->ec, next.pool_max_size);
	ret = next.reclaim_nice != rc->cfg.reclaim_nice;
	rc->cfg = next;
	if (ret)
		apply_nice(rc);
}

/* One client's part of an EVICT request: a chunk at a time, as rounds do. */
static uint64_t request_evict_client(struct uzd_reclaim *rc, struct uzd_client *c, uint64_t goal,
				     bool *pool_full)
{
	uint64_t got = 0, rebuilds = 0, t0 = now_ns();

	*pool_full = false;
	while (got < goal && !*pool_full && !stopping(rc)) {
		uint64_t chunk = goal - got < RECLAIM_CHUNK ? goal - got : RECLAIM_CHUNK;
		uint64_t n = uzd_reclaim_client(rc->ec, c, chunk, pool_full, &rebuilds);

		got += n;
		if (n < chunk)
			break; /* nothing more to give now: passed over, busy, or gone */
	}
	__atomic_fetch_add(&c->stats.evict_ns, now_ns() - t0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&rc->lock);
	rc->stats.rebuilds += rebuilds;
	rc->stats.evicted += got;
	pthread_mutex_unlock(&rc->lock);
	return got;
}

static void run_request(struct uzd_reclaim *rc, struct uzd_reclaim_req *req)
{
	bool full = false;

	req->status = 0;
	req->done_pages = 0;
	if (req->kind == UZD_RECLAIM_COMPACT) {
		size_t freed = zpool_compact(rc->pool);

		pthread_mutex_lock(&rc->lock);
		rc->stats.compactions++;
		rc->stats.compacted_pages += freed;
		pthread_mutex_unlock(&rc->lock);
		req->done_pages = freed;
	}
	for (size_t i = 0; req->kind == UZD_RECLAIM_EVICT && i < req->n_clients; i++) {
		if (req->done_pages < req->pages && !full)
			req->done_pages += request_evict_client(
				rc, req->clients[i], req->pages - req->done_pages, &full);
	}
	if (full && req->done_pages < req->pages)
		req->status = -ENOSPC;
	else if (stopping(rc) && req->done_pages < req->pages)
		req->status = -ESHUTDOWN;
}

/* Answer a request: its references go first, so done() may free it. */
static void finish_request(struct uzd_reclaim_req *req)
{
	for (size_t i = 0; i < req->n_clients; i++)
		uzd_client_put(req->clients[i]);
	req->n_clients = 0;
	req->done(req);
}

static struct uzd_reclaim_req *take_requests(struct uzd_reclaim *rc)
{
	struct uzd_reclaim_req *list;

	pthread_mutex_lock(&rc->lock);
	list = rc->reqs;
	rc->reqs = rc->reqs_tail = NULL;
	pthread_mutex_unlock(&rc->lock);
	return list;
}

static void run_requests(struct uzd_reclaim *rc)
{
	struct uzd_reclaim_req *req = take_requests(rc), *next;

	for (; req; req = next) {
		next = req->next;
		run_request(rc, req);
		finish_request(req);
	}
}

static void *reclaim_main(void *arg)
{
	struct uzd_reclaim *rc = arg;

	apply_nice(rc);
	while (!stopping(rc)) {
		apply_config(rc);
		run_requests(rc);
		run_round(rc);
		wait_for_work(rc);
	}
	return NULL;
}

/* ---- lifetime ---- */

static int init_sync(struct uzd_reclaim *rc)
{
	pthread_condattr_t ca;
	int ret;

	ret = pthread_condattr_init(&ca);
	if (ret)
		return -ret;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	ret = pthread_cond_init(&rc->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		return -ret;
	ret = pthread_mutex_init(&rc->lock, NULL);
	if (ret) {
		pthread_cond_destroy(&rc->cond);
		return -ret;
	}
	return 0;
}

int uzd_reclaim_start(const struct uzd_config *cfg, struct zpool *pool,
		      uzd_reclaim_snapshot_fn snapshot, void *arg, struct uzd_reclaim **out)
{
	struct uzd_reclaim *rc = calloc(1, sizeof(*rc));
	int ret = -ENOMEM;

	if (!rc)
		return -ENOMEM;
	rc->cfg = *cfg;
	rc->pool = pool;
	rc->snapshot = snapshot;
	rc->arg = arg;
	rc->max_clients = cfg->max_clients;
	rc->clients = calloc(rc->max_clients, sizeof(*rc->clients));
	rc->needs = calloc(rc->max_clients, sizeof(*rc->needs));
	if (!rc->clients || !rc->needs)
		goto err_free;
	ret = uzd_evict_ctx_new(&cfg->codec, cfg->max_compressed, &rc->ec);
	if (ret < 0)
		goto err_free;
	uzd_evict_ctx_set_pool_limit(rc->ec, cfg->pool_max_size);
	ret = init_sync(rc);
	if (ret < 0)
		goto err_ec;
	ret = -pthread_create(&rc->thread, NULL, reclaim_main, rc);
	if (ret < 0)
		goto err_sync;
	*out = rc;
	return 0;

err_sync:
	pthread_cond_destroy(&rc->cond);
	pthread_mutex_destroy(&rc->lock);
err_ec:
	uzd_evict_ctx_free(rc->ec);
err_free:
	free(rc->needs);
	free(rc->clients);
	free(rc);
	return ret;
}

void uzd_reclaim_stop(struct uzd_reclaim *rc)
{
	if (!rc)
		return;
	pthread_mutex_lock(&rc->lock);
	rc->stopping = true;
	pthread_cond_signal(&rc->cond);
	pthread_mutex_unlock(&rc->lock);
	pthread_join(rc->thread, NULL);
	/* Queued after the last round: answered, not run. */
	for (struct uzd_reclaim_req *req = take_requests(rc), *next; req; req = next) {
		next = req->next;
		req->status = -ESHUTDOWN;
		req->done_pages = 0;
		finish_request(req);
	}
	pthread_cond_destroy(&rc->cond);
	pthread_mutex_destroy(&rc->lock);
	uzd_evict_ctx_free(rc->ec);
	free(rc->needs);
	free(rc->clients);
	free(rc);
}

void uzd_reclaim_set_config(struct uzd_reclaim *rc, const struct uzd_config *cfg)
{
	pthread_mutex_lock(&rc->lock);
	rc->next_cfg = *cfg;
	rc->cfg_pending = true;
	pthread_cond_signal(&rc->cond);
	pthread_mutex_unlock(&rc->lock);
}

int uzd_reclaim_request(struct uzd_reclaim *rc, struct uzd_reclaim_req *req)
{
	pthread_mutex_lock(&rc->lock);
	if (rc->stopping) {
		pthread_mutex_unlock(&rc->lock);
		return -ESHUTDOWN;
	}
	req->next = NULL;
	if (rc->reqs_tail)
		rc->reqs_tail->next = req;
	else
		rc->reqs = req;
	rc->reqs_tail = req;
	pthread_cond_signal(&rc->cond);
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

void uzd_reclaim_kick(struct uzd_reclaim *rc)
{
	pthread_mutex_lock(&rc->lock);
	rc->kicked = true;
	pthread_cond_signal(&rc->cond);
	pthread_mutex_unlock(&rc->lock);
}

void uzd_reclaim_stats(struct uzd_reclaim *rc, struct uzd_reclaim_stats *st)
{
	pthread_mutex_lock(&rc->lock);
	*st = rc->stats;
	pthread_mutex_unlock(&rc->lock);
}
