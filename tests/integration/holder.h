/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/holder.h - a client process that holds a region of
 * known pages while a test works on the daemon around it.
 *
 * The child (hd_spawn(holder_main, h)) connects with its budget, creates a
 * region of npages, writes every page (tests/integration/pattern.h,
 * PAT_REAL: each evicted page lands in the pool) and says it is ready;
 * then it sleeps, touching nothing, until the parent gives it a command:
 * read and check the odd pages (restoring them: holes in the pool for a
 * compaction to close), check every page, or leave.  A command is a
 * number the parent writes into struct holder, in memory the two share
 * (hd_shared); the child answers by echoing it once done.  What the child
 * found (pages checked, bad ones, the first bad one) stays in that memory.
 */
#ifndef UZSWAP_TESTS_INTEGRATION_HOLDER_H
#define UZSWAP_TESTS_INTEGRATION_HOLDER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tests/integration/harness.h"

enum holder_cmd {
	HOLD_NONE,
	HOLD_READ_ODD, /* read and check pages 1, 3, 5... */
	HOLD_VERIFY,   /* read and check every page */
	HOLD_EXIT,     /* release the region, close, exit 0 */
};

struct holder {
	/* The parent's, before the spawn. */
	const struct hd_daemon *d;
	uint64_t seed;
	unsigned int tag;
	uint64_t budget; /* bytes the client asks for; 0: the daemon's default */
	size_t npages;
	/* The child's. */
	atomic_int ready;     /* 1: every page written; -1: setup failed (err, why) */
	atomic_int cmd, done; /* the parent's command; the last the child finished */
	int err;
	char why[192];
	uint64_t checked, bad;
	char first_bad[128];
};

/* hd_spawn() it with a struct holder in shared memory; exits 0, or HD_EXIT_SETUP. */
int holder_main(void *arg);

/* Wait until the child @pid is ready (true) or failed, ended or took @timeout_ms. */
bool holder_wait_ready(struct holder *h, pid_t pid, int timeout_ms);

/* Give @cmd and wait for it to be done: true, or false after a diag. */
bool holder_do(struct holder *h, pid_t pid, enum holder_cmd cmd, int timeout_ms);

#endif /* UZSWAP_TESTS_INTEGRATION_HOLDER_H */
