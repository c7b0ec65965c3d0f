/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_admin.c - uzswapctl's commands against a real
 * uzswapd: what each one shows or does, and who may use it.
 *
 * One daemon (zsmalloc, a pool large enough that nothing is written back
 * by itself, [clients] admin_group = 4242) and one holding client of
 * 16 MiB (tests/integration/holder.h), idle unless told.  As root:
 *   - clients, regions PID, classes, metrics and status show the client,
 *     as tables and as JSON (metrics held to the text format by
 *     tests/promcheck.c);
 *   - set PID max-resident lowers its budget, and reclaim then brings it
 *     under; reclaim PID SIZE evicts that much more at once; writeback
 *     SIZE moves pool objects to the backing file; after the client reads
 *     back half its pages (holes in the pool), compact frees pool pages;
 *   - bad arguments are usage errors (exit 2) and a pid no client has, or
 *     a budget above max_resident, is refused (exit 1), saying why.
 * As uid 65534 with no group: every admin command is refused with
 * "permission denied" and changes nothing, and clients hides root's
 * client; as uid 65534 in group 4242 an admin command works and clients
 * shows it.  At the end the client checks every page.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/holder.h"
#include "tests/integration/json.h"
#include "tests/integration/pattern.h"
#include "tests/promcheck.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define NPAGES 4096 /* 16 MiB */
#define NOBODY 65534
#define ADMIN_GID 4242
#define WATCHDOG_S 150

static struct hd_daemon daemon_;
static char pidstr[16];

static const struct hd_cred nobody = { .uid = NOBODY, .gid = NOBODY };
static const gid_t admin_groups[] = { ADMIN_GID };
static const struct hd_cred nobody_admin = {
	.uid = NOBODY, .gid = NOBODY, .groups = admin_groups, .ngroups = 1
};

/* A client's field from `uzswapctl clients --json`, as @cred; UINT64_MAX when absent. */
static uint64_t client_field(const struct hd_cred *cred, const char *field)
{
	char path[96], *out = NULL;
	uint64_t v = UINT64_MAX;

	snprintf(path, sizeof(path), "clients[pid=%s].%s", pidstr, field);
	if (hd_ctl(&daemon_, cred, &out, NULL, "clients", "--json", NULL) == 0 &&
	    jp_u64(out, path, &v) < 0)
		v = UINT64_MAX;
	free(out);
	return v;
}

static uint64_t status_field(const char *path)
{
	uint64_t v = UINT64_MAX;

	if (hd_status_u64(&daemon_, path, &v) < 0)
		v = UINT64_MAX;
	return v;
}

static uint64_t client_resident(void)
{
	char path[64];

	snprintf(path, sizeof(path), "clients[pid=%s].resident_pages", pidstr);
	return status_field(path);
}

/* Poll until the client's resident pages are at most @pages; the last value seen. */
static uint64_t wait_resident_at_most(uint64_t pages, int timeout_ms)
{
	uint64_t start = hd_now_ms(), r;

	while ((r = client_resident()) > pages && hd_now_ms() - start < (uint64_t)timeout_ms)
		hd_sleep_ms(20);
	return r;
}

/* The first number after @key in @s, or UINT64_MAX. */
static uint64_t number_after(const char *s, const char *key)
{
	const char *p = s ? strstr(s, key) : NULL;

	return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

static bool has(const char *s, const char *what)
{
	return s && strstr(s, what);
}

static void test_reads(void)
{
	char *out = NULL, *err = NULL, path[64];
	uint64_t n = 0;
	int st;

	ok(client_field(NULL, "budget_bytes") == 16 * MIB &&
		   client_field(NULL, "managed_bytes") == NPAGES * PAT_PAGE,
	   "clients --json: the client with its 16 MiB budget and its 16 MiB managed");
	st = hd_ctl(&daemon_, NULL, &out, NULL, "clients", NULL);
	ok(st == 0 && has(out, pidstr) && has(out, "RESIDENT"),
	   "clients: a table with a row for the client (exit %d)", st);
	free(out);
	out = NULL;
	st = hd_ctl(&daemon_, NULL, &out, NULL, "regions", pidstr, "--json", NULL);
	snprintf(path, sizeof(path), "regions[0].length");
	ok(st == 0 && jp_u64(out, "regions[#]", &n) == 0 && n == 1 && jp_u64(out, path, &n) == 0 &&
		   n == NPAGES * PAT_PAGE,
	   "regions PID --json: its one region of 16 MiB (exit %d)", st);
	free(out);
	out = NULL;
	st = hd_ctl(&daemon_, NULL, &out, NULL, "regions", pidstr, NULL);
	ok(st == 0 && has(out, "held"), "regions PID: a table naming the region (exit %d)", st);
	free(out);
	out = NULL;
	st = hd_ctl(&daemon_, NULL, NULL, &err, "regions", "999999", NULL);
	ok(st == 1 && has(err, "no client with pid 999999"),
	   "regions of a pid no client has: exit 1 and why (exit %d: %s)", st, hd_one_line(err));
	free(err);
}

/* Once pages are in the pool, so that its classes have series too. */
static void test_metrics(void)
{
	char *out = NULL, why[256] = "";
	int st = hd_ctl(&daemon_, NULL, &out, NULL, "metrics", NULL);

	ok(st == 0 && out && prom_check(out, why, sizeof(why)) == 0 && has(out, pidstr) &&
		   has(out, "uzswap_client_memory_bytes{") && has(out, "uzswap_pool_class_pages{"),
	   "metrics: valid Prometheus text with the client's series and the pool's classes "
	   "(exit %d; %s)",
	   st, why);
	free(out);
}

static void test_set_and_reclaim(void)
{
	char *out = NULL, *err = NULL;
	uint64_t before, after, evicted;
	int st;

	st = hd_ctl(&daemon_, NULL, &out, &err, "set", pidstr, "max-resident", "4M", NULL);
	ok(st == 0 && has(out, "resident budget 4.00 MiB (1 client)"),
	   "set PID max-resident 4M (exit %d: %s%s)", st, hd_one_line(out), hd_one_line(err));
	free(out);
	free(err);
	ok(client_field(NULL, "budget_bytes") == 4 * MIB && client_field(NULL, "budget_set") == 1,
	   "the client's budget is now 4 MiB, marked as set by an admin");
	after = wait_resident_at_most(1024, 20000);
	ok(after <= 1024,
	   "reclaim honours it: the client goes down to 4 MiB resident (saw %" PRIu64 " pages)",
	   after);
	before = client_resident();
	out = err = NULL;
	st = hd_ctl(&daemon_, NULL, &out, &err, "reclaim", pidstr, "2M", NULL);
	evicted = number_after(out, ": ");
	after = client_resident();
	ok(st == 0 && evicted >= 256 && evicted <= 512 && after + evicted <= before,
	   "reclaim PID 2M evicts up to 512 pages now (exit %d: %s%s; resident %" PRIu64
	   " -> %" PRIu64 ")",
	   st, hd_one_line(out), hd_one_line(err), before, after);
	free(out);
	free(err);
}

static void test_writeback(void)
{
	char *out = NULL, *err = NULL;
	uint64_t objects, records;
	int st;

	st = hd_ctl(&daemon_, NULL, &out, &err, "writeback", "1M", NULL);
	objects = number_after(out, "writeback: ");
	records = status_field("daemon.file_records");
	ok(st == 0 && objects > 0 && objects != UINT64_MAX && records > 0 &&
		   status_field("daemon.wb_written_pages") >= objects,
	   "writeback 1M writes pool objects to the backing file (exit %d: %s%s; %" PRIu64
	   " records in the file)",
	   st, hd_one_line(out), hd_one_line(err), records);
	free(out);
	free(err);
}

static void test_compact(struct holder *h, pid_t pid)
{
	char *out = NULL, *err = NULL;
	uint64_t before, after, freed, freeable = 0;
	bool done;
	int st;

	/* Room for what the client reads back, so that reclaim does not refill the holes. */
	st = hd_ctl(&daemon_, NULL, NULL, NULL, "set", pidstr, "max-resident", "64M", NULL);
	done = st == 0 && holder_do(h, pid, HOLD_READ_ODD, 30000);
	ok(done && h->bad == 0, "the client reads back its odd pages intact (%" PRIu64 " bad%s%s)",
	   h->bad, h->bad ? "; first: " : "", h->first_bad);
	st = hd_ctl(&daemon_, NULL, &out, NULL, "classes", "--json", NULL);
	for (uint64_t n = 0, i = 0; st == 0 && jp_u64(out, "classes[#]", &n) == 0 && i < n; i++) {
		char path[64];
		uint64_t v = 0;

		snprintf(path, sizeof(path), "classes[%" PRIu64 "].pages_freeable", i);
		if (jp_u64(out, path, &v) == 0)
			freeable += v;
	}
	ok(st == 0 && has(out, "\"kind\": \"size\"") && freeable > 0,
	   "classes --json: zsmalloc's size classes, %" PRIu64 " pages freeable in them", freeable);
	free(out);
	out = NULL;
	before = status_field("daemon.pool_total_bytes");
	st = hd_ctl(&daemon_, NULL, &out, &err, "compact", NULL);
	freed = number_after(out, "compact: ");
	after = status_field("daemon.pool_total_bytes");
	ok(st == 0 && freed > 0 && freed != UINT64_MAX && after < before,
	   "compact frees pool pages (exit %d: %s%s; pool %" PRIu64 " -> %" PRIu64 " bytes)", st,
	   hd_one_line(out), hd_one_line(err), before, after);
	free(out);
	free(err);
}

struct refusal {
	const char *what;
	const char *args[6];
	int status;
	const char *says;
};

static void expect(const struct hd_cred *cred, const struct refusal *r)
{
	char *err = NULL;
	int st = hd_ctl(&daemon_, cred, NULL, &err, r->args[0], r->args[1], r->args[2], r->args[3],
			r->args[4], r->args[5]);

	ok(st == r->status && has(err, r->says), "%s: exit %d and \"%s\" (saw exit %d: %s)",
	   r->what, r->status, r->says, st, hd_one_line(err));
	free(err);
}

static void test_bad_arguments(void)
{
	const struct refusal cases[] = {
		{ "reclaim of a size that is not whole pages",
		  { "reclaim", pidstr, "4097", NULL },
		  2,
		  "not a whole number of 4 KiB pages" },
		{ "writeback 0", { "writeback", "0", NULL }, 2, "not a whole number" },
		{ "set to a size that is not one",
		  { "set", pidstr, "max-resident", "lots", NULL },
		  2,
		  "is not a size" },
		{ "set of an unknown setting",
		  { "set", pidstr, "budget", "4M", NULL },
		  2,
		  "unknown setting 'budget'" },
		{ "reclaim of a pid that is not one", { "reclaim", "abc", "4M", NULL }, 2, "PID" },
		{ "reclaim without its SIZE", { "reclaim", pidstr, NULL }, 2, "missing argument" },
		{ "compact with an argument", { "compact", "now", NULL }, 2, "takes no argument" },
		{ "metrics --json",
		  { "metrics", "--json", NULL },
		  2,
		  "status --json and classes --json" },
		{ "reclaim of a pid no client has",
		  { "reclaim", "999999", "4M", NULL },
		  1,
		  "no client with pid 999999" },
		{ "set of a pid no client has",
		  { "set", "999999", "max-resident", "4M", NULL },
		  1,
		  "no client with pid 999999" },
		{ "set above max_resident",
		  { "set", pidstr, "max-resident", "1T", NULL },
		  1,
		  "above [budget] max_resident" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(NULL, &cases[i]);
}

static void test_permissions(void)
{
	const struct refusal cases[] = {
		{ "set as uid 65534",
		  { "set", pidstr, "max-resident", "8M", NULL },
		  1,
		  "set: permission denied" },
		{ "compact as uid 65534", { "compact", NULL }, 1, "compact: permission denied" },
		{ "reclaim as uid 65534",
		  { "reclaim", pidstr, "1M", NULL },
		  1,
		  "permission denied" },
		{ "writeback as uid 65534", { "writeback", "1M", NULL }, 1, "permission denied" },
		{ "reload as uid 65534", { "reload", NULL }, 1, "members of group 4242" },
	};
	uint64_t budget = client_field(NULL, "budget_bytes");
	char *out = NULL;
	uint64_t n = UINT64_MAX;
	int st;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect(&nobody, &cases[i]);
	ok(client_field(NULL, "budget_bytes") == budget,
	   "the refused set changed nothing (budget %" PRIu64 " bytes)", budget);
	st = hd_ctl(&daemon_, &nobody, &out, NULL, "clients", "--json", NULL);
	if (st != 0 || jp_u64(out, "clients[#]", &n) < 0)
		n = UINT64_MAX;
	ok(st == 0 && n == 0,
	   "clients as uid 65534 works but hides root's client (exit %d, %" PRIu64 " shown)", st,
	   n);
	free(out);
	out = NULL;
	st = hd_ctl(&daemon_, &nobody, &out, NULL, "classes", NULL);
	ok(st == 0 && has(out, "zsmalloc"), "classes as uid 65534 works (exit %d)", st);
	free(out);
	out = NULL;
	st = hd_ctl(&daemon_, &nobody_admin, &out, NULL, "compact", NULL);
	ok(st == 0 && has(out, "pool pages freed"),
	   "compact as uid 65534 in the admin group %d works (exit %d)", ADMIN_GID, st);
	free(out);
	ok(client_field(&nobody_admin, "budget_bytes") == budget,
	   "clients as a member of the admin group shows root's client");
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "daemon", "socket_mode", "0666" },	    { "clients", "admin_group", "4242" },
		{ "budget", "client_max_resident", "16M" }, { "pool", "max_size", "256M" },
		{ "pressure", "psi_some_avg10", "0" },	    { "pressure", "min_available", "0" },
		{ "pressure", "interval_ms", "100" },	    { NULL, NULL, NULL },
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
		.d = &daemon_, .seed = pat_init(0xad0117), .tag = 7, .npages = NPAGES
	};
	if (!ok(hd_start(&daemon_, opts) == 0, "the daemon starts"))
		return tap_done();
	/* Its directory is 0700 (mkdtemp): uid 65534 must reach the socket. */
	chmod(daemon_.dir, 0755);
	pid = hd_spawn(holder_main, h);
	if (!ok(pid > 0 && holder_wait_ready(h, pid, 30000), "a client holds 16 MiB")) {
		hd_stop_ok(&daemon_);
		return tap_done();
	}
	snprintf(pidstr, sizeof(pidstr), "%d", (int)pid);
	test_reads();
	test_set_and_reclaim();
	test_writeback();
	test_compact(h, pid);
	test_metrics();
	test_bad_arguments();
	test_permissions();
	done = holder_do(h, pid, HOLD_VERIFY, 60000);
	ok(done && h->bad == 0,
	   "after all that, the client reads every page back intact (%" PRIu64 " checked, %" PRIu64
	   " bad%s%s)",
	   h->checked, h->bad, h->bad ? "; first: " : "", h->first_bad);
	holder_do(h, pid, HOLD_EXIT, 10000);
	r = hd_wait(pid, 20000, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the client exits 0 (saw %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)));
	hd_stop_ok(&daemon_);
	return tap_done();
}
