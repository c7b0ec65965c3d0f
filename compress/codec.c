/* SPDX-License-Identifier: MIT */
/*
 * compress/codec.c - the codec registry and the per-thread codec context.
 *
 * The registry is a const table indexed by enum uzc_codec_id; the raw codec
 * has no backend and is handled here (a stored page is copied as it is).
 *
 * struct uzc_ctx:
 *   spec, max_len   what this context compresses with, and into how much
 *   cstate          the compressing backend's state (its hash tables)
 *   dstate[id]      each backend's decompression state, made up front so a
 *                   fault never allocates
 *
 * A context has no lock: it belongs to one thread at a time.  Nothing in
 * this file is mutable outside a context.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compress/codec.h"
#include "compress/codec_impl.h"

struct uzc_ctx {
	struct uzc_spec spec;
	size_t max_len;
	const struct uzc_backend *backend;
	void *cstate;
	void *dstate[UZC_CODEC_COUNT];
};

static const struct uzc_backend *const backends[UZC_CODEC_COUNT] = {
	[UZC_CODEC_LZ4] = &uzc_backend_lz4,
	[UZC_CODEC_LZ4HC] = &uzc_backend_lz4hc,
	[UZC_CODEC_ZSTD] = &uzc_backend_zstd,
};

static const struct uzc_backend *backend_by_id(enum uzc_codec_id id)
{
	if ((unsigned)id >= UZC_CODEC_COUNT)
		return NULL;
	return backends[id];
}

static const struct uzc_backend *backend_by_name(const char *name)
{
	for (int id = 0; id < UZC_CODEC_COUNT; id++)
		if (backends[id] && strcmp(backends[id]->name, name) == 0)
			return backends[id];
	return NULL;
}

int uzc_spec_parse(const char *name, int level, struct uzc_spec *spec)
{
	const struct uzc_backend *b = name ? backend_by_name(name) : NULL;

	if (!b)
		return -ENOENT;
	if (level == 0)
		level = b->default_level;
	if (level < b->min_level || level > b->max_level)
		return -ERANGE;
	spec->id = b->id;
	spec->level = level;
	return 0;
}

const char *uzc_codec_name(enum uzc_codec_id id)
{
	const struct uzc_backend *b = backend_by_id(id);

	if (id == UZC_CODEC_RAW)
		return "raw";
	return b ? b->name : NULL;
}

int uzc_codec_levels(enum uzc_codec_id id, int *min, int *max, int *def)
{
	const struct uzc_backend *b = backend_by_id(id);

	if (!b)
		return -ENOENT;
	*min = b->min_level;
	*max = b->max_level;
	*def = b->default_level;
	return 0;
}

static void ctx_free_states(struct uzc_ctx *ctx)
{
	if (ctx->cstate && ctx->backend->cstate_free)
		ctx->backend->cstate_free(ctx->cstate);
	for (int id = 0; id < UZC_CODEC_COUNT; id++)
		if (ctx->dstate[id] && backends[id]->dstate_free)
			backends[id]->dstate_free(ctx->dstate[id]);
}

static int ctx_make_states(struct uzc_ctx *ctx)
{
	int err;

	if (ctx->backend->cstate_new) {
		err = ctx->backend->cstate_new(ctx->spec.level, &ctx->cstate);
		if (err)
			return err;
	}
	for (int id = 0; id < UZC_CODEC_COUNT; id++) {
		if (!backends[id] || !backends[id]->dstate_new)
			continue;
		err = backends[id]->dstate_new(&ctx->dstate[id]);
		if (err)
			return err;
	}
	return 0;
}

int uzc_ctx_new(const struct uzc_spec *spec, size_t max_len, struct uzc_ctx **out)
{
	const struct uzc_backend *b = backend_by_id(spec->id);
	struct uzc_ctx *ctx;
	int err;

	if (!b || spec->level < b->min_level || spec->level > b->max_level)
		return -EINVAL;
	if (max_len == 0 || max_len > UZC_PAGE_SIZE)
		return -EINVAL;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->spec = *spec;
	ctx->max_len = max_len;
	ctx->backend = b;
	err = ctx_make_states(ctx);
	if (err) {
		uzc_ctx_free(ctx);
		return err;
	}
	*out = ctx;
	return 0;
}

void uzc_ctx_free(struct uzc_ctx *ctx)
{
	if (!ctx)
		return;
	ctx_free_states(ctx);
	free(ctx);
}

struct uzc_spec uzc_ctx_spec(const struct uzc_ctx *ctx)
{
	return ctx->spec;
}

size_t uzc_ctx_max_len(const struct uzc_ctx *ctx)
{
	return ctx->max_len;
}

ssize_t uzc_compress(struct uzc_ctx *ctx, const void *page, void *dst, size_t dst_cap)
{
	if (dst_cap < ctx->max_len)
		return -EINVAL;
	return ctx->backend->compress(ctx->cstate, ctx->spec.level, page, dst, ctx->max_len);
}

int uzc_decompress(struct uzc_ctx *ctx, enum uzc_codec_id id, const void *src, size_t len,
		   void *page)
{
	const struct uzc_backend *b = backend_by_id(id);

	if (id == UZC_CODEC_RAW) {
		if (len != UZC_PAGE_SIZE)
			return -EBADMSG;
		memcpy(page, src, UZC_PAGE_SIZE);
		return 0;
	}
	if (!b)
		return -EINVAL;
	return b->decompress(ctx->dstate[id], src, len, page);
}

const char *uzc_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOENT:
		return "unknown codec (known: lz4, lz4hc, zstd)";
	case -ERANGE:
		return "compression level out of range for this codec";
	case -EBADMSG:
		return "corrupt or truncated compressed page";
	case -EINVAL:
		return "invalid argument (codec id, max_len, or output buffer too small)";
	case -ENOMEM:
		return "out of memory for codec state";
	case -EIO:
		return "codec library failed unexpectedly";
	default:
		return strerror(-err);
	}
}
