/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_wb_faults.c - a backing file that fails: no
 * data lost on failed writes, and a failed read costs exactly its page.
 *
 * The daemon runs with libfaultinj.so preloaded (tests/integration/
 * faultinj.h), which makes its pwrite/pread calls on the backing file fail
 * or come back short when this test says so.  A 1 MiB pool and an 8 MiB
 * client budget put most of each client's 32 MiB region in the file when
 * writes work.  One client child per phase fills its region with stamped
 * real, same-filled and incompressible pages (pattern.h), waits (for the read phases) until enough of them
 * are in the file, then, once the test has armed the fault, reads every
 * page once, catching SIGBUS, and touches each page that raised it again.
 *
 *  1. every write fails with ENOSPC, 2. with EIO: every page still reads
 *     back; the failures are counted and the written objects went back to
 *     the pool (put back); an admin writeback meanwhile claims none written;
 *  3. every write comes back short: the rest is written, pages go to the
 *     file and read back;
 *  4. one read fails with EIO, 5. one read finds the end of the file, 6. one
 *     read returns a flipped bit: in each, exactly one page raises SIGBUS
 *     (again when touched again), every other page reads back, and the
 *     daemon counts and logs the loss with the client and the address;
 *  7. one read comes back short: the rest is read, nothing is lost;
 *  8. a new client is served as if nothing had happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/faultinj.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define BUDGET (8 * MIB)
#define REGION (32 * MIB)
#define NPAGES (REGION / PAT_PAGE)
#define WANT_FILE 1000 /* pages in the file before a read fault is armed */
#define FILE_WAIT_MS 30000
#define CHILD_TIMEOUT_MS 90000
#define MAX_SIGBUS 16
#define WATCHDOG_S 300

struct shared {
	uint64_t seed;
	unsigned int tag;
	uint64_t want_file;
	uint64_t want_hits; /* failed writes to wait for (the shim's writes_hit) */
	int setup_err, release_err;
	uint64_t checked, bad, file_pages;
	uint64_t nsigbus, sigbus_page[MAX_SIGBUS], again; /* again: SIGBUS on the second touch */
	atomic_int state; /* 1: filled (and in the file), waiting for go */
	atomic_int go;
};

static struct hd_daemon daemon_;
static struct faultinj_ctl *ctl;
static struct shared *S;
static uint64_t seed; /* pat_init() loads the pages once: it is called once */

/* ---- the client child ---- */

static sigjmp_buf jump;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)si, (void)uc;
	siglongjmp(jump, 1);
}

/* Read page @p whole into @buf; false if it raised SIGBUS. */
static bool guarded_load(const char *addr, uint64_t *buf)
{
	if (sigsetjmp(jump, 1))
		return false;
	pat_load(addr, buf);
	return true;
}

static void read_all(struct pat *k, const char *map)
{
	uint64_t buf[PAT_WORDS];
	char why[96];

	for (uint64_t p = 0; p < NPAGES; p++) {
		S->checked++;
		if (!guarded_load(map + p * PAT_PAGE, buf)) {
			if (S->nsigbus < MAX_SIGBUS)
				S->sigbus_page[S->nsigbus] = p;
			S->nsigbus++;
			continue;
		}
		if (!pat_check(k, p, 1, buf, why, sizeof(why))) {
			if (S->bad++ < 5)
				tap_diag("client: page %" PRIu64 ": %s", p, why);
		}
	}
	for (uint64_t i = 0; i < S->nsigbus && i < MAX_SIGBUS; i++)
		S->again += !guarded_load(map + S->sigbus_page[i] * PAT_PAGE, buf);
}

static int client_main(void *arg)
{
	struct pat k = { .seed = S->seed, .tag = S->tag, .kind = PAT_MIXED };
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	struct uzswap_stats st = { 0 };
	struct uzswap *u;
	void *map;
	uint64_t t0;
	int r;

	(void)arg;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	r = hd_connect(&daemon_, BUDGET, "wbfaults", &u);
	if (r < 0)
		return hd_setup_failed(&S->setup_err, r);
	r = uzswap_region_create(u, REGION, "wbfaults", &map);
	if (r < 0)
		return hd_setup_failed(&S->setup_err, r);
	for (uint64_t p = 0; p < NPAGES; p++)
		pat_write(&k, (char *)map + p * PAT_PAGE, p, 1);
	/* Writeback pauses after failed writes: wait until the shim has failed some of ours. */
	for (t0 = hd_now_ms(); hd_now_ms() - t0 < FILE_WAIT_MS; hd_sleep_ms(20))
		if (uzswap_stats(u, &st) == 0 && st.file_pages >= S->want_file &&
		    __atomic_load_n(&ctl->writes_hit, __ATOMIC_ACQUIRE) >= S->want_hits)
			break;
	S->file_pages = st.file_pages;
	atomic_store(&S->state, 1);
	for (t0 = hd_now_ms(); !atomic_load(&S->go) && hd_now_ms() - t0 < 60000;)
		hd_sleep_ms(5);
	read_all(&k, map);
	S->release_err = uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

/* ---- the parent ---- */

static uint64_t status_u64(const char *path)
{
	uint64_t v = 0;

	hd_status_u64(&daemon_, path, &v);
	return v;
}

static void arm_writes(int mode)
{
	__atomic_store_n(&ctl->write_count, mode ? -1 : 0, __ATOMIC_RELEASE);
	__atomic_store_n(&ctl->write_mode, mode, __ATOMIC_RELEASE);
}

static void arm_one_read(int mode)
{
	__atomic_store_n(&ctl->read_max_len, 2 * PAT_PAGE, __ATOMIC_RELEASE);
	__atomic_store_n(&ctl->read_count, 1, __ATOMIC_RELEASE);
	__atomic_store_n(&ctl->read_mode, mode, __ATOMIC_RELEASE);
}

/*
 * One client through a phase: fill, wait for @want_file pages in the file,
 * let @arm (may be NULL) set the fault, read everything.  0 or -errno.
 */
static int run_client(unsigned int tag, uint64_t want_file, uint64_t want_hits, void (*arm)(int),
		      int mode)
{
	char how[96];
	int st = 0, r;
	pid_t pid;
	memset(S, 0, sizeof(*S));
	S->seed = seed;
	S->tag = tag;
	S->want_file = want_file;
	S->want_hits = want_hits;
	pid = hd_spawn(client_main, NULL);
	if (pid < 0)
		return (int)pid;
	for (uint64_t t0 = hd_now_ms();
	     atomic_load(&S->state) != 1 && !hd_ended(pid) && hd_now_ms() - t0 < CHILD_TIMEOUT_MS;)
		hd_sleep_ms(10);
	if (arm)
		arm(mode);
	atomic_store(&S->go, 1);
	r = hd_wait(pid, CHILD_TIMEOUT_MS, &st);
	if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		r = -EPROTO;
	if (r || S->setup_err || S->release_err)
		tap_diag("client (tag %u): %s, setup %s, release %s", tag,
			 r ? hd_wstatus_str(st, how, sizeof(how)) : "ok", strerror(-S->setup_err),
			 strerror(-S->release_err));
	return r ? r : S->setup_err ? S->setup_err : S->release_err;
}

/* What `uzswapctl writeback 1M` said while writes were failing (phase_failing_writes). */
static struct {
	int status;
	char out[256];
	char err[256];
} asked;

/* An admin writeback while the client holds its pages and every write fails. */
static void ask_writeback(int mode)
{
	char *out = NULL, *err = NULL;

	(void)mode;
	asked.status = hd_ctl(&daemon_, NULL, &out, &err, "writeback", "1M", NULL);
	snprintf(asked.out, sizeof(asked.out), "%s", out ? hd_one_line(out) : "");
	snprintf(asked.err, sizeof(asked.err), "%s", err ? hd_one_line(err) : "");
	free(out);
	free(err);
}

static void phase_failing_writes(int mode, const char *what, const char *counter, unsigned int tag)
{
	uint64_t errors0 = status_u64(counter), back0 = status_u64("daemon.wb_put_back");
	uint64_t hits0 = ctl->writes_hit;
	int r;

	arm_writes(mode);
	r = run_client(tag, 0, hits0 + 2, ask_writeback, 0);
	arm_writes(FI_NONE);
	/* Either it freed pool pages (the objects went back elsewhere) or it failed outright. */
	ok((asked.status == 0 && strncmp(asked.out, "writeback: 0 objects (", 22) == 0) ||
		   (asked.status == 1 && strstr(asked.err, "fail")),
	   "%s: uzswapctl writeback claims no object written (exit %d: %s; %s)", what, asked.status,
	   asked.out, asked.err);
	ok(r == 0 && S->checked == NPAGES && S->bad == 0 && S->nsigbus == 0,
	   "%s: every page reads back (%" PRIu64 " checked, %" PRIu64 " bad, %" PRIu64 " SIGBUS)",
	   what, S->checked, S->bad, S->nsigbus);
	ok(ctl->writes_hit > hits0 && status_u64(counter) > errors0 &&
		   status_u64("daemon.wb_put_back") > back0,
	   "%s: the failed writes are counted and their objects went back to the pool (%" PRIu64
	   " writes failed, %s %" PRIu64 ", put back %" PRIu64 ")",
	   what, ctl->writes_hit - hits0, counter, status_u64(counter) - errors0,
	   status_u64("daemon.wb_put_back") - back0);
}

static void phase_short_writes(void)
{
	uint64_t shorts0 = status_u64("daemon.file_short_writes");
	uint64_t errs0 = status_u64("daemon.file_write_eio") +
			 status_u64("daemon.file_write_enospc");
	int r;

	arm_writes(FI_SHORT);
	r = run_client(3, WANT_FILE, 0, NULL, 0);
	arm_writes(FI_NONE);
	ok(r == 0 && S->file_pages >= WANT_FILE && S->bad == 0 && S->nsigbus == 0,
	   "short writes: the rest is written, pages reach the file and read back (%" PRIu64
	   " in the file, %" PRIu64 " bad)",
	   S->file_pages, S->bad);
	ok(status_u64("daemon.file_short_writes") > shorts0 &&
		   status_u64("daemon.file_write_eio") + status_u64("daemon.file_write_enospc") ==
			   errs0,
	   "short writes: counted, and none of them is an error");
}

static bool log_has(const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(daemon_.log, "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void phase_bad_read(int mode, const char *what, const char *counter, unsigned int tag,
			   const char *logged)
{
	uint64_t count0 = status_u64(counter);
	char needle[64];
	int r;

	r = run_client(tag, WANT_FILE, 0, arm_one_read, mode);
	__atomic_store_n(&ctl->read_mode, FI_NONE, __ATOMIC_RELEASE);
	ok(r == 0 && S->file_pages >= WANT_FILE && S->nsigbus == 1 && S->again == 1,
	   "%s: exactly one page raises SIGBUS, again when touched again (%" PRIu64
	   " SIGBUS, %" PRIu64 " again, %" PRIu64 " pages were in the file)",
	   what, S->nsigbus, S->again, S->file_pages);
	ok(S->checked == NPAGES && S->bad == 0,
	   "%s: every other page reads back (%" PRIu64 " checked, %" PRIu64 " bad)", what,
	   S->checked, S->bad);
	snprintf(needle, sizeof(needle), "is lost: %s; poisoning the page", logged);
	ok(status_u64(counter) == count0 + 1 && log_has(needle),
	   "%s: the daemon counts it (%s +%" PRIu64 ") and logs the client and address", what,
	   counter, status_u64(counter) - count0);
}

/* A read that comes back short is continued: no page is lost, no loss is counted. */
static void phase_short_read(void)
{
	uint64_t lost0 = status_u64("daemon.file_short_reads") +
			 status_u64("daemon.file_read_errors") +
			 status_u64("daemon.file_bad_records");
	uint64_t hits0 = ctl->reads_hit;
	int r;

	r = run_client(8, WANT_FILE, 0, arm_one_read, FI_SHORT);
	__atomic_store_n(&ctl->read_mode, FI_NONE, __ATOMIC_RELEASE);
	ok(r == 0 && S->file_pages >= WANT_FILE && ctl->reads_hit == hits0 + 1 && S->nsigbus == 0 &&
		   S->checked == NPAGES && S->bad == 0,
	   "a short read: the rest is read and every page reads back (%" PRIu64
	   " reads cut short, %" PRIu64 " SIGBUS, %" PRIu64 " checked, %" PRIu64 " bad)",
	   ctl->reads_hit - hits0, S->nsigbus, S->checked, S->bad);
	ok(status_u64("daemon.file_short_reads") + status_u64("daemon.file_read_errors") +
			   status_u64("daemon.file_bad_records") ==
		   lost0,
	   "a short read: no record is counted lost");
}

static int setup_daemon(char *bdir)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "8M" },
		{ "pool", "max_size", "1M" },
		{ "backing", "path", NULL }, /* filled below */
		{ "backing", "max_size", "256M" },
		{ "pressure", "interval_ms", "100" },
		{ "pressure", "psi_some_avg10", "0" },
		{ "pressure", "min_available", "0" },
		{ NULL, NULL, NULL },
	};
	struct hd_opt o[sizeof(opts) / sizeof(opts[0])];
	char so[HD_PATH_MAX], ctlpath[HD_PATH_MAX], backing[HD_PATH_MAX], asan[512];
	const char *old_asan = getenv("ASAN_OPTIONS");
	ssize_t n;
	int fd, r;

	n = readlink("/proc/self/exe", so, sizeof(so) - 32);
	if (n <= 0)
		return -errno;
	so[n] = 0;
	strcpy(strrchr(so, '/'), "/libfaultinj.so");
	if (access(so, R_OK) < 0) {
		tap_diag("%s: %s (built with the tests)", so, strerror(errno));
		return -ENOENT;
	}
	snprintf(ctlpath, sizeof(ctlpath), "%s/faultinj.ctl", bdir);
	fd = open(ctlpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, sizeof(*ctl)) < 0)
		return -errno;
	ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (ctl == MAP_FAILED)
		return -errno;
	ctl->magic = FAULTINJ_MAGIC;
	memcpy(o, opts, sizeof(opts));
	snprintf(backing, sizeof(backing), "%s/", bdir);
	o[2].value = backing;
	/* Only the daemon gets the shim: set for its exec, then taken back. */
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0", old_asan ? old_asan : "",
		 old_asan ? ":" : "");
	setenv("UZSWAP_FAULTINJ_CTL", ctlpath, 1);
	setenv("UZSWAP_FAULTINJ_DIR", bdir, 1);
	setenv("LD_PRELOAD", so, 1);
	setenv("ASAN_OPTIONS", asan, 1);
	r = hd_start(&daemon_, o);
	unsetenv("LD_PRELOAD");
	if (old_asan)
		setenv("ASAN_OPTIONS", old_asan, 1);
	else
		unsetenv("ASAN_OPTIONS");
	return r;
}

int main(void)
{
	char bdir[HD_DIR_MAX];
	uint64_t t0;
	int r;

	hd_init(true, WATCHDOG_S);
	seed = pat_init(UINT64_C(0xfa17));
	S = hd_shared(sizeof(*S));
	if (!S || hd_mkdtemp(bdir, sizeof(bdir)) < 0)
		tap_skip_all("no shared memory or temporary directory");
	t0 = hd_now_ms();
	r = setup_daemon(bdir);
	if (!ok(r == 0, "a daemon with the fault-injection shim and writeback starts (%s)",
		strerror(-r)))
		return tap_done();
	phase_failing_writes(FI_ENOSPC, "writes failing with ENOSPC", "daemon.file_write_enospc",
			     1);
	phase_failing_writes(FI_EIO, "writes failing with EIO", "daemon.file_write_eio", 2);
	phase_short_writes();
	phase_bad_read(FI_EIO, "a read failing with EIO", "daemon.file_read_errors", 4,
		       "Input/output error");
	phase_bad_read(FI_EOF, "a read at the end of the file", "daemon.file_short_reads", 5,
		       "short read");
	phase_bad_read(FI_CORRUPT, "a corrupted record", "daemon.file_bad_records", 6,
		       "bad checksum or data");
	phase_short_read();
	r = run_client(7, WANT_FILE, 0, NULL, 0);
	ok(r == 0 && S->bad == 0 && S->nsigbus == 0 && S->file_pages >= WANT_FILE,
	   "after all that a new client is served through the file as before (%" PRIu64
	   " in the file, %" PRIu64 " bad, %" PRIu64 " SIGBUS)",
	   S->file_pages, S->bad, S->nsigbus);
	hd_stop_ok(&daemon_);
	tap_diag("total %" PRIu64 " ms", hd_now_ms() - t0);
	return tap_done();
}
