/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fthread.c - daemon/fthread.c: fault threads over epoll.
 *
 * Clients are built in-process as libuzswap builds them (a memfd mapped
 * MAP_SHARED, registered MISSING|WP on a fresh userfaultfd), each with a
 * struct uzd_client from uzd_client_new() over one region and a shared
 * zsmalloc pool.  The clients are handed to uzd_fthreads_add(); client
 * threads of the test then touch their memory and the fault threads must
 * serve them: zero pages on first touch, pool pages after an eviction
 * (uzd_reclaim_client, as the reclaim thread evicts).  The after-drain
 * callback records which thread called it and, when a test arms its gate,
 * holds that thread inside the callback: the test then acts at a known
 * point of the thread's loop (between taking its removal list and reading
 * its eventfd).  References are checked at every hand-over: add gives the
 * thread one, remove and stop take it back.
 *
 * Every test runs twice: with the threads sleeping as soon as a batch is
 * served, and with them polling 1000 µs first (busy_poll_us, its most), so
 * that removals, the stop and throttling are seen to work while a thread
 * polls.
 *
 * Nothing can hang: every wait has a deadline; a client thread still
 * blocked at the end is woken by closing its userfaultfd once the fault
 * threads are stopped; alarm() is the backstop.  Needs root or
 * /dev/userfaultfd: the program is skipped, saying why, without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "client/uffd.h"
#include "compress/codec.h"
#include "daemon/client.h"
#include "daemon/evict.h"
#include "daemon/fault.h"
#include "daemon/fthread.h"
#include "daemon/reclaim.h"
#include "tests/tap.h"

#define PG 4096
#define WAIT_MS 2000
#define BLOCKED_MS 100 /* a fault left unserved this long is not being served */
#define LET_GO_MS 1000 /* a removal or stop must be acted on within this */
#define WATCHDOG_S 30
#define NPAGES 33 /* the last page is kept untouched for the removal test */
#define NTOUCH 32
#define NEVICT 16
#define NEVICT_SAME 2 /* of those, pages 5 and 13 are same-filled (page_data) */

static int dev_fd = -1;
static struct zpool *pool;
static struct uzc_spec lz4;

/* ---- the after-drain callback ---- */

#define MAX_WATCHED 4

/* What the callback saw of one client; gate: hold the calling thread. */
struct watched {
	struct uzd_client *c;
	atomic_int calls;
	atomic_int tid;	      /* the thread of the last call */
	atomic_int hold_upto; /* calls numbered up to this wait ... */
	atomic_int released;  /* ... until this reaches their number */
};

static struct watched watched[MAX_WATCHED];

static int gettid_(void)
{
	return (int)syscall(SYS_gettid);
}

static struct watched *watch(struct uzd_client *c)
{
	for (size_t i = 0; i < MAX_WATCHED; i++) {
		if (watched[i].c)
			continue;
		memset(&watched[i], 0, sizeof(watched[i]));
		watched[i].c = c;
		return &watched[i];
	}
	return NULL;
}

static void unwatch_all(void)
{
	memset(watched, 0, sizeof(watched));
}

static void after_drain(void *arg, struct uzd_client *c)
{
	atomic_int *total = arg;

	atomic_fetch_add(total, 1);
	for (size_t i = 0; i < MAX_WATCHED; i++) {
		struct watched *w = &watched[i];
		int n;

		if (w->c != c)
			continue;
		atomic_store(&w->tid, gettid_());
		n = atomic_fetch_add(&w->calls, 1) + 1;
		/* Held at most WAIT_MS: a test that fails must not hang the thread. */
		for (int t = 0; n <= atomic_load(&w->hold_upto) && atomic_load(&w->released) < n &&
				t < WAIT_MS;
		     t++)
			usleep(1000);
	}
}

static bool wait_calls(struct watched *w, int n)
{
	for (int t = 0; t < WAIT_MS && atomic_load(&w->calls) < n; t++)
		usleep(1000);
	return atomic_load(&w->calls) >= n;
}

/* ---- a client ---- */

struct cl;

enum job_op {
	JOB_WRITE, /* write want[] into pages [first, first + n) */
	JOB_CHECK, /* compare pages [first, first + n) with want[]; count mismatches */
};

struct job {
	struct cl *cl;
	enum job_op op;
	size_t first, n, bad;
	atomic_bool done;
	bool started;
	pthread_t tid;
};

struct cl {
	struct uzd_client *c;
	int memfd;
	char *map;
	unsigned char *want;
	struct job jobs[4];
	size_t njobs;
};

static int refs(const struct cl *cl)
{
	return __atomic_load_n(&cl->c->refs, __ATOMIC_ACQUIRE);
}

static bool wait_refs(const struct cl *cl, int n)
{
	for (int t = 0; t < LET_GO_MS && refs(cl) != n; t++)
		usleep(1000);
	return refs(cl) == n;
}

static int make_uffd(char *why, size_t len)
{
	int fd = uzs_uffd_create(-1, why, len);

	if (fd < 0 && dev_fd >= 0)
		fd = uzs_uffd_create(dev_fd, why, len);
	return fd;
}

static void page_data(uint32_t id, size_t i, unsigned char *p)
{
	uint64_t w[PG / 8];

	if (i % 8 == 5) {
		uzc_page_fill(p, (uint64_t)id << 16 | i);
		return;
	}
	for (size_t k = 0; k < PG / 8; k++)
		w[k] = (uint64_t)id << 48 | (uint64_t)i << 32 | (k / 16) * 0x0101u;
	memcpy(p, w, PG);
}

static int cl_open(struct cl *cl, uint32_t id)
{
	struct uzd_region_args a = { .len = NPAGES * PG };
	char why[256] = "";
	uint32_t rid;
	int r = -ENOMEM;

	memset(cl, 0, sizeof(*cl));
	cl->memfd = -1;
	cl->map = MAP_FAILED;
	cl->want = malloc(NPAGES * PG);
	if (!cl->want || uzd_client_new(id, pool, &cl->c) < 0)
		goto err;
	for (size_t i = 0; i < NPAGES; i++)
		page_data(id, i, cl->want + i * PG);
	cl->memfd = memfd_create("uzswap-test-fthread", MFD_CLOEXEC);
	if (cl->memfd < 0 || ftruncate(cl->memfd, NPAGES * PG) < 0)
		goto err_errno;
	cl->map = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, cl->memfd, 0);
	if (cl->map == MAP_FAILED)
		goto err_errno;
	cl->c->uffd = make_uffd(why, sizeof(why));
	if (cl->c->uffd < 0) {
		r = cl->c->uffd;
		goto err;
	}
	a.start = (uintptr_t)cl->map;
	r = uzs_uffd_register(cl->c->uffd, a.start, a.len, UZP_UFFD_REGISTER_MODES, NULL);
	if (r < 0)
		goto err;
	a.memfd = dup(cl->memfd);
	if (a.memfd < 0)
		goto err_errno;
	r = uzd_region_create(&cl->c->regions, &a, &rid);
	if (r == 0)
		return 0;
	goto err;
err_errno:
	r = -errno;
err:
	tap_diag("client setup failed: %s %s", strerror(-r), why);
	return r;
}

/*
 * The fault threads must be stopped (or the client removed and let go):
 * closing the userfaultfd wakes any client thread still blocked, and lets
 * munmap run without an UNMAP event nobody would read.
 */
static void cl_close(struct cl *cl)
{
	if (cl->c && cl->c->uffd >= 0) {
		close(cl->c->uffd);
		cl->c->uffd = -1;
	}
	for (size_t i = 0; i < cl->njobs; i++)
		if (cl->jobs[i].started)
			pthread_join(cl->jobs[i].tid, NULL);
	if (cl->c)
		uzd_client_put(cl->c);
	if (cl->map != MAP_FAILED)
		munmap(cl->map, NPAGES * PG);
	if (cl->memfd >= 0)
		close(cl->memfd);
	free(cl->want);
	memset(cl, 0, sizeof(*cl));
	cl->memfd = -1;
	cl->map = MAP_FAILED;
}

static void *job_run(void *arg)
{
	struct job *j = arg;
	struct cl *cl = j->cl;

	for (size_t i = j->first; i < j->first + j->n; i++) {
		if (j->op == JOB_WRITE)
			memcpy(cl->map + i * PG, cl->want + i * PG, PG);
		else
			j->bad += memcmp(cl->map + i * PG, cl->want + i * PG, PG) != 0;
	}
	atomic_store(&j->done, true);
	return NULL;
}

static struct job *job_start(struct cl *cl, enum job_op op, size_t first, size_t n)
{
	struct job *j;

	if (cl->njobs == sizeof(cl->jobs) / sizeof(cl->jobs[0]))
		return NULL;
	j = &cl->jobs[cl->njobs++];
	*j = (struct job){ .cl = cl, .op = op, .first = first, .n = n };
	j->started = pthread_create(&j->tid, NULL, job_run, j) == 0;
	return j->started ? j : NULL;
}

static bool job_wait(struct job *j, int ms)
{
	for (int t = 0; t < ms && !atomic_load(&j->done); t++)
		usleep(1000);
	if (!atomic_load(&j->done))
		return false;
	pthread_join(j->tid, NULL);
	j->started = false;
	return true;
}

/* A client job served by the fault threads; true when it finished in time. */
static bool run_job(struct cl *cl, enum job_op op, size_t first, size_t n, size_t *bad)
{
	struct job *j = job_start(cl, op, first, n);
	bool done = j && job_wait(j, WAIT_MS);

	if (bad)
		*bad = j ? j->bad : 0;
	return done;
}

/*
 * A client thread is woken before the fault thread publishes its page and
 * counts it: wait until @counter reaches @want and @want_resident pages of
 * the first NTOUCH are resident, so that a finished job means a settled
 * fault.  False on the deadline.
 */
static size_t resident_pages(struct cl *cl, size_t first, size_t n);

static bool settled(struct cl *cl, uint64_t *counter, uint64_t want, size_t want_resident)
{
	for (int t = 0; t < WAIT_MS; t++) {
		if (__atomic_load_n(counter, __ATOMIC_RELAXED) >= want &&
		    resident_pages(cl, 0, NTOUCH) == want_resident)
			return true;
		usleep(1000);
	}
	return false;
}

static size_t resident_pages(struct cl *cl, size_t first, size_t n)
{
	struct uzd_region *r;
	size_t idx, count = 0;

	uzd_region_read_lock(&cl->c->regions);
	for (size_t i = first; i < first + n; i++) {
		r = uzd_region_lookup(&cl->c->regions, (uintptr_t)cl->map + i * PG, &idx);
		count += r &&
			 uzd_entry_state(__atomic_load_n(&r->entries[idx], __ATOMIC_ACQUIRE)) ==
				 UZD_ENTRY_RESIDENT;
	}
	uzd_region_read_unlock(&cl->c->regions);
	return count;
}

/* Serve @cl's faults from this thread until @j is done: the daemon's job, done by hand. */
static bool serve_by_hand(struct cl *cl, struct job *j)
{
	struct uzd_fault_ctx *fc = NULL;
	struct pollfd p = { .fd = cl->c->uffd, .events = POLLIN };
	int r = 0;

	if (uzd_fault_ctx_new(&lz4, &fc) < 0)
		return false;
	for (int t = 0; t < WAIT_MS / 10 && r == 0 && !atomic_load(&j->done); t++)
		if (poll(&p, 1, 10) > 0)
			r = uzd_fault_drain(fc, cl->c);
	uzd_fault_ctx_free(fc);
	return job_wait(j, 10);
}

/* ---- tests ---- */

/* How long the threads of the current pass poll after a batch (main). */
static unsigned int busy_poll_us;

static int start_threads(unsigned int n, uzd_fthread_before_fn before, uzd_fthread_after_fn after,
			 void *arg, struct uzd_fthreads **ft)
{
	int ret = uzd_fthreads_start(n, &lz4, 0, before, after, arg, ft);

	if (ret == 0)
		uzd_fthreads_set_busy_poll(*ft, busy_poll_us);
	return ret;
}

static void test_serve(void)
{
	struct uzd_fthreads *ft = NULL;
	struct uzd_fthread_member *ma = NULL, *mb = NULL;
	struct uzd_evict_ctx *ec = NULL;
	struct watched *wa, *wb;
	atomic_int total = 0;
	struct cl a, b;
	uint64_t evicted = 0, rebuilds = 0;
	size_t bad = 0;
	bool full = false, served, a_open, b_open, called, let_go;
	struct job *j;
	int ret;

	a_open = cl_open(&a, 1) == 0;
	b_open = cl_open(&b, 2) == 0;
	ret = start_threads(2, NULL, after_drain, &total, &ft);
	if (!ok(ret == 0 && a_open && b_open, "two fault threads start (%d)", ret))
		goto out;
	wa = watch(a.c);
	wb = watch(b.c);
	ret = uzd_fthreads_add(ft, a.c, &ma);
	ok(ret == 0 && refs(&a) == 2,
	   "adding a client gives its fault thread a reference (%d, refs %d, expected 2)", ret,
	   refs(&a));
	if (ret < 0)
		goto out;

	served = run_job(&a, JOB_WRITE, 0, NTOUCH, NULL) &&
		 settled(&a, &a.c->stats.faults_zero, NTOUCH, NTOUCH);
	ok(served && a.c->stats.faults_zero == NTOUCH,
	   "a client thread's first touches are served zero pages by a fault thread (%llu zero "
	   "faults, expected %d)",
	   (unsigned long long)a.c->stats.faults_zero, NTOUCH);
	called = wait_calls(wa, 1);
	ok(called && atomic_load(&wa->tid) != gettid_(),
	   "the after-drain callback is called for the client, on a fault thread (%d calls)",
	   atomic_load(&wa->calls));

	if (uzd_evict_ctx_new(&lz4, UZC_DEFAULT_MAX_LEN, &ec) == 0)
		evicted = uzd_reclaim_client(ec, a.c, NEVICT, &full, &rebuilds);
	ok(evicted == NEVICT && resident_pages(&a, 0, NTOUCH) == NTOUCH - NEVICT,
	   "%d of the client's pages are evicted (%llu)", NEVICT, (unsigned long long)evicted);
	served = run_job(&a, JOB_CHECK, 0, NTOUCH, &bad) &&
		 settled(&a, &a.c->stats.faults_pool, NEVICT - NEVICT_SAME, NTOUCH);
	ok(served && bad == 0 && a.c->stats.faults_pool + a.c->stats.faults_same == NEVICT,
	   "evicted pages fault back through the fault thread, intact (%zu bad; %llu pool + %llu "
	   "same faults, expected %d)",
	   bad, (unsigned long long)a.c->stats.faults_pool,
	   (unsigned long long)a.c->stats.faults_same, NEVICT);

	ret = uzd_fthreads_add(ft, b.c, &mb);
	served = ret == 0 && run_job(&b, JOB_WRITE, 0, NTOUCH, NULL) &&
		 settled(&b, &b.c->stats.faults_zero, NTOUCH, NTOUCH) && wait_calls(wb, 1);
	ok(served && b.c->stats.faults_zero == NTOUCH,
	   "a second client is served too (%d, %llu zero faults)", ret,
	   (unsigned long long)b.c->stats.faults_zero);
	ok(served && atomic_load(&wb->tid) != atomic_load(&wa->tid),
	   "the second client goes to the other, less loaded thread (threads %d and %d)",
	   atomic_load(&wa->tid), atomic_load(&wb->tid));

	uzd_fthreads_remove(ft, ma);
	let_go = wait_refs(&a, 1);
	ok(let_go, "after uzd_fthreads_remove the thread drops its reference (refs %d)", refs(&a));
	j = job_start(&a, JOB_WRITE, NTOUCH, 1);
	ok(j && !job_wait(j, BLOCKED_MS),
	   "a removed client's faults are no longer served by the fault threads");
	ok(j && serve_by_hand(&a, j),
	   "the removed client's fault is served by whoever owns it now");
	if (mb)
		ok(refs(&b) == 2, "the other client keeps its thread's reference (refs %d)",
		   refs(&b));
	uzd_fthreads_stop(ft);
	ft = NULL;
	ok(!mb || refs(&b) == 1,
	   "stop lets go of a client never removed: its reference is dropped (refs %d)",
	   b.c ? refs(&b) : -1);
	ok(atomic_load(&total) >= 2, "the callback ran for every client (%d calls)",
	   atomic_load(&total));
out:
	uzd_fthreads_stop(ft);
	uzd_evict_ctx_free(ec);
	cl_close(&a);
	cl_close(&b);
	unwatch_all();
}

static void test_add_fails(void)
{
	struct uzd_fthreads *ft = NULL;
	struct uzd_fthread_member *m = NULL;
	atomic_int total = 0;
	struct uzd_client *c = NULL;
	int ret, r;

	if (start_threads(1, NULL, after_drain, &total, &ft) < 0 ||
	    uzd_client_new(9, pool, &c) < 0) {
		ok(false, "an add that epoll refuses fails cleanly");
		goto out;
	}
	/* uffd -1: epoll_ctl says EBADF. */
	ret = uzd_fthreads_add(ft, c, &m);
	for (int t = 0; t < WAIT_MS && __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE) != 1; t++)
		usleep(1000);
	r = __atomic_load_n(&c->refs, __ATOMIC_ACQUIRE);
	ok(ret == -EBADF && r == 1,
	   "an add that epoll refuses returns its error and gives the reference back (%d, refs "
	   "%d)",
	   ret, r);
out:
	uzd_fthreads_stop(ft);
	if (c)
		uzd_client_put(c);
}

/*
 * Hold the only fault thread in client A's callback, with A's userfaultfd
 * and the thread's eventfd both readable, so that its next epoll batch is
 * [A, eventfd].  Returns with the thread held in its second callback for A:
 * after it took its removal list for that batch, before it reads the
 * eventfd.
 */
static bool hold_between_list_and_eventfd(struct uzd_fthreads *ft, struct cl *a,
					  struct uzd_fthread_member *mb, struct watched *wa)
{
	struct pollfd p = { .fd = a->c->uffd, .events = POLLIN };
	struct job *j1, *j2;

	atomic_store(&wa->hold_upto, 2);
	j1 = job_start(a, JOB_WRITE, 0, 1);
	if (!j1 || !job_wait(j1, WAIT_MS) || !wait_calls(wa, 1))
		return false;
	/* The thread is in callback 1.  A faults again; then B's removal wakes the thread. */
	j2 = job_start(a, JOB_WRITE, 1, 1);
	if (!j2 || poll(&p, 1, WAIT_MS) != 1)
		return false;
	uzd_fthreads_remove(ft, mb);
	atomic_store(&wa->released, 1);
	return job_wait(j2, WAIT_MS) && wait_calls(wa, 2);
}

/* A removal asked while the thread is between its removal list and its eventfd. */
static void test_remove_while_serving(void)
{
	struct uzd_fthreads *ft = NULL;
	struct uzd_fthread_member *ma = NULL, *mb = NULL;
	atomic_int total = 0;
	struct watched *wa;
	struct cl a, b;
	bool held, a_open, b_open, let_go;

	a_open = cl_open(&a, 3) == 0;
	b_open = cl_open(&b, 4) == 0;
	if (!a_open || !b_open || start_threads(1, NULL, after_drain, &total, &ft) < 0 ||
	    uzd_fthreads_add(ft, a.c, &ma) < 0 || uzd_fthreads_add(ft, b.c, &mb) < 0) {
		ok(false, "a removal asked while the thread serves another client is acted on");
		goto out;
	}
	wa = watch(a.c);
	held = hold_between_list_and_eventfd(ft, &a, mb, wa);
	if (!ok(held, "the fault thread is held serving client A, with B's removal pending"))
		goto out;
	uzd_fthreads_remove(ft, ma);
	atomic_store(&wa->released, 2);
	let_go = wait_refs(&b, 1);
	ok(let_go, "the removal taken with that batch is acted on (B's refs %d)", refs(&b));
	let_go = wait_refs(&a, 1);
	ok(let_go,
	   "a removal asked while the thread was serving is acted on without a further event "
	   "(A's refs %d after %d ms, expected 1)",
	   refs(&a), LET_GO_MS);
out:
	uzd_fthreads_stop(ft);
	cl_close(&a);
	cl_close(&b);
	unwatch_all();
}

struct stopper {
	struct uzd_fthreads *ft;
	atomic_bool done;
};

static void *stopper_run(void *arg)
{
	struct stopper *s = arg;

	uzd_fthreads_stop(s->ft);
	atomic_store(&s->done, true);
	return NULL;
}

/* uzd_fthreads_stop while the thread is between its removal list and its eventfd. */
static void test_stop_while_serving(void)
{
	struct uzd_fthreads *ft = NULL;
	struct uzd_fthread_member *ma = NULL, *mb = NULL;
	struct stopper s = { 0 };
	atomic_int total = 0;
	struct watched *wa;
	struct cl a, b;
	bool held, a_open, b_open, started = false, stopped;
	pthread_t tid;
	struct job *j;

	a_open = cl_open(&a, 5) == 0;
	b_open = cl_open(&b, 6) == 0;
	if (!a_open || !b_open || start_threads(1, NULL, after_drain, &total, &ft) < 0 ||
	    uzd_fthreads_add(ft, a.c, &ma) < 0 || uzd_fthreads_add(ft, b.c, &mb) < 0) {
		ok(false, "stop while the thread serves a client returns");
		goto out;
	}
	wa = watch(a.c);
	held = hold_between_list_and_eventfd(ft, &a, mb, wa);
	if (!ok(held, "the fault thread is held serving client A, with B's removal pending"))
		goto out;
	s.ft = ft;
	started = pthread_create(&tid, NULL, stopper_run, &s) == 0;
	/* Time for stop to set its flag and write the eventfd: it then waits in join. */
	usleep(BLOCKED_MS * 1000);
	atomic_store(&wa->released, 2);
	for (int t = 0; started && t < LET_GO_MS && !atomic_load(&s.done); t++)
		usleep(1000);
	stopped = started && atomic_load(&s.done);
	ok(stopped,
	   "uzd_fthreads_stop called while the thread serves a client returns without a further "
	   "event (still joining after %d ms)",
	   LET_GO_MS);
	if (started && !stopped) {
		/* Any event of A wakes the thread, which then sees the stop. */
		j = job_start(&a, JOB_WRITE, 2, 1);
		if (j)
			job_wait(j, WAIT_MS);
	}
	if (started) {
		pthread_join(tid, NULL);
		ft = NULL;
	}
	ok(refs(&a) == 1 && refs(&b) == 1,
	   "after stop both clients have only the test's reference (refs %d and %d)", refs(&a),
	   refs(&b));
out:
	uzd_fthreads_stop(ft);
	cl_close(&a);
	cl_close(&b);
	unwatch_all();
}

/* ---- throttling: the before-drain callback ---- */

#define THROTTLE_MS 100

/* The callbacks' argument: after_drain() sees only the total. */
struct throttle {
	atomic_int total; /* first: after_drain() takes the argument as this */
	struct uzd_client *slow;
	atomic_int asked;
};

/* Hold @slow's faults back once, for THROTTLE_MS; serve everyone else at once. */
static uint64_t before_throttle(void *arg, struct uzd_client *c)
{
	struct throttle *th = arg;

	if (c != th->slow)
		return 0;
	return atomic_fetch_add(&th->asked, 1) == 0 ? THROTTLE_MS * UINT64_C(1000000) : 0;
}

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)(t.tv_sec - t0->tv_sec) * 1000 +
	       (uint64_t)((t.tv_nsec - t0->tv_nsec) / 1000000);
}

static void test_throttle(void)
{
	struct uzd_fthreads *ft = NULL;
	struct uzd_fthread_member *ma = NULL, *mb = NULL;
	struct throttle th = { 0 };
	struct job *ja, *jb;
	struct timespec t0;
	uint64_t ms_a = 0, ms_b = 0;
	bool a_open, b_open, done_a = false, done_b = false;
	struct cl a, b;

	a_open = cl_open(&a, 3) == 0;
	b_open = cl_open(&b, 4) == 0;
	if (!a_open || !b_open || start_threads(1, before_throttle, after_drain, &th, &ft) < 0) {
		ok(false, "a throttled client waits while another of its thread is served");
		goto out;
	}
	th.slow = a.c;
	if (uzd_fthreads_add(ft, a.c, &ma) < 0 || uzd_fthreads_add(ft, b.c, &mb) < 0) {
		ok(false, "a throttled client waits while another of its thread is served");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ja = job_start(&a, JOB_WRITE, 0, 1);
	jb = job_start(&b, JOB_WRITE, 0, 1);
	if (jb && (done_b = job_wait(jb, WAIT_MS)))
		ms_b = ms_since(&t0);
	if (ja && (done_a = job_wait(ja, WAIT_MS)))
		ms_a = ms_since(&t0);
	ok(done_b && ms_b < THROTTLE_MS,
	   "another client of the same fault thread is served while one is held back (%" PRIu64
	   " ms, expected under %d)",
	   ms_b, THROTTLE_MS);
	ok(done_a && ms_a >= THROTTLE_MS && atomic_load(&th.asked) >= 2,
	   "a client the before-drain callback holds back is served once its delay is over "
	   "(%" PRIu64 " ms, expected at least %d; asked %d times)",
	   ms_a, THROTTLE_MS, atomic_load(&th.asked));
	uzd_fthreads_remove(ft, ma);
	uzd_fthreads_remove(ft, mb);
	ma = mb = NULL;
out:
	uzd_fthreads_stop(ft);
	cl_close(&a);
	cl_close(&b);
}

static void setup(void)
{
	struct zpool_config zc = { 0 };
	char why[256] = "";
	int fd;

	dev_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	fd = make_uffd(why, sizeof(why));
	if (fd < 0)
		tap_skip_all("cannot create a userfaultfd here: %s", why);
	close(fd);
	if (uzc_spec_parse("lz4", 0, &lz4) < 0 || zpool_create("zsmalloc", &zc, &pool) < 0)
		tap_skip_all("cannot make an lz4 codec and a zsmalloc pool");
}

int main(void)
{
	struct zpool_stats zs;

	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	alarm(WATCHDOG_S);
	setup();

	for (int pass = 0; pass < 2; pass++) {
		busy_poll_us = pass ? 1000 : 0;
		tap_diag("fault threads polling %u us after a batch", busy_poll_us);
		test_serve();
		test_add_fails();
		test_remove_while_serving();
		test_stop_while_serving();
		test_throttle();
	}

	zpool_stats(pool, &zs);
	ok(zs.objects == 0, "every pool object was freed with its client (%zu left)", zs.objects);
	zpool_destroy(pool);
	if (dev_fd >= 0)
		close(dev_fd);
	return tap_done();
}
