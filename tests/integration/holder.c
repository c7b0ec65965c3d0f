/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/holder.c - the holding client (see holder.h).
 *
 * The child keeps its pages' versions implicit: every page is written once
 * at version 1, so a check needs nothing but the page number.  It polls
 * for commands every few milliseconds rather than blocking, so that a
 * parent that dies leaves it to PR_SET_PDEATHSIG, never to a lost wake-up.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "include/uzswap.h"
#include "tests/integration/holder.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define POLL_MS 2

static void check_pages(struct holder *h, const char *map, size_t first, size_t step)
{
	struct pat k = { .seed = h->seed, .tag = h->tag, .kind = PAT_REAL };
	char why[96];

	for (size_t p = first; p < h->npages; p += step) {
		h->checked++;
		if (pat_verify(&k, map + p * PAT_PAGE, p, 1, why, sizeof(why)))
			continue;
		if (!h->bad++)
			snprintf(h->first_bad, sizeof(h->first_bad), "page %zu: %s", p, why);
	}
}

/* Obey commands until HOLD_EXIT. */
static void serve(struct holder *h, const char *map)
{
	for (;;) {
		int cmd = atomic_load(&h->cmd);

		if (cmd == HOLD_NONE || cmd == atomic_load(&h->done)) {
			hd_sleep_ms(POLL_MS);
			continue;
		}
		if (cmd == HOLD_READ_ODD)
			check_pages(h, map, 1, 2);
		else if (cmd == HOLD_VERIFY)
			check_pages(h, map, 0, 1);
		atomic_store(&h->done, cmd);
		if (cmd == HOLD_EXIT)
			return;
		/* The same command twice: the parent resets it between. */
		while (atomic_load(&h->cmd) == cmd)
			hd_sleep_ms(POLL_MS);
		atomic_store(&h->done, HOLD_NONE);
	}
}

int holder_main(void *arg)
{
	struct holder *h = arg;
	struct pat k = { .seed = h->seed, .tag = h->tag, .kind = PAT_REAL };
	struct uzswap *u;
	void *map;
	int r;

	r = hd_connect(h->d, h->budget, "holder", &u);
	if (r == 0) {
		r = uzswap_region_create(u, h->npages * PAT_PAGE, "held", &map);
		if (r < 0)
			snprintf(h->why, sizeof(h->why), "%s", uzswap_last_error(u));
	}
	if (r < 0) {
		atomic_store(&h->ready, -1);
		return hd_setup_failed(&h->err, r);
	}
	for (size_t p = 0; p < h->npages; p++)
		pat_write(&k, (char *)map + p * PAT_PAGE, p, 1);
	atomic_store(&h->ready, 1);
	serve(h, map);
	uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

bool holder_wait_ready(struct holder *h, pid_t pid, int timeout_ms)
{
	uint64_t start = hd_now_ms();

	while (!atomic_load(&h->ready) && !hd_ended(pid) &&
	       hd_now_ms() - start < (uint64_t)timeout_ms)
		hd_sleep_ms(POLL_MS);
	if (atomic_load(&h->ready) == 1)
		return true;
	tap_diag("the holding client is not ready: %s%s%s", strerror(-h->err), *h->why ? ": " : "",
		 h->why);
	return false;
}

bool holder_do(struct holder *h, pid_t pid, enum holder_cmd cmd, int timeout_ms)
{
	uint64_t start = hd_now_ms();
	bool done;

	atomic_store(&h->cmd, (int)cmd);
	while (atomic_load(&h->done) != (int)cmd && !hd_ended(pid) &&
	       hd_now_ms() - start < (uint64_t)timeout_ms)
		hd_sleep_ms(POLL_MS);
	done = atomic_load(&h->done) == (int)cmd;
	if (cmd != HOLD_EXIT) {
		atomic_store(&h->cmd, HOLD_NONE);
		while (done && atomic_load(&h->done) != HOLD_NONE && !hd_ended(pid))
			hd_sleep_ms(POLL_MS);
	}
	if (!done)
		tap_diag("the holding client did not do command %d within %d ms", (int)cmd,
			 timeout_ms);
	return done;
}
