/* SPDX-License-Identifier: MIT */
/*
 * tests/test_sdnotify.c - daemon/sdnotify.c speaks systemd's protocols:
 * notifications reach $NOTIFY_SOCKET (a path or an abstract name), the
 * watchdog interval is read only when it is meant for this process, and a
 * socket passed by socket activation is taken only when $LISTEN_PID is
 * this process and descriptor 3 is a listening SOCK_SEQPACKET socket.
 * The test plays the service manager: it binds the sockets and sets the
 * environment itself.  The same points hold with and without libsystemd.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/sdnotify.h"
#include "tests/tap.h"

/* A datagram socket bound at @name (a path, or "@..." for an abstract name). */
static int bind_dgram(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	else
		salen++;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, salen) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static ssize_t recv_now(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static void test_notify(void)
{
	char dir[] = "/tmp/test_sdnotify.XXXXXX", path[128], abstract[64], buf[256];
	int fd;

	unsetenv("NOTIFY_SOCKET");
	ok(uzd_sd_notify("READY=1") == 0, "without $NOTIFY_SOCKET a notification is a no-op");
	if (!mkdtemp(dir)) {
		ok(false, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_dgram(path);
	setenv("NOTIFY_SOCKET", path, 1);
	ok(fd >= 0 && uzd_sd_notify("READY=1\nSTATUS=serving 0 clients") == 0 &&
		   recv_now(fd, buf, sizeof(buf)) > 0 &&
		   strcmp(buf, "READY=1\nSTATUS=serving 0 clients") == 0,
	   "READY and STATUS reach the socket $NOTIFY_SOCKET names, as sent (got \"%s\")", buf);
	if (fd >= 0)
		close(fd);
	unlink(path);
	rmdir(dir);

	snprintf(abstract, sizeof(abstract), "@uzswap-test-sdnotify-%d", (int)getpid());
	fd = bind_dgram(abstract);
	setenv("NOTIFY_SOCKET", abstract, 1);
	ok(fd >= 0 && uzd_sd_notify("WATCHDOG=1") == 0 && recv_now(fd, buf, sizeof(buf)) > 0 &&
		   strcmp(buf, "WATCHDOG=1") == 0,
	   "an abstract $NOTIFY_SOCKET (\"@...\") works too (got \"%s\")", buf);
	if (fd >= 0)
		close(fd);
	setenv("NOTIFY_SOCKET", "/nonexistent/uzswap-test/notify", 1);
	ok(uzd_sd_notify("READY=1") < 0, "a notification that cannot be sent is an error");
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog(void)
{
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	ok(uzd_sd_watchdog_usec() == 0, "without $WATCHDOG_USEC there is no watchdog");
	setenv("WATCHDOG_USEC", "20000000", 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	ok(uzd_sd_watchdog_usec() == 20000000,
	   "$WATCHDOG_USEC meant for this process is the interval (seen %llu)",
	   (unsigned long long)uzd_sd_watchdog_usec());
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	ok(uzd_sd_watchdog_usec() == 0, "$WATCHDOG_USEC meant for another process is ignored");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

/* Put a socket of @type at descriptor 3, listening when @listening. */
static int socket_at_3(int type, int listening)
{
	char path[108];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	snprintf(path, sizeof(path), "/tmp/test_sdnotify.%d.sock", (int)getpid());
	unlink(path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (listening && listen(fd, 4) < 0) || (fd != 3 && dup2(fd, 3) < 0)) {
		if (fd >= 0)
			close(fd);
		unlink(path);
		return -1;
	}
	if (fd != 3)
		close(fd);
	unlink(path);
	return 3;
}

static void test_listen_fd(void)
{
	char pid[32];
	int fd;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	ok(uzd_sd_listen_fd() == -1, "without $LISTEN_FDS no socket was passed");
	if (socket_at_3(SOCK_SEQPACKET, 1) != 3) {
		ok(false, "a listening socket can be put at descriptor 3: %s", strerror(errno));
		return;
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	fd = uzd_sd_listen_fd();
	ok(fd == 3 && (fcntl(3, F_GETFL) & O_NONBLOCK) && (fcntl(3, F_GETFD) & FD_CLOEXEC),
	   "a listening SOCK_SEQPACKET socket passed to this process is taken, non-blocking and "
	   "close-on-exec (fd %d)",
	   fd);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("LISTEN_PID", pid, 1);
	ok(uzd_sd_listen_fd() == -1,
	   "a socket passed to another process ($LISTEN_PID) is not ours");
	close(3);
	if (socket_at_3(SOCK_DGRAM, 0) == 3) {
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("LISTEN_PID", pid, 1);
		setenv("LISTEN_FDS", "1", 1);
		ok(uzd_sd_listen_fd() == -1, "a passed socket of the wrong type is refused");
		close(3);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
}

int main(void)
{
	test_notify();
	test_watchdog();
	test_listen_fd();
	return tap_done();
}
