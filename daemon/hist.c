/* SPDX-License-Identifier: MIT */
/*
 * daemon/hist.c - log-linear latency histograms (see hist.h).
 *
 * Index of a value v: below 2^SUB_BITS, v itself.  Above, with e the
 * position of v's top bit, the index is (e - SUB_BITS + 1) << SUB_BITS plus
 * the SUB_BITS bits just below the top one: the octave picks a group of 8
 * buckets and the next bits pick one within it.  Every group covers the
 * same relative range, which is what latencies need: 1 us and 1 ms are both
 * wanted to within a few percent, not to within a fixed number of ns.
 */
#include "daemon/hist.h"

#define SUB (1u << UZD_HIST_SUB_BITS)

unsigned int uzd_hist_index(uint64_t value)
{
	unsigned int top;

	if (value < SUB)
		return (unsigned int)value;
	top = 63u - (unsigned int)__builtin_clzll(value);
	return ((top - UZD_HIST_SUB_BITS + 1) << UZD_HIST_SUB_BITS) |
	       (unsigned int)((value >> (top - UZD_HIST_SUB_BITS)) & (SUB - 1));
}

uint64_t uzd_hist_bucket_max(unsigned int index)
{
	unsigned int group = index >> UZD_HIST_SUB_BITS, sub = index & (SUB - 1);
	unsigned int top;

	if (group == 0)
		return index;
	top = group + UZD_HIST_SUB_BITS - 1;
	/* Lower bound (1 << top | sub << (top - SUB_BITS)), plus the bucket's width, less one. */
	return ((uint64_t)(SUB | sub) << (top - UZD_HIST_SUB_BITS)) +
	       ((1ULL << (top - UZD_HIST_SUB_BITS)) - 1);
}

void uzd_hist_record(struct uzd_hist *h, uint64_t value)
{
	__atomic_fetch_add(&h->bucket[uzd_hist_index(value)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum, value, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void uzd_hist_merge(struct uzd_hist *dst, const struct uzd_hist *src)
{
	for (unsigned int i = 0; i < UZD_HIST_BUCKETS; i++)
		dst->bucket[i] += __atomic_load_n(&src->bucket[i], __ATOMIC_RELAXED);
	dst->sum += __atomic_load_n(&src->sum, __ATOMIC_RELAXED);
	dst->count += __atomic_load_n(&src->count, __ATOMIC_RELAXED);
}

uint64_t uzd_hist_count(const struct uzd_hist *h)
{
	return __atomic_load_n(&h->count, __ATOMIC_RELAXED);
}

uint64_t uzd_hist_mean(const struct uzd_hist *h)
{
	uint64_t n = uzd_hist_count(h);

	return n ? __atomic_load_n(&h->sum, __ATOMIC_RELAXED) / n : 0;
}

uint64_t uzd_hist_quantile(const struct uzd_hist *h, double q)
{
	uint64_t total = 0, seen = 0, rank;
	double want;

	for (unsigned int i = 0; i < UZD_HIST_BUCKETS; i++)
		total += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
	if (!total)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	/* The sample of rank ceil(q * total), counting from 1. */
	want = q * (double)total;
	rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	for (unsigned int i = 0; i < UZD_HIST_BUCKETS; i++) {
		seen += __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
		if (seen >= rank)
			return uzd_hist_bucket_max(i);
	}
	return uzd_hist_bucket_max(UZD_HIST_BUCKETS - 1);
}
