/* SPDX-License-Identifier: MIT */
/*
 * daemon/shared.h - payloads held by more than one page entry.
 *
 * A fork child gets the parent's evicted pages without copying them
 * (daemon/fork.c): both entries hold the same pool handle (or, once pages
 * are written back, file slot), flagged UZD_ENTRY_SHARED (daemon/entry.h).
 * This table counts the owners of each such payload, so that a restore
 * (exclusive load), a drop or a destroy frees it only when it lets go as
 * the last owner.  Payloads that were never shared are not in it: the fault
 * path pays nothing for sharing unless the entry has the flag.
 *
 * Keys: a pool handle as it is; a file slot with bit 63 set (handles and
 * slots fit in 56 bits), so one table serves both tiers.  Writeback moves
 * a SHARED object to the file only by repointing every owner at once and
 * moving the count to the slot's key with uzd_shared_rekey()
 * (daemon/writeback.c): the object header names one owner only.
 *
 * One table per daemon (struct uzd_daemon), an open-addressing hash under
 * one mutex, a leaf lock: taken inside a region table lock, takes nothing.
 */
#ifndef UZSWAP_DAEMON_SHARED_H
#define UZSWAP_DAEMON_SHARED_H

#include <stdbool.h>
#include <stdint.h>

struct uzd_shared;

static inline uint64_t uzd_shared_pool_key(unsigned long handle)
{
	return (uint64_t)handle;
}

static inline uint64_t uzd_shared_file_key(uint64_t slot)
{
	return slot | UINT64_C(1) << 63;
}

int uzd_shared_new(struct uzd_shared **out);
void uzd_shared_free(struct uzd_shared *s);

/*
 * One more owner of @key (a payload not in the table has one owner, and now
 * two).  0 or -ENOMEM (nothing changed).
 */
int uzd_shared_get(struct uzd_shared *s, uint64_t key);

/*
 * An owner lets go of @key: true when it was the last one (@key is not in
 * the table: a SHARED flag whose other owners are gone), and the caller
 * must free the payload.
 */
bool uzd_shared_put(struct uzd_shared *s, uint64_t key);

/* How many entries hold @key: its count, or 1 when it is not in the table. */
uint64_t uzd_shared_owners(struct uzd_shared *s, uint64_t key);

/* The owners' count moves from @from to @to (a payload moved tiers).  -ENOENT. */
int uzd_shared_rekey(struct uzd_shared *s, uint64_t from, uint64_t to);

/* Payloads in the table now. */
uint64_t uzd_shared_count(struct uzd_shared *s);

#endif /* UZSWAP_DAEMON_SHARED_H */
