/* SPDX-License-Identifier: MIT */
/*
 * daemon/client.h - what the daemon holds for one connected client.
 *
 * Shared by the fault service (daemon/fault.c) and eviction
 * (daemon/evict.c), which both work on a client's pages; the server that
 * accepts clients fills it in.  The pool is shared by every client and
 * outlives them.
 *
 *   id         unique among live clients, never 0; stored in pool objects
 *   uffd       the client's userfaultfd (the daemon's copy), O_NONBLOCK
 *   regions    the client's regions and page entries (daemon/region.h)
 *   pool       the compressed pool all clients share (alloc/zpool.h)
 *   evict_seq  evictions of this client's pages so far: the clock that
 *              refault distances are measured on (daemon/object.h)
 *   stats      counters, updated with relaxed atomic adds by any thread
 */
#ifndef UZSWAP_DAEMON_CLIENT_H
#define UZSWAP_DAEMON_CLIENT_H

#include <stdint.h>

#include "alloc/zpool.h"
#include "daemon/hist.h"
#include "daemon/region.h"

struct uzd_client_stats {
	uint64_t faults_zero;	     /* first touches served with a zero page */
	uint64_t faults_same;	     /* restored from a same-filled word */
	uint64_t faults_pool;	     /* restored from the pool */
	uint64_t faults_raced;	     /* the page was already there (EEXIST): woken */
	uint64_t refaults_hot;	     /* restored pages found hot (refault distance) */
	uint64_t evicted_same;	     /* evictions kept as a word */
	uint64_t evicted_pool;	     /* evictions stored in the pool */
	uint64_t rejected_pool_full; /* evictions refused: the pool had no room */
	uint64_t rejected_busy;	     /* victims skipped: a fault owned them */
	uint64_t pool_bytes;	     /* bytes of this client's live pool objects */
	struct uzd_hist fault_ns;    /* time from reading a fault to waking it */
};

struct uzd_client {
	uint32_t id;
	int uffd;
	struct uzd_region_table regions;
	struct zpool *pool;
	uint32_t evict_seq;
	struct uzd_client_stats stats;
};

#endif /* UZSWAP_DAEMON_CLIENT_H */
