/* SPDX-License-Identifier: MIT */
/*
 * daemon/client.c - a client's life: creation, references, destruction,
 * and giving back what its pages hold in the pool.
 *
 * The fault service, reclaim and the server each hold a reference while
 * they use a client (client.h); the thread that drops the last one tears
 * it down here: every region destroyed (their pool objects freed through
 * uzd_client_release()), the fault-in queue freed, the daemon's copy of
 * the userfaultfd closed.  Nothing here takes a lock other than the
 * region table's and, inside it, the pool's (region.h lock order).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/client.h"
#include "daemon/object.h"
#include "daemon/writeback.h"

int uzd_client_init(struct uzd_client *c, uint32_t id, struct zpool *pool)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->id = id;
	c->uffd = -1;
	c->pool = pool;
	c->refs = 1;
	ret = uzd_region_table_init(&c->regions);
	if (ret < 0)
		return ret;
	uzd_sampler_init(&c->sampler);
	/*
	 * A quarter of its batches judged to begin with: its first verdicts
	 * come from a stage a quarter the size, and a client they show
	 * sampling pays for reaches every batch within a few windows, while
	 * one streaming through its memory is spared most of a full stage's
	 * zaps (faultbench evict_lz4: 5% of its eviction rate at a full start).
	 */
	c->share.share = UZD_SHARE_ONE / 4;
	ret = uzd_lru_init(&c->lru);
	if (ret < 0)
		goto err_regions;
	ret = uzd_lru_init(&c->hot);
	if (ret < 0)
		goto err_lru;
	ret = uzd_lru_init(&c->inactive);
	if (ret < 0)
		goto err_hot;
	return 0;

err_hot:
	uzd_lru_fini(&c->hot);
err_lru:
	uzd_lru_fini(&c->lru);
err_regions:
	uzd_region_table_fini(&c->regions, NULL, NULL);
	return ret;
}

void uzd_client_fini(struct uzd_client *c)
{
	uzd_region_table_fini(&c->regions, uzd_client_release, c);
	uzd_lru_fini(&c->lru);
	uzd_lru_fini(&c->hot);
	uzd_lru_fini(&c->inactive);
	uzd_sampler_close(&c->sampler);
}

int uzd_client_new(uint32_t id, struct zpool *pool, struct uzd_client **out)
{
	struct uzd_client *c = malloc(sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	ret = uzd_client_init(c, id, pool);
	if (ret < 0) {
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

void uzd_client_get(struct uzd_client *c)
{
	__atomic_fetch_add(&c->refs, 1, __ATOMIC_RELAXED);
}

void uzd_client_put(struct uzd_client *c)
{
	/* Acquire-release: the destroying thread sees every user's last writes. */
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	uzd_client_fini(c);
	if (c->uffd >= 0)
		close(c->uffd);
	free(c);
}

/*
 * The bytes the object of POOL entry @entry takes, as eviction counts them
 * in stats.pool_bytes: a RAW object is the page; any other, its header and
 * payload, and the header is the only place the length is.
 */
uint64_t uzd_client_object_bytes(struct zpool *pool, uint64_t entry)
{
	unsigned long handle = uzd_entry_pool_handle(entry);
	struct uzd_obj_hdr h;
	const void *obj;

	if (uzd_entry_flags(entry) & UZD_ENTRY_RAW)
		return UZD_PAGE_SIZE;
	obj = zpool_map(pool, handle, ZPOOL_MM_RO);
	if (!obj)
		return 0;
	uzd_obj_hdr_read(obj, &h);
	zpool_unmap(pool, handle);
	return UZD_OBJ_HDR_SIZE + h.len;
}

/* An owner of a SHARED payload lets go: true when it was the last (free it). */
static bool last_owner(struct uzd_client *c, uint64_t entry, uint64_t key)
{
	if (!(uzd_entry_flags(entry) & UZD_ENTRY_SHARED) || !c->shared)
		return true;
	return uzd_shared_put(c->shared, key);
}

int uzd_client_pool_free(struct uzd_client *c, unsigned long handle, bool raw)
{
	if (raw)
		uzd_wb_raw_freed(c->wb, handle);
	return zpool_free(c->pool, handle);
}

void uzd_client_free_object(struct uzd_client *c, uint64_t entry, uint64_t bytes)
{
	unsigned long handle = uzd_entry_pool_handle(entry);

	__atomic_fetch_sub(&c->stats.pool_bytes, bytes, __ATOMIC_RELAXED);
	if (!last_owner(c, entry, uzd_shared_pool_key(handle)))
		return;
	if (uzd_client_pool_free(c, handle, uzd_entry_flags(entry) & UZD_ENTRY_RAW) < 0)
		fprintf(stderr, "uzswapd: client %" PRIu32 ": BUG: pool handle %#lx not live\n",
			c->id, handle);
}

void uzd_client_free_record(struct uzd_client *c, uint64_t entry)
{
	uint64_t slot = uzd_entry_file_slot(entry);

	if (!c->wb)
		return;
	if (last_owner(c, entry, uzd_shared_file_key(slot)))
		uzd_wb_file_freed(c->wb, c, slot);
	else
		uzd_wb_file_unshared(c, slot);
}

/*
 * May run under the table's write lock: takes only the pool's locks, the
 * shared table's and the backing file's (region.h lock order).  A FILE
 * entry exists only while writeback is on (c->wb set); a SHARED one gives
 * up its count, and its record goes with the last owner.
 */
void uzd_client_release(const struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg)
{
	struct uzd_client *c = arg;

	(void)r;
	(void)pgidx;
	if (uzd_entry_state(entry) == UZD_ENTRY_FILE) {
		uzd_client_free_record(c, entry);
		return;
	}
	if (uzd_entry_state(entry) != UZD_ENTRY_POOL)
		return;
	uzd_client_free_object(c, entry, uzd_client_object_bytes(c->pool, entry));
}

uint64_t uzd_client_resident(struct uzd_client *c)
{
	struct uzd_region_counts rc;

	uzd_region_table_counts(&c->regions, &rc);
	return rc.resident;
}
