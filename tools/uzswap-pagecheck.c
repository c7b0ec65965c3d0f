/* SPDX-License-Identifier: MIT */
/*
 * tools/uzswap-pagecheck.c - put real memory under uzswapd and check that
 * every byte comes back.
 *
 *   uzswap-pagecheck --pages FILE [--socket PATH] [--budget SIZE] [--factor N]
 *                    [--seconds S | --reads N] [--threads T] [--seed N]
 *
 * One managed region of N x budget bytes (the budget is sent as the
 * client's max_resident, so the daemon must evict about (N-1)/N of it) is
 * filled page by page with the real pages of FILE (a shared/data/pages
 * sample), in order, cycling when the region is larger than the file.  The
 * pages are stored exactly as in the file, nothing stamped into them, so
 * the daemon compresses real data; region page i must always equal file
 * page i mod npages, which this process keeps in ordinary memory.  Then T
 * threads read uniformly random pages for S seconds (or N reads in all),
 * comparing every byte, and the whole region is compared once more in
 * order.  A mismatch prints the page and its first differing byte.
 *
 * Output: one summary, then the daemon's counters for this client
 * (uzswap_stats).  Exit status: 0 when no byte differed, 1 when one did,
 * 2 when the check could not run; UZSWAP_EXIT_DAEMON_GONE when the daemon
 * went away meanwhile (the library stops the process).
 */
#include <errno.h>
#include <getopt.h>
#include <sys/wait.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/pagefile.h"
#include "include/uzswap.h"

#define PG PF_PAGE_SIZE
#define MAX_THREADS 64
#define MISMATCHES_SHOWN 20

struct opts {
	const char *socket; /* NULL: the library's default */
	const char *pages;
	uint64_t budget;
	uint64_t factor;
	double seconds;
	uint64_t reads; /* 0: run for @seconds */
	unsigned int threads;
	uint64_t seed;
	const char *then; /* a shell command run at the end, still connected */
};

/* What every reader shares; the counters are the only fields written. */
struct check {
	const unsigned char *region; /* managed memory */
	size_t region_pages;
	const unsigned char *pages; /* the file's pages, ordinary memory */
	size_t npages;
	double deadline; /* CLOCK_MONOTONIC seconds, when the readers have no quota */
	atomic_uint_fast64_t mismatches;
	atomic_uint_fast64_t reads;
};

struct reader {
	pthread_t thread;
	struct check *c;
	uint64_t seed;
	uint64_t quota; /* reads to do; 0: read until c->deadline */
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: a seed reruns the same reads. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uzswap-pagecheck --pages FILE [--socket PATH] [--budget SIZE]\n"
		"                        [--factor N] [--seconds S | --reads N] [--threads T]\n"
		"                        [--seed N] [--then CMD]\n"
		"  --pages FILE   real pages (.pages or .pages.zst) to fill managed memory with\n"
		"  --socket PATH  uzswapd's socket (default: $UZSWAP_SOCKET, then %s)\n"
		"  --budget SIZE  resident budget asked of the daemon, bytes, K/M/G suffix "
		"(64M)\n"
		"  --factor N     managed memory = N x budget (4)\n"
		"  --seconds S    random reads for S seconds (10)\n"
		"  --reads N      or exactly N random reads in all\n"
		"  --threads T    reader threads (1)\n"
		"  --seed N       seed of the random reads (default: from the clock)\n"
		"  --then CMD     run the shell command CMD at the end, still connected\n"
		"                 (e.g. uzswapctl status, to show this client's figures)\n",
		UZSWAP_DEFAULT_SOCKET);
}

/* "64M", "1g", "4096": bytes; 0 on a malformed or overflowing size. */
static uint64_t parse_size(const char *s)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return 0;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case '\0':
		break;
	default:
		return 0;
	}
	if (shift && end[1])
		return 0;
	if (v > (UINT64_MAX >> shift))
		return 0;
	return (uint64_t)v << shift;
}

static uint64_t parse_count(const char *s, const char *what)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v == 0) {
		fprintf(stderr, "uzswap-pagecheck: %s: not a positive number: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pages", required_argument, NULL, 'p' },
		{ "budget", required_argument, NULL, 'b' },
		{ "factor", required_argument, NULL, 'f' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "reads", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 'e' },
		{ "then", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	*o = (struct opts){ .budget = 64ULL << 20, .factor = 4, .seconds = 10, .threads = 1 };
	o->seed = (uint64_t)time(NULL);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			o->socket = optarg;
			break;
		case 'T':
			o->then = optarg;
			break;
		case 'p':
			o->pages = optarg;
			break;
		case 'b':
			o->budget = parse_size(optarg);
			if (o->budget < PG) {
				fprintf(stderr,
					"uzswap-pagecheck: --budget: not a size of at least "
					"one page: %s\n",
					optarg);
				exit(2);
			}
			break;
		case 'f':
			o->factor = parse_count(optarg, "--factor");
			break;
		case 'S':
			o->seconds = strtod(optarg, &end);
			if (*end || end == optarg || !(o->seconds >= 0)) {
				fprintf(stderr, "uzswap-pagecheck: --seconds: not a duration: %s\n",
					optarg);
				exit(2);
			}
			break;
		case 'r':
			o->reads = parse_count(optarg, "--reads");
			break;
		case 't':
			o->threads = (unsigned int)parse_count(optarg, "--threads");
			if (o->threads > MAX_THREADS) {
				fprintf(stderr, "uzswap-pagecheck: --threads: at most %d\n",
					MAX_THREADS);
				exit(2);
			}
			break;
		case 'e':
			errno = 0;
			o->seed = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "uzswap-pagecheck: --seed: not a number: %s\n",
					optarg);
				exit(2);
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc || !o->pages) {
		usage(stderr);
		exit(2);
	}
}

/* Compare region page @i with what it must hold; report and count a difference. */
static void check_page(struct check *c, size_t i)
{
	const unsigned char *got = c->region + i * PG;
	const unsigned char *want = c->pages + (i % c->npages) * PG;
	uint64_t n;
	size_t off;

	if (memcmp(got, want, PG) == 0)
		return;
	for (off = 0; off < PG && got[off] == want[off]; off++)
		;
	n = atomic_fetch_add(&c->mismatches, 1) + 1;
	if (n <= MISMATCHES_SHOWN)
		fprintf(stderr,
			"uzswap-pagecheck: MISMATCH: region page %zu (file page %zu), first "
			"difference at offset %zu: read 0x%02x, expected 0x%02x\n",
			i, i % c->npages, off, got[off], want[off]);
	else if (n == MISMATCHES_SHOWN + 1)
		fprintf(stderr, "uzswap-pagecheck: further mismatches not shown\n");
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct check *c = rd->c;
	uint64_t state = rd->seed, done = 0;

	for (;;) {
		if (rd->quota ? done == rd->quota : (done % 64 == 0 && now_s() >= c->deadline))
			break;
		check_page(c, (size_t)(rng_next(&state) % c->region_pages));
		done++;
	}
	atomic_fetch_add(&c->reads, done);
	return NULL;
}

static int random_reads(struct check *c, const struct opts *o)
{
	struct reader rd[MAX_THREADS];
	unsigned int i, started;
	int err = 0;

	c->deadline = now_s() + o->seconds;
	for (started = 0; started < o->threads; started++) {
		rd[started] = (struct reader){
			.c = c,
			.seed = o->seed + started * 0x100000001ULL,
			.quota = o->reads / o->threads + (started < o->reads % o->threads),
		};
		/* More threads than reads: the spare ones have nothing to do. */
		if (o->reads && !rd[started].quota)
			break;
		err = pthread_create(&rd[started].thread, NULL, reader_main, &rd[started]);
		if (err) {
			fprintf(stderr, "uzswap-pagecheck: cannot start reader %u: %s\n", started,
				strerror(err));
			break;
		}
	}
	for (i = 0; i < started; i++)
		pthread_join(rd[i].thread, NULL);
	return err ? -err : 0;
}

static void fill(unsigned char *region, size_t region_pages, const unsigned char *pages,
		 size_t npages)
{
	for (size_t i = 0; i < region_pages; i++)
		memcpy(region + i * PG, pages + (i % npages) * PG, PG);
}

/* --then: the command runs while this client is connected and holds its region. */
static int run_then(const char *cmd)
{
	int status;

	fflush(stdout);
	status = system(cmd);
	if (status != 0) {
		fprintf(stderr, "uzswap-pagecheck: --then %s: exit status %d\n", cmd,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -1;
	}
	return 0;
}

static void print_stats(struct uzswap *u)
{
	struct uzswap_stats st;
	int err = uzswap_stats(u, &st);

	if (err) {
		fprintf(stderr, "uzswap-pagecheck: stats: %s\n", uzswap_last_error(u));
		return;
	}
	printf("daemon:  budget %.1f MiB granted; managed %" PRIu64 " pages, resident %" PRIu64
	       ", same-filled %" PRIu64 ", pool %" PRIu64 " (%.1f MiB compressed), file %" PRIu64
	       "\n",
	       (double)st.max_resident / (1 << 20), st.managed_pages, st.resident_pages,
	       st.same_pages, st.pool_pages, (double)st.pool_bytes / (1 << 20), st.file_pages);
	printf("faults:  %" PRIu64 " (%" PRIu64 " first touches); evictions %" PRIu64
	       ", refused %" PRIu64 "; fault latency p50 %.1f us, p99 %.1f us\n",
	       st.faults, st.faults_zero, st.evictions, st.rejections,
	       (double)st.fault_p50_ns / 1e3, (double)st.fault_p99_ns / 1e3);
	if (st.evict_ns)
		printf("evict:   %" PRIu64 " pages in %.2f s of reclaim time (%.0f pages/s)\n",
		       st.evictions, (double)st.evict_ns / 1e9,
		       (double)st.evictions * 1e9 / (double)st.evict_ns);
}

/* Load at most what the region will hold: the file may be far larger. */
static int load_pages(const char *path, size_t region_pages, unsigned char **pages, size_t *npages)
{
	int err = pf_load(path, 1, region_pages, pages, npages);

	if (err) {
		fprintf(stderr, "uzswap-pagecheck: %s: %s\n", path, strerror(-err));
		return err;
	}
	if (*npages == 0) {
		fprintf(stderr, "uzswap-pagecheck: %s: no pages\n", path);
		free(*pages);
		return -EINVAL;
	}
	return 0;
}

static int connect_region(const struct opts *o, size_t bytes, struct uzswap **u, void **region)
{
	char why[512] = "";
	struct uzswap_options uo = {
		.max_resident = o->budget,
		.name = "pagecheck",
		.error = why,
		.error_len = sizeof(why),
	};
	int err;

	err = uzswap_connect(o->socket, &uo, u);
	if (err) {
		fprintf(stderr, "uzswap-pagecheck: %s\n", why);
		return err;
	}
	err = uzswap_region_create(*u, bytes, "pagecheck", region);
	if (err) {
		fprintf(stderr, "uzswap-pagecheck: %s\n", uzswap_last_error(*u));
		uzswap_close(*u);
	}
	return err;
}

int main(int argc, char **argv)
{
	struct check c = { 0 };
	unsigned char *pages;
	struct uzswap *u;
	struct opts o;
	double t0, t_fill, t_rand, t_seq;
	void *region;
	size_t npages;
	uint64_t mismatches;
	int status;

	parse_opts(argc, argv, &o);
	/* The library stops the process with _exit() if the daemon dies: lose no line. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o.factor > SIZE_MAX / o.budget) {
		fprintf(stderr, "uzswap-pagecheck: %" PRIu64 " x %" PRIu64 " bytes is too large\n",
			o.factor, o.budget);
		return 2;
	}
	c.region_pages = (size_t)((o.factor * o.budget + PG - 1) / PG);
	if (load_pages(o.pages, c.region_pages, &pages, &npages))
		return 2;
	if (connect_region(&o, c.region_pages * PG, &u, &region)) {
		free(pages);
		return 2;
	}
	c.region = region;
	c.pages = pages;
	c.npages = npages;
	printf("pages:   %s, %zu pages used; seed %" PRIu64 "\n", o.pages, npages, o.seed);
	printf("region:  %zu pages (%.1f MiB) = %" PRIu64 " x budget %.1f MiB\n", c.region_pages,
	       (double)c.region_pages * PG / (1 << 20), o.factor, (double)o.budget / (1 << 20));

	t0 = now_s();
	fill(region, c.region_pages, pages, npages);
	t_fill = now_s() - t0;
	printf("fill:    %zu pages in %.2f s\n", c.region_pages, t_fill);

	t0 = now_s();
	if (random_reads(&c, &o) < 0) {
		uzswap_close(u);
		free(pages);
		return 2;
	}
	t_rand = now_s() - t0;
	printf("random:  %" PRIu64 " reads by %u thread%s in %.2f s (%.0f reads/s)\n",
	       (uint64_t)atomic_load(&c.reads), o.threads, o.threads == 1 ? "" : "s", t_rand,
	       t_rand > 0 ? (double)atomic_load(&c.reads) / t_rand : 0.0);

	t0 = now_s();
	for (size_t i = 0; i < c.region_pages; i++)
		check_page(&c, i);
	t_seq = now_s() - t0;
	printf("verify:  %zu pages in order in %.2f s\n", c.region_pages, t_seq);

	print_stats(u);
	mismatches = atomic_load(&c.mismatches);
	printf("result:  %" PRIu64 " mismatches in %.2f s: %s\n", mismatches,
	       t_fill + t_rand + t_seq, mismatches ? "FAIL" : "PASS");
	status = mismatches ? 1 : 0;
	if (o.then && run_then(o.then) < 0)
		status = 1;
	uzswap_close(u);
	free(pages);
	return status;
}
