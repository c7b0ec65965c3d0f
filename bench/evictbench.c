/* SPDX-License-Identifier: MIT */
/*
 * bench/evictbench.c - eviction throughput: resident pages of a real client
 * region into the pool, through daemon/evict.c, in batches.
 *
 *   evictbench FILE.pages[.zst] [--pages N] [--rounds R]   (as root)
 *
 * The region is memfd-backed, mapped MAP_SHARED and registered with a
 * userfaultfd (MISSING|WP), exactly as a client's; its pages are written
 * into the memfd first and their entries set RESIDENT.  Each configuration
 * (codec x batch size) then evicts every page once per round, and the
 * configurations alternate round by round, so that the machine's noise
 * falls on all of them alike.  Each eviction is the full sequence:
 * write-protect, preadv, same-filled check, compress, pool store (zsmalloc),
 * punch, publish, unprotect.  Between rounds the pages are written back
 * into the memfd and set RESIDENT again (not timed).
 *
 * One line per configuration, keys in this order:
 *   codec batch pages rounds pages_per_s_median pages_per_s_min
 *   pages_per_s_max stored_bytes ratio
 * stored_bytes: the objects' bytes, headers included (the client's pool_bytes
 * counter), not the pool pages holding them (bench/poolbench measures those);
 * ratio = pages * 4096 / stored_bytes, same-filled pages costing nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "alloc/zpool.h"
#include "bench/pagefile.h"
#include "client/uffd.h"
#include "daemon/client.h"
#include "daemon/evict.h"
#include "daemon/region.h"
#include "daemon/uffd.h"

#define PG 4096
#define MAX_ROUNDS 15

struct config {
	const char *codec;
	int level;
	size_t batch;
	double rate[MAX_ROUNDS];
	uint64_t pool_bytes;
};

struct region {
	int memfd, dev_fd;
	char *map;
	size_t npages;
	struct uzd_client c;
	struct uzd_region *r;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void release_obj(const struct uzd_region *r, size_t pgidx, uint64_t e, void *arg)
{
	(void)r;
	(void)pgidx;
	if (uzd_entry_state(e) == UZD_ENTRY_POOL)
		zpool_free(arg, uzd_entry_pool_handle(e));
}

static int make_uffd(struct region *g)
{
	char why[256] = "";

	g->c.uffd = uzs_uffd_create(-1, why, sizeof(why));
	if (g->c.uffd < 0 && g->dev_fd >= 0)
		g->c.uffd = uzs_uffd_create(g->dev_fd, why, sizeof(why));
	if (g->c.uffd < 0) {
		fprintf(stderr, "evictbench: no userfaultfd: %s\n", why);
		return -1;
	}
	return uzs_uffd_register(g->c.uffd, (uintptr_t)g->map, g->npages * PG,
				 UZP_UFFD_REGISTER_MODES, NULL);
}

static int region_open(struct region *g, size_t npages)
{
	struct uzd_region_args a = { .len = npages * PG };
	struct zpool_config cfg = { 0 };
	uint32_t id;

	g->npages = npages;
	g->dev_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	g->memfd = memfd_create("evictbench", MFD_CLOEXEC);
	if (g->memfd < 0 || ftruncate(g->memfd, (off_t)(npages * PG)) < 0)
		return -1;
	g->map = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_SHARED, g->memfd, 0);
	if (g->map == MAP_FAILED || make_uffd(g) < 0 ||
	    zpool_create("zsmalloc", &cfg, &g->c.pool) < 0 ||
	    uzd_region_table_init(&g->c.regions) < 0 || uzd_lru_init(&g->c.lru) < 0 ||
	    uzd_lru_init(&g->c.hot) < 0)
		return -1;
	a.start = (uintptr_t)g->map;
	a.memfd = dup(g->memfd);
	if (a.memfd < 0 || uzd_region_create(&g->c.regions, &a, &id) < 0)
		return -1;
	uzd_region_read_lock(&g->c.regions);
	g->r = uzd_region_find(&g->c.regions, id);
	uzd_region_read_unlock(&g->c.regions);
	return g->r ? 0 : -1;
}

/* Put the pages back, resident, as before the first round; frees last round's objects. */
static int refill(struct region *g, const unsigned char *pages)
{
	uint64_t old;

	for (size_t i = 0; i < g->npages; i++) {
		if (uzd_region_claim(g->r, i, ~UZD_STATE_BIT(UZD_ENTRY_BUSY), &old) < 0)
			return -1;
		release_obj(g->r, i, old, g->c.pool);
		uzd_region_publish(g->r, i, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	}
	if (pwrite(g->memfd, pages, g->npages * PG, 0) != (ssize_t)(g->npages * PG))
		return -1;
	g->c.stats.pool_bytes = 0;
	return 0;
}

/* Evict every page in batches of @batch; pages per second. */
static double evict_all(struct region *g, struct uzd_evict_ctx *ec, size_t batch)
{
	size_t idx[256], evicted = 0;
	struct uzd_evict_result res;
	double t0 = now_s();

	uzd_region_read_lock(&g->c.regions);
	for (size_t b = 0; b < g->npages; b += batch) {
		size_t k = g->npages - b < batch ? g->npages - b : batch;

		for (size_t i = 0; i < k; i++)
			idx[i] = b + i;
		if (uzd_evict_batch(ec, &g->c, g->r, idx, k, &res) < 0)
			break;
		evicted += res.evicted;
	}
	uzd_region_read_unlock(&g->c.regions);
	return evicted == g->npages ? (double)evicted / (now_s() - t0) : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void print_config(struct config *c, size_t pages, int rounds)
{
	qsort(c->rate, (size_t)rounds, sizeof(double), cmp_double);
	printf("codec=%s-%d batch=%zu pages=%zu rounds=%d pages_per_s_median=%.0f "
	       "pages_per_s_min=%.0f pages_per_s_max=%.0f stored_bytes=%llu ratio=%.2f\n",
	       c->codec, c->level, c->batch, pages, rounds, c->rate[rounds / 2], c->rate[0],
	       c->rate[rounds - 1], (unsigned long long)c->pool_bytes,
	       (double)pages * PG / (double)(c->pool_bytes ? c->pool_bytes : 1));
}

static int run_round(struct region *g, const unsigned char *pages, struct config *c,
		     struct uzd_evict_ctx *ec, int round)
{
	if (refill(g, pages) < 0)
		return -EIO;
	c->rate[round] = evict_all(g, ec, c->batch);
	c->pool_bytes = g->c.stats.pool_bytes;
	return c->rate[round] < 0 ? -EIO : 0;
}

static int run(struct region *g, const unsigned char *pages, struct config *cs, size_t n,
	       int rounds)
{
	struct uzd_evict_ctx *ec[8] = { 0 };
	int err = 0;

	for (size_t k = 0; k < n && !err; k++) {
		struct uzc_spec spec;

		err = uzc_spec_parse(cs[k].codec, cs[k].level, &spec);
		if (!err)
			err = uzd_evict_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &ec[k]);
	}
	for (int r = 0; r < rounds && !err; r++)
		for (size_t k = 0; k < n && !err; k++)
			err = run_round(g, pages, &cs[k], ec[k], r);
	for (size_t k = 0; k < n; k++) {
		if (!err)
			print_config(&cs[k], g->npages, rounds);
		uzd_evict_ctx_free(ec[k]);
	}
	return err;
}

int main(int argc, char **argv)
{
	static struct config cs[] = {
		{ "lz4", 0, 16, { 0 }, 0 },
		{ "lz4", 0, 64, { 0 }, 0 },
		{ "zstd", 1, 64, { 0 }, 0 },
	};
	static const struct option longopts[] = {
		{ "pages", required_argument, NULL, 'p' },
		{ "rounds", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct region g = { .memfd = -1, .dev_fd = -1, .map = MAP_FAILED };
	unsigned char *pages = NULL;
	size_t want = 16384, n = 0;
	int rounds = 5, c, err;

	while ((c = getopt_long(argc, argv, "p:r:", longopts, NULL)) != -1) {
		if (c == 'p')
			want = strtoul(optarg, NULL, 10);
		else if (c == 'r')
			rounds = atoi(optarg);
		else
			return 2;
	}
	if (optind != argc - 1 || !want || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: evictbench FILE.pages[.zst] [--pages N] [--rounds 1..%d]\n",
			MAX_ROUNDS);
		return 2;
	}
	err = pf_load(argv[optind], 1, want, &pages, &n);
	if (err || !n || region_open(&g, n) < 0) {
		fprintf(stderr, "evictbench: setup failed: %s\n", strerror(err ? -err : errno));
		return 1;
	}
	err = run(&g, pages, cs, sizeof(cs) / sizeof(cs[0]), rounds);
	if (err)
		fprintf(stderr, "evictbench: eviction failed: %s\n", strerror(-err));
	uzd_region_table_fini(&g.c.regions, release_obj, g.c.pool);
	uzd_lru_fini(&g.c.lru);
	uzd_lru_fini(&g.c.hot);
	zpool_destroy(g.c.pool);
	close(g.c.uffd);
	munmap(g.map, n * PG);
	close(g.memfd);
	free(pages);
	return err ? 1 : 0;
}
