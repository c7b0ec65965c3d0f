/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_model.c - every registered pool driver against a model,
 * for a million random operations each.
 *
 * The model is what the pool must hold: struct obj per object ever
 * allocated (size, the seed its bytes derive from, their checksum, and
 * whether it is live, freed or evicted), an array of the live ones to pick
 * from, and a handle -> object table so the evict callback can tell what it
 * was handed.  Operations, drawn from one seeded generator:
 *
 *   malloc      sizes from the real lz4 compressed-size distribution of a
 *               sample of redis.pages.zst (incompressible pages stored raw
 *               as 4096 bytes), plus 1 in 20 uniform in 1..4096 so that the
 *               smallest and odd sizes are always exercised; the object is
 *               filled through a WO mapping from its seed
 *   free        a random live object
 *   map         a random live object, verified by checksum through an RO
 *               mapping; 1 in 8 is rewritten with a new seed through RW
 *   shrink      1..4 pages; the evict callback looks the handle up, checks
 *               it is live and its bytes, moves it to the evicted set and
 *               frees it; in some shrinks it refuses some objects instead.
 *               A willing shrink must free all it was asked (the pool
 *               permitting), and no shrink more than one unit past it
 *               (zpool.h: drivers free whole zspages)
 *   compact     its return must be the pages it freed
 *
 * After every shrink and compaction every live object is verified, and the
 * pool's statistics are checked against the model.  The live population
 * swings between LIVE_LOW and LIVE_HIGH so that frees leave fragmented
 * pages for compaction and reclaim to work on.  The seed is printed;
 * UZSWAP_TEST_SEED reruns a failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/pages.h"
#include "alloc/zpool.h"
#include "tests/objfill.h"
#include "tests/pagesizes.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define OPS 1000000
#define SAMPLE_STRIDE 16
#define SAMPLE_MAX 8192
#define LIVE_LOW 64
#define LIVE_HIGH 2048
#define SWING_OPS 100000 /* ops from LIVE_LOW up to LIVE_HIGH and back */
#define SHRINK_PER_100K 60
#define COMPACT_PER_100K 40
#define STATS_EVERY 4096
#define HTAB_BITS 16
#define LIVE_CAP (1u << (HTAB_BITS - 2)) /* keeps the table at most a quarter full */
#define MAX_DIAGS 5

enum obj_state {
	OBJ_LIVE,
	OBJ_FREED,
	OBJ_EVICTED,
};

struct obj {
	unsigned long handle; /* meaningful while OBJ_LIVE */
	uint64_t seed, sum;   /* the bytes derive from seed; sum is their checksum */
	uint32_t size;
	int32_t pos; /* index in model.live while OBJ_LIVE, else -1 */
	enum obj_state state;
};

/* Open addressing, linear probing, backward-shift deletion; id -1 marks empty. */
struct htab {
	unsigned long key[1u << HTAB_BITS];
	int32_t id[1u << HTAB_BITS];
};

/* One kind of check, reported as a single test point at the end. */
struct check {
	unsigned long runs, bad;
};

struct model {
	const char *driver;
	struct zpool *pool;
	struct rng rng;
	const unsigned *sizes;
	size_t nsizes;
	struct obj *objs;
	size_t nobjs, cap;
	uint32_t *live;
	size_t nlive;
	unsigned long long live_bytes;
	struct htab *tab;
	unsigned long long evicted, evict_refusals, reclaimed, compacted;
	unsigned int refuse_permille; /* the evict callback refuses this share */
	unsigned long shrinks, compactions;
	struct check malloc_ok, free_ok, bytes_ok, callback_ok, shrink_ok, compact_ok, stats_ok;
};

static void check(struct check *c, bool cond, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void check(struct check *c, bool cond, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	c->runs++;
	if (cond || c->bad++ >= MAX_DIAGS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tap_diag("%s", msg);
}

static size_t htab_slot(unsigned long key)
{
	uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> (64 - HTAB_BITS));
}

static void htab_init(struct htab *t)
{
	memset(t->id, 0xff, sizeof(t->id));
}

static int32_t htab_find(const struct htab *t, unsigned long key)
{
	const size_t mask = (1u << HTAB_BITS) - 1;

	for (size_t i = htab_slot(key);; i = (i + 1) & mask) {
		if (t->id[i] < 0)
			return -1;
		if (t->key[i] == key)
			return t->id[i];
	}
}

static void htab_insert(struct htab *t, unsigned long key, int32_t id)
{
	const size_t mask = (1u << HTAB_BITS) - 1;
	size_t i = htab_slot(key);

	while (t->id[i] >= 0)
		i = (i + 1) & mask;
	t->key[i] = key;
	t->id[i] = id;
}

static void htab_remove(struct htab *t, unsigned long key)
{
	const size_t mask = (1u << HTAB_BITS) - 1;
	size_t hole = htab_slot(key);

	while (t->id[hole] >= 0 && t->key[hole] != key)
		hole = (hole + 1) & mask;
	if (t->id[hole] < 0)
		return;
	/* Shift back each later entry whose home is not between the hole and it. */
	for (size_t i = (hole + 1) & mask; t->id[i] >= 0; i = (i + 1) & mask) {
		size_t home = htab_slot(t->key[i]);

		if (((i - home) & mask) >= ((i - hole) & mask)) {
			t->key[hole] = t->key[i];
			t->id[hole] = t->id[i];
			hole = i;
		}
	}
	t->id[hole] = -1;
}

/* Draw the next object size: mostly the real distribution, sometimes uniform. */
static uint32_t draw_size(struct model *m)
{
	if (rng_below(&m->rng, 20) == 0)
		return 1 + (uint32_t)rng_below(&m->rng, ZPOOL_MAX_OBJECT);
	return m->sizes[rng_below(&m->rng, m->nsizes)];
}

static struct obj *obj_new(struct model *m)
{
	if (m->nobjs == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 65536;
		struct obj *objs = realloc(m->objs, cap * sizeof(*objs));

		if (!objs)
			return NULL;
		m->objs = objs;
		m->cap = cap;
	}
	return &m->objs[m->nobjs++];
}

static void live_add(struct model *m, struct obj *o)
{
	int32_t id = (int32_t)(o - m->objs);

	o->state = OBJ_LIVE;
	o->pos = (int32_t)m->nlive;
	m->live[m->nlive++] = (uint32_t)id;
	m->live_bytes += o->size;
	htab_insert(m->tab, o->handle, id);
}

static void live_remove(struct model *m, struct obj *o, enum obj_state to)
{
	uint32_t last = m->live[--m->nlive];

	m->live[o->pos] = last;
	m->objs[last].pos = o->pos;
	o->pos = -1;
	o->state = to;
	m->live_bytes -= o->size;
	htab_remove(m->tab, o->handle);
}

static struct obj *pick_live(struct model *m)
{
	return &m->objs[m->live[rng_below(&m->rng, m->nlive)]];
}

/* Map @o read-only and compare its checksum with the model's. */
static void verify(struct model *m, struct obj *o, const char *when)
{
	const void *p = zpool_map(m->pool, o->handle, ZPOOL_MM_RO);
	uint64_t sum = p ? objfill_checksum(p, o->size) : 0;
	long at = p && sum != o->sum ? objfill_first_difference(p, o->size, o->seed) : -1;

	check(&m->bytes_ok, p && sum == o->sum,
	      "%s: %s: object %td (handle %#lx, %u bytes): expected checksum %#llx, saw %#llx "
	      "(map %p, first wrong byte %ld)",
	      m->driver, when, o - m->objs, o->handle, o->size, (unsigned long long)o->sum,
	      (unsigned long long)sum, p, at);
	if (p)
		zpool_unmap(m->pool, o->handle);
}

static void verify_all(struct model *m, const char *when)
{
	for (size_t i = 0; i < m->nlive; i++)
		verify(m, &m->objs[m->live[i]], when);
}

static void write_obj(struct model *m, struct obj *o, enum zpool_map_mode mode)
{
	void *p = zpool_map(m->pool, o->handle, mode);

	o->seed = rng_next(&m->rng);
	if (!p) {
		o->sum = ~0ULL;
		return;
	}
	objfill_words(p, o->size, o->seed);
	o->sum = objfill_checksum(p, o->size);
	zpool_unmap(m->pool, o->handle);
}

static void op_malloc(struct model *m)
{
	struct obj *o = obj_new(m);
	int err;

	if (!o)
		return;
	*o = (struct obj){ .size = draw_size(m), .pos = -1, .state = OBJ_FREED };
	err = zpool_malloc(m->pool, o->size, &o->handle);
	check(&m->malloc_ok, err == 0 && htab_find(m->tab, o->handle) < 0,
	      "%s: malloc(%u): expected 0 and a handle not live, saw %d and handle %#lx (id %d)",
	      m->driver, o->size, err, o->handle, err ? -1 : htab_find(m->tab, o->handle));
	if (err || htab_find(m->tab, o->handle) >= 0) {
		m->nobjs--;
		return;
	}
	write_obj(m, o, ZPOOL_MM_WO);
	live_add(m, o);
}

static void op_free(struct model *m)
{
	struct obj *o = pick_live(m);
	int err;

	live_remove(m, o, OBJ_FREED);
	err = zpool_free(m->pool, o->handle);
	check(&m->free_ok, err == 0, "%s: free of live handle %#lx: expected 0, saw %d", m->driver,
	      o->handle, err);
}

static void op_map(struct model *m)
{
	struct obj *o = pick_live(m);

	verify(m, o, "map");
	if (rng_below(&m->rng, 8) == 0) {
		void *p = zpool_map(m->pool, o->handle, ZPOOL_MM_RW);

		check(&m->bytes_ok, p && objfill_checksum(p, o->size) == o->sum,
		      "%s: RW map of object %td (handle %#lx): expected its bytes", m->driver,
		      o - m->objs, o->handle);
		if (p)
			zpool_unmap(m->pool, o->handle);
		write_obj(m, o, ZPOOL_MM_RW);
	}
}

static int evict_cb(struct zpool *pool, unsigned long handle, void *arg)
{
	struct model *m = arg;
	int32_t id = htab_find(m->tab, handle);
	struct obj *o;
	int err;

	check(&m->callback_ok, id >= 0 && pool == m->pool,
	      "%s: evict callback: expected a live handle of this pool, saw handle %#lx (%s)",
	      m->driver, handle, pool != m->pool ? "another pool" : "not live");
	if (id < 0)
		return -ENOENT;
	o = &m->objs[id];
	if (rng_below(&m->rng, 1000) < m->refuse_permille) {
		m->evict_refusals++;
		return -EBUSY;
	}
	verify(m, o, "evict callback");
	live_remove(m, o, OBJ_EVICTED);
	m->evicted++;
	err = zpool_free(pool, handle);
	check(&m->free_ok, err == 0, "%s: free from the evict callback of %#lx: expected 0, saw %d",
	      m->driver, handle, err);
	return 0;
}

static void check_stats(struct model *m, const char *when)
{
	struct zpool_stats st;
	size_t total = zpool_total_size(m->pool);

	zpool_stats(m->pool, &st);
	check(&m->stats_ok,
	      st.objects == m->nlive && st.object_bytes == m->live_bytes &&
		      st.pages * ZPOOL_PAGE_SIZE == total && st.evicted == m->evicted &&
		      st.evict_failures == m->evict_refusals &&
		      st.reclaimed_pages == m->reclaimed && st.compacted_pages == m->compacted,
	      "%s: %s: expected objects %zu bytes %llu total_size %zu evicted %llu failures %llu "
	      "reclaimed %llu compacted %llu; saw %zu %zu %zu %llu %llu %llu %llu",
	      m->driver, when, m->nlive, m->live_bytes, st.pages * ZPOOL_PAGE_SIZE, m->evicted,
	      m->evict_refusals, m->reclaimed, m->compacted, st.objects, st.object_bytes, total,
	      st.evicted, st.evict_failures, st.reclaimed_pages, st.compacted_pages);
	/* Pages hold the bytes, and no page is kept without a live object in it. */
	check(&m->stats_ok,
	      st.pages * ZPOOL_PAGE_SIZE >= m->live_bytes &&
		      st.pages <= m->nlive * (size_t)ZPP_MAX_RUN &&
		      (st.pages == 0) == (m->nlive == 0),
	      "%s: %s: expected ceil(%llu / 4096) <= pages <= %zu objects * %d; saw %zu pages",
	      m->driver, when, m->live_bytes, m->nlive, ZPP_MAX_RUN, st.pages);
}

/*
 * zpool.h: 0 once a page was freed, else -EAGAIN; at least @want pages freed
 * unless nothing more could be, past @want by less than one unit (at most a
 * provider run); the pool smaller by exactly the pages reported.
 */
static bool shrink_result_ok(unsigned int want, int err, unsigned int got, size_t before,
			     size_t after, bool willing)
{
	size_t asked = before / ZPOOL_PAGE_SIZE < want ? before / ZPOOL_PAGE_SIZE : want;

	if (err != 0 && err != -EAGAIN)
		return false;
	if ((err == 0) != (got > 0) || got >= want + ZPP_MAX_RUN)
		return false;
	if (willing && got < asked)
		return false;
	return before - after == (size_t)got * ZPOOL_PAGE_SIZE;
}

static void op_shrink(struct model *m)
{
	static const unsigned int refuse[] = { 0, 0, 0, 300, 1000 };
	unsigned int want = 1 + (unsigned int)rng_below(&m->rng, 4), got = ~0u;
	size_t before = zpool_total_size(m->pool), after;
	int err;

	m->refuse_permille = refuse[rng_below(&m->rng, sizeof(refuse) / sizeof(refuse[0]))];
	err = zpool_shrink(m->pool, want, &got);
	after = zpool_total_size(m->pool);
	m->shrinks++;
	check(&m->shrink_ok,
	      shrink_result_ok(want, err, got, before, after, m->refuse_permille == 0),
	      "%s: shrink(%u), callback refusing %u/1000: expected 0 with at least %u (all when "
	      "willing) and under %u reclaimed, or -EAGAIN with 0, and the pool smaller by the "
	      "reclaimed pages; saw %d, reclaimed %u, pool %zu -> %zu bytes",
	      m->driver, want, m->refuse_permille, want, want + ZPP_MAX_RUN, err, got, before,
	      after);
	m->refuse_permille = 0;
	if (got != ~0u)
		m->reclaimed += got;
	verify_all(m, "after shrink");
	check_stats(m, "after shrink");
}

static void op_compact(struct model *m)
{
	size_t before = zpool_total_size(m->pool), freed, after;

	freed = zpool_compact(m->pool);
	after = zpool_total_size(m->pool);
	m->compactions++;
	m->compacted += freed;
	check(&m->compact_ok, before >= after && before - after == freed * ZPOOL_PAGE_SIZE,
	      "%s: compact: expected the pool smaller by the %zu pages it returned; saw %zu -> "
	      "%zu bytes",
	      m->driver, freed, before, after);
	verify_all(m, "after compaction");
	check_stats(m, "after compaction");
}

/* The live population the model steers toward at @op: a triangle wave. */
static size_t live_target(unsigned long op)
{
	unsigned long phase = op % SWING_OPS;
	unsigned long up = phase < SWING_OPS / 2 ? phase : SWING_OPS - phase;

	return LIVE_LOW + (size_t)((LIVE_HIGH - LIVE_LOW) * up / (SWING_OPS / 2));
}

static void step(struct model *m, unsigned long op)
{
	uint64_t r = rng_below(&m->rng, 100000);

	if (r < SHRINK_PER_100K && m->nlive) {
		op_shrink(m);
	} else if (r < SHRINK_PER_100K + COMPACT_PER_100K) {
		op_compact(m);
	} else if (r < 50000 || m->nlive == 0) {
		bool grow = m->nlive < live_target(op);

		if (m->nlive == 0 ||
		    (m->nlive < LIVE_CAP && rng_below(&m->rng, 100) < (grow ? 65 : 35)))
			op_malloc(m);
		else
			op_free(m);
	} else {
		op_map(m);
	}
	if (op % STATS_EVERY == 0)
		check_stats(m, "periodic");
}

static void free_everything(struct model *m)
{
	struct zpool_stats st;

	while (m->nlive)
		op_free(m);
	zpool_stats(m->pool, &st);
	ok(st.pages == 0 && st.objects == 0 && st.object_bytes == 0 &&
		   zpool_total_size(m->pool) == 0,
	   "%s: freeing every object leaves the pool empty (pages %zu, objects %zu, bytes %zu)",
	   m->driver, st.pages, st.objects, st.object_bytes);
}

static void report(struct model *m)
{
	const char *d = m->driver;

	ok(m->malloc_ok.bad == 0, "%s: every malloc succeeded with a handle not already live (%lu)",
	   d, m->malloc_ok.runs);
	ok(m->free_ok.bad == 0, "%s: every free of a live handle returned 0 (%lu)", d,
	   m->free_ok.runs);
	ok(m->bytes_ok.bad == 0,
	   "%s: every object held its own bytes at every map, eviction, shrink and compaction "
	   "(%lu checks, %lu bad)",
	   d, m->bytes_ok.runs, m->bytes_ok.bad);
	ok(m->callback_ok.bad == 0 && m->callback_ok.runs > 0,
	   "%s: the evict callback was only handed live objects (%lu calls, %llu evicted, %llu "
	   "refused)",
	   d, m->callback_ok.runs, m->evicted, m->evict_refusals);
	ok(m->shrink_ok.bad == 0 && m->reclaimed > 0,
	   "%s: each of %lu shrinks freed the pages asked (less than a unit more) and shrank "
	   "the pool by exactly the pages it reported (%llu)",
	   d, m->shrinks, m->reclaimed);
	ok(m->compact_ok.bad == 0,
	   "%s: each of %lu compactions freed exactly the pages it returned (%llu)", d,
	   m->compactions, m->compacted);
	ok(m->stats_ok.bad == 0, "%s: pool statistics matched the model at all %lu checks", d,
	   m->stats_ok.runs);
}

static void run_driver(const char *driver, const unsigned *sizes, size_t nsizes, uint64_t seed)
{
	struct model *m = calloc(1, sizeof(*m));
	struct zpool_config cfg = { .evict = evict_cb };
	int err = -ENOMEM;

	if (m) {
		m->tab = malloc(sizeof(*m->tab));
		m->live = malloc(sizeof(*m->live) * LIVE_CAP);
	}
	if (m && m->tab && m->live) {
		*m = (struct model){ .driver = driver,
				     .rng = { seed },
				     .sizes = sizes,
				     .nsizes = nsizes,
				     .tab = m->tab,
				     .live = m->live };
		htab_init(m->tab);
		cfg.evict_arg = m;
		err = zpool_create(driver, &cfg, &m->pool);
	}
	if (ok(err == 0, "%s: a pool with an evict callback can be made (err %d)", driver, err)) {
		for (unsigned long op = 1; op <= OPS; op++)
			step(m, op);
		ok(m->nobjs >= OPS / 5, "%s: %d operations ran, %zu of them mallocs", driver, OPS,
		   m->nobjs);
		verify_all(m, "at the end");
		check_stats(m, "at the end");
		report(m);
		free_everything(m);
		zpool_destroy(m->pool);
	}
	if (m) {
		free(m->tab);
		free(m->live);
		free(m->objs);
	}
	free(m);
}

/* Sizes the daemon would store: lz4 of every SAMPLE_STRIDE-th redis page. */
static int load_sizes(unsigned **out, size_t *count)
{
	static const char *const files[] = TESTDATA_FILES;
	char path[4096];
	int err;

	if (testdata_path(files[0], path, sizeof(path)))
		tap_skip_all("no page data at %s (configure --with-pages-dir)", path);
	err = pagesizes_load(files[0], SAMPLE_STRIDE, SAMPLE_MAX, out, count);
	if (!err && *count == 0) {
		free(*out);
		*out = NULL;
		err = -ENODATA;
	}
	return err;
}

int main(void)
{
	const char *const *names = zpool_driver_names();
	uint64_t seed = rng_seed_from_env(0x3d0de1);
	unsigned long long sum = 0;
	unsigned *sizes = NULL;
	size_t nsizes = 0;
	int err = load_sizes(&sizes, &nsizes);

	tap_diag("seed %#llx (UZSWAP_TEST_SEED to rerun)", (unsigned long long)seed);
	if (!ok(err == 0, "object sizes come from lz4 on a sample of redis pages (err %d)", err))
		return tap_done();
	for (size_t i = 0; i < nsizes; i++)
		sum += sizes[i];
	tap_diag("%zu sampled sizes, mean %.0f bytes", nsizes, (double)sum / (double)nsizes);
	for (size_t i = 0; names[i]; i++)
		run_driver(names[i], sizes, nsizes, seed);
	free(sizes);
	return tap_done();
}
