/* SPDX-License-Identifier: MIT */
/* alloc/pagetab.c - per-page metadata by page index (see pagetab.h). */
#include <errno.h>
#include <stdlib.h>

#include "alloc/pagetab.h"

int pagetab_init(struct pagetab *t, size_t index_limit, size_t elem_size,
		 void (*elem_init)(void *elem), void (*elem_fini)(void *elem))
{
	t->ndir = (index_limit + PAGETAB_BLOCK - 1) / PAGETAB_BLOCK;
	t->dir = calloc(t->ndir ? t->ndir : 1, sizeof(*t->dir));
	t->elem_size = elem_size;
	t->elem_init = elem_init;
	t->elem_fini = elem_fini;
	t->bytes = (t->ndir ? t->ndir : 1) * sizeof(*t->dir);
	return t->dir ? 0 : -ENOMEM;
}

void pagetab_fini(struct pagetab *t)
{
	for (size_t d = 0; d < t->ndir; d++) {
		char *block = t->dir[d];

		for (size_t i = 0; block && t->elem_fini && i < PAGETAB_BLOCK; i++)
			t->elem_fini(block + i * t->elem_size);
		free(block);
	}
	free(t->dir);
	t->dir = NULL;
}

void *pagetab_get(const struct pagetab *t, uint64_t index)
{
	char *block;

	if (index / PAGETAB_BLOCK >= t->ndir)
		return NULL;
	block = __atomic_load_n(&t->dir[index / PAGETAB_BLOCK], __ATOMIC_ACQUIRE);
	return block ? block + (index % PAGETAB_BLOCK) * t->elem_size : NULL;
}

int pagetab_make(struct pagetab *t, uint64_t index, void **out)
{
	char *block;

	if (index / PAGETAB_BLOCK >= t->ndir)
		return -ERANGE;
	block = t->dir[index / PAGETAB_BLOCK];
	if (!block) {
		block = calloc(PAGETAB_BLOCK, t->elem_size);
		if (!block)
			return -ENOMEM;
		for (size_t i = 0; t->elem_init && i < PAGETAB_BLOCK; i++)
			t->elem_init(block + i * t->elem_size);
		t->bytes += PAGETAB_BLOCK * t->elem_size;
		__atomic_store_n(&t->dir[index / PAGETAB_BLOCK], block, __ATOMIC_RELEASE);
	}
	*out = block + (index % PAGETAB_BLOCK) * t->elem_size;
	return 0;
}
