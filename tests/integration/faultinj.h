/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/faultinj.h - the control block of libfaultinj.so, an
 * LD_PRELOAD shim that makes uzswapd's backing-file I/O fail on demand.
 * Test only: nothing installed loads it.
 *
 * The daemon is started with LD_PRELOAD naming the shim and two variables:
 * UZSWAP_FAULTINJ_CTL, a file holding one struct faultinj_ctl that the
 * shim maps shared (the test maps it too and changes it while the daemon
 * runs), and UZSWAP_FAULTINJ_DIR, the directory of the backing file: only
 * calls on a descriptor whose /proc/self/fd link starts with it are
 * touched, so the daemon's other I/O (memfds, sockets, the log) never is.
 *
 * pwrite, pwrite64: write_mode ENOSPC or EIO fails the call (nothing is
 * written), SHORT writes half of it (at least one byte).  pread, pread64
 * (and the fortified __pread_chk): EIO fails it, SHORT reads half, CORRUPT
 * reads it all and flips one bit in the middle.  A count > 0 applies the
 * mode to that many calls (then it is spent), -1 to every call, 0 to none;
 * read_max_len > 0 limits read faults to calls of at most that many bytes
 * (a record's restore, not a segment read by the cleaner).  The shim
 * counts the calls it saw and those it changed.
 */
#ifndef UZSWAP_TESTS_INTEGRATION_FAULTINJ_H
#define UZSWAP_TESTS_INTEGRATION_FAULTINJ_H

#include <stdint.h>

#define FAULTINJ_MAGIC 0x464a4e49u /* "INJF" */

enum faultinj_mode {
	FI_NONE,
	FI_ENOSPC,
	FI_EIO,
	FI_SHORT,
	FI_CORRUPT,
	FI_EOF, /* reads only: 0 bytes, as at the end of the file */
};

struct faultinj_ctl {
	uint32_t magic;
	int32_t write_mode, write_count;
	int32_t read_mode, read_count;
	uint32_t read_max_len;
	uint64_t writes, writes_hit; /* on the backing file: seen, changed */
	uint64_t reads, reads_hit;
};

#endif /* UZSWAP_TESTS_INTEGRATION_FAULTINJ_H */
