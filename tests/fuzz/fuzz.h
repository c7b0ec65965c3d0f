/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz.h - what the fuzz harnesses share: libFuzzer's entry
 * point, and an assertion that survives NDEBUG and says where it failed.
 *
 * Each harness is built twice: with clang's -fsanitize=fuzzer, where
 * libFuzzer drives it (scripts/run-tests.sh, a time-boxed run), and in
 * every build with tests/fuzz/replay.c as its main, which feeds it the
 * seed and regression inputs under tests/fuzz/ as TAP test points.
 */
#ifndef UZSWAP_TESTS_FUZZ_H
#define UZSWAP_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                        \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

#endif /* UZSWAP_TESTS_FUZZ_H */
