/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_sigterm.c - SIGTERM while the daemon is busy:
 * it stops accepting, tells its clients, lets go of everything and exits 0,
 * with nothing left waiting on it.
 *
 * At the moment of the signal the daemon has: two clients, each with two
 * threads paging at random over a region four times their budget (every
 * read checked); a third process connecting and hanging up in a loop, so
 * that connections keep arriving through the stop; an admin reclaim of
 * far more than there is, in flight on the reclaim thread; and an admin
 * connection that sent nothing.  Then:
 *   - the daemon exits 0 within the harness's bound (hd_stop: SIGKILL
 *     after 15 s is a failure), with no sanitizer report;
 *   - each paging client stops with exit status 86 and the library's
 *     message that the daemon is stopping, and never read a wrong page;
 *   - the reclaim's uzswapctl got an answer or the connection's end, and
 *     exited by itself (0 or 1), never left hanging;
 *   - the connecting process kept connecting until then, and no HELLO was
 *     accepted after the daemon logged that it was stopping;
 *   - the socket file is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/pattern.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET (2 * MIB)
#define NPAGES 2048 /* 8 MiB */
#define CLIENTS 2
#define THREADS 2
#define EXIT_MISMATCH 3
#define WATCHDOG_S 90

struct pager {
	char errpath[HD_PATH_MAX];
	uint64_t seed;
	unsigned int tag;
	int setup_err;
	atomic_int ready;
	atomic_uint_fast64_t reads, bad;
};

struct shared {
	struct pager p[CLIENTS];
	atomic_int connector_stop;
	atomic_uint_fast64_t connects;
};

struct thread_arg {
	struct pager *P;
	char *map;
	unsigned int id;
};

static struct hd_daemon daemon_;

/* Thread @id owns the pages p % THREADS == id; their versions live on its stack. */
static void *pager_thread(void *arg)
{
	struct thread_arg *T = arg;
	struct pat k = { .seed = T->P->seed, .tag = T->P->tag, .kind = PAT_MIXED };
	struct rng g = { .state = T->P->seed ^ (T->id + 1) };
	uint64_t ver[NPAGES / THREADS];
	char why[96];

	for (uint64_t i = 0; i < NPAGES / THREADS; i++) {
		ver[i] = 1;
		pat_write(&k, T->map + (i * THREADS + T->id) * PAT_PAGE, i * THREADS + T->id, 1);
	}
	for (;;) {
		uint64_t i = rng_below(&g, NPAGES / THREADS), p = i * THREADS + T->id;

		if (rng_below(&g, 2)) {
			ver[i] = (ver[i] + 1) & PAT_VERSION_MAX;
			pat_write(&k, T->map + p * PAT_PAGE, p, ver[i]);
			continue;
		}
		if (!pat_verify(&k, T->map + p * PAT_PAGE, p, ver[i], why, sizeof(why))) {
			atomic_fetch_add(&T->P->bad, 1);
			dprintf(STDERR_FILENO, "MISMATCH: page %" PRIu64 ": %s\n", p, why);
			_exit(EXIT_MISMATCH);
		}
		atomic_fetch_add(&T->P->reads, 1);
	}
	return NULL;
}

/* A paging client: it ends only when libuzswap stops it (the daemon going). */
static int pager_main(void *arg)
{
	struct pager *P = arg;
	struct thread_arg T[THREADS];
	struct uzswap_stats st = { 0 };
	struct uzswap *u;
	pthread_t tid;
	void *map;
	int fd = open(P->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), r;

	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		return hd_setup_failed(&P->setup_err, -errno);
	r = hd_connect(&daemon_, BUDGET, "pager", &u);
	if (r == 0)
		r = uzswap_region_create(u, NPAGES * PAT_PAGE, "paged", &map);
	if (r < 0)
		return hd_setup_failed(&P->setup_err, r);
	for (unsigned int i = 0; i < THREADS; i++) {
		T[i] = (struct thread_arg){ .P = P, .map = map, .id = i };
		if (pthread_create(&tid, NULL, pager_thread, &T[i]) != 0)
			return hd_setup_failed(&P->setup_err, -EAGAIN);
	}
	while (uzswap_stats(u, &st) == 0 && st.evictions < NPAGES)
		hd_sleep_ms(5);
	atomic_store(&P->ready, 1);
	for (;;)
		pause();
	return 0;
}

/*
 * Connect as a client (HELLO, userfaultfd) and leave, again, until told or
 * the daemon is gone; its stderr is dropped (a refused connect says why).
 */
static int connector_main(void *arg)
{
	struct shared *S = arg;
	char err[256];
	int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (nul >= 0)
		dup2(nul, STDERR_FILENO);
	while (!atomic_load(&S->connector_stop)) {
		struct uzswap_options opt = { .name = "connector",
					      .error = err,
					      .error_len = sizeof(err) };
		struct uzswap *u;

		if (uzswap_connect(daemon_.socket, &opt, &u) < 0)
			break;
		atomic_fetch_add(&S->connects, 1);
		uzswap_close(u);
	}
	return 0;
}

/* uzswapctl reclaim PID 1G: exits with uzswapctl's status. */
static int reclaim_main(void *arg)
{
	const char *pid = arg;
	int st = hd_ctl(&daemon_, NULL, NULL, NULL, "reclaim", pid, "1G", NULL);

	return st < 0 ? 100 : st;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = calloc(1, 4096);
	size_t n;

	if (!f || !buf) {
		if (f)
			fclose(f);
		return buf;
	}
	n = fread(buf, 1, 4095, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Is a client accepted ("client N: pid") after "SIGTERM: stopping" in the log? */
static bool accepted_after_stop(void)
{
	char line[1024];
	bool stopping = false, late = false;
	FILE *f = fopen(daemon_.log, "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "SIGTERM: stopping"))
			stopping = true;
		else if (stopping && strstr(line, ": pid ") && strstr(line, "budget"))
			late = true;
	}
	if (f)
		fclose(f);
	return late || !stopping;
}

/* An admin connection that never says anything: the stop must not wait for it. */
static int silent_connection(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, daemon_.socket, strlen(daemon_.socket) + 1);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "2M" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	struct shared *S;
	pid_t pagers[CLIENTS], connector, reclaimer;
	char how[160], pid0[16];
	int st, r, silent;
	uint64_t start;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->p[0].seed = pat_init(UINT64_C(0x5197e4));
	if (!ok(hd_start(&daemon_, opts) == 0, "the daemon starts"))
		return tap_done();
	for (int i = 0; i < CLIENTS; i++) {
		S->p[i].seed = S->p[0].seed + (uint64_t)i;
		S->p[i].tag = 20 + (unsigned int)i;
		snprintf(how, sizeof(how), "pager%d.stderr", i);
		hd_path(&daemon_, how, S->p[i].errpath, sizeof(S->p[i].errpath));
		pagers[i] = hd_spawn(pager_main, &S->p[i]);
	}
	start = hd_now_ms();
	for (int i = 0; i < CLIENTS; i++)
		while (pagers[i] > 0 && !atomic_load(&S->p[i].ready) && !hd_ended(pagers[i]) &&
		       hd_now_ms() - start < 30000)
			hd_sleep_ms(5);
	ok(atomic_load(&S->p[0].ready) && atomic_load(&S->p[1].ready),
	   "two clients page at random over regions four times their budget");
	connector = hd_spawn(connector_main, S);
	snprintf(pid0, sizeof(pid0), "%d", (int)pagers[0]);
	reclaimer = hd_spawn(reclaim_main, pid0);
	silent = silent_connection();
	start = hd_now_ms();
	while (connector > 0 && atomic_load(&S->connects) < 3 && !hd_ended(connector) &&
	       hd_now_ms() - start < 10000)
		hd_sleep_ms(2);

	r = hd_stop(&daemon_, how, sizeof(how));
	ok(r == 0, "SIGTERM while busy: the daemon exits 0 in bounded time (saw %s)", how);
	for (int i = 0; i < CLIENTS; i++) {
		char *err;

		st = 0;
		r = pagers[i] > 0 ? hd_wait(pagers[i], 15000, &st) : -ECHILD;
		err = hd_one_line(slurp(S->p[i].errpath));
		ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == UZSWAP_EXIT_DAEMON_GONE && err &&
			   strstr(err, "stopping"),
		   "client %d stops with exit %d and the daemon's message (saw %s; stderr: %.200s)",
		   i, UZSWAP_EXIT_DAEMON_GONE,
		   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), err ? err : "");
		ok(atomic_load(&S->p[i].bad) == 0 && atomic_load(&S->p[i].reads) > 0,
		   "client %d never read a wrong page (%" PRIu64 " checked reads)", i,
		   (uint64_t)atomic_load(&S->p[i].reads));
		free(err);
	}
	st = 0;
	r = reclaimer > 0 ? hd_wait(reclaimer, 70000, &st) : -ECHILD;
	ok(r == 0 && WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 1),
	   "the reclaim in flight was answered or hung up on: its uzswapctl exited by itself "
	   "(saw %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)));
	atomic_store(&S->connector_stop, 1);
	r = connector > 0 ? hd_wait(connector, 10000, &st) : -ECHILD;
	ok(r == 0 && atomic_load(&S->connects) > 0 && !accepted_after_stop(),
	   "connections kept coming (%" PRIu64 "), and none was accepted as a client after the "
	   "stop began",
	   (uint64_t)atomic_load(&S->connects));
	ok(access(daemon_.socket, F_OK) < 0 && errno == ENOENT, "the socket file is removed");
	if (silent >= 0)
		close(silent);
	return tap_done();
}
