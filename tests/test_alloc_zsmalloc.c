/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_zsmalloc.c - what is particular to zsmalloc: the size
 * class table, objects spanning the pages of a zspage, handles that survive
 * compaction, mapped objects that compaction leaves alone, reclaim of the
 * coldest zspage through the evict callback (with frees that race it),
 * objects freed while mapped (kept until unmapped, then not pinned), FIFO
 * reuse of handle entries against stale handles, maps racing frees in two
 * threads, and the efficiency it reaches on real lz4 sizes, before and after
 * compaction.  The behaviour every driver shares is tested elsewhere.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/zpool.h"
#include "tests/objfill.h"
#include "tests/pagesizes.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

extern const struct zpool_driver zsmalloc_driver;

#define MAX_CLASSES 256

struct obj {
	unsigned long handle;
	size_t size;
	uint64_t seed; /* the bytes are a function of it; 0: freed */
};

/* What the evict callback saw; it frees what it takes unless told to refuse. */
struct evict_log {
	struct obj *objs; /* to check each object's bytes */
	size_t nobjs;
	unsigned long handles[64];
	int n, bad_bytes, unknown;
	int refuse_from;	  /* refuse the n-th call and later; -1: never */
	unsigned long also_free;  /* freed by the first call too, as a racing owner would */
	unsigned long racing_new; /* allocated by the first call: must not land in the zspage */
};

static void fill(struct zpool *pool, struct obj *o, uint64_t seed)
{
	unsigned char *p = zpool_map(pool, o->handle, ZPOOL_MM_WO);

	objfill_bytes(p, o->size, seed);
	zpool_unmap(pool, o->handle);
	o->seed = seed;
}

static bool intact(struct zpool *pool, const struct obj *o)
{
	const unsigned char *p = zpool_map(pool, o->handle, ZPOOL_MM_RO);
	bool good = p && objfill_bytes_match(p, o->size, o->seed);

	if (p)
		zpool_unmap(pool, o->handle);
	return good;
}

/* Every live object of @objs holds its bytes; how many do not. */
static size_t count_damaged(struct zpool *pool, const struct obj *objs, size_t n)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++)
		if (objs[i].seed && !intact(pool, &objs[i]))
			bad++;
	return bad;
}

static struct obj *obj_find(struct evict_log *log, unsigned long handle)
{
	for (size_t i = 0; i < log->nobjs; i++)
		if (log->objs[i].seed && log->objs[i].handle == handle)
			return &log->objs[i];
	return NULL;
}

static int evict_copy_and_free(struct zpool *pool, unsigned long handle, void *arg)
{
	struct evict_log *log = arg;
	struct obj *o = obj_find(log, handle);
	const unsigned char *p;
	int call = log->n;

	if (log->n < 64)
		log->handles[log->n++] = handle;
	if (log->refuse_from >= 0 && call >= log->refuse_from)
		return 1;
	if (!o) {
		log->unknown++;
		return zpool_free(pool, handle);
	}
	p = zpool_map(pool, handle, ZPOOL_MM_RO);
	if (!p || !objfill_bytes_match(p, o->size, o->seed))
		log->bad_bytes++;
	if (p)
		zpool_unmap(pool, handle);
	o->seed = 0;
	if (call == 0 && log->also_free) {
		struct obj *other = obj_find(log, log->also_free);

		if (other)
			other->seed = 0;
		zpool_free(pool, log->also_free);
		if (zpool_malloc(pool, 1024, &log->racing_new))
			log->racing_new = 0;
	}
	return zpool_free(pool, handle);
}

static struct zpool *make_pool(struct evict_log *log, size_t max_pages)
{
	struct zpool_config cfg = { .evict = evict_copy_and_free,
				    .evict_arg = log,
				    .max_pages = max_pages };
	struct zpool *pool = NULL;

	if (log)
		log->refuse_from = -1;
	if (zpool_create_with(&zsmalloc_driver, &cfg, &pool))
		return NULL;
	return pool;
}

/* Allocate @n objects of @size filled from @rng; false at the first failure. */
static bool alloc_filled(struct zpool *pool, struct obj *objs, size_t n, size_t size,
			 struct rng *rng)
{
	for (size_t i = 0; i < n; i++) {
		objs[i] = (struct obj){ .size = size };
		if (zpool_malloc(pool, size, &objs[i].handle))
			return false;
		fill(pool, &objs[i], rng_next(rng) | 1);
	}
	return true;
}

static size_t pool_pages(struct zpool *pool)
{
	return zpool_total_size(pool) / ZPOOL_PAGE_SIZE;
}

/* ---- the class table ---- */

/* Fraction of a zspage of @pages pages that objects of @size leave unused. */
static double waste(unsigned int size, unsigned int pages)
{
	size_t bytes = (size_t)pages * ZPOOL_PAGE_SIZE;

	return (double)(bytes % size) / (double)bytes;
}

static bool class_shape_is_least_waste(const struct zpool_class_stat *c)
{
	if (c->pages_per_zspage < 1 || c->pages_per_zspage > 8)
		return false;
	for (unsigned int n = 1; n <= 8; n++)
		if (waste(c->size, n) < waste(c->size, c->pages_per_zspage) - 1e-12)
			return false;
	return true;
}

static void test_class_table_shape(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct zpool_class_stat cs[MAX_CLASSES];
	size_t n = pool ? zpool_class_stats(pool, cs, MAX_CLASSES) : 0;
	bool sizes_ok = true, shapes_ok = true, merged_ok = true;

	ok(n > 1 && n < 255,
	   "16-byte steps from 32 to 4096 merge into fewer than 255 classes (%zu)", n);
	for (size_t i = 0; i < n && n <= MAX_CLASSES; i++) {
		if (cs[i].size % 16 || cs[i].size < 32 || (i && cs[i].size <= cs[i - 1].size))
			sizes_ok = false;
		if (!class_shape_is_least_waste(&cs[i]))
			shapes_ok = false;
		if (i && cs[i].pages_per_zspage == cs[i - 1].pages_per_zspage &&
		    cs[i].pages_per_zspage * ZPOOL_PAGE_SIZE / cs[i].size ==
			    cs[i - 1].pages_per_zspage * ZPOOL_PAGE_SIZE / cs[i - 1].size)
			merged_ok = false;
	}
	ok(sizes_ok, "class sizes are multiples of 16 from 32 up, in increasing order");
	ok(shapes_ok, "every class's zspage length (1..8 pages) wastes the least");
	ok(merged_ok, "no two neighbouring classes have the same pages and objects per zspage");
	ok(n > 1 && cs[n - 1].size == 4096 && cs[n - 1].pages_per_zspage == 1,
	   "the largest class is the huge class: %u..4096 bytes, one object per page",
	   n > 1 ? cs[n - 2].size + 1 : 0);
	zpool_destroy(pool);
}

/* The class holding the pool's only object, or -1. */
static int class_in_use(const struct zpool_class_stat *cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cs[i].objs_used)
			return (int)i;
	return -1;
}

static void test_every_size_gets_the_smallest_class_that_holds_it(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct zpool_class_stat cs[MAX_CLASSES];
	size_t bad = 0, first_bad = 0;

	for (size_t size = 1; pool && size <= ZPOOL_MAX_OBJECT; size++) {
		unsigned long h;
		size_t n;
		int c;

		if (zpool_malloc(pool, size, &h)) {
			bad++;
			continue;
		}
		n = zpool_class_stats(pool, cs, MAX_CLASSES);
		c = class_in_use(cs, n);
		if (c < 0 || cs[c].size < size || (c > 0 && cs[c - 1].size >= size)) {
			if (!bad++)
				first_bad = size;
		}
		zpool_free(pool, h);
	}
	ok(pool && bad == 0,
	   "each size 1..4096 goes to the smallest class at least as large (%zu wrong, first %zu)",
	   bad, first_bad);
	zpool_destroy(pool);
}

/* ---- objects spanning pages ---- */

static void test_objects_spanning_pages_round_trip(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct rng rng = { 11 };
	struct obj objs[16];
	struct zpool_class_stat cs[MAX_CLASSES];
	size_t spanning = 0, n, c;
	bool made = pool && alloc_filled(pool, objs, 16, 3000, &rng);

	if (!ok(made, "sixteen 3000-byte objects are allocated"))
		goto out;
	for (size_t i = 0; i < 16; i++) {
		uintptr_t a = (uintptr_t)zpool_map(pool, objs[i].handle, ZPOOL_MM_RO);

		zpool_unmap(pool, objs[i].handle);
		spanning += a / ZPOOL_PAGE_SIZE != (a + 2999) / ZPOOL_PAGE_SIZE;
	}
	n = zpool_class_stats(pool, cs, MAX_CLASSES);
	c = (size_t)class_in_use(cs, n);
	ok(cs[c].pages_per_zspage > 1 && spanning >= 8,
	   "they share %u-page zspages, %zu of them crossing a page boundary",
	   cs[c].pages_per_zspage, spanning);
	ok(count_damaged(pool, objs, 16) == 0, "every spanning object reads back what was written");
	ok(pool_pages(pool) < 16, "they take %zu pages, fewer than one each", pool_pages(pool));
out:
	zpool_destroy(pool);
}

/* ---- compaction ---- */

static void test_compaction_keeps_handles_and_frees_pages(void)
{
	enum {
		N = 3000
	};
	static const size_t sizes[] = { 100, 700, 1500, 2600, 3500 };
	struct zpool *pool = make_pool(NULL, 0);
	struct obj *objs = calloc(N, sizeof(*objs));
	struct rng rng = { rng_seed_from_env(0x25aa) };
	struct zpool_stats st;
	size_t before, freed, kept = 0;
	bool made = pool && objs;

	tap_diag("compaction seed %#" PRIx64, rng.state);
	for (size_t i = 0; made && i < N; i++)
		made = alloc_filled(pool, &objs[i], 1, sizes[rng_below(&rng, 5)], &rng);
	if (!ok(made, "%d objects of five sizes are allocated", N))
		goto out;
	for (size_t i = 0; i < N; i++) {
		if (rng_below(&rng, 4) == 0) {
			kept++;
			continue;
		}
		zpool_free(pool, objs[i].handle);
		objs[i].seed = 0;
	}
	before = pool_pages(pool);
	freed = zpool_compact(pool);
	zpool_stats(pool, &st);
	ok(freed > 0 && pool_pages(pool) == before - freed && st.compacted_pages == freed,
	   "compaction after freeing 3/4 frees %zu of %zu pages, as the pool size and stats say",
	   freed, before);
	ok(count_damaged(pool, objs, N) == 0,
	   "all %zu surviving objects hold their bytes under their old handles", kept);
	ok(zpool_compact(pool) == 0, "a second compaction finds nothing to free");
out:
	free(objs);
	zpool_destroy(pool);
}

/* 1024-byte objects: four to a one-page zspage. */
static void test_a_mapped_object_is_not_moved(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct rng rng = { 7 };
	struct obj objs[8];
	void *pa, *pb, *again;

	if (!ok(pool && alloc_filled(pool, objs, 8, 1024, &rng) && pool_pages(pool) == 2,
		"eight 1024-byte objects fill two one-page zspages"))
		goto out;
	for (int i = 1; i < 7; i++) {
		zpool_free(pool, objs[i].handle);
		objs[i].seed = 0;
	}
	pa = zpool_map(pool, objs[0].handle, ZPOOL_MM_RO);
	pb = zpool_map(pool, objs[7].handle, ZPOOL_MM_RO);
	ok(zpool_compact(pool) == 0 && pool_pages(pool) == 2,
	   "with the last object of each zspage mapped, compaction frees nothing");
	again = zpool_map(pool, objs[0].handle, ZPOOL_MM_RO);
	ok(again == pa && objfill_bytes_match(pa, objs[0].size, objs[0].seed) &&
		   objfill_bytes_match(pb, objs[7].size, objs[7].seed),
	   "the mapped objects stay where they were mapped, intact");
	zpool_unmap(pool, objs[0].handle);
	zpool_unmap(pool, objs[0].handle);
	ok(zpool_compact(pool) == 1 && pool_pages(pool) == 1,
	   "once one is unmapped, compaction moves it and frees its zspage");
	ok(zpool_map(pool, objs[7].handle, ZPOOL_MM_RO) == pb,
	   "the object still mapped was the one left in place");
	zpool_unmap(pool, objs[7].handle);
	zpool_unmap(pool, objs[7].handle);
	ok(count_damaged(pool, objs, 8) == 0, "both objects read back intact");
out:
	zpool_destroy(pool);
}

/* 700-byte objects: class 704, 29 to a 5-page zspage. */
static void test_class_stats_predict_compaction(void)
{
	enum {
		N = 100
	};
	struct zpool *pool = make_pool(NULL, 0);
	struct zpool_class_stat cs[MAX_CLASSES];
	struct rng rng = { 13 };
	struct obj objs[N];
	size_t n, live = N, freed;
	int c;

	if (!ok(pool && alloc_filled(pool, objs, N, 700, &rng), "%d objects of 700 bytes", N))
		goto out;
	for (size_t i = 0; i < N; i++) {
		if (i % 3 == 0)
			continue;
		zpool_free(pool, objs[i].handle);
		objs[i].seed = 0;
		live--;
	}
	n = zpool_class_stats(pool, cs, MAX_CLASSES);
	c = class_in_use(cs, n);
	ok(c >= 0 && cs[c].size == 704 && cs[c].objs_used == live &&
		   cs[c].pages_used == pool_pages(pool) &&
		   cs[c].objs_allocated == cs[c].pages_used / cs[c].pages_per_zspage *
						   (cs[c].pages_per_zspage * ZPOOL_PAGE_SIZE / 704),
	   "class stats count %zu objects used on %zu pages after freeing two in three",
	   c >= 0 ? cs[c].objs_used : 0, c >= 0 ? cs[c].pages_used : 0);
	freed = zpool_compact(pool);
	ok(c >= 0 && freed == cs[c].pages_freeable && freed > 0,
	   "compaction frees the %zu pages the stats called freeable (%zu)",
	   c >= 0 ? cs[c].pages_freeable : 0, freed);
	n = zpool_class_stats(pool, cs, MAX_CLASSES);
	ok(c >= 0 && cs[c].pages_freeable == 0 && count_damaged(pool, objs, N) == 0,
	   "afterwards nothing is freeable and every object is intact");
out:
	zpool_destroy(pool);
}

/* ---- reclaim ---- */

static bool evicted_once_each(const struct evict_log *log, const unsigned long *want, int n)
{
	if (log->n != n)
		return false;
	for (int i = 0; i < n; i++) {
		int seen = 0;

		for (int j = 0; j < log->n; j++)
			seen += log->handles[j] == want[i];
		if (seen != 1)
			return false;
	}
	return true;
}

/* 3000-byte objects: four to a three-page zspage. */
static void test_shrink_evicts_the_coldest_zspage_once_each(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log, 0);
	struct rng rng = { 3 };
	struct obj objs[12];
	unsigned long coldest[4];
	unsigned int reclaimed = 0;
	struct zpool_stats st;
	int err;

	log.objs = objs;
	log.nobjs = 12;
	if (!ok(pool && alloc_filled(pool, objs, 12, 3000, &rng) && pool_pages(pool) == 9,
		"twelve 3000-byte objects fill three 3-page zspages"))
		goto out;
	for (int i = 0; i < 4; i++)
		coldest[i] = objs[i].handle;
	err = zpool_shrink(pool, 1, &reclaimed);
	ok(err == 0 && reclaimed == 3, "shrink(1) frees one whole zspage: %u pages (%d)", reclaimed,
	   err);
	ok(evicted_once_each(&log, coldest, 4),
	   "the callback got each object of the first-filled zspage exactly once (%d calls)",
	   log.n);
	ok(log.bad_bytes == 0 && log.unknown == 0, "each evicted object held its bytes");
	zpool_stats(pool, &st);
	ok(st.evicted == 4 && st.reclaimed_pages == 3 && st.objects == 8 && pool_pages(pool) == 6,
	   "stats count 4 evicted, 3 pages reclaimed, 8 objects left on 6 pages");
	ok(count_damaged(pool, objs, 12) == 0, "the other zspages' objects are untouched");
out:
	zpool_destroy(pool);
}

static void test_a_refusing_callback_leaves_the_objects_intact(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log, 0);
	struct rng rng = { 5 };
	struct obj objs[8];
	unsigned int reclaimed = 9;
	struct zpool_stats st;

	log.objs = objs;
	log.nobjs = 8;
	if (!ok(pool && alloc_filled(pool, objs, 8, 1024, &rng), "eight objects are allocated"))
		goto out;
	log.refuse_from = 0;
	ok(zpool_shrink(pool, 1, &reclaimed) == -EAGAIN && reclaimed == 0,
	   "shrink with a callback that always refuses gives -EAGAIN");
	zpool_stats(pool, &st);
	ok(st.evict_failures == 8 && pool_pages(pool) == 2 && st.objects == 8,
	   "it tried 8 zspages (%llu failures) and the pool keeps its 2 pages, 8 objects",
	   st.evict_failures);
	ok(count_damaged(pool, objs, 8) == 0, "every object still holds its bytes");

	log.n = 0;
	log.refuse_from = 1;
	ok(zpool_shrink(pool, 1, &reclaimed) == -EAGAIN && log.n >= 2,
	   "a callback that refuses its second object leaves each zspage in the pool");
	ok(count_damaged(pool, objs, 8) == 0 && pool_pages(pool) == 2,
	   "the objects it took are gone, the rest intact");
	log.refuse_from = -1;
	ok(zpool_shrink(pool, 2, &reclaimed) == 0 && reclaimed == 2 && pool_pages(pool) == 0,
	   "the zspages went back on the LRU: a willing callback then empties both");
out:
	zpool_destroy(pool);
}

static void test_frees_during_reclaim_are_deferred(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log, 0);
	struct rng rng = { 9 };
	struct obj objs[8];
	unsigned int reclaimed = 0;
	const unsigned char *p;

	log.objs = objs;
	log.nobjs = 8;
	if (!ok(pool && alloc_filled(pool, objs, 8, 1024, &rng), "eight objects are allocated"))
		goto out;
	log.also_free = objs[2].handle;
	ok(zpool_shrink(pool, 1, &reclaimed) == 0 && reclaimed == 1 && pool_pages(pool) == 2,
	   "a zspage whose object is freed by its owner mid-reclaim is still released once");
	ok(log.n == 3 && log.bad_bytes == 0,
	   "the callback never saw the object freed meanwhile (%d calls)", log.n);
	ok(log.racing_new && (uint32_t)log.racing_new != (uint32_t)objs[2].handle,
	   "the handle freed mid-reclaim was not reused by a malloc meanwhile");
	p = log.racing_new ? zpool_map(pool, log.racing_new, ZPOOL_MM_RO) : NULL;
	ok(p != NULL, "the object allocated mid-reclaim went elsewhere and is live");
	if (p)
		zpool_unmap(pool, log.racing_new);
	ok(zpool_free(pool, objs[2].handle) == -EINVAL, "the deferred handle is no longer live");
	ok(count_damaged(pool, objs, 8) == 0, "the other zspage's objects are intact");
out:
	zpool_destroy(pool);
}

/* ---- handles and limits ---- */

static void test_stale_and_forged_handles_are_refused(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	unsigned long a = 0, b = 0;

	if (!ok(pool && !zpool_malloc(pool, 100, &a), "an object allocates"))
		goto out;
	ok(zpool_free(pool, 0) == -EINVAL, "free of handle 0 is -EINVAL");
	ok(zpool_free(pool, a + 1) == -EINVAL, "free of a table entry never handed out is -EINVAL");
	ok(zpool_free(pool, a ^ (1UL << 40)) == -EINVAL, "free with a wrong generation is -EINVAL");
	ok(zpool_free(pool, 1UL << 31) == -EINVAL, "free of an index beyond the table is -EINVAL");
	ok(zpool_free(pool, a) == 0 && zpool_free(pool, a) == -EINVAL, "a double free is -EINVAL");
	ok(!zpool_malloc(pool, 100, &b) && b != a && zpool_free(pool, a) == -EINVAL,
	   "once its entry is reused, the old handle is still refused");
	ok(zpool_map(pool, a, ZPOOL_MM_RO) == NULL, "map of a stale handle gives NULL");
	ok(zpool_free(pool, b) == 0 && zpool_total_size(pool) == 0, "the pool is empty after all");
out:
	zpool_destroy(pool);
}

/* 1024-byte objects: four to a one-page zspage. */
static void test_a_mapped_object_freed_lives_until_unmapped(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct rng rng = { 17 };
	struct obj o, other;
	struct zpool_stats st;
	unsigned char *p, *q = NULL;

	if (!ok(pool && alloc_filled(pool, &o, 1, 1024, &rng), "a 1024-byte object is allocated"))
		goto out;
	p = zpool_map(pool, o.handle, ZPOOL_MM_RO);
	zpool_stats(pool, &st);
	ok(p && zpool_free(pool, o.handle) == 0 && pool_pages(pool) == 1,
	   "freeing it while mapped returns 0, and its zspage stays while it is mapped");
	zpool_stats(pool, &st);
	ok(st.objects == 0 && st.object_bytes == 0, "the pool counts it freed at once");
	ok(zpool_free(pool, o.handle) == -EINVAL, "a second free of the mapped handle is -EINVAL");
	ok(zpool_map(pool, o.handle, ZPOOL_MM_RO) == NULL,
	   "a freed, still mapped handle cannot be mapped");
	if (alloc_filled(pool, &other, 1, 1024, &rng))
		q = zpool_map(pool, other.handle, ZPOOL_MM_RO);
	ok(q && q != p && p && objfill_bytes_match(p, o.size, o.seed),
	   "a malloc meanwhile does not take its slot: the mapped bytes stay intact");
	if (q)
		zpool_unmap(pool, other.handle);
	zpool_unmap(pool, o.handle);
	ok(zpool_free(pool, o.handle) == -EINVAL && zpool_free(pool, other.handle) == 0 &&
		   pool_pages(pool) == 0,
	   "after the unmap the handle stays dead, and freeing the other object empties the pool");
out:
	zpool_destroy(pool);
}

/* The merged class of 1024-byte objects, or -1. */
static int class_of_size(const struct zpool_class_stat *cs, size_t n, unsigned int size)
{
	for (size_t i = 0; i < n; i++)
		if (cs[i].size >= size)
			return (int)i;
	return -1;
}

/*
 * Two one-page zspages of four 1024-byte objects, A = objs[0..3], B =
 * objs[4..7].  objs[0] is mapped, freed and unmapped; A is then left with
 * objs[3] only and B with three objects, one of them mapped.  Only A can be
 * drained, so compaction frees a page only if the unmap unpinned A.
 */
static void test_a_freed_mapped_object_does_not_pin_its_zspage(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct zpool_class_stat cs[MAX_CLASSES];
	struct rng rng = { 19 };
	struct obj objs[8];
	unsigned char *a3, *moved;
	size_t n;
	int c;

	if (!ok(pool && alloc_filled(pool, objs, 8, 1024, &rng) && pool_pages(pool) == 2,
		"eight 1024-byte objects fill two one-page zspages"))
		goto out;
	zpool_map(pool, objs[0].handle, ZPOOL_MM_RO);
	ok(zpool_free(pool, objs[0].handle) == 0 && zpool_free(pool, objs[0].handle) == -EINVAL,
	   "a mapped object frees once (0), then its handle is -EINVAL");
	objs[0].seed = 0;
	zpool_unmap(pool, objs[0].handle);
	for (int i = 1; i < 8; i++) {
		if (i == 3 || i == 4 || i == 5 || i == 6)
			continue;
		zpool_free(pool, objs[i].handle);
		objs[i].seed = 0;
	}
	a3 = zpool_map(pool, objs[3].handle, ZPOOL_MM_RO);
	zpool_unmap(pool, objs[3].handle);
	zpool_map(pool, objs[4].handle, ZPOOL_MM_RO);
	n = zpool_class_stats(pool, cs, MAX_CLASSES);
	c = class_of_size(cs, n, 1024);
	ok(c >= 0 && cs[c].objs_used == 4 && cs[c].pages_freeable == 1,
	   "the class holds 4 objects with one page freeable");
	ok(zpool_compact(pool) == 1 && pool_pages(pool) == 1,
	   "once unmapped, that zspage is not pinned: compaction empties it and frees its page");
	moved = zpool_map(pool, objs[3].handle, ZPOOL_MM_RO);
	if (moved)
		zpool_unmap(pool, objs[3].handle);
	ok(moved && moved != a3, "its last object was the one moved");
	zpool_unmap(pool, objs[4].handle);
	ok(count_damaged(pool, objs, 8) == 0, "the four objects left read back intact");
	for (int i = 3; i < 7; i++)
		zpool_free(pool, objs[i].handle);
	ok(pool_pages(pool) == 0, "freeing them releases the last zspage");
out:
	zpool_destroy(pool);
}

/*
 * Handle ABA: an entry's generation is 24 bits, so it is the spacing of its
 * reuses that keeps a stale handle from coming back.
 */
static void test_freed_entries_are_reused_last(void)
{
	enum {
		LIVE = 64,
		CYCLES = 100000,
		QUARANTINE = 4096
	};
	struct zpool *pool = make_pool(NULL, 0);
	struct rng rng = { 23 };
	struct obj live[LIVE];
	unsigned long stale = 0, h = 0, h2 = 0;
	unsigned int reused = 0, refused = 0, errors = 0;

	if (!ok(pool && alloc_filled(pool, live, LIVE, 300, &rng), "%d objects are live", LIVE))
		goto out;
	ok(!zpool_malloc(pool, 300, &h) && !zpool_free(pool, h) && !zpool_malloc(pool, 300, &h2) &&
		   (uint32_t)h2 != (uint32_t)h,
	   "a just-freed handle's entry is not the next one issued");
	zpool_free(pool, h2);
	stale = h;
	for (unsigned int i = 0; i < CYCLES; i++) {
		if (zpool_malloc(pool, 1 + i % 2000, &h)) {
			errors++;
			break;
		}
		reused += (uint32_t)h == (uint32_t)stale;
		refused += zpool_free(pool, stale) == -EINVAL &&
			   zpool_map(pool, stale, ZPOOL_MM_RO) == NULL;
		errors += zpool_free(pool, h) != 0;
	}
	ok(!errors && refused == CYCLES,
	   "over %d malloc/free cycles the stale handle is refused every time", CYCLES);
	ok(reused <= CYCLES / (QUARANTINE - 1) + 1,
	   "its entry is reused %u times in %d cycles: once in %d frees at most, so a generation wrap "
	   "takes 2^24 times that",
	   reused, CYCLES, QUARANTINE);
	ok(count_damaged(pool, live, LIVE) == 0, "the live objects read back intact");
out:
	zpool_destroy(pool);
}

/* ---- maps racing frees ---- */

enum {
	RACE_OBJS = 256,
	RACE_ROUNDS = 200,
	RACE_SIZE = 200
};

/* Each object's bytes are the pattern of its handle, so a reader needs no seed. */
struct race {
	struct zpool *pool;
	unsigned long handles[RACE_OBJS]; /* atomic */
	bool stop;			  /* atomic */
	unsigned long maps, bad, writer_errors;
};

static void *race_reader(void *arg)
{
	struct race *r = arg;
	unsigned char buf[RACE_SIZE];

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < RACE_OBJS; i++) {
			unsigned long h = __atomic_load_n(&r->handles[i], __ATOMIC_ACQUIRE);
			const unsigned char *p = zpool_map(r->pool, h, ZPOOL_MM_RO);

			if (!p)
				continue;
			memcpy(buf, p, RACE_SIZE);
			zpool_unmap(r->pool, h);
			r->maps++;
			r->bad += !objfill_bytes_match(buf, RACE_SIZE, h);
		}
	}
	return NULL;
}

/* Replace every object RACE_ROUNDS times: free it, then make and fill a new one. */
static void race_write(struct race *r)
{
	for (int round = 0; round < RACE_ROUNDS; round++) {
		for (int i = 0; i < RACE_OBJS; i++) {
			unsigned long h;
			unsigned char *p;

			r->writer_errors += zpool_free(r->pool, r->handles[i]) != 0;
			if (zpool_malloc(r->pool, RACE_SIZE, &h) ||
			    !(p = zpool_map(r->pool, h, ZPOOL_MM_WO))) {
				r->writer_errors++;
				return;
			}
			objfill_bytes(p, RACE_SIZE, h);
			zpool_unmap(r->pool, h);
			__atomic_store_n(&r->handles[i], h, __ATOMIC_RELEASE);
		}
	}
}

static void test_maps_racing_frees(void)
{
	struct race r = { .pool = make_pool(NULL, 0) };
	struct zpool_stats st;
	pthread_t reader;
	bool made = r.pool != NULL;

	for (int i = 0; made && i < RACE_OBJS; i++) {
		unsigned char *p;

		made = !zpool_malloc(r.pool, RACE_SIZE, &r.handles[i]) &&
		       (p = zpool_map(r.pool, r.handles[i], ZPOOL_MM_WO));
		if (made) {
			objfill_bytes(p, RACE_SIZE, r.handles[i]);
			zpool_unmap(r.pool, r.handles[i]);
		}
	}
	if (!ok(made && !pthread_create(&reader, NULL, race_reader, &r),
		"%d objects are made and a reader thread started", RACE_OBJS))
		goto out;
	race_write(&r);
	__atomic_store_n(&r.stop, true, __ATOMIC_RELEASE);
	pthread_join(reader, NULL);
	ok(r.writer_errors == 0, "the writer freed and replaced %d objects without an error",
	   RACE_OBJS * RACE_ROUNDS);
	ok(r.maps > 0 && r.bad == 0,
	   "every one of the reader's %lu maps copied its own object's bytes, however it raced "
	   "the frees (%lu bad)",
	   r.maps, r.bad);
	zpool_stats(r.pool, &st);
	ok(st.objects == RACE_OBJS, "the pool counts the %d live objects (%zu)", RACE_OBJS,
	   st.objects);
	for (int i = 0; i < RACE_OBJS; i++)
		zpool_free(r.pool, r.handles[i]);
	ok(pool_pages(r.pool) == 0 && zpool_compact(r.pool) == 0,
	   "freeing them all empties the pool: no zspage was left pinned");
out:
	zpool_destroy(r.pool);
}

static void test_provider_limit_gives_enomem(void)
{
	struct zpool *pool = make_pool(NULL, 16);
	unsigned long h;
	int err = 0, n = 0;

	while (pool && !(err = zpool_malloc(pool, 3000, &h)))
		n++;
	ok(pool && err == -ENOMEM && n == 20 && pool_pages(pool) == 15,
	   "3-page zspages under a 16-page limit: 20 objects, then -ENOMEM (%d, %d)", n, err);
	zpool_destroy(pool);
}

/* ---- efficiency on real sizes ---- */

static double efficiency(struct zpool *pool)
{
	struct zpool_stats st;

	zpool_stats(pool, &st);
	return st.pages ? (double)st.object_bytes / ((double)st.pages * ZPOOL_PAGE_SIZE) : 0;
}

static void test_efficiency_on_real_sizes(const char *file)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct rng rng = { rng_seed_from_env(0x5eed) };
	unsigned long *handles = NULL;
	unsigned *sizes = NULL;
	size_t n = 0, stored = 0;
	double full, frag, compacted;

	/*
	 * lz4 sizes of every page of @file, as the daemon would store them: the
	 * whole file, because efficiency is a property of a full pool (a sample
	 * leaves every class's last zspage a larger share of the pool).
	 */
	if (pagesizes_load(file, 1, 0, &sizes, &n) || !pool ||
	    !(handles = calloc(n, sizeof(*handles)))) {
		ok(0, "%s: lz4 sizes of its pages are computed", file);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		stored += zpool_malloc(pool, sizes[i], &handles[i]) == 0;
	full = efficiency(pool);
	ok(stored == n && full >= 0.94, "%s: %zu lz4 pages stored at efficiency %.4f (>= 0.94)",
	   file, n, full);
	for (size_t i = 0; i < n; i++)
		if (rng_below(&rng, 2))
			zpool_free(pool, handles[i]);
	frag = efficiency(pool);
	zpool_compact(pool);
	compacted = efficiency(pool);
	ok(compacted >= 0.90,
	   "%s: after freeing a random half (efficiency %.4f), compaction restores %.4f (>= 0.90)",
	   file, frag, compacted);
out:
	free(handles);
	free(sizes);
	zpool_destroy(pool);
}

int main(void)
{
	static const char *const files[] = TESTDATA_FILES;
	char path[4096];

	test_class_table_shape();
	test_every_size_gets_the_smallest_class_that_holds_it();
	test_objects_spanning_pages_round_trip();
	test_compaction_keeps_handles_and_frees_pages();
	test_a_mapped_object_is_not_moved();
	test_class_stats_predict_compaction();
	test_shrink_evicts_the_coldest_zspage_once_each();
	test_a_refusing_callback_leaves_the_objects_intact();
	test_frees_during_reclaim_are_deferred();
	test_stale_and_forged_handles_are_refused();
	test_a_mapped_object_freed_lives_until_unmapped();
	test_a_freed_mapped_object_does_not_pin_its_zspage();
	test_freed_entries_are_reused_last();
	test_maps_racing_frees();
	test_provider_limit_gives_enomem();
	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		if (testdata_path(files[i], path, sizeof(path)))
			tap_skip("no page data at %s", path);
		else
			test_efficiency_on_real_sizes(files[i]);
	}
	return tap_done();
}
