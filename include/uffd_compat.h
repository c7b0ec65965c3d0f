/* SPDX-License-Identifier: MIT */
/*
 * include/uffd_compat.h - the userfaultfd ABI newer than the build headers.
 *
 * Debian 12 ships the Linux 6.1 uapi headers; uzswap runs on newer kernels
 * (6.18 here) and needs a few later additions.  Each definition below is
 * copied from the kernel's include/uapi/linux/userfaultfd.h, guarded so that
 * newer headers win, with the release that added it.  What 6.1 already has
 * (USERFAULTFD_IOC_NEW, 6.1; UFFD_FEATURE_WP_HUGETLBFS_SHMEM, 5.19;
 * UFFDIO_COPY_MODE_WP, 5.7) is used from <linux/userfaultfd.h> as it is.
 * Shared by the daemon and libuzswap through include/uzswap_proto.h, which
 * also names the features and register modes both ends rely on.
 *
 * Deliberately absent: UFFD_FEATURE_WP_UNPOPULATED (6.4) and WP_ASYNC (6.7)
 * change write protection of *anonymous* memory only; on shmem the kernel
 * always installs uffd-wp PTE markers on empty entries.  UFFDIO_MOVE (6.8)
 * only moves pages inside the caller's own address space (design.md §1).
 */
#ifndef UZSWAP_UFFD_COMPAT_H
#define UZSWAP_UFFD_COMPAT_H

#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

/* Linux 6.1: /dev/userfaultfd; in the 6.1 headers, kept for older ones. */
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* Linux 6.6: UFFDIO_POISON installs a marker that raises SIGBUS on access. */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif

#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
	__u64 mode;
	/* Written by the ioctl: bytes poisoned, or a negated errno. */
	__s64 updated;
};

#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

/*
 * Not userfaultfd, but the same story, and the one place for kernel ABI the
 * build headers lack: Linux 6.5's SO_PEERPIDFD gives a pidfd of the peer
 * of a unix socket, the process itself rather than a pid that may be
 * recycled (the daemon's access sampling, daemon/sample.h).
 */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#endif /* UZSWAP_UFFD_COMPAT_H */
