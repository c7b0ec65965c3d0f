/* SPDX-License-Identifier: MIT */
/*
 * daemon/quota.h - what one user, and one client, may hold of the daemon.
 *
 * uzswapd serves every user of the machine from one process: without
 * limits one user's processes could use up its connections, its client
 * slots, its mappings (each region costs one) or its memory for entries,
 * and starve everyone else.  [clients] sets, for every uid (root's too):
 *
 *   uid_max_connections  connections at once, HELLO said or not
 *   uid_max_clients      clients (connections that said HELLO) at once
 *   uid_max_regions, client_max_regions   regions registered
 *   uid_max_managed, client_max_managed   bytes of those regions
 *
 * and [budget] uid_max_resident, the resident memory of one uid's clients
 * together, which reclaim enforces as it does a client's budget
 * (daemon/reclaim.h).  The checks below are pure arithmetic on the use the
 * server counts (loop thread), so they can be tested alone.  A refusal is
 * -EDQUOT with a message naming the quota, its value and the use; the
 * request is refused, nothing else changes.
 *
 * A fork's copy of its parent's regions counts for the child's client: a
 * FORK that would take the uid past uid_max_regions or uid_max_managed is
 * refused, and the child stops with the message (client/uzi_fork.c), as
 * one refused at HELLO does.  What the kernel does to a client's memory
 * is never refused: a munmap splitting a region counts at the next
 * REGISTER, and the region table holds at most client_max_regions (a
 * split past it leaves the hole inside the region, its pages dropped).
 */
#ifndef UZSWAP_DAEMON_QUOTA_H
#define UZSWAP_DAEMON_QUOTA_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/config.h"

/* What a uid, or one client, holds now. */
struct uzd_quota_use {
	unsigned int connections;
	unsigned int clients;
	uint64_t regions;
	uint64_t managed; /* bytes */
};

/* May uid @uid, holding @use, open one more connection?  0 or -EDQUOT with @msg. */
int uzd_quota_connect(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *use,
		      char *msg, size_t len);

/* May it have one more client? */
int uzd_quota_hello(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *use,
		    char *msg, size_t len);

/* May a client holding @mine, of a uid holding @all, register @bytes more in one region? */
int uzd_quota_register(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *mine,
		       const struct uzd_quota_use *all, uint64_t bytes, char *msg, size_t len);

/* May a client holding @parent, of a uid holding @all, give a fork child a copy of it? */
int uzd_quota_fork(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *parent,
		   const struct uzd_quota_use *all, char *msg, size_t len);

#endif /* UZSWAP_DAEMON_QUOTA_H */
