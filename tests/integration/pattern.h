/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/pattern.h - the page contents integration tests write,
 * and the judge of what they read back.
 *
 * A page's contents are a pure function of (pattern, page, version), so a
 * test keeps only a version counter per page, outside the managed memory,
 * and checks a read exactly.  Version 0 is a zero page (never written, or
 * freed).  Otherwise the page is a real page from ../shared/data/pages
 * (python and redis memory), chosen by a hash, whose first two words are
 * replaced by a stamp naming (tag, page, version) and its complement; with
 * a PAT_MIXED pattern 1 page in 16 is instead filled with the stamp word
 * (same-filled: the daemon keeps it as one word) and 1 in 16 is random
 * bytes after the stamp (incompressible: stored raw).  A PAT_REAL page is
 * never same-filled, so every one of them that is evicted lands in the
 * pool.  The stamp lets a wrong read say what it is: zeros, another
 * version or page (a stale read, a lost write), or a torn page.
 *
 * Managed memory is read and written a 64-bit word at a time with atomic
 * loads and stores (plain moves on x86): threads that read pages another
 * thread writes then race only in the way the seqlocks of the tests allow.
 */
#ifndef UZSWAP_TESTS_INTEGRATION_PATTERN_H
#define UZSWAP_TESTS_INTEGRATION_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAT_PAGE 4096
#define PAT_WORDS (PAT_PAGE / 8)
#define PAT_VERSION_MAX ((UINT64_C(1) << 24) - 1)

enum pat_kind {
	PAT_REAL,  /* stamped real pages only */
	PAT_MIXED, /* also same-filled and incompressible pages */
};

struct pat {
	uint64_t seed;
	unsigned int tag; /* 0..255: tells apart the pages of different writers */
	enum pat_kind kind;
};

/*
 * Load the real pages (skips the whole program when the data is missing)
 * and take the seed from UZSWAP_TEST_SEED or @fallback; returns the seed.
 * Once per program, before any fork.
 */
uint64_t pat_init(uint64_t fallback);

/* Page @p at version @v, into @out (PAT_WORDS words). */
void pat_page(const struct pat *k, uint64_t p, uint64_t v, uint64_t *out);

/*
 * Is @got page @p at version @v?  When not, @why (may be NULL) gets what
 * it is instead: "zeros", "page 12 version 3 (tag 1)" or "torn at byte N".
 */
bool pat_check(const struct pat *k, uint64_t p, uint64_t v, const uint64_t *got, char *why,
	       size_t len);

/* A page of managed memory, word by word (see above). */
void pat_load(const void *addr, uint64_t *buf);
void pat_store(void *addr, const uint64_t *buf);

/* pat_page() then pat_store(); pat_load() then pat_check(). */
void pat_write(const struct pat *k, void *addr, uint64_t p, uint64_t v);
bool pat_verify(const struct pat *k, const void *addr, uint64_t p, uint64_t v, char *why,
		size_t len);

#endif /* UZSWAP_TESTS_INTEGRATION_PATTERN_H */
