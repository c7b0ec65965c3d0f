/* SPDX-License-Identifier: MIT */
/*
 * daemon/reload.h - live reload: re-read the config file the daemon was
 * started with and hand what changed to the threads that use it.
 *
 * Run on the loop thread, for SIGHUP and for `uzswapctl reload`
 * (daemon/admin.c).  The whole file is read first (daemon/config.c): a
 * file with a problem changes nothing, and the one message says
 * "FILE:LINE: what is wrong".  Then every key whose value differs from the
 * running one is either applied or, when the daemon cannot change it while
 * running (config.c's FIXED keys: the socket, the fault threads, the pool
 * allocator, max_clients, the backing file's path and size; and writeback
 * turned on in a daemon started without its backing file), kept at its
 * running value and named in a warning.  See reload.c for who gets what.
 */
#ifndef UZSWAP_DAEMON_RELOAD_H
#define UZSWAP_DAEMON_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/config.h"

struct uzd_daemon;

struct uzd_reload_result {
	unsigned int changed; /* settings that changed and now apply */
	unsigned int kept;    /* settings that changed in the file but keep their running value */
};

/*
 * Reload for @who ("SIGHUP", "uzswapctl reload (pid 123)"): 0 when the file
 * was read (then *@res counts what changed, and @note lists the settings
 * kept, empty when none), or -EINVAL (a problem in the file), -ENOENT (no
 * config file: the daemon was started without one) or -errno (it cannot be
 * read), with @note saying why.  Either way the outcome is logged.
 */
int uzd_reload(struct uzd_daemon *d, const char *who, struct uzd_reload_result *res, char *note,
	       size_t len);

/*
 * The budget in pages a client that asked for @asked bytes (0: the
 * default) gets under @cfg: the asked size within client_max_resident,
 * whole pages, at least one.  HELLO grants it; a reload grants it again.
 */
uint64_t uzd_reload_budget_pages(const struct uzd_config *cfg, uint64_t asked);

#endif /* UZSWAP_DAEMON_RELOAD_H */
