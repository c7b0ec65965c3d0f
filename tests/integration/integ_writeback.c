/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_writeback.c - three tiers under churn: no lost
 * write and no stale read with most pages in the backing file, for each
 * allocator, and the file's space after churn and after the clients go.
 *
 * Three daemons run side by side, one per allocator (zsmalloc, z3fold,
 * zbud), each with an 8 MiB pool, a 16 MiB client budget and writeback
 * on, and one client child each: a 256 MiB region (16x the budget, 32x
 * the pool), written page by page (real pages with a stamp, some
 * same-filled, some incompressible: pattern.h), then read and written at
 * random by two threads for RANDOM_MS, then checked whole.  Each thread
 * owns the pages of its parity and keeps their version outside the region,
 * so every read is checked exactly.  While the client sits idle with its
 * region, the parent reads the daemon's status: pages were written back
 * and restored from the file, and once the cleaner has caught up the file
 * holds at most 1.25x the compressed bytes stored in it.  After the client
 * leaves, the file must come back to (near) nothing: no record, no pool
 * object, at most a few blocks on disk.
 *
 * The children report through shared memory; the parent makes the test
 * points.  UZSWAP_TEST_SEED sets the seed.
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
#define REGION (256 * MIB)
#define NPAGES (REGION / PAT_PAGE)
#define THREADS 2
#define RANDOM_MS 20000
#define OPS_PER_CLOCK 32
#define DIAG_MAX 10
#define CHILD_TIMEOUT_MS 200000
#define SETTLE_MS 30000		/* for the cleaner to bring the file within bounds */
#define EMPTY_MS 15000		/* for the file to empty once the client is gone */
#define EMPTY_DISK (256 * 1024) /* "near zero": a segment's worth at most */
#define MAX_RATIO 1.25
#define WATCHDOG_S 300
#define NDAEMONS 3

struct shared {
	uint64_t seed;
	int setup_err, release_err;
	uint64_t fill_ms, writes, reads, bad, final_checked, final_bad;
	struct uzswap_stats end;
	atomic_int state; /* 1 running, 2 idle with the region, waiting for go_on */
	atomic_int go_on;
	atomic_uint diags;
};

struct run {
	const char *allocator;
	struct hd_daemon d;
	struct shared *S;
	pid_t pid;
	bool started;
};

/* ---- the client child ---- */

struct client {
	struct shared *S;
	struct uzswap *u;
	char *map;
	struct pat pat;
	uint64_t *ver;
};

struct worker {
	struct client *C;
	unsigned int id;
	struct rng g;
	uint64_t deadline, writes, reads, bad;
	pthread_t tid;
};

static void bad_read(struct client *C, uint64_t p, uint64_t v, const char *why)
{
	if (atomic_fetch_add(&C->S->diags, 1) < DIAG_MAX)
		tap_diag("client: page %" PRIu64 " expected version %" PRIu64 ", read %s", p, v,
			 why);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct client *C = w->C;
	char why[96];

	while (hd_now_ms() < w->deadline) {
		for (int i = 0; i < OPS_PER_CLOCK; i++) {
			uint64_t p = w->id + THREADS * rng_below(&w->g, NPAGES / THREADS);

			if (rng_below(&w->g, 100) < 45) {
				C->ver[p] = (C->ver[p] + 1) & PAT_VERSION_MAX;
				pat_write(&C->pat, C->map + p * PAT_PAGE, p, C->ver[p]);
				w->writes++;
			} else {
				if (!pat_verify(&C->pat, C->map + p * PAT_PAGE, p, C->ver[p], why,
						sizeof(why))) {
					w->bad++;
					bad_read(C, p, C->ver[p], why);
				}
				w->reads++;
			}
		}
	}
	return NULL;
}

static void churn(struct client *C)
{
	struct worker w[THREADS];

	for (unsigned int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .C = C, .id = i, .deadline = hd_now_ms() + RANDOM_MS };
		w[i].g.state = C->S->seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (i + 1));
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
			w[i].deadline = 0, worker_main(&w[i]);
	}
	for (unsigned int i = 0; i < THREADS; i++) {
		if (w[i].deadline)
			pthread_join(w[i].tid, NULL);
		C->S->writes += w[i].writes;
		C->S->reads += w[i].reads;
		C->S->bad += w[i].bad;
	}
}

static int client_main(void *arg)
{
	struct run *R = arg;
	struct shared *S = R->S;
	struct client C = { .S = S, .pat = { .seed = S->seed, .tag = 2, .kind = PAT_MIXED } };
	char why[96];
	uint64_t t0;
	void *map;
	int r;

	atomic_store(&S->state, 1);
	C.ver = calloc(NPAGES, sizeof(*C.ver));
	r = hd_connect(&R->d, BUDGET, R->allocator, &C.u);
	if (r < 0 || !C.ver)
		return hd_setup_failed(&S->setup_err, r < 0 ? r : -ENOMEM);
	r = uzswap_region_create(C.u, REGION, "writeback", &map);
	if (r < 0) {
		tap_diag("client: uzswap_region_create(256 MiB): %s", uzswap_last_error(C.u));
		return hd_setup_failed(&S->setup_err, r);
	}
	C.map = map;
	t0 = hd_now_ms();
	for (uint64_t p = 0; p < NPAGES; p++)
		pat_write(&C.pat, C.map + p * PAT_PAGE, p, C.ver[p] = 1);
	S->fill_ms = hd_now_ms() - t0;
	churn(&C);
	for (uint64_t p = 0; p < NPAGES; p++) {
		S->final_checked++;
		if (!pat_verify(&C.pat, C.map + p * PAT_PAGE, p, C.ver[p], why, sizeof(why))) {
			S->final_bad++;
			bad_read(&C, p, C.ver[p], why);
		}
	}
	uzswap_stats(C.u, &S->end);
	atomic_store(&S->state, 2);
	for (t0 = hd_now_ms(); !atomic_load(&S->go_on) && hd_now_ms() - t0 < 120000;)
		hd_sleep_ms(10);
	S->release_err = uzswap_region_release(C.u, map);
	uzswap_close(C.u);
	return 0;
}

/* ---- the parent ---- */

static int status(struct hd_daemon *d, const char *const *paths, uint64_t *v, size_t n)
{
	char *json = hd_status_json(d);
	int r = json ? 0 : -EIO;

	for (size_t i = 0; i < n && r == 0; i++) {
		r = jp_u64(json, paths[i], &v[i]);
		if (r)
			tap_diag("status --json: no %s; it begins: %.400s", paths[i], json);
	}
	free(json);
	return r;
}

static void check_tiers(struct run *R)
{
	char file_restores[64];
	const char *paths[] = { "daemon.wb_written_pages", "daemon.file_reads", file_restores,
				"daemon.file_records" };
	uint64_t v[4] = { 0 };
	int r;

	snprintf(file_restores, sizeof(file_restores), "clients[pid=%d].faults.file.count",
		 (int)R->pid);
	r = status(&R->d, paths, v, 4);
	ok(r == 0 && v[0] > 0 && v[1] > 0 && v[2] > 0 && v[3] > 0,
	   "%s: pages were written back and restored from the file (%" PRIu64
	   " written back, %" PRIu64 " records read, %" PRIu64 " restores of the client, %" PRIu64
	   " pages in the file now)",
	   R->allocator, v[0], v[1], v[2], v[3]);
}

/* While the client is idle: the cleaner brings the file within MAX_RATIO of what it stores. */
static void check_space(struct run *R)
{
	const char *paths[] = { "daemon.file_disk_bytes", "daemon.file_stored_bytes",
				"daemon.file_cleaned_records", "daemon.wb_written_bytes" };
	uint64_t v[4] = { 0 }, deadline = hd_now_ms() + SETTLE_MS, t0 = hd_now_ms();
	double first = -1, ratio = -1;
	int r;

	do {
		r = status(&R->d, paths, v, 4);
		ratio = r == 0 && v[1] ? (double)v[0] / (double)v[1] : -1;
		if (first < 0)
			first = ratio;
		if (r || (ratio > 0 && ratio <= MAX_RATIO))
			break;
		hd_sleep_ms(100);
	} while (hd_now_ms() < deadline);
	tap_diag(
		"%s: file space after the churn: %.3f x the stored bytes at first look, %.3f after "
		"%" PRIu64 " ms; %" PRIu64 " records moved by the cleaner, %" PRIu64
		" bytes written back",
		R->allocator, first, ratio, hd_now_ms() - t0, v[2], v[3]);
	ok(r == 0 && ratio > 0 && ratio <= MAX_RATIO,
	   "%s: after churn the file takes at most %.2f x the compressed bytes it stores (%" PRIu64
	   " on disk for %" PRIu64 ": %.3f)",
	   R->allocator, MAX_RATIO, v[0], v[1], ratio);
}

/* After the client left: nothing in the pool, nothing in the file, (almost) no disk. */
static void check_empty(struct run *R)
{
	const char *paths[] = { "daemon.n_clients",	    "daemon.file_records",
				"daemon.file_disk_bytes",   "daemon.pool_stored_pages",
				"daemon.file_stored_bytes", "daemon.file_size_bytes" };
	uint64_t v[6] = { 1, 1, 1, 1, 1, 1 }, deadline = hd_now_ms() + EMPTY_MS;
	int r;

	do {
		r = status(&R->d, paths, v, 6);
		if (r || (!v[0] && !v[1] && v[2] <= EMPTY_DISK && !v[3] && !v[4]))
			break;
		hd_sleep_ms(100);
	} while (hd_now_ms() < deadline);
	ok(r == 0 && !v[0] && !v[1] && v[2] <= EMPTY_DISK && !v[3] && !v[4],
	   "%s: once the client is gone the pool and the file are empty and the file's blocks are "
	   "given back (%" PRIu64 " clients, %" PRIu64 " records, %" PRIu64
	   " stored bytes, %" PRIu64 " bytes on disk, file length %" PRIu64 ", %" PRIu64
	   " pool pages)",
	   R->allocator, v[0], v[1], v[4], v[2], v[5], v[3]);
}

static void report_client(struct run *R, int wstatus, int wr)
{
	const struct shared *S = R->S;
	char how[96];

	ok(wr == 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && !S->setup_err &&
		   !S->release_err,
	   "%s: the client ran to the end and released its region (%s; setup %s, release %s)",
	   R->allocator, wr ? strerror(-wr) : hd_wstatus_str(wstatus, how, sizeof(how)),
	   strerror(-S->setup_err), strerror(-S->release_err));
	tap_diag("%s: fill of %" PRIu64 " pages in %" PRIu64 " ms; %" PRIu64 " writes, %" PRIu64
		 " reads in %d ms; the client's faults %" PRIu64 ", evictions %" PRIu64
		 ", rejected %" PRIu64 "; at the end %" PRIu64 " resident, %" PRIu64
		 " pool, %" PRIu64 " file",
		 R->allocator, (uint64_t)NPAGES, S->fill_ms, S->writes, S->reads, RANDOM_MS,
		 S->end.faults, S->end.evictions, S->end.rejections, S->end.resident_pages,
		 S->end.pool_pages, S->end.file_pages);
	ok(S->reads > 0 && S->bad == 0,
	   "%s: every random read matched the last version written (%" PRIu64
	   " mismatches in %" PRIu64 " reads)",
	   R->allocator, S->bad, S->reads);
	ok(S->final_checked == NPAGES && S->final_bad == 0,
	   "%s: after the run every page holds its last write (%" PRIu64 " checked, %" PRIu64
	   " bad)",
	   R->allocator, S->final_checked, S->final_bad);
}

static bool start(struct run *R, uint64_t seed)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "16M" },
		{ "pool", "allocator", R->allocator },
		{ "pool", "max_size", "8M" },
		{ "backing", "max_size", "1G" },
		{ "pressure", "interval_ms", "100" },
		{ "pressure", "psi_some_avg10", "0" },
		{ "pressure", "min_available", "0" },
		{ NULL, NULL, NULL },
	};

	R->S = hd_shared(sizeof(*R->S));
	if (!R->S)
		return false;
	R->S->seed = seed;
	if (!ok(hd_start(&R->d, opts) == 0, "%s: a daemon with an 8 MiB pool and writeback starts",
		R->allocator))
		return false;
	R->pid = hd_spawn(client_main, R);
	if (R->pid < 0) {
		ok(false, "%s: fork a client: %s", R->allocator, strerror(-(int)R->pid));
		return false;
	}
	R->started = true;
	return true;
}

int main(void)
{
	struct run runs[NDAEMONS] = { { .allocator = "zsmalloc" },
				      { .allocator = "z3fold" },
				      { .allocator = "zbud" } };
	uint64_t seed, t0;
	int st, wr;

	hd_init(true, WATCHDOG_S);
	seed = pat_init(UINT64_C(0xb4c1f11e));
	tap_diag("seed %#" PRIx64 " (UZSWAP_TEST_SEED); per allocator: region %" PRIu64
		 " MiB, budget %" PRIu64 " MiB, pool 8 MiB, %d s of random reads and writes",
		 seed, REGION / MIB, BUDGET / MIB, RANDOM_MS / 1000);
	t0 = hd_now_ms();
	for (int i = 0; i < NDAEMONS; i++)
		start(&runs[i], seed + (uint64_t)i);
	for (int i = 0; i < NDAEMONS; i++) {
		struct run *R = &runs[i];

		if (!R->started)
			continue;
		while (atomic_load(&R->S->state) != 2 && hd_now_ms() - t0 < CHILD_TIMEOUT_MS &&
		       !hd_ended(R->pid))
			hd_sleep_ms(20);
		if (atomic_load(&R->S->state) == 2) {
			check_tiers(R);
			check_space(R);
		}
		atomic_store(&R->S->go_on, 1);
		st = 0;
		wr = hd_wait(R->pid, 60000, &st);
		report_client(R, st, wr);
		check_empty(R);
	}
	for (int i = 0; i < NDAEMONS; i++)
		if (runs[i].d.pid > 0)
			hd_stop_ok(&runs[i].d);
	tap_diag("total %" PRIu64 " ms", hd_now_ms() - t0);
	return tap_done();
}
