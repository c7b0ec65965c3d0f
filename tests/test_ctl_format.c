/* SPDX-License-Identifier: MIT */
/*
 * tests/test_ctl_format.c - uzswapctl's formatter on synthetic STATUS
 * buffers: the tables show the numbers and the derived ratio, keep their
 * columns aligned even for huge counters, and defang client-chosen names;
 * the JSON is one valid object that escapes those names; a truncated or
 * inconsistent buffer is refused with a message saying why.
 *
 * The other read commands: clients (one aligned row per client, its
 * budget marked when an admin set it), regions PID (that process's only,
 * or -ESRCH), classes (a CLASSES buffer, size or fill classes, checked as
 * strictly), and metrics, which tests/promcheck.c holds to the Prometheus
 * text format (HELP and TYPE, name rules, label escaping, one group per
 * family, no duplicate series) before its values are compared; the
 * checker itself is shown to refuse each kind of mistake.
 *
 * The buffers are built here, not by the daemon: this tests the
 * formatter's reading of the layout in include/uzswap_proto.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/promcheck.h"
#include "tests/tap.h"
#include "tools/ctl_format.h"
#include "tools/ctl_metrics.h"

/* A comm and a region name as a hostile client might choose them. */
#define EVIL_COMM "a\"b\\c\x01"
#define EVIL_NAME "cache \"hot\" \\ \x1b[31m red"
#define EVIL_NAME_JSON "\"cache \\\"hot\\\" \\\\ \\u001b[31m red\""

struct sample {
	void *buf;
	size_t len;
	struct uzp_status *st;
	struct uzp_status_client *c;
	struct uzp_status_region *r;
};

static void sample_alloc(struct sample *s, uint32_t n_clients, uint32_t n_regions)
{
	s->len = sizeof(*s->st) + n_clients * sizeof(*s->c) + n_regions * sizeof(*s->r);
	/* Room for the oversized case, which appends a few bytes. */
	s->buf = calloc(1, s->len + 64);
	if (!s->buf) {
		perror("calloc");
		exit(1);
	}
	s->st = s->buf;
	s->c = (struct uzp_status_client *)(s->st + 1);
	s->r = (struct uzp_status_region *)(s->c + n_clients);
	s->st->magic = UZP_MAGIC;
	s->st->version = UZP_VERSION;
	s->st->n_clients = n_clients;
	s->st->n_regions = n_regions;
}

/*
 * The daemon: 1000 pages in 1600 KiB of objects (ratio 2.50) in a 2 MiB
 * pool (efficiency 78.1%).  Client 7 (redis-server) holds two regions, one
 * with a hostile name; client 9 has a hostile comm, one region, and
 * counters at their maximum, to stretch every column.
 */
static void sample_full(struct sample *s)
{
	struct uzp_status *st;

	sample_alloc(s, 2, 3);
	st = s->st;
	st->pid = 4211;
	st->fault_threads = 2;
	strcpy(st->allocator, "zsmalloc");
	strcpy(st->codec, "lz4");
	st->codec_level = 1;
	st->uptime_ms = (86400 + 3600 + 2 * 60 + 3) * 1000ULL + 999;
	st->max_resident = 8ULL << 30;
	st->pool_max_bytes = 2ULL << 30;
	st->pool_total_bytes = 2ULL << 20;
	st->pool_compressed_bytes = 1600ULL << 10;
	st->pool_stored_pages = 1000;
	st->pool_meta_bytes = 64ULL << 10;
	st->mem_available = 3ULL << 30;
	st->psi_some_avg10_centi = 12;
	st->pressure_rounds = 3;
	st->clients_accepted = 5;
	st->clients_refused = 1;
	st->clients_dropped = 0;
	st->protocol_errors = 2;

	s->c[0] = (struct uzp_status_client){
		.id = 7,
		.pid = 31337,
		.uid = 1000,
		.n_regions = 2,
		.comm = "redis-server",
		.budget_bytes = 256ULL << 20,
		.managed_pages = 262144,
		.resident_pages = 65536,
		.same_pages = 100,
		.pool_pages = 900,
		.pool_bytes = 1400ULL << 10,
		.faults = { { 500, 2000, 8000 }, { 100, 3000, 9000 }, { 42, 12345, 98765 } },
		.faults_raced = 3,
		.readahead = 17,
		.refaults_hot = 11,
		.evicted_same = 100,
		.evicted_pool = 950,
		.rejected_pool_full = 4,
		.rejected_busy = 5,
		.rejected_error = 6,
		.poisoned = 0,
		.anon_rss_bytes = 66536ULL * 4096,
		.sample_share_centi = 312,
	};
	s->c[1] = (struct uzp_status_client){
		.id = 9,
		.pid = 4194304,
		.uid = 4294967294u,
		.n_regions = 1,
		.comm = EVIL_COMM,
		.budget_bytes = UINT64_MAX,
		.managed_pages = UINT64_MAX,
		.resident_pages = UINT64_MAX,
		.pool_bytes = UINT64_MAX,
		.faults = { { UINT64_MAX, UINT64_MAX, UINT64_MAX }, { 0, 0, 0 }, { 1, 999, 1000 } },
		.faults_raced = UINT64_MAX,
		.readahead = UINT64_MAX,
		.refaults_hot = UINT64_MAX,
		.evicted_same = UINT64_MAX,
		.evicted_pool = UINT64_MAX,
		.rejected_pool_full = UINT64_MAX,
		.rejected_busy = UINT64_MAX,
		.rejected_error = UINT64_MAX,
		.poisoned = UINT64_MAX,
		.sample_share_centi = UINT32_MAX, /* no daemon sends it: still as wide */
	};
	s->r[0] = (struct uzp_status_region){
		.client_id = 7,
		.region_id = 1,
		.name = "keys",
		.addr = 0x7f0000000000ULL,
		.length = 1ULL << 30,
		.resident_pages = 65000,
	};
	s->r[1] = (struct uzp_status_region){
		.client_id = 7,
		.region_id = 2,
		.name = EVIL_NAME,
		.addr = 0x7f0040000000ULL,
		.length = 64ULL << 20,
		.pool_pages = 900,
	};
	s->r[2] = (struct uzp_status_region){
		.client_id = 9,
		.region_id = 1,
		.name = "\xff\xfe not utf-8",
		.addr = 0x10000,
		.length = 4096,
	};
}

/* Print @s with @print into a string (caller frees); NULL when parse or print fails. */
static char *render(struct sample *s, int (*print)(FILE *, const struct uzctl_status_view *))
{
	struct uzctl_status_view v;
	char err[256] = "", *out = NULL;
	size_t outlen = 0;
	FILE *f;
	int r;

	r = uzctl_status_parse(s->buf, s->len, &v, err, sizeof(err));
	if (r < 0) {
		tap_diag("parse refused the sample: %s", err);
		return NULL;
	}
	f = open_memstream(&out, &outlen);
	if (!f)
		return NULL;
	r = print(f, &v);
	fclose(f);
	if (r < 0) {
		free(out);
		return NULL;
	}
	return out;
}

static bool contains(const char *out, const char *what)
{
	if (out && strstr(out, what))
		return true;
	tap_diag("expected to find \"%s\" in:\n%s", what, out ? out : "(no output)");
	return false;
}

/* The lines of the section titled @title, up to the next blank line. */
static bool section_lines_equal_length(const char *out, const char *title)
{
	const char *p = out ? strstr(out, title) : NULL;
	size_t want = 0, rows = 0;

	if (!p)
		return false;
	p = strchr(p, '\n') + 1;
	while (*p && *p != '\n') {
		const char *e = strchr(p, '\n');
		size_t len = (size_t)(e - p);

		if (!want)
			want = len;
		if (len != want) {
			tap_diag("in \"%s\": a line of %zu bytes, the header has %zu:\n%.*s", title,
				 len, want, (int)len, p);
			return false;
		}
		rows++;
		p = e + 1;
	}
	return rows == 3; /* the header and both clients */
}

static void test_table(void)
{
	struct sample s;
	char *out;

	sample_full(&s);
	out = render(&s, uzctl_print_table);
	ok(out != NULL, "the table of a well-formed status prints");
	ok(contains(out, "pid 4211, up 1d 01:02:03"),
	   "the table shows the daemon's pid and uptime");
	ok(contains(out, "zsmalloc") && contains(out, "lz4, level 1"),
	   "the table shows the allocator and the codec with its level");
	ok(contains(out, "1.56 MiB holding 1000 pages"),
	   "the table shows compressed bytes and stored pages");
	ok(contains(out, "compression ratio 2.50\n"),
	   "the compression ratio is stored pages' size over compressed bytes");
	ok(contains(out, "pool efficiency   78.1%\n"),
	   "the pool efficiency is compressed bytes over the pool's size");
	ok(contains(out, "2.00 MiB of 2.00 GiB max"),
	   "the table shows the pool size and its maximum");
	ok(contains(out, "pool tables       64.0 KiB\n"), "the table shows the pool's own tables");
	ok(contains(out, "some avg10 0.12%") && contains(out, "MemAvailable      3.00 GiB"),
	   "the table shows memory pressure and MemAvailable");
	ok(contains(out, "2 connected; 5 accepted, 1 refused, 0 dropped") &&
		   contains(out, "protocol errors   2\n"),
	   "the table shows the client counters and protocol errors");
	ok(contains(out, "redis-server") && contains(out, "  256 MiB 1.00 GiB  256 MiB"),
	   "a client's budget and managed and resident pages are humanised sizes");
	ok(contains(out, "       42    12.3    98.8"),
	   "pool faults show their count and p50 and p99 in microseconds");
	ok(contains(out, "    98.8        3        17\n"),
	   "the faults table ends with raced faults and readahead");
	ok(contains(out, "a\"b\\c? "), "a control byte in a comm is shown as '?'");
	ok(out && !strchr(out, '\x1b') && !strchr(out, '\x01'),
	   "no control byte from a client reaches the terminal");
	ok(contains(out, "0x7f0040000000") && contains(out, "cache \"hot\" \\ ?[31m red"),
	   "a region shows its address and its defanged name");
	ok(contains(out, "     260 MiB        260 MiB     50.0%\n"),
	   "coverage is the managed data's share of the process's anonymous memory");
	ok(contains(out, "  3.1%") && contains(out, "      ?"),
	   "a client's share of evictions judged by sampling is a percentage ('?' past 100%%)");
	ok(section_lines_equal_length(out, "clients: memory") &&
		   section_lines_equal_length(out, "clients: faults") &&
		   section_lines_equal_length(out, "clients: reclaim") &&
		   section_lines_equal_length(out, "clients: coverage"),
	   "every client row is as wide as its header, even with counters at UINT64_MAX");
	free(out);
	free(s.buf);
}

/*
 * A strict checker of JSON text (RFC 8259, no extensions): enough to say
 * that what the formatter printed is one value a parser will take.
 */
static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_number(const char *p)
{
	const char *start;

	if (*p == '-')
		p++;
	start = p;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == start || (*start == '0' && p - start > 1))
		return NULL;
	if (*p == '.') {
		start = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	return p;
}

static const char *json_members(const char *p, char close, bool keyed)
{
	p = json_ws(p);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (keyed) {
			p = json_string(json_ws(p));
			if (!p)
				return NULL;
			p = json_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = json_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p)
{
	p = json_ws(p);
	if (*p == '{')
		return json_members(p + 1, '}', true);
	if (*p == '[')
		return json_members(p + 1, ']', false);
	if (*p == '"')
		return json_string(p);
	if (!strncmp(p, "null", 4) || !strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	return json_number(p);
}

static bool is_one_json_value(const char *s)
{
	const char *end = s ? json_value(s) : NULL;

	if (end && !*json_ws(end))
		return true;
	tap_diag("not one JSON value (stopped at offset %td):\n%s", end ? end - s : -1,
		 s ? s : "(no output)");
	return false;
}

/* @a appears in @s before @b does. */
static bool in_order(const char *s, const char *a, const char *b)
{
	const char *pa = s ? strstr(s, a) : NULL, *pb = s ? strstr(s, b) : NULL;

	return pa && pb && pa < pb;
}

static void test_json(void)
{
	struct sample s;
	char *out;

	sample_full(&s);
	out = render(&s, uzctl_print_json);
	ok(is_one_json_value(out), "the JSON output is one valid JSON value");
	ok(contains(out, "\"name\": " EVIL_NAME_JSON),
	   "a region name's quotes, backslash and escape byte are JSON-escaped");
	ok(contains(out, "\"comm\": \"a\\\"b\\\\c\\u0001\""),
	   "a comm's control byte is \\u-escaped");
	ok(contains(out, "\"name\": \"\\ufffd\\ufffd not utf-8\""),
	   "bytes that are not UTF-8 become U+FFFD, so the output stays valid UTF-8");
	ok(contains(out, "\"compression_ratio\": 2.5000") &&
		   contains(out, "\"pool_efficiency\": 0.7812"),
	   "the JSON carries the derived ratio and efficiency");
	ok(contains(out, "\"pool_stored_pages\": 1000") && contains(out, "\"pid\": 4211") &&
		   contains(out, "\"codec_level\": 1") &&
		   contains(out, "\"psi_some_avg10_centi\": 12"),
	   "the daemon's fields are exact numbers");
	ok(contains(out, "\"pool_meta_bytes\": 65536") && contains(out, "\"readahead\": 17"),
	   "the JSON carries the pool's tables and a client's readahead");
	ok(contains(out, "\"sample_share_centi\": 312"),
	   "the JSON carries a client's sampled share, in 1/100 %%");
	ok(contains(out, "\"budget_bytes\": 18446744073709551615"),
	   "64-bit counters are printed in full");
	ok(contains(out, "\"pool\": {\n          \"count\": 42,\n          \"p50_ns\": 12345"),
	   "fault latencies are nested by kind, in ns");
	ok(in_order(out, "\"id\": 7", "\"name\": \"keys\"") &&
		   in_order(out, "\"name\": \"keys\"", "\"id\": 9") &&
		   in_order(out, "\"id\": 9", "not utf-8"),
	   "each region is nested in its own client's \"regions\" array");
	free(out);
	free(s.buf);
}

/*
 * The backing file: 100 MiB stored in 60000 pages, 110 MiB on disk (1.10),
 * restores with a p50 of 45.6 us; client 7 restored 40 pages from it.
 */
static void sample_writeback(struct sample *s)
{
	struct uzp_status *st;

	sample_full(s);
	st = s->st;
	st->writeback = 1;
	st->pool_accept_bytes = 1843ULL << 20;
	st->pool_full_events = 3;
	st->wb_written_pages = 123456;
	st->wb_written_bytes = 200ULL << 20;
	st->wb_busy_ns = 2500000000ULL;
	st->wb_rejected_file_full = 1;
	st->wb_rejected_write_error = 2;
	st->wb_rejected_raced = 3;
	st->wb_rejected_owner_gone = 4;
	st->wb_put_back = 5;
	st->file_max_bytes = 4ULL << 30;
	st->file_size_bytes = 120ULL << 20;
	st->file_disk_bytes = 110ULL << 20;
	st->file_live_bytes = 101ULL << 20;
	st->file_stored_bytes = 100ULL << 20;
	st->file_records = 60000;
	st->file_reads = 777;
	st->file_reads_staged = 7;
	st->file_restore_p50_ns = 45600;
	st->file_restore_p99_ns = 123000;
	st->file_write_enospc = 8;
	st->file_write_eio = 9;
	st->file_short_writes = 10;
	st->file_read_errors = 11;
	st->file_short_reads = 12;
	st->file_bad_records = 13;
	st->file_punched_blocks = 14;
	st->file_cleaned_segments = 15;
	st->file_cleaned_records = 16;
	s->c[0].faults_file = (struct uzp_fault_lat){ 40, 45600, 123000 };
	s->c[0].written_back = 1000;
	s->c[0].file_bytes = 3ULL << 20;
}

static void test_writeback(void)
{
	struct sample s;
	char *table, *json;

	sample_writeback(&s);
	table = render(&s, uzctl_print_table);
	json = render(&s, uzctl_print_json);
	ok(contains(table, "accepting (reopens below 1.80 GiB)"),
	   "with writeback on, the pool line says whether the pool accepts pages");
	ok(contains(table, "123456 pages, 200 MiB compressed, in 2.5 s; pool full 3 times"),
	   "the table shows what was written back");
	ok(contains(table,
		    "100 MiB in 60000 pages (101 MiB with headers); 110 MiB on disk (1.10x)"),
	   "the table shows the file's stored bytes, and its disk use with their ratio");
	ok(contains(table, "777 (7 from memory, write in flight), p50 45.6 µs, p99 123.0 µs"),
	   "the table shows restores from the file with their latency");
	ok(contains(table, "1 file full, 2 write errors, 3 raced, 4 owner gone; 5 put back") &&
		   contains(table, "writes 8 no space, 9 failed, 10 short; reads 11 failed, 12 "
				   "short, 13 corrupt"),
	   "the table shows refusals and errors by reason");
	ok(contains(table, "clients: backing file") && contains(table, "1000 3.00 MiB") &&
		   section_lines_equal_length(table, "clients: backing file"),
	   "a table shows each client's restores from the file, written back and bytes in it");
	ok(is_one_json_value(json) && contains(json, "\"file_space_ratio\": 1.1000") &&
		   contains(json, "\"wb_written_pages\": 123456") &&
		   contains(json, "\"file_bad_records\": 13") &&
		   contains(json, "\"file\": {\n          \"count\": 40"),
	   "the JSON carries the writeback figures, the space ratio and restores from the file");
	free(table);
	free(json);
	free(s.buf);
	sample_full(&s);
	table = render(&s, uzctl_print_table);
	ok(contains(table, "writeback         off\n") && !strstr(table, "clients: backing file"),
	   "with writeback off the table says so and shows no file tables");
	free(table);
	free(s.buf);
}

static void test_undefined_ratio_is_null(void)
{
	struct sample s;
	char *table, *json;

	sample_alloc(&s, 0, 0);
	table = render(&s, uzctl_print_table);
	json = render(&s, uzctl_print_json);
	ok(contains(table, "compression ratio - (nothing stored)") &&
		   contains(table, "pool efficiency   - (the pool is empty)"),
	   "the table says why an empty pool has no ratio");
	ok(contains(json, "\"compression_ratio\": null") &&
		   contains(json, "\"pool_efficiency\": null"),
	   "the JSON gives null for an undefined ratio");
	ok(contains(table, "MemAvailable      unknown"), "MemAvailable 0 is shown as unknown");
	free(table);
	free(json);
	free(s.buf);
}

static void test_no_clients(void)
{
	struct sample s;
	char *table, *json;

	sample_alloc(&s, 0, 0);
	strcpy(s.st->allocator, "zbud");
	strcpy(s.st->codec, "zstd");
	s.st->codec_level = -5;
	table = render(&s, uzctl_print_table);
	json = render(&s, uzctl_print_json);
	ok(contains(table, "\nno clients\n"), "a daemon without clients prints \"no clients\"");
	ok(table && !strstr(table, "regions"), "and no empty tables");
	ok(is_one_json_value(json) && contains(json, "\"clients\": []") &&
		   contains(json, "\"codec_level\": -5"),
	   "its JSON has an empty clients array and a negative level");
	free(table);
	free(json);
	free(s.buf);
}

static void test_client_without_regions(void)
{
	struct sample s;
	char *table, *json;

	sample_alloc(&s, 1, 0);
	s.c[0].id = 3;
	strcpy(s.c[0].comm, "idle");
	table = render(&s, uzctl_print_table);
	json = render(&s, uzctl_print_json);
	ok(contains(table, "\nno regions\n"), "a client without regions prints \"no regions\"");
	ok(is_one_json_value(json) && contains(json, "\"regions\": []"),
	   "its JSON has an empty regions array");
	free(table);
	free(json);
	free(s.buf);
}

/* Parse @len bytes of @s; true when refused with -EBADMSG and a message containing @why. */
static bool refused(struct sample *s, size_t len, const char *why)
{
	struct uzctl_status_view v;
	char err[256] = "";
	int r = uzctl_status_parse(s->buf, len, &v, err, sizeof(err));

	if (r == -EBADMSG && strstr(err, why))
		return true;
	tap_diag("expected -EBADMSG mentioning \"%s\", got %d: \"%s\"", why, r, err);
	return false;
}

static void test_bad_buffers(void)
{
	struct sample s;
	struct uzctl_status_view v;
	char err[256] = "";

	sample_full(&s);
	ok(refused(&s, 0, "truncated status: 0 bytes"), "an empty buffer is refused");
	ok(refused(&s, sizeof(struct uzp_status) - 1, "its header alone is"),
	   "a buffer shorter than the header is refused");
	ok(refused(&s, s.len - 1, "truncated status"), "a buffer one byte short is refused");
	ok(refused(&s, s.len - sizeof(struct uzp_status_region), "3 regions take"),
	   "a buffer missing its last region is refused");
	ok(refused(&s, s.len + 8, "oversized status"), "a buffer with bytes to spare is refused");

	s.st->n_regions = 4;
	ok(refused(&s, s.len + sizeof(struct uzp_status_region), "its clients own 3"),
	   "regions that no client owns are refused");
	s.st->n_regions = 3;

	s.c[1].n_regions = 2;
	ok(refused(&s, s.len, "client 9 has 2 regions, but only 1"),
	   "a client owning more regions than there are is refused");
	s.c[1].n_regions = 1;

	s.r[1].client_id = 9;
	ok(refused(&s, s.len, "grouped in client order"),
	   "a region out of its client's run is refused");
	s.r[1].client_id = 7;

	memset(s.c[0].comm, 'x', sizeof(s.c[0].comm));
	ok(refused(&s, s.len, "client 7: comm is not NUL-terminated"),
	   "a comm filling its array without a NUL is refused");
	strcpy(s.c[0].comm, "redis-server");

	memset(s.r[2].name, 'n', sizeof(s.r[2].name));
	ok(refused(&s, s.len, "name is not NUL-terminated"),
	   "an unterminated region name is refused");
	strcpy(s.r[2].name, "ok");

	memset(s.st->allocator, 'z', sizeof(s.st->allocator));
	ok(refused(&s, s.len, "allocator"), "an unterminated allocator name is refused");
	strcpy(s.st->allocator, "zsmalloc");

	s.st->magic ^= 1;
	ok(refused(&s, s.len, "not a uzswapd status"), "a wrong magic is refused");
	s.st->magic = UZP_MAGIC;

	s.st->version = UZP_VERSION + 1;
	ok(refused(&s, s.len, "this uzswapctl reads version"), "another version is refused");
	s.st->version = UZP_VERSION;

	s.st->n_clients = UINT32_MAX;
	ok(refused(&s, s.len, "4294967295 clients"), "a huge client count does not overflow");
	s.st->n_clients = 2;

	ok(uzctl_status_parse((char *)s.buf + 4, s.len, &v, err, sizeof(err)) == -EINVAL,
	   "a misaligned buffer is refused");
	ok(uzctl_status_parse(s.buf, s.len, &v, err, sizeof(err)) == 0,
	   "the sample, restored, is accepted again");
	free(s.buf);
}

/* ---- clients, regions ---- */

static void sample_clients(struct sample *s)
{
	sample_full(s);
	s->c[0].faults_all = (struct uzp_fault_lat){ 642, 2500, 9000 };
	s->c[0].budget_set = 1;
	s->c[0].file_bytes = 3ULL << 20;
	s->c[1].faults_all = (struct uzp_fault_lat){ UINT64_MAX, UINT64_MAX, UINT64_MAX };
}

/* The first @rows lines of @out all have one length (the columns line up). */
static bool rows_equal_length(const char *out, size_t rows)
{
	const char *p = out;
	size_t want = 0;

	for (size_t i = 0; p && i < rows; i++) {
		const char *e = strchr(p, '\n');

		if (!e)
			return false;
		if (!want)
			want = (size_t)(e - p);
		if ((size_t)(e - p) != want) {
			tap_diag("line %zu is %td bytes, the first %zu:\n%s", i + 1, e - p, want,
				 out);
			return false;
		}
		p = e + 1;
	}
	return p != NULL;
}

static void test_clients(void)
{
	struct sample s;
	char *out;

	sample_clients(&s);
	out = render(&s, uzctl_print_clients_table);
	ok(contains(out, "  31337       1000 redis-server") && contains(out, "256 MiB*"),
	   "clients: a row has the pid, uid, comm and budget, marked * when an admin set it");
	ok(contains(out, "1.00 GiB") && contains(out, " 256 MiB ") && contains(out, "3.91 MiB") &&
		   contains(out, "1.37 MiB") && contains(out, "3.00 MiB"),
	   "clients: managed, resident, evicted, pool and file sizes are shown");
	ok(contains(out, "      642     9.0"), "clients: faults and their p99 in µs are shown");
	ok(contains(out, "a\"b\\c?"), "clients: a comm's control byte is defanged");
	ok(rows_equal_length(out, 3), "clients: the rows line up, even for saturated counters");
	free(out);
	out = render(&s, uzctl_print_clients_json);
	ok(is_one_json_value(out) && contains(out, "\"comm\": \"a\\\"b\\\\c\\u0001\""),
	   "clients --json: one valid JSON value, the comm escaped");
	ok(contains(out, "\"budget_set\": 1") && contains(out, "\"faults\": 642") &&
		   contains(out, "\"fault_p99_ns\": 9000") &&
		   contains(out, "\"resident_bytes\": 268435456") &&
		   contains(out, "\"evicted_bytes\": 4096000"),
	   "clients --json: exact numbers, sizes in bytes");
	free(out);
	free(s.buf);
}

static char *render_pid(struct sample *s, uint32_t pid, bool json, int *ret)
{
	struct uzctl_status_view v;
	char err[256], *out = NULL;
	size_t len = 0;
	FILE *f;

	*ret = uzctl_status_parse(s->buf, s->len, &v, err, sizeof(err));
	if (*ret < 0)
		return NULL;
	f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	*ret = json ? uzctl_print_regions_json(f, &v, pid) : uzctl_print_regions_table(f, &v, pid);
	fclose(f);
	return out;
}

static void test_regions(void)
{
	struct sample s;
	char *out;
	int r;

	sample_clients(&s);
	out = render_pid(&s, 31337, false, &r);
	ok(r == 0 && contains(out, "keys") && contains(out, "cache \"hot\" \\ ?[31m red") && out &&
		   !strstr(out, "not utf-8"),
	   "regions PID: that process's regions, names defanged, and no other's");
	free(out);
	out = render_pid(&s, 4194304, true, &r);
	ok(r == 0 && is_one_json_value(out) && contains(out, "\"pid\": 4194304") &&
		   contains(out, "\"\\ufffd\\ufffd not utf-8\"") && !strstr(out, "keys"),
	   "regions PID --json: one valid JSON value with that process's regions only");
	free(out);
	out = render_pid(&s, 1, false, &r);
	ok(r == -ESRCH && out && !*out,
	   "regions of a pid no client has: -ESRCH and nothing printed (saw %d)", r);
	free(out);
	free(s.buf);
}

/* ---- classes ---- */

struct csample {
	void *buf;
	size_t len;
	struct uzp_classes *h;
	struct uzp_class *c;
};

static void csample_alloc(struct csample *s, uint32_t kind, uint32_t n)
{
	s->len = sizeof(*s->h) + n * sizeof(*s->c);
	s->buf = calloc(1, s->len + 64);
	if (!s->buf) {
		perror("calloc");
		exit(1);
	}
	s->h = s->buf;
	s->c = (struct uzp_class *)(s->h + 1);
	s->h->magic = UZP_MAGIC;
	s->h->version = UZP_VERSION;
	s->h->kind = kind;
	s->h->n_classes = n;
}

/* zsmalloc: three classes, the middle one empty. */
static void csample_size(struct csample *s)
{
	csample_alloc(s, UZP_CLASSES_SIZE, 3);
	strcpy(s->h->allocator, "zsmalloc");
	s->c[0] = (struct uzp_class){ 1, 48, 3, 0, 256, 200, 12, 3 };
	s->c[1] = (struct uzp_class){ 2, 64, 1, 0, 0, 0, 0, 0 };
	s->c[2] = (struct uzp_class){ 7, 4096, 1, 0, 9, 9, 9, 0 };
}

/* z3fold: headless, 1, 2 and 3 objects a page. */
static void csample_fill(struct csample *s)
{
	csample_alloc(s, UZP_CLASSES_FILL, 4);
	strcpy(s->h->allocator, "z3fold");
	for (uint32_t i = 0; i < 4; i++)
		s->c[i] = (struct uzp_class){ .index = i,
					      .pages_per_zspage = 1,
					      .objs_allocated = 10 * (i ? 3 : 1),
					      .objs_used = 10 * (i ? i : 1),
					      .pages_used = 10 };
}

static char *render_classes(struct csample *s, bool json)
{
	struct uzctl_classes_view v;
	char err[256] = "", *out = NULL;
	size_t len = 0;
	FILE *f;

	if (uzctl_classes_parse(s->buf, s->len, &v, err, sizeof(err)) < 0) {
		tap_diag("classes parse refused the sample: %s", err);
		return NULL;
	}
	f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	if ((json ? uzctl_print_classes_json(f, &v) : uzctl_print_classes_table(f, &v)) < 0) {
		fclose(f);
		free(out);
		return NULL;
	}
	fclose(f);
	return out;
}

static void test_classes(void)
{
	struct csample s;
	char *out;

	csample_size(&s);
	out = render_classes(&s, false);
	ok(contains(out, "    1     48        256        200       12            3         3") &&
		   contains(out, "4096") && out && !strstr(out, "\n    2 "),
	   "classes: a row per size class holding pages (size, objects, pages, per zspage, "
	   "freeable); empty ones are left out");
	ok(contains(out, "2 of 3 classes hold pages"),
	   "classes: the table says how many it left out");
	free(out);
	out = render_classes(&s, true);
	ok(is_one_json_value(out) && contains(out, "\"kind\": \"size\"") &&
		   contains(out, "\"index\": 2") && contains(out, "\"pages_per_zspage\": 3") &&
		   contains(out, "\"pages_freeable\": 3"),
	   "classes --json: one valid value listing every class");
	free(out);
	free(s.buf);
	csample_fill(&s);
	out = render_classes(&s, false);
	ok(contains(out, "headless") &&
		   contains(out, "           3       10         30         30"),
	   "classes of a fill allocator: pages by objects held, headless pages apart");
	free(out);
	out = render_classes(&s, true);
	ok(is_one_json_value(out) && contains(out, "\"kind\": \"fill\"") &&
		   contains(out, "\"objects_per_page\": \"headless\""),
	   "classes --json of a fill allocator: valid, headless named");
	free(out);
	free(s.buf);
}

static bool classes_refused(struct csample *s, size_t len, const char *why)
{
	struct uzctl_classes_view v;
	char err[256] = "";
	int r = uzctl_classes_parse(s->buf, len, &v, err, sizeof(err));

	if (r == -EBADMSG && strstr(err, why))
		return true;
	tap_diag("expected -EBADMSG mentioning \"%s\", saw %d: %s", why, r, err);
	return false;
}

static void test_bad_classes(void)
{
	struct uzctl_classes_view v;
	struct csample s;
	char err[256];

	csample_size(&s);
	ok(classes_refused(&s, s.len - 1, "truncated"), "a truncated classes buffer is refused");
	ok(classes_refused(&s, s.len + 8, "oversized"), "an oversized classes buffer is refused");
	s.h->magic ^= 1;
	ok(classes_refused(&s, s.len, "magic"), "classes of another magic are refused");
	s.h->magic ^= 1;
	s.h->kind = 7;
	ok(classes_refused(&s, s.len, "unknown kind"), "an unknown kind of classes is refused");
	s.h->kind = UZP_CLASSES_SIZE;
	s.c[0].objs_used = 257;
	ok(classes_refused(&s, s.len, "objects used"),
	   "a class with more objects used than allocated is refused");
	s.c[0].objs_used = 200;
	s.c[2].size = 48;
	ok(classes_refused(&s, s.len, "not larger"), "size classes out of order are refused");
	s.c[2].size = 4096;
	memset(s.h->allocator, 'x', sizeof(s.h->allocator));
	ok(classes_refused(&s, s.len, "NUL"), "an unterminated allocator name is refused");
	strcpy(s.h->allocator, "zsmalloc");
	ok(uzctl_classes_parse((char *)s.buf + 4, s.len, &v, err, sizeof(err)) == -EINVAL &&
		   uzctl_classes_parse(s.buf, s.len, &v, err, sizeof(err)) == 0,
	   "a misaligned classes buffer is refused, the sample restored is accepted");
	free(s.buf);
}

/* ---- metrics ---- */

static char *render_metrics(struct sample *s, struct csample *cs)
{
	struct uzctl_status_view v;
	struct uzctl_classes_view cv;
	char err[256], *out = NULL;
	size_t len = 0;
	FILE *f;

	if (uzctl_status_parse(s->buf, s->len, &v, err, sizeof(err)) < 0 ||
	    (cs && uzctl_classes_parse(cs->buf, cs->len, &cv, err, sizeof(err)) < 0)) {
		tap_diag("a sample was refused: %s", err);
		return NULL;
	}
	f = open_memstream(&out, &len);
	if (!f)
		return NULL;
	if (uzctl_print_metrics(f, &v, cs ? &cv : NULL) < 0) {
		fclose(f);
		free(out);
		return NULL;
	}
	fclose(f);
	return out;
}

static bool valid_prom(const char *out)
{
	char why[256];

	if (out && prom_check(out, why, sizeof(why)) == 0)
		return true;
	tap_diag("not valid Prometheus text: %s\n%s", out ? why : "no output", out ? out : "");
	return false;
}

static bool value_is(const char *out, const char *series, double want)
{
	double v = -1;

	if (out && prom_value(out, series, &v) == 0 && v == want)
		return true;
	tap_diag("expected %s %.17g, saw %.17g", series, want, v);
	return false;
}

static bool label_is(const char *out, const char *metric, const char *client, const char *label,
		     const char *want)
{
	char got[256] = "";

	if (out && prom_label(out, metric, "client", client, label, got, sizeof(got)) == 0 &&
	    !strcmp(got, want))
		return true;
	tap_diag("expected %s{client=\"%s\"} to have %s \"%s\", saw \"%s\"", metric, client, label,
		 want, got);
	return false;
}

static void test_metrics(void)
{
	struct sample s;
	struct csample cs;
	char *out;

	sample_writeback(&s);
	s.c[0].faults_all = (struct uzp_fault_lat){ 642, 2500, 9000 };
	strcpy(s.c[0].comm, "red\nis\xfe");
	csample_size(&cs);
	out = render_metrics(&s, &cs);
	ok(valid_prom(out),
	   "metrics: valid exposition text (HELP and TYPE for every family, name rules, "
	   "escaping, one group per family, no duplicate series, counters end in _total)");
	ok(value_is(out, "uzswap_pool_bytes", 2097152) &&
		   value_is(out, "uzswap_uptime_seconds", 90123.999) &&
		   value_is(out, "uzswap_memory_pressure_some_avg10_ratio", 0.0012) &&
		   value_is(out, "uzswap_writeback_objects_total", 123456) &&
		   value_is(out, "uzswap_writeback_busy_seconds_total", 2.5),
	   "metrics: daemon-wide values, in bytes and seconds");
	ok(value_is(out, "uzswap_backing_file_restore_latency_seconds{quantile=\"0.5\"}",
		    0.0000456) &&
		   value_is(out, "uzswap_writeback_rejected_total{reason=\"owner_gone\"}", 4) &&
		   value_is(out, "uzswap_backing_file_read_errors_total{error=\"corrupt\"}", 13),
	   "metrics: labelled daemon series (quantiles, reasons, errors)");
	ok(contains(out, "uzswap_info{allocator=\"zsmalloc\",codec=\"lz4\",level=\"1\"} 1"),
	   "metrics: uzswap_info names the allocator and the codec");
	ok(value_is(out,
		    "uzswap_client_sample_share_ratio{client=\"7\",pid=\"31337\",uid=\"1000\","
		    "comm=\"red\\nis\xef\xbf\xbd\"}",
		    0.0312),
	   "metrics: a client's sampled share is a ratio");
	ok(value_is(out,
		    "uzswap_client_memory_bytes{client=\"7\",pid=\"31337\",uid=\"1000\",comm=\"red"
		    "\\nis\xef\xbf\xbd\",state=\"resident\"}",
		    268435456.0),
	   "metrics: a client's series carry client, pid, uid and comm; a line feed is "
	   "escaped, a byte that is not UTF-8 becomes U+FFFD");
	ok(label_is(out, "uzswap_client_budget_bytes", "9", "comm", EVIL_COMM) &&
		   label_is(out, "uzswap_client_budget_bytes", "7", "comm", "red\nis\xef\xbf\xbd"),
	   "metrics: comm labels unescape to the client's name (quote, backslash and control "
	   "byte included)");
	ok(value_is(out,
		    "uzswap_client_fault_latency_seconds{client=\"7\",pid=\"31337\",uid=\"1000\","
		    "comm=\"red\\nis\xef\xbf\xbd\",kind=\"all\",quantile=\"0.99\"}",
		    0.000009) &&
		   value_is(out,
			    "uzswap_client_faults_total{client=\"7\",pid=\"31337\",uid=\"1000\","
			    "comm=\"red\\nis\xef\xbf\xbd\",kind=\"file\"}",
			    40),
	   "metrics: a client's faults by kind and latency quantiles");
	ok(value_is(out, "uzswap_pool_class_pages{allocator=\"zsmalloc\",class=\"1\",size=\"48\"}",
		    12) &&
		   value_is(out,
			    "uzswap_pool_class_freeable_pages{allocator=\"zsmalloc\",class=\"1\","
			    "size=\"48\"}",
			    3) &&
		   out && !strstr(out, "class=\"2\""),
	   "metrics: the pool's size classes holding pages, by class and size");
	free(out);
	free(cs.buf);
	csample_fill(&cs);
	out = render_metrics(&s, &cs);
	ok(valid_prom(out) &&
		   value_is(
			   out,
			   "uzswap_pool_class_pages{allocator=\"z3fold\",objects_per_page=\"headless\"}",
			   10) &&
		   !strstr(out, "uzswap_pool_class_freeable_pages"),
	   "metrics: a fill allocator's classes by objects per page, and no freeable pages");
	free(out);
	free(cs.buf);
	free(s.buf);
	sample_alloc(&s, 0, 0);
	out = render_metrics(&s, NULL);
	ok(valid_prom(out) && contains(out, "# TYPE uzswap_client_faults_total counter"),
	   "metrics with no client are valid, every family still described");
	free(out);
	free(s.buf);
}

/* The checker refuses each kind of mistake (so that passing it means something). */
static void test_promcheck(void)
{
	static const struct {
		const char *what, *text, *why;
	} bad[] = {
		{ "a sample before its TYPE", "# HELP a_b x\na_b 1\n", "before its TYPE" },
		{ "a name starting with a digit", "# HELP 9a x\n", "valid metric name" },
		{ "a counter not ending in _total", "# HELP a x\n# TYPE a counter\na 1\n",
		  "_total" },
		{ "a label escape other than \\\\, \\\" and \\n",
		  "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n", "escape" },
		{ "a series given twice, its labels in another order",
		  "# HELP a x\n# TYPE a gauge\na{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\n",
		  "twice" },
		{ "a family in two groups",
		  "# HELP a x\n# TYPE a gauge\na 1\n# HELP b x\n# TYPE b gauge\nb 1\na{l=\"2\"} 2\n",
		  "one group" },
		{ "a label value that is not UTF-8",
		  "# HELP a x\n# TYPE a gauge\na{l=\"\xff\"} 1\n", "UTF-8" },
		{ "no final line feed", "# HELP a x\n# TYPE a gauge\na 1", "line feed" },
		{ "a value that is not a number", "# HELP a x\n# TYPE a gauge\na one\n", "number" },
		{ "a reserved label name", "# HELP a x\n# TYPE a gauge\na{__x=\"1\"} 1\n",
		  "reserved" },
		{ "a label given twice", "# HELP a x\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
		  "twice" },
		{ "a family without HELP", "# TYPE a gauge\n", "no HELP" },
		{ "a timestamp", "# HELP a x\n# TYPE a gauge\na 1 1700000000\n", "timestamp" },
	};
	char why[256];

	ok(prom_check(
		   "# HELP a_total x \\\\ \\n\n# TYPE a_total counter\na_total{l=\"\\\"\\n\"} 1.5\n",
		   why, sizeof(why)) == 0,
	   "promcheck accepts a valid family (%s)", why);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = prom_check(bad[i].text, why, sizeof(why));

		ok(r == -EINVAL && strstr(why, bad[i].why), "promcheck refuses %s (saw %d: %s)",
		   bad[i].what, r, why);
	}
}

int main(void)
{
	test_clients();
	test_regions();
	test_classes();
	test_bad_classes();
	test_metrics();
	test_promcheck();
	test_table();
	test_json();
	test_writeback();
	test_undefined_ratio_is_null();
	test_no_clients();
	test_client_without_regions();
	test_bad_buffers();
	return tap_done();
}
