/* SPDX-License-Identifier: MIT */
/*
 * alloc/pages.c - page provider (see pages.h).
 *
 * struct zpp holds a table of arena slots sized for max_pages when it is
 * made, so the table never moves and zpp_addr() can read it without a lock.
 * A slot is either empty (base NULL) or a mapped arena with a bitmap of held
 * pages and a count of free ones.  Slots [0, top) are the only ones that
 * may be mapped; first_free is a hint: no slot below it has a free page.
 *
 * Allocation is first fit from the lowest slot, which keeps the pool packed
 * into few arenas so that emptied arenas at the top can be unmapped.
 *
 * Lock: zpp->lock covers every field but arena base pointers, which are
 * also written under it but read with acquire loads.  It is a leaf lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc/pages.h"

struct arena {
	unsigned char *base; /* NULL: slot empty */
	uint64_t *held;	     /* one bit per page */
	size_t nfree;
};

struct zpp {
	pthread_mutex_t lock;
	size_t max_pages, arena_pages;
	size_t nslots, top, first_free;
	size_t held, mapped;
	struct arena *slots;
};

int zpp_create(size_t max_pages, size_t arena_pages, struct zpp **out)
{
	struct zpp *zpp;

	if (!max_pages)
		max_pages = ZPP_DEFAULT_MAX_PAGES;
	if (!arena_pages)
		arena_pages = ZPP_DEFAULT_ARENA_PAGES;
	if (arena_pages % 64 || arena_pages < ZPP_MAX_RUN || max_pages > UINT32_MAX)
		return -EINVAL;
	zpp = calloc(1, sizeof(*zpp));
	if (!zpp)
		return -ENOMEM;
	zpp->max_pages = max_pages;
	zpp->arena_pages = arena_pages;
	zpp->nslots = (max_pages + arena_pages - 1) / arena_pages;
	zpp->slots = calloc(zpp->nslots, sizeof(*zpp->slots));
	if (!zpp->slots) {
		free(zpp);
		return -ENOMEM;
	}
	pthread_mutex_init(&zpp->lock, NULL);
	*out = zpp;
	return 0;
}

static void arena_unmap(struct zpp *zpp, struct arena *a)
{
	munmap(a->base, zpp->arena_pages * ZPP_PAGE_SIZE);
	free(a->held);
	__atomic_store_n(&a->base, NULL, __ATOMIC_RELEASE);
	a->held = NULL;
	a->nfree = 0;
	zpp->mapped--;
}

void zpp_destroy(struct zpp *zpp)
{
	if (!zpp)
		return;
	for (size_t i = 0; i < zpp->top; i++)
		if (zpp->slots[i].base)
			arena_unmap(zpp, &zpp->slots[i]);
	pthread_mutex_destroy(&zpp->lock);
	free(zpp->slots);
	free(zpp);
}

static bool bit_test(const uint64_t *map, size_t bit)
{
	return map[bit / 64] >> (bit % 64) & 1;
}

static void bits_assign(uint64_t *map, size_t first, unsigned int n, bool value)
{
	for (size_t bit = first; bit < first + n; bit++) {
		if (value)
			map[bit / 64] |= 1ULL << (bit % 64);
		else
			map[bit / 64] &= ~(1ULL << (bit % 64));
	}
}

/* First offset of @n clear bits in a row, or -1.  Full words are skipped whole. */
static long find_run(const uint64_t *map, size_t nbits, unsigned int n)
{
	size_t run = 0;

	for (size_t bit = 0; bit < nbits; bit++) {
		if (bit % 64 == 0 && map[bit / 64] == ~0ULL) {
			run = 0;
			bit += 63;
			continue;
		}
		run = bit_test(map, bit) ? 0 : run + 1;
		if (run == n)
			return (long)(bit + 1 - n);
	}
	return -1;
}

static int arena_map(struct zpp *zpp, size_t slot)
{
	struct arena *a = &zpp->slots[slot];
	void *base = mmap(NULL, zpp->arena_pages * ZPP_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (base == MAP_FAILED)
		return -ENOMEM;
	a->held = calloc(zpp->arena_pages / 64, sizeof(uint64_t));
	if (!a->held) {
		munmap(base, zpp->arena_pages * ZPP_PAGE_SIZE);
		return -ENOMEM;
	}
	a->nfree = zpp->arena_pages;
	__atomic_store_n(&a->base, base, __ATOMIC_RELEASE);
	zpp->mapped++;
	if (slot >= zpp->top)
		zpp->top = slot + 1;
	return 0;
}

/* The slot to allocate @n pages from, mapping a new arena when none has room. */
static long pick_slot(struct zpp *zpp, unsigned int n, long *offset)
{
	size_t empty = zpp->top;

	while (zpp->first_free < zpp->top && zpp->slots[zpp->first_free].base &&
	       zpp->slots[zpp->first_free].nfree == 0)
		zpp->first_free++;
	for (size_t s = zpp->first_free; s < zpp->top; s++) {
		struct arena *a = &zpp->slots[s];

		if (!a->base) {
			if (empty == zpp->top)
				empty = s;
			continue;
		}
		if (a->nfree >= n && (*offset = find_run(a->held, zpp->arena_pages, n)) >= 0)
			return (long)s;
	}
	if (empty >= zpp->nslots || arena_map(zpp, empty))
		return -1;
	*offset = 0;
	return (long)empty;
}

int zpp_alloc(struct zpp *zpp, unsigned int n, uint32_t *index)
{
	long slot, offset = -1;
	int err = -ENOMEM;

	if (n == 0 || n > ZPP_MAX_RUN)
		return -EINVAL;
	pthread_mutex_lock(&zpp->lock);
	if (zpp->held + n > zpp->max_pages)
		goto out;
	slot = pick_slot(zpp, n, &offset);
	if (slot < 0)
		goto out;
	bits_assign(zpp->slots[slot].held, (size_t)offset, n, true);
	zpp->slots[slot].nfree -= n;
	zpp->held += n;
	*index = (uint32_t)((size_t)slot * zpp->arena_pages + (size_t)offset);
	err = 0;
out:
	pthread_mutex_unlock(&zpp->lock);
	return err;
}

void zpp_free(struct zpp *zpp, uint32_t index, unsigned int n)
{
	size_t slot = index / zpp->arena_pages, offset = index % zpp->arena_pages;
	struct arena *a = &zpp->slots[slot];

	/* Still ours until the bits clear: zap before another thread can get them. */
	madvise(a->base + offset * ZPP_PAGE_SIZE, (size_t)n * ZPP_PAGE_SIZE, MADV_DONTNEED);
	pthread_mutex_lock(&zpp->lock);
	bits_assign(a->held, offset, n, false);
	a->nfree += n;
	zpp->held -= n;
	if (a->nfree == zpp->arena_pages)
		arena_unmap(zpp, a);
	while (zpp->top && !zpp->slots[zpp->top - 1].base)
		zpp->top--;
	if (slot < zpp->first_free)
		zpp->first_free = slot;
	pthread_mutex_unlock(&zpp->lock);
}

void *zpp_addr(const struct zpp *zpp, uint32_t index)
{
	const struct arena *a = &zpp->slots[index / zpp->arena_pages];
	unsigned char *base = __atomic_load_n(&a->base, __ATOMIC_ACQUIRE);

	return base + (size_t)(index % zpp->arena_pages) * ZPP_PAGE_SIZE;
}

bool zpp_held(struct zpp *zpp, uint32_t index)
{
	size_t slot = index / zpp->arena_pages;
	bool held = false;

	pthread_mutex_lock(&zpp->lock);
	if (slot < zpp->top && zpp->slots[slot].base)
		held = bit_test(zpp->slots[slot].held, index % zpp->arena_pages);
	pthread_mutex_unlock(&zpp->lock);
	return held;
}

size_t zpp_pages_held(struct zpp *zpp)
{
	size_t n;

	pthread_mutex_lock(&zpp->lock);
	n = zpp->held;
	pthread_mutex_unlock(&zpp->lock);
	return n;
}

size_t zpp_max_pages(const struct zpp *zpp)
{
	return zpp->max_pages;
}

size_t zpp_index_limit(const struct zpp *zpp)
{
	return zpp->nslots * zpp->arena_pages;
}

size_t zpp_arenas_mapped(struct zpp *zpp)
{
	size_t n;

	pthread_mutex_lock(&zpp->lock);
	n = zpp->mapped;
	pthread_mutex_unlock(&zpp->lock);
	return n;
}
