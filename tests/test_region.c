/* SPDX-License-Identifier: MIT */
/*
 * tests/test_region.c - page entries and region tables (daemon/entry.h,
 * daemon/region.h).
 *
 * Single-threaded checks pin the encoding, the claim/publish/abort rules,
 * create's validation, lookup at region edges, drop_range and destroy.
 * Three timed stress runs use real threads:
 *  - hammer: one "fault" thread (POOL -> RESIDENT) and three "reclaim"
 *    threads (RESIDENT -> POOL, sometimes aborting) on a small region.  The
 *    owner of a page bumps a plain per-page generation while it holds it:
 *    a lost or doubled transition shows as a wrong sum or parity, and a
 *    broken exclusion as a data race under ThreadSanitizer;
 *  - drops: the same with a thread dropping random ranges, so pages are
 *    emptied under their owners (the DROPPED protocol);
 *  - lookups: readers look up and move pages while the main thread creates,
 *    unmaps (trims, splits) and destroys regions under them (a
 *    use-after-free shows under ASan, a missing lock under TSan).
 * Pool handles are modelled by struct handles: every handle made must be
 * released exactly once, by a fault, a dropper, an owner or a destroy.
 * Finally a 4 GiB region's entry array is measured: RSS before and after
 * touching every entry.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "daemon/entry.h"
#include "daemon/region.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define PG UZD_PAGE_SIZE
#define BASE ((uintptr_t)1 << 40) /* addresses are only numbers to the table */
#define HAMMER_SECONDS 1.5
#define DROP_SECONDS 0.6
#define LOOKUP_SECONDS 0.6
#define MAX_HANDLES (1u << 23)

static const unsigned int MASK_ALL = UZD_STATE_BIT(UZD_ENTRY_EMPTY) |
				     UZD_STATE_BIT(UZD_ENTRY_RESIDENT) |
				     UZD_STATE_BIT(UZD_ENTRY_SAME) | UZD_STATE_BIT(UZD_ENTRY_POOL) |
				     UZD_STATE_BIT(UZD_ENTRY_FILE);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int new_memfd(void)
{
	int fd = memfd_create("test_region", MFD_CLOEXEC);

	if (fd < 0) {
		perror("memfd_create");
		exit(1);
	}
	return fd;
}

static int create(struct uzd_region_table *t, uintptr_t start, size_t len, uint32_t *id)
{
	struct uzd_region_args a = { .start = start, .len = len, .memfd = new_memfd() };
	int ret = uzd_region_create(t, &a, id);

	if (ret)
		close(a.memfd);
	return ret;
}

/* ---- a model of the pool's handles ---- */

struct handles {
	uint64_t next;	   /* handles made: 0..next */
	uint8_t *released; /* [MAX_HANDLES] */
	uint64_t twice;	   /* released more than once */
	uint64_t unknown;  /* released but never made */
};

static void handles_init(struct handles *h)
{
	memset(h, 0, sizeof(*h));
	h->released = calloc(MAX_HANDLES, 1);
	if (!h->released)
		exit(1);
}

/* false when the model is full: the caller then aborts its move. */
static bool handle_make(struct handles *h, uint64_t *out)
{
	*out = __atomic_fetch_add(&h->next, 1, __ATOMIC_RELAXED);
	return *out < MAX_HANDLES;
}

static void handle_release(struct handles *h, uint64_t handle)
{
	if (handle >= MAX_HANDLES || handle >= __atomic_load_n(&h->next, __ATOMIC_RELAXED))
		__atomic_fetch_add(&h->unknown, 1, __ATOMIC_RELAXED);
	else if (__atomic_exchange_n(&h->released[handle], 1, __ATOMIC_RELAXED))
		__atomic_fetch_add(&h->twice, 1, __ATOMIC_RELAXED);
}

/* Handles made and not yet released: live, or leaked once all is torn down. */
static uint64_t handles_unreleased(const struct handles *h)
{
	uint64_t made = h->next < MAX_HANDLES ? h->next : MAX_HANDLES, n = 0;

	for (uint64_t i = 0; i < made; i++)
		n += !h->released[i];
	return n;
}

static void release_to_model(const struct uzd_region *r, size_t pgidx, uint64_t e, void *arg)
{
	(void)r;
	(void)pgidx;
	if (uzd_entry_state(e) == UZD_ENTRY_POOL)
		handle_release(arg, uzd_entry_pool_handle(e));
}

static void check_handles(struct handles *h, const char *what)
{
	uint64_t leaked = handles_unreleased(h);

	ok(leaked == 0 && h->twice == 0 && h->unknown == 0,
	   "%s: every pool handle is released exactly once", what);
	if (leaked || h->twice || h->unknown)
		tap_diag("expected 0 leaked, 0 twice, 0 unknown of %llu made; saw %llu, %llu, %llu",
			 (unsigned long long)h->next, (unsigned long long)leaked,
			 (unsigned long long)h->twice, (unsigned long long)h->unknown);
	free(h->released);
}

/* ---- encoding ---- */

static void test_encoding_round_trips(void)
{
	static const uint64_t payloads[] = { 0, 1, 0x123456789abcdULL, UZD_ENTRY_PAYLOAD_MASK };
	unsigned int bad = 0;

	for (unsigned int s = 0; s < UZD_ENTRY_NSTATES; s++)
		for (unsigned int f = 0; f <= UZD_ENTRY_FLAGS_DEFINED; f++)
			for (size_t p = 0; p < sizeof(payloads) / sizeof(payloads[0]); p++) {
				uint64_t e = uzd_entry_make(s, f, payloads[p]);

				if (uzd_entry_state(e) != s || uzd_entry_flags(e) != f ||
				    uzd_entry_payload(e) != payloads[p]) {
					tap_diag("state %u flags %u payload %#llx -> %#llx", s, f,
						 (unsigned long long)payloads[p],
						 (unsigned long long)e);
					bad++;
				}
			}
	ok(bad == 0, "every state, flag and payload survives make and decode");
	ok(uzd_entry_make(UZD_ENTRY_EMPTY, 0, 0) == 0, "an EMPTY entry is the value 0");
	ok(uzd_entry_flags(uzd_entry_make(UZD_ENTRY_POOL, 0xf, 7)) == UZD_ENTRY_FLAGS_DEFINED,
	   "reserved flag bits are never written");
	ok(uzd_entry_flags(uzd_entry_with_flags(uzd_entry_make_pool(9, 0), UZD_ENTRY_HOT)) ==
			   UZD_ENTRY_HOT &&
		   uzd_entry_pool_handle(
			   uzd_entry_with_flags(uzd_entry_make_pool(9, 0), UZD_ENTRY_HOT)) == 9,
	   "setting a flag keeps the state and the payload");
	ok(uzd_entry_pool_handle(uzd_entry_make_pool((1UL << ZPOOL_HANDLE_BITS) - 1, 0)) ==
		   (1UL << ZPOOL_HANDLE_BITS) - 1,
	   "the largest pool handle round-trips");
	ok(uzd_entry_file_slot(uzd_entry_make_file(123456789, UZD_ENTRY_HOT)) == 123456789 &&
		   uzd_entry_state(uzd_entry_make_file(1, 0)) == UZD_ENTRY_FILE,
	   "a file slot round-trips");
}

static void test_busy_encoding(void)
{
	uint64_t old = uzd_entry_make_pool(0xabcdef, UZD_ENTRY_HOT);
	uint64_t b = uzd_entry_make_busy(old);

	ok(uzd_entry_state(b) == UZD_ENTRY_BUSY && uzd_entry_busy_from(b) == UZD_ENTRY_POOL &&
		   uzd_entry_flags(b) == UZD_ENTRY_HOT && !uzd_entry_busy_dropped(b),
	   "a BUSY entry keeps the state and flags it came from, not yet dropped");
	ok(uzd_entry_busy_dropped(b | UZD_BUSY_DROPPED) &&
		   uzd_entry_busy_from(b | UZD_BUSY_DROPPED) == UZD_ENTRY_POOL,
	   "the DROPPED mark does not disturb the origin state");
}

static void check_same(uint64_t w, bool fits, const char *what)
{
	bool got = uzd_entry_same_fits(w);
	uint64_t back = uzd_entry_same_word(uzd_entry_make_same(w, UZD_ENTRY_HOT));

	ok(got == fits && (!fits || back == w), "same-filled word %s %s", what,
	   fits ? "fits and round-trips" : "does not fit");
	if (got != fits || (fits && back != w))
		tap_diag("word %#llx: expected fits=%d, saw fits=%d, back %#llx",
			 (unsigned long long)w, fits, got, (unsigned long long)back);
}

static void test_same_fits(void)
{
	check_same(0, true, "0");
	check_same(UINT64_MAX, true, "-1");
	check_same(42, true, "42");
	check_same((uint64_t)-42, true, "-42");
	check_same((UINT64_C(1) << 55) - 1, true, "2^55-1");
	check_same(UINT64_C(1) << 55, false, "2^55");
	check_same(-(UINT64_C(1) << 55), true, "-2^55");
	check_same(-(UINT64_C(1) << 55) - 1, false, "-2^55-1");
	check_same(UINT64_C(1) << 56, false, "2^56");
	check_same(0x0101010101010101ULL, false, "0x0101010101010101");
}

/* ---- claim, publish, abort ---- */

static void test_claim_publish_abort(void)
{
	uint64_t e = 0, old = 1, res = uzd_entry_make(UZD_ENTRY_RESIDENT, UZD_ENTRY_HOT, 0);
	uint64_t pool = uzd_entry_make_pool(77, UZD_ENTRY_HOT);
	int ret;

	ret = uzd_entry_claim(&e, UZD_STATE_BIT(UZD_ENTRY_EMPTY), &old);
	ok(ret == 0 && old == 0 && uzd_entry_state(e) == UZD_ENTRY_BUSY &&
		   uzd_entry_busy_from(e) == UZD_ENTRY_EMPTY,
	   "claiming an EMPTY page makes it BUSY and returns the old value");
	ret = uzd_entry_claim(&e, MASK_ALL, &old);
	ok(ret == -EBUSY && uzd_entry_state(old) == UZD_ENTRY_BUSY,
	   "a second claim of a BUSY page gets -EBUSY (saw %d)", ret);
	ret = uzd_entry_publish(&e, res);
	ok(ret == 0 && e == res, "publish stores the new value exactly (ret %d, %#llx)", ret,
	   (unsigned long long)e);
	ok(uzd_entry_publish(&e, res) == -EINVAL && e == res,
	   "publishing a page that is not BUSY is refused and changes nothing");
	ret = uzd_entry_claim(&e, UZD_STATE_BIT(UZD_ENTRY_POOL), &old);
	ok(ret == -ESTALE && e == res && old == res,
	   "claiming a page in a state outside the mask gets -ESTALE and changes nothing");
	ok(uzd_entry_claim(&e, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old) == 0,
	   "claiming a RESIDENT page for eviction succeeds");
	ok(uzd_entry_publish(&e, uzd_entry_make_busy(old)) == -EINVAL &&
		   uzd_entry_state(e) == UZD_ENTRY_BUSY,
	   "publishing a BUSY value is refused");
	ret = uzd_entry_abort(&e, old);
	ok(ret == 0 && e == res, "abort restores the old value with its flags");
	e = pool;
	uzd_entry_claim(&e, UZD_STATE_BIT(UZD_ENTRY_POOL), &old);
	ok(old == pool && uzd_entry_abort(&e, old) == 0 && e == pool,
	   "abort restores a pool handle bit for bit");
}

/* ---- create and lookup ---- */

struct bad_create {
	uintptr_t start;
	size_t len;
	int fd; /* -2: a fresh memfd */
	uint64_t off;
	const char *name;
	int expect;
	const char *what;
};

static void test_create_validation(void)
{
	static const struct bad_create cases[] = {
		{ BASE + 1, PG, -2, 0, NULL, -EINVAL, "an unaligned start" },
		{ BASE, PG + 8, -2, 0, NULL, -EINVAL, "an unaligned length" },
		{ BASE, 0, -2, 0, NULL, -EINVAL, "a zero length" },
		{ BASE, PG, -2, 100, NULL, -EINVAL, "an unaligned memfd offset" },
		{ UINTPTR_MAX - PG + 1, 2 * PG, -2, 0, NULL, -EINVAL, "a range that wraps" },
		{ BASE, PG, -1, 0, NULL, -EBADF, "a negative memfd" },
		{ BASE, PG, -2, 0, "a name of thirty-two characters!", -EINVAL, "a long name" },
		{ BASE, (UZD_REGION_MAX_PAGES + 1) * PG, -2, 0, NULL, -E2BIG, "too many pages" },
		{ BASE + 8 * PG, 8 * PG, -2, 0, NULL, -EEXIST, "the same range again" },
		{ BASE + 4 * PG, 8 * PG, -2, 0, NULL, -EEXIST, "an overlap at the head" },
		{ BASE + 12 * PG, 8 * PG, -2, 0, NULL, -EEXIST, "an overlap at the tail" },
		{ BASE + 9 * PG, PG, -2, 0, NULL, -EEXIST, "a range inside another" },
		{ BASE, 32 * PG, -2, 0, NULL, -EEXIST, "a range around another" },
	};
	struct uzd_region_table t;
	uint32_t id = 0, id2 = 0, id3 = 0;

	uzd_region_table_init(&t);
	ok(create(&t, BASE + 8 * PG, 8 * PG, &id) == 0 && id != 0, "a valid region is created");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct bad_create *c = &cases[i];
		struct uzd_region_args a = { c->start, c->len, c->fd == -2 ? new_memfd() : c->fd,
					     c->off, c->name };
		int ret = uzd_region_create(&t, &a, &id2);

		ok(ret == c->expect, "create refuses %s", c->what);
		if (ret != c->expect)
			tap_diag("expected %d, saw %d", c->expect, ret);
		if (a.memfd >= 0) {
			ok(fcntl(a.memfd, F_GETFD) >= 0,
			   "a refused create leaves the memfd to its caller");
			close(a.memfd);
		}
	}
	ok(create(&t, BASE + 16 * PG, PG, &id2) == 0 && create(&t, BASE + 7 * PG, PG, &id3) == 0,
	   "regions touching another's first and last page are accepted");
	ok(id != id2 && id2 != id3 && id != id3, "ids are unique (%u %u %u)", id, id2, id3);
	ok(t.n == 3 && t.regions[0]->id == id3 && t.regions[1]->id == id && t.regions[2]->id == id2,
	   "the table is sorted by start");
	ok(uzd_region_destroy(&t, id, NULL, NULL) == 0 &&
		   uzd_region_destroy(&t, id, NULL, NULL) == -ENOENT,
	   "destroy removes a region once, then says -ENOENT");
	ok(create(&t, BASE + 8 * PG, 8 * PG, &id) == 0, "a destroyed range can be created again");
	uzd_region_table_fini(&t, NULL, NULL);
}

static void check_lookup(struct uzd_region_table *t, uintptr_t addr, uint32_t id, size_t pg,
			 const char *what)
{
	size_t got_pg = (size_t)-1;
	struct uzd_region *r = uzd_region_lookup(t, addr, &got_pg);
	uint32_t got = r ? r->id : 0;

	ok(got == id && (!r || got_pg == pg), "lookup of %s", what);
	if (got != id || (r && got_pg != pg))
		tap_diag("address %#lx: expected region %u page %zu, saw region %u page %zu",
			 (unsigned long)addr, id, pg, got, r ? got_pg : 0);
}

static void test_lookup_boundaries(void)
{
	struct uzd_region_table t;
	uint32_t a = 0, b = 0, c = 0;

	uzd_region_table_init(&t);
	create(&t, BASE + 100 * PG, 10 * PG, &b);
	create(&t, BASE, 4 * PG, &a);
	create(&t, BASE + 110 * PG, PG, &c);
	uzd_region_read_lock(&t);
	check_lookup(&t, BASE - 1, 0, 0, "the byte before the first region finds nothing");
	check_lookup(&t, BASE, a, 0, "a region's first byte finds its page 0");
	check_lookup(&t, BASE + 4 * PG - 1, a, 3, "a region's last byte finds its last page");
	check_lookup(&t, BASE + 4 * PG, 0, 0, "one past a region's end finds nothing");
	check_lookup(&t, BASE + 50 * PG, 0, 0, "an address in a gap finds nothing");
	check_lookup(&t, BASE + 100 * PG + 5, b, 0, "an address inside a first page");
	check_lookup(&t, BASE + 105 * PG, b, 5, "a page in the middle");
	check_lookup(&t, BASE + 110 * PG - 1, b, 9, "the last byte before an adjacent region");
	check_lookup(&t, BASE + 110 * PG, c, 0, "one past its end finds the adjacent region");
	check_lookup(&t, BASE + 111 * PG, 0, 0, "one past the last region finds nothing");
	check_lookup(&t, 0, 0, 0, "address 0 finds nothing");
	check_lookup(&t, UINTPTR_MAX, 0, 0, "the top address finds nothing");
	ok(uzd_region_find(&t, b) && uzd_region_find(&t, b)->start == BASE + 100 * PG &&
		   !uzd_region_find(&t, 0),
	   "find by id returns the region, and nothing for id 0");
	uzd_region_read_unlock(&t);
	uzd_region_table_fini(&t, NULL, NULL);
}

/* ---- counters, drop_range, destroy ---- */

/* Puts page @pg of @r in the state of @v through claim and publish. */
static void set_page(struct uzd_region *r, size_t pg, uint64_t v)
{
	uint64_t old;

	if (uzd_region_claim(r, pg, MASK_ALL, &old) || uzd_region_publish(r, pg, v)) {
		tap_diag("could not set page %zu", pg);
		exit(1);
	}
}

struct released {
	size_t n;
	uint64_t entries[64];
	size_t pages[64];
};

static void release_record(const struct uzd_region *r, size_t pgidx, uint64_t e, void *arg)
{
	struct released *rel = arg;

	(void)r;
	if (rel->n < 64) {
		rel->entries[rel->n] = e;
		rel->pages[rel->n] = pgidx;
	}
	rel->n++;
}

/* Page i of a 16-page region: a mix of every state. */
static uint64_t mixed_entry(size_t i)
{
	switch (i % 5) {
	case 0:
		return uzd_entry_make_pool(1000 + i, 0);
	case 1:
		return uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0);
	case 2:
		return uzd_entry_make_file(2000 + i, UZD_ENTRY_HOT);
	case 3:
		return uzd_entry_make_same((uint64_t) - (int64_t)i, 0);
	default:
		return 0;
	}
}

static bool counts_are(const struct uzd_region_counts *c, uint64_t res, uint64_t same,
		       uint64_t pool, uint64_t file, const char *what)
{
	bool good = c->resident == res && c->same == same && c->pool == pool && c->file == file;

	ok(good, "%s", what);
	if (!good)
		tap_diag("expected resident/same/pool/file %llu/%llu/%llu/%llu, saw "
			 "%llu/%llu/%llu/%llu",
			 (unsigned long long)res, (unsigned long long)same,
			 (unsigned long long)pool, (unsigned long long)file,
			 (unsigned long long)c->resident, (unsigned long long)c->same,
			 (unsigned long long)c->pool, (unsigned long long)c->file);
	return good;
}

static bool released_exactly(const struct released *rel, const struct uzd_region *r, size_t lo,
			     size_t hi)
{
	size_t want = 0;

	for (size_t i = lo; i < hi; i++)
		want += uzd_entry_state(mixed_entry(i)) == UZD_ENTRY_POOL ||
			uzd_entry_state(mixed_entry(i)) == UZD_ENTRY_FILE;
	if (rel->n != want) {
		tap_diag("expected %zu payloads released, saw %zu", want, rel->n);
		return false;
	}
	for (size_t k = 0; k < rel->n; k++) {
		size_t pg = rel->pages[k];

		if (pg < lo || pg >= hi || rel->entries[k] != mixed_entry(pg)) {
			tap_diag("release %zu: page %zu entry %#llx, expected pages %zu..%zu", k,
				 pg, (unsigned long long)rel->entries[k], lo, hi - 1);
			return false;
		}
	}
	for (size_t i = 0; i < r->npages; i++) {
		uint64_t want_e = i >= lo && i < hi ? 0 : mixed_entry(i);

		if (r->entries[i] != want_e) {
			tap_diag("page %zu: expected %#llx, saw %#llx", i,
				 (unsigned long long)want_e, (unsigned long long)r->entries[i]);
			return false;
		}
	}
	return true;
}

static void test_drop_range(void)
{
	struct uzd_region_table t;
	struct uzd_region_counts c;
	struct released rel = { 0 };
	struct uzd_region *r;
	uint32_t id = 0, id2 = 0;
	size_t n = 0;

	uzd_region_table_init(&t);
	create(&t, BASE, 20 * PG, &id);
	create(&t, BASE + 40 * PG, 4 * PG, &id2);
	r = uzd_region_find(&t, id);
	for (size_t i = 0; i < 20; i++)
		set_page(r, i, mixed_entry(i));
	set_page(uzd_region_find(&t, id2), 0, uzd_entry_make_pool(5000, 0));
	uzd_region_counts(r, &c);
	counts_are(&c, 4, 4, 4, 4, "counters count every page by state");
	uzd_region_table_counts(&t, &c);
	counts_are(&c, 4, 4, 5, 4, "the client's counters sum its regions");

	ok(uzd_region_drop_range(&t, BASE + 3 * PG, 9 * PG, release_record, &rel, &n) == 0 &&
		   released_exactly(&rel, r, 3, 12),
	   "dropping pages 3..11 empties exactly them and releases exactly their payloads");
	ok(n == 7, "the drop reports the 7 non-empty pages it emptied (saw %zu)", n);
	uzd_region_counts(r, &c);
	counts_are(&c, 2, 2, 2, 3, "counters follow a drop");
	ok(uzd_region_drop_range(&t, BASE + PG, PG + 1, release_record, &rel, NULL) == -EINVAL,
	   "an unaligned drop is refused");

	rel.n = 0;
	uzd_region_drop_range(&t, BASE + 18 * PG, 30 * PG, release_record, &rel, NULL);
	uzd_region_table_counts(&t, &c);
	ok(rel.n == 1 && rel.entries[0] == uzd_entry_make_pool(5000, 0) &&
		   uzd_region_find(&t, id2)->entries[0] == 0,
	   "a drop across a gap reaches the next region (released %zu)", rel.n);

	rel.n = 0;
	uzd_region_destroy(&t, id, release_record, &rel);
	ok(rel.n == 5, "destroy releases the 5 payloads still held (saw %zu)", rel.n);
	uzd_region_table_fini(&t, NULL, NULL);
}

static void test_drop_busy_page(void)
{
	struct uzd_region_table t;
	struct uzd_region_counts c;
	struct released rel = { 0 };
	struct uzd_region *r;
	uint64_t old;
	uint32_t id = 0;
	size_t n;
	int ret;

	uzd_region_table_init(&t);
	create(&t, BASE, 4 * PG, &id);
	r = uzd_region_find(&t, id);
	set_page(r, 0, uzd_entry_make_pool(10, 0));
	set_page(r, 1, uzd_entry_make_pool(11, 0));

	uzd_region_claim(r, 0, UZD_STATE_BIT(UZD_ENTRY_POOL), &old);
	uzd_region_drop_range(&t, BASE, PG, release_record, &rel, &n);
	uzd_region_drop_range(&t, BASE, PG, release_record, &rel, NULL);
	ok(rel.n == 0 && n == 1 && uzd_entry_busy_dropped(r->entries[0]),
	   "a drop only marks a BUSY page and releases nothing for it");
	ret = uzd_region_publish(r, 0, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	ok(ret == UZD_ENTRY_DROPPED && r->entries[0] == 0,
	   "the owner's publish then stores EMPTY and says so (ret %d)", ret);

	uzd_region_claim(r, 1, UZD_STATE_BIT(UZD_ENTRY_POOL), &old);
	uzd_region_drop_range(&t, BASE + PG, PG, release_record, &rel, NULL);
	ret = uzd_region_abort(r, 1, old);
	ok(ret == UZD_ENTRY_DROPPED && r->entries[1] == 0 && uzd_entry_pool_handle(old) == 11,
	   "an owner's abort after a drop stores EMPTY and leaves it the old handle to free");
	uzd_region_counts(r, &c);
	counts_are(&c, 0, 0, 0, 0, "counters are exact after drops under owners");
	ok(uzd_region_claim(r, 1, UZD_STATE_BIT(UZD_ENTRY_EMPTY), &old) == 0 &&
		   uzd_region_publish(r, 1, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0)) == 0,
	   "a dropped page can be faulted in again");
	uzd_region_table_fini(&t, release_record, &rel);
	ok(rel.n == 0, "nothing is released twice at teardown (saw %zu)", rel.n);
}

static void test_repoint(void)
{
	uint64_t pool = uzd_entry_make_pool(20, UZD_ENTRY_RAW), file = uzd_entry_make_file(99, 0);
	struct uzd_region_table t;
	struct uzd_region_counts c;
	struct released rel = { 0 };
	struct uzd_region *r;
	uint64_t old;
	uint32_t id = 0;

	uzd_region_table_init(&t);
	create(&t, BASE, 4 * PG, &id);
	r = uzd_region_find(&t, id);
	set_page(r, 0, pool);
	ok(uzd_region_repoint(r, 0, pool, file) == 0 && r->entries[0] == file,
	   "repoint swaps a settled entry for another in one step");
	uzd_region_counts(r, &c);
	counts_are(&c, 0, 0, 0, 1, "and moves its count from POOL to FILE");
	ok(uzd_region_repoint(r, 0, pool, file) == -ESTALE && r->entries[0] == file,
	   "a repoint from a value the entry no longer holds fails and changes nothing");
	uzd_region_claim(r, 0, UZD_STATE_BIT(UZD_ENTRY_FILE), &old);
	ok(uzd_region_repoint(r, 0, file, pool) == -EBUSY,
	   "a repoint of a page an owner holds fails with -EBUSY");
	uzd_region_abort(r, 0, old);
	ok(uzd_region_repoint(r, 0, file, uzd_entry_make_busy(file)) == -EINVAL,
	   "a repoint to BUSY is refused");
	uzd_region_drop_range(&t, BASE, PG, release_record, &rel, NULL);
	ok(uzd_region_repoint(r, 0, file, pool) == -ESTALE && rel.n == 1 && rel.entries[0] == file,
	   "after a drop the mover's swap fails: the payload was released once, by the drop");
	uzd_region_table_fini(&t, NULL, NULL);
}

/* ---- munmap: trim and split ---- */

struct released_at {
	size_t n, bad; /* bad: a payload that is not the page's, or outside the range */
	uintptr_t lo, hi;
};

static void release_check(const struct uzd_region *r, size_t pgidx, uint64_t e, void *arg)
{
	struct released_at *rel = arg;
	uintptr_t addr = r->start + pgidx * PG;

	rel->n++;
	if (addr < rel->lo || addr >= rel->hi || e != mixed_entry((addr - BASE) / PG)) {
		tap_diag("released %#llx for address %#lx, outside %#lx..%#lx or not its page's",
			 (unsigned long long)e, (unsigned long)addr, (unsigned long)rel->lo,
			 (unsigned long)rel->hi);
		rel->bad++;
	}
}

static bool unmap_check(struct uzd_region_table *t, size_t first, size_t n, size_t releases,
			uint32_t *tail_id)
{
	struct released_at rel = { .lo = BASE + first * PG, .hi = BASE + (first + n) * PG };
	int ret = uzd_region_unmap_range(t, rel.lo, n * PG, release_check, &rel, tail_id);

	if (ret || rel.n != releases || rel.bad)
		tap_diag(
			"unmap pages %zu..%zu: expected 0 and %zu releases, saw %d and %zu (%zu bad)",
			first, first + n - 1, releases, ret, rel.n, rel.bad);
	return !ret && rel.n == releases && !rel.bad;
}

/* Does @r hold mixed_entry() of its pages' addresses, @first.. of BASE? */
static bool holds_pages(const struct uzd_region *r, size_t first, size_t n)
{
	if (!r || r->start != BASE + first * PG || r->npages != n || r->memfd_off != first * PG) {
		tap_diag("expected pages %zu..%zu at memfd offset %zu, saw %#lx + %zu at %llu",
			 first, first + n - 1, first * PG, r ? (unsigned long)r->start : 0,
			 r ? r->npages : 0, r ? (unsigned long long)r->memfd_off : 0);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (r->entries[i] != mixed_entry(first + i)) {
			tap_diag("page %zu: expected %#llx, saw %#llx", first + i,
				 (unsigned long long)mixed_entry(first + i),
				 (unsigned long long)r->entries[i]);
			return false;
		}
	return true;
}

static void test_unmap_range(void)
{
	struct uzd_region_table t;
	struct uzd_region_counts c;
	struct uzd_region *head, *tail;
	uint32_t id = 0, tail_id = 0, id2 = 0;
	int head_fd, tail_fd;
	size_t pg;

	uzd_region_table_init(&t);
	create(&t, BASE, 20 * PG, &id);
	head = uzd_region_find(&t, id);
	strcpy(head->name, "heap");
	head_fd = head->memfd;
	for (size_t i = 0; i < 20; i++)
		set_page(head, i, mixed_entry(i));

	ok(uzd_region_unmap_range(&t, BASE + 4 * PG, 0, NULL, NULL, &tail_id) == 0 && t.n == 1 &&
		   tail_id == 0,
	   "unmapping nothing inside a region leaves it whole");
	ok(unmap_check(&t, 4, 4, 2, &tail_id) && tail_id != 0 && tail_id != id && t.n == 2,
	   "unmapping pages 4..7 splits the region and releases their 2 payloads");
	uzd_region_read_lock(&t);
	tail = uzd_region_find(&t, tail_id);
	ok(holds_pages(head, 0, 4) && holds_pages(tail, 8, 12),
	   "the head keeps pages 0..3 and the tail holds pages 8..19 at their memfd offsets");
	ok(!uzd_region_lookup(&t, BASE + 4 * PG, &pg) &&
		   !uzd_region_lookup(&t, BASE + 8 * PG - 1, &pg) &&
		   uzd_region_lookup(&t, BASE + 8 * PG, &pg) == tail && pg == 0,
	   "lookups find the hole empty and the tail from its first byte");
	tail_fd = tail->memfd;
	ok(tail_fd == head_fd && fcntl(tail_fd, F_GETFD) >= 0 && !strcmp(tail->name, "heap"),
	   "the tail shares the region's memfd (one descriptor per file) and its name");
	uzd_region_counts(head, &c);
	counts_are(&c, 1, 1, 1, 1, "the head counts its own pages");
	uzd_region_counts(tail, &c);
	counts_are(&c, 2, 3, 2, 2, "the tail counts the pages it took");
	uzd_region_read_unlock(&t);

	ok(unmap_check(&t, 8, 2, 0, NULL) && holds_pages(tail, 10, 10),
	   "unmapping the tail's first pages trims its head");
	ok(unmap_check(&t, 3, 2, 0, NULL) && holds_pages(head, 0, 3),
	   "unmapping across a region's last page and a hole trims its tail");
	ok(create(&t, BASE + 3 * PG, 7 * PG, &id2) == 0,
	   "a new region fits where the old one was unmapped");
	ok(unmap_check(&t, 0, 100, 6, NULL) && t.n == 0,
	   "unmapping everything destroys every region and releases the 6 payloads left");
	ok(fcntl(head_fd, F_GETFD) < 0 && fcntl(tail_fd, F_GETFD) < 0,
	   "the destroyed regions' memfds are closed");
	uzd_region_table_fini(&t, NULL, NULL);
}

/* The address space this process uses now: with RLIMIT_AS there, mmap fails. */
static rlim_t address_space_now(void)
{
	unsigned long kib = 0;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmSize: %lu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return (rlim_t)kib * 1024;
}

static void test_unmap_split_failure(void)
{
	struct uzd_region_table t;
	struct uzd_region *r;
	struct rlimit old_lim, lim;
	uint32_t id = 0, tail_id = 1;
	struct released_at rel = { .lo = BASE + 4 * PG, .hi = BASE + 8 * PG };
	int ret;

	uzd_region_table_init(&t);
	create(&t, BASE, 20 * PG, &id);
	r = uzd_region_find(&t, id);
	for (size_t i = 0; i < 20; i++)
		set_page(r, i, mixed_entry(i));
	getrlimit(RLIMIT_AS, &old_lim);
	lim = old_lim;
	lim.rlim_cur = address_space_now();
	setrlimit(RLIMIT_AS, &lim);
	ret = uzd_region_unmap_range(&t, rel.lo, 4 * PG, release_check, &rel, &tail_id);
	setrlimit(RLIMIT_AS, &old_lim);
	ok(ret == -ENOMEM && tail_id == 0 && t.n == 1 && r->npages == 20,
	   "a split whose tail cannot be allocated fails with -ENOMEM and keeps the region whole "
	   "(ret %d)",
	   ret);
	ok(rel.n == 2 && rel.bad == 0 && r->entries[5] == 0 && r->entries[7] == 0 &&
		   r->entries[8] == mixed_entry(8),
	   "and still empties the unmapped pages, releasing their payloads (saw %zu)", rel.n);
	uzd_region_table_fini(&t, NULL, NULL);
}

/* ---- mremap: uzd_region_move_range ---- */

struct moved_log {
	size_t n;
	uintptr_t lo, hi; /* every page reported must be in [lo, hi) */
	size_t outside;
};

static void moved_check(struct uzd_region *r, size_t pgidx, uint64_t entry, void *arg)
{
	struct moved_log *m = arg;
	uintptr_t a = r->start + pgidx * PG;

	(void)entry;
	m->n++;
	m->outside += a < m->lo || a >= m->hi;
}

static void test_move_range(void)
{
	const uintptr_t to = BASE + (1UL << 30);
	struct uzd_region_table t;
	struct uzd_region *r, *mid;
	struct moved_log log = { .lo = to, .hi = to + 8 * PG };
	uint32_t id = 0, stale = 0;
	size_t pg, nonempty = 0;
	bool entries_ok = true;

	uzd_region_table_init(&t);
	create(&t, BASE, 20 * PG, &id);
	r = uzd_region_find(&t, id);
	for (size_t i = 0; i < 20; i++)
		set_page(r, i, mixed_entry(i));
	create(&t, to + 2 * PG, 2 * PG, &stale); /* at the destination: the kernel unmapped it */
	ok(uzd_region_move_range(&t, BASE + 4 * PG, to, 8 * PG, NULL, moved_check, &log) == 0,
	   "moving pages 4..11 of a region elsewhere succeeds");
	uzd_region_read_lock(&t);
	mid = uzd_region_lookup(&t, to, &pg);
	ok(t.n == 3 && !uzd_region_find(&t, stale),
	   "the region splits in three pieces and the stale region at the destination goes");
	ok(holds_pages(uzd_region_lookup(&t, BASE, &pg), 0, 4) &&
		   holds_pages(uzd_region_lookup(&t, BASE + 12 * PG, &pg), 12, 8),
	   "the head and the tail stay where they were, with their pages");
	for (size_t i = 0; mid && i < 8; i++) {
		entries_ok &= mid->entries[i] == mixed_entry(4 + i);
		nonempty += mixed_entry(4 + i) != 0;
	}
	ok(mid && mid->start == to && mid->npages == 8 && mid->memfd_off == 4 * PG && entries_ok,
	   "the moved part starts at the destination with its entries and memfd offset");
	ok(!uzd_region_lookup(&t, BASE + 4 * PG, &pg) &&
		   !uzd_region_lookup(&t, BASE + 11 * PG, &pg),
	   "nothing is left at the old address");
	ok(log.n == nonempty && log.outside == 0,
	   "each moved page holding something is reported once, at its new address (%zu of %zu)",
	   log.n, nonempty);
	uzd_region_read_unlock(&t);
	ok(uzd_region_move_range(&t, to, BASE + 4 * PG, 8 * PG, NULL, NULL, NULL) == 0 &&
		   holds_pages(uzd_region_lookup(&t, BASE + 4 * PG, &pg), 4, 8),
	   "moving it back puts it between the head and the tail again");
	uzd_region_table_fini(&t, NULL, NULL);
}

/* Regions of one memfd hold one descriptor, closed with the last of them. */
static void test_regions_share_a_memfd(void)
{
	struct uzd_region_table t;
	struct uzd_region_args a = { .start = BASE, .len = 4 * PG, .memfd = new_memfd() };
	uint32_t id1 = 0, id2 = 0;
	int first = a.memfd, second;

	uzd_region_table_init(&t);
	ok(uzd_region_create(&t, &a, &id1) == 0, "a region is made on a memfd");
	a.start = BASE + 8 * PG;
	a.memfd_off = 8 * PG;
	a.memfd = second = fcntl(first, F_DUPFD_CLOEXEC, 0);
	ok(uzd_region_create(&t, &a, &id2) == 0 && fcntl(second, F_GETFD) < 0 &&
		   uzd_region_find(&t, id2)->memfd == first,
	   "a second region on another descriptor of the same memfd uses the first one, and "
	   "the second is closed");
	uzd_region_destroy(&t, id1, NULL, NULL);
	ok(fcntl(first, F_GETFD) >= 0, "destroying one region keeps the shared memfd open");
	uzd_region_destroy(&t, id2, NULL, NULL);
	ok(fcntl(first, F_GETFD) < 0 && t.nfiles == 0, "destroying the last one closes it");
	uzd_region_table_fini(&t, NULL, NULL);
}

/* ---- hammer: one fault thread, three reclaim threads ---- */

#define HAMMER_PAGES 64
#define NTHREADS 4

struct hammer {
	struct uzd_region_table t;
	uintptr_t start;
	size_t npages;
	uint64_t gen[HAMMER_PAGES]; /* written only by a page's owner */
	struct handles handles;
	bool with_drops;
	uint64_t met_drops; /* owners that found their page dropped */
	int stop;
};

struct worker {
	struct hammer *h;
	int id;
	struct rng rng;
	pthread_t thread;
	uint64_t moves, busy, stale, aborts, dropped;
};

/*
 * The owner's slow part (decompress, or fence + compress): yield now and
 * then while holding the page, so that racers, droppers above all, find
 * it BUSY on a 2-CPU machine.
 */
static void hold_page(struct worker *w)
{
	if (rng_below(&w->rng, 32) == 0)
		sched_yield();
}

static void met_drop(struct worker *w)
{
	w->dropped++;
	__atomic_fetch_add(&w->h->met_drops, 1, __ATOMIC_RELAXED);
}

static void count_failed_claim(struct worker *w, int ret)
{
	if (ret == -EBUSY)
		w->busy++;
	else
		w->stale++;
}

/* Fault: POOL (or EMPTY after a drop) -> RESIDENT, freeing the handle. */
static void fault_one(struct worker *w, struct uzd_region *r, size_t pg)
{
	unsigned int mask = UZD_STATE_BIT(UZD_ENTRY_POOL) | UZD_STATE_BIT(UZD_ENTRY_EMPTY);
	uint64_t old;
	int ret = uzd_region_claim(r, pg, mask, &old);

	if (ret) {
		count_failed_claim(w, ret);
		return;
	}
	w->h->gen[pg]++;
	hold_page(w);
	if (uzd_entry_state(old) == UZD_ENTRY_POOL)
		handle_release(&w->h->handles, uzd_entry_pool_handle(old));
	ret = uzd_region_publish(r, pg, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	w->moves++;
	if (ret == UZD_ENTRY_DROPPED)
		met_drop(w);
}

/* Reclaim: RESIDENT -> POOL with a fresh handle; one in 8 aborts. */
static void reclaim_one(struct worker *w, struct uzd_region *r, size_t pg)
{
	uint64_t old, handle;
	int ret = uzd_region_claim(r, pg, UZD_STATE_BIT(UZD_ENTRY_RESIDENT), &old);

	if (ret) {
		count_failed_claim(w, ret);
		return;
	}
	hold_page(w);
	if (rng_below(&w->rng, 8) == 0 || !handle_make(&w->h->handles, &handle)) {
		w->aborts++;
		if (uzd_region_abort(r, pg, old) == UZD_ENTRY_DROPPED) {
			/* Our page was dropped: the handle we meant to restore is ours. */
			if (uzd_entry_state(old) == UZD_ENTRY_POOL)
				handle_release(&w->h->handles, uzd_entry_pool_handle(old));
			met_drop(w);
		}
		return;
	}
	w->h->gen[pg]++;
	ret = uzd_region_publish(r, pg, uzd_entry_make_pool(handle, 0));
	w->moves++;
	if (ret == UZD_ENTRY_DROPPED) {
		/* The range went away while we held it: the new handle is ours. */
		handle_release(&w->h->handles, handle);
		met_drop(w);
	}
}

static void drop_some(struct worker *w)
{
	struct hammer *h = w->h;
	size_t first = rng_below(&w->rng, h->npages);
	size_t n = 1 + rng_below(&w->rng, 8);

	if (first + n > h->npages)
		n = h->npages - first;
	uzd_region_drop_range(&h->t, h->start + first * PG, n * PG, release_to_model, &h->handles,
			      NULL);
}

static void *hammer_thread(void *arg)
{
	struct worker *w = arg;
	struct hammer *h = w->h;

	while (!__atomic_load_n(&h->stop, __ATOMIC_RELAXED)) {
		size_t pg;
		uintptr_t addr = h->start + rng_below(&w->rng, h->npages) * PG + 17;
		struct uzd_region *r;

		if (h->with_drops && w->id == NTHREADS - 1) {
			drop_some(w);
			continue;
		}
		uzd_region_read_lock(&h->t);
		r = uzd_region_lookup(&h->t, addr, &pg);
		if (w->id == 0)
			fault_one(w, r, pg);
		else
			reclaim_one(w, r, pg);
		uzd_region_read_unlock(&h->t);
	}
	return NULL;
}

/*
 * A drop must land inside an owner's short hold to test the protocol; on
 * a loaded machine that may take longer than @seconds, so a run with
 * drops goes on (up to 2 s more) until owners have met 50 of them.
 */
static bool workers_done(struct hammer *h, double end)
{
	double t = now();

	if (t < end)
		return false;
	return !h->with_drops || __atomic_load_n(&h->met_drops, __ATOMIC_RELAXED) >= 50 ||
	       t > end + 2.0;
}

static void run_workers(struct hammer *h, struct worker *w, double seconds, uint64_t seed)
{
	double end = now() + seconds;

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .h = h, .id = i, .rng = { seed + (uint64_t)i * 7919 } };
		pthread_create(&w[i].thread, NULL, hammer_thread, &w[i]);
	}
	while (!workers_done(h, end))
		usleep(10000);
	__atomic_store_n(&h->stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(w[i].thread, NULL);
}

/* Every page starts RESIDENT, generation 0. */
static struct hammer *hammer_new(bool with_drops)
{
	struct hammer *h = calloc(1, sizeof(*h));
	uint32_t id = 0;

	uzd_region_table_init(&h->t);
	handles_init(&h->handles);
	h->start = BASE;
	h->npages = HAMMER_PAGES;
	h->with_drops = with_drops;
	create(&h->t, h->start, h->npages * PG, &id);
	for (size_t i = 0; i < h->npages; i++)
		set_page(h->t.regions[0], i, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	return h;
}

static void hammer_free(struct hammer *h, const char *what)
{
	uzd_region_table_fini(&h->t, release_to_model, &h->handles);
	check_handles(&h->handles, what);
	free(h);
}

static void test_hammer(uint64_t seed)
{
	struct hammer *h = hammer_new(false);
	struct worker w[NTHREADS];
	struct uzd_region *r = h->t.regions[0];
	struct uzd_region_counts c;
	uint64_t moves = 0, busy = 0, stale = 0, aborts = 0, gens = 0, res = 0, pool = 0, bad = 0;

	run_workers(h, w, HAMMER_SECONDS, seed);
	for (int i = 0; i < NTHREADS; i++) {
		moves += w[i].moves;
		busy += w[i].busy;
		stale += w[i].stale;
		aborts += w[i].aborts;
	}
	for (size_t i = 0; i < h->npages; i++) {
		enum uzd_entry_state s = uzd_entry_state(r->entries[i]);
		enum uzd_entry_state want = h->gen[i] & 1 ? UZD_ENTRY_POOL : UZD_ENTRY_RESIDENT;

		gens += h->gen[i];
		res += s == UZD_ENTRY_RESIDENT;
		pool += s == UZD_ENTRY_POOL;
		bad += s != want;
	}
	tap_diag("hammer: %llu moves, %llu aborts, %llu -EBUSY, %llu -ESTALE in %.1f s; %llu pages "
		 "in the pool at the end",
		 (unsigned long long)moves, (unsigned long long)aborts, (unsigned long long)busy,
		 (unsigned long long)stale, HAMMER_SECONDS, (unsigned long long)pool);
	ok(moves > 100 && busy > 0, "the hammer raced: many moves, some -EBUSY");
	ok(gens == moves, "no transition is lost or doubled (expected %llu, saw %llu)",
	   (unsigned long long)moves, (unsigned long long)gens);
	ok(bad == 0, "each page's final state matches its number of moves (%llu wrong)",
	   (unsigned long long)bad);
	uzd_region_counts(r, &c);
	counts_are(&c, res, 0, pool, 0, "counters are exact after the hammer");
	ok(handles_unreleased(&h->handles) == pool,
	   "every POOL page holds one live handle (expected %llu live, saw %llu)",
	   (unsigned long long)pool, (unsigned long long)handles_unreleased(&h->handles));
	hammer_free(h, "hammer");
}

static void test_hammer_with_drops(uint64_t seed)
{
	struct hammer *h = hammer_new(true);
	struct worker w[NTHREADS];
	struct uzd_region *r = h->t.regions[0];
	struct uzd_region_counts c;
	uint64_t dropped = 0, res = 0, pool = 0, other = 0;

	run_workers(h, w, DROP_SECONDS, seed ^ 0xd409);
	for (int i = 0; i < NTHREADS; i++)
		dropped += w[i].dropped;
	for (size_t i = 0; i < h->npages; i++) {
		enum uzd_entry_state s = uzd_entry_state(r->entries[i]);

		res += s == UZD_ENTRY_RESIDENT;
		pool += s == UZD_ENTRY_POOL;
		other += s != UZD_ENTRY_RESIDENT && s != UZD_ENTRY_POOL && s != UZD_ENTRY_EMPTY;
	}
	tap_diag("drops: %llu publishes or aborts found their page dropped",
		 (unsigned long long)dropped);
	ok(dropped > 0, "owners met drops of their pages (%llu times)",
	   (unsigned long long)dropped);
	ok(other == 0, "after drops under owners every page is settled (%llu not)",
	   (unsigned long long)other);
	uzd_region_counts(r, &c);
	counts_are(&c, res, 0, pool, 0, "counters are exact after drops under owners");
	hammer_free(h, "drops under owners");
}

/* ---- lookups while regions come and go ---- */

#define SLOTS 8
#define SLOT_PAGES 16

struct churn {
	struct uzd_region_table t;
	struct handles handles;
	int stop;
};

/* Move one page of whatever region holds @addr: EMPTY/RESIDENT <-> POOL. */
static bool churn_touch(struct churn *c, uintptr_t addr, uint64_t *bad)
{
	unsigned int mask = MASK_ALL;
	struct uzd_region *r;
	uint64_t old, handle, v;
	size_t pg;

	r = uzd_region_lookup(&c->t, addr, &pg);
	if (!r)
		return false;
	if (addr < r->start || addr - r->start >= r->len || pg >= r->npages)
		(*bad)++;
	if (uzd_region_claim(r, pg, mask, &old))
		return true;
	if (uzd_entry_state(old) == UZD_ENTRY_POOL) {
		handle_release(&c->handles, uzd_entry_pool_handle(old));
		v = uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0);
	} else if (handle_make(&c->handles, &handle)) {
		v = uzd_entry_make_pool(handle, 0);
	} else {
		uzd_region_abort(r, pg, old);
		return true;
	}
	uzd_region_publish(r, pg, v);
	return true;
}

static void *churn_reader(void *arg)
{
	struct churn *c = arg;
	struct rng rng = { (uint64_t)(uintptr_t)&rng };
	uint64_t found = 0, bad = 0;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		uintptr_t addr = BASE + rng_below(&rng, SLOTS * 2 * SLOT_PAGES * PG);

		uzd_region_read_lock(&c->t);
		found += churn_touch(c, addr, &bad);
		uzd_region_read_unlock(&c->t);
	}
	return (void *)(uintptr_t)(bad ? UINTPTR_MAX : found);
}

/*
 * One change to slot @s, made by the only writer: create a region at its
 * start, or destroy it, or unmap a random part of the slot (a trim, a
 * split or a destroy).  Returns false on an unexpected error.
 */
static bool churn_change(struct churn *c, struct rng *rng, uint32_t *ids, size_t s,
			 uint64_t *counts)
{
	uintptr_t slot = BASE + s * 2 * SLOT_PAGES * PG;
	size_t first = rng_below(rng, SLOT_PAGES), n = 1 + rng_below(rng, SLOT_PAGES);
	int ret;

	switch (rng_below(rng, 3)) {
	case 0:
		counts[0]++;
		ret = create(&c->t, slot, n * PG, &ids[s]);
		return ret == 0 || ret == -EEXIST;
	case 1:
		counts[1]++;
		ret = uzd_region_destroy(&c->t, ids[s], release_to_model, &c->handles);
		return ret == 0 || ret == -ENOENT;
	default:
		counts[2]++;
		return uzd_region_unmap_range(&c->t, slot + first * PG, n * PG, release_to_model,
					      &c->handles, NULL) == 0;
	}
}

static void test_lookup_during_churn(uint64_t seed)
{
	struct churn *c = calloc(1, sizeof(*c));
	uint32_t ids[SLOTS] = { 0 };
	struct rng rng = { seed };
	pthread_t th[2];
	uint64_t counts[3] = { 0 }, failures = 0;
	uintptr_t found[2];
	double end = now() + LOOKUP_SECONDS;

	uzd_region_table_init(&c->t);
	handles_init(&c->handles);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, churn_reader, c);
	while (now() < end)
		failures += !churn_change(c, &rng, ids, rng_below(&rng, SLOTS), counts);
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], (void **)&found[i]);
	tap_diag("churn: %llu creates, %llu destroys, %llu unmaps; %lu + %lu pages found by "
		 "readers",
		 (unsigned long long)counts[0], (unsigned long long)counts[1],
		 (unsigned long long)counts[2], (unsigned long)found[0], (unsigned long)found[1]);
	ok(failures == 0 && counts[0] > 100,
	   "regions are created, unmapped and destroyed under lookups (%llu errors)",
	   (unsigned long long)failures);
	ok(found[0] != UINTPTR_MAX && found[1] != UINTPTR_MAX && found[0] + found[1] > 0,
	   "every lookup during the churn found a region that holds its address");
	uzd_region_table_fini(&c->t, release_to_model, &c->handles);
	check_handles(&c->handles, "create, unmap and destroy under lookups");
	free(c);
}

/* ---- memory ---- */

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, rss = 0;

	if (f) {
		if (fscanf(f, "%ld %ld", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Pages of @r's entry array that are in memory, by mincore. */
static size_t entry_pages_resident(const struct uzd_region *r)
{
	size_t n = r->map_len / PG, in = 0;
	unsigned char *vec = malloc(n);

	if (!vec || mincore(r->entries, r->map_len, vec)) {
		free(vec);
		return (size_t)-1;
	}
	for (size_t i = 0; i < n; i++)
		in += vec[i] & 1;
	free(vec);
	return in;
}

static void test_rss(void)
{
	const size_t len = (size_t)4 << 30;
	struct uzd_region_table t;
	struct uzd_region_counts c;
	struct uzd_region *r;
	long base, created, touched;
	size_t in_before, in_after;
	uint32_t id = 0;

	uzd_region_table_init(&t);
	base = rss_kib();
	if (create(&t, BASE, len, &id)) {
		ok(false, "a 4 GiB region can be created");
		return;
	}
	r = uzd_region_find(&t, id);
	created = rss_kib();
	in_before = entry_pages_resident(r);
	for (size_t i = 0; i < r->npages; i++)
		set_page(r, i, uzd_entry_make(UZD_ENTRY_RESIDENT, 0, 0));
	touched = rss_kib();
	in_after = entry_pages_resident(r);
	tap_diag("4 GiB region (%zu pages): RSS +%ld KiB after create, +%ld KiB after touching "
		 "every entry; entry array %zu -> %zu pages resident",
		 r->npages, created - base, touched - base, in_before, in_after);
	ok(created - base <= 1024 && in_before == 0,
	   "a fresh 4 GiB region costs no entry memory (expected <= 1024 KiB, saw %ld)",
	   created - base);
	ok(in_after * PG + sizeof(*r) <= r->npages * 16,
	   "touching every entry of it costs at most 16 bytes per page (saw %.2f)",
	   (double)(in_after * PG + sizeof(*r)) / (double)r->npages);
#if defined(__SANITIZE_THREAD__)
	tap_skip("the process RSS includes ThreadSanitizer's shadow of every touched byte");
#else
	ok(touched - base <= 16 * 1024,
	   "and the whole process grows by at most 16 MiB (saw %ld KiB, %.2f bytes per page)",
	   touched - base, (double)(touched - base) * 1024 / (double)r->npages);
#endif
	uzd_region_counts(r, &c);
	counts_are(&c, r->npages, 0, 0, 0, "all its pages count as resident");
	uzd_region_unmap_range(&t, BASE + len / 2, len / 2, NULL, NULL, NULL);
	in_after = entry_pages_resident(r);
	ok(in_after == 1024,
	   "unmapping its upper half gives back half the entry array "
	   "(expected 1024 pages, saw %zu)",
	   in_after);
	uzd_region_table_fini(&t, NULL, NULL);
}

/* The counts quotas read without the lock follow every change of the table. */
static bool size_is(const struct uzd_region_table *t, size_t regions, size_t pages)
{
	size_t n, p;

	uzd_region_table_size(t, &n, &p);
	if (n != regions || p != pages)
		tap_diag("expected %zu regions of %zu pages, saw %zu of %zu", regions, pages, n, p);
	return n == regions && p == pages;
}

static void test_table_size(void)
{
	struct uzd_region_table t;
	uint32_t a = 0, b = 0;

	uzd_region_table_init(&t);
	ok(size_is(&t, 0, 0), "an empty table has no regions and no pages");
	create(&t, BASE, 20 * PG, &a);
	create(&t, BASE + 100 * PG, 10 * PG, &b);
	ok(size_is(&t, 2, 30), "two regions count their pages");
	uzd_region_unmap_range(&t, BASE + 4 * PG, 4 * PG, NULL, NULL, NULL);
	ok(size_is(&t, 3, 26), "a split keeps both halves' pages, less the hole");
	uzd_region_unmap_range(&t, BASE, 2 * PG, NULL, NULL, NULL);
	ok(size_is(&t, 3, 24), "a trimmed head counts its pages no more");
	uzd_region_move_range(&t, BASE + 10 * PG, BASE + 1000 * PG, 2 * PG, NULL, NULL, NULL);
	ok(size_is(&t, 5, 24), "a move splits out what it moves and keeps every page");
	uzd_region_unmap_range(&t, BASE + 95 * PG, 20 * PG, NULL, NULL, NULL);
	ok(size_is(&t, 4, 14), "unmapping a whole region takes its pages");
	uzd_region_table_fini(&t, NULL, NULL);
}

int main(void)
{
	uint64_t seed = rng_seed_from_env(0x5e610);

	tap_diag("seed %#llx (UZSWAP_TEST_SEED to rerun; thread timing is not)",
		 (unsigned long long)seed);
	test_encoding_round_trips();
	test_busy_encoding();
	test_same_fits();
	test_claim_publish_abort();
	test_create_validation();
	test_lookup_boundaries();
	test_drop_range();
	test_drop_busy_page();
	test_repoint();
	test_unmap_range();
	test_unmap_split_failure();
	test_regions_share_a_memfd();
	test_move_range();
	test_table_size();
	test_hammer(seed);
	test_hammer_with_drops(seed);
	test_lookup_during_churn(seed);
	test_rss();
	return tap_done();
}
