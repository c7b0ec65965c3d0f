/* SPDX-License-Identifier: MIT */
/*
 * tests/test_same_filled.c - same-filled page detection and refill.
 *
 * Hand-made pages pin the edges (a difference in the first or the last
 * byte), and every page of the redis dump is checked against a plain word
 * by word reference, whose count must match the published 0.33%.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/pagefile.h"
#include "compress/codec.h"
#include "tests/tap.h"
#include "tests/testdata.h"

static unsigned char page_buf[UZC_PAGE_SIZE + 8];

static void fill_word(unsigned char *p, uint64_t w)
{
	for (size_t i = 0; i < UZC_PAGE_SIZE; i += sizeof(w))
		memcpy(p + i, &w, sizeof(w));
}

static bool reference_same_filled(const unsigned char *p, uint64_t *word)
{
	uint64_t first, w;

	memcpy(&first, p, sizeof(first));
	for (size_t i = sizeof(w); i < UZC_PAGE_SIZE; i += sizeof(w)) {
		memcpy(&w, p + i, sizeof(w));
		if (w != first)
			return false;
	}
	*word = first;
	return true;
}

static void test_hand_made_pages(void)
{
	unsigned char *p = page_buf;
	uint64_t w = 1;

	memset(p, 0, UZC_PAGE_SIZE);
	ok(uzc_page_same_filled(p, &w) && w == 0, "an all-zero page is same-filled with word 0");
	fill_word(p, 0xdeadbeefcafebabeULL);
	ok(uzc_page_same_filled(p, &w) && w == 0xdeadbeefcafebabeULL,
	   "a page of one repeated word is same-filled with that word");
	p[0] ^= 1;
	ok(!uzc_page_same_filled(p, &w), "a difference in the first byte is seen");
	p[0] ^= 1;
	p[UZC_PAGE_SIZE - 1] ^= 0x80;
	ok(!uzc_page_same_filled(p, &w), "a difference in the last byte is seen");
	p[UZC_PAGE_SIZE - 1] ^= 0x80;
	p[2049] ^= 4;
	ok(!uzc_page_same_filled(p, &w), "a difference in the middle is seen");
	for (size_t i = 0; i < UZC_PAGE_SIZE; i++)
		p[i] = (unsigned char)(i % 16 < 8 ? 0x11 : 0x22);
	ok(!uzc_page_same_filled(p, &w), "a 16-byte pattern is not one repeated word");
}

static void test_fill_round_trips_even_unaligned(void)
{
	unsigned char *p = page_buf + 3;
	uint64_t w = 0;

	uzc_page_fill(p, 0x0102030405060708ULL);
	ok(uzc_page_same_filled(p, &w) && w == 0x0102030405060708ULL && p[0] == 0x08 &&
		   p[UZC_PAGE_SIZE - 1] == 0x01,
	   "a filled page at an unaligned address is same-filled with its word");
	uzc_page_fill(p, 0);
	ok(uzc_page_same_filled(p, &w) && w == 0, "filling with 0 gives a zero page");
}

static void test_real_pages_agree_with_reference(void)
{
	static const char *const files[] = TESTDATA_FILES;
	unsigned char page[UZC_PAGE_SIZE];
	size_t pages = 0, same = 0, disagree = 0;
	struct pf_reader *r = NULL;
	char path[4096];
	int ret;

	if (testdata_path(files[0], path, sizeof(path)) || pf_open(path, &r)) {
		ok(0, "redis page data opens at %s", path);
		return;
	}
	while ((ret = pf_next(r, page)) == 1) {
		uint64_t w1 = 0, w2 = 0;
		bool a = uzc_page_same_filled(page, &w1);
		bool b = reference_same_filled(page, &w2);

		pages++;
		same += a;
		disagree += a != b || (a && w1 != w2);
	}
	pf_close(r);
	ok(ret == 0 && disagree == 0,
	   "all %zu redis pages: detection agrees with the word-by-word reference (%zu disagree)",
	   pages, disagree);
	/* The data README gives 0.33% same-filled for this file. */
	ok(pages == 66240 && same >= 200 && same <= 240,
	   "redis: %zu of %zu pages are same-filled (expected about 0.33%%)", same, pages);
}

int main(void)
{
	char path[4096];

	test_hand_made_pages();
	test_fill_round_trips_even_unaligned();
	if (testdata_path("redis.pages.zst", path, sizeof(path)) == 0)
		test_real_pages_agree_with_reference();
	else
		tap_skip("no page data at %s for the real-page checks", path);
	return tap_done();
}
