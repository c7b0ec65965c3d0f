/* SPDX-License-Identifier: MIT */
/* tests/pagesizes.c - lz4 sizes of sampled real pages (see pagesizes.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "bench/pagefile.h"
#include "compress/codec.h"
#include "tests/pagesizes.h"
#include "tests/testdata.h"

/* A growing array of sizes. */
struct sizes {
	unsigned *v;
	size_t n, cap;
};

static int lz4_ctx(struct uzc_ctx **ctx)
{
	struct uzc_spec spec;
	int err = uzc_spec_parse("lz4", 0, &spec);

	return err ? err : uzc_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, ctx);
}

static int push(struct sizes *s, unsigned size)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 4096;
		unsigned *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = size;
	return 0;
}

/* Append the size @page would be stored at, unless it is same-filled. */
static int add_page(struct uzc_ctx *ctx, const void *page, struct sizes *s)
{
	unsigned char buf[UZC_PAGE_SIZE];
	uint64_t word;
	ssize_t len;

	if (uzc_page_same_filled(page, &word))
		return 0;
	len = uzc_compress(ctx, page, buf, sizeof(buf));
	if (len < 0)
		return (int)len;
	return push(s, len == UZC_INCOMPRESSIBLE ? UZC_PAGE_SIZE : (unsigned)len);
}

/* The page sampling of pf_load(), without holding the pages. */
static int add_pages(struct pf_reader *r, size_t stride, size_t max, struct uzc_ctx *ctx,
		     struct sizes *s)
{
	unsigned char page[UZC_PAGE_SIZE];
	size_t seen = 0, taken = 0;
	int got = 0, err = 0;

	while (!err && !(max && taken == max) && (got = pf_next(r, page)) == 1) {
		if (seen++ % stride != 0)
			continue;
		taken++;
		err = add_page(ctx, page, s);
	}
	return err ? err : (got < 0 ? got : 0);
}

int pagesizes_load(const char *file, size_t stride, size_t max, unsigned **sizes, size_t *n)
{
	struct sizes s = { 0 };
	struct uzc_ctx *ctx = NULL;
	struct pf_reader *r = NULL;
	char path[4096];
	int err;

	*sizes = NULL;
	*n = 0;
	if (stride == 0)
		return -EINVAL;
	err = testdata_path(file, path, sizeof(path));
	if (err)
		return err;
	err = lz4_ctx(&ctx);
	if (err)
		return err;
	err = pf_open(path, &r);
	if (err)
		goto err_ctx;
	err = add_pages(r, stride, max, ctx, &s);
	pf_close(r);
	if (err)
		goto err_sizes;
	uzc_ctx_free(ctx);
	*sizes = s.v;
	*n = s.n;
	return 0;

err_sizes:
	free(s.v);
err_ctx:
	uzc_ctx_free(ctx);
	return err;
}
