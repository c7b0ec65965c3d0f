/* SPDX-License-Identifier: MIT */
/*
 * compress/codec_lz4.c - the lz4 and lz4hc backends.
 *
 * Both write the plain lz4 block format, so they share one decompressor,
 * which needs no state.  Each context keeps its compression state, made
 * once; every page is compressed as an independent block.
 *
 * lz4 uses LZ4_compress_fast_extState, which clears its 16 KiB table per
 * page but, for inputs under 64 KiB, indexes it with 16-bit offsets.  The
 * streaming calls with a fast reset skip the clearing but index with 32-bit
 * offsets, and measured slower with a worse ratio (BENCHMARKS.md).  lz4hc
 * is the other way round: its state is 256 KiB, and the fast reset of a
 * stream (LZ4_resetStreamHC_fast) measured 9% faster at the same ratio.
 * (liblz4.so does not export the _fastReset variants of the extState calls.)
 *
 * The output bound given to liblz4 is the caller's max_len, so a page that
 * would not fit stops compressing as soon as it overflows instead of being
 * compressed in full and then thrown away.
 */
#include <errno.h>
#include <stdlib.h>

#include <lz4.h>
#include <lz4hc.h>

#include "compress/codec_impl.h"

/* liblz4 1.9 limits acceleration to this; higher values are clamped. */
#define UZC_LZ4_MAX_ACCELERATION 65537

static int lz4_cstate_new(int level, void **state)
{
	(void)level;
	*state = malloc((size_t)LZ4_sizeofState());
	return *state ? 0 : -ENOMEM;
}

static void lz4_cstate_free(void *state)
{
	free(state);
}

/* The level is set by the fast reset before each page. */
static int lz4hc_cstate_new(int level, void **state)
{
	(void)level;
	*state = LZ4_createStreamHC();
	return *state ? 0 : -ENOMEM;
}

static void lz4hc_cstate_free(void *state)
{
	LZ4_freeStreamHC(state);
}

static ssize_t lz4_compress(void *state, int level, const void *page, void *dst, size_t cap)
{
	/* 0 when the output did not fit in cap: our "incompressible". */
	return LZ4_compress_fast_extState(state, page, dst, UZC_PAGE_SIZE, (int)cap, level);
}

static ssize_t lz4hc_compress(void *state, int level, const void *page, void *dst, size_t cap)
{
	LZ4_resetStreamHC_fast(state, level);
	return LZ4_compress_HC_continue(state, page, dst, UZC_PAGE_SIZE, (int)cap);
}

static int lz4_decompress(void *state, const void *src, size_t len, void *page)
{
	int n;

	(void)state;
	/* Nothing longer than the bound can be one page, and it keeps the int cast safe. */
	if (len == 0 || len > (size_t)LZ4_COMPRESSBOUND(UZC_PAGE_SIZE))
		return -EBADMSG;
	/* The _safe variant never reads past src+len nor writes past page+4096. */
	n = LZ4_decompress_safe(src, page, (int)len, UZC_PAGE_SIZE);
	return n == UZC_PAGE_SIZE ? 0 : -EBADMSG;
}

const struct uzc_backend uzc_backend_lz4 = {
	.id = UZC_CODEC_LZ4,
	.name = "lz4",
	.min_level = 0,
	.max_level = UZC_LZ4_MAX_ACCELERATION,
	.default_level = 0,
	.cstate_new = lz4_cstate_new,
	.cstate_free = lz4_cstate_free,
	.compress = lz4_compress,
	.decompress = lz4_decompress,
};

const struct uzc_backend uzc_backend_lz4hc = {
	.id = UZC_CODEC_LZ4HC,
	.name = "lz4hc",
	.min_level = 1,
	.max_level = LZ4HC_CLEVEL_MAX,
	.default_level = LZ4HC_CLEVEL_DEFAULT,
	.cstate_new = lz4hc_cstate_new,
	.cstate_free = lz4hc_cstate_free,
	.compress = lz4hc_compress,
	.decompress = lz4_decompress,
};
