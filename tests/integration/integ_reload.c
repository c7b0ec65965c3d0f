/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_reload.c - live reload of a running uzswapd
 * (uzswapctl reload and SIGHUP), with a client holding evicted pages.
 *
 * The daemon starts with z3fold, lz4, an 8 MiB default budget; the client
 * holds 12 MiB, so a third of it is evicted with lz4.  Then, rewriting
 * the config file between steps:
 *   - a smaller default budget and zstd: reload says 3 settings changed,
 *     the client's budget follows (reclaim brings it under), the reclaim
 *     thread says it now compresses with zstd, status shows the new codec,
 *     and every page reads back, lz4 and zstd ones alike;
 *   - settings that cannot change live (fault_threads, allocator): the
 *     reload names them in a warning and they keep their running values;
 *     the command line's --socket is kept without a warning;
 *   - a file with a bad line: reload fails with FILE:LINE: what is wrong,
 *     and nothing changes; SIGHUP with it logs the same and the daemon
 *     goes on;
 *   - the client's sampled share, cut while sampling finds nothing touched
 *     (passes that touch each page once, before its zap), goes back to
 *     every eviction with sample_touched_pct = 0;
 *   - SIGHUP with a good file applies it (a new level), and leaves alone a
 *     budget an admin set with uzswapctl set;
 *   - writeback turned off (status says so: 2, the file's pages still
 *     restored; writeback SIZE is refused) and the pool's limit moved, live.
 * classes --json shows z3fold's pages by objects held.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/holder.h"
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define NPAGES 3072 /* 12 MiB */
#define WATCHDOG_S 150

static struct hd_daemon daemon_;
static char pidstr[16];

static bool has(const char *s, const char *what)
{
	return s && strstr(s, what);
}

/*
 * The config file: [daemon] with the harness's log level and @daemon_keys,
 * [backing] with its path and @backing_keys, then @rest: lines 1-2, the
 * daemon keys, a blank, [backing] and path, the backing keys, a blank.
 * No socket: the daemon's came from --socket, which a reload keeps.
 */
static int write_conf(const char *daemon_keys, const char *backing_keys, const char *rest)
{
	FILE *f = fopen(daemon_.config, "we");

	if (!f)
		return -errno;
	fprintf(f, "[daemon]\nlog_level = info\n%s\n[backing]\npath = %s/\n%s\n%s", daemon_keys,
		daemon_.dir, backing_keys, rest);
	return fclose(f) == 0 ? 0 : -EIO;
}

static uint64_t status_u64(const char *path)
{
	uint64_t v = UINT64_MAX;

	if (hd_status_u64(&daemon_, path, &v) < 0)
		v = UINT64_MAX;
	return v;
}

static bool status_str(const char *path, const char *want)
{
	char *json = hd_status_json(&daemon_), got[64] = "";
	bool same = json && jp_str(json, path, got, sizeof(got)) == 0 && !strcmp(got, want);

	if (!same)
		tap_diag("status %s: expected \"%s\", saw \"%s\"", path, want, got);
	free(json);
	return same;
}

static uint64_t client_u64(const char *field)
{
	char path[96];

	snprintf(path, sizeof(path), "clients[pid=%s].%s", pidstr, field);
	return status_u64(path);
}

static uint64_t wait_resident_at_most(uint64_t pages, int timeout_ms)
{
	uint64_t start = hd_now_ms(), r;

	while ((r = client_u64("resident_pages")) > pages &&
	       hd_now_ms() - start < (uint64_t)timeout_ms)
		hd_sleep_ms(20);
	return r;
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

static bool wait_log(const char *needle, int timeout_ms)
{
	uint64_t start = hd_now_ms();

	while (!log_has(needle) && hd_now_ms() - start < (uint64_t)timeout_ms)
		hd_sleep_ms(20);
	return log_has(needle);
}

/* The settings of the first reload, which test_sample_share() starts from. */
#define CODEC_CONF                                            \
	"[budget]\nclient_max_resident = 4M\n"                \
	"[pressure]\npsi_some_avg10 = 0\nmin_available = 0\n" \
	"interval_ms = 100\n"                                 \
	"[compress]\ncodec = zstd\nlevel = 1\n"               \
	"[pool]\nallocator = z3fold\nmax_size = 256M\n"

static void test_budget_and_codec(struct holder *h, pid_t pid)
{
	static const char conf[] = CODEC_CONF;
	char *out = NULL, *err = NULL;
	uint64_t after;
	bool done;
	int st;

	ok(wait_resident_at_most(2048, 20000) <= 2048 && client_u64("pool_pages") > 0,
	   "with an 8 MiB budget a third of the client is evicted, with lz4");
	st = write_conf("", "", conf) ? -1 : hd_ctl(&daemon_, NULL, &out, &err, "reload", NULL);
	ok(st == 0 && has(out, "reload: 3 settings changed") && err && !*err,
	   "reload with a new budget, codec and level: 3 settings changed, no warning (exit %d: "
	   "%s%s)",
	   st, hd_one_line(out), hd_one_line(err));
	free(out);
	free(err);
	ok(status_str("daemon.codec", "zstd") && status_u64("daemon.codec_level") == 1,
	   "status shows the new codec and level");
	ok(client_u64("budget_bytes") == 4 * MIB,
	   "the client's default budget follows the new client_max_resident (saw %" PRIu64 ")",
	   client_u64("budget_bytes"));
	after = wait_resident_at_most(1024, 20000);
	ok(after <= 1024, "reclaim brings the client under its new budget (%" PRIu64 " pages)",
	   after);
	ok(wait_log("reclaim: evictions now compress with zstd level 1", 20000),
	   "the reclaim thread took the new codec for its evictions");
	done = holder_do(h, pid, HOLD_VERIFY, 60000);
	ok(done && h->bad == 0,
	   "every page reads back, those evicted with lz4 and those with zstd (%" PRIu64
	   " checked, %" PRIu64 " bad%s%s)",
	   h->checked, h->bad, h->bad ? "; first: " : "", h->first_bad);
}

/*
 * One pass of the client over its pages in order, each touched once, from
 * nothing resident (an admin reclaim of everything first): every page it
 * zaps in the pass was touched before its zap and never after, so every
 * verdict is "untouched".  Returns the share afterwards, once a round has
 * had time to set it (it is set at a round's start, from 128 verdicts or
 * more).  Before the pass, the pages of the first read-back zapped ahead
 * of it were judged touched: rightly, the read came after the zap.
 */
static uint64_t untouched_pass(struct holder *h, pid_t pid, uint64_t *touched_at, bool *clean)
{
	uint64_t share, start;
	bool done;

	*clean &= hd_ctl(&daemon_, NULL, NULL, NULL, "reclaim", pidstr, "16M", NULL) == 0;
	if (*touched_at == UINT64_MAX)
		*touched_at = client_u64("sampled_touched");
	done = holder_do(h, pid, HOLD_VERIFY, 60000);
	*clean &= done && h->bad == 0;
	start = hd_now_ms();
	do {
		hd_sleep_ms(100);
		share = client_u64("sample_share_centi");
	} while (share >= 2500 && hd_now_ms() - start < 2000);
	return share;
}

/*
 * Access sampling judges a quarter of a client's evictions at the start,
 * and ever fewer while it finds nothing touched: a few passes of untouched
 * verdicts bring the share under the quarter (each window of them halves
 * the distance to the floor, and a round may take several windows at
 * once).  With sample_touched_pct = 0, reloaded, every eviction is judged
 * again.  Sampling is off while swap is on (daemon/sample.h).
 */
static void test_sample_share(struct holder *h, pid_t pid)
{
	static const char every[] = CODEC_CONF "[reclaim]\nsample_touched_pct = 0\n";
	static const char base[] = CODEC_CONF;
	uint64_t share = 10000, start, touched_at = UINT64_MAX, touched;
	bool clean = true;
	struct sysinfo si;
	int st, pass;

	if (sysinfo(&si) == 0 && si.totalswap) {
		tap_skip("the sampled share follows the verdicts: swap is on, so sampling is off");
		return;
	}
	for (pass = 0; pass < 4 && share >= 2500; pass++)
		share = untouched_pass(h, pid, &touched_at, &clean);
	touched = client_u64("sampled_touched") - touched_at;
	ok(clean && touched == 0 && share > 0 && share < 2500 && client_u64("sampled_idle") > 0,
	   "a client that touches each page once, before its zap, gets only untouched verdicts "
	   "(%" PRIu64 " touched, %" PRIu64 " untouched in all) and its sampled share is cut below "
	   "the quarter it starts at (%" PRIu64 " in 1/100 %% after %d passes%s)",
	   touched, client_u64("sampled_idle"), share, pass,
	   clean ? "" : "; a reclaim or a pass failed");
	st = write_conf("", "", every) ? -1 : hd_ctl(&daemon_, NULL, NULL, NULL, "reload", NULL);
	start = hd_now_ms();
	while (st == 0 && client_u64("sample_share_centi") != 10000 && hd_now_ms() - start < 20000)
		hd_sleep_ms(20);
	ok(st == 0 && client_u64("sample_share_centi") == 10000,
	   "reloaded with sample_touched_pct = 0, every eviction is judged again (exit %d, "
	   "share %" PRIu64 ")",
	   st, client_u64("sample_share_centi"));
	/* Back to the default, so that the next steps count their own changes only. */
	st = write_conf("", "", base) ? -1 : hd_ctl(&daemon_, NULL, NULL, NULL, "reload", NULL);
	ok(st == 0, "reloaded with sample_touched_pct back to its default (exit %d)", st);
}

static void test_classes(void)
{
	char *out = NULL;
	uint64_t n = 0, pages = 0;
	int st = hd_ctl(&daemon_, NULL, &out, NULL, "classes", "--json", NULL);

	for (uint64_t i = 0; st == 0 && jp_u64(out, "classes[#]", &n) == 0 && i < n; i++) {
		char path[64];
		uint64_t v = 0;

		snprintf(path, sizeof(path), "classes[%" PRIu64 "].pages_used", i);
		if (jp_u64(out, path, &v) == 0)
			pages += v;
	}
	ok(st == 0 && has(out, "\"allocator\": \"z3fold\"") && has(out, "\"kind\": \"fill\"") &&
		   n == 4 && pages > 0,
	   "classes --json: z3fold's pool pages by objects held (%" PRIu64 " kinds, %" PRIu64
	   " pages)",
	   n, pages);
	free(out);
}

static void test_fixed_settings(void)
{
	static const char conf[] = "[budget]\nclient_max_resident = 4M\n"
				   "[pressure]\npsi_some_avg10 = 0\nmin_available = 0\n"
				   "interval_ms = 100\n"
				   "[compress]\ncodec = zstd\nlevel = 1\n"
				   "[pool]\nallocator = zsmalloc\nmax_size = 256M\n";
	char *out = NULL, *err = NULL;
	int st;

	st = write_conf("fault_threads = 2\n", "", conf);
	if (st == 0)
		st = hd_ctl(&daemon_, NULL, &out, &err, "reload", NULL);
	ok(st == 0 && has(out, "0 settings changed, 2 kept") &&
		   has(err, "not changed while running (restart uzswapd to apply): [daemon] "
			    "fault_threads, [pool] allocator"),
	   "settings that cannot change live are named in a warning (exit %d: %s; %s)", st,
	   hd_one_line(out), hd_one_line(err));
	ok(err && !strstr(err, "socket"),
	   "the socket given on the command line is kept without a warning");
	ok(status_u64("daemon.fault_threads") == 1 && status_str("daemon.allocator", "z3fold"),
	   "and they keep their running values");
	ok(log_has("[daemon] fault_threads, [pool] allocator"), "the daemon logs the warning too");
	free(out);
	free(err);
}

static void test_bad_file(pid_t pid)
{
	char *err = NULL, want[HD_PATH_MAX + 64];
	int st;

	/* Lines 1-6 are write_conf()'s own: the bad one is the 6th of this text, line 12. */
	st = write_conf("", "",
			"[budget]\nclient_max_resident = 2M\n[compress]\ncodec = lz4\n"
			"[budget]\nhigh_watermark = 5\n");
	snprintf(want, sizeof(want), "%s:12: [budget] high_watermark: 5 is out of range",
		 daemon_.config);
	if (st == 0)
		st = hd_ctl(&daemon_, NULL, NULL, &err, "reload", NULL);
	ok(st == 1 && has(err, want), "reload of a bad file fails with \"%s\" (exit %d: %s)", want,
	   st, hd_one_line(err));
	free(err);
	ok(status_str("daemon.codec", "zstd") && client_u64("budget_bytes") == 4 * MIB,
	   "and keeps the running config whole: codec zstd, budget 4 MiB");
	kill(daemon_.pid, SIGHUP);
	ok(wait_log("reload (SIGHUP): ", 20000) && wait_log(want, 20000) &&
		   log_has("the running configuration is kept"),
	   "SIGHUP with the bad file logs the same FILE:LINE message");
	ok(hd_alive(&daemon_) && !hd_ended(pid) && status_str("daemon.codec", "zstd"),
	   "and the daemon goes on serving, its config unchanged");
}

static void test_sighup_and_set(void)
{
	static const char conf[] = "[budget]\nclient_max_resident = 6M\n"
				   "[pressure]\npsi_some_avg10 = 0\nmin_available = 0\n"
				   "interval_ms = 100\n"
				   "[compress]\ncodec = zstd\nlevel = 2\n"
				   "[pool]\nallocator = z3fold\nmax_size = 256M\n";
	uint64_t start;
	int st;

	st = hd_ctl(&daemon_, NULL, NULL, NULL, "set", pidstr, "max-resident", "2M", NULL);
	ok(st == 0 && client_u64("budget_bytes") == 2 * MIB, "set PID max-resident 2M (exit %d)",
	   st);
	if (write_conf("", "", conf) == 0)
		kill(daemon_.pid, SIGHUP);
	start = hd_now_ms();
	while (status_u64("daemon.codec_level") != 2 && hd_now_ms() - start < 20000)
		hd_sleep_ms(20);
	ok(status_u64("daemon.codec_level") == 2, "SIGHUP applies a good file (level 2)");
	ok(client_u64("budget_bytes") == 2 * MIB && client_u64("budget_set") == 1,
	   "a budget an admin set stays through the reload (saw %" PRIu64 ")",
	   client_u64("budget_bytes"));
}

static void test_writeback_and_pool(void)
{
	static const char conf[] = "[budget]\nclient_max_resident = 6M\n"
				   "[pressure]\npsi_some_avg10 = 0\nmin_available = 0\n"
				   "interval_ms = 100\n"
				   "[compress]\ncodec = zstd\nlevel = 2\n"
				   "[pool]\nallocator = z3fold\nmax_size = 64M\n";
	char *out = NULL, *err = NULL;
	int st;

	st = write_conf("", "writeback = no\n", conf);
	if (st == 0)
		st = hd_ctl(&daemon_, NULL, &out, &err, "reload", NULL);
	ok(st == 0 && has(out, "2 settings changed") && status_u64("daemon.writeback") == 2 &&
		   status_u64("daemon.pool_max_bytes") == 64 * MIB,
	   "reload turns writeback off and moves the pool's limit, live (exit %d: %s%s)", st,
	   hd_one_line(out), hd_one_line(err));
	free(out);
	free(err);
	err = NULL;
	st = hd_ctl(&daemon_, NULL, NULL, &err, "writeback", "1M", NULL);
	ok(st == 1 && has(err, "writeback is off"),
	   "writeback SIZE is then refused: writeback is off (exit %d: %s)", st, hd_one_line(err));
	free(err);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "8M" },
		{ "pressure", "psi_some_avg10", "0" },
		{ "pressure", "min_available", "0" },
		{ "pressure", "interval_ms", "100" },
		{ "pool", "allocator", "z3fold" },
		{ "pool", "max_size", "256M" },
		{ NULL, NULL, NULL },
	};
	struct holder *h;
	char how[96];
	int st = 0, r;
	bool done;
	pid_t pid;

	hd_init(true, WATCHDOG_S);
	h = hd_shared(sizeof(*h));
	if (!h)
		tap_skip_all("no shared memory");
	*h = (struct holder){
		.d = &daemon_, .seed = pat_init(0x4e10ad), .tag = 9, .npages = NPAGES
	};
	if (!ok(hd_start(&daemon_, opts) == 0, "the daemon starts"))
		return tap_done();
	pid = hd_spawn(holder_main, h);
	if (!ok(pid > 0 && holder_wait_ready(h, pid, 30000), "a client holds 12 MiB")) {
		hd_stop_ok(&daemon_);
		return tap_done();
	}
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	test_budget_and_codec(h, pid);
	test_sample_share(h, pid);
	test_classes();
	test_fixed_settings();
	test_bad_file(pid);
	test_sighup_and_set();
	test_writeback_and_pool();
	done = holder_do(h, pid, HOLD_VERIFY, 60000);
	ok(done && h->bad == 0, "at the end every page still reads back (%" PRIu64 " bad%s%s)",
	   h->bad, h->bad ? "; first: " : "", h->first_bad);
	holder_do(h, pid, HOLD_EXIT, 10000);
	r = hd_wait(pid, 20000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the client exits 0 (saw %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)));
	hd_stop_ok(&daemon_);
	return tap_done();
}
