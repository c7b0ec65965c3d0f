/* SPDX-License-Identifier: MIT */
/*
 * client/internal.h - libuzswap's private state, shared by its files.
 *
 * One struct uzswap per connection to uzswapd; the library has no global
 * mutable state, so a process may hold several connections.  The files:
 *   libuzswap.c  the public entry points of include/uzswap.h: connect
 *                (HELLO, the userfaultfd, SET_UFFD), stats, close
 *   conn.c       the socket: one request, exactly one reply; the last
 *                error; what happens when the daemon goes away
 *   region.c     managed regions: memfd, mapping, registration
 *   watch.c      the thread that notices the daemon going away
 *   uffd.c       creating the userfaultfd, registering ranges
 *
 * Locking: u->lock serialises requests (one datagram out, its reply in)
 * and guards every field that changes after connect: seq, dead, regions,
 * error.  The watcher takes it too, so "does the process hold a region?"
 * and "is the daemon gone?" are decided in one order.
 *
 * Never touch caller memory while holding u->lock: a caller's pointer may
 * lie in a managed region, and a fault there with the daemon gone would
 * block forever holding the lock, and with it the watcher that is to stop
 * the process.  Arguments are copied before locking, results written after.
 */
#ifndef UZSWAP_CLIENT_INTERNAL_H
#define UZSWAP_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "include/uzswap.h"
#include "include/uzswap_proto.h"

/* Room for a request's name, a path and the daemon's message. */
#define UZS_ERROR_MAX (UZP_MESSAGE_MAX + sizeof(((struct sockaddr_un *)0)->sun_path) + 128)
/* Room for how the daemon went away: its SHUTDOWN message, quoted. */
#define UZS_DETAIL_MAX (UZP_MESSAGE_MAX + 64)

/*
 * A region handed to the caller and not yet released.  The daemon owns a
 * copy of its memfd (REGISTER's SCM_RIGHTS), the mapping keeps the memory
 * alive here: the library keeps no memfd of its own (region.c).
 */
struct uzs_region {
	struct uzs_region *next;
	uintptr_t addr;
	size_t length;
	uint32_t id; /* the daemon's region id, for messages */
};

/*
 * struct uzswap - one connection to uzswapd.
 * @lock:	serialises requests; guards the fields marked (L)
 * @sock:	SOCK_SEQPACKET to the daemon; set at connect, closed by close
 * @uffd:	our copy of the userfaultfd, open for the life of the
 *		connection: with every copy closed the kernel forgets the
 *		registrations and evicted pages read as zeros (design.md §1)
 * @stop_fd:	eventfd uzswap_close() writes to stop the watcher; -1 before
 * @watcher:	the watcher thread, valid when @watching
 * @seq:	(L) seq of the last request sent
 * @dead:	(L) the daemon went away while no region was held: every
 *		request now fails with -ENOTCONN.  Never set while @regions is
 *		non-empty: that case stops the process instead.
 * @gone:	(L) with @dead, how the daemon went away, for later messages
 * @regions:	(L) regions handed to the caller, newest first
 * @error:	(L) the last failure, one line; read unlocked by
 *		uzswap_last_error(), as errno is read
 * @path:	the socket path, for messages
 * @max_resident, @page_size, @client_id: from the HELLO reply
 */
struct uzswap {
	pthread_mutex_t lock;
	int sock;
	int uffd;
	int stop_fd;
	pthread_t watcher;
	bool watching;
	uint32_t seq;
	bool dead;
	char gone[UZS_DETAIL_MAX];
	struct uzs_region *regions;
	char error[UZS_ERROR_MAX];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint64_t max_resident;
	uint64_t page_size;
	uint32_t client_id;
};

/* libuzswap.c: the steps of a connect, for the interposer (client/uzi.h) */

/* A struct uzswap not connected yet: fields cleared, the lock made.  0 or -ENOMEM. */
int uzs_conn_init(struct uzswap *u);
/* The process name, as ps shows it: the main thread's, not the caller's. */
void uzs_process_name(char comm[16]);
/*
 * Under u->lock: HELLO asking for @max_resident bytes; the daemon's
 * /dev/userfaultfd descriptor into *@dev_fd (-1 if it sent none).
 */
int uzs_hello(struct uzswap *u, uint64_t max_resident, const char comm[16], int *dev_fd);
/*
 * Under u->lock: make our userfaultfd from @dev_fd (closed here), keep it
 * in u->uffd and send it with SET_UFFD.
 */
int uzs_hand_uffd(struct uzswap *u, int dev_fd);

/* conn.c */

/*
 * Resolve the socket path (argument, $UZSWAP_SOCKET, UZSWAP_DEFAULT_SOCKET)
 * into u->path and connect u->sock.  -ENAMETOOLONG, -EINVAL, or connect's
 * error (-ENOENT, -ECONNREFUSED...), with u->error set.
 */
int uzs_conn_open(struct uzswap *u, const char *socket_path);

/*
 * Under u->lock: send request @type with @body (@len bytes) and @fd when
 * >= 0, and wait for its reply.  Returns the reply's status (0 or the
 * daemon's negative errno, its message in u->error) or a local failure.
 * On success the reply's body, which must be exactly @out_len bytes, is
 * copied to @out, and the descriptor that came with it to *@fd_out (-1
 * when none; when @fd_out is NULL a descriptor is closed).  If the daemon
 * has gone, this returns -ENOTCONN, or does not return at all when the
 * process holds a region (uzs_conn_lost()).
 */
int uzs_conn_request(struct uzswap *u, uint16_t type, const void *body, size_t len, int fd,
		     void *out, size_t out_len, int *fd_out);

/*
 * Under u->lock: the daemon went away (EOF, a socket error, SHUTDOWN, or
 * the watcher saw the hangup); @detail, when not NULL, says how.  With a
 * region held the process is stopped (uzs_stop_process()); else the
 * connection is marked dead and -ENOTCONN returned.
 */
int uzs_conn_lost(struct uzswap *u, const char *detail);

/*
 * Under u->lock, after the socket hung up: how the daemon went away, into
 * @buf (UZS_DETAIL_MAX bytes).  With u->lock held no request is waiting
 * for a reply, so a datagram still queued can only be the daemon's
 * SHUTDOWN: it is peeked at, never consumed.
 */
const char *uzs_conn_farewell(struct uzswap *u, char *buf);

/* Under u->lock: set u->error (printf format); returns @err, for tail calls. */
int uzs_set_error(struct uzswap *u, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* As uzs_set_error(), taking u->lock. */
int uzs_fail(struct uzswap *u, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The request's name, for messages. */
const char *uzs_type_name(unsigned int type);

/* region.c */

/*
 * Give back every region: UNREGISTER each (unless the connection is
 * dead), unregister it from the userfaultfd and unmap it.  For close: the
 * regions leave u->regions first, so the daemon going away meanwhile does
 * not stop the process for memory it is dropping anyway.
 */
void uzs_region_release_all(struct uzswap *u);

/* watch.c */

int uzs_watch_start(struct uzswap *u);
/* Wake the watcher and join it; it does nothing more afterwards. */
void uzs_watch_stop(struct uzswap *u);

/*
 * Say on stderr (write(2), one line) that the daemon went away and this
 * process is stopped, then _exit(UZSWAP_EXIT_DAEMON_GONE).  Never abort():
 * a core dump would read the managed memory, and block on its evicted pages.
 */
__attribute__((noreturn)) void uzs_stop_process(const struct uzswap *u, const char *detail);

#endif /* UZSWAP_CLIENT_INTERNAL_H */
