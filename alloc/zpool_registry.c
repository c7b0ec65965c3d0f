/* SPDX-License-Identifier: MIT */
/*
 * alloc/zpool_registry.c - the drivers a pool can be made with, by name.
 *
 * The only file that names every driver: a new allocator is one file in
 * alloc/ plus one line here.
 */
#include <string.h>

#include "alloc/zpool.h"

extern const struct zpool_driver zsmalloc_driver;
extern const struct zpool_driver z3fold_driver;
extern const struct zpool_driver zbud_driver;

/* The first is the default: the densest, and the one the kernel kept. */
static const struct zpool_driver *const drivers[] = {
	&zsmalloc_driver,
	&z3fold_driver,
	&zbud_driver,
};

#define NDRIVERS (sizeof(drivers) / sizeof(drivers[0]))

static const char *const names[NDRIVERS + 1] = {
	"zsmalloc",
	"z3fold",
	"zbud",
	NULL,
};

const struct zpool_driver *zpool_driver_find(const char *name)
{
	for (size_t i = 0; name && i < NDRIVERS; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

const char *const *zpool_driver_names(void)
{
	return names;
}
