/* SPDX-License-Identifier: MIT */
/*
 * bench/touchbench.c - an ordinary program that touches its memory: the
 * workload bench/vs-kernel runs under the kernel's zram and zswap and under
 * uzswap, unchanged.
 *
 *   touchbench --size MIB [--pattern uniform|zipf|seq] [--skew S]
 *              [--writes PCT] [--accesses N | --seconds T] [--seed N]
 *              [--threshold-us U] [--pages FILE]
 *
 * It uses no uzswap API: it maps --size MiB of private anonymous memory,
 * fills it with the real pages of FILE (cycled; default the redis pages of
 * shared/data/pages), then makes N accesses (or as many as fit in T
 * seconds), one 8-byte word per access: a read, or, for PCT percent of
 * them, an increment.  Page and word come from a seeded generator:
 *   uniform  every page alike;
 *   zipf     rank k with probability 1/k^S over the pages in a seeded
 *            random order, so that the hot pages are scattered;
 *   seq      pages in address order, wrapping; the word moves each round.
 * Each access is timed with CLOCK_MONOTONIC (about 36 ns a call here);
 * one that takes longer than U µs (default 2: a resident word is read in
 * well under one) counts as a fault, and the latencies of all faults are
 * kept, so the percentiles are exact.  The checksum hashes the whole
 * memory at the end: the same seed and count give the same checksum under
 * any swap, and a different one means a lost or stale page.
 *
 * Output: one line of key=value pairs (see report()).  Exit status 0, 1 on
 * an error, 2 for bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench/pagefile.h"
#include "tests/rng.h"

#define PG 4096
#define WORDS (PG / 8)
#define MIB (1024 * 1024)
#define DEFAULT_ACCESSES 1000000
/* Time-bounded runs look at the clock once per this many accesses. */
#define CLOCK_STRIDE 1024

enum pattern {
	P_UNIFORM,
	P_ZIPF,
	P_SEQ
};

struct opts {
	uint64_t size_mib;
	enum pattern pattern;
	double skew;
	unsigned int writes_pct;
	uint64_t accesses; /* 0 with seconds */
	double seconds;
	uint64_t seed;
	double threshold_us;
	const char *pages;
};

/* The run: memory, generator, and what was measured. */
struct run {
	const struct opts *o;
	uint64_t *mem;
	size_t npages;
	struct rng rng;
	double *cdf;	/* zipf: cumulative weights by rank */
	uint32_t *perm; /* zipf: rank -> page */
	uint64_t seq_next;
	uint32_t *lat; /* fault latencies, ns */
	size_t nlat, cap;
	uint64_t done;
	double fill_s, run_s;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the memory ---- */

static int fill(struct run *r)
{
	struct pf_reader *pf = NULL;
	double t0 = now_s();
	int ret = 0;

	for (size_t i = 0; i < r->npages; i++) {
		unsigned char *page = (unsigned char *)(r->mem + i * WORDS);

		if (!pf && (ret = pf_open(r->o->pages, &pf)) < 0)
			break;
		ret = pf_next(pf, page);
		if (ret == 0) {
			/* The end of the file: cycle. */
			pf_close(pf);
			pf = NULL;
			i--;
			continue;
		}
		if (ret < 0)
			break;
		ret = 0;
	}
	if (pf)
		pf_close(pf);
	r->fill_s = now_s() - t0;
	if (ret < 0)
		fprintf(stderr, "touchbench: %s: %s\n", r->o->pages, strerror(-ret));
	return ret;
}

static uint64_t checksum(const struct run *r)
{
	uint64_t h = 0x9e3779b97f4a7c15u;

	for (size_t i = 0; i < r->npages * WORDS; i++)
		h = (h ^ r->mem[i]) * 0x100000001b3u + (h >> 29);
	return h;
}

/* ---- the access pattern ---- */

static int zipf_init(struct run *r)
{
	double sum = 0;

	r->cdf = malloc(r->npages * sizeof(*r->cdf));
	r->perm = malloc(r->npages * sizeof(*r->perm));
	if (!r->cdf || !r->perm)
		return -ENOMEM;
	for (size_t k = 0; k < r->npages; k++) {
		sum += pow((double)(k + 1), -r->o->skew);
		r->cdf[k] = sum;
		r->perm[k] = (uint32_t)k;
	}
	for (size_t k = r->npages - 1; k > 0; k--) {
		size_t j = (size_t)(rng_next(&r->rng) % (k + 1));
		uint32_t t = r->perm[k];

		r->perm[k] = r->perm[j];
		r->perm[j] = t;
	}
	return 0;
}

static size_t zipf_page(struct run *r, uint64_t rnd)
{
	double u = (double)(rnd >> 11) * 0x1.0p-53 * r->cdf[r->npages - 1];
	size_t lo = 0, hi = r->npages - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (r->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return r->perm[lo];
}

/* The word of the next access, and whether it is a write. */
static uint64_t *next_word(struct run *r, bool *write)
{
	uint64_t rnd = rng_next(&r->rng), rnd2 = rng_next(&r->rng);
	size_t page;

	switch (r->o->pattern) {
	case P_ZIPF:
		page = zipf_page(r, rnd);
		break;
	case P_SEQ:
		page = (size_t)(r->seq_next++ % r->npages);
		break;
	default:
		page = (size_t)(rnd % r->npages);
		break;
	}
	*write = rnd2 % 100 < r->o->writes_pct;
	return r->mem + page * WORDS + (rnd2 >> 32) % WORDS;
}

/* ---- the timed accesses ---- */

static int record(struct run *r, uint64_t ns)
{
	if (r->nlat == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 1 << 16;
		uint32_t *lat = realloc(r->lat, cap * sizeof(*lat));

		if (!lat)
			return -ENOMEM;
		r->lat = lat;
		r->cap = cap;
	}
	r->lat[r->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	return 0;
}

static int access_loop(struct run *r)
{
	uint64_t threshold = (uint64_t)(r->o->threshold_us * 1000.0);
	double t0 = now_s(), deadline = t0 + r->o->seconds;

	for (uint64_t i = 0; r->o->accesses ? i < r->o->accesses : true; i++) {
		bool write;
		volatile uint64_t *w = next_word(r, &write);
		uint64_t a = now_ns(), b;

		if (write)
			(*w)++;
		else
			(void)*w;
		b = now_ns();
		if (b - a > threshold && record(r, b - a) < 0)
			return -ENOMEM;
		r->done = i + 1;
		if (!r->o->accesses && i % CLOCK_STRIDE == 0 && now_s() >= deadline)
			break;
	}
	r->run_s = now_s() - t0;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_us(const struct run *r, double q)
{
	size_t i;

	if (!r->nlat)
		return 0;
	i = (size_t)(q * (double)(r->nlat - 1) + 0.5);
	return r->lat[i] / 1000.0;
}

static const char *pattern_name(enum pattern p)
{
	return p == P_ZIPF ? "zipf" : p == P_SEQ ? "seq" : "uniform";
}

static void report(struct run *r, double wall_s, uint64_t sum)
{
	qsort(r->lat, r->nlat, sizeof(r->lat[0]), cmp_u32);
	printf("pattern=%s skew=%.2f size_mib=%" PRIu64 " pages=%zu writes_pct=%u seed=%" PRIu64
	       " accesses=%" PRIu64 " seconds=%.3f accesses_per_s=%.0f faults=%zu"
	       " fault_p50_us=%.2f fault_p90_us=%.2f fault_p99_us=%.2f fault_p999_us=%.2f"
	       " fill_s=%.2f wall_s=%.2f checksum=%016" PRIx64 "\n",
	       pattern_name(r->o->pattern), r->o->pattern == P_ZIPF ? r->o->skew : 0.0,
	       r->o->size_mib, r->npages, r->o->writes_pct, r->o->seed, r->done, r->run_s,
	       r->run_s > 0 ? (double)r->done / r->run_s : 0.0, r->nlat, pct_us(r, 0.5),
	       pct_us(r, 0.9), pct_us(r, 0.99), pct_us(r, 0.999), r->fill_s, wall_s, sum);
}

/* ---- the command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: touchbench --size MIB [--pattern uniform|zipf|seq] [--skew S]\n"
		"                  [--writes PCT] [--accesses N | --seconds T] [--seed N]\n"
		"                  [--threshold-us U] [--pages FILE]\n"
		"  --size MIB        anonymous memory to map and fill (required)\n"
		"  --pattern P       uniform (default), zipf or seq\n"
		"  --skew S          zipf exponent (default 0.99)\n"
		"  --writes PCT      percent of accesses that write (default 0)\n"
		"  --accesses N      accesses to make (default 1000000)\n"
		"  --seconds T       make accesses for T seconds instead\n"
		"  --seed N          generator seed (default 1)\n"
		"  --threshold-us U  an access slower than this is a fault (default 2)\n"
		"  --pages FILE      page file to fill with (default: $UZSWAP_PAGES_DIR\n"
		"                    or %s, redis.pages.zst)\n",
		UZ_PAGES_DIR);
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return !errno && end != s && !*end && s[0] != '-';
}

static bool parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return !errno && end != s && !*end && *out >= 0;
}

static bool parse_pattern(const char *s, enum pattern *p)
{
	if (!strcmp(s, "uniform"))
		*p = P_UNIFORM;
	else if (!strcmp(s, "zipf"))
		*p = P_ZIPF;
	else if (!strcmp(s, "seq"))
		*p = P_SEQ;
	else
		return false;
	return true;
}

static bool parse_one(struct opts *o, int c, const char *arg)
{
	uint64_t v;

	switch (c) {
	case 's':
		return parse_u64(arg, &o->size_mib) && o->size_mib > 0;
	case 'p':
		return parse_pattern(arg, &o->pattern);
	case 'k':
		return parse_double(arg, &o->skew);
	case 'w':
		if (!parse_u64(arg, &v) || v > 100)
			return false;
		o->writes_pct = (unsigned int)v;
		return true;
	case 'a':
		return parse_u64(arg, &o->accesses) && o->accesses > 0;
	case 't':
		o->accesses = 0;
		return parse_double(arg, &o->seconds) && o->seconds > 0;
	case 'r':
		return parse_u64(arg, &o->seed);
	case 'T':
		return parse_double(arg, &o->threshold_us);
	case 'f':
		o->pages = arg;
		return true;
	}
	return false;
}

static void parse_opts(int argc, char **argv, struct opts *o, char *pages_buf, size_t len)
{
	static const struct option longopts[] = {
		{ "size", required_argument, NULL, 's' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "skew", required_argument, NULL, 'k' },
		{ "writes", required_argument, NULL, 'w' },
		{ "accesses", required_argument, NULL, 'a' },
		{ "seconds", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 'r' },
		{ "threshold-us", required_argument, NULL, 'T' },
		{ "pages", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("UZSWAP_PAGES_DIR");
	int c, idx = 0;

	*o = (struct opts){ .pattern = P_UNIFORM,
			    .skew = 0.99,
			    .accesses = DEFAULT_ACCESSES,
			    .seed = 1,
			    .threshold_us = 2.0 };
	while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || !parse_one(o, c, optarg)) {
			if (c != '?')
				fprintf(stderr, "touchbench: bad value for --%s: %s\n",
					longopts[idx].name, optarg);
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc || !o->size_mib) {
		usage(stderr);
		exit(2);
	}
	if (!o->pages) {
		snprintf(pages_buf, len, "%s/redis.pages.zst", dir ? dir : UZ_PAGES_DIR);
		o->pages = pages_buf;
	}
}

static int run_all(struct run *r)
{
	double t0 = now_s();
	int ret;

	ret = fill(r);
	if (ret == 0 && r->o->pattern == P_ZIPF)
		ret = zipf_init(r);
	if (ret == 0)
		ret = access_loop(r);
	if (ret == 0)
		report(r, now_s() - t0, checksum(r));
	return ret;
}

int main(int argc, char **argv)
{
	char pages_buf[4096];
	struct opts o;
	struct run r = { .o = &o };
	int ret;

	parse_opts(argc, argv, &o, pages_buf, sizeof(pages_buf));
	r.npages = (size_t)(o.size_mib * MIB / PG);
	r.rng.state = o.seed * 0x9e3779b97f4a7c15u + 1;
	/* An ordinary program's memory: private, anonymous, touched page by page. */
	r.mem = mmap(NULL, r.npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	if (r.mem == MAP_FAILED) {
		fprintf(stderr, "touchbench: mmap of %" PRIu64 " MiB: %s\n", o.size_mib,
			strerror(errno));
		return 1;
	}
	ret = run_all(&r);
	if (ret < 0 && ret != -EBADMSG && ret != -ENOENT)
		fprintf(stderr, "touchbench: %s\n", strerror(-ret));
	free(r.lat);
	free(r.cdf);
	free(r.perm);
	munmap(r.mem, r.npages * PG);
	return ret < 0 ? 1 : 0;
}
