/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/pattern.c - page contents and their judge (see
 * pattern.h).  The real pages are loaded once, before any fork, and only
 * read afterwards, so children share them.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/pagefile.h"
#include "tests/integration/pattern.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define STAMP_MAGIC UINT64_C(0xa5)
#define PAGES_PER_FILE 1024 /* every 3rd page, from the start of each file */

static unsigned char *real;
static size_t nreal;

uint64_t pat_init(uint64_t fallback)
{
	static const char *const files[] = TESTDATA_FILES;
	unsigned char *pages[TESTDATA_NFILES] = { NULL };
	size_t count[TESTDATA_NFILES] = { 0 }, total = 0;
	char path[4096];

	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		if (testdata_path(files[i], path, sizeof(path)) < 0)
			tap_skip_all("no real page data (%s; set UZSWAP_PAGES_DIR)", path);
		if (pf_load(path, 3, PAGES_PER_FILE, &pages[i], &count[i]) < 0 || !count[i])
			tap_skip_all("cannot load %s", path);
		total += count[i];
	}
	real = malloc(total * PAT_PAGE);
	if (!real)
		tap_skip_all("out of memory for %zu real pages", total);
	for (size_t i = 0; i < TESTDATA_NFILES; i++) {
		memcpy(real + nreal * PAT_PAGE, pages[i], count[i] * PAT_PAGE);
		nreal += count[i];
		free(pages[i]);
	}
	return rng_seed_from_env(fallback);
}

static uint64_t stamp(const struct pat *k, uint64_t p, uint64_t v)
{
	return STAMP_MAGIC << 56 | (uint64_t)(k->tag & 0xff) << 48 | (p & 0xffffff) << 24 |
	       (v & PAT_VERSION_MAX);
}

static uint64_t mix(const struct pat *k, uint64_t p, uint64_t v)
{
	struct rng g = { .state = k->seed ^ stamp(k, p, v) };

	return rng_next(&g);
}

void pat_page(const struct pat *k, uint64_t p, uint64_t v, uint64_t *out)
{
	uint64_t h = mix(k, p, v), st = stamp(k, p, v);
	unsigned int kind = (unsigned int)(h % 16);

	if (!v) {
		memset(out, 0, PAT_PAGE);
		return;
	}
	if (k->kind == PAT_MIXED && kind == 0) {
		for (size_t i = 0; i < PAT_WORDS; i++)
			out[i] = st;
		return;
	}
	if (k->kind == PAT_MIXED && kind == 1) {
		struct rng g = { .state = h };

		for (size_t i = 0; i < PAT_WORDS; i++)
			out[i] = rng_next(&g);
	} else {
		memcpy(out, real + ((h >> 8) % nreal) * PAT_PAGE, PAT_PAGE);
	}
	out[0] = st;
	out[1] = ~st;
}

static void describe(const struct pat *k, const uint64_t *got, const uint64_t *want, char *why,
		     size_t len)
{
	uint64_t w = got[0], other[PAT_WORDS];
	size_t i;
	bool zeros = true;

	for (i = 0; i < PAT_WORDS && zeros; i++)
		zeros = got[i] == 0;
	if (zeros) {
		snprintf(why, len, "zeros");
		return;
	}
	if (w >> 56 == STAMP_MAGIC) {
		struct pat o = { .seed = k->seed,
				 .tag = (unsigned int)(w >> 48) & 0xff,
				 .kind = k->kind };
		uint64_t op = (w >> 24) & 0xffffff, ov = w & PAT_VERSION_MAX;

		pat_page(&o, op, ov, other);
		if (!memcmp(other, got, PAT_PAGE)) {
			snprintf(why, len, "page %" PRIu64 " version %" PRIu64 " (tag %u)", op, ov,
				 o.tag);
			return;
		}
	}
	for (i = 0; i < PAT_WORDS && got[i] == want[i]; i++)
		;
	snprintf(why, len, "torn: first difference at byte %zu", i * 8);
}

bool pat_check(const struct pat *k, uint64_t p, uint64_t v, const uint64_t *got, char *why,
	       size_t len)
{
	uint64_t want[PAT_WORDS];

	pat_page(k, p, v, want);
	if (!memcmp(want, got, PAT_PAGE))
		return true;
	if (why && len)
		describe(k, got, want, why, len);
	return false;
}

void pat_load(const void *addr, uint64_t *buf)
{
	const uint64_t *s = addr;

	for (size_t i = 0; i < PAT_WORDS; i++)
		buf[i] = __atomic_load_n(&s[i], __ATOMIC_ACQUIRE);
}

void pat_store(void *addr, const uint64_t *buf)
{
	uint64_t *d = addr;

	for (size_t i = 0; i < PAT_WORDS; i++)
		__atomic_store_n(&d[i], buf[i], __ATOMIC_RELEASE);
}

void pat_write(const struct pat *k, void *addr, uint64_t p, uint64_t v)
{
	uint64_t buf[PAT_WORDS];

	pat_page(k, p, v, buf);
	pat_store(addr, buf);
}

bool pat_verify(const struct pat *k, const void *addr, uint64_t p, uint64_t v, char *why,
		size_t len)
{
	uint64_t buf[PAT_WORDS];

	pat_load(addr, buf);
	return pat_check(k, p, v, buf, why, len);
}
