/* SPDX-License-Identifier: MIT */
/*
 * client/uffd.c - create a userfaultfd and register ranges (see uffd.h).
 *
 * Each function is one kernel operation plus the checks design.md §1 asks
 * for: the descriptor must have every feature of UZP_UFFD_FEATURES, and a
 * registered range every ioctl the daemon will call on it.  When the
 * kernel refuses a feature, a throwaway descriptor asks what it does offer,
 * so the error names what is missing rather than saying "Invalid argument".
 * The feature names duplicate daemon/uffd.c's on purpose: client/ includes
 * nothing of daemon/.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client/uffd.h"

static const struct {
	uint64_t bit;
	const char *name;
} feature_names[] = {
	{ UFFD_FEATURE_EVENT_REMOVE, "EVENT_REMOVE" },
	{ UFFD_FEATURE_EVENT_UNMAP, "EVENT_UNMAP" },
	{ UFFD_FEATURE_EVENT_REMAP, "EVENT_REMAP" },
	{ UFFD_FEATURE_MISSING_SHMEM, "MISSING_SHMEM" },
	{ UFFD_FEATURE_PAGEFAULT_FLAG_WP, "PAGEFAULT_FLAG_WP" },
	{ UFFD_FEATURE_WP_HUGETLBFS_SHMEM, "WP_HUGETLBFS_SHMEM (Linux 5.19)" },
	{ UFFD_FEATURE_POISON, "POISON (Linux 6.6)" },
};

static void say(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !why_len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static int uffd_open(int dev_fd)
{
	/* Never UFFD_USER_MODE_ONLY: kernel-mode faults must block too (design.md §1). */
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd;

	if (dev_fd >= 0)
		fd = ioctl(dev_fd, USERFAULTFD_IOC_NEW, flags);
	else
		fd = (int)syscall(SYS_userfaultfd, flags);
	return fd < 0 ? -errno : fd;
}

static int uffd_api(int fd, uint64_t features, struct uffdio_api *api)
{
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = features;
	return xioctl(fd, UFFDIO_API, api);
}

/*
 * UFFDIO_API fails as a whole (EINVAL) when one requested feature is
 * unknown, and may be called only once per descriptor: ask a second,
 * throwaway descriptor for everything the kernel offers.
 */
static int probe_features(int dev_fd, uint64_t *avail)
{
	struct uffdio_api api;
	int fd, r;

	fd = uffd_open(dev_fd);
	if (fd < 0)
		return fd;
	r = uffd_api(fd, 0, &api);
	close(fd);
	if (r == 0)
		*avail = api.features;
	return r;
}

static void list_features(uint64_t mask, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		if (!(mask & feature_names[i].bit) || used >= len)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
					 feature_names[i].name);
	}
}

/* After UFFDIO_API refused UZP_UFFD_FEATURES: say which ones are missing. */
static int explain_refusal(int dev_fd, int err, char *why, size_t why_len)
{
	uint64_t avail = 0;
	char names[256];

	if (err != -EINVAL || probe_features(dev_fd, &avail) < 0 || !(UZP_UFFD_FEATURES & ~avail)) {
		say(why, why_len, "UFFDIO_API: %s", strerror(-err));
		return err;
	}
	list_features(UZP_UFFD_FEATURES & ~avail, names, sizeof(names));
	say(why, why_len, "the kernel lacks userfaultfd features uzswap needs: %s", names);
	return -EOPNOTSUPP;
}

static void explain_open(int dev_fd, int err, char *why, size_t why_len)
{
	if (dev_fd >= 0)
		say(why, why_len, "USERFAULTFD_IOC_NEW on /dev/userfaultfd: %s", strerror(-err));
	else if (err == -EPERM)
		say(why, why_len,
		    "userfaultfd(2) handling kernel faults needs CAP_SYS_PTRACE or "
		    "vm.unprivileged_userfaultfd=1; use /dev/userfaultfd instead");
	else
		say(why, why_len, "userfaultfd(2): %s", strerror(-err));
}

int uzs_uffd_create(int dev_fd, char *why, size_t why_len)
{
	const uint64_t need_ioctls = 1ULL << _UFFDIO_REGISTER | 1ULL << _UFFDIO_UNREGISTER;
	struct uffdio_api api;
	int fd, r;

	fd = uffd_open(dev_fd);
	if (fd < 0) {
		explain_open(dev_fd, fd, why, why_len);
		return fd;
	}
	r = uffd_api(fd, UZP_UFFD_FEATURES, &api);
	if (r < 0) {
		r = explain_refusal(dev_fd, r, why, why_len);
		goto err_close;
	}
	if ((api.ioctls & need_ioctls) != need_ioctls) {
		say(why, why_len,
		    "UFFDIO_API offers no UFFDIO_REGISTER/UNREGISTER (ioctls %#" PRIx64 ")",
		    (uint64_t)api.ioctls);
		r = -EOPNOTSUPP;
		goto err_close;
	}
	return fd;

err_close:
	close(fd);
	return r;
}

static uint64_t ioctls_for_modes(uint64_t modes)
{
	uint64_t need = 1ULL << _UFFDIO_WAKE;

	if (modes & UFFDIO_REGISTER_MODE_MISSING)
		need |= 1ULL << _UFFDIO_COPY | 1ULL << _UFFDIO_ZEROPAGE;
	if (modes & UFFDIO_REGISTER_MODE_WP)
		need |= 1ULL << _UFFDIO_WRITEPROTECT;
	return need;
}

int uzs_uffd_register(int fd, uint64_t start, uint64_t len, uint64_t modes, uint64_t *ioctls)
{
	struct uffdio_register reg = { .range = { .start = start, .len = len }, .mode = modes };
	uint64_t need = ioctls_for_modes(modes);
	int r;

	r = xioctl(fd, UFFDIO_REGISTER, &reg);
	if (r < 0)
		return r;
	if (ioctls)
		*ioctls = reg.ioctls;
	if ((reg.ioctls & need) != need) {
		uzs_uffd_unregister(fd, start, len);
		return -EOPNOTSUPP;
	}
	return 0;
}

int uzs_uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return xioctl(fd, UFFDIO_UNREGISTER, &range);
}
