/* SPDX-License-Identifier: MIT */
/*
 * daemon/sdnotify.c - the service manager's protocols (see sdnotify.h):
 * through libsystemd when configure found it (HAVE_LIBSYSTEMD), else
 * spoken directly.  Both branches check the same things, so the tests of
 * tests/test_sdnotify.c hold for either build.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "daemon/sdnotify.h"

#define SD_LISTEN_FDS_START 3

/* The descriptor systemd passes: a listening unix SOCK_SEQPACKET socket. */
static bool is_seqpacket_listener(int fd)
{
#ifdef HAVE_LIBSYSTEMD
	return sd_is_socket_unix(fd, SOCK_SEQPACKET, 1, NULL, 0) > 0;
#else
	int type = 0, listening = 0, family = 0;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return false;
	len = sizeof(int);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0 || family != AF_UNIX)
		return false;
	len = sizeof(int);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
#endif
}

#ifndef HAVE_LIBSYSTEMD
/* $NAME as a number, and whether it names this process ($LISTEN_PID, $WATCHDOG_PID). */
static bool env_ulong(const char *name, unsigned long long *out)
{
	const char *v = getenv(name);
	char *end;

	if (!v || !*v)
		return false;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return !errno && !*end;
}

static bool env_is_me(const char *name)
{
	unsigned long long pid;

	return env_ulong(name, &pid) && pid == (unsigned long long)getpid();
}

static int notify_send(const char *path, const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	socklen_t salen;
	int fd, ret = 0;

	if (len >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		ret = -errno;
	close(fd);
	return ret;
}
#endif

int uzd_sd_notify(const char *state)
{
#ifdef HAVE_LIBSYSTEMD
	int ret = sd_notify(0, state);

	return ret < 0 ? ret : 0;
#else
	const char *path = getenv("NOTIFY_SOCKET");

	return path && *path ? notify_send(path, state) : 0;
#endif
}

uint64_t uzd_sd_watchdog_usec(void)
{
#ifdef HAVE_LIBSYSTEMD
	uint64_t usec = 0;

	return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
#else
	unsigned long long usec;

	if (getenv("WATCHDOG_PID") && !env_is_me("WATCHDOG_PID"))
		return 0;
	return env_ulong("WATCHDOG_USEC", &usec) ? (uint64_t)usec : 0;
#endif
}

int uzd_sd_listen_fd(void)
{
	int n;

#ifdef HAVE_LIBSYSTEMD
	n = sd_listen_fds(0);
#else
	unsigned long long fds;

	n = env_is_me("LISTEN_PID") && env_ulong("LISTEN_FDS", &fds) ? (int)fds : 0;
#endif
	if (n < 1 || !is_seqpacket_listener(SD_LISTEN_FDS_START))
		return -1;
	fcntl(SD_LISTEN_FDS_START, F_SETFD, FD_CLOEXEC);
	fcntl(SD_LISTEN_FDS_START, F_SETFL, fcntl(SD_LISTEN_FDS_START, F_GETFL) | O_NONBLOCK);
	return SD_LISTEN_FDS_START;
}
