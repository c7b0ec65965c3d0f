/* SPDX-License-Identifier: MIT */
/*
 * tests/tap.h - a small TAP producer for automake's tap-driver.sh.
 *
 * Each check is one test point whose name reads as a sentence; a failing
 * check says what it expected and what it saw, through tap_diag().  The plan
 * is printed last by tap_done(), so tests need not count their points.
 */
#ifndef UZSWAP_TESTS_TAP_H
#define UZSWAP_TESTS_TAP_H

#include <stdbool.h>

bool tap_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A test point that could not run here, e.g. its data is missing. */
void tap_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The whole program is skipped, e.g. its data is missing: exits 0. */
void tap_skip_all(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Test points failed so far: a harness prints its evidence when this grows. */
int tap_failures(void);
/* Print the plan; the exit status for main(): 0 when every point passed. */
int tap_done(void);

#define ok(cond, ...) tap_ok((cond), __VA_ARGS__)

#endif /* UZSWAP_TESTS_TAP_H */
