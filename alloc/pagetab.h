/* SPDX-License-Identifier: MIT */
/*
 * alloc/pagetab.h - per-page metadata kept beside the pool, by page index.
 *
 * zbud and z3fold keep a fixed-size struct for every pool page outside the
 * page itself (so a whole page holds objects, and a stale handle is checked
 * against metadata that is never unmapped).  Page indexes are sparse and
 * bounded by zpp_index_limit(), so the structs live in blocks of
 * PAGETAB_BLOCK, made when a page of the block is first used and kept until
 * the pool goes: an element's address never changes.
 *
 * Locking: pagetab_make() runs under its owner's lock (the pool lock);
 * pagetab_get() may run without it: a block is published with a release
 * store after its elements are initialised, and read with an acquire load.
 */
#ifndef UZSWAP_ALLOC_PAGETAB_H
#define UZSWAP_ALLOC_PAGETAB_H

#include <stddef.h>
#include <stdint.h>

#define PAGETAB_BLOCK 512

struct pagetab {
	void **dir; /* dir[index / PAGETAB_BLOCK]: a block, or NULL */
	size_t ndir;
	size_t elem_size;
	size_t bytes; /* allocated: the directory and the blocks made (owner's lock) */
	/* Called on each element of a new (zeroed) block, and before a block is freed. */
	void (*elem_init)(void *elem);
	void (*elem_fini)(void *elem);
};

/* A table for page indexes below @index_limit; the callbacks may be NULL. */
int pagetab_init(struct pagetab *t, size_t index_limit, size_t elem_size,
		 void (*elem_init)(void *elem), void (*elem_fini)(void *elem));
void pagetab_fini(struct pagetab *t);

/* The element of @index, or NULL when it is out of range or its block was never made. */
void *pagetab_get(const struct pagetab *t, uint64_t index);
/* The element of @index, making its block if needed; -ENOMEM, or -ERANGE beyond the limit. */
int pagetab_make(struct pagetab *t, uint64_t index, void **out);

#endif /* UZSWAP_ALLOC_PAGETAB_H */
