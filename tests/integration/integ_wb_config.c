/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_wb_config.c - the backing file's settings as a
 * running uzswapd applies them.
 *
 *  - writeback = no: no file is made, the pool fills and then refuses
 *    stores (pages stay resident, counted), every page reads back, and
 *    status says the tier is off;
 *  - a named backing file is created mode 0600 while the daemon runs and
 *    truncated to nothing when it stops;
 *  - the daemon refuses to start, and says why, when the backing path is
 *    a symbolic link, when its directory is open to others, and when a
 *    directory above it can be written by others.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define REGION (32 * MIB)
#define NPAGES (REGION / PAT_PAGE)
#define WATCHDOG_S 120

struct shared {
	uint64_t seed, checked, bad;
	int setup_err;
	struct uzswap_stats st;
};

static struct hd_daemon daemon_;
static struct shared *S;
static uint64_t seed; /* pat_init() loads the pages once: it is called once */

/* Fill a region 8x the budget, wait for eviction, read it all back. */
static int client_main(void *arg)
{
	struct pat k = { .seed = S->seed, .tag = 3, .kind = PAT_MIXED };
	struct uzswap *u;
	char why[96];
	void *map;
	int r;

	(void)arg;
	r = hd_connect(&daemon_, 4 * MIB, "wbconfig", &u);
	if (r == 0)
		r = uzswap_region_create(u, REGION, "wbconfig", &map);
	if (r < 0)
		return hd_setup_failed(&S->setup_err, r);
	for (uint64_t p = 0; p < NPAGES; p++)
		pat_write(&k, (char *)map + p * PAT_PAGE, p, 1);
	/* Enough for the pool to fill (1 MiB) and, with writeback, for the file to be used. */
	hd_wait_evicted(u, NPAGES / 8, 5000, &S->st);
	for (uint64_t p = 0; p < NPAGES; p++, S->checked++)
		S->bad += !pat_verify(&k, (char *)map + p * PAT_PAGE, p, 1, why, sizeof(why));
	uzswap_stats(u, &S->st);
	uzswap_region_release(u, map);
	uzswap_close(u);
	return 0;
}

static int run_client(void)
{
	int st = 0, r;
	pid_t pid;
	memset(S, 0, sizeof(*S));
	S->seed = seed;
	pid = hd_spawn(client_main, NULL);
	if (pid < 0)
		return (int)pid;
	r = hd_wait(pid, 60000, &st);
	return r ? r : WIFEXITED(st) && WEXITSTATUS(st) == 0 ? S->setup_err : -EPROTO;
}

static bool log_has(const struct hd_daemon *d, const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(d->log, "re");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void test_writeback_off(void)
{
	char file[HD_PATH_MAX];
	const struct hd_opt opts[] = {
		{ "backing", "writeback", "no" },     { "backing", "path", file },
		{ "pool", "max_size", "1M" },	      { "pressure", "psi_some_avg10", "0" },
		{ "pressure", "min_available", "0" }, { NULL, NULL, NULL },
	};
	char dir[HD_DIR_MAX];
	uint64_t on = 1, records = 1;
	int r;

	if (hd_mkdtemp(dir, sizeof(dir)) < 0)
		return;
	snprintf(file, sizeof(file), "%s/backing", dir);
	if (!ok(hd_start(&daemon_, opts) == 0, "a daemon with writeback = no starts"))
		return;
	r = run_client();
	ok(r == 0 && S->checked == NPAGES && S->bad == 0,
	   "writeback = no: every page reads back (%" PRIu64 " checked, %" PRIu64 " bad)",
	   S->checked, S->bad);
	ok(S->st.file_pages == 0 && S->st.rejections > 0,
	   "writeback = no: nothing goes to a file, and a full pool refuses stores (%" PRIu64
	   " rejections)",
	   S->st.rejections);
	hd_status_u64(&daemon_, "daemon.writeback", &on);
	hd_status_u64(&daemon_, "daemon.file_records", &records);
	ok(on == 0 && records == 0 && access(file, F_OK) < 0 && log_has(&daemon_, "writeback: off"),
	   "writeback = no: status and log say the tier is off, and no backing file exists");
	hd_stop_ok(&daemon_);
}

static void test_named_file(void)
{
	char file[HD_PATH_MAX], dir[HD_DIR_MAX];
	const struct hd_opt opts[] = {
		{ "backing", "path", file },
		{ "pool", "max_size", "1M" },
		{ NULL, NULL, NULL },
	};
	struct stat sb;
	uint64_t records = 0;
	int r;

	if (hd_mkdtemp(dir, sizeof(dir)) < 0)
		return;
	snprintf(file, sizeof(file), "%s/backing.file", dir);
	if (!ok(hd_start(&daemon_, opts) == 0, "a daemon with a named backing file starts"))
		return;
	r = stat(file, &sb);
	ok(r == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 07777) == 0600,
	   "the named backing file is created with mode 0600 (saw %04o)",
	   (unsigned int)(sb.st_mode & 07777));
	r = run_client();
	hd_status_u64(&daemon_, "daemon.wb_written_pages", &records);
	ok(r == 0 && S->bad == 0 && records > 0,
	   "pages go through the named file and read back (%" PRIu64 " written back, %" PRIu64
	   " bad)",
	   records, S->bad);
	hd_stop_ok(&daemon_);
	r = stat(file, &sb);
	ok(r == 0 && sb.st_size == 0 && sb.st_blocks == 0,
	   "when the daemon stops the file is truncated to nothing (%lld bytes, %lld blocks)",
	   (long long)sb.st_size, (long long)sb.st_blocks);
}

/* The daemon must not start with @path, and its log must say @why. */
static void refused(const char *what, const char *path, const char *why)
{
	const struct hd_opt opts[] = { { "backing", "path", path }, { NULL, NULL, NULL } };
	struct hd_daemon d;
	int r;

	tap_diag("expecting uzswapd to refuse %s (its log follows on failure)", what);
	r = hd_start(&d, opts);
	ok(r < 0 && WIFEXITED(d.wstatus) && WEXITSTATUS(d.wstatus) == 1 && log_has(&d, why),
	   "the daemon refuses a backing path that is %s, saying \"%s\"", what, why);
	if (r == 0)
		hd_stop(&d, NULL, 0);
}

static void test_refusals(void)
{
	char dir[HD_DIR_MAX], target[HD_PATH_MAX], link[HD_PATH_MAX], open_dir[HD_PATH_MAX];
	char under[HD_PATH_MAX + 16];

	if (hd_mkdtemp(dir, sizeof(dir)) < 0)
		return;
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	close(open(target, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	if (symlink(target, link) < 0)
		tap_diag("symlink: %s", strerror(errno));
	refused("a symbolic link", link, "a symbolic link: refused");

	snprintf(open_dir, sizeof(open_dir), "%s/open", dir);
	mkdir(open_dir, 0755);
	chmod(open_dir, 0755);
	snprintf(under, sizeof(under), "%s/backing", open_dir);
	refused("in a directory open to others", under, "with mode 0700");

	chmod(open_dir, 0777);
	snprintf(under, sizeof(under), "%s/inner/", open_dir);
	refused("under a directory others can write into", under, "others can write into");
}

int main(void)
{
	hd_init(true, WATCHDOG_S);
	S = hd_shared(sizeof(*S));
	if (!S)
		tap_skip_all("no shared memory");
	seed = pat_init(UINT64_C(0xc0f1));
	test_writeback_off();
	test_named_file();
	test_refusals();
	return tap_done();
}
