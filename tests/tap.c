/* SPDX-License-Identifier: MIT */
/*
 * tests/tap.c - the TAP producer (see tap.h).  Its two counters are the
 * only state, and a test program is single-threaded when it reports.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/tap.h"

static int points, failures;

bool tap_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	points++;
	if (!cond)
		failures++;
	printf("%s %d - ", cond ? "ok" : "not ok", points);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

void tap_skip(const char *fmt, ...)
{
	va_list ap;

	points++;
	printf("ok %d # SKIP ", points);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void tap_skip_all(const char *fmt, ...)
{
	va_list ap;

	fputs("1..0 # SKIP ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(0);
}

int tap_failures(void)
{
	return failures;
}

int tap_done(void)
{
	printf("1..%d\n", points);
	if (failures)
		tap_diag("%d of %d checks failed", failures, points);
	return failures ? 1 : 0;
}
