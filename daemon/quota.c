/* SPDX-License-Identifier: MIT */
/*
 * daemon/quota.c - the quota checks (see quota.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "daemon/quota.h"

static int over(char *msg, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int over(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return -EDQUOT;
}

int uzd_quota_connect(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *use,
		      char *msg, size_t len)
{
	if (use->connections >= cfg->uid_max_connections)
		return over(msg, len, "uid %u has %u connections open, uid_max_connections is %u",
			    (unsigned int)uid, use->connections, cfg->uid_max_connections);
	return 0;
}

int uzd_quota_hello(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *use,
		    char *msg, size_t len)
{
	if (use->clients >= cfg->uid_max_clients)
		return over(msg, len, "uid %u has %u clients connected, uid_max_clients is %u",
			    (unsigned int)uid, use->clients, cfg->uid_max_clients);
	return 0;
}

/* Would @have + @more exceed @max?  Without overflowing. */
static int exceeds(uint64_t have, uint64_t more, uint64_t max)
{
	return have > max || more > max - have;
}

int uzd_quota_fork(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *parent,
		   const struct uzd_quota_use *all, char *msg, size_t len)
{
	if (exceeds(all->regions, parent->regions, cfg->uid_max_regions))
		return over(msg, len,
			    "uid %u's clients have %" PRIu64 " regions; a fork's %" PRIu64
			    " more would exceed uid_max_regions (%u)",
			    (unsigned int)uid, all->regions, parent->regions, cfg->uid_max_regions);
	if (exceeds(all->managed, parent->managed, cfg->uid_max_managed))
		return over(msg, len,
			    "uid %u's clients manage %" PRIu64 " bytes; a fork's %" PRIu64
			    " more would exceed uid_max_managed (%" PRIu64 ")",
			    (unsigned int)uid, all->managed, parent->managed, cfg->uid_max_managed);
	return 0;
}

int uzd_quota_register(const struct uzd_config *cfg, uid_t uid, const struct uzd_quota_use *mine,
		       const struct uzd_quota_use *all, uint64_t bytes, char *msg, size_t len)
{
	if (exceeds(mine->regions, 1, cfg->client_max_regions))
		return over(msg, len,
			    "the client has %" PRIu64 " regions, client_max_regions is %u",
			    mine->regions, cfg->client_max_regions);
	if (exceeds(all->regions, 1, cfg->uid_max_regions))
		return over(msg, len,
			    "uid %u's clients have %" PRIu64 " regions, uid_max_regions is %u",
			    (unsigned int)uid, all->regions, cfg->uid_max_regions);
	if (exceeds(mine->managed, bytes, cfg->client_max_managed))
		return over(msg, len,
			    "the client manages %" PRIu64 " bytes; %" PRIu64
			    " more would exceed client_max_managed (%" PRIu64 ")",
			    mine->managed, bytes, cfg->client_max_managed);
	if (exceeds(all->managed, bytes, cfg->uid_max_managed))
		return over(msg, len,
			    "uid %u's clients manage %" PRIu64 " bytes; %" PRIu64
			    " more would exceed uid_max_managed (%" PRIu64 ")",
			    (unsigned int)uid, all->managed, bytes, cfg->uid_max_managed);
	return 0;
}
