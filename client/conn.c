/* SPDX-License-Identifier: MIT */
/*
 * client/conn.c - libuzswap's socket to uzswapd: connect, one request and
 * its one reply, the last error, and the daemon going away.
 *
 * The transport is include/uzswap_proto.h's: one SOCK_SEQPACKET datagram
 * per message, descriptors as SCM_RIGHTS.  A request carries the next seq;
 * the daemon answers each request with exactly one REPLY of the same seq.
 * A reply with another seq can only be left over from a request whose
 * caller gave up on it, and is dropped.  An unsolicited SHUTDOWN, EOF or a
 * reset socket all mean the daemon is gone: uzs_conn_lost() then stops the
 * process when it holds a region (its evicted pages are gone with the
 * daemon), or marks the connection dead.
 *
 * Locking: every function here that touches the socket or struct uzswap's
 * mutable fields runs under u->lock (client/internal.h), except
 * uzs_conn_open(), which runs before the struct is shared.
 *
 * Never: read datagrams anywhere but here (the watcher only polls for the
 * hangup); trust a reply's lengths before checking them against the
 * datagram's; leave a received descriptor open that nobody asked for.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/internal.h"

/* The largest errno value a status may carry (the kernel's MAX_ERRNO). */
#define UZS_MAX_ERRNO 4095

static const char *const type_names[UZP_TYPE_COUNT] = {
	[UZP_HELLO] = "HELLO",
	[UZP_SET_UFFD] = "SET_UFFD",
	[UZP_REGISTER] = "REGISTER",
	[UZP_STATUS] = "STATUS",
	[UZP_UNREGISTER] = "UNREGISTER",
	[UZP_STATS] = "STATS",
	[UZP_REPLY] = "REPLY",
	[UZP_SHUTDOWN] = "SHUTDOWN",
	[UZP_FORK] = "FORK",
	[UZP_FORK_DONE] = "FORK_DONE",
	[UZP_FORK_ATTACH] = "FORK_ATTACH",
};

const char *uzs_type_name(unsigned int type)
{
	return type < UZP_TYPE_COUNT && type_names[type] ? type_names[type] : "unknown message";
}

static int vset_error(struct uzswap *u, int err, const char *fmt, va_list ap)
{
	vsnprintf(u->error, sizeof(u->error), fmt, ap);
	return err;
}

int uzs_set_error(struct uzswap *u, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset_error(u, err, fmt, ap);
	va_end(ap);
	return err;
}

int uzs_fail(struct uzswap *u, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&u->lock);
	va_start(ap, fmt);
	vset_error(u, err, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&u->lock);
	return err;
}

/* ---- connecting ---- */

/*
 * secure_getenv: a set-user-ID program must not let its caller point it at
 * a socket of the caller's choosing, whose server would then supply the
 * contents of the program's managed memory.
 */
static const char *socket_path(const char *arg, const char **from)
{
	const char *env = secure_getenv("UZSWAP_SOCKET");

	if (arg) {
		*from = "";
		return arg;
	}
	if (env && *env) {
		*from = " (from $UZSWAP_SOCKET)";
		return env;
	}
	*from = " (the default)";
	return UZSWAP_DEFAULT_SOCKET;
}

/*
 * An AF_UNIX connect(2) that a signal interrupts (it waits only while the
 * daemon's backlog is full) leaves the socket unconnected: try again.
 */
static int connect_retry(int sock, const struct sockaddr_un *sa)
{
	while (connect(sock, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int uzs_conn_open(struct uzswap *u, const char *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path, *from;
	size_t len;
	int err;

	path = socket_path(arg, &from);
	len = strlen(path);
	if (len == 0)
		return uzs_set_error(u, -EINVAL, "cannot connect to uzswapd: empty socket path");
	if (len >= sizeof(sa.sun_path))
		return uzs_set_error(u, -ENAMETOOLONG,
				     "cannot connect to uzswapd at %.60s...%s: the path is %zu "
				     "bytes, an AF_UNIX address holds at most %zu",
				     path, from, len, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, len + 1);
	memcpy(u->path, path, len + 1);

	u->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (u->sock < 0)
		return uzs_set_error(u, -errno, "cannot create a socket for uzswapd: %s",
				     strerror(errno));
	err = connect_retry(u->sock, &sa);
	if (err == -ENOENT || err == -ECONNREFUSED)
		return uzs_set_error(u, err,
				     "cannot connect to uzswapd at %s%s: %s: is uzswapd "
				     "running?",
				     path, from, strerror(-err));
	if (err)
		return uzs_set_error(u, err, "cannot connect to uzswapd at %s%s: %s", path, from,
				     strerror(-err));
	return 0;
}

/* ---- the daemon going away ---- */

int uzs_conn_lost(struct uzswap *u, const char *detail)
{
	if (u->regions)
		uzs_stop_process(u, detail);
	if (!u->dead)
		snprintf(u->gone, sizeof(u->gone), "%s", detail ? detail : "for no known reason");
	u->dead = true;
	return uzs_set_error(u, -ENOTCONN, "uzswapd (%s) went away: %s", u->path, u->gone);
}

/* A status or reason must be 0 or a negative errno; anything else is garbage. */
static bool is_status(int32_t s)
{
	return s <= 0 && s >= -UZS_MAX_ERRNO;
}

/* What a SHUTDOWN (the bytes after the header) says, into @buf; its reason. */
static int32_t shutdown_detail(const unsigned char *msg, size_t len, char *buf)
{
	struct uzp_shutdown s;

	if (len < sizeof(s)) {
		snprintf(buf, UZS_DETAIL_MAX, "it sent a malformed SHUTDOWN");
		return 0;
	}
	memcpy(&s, msg, sizeof(s));
	if (s.message_length > len - sizeof(s))
		s.message_length = (uint16_t)(len - sizeof(s));
	if (s.message_length)
		snprintf(buf, UZS_DETAIL_MAX, "it said \"%.*s\"", (int)s.message_length,
			 (const char *)msg + sizeof(s));
	else if (s.reason)
		snprintf(buf, UZS_DETAIL_MAX, "it dropped this client: %s",
			 strerror(is_status(s.reason) ? -s.reason : EPROTO));
	else
		snprintf(buf, UZS_DETAIL_MAX, "it is shutting down");
	return is_status(s.reason) ? s.reason : 0;
}

/* An unsolicited SHUTDOWN: the daemon is stopping (0) or dropping us (-errno). */
static int shutdown_received(struct uzswap *u, const unsigned char *msg, size_t len)
{
	char detail[UZS_DETAIL_MAX];
	int32_t reason = shutdown_detail(msg, len, detail);
	int err = uzs_conn_lost(u, detail);

	/* A reason says more than "not connected", e.g. -EACCES when refused at HELLO. */
	return reason < 0 ? reason : err;
}

const char *uzs_conn_farewell(struct uzswap *u, char *buf)
{
	union {
		struct uzp_header h;
		unsigned char b[UZP_DATAGRAM_MAX];
	} msg;
	ssize_t n;

	n = recv(u->sock, msg.b, sizeof(msg.b), MSG_PEEK | MSG_DONTWAIT);
	if (n < (ssize_t)sizeof(msg.h) || msg.h.magic != UZP_MAGIC ||
	    msg.h.version != UZP_VERSION || msg.h.type != UZP_SHUTDOWN)
		return "the connection closed";
	shutdown_detail(msg.b + sizeof(msg.h), (size_t)n - sizeof(msg.h), buf);
	return buf;
}

/*
 * The connection was reset or closed under a request: a daemon that
 * refused it at the door (allow-lists, a quota) sent a SHUTDOWN with the
 * reason first, which may still be queued behind the error.
 */
static int conn_reset(struct uzswap *u, const char *detail)
{
	union {
		struct uzp_header h;
		unsigned char b[UZP_DATAGRAM_MAX];
	} msg;
	ssize_t n = recv(u->sock, msg.b, sizeof(msg.b), MSG_DONTWAIT);

	if (n >= (ssize_t)sizeof(msg.h) && msg.h.magic == UZP_MAGIC &&
	    msg.h.version == UZP_VERSION && msg.h.type == UZP_SHUTDOWN)
		return shutdown_received(u, msg.b + sizeof(msg.h), (size_t)n - sizeof(msg.h));
	return uzs_conn_lost(u, detail);
}

/* ---- one request, one reply ---- */

struct reply {
	struct uzp_reply r;
	const unsigned char *body;
	const char *message;
};

/* Check a REPLY's own lengths against the datagram: 0 or -EPROTO. */
static int parse_reply(const unsigned char *msg, size_t len, struct reply *out)
{
	if (len < sizeof(out->r))
		return -EPROTO;
	memcpy(&out->r, msg, sizeof(out->r));
	if (out->r.message_length > UZP_MESSAGE_MAX ||
	    sizeof(out->r) + out->r.body_length + out->r.message_length != len ||
	    !is_status(out->r.status))
		return -EPROTO;
	out->body = msg + sizeof(out->r);
	out->message = (const char *)out->body + out->r.body_length;
	return 0;
}

static void close_fds(int *fds, int *nfds)
{
	while (*nfds)
		close(fds[--*nfds]);
}

/* A reply to our request: its status, and its body and descriptor when it succeeded. */
static int take_reply(struct uzswap *u, unsigned int type, const struct reply *rep, void *out,
		      size_t out_len, int *fds, int *nfds, int *fd_out)
{
	const char *name = uzs_type_name(type);

	if (rep->r.status < 0) {
		close_fds(fds, nfds);
		if (rep->r.message_length)
			return uzs_set_error(u, rep->r.status, "uzswapd (%s) refused %s: %.*s",
					     u->path, name, (int)rep->r.message_length,
					     rep->message);
		return uzs_set_error(u, rep->r.status, "uzswapd (%s) refused %s: %s", u->path, name,
				     strerror(-rep->r.status));
	}
	if (rep->r.body_length != out_len) {
		close_fds(fds, nfds);
		return uzs_set_error(u, -EPROTO,
				     "uzswapd (%s) answered %s with a %u-byte body, not %zu: "
				     "protocol mismatch",
				     u->path, name, rep->r.body_length, out_len);
	}
	if (out_len)
		memcpy(out, rep->body, out_len);
	if (fd_out && *nfds)
		*fd_out = fds[--*nfds];
	close_fds(fds, nfds);
	return 0;
}

/* Check the header of a received datagram: 0, or -EPROTO with u->error set. */
static int check_header(struct uzswap *u, unsigned int type, const struct uzp_header *h, size_t n)
{
	const char *name = uzs_type_name(type);

	if (n < sizeof(*h) || h->magic != UZP_MAGIC)
		return uzs_set_error(u, -EPROTO,
				     "%s: the server at %s does not speak the uzswap protocol",
				     name, u->path);
	if (h->version != UZP_VERSION)
		return uzs_set_error(u, -EPROTO,
				     "%s: uzswapd (%s) speaks protocol version %u, this library "
				     "version %u",
				     name, u->path, h->version, UZP_VERSION);
	if (h->length != n - sizeof(*h) || (h->type != UZP_REPLY && h->type != UZP_SHUTDOWN))
		return uzs_set_error(u, -EPROTO, "%s: uzswapd (%s) sent a malformed %s", name,
				     u->path, uzs_type_name(h->type));
	return 0;
}

/* Read datagrams until the reply to @seq; a SHUTDOWN or EOF on the way ends it. */
static int await_reply(struct uzswap *u, unsigned int type, uint32_t seq, void *out, size_t out_len,
		       int *fd_out)
{
	union {
		struct uzp_header h;
		unsigned char b[UZP_DATAGRAM_MAX];
	} buf;
	int fds[UZP_FDS_MAX], nfds = 0;
	struct reply rep = { .body = NULL, .message = NULL };
	ssize_t n;
	int err;

	for (;;) {
		n = uzp_recv(u->sock, buf.b, sizeof(buf.b), fds, &nfds);
		if (n == 0 || n == -ECONNRESET)
			return conn_reset(u, n ? "connection reset" : "it closed the connection");
		if (n == -EMSGSIZE)
			return uzs_set_error(u, -EPROTO,
					     "%s: uzswapd (%s) sent an oversized message",
					     uzs_type_name(type), u->path);
		if (n < 0)
			return uzs_set_error(u, (int)n, "%s: receiving from uzswapd (%s): %s",
					     uzs_type_name(type), u->path, strerror((int)-n));
		err = check_header(u, type, &buf.h, (size_t)n);
		if (err == 0 && buf.h.type == UZP_SHUTDOWN) {
			close_fds(fds, &nfds);
			return shutdown_received(u, buf.b + sizeof(buf.h), buf.h.length);
		}
		if (err == 0 && buf.h.seq != seq) {
			close_fds(fds, &nfds);
			continue;
		}
		if (err == 0 && parse_reply(buf.b + sizeof(buf.h), buf.h.length, &rep) < 0)
			err = uzs_set_error(u, -EPROTO, "%s: uzswapd (%s) sent a malformed REPLY",
					    uzs_type_name(type), u->path);
		if (err) {
			close_fds(fds, &nfds);
			return err;
		}
		return take_reply(u, type, &rep, out, out_len, fds, &nfds, fd_out);
	}
}

int uzs_conn_request(struct uzswap *u, uint16_t type, const void *body, size_t len, int fd,
		     void *out, size_t out_len, int *fd_out)
{
	struct uzp_header h = {
		.magic = UZP_MAGIC,
		.version = UZP_VERSION,
		.type = type,
		.length = (uint32_t)len,
	};
	int err;

	if (fd_out)
		*fd_out = -1;
	if (u->dead)
		return uzs_set_error(u, -ENOTCONN, "%s: uzswapd (%s) went away earlier: %s",
				     uzs_type_name(type), u->path, u->gone);
	h.seq = ++u->seq;
	err = uzp_send(u->sock, &h, body, len, &fd, fd >= 0 ? 1 : 0);
	if (err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN)
		return conn_reset(u, "the connection is closed");
	if (err)
		return uzs_set_error(u, err, "%s: sending to uzswapd (%s): %s", uzs_type_name(type),
				     u->path, strerror(-err));
	return await_reply(u, type, h.seq, out, out_len, fd_out);
}
