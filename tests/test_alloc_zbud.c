/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_zbud.c - what is particular to zbud: where objects sit
 * in a page, which objects pair up, that reclaim follows allocation order,
 * that handles are checked, that its class statistics count pages by the
 * objects they hold through allocation, free and reclaim, and the ratio it
 * reaches on real compressed sizes.  The behaviour every driver shares is tested in test_alloc_*.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/zpool.h"
#include "tests/pagesizes.h"
#include "tests/tap.h"
#include "tests/testdata.h"

struct evict_log {
	unsigned long handles[16];
	int n;
};

static int evict_and_free(struct zpool *pool, unsigned long handle, void *arg)
{
	struct evict_log *log = arg;

	if (log->n < 16)
		log->handles[log->n++] = handle;
	return zpool_free(pool, handle);
}

static struct zpool *make_pool(struct evict_log *log)
{
	struct zpool_config cfg = { .evict = evict_and_free, .evict_arg = log };
	struct zpool *pool = NULL;

	if (zpool_create("zbud", &cfg, &pool))
		return NULL;
	return pool;
}

static void test_two_objects_share_a_page_first_left_last_right(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned long a = 0, b = 0;
	unsigned char *pa, *pb;

	if (!ok(pool && !zpool_malloc(pool, 1000, &a) && !zpool_malloc(pool, 3000, &b),
		"a 1000-byte and a 3000-byte object are allocated"))
		goto out;
	pa = zpool_map(pool, a, ZPOOL_MM_WO);
	pb = zpool_map(pool, b, ZPOOL_MM_WO);
	ok(zpool_total_size(pool) == ZPOOL_PAGE_SIZE, "they share one page (pool is %zu bytes)",
	   zpool_total_size(pool));
	ok(((uintptr_t)pa & (ZPOOL_PAGE_SIZE - 1)) == 0, "the first object starts the page");
	ok(((uintptr_t)pb & (ZPOOL_PAGE_SIZE - 1)) == ZPOOL_PAGE_SIZE - 3008,
	   "the last object is right-justified to a 64-byte chunk (offset %lu)",
	   (unsigned long)((uintptr_t)pb & (ZPOOL_PAGE_SIZE - 1)));
	memset(pa, 0xaa, 1000);
	memset(pb, 0xbb, 3000);
	zpool_unmap(pool, a);
	zpool_unmap(pool, b);
	pa = zpool_map(pool, a, ZPOOL_MM_RO);
	ok(pa[999] == 0xaa && pa[0] == 0xaa, "neither object overwrites the other");
	zpool_unmap(pool, a);
out:
	zpool_destroy(pool);
}

static void test_objects_that_do_not_fit_together_take_two_pages(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned long a = 0, b = 0, c = 0;

	ok(pool && !zpool_malloc(pool, 2049, &a) && !zpool_malloc(pool, 2049, &b) &&
		   zpool_total_size(pool) == 2 * ZPOOL_PAGE_SIZE,
	   "two objects of 2049 bytes need two pages");
	ok(pool && !zpool_malloc(pool, 1984, &c) && zpool_total_size(pool) == 2 * ZPOOL_PAGE_SIZE,
	   "a 1984-byte object fills the 31 free chunks of one of them");
	zpool_destroy(pool);
}

static void test_a_whole_page_object_fits_and_frees_its_page(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned long a = 0, b = 0;
	unsigned char *p;

	if (!ok(pool && !zpool_malloc(pool, ZPOOL_PAGE_SIZE, &a), "a 4096-byte object allocates"))
		goto out;
	p = zpool_map(pool, a, ZPOOL_MM_WO);
	memset(p, 0x5c, ZPOOL_PAGE_SIZE);
	zpool_unmap(pool, a);
	ok(!zpool_malloc(pool, 64, &b) && zpool_total_size(pool) == 2 * ZPOOL_PAGE_SIZE,
	   "nothing else goes into its page");
	ok(!zpool_free(pool, a) && zpool_total_size(pool) == ZPOOL_PAGE_SIZE,
	   "freeing it returns its page");
out:
	zpool_destroy(pool);
}

static void test_reclaim_takes_the_least_recently_allocated_page(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned long old1 = 0, old2 = 0, young = 0;
	unsigned int reclaimed = 0;

	if (!pool || zpool_malloc(pool, 3000, &old1) || zpool_malloc(pool, 1000, &old2) ||
	    zpool_malloc(pool, 3500, &young)) {
		ok(0, "three objects on two pages are allocated");
		goto out;
	}
	ok(!zpool_shrink(pool, 1, &reclaimed) && reclaimed == 1 && log.n == 2 &&
		   log.handles[0] == old1 && log.handles[1] == old2,
	   "shrink(1) evicts the older page's two objects, first then last (%d evicted)", log.n);
	ok(zpool_total_size(pool) == ZPOOL_PAGE_SIZE, "one page is left");
	ok(!zpool_shrink(pool, 5, &reclaimed) && reclaimed == 1 && log.n == 3 &&
		   log.handles[2] == young,
	   "shrink(5) on one page reclaims it and stops (%u reclaimed)", reclaimed);
	ok(zpool_shrink(pool, 1, &reclaimed) == -EAGAIN && reclaimed == 0,
	   "shrink of an empty pool gives -EAGAIN");
out:
	zpool_destroy(pool);
}

static void test_bad_handles_are_refused(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned long a = 0;

	if (!ok(pool && !zpool_malloc(pool, 100, &a), "an object allocates"))
		goto out;
	ok(zpool_free(pool, a ^ 3) == -EINVAL, "free of the page's other, unused buddy is -EINVAL");
	ok(zpool_free(pool, (a & ~3UL) + (1000UL << 2)) == -EINVAL,
	   "free of a page the pool never had is -EINVAL");
	ok(zpool_free(pool, 0) == -EINVAL, "free of handle 0 is -EINVAL");
	ok(zpool_free(pool, a) == 0 && zpool_free(pool, a) == -EINVAL,
	   "a double free is -EINVAL and leaves the pool whole (%zu bytes)",
	   zpool_total_size(pool));
out:
	zpool_destroy(pool);
}

/* Pages holding one and two objects, from the class statistics. */
static bool fill_is(struct zpool *pool, size_t one, size_t two)
{
	struct zpool_class_stat cs[4];
	size_t n = zpool_class_stats(pool, cs, 4);

	if (n == 2 && cs[0].index == 1 && cs[0].pages_used == one && cs[0].objs_used == one &&
	    cs[0].objs_allocated == 2 * one && cs[1].index == 2 && cs[1].pages_used == two &&
	    cs[1].objs_used == 2 * two && !cs[0].pages_freeable && !cs[1].pages_freeable)
		return true;
	tap_diag("expected %zu pages of one object and %zu of two; saw %zu classes: %zu and %zu",
		 one, two, n, n > 0 ? cs[0].pages_used : 0, n > 1 ? cs[1].pages_used : 0);
	return false;
}

static void test_class_stats_count_pages_by_objects(void)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned long h[5] = { 0 };
	unsigned int reclaimed = 0;

	if (!ok(pool && zpool_class_kind(pool) == ZPOOL_CLASSES_FILL, "zbud reports fill classes"))
		goto out;
	/* 1000 + 3000 share a page; 2000 + 2500 do not: two pages of one. */
	zpool_malloc(pool, 1000, &h[0]);
	zpool_malloc(pool, 3000, &h[1]);
	zpool_malloc(pool, 2000, &h[2]);
	zpool_malloc(pool, 2500, &h[3]);
	ok(fill_is(pool, 2, 1), "after four objects: one page of two, two of one");
	zpool_free(pool, h[1]);
	ok(fill_is(pool, 3, 0), "freeing one of a pair leaves a page of one");
	zpool_free(pool, h[0]);
	ok(fill_is(pool, 2, 0), "freeing the last object of a page takes the page away");
	ok(zpool_shrink(pool, 1, &reclaimed) == 0 && reclaimed == 1 && fill_is(pool, 1, 0),
	   "reclaim of a page takes it off the counts");
out:
	if (pool)
		zpool_destroy(pool);
}

static void test_ratio_on_real_sizes(const char *file)
{
	struct evict_log log = { 0 };
	struct zpool *pool = make_pool(&log);
	unsigned *sizes = NULL;
	size_t n = 0, stored = 0;
	unsigned long h;
	double ratio;

	/* lz4 sizes of every 4th page of @file, as the daemon would store them. */
	if (pagesizes_load(file, 4, 0, &sizes, &n) || !pool) {
		ok(0, "%s: lz4 sizes of sampled pages are computed", file);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		stored += zpool_malloc(pool, sizes[i], &h) == 0;
	ratio = (double)stored * ZPOOL_PAGE_SIZE / (double)zpool_total_size(pool);
	ok(stored == n && ratio >= 1.9, "%s: zbud stores %zu lz4 pages at ratio %.3f (>= 1.9)",
	   file, n, ratio);
out:
	free(sizes);
	zpool_destroy(pool);
}

int main(void)
{
	static const char *const files[] = TESTDATA_FILES;
	char path[4096];

	test_two_objects_share_a_page_first_left_last_right();
	test_objects_that_do_not_fit_together_take_two_pages();
	test_a_whole_page_object_fits_and_frees_its_page();
	test_reclaim_takes_the_least_recently_allocated_page();
	test_bad_handles_are_refused();
	test_class_stats_count_pages_by_objects();
	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		if (testdata_path(files[i], path, sizeof(path)))
			tap_skip("no page data at %s", path);
		else
			test_ratio_on_real_sizes(files[i]);
	}
	return tap_done();
}
