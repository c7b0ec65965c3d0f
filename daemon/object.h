/* SPDX-License-Identifier: MIT */
/*
 * daemon/object.h - what an evicted page looks like inside the pool.
 *
 * Every pool object starts with a 16-byte header, then the page's bytes as
 * its codec left them.  The exception is an incompressible page: it is
 * stored as the page itself, 4096 bytes with no header (header and page
 * would not fit the pool's largest object), and its entry carries the RAW
 * flag (daemon/entry.h) instead.  Such pages are rare (0.2% of the redis
 * data) and lose only what the header gives: the refault clock, and the
 * owner, which writeback will have to keep beside them.  The header says
 *   - how to load the page: codec and compressed length (the allocators do
 *     not keep exact sizes, and lz4 needs the exact length);
 *   - whose page it is: client and page address, so that the pool's LRU
 *     reclaim (writeback, a later issue) can find and repoint the owning
 *     entry.  An address survives a region being trimmed or split, which
 *     region ids and page indexes do not; the owner's entry must still hold
 *     this object's handle for the match to count;
 *   - when it was evicted: the client's eviction sequence number at that
 *     moment, so that a fault can measure the refault distance (how many
 *     evictions happened in between: a page that comes back within fewer
 *     evictions than the client keeps resident was hot, as in the kernel's
 *     workingset detection).
 * The header costs 16 bytes per object, inside the pool: 0.9% of the mean
 * lz4 page of the redis data, 2.2% of the mean zstd-1 page of python.
 *
 * Layout: word0 = page number (address >> 12, 48 bits) << 16 | codec << 12
 * | (length - 1); then the client id and the eviction sequence number.
 */
#ifndef UZSWAP_DAEMON_OBJECT_H
#define UZSWAP_DAEMON_OBJECT_H

#include <stdint.h>
#include <string.h>

#include "compress/codec.h"

#define UZD_OBJ_HDR_SIZE 16

struct uzd_obj_hdr {
	uintptr_t addr; /* the page's address in its client, page-aligned */
	enum uzc_codec_id codec;
	uint32_t len; /* bytes after the header, 1..UZC_PAGE_SIZE */
	uint32_t client_id;
	uint32_t evict_seq; /* the client's evictions so far when this one was stored */
};

static inline void uzd_obj_hdr_write(void *obj, const struct uzd_obj_hdr *h)
{
	uint64_t w0 = (uint64_t)(h->addr >> 12) << 16 | (uint64_t)(h->codec & 0xf) << 12 |
		      (uint64_t)((h->len - 1) & 0xfff);
	unsigned char *p = obj;

	memcpy(p, &w0, 8);
	memcpy(p + 8, &h->client_id, 4);
	memcpy(p + 12, &h->evict_seq, 4);
}

static inline void uzd_obj_hdr_read(const void *obj, struct uzd_obj_hdr *h)
{
	const unsigned char *p = obj;
	uint64_t w0;

	memcpy(&w0, p, 8);
	h->addr = (uintptr_t)(w0 >> 16) << 12;
	h->codec = (enum uzc_codec_id)((w0 >> 12) & 0xf);
	h->len = (uint32_t)(w0 & 0xfff) + 1;
	memcpy(&h->client_id, p + 8, 4);
	memcpy(&h->evict_seq, p + 12, 4);
}

_Static_assert(UZC_CODEC_COUNT <= 16, "a codec id fits in 4 bits");

#endif /* UZSWAP_DAEMON_OBJECT_H */
