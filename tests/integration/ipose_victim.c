/* SPDX-License-Identifier: MIT */
/*
 * tests/integration/ipose_victim.c - an ordinary program that uses memory
 * the way programs do, run under uzswap-run by integ_interpose.
 *
 *   ipose_victim SCENARIO
 *
 * It knows nothing of uzswap except how to look at it from outside: a
 * managed mapping shows as "memfd:uzswap" in /proc/self/maps, an evicted
 * page of it is not in the page cache (mincore), and `uzswapctl status
 * --json` ($UZSWAPCTL, socket $UZSWAP_SOCKET) has the daemon's view of this
 * process.  Each scenario checks one semantic of private anonymous memory
 * and exits 0 when it held, or prints "FAIL: what was expected, what was
 * seen" lines and exits 1; "info:" lines are for the test's log.
 *
 * Data: word i of a buffer filled with seed s is fill_word(s, i): half the
 * pages compress well, half are noise (stored raw), so both kinds of pool
 * object are restored.  Nothing here needs uzswap's headers: this is what an
 * unmodified program looks like.  Built without sanitizers (it is preloaded).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/json.h"

#define MIB (UINT64_C(1) << 20)
#define PAGE 4096UL
#define EVICT_WAIT_MS 20000

extern char **environ;

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	failures++;
}

static void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void info(const char *fmt, ...)
{
	va_list ap;

	printf("info: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- data ---- */

static uint64_t fill_word(uint64_t seed, uint64_t i)
{
	uint64_t page = i / (PAGE / 8);

	if (page % 2 == 0)
		return seed * 1000003 + page * 7 + (i % 4); /* compresses */
	i ^= seed * 0x9e3779b97f4a7c15ULL;
	i ^= i >> 31;
	i *= 0xbf58476d1ce4e5b9ULL;
	return i ^ (i >> 27);
}

static void fill(void *p, size_t len, uint64_t seed)
{
	volatile uint64_t *w = p;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = fill_word(seed, i);
}

/* Words of [p, p + len) that are not fill(seed), counting the first bad one's place. */
static size_t check_fill(const void *p, size_t len, uint64_t seed, size_t *first_bad)
{
	const volatile uint64_t *w = p;
	size_t bad = 0;

	for (size_t i = 0; i < len / 8; i++) {
		if (w[i] != fill_word(seed, i)) {
			if (!bad && first_bad)
				*first_bad = i;
			bad++;
		}
	}
	return bad;
}

static size_t check_zero(const void *p, size_t len)
{
	const volatile uint64_t *w = p;
	size_t bad = 0;

	for (size_t i = 0; i < len / 8; i++)
		bad += w[i] != 0;
	return bad;
}

#define EXPECT_FILL(p, len, seed, what)                                                     \
	do {                                                                                \
		size_t fb_ = 0, b_ = check_fill((p), (len), (seed), &fb_);                  \
		if (b_)                                                                     \
			fail("%s: %zu of %zu words differ from what was written (first at " \
			     "byte %zu, read %#" PRIx64 ")",                                \
			     (what), b_, (size_t)(len) / 8, fb_ * 8,                        \
			     ((const volatile uint64_t *)(p))[fb_]);                        \
	} while (0)

#define EXPECT_ZERO(p, len, what)                                       \
	do {                                                            \
		size_t b_ = check_zero((p), (len));                     \
		if (b_)                                                 \
			fail("%s: %zu words are not zero", (what), b_); \
	} while (0)

/* ---- looking at uzswap from outside ---- */

/* The /proc/self/maps line of @p names the uzswap memfd. */
static bool is_managed(const void *p)
{
	uintptr_t a = (uintptr_t)p, lo, hi;
	char line[512];
	bool found = false;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2 && lo <= a && a < hi)
			found = strstr(line, "memfd:uzswap") != NULL;
	}
	fclose(f);
	return found;
}

/* Pages of [p, p + len) not in the page cache: the evicted ones. */
static size_t not_resident(const void *p, size_t len)
{
	static unsigned char vec[16384];
	size_t n = 0;

	for (size_t off = 0; off < len; off += sizeof(vec) * PAGE) {
		size_t l = len - off < sizeof(vec) * PAGE ? len - off : sizeof(vec) * PAGE;

		if (mincore((char *)p + off, l, vec) < 0)
			return 0;
		for (size_t i = 0; i < l / PAGE; i++)
			n += !(vec[i] & 1);
	}
	return n;
}

/* Wait until at least @frac_pct % of [p, p + len) is evicted; the count. */
static size_t wait_evicted(const void *p, size_t len, unsigned int frac_pct)
{
	uint64_t deadline = now_ms() + EVICT_WAIT_MS;
	size_t want = len / PAGE * frac_pct / 100, n;

	while ((n = not_resident(p, len)) < want && now_ms() < deadline)
		usleep(20000);
	if (n < want)
		fail("only %zu of %zu pages were evicted within %d ms (wanted %zu)", n, len / PAGE,
		     EVICT_WAIT_MS, want);
	return n;
}

/* uzswapctl status --json, malloc'd. */
static char *status_json(void)
{
	const char *ctl = getenv("UZSWAPCTL");
	char cmd[512], *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f;
	int c;

	if (!ctl)
		return NULL;
	/* Not preloaded: a sanitizer build's uzswapctl refuses any library loaded before its runtime. */
	snprintf(cmd, sizeof(cmd), "env -u LD_PRELOAD '%s' status --json", ctl);
	f = popen(cmd, "r");
	if (!f)
		return NULL;
	while ((c = fgetc(f)) != EOF) {
		if (len + 2 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
		}
		buf[len++] = (char)c;
	}
	pclose(f);
	if (buf)
		buf[len] = 0;
	return buf;
}

/* A counter of this process's client in the daemon; UINT64_MAX when not found. */
static uint64_t my_stat(const char *field)
{
	char path[128], *json = status_json();
	uint64_t v = UINT64_MAX;

	snprintf(path, sizeof(path), "clients[pid=%d].%s", (int)getpid(), field);
	if (json && jp_u64(json, path, &v) < 0)
		v = UINT64_MAX;
	free(json);
	return v;
}

/* Clients of this process in the daemon. */
static unsigned int my_clients(void)
{
	char *json = status_json();
	uint64_t n = 0, pid;
	unsigned int mine = 0;
	char path[64];

	if (json && jp_u64(json, "clients[#]", &n) == 0) {
		for (uint64_t i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "clients[%" PRIu64 "].pid", i);
			if (jp_u64(json, path, &pid) == 0 && pid == (uint64_t)getpid())
				mine++;
		}
	}
	free(json);
	return mine;
}

static unsigned int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	unsigned int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fail("mmap of %zu bytes: %s", len, strerror(errno));
		exit(1);
	}
	return p;
}

/* Filled with @seed, and mostly evicted. */
static void *map_filled(size_t len, uint64_t seed)
{
	void *p = map_anon(len);

	if (!is_managed(p))
		fail("a private anonymous RW mapping of %zu bytes is not managed", len);
	fill(p, len, seed);
	wait_evicted(p, len, 50);
	return p;
}

/* ---- faults on purpose ---- */

static __thread sigjmp_buf *volatile fault_jmp;

static void on_fault(int sig)
{
	if (fault_jmp)
		siglongjmp(*fault_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_faults(void)
{
	struct sigaction sa = { .sa_handler = on_fault };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

/* The signal a write (or read) of @p raises, 0 if none. */
static int touch_signal(volatile uint64_t *p, bool write)
{
	sigjmp_buf jb;
	int sig;

	sig = sigsetjmp(jb, 1);
	if (sig == 0) {
		fault_jmp = &jb;
		if (write)
			*p = 1;
		else
			(void)*p;
	}
	fault_jmp = NULL;
	return sig;
}

/* ---- scenarios ---- */

static void scenario_basic(void)
{
	const size_t len = 32 * MIB;
	void *small = map_anon(512 * 1024), *none, *stack, *p;
	uint64_t evictions;

	if (is_managed(small))
		fail("a 512 KiB mapping (below the 1 MiB threshold) is managed");
	none = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (is_managed(none))
		fail("a PROT_NONE reservation is managed");
	stack = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1,
		     0);
	if (is_managed(stack))
		fail("a MAP_STACK mapping is managed");
	p = map_anon(len);
	if (!is_managed(p))
		fail("a 32 MiB private anonymous RW mapping is not managed");
	EXPECT_ZERO(p, len, "fresh managed memory");
	fill(p, len, 1);
	info("%zu of %zu pages evicted", wait_evicted(p, len, 60), len / PAGE);
	EXPECT_FILL(p, len, 1, "managed memory read back after eviction");
	evictions = my_stat("evicted_pool") + my_stat("evicted_same");
	info("daemon: evictions %" PRIu64 ", faults %" PRIu64, evictions,
	     my_stat("faults_pool.count"));
	if (!evictions || evictions > UINT64_MAX / 4)
		fail("the daemon counts no eviction of this process (%" PRIu64 ")", evictions);
}

static void scenario_fds(void)
{
	const unsigned int n = 500;
	pid_t daemon = (pid_t)atoi(getenv("UZI_DAEMON_PID") ? getenv("UZI_DAEMON_PID") : "0");
	unsigned int mine0, mine1, d0 = 0, d1 = 0;
	char *p;

	p = map_anon(MIB);
	p[0] = 1;
	mine0 = count_fds(getpid());
	if (daemon)
		d0 = count_fds(daemon);
	for (unsigned int i = 0; i < n; i++) {
		p = map_anon(MIB);
		p[i % 256 * PAGE] = 1;
		if (!is_managed(p) && i == 0)
			fail("a 1 MiB mapping is not managed");
	}
	mine1 = count_fds(getpid());
	if (daemon)
		d1 = count_fds(daemon);
	info("descriptors: this process %u -> %u, the daemon %u -> %u, after %u more regions",
	     mine0, mine1, d0, d1, n);
	if (mine1 != mine0)
		fail("this process's descriptors grew from %u to %u with %u more managed mappings",
		     mine0, mine1, n);
	if (daemon && d1 > d0 + 2)
		fail("the daemon's descriptors grew from %u to %u with %u more managed mappings",
		     d0, d1, n);
	if (my_stat("managed_pages") != (n + 1) * MIB / PAGE)
		fail("the daemon manages %" PRIu64 " pages of this process, expected %" PRIu64,
		     my_stat("managed_pages"), (uint64_t)(n + 1) * MIB / PAGE);
}

/* Map, use, unmap, over and over: the kernel hands the same address back each time. */
static void scenario_churn(void)
{
	for (int i = 0; i < 3000; i++) {
		size_t len = (size_t)(1 + i % 3) * MIB;
		volatile uint64_t *p = map_anon(len);

		if (p[0] || p[len / 8 - 1]) {
			fail("round %d: a fresh mapping (at %p) does not read zeros", i, (void *)p);
			return;
		}
		p[0] = (uint64_t)i;
		p[len / 8 - 1] = (uint64_t)i;
		if (p[0] != (uint64_t)i) {
			fail("round %d: a write did not stick", i);
			return;
		}
		munmap((void *)p, len);
	}
}

static void scenario_calloc(void)
{
	static const size_t sizes[] = { 2 * MIB, 5 * MIB, 17 * MIB, 40 * MIB, 3 * MIB + 4096 };

	for (int round = 0; round < 40; round++) {
		size_t len = sizes[round % 5];
		unsigned char *p = calloc(1, len);

		if (!p) {
			fail("calloc(%zu) failed", len);
			return;
		}
		if (check_zero(p, len & ~7UL)) {
			fail("round %d: calloc(%zu) returned memory that is not zero", round, len);
			free(p);
			return;
		}
		memset(p, 0xa5, len);
		free(p);
	}
}

static void scenario_dontneed(void)
{
	const size_t len = 16 * MIB;
	char *p = map_filled(len, 2);
	uint64_t pool0 = my_stat("pool_pages"), pool1;

	if (madvise(p + 4 * MIB, 4 * MIB, MADV_DONTNEED) < 0)
		fail("MADV_DONTNEED: %s", strerror(errno));
	if (madvise(p + 8 * MIB, 4 * MIB, MADV_FREE) < 0)
		fail("MADV_FREE: %s", strerror(errno));
	pool1 = my_stat("pool_pages");
	info("pool pages %" PRIu64 " -> %" PRIu64 " after dropping 8 MiB", pool0, pool1);
	EXPECT_ZERO(p + 4 * MIB, 4 * MIB, "memory after MADV_DONTNEED");
	EXPECT_ZERO(p + 8 * MIB, 4 * MIB, "memory after MADV_FREE");
	EXPECT_FILL(p, 4 * MIB, 2, "the memory before the dropped range");
	/* Words of the last part are fill_word(2, i) at their offset in the whole region. */
	for (size_t i = 12 * MIB / 8; i < len / 8; i++) {
		if (((volatile uint64_t *)p)[i] != fill_word(2, i)) {
			fail("the memory after the dropped range differs at byte %zu", i * 8);
			break;
		}
	}
	if (pool0 != UINT64_MAX && pool1 + 1000 > pool0)
		fail("the daemon kept its copies: pool pages %" PRIu64 " -> %" PRIu64, pool0,
		     pool1);
}

/* Word i of the whole region checks against fill(seed) over [lo, hi) bytes. */
static void expect_part(const char *p, size_t lo, size_t hi, uint64_t seed, const char *what)
{
	for (size_t i = lo / 8; i < hi / 8; i++) {
		if (((const volatile uint64_t *)p)[i] != fill_word(seed, i)) {
			fail("%s: differs at byte %zu", what, i * 8);
			return;
		}
	}
}

static void scenario_munmap(void)
{
	const size_t len = 32 * MIB;
	char *p = map_filled(len, 3);

	catch_faults();
	if (munmap(p + 8 * MIB, 8 * MIB) < 0)
		fail("munmap of the middle: %s", strerror(errno));
	expect_part(p, 0, 8 * MIB, 3, "the head after munmap of the middle");
	expect_part(p, 16 * MIB, len, 3, "the tail after munmap of the middle");
	if (touch_signal((volatile uint64_t *)(p + 9 * MIB), false) != SIGSEGV)
		fail("reading the unmapped middle did not raise SIGSEGV");
	if (munmap(p, 4 * MIB) < 0)
		fail("munmap of the head: %s", strerror(errno));
	expect_part(p, 4 * MIB, 8 * MIB, 3, "the rest of the head after munmap of its start");
	fill(p + 4 * MIB, 4 * MIB, 33);
	wait_evicted(p + 16 * MIB, 16 * MIB, 50);
	expect_part(p, 16 * MIB, len, 3, "the tail, evicted again");
	if (munmap(p + 4 * MIB, len - 4 * MIB) < 0)
		fail("munmap of the rest (across the hole): %s", strerror(errno));
	if (my_stat("managed_pages") != 0 || my_stat("pool_pages") != 0)
		fail("after munmap of everything the daemon still holds %" PRIu64
		     " managed pages, %" PRIu64 " in the pool",
		     my_stat("managed_pages"), my_stat("pool_pages"));
}

static void scenario_fixed(void)
{
	const size_t len = 32 * MIB;
	char *p = map_filled(len, 4), *q;

	q = mmap(p + 8 * MIB, 8 * MIB, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q != p + 8 * MIB)
		fail("MAP_FIXED over part of a managed mapping: %s", strerror(errno));
	if (!is_managed(q))
		fail("the 8 MiB MAP_FIXED mapping is not managed");
	EXPECT_ZERO(q, 8 * MIB, "a MAP_FIXED mapping over managed memory");
	q = mmap(p + 24 * MIB, 64 * 1024, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (q != p + 24 * MIB)
		fail("a small MAP_FIXED over part of a managed mapping: %s", strerror(errno));
	EXPECT_ZERO(q, 64 * 1024, "a small MAP_FIXED mapping over managed memory");
	expect_part(p, 0, 8 * MIB, 4, "the head after MAP_FIXED over the middle");
	expect_part(p, 16 * MIB, 24 * MIB, 4, "the part between the two MAP_FIXED");
	expect_part(p, 24 * MIB + 64 * 1024, len, 4, "the tail after the small MAP_FIXED");
	fill(p + 8 * MIB, 8 * MIB, 44);
	wait_evicted(p, len, 40);
	EXPECT_FILL(p + 8 * MIB, 8 * MIB, 44, "the MAP_FIXED mapping, written and evicted");
}

static void scenario_mprotect(void)
{
	const size_t len = 16 * MIB;
	char *p = map_filled(len, 5);
	pid_t pid;
	int st;

	catch_faults();
	if (mprotect(p + 4 * MIB, 4 * MIB, PROT_READ) < 0)
		fail("mprotect PROT_READ: %s", strerror(errno));
	expect_part(p, 0, len, 5, "the region after mprotect(PROT_READ) of a part");
	if (touch_signal((volatile uint64_t *)(p + 5 * MIB), true) != SIGSEGV)
		fail("a write into the read-only part did not raise SIGSEGV");
	if (mprotect(p + 10 * MIB, 2 * MIB, PROT_NONE) < 0)
		fail("mprotect PROT_NONE: %s", strerror(errno));
	if (touch_signal((volatile uint64_t *)(p + 11 * MIB), false) != SIGSEGV)
		fail("a read of the PROT_NONE part did not raise SIGSEGV");
	wait_evicted(p, 4 * MIB, 50);
	pid = fork();
	if (pid == 0) {
		catch_faults();
		expect_part(p, 0, 10 * MIB, 5, "the child's copy, read-only part included");
		if (touch_signal((volatile uint64_t *)(p + 5 * MIB), true) != SIGSEGV)
			fail("in the child, a write into the read-only part did not fault");
		if (touch_signal((volatile uint64_t *)(p + 11 * MIB), false) != SIGSEGV)
			fail("in the child, the PROT_NONE part is readable");
		_exit(failures ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("the fork child saw the protections or data wrong (status %#x)", st);
	if (mprotect(p, len, PROT_READ | PROT_WRITE) < 0)
		fail("mprotect back to RW: %s", strerror(errno));
	expect_part(p, 0, 10 * MIB, 5, "the region after mprotect back");
	expect_part(p, 12 * MIB, len, 5, "the region after mprotect back");
	fill(p, len, 55);
	wait_evicted(p, len, 50);
	EXPECT_FILL(p, len, 55, "the region written after mprotect back, evicted");
}

static void scenario_mremap(void)
{
	char *p, *q, *r;

	catch_faults();
	/* Grow in place: free address space after it. */
	p = map_filled(32 * MIB, 6);
	munmap(p + 16 * MIB, 16 * MIB);
	q = mremap(p, 16 * MIB, 32 * MIB, 0);
	if (q != p)
		fail("mremap grow in place: %s", q == MAP_FAILED ? strerror(errno) : "moved");
	else {
		expect_part(p, 0, 16 * MIB, 6, "the data after growing in place");
		EXPECT_ZERO(p + 16 * MIB, 16 * MIB, "the grown part");
		fill(p + 16 * MIB, 16 * MIB, 66);
		wait_evicted(p, 32 * MIB, 50);
		expect_part(p, 0, 16 * MIB, 6, "the data after growing, evicted again");
		EXPECT_FILL(p + 16 * MIB, 16 * MIB, 66, "the grown part, written and evicted");
	}
	/* Shrink. */
	q = mremap(p, 32 * MIB, 8 * MIB, 0);
	if (q != p)
		fail("mremap shrink: %s", strerror(errno));
	expect_part(p, 0, 8 * MIB, 6, "the data after shrinking");
	if (touch_signal((volatile uint64_t *)(p + 9 * MIB), false) != SIGSEGV)
		fail("the part shrunk away is still mapped");
	/* Move (to a fixed place), then grow where it cannot in place. */
	r = mmap(NULL, 64 * MIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	wait_evicted(p, 8 * MIB, 50);
	q = mremap(p, 8 * MIB, 8 * MIB, MREMAP_MAYMOVE | MREMAP_FIXED, r + 16 * MIB);
	if (q != r + 16 * MIB)
		fail("mremap move to a fixed address: %s", strerror(errno));
	expect_part(q, 0, 8 * MIB, 6, "the data after a move (evicted pages followed)");
	if (touch_signal((volatile uint64_t *)p, false) != SIGSEGV)
		fail("the old address still maps something after a move");
	wait_evicted(q, 8 * MIB, 50);
	p = mremap(q, 8 * MIB, 24 * MIB, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		fail("mremap grow with move: %s", strerror(errno));
	expect_part(p, 0, 8 * MIB, 6, "the data after a grow that moved");
	EXPECT_ZERO(p + 8 * MIB, 16 * MIB, "the part a moving grow added");
	/* A piece left by munmap of the middle cannot grow into the tail's file pages. */
	q = map_filled(32 * MIB, 7);
	munmap(q + 8 * MIB, 8 * MIB);
	r = mremap(q, 8 * MIB, 12 * MIB, 0);
	if (r != q)
		fail("the head grew into the hole: %s",
		     r == MAP_FAILED ? strerror(errno) : "moved");
	expect_part(q, 0, 8 * MIB, 7, "the head after growing into the hole");
	EXPECT_ZERO(q + 8 * MIB, 4 * MIB, "the head's new part");
	r = mremap(q, 12 * MIB, 24 * MIB, MREMAP_MAYMOVE);
	if (r == MAP_FAILED)
		fail("growing a head past its tail's file pages: %s", strerror(errno));
	else {
		expect_part(r, 0, 8 * MIB, 7, "the head moved past its tail");
		EXPECT_ZERO(r + 12 * MIB, 12 * MIB, "the head's grown part");
		expect_part(q, 16 * MIB, 32 * MIB, 7, "the tail left where it was");
	}
	/* DONTUNMAP: the old range reads zeros, the new one the data. */
	p = map_filled(8 * MIB, 8);
	q = mremap(p, 8 * MIB, 8 * MIB, MREMAP_MAYMOVE | MREMAP_DONTUNMAP);
	if (q == MAP_FAILED || q == p)
		fail("MREMAP_DONTUNMAP: %s", q == MAP_FAILED ? strerror(errno) : "did not move");
	else {
		EXPECT_FILL(q, 8 * MIB, 8, "the moved data (DONTUNMAP)");
		EXPECT_ZERO(p, 8 * MIB, "the old range after DONTUNMAP");
	}
}

/* Fork: private views both ways, no zeros, and a failed fork frees its snapshot. */
static void scenario_fork(void)
{
	const size_t len = 64 * MIB;
	char *p = map_filled(len, 9);
	pid_t pid;
	int st;

	pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		EXPECT_FILL(p, len, 9, "the fork child's copy");
		fill(p, 16 * MIB, 99);
		wait_evicted(p, len, 50);
		EXPECT_FILL(p, 16 * MIB, 99, "the child's own writes, evicted");
		expect_part(p, 16 * MIB, len, 9, "the child's copy, evicted by the child");
		_exit(failures ? 1 : 0);
	}
	/* The parent writes too, while the child runs. */
	fill(p + 32 * MIB, 8 * MIB, 91);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("the fork child did not see its copy right (status %#x)", st);
	expect_part(p, 0, 32 * MIB, 9, "the parent's memory after the child wrote its copy");
	EXPECT_FILL(p + 32 * MIB, 8 * MIB, 91, "the parent's own writes after the fork");
	expect_part(p, 40 * MIB, len, 9, "the rest of the parent's memory");
	if (my_clients() != 1)
		fail("after the child exited this process has %u clients in the daemon",
		     my_clients());
}

/* clone without CLONE_VM fails with EAGAIN; clone3 with ENOSYS (so glibc uses clone). */
static void make_fork_fail(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_VM, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		fail("seccomp: %s", strerror(errno));
}

static void scenario_fork_fails(void)
{
	const size_t len = 32 * MIB;
	char *p = map_filled(len, 10);
	uint64_t pool0 = my_stat("pool_pages");
	pid_t pid;

	make_fork_fail();
	pid = fork();
	if (pid >= 0) {
		fail("fork succeeded under the filter (pid %d)", (int)pid);
		if (pid == 0)
			_exit(0);
	} else if (errno != EAGAIN) {
		fail("the failed fork set errno %d (%s), not EAGAIN", errno, strerror(errno));
	}
	if (my_clients() != 1)
		fail("after a failed fork this process has %u clients in the daemon (the "
		     "snapshot was not freed)",
		     my_clients());
	EXPECT_FILL(p, len, 10, "the memory after a failed fork");
	fill(p, len, 100);
	wait_evicted(p, len, 50);
	EXPECT_FILL(p, len, 100, "the memory written and evicted after a failed fork");
	info("pool pages before the failed fork %" PRIu64 ", after rewriting %" PRIu64, pool0,
	     my_stat("pool_pages"));
}

static void scenario_exec(const char *self)
{
	char *p = map_filled(16 * MIB, 11);
	char *const argv[] = { (char *)self, "exec-child", NULL };

	(void)p;
	execve(self, argv, environ);
	fail("execve %s: %s", self, strerror(errno));
}

static void scenario_exec_child(void)
{
	char *p;

	uint64_t deadline = now_ms() + 5000;

	/* The old image's socket closed at exec; the daemon drops it when it sees that. */
	while (my_clients() != 0 && now_ms() < deadline)
		usleep(20000);
	if (my_clients() != 0)
		fail("after exec the daemon still has %u clients of this pid", my_clients());
	p = map_filled(8 * MIB, 12);
	EXPECT_FILL(p, 8 * MIB, 12, "memory of the new image");
	if (my_clients() != 1 || my_stat("managed_pages") != 8 * MIB / PAGE)
		fail("the new image should be one client managing 2048 pages: %u clients, %" PRIu64
		     " pages",
		     my_clients(), my_stat("managed_pages"));
}

static void scenario_vfork(void)
{
	const size_t len = 16 * MIB;
	char *p = map_filled(len, 13);
	char *const argv[] = { "/bin/true", NULL };
	pid_t pid;
	int st;

	if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
		fail("posix_spawn: %s", strerror(errno));
	else if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		fail("the posix_spawn child failed (status %#x)", st);
	pid = vfork();
	if (pid == 0) {
		/* Our address space: the evicted pages are served to the vfork child too. */
		_exit(check_fill(p, len, 13, NULL) ? 1 : 0);
	}
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail("the vfork child read the memory wrong (status %#x)", st);
	EXPECT_FILL(p, len, 13, "the memory after vfork and posix_spawn");
}

/* ---- threads ---- */

struct worker {
	char *base;
	size_t len;
	uint64_t seed;
	unsigned int id;
	uint64_t checks, bad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t x = w->id * 7919 + 1, deadline = now_ms() + 3000;
	volatile uint64_t *words = (volatile uint64_t *)w->base;

	while (now_ms() < deadline) {
		size_t i;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		i = (size_t)(x % (w->len / 8));
		if (words[i] != fill_word(w->seed, i))
			w->bad++;
		w->checks++;
	}
	return NULL;
}

static void scenario_threads(void)
{
	enum {
		N = 8
	};
	const size_t len = 16 * MIB;
	struct worker w[N];
	pthread_t t[N];
	char *shared = map_filled(len, 14);
	uint64_t checks = 0, bad = 0;

	for (int i = 0; i < N; i++) {
		bool own = i % 2;

		w[i] = (struct worker){ .base = own ? map_filled(len, 140 + (uint64_t)i) : shared,
					.len = len,
					.seed = own ? 140 + (uint64_t)i : 14,
					.id = (unsigned int)i };
	}
	for (int i = 0; i < N; i++)
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		checks += w[i].checks;
		bad += w[i].bad;
	}
	info("%d threads read %" PRIu64 " random words of evicted memory", N, checks);
	if (bad)
		fail("%" PRIu64 " of %" PRIu64 " reads by concurrent threads were wrong", bad,
		     checks);
}

/* A thread blocked in a fault while another unmaps the region. */
struct reader {
	char *p;
	size_t len;
	uint64_t pages_read, bad;
	int sig;
	bool done;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	sigjmp_buf jb;
	int sig;

	sig = sigsetjmp(jb, 1);
	if (sig == 0) {
		fault_jmp = &jb;
		for (int pass = 0; pass < 1000; pass++) {
			for (size_t off = 0; off < r->len; off += PAGE) {
				uint64_t i = off / 8;

				if (((volatile uint64_t *)r->p)[i] != fill_word(15, i))
					r->bad++;
				__atomic_fetch_add(&r->pages_read, 1, __ATOMIC_RELAXED);
			}
		}
	}
	fault_jmp = NULL;
	r->sig = sig;
	__atomic_store_n(&r->done, true, __ATOMIC_RELEASE);
	return NULL;
}

static void scenario_unmap_fault(void)
{
	const size_t len = 32 * MIB;
	struct reader r = { 0 };
	pthread_t t;
	char *p = map_filled(len, 15);
	uint64_t deadline;

	catch_faults();
	r.p = p;
	r.len = 16 * MIB;
	pthread_create(&t, NULL, reader_main, &r);
	while (__atomic_load_n(&r.pages_read, __ATOMIC_RELAXED) < 100)
		usleep(1000);
	/* Another part of the same region goes while the reader faults. */
	if (munmap(p + 16 * MIB, 16 * MIB) < 0)
		fail("munmap of the part not being read: %s", strerror(errno));
	usleep(50000);
	/* Now the part it reads: it is in a fault, or about to be. */
	if (munmap(p, 16 * MIB) < 0)
		fail("munmap of the part being read: %s", strerror(errno));
	deadline = now_ms() + 10000;
	while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE) && now_ms() < deadline)
		usleep(1000);
	if (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE)) {
		fail("the reading thread hung after the region was unmapped under it");
		return;
	}
	pthread_join(t, NULL);
	info("the reader read %" PRIu64 " pages, then got signal %d", r.pages_read, r.sig);
	if (r.bad)
		fail("%" PRIu64 " pages read wrong (zeros?) while the region was unmapped", r.bad);
	if (r.sig != SIGSEGV && r.sig != SIGBUS)
		fail("the reader ended with signal %d, not SIGSEGV", r.sig);
}

/* System calls that read and write evicted managed memory. */
static void scenario_syscalls(void)
{
	const size_t len = 16 * MIB;
	char *p = map_filled(len, 16), *q = map_filled(len, 17);
	char path[] = "/tmp/uzswap-victim.XXXXXX";
	int fd = mkstemp(path);
	ssize_t n;

	unlink(path);
	n = write(fd, p, len);
	if (n != (ssize_t)len)
		fail("write(2) from evicted managed memory: %zd (%s)", n, strerror(errno));
	wait_evicted(q, len, 50);
	n = pread(fd, q, len, 0);
	if (n != (ssize_t)len)
		fail("read(2) into evicted managed memory: %zd (%s)", n, strerror(errno));
	EXPECT_FILL(q, len, 16, "memory read(2) into");
	EXPECT_FILL(p, len, 16, "memory write(2) read");
	close(fd);
}

/* Keeps reading its memory until the daemon dies; the test kills it. */
static void scenario_daemon_death(void)
{
	const size_t len = 16 * MIB;
	char *p = map_filled(len, 18);
	const char *ready = getenv("UZI_READY_FILE");
	uint64_t deadline = now_ms() + 30000;

	if (ready)
		close(open(ready, O_CREAT | O_WRONLY, 0644));
	while (now_ms() < deadline) {
		size_t fb = 0, bad = check_fill(p, len, 18, &fb);

		if (bad) {
			fail("read %zu wrong words while the daemon died (first at byte %zu)", bad,
			     fb * 8);
			exit(1);
		}
		madvise(p, len, MADV_PAGEOUT); /* nothing: shared memory; keeps pages moving */
	}
	fail("the daemon did not die within 30 s");
}

/* No daemon: the program runs, unmanaged. */
/*
 * Under a daemon with [clients] client_max_managed = 16M (integ_interpose):
 * past the quota new mappings stay ordinary memory, and everything reads
 * back; once managed memory is given back, mappings are managed again.
 */
static void scenario_quota(void)
{
	const size_t big = 4 * MIB, n_small = 100;
	char *held[3], *small[100], *again;
	size_t managed = 0;

	for (int i = 0; i < 3; i++) {
		held[i] = map_anon(big);
		fill(held[i], big, 30 + (uint64_t)i);
		if (!is_managed(held[i]))
			fail("mapping %d of 4 MiB (within the 16 MiB quota) is not managed", i);
	}
	for (size_t i = 0; i < n_small; i++) {
		small[i] = map_anon(MIB);
		fill(small[i], MIB, 40 + i);
		managed += is_managed(small[i]);
	}
	info("%zu of %zu 1 MiB mappings past 12 MiB managed", managed, n_small);
	if (managed > 4)
		fail("%zu 1 MiB mappings past 12 MiB are managed: the 16 MiB quota allows 4",
		     managed);
	for (int i = 0; i < 3; i++)
		EXPECT_FILL(held[i], big, 30 + (uint64_t)i,
			    "a managed mapping, after the refusals");
	for (size_t i = 0; i < n_small; i++)
		EXPECT_FILL(small[i], MIB, 40 + i, "a mapping made past the quota");
	munmap(held[0], big);
	again = map_anon(2 * MIB);
	if (!is_managed(again))
		fail("after 4 MiB of managed memory was unmapped, a 2 MiB mapping is not managed");
	fill(again, 2 * MIB, 50);
	EXPECT_FILL(again, 2 * MIB, 50, "a managed mapping made after giving memory back");
}

static void scenario_unmanaged(void)
{
	char *p = map_anon(32 * MIB);

	if (is_managed(p))
		fail("memory is managed although no daemon is there");
	fill(p, 32 * MIB, 19);
	EXPECT_FILL(p, 32 * MIB, 19, "unmanaged memory");
}

int main(int argc, char **argv)
{
	const char *s = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(s, "basic"))
		scenario_basic();
	else if (!strcmp(s, "fds"))
		scenario_fds();
	else if (!strcmp(s, "calloc"))
		scenario_calloc();
	else if (!strcmp(s, "churn"))
		scenario_churn();
	else if (!strcmp(s, "dontneed"))
		scenario_dontneed();
	else if (!strcmp(s, "munmap"))
		scenario_munmap();
	else if (!strcmp(s, "fixed"))
		scenario_fixed();
	else if (!strcmp(s, "mprotect"))
		scenario_mprotect();
	else if (!strcmp(s, "mremap"))
		scenario_mremap();
	else if (!strcmp(s, "fork"))
		scenario_fork();
	else if (!strcmp(s, "fork-fails"))
		scenario_fork_fails();
	else if (!strcmp(s, "exec"))
		scenario_exec(argv[0]);
	else if (!strcmp(s, "exec-child"))
		scenario_exec_child();
	else if (!strcmp(s, "vfork"))
		scenario_vfork();
	else if (!strcmp(s, "threads"))
		scenario_threads();
	else if (!strcmp(s, "unmap-fault"))
		scenario_unmap_fault();
	else if (!strcmp(s, "syscalls"))
		scenario_syscalls();
	else if (!strcmp(s, "daemon-death"))
		scenario_daemon_death();
	else if (!strcmp(s, "unmanaged"))
		scenario_unmanaged();
	else if (!strcmp(s, "quota"))
		scenario_quota();
	else {
		fprintf(stderr, "ipose_victim: unknown scenario \"%s\"\n", s);
		return 2;
	}
	return failures ? 1 : 0;
}
