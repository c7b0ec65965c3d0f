/* SPDX-License-Identifier: MIT */
/*
 * client/uzi_table.c - the interposer's records of managed mappings, and
 * the slots of the memfd they map.
 *
 * struct uzi_table (client/uzi.h) is a sorted array of struct uzi_rec,
 * disjoint, found by binary search; and per slot of the memfd a count of
 * the records in it.  A record is split wherever a munmap, mprotect or
 * madvise boundary falls inside it, so that each record has one protection
 * and one set of fork flags; pieces of one mapping keep their slot.
 *
 * Memory: the arrays are anonymous mappings made with raw system calls and
 * grown by mremap, never malloc (client/uzi.h).  A mapping of the table
 * itself is small and unmanaged.
 *
 * Locking: every function here runs under uzi.lock, except that the
 * wrappers' fast path reads uzi.nrec without it.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "client/uzi.h"
#include "client/uzi_sys.h"

/* Grow raw array *@v of *@cap elements of @size bytes to hold @need. */
static int grow(void **v, size_t *cap, size_t size, size_t need)
{
	size_t ncap = *cap ? *cap : 64, old_bytes, new_bytes;
	void *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	old_bytes = (*cap * size + UZI_PAGE - 1) & ~(UZI_PAGE - 1);
	new_bytes = (ncap * size + UZI_PAGE - 1) & ~(UZI_PAGE - 1);
	if (*v)
		p = uzi_sys_mremap(*v, old_bytes, new_bytes, MREMAP_MAYMOVE, NULL);
	else
		p = uzi_sys_mmap(NULL, new_bytes, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	*v = p;
	*cap = ncap;
	return 0;
}

int uzi_table_reserve(struct uzi_table *t, size_t extra)
{
	return grow((void **)&t->v, &t->cap, sizeof(*t->v), t->n + extra);
}

static uintptr_t rec_end(const struct uzi_rec *r)
{
	return r->addr + r->len;
}

size_t uzi_table_first_after(const struct uzi_table *t, uintptr_t addr)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rec_end(&t->v[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool uzi_table_overlaps(const struct uzi_table *t, uintptr_t addr, size_t len)
{
	size_t i = uzi_table_first_after(t, addr);

	return i < t->n && t->v[i].addr < addr + len;
}

struct uzi_rec *uzi_table_find(struct uzi_table *t, uintptr_t addr)
{
	size_t i = uzi_table_first_after(t, addr);

	return i < t->n && t->v[i].addr <= addr ? &t->v[i] : NULL;
}

int uzi_table_insert(struct uzi_table *t, const struct uzi_rec *r)
{
	size_t i;
	int err = uzi_table_reserve(t, 1);

	if (err)
		return err;
	i = uzi_table_first_after(t, r->addr);
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = *r;
	t->n++;
	__atomic_store_n(&uzi.nrec, t->n, __ATOMIC_SEQ_CST);
	return 0;
}

void uzi_table_remove(struct uzi_table *t, size_t i)
{
	t->n--;
	memmove(&t->v[i], &t->v[i + 1], (t->n - i) * sizeof(*t->v));
	__atomic_store_n(&uzi.nrec, t->n, __ATOMIC_SEQ_CST);
}

int uzi_table_split_at(struct uzi_table *t, uintptr_t addr)
{
	struct uzi_rec *r = uzi_table_find(t, addr), tail;
	int err;

	if (!r || r->addr == addr)
		return 0;
	err = uzi_table_reserve(t, 1);
	if (err)
		return err;
	r = uzi_table_find(t, addr); /* the array may have moved */
	tail = *r;
	tail.addr = addr;
	tail.len = rec_end(r) - addr;
	tail.off = r->off + (addr - r->addr);
	r->len = addr - r->addr;
	uzi_slot_ref(t, uzi_slot_of(tail.off), 1);
	return uzi_table_insert(t, &tail);
}

bool uzi_table_file_busy(const struct uzi_table *t, uint64_t off, size_t len,
			 const struct uzi_rec *self)
{
	uint32_t slot = uzi_slot_of(off);

	/* Only pieces of the same slot can share file pages; usually there is one. */
	if (slot < t->next_slot && t->slot_refs[slot] <= 1)
		return false;
	for (size_t i = 0; i < t->n; i++) {
		const struct uzi_rec *r = &t->v[i];

		if (r != self && r->off < off + len && off < r->off + r->len)
			return true;
	}
	return false;
}

/* ---- slots ---- */

static int slots_grow(struct uzi_table *t, size_t need)
{
	size_t cap = t->slots_cap, cap2 = t->slots_cap;
	int err;

	err = grow((void **)&t->slot_refs, &cap, sizeof(uint32_t), need);
	if (err)
		return err;
	err = grow((void **)&t->free_slots, &cap2, sizeof(uint32_t), need);
	if (err)
		return err;
	t->slots_cap = cap < cap2 ? cap : cap2;
	return 0;
}

int uzi_slot_alloc(struct uzi_table *t, uint32_t *slot)
{
	int err;

	if (t->nfree) {
		*slot = t->free_slots[--t->nfree];
		t->slot_refs[*slot] = 0;
		return 0;
	}
	if (t->next_slot >= UZI_MAX_SLOTS)
		return -ENOSPC;
	err = slots_grow(t, (size_t)t->next_slot + 1);
	if (err)
		return err;
	*slot = t->next_slot++;
	t->slot_refs[*slot] = 0;
	return 0;
}

void uzi_slot_ref(struct uzi_table *t, uint32_t slot, int delta)
{
	if (slot >= t->next_slot)
		return;
	t->slot_refs[slot] += (uint32_t)delta;
	/* Room in free_slots for every slot was made when it was allocated. */
	if (t->slot_refs[slot] == 0)
		t->free_slots[t->nfree++] = slot;
}
