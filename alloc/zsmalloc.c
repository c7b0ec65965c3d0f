/* SPDX-License-Identifier: MIT */
/*
 * alloc/zsmalloc.c - zsmalloc: size classes over multi-page zspages, dense.
 *
 * Objects are rounded up to a class (32..4096 bytes in 16-byte steps; classes
 * with equal pages and objects per zspage merged into the largest, the top
 * one being the huge class, one object per page) and packed into zspages:
 * runs of 1..8 pages, the length per class the one wasting least.  A zspage
 * is one contiguous zpp_alloc() run, so an object spanning two pages is still
 * contiguous and map returns a pointer into the pool; the kernel's per-CPU
 * copy buffer existed only because its zspage pages were scattered.  All
 * metadata lives outside the pages, so they hold nothing but objects.
 *
 *   struct zs_pool    class_of[] by size, the zspage LRU, handle table, provider
 *   struct size_class fullness[g]: its filed zspages by how full (10% steps)
 *   struct zspage     the run + slot[] per object: handle index, or free link
 *   struct zs_entry   one per handle: the object's zspage, slot and size
 *
 * A handle is (generation << 32 | entry index): never 0, never a pointer;
 * compaction moves an object by rewriting its entry, and the end of a free
 * bumps the generation (24 bits, so handles stay below 1 << ZPOOL_HANDLE_BITS),
 * so stale and forged handles are refused.  Freed entries wait in a FIFO
 * queue, drawn from only once it holds ZS_HANDLE_QUARANTINE (4096) entries or
 * every table entry has been handed out.  So between two issues of one entry
 * at least 4095 other frees happen (in a table with no unused entry left: every
 * entry that was free when it was freed is issued first), and the guarantee
 * is: a stale handle is refused unless its entry was reused 2^24 times since,
 * which takes at least 2^24 x 4096 = 2^36 frees (2^24 x N with N entries free,
 * once the table is exhausted).
 *
 * Maps are counted per entry (and summed per zspage), under the class lock.
 * Freeing a mapped object makes its entry FREEING at once: no longer live for
 * map, free (a second free is -EINVAL) or reclaim, and counted out of the
 * pool's objects; its slot, generation and entry are kept until the last
 * unmap, which finishes the free (slot, generation, entry back on the queue,
 * the zspage released if that emptied it).  So an object's slot is never
 * reused, and its zspage never released, while the object is mapped.
 *
 * Lock order: size_class.lock, then pool lru_lock, then the provider's lock.
 * The handle table lock is a leaf taken with no other lock held.  A class lock
 * covers its zspages and its live or freeing objects' entries, map counts
 * included.  A zspage under reclaim is on no list: it gets no objects,
 * compaction never sees it, and frees into it defer their handles to the
 * reclaimer, so zspage_release() runs once.  Never: call the evict callback
 * with a lock held, move an object of a mapped zspage (map_count: every live
 * or freeing object with a mapping counts), release a zspage with an object
 * in it (a freeing object still holds its slot), or take a class lock while
 * holding lru_lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/list.h"
#include "alloc/pages.h"
#include "alloc/zpool.h"

#define ZS_MIN_SIZE 32
#define ZS_SIZE_STEP 16
#define ZS_NR_SIZES ((ZPOOL_MAX_OBJECT - ZS_MIN_SIZE) / ZS_SIZE_STEP + 1)
/* The kernel went from 4 to 8: on the shared lz4 pages, 0.95 -> 0.97 efficiency. */
#define ZS_MAX_ZSPAGE_PAGES 8

/* Groups 0..9 hold zspages 0-9%, ..., 90-99% used; empty zspages are released. */
#define ZS_RATIO_STEPS 10
#define ZS_FULL ZS_RATIO_STEPS
#define ZS_NR_GROUPS (ZS_FULL + 1)

#define ZS_RECLAIM_RETRIES 8

/* A free slot holds FREE_TAG | next free slot; handle indexes stay below it. */
#define SLOT_FREE_TAG (1u << 31)
#define SLOT_NONE 0xffffu
#define ENTRIES_PER_CHUNK 16384u
/* Freed entries queued before the oldest is reused: see the header. */
#define ZS_HANDLE_QUARANTINE 4096u

_Static_assert(sizeof(unsigned long) == 8, "a handle packs a generation above its index");

struct zspage;

/* An entry's state: FREEING is freed by its owner, but still mapped. */
enum {
	ZS_ENTRY_FREE,
	ZS_ENTRY_LIVE,
	ZS_ENTRY_FREEING
};

struct zs_entry {
	struct zspage *zspage; /* class lock: where the object is now */
	uint32_t gen;	       /* atomic: the handle's high half; bumped when a free ends */
	uint32_t next;	       /* free queue (handles lock) or deferred chain (class lock) */
	uint16_t obj;	       /* class lock: slot in zspage */
	uint16_t size;	       /* bytes asked for; 4096 does not fit, stored as size - 1 */
	uint8_t class_index;   /* atomic: the object's class while live or freeing */
	uint8_t state;	       /* atomic: ZS_ENTRY_*, written under the class lock */
	uint16_t map_count;    /* class lock: maps not yet unmapped */
};

_Static_assert(sizeof(struct zs_entry) == 24, "the handle table stays 24 bytes an entry");

struct size_class {
	pthread_mutex_t lock;
	struct list_node fullness[ZS_NR_GROUPS];
	unsigned int index; /* the largest raw size index merged into it */
	unsigned int size, pages_per_zspage, objs_per_zspage;
	size_t zspages;	  /* held, including any under reclaim */
	size_t objs_used; /* objects holding a slot: live, or freeing until their last unmap */
};

struct zspage {
	struct list_node link; /* class fullness[group]; unlinked under reclaim */
	struct list_node lru;  /* pool lru (lru_lock); unlinked under reclaim */
	struct size_class *class;
	unsigned char *base;	/* first byte of the run */
	uint32_t first_page;	/* provider index of the run */
	uint32_t deferred;	/* under reclaim: entries freed meanwhile, chained by next */
	unsigned int map_count; /* the map_counts of its objects' entries, summed */
	uint16_t inuse;
	uint16_t free_head; /* first free slot, SLOT_NONE when full */
	uint8_t group;
	bool under_reclaim; /* class lock; only the reclaimer clears it */
	/* Per object: its entry index while taken (live or freeing), else SLOT_FREE_TAG | next. */
	uint32_t slot[];
};

struct zs_handles {
	pthread_mutex_t lock;
	struct zs_entry **dir; /* chunks, published with release stores, never moved */
	size_t ndir;
	uint32_t limit;	   /* indexes 1..limit-1 may be handed out */
	uint32_t next_new; /* first index never handed out */
	uint32_t free;	   /* free queue head (oldest freed), 0 when empty */
	uint32_t tail;	   /* free queue tail (last freed), 0 when empty */
	uint32_t nfree;	   /* entries on the free queue */
	size_t bytes;	   /* atomic: the directory and the chunks made */
};

struct zs_pool {
	struct zpool *zpool;
	zpool_evict_fn evict;
	void *evict_arg;
	struct zpp *zpp;
	struct size_class *class_of[ZS_NR_SIZES]; /* raw size index -> merged class */
	pthread_mutex_t lru_lock;
	struct list_node lru; /* zspages not under reclaim, most recently allocated into first */
	struct zs_handles handles;
	struct zpool_stats stats; /* every field updated with atomic adds */
};

static void stat_add(size_t *field, size_t delta)
{
	__atomic_add_fetch(field, delta, __ATOMIC_RELAXED);
}

static void stat_sub(size_t *field, size_t delta)
{
	__atomic_sub_fetch(field, delta, __ATOMIC_RELAXED);
}

static void stat_inc(unsigned long long *field, unsigned long long delta)
{
	__atomic_add_fetch(field, delta, __ATOMIC_RELAXED);
}

/* ---- size classes ---- */

static unsigned int size_index(size_t size)
{
	if (size <= ZS_MIN_SIZE)
		return 0;
	return (unsigned int)((size - ZS_MIN_SIZE + ZS_SIZE_STEP - 1) / ZS_SIZE_STEP);
}

/*
 * The zspage length that wastes the smallest fraction of its bytes, the
 * shortest on a tie: a longer zspage costs more when it is partly empty.
 */
static unsigned int best_zspage_pages(unsigned int size)
{
	unsigned int best = 1;
	size_t best_used = ZPOOL_PAGE_SIZE / size * size;

	for (unsigned int n = 2; n <= ZS_MAX_ZSPAGE_PAGES; n++) {
		size_t used = (size_t)n * ZPOOL_PAGE_SIZE / size * size;

		/* used / (n pages) > best_used / (best pages), without division. */
		if (used * best > best_used * n) {
			best = n;
			best_used = used;
		}
	}
	return best;
}

static struct size_class *class_new(unsigned int index, unsigned int size)
{
	struct size_class *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	for (int g = 0; g < ZS_NR_GROUPS; g++)
		list_init(&c->fullness[g]);
	c->index = index;
	c->size = size;
	c->pages_per_zspage = best_zspage_pages(size);
	c->objs_per_zspage = c->pages_per_zspage * ZPOOL_PAGE_SIZE / size;
	return c;
}

/* Build class_of[], largest size first, so a merged class keeps the largest size. */
static int classes_make(struct zs_pool *p)
{
	struct size_class *above = NULL;

	for (int i = ZS_NR_SIZES - 1; i >= 0; i--) {
		unsigned int size = ZS_MIN_SIZE + (unsigned int)i * ZS_SIZE_STEP;
		unsigned int pages = best_zspage_pages(size);

		if (above && above->pages_per_zspage == pages &&
		    above->objs_per_zspage == pages * ZPOOL_PAGE_SIZE / size) {
			p->class_of[i] = above;
			continue;
		}
		above = class_new((unsigned int)i, size);
		if (!above)
			return -ENOMEM;
		p->class_of[i] = above;
	}
	return 0;
}

static void classes_free(struct zs_pool *p)
{
	for (int i = 0; i < ZS_NR_SIZES; i++) {
		struct size_class *c = p->class_of[i];

		if (c && c->index == (unsigned int)i) {
			pthread_mutex_destroy(&c->lock);
			free(c);
		}
	}
}

/* ---- handle table ---- */

static int handles_init(struct zs_handles *t, size_t max_pages)
{
	size_t limit = max_pages * (ZPOOL_PAGE_SIZE / ZS_MIN_SIZE) + 1;

	if (limit > SLOT_FREE_TAG)
		limit = SLOT_FREE_TAG;
	t->limit = (uint32_t)limit;
	t->ndir = (limit + ENTRIES_PER_CHUNK - 1) / ENTRIES_PER_CHUNK;
	t->dir = calloc(t->ndir, sizeof(*t->dir));
	if (!t->dir)
		return -ENOMEM;
	t->bytes = t->ndir * sizeof(*t->dir);
	t->next_new = 1;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

static void handles_destroy(struct zs_handles *t)
{
	for (size_t d = 0; d < t->ndir; d++)
		free(t->dir[d]);
	free(t->dir);
	pthread_mutex_destroy(&t->lock);
}

/* The entry of @index, or NULL when its chunk was never made. */
static struct zs_entry *entry_at(struct zs_handles *t, uint32_t index)
{
	struct zs_entry *chunk;

	if (index == 0 || index >= t->limit)
		return NULL;
	chunk = __atomic_load_n(&t->dir[index / ENTRIES_PER_CHUNK], __ATOMIC_ACQUIRE);
	return chunk ? &chunk[index % ENTRIES_PER_CHUNK] : NULL;
}

/*
 * Index of a table entry to make live: the oldest freed one once enough wait
 * (ZS_HANDLE_QUARANTINE) or no entry is left unused, else a never-used one;
 * -ENOMEM when the table is full.
 */
static int handle_take(struct zs_handles *t, uint32_t *index)
{
	int err = 0;

	pthread_mutex_lock(&t->lock);
	if (t->free && (t->nfree >= ZS_HANDLE_QUARANTINE || t->next_new >= t->limit)) {
		*index = t->free;
		t->free = entry_at(t, t->free)->next;
		if (!t->free)
			t->tail = 0;
		t->nfree--;
		goto out;
	}
	if (t->next_new >= t->limit) {
		err = -ENOMEM;
		goto out;
	}
	if (!t->dir[t->next_new / ENTRIES_PER_CHUNK]) {
		struct zs_entry *chunk = calloc(ENTRIES_PER_CHUNK, sizeof(*chunk));

		if (!chunk) {
			err = -ENOMEM;
			goto out;
		}
		__atomic_store_n(&t->dir[t->next_new / ENTRIES_PER_CHUNK], chunk, __ATOMIC_RELEASE);
		__atomic_fetch_add(&t->bytes, ENTRIES_PER_CHUNK * sizeof(*chunk), __ATOMIC_RELAXED);
	}
	*index = t->next_new++;
out:
	pthread_mutex_unlock(&t->lock);
	return err;
}

/* Queue a chain of @n entries linked by next, @first to @last, behind the others. */
static void handles_give_back(struct zs_handles *t, uint32_t first, uint32_t last, uint32_t n)
{
	pthread_mutex_lock(&t->lock);
	entry_at(t, last)->next = 0;
	if (t->tail)
		entry_at(t, t->tail)->next = first;
	else
		t->free = first;
	t->tail = last;
	t->nfree += n;
	pthread_mutex_unlock(&t->lock);
}

static void handle_give_back(struct zs_handles *t, uint32_t index)
{
	handles_give_back(t, index, index, 1);
}

/* Give back a deferred chain; the last entry's next is 0. */
static void handles_give_back_chain(struct zs_handles *t, uint32_t first)
{
	uint32_t last = first, n = 1;

	if (!first)
		return;
	while (entry_at(t, last)->next) {
		last = entry_at(t, last)->next;
		n++;
	}
	handles_give_back(t, first, last, n);
}

#define GEN_MASK ((1u << (ZPOOL_HANDLE_BITS - 32)) - 1)

static unsigned long handle_encode(uint32_t index, uint32_t gen)
{
	return (unsigned long)gen << 32 | index;
}

/* A free makes every handle to the entry stale; wraps within GEN_MASK. */
static uint32_t gen_next(uint32_t gen)
{
	return (gen + 1) & GEN_MASK;
}

static bool state_ok(uint8_t state, bool freeing_too)
{
	return state == ZS_ENTRY_LIVE || (freeing_too && state == ZS_ENTRY_FREEING);
}

/* The class a handle's entry claims, read without its lock; validated under it. */
static struct size_class *handle_class(struct zs_pool *p, unsigned long handle,
				       struct zs_entry **entry, bool freeing_too)
{
	struct zs_entry *e = entry_at(&p->handles, (uint32_t)handle);

	if (!e || !state_ok(__atomic_load_n(&e->state, __ATOMIC_RELAXED), freeing_too))
		return NULL;
	*entry = e;
	return p->class_of[__atomic_load_n(&e->class_index, __ATOMIC_RELAXED)];
}

/* With @c locked: whether @handle names a live (or freeing) object of @c. */
static bool handle_valid_in(const struct zs_entry *e, unsigned long handle,
			    const struct size_class *c, bool freeing_too)
{
	return state_ok(__atomic_load_n(&e->state, __ATOMIC_RELAXED), freeing_too) &&
	       __atomic_load_n(&e->gen, __ATOMIC_RELAXED) == (uint32_t)(handle >> 32) &&
	       __atomic_load_n(&e->class_index, __ATOMIC_RELAXED) == c->index;
}

/*
 * Lock the class of a live @handle (or, with @freeing_too, of one freed but
 * still mapped) and return it, with its entry; NULL (no lock held) for any
 * other handle.
 */
static struct size_class *handle_lock_state(struct zs_pool *p, unsigned long handle,
					    struct zs_entry **entry, bool freeing_too)
{
	struct size_class *c = handle_class(p, handle, entry, freeing_too);

	if (!c)
		return NULL;
	pthread_mutex_lock(&c->lock);
	if (handle_valid_in(*entry, handle, c, freeing_too))
		return c;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* For map, free and reclaim: only a live handle. */
static struct size_class *handle_lock(struct zs_pool *p, unsigned long handle,
				      struct zs_entry **entry)
{
	return handle_lock_state(p, handle, entry, false);
}

/* ---- zspages: all with the class lock held ---- */

static unsigned int zspage_group(const struct size_class *c, const struct zspage *z)
{
	if (z->inuse == c->objs_per_zspage)
		return ZS_FULL;
	return z->inuse * ZS_RATIO_STEPS / c->objs_per_zspage;
}

static void zspage_file(struct size_class *c, struct zspage *z)
{
	z->group = (uint8_t)zspage_group(c, z);
	list_add(&z->link, &c->fullness[z->group]);
}

static void zspage_refile(struct size_class *c, struct zspage *z)
{
	if (zspage_group(c, z) == z->group)
		return;
	list_del(&z->link);
	zspage_file(c, z);
}

static unsigned char *obj_addr(const struct size_class *c, const struct zspage *z, unsigned int obj)
{
	return z->base + (size_t)obj * c->size;
}

static bool slot_live(const struct zspage *z, unsigned int obj)
{
	return !(z->slot[obj] & SLOT_FREE_TAG);
}

/* Put entry @index into the first free slot of a non-full @z. */
static unsigned int slot_take(struct zspage *z, uint32_t index)
{
	unsigned int obj = z->free_head;

	z->free_head = (uint16_t)(z->slot[obj] & ~SLOT_FREE_TAG);
	z->slot[obj] = index;
	z->inuse++;
	return obj;
}

static void slot_put(struct zspage *z, unsigned int obj)
{
	z->slot[obj] = SLOT_FREE_TAG | z->free_head;
	z->free_head = (uint16_t)obj;
	z->inuse--;
}

static void lru_touch(struct zs_pool *p, struct zspage *z)
{
	pthread_mutex_lock(&p->lru_lock);
	if (list_linked(&z->lru))
		list_del(&z->lru);
	list_add(&z->lru, &p->lru);
	pthread_mutex_unlock(&p->lru_lock);
}

static int zspage_create(struct zs_pool *p, struct size_class *c, struct zspage **out)
{
	unsigned int n = c->objs_per_zspage;
	struct zspage *z = calloc(1, sizeof(*z) + n * sizeof(z->slot[0]));
	int err;

	if (!z)
		return -ENOMEM;
	err = zpp_alloc(p->zpp, c->pages_per_zspage, &z->first_page);
	if (err) {
		free(z);
		return err;
	}
	z->class = c;
	z->base = zpp_addr(p->zpp, z->first_page);
	stat_add(&p->stats.meta_bytes, sizeof(*z) + n * sizeof(z->slot[0]));
	for (unsigned int i = 0; i < n; i++)
		z->slot[i] = SLOT_FREE_TAG | (i + 1 < n ? i + 1 : SLOT_NONE);
	list_init(&z->link);
	list_init(&z->lru);
	zspage_file(c, z);
	c->zspages++;
	stat_add(&p->stats.pages, c->pages_per_zspage);
	*out = z;
	return 0;
}

/*
 * The one place a zspage goes back to the provider: it is empty, not under
 * reclaim, and the class lock is held.
 */
static void zspage_release(struct zs_pool *p, struct size_class *c, struct zspage *z)
{
	if (list_linked(&z->link))
		list_del(&z->link);
	pthread_mutex_lock(&p->lru_lock);
	if (list_linked(&z->lru))
		list_del(&z->lru);
	pthread_mutex_unlock(&p->lru_lock);
	zpp_free(p->zpp, z->first_page, c->pages_per_zspage);
	c->zspages--;
	stat_sub(&p->stats.pages, c->pages_per_zspage);
	stat_sub(&p->stats.meta_bytes, sizeof(*z) + c->objs_per_zspage * sizeof(z->slot[0]));
	free(z);
}

/* The fullest filed zspage with room, or NULL. */
static struct zspage *class_fullest_open(struct size_class *c)
{
	for (int g = ZS_FULL - 1; g >= 0; g--)
		if (!list_empty(&c->fullness[g]))
			return list_entry(c->fullness[g].next, struct zspage, link);
	return NULL;
}

/* ---- malloc, free, map ---- */

static void entry_set_live(struct zs_entry *e, struct size_class *c, struct zspage *z,
			   unsigned int obj, size_t size)
{
	e->zspage = z;
	e->obj = (uint16_t)obj;
	e->size = (uint16_t)(size - 1);
	__atomic_store_n(&e->class_index, (uint8_t)c->index, __ATOMIC_RELAXED);
	__atomic_store_n(&e->state, ZS_ENTRY_LIVE, __ATOMIC_RELAXED);
}

static int zs_malloc(void *priv, size_t size, unsigned long *handle)
{
	struct zs_pool *p = priv;
	struct size_class *c;
	struct zspage *z;
	struct zs_entry *e;
	uint32_t index;
	unsigned int obj;
	int err;

	if (size == 0)
		return -EINVAL;
	if (size > ZPOOL_MAX_OBJECT)
		return -ENOSPC;
	c = p->class_of[size_index(size)];
	err = handle_take(&p->handles, &index);
	if (err)
		return err;
	e = entry_at(&p->handles, index);
	pthread_mutex_lock(&c->lock);
	z = class_fullest_open(c);
	if (!z) {
		err = zspage_create(p, c, &z);
		if (err)
			goto err_unlock;
	}
	obj = slot_take(z, index);
	zspage_refile(c, z);
	entry_set_live(e, c, z, obj, size);
	c->objs_used++;
	lru_touch(p, z);
	*handle = handle_encode(index, __atomic_load_n(&e->gen, __ATOMIC_RELAXED));
	pthread_mutex_unlock(&c->lock);
	stat_add(&p->stats.objects, 1);
	stat_add(&p->stats.object_bytes, size);
	return 0;

err_unlock:
	pthread_mutex_unlock(&c->lock);
	handle_give_back(&p->handles, index);
	return err;
}

/*
 * With @c locked and @e (entry @index) unmapped: end its object's life.  The
 * slot goes back, the generation moves on, and the zspage is released if
 * that emptied it.  Returns whether the caller gives the entry back to the
 * table after unlocking; a zspage under reclaim keeps it on its deferred chain.
 */
static bool entry_release(struct zs_pool *p, struct size_class *c, struct zs_entry *e,
			  uint32_t index)
{
	struct zspage *z = e->zspage;

	__atomic_store_n(&e->state, ZS_ENTRY_FREE, __ATOMIC_RELAXED);
	__atomic_store_n(&e->gen, gen_next(e->gen), __ATOMIC_RELAXED);
	slot_put(z, e->obj);
	c->objs_used--;
	if (z->under_reclaim) {
		/* The reclaimer may still hold this handle: no reuse until it is done. */
		e->next = z->deferred;
		z->deferred = index;
		return false;
	}
	if (z->inuse == 0)
		zspage_release(p, c, z); /* inuse counts every mapped object: none is */
	else
		zspage_refile(c, z);
	return true;
}

/*
 * A mapped object is only marked FREEING: its bytes stay where they are
 * until the last zs_unmap() ends its life.
 */
static int zs_free(void *priv, unsigned long handle)
{
	struct zs_pool *p = priv;
	struct zs_entry *e;
	struct size_class *c = handle_lock(p, handle, &e);
	size_t size;
	bool give_back = false;

	if (!c)
		return -EINVAL;
	size = (size_t)e->size + 1;
	if (e->map_count > 0)
		__atomic_store_n(&e->state, ZS_ENTRY_FREEING, __ATOMIC_RELAXED);
	else
		give_back = entry_release(p, c, e, (uint32_t)handle);
	pthread_mutex_unlock(&c->lock);
	if (give_back)
		handle_give_back(&p->handles, (uint32_t)handle);
	stat_sub(&p->stats.objects, 1);
	stat_sub(&p->stats.object_bytes, size);
	return 0;
}

/*
 * A direct pointer: the zspage is contiguous, the map counts keep compaction
 * off it, and the object keeps its slot until unmapped, even if freed.
 * NULL for a handle that is not live, or mapped 65535 times at once.
 */
static void *zs_map(void *priv, unsigned long handle, enum zpool_map_mode mode)
{
	struct zs_pool *p = priv;
	struct zs_entry *e;
	struct size_class *c = handle_lock(p, handle, &e);
	void *addr = NULL;

	(void)mode;
	if (!c)
		return NULL;
	if (e->map_count < UINT16_MAX) {
		e->map_count++;
		e->zspage->map_count++;
		addr = obj_addr(c, e->zspage, e->obj);
	}
	pthread_mutex_unlock(&c->lock);
	return addr;
}

/* Also for a handle freed while mapped: its last unmap ends the free. */
static void zs_unmap(void *priv, unsigned long handle)
{
	struct zs_pool *p = priv;
	struct zs_entry *e;
	struct size_class *c = handle_lock_state(p, handle, &e, true);
	bool give_back = false;

	if (!c)
		return;
	if (e->map_count > 0) {
		e->map_count--;
		e->zspage->map_count--;
		if (e->map_count == 0 && e->state == ZS_ENTRY_FREEING)
			give_back = entry_release(p, c, e, (uint32_t)handle);
	}
	pthread_mutex_unlock(&c->lock);
	if (give_back)
		handle_give_back(&p->handles, (uint32_t)handle);
}

/* ---- compaction: all with the class lock held ---- */

/* Whole zspages the class's free slots add up to: what compaction could free. */
static size_t class_freeable_zspages(const struct size_class *c)
{
	return (c->zspages * c->objs_per_zspage - c->objs_used) / c->objs_per_zspage;
}

/* The emptiest filed zspage that nobody has mapped, or NULL. */
static struct zspage *class_emptiest_unmapped(struct size_class *c)
{
	for (int g = 0; g < ZS_FULL; g++) {
		struct list_node *n;

		for (n = c->fullness[g].next; n != &c->fullness[g]; n = n->next) {
			struct zspage *z = list_entry(n, struct zspage, link);

			if (z->map_count == 0)
				return z;
		}
	}
	return NULL;
}

/*
 * Move object @obj of the unmapped @src into a free slot of @dst, keeping its
 * handle.  src has no mapped object, so it has no freeing one either.
 */
static void object_move(struct zs_pool *p, struct size_class *c, struct zspage *src,
			unsigned int obj, struct zspage *dst)
{
	uint32_t index = src->slot[obj];
	struct zs_entry *e = entry_at(&p->handles, index);
	unsigned int to = slot_take(dst, index);

	memcpy(obj_addr(c, dst, to), obj_addr(c, src, obj), (size_t)e->size + 1);
	e->zspage = dst;
	e->obj = (uint16_t)to;
	slot_put(src, obj);
}

/*
 * Move the objects of the unfiled @src into the fullest other zspages until
 * it is empty or no zspage has room.  src is off the lists, so it is never
 * its own destination.
 */
static void zspage_drain(struct zs_pool *p, struct size_class *c, struct zspage *src)
{
	unsigned int obj = 0;

	while (src->inuse > 0) {
		struct zspage *dst = class_fullest_open(c);

		if (!dst)
			return;
		for (; obj < c->objs_per_zspage && src->inuse > 0; obj++) {
			if (!slot_live(src, obj))
				continue;
			if (dst->free_head == SLOT_NONE)
				break;
			object_move(p, c, src, obj, dst);
		}
		zspage_refile(c, dst);
	}
}

/* Empty one zspage into the others; pages freed, 0 when nothing could be. */
static unsigned int class_compact_one(struct zs_pool *p, struct size_class *c)
{
	struct zspage *src = class_emptiest_unmapped(c);

	if (!src)
		return 0;
	list_del(&src->link);
	zspage_drain(p, c, src);
	if (src->inuse > 0) {
		zspage_file(c, src);
		return 0;
	}
	zspage_release(p, c, src);
	return c->pages_per_zspage;
}

static size_t class_compact(struct zs_pool *p, struct size_class *c)
{
	size_t freed = 0;

	pthread_mutex_lock(&c->lock);
	while (class_freeable_zspages(c) > 0) {
		unsigned int pages = class_compact_one(p, c);

		if (!pages)
			break;
		freed += pages;
		/* Let malloc, free and map of this class in between two zspages. */
		pthread_mutex_unlock(&c->lock);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return freed;
}

static size_t zs_compact(void *priv)
{
	struct zs_pool *p = priv;
	size_t freed = 0;

	for (int i = 0; i < ZS_NR_SIZES; i++)
		if (p->class_of[i]->index == (unsigned int)i)
			freed += class_compact(p, p->class_of[i]);
	stat_inc(&p->stats.compacted_pages, freed);
	return freed;
}

/* ---- LRU reclaim ---- */

static struct zspage *lru_coldest(struct zs_pool *p)
{
	return list_empty(&p->lru) ? NULL : list_entry(p->lru.prev, struct zspage, lru);
}

/*
 * Take the coldest zspage off the LRU and off its class's lists, marked
 * under reclaim; NULL when the LRU is empty.  The class lock comes first in
 * the lock order, so peek at the class, lock it, and take the coldest
 * zspage only if it is still of that class (else the LRU moved: try again).
 */
static struct zspage *reclaim_begin(struct zs_pool *p)
{
	for (;;) {
		struct size_class *c;
		struct zspage *z;

		pthread_mutex_lock(&p->lru_lock);
		z = lru_coldest(p);
		c = z ? z->class : NULL;
		pthread_mutex_unlock(&p->lru_lock);
		if (!c)
			return NULL;

		pthread_mutex_lock(&c->lock);
		pthread_mutex_lock(&p->lru_lock);
		z = lru_coldest(p);
		if (z && z->class == c)
			list_del(&z->lru);
		pthread_mutex_unlock(&p->lru_lock);
		if (z && z->class == c) {
			z->under_reclaim = true;
			list_del(&z->link);
			pthread_mutex_unlock(&c->lock);
			return z;
		}
		pthread_mutex_unlock(&c->lock);
	}
}

/*
 * The handle of the first live object of @z at or after *@obj, or 0; takes
 * the class lock.  A freeing object holds its slot but is not evicted: its
 * owner is done with it, and its last unmap releases it.
 */
static unsigned long next_live_handle(struct zs_pool *p, struct zspage *z, unsigned int *obj)
{
	struct size_class *c = z->class;
	unsigned long handle = 0;

	pthread_mutex_lock(&c->lock);
	for (; z->inuse > 0 && *obj < c->objs_per_zspage; (*obj)++) {
		if (slot_live(z, *obj)) {
			uint32_t index = z->slot[*obj];
			struct zs_entry *e = entry_at(&p->handles, index);

			if (e->state != ZS_ENTRY_LIVE)
				continue;
			handle = handle_encode(index, e->gen);
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return handle;
}

/*
 * Call the evict callback for each live object of @z, with no lock held;
 * -EAGAIN at the first refusal.  z cannot go away meanwhile: only
 * reclaim_end() releases a zspage under reclaim.
 */
static int reclaim_evict_all(struct zs_pool *p, struct zspage *z)
{
	unsigned long handle;

	for (unsigned int obj = 0; (handle = next_live_handle(p, z, &obj)) != 0; obj++) {
		if (p->evict(p->zpool, handle, p->evict_arg)) {
			stat_inc(&p->stats.evict_failures, 1);
			return -EAGAIN;
		}
		stat_inc(&p->stats.evicted, 1);
	}
	return 0;
}

/*
 * Finish reclaiming @z: release it if it was emptied, else put it back on
 * its class's lists and at the hot end of the LRU.  Pages freed.
 */
static unsigned int reclaim_end(struct zs_pool *p, struct zspage *z)
{
	struct size_class *c = z->class;
	unsigned int freed = 0;
	uint32_t deferred;

	pthread_mutex_lock(&c->lock);
	z->under_reclaim = false;
	deferred = z->deferred;
	z->deferred = 0;
	if (z->inuse == 0) {
		freed = c->pages_per_zspage;
		zspage_release(p, c, z);
	} else {
		zspage_file(c, z);
		lru_touch(p, z);
	}
	pthread_mutex_unlock(&c->lock);
	handles_give_back_chain(&p->handles, deferred);
	return freed;
}

/* Empty one zspage from the cold end, trying up to ZS_RECLAIM_RETRIES; pages freed. */
static unsigned int reclaim_one(struct zs_pool *p)
{
	for (int tries = 0; tries < ZS_RECLAIM_RETRIES; tries++) {
		struct zspage *z = reclaim_begin(p);
		unsigned int freed;

		if (!z)
			return 0;
		reclaim_evict_all(p, z);
		freed = reclaim_end(p, z);
		if (freed) {
			stat_inc(&p->stats.reclaimed_pages, freed);
			return freed;
		}
	}
	return 0;
}

/* *reclaimed counts pages, so it may pass @pages by less than one zspage. */
static int zs_shrink(void *priv, unsigned int pages, unsigned int *reclaimed)
{
	struct zs_pool *p = priv;

	*reclaimed = 0;
	if (!p->evict)
		return -EOPNOTSUPP;
	while (*reclaimed < pages) {
		unsigned int freed = reclaim_one(p);

		if (!freed)
			break;
		*reclaimed += freed;
	}
	return *reclaimed || !pages ? 0 : -EAGAIN;
}

/* ---- statistics ---- */

static size_t zs_total_size(void *priv)
{
	struct zs_pool *p = priv;

	return __atomic_load_n(&p->stats.pages, __ATOMIC_RELAXED) * ZPOOL_PAGE_SIZE;
}

static void zs_stats(void *priv, struct zpool_stats *st)
{
	struct zs_pool *p = priv;

	st->pages = __atomic_load_n(&p->stats.pages, __ATOMIC_RELAXED);
	st->objects = __atomic_load_n(&p->stats.objects, __ATOMIC_RELAXED);
	st->object_bytes = __atomic_load_n(&p->stats.object_bytes, __ATOMIC_RELAXED);
	st->reclaimed_pages = __atomic_load_n(&p->stats.reclaimed_pages, __ATOMIC_RELAXED);
	st->evicted = __atomic_load_n(&p->stats.evicted, __ATOMIC_RELAXED);
	st->evict_failures = __atomic_load_n(&p->stats.evict_failures, __ATOMIC_RELAXED);
	st->compacted_pages = __atomic_load_n(&p->stats.compacted_pages, __ATOMIC_RELAXED);
	st->meta_bytes = __atomic_load_n(&p->stats.meta_bytes, __ATOMIC_RELAXED) +
			 __atomic_load_n(&p->handles.bytes, __ATOMIC_RELAXED) + sizeof(*p);
}

static void class_stat(struct size_class *c, struct zpool_class_stat *out)
{
	pthread_mutex_lock(&c->lock);
	*out = (struct zpool_class_stat){
		.index = c->index,
		.size = c->size,
		.objs_allocated = c->zspages * c->objs_per_zspage,
		.objs_used = c->objs_used,
		.pages_used = c->zspages * c->pages_per_zspage,
		.pages_per_zspage = c->pages_per_zspage,
		.pages_freeable = class_freeable_zspages(c) * c->pages_per_zspage,
	};
	pthread_mutex_unlock(&c->lock);
}

/* One entry per merged class, smallest size first. */
static size_t zs_class_stats(void *priv, struct zpool_class_stat *out, size_t max)
{
	struct zs_pool *p = priv;
	size_t n = 0;

	for (int i = 0; i < ZS_NR_SIZES; i++) {
		struct size_class *c = p->class_of[i];

		if (c->index != (unsigned int)i)
			continue;
		if (n < max)
			class_stat(c, &out[n]);
		n++;
	}
	return n;
}

/* ---- pool ---- */

static void zs_destroy(void *priv)
{
	struct zs_pool *p = priv;

	/* Every zspage is on the LRU: none can be under reclaim once callers are gone. */
	while (!list_empty(&p->lru)) {
		struct zspage *z = lru_coldest(p);

		list_del(&z->lru);
		free(z);
	}
	handles_destroy(&p->handles);
	classes_free(p);
	zpp_destroy(p->zpp);
	pthread_mutex_destroy(&p->lru_lock);
	free(p);
}

static int zs_create(struct zpool *zpool, const struct zpool_config *cfg, void **priv)
{
	struct zs_pool *p = calloc(1, sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	err = zpp_create(cfg->max_pages, cfg->arena_pages, &p->zpp);
	if (err)
		goto err_free;
	err = handles_init(&p->handles, zpp_max_pages(p->zpp));
	if (err)
		goto err_zpp;
	err = classes_make(p);
	if (err)
		goto err_classes;
	pthread_mutex_init(&p->lru_lock, NULL);
	list_init(&p->lru);
	p->zpool = zpool;
	p->evict = cfg->evict;
	p->evict_arg = cfg->evict_arg;
	*priv = p;
	return 0;

err_classes:
	classes_free(p);
	handles_destroy(&p->handles);
err_zpp:
	zpp_destroy(p->zpp);
err_free:
	free(p);
	return err;
}

const struct zpool_driver zsmalloc_driver = {
	.name = "zsmalloc",
	.create = zs_create,
	.destroy = zs_destroy,
	.malloc = zs_malloc,
	.free = zs_free,
	.map = zs_map,
	.unmap = zs_unmap,
	.shrink = zs_shrink,
	.compact = zs_compact,
	.total_size = zs_total_size,
	.stats = zs_stats,
	.class_stats = zs_class_stats,
	.class_kind = ZPOOL_CLASSES_SIZE,
};
