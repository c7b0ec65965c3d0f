/* SPDX-License-Identifier: MIT */
/*
 * tools/ctl_metrics.c - the status as Prometheus text (see ctl_metrics.h).
 *
 * Most families are rows of two tables, daemon_families[] (fields of
 * struct uzp_status) and client_families[] (fields of struct
 * uzp_status_client, one series per client): a name, a type, a help text
 * and up to eight samples, each a constant label set (NULL: none), where
 * its value is in the struct and how it is scaled to the family's unit.
 * The few families whose labels come from the data (the allocator and the
 * codec, the pool's classes) are written by their own functions.  So a
 * field is exported by adding a row, and every row gets its HELP and TYPE
 * by construction.
 *
 * Values are integers, or exact decimals for the scaled ones (ns and ms to
 * seconds, hundredths of a percent to a ratio): no float formatting, so a
 * value reads back as exactly what the daemon counted.
 *
 * Nothing here allocates; a write error is reported, never ignored.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tools/ctl_metrics.h"

enum mtype {
	COUNTER,
	GAUGE,
};

/* How a field becomes the family's unit. */
enum scale {
	AS_IS,
	PAGES,	    /* pages -> bytes */
	FROM_MS,    /* ms -> seconds */
	FROM_NS,    /* ns -> seconds */
	FROM_CENTI, /* hundredths of a percent -> a ratio (0..1) */
	IS_ONE	    /* 1 when the field is 1, else 0 (status's writeback: 2 is "off") */
};

struct msample {
	const char *labels; /* e.g. "kind=\"zero\""; NULL: none but the client's */
	size_t off, size;   /* the field, in the family's struct */
	enum scale scale;
};

#define MAX_SAMPLES 10

struct mfamily {
	const char *name;
	enum mtype type;
	const char *help;
	struct msample s[MAX_SAMPLES];
};

#define DS(st, fld, lab, sc)                                                        \
	{                                                                           \
		lab, offsetof(struct st, fld), sizeof(((struct st *)NULL)->fld), sc \
	}
#define D(fld, sc) DS(uzp_status, fld, NULL, sc)
#define DL(fld, lab, sc) DS(uzp_status, fld, lab, sc)
#define C(fld, sc) DS(uzp_status_client, fld, NULL, sc)
#define CL(fld, lab, sc) DS(uzp_status_client, fld, lab, sc)

static const struct mfamily daemon_families[] = {
	{ "uzswap_uptime_seconds",
	  GAUGE,
	  "Time since uzswapd started.",
	  { D(uptime_ms, FROM_MS) } },
	{ "uzswap_fault_threads",
	  GAUGE,
	  "Threads serving page faults.",
	  { D(fault_threads, AS_IS) } },
	{ "uzswap_clients",
	  GAUGE,
	  "Clients connected with a userfaultfd (visible to this user).",
	  { D(n_clients, AS_IS) } },
	{ "uzswap_regions", GAUGE, "Managed regions of those clients.", { D(n_regions, AS_IS) } },
	{ "uzswap_max_resident_bytes",
	  GAUGE,
	  "The global resident budget: all managed memory resident at most.",
	  { D(max_resident, AS_IS) } },
	{ "uzswap_pool_max_bytes",
	  GAUGE,
	  "The compressed pool's limit ([pool] max_size).",
	  { D(pool_max_bytes, AS_IS) } },
	{ "uzswap_pool_bytes",
	  GAUGE,
	  "Pool pages held by the compressed pool.",
	  { D(pool_total_bytes, AS_IS) } },
	{ "uzswap_pool_compressed_bytes",
	  GAUGE,
	  "Bytes of the live objects in the pool.",
	  { D(pool_compressed_bytes, AS_IS) } },
	{ "uzswap_pool_stored_pages",
	  GAUGE,
	  "Pages the pool's objects hold.",
	  { D(pool_stored_pages, AS_IS) } },
	{ "uzswap_pool_meta_bytes",
	  GAUGE,
	  "The pool's own tables beside its pages.",
	  { D(pool_meta_bytes, AS_IS) } },
	{ "uzswap_mem_available_bytes",
	  GAUGE,
	  "MemAvailable as reclaim last read it (0: unknown).",
	  { D(mem_available, AS_IS) } },
	{ "uzswap_memory_pressure_some_avg10_ratio",
	  GAUGE,
	  "Memory PSI some avg10 as reclaim last read it, as a ratio.",
	  { D(psi_some_avg10_centi, FROM_CENTI) } },
	{ "uzswap_pressure_rounds_total",
	  COUNTER,
	  "Reclaim rounds driven by memory pressure.",
	  { D(pressure_rounds, AS_IS) } },
	{ "uzswap_clients_accepted_total",
	  COUNTER,
	  "Clients accepted since start.",
	  { D(clients_accepted, AS_IS) } },
	{ "uzswap_clients_refused_total",
	  COUNTER,
	  "Connections refused by policy or limits.",
	  { D(clients_refused, AS_IS) } },
	{ "uzswap_clients_dropped_total",
	  COUNTER,
	  "Connections dropped for protocol errors.",
	  { D(clients_dropped, AS_IS) } },
	{ "uzswap_protocol_errors_total",
	  COUNTER,
	  "Requests refused as malformed or not allowed.",
	  { D(protocol_errors, AS_IS) } },
	{ "uzswap_quota_refusals_total",
	  COUNTER,
	  "Connections, clients and registrations refused for a quota.",
	  { D(quota_refusals, AS_IS) } },
	{ "uzswap_writeback_enabled",
	  GAUGE,
	  "1 when the backing-file tier writes back.",
	  { D(writeback, AS_IS) } },
	{ "uzswap_pool_closed",
	  GAUGE,
	  "1 while the pool is full and refuses stores until below its accept threshold.",
	  { D(pool_closed, AS_IS) } },
	{ "uzswap_pool_accept_bytes",
	  GAUGE,
	  "Once full, the pool takes stores again below this.",
	  { D(pool_accept_bytes, AS_IS) } },
	{ "uzswap_pool_full_events_total",
	  COUNTER,
	  "Times the pool reached its limit.",
	  { D(pool_full_events, AS_IS) } },
	{ "uzswap_writeback_objects_total",
	  COUNTER,
	  "Pool objects written to the backing file.",
	  { D(wb_written_pages, AS_IS) } },
	{ "uzswap_writeback_bytes_total",
	  COUNTER,
	  "Compressed bytes written to the backing file.",
	  { D(wb_written_bytes, AS_IS) } },
	{ "uzswap_writeback_rejected_total",
	  COUNTER,
	  "Objects writeback left in the pool, by reason.",
	  { DL(wb_rejected_file_full, "reason=\"file_full\"", AS_IS),
	    DL(wb_rejected_write_error, "reason=\"write_error\"", AS_IS),
	    DL(wb_rejected_raced, "reason=\"raced\"", AS_IS),
	    DL(wb_rejected_owner_gone, "reason=\"owner_gone\"", AS_IS) } },
	{ "uzswap_writeback_put_back_total",
	  COUNTER,
	  "Objects written, then put back into the pool because the write failed.",
	  { D(wb_put_back, AS_IS) } },
	{ "uzswap_writeback_busy_seconds_total",
	  COUNTER,
	  "Time the writeback thread spent writing back.",
	  { D(wb_busy_ns, FROM_NS) } },
	{ "uzswap_backing_file_clean_seconds_total",
	  COUNTER,
	  "Time the writeback thread spent compacting the backing file.",
	  { D(wb_clean_ns, FROM_NS) } },
	{ "uzswap_backing_file_max_bytes",
	  GAUGE,
	  "The backing file's limit ([backing] max_size).",
	  { D(file_max_bytes, AS_IS) } },
	{ "uzswap_backing_file_size_bytes",
	  GAUGE,
	  "The backing file's length.",
	  { D(file_size_bytes, AS_IS) } },
	{ "uzswap_backing_file_disk_bytes",
	  GAUGE,
	  "Blocks the backing file holds on disk.",
	  { D(file_disk_bytes, AS_IS) } },
	{ "uzswap_backing_file_live_bytes",
	  GAUGE,
	  "Live records in the file, headers included.",
	  { D(file_live_bytes, AS_IS) } },
	{ "uzswap_backing_file_stored_bytes",
	  GAUGE,
	  "Compressed bytes the file's records hold.",
	  { D(file_stored_bytes, AS_IS) } },
	{ "uzswap_backing_file_records",
	  GAUGE,
	  "Live records (pages) in the backing file.",
	  { D(file_records, AS_IS) } },
	{ "uzswap_backing_file_reads_total",
	  COUNTER,
	  "Records read back from the backing file.",
	  { D(file_reads, AS_IS) } },
	{ "uzswap_backing_file_staged_reads_total",
	  COUNTER,
	  "Of those, served from memory while their write was in flight.",
	  { D(file_reads_staged, AS_IS) } },
	{ "uzswap_backing_file_restore_latency_seconds",
	  GAUGE,
	  "Fault latency of restores from the backing file, by quantile.",
	  { DL(file_restore_p50_ns, "quantile=\"0.5\"", FROM_NS),
	    DL(file_restore_p99_ns, "quantile=\"0.99\"", FROM_NS) } },
	{ "uzswap_backing_file_write_errors_total",
	  COUNTER,
	  "Writes to the backing file that failed or stopped short, by error.",
	  { DL(file_write_enospc, "error=\"no_space\"", AS_IS),
	    DL(file_write_eio, "error=\"failed\"", AS_IS),
	    DL(file_short_writes, "error=\"short\"", AS_IS) } },
	{ "uzswap_backing_file_read_errors_total",
	  COUNTER,
	  "Reads from the backing file that lost their page (poisoned), by error.",
	  { DL(file_read_errors, "error=\"failed\"", AS_IS),
	    DL(file_short_reads, "error=\"short\"", AS_IS),
	    DL(file_bad_records, "error=\"corrupt\"", AS_IS) } },
	{ "uzswap_backing_file_punched_blocks_total",
	  COUNTER,
	  "Blocks of the backing file given back to the file system.",
	  { D(file_punched_blocks, AS_IS) } },
	{ "uzswap_backing_file_cleaned_segments_total",
	  COUNTER,
	  "Segments of the backing file compacted.",
	  { D(file_cleaned_segments, AS_IS) } },
	{ "uzswap_backing_file_cleaned_records_total",
	  COUNTER,
	  "Records moved by compaction.",
	  { D(file_cleaned_records, AS_IS) } },
};

#define LAT(kind, fld)                                                 \
	CL(fld.p50_ns, "kind=\"" kind "\",quantile=\"0.5\"", FROM_NS), \
		CL(fld.p99_ns, "kind=\"" kind "\",quantile=\"0.99\"", FROM_NS)

static const struct mfamily client_families[] = {
	{ "uzswap_client_budget_bytes",
	  GAUGE,
	  "The client's resident budget.",
	  { C(budget_bytes, AS_IS) } },
	{ "uzswap_client_regions",
	  GAUGE,
	  "The client's managed regions.",
	  { C(n_regions, AS_IS) } },
	{ "uzswap_client_managed_bytes",
	  GAUGE,
	  "The client's managed memory.",
	  { C(managed_pages, PAGES) } },
	{ "uzswap_client_memory_bytes",
	  GAUGE,
	  "The client's managed memory by where its pages are.",
	  { CL(resident_pages, "state=\"resident\"", PAGES),
	    CL(same_pages, "state=\"same_filled\"", PAGES), CL(pool_pages, "state=\"pool\"", PAGES),
	    CL(file_pages, "state=\"file\"", PAGES) } },
	{ "uzswap_client_pool_compressed_bytes",
	  GAUGE,
	  "Compressed bytes of the client's pages in the pool.",
	  { C(pool_bytes, AS_IS) } },
	{ "uzswap_client_file_compressed_bytes",
	  GAUGE,
	  "Compressed bytes of the client's pages in the backing file.",
	  { C(file_bytes, AS_IS) } },
	{ "uzswap_client_faults_total",
	  COUNTER,
	  "Faults served, by what was restored.",
	  { CL(faults[UZP_FAULT_ZERO].count, "kind=\"zero\"", AS_IS),
	    CL(faults[UZP_FAULT_SAME].count, "kind=\"same_filled\"", AS_IS),
	    CL(faults[UZP_FAULT_POOL].count, "kind=\"pool\"", AS_IS),
	    CL(faults_file.count, "kind=\"file\"", AS_IS) } },
	{ "uzswap_client_fault_latency_seconds",
	  GAUGE,
	  "Fault latency, from reading a fault to waking its thread, by kind and quantile.",
	  { LAT("all", faults_all), LAT("zero", faults[UZP_FAULT_ZERO]),
	    LAT("same_filled", faults[UZP_FAULT_SAME]), LAT("pool", faults[UZP_FAULT_POOL]),
	    LAT("file", faults_file) } },
	{ "uzswap_client_faults_raced_total",
	  COUNTER,
	  "Faults on pages already there when served (another thread restored them).",
	  { C(faults_raced, AS_IS) } },
	{ "uzswap_client_readahead_pages_total",
	  COUNTER,
	  "Pages filled ahead of a fault that came in order.",
	  { C(readahead, AS_IS) } },
	{ "uzswap_client_hot_refaults_total",
	  COUNTER,
	  "Restored pages found hot (a short refault distance).",
	  { C(refaults_hot, AS_IS) } },
	{ "uzswap_client_sampled_pages_total",
	  COUNTER,
	  "Resident pages unmapped to see whether they are touched.",
	  { C(sampled, AS_IS) } },
	{ "uzswap_client_sampled_touched_total",
	  COUNTER,
	  "Sampled pages found touched, and protected.",
	  { C(sampled_touched, AS_IS) } },
	{ "uzswap_client_sampled_idle_total",
	  COUNTER,
	  "Sampled pages found untouched, and offered to eviction.",
	  { C(sampled_idle, AS_IS) } },
	{ "uzswap_client_sample_share_ratio",
	  GAUGE,
	  "The share of its victim batches access sampling judges (0: not sampled).",
	  { C(sample_share_centi, FROM_CENTI) } },
	{ "uzswap_client_evictions_total",
	  COUNTER,
	  "Pages evicted, by where they went.",
	  { CL(evicted_same, "to=\"same_filled\"", AS_IS),
	    CL(evicted_pool, "to=\"pool\"", AS_IS) } },
	{ "uzswap_client_eviction_rejections_total",
	  COUNTER,
	  "Evictions refused or skipped, by reason.",
	  { CL(rejected_pool_full, "reason=\"pool_full\"", AS_IS),
	    CL(rejected_busy, "reason=\"busy\"", AS_IS),
	    CL(rejected_error, "reason=\"error\"", AS_IS) } },
	{ "uzswap_client_poisoned_pages_total",
	  COUNTER,
	  "Pages poisoned: corrupt, unreadable or unmanaged.",
	  { C(poisoned, AS_IS) } },
	{ "uzswap_client_written_back_total",
	  COUNTER,
	  "The client's pool objects written to the backing file.",
	  { C(written_back, AS_IS) } },
};

/* ---- the format ---- */

static const char *const type_names[] = { [COUNTER] = "counter", [GAUGE] = "gauge" };

/* HELP text: backslash and line feed escaped. */
static void put_help(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void put_header(FILE *f, const char *name, enum mtype type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	put_help(f, help);
	fprintf(f, "\n# TYPE %s %s\n", name, type_names[type]);
}

/* A label value, quoted: \, " and line feed escaped, what is not UTF-8 made U+FFFD. */
static void put_label_value(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	fputc('"', f);
	while (n) {
		uint32_t cp;
		size_t k = uzctl_utf8_next(p, n, &cp);

		if (!k)
			fputs("\xef\xbf\xbd", f);
		else if (cp == '\\')
			fputs("\\\\", f);
		else if (cp == '"')
			fputs("\\\"", f);
		else if (cp == '\n')
			fputs("\\n", f);
		else
			fwrite(p, 1, k, f);
		k = k ? k : 1;
		p += k, n -= k;
	}
	fputc('"', f);
}

static uint64_t field_u64(const void *base, const struct msample *s)
{
	const unsigned char *p = (const unsigned char *)base + s->off;
	uint32_t v32;
	uint64_t v64;

	if (s->size == sizeof(v32)) {
		memcpy(&v32, p, sizeof(v32));
		return v32;
	}
	memcpy(&v64, p, sizeof(v64));
	return v64;
}

static void put_value(FILE *f, uint64_t v, enum scale scale)
{
	switch (scale) {
	case AS_IS:
		fprintf(f, "%" PRIu64, v);
		break;
	case PAGES:
		/* Saturate rather than wrap: 2^52 pages is beyond any machine. */
		fprintf(f, "%" PRIu64,
			v > UINT64_MAX / UZCTL_PAGE_SIZE ? UINT64_MAX : v * UZCTL_PAGE_SIZE);
		break;
	case FROM_MS:
		fprintf(f, "%" PRIu64 ".%03" PRIu64, v / 1000, v % 1000);
		break;
	case FROM_NS:
		fprintf(f, "%" PRIu64 ".%09" PRIu64, v / 1000000000u, v % 1000000000u);
		break;
	case FROM_CENTI:
		fprintf(f, "%" PRIu64 ".%04" PRIu64, v / 10000, v % 10000);
		break;
	case IS_ONE:
		fputc(v == 1 ? '1' : '0', f);
		break;
	}
}

/* One sample: name, the client's labels (may be NULL) and the sample's own, value. */
static void put_sample(FILE *f, const char *name, const struct uzp_status_client *c,
		       const struct msample *s, const void *base)
{
	fputs(name, f);
	if (c || s->labels) {
		fputc('{', f);
		if (c) {
			fprintf(f,
				"client=\"%" PRIu32 "\",pid=\"%" PRIu32 "\",uid=\"%" PRIu32
				"\",comm=",
				c->id, c->pid, c->uid);
			put_label_value(f, c->comm);
		}
		if (s->labels)
			fprintf(f, "%s%s", c ? "," : "", s->labels);
		fputc('}', f);
	}
	fputc(' ', f);
	put_value(f, field_u64(base, s), s->scale);
	fputc('\n', f);
}

static size_t n_samples(const struct mfamily *m)
{
	size_t n = 0;

	while (n < MAX_SAMPLES && m->s[n].size)
		n++;
	return n;
}

static void put_daemon(FILE *f, const struct uzp_status *st)
{
	for (size_t i = 0; i < sizeof(daemon_families) / sizeof(daemon_families[0]); i++) {
		const struct mfamily *m = &daemon_families[i];

		put_header(f, m->name, m->type, m->help);
		for (size_t k = 0; k < n_samples(m); k++)
			put_sample(f, m->name, NULL, &m->s[k], st);
	}
}

static void put_clients(FILE *f, const struct uzctl_status_view *v)
{
	for (size_t i = 0; i < sizeof(client_families) / sizeof(client_families[0]); i++) {
		const struct mfamily *m = &client_families[i];

		put_header(f, m->name, m->type, m->help);
		for (uint32_t c = 0; c < v->st->n_clients; c++)
			for (size_t k = 0; k < n_samples(m); k++)
				put_sample(f, m->name, &v->clients[c], &m->s[k], &v->clients[c]);
	}
}

/* The labels come from the data: the allocator's and the codec's names. */
static void put_info(FILE *f, const struct uzp_status *st)
{
	put_header(f, "uzswap_info", GAUGE,
		   "Constant 1, labelled with the pool allocator and the codec of new evictions.");
	fputs("uzswap_info{allocator=", f);
	put_label_value(f, st->allocator);
	fputs(",codec=", f);
	put_label_value(f, st->codec);
	fprintf(f, ",level=\"%" PRId32 "\"} 1\n", st->codec_level);
}

/* ---- the pool's classes ---- */

struct class_family {
	const char *name, *help;
	size_t off;
	bool size_only; /* freeable: only size classes can be compacted */
};

static const struct class_family class_families[] = {
	{ "uzswap_pool_class_objects_allocated", "Object slots in the class's pool pages.",
	  offsetof(struct uzp_class, objs_allocated), false },
	{ "uzswap_pool_class_objects_used", "Live objects in the class.",
	  offsetof(struct uzp_class, objs_used), false },
	{ "uzswap_pool_class_pages", "Pool pages of the class.",
	  offsetof(struct uzp_class, pages_used), false },
	{ "uzswap_pool_class_freeable_pages", "Pool pages compaction could free in the class now.",
	  offsetof(struct uzp_class, pages_freeable), true },
};

static void put_class_labels(FILE *f, const struct uzctl_classes_view *cv,
			     const struct uzp_class *c)
{
	fputs("{allocator=", f);
	put_label_value(f, cv->hdr->allocator);
	if (cv->hdr->kind == UZP_CLASSES_SIZE)
		fprintf(f, ",class=\"%" PRIu32 "\",size=\"%" PRIu32 "\"}", c->index, c->size);
	else if (c->index == 0)
		fputs(",objects_per_page=\"headless\"}", f);
	else
		fprintf(f, ",objects_per_page=\"%" PRIu32 "\"}", c->index);
}

/* Size classes with no page are left out (zsmalloc has 255); fill classes are few: all. */
static void put_classes(FILE *f, const struct uzctl_classes_view *cv)
{
	bool sized = cv->hdr->kind == UZP_CLASSES_SIZE;

	for (size_t i = 0; i < sizeof(class_families) / sizeof(class_families[0]); i++) {
		const struct class_family *m = &class_families[i];

		if (m->size_only && !sized)
			continue;
		put_header(f, m->name, GAUGE, m->help);
		for (uint32_t k = 0; k < cv->hdr->n_classes; k++) {
			const struct uzp_class *c = &cv->classes[k];
			uint64_t v;

			if (sized && !c->objs_allocated && !c->pages_used)
				continue;
			memcpy(&v, (const unsigned char *)c + m->off, sizeof(v));
			fputs(m->name, f);
			put_class_labels(f, cv, c);
			fprintf(f, " %" PRIu64 "\n", v);
		}
	}
}

int uzctl_print_metrics(FILE *f, const struct uzctl_status_view *v,
			const struct uzctl_classes_view *cv)
{
	put_info(f, v->st);
	put_daemon(f, v->st);
	put_clients(f, v);
	if (cv)
		put_classes(f, cv);
	if (fflush(f))
		return -errno;
	return ferror(f) ? -EIO : 0;
}
