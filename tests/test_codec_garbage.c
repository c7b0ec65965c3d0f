/* SPDX-License-Identifier: MIT */
/*
 * tests/test_codec_garbage.c - decompression is strict: corrupt input gives
 * an error or exactly one page, and never touches memory outside its input
 * and its output page.
 *
 * liblz4 and libzstd are not built with the sanitizers, so ASan alone would
 * not see them overrun.  Instead the input ends exactly at, and the output
 * page sits between, inaccessible guard pages: a stray read or write kills
 * the test with SIGSEGV.
 *
 * Inputs, 100,000 per codec, cycling through: random bytes of random length;
 * valid compressed real pages with 1-8 flipped bits; the same truncated; the
 * same with a random span overwritten; a valid frame header followed by
 * random bytes.  Plus fixed cases: empty input, and valid frames that hold
 * less or more than one page.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lz4.h>
#include <zstd.h>

#include "bench/pagefile.h"
#include "compress/codec.h"
#include "tests/rng.h"
#include "tests/tap.h"
#include "tests/testdata.h"

#define INPUTS_PER_CODEC 100000
#define SEED_PAGES 64
#define GARBAGE_MAX_LEN 8192

struct arena {
	unsigned char *in_end; /* input buffers end here; a guard page follows */
	unsigned char *out;    /* one page between two guard pages */
	size_t psz;
};

struct seeds {
	unsigned char buf[SEED_PAGES][UZC_PAGE_SIZE];
	size_t len[SEED_PAGES];
};

static int arena_map(struct arena *a)
{
	size_t psz = (size_t)sysconf(_SC_PAGESIZE);
	size_t in_pages = GARBAGE_MAX_LEN / psz + 1;
	/* [guard][input...][guard][out][guard] */
	size_t total = (in_pages + 4) * psz;
	unsigned char *base = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (base == MAP_FAILED)
		return -errno;
	if (mprotect(base + psz, in_pages * psz, PROT_READ | PROT_WRITE) ||
	    mprotect(base + (in_pages + 2) * psz, psz, PROT_READ | PROT_WRITE))
		return -errno;
	a->psz = psz;
	a->in_end = base + (1 + in_pages) * psz;
	a->out = base + (in_pages + 2) * psz;
	return 0;
}

/* Copy @len bytes so that they end right before the guard page. */
static const unsigned char *place_input(struct arena *a, const void *src, size_t len)
{
	unsigned char *p = a->in_end - len;

	memcpy(p, src, len);
	return p;
}

/*
 * A page of words picked at random from a few, for when the real page files
 * are missing: repetitive enough that every codec compresses it well below
 * max_len, varied enough that no two pages compress alike.
 */
static void fill_synthetic(struct rng *r, unsigned char *p)
{
	static const char *const words[] = { "page ", "fault ", "swap ",  "pool ", "zstd ",
					     "lz4 ",  "memfd ", "evict ", "\n" };
	size_t i = 0;

	while (i < UZC_PAGE_SIZE) {
		const char *w = words[rng_below(r, sizeof(words) / sizeof(words[0]))];

		for (; *w && i < UZC_PAGE_SIZE; w++)
			p[i++] = (unsigned char)*w;
	}
}

static int load_seed_pages(struct rng *r, unsigned char (*pages)[UZC_PAGE_SIZE])
{
	static const char *const files[] = TESTDATA_FILES;
	unsigned char *real = NULL;
	char path[4096];
	size_t n = 0;

	if (testdata_path(files[0], path, sizeof(path)) == 0 &&
	    pf_load(path, 997, SEED_PAGES, &real, &n) == 0 && n == SEED_PAGES) {
		memcpy(pages, real, SEED_PAGES * UZC_PAGE_SIZE);
		free(real);
		return 1;
	}
	free(real);
	for (int i = 0; i < SEED_PAGES; i++)
		fill_synthetic(r, pages[i]);
	return 0;
}

static int compress_seeds(struct uzc_ctx *ctx, unsigned char (*pages)[UZC_PAGE_SIZE],
			  struct seeds *s)
{
	for (int i = 0; i < SEED_PAGES; i++) {
		ssize_t len = uzc_compress(ctx, pages[i], s->buf[i], UZC_PAGE_SIZE);

		if (len <= 0)
			return -EINVAL;
		s->len[i] = (size_t)len;
	}
	return 0;
}

/* Build garbage input number @i into @in; returns its length. */
static size_t make_garbage(struct rng *r, const struct seeds *s, unsigned i, unsigned char *in)
{
	unsigned k = (unsigned)rng_below(r, SEED_PAGES);
	size_t len = s->len[k];

	memcpy(in, s->buf[k], len);
	switch (i % 5) {
	case 0: /* random bytes of random length */
		len = (size_t)rng_below(r, 4200);
		for (size_t j = 0; j < len; j++)
			in[j] = (unsigned char)rng_next(r);
		break;
	case 1: /* bit flips */
		for (unsigned f = 1 + (unsigned)rng_below(r, 8); f; f--)
			in[rng_below(r, len)] ^= (unsigned char)(1u << rng_below(r, 8));
		break;
	case 2: /* truncation */
		len = (size_t)rng_below(r, len);
		break;
	case 3: { /* a random span overwritten */
		size_t at = (size_t)rng_below(r, len);
		size_t span = 1 + (size_t)rng_below(r, len - at);

		for (size_t j = at; j < at + span; j++)
			in[j] = (unsigned char)rng_next(r);
		break;
	}
	default: /* the header survives, the body is noise */
		for (size_t j = len < 8 ? len : 8; j < len; j++)
			in[j] = (unsigned char)rng_next(r);
		break;
	}
	return len;
}

static void fuzz_codec(const char *name, struct uzc_ctx *ctx, struct arena *a,
		       const struct seeds *s, struct rng *r)
{
	enum uzc_codec_id id = uzc_ctx_spec(ctx).id;
	unsigned char in[GARBAGE_MAX_LEN];
	unsigned pages = 0, rejected = 0, other = 0;
	int first_other = 0;

	for (unsigned i = 0; i < INPUTS_PER_CODEC; i++) {
		size_t len = make_garbage(r, s, i, in);
		int ret = uzc_decompress(ctx, id, place_input(a, in, len), len, a->out);

		if (ret == 0)
			pages++;
		else if (ret == -EBADMSG)
			rejected++;
		else if (!other++)
			first_other = ret;
	}
	ok(other == 0 && pages + rejected == INPUTS_PER_CODEC,
	   "%s: %d garbage inputs each give -EBADMSG or exactly one page", name, INPUTS_PER_CODEC);
	tap_diag("%s: %u rejected, %u decoded to a page, %u other (first: %s)", name, rejected,
		 pages, other, other ? uzc_strerror(first_other) : "none");
}

/* Valid frames of the wrong size: half a page, and two pages. */
static void test_wrong_sizes(struct uzc_ctx *ctx, struct arena *a)
{
	static unsigned char two[2 * UZC_PAGE_SIZE];
	unsigned char lz[LZ4_COMPRESSBOUND(2 * UZC_PAGE_SIZE)], zs[2 * UZC_PAGE_SIZE + 64];
	int lhalf, lfull;
	size_t zhalf, zfull;

	memset(two, 'u', sizeof(two));
	lhalf = LZ4_compress_default((const char *)two, (char *)lz, UZC_PAGE_SIZE / 2, sizeof(lz));
	ok(lhalf > 0 && uzc_decompress(ctx, UZC_CODEC_LZ4, place_input(a, lz, (size_t)lhalf),
				       (size_t)lhalf, a->out) == -EBADMSG,
	   "lz4: a valid block of half a page gives -EBADMSG");
	lfull = LZ4_compress_default((const char *)two, (char *)lz, sizeof(two), sizeof(lz));
	ok(lfull > 0 && uzc_decompress(ctx, UZC_CODEC_LZ4, place_input(a, lz, (size_t)lfull),
				       (size_t)lfull, a->out) == -EBADMSG,
	   "lz4: a valid block of two pages gives -EBADMSG without overrunning the page");
	zhalf = ZSTD_compress(zs, sizeof(zs), two, UZC_PAGE_SIZE / 2, 1);
	ok(!ZSTD_isError(zhalf) && uzc_decompress(ctx, UZC_CODEC_ZSTD, place_input(a, zs, zhalf),
						  zhalf, a->out) == -EBADMSG,
	   "zstd: a valid frame of half a page gives -EBADMSG");
	zfull = ZSTD_compress(zs, sizeof(zs), two, sizeof(two), 1);
	ok(!ZSTD_isError(zfull) && uzc_decompress(ctx, UZC_CODEC_ZSTD, place_input(a, zs, zfull),
						  zfull, a->out) == -EBADMSG,
	   "zstd: a valid frame of two pages gives -EBADMSG without overrunning the page");
}

/* Anything after the one page's frame or block is corruption, not padding. */
static void test_trailing_bytes(struct uzc_ctx *ctx, struct arena *a, const struct seeds *s)
{
	/* A skippable frame (magic 0x184D2A50, 4-byte length, payload) and an empty frame. */
	static const unsigned char skippable[] = { 0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 7, 7 };
	unsigned char zs[UZC_PAGE_SIZE + 64], empty[32], buf[2 * UZC_PAGE_SIZE];
	size_t zlen = ZSTD_compress(zs, sizeof(zs), s->buf[0], 0, 1); /* an empty frame */
	size_t elen = zlen, len;
	struct uzc_spec spec;
	struct uzc_ctx *zctx = NULL;
	ssize_t plen = -1;

	memcpy(empty, zs, elen);
	memcpy(buf, s->buf[0], s->len[0]);
	buf[s->len[0]] = 0;
	ok(uzc_decompress(ctx, UZC_CODEC_LZ4, place_input(a, buf, s->len[0] + 1), s->len[0] + 1,
			  a->out) == -EBADMSG,
	   "lz4: a valid page block with one byte after it gives -EBADMSG");
	if (!uzc_spec_parse("zstd", 1, &spec) && !uzc_ctx_new(&spec, UZC_PAGE_SIZE, &zctx))
		plen = uzc_compress(zctx, a->out, zs, sizeof(zs));
	uzc_ctx_free(zctx);
	if (!ok(plen > 0 && !ZSTD_isError(elen), "zstd: a page frame and an empty frame are made"))
		return;
	len = (size_t)plen;
	memcpy(buf, zs, len);
	memcpy(buf + len, skippable, sizeof(skippable));
	ok(uzc_decompress(ctx, UZC_CODEC_ZSTD, place_input(a, buf, len + sizeof(skippable)),
			  len + sizeof(skippable), a->out) == -EBADMSG,
	   "zstd: a page frame followed by a skippable frame gives -EBADMSG");
	memcpy(buf + len, empty, elen);
	ok(uzc_decompress(ctx, UZC_CODEC_ZSTD, place_input(a, buf, len + elen), len + elen,
			  a->out) == -EBADMSG,
	   "zstd: a page frame followed by an empty frame gives -EBADMSG");
	ok(uzc_decompress(ctx, UZC_CODEC_ZSTD, place_input(a, zs, len), len, a->out) == 0,
	   "zstd: the same page frame alone decodes");
}

static void test_empty_input(struct uzc_ctx *ctx, struct arena *a)
{
	ok(uzc_decompress(ctx, UZC_CODEC_LZ4, a->in_end, 0, a->out) == -EBADMSG &&
		   uzc_decompress(ctx, UZC_CODEC_ZSTD, a->in_end, 0, a->out) == -EBADMSG &&
		   uzc_decompress(ctx, UZC_CODEC_RAW, a->in_end, 0, a->out) == -EBADMSG,
	   "empty input gives -EBADMSG for every codec");
}

int main(void)
{
	static const char *const names[] = { "lz4", "lz4hc", "zstd" };
	static unsigned char pages[SEED_PAGES][UZC_PAGE_SIZE];
	static struct seeds seeds;
	uint64_t seed = rng_seed_from_env(0x6a5ba6e);
	struct rng r = { seed };
	struct arena a;
	int real;

	tap_diag("seed 0x%llx (set UZSWAP_TEST_SEED to repeat)", (unsigned long long)seed);
	if (!ok(arena_map(&a) == 0, "guard-paged buffers are mapped"))
		return tap_done();
	real = load_seed_pages(&r, pages);
	tap_diag("mutating %s pages", real ? "real (redis)" : "synthetic text");
	for (size_t i = 0; i < 3; i++) {
		struct uzc_spec spec;
		struct uzc_ctx *ctx = NULL;

		if (!ok(uzc_spec_parse(names[i], 0, &spec) == 0 &&
				uzc_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &ctx) == 0 &&
				compress_seeds(ctx, pages, &seeds) == 0,
			"%s: %d seed pages compress", names[i], SEED_PAGES)) {
			uzc_ctx_free(ctx);
			continue;
		}
		fuzz_codec(names[i], ctx, &a, &seeds, &r);
		if (i == 0) {
			test_wrong_sizes(ctx, &a);
			test_trailing_bytes(ctx, &a, &seeds);
			test_empty_input(ctx, &a);
		}
		uzc_ctx_free(ctx);
	}
	return tap_done();
}
