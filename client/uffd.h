/* SPDX-License-Identifier: MIT */
/*
 * client/uffd.h - the client's half of userfaultfd: create one, register
 * and unregister ranges.  libuzswap internals (prefix uzs_).
 *
 * A client makes one userfaultfd per daemon connection, with the features
 * of UZP_UFFD_FEATURES, and registers every managed region on it with
 * UZP_UFFD_REGISTER_MODES; it hands the descriptor to the daemon, which
 * serves the faults (design.md §1).  The daemon's half is daemon/uffd.c.
 * No function here keeps state or takes a lock.
 *
 * Never: create the userfaultfd with UFFD_USER_MODE_ONLY (a read(2) into an
 * evicted page must block and be served, not fail with EFAULT); leave a
 * range registered without the ioctls the daemon needs on it.
 */
#ifndef UZSWAP_CLIENT_UFFD_H
#define UZSWAP_CLIENT_UFFD_H

#include <stddef.h>
#include <stdint.h>

#include "include/uzswap_proto.h"

/*
 * Create a userfaultfd with O_CLOEXEC | O_NONBLOCK and enable
 * UZP_UFFD_FEATURES.  dev_fd >= 0 is an open /dev/userfaultfd
 * (USERFAULTFD_IOC_NEW), else the userfaultfd(2) system call is used (root
 * or CAP_SYS_PTRACE).  Returns the new descriptor or a negative errno,
 * -EOPNOTSUPP when the kernel lacks a feature; on error, why (when not
 * NULL) gets a one-line reason.
 */
int uzs_uffd_create(int dev_fd, char *why, size_t why_len);

/*
 * Register [start, start + len) with modes (UFFDIO_REGISTER_MODE_*) and
 * check that the kernel offers the ioctls they need: WAKE, plus COPY and
 * ZEROPAGE for MISSING, WRITEPROTECT for WP.  If it does not, the range is
 * unregistered again and -EOPNOTSUPP returned.  *ioctls (when not NULL)
 * gets the kernel's ioctl mask for the range.
 */
int uzs_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t modes, uint64_t *ioctls);
int uzs_uffd_unregister(int fd, uint64_t start, uint64_t len);

#endif /* UZSWAP_CLIENT_UFFD_H */
