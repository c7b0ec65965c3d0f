/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_quota.c - quotas and the group allow-list refuse
 * what they should, with their message, and change nothing else.
 *
 * One daemon with small quotas (every one for every uid, root's too):
 *   allow_groups  allow_uids names root alone, allow_groups gid 65534: a
 *                 child of uid 65533 is let in by its primary group, and by
 *                 a supplementary one; without either it is refused
 *   regions       client_max_regions, client_max_managed, then, with a
 *                 second client of the same uid, uid_max_regions and
 *                 uid_max_managed: each over-quota region is refused with
 *                 EDQUOT naming its quota, and the regions already there
 *                 keep their data (written before, read back after); a
 *                 client refused 100 times keeps its connection (a
 *                 refusal is no protocol error)
 *   clients       uid_max_clients: one client more is refused at HELLO
 *   flood         a child of uid 65533 opens 40 connections and sends
 *                 nothing: uid_max_connections of them stay open, every
 *                 other one is told EDQUOT by a SHUTDOWN and closed at
 *                 once; meanwhile root's established client faults its
 *                 pages back in, a new root client connects, and status
 *                 answers
 *   silent        a connection that sends nothing is closed after 10 s
 * Then a second daemon holds two clients of one uid, each within its own
 * budget, to uid_max_resident together (down to client_min_resident each
 * at most, as for max_resident); and a third, with max_clients 1, has its
 * connection table filled by another uid: every connection past it is
 * told EUSERS, root's past its reserve too.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "include/uzswap_proto.h"
#include "tests/integration/harness.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define WATCHDOG_S 120
#define OTHER_UID 65533
#define ALLOWED_GID 65534
#define OTHER_GID 65533
#define FLOOD 40
#define MAX_CONNECTIONS 8
#define HOLD_PAGES 256 /* root's established client: 1 MiB, budget 256 KiB */
/* With max_clients 1: the table's connections (daemon/server.c), and root's reserve beyond. */
#define TABLE_SIZE 17
#define TABLE_ROOT_RESERVE 8
#define ROOT_TRIES (TABLE_ROOT_RESERVE + 3) /* past the reserve and any slot the flood left */

static struct hd_daemon daemon_;
static uint64_t seed;

/* ---- allow_groups: a child connects with given credentials ---- */

struct cred_try {
	gid_t gid;
	gid_t extra; /* a supplementary group, or 0 for none */
	int err;     /* uzswap_connect()'s */
	char error[256];
};

static int try_connect(void *arg)
{
	struct cred_try *t = arg;
	struct uzswap_options opt = { .name = "groups",
				      .error = t->error,
				      .error_len = sizeof(t->error) };
	gid_t extra[1] = { t->extra };
	struct uzswap *u;

	if (setgroups(t->extra ? 1 : 0, extra) < 0 || setgid(t->gid) < 0 || setuid(OTHER_UID) < 0) {
		t->err = -errno;
		snprintf(t->error, sizeof(t->error), "dropping privileges: %s", strerror(errno));
		return 1;
	}
	t->err = uzswap_connect(daemon_.socket, &opt, &u);
	if (t->err == 0)
		uzswap_close(u);
	return 0;
}

static int connect_as(gid_t gid, gid_t extra, char *error, size_t len)
{
	struct cred_try *t = hd_shared(sizeof(*t));
	int st = 0, err;
	pid_t pid;

	if (!t)
		return -ENOMEM;
	t->gid = gid;
	t->extra = extra;
	t->err = -EIO;
	pid = hd_spawn(try_connect, t);
	if (pid < 0 || hd_wait(pid, 20000, &st) < 0)
		return -ECHILD;
	err = t->err;
	snprintf(error, len, "%s", t->error);
	return err;
}

static void test_allow_groups(void)
{
	char e[256];
	int err;

	err = connect_as(ALLOWED_GID, 0, e, sizeof(e));
	ok(err == 0, "uid %d of primary group %d (in allow_groups) connects (%s%s%s)", OTHER_UID,
	   ALLOWED_GID, strerror(-err), *e ? ": " : "", e);
	err = connect_as(OTHER_GID, ALLOWED_GID, e, sizeof(e));
	ok(err == 0, "uid %d with supplementary group %d (in allow_groups) connects (%s%s%s)",
	   OTHER_UID, ALLOWED_GID, strerror(-err), *e ? ": " : "", e);
	err = connect_as(OTHER_GID, 0, e, sizeof(e));
	ok(err == -EACCES && strstr(e, "allow_groups"),
	   "uid %d in neither list is refused, saying why (expected EACCES, saw %s: %s)", OTHER_UID,
	   strerror(-err), e);
}

/* ---- region quotas ---- */

struct held {
	void *p;
	size_t len;
	unsigned int tag;
};

static int region(struct uzswap *u, size_t len, unsigned int tag, struct held *h)
{
	struct pat k = { .seed = seed, .tag = tag, .kind = PAT_REAL };
	int err = uzswap_region_create(u, len, "quota", &h->p);

	if (err)
		return err;
	h->len = len;
	h->tag = tag;
	for (size_t i = 0; i < len / PAT_PAGE; i++)
		pat_write(&k, (char *)h->p + i * PAT_PAGE, i, 1);
	return 0;
}

static uint64_t bad_pages(const struct held *h, size_t n)
{
	uint64_t bad = 0;

	for (size_t r = 0; r < n; r++) {
		struct pat k = { .seed = seed, .tag = h[r].tag, .kind = PAT_REAL };

		for (size_t i = 0; h[r].p && i < h[r].len / PAT_PAGE; i++)
			bad += !pat_verify(&k, (char *)h[r].p + i * PAT_PAGE, i, 1, NULL, 0);
	}
	return bad;
}

/* A region over a quota: refused with EDQUOT, its message naming @quota. */
static void refused(struct uzswap *u, size_t len, const char *quota, const char *what)
{
	void *p = NULL;
	int err = uzswap_region_create(u, len, "over", &p);
	const char *msg = uzswap_last_error(u);

	ok(err == -EDQUOT && strstr(msg, quota),
	   "%s is refused (expected EDQUOT naming %s, saw %s: %s)", what, quota, strerror(-err),
	   msg);
	if (err == 0)
		uzswap_region_release(u, p);
}

/*
 * A refusal is no protocol error: a client refused far more often than the
 * daemon's limit of bad requests (64) keeps its connection and its data.
 */
static void many_refusals(struct uzswap *u)
{
	struct uzswap_stats st;
	int refused_n = 0, err;
	void *p;

	for (int i = 0; i < 100; i++) {
		err = uzswap_region_create(u, 4 * MIB, "over", &p);
		refused_n += err == -EDQUOT;
		if (err == 0)
			uzswap_region_release(u, p);
	}
	err = uzswap_stats(u, &st);
	ok(refused_n == 100 && err == 0,
	   "a client refused 100 times in a row keeps its connection (%d refused; stats: %s)",
	   refused_n, strerror(-err));
}

static void test_regions(struct uzswap *a, struct uzswap *b)
{
	struct held ha[5] = { { 0 } }, hb[2] = { { 0 } };
	int err = 0;

	/* client_max_regions 4, client_max_managed 8M, uid: 6 regions, 12M. */
	for (unsigned int i = 0; i < 4 && !err; i++)
		err = region(a, MIB, 10 + i, &ha[i]);
	ok(err == 0, "a client registers client_max_regions (4) regions (%s)", strerror(-err));
	refused(a, MIB, "client_max_regions", "its fifth region");
	err = uzswap_region_release(a, ha[3].p);
	ha[3].p = NULL;
	refused(a, 6 * MIB, "client_max_managed",
		"a region past client_max_managed (3M + 6M > 8M)");
	err = err ? err : region(a, 5 * MIB, 14, &ha[4]);
	ok(err == 0, "a region that fills client_max_managed exactly is accepted (%s)",
	   strerror(-err));
	err = region(b, MIB, 20, &hb[0]);
	err = err ? err : region(b, MIB, 21, &hb[1]);
	ok(err == 0, "a second client of the uid registers 2 regions: 6, uid_max_regions (%s)",
	   strerror(-err));
	refused(b, MIB, "uid_max_regions", "the uid's seventh region");
	err = uzswap_region_release(b, hb[1].p);
	hb[1].p = NULL;
	refused(b, 4 * MIB, "uid_max_managed", "a region past uid_max_managed (9M + 4M > 12M)");
	many_refusals(b);
	ok(err == 0 && bad_pages(ha, 5) == 0 && bad_pages(hb, 2) == 0,
	   "after the refusals every region holds what was written (release: %s)", strerror(-err));
	for (size_t i = 0; i < 5; i++)
		if (ha[i].p)
			uzswap_region_release(a, ha[i].p);
	uzswap_region_release(b, hb[0].p);
}

/* ---- clients ---- */

static void test_clients(size_t n)
{
	char e[256] = "";
	struct uzswap_options opt = { .name = "one-more", .error = e, .error_len = sizeof(e) };
	struct uzswap *x = NULL;
	int err = uzswap_connect(daemon_.socket, &opt, &x);

	ok(err == -EDQUOT && strstr(e, "uid_max_clients"),
	   "with %zu clients of uid 0 connected, one more is refused (expected EDQUOT naming "
	   "uid_max_clients, saw %s: %s)",
	   n, strerror(-err), e);
	if (err == 0)
		uzswap_close(x);
}

/* ---- the flood ---- */

struct flood {
	atomic_int opened, judged, release;
	int reason; /* the refusal expected: -EDQUOT, or -EUSERS for a full table */
	int connect_errors;
	int refused; /* sockets told reason by a SHUTDOWN */
	int open;    /* sockets still open and silent */
	int other;   /* anything else */
	char first_msg[160];
};

/* What the daemon did with one silent connection, by @deadline (ms). */
static void judge(struct flood *f, int sock, uint64_t deadline)
{
	uint64_t now = hd_now_ms();
	int ms = now < deadline ? (int)(deadline - now) : 0;
	unsigned char buf[UZP_DATAGRAM_MAX];
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	struct uzp_header h;
	struct uzp_shutdown s;
	ssize_t n;

	if (poll(&pfd, 1, ms) == 0) {
		f->open++;
		return;
	}
	n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < (ssize_t)(sizeof(h) + sizeof(s))) {
		f->other++;
		return;
	}
	memcpy(&h, buf, sizeof(h));
	memcpy(&s, buf + sizeof(h), sizeof(s));
	if (h.type != UZP_SHUTDOWN || s.reason != f->reason) {
		f->other++;
		return;
	}
	if (!f->refused++)
		snprintf(f->first_msg, sizeof(f->first_msg), "%.*s",
			 (int)(n - (ssize_t)(sizeof(h) + sizeof(s))),
			 (const char *)buf + sizeof(h) + sizeof(s));
}

/* Open @n silent connections into @socks and judge each, waiting up to @wait_ms for a refusal. */
static void open_silent(struct flood *f, int *socks, int n, int wait_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline;

	memcpy(sa.sun_path, daemon_.socket, strlen(daemon_.socket) + 1);
	for (int i = 0; i < n; i++) {
		socks[i] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (socks[i] < 0 || connect(socks[i], (struct sockaddr *)&sa, sizeof(sa)) < 0)
			f->connect_errors++;
	}
	atomic_store(&f->opened, 1);
	deadline = hd_now_ms() + (uint64_t)wait_ms;
	for (int i = 0; i < n; i++)
		if (socks[i] >= 0)
			judge(f, socks[i], deadline);
	atomic_store(&f->judged, 1);
}

static void close_all(int *socks, int n)
{
	for (int i = 0; i < n; i++)
		if (socks[i] >= 0)
			close(socks[i]);
}

/* A child of uid OTHER_UID floods the daemon with FLOOD silent connections. */
static int flood_main(void *arg)
{
	struct flood *f = arg;
	int socks[FLOOD];

	if (setgroups(0, NULL) < 0 || setgid(ALLOWED_GID) < 0 || setuid(OTHER_UID) < 0)
		return 1;
	/* A refusal comes at once; one still open after 3 s is open for good. */
	open_silent(f, socks, FLOOD, 3000);
	while (!atomic_load(&f->release))
		hd_sleep_ms(5);
	close_all(socks, FLOOD);
	return 0;
}

/* Start flood_main, expecting refusals with @reason; NULL without shared memory. */
static struct flood *start_flood(int reason, pid_t *pid)
{
	struct flood *f = hd_shared(sizeof(*f));

	if (!f)
		return NULL;
	f->reason = reason;
	*pid = hd_spawn(flood_main, f);
	for (uint64_t t = hd_now_ms();
	     *pid > 0 && !atomic_load(&f->judged) && !hd_ended(*pid) && hd_now_ms() - t < 30000;)
		hd_sleep_ms(10);
	return f;
}

static void end_flood(struct flood *f, pid_t pid)
{
	int st = 0;

	atomic_store(&f->release, 1);
	ok(pid > 0 && hd_wait(pid, 20000, &st) == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "the flooding process ends cleanly");
}

static void test_flood(struct uzswap *held, struct held *h)
{
	struct uzswap_stats before, after;
	struct uzswap *fresh = NULL;
	uint64_t clients = 0, refusals = 0, refusals_before = 0, bad;
	int cerr, sterr;
	struct flood *f;
	pid_t pid = -1;

	if (hd_status_u64(&daemon_, "daemon.quota_refusals", &refusals_before) < 0)
		refusals_before = UINT64_MAX;
	f = start_flood(-EDQUOT, &pid);
	if (!f) {
		ok(false, "shared memory for the flood");
		return;
	}
	ok(f->connect_errors == 0 && f->open == MAX_CONNECTIONS &&
		   f->refused == FLOOD - MAX_CONNECTIONS && f->other == 0 &&
		   strstr(f->first_msg, "uid_max_connections"),
	   "of %d silent connections of uid %d, uid_max_connections (%d) stay open and the "
	   "rest are told EDQUOT and closed (saw %d open, %d refused, %d other, %d connect "
	   "errors; \"%s\")",
	   FLOOD, OTHER_UID, MAX_CONNECTIONS, f->open, f->refused, f->other, f->connect_errors,
	   f->first_msg);
	/* The flood's connections are still open (until f->release): everyone else is served. */
	if (uzswap_stats(held, &before) < 0)
		before.faults = UINT64_MAX;
	bad = bad_pages(h, 1);
	if (uzswap_stats(held, &after) < 0)
		after.faults = 0;
	ok(bad == 0 && after.faults > before.faults,
	   "meanwhile root's established client faults its pages back in (%" PRIu64
	   " bad pages, faults %" PRIu64 " -> %" PRIu64 ")",
	   bad, before.faults, after.faults);
	cerr = hd_connect(&daemon_, 0, "after-flood", &fresh);
	ok(cerr == 0, "meanwhile a new client of root connects (%s)", strerror(-cerr));
	sterr = hd_status_u64(&daemon_, "clients[#]", &clients);
	sterr = sterr ? sterr : hd_status_u64(&daemon_, "daemon.quota_refusals", &refusals);
	ok(sterr == 0 && clients == 3 && refusals - refusals_before == FLOOD - MAX_CONNECTIONS,
	   "meanwhile status answers and counts each refusal (%" PRIu64 " clients; quota "
	   "refusals %" PRIu64 " -> %" PRIu64 ")",
	   clients, refusals_before, refusals);
	uzswap_close(fresh);
	end_flood(f, pid);
}

/* A connection that says nothing is closed after 10 s, with the reason. */
static void test_silent(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned char buf[UZP_DATAGRAM_MAX];
	struct uzp_shutdown s = { 0 };
	struct pollfd pfd = { .events = POLLIN };
	uint64_t t0 = hd_now_ms(), waited = 0;
	ssize_t n = -1;
	int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, daemon_.socket, strlen(daemon_.socket) + 1);
	if (sock >= 0 && connect(sock, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		pfd.fd = sock;
		if (poll(&pfd, 1, 30000) == 1)
			n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
		waited = hd_now_ms() - t0;
	}
	if (n >= (ssize_t)(sizeof(struct uzp_header) + sizeof(s)))
		memcpy(&s, buf + sizeof(struct uzp_header), sizeof(s));
	ok(s.reason == -ETIMEDOUT && waited >= 9000,
	   "a connection that says nothing is closed after 10 s, told why (reason %d, after %" PRIu64
	   " ms)",
	   s.reason, waited);
	if (sock >= 0)
		close(sock);
}

static void quota_daemon(void)
{
	char gid[16];
	const struct hd_opt opts[] = {
		{ "daemon", "socket_mode", "0666" },
		{ "clients", "allow_uids", "0" },
		{ "clients", "allow_groups", gid },
		{ "clients", "max_clients", "16" },
		{ "clients", "uid_max_clients", "3" },
		{ "clients", "uid_max_connections", "8" },
		{ "clients", "client_max_regions", "4" },
		{ "clients", "uid_max_regions", "6" },
		{ "clients", "client_max_managed", "8M" },
		{ "clients", "uid_max_managed", "12M" },
		{ "budget", "client_max_resident", "256K" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct pat k = { .seed = seed, .tag = 30, .kind = PAT_REAL };
	struct uzswap *u[3] = { NULL, NULL, NULL };
	struct uzswap_stats st;
	struct held h = { 0 };
	int err = 0;

	snprintf(gid, sizeof(gid), "%d", ALLOWED_GID);
	if (!ok(hd_start(&daemon_, opts) == 0, "a daemon with small quotas starts"))
		return;
	chmod(daemon_.dir, 0755);
	test_allow_groups();
	for (int i = 0; i < 3 && !err; i++)
		err = hd_connect(&daemon_, 0, "quota", &u[i]);
	ok(err == 0, "three clients of uid 0 connect (uid_max_clients 3)");
	if (err == 0) {
		test_regions(u[0], u[1]);
		test_clients(3);
		err = uzswap_region_create(u[2], HOLD_PAGES * PAT_PAGE, "held", &h.p);
		h.len = HOLD_PAGES * PAT_PAGE;
		h.tag = 30;
		for (size_t i = 0; err == 0 && i < HOLD_PAGES; i++)
			pat_write(&k, (char *)h.p + i * PAT_PAGE, i, 1);
		err = err ? err : hd_wait_evicted(u[2], HOLD_PAGES / 2, 20000, &st);
		ok(err == 0, "root's third client holds a region mostly evicted (%s)",
		   strerror(-err));
		uzswap_close(u[0]);
		u[0] = NULL;
		if (err == 0)
			test_flood(u[2], &h);
	}
	test_silent();
	for (int i = 0; i < 3; i++)
		uzswap_close(u[i]);
	hd_stop_ok(&daemon_);
}

/* ---- uid_max_resident ---- */

static void resident_daemon(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "4M" },
		{ "budget", "uid_max_resident", "4M" },
		{ "budget", "client_min_resident", "1M" },
		{ "pressure", "psi_some_avg10", "0" },
		{ "pressure", "min_available", "0" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct uzswap *u[2] = { NULL, NULL };
	struct held h[2] = { { 0 } };
	struct uzswap_stats s0 = { 0 }, s1 = { 0 };
	uint64_t total = UINT64_MAX, limit = 4 * MIB / PAT_PAGE;
	int err = 0;

	if (!ok(hd_start(&daemon_, opts) == 0, "a daemon with uid_max_resident 4M starts"))
		return;
	for (int i = 0; i < 2 && !err; i++) {
		err = hd_connect(&daemon_, 0, "uidres", &u[i]);
		err = err ? err : region(u[i], 4 * MIB, 40 + (unsigned int)i, &h[i]);
	}
	/* Each is within its own budget: only the uid's quota can evict. */
	for (uint64_t t = hd_now_ms(); err == 0 && hd_now_ms() - t < 20000; hd_sleep_ms(50)) {
		if (uzswap_stats(u[0], &s0) || uzswap_stats(u[1], &s1))
			break;
		total = s0.resident_pages + s1.resident_pages;
		if (total <= limit)
			break;
	}
	/* Pressure is off: only the uid's quota evicts, to its low watermark (90%). */
	ok(err == 0 && total <= limit && total >= limit * 8 / 10 && s0.evictions && s1.evictions,
	   "two clients of one uid, each within its own budget, are held to uid_max_resident "
	   "together, both giving pages (expected %" PRIu64 "..%" PRIu64 " resident, saw %" PRIu64
	   "; evictions %" PRIu64 " and %" PRIu64 "; %s)",
	   limit * 8 / 10, limit, total, s0.evictions, s1.evictions, strerror(-err));
	ok(err == 0 && bad_pages(h, 2) == 0, "and read every page back");
	for (int i = 0; i < 2; i++)
		uzswap_close(u[i]);
	hd_stop_ok(&daemon_);
}

/* ---- a full connection table ---- */

/*
 * max_clients 1: a table of 17 connections, and 8 more for root.  A child
 * of another uid fills the 17 (its uid_max_connections is 17 too); every
 * connection past them is told the table is full, root's past its 8 too.
 */
static void table_daemon(void)
{
	const struct hd_opt opts[] = {
		{ "daemon", "socket_mode", "0666" },
		{ "clients", "max_clients", "1" },
		{ NULL, NULL, NULL },
	};
	struct flood *f, *mine = hd_shared(sizeof(*mine));
	int socks[ROOT_TRIES];
	pid_t pid = -1;

	if (!mine || !ok(hd_start(&daemon_, opts) == 0, "a daemon with max_clients 1 starts"))
		return;
	chmod(daemon_.dir, 0755);
	/*
	 * The harness's last request to the daemon may still hold a slot (its
	 * close not yet seen): the flood gets the table's other slots.
	 */
	f = start_flood(-EUSERS, &pid);
	ok(f && f->connect_errors == 0 && f->open >= TABLE_SIZE - 2 && f->open <= TABLE_SIZE &&
		   f->refused == FLOOD - f->open && f->other == 0 &&
		   strstr(f->first_msg, "connections, its most"),
	   "of %d silent connections of uid %d, the table's %d (less any the harness holds) stay "
	   "open and the rest are told EUSERS and closed (saw %d open, %d refused, %d other; "
	   "\"%s\")",
	   FLOOD, OTHER_UID, TABLE_SIZE, f ? f->open : -1, f ? f->refused : -1, f ? f->other : -1,
	   f ? f->first_msg : "");
	mine->reason = -EUSERS;
	open_silent(mine, socks, ROOT_TRIES, 1000);
	ok(mine->connect_errors == 0 && mine->open >= TABLE_ROOT_RESERVE &&
		   mine->open + mine->refused == ROOT_TRIES && mine->refused >= 1 &&
		   mine->other == 0 && strstr(mine->first_msg, "connections, its most"),
	   "root then opens its %d more, and those past them are told EUSERS too, not closed "
	   "without a word (%d tried: saw %d open, %d refused, %d other; \"%s\")",
	   TABLE_ROOT_RESERVE, ROOT_TRIES, mine->open, mine->refused, mine->other, mine->first_msg);
	close_all(socks, ROOT_TRIES);
	if (f)
		end_flood(f, pid);
	hd_stop_ok(&daemon_);
}

int main(void)
{
	hd_init(true, WATCHDOG_S);
	seed = pat_init(UINT64_C(0x9a07a));
	quota_daemon();
	resident_daemon();
	table_daemon();
	return tap_done();
}
