/* SPDX-License-Identifier: MIT */
/*
 * compress/codec_lz4.c - the lz4 and lz4hc backends.
 *
 * Both write the plain lz4 block format, so they share one decompressor,
 * which needs no state.  Compression uses the *_extState entry points with
 * a state buffer made once per context: liblz4 otherwise puts a 16 KiB hash
 * table on the stack (lz4) or allocates 256 KiB per call (lz4hc).
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
#define LZ4_MAX_ACCELERATION 65537

static int lz4_cstate_new(int level, void **state)
{
	(void)level;
	*state = malloc((size_t)LZ4_sizeofState());
	return *state ? 0 : -ENOMEM;
}

static int lz4hc_cstate_new(int level, void **state)
{
	(void)level;
	*state = malloc((size_t)LZ4_sizeofStateHC());
	return *state ? 0 : -ENOMEM;
}

static void lz4_cstate_free(void *state)
{
	free(state);
}

static ssize_t lz4_compress(void *state, int level, const void *page, void *dst, size_t cap)
{
	/* Returns 0 when the output did not fit in cap: our "incompressible". */
	return LZ4_compress_fast_extState(state, page, dst, UZC_PAGE_SIZE, (int)cap, level);
}

static ssize_t lz4hc_compress(void *state, int level, const void *page, void *dst, size_t cap)
{
	return LZ4_compress_HC_extStateHC(state, page, dst, UZC_PAGE_SIZE, (int)cap, level);
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
	.max_level = LZ4_MAX_ACCELERATION,
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
	.cstate_free = lz4_cstate_free,
	.compress = lz4hc_compress,
	.decompress = lz4_decompress,
};
