/* SPDX-License-Identifier: MIT */
/*
 * daemon/lru.h - one client's resident pages in the order they faulted in.
 *
 * userfaultfd shows the daemon when a page becomes resident (its MISSING
 * fault) and nothing about later reads or writes, so the closest thing to
 * an LRU the daemon can keep is the fault-in order: the fault service
 * appends each page it makes resident, and reclaim takes victims from the
 * front (design.md §2).  Reclaim puts back at the end the pages it passes
 * over (HOT ones: their second chance) and those an eviction left resident.
 *
 * A queue entry is the page's address, not a region and index: a region
 * may be trimmed or split (munmap) while its pages wait here, and the
 * address is what stays true.  Entries are hints: a page may have been
 * dropped, evicted or made resident again since it was queued, so whoever
 * pops one looks the page up and checks its entry before acting; a page
 * queued twice is harmless.  A resident page is in the queue at least once
 * unless the queue had to drop entries (uzd_lru_push() failing to grow):
 * reclaim then rebuilds the queue from the region tables when it runs dry.
 *
 * Memory: 8 bytes per queued page, so about 8 bytes per resident page;
 * the ring shrinks when it is mostly empty.
 *
 * Locking: one mutex per queue, held only to move entries in or out; it
 * nests inside the region table's lock and takes nothing else.
 */
#ifndef UZSWAP_DAEMON_LRU_H
#define UZSWAP_DAEMON_LRU_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/*
 * ring[(head + i) % cap] for i < count are the queued page addresses,
 * oldest first; cap is 0 or a power of two.  dropped counts pushes lost
 * for want of memory since the last rebuild.
 */
struct uzd_lru {
	pthread_mutex_t lock;
	uint64_t *ring;
	size_t head, count, cap;
	uint64_t dropped;
};

int uzd_lru_init(struct uzd_lru *q);
void uzd_lru_fini(struct uzd_lru *q);

/* Append page @addr; -ENOMEM when the ring cannot grow (counted in dropped). */
int uzd_lru_push(struct uzd_lru *q, uint64_t addr);

/* Move up to @max of the oldest entries into @out; returns how many. */
size_t uzd_lru_pop(struct uzd_lru *q, uint64_t *out, size_t max);

/* Entries queued now. */
size_t uzd_lru_count(struct uzd_lru *q);

/* Forget every entry (before a rebuild). */
void uzd_lru_clear(struct uzd_lru *q);

#endif /* UZSWAP_DAEMON_LRU_H */
