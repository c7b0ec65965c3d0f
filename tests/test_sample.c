/* SPDX-License-Identifier: MIT */
/*
 * tests/test_sample.c - daemon/sample.c: zapping a client's pages keeps
 * their contents, and the pagemap then tells exactly which were touched.
 *
 * The "client" is this process: a memfd mapped MAP_SHARED and registered
 * MISSING|WP on a userfaultfd, as libuzswap maps a region (registration
 * matters: it is what turns the kernel's fault-around off, sample.h).  Its
 * pages are filled through the memfd before they are registered, so no
 * fault needs serving, and a mapping read then finds them in the page
 * cache.  Page HOLE of the range is left unmapped, as a page the client
 * unmapped would be (an munmap of a registered range would wait for a
 * daemon to read its event).  A sampler on a second process checks that a sampler names one
 * process and is refused once that process is gone.  Needs root (or
 * CAP_SYS_NICE) for process_madvise and a userfaultfd; skipped otherwise,
 * or where swap is on (zapping would write the pages to swap).
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/uffd.h"
#include "daemon/sample.h"
#include "include/uzswap_proto.h"
#include "tests/tap.h"

#define PG 4096
#define NPAGES 256
#define HOLE 100

struct fx {
	int memfd, uffd;
	unsigned char *map;
	struct uzd_sampler s;
	uint64_t addrs[NPAGES];
};

static unsigned char byte_of(size_t i)
{
	return (unsigned char)(i * 7 + 1);
}

static int fx_fill(struct fx *f)
{
	unsigned char page[PG];

	for (size_t i = 0; i < NPAGES; i++) {
		memset(page, byte_of(i), PG);
		if (pwrite(f->memfd, page, PG, (off_t)(i * PG)) != PG)
			return -errno;
	}
	return 0;
}

/* The region's two pieces, either side of the hole, as a client registers them. */
static int fx_register(struct fx *f)
{
	int ret;

	ret = uzs_uffd_register(f->uffd, (uintptr_t)f->map, HOLE * PG, UZP_UFFD_REGISTER_MODES,
				NULL);
	if (ret == 0)
		ret = uzs_uffd_register(f->uffd, (uintptr_t)f->map + (HOLE + 1) * PG,
					(NPAGES - HOLE - 1) * PG, UZP_UFFD_REGISTER_MODES, NULL);
	return ret;
}

static int fx_open(struct fx *f, char *why, size_t whylen)
{
	int ret;

	memset(f, 0, sizeof(*f));
	f->uffd = -1;
	uzd_sampler_init(&f->s);
	f->memfd = memfd_create("test_sample", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, NPAGES * PG) < 0)
		return -errno;
	f->map = mmap(NULL, NPAGES * PG, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->map == MAP_FAILED) {
		f->map = NULL;
		return -errno;
	}
	munmap(f->map + HOLE * PG, PG);
	ret = fx_fill(f);
	if (ret < 0)
		return ret;
	f->uffd = uzs_uffd_create(-1, why, whylen);
	if (f->uffd < 0)
		return f->uffd;
	ret = fx_register(f);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < NPAGES; i++)
		f->addrs[i] = (uintptr_t)f->map + i * PG;
	return uzd_sampler_open(&f->s, -1, getpid());
}

static void fx_close(struct fx *f)
{
	uzd_sampler_close(&f->s);
	/* Closed first: an munmap would wait for someone to read its UNMAP event. */
	if (f->uffd >= 0)
		close(f->uffd);
	if (f->map)
		munmap(f->map, NPAGES * PG);
	if (f->memfd > 0)
		close(f->memfd);
}

/* Map every page in (a read each), as a client using its memory would. */
static void touch_all(struct fx *f)
{
	volatile unsigned char sink = 0;

	for (size_t i = 0; i < NPAGES; i++)
		if (i != HOLE)
			sink += f->map[i * PG];
	(void)sink;
}

static size_t count_present(struct fx *f, bool *present)
{
	size_t n = 0;

	if (uzd_sample_present(&f->s, f->addrs, NPAGES, present) < 0)
		return SIZE_MAX;
	for (size_t i = 0; i < NPAGES; i++)
		n += present[i];
	return n;
}

static size_t count_wrong_bytes(struct fx *f)
{
	unsigned char page[PG];
	size_t bad = 0;

	for (size_t i = 0; i < NPAGES; i++) {
		if (pread(f->memfd, page, PG, (off_t)(i * PG)) != PG)
			return SIZE_MAX;
		for (size_t k = 0; k < PG; k++)
			bad += page[k] != byte_of(i);
		if (i != HOLE)
			bad += f->map[i * PG + PG - 1] != byte_of(i);
	}
	return bad;
}

static void test_zap_then_touch(struct fx *f)
{
	bool present[NPAGES];
	size_t n, wrong = 0, blocks_before, blocks_after;
	struct stat st;

	touch_all(f);
	fstat(f->memfd, &st);
	blocks_before = (size_t)st.st_blocks;
	n = count_present(f, present);
	ok(n == NPAGES - 1, "every page of a region the client has read is present (%zu of %d)", n,
	   NPAGES - 1);
	ok(uzd_sample_zap(&f->s, f->addrs, NPAGES) == 0,
	   "zapping the region's pages succeeds, over a hole the client unmapped too");
	n = count_present(f, present);
	ok(n == 0, "after the zap no page is mapped in the client (%zu present)", n);
	fstat(f->memfd, &st);
	blocks_after = (size_t)st.st_blocks;
	ok(blocks_after == blocks_before,
	   "the zap keeps every page in the memfd (blocks %zu before, %zu after)", blocks_before,
	   blocks_after);

	/* Touch every third page: reads and writes alike. */
	for (size_t i = 0; i < NPAGES; i += 3) {
		if (i == HOLE)
			continue;
		if (i % 2)
			f->map[i * PG + 5] = byte_of(i);
		else
			(void)*(volatile unsigned char *)(f->map + i * PG);
	}
	n = count_present(f, present);
	for (size_t i = 0; i < NPAGES; i++)
		wrong += present[i] != (i % 3 == 0 && i != HOLE);
	ok(wrong == 0 && n == (NPAGES + 2) / 3 - (HOLE % 3 == 0),
	   "exactly the pages touched since the zap are present: no neighbour mapped by "
	   "fault-around (%zu present, %zu misjudged)",
	   n, wrong);
	n = count_wrong_bytes(f);
	ok(n == 0, "every byte reads back the same, through the memfd and the mapping (%zu wrong)",
	   n);
}

static void test_zap_skips_unmapped(struct fx *f)
{
	bool present[NPAGES];
	uint64_t some[4];
	size_t n;

	touch_all(f);
	/* Runs: [HOLE - 1, HOLE + 1), whose second page is gone, then two single pages. */
	some[0] = f->addrs[HOLE - 1];
	some[1] = f->addrs[HOLE];
	some[2] = f->addrs[HOLE + 5];
	some[3] = f->addrs[NPAGES - 1];
	ok(uzd_sample_zap(&f->s, some, 4) == 0,
	   "a zap whose run takes in a page the client unmapped succeeds");
	n = count_present(f, present);
	ok(!present[HOLE - 1] && !present[HOLE + 5] && !present[NPAGES - 1] && n == NPAGES - 4,
	   "the mapped pages of that run and of the runs after it are zapped, no other "
	   "(%d %d %d, %zu present)",
	   present[HOLE - 1], present[HOLE + 5], present[NPAGES - 1], n);
}

static void test_sampler_of_gone_process(void)
{
	struct uzd_sampler s;
	int ret, status;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	if (pid < 0) {
		ok(false, "fork: %s", strerror(errno));
		return;
	}
	ret = uzd_sampler_open(&s, -1, pid);
	ok(ret == 0 && uzd_sampler_active(&s), "a sampler opens on another live process (%s)",
	   strerror(-ret));
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (ret == 0) {
		uint64_t addr = 0x10000;
		bool present;

		ret = uzd_sample_present(&s, &addr, 1, &present);
		ok(ret == -ESRCH, "once the process is gone, its pagemap says -ESRCH (seen %d)",
		   ret);
		ret = uzd_sample_zap(&s, &addr, 1);
		ok(ret == -ESRCH, "and a zap says -ESRCH (seen %d)", ret);
	}
	uzd_sampler_close(&s);
	ret = uzd_sampler_open(&s, -1, pid);
	ok(ret == -ESRCH && !uzd_sampler_active(&s),
	   "a sampler of a process that is gone is refused with -ESRCH (seen %d)", ret);
}

static void test_inactive_sampler(void)
{
	struct uzd_sampler s;
	uint64_t addr = 0x10000;
	bool present;

	uzd_sampler_init(&s);
	ok(!uzd_sampler_active(&s) && uzd_sample_zap(&s, &addr, 1) == -EINVAL &&
		   uzd_sample_present(&s, &addr, 1, &present) == -EINVAL,
	   "a sampler that was never opened samples nothing (-EINVAL)");
	uzd_sampler_close(&s);
}

int main(void)
{
	char why[256] = "";
	struct fx f;
	int ret;

	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	if (!uzd_sample_usable())
		tap_skip_all("swap is on: a zap would write the pages to swap");
	test_inactive_sampler();
	ret = fx_open(&f, why, sizeof(why));
	if (ret < 0) {
		fx_close(&f);
		tap_skip_all("cannot sample this process: %s %s", strerror(-ret), why);
	}
	test_zap_then_touch(&f);
	test_zap_skips_unmapped(&f);
	fx_close(&f);
	test_sampler_of_gone_process();
	return tap_done();
}
