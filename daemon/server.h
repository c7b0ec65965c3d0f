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
 *   cfg         the running settings; the loop thread's: a reload
 *               (daemon/reload.c) replaces them there and hands each
 *               thread its part
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
 *   admin       uzswapctl's admin commands and SIGHUP (daemon/admin.h)
 *   config_path the file the daemon started with, which a reload reads
 *               again ("" when none); socket_overridden: --socket was
 *               given, so a reload keeps the running socket
 *   live_high_watermark, live_throttle_above  the two settings the fault
 *               threads read (the server's drain callbacks): relaxed
 *               atomics, so a reload can move them under the threads
 *               (daemon/reload.c); cfg itself is the loop thread's
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
struct uzd_admin;

struct uzd_daemon_counters {
	uint64_t clients_accepted, clients_refused, clients_dropped, protocol_errors;
	uint64_t quota_refused; /* connections, HELLOs and REGISTERs over a quota */
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
	uint64_t refused_logged_ns; /* the last refused connection logged (one a second) */
	void *loop;		    /* uv_loop_t, kept opaque to status.c */
	int exit_status;
	struct uzd_admin *admin;
	char config_path[4096];
	bool socket_overridden;
	unsigned int live_high_watermark, live_throttle_above;
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
 * uzd_server_run() for a daemon whose settings came from @config_path
 * (NULL: none), which SIGHUP and `uzswapctl reload` read again; with
 * @socket_overridden the socket came from the command line and a reload
 * keeps it.
 */
int uzd_server_run_file(const struct uzd_config *cfg, const char *config_path,
			bool socket_overridden);

/*
 * Write the daemon's state (struct uzp_status and what follows it, see
 * include/uzswap_proto.h) into @fd from offset 0; *bytes gets the size.
 * A @viewer other than root sees only its own clients (the daemon-wide
 * figures are for everyone).  Loop thread.  0 or -errno.
 */
int uzd_status_write(struct uzd_daemon *d, uid_t viewer, int fd, uint64_t *bytes);

/* The same, showing every client when @see_all (an admin, daemon/admin.h). */
int uzd_status_write_as(struct uzd_daemon *d, uid_t viewer, bool see_all, int fd, uint64_t *bytes);

/* Milliseconds since CLOCK_MONOTONIC's start, for uptime. */
uint64_t uzd_now_ns(void);

#endif /* UZSWAP_DAEMON_SERVER_H */
