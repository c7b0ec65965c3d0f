/* SPDX-License-Identifier: MIT */
/* tests/objfill.c - seeded object contents and their checks (see objfill.h). */
#include <stdlib.h>
#include <string.h>

#include "tests/objfill.h"
#include "tests/rng.h"

void objfill_words(void *dst, size_t size, uint64_t seed)
{
	struct rng r = { seed };
	unsigned char *p = dst;

	for (size_t off = 0; off < size; off += 8) {
		uint64_t w = rng_next(&r);

		memcpy(p + off, &w, size - off < 8 ? size - off : 8);
	}
}

uint64_t objfill_checksum(const void *src, size_t size)
{
	const unsigned char *p = src;
	uint64_t h = 0xcbf29ce484222325ULL ^ size;

	for (size_t off = 0; off < size; off += 8) {
		uint64_t w = 0;

		memcpy(&w, p + off, size - off < 8 ? size - off : 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

long objfill_first_difference(const void *src, size_t size, uint64_t seed)
{
	unsigned char *want = malloc(size);
	long at = -1;

	if (!want)
		return -2;
	objfill_words(want, size, seed);
	for (size_t i = 0; i < size && at < 0; i++)
		if (((const unsigned char *)src)[i] != want[i])
			at = (long)i;
	free(want);
	return at;
}

void objfill_bytes(void *dst, size_t size, uint64_t seed)
{
	struct rng r = { seed };
	unsigned char *p = dst;

	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)rng_next(&r);
}

bool objfill_bytes_match(const void *src, size_t size, uint64_t seed)
{
	struct rng r = { seed };
	const unsigned char *p = src;

	for (size_t i = 0; i < size; i++)
		if (p[i] != (unsigned char)rng_next(&r))
			return false;
	return true;
}
