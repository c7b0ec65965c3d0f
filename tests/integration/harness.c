/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/harness.c - daemons, child processes and cleanup for
 * the integration tests (see harness.h).
 *
 * The registry is three small tables: daemons (each the leader of its own
 * process group), spawned children and private directories.  Only the main
 * thread of the test process adds or clears entries; a slot's pid or path
 * is written before its "used" flag, so a signal handler that sees the
 * flag sees the contents.  cleanup_sigsafe() is the one cleanup, shared by
 * exit and every signal path: it kills, reaps and removes with system
 * calls only (directories are listed with getdents64, not readdir), and it
 * does nothing in a process other than the one that registered (owner).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#include "include/uzswap.h"
#include "tests/integration/harness.h"
#include "tests/integration/json.h"
#include "tests/tap.h"

#define MAX_DAEMONS 8
#define MAX_CHILDREN 64
#define MAX_DIRS 16
#define MAX_OPTS 64
#define LOG_TAIL_LINES 300 /* lines of a daemon's log printed on failure */

static pid_t owner;

static struct hd_daemon *daemons[MAX_DAEMONS];
static volatile sig_atomic_t daemon_used[MAX_DAEMONS];
static pid_t children[MAX_CHILDREN];
static volatile sig_atomic_t child_used[MAX_CHILDREN];
static char dirs[MAX_DIRS][HD_DIR_MAX];
static volatile sig_atomic_t dir_used[MAX_DIRS];

static struct sigaction old_fatal[NSIG];

/* ---- async-signal-safe helpers ---- */

static void put_sigsafe(const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(STDOUT_FILENO, s, n);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= (size_t)w;
	}
}

/* The whole log, each line as an indented diagnostic ("#   line"). */
static void print_log_sigsafe(const char *path)
{
	char buf[4096];
	bool bol = true;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			char c[2] = { buf[i], 0 };

			if (bol)
				put_sigsafe("#   ");
			put_sigsafe(c);
			bol = buf[i] == '\n';
		}
	}
	if (!bol)
		put_sigsafe("\n");
	close(fd);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Empty the directory open as @dfd (and its subdirectories, @depth deep). */
static void empty_dir_sigsafe(int dfd, int depth)
{
	char buf[2048] __attribute__((aligned(8)));
	bool removed = true;

	/* Listing while unlinking may skip names: list again until a pass removes nothing. */
	while (removed) {
		long n;

		removed = false;
		lseek(dfd, 0, SEEK_SET);
		while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);
				const char *nm = e->d_name;

				off += e->d_reclen;
				if (!strcmp(nm, ".") || !strcmp(nm, ".."))
					continue;
				if (unlinkat(dfd, nm, 0) == 0) {
					removed = true;
				} else if (errno == EISDIR && depth > 0) {
					int sub = openat(dfd, nm,
							 O_RDONLY | O_DIRECTORY | O_CLOEXEC);

					if (sub >= 0) {
						empty_dir_sigsafe(sub, depth - 1);
						close(sub);
					}
					if (unlinkat(dfd, nm, AT_REMOVEDIR) == 0)
						removed = true;
				}
			}
		}
	}
}

static void remove_dir_sigsafe(const char *path)
{
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0) {
		empty_dir_sigsafe(dfd, 4);
		close(dfd);
	}
	rmdir(path);
}

/* Kill and reap everything registered, remove every directory. */
static void cleanup_sigsafe(void)
{
	if (!owner || getpid() != owner)
		return;
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (daemon_used[i] && daemons[i]->pid > 0) {
			kill(-daemons[i]->pid, SIGKILL);
			kill(daemons[i]->pid, SIGKILL);
		}
	}
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (child_used[i])
			kill(children[i], SIGKILL);
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (daemon_used[i] && daemons[i]->pid > 0)
			waitpid(daemons[i]->pid, NULL, 0);
		daemon_used[i] = 0;
	}
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (child_used[i])
			waitpid(children[i], NULL, 0);
		child_used[i] = 0;
	}
	for (int i = 0; i < MAX_DIRS; i++) {
		if (dir_used[i])
			remove_dir_sigsafe(dirs[i]);
		dir_used[i] = 0;
	}
}

static void print_all_logs_sigsafe(void)
{
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (!daemon_used[i])
			continue;
		put_sigsafe("# uzswapd's log, ");
		put_sigsafe(daemons[i]->log);
		put_sigsafe(":\n");
		print_log_sigsafe(daemons[i]->log);
	}
}

static void on_watchdog(int sig)
{
	(void)sig;
	if (getpid() != owner)
		_exit(125);
	put_sigsafe("# watchdog: the test is still running; the daemons' logs follow\n");
	print_all_logs_sigsafe();
	put_sigsafe("Bail out! the watchdog fired: a test hung\n");
	cleanup_sigsafe();
	_exit(1);
}

#if defined(__SANITIZE_ADDRESS__)
/* A sanitizer's report ends the process with _exit: no atexit, so clean up here. */
static void on_sanitizer_death(void)
{
	if (getpid() != owner)
		return;
	put_sigsafe("# a sanitizer stopped the test program; the daemons' logs follow\n");
	print_all_logs_sigsafe();
	cleanup_sigsafe();
}
#endif

static void on_stop_signal(int sig)
{
	cleanup_sigsafe();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* A crash: clean up, then let the previous handler (a sanitizer's, or the default) act. */
static void on_fatal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (getpid() == owner) {
		put_sigsafe("# fatal signal in the test program; the daemons' logs follow\n");
		print_all_logs_sigsafe();
		cleanup_sigsafe();
	}
	sigaction(sig, &old_fatal[sig], NULL);
	/* A fault from an instruction repeats on return; a sent signal must be sent again. */
	if (sig == SIGABRT || si->si_code <= 0)
		raise(sig);
}

/* ---- the normal path ---- */

static void at_exit(void)
{
	if (!owner || getpid() != owner)
		return;
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (daemon_used[i] && tap_failures() > daemons[i]->failures) {
			tap_diag("a daemon was still running at exit after a failure; its log:");
			hd_print_log(daemons[i], LOG_TAIL_LINES);
		}
	}
	fflush(stdout);
	cleanup_sigsafe();
}

__attribute__((format(printf, 1, 2), noreturn)) static void bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	exit(1);
}

static void take_lock(void)
{
	const char *path = getenv("UZSWAP_INTEG_LOCK");
	int fd;

	if (!path || !*path)
		return;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		tap_diag("cannot open the integration lock %s: %s; running unlocked", path,
			 strerror(errno));
		return;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return;
	tap_diag("waiting for another integration test to finish (%s)", path);
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	/* The descriptor stays open: the lock is held until this process ends. */
}

void hd_init(bool need_root, unsigned int watchdog)
{
	static const int stops[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	static const int fatals[] = { SIGSEGV, SIGBUS, SIGABRT };
	struct sigaction sa;

	if (need_root && geteuid() != 0)
		tap_skip_all("needs root: uzswapd opens /dev/userfaultfd, mode 0600");
	if (sysconf(_SC_PAGESIZE) != 4096)
		tap_skip_all("these tests assume 4 KiB pages");
	owner = getpid();
	atexit(at_exit);
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_set_death_callback(on_sanitizer_death);
#endif
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_stop_signal;
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++)
		sigaction(stops[i], &sa, NULL);
	sa.sa_handler = on_watchdog;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = NULL;
	sa.sa_sigaction = on_fatal;
	sa.sa_flags = SA_SIGINFO;
	for (size_t i = 0; i < sizeof(fatals) / sizeof(fatals[0]); i++)
		sigaction(fatals[i], &sa, &old_fatal[fatals[i]]);
	signal(SIGPIPE, SIG_IGN);
	take_lock();
	alarm(watchdog);
}

int hd_mkdtemp(char *dir, size_t len)
{
	char tmpl[] = "/tmp/uzswap-integ.XXXXXX";
	int slot = -1;

	for (int i = 0; i < MAX_DIRS && slot < 0; i++)
		if (!dir_used[i])
			slot = i;
	if (slot < 0 || len < sizeof(tmpl))
		return -ENOSPC;
	if (!mkdtemp(tmpl))
		return -errno;
	memcpy(dirs[slot], tmpl, sizeof(tmpl));
	dir_used[slot] = 1;
	memcpy(dir, tmpl, sizeof(tmpl));
	return 0;
}

uint64_t hd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void hd_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- binaries ---- */

static const char *binary(const char *env, const char *rel, char *buf, size_t len)
{
	const char *p = getenv(env);
	char self[HD_PATH_MAX];
	ssize_t n;

	if (!p || !*p) {
		/* Run by hand from the build tree: tests/integration/X -> ../../REL. */
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			bail("$%s is not set (make check sets it)", env);
		self[n] = 0;
		*strrchr(self, '/') = 0;
		if ((size_t)snprintf(buf, len, "%s/../../%s", self, rel) >= len)
			bail("the path of %s is too long", rel);
		p = buf;
	}
	if (access(p, X_OK) < 0)
		bail("%s (from $%s) is not an executable: %s; build it first", p, env,
		     strerror(errno));
	return p;
}

const char *hd_uzswapd(void)
{
	static char buf[HD_PATH_MAX];
	static const char *p;

	if (!p)
		p = binary("UZSWAPD", "daemon/uzswapd", buf, sizeof(buf));
	return p;
}

const char *hd_uzswapctl(void)
{
	static char buf[HD_PATH_MAX];
	static const char *p;

	if (!p)
		p = binary("UZSWAPCTL", "tools/uzswapctl", buf, sizeof(buf));
	return p;
}

/* ---- processes ---- */

static int child_slot_add(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (!child_used[i]) {
			children[i] = pid;
			child_used[i] = 1;
			return 0;
		}
	}
	return -ENOSPC;
}

static void child_slot_del(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (child_used[i] && children[i] == pid)
			child_used[i] = 0;
}

/* In a new child: die with the parent, forget the parent's signal setup. */
static void child_setup(pid_t parent)
{
	sigset_t none;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(125);
	alarm(0);
	signal(SIGPIPE, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

pid_t hd_spawn(int (*fn)(void *), void *arg)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int rc;

		child_setup(parent);
		signal(SIGALRM, SIG_DFL);
		rc = fn(arg);
		fflush(NULL);
		_exit(rc);
	}
	if (child_slot_add(pid) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ENOSPC;
	}
	return pid;
}

int hd_wait(pid_t pid, int timeout_ms, int *wstatus)
{
	uint64_t deadline = hd_now_ms() + (uint64_t)timeout_ms;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	int st = 0, r;

	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno != EINTR))
			break;
		if (hd_now_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			r = -ETIMEDOUT;
			break;
		}
		if (pfd >= 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };

			poll(&p, 1, (int)(deadline - hd_now_ms()) + 1);
		} else {
			hd_sleep_ms(2);
		}
	}
	if (pfd >= 0)
		close(pfd);
	child_slot_del(pid);
	if (r < 0 && r != -ETIMEDOUT)
		return -errno;
	if (wstatus)
		*wstatus = st;
	return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

bool hd_ended(pid_t pid)
{
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		return errno == ECHILD;
	return si.si_pid == pid;
}

const char *hd_wstatus_str(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(st),
			 strsignal(WTERMSIG(st)), WCOREDUMP(st) ? ", core dumped" : "");
	else
		snprintf(buf, len, "wait status %#x", st);
	return buf;
}

void *hd_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

struct sbuf {
	char *s;
	size_t len, cap;
	bool keep;
};

static void sbuf_add(struct sbuf *b, const char *p, size_t n)
{
	char *s;

	if (!b->keep)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->len + n + 1) * 2;

		s = realloc(b->s, cap);
		if (!s)
			return;
		b->s = s;
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = 0;
}

/* Read both pipes to their ends or the deadline. */
static void drain_pipes(int fds[2], struct sbuf bufs[2], uint64_t deadline)
{
	char chunk[4096];

	while (fds[0] >= 0 || fds[1] >= 0) {
		struct pollfd p[2] = { { .fd = fds[0], .events = POLLIN },
				       { .fd = fds[1], .events = POLLIN } };
		uint64_t now = hd_now_ms();

		if (now >= deadline || poll(p, 2, (int)(deadline - now)) < 0)
			break;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (fds[i] < 0 || !p[i].revents)
				continue;
			n = read(fds[i], chunk, sizeof(chunk));
			if (n > 0) {
				sbuf_add(&bufs[i], chunk, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(fds[i]);
				fds[i] = -1;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* In a new child of hd_run_as: become @cred, or say why not and exit 126. */
static void become(const struct hd_cred *cred)
{
	if (!cred)
		return;
	if (setgroups(cred->ngroups, cred->groups) < 0 || setgid(cred->gid) < 0 ||
	    setuid(cred->uid) < 0) {
		dprintf(STDERR_FILENO, "becoming uid %u gid %u: %s\n", (unsigned int)cred->uid,
			(unsigned int)cred->gid, strerror(errno));
		_exit(126);
	}
}

int hd_run(const char *const argv[], int timeout_ms, char **out, char **err, int *wstatus)
{
	return hd_run_as(NULL, argv, timeout_ms, out, err, wstatus);
}

int hd_run_as(const struct hd_cred *cred, const char *const argv[], int timeout_ms, char **out,
	      char **err, int *wstatus)
{
	struct sbuf bufs[2] = { { .keep = out != NULL }, { .keep = err != NULL } };
	uint64_t deadline = hd_now_ms() + (uint64_t)timeout_ms;
	int po[2], pe[2], fds[2], r;
	pid_t parent = getpid(), pid;

	if (pipe2(po, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(pe, O_CLOEXEC) < 0) {
		r = -errno;
		close(po[0]);
		close(po[1]);
		return r;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		child_setup(parent);
		dup2(nul, STDIN_FILENO);
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		become(cred);
		execv(argv[0], (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	r = pid < 0 ? -errno : 0;
	close(po[1]);
	close(pe[1]);
	if (r < 0) {
		close(po[0]);
		close(pe[0]);
		return r;
	}
	child_slot_add(pid);
	fds[0] = po[0];
	fds[1] = pe[0];
	drain_pipes(fds, bufs, deadline);
	r = hd_wait(pid, (int)(deadline > hd_now_ms() ? deadline - hd_now_ms() : 0), wstatus);
	for (int i = 0; i < 2; i++) {
		char **dst = i ? err : out;

		if (!dst)
			continue;
		if (!bufs[i].s)
			bufs[i].s = strdup("");
		*dst = bufs[i].s;
	}
	return r;
}

/* ---- the daemon ---- */

static int write_config(const struct hd_daemon *d, const struct hd_opt *opts)
{
	struct hd_opt all[MAX_OPTS];
	const char *written[MAX_OPTS];
	char backing[HD_PATH_MAX];
	size_t n = 0, nsec = 0;
	FILE *f;

	/* The backing file is unnamed, in the private directory: nothing outlives the test. */
	snprintf(backing, sizeof(backing), "%s/", d->dir);
	all[n++] = (struct hd_opt){ "daemon", "socket", d->socket };
	all[n++] = (struct hd_opt){ "daemon", "log_level", "info" };
	all[n++] = (struct hd_opt){ "backing", "path", backing };
	for (const struct hd_opt *o = opts; o && o->section; o++) {
		size_t i;

		for (i = 0; i < n; i++)
			if (!strcmp(all[i].section, o->section) && !strcmp(all[i].key, o->key))
				break;
		if (i == n && n == MAX_OPTS)
			return -E2BIG;
		all[i] = *o;
		if (i == n)
			n++;
	}
	f = fopen(d->config, "we");
	if (!f)
		return -errno;
	fprintf(f, "# written by %s\n", program_invocation_short_name);
	/* Grouped by section, in the order sections first appear. */
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (size_t s = 0; s < nsec && !seen; s++)
			seen = !strcmp(written[s], all[i].section);
		if (seen)
			continue;
		written[nsec++] = all[i].section;
		fprintf(f, "\n[%s]\n", all[i].section);
		for (size_t j = i; j < n; j++)
			if (!strcmp(all[j].section, all[i].section) && all[j].value)
				fprintf(f, "%s = %s\n", all[j].key, all[j].value);
	}
	return fclose(f) == 0 ? 0 : -EIO;
}

static int daemon_slot_add(struct hd_daemon *d)
{
	for (int i = 0; i < MAX_DAEMONS; i++) {
		if (!daemon_used[i]) {
			daemons[i] = d;
			daemon_used[i] = 1;
			return 0;
		}
	}
	return -ENOSPC;
}

static void daemon_slot_del(const struct hd_daemon *d)
{
	for (int i = 0; i < MAX_DAEMONS; i++)
		if (daemon_used[i] && daemons[i] == d)
			daemon_used[i] = 0;
}

/* The daemon has ended: reap it (non-blocking); true when it had. */
static bool reaped(struct hd_daemon *d)
{
	int st;

	if (d->pid <= 0)
		return true;
	if (waitpid(d->pid, &st, WNOHANG) != d->pid)
		return false;
	d->wstatus = st;
	kill(-d->pid, SIGKILL); /* anything it left in its process group */
	d->pid = 0;
	daemon_slot_del(d);
	return true;
}

static bool socket_accepts(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	bool yes;

	if (s < 0)
		return false;
	if (strlen(path) >= sizeof(a.sun_path)) {
		close(s);
		return false;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	yes = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return yes;
}

static int wait_socket(struct hd_daemon *d)
{
	uint64_t start = hd_now_ms();
	char how[128];

	for (;;) {
		if (reaped(d)) {
			tap_diag(
				"uzswapd ended before its socket %s accepted a connection (%s); its "
				"log:",
				d->socket, hd_wstatus_str(d->wstatus, how, sizeof(how)));
			hd_print_log(d, LOG_TAIL_LINES);
			return -ECHILD;
		}
		if (socket_accepts(d->socket))
			return 0;
		if (hd_now_ms() - start > HD_START_TIMEOUT_MS) {
			tap_diag(
				"uzswapd's socket %s accepted no connection within %d ms; its log:",
				d->socket, HD_START_TIMEOUT_MS);
			hd_print_log(d, LOG_TAIL_LINES);
			hd_kill(d);
			return -ETIMEDOUT;
		}
		hd_sleep_ms(10);
	}
}

static void exec_daemon(const struct hd_daemon *d, int logfd, pid_t parent)
{
	const char *bin = hd_uzswapd();
	const char *argv[] = { bin, "--config", d->config, "--socket", d->socket, NULL };
	int nul = open("/dev/null", O_RDONLY);

	setpgid(0, 0);
	child_setup(parent);
	dup2(nul, STDIN_FILENO);
	dup2(logfd, STDOUT_FILENO);
	dup2(logfd, STDERR_FILENO);
	execv(bin, (char *const *)argv);
	dprintf(STDERR_FILENO, "exec %s: %s\n", bin, strerror(errno));
	_exit(127);
}

int hd_start(struct hd_daemon *d, const struct hd_opt *opts)
{
	pid_t parent = getpid(), pid;
	int r, logfd;

	memset(d, 0, sizeof(*d));
	d->failures = tap_failures();
	hd_uzswapd();
	r = hd_mkdtemp(d->dir, sizeof(d->dir));
	if (r < 0) {
		tap_diag("mkdtemp under /tmp: %s", strerror(-r));
		return r;
	}
	snprintf(d->config, sizeof(d->config), "%s/uzswapd.conf", d->dir);
	snprintf(d->socket, sizeof(d->socket), "%s/uzswapd.sock", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
	r = write_config(d, opts);
	if (r < 0) {
		tap_diag("writing %s: %s", d->config, strerror(-r));
		return r;
	}
	logfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		exec_daemon(d, logfd, parent);
	r = pid < 0 ? -errno : 0;
	close(logfd);
	if (r < 0) {
		tap_diag("fork: %s", strerror(-r));
		return r;
	}
	d->pid = pid;
	setpgid(d->pid, d->pid); /* also here: no race with the first kill(-pid) */
	if (daemon_slot_add(d) < 0) {
		hd_kill(d);
		return -ENOSPC;
	}
	return wait_socket(d);
}

int hd_path(const struct hd_daemon *d, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", d->dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

bool hd_alive(struct hd_daemon *d)
{
	return !reaped(d);
}

void hd_kill(struct hd_daemon *d)
{
	if (d->pid <= 0)
		return;
	kill(-d->pid, SIGKILL);
	kill(d->pid, SIGKILL);
	while (waitpid(d->pid, &d->wstatus, 0) < 0 && errno == EINTR)
		;
	d->pid = 0;
	daemon_slot_del(d);
}

/* Lines of the log that show a sanitizer's report. */
static bool log_has_sanitizer_report(const struct hd_daemon *d)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(d->log, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "Sanitizer") || strstr(line, "runtime error:");
	fclose(f);
	return found;
}

static int stop(struct hd_daemon *d, char *how, size_t len)
{
	uint64_t deadline = hd_now_ms() + HD_STOP_TIMEOUT_MS;
	char st[96];

	if (d->pid <= 0) {
		snprintf(how, len, "had already ended: %s",
			 hd_wstatus_str(d->wstatus, st, sizeof(st)));
		return -ECHILD;
	}
	kill(d->pid, SIGTERM);
	while (!reaped(d) && hd_now_ms() < deadline)
		hd_sleep_ms(5);
	if (d->pid > 0) {
		hd_kill(d);
		snprintf(how, len, "still running %d ms after SIGTERM: killed with SIGKILL",
			 HD_STOP_TIMEOUT_MS);
		return -ETIMEDOUT;
	}
	hd_wstatus_str(d->wstatus, how, len);
	if (log_has_sanitizer_report(d)) {
		snprintf(how + strlen(how), len - strlen(how), ", with a sanitizer report");
		return -EPROTO;
	}
	return WIFEXITED(d->wstatus) && WEXITSTATUS(d->wstatus) == 0 ? 0 : -EPROTO;
}

int hd_stop(struct hd_daemon *d, char *how, size_t len)
{
	char buf[160];
	int r = stop(d, buf, sizeof(buf));

	if (how)
		snprintf(how, len, "%s", buf);
	if (tap_failures() > d->failures) {
		tap_diag("a test point failed while this daemon ran (it %s); its log:", buf);
		hd_print_log(d, LOG_TAIL_LINES);
		d->failures = tap_failures();
	}
	return r;
}

void hd_stop_ok(struct hd_daemon *d)
{
	char how[160];
	int r = stop(d, how, sizeof(how));

	ok(r == 0,
	   "the daemon stops cleanly on SIGTERM (expected exit 0 and no sanitizer report, saw %s)",
	   how);
	if (tap_failures() > d->failures) {
		tap_diag("a test point failed while this daemon ran; its log:");
		hd_print_log(d, LOG_TAIL_LINES);
		d->failures = tap_failures();
	}
}

void hd_print_log(const struct hd_daemon *d, size_t max_lines)
{
	size_t lines = 0, skip = 0, i = 0;
	char *buf = NULL;
	size_t cap = 0;
	FILE *f = fopen(d->log, "re");

	if (!f) {
		tap_diag("(no log at %s: %s)", d->log, strerror(errno));
		return;
	}
	while (getline(&buf, &cap, f) >= 0)
		lines++;
	if (max_lines && lines > max_lines) {
		skip = lines - max_lines;
		tap_diag("  ... %zu earlier lines of %s left out", skip, d->log);
	}
	rewind(f);
	while (getline(&buf, &cap, f) >= 0) {
		if (i++ < skip)
			continue;
		buf[strcspn(buf, "\n")] = 0;
		tap_diag("  %s", buf);
	}
	if (!lines)
		tap_diag("  (its log %s is empty)", d->log);
	free(buf);
	fclose(f);
}

/* ---- uzswapctl ---- */

#define CTL_MAX_ARGS 16

int hd_ctl(const struct hd_daemon *d, const struct hd_cred *cred, char **out, char **err, ...)
{
	const char *argv[CTL_MAX_ARGS + 4] = { hd_uzswapctl(), "--socket", d->socket };
	size_t n = 3;
	char how[96];
	int st = 0, r;
	va_list ap;

	va_start(ap, err);
	for (const char *a; n < CTL_MAX_ARGS + 3 && (a = va_arg(ap, const char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	r = hd_run_as(cred, argv, 60000, out, err, &st);
	if (r < 0 || !WIFEXITED(st)) {
		tap_diag("uzswapctl %s ...: %s (%s)", argv[3],
			 r < 0 ? strerror(-r) : "did not exit",
			 hd_wstatus_str(st, how, sizeof(how)));
		return -1;
	}
	return WEXITSTATUS(st);
}

char *hd_status_json(struct hd_daemon *d)
{
	const char *argv[] = { hd_uzswapctl(), "--socket", d->socket, "status", "--json", NULL };
	char *out = NULL, *err = NULL, how[96];
	int st = 0, r;

	r = hd_run(argv, 10000, &out, &err, &st);
	if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		tap_diag("uzswapctl --socket %s status --json: %s (%s); stderr: %.400s", d->socket,
			 r < 0 ? strerror(-r) : "failed", hd_wstatus_str(st, how, sizeof(how)),
			 err ? err : "");
		free(out);
		free(err);
		return NULL;
	}
	free(err);
	return out;
}

int hd_status_u64(struct hd_daemon *d, const char *path, uint64_t *v)
{
	char *json = hd_status_json(d);
	int r;

	if (!json)
		return -EIO;
	r = jp_u64(json, path, v);
	if (r < 0)
		tap_diag("uzswapctl status --json: %s at \"%s\"; the output begins: %.600s",
			 r == -ENOENT ? "nothing" : "not a count", path, json);
	free(json);
	return r;
}

/* ---- clients ---- */

int hd_connect(const struct hd_daemon *d, uint64_t max_resident, const char *name,
	       struct uzswap **u)
{
	char err[512] = "";
	struct uzswap_options opt = {
		.max_resident = max_resident, .name = name, .error = err, .error_len = sizeof(err)
	};
	int r = uzswap_connect(d->socket, &opt, u);

	if (r < 0)
		tap_diag("%s: uzswap_connect(%s): %s: %s", name ? name : "client", d->socket,
			 strerror(-r), err);
	return r;
}

int hd_wait_evicted(struct uzswap *u, uint64_t evicted, int timeout_ms, struct uzswap_stats *st)
{
	uint64_t deadline = hd_now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int r = uzswap_stats(u, st);

		if (r < 0) {
			tap_diag("uzswap_stats: %s: %s", strerror(-r), uzswap_last_error(u));
			return r;
		}
		if (st->same_pages + st->pool_pages + st->file_pages >= evicted &&
		    st->resident_pages * 4096 <= st->max_resident)
			return 0;
		if (hd_now_ms() >= deadline)
			return -ETIMEDOUT;
		hd_sleep_ms(10);
	}
}

char *hd_one_line(char *s)
{
	size_t n;

	if (!s)
		return s;
	for (char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = strlen(s);
	while (n && s[n - 1] == ' ')
		s[--n] = 0;
	return s;
}
