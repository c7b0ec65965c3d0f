/* SPDX-License-Identifier: MIT */
/*
 * tests/test_proto.c - the daemon's request checks and replies, over a real
 * SOCK_SEQPACKET socketpair with real descriptors: each valid request is
 * accepted with its fields intact; each kind of malformed request is
 * refused with its own message and its descriptors closed; 10,000 random
 * and mutated datagrams are all either accepted or refused, with no
 * descriptor leaked (counted in /proc/self/fd); replies and shutdowns read
 * back as sent.  uzswapctl's requests: CLASSES needs a writable memfd;
 * an ADMIN op is accepted only when known, with a pid and a size (whole
 * pages, non-zero) exactly when it takes them, and no flags.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <unistd.h>

#include "daemon/proto.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define FUZZ_ROUNDS 10000

struct pair {
	int client, daemon;
};

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static int make_memfd(size_t size, unsigned int seals)
{
	int fd = memfd_create("uzswap-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) || (seals && fcntl(fd, F_ADD_SEALS, seals))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* User-mode-only: creatable without privilege, and still a userfaultfd. */
static int make_uffd(void)
{
	return (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
}

/* Send a datagram as the client, with @nfds descriptors (up to 2, raw sendmsg). */
static void send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	char control[CMSG_SPACE(2 * sizeof(int))];
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *c;

		memset(control, 0, sizeof(control));
		msg.msg_control = control;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	if (sendmsg(sock, &msg, 0) < 0)
		tap_diag("sendmsg: %s", strerror(errno));
}

/* A request of @type with @body, as a client would build it. */
static size_t build(unsigned char *buf, unsigned int type, const void *body, size_t len)
{
	struct uzp_header h = { UZP_MAGIC, UZP_VERSION, (uint16_t)type, (uint32_t)len, 42 };

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), body, len);
	return sizeof(h) + len;
}

static int recv_req(struct pair *p, struct uzd_request *req, char *why)
{
	why[0] = '\0';
	return uzd_proto_recv(p->daemon, req, why, UZD_PROTO_WHY_MAX);
}

static struct uzp_register valid_register(void)
{
	struct uzp_register r = { .addr = 0x7f0000000000ULL, .length = 1 << 20 };

	strcpy(r.name, "heap");
	return r;
}

static void test_valid_requests(struct pair *p)
{
	unsigned char buf[256];
	struct uzd_request req;
	struct uzp_hello hello = { .pid = 1234, .max_resident = 1 << 30 };
	struct uzp_register reg = valid_register();
	struct uzp_range range = { 0x10000, 0x2000 };
	char why[UZD_PROTO_WHY_MAX];
	int memfd = make_memfd(1 << 20, 0), uffd = make_uffd();
	struct stat a, b;
	int err;

	strcpy(hello.comm, "redis");
	send_raw(p->client, buf, build(buf, UZP_HELLO, &hello, sizeof(hello)), NULL, 0);
	err = recv_req(p, &req, why);
	ok(!err && req.h.type == UZP_HELLO && req.h.seq == 42 && req.body.hello.pid == 1234 &&
		   !strcmp(req.body.hello.comm, "redis") && req.fd < 0,
	   "a HELLO is accepted with its fields (%d: %s)", err, why);

	if (!ok(uffd >= 0, "a userfaultfd can be made for the test (%s)", strerror(errno)))
		return;
	send_raw(p->client, buf, build(buf, UZP_SET_UFFD, NULL, 0), &uffd, 1);
	err = recv_req(p, &req, why);
	ok(!err && req.fd >= 0 && !fstat(req.fd, &a) && !fstat(uffd, &b) && a.st_ino == b.st_ino,
	   "a SET_UFFD brings the client's userfaultfd (%d: %s)", err, why);
	if (req.fd >= 0)
		close(req.fd);

	send_raw(p->client, buf, build(buf, UZP_REGISTER, &reg, sizeof(reg)), &memfd, 1);
	err = recv_req(p, &req, why);
	ok(!err && req.fd >= 0 && req.body.reg.length == 1 << 20 &&
		   !strcmp(req.body.reg.name, "heap"),
	   "a REGISTER with a long enough memfd is accepted (%d: %s)", err, why);
	if (req.fd >= 0)
		close(req.fd);

	send_raw(p->client, buf, build(buf, UZP_UNREGISTER, &range, sizeof(range)), NULL, 0);
	err = recv_req(p, &req, why);
	send_raw(p->client, buf, build(buf, UZP_STATS, NULL, 0), NULL, 0);
	ok(!err && req.body.range.addr == 0x10000 && !recv_req(p, &req, why) &&
		   req.h.type == UZP_STATS,
	   "UNREGISTER and STATS are accepted");

	send_raw(p->client, buf, build(buf, UZP_STATUS, NULL, 0), &memfd, 1);
	err = recv_req(p, &req, why);
	ok(!err && req.fd >= 0 && req.h.type == UZP_STATUS,
	   "a STATUS with a writable memfd is accepted (%d: %s)", err, why);
	if (req.fd >= 0)
		close(req.fd);
	close(memfd);
	close(uffd);
}

struct bad_case {
	const char *name, *expect;
	unsigned char buf[128];
	size_t len;
	int fds[2], nfds;
	int err;
};

/* One malformed request: refused with @expect in the message, descriptors closed. */
static void expect_refused(struct pair *p, struct bad_case *c)
{
	char why[UZD_PROTO_WHY_MAX];
	struct uzd_request req;
	int before, err;

	send_raw(p->client, c->buf, c->len, c->fds, c->nfds);
	for (int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	before = open_fds();
	err = recv_req(p, &req, why);
	ok(err == c->err && strstr(why, c->expect) && req.fd < 0 && open_fds() == before,
	   "%s is refused: \"%s\" (expected %d and \"%s\", saw %d)", c->name, why, c->err,
	   c->expect, err);
}

static void bad_header(struct bad_case *c, const char *name, const char *expect, int err,
		       uint32_t magic, uint16_t version, uint16_t type, int32_t length_delta)
{
	struct uzp_header h = { magic, version, type, 0, 7 };

	h.length = (uint32_t)((int32_t)uzp_body_size(type < UZP_TYPE_COUNT ? type : 0) +
			      length_delta);
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->expect = expect;
	c->err = err;
	memcpy(c->buf, &h, sizeof(h));
	c->len = sizeof(h) + (h.length < 100 ? h.length : 0);
}

static void test_bad_frames(struct pair *p)
{
	struct bad_case c;

	bad_header(&c, "an 8-byte datagram", "truncated", -EBADMSG, UZP_MAGIC, 1, UZP_STATS, 0);
	c.len = 8;
	expect_refused(p, &c);
	bad_header(&c, "a bad magic", "bad magic", -EBADMSG, 0xdeadbeef, 1, UZP_STATS, 0);
	expect_refused(p, &c);
	bad_header(&c, "protocol version 2", "version 2", -EPROTO, UZP_MAGIC, 2, UZP_STATS, 0);
	expect_refused(p, &c);
	bad_header(&c, "type 99", "unknown message type 99", -EBADMSG, UZP_MAGIC, 1, 99, 0);
	expect_refused(p, &c);
	bad_header(&c, "a REPLY sent by a client", "not a request", -EBADMSG, UZP_MAGIC, 1,
		   UZP_REPLY, 0);
	expect_refused(p, &c);
	bad_header(&c, "a length field longer than the datagram", "length field", -EBADMSG,
		   UZP_MAGIC, 1, UZP_HELLO, 0);
	c.len -= 4;
	expect_refused(p, &c);
	bad_header(&c, "a HELLO one byte short", "expected 32", -EBADMSG, UZP_MAGIC, 1, UZP_HELLO,
		   -1);
	expect_refused(p, &c);
}

/* The same file as @fd, opened again read-only; @fd is closed. */
static int read_only(int fd)
{
	char path[64];
	int ro;

	if (fd < 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ro = open(path, O_RDONLY | O_CLOEXEC);
	close(fd);
	return ro;
}

static void bad_register(struct bad_case *c, const char *name, const char *expect,
			 const struct uzp_register *r, int fd)
{
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->expect = expect;
	c->err = -EBADMSG;
	c->len = build(c->buf, UZP_REGISTER, r, sizeof(*r));
	c->fds[0] = fd;
	c->nfds = fd >= 0;
}

static void test_bad_descriptors(struct pair *p)
{
	struct uzp_register r = valid_register();
	struct bad_case c;
	int pipefd[2];

	bad_register(&c, "a REGISTER without a descriptor", "needs a descriptor", &r, -1);
	expect_refused(p, &c);
	if (pipe2(pipefd, O_CLOEXEC) == 0) {
		close(pipefd[1]);
		bad_register(&c, "a REGISTER with a pipe", "not a memfd", &r, pipefd[0]);
		expect_refused(p, &c);
	}
	bad_register(&c, "a REGISTER with a memfd too short", "the region needs", &r,
		     make_memfd(4096, 0));
	expect_refused(p, &c);
	bad_register(&c, "a REGISTER with a write-sealed memfd", "sealed", &r,
		     make_memfd(1 << 20, F_SEAL_WRITE));
	expect_refused(p, &c);
	bad_register(&c, "a REGISTER with a memfd open read-only (evictions could not punch it)",
		     "not open for reading and writing", &r, read_only(make_memfd(1 << 20, 0)));
	expect_refused(p, &c);
	memset(&c, 0, sizeof(c));
	c.name = "a SET_UFFD with a memfd";
	c.expect = "not a userfaultfd";
	c.err = -EBADMSG;
	c.len = build(c.buf, UZP_SET_UFFD, NULL, 0);
	c.fds[0] = make_memfd(4096, 0);
	c.nfds = 1;
	expect_refused(p, &c);
	c.name = "a STATS with a descriptor";
	c.expect = "carries no descriptor";
	c.len = build(c.buf, UZP_STATS, NULL, 0);
	c.fds[0] = make_memfd(4096, 0);
	expect_refused(p, &c);
	c.name = "a REGISTER with two descriptors";
	c.expect = "too many descriptors";
	c.len = build(c.buf, UZP_REGISTER, &r, sizeof(r));
	c.fds[0] = make_memfd(1 << 20, 0);
	c.fds[1] = make_memfd(1 << 20, 0);
	c.nfds = 2;
	expect_refused(p, &c);
}

static void test_bad_fields(struct pair *p)
{
	struct uzp_register r = valid_register();
	struct uzp_range range = { 0x1000, 0 };
	struct uzp_hello hello = { .flags = 4 };
	struct bad_case c;

	r.addr += 100;
	bad_register(&c, "an unaligned REGISTER", "not page-aligned", &r, make_memfd(1 << 20, 0));
	expect_refused(p, &c);
	r = valid_register();
	memset(r.name, 'x', sizeof(r.name));
	bad_register(&c, "a REGISTER name without NUL", "NUL", &r, make_memfd(1 << 20, 0));
	expect_refused(p, &c);
	r = valid_register();
	r.addr = ~0xfffULL;
	bad_register(&c, "a REGISTER that wraps", "wraps", &r, make_memfd(1 << 20, 0));
	expect_refused(p, &c);
	memset(&c, 0, sizeof(c));
	c.name = "an empty UNREGISTER";
	c.expect = "empty";
	c.err = -EBADMSG;
	c.len = build(c.buf, UZP_UNREGISTER, &range, sizeof(range));
	expect_refused(p, &c);
	c.name = "a HELLO with unknown flags";
	c.expect = "unknown flags";
	c.len = build(c.buf, UZP_HELLO, &hello, sizeof(hello));
	expect_refused(p, &c);
}

static void test_admin_requests(struct pair *p)
{
	static const struct {
		const char *name, *expect;
		struct uzp_admin a;
	} bad[] = {
		{ "an ADMIN of op 0", "unknown op", { .op = 0 } },
		{ "an ADMIN of an unknown op", "unknown op", { .op = UZP_ADMIN_OPS } },
		{ "a RECLAIM without a pid",
		  "needs a pid",
		  { .op = UZP_ADMIN_RECLAIM, .size = 4096 } },
		{ "a COMPACT with a pid", "takes no pid", { .op = UZP_ADMIN_COMPACT, .pid = 1 } },
		{ "a RELOAD with a size",
		  "takes no size",
		  { .op = UZP_ADMIN_RELOAD, .size = 4096 } },
		{ "a WRITEBACK of a size that is not whole pages",
		  "not a non-zero multiple",
		  { .op = UZP_ADMIN_WRITEBACK, .size = 4097 } },
		{ "a SET_BUDGET of size 0",
		  "not a non-zero multiple",
		  { .op = UZP_ADMIN_SET_BUDGET, .pid = 1 } },
		{ "an ADMIN with flags", "unknown flags", { .op = UZP_ADMIN_COMPACT, .flags = 1 } },
		{ "an ADMIN with its reserved field set",
		  "reserved",
		  { .op = UZP_ADMIN_COMPACT, .reserved = 2 } },
	};
	struct uzp_admin good = { .op = UZP_ADMIN_RECLAIM, .pid = 77, .size = 8192 };
	char why[UZD_PROTO_WHY_MAX];
	unsigned char buf[128];
	struct uzd_request req;
	struct bad_case c;
	int memfd = make_memfd(0, 0), err;

	send_raw(p->client, buf, build(buf, UZP_ADMIN, &good, sizeof(good)), NULL, 0);
	err = recv_req(p, &req, why);
	ok(!err && req.h.type == UZP_ADMIN && req.body.admin.pid == 77 &&
		   req.body.admin.size == 8192 && req.fd < 0,
	   "a RECLAIM with a pid and whole pages is accepted with its fields (%d: %s)", err, why);
	send_raw(p->client, buf, build(buf, UZP_CLASSES, NULL, 0), &memfd, 1);
	err = recv_req(p, &req, why);
	ok(!err && req.h.type == UZP_CLASSES && req.fd >= 0,
	   "a CLASSES with a writable memfd is accepted (%d: %s)", err, why);
	if (req.fd >= 0)
		close(req.fd);
	close(memfd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&c, 0, sizeof(c));
		c.name = bad[i].name;
		c.expect = bad[i].expect;
		c.err = -EBADMSG;
		c.len = build(c.buf, UZP_ADMIN, &bad[i].a, sizeof(bad[i].a));
		expect_refused(p, &c);
	}
	memset(&c, 0, sizeof(c));
	c.name = "a CLASSES without a memfd";
	c.expect = "needs a descriptor";
	c.err = -EBADMSG;
	c.len = build(c.buf, UZP_CLASSES, NULL, 0);
	expect_refused(p, &c);
	c.name = "a CLASSES with a sealed memfd";
	c.expect = "CLASSES: the memfd is sealed";
	c.fds[0] = make_memfd(4096, F_SEAL_WRITE);
	c.nfds = 1;
	expect_refused(p, &c);
	c.name = "an ADMIN carrying a descriptor";
	c.expect = "ADMIN carries no descriptor";
	c.len = build(c.buf, UZP_ADMIN, &good, sizeof(good));
	c.fds[0] = make_memfd(4096, 0);
	expect_refused(p, &c);
}

static void test_oversize_and_eof(void)
{
	unsigned char big[UZP_DATAGRAM_MAX + 100];
	char why[UZD_PROTO_WHY_MAX] = "";
	struct uzd_request req;
	struct pair p;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		ok(0, "socketpair: %s", strerror(errno));
		return;
	}
	p.client = sv[0];
	p.daemon = sv[1];
	build(big, UZP_STATS, NULL, 0);
	send_raw(p.client, big, sizeof(big), NULL, 0);
	ok(recv_req(&p, &req, why) == -EBADMSG && strstr(why, "too long"),
	   "a datagram longer than any message is refused (\"%s\")", why);
	close(p.client);
	ok(recv_req(&p, &req, why) == 1, "a closed connection reads as 1");
	close(p.daemon);
}

/*
 * An empty datagram reads as the peer closing (1), and a descriptor sent
 * with it is closed, not left in the daemon (found by a 10-minute fuzz:
 * one leaked per datagram, so a client could use up the daemon's table).
 */
static void test_empty_datagram_with_fd(void)
{
	char why[UZD_PROTO_WHY_MAX] = "";
	struct uzd_request req;
	struct pair p;
	int sv[2], mfd, expect, probe, ret;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		ok(0, "socketpair: %s", strerror(errno));
		return;
	}
	p.client = sv[0];
	p.daemon = sv[1];
	mfd = memfd_create("empty", MFD_CLOEXEC);
	send_raw(p.client, NULL, 0, &mfd, 1);
	close(mfd);
	/* The lowest free descriptor now is where a received one would go. */
	expect = dup(0);
	close(expect);
	ret = recv_req(&p, &req, why);
	probe = dup(0);
	ok(ret == 1 && req.fd < 0 && probe == expect,
	   "an empty datagram with a descriptor reads as closed and leaves no descriptor behind "
	   "(lowest free descriptor %d, expected %d)",
	   probe, expect);
	close(probe);
	close(p.client);
	close(p.daemon);
}

/* Random and mutated datagrams with random descriptors: accepted or refused, never leaked. */
static void test_fuzz(struct pair *p, struct rng *r)
{
	struct uzp_register reg = valid_register();
	unsigned char buf[UZP_DATAGRAM_MAX + 8];
	int before = open_fds(), other = 0, accepted = 0, empty = 0;

	for (int i = 0; i < FUZZ_ROUNDS; i++) {
		size_t len = build(buf, 1 + rng_below(r, UZP_TYPE_COUNT), &reg, sizeof(reg));
		int fds[2] = { -1, -1 }, nfds = (int)rng_below(r, 3), err;
		char why[UZD_PROTO_WHY_MAX];
		struct uzd_request req;

		if (i % 3 == 0)
			len = rng_below(r, sizeof(buf));
		for (size_t k = 0, flips = rng_below(r, 6); k < flips && len; k++)
			buf[rng_below(r, len)] ^= (unsigned char)(1u << rng_below(r, 8));
		if (i % 5 == 0)
			for (size_t k = 0; k < len; k++)
				buf[k] = (unsigned char)rng_next(r);
		for (int k = 0; k < nfds; k++)
			fds[k] = k ? make_uffd() : make_memfd(1 << 20, 0);
		send_raw(p->client, buf, len, fds, nfds);
		for (int k = 0; k < nfds; k++)
			close(fds[k]);
		err = recv_req(p, &req, why);
		if (err == 0)
			accepted++;
		else if (err == 1 && len == 0)
			empty++; /* an empty datagram reads as a close: the daemon drops the client */
		else if (err != -EBADMSG && err != -EPROTO)
			other++;
		if (req.fd >= 0)
			close(req.fd);
	}
	ok(other == 0 && open_fds() == before,
	   "%d random and mutated datagrams are accepted (%d), refused, or read as a close when "
	   "empty (%d); no descriptor leaked (%d open before, %d after, %d odd results)",
	   FUZZ_ROUNDS, accepted, empty, before, open_fds(), other);
}

static void test_replies(struct pair *p)
{
	struct uzp_registered body = { .region_id = 9 };
	unsigned char buf[UZP_DATAGRAM_MAX];
	struct uzp_header h;
	struct uzp_reply r;
	int fds[1], nfds = 0, memfd = make_memfd(4096, 0);
	ssize_t n;

	uzd_proto_reply(p->daemon, 5, 0, &body, sizeof(body), -1, NULL);
	n = uzp_recv(p->client, buf, sizeof(buf), fds, &nfds);
	memcpy(&h, buf, sizeof(h));
	memcpy(&r, buf + sizeof(h), sizeof(r));
	ok(n == (ssize_t)(sizeof(h) + sizeof(r) + sizeof(body)) && h.type == UZP_REPLY &&
		   h.seq == 5 && r.status == 0 && r.body_length == sizeof(body) &&
		   r.message_length == 0 &&
		   ((struct uzp_registered *)(buf + sizeof(h) + sizeof(r)))->region_id == 9,
	   "a success reply carries its seq and body and no message");

	uzd_proto_reply(p->daemon, 6, -EACCES, &body, sizeof(body), -1, "uid %d may not connect",
			1000);
	n = uzp_recv(p->client, buf, sizeof(buf), fds, &nfds);
	memcpy(&r, buf + sizeof(h), sizeof(r));
	ok(r.status == -EACCES && r.body_length == 0 && r.message_length == 24 &&
		   !memcmp(buf + sizeof(h) + sizeof(r), "uid 1000 may not connect", 24),
	   "an error reply drops the body and carries the message");

	uzd_proto_reply(p->daemon, 7, 0, NULL, 0, memfd, NULL);
	n = uzp_recv(p->client, buf, sizeof(buf), fds, &nfds);
	ok(n > 0 && nfds == 1, "a reply can carry a descriptor");
	if (nfds)
		close(fds[0]);
	close(memfd);

	uzd_proto_shutdown(p->daemon, 0, "uzswapd is stopping");
	n = uzp_recv(p->client, buf, sizeof(buf), fds, &nfds);
	memcpy(&h, buf, sizeof(h));
	ok(n == (ssize_t)(sizeof(h) + sizeof(struct uzp_shutdown) + 19) && h.type == UZP_SHUTDOWN,
	   "a shutdown carries its message");
}

int main(void)
{
	uint64_t seed = rng_seed_from_env(0x9a0702);
	struct rng r = { seed };
	struct pair p;
	int sv[2];

	tap_diag("seed 0x%llx (set UZSWAP_TEST_SEED to repeat)", (unsigned long long)seed);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		tap_skip_all("socketpair(SOCK_SEQPACKET): %s", strerror(errno));
	p.client = sv[0];
	p.daemon = sv[1];
	test_valid_requests(&p);
	test_bad_frames(&p);
	test_bad_descriptors(&p);
	test_bad_fields(&p);
	test_admin_requests(&p);
	test_fuzz(&p, &r);
	test_replies(&p);
	close(p.client);
	close(p.daemon);
	test_oversize_and_eof();
	test_empty_datagram_with_fd();
	return tap_done();
}
