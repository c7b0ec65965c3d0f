/* SPDX-License-Identifier: MIT */
/*
 * tests/test_codec_api.c - codec lookup, levels, contexts, the
 * incompressible verdict, max_len, raw pages, and error messages.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <zstd.h>

#include "compress/codec.h"
#include "tests/rng.h"
#include "tests/tap.h"

static void fill_random(struct rng *r, unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)rng_next(r);
}

/* A page of repetitive text: compresses to a few hundred bytes with any codec. */
static void fill_text(unsigned char *p)
{
	static const char words[] = "swap page fault compressed pool zsmalloc lz4 zstd ";

	for (size_t i = 0; i < UZC_PAGE_SIZE; i++)
		p[i] = (unsigned char)words[(i * 7 + i / 64) % (sizeof(words) - 1)];
}

static struct uzc_ctx *ctx_for(const char *name, int level, size_t max_len)
{
	struct uzc_spec spec;
	struct uzc_ctx *ctx = NULL;

	if (uzc_spec_parse(name, level, &spec) || uzc_ctx_new(&spec, max_len, &ctx))
		return NULL;
	return ctx;
}

static void test_names_resolve_to_stable_ids_and_defaults(void)
{
	struct uzc_spec s;

	ok(uzc_spec_parse("lz4", 0, &s) == 0 && s.id == UZC_CODEC_LZ4 && s.level == 0,
	   "lz4 with level 0 resolves to id 1, acceleration default");
	ok(uzc_spec_parse("lz4hc", 0, &s) == 0 && s.id == UZC_CODEC_LZ4HC && s.level == 9,
	   "lz4hc with level 0 resolves to its default level 9");
	ok(uzc_spec_parse("zstd", 0, &s) == 0 && s.id == UZC_CODEC_ZSTD && s.level == 3,
	   "zstd with level 0 resolves to its default level 3");
	ok(uzc_spec_parse("zstd", -5, &s) == 0 && s.level == -5,
	   "zstd accepts a negative (fast) level");
	ok(strcmp(uzc_codec_name(UZC_CODEC_RAW), "raw") == 0 &&
		   strcmp(uzc_codec_name(UZC_CODEC_ZSTD), "zstd") == 0 &&
		   uzc_codec_name(UZC_CODEC_COUNT) == NULL,
	   "codec ids name themselves and an unknown id has no name");
}

static void test_bad_names_and_levels_are_refused(void)
{
	struct uzc_spec s;

	ok(uzc_spec_parse("lzo", 0, &s) == -ENOENT, "an unknown codec name gives -ENOENT");
	ok(uzc_spec_parse("raw", 0, &s) == -ENOENT, "raw cannot be chosen for compression");
	ok(uzc_spec_parse(NULL, 0, &s) == -ENOENT, "a missing codec name gives -ENOENT");
	ok(uzc_spec_parse("lz4hc", 13, &s) == -ERANGE, "lz4hc level 13 gives -ERANGE");
	ok(uzc_spec_parse("zstd", 23, &s) == -ERANGE, "zstd level 23 gives -ERANGE");
	ok(uzc_spec_parse("lz4", -1, &s) == -ERANGE, "lz4 acceleration -1 gives -ERANGE");
}

static void test_zstd_level_range_matches_the_library(void)
{
	int min = 0, max = 0, def = 0;
	int err = uzc_codec_levels(UZC_CODEC_ZSTD, &min, &max, &def);

	ok(err == 0 && min == ZSTD_minCLevel() && max == ZSTD_maxCLevel() &&
		   def == ZSTD_defaultCLevel(),
	   "zstd level range %d..%d default %d matches libzstd %d..%d default %d", min, max, def,
	   ZSTD_minCLevel(), ZSTD_maxCLevel(), ZSTD_defaultCLevel());
	ok(uzc_codec_levels(UZC_CODEC_RAW, &min, &max, &def) == -ENOENT, "raw has no levels");
}

static void test_contexts_refuse_bad_max_len(void)
{
	struct uzc_spec s = { UZC_CODEC_LZ4, 0 };
	struct uzc_ctx *ctx = NULL;

	ok(uzc_ctx_new(&s, 0, &ctx) == -EINVAL, "max_len 0 gives -EINVAL");
	ok(uzc_ctx_new(&s, UZC_PAGE_SIZE + 1, &ctx) == -EINVAL, "max_len 4097 gives -EINVAL");
	s.level = -3;
	ok(uzc_ctx_new(&s, UZC_DEFAULT_MAX_LEN, &ctx) == -EINVAL,
	   "a spec with an out-of-range level gives -EINVAL");
}

static void test_random_pages_are_incompressible(struct rng *r)
{
	static const char *const names[] = { "lz4", "lz4hc", "zstd" };
	unsigned char page[UZC_PAGE_SIZE], dst[UZC_PAGE_SIZE];

	for (size_t i = 0; i < 3; i++) {
		struct uzc_ctx *ctx = ctx_for(names[i], 0, UZC_DEFAULT_MAX_LEN);
		int verdicts = 0;

		if (!ctx) {
			ok(0, "%s: a context for the incompressible check is made", names[i]);
			continue;
		}
		for (int n = 0; n < 50; n++) {
			fill_random(r, page, sizeof(page));
			verdicts += uzc_compress(ctx, page, dst, sizeof(dst)) == UZC_INCOMPRESSIBLE;
		}
		ok(ctx && verdicts == 50, "%s: 50 random pages are all incompressible (%d were)",
		   names[i], verdicts);
		uzc_ctx_free(ctx);
	}
}

/* dst is placed right before an inaccessible page: any write past max_len faults. */
static void test_output_never_exceeds_max_len(void)
{
	static const char *const names[] = { "lz4", "lz4hc", "zstd" };
	long psz = sysconf(_SC_PAGESIZE);
	unsigned char page[UZC_PAGE_SIZE];
	unsigned char *area = mmap(NULL, 2 * psz, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (area == MAP_FAILED || mprotect(area + psz, psz, PROT_NONE)) {
		ok(0, "guard page for the max_len test: %s", strerror(errno));
		return;
	}
	fill_text(page);
	for (size_t i = 0; i < 3; i++) {
		struct uzc_ctx *ctx = ctx_for(names[i], 0, 32);
		ssize_t len = ctx ? uzc_compress(ctx, page, area + psz - 32, 32) : -1;

		ok(len == UZC_INCOMPRESSIBLE,
		   "%s: max_len 32 makes a text page incompressible without writing past 32 bytes (got %zd)",
		   names[i], len);
		uzc_ctx_free(ctx);
	}
	munmap(area, 2 * psz);
}

static void test_text_page_compresses_and_decompresses(void)
{
	static const char *const names[] = { "lz4", "lz4hc", "zstd" };
	unsigned char page[UZC_PAGE_SIZE], dst[UZC_PAGE_SIZE], back[UZC_PAGE_SIZE];

	fill_text(page);
	for (size_t i = 0; i < 3; i++) {
		struct uzc_ctx *ctx = ctx_for(names[i], 0, UZC_DEFAULT_MAX_LEN);
		ssize_t len = ctx ? uzc_compress(ctx, page, dst, sizeof(dst)) : -1;
		int err = len > 0 ? uzc_decompress(ctx, uzc_ctx_spec(ctx).id, dst, (size_t)len,
						   back) :
				    -1;

		ok(len > 0 && len < 1024 && err == 0 && memcmp(page, back, sizeof(page)) == 0,
		   "%s: a text page compresses to %zd bytes and comes back identical", names[i],
		   len);
		uzc_ctx_free(ctx);
	}
}

static void test_small_output_buffer_is_refused(void)
{
	struct uzc_ctx *ctx = ctx_for("lz4", 0, UZC_DEFAULT_MAX_LEN);
	unsigned char page[UZC_PAGE_SIZE], dst[UZC_PAGE_SIZE];

	fill_text(page);
	ok(ctx && uzc_compress(ctx, page, dst, UZC_DEFAULT_MAX_LEN - 1) == -EINVAL,
	   "an output buffer smaller than max_len gives -EINVAL");
	uzc_ctx_free(ctx);
}

/* After a codec change, pages stored with the old codec must still load. */
static void test_one_context_decompresses_every_codec(void)
{
	struct uzc_ctx *lz4 = ctx_for("lz4", 0, UZC_DEFAULT_MAX_LEN);
	struct uzc_ctx *zstd = ctx_for("zstd", 1, UZC_DEFAULT_MAX_LEN);
	struct uzc_ctx *hc = ctx_for("lz4hc", 4, UZC_DEFAULT_MAX_LEN);
	unsigned char page[UZC_PAGE_SIZE], z[UZC_PAGE_SIZE], h[UZC_PAGE_SIZE];
	unsigned char back1[UZC_PAGE_SIZE], back2[UZC_PAGE_SIZE];
	ssize_t zlen, hlen;

	fill_text(page);
	zlen = zstd ? uzc_compress(zstd, page, z, sizeof(z)) : -1;
	hlen = hc ? uzc_compress(hc, page, h, sizeof(h)) : -1;
	ok(lz4 && zlen > 0 && hlen > 0 &&
		   uzc_decompress(lz4, UZC_CODEC_ZSTD, z, (size_t)zlen, back1) == 0 &&
		   uzc_decompress(lz4, UZC_CODEC_LZ4HC, h, (size_t)hlen, back2) == 0 &&
		   memcmp(back1, page, sizeof(page)) == 0 && memcmp(back2, page, sizeof(page)) == 0,
	   "an lz4 context decompresses zstd and lz4hc pages");
	uzc_ctx_free(lz4);
	uzc_ctx_free(zstd);
	uzc_ctx_free(hc);
}

static void test_raw_pages_copy_exactly_one_page(struct rng *r)
{
	struct uzc_ctx *ctx = ctx_for("lz4", 0, UZC_DEFAULT_MAX_LEN);
	unsigned char page[UZC_PAGE_SIZE + 1], back[UZC_PAGE_SIZE];

	fill_random(r, page, sizeof(page));
	ok(ctx && uzc_decompress(ctx, UZC_CODEC_RAW, page, UZC_PAGE_SIZE, back) == 0 &&
		   memcmp(page, back, UZC_PAGE_SIZE) == 0,
	   "a raw page of 4096 bytes loads as itself");
	ok(ctx && uzc_decompress(ctx, UZC_CODEC_RAW, page, UZC_PAGE_SIZE - 1, back) == -EBADMSG &&
		   uzc_decompress(ctx, UZC_CODEC_RAW, page, UZC_PAGE_SIZE + 1, back) == -EBADMSG,
	   "a raw page of 4095 or 4097 bytes gives -EBADMSG");
	ok(ctx && uzc_decompress(ctx, UZC_CODEC_COUNT, page, 100, back) == -EINVAL,
	   "an unknown codec id gives -EINVAL");
	uzc_ctx_free(ctx);
}

/* A reused context must not carry state from one page into the next. */
static void test_reused_context_is_deterministic(struct rng *r)
{
	static const char *const names[] = { "lz4", "lz4hc", "zstd" };
	unsigned char a[UZC_PAGE_SIZE], b[UZC_PAGE_SIZE];
	unsigned char first[UZC_PAGE_SIZE], again[UZC_PAGE_SIZE], noise[UZC_PAGE_SIZE];

	fill_text(a);
	for (size_t i = 0; i < 3; i++) {
		struct uzc_ctx *ctx = ctx_for(names[i], 0, UZC_DEFAULT_MAX_LEN);
		ssize_t l1 = ctx ? uzc_compress(ctx, a, first, sizeof(first)) : -1, l2;

		for (int n = 0; n < 20; n++) {
			fill_random(r, b, sizeof(b));
			memcpy(b, a, UZC_PAGE_SIZE / 2);
			if (ctx)
				uzc_compress(ctx, b, noise, sizeof(noise));
		}
		l2 = ctx ? uzc_compress(ctx, a, again, sizeof(again)) : -2;
		ok(l1 > 0 && l1 == l2 && memcmp(first, again, (size_t)l1) == 0,
		   "%s: the same page compresses to the same bytes after other pages", names[i]);
		uzc_ctx_free(ctx);
	}
}

static void test_errors_have_readable_messages(void)
{
	ok(strstr(uzc_strerror(-EBADMSG), "corrupt") != NULL,
	   "-EBADMSG reads as corrupt compressed page");
	ok(strstr(uzc_strerror(-ENOENT), "unknown codec") != NULL,
	   "-ENOENT reads as unknown codec");
	ok(strstr(uzc_strerror(-ERANGE), "level") != NULL, "-ERANGE names the level");
	ok(strlen(uzc_strerror(-EPERM)) > 0, "other errno values fall back to strerror");
}

int main(void)
{
	uint64_t seed = rng_seed_from_env(0x75a5c0dec);
	struct rng r = { seed };

	tap_diag("seed 0x%llx (set UZSWAP_TEST_SEED to repeat)", (unsigned long long)seed);
	test_names_resolve_to_stable_ids_and_defaults();
	test_bad_names_and_levels_are_refused();
	test_zstd_level_range_matches_the_library();
	test_contexts_refuse_bad_max_len();
	test_random_pages_are_incompressible(&r);
	test_output_never_exceeds_max_len();
	test_text_page_compresses_and_decompresses();
	test_small_output_buffer_is_refused();
	test_one_context_decompresses_every_codec();
	test_raw_pages_copy_exactly_one_page(&r);
	test_reused_context_is_deterministic(&r);
	test_errors_have_readable_messages();
	return tap_done();
}
