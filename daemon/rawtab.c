/* SPDX-License-Identifier: MIT */
/*
 * daemon/rawtab.c - the owners of RAW pool objects (see rawtab.h).
 *
 * Slots v[0..cap) with linear probing from hash(handle).  Deletion shifts
 * back every following slot of the cluster that may move (one whose home
 * is not between the hole and itself), so a lookup can stop at the first
 * empty slot.  Everything under the one mutex.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/rawtab.h"

#define MIN_CAP 64

static size_t home(const struct uzd_rawtab *t, unsigned long handle)
{
	/* Fibonacci hashing: handles differ mostly in their low bits. */
	return (size_t)(((uint64_t)handle * UINT64_C(0x9e3779b97f4a7c15)) >> 32) & (t->cap - 1);
}

/* The slot holding @handle, or the empty slot where it would go. */
static size_t probe(const struct uzd_rawtab *t, unsigned long handle)
{
	size_t i = home(t, handle);

	while (t->v[i].client_id && t->v[i].handle != handle)
		i = (i + 1) & (t->cap - 1);
	return i;
}

static int resize(struct uzd_rawtab *t, size_t cap)
{
	struct uzd_rawtab_slot *old = t->v;
	size_t oldcap = t->cap;

	t->v = calloc(cap, sizeof(*t->v));
	if (!t->v) {
		t->v = old;
		return -ENOMEM;
	}
	t->cap = cap;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].client_id)
			t->v[probe(t, old[i].handle)] = old[i];
	free(old);
	return 0;
}

int uzd_rawtab_init(struct uzd_rawtab *t)
{
	memset(t, 0, sizeof(*t));
	return -pthread_mutex_init(&t->lock, NULL);
}

void uzd_rawtab_fini(struct uzd_rawtab *t)
{
	free(t->v);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

int uzd_rawtab_add(struct uzd_rawtab *t, unsigned long handle, uint32_t client_id, uint64_t addr)
{
	int ret = 0;
	size_t i;

	if (!client_id)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (2 * (t->n + 1) > t->cap)
		ret = resize(t, t->cap ? 2 * t->cap : MIN_CAP);
	if (ret == 0) {
		i = probe(t, handle);
		t->n += !t->v[i].client_id;
		t->v[i] = (struct uzd_rawtab_slot){ .handle = handle,
						    .addr = addr,
						    .client_id = client_id };
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

/* Is @home's probe sequence, which reaches @at, passing through the hole @hole? */
static bool between(size_t hole, size_t home_, size_t at)
{
	return hole <= at ? hole < home_ && home_ <= at : hole < home_ || home_ <= at;
}

void uzd_rawtab_del(struct uzd_rawtab *t, unsigned long handle)
{
	size_t hole, j;

	pthread_mutex_lock(&t->lock);
	if (!t->cap)
		goto out;
	hole = probe(t, handle);
	if (!t->v[hole].client_id)
		goto out;
	t->v[hole].client_id = 0;
	t->n--;
	for (j = (hole + 1) & (t->cap - 1); t->v[j].client_id; j = (j + 1) & (t->cap - 1)) {
		/* A slot may fill the hole unless its home lies after the hole, up to it. */
		if (between(hole, home(t, t->v[j].handle), j))
			continue;
		t->v[hole] = t->v[j];
		t->v[j].client_id = 0;
		hole = j;
	}
	if (t->cap > MIN_CAP && 8 * t->n < t->cap)
		resize(t, t->cap / 2); /* on failure the table just stays larger */
out:
	pthread_mutex_unlock(&t->lock);
}

int uzd_rawtab_get(struct uzd_rawtab *t, unsigned long handle, uint32_t *client_id, uint64_t *addr)
{
	int ret = -ENOENT;
	size_t i;

	pthread_mutex_lock(&t->lock);
	if (t->cap) {
		i = probe(t, handle);
		if (t->v[i].client_id) {
			*client_id = t->v[i].client_id;
			*addr = t->v[i].addr;
			ret = 0;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

size_t uzd_rawtab_count(struct uzd_rawtab *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}
