/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_interpose.c - every semantic of private memory
 * holds for an unmodified program under uzswap-run.
 *
 * A daemon with a 4 MiB client budget serves tests/integration/ipose_victim
 * ($UZI_VICTIM), an ordinary program, run as `uzswap-run -- ipose_victim
 * SCENARIO`, once per scenario: fresh memory and calloc read zeros;
 * MADV_DONTNEED/FREE read zeros and free the daemon's copies; munmap whole
 * and partial, MAP_FIXED over part, mprotect of part; mremap grow, shrink,
 * move, DONTUNMAP; fork (private both ways, and the daemon's log shows the
 * snapshot copied resident pages only), a fork that fails; exec; vfork and
 * posix_spawn; many threads; a thread faulting while another unmaps;
 * read(2)/write(2) on evicted memory; O(1) descriptors for 500 mappings;
 * 3000 rounds of mmap and munmap at one address.
 * The victim checks its own memory and says FAIL when a semantic broke;
 * this file checks its exit status and what uzswap-run and the interposer
 * print.  Then the daemon's absence (one warning, or --strict's error) and
 * its death (the program stops with status 86, never reading zeros).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/tap.h"

#define WATCHDOG_S 600
#define RUN_TIMEOUT_MS 120000
#define BUDGET_PAGES 1024 /* 4 MiB */

extern char **environ;

static struct hd_daemon daemon_;

static const char *env_or_bail(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v || access(v, R_OK) < 0) {
		printf("Bail out! $%s (%s) is not there: make check sets it\n", name,
		       v ? v : "unset");
		exit(1);
	}
	return v;
}

/* Run `uzswap-run [opts...] -- victim scenario`; its status, stdout, stderr. */
static int run_victim(const char *const *opts, const char *scenario, int *st, char **out,
		      char **err)
{
	const char *argv[16];
	size_t n = 0;

	argv[n++] = env_or_bail("UZSWAP_RUN");
	for (; opts && *opts; opts++)
		argv[n++] = *opts;
	argv[n++] = "--";
	argv[n++] = env_or_bail("UZI_VICTIM");
	argv[n++] = scenario;
	argv[n] = NULL;
	return hd_run(argv, RUN_TIMEOUT_MS, out, err, st);
}

static void show(const char *what, const char *text)
{
	char *copy = strdup(text ? text : ""), *line, *save = NULL;

	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		tap_diag("%s: %s", what, line);
	free(copy);
}

/* One scenario: exit 0 and no FAIL line.  Returns its stdout (caller frees). */
static char *scenario(const char *name, const char *const *opts, const char *sentence)
{
	char *out = NULL, *err = NULL, how[96];
	int st = 0, r = run_victim(opts, name, &st, &out, &err);
	bool good = r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(out, "FAIL:");

	if (!ok(good, "%s (%s: %s)", sentence, name,
		r < 0 ? strerror(-r) : hd_wstatus_str(st, how, sizeof(how)))) {
		show("stdout", out);
		show("stderr", err);
	}
	free(err);
	return out;
}

static void run_scenario(const char *name, const char *sentence)
{
	free(scenario(name, NULL, sentence));
}

/* Start daemon_ with @opts and point the victims at it (their environment). */
static int start_daemon(const struct hd_opt *opts)
{
	char pid[16];
	int ret = hd_start(&daemon_, opts);

	if (ret < 0)
		return ret;
	setenv("UZSWAP_SOCKET", daemon_.socket, 1);
	snprintf(pid, sizeof(pid), "%d", (int)daemon_.pid);
	setenv("UZI_DAEMON_PID", pid, 1);
	return 0;
}

/* The last "fork snapshot ... N pages copied, M shared" line of the daemon's log. */
static bool last_snapshot(uint64_t *copied, uint64_t *shared)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(daemon_.log, "re");

	while (f && fgets(line, sizeof(line), f)) {
		const char *s = strstr(line, "fork snapshot for client");
		uint64_t regions;

		if (s && sscanf(strstr(s, ": ") + 2,
				"%" SCNu64 " regions, %" SCNu64 " pages copied, %" SCNu64 " shared",
				&regions, copied, shared) == 3)
			found = true;
	}
	if (f)
		fclose(f);
	return found;
}

static void test_fork(void)
{
	uint64_t copied = 0, shared = 0;
	bool found;

	run_scenario("fork", "after fork, parent and child each see their own writes only, "
			     "and neither reads zeros where data was");
	found = last_snapshot(&copied, &shared);
	ok(found && copied <= 3 * BUDGET_PAGES && shared > 8192,
	   "the fork copied only resident pages (%" PRIu64 ", budget %d) and shared the %" PRIu64
	   " evicted ones of the 16384",
	   copied, BUDGET_PAGES, shared);
	run_scenario("fork-fails", "a fork that fails leaves the memory intact and the daemon "
				   "frees the child's snapshot");
}

static void test_cli(void)
{
	const char *help[] = { env_or_bail("UZSWAP_RUN"), "--help", NULL };
	const char *sh[] = { env_or_bail("UZSWAP_RUN"), "--", "/bin/sh", "-c", "exit 7", NULL };
	const char *bad[] = {
		env_or_bail("UZSWAP_RUN"), "--max-resident", "lots", "--", "/bin/true", NULL
	};
	char *out = NULL, *err = NULL;
	int st = 0;

	hd_run(help, 10000, &out, &err, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(out, "--max-resident") &&
		   strstr(out, "--min-region") && strstr(out, "--socket") &&
		   strstr(out, "--strict") && strstr(out, "--quiet"),
	   "uzswap-run --help exits 0 and names every option");
	free(out);
	free(err);
	hd_run(sh, 10000, &out, &err, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 7, "uzswap-run's exit status is the program's");
	free(out);
	free(err);
	hd_run(bad, 10000, &out, &err, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 125 && strstr(err, "not a size"),
	   "uzswap-run refuses a bad size with a message and status 125");
	free(out);
	free(err);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

static void test_no_daemon(void)
{
	const char *quiet_opts[] = { "--socket", "/nonexistent/uzswapd.sock", "--quiet", NULL };
	const char *opts[] = { "--socket", "/nonexistent/uzswapd.sock", NULL };
	const char *strict[] = { "--socket", "/nonexistent/uzswapd.sock", "--strict", NULL };
	char *out = NULL, *err = NULL;
	int st = 0;
	size_t lines;
	bool warned;

	run_victim(opts, "unmanaged", &st, &out, &err);
	lines = count_lines(err);
	warned = strstr(err, "running unmanaged") != NULL;
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(out, "FAIL:") && lines == 1 && warned,
	   "without a daemon the program runs unmanaged after one warning line (%zu lines: %s)",
	   lines, hd_one_line(err));
	free(out);
	free(err);
	run_victim(quiet_opts, "unmanaged", &st, &out, &err);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0 && count_lines(err) == 0,
	   "--quiet leaves out the warning");
	free(out);
	free(err);
	run_victim(strict, "unmanaged", &st, &out, &err);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == UZSWAP_EXIT_NO_DAEMON &&
		   strstr(err, "UZSWAP_STRICT"),
	   "--strict makes a missing daemon an error (status %d; stderr: %s)",
	   WIFEXITED(st) ? WEXITSTATUS(st) : -1, hd_one_line(err));
	free(out);
	free(err);
}

static char *slurp(const char *path)
{
	static char buf[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = 0;
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	return buf;
}

/* The program's daemon is killed while it reads its evicted memory. */
static void test_daemon_death(void)
{
	const struct hd_opt opts[] = { { "budget", "client_max_resident", "4M" }, { NULL } };
	char ready[HD_PATH_MAX], outp[HD_PATH_MAX], errp[HD_PATH_MAX], how[96];
	const char *argv[] = { env_or_bail("UZSWAP_RUN"), "--", env_or_bail("UZI_VICTIM"),
			       "daemon-death", NULL };
	struct hd_daemon d;
	posix_spawn_file_actions_t fa;
	bool failed, said;
	uint64_t deadline;
	pid_t pid;
	int st = 0;

	if (hd_start(&d, opts) < 0) {
		ok(false, "a second daemon starts");
		return;
	}
	hd_path(&d, "ready", ready, sizeof(ready));
	hd_path(&d, "victim.out", outp, sizeof(outp));
	hd_path(&d, "victim.err", errp, sizeof(errp));
	setenv("UZSWAP_SOCKET", d.socket, 1);
	setenv("UZI_READY_FILE", ready, 1);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ) != 0)
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	setenv("UZSWAP_SOCKET", daemon_.socket, 1);
	deadline = hd_now_ms() + 30000;
	while (pid > 0 && access(ready, F_OK) < 0 && hd_now_ms() < deadline && !hd_ended(pid))
		hd_sleep_ms(10);
	hd_kill(&d);
	if (pid < 0 || hd_wait(pid, 30000, &st) < 0) {
		ok(false, "the program whose daemon died ends");
		return;
	}
	failed = strstr(slurp(outp), "FAIL:") != NULL;
	said = strstr(slurp(errp), "went away") != NULL;
	ok(WIFEXITED(st) && WEXITSTATUS(st) == UZSWAP_EXIT_DAEMON_GONE && !failed && said,
	   "when the daemon dies the program stops with status 86 and a message, never reading "
	   "zeros (%s; stderr: %s)",
	   hd_wstatus_str(st, how, sizeof(how)), hd_one_line(slurp(errp)));
}
/*
 * The semantics that move or share evicted pages, once more with a pool so
 * small that most of them are in the backing file: mremap must bring a
 * moved page's record along (its header names the old address), fork must
 * share records, and restores of both must find the right bytes.
 */
static void test_backing_file(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "4M" },
		{ "pool", "max_size", "1M" },
		{ "daemon", "log_level", "debug" },
		{ NULL },
	};
	uint64_t written = 0;

	if (start_daemon(opts) < 0)
		return;
	run_scenario("basic", "with a 1 MiB pool (pages in the backing file): evicted pages come "
			      "back");
	run_scenario("mremap", "with a 1 MiB pool: mremap grows, shrinks and moves with the data, "
			       "file pages included");
	run_scenario("fork", "with a 1 MiB pool: after fork parent and child each see their own "
			     "writes only, file pages included");
	run_scenario("threads", "with a 1 MiB pool: 8 threads reading evicted memory at once read "
				"it right");
	if (hd_status_u64(&daemon_, "daemon.wb_written_pages", &written) < 0)
		written = 0;
	ok(written > 4096, "the pool's pages did go to the backing file (%" PRIu64 " written back)",
	   written);
	hd_stop_ok(&daemon_);
}

/*
 * Over a quota, the interposer leaves new mappings ordinary and stops
 * asking until memory is given back: the daemon refuses once, not 100
 * times, and the program runs to the end.
 */
static void test_quota(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "4M" },
		{ "clients", "client_max_managed", "16M" },
		{ NULL },
	};
	const char *system_malloc[] = { "--malloc", "system", NULL };
	uint64_t refusals = UINT64_MAX;

	if (start_daemon(opts) < 0)
		return;
	free(scenario("quota", system_malloc,
		      "past client_max_managed new mappings stay ordinary memory, all read back, "
		      "and given-back memory makes room again"));
	if (hd_status_u64(&daemon_, "daemon.quota_refusals", &refusals) < 0)
		refusals = UINT64_MAX;
	ok(refusals >= 1 && refusals <= 2,
	   "the interposer stopped asking once refused (expected 1 or 2 quota refusals, saw %" PRIu64
	   ")",
	   refusals);
	hd_stop_ok(&daemon_);
}

int main(void)
{
	const struct hd_opt opts[] = {
		{ "budget", "client_max_resident", "4M" },
		{ "daemon", "log_level", "debug" },
		{ NULL },
	};
	const char *system_malloc[] = { "--malloc", "system", NULL };

	hd_init(true, WATCHDOG_S);
	env_or_bail("UZSWAP_PRELOAD");
	setenv("UZSWAPCTL", hd_uzswapctl(), 1);
	if (start_daemon(opts) < 0)
		return tap_done();

	test_cli();
	run_scenario("basic",
		     "large private anonymous memory is managed (not small, PROT_NONE "
		     "or stack mappings), fresh pages read zeros, evicted pages come back");
	run_scenario("fds", "500 more managed mappings take no descriptor, in the program or "
			    "the daemon");
	run_scenario("churn",
		     "3000 rounds of mmap, use, munmap at the same address read zeros "
		     "fresh and keep their writes (an UNMAP handled late destroys nothing)");
	run_scenario("calloc", "calloc returns zeros again and again (jemalloc, which trusts "
			       "MADV_DONTNEED to zero)");
	free(scenario("calloc", system_malloc, "calloc returns zeros again and again (glibc)"));
	run_scenario("dontneed", "MADV_DONTNEED and MADV_FREE read back zeros, the rest is "
				 "intact, and the daemon frees its copies");
	run_scenario("munmap", "munmap of the middle, the head and the rest of a region keeps "
			       "what is left and frees what is gone");
	run_scenario("fixed", "mmap(MAP_FIXED) over part of a managed region reads zeros there "
			      "and keeps the rest");
	run_scenario("mprotect", "mprotect of parts keeps the data and the protection, in a fork "
				 "child too");
	run_scenario("mremap", "mremap grows in place, shrinks, moves, grows with a move and "
			       "with DONTUNMAP, with the data and the daemon following");
	test_fork();
	run_scenario("exec", "exec starts clean: the daemon forgets the old image's memory");
	run_scenario("vfork", "vfork and posix_spawn children share the managed memory");
	run_scenario("threads", "8 threads reading evicted memory at once read it right");
	run_scenario("unmap-fault", "a thread faulting while another unmaps the region never "
				    "reads zeros and does not hang");
	run_scenario("syscalls", "write(2) from and read(2) into evicted managed memory work");
	test_no_daemon();
	test_daemon_death();
	hd_stop_ok(&daemon_);
	test_backing_file();
	test_quota();
	return tap_done();
}
