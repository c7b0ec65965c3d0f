/* SPDX-License-Identifier: MIT */
/*
 * client/interpose.c - libuzswap-preload.so: put an unmodified program's
 * large anonymous memory under uzswapd (LD_PRELOAD; see uzswap-run).
 *
 * The exported wrappers decide, call by call, what is managed:
 *   mmap, mmap64  private anonymous memory, readable and writable (nothing
 *                 more), at least min_region bytes, not a stack, huge, or
 *                 locked mapping: made at the address the kernel chooses
 *                 (or the program's hint or MAP_FIXED address), then made
 *                 managed (uzi_map.c).  PROT_NONE reservations stay
 *                 ordinary: glibc's arena heaps are one, and glibc writes
 *                 their headers from its own fork code, after our handler
 *                 has fenced managed memory.  A MAP_FIXED over managed
 *                 memory gives that part back first.
 *   munmap        managed parts are given back (the daemon forgets them)
 *   mremap        managed memory is grown, shrunk or moved (uzi_map.c)
 *   mprotect      the records follow the new protection
 *   madvise       DONTNEED and FREE become a hole punch the daemon sees;
 *                 the fork advice is noted, not applied (managed memory is
 *                 always DONTFORK: uzi_fork.c gives the child its copy)
 *   __register_atfork, pthread_atfork  see uzi_fork.c
 * Everything else, and everything while uzswap is off, goes to the kernel
 * untouched.  errno is left as it was on success.
 *
 * The connection is made on the first mapping worth managing, so the short
 * programs a script runs never bother the daemon; UZSWAP_STRICT connects at
 * start instead.  If no daemon answers, the program runs unmanaged after
 * one warning line (UZSWAP_QUIET: none; UZSWAP_STRICT: the program stops,
 * status UZSWAP_EXIT_NO_DAEMON).
 *
 * Environment: UZSWAP_SOCKET, UZSWAP_MAX_RESIDENT (bytes, K/M/G suffixes),
 * UZSWAP_MIN_REGION (likewise; default 1 MiB, see BENCHMARKS.md),
 * UZSWAP_STRICT=1, UZSWAP_QUIET=1, UZSWAP_DISABLE=1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/uffd.h"
#include "client/uzi.h"
#include "client/uzi_sys.h"

/* Linux 6.3; the Debian 12 headers predate it. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24
#endif

/* The daemon's largest region (daemon/region.h): 1 TiB. */
#define UZI_MAX_REGION (UINT64_C(1) << 40)

struct uzi_state uzi = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.mode = UZI_PREINIT,
	.memfd = -1,
	.fork = { .dev_fd = -1, .memfd = -1 },
};

/* ---- messages ---- */

static void say_line(const char *prefix, const char *fmt, va_list ap)
{
	char line[UZS_ERROR_MAX + 128];
	int n = snprintf(line, sizeof(line), "%s", prefix);

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* nowhere to say it */
}

void uzi_say(const char *fmt, ...)
{
	va_list ap;

	if (uzi.quiet)
		return;
	va_start(ap, fmt);
	say_line("uzswap: ", fmt, ap);
	va_end(ap);
}

/* ---- settings ---- */

/* A size from the environment, with an optional K/M/G/T suffix; @def if unset or bad. */
static uint64_t env_size(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoull(s, &end, 10);
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		end++;
		break;
	case 'm':
	case 'M':
		shift = 20;
		end++;
		break;
	case 'g':
	case 'G':
		shift = 30;
		end++;
		break;
	case 't':
	case 'T':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (errno || end == s || *end || (shift && v > (~0ULL >> shift))) {
		uzi_say("ignoring %s=%s: not a size (bytes, with an optional K, M, G or T)", name,
			s);
		return def;
	}
	return (uint64_t)v << shift;
}

static bool env_flag(const char *name)
{
	const char *s = getenv(name);

	return s && *s && strcmp(s, "0") != 0;
}

/* ---- connecting ---- */

/* A memfd that can never be made executable, as libuzswap's (client/region.c). */
int uzi_make_memfd(void)
{
	int fd = memfd_create("uzswap", MFD_CLOEXEC | MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("uzswap", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)UZI_MEMFD_SIZE) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int connect_daemon(void)
{
	char comm[16];
	int dev_fd = -1, err;

	err = uzs_conn_init(&uzi.conn);
	if (err)
		return err;
	err = uzs_conn_open(&uzi.conn, NULL);
	if (err)
		return err;
	uzs_process_name(comm);
	pthread_mutex_lock(&uzi.conn.lock);
	err = uzs_hello(&uzi.conn, uzi.max_resident, comm, &dev_fd);
	if (err == 0)
		err = uzs_hand_uffd(&uzi.conn, dev_fd);
	pthread_mutex_unlock(&uzi.conn.lock);
	return err;
}

static void close_conn(struct uzswap *u)
{
	if (u->sock >= 0)
		close(u->sock);
	if (u->uffd >= 0)
		close(u->uffd);
	u->sock = u->uffd = -1;
}

/* The one line saying why this process runs unmanaged; in strict mode, its end. */
static void cannot_manage(const char *what, int err)
{
	const char *why = uzi.conn.error[0] ? uzi.conn.error : strerror(-err);

	if (uzi.strict) {
		fprintf(stderr, "uzswap: %s: %s; stopping (UZSWAP_STRICT is set)\n", what, why);
		_exit(UZSWAP_EXIT_NO_DAEMON);
	}
	if (!uzi.warned)
		uzi_say("%s: %s; running unmanaged", what, why);
	uzi.warned = true;
}

bool uzi_ensure_connected(void)
{
	int err;

	if (uzi.mode == UZI_ON)
		return true;
	if (uzi.mode != UZI_IDLE)
		return false;
	err = connect_daemon();
	if (err) {
		cannot_manage("cannot use uzswapd", err);
		close_conn(&uzi.conn);
		uzi.mode = UZI_OFF;
		return false;
	}
	uzi.memfd = uzi_make_memfd();
	if (uzi.memfd < 0) {
		uzi.conn.error[0] = '\0';
		cannot_manage("cannot create the memfd for managed memory", uzi.memfd);
		close_conn(&uzi.conn);
		uzi.mode = UZI_OFF;
		return false;
	}
	err = uzi_watch_start();
	if (err) {
		uzi.conn.error[0] = '\0';
		cannot_manage("cannot start watching uzswapd", err);
		close_conn(&uzi.conn);
		close(uzi.memfd);
		uzi.memfd = -1;
		uzi.mode = UZI_OFF;
		return false;
	}
	__atomic_store_n(&uzi.mode, UZI_ON, __ATOMIC_RELEASE);
	return true;
}

void uzi_conn_failed(int err)
{
	if (uzi.nrec > 0)
		uzs_stop_process(&uzi.conn, uzi.conn.gone[0] ? uzi.conn.gone : strerror(-err));
	if (uzi.mode == UZI_ON)
		uzi_say("uzswapd went away (%s); new memory is unmanaged", strerror(-err));
	__atomic_store_n(&uzi.mode, UZI_OFF, __ATOMIC_RELEASE);
}

/* ---- deciding ---- */

static int mode(void)
{
	return __atomic_load_n(&uzi.mode, __ATOMIC_ACQUIRE);
}

static size_t held(void)
{
	return __atomic_load_n(&uzi.nrec, __ATOMIC_ACQUIRE);
}

static size_t page_up(size_t n)
{
	return (n + UZI_PAGE - 1) & ~(UZI_PAGE - 1);
}

static bool aligned(const void *p)
{
	return ((uintptr_t)p & (UZI_PAGE - 1)) == 0;
}

static bool eligible(size_t len, int prot, int flags)
{
	const int refused = MAP_STACK | MAP_GROWSDOWN | MAP_HUGETLB | MAP_LOCKED;

	return (flags & MAP_TYPE) == MAP_PRIVATE && (flags & MAP_ANONYMOUS) && !(flags & refused) &&
	       prot == (PROT_READ | PROT_WRITE) && len >= uzi.min_region && len <= UZI_MAX_REGION;
}

/* Records the kernel no longer backs (a raw munmap we never saw) overlapping a fresh mapping. */
static void drop_stale(uintptr_t addr, size_t len)
{
	if (!uzi_table_overlaps(&uzi.t, addr, len))
		return;
	uzi_map_release(addr, len);
	uzi_map_forget(addr, len);
}

/* ---- the wrappers ---- */

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	bool elig, replaces;
	void *p;

	if (mode() < UZI_IDLE || mode() == UZI_OFF)
		return uzi_sys_mmap(addr, len, prot, flags, fd, off);
	elig = len && eligible(page_up(len), prot, flags);
	replaces = (flags & MAP_FIXED) && held() && aligned(addr) && len;
	if (!elig && !replaces)
		return uzi_sys_mmap(addr, len, prot, flags, fd, off);
	len = page_up(len);
	pthread_mutex_lock(&uzi.lock);
	replaces = replaces && uzi_table_overlaps(&uzi.t, (uintptr_t)addr, len);
	if (replaces)
		uzi_map_release((uintptr_t)addr, len);
	/* Populating here would fill the memfd behind the daemon's back: faults do it. */
	p = uzi_sys_mmap(addr, len, prot, elig ? flags & ~MAP_POPULATE : flags, fd, off);
	if (replaces)
		uzi_map_forget((uintptr_t)addr, len);
	if (p != MAP_FAILED && elig && uzi_ensure_connected()) {
		drop_stale((uintptr_t)p, len);
		if (uzi_map_manage((uintptr_t)p, len, prot, flags) < 0)
			uzi.counters.fallback++;
	}
	pthread_mutex_unlock(&uzi.lock);
	return p;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int saved = errno;
	void *p = do_mmap(addr, len, prot, flags, fd, off);

	if (p != MAP_FAILED)
		errno = saved;
	return p;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
	__attribute__((alias("mmap")));

int munmap(void *addr, size_t len)
{
	int saved = errno, r;

	if (!held() || !aligned(addr) || !len)
		return uzi_sys_munmap(addr, len);
	len = page_up(len);
	pthread_mutex_lock(&uzi.lock);
	if (!uzi_table_overlaps(&uzi.t, (uintptr_t)addr, len)) {
		pthread_mutex_unlock(&uzi.lock);
		return uzi_sys_munmap(addr, len);
	}
	uzi_map_release((uintptr_t)addr, len);
	r = uzi_sys_munmap(addr, len);
	if (r == 0)
		uzi_map_forget((uintptr_t)addr, len);
	pthread_mutex_unlock(&uzi.lock);
	if (r == 0)
		errno = saved;
	return r;
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	void *new_addr = NULL, *p;
	int saved = errno;
	bool src, dst;
	va_list ap;

	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		new_addr = va_arg(ap, void *);
		va_end(ap);
	}
	if (!held() || !aligned(old))
		return uzi_sys_mremap(old, old_len, new_len, flags, new_addr);
	old_len = page_up(old_len);
	new_len = page_up(new_len);
	pthread_mutex_lock(&uzi.lock);
	src = uzi_table_overlaps(&uzi.t, (uintptr_t)old, old_len ? old_len : 1);
	dst = (flags & MREMAP_FIXED) && aligned(new_addr) &&
	      uzi_table_overlaps(&uzi.t, (uintptr_t)new_addr, new_len);
	if (src) {
		p = uzi_map_remap((uintptr_t)old, old_len, new_len, flags, (uintptr_t)new_addr);
	} else if (dst) {
		uzi_map_release((uintptr_t)new_addr, new_len);
		p = uzi_sys_mremap(old, old_len, new_len, flags, new_addr);
		uzi_map_forget((uintptr_t)new_addr, new_len);
	} else {
		p = uzi_sys_mremap(old, old_len, new_len, flags, new_addr);
	}
	pthread_mutex_unlock(&uzi.lock);
	if (p != MAP_FAILED)
		errno = saved;
	return p;
}

int mprotect(void *addr, size_t len, int prot)
{
	int saved = errno, r;

	if (!held() || !aligned(addr) || !len)
		return uzi_sys_mprotect(addr, len, prot);
	len = page_up(len);
	pthread_mutex_lock(&uzi.lock);
	r = uzi_sys_mprotect(addr, len, prot);
	if (r == 0 && uzi_table_overlaps(&uzi.t, (uintptr_t)addr, len))
		uzi_map_protect((uintptr_t)addr, len, prot);
	pthread_mutex_unlock(&uzi.lock);
	if (r == 0)
		errno = saved;
	return r;
}

/* Managed part [addr, addr + len) under @advice: 0 or -errno. */
static int advise_managed(uintptr_t addr, size_t len, int advice)
{
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
	case MADV_FREE:
		return uzi_map_drop(addr, len);
	case MADV_DONTFORK:
		uzi_map_fork_flags(addr, len, UZI_REC_DONTFORK, 0);
		return 0;
	case MADV_DOFORK:
		uzi_map_fork_flags(addr, len, 0, UZI_REC_DONTFORK);
		return 0;
	case MADV_WIPEONFORK:
		uzi_map_fork_flags(addr, len, UZI_REC_WIPEONFORK, 0);
		return 0;
	case MADV_KEEPONFORK:
		uzi_map_fork_flags(addr, len, 0, UZI_REC_WIPEONFORK);
		return 0;
	default:
		return uzi_sys_madvise((void *)addr, len, advice) < 0 ? -errno : 0;
	}
}

static bool advice_changes_managed(int advice)
{
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_DONTNEED_LOCKED:
	case MADV_FREE:
	case MADV_DONTFORK:
	case MADV_DOFORK:
	case MADV_WIPEONFORK:
	case MADV_KEEPONFORK:
		return true;
	default:
		return false;
	}
}

/* Walk [addr, end) in managed and unmanaged pieces; the first error wins. */
static int advise_range(uintptr_t addr, uintptr_t end, int advice)
{
	int err = 0, e;

	while (addr < end) {
		size_t i = uzi_table_first_after(&uzi.t, addr);
		const struct uzi_rec *r = i < uzi.t.n ? &uzi.t.v[i] : NULL;
		uintptr_t next;

		if (r && r->addr <= addr) {
			next = r->addr + r->len < end ? r->addr + r->len : end;
			e = advise_managed(addr, next - addr, advice);
		} else {
			next = r && r->addr < end ? r->addr : end;
			e = uzi_sys_madvise((void *)addr, next - addr, advice) < 0 ? -errno : 0;
		}
		if (e && !err)
			err = e;
		addr = next;
	}
	return err;
}

int madvise(void *addr, size_t len, int advice)
{
	int saved = errno, err;

	if (!held() || !aligned(addr) || !len || !advice_changes_managed(advice))
		return uzi_sys_madvise(addr, len, advice);
	len = page_up(len);
	pthread_mutex_lock(&uzi.lock);
	if (!uzi_table_overlaps(&uzi.t, (uintptr_t)addr, len)) {
		pthread_mutex_unlock(&uzi.lock);
		return uzi_sys_madvise(addr, len, advice);
	}
	err = advise_range((uintptr_t)addr, (uintptr_t)addr + len, advice);
	pthread_mutex_unlock(&uzi.lock);
	if (err) {
		errno = -err;
		return -1;
	}
	errno = saved;
	return 0;
}

/* ---- start ---- */

__attribute__((constructor)) static void uzi_init(void)
{
	int saved = errno;

	uzi.pid = getpid();
	uzi.quiet = env_flag("UZSWAP_QUIET");
	uzi.strict = env_flag("UZSWAP_STRICT");
	uzi.min_region = env_size("UZSWAP_MIN_REGION", UZI_DEFAULT_MIN_REGION);
	if (uzi.min_region < UZI_PAGE)
		uzi.min_region = UZI_PAGE;
	uzi.max_resident = env_size("UZSWAP_MAX_RESIDENT", 0);
	uzi_fork_register();
	/* A daemon started from a shell under uzswap-run must not be its own client. */
	if (env_flag("UZSWAP_DISABLE") || !strcmp(program_invocation_short_name, "uzswapd")) {
		uzi.mode = UZI_OFF;
	} else {
		uzi.mode = UZI_IDLE;
		if (uzi.strict) {
			pthread_mutex_lock(&uzi.lock);
			uzi_ensure_connected();
			pthread_mutex_unlock(&uzi.lock);
		}
	}
	errno = saved;
}
