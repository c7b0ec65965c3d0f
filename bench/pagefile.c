/* SPDX-License-Identifier: MIT */
/*
 * bench/pagefile.c - page file reader (see pagefile.h).
 *
 * struct pf_reader:
 *   fd          the file, read sequentially
 *   zstd        whether it starts with the zstd magic; else raw pages
 *   ds, in      for zstd: the decompression stream and its input buffer;
 *               in.pos..in.size are bytes read from the file and not yet
 *               consumed, in_eof says the file has no more
 *   frame_open  a zstd frame has started and not yet ended, so running out
 *               of input now means the file is truncated
 *
 * Pages are decompressed straight into the caller's buffer; zstd keeps its
 * own window, so a page that straddles two reads of the file needs no copy
 * here.  A file that ends inside a page, or inside a frame, is -EBADMSG:
 * benchmarks and tests must never run on a silently short sample.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "bench/pagefile.h"

struct pf_reader {
	int fd;
	bool zstd;
	ZSTD_DStream *ds;
	ZSTD_inBuffer in;
	size_t in_cap;
	bool in_eof;
	bool frame_open; /* a zstd frame has started and not yet ended */
};

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static int detect_zstd(struct pf_reader *r)
{
	unsigned char magic[4];
	ssize_t n = pread(r->fd, magic, sizeof(magic), 0);

	if (n < 0)
		return -errno;
	r->zstd = n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
		  magic[3] == 0xfd;
	return 0;
}

static int setup_zstd(struct pf_reader *r)
{
	r->ds = ZSTD_createDStream();
	r->in_cap = ZSTD_DStreamInSize();
	r->in.src = malloc(r->in_cap);
	if (!r->ds || !r->in.src)
		return -ENOMEM;
	return ZSTD_isError(ZSTD_initDStream(r->ds)) ? -ENOMEM : 0;
}

int pf_open(const char *path, struct pf_reader **out)
{
	struct pf_reader *r = calloc(1, sizeof(*r));
	int err;

	if (!r)
		return -ENOMEM;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		err = -errno;
		goto err_free;
	}
	err = detect_zstd(r);
	if (!err && r->zstd)
		err = setup_zstd(r);
	if (err)
		goto err_close;
	*out = r;
	return 0;

err_close:
	pf_close(r); /* frees whatever of the stream was made, and r */
	return err;
err_free:
	free(r);
	return err;
}

void pf_close(struct pf_reader *r)
{
	if (!r)
		return;
	ZSTD_freeDStream(r->ds);
	free((void *)r->in.src);
	close(r->fd);
	free(r);
}

static int refill(struct pf_reader *r)
{
	ssize_t n = read_full(r->fd, (void *)r->in.src, r->in_cap);

	if (n < 0)
		return (int)n;
	r->in.size = (size_t)n;
	r->in.pos = 0;
	r->in_eof = n == 0;
	return 0;
}

static int next_zstd(struct pf_reader *r, void *page)
{
	ZSTD_outBuffer out = { page, PF_PAGE_SIZE, 0 };

	while (out.pos < out.size) {
		size_t before = out.pos, ret;

		if (r->in.pos == r->in.size && !r->in_eof) {
			int err = refill(r);

			if (err)
				return err;
		}
		/* A finished frame has flushed everything: nothing more will come. */
		if (r->in_eof && !r->frame_open)
			break;
		/* Called even on empty input: zstd may still hold decoded bytes. */
		ret = ZSTD_decompressStream(r->ds, &out, &r->in);
		if (ZSTD_isError(ret))
			return -EBADMSG;
		r->frame_open = ret != 0;
		if (r->in_eof && out.pos == before)
			break;
	}
	if (out.pos == 0 && !r->frame_open)
		return 0;
	return out.pos == PF_PAGE_SIZE ? 1 : -EBADMSG;
}

int pf_next(struct pf_reader *r, void *page)
{
	ssize_t n;

	if (r->zstd)
		return next_zstd(r, page);
	n = read_full(r->fd, page, PF_PAGE_SIZE);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return 0;
	return n == PF_PAGE_SIZE ? 1 : -EBADMSG;
}

static int grow(unsigned char **pages, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap * 2 : 1024;
	unsigned char *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*pages, ncap * PF_PAGE_SIZE);
	if (!p)
		return -ENOMEM;
	*pages = p;
	*cap = ncap;
	return 0;
}

int pf_load(const char *path, size_t stride, size_t max, unsigned char **pages, size_t *count)
{
	unsigned char page[PF_PAGE_SIZE];
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	struct pf_reader *r;
	int ret;

	if (stride == 0)
		return -EINVAL;
	ret = pf_open(path, &r);
	if (ret)
		return ret;
	for (size_t i = 0; (ret = pf_next(r, page)) == 1; i++) {
		if (i % stride != 0)
			continue;
		if (max && n == max)
			break;
		ret = grow(&buf, &cap, n + 1);
		if (ret)
			break;
		memcpy(buf + n * PF_PAGE_SIZE, page, PF_PAGE_SIZE);
		n++;
	}
	pf_close(r);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	*pages = buf;
	*count = n;
	return 0;
}
