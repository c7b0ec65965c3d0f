/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_reclaim.c - LRU reclaim through the evict callback, for
 * every registered pool driver (the zpool contract of alloc/zpool.h).
 *
 * A struct rtest keeps every object the test allocated (size, seed of its
 * bytes, checksum, state, how often it was evicted); the evict callback
 * finds its object there by handle and acts as the test's current mode
 * says: evict (verify, mark evicted, free), refuse, refuse one object, free
 * a neighbour on the same page first, or allocate while the page is under
 * reclaim.  What is checked:
 *
 *  - Draining a pool page by page: every object handed to the callback is
 *    live and holds its bytes, each is evicted exactly once, each shrink
 *    frees at least the pages asked (less than one unit more: zpool.h) and
 *    shrinks the pool by exactly the pages it reports, the statistics agree.
 *  - LRU order: whole-page objects are evicted oldest first, and a page that
 *    takes a new object moves to the hot end.
 *  - A refusing callback leaves the object intact and the page on the LRU
 *    (a later shrink with a willing callback evicts it); a page refused does
 *    not stop reclaim of the next one (the retries of the threads).
 *  - Frees during reclaim: the callback frees another object of the page
 *    under reclaim (as its owner would, racing); that object is never handed
 *    to the callback and the page is released once, by one page's worth.
 *  - A page under reclaim receives no new object.
 *  - Without an evict callback shrink returns -EOPNOTSUPP.
 *
 * "Same page" is judged by the 4 KiB page of the mapped address, which any
 * driver's direct mapping reveals; a driver that maps through a copy buffer
 * would make those checks report that no neighbour was found.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "alloc/pages.h"
#include "alloc/zpool.h"
#include "tests/objfill.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MAX_OBJS 1024
#define DRAIN_OBJS 400
#define SMALL_SIZE 1000
#define MAX_DIAGS 5

enum obj_state {
	OBJ_NONE,
	OBJ_LIVE,
	OBJ_FREED,
	OBJ_EVICTED,
};

enum evict_mode {
	EVICT_OK,	       /* verify, take, free */
	EVICT_REFUSE,	       /* return -EBUSY for every object */
	EVICT_REFUSE_ONE,      /* refuse the object refuse_id, evict the others */
	EVICT_FREE_NEIGHBOUR,  /* first call: free a live object of the same page, then evict */
	EVICT_FREE_AND_REFUSE, /* first call: free a live object of the same page, then refuse */
	EVICT_MALLOC,	       /* first call: allocate an object, then evict */
};

struct robj {
	unsigned long handle;
	uint64_t seed, sum;
	uint32_t size;
	enum obj_state state;
	unsigned int evictions;
};

struct rtest {
	const char *driver;
	struct zpool *pool;
	struct robj objs[MAX_OBJS];
	size_t nobjs;
	struct rng rng;
	enum evict_mode mode;
	size_t refuse_id;
	unsigned long calls, refusals, bad_calls, bad_bytes, bad_frees, shrink_diags;
	long first_id;	   /* the object of the first call since the mode was set, or -1 */
	long neighbour_id; /* the object the callback freed, or -1 */
	long new_id;	   /* the object the callback allocated, or -1 */
	bool new_in_reclaimed_page;
};

static uintptr_t page_of(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)(ZPOOL_PAGE_SIZE - 1);
}

/* The 4 KiB page an object's mapping starts in. */
static uintptr_t obj_page(struct rtest *t, const struct robj *o)
{
	void *p = zpool_map(t->pool, o->handle, ZPOOL_MM_RO);
	uintptr_t page = page_of(p);

	if (p)
		zpool_unmap(t->pool, o->handle);
	return page;
}

static bool obj_intact(struct rtest *t, const struct robj *o)
{
	const void *p = zpool_map(t->pool, o->handle, ZPOOL_MM_RO);
	bool good = p && objfill_checksum(p, o->size) == o->sum;

	if (p)
		zpool_unmap(t->pool, o->handle);
	return good;
}

static long obj_add(struct rtest *t, uint32_t size)
{
	struct robj *o;
	void *p;

	if (t->nobjs == MAX_OBJS)
		return -1;
	o = &t->objs[t->nobjs];
	*o = (struct robj){ .size = size, .seed = rng_next(&t->rng) };
	if (zpool_malloc(t->pool, size, &o->handle))
		return -1;
	p = zpool_map(t->pool, o->handle, ZPOOL_MM_WO);
	if (!p)
		return -1;
	objfill_words(p, size, o->seed);
	o->sum = objfill_checksum(p, size);
	zpool_unmap(t->pool, o->handle);
	o->state = OBJ_LIVE;
	return (long)t->nobjs++;
}

static long find_live(struct rtest *t, unsigned long handle)
{
	for (size_t i = 0; i < t->nobjs; i++)
		if (t->objs[i].state == OBJ_LIVE && t->objs[i].handle == handle)
			return (long)i;
	return -1;
}

static size_t count_live(struct rtest *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nobjs; i++)
		n += t->objs[i].state == OBJ_LIVE;
	return n;
}

static size_t count_intact(struct rtest *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->nobjs; i++)
		n += t->objs[i].state == OBJ_LIVE && obj_intact(t, &t->objs[i]);
	return n;
}

/* Another live object whose mapping starts in the same 4 KiB page as @id's, or -1. */
static long same_page_neighbour(struct rtest *t, long id)
{
	uintptr_t page = obj_page(t, &t->objs[id]);

	for (size_t i = 0; i < t->nobjs; i++)
		if ((long)i != id && t->objs[i].state == OBJ_LIVE &&
		    obj_page(t, &t->objs[i]) == page)
			return (long)i;
	return -1;
}

static void free_obj(struct rtest *t, long id, enum obj_state to)
{
	int err = zpool_free(t->pool, t->objs[id].handle);

	if (err && t->bad_frees++ < MAX_DIAGS)
		tap_diag("%s: free of live object %ld (handle %#lx): expected 0, saw %d", t->driver,
			 id, t->objs[id].handle, err);
	t->objs[id].state = to;
}

/* The first call of a shrink does the mode's extra step; true when the object is to be refused. */
static bool first_call(struct rtest *t, long id)
{
	if (t->first_id >= 0)
		return false;
	t->first_id = id;
	if (t->mode == EVICT_FREE_NEIGHBOUR || t->mode == EVICT_FREE_AND_REFUSE) {
		t->neighbour_id = same_page_neighbour(t, id);
		if (t->neighbour_id >= 0)
			free_obj(t, t->neighbour_id, OBJ_FREED);
		return t->mode == EVICT_FREE_AND_REFUSE;
	}
	if (t->mode == EVICT_MALLOC) {
		uintptr_t page = obj_page(t, &t->objs[id]);

		t->new_id = obj_add(t, t->objs[id].size);
		t->new_in_reclaimed_page = t->new_id >= 0 &&
					   obj_page(t, &t->objs[t->new_id]) == page;
	}
	return false;
}

static bool refuses(struct rtest *t, long id)
{
	if (first_call(t, id))
		return true;
	return t->mode == EVICT_REFUSE ||
	       (t->mode == EVICT_REFUSE_ONE && (size_t)id == t->refuse_id);
}

static int evict_cb(struct zpool *pool, unsigned long handle, void *arg)
{
	struct rtest *t = arg;
	long id = find_live(t, handle);

	t->calls++;
	if (id < 0 || pool != t->pool) {
		if (t->bad_calls++ < MAX_DIAGS)
			tap_diag(
				"%s: evict callback: expected a live handle of this pool, saw %#lx "
				"(%s)",
				t->driver, handle, id < 0 ? "not live" : "another pool");
		return -ENOENT;
	}
	if (refuses(t, id)) {
		t->refusals++;
		return -EBUSY;
	}
	if (!obj_intact(t, &t->objs[id]) && t->bad_bytes++ < MAX_DIAGS)
		tap_diag("%s: evict callback: object %ld (handle %#lx, %u bytes) does not hold its "
			 "bytes",
			 t->driver, id, handle, t->objs[id].size);
	t->objs[id].evictions++;
	free_obj(t, id, OBJ_EVICTED);
	return 0;
}

static void set_mode(struct rtest *t, enum evict_mode mode)
{
	t->mode = mode;
	t->first_id = t->neighbour_id = t->new_id = -1;
	t->new_in_reclaimed_page = false;
}

static struct rtest *rtest_new(const char *driver, bool with_callback)
{
	struct rtest *t = calloc(1, sizeof(*t));
	struct zpool_config cfg = { .evict = with_callback ? evict_cb : NULL, .evict_arg = t };
	int err;

	if (!t)
		return NULL;
	t->driver = driver;
	t->rng.state = rng_seed_from_env(0x7ec1a1);
	set_mode(t, EVICT_OK);
	err = zpool_create(driver, &cfg, &t->pool);
	if (err) {
		tap_diag("%s: zpool_create: expected 0, saw %d", driver, err);
		free(t);
		return NULL;
	}
	return t;
}

static void rtest_free(struct rtest *t)
{
	if (!t)
		return;
	zpool_destroy(t->pool);
	free(t);
}

static struct zpool_stats stats(struct rtest *t)
{
	struct zpool_stats st;

	zpool_stats(t->pool, &st);
	return st;
}

static bool callbacks_clean(struct rtest *t)
{
	return t->bad_calls == 0 && t->bad_bytes == 0 && t->bad_frees == 0;
}

/*
 * One shrink of @want pages with a willing callback, as alloc/zpool.h has it:
 * true when it returned 0 having freed at least @want pages, past @want by
 * less than one unit (a unit is at most one provider run, ZPP_MAX_RUN pages),
 * and the pool shrank by exactly the pages it reported.  *@got: that count.
 */
static bool shrink_ok(struct rtest *t, unsigned int want, unsigned int *got)
{
	size_t before = zpool_total_size(t->pool), after;
	int err;

	*got = ~0u;
	err = zpool_shrink(t->pool, want, got);
	after = zpool_total_size(t->pool);
	if (err == 0 && *got >= want && *got < want + ZPP_MAX_RUN &&
	    before - after == (size_t)*got * ZPOOL_PAGE_SIZE)
		return true;
	if (t->shrink_diags++ >= MAX_DIAGS)
		return false;
	tap_diag("%s: shrink(%u): expected 0, %u..%u reclaimed and the pool smaller by as many "
		 "pages; saw %d, %u reclaimed, pool %zu -> %zu bytes",
		 t->driver, want, want, want + ZPP_MAX_RUN - 1, err, *got, before, after);
	return false;
}

/* Drain a pool of mixed sizes one page at a time, then several at a time. */
static void test_drain(const char *driver)
{
	struct rtest *t = rtest_new(driver, true);
	size_t pages0, shrinks = 0, bad_shrinks = 0, once = 0, reclaimed = 0;
	unsigned int got = ~0u;
	struct zpool_stats st;
	int err;

	if (!ok(t != NULL, "%s: a pool with an evict callback can be made", driver))
		return;
	for (size_t i = 0; i < DRAIN_OBJS; i++) {
		uint32_t size = i % 10 == 9 ? ZPOOL_MAX_OBJECT :
					      1 + (uint32_t)rng_below(&t->rng, 3000);

		if (obj_add(t, size) < 0)
			break;
	}
	pages0 = zpool_total_size(t->pool) / ZPOOL_PAGE_SIZE;
	ok(t->nobjs == DRAIN_OBJS, "%s: %d objects of 1..4096 bytes take %zu pages", driver,
	   DRAIN_OBJS, pages0);
	err = zpool_shrink(t->pool, 0, &got);
	ok(err == 0 && got == 0 && t->calls == 0,
	   "%s: shrink of 0 pages returns 0 and evicts nothing (saw %d, %u, %lu calls)", driver,
	   err, got, t->calls);
	bad_shrinks += !shrink_ok(t, 5, &got);
	reclaimed += got;
	shrinks++;
	while (zpool_total_size(t->pool) && shrinks < pages0 + 10) {
		bad_shrinks += !shrink_ok(t, 1, &got);
		reclaimed += got;
		shrinks++;
	}
	ok(bad_shrinks == 0 && reclaimed == pages0,
	   "%s: each of %zu shrinks freed at least the pages asked, less than a unit more, and "
	   "the pool shrank by what it reported (%zu of %zu pages)",
	   driver, shrinks, reclaimed, pages0);
	ok(callbacks_clean(t),
	   "%s: every object handed to the callback was live and held its "
	   "bytes (%lu calls; %lu not live, %lu wrong bytes, %lu bad frees)",
	   driver, t->calls, t->bad_calls, t->bad_bytes, t->bad_frees);
	for (size_t i = 0; i < t->nobjs; i++)
		once += t->objs[i].evictions == 1;
	ok(once == t->nobjs, "%s: each of %zu objects was evicted exactly once (%zu were)", driver,
	   t->nobjs, once);
	st = stats(t);
	ok(st.pages == 0 && st.objects == 0 && st.evicted == t->nobjs &&
		   st.reclaimed_pages == pages0 && st.evict_failures == 0,
	   "%s: stats say %zu evicted and %zu pages reclaimed (saw pages %zu objects %zu evicted "
	   "%llu reclaimed %llu failures %llu)",
	   driver, t->nobjs, pages0, st.pages, st.objects, st.evicted, st.reclaimed_pages,
	   st.evict_failures);
	got = ~0u;
	err = zpool_shrink(t->pool, 1, &got);
	ok(err == -EAGAIN && got == 0,
	   "%s: shrink of an empty pool reclaims nothing and returns -EAGAIN (saw %d, %u)", driver,
	   err, got);
	rtest_free(t);
}

/* Whole-page objects leave in allocation order. */
static void test_lru_order(const char *driver)
{
	struct rtest *t = rtest_new(driver, true);
	size_t in_order = 0;
	unsigned int got;

	if (!t)
		return;
	for (int i = 0; i < 8; i++)
		obj_add(t, ZPOOL_MAX_OBJECT);
	for (size_t i = 0; i < 8; i++) {
		set_mode(t, EVICT_OK);
		if (!shrink_ok(t, 1, &got))
			break;
		if (t->first_id == (long)i && t->objs[i].state == OBJ_EVICTED)
			in_order++;
		else
			tap_diag("%s: shrink %zu: expected object %zu (the oldest), saw %ld",
				 driver, i, i, t->first_id);
	}
	ok(t->nobjs == 8 && in_order == 8,
	   "%s: whole-page objects are evicted oldest first (%zu of 8 in order)", driver, in_order);
	rtest_free(t);
}

/* A page that takes a new object becomes the most recently used. */
static void test_lru_touch(const char *driver)
{
	struct rtest *t = rtest_new(driver, true);
	unsigned int got;
	long a, b, c;

	if (!t)
		return;
	a = obj_add(t, SMALL_SIZE);
	b = obj_add(t, ZPOOL_MAX_OBJECT);
	c = obj_add(t, SMALL_SIZE);
	if (a < 0 || b < 0 || c < 0 || obj_page(t, &t->objs[a]) != obj_page(t, &t->objs[c])) {
		tap_skip("%s: the second small object did not share the first's page", driver);
		rtest_free(t);
		return;
	}
	shrink_ok(t, 1, &got);
	ok(t->first_id == b && t->objs[a].state == OBJ_LIVE && t->objs[c].state == OBJ_LIVE,
	   "%s: a page that took a new object is reclaimed after an older page (expected object "
	   "%ld first, saw %ld)",
	   driver, b, t->first_id);
	rtest_free(t);
}

static void test_refusal(const char *driver)
{
	struct rtest *t = rtest_new(driver, true);
	size_t before;
	unsigned int got = ~0u;
	struct zpool_stats st;
	long x, y;
	int err;

	if (!t)
		return;
	x = obj_add(t, ZPOOL_MAX_OBJECT);
	y = obj_add(t, ZPOOL_MAX_OBJECT);
	before = zpool_total_size(t->pool);
	set_mode(t, EVICT_REFUSE);
	err = zpool_shrink(t->pool, 1, &got);
	st = stats(t);
	ok(x >= 0 && y >= 0 && err == -EAGAIN && got == 0 && zpool_total_size(t->pool) == before,
	   "%s: when the callback refuses everything shrink returns -EAGAIN and frees nothing "
	   "(saw %d, %u reclaimed, %zu -> %zu bytes)",
	   driver, err, got, before, zpool_total_size(t->pool));
	ok(count_intact(t) == 2 && st.objects == 2 && st.evict_failures == t->refusals &&
		   t->refusals > 0,
	   "%s: refused objects stay live and intact, each refusal counted (%zu intact, %llu "
	   "failures counted of %lu)",
	   driver, count_intact(t), st.evict_failures, t->refusals);

	set_mode(t, EVICT_REFUSE_ONE);
	t->refuse_id = (size_t)x;
	got = ~0u;
	err = zpool_shrink(t->pool, 1, &got);
	ok(err == 0 && got >= 1 && t->objs[y].state == OBJ_EVICTED &&
		   t->objs[x].state == OBJ_LIVE && obj_intact(t, &t->objs[x]),
	   "%s: a refused page does not stop reclaim: the next page is evicted instead (saw %d, "
	   "%u reclaimed, y %s)",
	   driver, err, got, t->objs[y].state == OBJ_EVICTED ? "evicted" : "not evicted");

	set_mode(t, EVICT_OK);
	ok(shrink_ok(t, 1, &got) && t->objs[x].state == OBJ_EVICTED &&
		   zpool_total_size(t->pool) == 0,
	   "%s: the refused page stayed on the LRU: a later shrink evicts its object", driver);
	ok(callbacks_clean(t), "%s: the callback saw only live objects with their bytes", driver);
	rtest_free(t);
}

/* The callback frees another object of the page under reclaim, then evicts or refuses. */
static void test_free_during_reclaim(const char *driver, bool refuse)
{
	struct rtest *t = rtest_new(driver, true);
	const char *how = refuse ? "refuses" : "evicts";
	size_t before, live;
	struct zpool_stats st;
	unsigned int got = ~0u;
	int err;

	if (!t)
		return;
	for (int i = 0; i < 64; i++)
		obj_add(t, SMALL_SIZE);
	before = zpool_total_size(t->pool);
	set_mode(t, refuse ? EVICT_FREE_AND_REFUSE : EVICT_FREE_NEIGHBOUR);
	err = zpool_shrink(t->pool, 1, &got);
	if (!ok(t->neighbour_id >= 0,
		"%s: the callback (which then %s) found another live object on the page under "
		"reclaim",
		driver, how)) {
		rtest_free(t);
		return;
	}
	ok(t->objs[t->neighbour_id].evictions == 0 && callbacks_clean(t),
	   "%s: an object freed during reclaim is never handed to the callback, which then %s "
	   "(%u evictions, %lu calls to dead handles)",
	   driver, how, t->objs[t->neighbour_id].evictions, t->bad_calls);
	st = stats(t);
	live = count_live(t);
	ok(st.objects == live && count_intact(t) == live,
	   "%s: after a free during reclaim (the callback %s) the pool holds its %zu live objects "
	   "intact (stats %zu, intact %zu)",
	   driver, how, live, st.objects, count_intact(t));
	if (!refuse) {
		ok(err == 0 && got >= 1 && got <= ZPP_MAX_RUN &&
			   before - zpool_total_size(t->pool) == (size_t)got * ZPOOL_PAGE_SIZE,
		   "%s: the page is released once: one unit reclaimed and the pool smaller by "
		   "exactly its pages (saw %d, %u reclaimed, %zu -> %zu bytes)",
		   driver, err, got, before, zpool_total_size(t->pool));
	} else {
		ok(t->objs[t->first_id].state == OBJ_LIVE && zpool_total_size(t->pool) <= before,
		   "%s: when the callback refuses after freeing a neighbour, the refused object "
		   "stays (pool %zu -> %zu bytes)",
		   driver, before, zpool_total_size(t->pool));
		struct robj *refused = &t->objs[t->first_id];

		set_mode(t, EVICT_OK);
		while (refused->state == OBJ_LIVE && zpool_shrink(t->pool, 1, NULL) == 0)
			;
		ok(refused->state == OBJ_EVICTED && refused->evictions == 1 && callbacks_clean(t),
		   "%s: the refused object is evicted by later shrinks, once", driver);
	}
	rtest_free(t);
}

static void test_no_alloc_into_reclaimed_page(const char *driver)
{
	struct rtest *t = rtest_new(driver, true);
	unsigned int got = ~0u;
	long a;
	int err;

	if (!t)
		return;
	a = obj_add(t, SMALL_SIZE);
	set_mode(t, EVICT_MALLOC);
	err = zpool_shrink(t->pool, 1, &got);
	ok(a >= 0 && t->new_id >= 0 && !t->new_in_reclaimed_page,
	   "%s: an object allocated while a page is under reclaim goes to another page", driver);
	ok(err == 0 && got >= 1 && t->objs[a].state == OBJ_EVICTED && t->new_id >= 0 &&
		   obj_intact(t, &t->objs[t->new_id]),
	   "%s: the page under reclaim is still freed and the new object is intact (saw %d, %u "
	   "reclaimed)",
	   driver, err, got);
	rtest_free(t);
}

static void test_no_callback(const char *driver)
{
	struct rtest *t = rtest_new(driver, false);
	unsigned int got = ~0u;
	int err;

	if (!ok(t != NULL, "%s: a pool without an evict callback can be made", driver))
		return;
	obj_add(t, SMALL_SIZE);
	err = zpool_shrink(t->pool, 1, &got);
	ok(err == -EOPNOTSUPP && got == 0 && count_intact(t) == 1,
	   "%s: without an evict callback shrink returns -EOPNOTSUPP and leaves the object "
	   "(expected %d, saw %d, %u reclaimed)",
	   driver, -EOPNOTSUPP, err, got);
	rtest_free(t);
}

int main(void)
{
	const char *const *names = zpool_driver_names();

	for (size_t i = 0; names[i]; i++) {
		test_drain(names[i]);
		test_lru_order(names[i]);
		test_lru_touch(names[i]);
		test_refusal(names[i]);
		test_free_during_reclaim(names[i], false);
		test_free_during_reclaim(names[i], true);
		test_no_alloc_into_reclaimed_page(names[i]);
		test_no_callback(names[i]);
	}
	return tap_done();
}
