/* SPDX-License-Identifier: MIT */
/*
 * tests/test_crc32c.c - daemon/crc32c.c: the standard check value, known
 * vectors, continuation over split buffers, and the hardware and table
 * paths agreeing on every length and alignment.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/crc32c.h"
#include "tests/rng.h"
#include "tests/tap.h"

static void test_vectors(void)
{
	static const unsigned char zeros[32], ones[32] = {
		[0 ... 31] = 0xff,
	};
	uint32_t c = uzd_crc32c(0, "123456789", 9);

	ok(c == 0xe3069283,
	   "crc32c of \"123456789\" is the standard check value (expected "
	   "0xe3069283, got %#x)",
	   c);
	/* RFC 3720 (iSCSI), B.4. */
	ok(uzd_crc32c(0, zeros, 32) == 0x8a9136aa, "32 zero bytes give 0x8a9136aa (got %#x)",
	   uzd_crc32c(0, zeros, 32));
	ok(uzd_crc32c(0, ones, 32) == 0x62a8ab43, "32 0xff bytes give 0x62a8ab43 (got %#x)",
	   uzd_crc32c(0, ones, 32));
	ok(uzd_crc32c(0, "", 0) == 0, "the crc of nothing is 0");
}

static void test_continuation_and_paths(void)
{
	static unsigned char buf[5000];
	struct rng g = { .state = rng_seed_from_env(0xc5c32c) };
	bool split_ok = true, paths_ok = true;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)rng_next(&g);
	for (size_t len = 0; len <= 300; len++) {
		for (size_t off = 0; off < 8; off++) {
			uint32_t whole = uzd_crc32c(0, buf + off, len);
			size_t cut = len ? (size_t)rng_below(&g, len + 1) : 0;
			uint32_t parts = uzd_crc32c(uzd_crc32c(0, buf + off, cut), buf + off + cut,
						    len - cut);

			split_ok &= whole == parts;
			paths_ok &= whole == uzd_crc32c_sw(0, buf + off, len);
		}
	}
	ok(split_ok, "a crc continued over two pieces equals the crc of the whole");
	ok(paths_ok, "the dispatched crc equals the table-driven one for lengths 0..300 at every "
		     "alignment");
	ok(uzd_crc32c(0, buf, sizeof(buf)) == uzd_crc32c_sw(0, buf, sizeof(buf)),
	   "and for a whole record's worth of bytes");
}

int main(void)
{
	test_vectors();
	test_continuation_and_paths();
	return tap_done();
}
