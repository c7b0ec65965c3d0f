/* SPDX-License-Identifier: MIT */
/*
 * compress/codec.h - compress and decompress single 4 KiB pages.
 *
 * The daemon compresses every evicted page on its own and decompresses it
 * on a fault, so the unit of work here is always exactly one page.
 *
 * A codec is named ("lz4", "lz4hc", "zstd") and chosen with a level; the
 * pair is a struct uzc_spec.  The codec id is stable and small, so callers
 * can store it beside each object: pages compressed before a codec change
 * must still decompress afterwards.  UZC_CODEC_RAW names a page stored as
 * it is (see "incompressible" below); it can be decompressed but never
 * chosen for compression.
 *
 * A struct uzc_ctx holds the per-thread state (zstd contexts, lz4 hash
 * tables) and is reused for every page: nothing is allocated per page.  A
 * context belongs to one thread at a time; use one per fault or reclaim
 * thread.  It compresses with the codec it was made for and decompresses
 * any codec.
 *
 * Incompressible pages: when the compressed form would be longer than the
 * context's max_len, uzc_compress() returns UZC_INCOMPRESSIBLE and the caller
 * stores the page raw.  The default, UZC_DEFAULT_MAX_LEN, is justified there.
 *
 * Decompression is strict about form: the input must be exactly one frame
 * or block of exactly one page, else the call fails with -EBADMSG; it never
 * reads past the input nor writes outside the page it is given.  It cannot
 * vouch for content: lz4 blocks and our zstd frames carry no checksum, so a
 * flipped bit may still decode to a (wrong) page.  Wherever stored bytes can
 * be corrupted (the backing file), each object carries its own checksum.
 *
 * Errors are negative errno values; uzc_strerror() explains them.
 */
#ifndef UZSWAP_COMPRESS_CODEC_H
#define UZSWAP_COMPRESS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define UZC_PAGE_SIZE 4096

/*
 * A compressed page longer than this is stored raw.  4096 - 512: a page that
 * saves less than an eighth is not worth a decompression on every fault
 * (2-9 us, design.md section 1), and in the allocators such an object takes
 * a whole pool page, or nearly, anyway (zsmalloc's huge classes start near
 * 3264 bytes; zbud pairs objects only below 2 KiB).  On the shared real
 * pages fewer than 1% of pages compress to between 3328 and 4096 bytes with
 * lz4, so the choice costs almost nothing in ratio (BENCHMARKS.md).
 */
#define UZC_DEFAULT_MAX_LEN 3584

/* Returned by uzc_compress() when the page does not fit in max_len. */
#define UZC_INCOMPRESSIBLE 0

/* Stable ids: stored beside compressed objects, so never renumber. */
enum uzc_codec_id {
	UZC_CODEC_RAW = 0,
	UZC_CODEC_LZ4 = 1,
	UZC_CODEC_LZ4HC = 2,
	UZC_CODEC_ZSTD = 3,
	UZC_CODEC_COUNT
};

struct uzc_spec {
	enum uzc_codec_id id;
	int level; /* as given to the library; uzc_spec_parse() resolved "default" */
};

struct uzc_ctx;

/*
 * Resolve a codec name and level.  Level 0 picks the codec's default.
 * lz4: the level is liblz4's acceleration, 0 (default, the same as 1) to
 * 65537; higher is faster and compresses less.  lz4hc: 1-12 (0 = 9).
 * zstd: the library's range, negative levels being its fast modes (0 = 3).
 * Returns -ENOENT for an unknown name, -ERANGE for a level out of range.
 */
int uzc_spec_parse(const char *name, int level, struct uzc_spec *spec);

/* Name of a codec id ("lz4", "raw"...), or NULL for an unknown id. */
const char *uzc_codec_name(enum uzc_codec_id id);

/* Levels a codec accepts; -ENOENT for an unknown or raw codec. */
int uzc_codec_levels(enum uzc_codec_id id, int *min, int *max, int *def);

/*
 * Make a context compressing with @spec into at most @max_len bytes
 * (0 < max_len <= UZC_PAGE_SIZE; pass UZC_DEFAULT_MAX_LEN unless configured).
 */
int uzc_ctx_new(const struct uzc_spec *spec, size_t max_len, struct uzc_ctx **out);
void uzc_ctx_free(struct uzc_ctx *ctx);

struct uzc_spec uzc_ctx_spec(const struct uzc_ctx *ctx);
size_t uzc_ctx_max_len(const struct uzc_ctx *ctx);

/*
 * Compress one page into @dst, which has room for @dst_cap >= max_len bytes.
 * Returns the compressed length (1..max_len), UZC_INCOMPRESSIBLE, or a
 * negative errno (-EINVAL for a buffer smaller than max_len).
 */
ssize_t uzc_compress(struct uzc_ctx *ctx, const void *page, void *dst, size_t dst_cap);

/*
 * Decompress @len bytes made by codec @id into @page (UZC_PAGE_SIZE bytes).
 * Returns 0 when exactly one page came out; -EBADMSG for corrupt or
 * truncated input or output of any other size (@page is then undefined);
 * -EINVAL for an unknown codec id.
 */
int uzc_decompress(struct uzc_ctx *ctx, enum uzc_codec_id id, const void *src, size_t len,
		   void *page);

/*
 * Same-filled pages: one 64-bit word repeated over the whole page (all-zero
 * pages included).  They are kept as that word, with no storage at all.
 */
bool uzc_page_same_filled(const void *page, uint64_t *word);
void uzc_page_fill(void *page, uint64_t word);

/* A readable message for a negative errno returned by this module. */
const char *uzc_strerror(int err);

#endif /* UZSWAP_COMPRESS_CODEC_H */
