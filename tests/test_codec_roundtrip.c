/* SPDX-License-Identifier: MIT */
/*
 * tests/test_codec_roundtrip.c - every sampled page of the real memory dumps
 * comes back byte for byte through every codec.
 *
 * The sample is every 12th page of each shared page file (5,520 of redis,
 * 7,396 of python), spread over the whole dumped address space.  Pages are
 * compressed by one context and decompressed by another, as a reclaim
 * thread and a fault thread would.  max_len is a whole page, so that every
 * page the codec can shrink at all goes through it, not the raw way.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/pagefile.h"
#include "compress/codec.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define SAMPLE_STRIDE 12
#define MIN_SAMPLE 5000

struct config {
	const char *codec;
	int level;
};

static const struct config configs[] = {
	{ "lz4", 0 }, { "lz4", 8 }, { "lz4hc", 9 }, { "zstd", 1 }, { "zstd", 3 },
};

struct outcome {
	size_t mismatches, errors, raw;
	size_t first_bad;
	int first_err;
	unsigned long long bytes;
};

static int round_trip(struct uzc_ctx *cctx, struct uzc_ctx *dctx, const unsigned char *page,
		      unsigned char *buf, unsigned char *back, struct outcome *o)
{
	ssize_t len = uzc_compress(cctx, page, buf, UZC_PAGE_SIZE);
	enum uzc_codec_id id = uzc_ctx_spec(cctx).id;

	if (len < 0)
		return (int)len;
	if (len == UZC_INCOMPRESSIBLE) {
		o->raw++;
		memcpy(buf, page, UZC_PAGE_SIZE);
		len = UZC_PAGE_SIZE;
		id = UZC_CODEC_RAW;
	}
	o->bytes += (unsigned long long)len;
	return uzc_decompress(dctx, id, buf, (size_t)len, back);
}

static void run_config(const char *file, const struct config *c, const unsigned char *pages,
		       size_t n)
{
	struct uzc_ctx *cctx = NULL, *dctx = NULL;
	unsigned char buf[UZC_PAGE_SIZE], back[UZC_PAGE_SIZE];
	struct outcome o = { 0 };
	struct uzc_spec spec;
	int err;

	err = uzc_spec_parse(c->codec, c->level, &spec);
	if (!err)
		err = uzc_ctx_new(&spec, UZC_PAGE_SIZE, &cctx);
	if (!err)
		err = uzc_ctx_new(&spec, UZC_PAGE_SIZE, &dctx);
	for (size_t i = 0; !err && i < n; i++) {
		const unsigned char *page = pages + i * UZC_PAGE_SIZE;
		int e = round_trip(cctx, dctx, page, buf, back, &o);

		if (e && !o.errors++) {
			o.first_err = e;
			o.first_bad = i;
		} else if (!e && memcmp(page, back, UZC_PAGE_SIZE) && !o.mismatches++) {
			o.first_bad = i;
		}
	}
	ok(!err && o.errors == 0 && o.mismatches == 0,
	   "%s: %s level %d round-trips %zu pages byte for byte", file, c->codec, c->level, n);
	if (err || o.errors || o.mismatches)
		tap_diag(
			"expected 0 errors and 0 mismatches; saw setup %s, %zu errors (first: %s), "
			"%zu mismatches; first bad sample page %zu",
			uzc_strerror(err), o.errors, uzc_strerror(o.first_err), o.mismatches,
			o.first_bad);
	else
		tap_diag("%s %s-%d: ratio %.2f, %zu stored raw", file, c->codec, c->level,
			 (double)n * UZC_PAGE_SIZE / (double)o.bytes, o.raw);
	uzc_ctx_free(cctx);
	uzc_ctx_free(dctx);
}

static void run_file(const char *name)
{
	unsigned char *pages = NULL;
	char path[4096];
	size_t n = 0;
	int err = testdata_path(name, path, sizeof(path));

	if (!err)
		err = pf_load(path, SAMPLE_STRIDE, 0, &pages, &n);
	if (!ok(!err && n >= MIN_SAMPLE, "%s: a sample of at least %d pages loads (%zu: %s)", name,
		MIN_SAMPLE, n, err ? strerror(-err) : "ok")) {
		free(pages);
		return;
	}
	for (size_t i = 0; i < sizeof(configs) / sizeof(configs[0]); i++)
		run_config(name, &configs[i], pages, n);
	free(pages);
}

int main(void)
{
	static const char *const files[] = TESTDATA_FILES;
	char path[4096];

	if (testdata_path(files[0], path, sizeof(path)))
		tap_skip_all("no page data at %s (configure --with-pages-dir)", path);
	for (size_t i = 0; i < TESTDATA_NFILES; i++)
		run_file(files[i]);
	return tap_done();
}
