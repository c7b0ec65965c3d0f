/* SPDX-License-Identifier: MIT */
/*
 * compress/same_filled.c - recognise and rebuild pages made of one word.
 *
 * Every evicted page passes through uzc_page_same_filled() before it is
 * compressed, so it must cost next to nothing on the common page, which is
 * not same-filled and usually differs within its first few words.  The
 * check compares the first and last words (a cheap early exit, as zram
 * does), then asks memcmp whether the page equals itself shifted by one
 * word: that holds exactly when every word equals the one before it, and
 * glibc's vectorised memcmp stops at the first difference.
 */
#include <string.h>

#include "compress/codec.h"

#define WORDS_PER_PAGE (UZC_PAGE_SIZE / sizeof(uint64_t))

bool uzc_page_same_filled(const void *page, uint64_t *word)
{
	const unsigned char *p = page;
	uint64_t first, last;

	memcpy(&first, p, sizeof(first));
	memcpy(&last, p + UZC_PAGE_SIZE - sizeof(last), sizeof(last));
	if (first != last)
		return false;
	if (memcmp(p, p + sizeof(uint64_t), UZC_PAGE_SIZE - sizeof(uint64_t)) != 0)
		return false;
	*word = first;
	return true;
}

void uzc_page_fill(void *page, uint64_t word)
{
	unsigned char *p = page;

	if (word == 0) {
		memset(page, 0, UZC_PAGE_SIZE);
		return;
	}
	/* memcpy: the page need not be 8-byte aligned; the compiler vectorises it. */
	for (size_t i = 0; i < WORDS_PER_PAGE; i++)
		memcpy(p + i * sizeof(word), &word, sizeof(word));
}
