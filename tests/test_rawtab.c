/* SPDX-License-Identifier: MIT */
/*
 * tests/test_rawtab.c - daemon/rawtab.c, the owners of RAW pool objects:
 * add, get, replace, delete, against a model under random operations that
 * grow and shrink the table many times (backward-shift deletion must keep
 * every remaining key reachable).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/rawtab.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define KEYS 5000
#define OPS 400000

static void test_basics(void)
{
	struct uzd_rawtab t;
	uint64_t addr = 0;
	uint32_t id = 0;

	ok(uzd_rawtab_init(&t) == 0, "a table initialises");
	ok(uzd_rawtab_get(&t, 7, &id, &addr) == -ENOENT, "an empty table knows no handle");
	ok(uzd_rawtab_add(&t, 7, 3, 0x1000) == 0 && uzd_rawtab_get(&t, 7, &id, &addr) == 0 &&
		   id == 3 && addr == 0x1000,
	   "an added handle gives its owner back");
	ok(uzd_rawtab_add(&t, 7, 4, 0x2000) == 0 && uzd_rawtab_get(&t, 7, &id, &addr) == 0 &&
		   id == 4 && addr == 0x2000 && uzd_rawtab_count(&t) == 1,
	   "adding it again replaces the owner and keeps one entry");
	ok(uzd_rawtab_add(&t, 8, 0, 0x3000) == -EINVAL, "client id 0 is refused");
	uzd_rawtab_del(&t, 7);
	uzd_rawtab_del(&t, 7);
	ok(uzd_rawtab_get(&t, 7, &id, &addr) == -ENOENT && uzd_rawtab_count(&t) == 0,
	   "a deleted handle is gone, and deleting twice is harmless");
	uzd_rawtab_fini(&t);
}

static void test_model(void)
{
	static uint32_t model[KEYS];
	struct rng g = { .state = rng_seed_from_env(0x4a77ab) };
	struct uzd_rawtab t;
	size_t n = 0, bad = 0, max_n = 0;

	uzd_rawtab_init(&t);
	for (int i = 0; i < OPS; i++) {
		/* Handles in a narrow range and in clusters: long probe runs. */
		size_t k = (size_t)rng_below(&g, KEYS);
		unsigned long h = (unsigned long)k * 4 + 1;
		/* Phases of growth and shrinkage, so the table resizes both ways. */
		bool grow = (i / 50000) % 2 == 0;

		if (rng_below(&g, 100) < (grow ? 70u : 30u)) {
			uint32_t id = (uint32_t)rng_below(&g, 1000) + 1;

			n += !model[k];
			model[k] = id;
			bad += uzd_rawtab_add(&t, h, id, (uint64_t)k << 12) != 0;
		} else {
			n -= !!model[k];
			model[k] = 0;
			uzd_rawtab_del(&t, h);
		}
		max_n = n > max_n ? n : max_n;
	}
	for (size_t k = 0; k < KEYS; k++) {
		uint32_t id = 0;
		uint64_t addr = 0;
		int r = uzd_rawtab_get(&t, (unsigned long)k * 4 + 1, &id, &addr);

		if (model[k])
			bad += r != 0 || id != model[k] || addr != (uint64_t)k << 12;
		else
			bad += r != -ENOENT;
	}
	ok(bad == 0 && uzd_rawtab_count(&t) == n,
	   "after %d random adds and deletes every handle gives what the model says (%zu wrong; "
	   "%zu entries, model %zu, at most %zu)",
	   OPS, bad, uzd_rawtab_count(&t), n, max_n);
	uzd_rawtab_fini(&t);
}

int main(void)
{
	test_basics();
	test_model();
	return tap_done();
}
