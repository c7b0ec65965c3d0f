/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_z3fold.c - what is particular to z3fold: where first,
 * middle, last and headless objects sit, that every compaction layout of
 * the review keeps the bytes and leaves the free space in one run (checked
 * by an object that fills exactly that run staying in the same page), that
 * a compaction missed because of a mapping happens at unmap, that handles
 * survive compaction, how reclaim walks a page (middle, first, last) and
 * copes with failing callbacks and frees racing it, that stale handles are
 * refused, and the ratio it reaches on real compressed sizes.  Behaviour
 * every driver shares is tested in test_alloc_*.c.
 *
 * Objects are filled from a seed (struct obj), so any map can check them.
 */
#include <errno.h>
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

extern const struct zpool_driver z3fold_driver;

#define PAGE ZPOOL_PAGE_SIZE
#define MAX_OBJS 8

struct obj {
	unsigned long handle;
	size_t size;
	uint64_t seed;
};

/* What the evict callback does, and what it saw. */
struct evictor {
	struct obj *objs[MAX_OBJS]; /* the objects it may be handed */
	int nobjs;
	unsigned long log[32]; /* handles handed to it, in order */
	int nlog;
	int bad_bytes;		    /* handed objects whose bytes were wrong, or unknown handles */
	unsigned long refuse;	    /* return -EBUSY for this handle */
	unsigned long also_free[2]; /* on the first call, free these first... */
	bool other_thread;	    /* ...from another thread */
};

static int obj_new(struct zpool *pool, struct obj *o, size_t size, uint64_t seed)
{
	unsigned char *p;
	int err = zpool_malloc(pool, size, &o->handle);

	o->size = size;
	o->seed = seed;
	if (err)
		return err;
	p = zpool_map(pool, o->handle, ZPOOL_MM_WO);
	if (!p)
		return -EFAULT;
	objfill_bytes(p, o->size, o->seed);
	zpool_unmap(pool, o->handle);
	return 0;
}

static bool obj_intact(struct zpool *pool, const struct obj *o)
{
	unsigned char *p = zpool_map(pool, o->handle, ZPOOL_MM_RO);
	bool good = p && objfill_bytes_match(p, o->size, o->seed);

	if (p)
		zpool_unmap(pool, o->handle);
	return good;
}

/* Offset of an object in its pool page. */
static long offset(struct zpool *pool, unsigned long handle)
{
	unsigned char *p = zpool_map(pool, handle, ZPOOL_MM_RO);

	if (!p)
		return -1;
	zpool_unmap(pool, handle);
	return (long)((uintptr_t)p & (PAGE - 1));
}

static void *free_in_thread(void *arg)
{
	void **a = arg;

	zpool_free(a[0], *(unsigned long *)a[1]);
	return NULL;
}

static void free_racing(struct zpool *pool, unsigned long handle, bool other_thread)
{
	void *args[2] = { pool, &handle };
	pthread_t t;

	if (other_thread && pthread_create(&t, NULL, free_in_thread, args) == 0)
		pthread_join(t, NULL);
	else
		zpool_free(pool, handle);
}

static int evict(struct zpool *pool, unsigned long handle, void *arg)
{
	struct evictor *ev = arg;
	struct obj *o = NULL;

	if (ev->nlog == 0)
		for (int i = 0; i < 2; i++)
			if (ev->also_free[i])
				free_racing(pool, ev->also_free[i], ev->other_thread);
	if (ev->nlog < 32)
		ev->log[ev->nlog++] = handle;
	for (int i = 0; i < ev->nobjs; i++)
		if (ev->objs[i]->handle == handle)
			o = ev->objs[i];
	if (!o || !obj_intact(pool, o))
		ev->bad_bytes++;
	if (handle == ev->refuse)
		return -EBUSY;
	return zpool_free(pool, handle);
}

static struct zpool *make_pool(struct evictor *ev, size_t max_pages)
{
	struct zpool_config cfg = { .evict = evict, .evict_arg = ev, .max_pages = max_pages };
	struct zpool *pool = NULL;

	if (zpool_create_with(&z3fold_driver, &cfg, &pool))
		return NULL;
	return pool;
}

/* Pages by objects held, from the class statistics: [0] headless, [1..3]. */
static bool fill_is(struct zpool *pool, const size_t want[4])
{
	struct zpool_class_stat cs[8];
	size_t n = zpool_class_stats(pool, cs, 8);
	bool same = n == 4;

	for (size_t k = 0; same && k < 4; k++)
		same = cs[k].index == k && cs[k].pages_used == want[k] &&
		       cs[k].objs_used == want[k] * (k ? k : 1) && !cs[k].pages_freeable;
	if (!same)
		tap_diag("expected %zu headless and %zu/%zu/%zu pages of 1/2/3; saw %zu classes: "
			 "%zu %zu %zu %zu",
			 want[0], want[1], want[2], want[3], n, n > 0 ? cs[0].pages_used : 0,
			 n > 1 ? cs[1].pages_used : 0, n > 2 ? cs[2].pages_used : 0,
			 n > 3 ? cs[3].pages_used : 0);
	return same;
}

static void test_class_stats_count_pages_by_objects(void)
{
	struct evictor ev = { 0 };
	struct zpool *pool = make_pool(&ev, 0);
	unsigned long h[5] = { 0 };

	if (!ok(pool && zpool_class_kind(pool) == ZPOOL_CLASSES_FILL,
		"z3fold reports fill classes"))
		goto out;
	for (int i = 0; i < 3; i++)
		zpool_malloc(pool, 1000, &h[i]);
	zpool_malloc(pool, 4096, &h[3]);
	zpool_malloc(pool, 1000, &h[4]);
	ok(fill_is(pool, (const size_t[4]){ 1, 1, 0, 1 }),
	   "three small objects fill a page, a page-sized one is headless, the fifth starts a page");
	zpool_free(pool, h[1]);
	ok(fill_is(pool, (const size_t[4]){ 1, 1, 1, 0 }), "a free moves a page from 3 to 2");
	zpool_free(pool, h[3]);
	zpool_free(pool, h[4]);
	ok(fill_is(pool, (const size_t[4]){ 0, 0, 1, 0 }),
	   "freeing a headless object and a page's last takes both pages off the counts");
out:
	if (pool)
		zpool_destroy(pool);
}

/* a, b, c of 1000 bytes in one page: a first, b last, c middle. */
static bool three_in_a_page(struct zpool *pool, struct obj *o)
{
	return pool && !obj_new(pool, &o[0], 1000, 1) && !obj_new(pool, &o[1], 1000, 2) &&
	       !obj_new(pool, &o[2], 1000, 3) && zpool_total_size(pool) == PAGE;
}

/* Whether an object of exactly the page's free chunks fits without a new page. */
static bool free_space_is_one_run(struct zpool *pool, size_t run, long at)
{
	struct obj fit;
	bool good = !obj_new(pool, &fit, run, 99) && zpool_total_size(pool) == PAGE &&
		    offset(pool, fit.handle) == at;

	if (!good)
		tap_diag("a %zu-byte object: pool %zu bytes, offset %ld, expected one page, %ld",
			 run, zpool_total_size(pool), offset(pool, fit.handle), at);
	return good;
}

static void test_first_last_then_middle_placement(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj o[3], d;

	if (!ok(three_in_a_page(pool, o), "three 1000-byte objects share one page"))
		goto out;
	ok(offset(pool, o[0].handle) == 0, "the first object starts the page");
	ok(offset(pool, o[1].handle) == PAGE - 1008,
	   "the second is right-justified to a 16-byte chunk (offset %ld)",
	   offset(pool, o[1].handle));
	ok(offset(pool, o[2].handle) == 1008, "the third sits in the middle, after the first");
	ok((o[0].handle & 7) == 1 && (o[2].handle & 7) == 2 && (o[1].handle & 7) == 3,
	   "their handles name the first, middle and last slots");
	ok(obj_intact(pool, &o[0]) && obj_intact(pool, &o[1]) && obj_intact(pool, &o[2]),
	   "none overwrites another");
	ok(!obj_new(pool, &d, 16, 4) && zpool_total_size(pool) == 2 * PAGE,
	   "a fourth object, however small, never joins a page of three");
out:
	zpool_destroy(pool);
}

static void test_headless_pages(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj big, small, most, tail;

	if (!ok(pool && !obj_new(pool, &big, PAGE, 4), "a 4096-byte object allocates"))
		goto out;
	ok((big.handle & 7) == 4 && offset(pool, big.handle) == 0,
	   "it is headless: the whole page, kind 4 in its handle");
	ok(!obj_new(pool, &small, 16, 5) && zpool_total_size(pool) == 2 * PAGE,
	   "nothing else goes into a headless page");
	ok(!obj_new(pool, &most, PAGE - 16 - 16, 6) && zpool_total_size(pool) == 2 * PAGE &&
		   (most.handle & 7) != 4,
	   "a 4064-byte object shares the 16-byte object's page, with a header slot");
	ok(!obj_new(pool, &tail, PAGE - 16, 7) && (tail.handle & 7) == 1 &&
		   zpool_total_size(pool) == 3 * PAGE,
	   "a 4080-byte object still gets a slotted page of its own");
	ok(obj_intact(pool, &big) && obj_intact(pool, &most) && obj_intact(pool, &small),
	   "their bytes are intact");
	ok(!zpool_free(pool, big.handle) && zpool_total_size(pool) == 2 * PAGE,
	   "freeing the headless object returns its page");
out:
	zpool_destroy(pool);
}

static void test_objects_that_do_not_fit_together_take_two_pages(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj a, b, c;

	ok(pool && !obj_new(pool, &a, 2049, 1) && !obj_new(pool, &b, 2049, 2) &&
		   zpool_total_size(pool) == 2 * PAGE,
	   "two objects of 2049 bytes need two pages");
	ok(pool && !obj_new(pool, &c, 2032, 3) && zpool_total_size(pool) == 2 * PAGE,
	   "a 2032-byte object fills the 127 free chunks of one of them");
	zpool_destroy(pool);
}

static void test_compact_middle_alone(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj o[3];

	if (!ok(three_in_a_page(pool, o), "middle alone: three objects share a page"))
		goto out;
	zpool_free(pool, o[0].handle);
	zpool_free(pool, o[1].handle);
	ok(offset(pool, o[2].handle) == 0, "the middle object left alone moves to the page start");
	ok(obj_intact(pool, &o[2]), "its handle still maps to its bytes");
	ok(free_space_is_one_run(pool, PAGE - 1008, 1008), "the rest of the page is one free run");
	ok(obj_intact(pool, &o[2]), "and it is intact next to the new object");
out:
	zpool_destroy(pool);
}

static void test_compact_middle_and_last(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj o[3];

	if (!ok(three_in_a_page(pool, o), "middle+last: three objects share a page"))
		goto out;
	zpool_free(pool, o[0].handle);
	ok(offset(pool, o[2].handle) == PAGE - 2 * 1008,
	   "with the first freed, the middle slides against the last (offset %ld)",
	   offset(pool, o[2].handle));
	ok(obj_intact(pool, &o[2]) && obj_intact(pool, &o[1]), "both keep their bytes");
	ok(free_space_is_one_run(pool, PAGE - 2 * 1008, 0),
	   "the free space is one run at the start");
out:
	zpool_destroy(pool);
}

static void test_compact_first_and_middle(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj o[3], d;

	if (!ok(three_in_a_page(pool, o), "first+middle: three objects share a page"))
		goto out;
	zpool_free(pool, o[0].handle);
	if (!ok(!obj_new(pool, &d, 500, 4) && offset(pool, d.handle) == 0,
		"a new 500-byte object takes the freed start of the page"))
		goto out;
	zpool_free(pool, o[1].handle);
	ok(offset(pool, o[2].handle) == 512,
	   "with the last freed, the middle slides against the first (offset %ld)",
	   offset(pool, o[2].handle));
	ok(obj_intact(pool, &o[2]) && obj_intact(pool, &d), "both keep their bytes");
	ok(free_space_is_one_run(pool, PAGE - 512 - 1008, 1520),
	   "the free space is one run at the end");
out:
	zpool_destroy(pool);
}

static void test_compaction_missed_while_mapped_happens_at_unmap(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj o[3];
	unsigned char *held;

	if (!ok(three_in_a_page(pool, o), "deferred: three objects share a page"))
		goto out;
	held = zpool_map(pool, o[2].handle, ZPOOL_MM_RO);
	zpool_free(pool, o[0].handle);
	zpool_free(pool, o[1].handle);
	ok(offset(pool, o[2].handle) == 1008 && objfill_bytes_match(held, o[2].size, o[2].seed),
	   "a mapped middle object does not move when its neighbours go");
	zpool_unmap(pool, o[2].handle);
	ok(offset(pool, o[2].handle) == 0, "its unmap does the missed compaction");
	ok(obj_intact(pool, &o[2]), "its bytes moved with it");
	ok(free_space_is_one_run(pool, PAGE - 1008, 1008), "and the free space is one run");
out:
	zpool_destroy(pool);
}

/* Old page: a (first), b (last), c (middle); young page: d alone. */
static bool two_pages(struct zpool *pool, struct evictor *ev, struct obj *o)
{
	bool good = three_in_a_page(pool, o) && !obj_new(pool, &o[3], 3000, 4) &&
		    zpool_total_size(pool) == 2 * PAGE;

	for (int i = 0; i < 4; i++)
		ev->objs[i] = &o[i];
	ev->nobjs = 4;
	return good;
}

static void test_reclaim_evicts_middle_first_last_once(void)
{
	struct evictor ev = { 0 };
	struct zpool *pool = make_pool(&ev, 0);
	struct obj o[4];
	struct zpool_stats st;
	unsigned int n = 0;
	int ret;

	if (!ok(pool && two_pages(pool, &ev, o), "reclaim: two pages are filled"))
		goto out;
	ret = zpool_shrink(pool, 1, &n);
	ok(!ret && n == 1 && zpool_total_size(pool) == PAGE,
	   "shrink(1) frees the least recently allocated page (%d, %u reclaimed)", ret, n);
	ok(ev.nlog == 3 && ev.log[0] == o[2].handle && ev.log[1] == o[0].handle &&
		   ev.log[2] == o[1].handle,
	   "its objects are evicted once each: middle, first, last (%d calls)", ev.nlog);
	ok(ev.bad_bytes == 0, "each evicted object held its bytes");
	zpool_stats(pool, &st);
	ok(st.evicted == 3 && st.reclaimed_pages == 1 && st.objects == 1 && st.pages == 1,
	   "stats: 3 evicted, 1 page reclaimed, 1 object on 1 page left");
	ok(obj_intact(pool, &o[3]), "the young page's object is untouched");
out:
	zpool_destroy(pool);
}

static void test_refused_eviction_leaves_the_page_on_the_lru(void)
{
	struct evictor ev = { 0 };
	struct zpool *pool = make_pool(&ev, 0);
	struct obj o[4];
	struct zpool_stats st;
	unsigned int n = 0;
	int ret;

	if (!ok(pool && two_pages(pool, &ev, o), "refusal: two pages are filled"))
		goto out;
	ev.refuse = o[0].handle;
	ret = zpool_shrink(pool, 1, &n);
	ok(!ret && n == 1 && ev.nlog == 3 && ev.log[2] == o[3].handle,
	   "when the old page's first object is refused, the next page is reclaimed");
	ok(obj_intact(pool, &o[0]) && obj_intact(pool, &o[1]),
	   "the refused object and the one after it keep their bytes");
	ok(zpool_free(pool, o[2].handle) == -EINVAL, "the middle evicted before it is gone");
	zpool_stats(pool, &st);
	ok(st.evict_failures == 1 && st.pages == 1 && st.objects == 2,
	   "stats: one failure, one page with two objects");
	ret = zpool_shrink(pool, 1, &n);
	ok(ret == -EAGAIN && n == 0 && obj_intact(pool, &o[0]),
	   "refused on every retry, shrink gives -EAGAIN and the object stays");
	ev.refuse = 0;
	ev.nlog = 0;
	ret = zpool_shrink(pool, 1, &n);
	ok(!ret && n == 1 && ev.nlog == 2 && zpool_total_size(pool) == 0,
	   "the page stayed on the LRU: a willing callback then empties it");
	ok(ev.bad_bytes == 0, "every object handed over held its bytes");
out:
	zpool_destroy(pool);
}

/* The callback's first call frees @k other objects of the page, from @thread or itself. */
static void free_during_reclaim(int k, bool thread)
{
	struct evictor ev = { 0 };
	struct zpool *pool = make_pool(&ev, 0);
	struct obj o[4];
	struct zpool_stats st;
	const char *who = thread ? "another thread" : "the callback";
	unsigned int n = 0;
	int ret;

	if (!ok(pool && two_pages(pool, &ev, o), "free racing reclaim: two pages are filled"))
		goto out;
	ev.also_free[0] = o[1].handle;
	ev.also_free[1] = k > 1 ? o[0].handle : 0;
	ev.other_thread = thread;
	ret = zpool_shrink(pool, 1, &n);
	ok(!ret && n == 1 && zpool_total_size(pool) == PAGE,
	   "%s freeing %d object(s) of the page under reclaim: the page is released once", who, k);
	ok(ev.nlog == 3 - k && ev.log[0] == o[2].handle && (k > 1 || ev.log[1] == o[0].handle),
	   "the callback is never handed an object freed meanwhile (%d calls)", ev.nlog);
	ok(zpool_free(pool, o[1].handle) == -EINVAL && zpool_free(pool, o[0].handle) == -EINVAL,
	   "each of the page's objects was freed exactly once");
	zpool_stats(pool, &st);
	ok(st.pages == 1 && st.objects == 1 && st.reclaimed_pages == 1 && st.evicted == 3u - k,
	   "stats agree: 1 page, 1 object, 1 reclaimed, %llu evicted", st.evicted);
	ok(ev.bad_bytes == 0 && obj_intact(pool, &o[3]), "no object's bytes were harmed");
out:
	zpool_destroy(pool);
}

static void test_bad_handles_are_refused(void)
{
	struct zpool *pool = make_pool(NULL, 0);
	struct obj a, b;

	if (!ok(pool && !obj_new(pool, &a, 100, 1), "an object allocates"))
		goto out;
	ok(zpool_free(pool, 0) == -EINVAL, "free of handle 0 is -EINVAL");
	ok(zpool_free(pool, (a.handle & ~7UL) | 2) == -EINVAL,
	   "free of the page's unused middle slot is -EINVAL");
	ok(zpool_free(pool, (a.handle & ~7UL) | 4) == -EINVAL,
	   "free of a slotted page as headless is -EINVAL");
	ok(zpool_free(pool, a.handle + (1000UL << 3)) == -EINVAL,
	   "free of a page the pool never had is -EINVAL");
	ok(zpool_free(pool, a.handle) == 0 && zpool_free(pool, a.handle) == -EINVAL,
	   "a double free is -EINVAL");
	ok(!obj_new(pool, &b, 100, 2) &&
		   (b.handle & ((1UL << 35) - 1)) == (a.handle & ((1UL << 35) - 1)),
	   "a new object reuses the freed slot");
	ok(zpool_free(pool, a.handle) == -EINVAL && zpool_map(pool, a.handle, ZPOOL_MM_RO) == NULL,
	   "the stale handle to the reused slot is refused by free and map");
	ok(obj_intact(pool, &b) && zpool_total_size(pool) == PAGE, "and the new object is intact");
out:
	zpool_destroy(pool);
}

static void test_provider_limit_gives_enomem(void)
{
	struct zpool *pool = make_pool(NULL, 2);
	struct obj a, b, c;

	ok(pool && !obj_new(pool, &a, PAGE, 1) && !obj_new(pool, &b, 3000, 2) &&
		   obj_new(pool, &c, 3000, 3) == -ENOMEM,
	   "at the 2-page limit a third page gives -ENOMEM");
	ok(pool && !obj_new(pool, &c, 1000, 3) && zpool_total_size(pool) == 2 * PAGE,
	   "an object that fits an existing page still allocates");
	zpool_destroy(pool);
}

#define CHURN_OBJS 600
#define CHURN_OPS 60000

/* Random malloc/free/map with some objects held mapped across frees; bytes checked. */
static void test_random_churn_keeps_every_object(void)
{
	static struct obj objs[CHURN_OBJS];
	static bool live[CHURN_OBJS];
	struct zpool *pool = make_pool(NULL, 0);
	struct rng r = { rng_seed_from_env(0x23f01d) };
	struct zpool_stats st;
	int bad = 0, pinned = -1;
	size_t nlive = 0;

	tap_diag("churn seed 0x%llx", (unsigned long long)r.state);
	memset(live, 0, sizeof(live));
	for (int op = 0; pool && op < CHURN_OPS; op++) {
		int i = (int)rng_below(&r, CHURN_OBJS);
		size_t size = rng_below(&r, 4) ? 1 + rng_below(&r, 2600) : 1 + rng_below(&r, PAGE);

		if (!live[i]) {
			bad += obj_new(pool, &objs[i], size, rng_next(&r)) != 0;
			live[i] = true;
			nlive++;
		} else if (i == pinned) {
			unsigned char *p = zpool_map(pool, objs[i].handle, ZPOOL_MM_RO);

			bad += !p || !objfill_bytes_match(p, objs[i].size, objs[i].seed);
			if (p)
				zpool_unmap(pool, objs[i].handle);
			zpool_unmap(pool, objs[i].handle);
			pinned = -1;
		} else if (rng_below(&r, 3) == 0) {
			bad += !obj_intact(pool, &objs[i]);
		} else if (pinned < 0 && rng_below(&r, 4) == 0) {
			bad += !zpool_map(pool, objs[i].handle, ZPOOL_MM_RO);
			pinned = i;
		} else {
			bad += !obj_intact(pool, &objs[i]) || zpool_free(pool, objs[i].handle);
			live[i] = false;
			nlive--;
		}
	}
	for (int i = 0; pool && i < CHURN_OBJS; i++)
		if (live[i])
			bad += !obj_intact(pool, &objs[i]);
	zpool_stats(pool, &st);
	ok(pool && bad == 0 && st.objects == nlive && st.pages * 3 >= nlive,
	   "%d random operations keep every object's bytes (%d bad, %zu live on %zu pages)",
	   CHURN_OPS, bad, nlive, st.pages);
	if (pinned >= 0)
		zpool_unmap(pool, objs[pinned].handle);
	for (int i = 0; pool && i < CHURN_OBJS; i++)
		if (live[i])
			bad += zpool_free(pool, objs[i].handle) != 0;
	ok(pool && bad == 0 && zpool_total_size(pool) == 0, "freeing them all empties the pool");
	zpool_destroy(pool);
}

static void test_ratio_on_real_sizes(const char *file, double target)
{
	struct zpool *pool = make_pool(NULL, 0);
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
	ratio = (double)stored * PAGE / (double)zpool_total_size(pool);
	ok(stored == n && ratio >= target,
	   "%s: z3fold stores %zu lz4 pages at ratio %.3f (>= %.2f)", file, n, ratio, target);
out:
	free(sizes);
	zpool_destroy(pool);
}

int main(void)
{
	static const char *const files[] = TESTDATA_FILES;
	/* The Done-when figures, in TESTDATA_FILES order: redis, python. */
	static const double targets[TESTDATA_NFILES] = { 2.05, 2.74 };
	char path[4096];

	test_first_last_then_middle_placement();
	test_headless_pages();
	test_objects_that_do_not_fit_together_take_two_pages();
	test_compact_middle_alone();
	test_compact_middle_and_last();
	test_compact_first_and_middle();
	test_compaction_missed_while_mapped_happens_at_unmap();
	test_reclaim_evicts_middle_first_last_once();
	test_refused_eviction_leaves_the_page_on_the_lru();
	free_during_reclaim(1, false);
	free_during_reclaim(2, false);
	free_during_reclaim(1, true);
	free_during_reclaim(2, true);
	test_bad_handles_are_refused();
	test_class_stats_count_pages_by_objects();
	test_provider_limit_gives_enomem();
	test_random_churn_keeps_every_object();
	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		if (testdata_path(files[i], path, sizeof(path)))
			tap_skip("no page data at %s", path);
		else
			test_ratio_on_real_sizes(files[i], targets[i]);
	}
	return tap_done();
}
