/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/json.c - read one value out of `uzswapctl status
 * --json` by path (see json.h).
 *
 * Purpose-built, not a JSON library: skip_value() steps over any value
 * without building anything, member() and select_element() walk one
 * object or array, and resolve() follows a path through them.  Input is
 * trusted to be what uzswapctl prints; malformed input makes a lookup fail
 * (NULL, then -ENOENT), never read past the string's end.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/integration/json.h"

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* @p at a '"': the character after the closing quote, or NULL. */
static const char *skip_string(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* @p at a value: the character after it, or NULL when it is malformed. */
static const char *skip_value(const char *p, int depth)
{
	p = ws(p);
	if (depth > 32)
		return NULL;
	if (*p == '"')
		return skip_string(p);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		p = ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (*p != '"' || !(p = skip_string(p)))
					return NULL;
				p = ws(p);
				if (*p++ != ':')
					return NULL;
			}
			if (!(p = skip_value(p, depth + 1)))
				return NULL;
			p = ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
			p = ws(p);
		}
	}
	if (*p == '-' || (*p >= '0' && *p <= '9')) {
		while (*p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E' ||
		       (*p >= '0' && *p <= '9'))
			p++;
		return p;
	}
	if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	return NULL;
}

/* @obj at '{': the value of member @name (@len bytes), or NULL. */
static const char *member(const char *obj, const char *name, size_t len)
{
	const char *p = ws(obj);

	if (*p != '{')
		return NULL;
	p = ws(p + 1);
	while (*p == '"') {
		const char *k = p + 1, *end = skip_string(p);

		if (!end)
			return NULL;
		p = ws(end);
		if (*p++ != ':')
			return NULL;
		p = ws(p);
		if ((size_t)(end - 1 - k) == len && !memcmp(k, name, len))
			return p;
		if (!(p = skip_value(p, 0)))
			return NULL;
		p = ws(p);
		if (*p != ',')
			return NULL;
		p = ws(p + 1);
	}
	return NULL;
}

/* The raw text of a scalar at @p: a number, or a string's contents. */
static bool scalar_is(const char *p, const char *want, size_t len)
{
	const char *end;

	p = ws(p);
	if (*p == '"') {
		end = skip_string(p);
		return end && (size_t)(end - p - 2) == len && !memcmp(p + 1, want, len);
	}
	end = skip_value(p, 0);
	return end && (size_t)(end - p) == len && !memcmp(p, want, len);
}

/*
 * @arr at '[': with @sel "#", *count gets the length and the array itself
 * is returned; with "k=v", the first element whose member k is v; with a
 * number, that element.
 */
static const char *select_element(const char *arr, const char *sel, size_t len, uint64_t *count)
{
	const char *eq = memchr(sel, '=', len), *p = ws(arr);
	uint64_t i = 0, want = 0;
	bool index = !eq && len && sel[0] != '#';

	if (*p != '[')
		return NULL;
	if (index)
		want = strtoull(sel, NULL, 10);
	p = ws(p + 1);
	while (*p && *p != ']') {
		const char *v;

		if (eq && (v = member(p, sel, (size_t)(eq - sel))) &&
		    scalar_is(v, eq + 1, len - (size_t)(eq - sel) - 1))
			return p;
		if (index && i == want)
			return p;
		if (!(p = skip_value(p, 0)))
			return NULL;
		i++;
		p = ws(p);
		if (*p == ',')
			p = ws(p + 1);
	}
	if (len == 1 && sel[0] == '#') {
		*count = i;
		return arr;
	}
	return NULL;
}

/* The value @path names, or NULL; *count for a "[#]" path. */
static const char *resolve(const char *json, const char *path, bool *is_count, uint64_t *count)
{
	const char *p = ws(json);

	*is_count = false;
	while (*path) {
		size_t n = strcspn(path, ".[");

		p = member(p, path, n);
		if (!p)
			return NULL;
		path += n;
		if (*path == '[') {
			const char *close = strchr(path, ']');

			if (!close)
				return NULL;
			*is_count = close - path == 2 && path[1] == '#';
			p = select_element(p, path + 1, (size_t)(close - path - 1), count);
			if (!p)
				return NULL;
			path = close + 1;
		}
		if (*path == '.')
			path++;
	}
	return p;
}

int jp_u64(const char *json, const char *path, uint64_t *v)
{
	uint64_t count = 0;
	bool is_count;
	const char *p = resolve(json, path, &is_count, &count);
	char *end;

	if (!p)
		return -ENOENT;
	if (is_count) {
		*v = count;
		return 0;
	}
	p = ws(p);
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	*v = strtoull(p, &end, 10);
	if (errno || *end == '.' || *end == 'e' || *end == 'E')
		return -EINVAL;
	return 0;
}

int jp_str(const char *json, const char *path, char *buf, size_t len)
{
	uint64_t count;
	bool is_count;
	const char *p = resolve(json, path, &is_count, &count), *end;

	if (!p)
		return -ENOENT;
	p = ws(p);
	if (*p != '"' || !(end = skip_string(p)))
		return -EINVAL;
	if ((size_t)(end - p - 2) >= len)
		return -ENAMETOOLONG;
	memcpy(buf, p + 1, (size_t)(end - p - 2));
	buf[end - p - 2] = 0;
	return 0;
}
