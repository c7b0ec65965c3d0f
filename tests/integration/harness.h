/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/harness.h - a real uzswapd, and real client processes,
 * for one integration test.
 *
 * hd_start() gives the test a daemon of its own: a private directory made
 * with mkdtemp under /tmp holding the config file (written from the
 * test's overrides), the socket, daemon.log (the daemon's stderr and
 * stdout) and the daemon's unnamed backing file.  The daemon binary is $UZSWAPD (`make check` sets it, and
 * $UZSWAPCTL for the admin tool).  hd_start returns once the socket
 * accepts a connection, or fails after HD_START_TIMEOUT_MS with the log.
 * hd_stop() sends SIGTERM and reports how the daemon ended (SIGKILL after
 * a timeout); hd_stop_ok() makes that a test point.  Whenever a test point
 * failed while a daemon ran, its log is printed as TAP diagnostics.
 *
 * Clients run in child processes (hd_spawn): a client whose daemon dies is
 * stopped by libuzswap, and that must not take the TAP stream with it.  A
 * child reports through memory shared with the parent (hd_shared).
 *
 * Nothing outlives the test: every daemon (in its own process group),
 * every spawned child and every directory is registered, and is killed or
 * removed by an atexit handler, by the handlers of SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT and the watchdog's SIGALRM, and, before they chain to whatever
 * handler was there (the sanitizers'), of SIGSEGV, SIGBUS and SIGABRT.
 * Those paths use only async-signal-safe calls.  Daemons and children also
 * get PR_SET_PDEATHSIG, so even a SIGKILLed test leaves no daemon behind.
 * Only the process that registered something cleans it up: a forked child
 * that exits never touches the parent's daemon or directory.
 *
 * Integration tests run one at a time (hd_init takes $UZSWAP_INTEG_LOCK)
 * so that two of them never share this machine's two CPUs.
 */
#ifndef UZSWAP_TESTS_INTEGRATION_HARNESS_H
#define UZSWAP_TESTS_INTEGRATION_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HD_DIR_MAX 64 /* /tmp/uzswap-integ.XXXXXX */
#define HD_PATH_MAX 128
#define HD_START_TIMEOUT_MS 10000
#define HD_STOP_TIMEOUT_MS 15000 /* leak checks of a sanitizer build take a while */

/* One config line: [section] key = value. */
struct hd_opt {
	const char *section, *key, *value;
};

struct hd_daemon {
	char dir[HD_DIR_MAX];	  /* the private directory */
	char config[HD_PATH_MAX]; /* dir/uzswapd.conf */
	char socket[HD_PATH_MAX]; /* dir/uzswapd.sock */
	char log[HD_PATH_MAX];	  /* dir/daemon.log: its stderr and stdout */
	pid_t pid;		  /* running; 0 once reaped */
	int wstatus;		  /* how it ended, once reaped */
	int failures;		  /* tap_failures() when it started */
};

/*
 * Start of main(): skip the whole program (with @why) unless root when
 * @need_root, install the cleanup handlers, take the integration lock and
 * arm a watchdog of @watchdog_s seconds that bails out, printing every
 * daemon's log.
 */
void hd_init(bool need_root, unsigned int watchdog_s);

/* A private directory under /tmp, removed at exit; 0 or -errno. */
int hd_mkdtemp(char *dir, size_t len);

/*
 * Write the config (the harness's defaults: socket in the directory,
 * log_level info, the backing file in the directory; then @opts, ending
 * with a NULL section, where a key already set is replaced), start the
 * daemon and wait for its socket.
 * 0, or -errno after saying why with the daemon's log.
 */
int hd_start(struct hd_daemon *d, const struct hd_opt *opts);

/* @buf gets the path of file @name in the daemon's directory; 0 or -ENAMETOOLONG. */
int hd_path(const struct hd_daemon *d, const char *name, char *buf, size_t len);

/* Is the daemon still running? (Reaps it if it has ended.) */
bool hd_alive(struct hd_daemon *d);

/*
 * SIGTERM, wait up to HD_STOP_TIMEOUT_MS, then SIGKILL.  0 when it exited
 * with status 0 on SIGTERM; *@how (may be NULL) describes how it ended.
 * Prints the log if a test point failed since hd_start.
 */
int hd_stop(struct hd_daemon *d, char *how, size_t len);

/* hd_stop() as a test point: "the daemon stops cleanly on SIGTERM". */
void hd_stop_ok(struct hd_daemon *d);

/* Kill the daemon with SIGKILL now and reap it. */
void hd_kill(struct hd_daemon *d);

/* The daemon's log as TAP diagnostics (its last @max_lines lines, 0: all). */
void hd_print_log(const struct hd_daemon *d, size_t max_lines);

/* ---- processes ---- */

/*
 * Fork a child that runs @fn(@arg) and _exits with its return value; the
 * child is registered for cleanup and dies with the parent.  -errno.
 */
pid_t hd_spawn(int (*fn)(void *), void *arg);

/*
 * Wait for a child (hd_spawn'd or not) up to @timeout_ms; on timeout it
 * is killed with SIGKILL and reaped, and -ETIMEDOUT returned.
 */
int hd_wait(pid_t pid, int timeout_ms, int *wstatus);

/* Exit status of a child whose setup failed (why: in its shared memory). */
#define HD_EXIT_SETUP 2

/* In a child: keep why its setup failed in @slot (shared memory); its exit status. */
static inline int hd_setup_failed(int *slot, int err)
{
	*slot = err;
	return HD_EXIT_SETUP;
}

/* Has the child ended?  (It is left to be reaped by hd_wait.) */
bool hd_ended(pid_t pid);

/* "exit 0", "killed by signal 9 (Killed)"... */
const char *hd_wstatus_str(int wstatus, char *buf, size_t len);

/* Memory a parent and its forked children share (zeroed); NULL on failure. */
void *hd_shared(size_t len);

/*
 * Run @argv (argv[0] a path) with stdin from /dev/null; its stdout and
 * stderr into malloc'd strings (may be NULL to discard).  Waits up to
 * @timeout_ms.  0 with *@wstatus set, or -errno.
 */
int hd_run(const char *const argv[], int timeout_ms, char **out, char **err, int *wstatus);

/* Who hd_run_as() runs a program as: a uid, a gid and supplementary groups. */
struct hd_cred {
	uid_t uid;
	gid_t gid;
	const gid_t *groups; /* ngroups of them; none when 0 */
	size_t ngroups;
};

/*
 * hd_run() as @cred (NULL: as this process): the child sets its groups,
 * gid and uid before it runs @argv, and exits 126 saying why if it cannot.
 */
int hd_run_as(const struct hd_cred *cred, const char *const argv[], int timeout_ms, char **out,
	      char **err, int *wstatus);

/*
 * `uzswapctl --socket SOCKET ARGS...` (a NULL-terminated list) as @cred
 * (NULL: as this process), within 60 s: its exit status, or -1 after a
 * diag when it did not exit; *@out and *@err (may be NULL) malloc'd.
 */
int hd_ctl(const struct hd_daemon *d, const struct hd_cred *cred, char **out, char **err, ...);

/* $UZSWAPD or $UZSWAPCTL, checked to be executable; bails out if not. */
const char *hd_uzswapd(void);
const char *hd_uzswapctl(void);

/* @s with every line break made a space and trailing blanks cut: fit for a test point's text. */
char *hd_one_line(char *s);

/* ---- uzswapctl status --json ---- */

/* The JSON `uzswapctl --socket S status --json` prints; malloc'd, or NULL after a diag. */
char *hd_status_json(struct hd_daemon *d);

/*
 * hd_status_json() then jp_u64() (tests/integration/json.h): 0, or
 * -errno after a diag that names the path and shows the start of the JSON.
 */
int hd_status_u64(struct hd_daemon *d, const char *path, uint64_t *v);

/* ---- clients (libuzswap), in a child process ---- */

struct uzswap;
struct uzswap_stats;

/*
 * uzswap_connect() to @d asking for a budget of @max_resident bytes (0: the
 * daemon's default), named @name; 0, or -errno after a diag with the
 * library's message.
 */
int hd_connect(const struct hd_daemon *d, uint64_t max_resident, const char *name,
	       struct uzswap **u);

/*
 * Poll uzswap_stats() until at least @evicted of the client's pages are
 * evicted (same, pool or file) and its resident pages are within its
 * budget; 0, or -ETIMEDOUT after @timeout_ms.  *@st: the last stats.
 */
int hd_wait_evicted(struct uzswap *u, uint64_t evicted, int timeout_ms, struct uzswap_stats *st);

/* ---- time ---- */

uint64_t hd_now_ms(void);
void hd_sleep_ms(unsigned int ms);

#endif /* UZSWAP_TESTS_INTEGRATION_HARNESS_H */
