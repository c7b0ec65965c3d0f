/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_daemon_death.c - the daemon killed with SIGKILL
 * (or stopped with SIGTERM) while a client holds regions with evicted
 * pages.
 *
 * The evicted pages died with the daemon, so the client must not go on:
 * libuzswap stops the process with a message on stderr and exit status
 * UZSWAP_EXIT_DAEMON_GONE (86), and until then the process must never
 * read anything but what it wrote, in particular never a zero page where
 * its data was (design.md §1: the client keeps its own copy of the
 * userfaultfd, so a touch of an evicted page blocks instead).
 *
 * Three rounds (enum ending), each with its own daemon and client child
 * (stderr into a file):
 *   SIGKILL, busy  two client threads page at random over a region 4
 *                  times the budget, checking every read;
 *   SIGKILL, idle  the client holds its evicted pages and sleeps;
 *   SIGTERM, busy  as the first, but the daemon stops cleanly: it must
 *                  exit 0 (SHUTDOWN to the client, everything freed).
 * A child that reads a wrong page says so on stderr and exits with
 * EXIT_MISMATCH; it counts its reads and bad reads in shared memory, which
 * outlives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/pattern.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET MIB
#define NPAGES 1024 /* 4 MiB */
#define THREADS 2
#define EXIT_MISMATCH 3
#define WATCHDOG_S 90

struct shared {
	uint64_t seed;
	bool busy;
	char errpath[HD_PATH_MAX];
	int setup_err;
	atomic_int ready; /* pages are evicted and the client does its round's work */
	atomic_uint_fast64_t reads, bad;
	uint64_t evicted;
};

struct client {
	struct shared *S;
	char *map;
	struct pat pat;
	unsigned int id;
};

static struct hd_daemon daemon_;

static void mismatch(struct client *C, uint64_t p, const char *why)
{
	atomic_fetch_add(&C->S->bad, 1);
	dprintf(STDERR_FILENO, "MISMATCH: page %" PRIu64 ": %s\n", p, why);
	_exit(EXIT_MISMATCH);
}

/* Thread @id owns the pages p % THREADS == id; versions live on its stack. */
static void *pager_main(void *arg)
{
	struct client *C = arg;
	struct rng g = { .state = C->S->seed ^ (C->id + 1) };
	uint64_t ver[NPAGES / THREADS] = { 0 };
	char why[96];

	for (uint64_t i = 0; i < NPAGES / THREADS; i++) {
		ver[i] = 1;
		pat_write(&C->pat, C->map + (i * THREADS + C->id) * PAT_PAGE, i * THREADS + C->id,
			  1);
	}
	for (;;) {
		uint64_t i = rng_below(&g, NPAGES / THREADS), p = i * THREADS + C->id;

		if (rng_below(&g, 2)) {
			ver[i] = (ver[i] + 1) & PAT_VERSION_MAX;
			pat_write(&C->pat, C->map + p * PAT_PAGE, p, ver[i]);
			continue;
		}
		if (!pat_verify(&C->pat, C->map + p * PAT_PAGE, p, ver[i], why, sizeof(why)))
			mismatch(C, p, why);
		atomic_fetch_add(&C->S->reads, 1);
	}
	return NULL;
}

static int client_main(void *arg)
{
	struct shared *S = arg;
	struct client C[THREADS];
	struct uzswap_stats st = { 0 };
	struct uzswap *u;
	pthread_t tid;
	void *p;
	int fd = open(S->errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int r;

	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
		return hd_setup_failed(&S->setup_err, -errno);
	r = hd_connect(&daemon_, BUDGET, "doomed", &u);
	if (r == 0)
		r = uzswap_region_create(u, NPAGES * PAT_PAGE, "doomed", &p);
	if (r < 0)
		return hd_setup_failed(&S->setup_err, r);
	for (unsigned int i = 0; i < THREADS; i++)
		C[i] = (struct client){ .S = S,
					.map = p,
					.pat = { .seed = S->seed, .tag = 8, .kind = PAT_MIXED },
					.id = i };
	if (S->busy) {
		for (unsigned int i = 0; i < THREADS; i++)
			if (pthread_create(&tid, NULL, pager_main, &C[i]) != 0)
				return hd_setup_failed(&S->setup_err, -EAGAIN);
		/* Ready once every page was written and paging has gone on for a while. */
		while (uzswap_stats(u, &st) == 0 && st.evictions < 2 * NPAGES)
			hd_sleep_ms(5);
	} else {
		for (uint64_t i = 0; i < NPAGES; i++)
			pat_write(&C[0].pat, C[0].map + i * PAT_PAGE, i, 1);
		hd_wait_evicted(u, NPAGES / 2, 10000, &st);
	}
	S->evicted = st.same_pages + st.pool_pages + st.file_pages;
	atomic_store(&S->ready, 1);
	for (;;)
		pause();
	return 0;
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

/* How a round ends the daemon. */
enum ending {
	KILL_BUSY, /* SIGKILL while the client pages */
	KILL_IDLE, /* SIGKILL while the client sleeps on its evicted pages */
	TERM_BUSY, /* SIGTERM while the client pages: a clean stop, SHUTDOWN to the client */
};

static const char *const ending_names[] = {
	[KILL_BUSY] = "SIGKILL, busy client",
	[KILL_IDLE] = "SIGKILL, idle client",
	[TERM_BUSY] = "SIGTERM, busy client",
};

/* Stop the daemon as @e says; for SIGTERM, that it exits 0 is a test point. */
static void end_daemon(struct hd_daemon *d, enum ending e, const char *round)
{
	char how[160];
	int r;

	if (e != TERM_BUSY) {
		hd_kill(d);
		return;
	}
	r = hd_stop(d, how, sizeof(how));
	ok(r == 0,
	   "%s: the daemon stops cleanly with a client holding evicted pages (expected exit 0, "
	   "saw %s)",
	   round, how);
}

static void run(struct shared *S, enum ending e, unsigned int delay_ms)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "16M" },
		{ "pressure", "interval_ms", "100" },
		{ NULL, NULL, NULL },
	};
	const char *round = ending_names[e];
	struct hd_daemon *d = &daemon_;
	uint64_t start, reads_at_end;
	char how[96], *err;
	int st = 0, r, failures = tap_failures();
	pid_t pid;

	S->busy = e != KILL_IDLE;
	S->setup_err = 0;
	S->evicted = 0;
	atomic_store(&S->ready, 0);
	atomic_store(&S->reads, 0);
	atomic_store(&S->bad, 0);
	if (!ok(hd_start(d, opts) == 0, "%s: the daemon starts", round))
		return;
	hd_path(d, "client.stderr", S->errpath, sizeof(S->errpath));
	pid = hd_spawn(client_main, S);
	if (pid < 0) {
		ok(false, "%s: fork a client: %s", round, strerror(-(int)pid));
		hd_stop_ok(d);
		return;
	}
	start = hd_now_ms();
	while (!atomic_load(&S->ready) && !hd_ended(pid) && hd_now_ms() - start < 20000)
		hd_sleep_ms(5);
	hd_sleep_ms(delay_ms);
	reads_at_end = atomic_load(&S->reads);
	end_daemon(d, e, round);
	r = hd_wait(pid, 10000, &st);
	err = hd_one_line(slurp(S->errpath));
	tap_diag("%s: the daemon went with %" PRIu64 " pages evicted and %" PRIu64
		 " checked reads done; the client then did %" PRIu64 " more; its stderr: %s",
		 round, S->evicted, reads_at_end, (uint64_t)atomic_load(&S->reads) - reads_at_end,
		 err && *err ? err : "(empty)");
	ok(atomic_load(&S->ready) && !S->setup_err && S->evicted >= NPAGES / 2,
	   "%s: the client held evicted pages when the daemon went (%" PRIu64
	   " evicted; setup: %s)",
	   round, S->evicted, strerror(-S->setup_err));
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == UZSWAP_EXIT_DAEMON_GONE,
	   "%s: the client stops with exit status %d (saw %s)", round, UZSWAP_EXIT_DAEMON_GONE,
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)));
	ok(err && strstr(err, "uzswapd") && !strstr(err, "MISMATCH"),
	   "%s: the client's stderr has the library's message about the daemon (saw \"%.200s\")",
	   round, err ? err : "");
	ok(atomic_load(&S->bad) == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == EXIT_MISMATCH),
	   "%s: the client never read other data than it wrote (expected 0 bad reads, saw %" PRIu64
	   " in %" PRIu64 ")",
	   round, (uint64_t)atomic_load(&S->bad), (uint64_t)atomic_load(&S->reads));
	free(err);
	if (tap_failures() > failures) {
		tap_diag("%s: the daemon's log:", round);
		hd_print_log(d, 200);
	}
}

int main(void)
{
	struct shared *S;

	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	S->seed = pat_init(UINT64_C(0xdeadd));
	run(S, KILL_BUSY, 150);
	run(S, KILL_IDLE, 50);
	run(S, TERM_BUSY, 150);
	return tap_done();
}
