/* SPDX-License-Identifier: MIT */
/*
 * daemon/io.h - file writes that finish or fail.
 */
#ifndef UZSWAP_DAEMON_IO_H
#define UZSWAP_DAEMON_IO_H

#include <stddef.h>
#include <sys/types.h>

/*
 * pwrite all @len bytes of @buf at @off, going on after a short write or
 * EINTR.  0, -errno, or -EIO when a write takes nothing (the file cannot
 * grow).
 */
int uzd_pwrite_all(int fd, const void *buf, size_t len, off_t off);

#endif /* UZSWAP_DAEMON_IO_H */
