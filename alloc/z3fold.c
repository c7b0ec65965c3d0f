/* SPDX-License-Identifier: MIT */
/*
 * alloc/z3fold.c - z3fold: up to three objects per pool page.
 *
 * A page holds a "first" object at its start, a "last" one right-justified
 * to its end and a "middle" one between; space is counted in 16-byte chunks
 * and kept in one free run by sliding the object with gaps on both sides:
 * middle alone to the start, against the first, or against the last.  A
 * mapped object is pinned; the compaction it blocked is done at its unmap.
 * An object leaving no chunk free gets a headless page (raw 4096-byte pages).
 *
 * Metadata lives beside the pool, never in a page: struct z3_page, one per
 * provider index in a struct pagetab (alloc/pagetab.h) freed only with the
 * pool, so looking up a stale handle never touches an unmapped arena.  A
 * handle is seq << 35 | index << 3 | kind (1..3 a slot, 4 headless), never
 * 0; the slot holds its object's current place, so handles survive
 * compaction, and seq (21 bits, bumped per allocation into the slot) voids
 * stale ones until the slot has been reused 2^21 times.
 *   unbuddied[n]  pages with a free slot whose free run is n chunks
 *   lru           pages not under reclaim, most recent allocation first
 *   fill[n]       how many pages hold n objects (0: headless pages), for
 *                 class stats
 *
 * Locks, in order: pool->lock, then a page lock; the provider's mutex is a
 * leaf.  Pool lock: lists, stats, refs, in_use, under_reclaim; malloc picks
 * and fills a page in one hold, so no page is ever off its lists half-filled
 * (the window the kernel's reclaim/free races lived in).  Page lock: page
 * bytes and pins.  Slot places are written under both, read under either:
 * map and unmap take only the page lock.  refs = live objects + a running
 * reclaim, and page_put() is the only way a page goes back.  Never: call the
 * evict callback with a lock held, put an object in a page under reclaim,
 * free a page except in page_put(), or move a mapped object.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/list.h"
#include "alloc/pages.h"
#include "alloc/pagetab.h"
#include "alloc/zpool.h"

/*
 * 16-byte chunks: on lz4 sizes of the shared page files a best-fit packer
 * reaches 2.31 (redis) and 2.87 (python) pages per pool page with 16-byte
 * chunks, 2.28 and 2.85 with 64-byte ones; the 256 lists cost nothing since
 * a bitmap finds the first non-empty one.
 */
#define CHUNK_SHIFT 4
#define CHUNK_SIZE (1u << CHUNK_SHIFT)
#define NCHUNKS (ZPOOL_PAGE_SIZE / CHUNK_SIZE)
#define NSLOTS 3
#define RECLAIM_RETRIES 8
#define BITMAP_WORDS (NCHUNKS / 64)

#define KIND_BITS 3
#define INDEX_BITS 32
#define SEQ_SHIFT (KIND_BITS + INDEX_BITS)
/* 21 bits: a stale handle matches again only after 2^21 allocations into its slot. */
#define SEQ_BITS (ZPOOL_HANDLE_BITS - SEQ_SHIFT)
#define SEQ_MASK ((1u << SEQ_BITS) - 1)
#define KIND_HEADLESS (NSLOTS + 1)

_Static_assert(sizeof(unsigned long) >= 8, "handles need 64-bit unsigned long");
_Static_assert(NCHUNKS % 64 == 0, "the unbuddied bitmap is whole words");

/* One object's place in its page, in chunks; chunks 0: the slot is free. */
struct z3_slot {
	uint16_t start, chunks;
	uint16_t size;	 /* bytes asked for, 1..4096 */
	uint32_t seq;	 /* allocations into this slot, mod 2^SEQ_BITS: part of the handle */
	uint16_t mapped; /* maps outstanding (page lock): the object must not move */
};

/*
 * A pool page's metadata.  Invariants: refs is the number of live slots,
 * plus one while under reclaim; a page with refs 0 is back with the provider
 * and all its slots are free; link is on a list only as page_file() says.
 */
struct z3_page {
	pthread_mutex_t lock;  /* the page lock */
	struct list_node link; /* unbuddied[list], while it has room and is not under reclaim */
	struct list_node lru;  /* pool lru, unless under reclaim */
	struct z3_slot slot[NSLOTS];
	uint32_t index;	     /* provider page index */
	int refs;	     /* live objects, plus one while under reclaim */
	uint16_t list;	     /* which unbuddied list link is on, when linked */
	bool in_use;	     /* held from the provider */
	bool headless;	     /* one object in slot[0], no lists but the lru */
	bool under_reclaim;  /* being emptied by shrink: gets no new objects */
	bool compact_missed; /* a pinned object kept the free space split (page lock) */
};

struct z3_pool {
	pthread_mutex_t lock; /* the pool lock: lists, stats, growing dir */
	struct zpool *zpool;  /* handed to the evict callback */
	zpool_evict_fn evict; /* NULL: shrink is not supported */
	void *evict_arg;
	struct zpp *zpp;      /* the page provider, with its own leaf lock */
	struct pagetab metas; /* struct z3_page by page index, blocks made on first use */
	struct list_node unbuddied[NCHUNKS]; /* [n]: pages whose free run is n chunks */
	uint64_t nonempty[BITMAP_WORDS];     /* bit n: unbuddied[n] has pages */
	struct list_node lru;		     /* tail: least recently allocated into */
	struct zpool_stats stats;
	size_t fill[NSLOTS + 1]; /* [n]: pages holding n objects; [0]: headless pages */
};

static unsigned int size_to_chunks(size_t size)
{
	return (unsigned int)((size + CHUNK_SIZE - 1) >> CHUNK_SHIFT);
}

static unsigned int slot_end(const struct z3_slot *s)
{
	return s->start + s->chunks;
}

static unsigned long encode(const struct z3_page *m, unsigned int kind, unsigned int seq)
{
	return (unsigned long)seq << SEQ_SHIFT | (unsigned long)m->index << KIND_BITS | kind;
}

static unsigned int handle_kind(unsigned long handle)
{
	return handle & ((1u << KIND_BITS) - 1);
}

static unsigned long handle_index(unsigned long handle)
{
	return (handle >> KIND_BITS) & ((1UL << INDEX_BITS) - 1);
}

static unsigned long slot_handle(const struct z3_page *m, unsigned int i)
{
	return encode(m, m->headless ? KIND_HEADLESS : i + 1, m->slot[i].seq);
}

/* The fill[] bucket of @m: its live slots, 0 for a headless page.  Page lock held. */
static unsigned int fill_bucket(const struct z3_page *m)
{
	unsigned int n = 0;

	if (m->headless)
		return 0;
	for (unsigned int i = 0; i < NSLOTS; i++)
		n += m->slot[i].chunks != 0;
	return n;
}

/* The meta of a page index, or NULL when that part of the table was never made. */
static struct z3_page *meta_of(struct z3_pool *p, unsigned long index)
{
	return pagetab_get(&p->metas, index);
}

static void meta_init(void *elem)
{
	pthread_mutex_init(&((struct z3_page *)elem)->lock, NULL);
}

static void meta_fini(void *elem)
{
	pthread_mutex_destroy(&((struct z3_page *)elem)->lock);
}

static int meta_make(struct z3_pool *p, uint32_t index, struct z3_page **out)
{
	void *m;
	/* The table covers zpp_index_limit(): -ERANGE would be a provider bug. */
	int err = pagetab_make(&p->metas, index, &m);

	*out = m;
	return err;
}

/*
 * The slot a handle names if it holds the object the handle was made for,
 * else -1.  Either lock is held: places are written under both.
 */
static int handle_slot(const struct z3_page *m, unsigned long handle)
{
	unsigned int kind = handle_kind(handle);
	unsigned int i = kind == KIND_HEADLESS ? 0 : kind - 1;

	if (kind == 0 || kind > KIND_HEADLESS || (kind == KIND_HEADLESS) != m->headless)
		return -1;
	if (!m->slot[i].chunks || m->slot[i].seq != handle >> SEQ_SHIFT)
		return -1;
	return (int)i;
}

/* Live slots of @m by place in the page, left to right; returns how many. */
static unsigned int slots_by_place(struct z3_page *m, struct z3_slot **out)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < NSLOTS; i++) {
		unsigned int k = n;

		if (!m->slot[i].chunks)
			continue;
		n++;
		while (k > 0 && out[k - 1]->start > m->slot[i].start) {
			out[k] = out[k - 1];
			k--;
		}
		out[k] = &m->slot[i];
	}
	return n;
}

/* The longest run of free chunks, [*from, *to); returns its length. */
static unsigned int free_run(struct z3_page *m, unsigned int *from, unsigned int *to)
{
	struct z3_slot *s[NSLOTS];
	unsigned int n = slots_by_place(m, s), at = 0, best = 0;

	*from = *to = 0;
	for (unsigned int k = 0; k <= n; k++) {
		unsigned int end = k < n ? s[k]->start : NCHUNKS;

		if (end - at > best) {
			best = end - at;
			*from = at;
			*to = end;
		}
		if (k < n)
			at = slot_end(s[k]);
	}
	return best;
}

static int free_slot(const struct z3_page *m)
{
	for (unsigned int i = 0; i < NSLOTS; i++)
		if (!m->slot[i].chunks)
			return (int)i;
	return -1;
}

static void unbuddied_del(struct z3_pool *p, struct z3_page *m)
{
	if (!list_linked(&m->link))
		return;
	list_del(&m->link);
	if (list_empty(&p->unbuddied[m->list]))
		p->nonempty[m->list / 64] &= ~(1ULL << (m->list % 64));
}

/*
 * Put a page on the unbuddied list of its free run, if it can take an
 * object: not headless, not under reclaim, a slot free.  Both locks held.
 */
static void page_file(struct z3_pool *p, struct z3_page *m)
{
	unsigned int from, to, run;

	unbuddied_del(p, m);
	if (m->headless || m->under_reclaim || free_slot(m) < 0)
		return;
	run = free_run(m, &from, &to);
	/* An empty page is never filed: its release is under way (and NCHUNKS is past the lists). */
	if (!run || run == NCHUNKS)
		return;
	m->list = (uint16_t)run;
	list_add(&m->link, &p->unbuddied[run]);
	p->nonempty[run / 64] |= 1ULL << (run % 64);
}

static void slot_move(struct z3_pool *p, struct z3_page *m, struct z3_slot *s, unsigned int to)
{
	unsigned char *base = zpp_addr(p->zpp, m->index);

	memmove(base + (to << CHUNK_SHIFT), base + (s->start << CHUNK_SHIFT), s->size);
	s->start = (uint16_t)to;
}

/*
 * Make the free space one run by sliding the objects that float between
 * the run of objects from the page start and the run against its end:
 * leftwards when something is at the start or nothing at the end (middle
 * alone, first+middle), else rightwards (middle+last).  A pinned object
 * stays and the page remembers the missed compaction.  Both locks held.
 */
static void page_compact(struct z3_pool *p, struct z3_page *m)
{
	struct z3_slot *s[NSLOTS];
	unsigned int n = slots_by_place(m, s), lo = 0, hi = n, left = 0, right = NCHUNKS;
	bool missed = false;

	while (lo < n && s[lo]->start == left)
		left = slot_end(s[lo++]);
	while (hi > lo && slot_end(s[hi - 1]) == right)
		right = s[--hi]->start;
	if (lo > 0 || hi == n) {
		for (unsigned int k = lo; k < hi; k++) {
			if (s[k]->start != left && s[k]->mapped)
				missed = true;
			else if (s[k]->start != left)
				slot_move(p, m, s[k], left);
			left = slot_end(s[k]);
		}
	} else {
		for (unsigned int k = hi; k-- > lo;) {
			if (slot_end(s[k]) != right && s[k]->mapped)
				missed = true;
			else if (slot_end(s[k]) != right)
				slot_move(p, m, s[k], right - s[k]->chunks);
			right = s[k]->start;
		}
	}
	m->compact_missed = missed;
}

/*
 * The one place a page goes back to the provider: when its last reference
 * goes.  Pool lock held, page lock not.  Returns whether it was released.
 */
static bool page_put(struct z3_pool *p, struct z3_page *m)
{
	if (--m->refs > 0)
		return false;
	unbuddied_del(p, m);
	if (list_linked(&m->lru))
		list_del(&m->lru);
	m->in_use = false;
	zpp_free(p->zpp, m->index, 1);
	p->stats.pages--;
	return true;
}

static int page_new(struct z3_pool *p, bool headless, struct z3_page **out)
{
	struct z3_page *m;
	uint32_t index;
	int err = zpp_alloc(p->zpp, 1, &index);

	if (err)
		return err;
	err = meta_make(p, index, &m);
	if (err) {
		zpp_free(p->zpp, index, 1);
		return err;
	}
	/* Keep the slot seqs: a handle from the page's last life stays stale. */
	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < NSLOTS; i++)
		m->slot[i] = (struct z3_slot){ .seq = m->slot[i].seq };
	m->headless = headless;
	m->compact_missed = false;
	pthread_mutex_unlock(&m->lock);
	m->index = index;
	m->refs = 0;
	m->in_use = true;
	m->under_reclaim = false;
	list_init(&m->link);
	list_init(&m->lru);
	p->stats.pages++;
	*out = m;
	return 0;
}

/* The fullest page with a free run of at least @need chunks (best fit). */
static struct z3_page *find_unbuddied(struct z3_pool *p, unsigned int need)
{
	for (unsigned int w = need / 64; w < BITMAP_WORDS; w++) {
		uint64_t bits = p->nonempty[w];

		if (w == need / 64)
			bits &= ~0ULL << (need % 64);
		if (bits) {
			unsigned int n = w * 64 + (unsigned int)__builtin_ctzll(bits);

			return list_entry(p->unbuddied[n].next, struct z3_page, link);
		}
	}
	return NULL;
}

/*
 * Put a @size-byte object in the page's free run: at the page start
 * (first), else right-justified (last), else against the object before
 * the run (middle), so the rest of the run stays in one piece.  Prefer the
 * slot named for that place, so fresh handles read first/middle/last.
 * Both locks held; the page has a free slot and a run of @need chunks.
 */
static unsigned int page_place(struct z3_page *m, size_t size, unsigned int need)
{
	unsigned int from, to, want, i;

	free_run(m, &from, &to);
	if (from == 0) {
		want = 0;
	} else if (to == NCHUNKS) {
		from = to - need;
		want = 2;
	} else {
		want = 1;
	}
	i = m->slot[want].chunks ? (unsigned int)free_slot(m) : want;
	m->slot[i].start = (uint16_t)from;
	m->slot[i].chunks = (uint16_t)need;
	m->slot[i].size = (uint16_t)size;
	m->slot[i].seq = (m->slot[i].seq + 1) & SEQ_MASK;
	m->slot[i].mapped = 0;
	return i;
}

static int z3_malloc(void *priv, size_t size, unsigned long *handle)
{
	struct z3_pool *p = priv;
	unsigned int need = size_to_chunks(size), i;
	bool headless = need >= NCHUNKS;
	struct z3_page *m = NULL;
	int err = 0;

	pthread_mutex_lock(&p->lock);
	if (!headless)
		m = find_unbuddied(p, need);
	if (!m) {
		err = page_new(p, headless, &m);
		if (err)
			goto out;
	}
	pthread_mutex_lock(&m->lock);
	if (m->refs && !m->headless)
		p->fill[fill_bucket(m)]--;
	i = page_place(m, size, need);
	p->fill[fill_bucket(m)]++;
	page_file(p, m);
	*handle = slot_handle(m, i);
	pthread_mutex_unlock(&m->lock);
	m->refs++;
	if (list_linked(&m->lru))
		list_del(&m->lru);
	list_add(&m->lru, &p->lru);
	p->stats.objects++;
	p->stats.object_bytes += size;
out:
	pthread_mutex_unlock(&p->lock);
	return err;
}

/* The page of a handle that may be stale or forged, or NULL: never touches pool pages. */
static struct z3_page *handle_page(struct z3_pool *p, unsigned long handle)
{
	return handle_kind(handle) ? meta_of(p, handle_index(handle)) : NULL;
}

static int z3_free(void *priv, unsigned long handle)
{
	struct z3_pool *p = priv;
	struct z3_page *m = handle_page(p, handle);
	int i = -1;

	pthread_mutex_lock(&p->lock);
	if (m && m->in_use) {
		pthread_mutex_lock(&m->lock);
		i = handle_slot(m, handle);
		if (i >= 0) {
			p->stats.objects--;
			p->stats.object_bytes -= m->slot[i].size;
			p->fill[fill_bucket(m)]--;
			m->slot[i].chunks = 0;
			if (!m->headless && fill_bucket(m))
				p->fill[fill_bucket(m)]++;
			page_compact(p, m);
			page_file(p, m);
		}
		pthread_mutex_unlock(&m->lock);
	}
	if (i >= 0)
		page_put(p, m);
	pthread_mutex_unlock(&p->lock);
	return i >= 0 ? 0 : -EINVAL;
}

/* NULL for a handle that is not live. */
static void *z3_map(void *priv, unsigned long handle, enum zpool_map_mode mode)
{
	struct z3_pool *p = priv;
	struct z3_page *m = handle_page(p, handle);
	unsigned char *addr = NULL;
	int i;

	(void)mode;
	if (!m)
		return NULL;
	pthread_mutex_lock(&m->lock);
	i = handle_slot(m, handle);
	if (i >= 0) {
		m->slot[i].mapped++;
		addr = zpp_addr(p->zpp, m->index);
		addr += (size_t)m->slot[i].start << CHUNK_SHIFT;
	}
	pthread_mutex_unlock(&m->lock);
	return addr;
}

/*
 * Redo a compaction missed while an object was mapped.  The page lock was
 * dropped to take the locks in order, so look again: the page may have
 * been compacted, emptied or even reused meanwhile, all harmless.
 */
static void compact_missed(struct z3_pool *p, struct z3_page *m)
{
	pthread_mutex_lock(&p->lock);
	pthread_mutex_lock(&m->lock);
	if (m->in_use && m->compact_missed) {
		page_compact(p, m);
		page_file(p, m);
	}
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&p->lock);
}

static void z3_unmap(void *priv, unsigned long handle)
{
	struct z3_pool *p = priv;
	struct z3_page *m = handle_page(p, handle);
	bool missed = false;
	int i;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	i = handle_slot(m, handle);
	if (i >= 0 && m->slot[i].mapped) {
		m->slot[i].mapped--;
		missed = m->compact_missed && !m->slot[i].mapped;
	}
	pthread_mutex_unlock(&m->lock);
	if (missed)
		compact_missed(p, m);
}

/*
 * Slots in the order the thread evicts them: middle, first, last.  The
 * middle goes first because it is the object that splits free space.
 */
static unsigned int evict_order(struct z3_page *m, unsigned int *order)
{
	struct z3_slot *s[NSLOTS];
	unsigned int n = slots_by_place(m, s), k = 0;

	for (unsigned int j = 0; j < n; j++)
		if (s[j]->start != 0 && slot_end(s[j]) != NCHUNKS)
			order[k++] = (unsigned int)(s[j] - m->slot);
	for (unsigned int j = 0; j < n; j++)
		if (s[j]->start == 0 || slot_end(s[j]) == NCHUNKS)
			order[k++] = (unsigned int)(s[j] - m->slot);
	return k;
}

/*
 * Call the evict callback for each object of @m still live, with no lock
 * held around it.  Pool lock held on entry and exit.  A slot cannot be
 * refilled while the page is under reclaim, so an object freed meanwhile
 * (by a callback or another thread) shows as a free slot and is skipped.
 */
static int evict_page(struct z3_pool *p, struct z3_page *m)
{
	unsigned int order[NSLOTS], n = evict_order(m, order);

	for (unsigned int k = 0; k < n; k++) {
		struct z3_slot *s = &m->slot[order[k]];
		unsigned long handle;
		int ret;

		if (!s->chunks)
			continue;
		handle = slot_handle(m, order[k]);
		pthread_mutex_unlock(&p->lock);
		ret = p->evict(p->zpool, handle, p->evict_arg);
		pthread_mutex_lock(&p->lock);
		if (ret) {
			p->stats.evict_failures++;
			return -EAGAIN;
		}
		/* Count what the callback took: the slot cannot be refilled under reclaim. */
		if (!s->chunks)
			p->stats.evicted++;
	}
	return 0;
}

/*
 * Reclaim the least recently used page: true when it was released.  The
 * reclaim holds a reference, so however its objects go (callback, another
 * thread), the last page_put() releases the page, once.
 */
static bool reclaim_lru_page(struct z3_pool *p)
{
	struct z3_page *m = list_entry(p->lru.prev, struct z3_page, lru);

	list_del(&m->lru);
	unbuddied_del(p, m);
	m->under_reclaim = true;
	m->refs++;
	evict_page(p, m);
	m->under_reclaim = false;
	if (m->refs > 1) {
		pthread_mutex_lock(&m->lock);
		page_compact(p, m);
		page_file(p, m);
		pthread_mutex_unlock(&m->lock);
		list_add(&m->lru, &p->lru);
	}
	if (!page_put(p, m))
		return false;
	p->stats.reclaimed_pages++;
	return true;
}

/* Empty one page, trying up to RECLAIM_RETRIES pages from the LRU's cold end. */
static bool reclaim_one(struct z3_pool *p)
{
	for (int tries = 0; tries < RECLAIM_RETRIES && !list_empty(&p->lru); tries++)
		if (reclaim_lru_page(p))
			return true;
	return false;
}

static int z3_shrink(void *priv, unsigned int pages, unsigned int *reclaimed)
{
	struct z3_pool *p = priv;

	*reclaimed = 0;
	if (!p->evict)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&p->lock);
	while (*reclaimed < pages && reclaim_one(p))
		(*reclaimed)++;
	pthread_mutex_unlock(&p->lock);
	return *reclaimed || !pages ? 0 : -EAGAIN;
}

/*
 * Always 0, by design: a handle names its page, so objects never move
 * between pages and no page can be emptied by moving; within a page, free
 * and unmap already keep the free space in one run.
 */
static size_t z3_compact(void *priv)
{
	(void)priv;
	return 0;
}

static size_t z3_total_size(void *priv)
{
	struct z3_pool *p = priv;
	size_t pages;

	pthread_mutex_lock(&p->lock);
	pages = p->stats.pages;
	pthread_mutex_unlock(&p->lock);
	return pages * ZPOOL_PAGE_SIZE;
}

static void z3_stats(void *priv, struct zpool_stats *st)
{
	struct z3_pool *p = priv;

	pthread_mutex_lock(&p->lock);
	*st = p->stats;
	st->meta_bytes = p->metas.bytes + sizeof(*p);
	pthread_mutex_unlock(&p->lock);
}

/* Pages by how many objects they hold (enum zpool_class_kind, FILL). */
static size_t z3_class_stats(void *priv, struct zpool_class_stat *out, size_t max)
{
	struct z3_pool *p = priv;
	size_t n = 0;

	pthread_mutex_lock(&p->lock);
	for (unsigned int k = 0; k <= NSLOTS; k++, n++) {
		if (n >= max)
			continue;
		out[n] = (struct zpool_class_stat){
			.index = k,
			.objs_allocated = p->fill[k] * (k ? NSLOTS : 1),
			.objs_used = p->fill[k] * (k ? k : 1),
			.pages_used = p->fill[k],
			.pages_per_zspage = 1,
		};
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void z3_destroy(void *priv)
{
	struct z3_pool *p = priv;

	pagetab_fini(&p->metas);
	zpp_destroy(p->zpp);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int z3_create(struct zpool *zpool, const struct zpool_config *cfg, void **priv)
{
	struct z3_pool *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	err = zpp_create(cfg->max_pages, cfg->arena_pages, &p->zpp);
	if (err)
		goto err_free;
	err = pagetab_init(&p->metas, zpp_index_limit(p->zpp), sizeof(struct z3_page), meta_init,
			   meta_fini);
	if (err)
		goto err_zpp;
	pthread_mutex_init(&p->lock, NULL);
	p->zpool = zpool;
	p->evict = cfg->evict;
	p->evict_arg = cfg->evict_arg;
	for (unsigned int n = 0; n < NCHUNKS; n++)
		list_init(&p->unbuddied[n]);
	list_init(&p->lru);
	*priv = p;
	return 0;
err_zpp:
	zpp_destroy(p->zpp);
err_free:
	free(p);
	return err;
}

const struct zpool_driver z3fold_driver = {
	.name = "z3fold",
	.create = z3_create,
	.destroy = z3_destroy,
	.malloc = z3_malloc,
	.free = z3_free,
	.map = z3_map,
	.unmap = z3_unmap,
	.shrink = z3_shrink,
	.compact = z3_compact,
	.total_size = z3_total_size,
	.stats = z3_stats,
	.class_stats = z3_class_stats,
	.class_kind = ZPOOL_CLASSES_FILL,
};
