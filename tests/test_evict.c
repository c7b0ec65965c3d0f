/* SPDX-License-Identifier: MIT */
/*
 * tests/test_evict.c - daemon/evict.c against the real kernel and the pool.
 *
 * Each test builds an in-process client region the way a client does (a
 * memfd mapped MAP_SHARED, registered MISSING|WP on a fresh userfaultfd)
 * and the daemon's view of it (a struct uzd_client with a region table and
 * a zsmalloc pool).  The pages are written with pwrite(2) into the memfd
 * *before* the range is registered: they are then in the page cache, so
 * the client's first touch raises no MISSING fault (shmem reports MISSING
 * only for pages absent from the cache), and the test sets their entries
 * RESIDENT through the region API (claim EMPTY, publish RESIDENT).
 *
 * Page data: real pages from ../shared/data/pages (UZSWAP_PAGES_DIR), plus
 * same-filled and random (incompressible) pages.  Pool objects are checked
 * by reading them back through zpool_map and decompressing.  Where a client
 * thread refaults, the main thread plays a minimal fault service (restore
 * from the entry with UFFDIO_COPY); daemon/fault.c is not used.
 *
 * Races: a writer blocked on the fence, a writer that never stops while
 * its page is evicted 300 times, and a thread dropping ranges (as the
 * fault thread does on MADV_REMOVE) while batches run.
 *
 * Nothing can hang: waits poll with timeouts, cleanup closes the
 * userfaultfd before joining threads (which wakes every blocked fault),
 * and a watchdog alarm ends the program.  Needs root or /dev/userfaultfd.
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "bench/pagefile.h"
#include "client/uffd.h"
#include "compress/codec.h"
#include "daemon/evict.h"
#include "daemon/object.h"
#include "daemon/uffd.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define PG 4096
#define WAIT_MS 2000
#define WATCHDOG_S 30
#define NMAIN 48
#define NBENCH 16384
#define CLIENT_ID 7

static unsigned char *real; /* loaded real pages */
static size_t nreal;
static struct uzc_ctx *dctx; /* the test's decompressor */
static int dev_fd = -1;

/* ---- a client region and the daemon's view of it ---- */

struct fx {
	int memfd;
	char *map;
	size_t npages;
	struct uzd_client c;
	struct uzd_region *r; /* valid: nothing takes the write lock here */
	bool table;
};

static atomic_uint free_errors; /* zpool_free refusals: a double or bad free */

static void release_obj(const struct uzd_region *r, size_t pgidx, uint64_t e, void *arg)
{
	(void)r;
	(void)pgidx;
	if (uzd_entry_state(e) == UZD_ENTRY_POOL && zpool_free(arg, uzd_entry_pool_handle(e)) < 0)
		atomic_fetch_add(&free_errors, 1);
}

static int pool_new(size_t max_pages, struct zpool **out)
{
	struct zpool_config cfg = { .max_pages = max_pages };

	return zpool_create("zsmalloc", &cfg, out);
}

static int set_resident(struct uzd_region *r, size_t i, unsigned int flags)
{
	uint64_t old;
	int ret;

	ret = uzd_region_claim(
		r, i, UZD_STATE_BIT(UZD_ENTRY_EMPTY) | UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old);
	if (ret == 0)
		ret = uzd_region_publish(r, i, uzd_entry_make(UZD_ENTRY_RESIDENT, flags, 0));
	return ret;
}

static int fx_register(struct fx *f)
{
	char why[256] = "";
	uint64_t base = (uintptr_t)f->map, len = f->npages * PG;

	f->c.uffd = uzs_uffd_create(-1, why, sizeof(why));
	if (f->c.uffd < 0 && dev_fd >= 0)
		f->c.uffd = uzs_uffd_create(dev_fd, why, sizeof(why));
	if (f->c.uffd < 0) {
		tap_diag("uzs_uffd_create: %s", why);
		return -1;
	}
	return uzs_uffd_register(f->c.uffd, base, len, UZP_UFFD_REGISTER_MODES, NULL);
}

static int fx_table(struct fx *f)
{
	struct uzd_region_args a = { .start = (uintptr_t)f->map, .len = f->npages * PG };
	uint32_t id;

	if (uzd_region_table_init(&f->c.regions) < 0 || uzd_lru_init(&f->c.lru) < 0 ||
	    uzd_lru_init(&f->c.hot) < 0)
		return -1;
	f->table = true;
	a.memfd = dup(f->memfd);
	if (a.memfd < 0 || uzd_region_create(&f->c.regions, &a, &id) < 0)
		return -1;
	uzd_region_read_lock(&f->c.regions);
	f->r = uzd_region_find(&f->c.regions, id);
	uzd_region_read_unlock(&f->c.regions);
	for (size_t i = 0; f->r && i < f->npages; i++)
		if (set_resident(f->r, i, 0) < 0)
			return -1;
	return f->r ? 0 : -1;
}

/* @pages: npages * PG bytes, written into the memfd before registration. */
static int fx_open(struct fx *f, const unsigned char *pages, size_t npages, size_t pool_max)
{
	memset(f, 0, sizeof(*f));
	f->c.id = CLIENT_ID;
	f->c.uffd = -1;
	f->npages = npages;
	f->map = MAP_FAILED;
	/* Sealable, for test_punch_refused(). */
	f->memfd = memfd_create("uzswap-test-evict", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f->memfd < 0 || ftruncate(f->memfd, (off_t)(npages * PG)) < 0 ||
	    pwrite(f->memfd, pages, npages * PG, 0) != (ssize_t)(npages * PG))
		goto err;
	f->map = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->map == MAP_FAILED || fx_register(f) < 0 || pool_new(pool_max, &f->c.pool) < 0 ||
	    fx_table(f) < 0)
		goto err;
	return 0;
err:
	tap_diag("fixture setup failed: %s", strerror(errno));
	return -1;
}

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
		uzd_region_table_fini(&f->c.regions, release_obj, f->c.pool);
		uzd_lru_fini(&f->c.lru);
		uzd_lru_fini(&f->c.hot);
	}
	if (f->c.pool)
		zpool_destroy(f->c.pool);
	if (f->map != MAP_FAILED)
		munmap(f->map, f->npages * PG);
	if (f->memfd >= 0)
		close(f->memfd);
	memset(f, 0, sizeof(*f));
}

static uint64_t fx_addr(const struct fx *f, size_t i)
{
	return (uintptr_t)f->map + i * PG;
}

static long long fx_blocks(const struct fx *f)
{
	struct stat st;

	return fstat(f->memfd, &st) == 0 ? (long long)st.st_blocks : -1;
}

static uint64_t fx_entry(const struct fx *f, size_t i)
{
	return __atomic_load_n(&f->r->entries[i], __ATOMIC_ACQUIRE);
}

static int fx_evict(struct fx *f, struct uzd_evict_ctx *ec, const size_t *idx, size_t n,
		    struct uzd_evict_result *res)
{
	int ret;

	uzd_region_read_lock(&f->c.regions);
	ret = uzd_evict_batch(ec, &f->c, f->r, idx, n, res);
	uzd_region_read_unlock(&f->c.regions);
	return ret;
}

/* ---- reading a page back, as the fault service would ---- */

/* Load a pool object; *h gets its header.  0 or a negative errno. */
static int obj_load(struct zpool *pool, unsigned long handle, struct uzd_obj_hdr *h, void *page)
{
	const unsigned char *obj = zpool_map(pool, handle, ZPOOL_MM_RO);
	int ret;

	if (!obj)
		return -EIO;
	uzd_obj_hdr_read(obj, h);
	if (h->codec == UZC_CODEC_RAW) {
		ret = h->len == PG ? 0 : -EBADMSG;
		if (ret == 0)
			memcpy(page, obj + UZD_OBJ_HDR_SIZE, PG);
	} else {
		ret = uzc_decompress(dctx, h->codec, obj + UZD_OBJ_HDR_SIZE, h->len, page);
	}
	zpool_unmap(pool, handle);
	return ret;
}

/* The page's bytes from wherever its entry says it is. */
static int page_content(const struct fx *f, uint64_t e, size_t i, void *page)
{
	struct uzd_obj_hdr h;

	switch (uzd_entry_state(e)) {
	case UZD_ENTRY_RESIDENT:
		return pread(f->memfd, page, PG, (off_t)(i * PG)) == PG ? 0 : -EIO;
	case UZD_ENTRY_SAME:
		uzc_page_fill(page, uzd_entry_same_word(e));
		return 0;
	case UZD_ENTRY_POOL:
		return obj_load(f->c.pool, uzd_entry_pool_handle(e), &h, page);
	case UZD_ENTRY_EMPTY:
		memset(page, 0, PG);
		return 0;
	default:
		return -EBUSY;
	}
}

/*
 * The minimal fault service: a MISSING fault is restored from the entry
 * (exclusive load: the object is freed), a fault on a BUSY page is left to
 * its owner.  A WP fault is answered by unprotecting; the batch always
 * unprotects itself, so in these tests only a stale message can get here.
 */
static int serve_fault(struct fx *f, const struct uffd_msg *m)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(PG - 1), old;
	size_t i = (size_t)(addr - fx_addr(f, 0)) / PG;
	unsigned char page[PG];
	int ret;

	if (m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)
		return uzd_uffd_writeprotect(f->c.uffd, addr, PG, false, true);
	ret = uzd_region_claim(f->r, i,
			       UZD_STATE_BIT(UZD_ENTRY_POOL) | UZD_STATE_BIT(UZD_ENTRY_SAME) |
				       UZD_STATE_BIT(UZD_ENTRY_EMPTY),
			       &old);
	if (ret == -EBUSY)
		return 0;
	if (ret < 0)
		return uzd_uffd_wake(f->c.uffd, addr, PG);
	ret = page_content(f, old, i, page);
	if (ret == 0)
		ret = uzd_uffd_copy(f->c.uffd, addr, page, PG, 0);
	if (ret < 0) {
		uzd_region_abort(f->r, i, old);
		return ret;
	}
	uzd_region_publish(f->r, i, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	if (uzd_entry_state(old) == UZD_ENTRY_POOL)
		zpool_free(f->c.pool, uzd_entry_pool_handle(old));
	return 0;
}

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : -ETIMEDOUT;
}

static int wait_msg(int fd, struct uffd_msg *m, int ms)
{
	size_t n = 0;
	int r;

	r = wait_readable(fd, ms);
	if (r == 0)
		r = uzd_uffd_read_events(fd, m, 1, &n);
	if (r == 0 && n != 1)
		r = -ETIMEDOUT;
	return r;
}

/* ---- client threads ---- */

struct job {
	volatile unsigned char *addr;
	size_t len;
	int op; /* 0: write one byte; 1: MADV_REMOVE; 2: write counters until stop */
	unsigned char byte;
	long ret;
	uint64_t last;
	atomic_uint_fast64_t written; /* op 2: writes so far */
	atomic_bool stop, done;
	bool started;
	pthread_t tid;
};

static void *job_run(void *arg)
{
	struct job *j = arg;
	volatile uint64_t *w = (volatile uint64_t *)j->addr;
	uint64_t k;

	switch (j->op) {
	case 0:
		*j->addr = j->byte;
		break;
	case 1:
		j->ret = madvise((void *)j->addr, j->len, MADV_REMOVE);
		break;
	default:
		for (k = 1; !atomic_load_explicit(&j->stop, memory_order_relaxed); k++) {
			w[k % 256] = k;
			atomic_store_explicit(&j->written, k, memory_order_relaxed);
		}
		j->last = k - 1;
		break;
	}
	atomic_store(&j->done, true);
	return NULL;
}

static bool job_start(struct job *j, int op, uint64_t addr, size_t len)
{
	j->op = op;
	j->addr = (volatile unsigned char *)(uintptr_t)addr;
	j->len = len;
	atomic_store(&j->done, false);
	atomic_store(&j->stop, false);
	j->started = pthread_create(&j->tid, NULL, job_run, j) == 0;
	return j->started;
}

/* Wait until the job is done, up to @ms; true if it finished. */
static bool job_wait(struct job *j, int ms)
{
	for (int t = 0; t < ms && !atomic_load(&j->done); t++)
		usleep(1000);
	return atomic_load(&j->done);
}

static void job_join(struct job *j)
{
	if (j->started)
		pthread_join(j->tid, NULL);
	j->started = false;
}

/* ---- page data ---- */

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void random_page(unsigned char *p, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < PG; i += 8) {
		uint64_t v = xorshift(&s);

		memcpy(p + i, &v, 8);
	}
}

enum kind {
	K_REAL,
	K_SAME,
	K_RANDOM
};

/* The main data set: real pages, four same-filled pages, four random ones. */
static void main_page(unsigned char *p, size_t i)
{
	static const uint64_t words[] = { 0, ~0ull, 0x1122334455667788ull, 42 };

	if (i >= 36 && i < 40) {
		uzc_page_fill(p, words[i - 36]);
		return;
	}
	if (i >= 40 && i < 44) {
		random_page(p, i);
		return;
	}
	memcpy(p, real + (i % nreal) * PG, PG);
}

static bool expect_same(const unsigned char *p, uint64_t *word)
{
	return uzc_page_same_filled(p, word) && uzd_entry_same_fits(*word);
}

/* What the evictor will find: the page does not compress below max_len. */
static bool expect_raw(const unsigned char *p)
{
	static unsigned char out[PG];

	return uzc_compress(dctx, p, out, sizeof(out)) == UZC_INCOMPRESSIBLE;
}

static struct uzd_evict_ctx *evict_ctx(void)
{
	struct uzd_evict_ctx *ec = NULL;
	struct uzc_spec spec;

	if (uzc_spec_parse("lz4", 0, &spec) < 0 ||
	    uzd_evict_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &ec) < 0)
		return NULL;
	return ec;
}

/* ---- tests ---- */

/* A RAW object is the page itself (daemon/object.h): compare it whole. */
static bool raw_object_is(struct zpool *pool, unsigned long handle, const unsigned char *want)
{
	const unsigned char *obj = zpool_map(pool, handle, ZPOOL_MM_RO);
	bool same = obj && memcmp(obj, want, PG) == 0;

	zpool_unmap(pool, handle);
	return same;
}

/*
 * Every POOL object: a RAW one is the incompressible page itself; any other
 * has a header naming the page and lz4 bytes that decompress to it.
 * Returns the number of mismatches.
 */
static size_t check_objects(const struct fx *f, const unsigned char *want, bool *raw_ok,
			    uint64_t *seqs)
{
	unsigned char page[PG];
	struct uzd_obj_hdr h;
	size_t bad = 0;

	for (size_t i = 0; i < f->npages; i++) {
		uint64_t e = fx_entry(f, i);
		bool is_raw = expect_raw(want + i * PG);

		if (uzd_entry_state(e) != UZD_ENTRY_POOL)
			continue;
		if (is_raw != !!(uzd_entry_flags(e) & UZD_ENTRY_RAW)) {
			*raw_ok = false;
			continue;
		}
		if (is_raw) {
			if (!raw_object_is(f->c.pool, uzd_entry_pool_handle(e), want + i * PG))
				*raw_ok = false;
			continue;
		}
		if (obj_load(f->c.pool, uzd_entry_pool_handle(e), &h, page) < 0 ||
		    h.addr != fx_addr(f, i) || h.client_id != CLIENT_ID ||
		    memcmp(page, want + i * PG, PG) != 0 || h.evict_seq >= 64) {
			tap_diag("page %zu: object addr %#lx codec %d len %u client %u seq %u", i,
				 (unsigned long)h.addr, h.codec, h.len, h.client_id, h.evict_seq);
			bad++;
			continue;
		}
		*seqs |= 1ull << h.evict_seq;
		if (h.codec != UZC_CODEC_LZ4)
			bad++;
	}
	return bad;
}

/*
 * With max_len 4096 (max_compressed allows it) a page can compress to
 * 4081-4096 bytes, too long to sit behind a 16-byte header in a pool
 * object: it must be stored raw, not refused on every pass.
 */
static void test_long_compressed_page_is_stored_raw(void)
{
	static unsigned char page[PG];
	unsigned char out[PG];
	struct uzd_evict_ctx *ec = NULL;
	struct uzc_ctx *cc = NULL;
	struct uzd_evict_result res;
	struct uzc_spec spec;
	struct rng g = { .state = 5 };
	size_t idx[1] = { 0 }, n = 3900;
	ssize_t len = 0;
	struct fx f;
	uint64_t e;

	if (uzc_spec_parse("lz4", 0, &spec) == 0 && uzc_ctx_new(&spec, PG, &cc) == 0) {
		/* Random bytes then zeros, lengthened until lz4 lands in (4080, 4096]. */
		for (; n < PG && !(len > PG - UZD_OBJ_HDR_SIZE); n++) {
			memset(page, 0, PG);
			for (size_t i = 0; i < n; i++)
				page[i] = (unsigned char)rng_next(&g);
			len = uzc_compress(cc, page, out, sizeof(out));
		}
	}
	uzc_ctx_free(cc);
	if (!(len > PG - UZD_OBJ_HDR_SIZE) || uzd_evict_ctx_new(&spec, PG, &ec) < 0 ||
	    fx_open(&f, page, 1, 0) < 0) {
		ok(false, "a page compressing to 4081-4096 bytes is made and set up (%zd)", len);
		uzd_evict_ctx_free(ec);
		return;
	}
	e = fx_evict(&f, ec, idx, 1, &res) == 0 ? fx_entry(&f, 0) : 0;
	ok(res.evicted == 1 && res.raw == 1 && uzd_entry_state(e) == UZD_ENTRY_POOL &&
		   (uzd_entry_flags(e) & UZD_ENTRY_RAW) &&
		   raw_object_is(f.c.pool, uzd_entry_pool_handle(e), page),
	   "with max_len 4096, a page compressing to %zd bytes is stored raw, not refused "
	   "(evicted %zu, raw %zu, rejected %zu)",
	   len, res.evicted, res.raw, res.rejected_pool_full);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

static void test_batch(void)
{
	static unsigned char want[NMAIN * PG];
	size_t idx[NMAIN + 1], nsame = 0, nbad = 0, nraw = 0;
	struct uzd_evict_result res;
	struct uzd_region_counts cnt;
	struct zpool_stats zs;
	struct uzd_evict_ctx *ec = evict_ctx();
	long long before, after;
	bool raw_ok = true;
	uint64_t seqs = 0, word;
	struct fx f;
	int ret;

	for (size_t i = 0; i < NMAIN; i++) {
		main_page(want + i * PG, i);
		if (expect_same(want + i * PG, &word))
			nsame++;
		else
			nraw += expect_raw(want + i * PG);
		idx[i] = NMAIN - 1 - i; /* reversed: the batch sorts */
	}
	idx[NMAIN] = 3; /* and a duplicate */
	if (fx_open(&f, want, NMAIN, 0) < 0 || !ec) {
		ok(false, "a batch of resident pages is evicted");
		goto out;
	}
	before = fx_blocks(&f);
	ret = fx_evict(&f, ec, idx, NMAIN + 1, &res);
	after = fx_blocks(&f);
	ok(ret == 0 && res.evicted == NMAIN && res.same == nsame && res.pool == NMAIN - nsame,
	   "a batch of %d resident pages is evicted: %zu same-filled, the rest to the pool "
	   "(ret %d, evicted %zu, same %zu, pool %zu)",
	   NMAIN, nsame, ret, res.evicted, res.same, res.pool);
	ok(before - after == (long long)(8 * res.evicted),
	   "the memfd's st_blocks drop by the evicted pages (%lld -> %lld)", before, after);
	for (size_t i = 0; i < NMAIN; i++) {
		uint64_t e = fx_entry(&f, i);
		bool same = expect_same(want + i * PG, &word);
		bool raw = !same && expect_raw(want + i * PG);

		if (same ? uzd_entry_state(e) != UZD_ENTRY_SAME || uzd_entry_same_word(e) != word :
			   uzd_entry_state(e) != UZD_ENTRY_POOL ||
				    !!(uzd_entry_flags(e) & UZD_ENTRY_RAW) != raw)
			nbad++;
	}
	ok(nbad == 0,
	   "entries are SAME (with the fill word), POOL, or POOL flagged RAW for the "
	   "incompressible pages (%zu wrong)",
	   nbad);
	nbad = check_objects(&f, want, &raw_ok, &seqs);
	ok(nbad == 0,
	   "each pool object's header names the page, client and lz4, and its bytes decompress to "
	   "the original page (%zu wrong)",
	   nbad);
	ok(__builtin_popcountll(seqs) == (int)(res.pool - res.raw),
	   "every object with a header carries a distinct eviction sequence number");
	ok(f.c.evict_seq == res.evicted, "the client's evict_seq advanced by one per page (%u)",
	   f.c.evict_seq);
	zpool_stats(f.c.pool, &zs);
	ok(zs.objects == res.pool && zs.object_bytes == res.pool_bytes,
	   "same-filled pages take no pool space: %zu objects, %zu bytes (res %zu, %llu)",
	   zs.objects, zs.object_bytes, res.pool, (unsigned long long)res.pool_bytes);
	ok(nraw >= 4 && raw_ok && res.raw == nraw,
	   "%zu incompressible pages are stored as themselves, 4096 bytes with no header (%zu raw)",
	   nraw, res.raw);
	ok(f.c.stats.evicted_same == res.same && f.c.stats.evicted_pool == res.pool &&
		   f.c.stats.pool_bytes == res.pool_bytes,
	   "the client's counters say the same");
	uzd_region_counts(f.r, &cnt);
	ok(cnt.resident == NMAIN - res.evicted && cnt.same == res.same && cnt.pool == res.pool,
	   "the region's counters follow (resident %llu same %llu pool %llu)",
	   (unsigned long long)cnt.resident, (unsigned long long)cnt.same,
	   (unsigned long long)cnt.pool);
out:
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

static void test_hot_and_busy(void)
{
	unsigned char want[8 * PG], back[PG];
	size_t idx[8] = { 0, 1, 2, 3, 4, 5, 6, 7 }, two = 2;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	uint64_t old, e;
	struct fx f;
	int ret;

	for (size_t i = 0; i < 8; i++)
		memcpy(want + i * PG, real + ((i + 100) % nreal) * PG, PG);
	if (fx_open(&f, want, 8, 0) < 0 || !ec || set_resident(f.r, 2, UZD_ENTRY_HOT) < 0 ||
	    uzd_region_claim(f.r, 5, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old) < 0) {
		ok(false, "a HOT page is passed over");
		goto out;
	}
	ret = fx_evict(&f, ec, idx, 8, &res);
	e = fx_entry(&f, 2);
	ok(ret == 0 && res.skipped_hot == 1 && uzd_entry_state(e) == UZD_ENTRY_RESIDENT &&
		   uzd_entry_flags(e) == 0 && pread(f.memfd, back, PG, 2 * PG) == PG &&
		   memcmp(back, want + 2 * PG, PG) == 0,
	   "a HOT page is passed over, stays resident and loses its flag (second chance)");
	ok(res.rejected_busy == 1 && f.c.stats.rejected_busy == 1 &&
		   uzd_entry_state(fx_entry(&f, 5)) == UZD_ENTRY_BUSY &&
		   pread(f.memfd, back, PG, 5 * PG) == PG && memcmp(back, want + 5 * PG, PG) == 0,
	   "a BUSY page is skipped, counted, and left to its owner");
	ok(res.evicted == 6, "the other six pages are evicted (%zu)", res.evicted);
	uzd_region_abort(f.r, 5, old);
	ret = fx_evict(&f, ec, &two, 1, &res);
	ok(ret == 0 && res.evicted == 1, "the once-HOT page is evicted on the next round");
out:
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

static void test_pool_full(void)
{
	static unsigned char want[64 * PG];
	unsigned char back[PG];
	size_t idx[64], kept = 0, intact = 0, first_kept = SIZE_MAX;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct job j = { 0 };
	struct fx f;
	int ret;

	for (size_t i = 0; i < 64; i++) {
		random_page(want + i * PG, 1000 + i);
		memcpy(want + i * PG, real + ((i * 7 + 300) % nreal) * PG, PG / 2);
		idx[i] = i;
	}
	if (fx_open(&f, want, 64, 4) < 0 || !ec) {
		ok(false, "a full pool refuses pages, which stay resident");
		goto out;
	}
	ret = fx_evict(&f, ec, idx, 64, &res);
	for (size_t i = 0; i < 64; i++) {
		if (uzd_entry_state(fx_entry(&f, i)) != UZD_ENTRY_RESIDENT)
			continue;
		kept++;
		if (first_kept == SIZE_MAX)
			first_kept = i;
		intact += pread(f.memfd, back, PG, (off_t)(i * PG)) == PG &&
			  memcmp(back, want + i * PG, PG) == 0;
	}
	ok(ret == 0 && res.evicted > 0 && res.rejected_pool_full > 0 &&
		   res.evicted + res.rejected_pool_full == 64 && kept == res.rejected_pool_full,
	   "a pool at its limit refuses pages: %zu evicted, %zu refused, %zu resident", res.evicted,
	   res.rejected_pool_full, kept);
	ok(intact == kept && fx_blocks(&f) == (long long)(8 * kept),
	   "refused pages stay in the memfd with their bytes (%zu of %zu intact)", intact, kept);
	ok(f.c.stats.rejected_pool_full == res.rejected_pool_full,
	   "the client counts the refusals (%llu)",
	   (unsigned long long)f.c.stats.rejected_pool_full);
	j.byte = 'Z';
	if (first_kept == SIZE_MAX || !job_start(&j, 0, fx_addr(&f, first_kept) + 9, 1)) {
		ok(false, "a refused page is writable at once");
		goto out;
	}
	ok(job_wait(&j, WAIT_MS), "a refused page is no longer write-protected: a write completes");
out:
	fx_release(&f);
	job_join(&j);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

/*
 * A memfd sealed against writes after it was registered (F_SEAL_FUTURE_WRITE
 * needs no mapping gone) refuses the punch: every page stays resident with
 * its bytes, its pool object is freed, and the result says what failed and
 * why, for reclaim to log.
 */
static void test_punch_refused(void)
{
	static unsigned char want[16 * PG];
	unsigned char back[PG];
	size_t idx[16], kept = 0, intact = 0;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct zpool_stats zs;
	struct fx f;
	int ret;

	for (size_t i = 0; i < 16; i++) {
		memcpy(want + i * PG, real + ((i * 5 + 40) % nreal) * PG, PG);
		idx[i] = i;
	}
	if (fx_open(&f, want, 16, 0) < 0 || !ec ||
	    fcntl(f.memfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) < 0) {
		ok(false, "a memfd sealed against writes refuses the punch (setup: %s)",
		   strerror(errno));
		goto out;
	}
	ret = fx_evict(&f, ec, idx, 16, &res);
	for (size_t i = 0; i < 16; i++) {
		if (uzd_entry_state(fx_entry(&f, i)) != UZD_ENTRY_RESIDENT)
			continue;
		kept++;
		intact += pread(f.memfd, back, PG, (off_t)(i * PG)) == PG &&
			  memcmp(back, want + i * PG, PG) == 0;
	}
	zpool_stats(f.c.pool, &zs);
	ok(ret == 0 && res.evicted == 0 && res.rejected_error == 16 && kept == 16 && intact == 16 &&
		   zs.objects == 0 && f.c.stats.rejected_error == 16,
	   "a memfd sealed against writes refuses the punch: every page stays resident and "
	   "intact, no object is left in the pool (%zu evicted, %zu rejected, %zu of %zu "
	   "intact, %zu objects)",
	   res.evicted, res.rejected_error, intact, kept, zs.objects);
	ok(res.error == -EPERM && res.error_what &&
		   strcmp(res.error_what, "punching the memfd") == 0,
	   "the result names the failure for the log: %s: %s", res.error_what ? res.error_what : "",
	   strerror(-res.error));
out:
	fx_release(&f);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

/*
 * The limit the eviction context keeps for a client without the backing
 * file (a reload may move it): a pool of unlimited pages still refuses
 * stores once it holds the limit, and takes them again once it is raised.
 */
static void test_context_pool_limit(void)
{
	static unsigned char want[64 * PG];
	size_t idx[64], total;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res, again;
	struct fx f;
	int ret;

	for (size_t i = 0; i < 64; i++) {
		random_page(want + i * PG, 2000 + i);
		memcpy(want + i * PG, real + ((i * 5 + 100) % nreal) * PG, PG / 2);
		idx[i] = i;
	}
	if (fx_open(&f, want, 64, 0) < 0 || !ec) {
		ok(false, "a context's pool limit refuses pages past it");
		goto out;
	}
	uzd_evict_ctx_set_pool_limit(ec, 4 * PG);
	ret = fx_evict(&f, ec, idx, 64, &res);
	total = zpool_total_size(f.c.pool);
	ok(ret == 0 && res.evicted > 0 && res.rejected_pool_full > 0 &&
		   res.evicted + res.rejected_pool_full == 64 && total < 4 * PG + 8 * PG,
	   "a limit of 4 pages: %zu evicted, %zu refused, the pool at %zu bytes (one zspage "
	   "over at most)",
	   res.evicted, res.rejected_pool_full, total);
	uzd_evict_ctx_set_pool_limit(ec, 0);
	ret = fx_evict(&f, ec, idx, 64, &again);
	ok(ret == 0 && again.evicted == res.rejected_pool_full && !again.rejected_pool_full,
	   "without the limit the refused pages are taken (%zu evicted, %zu refused)",
	   again.evicted, again.rejected_pool_full);
out:
	fx_release(&f);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

/* A writer blocked on the fence: its write lands on the evicted page's bytes. */
static void test_blocked_writer(void)
{
	unsigned char want[4 * PG], back[PG];
	size_t idx[4] = { 0, 1, 2, 3 };
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct uffd_msg m;
	struct job j = { .byte = 'X' };
	struct fx f;
	int ret = -1, served = -1;

	for (size_t i = 0; i < 4; i++)
		memcpy(want + i * PG, real + ((i + 200) % nreal) * PG, PG);
	/* Fence page 1 first, so the writer is blocked before the batch starts. */
	if (fx_open(&f, want, 4, 0) < 0 || !ec ||
	    uzd_uffd_writeprotect(f.c.uffd, fx_addr(&f, 1), PG, true, false) < 0 ||
	    !job_start(&j, 0, fx_addr(&f, 1) + 100, 1) || wait_msg(f.c.uffd, &m, WAIT_MS) < 0 ||
	    !(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
		ok(false, "a writer blocks on the eviction fence");
		goto out;
	}
	ret = fx_evict(&f, ec, idx, 4, &res);
	ok(ret == 0 && res.evicted == 4 && !atomic_load(&j.done),
	   "the batch evicts the page while its writer is blocked");
	if (page_content(&f, fx_entry(&f, 1), 1, back) == 0)
		ok(memcmp(back, want + PG, PG) == 0, "the stored page is the one before the write");
	if (wait_msg(f.c.uffd, &m, WAIT_MS) == 0 &&
	    !(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
		served = serve_fault(&f, &m);
	ok(served == 0 && job_wait(&j, WAIT_MS),
	   "unprotect wakes the writer, which refaults MISSING on the punched page and is served");
	want[PG + 100] = 'X';
	ok(pread(f.memfd, back, PG, PG) == PG && memcmp(back, want + PG, PG) == 0,
	   "the final page is the captured bytes plus the write: no lost write");
out:
	fx_release(&f);
	job_join(&j);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

/* Serve every pending fault; the number served, or a negative errno. */
static int serve_pending(struct fx *f, int ms)
{
	struct uffd_msg m[8];
	size_t n = 0;
	int ret;

	if (wait_readable(f->c.uffd, ms) < 0)
		return 0;
	ret = uzd_uffd_read_events(f->c.uffd, m, 8, &n);
	for (size_t i = 0; ret == 0 && i < n; i++)
		if (m[i].event == UFFD_EVENT_PAGEFAULT)
			ret = serve_fault(f, &m[i]);
	return ret < 0 ? ret : (int)n;
}

/* A writer that never stops, evicted under it again and again. */
static void test_racing_writer(void)
{
	unsigned char want[2 * PG], page[PG];
	size_t idx[2] = { 0, 1 }, cycles = 0, evictions = 0, served = 0, bad = 0;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct job j = { 0 };
	uint64_t w;
	struct fx f;
	int ret = 0;

	memcpy(want, real + 400 * PG, 2 * PG);
	if (fx_open(&f, want, 2, 0) < 0 || !ec || !job_start(&j, 2, fx_addr(&f, 0), PG)) {
		ok(false, "a writer racing with eviction loses no write");
		goto out;
	}
	for (; cycles < 300 && ret >= 0; cycles++) {
		uint64_t before = atomic_load(&j.written);

		ret = fx_evict(&f, ec, idx, 2, &res);
		evictions += res.evicted;
		/*
		 * Serve until the writer has written again: with its CPU taken,
		 * it could sleep through every cycle and race nothing.
		 */
		for (int t = 0; ret >= 0 && atomic_load(&j.written) == before && t < WAIT_MS; t++) {
			ret = serve_pending(&f, 1);
			served += ret > 0 ? (size_t)ret : 0;
		}
	}
	atomic_store(&j.stop, true);
	/* It may be blocked on a fault of the last cycle: serve until it is done. */
	for (int t = 0; ret >= 0 && !atomic_load(&j.done) && t < WAIT_MS / 10; t++)
		ret = serve_pending(&f, 10);
	if (!ok(ret >= 0 && job_wait(&j, WAIT_MS), "the racing writer finishes (%d)", ret))
		goto out;
	ret = page_content(&f, fx_entry(&f, 0), 0, page);
	for (size_t k = 0; ret == 0 && k < 256; k++) {
		/* The last write to word k, or none (then it holds the page's original word). */
		uint64_t back = (j.last + 256 - k) % 256, last;

		if (back < j.last)
			last = j.last - back;
		else
			memcpy(&last, want + k * 8, 8);
		memcpy(&w, page + k * 8, 8);
		bad += w != last;
	}
	if (ret == 0)
		bad += memcmp(page + PG / 2, want + PG / 2, PG / 2) != 0;
	tap_diag("racing writer: %zu cycles, %zu evictions, %zu faults served, %llu writes", cycles,
		 evictions, served, (unsigned long long)j.last);
	ok(ret == 0 && bad == 0 && evictions > 0,
	   "a writer racing with %zu evictions loses no write (%zu words wrong)", evictions, bad);
out:
	atomic_store(&j.stop, true);
	fx_release(&f);
	job_join(&j);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

static void test_eagain(void)
{
	unsigned char want[8 * PG];
	size_t idx[6] = { 0, 1, 2, 3, 4, 5 }, resident = 0;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct uffd_msg m;
	struct job j = { 0 };
	long long blocks;
	struct fx f;
	int ret;

	for (size_t i = 0; i < 8; i++)
		memcpy(want + i * PG, real + ((i + 500) % nreal) * PG, PG);
	if (fx_open(&f, want, 8, 0) < 0 || !ec || !job_start(&j, 1, fx_addr(&f, 7), PG) ||
	    wait_readable(f.c.uffd, WAIT_MS) < 0) {
		ok(false, "an unread REMOVE event makes the batch return -EAGAIN");
		goto out;
	}
	blocks = fx_blocks(&f);
	ret = fx_evict(&f, ec, idx, 6, &res);
	for (size_t i = 0; i < 6; i++)
		resident += uzd_entry_state(fx_entry(&f, i)) == UZD_ENTRY_RESIDENT;
	ok(ret == -EAGAIN && res.evicted == 0 && resident == 6 && fx_blocks(&f) == blocks,
	   "an unread REMOVE event makes the batch return -EAGAIN with every page resident (%d)",
	   ret);
	ret = uzd_uffd_wake(f.c.uffd, fx_addr(&f, 0), 6 * PG);
	ok(ret == 0, "a wake is accepted while the event is unread (%d): the unfence fallback",
	   ret);
	if (wait_msg(f.c.uffd, &m, WAIT_MS) < 0 || m.event != UFFD_EVENT_REMOVE) {
		ok(false, "after the event is read, the batch succeeds");
		goto out;
	}
	uzd_region_drop_range(&f.c.regions, (uintptr_t)m.arg.remove.start,
			      (size_t)(m.arg.remove.end - m.arg.remove.start), release_obj,
			      f.c.pool, NULL);
	job_wait(&j, WAIT_MS);
	for (int t = 0; t < 100; t++) {
		ret = fx_evict(&f, ec, idx, 6, &res);
		if (ret != -EAGAIN)
			break;
		usleep(1000); /* uffd.h: the flag can outlast the read for a moment */
	}
	ok(ret == 0 && res.evicted == 6, "after the event is read, the batch succeeds (%d, %zu)",
	   ret, res.evicted);
out:
	fx_release(&f);
	job_join(&j);
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct dropper {
	struct fx *f;
	atomic_bool stop;
	atomic_size_t drops;
};

/* MADV_REMOVE as the fault thread handles it, then the client refills the pages. */
static void *dropper_run(void *arg)
{
	struct dropper *d = arg;
	struct fx *f = d->f;
	uint64_t old;

	while (!atomic_load(&d->stop)) {
		size_t k = atomic_load(&d->drops), first = k % 32, n = 1 + k % 17;

		uzd_region_drop_range(&f->c.regions, (uintptr_t)fx_addr(f, first), n * PG,
				      release_obj, f->c.pool, NULL);
		atomic_fetch_add(&d->drops, 1);
		uzd_region_read_lock(&f->c.regions);
		for (size_t i = 0; i < f->npages; i++) {
			if (uzd_region_claim(f->r, i, UZD_STATE_BIT(UZD_ENTRY_EMPTY), &old) < 0)
				continue;
			if (pwrite(f->memfd, real + (i + k) % nreal * PG, PG, (off_t)(i * PG)) !=
			    PG)
				uzd_region_abort(f->r, i, old);
			else
				uzd_region_publish(f->r, i,
						   uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
		}
		uzd_region_read_unlock(&f->c.regions);
	}
	return NULL;
}

/* Drops of the range racing with batches: every object freed exactly once. */
static void test_concurrent_drop(void)
{
	unsigned char *want = real + 600 * PG;
	size_t idx[64], pool_entries = 0, dropped = 0, evicted = 0;
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct dropper d = { 0 };
	struct zpool_stats zs;
	size_t b = 0;
	pthread_t tid;
	bool started = false;
	struct fx f;
	int ret = 0;

	for (size_t i = 0; i < 64; i++)
		idx[i] = i;
	atomic_store(&free_errors, 0);
	if (fx_open(&f, want, 64, 0) < 0 || !ec) {
		ok(false, "batches racing with drops free every object once");
		goto out;
	}
	d.f = &f;
	started = pthread_create(&tid, NULL, dropper_run, &d) == 0;
	/* Until the dropper has done its share: thread start-up is slow under ASan. */
	for (double t0 = now_s(); started && ret == 0 && now_s() - t0 < 2; b++) {
		if (b >= 200 && atomic_load(&d.drops) >= 300)
			break;
		ret = fx_evict(&f, ec, idx, 64, &res);
		dropped += res.dropped;
		evicted += res.evicted;
	}
	atomic_store(&d.stop, true);
	if (started)
		pthread_join(tid, NULL);
	for (size_t i = 0; i < 64; i++)
		pool_entries += uzd_entry_state(fx_entry(&f, i)) == UZD_ENTRY_POOL;
	zpool_stats(f.c.pool, &zs);
	tap_diag("concurrent drop: %zu batches, %zu drops, %zu evicted, %zu dropped while BUSY", b,
		 atomic_load(&d.drops), evicted, dropped);
	ok(started && ret == 0 && zs.objects == pool_entries && atomic_load(&free_errors) == 0,
	   "batches racing with drops free every object exactly once (%zu objects, %zu POOL "
	   "entries, %u bad frees)",
	   zs.objects, pool_entries, atomic_load(&free_errors));
out:
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

static void test_bad_input(void)
{
	size_t idx[UZD_EVICT_BATCH + 1] = { 0 }, beyond[2] = { 0, 8 };
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	unsigned char want[8 * PG];
	struct fx f;

	memcpy(want, real, 8 * PG);
	if (fx_open(&f, want, 8, 0) < 0 || !ec) {
		ok(false, "a batch larger than UZD_EVICT_BATCH is refused");
		goto out;
	}
	ok(fx_evict(&f, ec, idx, UZD_EVICT_BATCH + 1, &res) == -EINVAL,
	   "a batch larger than UZD_EVICT_BATCH is refused with -EINVAL");
	ok(fx_evict(&f, ec, beyond, 2, &res) == -EINVAL &&
		   uzd_entry_state(fx_entry(&f, 0)) == UZD_ENTRY_RESIDENT,
	   "an index beyond the region is refused with -EINVAL before any page is touched");
out:
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

/*
 * Many real pages through many batches: every one evicted, the memfd left
 * empty.  (How fast is bench/evictbench's business.)
 */
static void test_many_batches(void)
{
	size_t n = nreal < NBENCH ? nreal : NBENCH, evicted = 0, raw = 0, idx[64];
	struct uzd_evict_ctx *ec = evict_ctx();
	struct uzd_evict_result res;
	struct fx f;
	int ret = 0;

	if (fx_open(&f, real, n, 0) < 0 || !ec) {
		ok(false, "%zu real pages are evicted in batches of 64", n);
		goto out;
	}
	for (size_t b = 0; b < n && ret == 0; b += 64) {
		size_t k = n - b < 64 ? n - b : 64;

		for (size_t i = 0; i < k; i++)
			idx[i] = b + i;
		ret = fx_evict(&f, ec, idx, k, &res);
		evicted += res.evicted;
		raw += res.raw;
	}
	ok(ret == 0 && evicted == n && fx_blocks(&f) == 0,
	   "%zu real pages are evicted in batches of 64, every one (%zu of them stored raw), and "
	   "the memfd holds none of them",
	   n, raw);
out:
	fx_close(&f);
	uzd_evict_ctx_free(ec);
}

/* ---- main ---- */

static void setup(void)
{
	char path[4096], why[256] = "";
	struct uzc_spec spec;
	int fd;

	dev_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	fd = uzs_uffd_create(-1, why, sizeof(why));
	if (fd < 0 && dev_fd >= 0)
		fd = uzs_uffd_create(dev_fd, why, sizeof(why));
	if (fd < 0)
		tap_skip_all("cannot create a userfaultfd here: %s", why);
	close(fd);
	if (testdata_path("redis.pages.zst", path, sizeof(path)) < 0)
		tap_skip_all("no real page data (%s; set UZSWAP_PAGES_DIR)", path);
	if (pf_load(path, 2, NBENCH, &real, &nreal) < 0 || nreal < 1024)
		tap_skip_all("cannot load %s", path);
	if (uzc_spec_parse("lz4", 0, &spec) < 0 ||
	    uzc_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &dctx) < 0)
		tap_skip_all("cannot make an lz4 context");
}

int main(void)
{
	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	alarm(WATCHDOG_S);
	setup();

	test_batch();
	test_long_compressed_page_is_stored_raw();
	test_hot_and_busy();
	test_pool_full();
	test_punch_refused();
	test_context_pool_limit();
	test_blocked_writer();
	test_racing_writer();
	test_eagain();
	test_concurrent_drop();
	test_bad_input();
	test_many_batches();

	uzc_ctx_free(dctx);
	free(real);
	if (dev_fd >= 0)
		close(dev_fd);
	return tap_done();
}
