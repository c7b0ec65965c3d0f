/* SPDX-License-Identifier: MIT */
/*
 * bench/poolbench.c - store every page of a page file, compressed, in a
 * pool, and report how densely and how fast each allocator keeps them.
 *
 *   poolbench FILE.pages[.zst] (--allocator NAME | --all) [--codec lz4|zstd] [--level N]
 *
 * The file is read as a stream and each page compressed on its own, as the
 * daemon evicts it; same-filled pages are counted and skipped (the daemon
 * keeps them as a word), incompressible ones are stored raw as 4096 bytes.
 * The compressed pages are kept in one buffer, then for each allocator:
 *
 *   1. malloc every object (timed as one batch: malloc_ns is the mean), then
 *      write each through a WO mapping; pool_bytes = zpool_total_size().
 *   2. map RO + unmap every object (one batch: map_ns is the mean pair),
 *      then a separate pass compares every object with its compressed page.
 *   3. free a random 50% of the objects (seeded): frag_pool_bytes; then
 *      zpool_compact(): compacted_pool_bytes; the survivors are compared
 *      again, then freed.  free_ns is the mean over all frees.
 *
 * rss_bytes: the growth of the process's anonymous resident memory (RssAnon
 * of /proc/self/status, which counts every resident page of the pool's
 * mmap'd arenas and of its malloc'd metadata, and no file pages) from just
 * after the empty pool was made to just after step 1.  The benchmark's own
 * buffers are allocated and touched before the first reading, so the growth
 * is the pool's: its pages that hold data plus the metadata it touched.
 *
 * Output, one line per allocator, keys in this order:
 *   allocator codec pages same_filled stored compressed_bytes pool_bytes
 *   efficiency (compressed_bytes / pool_bytes) ratio (pages * 4096 /
 *   pool_bytes) malloc_ns map_ns free_ns rss_bytes frag_pool_bytes
 *   compacted_pool_bytes, then compacted_efficiency (compressed bytes of the
 *   surviving half / compacted_pool_bytes) and map_copy_ns (a map that also
 *   copies the object out, as a copy-buffer design would; see below)
 * codec is the codec name, with "-LEVEL" appended when --level was given.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc/zpool.h"
#include "bench/pagefile.h"
#include "compress/codec.h"

#define FRAG_SEED 0x9001b5eedULL

/* The compressed pages, back to back: object i is buf[off[i] .. off[i] + len[i]). */
struct corpus {
	size_t pages, same_filled, stored;
	unsigned long long bytes;
	unsigned char *buf;
	size_t *off;
	uint32_t *len;
	size_t cap_bytes, cap_objs;
};

struct result {
	size_t pool_bytes, frag_bytes, compacted_bytes;
	unsigned long long live_bytes; /* compressed bytes of the half that survives step 3 */
	long rss_bytes;
	double malloc_ns, map_ns, free_ns, map_copy_ns;
};

struct options {
	const char *file, *allocator, *codec;
	int level;
	bool all, level_given;
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Anonymous resident bytes of this process, from /proc/self/status; -1 on error. */
static long rss_anon_bytes(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb * 1024;
}

static int corpus_reserve(struct corpus *c, size_t len)
{
	if (c->stored == c->cap_objs) {
		size_t cap = c->cap_objs ? c->cap_objs * 2 : 65536;
		size_t *off = realloc(c->off, cap * sizeof(*off));
		uint32_t *lens = off ? realloc(c->len, cap * sizeof(*lens)) : NULL;

		if (off)
			c->off = off;
		if (!lens)
			return -ENOMEM;
		c->len = lens;
		c->cap_objs = cap;
	}
	if (c->bytes + len > c->cap_bytes) {
		size_t cap = c->cap_bytes ? c->cap_bytes * 2 : 64u << 20;
		unsigned char *buf = realloc(c->buf, cap);

		if (!buf)
			return -ENOMEM;
		c->buf = buf;
		c->cap_bytes = cap;
	}
	return 0;
}

static int corpus_add(struct corpus *c, struct uzc_ctx *ctx, const unsigned char *page)
{
	unsigned char out[UZC_PAGE_SIZE];
	uint64_t word;
	ssize_t len;
	int err;

	c->pages++;
	if (uzc_page_same_filled(page, &word)) {
		c->same_filled++;
		return 0;
	}
	len = uzc_compress(ctx, page, out, sizeof(out));
	if (len < 0)
		return (int)len;
	if (len == UZC_INCOMPRESSIBLE) {
		memcpy(out, page, UZC_PAGE_SIZE);
		len = UZC_PAGE_SIZE;
	}
	err = corpus_reserve(c, (size_t)len);
	if (err)
		return err;
	memcpy(c->buf + c->bytes, out, (size_t)len);
	c->off[c->stored] = (size_t)c->bytes;
	c->len[c->stored++] = (uint32_t)len;
	c->bytes += (unsigned long long)len;
	return 0;
}

static int corpus_load(const char *path, const struct uzc_spec *spec, struct corpus *c)
{
	unsigned char page[PF_PAGE_SIZE];
	struct pf_reader *r = NULL;
	struct uzc_ctx *ctx = NULL;
	int err = uzc_ctx_new(spec, UZC_DEFAULT_MAX_LEN, &ctx), got = 0;

	if (!err)
		err = pf_open(path, &r);
	while (!err && (got = pf_next(r, page)) == 1)
		err = corpus_add(c, ctx, page);
	if (!err && got < 0)
		err = got;
	if (r)
		pf_close(r);
	uzc_ctx_free(ctx);
	return err;
}

static void corpus_free(struct corpus *c)
{
	free(c->buf);
	free(c->off);
	free(c->len);
}

/* Step 1: malloc every object, then write each; returns 0 or the first error. */
static int store_all(struct zpool *pool, const struct corpus *c, unsigned long *h,
		     struct result *res)
{
	double t0 = now_ns();

	for (size_t i = 0; i < c->stored; i++) {
		int err = zpool_malloc(pool, c->len[i], &h[i]);

		if (err) {
			fprintf(stderr, "poolbench: %s: malloc of object %zu (%u bytes): %s\n",
				zpool_name(pool), i, c->len[i], strerror(-err));
			return err;
		}
	}
	res->malloc_ns = (now_ns() - t0) / (double)c->stored;
	for (size_t i = 0; i < c->stored; i++) {
		void *p = zpool_map(pool, h[i], ZPOOL_MM_WO);

		memcpy(p, c->buf + c->off[i], c->len[i]);
		zpool_unmap(pool, h[i]);
	}
	return 0;
}

/* Compare every object still held (h[i] != 0 or live[i]) with its compressed page. */
static int verify_all(struct zpool *pool, const struct corpus *c, const unsigned long *h,
		      const bool *live)
{
	for (size_t i = 0; i < c->stored; i++) {
		const void *p;
		int diff;

		if (live && !live[i])
			continue;
		p = zpool_map(pool, h[i], ZPOOL_MM_RO);
		diff = memcmp(p, c->buf + c->off[i], c->len[i]);
		zpool_unmap(pool, h[i]);
		if (diff) {
			fprintf(stderr,
				"poolbench: %s: object %zu (handle %#lx) does not hold its "
				"bytes\n",
				zpool_name(pool), i, h[i]);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Step 2: map and unmap every object, timed as one batch. */
static void time_maps(struct zpool *pool, const struct corpus *c, const unsigned long *h,
		      struct result *res)
{
	volatile unsigned char sink = 0;
	double t0 = now_ns();

	for (size_t i = 0; i < c->stored; i++) {
		const unsigned char *p = zpool_map(pool, h[i], ZPOOL_MM_RO);

		sink ^= p[0];
		zpool_unmap(pool, h[i]);
	}
	res->map_ns = (now_ns() - t0) / (double)c->stored;
	(void)sink;
}

/*
 * The copy-buffer way, for comparison: what map would cost if, as in the
 * kernel's zsmalloc, an object spanning pages had to be copied out into a
 * buffer before the caller could read it.  Every object is copied here, an
 * upper bound for a design that copies only spanning objects.
 */
static void time_map_copies(struct zpool *pool, const struct corpus *c, const unsigned long *h,
			    struct result *res)
{
	static unsigned char buf[ZPOOL_MAX_OBJECT];
	volatile unsigned char sink = 0;
	double t0 = now_ns();

	for (size_t i = 0; i < c->stored; i++) {
		const unsigned char *p = zpool_map(pool, h[i], ZPOOL_MM_RO);

		memcpy(buf, p, c->len[i]);
		zpool_unmap(pool, h[i]);
		sink ^= buf[c->len[i] - 1];
	}
	res->map_copy_ns = (now_ns() - t0) / (double)c->stored;
	(void)sink;
}

/* Step 3: free the first half of @order, compact, verify, free the rest. */
static int fragment_and_compact(struct zpool *pool, const struct corpus *c, unsigned long *h,
				const size_t *order, bool *live, struct result *res)
{
	size_t half = c->stored / 2;
	double t_free, t0 = now_ns();
	int err;

	for (size_t k = 0; k < half; k++)
		zpool_free(pool, h[order[k]]);
	t_free = now_ns() - t0;
	for (size_t k = 0; k < half; k++)
		live[order[k]] = false;
	res->live_bytes = 0;
	for (size_t k = half; k < c->stored; k++)
		res->live_bytes += c->len[order[k]];
	res->frag_bytes = zpool_total_size(pool);
	zpool_compact(pool);
	res->compacted_bytes = zpool_total_size(pool);
	err = verify_all(pool, c, h, live);
	t0 = now_ns();
	for (size_t k = half; k < c->stored; k++)
		zpool_free(pool, h[order[k]]);
	t_free += now_ns() - t0;
	res->free_ns = t_free / (double)c->stored;
	return err;
}

/* splitmix64, as tests/rng.h: a fixed sequence, so every allocator frees the same half. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A random permutation of 0..n-1, the same for every allocator. */
static void shuffle(size_t *order, size_t n)
{
	uint64_t state = FRAG_SEED;

	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)(next_random(&state) % i), t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
}

static int run_pool(struct zpool *pool, const struct corpus *c, unsigned long *h,
		    const size_t *order, bool *live, struct result *res)
{
	long rss0 = rss_anon_bytes(), rss1;
	int err = store_all(pool, c, h, res);

	if (err)
		return err;
	rss1 = rss_anon_bytes();
	res->rss_bytes = rss0 < 0 || rss1 < 0 ? -1 : rss1 - rss0;
	res->pool_bytes = zpool_total_size(pool);
	time_maps(pool, c, h, res);
	time_map_copies(pool, c, h, res);
	err = verify_all(pool, c, h, NULL);
	if (!err)
		err = fragment_and_compact(pool, c, h, order, live, res);
	return err;
}

static void print_result(const char *allocator, const char *codec, const struct corpus *c,
			 const struct result *r)
{
	double pool = r->pool_bytes ? (double)r->pool_bytes : 1;

	printf("allocator=%s codec=%s pages=%zu same_filled=%zu stored=%zu compressed_bytes=%llu "
	       "pool_bytes=%zu efficiency=%.3f ratio=%.3f malloc_ns=%.0f map_ns=%.0f "
	       "free_ns=%.0f rss_bytes=%ld frag_pool_bytes=%zu compacted_pool_bytes=%zu "
	       "compacted_efficiency=%.3f map_copy_ns=%.0f\n",
	       allocator, codec, c->pages, c->same_filled, c->stored, c->bytes, r->pool_bytes,
	       (double)c->bytes / pool, (double)c->pages * PF_PAGE_SIZE / pool, r->malloc_ns,
	       r->map_ns, r->free_ns, r->rss_bytes, r->frag_bytes, r->compacted_bytes,
	       r->compacted_bytes ? (double)r->live_bytes / (double)r->compacted_bytes : 0,
	       r->map_copy_ns);
	fflush(stdout);
}

static int bench_allocator(const char *name, const char *codec, const struct corpus *c)
{
	unsigned long *h = malloc((c->stored ? c->stored : 1) * sizeof(*h));
	size_t *order = malloc((c->stored ? c->stored : 1) * sizeof(*order));
	bool *live = malloc(c->stored ? c->stored : 1);
	struct zpool_config cfg = { 0 };
	struct result res = { 0 };
	struct zpool *pool = NULL;
	int err = -ENOMEM;

	if (!h || !order || !live)
		goto out;
	/* Touch every buffer now, so that rss_bytes sees only the pool grow. */
	memset(h, 0xff, c->stored * sizeof(*h));
	memset(live, 1, c->stored);
	shuffle(order, c->stored);
	err = zpool_create(name, &cfg, &pool);
	if (err) {
		fprintf(stderr, "poolbench: allocator %s: %s\n", name, strerror(-err));
		goto out;
	}
	if (c->stored)
		err = run_pool(pool, c, h, order, live, &res);
	if (!err)
		print_result(name, codec, c, &res);
	zpool_destroy(pool);
out:
	free(h);
	free(order);
	free(live);
	return err;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: poolbench FILE.pages[.zst] (--allocator NAME | --all) "
		   "[--codec lz4|zstd] [--level N]\nallocators:");
	for (const char *const *n = zpool_driver_names(); *n; n++)
		fprintf(f, " %s", *n);
	fputc('\n', f);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "allocator", required_argument, NULL, 'a' },
		{ "all", no_argument, NULL, 'A' },
		{ "codec", required_argument, NULL, 'c' },
		{ "level", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long lv;
	int c;

	while ((c = getopt_long(argc, argv, "a:c:l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			o->allocator = optarg;
			break;
		case 'A':
			o->all = true;
			break;
		case 'c':
			o->codec = optarg;
			break;
		case 'l':
			errno = 0;
			lv = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || lv < INT_MIN || lv > INT_MAX)
				return -EINVAL;
			o->level = (int)lv;
			o->level_given = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (optind != argc - 1 || !!o->allocator == o->all)
		return -EINVAL;
	o->file = argv[optind];
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { .codec = "lz4" };
	struct corpus c = { 0 };
	struct uzc_spec spec;
	char codec[64];
	int err;

	if (parse_args(argc, argv, &o)) {
		usage(stderr);
		return 2;
	}
	if (o.allocator && !zpool_driver_find(o.allocator)) {
		fprintf(stderr, "poolbench: no allocator named %s\n", o.allocator);
		usage(stderr);
		return 2;
	}
	err = uzc_spec_parse(o.codec, o.level, &spec);
	if (err) {
		fprintf(stderr, "poolbench: codec %s level %d: %s\n", o.codec, o.level,
			uzc_strerror(err));
		return 2;
	}
	if (o.level_given)
		snprintf(codec, sizeof(codec), "%s-%d", o.codec, o.level);
	else
		snprintf(codec, sizeof(codec), "%s", o.codec);
	err = corpus_load(o.file, &spec, &c);
	if (err) {
		fprintf(stderr, "poolbench: %s: %s\n", o.file,
			err == -EBADMSG ? "not a page file (torn page or corrupt zstd)" :
					  uzc_strerror(err));
		corpus_free(&c);
		return 1;
	}
	if (o.all)
		for (const char *const *n = zpool_driver_names(); *n && !err; n++)
			err = bench_allocator(*n, codec, &c);
	else
		err = bench_allocator(o.allocator, codec, &c);
	corpus_free(&c);
	return err ? 1 : 0;
}
