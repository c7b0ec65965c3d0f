/* SPDX-License-Identifier: MIT */
/*
 * alloc/zbud.c - zbud: at most two objects per pool page.
 *
 * Deterministic and simple, which is its point: an object never moves, a
 * page holds a "first" object left-justified at offset 0 and a "last" one
 * right-justified against the end, and reclaiming one page evicts at most
 * two objects.  Space is counted in 64-byte chunks, so the two objects fit
 * together when their rounded sizes sum to at most 4096 bytes.
 *
 * Page metadata lives beside the pool, not in the page (the kernel kept a
 * header in the first chunk): a whole page stays usable, so a raw 4096-byte
 * page is just a first object that fills its page.  struct zbud_meta, one per
 * page index of the provider, sits in a struct pagetab (alloc/pagetab.h,
 * blocks made when first needed); a meta never moves.
 *
 *   unbuddied[n]  pages with exactly one object and n free chunks (n > 0)
 *   full          pages with no room left (two objects, or one of 64 chunks)
 *   lru           every page not under reclaim, most recent allocation first
 *   fill[n]       how many pages hold n objects (1 or 2), for class stats
 *
 * A handle is (generation << 34 | page index << 2 | buddy), buddy 1 = first,
 * 2 = last: never 0, never a pointer.  Each buddy slot's generation (22
 * bits, kept across the page's release and reuse) is bumped by every free,
 * so a stale handle is refused until that one slot has been freed 2^22
 * times since; without it a slot's handle came back after one cycle.
 *
 * Lock: one pool mutex covers all of the above, map included: map checks
 * the handle is live before it computes an address, since a racing free
 * may already have emptied the slot (the evict callback maps objects
 * their owners may be freeing).
 * shrink drops the mutex around each evict callback, which frees through
 * zpool_free(); a page under reclaim is on no list, receives no objects, and
 * is released only by page_release(), called with the mutex held, exactly
 * once: by free when the page is not under reclaim, else by the reclaimer.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "alloc/list.h"
#include "alloc/pages.h"
#include "alloc/pagetab.h"
#include "alloc/zpool.h"

#define CHUNK_SHIFT 6
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define NCHUNKS (ZPOOL_PAGE_SIZE / CHUNK_SIZE)
#define RECLAIM_RETRIES 8
#define GEN_SHIFT 34
#define GEN_MASK ((1u << (ZPOOL_HANDLE_BITS - GEN_SHIFT)) - 1)

enum buddy {
	BUDDY_FIRST = 1,
	BUDDY_LAST = 2,
};

struct zbud_meta {
	struct list_node link; /* unbuddied[] or full; unlinked while under reclaim */
	struct list_node lru;
	uint16_t size[3]; /* [BUDDY_FIRST], [BUDDY_LAST]: bytes, 0 when free */
	uint32_t gen[3];  /* per slot, bumped by each free; survives page reuse */
	uint32_t index;	  /* the page's provider index */
	bool in_use;	  /* the page is held from the provider */
	bool under_reclaim;
};

struct zbud_pool {
	pthread_mutex_t lock;
	struct zpool *zpool;
	zpool_evict_fn evict;
	void *evict_arg;
	struct zpp *zpp;
	struct pagetab metas; /* struct zbud_meta by page index */
	struct list_node unbuddied[NCHUNKS];
	struct list_node full;
	struct list_node lru;
	struct zpool_stats stats;
	size_t fill[3]; /* [n]: pages holding n objects, n = 1, 2 */
};

static unsigned int chunks(size_t size)
{
	return (unsigned int)((size + CHUNK_SIZE - 1) >> CHUNK_SHIFT);
}

static unsigned int free_chunks(const struct zbud_meta *m)
{
	return NCHUNKS - chunks(m->size[BUDDY_FIRST]) - chunks(m->size[BUDDY_LAST]);
}

static unsigned int objects_in(const struct zbud_meta *m)
{
	return (m->size[BUDDY_FIRST] != 0) + (m->size[BUDDY_LAST] != 0);
}

/* A page went from holding @from objects to @to; the mutex is held. */
static void fill_move(struct zbud_pool *p, unsigned int from, unsigned int to)
{
	if (from)
		p->fill[from]--;
	if (to)
		p->fill[to]++;
}

static unsigned long encode(const struct zbud_meta *m, enum buddy b)
{
	return (unsigned long)m->gen[b] << GEN_SHIFT | (unsigned long)m->index << 2 | b;
}

/* The meta of a page index, or NULL when that part of the table was never made. */
static struct zbud_meta *meta_of(struct zbud_pool *p, uint32_t index)
{
	return pagetab_get(&p->metas, index);
}

static int meta_make(struct zbud_pool *p, uint32_t index, struct zbud_meta **out)
{
	void *m;
	/* The table covers zpp_index_limit(): -ERANGE would be a provider bug. */
	int err = pagetab_make(&p->metas, index, &m);

	*out = m;
	return err;
}

/* Put a page on the list its free space says; the mutex is held. */
static void page_file(struct zbud_pool *p, struct zbud_meta *m)
{
	unsigned int n = free_chunks(m);

	if (m->size[BUDDY_FIRST] && m->size[BUDDY_LAST])
		n = 0;
	list_add(&m->link, n ? &p->unbuddied[n] : &p->full);
}

/* The one place a page goes back to the provider; the mutex is held. */
static void page_release(struct zbud_pool *p, struct zbud_meta *m)
{
	if (list_linked(&m->link))
		list_del(&m->link);
	if (list_linked(&m->lru))
		list_del(&m->lru);
	m->in_use = false;
	zpp_free(p->zpp, m->index, 1);
	p->stats.pages--;
}

static int page_new(struct zbud_pool *p, struct zbud_meta **out)
{
	struct zbud_meta *m;
	uint32_t index;
	int err = zpp_alloc(p->zpp, 1, &index);

	if (err)
		return err;
	err = meta_make(p, index, &m);
	if (err) {
		zpp_free(p->zpp, index, 1);
		return err;
	}
	/* A meta may have served a released page: keep its generations. */
	m->size[BUDDY_FIRST] = m->size[BUDDY_LAST] = 0;
	m->index = index;
	m->in_use = true;
	m->under_reclaim = false;
	list_init(&m->link);
	list_init(&m->lru);
	p->stats.pages++;
	*out = m;
	return 0;
}

/* A page with room for @need chunks and one free buddy, fullest first. */
static struct zbud_meta *find_unbuddied(struct zbud_pool *p, unsigned int need)
{
	for (unsigned int n = need; n < NCHUNKS; n++)
		if (!list_empty(&p->unbuddied[n]))
			return list_entry(p->unbuddied[n].next, struct zbud_meta, link);
	return NULL;
}

static int zbud_malloc(void *priv, size_t size, unsigned long *handle)
{
	struct zbud_pool *p = priv;
	struct zbud_meta *m;
	enum buddy b = BUDDY_FIRST;
	int err = 0;

	pthread_mutex_lock(&p->lock);
	m = find_unbuddied(p, chunks(size));
	if (m) {
		list_del(&m->link);
		b = m->size[BUDDY_FIRST] ? BUDDY_LAST : BUDDY_FIRST;
	} else {
		err = page_new(p, &m);
		if (err)
			goto out;
	}
	fill_move(p, objects_in(m), objects_in(m) + 1);
	m->size[b] = (uint16_t)size;
	page_file(p, m);
	if (list_linked(&m->lru))
		list_del(&m->lru);
	list_add(&m->lru, &p->lru);
	p->stats.objects++;
	p->stats.object_bytes += size;
	*handle = encode(m, b);
out:
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* The meta of a live object's page, or NULL for a handle that is not live. */
static struct zbud_meta *live_meta(struct zbud_pool *p, unsigned long handle)
{
	unsigned long b = handle & 3;
	struct zbud_meta *m;

	if ((b != BUDDY_FIRST && b != BUDDY_LAST) || handle >> ZPOOL_HANDLE_BITS)
		return NULL;
	m = meta_of(p, (uint32_t)(handle >> 2));
	if (!m || !m->in_use || !m->size[b] || m->gen[b] != handle >> GEN_SHIFT)
		return NULL;
	return m;
}

static int zbud_free(void *priv, unsigned long handle)
{
	struct zbud_pool *p = priv;
	struct zbud_meta *m;

	pthread_mutex_lock(&p->lock);
	m = live_meta(p, handle);
	if (!m) {
		pthread_mutex_unlock(&p->lock);
		return -EINVAL;
	}
	p->stats.objects--;
	p->stats.object_bytes -= m->size[handle & 3];
	fill_move(p, objects_in(m), objects_in(m) - 1);
	m->size[handle & 3] = 0;
	m->gen[handle & 3] = (m->gen[handle & 3] + 1) & GEN_MASK;
	if (!m->under_reclaim) {
		list_del(&m->link);
		if (m->size[BUDDY_FIRST] || m->size[BUDDY_LAST])
			page_file(p, m);
		else
			page_release(p, m);
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* NULL for a handle that is not live. */
static void *zbud_map(void *priv, unsigned long handle, enum zpool_map_mode mode)
{
	struct zbud_pool *p = priv;
	unsigned char *obj = NULL;
	struct zbud_meta *m;

	(void)mode;
	pthread_mutex_lock(&p->lock);
	m = live_meta(p, handle);
	if (m) {
		obj = zpp_addr(p->zpp, m->index);
		if ((handle & 3) == BUDDY_LAST)
			obj += ZPOOL_PAGE_SIZE - chunks(m->size[BUDDY_LAST]) * CHUNK_SIZE;
	}
	pthread_mutex_unlock(&p->lock);
	return obj;
}

static void zbud_unmap(void *priv, unsigned long handle)
{
	(void)priv;
	(void)handle;
}

/*
 * Evict what the page still holds; 0 when every callback succeeded.  Called
 * and returns with the mutex held, dropping it around each callback.  An
 * object freed meanwhile is skipped: the callback only sees live objects
 * (unless its owner frees it concurrently, which the owner must expect).
 */
static int evict_page(struct zbud_pool *p, struct zbud_meta *m)
{
	for (enum buddy b = BUDDY_FIRST; b <= BUDDY_LAST; b++) {
		unsigned long handle = encode(m, b);
		int ret;

		if (!m->size[b])
			continue;
		pthread_mutex_unlock(&p->lock);
		ret = p->evict(p->zpool, handle, p->evict_arg);
		pthread_mutex_lock(&p->lock);
		if (ret) {
			p->stats.evict_failures++;
			return -EAGAIN;
		}
		/* Count what the callback took, not a success it did not act on. */
		if (m->gen[b] != handle >> GEN_SHIFT)
			p->stats.evicted++;
	}
	return 0;
}

/*
 * Reclaim the least recently used page: true when it was emptied and
 * released.  While under reclaim the page is on no list, so it gets no new
 * objects, and frees of its objects leave its release to us.
 */
static bool reclaim_lru_page(struct zbud_pool *p)
{
	struct zbud_meta *m = list_entry(p->lru.prev, struct zbud_meta, lru);

	list_del(&m->lru);
	list_del(&m->link);
	m->under_reclaim = true;
	evict_page(p, m);
	m->under_reclaim = false;
	if (!m->size[BUDDY_FIRST] && !m->size[BUDDY_LAST]) {
		page_release(p, m);
		p->stats.reclaimed_pages++;
		return true;
	}
	page_file(p, m);
	list_add(&m->lru, &p->lru);
	return false;
}

/* Empty one page, trying up to RECLAIM_RETRIES pages from the LRU's cold end. */
static bool reclaim_one(struct zbud_pool *p)
{
	for (int tries = 0; tries < RECLAIM_RETRIES && !list_empty(&p->lru); tries++)
		if (reclaim_lru_page(p))
			return true;
	return false;
}

static int zbud_shrink(void *priv, unsigned int pages, unsigned int *reclaimed)
{
	struct zbud_pool *p = priv;

	*reclaimed = 0;
	if (!p->evict)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&p->lock);
	while (*reclaimed < pages && reclaim_one(p))
		(*reclaimed)++;
	pthread_mutex_unlock(&p->lock);
	return *reclaimed || !pages ? 0 : -EAGAIN;
}

/* zbud never moves objects, so there is nothing to compact: by design. */
static size_t zbud_compact(void *priv)
{
	(void)priv;
	return 0;
}

static size_t zbud_total_size(void *priv)
{
	struct zbud_pool *p = priv;
	size_t pages;

	pthread_mutex_lock(&p->lock);
	pages = p->stats.pages;
	pthread_mutex_unlock(&p->lock);
	return pages * ZPOOL_PAGE_SIZE;
}

static void zbud_stats(void *priv, struct zpool_stats *st)
{
	struct zbud_pool *p = priv;

	pthread_mutex_lock(&p->lock);
	*st = p->stats;
	st->meta_bytes = p->metas.bytes + sizeof(*p);
	pthread_mutex_unlock(&p->lock);
}

/* Pages by how many objects they hold (enum zpool_class_kind, FILL). */
static size_t zbud_class_stats(void *priv, struct zpool_class_stat *out, size_t max)
{
	struct zbud_pool *p = priv;
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned int k = 1; k <= 2; k++, n++) {
		if (n >= max)
			continue;
		out[n] = (struct zpool_class_stat){
			.index = k,
			.objs_allocated = p->fill[k] * 2,
			.objs_used = p->fill[k] * k,
			.pages_used = p->fill[k],
			.pages_per_zspage = 1,
		};
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void zbud_destroy(void *priv)
{
	struct zbud_pool *p = priv;

	pagetab_fini(&p->metas);
	zpp_destroy(p->zpp);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int zbud_create(struct zpool *zpool, const struct zpool_config *cfg, void **priv)
{
	struct zbud_pool *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	err = zpp_create(cfg->max_pages, cfg->arena_pages, &p->zpp);
	if (err) {
		free(p);
		return err;
	}
	err = pagetab_init(&p->metas, zpp_index_limit(p->zpp), sizeof(struct zbud_meta), NULL,
			   NULL);
	if (err) {
		zpp_destroy(p->zpp);
		free(p);
		return err;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->zpool = zpool;
	p->evict = cfg->evict;
	p->evict_arg = cfg->evict_arg;
	for (unsigned int n = 0; n < NCHUNKS; n++)
		list_init(&p->unbuddied[n]);
	list_init(&p->full);
	list_init(&p->lru);
	*priv = p;
	return 0;
}

const struct zpool_driver zbud_driver = {
	.name = "zbud",
	.create = zbud_create,
	.destroy = zbud_destroy,
	.malloc = zbud_malloc,
	.free = zbud_free,
	.map = zbud_map,
	.unmap = zbud_unmap,
	.shrink = zbud_shrink,
	.compact = zbud_compact,
	.total_size = zbud_total_size,
	.stats = zbud_stats,
	.class_stats = zbud_class_stats,
	.class_kind = ZPOOL_CLASSES_FILL,
};
