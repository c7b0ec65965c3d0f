/* SPDX-License-Identifier: MIT */
/*
 * bench/codecbench.c - compress and decompress every page of a page file,
 * each page on its own, as the daemon does, and report ratio and speed.
 *
 *   codecbench FILE.pages[.zst] [--codec NAME] [--level N] [--max-len N]
 *
 * Without --codec it runs lz4, zstd-1 and zstd-3.  Per codec, all pages are
 * first compressed (same-filled pages are detected and skipped, as the
 * daemon keeps them as a word), then all compressed pages are decompressed
 * and compared with the original, so a decompression does not find its page
 * still in the cache from the compression just before.  Each call is timed
 * on its own with CLOCK_MONOTONIC (about 20 ns of overhead on a 2-10 us
 * call).
 *
 * ratio = pages * 4096 / (sum of compressed sizes, same-filled pages
 * counting 0 and incompressible ones 4096).  comp_MBps and decomp_MBps are
 * 10^6 bytes of uncompressed page per second of codec time, over the pages
 * that went through the codec.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/pagefile.h"
#include "compress/codec.h"

struct bench_result {
	size_t pages, same_filled, incompressible, compressed;
	unsigned long long stored_bytes;
	double *comp_ns, *decomp_ns; /* one per page that went through the codec */
	double comp_total, decomp_total;
};

struct packed {
	unsigned char *buf; /* compressed pages back to back */
	size_t *off;	    /* page i at buf + off[i], length len[i]; len 0: not compressed */
	unsigned *len;
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int compress_all(struct uzc_ctx *ctx, const unsigned char *pages, size_t n,
			struct packed *pk, struct bench_result *res)
{
	size_t cursor = 0, timed = 0;
	uint64_t word;

	for (size_t i = 0; i < n; i++) {
		const unsigned char *page = pages + i * PF_PAGE_SIZE;
		double t0;
		ssize_t len;

		pk->len[i] = 0;
		if (uzc_page_same_filled(page, &word)) {
			res->same_filled++;
			continue;
		}
		t0 = now_ns();
		len = uzc_compress(ctx, page, pk->buf + cursor, uzc_ctx_max_len(ctx));
		res->comp_ns[timed] = now_ns() - t0;
		res->comp_total += res->comp_ns[timed++];
		if (len < 0)
			return (int)len;
		if (len == UZC_INCOMPRESSIBLE) {
			res->incompressible++;
			res->stored_bytes += PF_PAGE_SIZE;
			continue;
		}
		pk->off[i] = cursor;
		pk->len[i] = (unsigned)len;
		cursor += (size_t)len;
		res->stored_bytes += (unsigned long long)len;
		res->compressed++;
	}
	return 0;
}

static int decompress_all(struct uzc_ctx *ctx, const unsigned char *pages, size_t n,
			  const struct packed *pk, struct bench_result *res)
{
	unsigned char out[PF_PAGE_SIZE];
	enum uzc_codec_id id = uzc_ctx_spec(ctx).id;
	size_t timed = 0;

	for (size_t i = 0; i < n; i++) {
		double t0;
		int err;

		if (!pk->len[i])
			continue;
		t0 = now_ns();
		err = uzc_decompress(ctx, id, pk->buf + pk->off[i], pk->len[i], out);
		res->decomp_ns[timed] = now_ns() - t0;
		res->decomp_total += res->decomp_ns[timed++];
		if (err)
			return err;
		if (memcmp(out, pages + i * PF_PAGE_SIZE, PF_PAGE_SIZE)) {
			fprintf(stderr, "codecbench: page %zu does not round-trip\n", i);
			return -EBADMSG;
		}
	}
	return 0;
}

static void print_result(const struct uzc_spec *spec, struct bench_result *r)
{
	size_t ncomp = r->compressed + r->incompressible;
	double ratio = r->stored_bytes ? (double)r->pages * PF_PAGE_SIZE / (double)r->stored_bytes :
					 0;

	printf("codec=%s level=%d pages=%zu same_filled=%zu incompressible=%zu ratio=%.2f "
	       "comp_us_p50=%.2f comp_us_mean=%.2f decomp_us_p50=%.2f decomp_us_mean=%.2f "
	       "comp_MBps=%.0f decomp_MBps=%.0f\n",
	       uzc_codec_name(spec->id), spec->level, r->pages, r->same_filled, r->incompressible,
	       ratio, median(r->comp_ns, ncomp) / 1e3,
	       ncomp ? r->comp_total / (double)ncomp / 1e3 : 0,
	       median(r->decomp_ns, r->compressed) / 1e3,
	       r->compressed ? r->decomp_total / (double)r->compressed / 1e3 : 0,
	       r->comp_total ? (double)ncomp * PF_PAGE_SIZE / r->comp_total * 1e3 : 0,
	       r->decomp_total ? (double)r->compressed * PF_PAGE_SIZE / r->decomp_total * 1e3 : 0);
	fflush(stdout);
}

static int run_one(const struct uzc_spec *spec, size_t max_len, const unsigned char *pages,
		   size_t n)
{
	struct bench_result res = { .pages = n };
	struct packed pk = { 0 };
	struct uzc_ctx *ctx = NULL;
	int err = uzc_ctx_new(spec, max_len, &ctx);

	if (err)
		goto out;
	err = -ENOMEM;
	pk.buf = malloc(n * max_len);
	pk.off = calloc(n, sizeof(*pk.off));
	pk.len = calloc(n, sizeof(*pk.len));
	res.comp_ns = calloc(n, sizeof(double));
	res.decomp_ns = calloc(n, sizeof(double));
	if (!pk.buf || !pk.off || !pk.len || !res.comp_ns || !res.decomp_ns)
		goto out;
	err = compress_all(ctx, pages, n, &pk, &res);
	if (!err)
		err = decompress_all(ctx, pages, n, &pk, &res);
	if (!err)
		print_result(spec, &res);
out:
	if (err)
		fprintf(stderr, "codecbench: %s level %d: %s\n", uzc_codec_name(spec->id),
			spec->level, uzc_strerror(err));
	free(res.comp_ns);
	free(res.decomp_ns);
	free(pk.buf);
	free(pk.off);
	free(pk.len);
	uzc_ctx_free(ctx);
	return err;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: codecbench FILE.pages[.zst] [--codec lz4|lz4hc|zstd] [--level N] "
		   "[--max-len BYTES]\n"
		   "Without --codec: lz4, zstd level 1 and zstd level 3.\n");
}

struct options {
	const char *file, *codec;
	int level;
	bool level_given;
	size_t max_len;
};

/* A whole decimal number within [min, max], else -EINVAL. */
static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "codec", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "max-len", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long v;
	int c;

	while ((c = getopt_long(argc, argv, "c:l:m:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->codec = optarg;
			break;
		case 'l':
			if (parse_long(optarg, INT_MIN, INT_MAX, &v))
				return -EINVAL;
			o->level = (int)v;
			o->level_given = true;
			break;
		case 'm':
			if (parse_long(optarg, 1, UZC_PAGE_SIZE, &v))
				return -EINVAL;
			o->max_len = (size_t)v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	/* A level means nothing without its codec: refuse rather than ignore it. */
	if (optind != argc - 1 || (o->level_given && !o->codec))
		return -EINVAL;
	o->file = argv[optind];
	return 0;
}

static int run_specs(const struct options *o, const unsigned char *pages, size_t n)
{
	struct uzc_spec specs[3];
	size_t nspecs = 0;
	int err = 0;

	if (o->codec) {
		err = uzc_spec_parse(o->codec, o->level, &specs[nspecs++]);
	} else {
		err = uzc_spec_parse("lz4", 0, &specs[nspecs++]);
		if (!err)
			err = uzc_spec_parse("zstd", 1, &specs[nspecs++]);
		if (!err)
			err = uzc_spec_parse("zstd", 3, &specs[nspecs++]);
	}
	if (err) {
		fprintf(stderr, "codecbench: %s level %d: %s\n", o->codec ? o->codec : "default",
			o->level, uzc_strerror(err));
		return err;
	}
	for (size_t i = 0; i < nspecs && !err; i++)
		err = run_one(&specs[i], o->max_len, pages, n);
	return err;
}

int main(int argc, char **argv)
{
	struct options o = { .max_len = UZC_DEFAULT_MAX_LEN };
	unsigned char *pages = NULL;
	size_t n = 0;
	int err;

	if (parse_args(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	err = pf_load(o.file, 1, 0, &pages, &n);
	if (err) {
		fprintf(stderr, "codecbench: %s: %s\n", o.file,
			err == -EBADMSG ? "not a page file (torn page or corrupt zstd)" :
					  strerror(-err));
		return 1;
	}
	err = run_specs(&o, pages, n);
	free(pages);
	return err ? 1 : 0;
}
