/* SPDX-License-Identifier: MIT */
/*
 * daemon/sample.h - which of a client's resident pages it has touched.
 *
 * userfaultfd tells the daemon when a page comes in and nothing about the
 * accesses while it stays (design.md §2), so reclaim would have only the
 * fault-in order and refault distances to go by.  Access sampling adds the
 * reference bit the kernel's own LRU has, at a cost the daemon chooses:
 *
 *   zap     process_madvise(MADV_PAGEOUT) on the client's pages.  For a
 *           shmem page with no swap configured the kernel unmaps it from
 *           the client and keeps it in the memfd's page cache (shmem
 *           writeout has nowhere to go, so the page is redirtied and kept;
 *           measured on 6.18: data intact, memfd blocks unchanged,
 *           1.4 µs per page);
 *   test    a later read of /proc/PID/pagemap: a zapped page the client
 *           touched since is present again (the kernel mapped it back from
 *           the page cache on a minor fault, 1-2 µs for the client, no
 *           daemon involvement); one it did not touch is not.  Fault-around
 *           would map untouched neighbours too, but the kernel disables it
 *           on ranges registered for uffd write protection, which every
 *           managed region is (verified: touching every other zapped page
 *           makes exactly half present).
 *
 * With swap configured, MADV_PAGEOUT would write the pages to swap instead,
 * so uzd_sample_usable() says no and reclaim goes without.  Neither call
 * reads or writes page contents; a zap never loses data, and the eviction
 * fence (UFFDIO_WRITEPROTECT) covers a zapped page with a uffd-wp marker,
 * so it stays safe to evict (design.md §1).
 *
 * A sampler belongs to one client and is used by the reclaim thread only;
 * it holds a pidfd of the client process and its pagemap, opened once, so
 * that a recycled pid can never point it at another process.
 */
#ifndef UZSWAP_DAEMON_SAMPLE_H
#define UZSWAP_DAEMON_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* pidfd and pagemap are both -1, or both open. */
struct uzd_sampler {
	int pidfd;
	int pagemap;
};

/* A sampler that samples nothing (both descriptors -1). */
void uzd_sampler_init(struct uzd_sampler *s);

/*
 * Open the sampler of process @pid, whose pidfd @pidfd (from SO_PEERPIDFD;
 * -1 to open one here) it takes over in every case.  -ESRCH when the
 * process is gone (or its pid now names another), -EACCES/-EPERM without
 * the privilege to read its pagemap, or the system call's error.
 */
int uzd_sampler_open(struct uzd_sampler *s, int pidfd, pid_t pid);
void uzd_sampler_close(struct uzd_sampler *s);

static inline bool uzd_sampler_active(const struct uzd_sampler *s)
{
	return s->pidfd >= 0;
}

/* Zapping keeps pages only when there is no swap to push them to. */
bool uzd_sample_usable(void);

/*
 * Unmap the pages at @addrs[0..n) (page addresses, sorted ascending) from
 * the client, keeping their contents.  Ranges the client unmapped meanwhile
 * are skipped.  0, or -ESRCH (the process is gone), -EPERM, -EINVAL.
 */
int uzd_sample_zap(struct uzd_sampler *s, const uint64_t *addrs, size_t n);

/*
 * present[i] = whether the page at @addrs[i] (sorted ascending) is mapped
 * in the client now: after a zap, whether it was touched since.  0, or
 * -ESRCH when the client's memory is gone, or the read's error.
 */
int uzd_sample_present(struct uzd_sampler *s, const uint64_t *addrs, size_t n, bool *present);

#endif /* UZSWAP_DAEMON_SAMPLE_H */
