/* SPDX-License-Identifier: MIT */
/*
 * daemon/bfile.c - the backing file: records, space, staging, cleaning
 * (see bfile.h for the format and the rules).
 *
 * struct uzd_bfile:
 *   segs[]       per segment: live bytes, bytes appended (end) and written
 *                (flushed), blocks that may be on disk, its state (FREE,
 *                OPEN: the one being appended to, SEALED: full or given up),
 *                and whether it is pending (a bit of pending[]: a block to
 *                punch, or the segment to free), npending of them
 *   blk_live[]   per 4 KiB block of the file: live record bytes in it
 *   blk_first[]  per block: 1 + the offset of the first record that starts
 *                in it, 0 for none; the cleaner parses a segment from these,
 *                skipping blocks with no live byte (punched blocks read as
 *                zeros, so a parse could not cross them)
 *   on_disk      bitmap of blocks written and not punched since
 *   st           the staging buffer: the open segment's records from
 *                st.base on, not yet written; st.live of its bytes live
 *   nused        segments ever used (the file's length); nfree of them FREE
 * Memory beside the file: 4 bytes per block (2 per block for the bitmap
 * and the segment table together), about 1.7 bytes per record of the
 * mean redis page; the arrays are sized for max_size but mapped lazily.
 *
 * Everything above is under lock (bfile.h: a leaf, never held over a
 * system call).  The staging buffer's bytes are written by the writeback
 * thread only, under the lock, and read by anyone under it; a flush hands
 * the buffer to pwrite without the lock, which is safe because only the
 * flushing thread could change it.  Counters in stats are relaxed atomics.
 *
 * One segment is kept in reserve for the cleaner: writeback may not open
 * the last free one, so that a full file can still be compacted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/bfile.h"
#include "daemon/crc32c.h"

#define BLOCK UZD_BFILE_BLOCK
#define SEG UZD_BFILE_SEG_SIZE
#define BLOCKS_PER_SEG ((uint32_t)(SEG / BLOCK))
#define PUNCH_RUNS (BLOCKS_PER_SEG / 2 + 1)
/*
 * Cleaning: never a segment for less than a tenth of it, and not over the
 * first segment's worth of dead bytes, so that a small file is not
 * compacted over and over for nothing.
 */
#define CLEAN_MIN_DEAD (SEG / 10)
#define CLEAN_SLACK SEG
#define LOG_BURST 10 /* lines per second, then quiet */

enum seg_state {
	SEG_FREE,
	SEG_OPEN,
	SEG_SEALED,
};

struct seg {
	uint32_t live, end, flushed;
	uint32_t clean_left;  /* live bytes a clean could not move; 0: none */
	uint16_t disk_blocks; /* of its blocks, those set in on_disk */
	uint8_t state;
};

struct staging {
	unsigned char *buf; /* SEG bytes: buf[i] is file offset base + i */
	uint64_t base;
	uint32_t len;
	uint64_t live;
	bool pinned; /* a write failed: nothing is appended until resolved */
	int err;
};

struct uzd_bfile {
	int fd;
	bool named; /* a file with a name (truncated at close), not an O_TMPFILE */
	char path[PATH_MAX];
	pthread_mutex_t lock;
	uint32_t nsegs, nused, nfree, npending;
	int64_t open; /* the OPEN segment, or -1 */
	struct seg *segs;
	uint64_t *pending; /* bitmap of segments, so maintenance finds them in nsegs / 64 words */
	uint16_t *blk_live, *blk_first;
	uint64_t *on_disk;
	size_t meta_len; /* bytes of the mapping holding blk_live, blk_first and on_disk */
	uint64_t disk_blocks, live_bytes, stored_bytes, records;
	bool cleaning; /* between the GC start and stop marks */
	struct staging st;
	unsigned char *gcbuf; /* the writeback thread's copy of a segment being cleaned */
	uint64_t log_sec;
	unsigned int log_lines;
	struct uzd_bfile_stats stats; /* counters only; the gauges are computed */
};

/* ---- small helpers ---- */

static void count(uint64_t *c, uint64_t v)
{
	__atomic_fetch_add(c, v, __ATOMIC_RELAXED);
}

static uint64_t seg_off(uint32_t s)
{
	return (uint64_t)s << UZD_BFILE_SEG_SHIFT;
}

static uint32_t rec_size(uint32_t len)
{
	return (UZD_BFILE_HDR + len + 7) & ~7u;
}

static bool on_disk(const struct uzd_bfile *bf, uint64_t b)
{
	return bf->on_disk[b / 64] >> (b % 64) & 1;
}

static void blog(struct uzd_bfile *bf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rate-limited: a failing disk must not flood the log (LOG_BURST lines a second). */
static void blog(struct uzd_bfile *bf, const char *fmt, ...)
{
	struct timespec ts;
	char line[384];
	va_list ap;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((uint64_t)ts.tv_sec != __atomic_load_n(&bf->log_sec, __ATOMIC_RELAXED)) {
		__atomic_store_n(&bf->log_sec, (uint64_t)ts.tv_sec, __ATOMIC_RELAXED);
		__atomic_store_n(&bf->log_lines, 0, __ATOMIC_RELAXED);
	}
	if (__atomic_fetch_add(&bf->log_lines, 1, __ATOMIC_RELAXED) >= LOG_BURST)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uzswapd: backing file %s: %s\n", bf->path, line);
}

/* ---- records ---- */

static void rec_encode(unsigned char *p, const struct uzd_bfile_rec *h, const void *payload)
{
	uint64_t w0 = (uint64_t)(h->addr >> 12) << 16 | (uint64_t)(h->codec & 0xf) << 12 |
		      (uint64_t)(h->len - 1);
	uint32_t crc;

	memcpy(p, &w0, 8);
	memcpy(p + 8, &h->client_id, 4);
	crc = uzd_crc32c(uzd_crc32c(0, p, 12), payload, h->len);
	memcpy(p + 12, &crc, 4);
	memcpy(p + UZD_BFILE_HDR, payload, h->len);
	memset(p + UZD_BFILE_HDR + h->len, 0, rec_size(h->len) - UZD_BFILE_HDR - h->len);
}

static void rec_decode(const unsigned char *p, struct uzd_bfile_rec *h)
{
	uint64_t w0;

	memcpy(&w0, p, 8);
	h->addr = (uintptr_t)(w0 >> 16) << 12;
	h->codec = (enum uzc_codec_id)((w0 >> 12) & 0xf);
	h->len = (uint32_t)(w0 & 0xfff) + 1;
	memcpy(&h->client_id, p + 8, 4);
}

/* Is @p a whole record whose payload is @len bytes (0: any)?  *h its header. */
static bool rec_valid(const unsigned char *p, uint32_t len, struct uzd_bfile_rec *h)
{
	uint32_t crc;

	rec_decode(p, h);
	if (len && h->len != len)
		return false;
	memcpy(&crc, p + 12, 4);
	return uzd_crc32c(uzd_crc32c(0, p, 12), p + UZD_BFILE_HDR, h->len) == crc;
}

/* ---- space accounting (lock held) ---- */

static bool is_pending(const struct uzd_bfile *bf, uint32_t s)
{
	return bf->pending[s / 64] >> (s % 64) & 1;
}

static void mark_pending(struct uzd_bfile *bf, uint32_t s)
{
	if (!is_pending(bf, s)) {
		bf->pending[s / 64] |= UINT64_C(1) << (s % 64);
		bf->npending++;
	}
}

static void unmark_pending(struct uzd_bfile *bf, uint32_t s)
{
	if (is_pending(bf, s)) {
		bf->pending[s / 64] &= ~(UINT64_C(1) << (s % 64));
		bf->npending--;
	}
}

/* The first pending segment at or after @s, or nsegs. */
static uint32_t next_pending(const struct uzd_bfile *bf, uint32_t s)
{
	for (uint32_t w = s / 64; w * 64 < bf->nsegs; w++) {
		uint64_t bits = bf->pending[w] &
				(w == s / 64 ? ~UINT64_C(0) << (s % 64) : ~UINT64_C(0));

		if (bits)
			return w * 64 + (uint32_t)__builtin_ctzll(bits);
	}
	return bf->nsegs;
}

/* Add (@sign 1) or take (-1) the bytes [off, off + size) to the live counts. */
static void account(struct uzd_bfile *bf, uint64_t off, uint32_t size, int sign)
{
	uint32_t s = (uint32_t)(off >> UZD_BFILE_SEG_SHIFT);

	for (uint64_t b = off / BLOCK; b * BLOCK < off + size; b++) {
		uint64_t lo = b * BLOCK > off ? b * BLOCK : off;
		uint64_t hi = (b + 1) * BLOCK < off + size ? (b + 1) * BLOCK : off + size;

		bf->blk_live[b] = (uint16_t)(bf->blk_live[b] + sign * (int)(hi - lo));
		if (!bf->blk_live[b] && on_disk(bf, b))
			mark_pending(bf, s);
	}
	bf->segs[s].live = (uint32_t)((int64_t)bf->segs[s].live + sign * (int64_t)size);
	if (!bf->segs[s].live && bf->segs[s].state == SEG_SEALED)
		mark_pending(bf, s);
}

static void set_on_disk(struct uzd_bfile *bf, uint64_t b, bool v)
{
	struct seg *sg = &bf->segs[b / BLOCKS_PER_SEG];

	if (on_disk(bf, b) == v)
		return;
	bf->on_disk[b / 64] ^= UINT64_C(1) << (b % 64);
	sg->disk_blocks = (uint16_t)(sg->disk_blocks + (v ? 1 : -1));
	bf->disk_blocks += v ? 1 : (uint64_t)-1;
}

/* [off, off + len) was written (or may have been): its blocks may be on disk. */
static void mark_written(struct uzd_bfile *bf, uint64_t off, uint64_t len)
{
	uint32_t s = (uint32_t)(off >> UZD_BFILE_SEG_SHIFT);

	for (uint64_t b = off / BLOCK; b * BLOCK < off + len; b++) {
		set_on_disk(bf, b, true);
		if (!bf->blk_live[b])
			mark_pending(bf, s);
	}
	bf->segs[s].flushed = (uint32_t)(off + len - seg_off(s));
}

/* ---- segments (lock held) ---- */

static void seal(struct uzd_bfile *bf)
{
	uint32_t s = (uint32_t)bf->open;

	bf->segs[s].state = SEG_SEALED;
	if (!bf->segs[s].live)
		mark_pending(bf, s);
	bf->open = -1;
}

/* Open a segment to append to; the last free one only @for_clean. */
static int open_segment(struct uzd_bfile *bf, bool for_clean)
{
	uint32_t avail = bf->nfree + (bf->nsegs - bf->nused), s = 0;
	struct seg *sg;

	if (avail == 0 || (avail == 1 && !for_clean))
		return -ENOSPC;
	if (bf->nfree) {
		while (bf->segs[s].state != SEG_FREE)
			s++;
		bf->nfree--;
	} else {
		s = bf->nused++;
	}
	sg = &bf->segs[s];
	memset(sg, 0, sizeof(*sg));
	unmark_pending(bf, s);
	sg->state = SEG_OPEN;
	bf->open = s;
	bf->st.base = seg_off(s);
	bf->st.len = 0;
	bf->st.live = 0;
	return 0;
}

/* Room for @size more bytes in the open segment; see uzd_bfile_append() for the errors. */
static int stage_room(struct uzd_bfile *bf, uint32_t size, bool for_clean)
{
	if (bf->st.pinned)
		return -EAGAIN;
	if (bf->open >= 0 && bf->segs[bf->open].end + size <= SEG)
		return 0;
	if (bf->st.len)
		return -ENOBUFS;
	if (bf->open >= 0)
		seal(bf);
	return open_segment(bf, for_clean);
}

/* The next @size bytes of the open segment, for a record: its offset; room made. */
static uint64_t stage_claim(struct uzd_bfile *bf, uint32_t size)
{
	struct seg *sg = &bf->segs[bf->open];
	uint64_t off = seg_off((uint32_t)bf->open) + sg->end;
	uint64_t b = off / BLOCK;

	if (!bf->blk_first[b])
		bf->blk_first[b] = (uint16_t)(off % BLOCK + 1);
	account(bf, off, size, 1);
	sg->end += size;
	bf->st.len += size;
	bf->st.live += size;
	return off;
}

static void count_record(struct uzd_bfile *bf, uint32_t len, int sign)
{
	bf->live_bytes += (uint64_t)(sign * (int64_t)rec_size(len));
	bf->stored_bytes += (uint64_t)(sign * (int64_t)len);
	bf->records += (uint64_t)(int64_t)sign;
}

/* ---- appending and writing ---- */

int uzd_bfile_append(struct uzd_bfile *bf, const struct uzd_bfile_rec *h, const void *payload,
		     uint64_t *slot)
{
	uint32_t size;
	uint64_t off;
	int ret;

	if (h->len < 1 || h->len > UZC_PAGE_SIZE)
		return -EINVAL;
	size = rec_size(h->len);
	pthread_mutex_lock(&bf->lock);
	ret = stage_room(bf, size, false);
	if (ret == 0) {
		off = stage_claim(bf, size);
		rec_encode(bf->st.buf + (off - bf->st.base), h, payload);
		count_record(bf, h->len, 1);
		*slot = uzd_bfile_slot(off, h->len);
	}
	pthread_mutex_unlock(&bf->lock);
	if (ret == 0) {
		count(&bf->stats.appended, 1);
		count(&bf->stats.appended_bytes, h->len);
	} else if (ret == -ENOSPC) {
		count(&bf->stats.full, 1);
	}
	return ret;
}

/* The cleaner's append: a record already in file form; may flush. */
static int stage_copy(struct uzd_bfile *bf, const unsigned char *rec, uint32_t len, uint64_t *slot)
{
	uint32_t size = rec_size(len);
	uint64_t off;
	int ret;

	pthread_mutex_lock(&bf->lock);
	ret = stage_room(bf, size, true);
	pthread_mutex_unlock(&bf->lock);
	if (ret == -ENOBUFS) {
		ret = uzd_bfile_flush(bf);
		if (ret == 0) {
			pthread_mutex_lock(&bf->lock);
			ret = stage_room(bf, size, true);
			pthread_mutex_unlock(&bf->lock);
		}
	}
	if (ret)
		return ret;
	pthread_mutex_lock(&bf->lock);
	off = stage_claim(bf, size);
	memcpy(bf->st.buf + (off - bf->st.base), rec, size);
	count_record(bf, len, 1);
	pthread_mutex_unlock(&bf->lock);
	*slot = uzd_bfile_slot(off, len);
	return 0;
}

/* pwrite all of it; a short count goes on where it stopped. */
static int write_all(struct uzd_bfile *bf, const unsigned char *p, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(bf->fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if ((uint64_t)n < len)
			count(&bf->stats.short_writes, 1);
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static void count_write_error(struct uzd_bfile *bf, int err, uint64_t off, uint64_t len)
{
	bool nospace = err == -ENOSPC || err == -EDQUOT;

	count(nospace ? &bf->stats.write_enospc : &bf->stats.write_eio, 1);
	blog(bf, "writing %" PRIu64 " bytes at %" PRIu64 ": %s", len, off, strerror(-err));
}

/* The staged bytes reached the file: they are read from there now (lock held). */
static void staged_written(struct uzd_bfile *bf)
{
	mark_written(bf, bf->st.base, bf->st.len);
	bf->st.base += bf->st.len;
	bf->st.len = 0;
	bf->st.live = 0;
	bf->st.pinned = false;
}

/* Write what is staged now; 0, or the error, and the staging buffer is pinned. */
static int write_staged(struct uzd_bfile *bf)
{
	uint64_t base;
	uint32_t len;
	int ret;

	pthread_mutex_lock(&bf->lock);
	base = bf->st.base;
	len = bf->st.len;
	pthread_mutex_unlock(&bf->lock);
	if (!len)
		return 0;
	ret = write_all(bf, bf->st.buf, len, base);
	pthread_mutex_lock(&bf->lock);
	if (ret == 0) {
		staged_written(bf);
	} else {
		bf->st.pinned = true;
		bf->st.err = ret;
	}
	pthread_mutex_unlock(&bf->lock);
	count(&bf->stats.flushes, 1);
	if (ret == 0)
		count(&bf->stats.flushed_bytes, len);
	else
		count_write_error(bf, ret, base, len);
	return ret;
}

int uzd_bfile_flush(struct uzd_bfile *bf)
{
	int ret;

	pthread_mutex_lock(&bf->lock);
	ret = bf->st.pinned ? -EAGAIN : 0;
	pthread_mutex_unlock(&bf->lock);
	if (ret)
		return ret;
	return write_staged(bf);
}

void uzd_bfile_staged(struct uzd_bfile *bf, uzd_bfile_staged_fn fn, void *arg)
{
	struct uzd_bfile_rec h;
	uint64_t base;
	uint32_t len;

	/* Only this thread appends: the staged bytes cannot change under us. */
	pthread_mutex_lock(&bf->lock);
	base = bf->st.base;
	len = bf->st.len;
	pthread_mutex_unlock(&bf->lock);
	for (uint32_t pos = 0; pos + UZD_BFILE_HDR <= len; pos += rec_size(h.len)) {
		rec_decode(bf->st.buf + pos, &h);
		fn(arg, uzd_bfile_slot(base + pos, h.len), &h, bf->st.buf + pos + UZD_BFILE_HDR);
	}
}

/*
 * Give up the staged range after a failed write, once nothing in it is
 * live: the segment is sealed where its records end, and its blocks are
 * taken as written (a short count may have put some on disk) so that
 * maintenance punches what is dead there.  Lock held.
 */
static void give_up_staged(struct uzd_bfile *bf)
{
	mark_written(bf, bf->st.base, bf->st.len);
	bf->st.len = 0;
	bf->st.live = 0;
	bf->st.pinned = false;
	seal(bf);
}

int uzd_bfile_resolve(struct uzd_bfile *bf)
{
	bool give_up;
	int ret;

	pthread_mutex_lock(&bf->lock);
	give_up = bf->st.pinned && !bf->st.live;
	if (give_up)
		give_up_staged(bf);
	ret = bf->st.pinned ? 1 : 0;
	pthread_mutex_unlock(&bf->lock);
	if (ret == 0)
		return 0;
	/* Live records are still staged: the write may succeed now. */
	return write_staged(bf);
}

/* ---- reading and freeing ---- */

/*
 * @n bytes at @off into @buf, continuing a read that comes back short (a
 * network or FUSE file system may do that anywhere): only the end of the
 * file, a read of 0 bytes, loses the record.
 */
static int read_record(struct uzd_bfile *bf, void *buf, uint32_t n, uint64_t off)
{
	uint32_t done = 0;
	ssize_t got;

	while (done < n) {
		got = pread(bf->fd, (char *)buf + done, n - done, (off_t)(off + done));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			count(&bf->stats.read_errors, 1);
			return -errno;
		}
		if (got == 0) {
			count(&bf->stats.short_reads, 1);
			return -ENODATA;
		}
		done += (uint32_t)got;
	}
	return 0;
}

int uzd_bfile_read(struct uzd_bfile *bf, uint64_t slot, void *buf, struct uzd_bfile_rec *h)
{
	uint64_t off = uzd_bfile_slot_off(slot);
	uint32_t len = uzd_bfile_slot_len(slot), n = UZD_BFILE_HDR + len;
	bool staged;
	int ret;

	pthread_mutex_lock(&bf->lock);
	staged = off >= bf->st.base && off + n <= bf->st.base + bf->st.len;
	if (staged)
		memcpy(buf, bf->st.buf + (off - bf->st.base), n);
	pthread_mutex_unlock(&bf->lock);
	if (staged) {
		count(&bf->stats.reads_staged, 1);
	} else {
		ret = read_record(bf, buf, n, off);
		if (ret < 0)
			return ret;
	}
	count(&bf->stats.reads, 1);
	if (!rec_valid(buf, len, h)) {
		count(&bf->stats.bad_records, 1);
		return -EBADMSG;
	}
	return 0;
}

/* A slot that cannot be live: a daemon bug, never a client's doing. */
static bool slot_sane(const struct uzd_bfile *bf, uint64_t off, uint32_t size)
{
	uint32_t s = (uint32_t)(off >> UZD_BFILE_SEG_SHIFT);

	return s < bf->nused && (off & 7) == 0 && off - seg_off(s) + size <= bf->segs[s].end &&
	       bf->segs[s].live >= size && bf->segs[s].state != SEG_FREE;
}

void uzd_bfile_free(struct uzd_bfile *bf, uint64_t slot)
{
	uint64_t off = uzd_bfile_slot_off(slot);
	uint32_t len = uzd_bfile_slot_len(slot), size = rec_size(len);
	bool sane;

	pthread_mutex_lock(&bf->lock);
	sane = slot_sane(bf, off, size);
	if (sane) {
		account(bf, off, size, -1);
		count_record(bf, len, -1);
		if (off >= bf->st.base && off < bf->st.base + bf->st.len)
			bf->st.live -= size;
	}
	pthread_mutex_unlock(&bf->lock);
	if (!sane)
		blog(bf,
		     "BUG: freeing slot %#" PRIx64 " (offset %" PRIu64 ", %" PRIu32
		     " bytes), which holds no live record",
		     slot, off, len);
}

/* ---- maintenance: punching and freeing ---- */

struct punch_run {
	uint64_t first, n; /* blocks */
};

/* The runs of dead on-disk blocks of segment @s; lock held. */
static unsigned int dead_runs(struct uzd_bfile *bf, uint32_t s, struct punch_run *runs)
{
	uint64_t b0 = (uint64_t)s * BLOCKS_PER_SEG;
	unsigned int n = 0;

	for (uint64_t b = b0; b < b0 + BLOCKS_PER_SEG; b++) {
		if (bf->blk_live[b] || !on_disk(bf, b))
			continue;
		if (n && runs[n - 1].first + runs[n - 1].n == b)
			runs[n - 1].n++;
		else
			runs[n++] = (struct punch_run){ .first = b, .n = 1 };
	}
	return n;
}

static int punch(struct uzd_bfile *bf, const struct punch_run *r)
{
	if (fallocate(bf->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(r->first * BLOCK),
		      (off_t)(r->n * BLOCK)) == 0)
		return 0;
	count(&bf->stats.punch_errors, 1);
	blog(bf, "punching %" PRIu64 " blocks at %" PRIu64 ": %s (the space stays allocated)", r->n,
	     r->first * BLOCK, strerror(errno));
	return -errno;
}

/*
 * A sealed segment with nothing live is free again (on a file system that
 * cannot punch, its blocks stay allocated until it is rewritten: it is
 * reused all the same); trailing free ones shorten the file.  Lock held.
 */
static bool free_segment(struct uzd_bfile *bf, uint32_t s)
{
	uint64_t b0 = (uint64_t)s * BLOCKS_PER_SEG;
	struct seg *sg = &bf->segs[s];
	bool shrank = false;

	if (sg->state != SEG_SEALED || sg->live)
		return false;
	for (uint64_t b = b0; b < b0 + BLOCKS_PER_SEG; b++) {
		set_on_disk(bf, b, false);
		bf->blk_first[b] = 0;
	}
	unmark_pending(bf, s);
	sg->state = SEG_FREE;
	bf->nfree++;
	while (bf->nused && bf->segs[bf->nused - 1].state == SEG_FREE) {
		bf->nused--;
		bf->nfree--;
		shrank = true;
	}
	return shrank;
}

/* Punch what is dead in segment @s and free it if it emptied; true if the file shrank. */
static bool maintain_segment(struct uzd_bfile *bf, uint32_t s)
{
	struct punch_run runs[PUNCH_RUNS];
	unsigned int n;
	bool shrank;

	pthread_mutex_lock(&bf->lock);
	unmark_pending(bf, s);
	/* The open segment emptiedwith nothing staged: close it, so that it can go. */
	if (bf->open == s && !bf->segs[s].live && !bf->st.len && !bf->st.pinned)
		seal(bf);
	n = dead_runs(bf, s, runs);
	pthread_mutex_unlock(&bf->lock);
	for (unsigned int i = 0; i < n; i++) {
		if (punch(bf, &runs[i]) < 0)
			continue;
		count(&bf->stats.punched_blocks, runs[i].n);
		/* Only this thread appends, so a dead block is still dead. */
		pthread_mutex_lock(&bf->lock);
		for (uint64_t b = runs[i].first; b < runs[i].first + runs[i].n; b++)
			set_on_disk(bf, b, false);
		pthread_mutex_unlock(&bf->lock);
	}
	pthread_mutex_lock(&bf->lock);
	shrank = free_segment(bf, s);
	pthread_mutex_unlock(&bf->lock);
	return shrank;
}

bool uzd_bfile_needs_maintain(struct uzd_bfile *bf)
{
	bool yes;

	pthread_mutex_lock(&bf->lock);
	yes = bf->npending != 0;
	pthread_mutex_unlock(&bf->lock);
	return yes;
}

void uzd_bfile_maintain(struct uzd_bfile *bf)
{
	bool shrank = false;
	uint64_t len;

	/* In segment order, each once: one that maintenance marks again waits for next time. */
	for (uint32_t s = 0;; s++) {
		pthread_mutex_lock(&bf->lock);
		s = bf->npending ? next_pending(bf, s) : bf->nsegs;
		pthread_mutex_unlock(&bf->lock);
		if (s >= bf->nsegs)
			break;
		shrank |= maintain_segment(bf, s);
	}
	if (!shrank)
		return;
	/* Trailing segments freed: the file ends where the last one in use does. */
	pthread_mutex_lock(&bf->lock);
	len = seg_off(bf->nused);
	pthread_mutex_unlock(&bf->lock);
	if (ftruncate(bf->fd, (off_t)len) < 0)
		blog(bf, "shortening to %" PRIu64 " bytes: %s", len, strerror(errno));
}

/* ---- cleaning ---- */

/* What a clean of one segment needs, copied under the lock. */
struct victim {
	uint32_t s, flushed;
	uint16_t live[BLOCKS_PER_SEG], first[BLOCKS_PER_SEG];
};

static bool over(const struct uzd_bfile *bf, unsigned int pct)
{
	return bf->disk_blocks * BLOCK > bf->live_bytes / 100 * pct + CLEAN_SLACK;
}

/* Should cleaning run (hysteresis between the start and stop marks)?  Lock held. */
static bool clean_wanted(struct uzd_bfile *bf)
{
	uint32_t avail = bf->nfree + (bf->nsegs - bf->nused);

	if (over(bf, UZD_BFILE_GC_START_PCT))
		bf->cleaning = true;
	else if (!over(bf, UZD_BFILE_GC_STOP_PCT))
		bf->cleaning = false;
	return bf->cleaning || avail <= 1;
}

/* The sealed segment with the most dead bytes on disk, or -1; lock held. */
static int64_t pick_victim(struct uzd_bfile *bf)
{
	uint64_t best_dead = CLEAN_MIN_DEAD;
	int64_t best = -1;

	if (!clean_wanted(bf))
		return -1;
	for (uint32_t s = 0; s < bf->nused; s++) {
		const struct seg *sg = &bf->segs[s];
		uint64_t disk = (uint64_t)sg->disk_blocks * BLOCK;

		if (sg->state != SEG_SEALED || !sg->live || sg->live == sg->clean_left)
			continue;
		if (disk > sg->live && disk - sg->live > best_dead) {
			best_dead = disk - sg->live;
			best = s;
		}
	}
	return best;
}

static bool take_victim(struct uzd_bfile *bf, struct victim *v)
{
	int64_t s;
	uint64_t b0;

	pthread_mutex_lock(&bf->lock);
	s = pick_victim(bf);
	if (s >= 0) {
		v->s = (uint32_t)s;
		v->flushed = bf->segs[s].flushed;
		b0 = (uint64_t)s * BLOCKS_PER_SEG;
		memcpy(v->live, &bf->blk_live[b0], sizeof(v->live));
		memcpy(v->first, &bf->blk_first[b0], sizeof(v->first));
	}
	pthread_mutex_unlock(&bf->lock);
	return s >= 0;
}

/* Move the records that start in block @i of the victim; -ENOSPC/-EAGAIN stop the clean. */
static int clean_block(struct uzd_bfile *bf, const struct victim *v, uint32_t i,
		       uzd_bfile_move_fn fn, void *arg)
{
	uint32_t pos = i * BLOCK + v->first[i] - 1;
	struct uzd_bfile_rec h;

	while (pos < (i + 1) * BLOCK && pos + UZD_BFILE_HDR <= v->flushed) {
		const unsigned char *rec = bf->gcbuf + pos;
		uint64_t old = 0;
		int ret;

		rec_decode(rec, &h);
		if (pos + rec_size(h.len) > v->flushed || !rec_valid(rec, 0, &h))
			return 0; /* unreadable: its owner's restore will say so */
		old = uzd_bfile_slot(seg_off(v->s) + pos, h.len);
		ret = fn(arg, old, &h, rec);
		if (ret == -ENOSPC || ret == -EAGAIN)
			return ret;
		if (ret == 0) {
			count(&bf->stats.cleaned_records, 1);
			count(&bf->stats.cleaned_bytes, h.len);
		}
		pos += rec_size(h.len);
	}
	return 0;
}

static int clean_segment(struct uzd_bfile *bf, const struct victim *v, uzd_bfile_move_fn fn,
			 void *arg)
{
	ssize_t got;
	int ret = 0;

	do
		got = pread(bf->fd, bf->gcbuf, v->flushed, (off_t)seg_off(v->s));
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)v->flushed) {
		count(got < 0 ? &bf->stats.read_errors : &bf->stats.short_reads, 1);
		blog(bf, "reading segment %" PRIu32 " to clean it: %s", v->s,
		     got < 0 ? strerror(errno) : "short read");
		return -EIO;
	}
	for (uint32_t i = 0; i < BLOCKS_PER_SEG && ret == 0; i++)
		if (v->live[i] && v->first[i])
			ret = clean_block(bf, v, i, fn, arg);
	return ret;
}

int uzd_bfile_move(struct uzd_bfile *bf, const void *record, uint64_t *new_slot)
{
	struct uzd_bfile_rec h;

	rec_decode(record, &h);
	return stage_copy(bf, record, h.len, new_slot);
}

unsigned int uzd_bfile_clean(struct uzd_bfile *bf, unsigned int max_segs, uzd_bfile_move_fn fn,
			     void *arg)
{
	unsigned int cleaned = 0;
	struct victim v;

	for (unsigned int i = 0; i < max_segs; i++) {
		int ret;

		uzd_bfile_maintain(bf); /* the last victim's blocks are punched: disk counts true */
		if (!take_victim(bf, &v))
			break;
		ret = clean_segment(bf, &v, fn, arg);
		pthread_mutex_lock(&bf->lock);
		if (bf->segs[v.s].live)
			bf->segs[v.s].clean_left = bf->segs[v.s].live;
		pthread_mutex_unlock(&bf->lock);
		cleaned++;
		count(&bf->stats.cleaned_segments, 1);
		if (ret == -ENOSPC || ret == -EAGAIN)
			break;
	}
	return cleaned;
}

/* ---- statistics ---- */

#define LOAD(f) (out->f = __atomic_load_n(&bf->stats.f, __ATOMIC_RELAXED))

void uzd_bfile_stats(struct uzd_bfile *bf, struct uzd_bfile_stats *out)
{
	struct stat sb;

	memset(out, 0, sizeof(*out));
	LOAD(appended), LOAD(appended_bytes), LOAD(flushes), LOAD(flushed_bytes);
	LOAD(reads), LOAD(reads_staged), LOAD(full), LOAD(write_enospc), LOAD(write_eio);
	LOAD(short_writes), LOAD(read_errors), LOAD(short_reads), LOAD(bad_records);
	LOAD(punched_blocks), LOAD(punch_errors);
	LOAD(cleaned_segments), LOAD(cleaned_records), LOAD(cleaned_bytes);
	pthread_mutex_lock(&bf->lock);
	out->max_bytes = seg_off(bf->nsegs);
	out->live_bytes = bf->live_bytes;
	out->stored_bytes = bf->stored_bytes;
	out->records = bf->records;
	out->pinned = bf->st.pinned;
	pthread_mutex_unlock(&bf->lock);
	if (fstat(bf->fd, &sb) == 0) {
		out->size_bytes = (uint64_t)sb.st_size;
		out->disk_bytes = (uint64_t)sb.st_blocks * 512;
	}
}
#undef LOAD

/* ---- opening ---- */

static int whyf(char *why, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int whyf(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	if (why && len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

/*
 * Every directory above @dir (not @dir itself) must be a directory owned
 * by root or us that no one else can write into, unless it is sticky (as
 * /tmp): otherwise someone else could swap @dir for a directory of theirs.
 */
static int check_ancestors(const char *dir, char *why, size_t len)
{
	char p[PATH_MAX];
	struct stat sb;

	snprintf(p, sizeof(p), "%s", dir);
	for (char *slash = strrchr(p, '/'); slash; slash = strrchr(p, '/')) {
		*slash = '\0';
		if (stat(p[0] ? p : "/", &sb) < 0)
			return whyf(why, len, -errno, "%s: %s", p[0] ? p : "/", strerror(errno));
		if ((sb.st_uid != 0 && sb.st_uid != geteuid()) ||
		    ((sb.st_mode & (S_IWGRP | S_IWOTH)) && !(sb.st_mode & S_ISVTX)))
			return whyf(why, len, -EPERM,
				    "%s: a directory above the backing file that others can write "
				    "into (owner %u, mode %04o): refused",
				    p[0] ? p : "/", (unsigned int)sb.st_uid,
				    (unsigned int)(sb.st_mode & 07777));
	}
	return 0;
}

/* Open @dir, creating it 0700; it must be ours, closed to everyone else, not a link. */
static int open_dir(const char *dir, char *why, size_t len)
{
	struct stat sb;
	int fd, ret;

	ret = check_ancestors(dir, why, len);
	if (ret)
		return ret;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return whyf(why, len, -errno, "%s: cannot create the directory: %s", dir,
			    strerror(errno));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return whyf(why, len, -errno, "%s: %s", dir,
			    errno == ELOOP || errno == ENOTDIR ?
				    "not a directory (a symbolic link is refused)" :
				    strerror(errno));
	if (fstat(fd, &sb) < 0 || sb.st_uid != geteuid() || (sb.st_mode & 077)) {
		ret = whyf(why, len, -EPERM,
			   "%s: the backing file's directory must be owned by uid %u with mode "
			   "0700 (it has owner %u, mode %04o)",
			   dir, (unsigned int)geteuid(), (unsigned int)sb.st_uid,
			   (unsigned int)(sb.st_mode & 07777));
		close(fd);
		return ret;
	}
	return fd;
}

/* An unnamed file in @dfd; where O_TMPFILE is not supported, a name unlinked at once. */
static int open_unnamed(int dfd, const char *dir, char *why, size_t len)
{
	char name[64];
	int fd = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return whyf(why, len, -errno, "%s: O_TMPFILE: %s", dir, strerror(errno));
	snprintf(name, sizeof(name), ".uzswapd-backing.%d", (int)getpid());
	fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return whyf(why, len, -errno, "%s/%s: %s", dir, name, strerror(errno));
	unlinkat(dfd, name, 0);
	return fd;
}

/* @name in @dfd: created 0600, or an existing regular file of ours with one link. */
static int open_named(int dfd, const char *path, const char *name, char *why, size_t len)
{
	struct stat sb;
	int fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0)
		return whyf(why, len, -errno, "%s: %s", path,
			    errno == ELOOP ? "a symbolic link: refused" : strerror(errno));
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    sb.st_nlink != 1) {
		ret = whyf(why, len, -EPERM,
			   "%s: must be a regular file owned by uid %u with one link: refused",
			   path, (unsigned int)geteuid());
		goto err_close;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = whyf(why, len, -EBUSY, "%s: in use by another process (flock: %s)", path,
			   strerror(errno));
		goto err_close;
	}
	if ((sb.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0) {
		ret = whyf(why, len, -errno, "%s: chmod 0600: %s", path, strerror(errno));
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return ret;
}

/* The file for @path (see uzd_bfile_open), truncated; fd or -errno. */
static int open_file(const char *path, bool *named, char *why, size_t len)
{
	char dir[PATH_MAX];
	const char *name = NULL;
	struct stat sb;
	int dfd, fd;

	if (path[0] != '/' || strlen(path) >= sizeof(dir))
		return whyf(why, len, -EINVAL, "%s: not an absolute path", path);
	snprintf(dir, sizeof(dir), "%s", path);
	if (dir[strlen(dir) - 1] != '/' && !(lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
		char *slash = strrchr(dir, '/');

		*slash = '\0';
		name = path + (slash - dir) + 1;
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
	}
	while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
		dir[strlen(dir) - 1] = '\0';
	dfd = open_dir(dir, why, len);
	if (dfd < 0)
		return dfd;
	fd = name ? open_named(dfd, path, name, why, len) : open_unnamed(dfd, dir, why, len);
	close(dfd);
	if (fd >= 0 && ftruncate(fd, 0) < 0) {
		int ret = whyf(why, len, -errno, "%s: truncating: %s", path, strerror(errno));

		close(fd);
		return ret;
	}
	*named = name != NULL;
	return fd;
}

/* The per-block arrays, in one lazily backed mapping. */
static int alloc_meta(struct uzd_bfile *bf)
{
	uint64_t blocks = (uint64_t)bf->nsegs * BLOCKS_PER_SEG;
	size_t live = blocks * sizeof(uint16_t), bits = (blocks + 63) / 64 * sizeof(uint64_t);
	unsigned char *m;

	bf->meta_len = 2 * live + bits;
	m = mmap(NULL, bf->meta_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return -ENOMEM;
	bf->on_disk = (uint64_t *)m;
	bf->blk_live = (uint16_t *)(m + bits);
	bf->blk_first = (uint16_t *)(m + bits + live);
	return 0;
}

int uzd_bfile_open(const char *path, uint64_t max_size, struct uzd_bfile **out, char *why,
		   size_t whylen)
{
	struct uzd_bfile *bf;
	int ret;

	if (max_size < UZD_BFILE_MIN_SIZE || max_size >> UZD_BFILE_SEG_SHIFT > UINT32_MAX)
		return whyf(why, whylen, -EINVAL, "max_size %" PRIu64 " is out of range", max_size);
	bf = calloc(1, sizeof(*bf));
	if (!bf)
		return whyf(why, whylen, -ENOMEM, "out of memory");
	snprintf(bf->path, sizeof(bf->path), "%s", path);
	bf->nsegs = (uint32_t)(max_size >> UZD_BFILE_SEG_SHIFT);
	bf->open = -1;
	bf->segs = calloc(bf->nsegs, sizeof(*bf->segs));
	bf->pending = calloc((bf->nsegs + 63) / 64, sizeof(*bf->pending));
	bf->st.buf = aligned_alloc(BLOCK, SEG);
	bf->gcbuf = aligned_alloc(BLOCK, SEG);
	ret = -ENOMEM;
	if (!bf->segs || !bf->pending || !bf->st.buf || !bf->gcbuf || alloc_meta(bf) < 0) {
		whyf(why, whylen, ret, "out of memory for %" PRIu32 " segments", bf->nsegs);
		goto err_free;
	}
	ret = pthread_mutex_init(&bf->lock, NULL);
	if (ret) {
		ret = whyf(why, whylen, -ret, "mutex: %s", strerror(ret));
		goto err_meta;
	}
	bf->fd = open_file(path, &bf->named, why, whylen);
	if (bf->fd < 0) {
		ret = bf->fd;
		goto err_lock;
	}
	*out = bf;
	return 0;

err_lock:
	pthread_mutex_destroy(&bf->lock);
err_meta:
	munmap(bf->on_disk, bf->meta_len);
err_free:
	free(bf->gcbuf);
	free(bf->st.buf);
	free(bf->pending);
	free(bf->segs);
	free(bf);
	return ret;
}

void uzd_bfile_close(struct uzd_bfile *bf)
{
	if (!bf)
		return;
	/* A named file keeps its name, not its blocks: nothing in it is valid any more. */
	if (bf->named && ftruncate(bf->fd, 0) < 0)
		blog(bf, "truncating at close: %s", strerror(errno));
	close(bf->fd);
	pthread_mutex_destroy(&bf->lock);
	munmap(bf->on_disk, bf->meta_len);
	free(bf->gcbuf);
	free(bf->st.buf);
	free(bf->pending);
	free(bf->segs);
	free(bf);
}
