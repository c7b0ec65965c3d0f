/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_syscalls.c - system calls on evicted managed
 * memory are served, never fail with EFAULT.
 *
 * The kernel, not the program, touches the memory here: write(2) from a
 * managed buffer reads its pages inside the kernel, read(2) into one
 * writes them.  When a page is evicted, the kernel's copy takes a MISSING
 * (or WP) fault on the client's userfaultfd, which must be a non
 * user-mode-only one (design.md §1), and the daemon serves it as it serves
 * the program's own faults.
 *
 * A client child with a 1 MiB budget fills a 4 MiB region (real pages),
 * waits until at least 3/4 of it is evicted, then, each time on a region
 * mostly evicted again:
 *   A  write(2) of the whole region to a regular file, in one call;
 *   B  write(2) of it into a pipe, 64 KiB at a time (read back by itself);
 *   C  read(2) of a regular file into the whole region, in one call;
 *   D  read(2) from a pipe into it, 64 KiB at a time.
 * Each must transfer every byte without an error, and the bytes must be
 * the right ones: the file or pipe holds the region's pages (A, B), the
 * region holds the file's or pipe's (C, D).  The daemon's fault count must
 * grow during each call: the kernel really met evicted pages.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET MIB
#define REGION (4 * MIB)
#define NPAGES (REGION / PAT_PAGE)
#define EVICTED_MIN (NPAGES * 3 / 4)
#define CHUNK (64 * 1024) /* a pipe's default capacity */
#define EVICT_TIMEOUT_MS 10000
#define WATCHDOG_S 90

enum step {
	STEP_FILE_OUT,
	STEP_PIPE_OUT,
	STEP_FILE_IN,
	STEP_PIPE_IN,
	NSTEPS
};

static const char *const step_names[NSTEPS] = {
	[STEP_FILE_OUT] = "write(2) from evicted managed pages to a regular file",
	[STEP_PIPE_OUT] = "write(2) from evicted managed pages into a pipe",
	[STEP_FILE_IN] = "read(2) from a regular file into evicted managed pages",
	[STEP_PIPE_IN] = "read(2) from a pipe into evicted managed pages",
};

struct step_result {
	bool ran;
	uint64_t evicted_before; /* pages evicted when the step started */
	uint64_t bytes;		 /* transferred by the system calls under test */
	uint64_t calls;
	int err; /* the first errno of a failed call, 0 */
	uint64_t efaults;
	uint64_t faults; /* served during the step */
	uint64_t bad_pages;
	char why[128]; /* the first bad page */
};

struct shared {
	uint64_t seed;
	char path[HD_PATH_MAX]; /* the regular file */
	int setup_err;
	struct step_result r[NSTEPS];
};

static struct hd_daemon daemon_;

struct client {
	struct shared *S;
	struct uzswap *u;
	char *map;
	struct pat pat;
	int fd;	     /* the regular file */
	int pipe[2]; /* read end, write end */
	uint64_t version;
	uint64_t *priv; /* a private buffer the size of the region */
};

static void note_bad(struct step_result *r, uint64_t p, const char *why)
{
	if (!r->bad_pages++)
		snprintf(r->why, sizeof(r->why), "page %" PRIu64 ": %s", p, why);
}

static void note_call(struct step_result *r, ssize_t n, size_t want)
{
	r->calls++;
	if (n > 0)
		r->bytes += (uint64_t)n;
	if (n < 0 && errno == EFAULT)
		r->efaults++;
	if (n < 0 && !r->err)
		r->err = errno;
	if (n >= 0 && (size_t)n != want && !r->err)
		r->err = EIO; /* short: counted as an error, the bytes say how short */
}

/* Are the @npages pages at @buf (private memory) pages first..first+n at the current version? */
static void check_private(struct client *C, struct step_result *r, const uint64_t *buf,
			  uint64_t first, uint64_t npages)
{
	char why[96];

	for (uint64_t i = 0; i < npages; i++)
		if (!pat_check(&C->pat, first + i, C->version, buf + i * PAT_WORDS, why,
			       sizeof(why)))
			note_bad(r, first + i, why);
}

static void check_region(struct client *C, struct step_result *r)
{
	char why[96];

	for (uint64_t p = 0; p < NPAGES; p++)
		if (!pat_verify(&C->pat, C->map + p * PAT_PAGE, p, C->version, why, sizeof(why)))
			note_bad(r, p, why);
}

/* Before a step: the region is mostly evicted.  Returns the faults so far. */
static uint64_t step_begin(struct client *C, struct step_result *r)
{
	struct uzswap_stats st = { 0 };

	r->ran = true;
	hd_wait_evicted(C->u, EVICTED_MIN, EVICT_TIMEOUT_MS, &st);
	r->evicted_before = st.same_pages + st.pool_pages + st.file_pages;
	return st.faults;
}

static void step_end(struct client *C, struct step_result *r, uint64_t faults_before)
{
	struct uzswap_stats st = { 0 };

	if (uzswap_stats(C->u, &st) == 0)
		r->faults = st.faults - faults_before;
}

static void step_file_out(struct client *C, struct step_result *r)
{
	uint64_t f0 = step_begin(C, r);
	ssize_t n;

	n = write(C->fd, C->map, REGION);
	note_call(r, n, REGION);
	step_end(C, r, f0);
	if (pread(C->fd, C->priv, REGION, 0) != (ssize_t)REGION)
		note_bad(r, 0, "the file could not be read back");
	else
		check_private(C, r, C->priv, 0, NPAGES);
}

static void step_pipe_out(struct client *C, struct step_result *r)
{
	uint64_t f0 = step_begin(C, r);

	for (uint64_t off = 0; off < REGION; off += CHUNK) {
		ssize_t n = write(C->pipe[1], C->map + off, CHUNK), got = 0;

		note_call(r, n, CHUNK);
		while (n > 0 && got < n) {
			ssize_t k = read(C->pipe[0], (char *)C->priv + got, (size_t)(n - got));

			if (k <= 0)
				break;
			got += k;
		}
		check_private(C, r, C->priv, off / PAT_PAGE, (uint64_t)got / PAT_PAGE);
	}
	step_end(C, r, f0);
}

static void step_file_in(struct client *C, struct step_result *r)
{
	uint64_t f0;
	ssize_t n;

	C->version++;
	for (uint64_t p = 0; p < NPAGES; p++)
		pat_page(&C->pat, p, C->version, C->priv + p * PAT_WORDS);
	if (pwrite(C->fd, C->priv, REGION, 0) != (ssize_t)REGION) {
		r->err = errno ? errno : EIO;
		return;
	}
	f0 = step_begin(C, r);
	lseek(C->fd, 0, SEEK_SET);
	n = read(C->fd, C->map, REGION);
	note_call(r, n, REGION);
	step_end(C, r, f0);
	check_region(C, r);
}

static void step_pipe_in(struct client *C, struct step_result *r)
{
	uint64_t f0;

	C->version++;
	f0 = step_begin(C, r);
	for (uint64_t off = 0; off < REGION; off += CHUNK) {
		uint64_t first = off / PAT_PAGE;
		ssize_t n;

		for (uint64_t i = 0; i < CHUNK / PAT_PAGE; i++)
			pat_page(&C->pat, first + i, C->version, C->priv + i * PAT_WORDS);
		if (write(C->pipe[1], C->priv, CHUNK) != CHUNK) {
			r->err = r->err ? r->err : errno;
			break;
		}
		n = read(C->pipe[0], C->map + off, CHUNK);
		note_call(r, n, CHUNK);
	}
	step_end(C, r, f0);
	check_region(C, r);
}

static int client_main(void *arg)
{
	struct shared *S = arg;
	struct client C = { .S = S, .pat = { .seed = S->seed, .tag = 2, .kind = PAT_REAL } };
	void *map;
	int r;

	C.priv = malloc(REGION);
	C.fd = open(S->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (!C.priv || C.fd < 0 || pipe2(C.pipe, O_CLOEXEC) < 0)
		return hd_setup_failed(&S->setup_err, -errno);
	r = hd_connect(&daemon_, 0, "syscalls", &C.u);
	if (r < 0)
		return hd_setup_failed(&S->setup_err, r);
	r = uzswap_region_create(C.u, REGION, "syscalls", &map);
	if (r < 0) {
		tap_diag("client: uzswap_region_create: %s: %s", strerror(-r),
			 uzswap_last_error(C.u));
		return hd_setup_failed(&S->setup_err, r);
	}
	C.map = map;
	C.version = 1;
	for (uint64_t p = 0; p < NPAGES; p++)
		pat_write(&C.pat, C.map + p * PAT_PAGE, p, C.version);
	step_file_out(&C, &S->r[STEP_FILE_OUT]);
	step_pipe_out(&C, &S->r[STEP_PIPE_OUT]);
	step_file_in(&C, &S->r[STEP_FILE_IN]);
	step_pipe_in(&C, &S->r[STEP_PIPE_IN]);
	uzswap_region_release(C.u, map);
	uzswap_close(C.u);
	return 0;
}

static void report(const struct shared *S, enum step s)
{
	const struct step_result *r = &S->r[s];

	ok(r->ran && !r->err && !r->efaults && r->bytes == REGION &&
		   r->evicted_before >= EVICTED_MIN && r->faults > 0,
	   "%s is served: every byte moved, no EFAULT (expected %" PRIu64 " bytes, no error; "
	   "saw %" PRIu64 " bytes in %" PRIu64 " calls, error \"%s\", %" PRIu64 " EFAULT; %" PRIu64
	   " of %" PRIu64 " pages were evicted before, %" PRIu64 " faults served during it)",
	   step_names[s], REGION, r->bytes, r->calls, r->err ? strerror(r->err) : "none",
	   r->efaults, r->evicted_before, NPAGES, r->faults);
	ok(r->ran && r->bad_pages == 0,
	   "%s moves the right bytes (expected 0 bad pages, saw %" PRIu64 "%s%s)", step_names[s],
	   r->bad_pages, r->bad_pages ? "; first " : "", r->why);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "1M" },
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
	S->seed = pat_init(UINT64_C(0x5c0a11));
	if (!ok(hd_start(d, opts) == 0, "the daemon starts with a 1 MiB client budget"))
		return tap_done();
	hd_path(d, "data", S->path, sizeof(S->path));
	pid = hd_spawn(client_main, S);
	r = pid < 0 ? (int)pid : hd_wait(pid, 60000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !S->setup_err,
	   "the client runs every step to the end (expected exit 0, saw %s; setup: %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), strerror(-S->setup_err));
	for (enum step s = 0; s < NSTEPS; s++)
		report(S, s);
	hd_stop_ok(d);
	return tap_done();
}
