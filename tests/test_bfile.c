/* SPDX-License-Identifier: MIT */
/*
 * tests/test_bfile.c - daemon/bfile.c, the backing file.
 *
 *  - opening: an unnamed file in a directory, a named one created 0600 or
 *    taken over and truncated; refusals of a symbolic link (file or
 *    directory), a directory open to others, one under a directory others
 *    can write into, a file another opener holds, sizes out of range;
 *  - records: read back from the staging buffer and from the file, their
 *    header and payload intact; a flipped byte (checksum) and a cut file
 *    (short read) detected;
 *  - space: every block punched and the file shortened once all is freed;
 *    max_size refuses appends while one segment stays for the cleaner;
 *  - churn: pages written, rewritten and freed at random, the cleaner
 *    moving live records through a model of their owners: the disk holds at
 *    most 1.25 x the compressed bytes stored, and every live page reads back;
 *  - a failed write (a file size limit: EFBIG): the staged records stay
 *    readable, appends wait, and once nothing staged is live the range is
 *    given up and appending resumes; a retried write that succeeds lands.
 * Files live in a private directory under /tmp, removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/bfile.h"
#include "tests/rng.h"
#include "tests/tap.h"

#define MIB (UINT64_C(1) << 20)
#define WHY 512

static char top[64];

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", top, name);
}

static void rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", path);
}

/* A payload that depends only on (page, version), of a length between 1 and 4096. */
static uint32_t payload_of(uint64_t page, uint64_t version, unsigned char *buf)
{
	struct rng g = { .state = page * 1000003 + version };
	uint32_t len = 1 + (uint32_t)(rng_next(&g) % 2600);

	for (uint32_t i = 0; i < len; i++)
		buf[i] = (unsigned char)rng_next(&g);
	return len;
}

static int append_page(struct uzd_bfile *bf, uint64_t page, uint64_t version, uint64_t *slot)
{
	unsigned char buf[UZC_PAGE_SIZE];
	struct uzd_bfile_rec h = { .addr = page << 12, .client_id = 1, .codec = UZC_CODEC_LZ4 };
	int ret;

	h.len = payload_of(page, version, buf);
	ret = uzd_bfile_append(bf, &h, buf, slot);
	if (ret == -ENOBUFS) {
		ret = uzd_bfile_flush(bf);
		if (ret == 0)
			ret = uzd_bfile_append(bf, &h, buf, slot);
	}
	return ret;
}

/* Does @slot read back as page @page at @version?  0, or the read's error, or -EXDEV. */
static int check_page(struct uzd_bfile *bf, uint64_t slot, uint64_t page, uint64_t version)
{
	static unsigned char rec[UZD_BFILE_REC_MAX];
	unsigned char want[UZC_PAGE_SIZE];
	struct uzd_bfile_rec h;
	uint32_t len = payload_of(page, version, want);
	int ret = uzd_bfile_read(bf, slot, rec, &h);

	if (ret)
		return ret;
	if (h.len != len || h.addr != page << 12 || h.client_id != 1 || h.codec != UZC_CODEC_LZ4 ||
	    memcmp(rec + UZD_BFILE_HDR, want, len) != 0)
		return -EXDEV;
	return 0;
}

/* ---- opening ---- */

static int try_open(const char *path, uint64_t max, char *why)
{
	struct uzd_bfile *bf;
	int ret = uzd_bfile_open(path, max, &bf, why, WHY);

	if (ret == 0)
		uzd_bfile_close(bf);
	return ret;
}

static void test_open_unnamed(void)
{
	char dir[128], slash[140], why[WHY] = "";
	struct uzd_bfile *bf;
	struct stat sb;
	int ret;

	path_of(dir, sizeof(dir), "tmpdir");
	snprintf(slash, sizeof(slash), "%s/", dir);
	ret = uzd_bfile_open(slash, 8 * MIB, &bf, why, sizeof(why));
	ok(ret == 0, "a directory path gives an unnamed file in a new directory (%s)", why);
	memset(&sb, 0, sizeof(sb));
	stat(dir, &sb);
	ok(S_ISDIR(sb.st_mode) && (sb.st_mode & 07777) == 0700,
	   "the directory is created with mode 0700 (saw %04o)",
	   (unsigned int)(sb.st_mode & 07777));
	if (ret == 0)
		uzd_bfile_close(bf);
	ok(rmdir(dir) == 0, "the unnamed file left nothing behind in it");
	mkdir(dir, 0700);
	ok(try_open(dir, 8 * MIB, why) == 0,
	   "an existing directory without a trailing / works too "
	   "(%s)",
	   why);
	rmdir(dir);
}

static void test_open_named(void)
{
	char path[128], why[WHY] = "";
	struct uzd_bfile *bf, *bf2;
	struct stat sb;
	int fd, ret;

	path_of(path, sizeof(path), "named");
	ret = uzd_bfile_open(path, 8 * MIB, &bf, why, sizeof(why));
	ok(ret == 0 && stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0600 && sb.st_size == 0,
	   "a file path is created with mode 0600, empty (%s)", why);
	ok(ret == 0 && uzd_bfile_open(path, 8 * MIB, &bf2, why, sizeof(why)) == -EBUSY,
	   "a file another opener holds is refused (%s)", why);
	if (ret == 0)
		uzd_bfile_close(bf);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0) {
		ok(write(fd, "stale", 5) == 5 && fchmod(fd, 0644) == 0,
		   "(an old file left behind)");
		close(fd);
	}
	ret = try_open(path, 8 * MIB, why);
	ok(ret == 0 && stat(path, &sb) == 0 && (sb.st_mode & 07777) == 0600 && sb.st_size == 0,
	   "an existing file of ours is taken over: truncated, mode 0600 (%s)", why);
	unlink(path);
}

static void test_open_refusals(void)
{
	char path[128], link[128], sub[160], why[WHY];

	path_of(path, sizeof(path), "target");
	path_of(link, sizeof(link), "link");
	close(open(path, O_CREAT | O_WRONLY, 0600));
	if (symlink(path, link) < 0)
		tap_diag("symlink: %s", strerror(errno));
	why[0] = 0;
	ok(try_open(link, 8 * MIB, why) < 0 && strstr(why, "symbolic link"),
	   "a backing file that is a symbolic link is refused (%s)", why);
	unlink(link);
	unlink(path);

	path_of(path, sizeof(path), "realdir");
	mkdir(path, 0700);
	symlink(path, link);
	snprintf(sub, sizeof(sub), "%s/", link);
	why[0] = 0;
	ok(try_open(sub, 8 * MIB, why) < 0, "a directory that is a symbolic link is refused (%s)",
	   why);
	unlink(link);

	chmod(path, 0755);
	snprintf(sub, sizeof(sub), "%s/file", path);
	why[0] = 0;
	ok(try_open(sub, 8 * MIB, why) == -EPERM, "a directory open to others is refused (%s)",
	   why);
	chmod(path, 0777);
	snprintf(sub, sizeof(sub), "%s/inner/", path);
	why[0] = 0;
	ok(try_open(sub, 8 * MIB, why) == -EPERM && strstr(why, "others can write"),
	   "a directory under one that others can write into is refused (%s)", why);
	chmod(path, 01777);
	why[0] = 0;
	ok(try_open(sub, 8 * MIB, why) == 0, "unless that one is sticky, as /tmp is (%s)", why);
	rm_rf(path);

	path_of(path, sizeof(path), "f");
	ok(try_open(path, 1 * MIB - 1, why) == -EINVAL, "a max_size below four segments is "
							"refused");
	ok(try_open("relative/file", 8 * MIB, why) == -EINVAL, "a relative path is refused");
	unlink(path);
}

/* ---- records ---- */

static void test_records(void)
{
	char path[128], why[WHY] = "";
	struct uzd_bfile_stats st;
	struct uzd_bfile *bf;
	uint64_t slots[8];
	int bad = 0, fd, ret;

	path_of(path, sizeof(path), "records");
	ret = uzd_bfile_open(path, 8 * MIB, &bf, why, sizeof(why));
	if (!ok(ret == 0, "a file for records opens (%s)", why))
		return;
	for (int i = 0; i < 8; i++)
		bad += append_page(bf, (uint64_t)i, 1, &slots[i]) != 0;
	for (int i = 0; i < 8; i++)
		bad += check_page(bf, slots[i], (uint64_t)i, 1) != 0;
	uzd_bfile_stats(bf, &st);
	ok(bad == 0 && st.reads_staged == 8 && st.disk_bytes == 0,
	   "records read back from the staging buffer before any write (%d bad, %" PRIu64
	   " from memory)",
	   bad, st.reads_staged);
	ok(uzd_bfile_flush(bf) == 0, "the staged records are written");
	for (int i = 0; i < 8; i++)
		bad += check_page(bf, slots[i], (uint64_t)i, 1) != 0;
	uzd_bfile_stats(bf, &st);
	ok(bad == 0 && st.reads == 16 && st.reads_staged == 8 && st.records == 8,
	   "and then from the file (%d bad, %" PRIu64 " reads)", bad, st.reads);
	ok(uzd_bfile_slot_off(slots[3]) % 8 == 0 &&
		   uzd_bfile_slot_off(slots[1]) - uzd_bfile_slot_off(slots[0]) ==
			   uzd_bfile_slot_size(slots[0]),
	   "records are packed, 8-byte aligned, one after the other");

	fd = open(path, O_RDWR);
	if (fd >= 0) {
		unsigned char b;
		off_t at = (off_t)uzd_bfile_slot_off(slots[2]) + UZD_BFILE_HDR + 1;

		pread(fd, &b, 1, at);
		b ^= 0x10;
		pwrite(fd, &b, 1, at);
		ok(check_page(bf, slots[2], 2, 1) == -EBADMSG,
		   "a record with one flipped bit fails its checksum");
		ok(check_page(bf, slots[3], 3, 1) == 0, "its neighbour still reads back");
		ftruncate(fd, (off_t)uzd_bfile_slot_off(slots[7]) + 20);
		ok(check_page(bf, slots[7], 7, 1) == -ENODATA,
		   "a record cut short by the end of the file is a short read");
		close(fd);
	}
	uzd_bfile_stats(bf, &st);
	ok(st.bad_records == 1 && st.short_reads == 1,
	   "both are counted (%" PRIu64 " bad, %" PRIu64 " short)", st.bad_records, st.short_reads);
	uzd_bfile_close(bf);
	unlink(path);
}

/* ---- space ---- */

static void test_space(void)
{
	char path[128], why[WHY] = "";
	static uint64_t slots[2000];
	struct uzd_bfile_stats st;
	struct uzd_bfile *bf;
	uint64_t disk_full;
	int n = 0, ret;

	path_of(path, sizeof(path), "space");
	ret = uzd_bfile_open(path, 16 * MIB, &bf, why, sizeof(why));
	if (!ok(ret == 0, "a 16 MiB file opens (%s)", why))
		return;
	while (n < 2000 && append_page(bf, (uint64_t)n, 1, &slots[n]) == 0)
		n++;
	uzd_bfile_flush(bf);
	uzd_bfile_stats(bf, &st);
	disk_full = st.disk_bytes;
	ok(n == 2000 && disk_full >= st.live_bytes && disk_full < st.live_bytes + 2 * MIB,
	   "2000 records take about their own size on disk (%" PRIu64 " live, %" PRIu64 " on disk)",
	   st.live_bytes, disk_full);
	for (int i = 0; i < n; i += 2)
		uzd_bfile_free(bf, slots[i]);
	uzd_bfile_maintain(bf);
	uzd_bfile_stats(bf, &st);
	tap_diag("half freed at random: %" PRIu64 " live, %" PRIu64 " on disk", st.live_bytes,
		 st.disk_bytes);
	for (int i = 1; i < n; i += 2)
		uzd_bfile_free(bf, slots[i]);
	uzd_bfile_maintain(bf);
	uzd_bfile_stats(bf, &st);
	ok(st.records == 0 && st.live_bytes == 0 && st.disk_bytes == 0 && st.size_bytes == 0,
	   "once every record is freed, every block is punched and the file is empty (%" PRIu64
	   " records, %" PRIu64 " bytes on disk, length %" PRIu64 ")",
	   st.records, st.disk_bytes, st.size_bytes);
	uzd_bfile_close(bf);
	unlink(path);

	ret = uzd_bfile_open(path, UZD_BFILE_MIN_SIZE, &bf, why, sizeof(why));
	if (ret)
		return;
	n = 0;
	while (n < 2000 && (ret = append_page(bf, (uint64_t)n, 1, &slots[n])) == 0)
		n++;
	uzd_bfile_stats(bf, &st);
	ok(ret == -ENOSPC && st.full == 1 &&
		   st.live_bytes > 2 * UZD_BFILE_SEG_SIZE + UZD_BFILE_SEG_SIZE / 2 &&
		   st.live_bytes <= 3 * UZD_BFILE_SEG_SIZE,
	   "a full file refuses appends with -ENOSPC, one segment short of max_size (%" PRIu64
	   " live bytes in 3 segments of %" PRIu64 ")",
	   st.live_bytes, UZD_BFILE_SEG_SIZE);
	uzd_bfile_close(bf);
	unlink(path);
}

/* ---- churn and cleaning ---- */

#define CHURN_PAGES 12000
#define CHURN_OPS 120000

/* The owners, as page entries would be: page p is at slot[p], version ver[p] (0: not there). */
struct model {
	struct uzd_bfile *bf;
	uint64_t slot[CHURN_PAGES];
	uint64_t ver[CHURN_PAGES];
};

static int model_move(void *arg, uint64_t old_slot, const struct uzd_bfile_rec *h,
		      const void *record)
{
	struct model *m = arg;
	uint64_t p = h->addr >> 12, slot;
	int ret;

	if (p >= CHURN_PAGES || !m->ver[p] || m->slot[p] != old_slot)
		return -ESTALE;
	ret = uzd_bfile_move(m->bf, record, &slot);
	if (ret)
		return ret;
	m->slot[p] = slot;
	uzd_bfile_free(m->bf, old_slot);
	return 0;
}

static void churn_step(struct model *m, struct rng *g, int *bad)
{
	uint64_t p = rng_below(g, CHURN_PAGES);

	if (m->ver[p]) {
		uzd_bfile_free(m->bf, m->slot[p]);
		m->ver[p] = 0;
		if (rng_below(g, 2))
			return; /* restored and kept: freed */
	}
	/* Written (again): a new version. */
	if (append_page(m->bf, p, m->ver[p] = rng_next(g) | 1, &m->slot[p]) != 0) {
		m->ver[p] = 0;
		(*bad)++;
	}
}

static void test_churn(void)
{
	static struct model m;
	struct rng g = { .state = rng_seed_from_env(0xc4a2) };
	char path[128], why[WHY] = "";
	struct uzd_bfile_stats st;
	int bad = 0, wrong = 0, ret;
	double ratio;

	path_of(path, sizeof(path), "churn");
	ret = uzd_bfile_open(path, 64 * MIB, &m.bf, why, sizeof(why));
	if (!ok(ret == 0, "a file for the churn opens (%s)", why))
		return;
	for (uint64_t p = 0; p < CHURN_PAGES; p++)
		bad += append_page(m.bf, p, m.ver[p] = 1, &m.slot[p]) != 0;
	for (int i = 0; i < CHURN_OPS; i++) {
		churn_step(&m, &g, &bad);
		if (i % 500 == 499) {
			uzd_bfile_flush(m.bf);
			uzd_bfile_clean(m.bf, 4, model_move, &m);
			uzd_bfile_flush(m.bf);
			uzd_bfile_maintain(m.bf);
		}
	}
	/* Idle after the churn: the cleaner catches up, as the writeback thread's rounds would. */
	for (int i = 0; i < 64; i++) {
		uzd_bfile_clean(m.bf, 4, model_move, &m);
		uzd_bfile_flush(m.bf);
		uzd_bfile_maintain(m.bf);
	}
	for (uint64_t p = 0; p < CHURN_PAGES; p++)
		if (m.ver[p])
			wrong += check_page(m.bf, m.slot[p], p, m.ver[p]) != 0;
	uzd_bfile_stats(m.bf, &st);
	ratio = st.stored_bytes ? (double)st.disk_bytes / (double)st.stored_bytes : 0;
	tap_diag("churn: %" PRIu64 " appended (%" PRIu64 " bytes), %" PRIu64 " moved (%" PRIu64
		 " bytes) in %" PRIu64 " cleanings; %" PRIu64 " records, %" PRIu64
		 " stored bytes, %" PRIu64 " on disk",
		 st.appended, st.appended_bytes, st.cleaned_records, st.cleaned_bytes,
		 st.cleaned_segments, st.records, st.stored_bytes, st.disk_bytes);
	ok(bad == 0 && wrong == 0,
	   "every page written during the churn reads back as its last "
	   "version (%d appends failed, %d wrong)",
	   bad, wrong);
	ok(st.stored_bytes > 4 * MIB && ratio > 0 && ratio <= 1.25,
	   "after the churn the disk holds at most 1.25 x the compressed bytes (%.3f)", ratio);
	uzd_bfile_close(m.bf);
	unlink(path);
}

/* ---- a failed write ---- */

static void count_live(void *arg, uint64_t slot, const struct uzd_bfile_rec *h, const void *payload)
{
	(void)slot, (void)h, (void)payload;
	(*(int *)arg)++;
}

static void free_staged(void *arg, uint64_t slot, const struct uzd_bfile_rec *h,
			const void *payload)
{
	(void)h, (void)payload;
	uzd_bfile_free(arg, slot);
}

static void test_failed_write(void)
{
	char path[128], why[WHY] = "";
	struct rlimit old, lim;
	struct uzd_bfile_stats st;
	struct uzd_bfile *bf;
	uint64_t slots[16], slot;
	int staged = 0, bad = 0, ret;

	path_of(path, sizeof(path), "failing");
	ret = uzd_bfile_open(path, 8 * MIB, &bf, why, sizeof(why));
	if (!ok(ret == 0, "a file for failing writes opens (%s)", why))
		return;
	signal(SIGXFSZ, SIG_IGN);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 4096; /* writes past 4 KiB fail with EFBIG */
	for (int i = 0; i < 16; i++)
		bad += append_page(bf, (uint64_t)i, 1, &slots[i]) != 0;
	setrlimit(RLIMIT_FSIZE, &lim);
	ret = uzd_bfile_flush(bf);
	uzd_bfile_stats(bf, &st);
	ok(ret == -EFBIG && st.pinned && st.write_eio == 1,
	   "a write that fails is reported and pins the staging buffer (%s)", strerror(-ret));
	for (int i = 0; i < 16; i++)
		bad += check_page(bf, slots[i], (uint64_t)i, 1) != 0;
	ok(bad == 0, "its records still read back, from memory");
	ok(append_page(bf, 100, 1, &slot) == -EAGAIN, "and nothing more is appended meanwhile");
	ok(uzd_bfile_resolve(bf) == -EFBIG, "resolving retries the write, which fails again");
	uzd_bfile_staged(bf, count_live, &staged);
	ok(staged == 16, "every staged record is handed over to be taken back (%d)", staged);
	setrlimit(RLIMIT_FSIZE, &old);
	ok(uzd_bfile_resolve(bf) == 0 && check_page(bf, slots[5], 5, 1) == 0,
	   "once the write can succeed, resolving writes the records and they read back");

	for (int i = 0; i < 16; i++)
		bad += append_page(bf, (uint64_t)(i + 20), 1, &slots[i]) != 0;
	setrlimit(RLIMIT_FSIZE, &lim);
	ret = uzd_bfile_flush(bf);
	uzd_bfile_staged(bf, free_staged, bf);
	ret = ret ? uzd_bfile_resolve(bf) : -1;
	setrlimit(RLIMIT_FSIZE, &old);
	ok(ret == 0 && append_page(bf, 200, 1, &slot) == 0 && uzd_bfile_flush(bf) == 0 &&
		   check_page(bf, slot, 200, 1) == 0,
	   "when the staged records were all taken back, the range is given up and appending "
	   "resumes");
	uzd_bfile_close(bf);
	unlink(path);
	signal(SIGXFSZ, SIG_DFL);
}

int main(void)
{
	char tmpl[] = "/tmp/uzswap-test-bfile.XXXXXX";

	if (!mkdtemp(tmpl))
		tap_skip_all("mkdtemp: %s", strerror(errno));
	snprintf(top, sizeof(top), "%s", tmpl);
	test_open_unnamed();
	test_open_named();
	test_open_refusals();
	test_records();
	test_space();
	test_churn();
	test_failed_write();
	rm_rf(top);
	return tap_done();
}
