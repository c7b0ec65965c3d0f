/* SPDX-License-Identifier: MIT */
/*
 * daemon/sdnotify.h - uzswapd under systemd: readiness, status, watchdog
 * and socket activation.
 *
 * systemd/uzswapd.service is Type=notify with WatchdogSec: the daemon says
 * READY=1 once it listens, a one-line STATUS= every few seconds, and
 * WATCHDOG=1 at half the watchdog interval from its event loop, so a hung
 * loop gets it restarted.  With libsystemd at build time these go through
 * sd_notify(3) and sd_listen_fds(3); without it, through the same two
 * documented protocols implemented here (a datagram to $NOTIFY_SOCKET;
 * $LISTEN_PID/$LISTEN_FDS and descriptor 3), so a build without the
 * library behaves the same.  Started by hand (no $NOTIFY_SOCKET, no
 * $LISTEN_FDS) every call is a no-op and the daemon binds its own socket.
 *
 * Nothing here keeps state: the environment is read on each call (it does
 * not change in a running daemon), which keeps the module free of globals.
 */
#ifndef UZSWAP_DAEMON_SDNOTIFY_H
#define UZSWAP_DAEMON_SDNOTIFY_H

#include <stdint.h>

/*
 * Send @state ("READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1", several
 * joined by newlines) to the service manager.  0 when sent or when not run
 * by one; -errno when the send failed.
 */
int uzd_sd_notify(const char *state);

/* The watchdog interval systemd asks for, in microseconds; 0: none. */
uint64_t uzd_sd_watchdog_usec(void);

/*
 * The listening socket systemd passed (socket activation): an AF_UNIX
 * SOCK_SEQPACKET socket, made non-blocking and close-on-exec; -1 when none
 * was passed, or what was passed is not such a socket.
 */
int uzd_sd_listen_fd(void);

#endif /* UZSWAP_DAEMON_SDNOTIFY_H */
