/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/json.h - one value out of `uzswapctl status --json`.
 *
 * A path names the value: "name" a member of the top object, "a.b" member
 * b of member a, "clients[pid=123].pool_pages" member pool_pages of the
 * element of array clients whose member pid is 123 (a number, or a
 * string's contents), "clients[0]" the first element, and "clients[#]"
 * (only at the end) the array's length.
 */
#ifndef UZSWAP_TESTS_INTEGRATION_JSON_H
#define UZSWAP_TESTS_INTEGRATION_JSON_H

#include <stddef.h>
#include <stdint.h>

/* A non-negative integer: 0, -ENOENT when the path is not there, -EINVAL when not such a number. */
int jp_u64(const char *json, const char *path, uint64_t *v);

/* A string, into @buf: 0, -ENOENT, -EINVAL (not a string), -ENAMETOOLONG. */
int jp_str(const char *json, const char *path, char *buf, size_t len);

#endif /* UZSWAP_TESTS_INTEGRATION_JSON_H */
