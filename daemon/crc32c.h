/* SPDX-License-Identifier: MIT */
/*
 * daemon/crc32c.h - CRC-32C (Castagnoli), the checksum of every record in
 * the backing file (daemon/bfile.h).
 *
 * The polynomial iSCSI, ext4 and btrfs use for their metadata: it detects
 * every burst error of up to 32 bits and, unlike a plain sum, a swapped or
 * misplaced block.  x86-64 has it in hardware (SSE 4.2's crc32
 * instruction, about 8 bytes per cycle), so checking a record on the fault
 * path costs well under a microsecond; elsewhere a slicing-by-8 table does
 * about a byte per cycle.
 *
 * Conventions are the standard ones: initial value ~0, reflected, final
 * xor ~0, so uzd_crc32c(0, "123456789", 9) == 0xe3069283.  The running
 * value of a previous call continues a checksum over more bytes.
 *
 * Pure functions, no locks.
 */
#ifndef UZSWAP_DAEMON_CRC32C_H
#define UZSWAP_DAEMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of @len bytes at @p, continuing from @crc (0 to start). */
uint32_t uzd_crc32c(uint32_t crc, const void *p, size_t len);

/* The table-driven implementation, whatever the CPU (for tests). */
uint32_t uzd_crc32c_sw(uint32_t crc, const void *p, size_t len);

#endif /* UZSWAP_DAEMON_CRC32C_H */
