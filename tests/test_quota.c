/* SPDX-License-Identifier: MIT */
/*
 * tests/test_quota.c - daemon/quota.c: each quota refuses exactly past its
 * value, says which quota with the figures, and never overflows.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "daemon/config.h"
#include "daemon/quota.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)

static struct uzd_config quota_cfg(void)
{
	struct uzd_config cfg;

	uzd_config_defaults(&cfg, UINT64_C(8) << 30);
	cfg.uid_max_connections = 4;
	cfg.uid_max_clients = 2;
	cfg.client_max_regions = 3;
	cfg.uid_max_regions = 5;
	cfg.client_max_managed = 8 * MIB;
	cfg.uid_max_managed = 12 * MIB;
	return cfg;
}

static void test_connect_and_hello(void)
{
	struct uzd_config cfg = quota_cfg();
	struct uzd_quota_use use = { .connections = 3, .clients = 1 };
	char msg[256] = "";

	ok(uzd_quota_connect(&cfg, 1000, &use, msg, sizeof(msg)) == 0 &&
		   uzd_quota_hello(&cfg, 1000, &use, msg, sizeof(msg)) == 0,
	   "below uid_max_connections and uid_max_clients a connection and a HELLO pass");
	use.connections = 4;
	ok(uzd_quota_connect(&cfg, 1000, &use, msg, sizeof(msg)) == -EDQUOT &&
		   strcmp(msg, "uid 1000 has 4 connections open, uid_max_connections is 4") == 0,
	   "at uid_max_connections the next connection is refused, saying why (%s)", msg);
	use.clients = 2;
	ok(uzd_quota_hello(&cfg, 0, &use, msg, sizeof(msg)) == -EDQUOT &&
		   strcmp(msg, "uid 0 has 2 clients connected, uid_max_clients is 2") == 0,
	   "at uid_max_clients the next HELLO is refused, root's too (%s)", msg);
}

static void test_register(void)
{
	struct uzd_config cfg = quota_cfg();
	struct uzd_quota_use mine = { .regions = 2, .managed = 4 * MIB };
	struct uzd_quota_use all = { .regions = 4, .managed = 8 * MIB };
	char msg[256] = "";

	ok(uzd_quota_register(&cfg, 7, &mine, &all, 4 * MIB, msg, sizeof(msg)) == 0,
	   "a region that fills client_max_managed and uid_max_managed exactly passes");
	ok(uzd_quota_register(&cfg, 7, &mine, &all, 4 * MIB + 4096, msg, sizeof(msg)) == -EDQUOT &&
		   strstr(msg, "client_max_managed (8388608)"),
	   "a page more is refused by client_max_managed (%s)", msg);
	mine.regions = 3;
	ok(uzd_quota_register(&cfg, 7, &mine, &all, 4096, msg, sizeof(msg)) == -EDQUOT &&
		   strcmp(msg, "the client has 3 regions, client_max_regions is 3") == 0,
	   "at client_max_regions the next region is refused (%s)", msg);
	mine.regions = 1;
	all.regions = 5;
	ok(uzd_quota_register(&cfg, 7, &mine, &all, 4096, msg, sizeof(msg)) == -EDQUOT &&
		   strcmp(msg, "uid 7's clients have 5 regions, uid_max_regions is 5") == 0,
	   "at uid_max_regions the next region is refused (%s)", msg);
	all.regions = 1;
	all.managed = 10 * MIB;
	ok(uzd_quota_register(&cfg, 7, &mine, &all, 4 * MIB, msg, sizeof(msg)) == -EDQUOT &&
		   strstr(msg, "uid_max_managed (12582912)"),
	   "past uid_max_managed the region is refused (%s)", msg);
	all.managed = 0;
	ok(uzd_quota_register(&cfg, 7, &mine, &all, UINT64_MAX - 4095, msg, sizeof(msg)) == -EDQUOT,
	   "a length near 2^64 is refused, not wrapped past the quota");
	mine.managed = UINT64_MAX;
	ok(uzd_quota_register(&cfg, 7, &mine, &all, 4096, msg, sizeof(msg)) == -EDQUOT,
	   "a use already past the quota (a fork's copy) refuses the next region");
}

int main(void)
{
	test_connect_and_hello();
	test_register();
	return tap_done();
}
