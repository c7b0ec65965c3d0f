/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_errors.c - the errors of the zpool interface, for every
 * registered driver (alloc/zpool.h):
 *
 *   malloc of 0 bytes              -EINVAL
 *   malloc of 4097 bytes           -ENOSPC; 4096 bytes works and holds them
 *   a pool at its max_pages        -ENOMEM, for whole-page and for small
 *                                  objects; a failed malloc changes no stat,
 *                                  and a free makes room again
 *   free of a freed handle, of a   -EINVAL, in every build: each driver
 *   never-allocated handle, of     checks a handle against its own metadata
 *   another pool's handle          before it touches anything
 *   an unknown driver name         -ENOENT
 *
 * Each check builds a fresh pool so one driver bug cannot hide another.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/zpool.h"
#include "tests/tap.h"

#define LIMIT_PAGES 64
#define SMALL_SIZE 700
#define MAX_HANDLES 4096

static struct zpool *pool_new(const char *driver, size_t max_pages)
{
	struct zpool_config cfg = { .max_pages = max_pages };
	struct zpool *pool = NULL;
	int err = zpool_create(driver, &cfg, &pool);

	if (err)
		tap_diag("%s: zpool_create(max_pages %zu): expected 0, saw %d", driver, max_pages,
			 err);
	return err ? NULL : pool;
}

static size_t pool_objects(struct zpool *pool)
{
	struct zpool_stats st;

	zpool_stats(pool, &st);
	return st.objects;
}

/*
 * Handles stay below 1 << ZPOOL_HANDLE_BITS however often slots are reused:
 * 200,000 allocations cycling through 512 live objects of varied sizes.
 */
static void test_handles_fit_their_bits(const char *driver)
{
	struct zpool *pool = pool_new(driver, 0);
	unsigned long live[512] = { 0 }, widest = 0, h;
	int bad = 0;

	if (!pool) {
		ok(0, "%s: a pool for the handle-width check is made", driver);
		return;
	}
	for (unsigned i = 0; i < 200000 && !bad; i++) {
		unsigned k = i % 512;

		if (live[k] && zpool_free(pool, live[k]))
			bad++;
		live[k] = 0;
		if (zpool_malloc(pool, 1 + (i * 7919) % ZPOOL_MAX_OBJECT, &h)) {
			bad++;
			break;
		}
		live[k] = h;
		widest |= h;
	}
	ok(!bad && widest >> ZPOOL_HANDLE_BITS == 0,
	   "%s: 200000 handles all fit in %d bits (bits seen: %#lx)", driver, ZPOOL_HANDLE_BITS,
	   widest);
	zpool_destroy(pool);
}

/*
 * A stale handle is refused even after its slot was reused: the kernel-style
 * "index | slot" handle of a just-freed object is exactly what the next
 * allocation gets back, so a late free would destroy the new object.
 */
static void test_stale_handles_are_refused(const char *driver)
{
	struct zpool *pool = pool_new(driver, 0);
	unsigned long h = 0, h2 = 0;
	int accepted = 0, lost = 0;

	if (!pool) {
		ok(0, "%s: a pool for the stale-handle check is made", driver);
		return;
	}
	for (int i = 0; i < 1000; i++) {
		if (zpool_malloc(pool, 100 + i % 7, &h) || zpool_free(pool, h) ||
		    zpool_malloc(pool, 100 + i % 7, &h2)) {
			lost++;
			break;
		}
		accepted += zpool_free(pool, h) != -EINVAL;
		accepted += zpool_map(pool, h, ZPOOL_MM_RO) != NULL;
		zpool_unmap(pool, h);
		lost += zpool_free(pool, h2) != 0;
	}
	ok(!accepted && !lost,
	   "%s: 1000 stale handles, each freed while its slot held a new object, are refused by "
	   "free and map (%d accepted, %d new objects lost)",
	   driver, accepted, lost);
	zpool_destroy(pool);
}

/*
 * Arenas of 192 pages: page indexes then run past max_pages (an emptied
 * arena is unmapped and a later arena used), which once overflowed the
 * page tables of zbud and z3fold.
 */
static void test_indexes_past_max_pages_work(const char *driver)
{
	struct zpool_config cfg = { .max_pages = 512, .arena_pages = 192 };
	struct zpool *pool = NULL;
	unsigned long h[513], extra = 0;
	size_t n = 0;
	unsigned char *p;
	int err = zpool_create(driver, &cfg, &pool);

	while (!err && n < 512 && !zpool_malloc(pool, ZPOOL_MAX_OBJECT, &h[n]))
		n++;
	for (size_t i = 0; i < 192 && i < n; i++)
		zpool_free(pool, h[i]);
	if (!err)
		err = zpool_malloc(pool, ZPOOL_MAX_OBJECT, &extra);
	p = err ? NULL : zpool_map(pool, extra, ZPOOL_MM_WO);
	if (p)
		memset(p, 0x3c, ZPOOL_MAX_OBJECT);
	if (!err)
		zpool_unmap(pool, extra);
	p = err ? NULL : zpool_map(pool, extra, ZPOOL_MM_RO);
	ok(n == 512 && p && p[0] == 0x3c && p[ZPOOL_MAX_OBJECT - 1] == 0x3c,
	   "%s: with 192-page arenas, a page allocated past index max_pages is usable (%zu "
	   "filled, %d)",
	   driver, n, err);
	if (p)
		zpool_unmap(pool, extra);
	ok(!err && zpool_free(pool, extra) == 0, "%s: and it frees", driver);
	for (size_t i = 192; i < n; i++)
		zpool_free(pool, h[i]);
	ok(pool && zpool_total_size(pool) == 0, "%s: the pool is empty after freeing all", driver);
	zpool_destroy(pool);
}

static void test_sizes(const char *driver)
{
	struct zpool *pool = pool_new(driver, 0);
	unsigned long h = 0;
	unsigned char *p;
	bool held = false;
	int err;

	if (!ok(pool != NULL, "%s: a pool can be made", driver))
		return;
	err = zpool_malloc(pool, 0, &h);
	ok(err == -EINVAL, "%s: malloc of 0 bytes fails with -EINVAL (expected %d, saw %d)", driver,
	   -EINVAL, err);
	err = zpool_malloc(pool, ZPOOL_MAX_OBJECT + 1, &h);
	ok(err == -ENOSPC, "%s: malloc of 4097 bytes fails with -ENOSPC (expected %d, saw %d)",
	   driver, -ENOSPC, err);
	ok(pool_objects(pool) == 0 && zpool_total_size(pool) == 0,
	   "%s: refused mallocs leave the pool empty (%zu objects, %zu bytes)", driver,
	   pool_objects(pool), zpool_total_size(pool));
	err = zpool_malloc(pool, ZPOOL_MAX_OBJECT, &h);
	if (ok(err == 0, "%s: malloc of 4096 bytes succeeds (saw %d)", driver, err)) {
		p = zpool_map(pool, h, ZPOOL_MM_WO);
		if (p) {
			memset(p, 0xc3, ZPOOL_MAX_OBJECT);
			zpool_unmap(pool, h);
		}
		p = zpool_map(pool, h, ZPOOL_MM_RO);
		held = p != NULL;
		for (size_t i = 0; held && i < ZPOOL_MAX_OBJECT; i++)
			held = p[i] == 0xc3;
		if (p)
			zpool_unmap(pool, h);
		ok(held, "%s: a 4096-byte object holds all 4096 bytes written to it", driver);
		err = zpool_free(pool, h);
		ok(err == 0, "%s: the 4096-byte object can be freed (saw %d)", driver, err);
	}
	zpool_destroy(pool);
}

/* Allocate @size-byte objects until malloc fails; the error and the count. */
static int fill_pool(struct zpool *pool, size_t size, unsigned long *handles, size_t *n)
{
	int err = 0;

	*n = 0;
	while (*n < MAX_HANDLES && (err = zpool_malloc(pool, size, &handles[*n])) == 0)
		(*n)++;
	return err;
}

static void test_limit(const char *driver, size_t size)
{
	static unsigned long handles[MAX_HANDLES];
	struct zpool *pool = pool_new(driver, LIMIT_PAGES);
	size_t n, pages, objects;
	unsigned long extra;
	int err;

	if (!pool)
		return;
	err = fill_pool(pool, size, handles, &n);
	pages = zpool_total_size(pool) / ZPOOL_PAGE_SIZE;
	objects = pool_objects(pool);
	ok(err == -ENOMEM && n > 0 && pages <= LIMIT_PAGES,
	   "%s: %zu-byte objects fill a %d-page pool, then malloc fails with -ENOMEM (expected %d "
	   "after some, saw %d after %zu, %zu pages)",
	   driver, size, LIMIT_PAGES, -ENOMEM, err, n, pages);
	ok(objects == n,
	   "%s: a malloc refused for lack of pages leaves no object behind (expected "
	   "%zu, saw %zu)",
	   driver, n, objects);
	if (size == ZPOOL_MAX_OBJECT)
		ok(n == LIMIT_PAGES, "%s: a %d-page pool holds %d whole-page objects (saw %zu)",
		   driver, LIMIT_PAGES, LIMIT_PAGES, n);
	if (n > 0) {
		err = zpool_free(pool, handles[--n]);
		if (!err)
			err = zpool_malloc(pool, size, &extra);
		ok(err == 0, "%s: after a free, a %zu-byte malloc fits again (saw %d)", driver,
		   size, err);
	}
	zpool_destroy(pool);
}

static void test_bad_frees(const char *driver)
{
	struct zpool *pool = pool_new(driver, 0), *other = pool_new(driver, 0);
	unsigned long h, keep, foreign;
	int err, err2;

	if (!pool || !other)
		goto out;
	err = zpool_malloc(pool, SMALL_SIZE, &keep);
	if (!err)
		err = zpool_malloc(pool, SMALL_SIZE, &h);
	if (!err)
		err = zpool_free(pool, h);
	if (!ok(err == 0, "%s: objects can be allocated and freed (saw %d)", driver, err))
		goto out;
	err = zpool_free(pool, h);
	ok(err == -EINVAL, "%s: a double free fails with -EINVAL (expected %d, saw %d)", driver,
	   -EINVAL, err);
	err = zpool_free(pool, keep ^ 0x40000);
	err2 = zpool_free(pool, 0);
	ok(err == -EINVAL && err2 == -EINVAL,
	   "%s: free of never-allocated handles %#lx and 0 fails with -EINVAL (saw %d, %d)", driver,
	   keep ^ 0x40000, err, err2);
	err = zpool_free(pool, ~0UL);
	ok(err == -EINVAL, "%s: free of handle ~0 fails with -EINVAL (saw %d)", driver, err);
	/* The 8th whole-page object of a fresh pool: a handle this pool never gave out. */
	err = 0;
	for (int i = 0; i < 8 && !err; i++)
		err = zpool_malloc(other, ZPOOL_MAX_OBJECT, &foreign);
	if (err || foreign == keep) {
		tap_skip("%s: no handle of another pool that differs from this pool's (err %d)",
			 driver, err);
	} else {
		err = zpool_free(pool, foreign);
		ok(err == -EINVAL,
		   "%s: free of another pool's handle %#lx fails with -EINVAL (saw %d)", driver,
		   foreign, err);
	}
	ok(pool_objects(pool) == 1 && zpool_free(pool, keep) == 0 && zpool_total_size(pool) == 0,
	   "%s: the refused frees left the live object alone; freeing it empties the pool", driver);
out:
	zpool_destroy(pool);
	zpool_destroy(other);
}

int main(void)
{
	const char *const *names = zpool_driver_names();
	struct zpool_config cfg = { 0 };
	struct zpool *pool = NULL;
	int err;

	err = zpool_create("no-such-allocator", &cfg, &pool);
	ok(err == -ENOENT && pool == NULL,
	   "an unknown driver name fails with -ENOENT (expected %d, saw %d)", -ENOENT, err);
	err = zpool_create(NULL, &cfg, &pool);
	ok(err == -ENOENT && pool == NULL, "a NULL driver name fails with -ENOENT (saw %d)", err);
	for (size_t i = 0; names[i]; i++) {
		ok(zpool_driver_find(names[i]) != NULL, "%s: is found by its name", names[i]);
		test_sizes(names[i]);
		test_limit(names[i], ZPOOL_MAX_OBJECT);
		test_limit(names[i], SMALL_SIZE);
		test_bad_frees(names[i]);
		test_handles_fit_their_bits(names[i]);
		test_stale_handles_are_refused(names[i]);
		test_indexes_past_max_pages_work(names[i]);
	}
	return tap_done();
}
