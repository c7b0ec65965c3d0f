/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_client_death.c - a client killed with SIGKILL in
 * the middle of paging: the daemon frees everything it held, and another
 * client goes on working through it.
 *
 * A survivor child B pages all the time over a region 4 times its budget,
 * writing and reading pages at random and checking every read.  Meanwhile
 * ROUNDS victims, one after another, page over a region 8 times their
 * budget with two threads (so that one of them may be blocked in a fault,
 * or one of their pages in the middle of an eviction, when the signal
 * comes); once the daemon shows a victim with pages in the pool, it is
 * killed with SIGKILL after a random delay.  After each kill the daemon
 * must drop the victim.  Then B is paused, and the pool must hold exactly
 * B's pages: the daemon's pool pages and compressed bytes equal B's.  B
 * resumes, stops, checks every page once more and leaves; the daemon must
 * then hold nothing at all.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
#define BUDGET MIB
#define B_PAGES 1024 /* 4 MiB: 4 budgets */
#define A_PAGES 2048 /* 8 MiB: 8 budgets */
#define ROUNDS 3
#define KILL_DELAY_MS 50 /* plus up to 200 at random */
#define SETTLE_MS 5000
#define DIAG_MAX 10
#define WATCHDOG_S 90

struct shared {
	uint64_t seed;
	/* the survivor */
	int b_setup_err;
	atomic_int b_pause, b_paused, b_stop;
	atomic_uint_fast64_t b_ops;
	uint64_t b_bad, b_final_bad;
	char b_why[128];
	int b_release_err;
	/* the current victim */
	atomic_uint_fast64_t a_ops;
	int a_setup_err;
};

static struct hd_daemon daemon_;

/* ---- the survivor ---- */

static void b_bad(struct shared *S, uint64_t *count, const char *who, uint64_t p, uint64_t v,
		  const char *why)
{
	if (!S->b_bad && !S->b_final_bad)
		snprintf(S->b_why, sizeof(S->b_why), "%s: page %" PRIu64 " version %" PRIu64 ": %s",
			 who, p, v, why);
	if (*count < DIAG_MAX)
		tap_diag("survivor: %s: page %" PRIu64 " expected version %" PRIu64 ", read %s",
			 who, p, v, why);
	(*count)++;
}

static void b_pause_point(struct shared *S)
{
	if (!atomic_load(&S->b_pause))
		return;
	atomic_store(&S->b_paused, 1);
	while (atomic_load(&S->b_pause))
		hd_sleep_ms(1);
	atomic_store(&S->b_paused, 0);
}

static int survivor_main(void *arg)
{
	struct shared *S = arg;
	struct pat k = { .seed = S->seed, .tag = 6, .kind = PAT_MIXED };
	struct rng g = { .state = S->seed ^ 0xb };
	uint64_t ver[B_PAGES];
	struct uzswap *u;
	char *map, why[80];
	void *p;
	int r;

	r = hd_connect(&daemon_, BUDGET, "survivor", &u);
	if (r == 0)
		r = uzswap_region_create(u, B_PAGES * PAT_PAGE, "survivor", &p);
	if (r < 0)
		return hd_setup_failed(&S->b_setup_err, r);
	map = p;
	for (uint64_t i = 0; i < B_PAGES; i++) {
		pat_write(&k, map + i * PAT_PAGE, i, 1);
		ver[i] = 1;
	}
	while (!atomic_load(&S->b_stop)) {
		uint64_t i = rng_below(&g, B_PAGES);

		b_pause_point(S);
		if (rng_below(&g, 2)) {
			ver[i] = (ver[i] + 1) & PAT_VERSION_MAX;
			pat_write(&k, map + i * PAT_PAGE, i, ver[i]);
		} else if (!pat_verify(&k, map + i * PAT_PAGE, i, ver[i], why, sizeof(why))) {
			b_bad(S, &S->b_bad, "read", i, ver[i], why);
		}
		atomic_fetch_add(&S->b_ops, 1);
	}
	for (uint64_t i = 0; i < B_PAGES; i++)
		if (!pat_verify(&k, map + i * PAT_PAGE, i, ver[i], why, sizeof(why)))
			b_bad(S, &S->b_final_bad, "final check", i, ver[i], why);
	S->b_release_err = uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

/* ---- a victim ---- */

struct victim_thread {
	struct shared *S;
	char *map;
	uint64_t first, count;
	struct rng g;
};

static void *victim_thread_main(void *arg)
{
	struct victim_thread *t = arg;
	struct pat k = { .seed = t->S->seed, .tag = 7, .kind = PAT_MIXED };
	uint64_t v = 1, buf[PAT_WORDS];

	for (uint64_t i = 0; i < t->count; i++)
		pat_write(&k, t->map + (t->first + i) * PAT_PAGE, t->first + i, v);
	for (;;) {
		uint64_t i = t->first + rng_below(&t->g, t->count);

		if (rng_below(&t->g, 2))
			pat_write(&k, t->map + i * PAT_PAGE, i, ++v & PAT_VERSION_MAX);
		else
			pat_load(t->map + i * PAT_PAGE, buf);
		atomic_fetch_add(&t->S->a_ops, 1);
	}
	return NULL;
}

static int victim_main(void *arg)
{
	struct shared *S = arg;
	struct victim_thread t[2];
	pthread_t tid;
	struct uzswap *u;
	void *p;
	int r;

	r = hd_connect(&daemon_, BUDGET, "victim", &u);
	if (r == 0)
		r = uzswap_region_create(u, A_PAGES * PAT_PAGE, "victim", &p);
	if (r < 0)
		return hd_setup_failed(&S->a_setup_err, r);
	for (int i = 0; i < 2; i++)
		t[i] = (struct victim_thread){ .S = S,
					       .map = p,
					       .first = i * (A_PAGES / 2),
					       .count = A_PAGES / 2,
					       .g = { .state = S->seed ^ (uint64_t)getpid() ^
							       (uint64_t)i } };
	if (pthread_create(&tid, NULL, victim_thread_main, &t[1]) != 0)
		return 1;
	victim_thread_main(&t[0]);
	return 0;
}

/* ---- the parent ---- */

struct figures {
	uint64_t clients, stored, comp;
	uint64_t b_pool, b_bytes;
	uint64_t a_pool, a_evicted;
	bool a_listed;
};

static int figures(struct hd_daemon *d, pid_t b, pid_t a, struct figures *f)
{
	char *json = hd_status_json(d), path[96];
	uint64_t ev_same = 0;
	int r;

	memset(f, 0, sizeof(*f));
	if (!json)
		return -EIO;
	r = jp_u64(json, "daemon.n_clients", &f->clients);
	r = r ?: jp_u64(json, "daemon.pool_stored_pages", &f->stored);
	r = r ?: jp_u64(json, "daemon.pool_compressed_bytes", &f->comp);
	snprintf(path, sizeof(path), "clients[pid=%d].pool_pages", (int)b);
	if (b > 0 && jp_u64(json, path, &f->b_pool) == 0) {
		snprintf(path, sizeof(path), "clients[pid=%d].pool_bytes", (int)b);
		r = r ?: jp_u64(json, path, &f->b_bytes);
	}
	snprintf(path, sizeof(path), "clients[pid=%d].pool_pages", (int)a);
	f->a_listed = a > 0 && jp_u64(json, path, &f->a_pool) == 0;
	if (f->a_listed) {
		snprintf(path, sizeof(path), "clients[pid=%d].evicted_pool", (int)a);
		r = r ?: jp_u64(json, path, &f->a_evicted);
		snprintf(path, sizeof(path), "clients[pid=%d].evicted_same", (int)a);
		r = r ?: jp_u64(json, path, &ev_same);
		f->a_evicted += ev_same;
	}
	if (r)
		tap_diag("uzswapctl status --json: a field is missing (%s); it begins: %.600s",
			 strerror(-r), json);
	free(json);
	return r;
}

/* One victim: start it, wait until it pages, kill it, see the daemon drop it. */
static void kill_round(struct hd_daemon *d, struct shared *S, pid_t b, int n, struct rng *g)
{
	struct figures f = { 0 };
	uint64_t start = hd_now_ms(), delay, ops;
	char how[96];
	int st = 0;
	pid_t a;

	atomic_store(&S->a_ops, 0);
	a = hd_spawn(victim_main, S);
	if (a < 0) {
		ok(false, "round %d: fork a victim: %s", n, strerror(-(int)a));
		return;
	}
	/* Paging: pages of the victim in the pool, and more evicted since. */
	while (hd_now_ms() - start < 20000 && !hd_ended(a)) {
		if (figures(d, b, a, &f) == 0 && f.a_pool > 0 && f.a_evicted > A_PAGES)
			break;
		hd_sleep_ms(20);
	}
	delay = KILL_DELAY_MS + rng_below(g, 200);
	hd_sleep_ms((unsigned int)delay);
	ops = atomic_load(&S->a_ops);
	kill(a, SIGKILL);
	hd_wait(a, 10000, &st);
	tap_diag("round %d: victim %d killed %" PRIu64 " ms after it had %" PRIu64
		 " pages in the pool and %" PRIu64 " evicted, after %" PRIu64 " operations (%s)",
		 n, (int)a, delay, f.a_pool, f.a_evicted, ops,
		 hd_wstatus_str(st, how, sizeof(how)));
	ok(f.a_pool > 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	   "round %d: a victim was killed with SIGKILL while paging (its pool pages %" PRIu64
	   ", evicted %" PRIu64 "; setup: %s)",
	   n, f.a_pool, f.a_evicted, strerror(-S->a_setup_err));

	start = hd_now_ms();
	do {
		if (figures(d, b, a, &f) == 0 && !f.a_listed && f.clients == 1)
			break;
		hd_sleep_ms(20);
	} while (hd_now_ms() - start < SETTLE_MS);
	ok(!f.a_listed && f.clients == 1 && hd_alive(d),
	   "round %d: the daemon drops the killed client and keeps running (expected 1 client, "
	   "saw %" PRIu64 "; the victim %s listed)",
	   n, f.clients, f.a_listed ? "is still" : "is no longer");
}

/* With the survivor paused, the pool holds its pages and nothing else. */
static void check_survivor_only(struct hd_daemon *d, struct shared *S, pid_t b)
{
	uint64_t start = hd_now_ms();
	struct figures f = { 0 };

	atomic_store(&S->b_pause, 1);
	while (!atomic_load(&S->b_paused) && !hd_ended(b) && hd_now_ms() - start < 10000)
		hd_sleep_ms(1);
	start = hd_now_ms();
	do {
		if (figures(d, b, 0, &f) == 0 && f.clients == 1 && f.stored == f.b_pool &&
		    f.comp == f.b_bytes)
			break;
		hd_sleep_ms(20);
	} while (hd_now_ms() - start < SETTLE_MS);
	ok(atomic_load(&S->b_paused) && f.clients == 1 && f.stored == f.b_pool &&
		   f.comp == f.b_bytes && f.b_pool > 0,
	   "after %d clients were killed the pool holds only the survivor's pages (pool pages: "
	   "expected the survivor's %" PRIu64 ", saw %" PRIu64
	   "; compressed bytes: expected %" PRIu64 ", saw %" PRIu64 "; clients %" PRIu64 ")",
	   ROUNDS, f.b_pool, f.stored, f.b_bytes, f.comp, f.clients);
	atomic_store(&S->b_pause, 0);
}

static void check_empty(struct hd_daemon *d)
{
	uint64_t start = hd_now_ms();
	struct figures f = { 0 };

	do {
		if (figures(d, 0, 0, &f) == 0 && !f.clients && !f.stored && !f.comp)
			break;
		hd_sleep_ms(20);
	} while (hd_now_ms() - start < SETTLE_MS);
	ok(!f.clients && !f.stored && !f.comp,
	   "after the survivor left too the daemon holds nothing (expected 0 clients, 0 pool "
	   "pages, 0 compressed bytes; saw %" PRIu64 ", %" PRIu64 ", %" PRIu64 ")",
	   f.clients, f.stored, f.comp);
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
	struct rng g;
	uint64_t start;
	char how[96];
	int st = 0, r;
	pid_t b;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0xdead5eed));
	g.state = S->seed;
	tap_diag("seed %#" PRIx64 " (UZSWAP_TEST_SEED)", S->seed);
	if (!ok(hd_start(d, opts) == 0, "the daemon starts"))
		return tap_done();
	b = hd_spawn(survivor_main, S);
	if (b < 0) {
		ok(false, "fork the survivor: %s", strerror(-(int)b));
		hd_stop_ok(d);
		return tap_done();
	}
	start = hd_now_ms();
	while (atomic_load(&S->b_ops) < 1000 && !hd_ended(b) && hd_now_ms() - start < 10000)
		hd_sleep_ms(5);
	for (int n = 1; n <= ROUNDS; n++)
		kill_round(d, S, b, n, &g);
	check_survivor_only(d, S, b);
	hd_sleep_ms(300);
	atomic_store(&S->b_stop, 1);
	r = hd_wait(b, 30000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->b_setup_err,
	   "the survivor ran through every kill (expected exit 0, saw %s; setup: %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), strerror(-S->b_setup_err));
	ok(S->b_bad == 0 && S->b_final_bad == 0 && S->b_ops > 0,
	   "the survivor read only what it wrote (expected 0 bad reads, saw %" PRIu64 " in %" PRIu64
	   " operations and %" PRIu64 " in the final check%s%s)",
	   S->b_bad, (uint64_t)S->b_ops, S->b_final_bad, S->b_why[0] ? "; first: " : "", S->b_why);
	ok(S->b_release_err == 0, "the survivor releases its region (%s)",
	   strerror(-S->b_release_err));
	check_empty(d);
	hd_stop_ok(d);
	return tap_done();
}
