/* SPDX-License-Identifier: MIT */
/*
 * client/watch.c - notice uzswapd going away, and stop the process if it
 * held our memory.
 *
 * Once the daemon is gone, every page it had evicted from a region is
 * gone too, and the threads that touch one block forever in a fault
 * nobody will serve (our copy of the userfaultfd keeps the registration
 * alive, which is what keeps them from reading zeros: design.md §1).  So
 * a process holding a region must not go on: the watcher thread poll()s the
 * socket for the hangup and stops the process with a clear line on stderr
 * and exit status UZSWAP_EXIT_DAEMON_GONE.  A process holding no region
 * loses nothing: the connection is only marked dead.
 *
 * One watcher per struct uzswap.  It polls the socket and u->stop_fd, an
 * eventfd uzswap_close() writes before joining it; it takes u->lock only
 * after a hangup, to decide under the same lock the request path uses.
 *
 * Never: consume a datagram (replies belong to the request path, conn.c);
 * abort() or raise a signal to stop (a core dump reads the managed memory
 * and would block on an evicted page); receive the process's signals (all
 * are blocked in the watcher, so the program's handlers run elsewhere).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client/internal.h"

void uzs_stop_process(const struct uzswap *u, const char *detail)
{
	char line[UZS_ERROR_MAX + 160];
	int n;

	n = snprintf(line, sizeof(line),
		     "libuzswap: uzswapd (%s) went away%s%s; this process's evicted memory is "
		     "gone: stopping it (pid %d)\n",
		     u->path, detail ? ": " : "", detail ? detail : "", (int)getpid());
	if (n > 0)
		n = (int)write(STDERR_FILENO, line,
			       (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	/* Whether or not stderr took the line, the exit status says why. */
	_exit(UZSWAP_EXIT_DAEMON_GONE);
}

/* Hangup, error, or a closed descriptor: the daemon side is gone. */
static bool hung_up(short revents)
{
	return revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL);
}

static void *watch_main(void *arg)
{
	struct uzswap *u = arg;
	/* POLLIN is not asked for: a reply waiting for the request path must not wake us. */
	struct pollfd p[2] = {
		{ .fd = u->sock, .events = POLLRDHUP },
		{ .fd = u->stop_fd, .events = POLLIN },
	};
	char detail[UZS_DETAIL_MAX];

	for (;;) {
		if (poll(p, 2, -1) < 0) {
			/* EINTR cannot happen with every signal blocked; ENOMEM can: try again. */
			if (errno != EINTR)
				usleep(10000);
			continue;
		}
		if (p[1].revents)
			return NULL;
		if (hung_up(p[0].revents))
			break;
	}
	pthread_mutex_lock(&u->lock);
	uzs_conn_lost(u, uzs_conn_farewell(u, detail));
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

int uzs_watch_start(struct uzswap *u)
{
	sigset_t all, old;
	int err;

	u->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (u->stop_fd < 0)
		return uzs_fail(u, -errno, "cannot start the connection watcher: eventfd: %s",
				strerror(errno));
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&u->watcher, NULL, watch_main, u);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return uzs_fail(u, -err, "cannot start the connection watcher: %s", strerror(err));
	pthread_setname_np(u->watcher, "uzswap-watch");
	u->watching = true;
	return 0;
}

void uzs_watch_stop(struct uzswap *u)
{
	uint64_t one = 1;

	if (!u->watching)
		return;
	/* An eventfd write of 1 cannot fail short of a counter at UINT64_MAX - 1. */
	while (write(u->stop_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(u->watcher, NULL);
	u->watching = false;
}
