/* SPDX-License-Identifier: MIT */
/*
 * alloc/pages.h - the page provider under every pool allocator.
 *
 * Pool pages are 4 KiB pages carved from large anonymous mmap'd arenas.  A
 * page is named by a 32-bit index (arena number * arena_pages + offset), so
 * allocators can build handles from indexes instead of pointers.  Runs of up
 * to ZPP_MAX_RUN contiguous pages are available for allocators whose objects
 * span pages (zsmalloc's zspages); a run never crosses an arena.
 *
 * Freed pages go back to the kernel at once (MADV_DONTNEED) and an arena
 * whose pages are all free is unmapped, so the RSS of the pool follows the
 * number of pages held.  A freshly allocated page reads as zeros.
 *
 * Thread safety: alloc and free take the provider's mutex, a leaf lock (no
 * other lock is taken under it).  zpp_addr takes no lock: an arena's address
 * is published under the mutex before any of its pages is handed out, and a
 * caller asks only for pages it holds.
 */
#ifndef UZSWAP_ALLOC_PAGES_H
#define UZSWAP_ALLOC_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZPP_PAGE_SIZE 4096
#define ZPP_MAX_RUN 16
/* 2 MiB arenas: big enough that mmap calls are rare, small enough to unmap often. */
#define ZPP_DEFAULT_ARENA_PAGES 512
/* Without a page limit, the index space still needs a bound: 64 GiB of pool. */
#define ZPP_DEFAULT_MAX_PAGES (1UL << 24)

struct zpp;

/* @max_pages 0: ZPP_DEFAULT_MAX_PAGES; @arena_pages 0: the default, else a multiple of 64. */
int zpp_create(size_t max_pages, size_t arena_pages, struct zpp **out);
/* Unmaps every arena; pages still held are lost. */
void zpp_destroy(struct zpp *zpp);

/* A run of @n (1..ZPP_MAX_RUN) contiguous zeroed pages; -ENOMEM at the limit. */
int zpp_alloc(struct zpp *zpp, unsigned int n, uint32_t *index);
void zpp_free(struct zpp *zpp, uint32_t index, unsigned int n);

/* Address of held page @index. */
void *zpp_addr(const struct zpp *zpp, uint32_t index);
/* Whether @index is a page inside a mapped arena and currently held. */
bool zpp_held(struct zpp *zpp, uint32_t index);

size_t zpp_pages_held(struct zpp *zpp);
size_t zpp_max_pages(const struct zpp *zpp);
/*
 * One past the largest index a page can have: the arena slots times their
 * size, which exceeds max_pages when arena_pages does not divide it (a
 * page can sit in a later arena while an earlier slot is unmapped).
 * Tables indexed by page index must be this long.
 */
size_t zpp_index_limit(const struct zpp *zpp);
size_t zpp_arenas_mapped(struct zpp *zpp);

#endif /* UZSWAP_ALLOC_PAGES_H */
