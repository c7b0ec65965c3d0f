/* SPDX-License-Identifier: MIT */
/*
 * daemon/sample.c - access sampling: zap a client's pages, test them later
 * (see sample.h for the mechanism and why it keeps data).
 *
 * Zaps go to the kernel as one process_madvise() per SAMPLE_IOV_MAX runs of
 * contiguous pages; tests read the pagemap in spans of up to SAMPLE_SPAN
 * pages, one pread() per span, so a sorted batch of victims costs a few
 * system calls.  Nothing here takes a lock or touches page contents; the
 * caller rechecks every page's entry before acting on a verdict, since the
 * page may have moved meanwhile (a verdict is only a hint).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <unistd.h>

#include "daemon/sample.h"

#define SAMPLE_PAGE_SHIFT 12
#define SAMPLE_PAGE_SIZE (1UL << SAMPLE_PAGE_SHIFT)
/* UIO_MAXIOV: the most iovecs one process_madvise() takes. */
#define SAMPLE_IOV_MAX 1024
/* Pagemap entries read at once: 4 KiB of pagemap. */
#define SAMPLE_SPAN 512
#define PM_PRESENT (UINT64_C(1) << 63)

void uzd_sampler_init(struct uzd_sampler *s)
{
	s->pidfd = -1;
	s->pagemap = -1;
}

static int pidfd_alive(int pidfd)
{
	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		return -errno;
	return 0;
}

int uzd_sampler_open(struct uzd_sampler *s, int pidfd, pid_t pid)
{
	char path[64];
	int ret;

	uzd_sampler_init(s);
	if (pidfd < 0) {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0)
			return -errno;
	}
	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	s->pagemap = open(path, O_RDONLY | O_CLOEXEC);
	if (s->pagemap < 0) {
		ret = errno == ENOENT ? -ESRCH : -errno;
		goto err_pidfd;
	}
	/*
	 * The pagemap was opened by pid, the pidfd names the process itself:
	 * if that process still lives now, the pid was not recycled before
	 * the open, and the pagemap (which pins its mm) is the client's.
	 */
	ret = pidfd_alive(pidfd);
	if (ret < 0)
		goto err_pagemap;
	s->pidfd = pidfd;
	return 0;

err_pagemap:
	close(s->pagemap);
	s->pagemap = -1;
err_pidfd:
	close(pidfd);
	return ret;
}

void uzd_sampler_close(struct uzd_sampler *s)
{
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->pagemap >= 0)
		close(s->pagemap);
	uzd_sampler_init(s);
}

bool uzd_sample_usable(void)
{
	struct sysinfo si;

	return sysinfo(&si) == 0 && si.totalswap == 0;
}

/* Runs of contiguous pages of @addrs[*i..n) into @iov, at most SAMPLE_IOV_MAX. */
static int fill_runs(const uint64_t *addrs, size_t n, size_t *i, struct iovec *iov)
{
	int cnt = 0;

	while (*i < n && cnt < SAMPLE_IOV_MAX) {
		uint64_t start = addrs[*i], end = start + SAMPLE_PAGE_SIZE;

		for ((*i)++; *i < n && addrs[*i] <= end; (*i)++)
			if (addrs[*i] == end)
				end += SAMPLE_PAGE_SIZE;
		iov[cnt].iov_base = (void *)(uintptr_t)start;
		iov[cnt].iov_len = end - start;
		cnt++;
	}
	return cnt;
}

/*
 * One process_madvise() over iov[0..cnt).  It stops at the first range it
 * cannot advise and returns the bytes done before it; a range that is no
 * longer mapped (-ENOMEM, the client unmapped it since) is skipped and the
 * rest advised.
 */
static int zap_runs(int pidfd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		long done = syscall(SYS_process_madvise, pidfd, iov, (size_t)cnt, MADV_PAGEOUT, 0);

		if (done < 0 && errno != ENOMEM)
			return -errno;
		if (done < 0)
			done = 0;
		while (cnt > 0 && (size_t)done >= iov->iov_len) {
			done -= (long)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov++; /* the range that failed */
			cnt--;
		}
	}
	return 0;
}

int uzd_sample_zap(struct uzd_sampler *s, const uint64_t *addrs, size_t n)
{
	struct iovec iov[SAMPLE_IOV_MAX];
	size_t i = 0;
	int ret;

	if (!uzd_sampler_active(s))
		return -EINVAL;
	while (i < n) {
		ret = zap_runs(s->pidfd, iov, fill_runs(addrs, n, &i, iov));
		if (ret < 0)
			return ret;
	}
	return 0;
}

int uzd_sample_present(struct uzd_sampler *s, const uint64_t *addrs, size_t n, bool *present)
{
	uint64_t pm[SAMPLE_SPAN];
	size_t i = 0, j;

	if (!uzd_sampler_active(s))
		return -EINVAL;
	while (i < n) {
		uint64_t first = addrs[i] >> SAMPLE_PAGE_SHIFT;
		size_t want;
		ssize_t got;

		for (j = i + 1; j < n && (addrs[j] >> SAMPLE_PAGE_SHIFT) - first < SAMPLE_SPAN; j++)
			;
		want = (size_t)((addrs[j - 1] >> SAMPLE_PAGE_SHIFT) - first + 1);
		got = pread(s->pagemap, pm, want * sizeof(pm[0]), (off_t)(first * sizeof(pm[0])));
		if (got < 0)
			return -errno;
		/* A short read: the mm is gone (the process exited). */
		if ((size_t)got < want * sizeof(pm[0]))
			return -ESRCH;
		for (; i < j; i++)
			present[i] = pm[(addrs[i] >> SAMPLE_PAGE_SHIFT) - first] & PM_PRESENT;
	}
	return 0;
}
