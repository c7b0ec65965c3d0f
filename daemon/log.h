/* SPDX-License-Identifier: MIT */
/*
 * daemon/log.h - one line on stderr in uzswapd's format, for the modules of
 * the control plane that are not server.c (admin.c, reload.c).
 *
 *   uzswapd: warning: reload (SIGHUP): /etc/uzswap/uzswapd.conf: ...
 *
 * The same shape as server.c's own lines, so one grep (or journald's
 * priority parsing of a tag) covers them all.  @max is the configured
 * [daemon] log_level: a line above it is dropped.  Loop thread only (it
 * reads the running config's log level, which only the loop changes).
 * Never: log a client-chosen string without bounding it (%.*s or a fixed
 * buffer); a line is cut at 512 bytes.
 */
#ifndef UZSWAP_DAEMON_LOG_H
#define UZSWAP_DAEMON_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include "daemon/config.h"

__attribute__((format(printf, 3, 4))) static inline void uzd_log(enum uzd_log_level max,
								 enum uzd_log_level lvl,
								 const char *fmt, ...)
{
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char line[512];
	va_list ap;

	if (lvl > max)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uzswapd: %s: %s\n", tag[lvl], line);
}

#endif /* UZSWAP_DAEMON_LOG_H */
