/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_wb_death.c - clients killed while their pages
 * are being written back: no crash, no leak, nobody else disturbed.
 *
 * One daemon with a 1 MiB pool, so that a client writing its 64 MiB region
 * over and over keeps the writeback thread busy with its objects.  A
 * survivor client reads and writes its own region at random the whole
 * time.  ROUNDS times a writer client is started, and SIGKILLed a random
 * moment after writeback has taken some thousands of its pages, while
 * more are being written back; each time the daemon must end up holding
 * nothing of it: no client, no pool object, no record in the file.  Then
 * the survivor checks every page it wrote, and the daemon must stop
 * cleanly (in the sanitizer build, with no leak and no error report).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
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
#define BUDGET (8 * MIB)
#define WRITER_REGION (64 * MIB)
#define SURVIVOR_REGION (32 * MIB)
#define ROUNDS 4
#define WRITTEN_BEFORE_KILL 3000 /* pages written back in the round before the kill */
#define KILL_JITTER_MS 150
#define BUSY_WAIT_MS 30000
#define EMPTY_MS 15000
#define WATCHDOG_S 240

struct shared {
	uint64_t seed;
	int setup_err, release_err;
	atomic_int stop;		   /* parent: the survivor may finish */
	atomic_int pause, paused;	   /* parent: hold still for a look; survivor: holding */
	uint64_t checked, bad, ops;	   /* the survivor's */
	atomic_uint_fast64_t writer_loops; /* the writer's passes over its region */
};

static struct hd_daemon daemon_;
static struct shared *S;

/* ---- clients ---- */

static int writer_main(void *arg)
{
	struct pat k = { .seed = S->seed, .tag = 9, .kind = PAT_MIXED };
	uint64_t npages = WRITER_REGION / PAT_PAGE;
	struct uzswap *u;
	void *map;

	(void)arg;
	if (hd_connect(&daemon_, BUDGET, "wbwriter", &u) < 0 ||
	    uzswap_region_create(u, WRITER_REGION, "wbwriter", &map) < 0)
		return 2;
	/* Until killed. */
	for (uint64_t v = 1;; v++) {
		for (uint64_t p = 0; p < npages; p++)
			pat_write(&k, (char *)map + p * PAT_PAGE, p, v & PAT_VERSION_MAX);
		atomic_fetch_add(&S->writer_loops, 1);
	}
}

static int survivor_main(void *arg)
{
	struct pat k = { .seed = S->seed, .tag = 10, .kind = PAT_MIXED };
	uint64_t npages = SURVIVOR_REGION / PAT_PAGE, *ver = calloc(npages, sizeof(*ver));
	struct rng g = { .state = S->seed };
	struct uzswap *u;
	char why[96];
	void *map;
	int r;

	(void)arg;
	r = hd_connect(&daemon_, BUDGET, "survivor", &u);
	if (r == 0)
		r = uzswap_region_create(u, SURVIVOR_REGION, "survivor", &map);
	if (r < 0 || !ver)
		return hd_setup_failed(&S->setup_err, r < 0 ? r : -ENOMEM);
	for (uint64_t p = 0; p < npages; p++)
		pat_write(&k, (char *)map + p * PAT_PAGE, p, ver[p] = 1);
	while (!atomic_load(&S->stop)) {
		uint64_t p = rng_below(&g, npages);

		if (atomic_load(&S->pause)) {
			atomic_store(&S->paused, 1);
			hd_sleep_ms(5);
			continue;
		}
		atomic_store(&S->paused, 0);
		if (rng_below(&g, 2)) {
			ver[p] = (ver[p] + 1) & PAT_VERSION_MAX;
			pat_write(&k, (char *)map + p * PAT_PAGE, p, ver[p]);
		} else if (!pat_verify(&k, (char *)map + p * PAT_PAGE, p, ver[p], why,
				       sizeof(why))) {
			S->bad++;
		}
		S->ops++;
	}
	for (uint64_t p = 0; p < npages; p++) {
		S->checked++;
		if (!pat_verify(&k, (char *)map + p * PAT_PAGE, p, ver[p], why, sizeof(why)) &&
		    S->bad++ < 5)
			tap_diag("survivor: page %" PRIu64 ": %s", p, why);
	}
	S->release_err = uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

/* ---- the parent ---- */

static uint64_t status_u64(const char *path)
{
	uint64_t v = UINT64_MAX;

	if (hd_status_u64(&daemon_, path, &v) < 0)
		return UINT64_MAX;
	return v;
}

/* The writer's objects are being written back: wait for WRITTEN_BEFORE_KILL more. */
static bool writeback_busy(uint64_t written0, pid_t pid)
{
	uint64_t deadline = hd_now_ms() + BUSY_WAIT_MS;

	while (hd_now_ms() < deadline && !hd_ended(pid)) {
		uint64_t w = status_u64("daemon.wb_written_pages");

		if (w != UINT64_MAX && w >= written0 + WRITTEN_BEFORE_KILL)
			return true;
		hd_sleep_ms(20);
	}
	return false;
}

/*
 * Nothing of the writer is left: one client, and the pool and the file
 * hold the survivor's pages only (one snapshot, with the survivor holding
 * still so that reclaim and writeback settle).
 */
static bool writer_gone(pid_t survivor, uint64_t *left)
{
	char fpath[80], ppath[80];
	uint64_t deadline = hd_now_ms() + EMPTY_MS, v[4];
	bool gone = false;

	snprintf(fpath, sizeof(fpath), "clients[pid=%d].file_pages", (int)survivor);
	snprintf(ppath, sizeof(ppath), "clients[pid=%d].pool_pages", (int)survivor);
	atomic_store(&S->pause, 1);
	do {
		char *json = atomic_load(&S->paused) ? hd_status_json(&daemon_) : NULL;

		if (json && !jp_u64(json, "daemon.n_clients", &v[0]) &&
		    !jp_u64(json, "daemon.file_records", &v[1]) &&
		    !jp_u64(json, "daemon.pool_stored_pages", &v[2]) &&
		    !jp_u64(json, fpath, &v[3])) {
			*left = v[1];
			gone = v[0] == 1 && v[1] == v[3] && !jp_u64(json, ppath, &v[3]) &&
			       v[2] == v[3];
		}
		free(json);
		if (!gone)
			hd_sleep_ms(50);
	} while (!gone && hd_now_ms() < deadline);
	atomic_store(&S->pause, 0);
	return gone;
}

/* With every client gone: nothing in the pool or the file. */
static bool all_empty(void)
{
	uint64_t deadline = hd_now_ms() + EMPTY_MS;

	do {
		if (status_u64("daemon.n_clients") == 0 && status_u64("daemon.file_records") == 0 &&
		    status_u64("daemon.pool_stored_pages") == 0)
			return true;
		hd_sleep_ms(50);
	} while (hd_now_ms() < deadline);
	return false;
}

static void one_round(int round, struct rng *g, pid_t survivor)
{
	uint64_t written0 = status_u64("daemon.wb_written_pages"), left = 0;
	char how[96];
	bool busy, gone;
	int st = 0;
	pid_t pid;

	pid = hd_spawn(writer_main, NULL);
	if (pid < 0) {
		ok(false, "round %d: fork a writer: %s", round, strerror(-(int)pid));
		return;
	}
	busy = writeback_busy(written0, pid);
	hd_sleep_ms((unsigned int)rng_below(g, KILL_JITTER_MS));
	kill(pid, SIGKILL);
	hd_wait(pid, 10000, &st);
	ok(busy && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	   "round %d: the writer was killed while its pages were being written back (%s; %" PRIu64
	   " pages written back this round)",
	   round, hd_wstatus_str(st, how, sizeof(how)),
	   status_u64("daemon.wb_written_pages") - written0);
	gone = writer_gone(survivor, &left);
	ok(gone && hd_alive(&daemon_),
	   "round %d: the daemon lives on and holds nothing of the killed client (%" PRIu64
	   " records left in the file, all the survivor's)",
	   round, left);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "8M" },
		{ "pool", "max_size", "1M" },
		{ "backing", "max_size", "512M" },
		{ "pressure", "interval_ms", "100" },
		{ "pressure", "psi_some_avg10", "0" },
		{ "pressure", "min_available", "0" },
		{ NULL, NULL, NULL },
	};
	struct rng g;
	char how[96];
	int st = 0, r;
	pid_t survivor;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0xdead5));
	g.state = S->seed;
	if (!ok(hd_start(&daemon_, opts) == 0, "a daemon with a 1 MiB pool and writeback starts"))
		return tap_done();
	survivor = hd_spawn(survivor_main, NULL);
	if (survivor < 0) {
		ok(false, "fork the survivor: %s", strerror(-(int)survivor));
		return tap_done();
	}
	for (int i = 0; i < ROUNDS; i++)
		one_round(i, &g, survivor);
	atomic_store(&S->stop, 1);
	r = hd_wait(survivor, 60000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->setup_err && !S->release_err &&
		   S->checked == SURVIVOR_REGION / PAT_PAGE && S->bad == 0 && S->ops > 0,
	   "the survivor was served throughout: every read matched (%" PRIu64
	   " operations, %" PRIu64 " pages checked at the end, %" PRIu64 " bad; %s)",
	   S->ops, S->checked, S->bad, r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)));
	ok(all_empty(), "with every client gone the pool and the file are empty");
	hd_stop_ok(&daemon_);
	return tap_done();
}
