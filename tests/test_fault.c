/* SPDX-License-Identifier: MIT */
/*
 * tests/test_fault.c - daemon/fault.c against the real kernel, a real
 * zsmalloc pool and real page data.
 *
 * Each test makes an in-process client the way libuzswap does (a memfd
 * mapped MAP_SHARED, registered MISSING|WP on a new userfaultfd) and a
 * struct uzd_client for it with one region over the mapping.  Pages are
 * "evicted" by hand: compressed with compress/codec.h, stored in the pool
 * behind a struct uzd_obj_hdr, and their entry set POOL (or SAME) through
 * the region API, exactly as eviction will.  Client threads then touch the
 * memory while the main thread plays the daemon: it polls the userfaultfd
 * and calls uzd_fault_drain().  The poison tests fork a real client
 * process, which must die of SIGBUS, never see wrong bytes.
 *
 * Nothing can hang: every wait has a deadline, a timed-out test closes the
 * userfaultfd (which wakes every blocked thread) before joining, and a
 * watchdog alarm ends the program.  Needs root or /dev/userfaultfd.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "bench/pagefile.h"
#include "client/uffd.h"
#include "compress/codec.h"
#include "daemon/client.h"
#include "daemon/fault.h"
#include "daemon/object.h"
#include "daemon/uffd.h"
#include "daemon/writeback.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define PG 4096
#define WAIT_MS 3000
#define WATCHDOG_S 60
#define CLIENT_ID 7
#define NTHREADS 4
#define NCONC 1000

/* What every test shares: the pool, the codecs, the real pages. */
struct env {
	struct zpool *pool;
	struct uzc_ctx *lz4, *zstd;
	struct uzd_fault_ctx *fc;
	unsigned char *pages; /* npages real pages */
	size_t npages;
};

/* One client: its memory, its userfaultfd, and the daemon's view of it. */
struct fx {
	struct uzd_client c;
	int memfd;
	char *map;
	size_t len, mapped; /* mapped: bytes still mapped from map */
	bool table;
};

/* ---- the client's memory ---- */

static int fx_open(struct fx *f, struct env *e, size_t npages)
{
	struct uzd_region_args a = { 0 };
	char why[256] = "";
	uint32_t id;
	int r;

	memset(f, 0, sizeof(*f));
	f->c.id = CLIENT_ID;
	f->c.pool = e->pool;
	f->c.uffd = -1;
	f->len = f->mapped = npages * PG;
	f->memfd = memfd_create("uzswap-test-fault", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, (off_t)f->len) < 0)
		goto err;
	f->map = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		goto err;
	}
	if (uzd_region_table_init(&f->c.regions) < 0 || uzd_lru_init(&f->c.lru) < 0 ||
	    uzd_lru_init(&f->c.hot) < 0)
		goto err;
	f->table = true;
	a.start = (uintptr_t)f->map;
	a.len = f->len;
	a.memfd = dup(f->memfd);
	r = uzd_region_create(&f->c.regions, &a, &id);
	if (r < 0) {
		tap_diag("uzd_region_create: %s", strerror(-r));
		goto err;
	}
	return 0;
err:
	tap_diag("client setup failed: %s %s", strerror(errno), why);
	return -1;
}

/* The client's own userfaultfd, as a thread of the test process. */
static int fx_register(struct fx *f)
{
	char why[256] = "";

	f->c.uffd = uzs_uffd_create(-1, why, sizeof(why));
	if (f->c.uffd < 0) {
		tap_diag("uzs_uffd_create: %s", why);
		return -1;
	}
	return uzs_uffd_register(f->c.uffd, (uintptr_t)f->map, f->len, UZP_UFFD_REGISTER_MODES,
				 NULL);
}

static void release_obj(const struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg)
{
	struct uzd_client *c = arg;

	(void)r;
	(void)pgidx;
	if (uzd_entry_state(entry) == UZD_ENTRY_POOL)
		zpool_free(c->pool, uzd_entry_pool_handle(entry));
}

/* Close the userfaultfd first: it wakes every blocked thread, and munmap raises no event. */
static void fx_release(struct fx *f)
{
	if (f->c.uffd >= 0)
		close(f->c.uffd);
	f->c.uffd = -1;
}

static void fx_close(struct fx *f)
{
	fx_release(f);
	if (f->table) {
		uzd_region_table_fini(&f->c.regions, release_obj, &f->c);
		uzd_lru_fini(&f->c.lru);
		uzd_lru_fini(&f->c.hot);
	}
	if (f->map && f->mapped)
		munmap(f->map, f->mapped);
	if (f->memfd >= 0)
		close(f->memfd);
	memset(f, 0, sizeof(*f));
	f->memfd = -1;
}

static uintptr_t fx_addr(const struct fx *f, size_t i)
{
	return (uintptr_t)f->map + i * PG;
}

/* ---- evicting by hand, as daemon eviction will ---- */

static uint64_t entry_of(struct fx *f, size_t i)
{
	struct uzd_region *r;
	uint64_t v = UINT64_MAX;
	size_t idx;

	uzd_region_read_lock(&f->c.regions);
	r = uzd_region_lookup(&f->c.regions, fx_addr(f, i), &idx);
	if (r)
		v = __atomic_load_n(&r->entries[idx], __ATOMIC_ACQUIRE);
	uzd_region_read_unlock(&f->c.regions);
	return v;
}

static int set_entry(struct fx *f, size_t i, uint64_t v)
{
	struct uzd_region *r;
	uint64_t old;
	size_t idx;
	int ret = -ENOENT;

	uzd_region_read_lock(&f->c.regions);
	r = uzd_region_lookup(&f->c.regions, fx_addr(f, i), &idx);
	if (r)
		ret = uzd_region_claim(r, idx, UZD_STATE_BIT(UZD_ENTRY_EMPTY), &old);
	if (ret == 0)
		ret = uzd_region_publish(r, idx, v);
	uzd_region_read_unlock(&f->c.regions);
	return ret;
}

/* An incompressible page goes into the pool as itself: no header (object.h). */
static int make_raw_object(struct fx *f, const unsigned char *page, unsigned long *handle)
{
	unsigned char *obj;
	int r = zpool_malloc(f->c.pool, PG, handle);

	if (r < 0)
		return r;
	obj = zpool_map(f->c.pool, *handle, ZPOOL_MM_WO);
	memcpy(obj, page, PG);
	zpool_unmap(f->c.pool, *handle);
	__atomic_fetch_add(&f->c.stats.pool_bytes, PG, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Put @page in the pool as eviction would, with codec context @cc (NULL:
 * raw), as evicted at @seq from @addr; *handle gets the object, and the
 * entry flags it needs (UZD_ENTRY_RAW for a page stored as itself).
 */
static int make_object(struct fx *f, const unsigned char *page, struct uzc_ctx *cc, uint32_t seq,
		       uintptr_t addr, unsigned long *handle, unsigned int *flags)
{
	unsigned char buf[PG];
	struct uzd_obj_hdr h = { .addr = addr, .client_id = CLIENT_ID, .evict_seq = seq };
	const unsigned char *src = buf;
	unsigned char *obj;
	ssize_t n = cc ? uzc_compress(cc, page, buf, sizeof(buf)) : UZC_INCOMPRESSIBLE;
	int r;

	if (n < 0)
		return (int)n;
	*flags = n ? 0 : UZD_ENTRY_RAW;
	if (!n)
		return make_raw_object(f, page, handle);
	h.codec = uzc_ctx_spec(cc).id;
	h.len = (uint32_t)n;
	r = zpool_malloc(f->c.pool, UZD_OBJ_HDR_SIZE + h.len, handle);
	if (r < 0)
		return r;
	obj = zpool_map(f->c.pool, *handle, ZPOOL_MM_WO);
	uzd_obj_hdr_write(obj, &h);
	memcpy(obj + UZD_OBJ_HDR_SIZE, src, h.len);
	zpool_unmap(f->c.pool, *handle);
	__atomic_fetch_add(&f->c.stats.pool_bytes, UZD_OBJ_HDR_SIZE + h.len, __ATOMIC_RELAXED);
	return 0;
}

/* make_object(), and page i's entry (EMPTY) now holds it. */
static int store_at(struct fx *f, size_t i, const unsigned char *page, struct uzc_ctx *cc,
		    uint32_t seq, uintptr_t addr, unsigned long *handle)
{
	unsigned int flags = 0;
	int r = make_object(f, page, cc, seq, addr, handle, &flags);

	if (r == 0)
		r = set_entry(f, i, uzd_entry_make_pool(*handle, flags));
	return r;
}

static int store(struct fx *f, size_t i, const unsigned char *page, struct uzc_ctx *cc,
		 uint32_t seq)
{
	unsigned long handle;

	return store_at(f, i, page, cc, seq, fx_addr(f, i), &handle);
}

static size_t pool_objects(struct zpool *pool)
{
	struct zpool_stats st;

	zpool_stats(pool, &st);
	return st.objects;
}

/* ---- the client: threads touching their memory ---- */

enum job_op {
	JOB_CHECK,	 /* compare pages with want (NULL: zeros); count mismatches */
	JOB_MADV_REMOVE, /* madvise(MADV_REMOVE) over the pages */
	JOB_MUNMAP,
	JOB_WRITE,  /* store 0x5a in the first byte */
	JOB_MREMAP, /* move the pages to @to */
};

struct job {
	struct fx *f;
	enum job_op op;
	size_t first, count, step; /* JOB_CHECK: pages first, first + step, ...; step 0 is 1 */
	const unsigned char *want;
	void *to; /* JOB_MREMAP */
	size_t bad;
	long ret;
	atomic_bool done;
	bool started;
	pthread_t tid;
};

static bool page_matches(const char *p, const unsigned char *want)
{
	static const unsigned char zero[PG];

	return memcmp(p, want ? want : zero, PG) == 0;
}

static void *job_run(void *arg)
{
	struct job *j = arg;
	char *p = j->f->map + j->first * PG;

	switch (j->op) {
	case JOB_CHECK:
		for (size_t i = 0, k = 0; i < j->count; i++, k += j->step ? j->step : 1)
			if (!page_matches(p + k * PG, j->want ? j->want + k * PG : NULL))
				j->bad++;
		break;
	case JOB_MADV_REMOVE:
		j->ret = madvise(p, j->count * PG, MADV_REMOVE);
		break;
	case JOB_MUNMAP:
		j->ret = munmap(p, j->count * PG);
		break;
	case JOB_WRITE:
		*(volatile char *)p = 0x5a;
		break;
	case JOB_MREMAP:
		j->ret = mremap(p, j->count * PG, j->count * PG, MREMAP_MAYMOVE | MREMAP_FIXED,
				j->to) == j->to ?
				 0 :
				 -errno;
		break;
	}
	atomic_store(&j->done, true);
	return NULL;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool all_done(struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (jobs[i].started && !atomic_load(&jobs[i].done))
			return false;
	return true;
}

/*
 * The daemon's side: serve the client until its jobs are done.  On a
 * deadline or a drain error, close the userfaultfd so the jobs end.
 */
static bool serve(struct env *e, struct fx *f, struct job *jobs, size_t n)
{
	uint64_t deadline = ms_now() + WAIT_MS;
	struct pollfd p = { .fd = f->c.uffd, .events = POLLIN };
	bool good = true;
	int r;

	while (!all_done(jobs, n)) {
		if (ms_now() > deadline) {
			tap_diag("client threads still blocked after %d ms", WAIT_MS);
			good = false;
			break;
		}
		if (poll(&p, 1, 10) <= 0)
			continue;
		r = uzd_fault_drain(e->fc, &f->c);
		if (r < 0) {
			tap_diag("uzd_fault_drain: %s", uzd_uffd_strerror(r));
			good = false;
			break;
		}
	}
	if (!good)
		fx_release(f);
	for (size_t i = 0; i < n; i++)
		if (jobs[i].started)
			pthread_join(jobs[i].tid, NULL);
	return good;
}

/* Run one job on client f, every @step-th page from @first, and serve it. */
static bool run_step(struct env *e, struct fx *f, struct job *j, enum job_op op, size_t first,
		     size_t count, size_t step, const unsigned char *want)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	j->op = op;
	j->first = first;
	j->count = count;
	j->step = step;
	j->want = want;
	j->started = pthread_create(&j->tid, NULL, job_run, j) == 0;
	return j->started && serve(e, f, j, 1);
}

static bool run1(struct env *e, struct fx *f, struct job *j, enum job_op op, size_t first,
		 size_t count, const unsigned char *want)
{
	return run_step(e, f, j, op, first, count, 1, want);
}

static bool entries_resident(struct fx *f, size_t first, size_t count)
{
	for (size_t i = first; i < first + count; i++)
		if (uzd_entry_state(entry_of(f, i)) != UZD_ENTRY_RESIDENT) {
			tap_diag("page %zu: entry %#llx, expected RESIDENT", i,
				 (unsigned long long)entry_of(f, i));
			return false;
		}
	return true;
}

/* ---- tests ---- */

static void test_first_touch(struct env *e)
{
	struct job j;
	struct fx f;
	bool served;

	if (fx_open(&f, e, 4) < 0 || fx_register(&f) < 0) {
		ok(false, "a first touch reads zeros");
		goto out;
	}
	served = run1(e, &f, &j, JOB_CHECK, 0, 4, NULL);
	ok(served && j.bad == 0, "a first touch reads zeros (%zu bad pages)", j.bad);
	ok(entries_resident(&f, 0, 4) && f.c.stats.faults_zero == 4,
	   "first touches make the entries RESIDENT and count as zero faults (%llu)",
	   (unsigned long long)f.c.stats.faults_zero);
	ok(uzd_hist_count(&f.c.stats.fault_ns) == 4, "each served fault records its service time");
out:
	fx_close(&f);
}

static void test_same(struct env *e)
{
	static const uint64_t words[] = { UINT64_C(0x002bcdef12345678), (uint64_t)-2 };
	unsigned char want[2 * PG];
	struct job j;
	struct fx f;
	bool served;

	for (size_t i = 0; i < 2; i++)
		uzc_page_fill(want + i * PG, words[i]);
	if (fx_open(&f, e, 2) < 0 || fx_register(&f) < 0 ||
	    set_entry(&f, 0, uzd_entry_make_same(words[0], 0)) < 0 ||
	    set_entry(&f, 1, uzd_entry_make_same(words[1], 0)) < 0) {
		ok(false, "a SAME entry restores its word everywhere in the page");
		goto out;
	}
	served = run1(e, &f, &j, JOB_CHECK, 0, 2, want);
	ok(served && j.bad == 0 && f.c.stats.faults_same == 2 && entries_resident(&f, 0, 2),
	   "a SAME entry restores its word everywhere in the page (positive and negative word)");
out:
	fx_close(&f);
}

/* Real pages through the pool with codec @cc (NULL: stored raw). */
static void test_pool_codec(struct env *e, struct uzc_ctx *cc, const char *name,
			    const unsigned char *pages, size_t n)
{
	size_t objs_before = pool_objects(e->pool);
	struct job j;
	struct fx f;
	bool served, stored = true;

	if (fx_open(&f, e, n) < 0 || fx_register(&f) < 0) {
		ok(false, "%s pages restore from the pool", name);
		goto out;
	}
	for (size_t i = 0; i < n && stored; i++)
		stored = store(&f, i, pages + i * PG, cc, 0) == 0;
	ok(stored && pool_objects(e->pool) == objs_before + n && f.c.stats.pool_bytes > 0,
	   "%s: %zu real pages are stored in the pool", name, n);
	served = run1(e, &f, &j, JOB_CHECK, 0, n, pages);
	ok(served && j.bad == 0, "%s: every pool page restores byte-identical (%zu bad)", name,
	   j.bad);
	ok(pool_objects(e->pool) == objs_before && f.c.stats.pool_bytes == 0,
	   "%s: restoring frees each object (objects %zu, pool_bytes %llu)", name,
	   pool_objects(e->pool) - objs_before, (unsigned long long)f.c.stats.pool_bytes);
	ok(entries_resident(&f, 0, n) && f.c.stats.faults_pool == n,
	   "%s: the entries are RESIDENT, faults_pool %llu", name,
	   (unsigned long long)f.c.stats.faults_pool);
out:
	fx_close(&f);
}

static void test_pool(struct env *e)
{
	test_pool_codec(e, e->lz4, "lz4", e->pages, 32);
	test_pool_codec(e, e->zstd, "zstd", e->pages + 32 * PG, 32);
}

/*
 * An incompressible page is stored as itself, 4096 bytes with no header,
 * and its entry flagged RAW (daemon/object.h): it restores like any other.
 */
static void test_raw(struct env *e)
{
	unsigned char raw[2 * PG];
	struct rng g = { .state = 42 };

	for (size_t i = 0; i < sizeof(raw) / 8; i++) {
		uint64_t w = rng_next(&g);

		memcpy(raw + i * 8, &w, 8);
	}
	/* Random bytes do not compress: make_object() stores them raw. */
	test_pool_codec(e, NULL, "raw (incompressible)", raw, 2);
}

/* ---- poison, with a real client process ---- */

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 'u';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct pollfd p = { .fd = sock, .events = POLLIN };
	struct cmsghdr *cm;
	int fd;

	if (poll(&p, 1, WAIT_MS) != 1 || recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * The client process: registers its inherited mapping, hands its
 * userfaultfd over, checks good page 0, then touches bad page 1.  Any exit
 * but death by SIGBUS says what went wrong; 14 means it saw bytes.
 */
static void poison_client(int sock, struct fx *f, const unsigned char *good)
{
	char go;
	int fd;

	alarm(5);
	signal(SIGBUS, SIG_DFL); /* sanitizers catch SIGBUS and exit instead */
	fd = uzs_uffd_create(-1, NULL, 0);
	if (fd < 0 ||
	    uzs_uffd_register(fd, (uintptr_t)f->map, f->len, UZP_UFFD_REGISTER_MODES, NULL))
		_exit(10);
	if (send_fd(sock, fd) < 0 || read(sock, &go, 1) != 1)
		_exit(11);
	if (memcmp(f->map, good, PG) != 0)
		_exit(12);
	*(volatile char *)(f->map + PG);
	_exit(14);
}

/* Serve the child until it exits. */
static bool serve_child(struct env *e, struct fx *f, pid_t pid, int *status)
{
	uint64_t deadline = ms_now() + WAIT_MS;
	struct pollfd p = { .fd = f->c.uffd, .events = POLLIN };

	while (ms_now() < deadline) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		if (poll(&p, 1, 10) > 0 && uzd_fault_drain(e->fc, &f->c) < 0)
			break;
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return false;
}

/*
 * Page 1 holds a bad object: corrupt (@foreign false: its payload bytes
 * flipped) or naming another page (@foreign true).
 */
static void test_poison_case(struct env *e, bool foreign)
{
	const char *what = foreign ? "an object whose header names another page" :
				     "a corrupt pool object";
	const struct uzd_fault_stats *fs = uzd_fault_stats(e->fc);
	uint64_t poisoned = fs->poisoned;
	size_t objs_before = pool_objects(e->pool);
	int sv[2] = { -1, -1 }, status = 0;
	unsigned long handle;
	unsigned char *obj;
	pid_t pid = -1;
	bool served;
	struct fx f;

	if (fx_open(&f, e, 2) < 0 || store(&f, 0, e->pages, e->lz4, 0) < 0 ||
	    store_at(&f, 1, e->pages + PG, e->lz4, 0, fx_addr(&f, foreign ? 0 : 1), &handle) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		ok(false, "%s: setup", what);
		goto out;
	}
	if (!foreign) {
		obj = zpool_map(e->pool, handle, ZPOOL_MM_RW);
		for (size_t i = UZD_OBJ_HDR_SIZE; i < UZD_OBJ_HDR_SIZE + 64; i++)
			obj[i] ^= 0x5a;
		zpool_unmap(e->pool, handle);
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		poison_client(sv[1], &f, e->pages);
	}
	close(sv[1]);
	sv[1] = -1;
	f.c.uffd = pid > 0 ? recv_fd(sv[0]) : -1;
	if (!ok(f.c.uffd >= 0 && write(sv[0], "g", 1) == 1, "%s: a client process connects", what))
		goto out;
	served = serve_child(e, &f, pid, &status);
	ok(served && WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
	   "%s: the touching client gets SIGBUS, never wrong data (%s %d)", what,
	   WIFSIGNALED(status) ? "signal" : "exit",
	   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	pid = -1;
	ok(fs->poisoned == poisoned + 1 && uzd_entry_state(entry_of(&f, 0)) == UZD_ENTRY_RESIDENT,
	   "%s: only that page was poisoned; the good one restored", what);
	if (foreign)
		ok(uzd_entry_state(entry_of(&f, 1)) == UZD_ENTRY_EMPTY &&
			   pool_objects(e->pool) == objs_before + 1,
		   "%s: the entry lets go of the object without freeing it", what);
	else
		ok(uzd_entry_state(entry_of(&f, 1)) == UZD_ENTRY_POOL &&
			   pool_objects(e->pool) == objs_before + 1,
		   "%s: the entry keeps its object for a later drop", what);
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	fx_close(&f);
	/* The foreign object is leaked on purpose by the daemon; the test frees it. */
	if (foreign && pool_objects(e->pool) > objs_before)
		zpool_free(e->pool, handle);
}

/* ---- dropping ranges ---- */

static void test_remove(struct env *e)
{
	size_t objs_before = pool_objects(e->pool);
	struct job j;
	struct fx f;
	bool stored = true, served;

	if (fx_open(&f, e, 8) < 0 || fx_register(&f) < 0) {
		ok(false, "MADV_REMOVE over pool pages frees their objects");
		goto out;
	}
	for (size_t i = 0; i < 8 && stored; i++)
		stored = store(&f, i, e->pages + i * PG, e->lz4, 0) == 0;
	served = stored && run1(e, &f, &j, JOB_MADV_REMOVE, 2, 4, NULL);
	ok(served && j.ret == 0 && pool_objects(e->pool) == objs_before + 4,
	   "MADV_REMOVE over 4 of 8 pool pages frees their 4 objects (%zu left)",
	   pool_objects(e->pool) - objs_before);
	ok(uzd_entry_state(entry_of(&f, 2)) == UZD_ENTRY_EMPTY &&
		   uzd_entry_state(entry_of(&f, 1)) == UZD_ENTRY_POOL,
	   "the removed pages' entries are EMPTY, the others still POOL");
	served = run1(e, &f, &j, JOB_CHECK, 2, 4, NULL);
	ok(served && j.bad == 0, "removed pages read zeros afterwards (%zu bad)", j.bad);
	served = run1(e, &f, &j, JOB_CHECK, 0, 2, e->pages) &&
		 run1(e, &f, &j, JOB_CHECK, 6, 2, e->pages + 6 * PG);
	ok(served && j.bad == 0 && pool_objects(e->pool) == objs_before &&
		   f.c.stats.pool_bytes == 0,
	   "pages outside the removed range restore, and pool_bytes returns to 0");
out:
	fx_close(&f);
}

static void test_unmap(struct env *e)
{
	size_t objs_before = pool_objects(e->pool);
	struct job j;
	struct fx f;
	bool stored = true, served;

	if (fx_open(&f, e, 8) < 0 || fx_register(&f) < 0) {
		ok(false, "munmap of part of a region releases that part");
		goto out;
	}
	for (size_t i = 0; i < 8 && stored; i++)
		stored = store(&f, i, e->pages + i * PG, e->zstd, 0) == 0;
	served = stored && run1(e, &f, &j, JOB_MUNMAP, 4, 4, NULL);
	if (served && j.ret == 0)
		f.mapped = 4 * PG;
	ok(served && j.ret == 0 && pool_objects(e->pool) == objs_before + 4,
	   "munmap of the upper half of a region frees its 4 pool objects (%zu left)",
	   pool_objects(e->pool) - objs_before);
	ok(entry_of(&f, 5) == UINT64_MAX && uzd_entry_state(entry_of(&f, 3)) == UZD_ENTRY_POOL,
	   "the region is trimmed to the part still mapped");
	served = run1(e, &f, &j, JOB_CHECK, 0, 4, e->pages);
	ok(served && j.bad == 0 && pool_objects(e->pool) == objs_before &&
		   f.c.stats.pool_bytes == 0,
	   "the part still mapped restores, and pool_bytes returns to 0");
out:
	fx_close(&f);
}

/* ---- concurrency ---- */

static void test_threads(struct env *e)
{
	size_t objs_before = pool_objects(e->pool), per = NCONC / NTHREADS, bad = 0;
	struct job jobs[NTHREADS];
	bool stored = true, served;
	struct fx f;

	memset(jobs, 0, sizeof(jobs));
	if (e->npages < NCONC || fx_open(&f, e, NCONC) < 0 || fx_register(&f) < 0) {
		ok(false, "%d client threads restore %d pool pages", NTHREADS, NCONC);
		goto out;
	}
	for (size_t i = 0; i < NCONC && stored; i++)
		stored = store(&f, i, e->pages + i * PG, i % 2 ? e->zstd : e->lz4, 0) == 0;
	for (size_t t = 0; t < NTHREADS && stored; t++) {
		jobs[t] = (struct job){ .f = &f, .op = JOB_CHECK, .first = t * per, .count = per };
		jobs[t].want = e->pages + t * per * PG;
		jobs[t].started = pthread_create(&jobs[t].tid, NULL, job_run, &jobs[t]) == 0;
	}
	served = stored && serve(e, &f, jobs, NTHREADS);
	for (size_t t = 0; t < NTHREADS; t++)
		bad += jobs[t].bad;
	ok(served && bad == 0,
	   "%d client threads restore %d pool pages, each byte verified (%zu bad)", NTHREADS, NCONC,
	   bad);
	ok(pool_objects(e->pool) == objs_before && f.c.stats.pool_bytes == 0 &&
		   entries_resident(&f, 0, NCONC),
	   "every object was freed exactly once and every entry is RESIDENT");
out:
	fx_close(&f);
}

/* ---- refault distance ---- */

static void test_hot(struct env *e)
{
	struct job j;
	struct fx f;
	bool served;

	/* A budget of 10 pages; page 10 evicted 5 evictions ago, page 11 105 ago. */
	if (fx_open(&f, e, 12) < 0 || fx_register(&f) < 0 ||
	    !run1(e, &f, &j, JOB_CHECK, 0, 10, NULL) || store(&f, 10, e->pages, e->lz4, 100) < 0 ||
	    store(&f, 11, e->pages + PG, e->lz4, 0) < 0) {
		ok(false, "a refault within the resident set's size marks the page HOT");
		goto out;
	}
	f.c.evict_seq = 105;
	f.c.hot_distance = 10;
	served = run1(e, &f, &j, JOB_CHECK, 10, 2, e->pages);
	ok(served && j.bad == 0 && (uzd_entry_flags(entry_of(&f, 10)) & UZD_ENTRY_HOT),
	   "a refault 5 evictions after eviction, with a budget of 10 pages, marks the page HOT");
	ok(!(uzd_entry_flags(entry_of(&f, 11)) & UZD_ENTRY_HOT) && f.c.stats.refaults_hot == 1,
	   "a refault 105 evictions after eviction is not HOT (refaults_hot %llu)",
	   (unsigned long long)f.c.stats.refaults_hot);
out:
	fx_close(&f);
}

/* ---- a page owned by an eviction ---- */

/* Claim page i as eviction does (BUSY); the test keeps it across calls. */
static int claim_page(struct fx *f, size_t i, uint64_t *old)
{
	struct uzd_region *r;
	size_t idx;
	int ret = -ENOENT;

	uzd_region_read_lock(&f->c.regions);
	r = uzd_region_lookup(&f->c.regions, fx_addr(f, i), &idx);
	if (r)
		ret = uzd_region_claim(r, idx, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), old);
	uzd_region_read_unlock(&f->c.regions);
	return ret;
}

static int leave_page(struct fx *f, size_t i, uint64_t v, bool publish)
{
	struct uzd_region *r;
	size_t idx;
	int ret = -ENOENT;

	uzd_region_read_lock(&f->c.regions);
	r = uzd_region_lookup(&f->c.regions, fx_addr(f, i), &idx);
	if (r)
		ret = publish ? uzd_region_publish(r, idx, v) : uzd_region_abort(r, idx, v);
	uzd_region_read_unlock(&f->c.regions);
	return ret;
}

/* Serve for @ms without expecting the job to finish; true if it is still blocked. */
static bool still_blocked_after(struct env *e, struct fx *f, struct job *j, int ms)
{
	struct pollfd p = { .fd = f->c.uffd, .events = POLLIN };
	uint64_t end = ms_now() + (uint64_t)ms;

	while (ms_now() < end)
		if (poll(&p, 1, 5) > 0 && uzd_fault_drain(e->fc, &f->c) < 0)
			return false;
	return !atomic_load(&j->done);
}

static bool start_job(struct job *j, struct fx *f, enum job_op op, size_t first, size_t count,
		      const unsigned char *want)
{
	memset(j, 0, sizeof(*j));
	*j = (struct job){ .f = f, .op = op, .first = first, .count = count, .want = want };
	j->started = pthread_create(&j->tid, NULL, job_run, j) == 0;
	return j->started;
}

/*
 * Eviction of page 0 runs by hand: claim (BUSY), fence, punch.  A reader
 * faults MISSING meanwhile and must wait; the eviction then publishes POOL
 * and unprotects, and the reader gets the page from the pool.
 */
static void test_busy_missing(struct env *e)
{
	const struct uzd_fault_stats *fs = uzd_fault_stats(e->fc);
	uint64_t busy = fs->busy, old = 0;
	unsigned long handle;
	unsigned int flags = 0;
	bool blocked = false, served = false;
	struct job j = { 0 };
	struct fx f;

	if (fx_open(&f, e, 2) < 0 || fx_register(&f) < 0 ||
	    !run1(e, &f, &j, JOB_CHECK, 0, 1, NULL) || claim_page(&f, 0, &old) < 0 ||
	    uzd_uffd_writeprotect(f.c.uffd, fx_addr(&f, 0), PG, true, false) < 0 ||
	    fallocate(f.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PG) < 0 ||
	    !start_job(&j, &f, JOB_CHECK, 0, 1, e->pages)) {
		ok(false, "a fault on a page an eviction owns waits for the eviction");
		goto out;
	}
	blocked = still_blocked_after(e, &f, &j, 100);
	ok(blocked && fs->busy > busy,
	   "a MISSING fault on a BUSY page is left unanswered while the eviction runs");
	/* The eviction stores the page and lets go: publish POOL, then unprotect. */
	if (make_object(&f, e->pages, e->lz4, 0, fx_addr(&f, 0), &handle, &flags) == 0 &&
	    leave_page(&f, 0, uzd_entry_make_pool(handle, flags), true) == 0 &&
	    uzd_uffd_writeprotect(f.c.uffd, fx_addr(&f, 0), PG, false, true) == 0)
		served = serve(e, &f, &j, 1);
	ok(served && j.bad == 0 && f.c.stats.faults_pool == 1,
	   "after the eviction's unprotect the reader refaults and gets the pool page");
	j.started = false;
out:
	if (j.started)
		serve(e, &f, &j, 1);
	fx_close(&f);
}

/* A write to a fenced page raises a WP fault: left for the eviction's unprotect. */
static void test_wp(struct env *e)
{
	const struct uzd_fault_stats *fs = uzd_fault_stats(e->fc);
	uint64_t wp = fs->wp, old = 0;
	bool blocked = false, served = false;
	unsigned char byte = 0;
	struct job j = { 0 };
	struct fx f;

	if (fx_open(&f, e, 2) < 0 || fx_register(&f) < 0 ||
	    !run1(e, &f, &j, JOB_CHECK, 0, 1, NULL) || claim_page(&f, 0, &old) < 0 ||
	    uzd_uffd_writeprotect(f.c.uffd, fx_addr(&f, 0), PG, true, false) < 0 ||
	    !start_job(&j, &f, JOB_WRITE, 0, 1, NULL)) {
		ok(false, "a WP fault waits for the eviction's unprotect");
		goto out;
	}
	blocked = still_blocked_after(e, &f, &j, 100);
	ok(blocked && fs->wp > wp, "a WP fault on a fenced page is left for the eviction");
	if (leave_page(&f, 0, old, false) == 0 &&
	    uzd_uffd_writeprotect(f.c.uffd, fx_addr(&f, 0), PG, false, true) == 0)
		served = serve(e, &f, &j, 1);
	ok(served && pread(f.memfd, &byte, 1, 0) == 1 && byte == 0x5a,
	   "the eviction's unprotect releases the writer, and its write is kept");
	j.started = false;
out:
	if (j.started)
		serve(e, &f, &j, 1);
	fx_close(&f);
}

/*
 * A fault and an madvise(MADV_REMOVE) elsewhere in the region pending
 * together: the event is handled first, the fill may meet -EAGAIN until the
 * madvise resumes (uffd.h), and both complete.
 */
static void test_fault_with_event(struct env *e)
{
	struct pollfd p;
	struct job j[2];
	bool served = false;
	struct fx f;

	memset(j, 0, sizeof(j));
	if (fx_open(&f, e, 8) < 0 || fx_register(&f) < 0 || store(&f, 0, e->pages, e->lz4, 0) < 0 ||
	    store(&f, 5, e->pages + PG, e->lz4, 0) < 0 ||
	    !start_job(&j[0], &f, JOB_CHECK, 0, 1, e->pages)) {
		ok(false, "a fault and a REMOVE event pending together are both served");
		goto out;
	}
	p = (struct pollfd){ .fd = f.c.uffd, .events = POLLIN };
	if (poll(&p, 1, WAIT_MS) == 1 && start_job(&j[1], &f, JOB_MADV_REMOVE, 4, 4, NULL)) {
		usleep(20000);
		served = serve(e, &f, j, 2);
	}
	ok(served && j[0].bad == 0 && j[1].ret == 0 &&
		   uzd_entry_state(entry_of(&f, 5)) == UZD_ENTRY_EMPTY &&
		   f.c.stats.faults_pool == 1 && f.c.stats.pool_bytes == 0,
	   "a fault and a REMOVE event pending together are both served (%llu EAGAIN retries)",
	   (unsigned long long)uzd_fault_stats(e->fc)->eagain_retry);
	j[0].started = j[1].started = false;
out:
	if (j[0].started || j[1].started)
		serve(e, &f, j, 2);
	fx_close(&f);
}

/*
 * A RESIDENT page whose memfd page is gone: the kernel punches for
 * MADV_REMOVE only after the daemon read the event, so a fault served in
 * between is punched away under its RESIDENT entry.  (Punched here by hand,
 * without an event.)  Its next fault must get zeros, not a wake that sends
 * it back to fault again for ever.
 */
static void test_resident_hole(struct env *e)
{
	struct job j;
	struct fx f;
	bool served;

	if (fx_open(&f, e, 2) < 0 || fx_register(&f) < 0 ||
	    !run1(e, &f, &j, JOB_WRITE, 0, 1, NULL) || !entries_resident(&f, 0, 1)) {
		ok(false, "a RESIDENT page punched behind the daemon's back reads zeros");
		goto out;
	}
	if (fallocate(f.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, PG) < 0) {
		ok(false, "punching the memfd: %s", strerror(errno));
		goto out;
	}
	served = run1(e, &f, &j, JOB_CHECK, 0, 1, NULL);
	ok(served && j.bad == 0 && entries_resident(&f, 0, 1) &&
		   uzd_fault_stats(e->fc)->refilled_holes == 1,
	   "a RESIDENT page punched behind the daemon's back reads zeros (%zu bad, %llu refilled)",
	   j.bad, (unsigned long long)uzd_fault_stats(e->fc)->refilled_holes);
out:
	fx_close(&f);
}

/* ---- sequential readahead ---- */

#define RA_PAGES 64
#define RA_CLUSTER 3 /* 8 pages at most per fault */

/* A client of RA_PAGES pages, each stored in the pool unless it is listed in @same. */
static int ra_open(struct env *e, struct fx *f, size_t same)
{
	if (fx_open(f, e, RA_PAGES) < 0 || fx_register(f) < 0)
		return -1;
	for (size_t i = 0; i < RA_PAGES; i++) {
		int r = i == same ? set_entry(f, i, uzd_entry_make_same(0x42, 0)) :
				    store(f, i, e->pages + i * PG, e->lz4, 0);

		if (r < 0)
			return -1;
	}
	return 0;
}

/*
 * In order, a run's faults fill 1, 2, 4 and then 7 pages ahead (2^3 - 1):
 * faults at 0, 1, 3, 6, 11, 19, ..., 59, whose window the region's end cuts
 * to 4.  Every page comes back byte-identical and RESIDENT, and the pool
 * gives back every object.
 */
static void test_readahead_pool(struct env *e)
{
	size_t objs = pool_objects(e->pool);
	struct job j;
	struct fx f;
	bool served;

	if (ra_open(e, &f, SIZE_MAX) < 0) {
		ok(false, "pool pages read in order are filled ahead");
		goto out;
	}
	served = run1(e, &f, &j, JOB_CHECK, 0, RA_PAGES, e->pages);
	ok(served && j.bad == 0 && f.c.stats.faults_pool == 11 && f.c.stats.readahead == 53,
	   "pool pages read in order: 11 faults, 53 pages filled ahead (%llu, %llu), %zu bad",
	   (unsigned long long)f.c.stats.faults_pool, (unsigned long long)f.c.stats.readahead,
	   j.bad);
	ok(entries_resident(&f, 0, RA_PAGES) && pool_objects(e->pool) == objs &&
		   f.c.stats.pool_bytes == 0,
	   "the pages filled ahead are RESIDENT and their objects freed");
out:
	fx_close(&f);
}

/* Every other page, then the rest: no fault comes where the last one ended. */
static void test_readahead_random(struct env *e)
{
	struct job j, k;
	size_t bad = 0;
	struct fx f;
	bool served;

	if (ra_open(e, &f, SIZE_MAX) < 0) {
		ok(false, "pages read out of order are not filled ahead");
		goto out;
	}
	served = run_step(e, &f, &j, JOB_CHECK, 0, RA_PAGES / 2, 2, e->pages) &&
		 run_step(e, &f, &k, JOB_CHECK, 1, RA_PAGES / 2, 2, e->pages + PG);
	if (served)
		bad = j.bad + k.bad;
	ok(served && bad == 0 && f.c.stats.readahead == 0 && f.c.stats.faults_pool == RA_PAGES,
	   "pages read every other one: %llu faults, none filled ahead (%llu), %zu bad",
	   (unsigned long long)f.c.stats.faults_pool, (unsigned long long)f.c.stats.readahead, bad);
out:
	fx_close(&f);
}

/* First touches in order are filled ahead with zeros the same way. */
static void test_readahead_zero(struct env *e)
{
	struct job j;
	struct fx f;
	bool served;

	if (fx_open(&f, e, RA_PAGES) < 0 || fx_register(&f) < 0) {
		ok(false, "never-touched pages read in order are zero-filled ahead");
		goto out;
	}
	served = run1(e, &f, &j, JOB_CHECK, 0, RA_PAGES, NULL);
	ok(served && j.bad == 0 && f.c.stats.faults_zero == 11 && f.c.stats.readahead == 53 &&
		   entries_resident(&f, 0, RA_PAGES),
	   "never-touched pages read in order: 11 faults, 53 zero-filled ahead (%llu, %llu)",
	   (unsigned long long)f.c.stats.faults_zero, (unsigned long long)f.c.stats.readahead);
out:
	fx_close(&f);
}

/*
 * A SAME page (8) ends the fill ahead of the fault before it (at 6: only
 * page 7), is restored by its own fault, and the run goes on past it: faults
 * at 0, 1, 3, 6, 8, 9 and 12, which fill 0, 1, 2, 1, 0, 2 and 4 ahead.
 */
static void test_readahead_same(struct env *e)
{
	unsigned char want[16 * PG];
	struct job j;
	struct fx f;
	bool served;

	memcpy(want, e->pages, sizeof(want));
	uzc_page_fill(want + 8 * PG, 0x42);
	if (ra_open(e, &f, 8) < 0) {
		ok(false, "a run of faults goes on past a page filled from its entry");
		goto out;
	}
	served = run1(e, &f, &j, JOB_CHECK, 0, 16, want);
	ok(served && j.bad == 0 && f.c.stats.faults_pool == 6 && f.c.stats.faults_same == 1 &&
		   f.c.stats.readahead == 10,
	   "a run stops its fill before a SAME page and goes on past it (pool %llu, same %llu, "
	   "ahead %llu)",
	   (unsigned long long)f.c.stats.faults_pool, (unsigned long long)f.c.stats.faults_same,
	   (unsigned long long)f.c.stats.readahead);
out:
	/* Pages 17.. were never read: their objects go with the region. */
	fx_close(&f);
}

static void test_readahead(struct env *e)
{
	if (uzd_fault_ctx_set_cluster(e->fc, RA_CLUSTER) < 0) {
		ok(false, "page_cluster %d is accepted", RA_CLUSTER);
		return;
	}
	test_readahead_pool(e);
	test_readahead_random(e);
	test_readahead_zero(e);
	test_readahead_same(e);
	uzd_fault_ctx_set_cluster(e->fc, 0);
}

/* ---- a moved page in the backing file, with no room in the pool ---- */

#define MOVED_PAGES 64

static struct uzd_client *find_client(void *arg, uint32_t id)
{
	struct fx *f = arg;

	if (id != f->c.id)
		return NULL;
	uzd_client_get(&f->c);
	return &f->c;
}

/* Pages of @f whose entries are in @state. */
static size_t count_state(struct fx *f, size_t n, enum uzd_entry_state state)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += uzd_entry_state(entry_of(f, i)) == state;
	return k;
}

/* Faults of every kind the client has had served. */
static uint64_t fault_count(const struct fx *f)
{
	const struct uzd_client_stats *s = &f->c.stats;

	return s->faults_zero + s->faults_same + s->faults_pool + s->faults_file + s->faults_raced;
}

/* Allocate from @pool until it refuses (its page limit); how many objects, into @junk. */
static size_t fill_pool(struct zpool *pool, unsigned long *junk, size_t max)
{
	size_t n = 0;

	while (n < max && zpool_malloc(pool, 2048, &junk[n]) == 0)
		n++;
	return n;
}

/*
 * An mremap moves pages whose records are in the backing file (they name
 * the old address) while the pool is at its page limit: with no room for
 * their objects, each page goes back into the memfd at its new address,
 * RESIDENT, reads back right without a fault, and its record is freed.
 * Before, the record stayed, naming the old address, and the page's
 * restore poisoned it.
 */
static void test_moved_file_no_room(struct env *e)
{
	char dir[] = "/tmp/uzswap-test-fault.XXXXXX", why[256] = "";
	struct zpool_config pc = { 0 };
	struct uzd_wb_stats ws;
	struct uzd_bfile_stats fs;
	struct uzd_config cfg;
	struct zpool *pool = NULL;
	struct uzd_wb *wb = NULL;
	unsigned long junk[1024];
	size_t stored = 0, nfile = 0, njunk = 0, resident = 0;
	uint64_t faults;
	void *to = MAP_FAILED;
	struct job j = { 0 };
	struct fx f;
	bool moved = false;

	memset(&f, 0, sizeof(f));
	f.memfd = -1;
	if (!mkdtemp(dir)) {
		ok(false, "a temporary directory for the backing file: %s", strerror(errno));
		return;
	}
	uzd_config_defaults(&cfg, 8ULL << 30);
	cfg.pool_max_size = 8 * PG;
	cfg.backing_max_size = 16 << 20;
	snprintf(cfg.backing_path, sizeof(cfg.backing_path), "%s/", dir);
	if (uzd_wb_create(&cfg, find_client, &f, &wb, why, sizeof(why)) < 0) {
		ok(false, "a backing file in %s: %s", dir, why);
		goto out;
	}
	uzd_wb_pool_config(wb, &pc);
	pc.max_pages = 4 * MOVED_PAGES; /* room for every page, raw or not, then filled up */
	if (zpool_create("zsmalloc", &pc, &pool) < 0 || fx_open(&f, e, MOVED_PAGES) < 0 ||
	    fx_register(&f) < 0) {
		ok(false, "a client whose pool has a page limit, with a backing file");
		goto out;
	}
	uzd_wb_bind(wb, pool);
	f.c.pool = pool;
	f.c.wb = wb;
	f.c.refs = 1; /* on the stack: writeback's get and put must never free it */
	while (stored < MOVED_PAGES &&
	       store(&f, stored, e->pages + stored * PG, e->lz4, (uint32_t)stored) == 0)
		stored++;
	uzd_wb_round(wb);
	nfile = count_state(&f, MOVED_PAGES, UZD_ENTRY_FILE);
	njunk = fill_pool(pool, junk, sizeof(junk) / sizeof(junk[0]));
	to = mmap(NULL, f.len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!ok(stored == MOVED_PAGES && nfile > 0 && njunk < sizeof(junk) / sizeof(junk[0]) &&
			to != MAP_FAILED,
		"writeback put %zu of %zu pages in the file, and the pool is at its page limit "
		"(%zu more objects took it there)",
		nfile, stored, njunk))
		goto out;
	j.f = &f;
	j.op = JOB_MREMAP;
	j.count = MOVED_PAGES;
	j.to = to;
	j.started = pthread_create(&j.tid, NULL, job_run, &j) == 0;
	moved = j.started && serve(e, &f, &j, 1) && j.ret == 0;
	if (moved) {
		f.map = to; /* the region, and the mapping fx_close() unmaps, moved */
		to = MAP_FAILED;
	}
	resident = count_state(&f, MOVED_PAGES, UZD_ENTRY_RESIDENT);
	uzd_wb_stats(wb, &ws, &fs);
	ok(moved && resident == nfile && count_state(&f, MOVED_PAGES, UZD_ENTRY_FILE) == 0 &&
		   fs.records == 0 && f.c.stats.file_bytes == 0,
	   "after the mremap every moved file page is RESIDENT in the memfd and its record is "
	   "freed (moved %s, %zu of %zu resident, %" PRIu64 " records left, %" PRIu64
	   " bytes in the file)",
	   moved ? "yes" : "no", resident, nfile, fs.records, f.c.stats.file_bytes);
	ok(moved && resident == nfile && f.c.regions.regions[0]->counts.resident == nfile &&
		   uzd_lru_count(&f.c.lru) == nfile,
	   "the region counts them resident and they are queued for eviction again (%zu "
	   "counted, %zu queued)",
	   moved ? (size_t)f.c.regions.regions[0]->counts.resident : 0,
	   (size_t)uzd_lru_count(&f.c.lru));
	faults = fault_count(&f);
	ok(moved && run1(e, &f, &j, JOB_CHECK, 0, MOVED_PAGES, e->pages) && j.bad == 0 &&
		   fault_count(&f) - faults == MOVED_PAGES - nfile,
	   "every page reads back right at its new address, those of the file without a fault "
	   "(%zu bad, %" PRIu64 " faults for %zu pages left in the pool)",
	   j.bad, fault_count(&f) - faults, MOVED_PAGES - nfile);
out:
	while (njunk)
		zpool_free(pool, junk[--njunk]);
	if (to != MAP_FAILED)
		munmap(to, f.len);
	if (f.table)
		fx_close(&f);
	uzd_wb_free(wb);
	if (pool)
		zpool_destroy(pool);
	rmdir(dir);
}

/* ---- setup ---- */

/*
 * Keep the pages both codecs compress: an incompressible one would be
 * stored raw, which has its own test (test_raw).
 */
static void keep_compressible(struct env *e)
{
	unsigned char buf[PG];
	size_t kept = 0;

	for (size_t i = 0; i < e->npages; i++) {
		const unsigned char *p = e->pages + i * PG;

		if (uzc_compress(e->lz4, p, buf, sizeof(buf)) <= 0 ||
		    uzc_compress(e->zstd, p, buf, sizeof(buf)) <= 0)
			continue;
		memmove(e->pages + kept * PG, p, PG);
		kept++;
	}
	e->npages = kept;
}

static void env_init(struct env *e)
{
	struct uzc_spec lz4, zstd;
	struct zpool_config cfg = { 0 };
	char path[512];
	int r;

	memset(e, 0, sizeof(*e));
	if (testdata_path("redis.pages.zst", path, sizeof(path)) < 0)
		tap_skip_all("no real page data at %s", path);
	if (zpool_create("zsmalloc", &cfg, &e->pool) < 0 || uzc_spec_parse("lz4", 0, &lz4) < 0 ||
	    uzc_spec_parse("zstd", 1, &zstd) < 0 ||
	    uzc_ctx_new(&lz4, UZC_DEFAULT_MAX_LEN, &e->lz4) < 0 ||
	    uzc_ctx_new(&zstd, UZC_DEFAULT_MAX_LEN, &e->zstd) < 0 ||
	    uzd_fault_ctx_new(&zstd, &e->fc) < 0)
		tap_skip_all("cannot set up the pool and codecs");
	r = pf_load(path, 3, 2 * NCONC, &e->pages, &e->npages);
	if (r == 0)
		keep_compressible(e);
	if (r < 0 || e->npages < NCONC)
		tap_skip_all("cannot load %d compressible pages from %s: %s", NCONC, path,
			     strerror(-r));
}

static void env_fini(struct env *e)
{
	uzd_fault_ctx_free(e->fc);
	uzc_ctx_free(e->zstd);
	uzc_ctx_free(e->lz4);
	if (e->pool)
		zpool_destroy(e->pool);
	free(e->pages);
}

static void usable(void)
{
	char why[256] = "";
	int fd = uzs_uffd_create(-1, why, sizeof(why));

	if (fd < 0)
		tap_skip_all("cannot create a userfaultfd here: %s", why);
	close(fd);
}

int main(void)
{
	struct env e;

	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	alarm(WATCHDOG_S);
	usable();
	env_init(&e);

	test_first_touch(&e);
	test_same(&e);
	test_pool(&e);
	test_raw(&e);
	test_poison_case(&e, false);
	test_poison_case(&e, true);
	test_remove(&e);
	test_unmap(&e);
	test_threads(&e);
	test_hot(&e);
	test_busy_missing(&e);
	test_wp(&e);
	test_fault_with_event(&e);
	test_resident_hole(&e);
	test_readahead(&e);
	test_moved_file_no_room(&e);

	ok(pool_objects(e.pool) == 0, "the pool is empty at the end (%zu objects)",
	   pool_objects(e.pool));
	env_fini(&e);
	return tap_done();
}
