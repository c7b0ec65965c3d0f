/* SPDX-License-Identifier: MIT */
/*
 * tests/rng.h - a seeded generator, so every randomised test can be rerun
 * exactly: tests print their seed, and UZSWAP_TEST_SEED sets it.
 */
#ifndef UZSWAP_TESTS_RNG_H
#define UZSWAP_TESTS_RNG_H

#include <stdint.h>
#include <stdlib.h>

struct rng {
	uint64_t state;
};

/* splitmix64: tiny, fast, and every seed gives a full-period sequence. */
static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) for n > 0; the bias for n far below 2^64 is negligible. */
static inline uint64_t rng_below(struct rng *r, uint64_t n)
{
	return rng_next(r) % n;
}

static inline uint64_t rng_seed_from_env(uint64_t fallback)
{
	const char *s = getenv("UZSWAP_TEST_SEED");

	return s && *s ? strtoull(s, NULL, 0) : fallback;
}

#endif /* UZSWAP_TESTS_RNG_H */
