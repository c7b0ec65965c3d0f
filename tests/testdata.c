/* SPDX-License-Identifier: MIT */
/* tests/testdata.c - locate the shared page files (see testdata.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/testdata.h"

int testdata_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("UZSWAP_PAGES_DIR");
	int n;

	if (!dir || !*dir)
		dir = "../shared/data/pages";
	n = snprintf(buf, len, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return access(buf, R_OK) == 0 ? 0 : -ENOENT;
}
