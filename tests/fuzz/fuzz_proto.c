/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz_proto.c - the daemon's request decoder (daemon/proto.c)
 * against any datagram, with any descriptors.
 *
 * Input: byte 0 picks the descriptors that travel with the datagram (bits
 * 0..1: none, a memfd, a pipe, a userfaultfd-less eventfd; bit 2: a second
 * one, a memfd); the rest is the datagram, sent over a SOCK_SEQPACKET pair
 * as a client would send it.  uzd_proto_recv() must then
 *   - accept only what the protocol allows: a request type, the magic and
 *     version, a length equal to what came and to what the type says; an
 *     ADMIN op only when known, with its sizes in whole pages;
 *   - never leave a descriptor open that it did not hand back (the lowest
 *     free descriptor is the same before and after: a leak would take it);
 *   - always say why when it refuses.
 * A violation aborts, which libFuzzer reports with the input.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/proto.h"
#include "tests/fuzz/fuzz.h"

#define MAX_DATAGRAM 2048

static int lowest_free_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

/* Which of the 8 descriptors from @from are open, as bits. */
static unsigned int open_slots(int from)
{
	unsigned int bits = 0;

	for (int i = 0; i < 8; i++)
		bits |= (unsigned int)(fcntl(from + i, F_GETFD) >= 0) << i;
	return bits;
}

static int make_fd(unsigned int kind, int *extra)
{
	int p[2];

	switch (kind) {
	case 1:
		return memfd_create("fuzz", MFD_CLOEXEC);
	case 2:
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		*extra = p[1];
		return p[0];
	case 3:
		return eventfd(0, EFD_CLOEXEC);
	}
	return -1;
}

/* Send @buf with up to two descriptors; they are closed here once sent. */
static int send_datagram(int sock, const uint8_t *buf, size_t len, const int *fds, int nfds)
{
	char ctrl[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (nfds) {
		memset(ctrl, 0, sizeof(ctrl));
		mh.msg_control = ctrl;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_DONTWAIT) < 0 ? -errno : 0;
}

static void check_accepted(const struct uzd_request *req)
{
	long body = uzp_body_size(req->h.type);

	FUZZ_ASSERT(req->h.magic == UZP_MAGIC && req->h.version == UZP_VERSION);
	FUZZ_ASSERT(body >= 0 && req->h.length == (uint32_t)body);
	FUZZ_ASSERT(req->h.type != UZP_REPLY && req->h.type != UZP_SHUTDOWN);
	/* An ADMIN op the daemon would run: known, reserved fields zero, sizes whole pages. */
	if (req->h.type == UZP_ADMIN) {
		const struct uzp_admin *a = &req->body.admin;

		FUZZ_ASSERT(a->op >= 1 && a->op < UZP_ADMIN_OPS && !a->flags && !a->reserved);
		FUZZ_ASSERT(a->size % 4096 == 0);
		FUZZ_ASSERT(req->fd < 0);
	}
	if (req->h.type == UZP_CLASSES)
		FUZZ_ASSERT(req->fd >= 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], fds[2], nfds = 0, extra = -1, before, ret;
	unsigned int slots;
	char why[UZD_PROTO_WHY_MAX] = "";
	struct uzd_request req;

	if (size < 1 || size > MAX_DATAGRAM)
		return 0;
	before = lowest_free_fd();
	slots = open_slots(before);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	if (data[0] & 3)
		fds[nfds++] = make_fd(data[0] & 3, &extra);
	if (data[0] & 4)
		fds[nfds++] = make_fd(1, &extra);
	/*
	 * A descriptor the machine would not give now (seen once in 2 million
	 * runs of a 10-minute run) says nothing about the decoder: skip.
	 */
	ret = 0;
	for (int i = 0; i < nfds; i++)
		ret |= fds[i] < 0;
	if (ret == 0) {
		ret = send_datagram(sv[1], data + 1, size - 1, fds, nfds);
	} else {
		fprintf(stderr, "fuzz_proto: no descriptor to send (%s): input skipped\n",
			strerror(errno));
		ret = -EMFILE;
	}
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (extra >= 0)
		close(extra);
	if (ret == 0) {
		ret = uzd_proto_recv(sv[0], &req, why, sizeof(why));
		if (ret == 0) {
			check_accepted(&req);
			if (req.fd >= 0)
				close(req.fd);
		} else if (ret < 0) {
			FUZZ_ASSERT(why[0] != '\0');
		}
	}
	close(sv[0]);
	close(sv[1]);
	/* Every slot this run could use is as it was (a leak can sit above a freed one). */
	FUZZ_ASSERT(open_slots(before) == slots);
	return 0;
}
