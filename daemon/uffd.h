/* SPDX-License-Identifier: MIT */
/*
 * daemon/uffd.h - a thin layer over one client's userfaultfd, no policy.
 *
 * Every managed region is a memfd the client maps MAP_SHARED and registers
 * MISSING|WP with its userfaultfd (design.md §1; the client's half lives in
 * client/uffd.c, the shared constants in include/uzswap_proto.h).  The
 * daemon pages it with
 * these calls: restore with uzd_uffd_copy()/uzd_uffd_zeropage(), fence with
 * uzd_uffd_writeprotect(.., true, ..), capture by pread(2) and evict by
 * fallocate(PUNCH_HOLE) on the memfd (outside this module), then release
 * blocked writers with uzd_uffd_writeprotect(.., false, true), which also
 * clears the uffd-wp markers the punch left.  Addresses are the client's,
 * as uint64_t; no function here keeps state or takes a lock.
 *
 * Never: touch client memory (a system call of ours on a missing client
 * page faults on the client's userfaultfd with our own thread, design.md
 * §1: only pread on the memfd); retry -EAGAIN here (the pending event that
 * causes it is only read by the caller, so a retry loop could spin forever).
 *
 * Errors are negative errno values, as the kernel gave them:
 *  -EAGAIN  a REMOVE/UNMAP/REMAP is in flight (mmap_changing): read the
 *           events, then retry.  Measured on 6.18: it can outlast the read
 *           for a moment, until the client thread that raised the event
 *           resumes (2 of 200 copies right after the read): so retry after
 *           the read even when it returned nothing new.
 *  -ENOENT  range no longer registered; -ESRCH client exited ("gone").
 * -EEXIST is never returned: a page already present was restored by
 * another fault (design.md §1); it is treated as done, its waiters are
 * woken, and the fill returns UZD_UFFD_EXISTED so the caller can count it.
 */
#ifndef UZSWAP_DAEMON_UFFD_H
#define UZSWAP_DAEMON_UFFD_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "include/uzswap_proto.h"

/* Positive return of the fill calls: some page was already there. */
#define UZD_UFFD_EXISTED 1

/*
 * Daemon side: check that a descriptor received from a client is a
 * userfaultfd with UZP_UFFD_FEATURES enabled (from /proc/self/fdinfo).
 * Returns 0, -EBADF (not a userfaultfd), -EOPNOTSUPP (features missing),
 * -EINVAL (not O_NONBLOCK: reading it could block a fault thread; or
 * UFFD_FEATURE_EVENT_FORK, whose events hand the daemon a descriptor per
 * fork) or another negative errno; *features (when not NULL) gets those
 * enabled, why a reason.
 */
int uzd_uffd_check(int fd, uint64_t *features, char *why, size_t why_len);

/*
 * Fill [dst, dst + len) from src (len bytes), with UFFDIO_COPY_MODE_* in
 * mode (DONTWAKE, WP).  The kernel may stop part way (it then reports the
 * bytes done and EAGAIN): the rest is filled by further calls, a page that
 * is already present is skipped and woken (unless DONTWAKE).  Returns 0,
 * UZD_UFFD_EXISTED or a negative errno.  After -EAGAIN a part of the range
 * may be filled; calling again for the whole range is safe, as the pages
 * already filled come back as EEXIST.
 */
int uzd_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len, uint64_t mode);

/* As uzd_uffd_copy(), with zeros; mode is UFFDIO_ZEROPAGE_MODE_DONTWAKE or 0. */
int uzd_uffd_zeropage(int fd, uint64_t dst, uint64_t len, uint64_t mode);

/*
 * As uzd_uffd_copy(), installing poison markers: the client thread that
 * touches such a page gets SIGBUS, nobody else is affected.  A page that
 * is present is not poisoned (UZD_UFFD_EXISTED).  mode: UFFDIO_POISON_MODE_
 * DONTWAKE or 0.
 */
int uzd_uffd_poison(int fd, uint64_t dst, uint64_t len, uint64_t mode);

/* Wake the threads blocked on faults in the range. */
int uzd_uffd_wake(int fd, uint64_t start, uint64_t len);

/*
 * protect: writes to present pages and to holes now raise WP faults (on
 * shmem the kernel marks holes too).  !protect: clear the protection, and
 * the uffd-wp markers left where pages were punched, waking the range's
 * blocked threads when wake is set.  wake means nothing when protecting.
 */
int uzd_uffd_writeprotect(int fd, uint64_t start, uint64_t len, bool protect, bool wake);

/*
 * Read up to max pending messages without blocking; *n gets how many (0
 * when none is pending).  Relies on O_NONBLOCK, which lives in the open
 * file the client shares with the daemon: uzd_uffd_check() verifies it.
 */
int uzd_uffd_read_events(int fd, struct uffd_msg *msgs, size_t max, size_t *n);

/*
 * Reorder a batch so that its non-fault events (REMOVE, UNMAP, REMAP, FORK)
 * come first, each group in its original order, and return how many events
 * there are.  Events must be handled before faults: until they are read a
 * fill returns -EAGAIN, and a fault may lie in a range an event removed.
 */
size_t uzd_uffd_events_first(struct uffd_msg *msgs, size_t n);

/* "pagefault", "remove", ...: for log lines. */
const char *uzd_uffd_event_name(unsigned int event);

/* What err (a negative errno from this module) means for a userfaultfd. */
const char *uzd_uffd_strerror(int err);

/* -ENOENT or -ESRCH: the range or the whole client is gone. */
static inline bool uzd_uffd_gone(int err)
{
	return err == -ENOENT || err == -ESRCH;
}

#endif /* UZSWAP_DAEMON_UFFD_H */
