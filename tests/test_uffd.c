/* SPDX-License-Identifier: MIT */
/*
 * tests/test_uffd.c - daemon/uffd.c and client/uffd.c against the real
 * kernel: the paging mechanics of design.md §1, one behaviour per test point.
 *
 * Each test makes a fresh region the way a client does (a memfd, mapped
 * MAP_SHARED, registered MISSING|WP on a new userfaultfd).  The test process
 * plays both sides: helper threads are the client touching its memory, the
 * main thread is the daemon that waits for messages (poll with a timeout),
 * captures with pread(2) and fills with the uzd_uffd_ calls.  The poison
 * test forks a real client process, which must die of SIGBUS alone.  The
 * main thread never touches a registered range itself.
 *
 * Nothing can hang: every wait has a timeout, and cleanup closes the
 * userfaultfd before joining threads (the kernel then wakes every blocked
 * fault and event; fs/userfaultfd.c, userfaultfd_release()), reaps children,
 * and a watchdog alarm ends the program if all else fails.  Needs root or
 * an accessible /dev/userfaultfd; skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client/uffd.h"
#include "daemon/uffd.h"
#include "tests/tap.h"

#define PG 4096
#define WAIT_MS 2000
#define NPAGES 16
#define WATCHDOG_S 30

/* ---- a region, as a client makes it ---- */

struct fx {
	int memfd;
	int uffd;
	char *map;
	uint64_t base;
	size_t len;
};

static int fx_open(struct fx *f, int dev_fd)
{
	char why[256];
	int r;

	memset(f, 0, sizeof(*f));
	f->uffd = -1;
	f->len = NPAGES * PG;
	f->memfd = memfd_create("uzswap-test-uffd", MFD_CLOEXEC);
	if (f->memfd < 0 || ftruncate(f->memfd, (off_t)f->len) < 0)
		goto err;
	f->map = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
	if (f->map == MAP_FAILED)
		goto err;
	f->base = (uintptr_t)f->map;
	f->uffd = uzs_uffd_create(dev_fd, why, sizeof(why));
	if (f->uffd < 0) {
		tap_diag("uzs_uffd_create: %s", why);
		goto err;
	}
	r = uzs_uffd_register(f->uffd, f->base, f->len, UZP_UFFD_REGISTER_MODES, NULL);
	if (r < 0) {
		tap_diag("uzs_uffd_register: %s", uzd_uffd_strerror(r));
		goto err;
	}
	return 0;
err:
	tap_diag("fixture setup failed: %s", strerror(errno));
	return -1;
}

/*
 * Close the userfaultfd first: that wakes every thread blocked on it, so a
 * failed test can still join its threads.  Then drop the mapping, which
 * is no longer registered and so raises no UNMAP event.
 */
static void fx_release(struct fx *f)
{
	if (f->uffd >= 0)
		close(f->uffd);
	f->uffd = -1;
}

static void fx_close(struct fx *f)
{
	fx_release(f);
	if (f->map && f->map != MAP_FAILED)
		munmap(f->map, f->len);
	if (f->memfd > 0)
		close(f->memfd);
	memset(f, 0, sizeof(*f));
}

static uint64_t fx_page(const struct fx *f, size_t i)
{
	return f->base + i * PG;
}

/* The daemon's view of a page: pread on the memfd, never the mapping. */
static bool fx_pread(const struct fx *f, size_t i, unsigned char *buf)
{
	return pread(f->memfd, buf, PG, (off_t)(i * PG)) == PG;
}

static long long fx_blocks(const struct fx *f)
{
	struct stat st;

	return fstat(f->memfd, &st) == 0 ? (long long)st.st_blocks : -1;
}

static void fill_pattern(unsigned char *buf, unsigned int seed)
{
	for (size_t i = 0; i < PG; i++)
		buf[i] = (unsigned char)(seed * 131u + i * 7u + (i >> 8));
}

static bool all_bytes(const unsigned char *buf, unsigned char c)
{
	for (size_t i = 0; i < PG; i++)
		if (buf[i] != c)
			return false;
	return true;
}

/* ---- the daemon's side: wait for one message ---- */

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? 0 : -ETIMEDOUT;
}

static int wait_msg(int fd, struct uffd_msg *m)
{
	size_t n = 0;
	int r;

	r = wait_readable(fd, WAIT_MS);
	if (r == 0)
		r = uzd_uffd_read_events(fd, m, 1, &n);
	if (r == 0 && n != 1)
		r = -ETIMEDOUT;
	if (r < 0)
		tap_diag("expected a userfaultfd message, got %s", uzd_uffd_strerror(r));
	return r;
}

static bool is_fault(const struct uffd_msg *m, uint64_t addr, bool wp)
{
	if (m->event != UFFD_EVENT_PAGEFAULT || m->arg.pagefault.address != addr ||
	    !!(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != wp) {
		tap_diag("expected a %s fault at %#llx, saw %s at %#llx flags %#llx",
			 wp ? "WP" : "MISSING", (unsigned long long)addr,
			 uzd_uffd_event_name(m->event),
			 (unsigned long long)m->arg.pagefault.address,
			 (unsigned long long)m->arg.pagefault.flags);
		return false;
	}
	return true;
}

/* ---- the client's side: a thread that touches its memory ---- */

enum job_op {
	JOB_READ,	 /* copy the page into seen[] */
	JOB_WRITE,	 /* store one byte */
	JOB_PIPE_READ,	 /* read(2) from a pipe into the page */
	JOB_MADV_REMOVE, /* madvise(MADV_REMOVE) */
	JOB_MUNMAP,
};

struct job {
	enum job_op op;
	char *addr;
	size_t len;
	unsigned char byte;
	int pipefd;
	long ret;
	int err;
	atomic_bool done;
	bool started;
	pthread_t tid;
	unsigned char seen[PG];
};

static void *job_run(void *arg)
{
	struct job *j = arg;

	switch (j->op) {
	case JOB_READ:
		memcpy(j->seen, j->addr, PG);
		break;
	case JOB_WRITE:
		*(volatile char *)j->addr = (char)j->byte;
		break;
	case JOB_PIPE_READ:
		j->ret = read(j->pipefd, j->addr, j->len);
		break;
	case JOB_MADV_REMOVE:
		j->ret = madvise(j->addr, j->len, MADV_REMOVE);
		break;
	case JOB_MUNMAP:
		j->ret = munmap(j->addr, j->len);
		break;
	}
	j->err = errno;
	atomic_store(&j->done, true);
	return NULL;
}

static bool job_start(struct job *j, enum job_op op, uint64_t addr, size_t len)
{
	j->op = op;
	j->addr = (char *)(uintptr_t)addr;
	j->len = len;
	atomic_store(&j->done, false);
	j->started = pthread_create(&j->tid, NULL, job_run, j) == 0;
	if (!j->started)
		tap_diag("pthread_create failed");
	return j->started;
}

static bool job_blocked(struct job *j)
{
	return j->started && !atomic_load(&j->done);
}

static void job_join(struct job *j)
{
	if (j->started)
		pthread_join(j->tid, NULL);
	j->started = false;
}

/* Close the userfaultfd (which releases the threads), join, unmap. */
static void finish(struct fx *f, struct job *jobs, size_t n)
{
	fx_release(f);
	for (size_t i = 0; i < n; i++)
		job_join(&jobs[i]);
	fx_close(f);
}

/* Fence, capture and punch page i, then release: design.md §1, eviction. */
static bool evict(struct fx *f, size_t i, unsigned char *captured)
{
	return uzd_uffd_writeprotect(f->uffd, fx_page(f, i), PG, true, false) == 0 &&
	       fx_pread(f, i, captured) &&
	       fallocate(f->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(i * PG),
			 PG) == 0 &&
	       uzd_uffd_writeprotect(f->uffd, fx_page(f, i), PG, false, true) == 0;
}

/* ---- tests: creation and registration ---- */

static void test_create(int dev_fd)
{
	char why[256] = "";
	uint64_t features = 0;
	int pipefd[2];
	int fd, fl, fdfl;

	if (dev_fd < 0) {
		tap_skip("/dev/userfaultfd is not available");
	} else {
		fd = uzs_uffd_create(dev_fd, why, sizeof(why));
		ok(fd >= 0, "uzs_uffd_create makes a userfaultfd through /dev/userfaultfd");
		if (fd < 0)
			tap_diag("%s", why);
		else
			close(fd);
	}
	fd = uzs_uffd_create(-1, why, sizeof(why));
	if (!ok(fd >= 0, "uzs_uffd_create makes a userfaultfd with the system call")) {
		tap_diag("%s", why);
		return;
	}
	fl = fcntl(fd, F_GETFL);
	fdfl = fcntl(fd, F_GETFD);
	ok(fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC),
	   "the new userfaultfd is O_NONBLOCK and close-on-exec");
	ok(uzd_uffd_check(fd, &features, why, sizeof(why)) == 0 &&
		   (features & UZP_UFFD_FEATURES) == UZP_UFFD_FEATURES,
	   "uzd_uffd_check accepts it, with every feature uzswap needs enabled");
	close(fd);

	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) == 0) {
		ok(uzd_uffd_check(pipefd[0], NULL, why, sizeof(why)) == -EBADF,
		   "uzd_uffd_check refuses a pipe as not a userfaultfd");
		close(pipefd[0]);
		close(pipefd[1]);
	}
	fd = dev_fd >= 0 ? ioctl(dev_fd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK) : -1;
	if (fd >= 0) {
		ok(uzd_uffd_check(fd, NULL, why, sizeof(why)) == -EOPNOTSUPP,
		   "uzd_uffd_check refuses a userfaultfd that never had UFFDIO_API");
		close(fd);
	}
	fd = dev_fd >= 0 ? ioctl(dev_fd, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK) : -1;
	if (fd >= 0) {
		struct uffdio_api api = { .api = UFFD_API,
					  .features = UZP_UFFD_FEATURES | UFFD_FEATURE_EVENT_FORK };

		ok(ioctl(fd, UFFDIO_API, &api) == 0 &&
			   uzd_uffd_check(fd, NULL, why, sizeof(why)) == -EINVAL &&
			   strstr(why, "EVENT_FORK"),
		   "uzd_uffd_check refuses a userfaultfd with EVENT_FORK, whose events would hand "
		   "the daemon a descriptor per fork (%s)",
		   why);
		close(fd);
	}
}

static void test_register(int dev_fd)
{
	const uint64_t need = 1ULL << _UFFDIO_COPY | 1ULL << _UFFDIO_ZEROPAGE |
			      1ULL << _UFFDIO_WRITEPROTECT | 1ULL << _UFFDIO_WAKE |
			      1ULL << _UFFDIO_POISON;
	uint64_t ioctls = 0;
	struct fx f;
	int r;

	if (fx_open(&f, dev_fd) < 0) {
		ok(false, "a memfd region registers MISSING|WP");
		return;
	}
	r = uzs_uffd_unregister(f.uffd, f.base, f.len);
	if (r == 0)
		r = uzs_uffd_register(f.uffd, f.base, f.len, UZP_UFFD_REGISTER_MODES, &ioctls);
	ok(r == 0 && (ioctls & need) == need,
	   "a memfd region registers MISSING|WP with COPY, ZEROPAGE, WRITEPROTECT, WAKE, POISON");
	if (r || (ioctls & need) != need)
		tap_diag("register: %s, ioctls %#llx", uzd_uffd_strerror(r),
			 (unsigned long long)ioctls);
	fx_close(&f);
}

/* ---- tests: messages ---- */

static void test_read_events_empty(int dev_fd)
{
	struct uffd_msg m[4];
	size_t n = 99;
	struct fx f;
	int r;

	if (fx_open(&f, dev_fd) < 0) {
		ok(false, "reading an idle userfaultfd returns no message at once");
		return;
	}
	r = uzd_uffd_read_events(f.uffd, m, 4, &n);
	ok(r == 0 && n == 0, "reading an idle userfaultfd returns no message at once");
	fx_close(&f);
}

static void test_events_first(void)
{
	static const unsigned char in[] = { UFFD_EVENT_PAGEFAULT, UFFD_EVENT_REMOVE,
					    UFFD_EVENT_PAGEFAULT, UFFD_EVENT_PAGEFAULT,
					    UFFD_EVENT_UNMAP,	  UFFD_EVENT_PAGEFAULT,
					    UFFD_EVENT_REMAP };
	static const unsigned char want[] = { 1, 4, 6, 0, 2, 3, 5 };
	struct uffd_msg m[7];
	bool same = true;
	size_t k;

	memset(m, 0, sizeof(m));
	for (size_t i = 0; i < 7; i++) {
		m[i].event = in[i];
		m[i].arg.reserved.reserved1 = i;
	}
	k = uzd_uffd_events_first(m, 7);
	for (size_t i = 0; i < 7; i++)
		same = same && m[i].arg.reserved.reserved1 == want[i];
	ok(k == 3 && same, "a batch is reordered events first, faults after, each in order");
	k = uzd_uffd_events_first(m, 0);
	ok(k == 0, "an empty batch has no events");
}

/* ---- tests: restoring pages ---- */

static void test_first_touch_copy(int dev_fd)
{
	unsigned char page[PG], back[PG];
	struct uffd_msg m;
	struct job j = { 0 };
	struct fx f;
	int r = -1;

	fill_pattern(page, 1);
	if (fx_open(&f, dev_fd) < 0 || !job_start(&j, JOB_READ, fx_page(&f, 0), PG))
		goto out;
	ok(wait_msg(f.uffd, &m) == 0 && is_fault(&m, fx_page(&f, 0), false) && job_blocked(&j),
	   "a first touch blocks the thread with a MISSING fault");
	r = uzd_uffd_copy(f.uffd, fx_page(&f, 0), page, PG, 0);
	ok(r == 0, "UFFDIO_COPY serves the fault (%s)", uzd_uffd_strerror(r));
	job_join(&j);
	ok(r == 0 && memcmp(j.seen, page, PG) == 0 && fx_pread(&f, 0, back) &&
		   memcmp(back, page, PG) == 0,
	   "the thread and the memfd see exactly the bytes copied");
out:
	finish(&f, &j, 1);
}

static void test_double_fault_eexist(int dev_fd)
{
	unsigned char page[PG];
	struct uffd_msg m[2];
	struct job j[2] = { 0 };
	struct fx f;
	int r0 = -1, r1 = -1;

	fill_pattern(page, 2);
	if (fx_open(&f, dev_fd) < 0 || !job_start(&j[0], JOB_READ, fx_page(&f, 1), PG) ||
	    !job_start(&j[1], JOB_READ, fx_page(&f, 1), PG))
		goto out;
	/* Read both messages before answering: a copy would wake and drop the second. */
	if (!ok(wait_msg(f.uffd, &m[0]) == 0 && wait_msg(f.uffd, &m[1]) == 0 &&
			is_fault(&m[0], fx_page(&f, 1), false) &&
			is_fault(&m[1], fx_page(&f, 1), false),
		"two threads touching one page give two MISSING messages"))
		goto out;
	r0 = uzd_uffd_copy(f.uffd, m[0].arg.pagefault.address, page, PG, 0);
	r1 = uzd_uffd_copy(f.uffd, m[1].arg.pagefault.address, page, PG, 0);
	ok(r0 == 0 && r1 == UZD_UFFD_EXISTED,
	   "the second copy reports the page already present, not an error (%d, %d)", r0, r1);
	job_join(&j[0]);
	job_join(&j[1]);
	ok(memcmp(j[0].seen, page, PG) == 0 && memcmp(j[1].seen, page, PG) == 0,
	   "both threads wake and read the page");
out:
	finish(&f, j, 2);
}

static void test_copy_around_present_page(int dev_fd)
{
	unsigned char src[3 * PG], other[PG], back[PG];
	struct fx f;
	bool same;
	int r;

	if (fx_open(&f, dev_fd) < 0) {
		ok(false, "a copy over a present page fills the pages around it");
		return;
	}
	for (unsigned int i = 0; i < 3; i++)
		fill_pattern(src + i * PG, 10 + i);
	fill_pattern(other, 20);
	r = uzd_uffd_copy(f.uffd, fx_page(&f, 3), other, PG, 0);
	/* The kernel copies page 2, stops at 3 with EAGAIN and 4096 done: a partial copy. */
	if (r == 0)
		r = uzd_uffd_copy(f.uffd, fx_page(&f, 2), src, 3 * PG, 0);
	same = fx_pread(&f, 2, back) && memcmp(back, src, PG) == 0;
	same = same && fx_pread(&f, 3, back) && memcmp(back, other, PG) == 0;
	same = same && fx_pread(&f, 4, back) && memcmp(back, src + 2 * PG, PG) == 0;
	ok(r == UZD_UFFD_EXISTED && same,
	   "a copy over a present page fills the pages around it and leaves that one (%s)",
	   uzd_uffd_strerror(r));
	fx_close(&f);
}

static void test_zeropage(int dev_fd)
{
	unsigned char back[PG];
	struct uffd_msg m;
	struct job j = { 0 };
	struct fx f;
	int r = -1;

	if (fx_open(&f, dev_fd) < 0 || !job_start(&j, JOB_READ, fx_page(&f, 5), PG))
		goto out;
	memset(j.seen, 0xaa, PG);
	if (wait_msg(f.uffd, &m) == 0 && is_fault(&m, fx_page(&f, 5), false))
		r = uzd_uffd_zeropage(f.uffd, fx_page(&f, 5), PG, 0);
	job_join(&j);
	ok(r == 0 && all_bytes(j.seen, 0) && fx_pread(&f, 5, back) && all_bytes(back, 0),
	   "UFFDIO_ZEROPAGE serves a page of zeros (%s)", uzd_uffd_strerror(r));
out:
	finish(&f, &j, 1);
}

static void test_hole_pread(int dev_fd)
{
	unsigned char back[PG];
	long long before, after;
	struct fx f;

	if (fx_open(&f, dev_fd) < 0) {
		ok(false, "pread of a hole returns zeros and allocates nothing");
		return;
	}
	memset(back, 0xaa, PG);
	before = fx_blocks(&f);
	ok(fx_pread(&f, 6, back) && all_bytes(back, 0) && before >= 0 && fx_blocks(&f) == before,
	   "pread of a hole returns zeros and allocates nothing");
	after = fx_blocks(&f);
	if (after != before)
		tap_diag("st_blocks %lld before, %lld after", before, after);
	fx_close(&f);
}

/* ---- tests: eviction ---- */

static void test_eviction_keeps_write(int dev_fd)
{
	unsigned char page[PG], captured[PG], back[PG], want[PG];
	long long blocks;
	struct uffd_msg m;
	struct job j = { 0 };
	struct fx f;
	const size_t i = 7, off = 100;
	int r;

	fill_pattern(page, 3);
	if (fx_open(&f, dev_fd) < 0 || uzd_uffd_copy(f.uffd, fx_page(&f, i), page, PG, 0) != 0 ||
	    uzd_uffd_writeprotect(f.uffd, fx_page(&f, i), PG, true, false) != 0) {
		ok(false, "a write to a fenced page blocks with a WP fault");
		goto out;
	}
	j.byte = 'X';
	if (!job_start(&j, JOB_WRITE, fx_page(&f, i) + off, 1))
		goto out;
	if (!ok(wait_msg(f.uffd, &m) == 0 && is_fault(&m, fx_page(&f, i), true) &&
			(m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) && job_blocked(&j),
		"a write to a fenced page blocks with a WP fault"))
		goto out;
	ok(fx_pread(&f, i, captured) && memcmp(captured, page, PG) == 0,
	   "pread captures the page without the blocked write");
	blocks = fx_blocks(&f);
	r = fallocate(f.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(i * PG), PG);
	ok(r == 0 && fx_blocks(&f) < blocks && fx_pread(&f, i, back) && all_bytes(back, 0),
	   "punching the hole frees the page (st_blocks %lld -> %lld)", blocks, fx_blocks(&f));
	r = uzd_uffd_writeprotect(f.uffd, fx_page(&f, i), PG, false, true);
	ok(r == 0 && wait_msg(f.uffd, &m) == 0 && is_fault(&m, fx_page(&f, i), false),
	   "unprotecting wakes the writer, which refaults as MISSING");
	r = uzd_uffd_copy(f.uffd, fx_page(&f, i), captured, PG, 0);
	job_join(&j);
	memcpy(want, page, PG);
	want[off] = 'X';
	ok(r == 0 && fx_pread(&f, i, back) && memcmp(back, want, PG) == 0,
	   "after the restore the write lands on the captured bytes: no lost write");
out:
	finish(&f, &j, 1);
}

static void test_syscall_into_evicted_page(int dev_fd)
{
	unsigned char page[PG], captured[PG], back[PG], data[PG];
	struct uffd_msg m;
	struct job j = { 0 };
	int pipefd[2] = { -1, -1 };
	struct fx f;
	const size_t i = 8;
	int r = -1;

	fill_pattern(page, 4);
	memset(data, 'P', PG);
	if (fx_open(&f, dev_fd) < 0 || pipe2(pipefd, O_CLOEXEC) < 0 ||
	    write(pipefd[1], data, PG) != PG ||
	    uzd_uffd_copy(f.uffd, fx_page(&f, i), page, PG, 0) != 0 || !evict(&f, i, captured)) {
		ok(false, "read(2) into an evicted page faults to the daemon");
		goto out;
	}
	j.pipefd = pipefd[0];
	if (!job_start(&j, JOB_PIPE_READ, fx_page(&f, i), PG))
		goto out;
	ok(wait_msg(f.uffd, &m) == 0 && is_fault(&m, fx_page(&f, i), false) &&
		   (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE),
	   "read(2) into an evicted page faults to the daemon (a kernel-mode fault)");
	r = uzd_uffd_copy(f.uffd, fx_page(&f, i), captured, PG, 0);
	job_join(&j);
	ok(r == 0 && j.ret == PG && fx_pread(&f, i, back) && memcmp(back, data, PG) == 0,
	   "the read(2) completes once served, with no EFAULT (returned %ld, %s)", j.ret,
	   j.ret < 0 ? strerror(j.err) : "no error");
out:
	finish(&f, &j, 1);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
}

/* ---- tests: events ---- */

static void test_remove_event(int dev_fd)
{
	unsigned char page[PG], back[PG];
	struct uffd_msg m;
	struct job j = { 0 };
	struct fx f;
	int r_copy, r_wp, r;

	fill_pattern(page, 5);
	if (fx_open(&f, dev_fd) < 0 || uzd_uffd_copy(f.uffd, fx_page(&f, 9), page, PG, 0) != 0 ||
	    !job_start(&j, JOB_MADV_REMOVE, fx_page(&f, 9), PG)) {
		ok(false, "MADV_REMOVE raises a REMOVE event");
		goto out;
	}
	/* The event is pending and unread: the madvise thread waits for us. */
	if (wait_readable(f.uffd, WAIT_MS) < 0) {
		ok(false, "MADV_REMOVE raises a REMOVE event");
		goto out;
	}
	r_copy = uzd_uffd_copy(f.uffd, fx_page(&f, 10), page, PG, 0);
	r_wp = uzd_uffd_writeprotect(f.uffd, fx_page(&f, 11), PG, true, false);
	ok(r_copy == -EAGAIN && r_wp == -EAGAIN && job_blocked(&j),
	   "while a REMOVE event is unread, copy and write-protect return -EAGAIN (%d, %d)", r_copy,
	   r_wp);
	ok(wait_msg(f.uffd, &m) == 0 && m.event == UFFD_EVENT_REMOVE &&
		   m.arg.remove.start == fx_page(&f, 9) && m.arg.remove.end == fx_page(&f, 10),
	   "MADV_REMOVE raises a REMOVE event for its range");
	job_join(&j);
	r = uzd_uffd_copy(f.uffd, fx_page(&f, 9), page, PG, 0);
	ok(j.ret == 0 && r == 0 && fx_pread(&f, 9, back) && memcmp(back, page, PG) == 0,
	   "after the event the removed page is still registered and can be filled (%s)",
	   uzd_uffd_strerror(r));
out:
	finish(&f, &j, 1);
}

static void test_unmap_event(int dev_fd)
{
	unsigned char page[PG];
	struct uffd_msg m;
	struct job j = { 0 };
	struct fx f;
	int r = 0, r_kept = -1, r_pending;

	fill_pattern(page, 6);
	if (fx_open(&f, dev_fd) < 0 || !job_start(&j, JOB_MUNMAP, fx_page(&f, 12), 2 * PG) ||
	    wait_readable(f.uffd, WAIT_MS) < 0) {
		ok(false, "munmap raises an UNMAP event");
		goto out;
	}
	r_pending = uzd_uffd_copy(f.uffd, fx_page(&f, 0), page, PG, 0);
	ok(r_pending == -EAGAIN && job_blocked(&j),
	   "munmap waits until its UNMAP event is read; meanwhile a copy returns -EAGAIN (%d)",
	   r_pending);
	ok(wait_msg(f.uffd, &m) == 0 && m.event == UFFD_EVENT_UNMAP &&
		   m.arg.remove.start == fx_page(&f, 12) && m.arg.remove.end == fx_page(&f, 14),
	   "munmap of part of a region raises an UNMAP event for that part");
	job_join(&j);
	if (j.ret == 0) {
		r = uzd_uffd_copy(f.uffd, fx_page(&f, 12), page, PG, 0);
		r_kept = uzd_uffd_copy(f.uffd, fx_page(&f, 11), page, PG, 0);
	}
	ok(r == -ENOENT && uzd_uffd_gone(r) && r_kept == 0,
	   "a copy into the unmapped part returns -ENOENT, the rest still works (%d, %d)", r,
	   r_kept);
out:
	finish(&f, &j, 1);
}

/* ---- tests: poison, with a real client process ---- */

static int send_fd(int sock, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 'u';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sock)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	int fd;

	if (wait_readable(sock, WAIT_MS) < 0 || recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/*
 * The client: registers the region it inherited, hands its userfaultfd to
 * the daemon, checks the page the daemon copied in, then touches the
 * poisoned one.  Exit codes other than death by SIGBUS say what went wrong.
 */
static void poison_client(int sock, int dev_fd, char *map)
{
	unsigned char want[PG];
	char go;
	int fd;

	alarm(5);
	signal(SIGBUS, SIG_DFL); /* sanitizers catch SIGBUS and exit instead */
	fd = uzs_uffd_create(dev_fd, NULL, 0);
	if (fd < 0 || uzs_uffd_register(fd, (uintptr_t)map, 2 * PG, UZP_UFFD_REGISTER_MODES, NULL))
		_exit(10);
	if (send_fd(sock, fd) < 0 || read(sock, &go, 1) != 1)
		_exit(11);
	fill_pattern(want, 7);
	if (memcmp(map + PG, want, PG) != 0)
		_exit(12);
	*(volatile char *)map;
	_exit(13);
}

static int reap(pid_t pid, int *status)
{
	for (int i = 0; i < WAIT_MS / 10; i++) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 0;
		if (r < 0)
			return -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

static void test_poison(int dev_fd)
{
	unsigned char page[PG], back[PG];
	int sv[2] = { -1, -1 }, fd = -1, status = 0, r_poison = -1, r_copy = -1, r_gone = 0;
	char *map = MAP_FAILED;
	char why[256] = "";
	pid_t pid = -1;
	int memfd;

	fill_pattern(page, 7);
	memfd = memfd_create("uzswap-test-poison", MFD_CLOEXEC);
	if (memfd < 0 || ftruncate(memfd, 4 * PG) < 0 ||
	    (map = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0)) ==
		    MAP_FAILED ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 || (pid = fork()) < 0) {
		ok(false, "a client process hands over its userfaultfd");
		goto out;
	}
	if (pid == 0) {
		close(sv[0]);
		poison_client(sv[1], dev_fd, map);
	}
	close(sv[1]);
	sv[1] = -1;
	fd = recv_fd(sv[0]);
	if (!ok(fd >= 0 && uzd_uffd_check(fd, NULL, why, sizeof(why)) == 0,
		"a client process hands over its userfaultfd, and it passes uzd_uffd_check")) {
		tap_diag("%s", why);
		goto out;
	}
	r_poison = uzd_uffd_poison(fd, (uintptr_t)map, PG, 0);
	r_copy = uzd_uffd_copy(fd, (uintptr_t)map + PG, page, PG, 0);
	ok(r_poison == 0 && r_copy == 0,
	   "the daemon poisons one page and fills another in the client (%d, %d)", r_poison,
	   r_copy);
	if (write(sv[0], "g", 1) != 1 || reap(pid, &status) < 0) {
		ok(false, "touching a poisoned page kills the client with SIGBUS");
		pid = -1;
		goto out;
	}
	pid = -1;
	ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
	   "touching a poisoned page kills the client with SIGBUS, nobody else (%s %d)",
	   WIFSIGNALED(status) ? "signal" : "exit",
	   WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	ok(pread(memfd, back, PG, 0) == PG && all_bytes(back, 0) &&
		   pread(memfd, back, PG, PG) == PG && memcmp(back, page, PG) == 0,
	   "poison lives in the client's page table only: the memfd holds a hole and the copy");
	r_gone = uzd_uffd_copy(fd, (uintptr_t)map + 2 * PG, page, PG, 0);
	ok(r_gone == -ESRCH, "a copy for a client that has exited returns -ESRCH (%d)", r_gone);
out:
	if (pid > 0 && reap(pid, &status) < 0)
		tap_diag("client process had to be killed");
	if (fd >= 0)
		close(fd);
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (map != MAP_FAILED)
		munmap(map, 4 * PG);
	if (memfd >= 0)
		close(memfd);
}

static void test_strerror(void)
{
	ok(strstr(uzd_uffd_strerror(-EAGAIN), "events") &&
		   strstr(uzd_uffd_strerror(-ESRCH), "exited") && uzd_uffd_strerror(-12345) &&
		   uzd_uffd_gone(-ESRCH) && !uzd_uffd_gone(-EAGAIN),
	   "uzd_uffd_strerror explains the userfaultfd errors");
}

/* ---- main ---- */

static int usable(int dev_fd)
{
	char why[256] = "";
	int fd;

	fd = uzs_uffd_create(dev_fd, why, sizeof(why));
	if (fd < 0 && dev_fd >= 0)
		fd = uzs_uffd_create(-1, why, sizeof(why));
	if (fd < 0)
		tap_skip_all("cannot create a userfaultfd here: %s", why);
	close(fd);
	return 0;
}

int main(void)
{
	int dev_fd;

	if (sysconf(_SC_PAGESIZE) != PG)
		tap_skip_all("this test assumes 4 KiB pages");
	alarm(WATCHDOG_S);
	dev_fd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	usable(dev_fd);

	test_create(dev_fd);
	test_register(dev_fd);
	test_read_events_empty(dev_fd);
	test_events_first();
	test_first_touch_copy(dev_fd);
	test_double_fault_eexist(dev_fd);
	test_copy_around_present_page(dev_fd);
	test_zeropage(dev_fd);
	test_hole_pread(dev_fd);
	test_eviction_keeps_write(dev_fd);
	test_syscall_into_evicted_page(dev_fd);
	test_remove_event(dev_fd);
	test_unmap_event(dev_fd);
	test_poison(dev_fd);
	test_strerror();

	if (dev_fd >= 0)
		close(dev_fd);
	return tap_done();
}
