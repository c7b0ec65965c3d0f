/* SPDX-License-Identifier: MIT */
/*
 * bench/faultbench.c - the daemon end to end: fault latency, restore,
 * eviction throughput, the reclaim policy and metadata cost, measured on a
 * real uzswapd serving a real libuzswap client.
 *
 *   faultbench [--quick] [--no-sample] [--daemon PATH] [--pages FILE] [--only NAME]
 *   (as root)
 *
 * Each scenario starts its own uzswapd (PATH, default ../daemon/uzswapd
 * beside this program) on a config written into a private directory
 * /tmp/faultbench.XXXXXX (its socket is there too, and daemon.log, its
 * stderr), uses it from this process through libuzswap, releases its
 * region and stops the daemon with SIGTERM.  The daemon is killed and the
 * directory removed on every way out: normal exit, error, SIGINT/TERM/
 * HUP/QUIT, a crash (SIGSEGV/BUS/ABRT), and the daemon dies with us
 * (PR_SET_PDEATHSIG).  One exception: if the daemon dies under us, libuzswap
 * stops this process at once (uzswap.h) and the directory stays, with the
 * daemon's log in it, for the post-mortem.  Pressure-driven reclaim is off
 * in every config (psi_some_avg10 = min_available = 0) so that other work
 * on the machine cannot change what is evicted, and so is readahead
 * (page_cluster = 0) but in the readahead scenarios: a fault fills its
 * own page only.
 *
 * Managed memory is filled with the real pages of FILE (default
 * $UZSWAP_PAGES_DIR, else the configure-time page folder, /redis.pages.zst),
 * region page i = file page i mod npages, kept in ordinary memory to verify
 * what comes back.  Latencies are timed in this process: CLOCK_MONOTONIC
 * around a one-byte read, so a fault's whole round trip (block, daemon,
 * wake); faults_per_s = accesses / sum of their latencies.  Pages whose
 * data is same-filled are never picked for a restore (they come back from
 * the entry, not the pool).  Evicted pages are found with mincore(2): a
 * punched page of the memfd is not in core.  daemon_p50_us/daemon_p99_us:
 * the daemon's own time from reading a fault to waking its thread, for
 * that kind of fault (zero fill, or pool), over the client's life (STATUS).
 * One line per scenario:
 *
 *  first_touch      read one byte of each of N never-touched pages (zero fill),
 *                   budget above N: no eviction.
 *  restore_lz4, restore_zstd1   watermarks 100/10, fill 4x the budget, wait
 *                   until resident stops changing (when K more would not fit
 *                   under the budget, restore evicted pages untimed until one
 *                   more reclaim round takes it down to 10%), then read K random
 *                   evicted pages, K small enough to stay below the budget so
 *                   that reclaim does not run (evictions_during says so); every
 *                   restored page is compared with its data.
 *  restore_evicting lz4, watermarks 100/90, fill 4x the budget, then T seconds
 *                   of reads of random evicted pages: the client keeps going
 *                   over its budget and reclaim evicts 10% of it meanwhile.
 *                   Every 16th page read is compared with its data.
 *  evict_lz4        fill 8x the budget: pages_per_s = evictions / evict_ns (the
 *                   daemon's time evicting this client's pages);
 *                   fill_evictions_per_s = evictions during the fill / its
 *                   wall-clock time.  Run with access sampling (the
 *                   default), then as evict_lz4_nosample without, for its cost.
 *  zipf_workingset, zipf_fifo   one precomputed sequence (zipf, exponent 1.0,
 *                   over the region's pages in a seeded random order; a
 *                   quarter of the accesses are writes, of the byte already
 *                   there) run against [reclaim] policy = workingset, then
 *                   fifo, each on a fresh daemon, region 4x the budget,
 *                   watermarks 100/90.  refaults = faults - first touches
 *                   (uzswap_stats) over the measured accesses, after a warm-up
 *                   of the same sequence whose refaults are reported apart.
 *                   Pacing, so that both policies see the same resident set
 *                   whatever the machine's speed: the accesses go in batches
 *                   of ZIPF_BATCH; after a batch that left the client over its
 *                   budget, the client waits until reclaim has brought it back
 *                   to its low watermark (+ one batch), or has stopped (20 ms
 *                   without change).  So the resident set never exceeds the
 *                   budget by more than a batch, as with synchronous reclaim.
 *                   zipf_compare: 100 x (fifo - workingset) / fifo.
 *  readahead_seq, readahead_random   as restore_lz4, with page_cluster 0
 *                   and then 3: k evicted pages read in address order, then
 *                   at random; readahead = the pages the daemon filled ahead
 *                   of those faults (STATUS, before and after).
 *  readahead_zero   first touches of N never-touched pages in address order,
 *                   page_cluster 0 and then 3 (zero-filled ahead).
 *  restore_file     as restore_lz4, with an 8 MiB pool: most evicted pages are
 *                   in the backing file once writeback has settled; K random
 *                   evicted pages are read (from_file says how many were
 *                   restores from the file, from_memory how many of those
 *                   had their write still in flight); daemon_p50/p99 are the
 *                   daemon's figures for restores from the file.
 *  writeback        fill 8x the budget with a 16 MiB pool: pages_per_s and
 *                   compressed_MBps = what writeback wrote / the time its
 *                   thread spent writing back (wb_busy_ns); wall_pages_per_s
 *                   over the fill and until writeback settled.
 *  file_space       fill 4x the budget with an 8 MiB pool, then random reads
 *                   and writes for the restore_evicting time; the backing
 *                   file's disk bytes / the compressed bytes it stores, right
 *                   after the churn and once the cleaner has settled.
 *  metadata_file    metadata with a 64 MiB pool: nearly every evicted page is in
 *                   the backing file, whose tables count as outside the pool.
 *  metadata         4 GiB of managed memory (1 GiB with --quick), budget 256M,
 *                   filled; bytes_per_page = (daemon RSS - pool_total_bytes of
 *                   a STATUS request) / managed_pages, which counts the pool's
 *                   own tables (pool_meta_bytes: handle table, descriptors) as
 *                   outside the pool; bytes_per_page_outside_pool counts them
 *                   as the pool's: (RSS - pool_total_bytes - pool_meta_bytes)
 *                   / managed_pages.  The RSS of the idle daemon, before the
 *                   client came, is reported too.
 *
 * --quick shrinks every size and duration (all in under a minute on two
 * CPUs); --only runs the scenarios whose name starts with NAME.  Exit
 * status: 0, 1 when a scenario failed or a page came back wrong, 2 for a
 * usage error.  A benchmark, not a test: `make bench` runs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/pagefile.h"
#include "include/uzswap.h"
#include "include/uzswap_proto.h"

#ifndef UZ_PAGES_DIR
#define UZ_PAGES_DIR "../shared/data/pages"
#endif

#define PG PF_PAGE_SIZE
#define MIB ((uint64_t)1 << 20)
#define DAEMON_START_MS 10000
#define DAEMON_STOP_MS 15000
#define SETTLE_POLL_MS 50
#define SETTLE_STABLE_POLLS 4 /* unchanged this many polls in a row: settled */
#define SETTLE_MAX_MS 60000
#define RESTORE_MARGIN 64   /* pages kept between the restored set and the budget */
#define VERIFY_EVERY 16	    /* restore_evicting compares every 16th page */
#define READAHEAD_CLUSTER 3 /* compared with 0; k leaves room for 2^3 pages a fault */
#define ZIPF_BATCH 64
#define ZIPF_STILL_MS 20 /* reclaim has stopped when resident is still this long */
#define ZIPF_WAIT_MAX_MS 2000
#define ZIPF_SEED 0x5eed2026ULL
#define ZIPF_WRITE_BIT 0x80000000u

/* Sizes and durations of one run: the full one, or --quick. */
struct plan {
	size_t touch_pages;
	uint64_t restore_budget;
	size_t restore_k;
	uint64_t evicting_budget;
	double evicting_s;
	uint64_t evict_budget;
	uint64_t zipf_budget;
	size_t zipf_warmup, zipf_accesses;
	uint64_t meta_budget, meta_bytes;
};

static const struct plan full_plan = {
	.touch_pages = 100000,
	.restore_budget = 128 * MIB,
	.restore_k = 20000,
	.evicting_budget = 128 * MIB,
	.evicting_s = 15,
	.evict_budget = 128 * MIB,
	.zipf_budget = 64 * MIB,
	.zipf_warmup = 100000,
	.zipf_accesses = 400000,
	.meta_budget = 256 * MIB,
	.meta_bytes = 4096 * MIB,
};

static const struct plan quick_plan = {
	.touch_pages = 20000,
	.restore_budget = 32 * MIB,
	.restore_k = 5000,
	.evicting_budget = 32 * MIB,
	.evicting_s = 3,
	.evict_budget = 32 * MIB,
	.zipf_budget = 16 * MIB,
	.zipf_warmup = 30000,
	.zipf_accesses = 120000,
	.meta_budget = 256 * MIB,
	.meta_bytes = 1024 * MIB,
};

struct opts {
	bool quick;
	bool no_sample; /* every daemon without access sampling */
	const char *only;
	char daemon[PATH_MAX];
	char pages[PATH_MAX];
};

/* The settings a scenario gives its daemon. */
struct daemon_cfg {
	uint64_t budget; /* client_max_resident, bytes; the client asks for it too */
	unsigned int high, low;
	const char *codec;
	int level;
	const char *policy;
	unsigned int cluster; /* [fault] page_cluster */
	bool no_sample;	      /* [reclaim] sample_pct = 0: no access sampling */
	const char *pool_max; /* [pool] max_size; NULL: the default */
};

struct daemon {
	char dir[64];
	char conf[PATH_MAX], sock[108], log[PATH_MAX];
	pid_t pid; /* running; 0 once reaped */
};

/* One scenario's daemon, client and region. */
struct bench {
	struct daemon d;
	struct uzswap *u;
	unsigned char *region;
	size_t npages;
	uint64_t budget_pages;
	unsigned int high, low;
};

/* The file's pages, and which are same-filled. */
static struct {
	unsigned char *data;
	bool *same;
	size_t n;
} pages;

/* ---- cleanup, from any path (async-signal-safe) ---- */

static pid_t owner;
static volatile pid_t cl_pid;
static volatile sig_atomic_t cl_dir_set;
static char cl_dir[64], cl_files[3][PATH_MAX];

/*
 * The directory goes first: once the daemon is killed, libuzswap's watcher
 * thread may end this process (_exit) before the handler is done.
 */
static void cleanup_sigsafe(void)
{
	pid_t pid = cl_pid;

	if (getpid() != owner)
		return;
	if (cl_dir_set) {
		for (int i = 0; i < 3; i++)
			unlink(cl_files[i]);
		rmdir(cl_dir);
		cl_dir_set = 0;
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		cl_pid = 0;
	}
}

static void on_signal(int sig)
{
	cleanup_sigsafe();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_cleanup(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGBUS, SIGABRT };
	struct sigaction sa;

	owner = getpid();
	atexit(cleanup_sigsafe);
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- small helpers ---- */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* splitmix64: a seed gives the same sequence on every run. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static const unsigned char *expected(size_t i)
{
	return pages.data + (i % pages.n) * PG;
}

static bool page_is_same(const unsigned char *p)
{
	uint64_t w0, w;

	memcpy(&w0, p, sizeof(w0));
	for (size_t off = sizeof(w); off < PG; off += sizeof(w)) {
		memcpy(&w, p + off, sizeof(w));
		if (w != w0)
			return false;
	}
	return true;
}

/* One byte of managed page @p read, timed: the whole fault when it is not resident. */
static uint64_t timed_read(const unsigned char *p)
{
	uint64_t t0 = now_ns(), t1;

	__asm__ __volatile__("" ::: "memory");
	(void)*(const volatile unsigned char *)p;
	__asm__ __volatile__("" ::: "memory");
	t1 = now_ns();
	return t1 - t0;
}

/* The same, untimed. */
static void touch(const unsigned char *p)
{
	(void)*(const volatile unsigned char *)p;
}

/* ---- latency sets ---- */

struct lat {
	uint64_t *ns;
	size_t n, cap;
	uint64_t sum;
};

static int lat_add(struct lat *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4096;
		uint64_t *p = realloc(l->ns, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		l->ns = p;
		l->cap = cap;
	}
	l->ns[l->n++] = ns;
	l->sum += ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank quantile of the sorted set, in microseconds. */
static double lat_q(const struct lat *l, double q)
{
	double x = q * (double)l->n;
	size_t rank = (size_t)x + ((double)(size_t)x < x);

	if (!l->n)
		return 0;
	return (double)l->ns[rank ? rank - 1 : 0] / 1e3;
}

/* " p50_us=... faults_per_s=..." (sorts the set). */
static void lat_print(struct lat *l)
{
	qsort(l->ns, l->n, sizeof(l->ns[0]), cmp_u64);
	printf(" p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f faults_per_s=%.0f",
	       lat_q(l, 0.5), lat_q(l, 0.9), lat_q(l, 0.99), lat_q(l, 0.999), lat_q(l, 1.0),
	       l->sum ? (double)l->n * 1e9 / (double)l->sum : 0.0);
}

/* ---- the daemon ---- */

static void print_log_tail(const struct daemon *d)
{
	char buf[4096];
	ssize_t n;
	off_t size;
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) ? size - (off_t)sizeof(buf) : 0, SEEK_SET);
	fprintf(stderr, "faultbench: the end of %s:\n", d->log);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	close(fd);
}

static int write_config(const struct daemon *d, const struct daemon_cfg *c)
{
	FILE *f = fopen(d->conf, "we");

	if (!f)
		return -errno;
	fprintf(f,
		"[daemon]\nsocket = %s\nlog_level = info\n"
		"[backing]\npath = %s/\n"
		"[budget]\nclient_max_resident = %" PRIu64 "K\n"
		"high_watermark = %u\nlow_watermark = %u\n"
		"[pressure]\npsi_some_avg10 = 0\nmin_available = 0\n"
		"[compress]\ncodec = %s\nlevel = %d\n"
		"[fault]\npage_cluster = %u\n"
		"[reclaim]\npolicy = %s\n%s",
		d->sock, d->dir, c->budget >> 10, c->high, c->low, c->codec, c->level, c->cluster,
		c->policy ? c->policy : "workingset", c->no_sample ? "sample_pct = 0\n" : "");
	if (c->pool_max)
		fprintf(f, "[pool]\nmax_size = %s\n", c->pool_max);
	return fclose(f) == 0 ? 0 : -errno;
}

static int make_dir(struct daemon *d)
{
	char tmpl[] = "/tmp/faultbench.XXXXXX";

	if (!mkdtemp(tmpl))
		return -errno;
	snprintf(d->dir, sizeof(d->dir), "%s", tmpl);
	snprintf(d->conf, sizeof(d->conf), "%s/uzswapd.conf", tmpl);
	snprintf(d->sock, sizeof(d->sock), "%s/uzswapd.sock", tmpl);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", tmpl);
	memcpy(cl_dir, d->dir, sizeof(cl_dir));
	memcpy(cl_files[0], d->conf, sizeof(cl_files[0]));
	memcpy(cl_files[1], d->sock, sizeof(d->sock));
	memcpy(cl_files[2], d->log, sizeof(cl_files[2]));
	cl_dir_set = 1;
	return 0;
}

/* In the child: die with us, log to the directory, become the daemon. */
static void exec_daemon(const char *exe, const struct daemon *d, pid_t parent)
{
	sigset_t none;
	int nul = open("/dev/null", O_RDONLY), log;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(125);
	log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (nul < 0 || log < 0)
		_exit(126);
	dup2(nul, STDIN_FILENO);
	dup2(log, STDOUT_FILENO);
	dup2(log, STDERR_FILENO);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	execl(exe, exe, "--config", d->conf, (char *)NULL);
	dprintf(STDERR_FILENO, "exec %s: %s\n", exe, strerror(errno));
	_exit(127);
}

static bool socket_answers(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Reap the daemon if it has ended; true when it has. */
static bool daemon_ended(struct daemon *d, int *wstatus)
{
	pid_t r;

	if (!d->pid)
		return true;
	r = waitpid(d->pid, wstatus, WNOHANG);
	if (r != d->pid)
		return false;
	d->pid = 0;
	cl_pid = 0;
	return true;
}

static void remove_dir(struct daemon *d)
{
	unlink(d->conf);
	unlink(d->sock);
	unlink(d->log);
	rmdir(d->dir);
	cl_dir_set = 0;
}

static int daemon_start(const char *exe, const struct daemon_cfg *c, struct daemon *d)
{
	uint64_t deadline = now_ns() + DAEMON_START_MS * 1000000ULL;
	pid_t parent = getpid(), pid;
	int err, st = 0;

	memset(d, 0, sizeof(*d));
	err = make_dir(d);
	if (err) {
		fprintf(stderr, "faultbench: mkdtemp: %s\n", strerror(-err));
		return err;
	}
	err = write_config(d, c);
	if (err) {
		fprintf(stderr, "faultbench: %s: %s\n", d->conf, strerror(-err));
		goto err_dir;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		fprintf(stderr, "faultbench: fork: %s\n", strerror(errno));
		goto err_dir;
	}
	if (pid == 0)
		exec_daemon(exe, d, parent);
	d->pid = pid;
	cl_pid = pid;
	while (!socket_answers(d->sock)) {
		if (daemon_ended(d, &st)) {
			fprintf(stderr,
				"faultbench: %s exited (wait status %#x) before answering\n", exe,
				st);
			err = -ECHILD;
			goto err_log;
		}
		if (now_ns() > deadline) {
			fprintf(stderr, "faultbench: %s: no answer on %s after %d ms\n", exe,
				d->sock, DAEMON_START_MS);
			err = -ETIMEDOUT;
			goto err_log;
		}
		sleep_ms(5);
	}
	return 0;

err_log:
	print_log_tail(d);
	cleanup_sigsafe();
	return err;
err_dir:
	remove_dir(d);
	return err;
}

/* SIGTERM, then SIGKILL after DAEMON_STOP_MS; 0 when it exited 0.  Removes the directory. */
static int daemon_stop(struct daemon *d)
{
	uint64_t deadline = now_ns() + DAEMON_STOP_MS * 1000000ULL;
	int st = 0, err = 0;

	if (d->pid)
		kill(d->pid, SIGTERM);
	while (!daemon_ended(d, &st)) {
		if (now_ns() > deadline) {
			fprintf(stderr,
				"faultbench: uzswapd did not stop on SIGTERM: killing it\n");
			kill(d->pid, SIGKILL);
			while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
				;
			d->pid = 0;
			cl_pid = 0;
			err = -ETIMEDOUT;
			break;
		}
		sleep_ms(5);
	}
	if (!err && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		fprintf(stderr, "faultbench: uzswapd ended with wait status %#x\n", st);
		print_log_tail(d);
		err = -EIO;
	}
	remove_dir(d);
	return err;
}

/* VmRSS-equivalent of @pid from smaps_rollup (status as a fallback), bytes; 0 if unknown. */
static uint64_t process_rss(pid_t pid)
{
	static const char *const files[] = { "smaps_rollup", "status" };
	unsigned long long kib;
	char path[64], line[256];

	for (int i = 0; i < 2; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, i ? "VmRSS: %llu kB" : "Rss: %llu kB", &kib) == 1) {
				fclose(f);
				return (uint64_t)kib << 10;
			}
		}
		fclose(f);
	}
	return 0;
}

/* ---- STATUS, as uzswapctl asks it ---- */

static int status_reply(int sock, uint64_t *bytes)
{
	union {
		struct uzp_header h;
		char buf[UZP_DATAGRAM_MAX + 1];
	} msg;
	struct uzp_reply rep;
	struct uzp_status_ok ok;
	int fds[UZP_FDS_MAX], nfds = 0;
	ssize_t n = uzp_recv(sock, msg.buf, sizeof(msg.buf), fds, &nfds);

	while (nfds)
		close(fds[--nfds]);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(msg.h) + sizeof(rep) || msg.h.magic != UZP_MAGIC ||
	    msg.h.type != UZP_REPLY)
		return -EPROTO;
	memcpy(&rep, msg.buf + sizeof(msg.h), sizeof(rep));
	if (rep.status < 0)
		return rep.status;
	if (rep.body_length != sizeof(ok) || (size_t)n < sizeof(msg.h) + sizeof(rep) + sizeof(ok))
		return -EPROTO;
	memcpy(&ok, msg.buf + sizeof(msg.h) + sizeof(rep), sizeof(ok));
	*bytes = ok.bytes;
	return 0;
}

/*
 * The daemon's whole state into *@out (malloc'd): struct uzp_status, then
 * its clients.  0 or -errno.
 */
static int daemon_status(const struct daemon *d, unsigned char **out, size_t *len)
{
	struct uzp_header h = {
		.magic = UZP_MAGIC, .version = UZP_VERSION, .type = UZP_STATUS, .seq = 1
	};
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	struct uzp_status st;
	uint64_t bytes = 0;
	unsigned char *buf = NULL;
	int sock, memfd, err;

	sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	memfd = memfd_create("faultbench-status", MFD_CLOEXEC);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->sock);
	if (memfd < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		err = -errno;
		goto out;
	}
	err = uzp_send(sock, &h, NULL, 0, &memfd, 1);
	if (!err)
		err = status_reply(sock, &bytes);
	if (err)
		goto out;
	if (bytes < sizeof(st) || bytes > (64 * MIB)) {
		err = -EPROTO;
		goto out;
	}
	buf = malloc(bytes);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	if (pread(memfd, buf, bytes, 0) != (ssize_t)bytes) {
		err = -EIO;
		goto out;
	}
	memcpy(&st, buf, sizeof(st));
	if (st.magic != UZP_MAGIC ||
	    bytes < sizeof(st) + (uint64_t)st.n_clients * sizeof(struct uzp_status_client)) {
		err = -EPROTO;
		goto out;
	}
	*out = buf;
	*len = bytes;
	buf = NULL;
out:
	free(buf);
	if (memfd >= 0)
		close(memfd);
	close(sock);
	return err;
}

/* The daemon's figures and its first client's (this scenario has one); 0 or -errno. */
static int status_of(const struct daemon *d, struct uzp_status *st, struct uzp_status_client *cl)
{
	unsigned char *buf;
	size_t len;
	int err = daemon_status(d, &buf, &len);

	if (err) {
		fprintf(stderr, "faultbench: STATUS: %s\n", strerror(-err));
		return err;
	}
	memcpy(st, buf, sizeof(*st));
	memset(cl, 0, sizeof(*cl));
	if (st->n_clients)
		memcpy(cl, buf + sizeof(*st), sizeof(*cl));
	free(buf);
	return 0;
}

/* ---- one scenario's client ---- */

static int bench_connect(struct bench *b, size_t npages)
{
	char why[512] = "";
	struct uzswap_options uo = {
		.max_resident = b->budget_pages * PG,
		.name = "faultbench",
		.error = why,
		.error_len = sizeof(why),
	};
	void *addr;
	int err;

	err = uzswap_connect(b->d.sock, &uo, &b->u);
	if (err) {
		fprintf(stderr, "faultbench: connect: %s\n", why);
		return err;
	}
	err = uzswap_region_create(b->u, npages * PG, "faultbench", &addr);
	if (err) {
		fprintf(stderr, "faultbench: region of %zu pages: %s\n", npages,
			uzswap_last_error(b->u));
		uzswap_close(b->u);
		b->u = NULL;
		return err;
	}
	b->region = addr;
	b->npages = npages;
	return 0;
}

static int bench_daemon(const struct opts *o, const struct daemon_cfg *c, struct bench *b)
{
	memset(b, 0, sizeof(*b));
	b->budget_pages = c->budget / PG;
	b->high = c->high;
	b->low = c->low;
	if (o->no_sample && !c->no_sample) {
		struct daemon_cfg plain = *c;

		plain.no_sample = true;
		return daemon_start(o->daemon, &plain, &b->d);
	}
	return daemon_start(o->daemon, c, &b->d);
}

/* A daemon with @c, a client, a region of @npages pages. */
static int bench_open(const struct opts *o, const struct daemon_cfg *c, size_t npages,
		      struct bench *b)
{
	int err = bench_daemon(o, c, b);

	if (err)
		return err;
	err = bench_connect(b, npages);
	if (err)
		daemon_stop(&b->d);
	return err;
}

/* Give the region back, disconnect (before the daemon goes: uzswap.h), stop the daemon. */
static int bench_close(struct bench *b)
{
	uzswap_close(b->u);
	b->u = NULL;
	return daemon_stop(&b->d);
}

static int get_stats(struct bench *b, struct uzswap_stats *st)
{
	int err = uzswap_stats(b->u, st);

	if (err)
		fprintf(stderr, "faultbench: stats: %s\n", uzswap_last_error(b->u));
	return err;
}

static void fill(struct bench *b)
{
	for (size_t i = 0; i < b->npages; i++)
		memcpy(b->region + i * PG, expected(i), PG);
}

/* Wait until resident and evictions stop changing: reclaim has done its rounds. */
static int settle(struct bench *b, struct uzswap_stats *st)
{
	uint64_t deadline = now_ns() + SETTLE_MAX_MS * 1000000ULL;
	uint64_t res = UINT64_MAX, ev = UINT64_MAX;
	int stable = 0, err;

	for (;;) {
		err = get_stats(b, st);
		if (err)
			return err;
		if (st->resident_pages == res && st->evictions == ev) {
			if (++stable == SETTLE_STABLE_POLLS)
				return 0;
		} else {
			stable = 0;
		}
		res = st->resident_pages;
		ev = st->evictions;
		if (now_ns() > deadline) {
			fprintf(stderr, "faultbench: reclaim did not settle in %d ms\n",
				SETTLE_MAX_MS);
			return -ETIMEDOUT;
		}
		sleep_ms(SETTLE_POLL_MS);
	}
}

/* Region pages not in core (evicted) and not same-filled, into @out; how many. */
static size_t evicted_pages(struct bench *b, size_t *out)
{
	unsigned char *vec = malloc(b->npages);
	size_t n = 0;

	if (!vec || mincore(b->region, b->npages * PG, vec) < 0) {
		fprintf(stderr, "faultbench: mincore: %s\n", strerror(vec ? errno : ENOMEM));
		free(vec);
		return 0;
	}
	for (size_t i = 0; i < b->npages; i++)
		if (!(vec[i] & 1) && !pages.same[i % pages.n])
			out[n++] = i;
	free(vec);
	return n;
}

static bool evicted(const struct bench *b, size_t i)
{
	unsigned char v = 1;

	return mincore(b->region + i * PG, PG, &v) == 0 && !(v & 1);
}

/* Compare region page @i with its data; 1 on a mismatch (said on stderr). */
static int verify(const struct bench *b, size_t i)
{
	if (memcmp(b->region + i * PG, expected(i), PG) == 0)
		return 0;
	fprintf(stderr, "faultbench: MISMATCH: region page %zu differs from file page %zu\n", i,
		i % pages.n);
	return 1;
}

/* ---- first_touch ---- */

static int sc_first_touch(const struct opts *o, const struct plan *p)
{
	struct daemon_cfg c = { .budget = (p->touch_pages * PG + 64 * MIB) & ~(MIB - 1),
				.high = 100,
				.low = 90,
				.codec = "lz4" };
	struct uzp_status_client cl;
	struct uzp_status ds;
	struct uzswap_stats st;
	struct lat l = { 0 };
	struct bench b;
	int err;

	err = bench_open(o, &c, p->touch_pages, &b);
	if (err)
		return err;
	for (size_t i = 0; i < b.npages && !err; i++)
		err = lat_add(&l, timed_read(b.region + i * PG));
	if (!err)
		err = get_stats(&b, &st);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	if (!err) {
		printf("scenario=first_touch pages=%zu", l.n);
		lat_print(&l);
		printf(" faults_zero=%" PRIu64 " evictions=%" PRIu64
		       " daemon_p50_us=%.1f daemon_p99_us=%.1f\n",
		       st.faults_zero, st.evictions, (double)cl.faults[UZP_FAULT_ZERO].p50_ns / 1e3,
		       (double)cl.faults[UZP_FAULT_ZERO].p99_ns / 1e3);
	}
	free(l.ns);
	return bench_close(&b) ? -EIO : err;
}

/* ---- restore without eviction ---- */

/*
 * After the fill the resident set is wherever the last reclaim round left
 * it plus what was filled since.  When @want restores would not fit under
 * the budget, restore evicted pages (untimed) until one more round has
 * run: it takes the client down to its low watermark.
 */
static int restore_room(struct bench *b, struct uzswap_stats *st, size_t *list, size_t want)
{
	uint64_t ev = st->evictions, state = 42;
	size_t n;
	int err;

	if (st->resident_pages + want + RESTORE_MARGIN <= b->budget_pages)
		return 0;
	n = evicted_pages(b, list);
	for (size_t done = 0; n && st->evictions == ev && done < b->npages; done++) {
		size_t k = (size_t)(rng_next(&state) % n);

		touch(b->region + list[k] * PG);
		list[k] = list[--n];
		if (done % 32 == 31) {
			err = get_stats(b, st);
			if (err)
				return err;
		}
	}
	return settle(b, st);
}

static int sc_restore(const struct opts *o, const struct plan *p, const char *name,
		      const char *codec, int level)
{
	struct daemon_cfg c = {
		.budget = p->restore_budget, .high = 100, .low = 10, .codec = codec, .level = level
	};
	struct uzswap_stats s0, s1;
	struct uzp_status_client cl;
	struct uzp_status ds;
	struct lat l = { 0 };
	uint64_t state = 7, room, before;
	size_t *list = NULL, n, k;
	unsigned int bad = 0;
	struct bench b;
	int err;

	err = bench_open(o, &c, 4 * (c.budget / PG), &b);
	if (err)
		return err;
	list = malloc(b.npages * sizeof(*list));
	err = list ? 0 : -ENOMEM;
	if (!err) {
		fill(&b);
		err = settle(&b, &s0);
	}
	if (!err)
		err = restore_room(&b, &s0, list, p->restore_k);
	if (err)
		goto out;
	before = s0.resident_pages;
	room = b.budget_pages > before + RESTORE_MARGIN ? b.budget_pages - before - RESTORE_MARGIN :
							  0;
	n = evicted_pages(&b, list);
	k = p->restore_k < room ? p->restore_k : (size_t)room;
	k = k < n ? k : n;
	/* k random evicted pages, in random order: a partial Fisher-Yates shuffle. */
	for (size_t i = 0; i < k; i++) {
		size_t j = i + (size_t)(rng_next(&state) % (n - i)), t = list[i];

		list[i] = list[j];
		list[j] = t;
	}
	for (size_t i = 0; i < k && !err; i++)
		err = lat_add(&l, timed_read(b.region + list[i] * PG));
	if (!err)
		err = get_stats(&b, &s1);
	for (size_t i = 0; i < k && !err; i++)
		bad += verify(&b, list[i]);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	if (err)
		goto out;
	printf("scenario=%s codec=%s level=%d budget_mib=%" PRIu64 " region_pages=%zu "
	       "resident_before=%" PRIu64 " pages=%zu",
	       name, codec, level, c.budget / MIB, b.npages, before, l.n);
	lat_print(&l);
	printf(" evictions_during=%" PRIu64 " verified=%zu mismatches=%u daemon_p50_us=%.1f "
	       "daemon_p99_us=%.1f\n",
	       s1.evictions - s0.evictions, k, bad, (double)cl.faults[UZP_FAULT_POOL].p50_ns / 1e3,
	       (double)cl.faults[UZP_FAULT_POOL].p99_ns / 1e3);
	if (bad)
		err = -EIO;
out:
	free(list);
	free(l.ns);
	return bench_close(&b) ? -EIO : err;
}

/* ---- readahead (page_cluster) ---- */

/*
 * Restore k evicted pages, in address order (@sequential) or at random,
 * with readahead of 2^@cluster pages; k leaves room for a cluster of
 * 2^READAHEAD_CLUSTER per fault under the budget, so that reclaim does not
 * run meanwhile, and is the same for every @cluster.
 */
static int sc_readahead_one(const struct opts *o, const struct plan *p, unsigned int cluster,
			    bool sequential)
{
	struct daemon_cfg c = { .budget = p->restore_budget,
				.high = 100,
				.low = 10,
				.codec = "lz4",
				.cluster = cluster };
	struct uzswap_stats s0, s1;
	struct uzp_status_client cl0, cl;
	struct uzp_status ds;
	uint64_t state = 11, room, t0, t1;
	size_t *list = NULL, n, k;
	unsigned int bad = 0;
	struct bench b;
	int err;

	err = bench_open(o, &c, 4 * (c.budget / PG), &b);
	if (err)
		return err;
	list = malloc(b.npages * sizeof(*list));
	err = list ? 0 : -ENOMEM;
	if (!err) {
		fill(&b);
		err = settle(&b, &s0);
	}
	if (err)
		goto out;
	room = b.budget_pages > s0.resident_pages + RESTORE_MARGIN ?
		       (b.budget_pages - s0.resident_pages - RESTORE_MARGIN) >> 3 :
		       0;
	n = evicted_pages(&b, list);
	k = p->restore_k < room ? p->restore_k : (size_t)room;
	k = k < n ? k : n;
	for (size_t i = 0; i < k && !sequential; i++) {
		size_t j = i + (size_t)(rng_next(&state) % (n - i)), t = list[i];

		list[i] = list[j];
		list[j] = t;
	}
	err = status_of(&b.d, &ds, &cl0);
	if (err)
		goto out;
	t0 = now_ns();
	for (size_t i = 0; i < k; i++)
		touch(b.region + list[i] * PG);
	t1 = now_ns();
	err = get_stats(&b, &s1);
	for (size_t i = 0; i < k && !err; i++)
		bad += verify(&b, list[i]);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	if (err)
		goto out;
	printf("scenario=readahead_%s page_cluster=%u budget_mib=%" PRIu64 " pages=%zu "
	       "seconds=%.3f pages_per_s=%.0f faults=%" PRIu64 " readahead=%" PRIu64
	       " evictions_during=%" PRIu64 " mismatches=%u\n",
	       sequential ? "seq" : "random", cluster, c.budget / MIB, k, (double)(t1 - t0) / 1e9,
	       k ? (double)k * 1e9 / (double)(t1 - t0) : 0.0, s1.faults - s0.faults,
	       cl.readahead - cl0.readahead, s1.evictions - s0.evictions, bad);
	if (bad)
		err = -EIO;
out:
	free(list);
	return bench_close(&b) ? -EIO : err;
}

/* First touches of never-touched pages in address order, with readahead of 2^@cluster pages. */
static int sc_readahead_zero(const struct opts *o, const struct plan *p, unsigned int cluster)
{
	struct daemon_cfg c = { .budget = (p->touch_pages * PG + 64 * MIB) & ~(MIB - 1),
				.high = 100,
				.low = 90,
				.codec = "lz4",
				.cluster = cluster };
	struct uzswap_stats st;
	struct uzp_status_client cl;
	struct uzp_status ds;
	struct bench b;
	uint64_t t0, t1;
	int err;

	err = bench_open(o, &c, p->touch_pages, &b);
	if (err)
		return err;
	t0 = now_ns();
	for (size_t i = 0; i < b.npages; i++)
		touch(b.region + i * PG);
	t1 = now_ns();
	err = get_stats(&b, &st);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	if (!err)
		printf("scenario=readahead_zero page_cluster=%u pages=%zu seconds=%.3f "
		       "pages_per_s=%.0f faults_zero=%" PRIu64 " readahead=%" PRIu64 "\n",
		       cluster, b.npages, (double)(t1 - t0) / 1e9,
		       (double)b.npages * 1e9 / (double)(t1 - t0), st.faults_zero, cl.readahead);
	return bench_close(&b) ? -EIO : err;
}

static int sc_readahead(const struct opts *o, const struct plan *p)
{
	int err = 0;

	for (unsigned int cluster = 0; cluster <= READAHEAD_CLUSTER && !err;
	     cluster += READAHEAD_CLUSTER) {
		err = sc_readahead_one(o, p, cluster, true);
		if (!err)
			err = sc_readahead_one(o, p, cluster, false);
		if (!err)
			err = sc_readahead_zero(o, p, cluster);
	}
	return err;
}

/* ---- restore while reclaim evicts ---- */

static int evicting_reads(struct bench *b, double seconds, struct lat *l, unsigned int *bad)
{
	uint64_t deadline = now_ns() + (uint64_t)(seconds * 1e9), state = 11;
	int err = 0;

	while (!err && now_ns() < deadline) {
		size_t i = (size_t)(rng_next(&state) % b->npages);

		if (pages.same[i % pages.n] || !evicted(b, i))
			continue;
		err = lat_add(l, timed_read(b->region + i * PG));
		if (l->n % VERIFY_EVERY == 0)
			*bad += (unsigned int)verify(b, i);
	}
	return err;
}

static int sc_restore_evicting(const struct opts *o, const struct plan *p)
{
	struct daemon_cfg c = {
		.budget = p->evicting_budget, .high = 100, .low = 90, .codec = "lz4"
	};
	struct uzswap_stats s0, s1;
	struct lat l = { 0 };
	unsigned int bad = 0;
	struct bench b;
	struct uzp_status ds;
	struct uzp_status_client cl;
	uint64_t t0 = 0, t1 = 0;
	int err;

	err = bench_open(o, &c, 4 * (c.budget / PG), &b);
	if (err)
		return err;
	fill(&b);
	err = settle(&b, &s0);
	if (!err) {
		t0 = now_ns();
		err = evicting_reads(&b, p->evicting_s, &l, &bad);
		t1 = now_ns();
	}
	if (!err)
		err = get_stats(&b, &s1);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	if (!err) {
		printf("scenario=restore_evicting codec=lz4 budget_mib=%" PRIu64
		       " region_pages=%zu "
		       "seconds=%.1f pages=%zu",
		       c.budget / MIB, b.npages, (double)(t1 - t0) / 1e9, l.n);
		lat_print(&l);
		printf(" evictions=%" PRIu64 " evictions_per_s=%.0f verified=%zu mismatches=%u"
		       " daemon_p50_us=%.1f daemon_p99_us=%.1f\n",
		       s1.evictions - s0.evictions,
		       (double)(s1.evictions - s0.evictions) * 1e9 / (double)(t1 - t0),
		       l.n / VERIFY_EVERY, bad, (double)cl.faults[UZP_FAULT_POOL].p50_ns / 1e3,
		       (double)cl.faults[UZP_FAULT_POOL].p99_ns / 1e3);
		if (bad)
			err = -EIO;
	}
	free(l.ns);
	return bench_close(&b) ? -EIO : err;
}

/* ---- eviction throughput ---- */

static int sc_evict_one(const struct opts *o, const struct plan *p, bool sample)
{
	struct daemon_cfg c = { .budget = p->evict_budget,
				.high = 100,
				.low = 90,
				.codec = "lz4",
				.no_sample = !sample };
	struct uzswap_stats s0, s1, s2;
	struct uzp_status_client cl;
	struct uzp_status ds;
	struct bench b;
	uint64_t t0, t1;
	double fill_s;
	int err;

	err = bench_open(o, &c, 8 * (c.budget / PG), &b);
	if (err)
		return err;
	err = get_stats(&b, &s0);
	if (err)
		goto out;
	t0 = now_ns();
	fill(&b);
	t1 = now_ns();
	fill_s = (double)(t1 - t0) / 1e9;
	err = get_stats(&b, &s1);
	if (!err)
		err = settle(&b, &s2);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	if (err)
		goto out;
	printf("scenario=evict_lz4%s codec=lz4 sampling=%s budget_mib=%" PRIu64 " region_pages=%zu "
	       "evictions=%" PRIu64 " evict_s=%.3f pages_per_s=%.0f fill_s=%.2f "
	       "fill_pages_per_s=%.0f fill_evictions=%" PRIu64 " fill_evictions_per_s=%.0f "
	       "pool_mib=%.1f sampled=%" PRIu64 "\n",
	       sample ? "" : "_nosample", sample ? "yes" : "no", c.budget / MIB, b.npages,
	       s2.evictions, (double)s2.evict_ns / 1e9,
	       s2.evict_ns ? (double)s2.evictions * 1e9 / (double)s2.evict_ns : 0.0, fill_s,
	       (double)b.npages / fill_s, s1.evictions - s0.evictions,
	       (double)(s1.evictions - s0.evictions) / fill_s, (double)s2.pool_bytes / MIB,
	       cl.sampled);
out:
	return bench_close(&b) ? -EIO : err;
}

/* Eviction throughput with access sampling (the default), then without: its cost. */
static int sc_evict(const struct opts *o, const struct plan *p)
{
	int err = sc_evict_one(o, p, true);

	return err ? err : sc_evict_one(o, p, false);
}

/* ---- the policies on a skewed pattern ---- */

/*
 * @n accesses over @npages pages: zipf ranks (exponent 1.0) drawn by binary
 * search in the CDF, mapped to pages through a seeded permutation so that
 * the hot pages are scattered; one in four is a write (ZIPF_WRITE_BIT).
 */
static uint32_t *zipf_sequence(size_t npages, size_t n)
{
	double *cdf = malloc(npages * sizeof(*cdf)), sum = 0;
	uint32_t *perm = malloc(npages * sizeof(*perm));
	uint32_t *seq = malloc(n * sizeof(*seq));
	uint64_t state = ZIPF_SEED;

	if (!cdf || !perm || !seq) {
		free(seq);
		seq = NULL;
		goto out;
	}
	for (size_t k = 0; k < npages; k++) {
		sum += 1.0 / (double)(k + 1);
		cdf[k] = sum;
		perm[k] = (uint32_t)k;
	}
	for (size_t k = npages - 1; k > 0; k--) {
		size_t j = (size_t)(rng_next(&state) % (k + 1));
		uint32_t t = perm[k];

		perm[k] = perm[j];
		perm[j] = t;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rng_next(&state);
		double u = (double)(r >> 11) * 0x1.0p-53 * sum;
		size_t lo = 0, hi = npages - 1;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (cdf[mid] > u)
				hi = mid;
			else
				lo = mid + 1;
		}
		seq[i] = perm[lo] | ((r & 3) == 0 ? ZIPF_WRITE_BIT : 0);
	}
out:
	free(cdf);
	free(perm);
	return seq;
}

/*
 * Over budget after a batch: wait until reclaim has evicted down to the
 * low watermark (plus what the batch added after the kick), or has stopped
 * evicting (ZIPF_STILL_MS without a change).
 */
static int zipf_pause(struct bench *b, struct uzswap_stats *st)
{
	uint64_t low = b->budget_pages * b->low / 100 + ZIPF_BATCH;
	uint64_t start = now_ns(), still = now_ns(), last = st->resident_pages;
	int err;

	while (st->resident_pages > low) {
		sleep_ms(1);
		err = get_stats(b, st);
		if (err)
			return err;
		if (st->resident_pages != last) {
			last = st->resident_pages;
			still = now_ns();
		}
		if (now_ns() - still > ZIPF_STILL_MS * 1000000ULL ||
		    now_ns() - start > ZIPF_WAIT_MAX_MS * 1000000ULL)
			break;
	}
	return 0;
}

static int zipf_run(struct bench *b, const uint32_t *seq, size_t from, size_t to, uint64_t *pauses)
{
	uint64_t high = b->budget_pages * b->high / 100;
	struct uzswap_stats st;
	int err;

	for (size_t i = from; i < to; i += ZIPF_BATCH) {
		size_t end = to - i < ZIPF_BATCH ? to : i + ZIPF_BATCH;

		for (size_t j = i; j < end; j++) {
			size_t pg = seq[j] & ~ZIPF_WRITE_BIT;
			volatile unsigned char *q = b->region + pg * PG;

			if (seq[j] & ZIPF_WRITE_BIT)
				*q = expected(pg)[0];
			else
				(void)*q;
		}
		err = get_stats(b, &st);
		if (err)
			return err;
		if (st.resident_pages > high) {
			(*pauses)++;
			err = zipf_pause(b, &st);
			if (err)
				return err;
		}
	}
	return 0;
}

static uint64_t refaults(const struct uzswap_stats *st)
{
	return st->faults - st->faults_zero;
}

static int sc_zipf_one(const struct opts *o, const struct plan *p, const uint32_t *seq,
		       const char *policy, uint64_t *measured)
{
	struct daemon_cfg c = {
		.budget = p->zipf_budget, .high = 100, .low = 90, .codec = "lz4", .policy = policy
	};
	struct uzswap_stats s0, s1, s2;
	struct uzp_status_client cl;
	struct uzp_status ds;
	size_t end = p->zipf_warmup + p->zipf_accesses;
	uint64_t pauses = 0, t0 = 0, t1 = 0;
	unsigned int bad = 0;
	struct bench b;
	int err;

	err = bench_open(o, &c, 4 * (c.budget / PG), &b);
	if (err)
		return err;
	fill(&b);
	err = settle(&b, &s0);
	if (!err)
		err = zipf_run(&b, seq, 0, p->zipf_warmup, &pauses);
	if (!err)
		err = settle(&b, &s1);
	if (!err) {
		pauses = 0;
		t0 = now_ns();
		err = zipf_run(&b, seq, p->zipf_warmup, end, &pauses);
		t1 = now_ns();
	}
	if (!err)
		err = get_stats(&b, &s2);
	if (!err)
		err = status_of(&b.d, &ds, &cl);
	for (size_t i = 0; i < b.npages && !err; i++)
		bad += (unsigned int)verify(&b, i);
	if (err)
		goto out;
	*measured = refaults(&s2) - refaults(&s1);
	printf("scenario=zipf_%s policy=%s budget_mib=%" PRIu64 " region_pages=%zu "
	       "accesses=%zu refaults=%" PRIu64 " refaults_per_1k_accesses=%.2f "
	       "warmup_accesses=%zu warmup_refaults=%" PRIu64 " evictions=%" PRIu64
	       " refaults_hot_total=%" PRIu64 " sampled_total=%" PRIu64
	       " sampled_touched_total=%" PRIu64 " pauses=%" PRIu64
	       " seconds=%.2f verified=%zu mismatches=%u\n",
	       policy, policy, c.budget / MIB, b.npages, p->zipf_accesses, *measured,
	       1000.0 * (double)*measured / (double)p->zipf_accesses, p->zipf_warmup,
	       refaults(&s1) - refaults(&s0), s2.evictions - s1.evictions, cl.refaults_hot,
	       cl.sampled, cl.sampled_touched, pauses, (double)(t1 - t0) / 1e9, b.npages, bad);
	if (bad)
		err = -EIO;
out:
	return bench_close(&b) ? -EIO : err;
}

static int sc_zipf(const struct opts *o, const struct plan *p)
{
	size_t npages = 4 * (p->zipf_budget / PG);
	uint32_t *seq = zipf_sequence(npages, p->zipf_warmup + p->zipf_accesses);
	uint64_t ws = 0, fifo = 0;
	int err;

	if (!seq)
		return -ENOMEM;
	err = sc_zipf_one(o, p, seq, "workingset", &ws);
	if (!err)
		err = sc_zipf_one(o, p, seq, "fifo", &fifo);
	if (!err)
		printf("scenario=zipf_compare refaults_workingset=%" PRIu64
		       " refaults_fifo=%" PRIu64 " refault_reduction_pct=%.1f\n",
		       ws, fifo, fifo ? 100.0 * ((double)fifo - (double)ws) / (double)fifo : 0.0);
	free(seq);
	return err;
}

/* ---- the backing file ---- */

/*
 * Wait until writeback has stopped (its written pages unchanged for
 * SETTLE_STABLE_POLLS polls) and the cleaner with it; *ds: the last status.
 */
static int settle_writeback(struct bench *b, struct uzp_status *ds, struct uzp_status_client *cl)
{
	uint64_t deadline = now_ns() + SETTLE_MAX_MS * 1000000ULL, last = UINT64_MAX;
	uint64_t moved = UINT64_MAX;
	int stable = 0, err;

	for (;;) {
		err = status_of(&b->d, ds, cl);
		if (err)
			return err;
		if (ds->wb_written_pages == last && ds->file_cleaned_records == moved) {
			if (++stable == SETTLE_STABLE_POLLS)
				return 0;
		} else {
			stable = 0;
		}
		last = ds->wb_written_pages;
		moved = ds->file_cleaned_records;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		sleep_ms(SETTLE_POLL_MS);
	}
}

static double space_ratio(const struct uzp_status *ds)
{
	return ds->file_stored_bytes ? (double)ds->file_disk_bytes / (double)ds->file_stored_bytes :
				       0.0;
}

/* A daemon with a small pool and writeback, a region 4x the budget, filled and settled. */
static int file_open(const struct opts *o, struct daemon_cfg *c, size_t factor, struct bench *b,
		     struct uzswap_stats *st, struct uzp_status *ds, struct uzp_status_client *cl)
{
	int err = bench_open(o, c, factor * (c->budget / PG), b);

	if (err)
		return err;
	fill(b);
	err = settle(b, st);
	if (!err)
		err = settle_writeback(b, ds, cl);
	if (err)
		bench_close(b);
	return err;
}

static int sc_restore_file(const struct opts *o, const struct plan *p)
{
	struct daemon_cfg c = { .budget = p->restore_budget,
				.high = 100,
				.low = 10,
				.codec = "lz4",
				.pool_max = "8M" };
	struct uzp_status_client cl0, cl1;
	struct uzp_status ds0, ds1;
	struct uzswap_stats s0, s1;
	uint64_t state = 13, room;
	struct lat l = { 0 };
	size_t *list = NULL, n, k;
	unsigned int bad = 0;
	struct bench b;
	int err;

	err = file_open(o, &c, 4, &b, &s0, &ds0, &cl0);
	if (err)
		return err;
	list = malloc(b.npages * sizeof(*list));
	err = list ? restore_room(&b, &s0, list, p->restore_k) : -ENOMEM;
	if (!err)
		err = settle_writeback(&b, &ds0, &cl0);
	if (err)
		goto out;
	room = b.budget_pages > s0.resident_pages + RESTORE_MARGIN ?
		       b.budget_pages - s0.resident_pages - RESTORE_MARGIN :
		       0;
	n = evicted_pages(&b, list);
	k = p->restore_k < room ? p->restore_k : (size_t)room;
	k = k < n ? k : n;
	for (size_t i = 0; i < k; i++) {
		size_t j = i + (size_t)(rng_next(&state) % (n - i)), t = list[i];

		list[i] = list[j];
		list[j] = t;
	}
	for (size_t i = 0; i < k && !err; i++)
		err = lat_add(&l, timed_read(b.region + list[i] * PG));
	if (!err)
		err = get_stats(&b, &s1);
	for (size_t i = 0; i < k && !err; i++)
		bad += verify(&b, list[i]);
	if (!err)
		err = status_of(&b.d, &ds1, &cl1);
	if (err)
		goto out;
	printf("scenario=restore_file codec=lz4 pool=8M budget_mib=%" PRIu64 " region_pages=%zu "
	       "file_pages_before=%" PRIu64 " pages=%zu from_file=%" PRIu64 " from_memory=%" PRIu64,
	       c.budget / MIB, b.npages, s0.file_pages, l.n, ds1.file_reads - ds0.file_reads,
	       ds1.file_reads_staged - ds0.file_reads_staged);
	lat_print(&l);
	printf(" evictions_during=%" PRIu64 " verified=%zu mismatches=%u daemon_p50_us=%.1f "
	       "daemon_p99_us=%.1f\n",
	       s1.evictions - s0.evictions, k, bad, (double)cl1.faults_file.p50_ns / 1e3,
	       (double)cl1.faults_file.p99_ns / 1e3);
	if (bad)
		err = -EIO;
out:
	free(list);
	free(l.ns);
	return bench_close(&b) ? -EIO : err;
}

static int sc_writeback(const struct opts *o, const struct plan *p)
{
	struct daemon_cfg c = {
		.budget = p->evict_budget, .high = 100, .low = 90, .codec = "lz4", .pool_max = "16M"
	};
	struct uzp_status_client cl;
	struct uzp_status d0, d1;
	struct uzswap_stats st;
	uint64_t t0, t1, written, bytes, busy;
	struct bench b;
	int err;

	err = bench_open(o, &c, 8 * (c.budget / PG), &b);
	if (err)
		return err;
	err = status_of(&b.d, &d0, &cl);
	if (err)
		goto out;
	t0 = now_ns();
	fill(&b);
	err = settle(&b, &st);
	if (!err)
		err = settle_writeback(&b, &d1, &cl);
	t1 = now_ns();
	if (err)
		goto out;
	written = d1.wb_written_pages - d0.wb_written_pages;
	bytes = d1.wb_written_bytes - d0.wb_written_bytes;
	busy = d1.wb_busy_ns - d0.wb_busy_ns;
	printf("scenario=writeback codec=lz4 pool=16M budget_mib=%" PRIu64 " region_pages=%zu "
	       "written_pages=%" PRIu64 " written_mib=%.1f busy_s=%.3f pages_per_s=%.0f "
	       "compressed_MBps=%.1f wall_s=%.2f wall_pages_per_s=%.0f file_pages=%" PRIu64
	       " pool_full=%" PRIu64 " rejected_pool_full=%" PRIu64
	       " clean_s=%.3f space_ratio=%.3f\n",
	       c.budget / MIB, b.npages, written, (double)bytes / MIB, (double)busy / 1e9,
	       busy ? (double)written * 1e9 / (double)busy : 0.0,
	       busy ? (double)bytes * 1e3 / (double)busy : 0.0, (double)(t1 - t0) / 1e9,
	       (double)written * 1e9 / (double)(t1 - t0), st.file_pages, d1.pool_full_events,
	       cl.rejected_pool_full, (double)d1.wb_clean_ns / 1e9, space_ratio(&d1));
out:
	return bench_close(&b) ? -EIO : err;
}

/*
 * Churn: random reads (restores free records) and writes (rewritten pages
 * are written back anew) of a region mostly in the file, then the disk
 * space against the stored bytes at once and once the cleaner is done.
 */
static int sc_file_space(const struct opts *o, const struct plan *p)
{
	struct daemon_cfg c = { .budget = p->evicting_budget,
				.high = 100,
				.low = 90,
				.codec = "lz4",
				.pool_max = "8M" };
	uint64_t deadline, state = 17, ops = 0;
	struct uzp_status_client cl;
	struct uzp_status d0, d1, d2;
	struct uzswap_stats st;
	unsigned int bad = 0;
	struct bench b;
	int err;

	err = file_open(o, &c, 4, &b, &st, &d0, &cl);
	if (err)
		return err;
	deadline = now_ns() + (uint64_t)(p->evicting_s * 1e9);
	while (now_ns() < deadline) {
		size_t i = (size_t)(rng_next(&state) % b.npages);
		volatile unsigned char *q = b.region + i * PG;

		if (rng_next(&state) & 1)
			*q = expected(i)[0];
		else
			(void)*q;
		ops++;
	}
	err = status_of(&b.d, &d1, &cl);
	if (!err)
		err = settle_writeback(&b, &d2, &cl);
	for (size_t i = 0; i < b.npages && !err; i++)
		bad += (unsigned int)verify(&b, i);
	if (err)
		goto out;
	printf("scenario=file_space codec=lz4 pool=8M budget_mib=%" PRIu64 " region_pages=%zu "
	       "churn_s=%.1f accesses=%" PRIu64 " written_pages=%" PRIu64 " moved_pages=%" PRIu64
	       " stored_mib=%.1f disk_mib=%.1f ratio_after_churn=%.3f ratio_settled=%.3f"
	       " verified=%zu mismatches=%u\n",
	       c.budget / MIB, b.npages, p->evicting_s, ops,
	       d1.wb_written_pages - d0.wb_written_pages,
	       d1.file_cleaned_records - d0.file_cleaned_records,
	       (double)d2.file_stored_bytes / MIB, (double)d2.file_disk_bytes / MIB,
	       space_ratio(&d1), space_ratio(&d2), b.npages, bad);
	if (bad)
		err = -EIO;
out:
	return bench_close(&b) ? -EIO : err;
}

/* ---- metadata per managed page ---- */

/*
 * @pool_max NULL: the default pool, which holds every evicted page; "64M":
 * a small one, so that almost every page ends in the backing file and its
 * tables (bfile.c: 4 bytes a block) count too.
 */
static int sc_metadata(const struct opts *o, const struct plan *p, const char *name,
		       const char *pool_max)
{
	struct daemon_cfg c = { .budget = p->meta_budget,
				.high = 100,
				.low = 90,
				.codec = "lz4",
				.pool_max = pool_max };
	struct uzp_status_client cl;
	struct uzp_status ds;
	struct uzswap_stats st;
	uint64_t idle, rss;
	struct bench b;
	double per_page, above_idle, outside;
	int err;

	err = bench_daemon(o, &c, &b);
	if (err)
		return err;
	idle = process_rss(b.d.pid);
	err = bench_connect(&b, (size_t)(p->meta_bytes / PG));
	if (err) {
		daemon_stop(&b.d);
		return err;
	}
	fill(&b);
	err = settle(&b, &st);
	if (!err)
		err = settle_writeback(&b, &ds, &cl);
	if (!err)
		err = get_stats(&b, &st);
	if (err)
		goto out;
	rss = process_rss(b.d.pid);
	per_page = ((double)rss - (double)ds.pool_total_bytes) / (double)st.managed_pages;
	above_idle = ((double)rss - (double)idle - (double)ds.pool_total_bytes) /
		     (double)st.managed_pages;
	outside = ((double)rss - (double)ds.pool_total_bytes - (double)ds.pool_meta_bytes) /
		  (double)st.managed_pages;
	printf("scenario=%s budget_mib=%" PRIu64 " managed_pages=%" PRIu64
	       " resident_pages=%" PRIu64 " pool_pages=%" PRIu64 " file_pages=%" PRIu64
	       " same_pages=%" PRIu64 " daemon_rss_bytes=%" PRIu64 " pool_total_bytes=%" PRIu64
	       " pool_compressed_bytes=%" PRIu64 " pool_meta_bytes=%" PRIu64
	       " idle_rss_bytes=%" PRIu64 " bytes_per_page=%.2f bytes_per_page_above_idle=%.2f"
	       " bytes_per_page_outside_pool=%.2f\n",
	       name, c.budget / MIB, st.managed_pages, st.resident_pages, st.pool_pages,
	       st.file_pages, st.same_pages, rss, ds.pool_total_bytes, ds.pool_compressed_bytes,
	       ds.pool_meta_bytes, idle, per_page, above_idle, outside);
out:
	return bench_close(&b) ? -EIO : err;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: faultbench [--quick] [--no-sample] [--daemon PATH] [--pages FILE] "
		"[--only NAME]\n"
		"  --quick        smaller sizes and durations: everything in under a minute\n"
		"  --no-sample    every daemon runs with [reclaim] sample_pct = 0\n"
		"  --daemon PATH  uzswapd to start (default: ../daemon/uzswapd beside this program)\n"
		"  --pages FILE   real pages to fill managed memory with (default:\n"
		"                 $UZSWAP_PAGES_DIR, else %s, /redis.pages.zst)\n"
		"  --only NAME    only the scenarios whose name starts with NAME\n"
		"Starts its own daemons: run as root.\n",
		UZ_PAGES_DIR);
}

static int default_daemon(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		return -errno;
	self[n] = 0;
	slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	if ((size_t)snprintf(buf, len, "%s/../daemon/uzswapd", self) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "no-sample", no_argument, NULL, 'n' },
		{ "daemon", required_argument, NULL, 'd' },
		{ "pages", required_argument, NULL, 'p' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("UZSWAP_PAGES_DIR");
	int c;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = true;
			break;
		case 'n':
			o->no_sample = true;
			break;
		case 'd':
			snprintf(o->daemon, sizeof(o->daemon), "%s", optarg);
			break;
		case 'p':
			snprintf(o->pages, sizeof(o->pages), "%s", optarg);
			break;
		case 'o':
			o->only = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		usage(stderr);
		exit(2);
	}
	if (!o->daemon[0] && default_daemon(o->daemon, sizeof(o->daemon)) < 0) {
		fprintf(stderr, "faultbench: cannot find myself: give --daemon\n");
		exit(2);
	}
	if (!o->pages[0])
		snprintf(o->pages, sizeof(o->pages), "%s/redis.pages.zst",
			 dir && *dir ? dir : UZ_PAGES_DIR);
}

static int load_pages(const char *path, size_t max)
{
	int err = pf_load(path, 1, max, &pages.data, &pages.n);

	if (!err && !pages.n)
		err = -ENODATA;
	if (err) {
		fprintf(stderr, "faultbench: %s: %s\n", path, strerror(-err));
		return err;
	}
	pages.same = malloc(pages.n * sizeof(*pages.same));
	if (!pages.same)
		return -ENOMEM;
	for (size_t i = 0; i < pages.n; i++)
		pages.same[i] = page_is_same(pages.data + i * PG);
	return 0;
}

static bool wanted(const struct opts *o, const char *name)
{
	return !o->only || strncmp(name, o->only, strlen(o->only)) == 0;
}

int main(int argc, char **argv)
{
	const struct plan *p;
	struct opts o;
	int failed = 0;

	parse_opts(argc, argv, &o);
	p = o.quick ? &quick_plan : &full_plan;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0)
		fprintf(stderr, "faultbench: not root: uzswapd may not open /dev/userfaultfd\n");
	if (access(o.daemon, X_OK) < 0) {
		fprintf(stderr, "faultbench: %s: %s (build it, or give --daemon)\n", o.daemon,
			strerror(errno));
		return 2;
	}
	install_cleanup();
	if (load_pages(o.pages, (size_t)(p->meta_bytes / PG)) < 0)
		return 1;
	fprintf(stderr, "faultbench: %s mode; %s (%zu pages); %s\n", o.quick ? "quick" : "full",
		o.pages, pages.n, o.daemon);
	if (wanted(&o, "first_touch"))
		failed |= sc_first_touch(&o, p) < 0;
	if (wanted(&o, "restore_lz4"))
		failed |= sc_restore(&o, p, "restore_lz4", "lz4", 0) < 0;
	if (wanted(&o, "restore_zstd1"))
		failed |= sc_restore(&o, p, "restore_zstd1", "zstd", 1) < 0;
	if (wanted(&o, "readahead"))
		failed |= sc_readahead(&o, p) < 0;
	if (wanted(&o, "restore_evicting"))
		failed |= sc_restore_evicting(&o, p) < 0;
	if (wanted(&o, "evict_lz4"))
		failed |= sc_evict(&o, p) < 0;
	if (wanted(&o, "restore_file"))
		failed |= sc_restore_file(&o, p) < 0;
	if (wanted(&o, "writeback"))
		failed |= sc_writeback(&o, p) < 0;
	if (wanted(&o, "file_space"))
		failed |= sc_file_space(&o, p) < 0;
	if (wanted(&o, "zipf"))
		failed |= sc_zipf(&o, p) < 0;
	if (wanted(&o, "metadata"))
		failed |= sc_metadata(&o, p, "metadata", NULL) < 0;
	if (wanted(&o, "metadata_file"))
		failed |= sc_metadata(&o, p, "metadata_file", "64M") < 0;
	free(pages.data);
	free(pages.same);
	return failed ? 1 : 0;
}
