/* SPDX-License-Identifier: MIT */
/*
 * daemon/crc32c.c - CRC-32C, in hardware where the CPU has it (crc32c.h).
 *
 * The software path is slicing-by-8: table[k][b] is the CRC of byte b
 * followed by k zero bytes, so eight bytes are folded per step with eight
 * lookups.  The tables (8 KiB) are built once, on first use, by the thread
 * that gets there first; building them twice gives the same bytes, so the
 * race is benign and needs no lock (pthread_once keeps it tidy anyway).
 *
 * The hardware path uses the crc32 instruction of SSE 4.2 through the
 * compiler's builtin, compiled for that target only in this function, and
 * chosen at every call with __builtin_cpu_supports() (a load and a test of
 * what libgcc read from cpuid at start-up): the daemon still runs on a CPU
 * without it.  The tables are the only static data, constant once built.
 */
#include <pthread.h>
#include <string.h>

#include "daemon/crc32c.h"

#define POLY 0x82f63b78u /* Castagnoli, reflected */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][b] = c;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xff];
}

uint32_t uzd_crc32c_sw(uint32_t crc, const void *p, size_t len)
{
	const unsigned char *s = p;
	uint32_t c = ~crc;

	pthread_once(&table_once, table_build);
	while (len >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		w ^= c;
		c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
		    table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^
		    table[2][(w >> 40) & 0xff] ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
		s += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ table[0][(c ^ *s++) & 0xff];
	return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t c = ~crc;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		c = __builtin_ia32_crc32di(c, w);
		s += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *s++);
	return ~(uint32_t)c;
}

uint32_t uzd_crc32c(uint32_t crc, const void *p, size_t len)
{
	/* A load and a test of what libgcc's constructor found in cpuid. */
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, p, len);
	return uzd_crc32c_sw(crc, p, len);
}
#else
uint32_t uzd_crc32c(uint32_t crc, const void *p, size_t len)
{
	return uzd_crc32c_sw(crc, p, len);
}
#endif
