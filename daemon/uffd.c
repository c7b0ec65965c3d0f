/* SPDX-License-Identifier: MIT */
/*
 * daemon/uffd.c - the daemon's userfaultfd calls (see uffd.h).
 *
 * Each function is one kernel operation plus the handling of its results
 * that design.md §1 prescribes; no state is kept between calls.  The three
 * fill ioctls (COPY, ZEROPAGE, POISON) share fill_range(): the kernel fills
 * page after page and, when it stops early, writes the bytes done into the
 * result field and fails with EAGAIN (mm/userfaultfd.c, mfill_atomic()).
 * Only that case is continued here; an EAGAIN with no progress means an
 * event is unread, and is the caller's to resolve.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "daemon/uffd.h"

/* Bit 31 of the fdinfo feature mask: the kernel's internal UFFD_FEATURE_INITIALIZED. */
#define UFFD_FEATURE_INITIALIZED_BIT (1ULL << 31)

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

enum fill_op {
	FILL_COPY,
	FILL_ZEROPAGE,
	FILL_POISON,
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

/* ---- checking a client's descriptor (daemon side) ---- */

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

static int is_userfaultfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[userfaultfd]") == 0 ? 0 : -EBADF;
}

/*
 * fs/userfaultfd.c prints "API:\t%Lx:%x:%Lx" (api, features, ioctls), and
 * fs/proc prints the open file's flags in octal.
 */
static int read_fdinfo(int fd, unsigned int *flags, uint64_t *features)
{
	char path[64], line[128];
	unsigned long long api, feat;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "flags: %o", flags) == 1)
			found |= 1;
		else if (sscanf(line, "API: %llx:%llx:", &api, &feat) == 2 && api == UFFD_API)
			found |= 2;
	}
	fclose(f);
	if (found != 3)
		return -EBADF;
	*features = feat;
	return 0;
}

int uzd_uffd_check(int fd, uint64_t *features, char *why, size_t why_len)
{
	unsigned int flags = 0;
	uint64_t feat = 0;
	char names[256];
	int r;

	r = is_userfaultfd(fd);
	if (r == 0)
		r = read_fdinfo(fd, &flags, &feat);
	if (r < 0) {
		say(why, why_len, "descriptor %d is not a userfaultfd", fd);
		return r;
	}
	if (features)
		*features = feat & ~UFFD_FEATURE_INITIALIZED_BIT;
	/* Before UFFDIO_API the mask holds no feature, whatever the kernel version. */
	if ((feat & UZP_UFFD_FEATURES) != UZP_UFFD_FEATURES) {
		list_features(UZP_UFFD_FEATURES & ~feat, names, sizeof(names));
		say(why, why_len, "userfaultfd without the features uzswap needs: %s", names);
		return -EOPNOTSUPP;
	}
	/*
	 * With EVENT_FORK, each fork of the client puts the child's new
	 * userfaultfd into the daemon's descriptor table when the event is
	 * read: a client forking in a loop would use them all up.
	 */
	if (feat & UFFD_FEATURE_EVENT_FORK) {
		say(why, why_len,
		    "userfaultfd has UFFD_FEATURE_EVENT_FORK: uzswap handles fork in the client, "
		    "and the daemon takes no descriptors from fork events");
		return -EINVAL;
	}
	if (!(flags & O_NONBLOCK)) {
		say(why, why_len,
		    "userfaultfd is not O_NONBLOCK: reading it could block the daemon");
		return -EINVAL;
	}
	return 0;
}

/* ---- filling pages (daemon side) ---- */

/* One ioctl: bytes filled (> 0, maybe fewer than len), or a negative errno. */
static int64_t fill_once(int fd, enum fill_op op, uint64_t dst, const char *src, uint64_t len,
			 uint64_t mode)
{
	struct uffdio_copy copy = { .dst = dst, .src = (uintptr_t)src, .len = len, .mode = mode };
	struct uffdio_zeropage zero = { .range = { .start = dst, .len = len }, .mode = mode };
	struct uffdio_poison poison = { .range = { .start = dst, .len = len }, .mode = mode };
	int64_t done;
	int r;

	switch (op) {
	case FILL_COPY:
		r = xioctl(fd, UFFDIO_COPY, &copy);
		done = copy.copy;
		break;
	case FILL_ZEROPAGE:
		r = xioctl(fd, UFFDIO_ZEROPAGE, &zero);
		done = zero.zeropage;
		break;
	default:
		r = xioctl(fd, UFFDIO_POISON, &poison);
		done = poison.updated;
		break;
	}
	if (r == 0)
		return (int64_t)len;
	/* A failure before the kernel wrote the field leaves it 0. */
	return done > 0 ? done : r;
}

/*
 * The DONTWAKE bit is bit 0 in all three modes.  EEXIST: the page was
 * restored meanwhile (another fault on it, design.md §1): skip that one
 * page and wake its waiters, as the kernel stopped without doing so.
 */
static int fill_range(int fd, enum fill_op op, uint64_t dst, const char *src, uint64_t len,
		      uint64_t mode)
{
	const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	bool existed = false;
	int64_t done;
	int r;

	while (len) {
		done = fill_once(fd, op, dst, src, len, mode);
		if (done == -EEXIST) {
			existed = true;
			done = (int64_t)(len < page ? len : page);
			if (!(mode & UFFDIO_COPY_MODE_DONTWAKE)) {
				r = uzd_uffd_wake(fd, dst, (uint64_t)done);
				if (r < 0)
					return r;
			}
		} else if (done < 0) {
			return (int)done;
		}
		dst += (uint64_t)done;
		len -= (uint64_t)done;
		if (src)
			src += done;
	}
	return existed ? UZD_UFFD_EXISTED : 0;
}

int uzd_uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len, uint64_t mode)
{
	if (!src)
		return -EINVAL;
	return fill_range(fd, FILL_COPY, dst, src, len, mode);
}

int uzd_uffd_zeropage(int fd, uint64_t dst, uint64_t len, uint64_t mode)
{
	return fill_range(fd, FILL_ZEROPAGE, dst, NULL, len, mode);
}

int uzd_uffd_poison(int fd, uint64_t dst, uint64_t len, uint64_t mode)
{
	return fill_range(fd, FILL_POISON, dst, NULL, len, mode);
}

int uzd_uffd_wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range range = { .start = start, .len = len };

	return xioctl(fd, UFFDIO_WAKE, &range);
}

int uzd_uffd_writeprotect(int fd, uint64_t start, uint64_t len, bool protect, bool wake)
{
	struct uffdio_writeprotect wp = { .range = { .start = start, .len = len } };

	/* The kernel refuses WP together with DONTWAKE (EINVAL). */
	if (protect)
		wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
	else if (!wake)
		wp.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE;
	return xioctl(fd, UFFDIO_WRITEPROTECT, &wp);
}

/* ---- messages ---- */

int uzd_uffd_read_events(int fd, struct uffd_msg *msgs, size_t max, size_t *n)
{
	ssize_t r;

	*n = 0;
	if (!max)
		return 0;
	do
		r = read(fd, msgs, max * sizeof(*msgs));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == EAGAIN ? 0 : -errno;
	/* The kernel copies whole messages only (fs/userfaultfd.c). */
	if ((size_t)r % sizeof(*msgs))
		return -EIO;
	*n = (size_t)r / sizeof(*msgs);
	return 0;
}

/* Stable partition; events are rare, so moving each one down is cheap. */
size_t uzd_uffd_events_first(struct uffd_msg *msgs, size_t n)
{
	struct uffd_msg ev;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			continue;
		if (i != k) {
			ev = msgs[i];
			memmove(&msgs[k + 1], &msgs[k], (i - k) * sizeof(*msgs));
			msgs[k] = ev;
		}
		k++;
	}
	return k;
}

const char *uzd_uffd_event_name(unsigned int event)
{
	switch (event) {
	case UFFD_EVENT_PAGEFAULT:
		return "pagefault";
	case UFFD_EVENT_FORK:
		return "fork";
	case UFFD_EVENT_REMAP:
		return "remap";
	case UFFD_EVENT_REMOVE:
		return "remove";
	case UFFD_EVENT_UNMAP:
		return "unmap";
	default:
		return "unknown event";
	}
}

const char *uzd_uffd_strerror(int err)
{
	const char *desc;

	switch (err) {
	case 0:
		return "success";
	case UZD_UFFD_EXISTED:
		return "page already present (restored by another fault); woken";
	case -EAGAIN:
		return "client's memory map is changing: read its pending events, then retry";
	case -ENOENT:
		return "range no longer registered (unmapped or unregistered by the client)";
	case -ESRCH:
		return "client process has exited";
	case -EEXIST:
		return "page already present";
	case -EOPNOTSUPP:
		return "the kernel lacks a userfaultfd feature or ioctl uzswap needs";
	case -EBADF:
		return "not a userfaultfd";
	}
	desc = err < 0 ? strerrordesc_np(-err) : NULL;
	return desc ? desc : "unknown error";
}
