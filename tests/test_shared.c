/* SPDX-License-Identifier: MIT */
/*
 * tests/test_shared.c - the owner counts of payloads fork relatives share
 * (daemon/shared.h): the last owner, and only it, frees.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/shared.h"
#include "tests/tap.h"

static void test_two_owners(void)
{
	struct uzd_shared *s;

	ok(uzd_shared_new(&s) == 0, "a shared table is made");
	ok(uzd_shared_put(s, 7), "a payload never shared has one owner: its put frees it");
	ok(uzd_shared_get(s, 7) == 0 && uzd_shared_count(s) == 1,
	   "sharing a payload puts it in the table");
	ok(!uzd_shared_put(s, 7) && uzd_shared_count(s) == 0,
	   "the first of two owners to let go does not free it, and the count leaves the table");
	ok(uzd_shared_put(s, 7), "the second owner frees it");
	uzd_shared_free(s);
}

static void test_many_owners(void)
{
	struct uzd_shared *s;
	int early = 0;

	uzd_shared_new(&s);
	for (int i = 0; i < 4; i++)
		uzd_shared_get(s, 42); /* five owners */
	for (int i = 0; i < 4; i++)
		early += uzd_shared_put(s, 42);
	ok(early == 0 && uzd_shared_put(s, 42), "of five owners only the fifth put frees");
	uzd_shared_free(s);
}

/* Many keys, colliding and removed out of order: every count stays its own. */
static void test_many_keys(void)
{
	enum {
		N = 20000
	};
	struct uzd_shared *s;
	unsigned int wrong = 0;

	uzd_shared_new(&s);
	for (uint64_t k = 0; k < N; k++) {
		uzd_shared_get(s, k * 4096);
		if (k % 3 == 0)
			uzd_shared_get(s, k * 4096); /* three owners */
	}
	ok(uzd_shared_count(s) == N, "%d shared payloads are counted (saw %llu)", N,
	   (unsigned long long)uzd_shared_count(s));
	for (uint64_t k = 0; k < N; k += 2) /* every other one, first put */
		wrong += uzd_shared_put(s, k * 4096);
	for (uint64_t k = 1; k < N; k += 2)
		wrong += uzd_shared_put(s, k * 4096);
	for (uint64_t k = 0; k < N; k++) {
		if (k % 3 == 0)
			wrong += uzd_shared_put(s, k * 4096);
		wrong += !uzd_shared_put(s, k * 4096);
	}
	ok(wrong == 0,
	   "after puts in another order every payload is freed by its last owner "
	   "only (%u wrong)",
	   wrong);
	uzd_shared_free(s);
}

static void test_rekey(void)
{
	struct uzd_shared *s;

	uzd_shared_new(&s);
	uzd_shared_get(s, uzd_shared_pool_key(5));
	ok(uzd_shared_rekey(s, uzd_shared_pool_key(5), uzd_shared_file_key(5)) == 0,
	   "a count moves from a pool handle to a file slot");
	ok(uzd_shared_pool_key(5) != uzd_shared_file_key(5),
	   "a pool handle and a file slot of the same number are different keys");
	ok(!uzd_shared_put(s, uzd_shared_file_key(5)) && uzd_shared_put(s, uzd_shared_file_key(5)),
	   "and is put under its new key");
	ok(uzd_shared_rekey(s, 99, 100) == -ENOENT, "moving an unknown key is -ENOENT");
	uzd_shared_free(s);
}

int main(void)
{
	test_two_owners();
	test_many_owners();
	test_many_keys();
	test_rekey();
	return tap_done();
}
