/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_hygiene.c - the bytes of one client never reach
 * another: not through a pool page that held the other's objects, not
 * through compaction moving objects around, not through a buffer of the
 * fault or eviction path.
 *
 * Client B (tag 2) pages all the time over a region 4 times its budget,
 * with a fifth of its pages never written: those must read as zeros, the
 * others exactly as B last wrote them.  Meanwhile ROUNDS clients A (tag 1)
 * one after another fill a region 8 times their budget with other data
 * (real pages, same-filled and incompressible ones alike, as B's), churn
 * it, give half of it back with MADV_REMOVE and leave, so that B's new
 * objects land in pool pages A's objects held.  The pool is small enough
 * (POOL_MAX) that it fills and reclaim compacts it.  Every read B makes is
 * checked; one that shows A's stamp (tag 1), or anything but B's own page
 * or zeros, fails the test.  Writeback slots, when the tier is on, are
 * checked the same way (a second pass with a backing file).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/pattern.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET MIB
#define B_PAGES 1024 /* 4 budgets */
#define A_PAGES 2048 /* 8 budgets */
#define ROUNDS 3
#define A_CHURN_MS 1500
#define DIAG_MAX 10
#define WATCHDOG_S 120

struct shared {
	uint64_t seed;
	atomic_int b_stop;
	int b_setup_err, a_setup_err;
	atomic_uint_fast64_t b_reads, a_done;
	uint64_t b_bad, b_foreign, b_zero_reads;
	char b_why[128];
};

static struct hd_daemon daemon_;

static void b_report(struct shared *S, uint64_t p, uint64_t v, const char *why)
{
	if (strstr(why, "(tag 1)"))
		S->b_foreign++;
	if (S->b_bad++ < DIAG_MAX)
		tap_diag("client B: page %" PRIu64 " expected %s%" PRIu64 ", read %s", p,
			 v ? "version " : "zeros, version ", v, why);
	if (S->b_bad == 1)
		snprintf(S->b_why, sizeof(S->b_why), "page %" PRIu64 ": %s", p, why);
}

static int b_main(void *arg)
{
	struct shared *S = arg;
	struct pat k = { .seed = S->seed, .tag = 2, .kind = PAT_MIXED };
	struct rng g = { .state = S->seed ^ 0xb2 };
	uint64_t ver[B_PAGES];
	struct uzswap *u;
	char why[96], *map;
	void *p;
	int r;

	r = hd_connect(&daemon_, BUDGET, "hygiene-b", &u);
	if (r == 0)
		r = uzswap_region_create(u, B_PAGES * PAT_PAGE, "b", &p);
	if (r < 0)
		return hd_setup_failed(&S->b_setup_err, r);
	map = p;
	/* Pages i % 5 == 4 stay unwritten: version 0, zeros. */
	for (uint64_t i = 0; i < B_PAGES; i++) {
		ver[i] = i % 5 == 4 ? 0 : 1;
		if (ver[i])
			pat_write(&k, map + i * PAT_PAGE, i, 1);
	}
	while (!atomic_load(&S->b_stop)) {
		uint64_t i = rng_below(&g, B_PAGES);

		if (ver[i] && rng_below(&g, 3) == 0) {
			ver[i] = (ver[i] % PAT_VERSION_MAX) + 1;
			pat_write(&k, map + i * PAT_PAGE, i, ver[i]);
			continue;
		}
		if (!pat_verify(&k, map + i * PAT_PAGE, i, ver[i], why, sizeof(why)))
			b_report(S, i, ver[i], why);
		S->b_zero_reads += ver[i] == 0;
		atomic_fetch_add(&S->b_reads, 1);
	}
	for (uint64_t i = 0; i < B_PAGES; i++)
		if (!pat_verify(&k, map + i * PAT_PAGE, i, ver[i], why, sizeof(why)))
			b_report(S, i, ver[i], why);
	uzswap_close(u);
	return 0;
}

/* One A: fill, churn for A_CHURN_MS, give half back, leave. */
static int a_main(void *arg)
{
	struct shared *S = arg;
	struct pat k = { .seed = S->seed ^ 0xa1, .tag = 1, .kind = PAT_MIXED };
	struct rng g = { .state = S->seed ^ (uint64_t)getpid() };
	uint64_t t0, v = 1;
	struct uzswap *u;
	char *map;
	void *p;
	int r;

	r = hd_connect(&daemon_, BUDGET, "hygiene-a", &u);
	if (r == 0)
		r = uzswap_region_create(u, A_PAGES * PAT_PAGE, "a", &p);
	if (r < 0)
		return hd_setup_failed(&S->a_setup_err, r);
	map = p;
	for (uint64_t i = 0; i < A_PAGES; i++)
		pat_write(&k, map + i * PAT_PAGE, i, v);
	for (t0 = hd_now_ms(); hd_now_ms() - t0 < A_CHURN_MS;) {
		uint64_t i = rng_below(&g, A_PAGES);

		pat_write(&k, map + i * PAT_PAGE, i, ++v % PAT_VERSION_MAX + 1);
	}
	/* The even half back: their pool objects are freed, leaving holes to reuse. */
	for (uint64_t i = 0; i < A_PAGES; i += 2)
		madvise(map + i * PAT_PAGE, PAT_PAGE, MADV_REMOVE);
	hd_sleep_ms(300);
	atomic_fetch_add(&S->a_done, 1);
	uzswap_close(u);
	return 0;
}

static void run_pass(const char *what, const struct hd_opt *opts, bool file, uint64_t seed,
		     struct shared *S)
{
	uint64_t pool_peak = 0, pool_max = 0, b_evicted = 0;
	char how[96], path[64];
	pid_t b, a;
	int st = 0;

	memset(S, 0, sizeof(*S));
	S->seed = seed;
	if (hd_start(&daemon_, opts) < 0) {
		ok(false, "%s: the daemon starts", what);
		return;
	}
	b = hd_spawn(b_main, S);
	for (int n = 1; n <= ROUNDS && b > 0; n++) {
		a = hd_spawn(a_main, S);
		while (a > 0 && !hd_ended(a)) {
			uint64_t v;

			if (hd_status_u64(&daemon_, "daemon.pool_total_bytes", &v) == 0 &&
			    v > pool_peak)
				pool_peak = v;
			hd_sleep_ms(50);
		}
		if (a < 0 || hd_wait(a, 60000, &st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
			ok(false, "%s: round %d: client A pages and leaves (%s, setup %s)", what, n,
			   hd_wstatus_str(st, how, sizeof(how)), strerror(-S->a_setup_err));
			break;
		}
	}
	hd_sleep_ms(500);
	snprintf(path, sizeof(path), "clients[pid=%d].evicted_pool", (int)b);
	if (hd_status_u64(&daemon_, path, &b_evicted) < 0)
		b_evicted = 0;
	hd_status_u64(&daemon_, "daemon.pool_max_bytes", &pool_max);
	tap_diag("%s: pool peak %" PRIu64 " of %" PRIu64 " bytes; B's pages evicted to the pool: "
		 "%" PRIu64,
		 what, pool_peak, pool_max, b_evicted);
	ok(b_evicted > B_PAGES, "%s: B's pages went through the pool (%" PRIu64 " evictions)", what,
	   b_evicted);
	if (file) {
		uint64_t written = 0;

		if (hd_status_u64(&daemon_, "daemon.wb_written_pages", &written) < 0)
			written = 0;
		ok(written > B_PAGES, "%s: and through the backing file (%" PRIu64 " written back)",
		   what, written);
	}
	atomic_store(&S->b_stop, 1);
	ok(b > 0 && hd_wait(b, 60000, &st) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "%s: client B pages through %d clients A coming and going (%s, setup %s)", what, ROUNDS,
	   hd_wstatus_str(st, how, sizeof(how)), strerror(-S->b_setup_err));
	ok(atomic_load(&S->a_done) == ROUNDS && atomic_load(&S->b_reads) > 10000 &&
		   S->b_zero_reads > 0,
	   "%s: %d clients A finished while B read %" PRIuFAST64 " pages (%" PRIu64
	   " of them never written)",
	   what, ROUNDS, atomic_load(&S->b_reads), S->b_zero_reads);
	ok(S->b_foreign == 0, "%s: no read of B ever shows A's bytes (%" PRIu64 " did)", what,
	   S->b_foreign);
	ok(S->b_bad == 0,
	   "%s: every read of B is its own page or, never written, zeros (%" PRIu64
	   " were not; first: %s)",
	   what, S->b_bad, S->b_bad ? S->b_why : "none");
	hd_stop_ok(&daemon_);
}

int main(void)
{
	static const struct hd_opt pool_only[] = {
		{ "budget", "client_max_resident", "1M" },
		{ "pool", "max_size", "6M" },
		{ NULL, NULL, NULL },
	};
	static const struct hd_opt with_file[] = {
		{ "budget", "client_max_resident", "1M" },
		{ "pool", "max_size", "1M" },
		{ NULL, NULL, NULL },
	};
	struct shared *S;
	uint64_t seed;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S) {
		ok(false, "shared memory for the clients' reports");
		return tap_done();
	}
	/* Once: it loads the real pages the patterns are made of. */
	seed = pat_init(0x4879);
	run_pass("pool (zsmalloc, compacting)", pool_only, false, seed, S);
	run_pass("backing file (a 1 MiB pool)", with_file, true, seed, S);
	return tap_done();
}
