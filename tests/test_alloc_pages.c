/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_pages.c - the page provider under every pool allocator
 * (alloc/pages.h): what it hands out, what it refuses, and that the memory
 * it gives back really leaves the process.
 *
 *  - Runs of 1..16 pages: each is contiguous in index and in address, lies
 *    inside one arena, reads as zeros, and overlaps no other run.  Every
 *    page is filled with a pattern naming its run and offset, and all the
 *    patterns are checked once every run is out, so an overlap shows as an
 *    overwritten pattern.
 *  - max_pages: the provider refuses (-ENOMEM) a run that would go past it.
 *  - Freeing every page unmaps every arena.
 *  - RSS follows the pages held: /proc/self/statm's resident count before
 *    and after touching 4096 pages, after freeing every other page (only
 *    MADV_DONTNEED can give those back: their arenas stay mapped) and after
 *    freeing the rest.  The tolerance, RSS_SLACK_PAGES, absorbs the test's
 *    own stack and libc noise, a few dozen pages at most.
 *  - 4 threads allocate, fill, verify and free runs at once on a provider
 *    with small arenas (so arenas are mapped and unmapped under them); each
 *    page has an owner word claimed by compare-and-swap, so two threads
 *    holding one page is caught at the moment it happens.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc/pages.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define RUNS_PER_LENGTH 8
#define RSS_PAGES 4096
#define RSS_SLACK_PAGES 256
#define SMALL_ARENA 64
#define NTHREADS 4
#define THREAD_MAX_PAGES 4096
#define THREAD_HELD_RUNS 24
#define THREAD_SECONDS 1.0

struct run {
	uint32_t index;
	unsigned int n;
};

/* The word written at @word of page @k of run @id: distinct for every run, page and word. */
static uint64_t pattern(unsigned int id, unsigned int k, size_t word)
{
	return (uint64_t)id << 40 ^ (uint64_t)k << 24 ^ word ^ 0x5a5a000000000000ULL;
}

static void fill_page(uint64_t *page, unsigned int id, unsigned int k)
{
	for (size_t w = 0; w < ZPP_PAGE_SIZE / 8; w++)
		page[w] = pattern(id, k, w);
}

/* The first word of the page that does not hold its pattern, or -1. */
static long check_page(const uint64_t *page, unsigned int id, unsigned int k)
{
	for (size_t w = 0; w < ZPP_PAGE_SIZE / 8; w++)
		if (page[w] != pattern(id, k, w))
			return (long)w;
	return -1;
}

static bool page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < ZPP_PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* A run's pages are consecutive addresses, held, zeroed, and inside one arena. */
static bool run_shape_ok(struct zpp *zpp, const struct run *r, size_t arena_pages)
{
	unsigned char *base = zpp_addr(zpp, r->index);

	if (r->index / arena_pages != (r->index + r->n - 1) / arena_pages) {
		tap_diag("expected run %u+%u inside one arena of %zu pages; it crosses one",
			 r->index, r->n, arena_pages);
		return false;
	}
	for (unsigned int k = 0; k < r->n; k++) {
		unsigned char *addr = zpp_addr(zpp, r->index + k);

		if (addr != base + (size_t)k * ZPP_PAGE_SIZE || !zpp_held(zpp, r->index + k) ||
		    !page_is_zero(addr)) {
			tap_diag(
				"run %u+%u page %u: expected held zeroed page at %p, saw %p held=%d "
				"zero=%d",
				r->index, r->n, k, (void *)(base + (size_t)k * ZPP_PAGE_SIZE),
				(void *)addr, zpp_held(zpp, r->index + k), page_is_zero(addr));
			return false;
		}
	}
	return true;
}

static bool runs_disjoint(const struct run *runs, size_t nruns)
{
	for (size_t i = 0; i < nruns; i++)
		for (size_t j = i + 1; j < nruns; j++)
			if (runs[i].index < runs[j].index + runs[j].n &&
			    runs[j].index < runs[i].index + runs[i].n) {
				tap_diag("expected disjoint runs; %u+%u overlaps %u+%u",
					 runs[i].index, runs[i].n, runs[j].index, runs[j].n);
				return false;
			}
	return true;
}

static void test_runs(void)
{
	struct run runs[ZPP_MAX_RUN * RUNS_PER_LENGTH];
	size_t nruns = 0, bad_shape = 0, bad_fill = 0;
	struct zpp *zpp;
	int err = zpp_create(0, SMALL_ARENA, &zpp);

	if (!ok(err == 0, "a provider with 64-page arenas can be made (err %d)", err))
		return;
	for (unsigned int round = 0; round < RUNS_PER_LENGTH; round++)
		for (unsigned int n = 1; n <= ZPP_MAX_RUN; n++) {
			struct run *r = &runs[nruns];

			r->n = n;
			err = zpp_alloc(zpp, n, &r->index);
			if (err)
				break;
			bad_shape += !run_shape_ok(zpp, r, SMALL_ARENA);
			for (unsigned int k = 0; k < n; k++)
				fill_page(zpp_addr(zpp, r->index + k), (unsigned int)nruns, k);
			nruns++;
		}
	ok(err == 0 && nruns == ZPP_MAX_RUN * RUNS_PER_LENGTH,
	   "runs of 1 to 16 pages can be allocated, 8 of each length (%zu runs, err %d)", nruns,
	   err);
	ok(bad_shape == 0, "every run is contiguous, held, zeroed and inside one arena (%zu bad)",
	   bad_shape);
	ok(runs_disjoint(runs, nruns), "no two runs share a page index");
	for (size_t i = 0; i < nruns; i++)
		for (unsigned int k = 0; k < runs[i].n; k++) {
			long w = check_page(zpp_addr(zpp, runs[i].index + k), (unsigned int)i, k);

			if (w >= 0 && bad_fill++ < 5)
				tap_diag("run %zu page %u word %ld: expected %#llx, saw %#llx", i,
					 k, w,
					 (unsigned long long)pattern((unsigned int)i, k, (size_t)w),
					 (unsigned long long)((uint64_t *)zpp_addr(
						 zpp, runs[i].index + k))[w]);
		}
	ok(bad_fill == 0, "every page still holds its own pattern once all runs are out");
	ok(zpp_pages_held(zpp) == (size_t)ZPP_MAX_RUN * (ZPP_MAX_RUN + 1) / 2 * RUNS_PER_LENGTH,
	   "pages_held counts every page of every run (%zu)", zpp_pages_held(zpp));
	for (size_t i = 0; i < nruns; i++)
		zpp_free(zpp, runs[i].index, runs[i].n);
	ok(zpp_pages_held(zpp) == 0 && zpp_arenas_mapped(zpp) == 0,
	   "freeing every run leaves no page held and no arena mapped (held %zu, arenas %zu)",
	   zpp_pages_held(zpp), zpp_arenas_mapped(zpp));
	zpp_destroy(zpp);
}

/* A page written, freed and handed out again reads as zeros. */
static void test_reuse_is_zeroed(void)
{
	uint32_t keep, a, b;
	struct zpp *zpp;
	int err = zpp_create(0, SMALL_ARENA, &zpp);

	if (!ok(err == 0, "a provider can be made for the reuse check (err %d)", err))
		return;
	/* @keep holds the arena, so @a's page is zapped, not unmapped with its arena. */
	err = zpp_alloc(zpp, 1, &keep);
	if (!err)
		err = zpp_alloc(zpp, 4, &a);
	for (unsigned int k = 0; !err && k < 4; k++)
		fill_page(zpp_addr(zpp, a + k), 1, k);
	if (!err) {
		zpp_free(zpp, a, 4);
		err = zpp_alloc(zpp, 4, &b);
	}
	ok(!err && b == a, "a freed run is handed out again first-fit (expected %u, saw %u)", a,
	   err ? 0 : b);
	if (!err) {
		bool zero = true;

		for (unsigned int k = 0; k < 4; k++)
			zero &= page_is_zero(zpp_addr(zpp, b + k));
		ok(zero, "a run written, freed and allocated again reads as zeros");
	}
	zpp_destroy(zpp);
}

static void test_limits(void)
{
	uint32_t idx[SMALL_ARENA];
	size_t got = 0;
	struct zpp *zpp;
	uint32_t extra;
	int err = zpp_create(SMALL_ARENA, SMALL_ARENA, &zpp);

	if (!ok(err == 0, "a provider limited to 64 pages can be made (err %d)", err))
		return;
	while (got < SMALL_ARENA && (err = zpp_alloc(zpp, 1, &idx[got])) == 0)
		got++;
	ok(got == SMALL_ARENA, "64 single pages fit under a 64-page limit (got %zu, err %d)", got,
	   err);
	err = zpp_alloc(zpp, 1, &extra);
	ok(err == -ENOMEM, "the 65th page is refused with -ENOMEM (expected %d, saw %d)", -ENOMEM,
	   err);
	zpp_free(zpp, idx[0], 1);
	err = zpp_alloc(zpp, 2, &extra);
	ok(err == -ENOMEM, "a 2-page run with 1 page left is refused with -ENOMEM (saw %d)", err);
	err = zpp_alloc(zpp, 1, &extra);
	ok(err == 0, "the one page left can still be had (err %d)", err);
	ok(zpp_alloc(zpp, 0, &extra) == -EINVAL &&
		   zpp_alloc(zpp, ZPP_MAX_RUN + 1, &extra) == -EINVAL,
	   "runs of 0 and of 17 pages are refused with -EINVAL");
	zpp_destroy(zpp);
	ok(zpp_create(0, 100, &zpp) == -EINVAL,
	   "an arena size that is not a multiple of 64 pages is refused with -EINVAL");
}

/* Resident pages of the whole process, from /proc/self/statm; -1 on error. */
static long resident_pages(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	int n;

	if (!f)
		return -1;
	n = fscanf(f, "%lu %lu", &size, &resident);
	fclose(f);
	return n == 2 ? (long)resident : -1;
}

static bool near(long seen, long expected, const char *what)
{
	long diff = seen - expected;

	if (diff < -RSS_SLACK_PAGES || diff > RSS_SLACK_PAGES) {
		tap_diag("%s: expected %ld resident pages +- %d, saw %ld", what, expected,
			 RSS_SLACK_PAGES, seen);
		return false;
	}
	return true;
}

static void test_rss(void)
{
	static uint32_t idx[RSS_PAGES / ZPP_MAX_RUN];
	long base, full, half, empty;
	size_t nruns = RSS_PAGES / ZPP_MAX_RUN;
	struct zpp *zpp;
	int err = zpp_create(0, 0, &zpp);

	if (!ok(err == 0, "a provider with default arenas can be made (err %d)", err))
		return;
	base = resident_pages();
	for (size_t i = 0; i < nruns && !err; i++) {
		err = zpp_alloc(zpp, ZPP_MAX_RUN, &idx[i]);
		if (!err)
			memset(zpp_addr(zpp, idx[i]), 0xa5, ZPP_MAX_RUN * ZPP_PAGE_SIZE);
	}
	if (!ok(err == 0 && base > 0, "4096 pages can be allocated and touched (err %d)", err))
		goto out;
	full = resident_pages();
	ok(near(full - base, RSS_PAGES, "after touching"),
	   "RSS grows by the 4096 pages touched (grew %ld)", full - base);
	/* Every other page: no arena empties, so only MADV_DONTNEED can return them. */
	for (size_t i = 0; i < nruns; i++)
		for (unsigned int k = 0; k < ZPP_MAX_RUN; k += 2)
			zpp_free(zpp, idx[i] + k, 1);
	half = resident_pages();
	ok(zpp_arenas_mapped(zpp) > 0 && near(half - base, RSS_PAGES / 2, "after freeing half"),
	   "RSS drops by the 2048 pages freed while their arenas stay mapped (%ld above base, "
	   "%zu arenas)",
	   half - base, zpp_arenas_mapped(zpp));
	for (size_t i = 0; i < nruns; i++)
		for (unsigned int k = 1; k < ZPP_MAX_RUN; k += 2)
			zpp_free(zpp, idx[i] + k, 1);
	empty = resident_pages();
	ok(near(empty - base, 0, "after freeing all"),
	   "RSS returns to where it was once every page is freed (%ld above base)", empty - base);
	ok(zpp_arenas_mapped(zpp) == 0 && zpp_pages_held(zpp) == 0,
	   "freeing every page unmaps every arena (arenas %zu, held %zu)", zpp_arenas_mapped(zpp),
	   zpp_pages_held(zpp));
out:
	zpp_destroy(zpp);
}

struct thread_ctx {
	struct zpp *zpp;
	uint32_t *owner; /* per page index: 0 free, else the holding thread's id + 1 */
	unsigned int id;
	uint64_t seed;
	unsigned long runs, overlaps, corrupt, nonzero, errors;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Claim every page of @r for thread @t; counts a page some other thread holds. */
static void claim(struct thread_ctx *t, const struct run *r)
{
	for (unsigned int k = 0; k < r->n; k++) {
		uint32_t expected = 0;

		if (!__atomic_compare_exchange_n(&t->owner[r->index + k], &expected, t->id + 1,
						 false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			t->overlaps++;
	}
}

static void release(struct thread_ctx *t, const struct run *r, unsigned int tag)
{
	for (unsigned int k = 0; k < r->n; k++) {
		if (check_page(zpp_addr(t->zpp, r->index + k), tag, k) >= 0)
			t->corrupt++;
		__atomic_store_n(&t->owner[r->index + k], 0, __ATOMIC_RELEASE);
	}
	zpp_free(t->zpp, r->index, r->n);
}

static void *thread_main(void *arg)
{
	struct thread_ctx *t = arg;
	struct run held[THREAD_HELD_RUNS] = { 0 };
	unsigned int tags[THREAD_HELD_RUNS];
	struct rng rng = { t->seed };
	double end = now_s() + THREAD_SECONDS;

	while (now_s() < end) {
		unsigned int slot = (unsigned int)rng_below(&rng, THREAD_HELD_RUNS);
		struct run *r = &held[slot];

		if (r->n) {
			release(t, r, tags[slot]);
			r->n = 0;
			continue;
		}
		r->n = 1 + (unsigned int)rng_below(&rng, ZPP_MAX_RUN);
		if (zpp_alloc(t->zpp, r->n, &r->index)) {
			t->errors++;
			r->n = 0;
			continue;
		}
		claim(t, r);
		tags[slot] = t->id << 20 | (unsigned int)(t->runs++ & 0xfffff);
		for (unsigned int k = 0; k < r->n; k++) {
			t->nonzero += !page_is_zero(zpp_addr(t->zpp, r->index + k));
			fill_page(zpp_addr(t->zpp, r->index + k), tags[slot], k);
		}
	}
	for (unsigned int slot = 0; slot < THREAD_HELD_RUNS; slot++)
		if (held[slot].n)
			release(t, &held[slot], tags[slot]);
	return NULL;
}

static void test_threads(uint64_t seed)
{
	struct thread_ctx ctx[NTHREADS];
	pthread_t tid[NTHREADS];
	unsigned long runs = 0, overlaps = 0, corrupt = 0, nonzero = 0, errors = 0;
	uint32_t *owner = calloc(THREAD_MAX_PAGES, sizeof(*owner));
	struct zpp *zpp;
	int err = owner ? zpp_create(THREAD_MAX_PAGES, SMALL_ARENA, &zpp) : -ENOMEM;

	if (!ok(err == 0, "a provider can be made for 4 threads (err %d)", err)) {
		free(owner);
		return;
	}
	for (unsigned int i = 0; i < NTHREADS; i++) {
		ctx[i] = (struct thread_ctx){
			.zpp = zpp, .owner = owner, .id = i, .seed = seed + i
		};
		pthread_create(&tid[i], NULL, thread_main, &ctx[i]);
	}
	for (unsigned int i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		runs += ctx[i].runs;
		overlaps += ctx[i].overlaps;
		corrupt += ctx[i].corrupt;
		nonzero += ctx[i].nonzero;
		errors += ctx[i].errors;
	}
	ok(runs > 1000 && errors == 0, "4 threads allocated %lu runs with no error (%lu errors)",
	   runs, errors);
	ok(overlaps == 0, "no page was ever held by two threads at once (%lu pages were)",
	   overlaps);
	ok(corrupt == 0 && nonzero == 0,
	   "every page came zeroed and kept its holder's pattern (%lu not zeroed, %lu changed)",
	   nonzero, corrupt);
	ok(zpp_pages_held(zpp) == 0 && zpp_arenas_mapped(zpp) == 0,
	   "after the threads no page is held and no arena mapped (held %zu, arenas %zu)",
	   zpp_pages_held(zpp), zpp_arenas_mapped(zpp));
	zpp_destroy(zpp);
	free(owner);
}

int main(void)
{
	uint64_t seed = rng_seed_from_env(0x70a6e5);

	tap_diag("seed %#llx (UZSWAP_TEST_SEED to rerun)", (unsigned long long)seed);
	test_runs();
	test_reuse_is_zeroed();
	test_limits();
	test_rss();
	test_threads(seed);
	return tap_done();
}
