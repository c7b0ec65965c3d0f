/* SPDX-License-Identifier: MIT */
/*
 * daemon/proto.c - receive and check client requests; send replies.
 *
 * A request passes through these gates, each with its own message, so a
 * client author (or the log) learns exactly what was wrong:
 *   frame      at least a header, the right magic and version, a known type
 *              that is a request, a length field equal to what arrived
 *   body       exactly the size its type has (uzp_body_size)
 *   fds        as many as the type requires, no more; and of the right kind:
 *              SET_UFFD carries a userfaultfd, REGISTER a shared-memory file
 *              (memfd) that can be punched and is long enough
 *   fields     reserved flags zero, ranges page-aligned, non-empty, not
 *              wrapping, names NUL-terminated; an ADMIN op known, with a
 *              pid and a size (non-zero, whole pages) exactly when the op
 *              takes them
 * Everything that needs the daemon's state (whose range is it, is the
 * client in the right phase) is the caller's.
 *
 * This file must never keep a descriptor it rejected, and never trust a
 * length it did not check: the datagram buffer is one byte larger than any
 * valid message, so an oversized datagram is seen, not silently cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/proto.h"

#define PAGE 4096u

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
	[UZP_CLASSES] = "CLASSES",
	[UZP_ADMIN] = "ADMIN",
};

static int refuse(char *why, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

static int check_frame(const struct uzp_header *h, ssize_t n, char *why, size_t wl)
{
	if ((size_t)n < sizeof(*h))
		return refuse(why, wl, -EBADMSG, "truncated message: %zd bytes, a header is %zu", n,
			      sizeof(*h));
	if (h->magic != UZP_MAGIC)
		return refuse(why, wl, -EBADMSG, "bad magic %#x (expected %#x)", h->magic,
			      UZP_MAGIC);
	if (h->version != UZP_VERSION)
		return refuse(why, wl, -EPROTO, "protocol version %u; this daemon speaks %u",
			      h->version, UZP_VERSION);
	if (uzp_body_size(h->type) < 0)
		return refuse(why, wl, -EBADMSG, "unknown message type %u", h->type);
	if (h->type == UZP_REPLY || h->type == UZP_SHUTDOWN)
		return refuse(why, wl, -EBADMSG, "%s is not a request", type_names[h->type]);
	if (h->length != (size_t)n - sizeof(*h))
		return refuse(why, wl, -EBADMSG, "%s: length field says %u, %zu bytes came",
			      type_names[h->type], h->length, (size_t)n - sizeof(*h));
	if (h->length != (size_t)uzp_body_size(h->type))
		return refuse(why, wl, -EBADMSG, "%s: body of %u bytes, expected %ld",
			      type_names[h->type], h->length, uzp_body_size(h->type));
	return 0;
}

static bool is_userfaultfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

/* A memfd we can read and punch, covering [offset, offset + length). */
static int check_memfd(int fd, const struct uzp_register *r, char *why, size_t wl)
{
	int seals = fcntl(fd, F_GET_SEALS);
	int fl = fcntl(fd, F_GETFL);
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || seals < 0 || fl < 0)
		return refuse(why, wl, -EBADMSG, "REGISTER: the descriptor is not a memfd");
	/* A punch needs it open for writing: read-only, every eviction would be undone. */
	if ((fl & O_ACCMODE) != O_RDWR)
		return refuse(why, wl, -EBADMSG,
			      "REGISTER: the memfd is not open for reading and writing");
	/* Eviction punches holes, which a write seal forbids. */
	if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
		return refuse(why, wl, -EBADMSG, "REGISTER: the memfd is sealed against writes");
	if ((uint64_t)st.st_size < r->memfd_offset + r->length)
		return refuse(why, wl, -EBADMSG,
			      "REGISTER: the memfd is %lld bytes, the region needs %llu",
			      (long long)st.st_size,
			      (unsigned long long)(r->memfd_offset + r->length));
	return 0;
}

/* FORK: the child's memfd, which the daemon fills and eviction punches. */
static int check_child_memfd(int fd, char *why, size_t wl)
{
	int seals = fcntl(fd, F_GET_SEALS);
	int fl = fcntl(fd, F_GETFL);
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || seals < 0 || fl < 0)
		return refuse(why, wl, -EBADMSG, "FORK: the descriptor is not a memfd");
	if ((fl & O_ACCMODE) != O_RDWR)
		return refuse(why, wl, -EBADMSG, "FORK: the memfd is not open for writing");
	if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE))
		return refuse(why, wl, -EBADMSG, "FORK: the memfd is sealed against writes");
	return 0;
}

/* STATUS, CLASSES: a memfd the daemon can write (the tool reads it back). */
static int check_status_memfd(const char *what, int fd, char *why, size_t wl)
{
	int seals = fcntl(fd, F_GET_SEALS);
	int fl = fcntl(fd, F_GETFL);
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || seals < 0 || fl < 0)
		return refuse(why, wl, -EBADMSG, "%s: the descriptor is not a memfd", what);
	if ((fl & O_ACCMODE) != O_RDWR && (fl & O_ACCMODE) != O_WRONLY)
		return refuse(why, wl, -EBADMSG, "%s: the memfd is not open for writing", what);
	if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_GROW))
		return refuse(why, wl, -EBADMSG, "%s: the memfd is sealed against writes", what);
	return 0;
}

static int check_fds(const struct uzd_request *req, int nfds, char *why, size_t wl)
{
	unsigned int type = req->h.type;

	if (nfds > uzp_fds_max(type) || (nfds && !uzp_fds_required(type)))
		return refuse(why, wl, -EBADMSG, "%s carries no descriptor", type_names[type]);
	if (nfds < uzp_fds_required(type))
		return refuse(why, wl, -EBADMSG, "%s needs a descriptor", type_names[type]);
	if ((type == UZP_SET_UFFD || type == UZP_FORK_ATTACH) && !is_userfaultfd(req->fd))
		return refuse(why, wl, -EBADMSG, "%s: the descriptor is not a userfaultfd",
			      type_names[type]);
	if (type == UZP_FORK)
		return check_child_memfd(req->fd, why, wl);
	if (type == UZP_REGISTER)
		return check_memfd(req->fd, &req->body.reg, why, wl);
	if (type == UZP_STATUS || type == UZP_CLASSES)
		return check_status_memfd(type_names[type], req->fd, why, wl);
	return 0;
}

static int check_range(const char *what, uint64_t addr, uint64_t len, char *why, size_t wl)
{
	if (addr % PAGE || len % PAGE)
		return refuse(why, wl, -EBADMSG, "%s: range %#llx+%#llx is not page-aligned", what,
			      (unsigned long long)addr, (unsigned long long)len);
	if (len == 0 || addr + len < addr)
		return refuse(why, wl, -EBADMSG, "%s: range %#llx+%#llx is empty or wraps", what,
			      (unsigned long long)addr, (unsigned long long)len);
	return 0;
}

/* Which fields each ADMIN op takes: a pid, a size. */
static const struct {
	const char *name;
	bool pid, size;
} admin_ops[UZP_ADMIN_OPS] = {
	[UZP_ADMIN_SET_BUDGET] = { "SET_BUDGET", true, true },
	[UZP_ADMIN_COMPACT] = { "COMPACT", false, false },
	[UZP_ADMIN_RECLAIM] = { "RECLAIM", true, true },
	[UZP_ADMIN_WRITEBACK] = { "WRITEBACK", false, true },
	[UZP_ADMIN_RELOAD] = { "RELOAD", false, false },
};

static int check_admin(const struct uzp_admin *a, char *why, size_t wl)
{
	const char *op;

	if (a->op == 0 || a->op >= UZP_ADMIN_OPS)
		return refuse(why, wl, -EBADMSG, "ADMIN: unknown op %u", a->op);
	op = admin_ops[a->op].name;
	if (a->flags || a->reserved)
		return refuse(why, wl, -EBADMSG, "ADMIN %s: unknown flags %#x or reserved %#x", op,
			      a->flags, a->reserved);
	if (admin_ops[a->op].pid != (a->pid != 0))
		return refuse(why, wl, -EBADMSG, "ADMIN %s: %s", op,
			      a->pid ? "takes no pid" : "needs a pid (0 is none)");
	if (!admin_ops[a->op].size && a->size)
		return refuse(why, wl, -EBADMSG, "ADMIN %s: takes no size", op);
	if (admin_ops[a->op].size && (!a->size || a->size % PAGE))
		return refuse(why, wl, -EBADMSG,
			      "ADMIN %s: size %llu is not a non-zero multiple of %u bytes", op,
			      (unsigned long long)a->size, PAGE);
	return 0;
}

static int check_fields(const struct uzd_request *req, char *why, size_t wl)
{
	const struct uzp_register *r = &req->body.reg;

	switch (req->h.type) {
	case UZP_HELLO:
		if (req->body.hello.flags)
			return refuse(why, wl, -EBADMSG, "HELLO: unknown flags %#x",
				      req->body.hello.flags);
		return 0;
	case UZP_REGISTER:
		if (!memchr(r->name, '\0', sizeof(r->name)))
			return refuse(why, wl, -EBADMSG, "REGISTER: name is not NUL-terminated");
		if (r->memfd_offset % PAGE || r->memfd_offset + r->length < r->memfd_offset)
			return refuse(why, wl, -EBADMSG, "REGISTER: bad memfd offset %#llx",
				      (unsigned long long)r->memfd_offset);
		return check_range("REGISTER", r->addr, r->length, why, wl);
	case UZP_UNREGISTER:
		return check_range(type_names[req->h.type], req->body.range.addr,
				   req->body.range.length, why, wl);
	case UZP_FORK:
	case UZP_FORK_DONE:
		if (req->body.fork.flags)
			return refuse(why, wl, -EBADMSG, "%s: unknown flags %#x",
				      type_names[req->h.type], req->body.fork.flags);
		return 0;
	case UZP_FORK_ATTACH:
		if (req->body.attach.reserved)
			return refuse(why, wl, -EBADMSG, "FORK_ATTACH: reserved field not 0");
		return 0;
	case UZP_ADMIN:
		return check_admin(&req->body.admin, why, wl);
	default:
		return 0;
	}
}

int uzd_proto_recv(int sock, struct uzd_request *req, char *why, size_t whylen)
{
	unsigned char buf[UZP_DATAGRAM_MAX + 1];
	int fds[UZP_FDS_MAX], nfds = 0, err;
	ssize_t n = uzp_recv(sock, buf, sizeof(buf), fds, &nfds);

	memset(req, 0, sizeof(*req));
	req->fd = -1;
	if (n == -EMSGSIZE)
		return refuse(why, whylen, -EBADMSG, "message too long or too many descriptors");
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 1;
	if ((size_t)n >= sizeof(req->h))
		memcpy(&req->h, buf, sizeof(req->h));
	if (nfds)
		req->fd = fds[0];
	err = check_frame(&req->h, n, why, whylen);
	if (!err) {
		memcpy(&req->body, buf + sizeof(req->h), req->h.length);
		err = check_fds(req, nfds, why, whylen);
	}
	if (!err)
		err = check_fields(req, why, whylen);
	if (err && req->fd >= 0) {
		close(req->fd);
		req->fd = -1;
	}
	if (err && (size_t)n < sizeof(req->h))
		req->h.seq = 0;
	return err;
}

static int send_with_message(int sock, uint16_t type, uint32_t seq, const void *fixed,
			     size_t fixed_len, const void *body, size_t body_len, int fd,
			     const char *message, size_t message_len)
{
	unsigned char buf[UZP_DATAGRAM_MAX];
	struct uzp_header h = { UZP_MAGIC, UZP_VERSION, type, 0, seq };
	size_t len = fixed_len + body_len + message_len;

	if (sizeof(h) + len > sizeof(buf))
		return -EMSGSIZE;
	memcpy(buf, fixed, fixed_len);
	if (body_len)
		memcpy(buf + fixed_len, body, body_len);
	memcpy(buf + fixed_len + body_len, message, message_len);
	h.length = (uint32_t)len;
	return uzp_send(sock, &h, buf, len, &fd, fd >= 0 ? 1 : 0);
}

int uzd_proto_reply(int sock, uint32_t seq, int status, const void *body, size_t len, int fd,
		    const char *fmt, ...)
{
	char message[UZP_MESSAGE_MAX + 1] = "";
	struct uzp_reply r = { .status = status };
	va_list ap;
	int n = 0;

	if (fmt) {
		va_start(ap, fmt);
		n = vsnprintf(message, sizeof(message), fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		n = 0;
	if (n > UZP_MESSAGE_MAX)
		n = UZP_MESSAGE_MAX;
	if (status)
		len = 0;
	r.body_length = (uint16_t)len;
	r.message_length = (uint16_t)n;
	return send_with_message(sock, UZP_REPLY, seq, &r, sizeof(r), body, len, fd, message,
				 (size_t)n);
}

int uzd_proto_shutdown(int sock, int reason, const char *fmt, ...)
{
	char message[UZP_MESSAGE_MAX + 1];
	struct uzp_shutdown s = { .reason = reason };
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > UZP_MESSAGE_MAX)
		n = UZP_MESSAGE_MAX;
	s.message_length = (uint16_t)n;
	return send_with_message(sock, UZP_SHUTDOWN, 0, &s, sizeof(s), NULL, 0, -1, message,
				 (size_t)n);
}
