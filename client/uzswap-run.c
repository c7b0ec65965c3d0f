/* SPDX-License-Identifier: MIT */
/*
 * client/uzswap-run.c - run a program with its large anonymous memory
 * under uzswapd.
 *
 *   uzswap-run [--max-resident SIZE] [--min-region SIZE] [--socket PATH]
 *              [--malloc jemalloc|system|PATH] [--strict] [--quiet]
 *              -- PROGRAM [ARGS...]
 *
 * It only prepares the environment and execs PROGRAM, so the exit status is
 * the program's and signals reach it directly: LD_PRELOAD gets the
 * interposer (client/interpose.c), and the options become its variables
 * (UZSWAP_MAX_RESIDENT, UZSWAP_MIN_REGION, UZSWAP_SOCKET, UZSWAP_STRICT,
 * UZSWAP_QUIET), which the processes the program starts inherit too.
 *
 * --malloc: glibc's malloc maps its memory with internal calls that no
 * interposer sees (and keeps small blocks on the brk heap), so by default
 * the program's malloc is jemalloc, preloaded after the interposer, whose
 * arenas are mmap'd through it (BENCHMARKS.md has the coverage figures).
 * "system" keeps the program's own allocator; a path preloads another.
 *
 * The interposer is $UZSWAP_PRELOAD when set (the build tree's tests),
 * else the installed one (UZ_PRELOAD_PATH).  Exit status 125 for a usage
 * or setup error, 127 when PROGRAM cannot be run (as env(1) does).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef UZ_PRELOAD_PATH
#define UZ_PRELOAD_PATH "/usr/local/lib/uzswap/libuzswap-preload.so"
#endif

#define EXIT_SETUP 125
#define EXIT_NOEXEC 127

static const char *const jemalloc_paths[] = {
	"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
	"/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
	"/usr/lib/libjemalloc.so.2",
	"/usr/local/lib/libjemalloc.so.2",
};

static void usage(FILE *f)
{
	fprintf(f, "usage: uzswap-run [OPTIONS] -- PROGRAM [ARGS...]\n"
		   "Run PROGRAM with its large anonymous memory managed by uzswapd.\n"
		   "\n"
		   "  --max-resident SIZE  resident budget to ask the daemon for (e.g. 256M)\n"
		   "  --min-region SIZE    smallest mapping to manage (default 1M)\n"
		   "  --socket PATH        uzswapd's socket (default $UZSWAP_SOCKET, then\n"
		   "                       /run/uzswap/uzswapd.sock)\n"
		   "  --malloc WHICH       jemalloc (default: glibc malloc's memory cannot\n"
		   "                       be managed), system (the program's own), or a\n"
		   "                       path to an allocator to preload\n"
		   "  --strict             no daemon is an error (exit status 85), not a warning\n"
		   "  --quiet              no warning when running unmanaged\n"
		   "  --help               this text\n"
		   "\n"
		   "The exit status is PROGRAM's (125: bad usage, 127: PROGRAM cannot run;\n"
		   "a program whose daemon dies is stopped with status 86).\n");
}

/* A size: digits with an optional K/M/G/T (KiB...) suffix; true when valid. */
static bool valid_size(const char *s)
{
	char *end;

	if (!*s || *s < '0' || *s > '9')
		return false;
	strtoull(s, &end, 10);
	if (*end && strchr("kKmMgGtT", *end))
		end++;
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	return *end == '\0';
}

static const char *find_jemalloc(void)
{
	for (size_t i = 0; i < sizeof(jemalloc_paths) / sizeof(jemalloc_paths[0]); i++)
		if (access(jemalloc_paths[i], R_OK) == 0)
			return jemalloc_paths[i];
	return NULL;
}

/* LD_PRELOAD = interposer, then the allocator, then whatever was there. */
static int set_preload(const char *interposer, const char *allocator)
{
	const char *old = getenv("LD_PRELOAD");
	size_t len = strlen(interposer) + (allocator ? strlen(allocator) + 1 : 0) +
		     (old && *old ? strlen(old) + 1 : 0) + 1;
	char *v = malloc(len);

	if (!v)
		return -ENOMEM;
	snprintf(v, len, "%s%s%s%s%s", interposer, allocator ? ":" : "", allocator ? allocator : "",
		 old && *old ? ":" : "", old && *old ? old : "");
	if (setenv("LD_PRELOAD", v, 1) < 0) {
		free(v);
		return -errno;
	}
	free(v);
	return 0;
}

static int set(const char *name, const char *value)
{
	if (setenv(name, value, 1) == 0)
		return 0;
	fprintf(stderr, "uzswap-run: setting %s: %s\n", name, strerror(errno));
	return -1;
}

static const char *allocator_for(const char *which, bool quiet)
{
	const char *path;

	if (!strcmp(which, "system"))
		return NULL;
	if (strcmp(which, "jemalloc") != 0)
		return which;
	path = find_jemalloc();
	if (!path && !quiet)
		fprintf(stderr, "uzswap-run: libjemalloc.so.2 not found (Debian: libjemalloc2): "
				"memory glibc's malloc hands out stays unmanaged\n");
	return path;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "max-resident", required_argument, NULL, 'r' },
		{ "min-region", required_argument, NULL, 'm' },
		{ "socket", required_argument, NULL, 's' },
		{ "malloc", required_argument, NULL, 'a' },
		{ "strict", no_argument, NULL, 'S' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *interposer = getenv("UZSWAP_PRELOAD"), *which = "jemalloc";
	bool quiet = false;
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
		case 'm':
			if (!valid_size(optarg)) {
				fprintf(stderr, "uzswap-run: --%s %s: not a size (e.g. 256M)\n",
					c == 'r' ? "max-resident" : "min-region", optarg);
				return EXIT_SETUP;
			}
			if (set(c == 'r' ? "UZSWAP_MAX_RESIDENT" : "UZSWAP_MIN_REGION", optarg))
				return EXIT_SETUP;
			break;
		case 's':
			if (set("UZSWAP_SOCKET", optarg))
				return EXIT_SETUP;
			break;
		case 'a':
			which = optarg;
			break;
		case 'S':
			if (set("UZSWAP_STRICT", "1"))
				return EXIT_SETUP;
			break;
		case 'q':
			quiet = true;
			if (set("UZSWAP_QUIET", "1"))
				return EXIT_SETUP;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_SETUP;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "uzswap-run: no program to run\n");
		usage(stderr);
		return EXIT_SETUP;
	}
	if (!interposer || !*interposer)
		interposer = UZ_PRELOAD_PATH;
	if (access(interposer, R_OK) < 0) {
		fprintf(stderr, "uzswap-run: the interposer %s: %s\n", interposer, strerror(errno));
		return EXIT_SETUP;
	}
	if (set_preload(interposer, allocator_for(which, quiet)) < 0) {
		fprintf(stderr, "uzswap-run: setting LD_PRELOAD: out of memory\n");
		return EXIT_SETUP;
	}
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "uzswap-run: %s: %s\n", argv[optind], strerror(errno));
	return EXIT_NOEXEC;
}
