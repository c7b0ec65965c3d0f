/* SPDX-License-Identifier: MIT */
/*
 * daemon/rawtab.h - who owns each RAW pool object.
 *
 * Writeback gets only a pool handle from the allocator's LRU and must find
 * the page entry that holds it.  A compressed object says so in its header
 * (daemon/object.h); a RAW object is the bare page, 4096 bytes with no
 * room for one, so its owner (client id and page address) is kept here,
 * keyed by handle, from the eviction that stores it to the free that ends
 * it.  An owner found here is a hint, as a header is: writeback acts only
 * if that page's entry still holds the handle.
 *
 * An open-addressing table with linear probing and backward-shift
 * deletion (no tombstones, so a long-lived table does not clog), grown at
 * half full, shrunk at an eighth.  Cost: 24 bytes a slot, at most 96 per
 * RAW object and about 48 on average; RAW pages are 0.2% of the redis
 * data (0.1 byte per managed page), and the table is empty when writeback
 * is off.
 *
 * Locking: one mutex, a leaf: callers may hold a region table lock and the
 * pool's locks are never taken under it.
 */
#ifndef UZSWAP_DAEMON_RAWTAB_H
#define UZSWAP_DAEMON_RAWTAB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* A slot is empty when client_id is 0 (no client has id 0). */
struct uzd_rawtab_slot {
	unsigned long handle;
	uint64_t addr;
	uint32_t client_id;
};

struct uzd_rawtab {
	pthread_mutex_t lock;
	struct uzd_rawtab_slot *v;
	size_t cap, n; /* cap: 0 or a power of two */
};

int uzd_rawtab_init(struct uzd_rawtab *t);
void uzd_rawtab_fini(struct uzd_rawtab *t);

/* Record that @handle is page @addr of client @client_id (replacing any older owner).  -ENOMEM. */
int uzd_rawtab_add(struct uzd_rawtab *t, unsigned long handle, uint32_t client_id, uint64_t addr);
/* Forget @handle (if it is there). */
void uzd_rawtab_del(struct uzd_rawtab *t, unsigned long handle);
/* The owner of @handle: 0, or -ENOENT when it is not a RAW object here. */
int uzd_rawtab_get(struct uzd_rawtab *t, unsigned long handle, uint32_t *client_id, uint64_t *addr);
/* Entries now. */
size_t uzd_rawtab_count(struct uzd_rawtab *t);

#endif /* UZSWAP_DAEMON_RAWTAB_H */
