/* SPDX-License-Identifier: MIT */
/*
 * daemon/bfile.h - the backing file: compressed pages packed on disk.
 *
 * The last tier (design.md §2): what the pool's LRU writes back lands here,
 * as the compressed bytes, not as 4 KiB pages.  The file is a row of
 * segments of UZD_BFILE_SEG_SIZE bytes; records are appended, packed to
 * 8 bytes, into the one open segment, through a staging buffer that is the
 * segment's unwritten tail.  A record is a 16-byte header, then the page's
 * bytes as its codec left them:
 *
 *   word0 (8)  page number (address >> 12) << 16 | codec << 12 | (len - 1)
 *   client (4) the owner's client id
 *   crc (4)    CRC-32C of word0, client and the payload
 *
 * so a record read back names its owner and proves it is intact: a read
 * is checked against the page it was read for, and garbage, a torn write
 * or another page's record is never installed.  A page entry names its
 * record by a slot (UZD_ENTRY_FILE's payload): the record's offset and
 * payload length, so a restore is one pread of exactly the record.
 *
 * Space.  Frees only count: each 4 KiB block of the file has a count of
 * the live record bytes in it, each segment its live bytes.  The writeback
 * thread (uzd_bfile_maintain) punches every block whose count fell to 0
 * (fallocate PUNCH_HOLE: the disk gets it back), and makes a segment whose
 * last record went free again.  Records freed at random leave holes inside
 * blocks that still hold live bytes; uzd_bfile_clean() copies the live
 * records of the segment with the most such dead bytes to the open segment
 * (the owner repoints each one through a callback) and frees it.  So the
 * disk holds about the live bytes plus what cleaning tolerates (15 to 20%,
 * UZD_BFILE_GC_*), whatever the churn.  The file holds nothing across
 * restarts: open truncates it, and nothing in it is read before written.
 *
 * Threads.  One thread (the writeback thread) appends, flushes, maintains
 * and cleans; any thread reads and frees.  A record still in the staging
 * buffer (its write in flight or not yet started) is read from memory, so
 * a fault never waits for a write.  All metadata and the staging buffer
 * are under bf->lock, a leaf: it is held for a memcpy at most, never
 * across a system call, and nothing else is taken under it.
 *
 * Never: read a record the page cache does not hold yet (the staging
 * buffer serves it), punch a block with a live byte, reuse a segment
 * before its last record is freed, or follow a symbolic link or accept a
 * directory others can write into (uzd_bfile_open).
 */
#ifndef UZSWAP_DAEMON_BFILE_H
#define UZSWAP_DAEMON_BFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compress/codec.h"

#define UZD_BFILE_BLOCK 4096
#define UZD_BFILE_SEG_SHIFT 18 /* 256 KiB: the largest write, the unit of reuse */
#define UZD_BFILE_SEG_SIZE (UINT64_C(1) << UZD_BFILE_SEG_SHIFT)
#define UZD_BFILE_HDR 16
#define UZD_BFILE_REC_MAX (UZD_BFILE_HDR + UZC_PAGE_SIZE)
/* The smallest max_size: a few segments, one of them the cleaner's reserve. */
#define UZD_BFILE_MIN_SIZE (4 * UZD_BFILE_SEG_SIZE)

/* A record's header, decoded. */
struct uzd_bfile_rec {
	uintptr_t addr;		 /* the page's address in its client, page-aligned */
	uint32_t client_id;	 /* its owner */
	enum uzc_codec_id codec; /* how the payload decompresses */
	uint32_t len;		 /* payload bytes, 1..UZC_PAGE_SIZE */
};

/*
 * A slot: offset / 8 in bits 55..12, payload length - 1 in bits 11..0.
 * It fits the 56 bits of an entry's payload, for files up to 128 TiB.
 */
static inline uint64_t uzd_bfile_slot(uint64_t off, uint32_t len)
{
	return (off >> 3) << 12 | (uint64_t)(len - 1);
}

static inline uint64_t uzd_bfile_slot_off(uint64_t slot)
{
	return (slot >> 12) << 3;
}

static inline uint32_t uzd_bfile_slot_len(uint64_t slot)
{
	return (uint32_t)(slot & 0xfff) + 1;
}

/* Bytes the record takes in the file, padding included. */
static inline uint32_t uzd_bfile_slot_size(uint64_t slot)
{
	return (UZD_BFILE_HDR + uzd_bfile_slot_len(slot) + 7) & ~7u;
}

/*
 * Figures, each a snapshot.  Space: size_bytes is the file's length (every
 * segment ever used), disk_bytes the blocks the file holds on disk
 * (st_blocks), live_bytes the live records with their headers, stored_bytes
 * their payloads: the compressed pages.
 */
struct uzd_bfile_stats {
	uint64_t max_bytes, size_bytes, disk_bytes, live_bytes, stored_bytes, records;
	uint64_t appended, appended_bytes; /* records appended, payload bytes */
	uint64_t flushes, flushed_bytes;   /* pwrite calls, bytes */
	uint64_t reads, reads_staged;	   /* records read: all, and of them from memory */
	uint64_t full;			   /* appends refused: max_size reached */
	uint64_t write_enospc, write_eio;  /* writes failed: no space, any other error */
	uint64_t short_writes;		   /* writes that stopped short (the rest retried) */
	uint64_t read_errors, short_reads, bad_records; /* restores lost */
	uint64_t punched_blocks, punch_errors;
	uint64_t cleaned_segments, cleaned_records, cleaned_bytes;
	bool pinned; /* a write failed and its records are not yet resolved */
};

struct uzd_bfile;

/*
 * Open (create) the backing file for records of at most @max_size bytes in
 * all (rounded down to whole segments, at least UZD_BFILE_MIN_SIZE).
 * @path is a directory (it ends with '/' or is one): an unnamed O_TMPFILE
 * in it, gone when the daemon exits; or a file name: created mode 0600,
 * or, if it exists, taken over (it must be a regular file of ours with one
 * link) and truncated.  The directory is created 0700 if missing; it must
 * be owned by us and closed to everyone else, and no directory above it
 * may be writable by others (unless sticky, as /tmp).  A symbolic link is
 * refused, and so is a file another uzswapd holds (flock).  0, or -errno
 * with @why ("PATH: what is wrong") filled.
 */
int uzd_bfile_open(const char *path, uint64_t max_size, struct uzd_bfile **out, char *why,
		   size_t whylen);
/* Close; a named file is truncated to 0 (its blocks go back), an unnamed one vanishes. */
void uzd_bfile_close(struct uzd_bfile *bf);

/* ---- the writeback thread only ---- */

/*
 * Append a record for page @h->addr of client @h->client_id with @payload
 * (@h->len bytes) and give its slot: the record is live from now on (free
 * it when its owner cannot take it).  Never does I/O.  -ENOBUFS: the open
 * segment is full of staged records, flush and call again; -ENOSPC: the
 * file is at max_size; -EAGAIN: a failed write is not resolved yet
 * (uzd_bfile_resolve); -EINVAL: a bad length.
 */
int uzd_bfile_append(struct uzd_bfile *bf, const struct uzd_bfile_rec *h, const void *payload,
		     uint64_t *slot);

/*
 * Write the staged records (one pwrite, continued after a short count).
 * 0; or the write's error, after which the staging buffer is pinned:
 * its records stay readable from memory, nothing more is appended, and
 * the caller takes the live ones elsewhere (uzd_bfile_staged) and calls
 * uzd_bfile_resolve().
 */
int uzd_bfile_flush(struct uzd_bfile *bf);

/*
 * Call @fn for each record in the staging buffer (live or not): @slot,
 * its header and payload, valid during the call.  For taking records
 * back after a failed write; the callback may free slots.
 */
typedef void (*uzd_bfile_staged_fn)(void *arg, uint64_t slot, const struct uzd_bfile_rec *h,
				    const void *payload);
void uzd_bfile_staged(struct uzd_bfile *bf, uzd_bfile_staged_fn fn, void *arg);

/*
 * After a failed write: try it again; if it fails again and no staged
 * record is live any more, give the staged range up (its blocks are
 * punched) so that appending resumes.  Returns 0 when appending may
 * resume, or the write's error while live records remain pinned.
 */
int uzd_bfile_resolve(struct uzd_bfile *bf);

/* Punch the blocks that became free, and free the segments that emptied. */
void uzd_bfile_maintain(struct uzd_bfile *bf);

/*
 * The cleaner's callback, for record @old_slot (header @h, the whole
 * record at @record), live as far as the file knows.  If its owner still
 * holds @old_slot: copy it with uzd_bfile_move(), repoint the owner to the
 * new slot, free @old_slot, return 0.  Else return -ESTALE (it is dead,
 * or its owner is busy with it).  Return -ENOSPC or -EAGAIN, as the move
 * gave them, to stop the clean.
 */
typedef int (*uzd_bfile_move_fn)(void *arg, uint64_t old_slot, const struct uzd_bfile_rec *h,
				 const void *record);

/* Stage a copy of @record (a whole record, as the cleaner gave it); may flush. */
int uzd_bfile_move(struct uzd_bfile *bf, const void *record, uint64_t *new_slot);

/* Disk held beyond the live bytes above which cleaning starts, and where it stops. */
#define UZD_BFILE_GC_START_PCT 120
#define UZD_BFILE_GC_STOP_PCT 115

/*
 * When the disk held exceeds UZD_BFILE_GC_START_PCT of the live bytes (plus
 * a segment), or the file is full: move the live records of up to
 * @max_segs segments with the most dead bytes on disk, through @fn.  The
 * moved records are staged (flush after).  Returns the segments it cleaned
 * (0: nothing to clean, or no room to clean into).
 */
unsigned int uzd_bfile_clean(struct uzd_bfile *bf, unsigned int max_segs, uzd_bfile_move_fn fn,
			     void *arg);

/* ---- any thread ---- */

/*
 * Read the record of @slot into @buf (UZD_BFILE_REC_MAX bytes) and check
 * it: *@h gets its header, its payload is at @buf + UZD_BFILE_HDR.  From
 * the staging buffer if it is there, else the file, a short read
 * continued.  0, -ENODATA (the file ends inside the record), -EBADMSG (its
 * checksum or length is wrong), or pread's -errno.
 */
int uzd_bfile_read(struct uzd_bfile *bf, uint64_t slot, void *buf, struct uzd_bfile_rec *h);

/* The record is dead: its bytes count no more.  Once per live slot. */
void uzd_bfile_free(struct uzd_bfile *bf, uint64_t slot);

/* Is there work for uzd_bfile_maintain()? */
bool uzd_bfile_needs_maintain(struct uzd_bfile *bf);

void uzd_bfile_stats(struct uzd_bfile *bf, struct uzd_bfile_stats *st);

#endif /* UZSWAP_DAEMON_BFILE_H */
