/* SPDX-License-Identifier: MIT */
/*
 * tools/ctl_format.c - check uzswapd's STATUS buffer and print it, as
 * tables for a person or as one JSON object for a program.
 *
 * The buffer (include/uzswap_proto.h) is one struct uzp_status, n_clients
 * struct uzp_status_client, then n_regions struct uzp_status_region grouped
 * by client in client order.  uzctl_status_parse() checks all of it once:
 * the exact length the counts imply, every string NUL-terminated, and every
 * client owning exactly the run of regions that follows the previous
 * client's; the printers then walk clients and regions side by side with
 * no further checks.
 *
 * Process names and region names are chosen by clients, so they are
 * hostile input here: the tables replace control characters and invalid
 * UTF-8 with '?' (a name must not be able to move the cursor or recolour
 * an admin's terminal), and the JSON escapes them so that its output is
 * always valid JSON in valid UTF-8.
 *
 * The other read commands print parts of the same view: clients (one row
 * each), the regions of one process; and classes prints the pool's class
 * buffer (CLASSES), which uzctl_classes_parse() checks as thoroughly.
 *
 * Nothing here allocates or keeps state; output goes only to the FILE the
 * caller gives, and a write error is reported, never ignored.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tools/ctl_format.h"

/* Widest humanised size, "1023 MiB" or "1.00 GiB", and its buffer. */
#define SIZE_W 8
#define NUM_BUF 32

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* Each client owns the run of regions after the previous client's. */
static int check_clients(const struct uzctl_status_view *v, char *err, size_t errlen)
{
	uint32_t n_regions = v->st->n_regions, r = 0;

	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];

		if (!terminated(c->comm, sizeof(c->comm)))
			return bad(err, errlen, "client %" PRIu32 ": comm is not NUL-terminated",
				   c->id);
		if (c->n_regions > n_regions - r)
			return bad(err, errlen,
				   "client %" PRIu32 " has %" PRIu32 " regions, but only %" PRIu32
				   " of the %" PRIu32 " are left for it",
				   c->id, c->n_regions, n_regions - r, n_regions);
		for (uint32_t k = 0; k < c->n_regions; k++, r++) {
			const struct uzp_status_region *g = &v->regions[r];

			if (g->client_id != c->id)
				return bad(err, errlen,
					   "region %" PRIu32 " (id %" PRIu32
					   ") belongs to client %" PRIu32
					   ", expected client %" PRIu32
					   ": regions must be grouped in client order",
					   r, g->region_id, g->client_id, c->id);
			if (!terminated(g->name, sizeof(g->name)))
				return bad(err, errlen,
					   "client %" PRIu32 " region %" PRIu32
					   ": name is not NUL-terminated",
					   c->id, g->region_id);
		}
	}
	if (r != n_regions)
		return bad(err, errlen,
			   "the status has %" PRIu32 " regions, but its clients own %" PRIu32,
			   n_regions, r);
	return 0;
}

int uzctl_status_parse(const void *buf, size_t len, struct uzctl_status_view *v, char *err,
		       size_t errlen)
{
	const struct uzp_status *st = buf;
	uint64_t want;

	if ((uintptr_t)buf % 8) {
		bad(err, errlen, "status buffer is not 8-byte aligned");
		return -EINVAL;
	}
	if (len < sizeof(*st))
		return bad(err, errlen, "truncated status: %zu bytes, its header alone is %zu", len,
			   sizeof(*st));
	if (st->magic != UZP_MAGIC)
		return bad(err, errlen,
			   "not a uzswapd status: magic 0x%08" PRIx32 ", expected 0x%08x",
			   st->magic, UZP_MAGIC);
	if (st->version != UZP_VERSION)
		return bad(err, errlen,
			   "status version %" PRIu32 ", this uzswapctl reads version %d",
			   st->version, UZP_VERSION);
	/* 32-bit counts times structs of a few hundred bytes: no overflow in 64 bits. */
	want = sizeof(*st) + (uint64_t)st->n_clients * sizeof(struct uzp_status_client) +
	       (uint64_t)st->n_regions * sizeof(struct uzp_status_region);
	if (len != want)
		return bad(err, errlen,
			   "%s status: %zu bytes, but %" PRIu32 " clients and %" PRIu32
			   " regions take %" PRIu64,
			   len < want ? "truncated" : "oversized", len, st->n_clients,
			   st->n_regions, want);
	if (!terminated(st->allocator, sizeof(st->allocator)))
		return bad(err, errlen, "allocator name is not NUL-terminated");
	if (!terminated(st->codec, sizeof(st->codec)))
		return bad(err, errlen, "codec name is not NUL-terminated");
	v->st = st;
	v->clients = (const struct uzp_status_client *)(st + 1);
	v->regions = (const struct uzp_status_region *)(v->clients + st->n_clients);
	return check_clients(v, err, errlen);
}

double uzctl_compression_ratio(const struct uzp_status *st)
{
	if (!st->pool_compressed_bytes)
		return -1;
	return (double)st->pool_stored_pages * UZCTL_PAGE_SIZE / (double)st->pool_compressed_bytes;
}

double uzctl_pool_efficiency(const struct uzp_status *st)
{
	if (!st->pool_total_bytes)
		return -1;
	return (double)st->pool_compressed_bytes / (double)st->pool_total_bytes;
}

double uzctl_file_space_ratio(const struct uzp_status *st)
{
	if (!st->file_stored_bytes)
		return -1;
	return (double)st->file_disk_bytes / (double)st->file_stored_bytes;
}

/*
 * The valid UTF-8 sequence at @s (@n bytes left): its length, and its code
 * point in *@cp; 0 for a byte that starts no valid sequence (overlong forms,
 * surrogates and values past U+10FFFF included).
 */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, c &= 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3, c &= 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, c &= 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/* C0, DEL and C1: what a terminal may take as a command. */
static bool is_control(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
}

/*
 * Print the client-chosen string @s, defanged, in a column of @width
 * characters (0: as long as it is); a longer string is cut.  Counting
 * code points keeps a UTF-8 name aligned as well as a byte count would
 * not (wide CJK characters still take two cells: rare in a process name).
 */
static void put_name(FILE *f, const char *s, int width)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	int col = 0;

	while (n && (!width || col < width)) {
		uint32_t cp;
		size_t k = utf8_next(p, n, &cp);

		if (!k || is_control(cp))
			fputc('?', f);
		else
			fwrite(p, 1, k, f);
		k = k ? k : 1;
		p += k, n -= k, col++;
	}
	while (col++ < width)
		fputc(' ', f);
}

/* @bytes as "512 B", "4.00 KiB", "12.3 MiB", "700 MiB": at most SIZE_W characters. */
static const char *size_str(char *buf, uint64_t bytes)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	int u = -1, prec;

	if (bytes < 1024) {
		snprintf(buf, NUM_BUF, "%" PRIu64 " B", bytes);
		return buf;
	}
	while (v >= 1024 && u < 5)
		v /= 1024, u++;
	/* Three significant digits, chosen after rounding so "9.999" is not "10.00". */
	prec = v < 9.995 ? 2 : v < 99.95 ? 1 : 0;
	snprintf(buf, NUM_BUF, "%.*f %ciB", prec, v, units[u]);
	return buf;
}

static const char *pages_str(char *buf, uint64_t pages)
{
	/* Saturate rather than wrap: 2^52 pages is beyond any machine. */
	if (pages > UINT64_MAX / UZCTL_PAGE_SIZE)
		pages = UINT64_MAX / UZCTL_PAGE_SIZE;
	return size_str(buf, pages * UZCTL_PAGE_SIZE);
}

/* @v exact when it fits @width (at least 6), else "12.3M" (decimal units). */
static const char *count_str(char *buf, uint64_t v, int width)
{
	static const char units[] = "kMGTPE";
	double d = (double)v;
	int u = -1;

	if (snprintf(buf, NUM_BUF, "%" PRIu64, v) <= width)
		return buf;
	while (d >= 999.95 && u < 5)
		d /= 1000, u++;
	snprintf(buf, NUM_BUF, "%.1f%c", d, units[u]);
	return buf;
}

/*
 * A latency in µs for a column of 7: "12.3", "4567", then seconds, "12.3s"
 * and "1234s"; "-" when nothing was measured.  A stuck fault can take
 * minutes; past a day the figure is a bug, shown as such.
 */
static const char *lat_str(char *buf, uint64_t count, uint64_t ns)
{
	double us = (double)ns / 1000;

	if (!count)
		snprintf(buf, NUM_BUF, "-");
	else if (us < 9999.95)
		snprintf(buf, NUM_BUF, "%.1f", us);
	else if (us < 999999.5)
		snprintf(buf, NUM_BUF, "%.0f", us);
	else if (us < 99.95e6)
		snprintf(buf, NUM_BUF, "%.1fs", us / 1e6);
	else if (us < 86400e6)
		snprintf(buf, NUM_BUF, "%.0fs", us / 1e6);
	else
		snprintf(buf, NUM_BUF, ">1d");
	return buf;
}

static void put_uptime(FILE *f, uint64_t ms)
{
	uint64_t s = ms / 1000;

	if (s >= 86400)
		fprintf(f, "%" PRIu64 "d ", s / 86400);
	fprintf(f, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600 % 24, s / 60 % 60, s % 60);
}

#define LABEL "%-18s"

static void print_daemon(FILE *f, const struct uzctl_status_view *v)
{
	const struct uzp_status *st = v->st;
	double ratio = uzctl_compression_ratio(st), eff = uzctl_pool_efficiency(st);
	char a[NUM_BUF], b[NUM_BUF];

	fprintf(f, LABEL "pid %" PRIu32 ", up ", "daemon", st->pid);
	put_uptime(f, st->uptime_ms);
	fprintf(f, "\n" LABEL, "allocator");
	put_name(f, st->allocator, 0);
	fprintf(f, "\n" LABEL, "codec");
	put_name(f, st->codec, 0);
	fprintf(f, ", level %" PRId32 "\n", st->codec_level);
	fprintf(f, LABEL "%" PRIu32 "\n", "fault threads", st->fault_threads);
	fprintf(f, LABEL "%s resident at most\n", "budget", size_str(a, st->max_resident));
	fprintf(f, LABEL "%s of %s max", "pool", size_str(a, st->pool_total_bytes),
		size_str(b, st->pool_max_bytes));
	if (st->writeback)
		fprintf(f, ", %s (reopens below %s)", st->pool_closed ? "full" : "accepting",
			size_str(a, st->pool_accept_bytes));
	fputc('\n', f);
	fprintf(f, LABEL "%s\n", "pool tables", size_str(a, st->pool_meta_bytes));
	fprintf(f, LABEL "%s holding %" PRIu64 " pages\n", "compressed",
		size_str(a, st->pool_compressed_bytes), st->pool_stored_pages);
	if (ratio < 0)
		fprintf(f, LABEL "- (nothing stored)\n", "compression ratio");
	else
		fprintf(f, LABEL "%.2f\n", "compression ratio", ratio);
	if (eff < 0)
		fprintf(f, LABEL "- (the pool is empty)\n", "pool efficiency");
	else
		fprintf(f, LABEL "%.1f%%\n", "pool efficiency", eff * 100);
	fprintf(f, LABEL "%s\n", "MemAvailable",
		st->mem_available ? size_str(a, st->mem_available) : "unknown");
	fprintf(f, LABEL "some avg10 %" PRIu64 ".%02" PRIu64 "%%\n", "memory PSI",
		st->psi_some_avg10_centi / 100, st->psi_some_avg10_centi % 100);
	fprintf(f, LABEL "%" PRIu64 "\n", "pressure rounds", st->pressure_rounds);
	fprintf(f,
		LABEL "%" PRIu32 " connected; %" PRIu64 " accepted, %" PRIu64 " refused, %" PRIu64
		      " dropped\n",
		"clients", st->n_clients, st->clients_accepted, st->clients_refused,
		st->clients_dropped);
	fprintf(f, LABEL "%" PRIu64 "\n", "protocol errors", st->protocol_errors);
	fprintf(f, LABEL "%" PRIu64 "\n", "quota refusals", st->quota_refusals);
}

static void print_writeback(FILE *f, const struct uzp_status *st)
{
	double ratio = uzctl_file_space_ratio(st);
	char a[NUM_BUF], b[NUM_BUF], c[NUM_BUF];

	if (!st->writeback) {
		fprintf(f, LABEL "off\n", "writeback");
		return;
	}
	if (st->writeback == 2)
		fprintf(f,
			LABEL "off (a reload turned it off; the file's pages are still restored)\n",
			"writeback");
	fprintf(f,
		LABEL "%" PRIu64 " pages, %s compressed, in %.1f s; pool full %" PRIu64 " times\n",
		"written back", st->wb_written_pages, size_str(a, st->wb_written_bytes),
		(double)st->wb_busy_ns / 1e9, st->pool_full_events);
	fprintf(f, LABEL "%s in %" PRIu64 " pages (%s with headers); %s on disk", "backing file",
		size_str(a, st->file_stored_bytes), st->file_records,
		size_str(b, st->file_live_bytes), size_str(c, st->file_disk_bytes));
	if (ratio >= 0)
		fprintf(f, " (%.2fx)", ratio);
	fprintf(f, "; length %s of %s max\n", size_str(a, st->file_size_bytes),
		size_str(b, st->file_max_bytes));
	fprintf(f, LABEL "%" PRIu64 " (%" PRIu64 " from memory, write in flight)", "file restores",
		st->file_reads, st->file_reads_staged);
	fprintf(f, ", p50 %s µs, p99 %s µs\n", lat_str(a, st->file_reads, st->file_restore_p50_ns),
		lat_str(b, st->file_reads, st->file_restore_p99_ns));
	fprintf(f,
		LABEL "%" PRIu64 " file full, %" PRIu64 " write errors, %" PRIu64 " raced, %" PRIu64
		      " owner gone; %" PRIu64 " put back after a failed write\n",
		"writeback refused", st->wb_rejected_file_full, st->wb_rejected_write_error,
		st->wb_rejected_raced, st->wb_rejected_owner_gone, st->wb_put_back);
	fprintf(f,
		LABEL "writes %" PRIu64 " no space, %" PRIu64 " failed, %" PRIu64
		      " short; reads %" PRIu64 " failed, %" PRIu64 " short, %" PRIu64 " corrupt\n",
		"file errors", st->file_write_enospc, st->file_write_eio, st->file_short_writes,
		st->file_read_errors, st->file_short_reads, st->file_bad_records);
	fprintf(f,
		LABEL "%" PRIu64 " segments, %" PRIu64 " pages moved in %.1f s; %" PRIu64
		      " blocks punched\n",
		"file compaction", st->file_cleaned_segments, st->file_cleaned_records,
		(double)st->wb_clean_ns / 1e9, st->file_punched_blocks);
}

/* Every client table starts with the same two columns. */
#define CLIENT_COLS "%5s %-15s"
#define COMM_W 15

static void put_client_key(FILE *f, const struct uzp_status_client *c)
{
	fprintf(f, "%5" PRIu32 " ", c->id);
	put_name(f, c->comm, COMM_W);
}

#define MEM_COLS CLIENT_COLS " %7s %10s %7s %8s %8s %8s %8s %8s %8s %8s\n"

static void print_client_memory(FILE *f, const struct uzctl_status_view *v)
{
	char a[7][NUM_BUF];

	fprintf(f, "\nclients: memory (pages shown as their size)\n");
	fprintf(f, MEM_COLS, "ID", "COMM", "PID", "UID", "REGIONS", "BUDGET", "MANAGED", "RESIDENT",
		"SAME", "POOL", "FILE", "COMPR");
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];

		put_client_key(f, c);
		fprintf(f, " %7" PRIu32 " %10" PRIu32 " %7" PRIu32 " %8s %8s %8s %8s %8s %8s %8s\n",
			c->pid, c->uid, c->n_regions, size_str(a[6], c->budget_bytes),
			pages_str(a[0], c->managed_pages), pages_str(a[1], c->resident_pages),
			pages_str(a[2], c->same_pages), pages_str(a[3], c->pool_pages),
			pages_str(a[4], c->file_pages), size_str(a[5], c->pool_bytes));
	}
}

#define FAULT_COLS CLIENT_COLS " %9s %7s %7s %9s %7s %7s %9s %7s %7s %8s %9s\n"

static void print_client_faults(FILE *f, const struct uzctl_status_view *v)
{
	char n[UZP_FAULT_KINDS][NUM_BUF], p50[UZP_FAULT_KINDS][NUM_BUF];
	char p99[UZP_FAULT_KINDS][NUM_BUF], raced[NUM_BUF], ra[NUM_BUF];

	fprintf(f, "\nclients: faults by kind, with p50 and p99 latency in µs\n");
	fprintf(f, FAULT_COLS, "ID", "COMM", "ZERO", "p50", "p99", "SAME", "p50", "p99", "POOL",
		"p50", "p99", "RACED", "READAHEAD");
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];

		for (int k = 0; k < UZP_FAULT_KINDS; k++) {
			const struct uzp_fault_lat *l = &c->faults[k];

			count_str(n[k], l->count, 9);
			lat_str(p50[k], l->count, l->p50_ns);
			lat_str(p99[k], l->count, l->p99_ns);
		}
		put_client_key(f, c);
		fprintf(f, " %9s %7s %7s %9s %7s %7s %9s %7s %7s %8s %9s\n", n[UZP_FAULT_ZERO],
			p50[UZP_FAULT_ZERO], p99[UZP_FAULT_ZERO], n[UZP_FAULT_SAME],
			p50[UZP_FAULT_SAME], p99[UZP_FAULT_SAME], n[UZP_FAULT_POOL],
			p50[UZP_FAULT_POOL], p99[UZP_FAULT_POOL],
			count_str(raced, c->faults_raced, 8), count_str(ra, c->readahead, 9));
	}
}

#define FILE_COLS CLIENT_COLS " %9s %7s %7s %12s %8s\n"

static void print_client_file(FILE *f, const struct uzctl_status_view *v)
{
	char a[5][NUM_BUF];

	fprintf(f, "\nclients: backing file (restores with p50 and p99 latency in µs)\n");
	fprintf(f, FILE_COLS, "ID", "COMM", "RESTORES", "p50", "p99", "WRITTEN-BACK", "IN-FILE");
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];
		const struct uzp_fault_lat *l = &c->faults_file;

		put_client_key(f, c);
		fprintf(f, " %9s %7s %7s %12s %8s\n", count_str(a[0], l->count, 9),
			lat_str(a[1], l->count, l->p50_ns), lat_str(a[2], l->count, l->p99_ns),
			count_str(a[3], c->written_back, 12), size_str(a[4], c->file_bytes));
	}
}

#define RECLAIM_COLS CLIENT_COLS " %10s %10s %11s %10s %10s %6s %9s %9s %9s %9s\n"

/* A share in 1/100 % as "3.1%"; "-" for 0 (not sampled), "?" past 100%. */
static const char *share_str(char *buf, uint32_t centi)
{
	if (!centi)
		return "-";
	if (centi > 10000)
		return "?";
	snprintf(buf, NUM_BUF, "%u.%u%%", centi / 100, centi % 100 / 10);
	return buf;
}

static void print_client_reclaim(FILE *f, const struct uzctl_status_view *v)
{
	char a[10][NUM_BUF];

	fprintf(f, "\nclients: reclaim (evictions, hot refaults, access sampling and the share "
		   "of evictions it judges, rejected evictions)\n");
	fprintf(f, RECLAIM_COLS, "ID", "COMM", "EVICT-SAME", "EVICT-POOL", "HOT-REFAULT", "SAMPLED",
		"TOUCHED", "SHARE", "REJ-FULL", "REJ-BUSY", "REJ-ERROR", "POISONED");
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];

		put_client_key(f, c);
		fprintf(f, " %10s %10s %11s %10s %10s %6s %9s %9s %9s %9s\n",
			count_str(a[0], c->evicted_same, 10), count_str(a[1], c->evicted_pool, 10),
			count_str(a[2], c->refaults_hot, 11), count_str(a[3], c->sampled, 10),
			count_str(a[4], c->sampled_touched, 10),
			share_str(a[9], c->sample_share_centi),
			count_str(a[5], c->rejected_pool_full, 9),
			count_str(a[6], c->rejected_busy, 9), count_str(a[7], c->rejected_error, 9),
			count_str(a[8], c->poisoned, 9));
	}
}

/* Pages holding data (resident or evicted): what the process would hold in memory. */
static uint64_t data_pages(const struct uzp_status_client *c)
{
	uint64_t n = c->resident_pages, parts[] = { c->same_pages, c->pool_pages, c->file_pages };

	for (size_t i = 0; i < 3; i++)
		n = n > UINT64_MAX - parts[i] ? UINT64_MAX : n + parts[i]; /* saturate */
	return n;
}

/* Per mille of the process's anonymous memory that is managed (doubles: no overflow). */
static uint64_t coverage_permille(const struct uzp_status_client *c)
{
	double managed = (double)data_pages(c) * UZCTL_PAGE_SIZE;
	double all = managed + (double)c->anon_rss_bytes;

	return all > 0 ? (uint64_t)(1000.0 * managed / all) : 0;
}

#define COVERAGE_COLS CLIENT_COLS " %12s %14s %9s\n"

static void print_client_coverage(FILE *f, const struct uzctl_status_view *v)
{
	char a[3][NUM_BUF];

	fprintf(f, "\nclients: coverage (the share of anonymous memory that is managed)\n");
	fprintf(f, COVERAGE_COLS, "ID", "COMM", "MANAGED-DATA", "UNMANAGED-ANON", "COVERAGE");
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];
		uint64_t pm = coverage_permille(c);

		snprintf(a[2], sizeof(a[2]), "%" PRIu64 ".%" PRIu64 "%%", pm / 10, pm % 10);
		put_client_key(f, c);
		fprintf(f, " %12s %14s %9s\n", pages_str(a[0], data_pages(c)),
			size_str(a[1], c->anon_rss_bytes), a[2]);
	}
}

/* NAME last: a region name is up to 31 characters and needs no padding there. */
#define REGION_COLS "%6s %6s %16s %8s %8s %8s %8s %8s %s\n"

static void print_regions(FILE *f, const struct uzctl_status_view *v)
{
	char a[8][NUM_BUF];

	fprintf(f, "\nregions (pages shown as their size)\n");
	if (!v->st->n_regions) {
		fprintf(f, "no regions\n");
		return;
	}
	fprintf(f, REGION_COLS, "CLIENT", "REGION", "ADDR", "SIZE", "RESIDENT", "SAME", "POOL",
		"FILE", "NAME");
	for (uint32_t r = 0; r < v->st->n_regions; r++) {
		const struct uzp_status_region *g = &v->regions[r];

		snprintf(a[2], NUM_BUF, "0x%012" PRIx64, g->addr);
		fprintf(f, "%6" PRIu32 " %6" PRIu32 " %16s %8s %8s %8s %8s %8s ", g->client_id,
			g->region_id, a[2], size_str(a[3], g->length),
			pages_str(a[4], g->resident_pages), pages_str(a[5], g->same_pages),
			pages_str(a[6], g->pool_pages), pages_str(a[7], g->file_pages));
		put_name(f, g->name, 0);
		fputc('\n', f);
	}
}

static int flush_status(FILE *f)
{
	if (fflush(f))
		return -errno;
	return ferror(f) ? -EIO : 0;
}

int uzctl_print_table(FILE *f, const struct uzctl_status_view *v)
{
	print_daemon(f, v);
	print_writeback(f, v->st);
	if (!v->st->n_clients) {
		fprintf(f, "\nno clients\n");
	} else {
		print_client_memory(f, v);
		print_client_faults(f, v);
		if (v->st->writeback)
			print_client_file(f, v);
		print_client_reclaim(f, v);
		print_client_coverage(f, v);
		print_regions(f, v);
	}
	return flush_status(f);
}

/*
 * JSON, indented two spaces a level.  need_comma: a value was written at
 * this level, so the next one needs a comma and a closing bracket a new
 * line (an empty object or array closes on its own line: "[]").
 */
struct json {
	FILE *f;
	int depth;
	bool need_comma;
};

static void json_key(struct json *j, const char *key)
{
	if (j->depth)
		fprintf(j->f, "%s\n%*s", j->need_comma ? "," : "", j->depth * 2, "");
	if (key)
		fprintf(j->f, "\"%s\": ", key);
	j->need_comma = true;
}

static void json_open(struct json *j, const char *key, char bracket)
{
	json_key(j, key);
	fputc(bracket, j->f);
	j->depth++;
	j->need_comma = false;
}

static void json_close(struct json *j, char bracket)
{
	j->depth--;
	if (j->need_comma)
		fprintf(j->f, "\n%*s", j->depth * 2, "");
	fputc(bracket, j->f);
	j->need_comma = true;
}

static void json_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

/* A derived figure; negative means undefined, written as null. */
static void json_real(struct json *j, const char *key, double v)
{
	json_key(j, key);
	if (v < 0)
		fputs("null", j->f);
	else
		fprintf(j->f, "%.4f", v);
}

/*
 * A client-chosen string: valid UTF-8 passes through; quotes, backslashes
 * and control characters are escaped; a byte that is not valid UTF-8
 * becomes U+FFFD, since JSON text cannot carry it.
 */
static void json_str(struct json *j, const char *key, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	json_key(j, key);
	fputc('"', j->f);
	while (n) {
		uint32_t cp;
		size_t k = utf8_next(p, n, &cp);

		if (!k)
			fputs("\\ufffd", j->f);
		else if (cp == '"' || cp == '\\')
			fprintf(j->f, "\\%c", (int)cp);
		else if (cp == '\n')
			fputs("\\n", j->f);
		else if (cp == '\t')
			fputs("\\t", j->f);
		else if (is_control(cp))
			fprintf(j->f, "\\u%04" PRIx32, cp);
		else
			fwrite(p, 1, k, j->f);
		k = k ? k : 1;
		p += k, n -= k;
	}
	fputc('"', j->f);
}

static void json_daemon(struct json *j, const struct uzp_status *st)
{
	json_open(j, "daemon", '{');
	json_u64(j, "version", st->version);
	json_u64(j, "pid", st->pid);
	json_u64(j, "uptime_ms", st->uptime_ms);
	json_u64(j, "fault_threads", st->fault_threads);
	json_str(j, "allocator", st->allocator);
	json_str(j, "codec", st->codec);
	json_key(j, "codec_level");
	fprintf(j->f, "%" PRId32, st->codec_level);
	json_u64(j, "n_clients", st->n_clients);
	json_u64(j, "n_regions", st->n_regions);
	json_u64(j, "max_resident", st->max_resident);
	json_u64(j, "pool_max_bytes", st->pool_max_bytes);
	json_u64(j, "pool_total_bytes", st->pool_total_bytes);
	json_u64(j, "pool_compressed_bytes", st->pool_compressed_bytes);
	json_u64(j, "pool_stored_pages", st->pool_stored_pages);
	json_u64(j, "pool_meta_bytes", st->pool_meta_bytes);
	json_real(j, "compression_ratio", uzctl_compression_ratio(st));
	json_real(j, "pool_efficiency", uzctl_pool_efficiency(st));
	json_u64(j, "mem_available", st->mem_available);
	json_u64(j, "psi_some_avg10_centi", st->psi_some_avg10_centi);
	json_u64(j, "pressure_rounds", st->pressure_rounds);
	json_u64(j, "clients_accepted", st->clients_accepted);
	json_u64(j, "clients_refused", st->clients_refused);
	json_u64(j, "clients_dropped", st->clients_dropped);
	json_u64(j, "protocol_errors", st->protocol_errors);
	json_u64(j, "quota_refusals", st->quota_refusals);
	json_u64(j, "writeback", st->writeback);
	json_u64(j, "pool_closed", st->pool_closed);
	json_u64(j, "pool_accept_bytes", st->pool_accept_bytes);
	json_u64(j, "pool_full_events", st->pool_full_events);
	json_u64(j, "wb_written_pages", st->wb_written_pages);
	json_u64(j, "wb_written_bytes", st->wb_written_bytes);
	json_u64(j, "wb_rejected_file_full", st->wb_rejected_file_full);
	json_u64(j, "wb_rejected_write_error", st->wb_rejected_write_error);
	json_u64(j, "wb_rejected_raced", st->wb_rejected_raced);
	json_u64(j, "wb_rejected_owner_gone", st->wb_rejected_owner_gone);
	json_u64(j, "wb_put_back", st->wb_put_back);
	json_u64(j, "file_max_bytes", st->file_max_bytes);
	json_u64(j, "file_size_bytes", st->file_size_bytes);
	json_u64(j, "file_disk_bytes", st->file_disk_bytes);
	json_u64(j, "file_live_bytes", st->file_live_bytes);
	json_u64(j, "file_stored_bytes", st->file_stored_bytes);
	json_u64(j, "file_records", st->file_records);
	json_real(j, "file_space_ratio", uzctl_file_space_ratio(st));
	json_u64(j, "file_reads", st->file_reads);
	json_u64(j, "file_reads_staged", st->file_reads_staged);
	json_u64(j, "file_restore_p50_ns", st->file_restore_p50_ns);
	json_u64(j, "file_restore_p99_ns", st->file_restore_p99_ns);
	json_u64(j, "file_write_enospc", st->file_write_enospc);
	json_u64(j, "file_write_eio", st->file_write_eio);
	json_u64(j, "file_short_writes", st->file_short_writes);
	json_u64(j, "file_read_errors", st->file_read_errors);
	json_u64(j, "file_short_reads", st->file_short_reads);
	json_u64(j, "file_bad_records", st->file_bad_records);
	json_u64(j, "file_punched_blocks", st->file_punched_blocks);
	json_u64(j, "file_cleaned_segments", st->file_cleaned_segments);
	json_u64(j, "file_cleaned_records", st->file_cleaned_records);
	json_u64(j, "wb_busy_ns", st->wb_busy_ns);
	json_u64(j, "wb_clean_ns", st->wb_clean_ns);
	json_close(j, '}');
}

static void json_region(struct json *j, const struct uzp_status_region *g)
{
	json_open(j, NULL, '{');
	json_u64(j, "client_id", g->client_id);
	json_u64(j, "region_id", g->region_id);
	json_str(j, "name", g->name);
	json_u64(j, "addr", g->addr);
	json_u64(j, "length", g->length);
	json_u64(j, "resident_pages", g->resident_pages);
	json_u64(j, "same_pages", g->same_pages);
	json_u64(j, "pool_pages", g->pool_pages);
	json_u64(j, "file_pages", g->file_pages);
	json_close(j, '}');
}

static void json_faults(struct json *j, const struct uzp_status_client *c)
{
	static const char *const kinds[UZP_FAULT_KINDS] = {
		[UZP_FAULT_ZERO] = "zero",
		[UZP_FAULT_SAME] = "same",
		[UZP_FAULT_POOL] = "pool",
	};

	json_open(j, "faults", '{');
	for (int k = 0; k <= UZP_FAULT_KINDS; k++) {
		const struct uzp_fault_lat *l = k < UZP_FAULT_KINDS ? &c->faults[k] :
								      &c->faults_file;

		json_open(j, k < UZP_FAULT_KINDS ? kinds[k] : "file", '{');
		json_u64(j, "count", l->count);
		json_u64(j, "p50_ns", l->p50_ns);
		json_u64(j, "p99_ns", l->p99_ns);
		json_close(j, '}');
	}
	json_open(j, "all", '{');
	json_u64(j, "count", c->faults_all.count);
	json_u64(j, "p50_ns", c->faults_all.p50_ns);
	json_u64(j, "p99_ns", c->faults_all.p99_ns);
	json_close(j, '}');
	json_close(j, '}');
}

/* @regions: this client's run of c->n_regions. */
static void json_client(struct json *j, const struct uzp_status_client *c,
			const struct uzp_status_region *regions)
{
	json_open(j, NULL, '{');
	json_u64(j, "id", c->id);
	json_u64(j, "pid", c->pid);
	json_u64(j, "uid", c->uid);
	json_str(j, "comm", c->comm);
	json_u64(j, "n_regions", c->n_regions);
	json_u64(j, "budget_bytes", c->budget_bytes);
	json_u64(j, "budget_set", c->budget_set);
	json_u64(j, "managed_pages", c->managed_pages);
	json_u64(j, "resident_pages", c->resident_pages);
	json_u64(j, "same_pages", c->same_pages);
	json_u64(j, "pool_pages", c->pool_pages);
	json_u64(j, "file_pages", c->file_pages);
	json_u64(j, "pool_bytes", c->pool_bytes);
	json_faults(j, c);
	json_u64(j, "faults_raced", c->faults_raced);
	json_u64(j, "readahead", c->readahead);
	json_u64(j, "refaults_hot", c->refaults_hot);
	json_u64(j, "sampled", c->sampled);
	json_u64(j, "sampled_touched", c->sampled_touched);
	json_u64(j, "sampled_idle", c->sampled_idle);
	json_u64(j, "sample_share_centi", c->sample_share_centi);
	json_u64(j, "evicted_same", c->evicted_same);
	json_u64(j, "evicted_pool", c->evicted_pool);
	json_u64(j, "rejected_pool_full", c->rejected_pool_full);
	json_u64(j, "rejected_busy", c->rejected_busy);
	json_u64(j, "rejected_error", c->rejected_error);
	json_u64(j, "poisoned", c->poisoned);
	json_u64(j, "written_back", c->written_back);
	json_u64(j, "file_bytes", c->file_bytes);
	json_u64(j, "anon_rss_bytes", c->anon_rss_bytes);
	json_u64(j, "coverage_permille", coverage_permille(c));
	json_open(j, "regions", '[');
	for (uint32_t r = 0; r < c->n_regions; r++)
		json_region(j, &regions[r]);
	json_close(j, ']');
	json_close(j, '}');
}

int uzctl_print_json(FILE *f, const struct uzctl_status_view *v)
{
	struct json j = { .f = f };
	const struct uzp_status_region *regions = v->regions;

	json_open(&j, NULL, '{');
	json_daemon(&j, v->st);
	json_open(&j, "clients", '[');
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		json_client(&j, &v->clients[i], regions);
		regions += v->clients[i].n_regions;
	}
	json_close(&j, ']');
	json_close(&j, '}');
	fputc('\n', f);
	return flush_status(f);
}

/* ---- clients: one row each ---- */

size_t uzctl_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	return utf8_next(s, n, cp);
}

const char *uzctl_size_str(char *buf, uint64_t bytes)
{
	return size_str(buf, bytes);
}

static uint64_t evicted_pages(const struct uzp_status_client *c)
{
	return c->same_pages + c->pool_pages + c->file_pages;
}

#define CLIENTS_COLS "%7s %10s %-15s %9s %8s %8s %8s %8s %8s %9s %7s\n"

int uzctl_print_clients_table(FILE *f, const struct uzctl_status_view *v)
{
	char a[9][NUM_BUF];

	if (!v->st->n_clients) {
		fprintf(f, "no clients\n");
		return flush_status(f);
	}
	fprintf(f, CLIENTS_COLS, "PID", "UID", "COMM", "BUDGET", "MANAGED", "RESIDENT", "EVICTED",
		"POOL", "FILE", "FAULTS", "p99");
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];
		const struct uzp_fault_lat *l = &c->faults_all;

		fprintf(f, "%7" PRIu32 " %10" PRIu32 " ", c->pid, c->uid);
		put_name(f, c->comm, COMM_W);
		size_str(a[0], c->budget_bytes);
		/* An admin's budget (uzswapctl set) is marked: a reload leaves it. */
		if (c->budget_set)
			strcat(a[0], "*");
		fprintf(f, " %9s %8s %8s %8s %8s %8s %9s %7s\n", a[0],
			pages_str(a[1], c->managed_pages), pages_str(a[2], c->resident_pages),
			pages_str(a[3], evicted_pages(c)), size_str(a[4], c->pool_bytes),
			size_str(a[5], c->file_bytes), count_str(a[6], l->count, 9),
			lat_str(a[7], l->count, l->p99_ns));
	}
	fprintf(f, "(POOL, FILE: compressed bytes; p99: fault latency in µs; *: a budget set "
		   "with uzswapctl set)\n");
	return flush_status(f);
}

int uzctl_print_clients_json(FILE *f, const struct uzctl_status_view *v)
{
	struct json j = { .f = f };

	json_open(&j, NULL, '{');
	json_open(&j, "clients", '[');
	for (uint32_t i = 0; i < v->st->n_clients; i++) {
		const struct uzp_status_client *c = &v->clients[i];

		json_open(&j, NULL, '{');
		json_u64(&j, "id", c->id);
		json_u64(&j, "pid", c->pid);
		json_u64(&j, "uid", c->uid);
		json_str(&j, "comm", c->comm);
		json_u64(&j, "budget_bytes", c->budget_bytes);
		json_u64(&j, "budget_set", c->budget_set);
		json_u64(&j, "managed_bytes", c->managed_pages * UZCTL_PAGE_SIZE);
		json_u64(&j, "resident_bytes", c->resident_pages * UZCTL_PAGE_SIZE);
		json_u64(&j, "evicted_bytes", evicted_pages(c) * UZCTL_PAGE_SIZE);
		json_u64(&j, "pool_bytes", c->pool_bytes);
		json_u64(&j, "file_bytes", c->file_bytes);
		json_u64(&j, "faults", c->faults_all.count);
		json_u64(&j, "fault_p50_ns", c->faults_all.p50_ns);
		json_u64(&j, "fault_p99_ns", c->faults_all.p99_ns);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_close(&j, '}');
	fputc('\n', f);
	return flush_status(f);
}

/* ---- the regions of one process ---- */

/* Does any client of the view have @pid? */
static bool has_pid(const struct uzctl_status_view *v, uint32_t pid)
{
	for (uint32_t i = 0; i < v->st->n_clients; i++)
		if (v->clients[i].pid == pid)
			return true;
	return false;
}

int uzctl_print_regions_table(FILE *f, const struct uzctl_status_view *v, uint32_t pid)
{
	const struct uzp_status_region *g = v->regions;
	char a[8][NUM_BUF];

	if (!has_pid(v, pid))
		return -ESRCH;
	fprintf(f, REGION_COLS, "CLIENT", "REGION", "ADDR", "SIZE", "RESIDENT", "SAME", "POOL",
		"FILE", "NAME");
	for (uint32_t i = 0; i < v->st->n_clients; g += v->clients[i++].n_regions) {
		if (v->clients[i].pid != pid)
			continue;
		for (uint32_t r = 0; r < v->clients[i].n_regions; r++) {
			snprintf(a[2], NUM_BUF, "0x%012" PRIx64, g[r].addr);
			fprintf(f, "%6" PRIu32 " %6" PRIu32 " %16s %8s %8s %8s %8s %8s ",
				g[r].client_id, g[r].region_id, a[2], size_str(a[3], g[r].length),
				pages_str(a[4], g[r].resident_pages),
				pages_str(a[5], g[r].same_pages), pages_str(a[6], g[r].pool_pages),
				pages_str(a[7], g[r].file_pages));
			put_name(f, g[r].name, 0);
			fputc('\n', f);
		}
	}
	return flush_status(f);
}

int uzctl_print_regions_json(FILE *f, const struct uzctl_status_view *v, uint32_t pid)
{
	const struct uzp_status_region *g = v->regions;
	struct json j = { .f = f };

	if (!has_pid(v, pid))
		return -ESRCH;
	json_open(&j, NULL, '{');
	json_u64(&j, "pid", pid);
	json_open(&j, "regions", '[');
	for (uint32_t i = 0; i < v->st->n_clients; g += v->clients[i++].n_regions)
		for (uint32_t r = 0; v->clients[i].pid == pid && r < v->clients[i].n_regions; r++)
			json_region(&j, &g[r]);
	json_close(&j, ']');
	json_close(&j, '}');
	fputc('\n', f);
	return flush_status(f);
}

/* ---- the pool's classes ---- */

static int check_class(const struct uzctl_classes_view *v, uint32_t i, char *err, size_t errlen)
{
	const struct uzp_class *c = &v->classes[i];

	if (c->objs_used > c->objs_allocated || c->pages_freeable > c->pages_used)
		return bad(err, errlen,
			   "class %" PRIu32 ": %" PRIu64 " of %" PRIu64 " objects used, %" PRIu64
			   " of %" PRIu64 " pages freeable",
			   c->index, c->objs_used, c->objs_allocated, c->pages_freeable,
			   c->pages_used);
	if (v->hdr->kind == UZP_CLASSES_SIZE && i && c->size <= v->classes[i - 1].size)
		return bad(err, errlen,
			   "class %" PRIu32 " (%" PRIu32 " bytes) is not larger than the "
			   "one before it",
			   c->index, c->size);
	if (v->hdr->kind == UZP_CLASSES_FILL && (c->size || c->pages_per_zspage != 1))
		return bad(err, errlen, "fill class %" PRIu32 " has a size or a multi-page unit",
			   c->index);
	return 0;
}

int uzctl_classes_parse(const void *buf, size_t len, struct uzctl_classes_view *v, char *err,
			size_t errlen)
{
	const struct uzp_classes *h = buf;
	uint64_t want;

	if ((uintptr_t)buf % 8) {
		bad(err, errlen, "classes buffer is not 8-byte aligned");
		return -EINVAL;
	}
	if (len < sizeof(*h))
		return bad(err, errlen, "truncated classes: %zu bytes, the header alone is %zu",
			   len, sizeof(*h));
	if (h->magic != UZP_MAGIC || h->version != UZP_VERSION)
		return bad(err, errlen,
			   "not uzswapd classes of version %d: magic 0x%08" PRIx32
			   " version %" PRIu32,
			   UZP_VERSION, h->magic, h->version);
	want = sizeof(*h) + (uint64_t)h->n_classes * sizeof(struct uzp_class);
	if (len != want)
		return bad(err, errlen,
			   "%s classes: %zu bytes, but %" PRIu32 " classes take %" PRIu64,
			   len < want ? "truncated" : "oversized", len, h->n_classes, want);
	if (h->kind != UZP_CLASSES_SIZE && h->kind != UZP_CLASSES_FILL)
		return bad(err, errlen, "unknown kind of classes %" PRIu32, h->kind);
	if (!terminated(h->allocator, sizeof(h->allocator)))
		return bad(err, errlen, "allocator name is not NUL-terminated");
	v->hdr = h;
	v->classes = (const struct uzp_class *)(h + 1);
	for (uint32_t i = 0; i < h->n_classes; i++)
		if (check_class(v, i, err, errlen))
			return -EBADMSG;
	return 0;
}

/* A FILL class's name: "headless" for index 0 (one page-sized object), else the count. */
static const char *fill_name(char *buf, uint32_t index)
{
	if (index == 0)
		snprintf(buf, NUM_BUF, "headless");
	else
		snprintf(buf, NUM_BUF, "%" PRIu32, index);
	return buf;
}

static void print_size_classes(FILE *f, const struct uzctl_classes_view *v)
{
	uint32_t shown = 0;
	char a[4][NUM_BUF];

	fprintf(f, "%5s %6s %10s %10s %8s %12s %9s\n", "CLASS", "SIZE", "OBJ-ALLOC", "OBJ-USED",
		"PAGES", "PAGES/ZSPAGE", "FREEABLE");
	for (uint32_t i = 0; i < v->hdr->n_classes; i++) {
		const struct uzp_class *c = &v->classes[i];

		if (!c->objs_allocated && !c->pages_used)
			continue;
		shown++;
		fprintf(f, "%5" PRIu32 " %6" PRIu32 " %10s %10s %8s %12" PRIu32 " %9s\n", c->index,
			c->size, count_str(a[0], c->objs_allocated, 10),
			count_str(a[1], c->objs_used, 10), count_str(a[2], c->pages_used, 8),
			c->pages_per_zspage, count_str(a[3], c->pages_freeable, 9));
	}
	fprintf(f, "(%" PRIu32 " of %" PRIu32 " classes hold pages; --json lists them all)\n",
		shown, v->hdr->n_classes);
}

static void print_fill_classes(FILE *f, const struct uzctl_classes_view *v)
{
	char a[5][NUM_BUF];

	fprintf(f, "%12s %8s %10s %10s\n", "OBJECTS/PAGE", "PAGES", "OBJECTS", "SLOTS");
	for (uint32_t i = 0; i < v->hdr->n_classes; i++) {
		const struct uzp_class *c = &v->classes[i];

		fprintf(f, "%12s %8s %10s %10s\n", fill_name(a[0], c->index),
			count_str(a[1], c->pages_used, 8), count_str(a[2], c->objs_used, 10),
			count_str(a[3], c->objs_allocated, 10));
	}
	fprintf(f, "(pages grouped by the objects each holds; none can be freed by compaction)\n");
}

int uzctl_print_classes_table(FILE *f, const struct uzctl_classes_view *v)
{
	fprintf(f, "allocator ");
	put_name(f, v->hdr->allocator, 0);
	fprintf(f, ": %s\n",
		v->hdr->kind == UZP_CLASSES_SIZE ? "size classes" : "pages by objects held");
	if (v->hdr->kind == UZP_CLASSES_SIZE)
		print_size_classes(f, v);
	else
		print_fill_classes(f, v);
	return flush_status(f);
}

int uzctl_print_classes_json(FILE *f, const struct uzctl_classes_view *v)
{
	struct json j = { .f = f };
	char a[NUM_BUF];

	json_open(&j, NULL, '{');
	json_str(&j, "allocator", v->hdr->allocator);
	json_str(&j, "kind", v->hdr->kind == UZP_CLASSES_SIZE ? "size" : "fill");
	json_open(&j, "classes", '[');
	for (uint32_t i = 0; i < v->hdr->n_classes; i++) {
		const struct uzp_class *c = &v->classes[i];

		json_open(&j, NULL, '{');
		json_u64(&j, "index", c->index);
		if (v->hdr->kind == UZP_CLASSES_SIZE) {
			json_u64(&j, "size", c->size);
			json_u64(&j, "pages_per_zspage", c->pages_per_zspage);
		} else {
			json_str(&j, "objects_per_page", fill_name(a, c->index));
		}
		json_u64(&j, "objs_allocated", c->objs_allocated);
		json_u64(&j, "objs_used", c->objs_used);
		json_u64(&j, "pages_used", c->pages_used);
		json_u64(&j, "pages_freeable", c->pages_freeable);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_close(&j, '}');
	fputc('\n', f);
	return flush_status(f);
}
