/* SPDX-License-Identifier: MIT */
/*
 * compress/codec_impl.h - what a codec backend provides to compress/codec.c.
 *
 * A backend is a const table of functions; codec.c owns the registry and the
 * per-thread context, and calls into the backend with the state the backend
 * made.  Backends never see a struct uzc_ctx, and codec.c never sees a
 * library type, so adding a codec touches one new file and one table entry.
 *
 * Compression state is made only for the codec a context compresses with;
 * decompression state (zstd's DCtx) is made for every codec that needs one
 * when the context is made, so a fault never allocates.
 */
#ifndef UZSWAP_COMPRESS_CODEC_IMPL_H
#define UZSWAP_COMPRESS_CODEC_IMPL_H

#include "compress/codec.h"

struct uzc_backend {
	enum uzc_codec_id id;
	const char *name;
	int min_level, max_level, default_level;

	/* Per-context compression state for @level; NULL ops mean none. */
	int (*cstate_new)(int level, void **state);
	void (*cstate_free)(void *state);
	/*
	 * Compress one page into at most @cap bytes: the length, 0 when it
	 * does not fit, or a negative errno for anything else.
	 */
	ssize_t (*compress)(void *cstate, int level, const void *page, void *dst, size_t cap);

	int (*dstate_new)(void **state);
	void (*dstate_free)(void *state);
	/* 0 when exactly one page came out, else -EBADMSG. */
	int (*decompress)(void *dstate, const void *src, size_t len, void *page);
};

extern const struct uzc_backend uzc_backend_lz4;
extern const struct uzc_backend uzc_backend_lz4hc;
extern const struct uzc_backend uzc_backend_zstd;

#endif /* UZSWAP_COMPRESS_CODEC_IMPL_H */
