/* SPDX-License-Identifier: MIT */
/*
 * daemon/lru.c - the fault-in order queue of one client (see lru.h).
 *
 * A ring of page addresses that doubles when full and halves when a
 * quarter full, so that a client whose resident set shrinks gives the
 * memory back.  Pushes come from the fault path: they are a lock, a store
 * and an unlock unless the ring grows.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/lru.h"

#define LRU_MIN_CAP 256

int uzd_lru_init(struct uzd_lru *q)
{
	memset(q, 0, sizeof(*q));
	return -pthread_mutex_init(&q->lock, NULL);
}

void uzd_lru_fini(struct uzd_lru *q)
{
	free(q->ring);
	q->ring = NULL;
	q->cap = q->count = q->head = 0;
	pthread_mutex_destroy(&q->lock);
}

/* Copy the entries, oldest first, into a new ring of @cap; lock held. */
static int lru_resize(struct uzd_lru *q, size_t cap)
{
	uint64_t *ring = malloc(cap * sizeof(*ring));

	if (!ring)
		return -ENOMEM;
	for (size_t i = 0; i < q->count; i++)
		ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
	free(q->ring);
	q->ring = ring;
	q->cap = cap;
	q->head = 0;
	return 0;
}

int uzd_lru_push(struct uzd_lru *q, uint64_t addr)
{
	int ret = 0;

	pthread_mutex_lock(&q->lock);
	if (q->count == q->cap)
		ret = lru_resize(q, q->cap ? q->cap * 2 : LRU_MIN_CAP);
	if (ret == 0) {
		q->ring[(q->head + q->count) & (q->cap - 1)] = addr;
		q->count++;
	} else {
		q->dropped++;
	}
	pthread_mutex_unlock(&q->lock);
	return ret;
}

size_t uzd_lru_pop(struct uzd_lru *q, uint64_t *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->count < max ? q->count : max;
	for (size_t i = 0; i < n; i++)
		out[i] = q->ring[(q->head + i) & (q->cap - 1)];
	q->head = (q->head + n) & (q->cap ? q->cap - 1 : 0);
	q->count -= n;
	/* Shrinking is best effort: a failed malloc keeps the big ring. */
	if (q->cap > LRU_MIN_CAP && q->count < q->cap / 4)
		lru_resize(q, q->cap / 2);
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t uzd_lru_count(struct uzd_lru *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->count;
	pthread_mutex_unlock(&q->lock);
	return n;
}

void uzd_lru_clear(struct uzd_lru *q)
{
	pthread_mutex_lock(&q->lock);
	q->head = q->count = 0;
	q->dropped = 0;
	pthread_mutex_unlock(&q->lock);
}
