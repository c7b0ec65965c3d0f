/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_unpriv.c - an unprivileged client works through
 * the /dev/userfaultfd descriptor the daemon grants it.
 *
 * An unprivileged process may not create a userfaultfd that also serves
 * faults taken inside the kernel (vm.unprivileged_userfaultfd = 0), and
 * /dev/userfaultfd is root's (mode 0600).  The daemon opens
 * /dev/userfaultfd and passes that descriptor to each client it accepts;
 * libuzswap creates its userfaultfd with USERFAULTFD_IOC_NEW on it
 * (design.md §1).  Here a child drops to uid and gid 65534 (nobody),
 * checks that it can make no such userfaultfd by itself, connects (the
 * socket is mode 0666, its directory 0755, allow_uids names 65534), writes
 * a region four times its budget, waits for eviction and reads every page
 * back.  While it holds the region, the daemon's status must show it with
 * uid 65534.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "include/uzswap_proto.h"
#include "tests/integration/harness.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define NOBODY 65534
#define BUDGET MIB
#define REGION (4 * MIB)
#define NPAGES (REGION / PAT_PAGE)
#define EVICTED_MIN (NPAGES / 2)
#define WATCHDOG_S 60

struct shared {
	uint64_t seed;
	int setid_err;	  /* errno of setgroups/setgid/setuid */
	uid_t uid, euid;  /* after the switch */
	int own_uffd_err; /* errno of userfaultfd(2) without UFFD_USER_MODE_ONLY */
	int dev_uffd_err; /* errno of opening /dev/userfaultfd */
	int connect_err, region_err, stats_err, release_err;
	char error[512];
	uint64_t evicted, pool_pages, faults;
	uint64_t readahead; /* pages the daemon filled ahead of its faults (its status) */
	uint64_t bad;
	char why[96];
	atomic_int holding; /* the child holds its region and waits */
	atomic_int go_on;
	atomic_int probe, probed; /* the child asks for the daemon's status meanwhile */
	int probe_err;
	unsigned int probe_clients, probe_uid;
};

static struct hd_daemon daemon_;

static int drop_privileges(struct shared *S)
{
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		return S->setid_err = errno, -1;
	S->uid = getuid();
	S->euid = geteuid();
	return 0;
}

/* What the process could do without the daemon's descriptor. */
static void probe_own_uffd(struct shared *S)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev;

	S->own_uffd_err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close((int)fd);
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	S->dev_uffd_err = dev < 0 ? errno : 0;
	if (dev >= 0)
		close(dev);
}

/*
 * While holding its region, as uid NOBODY: ask the daemon for its status
 * the way uzswapctl does (a STATUS with a memfd) and note how many clients
 * it shows and whose.  In-process, so that nothing needs to be executable
 * by NOBODY.
 */
static void probe_status(struct shared *S)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct uzp_header h = { UZP_MAGIC, UZP_VERSION, UZP_STATUS, 0, 1 };
	unsigned char buf[UZP_DATAGRAM_MAX];
	struct uzp_status st;
	struct uzp_status_client cl;
	struct uzp_reply rep;
	int sock, mfd, fds[UZP_FDS_MAX], nfds = 0;
	ssize_t n;

	S->probe_err = -EIO;
	if (strlen(daemon_.socket) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, daemon_.socket, strlen(daemon_.socket) + 1);
	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	mfd = memfd_create("integ-status", MFD_CLOEXEC);
	if (sock < 0 || mfd < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    uzp_send(sock, &h, NULL, 0, &mfd, 1) < 0)
		goto out;
	n = uzp_recv(sock, buf, sizeof(buf), fds, &nfds);
	while (nfds)
		close(fds[--nfds]);
	if (n < (ssize_t)(sizeof(h) + sizeof(rep)))
		goto out;
	memcpy(&rep, buf + sizeof(h), sizeof(rep));
	S->probe_err = rep.status;
	if (rep.status < 0 || pread(mfd, &st, sizeof(st), 0) != (ssize_t)sizeof(st))
		goto out;
	S->probe_clients = st.n_clients;
	if (st.n_clients == 1 &&
	    pread(mfd, &cl, sizeof(cl), (off_t)sizeof(st)) == (ssize_t)sizeof(cl))
		S->probe_uid = cl.uid;
out:
	if (mfd >= 0)
		close(mfd);
	if (sock >= 0)
		close(sock);
}

static int client_main(void *arg)
{
	struct shared *S = arg;
	struct pat k = { .seed = S->seed, .tag = 5, .kind = PAT_REAL };
	struct uzswap_options opt = { .max_resident = BUDGET,
				      .name = "nobody",
				      .error = S->error,
				      .error_len = sizeof(S->error) };
	struct uzswap_stats st = { 0 };
	struct uzswap *u;
	char *map, why[80];
	void *p;

	if (drop_privileges(S) < 0)
		return 1;
	probe_own_uffd(S);
	S->connect_err = uzswap_connect(daemon_.socket, &opt, &u);
	if (S->connect_err)
		return 1;
	S->region_err = uzswap_region_create(u, REGION, "nobody", &p);
	if (S->region_err) {
		snprintf(S->error, sizeof(S->error), "%s", uzswap_last_error(u));
		return 1;
	}
	map = p;
	for (uint64_t i = 0; i < NPAGES; i++)
		pat_write(&k, map + i * PAT_PAGE, i, 1);
	S->stats_err = hd_wait_evicted(u, EVICTED_MIN, 10000, &st);
	S->evicted = st.same_pages + st.pool_pages + st.file_pages;
	S->pool_pages = st.pool_pages;
	for (uint64_t i = 0; i < NPAGES; i++) {
		if (pat_verify(&k, map + i * PAT_PAGE, i, 1, why, sizeof(why)))
			continue;
		if (!S->bad++)
			snprintf(S->why, sizeof(S->why), "page %" PRIu64 ": %s", i, why);
	}
	if (uzswap_stats(u, &st) == 0)
		S->faults = st.faults;
	atomic_store(&S->holding, 1);
	for (uint64_t t = hd_now_ms(); !atomic_load(&S->go_on) && hd_now_ms() - t < 30000;) {
		if (atomic_load(&S->probe) && !atomic_load(&S->probed)) {
			probe_status(S);
			atomic_store(&S->probed, 1);
		}
		hd_sleep_ms(5);
	}
	S->release_err = uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

/*
 * With a root client connected beside the unprivileged one, root's status
 * shows both and the unprivileged user's shows only its own.
 */
static void check_status_privacy(struct hd_daemon *d, struct shared *S)
{
	uint64_t all = 0;
	struct uzswap *u = NULL;

	if (hd_connect(d, 0, "root-client", &u) < 0 || hd_status_u64(d, "clients[#]", &all) < 0)
		all = 0;
	atomic_store(&S->probe, 1);
	for (uint64_t t = hd_now_ms(); !atomic_load(&S->probed) && hd_now_ms() - t < 10000;)
		hd_sleep_ms(5);
	ok(all == 2 && S->probe_err == 0 && S->probe_clients == 1 && S->probe_uid == NOBODY,
	   "root's status shows every client, uid %d's only its own (expected 2, and 1 of uid "
	   "%d; saw %" PRIu64 ", and %u of uid %u; %s)",
	   NOBODY, NOBODY, all, S->probe_clients, S->probe_uid, strerror(-S->probe_err));
	uzswap_close(u);
}

static void check_status_uid(struct hd_daemon *d, struct shared *S, pid_t pid)
{
	uint64_t uid = 0, start = hd_now_ms();
	char path[64];

	while (!atomic_load(&S->holding) && !hd_ended(pid) && hd_now_ms() - start < 30000)
		hd_sleep_ms(5);
	snprintf(path, sizeof(path), "clients[pid=%d].uid", (int)pid);
	if (!atomic_load(&S->holding) || hd_status_u64(d, path, &uid) < 0)
		uid = 0;
	snprintf(path, sizeof(path), "clients[pid=%d].readahead", (int)pid);
	if (!atomic_load(&S->holding) || hd_status_u64(d, path, &S->readahead) < 0)
		S->readahead = 0;
	ok(uid == NOBODY,
	   "the daemon's status shows the client with its uid (expected %d, saw %" PRIu64 ")",
	   NOBODY, uid);
	if (atomic_load(&S->holding))
		check_status_privacy(d, S);
	atomic_store(&S->go_on, 1);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "daemon", "socket_mode", "0666" },
		{ "clients", "allow_uids", "0, 65534" },
		{ "budget", "client_max_resident", "16M" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct hd_daemon *d = &daemon_;
	struct shared *S;
	char how[96];
	int st = 0, r;
	pid_t pid;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0x0b0d7));
	if (!ok(hd_start(d, opts) == 0, "the daemon starts with socket_mode 0666"))
		return tap_done();
	chmod(d->dir, 0755);
	pid = hd_spawn(client_main, S);
	if (pid > 0)
		check_status_uid(d, S, pid);
	r = pid < 0 ? (int)pid : hd_wait(pid, 60000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "the unprivileged client runs to the end (expected exit 0, saw %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)));
	ok(!S->setid_err && S->uid == NOBODY && S->euid == NOBODY,
	   "the child runs as uid %d (setgroups/setgid/setuid: %s; uid %u, euid %u)", NOBODY,
	   strerror(S->setid_err), (unsigned int)S->uid, (unsigned int)S->euid);
	if (S->own_uffd_err == EPERM && S->dev_uffd_err == EACCES)
		ok(true,
		   "as uid %d the child can make no userfaultfd by itself (userfaultfd(2): "
		   "%s, /dev/userfaultfd: %s)",
		   NOBODY, strerror(S->own_uffd_err), strerror(S->dev_uffd_err));
	else
		tap_skip("this machine lets uid %d make a userfaultfd itself (userfaultfd(2): %s, "
			 "/dev/userfaultfd: %s): the test cannot show that the granted one is used",
			 NOBODY, strerror(S->own_uffd_err), strerror(S->dev_uffd_err));
	ok(S->connect_err == 0 && S->region_err == 0,
	   "as uid %d the client connects and creates a region (connect: %s, region: %s%s%s)",
	   NOBODY, strerror(-S->connect_err), strerror(-S->region_err), *S->error ? ": " : "",
	   S->error);
	ok(S->stats_err == 0 && S->evicted >= EVICTED_MIN && S->pool_pages > 0,
	   "its pages beyond the budget are evicted (expected at least %" PRIu64
	   " evicted, saw %" PRIu64 ", %" PRIu64 " in the pool; %s)",
	   EVICTED_MIN, S->evicted, S->pool_pages, strerror(-S->stats_err));
	/* Every page was written once and every evicted one read back: more than NPAGES served. */
	ok(!S->connect_err && !S->region_err && S->bad == 0 && S->faults + S->readahead > NPAGES,
	   "it reads every page back intact through the granted userfaultfd (expected 0 bad of "
	   "%" PRIu64 ", saw %" PRIu64 "%s%s; %" PRIu64 " faults served, %" PRIu64
	   " pages filled ahead)",
	   NPAGES, S->bad, S->bad ? "; first " : "", S->why, S->faults, S->readahead);
	ok(S->release_err == 0, "it releases its region (%s)", strerror(-S->release_err));
	hd_stop_ok(d);
	return tap_done();
}
