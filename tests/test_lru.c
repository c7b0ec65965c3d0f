/* SPDX-License-Identifier: MIT */
/*
 * tests/test_lru.c - daemon/lru.c, the fault-in order queue of a client.
 *
 * The queue is a ring of page addresses that doubles when full and halves
 * when a quarter full.  These tests push sequences whose values say where
 * they belong (value k is the k-th pushed), so a pop that returns anything
 * but the next k is an order bug, and check the ring's capacity through the
 * struct's public fields.  The ring is made to wrap (head past the middle,
 * tail around the end) before every resize, because a resize of a wrapped
 * ring is where a copy goes wrong.  Last, pushers and a popper run at once:
 * every value comes out exactly once and each pusher's in its own order.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/lru.h"
#include "tests/tap.h"

#define NGROW 5000	 /* entries pushed to make the ring grow several times */
#define NPUSHERS 3	 /* threads pushing at once ... */
#define PER_PUSHER 20000 /* ... this many values each */
#define POP_CHUNK 37	 /* the popper's batch: not a divisor of anything above */
#define DEADLINE_S 4	 /* the concurrent test gives up after this */

/* Pop @n values and check they are first, first + 1, ...; the number in order. */
static size_t pop_expect_run(struct uzd_lru *q, uint64_t first, size_t n, size_t chunk)
{
	uint64_t out[256];
	size_t good = 0, seen = 0;

	while (seen < n) {
		size_t want = n - seen < chunk ? n - seen : chunk;
		size_t got = uzd_lru_pop(q, out, want);

		if (got != want) {
			tap_diag("pop of %zu after %zu values: expected %zu, got %zu", want, seen,
				 want, got);
			break;
		}
		for (size_t i = 0; i < got; i++, seen++) {
			if (out[i] == first + seen) {
				good++;
				continue;
			}
			if (seen - good < 3)
				tap_diag("value %zu: expected %llu, seen %llu", seen,
					 (unsigned long long)(first + seen),
					 (unsigned long long)out[i]);
		}
	}
	return good;
}

static bool push_run(struct uzd_lru *q, uint64_t first, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (uzd_lru_push(q, first + i) < 0)
			return false;
	return true;
}

static bool is_pow2(size_t v)
{
	return v && !(v & (v - 1));
}

static void test_empty(void)
{
	struct uzd_lru q;
	uint64_t out[4];

	if (!ok(uzd_lru_init(&q) == 0, "a queue initialises"))
		return;
	ok(uzd_lru_count(&q) == 0 && uzd_lru_pop(&q, out, 4) == 0,
	   "a new queue is empty: count 0, a pop returns nothing");
	uzd_lru_fini(&q);
}

static void test_fifo(void)
{
	uint64_t addrs[5] = { 0x7000, 0x3000, 0x9000, 0x1000, 0x5000 }, out[8] = { 0 };
	struct uzd_lru q;
	size_t n1, n2;

	uzd_lru_init(&q);
	for (size_t i = 0; i < 5; i++)
		uzd_lru_push(&q, addrs[i]);
	ok(uzd_lru_count(&q) == 5, "count is the number of entries pushed (%zu, expected 5)",
	   uzd_lru_count(&q));
	n1 = uzd_lru_pop(&q, out, 2);
	ok(n1 == 2 && out[0] == 0x7000 && out[1] == 0x3000,
	   "pop returns the oldest entries first, in push order, not address order "
	   "(expected 0x7000 0x3000, seen %#llx %#llx)",
	   (unsigned long long)out[0], (unsigned long long)out[1]);
	ok(uzd_lru_count(&q) == 3, "a pop takes its entries off the queue (count %zu, expected 3)",
	   uzd_lru_count(&q));
	n2 = uzd_lru_pop(&q, out, 8);
	ok(n2 == 3 && out[0] == 0x9000 && out[1] == 0x1000 && out[2] == 0x5000,
	   "a pop of more than is queued returns only what is queued, in order (%zu, expected 3)",
	   n2);
	ok(uzd_lru_count(&q) == 0 && uzd_lru_pop(&q, out, 8) == 0,
	   "after everything is popped the queue is empty");
	uzd_lru_push(&q, 0xa000);
	ok(uzd_lru_pop(&q, out, 8) == 1 && out[0] == 0xa000,
	   "a queue emptied by pops takes new entries");
	uzd_lru_fini(&q);
}

static void test_duplicates(void)
{
	uint64_t out[4] = { 0 };
	struct uzd_lru q;

	uzd_lru_init(&q);
	uzd_lru_push(&q, 0x1000);
	uzd_lru_push(&q, 0x2000);
	uzd_lru_push(&q, 0x1000);
	ok(uzd_lru_pop(&q, out, 4) == 3 && out[0] == 0x1000 && out[1] == 0x2000 && out[2] == 0x1000,
	   "a page pushed twice is queued twice, each time at the end");
	uzd_lru_fini(&q);
}

/* Many entries: the ring doubles, keeps every entry in order. */
static void test_growth(void)
{
	size_t cap0, good;
	struct uzd_lru q;
	bool pushed;

	uzd_lru_init(&q);
	uzd_lru_push(&q, 0);
	cap0 = q.cap;
	pushed = push_run(&q, 1, NGROW - 1);
	ok(pushed && uzd_lru_count(&q) == NGROW, "%d entries are pushed (count %zu)", NGROW,
	   uzd_lru_count(&q));
	ok(cap0 > 0 && q.cap >= NGROW && q.cap > cap0 && is_pow2(q.cap) && q.dropped == 0,
	   "the ring grows past its initial capacity %zu to a power of two holding them (%zu), "
	   "dropping none",
	   cap0, q.cap);
	good = pop_expect_run(&q, 0, NGROW, 100);
	ok(good == NGROW, "after growing, all %d entries pop in push order (%zu in order)", NGROW,
	   good);
	uzd_lru_fini(&q);
}

/*
 * Head in the middle and the tail wrapped round the end of the ring when
 * it has to grow: the resize must copy the two parts in order.
 */
static void test_growth_across_wrap(void)
{
	size_t cap0, head0, good, popped;
	uint64_t out[256];
	struct uzd_lru q;

	uzd_lru_init(&q);
	uzd_lru_push(&q, 0);
	cap0 = q.cap;
	/* Fill to cap0, take 3/4 off the front: head at 3/4 of the ring. */
	push_run(&q, 1, cap0 - 1);
	popped = 0;
	while (popped < cap0 * 3 / 4) {
		size_t want = cap0 * 3 / 4 - popped;

		popped += uzd_lru_pop(&q, out, want < 256 ? want : 256);
	}
	head0 = q.head;
	/* Refill to exactly full: the new entries wrap to the ring's start. */
	push_run(&q, cap0, cap0 * 3 / 4);
	ok(q.cap == cap0 && q.count == cap0 && head0 != 0,
	   "the ring is full and wrapped (cap %zu, count %zu, head %zu)", q.cap, q.count, head0);
	/* One more push grows the wrapped ring. */
	push_run(&q, cap0 + cap0 * 3 / 4, 1);
	ok(q.cap > cap0 && q.count == cap0 + 1,
	   "a push into the full wrapped ring grows it (cap %zu -> %zu)", cap0, q.cap);
	good = pop_expect_run(&q, popped, cap0 + 1, 64);
	ok(good == cap0 + 1,
	   "entries on both sides of the wrap keep their order through the growth (%zu of %zu)",
	   good, cap0 + 1);
	uzd_lru_fini(&q);
}

/* Mostly empty: the ring halves, and what is left keeps its order. */
static void test_shrink(void)
{
	size_t big, good;
	struct uzd_lru q;

	uzd_lru_init(&q);
	push_run(&q, 0, NGROW);
	big = q.cap;
	/* Take most of it off, 100 at a time, as reclaim does. */
	good = pop_expect_run(&q, 0, NGROW - 300, 100);
	ok(good == NGROW - 300 && q.cap < big && q.cap >= q.count && is_pow2(q.cap),
	   "popping %d of %d entries shrinks the ring (cap %zu -> %zu, count %zu)", NGROW - 300,
	   NGROW, big, q.cap, q.count);
	good = pop_expect_run(&q, NGROW - 300, 300, 7);
	ok(good == 300, "the entries left after the shrinks keep their order (%zu of 300)", good);
	ok(uzd_lru_count(&q) == 0 && q.cap <= big / 4,
	   "an emptied ring has given most of its memory back (cap %zu, was %zu)", q.cap, big);
	push_run(&q, NGROW, 1000);
	good = pop_expect_run(&q, NGROW, 1000, 256);
	ok(good == 1000, "a shrunk ring grows again and keeps its order (%zu of 1000)", good);
	uzd_lru_fini(&q);
}

/*
 * A shrink of a wrapped ring.  With the ring of capacity C full and its
 * head at C/8, one pop of 13C/16 leaves 3C/16 < C/4 entries running from
 * 15C/16 round the end to C/8: the resize must copy both parts in order.
 */
static void test_shrink_across_wrap(void)
{
	static uint64_t out[NGROW];
	size_t cap0, c, good, n;
	struct uzd_lru q;

	uzd_lru_init(&q);
	uzd_lru_push(&q, 0);
	cap0 = q.cap;
	/* One more than the initial capacity: the ring has grown, so it may shrink. */
	push_run(&q, 1, cap0);
	c = q.cap;
	push_run(&q, cap0 + 1, c - cap0 - 1);
	n = uzd_lru_pop(&q, out, c / 8);
	push_run(&q, c, c / 8);
	if (!ok(n == c / 8 && q.count == c && q.cap == c && q.head == c / 8 && c <= NGROW,
		"the grown ring is full with its head at an eighth (cap %zu, count %zu, head %zu)",
		q.cap, q.count, q.head))
		goto out;
	n = uzd_lru_pop(&q, out, c * 13 / 16);
	ok(q.cap < c && q.count == c - c * 13 / 16,
	   "a pop leaving it under a quarter full shrinks the wrapped ring (cap %zu -> %zu)", c,
	   q.cap);
	good = pop_expect_run(&q, c / 8 + n, q.count, 16);
	ok(good == c - c * 13 / 16,
	   "entries on both sides of the wrap keep their order through the shrink (%zu of %zu)",
	   good, c - c * 13 / 16);
out:
	uzd_lru_fini(&q);
}

static void test_clear(void)
{
	uint64_t out[4] = { 0 };
	struct uzd_lru q;
	size_t n;

	uzd_lru_init(&q);
	push_run(&q, 100, 700);
	uzd_lru_clear(&q);
	ok(uzd_lru_count(&q) == 0 && uzd_lru_pop(&q, out, 4) == 0,
	   "clear forgets every entry: count 0, a pop returns nothing");
	ok(q.dropped == 0, "clear resets the count of dropped pushes");
	push_run(&q, 5, 3);
	n = uzd_lru_pop(&q, out, 4);
	ok(n == 3 && out[0] == 5 && out[1] == 6 && out[2] == 7,
	   "a cleared queue takes new entries in order (seen %llu %llu %llu)",
	   (unsigned long long)out[0], (unsigned long long)out[1], (unsigned long long)out[2]);
	uzd_lru_fini(&q);
}

/* ---- pushers and a popper at once ---- */

struct shared {
	struct uzd_lru q;
	atomic_bool go;
	atomic_size_t push_errors;
};

struct pusher {
	struct shared *s;
	uint64_t id;
	pthread_t tid;
	bool started;
};

/* Values are (pusher id + 1) << 32 | sequence: the popper can tell whose and which. */
static void *pusher_run(void *arg)
{
	struct pusher *p = arg;

	while (!atomic_load(&p->s->go))
		;
	for (uint64_t k = 0; k < PER_PUSHER; k++)
		if (uzd_lru_push(&p->s->q, (p->id + 1) << 32 | k) < 0)
			atomic_fetch_add(&p->s->push_errors, 1);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What the popper has seen. */
struct tally {
	uint8_t seen[NPUSHERS][PER_PUSHER];
	uint64_t next[NPUSHERS];
	size_t total, dup, foreign, disorder;
};

static void tally_add(struct tally *t, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++, t->total++) {
		uint64_t who = (v[i] >> 32) - 1, k = v[i] & 0xffffffffu;

		if (who >= NPUSHERS || k >= PER_PUSHER) {
			t->foreign++;
			continue;
		}
		t->dup += t->seen[who][k]++ != 0;
		t->disorder += k != t->next[who];
		t->next[who] = k + 1;
	}
}

static void test_concurrent(void)
{
	static struct tally t;
	struct pusher p[NPUSHERS];
	uint64_t out[POP_CHUNK];
	struct shared s = { 0 };
	size_t missing = 0, n;
	bool all_started = true;
	double t0;

	memset(&t, 0, sizeof(t));
	uzd_lru_init(&s.q);
	for (size_t i = 0; i < NPUSHERS; i++) {
		p[i] = (struct pusher){ .s = &s, .id = i };
		p[i].started = pthread_create(&p[i].tid, NULL, pusher_run, &p[i]) == 0;
		all_started &= p[i].started;
	}
	atomic_store(&s.go, true);
	t0 = now_s();
	/* This thread pops while they push, until it has had as many as were pushed. */
	while (all_started && t.total < (size_t)NPUSHERS * PER_PUSHER && now_s() - t0 < DEADLINE_S)
		tally_add(&t, out, uzd_lru_pop(&s.q, out, POP_CHUNK));
	for (size_t i = 0; i < NPUSHERS; i++)
		if (p[i].started)
			pthread_join(p[i].tid, NULL);
	/* Whatever the deadline left behind. */
	while ((n = uzd_lru_pop(&s.q, out, POP_CHUNK)) > 0)
		tally_add(&t, out, n);
	for (size_t w = 0; w < NPUSHERS; w++)
		for (size_t k = 0; k < PER_PUSHER; k++)
			missing += t.seen[w][k] == 0;
	if (!ok(all_started, "%d pusher threads start", NPUSHERS))
		goto out;
	ok(atomic_load(&s.push_errors) == 0 && t.dup == 0 && missing == 0 && t.foreign == 0 &&
		   t.total == (size_t)NPUSHERS * PER_PUSHER,
	   "%d pushers and a popper at once: every one of %d values is popped exactly once "
	   "(%zu popped, %zu twice, %zu never, %zu unknown, %zu push errors)",
	   NPUSHERS, NPUSHERS * PER_PUSHER, t.total, t.dup, missing, t.foreign,
	   atomic_load(&s.push_errors));
	ok(t.disorder == 0,
	   "each pusher's values are popped in the order it pushed them (%zu out of order)",
	   t.disorder);
	ok(uzd_lru_count(&s.q) == 0, "the queue is empty at the end (%zu)", uzd_lru_count(&s.q));
out:
	uzd_lru_fini(&s.q);
}

int main(void)
{
	test_empty();
	test_fifo();
	test_duplicates();
	test_growth();
	test_growth_across_wrap();
	test_shrink();
	test_shrink_across_wrap();
	test_clear();
	test_concurrent();
	return tap_done();
}
