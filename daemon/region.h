/* SPDX-License-Identifier: MIT */
/*
 * daemon/region.h - a client's managed regions and their page entries.
 *
 * struct uzd_region_table is one client's set of regions, kept in an array
 * sorted by start address so that the fault path finds the region of an
 * address by binary search.  Each struct uzd_region owns one entry per
 * page (daemon/entry.h) in an anonymous MAP_NORESERVE mapping, so pages of
 * the array that were never written cost no memory; the region's own
 * struct is the only other metadata, well under the 16 bytes per managed
 * page the issue allows.
 *
 * Locking.  The table has one rwlock, taken for writing by create, destroy
 * and unmap_range (which change the array, move or free regions) and for
 * reading by everyone who uses a region: lookup and the claim..publish of
 * a page on the fault and reclaim paths, drop_range, the counters.  A region
 * pointer is valid only while its holder has the read lock.  The lock
 * prefers writers, so that a stream of faults cannot starve an unregister;
 * the price is that a thread must never take the read lock twice (a
 * waiting writer would deadlock it).  The entries themselves take no lock:
 * they change only by compare-and-swap.  Release callbacks may run with
 * the table lock held: they must not take it.  Lock order: table lock, then
 * whatever the callback takes (the pool's locks).
 *
 * The page protocol (one owner at a time).  A thread that moves a page
 * claims it (state -> BUSY, the old value handed to it), does the slow
 * work, then publishes the new value or aborts back to the old one; only
 * the owner may leave BUSY.  A racer that finds BUSY gets -EBUSY and backs
 * off, never spins:
 *  - eviction holds BUSY only between the write-protect fence and the
 *    publish after the punch (design.md §1).  A fault that finds BUSY
 *    simply returns: the faulting thread stays blocked in the kernel, and
 *    the eviction's unprotect (or its UFFDIO_COPY) wakes it; it faults
 *    again and then finds a settled entry.  So whoever leaves BUSY after
 *    a fence, by publish or abort, must then unprotect or wake the range;
 *  - reclaim that finds BUSY (a fault in progress) skips the page;
 *  - claim..publish runs under the table's read lock, so destroy, which
 *    takes the write lock, never meets a BUSY entry.
 * A mover that needs no time between the old value and the new one
 * (writeback: its object is in the file before it looks at the entry)
 * repoints a settled entry to another settled value in one compare-and-
 * swap instead (uzd_region_repoint): the entry is never BUSY, so no fault
 * is left waiting and no wake is owed; if anyone changed the entry first,
 * the swap fails and the mover keeps what it meant to hand over.
 *
 * Dropping a range (MADV_REMOVE) cannot wait for an owner either.
 * uzd_region_drop_range() empties every settled page and hands its pool
 * handle or file slot to the release callback; a BUSY page is only marked
 * DROPPED.  Its owner's publish or abort then stores EMPTY instead and
 * returns UZD_ENTRY_DROPPED: the value the owner meant to store (its new
 * pool handle, or the old one it meant to restore) is the owner's to free.
 * So every payload is released exactly once, by the dropper or the owner.
 * An munmap also changes the regions' extent, so uzd_region_unmap_range()
 * takes the write lock instead and meets no owner.
 *
 * Counters.  Each region counts its pages by settled state (resident,
 * same, pool, file); a BUSY page still counts in the state it came from
 * until its owner publishes.  Every transition made through the
 * uzd_region_* functions adjusts them with atomic adds, so they are exact
 * whenever no transition is in flight.
 */
#ifndef UZSWAP_DAEMON_REGION_H
#define UZSWAP_DAEMON_REGION_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/entry.h"

#define UZD_PAGE_SHIFT 12
#define UZD_PAGE_SIZE (1UL << UZD_PAGE_SHIFT)
#define UZD_REGION_NAME_MAX 32 /* with the NUL */
/* 1 TiB of managed memory per region: a 2 GiB entry array at most. */
#define UZD_REGION_MAX_PAGES (UINT64_C(1) << 28)
/* Regions per client: bounds what one client can make the daemon hold. */
#define UZD_REGION_MAX_PER_TABLE 4096

/* Returned by publish and abort: the range was dropped meanwhile. */
#define UZD_ENTRY_DROPPED 1

struct uzd_region_counts {
	uint64_t resident, same, pool, file;
};

/*
 * Everything but entries[] and counts is fixed from create to destroy.
 *  id         unique in its table, never 0
 *  start,len  the client's address range, page-aligned, len > 0
 *  npages     len / UZD_PAGE_SIZE
 *  memfd      owned: closed by destroy
 *  memfd_off  offset in the memfd of the page at start, page-aligned
 *  entries    npages entries, inside the mapping map (map_len bytes); a
 *             trimmed region's entries start past the mapping's start
 *  counts     atomically updated, see above
 *
 * start, len, npages, memfd_off and entries change only under the write
 * lock, by uzd_region_unmap_range().
 *
 * ra_next, ra_ahead: the sequential readahead of daemon/fault.c, the fault
 * thread's alone (only the thread serving the client reads or writes them,
 * under the read lock): the address the region's next fault is at if its
 * faults go in order (0: none yet), and the pages the last one restored
 * ahead.  An address, not an index, so that a trim cannot make it lie.
 */
struct uzd_region {
	uint32_t id;
	int memfd;
	uintptr_t start;
	size_t len;
	size_t npages;
	uint64_t memfd_off;
	char name[UZD_REGION_NAME_MAX];
	uint64_t *entries;
	uint64_t *map;
	size_t map_len;
	struct uzd_region_counts counts;
	uint64_t ra_next;
	size_t ra_ahead;
};

/*
 * One open file behind regions of a table: a client that maps all its
 * regions from one memfd (the interposer, client/uzi.h) costs the daemon
 * one descriptor, not one per region.  refs counts the regions using fd.
 */
struct uzd_region_file {
	dev_t dev;
	ino_t ino;
	int fd;
	unsigned int refs;
};

/*
 * regions[0..n) sorted by start, pairwise disjoint; n <= cap.  next_id is
 * the next id to try.  files[0..nfiles) are the distinct memfds the regions
 * use (capacity files_cap).  managed_pages is the sum of the regions'
 * npages.  Fields change only under the write lock; n and managed_pages
 * are also read without it (uzd_region_table_size()).
 */
struct uzd_region_table {
	pthread_rwlock_t lock;
	struct uzd_region **regions;
	size_t n, cap;
	size_t max_regions; /* n never exceeds it: UZD_REGION_MAX_PER_TABLE, or less */
	size_t managed_pages;
	uint32_t next_id;
	struct uzd_region_file *files;
	size_t nfiles, files_cap;
};

struct uzd_region_args {
	uintptr_t start;
	size_t len;
	int memfd;
	uint64_t memfd_off;
	const char *name; /* NULL: "" */
};

/*
 * Called once for each POOL handle or FILE slot that a destroy or a drop
 * takes away from a page: @entry is the page's last value (decode it with
 * uzd_entry_state/pool_handle/file_slot), @pgidx its index in @r.
 */
typedef void (*uzd_release_fn)(const struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg);

int uzd_region_table_init(struct uzd_region_table *t);
/*
 * Destroys every region (client gone), releasing what they hold.  No other
 * thread may use the table any more.
 */
void uzd_region_table_fini(struct uzd_region_table *t, uzd_release_fn release, void *arg);

/* How many regions, and pages in them, without the lock (a moment's view, for quotas). */
void uzd_region_table_size(const struct uzd_region_table *t, size_t *regions, size_t *pages);

void uzd_region_read_lock(struct uzd_region_table *t);
void uzd_region_read_unlock(struct uzd_region_table *t);
/*
 * The write lock, for a caller that must change entries of several tables
 * at once with nobody between (writeback of a payload fork relatives
 * share): it takes them in ascending client id order, the one rule that
 * keeps two such callers from deadlocking.
 */
void uzd_region_write_lock(struct uzd_region_table *t);
void uzd_region_write_unlock(struct uzd_region_table *t);

/*
 * Adds a region; on success it owns a->memfd (closed at once when it is a
 * file another region of the table uses already: the region then uses that
 * descriptor) and *id names it.  -EINVAL
 * for an unaligned or empty range, one that wraps, or a name too long;
 * -EBADF for a negative fd; -E2BIG beyond UZD_REGION_MAX_PAGES; -EEXIST
 * when it overlaps another region; -ENOSPC when the table is full;
 * -ENOMEM.  Takes the write lock.
 */
int uzd_region_create(struct uzd_region_table *t, const struct uzd_region_args *a, uint32_t *id);
/* Removes region @id, releases its payloads, closes its memfd.  -ENOENT. */
int uzd_region_destroy(struct uzd_region_table *t, uint32_t id, uzd_release_fn release, void *arg);

/* Read lock held.  The region containing @addr, and the page's index; or NULL. */
struct uzd_region *uzd_region_lookup(struct uzd_region_table *t, uintptr_t addr, size_t *pgidx);
/* Read lock held.  The region with @id, or NULL. */
struct uzd_region *uzd_region_find(struct uzd_region_table *t, uint32_t id);

/*
 * Empties every page of [addr, addr+len) that lies in a region (the parts
 * outside regions are ignored), with the DROPPED protocol above for BUSY
 * pages; *dropped (may be NULL) counts the pages it emptied or marked.
 * The regions keep their extent.  -EINVAL for an unaligned or wrapping
 * range.  Takes the read lock.
 */
int uzd_region_drop_range(struct uzd_region_table *t, uintptr_t addr, size_t len,
			  uzd_release_fn release, void *arg, size_t *dropped);

/*
 * munmap of [addr, addr+len): empties its pages as drop_range does, then
 * gives the address range back: a region wholly inside is destroyed, one
 * overlapping an end is trimmed, and one with the range strictly inside is
 * split in two.  The head keeps its id; the tail gets a new id (*tail_id,
 * may be NULL; 0 when nothing was split), a dup of the memfd and its own
 * entry array.  Takes the write lock, so it meets no BUSY page.  -EINVAL
 * for an unaligned or wrapping range.  A split that cannot be allocated
 * (-ENOMEM, -ENOSPC, -EMFILE) still empties the pages, so nothing leaks;
 * only the hole stays inside the region.
 */
int uzd_region_unmap_range(struct uzd_region_table *t, uintptr_t addr, size_t len,
			   uzd_release_fn release, void *arg, uint32_t *tail_id);

/*
 * Called for each non-EMPTY page of a region that uzd_region_move_range()
 * moved: @r is at its new address already.  Write lock held: it must not
 * take the table's lock.
 */
typedef void (*uzd_moved_fn)(struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg);

/*
 * mremap moved [from, from + len) to [to, to + len) (UFFD_EVENT_REMAP): the
 * regions there follow with their entries and memfd offsets; a region that
 * straddles an end of the range is split first, the tail a new region as
 * in uzd_region_unmap_range().  Whatever region still lies at the
 * destination is dropped (the kernel unmapped it).  -EINVAL for a bad
 * range, -ENOMEM (or -ENOSPC, -EMFILE) when a split cannot be made: the
 * moved part is then dropped, never left at the old address.  Takes the
 * write lock.
 */
int uzd_region_move_range(struct uzd_region_table *t, uintptr_t from, uintptr_t to, size_t len,
			  uzd_release_fn release, uzd_moved_fn moved, void *arg);

/*
 * Set page @pgidx of a region nobody else can reach yet (a fork child's,
 * daemon/fork.c) to the settled value @v, counting it.  The page must be
 * EMPTY.
 */
void uzd_region_set_entry(struct uzd_region *r, size_t pgidx, uint64_t v);

/* Page transitions with counters; read lock held, pgidx < r->npages. */
int uzd_region_claim(struct uzd_region *r, size_t pgidx, unsigned int state_mask, uint64_t *old);
int uzd_region_publish(struct uzd_region *r, size_t pgidx, uint64_t new_value);
int uzd_region_abort(struct uzd_region *r, size_t pgidx, uint64_t old);
/*
 * Settled @expect to settled @new_value in one compare-and-swap, counters
 * moved.  0; -EBUSY (an owner holds the page) or -ESTALE (it is no longer
 * @expect: restored, dropped, moved); -EINVAL if either value is BUSY.
 */
int uzd_region_repoint(struct uzd_region *r, size_t pgidx, uint64_t expect, uint64_t new_value);

/* A snapshot of one region's counters (read lock held). */
void uzd_region_counts(const struct uzd_region *r, struct uzd_region_counts *out);
/* Their sum over the client's regions.  Takes the read lock. */
void uzd_region_table_counts(struct uzd_region_table *t, struct uzd_region_counts *out);

/*
 * The raw transitions on one entry, without counters: the mechanism under
 * the uzd_region_* ones, which the daemon should use instead.
 *
 * claim: if *e is in one of @state_mask's states, make it BUSY and return
 * 0 (acquire: the previous owner's writes are visible); *old is the value
 * seen in every case.  -EBUSY if it is BUSY, -ESTALE if in another state.
 *
 * publish: leave BUSY for @new_value (release: readers that see it also
 * see what the owner wrote before).  abort: leave it for @old, the value
 * claim returned.  Both return 0, or UZD_ENTRY_DROPPED when the range was
 * dropped meanwhile: *e is then EMPTY and the value not stored is the
 * caller's to release.  -EINVAL if *e is not BUSY or the value is.
 */
int uzd_entry_claim(uint64_t *e, unsigned int state_mask, uint64_t *old);
int uzd_entry_publish(uint64_t *e, uint64_t new_value);
int uzd_entry_abort(uint64_t *e, uint64_t old);

#endif /* UZSWAP_DAEMON_REGION_H */
