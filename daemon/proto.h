/* SPDX-License-Identifier: MIT */
/*
 * daemon/proto.h - the daemon's side of the client protocol: take one
 * request off a client socket and check everything about it that needs no
 * daemon state; answer it.  Wire format: include/uzswap_proto.h.
 */
#ifndef UZSWAP_DAEMON_PROTO_H
#define UZSWAP_DAEMON_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "include/uzswap_proto.h"

#define UZD_PROTO_WHY_MAX 160

struct uzd_request {
	struct uzp_header h;
	union {
		struct uzp_hello hello;
		struct uzp_register reg;
		struct uzp_range range;
		struct uzp_fork fork;
		struct uzp_fork_attach attach;
		struct uzp_admin admin;
	} body;
	int fd; /* the descriptor that came with it, owned by the caller; -1: none */
};

/*
 * Receive one request.  0: *@req is a well-formed request (types, sizes,
 * alignment, descriptor count and kind all checked).  1: the client closed
 * the connection, or sent an empty datagram, which SOCK_SEQPACKET cannot
 * tell apart from a close (recvmsg returns 0 for both): either way the
 * conversation is over.  -EBADMSG or -EPROTO: the datagram is malformed, @why
 * says how (for the reply and the log), any descriptor is already closed,
 * and req->h.seq holds the seq when the header was readable (else 0).
 * Another -errno: the socket failed.
 */
int uzd_proto_recv(int sock, struct uzd_request *req, char *why, size_t whylen);

/*
 * Answer request @seq: @status 0 with @body of @len bytes (and @fd when >= 0,
 * for HELLO), or a negative errno with a message (printf @fmt; may be NULL
 * on success).  0 or -errno from the socket.
 */
int uzd_proto_reply(int sock, uint32_t seq, int status, const void *body, size_t len, int fd,
		    const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Tell a client the daemon is going (@reason 0) or dropping it (a negative errno). */
int uzd_proto_shutdown(int sock, int reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* UZSWAP_DAEMON_PROTO_H */
