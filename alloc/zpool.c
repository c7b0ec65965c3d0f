/* SPDX-License-Identifier: MIT */
/*
 * alloc/zpool.c - the pool front: argument checks common to every driver,
 * then a call through the driver's table.
 *
 * struct zpool is the handle the daemon holds; it owns the driver's private
 * state and never changes after creation, so it needs no lock of its own.
 * The evict callback is given this struct zpool, so the callback can free
 * the handle through the same front.
 */
#include <errno.h>
#include <stdlib.h>

#include "alloc/zpool.h"

struct zpool {
	const struct zpool_driver *driver;
	void *priv;
};

int zpool_create_with(const struct zpool_driver *driver, const struct zpool_config *cfg,
		      struct zpool **out)
{
	struct zpool *pool = calloc(1, sizeof(*pool));
	int err;

	if (!pool)
		return -ENOMEM;
	pool->driver = driver;
	err = driver->create(pool, cfg, &pool->priv);
	if (err) {
		free(pool);
		return err;
	}
	*out = pool;
	return 0;
}

int zpool_create(const char *name, const struct zpool_config *cfg, struct zpool **out)
{
	const struct zpool_driver *driver = zpool_driver_find(name);

	if (!driver)
		return -ENOENT;
	return zpool_create_with(driver, cfg, out);
}

void zpool_destroy(struct zpool *pool)
{
	if (!pool)
		return;
	pool->driver->destroy(pool->priv);
	free(pool);
}

const char *zpool_name(const struct zpool *pool)
{
	return pool->driver->name;
}

int zpool_malloc(struct zpool *pool, size_t size, unsigned long *handle)
{
	if (size == 0)
		return -EINVAL;
	if (size > ZPOOL_MAX_OBJECT)
		return -ENOSPC;
	return pool->driver->malloc(pool->priv, size, handle);
}

int zpool_free(struct zpool *pool, unsigned long handle)
{
	return pool->driver->free(pool->priv, handle);
}

void *zpool_map(struct zpool *pool, unsigned long handle, enum zpool_map_mode mode)
{
	return pool->driver->map(pool->priv, handle, mode);
}

void zpool_unmap(struct zpool *pool, unsigned long handle)
{
	pool->driver->unmap(pool->priv, handle);
}

int zpool_shrink(struct zpool *pool, unsigned int pages, unsigned int *reclaimed)
{
	unsigned int dummy;

	return pool->driver->shrink(pool->priv, pages, reclaimed ? reclaimed : &dummy);
}

size_t zpool_compact(struct zpool *pool)
{
	return pool->driver->compact(pool->priv);
}

size_t zpool_total_size(struct zpool *pool)
{
	return pool->driver->total_size(pool->priv);
}

void zpool_stats(struct zpool *pool, struct zpool_stats *st)
{
	pool->driver->stats(pool->priv, st);
}

enum zpool_class_kind zpool_class_kind(const struct zpool *pool)
{
	return pool->driver->class_stats ? pool->driver->class_kind : ZPOOL_CLASSES_NONE;
}

size_t zpool_class_stats(struct zpool *pool, struct zpool_class_stat *out, size_t max)
{
	if (!pool->driver->class_stats)
		return 0;
	return pool->driver->class_stats(pool->priv, out, max);
}
