/* SPDX-License-Identifier: MIT */
/*
 * tests/test_alloc_threads.c - 4 threads on one pool, for every registered
 * driver: malloc, free, map+verify, shrink and compact at once for
 * RUN_SECONDS each, with every object's bytes checked.
 *
 * struct shared holds NSLOTS object slots, each thread owning a quarter for
 * malloc and free, and a handle -> slot hash so that the evict callback,
 * which may run in any thread and be handed any thread's object, can find
 * it.  Like a swap entry tree, a slot is claimed before it is used: its
 * state goes LIVE -> BUSY under shared.lock before a map, a free or an
 * eviction, so an owner's free and a reclaimer's eviction never both take
 * the same object.  A callback handed a handle it cannot claim (its owner is
 * freeing or reading it) refuses, as zswap does; that is how frees racing
 * reclaim, the path where z3fold had its bugs, are exercised.
 *
 * Thread 0 shrinks 15 times as often as the others, like a reclaim thread.
 *
 * Lock: shared.lock guards slot states and the hash; it is never held
 * across a pool call, so the pool's own locking is what is under test.
 * Checked: every map and every eviction sees the object's bytes; every free
 * returns 0; shrink returns 0 or -EAGAIN; at the end the statistics match
 * the live slots and freeing them all empties the pool.  Run it under
 * AddressSanitizer (the sanitizer build) to catch races that corrupt memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc/pages.h"
#include "alloc/zpool.h"
#include "tests/objfill.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define NTHREADS 4
#define RUN_SECONDS 2.0
#define SLOTS_PER_THREAD 512
#define NSLOTS (NTHREADS * SLOTS_PER_THREAD)
#define NBUCKETS 4096
#define MAX_DIAGS 5

enum slot_state {
	SLOT_FREE,
	SLOT_LIVE,
	SLOT_BUSY, /* claimed by one thread: being allocated, read, freed or evicted */
};

struct slot {
	unsigned long handle; /* valid while LIVE, and while BUSY after malloc */
	uint64_t seed, sum;
	uint32_t size;
	enum slot_state state;
	int32_t next; /* hash chain, -1 ends it */
};

struct counts {
	unsigned long mallocs, frees, maps, shrinks, compactions, reclaimed;
	unsigned long evicted, refused, malloc_errors, free_errors, shrink_errors, bad_bytes;
};

struct shared {
	const char *driver;
	struct zpool *pool;
	pthread_mutex_t lock;
	struct slot slots[NSLOTS];
	int32_t bucket[NBUCKETS];
	struct counts cb; /* the evict callback's, updated atomically */
	double end;
	unsigned long diags;
};

struct worker {
	struct shared *s;
	unsigned int id;
	struct rng rng;
	struct counts c;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void diag_once(struct shared *s, const char *what, unsigned long handle, long a, long b)
{
	if (__atomic_fetch_add(&s->diags, 1, __ATOMIC_RELAXED) < MAX_DIAGS)
		tap_diag("%s: %s (handle %#lx): expected %ld, saw %ld", s->driver, what, handle, a,
			 b);
}

static unsigned int bucket_of(unsigned long handle)
{
	return (unsigned int)(((uint64_t)handle * 0x9e3779b97f4a7c15ULL) >> 52) % NBUCKETS;
}

/* Hash operations: shared.lock held. */
static void hash_add(struct shared *s, int32_t i)
{
	int32_t *head = &s->bucket[bucket_of(s->slots[i].handle)];

	s->slots[i].next = *head;
	*head = i;
}

static void hash_del(struct shared *s, int32_t i)
{
	int32_t *p = &s->bucket[bucket_of(s->slots[i].handle)];

	while (*p != i)
		p = &s->slots[*p].next;
	*p = s->slots[i].next;
}

static int32_t hash_find(struct shared *s, unsigned long handle)
{
	int32_t i = s->bucket[bucket_of(handle)];

	while (i >= 0 && s->slots[i].handle != handle)
		i = s->slots[i].next;
	return i;
}

/* LIVE -> BUSY (or FREE -> BUSY for a malloc); false when someone else holds it. */
static bool claim(struct shared *s, int32_t i, enum slot_state from)
{
	bool got;

	pthread_mutex_lock(&s->lock);
	got = s->slots[i].state == from;
	if (got) {
		s->slots[i].state = SLOT_BUSY;
		if (from == SLOT_LIVE)
			hash_del(s, i);
	}
	pthread_mutex_unlock(&s->lock);
	return got;
}

static void settle(struct shared *s, int32_t i, enum slot_state to)
{
	pthread_mutex_lock(&s->lock);
	s->slots[i].state = to;
	if (to == SLOT_LIVE)
		hash_add(s, i);
	pthread_mutex_unlock(&s->lock);
}

static bool intact(struct shared *s, struct slot *o)
{
	const void *p = zpool_map(s->pool, o->handle, ZPOOL_MM_RO);
	uint64_t sum = p ? objfill_checksum(p, o->size) : 0;

	if (p)
		zpool_unmap(s->pool, o->handle);
	if (sum != o->sum)
		diag_once(s, "object bytes: checksum", o->handle, (long)o->sum, (long)sum);
	return sum == o->sum;
}

static void write_obj(struct shared *s, struct slot *o, uint64_t seed, enum zpool_map_mode mode)
{
	void *p = zpool_map(s->pool, o->handle, mode);

	o->seed = seed;
	o->sum = ~0ULL;
	if (!p)
		return;
	objfill_words(p, o->size, seed);
	o->sum = objfill_checksum(p, o->size);
	zpool_unmap(s->pool, o->handle);
}

static int evict_cb(struct zpool *pool, unsigned long handle, void *arg)
{
	struct shared *s = arg;
	int32_t i;
	int err;

	pthread_mutex_lock(&s->lock);
	i = hash_find(s, handle);
	if (i >= 0 && s->slots[i].state == SLOT_LIVE) {
		s->slots[i].state = SLOT_BUSY;
		hash_del(s, i);
	} else {
		i = -1;
	}
	pthread_mutex_unlock(&s->lock);
	if (i < 0) {
		__atomic_fetch_add(&s->cb.refused, 1, __ATOMIC_RELAXED);
		return -EBUSY;
	}
	if (!intact(s, &s->slots[i]))
		__atomic_fetch_add(&s->cb.bad_bytes, 1, __ATOMIC_RELAXED);
	err = zpool_free(pool, handle);
	if (err) {
		diag_once(s, "free from the evict callback", handle, 0, err);
		__atomic_fetch_add(&s->cb.free_errors, 1, __ATOMIC_RELAXED);
	}
	__atomic_fetch_add(&s->cb.evicted, 1, __ATOMIC_RELAXED);
	settle(s, i, SLOT_FREE);
	return 0;
}

static uint32_t draw_size(struct rng *r)
{
	/* Mostly the 1-3 KiB of typical compressed pages, sometimes anything up to a page. */
	if (rng_below(r, 8) == 0)
		return 1 + (uint32_t)rng_below(r, ZPOOL_MAX_OBJECT);
	return 512 + (uint32_t)rng_below(r, 2560);
}

static void do_malloc(struct worker *w, int32_t i)
{
	struct shared *s = w->s;
	struct slot *o = &s->slots[i];
	int err;

	o->size = draw_size(&w->rng);
	err = zpool_malloc(s->pool, o->size, &o->handle);
	if (err) {
		diag_once(s, "malloc", 0, 0, err);
		w->c.malloc_errors++;
		settle(s, i, SLOT_FREE);
		return;
	}
	write_obj(s, o, rng_next(&w->rng), ZPOOL_MM_WO);
	w->c.mallocs++;
	settle(s, i, SLOT_LIVE);
}

static void do_free(struct worker *w, int32_t i)
{
	struct shared *s = w->s;
	int err = zpool_free(s->pool, s->slots[i].handle);

	if (err) {
		diag_once(s, "free", s->slots[i].handle, 0, err);
		w->c.free_errors++;
	}
	w->c.frees++;
	settle(s, i, SLOT_FREE);
}

static void do_map(struct worker *w, int32_t i)
{
	struct shared *s = w->s;
	struct slot *o = &s->slots[i];

	w->c.bad_bytes += !intact(s, o);
	if (rng_below(&w->rng, 8) == 0)
		write_obj(s, o, rng_next(&w->rng), ZPOOL_MM_RW);
	w->c.maps++;
	settle(s, i, SLOT_LIVE);
}

static void do_shrink(struct worker *w)
{
	unsigned int want = 1 + (unsigned int)rng_below(&w->rng, 2), got = ~0u;
	int err = zpool_shrink(w->s->pool, want, &got);

	/* zpool.h: past @want by less than one unit, a unit being at most a provider run. */
	if ((err != 0 && err != -EAGAIN) || got >= want + ZPP_MAX_RUN || (err == 0) != (got > 0)) {
		if (__atomic_fetch_add(&w->s->diags, 1, __ATOMIC_RELAXED) < MAX_DIAGS)
			tap_diag("%s: shrink(%u): expected 0 with 1..%u reclaimed or -EAGAIN with "
				 "0; saw %d with %u",
				 w->s->driver, want, want + ZPP_MAX_RUN - 1, err, got);
		w->c.shrink_errors++;
	}
	w->c.shrinks++;
	if (got != ~0u)
		w->c.reclaimed += got;
}

static void step(struct worker *w)
{
	struct shared *s = w->s;
	uint64_t r = rng_below(&w->rng, 10000);
	int32_t i = (int32_t)(w->id * SLOTS_PER_THREAD + rng_below(&w->rng, SLOTS_PER_THREAD));

	/* Thread 0 is also a reclaim thread, so that evictions race the others' frees. */
	if (r < (w->id == 0 ? 300 : 20)) {
		do_shrink(w);
	} else if (r < 25) {
		zpool_compact(s->pool);
		w->c.compactions++;
	} else if (claim(s, i, SLOT_FREE)) {
		do_malloc(w, i);
	} else if (claim(s, i, SLOT_LIVE)) {
		if (r < 4000)
			do_free(w, i);
		else
			do_map(w, i);
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (now_s() < w->s->end)
		for (int k = 0; k < 64; k++)
			step(w);
	return NULL;
}

static void add_counts(struct counts *sum, const struct counts *c)
{
	sum->mallocs += c->mallocs;
	sum->frees += c->frees;
	sum->maps += c->maps;
	sum->shrinks += c->shrinks;
	sum->compactions += c->compactions;
	sum->reclaimed += c->reclaimed;
	sum->evicted += c->evicted;
	sum->refused += c->refused;
	sum->malloc_errors += c->malloc_errors;
	sum->free_errors += c->free_errors;
	sum->shrink_errors += c->shrink_errors;
	sum->bad_bytes += c->bad_bytes;
}

/* Single-threaded again: the live slots against the pool, then free them all. */
static void check_end(struct shared *s)
{
	size_t live = 0, bad = 0, pages_left;
	unsigned long long bytes = 0;
	struct zpool_stats st;
	int errs = 0;

	for (int32_t i = 0; i < NSLOTS; i++)
		if (s->slots[i].state == SLOT_LIVE) {
			live++;
			bytes += s->slots[i].size;
			bad += !intact(s, &s->slots[i]);
		}
	zpool_stats(s->pool, &st);
	ok(bad == 0, "%s: after the threads all %zu live objects hold their bytes (%zu do not)",
	   s->driver, live, bad);
	ok(st.objects == live && st.object_bytes == bytes,
	   "%s: after the threads the stats count the live objects (expected %zu objects, %llu "
	   "bytes; saw %zu, %zu)",
	   s->driver, live, bytes, st.objects, st.object_bytes);
	for (int32_t i = 0; i < NSLOTS; i++)
		if (s->slots[i].state == SLOT_LIVE)
			errs += zpool_free(s->pool, s->slots[i].handle) != 0;
	pages_left = zpool_total_size(s->pool) / ZPOOL_PAGE_SIZE;
	ok(errs == 0 && pages_left == 0,
	   "%s: freeing the survivors empties the pool (%d frees failed, %zu pages left)",
	   s->driver, errs, pages_left);
}

static void run_driver(const char *driver, uint64_t seed)
{
	struct shared *s = calloc(1, sizeof(*s));
	struct zpool_config cfg = { .evict = evict_cb, .evict_arg = s };
	struct worker w[NTHREADS];
	pthread_t tid[NTHREADS];
	struct counts c = { 0 };
	struct zpool_stats st;
	int err = s ? zpool_create(driver, &cfg, &s->pool) : -ENOMEM;

	if (!ok(err == 0, "%s: a pool with an evict callback can be made (err %d)", driver, err)) {
		free(s);
		return;
	}
	s->driver = driver;
	pthread_mutex_init(&s->lock, NULL);
	memset(s->bucket, 0xff, sizeof(s->bucket));
	s->end = now_s() + RUN_SECONDS;
	for (unsigned int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .s = s, .id = i, .rng = { seed + i * 0x1000193ULL } };
		pthread_create(&tid[i], NULL, worker_main, &w[i]);
	}
	for (unsigned int i = 0; i < NTHREADS; i++) {
		pthread_join(tid[i], NULL);
		add_counts(&c, &w[i].c);
	}
	add_counts(&c, &s->cb);
	tap_diag("%s: %lu mallocs, %lu frees, %lu maps, %lu shrinks (%lu pages, %lu evicted, %lu "
		 "refused), %lu compactions",
		 driver, c.mallocs, c.frees, c.maps, c.shrinks, c.reclaimed, c.evicted, c.refused,
		 c.compactions);
	ok(c.mallocs > 1000 && c.malloc_errors == 0,
	   "%s: 4 threads allocated %lu objects with no error (%lu failed)", driver, c.mallocs,
	   c.malloc_errors);
	ok(c.free_errors == 0,
	   "%s: every free, by owners and by the evict callback, returned 0 "
	   "(%lu did not)",
	   driver, c.free_errors);
	ok(c.bad_bytes == 0, "%s: every map and eviction saw the object's own bytes (%lu did not)",
	   driver, c.bad_bytes);
	ok(c.shrink_errors == 0 && c.evicted > 0,
	   "%s: every shrink returned 0 or -EAGAIN with a consistent count, %lu objects evicted",
	   driver, c.evicted);
	zpool_stats(s->pool, &st);
	ok(st.evicted == s->cb.evicted && st.evict_failures == s->cb.refused,
	   "%s: the stats count the callback's %lu evictions and %lu refusals (saw %llu, %llu)",
	   driver, s->cb.evicted, s->cb.refused, st.evicted, st.evict_failures);
	check_end(s);
	zpool_destroy(s->pool);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int main(void)
{
	const char *const *names = zpool_driver_names();
	uint64_t seed = rng_seed_from_env(0x7412ead5);

	tap_diag("seed %#llx (UZSWAP_TEST_SEED to rerun; thread timing is not)",
		 (unsigned long long)seed);
	for (size_t i = 0; names[i]; i++)
		run_driver(names[i], seed);
	return tap_done();
}
