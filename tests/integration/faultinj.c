/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/faultinj.c - libfaultinj.so, uzswapd's backing-file
 * I/O failing on demand (see faultinj.h).  Test only.
 *
 * Each call on a descriptor first asks whether it is the backing file
 * (a readlink of /proc/self/fd/N: slow, and exact, which is what a test
 * wants), then takes one unit of the mode's count with a compare-and-swap,
 * so that "fail the next read" fails exactly one even when two fault
 * threads race.  The real functions come from dlsym(RTLD_NEXT): glibc's,
 * or a sanitizer's interceptors in an instrumented daemon.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/integration/faultinj.h"

typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*pread_fn)(int, void *, size_t, off_t);

static struct faultinj_ctl *ctl;
static const char *dir;
static pwrite_fn real_pwrite;
static pread_fn real_pread;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void setup(void)
{
	const char *path = getenv("UZSWAP_FAULTINJ_CTL");
	void *p;
	int fd;

	real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
	real_pread = (pread_fn)dlsym(RTLD_NEXT, "pread");
	dir = getenv("UZSWAP_FAULTINJ_DIR");
	if (!path || !dir)
		return;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return;
	p = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p != MAP_FAILED && ((struct faultinj_ctl *)p)->magic == FAULTINJ_MAGIC)
		ctl = p;
}

static bool is_backing(int fd)
{
	char link[64], target[512];
	ssize_t n;

	pthread_once(&once, setup);
	if (!ctl)
		return false;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0)
		return false;
	target[n] = '\0';
	return strncmp(target, dir, strlen(dir)) == 0;
}

/* Take one unit of *@count: true when the mode applies to this call. */
static bool take(int32_t *count)
{
	int32_t c = __atomic_load_n(count, __ATOMIC_ACQUIRE);

	for (;;) {
		if (c == 0)
			return false;
		if (c < 0)
			return true;
		if (__atomic_compare_exchange_n(count, &c, c - 1, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE))
			return true;
	}
}

static int32_t mode_if_taken(int32_t *mode, int32_t *count)
{
	int32_t m = __atomic_load_n(mode, __ATOMIC_ACQUIRE);

	return m != FI_NONE && take(count) ? m : FI_NONE;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	int32_t m;

	if (!is_backing(fd))
		return real_pwrite(fd, buf, len, off);
	__atomic_fetch_add(&ctl->writes, 1, __ATOMIC_RELAXED);
	m = mode_if_taken(&ctl->write_mode, &ctl->write_count);
	if (m != FI_NONE)
		__atomic_fetch_add(&ctl->writes_hit, 1, __ATOMIC_RELAXED);
	switch (m) {
	case FI_ENOSPC:
		errno = ENOSPC;
		return -1;
	case FI_EIO:
		errno = EIO;
		return -1;
	case FI_SHORT:
		return real_pwrite(fd, buf, len > 1 ? len / 2 : len, off);
	default:
		return real_pwrite(fd, buf, len, off);
	}
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return pwrite(fd, buf, len, off);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	int32_t m = FI_NONE;
	ssize_t n;

	if (!is_backing(fd))
		return real_pread(fd, buf, len, off);
	__atomic_fetch_add(&ctl->reads, 1, __ATOMIC_RELAXED);
	if (!ctl->read_max_len || len <= ctl->read_max_len)
		m = mode_if_taken(&ctl->read_mode, &ctl->read_count);
	if (m != FI_NONE)
		__atomic_fetch_add(&ctl->reads_hit, 1, __ATOMIC_RELAXED);
	switch (m) {
	case FI_EIO:
		errno = EIO;
		return -1;
	case FI_SHORT:
		return real_pread(fd, buf, len > 1 ? len / 2 : len, off);
	case FI_EOF:
		return 0;
	case FI_CORRUPT:
		n = real_pread(fd, buf, len, off);
		if (n > 0)
			((unsigned char *)buf)[n / 2] ^= 0x04;
		return n;
	default:
		return real_pread(fd, buf, len, off);
	}
}

ssize_t pread64(int fd, void *buf, size_t len, off_t off)
{
	return pread(fd, buf, len, off);
}

ssize_t __pread_chk(int fd, void *buf, size_t len, off_t off, size_t buflen)
{
	(void)buflen;
	return pread(fd, buf, len, off);
}

ssize_t __pread64_chk(int fd, void *buf, size_t len, off_t off, size_t buflen)
{
	(void)buflen;
	return pread(fd, buf, len, off);
}
