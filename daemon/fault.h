/* SPDX-License-Identifier: MIT */
/*
 * daemon/fault.h - the fault service: answer one client's userfaultfd.
 *
 * A fault thread owns one struct uzd_fault_ctx and calls uzd_fault_drain()
 * whenever a client's userfaultfd is readable (the server owns the epoll
 * loop).  Drain reads every pending message in batches, handles the
 * non-fault events first (REMOVE and UNMAP free the range's pool objects;
 * REMAP moves the regions, with their pages, to the new range), then
 * serves each fault (none while the client's fork fence is up: fork.h):
 *
 *   message -> region lookup (table read lock) -> claim the entry (BUSY)
 *     EMPTY    -> UFFDIO_ZEROPAGE
 *     SAME     -> fill the buffer with the word -> UFFDIO_COPY
 *     POOL     -> map, check the object header, decompress, unmap
 *                 -> UFFDIO_COPY -> free the object (exclusive load)
 *     FILE     -> one pread of the record (daemon/writeback.h), check its
 *                 checksum and owner, decompress -> UFFDIO_COPY -> free
 *                 the record
 *   -> publish RESIDENT (HOT when the refault distance is short)
 *
 * The data of a page is installed only through the uffd calls; a page
 * whose pool object is corrupt or not this page's is poisoned (the
 * touching thread gets SIGBUS), never filled with wrong data or zeros.
 * The service never compresses, never waits for eviction (a BUSY page is
 * left to the eviction that owns it, which wakes it) and never holds a
 * pool mapping across a uffd call.
 *
 * Counters go to the client's stats (relaxed atomic adds); the few this
 * thread sees that struct uzd_client_stats has no field for are kept in
 * struct uzd_fault_stats, per fault thread.
 */
#ifndef UZSWAP_DAEMON_FAULT_H
#define UZSWAP_DAEMON_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "compress/codec.h"
#include "daemon/client.h"

/* Outcomes this thread counts that the client's stats do not. */
struct uzd_fault_stats {
	uint64_t poisoned;	 /* pages poisoned: corrupt, foreign or unservable */
	uint64_t corrupt;	 /* pool objects that failed to decompress */
	uint64_t file_lost;	 /* file records unreadable, short or corrupt: poisoned */
	uint64_t foreign;	 /* pool objects whose header names another page */
	uint64_t busy;		 /* faults left to the eviction that owns the page */
	uint64_t wp;		 /* WP faults, left to the eviction's unprotect */
	uint64_t unmanaged;	 /* faults outside every region of the client */
	uint64_t eagain_retry;	 /* fills retried after -EAGAIN */
	uint64_t dropped;	 /* restored pages whose range was dropped meanwhile */
	uint64_t events;	 /* REMOVE, UNMAP, REMAP, other events handled */
	uint64_t refilled_holes; /* RESIDENT pages found punched (MADV_REMOVE): zero-filled */
};

struct uzd_fault_ctx;

/*
 * A context for one fault thread.  Decompresses any codec; @spec is only
 * the codec its uzc_ctx is made for (NULL: lz4).  -ENOMEM, or the codec's
 * error.
 */
int uzd_fault_ctx_new(const struct uzc_spec *spec, struct uzd_fault_ctx **out);
void uzd_fault_ctx_free(struct uzd_fault_ctx *fc);

/* The largest page_cluster: 32 pages filled together. */
#define UZD_FAULT_MAX_CLUSTER 5

/*
 * Sequential readahead: a fault that continues an in-order run of faults
 * in its region fills up to 2^@page_cluster pages, itself and the pages
 * that follow it (0: none).  -EINVAL above UZD_FAULT_MAX_CLUSTER.
 */
int uzd_fault_ctx_set_cluster(struct uzd_fault_ctx *fc, unsigned int page_cluster);

/* This thread's counters (read by the owning thread, or after it stopped). */
const struct uzd_fault_stats *uzd_fault_stats(const struct uzd_fault_ctx *fc);

/*
 * Read and handle the pending messages of c->uffd, a few reads' worth at
 * most (the caller's level-triggered epoll calls again for the rest, after
 * its other clients).  Returns 0 when all that was read was handled; -ESRCH when the client process is gone (the caller drops the
 * client), or another negative errno when its userfaultfd cannot be read
 * (also a reason to drop it).  A fault left unanswered is always one the
 * kernel or another thread will wake: see fault.c.
 */
int uzd_fault_drain(struct uzd_fault_ctx *fc, struct uzd_client *c);

#endif /* UZSWAP_DAEMON_FAULT_H */
