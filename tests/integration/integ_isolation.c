/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_isolation.c - one client cannot touch another's
 * memory, and no message a client sends can hurt the daemon.
 *
 * Client A is a libuzswap child that pages all the time over a region 4
 * times its budget, checking every read.  Client B is this process,
 * speaking the protocol itself (include/uzswap_proto.h) on a connection
 * taken through HELLO and SET_UFFD.  B tries A's range:
 *   - UNREGISTER of A's range must be refused: B has no region there;
 *   - REGISTER of A's range with B's own memfd must be refused: the range
 *     is not registered with B's userfaultfd;
 *   - B then maps its own memfd at the same address in its own address
 *     space and registers it with its own userfaultfd: now the REGISTER is
 *     legitimate, and it must land in B's table only, as must B's
 *     UNREGISTER of it; A's region stays as it was.
 * Then FLOOD malformed messages go to the daemon over CONNS connections,
 * each of a random kind (kinds[]): torn or foreign frames, wrong lengths
 * and descriptors, descriptors of the wrong kind, requests out of order,
 * invalid ranges.  Each must get an error REPLY (status < 0, with a
 * message, and the request's seq when its header was intact) or a
 * disconnect, within ANSWER_MS; a connection the daemon closed is opened
 * again.  Afterwards the daemon must still be alive, A must have read
 * only what it wrote all along, and a new libuzswap client must work.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/uffd.h"
#include "include/uzswap.h"
#include "include/uzswap_proto.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET MIB
#define A_PAGES 1024 /* 4 MiB */
#define C_PAGES 1024
#define FLOOD 10000
#define CONNS 4
#define ANSWER_MS 5000
#define SPARE_PAGES 16 /* a range each ready connection registers with its uffd only */
#define DGRAM_MAX 4096
#define WATCHDOG_S 120

/* ---- client A, and the new client C ---- */

struct shared {
	uint64_t seed;
	uint64_t a_addr, a_len;
	int a_setup_err, a_release_err;
	atomic_int a_ready, a_stop;
	atomic_uint_fast64_t a_ops;
	uint64_t a_bad, a_final_bad;
	char a_why[128];
	int c_setup_err, c_evict_err, c_release_err;
	uint64_t c_bad, c_evicted;
};

static struct hd_daemon daemon_;

static void note(uint64_t *count, char *why, size_t len, const char *who, uint64_t p,
		 const char *what)
{
	if (!(*count)++ && !*why)
		snprintf(why, len, "%s: page %" PRIu64 ": %s", who, p, what);
}

static int a_main(void *arg)
{
	struct shared *S = arg;
	struct pat k = { .seed = S->seed, .tag = 10, .kind = PAT_MIXED };
	struct rng g = { .state = S->seed ^ 0xa };
	uint64_t ver[A_PAGES];
	struct uzswap *u;
	char *map, why[80];
	void *p;
	int r;

	r = hd_connect(&daemon_, BUDGET, "A", &u);
	if (r == 0)
		r = uzswap_region_create(u, A_PAGES * PAT_PAGE, "A", &p);
	if (r < 0)
		return hd_setup_failed(&S->a_setup_err, r);
	map = p;
	for (uint64_t i = 0; i < A_PAGES; i++) {
		pat_write(&k, map + i * PAT_PAGE, i, 1);
		ver[i] = 1;
	}
	S->a_addr = (uintptr_t)map;
	S->a_len = A_PAGES * PAT_PAGE;
	atomic_store(&S->a_ready, 1);
	while (!atomic_load(&S->a_stop)) {
		uint64_t i = rng_below(&g, A_PAGES);

		if (rng_below(&g, 2)) {
			ver[i] = (ver[i] + 1) & PAT_VERSION_MAX;
			pat_write(&k, map + i * PAT_PAGE, i, ver[i]);
		} else if (!pat_verify(&k, map + i * PAT_PAGE, i, ver[i], why, sizeof(why))) {
			note(&S->a_bad, S->a_why, sizeof(S->a_why), "read", i, why);
		}
		atomic_fetch_add(&S->a_ops, 1);
	}
	for (uint64_t i = 0; i < A_PAGES; i++)
		if (!pat_verify(&k, map + i * PAT_PAGE, i, ver[i], why, sizeof(why)))
			note(&S->a_final_bad, S->a_why, sizeof(S->a_why), "final", i, why);
	S->a_release_err = uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

static int c_main(void *arg)
{
	struct shared *S = arg;
	struct pat k = { .seed = S->seed, .tag = 11, .kind = PAT_MIXED };
	struct uzswap_stats st = { 0 };
	struct uzswap *u;
	char *map;
	void *p;
	int r;

	r = hd_connect(&daemon_, BUDGET, "C", &u);
	if (r == 0)
		r = uzswap_region_create(u, C_PAGES * PAT_PAGE, "C", &p);
	if (r < 0)
		return hd_setup_failed(&S->c_setup_err, r);
	map = p;
	for (uint64_t i = 0; i < C_PAGES; i++)
		pat_write(&k, map + i * PAT_PAGE, i, 1);
	S->c_evict_err = hd_wait_evicted(u, C_PAGES / 2, 10000, &st);
	S->c_evicted = st.same_pages + st.pool_pages + st.file_pages;
	for (uint64_t i = 0; i < C_PAGES; i++)
		if (!pat_verify(&k, map + i * PAT_PAGE, i, 1, NULL, 0))
			S->c_bad++;
	S->c_release_err = uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

/* ---- a raw protocol connection ---- */

enum cstate {
	C_CLOSED,
	C_FRESH,
	C_HELLO,
	C_READY
};

struct conn {
	int sock;
	enum cstate state;
	uint32_t seq;
	uint32_t client_id;
	int dev_fd; /* /dev/userfaultfd, from HELLO's reply */
	int uffd;   /* our userfaultfd, once READY */
	int memfd;  /* backs spare: mapped, registered with uffd, never REGISTERed */
	char *spare;
};

struct answer {
	enum {
		ANS_REPLY,
		ANS_CLOSED,
		ANS_TIMEOUT,
		ANS_GARBLED,
		ANS_SEND_FAILED
	} kind;
	int32_t status;
	uint32_t seq;
	char message[UZP_MESSAGE_MAX + 1];
	unsigned char body[64];
	size_t body_len;
	int fd;
};

static void conn_close(struct conn *c)
{
	if (c->sock >= 0)
		close(c->sock);
	if (c->dev_fd >= 0)
		close(c->dev_fd);
	if (c->uffd >= 0)
		close(c->uffd);
	if (c->spare)
		munmap(c->spare, SPARE_PAGES * PAT_PAGE);
	if (c->memfd >= 0)
		close(c->memfd);
	*c = (struct conn){ .sock = -1, .dev_fd = -1, .uffd = -1, .memfd = -1 };
}

static int conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	conn_close(c);
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0)
		return -errno;
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (connect(c->sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int r = -errno;

		conn_close(c);
		return r;
	}
	c->state = C_FRESH;
	return 0;
}

/* Send raw bytes and descriptors (any number up to 2): 0 or -errno. */
static int send_raw(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 2)];
	} control;
	struct iovec iov = { (void *)buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

/* Wait for the answer to what was just sent. */
static void receive(struct conn *c, struct answer *a)
{
	unsigned char buf[DGRAM_MAX] __attribute__((aligned(8)));
	struct pollfd p = { .fd = c->sock, .events = POLLIN };
	struct uzp_header h;
	struct uzp_reply r;
	int fds[UZP_FDS_MAX], nfds = 0;
	ssize_t n;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	if (poll(&p, 1, ANSWER_MS) == 0) {
		a->kind = ANS_TIMEOUT;
		return;
	}
	n = uzp_recv(c->sock, buf, sizeof(buf), fds, &nfds);
	if (n == 0 || n == -ECONNRESET || n == -EPIPE) {
		a->kind = ANS_CLOSED;
		return;
	}
	a->kind = ANS_GARBLED;
	if (n < (ssize_t)(sizeof(h) + sizeof(r)))
		goto out;
	memcpy(&h, buf, sizeof(h));
	memcpy(&r, buf + sizeof(h), sizeof(r));
	if (h.magic != UZP_MAGIC || h.version != UZP_VERSION || h.type != UZP_REPLY ||
	    h.length != (size_t)n - sizeof(h) ||
	    h.length != sizeof(r) + r.body_length + r.message_length ||
	    r.message_length > UZP_MESSAGE_MAX || r.body_length > sizeof(a->body))
		goto out;
	a->kind = ANS_REPLY;
	a->status = r.status;
	a->seq = h.seq;
	a->body_len = r.body_length;
	memcpy(a->body, buf + sizeof(h) + sizeof(r), r.body_length);
	memcpy(a->message, buf + sizeof(h) + sizeof(r) + r.body_length, r.message_length);
	a->message[r.message_length] = 0;
	if (nfds)
		a->fd = fds[0], nfds = 0;
out:
	while (nfds)
		close(fds[--nfds]);
}

/* A well-formed request; *seq gets its seq. */
static int request(struct conn *c, uint16_t type, const void *body, size_t len, int fd,
		   struct answer *a)
{
	unsigned char buf[DGRAM_MAX];
	struct uzp_header h = { UZP_MAGIC, UZP_VERSION, type, (uint32_t)len, ++c->seq };
	int r;

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), body, len);
	r = send_raw(c->sock, buf, sizeof(h) + len, &fd, fd >= 0 ? 1 : 0);
	if (r < 0) {
		memset(a, 0, sizeof(*a));
		a->fd = -1;
		a->kind = ANS_SEND_FAILED;
		a->status = r;
		return r;
	}
	receive(c, a);
	return 0;
}

static const char *answer_str(const struct answer *a, char *buf, size_t len)
{
	switch (a->kind) {
	case ANS_REPLY:
		snprintf(buf, len, "reply %d (%s) \"%s\"", a->status, strerror(-a->status),
			 a->message);
		break;
	case ANS_CLOSED:
		snprintf(buf, len, "the daemon closed the connection");
		break;
	case ANS_TIMEOUT:
		snprintf(buf, len, "no answer in %d ms", ANSWER_MS);
		break;
	case ANS_GARBLED:
		snprintf(buf, len, "a garbled answer");
		break;
	case ANS_SEND_FAILED:
		snprintf(buf, len, "send failed: %s", strerror(-a->status));
		break;
	}
	return buf;
}

static int conn_hello(struct conn *c)
{
	struct uzp_hello h = { .pid = (uint32_t)getpid(), .max_resident = BUDGET };
	struct uzp_hello_ok ok;
	struct answer a;

	snprintf(h.comm, sizeof(h.comm), "raw");
	request(c, UZP_HELLO, &h, sizeof(h), -1, &a);
	if (a.kind != ANS_REPLY || a.status != 0 || a.fd < 0 || a.body_len != sizeof(ok)) {
		char s[400];

		tap_diag("raw HELLO: %s", answer_str(&a, s, sizeof(s)));
		if (a.fd >= 0)
			close(a.fd);
		return -EPROTO;
	}
	memcpy(&ok, a.body, sizeof(ok));
	c->client_id = ok.client_id;
	c->dev_fd = a.fd;
	c->state = C_HELLO;
	return 0;
}

static int conn_ready(struct conn *c)
{
	char why[256] = "";
	struct answer a;
	void *p;

	c->uffd = uzs_uffd_create(c->dev_fd, why, sizeof(why));
	if (c->uffd < 0) {
		tap_diag("raw: userfaultfd: %s", why);
		return c->uffd;
	}
	request(c, UZP_SET_UFFD, NULL, 0, c->uffd, &a);
	if (a.kind != ANS_REPLY || a.status != 0) {
		char s[400];

		tap_diag("raw SET_UFFD: %s", answer_str(&a, s, sizeof(s)));
		return -EPROTO;
	}
	c->state = C_READY;
	c->memfd = memfd_create("spare", MFD_CLOEXEC);
	if (c->memfd < 0 || ftruncate(c->memfd, SPARE_PAGES * PAT_PAGE) < 0)
		return -errno;
	p = mmap(NULL, SPARE_PAGES * PAT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
	if (p == MAP_FAILED)
		return -errno;
	c->spare = p;
	return uzs_uffd_register(c->uffd, (uintptr_t)p, SPARE_PAGES * PAT_PAGE,
				 UZP_UFFD_REGISTER_MODES, NULL);
}

/* Bring @c to @want, opening it again when it is past that state or closed. */
static int conn_reach(struct conn *c, enum cstate want, const char *path)
{
	int r = 0;

	if (c->state == C_CLOSED || c->state > want)
		r = conn_open(c, path);
	if (!r && want >= C_HELLO && c->state == C_FRESH)
		r = conn_hello(c);
	if (!r && want >= C_READY && c->state == C_HELLO)
		r = conn_ready(c);
	return r;
}

/* Has the daemon closed @c?  (A reply may have been its last word.) */
static bool conn_hung_up(const struct conn *c)
{
	struct pollfd p = { .fd = c->sock, .events = POLLIN | POLLRDHUP };

	return c->sock < 0 || (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)));
}

/* ---- B against A ---- */

static int memfd_of(size_t len)
{
	int fd = memfd_create("B", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)len) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static struct uzp_register reg_body(uint64_t addr, uint64_t len, const char *name)
{
	struct uzp_register r = { .addr = addr, .length = len };

	snprintf(r.name, sizeof(r.name), "%s", name);
	return r;
}

/* Length of region @addr of the client selected by @who ("pid=N", "id=N"); 0 if none. */
static uint64_t region_len(struct hd_daemon *d, const char *who, uint64_t addr)
{
	char path[160];
	uint64_t len = 0;
	char *json = hd_status_json(d);

	snprintf(path, sizeof(path), "clients[%s].regions[addr=%" PRIu64 "].length", who, addr);
	if (json && jp_u64(json, path, &len) < 0)
		len = 0;
	free(json);
	return len;
}

static void b_against_a(struct hd_daemon *d, struct shared *S, pid_t a_pid)
{
	struct pat k = { .seed = S->seed, .tag = 12, .kind = PAT_REAL };
	struct conn B = { .sock = -1, .dev_fd = -1, .uffd = -1, .memfd = -1 };
	struct uzp_range range = { S->a_addr, S->a_len };
	struct uzp_register reg = reg_body(S->a_addr, S->a_len, "not yours");
	char a_who[32], b_who[32], s[400];
	uint64_t bad = 0;
	struct answer ans;
	void *map;
	int fd;

	snprintf(a_who, sizeof(a_who), "pid=%d", (int)a_pid);
	if (conn_reach(&B, C_READY, d->socket) < 0) {
		ok(false, "client B connects with raw messages (HELLO, SET_UFFD)");
		conn_close(&B);
		return;
	}
	snprintf(b_who, sizeof(b_who), "id=%" PRIu32, B.client_id);

	request(&B, UZP_UNREGISTER, &range, sizeof(range), -1, &ans);
	ok(ans.kind == ANS_REPLY && ans.status < 0 && region_len(d, a_who, S->a_addr) == S->a_len,
	   "B's UNREGISTER of A's range is refused and A's region stays (saw %s)",
	   answer_str(&ans, s, sizeof(s)));

	fd = memfd_of(S->a_len);
	request(&B, UZP_REGISTER, &reg, sizeof(reg), fd, &ans);
	close(fd);
	ok(ans.kind == ANS_REPLY && ans.status < 0 && region_len(d, b_who, S->a_addr) == 0,
	   "B's REGISTER of A's range, not registered with B's userfaultfd, is refused (saw %s)",
	   answer_str(&ans, s, sizeof(s)));

	/* The same numbers, now naming B's own memory. */
	fd = memfd_of(S->a_len);
	map = mmap((void *)(uintptr_t)S->a_addr, S->a_len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	if (map != (void *)(uintptr_t)S->a_addr) {
		tap_skip("A's address range is taken in this process (%s): B cannot map its own "
			 "memory there",
			 map == MAP_FAILED ? strerror(errno) : "mapped elsewhere");
		if (map != MAP_FAILED)
			munmap(map, S->a_len);
		close(fd);
		conn_close(&B);
		return;
	}
	uzs_uffd_register(B.uffd, S->a_addr, S->a_len, UZP_UFFD_REGISTER_MODES, NULL);
	request(&B, UZP_REGISTER, &reg, sizeof(reg), fd, &ans);
	close(fd);
	for (uint64_t i = 0; ans.kind == ANS_REPLY && !ans.status && i < 16; i++)
		pat_write(&k, (char *)map + i * PAT_PAGE, i, 1);
	for (uint64_t i = 0; ans.kind == ANS_REPLY && !ans.status && i < 16; i++)
		bad += !pat_verify(&k, (char *)map + i * PAT_PAGE, i, 1, NULL, 0);
	ok(ans.kind == ANS_REPLY && ans.status == 0 && bad == 0 &&
		   region_len(d, b_who, S->a_addr) == S->a_len &&
		   region_len(d, a_who, S->a_addr) == S->a_len,
	   "B registering its own memory at A's addresses gets a region in its own table only, "
	   "and it works (saw %s; %" PRIu64 " bad pages)",
	   answer_str(&ans, s, sizeof(s)), bad);

	request(&B, UZP_UNREGISTER, &range, sizeof(range), -1, &ans);
	ok(ans.kind == ANS_REPLY && ans.status == 0 && region_len(d, b_who, S->a_addr) == 0 &&
		   region_len(d, a_who, S->a_addr) == S->a_len,
	   "B's UNREGISTER of that range removes its own region and leaves A's (saw %s)",
	   answer_str(&ans, s, sizeof(s)));
	uzs_uffd_unregister(B.uffd, S->a_addr, S->a_len);
	munmap(map, S->a_len);
	conn_close(&B);
}

/* ---- the flood ---- */

enum kind {
	K_TRUNCATED,	   /* fewer bytes than a header */
	K_BAD_MAGIC,	   /* not our magic */
	K_BAD_VERSION,	   /* another protocol version */
	K_UNKNOWN_TYPE,	   /* a type no one defined */
	K_NOT_A_REQUEST,   /* REPLY or SHUTDOWN, sent to the daemon */
	K_LENGTH_MISMATCH, /* the length field and the datagram disagree */
	K_BODY_SIZE,	   /* a body of the wrong size for its type */
	K_OVERSIZED,	   /* a datagram larger than any message */
	K_UNEXPECTED_FD,   /* a descriptor on a message that takes none */
	K_MISSING_FD,	   /* SET_UFFD, REGISTER or STATUS without one */
	K_TWO_FDS,	   /* SET_UFFD with two */
	K_BAD_UFFD,	   /* SET_UFFD with something else than a userfaultfd */
	K_BAD_MEMFD,	   /* REGISTER with something else than a fit memfd */
	K_BAD_STATUS_FD,   /* STATUS with something else than a writable memfd */
	K_BEFORE_HELLO,	   /* SET_UFFD, REGISTER, UNREGISTER, STATS first */
	K_BEFORE_UFFD,	   /* HELLO again, REGISTER, UNREGISTER before SET_UFFD */
	K_REPEATED,	   /* HELLO or SET_UFFD again on a ready connection */
	K_BAD_HELLO,	   /* HELLO with unknown flags */
	K_BAD_REGISTER,	   /* REGISTER of an invalid range, offset or name */
	K_BAD_UNREGISTER,  /* UNREGISTER of an invalid range, or of no region */
	K_COUNT
};

struct kind_def {
	const char *name;
	enum cstate need; /* C_CLOSED: any state */
	bool header_ok;	  /* the daemon can read the seq: the reply must carry it */
};

static const struct kind_def kinds[K_COUNT] = {
	[K_TRUNCATED] = { "truncated header", C_CLOSED, false },
	[K_BAD_MAGIC] = { "bad magic", C_CLOSED, false },
	[K_BAD_VERSION] = { "bad version", C_CLOSED, true },
	[K_UNKNOWN_TYPE] = { "unknown type", C_CLOSED, true },
	[K_NOT_A_REQUEST] = { "REPLY or SHUTDOWN sent to the daemon", C_CLOSED, true },
	[K_LENGTH_MISMATCH] = { "length field disagrees with the datagram", C_CLOSED, true },
	[K_BODY_SIZE] = { "wrong body size for the type", C_CLOSED, true },
	[K_OVERSIZED] = { "oversized datagram", C_CLOSED, false },
	[K_UNEXPECTED_FD] = { "descriptor on STATS", C_READY, true },
	[K_MISSING_FD] = { "missing descriptor", C_HELLO, true },
	[K_TWO_FDS] = { "two descriptors", C_HELLO, false },
	[K_BAD_UFFD] = { "SET_UFFD with a non-userfaultfd", C_HELLO, true },
	[K_BAD_MEMFD] = { "REGISTER with an unfit descriptor", C_READY, true },
	[K_BAD_STATUS_FD] = { "STATUS with an unfit descriptor", C_CLOSED, true },
	[K_BEFORE_HELLO] = { "request before HELLO", C_FRESH, true },
	[K_BEFORE_UFFD] = { "request before SET_UFFD", C_HELLO, true },
	[K_REPEATED] = { "HELLO or SET_UFFD repeated", C_READY, true },
	[K_BAD_HELLO] = { "HELLO with unknown flags", C_FRESH, true },
	[K_BAD_REGISTER] = { "REGISTER of a bad range", C_READY, true },
	[K_BAD_UNREGISTER] = { "UNREGISTER of a bad range", C_READY, true },
};

struct dgram {
	unsigned char buf[DGRAM_MAX];
	size_t len;
	int fds[2], nfds;
	uint32_t seq;
};

struct tally {
	uint64_t sent, errors, closed;
	uint64_t accepted, unanswered, garbled, wrong_seq, no_message, send_failed;
	char first_bad[320];
};

static char *unregistered_area; /* mapped, never registered anywhere */
static char tmpfile_path[HD_PATH_MAX];

static void put_header(struct dgram *m, uint32_t magic, uint16_t version, uint16_t type,
		       uint32_t length, struct conn *c)
{
	struct uzp_header h = { magic, version, type, length, ++c->seq };

	m->seq = h.seq;
	memcpy(m->buf, &h, sizeof(h));
	m->len = sizeof(h) + length;
}

static void put_body(struct dgram *m, const void *body, size_t len)
{
	memcpy(m->buf + sizeof(struct uzp_header), body, len);
}

static void add_fd(struct dgram *m, int fd)
{
	m->fds[m->nfds++] = fd;
}

static int pipe_fd(void)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	close(p[1]);
	return p[0];
}

/* A descriptor that is anything but what the message needs. */
static int wrong_fd(struct rng *g)
{
	int fd = -1, sv[2];

	switch (rng_below(g, 5)) {
	case 0:
		fd = pipe_fd();
		break;
	case 1:
		fd = eventfd(0, EFD_CLOEXEC);
		break;
	case 2:
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		break;
	case 3:
		fd = open(tmpfile_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		break;
	default:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
			close(sv[1]);
			fd = sv[0];
		}
	}
	return fd;
}

static void build_bad_register(struct dgram *m, struct conn *c, struct rng *g)
{
	uint64_t spare = (uintptr_t)c->spare, len = SPARE_PAGES * PAT_PAGE;
	struct uzp_register r = reg_body(spare, len, "bad");
	int fd = memfd_of(len);

	switch (rng_below(g, 8)) {
	case 0:
		r.addr += 1;
		break;
	case 1:
		r.length = 0;
		break;
	case 2:
		r.length = PAT_PAGE + 1;
		break;
	case 3:
		r.addr = UINT64_MAX & ~(uint64_t)(PAT_PAGE - 1);
		r.length = 2 * PAT_PAGE;
		break;
	case 4:
		r.memfd_offset = 1;
		break;
	case 5:
		r.addr = (uintptr_t)unregistered_area;
		break;
	case 6:
		r.addr = UINT64_C(0xffff888000000000);
		break;
	default:
		memset(r.name, 'x', sizeof(r.name));
	}
	put_header(m, UZP_MAGIC, UZP_VERSION, UZP_REGISTER, sizeof(r), c);
	put_body(m, &r, sizeof(r));
	add_fd(m, fd);
}

static void build_bad_memfd(struct dgram *m, struct conn *c, struct rng *g)
{
	uint64_t len = SPARE_PAGES * PAT_PAGE;
	struct uzp_register r = reg_body((uintptr_t)c->spare, len, "bad fd");
	int fd;

	switch (rng_below(g, 3)) {
	case 0: /* a memfd too small for the range */
		fd = memfd_of(PAT_PAGE);
		break;
	case 1: /* a memfd sealed against writes: eviction could not punch it */
		fd = memfd_create("sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fd >= 0 &&
		    (ftruncate(fd, (off_t)len) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0)) {
			close(fd);
			fd = -1;
		}
		break;
	default:
		fd = wrong_fd(g);
	}
	put_header(m, UZP_MAGIC, UZP_VERSION, UZP_REGISTER, sizeof(r), c);
	put_body(m, &r, sizeof(r));
	add_fd(m, fd);
}

static void build_out_of_order(struct dgram *m, struct conn *c, struct rng *g, enum kind k)
{
	uint64_t len = SPARE_PAGES * PAT_PAGE;
	struct uzp_hello h = { .pid = (uint32_t)getpid() };
	struct uzp_register r = reg_body((uintptr_t)unregistered_area, len, "early");
	struct uzp_range range = { (uintptr_t)unregistered_area, len };
	unsigned int which = (unsigned int)rng_below(g, k == K_BEFORE_HELLO ? 4 : 3);

	if (k == K_BEFORE_HELLO && which == 0) {
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_SET_UFFD, 0, c);
		add_fd(m, uzs_uffd_create(-1, NULL, 0));
	} else if (k == K_BEFORE_HELLO && which == 1) {
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_STATS, 0, c);
	} else if (k == K_BEFORE_UFFD && which == 0) {
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, sizeof(h), c);
		put_body(m, &h, sizeof(h));
	} else if (k == K_REPEATED) {
		if (which) {
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, sizeof(h), c);
			put_body(m, &h, sizeof(h));
		} else {
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_SET_UFFD, 0, c);
			add_fd(m, uzs_uffd_create(c->dev_fd, NULL, 0));
		}
	} else if (which == 2) {
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_UNREGISTER, sizeof(range), c);
		put_body(m, &range, sizeof(range));
	} else {
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_REGISTER, sizeof(r), c);
		put_body(m, &r, sizeof(r));
		add_fd(m, memfd_of(len));
	}
}

static void build_frame_error(struct dgram *m, struct conn *c, struct rng *g, enum kind k)
{
	static const uint16_t unknown[] = { 0, UZP_TYPE_COUNT, 77, 0xffff };
	struct uzp_hello h = { .pid = (uint32_t)getpid() };
	unsigned char junk[DGRAM_MAX];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)rng_next(g);
	switch (k) {
	case K_TRUNCATED:
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, 0, c);
		m->len = 1 + rng_below(g, sizeof(struct uzp_header) - 1);
		break;
	case K_BAD_MAGIC:
		put_header(m, UZP_MAGIC ^ (1u << rng_below(g, 32)), UZP_VERSION, UZP_HELLO,
			   sizeof(h), c);
		put_body(m, &h, sizeof(h));
		break;
	case K_BAD_VERSION:
		put_header(m, UZP_MAGIC, (uint16_t)(UZP_VERSION + 1 + rng_below(g, 100)), UZP_HELLO,
			   sizeof(h), c);
		put_body(m, &h, sizeof(h));
		break;
	case K_UNKNOWN_TYPE:
		put_header(m, UZP_MAGIC, UZP_VERSION, unknown[rng_below(g, 4)], 0, c);
		break;
	case K_NOT_A_REQUEST:
		if (rng_below(g, 2))
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_REPLY, sizeof(struct uzp_reply),
				   c);
		else
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_SHUTDOWN,
				   sizeof(struct uzp_shutdown), c);
		put_body(m, junk, 8);
		break;
	case K_LENGTH_MISMATCH:
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, sizeof(h), c);
		put_body(m, junk, 64);
		m->len = sizeof(struct uzp_header) + (rng_below(g, 2) ? 10 : 40);
		break;
	case K_BODY_SIZE:
		switch (rng_below(g, 3)) {
		case 0:
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_STATS, 8, c);
			break;
		case 1:
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, sizeof(h) - 1, c);
			break;
		default:
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_UNREGISTER,
				   sizeof(struct uzp_range) + 8, c);
		}
		put_body(m, junk, 64);
		break;
	default: /* K_OVERSIZED */
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, DGRAM_MAX - 16, c);
		put_body(m, junk, DGRAM_MAX - 16);
	}
}

static void build(struct dgram *m, struct conn *c, struct rng *g, enum kind k)
{
	memset(m, 0, offsetof(struct dgram, fds));
	m->nfds = 0;
	switch (k) {
	case K_UNEXPECTED_FD:
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_STATS, 0, c);
		add_fd(m, pipe_fd());
		break;
	case K_MISSING_FD:
		if (rng_below(g, 2)) {
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_SET_UFFD, 0, c);
		} else {
			put_header(m, UZP_MAGIC, UZP_VERSION, UZP_STATUS, 0, c);
		}
		break;
	case K_TWO_FDS:
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_SET_UFFD, 0, c);
		add_fd(m, uzs_uffd_create(c->dev_fd, NULL, 0));
		add_fd(m, pipe_fd());
		break;
	case K_BAD_UFFD:
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_SET_UFFD, 0, c);
		add_fd(m, rng_below(g, 4) ? wrong_fd(g) : memfd_of(PAT_PAGE));
		break;
	case K_BAD_MEMFD:
		build_bad_memfd(m, c, g);
		break;
	case K_BAD_STATUS_FD:
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_STATUS, 0, c);
		add_fd(m, rng_below(g, 2) ? pipe_fd() : open("/dev/null", O_RDONLY | O_CLOEXEC));
		break;
	case K_BEFORE_HELLO:
	case K_BEFORE_UFFD:
	case K_REPEATED:
		build_out_of_order(m, c, g, k);
		break;
	case K_BAD_HELLO: {
		struct uzp_hello h = { .pid = (uint32_t)getpid(), .flags = 1u << rng_below(g, 32) };

		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_HELLO, sizeof(h), c);
		put_body(m, &h, sizeof(h));
		break;
	}
	case K_BAD_REGISTER:
		build_bad_register(m, c, g);
		break;
	case K_BAD_UNREGISTER: {
		struct uzp_range r = { (uintptr_t)c->spare, SPARE_PAGES * PAT_PAGE };

		if (rng_below(g, 3) == 0)
			r.addr += 8;
		else if (rng_below(g, 2))
			r.length = 0;
		put_header(m, UZP_MAGIC, UZP_VERSION, UZP_UNREGISTER, sizeof(r), c);
		put_body(m, &r, sizeof(r));
		break;
	}
	default:
		build_frame_error(m, c, g, k);
	}
	/* A descriptor that could not be made is not sent. */
	for (int i = 0; i < m->nfds; i++) {
		if (m->fds[i] < 0) {
			m->fds[i--] = m->fds[--m->nfds];
		}
	}
}

static void bad_answer(struct tally *t, enum kind k, const struct answer *a, const char *what)
{
	char s[300];

	if (!t->first_bad[0])
		snprintf(t->first_bad, sizeof(t->first_bad), "%s: %s (%s)", kinds[k].name, what,
			 answer_str(a, s, sizeof(s)));
}

static void judge(struct tally *t, enum kind k, const struct dgram *m, const struct answer *a)
{
	switch (a->kind) {
	case ANS_CLOSED:
		t->closed++;
		return;
	case ANS_TIMEOUT:
		t->unanswered++;
		return bad_answer(t, k, a, "no answer");
	case ANS_GARBLED:
		t->garbled++;
		return bad_answer(t, k, a, "garbled answer");
	case ANS_SEND_FAILED:
		t->send_failed++;
		return bad_answer(t, k, a, "could not send");
	case ANS_REPLY:
		break;
	}
	if (a->status >= 0) {
		t->accepted++;
		return bad_answer(t, k, a, "accepted");
	}
	t->errors++;
	if (kinds[k].header_ok && a->seq != m->seq) {
		t->wrong_seq++;
		bad_answer(t, k, a, "reply with another seq");
	} else if (!a->message[0]) {
		t->no_message++;
		bad_answer(t, k, a, "error reply without a message");
	}
}

/* The state a message of kind @k needs: "any" is the one @c is in, or fresh. */
static enum cstate want_state(const struct conn *c, enum kind k)
{
	if (kinds[k].need != C_CLOSED)
		return kinds[k].need;
	return c->state == C_CLOSED ? C_FRESH : c->state;
}

static void send_one(struct conn *c, const char *path, struct rng *g, enum kind k, struct tally *t)
{
	struct answer a = { .fd = -1 };
	struct dgram m;
	int r = -EPIPE;

	for (int attempt = 0; attempt < 2 && (r == -EPIPE || r == -ECONNRESET); attempt++) {
		if (conn_hung_up(c))
			c->state = C_CLOSED;
		if (conn_reach(c, want_state(c, k), path) < 0) {
			r = -EIO;
			break;
		}
		build(&m, c, g, k);
		r = send_raw(c->sock, m.buf, m.len, m.fds, m.nfds);
		for (int i = 0; i < m.nfds; i++)
			close(m.fds[i]);
		if (r == -EPIPE || r == -ECONNRESET)
			c->state = C_CLOSED;
	}
	t->sent++;
	if (r < 0) {
		a.kind = ANS_SEND_FAILED;
		a.status = r;
	} else {
		receive(c, &a);
	}
	if (a.fd >= 0)
		close(a.fd);
	judge(t, k, &m, &a);
	if (a.kind == ANS_CLOSED)
		c->state = C_CLOSED;
}

static void flood(struct hd_daemon *d, struct shared *S)
{
	struct conn conns[CONNS];
	struct tally t[K_COUNT] = { 0 }, sum = { 0 };
	struct rng g = { .state = S->seed ^ 0xf100d };
	uint64_t start = hd_now_ms();
	char first[320] = "";

	for (int i = 0; i < CONNS; i++) {
		conns[i] = (struct conn){ .sock = -1, .dev_fd = -1, .uffd = -1, .memfd = -1 };
	}
	for (int n = 0; n < FLOOD && hd_alive(d); n++) {
		unsigned int ci = (unsigned int)rng_below(&g, CONNS);
		enum kind k = (enum kind)rng_below(&g, K_COUNT);

		/* Connection 0 sends only what any state takes: it lives until the daemon drops it. */
		while (ci == 0 && kinds[k].need != C_CLOSED)
			k = (enum kind)rng_below(&g, K_COUNT);
		send_one(&conns[ci], d->socket, &g, k, &t[k]);
	}
	for (int i = 0; i < CONNS; i++)
		conn_close(&conns[i]);
	for (int k = 0; k < K_COUNT; k++) {
		sum.sent += t[k].sent;
		sum.errors += t[k].errors;
		sum.closed += t[k].closed;
		sum.accepted += t[k].accepted;
		sum.unanswered += t[k].unanswered;
		sum.garbled += t[k].garbled;
		sum.wrong_seq += t[k].wrong_seq;
		sum.no_message += t[k].no_message;
		sum.send_failed += t[k].send_failed;
		if (!first[0] && t[k].first_bad[0])
			snprintf(first, sizeof(first), "%s", t[k].first_bad);
		tap_diag("  %-42s %5" PRIu64 " sent: %5" PRIu64 " error replies, %4" PRIu64
			 " disconnects, %" PRIu64 " wrong answers",
			 kinds[k].name, t[k].sent, t[k].errors, t[k].closed,
			 t[k].accepted + t[k].unanswered + t[k].garbled + t[k].wrong_seq +
				 t[k].no_message + t[k].send_failed);
	}
	ok(sum.sent == FLOOD && sum.errors + sum.closed == FLOOD && !sum.wrong_seq &&
		   !sum.no_message,
	   "%d malformed messages each get an error reply or a disconnect (in %" PRIu64
	   " ms: %" PRIu64 " error replies, %" PRIu64 " disconnects; wrong: %" PRIu64
	   " accepted, %" PRIu64 " unanswered, %" PRIu64 " garbled, %" PRIu64 " with another seq, "
	   "%" PRIu64 " without a message, %" PRIu64 " unsendable%s%s)",
	   FLOOD, hd_now_ms() - start, sum.errors, sum.closed, sum.accepted, sum.unanswered,
	   sum.garbled, sum.wrong_seq, sum.no_message, sum.send_failed, first[0] ? "; first: " : "",
	   first);
}

/* ---- main ---- */

static void after_flood(struct hd_daemon *d, struct shared *S, pid_t a)
{
	char how[96], path[64];
	uint64_t perr = 0, dropped = 0, accepted = 0;
	char *json;
	int st = 0, r;
	pid_t c;

	ok(hd_alive(d), "after the flood the daemon is alive");
	json = hd_status_json(d);
	if (json) {
		jp_u64(json, "daemon.protocol_errors", &perr);
		jp_u64(json, "daemon.clients_dropped", &dropped);
		jp_u64(json, "daemon.clients_accepted", &accepted);
		free(json);
	}
	tap_diag("daemon: %" PRIu64 " protocol errors, %" PRIu64 " clients accepted, %" PRIu64
		 " dropped for protocol errors",
		 perr, accepted, dropped);
	snprintf(path, sizeof(path), "pid=%d", (int)a);
	ok(region_len(d, path, S->a_addr) == S->a_len,
	   "after the flood A's region is still there, whole (%" PRIu64 " bytes)", S->a_len);

	atomic_store(&S->a_stop, 1);
	r = hd_wait(a, 30000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->a_release_err,
	   "A ran through it all and released its region (saw %s; release: %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), strerror(-S->a_release_err));
	ok(S->a_bad == 0 && S->a_final_bad == 0 && S->a_ops > 0,
	   "A read only what it wrote, all along (expected 0 bad reads, saw %" PRIu64 " in %" PRIu64
	   " operations and %" PRIu64 " in its final check%s%s)",
	   S->a_bad, (uint64_t)S->a_ops, S->a_final_bad, S->a_why[0] ? "; first: " : "", S->a_why);

	c = hd_spawn(c_main, S);
	r = c < 0 ? (int)c : hd_wait(c, 30000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->c_setup_err && !S->c_evict_err &&
		   !S->c_bad && !S->c_release_err,
	   "after the flood a new libuzswap client works: %d pages written, %" PRIu64
	   " evicted, read back intact (saw %s; setup %s, eviction %s, %" PRIu64
	   " bad pages, release %s)",
	   C_PAGES, S->c_evicted, r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)),
	   strerror(-S->c_setup_err), strerror(-S->c_evict_err), S->c_bad,
	   strerror(-S->c_release_err));
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "16M" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct hd_daemon *d = &daemon_;
	struct shared *S;
	uint64_t start;
	pid_t a;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0x150a7e));
	tap_diag("seed %#" PRIx64 " (UZSWAP_TEST_SEED)", S->seed);
	unregistered_area = mmap(NULL, SPARE_PAGES * PAT_PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (unregistered_area == MAP_FAILED)
		tap_skip_all("mmap: %s", strerror(errno));
	if (!ok(hd_start(d, opts) == 0, "the daemon starts"))
		return tap_done();
	hd_path(d, "not-a-memfd", tmpfile_path, sizeof(tmpfile_path));
	a = hd_spawn(a_main, S);
	start = hd_now_ms();
	while (a > 0 && !atomic_load(&S->a_ready) && !hd_ended(a) && hd_now_ms() - start < 10000)
		hd_sleep_ms(2);
	if (!ok(a > 0 && atomic_load(&S->a_ready),
		"client A creates a region and fills it (setup: %s)", strerror(-S->a_setup_err))) {
		hd_stop_ok(d);
		return tap_done();
	}
	b_against_a(d, S, a);
	flood(d, S);
	after_flood(d, S, a);
	hd_stop_ok(d);
	return tap_done();
}
