/* SPDX-License-Identifier: MIT */
/*
 * tests/pagesizes.h - the sizes real pages take once compressed, for the
 * pool tests that allocate objects of realistic sizes.
 *
 * A size is what the daemon would store for the page: its lz4 (default
 * level) length with UZC_DEFAULT_MAX_LEN, or UZC_PAGE_SIZE for a page that
 * does not fit in that (stored raw).  Same-filled pages are left out, as
 * the daemon keeps them as one word and stores nothing.
 */
#ifndef UZSWAP_TESTS_PAGESIZES_H
#define UZSWAP_TESTS_PAGESIZES_H

#include <stddef.h>

/*
 * Put in *@sizes (malloc'd, *@n entries, in file order) the stored sizes of
 * every @stride-th page (page 0, stride, 2*stride...) of the shared page
 * file @file (a TESTDATA_FILES name), taking at most @max pages (0: no
 * limit; same-filled pages taken count towards it).  Stride 1 and max 0 is
 * the whole file.  The file is streamed, never held in memory.
 *
 * Returns 0, possibly with *@n == 0; -ENOENT when the file is not there;
 * -EINVAL for stride 0; another negative errno when the file cannot be read
 * or compressed, or memory runs out.  On error *@sizes is NULL and *@n 0.
 */
int pagesizes_load(const char *file, size_t stride, size_t max, unsigned **sizes, size_t *n);

#endif /* UZSWAP_TESTS_PAGESIZES_H */
