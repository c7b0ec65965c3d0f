/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_config.c - the config file as uzswapd reads it,
 * and uzswapctl's view of a live daemon.
 *
 * etc/uzswapd.conf documents every key as a commented-out line with its
 * default ("#key = value").  Each such line, uncommented alone, and all of
 * them at once, must pass `uzswapd --check-config`.  Files with a problem
 * must fail it with exit status 1 and "FILE:LINE:" naming the line at
 * fault: an unknown section or key, a bad value, a key given twice, an
 * indented line, a low watermark above the high one (blamed on the
 * low_watermark line, the key that depends on the other).  The daemon
 * itself must refuse to start on such a file.
 *
 * Then, as root, against a live daemon using the z3fold allocator:
 * `uzswapctl status` prints a table naming the allocator, `--json` prints
 * an object with "clients" that names it too, and uzswapctl against a
 * socket with no daemon fails and says why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/tap.h"

#define MAX_LINES 400
#define WATCHDOG_S 120

static char dir[HD_DIR_MAX];
static char *lines[MAX_LINES];
static size_t nlines;

static void load_shipped(void)
{
	const char *src = getenv("UZSWAP_SRCDIR");
	char path[512], *line = NULL;
	size_t cap = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/etc/uzswapd.conf", src && *src ? src : "../..");
	f = fopen(path, "re");
	if (!f) {
		printf("Bail out! cannot read %s: %s (make check sets UZSWAP_SRCDIR)\n", path,
		       strerror(errno));
		exit(1);
	}
	while (nlines < MAX_LINES && getline(&line, &cap, f) >= 0)
		lines[nlines++] = strdup(line);
	free(line);
	fclose(f);
	tap_diag("%s: %zu lines", path, nlines);
}

/* "#key = value" with key in [a-z_]: the documented form of a key. */
static bool is_key_line(const char *l)
{
	size_t n;

	if (l[0] != '#')
		return false;
	n = strspn(l + 1, "abcdefghijklmnopqrstuvwxyz_");
	return n > 0 && !strncmp(l + 1 + n, " = ", 3);
}

/* The shipped file with the key lines @which uncommented (-1: all of them). */
static int write_variant(const char *path, long which)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	for (size_t i = 0; i < nlines; i++) {
		bool on = is_key_line(lines[i]) && (which < 0 || (size_t)which == i);

		fputs(on ? lines[i] + 1 : lines[i], f);
	}
	return fclose(f) == 0 ? 0 : -EIO;
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* `uzswapd --check-config PATH`: exit status (or -1), stdout and stderr together in *out. */
static int check_config(const char *path, char **out)
{
	const char *argv[] = { hd_uzswapd(), "--check-config", path, NULL };
	char *o = NULL, *e = NULL;
	int st = 0, r = hd_run(argv, 20000, &o, &e, &st);
	size_t n;

	n = strlen(o ? o : "") + strlen(e ? e : "") + 2;
	*out = malloc(n);
	if (*out)
		snprintf(*out, n, "%s%s", o ? o : "", e ? e : "");
	free(o);
	free(e);
	if (r < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static void shipped_keys(void)
{
	char path[HD_PATH_MAX], section[64] = "?";
	size_t keys = 0;
	char *out;
	int st;

	snprintf(path, sizeof(path), "%s/variant.conf", dir);
	for (size_t i = 0; i < nlines; i++) {
		char key[128];

		if (lines[i][0] == '[') {
			snprintf(section, sizeof(section), "%s", lines[i]);
			hd_one_line(section);
		}
		if (!is_key_line(lines[i]))
			continue;
		keys++;
		snprintf(key, sizeof(key), "%s", lines[i] + 1);
		hd_one_line(key);
		write_variant(path, (long)i);
		st = check_config(path, &out);
		hd_one_line(out);
		ok(st == 0,
		   "%s %s (line %zu of the shipped file, uncommented alone) passes "
		   "--check-config (expected exit 0, saw %d: %s)",
		   section, key, i + 1, st, out ? out : "");
		free(out);
	}
	ok(keys >= 20, "the shipped file documents every key (expected at least 20, found %zu)",
	   keys);
	write_variant(path, -1);
	st = check_config(path, &out);
	hd_one_line(out);
	ok(st == 0,
	   "the shipped file with all %zu keys uncommented passes --check-config (expected exit "
	   "0, saw %d: %s)",
	   keys, st, out ? out : "");
	free(out);
}

struct bad_case {
	const char *what;
	const char *text;
	int line;
};

static const struct bad_case bad_cases[] = {
	{ "an unknown section", "[daemon]\nlog_level = info\n\n[nosuch]\nkey = 1\n", 4 },
	{ "an unknown key", "[budget]\nhigh_watermark = 90\n# comment\nno_such_key = 1\n", 4 },
	{ "a key in the wrong section", "[daemon]\nallocator = zbud\n", 2 },
	{ "fault_threads = 0", "[daemon]\nlog_level = warn\nfault_threads = 0\n", 3 },
	{ "a socket_mode that is not octal", "[daemon]\nsocket_mode = 0999\n", 2 },
	{ "a log level that does not exist", "[daemon]\nlog_level = loud\n", 2 },
	{ "allow_uids that are not numbers", "[clients]\nallow_uids = root\n", 2 },
	{ "a size with a bad suffix", "[pool]\n\nmax_size = 12Q\n", 3 },
	{ "a percentage above 100", "[budget]\nmax_resident = 150%\n", 2 },
	{ "a high watermark above 100", "[budget]\nhigh_watermark = 101\n", 2 },
	{ "an unknown codec", "[compress]\ncodec = gzip\n", 2 },
	{ "an unknown allocator", "[pool]\nallocator = slab\n", 2 },
	{ "an unknown reclaim policy", "[reclaim]\npolicy = lru\n", 2 },
	{ "interval_ms below 100", "[pressure]\ninterval_ms = 50\n", 2 },
	{ "a key given twice", "[daemon]\nlog_level = info\nlog_level = debug\n", 3 },
	{ "an indented line", "[daemon]\nlog_level = info\n  fault_threads = 2\n", 3 },
	{ "low_watermark above high_watermark",
	  "[budget]\nhigh_watermark = 80\n\nlow_watermark = 85\n", 4 },
	{ "low_watermark above high_watermark, low first",
	  "[budget]\nlow_watermark = 85\n; high below it\nhigh_watermark = 80\n", 2 },
};

static void bad_files(void)
{
	char path[HD_PATH_MAX], want[HD_PATH_MAX + 16], *out;
	int st;

	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];

		write_text(path, b->text);
		snprintf(want, sizeof(want), "%s:%d:", path, b->line);
		st = check_config(path, &out);
		hd_one_line(out);
		ok(st == 1 && out && strstr(out, want),
		   "%s fails --check-config with exit 1 and \"%s\" (saw exit %d: %s)", b->what,
		   want, st, out ? out : "");
		free(out);
	}
	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	st = check_config(path, &out);
	hd_one_line(out);
	ok(st == 1 && out && strstr(out, path),
	   "a missing file fails --check-config with exit 1 and names the file (saw exit %d: %s)",
	   st, out ? out : "");
	free(out);
}

/* The daemon itself, handed a bad file, exits 1 with the same message and opens no socket. */
static void daemon_refuses_bad_file(void)
{
	char path[HD_PATH_MAX], sock[HD_PATH_MAX], want[HD_PATH_MAX + 16];
	const char *argv[] = { hd_uzswapd(), "--config", path, "--socket", sock, NULL };
	char *o = NULL, *e = NULL, how[96];
	int st = 0, r;

	snprintf(path, sizeof(path), "%s/refused.conf", dir);
	snprintf(sock, sizeof(sock), "%s/refused.sock", dir);
	write_text(path, "[daemon]\nfault_threads = 65\n");
	snprintf(want, sizeof(want), "%s:2:", path);
	r = hd_run(argv, 20000, &o, &e, &st);
	hd_one_line(e);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1 && e && strstr(e, want) &&
		   access(sock, F_OK) < 0,
	   "uzswapd --config with a bad file exits 1 with \"%s\" and opens no socket (saw %s: %s)",
	   want, r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), e ? e : "");
	free(o);
	free(e);
}

/* Output of a command as diagnostics, line by line. */
static void diag_output(const char *what, const char *s)
{
	const char *p = s ? s : "";

	tap_diag("%s:%s", what, *p ? "" : " (empty)");
	while (*p) {
		size_t n = strcspn(p, "\n");

		tap_diag("  %.*s", (int)n, p);
		p += n + (p[n] == '\n');
	}
}

static void uzswapctl_live(void)
{
	const struct hd_opt opts[] = {
		{ "pool", "allocator", "z3fold" },
		{ NULL, NULL, NULL },
	};
	struct hd_daemon d;
	char *out = NULL, *err = NULL, how[96], alloc[32] = "", nosock[HD_PATH_MAX];
	const char *table[] = { hd_uzswapctl(), "--socket", d.socket, "status", NULL };
	const char *json[] = { hd_uzswapctl(), "--socket", d.socket, "status", "--json", NULL };
	const char *none[] = { hd_uzswapctl(), "--socket", nosock, "status", NULL };
	uint64_t clients = 99;
	int st = 0, r;

	if (geteuid() != 0) {
		tap_skip("uzswapctl against a live daemon: needs root to start uzswapd");
		return;
	}
	if (!ok(hd_start(&d, opts) == 0, "a daemon starts with allocator = z3fold"))
		return;
	r = hd_run(table, 10000, &out, &err, &st);
	if (!ok(r == 0 && WIFEXITED(st) && !WEXITSTATUS(st) && out && strstr(out, "z3fold"),
		"uzswapctl status prints a table naming the allocator, z3fold (saw %s)",
		r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)))) {
		diag_output("its stdout", out);
		diag_output("its stderr", err);
	}
	free(out);
	free(err);
	out = err = NULL;
	r = hd_run(json, 10000, &out, &err, &st);
	if (out) {
		jp_str(out, "daemon.allocator", alloc, sizeof(alloc));
		jp_u64(out, "clients[#]", &clients);
	}
	if (!ok(r == 0 && WIFEXITED(st) && !WEXITSTATUS(st) && out && strstr(out, "\"clients\"") &&
			!strcmp(alloc, "z3fold") && clients == 0,
		"uzswapctl status --json prints an object with \"clients\" (an empty array) and "
		"the allocator (saw %s; allocator \"%s\", %llu clients)",
		r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), alloc,
		(unsigned long long)clients)) {
		diag_output("its stdout", out);
		diag_output("its stderr", err);
	}
	free(out);
	free(err);
	out = err = NULL;
	hd_path(&d, "no-daemon.sock", nosock, sizeof(nosock));
	r = hd_run(none, 10000, &out, &err, &st);
	hd_one_line(err);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0 && err && strstr(err, nosock),
	   "uzswapctl status against a socket with no daemon fails and names the socket (saw "
	   "%s: %s)",
	   r ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)), err ? err : "");
	free(out);
	free(err);
	hd_stop_ok(&d);
}

int main(void)
{
	hd_init(false, WATCHDOG_S);
	if (hd_mkdtemp(dir, sizeof(dir)) < 0)
		tap_skip_all("mkdtemp: %s", strerror(errno));
	load_shipped();
	shipped_keys();
	bad_files();
	daemon_refuses_bad_file();
	uzswapctl_live();
	for (size_t i = 0; i < nlines; i++)
		free(lines[i]);
	return tap_done();
}
