/* SPDX-License-Identifier: MIT */
/*
 * tests/test_reclaim.c - daemon/reclaim.c: the goals, the victims, the
 * thread.
 *
 * The goal arithmetic (uzd_reclaim_goals) and the hot distance are pure
 * functions and are checked on figures worked out by hand.  The rest runs
 * on a real client region, built in-process as libuzswap builds one (a
 * memfd mapped MAP_SHARED, registered MISSING|WP on a fresh userfaultfd),
 * with a struct uzd_client over it from uzd_client_new() and a zsmalloc
 * pool.  A fault thread of the test's own polls the userfaultfd and calls
 * uzd_fault_drain(), as a daemon fault thread does, and a client thread
 * writes the pages in an order the test chooses: each write is a first
 * touch, served by the fault service, which queues the page on c->lru.  So
 * the fault-in order is known, and a test can ask uzd_reclaim_client() for
 * N evictions and check that exactly the N oldest were taken.
 *
 * Pages are a pure function of their index (compressible text-like words,
 * every eighth page same-filled, or random bytes where a test needs pages
 * that do not compress), so every page is checked after it faults back.
 *
 * Nothing can hang: waits have deadlines; a timed-out wait stops the fault
 * thread and closes the userfaultfd, which wakes every blocked client
 * thread; alarm() is the backstop.  The region tests need root or
 * /dev/userfaultfd and are skipped, saying why, without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "client/uffd.h"
#include "compress/codec.h"
#include "daemon/client.h"
#include "daemon/config.h"
#include "daemon/evict.h"
#include "daemon/fault.h"
#include "daemon/reclaim.h"
#include "daemon/sample.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define PG 4096
#define WAIT_MS 2000
#define WATCHDOG_S 30
#define CLIENT_ID 11
#define HUGE_BUDGET (UINT64_C(1) << 40) /* pages: no budget goal */

static int dev_fd = -1;
static char uffd_why[256]; /* empty when a userfaultfd can be made here */

/* ---- uzd_reclaim_goals: pure arithmetic ---- */

static struct uzd_config goals_cfg(void)
{
	struct uzd_config cfg;

	uzd_config_defaults(&cfg, UINT64_C(1) << 30);
	cfg.high_watermark = 80;
	cfg.low_watermark = 60;
	return cfg;
}

static void test_goal_over_high_watermark(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[2] = { { .resident = 900, .budget = 1000 },
					    { .resident = 801, .budget = 1000 } };

	uzd_reclaim_goals(&cfg, HUGE_BUDGET, 0, false, need, 2);
	ok(need[0].goal == 300,
	   "a client over its high watermark is given resident - low as its goal "
	   "(expected 900 - 600 = 300, seen %llu)",
	   (unsigned long long)need[0].goal);
	ok(need[1].goal == 201,
	   "one page over the high watermark is enough to be taken down to the low one "
	   "(expected 201, seen %llu)",
	   (unsigned long long)need[1].goal);
}

static void test_goal_at_or_under_high_watermark(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[3] = { { .resident = 800, .budget = 1000 },
					    { .resident = 700, .budget = 1000 },
					    { .resident = 0, .budget = 1000 } };

	uzd_reclaim_goals(&cfg, HUGE_BUDGET, 0, false, need, 3);
	ok(need[0].goal == 0 && need[1].goal == 0 && need[2].goal == 0,
	   "a client at or under its high watermark has no goal (expected 0 0 0, seen %llu %llu "
	   "%llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[1].goal,
	   (unsigned long long)need[2].goal);
}

/*
 * Three clients with no budget goal hold 800 pages, max_resident is 500:
 * over 80% (400), so 800 - 60% (300) = 500 pages are shared by what each
 * holds above the floor of 50: 350, 250 and 50 of 650.
 */
static void test_goal_global_shared(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[3] = { { .resident = 400, .budget = HUGE_BUDGET },
					    { .resident = 300, .budget = HUGE_BUDGET },
					    { .resident = 100, .budget = HUGE_BUDGET } };
	const uint64_t floor = 50, excess = 500, spare = 650;
	uint64_t sum = 0;
	bool proportional = true;

	uzd_reclaim_goals(&cfg, 500, floor, false, need, 3);
	for (size_t i = 0; i < 3; i++) {
		uint64_t mine = need[i].resident - floor;

		sum += need[i].goal;
		/* Within one page of excess * mine / spare. */
		if (need[i].goal * spare + spare <= excess * mine ||
		    need[i].goal * spare >= excess * mine + spare)
			proportional = false;
	}
	ok(proportional,
	   "the global excess is shared in proportion to the pages above the floor "
	   "(expected about 269.2 192.3 38.5, seen %llu %llu %llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[1].goal,
	   (unsigned long long)need[2].goal);
	ok(sum >= excess && sum <= excess + 3,
	   "the shares cover the excess (expected %llu..%llu pages, seen %llu)",
	   (unsigned long long)excess, (unsigned long long)excess + 3, (unsigned long long)sum);
}

static void test_goal_global_under_limit(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[2] = { { .resident = 250, .budget = HUGE_BUDGET },
					    { .resident = 150, .budget = HUGE_BUDGET } };

	/* 400 pages is exactly 80% of 500. */
	uzd_reclaim_goals(&cfg, 500, 0, false, need, 2);
	ok(need[0].goal == 0 && need[1].goal == 0,
	   "clients together at the global high watermark have no goal (seen %llu %llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[1].goal);
}

/*
 * Client A's budget goal takes it from 900 to 600; the global limit (1000
 * pages: high 800, low 600) then sees 600 + 600 and shares 600 evenly.
 */
static void test_goal_global_after_budget(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[2] = { { .resident = 900, .budget = 1000 },
					    { .resident = 600, .budget = HUGE_BUDGET } };

	uzd_reclaim_goals(&cfg, 1000, 0, false, need, 2);
	ok(need[0].goal == 600 && need[1].goal == 300,
	   "the global share is computed on what the budget goals leave (expected 300 + 300 and "
	   "300, seen %llu and %llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[1].goal);
}

/*
 * uid_max_resident 1000 pages (high 800, low 600): uid 1's 700 + 300 share
 * its excess of 400 by what each holds, uid 2's lone 900 gives 300, and a
 * uid at its high watermark gives nothing.
 */
static void test_goal_per_uid(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[4] = {
		{ .resident = 700, .budget = HUGE_BUDGET, .uid = 1 },
		{ .resident = 900, .budget = HUGE_BUDGET, .uid = 2 },
		{ .resident = 300, .budget = HUGE_BUDGET, .uid = 1 },
		{ .resident = 800, .budget = HUGE_BUDGET, .uid = 3 },
	};

	cfg.uid_max_resident = 1000 * UZD_PAGE_SIZE;
	uzd_reclaim_goals(&cfg, HUGE_BUDGET, 0, false, need, 4);
	ok(need[0].goal == 280 && need[2].goal == 120 && need[1].goal == 300 && need[3].goal == 0,
	   "each uid over uid_max_resident gives its excess, shared among its clients (expected "
	   "280 120, 300, 0; seen %llu %llu, %llu, %llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[2].goal,
	   (unsigned long long)need[1].goal, (unsigned long long)need[3].goal);
}

/* Then the global limit (1000 pages) shares its excess on what the uid goals leave. */
static void test_goal_global_after_uid(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[3] = {
		{ .resident = 700, .budget = HUGE_BUDGET, .uid = 1 },
		{ .resident = 300, .budget = HUGE_BUDGET, .uid = 1 },
		{ .resident = 900, .budget = HUGE_BUDGET, .uid = 2 },
	};

	cfg.uid_max_resident = 1000 * UZD_PAGE_SIZE;
	uzd_reclaim_goals(&cfg, 1000, 0, false, need, 3);
	ok(need[0].goal == 490 && need[1].goal == 210 && need[2].goal == 600,
	   "the global share is computed on what the uid goals leave (expected 490 210 600, "
	   "seen %llu %llu %llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[1].goal,
	   (unsigned long long)need[2].goal);
}

static void test_goal_pressure(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[3] = { { .resident = 900, .budget = HUGE_BUDGET },
					    { .resident = 901, .budget = HUGE_BUDGET },
					    { .resident = 100, .budget = HUGE_BUDGET } };

	uzd_reclaim_goals(&cfg, HUGE_BUDGET, 100, false, need, 3);
	ok(need[0].goal == 0 && need[1].goal == 0 && need[2].goal == 0,
	   "without pressure, clients under budget and global limit have no goal");
	uzd_reclaim_goals(&cfg, HUGE_BUDGET, 100, true, need, 3);
	ok(need[0].goal == 100 && need[1].goal == 101,
	   "pressure adds an eighth of what a client holds above the floor, rounded up "
	   "(expected 800/8 = 100 and 801/8 -> 101, seen %llu and %llu)",
	   (unsigned long long)need[0].goal, (unsigned long long)need[1].goal);
	ok(need[2].goal == 0, "pressure asks nothing of a client at the floor (seen %llu)",
	   (unsigned long long)need[2].goal);
}

/*
 * max_resident of 10 pages wants 184 of the 190 held; with pressure on top,
 * the global and pressure goals may still take no client below the floor.
 */
static void test_goal_floor(void)
{
	struct uzd_config cfg = goals_cfg();
	struct uzd_reclaim_need need[3] = { { .resident = 100, .budget = HUGE_BUDGET },
					    { .resident = 60, .budget = HUGE_BUDGET },
					    { .resident = 30, .budget = HUGE_BUDGET } };
	const uint64_t floor = 50;
	bool kept = true;

	uzd_reclaim_goals(&cfg, 10, floor, true, need, 3);
	for (size_t i = 0; i < 3; i++) {
		uint64_t left = need[i].goal <= need[i].resident ? need[i].resident - need[i].goal :
								   0;

		if (need[i].goal > need[i].resident ||
		    (need[i].resident >= floor ? left < floor : need[i].goal != 0))
			kept = false;
	}
	ok(kept,
	   "the global and pressure goals push nobody below the floor of %llu (residents 100 60 "
	   "30: expected goals 50 10 0, seen %llu %llu %llu)",
	   (unsigned long long)floor, (unsigned long long)need[0].goal,
	   (unsigned long long)need[1].goal, (unsigned long long)need[2].goal);
}

static void test_hot_distance(void)
{
	ok(uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, 5000, 0) == 5000,
	   "policy workingset calls a refault within the budget hot (expected 5000, seen %u)",
	   uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, 5000, 0));
	ok(uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, 5000, 2000) == 3000,
	   "with 2000 pages in the inactive stage, within the other 3000 (seen %u)",
	   uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, 5000, 2000));
	ok(uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, 5000, 6000) == 0,
	   "an inactive stage beyond the budget leaves no hot distance (seen %u)",
	   uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, 5000, 6000));
	ok(uzd_reclaim_hot_distance(UZD_POLICY_WORKINGSET, UINT64_C(1) << 40, 0) == UINT32_MAX,
	   "a budget beyond 32 bits gives the largest hot distance, not a truncated one");
	ok(uzd_reclaim_hot_distance(UZD_POLICY_FIFO, 5000, 0) == 0,
	   "policy fifo calls nothing hot (expected 0, seen %u)",
	   uzd_reclaim_hot_distance(UZD_POLICY_FIFO, 5000, 0));
}

/* ---- page contents ---- */

enum content {
	C_MIXED,  /* compressible words; every eighth page same-filled */
	C_RANDOM, /* random bytes: stored raw, one pool page each */
};

static void page_data(enum content kind, size_t i, unsigned char *p)
{
	uint64_t w[PG / 8];

	if (kind == C_RANDOM) {
		struct rng g = { .state = 0x5eed0000u + i };

		for (size_t k = 0; k < PG / 8; k++)
			w[k] = rng_next(&g);
	} else if (i % 8 == 5) {
		uzc_page_fill(p, 0x1000 + i);
		return;
	} else {
		for (size_t k = 0; k < PG / 8; k++)
			w[k] = (uint64_t)i << 32 | (k / 16) * 0x0101u;
	}
	memcpy(p, w, PG);
}

/* ---- a client's regions, served by a fault thread of our own ---- */

#define MAX_REGIONS 2

/*
 * Page i of the fixture is page i % per of region i / per; each region has
 * its own memfd and mapping, registered on the client's one userfaultfd.
 */
struct fx {
	struct uzd_client *c;
	struct zpool *pool;
	struct uzd_fault_ctx *fc;
	struct uzd_evict_ctx *ec;
	size_t nregions, per, npages;
	int memfd[MAX_REGIONS];
	char *map[MAX_REGIONS];
	unsigned char *want; /* what each page must read */
	pthread_t fault_tid;
	bool fault_started;
	atomic_bool stop_fault;
	atomic_int fault_err;
	atomic_ulong fault_loops; /* poll rounds the fault thread has finished */
};

static void *fault_main(void *arg)
{
	struct fx *f = arg;
	struct pollfd p = { .fd = f->c->uffd, .events = POLLIN };
	int r;

	while (!atomic_load(&f->stop_fault)) {
		if (poll(&p, 1, 10) > 0) {
			r = uzd_fault_drain(f->fc, f->c);
			if (r < 0) {
				atomic_store(&f->fault_err, r);
				break;
			}
		}
		atomic_fetch_add(&f->fault_loops, 1);
	}
	return NULL;
}

/*
 * Wait until the fault thread has finished what it was doing: a client
 * thread is woken before the service publishes the page, queues it and
 * counts it, so a finished client job does not mean a settled fault.  Two
 * more rounds of the thread's loop do.
 */
static void fx_quiesce(struct fx *f)
{
	unsigned long start = atomic_load(&f->fault_loops);

	for (int t = 0; f->fault_started && t < WAIT_MS && atomic_load(&f->fault_loops) < start + 2;
	     t++)
		usleep(1000);
}

static int make_uffd(void)
{
	char why[256] = "";
	int fd = uzs_uffd_create(-1, why, sizeof(why));

	if (fd < 0 && dev_fd >= 0)
		fd = uzs_uffd_create(dev_fd, why, sizeof(why));
	if (fd < 0)
		snprintf(uffd_why, sizeof(uffd_why), "%s", why);
	return fd;
}

static char *page_ptr(const struct fx *f, size_t i)
{
	return f->map[i / f->per] + (i % f->per) * PG;
}

static uint64_t fx_addr(const struct fx *f, size_t i)
{
	return (uintptr_t)page_ptr(f, i);
}

/* The fixture's page at @addr, or -1. */
static long page_of(const struct fx *f, uint64_t addr)
{
	for (size_t k = 0; k < f->nregions; k++) {
		uint64_t base = (uintptr_t)f->map[k];

		if (addr >= base && addr < base + f->per * PG)
			return (long)(k * f->per + (addr - base) / PG);
	}
	return -1;
}

static int fx_region(struct fx *f, size_t k)
{
	struct uzd_region_args a = { .start = (uintptr_t)f->map[k], .len = f->per * PG };
	uint32_t id;
	int r;

	r = uzs_uffd_register(f->c->uffd, a.start, a.len, UZP_UFFD_REGISTER_MODES, NULL);
	if (r < 0)
		return r;
	a.memfd = dup(f->memfd[k]);
	if (a.memfd < 0)
		return -errno;
	return uzd_region_create(&f->c->regions, &a, &id);
}

static int fx_client(struct fx *f)
{
	struct uzc_spec spec;
	int r;

	r = uzd_client_new(CLIENT_ID, f->pool, &f->c);
	if (r < 0)
		return r;
	f->c->uffd = make_uffd();
	if (f->c->uffd < 0)
		return f->c->uffd;
	for (size_t k = 0; k < f->nregions; k++) {
		r = fx_region(f, k);
		if (r < 0)
			return r;
	}
	r = uzc_spec_parse("lz4", 0, &spec);
	if (r == 0)
		r = uzd_fault_ctx_new(&spec, &f->fc);
	if (r == 0)
		r = uzd_evict_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &f->ec);
	return r;
}

static int fx_map(struct fx *f, size_t k)
{
	f->memfd[k] = memfd_create("uzswap-test-reclaim", MFD_CLOEXEC);
	if (f->memfd[k] < 0 || ftruncate(f->memfd[k], (off_t)(f->per * PG)) < 0)
		return -errno;
	f->map[k] = mmap(NULL, f->per * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd[k], 0);
	return f->map[k] == MAP_FAILED ? -errno : 0;
}

static int fx_start_faults(struct fx *f)
{
	atomic_store(&f->stop_fault, false);
	f->fault_started = pthread_create(&f->fault_tid, NULL, fault_main, f) == 0;
	return f->fault_started ? 0 : -EAGAIN;
}

/*
 * @nregions regions of @per pages of @kind, nothing resident yet, and a
 * fault thread serving them; pool_max: the pool's max_pages (0: no limit).
 */
static int fx_open_regions(struct fx *f, size_t nregions, size_t per, enum content kind,
			   size_t pool_max)
{
	struct zpool_config zc = { .max_pages = pool_max };
	int r = -ENOMEM;

	memset(f, 0, sizeof(*f));
	f->nregions = nregions;
	f->per = per;
	f->npages = nregions * per;
	for (size_t k = 0; k < MAX_REGIONS; k++) {
		f->memfd[k] = -1;
		f->map[k] = MAP_FAILED;
	}
	f->want = malloc(f->npages * PG);
	if (!f->want)
		goto err;
	for (size_t i = 0; i < f->npages; i++)
		page_data(kind, i, f->want + i * PG);
	r = zpool_create("zsmalloc", &zc, &f->pool);
	for (size_t k = 0; r == 0 && k < nregions; k++)
		r = fx_map(f, k);
	if (r == 0)
		r = fx_client(f);
	if (r == 0)
		r = fx_start_faults(f);
	if (r == 0)
		return 0;
err:
	tap_diag("fixture setup failed: %s %s", strerror(-r), uffd_why);
	return r;
}

static int fx_open(struct fx *f, size_t npages, enum content kind, size_t pool_max)
{
	return fx_open_regions(f, 1, npages, kind, pool_max);
}

static void fx_stop_faults(struct fx *f)
{
	atomic_store(&f->stop_fault, true);
	if (f->fault_started)
		pthread_join(f->fault_tid, NULL);
	f->fault_started = false;
}

/* Stop serving and close the userfaultfd: every blocked client thread wakes. */
static void fx_abort(struct fx *f)
{
	fx_stop_faults(f);
	if (f->c && f->c->uffd >= 0) {
		close(f->c->uffd);
		f->c->uffd = -1;
	}
}

static void fx_close(struct fx *f)
{
	fx_abort(f);
	if (f->c)
		uzd_client_put(f->c);
	uzd_fault_ctx_free(f->fc);
	uzd_evict_ctx_free(f->ec);
	if (f->pool)
		zpool_destroy(f->pool);
	for (size_t k = 0; k < MAX_REGIONS; k++) {
		if (f->map[k] != MAP_FAILED && f->map[k])
			munmap(f->map[k], f->per * PG);
		if (f->memfd[k] >= 0)
			close(f->memfd[k]);
	}
	free(f->want);
	memset(f, 0, sizeof(*f));
}

static uint64_t entry_of(struct fx *f, size_t i)
{
	struct uzd_region *r;
	uint64_t v = UINT64_MAX;
	size_t idx;

	uzd_region_read_lock(&f->c->regions);
	r = uzd_region_lookup(&f->c->regions, fx_addr(f, i), &idx);
	if (r)
		v = __atomic_load_n(&r->entries[idx], __ATOMIC_ACQUIRE);
	uzd_region_read_unlock(&f->c->regions);
	return v;
}

static enum uzd_entry_state state_of(struct fx *f, size_t i)
{
	return uzd_entry_state(entry_of(f, i));
}

static bool is_evicted(struct fx *f, size_t i)
{
	enum uzd_entry_state st = state_of(f, i);

	return st == UZD_ENTRY_POOL || st == UZD_ENTRY_SAME;
}

/* Give resident page @i the HOT flag, as the fault service does for a hot refault. */
static int make_hot(struct fx *f, size_t i)
{
	struct uzd_region *r;
	uint64_t old;
	size_t idx;
	int ret = -ENOENT;

	uzd_region_read_lock(&f->c->regions);
	r = uzd_region_lookup(&f->c->regions, fx_addr(f, i), &idx);
	if (r)
		ret = uzd_region_claim(r, idx, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old);
	if (ret == 0)
		ret = uzd_region_publish(r, idx, uzd_entry_with_flags(old, UZD_ENTRY_HOT));
	uzd_region_read_unlock(&f->c->regions);
	return ret;
}

/* Page indexes of the queue, oldest first; the queue is left as it was.  -1: not ours. */
static size_t lru_pages(struct fx *f, long *out, size_t max)
{
	uint64_t addrs[1024];
	size_t n = uzd_lru_pop(&f->c->lru, addrs, max < 1024 ? max : 1024);

	for (size_t i = 0; i < n; i++) {
		uzd_lru_push(&f->c->lru, addrs[i]);
		out[i] = page_of(f, addrs[i]);
	}
	return n;
}

static uint64_t reclaim(struct fx *f, uint64_t goal, bool *pool_full, uint64_t *rebuilds)
{
	*rebuilds = 0;
	return uzd_reclaim_client(f->ec, f->c, goal, pool_full, rebuilds);
}

/* ---- the client's threads ---- */

enum job_op {
	JOB_WRITE,  /* write want[] into pages order[0..n), in that order */
	JOB_CHECK,  /* compare pages order[0..n) with want[]; count mismatches */
	JOB_REMOVE, /* madvise(MADV_REMOVE) pages [first, first + n) */
};

struct job {
	struct fx *f;
	enum job_op op;
	const size_t *order;
	size_t first, n;
	size_t bad;
	long ret;
	atomic_bool done;
	pthread_t tid;
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	struct fx *f = j->f;

	switch (j->op) {
	case JOB_WRITE:
		for (size_t k = 0; k < j->n; k++)
			memcpy(page_ptr(f, j->order[k]), f->want + j->order[k] * PG, PG);
		break;
	case JOB_CHECK:
		for (size_t k = 0; k < j->n; k++)
			j->bad += memcmp(page_ptr(f, j->order[k]), f->want + j->order[k] * PG,
					 PG) != 0;
		break;
	case JOB_REMOVE:
		j->ret = madvise(page_ptr(f, j->first), j->n * PG, MADV_REMOVE);
		break;
	}
	atomic_store(&j->done, true);
	return NULL;
}

static bool job_start(struct fx *f, struct job *j, enum job_op op, const size_t *order,
		      size_t first, size_t n)
{
	*j = (struct job){ .f = f, .op = op, .order = order, .first = first, .n = n };
	return pthread_create(&j->tid, NULL, job_run, j) == 0;
}

/*
 * Wait for a started job while the fault thread serves it.  False when it
 * could not finish in time (the fixture is then aborted) or the fault
 * service failed.
 */
static bool job_finish(struct fx *f, struct job *j)
{
	for (int t = 0; t < WAIT_MS && !atomic_load(&j->done); t++)
		usleep(1000);
	if (!atomic_load(&j->done)) {
		tap_diag("client thread still blocked after %d ms", WAIT_MS);
		fx_abort(f);
	}
	pthread_join(j->tid, NULL);
	fx_quiesce(f);
	if (atomic_load(&f->fault_err))
		tap_diag("uzd_fault_drain: %s", strerror(-atomic_load(&f->fault_err)));
	return atomic_load(&j->done) && !atomic_load(&f->fault_err) && f->c->uffd >= 0;
}

static bool run_job(struct fx *f, struct job *j, enum job_op op, const size_t *order, size_t first,
		    size_t n)
{
	return job_start(f, j, op, order, first, n) && job_finish(f, j);
}

/* Fault pages order[0..n) in, in that order: the fault-in order reclaim will follow. */
static bool fault_in_some(struct fx *f, const size_t *order, size_t n)
{
	struct job j;

	return run_job(f, &j, JOB_WRITE, order, 0, n);
}

static bool fault_in(struct fx *f, const size_t *order)
{
	return fault_in_some(f, order, f->npages);
}

/* Every page reads back what was written (evicted pages fault back in). */
static bool read_back(struct fx *f, size_t *bad)
{
	size_t *order = malloc(f->npages * sizeof(*order));
	struct job j = { 0 };
	bool done;

	if (!order)
		return false;
	for (size_t i = 0; i < f->npages; i++)
		order[i] = i;
	done = run_job(f, &j, JOB_CHECK, order, 0, f->npages);
	*bad = j.bad;
	free(order);
	return done;
}

static bool region_usable(const char *what)
{
	if (uffd_why[0]) {
		tap_skip("%s: cannot create a userfaultfd here: %s", what, uffd_why);
		return false;
	}
	return true;
}

/* ---- uzd_reclaim_client on a real region ---- */

#define NORDER 200
#define GOAL_ORDER 100 /* more than one batch of UZD_EVICT_BATCH */

static void test_evicts_oldest_first(void)
{
	size_t order[NORDER], wrong = 0, kept_wrong = 0, bad = 0, misqueued = 0;
	uint64_t evicted, rebuilds;
	long queued[NORDER];
	bool full, served;
	struct fx f;
	size_t n;

	if (!region_usable("the N oldest pages are evicted"))
		return;
	/* 77 is prime to 200: a fault-in order that is not the address order. */
	for (size_t k = 0; k < NORDER; k++)
		order[k] = k * 77 % NORDER;
	if (fx_open(&f, NORDER, C_MIXED, 0) < 0 || !fault_in(&f, order)) {
		ok(false, "%d pages are faulted in through the fault service", NORDER);
		goto out;
	}
	n = lru_pages(&f, queued, NORDER);
	for (size_t k = 0; k < n; k++)
		misqueued += queued[k] != (long)order[k];
	ok(n == NORDER && misqueued == 0,
	   "the fault service queues each page it makes resident, in fault-in order "
	   "(%zu queued, %zu out of place)",
	   n, misqueued);
	evicted = reclaim(&f, GOAL_ORDER, &full, &rebuilds);
	for (size_t k = 0; k < NORDER; k++) {
		if (k < GOAL_ORDER)
			wrong += !is_evicted(&f, order[k]);
		else
			kept_wrong += state_of(&f, order[k]) != UZD_ENTRY_RESIDENT;
	}
	ok(evicted == GOAL_ORDER && !full && rebuilds == 0,
	   "a goal of %d pages evicts %d (seen %llu, pool full %d, rebuilds %llu)", GOAL_ORDER,
	   GOAL_ORDER, (unsigned long long)evicted, full, (unsigned long long)rebuilds);
	ok(wrong == 0 && kept_wrong == 0,
	   "exactly the %d oldest-faulted pages are evicted (POOL or SAME) and the rest stay "
	   "RESIDENT (%zu of the oldest not evicted, %zu of the rest not resident)",
	   GOAL_ORDER, wrong, kept_wrong);
	ok(uzd_client_resident(f.c) == NORDER - GOAL_ORDER &&
		   uzd_lru_count(&f.c->lru) == NORDER - GOAL_ORDER,
	   "the evicted pages have left the queue; the resident ones are still in it "
	   "(resident %llu, queued %zu)",
	   (unsigned long long)uzd_client_resident(f.c), uzd_lru_count(&f.c->lru));
	served = read_back(&f, &bad);
	ok(served && bad == 0 && f.c->stats.faults_pool + f.c->stats.faults_same == GOAL_ORDER,
	   "every page reads back intact; the evicted ones fault back from the pool or their "
	   "word (%zu bad, %llu pool + %llu same faults)",
	   bad, (unsigned long long)f.c->stats.faults_pool,
	   (unsigned long long)f.c->stats.faults_same);
	ok(uzd_lru_count(&f.c->lru) == NORDER && uzd_client_resident(f.c) == NORDER,
	   "pages faulted back are queued again (%zu queued)", uzd_lru_count(&f.c->lru));
out:
	fx_close(&f);
}

#define NHOT 16

static void test_hot_second_chance(void)
{
	size_t order[NHOT], bad = 0, rest_resident = 0;
	uint64_t evicted, evicted2, rebuilds, e2;
	enum uzd_entry_state st2;
	long queued[NHOT];
	bool full, served;
	struct fx f;
	size_t n;

	if (!region_usable("a HOT page is passed over once"))
		return;
	for (size_t k = 0; k < NHOT; k++)
		order[k] = k;
	if (fx_open(&f, NHOT, C_MIXED, 0) < 0 || !fault_in(&f, order) || make_hot(&f, 2) < 0) {
		ok(false, "a HOT page among the oldest is passed over once");
		goto out;
	}
	evicted = reclaim(&f, 4, &full, &rebuilds);
	e2 = entry_of(&f, 2);
	ok(evicted == 4 && is_evicted(&f, 0) && is_evicted(&f, 1) && is_evicted(&f, 3) &&
		   is_evicted(&f, 4),
	   "with page 2 of the 4 oldest HOT, a goal of 4 evicts pages 0, 1, 3 and the next, 4 "
	   "(evicted %llu; states %d %d %d %d %d)",
	   (unsigned long long)evicted, state_of(&f, 0), state_of(&f, 1), state_of(&f, 3),
	   state_of(&f, 4), state_of(&f, 5));
	ok(uzd_entry_state(e2) == UZD_ENTRY_RESIDENT && !(uzd_entry_flags(e2) & UZD_ENTRY_HOT),
	   "the HOT page stays resident and loses its flag (state %d, flags %#x)",
	   uzd_entry_state(e2), uzd_entry_flags(e2));
	for (size_t i = 5; i < NHOT; i++)
		rest_resident += state_of(&f, i) == UZD_ENTRY_RESIDENT;
	ok(rest_resident == NHOT - 5, "the younger pages stay resident (%zu of %d)", rest_resident,
	   NHOT - 5);
	n = lru_pages(&f, queued, NHOT);
	ok(n == NHOT - 4 && queued[n - 1] == 2 && queued[0] == 5,
	   "the passed-over page goes to the end of the queue (%zu queued, first %ld, last %ld; "
	   "expected 12, 5, 2)",
	   n, n ? queued[0] : -1, n ? queued[n - 1] : -1);
	/* Pages 5..15, then page 2: its turn comes again last. */
	evicted = reclaim(&f, NHOT - 5, &full, &rebuilds);
	st2 = state_of(&f, 2);
	evicted2 = reclaim(&f, 1, &full, &rebuilds);
	ok(evicted == NHOT - 5 && st2 == UZD_ENTRY_RESIDENT && evicted2 == 1 && is_evicted(&f, 2),
	   "the once-HOT page is evicted when its turn comes again, after the younger pages "
	   "(%llu then %llu)",
	   (unsigned long long)evicted, (unsigned long long)evicted2);
	served = read_back(&f, &bad);
	ok(served && bad == 0, "every page reads back intact after the evictions (%zu bad)", bad);
out:
	fx_close(&f);
}

/* ---- access sampling: the inactive stage ---- */

#define NSAMPLE 200
#define SAMPLE_STAGE 64 /* pages in the inactive stage */
#define SAMPLE_GOAL 16

/* Pages [0, NSAMPLE) faulted in in order, this process sampling itself. */
static bool open_sampled(struct fx *f)
{
	size_t order[NSAMPLE];

	for (size_t k = 0; k < NSAMPLE; k++)
		order[k] = k;
	if (fx_open(f, NSAMPLE, C_MIXED, 0) < 0 || !fault_in(f, order))
		return false;
	f->c->budget_pages = NSAMPLE;
	f->c->sample_pages = SAMPLE_STAGE;
	f->c->share.share = UZD_SHARE_ONE; /* every batch judged */
	return uzd_sampler_open(&f->c->sampler, -1, getpid()) == 0;
}

/*
 * Open @f as open_sampled() does, for the sampling test named @what: false
 * when the test cannot run here (skipped: no userfaultfd, or swap on) or
 * its pages could not be set up (a failed check, and @f closed again).
 */
static bool start_sampled(struct fx *f, const char *what)
{
	if (!region_usable(what))
		return false;
	if (!uzd_sample_usable()) {
		tap_skip("%s: swap is on", what);
		return false;
	}
	if (!open_sampled(f)) {
		ok(false, "%d pages are faulted in and the test samples itself", NSAMPLE);
		fx_close(f);
		return false;
	}
	return true;
}

/* Read pages [0, n) that are even: the client touching them. */
static bool touch_even(struct fx *f, size_t n)
{
	size_t order[NSAMPLE], m = 0;
	struct job j;

	for (size_t k = 0; k < n; k += 2)
		order[m++] = k;
	return run_job(f, &j, JOB_CHECK, order, 0, m) && j.bad == 0;
}

static void test_sampled_touched_protected(void)
{
	size_t touched_evicted = 0, idle_evicted = 0, bad = 0;
	uint64_t evicted, rebuilds;
	bool full, served;
	struct fx f;

	if (!start_sampled(&f, "pages touched since their zap are protected"))
		return;
	evicted = reclaim(&f, 1, &full, &rebuilds);
	ok(evicted == 1 && is_evicted(&f, 0) && f.c->stats.sampled >= SAMPLE_STAGE &&
		   uzd_lru_count(&f.c->inactive) >= SAMPLE_STAGE - 32,
	   "a first round zaps the queued pages into the inactive stage and evicts the oldest "
	   "(evicted %llu, page 0 state %d, %llu zapped, %zu inactive)",
	   (unsigned long long)evicted, state_of(&f, 0), (unsigned long long)f.c->stats.sampled,
	   uzd_lru_count(&f.c->inactive));
	if (!touch_even(&f, SAMPLE_STAGE)) {
		ok(false, "the client reads back the even pages among the oldest");
		goto out;
	}
	evicted = reclaim(&f, SAMPLE_GOAL, &full, &rebuilds);
	for (size_t i = 1; i < SAMPLE_STAGE; i++) {
		if (i % 2 == 0)
			touched_evicted += is_evicted(&f, i);
		else
			idle_evicted += is_evicted(&f, i);
	}
	ok(evicted == SAMPLE_GOAL && touched_evicted == 0 && idle_evicted == SAMPLE_GOAL,
	   "a goal of %d evicts only pages left untouched since their zap (evicted %llu: %zu "
	   "touched, %zu untouched)",
	   SAMPLE_GOAL, (unsigned long long)evicted, touched_evicted, idle_evicted);
	ok(f.c->stats.sampled_touched >= SAMPLE_GOAL / 2 &&
		   uzd_lru_count(&f.c->hot) == f.c->stats.sampled_touched &&
		   (uzd_entry_flags(entry_of(&f, 2)) & UZD_ENTRY_HOT) &&
		   !(uzd_entry_flags(entry_of(&f, 2)) & UZD_ENTRY_SAMPLED),
	   "the touched pages judged are protected: HOT, unmarked, on the protected queue "
	   "(%llu touched, %zu protected, page 2 flags %#x)",
	   (unsigned long long)f.c->stats.sampled_touched, uzd_lru_count(&f.c->hot),
	   uzd_entry_flags(entry_of(&f, 2)));
	served = read_back(&f, &bad);
	ok(served && bad == 0, "every page reads back intact, zapped or evicted (%zu bad)", bad);
out:
	fx_close(&f);
}

static void test_sample_share(void)
{
	const uint32_t one = UZD_SHARE_ONE, floor = UZD_SHARE_ONE / 32;
	uint32_t s = one;
	int windows = 0;

	ok(uzd_reclaim_sample_share(floor, 128, 0, 0) == one,
	   "sample_touched_pct 0 judges every batch, whatever the verdicts");
	ok(uzd_reclaim_sample_share(300, 0, 0, 10) == 300,
	   "without verdicts the share stays where it is");
	ok(uzd_reclaim_sample_share(one, 128, 0, 10) == (one + floor + 1) / 2,
	   "a window with nothing touched moves the share halfway to the floor (%u)",
	   uzd_reclaim_sample_share(one, 128, 0, 10));
	while (s > floor + 1 && windows < 64) {
		s = uzd_reclaim_sample_share(s, 128, 0, 10);
		windows++;
	}
	ok(s >= floor && s <= floor + 1 && windows <= 12 &&
		   uzd_reclaim_sample_share(s, 128, 0, 10) >= floor,
	   "a client whose sampled pages are never touched is sampled 1 batch in 32, never "
	   "less (share %u of %u after %d windows)",
	   s, one, windows);
	for (windows = 0; s < one && windows < 64; windows++)
		s = uzd_reclaim_sample_share(s, 128, 32, 10);
	ok(s == one && windows <= 12,
	   "a client with 25%% of its sampled pages touched (over the 10%% break-even) goes "
	   "back to every batch (share %u after %d windows)",
	   s, windows);
	s = one / 2;
	for (int k = 0; k < 8; k++)
		s = uzd_reclaim_sample_share(s, 200, 10, 10);
	ok(s >= one / 2 - 2 && s <= one / 2 + 2,
	   "under the break-even the share is in proportion: 5%% touched of a 10%% break-even "
	   "judges half the batches (share %u of %u)",
	   s, one);
}

/*
 * A client sampled 1 batch in 32: eviction takes its first batches from
 * probation unjudged, in fault-in order, and zaps nothing; at 1 in 2,
 * every other batch is judged.
 */
/* The verdicts the client's next share will be set from (reclaim.c stage_pages). */
static uint64_t verdicts_since_share(const struct fx *f)
{
	const struct uzd_client *c = f->c;

	return c->stats.sampled_idle + c->stats.sampled_touched - c->share.idle_at -
	       c->share.touched_at;
}

static void test_share_spreads_judging(void)
{
	size_t fifo = 0;
	uint64_t evicted, judged_before, rebuilds;
	bool full;
	struct fx f;

	if (!start_sampled(&f, "the sampled share of batches is spread evenly"))
		return;
	f.c->share.share = UZD_SHARE_ONE / 32;
	f.c->share.credit = 0;
	evicted = reclaim(&f, SAMPLE_GOAL, &full, &rebuilds);
	for (size_t i = 0; i < SAMPLE_GOAL; i++)
		fifo += is_evicted(&f, i);
	ok(evicted == SAMPLE_GOAL && fifo == SAMPLE_GOAL && f.c->stats.sampled == 0 &&
		   verdicts_since_share(&f) == 0,
	   "at 1 batch in 32 the first batch goes unjudged, oldest first, with nothing zapped "
	   "(evicted %llu, %zu of them the oldest, %llu zapped)",
	   (unsigned long long)evicted, fifo, (unsigned long long)f.c->stats.sampled);
	f.c->share.share = UZD_SHARE_ONE / 2;
	f.c->share.credit = 0;
	judged_before = f.c->stats.sampled_idle + f.c->stats.sampled_touched;
	for (int k = 0; k < 4; k++)
		evicted += reclaim(&f, 1, &full, &rebuilds);
	ok(evicted == SAMPLE_GOAL + 4 &&
		   f.c->stats.sampled_idle + f.c->stats.sampled_touched - judged_before == 2 &&
		   verdicts_since_share(&f) == 2,
	   "at 1 in 2, two of four one-page rounds are judged, and their verdicts counted "
	   "for the next share (%llu judged, %llu counted)",
	   (unsigned long long)(f.c->stats.sampled_idle + f.c->stats.sampled_touched -
				judged_before),
	   (unsigned long long)verdicts_since_share(&f));
	fx_close(&f);
}

/*
 * Pages the kernel cannot zap (mapped twice, so MADV_PAGEOUT leaves them
 * alone, as it does folios waiting in a per-CPU LRU batch) stay mapped and
 * go back to probation: a refill tries each of them once, and eviction
 * takes its goal from probation without a verdict.
 */
static void test_unzappable_tried_once(void)
{
	uint64_t evicted, rebuilds;
	size_t bad = 0, len = NSAMPLE * (size_t)UZD_PAGE_SIZE;
	volatile unsigned char sum = 0;
	unsigned char *alias;
	bool full, served;
	struct fx f;

	if (!start_sampled(&f, "pages the kernel cannot zap are tried once a refill"))
		return;
	alias = mmap(NULL, len, PROT_READ, MAP_SHARED, f.memfd[0], 0);
	if (alias == MAP_FAILED) {
		ok(false, "the memfd maps a second time: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < NSAMPLE; i++)
		sum += alias[i * UZD_PAGE_SIZE];
	evicted = reclaim(&f, SAMPLE_GOAL, &full, &rebuilds);
	ok(evicted == SAMPLE_GOAL && f.c->stats.sampled <= NSAMPLE &&
		   uzd_lru_count(&f.c->inactive) == 0,
	   "with every page mapped twice, a goal of %d is evicted without a verdict and each "
	   "page is zapped at most once (evicted %llu, %llu zaps for %d pages, %zu inactive)",
	   SAMPLE_GOAL, (unsigned long long)evicted, (unsigned long long)f.c->stats.sampled,
	   NSAMPLE, uzd_lru_count(&f.c->inactive));
	munmap(alias, len);
	served = read_back(&f, &bad);
	ok(served && bad == 0, "every page reads back intact (%zu bad)", bad);
out:
	fx_close(&f);
}

static void test_sampling_off_drains_stage(void)
{
	uint64_t evicted, rebuilds;
	size_t inactive, bad = 0;
	bool full, served;
	struct fx f;

	if (!start_sampled(&f, "turning sampling off gives the inactive pages back"))
		return;
	reclaim(&f, 1, &full, &rebuilds);
	inactive = uzd_lru_count(&f.c->inactive);
	f.c->sample_pages = 0; /* as reclaim sets it once swap is turned on */
	evicted = reclaim(&f, NSAMPLE - 1, &full, &rebuilds);
	ok(inactive > 0 && evicted == NSAMPLE - 1 && uzd_lru_count(&f.c->inactive) == 0 &&
		   uzd_client_resident(f.c) == 0,
	   "with sampling off, the %zu inactive pages go back to probation and every page can "
	   "be evicted (evicted %llu, %zu still inactive, %llu resident)",
	   inactive, (unsigned long long)evicted, uzd_lru_count(&f.c->inactive),
	   (unsigned long long)uzd_client_resident(f.c));
	served = read_back(&f, &bad);
	ok(served && bad == 0, "every page reads back intact (%zu bad)", bad);
	fx_close(&f);
}

static void test_sampling_gone_process(void)
{
	uint64_t evicted, rebuilds;
	size_t order[NSAMPLE];
	bool full;
	struct fx f;
	pid_t pid;
	int ret = -1, status;

	if (!region_usable("a sampled process that is gone stops sampling"))
		return;
	for (size_t k = 0; k < NSAMPLE; k++)
		order[k] = k;
	if (fx_open(&f, NSAMPLE, C_MIXED, 0) < 0 || !fault_in(&f, order)) {
		ok(false, "%d pages are faulted in", NSAMPLE);
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	if (pid > 0) {
		ret = uzd_sampler_open(&f.c->sampler, -1, pid);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	f.c->budget_pages = NSAMPLE;
	f.c->sample_pages = NSAMPLE;
	f.c->share.share = UZD_SHARE_ONE;
	evicted = ret == 0 ? reclaim(&f, SAMPLE_GOAL, &full, &rebuilds) : 0;
	ok(ret == 0 && evicted == SAMPLE_GOAL && !uzd_sampler_active(&f.c->sampler) &&
		   f.c->sample_pages == 0,
	   "when the sampled process is gone, reclaim stops sampling it and evicts without "
	   "(open %d, evicted %llu, sampler %s)",
	   ret, (unsigned long long)evicted,
	   uzd_sampler_active(&f.c->sampler) ? "still active" : "closed");
out:
	fx_close(&f);
}

#define NREB 32

static void test_rebuild_after_clear(void)
{
	size_t order[NREB], evicted_pages = 0, bad = 0;
	uint64_t evicted, rebuilds;
	bool full, served;
	struct fx f;

	if (!region_usable("an emptied queue is rebuilt from the table"))
		return;
	for (size_t k = 0; k < NREB; k++)
		order[k] = NREB - 1 - k;
	if (fx_open(&f, NREB, C_MIXED, 0) < 0 || !fault_in(&f, order)) {
		ok(false, "with a queue emptied by hand, reclaim rebuilds it and still evicts");
		goto out;
	}
	uzd_lru_clear(&f.c->lru);
	evicted = reclaim(&f, 0, &full, &rebuilds);
	ok(evicted == 0 && rebuilds == 0 && uzd_lru_count(&f.c->lru) == 0 &&
		   uzd_client_resident(f.c) == NREB,
	   "a goal of 0 evicts nothing and rebuilds nothing (evicted %llu, rebuilds %llu)",
	   (unsigned long long)evicted, (unsigned long long)rebuilds);
	evicted = reclaim(&f, 8, &full, &rebuilds);
	for (size_t i = 0; i < NREB; i++)
		evicted_pages += is_evicted(&f, i);
	ok(evicted == 8 && evicted_pages == 8 && rebuilds == 1,
	   "with its queue emptied by hand, reclaim rebuilds it from the table once and still "
	   "evicts 8 pages (evicted %llu, %zu pages not resident, %llu rebuilds)",
	   (unsigned long long)evicted, evicted_pages, (unsigned long long)rebuilds);
	ok(uzd_lru_count(&f.c->lru) == NREB - 8,
	   "the rebuilt queue holds the pages still resident (%zu, expected %d)",
	   uzd_lru_count(&f.c->lru), NREB - 8);
	served = read_back(&f, &bad);
	ok(served && bad == 0, "every page reads back intact (%zu bad)", bad);
out:
	fx_close(&f);
}

/* A queue that lost pushes (dropped > 0) is not trusted: it is rebuilt before use. */
static void test_rebuild_after_dropped_push(void)
{
	size_t order[NREB];
	uint64_t evicted, rebuilds, addrs[NREB], dropped;
	bool full;
	struct fx f;

	if (!region_usable("a queue that dropped pushes is rebuilt"))
		return;
	for (size_t k = 0; k < NREB; k++)
		order[k] = k;
	if (fx_open(&f, NREB, C_MIXED, 0) < 0 || !fault_in(&f, order)) {
		ok(false, "a queue that dropped pushes is rebuilt before reclaim takes from it");
		goto out;
	}
	/* Lose the 24 oldest entries, as if their pushes had failed. */
	uzd_lru_pop(&f.c->lru, addrs, 24);
	pthread_mutex_lock(&f.c->lru.lock);
	f.c->lru.dropped = 24;
	pthread_mutex_unlock(&f.c->lru.lock);
	evicted = reclaim(&f, 4, &full, &rebuilds);
	pthread_mutex_lock(&f.c->lru.lock);
	dropped = f.c->lru.dropped;
	pthread_mutex_unlock(&f.c->lru.lock);
	ok(evicted == 4 && rebuilds == 1 && dropped == 0 && uzd_lru_count(&f.c->lru) == NREB - 4,
	   "a queue that dropped pushes is rebuilt before reclaim takes from it (evicted %llu, "
	   "rebuilds %llu, dropped now %llu, queued %zu)",
	   (unsigned long long)evicted, (unsigned long long)rebuilds, (unsigned long long)dropped,
	   uzd_lru_count(&f.c->lru));
out:
	fx_close(&f);
}

/* The queue runs dry before the goal is met: one rebuild, and reclaim carries on. */
static void test_rebuild_when_dry(void)
{
	size_t order[NREB];
	uint64_t evicted, rebuilds, addrs[NREB];
	bool full;
	struct fx f;

	if (!region_usable("a queue that runs dry is rebuilt"))
		return;
	for (size_t k = 0; k < NREB; k++)
		order[k] = k;
	if (fx_open(&f, NREB, C_MIXED, 0) < 0 || !fault_in(&f, order)) {
		ok(false, "a queue that runs dry mid-goal is rebuilt once");
		goto out;
	}
	/* Only 5 entries left, though all 32 pages are resident. */
	uzd_lru_pop(&f.c->lru, addrs, NREB - 5);
	evicted = reclaim(&f, 10, &full, &rebuilds);
	ok(evicted == 10 && rebuilds == 1 && uzd_client_resident(f.c) == NREB - 10,
	   "a queue that runs dry mid-goal is rebuilt once and reclaim carries on (evicted %llu "
	   "of 10, rebuilds %llu)",
	   (unsigned long long)evicted, (unsigned long long)rebuilds);
	evicted = reclaim(&f, 2 * NREB, &full, &rebuilds);
	ok(evicted == NREB - 10 && uzd_client_resident(f.c) == 0 && rebuilds <= 1,
	   "a goal beyond what is resident evicts everything and stops (evicted %llu of %d, "
	   "rebuilds %llu)",
	   (unsigned long long)evicted, NREB - 10, (unsigned long long)rebuilds);
out:
	fx_close(&f);
}

#define NDROP 32

static void test_dropped_pages_skipped(void)
{
	size_t order[NDROP], wrong = 0, bad = 0;
	uint64_t evicted, rebuilds;
	struct job j;
	bool full, served;
	struct fx f;

	if (!region_usable("dropped pages are skipped"))
		return;
	for (size_t k = 0; k < NDROP; k++)
		order[k] = k;
	if (fx_open(&f, NDROP, C_MIXED, 0) < 0 || !fault_in(&f, order) ||
	    !run_job(&f, &j, JOB_REMOVE, NULL, 0, 4) || j.ret != 0) {
		ok(false, "pages dropped with MADV_REMOVE are skipped by reclaim");
		goto out;
	}
	memset(f.want, 0, 4 * PG);
	evicted = reclaim(&f, 8, &full, &rebuilds);
	for (size_t i = 0; i < NDROP; i++) {
		if (i < 4)
			wrong += state_of(&f, i) != UZD_ENTRY_EMPTY;
		else if (i < 12)
			wrong += !is_evicted(&f, i);
		else
			wrong += state_of(&f, i) != UZD_ENTRY_RESIDENT;
	}
	ok(evicted == 8 && wrong == 0,
	   "pages dropped with MADV_REMOVE are skipped: the 8 oldest still resident are evicted "
	   "(evicted %llu, %zu pages in the wrong state)",
	   (unsigned long long)evicted, wrong);
	ok(uzd_lru_count(&f.c->lru) == NDROP - 12,
	   "the dropped pages' entries leave the queue (%zu queued, expected %d)",
	   uzd_lru_count(&f.c->lru), NDROP - 12);
	served = read_back(&f, &bad);
	ok(served && bad == 0, "dropped pages read zeros, the others their data (%zu bad)", bad);
out:
	fx_close(&f);
}

#define NFULL 16
#define FULL_POOL_PAGES 4

static void test_pool_full(void)
{
	size_t order[NFULL], resident = 0, intact = 0, unqueued = 0, n;
	unsigned char back[PG];
	uint64_t evicted, rebuilds;
	long queued[2 * NFULL];
	bool full = false, served;
	size_t bad = 0;
	struct fx f;

	if (!region_usable("a full pool leaves pages resident and queued"))
		return;
	for (size_t k = 0; k < NFULL; k++)
		order[k] = k;
	if (fx_open(&f, NFULL, C_RANDOM, FULL_POOL_PAGES) < 0 || !fault_in(&f, order)) {
		ok(false, "a full pool sets pool_full");
		goto out;
	}
	evicted = reclaim(&f, NFULL, &full, &rebuilds);
	ok(full && evicted < NFULL,
	   "a pool of %d pages refuses %d incompressible pages: pool_full is set (evicted %llu)",
	   FULL_POOL_PAGES, NFULL, (unsigned long long)evicted);
	n = lru_pages(&f, queued, 2 * NFULL);
	for (size_t i = 0; i < NFULL; i++) {
		bool in_queue = false;

		if (state_of(&f, i) != UZD_ENTRY_RESIDENT)
			continue;
		resident++;
		intact += pread(f.memfd[0], back, PG, (off_t)(i * PG)) == PG &&
			  memcmp(back, f.want + i * PG, PG) == 0;
		for (size_t k = 0; k < n; k++)
			in_queue |= queued[k] == (long)i;
		unqueued += !in_queue;
	}
	ok(resident == NFULL - evicted && intact == resident,
	   "the refused pages stay resident with their bytes (%zu resident, %zu intact)", resident,
	   intact);
	ok(unqueued == 0 && n == resident,
	   "the refused pages are still queued, once each (%zu queued, %zu resident not queued)", n,
	   unqueued);
	served = read_back(&f, &bad);
	ok(served && bad == 0, "every page reads back intact (%zu bad)", bad);
out:
	fx_close(&f);
}

#define PER_EAGAIN 8

/*
 * A batch that fails with -EAGAIN (a REMOVE event the fault thread has not
 * read yet) evicts nothing; the pages it popped must not be forgotten: every
 * resident page stays queued (lru.h), whichever region it is in.  The
 * client's pages lie in two regions, faulted in alternately, so that one
 * batch of victims spans both.
 */
static void test_eagain_keeps_queue(void)
{
	size_t order[8] = {
		0, PER_EAGAIN, 1, PER_EAGAIN + 1, 2, PER_EAGAIN + 2, 3, PER_EAGAIN + 3
	};
	size_t resident = 0, unqueued = 0, n;
	struct pollfd p = { .events = POLLIN };
	long queued[4 * PER_EAGAIN];
	uint64_t evicted, rebuilds;
	bool full, removed;
	struct job j;
	struct fx f;

	if (!region_usable("a batch failing with -EAGAIN forgets no page"))
		return;
	if (fx_open_regions(&f, 2, PER_EAGAIN, C_MIXED, 0) < 0 || !fault_in_some(&f, order, 8)) {
		ok(false, "a batch that fails with -EAGAIN leaves every resident page queued");
		goto out;
	}
	/* Nobody reads the client's events now: its MADV_REMOVE stays unread. */
	fx_stop_faults(&f);
	p.fd = f.c->uffd;
	if (!job_start(&f, &j, JOB_REMOVE, NULL, PER_EAGAIN - 1, 1)) {
		ok(false, "a batch that fails with -EAGAIN leaves every resident page queued");
		goto out;
	}
	if (poll(&p, 1, WAIT_MS) != 1) {
		ok(false, "the MADV_REMOVE event is pending");
		fx_abort(&f);
		pthread_join(j.tid, NULL);
		goto out;
	}
	evicted = reclaim(&f, 4, &full, &rebuilds);
	n = lru_pages(&f, queued, 4 * PER_EAGAIN);
	for (size_t k = 0; k < 8; k++) {
		bool in_queue = false;

		if (state_of(&f, order[k]) != UZD_ENTRY_RESIDENT)
			continue;
		resident++;
		for (size_t i = 0; i < n; i++)
			in_queue |= queued[i] == (long)order[k];
		unqueued += !in_queue;
	}
	ok(evicted == 0 && resident == 8,
	   "with a REMOVE event unread, reclaim evicts nothing and every page stays resident "
	   "(evicted %llu, %zu of 8 resident)",
	   (unsigned long long)evicted, resident);
	ok(unqueued == 0,
	   "a batch across two regions that fails with -EAGAIN leaves every resident page "
	   "queued (%zu queued, %zu resident pages no longer queued)",
	   n, unqueued);
	/* Serve again: the event is read, the madvise returns. */
	removed = fx_start_faults(&f) == 0 && job_finish(&f, &j) && j.ret == 0;
	evicted = reclaim(&f, 4, &full, &rebuilds);
	ok(removed && evicted == 4,
	   "once the event is read, the next reclaim evicts its goal (evicted %llu of 4)",
	   (unsigned long long)evicted);
out:
	fx_close(&f);
}

/* ---- the reclaim thread ---- */

#define NTHREAD 256
#define BUDGET 128 /* high 90%: 115; low 50%: 64 */

struct snap {
	struct uzd_client *c;
	atomic_int calls;
};

/* The server's list, of one client: a reference for the round, as the contract says. */
static size_t snapshot_one(void *arg, struct uzd_client **out, size_t max)
{
	struct snap *s = arg;

	atomic_fetch_add(&s->calls, 1);
	if (!max)
		return 0;
	uzd_client_get(s->c);
	out[0] = s->c;
	return 1;
}

static bool wait_calls(struct snap *s, int n)
{
	for (int t = 0; t < WAIT_MS && atomic_load(&s->calls) < n; t++)
		usleep(1000);
	return atomic_load(&s->calls) >= n;
}

static void test_thread(void)
{
	size_t order[NTHREAD], bad = 0;
	struct uzd_reclaim_stats st;
	struct uzd_reclaim *rc = NULL;
	struct uzd_config cfg;
	struct snap s = { 0 };
	uint64_t resident = 0, low;
	int t, refs, ret;
	bool served, started;
	struct fx f;

	if (!region_usable("the reclaim thread"))
		return;
	for (size_t k = 0; k < NTHREAD; k++)
		order[k] = k;
	uzd_config_defaults(&cfg, UINT64_C(1) << 30);
	cfg.high_watermark = 90;
	cfg.low_watermark = 50;
	cfg.max_resident = UINT64_C(1) << 50; /* no global goal */
	cfg.client_min_resident = 0;
	cfg.psi_some_avg10_centi = 0; /* no pressure goal */
	cfg.min_available = 0;
	cfg.interval_ms = 60000; /* only a kick wakes it within the test */
	cfg.max_clients = 4;
	cfg.policy = UZD_POLICY_WORKINGSET;
	low = BUDGET * cfg.low_watermark / 100;
	if (fx_open(&f, NTHREAD, C_MIXED, 0) < 0) {
		ok(false, "the reclaim thread starts");
		goto out;
	}
	f.c->budget_pages = BUDGET;
	s.c = f.c;
	ret = uzd_reclaim_start(&cfg, f.pool, snapshot_one, &s, &rc);
	started = ret == 0 && wait_calls(&s, 1);
	if (!ok(started, "the reclaim thread starts and runs a first round (%d, %d snapshots)", ret,
		atomic_load(&s.calls)))
		goto out;
	if (!fault_in(&f, order)) {
		ok(false, "%d pages are faulted in", NTHREAD);
		goto out;
	}
	usleep(50000);
	ok(atomic_load(&s.calls) == 1 && uzd_client_resident(f.c) == NTHREAD,
	   "without a kick, no round runs before the interval (%d snapshots, %llu resident)",
	   atomic_load(&s.calls), (unsigned long long)uzd_client_resident(f.c));
	uzd_reclaim_kick(rc);
	for (t = 0; t < WAIT_MS; t++) {
		resident = uzd_client_resident(f.c);
		if (resident <= low)
			break;
		usleep(1000);
	}
	ok(resident <= low,
	   "after a kick, a client of %d pages over a budget of %d is taken to its low watermark "
	   "(%llu) within %d ms (resident %llu after %d ms)",
	   NTHREAD, BUDGET, (unsigned long long)low, WAIT_MS, (unsigned long long)resident, t);
	/* The round counts its evictions after the last of them: wait for the count. */
	for (t = 0; t < WAIT_MS; t++) {
		uzd_reclaim_stats(rc, &st);
		if (st.evicted >= NTHREAD - low)
			break;
		usleep(1000);
	}
	ok(st.rounds >= 1 && st.evicted >= NTHREAD - low && st.pool_full == 0,
	   "the stats count the round and its evictions (rounds %llu, evicted %llu, expected at "
	   "least %llu)",
	   (unsigned long long)st.rounds, (unsigned long long)st.evicted,
	   (unsigned long long)(NTHREAD - low));
	ok(__atomic_load_n(&f.c->hot_distance, __ATOMIC_RELAXED) == BUDGET,
	   "a round sets the client's hot distance to its budget under policy workingset (%u)",
	   __atomic_load_n(&f.c->hot_distance, __ATOMIC_RELAXED));
	uzd_reclaim_stop(rc);
	rc = NULL;
	refs = __atomic_load_n(&f.c->refs, __ATOMIC_ACQUIRE);
	ok(refs == 1,
	   "stop joins the thread, and every reference a round took is dropped "
	   "(refs %d, expected 1)",
	   refs);
	served = read_back(&f, &bad);
	ok(served && bad == 0,
	   "every page reads back intact after the thread's evictions (%zu bad)", bad);
out:
	uzd_reclaim_stop(rc);
	fx_close(&f);
}

static void test_stop_idle(void)
{
	struct uzd_reclaim *rc = NULL;
	struct uzd_config cfg;
	struct zpool *pool = NULL;
	struct zpool_config zc = { 0 };
	struct snap s = { 0 };
	struct uzd_client *c = NULL;
	int ret, refs;

	uzd_config_defaults(&cfg, UINT64_C(1) << 30);
	cfg.max_clients = 4;
	if (zpool_create("zsmalloc", &zc, &pool) < 0 || uzd_client_new(CLIENT_ID, pool, &c) < 0) {
		ok(false, "a reclaim thread with nothing to do stops at once");
		goto out;
	}
	s.c = c;
	ret = uzd_reclaim_start(&cfg, pool, snapshot_one, &s, &rc);
	if (ret == 0)
		wait_calls(&s, 1);
	uzd_reclaim_stop(rc);
	refs = __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE);
	ok(ret == 0 && atomic_load(&s.calls) >= 1 && refs == 1,
	   "a reclaim thread with a client and nothing to evict stops cleanly and leaves its "
	   "references balanced (%d, %d rounds, refs %d)",
	   ret, atomic_load(&s.calls), refs);
out:
	if (c)
		uzd_client_put(c);
	if (pool)
		zpool_destroy(pool);
}

static void probe_uffd(void)
{
	int fd;

	dev_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	fd = make_uffd();
	if (fd >= 0) {
		close(fd);
		uffd_why[0] = '\0';
	}
}

int main(void)
{
	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	alarm(WATCHDOG_S);
	probe_uffd();

	test_goal_over_high_watermark();
	test_goal_at_or_under_high_watermark();
	test_goal_global_shared();
	test_goal_global_under_limit();
	test_goal_global_after_budget();
	test_goal_per_uid();
	test_goal_global_after_uid();
	test_goal_pressure();
	test_goal_floor();
	test_hot_distance();

	test_evicts_oldest_first();
	test_hot_second_chance();
	test_rebuild_after_clear();
	test_rebuild_after_dropped_push();
	test_rebuild_when_dry();
	test_dropped_pages_skipped();
	test_pool_full();
	test_eagain_keeps_queue();
	test_sampled_touched_protected();
	test_sample_share();
	test_share_spreads_judging();
	test_unzappable_tried_once();
	test_sampling_off_drains_stage();
	test_sampling_gone_process();

	test_stop_idle();
	test_thread();

	if (dev_fd >= 0)
		close(dev_fd);
	return tap_done();
}
