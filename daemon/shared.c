/* SPDX-License-Identifier: MIT */
/*
 * daemon/shared.c - owner counts of shared payloads (see shared.h).
 *
 * struct uzd_shared is a linear-probing hash of {key, owners} slots, at
 * most half full, under one mutex.  A payload in the table has at least two
 * owners; one whose count falls to one leaves it, so "absent" means "one
 * owner", and that owner's put frees the payload.  A slot with owners == 0 is empty;
 * removal shifts the following run back (no tombstones), so a lookup stops
 * at the first empty slot.  The table only grows; it holds one slot per
 * payload shared by a live fork, so it stays small next to the pool.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/shared.h"

struct slot {
	uint64_t key;
	uint64_t owners; /* 0: empty */
};

struct uzd_shared {
	pthread_mutex_t lock;
	struct slot *v;
	size_t cap, n; /* cap a power of two */
};

int uzd_shared_new(struct uzd_shared **out)
{
	struct uzd_shared *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void uzd_shared_free(struct uzd_shared *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->v);
	free(s);
}

static size_t hash(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= UINT64_C(0xff51afd7ed558ccd);
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

/* The slot of @key, or of the empty slot where it would go. */
static size_t probe(const struct uzd_shared *s, uint64_t key)
{
	size_t i = hash(key, s->cap);

	while (s->v[i].owners && s->v[i].key != key)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int grow(struct uzd_shared *s)
{
	size_t cap = s->cap ? s->cap * 2 : 1024;
	struct slot *old = s->v, *v = calloc(cap, sizeof(*v));
	size_t old_cap = s->cap;

	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].owners)
			s->v[probe(s, old[i].key)] = old[i];
	free(old);
	return 0;
}

int uzd_shared_get(struct uzd_shared *s, uint64_t key)
{
	size_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if ((s->n + 1) * 2 > s->cap)
		ret = grow(s);
	if (ret == 0) {
		i = probe(s, key);
		if (s->v[i].owners) {
			s->v[i].owners++;
		} else {
			/* Absent: one owner had it alone, and now there are two. */
			s->v[i].key = key;
			s->v[i].owners = 2;
			s->n++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Empty slot @i, moving back the entries of its run that hashed before it. */
static void remove_at(struct uzd_shared *s, size_t i)
{
	size_t j = i;

	s->v[i].owners = 0;
	s->n--;
	for (;;) {
		size_t home;

		j = (j + 1) & (s->cap - 1);
		if (!s->v[j].owners)
			return;
		home = hash(s->v[j].key, s->cap);
		/* Can the entry at j move to the hole at i?  Only if its home is not in (i, j]. */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			s->v[i] = s->v[j];
			s->v[j].owners = 0;
			i = j;
		}
	}
}

bool uzd_shared_put(struct uzd_shared *s, uint64_t key)
{
	bool last = true;
	size_t i;

	pthread_mutex_lock(&s->lock);
	if (s->cap) {
		i = probe(s, key);
		if (s->v[i].owners) {
			last = false;
			/* One owner left: it needs no count, and frees on its own put. */
			if (--s->v[i].owners == 1)
				remove_at(s, i);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return last;
}

uint64_t uzd_shared_owners(struct uzd_shared *s, uint64_t key)
{
	uint64_t n = 1;
	size_t i;

	pthread_mutex_lock(&s->lock);
	if (s->cap) {
		i = probe(s, key);
		if (s->v[i].owners)
			n = s->v[i].owners;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

int uzd_shared_rekey(struct uzd_shared *s, uint64_t from, uint64_t to)
{
	int ret = -ENOENT;
	size_t i;

	pthread_mutex_lock(&s->lock);
	if (s->cap) {
		i = probe(s, from);
		if (s->v[i].owners) {
			struct slot moved = { .key = to, .owners = s->v[i].owners };

			remove_at(s, i);
			s->v[probe(s, to)] = moved;
			s->n++;
			ret = 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

uint64_t uzd_shared_count(struct uzd_shared *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}
