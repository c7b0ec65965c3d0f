/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/integ_systemd.c - uzswapd as systemd runs it.
 *
 * The test plays the service manager, as systemd/uzswapd.socket and
 * uzswapd.service set it up: it binds and listens on the socket itself and
 * passes it as descriptor 3 ($LISTEN_PID, $LISTEN_FDS), binds the
 * notification socket ($NOTIFY_SOCKET) and asks for a watchdog
 * ($WATCHDOG_USEC, $WATCHDOG_PID).  Then:
 *   - READY=1 comes, with a STATUS= line, and only once the passed socket
 *     serves (uzswapctl status works on it);
 *   - STATUS= and WATCHDOG=1 keep coming, at least twice per watchdog
 *     interval;
 *   - SIGTERM: STOPPING=1, exit 0, and the socket file is left for its
 *     owner (systemd's RemoveOnStop), not unlinked by the daemon.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/integration/harness.h"
#include "tests/tap.h"

#define WATCHDOG_S 60
#define WATCHDOG_USEC 600000 /* keep-alives every 300 ms */

struct sd {
	char dir[HD_DIR_MAX];
	char sock[HD_PATH_MAX], notify[HD_PATH_MAX], conf[HD_PATH_MAX], log[HD_PATH_MAX];
	int listen_fd, notify_fd;
	pid_t pid;
};

static int bind_unix(int type, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (type == SOCK_SEQPACKET && listen(fd, 16) < 0)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int write_conf(const struct sd *s)
{
	FILE *f = fopen(s->conf, "we");

	if (!f)
		return -errno;
	fprintf(f, "[daemon]\nsocket = %s\nlog_level = info\n", s->sock);
	return fclose(f) == 0 ? 0 : -errno;
}

/* The child: the environment systemd gives a socket-activated Type=notify service. */
static int exec_daemon(void *arg)
{
	const struct sd *s = arg;
	char pid[32];

	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (dup2(s->listen_fd, 3) < 0 || !freopen(s->log, "we", stderr))
		return HD_EXIT_SETUP;
	dup2(2, 1);
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	setenv("NOTIFY_SOCKET", s->notify, 1);
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "600000", 1);
	execl(hd_uzswapd(), "uzswapd", "--config", s->conf, (char *)NULL);
	return HD_EXIT_SETUP;
}

/* The next notification within @ms into @buf ("" on timeout). */
static void next_note(struct sd *s, char *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = s->notify_fd, .events = POLLIN };
	ssize_t n = 0;

	buf[0] = '\0';
	if (poll(&p, 1, ms) == 1)
		n = recv(s->notify_fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
}

static bool ctl_status_ok(const struct sd *s)
{
	const char *argv[] = { hd_uzswapctl(), "--socket", s->sock, "status", NULL };
	int ws = 0;

	return hd_run(argv, 10000, NULL, NULL, &ws) == 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

static int setup(struct sd *s)
{
	memset(s, 0, sizeof(*s));
	s->listen_fd = s->notify_fd = -1;
	if (hd_mkdtemp(s->dir, sizeof(s->dir)) < 0)
		return -errno;
	snprintf(s->sock, sizeof(s->sock), "%s/uzswapd.sock", s->dir);
	snprintf(s->notify, sizeof(s->notify), "%s/notify", s->dir);
	snprintf(s->conf, sizeof(s->conf), "%s/uzswapd.conf", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/daemon.log", s->dir);
	s->listen_fd = bind_unix(SOCK_SEQPACKET, s->sock);
	s->notify_fd = bind_unix(SOCK_DGRAM, s->notify);
	if (s->listen_fd < 0 || s->notify_fd < 0)
		return -errno;
	return write_conf(s);
}

static void test_ready_and_watchdog(struct sd *s)
{
	char note[512];
	int keepalives = 0, statuses = 0;
	uint64_t t0;
	bool ready;

	next_note(s, note, sizeof(note), HD_START_TIMEOUT_MS);
	ready = strncmp(note, "READY=1\nSTATUS=", 15) == 0;
	ok(ready, "the daemon says READY=1 with a STATUS line (got \"%s\")", hd_one_line(note));
	ok(ctl_status_ok(s),
	   "once ready, it serves on the socket systemd passed (uzswapctl status)");
	t0 = hd_now_ms();
	while (hd_now_ms() - t0 < 1500) {
		next_note(s, note, sizeof(note), 1500);
		keepalives += strstr(note, "WATCHDOG=1") != NULL;
		statuses += strncmp(note, "STATUS=", 7) == 0;
	}
	ok(keepalives >= 4 && statuses >= 4,
	   "STATUS and WATCHDOG=1 come at least twice per watchdog interval (%d keep-alives and "
	   "%d statuses in 1.5 s, interval %d ms)",
	   keepalives, statuses, WATCHDOG_USEC / 1000);
}

static void test_stop(struct sd *s)
{
	char note[512] = "", how[64];
	struct stat st;
	int ws = 0, got = 0;

	kill(s->pid, SIGTERM);
	for (int i = 0; i < 20 && !got; i++) {
		next_note(s, note, sizeof(note), 500);
		got = strstr(note, "STOPPING=1") != NULL;
	}
	ok(got, "SIGTERM: the daemon says STOPPING=1");
	ok(hd_wait(s->pid, HD_STOP_TIMEOUT_MS, &ws) == 0 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
	   "and exits 0 (%s)", hd_wstatus_str(ws, how, sizeof(how)));
	ok(lstat(s->sock, &st) == 0 && S_ISSOCK(st.st_mode),
	   "the socket systemd passed is left in place for systemd to remove");
}

int main(void)
{
	struct sd s;
	int ret;

	hd_init(true, WATCHDOG_S);
	ret = setup(&s);
	if (ret < 0) {
		ok(false, "the sockets and config of a systemd-like start can be made: %s",
		   strerror(-ret));
		return tap_done();
	}
	s.pid = hd_spawn(exec_daemon, &s);
	if (!ok(s.pid > 0, "uzswapd starts with a passed socket, a notify socket and a watchdog"))
		return tap_done();
	test_ready_and_watchdog(&s);
	test_stop(&s);
	return tap_done();
}
