/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/fuzz_config.c - the config parser (daemon/config.c) against
 * any file.
 *
 * The input is written to a memfd and loaded through /proc/self/fd/N, as
 * uzswapd --config would read a file.  Then:
 *   - refused: the message must name the file and a line ("PATH:LINE: ...")
 *     or the file alone, never be empty;
 *   - accepted: dumping the config and loading the dump must give the same
 *     dump again (what the parser takes, it can write back unchanged, the
 *     promise of uzd_config_dump()).
 * A violation aborts, which libFuzzer reports with the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/config.h"
#include "tests/fuzz/fuzz.h"

#define RAM (UINT64_C(16) << 30)
#define DUMP_MAX 65536

/* A memfd holding @len bytes of @data, and its /proc path in @path. */
static int to_file(const void *data, size_t len, char *path, size_t plen)
{
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (len && write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	snprintf(path, plen, "/proc/self/fd/%d", fd);
	return fd;
}

/* The dump of @cfg into @buf (NUL-terminated); its length, or -1. */
static long dump(const struct uzd_config *cfg, char *buf, size_t len)
{
	FILE *f = fmemopen(buf, len, "w");
	long n;

	if (!f)
		return -1;
	if (uzd_config_dump(cfg, f) < 0) {
		fclose(f);
		return -1;
	}
	n = ftell(f);
	fclose(f);
	return n;
}

static void check_round_trip(const struct uzd_config *cfg)
{
	static char a[DUMP_MAX], b[DUMP_MAX];
	char path[64], err[512];
	struct uzd_config again;
	long na, nb;
	int fd;

	na = dump(cfg, a, sizeof(a));
	FUZZ_ASSERT(na > 0 && na < DUMP_MAX);
	fd = to_file(a, (size_t)na, path, sizeof(path));
	FUZZ_ASSERT(fd >= 0);
	if (uzd_config_load(path, RAM, &again, err, sizeof(err)) != 0) {
		fprintf(stderr, "the dump does not load back: %s\n--- dump:\n%s", err, a);
		abort();
	}
	close(fd);
	nb = dump(&again, b, sizeof(b));
	FUZZ_ASSERT(nb == na && memcmp(a, b, (size_t)na) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512] = "";
	struct uzd_config cfg;
	int fd, ret;

	fd = to_file(data, size, path, sizeof(path));
	if (fd < 0)
		return 0;
	ret = uzd_config_load(path, RAM, &cfg, err, sizeof(err));
	close(fd);
	if (ret == 0)
		check_round_trip(&cfg);
	else
		FUZZ_ASSERT(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
	return 0;
}
