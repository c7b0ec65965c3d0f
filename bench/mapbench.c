/* SPDX-License-Identifier: MIT */
/*
 * bench/mapbench.c - what a mapping costs, managed or not: the figure behind
 * the interposer's default threshold (UZSWAP_MIN_REGION, BENCHMARKS.md).
 *
 *   mapbench [--count N]
 *
 * An ordinary program: for each size from 64 KiB to 16 MiB it maps private
 * anonymous memory, writes its first and last page, and unmaps it, N times,
 * and prints one line per size:
 *   size_kib=S maps=N us_per_map=U managed=yes|no
 * Run it as it is and under `uzswap-run --min-region 64K` to see what
 * managing a mapping adds (the memfd mapping, the userfaultfd and daemon
 * registrations, and giving it back); "managed" says whether the interposer
 * took it (its /proc/self/maps line names the uzswap memfd).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool is_managed(const void *p)
{
	uintptr_t a = (uintptr_t)p, lo, hi;
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && !found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2 && lo <= a && a < hi)
			found = strstr(line, "memfd:uzswap") != NULL;
	if (f)
		fclose(f);
	return found;
}

int main(int argc, char **argv)
{
	long count = 2000;

	if (argc == 3 && !strcmp(argv[1], "--count"))
		count = strtol(argv[2], NULL, 10);
	for (size_t size = 64 << 10; size <= (16 << 20); size *= 4) {
		bool managed = false;
		uint64_t t0 = now_ns();

		for (long i = 0; i < count; i++) {
			volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
						MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED) {
				perror("mmap");
				return 1;
			}
			p[0] = 1;
			p[size - 1] = 1;
			if (i == 0)
				managed = is_managed((const void *)p);
			munmap((void *)p, size);
		}
		printf("size_kib=%zu maps=%ld us_per_map=%.1f managed=%s\n", size >> 10, count,
		       (double)(now_ns() - t0) / 1e3 / (double)count, managed ? "yes" : "no");
	}
	return 0;
}
