/* SPDX-License-Identifier: MIT */
/*
 * daemon/server.h - uzswapd's context and its control plane.
 *
 * struct uzd_daemon is the daemon's whole state (there is no other global
 * state): the settings, the shared pool, the fault threads, the reclaim
 * thread, and the clients.  The server (server.c) runs a libuv loop on the
 * main thread for everything that is not a fault: accepting connections,
 * the protocol (daemon/proto.c checks each request), policy (SO_PEERCRED
 * against allow_uids, max_clients), signals, and teardown.  status.c
 * writes the daemon's state for uzswapctl.
 *
 * Fields:
 *   cfg         settings, fixed after start
 *   pool        every client's evicted pages (alloc/zpool.h)
 *   ft, rc      fault threads (daemon/fthread.h), reclaim (daemon/reclaim.h)
 *   wb          the backing-file tier and its thread (daemon/writeback.h);
 *               NULL when [backing] writeback = no
 *   shared      owner counts of the pool objects fork relatives share
 *   dev_uffd    /dev/userfaultfd, open for the daemon's life, passed to
 *               each accepted client (design.md §1); -1 if unavailable
 *   clients     the clients with a userfaultfd, n_clients of them, under
 *               clients_lock: the loop adds and removes, reclaim and
 *               status read (each taking references)
 *   sessions    every connection (loop thread only)
 *   counters    accepted, refused, dropped, protocol errors (loop thread)
 *
 * Lock order: clients_lock, then a client's region table lock.  The loop
 * thread never waits on a fault thread or reclaim while holding either.
 */
#ifndef UZSWAP_DAEMON_SERVER_H
#define UZSWAP_DAEMON_SERVER_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "alloc/zpool.h"
#include "daemon/client.h"
#include "daemon/config.h"

struct uzd_session;
struct uzd_fthreads;
struct uzd_reclaim;
struct uzd_wb;

struct uzd_daemon_counters {
	uint64_t clients_accepted, clients_refused, clients_dropped, protocol_errors;
};

struct uzd_daemon {
	struct uzd_config cfg;
	struct zpool *pool;
	struct uzd_fthreads *ft;
	struct uzd_reclaim *rc;
	struct uzd_wb *wb;
	struct uzd_shared *shared; /* payloads shared by fork relatives (daemon/shared.h) */
	int dev_uffd;
	int listen_fd;
	bool listen_owned; /* we created the socket file (not systemd): unlink it */
	pthread_mutex_t clients_lock;
	struct uzd_client **clients;
	size_t n_clients;
	struct uzd_session *sessions;
	size_t n_sessions;
	uint32_t next_client_id;
	uint64_t start_ns;
	struct uzd_daemon_counters counters;
	void *loop; /* uv_loop_t, kept opaque to status.c */
	int exit_status;
};

/*
 * Run the daemon with @cfg until SIGTERM or SIGINT: listen (or take the
 * socket systemd passed, LISTEN_FDS), serve, then stop cleanly: clients
 * get SHUTDOWN, every thread is joined, the pool is freed, the socket file
 * removed.  Returns the process exit status (0, or 1 when it could not
 * start; the reason is on stderr).
 */
int uzd_server_run(const struct uzd_config *cfg);

/*
 * Write the daemon's state (struct uzp_status and what follows it, see
 * include/uzswap_proto.h) into @fd from offset 0; *bytes gets the size.
 * A @viewer other than root sees only its own clients (the daemon-wide
 * figures are for everyone).  Loop thread.  0 or -errno.
 */
int uzd_status_write(struct uzd_daemon *d, uid_t viewer, int fd, uint64_t *bytes);

/* Milliseconds since CLOCK_MONOTONIC's start, for uptime. */
uint64_t uzd_now_ns(void);

#endif /* UZSWAP_DAEMON_SERVER_H */
