/* SPDX-License-Identifier: MIT */
/*
 * daemon/peer.h - who is at the other end of a connection.
 *
 * Everything here is what the kernel recorded when the peer connected
 * (SO_PEERCRED's uid and gid, SO_PEERGROUPS' supplementary groups), never
 * what a message says: a process cannot change them afterwards, and a
 * descriptor passed to another process keeps them.
 */
#ifndef UZSWAP_DAEMON_PEER_H
#define UZSWAP_DAEMON_PEER_H

#include <stdbool.h>
#include <sys/types.h>

#include "daemon/config.h"

/* Is @gid the peer's primary group @primary_gid or among its supplementary groups? */
bool uzd_peer_in_group(int sock, gid_t primary_gid, gid_t gid);

/*
 * May the peer connect: allow_uids is "*" or lists @uid, or one of its
 * groups is in allow_groups?
 */
bool uzd_peer_allowed(const struct uzd_config *cfg, int sock, uid_t uid, gid_t gid);

/* The refusal's message, with the uid for %u. */
#define UZD_PEER_REFUSED "uid %u is not in allow_uids, nor in a group of allow_groups"

#endif /* UZSWAP_DAEMON_PEER_H */
