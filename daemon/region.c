/* SPDX-License-Identifier: MIT */
/*
 * daemon/region.c - region tables and the atomic page-entry transitions.
 *
 * A table is a sorted array of region pointers (see region.h for the
 * structs, the lock and the page protocol).  Create finds its slot by
 * binary search and checks only the two neighbours for overlap, which is
 * enough because the array is sorted and disjoint.  Lookup is the same
 * binary search; it is the fault path, so it takes no lock itself: the
 * caller already holds the read lock across lookup and its claim..publish.
 *
 * The entry array of a region is an anonymous MAP_NORESERVE mapping: EMPTY
 * is 0, so the pages of the array that hold only never-touched entries are
 * never faulted in.  Destroy walks the array only when the counters say it
 * still holds pool or file payloads, and stops once it has found them all,
 * so tearing down a large, mostly untouched region reads almost nothing.
 *
 * An munmap of part of a region trims it in place (start, memfd_off and
 * the entries pointer move; whole pages of the array no longer used are
 * given back with MADV_DONTNEED) or splits it: the tail becomes a new
 * region with a new id, a dup of the memfd and a fresh array holding the
 * tail's entries.  Everything a split needs is allocated before the table
 * changes, so a failure leaves the regions as they were.
 *
 * Every entry changes by compare-and-swap only.  Two writers may meet on
 * one entry: its owner (between claim and publish) and a dropper marking
 * it DROPPED; so publish is a CAS loop too, and whoever sees the mark
 * knows the payload is theirs to release.
 *
 * This file must never: block or spin on a BUSY entry, free a payload
 * itself (the callbacks do: the table knows no pool), or touch client
 * memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/region.h"

/* ---- raw entry transitions ---- */

int uzd_entry_claim(uint64_t *e, unsigned int state_mask, uint64_t *old)
{
	uint64_t v = __atomic_load_n(e, __ATOMIC_ACQUIRE);

	for (;;) {
		enum uzd_entry_state s = uzd_entry_state(v);

		*old = v;
		if (s == UZD_ENTRY_BUSY)
			return -EBUSY;
		if (!(state_mask & UZD_STATE_BIT(s)))
			return -ESTALE;
		if (__atomic_compare_exchange_n(e, &v, uzd_entry_make_busy(v), true,
						__ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
			return 0;
	}
}

/*
 * Leave BUSY for @to.  Only the owner leaves BUSY, and the only other
 * writer of a BUSY entry is a dropper setting the DROPPED mark, so the
 * loop ends after at most one retry for a mark (plus spurious failures).
 */
static int entry_leave_busy(uint64_t *e, uint64_t to)
{
	uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);

	if (uzd_entry_state(to) == UZD_ENTRY_BUSY)
		return -EINVAL;
	for (;;) {
		bool dropped;

		if (uzd_entry_state(v) != UZD_ENTRY_BUSY)
			return -EINVAL;
		dropped = uzd_entry_busy_dropped(v);
		if (__atomic_compare_exchange_n(e, &v, dropped ? 0 : to, true, __ATOMIC_RELEASE,
						__ATOMIC_RELAXED))
			return dropped ? UZD_ENTRY_DROPPED : 0;
	}
}

int uzd_entry_publish(uint64_t *e, uint64_t new_value)
{
	return entry_leave_busy(e, new_value);
}

int uzd_entry_abort(uint64_t *e, uint64_t old)
{
	return entry_leave_busy(e, old);
}

/* ---- counters ---- */

static uint64_t *counter_of(struct uzd_region *r, enum uzd_entry_state s)
{
	switch (s) {
	case UZD_ENTRY_RESIDENT:
		return &r->counts.resident;
	case UZD_ENTRY_SAME:
		return &r->counts.same;
	case UZD_ENTRY_POOL:
		return &r->counts.pool;
	case UZD_ENTRY_FILE:
		return &r->counts.file;
	default:
		return NULL; /* EMPTY is not counted; BUSY counts as its origin */
	}
}

static void count_inc(struct uzd_region *r, enum uzd_entry_state s)
{
	uint64_t *c = counter_of(r, s);

	if (c)
		__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static void count_dec(struct uzd_region *r, enum uzd_entry_state s)
{
	uint64_t *c = counter_of(r, s);

	if (c)
		__atomic_fetch_sub(c, 1, __ATOMIC_RELAXED);
}

void uzd_region_counts(const struct uzd_region *r, struct uzd_region_counts *out)
{
	out->resident = __atomic_load_n(&r->counts.resident, __ATOMIC_RELAXED);
	out->same = __atomic_load_n(&r->counts.same, __ATOMIC_RELAXED);
	out->pool = __atomic_load_n(&r->counts.pool, __ATOMIC_RELAXED);
	out->file = __atomic_load_n(&r->counts.file, __ATOMIC_RELAXED);
}

void uzd_region_table_counts(struct uzd_region_table *t, struct uzd_region_counts *out)
{
	struct uzd_region_counts c;

	memset(out, 0, sizeof(*out));
	uzd_region_read_lock(t);
	for (size_t i = 0; i < t->n; i++) {
		uzd_region_counts(t->regions[i], &c);
		out->resident += c.resident;
		out->same += c.same;
		out->pool += c.pool;
		out->file += c.file;
	}
	uzd_region_read_unlock(t);
}

/* ---- page transitions with counters ---- */

int uzd_region_claim(struct uzd_region *r, size_t pgidx, unsigned int state_mask, uint64_t *old)
{
	/* The page keeps counting in its old state until it is published. */
	return uzd_entry_claim(&r->entries[pgidx], state_mask, old);
}

/* Leave BUSY for @to, moving the page's count from its origin to @to. */
static int region_leave_busy(struct uzd_region *r, size_t pgidx, uint64_t to)
{
	uint64_t *e = &r->entries[pgidx];
	enum uzd_entry_state from = uzd_entry_busy_from(__atomic_load_n(e, __ATOMIC_RELAXED));
	int ret = entry_leave_busy(e, to);

	if (ret < 0)
		return ret;
	count_dec(r, from);
	if (ret != UZD_ENTRY_DROPPED)
		count_inc(r, uzd_entry_state(to));
	return ret;
}

int uzd_region_publish(struct uzd_region *r, size_t pgidx, uint64_t new_value)
{
	return region_leave_busy(r, pgidx, new_value);
}

int uzd_region_abort(struct uzd_region *r, size_t pgidx, uint64_t old)
{
	return region_leave_busy(r, pgidx, old);
}

int uzd_region_repoint(struct uzd_region *r, size_t pgidx, uint64_t expect, uint64_t new_value)
{
	uint64_t v = expect;

	if (uzd_entry_state(expect) == UZD_ENTRY_BUSY ||
	    uzd_entry_state(new_value) == UZD_ENTRY_BUSY)
		return -EINVAL;
	/* Release: whoever sees the new value sees what the mover wrote before. */
	if (!__atomic_compare_exchange_n(&r->entries[pgidx], &v, new_value, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return uzd_entry_state(v) == UZD_ENTRY_BUSY ? -EBUSY : -ESTALE;
	count_dec(r, uzd_entry_state(expect));
	count_inc(r, uzd_entry_state(new_value));
	return 0;
}

/* ---- dropping pages ---- */

static bool holds_payload(uint64_t e)
{
	enum uzd_entry_state s = uzd_entry_state(e);

	return s == UZD_ENTRY_POOL || s == UZD_ENTRY_FILE;
}

/*
 * Empty one page, or mark it DROPPED if it is BUSY so that its owner
 * empties it.  Returns true if the page was not EMPTY already.
 */
static bool drop_entry(struct uzd_region *r, size_t pgidx, uzd_release_fn release, void *arg)
{
	uint64_t *e = &r->entries[pgidx];
	uint64_t v = __atomic_load_n(e, __ATOMIC_RELAXED);

	for (;;) {
		uint64_t to;

		if (v == 0)
			return false;
		if (uzd_entry_state(v) == UZD_ENTRY_BUSY) {
			if (uzd_entry_busy_dropped(v))
				return true;
			to = v | UZD_BUSY_DROPPED;
		} else {
			to = 0;
		}
		if (__atomic_compare_exchange_n(e, &v, to, true, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			break;
	}
	if (uzd_entry_state(v) == UZD_ENTRY_BUSY)
		return true;
	count_dec(r, uzd_entry_state(v));
	if (holds_payload(v) && release)
		release(r, pgidx, v, arg);
	return true;
}

static size_t drop_pages(struct uzd_region *r, size_t first, size_t end, uzd_release_fn release,
			 void *arg)
{
	size_t n = 0;

	for (size_t i = first; i < end; i++)
		n += drop_entry(r, i, release, arg);
	return n;
}

/* ---- the sorted array ---- */

/* Index of the first region whose start is above @addr (0..n). */
static size_t upper_bound(const struct uzd_region_table *t, uintptr_t addr)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->regions[mid]->start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uintptr_t region_end(const struct uzd_region *r)
{
	return r->start + r->len;
}

/* Index of the region holding @addr, or else of the first one after it. */
static size_t first_ending_after(const struct uzd_region_table *t, uintptr_t addr)
{
	size_t i = upper_bound(t, addr);

	return i > 0 && region_end(t->regions[i - 1]) > addr ? i - 1 : i;
}

struct uzd_region *uzd_region_lookup(struct uzd_region_table *t, uintptr_t addr, size_t *pgidx)
{
	size_t i = upper_bound(t, addr);
	struct uzd_region *r;

	if (i == 0)
		return NULL;
	r = t->regions[i - 1];
	if (addr >= region_end(r))
		return NULL;
	*pgidx = (addr - r->start) >> UZD_PAGE_SHIFT;
	return r;
}

struct uzd_region *uzd_region_find(struct uzd_region_table *t, uint32_t id)
{
	/* By id: unregister and statistics only, so a scan is enough. */
	for (size_t i = 0; i < t->n; i++)
		if (t->regions[i]->id == id)
			return t->regions[i];
	return NULL;
}

static int table_reserve(struct uzd_region_table *t)
{
	struct uzd_region **v;
	size_t cap;

	if (t->n >= t->max_regions)
		return -ENOSPC;
	if (t->n < t->cap)
		return 0;
	cap = t->cap ? t->cap * 2 : 8;
	if (cap > UZD_REGION_MAX_PER_TABLE)
		cap = UZD_REGION_MAX_PER_TABLE;
	v = realloc(t->regions, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->regions = v;
	t->cap = cap;
	return 0;
}

/* n and managed_pages are read without the lock (uzd_region_table_size). */
static void table_count(struct uzd_region_table *t, size_t n, size_t pages)
{
	__atomic_store_n(&t->n, n, __ATOMIC_RELAXED);
	__atomic_store_n(&t->managed_pages, pages, __ATOMIC_RELAXED);
}

static void table_insert(struct uzd_region_table *t, size_t i, struct uzd_region *r)
{
	memmove(&t->regions[i + 1], &t->regions[i], (t->n - i) * sizeof(*t->regions));
	t->regions[i] = r;
	table_count(t, t->n + 1, t->managed_pages + r->npages);
}

static void table_remove(struct uzd_region_table *t, size_t i)
{
	size_t pages = t->managed_pages - t->regions[i]->npages;

	memmove(&t->regions[i], &t->regions[i + 1], (t->n - i - 1) * sizeof(*t->regions));
	table_count(t, t->n - 1, pages);
}

void uzd_region_table_size(const struct uzd_region_table *t, size_t *regions, size_t *pages)
{
	*regions = __atomic_load_n(&t->n, __ATOMIC_RELAXED);
	*pages = __atomic_load_n(&t->managed_pages, __ATOMIC_RELAXED);
}

/* A fresh id: ids are reused only after 2^32 creates, and never while live. */
static uint32_t table_new_id(struct uzd_region_table *t)
{
	for (;;) {
		uint32_t id = t->next_id++;

		if (id != 0 && !uzd_region_find(t, id))
			return id;
	}
}

/* ---- regions ---- */

static int check_args(const struct uzd_region_args *a)
{
	if (a->memfd < 0)
		return -EBADF;
	if (!a->len || (a->start | a->len | a->memfd_off) & (UZD_PAGE_SIZE - 1))
		return -EINVAL;
	if (a->len > UINTPTR_MAX - a->start || a->len > UINT64_MAX - a->memfd_off)
		return -EINVAL;
	if (a->memfd_off > (uint64_t)INT64_MAX - a->len) /* off_t must hold the end */
		return -EINVAL;
	if (a->name && strlen(a->name) >= UZD_REGION_NAME_MAX)
		return -EINVAL;
	if (a->len >> UZD_PAGE_SHIFT > UZD_REGION_MAX_PAGES)
		return -E2BIG;
	return 0;
}

static size_t page_round_up(size_t n)
{
	return (n + UZD_PAGE_SIZE - 1) & ~(UZD_PAGE_SIZE - 1);
}

static int region_alloc(const struct uzd_region_args *a, struct uzd_region **out)
{
	struct uzd_region *r = calloc(1, sizeof(*r));
	void *map;

	if (!r)
		return -ENOMEM;
	r->start = a->start;
	r->len = a->len;
	r->npages = a->len >> UZD_PAGE_SHIFT;
	r->memfd = a->memfd;
	r->memfd_off = a->memfd_off;
	if (a->name)
		strcpy(r->name, a->name); /* length checked by check_args */
	r->map_len = page_round_up(r->npages * sizeof(uint64_t));
	/*
	 * NORESERVE: the array is sized for the whole region but only the
	 * pages holding touched entries are ever backed (EMPTY is 0).
	 */
	map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED) {
		free(r);
		return -ENOMEM;
	}
	r->map = map;
	r->entries = map;
	*out = r;
	return 0;
}

/* Frees a region that never held a page, and leaves its memfd open. */
static void region_discard(struct uzd_region *r)
{
	munmap(r->map, r->map_len);
	free(r);
}

/* Hands every remaining POOL/FILE payload of @r to @release. */
static void region_release_all(struct uzd_region *r, uzd_release_fn release, void *arg)
{
	struct uzd_region_counts c;
	uint64_t left;

	uzd_region_counts(r, &c);
	left = c.pool + c.file;
	for (size_t i = 0; left && i < r->npages; i++) {
		uint64_t v = __atomic_load_n(&r->entries[i], __ATOMIC_ACQUIRE);

		/* No one holds the read lock on a region being freed. */
		if (uzd_entry_state(v) == UZD_ENTRY_BUSY) {
			fprintf(stderr, "uzd_region: region %u (%s): page %zu BUSY at destroy\n",
				r->id, r->name, i);
			abort();
		}
		if (!holds_payload(v))
			continue;
		left--;
		if (release)
			release(r, i, v, arg);
	}
}

/* ---- the memfds behind regions ---- */

static struct uzd_region_file *file_of_fd(struct uzd_region_table *t, int fd)
{
	for (size_t i = 0; i < t->nfiles; i++)
		if (t->files[i].fd == fd)
			return &t->files[i];
	return NULL;
}

/*
 * Take a reference on the file of descriptor *@fd, which the caller owns:
 * a file the table knows already keeps its descriptor, and *@fd is closed
 * and replaced by it.  Write lock held.  0 or -ENOMEM, -errno from fstat.
 */
static int file_take(struct uzd_region_table *t, int *fd)
{
	struct uzd_region_file *f;
	struct stat st;

	if (fstat(*fd, &st) < 0)
		return -errno;
	for (size_t i = 0; i < t->nfiles; i++) {
		f = &t->files[i];
		if (f->dev == st.st_dev && f->ino == st.st_ino) {
			if (f->fd != *fd)
				close(*fd);
			*fd = f->fd;
			f->refs++;
			return 0;
		}
	}
	if (t->nfiles == t->files_cap) {
		size_t cap = t->files_cap ? 2 * t->files_cap : 4;
		struct uzd_region_file *v = realloc(t->files, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->files = v;
		t->files_cap = cap;
	}
	t->files[t->nfiles++] = (struct uzd_region_file){ st.st_dev, st.st_ino, *fd, 1 };
	return 0;
}

/* A region lets go of its memfd: the last one closes it.  Write lock held (or no users). */
static void file_put(struct uzd_region_table *t, int fd)
{
	struct uzd_region_file *f = file_of_fd(t, fd);

	if (!f) {
		close(fd);
		return;
	}
	if (--f->refs)
		return;
	close(fd);
	*f = t->files[--t->nfiles];
}

static void region_free(struct uzd_region_table *t, struct uzd_region *r, uzd_release_fn release,
			void *arg)
{
	region_release_all(r, release, arg);
	file_put(t, r->memfd);
	region_discard(r);
}

int uzd_region_create(struct uzd_region_table *t, const struct uzd_region_args *a, uint32_t *id)
{
	struct uzd_region *r;
	size_t i;
	int ret;

	ret = check_args(a);
	if (ret)
		return ret;
	ret = region_alloc(a, &r);
	if (ret)
		return ret;
	pthread_rwlock_wrlock(&t->lock);
	i = upper_bound(t, a->start);
	/* Sorted and disjoint: only the two neighbours can overlap. */
	if ((i > 0 && region_end(t->regions[i - 1]) > a->start) ||
	    (i < t->n && t->regions[i]->start < a->start + a->len)) {
		ret = -EEXIST;
		goto err_unlock;
	}
	ret = table_reserve(t);
	if (ret == 0)
		ret = file_take(t, &r->memfd);
	if (ret)
		goto err_unlock;
	r->id = table_new_id(t);
	table_insert(t, i, r);
	*id = r->id;
	pthread_rwlock_unlock(&t->lock);
	return 0;

err_unlock:
	pthread_rwlock_unlock(&t->lock);
	region_discard(r);
	return ret;
}

int uzd_region_destroy(struct uzd_region_table *t, uint32_t id, uzd_release_fn release, void *arg)
{
	struct uzd_region *r = NULL;

	pthread_rwlock_wrlock(&t->lock);
	for (size_t i = 0; i < t->n; i++) {
		if (t->regions[i]->id == id) {
			r = t->regions[i];
			table_remove(t, i);
			break;
		}
	}
	if (r)
		/* Unreachable now, and no reader held it past our write lock. */
		region_free(t, r, release, arg);
	pthread_rwlock_unlock(&t->lock);
	return r ? 0 : -ENOENT;
}

/* Page-aligned and not wrapping (a zero length is a valid no-op). */
static bool range_valid(uintptr_t addr, size_t len)
{
	return !((addr | len) & (UZD_PAGE_SIZE - 1)) && len <= UINTPTR_MAX - addr;
}

int uzd_region_drop_range(struct uzd_region_table *t, uintptr_t addr, size_t len,
			  uzd_release_fn release, void *arg, size_t *dropped)
{
	uintptr_t end = addr + len;
	size_t i, n = 0;

	if (!range_valid(addr, len))
		return -EINVAL;
	uzd_region_read_lock(t);
	for (i = first_ending_after(t, addr); i < t->n && t->regions[i]->start < end; i++) {
		struct uzd_region *r = t->regions[i];
		uintptr_t lo = addr > r->start ? addr : r->start;
		uintptr_t hi = end < region_end(r) ? end : region_end(r);

		n += drop_pages(r, (lo - r->start) >> UZD_PAGE_SHIFT,
				(hi - r->start) >> UZD_PAGE_SHIFT, release, arg);
	}
	uzd_region_read_unlock(t);
	if (dropped)
		*dropped = n;
	return 0;
}

/* ---- munmap: trim and split ---- */

/*
 * Give back the pages of the entry array that no longer hold an entry of
 * the region (after a trim): whole pages below entries[0] and above
 * entries[npages - 1].  MADV_DONTNEED also zeroes them, so they read as
 * EMPTY if anyone looked, which nobody does.
 */
static void region_release_unused(struct uzd_region *r)
{
	char *map = (char *)r->map;
	size_t head = ((char *)r->entries - map) & ~(UZD_PAGE_SIZE - 1);
	size_t tail = page_round_up((size_t)((char *)(r->entries + r->npages) - map));

	if (head)
		madvise(map, head, MADV_DONTNEED);
	if (tail < r->map_len)
		madvise(map + tail, r->map_len - tail, MADV_DONTNEED);
}

/* Keep only pages [first, end) of @r, a region of @t; the others are EMPTY already. */
static void region_trim(struct uzd_region_table *t, struct uzd_region *r, size_t first, size_t end)
{
	table_count(t, t->n, t->managed_pages - r->npages + (end - first));
	r->start += first << UZD_PAGE_SHIFT;
	r->memfd_off += (uint64_t)first << UZD_PAGE_SHIFT;
	r->entries += first;
	r->npages = end - first;
	r->len = r->npages << UZD_PAGE_SHIFT;
	region_release_unused(r);
}

/*
 * Everything the tail of @r from page @first needs, allocated before the
 * table changes, so that a failure leaves it as it was.
 */
static int split_prepare(struct uzd_region_table *t, const struct uzd_region *r, size_t first,
			 struct uzd_region **out)
{
	struct uzd_region_args a = {
		.start = r->start + (first << UZD_PAGE_SHIFT),
		.len = r->len - (first << UZD_PAGE_SHIFT),
		.memfd_off = r->memfd_off + ((uint64_t)first << UZD_PAGE_SHIFT),
		.name = r->name,
	};
	int ret = table_reserve(t);

	if (ret)
		return ret;
	/* The halves share the memfd: a reference each (file_put closes it last). */
	a.memfd = r->memfd;
	ret = region_alloc(&a, out);
	if (ret == 0)
		file_of_fd(t, r->memfd)->refs++;
	return ret;
}

/*
 * Move pages [first, npages) of @r, with their counts, into @tail (write
 * lock held: no page is BUSY).  Only non-EMPTY entries are written, so the
 * tail's array costs memory only where the head's did.
 */
static void split_move(struct uzd_region *r, size_t first, struct uzd_region *tail)
{
	for (size_t i = 0; i < tail->npages; i++) {
		uint64_t v = r->entries[first + i];

		if (!v)
			continue;
		tail->entries[i] = v;
		r->entries[first + i] = 0;
		count_dec(r, uzd_entry_state(v));
		count_inc(tail, uzd_entry_state(v));
	}
}

/* The region strictly around [addr, end), which an unmap would split. */
static struct uzd_region *split_target(struct uzd_region_table *t, uintptr_t addr, uintptr_t end)
{
	size_t i = upper_bound(t, addr);
	struct uzd_region *r = i ? t->regions[i - 1] : NULL;

	return r && r->start < addr && end < region_end(r) ? r : NULL;
}

/* Write lock held: apply the unmap of [addr, end) to region @i. */
static void unmap_one(struct uzd_region_table *t, size_t i, uintptr_t addr, uintptr_t end,
		      struct uzd_region *tail, uzd_release_fn release, void *arg)
{
	struct uzd_region *r = t->regions[i];
	size_t a = addr > r->start ? (addr - r->start) >> UZD_PAGE_SHIFT : 0;
	size_t b = end < region_end(r) ? (end - r->start) >> UZD_PAGE_SHIFT : r->npages;

	drop_pages(r, a, b, release, arg);
	if (a == 0 && b == r->npages) {
		table_remove(t, i);
		region_free(t, r, release, arg);
	} else if (tail) {
		split_move(r, b, tail);
		region_trim(t, r, 0, a);
		tail->id = table_new_id(t);
		table_insert(t, i + 1, tail);
	} else if (a == 0) {
		region_trim(t, r, b, r->npages); /* the head went */
	} else {
		region_trim(t, r, 0, a); /* the tail went */
	}
}

/* Write lock held: [addr, end) lies strictly inside @r, which splits. */
static int unmap_split(struct uzd_region_table *t, struct uzd_region *r, uintptr_t addr,
		       uintptr_t end, uzd_release_fn release, void *arg, uint32_t *tail_id)
{
	size_t i = upper_bound(t, addr) - 1;
	struct uzd_region *tail;
	int ret;

	ret = split_prepare(t, r, (end - r->start) >> UZD_PAGE_SHIFT, &tail);
	if (ret) {
		/* Nothing leaks: the pages go, only the hole stays. */
		drop_pages(r, (addr - r->start) >> UZD_PAGE_SHIFT,
			   (end - r->start) >> UZD_PAGE_SHIFT, release, arg);
		return ret;
	}
	unmap_one(t, i, addr, end, tail, release, arg);
	if (tail_id)
		*tail_id = tail->id;
	return 0;
}

/* Write lock held: every region touching [addr, end) loses that part. */
static void unmap_spanning(struct uzd_region_table *t, uintptr_t addr, uintptr_t end,
			   uzd_release_fn release, void *arg)
{
	size_t i = first_ending_after(t, addr);

	while (i < t->n && t->regions[i]->start < end) {
		size_t n = t->n;

		unmap_one(t, i, addr, end, NULL, release, arg);
		/* A removed region shifts the next one into slot i. */
		if (t->n == n)
			i++;
	}
}

int uzd_region_unmap_range(struct uzd_region_table *t, uintptr_t addr, size_t len,
			   uzd_release_fn release, void *arg, uint32_t *tail_id)
{
	struct uzd_region *r;
	int ret = 0;

	if (!range_valid(addr, len))
		return -EINVAL;
	if (tail_id)
		*tail_id = 0;
	if (!len)
		return 0; /* else a region around it would split with no hole */
	pthread_rwlock_wrlock(&t->lock);
	r = split_target(t, addr, addr + len);
	if (r)
		ret = unmap_split(t, r, addr, addr + len, release, arg, tail_id);
	else
		unmap_spanning(t, addr, addr + len, release, arg);
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

/* ---- the table ---- */

int uzd_region_table_init(struct uzd_region_table *t)
{
	pthread_rwlockattr_t attr;
	int ret;

	memset(t, 0, sizeof(*t));
	t->next_id = 1;
	t->max_regions = UZD_REGION_MAX_PER_TABLE;
	ret = pthread_rwlockattr_init(&attr);
	if (ret)
		return -ret;
	/* Writers first: a busy fault path must not starve an unregister. */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	ret = pthread_rwlock_init(&t->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	return -ret;
}

void uzd_region_table_fini(struct uzd_region_table *t, uzd_release_fn release, void *arg)
{
	for (size_t i = 0; i < t->n; i++)
		region_free(t, t->regions[i], release, arg);
	free(t->regions);
	free(t->files);
	pthread_rwlock_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

void uzd_region_read_lock(struct uzd_region_table *t)
{
	pthread_rwlock_rdlock(&t->lock);
}

void uzd_region_read_unlock(struct uzd_region_table *t)
{
	pthread_rwlock_unlock(&t->lock);
}

void uzd_region_write_lock(struct uzd_region_table *t)
{
	pthread_rwlock_wrlock(&t->lock);
}

void uzd_region_write_unlock(struct uzd_region_table *t)
{
	pthread_rwlock_unlock(&t->lock);
}

/* ---- mremap: moving a range ---- */

/* Write lock held: make a region boundary fall at @addr.  0 or the split's error. */
static int split_at(struct uzd_region_table *t, uintptr_t addr)
{
	size_t i = upper_bound(t, addr);
	struct uzd_region *r = i ? t->regions[i - 1] : NULL, *tail;
	size_t first;
	int ret;

	if (!r || r->start == addr || addr >= region_end(r))
		return 0;
	first = (addr - r->start) >> UZD_PAGE_SHIFT;
	ret = split_prepare(t, r, first, &tail);
	if (ret)
		return ret;
	split_move(r, first, tail);
	region_trim(t, r, 0, first);
	tail->id = table_new_id(t);
	table_insert(t, i, tail);
	return 0;
}

int uzd_region_move_range(struct uzd_region_table *t, uintptr_t from, uintptr_t to, size_t len,
			  uzd_release_fn release, uzd_moved_fn moved, void *arg)
{
	struct uzd_region *batch[64];
	size_t i, n;
	int ret;

	if (!range_valid(from, len) || !range_valid(to, len))
		return -EINVAL;
	if (!len || from == to)
		return 0;
	pthread_rwlock_wrlock(&t->lock);
	ret = split_at(t, from);
	if (ret == 0)
		ret = split_at(t, from + len);
	if (ret) {
		/* Cannot move part of a region: drop the range rather than leave it behind. */
		unmap_spanning(t, from, from + len, release, arg);
		goto out;
	}
	/* The kernel unmapped the destination: whatever is there is stale. */
	unmap_spanning(t, to, to + len, release, arg);
	do {
		/* Take the regions of the range out (a few at a time), shift them, put them back. */
		n = 0;
		i = first_ending_after(t, from);
		while (i < t->n && t->regions[i]->start < from + len && n < 64) {
			batch[n++] = t->regions[i];
			table_remove(t, i);
		}
		for (size_t k = 0; k < n; k++) {
			struct uzd_region *r = batch[k];

			struct uzd_region_counts c;
			uint64_t left;

			r->start = r->start - from + to;
			table_insert(t, upper_bound(t, r->start), r);
			uzd_region_counts(r, &c);
			left = c.resident + c.same + c.pool + c.file;
			for (size_t p = 0; moved && left && p < r->npages; p++) {
				uint64_t v = __atomic_load_n(&r->entries[p], __ATOMIC_RELAXED);

				if (v) {
					moved(r, p, v, arg);
					left--;
				}
			}
		}
	} while (n == 64);
out:
	pthread_rwlock_unlock(&t->lock);
	return ret;
}

void uzd_region_set_entry(struct uzd_region *r, size_t pgidx, uint64_t v)
{
	__atomic_store_n(&r->entries[pgidx], v, __ATOMIC_RELEASE);
	count_inc(r, uzd_entry_state(v));
}
