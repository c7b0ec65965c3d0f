/* SPDX-License-Identifier: MIT */
/*
 * tests/test_paging.c - the two halves of paging together: daemon/fault.c
 * and daemon/evict.c on one client, under client threads that never stop
 * reading and writing.  No write may be lost and no read may be stale.
 *
 * The client is made in-process as libuzswap makes it: a memfd mapped
 * MAP_SHARED, registered MISSING|WP on a userfaultfd (not user-mode-only,
 * so system calls on evicted pages are served), and the daemon's struct
 * uzd_client with one region over it and a zsmalloc pool.  Then, for a few
 * seconds:
 *  - a fault thread polls the userfaultfd and calls uzd_fault_drain();
 *  - a reclaim thread keeps the region's resident count near a budget of
 *    1/8 of the region, evicting batches of 16-64 random page indexes
 *    (uzd_evict_batch skips what is not resident);
 *  - N client threads read and write the region at random.  Writers own
 *    the pages of one contiguous block each.  Every page is a function of
 *    (page, version): a real page from ../shared/data/pages with a stamp
 *    naming both in its first words, or a same-filled page whose word is
 *    the stamp, or random (incompressible) bytes after the stamp; version
 *    0 is zeros.  So every read is checked exactly: a page that is a whole
 *    page of another version, another page or zeros is a mismatch (a
 *    stale read or a lost write), one that is not a whole page at all is
 *    torn.  Owners know their pages' versions; a thread reading another
 *    thread's page learns the version through a per-page seqlock and
 *    discards reads that overlap a write.  Owners also madvise(MADV_REMOVE)
 *    small ranges (which must then read zeros until rewritten) and move
 *    pages through a pipe with write(2) and read(2) (which must be served,
 *    never fail with EFAULT).
 * At the end the main thread checks every page, the region's counters
 * against its entries and the memfd, evicts everything, unmaps the region
 * and checks that the UNMAP event left the pool empty.
 *
 * Data races.  Client memory is accessed only with relaxed/acquire/release
 * atomic word loads and stores (plain moves on x86), so ThreadSanitizer
 * sees no race between the seqlock's readers and writers; the pages that
 * read(2) fills (the kernel writes them, which TSan counts as a plain
 * write) are private to their owner: no other thread reads them.
 *
 * The budget is the reclaim thread's aim, not a limit: client threads run
 * at nice 10 so that, on a small machine, the daemon's threads get the CPU
 * they need, but the resident count still overshoots when reclaim falls
 * behind (the run reports the maximum and mean it saw).  Both runs evict
 * with lz4; the fault thread decompresses whatever it finds.
 *
 * Nothing can hang: every thread stops on a shared flag, the main thread
 * waits for the clients with a deadline (then closes the userfaultfd, which
 * wakes every blocked thread, and fails), and alarm() is the backstop.
 * UZSWAP_TEST_SEED sets the seed.  Needs root or /dev/userfaultfd.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "bench/pagefile.h"
#include "client/uffd.h"
#include "compress/codec.h"
#include "daemon/client.h"
#include "daemon/evict.h"
#include "daemon/fault.h"
#include "daemon/object.h"
#include "daemon/uffd.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define PG 4096
#define WORDS (PG / 8)
#define NPAGES 4096	    /* the region: 16 MiB */
#define BUDGET (NPAGES / 8) /* resident pages the reclaim thread aims at */
#define RUN_MS 3000	    /* client activity per run */
#define HANG_MS 8000	    /* clients must stop this long after the flag */
#define WATCHDOG_S 60	    /* the backstop for the whole program */
#define MAX_CLIENTS 4
#define CLIENT_ID 9
#define CLIENT_NICE 10	/* client threads yield the CPU to the daemon's */
#define PRIVATE_EVERY 8 /* pages p % 8 == 0: touched only by their owner */
#define REMOVE_MAX 8	/* pages per MADV_REMOVE at most */
#define STAMP_MAGIC UINT64_C(0x5a)
#define VER_MAX ((UINT64_C(1) << 24) - 1)
#define DIAG_MAX 10 /* failures described in detail per run */

static unsigned char *real; /* real pages, the pattern base */
static size_t nreal;
static uint64_t seed;

/* ---- page contents: a pure function of (page, version) ---- */

static uint64_t mix(uint64_t p, uint64_t v)
{
	struct rng g = { .state = seed ^ (p << 32 | v) };

	return rng_next(&g);
}

/* Fits a SAME entry (bits 63..55 zero), so same-filled pages are evicted as SAME. */
static uint64_t stamp(uint64_t p, uint64_t v)
{
	return STAMP_MAGIC << 48 | (p & 0xffffff) << 24 | (v & VER_MAX);
}

/*
 * Version 0 is zeros.  Otherwise 2 in 16 pages are same-filled with the
 * stamp, 1 in 16 random bytes, the rest a real page; the last two carry the
 * stamp and its complement in their first two words.
 */
static void gen_page(uint64_t p, uint64_t v, uint64_t *out)
{
	uint64_t h = mix(p, v), st = stamp(p, v);
	unsigned int kind = (unsigned int)(h % 16);

	if (!v) {
		memset(out, 0, PG);
		return;
	}
	if (kind < 2) {
		uzc_page_fill(out, st);
		return;
	}
	if (kind == 2) {
		struct rng g = { .state = h };

		for (size_t i = 0; i < WORDS; i++)
			out[i] = rng_next(&g);
	} else {
		memcpy(out, real + ((h >> 8) % nreal) * PG, PG);
	}
	out[0] = st;
	out[1] = ~st;
}

enum verdict {
	V_OK,
	V_MISMATCH, /* a whole page, but of another version or page, or zeros */
	V_TORN,	    /* not any whole page */
};

/*
 * Judge page @p read as @got, expected at version @v.  *seen_p, *seen_v:
 * what the page is, when it is a whole page.
 */
static enum verdict judge(uint64_t p, uint64_t v, const uint64_t *got, uint64_t *seen_p,
			  uint64_t *seen_v)
{
	uint64_t tmp[WORDS], w = got[0];

	gen_page(p, v, tmp);
	*seen_p = p;
	*seen_v = v;
	if (memcmp(tmp, got, PG) == 0)
		return V_OK;
	if (w == 0) {
		*seen_v = 0;
	} else if (w >> 48 == STAMP_MAGIC && !(w >> 56)) {
		*seen_p = (w >> 24) & 0xffffff;
		*seen_v = w & VER_MAX;
	} else {
		return V_TORN;
	}
	gen_page(*seen_p, *seen_v, tmp);
	return memcmp(tmp, got, PG) == 0 ? V_MISMATCH : V_TORN;
}

/* Client memory, word by word, as atomics: see "Data races" above. */
static void page_load(const char *addr, uint64_t *buf)
{
	const uint64_t *s = (const uint64_t *)(const void *)addr;

	for (size_t i = 0; i < WORDS; i++)
		buf[i] = __atomic_load_n(&s[i], __ATOMIC_ACQUIRE);
}

static void page_store(char *addr, const uint64_t *buf)
{
	uint64_t *d = (uint64_t *)(void *)addr;

	for (size_t i = 0; i < WORDS; i++)
		__atomic_store_n(&d[i], buf[i], __ATOMIC_RELEASE);
}

/* ---- one run: a client, its daemon threads, its client threads ---- */

struct run;

struct cthread {
	struct run *R;
	unsigned int id;
	size_t first, count; /* the pages it owns */
	struct rng g;
	int pipefd[2];
	pthread_t tid;
	bool started;
	atomic_bool done;
	/* what it did */
	uint64_t writes, reads_own, reads_other, reads_discarded, removes, removed_pages,
		zero_checks, pipe_out, pipe_in;
	/* what went wrong */
	uint64_t mismatches, torn, efault, syscall_errors;
};

struct run {
	unsigned int nclients;
	const char *codec;
	int memfd;
	char *map;
	bool mapped, table;
	struct uzd_client c;
	struct uzd_fault_ctx *fc;
	struct uzd_evict_ctx *ec;
	/* per page: the seqlock (odd: being changed), the version, the owner's next version */
	uint64_t *seq, *ver, *nextv;
	atomic_bool stop_clients, stop_reclaim, stop_fault;
	struct cthread ct[MAX_CLIENTS];
	pthread_t fault_tid, reclaim_tid;
	bool fault_started, reclaim_started;
	atomic_uint diags;
	/* the fault thread */
	int fault_err;
	/* the reclaim thread */
	uint64_t batches, evicted, same, pool, raw, dropped, skipped_hot, rejected_busy,
		rejected_other, eagain, batch_errors, max_resident, samples, resident_sum;
	int batch_err;
};

static void diag_failure(struct run *R, const char *who, uint64_t p, uint64_t v, enum verdict vd,
			 uint64_t sp, uint64_t sv)
{
	if (atomic_fetch_add(&R->diags, 1) >= DIAG_MAX)
		return;
	if (vd == V_TORN)
		tap_diag("%s: page %" PRIu64 " (version %" PRIu64 ") is torn", who, p, v);
	else
		tap_diag("%s: page %" PRIu64 " expected version %" PRIu64 ", read page %" PRIu64
			 " version %" PRIu64,
			 who, p, v, sp, sv);
}

static char *page_addr(const struct run *R, size_t p)
{
	return R->map + p * PG;
}

static void count_verdict(struct cthread *t, const char *who, uint64_t p, uint64_t v,
			  const uint64_t *buf)
{
	uint64_t sp, sv;
	enum verdict vd = judge(p, v, buf, &sp, &sv);

	if (vd == V_OK)
		return;
	if (vd == V_TORN)
		t->torn++;
	else
		t->mismatches++;
	diag_failure(t->R, who, p, v, vd, sp, sv);
}

/* ---- client operations ---- */

static void seq_begin(struct run *R, size_t p)
{
	__atomic_fetch_add(&R->seq[p], 1, __ATOMIC_SEQ_CST);
}

static void seq_end(struct run *R, size_t p, uint64_t v)
{
	__atomic_store_n(&R->ver[p], v, __ATOMIC_RELEASE);
	__atomic_fetch_add(&R->seq[p], 1, __ATOMIC_RELEASE);
}

static uint64_t next_version(struct run *R, size_t p)
{
	return ++R->nextv[p] & VER_MAX; /* 16M writes per page: never reached */
}

static void op_write(struct cthread *t, size_t p)
{
	struct run *R = t->R;
	uint64_t buf[WORDS], v = next_version(R, p);

	gen_page(p, v, buf);
	seq_begin(R, p);
	page_store(page_addr(R, p), buf);
	seq_end(R, p, v);
	t->writes++;
}

static void op_read_own(struct cthread *t, size_t p)
{
	uint64_t buf[WORDS];

	page_load(page_addr(t->R, p), buf);
	count_verdict(t, "owner read", p, __atomic_load_n(&t->R->ver[p], __ATOMIC_RELAXED), buf);
	t->reads_own++;
}

/* Another thread's page, through its seqlock; a read overlapping a change is discarded. */
static void op_read_other(struct cthread *t, size_t p)
{
	struct run *R = t->R;
	uint64_t buf[WORDS], s1, s2, v;

	s1 = __atomic_load_n(&R->seq[p], __ATOMIC_ACQUIRE);
	if (s1 & 1) {
		t->reads_discarded++;
		return;
	}
	v = __atomic_load_n(&R->ver[p], __ATOMIC_ACQUIRE);
	page_load(page_addr(R, p), buf);
	s2 = __atomic_load_n(&R->seq[p], __ATOMIC_ACQUIRE);
	if (s1 != s2) {
		t->reads_discarded++;
		return;
	}
	count_verdict(t, "reader", p, v, buf);
	t->reads_other++;
}

static void op_remove(struct cthread *t)
{
	struct run *R = t->R;
	size_t p = t->first + rng_below(&t->g, t->count), n = 1 + rng_below(&t->g, REMOVE_MAX);
	uint64_t buf[WORDS];

	if (p + n > t->first + t->count)
		n = t->first + t->count - p;
	for (size_t i = 0; i < n; i++)
		seq_begin(R, p + i);
	if (madvise(page_addr(R, p), n * PG, MADV_REMOVE) < 0) {
		t->syscall_errors++;
		if (atomic_fetch_add(&R->diags, 1) < DIAG_MAX)
			tap_diag("client %u: madvise(MADV_REMOVE): %s", t->id, strerror(errno));
	}
	for (size_t i = 0; i < n; i++)
		seq_end(R, p + i, 0);
	t->removes++;
	t->removed_pages += n;
	/* At once: a removed page reads zeros. */
	page_load(page_addr(R, p), buf);
	count_verdict(t, "read after MADV_REMOVE", p, 0, buf);
	t->zero_checks++;
}

static void syscall_failed(struct cthread *t, const char *what, ssize_t got)
{
	if (got < 0 && errno == EFAULT)
		t->efault++;
	else
		t->syscall_errors++;
	if (atomic_fetch_add(&t->R->diags, 1) < DIAG_MAX)
		tap_diag("client %u: %s returned %zd: %s", t->id, what, got,
			 got < 0 ? strerror(errno) : "short");
}

/*
 * A private page through a pipe: write(2) from it (the kernel reads the
 * page: an evicted one faults and is served) or read(2) into it (the
 * kernel writes it: a fenced or evicted one faults and is served).
 */
static void op_pipe(struct cthread *t)
{
	struct run *R = t->R;
	size_t p = t->first + PRIVATE_EVERY * rng_below(&t->g, t->count / PRIVATE_EVERY);
	uint64_t buf[WORDS], v;
	ssize_t got;

	if (rng_below(&t->g, 2)) {
		got = write(t->pipefd[1], page_addr(R, p), PG);
		if (got != PG) {
			syscall_failed(t, "write(2) from a managed page", got);
			return;
		}
		got = read(t->pipefd[0], buf, PG);
		if (got != PG) {
			syscall_failed(t, "read(2) from the pipe", got);
			return;
		}
		count_verdict(t, "write(2) from the page", p, R->ver[p], buf);
		t->pipe_out++;
		return;
	}
	v = next_version(R, p);
	gen_page(p, v, buf);
	got = write(t->pipefd[1], buf, PG);
	if (got != PG) {
		syscall_failed(t, "write(2) to the pipe", got);
		return;
	}
	seq_begin(R, p);
	got = read(t->pipefd[0], page_addr(R, p), PG);
	seq_end(R, p, v);
	if (got != PG)
		syscall_failed(t, "read(2) into a managed page", got);
	t->pipe_in++;
}

static bool is_private(size_t p)
{
	return p % PRIVATE_EVERY == 0;
}

static void *client_main(void *arg)
{
	struct cthread *t = arg;
	struct run *R = t->R;

	/* Below the daemon's threads: on a 2-CPU machine reclaim must be able to keep up. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), CLIENT_NICE);
	while (!atomic_load_explicit(&R->stop_clients, memory_order_relaxed)) {
		unsigned int op = (unsigned int)rng_below(&t->g, 100);
		size_t p = t->first + rng_below(&t->g, t->count);

		if (op < 40) {
			op_write(t, p);
		} else if (op < 65 || (op < 90 && R->nclients == 1)) {
			op_read_own(t, p);
		} else if (op < 90) {
			p = rng_below(&t->g, NPAGES);
			if (p >= t->first && p < t->first + t->count)
				op_read_own(t, p);
			else
				op_read_other(t, is_private(p) ? p + 1 : p);
		} else if (op < 96) {
			op_pipe(t);
		} else {
			op_remove(t);
		}
	}
	atomic_store(&t->done, true);
	return NULL;
}

/* ---- the daemon's threads ---- */

static void *fault_main(void *arg)
{
	struct run *R = arg;
	struct pollfd pfd = { .fd = R->c.uffd, .events = POLLIN };
	int r;

	while (!atomic_load(&R->stop_fault)) {
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		r = uzd_fault_drain(R->fc, &R->c);
		if (r < 0) {
			R->fault_err = r;
			break;
		}
	}
	return NULL;
}

static void nap_us(long us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = us * 1000 };

	nanosleep(&ts, NULL);
}

static void add_result(struct run *R, const struct uzd_evict_result *res)
{
	R->evicted += res->evicted;
	R->same += res->same;
	R->pool += res->pool;
	R->raw += res->raw;
	R->dropped += res->dropped;
	R->skipped_hot += res->skipped_hot;
	R->rejected_busy += res->rejected_busy;
	R->rejected_other += res->rejected_pool_full + res->rejected_error;
}

static void *reclaim_main(void *arg)
{
	struct run *R = arg;
	struct rng g = { .state = seed ^ UINT64_C(0x7ec1a1e) };
	struct uzd_evict_result res;
	struct uzd_region_counts rc;
	size_t idx[UZD_EVICT_BATCH], pg;
	struct uzd_region *r;
	bool over;
	int ret;

	while (!atomic_load(&R->stop_reclaim)) {
		ret = 0;
		uzd_region_read_lock(&R->c.regions);
		r = uzd_region_lookup(&R->c.regions, (uintptr_t)R->map, &pg);
		if (!r) {
			uzd_region_read_unlock(&R->c.regions);
			break;
		}
		uzd_region_counts(r, &rc);
		R->samples++;
		R->resident_sum += rc.resident;
		if (rc.resident > R->max_resident)
			R->max_resident = rc.resident;
		over = rc.resident > BUDGET;
		if (over) {
			size_t n = 16 + rng_below(&g, UZD_EVICT_BATCH - 16 + 1);

			for (size_t i = 0; i < n; i++)
				idx[i] = rng_below(&g, NPAGES);
			ret = uzd_evict_batch(R->ec, &R->c, r, idx, n, &res);
		}
		uzd_region_read_unlock(&R->c.regions);
		if (!over) {
			nap_us(50);
			continue;
		}
		R->batches++;
		add_result(R, &res);
		if (ret == -EAGAIN) {
			/* An event is unread: the fault thread is reading it. */
			R->eagain++;
			nap_us(20);
		} else if (ret < 0) {
			R->batch_errors++;
			R->batch_err = ret;
		}
	}
	return NULL;
}

/* ---- setup and teardown ---- */

static void release_obj(const struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg)
{
	struct run *R = arg;

	(void)r;
	(void)pgidx;
	if (uzd_entry_state(entry) == UZD_ENTRY_POOL)
		zpool_free(R->c.pool, uzd_entry_pool_handle(entry));
}

static int run_open(struct run *R, unsigned int nclients, const char *codec, int level)
{
	struct zpool_config cfg = { 0 };
	struct uzd_region_args a = { 0 };
	struct uzc_spec spec;
	char why[256] = "";
	uint32_t id;

	memset(R, 0, sizeof(*R));
	R->nclients = nclients;
	R->codec = codec;
	R->c.id = CLIENT_ID;
	R->c.uffd = -1;
	R->c.hot_distance = BUDGET;
	R->seq = calloc(NPAGES, sizeof(uint64_t));
	R->ver = calloc(NPAGES, sizeof(uint64_t));
	R->nextv = calloc(NPAGES, sizeof(uint64_t));
	R->memfd = memfd_create("uzswap-test-paging", MFD_CLOEXEC);
	if (!R->seq || !R->ver || !R->nextv || R->memfd < 0 ||
	    ftruncate(R->memfd, (off_t)NPAGES * PG) < 0)
		goto err;
	R->map = mmap(NULL, (size_t)NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, R->memfd, 0);
	if (R->map == MAP_FAILED)
		goto err;
	R->mapped = true;
	R->c.uffd = uzs_uffd_create(-1, why, sizeof(why));
	if (R->c.uffd < 0) {
		tap_diag("uzs_uffd_create: %s", why);
		goto err;
	}
	if (uzs_uffd_register(R->c.uffd, (uintptr_t)R->map, (uint64_t)NPAGES * PG,
			      UZP_UFFD_REGISTER_MODES, NULL) < 0 ||
	    zpool_create("zsmalloc", &cfg, &R->c.pool) < 0 ||
	    uzd_region_table_init(&R->c.regions) < 0 || uzd_lru_init(&R->c.lru) < 0 ||
	    uzd_lru_init(&R->c.hot) < 0)
		goto err;
	R->table = true;
	a.start = (uintptr_t)R->map;
	a.len = (size_t)NPAGES * PG;
	a.memfd = dup(R->memfd);
	if (a.memfd < 0 || uzd_region_create(&R->c.regions, &a, &id) < 0)
		goto err;
	if (uzc_spec_parse("zstd", 1, &spec) < 0 || uzd_fault_ctx_new(&spec, &R->fc) < 0 ||
	    uzc_spec_parse(codec, level, &spec) < 0 ||
	    uzd_evict_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &R->ec) < 0)
		goto err;
	return 0;
err:
	tap_diag("run setup failed: %s", strerror(errno));
	return -1;
}

static void run_close(struct run *R)
{
	if (R->c.uffd >= 0)
		close(R->c.uffd);
	if (R->table) {
		uzd_region_table_fini(&R->c.regions, release_obj, R);
		uzd_lru_fini(&R->c.lru);
		uzd_lru_fini(&R->c.hot);
	}
	if (R->c.pool)
		zpool_destroy(R->c.pool);
	if (R->mapped)
		munmap(R->map, (size_t)NPAGES * PG);
	if (R->memfd >= 0)
		close(R->memfd);
	uzd_fault_ctx_free(R->fc);
	uzd_evict_ctx_free(R->ec);
	free(R->seq);
	free(R->ver);
	free(R->nextv);
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool clients_done(struct run *R)
{
	for (unsigned int i = 0; i < R->nclients; i++)
		if (R->ct[i].started && !atomic_load(&R->ct[i].done))
			return false;
	return true;
}

/* ---- checks of the daemon's state, with nothing in flight ---- */

/* The bytes a POOL entry's object takes, as stats.pool_bytes counts them. */
static uint64_t object_bytes(struct zpool *pool, uint64_t e)
{
	unsigned long h = uzd_entry_pool_handle(e);
	struct uzd_obj_hdr hdr;
	const void *obj;

	if (uzd_entry_flags(e) & UZD_ENTRY_RAW)
		return PG;
	obj = zpool_map(pool, h, ZPOOL_MM_RO);
	if (!obj) {
		zpool_unmap(pool, h);
		return 0;
	}
	uzd_obj_hdr_read(obj, &hdr);
	zpool_unmap(pool, h);
	return UZD_OBJ_HDR_SIZE + hdr.len;
}

/*
 * Entries against the region's counters, POOL entries against the pool's
 * objects and the client's pool_bytes, RESIDENT entries against the pages
 * the memfd holds.  *resident gets the resident count.
 */
static bool check_state(struct run *R, const char *when, uint64_t *resident)
{
	uint64_t n[UZD_ENTRY_NSTATES] = { 0 }, bytes = 0, pool_bytes;
	struct uzd_region_counts rc = { 0 };
	struct zpool_stats zs;
	struct uzd_region *r;
	struct stat st;
	size_t pg;
	bool good;

	uzd_region_read_lock(&R->c.regions);
	r = uzd_region_lookup(&R->c.regions, (uintptr_t)R->map, &pg);
	for (size_t i = 0; r && i < r->npages; i++) {
		uint64_t e = __atomic_load_n(&r->entries[i], __ATOMIC_ACQUIRE);
		unsigned int s = uzd_entry_state(e);

		n[s < UZD_ENTRY_NSTATES ? s : UZD_ENTRY_BUSY]++;
		if (s == UZD_ENTRY_POOL)
			bytes += object_bytes(R->c.pool, e);
	}
	if (r)
		uzd_region_counts(r, &rc);
	uzd_region_read_unlock(&R->c.regions);
	zpool_stats(R->c.pool, &zs);
	pool_bytes = __atomic_load_n(&R->c.stats.pool_bytes, __ATOMIC_RELAXED);
	if (fstat(R->memfd, &st) < 0)
		st.st_blocks = -1;
	*resident = n[UZD_ENTRY_RESIDENT];
	good = r && n[UZD_ENTRY_BUSY] == 0 && rc.resident == n[UZD_ENTRY_RESIDENT] &&
	       rc.same == n[UZD_ENTRY_SAME] && rc.pool == n[UZD_ENTRY_POOL] &&
	       rc.file == n[UZD_ENTRY_FILE] && zs.objects == n[UZD_ENTRY_POOL] &&
	       pool_bytes == bytes &&
	       st.st_blocks == (blkcnt_t)(n[UZD_ENTRY_RESIDENT] * (PG / 512));
	ok(good,
	   "%u client(s), %s: entries match the counters, the pool and the memfd (entries: "
	   "empty %" PRIu64 " resident %" PRIu64 " same %" PRIu64 " pool %" PRIu64 " busy %" PRIu64
	   "; counters: resident %" PRIu64 " same %" PRIu64 " pool %" PRIu64
	   "; pool objects %zu, object bytes %" PRIu64 ", stats.pool_bytes %" PRIu64
	   ", memfd pages %lld)",
	   R->nclients, when, n[UZD_ENTRY_EMPTY], n[UZD_ENTRY_RESIDENT], n[UZD_ENTRY_SAME],
	   n[UZD_ENTRY_POOL], n[UZD_ENTRY_BUSY], rc.resident, rc.same, rc.pool, zs.objects, bytes,
	   pool_bytes, (long long)st.st_blocks / (PG / 512));
	return good;
}

/* Every page, read by the main thread with every client stopped: exact. */
static void check_all_pages(struct run *R)
{
	uint64_t buf[WORDS], sp, sv, mism = 0, torn = 0;

	for (size_t p = 0; p < NPAGES; p++) {
		enum verdict vd;

		page_load(page_addr(R, p), buf);
		vd = judge(p, R->ver[p], buf, &sp, &sv);
		if (vd == V_OK)
			continue;
		if (vd == V_TORN)
			torn++;
		else
			mism++;
		diag_failure(R, "final check", p, R->ver[p], vd, sp, sv);
	}
	ok(mism == 0 && torn == 0,
	   "%u client(s): after the run every one of %d pages holds its last write (%" PRIu64
	   " mismatched, %" PRIu64 " torn)",
	   R->nclients, NPAGES, mism, torn);
}

/* Evict every page (HOT ones need a second pass); the main thread is the reclaimer now. */
static void evict_all(struct run *R)
{
	struct uzd_evict_result res;
	struct uzd_region_counts rc;
	size_t idx[UZD_EVICT_BATCH], pg;
	struct uzd_region *r;

	for (int pass = 0; pass < 4; pass++) {
		uzd_region_read_lock(&R->c.regions);
		r = uzd_region_lookup(&R->c.regions, (uintptr_t)R->map, &pg);
		for (size_t b = 0; r && b < NPAGES; b += UZD_EVICT_BATCH) {
			for (size_t i = 0; i < UZD_EVICT_BATCH; i++)
				idx[i] = b + i;
			if (uzd_evict_batch(R->ec, &R->c, r, idx, UZD_EVICT_BATCH, &res) == 0)
				add_result(R, &res);
		}
		if (r)
			uzd_region_counts(r, &rc);
		uzd_region_read_unlock(&R->c.regions);
		if (!r || rc.resident == 0)
			break;
	}
}

/* ---- the run ---- */

static void start_threads(struct run *R)
{
	size_t per = NPAGES / R->nclients;

	R->fault_started = pthread_create(&R->fault_tid, NULL, fault_main, R) == 0;
	R->reclaim_started = pthread_create(&R->reclaim_tid, NULL, reclaim_main, R) == 0;
	for (unsigned int i = 0; i < R->nclients; i++) {
		struct cthread *t = &R->ct[i];

		t->R = R;
		t->id = i;
		t->first = i * per;
		t->count = per;
		t->g.state = seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (i + 1 + 16 * R->nclients));
		if (pipe2(t->pipefd, O_CLOEXEC) < 0)
			continue;
		t->started = pthread_create(&t->tid, NULL, client_main, t) == 0;
	}
}

/* Stop the clients; true if they all finished in time. */
static bool stop_clients(struct run *R)
{
	uint64_t deadline;
	bool finished;

	atomic_store(&R->stop_clients, true);
	deadline = ms_now() + HANG_MS;
	while (!clients_done(R) && ms_now() < deadline)
		nap_us(1000);
	finished = clients_done(R);
	if (!finished) {
		/* Closing the userfaultfd wakes every blocked thread. */
		tap_diag("client threads still blocked %d ms after the stop flag", HANG_MS);
		atomic_store(&R->stop_fault, true);
		atomic_store(&R->stop_reclaim, true);
		if (R->reclaim_started)
			pthread_join(R->reclaim_tid, NULL);
		R->reclaim_started = false;
		if (R->fault_started)
			pthread_join(R->fault_tid, NULL);
		R->fault_started = false;
		close(R->c.uffd);
		R->c.uffd = -1;
	}
	for (unsigned int i = 0; i < R->nclients; i++) {
		if (R->ct[i].started)
			pthread_join(R->ct[i].tid, NULL);
		if (R->ct[i].pipefd[0] > 0) {
			close(R->ct[i].pipefd[0]);
			close(R->ct[i].pipefd[1]);
		}
	}
	return finished;
}

static void report(struct run *R, const struct cthread *sum)
{
	const struct uzd_fault_stats *fs = uzd_fault_stats(R->fc);
	const struct uzd_client_stats *cs = &R->c.stats;

	tap_diag("%u client(s), evicting with %s: %" PRIu64 " writes, %" PRIu64
		 " own reads, %" PRIu64 " reads of others' pages (%" PRIu64
		 " discarded by the seqlock), %" PRIu64 " MADV_REMOVE (%" PRIu64 " pages), %" PRIu64
		 " write(2) from / %" PRIu64 " read(2) into evicted-or-not pages",
		 R->nclients, R->codec, sum->writes, sum->reads_own, sum->reads_other,
		 sum->reads_discarded, sum->removes, sum->removed_pages, sum->pipe_out,
		 sum->pipe_in);
	tap_diag("  faults served: zero %" PRIu64 ", same %" PRIu64 ", pool %" PRIu64
		 ", raced %" PRIu64 ", hot refaults %" PRIu64 "; left busy %" PRIu64 ", wp %" PRIu64
		 ", eagain retries %" PRIu64 ", dropped %" PRIu64 ", events %" PRIu64
		 ", poisoned %" PRIu64 "; fault time p50 %" PRIu64 " us, p99 %" PRIu64 " us",
		 cs->faults_zero, cs->faults_same, cs->faults_pool, cs->faults_raced,
		 cs->refaults_hot, fs->busy, fs->wp, fs->eagain_retry, fs->dropped, fs->events,
		 fs->poisoned, uzd_hist_quantile(&cs->fault_ns, 0.5) / 1000,
		 uzd_hist_quantile(&cs->fault_ns, 0.99) / 1000);
	tap_diag("  evictions: %" PRIu64 " (same %" PRIu64 ", pool %" PRIu64 ", raw %" PRIu64
		 ") in %" PRIu64 " batches; passed over: hot %" PRIu64 ", busy %" PRIu64
		 ", dropped meanwhile %" PRIu64 ", refused %" PRIu64 ", -EAGAIN %" PRIu64
		 "; resident: budget %d, max observed %" PRIu64 ", mean %.0f",
		 R->evicted, R->same, R->pool, R->raw, R->batches, R->skipped_hot, R->rejected_busy,
		 R->dropped, R->rejected_other, R->eagain, BUDGET, R->max_resident,
		 R->samples ? (double)R->resident_sum / (double)R->samples : 0.0);
}

static void run(unsigned int nclients, const char *codec, int level)
{
	struct cthread sum = { 0 };
	const struct uzd_fault_stats *fs;
	unsigned int started = 0;
	struct zpool_stats zs;
	uint64_t resident = 0, deadline, faults_pool, faults_same;
	bool finished, reclaim_ran, unmapped = false;
	size_t left = 1;
	struct run R;

	if (run_open(&R, nclients, codec, level) < 0) {
		ok(false, "%u client(s): setup", nclients);
		run_close(&R);
		return;
	}
	start_threads(&R);
	reclaim_ran = R.reclaim_started;
	deadline = ms_now() + RUN_MS;
	while (ms_now() < deadline && !clients_done(&R))
		nap_us(10000);
	finished = stop_clients(&R);
	atomic_store(&R.stop_reclaim, true);
	if (R.reclaim_started)
		pthread_join(R.reclaim_tid, NULL);
	for (unsigned int i = 0; i < nclients; i++) {
		const struct cthread *t = &R.ct[i];

		sum.writes += t->writes;
		sum.reads_own += t->reads_own;
		sum.reads_other += t->reads_other;
		sum.reads_discarded += t->reads_discarded;
		sum.removes += t->removes;
		sum.removed_pages += t->removed_pages;
		sum.zero_checks += t->zero_checks;
		sum.pipe_out += t->pipe_out;
		sum.pipe_in += t->pipe_in;
		sum.mismatches += t->mismatches;
		sum.torn += t->torn;
		sum.efault += t->efault;
		sum.syscall_errors += t->syscall_errors;
		started += t->started;
	}
	ok(finished && started == nclients && R.fault_started && reclaim_ran,
	   "%u client(s): every client thread finished after the stop flag (no hang)", nclients);
	if (!finished || !R.fault_started) {
		report(&R, &sum);
		run_close(&R);
		return;
	}
	ok(sum.mismatches == 0,
	   "%u client(s): every read saw the last write: no stale page, no lost write, removed "
	   "pages read zeros (%" PRIu64 " mismatches in %" PRIu64 " checked reads)",
	   nclients, sum.mismatches,
	   sum.reads_own + sum.reads_other + sum.zero_checks + sum.pipe_out);
	ok(sum.torn == 0, "%u client(s): no torn page (%" PRIu64 ")", nclients, sum.torn);
	ok(sum.efault == 0 && sum.syscall_errors == 0 && sum.pipe_out > 0 && sum.pipe_in > 0,
	   "%u client(s): write(2)/read(2) on managed pages are served, no EFAULT (%" PRIu64
	   " EFAULT, %" PRIu64 " other errors, %" PRIu64 " out, %" PRIu64 " in)",
	   nclients, sum.efault, sum.syscall_errors, sum.pipe_out, sum.pipe_in);
	/* The fault thread still runs: its counters are read atomically. */
	faults_pool = __atomic_load_n(&R.c.stats.faults_pool, __ATOMIC_RELAXED);
	faults_same = __atomic_load_n(&R.c.stats.faults_same, __ATOMIC_RELAXED);
	ok(R.evicted > 0 && faults_pool > 0 && faults_same > 0 && sum.removes > 0 &&
		   R.batch_errors == 0 && R.fault_err == 0,
	   "%u client(s): paging really ran: %" PRIu64 " evictions, %" PRIu64 " pool and %" PRIu64
	   " same refaults, %" PRIu64 " removes; no batch error (%d), no drain error (%d)",
	   nclients, R.evicted, faults_pool, faults_same, sum.removes, R.batch_err, R.fault_err);
	check_state(&R, "after the run", &resident);
	check_all_pages(&R);
	evict_all(&R);
	check_state(&R, "after evicting everything", &resident);
	ok(resident == 0, "%u client(s): every page could be evicted (%" PRIu64 " left)", nclients,
	   resident);

	/* The client unmaps the region: the UNMAP event must free every object. */
	if (munmap(R.map, (size_t)NPAGES * PG) == 0) {
		R.mapped = false;
		unmapped = true;
	}
	deadline = ms_now() + 2000;
	while (unmapped && ms_now() < deadline) {
		uzd_region_read_lock(&R.c.regions);
		left = R.c.regions.n;
		uzd_region_read_unlock(&R.c.regions);
		if (!left)
			break;
		nap_us(1000);
	}
	atomic_store(&R.stop_fault, true);
	pthread_join(R.fault_tid, NULL);
	zpool_stats(R.c.pool, &zs);
	ok(unmapped && left == 0 && zs.objects == 0 && R.c.stats.pool_bytes == 0,
	   "%u client(s): after munmap the UNMAP event leaves no region, the pool empty and "
	   "pool_bytes 0 (%zu regions, %zu objects, %" PRIu64 " bytes)",
	   nclients, left, zs.objects, R.c.stats.pool_bytes);
	fs = uzd_fault_stats(R.fc);
	ok(fs->poisoned == 0 && fs->corrupt == 0 && fs->foreign == 0 && fs->unmanaged == 0,
	   "%u client(s): nothing poisoned, corrupt, foreign or unmanaged", nclients);
	report(&R, &sum);
	run_close(&R);
}

/* ---- main ---- */

static void load_pages(void)
{
	static const char *const files[] = TESTDATA_FILES;
	unsigned char *pages[TESTDATA_NFILES] = { NULL };
	size_t count[TESTDATA_NFILES] = { 0 }, total = 0;
	char path[4096];

	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		if (testdata_path(files[i], path, sizeof(path)) < 0)
			tap_skip_all("no real page data (%s; set UZSWAP_PAGES_DIR)", path);
		if (pf_load(path, 3, 1024, &pages[i], &count[i]) < 0 || count[i] == 0)
			tap_skip_all("cannot load %s", path);
		total += count[i];
	}
	real = malloc(total * PG);
	if (!real)
		tap_skip_all("out of memory");
	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		memcpy(real + nreal * PG, pages[i], count[i] * PG);
		nreal += count[i];
		free(pages[i]);
	}
}

int main(void)
{
	char why[256] = "";
	int fd;

	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	alarm(WATCHDOG_S);
	fd = uzs_uffd_create(-1, why, sizeof(why));
	if (fd < 0)
		tap_skip_all("cannot create a userfaultfd here: %s", why);
	close(fd);
	load_pages();
	seed = rng_seed_from_env(UINT64_C(0x9a61e5));
	tap_diag("seed %#" PRIx64 " (UZSWAP_TEST_SEED), %zu real pages, region %d pages, budget %d",
		 seed, nreal, NPAGES, BUDGET);

	run(1, "lz4", 0);
	run(4, "lz4", 0);

	free(real);
	return tap_done();
}
