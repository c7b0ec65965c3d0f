/* SPDX-License-Identifier: MIT */
/*
 * compress/codec_zstd.c - the zstd backend.
 *
 * One ZSTD_CCtx per compressing context and one ZSTD_DCtx per context, both
 * reused for every page: making a context costs tens of microseconds and
 * hundreds of KiB, far more than compressing a page.
 *
 * Frames carry their content size (the library's default), so the
 * decompressor can refuse anything that does not announce exactly one page,
 * or that has anything after its one frame, before doing any work; the size
 * actually produced is checked as well.
 * Single-shot decompression into the caller's page never writes past
 * dstCapacity and allocates nothing.
 */
#include <errno.h>

#include <zstd.h>
#include <zstd_errors.h>

#include "compress/codec_impl.h"

/* ZSTD_minCLevel() and ZSTD_maxCLevel() of libzstd 1.5; the unit test checks them. */
#define UZC_ZSTD_MIN_LEVEL (-(1 << ZSTD_BLOCKSIZELOG_MAX))
#define UZC_ZSTD_MAX_LEVEL 22

/*
 * A new CCtx allocates its workspace on its first compression, sized by the
 * level and the source size.  Compress one page now, so that allocation
 * happens here and never on the path of a page (tests/test_codec_noalloc).
 */
static int zstd_errno(size_t ret)
{
	return ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

static int zstd_cstate_new(int level, void **state)
{
	static const unsigned char zero[UZC_PAGE_SIZE];
	unsigned char out[ZSTD_COMPRESSBOUND(UZC_PAGE_SIZE)];
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t ret;

	if (!cctx)
		return -ENOMEM;
	ret = ZSTD_compressCCtx(cctx, out, sizeof(out), zero, sizeof(zero), level);
	if (ZSTD_isError(ret)) {
		ZSTD_freeCCtx(cctx);
		return zstd_errno(ret);
	}
	*state = cctx;
	return 0;
}

static void zstd_cstate_free(void *state)
{
	ZSTD_freeCCtx(state);
}

static ssize_t zstd_compress(void *cctx, int level, const void *page, void *dst, size_t cap)
{
	size_t n = ZSTD_compressCCtx(cctx, dst, cap, page, UZC_PAGE_SIZE, level);

	if (!ZSTD_isError(n))
		return (ssize_t)n;
	if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
		return UZC_INCOMPRESSIBLE;
	return -EIO;
}

static int zstd_dstate_new(void **state)
{
	*state = ZSTD_createDCtx();
	return *state ? 0 : -ENOMEM;
}

static void zstd_dstate_free(void *state)
{
	ZSTD_freeDCtx(state);
}

static int zstd_decompress(void *dctx, const void *src, size_t len, void *page)
{
	size_t n;

	/* Exactly one frame of one page: no trailing frames, skippable or not. */
	if (ZSTD_getFrameContentSize(src, len) != UZC_PAGE_SIZE ||
	    ZSTD_findFrameCompressedSize(src, len) != len)
		return -EBADMSG;
	n = ZSTD_decompressDCtx(dctx, page, UZC_PAGE_SIZE, src, len);
	return n == UZC_PAGE_SIZE ? 0 : -EBADMSG;
}

const struct uzc_backend uzc_backend_zstd = {
	.id = UZC_CODEC_ZSTD,
	.name = "zstd",
	.min_level = UZC_ZSTD_MIN_LEVEL,
	.max_level = UZC_ZSTD_MAX_LEVEL,
	.default_level = ZSTD_CLEVEL_DEFAULT,
	.cstate_new = zstd_cstate_new,
	.cstate_free = zstd_cstate_free,
	.compress = zstd_compress,
	.dstate_new = zstd_dstate_new,
	.dstate_free = zstd_dstate_free,
	.decompress = zstd_decompress,
};
