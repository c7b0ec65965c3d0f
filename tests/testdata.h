/* SPDX-License-Identifier: MIT */
/*
 * tests/testdata.h - where the real-memory page files are.
 *
 * `make check` exports UZSWAP_PAGES_DIR (configure's --with-pages-dir, by
 * default ../shared/data/pages beside the source tree).
 */
#ifndef UZSWAP_TESTS_TESTDATA_H
#define UZSWAP_TESTS_TESTDATA_H

#include <stddef.h>

/* The shared page files every data-driven test reads. */
#define TESTDATA_FILES                                \
	{                                             \
		"redis.pages.zst", "python.pages.zst" \
	}
#define TESTDATA_NFILES 2

/*
 * Put the path of page file @name into @buf; -ENOENT when the file is not
 * there (the caller skips, saying so), -ENAMETOOLONG when it does not fit.
 */
int testdata_path(const char *name, char *buf, size_t len);

#endif /* UZSWAP_TESTS_TESTDATA_H */
