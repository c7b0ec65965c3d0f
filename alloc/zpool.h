/* SPDX-License-Identifier: MIT */
/*
 * alloc/zpool.h - the compressed-object pool: one interface, three allocators.
 *
 * The daemon stores each compressed page as one object of 1..4096 bytes in
 * a pool, and names it by an opaque handle.  A pool is made by driver name:
 * "zsmalloc" (dense: size classes, multi-page zspages, compaction), "z3fold"
 * (up to three objects per page) or "zbud" (two per page, deterministic).
 *
 * The contract, the zpool one of the kernel threads in shared/reference/:
 *  - malloc/free/map/unmap/shrink/compact may be called from any thread at
 *    any time; each driver documents its locks and their order.
 *  - A handle is an index into the pool's own pages, never a raw pointer, so
 *    it cannot reach another pool's memory.  Every driver checks a handle
 *    against its own metadata on free and map: a double free, a stale
 *    handle, or one that was never this pool's returns -EINVAL (map: NULL)
 *    instead of corrupting the pool.  Handles carry a generation, so a
 *    stale one is refused until its slot has been reused 2^21 times or
 *    more (each driver says how many).
 *  - map returns a pointer valid until the matching unmap; do not sleep or
 *    call into the pool (other than unmap) while holding a mapping.
 *  - Each driver keeps an LRU of its pool pages, ordered by the most recent
 *    allocation into them.  shrink takes the least recently used page and
 *    calls the evict callback once for each live object in it.  The
 *    callback copies the object elsewhere and frees the handle; a non-zero
 *    return means "could not", and the page goes back on the LRU.  A page
 *    under reclaim receives no new objects, and frees that race with
 *    reclaim are deferred so that the page is released exactly once.
 *  - Pool pages come from a page provider (alloc/pages.h) that returns freed
 *    pages to the kernel, so the pool's RSS follows zpool_total_size().
 */
#ifndef UZSWAP_ALLOC_ZPOOL_H
#define UZSWAP_ALLOC_ZPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZPOOL_PAGE_SIZE 4096
#define ZPOOL_MAX_OBJECT 4096
/*
 * Every handle is below 1 << ZPOOL_HANDLE_BITS, so that the daemon can keep
 * one beside its state bits in the single 64-bit entry it has per page.
 */
#define ZPOOL_HANDLE_BITS 56

enum zpool_map_mode {
	ZPOOL_MM_RO, /* the caller only reads */
	ZPOOL_MM_WO, /* the caller overwrites the whole object */
	ZPOOL_MM_RW,
};

struct zpool;

/*
 * Called by shrink for each live object of the page being reclaimed, with
 * no pool lock held.  Copy the object out (zpool_map/unmap), repoint its
 * owner, then zpool_free(handle); return 0.  Return non-zero to leave the
 * object where it is.
 */
typedef int (*zpool_evict_fn)(struct zpool *pool, unsigned long handle, void *arg);

struct zpool_config {
	zpool_evict_fn evict; /* NULL: shrink returns -EOPNOTSUPP */
	void *evict_arg;
	size_t max_pages;   /* pool pages at most; 0: no limit. Beyond it malloc gives -ENOMEM */
	size_t arena_pages; /* pages per mmap'd arena; 0: ZPP_DEFAULT_ARENA_PAGES */
};

struct zpool_stats {
	size_t pages;			    /* pool pages held now */
	size_t objects;			    /* live objects */
	size_t object_bytes;		    /* sum of the sizes asked for by live objects */
	unsigned long long reclaimed_pages; /* pool pages emptied by shrink */
	unsigned long long evicted;	    /* objects the evict callback took */
	unsigned long long evict_failures;  /* callback returned non-zero */
	unsigned long long compacted_pages; /* pool pages freed by compaction */
	size_t meta_bytes; /* allocated beside the pool pages: handle and page tables, descriptors */
};

/*
 * What a driver's classes are.  SIZE: zsmalloc's size classes, smallest
 * first.  FILL: drivers that pack a few objects into each page (z3fold,
 * zbud) report their pages grouped by how many objects each holds: index
 * is that count, 0 for z3fold's headless pages (one page-sized object),
 * size is 0, pages_per_zspage 1, and pages_freeable 0 (their compaction
 * never empties a page).
 */
enum zpool_class_kind {
	ZPOOL_CLASSES_NONE,
	ZPOOL_CLASSES_SIZE,
	ZPOOL_CLASSES_FILL,
};

/* One class (see enum zpool_class_kind). */
struct zpool_class_stat {
	unsigned int index, size; /* class number, object size in bytes */
	size_t objs_allocated;	  /* object slots in the class's zspages */
	size_t objs_used;	  /* of which live */
	size_t pages_used;	  /* pool pages of the class */
	unsigned int pages_per_zspage;
	size_t pages_freeable; /* pages compaction could free now */
};

/* A driver: see alloc/zpool_registry.c for the list. */
struct zpool_driver {
	const char *name;
	int (*create)(struct zpool *pool, const struct zpool_config *cfg, void **priv);
	void (*destroy)(void *priv);
	int (*malloc)(void *priv, size_t size, unsigned long *handle);
	int (*free)(void *priv, unsigned long handle);
	void *(*map)(void *priv, unsigned long handle, enum zpool_map_mode mode);
	void (*unmap)(void *priv, unsigned long handle);
	int (*shrink)(void *priv, unsigned int pages, unsigned int *reclaimed);
	size_t (*compact)(void *priv);
	size_t (*total_size)(void *priv);
	void (*stats)(void *priv, struct zpool_stats *st);
	/* Optional: fills at most @max entries, returns how many classes exist. */
	size_t (*class_stats)(void *priv, struct zpool_class_stat *out, size_t max);
	enum zpool_class_kind class_kind; /* what class_stats reports */
};

/* The driver named @name, or NULL. */
const struct zpool_driver *zpool_driver_find(const char *name);
/* Names of all drivers, NULL-terminated. */
const char *const *zpool_driver_names(void);

/* -ENOENT for an unknown driver name; -ENOMEM. */
int zpool_create(const char *driver, const struct zpool_config *cfg, struct zpool **out);
int zpool_create_with(const struct zpool_driver *driver, const struct zpool_config *cfg,
		      struct zpool **out);
void zpool_destroy(struct zpool *pool);
const char *zpool_name(const struct zpool *pool);

/* -EINVAL for size 0, -ENOSPC above ZPOOL_MAX_OBJECT, -ENOMEM when no page can be had. */
int zpool_malloc(struct zpool *pool, size_t size, unsigned long *handle);
/* 0; -EINVAL for a handle that is not live (a double free, a stale or foreign handle). */
int zpool_free(struct zpool *pool, unsigned long handle);
/*
 * The object's bytes, valid until zpool_unmap; NULL for a handle that is not
 * live (the evict callback may be mapping an object its owner just freed).
 * Unmap a NULL mapping too: the pair is balanced either way.
 */
void *zpool_map(struct zpool *pool, unsigned long handle, enum zpool_map_mode mode);
void zpool_unmap(struct zpool *pool, unsigned long handle);

/*
 * Reclaim pool pages through the LRU and the evict callback until @pages
 * have been freed or nothing more can be; *@reclaimed (may be NULL) is the
 * number of pages actually freed.  Drivers release whole units (zsmalloc a
 * zspage of 1-8 pages), so *@reclaimed may exceed @pages by less than one
 * unit: refusing the LRU unit because it is too big would leave a full pool
 * unable to shrink at all.  Returns 0 when at least one page was freed or
 * none was asked; -EAGAIN when nothing could be emptied after the retries
 * (or the pool is empty); -EOPNOTSUPP without an evict callback.
 */
int zpool_shrink(struct zpool *pool, unsigned int pages, unsigned int *reclaimed);
/* Move objects to free pool pages; returns the number of pages freed. */
size_t zpool_compact(struct zpool *pool);
/* Bytes of pool pages held. */
size_t zpool_total_size(struct zpool *pool);
void zpool_stats(struct zpool *pool, struct zpool_stats *st);
/*
 * The driver's classes: fills at most @max entries and returns how many
 * there are (0 for a driver without them); cheap enough for any thread
 * (a class lock or the pool lock held for a few loads).
 */
size_t zpool_class_stats(struct zpool *pool, struct zpool_class_stat *out, size_t max);
enum zpool_class_kind zpool_class_kind(const struct zpool *pool);

#endif /* UZSWAP_ALLOC_ZPOOL_H */
