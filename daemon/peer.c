/* SPDX-License-Identifier: MIT */
/*
 * daemon/peer.c - a connection's credentials (see peer.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "daemon/peer.h"

/* NGROUPS_MAX is 65536: start small, grow on ERANGE. */
#define PEER_GROUPS_FIRST 64

/* The supplementary groups of @sock's peer: *@n of them in a malloc'd array, or NULL. */
static gid_t *peer_groups(int sock, size_t *n)
{
	socklen_t len = PEER_GROUPS_FIRST * sizeof(gid_t);
	gid_t *groups = NULL;

	*n = 0;
	for (int tries = 0; tries < 3; tries++) {
		gid_t *g = realloc(groups, len ? len : sizeof(gid_t));

		if (!g)
			break;
		groups = g;
		if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
			*n = len / sizeof(gid_t);
			return groups;
		}
		/* ERANGE: len now says what it takes. */
		if (errno != ERANGE)
			break;
	}
	free(groups);
	return NULL;
}

/* Does any of @want[0..nwant) match the peer's primary or supplementary groups? */
static bool peer_in_any(int sock, gid_t primary_gid, const gid_t *want, size_t nwant)
{
	gid_t *groups;
	bool found = false;
	size_t n;

	for (size_t i = 0; i < nwant; i++)
		if (want[i] == primary_gid)
			return true;
	if (!nwant)
		return false;
	groups = peer_groups(sock, &n);
	for (size_t i = 0; i < n && !found; i++)
		for (size_t j = 0; j < nwant && !found; j++)
			found = groups[i] == want[j];
	free(groups);
	return found;
}

bool uzd_peer_in_group(int sock, gid_t primary_gid, gid_t gid)
{
	return peer_in_any(sock, primary_gid, &gid, 1);
}

bool uzd_peer_allowed(const struct uzd_config *cfg, int sock, uid_t uid, gid_t gid)
{
	if (cfg->allow_all_uids)
		return true;
	for (unsigned int i = 0; i < cfg->n_allow_uids; i++)
		if (cfg->allow_uids[i] == uid)
			return true;
	return peer_in_any(sock, gid, cfg->allow_gids, cfg->n_allow_gids);
}
