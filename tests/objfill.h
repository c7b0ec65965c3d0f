/* SPDX-License-Identifier: MIT */
/*
 * tests/objfill.h - pool objects whose bytes derive from a seed, so a test
 * keeps only (size, seed) per object and can check it through any mapping.
 *
 * Two patterns, both from tests/rng.h's generator seeded with the seed:
 *  - words: one generated 64-bit word per 8 bytes (the last one cut short),
 *    checked by objfill_checksum() against the sum taken at fill time, and
 *    objfill_first_difference() to say where a damaged object went wrong;
 *  - bytes: the low byte of one generated word per byte, checked in full by
 *    objfill_bytes_match().
 * They give different bytes for the same seed; each test keeps one.
 */
#ifndef UZSWAP_TESTS_OBJFILL_H
#define UZSWAP_TESTS_OBJFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fill @size bytes at @dst with the word pattern of @seed. */
void objfill_words(void *dst, size_t size, uint64_t seed);

/* A 64-bit hash of @size bytes at @src (FNV-style, over 8-byte words). */
uint64_t objfill_checksum(const void *src, size_t size);

/*
 * The first byte of @src that differs from the word pattern of @seed: -1 if
 * none, -2 when memory for the comparison runs out.
 */
long objfill_first_difference(const void *src, size_t size, uint64_t seed);

/* Fill @size bytes at @dst with the byte pattern of @seed. */
void objfill_bytes(void *dst, size_t size, uint64_t seed);

/* Whether @size bytes at @src are exactly the byte pattern of @seed. */
bool objfill_bytes_match(const void *src, size_t size, uint64_t seed);

#endif /* UZSWAP_TESTS_OBJFILL_H */
