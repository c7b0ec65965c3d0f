/* SPDX-License-Identifier: MIT */
/*
 * daemon/main.c - uzswapd's command line.
 *
 *   uzswapd --config FILE [--socket PATH]   run in the foreground
 *   uzswapd --check-config FILE             check a file: exit 0, or
 *                                           FILE:LINE: what is wrong, exit 1
 *
 * Options on the command line override the file, now and when SIGHUP or
 * `uzswapctl reload` reads it again (daemon/reload.c).  Everything else
 * (the loop, the threads) is daemon/server.c; the settings are
 * daemon/config.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/config.h"
#include "daemon/server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uzswapd --config FILE [--socket PATH]\n"
		"       uzswapd --check-config FILE\n"
		"Serve page faults of uzswap clients from a compressed pool.\n"
		"  -c, --config FILE        read settings from FILE (see uzswapd.conf(5))\n"
		"  -s, --socket PATH        listen on PATH instead of the file's [daemon] socket\n"
		"  -t, --check-config FILE  check FILE and exit: 0 when it is valid\n"
		"  -h, --help               this text\n"
		"  -V, --version            the version\n");
}

static uint64_t ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

static int load(const char *path, struct uzd_config *cfg)
{
	char err[512];

	uzd_config_defaults(cfg, ram_bytes());
	if (uzd_config_load(path, ram_bytes(), cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int set_socket(struct uzd_config *cfg, const char *path)
{
	if (path[0] != '/' || strlen(path) >= sizeof(cfg->socket)) {
		fprintf(stderr, "uzswapd: --socket %s: an absolute path of at most %zu bytes\n",
			path, sizeof(cfg->socket) - 1);
		return -1;
	}
	snprintf(cfg->socket, sizeof(cfg->socket), "%s", path);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "check-config", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *socket = NULL, *check = NULL;
	struct uzd_config cfg;
	int opt;

	while ((opt = getopt_long(argc, argv, "c:s:t:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 's':
			socket = optarg;
			break;
		case 't':
			check = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("uzswapd %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || (!config && !check) || (config && check)) {
		usage(stderr);
		return 2;
	}
	if (check) {
		if (load(check, &cfg) < 0)
			return 1;
		printf("%s: ok\n", check);
		return 0;
	}
	if (load(config, &cfg) < 0 || (socket && set_socket(&cfg, socket) < 0))
		return 1;
	return uzd_server_run_file(&cfg, config, socket != NULL);
}
