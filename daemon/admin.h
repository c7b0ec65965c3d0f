/* SPDX-License-Identifier: MIT */
/*
 * daemon/admin.h - uzswapctl's commands inside the daemon: who may use
 * them, and carrying them out without holding up the loop.
 *
 * Two requests of include/uzswap_proto.h land here from the server's
 * dispatcher: CLASSES (the pool's classes, into the caller's memfd; for
 * anyone allowed to connect) and ADMIN (set a budget, compact, reclaim,
 * write back, reload; for root and the members of [clients] admin_group).
 * The peer's credentials are the socket's (SO_PEERCRED, SO_PEERGROUPS:
 * what the kernel recorded at connect), never what a message says.
 *
 * Budgets and reloads are done on the loop at once.  Compaction and
 * reclaim go to the reclaim thread and writeback to the writeback thread
 * (daemon/reclaim.h, daemon/writeback.h); their replies are sent from the
 * loop when the thread reports back, through a uv_async handle, or, once
 * the daemon is stopping and the loop gone, by the thread itself.  The
 * same module owns SIGHUP, which reloads.
 */
#ifndef UZSWAP_DAEMON_ADMIN_H
#define UZSWAP_DAEMON_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/proto.h"

struct uzd_daemon;
struct uzd_admin;

/* Who sent a request, and where its reply goes. */
struct uzd_admin_peer {
	int sock;     /* the session's socket (the loop's; an op in flight keeps a dup) */
	uint32_t seq; /* the request's */
	pid_t pid;    /* SO_PEERCRED */
	uid_t uid;
	gid_t gid;
};

/*
 * Set up on d's loop (d->loop running, d->cfg final): the async handle for
 * replies from the threads, and SIGHUP.  0 or -errno.
 */
int uzd_admin_start(struct uzd_daemon *d);
/* The daemon is stopping (loop thread): close the handles; later replies go direct. */
void uzd_admin_stop(struct uzd_daemon *d);
/* Free it, once the reclaim and writeback threads are stopped (all ops answered). */
void uzd_admin_free(struct uzd_daemon *d);

/*
 * Is the socket's peer an admin: uid 0, or a member (primary or
 * supplementary group) of [clients] admin_group?  Loop thread.
 */
bool uzd_admin_peer_is_admin(const struct uzd_daemon *d, int sock, uid_t uid, gid_t gid);

/*
 * Handle ADMIN (@req->body.admin) or CLASSES (@req->fd, closed here).  0
 * when the reply is sent or will be; otherwise a negative errno with @msg
 * (a line for the reply, which the server sends as a refusal).
 */
int uzd_admin_request(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
		      struct uzd_request *req, char *msg, size_t len);

#endif /* UZSWAP_DAEMON_ADMIN_H */
