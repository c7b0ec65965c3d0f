/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_discard.c - memory a client gives back is freed
 * in the daemon: madvise(MADV_REMOVE) and munmap of part of a region.
 *
 * A client child with a 1 MiB budget (256 pages) creates region X of 384
 * pages, in three parts A, B and C of 128 pages, and region Y of 1024
 * pages; it fills X and then Y with real pages (never same-filled, so an
 * evicted one is in the pool), which evicts all of X: its pages faulted in
 * first.  With X wholly in the pool:
 *   1. the child calls madvise(MADV_REMOVE) on A: the daemon's pool must
 *      lose exactly A's 128 pages and some compressed bytes, while the
 *      client still manages as many pages as before;
 *   2. it munmaps B: the pool loses B's 128 pages, and the client manages
 *      128 pages fewer;
 *   3. it reads A (zeros: removed pages read back as zeros), C and Y
 *      (their data, restored from the pool).
 * The parent reads the daemon's figures with `uzswapctl status --json`
 * between the steps (the child waits for it at each sync point).  At the
 * end the client releases both regions (X with its hole) and leaves, and
 * the daemon must hold nothing.
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
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define PART 128 /* pages in each of A, B, C */
#define X_PAGES (3 * PART)
#define Y_PAGES 1024
#define SYNC_TIMEOUT_MS 30000
#define SETTLE_MS 3000 /* how long the daemon may take to show a change */
#define WATCHDOG_S 90

enum sync {
	SYNC_FILLED = 1, /* X and Y written */
	SYNC_REMOVED,	 /* madvise(MADV_REMOVE) on A done */
	SYNC_UNMAPPED,	 /* munmap of B done */
	SYNC_READ,	 /* A, C and Y read back */
	SYNC_RELEASED,	 /* both regions released */
};

struct shared {
	uint64_t seed;
	int setup_err;
	uint64_t x_addr;
	int remove_err, unmap_err, release_x_err, release_y_err;
	uint64_t a_bad, c_bad, y_bad;
	char a_why[96], c_why[96], y_why[96];
	atomic_int child_at, parent_at;
};

static struct hd_daemon daemon_;

/* ---- the client child ---- */

/* Tell the parent we are at @n and wait until it has looked. */
static void sync_point(struct shared *S, int n)
{
	uint64_t start = hd_now_ms();

	atomic_store(&S->child_at, n);
	while (atomic_load(&S->parent_at) < n && hd_now_ms() - start < SYNC_TIMEOUT_MS)
		hd_sleep_ms(2);
}

static uint64_t verify(const struct pat *k, const char *base, uint64_t first, uint64_t n,
		       uint64_t v, char *why, size_t len)
{
	uint64_t bad = 0;
	char w[80];

	for (uint64_t p = first; p < first + n; p++) {
		if (pat_verify(k, base + p * PAT_PAGE, p, v, w, sizeof(w)))
			continue;
		if (!bad++)
			snprintf(why, len, "page %" PRIu64 ": %s", p, w);
	}
	return bad;
}

static int client_main(void *arg)
{
	struct shared *S = arg;
	struct pat px = { .seed = S->seed, .tag = 3, .kind = PAT_REAL };
	struct pat py = { .seed = S->seed, .tag = 4, .kind = PAT_REAL };
	struct uzswap *u;
	char *x, *y = NULL;
	void *p;
	int r;

	r = hd_connect(&daemon_, 0, "discard", &u);
	if (r < 0)
		return hd_setup_failed(&S->setup_err, r);
	r = uzswap_region_create(u, X_PAGES * PAT_PAGE, "X", &p);
	x = p;
	if (r == 0) {
		r = uzswap_region_create(u, Y_PAGES * PAT_PAGE, "Y", &p);
		y = p;
	}
	if (r < 0) {
		tap_diag("client: uzswap_region_create: %s: %s", strerror(-r),
			 uzswap_last_error(u));
		return hd_setup_failed(&S->setup_err, r);
	}
	S->x_addr = (uintptr_t)x;
	for (uint64_t i = 0; i < X_PAGES; i++)
		pat_write(&px, x + i * PAT_PAGE, i, 1);
	for (uint64_t i = 0; i < Y_PAGES; i++)
		pat_write(&py, y + i * PAT_PAGE, i, 1);
	sync_point(S, SYNC_FILLED);

	S->remove_err = madvise(x, PART * PAT_PAGE, MADV_REMOVE) < 0 ? errno : 0;
	sync_point(S, SYNC_REMOVED);

	S->unmap_err = munmap(x + PART * PAT_PAGE, PART * PAT_PAGE) < 0 ? errno : 0;
	sync_point(S, SYNC_UNMAPPED);

	S->a_bad = verify(&px, x, 0, PART, 0, S->a_why, sizeof(S->a_why));
	S->c_bad = verify(&px, x, 2 * PART, PART, 1, S->c_why, sizeof(S->c_why));
	S->y_bad = verify(&py, y, 0, Y_PAGES, 1, S->y_why, sizeof(S->y_why));
	sync_point(S, SYNC_READ);

	S->release_x_err = uzswap_region_release(u, x);
	S->release_y_err = uzswap_region_release(u, y);
	uzswap_close(u);
	sync_point(S, SYNC_RELEASED);
	return 0;
}

/* ---- the parent ---- */

/* Wait until the child is at @n; false if it ended or timed out first. */
static bool child_at(struct shared *S, pid_t pid, int n)
{
	uint64_t start = hd_now_ms();

	while (atomic_load(&S->child_at) < n) {
		if (hd_ended(pid) || hd_now_ms() - start > SYNC_TIMEOUT_MS) {
			tap_diag("the client did not reach sync point %d (it is at %d)", n,
				 atomic_load(&S->child_at));
			return false;
		}
		hd_sleep_ms(2);
	}
	return true;
}

struct figures {
	uint64_t stored, comp;		 /* the pool's pages and compressed bytes */
	uint64_t managed, cpool, cbytes; /* the client's managed and pool pages, pool bytes */
	uint64_t x_resident, x_pool;	 /* region X */
	uint64_t clients;
};

static int figures(struct hd_daemon *d, pid_t pid, uint64_t x_addr, struct figures *f)
{
	char *json = hd_status_json(d), c[64], x[128];
	int r;

	if (!json)
		return -EIO;
	snprintf(c, sizeof(c), "clients[pid=%d]", (int)pid);
	snprintf(x, sizeof(x), "%s.regions[addr=%" PRIu64 "]", c, x_addr);
	memset(f, 0, sizeof(*f));
	r = jp_u64(json, "daemon.pool_stored_pages", &f->stored);
	r = r ?: jp_u64(json, "daemon.pool_compressed_bytes", &f->comp);
	r = r ?: jp_u64(json, "daemon.n_clients", &f->clients);
	if (f->clients && x_addr) {
		char path[192];

		snprintf(path, sizeof(path), "%s.managed_pages", c);
		r = r ?: jp_u64(json, path, &f->managed);
		snprintf(path, sizeof(path), "%s.pool_pages", c);
		r = r ?: jp_u64(json, path, &f->cpool);
		snprintf(path, sizeof(path), "%s.pool_bytes", c);
		r = r ?: jp_u64(json, path, &f->cbytes);
		snprintf(path, sizeof(path), "%s.resident_pages", x);
		r = r ?: jp_u64(json, path, &f->x_resident);
		snprintf(path, sizeof(path), "%s.pool_pages", x);
		r = r ?: jp_u64(json, path, &f->x_pool);
	}
	if (r)
		tap_diag("uzswapctl status --json: a field is missing (%s); it begins: %.800s",
			 strerror(-r), json);
	free(json);
	return r;
}

/* Poll the figures until @done says so or SETTLE_MS pass; the last figures in *f. */
static int settle(struct hd_daemon *d, pid_t pid, uint64_t x_addr, struct figures *f,
		  bool (*done)(const struct figures *, const struct figures *),
		  const struct figures *before)
{
	uint64_t start = hd_now_ms();
	int r;

	do {
		r = figures(d, pid, x_addr, f);
		if (r == 0 && done(f, before))
			return 0;
		hd_sleep_ms(20);
	} while (hd_now_ms() - start < SETTLE_MS);
	return r;
}

/*
 * X wholly in the pool, and reclaim done with Y: two readings 50 ms apart
 * agree, so that what the next step changes is all its own doing.
 */
static void settle_evicted(struct hd_daemon *d, pid_t pid, uint64_t x_addr, struct figures *f)
{
	struct figures prev = { 0 };
	uint64_t start = hd_now_ms();

	do {
		if (figures(d, pid, x_addr, f) == 0 && f->x_resident == 0 && f->x_pool == X_PAGES &&
		    f->stored == prev.stored && f->comp == prev.comp && f->cpool == prev.cpool)
			return;
		prev = *f;
		hd_sleep_ms(50);
	} while (hd_now_ms() - start < SETTLE_MS);
}

static bool part_freed(const struct figures *f, const struct figures *b)
{
	return f->stored + PART <= b->stored;
}

static bool part_unmapped(const struct figures *f, const struct figures *b)
{
	return f->stored + PART <= b->stored && f->managed + PART <= b->managed;
}

static bool all_gone(const struct figures *f, const struct figures *b)
{
	(void)b;
	return !f->clients && !f->stored && !f->comp;
}

static void go_on(struct shared *S, int n)
{
	atomic_store(&S->parent_at, n);
}

static void run(struct hd_daemon *d, struct shared *S, pid_t pid)
{
	struct figures f0, f1, f2, f3;

	if (!child_at(S, pid, SYNC_FILLED))
		return;
	settle_evicted(d, pid, S->x_addr, &f0);
	ok(f0.x_resident == 0 && f0.x_pool == X_PAGES,
	   "filling Y evicts all of X, which was filled first, into the pool (expected 0 "
	   "resident and %d pool pages in X, saw %" PRIu64 " and %" PRIu64 ")",
	   X_PAGES, f0.x_resident, f0.x_pool);
	go_on(S, SYNC_FILLED);

	if (!child_at(S, pid, SYNC_REMOVED))
		return;
	ok(S->remove_err == 0, "madvise(MADV_REMOVE) on part of a region succeeds (%s)",
	   strerror(S->remove_err));
	settle(d, pid, S->x_addr, &f1, part_freed, &f0);
	ok(f1.stored == f0.stored - PART && f1.comp < f0.comp,
	   "after MADV_REMOVE of %d evicted pages the pool frees exactly them (pool pages: "
	   "expected %" PRIu64 ", saw %" PRIu64 "; compressed bytes %" PRIu64 " -> %" PRIu64 ")",
	   PART, f0.stored - PART, f1.stored, f0.comp, f1.comp);
	ok(f1.cpool == f0.cpool - PART && f1.cbytes < f0.cbytes && f1.managed == f0.managed,
	   "after MADV_REMOVE the client's pool pages drop by %d and its managed pages stay "
	   "(pool pages %" PRIu64 " -> %" PRIu64 ", pool bytes %" PRIu64 " -> %" PRIu64
	   ", managed %" PRIu64 " -> %" PRIu64 ")",
	   PART, f0.cpool, f1.cpool, f0.cbytes, f1.cbytes, f0.managed, f1.managed);
	go_on(S, SYNC_REMOVED);

	if (!child_at(S, pid, SYNC_UNMAPPED))
		return;
	ok(S->unmap_err == 0, "munmap of the middle of a region succeeds (%s)",
	   strerror(S->unmap_err));
	settle(d, pid, S->x_addr, &f2, part_unmapped, &f1);
	ok(f2.stored == f1.stored - PART && f2.comp < f1.comp,
	   "after munmap of %d evicted pages the pool frees exactly them (pool pages: expected "
	   "%" PRIu64 ", saw %" PRIu64 "; compressed bytes %" PRIu64 " -> %" PRIu64 ")",
	   PART, f1.stored - PART, f2.stored, f1.comp, f2.comp);
	ok(f2.managed == f1.managed - PART && f2.cpool == f1.cpool - PART,
	   "after munmap the client manages %d pages fewer (managed: expected %" PRIu64
	   ", saw %" PRIu64 "; its pool pages %" PRIu64 " -> %" PRIu64 ")",
	   PART, f1.managed - PART, f2.managed, f1.cpool, f2.cpool);
	go_on(S, SYNC_UNMAPPED);

	if (!child_at(S, pid, SYNC_READ))
		return;
	ok(S->a_bad == 0,
	   "the removed pages read back as zeros (expected 0 pages with data of %d, saw %" PRIu64
	   "%s%s)",
	   PART, S->a_bad, S->a_bad ? "; first " : "", S->a_why);
	ok(S->c_bad == 0 && S->y_bad == 0,
	   "the rest of the region and the other region keep their data (bad pages: %" PRIu64
	   " of %d in X, %" PRIu64 " of %d in Y%s%s%s%s)",
	   S->c_bad, PART, S->y_bad, Y_PAGES, S->c_bad ? "; X " : "", S->c_why,
	   S->y_bad ? "; Y " : "", S->y_why);
	go_on(S, SYNC_READ);

	if (!child_at(S, pid, SYNC_RELEASED))
		return;
	ok(S->release_x_err == 0 && S->release_y_err == 0,
	   "both regions are released, X with its hole (X: %s, Y: %s)", strerror(-S->release_x_err),
	   strerror(-S->release_y_err));
	settle(d, pid, 0, &f3, all_gone, NULL);
	ok(!f3.clients && !f3.stored && !f3.comp,
	   "after the client left the daemon holds nothing (expected 0 clients, 0 pool pages, 0 "
	   "compressed bytes; saw %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
	   f3.clients, f3.stored, f3.comp);
	go_on(S, SYNC_RELEASED);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "1M" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct hd_daemon *d = &daemon_;
	struct shared *S;
	char how[96];
	int st = 0, r;
	pid_t pid;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0xd15ca9d));
	if (!ok(hd_start(d, opts) == 0, "the daemon starts with a 1 MiB client budget"))
		return tap_done();
	pid = hd_spawn(client_main, S);
	if (pid > 0)
		run(d, S, pid);
	go_on(S, SYNC_RELEASED);
	r = pid < 0 ? (int)pid : hd_wait(pid, 30000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->setup_err,
	   "the client ran to the end (expected exit 0, saw %s; setup: %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), strerror(-S->setup_err));
	hd_stop_ok(d);
	return tap_done();
}
