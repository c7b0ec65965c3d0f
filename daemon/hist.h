/* SPDX-License-Identifier: MIT */
/*
 * daemon/hist.h - latency histograms: record on the fault path, read
 * percentiles from anywhere.
 *
 * Buckets are log-linear: exact below 8, then 8 buckets per power of two,
 * so a bucket spans at most 1/8 of its lower bound and a percentile read
 * from a bucket is within 12.5% of the true value, from 1 ns to 2^64 ns in
 * 4 KiB of counters.  Recording is three relaxed atomic adds and no lock,
 * so several fault threads may share one histogram; a reader sees each
 * counter whole but may see a recording half done, which moves a
 * percentile by at most one sample.
 */
#ifndef UZSWAP_DAEMON_HIST_H
#define UZSWAP_DAEMON_HIST_H

#include <stdint.h>

#define UZD_HIST_SUB_BITS 3
#define UZD_HIST_BUCKETS ((64 - UZD_HIST_SUB_BITS + 1) << UZD_HIST_SUB_BITS)

struct uzd_hist {
	uint64_t bucket[UZD_HIST_BUCKETS];
	uint64_t count, sum;
};

void uzd_hist_record(struct uzd_hist *h, uint64_t value);
/* Add @src into @dst (a snapshot: @src may be recorded into meanwhile). */
void uzd_hist_merge(struct uzd_hist *dst, const struct uzd_hist *src);
/*
 * The value below which a fraction @q (0..1) of the samples lie, as the
 * upper bound of the bucket that holds that sample; 0 when empty.
 */
uint64_t uzd_hist_quantile(const struct uzd_hist *h, double q);
uint64_t uzd_hist_count(const struct uzd_hist *h);
uint64_t uzd_hist_mean(const struct uzd_hist *h);

/* Bucket arithmetic, exposed for the tests. */
unsigned int uzd_hist_index(uint64_t value);
uint64_t uzd_hist_bucket_max(unsigned int index);

#endif /* UZSWAP_DAEMON_HIST_H */
