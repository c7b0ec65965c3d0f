/* SPDX-License-Identifier: MIT */
/*
 * tools/ctl_metrics.h - `uzswapctl metrics`: the daemon's state in the
 * Prometheus text exposition format (version 0.0.4), for a node exporter's
 * textfile collector or a scrape through a small wrapper.
 *
 * Every family gets "# HELP" and "# TYPE" lines before its samples, and
 * its samples are contiguous; counters end in _total, sizes are in bytes,
 * times in seconds.  Per-client series carry the labels client (the
 * daemon's id, unique), pid, uid and comm; label values are escaped as the
 * format asks (backslash, double quote, line feed), and bytes that are not
 * UTF-8 become U+FFFD, since a client chooses its comm.
 */
#ifndef UZSWAP_TOOLS_CTL_METRICS_H
#define UZSWAP_TOOLS_CTL_METRICS_H

#include <stdio.h>

#include "tools/ctl_format.h"

/*
 * Print the families of @v and, when @cv is not NULL, the pool's classes.
 * 0, or -errno when @f fails.
 */
int uzctl_print_metrics(FILE *f, const struct uzctl_status_view *v,
			const struct uzctl_classes_view *cv);

#endif /* UZSWAP_TOOLS_CTL_METRICS_H */
