/* SPDX-License-Identifier: MIT */
/*
 * bench/pagefile.h - read the real-memory page files of shared/data/pages.
 *
 * A page file is raw concatenated 4 KiB pages, optionally as one or more
 * zstd frames (`.pages.zst`; recognised by the zstd magic, not the name).
 * Compressed files are decompressed as a stream, so reading one never needs
 * the whole decompressed file in memory.
 */
#ifndef UZSWAP_BENCH_PAGEFILE_H
#define UZSWAP_BENCH_PAGEFILE_H

#include <stddef.h>

#define PF_PAGE_SIZE 4096

struct pf_reader;

int pf_open(const char *path, struct pf_reader **out);
/* 1 when a page was read into @page, 0 at the end, -EBADMSG for a torn file. */
int pf_next(struct pf_reader *r, void *page);
void pf_close(struct pf_reader *r);

/*
 * Read every @stride-th page (page 0, stride, 2*stride...), at most @max of
 * them (0: no limit), into one malloc'd array of *@count pages.
 */
int pf_load(const char *path, size_t stride, size_t max, unsigned char **pages, size_t *count);

#endif /* UZSWAP_BENCH_PAGEFILE_H */
