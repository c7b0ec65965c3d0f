/* SPDX-License-Identifier: MIT */
/*
 * tests/fuzz/replay.c - a fuzz harness without libFuzzer: feeds it every
 * file of the directories named on the command line, one TAP test point
 * each (by default the harness's corpus, FUZZ_CORPUS), so that the seeds
 * and every input a fuzzing run once failed on (kept in the corpus as
 * regress-*) are checked by `make check` in every build, the sanitizer
 * build included.  A harness that fails aborts, and the TAP
 * driver reports the program's crash after the last point it passed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "tests/tap.h"

#define REPLAY_MAX_INPUT (1 << 20)

static int replay_file(const char *path, unsigned char *buf)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, REPLAY_MAX_INPUT, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_dir(const char *dir, unsigned char *buf)
{
	char *names[4096], path[4096];
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (!d) {
		ok(false, "%s can be read (%s)", dir, strerror(errno));
		return;
	}
	while ((de = readdir(d)) && n < sizeof(names) / sizeof(names[0]))
		if (de->d_name[0] != '.')
			names[n++] = strdup(de->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_names);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		ok(replay_file(path, buf) == 0, "%s runs through the harness without a fault",
		   path);
		free(names[i]);
	}
}

int main(int argc, char **argv)
{
	unsigned char *buf = malloc(REPLAY_MAX_INPUT);

	if (!buf)
		return 1;
	if (argc > 1)
		for (int i = 1; i < argc; i++)
			replay_dir(argv[i], buf);
	else
		replay_dir(FUZZ_CORPUS, buf);
	free(buf);
	return tap_done();
}
