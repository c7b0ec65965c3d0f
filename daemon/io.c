/* SPDX-License-Identifier: MIT */
/*
 * daemon/io.c - file writes that finish or fail (see io.h).
 */
#include <errno.h>
#include <unistd.h>

#include "daemon/io.h"

int uzd_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const unsigned char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}
