/* SPDX-License-Identifier: MIT */
/*
 * tests/promcheck.h - a strict checker of the Prometheus text exposition
 * format (version 0.0.4), for uzswapctl metrics in the unit and the
 * integration tests.
 *
 * prom_check() accepts a text only if every line is a "# HELP", a
 * "# TYPE", another comment, or a sample; metric names match
 * [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]* (not
 * starting "__", which Prometheus reserves); label values are quoted with
 * only \\, \" and \n escaped and are valid UTF-8; a HELP text escapes only
 * \\ and \n; values are numbers; no series appears twice (its labels in
 * any order) and no sample has a label twice.  It is stricter than
 * Prometheus in what uzswapctl promises: every family has exactly one
 * HELP and one TYPE (counter or gauge), both before its first sample; a
 * family's samples are contiguous; a counter's name ends in _total; no
 * timestamps; the text ends with a line feed.
 */
#ifndef UZSWAP_TESTS_PROMCHECK_H
#define UZSWAP_TESTS_PROMCHECK_H

#include <stddef.h>

/* 0 when @text is valid; -EINVAL with "line N: what is wrong" in @why. */
int prom_check(const char *text, char *why, size_t len);

/*
 * The value of the sample printed exactly as @series ("name" or
 * "name{labels}") into *@v: 0, or -ENOENT.
 */
int prom_value(const char *text, const char *series, double *v);

/*
 * The unescaped value of label @label in the first sample of family
 * @metric whose label @key is @value (@key NULL: the first sample) into
 * @out: 0, -ENOENT, or -ENAMETOOLONG.
 */
int prom_label(const char *text, const char *metric, const char *key, const char *value,
	       const char *label, char *out, size_t len);

#endif /* UZSWAP_TESTS_PROMCHECK_H */
