/* SPDX-License-Identifier: MIT */
/*
 * tests/test_hist.c - latency histograms: bucket arithmetic at every
 * boundary, quantiles within 12.5% of the exact ones on skewed random
 * samples, merging, and recording from four threads at once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/hist.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define SAMPLES 200000
#define THREADS 4
#define PER_THREAD 250000

static void test_buckets_cover_every_value_once(void)
{
	unsigned int prev = 0, bad = 0;

	for (unsigned int top = 0; top < 64; top++) {
		uint64_t lo = 1ULL << top, hi = top == 63 ? UINT64_MAX : (lo << 1) - 1;
		uint64_t probes[] = { lo, lo + 1, lo + (hi - lo) / 2, hi - 1, hi };

		for (size_t k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
			unsigned int i;

			/* Tiny octaves have fewer distinct values than probes. */
			if (probes[k] < lo || probes[k] > hi || (k && probes[k] <= probes[k - 1]))
				continue;
			i = uzd_hist_index(probes[k]);

			bad += i < prev || i >= UZD_HIST_BUCKETS ||
			       uzd_hist_bucket_max(i) < probes[k];
			bad += i > 0 && uzd_hist_bucket_max(i - 1) >= probes[k];
			prev = i;
		}
	}
	ok(bad == 0, "every value lands in one bucket whose bounds hold it (%u violations)", bad);
	ok(uzd_hist_index(0) == 0 && uzd_hist_index(7) == 7 && uzd_hist_bucket_max(7) == 7,
	   "values below 8 have exact buckets");
	ok(uzd_hist_index(UINT64_MAX) == UZD_HIST_BUCKETS - 1 &&
		   uzd_hist_bucket_max(UZD_HIST_BUCKETS - 1) == UINT64_MAX,
	   "the last bucket ends at the largest value");
}

static void test_bucket_width_is_an_eighth(void)
{
	unsigned int wide = 0;

	for (unsigned int i = 9; i < UZD_HIST_BUCKETS; i++) {
		uint64_t lo = uzd_hist_bucket_max(i - 1) + 1;
		uint64_t width = uzd_hist_bucket_max(i) - lo + 1;

		wide += width > lo / 8;
	}
	ok(wide == 0, "no bucket is wider than 1/8 of its lower bound (%u are)", wide);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Fault-like latencies: most near 10 us, a tail to tens of ms. */
static uint64_t skewed_sample(struct rng *r)
{
	uint64_t base = 5000 + rng_below(r, 10000);

	return rng_below(r, 100) ? base : base << rng_below(r, 12);
}

static void test_quantiles_are_close_to_exact(struct rng *r)
{
	static const double qs[] = { 0.0, 0.5, 0.9, 0.99, 0.999, 1.0 };
	uint64_t *v = malloc(SAMPLES * sizeof(*v));
	struct uzd_hist *h = calloc(1, sizeof(*h));
	double worst = 0;

	if (!v || !h) {
		ok(0, "memory for the quantile test");
		goto out;
	}
	for (size_t i = 0; i < SAMPLES; i++) {
		v[i] = skewed_sample(r);
		uzd_hist_record(h, v[i]);
	}
	qsort(v, SAMPLES, sizeof(*v), cmp_u64);
	for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t rank = (size_t)(qs[k] * SAMPLES + 0.5);
		uint64_t exact = v[rank ? rank - 1 : 0], got = uzd_hist_quantile(h, qs[k]);
		double err = ((double)got - (double)exact) / (double)exact;

		if (err < 0 || err > worst)
			worst = err < 0 ? 1 : err;
	}
	ok(worst <= 0.125 && uzd_hist_count(h) == SAMPLES,
	   "p0, p50, p90, p99, p99.9 and p100 are at most 12.5%% above the exact values "
	   "(worst %.4f)",
	   worst);
	ok(uzd_hist_quantile(&(struct uzd_hist){ { 0 }, 0, 0 }, 0.5) == 0,
	   "an empty histogram's quantiles are 0");
out:
	free(v);
	free(h);
}

static void test_merge_adds(void)
{
	struct uzd_hist *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	if (!a || !b) {
		ok(0, "memory for the merge test");
		goto out;
	}
	for (int i = 0; i < 100; i++)
		uzd_hist_record(a, 1000);
	for (int i = 0; i < 100; i++)
		uzd_hist_record(b, 9000);
	uzd_hist_merge(a, b);
	ok(uzd_hist_count(a) == 200 && uzd_hist_mean(a) == 5000 &&
		   uzd_hist_quantile(a, 0.5) < 1200 && uzd_hist_quantile(a, 0.51) >= 9000,
	   "a merge holds both histograms' samples");
out:
	free(a);
	free(b);
}

static void *record_many(void *arg)
{
	struct uzd_hist *h = arg;

	for (uint64_t i = 0; i < PER_THREAD; i++)
		uzd_hist_record(h, 1 + i % 50000);
	return NULL;
}

static void test_threads_lose_nothing(void)
{
	struct uzd_hist *h = calloc(1, sizeof(*h));
	pthread_t t[THREADS];
	uint64_t sum = 0;

	if (!h) {
		ok(0, "memory for the thread test");
		return;
	}
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, record_many, h);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	for (unsigned int i = 0; i < UZD_HIST_BUCKETS; i++)
		sum += h->bucket[i];
	ok(uzd_hist_count(h) == THREADS * PER_THREAD && sum == THREADS * PER_THREAD,
	   "%d threads recording at once lose no sample (%llu counted, %llu in buckets)", THREADS,
	   (unsigned long long)uzd_hist_count(h), (unsigned long long)sum);
	free(h);
}

int main(void)
{
	uint64_t seed = rng_seed_from_env(0x415);
	struct rng r = { seed };

	tap_diag("seed 0x%llx (set UZSWAP_TEST_SEED to repeat)", (unsigned long long)seed);
	test_buckets_cover_every_value_once();
	test_bucket_width_is_an_eighth();
	test_quantiles_are_close_to_exact(&r);
	test_merge_adds();
	test_threads_lose_nothing();
	return tap_done();
}
