/* SPDX-License-Identifier: MIT */
/*
 * daemon/entry.h - the 64-bit entry each managed page has in its region.
 *
 * One word says where a page is, so that a state change is a single
 * compare-and-swap and no lock is needed per page (design.md §2):
 *
 *   63    60 59    56 55                                              0
 *  +--------+--------+-------------------------------------------------+
 *  | state  | flags  | payload (56 bits), meaning set by the state     |
 *  +--------+--------+-------------------------------------------------+
 *
 *  EMPTY     never touched, or discarded: reads as zeros.  Always the
 *            value 0, so an untouched page of the entry array (an
 *            anonymous mapping) costs no memory.  Payload 0.
 *  RESIDENT  the page is in the client's memfd.  Payload 0.
 *  SAME      every 64-bit word of the page is one value; the payload is
 *            its low 56 bits, sign-extended on the way out.  Only words
 *            for which uzd_entry_same_fits() holds go here; others are
 *            compressed like any page.
 *  POOL      in the compressed pool; payload: the zpool handle (they fit
 *            in ZPOOL_HANDLE_BITS = 56 bits, alloc/zpool.h).
 *  FILE      in the backing file; payload: the slot.
 *  BUSY      a thread owns the page while it moves between states.  The
 *            flags are those of the value it came from; the payload keeps
 *            the state it came from (bits 3..0) and the DROPPED mark
 *            (bit 4, set by a concurrent drop of the range, see region.h).
 *            The owner keeps the full old value itself, to undo the move.
 *
 * Flags (bits 59..56): bit 56 HOT, the page refaulted soon after it was
 * evicted, or was touched while reclaim sampled it, so the next eviction
 * round passes it over.  Bit 57 RAW, with POOL: the object is the page
 * itself, UZC_PAGE_SIZE bytes with no object header (daemon/object.h: a
 * header would push an incompressible page past the pool's largest
 * object).  Bit 58 SAMPLED, with RESIDENT: reclaim unmapped the page from
 * the client to see whether it is touched again (daemon/sample.h), and it
 * has not faulted in since; whoever makes a new RESIDENT value leaves it
 * clear.  Bit 59 SHARED, with POOL or FILE: other entries (of a fork child
 * or parent, daemon/fork.c) hold the same payload; its owners are counted
 * in the daemon's shared table (daemon/shared.h), and whoever lets go of
 * such a payload frees it only as its last owner (daemon/client.h).  No
 * bit is reserved any more: a new flag needs a format change.
 *
 * Everything here is pure arithmetic on values; the atomic transitions
 * (claim, publish, abort) are in daemon/region.h.
 */
#ifndef UZSWAP_DAEMON_ENTRY_H
#define UZSWAP_DAEMON_ENTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "alloc/zpool.h"

#define UZD_ENTRY_STATE_SHIFT 60
#define UZD_ENTRY_FLAGS_SHIFT 56
#define UZD_ENTRY_PAYLOAD_BITS 56
#define UZD_ENTRY_PAYLOAD_MASK ((UINT64_C(1) << UZD_ENTRY_PAYLOAD_BITS) - 1)
#define UZD_ENTRY_FLAGS_MASK 0xfu

enum uzd_entry_state {
	UZD_ENTRY_EMPTY = 0,
	UZD_ENTRY_RESIDENT = 1,
	UZD_ENTRY_SAME = 2,
	UZD_ENTRY_POOL = 3,
	UZD_ENTRY_FILE = 4,
	UZD_ENTRY_BUSY = 5,
};
#define UZD_ENTRY_NSTATES 6

/* A set of states, for uzd_entry_claim(): UZD_STATE_BIT(POOL) | ... */
#define UZD_STATE_BIT(state) (1u << (state))

/* Flags, as the 4-bit field (not shifted). */
#define UZD_ENTRY_HOT 0x1u
#define UZD_ENTRY_RAW 0x2u
#define UZD_ENTRY_SAMPLED 0x4u
#define UZD_ENTRY_SHARED 0x8u
#define UZD_ENTRY_FLAGS_DEFINED \
	(UZD_ENTRY_HOT | UZD_ENTRY_RAW | UZD_ENTRY_SAMPLED | UZD_ENTRY_SHARED)

/* The payload of a BUSY entry. */
#define UZD_BUSY_FROM_MASK 0xfu
#define UZD_BUSY_DROPPED (UINT64_C(1) << 4)

_Static_assert(ZPOOL_HANDLE_BITS <= UZD_ENTRY_PAYLOAD_BITS, "a pool handle must fit the payload");

/*
 * Bits of @payload above the 56 of the field are cut off: callers that
 * cannot prove their value fits check it first (uzd_entry_payload_fits,
 * uzd_entry_same_fits).  Reserved flags are never written.
 */
static inline uint64_t uzd_entry_make(enum uzd_entry_state state, unsigned int flags,
				      uint64_t payload)
{
	return (uint64_t)state << UZD_ENTRY_STATE_SHIFT |
	       (uint64_t)(flags & UZD_ENTRY_FLAGS_DEFINED) << UZD_ENTRY_FLAGS_SHIFT |
	       (payload & UZD_ENTRY_PAYLOAD_MASK);
}

static inline enum uzd_entry_state uzd_entry_state(uint64_t e)
{
	return (enum uzd_entry_state)(e >> UZD_ENTRY_STATE_SHIFT);
}

static inline unsigned int uzd_entry_flags(uint64_t e)
{
	return (unsigned int)(e >> UZD_ENTRY_FLAGS_SHIFT) & UZD_ENTRY_FLAGS_MASK;
}

static inline uint64_t uzd_entry_payload(uint64_t e)
{
	return e & UZD_ENTRY_PAYLOAD_MASK;
}

static inline bool uzd_entry_payload_fits(uint64_t payload)
{
	return payload <= UZD_ENTRY_PAYLOAD_MASK;
}

/* @e with its flags replaced by @flags (reserved bits dropped). */
static inline uint64_t uzd_entry_with_flags(uint64_t e, unsigned int flags)
{
	return uzd_entry_make(uzd_entry_state(e), flags, uzd_entry_payload(e));
}

/*
 * A same-filled word fits when bits 63..55 are all equal, i.e. it is the
 * sign extension of its low 56 bits.  That keeps the common fills (0, -1,
 * small counters, small negative numbers) and sends the rest to the
 * compressor, which shrinks a same-filled page to a few bytes anyway.
 */
static inline bool uzd_entry_same_fits(uint64_t word)
{
	return (uint64_t)((int64_t)(word << 8) >> 8) == word;
}

static inline uint64_t uzd_entry_make_same(uint64_t word, unsigned int flags)
{
	return uzd_entry_make(UZD_ENTRY_SAME, flags, word);
}

/* The fill word of a SAME entry: bits 63..56 of the entry drop out. */
static inline uint64_t uzd_entry_same_word(uint64_t e)
{
	return (uint64_t)((int64_t)(e << 8) >> 8);
}

static inline uint64_t uzd_entry_make_pool(unsigned long handle, unsigned int flags)
{
	return uzd_entry_make(UZD_ENTRY_POOL, flags, handle);
}

static inline unsigned long uzd_entry_pool_handle(uint64_t e)
{
	return (unsigned long)uzd_entry_payload(e);
}

static inline uint64_t uzd_entry_make_file(uint64_t slot, unsigned int flags)
{
	return uzd_entry_make(UZD_ENTRY_FILE, flags, slot);
}

static inline uint64_t uzd_entry_file_slot(uint64_t e)
{
	return uzd_entry_payload(e);
}

/* The BUSY value that stands for @old while its owner moves it. */
static inline uint64_t uzd_entry_make_busy(uint64_t old)
{
	return uzd_entry_make(UZD_ENTRY_BUSY, uzd_entry_flags(old), uzd_entry_state(old));
}

static inline enum uzd_entry_state uzd_entry_busy_from(uint64_t e)
{
	return (enum uzd_entry_state)(uzd_entry_payload(e) & UZD_BUSY_FROM_MASK);
}

static inline bool uzd_entry_busy_dropped(uint64_t e)
{
	return uzd_entry_payload(e) & UZD_BUSY_DROPPED;
}

#endif /* UZSWAP_DAEMON_ENTRY_H */
