/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_integrity.c - no lost write and no stale read
 * through a real uzswapd, with eviction running all the time.
 *
 * One client process (a child: if the daemon died, libuzswap would stop
 * it, and the TAP stream must survive that) connects with the daemon's
 * client budget of 16 MiB and creates a 128 MiB region, 8 times the
 * budget.  It writes every page once (real python and redis pages with a
 * stamp, some same-filled, some incompressible: tests/integration/
 * pattern.h), then reads and writes pages at random, first with 1 thread
 * for PHASE1_MS, then with 4 threads for PHASE2_MS.  Each page has a
 * version counter outside the region; each thread owns the pages p with
 * p % threads == its index and is the only writer of them, and every read
 * is compared with the whole page its version says: an owner's read is
 * exact, a read of another thread's page goes through a per-page seqlock
 * and is discarded if it overlapped a write.  A sampler thread reads the
 * client's stats every SAMPLE_MS: its resident pages must stay below twice
 * the budget.  At the end every page is checked once more; once the client
 * is idle, reclaim must bring it back within its budget within IDLE_MS;
 * the daemon's status must show evictions and pool pages; and after the
 * client has left the daemon must hold nothing.
 *
 * The child reports through shared memory (struct shared); the parent
 * makes the test points.  UZSWAP_TEST_SEED sets the seed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET (16 * MIB)
#define REGION (128 * MIB)
#define NPAGES (REGION / PAT_PAGE)
#define PHASE1_MS 8000	/* random reads and writes, 1 thread */
#define PHASE2_MS 12000 /* the same, 4 threads */
#define MAX_THREADS 4
#define SAMPLE_MS 20
#define OPS_PER_CLOCK 32 /* operations between two looks at the clock */
#define DIAG_MAX 10	 /* mismatches described per process */
#define IDLE_MS 3000	 /* for reclaim to catch up once the client stops */
#define CHILD_TIMEOUT_MS 120000
#define WATCHDOG_S 200

struct counts {
	uint64_t writes, reads_own, reads_other, discarded, bad;
};

struct phase {
	unsigned int threads;
	struct counts c;
	uint64_t ms;
	uint64_t max_resident, samples, resident_sum; /* pages, from uzswap_stats */
	uint64_t faults, evictions;		      /* during the phase */
};

/* What the client child reports; written by the child, read by the parent after it waits. */
struct shared {
	uint64_t seed;
	int setup_err;
	uint64_t budget;
	uint64_t fill_ms;
	struct phase ph[2];
	uint64_t final_checked, final_bad;
	struct uzswap_stats end;
	uint64_t idle_ms, idle_resident; /* back within the budget once idle */
	int idle_err;
	int release_err;
	int stats_err; /* the sampler's first failure of uzswap_stats, and its message */
	char stats_msg[256];
	atomic_int state;  /* child: 1 running, 2 waiting for the parent's look at the status */
	atomic_int go_on;  /* parent: the child may release its region and leave */
	atomic_uint diags; /* mismatches described so far */
};

static struct hd_daemon daemon_; /* the child reads its copy of the socket path */

/* ---- the client child ---- */

struct client {
	struct shared *S;
	struct uzswap *u;
	char *map;
	struct pat pat;
	uint64_t *ver; /* per page: the last version written */
	uint64_t *seq; /* per page: odd while its owner writes it */
	atomic_int phase;
	atomic_bool stop_sampler;
};

struct worker {
	struct client *C;
	unsigned int id, n;
	struct rng g;
	uint64_t deadline;
	struct counts c;
	pthread_t tid;
};

static void bad_read(struct client *C, const char *who, uint64_t p, uint64_t v, const char *why)
{
	if (atomic_fetch_add(&C->S->diags, 1) < DIAG_MAX)
		tap_diag("client: %s: page %" PRIu64 " expected version %" PRIu64 ", read %s", who,
			 p, v, why);
}

static void op_write(struct worker *w, uint64_t p)
{
	struct client *C = w->C;
	uint64_t v = (__atomic_load_n(&C->ver[p], __ATOMIC_RELAXED) + 1) & PAT_VERSION_MAX;

	__atomic_fetch_add(&C->seq[p], 1, __ATOMIC_SEQ_CST);
	pat_write(&C->pat, C->map + p * PAT_PAGE, p, v);
	__atomic_store_n(&C->ver[p], v, __ATOMIC_RELEASE);
	__atomic_fetch_add(&C->seq[p], 1, __ATOMIC_RELEASE);
	w->c.writes++;
}

static void op_read_own(struct worker *w, uint64_t p)
{
	struct client *C = w->C;
	uint64_t v = __atomic_load_n(&C->ver[p], __ATOMIC_RELAXED);
	char why[96];

	if (!pat_verify(&C->pat, C->map + p * PAT_PAGE, p, v, why, sizeof(why))) {
		w->c.bad++;
		bad_read(C, "owner read", p, v, why);
	}
	w->c.reads_own++;
}

/* Another thread's page, through its seqlock. */
static void op_read_other(struct worker *w, uint64_t p)
{
	struct client *C = w->C;
	uint64_t buf[PAT_WORDS], s1, s2, v;
	char why[96];

	s1 = __atomic_load_n(&C->seq[p], __ATOMIC_ACQUIRE);
	v = __atomic_load_n(&C->ver[p], __ATOMIC_ACQUIRE);
	pat_load(C->map + p * PAT_PAGE, buf);
	s2 = __atomic_load_n(&C->seq[p], __ATOMIC_ACQUIRE);
	if ((s1 & 1) || s1 != s2) {
		w->c.discarded++;
		return;
	}
	if (!pat_check(&C->pat, p, v, buf, why, sizeof(why))) {
		w->c.bad++;
		bad_read(C, "reader", p, v, why);
	}
	w->c.reads_other++;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t own = NPAGES / w->n;

	while (hd_now_ms() < w->deadline) {
		for (int i = 0; i < OPS_PER_CLOCK; i++) {
			unsigned int op = (unsigned int)rng_below(&w->g, 100);
			uint64_t p = w->id + w->n * rng_below(&w->g, own);

			if (op < 45) {
				op_write(w, p);
			} else if (op < 90 || w->n == 1) {
				op_read_own(w, p);
			} else {
				p = rng_below(&w->g, NPAGES);
				if (p % w->n == w->id)
					op_read_own(w, p);
				else
					op_read_other(w, p);
			}
		}
	}
	return NULL;
}

static void *sampler_main(void *arg)
{
	struct client *C = arg;
	struct uzswap_stats st;

	while (!atomic_load(&C->stop_sampler)) {
		struct phase *ph = &C->S->ph[atomic_load(&C->phase)];

		int r = uzswap_stats(C->u, &st);

		if (r < 0 && !C->S->stats_err) {
			C->S->stats_err = r;
			snprintf(C->S->stats_msg, sizeof(C->S->stats_msg), "%s",
				 uzswap_last_error(C->u));
		}
		if (r == 0) {
			ph->samples++;
			ph->resident_sum += st.resident_pages;
			if (st.resident_pages > ph->max_resident)
				ph->max_resident = st.resident_pages;
		}
		hd_sleep_ms(SAMPLE_MS);
	}
	return NULL;
}

static void fill(struct client *C)
{
	uint64_t start = hd_now_ms();

	for (uint64_t p = 0; p < NPAGES; p++) {
		pat_write(&C->pat, C->map + p * PAT_PAGE, p, 1);
		C->ver[p] = 1;
	}
	C->S->fill_ms = hd_now_ms() - start;
}

static void run_phase(struct client *C, int idx, unsigned int threads, uint64_t ms)
{
	struct phase *ph = &C->S->ph[idx];
	struct worker w[MAX_THREADS];
	struct uzswap_stats a = { 0 }, b = { 0 };
	uint64_t start = hd_now_ms();

	atomic_store(&C->phase, idx);
	ph->threads = threads;
	uzswap_stats(C->u, &a);
	for (unsigned int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .C = C, .id = i, .n = threads, .deadline = start + ms };
		w[i].g.state = C->S->seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (i + 1 + 8 * threads));
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
			w[i].deadline = 0, worker_main(&w[i]);
	}
	for (unsigned int i = 0; i < threads; i++) {
		if (w[i].deadline)
			pthread_join(w[i].tid, NULL);
		ph->c.writes += w[i].c.writes;
		ph->c.reads_own += w[i].c.reads_own;
		ph->c.reads_other += w[i].c.reads_other;
		ph->c.discarded += w[i].c.discarded;
		ph->c.bad += w[i].c.bad;
	}
	ph->ms = hd_now_ms() - start;
	uzswap_stats(C->u, &b);
	ph->faults = b.faults - a.faults;
	ph->evictions = b.evictions - a.evictions;
}

static void final_check(struct client *C)
{
	char why[96];

	for (uint64_t p = 0; p < NPAGES; p++) {
		C->S->final_checked++;
		if (!pat_verify(&C->pat, C->map + p * PAT_PAGE, p, C->ver[p], why, sizeof(why))) {
			C->S->final_bad++;
			bad_read(C, "final check", p, C->ver[p], why);
		}
	}
}

static int client_main(void *arg)
{
	struct shared *S = arg;
	struct client C = { .S = S, .pat = { .seed = S->seed, .tag = 1, .kind = PAT_MIXED } };
	const struct hd_daemon *d = &daemon_;
	struct uzswap_stats st = { 0 };
	pthread_t sampler;
	uint64_t idle_start;
	void *map;
	int r;

	atomic_store(&S->state, 1);
	C.ver = calloc(NPAGES, sizeof(*C.ver));
	C.seq = calloc(NPAGES, sizeof(*C.seq));
	r = hd_connect(d, 0, "integrity", &C.u);
	if (r < 0 || !C.ver || !C.seq)
		return hd_setup_failed(&S->setup_err, r < 0 ? r : -ENOMEM);
	r = uzswap_region_create(C.u, REGION, "integrity", &map);
	if (r < 0) {
		tap_diag("client: uzswap_region_create(128 MiB): %s: %s", strerror(-r),
			 uzswap_last_error(C.u));
		return hd_setup_failed(&S->setup_err, r);
	}
	C.map = map;
	if (uzswap_stats(C.u, &S->end) == 0)
		S->budget = S->end.max_resident;
	if (pthread_create(&sampler, NULL, sampler_main, &C) != 0)
		return hd_setup_failed(&S->setup_err, -EAGAIN);
	fill(&C);
	run_phase(&C, 0, 1, PHASE1_MS);
	run_phase(&C, 1, MAX_THREADS, PHASE2_MS);
	atomic_store(&C.stop_sampler, true);
	pthread_join(sampler, NULL);
	final_check(&C);
	uzswap_stats(C.u, &S->end);
	/* Idle now: reclaim must bring the client back within its budget. */
	idle_start = hd_now_ms();
	S->idle_err = hd_wait_evicted(C.u, 0, IDLE_MS, &st);
	S->idle_ms = hd_now_ms() - idle_start;
	S->idle_resident = st.resident_pages;

	/* The parent looks at the daemon's status while the region is held. */
	atomic_store(&S->state, 2);
	for (uint64_t t = hd_now_ms(); !atomic_load(&S->go_on) && hd_now_ms() - t < 60000;)
		hd_sleep_ms(5);
	S->release_err = uzswap_region_release(C.u, map);
	uzswap_close(C.u);
	return 0;
}

/* ---- the parent: test points ---- */

static void report_phase(const struct shared *S, int i, uint64_t budget_pages)
{
	const struct phase *ph = &S->ph[i];
	const struct counts *c = &ph->c;
	uint64_t reads = c->reads_own + c->reads_other;

	tap_diag("%u thread(s), %" PRIu64 " ms: %" PRIu64 " writes, %" PRIu64 " own reads, %" PRIu64
		 " reads of other threads' pages (%" PRIu64 " discarded by the seqlock); %" PRIu64
		 " faults, %" PRIu64 " evictions",
		 ph->threads, ph->ms, c->writes, c->reads_own, c->reads_other, c->discarded,
		 ph->faults, ph->evictions);
	ok(c->bad == 0 && reads > 0,
	   "%u thread(s): every read matched the last version written (expected 0 mismatches, "
	   "saw %" PRIu64 " in %" PRIu64 " reads)",
	   ph->threads, c->bad, reads);
	ok(ph->samples > 0 && ph->max_resident < 2 * budget_pages,
	   "%u thread(s): the client's resident pages stayed below twice its budget (budget "
	   "%" PRIu64 " pages, max %" PRIu64 ", mean %.0f over %" PRIu64 " samples)",
	   ph->threads, budget_pages, ph->max_resident,
	   ph->samples ? (double)ph->resident_sum / (double)ph->samples : 0.0, ph->samples);
	ok(ph->faults > 0 && ph->evictions > 0,
	   "%u thread(s): paging ran during the phase (%" PRIu64 " faults, %" PRIu64 " evictions)",
	   ph->threads, ph->faults, ph->evictions);
}

/* The daemon's view while the region is held: it evicted, and its pool holds pages. */
static void check_status_held(struct hd_daemon *d, pid_t pid)
{
	uint64_t ev_pool = 0, ev_same = 0, stored = 0, comp = 0, cpool = 0;
	char path[3][64];
	char *json = hd_status_json(d);
	int r = -EIO;

	snprintf(path[0], sizeof(path[0]), "clients[pid=%d].evicted_pool", (int)pid);
	snprintf(path[1], sizeof(path[1]), "clients[pid=%d].evicted_same", (int)pid);
	snprintf(path[2], sizeof(path[2]), "clients[pid=%d].pool_pages", (int)pid);
	if (json) {
		r = jp_u64(json, path[0], &ev_pool);
		r = r ?: jp_u64(json, path[1], &ev_same);
		r = r ?: jp_u64(json, path[2], &cpool);
		r = r ?: jp_u64(json, "daemon.pool_stored_pages", &stored);
		r = r ?: jp_u64(json, "daemon.pool_compressed_bytes", &comp);
		if (r)
			tap_diag("uzswapctl status --json lacks a field (%s); it begins: %.600s",
				 strerror(-r), json);
	}
	ok(r == 0 && ev_pool + ev_same > 0 && stored > 0 && comp > 0 && cpool > 0,
	   "uzswapctl status shows the client's evictions and the pool's pages (evicted: %" PRIu64
	   " to the pool, %" PRIu64 " same-filled; pool: %" PRIu64 " pages, %" PRIu64
	   " compressed bytes; the client's pool pages %" PRIu64 ")",
	   ev_pool, ev_same, stored, comp, cpool);
	free(json);
}

/* After the client left: nothing of it remains. */
static void check_status_empty(struct hd_daemon *d)
{
	uint64_t clients = 1, stored = 1, comp = 1, deadline = hd_now_ms() + 5000;
	int r;

	do {
		char *json = hd_status_json(d);

		r = -EIO;
		if (json) {
			r = jp_u64(json, "daemon.n_clients", &clients);
			r = r ?: jp_u64(json, "daemon.pool_stored_pages", &stored);
			r = r ?: jp_u64(json, "daemon.pool_compressed_bytes", &comp);
			free(json);
		}
		if (r == 0 && !clients && !stored && !comp)
			break;
		hd_sleep_ms(50);
	} while (hd_now_ms() < deadline);
	ok(r == 0 && !clients && !stored && !comp,
	   "after the client released its region and left, the daemon holds nothing (expected 0 "
	   "clients, 0 pool pages, 0 compressed bytes; saw %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
	   clients, stored, comp);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "16M" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct hd_daemon *d = &daemon_;
	struct shared *S;
	uint64_t budget_pages, start;
	char how[96];
	int st = 0, r;
	pid_t pid;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0x17e6417));
	tap_diag("seed %#" PRIx64 " (UZSWAP_TEST_SEED); region %" PRIu64 " MiB, budget %" PRIu64
		 " MiB",
		 S->seed, REGION / MIB, BUDGET / MIB);
	if (!ok(hd_start(d, opts) == 0, "the daemon starts with a 16 MiB client budget"))
		return tap_done();

	start = hd_now_ms();
	pid = hd_spawn(client_main, S);
	if (pid < 0) {
		ok(false, "fork a client: %s", strerror(-(int)pid));
		hd_stop_ok(d);
		return tap_done();
	}
	/* Wait for the child to finish its run, or to end early. */
	while (atomic_load(&S->state) != 2 && hd_now_ms() - start < CHILD_TIMEOUT_MS &&
	       !hd_ended(pid))
		hd_sleep_ms(20);
	if (atomic_load(&S->state) == 2)
		check_status_held(d, pid);
	atomic_store(&S->go_on, 1);
	r = hd_wait(pid, 30000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->setup_err && !S->release_err,
	   "the client ran to the end and released its region (expected exit 0, saw %s; setup "
	   "%s, release %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), strerror(-S->setup_err),
	   strerror(-S->release_err));
	if (S->stats_err)
		tap_diag("the client's uzswap_stats failed: %s: %s", strerror(-S->stats_err),
			 S->stats_msg);
	budget_pages = S->budget / PAT_PAGE;
	ok(S->budget == BUDGET,
	   "the daemon grants the configured client_max_resident (expected %" PRIu64
	   " bytes, saw %" PRIu64 ")",
	   BUDGET, S->budget);
	tap_diag("fill of %" PRIu64 " pages: %" PRIu64 " ms", NPAGES, S->fill_ms);
	report_phase(S, 0, budget_pages);
	report_phase(S, 1, budget_pages);
	ok(S->final_checked == NPAGES && S->final_bad == 0,
	   "after the run every page holds its last write (expected %" PRIu64
	   " good pages, checked %" PRIu64 ", %" PRIu64 " bad)",
	   NPAGES, S->final_checked, S->final_bad);
	ok(S->idle_err == 0 && S->idle_resident <= budget_pages,
	   "once the client is idle, reclaim brings it back within its budget (expected at most "
	   "%" PRIu64 " resident pages within %d ms; saw %" PRIu64 " after %" PRIu64 " ms, %" PRIu64
	   " when the run ended)",
	   budget_pages, IDLE_MS, S->idle_resident, S->idle_ms, S->end.resident_pages);
	tap_diag("client totals: %" PRIu64 " faults (%" PRIu64 " first touches), %" PRIu64
		 " evictions, %" PRIu64 " refused; fault latency p50 %" PRIu64 " us, p99 %" PRIu64
		 " us; at the end %" PRIu64 " resident, %" PRIu64 " same, %" PRIu64
		 " pool (%" PRIu64 " bytes), %" PRIu64 " file",
		 S->end.faults, S->end.faults_zero, S->end.evictions, S->end.rejections,
		 S->end.fault_p50_ns / 1000, S->end.fault_p99_ns / 1000, S->end.resident_pages,
		 S->end.same_pages, S->end.pool_pages, S->end.pool_bytes, S->end.file_pages);
	check_status_empty(d);
	hd_stop_ok(d);
	tap_diag("total %" PRIu64 " ms", hd_now_ms() - start);
	return tap_done();
}
