/* SPDX-License-Identifier: MIT */
/*
 * daemon/fork.h - a fork child's copy of its parent's managed memory.
 *
 * fork must give the child a private copy of the parent's memory (a write
 * in one is never seen by the other), must never show either a zero page
 * where data was, and must cost what the parent holds resident, not what
 * it manages (issue 5).  The interposer's fork handlers (client/uzi_fork.c)
 * ask for it in three steps:
 *
 *   prepare  uzd_fork_snapshot(): the parent's client is fenced and its
 *            regions are copied into the child's client, whose memfd the
 *            parent made:
 *              - resident pages (the data extents of the parent's memfd,
 *                found with SEEK_DATA) are write-protected (the fence),
 *                then copied into the child's memfd with copy_file_range:
 *                the only cost per page, and only for resident pages;
 *              - evicted pages are shared: the child's entry holds the
 *                parent's pool handle (or file slot), both entries flagged
 *                SHARED and counted in the shared table (daemon/shared.h),
 *                so whichever restores first keeps the object for the other;
 *              - same-filled and never-touched pages are entries only.
 *            Until FORK_DONE the parent's client is `forking`: its faults
 *            are left unanswered and its pages are not evicted, so no
 *            write of another parent thread lands between the snapshot
 *            and the fork itself (the child sees the parent as it was).
 *   (fork)
 *   done     uzd_fork_done(): the fence is lifted, blocked threads woken.
 *   child    attaches its userfaultfd to the child's client (server.c).
 *
 * The snapshot runs under the parent's table write lock, so no page is
 * BUSY and no fault or eviction of the parent runs meanwhile.  A fence that
 * keeps failing with -EAGAIN (an event unread, perhaps by the fault thread
 * waiting for our lock) drops everything and starts again.
 *
 * Known limit: only FORK_DONE (or the parent's connection closing) lifts
 * the fence.  A forking thread that faults on managed memory between its
 * FORK and the fork itself (its own stack in managed memory, or an atfork
 * prepare handler run after ours) would wait for ever; the interposer
 * registers its handlers before anybody's so that every other prepare
 * handler runs before the snapshot, and glibc's own fork code touches only
 * unmanaged memory.
 *
 * Never: copy a page from the memfd before it is fenced (a write could tear
 * it); leave the parent fenced after an error; share a payload without
 * flagging both entries.
 */
#ifndef UZSWAP_DAEMON_FORK_H
#define UZSWAP_DAEMON_FORK_H

#include <stdint.h>

#include "daemon/client.h"

struct uzd_fork_result {
	uint64_t regions, copied_pages, shared_pages;
};

/*
 * Fence @parent and copy its regions into @child (a client with no regions
 * that nobody serves or evicts yet), mapping them from @memfd (the caller's;
 * duplicated here).  0, or -ENOMEM, -EAGAIN, -errno from a memfd call: then
 * the parent is unfenced and @child holds nothing.
 */
int uzd_fork_snapshot(struct uzd_client *parent, struct uzd_client *child, int memfd,
		      struct uzd_fork_result *res);

/* Lift @parent's fence: unprotect its regions and wake their blocked threads. */
void uzd_fork_done(struct uzd_client *parent);

#endif /* UZSWAP_DAEMON_FORK_H */
