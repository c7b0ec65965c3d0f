/* SPDX-License-Identifier: MIT */
/*
 * tests/test_writeback.c - daemon/writeback.c: the pool limit, the evict
 * callback, put-back after a failed write, and the cleaner's moves, with
 * each of the three allocators, in one process (no userfaultfd: only the
 * entries, the pool and the file matter here).
 *
 * A client (struct uzd_client) has one region whose entries the test sets
 * as eviction would (claim EMPTY, publish POOL) over objects it stores
 * itself, as daemon/evict.c does: real pages (../shared/data/pages)
 * compressed with lz4 behind an object header, and every eighth page
 * random (incompressible), stored RAW with its owner recorded for
 * writeback.  Rounds run in the test's thread (uzd_wb_round).  Checks:
 *  - the pool refuses stores at max_size and accepts again only below the
 *    accept threshold (hysteresis);
 *  - a round writes back down below the threshold; every FILE entry's
 *    record decompresses to its page; the counters agree with the entries;
 *  - an object whose page is busy (a fault holds it) stays in the pool;
 *    so do the objects of a client writeback cannot find;
 *  - with writes failing (a file size limit: EFBIG) every written object
 *    goes back to the pool, intact, and no page is lost;
 *  - after restores free every other record, the cleaner moves the live
 *    ones and they still read back; dropping the region frees everything,
 *    and a round then punches the file empty.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "bench/pagefile.h"
#include "compress/codec.h"
#include "daemon/client.h"
#include "daemon/object.h"
#include "daemon/shared.h"
#include "daemon/writeback.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define PG 4096
#define NPAGES 4096
#define BASE ((uintptr_t)1 << 40)
#define CLIENT_ID 5
#define POOL_MAX (1024 * 1024)

static unsigned char *real;
static size_t nreal;
static struct uzc_ctx *zc;
static char dir[64];

struct fx {
	struct uzd_wb *wb;
	struct zpool *pool;
	struct uzd_client c;
	struct uzd_client *kin; /* a fork relative, when a test makes one */
	struct uzd_region *r;
	bool findable;
	unsigned char *pages; /* what each page holds */
};

static struct uzd_client *find(void *arg, uint32_t id)
{
	struct fx *f = arg;

	if (f->findable && f->kin && id == f->kin->id) {
		uzd_client_get(f->kin);
		return f->kin;
	}
	if (!f->findable || id != f->c.id)
		return NULL;
	uzd_client_get(&f->c);
	return &f->c;
}

static unsigned char *page(struct fx *f, size_t i)
{
	return f->pages + i * PG;
}

static uint64_t entry(struct fx *f, size_t i)
{
	return __atomic_load_n(&f->r->entries[i], __ATOMIC_ACQUIRE);
}

static int fx_open(struct fx *f, const char *allocator)
{
	struct uzd_region_args a = { .start = BASE, .len = NPAGES * PG, .name = "wb" };
	struct zpool_config pc = { 0 };
	struct uzd_config cfg;
	char why[512] = "";
	uint32_t id;
	int ret;

	memset(f, 0, sizeof(*f));
	f->findable = true;
	uzd_config_defaults(&cfg, 8ULL << 30);
	cfg.pool_max_size = POOL_MAX;
	cfg.backing_max_size = 64 * 1024 * 1024;
	snprintf(cfg.backing_path, sizeof(cfg.backing_path), "%s/", dir);
	ret = uzd_wb_create(&cfg, find, f, &f->wb, why, sizeof(why));
	if (ret) {
		tap_diag("uzd_wb_create: %s", why);
		return ret;
	}
	uzd_wb_pool_config(f->wb, &pc);
	ret = zpool_create(allocator, &pc, &f->pool);
	if (ret)
		return ret;
	uzd_wb_bind(f->wb, f->pool);
	ret = uzd_client_init(&f->c, CLIENT_ID, f->pool);
	if (ret)
		return ret;
	f->c.wb = f->wb;
	a.memfd = memfd_create("wb", MFD_CLOEXEC);
	ret = uzd_region_create(&f->c.regions, &a, &id);
	if (ret)
		return ret;
	f->r = uzd_region_find(&f->c.regions, id);
	f->pages = malloc((size_t)NPAGES * PG);
	return f->pages ? 0 : -ENOMEM;
}

static void fx_close(struct fx *f)
{
	uzd_client_fini(&f->c);
	zpool_destroy(f->pool);
	uzd_wb_free(f->wb);
	free(f->pages);
}

/* Page @i into the pool as eviction stores it; false when the pool refused it. */
static bool store(struct fx *f, size_t i, struct rng *g)
{
	unsigned char cbuf[PG];
	uint64_t addr = BASE + i * PG, old;
	bool raw = i % 8 == 7;
	struct uzd_obj_hdr h = { .addr = addr, .codec = UZC_CODEC_LZ4, .client_id = CLIENT_ID };
	unsigned long handle;
	unsigned char *obj;
	ssize_t len = 0;

	if (raw)
		for (size_t k = 0; k < PG; k += 8)
			*(uint64_t *)(page(f, i) + k) = rng_next(g);
	else
		memcpy(page(f, i), real + (i % nreal) * PG, PG);
	if (!raw) {
		len = uzc_compress(zc, page(f, i), cbuf, sizeof(cbuf));
		raw = len <= 0 || len > PG - UZD_OBJ_HDR_SIZE;
	}
	if (!uzd_wb_pool_admit(f->wb))
		return false;
	if (zpool_malloc(f->pool, raw ? PG : UZD_OBJ_HDR_SIZE + (size_t)len, &handle) < 0)
		return false;
	obj = zpool_map(f->pool, handle, ZPOOL_MM_WO);
	if (raw) {
		memcpy(obj, page(f, i), PG);
	} else {
		h.len = (uint32_t)len;
		uzd_obj_hdr_write(obj, &h);
		memcpy(obj + UZD_OBJ_HDR_SIZE, cbuf, (size_t)len);
	}
	zpool_unmap(f->pool, handle);
	if (raw)
		uzd_wb_raw_stored(f->wb, handle, CLIENT_ID, addr);
	__atomic_fetch_add(&f->c.stats.pool_bytes, raw ? PG : UZD_OBJ_HDR_SIZE + (uint64_t)len,
			   __ATOMIC_RELAXED);
	uzd_region_claim(f->r, i, UZD_STATE_BIT(UZD_ENTRY_EMPTY), &old);
	uzd_region_publish(f->r, i, uzd_entry_make_pool(handle, raw ? UZD_ENTRY_RAW : 0));
	return true;
}

/* Does page @i's entry (POOL or FILE) give its bytes back? */
static bool page_intact(struct fx *f, size_t i)
{
	static unsigned char rec[UZD_BFILE_REC_MAX], out[PG];
	uint64_t e = entry(f, i);
	struct uzd_bfile_rec h;
	struct uzd_obj_hdr oh;
	const unsigned char *obj;
	bool good;

	if (uzd_entry_state(e) == UZD_ENTRY_FILE) {
		if (uzd_wb_read(f->wb, uzd_entry_file_slot(e), rec, &h) != 0 ||
		    h.addr != BASE + i * PG || h.client_id != CLIENT_ID)
			return false;
		if (h.codec == UZC_CODEC_RAW)
			return h.len == PG && memcmp(rec + UZD_BFILE_HDR, page(f, i), PG) == 0;
		return uzc_decompress(zc, h.codec, rec + UZD_BFILE_HDR, h.len, out) == 0 &&
		       memcmp(out, page(f, i), PG) == 0;
	}
	if (uzd_entry_state(e) != UZD_ENTRY_POOL)
		return false;
	obj = zpool_map(f->pool, uzd_entry_pool_handle(e), ZPOOL_MM_RO);
	if (uzd_entry_flags(e) & UZD_ENTRY_RAW) {
		good = obj && memcmp(obj, page(f, i), PG) == 0;
	} else {
		uzd_obj_hdr_read(obj, &oh);
		good = obj && oh.addr == BASE + i * PG &&
		       uzc_decompress(zc, oh.codec, obj + UZD_OBJ_HDR_SIZE, oh.len, out) == 0 &&
		       memcmp(out, page(f, i), PG) == 0;
	}
	zpool_unmap(f->pool, uzd_entry_pool_handle(e));
	return good;
}

/* Pages [0, n) by where they are; bad: those in the pool or the file that do not read back. */
struct tally {
	size_t pool, file, raw_file, bad;
};

static struct tally survey(struct fx *f, size_t n)
{
	struct tally t = { 0 };

	for (size_t i = 0; i < n; i++) {
		uint64_t e = entry(f, i);
		enum uzd_entry_state s = uzd_entry_state(e);

		if (s != UZD_ENTRY_POOL && s != UZD_ENTRY_FILE)
			continue;
		t.pool += s == UZD_ENTRY_POOL;
		t.file += s == UZD_ENTRY_FILE;
		t.raw_file += s == UZD_ENTRY_FILE && (uzd_entry_flags(e) & UZD_ENTRY_RAW);
		t.bad += !page_intact(f, i);
	}
	return t;
}

/* Store pages from @from on until the pool refuses; the index of the first not stored. */
static size_t fill(struct fx *f, size_t from, struct rng *g)
{
	size_t n = from;

	while (n < NPAGES && store(f, n, g))
		n++;
	return n;
}

static void test_allocator(const char *allocator)
{
	struct rng g = { .state = rng_seed_from_env(0x3b5) };
	struct uzd_bfile_stats fs;
	struct uzd_wb_stats ws;
	struct tally t;
	struct fx f;
	uint64_t old;
	size_t n;

	if (!ok(fx_open(&f, allocator) == 0, "%s: a pool with writeback and a client", allocator))
		return;
	n = fill(&f, 0, &g);
	ok(n > 0 && n < NPAGES && zpool_total_size(f.pool) >= POOL_MAX && !uzd_wb_pool_admit(f.wb),
	   "%s: the pool refuses stores once it reaches max_size (%zu pages in, %zu bytes)",
	   allocator, n, zpool_total_size(f.pool));

	/* A fault holds page 0: writeback must leave its object alone. */
	uzd_region_claim(f.r, 0, UZD_STATE_BIT(UZD_ENTRY_POOL), &old);
	uzd_wb_round(f.wb);
	uzd_wb_stats(f.wb, &ws, &fs);
	ok(uzd_entry_state(entry(&f, 0)) == UZD_ENTRY_BUSY && ws.rejected_raced > 0,
	   "%s: an object whose page a fault holds stays in the pool (%" PRIu64 " raced)",
	   allocator, ws.rejected_raced);
	uzd_region_abort(f.r, 0, old);
	t = survey(&f, n);
	ok(zpool_total_size(f.pool) < ws.accept_bytes && t.file > 0 && t.raw_file > 0 &&
		   t.file == ws.written_pages && fs.records == t.file,
	   "%s: a round writes back below the threshold, RAW pages too (%zu in the file, %zu RAW; "
	   "%" PRIu64 " written; pool %zu of %" PRIu64 " accepted)",
	   allocator, t.file, t.raw_file, ws.written_pages, zpool_total_size(f.pool),
	   ws.accept_bytes);
	ok(t.bad == 0 && t.pool + t.file == n,
	   "%s: every page reads back from the pool or the file "
	   "(%zu bad)",
	   allocator, t.bad);
	ok(uzd_wb_pool_admit(f.wb), "%s: below the threshold the pool accepts again", allocator);
	ok(f.c.stats.file_bytes == fs.stored_bytes && f.c.stats.written_back == ws.written_pages,
	   "%s: the client's counters follow (%" PRIu64 " bytes in the file)", allocator,
	   f.c.stats.file_bytes);

	/* Writeback cannot find the client (it is going away): nothing moves. */
	n = fill(&f, n, &g);
	f.findable = false;
	old = ws.written_pages;
	uzd_wb_round(f.wb);
	uzd_wb_stats(f.wb, &ws, &fs);
	ok(ws.written_pages == old, "%s: nothing of a client that cannot be found is written back",
	   allocator);
	f.findable = true;
	fx_close(&f);
}

/* One writeback round with every write failing (a file size limit of 0: EFBIG). */
static void round_failing_writes(struct fx *f)
{
	struct rlimit lim, old;

	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 0;
	setrlimit(RLIMIT_FSIZE, &lim);
	uzd_wb_round(f->wb);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
}

/* Writes fail: what was written goes back to the pool, and no page is lost. */
static void test_put_back(const char *allocator)
{
	struct rng g = { .state = rng_seed_from_env(0x9b1) };
	struct uzd_bfile_stats fs;
	struct uzd_wb_stats ws;
	struct tally t;
	struct fx f;
	size_t n;

	if (fx_open(&f, allocator) != 0)
		return;
	n = fill(&f, 0, &g);
	round_failing_writes(&f);
	uzd_wb_stats(f.wb, &ws, &fs);
	t = survey(&f, n);
	ok(fs.write_eio > 0 && ws.put_back > 0 && ws.put_back == ws.written_pages && t.file == 0 &&
		   t.pool == n && t.bad == 0 && !fs.pinned,
	   "%s: when the write fails every written object goes back to the pool, intact (%" PRIu64
	   " written, %" PRIu64 " put back; %zu pool, %zu file, %zu bad)",
	   allocator, ws.written_pages, ws.put_back, t.pool, t.file, t.bad);
	ok(fs.records == 0 && f.c.stats.file_bytes == 0, "%s: and the file holds nothing",
	   allocator);
	fx_close(&f);
}

/* ---- put-back of records fork relatives share ---- */

/* The relative: a second client whose region shares the first one's address and objects. */
struct kin {
	struct fx *f;
	struct uzd_client c;
	struct uzd_region *r;
	struct uzd_shared *shared;
};

static size_t kin_ids(void *arg, uint32_t *ids, size_t max)
{
	struct kin *k = arg;

	if (max < 2)
		return 0;
	ids[0] = k->f->c.id;
	ids[1] = k->c.id;
	return 2;
}

/* Pages [0, n) of f's client become shared with k's, as a fork snapshot shares them. */
static int kin_share(struct kin *k, size_t n)
{
	struct fx *f = k->f;
	uint64_t old, e;

	for (size_t i = 0; i < n; i++) {
		e = entry(f, i);
		if (uzd_entry_state(e) != UZD_ENTRY_POOL)
			continue;
		if (uzd_region_repoint(
			    f->r, i, e,
			    uzd_entry_with_flags(e, uzd_entry_flags(e) | UZD_ENTRY_SHARED)) < 0 ||
		    uzd_region_claim(k->r, i, UZD_STATE_BIT(UZD_ENTRY_EMPTY), &old) < 0 ||
		    uzd_shared_get(k->shared, uzd_shared_pool_key(uzd_entry_pool_handle(e))) < 0)
			return -1;
		uzd_region_publish(k->r, i,
				   uzd_entry_with_flags(e, uzd_entry_flags(e) | UZD_ENTRY_SHARED));
		k->c.stats.pool_bytes += uzd_client_object_bytes(f->pool, e);
	}
	return 0;
}

static int kin_open(struct kin *k, struct fx *f)
{
	struct uzd_region_args a = { .start = BASE, .len = NPAGES * PG, .name = "kin" };
	uint32_t id;
	int ret;

	memset(k, 0, sizeof(*k));
	k->f = f;
	ret = uzd_shared_new(&k->shared);
	if (ret == 0)
		ret = uzd_client_init(&k->c, CLIENT_ID + 1, f->pool);
	if (ret)
		return ret;
	k->c.wb = f->wb;
	k->c.shared = f->c.shared = k->shared;
	a.memfd = memfd_create("kin", MFD_CLOEXEC);
	ret = uzd_region_create(&k->c.regions, &a, &id);
	if (ret)
		return ret;
	k->r = uzd_region_find(&k->c.regions, id);
	f->kin = &k->c;
	uzd_wb_set_owners(f->wb, kin_ids, k, k->shared);
	return 0;
}

static void kin_close(struct kin *k)
{
	uzd_client_fini(&k->c);
	uzd_client_fini(&k->f->c);
	memset(&k->f->c, 0, sizeof(k->f->c));
	uzd_shared_free(k->shared);
}

/*
 * Writes fail while the records in staging are shared by two relatives:
 * each goes back to one pool object that both entries hold, SHARED, its
 * shared count rekeyed to the new handle, and neither relative is left on
 * a slot (a put-back that gave only the evictor its page back left the
 * other on a freed slot: SIGBUS at its next fault).
 */
static void test_put_back_shared(const char *allocator)
{
	struct rng g = { .state = rng_seed_from_env(0x5a7) };
	size_t n, shared = 0, bad = 0, counted = 0;
	struct uzd_bfile_stats fs;
	struct uzd_wb_stats ws;
	struct kin k;
	struct fx f;

	if (fx_open(&f, allocator) != 0 || kin_open(&k, &f) != 0) {
		ok(false, "%s: two relatives share a pool", allocator);
		return;
	}
	n = fill(&f, 0, &g);
	if (!ok(kin_share(&k, n) == 0, "%s: %zu pages shared by two relatives", allocator, n))
		goto out;
	round_failing_writes(&f);
	uzd_wb_stats(f.wb, &ws, &fs);
	for (size_t i = 0; i < n; i++) {
		uint64_t a = entry(&f, i), b = __atomic_load_n(&k.r->entries[i], __ATOMIC_ACQUIRE);

		if (uzd_entry_state(a) != UZD_ENTRY_POOL || a != b ||
		    !(uzd_entry_flags(a) & UZD_ENTRY_SHARED)) {
			bad++;
			continue;
		}
		shared++;
		bad += !page_intact(&f, i);
		counted += uzd_shared_owners(k.shared,
					     uzd_shared_pool_key(uzd_entry_pool_handle(a))) == 2;
	}
	ok(fs.write_eio > 0 && ws.written_pages > 0 && ws.put_back == ws.written_pages &&
		   shared == n && bad == 0 && counted == n && !fs.pinned && fs.records == 0,
	   "%s: when the write fails, shared records go back to one object both relatives hold "
	   "(%" PRIu64 " written, %" PRIu64 " put back; %zu shared of %zu, %zu bad, %zu counted "
	   "twice)",
	   allocator, ws.written_pages, ws.put_back, shared, n, bad, counted);
	ok(f.c.stats.file_bytes == 0 && k.c.stats.file_bytes == 0 &&
		   f.c.stats.pool_bytes == k.c.stats.pool_bytes,
	   "%s: and both relatives' counters say so", allocator);
out:
	kin_close(&k);
	zpool_destroy(f.pool);
	uzd_wb_free(f.wb);
	free(f.pages);
}

/* Restores free every other record; the cleaner compacts; a drop frees the rest. */
static void test_clean_and_drop(const char *allocator)
{
	struct rng g = { .state = rng_seed_from_env(0x5c1) };
	struct uzd_bfile_stats fs;
	struct uzd_wb_stats ws;
	size_t n = 0, freed = 0;
	struct tally t;
	struct fx f;

	if (fx_open(&f, allocator) != 0)
		return;
	/* Several fills and rounds: a few MiB in the file. */
	for (int k = 0; k < 40 && n < NPAGES; k++) {
		n = fill(&f, n, &g);
		uzd_wb_round(f.wb);
	}
	for (size_t i = 0; i < n; i += 2) {
		uint64_t e = entry(&f, i), old;

		if (uzd_entry_state(e) != UZD_ENTRY_FILE)
			continue;
		/* As a fault restores it: claim, free the record, publish RESIDENT. */
		uzd_region_claim(f.r, i, UZD_STATE_BIT(UZD_ENTRY_FILE), &old);
		uzd_wb_file_freed(f.wb, &f.c, uzd_entry_file_slot(old));
		uzd_region_publish(f.r, i, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
		freed++;
	}
	for (int k = 0; k < 8; k++)
		uzd_wb_round(f.wb);
	uzd_wb_stats(f.wb, &ws, &fs);
	t = survey(&f, n);
	ok(fs.cleaned_records > 0 && t.file > 0,
	   "%s: after restores freed %zu records the cleaner moved %" PRIu64 " (disk %" PRIu64
	   " for %" PRIu64 " stored)",
	   allocator, freed, fs.cleaned_records, fs.disk_bytes, fs.stored_bytes);
	ok(t.bad == 0 && t.pool + t.file + freed == n,
	   "%s: the moved records still read back as their pages (%zu bad)", allocator, t.bad);
	uzd_region_drop_range(&f.c.regions, BASE, NPAGES * PG, uzd_client_release, &f.c, NULL);
	uzd_wb_round(f.wb);
	uzd_wb_stats(f.wb, &ws, &fs);
	ok(fs.records == 0 && fs.disk_bytes == 0 && zpool_total_size(f.pool) == 0 &&
		   f.c.stats.pool_bytes == 0 && f.c.stats.file_bytes == 0,
	   "%s: a drop frees every object and record, and a round punches the file empty (%" PRIu64
	   " records, %" PRIu64 " on disk, pool %zu)",
	   allocator, fs.records, fs.disk_bytes, zpool_total_size(f.pool));
	fx_close(&f);
}

int main(void)
{
	static const char *const allocators[] = { "zsmalloc", "z3fold", "zbud" };
	struct uzc_spec spec = { .id = UZC_CODEC_LZ4 };
	char path[512], tmpl[] = "/tmp/uzswap-test-wb.XXXXXX";
	int ret;

	if (testdata_path("redis.pages.zst", path, sizeof(path)) < 0)
		tap_skip_all("no page data at %s", path);
	ret = pf_load(path, 7, 512, &real, &nreal);
	if (ret < 0 || !nreal)
		tap_skip_all("cannot load %s: %s", path, strerror(-ret));
	if (!mkdtemp(tmpl))
		tap_skip_all("mkdtemp: %s", strerror(errno));
	snprintf(dir, sizeof(dir), "%s", tmpl);
	uzc_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &zc);
	for (size_t i = 0; i < 3; i++) {
		test_allocator(allocators[i]);
		test_put_back(allocators[i]);
		test_put_back_shared(allocators[i]);
		test_clean_and_drop(allocators[i]);
	}
	uzc_ctx_free(zc);
	free(real);
	rmdir(dir);
	return tap_done();
}
