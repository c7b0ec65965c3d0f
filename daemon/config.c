/* SPDX-License-Identifier: MIT */
/*
 * daemon/config.c - defaults, the ini file (libinih), and dumping it back.
 *
 * Every key is one row of keys[]: its section, name, type, where it lives
 * in struct uzd_config and its limits.  A type is a parse and a format
 * function (type_ops[]); loading, the error messages and the dump all walk
 * the same table, so a key cannot be documented, parsed and dumped in three
 * different ways.
 *
 * A load parses into a struct parse_ctx that holds a copy of the defaults;
 * *cfg is assigned only once the whole file and the checks between keys
 * have passed.  inih only hands a handler section, name and value, so the
 * line number comes from our own reader (read_line), which gives inih one
 * whole line per call and counts them.  The reader also checks each line's
 * shape before inih sees it: inih would silently skip an empty unknown
 * [section], glue an indented line onto the previous value, split a long
 * line in two and only count a syntax error.  Parsing stops at the first
 * problem, whoever finds it, and that problem is the one message:
 * "PATH:LINE: what is wrong".  Checks between keys (watermarks, budgets)
 * run after parsing and blame the line of the dependent key when the file
 * set it, else the line of the key it depends on; the defaults alone always
 * pass them (the per-client defaults shrink to fit a small max_resident).
 *
 * A reload (daemon/reload.c) compares two configs key by key through the
 * same table (uzd_config_diff: by formatted value, so every type compares
 * as it is written) and keeps a fixed key's running value
 * (uzd_config_copy_key); each row says whether its key is live.
 *
 * This file must never: write *cfg on failure, keep state outside the
 * context it is handed (the daemon may reload from another thread), or
 * accept a value it cannot dump back to the same struct.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/zpool.h"
#include "daemon/bfile.h"
#include "daemon/config.h"
#include "daemon/region.h"

#define MIB (1ULL << 20)

/*
 * Defaults.  Half of RAM for managed pages leaves the other half to the
 * rest of the system; a quarter for the pool bounds what compressed pages
 * can take even when nothing compresses well.  /proc/pressure's averages
 * change every 2 s (the kernel's PSI_FREQ), so reading them each second
 * sees every update.  page_cluster 3, the kernel's vm.page-cluster: readahead
 * only follows faults that come in order (daemon/fault.c), which it makes 3
 * times as fast (bench/faultbench readahead_seq, readahead_zero), and a
 * client faulting at random gets no page it did not ask for.  busy_poll_us
 * 50: a paging client faults again within microseconds, and a fault thread
 * that went to sleep meanwhile is woken by an IPI, which on a KVM guest
 * that halts its idle vCPUs costs tens of µs; polling 50 µs after a batch
 * took restores and first touches from 50-64 µs to 16-22 µs at p50 there,
 * and restores under eviction kept their p50 with a steadier p99; 20 µs
 * was often too short (BENCHMARKS.md).
 */
#define DEF_MAX_RESIDENT_PCT 50
#define DEF_PAGE_CLUSTER 3
#define DEF_BUSY_POLL_US 50
#define DEF_CLIENT_MAX_RESIDENT (256 * MIB)
#define DEF_CLIENT_MIN_RESIDENT (4 * MIB)
#define DEF_MIN_AVAILABLE_PCT 5
#define DEF_POOL_MAX_SIZE_PCT 25
#define DEF_PSI_SOME_AVG10_CENTI 1000
/*
 * Half of a budget waits zapped for its access verdict (daemon/sample.h):
 * in a simulation of bench/faultbench's zipf scenario a quarter saved 2
 * points of fifo's refaults less than a half, three quarters 0.7 less.
 */
#define DEF_SAMPLE_PCT 50
/* Break-even of sampling: see [reclaim] sample_touched_pct in etc/uzswapd.conf. */
#define DEF_SAMPLE_TOUCHED_PCT 10

/*
 * zswap's accept_threshold_percent: once full, the pool takes pages again
 * only below 90%, so that writeback drains it in batches rather than one
 * object per eviction.  Half of RAM caps the compressed bytes on disk.
 */
#define DEF_ACCEPT_THRESHOLD 90
#define DEF_BACKING_MAX_SIZE_PCT 50
/* A few segments of the backing file, one of them the cleaner's reserve. */
#define MIN_BACKING_SIZE UZD_BFILE_MIN_SIZE

/*
 * Quotas (daemon/quota.h).  One user gets half of max_clients, so that no
 * user can take every slot, and connections beside them for uzswapctl.  Each region costs the daemon one mapping (its entries): four
 * users at their quota stay under vm.max_map_count (65530).  Managed
 * memory costs 8 bytes of entries per page touched.
 */
#define DEF_UID_EXTRA_CONNECTIONS 16
#define DEF_UID_MAX_REGIONS 16384
#define DEF_MANAGED_PCT 400
/* Managed memory may be many times RAM (that is what swap is for). */
#define MAX_MANAGED_PCT 10000

/* A budget or a pool smaller than one page could hold nothing. */
#define MIN_BUDGET 4096

enum key_type {
	T_PATH,
	T_MODE,
	T_UINT,
	T_LOGLEVEL,
	T_UIDS,
	T_SIZE,
	T_CENTI,
	T_CODEC,
	T_LEVEL,
	T_ALLOCATOR,
	T_POLICY,
	T_NICE,
	T_BOOL,
	T_BPATH,
	T_GROUP,
	T_GIDS,
};

/* Ids of the keys the checks between keys name; the rest need none. */
enum key_id {
	K_SOCKET,
	K_SOCKET_MODE,
	K_FAULT_THREADS,
	K_LOG_LEVEL,
	K_ALLOW_UIDS,
	K_ALLOW_GROUPS,
	K_ADMIN_GROUP,
	K_MAX_CLIENTS,
	K_UID_MAX_CLIENTS,
	K_UID_MAX_CONNECTIONS,
	K_CLIENT_MAX_REGIONS,
	K_UID_MAX_REGIONS,
	K_CLIENT_MAX_MANAGED,
	K_UID_MAX_MANAGED,
	K_MAX_RESIDENT,
	K_CLIENT_MAX_RESIDENT,
	K_UID_MAX_RESIDENT,
	K_HIGH_WATERMARK,
	K_LOW_WATERMARK,
	K_CLIENT_MIN_RESIDENT,
	K_THROTTLE_ABOVE,
	K_PSI_SOME_AVG10,
	K_MIN_AVAILABLE,
	K_INTERVAL_MS,
	K_CODEC,
	K_LEVEL,
	K_MAX_COMPRESSED,
	K_ALLOCATOR,
	K_POOL_MAX_SIZE,
	K_ACCEPT_THRESHOLD,
	K_WRITEBACK,
	K_BACKING_PATH,
	K_BACKING_MAX_SIZE,
	K_PAGE_CLUSTER,
	K_BUSY_POLL_US,
	K_POLICY,
	K_NICE,
	K_SAMPLE_PCT,
	K_SAMPLE_TOUCHED_PCT,
	K_COUNT
};

/*
 * One key.  off and size are the field's offset and size in struct
 * uzd_config (the codec and the level both name cfg->codec: they are
 * resolved together after the file is read; allow_uids and admin_group
 * also own the fields beside theirs, see copy_key()).  min and max bound
 * T_UINT, T_MODE and T_CENTI (in hundredths); min bounds T_SIZE.
 * percent: T_SIZE also takes "N%" of RAM, 0 < N <= percent.  live: a running daemon can
 * take a new value on reload (daemon/reload.c); the others are fixed at
 * start by what they built (the socket, threads, the pool, the backing
 * file's tables).
 */
struct key_def {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off, size;
	uint64_t min, max;
	unsigned int percent; /* T_SIZE: the largest N of "N%" of RAM; 0: none */
	bool live;
};

#define KEY(id, sec, nm, ty, fld, lo, hi, pct, lv)                 \
	[id] = { .section = sec,                                   \
		 .name = nm,                                       \
		 .type = ty,                                       \
		 .off = offsetof(struct uzd_config, fld),          \
		 .size = sizeof(((struct uzd_config *)NULL)->fld), \
		 .min = lo,                                        \
		 .max = hi,                                        \
		 .percent = pct,                                   \
		 .live = lv }
#define LIVE true
#define FIXED false

/* In file order: uzd_config_dump() writes them in this order. */
static const struct key_def keys[K_COUNT] = {
	KEY(K_SOCKET, "daemon", "socket", T_PATH, socket, 0, 0, 0, FIXED),
	KEY(K_SOCKET_MODE, "daemon", "socket_mode", T_MODE, socket_mode, 0, 0777, 0, FIXED),
	KEY(K_FAULT_THREADS, "daemon", "fault_threads", T_UINT, fault_threads, 1, 64, 0, FIXED),
	KEY(K_LOG_LEVEL, "daemon", "log_level", T_LOGLEVEL, log_level, 0, 0, 0, LIVE),
	KEY(K_ALLOW_UIDS, "clients", "allow_uids", T_UIDS, allow_uids, 0, 0, 0, LIVE),
	KEY(K_ALLOW_GROUPS, "clients", "allow_groups", T_GIDS, allow_gids, 0, 0, 0, LIVE),
	KEY(K_ADMIN_GROUP, "clients", "admin_group", T_GROUP, admin_gid, 0, 0, 0, LIVE),
	KEY(K_MAX_CLIENTS, "clients", "max_clients", T_UINT, max_clients, 1, 65536, 0, FIXED),
	KEY(K_UID_MAX_CLIENTS, "clients", "uid_max_clients", T_UINT, uid_max_clients, 1, 65536, 0,
	    LIVE),
	KEY(K_UID_MAX_CONNECTIONS, "clients", "uid_max_connections", T_UINT, uid_max_connections, 1,
	    65536 + 16, 0, LIVE),
	KEY(K_CLIENT_MAX_REGIONS, "clients", "client_max_regions", T_UINT, client_max_regions, 1,
	    UZD_REGION_MAX_PER_TABLE, 0, LIVE),
	KEY(K_UID_MAX_REGIONS, "clients", "uid_max_regions", T_UINT, uid_max_regions, 1, UINT32_MAX,
	    0, LIVE),
	KEY(K_CLIENT_MAX_MANAGED, "clients", "client_max_managed", T_SIZE, client_max_managed,
	    MIN_BUDGET, 0, MAX_MANAGED_PCT, LIVE),
	KEY(K_UID_MAX_MANAGED, "clients", "uid_max_managed", T_SIZE, uid_max_managed, MIN_BUDGET, 0,
	    MAX_MANAGED_PCT, LIVE),
	KEY(K_MAX_RESIDENT, "budget", "max_resident", T_SIZE, max_resident, MIN_BUDGET, 0, 100,
	    LIVE),
	KEY(K_CLIENT_MAX_RESIDENT, "budget", "client_max_resident", T_SIZE, client_max_resident,
	    MIN_BUDGET, 0, 0, LIVE),
	KEY(K_UID_MAX_RESIDENT, "budget", "uid_max_resident", T_SIZE, uid_max_resident, MIN_BUDGET,
	    0, 100, LIVE),
	KEY(K_HIGH_WATERMARK, "budget", "high_watermark", T_UINT, high_watermark, 50, 100, 0, LIVE),
	KEY(K_LOW_WATERMARK, "budget", "low_watermark", T_UINT, low_watermark, 10, 100, 0, LIVE),
	KEY(K_CLIENT_MIN_RESIDENT, "budget", "client_min_resident", T_SIZE, client_min_resident, 0,
	    0, 0, LIVE),
	KEY(K_THROTTLE_ABOVE, "budget", "throttle_above", T_UINT, throttle_above, 0, 1000, 0, LIVE),
	KEY(K_PSI_SOME_AVG10, "pressure", "psi_some_avg10", T_CENTI, psi_some_avg10_centi, 0, 10000,
	    0, LIVE),
	KEY(K_MIN_AVAILABLE, "pressure", "min_available", T_SIZE, min_available, 0, 0, 100, LIVE),
	KEY(K_INTERVAL_MS, "pressure", "interval_ms", T_UINT, interval_ms, 100, 60000, 0, LIVE),
	KEY(K_CODEC, "compress", "codec", T_CODEC, codec, 0, 0, 0, LIVE),
	KEY(K_LEVEL, "compress", "level", T_LEVEL, codec, 0, 0, 0, LIVE),
	KEY(K_MAX_COMPRESSED, "compress", "max_compressed", T_UINT, max_compressed, 64,
	    UZC_PAGE_SIZE, 0, LIVE),
	KEY(K_ALLOCATOR, "pool", "allocator", T_ALLOCATOR, allocator, 0, 0, 0, FIXED),
	KEY(K_POOL_MAX_SIZE, "pool", "max_size", T_SIZE, pool_max_size, MIN_BUDGET, 0, 100, LIVE),
	KEY(K_ACCEPT_THRESHOLD, "pool", "accept_threshold", T_UINT, accept_threshold, 50, 100, 0,
	    LIVE),
	KEY(K_WRITEBACK, "backing", "writeback", T_BOOL, writeback, 0, 0, 0, LIVE),
	KEY(K_BACKING_PATH, "backing", "path", T_BPATH, backing_path, 0, 0, 0, FIXED),
	KEY(K_BACKING_MAX_SIZE, "backing", "max_size", T_SIZE, backing_max_size, MIN_BACKING_SIZE,
	    0, 100, FIXED),
	KEY(K_PAGE_CLUSTER, "fault", "page_cluster", T_UINT, page_cluster, 0, 5, 0, LIVE),
	KEY(K_BUSY_POLL_US, "fault", "busy_poll_us", T_UINT, busy_poll_us, 0, 1000, 0, LIVE),
	KEY(K_POLICY, "reclaim", "policy", T_POLICY, policy, 0, 0, 0, LIVE),
	KEY(K_NICE, "reclaim", "nice", T_NICE, reclaim_nice, 0, 0, 0, LIVE),
	KEY(K_SAMPLE_PCT, "reclaim", "sample_pct", T_UINT, sample_pct, 0, 90, 0, LIVE),
	KEY(K_SAMPLE_TOUCHED_PCT, "reclaim", "sample_touched_pct", T_UINT, sample_touched_pct, 0,
	    100, 0, LIVE),
};

static const char *const log_level_names[] = {
	[UZD_LOG_ERROR] = "error",
	[UZD_LOG_WARN] = "warn",
	[UZD_LOG_INFO] = "info",
	[UZD_LOG_DEBUG] = "debug",
};
#define N_LOG_LEVELS (sizeof(log_level_names) / sizeof(log_level_names[0]))

static const char *const policy_names[] = {
	[UZD_POLICY_WORKINGSET] = "workingset",
	[UZD_POLICY_FIFO] = "fifo",
};
#define N_POLICIES (sizeof(policy_names) / sizeof(policy_names[0]))

/*
 * The state of one load.  cfg is the copy being filled.  set_line[id] is
 * the line that set key id, 0 when the file did not.  The codec and the
 * level are kept apart until the whole file is read: which levels are
 * valid depends on the codec, which may come later in the file.
 */
struct parse_ctx {
	const char *path;
	FILE *f;
	uint64_t ram;
	struct uzd_config cfg;
	char *line; /* the raw line inih is parsing, from getline() */
	size_t cap;
	int lineno;
	bool after_key; /* inih would read an indented line as a continuation */
	int set_line[K_COUNT];
	enum uzc_codec_id codec_id;
	int level; /* as written; 0 = the codec's default */
	char *err;
	size_t errlen;
	int rc; /* the first error; nothing is parsed after it */
};

/* ---- messages ---- */

__attribute__((format(printf, 4, 0))) static int vfail(struct parse_ctx *ctx, int line,
						       const struct key_def *k, const char *fmt,
						       va_list ap)
{
	size_t n = 0;
	int len;

	if (ctx->rc)
		return ctx->rc;
	ctx->rc = -EINVAL;
	if (!ctx->err || !ctx->errlen)
		return ctx->rc;
	if (line > 0)
		len = snprintf(ctx->err, ctx->errlen, "%s:%d: ", ctx->path, line);
	else
		len = snprintf(ctx->err, ctx->errlen, "%s: ", ctx->path);
	n = len > 0 ? (size_t)len : 0;
	if (k && n < ctx->errlen) {
		len = snprintf(ctx->err + n, ctx->errlen - n, "[%s] %s: ", k->section, k->name);
		n += len > 0 ? (size_t)len : 0;
	}
	if (n < ctx->errlen)
		vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);
	return ctx->rc;
}

/* A problem with the line being parsed, not tied to one key. */
__attribute__((format(printf, 2, 3))) static int fail(struct parse_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ctx, ctx->lineno, NULL, fmt, ap);
	va_end(ap);
	return rc;
}

/* A bad value for key @k, set on @line. */
__attribute__((format(printf, 4, 5))) static int key_fail_at(struct parse_ctx *ctx, int line,
							     const struct key_def *k,
							     const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vfail(ctx, line, k, fmt, ap);
	va_end(ap);
	return rc;
}

#define key_fail(ctx, k, ...) key_fail_at(ctx, (ctx)->lineno, k, __VA_ARGS__)

static int file_error(struct parse_ctx *ctx, int e)
{
	char buf[128];

	/* strerror_r (GNU form): a reload may run beside other threads. */
	if (ctx->err && ctx->errlen)
		snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->path,
			 strerror_r(e, buf, sizeof(buf)));
	ctx->rc = -e;
	return ctx->rc;
}

/* ---- numbers ---- */

/* An unsigned number that starts with a digit: no sign, no space. */
static int scan_u64(const char *s, int base, uint64_t *out, const char **end)
{
	char *e;
	unsigned long long v;

	if (!isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &e, base);
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	*end = e;
	return 0;
}

/* N% of @ram, rounded down, without overflowing ram * N. */
static uint64_t percent_of(uint64_t ram, uint64_t pct)
{
	return ram / 100 * pct + ram % 100 * pct / 100;
}

static int size_shift(const char *suffix, unsigned int *shift)
{
	static const char units[] = "KMGT";
	const char *u;

	if (!*suffix) {
		*shift = 0;
		return 0;
	}
	u = strchr(units, toupper((unsigned char)suffix[0]));
	if (!u || !*u)
		return -EINVAL;
	if (suffix[1] && strcmp(suffix + 1, "iB") != 0)
		return -EINVAL;
	*shift = 10 * (unsigned int)(u - units + 1);
	return 0;
}

/* uzd_config_parse_size(), with percentages up to @max_pct (0: none). */
static int parse_size_pct(const char *s, uint64_t ram_bytes, unsigned int max_pct, uint64_t *out)
{
	const char *end;
	unsigned int shift;
	uint64_t v;
	int rc;

	if (!s)
		return -EINVAL;
	rc = scan_u64(s, 10, &v, &end);
	if (rc)
		return rc;
	if (end[0] == '%' && end[1] == '\0') {
		if (!max_pct)
			return -EINVAL;
		if (v == 0 || v > max_pct)
			return -ERANGE;
		*out = percent_of(ram_bytes, v);
		return 0;
	}
	if (size_shift(end, &shift))
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = v << shift;
	return 0;
}

int uzd_config_parse_size(const char *s, uint64_t ram_bytes, bool allow_percent, uint64_t *out)
{
	return parse_size_pct(s, ram_bytes, allow_percent ? 100 : 0, out);
}

/* The largest binary suffix that writes @v exactly, so it reads back the same. */
static void format_size_value(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "TGMK";

	for (unsigned int i = 0; v && i < 4; i++) {
		unsigned int shift = 10 * (4 - i);

		if ((v & ((1ULL << shift) - 1)) == 0) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v >> shift), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* ---- one parse and one format function per type ---- */

static void *field(struct uzd_config *cfg, const struct key_def *k)
{
	return (char *)cfg + k->off;
}

static const void *cfield(const struct uzd_config *cfg, const struct key_def *k)
{
	return (const char *)cfg + k->off;
}

static int parse_path(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	/* A relative path would follow the daemon's working directory. */
	if (v[0] != '/')
		return key_fail(ctx, k, "\"%s\" is not an absolute path", v);
	if (strlen(v) >= UZD_SOCKET_PATH_MAX)
		return key_fail(ctx, k, "the path is %zu bytes long; a unix socket path holds %d",
				strlen(v), UZD_SOCKET_PATH_MAX - 1);
	memcpy(field(&ctx->cfg, k), v, strlen(v) + 1);
	return 0;
}

static void format_path(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	snprintf(buf, len, "%s", (const char *)cfield(cfg, k));
}

static int parse_mode(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	const char *end;
	uint64_t mode;

	if (scan_u64(v, 8, &mode, &end) || *end || mode > k->max)
		return key_fail(ctx, k, "\"%s\" is not an octal file mode (0000..%04llo)", v,
				(unsigned long long)k->max);
	*(mode_t *)field(&ctx->cfg, k) = (mode_t)mode;
	return 0;
}

static void format_mode(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	snprintf(buf, len, "%04o", (unsigned int)*(const mode_t *)cfield(cfg, k));
}

static int parse_uint(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	const char *end;
	uint64_t n;
	int rc = scan_u64(v, 10, &n, &end);

	if (rc == -EINVAL || (!rc && *end))
		return key_fail(ctx, k, "\"%s\" is not a whole number", v);
	if (rc || n < k->min || n > k->max)
		return key_fail(ctx, k, "%s is out of range (%llu..%llu)", v,
				(unsigned long long)k->min, (unsigned long long)k->max);
	*(unsigned int *)field(&ctx->cfg, k) = (unsigned int)n;
	return 0;
}

static void format_uint(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	snprintf(buf, len, "%u", *(const unsigned int *)cfield(cfg, k));
}

static int parse_loglevel(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	for (size_t i = 0; i < N_LOG_LEVELS; i++) {
		if (strcmp(v, log_level_names[i]) == 0) {
			*(enum uzd_log_level *)field(&ctx->cfg, k) = (enum uzd_log_level)i;
			return 0;
		}
	}
	return key_fail(ctx, k, "\"%s\" is not one of error, warn, info, debug", v);
}

static void format_loglevel(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			    size_t len)
{
	unsigned int lvl = *(const enum uzd_log_level *)cfield(cfg, k);

	snprintf(buf, len, "%s", lvl < N_LOG_LEVELS ? log_level_names[lvl] : "?");
}

static int parse_nice(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	const char *digits = v[0] == '-' ? v + 1 : v;
	const char *end;
	uint64_t n;
	int rc = scan_u64(digits, 10, &n, &end);

	if (rc == -EINVAL || (!rc && *end))
		return key_fail(ctx, k, "\"%s\" is not a whole number", v);
	if (rc || (v[0] == '-' ? n > 20 : n > 19))
		return key_fail(ctx, k, "%s is out of range (-20..19)", v);
	*(int *)field(&ctx->cfg, k) = v[0] == '-' ? -(int)n : (int)n;
	return 0;
}

static void format_nice(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	snprintf(buf, len, "%d", *(const int *)cfield(cfg, k));
}

static int parse_policy(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	for (size_t i = 0; i < N_POLICIES; i++) {
		if (strcmp(v, policy_names[i]) == 0) {
			*(enum uzd_reclaim_policy *)field(&ctx->cfg,
							  k) = (enum uzd_reclaim_policy)i;
			return 0;
		}
	}
	return key_fail(ctx, k, "\"%s\" is not one of workingset, fifo", v);
}

static void format_policy(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			  size_t len)
{
	unsigned int p = *(const enum uzd_reclaim_policy *)cfield(cfg, k);

	snprintf(buf, len, "%s", p < N_POLICIES ? policy_names[p] : "?");
}

/* One entry of a list: @len bytes at @s, trimmed, never empty. */
typedef int (*list_item_fn)(struct parse_ctx *ctx, const struct key_def *k, const char *s,
			    size_t len);

/*
 * Each comma-separated entry of @v, spaces around it allowed, to @item;
 * an empty one is refused as an entry in the list of @what.
 */
static int parse_list(struct parse_ctx *ctx, const struct key_def *k, const char *v,
		      const char *what, list_item_fn item)
{
	for (;;) {
		size_t len = strcspn(v, ","), n = len;
		const char *s = v;
		int rc;

		while (n && isspace((unsigned char)*s))
			s++, n--;
		while (n && isspace((unsigned char)s[n - 1]))
			n--;
		if (!n)
			return key_fail(ctx, k, "empty entry in the list of %s", what);
		rc = item(ctx, k, s, n);
		if (rc)
			return rc;
		if (!v[len])
			return 0;
		v += len + 1;
	}
}

/* "1,2,3": a list of ids as dump writes it. */
static void format_id_list(char *buf, size_t len, const unsigned int *ids, unsigned int n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%u", i ? "," : "", ids[i]);

		used += w > 0 ? (size_t)w : 0;
	}
}

/* One entry of allow_uids. */
static int parse_one_uid(struct parse_ctx *ctx, const struct key_def *k, const char *s, size_t len)
{
	struct uzd_config *cfg = &ctx->cfg;
	char item[32];
	const char *end;
	uint64_t uid;

	snprintf(item, sizeof(item), "%.*s", (int)len, s);
	if (len >= sizeof(item) || scan_u64(item, 10, &uid, &end) || *end)
		return key_fail(ctx, k,
				"\"%s\" is not a uid (use * or comma-separated numeric uids)",
				item);
	/* (uid_t)-1 means "no uid" to the kernel (setresuid, chown). */
	if (uid >= (uid_t)-1)
		return key_fail(ctx, k, "%s is out of range for a uid", item);
	for (unsigned int i = 0; i < cfg->n_allow_uids; i++)
		if (cfg->allow_uids[i] == (uid_t)uid)
			return key_fail(ctx, k, "uid %s is listed twice", item);
	if (cfg->n_allow_uids == UZD_MAX_ALLOW_UIDS)
		return key_fail(ctx, k, "more than %d uids", UZD_MAX_ALLOW_UIDS);
	cfg->allow_uids[cfg->n_allow_uids++] = (uid_t)uid;
	return 0;
}

static int parse_uids(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	struct uzd_config *cfg = &ctx->cfg;

	cfg->allow_all_uids = false;
	cfg->n_allow_uids = 0;
	if (strcmp(v, "*") == 0) {
		cfg->allow_all_uids = true;
		return 0;
	}
	if (strcmp(v, "none") == 0)
		return 0; /* allow_groups alone decides */
	return parse_list(ctx, k, v, "uids", parse_one_uid);
}

static void format_uids(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	(void)k;
	if (cfg->allow_all_uids || !cfg->n_allow_uids)
		snprintf(buf, len, cfg->allow_all_uids ? "*" : "none");
	else
		format_id_list(buf, len, cfg->allow_uids, cfg->n_allow_uids);
}

static int parse_size_key(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	bool pct = v[0] && v[strlen(v) - 1] == '%';
	const char *forms = k->percent ? "bytes with K/M/G/T suffix or a percentage of RAM" :
					 "bytes with K/M/G/T suffix";
	uint64_t n;
	int rc = parse_size_pct(v, ctx->ram, k->percent, &n);

	if (rc == -EINVAL && pct && !k->percent)
		return key_fail(ctx, k, "\"%s\": a percentage of RAM is not accepted here (use %s)",
				v, forms);
	if (rc == -EINVAL)
		return key_fail(ctx, k, "\"%s\" is not a size (use %s)", v, forms);
	if (rc == -ERANGE && pct)
		return key_fail(ctx, k, "\"%s\" is not a percentage of RAM from 1%% to %u%%", v,
				k->percent);
	if (rc == -ERANGE)
		return key_fail(ctx, k, "\"%s\" is too large", v);
	if (n < k->min)
		return key_fail(ctx, k, "\"%s\" is %llu bytes, below the minimum of %llu", v,
				(unsigned long long)n, (unsigned long long)k->min);
	*(uint64_t *)field(&ctx->cfg, k) = n;
	return 0;
}

static void format_size(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	format_size_value(*(const uint64_t *)cfield(cfg, k), buf, len);
}

/*
 * A percentage with at most two decimals, kept in hundredths: the
 * precision /proc/pressure prints, so no value is rounded twice.
 */
static int parse_centi(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	const char *end;
	uint64_t whole, frac = 0;
	size_t digits = 0;

	if (scan_u64(v, 10, &whole, &end) || whole > k->max / 100)
		goto bad;
	if (*end == '.') {
		digits = strspn(end + 1, "0123456789");
		if (digits < 1 || digits > 2 || end[1 + digits])
			goto bad;
		frac = (uint64_t)(end[1] - '0') * 10 + (digits == 2 ? (uint64_t)(end[2] - '0') : 0);
	} else if (*end) {
		goto bad;
	}
	if (whole * 100 + frac > k->max)
		goto bad;
	*(unsigned int *)field(&ctx->cfg, k) = (unsigned int)(whole * 100 + frac);
	return 0;
bad:
	return key_fail(ctx, k,
			"\"%s\" is not a percentage from 0 to 100 with at most two decimals", v);
}

static void format_centi(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			 size_t len)
{
	unsigned int c = *(const unsigned int *)cfield(cfg, k);

	snprintf(buf, len, "%u.%02u", c / 100, c % 100);
}

/* "a, b, c": the names a codec key accepts, for the message. */
static void codec_names(char *buf, size_t len)
{
	struct uzc_spec spec;
	size_t n = 0;

	buf[0] = '\0';
	for (int id = 0; id < UZC_CODEC_COUNT && n < len; id++) {
		const char *name = uzc_codec_name((enum uzc_codec_id)id);
		int w;

		if (!name || uzc_spec_parse(name, 0, &spec))
			continue;
		w = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
		n += w > 0 ? (size_t)w : 0;
	}
}

static int parse_codec(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	struct uzc_spec spec;
	char names[64];

	if (uzc_spec_parse(v, 0, &spec)) {
		codec_names(names, sizeof(names));
		return key_fail(ctx, k, "\"%s\" is not one of %s", v, names);
	}
	ctx->codec_id = spec.id;
	return 0;
}

static void format_codec(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			 size_t len)
{
	const char *name = uzc_codec_name(cfg->codec.id);

	(void)k;
	snprintf(buf, len, "%s", name ? name : "?");
}

/* The range depends on the codec: checked in resolve_codec(). */
static int parse_level(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	const char *digits = v[0] == '-' ? v + 1 : v;
	const char *end;
	uint64_t n;
	int rc = scan_u64(digits, 10, &n, &end);

	if (rc == -EINVAL || (!rc && *end))
		return key_fail(ctx, k, "\"%s\" is not a whole number", v);
	if (rc || n > (uint64_t)INT32_MAX)
		return key_fail(ctx, k, "%s is out of range for every codec", v);
	ctx->level = v[0] == '-' ? -(int)n : (int)n;
	return 0;
}

static void format_level(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			 size_t len)
{
	(void)k;
	snprintf(buf, len, "%d", cfg->codec.level);
}

static int parse_allocator(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	const struct zpool_driver *d = zpool_driver_find(v);
	const char *const *names = zpool_driver_names();
	char list[64];
	size_t n = 0;

	if (d) {
		/* The registry's string: it outlives every config. */
		*(const char **)field(&ctx->cfg, k) = d->name;
		return 0;
	}
	list[0] = '\0';
	for (size_t i = 0; names[i] && n < sizeof(list); i++) {
		int w = snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "", names[i]);

		n += w > 0 ? (size_t)w : 0;
	}
	return key_fail(ctx, k, "\"%s\" is not one of %s", v, list);
}

static void format_allocator(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			     size_t len)
{
	const char *name = *(const char *const *)cfield(cfg, k);

	snprintf(buf, len, "%s", name ? name : "");
}

static int parse_bool(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(v, yes[i]) == 0 || strcmp(v, no[i]) == 0) {
			*(bool *)field(&ctx->cfg, k) = strcmp(v, yes[i]) == 0;
			return 0;
		}
	}
	return key_fail(ctx, k, "\"%s\" is not one of yes, no (or true, false, on, off, 1, 0)", v);
}

static void format_bool(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	snprintf(buf, len, "%s", *(const bool *)cfield(cfg, k) ? "yes" : "no");
}

/* Only the form is checked here: whether the file may be used is the daemon's to say. */
static int parse_bpath(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	if (v[0] != '/')
		return key_fail(ctx, k, "\"%s\" is not an absolute path", v);
	if (strlen(v) >= UZD_BACKING_PATH_MAX)
		return key_fail(ctx, k, "the path is %zu bytes long; at most %d fit", strlen(v),
				UZD_BACKING_PATH_MAX - 1);
	memcpy(field(&ctx->cfg, k), v, strlen(v) + 1);
	return 0;
}

/*
 * A group for admin commands: "none", a numeric gid, or a group name
 * resolved now (getgrnam_r: a reload may run beside other threads).  Kept
 * as the gid, which dump writes, so a file naming a group reads back the
 * same even if the name is renamed meanwhile.
 */
/* getgrnam_r() with a buffer that grows for a group of many members; 0 or its error. */
static int group_lookup(const char *name, gid_t *gid, bool *found)
{
	size_t len = 4096;
	struct group gr, *res = NULL;
	char *buf = NULL;
	int rc = ERANGE;

	while (rc == ERANGE && len <= (1u << 24)) {
		char *grown = realloc(buf, len);

		if (!grown) {
			rc = ENOMEM;
			break;
		}
		buf = grown;
		rc = getgrnam_r(name, &gr, buf, len, &res);
		len *= 2;
	}
	*found = rc == 0 && res;
	if (*found)
		*gid = res->gr_gid;
	free(buf);
	return rc;
}

/* One group, by name or gid, into *@gid.  0, or the key's failure. */
static int parse_one_gid(struct parse_ctx *ctx, const struct key_def *k, const char *v, gid_t *gid)
{
	const char *end;
	uint64_t n;
	bool found;
	int rc;

	if (isdigit((unsigned char)v[0])) {
		if (scan_u64(v, 10, &n, &end) || *end)
			return key_fail(ctx, k, "\"%s\" is not a gid (use a group name or a gid)",
					v);
		if (n >= (gid_t)-1)
			return key_fail(ctx, k, "%s is out of range for a gid", v);
		*gid = (gid_t)n;
		return 0;
	}
	rc = group_lookup(v, gid, &found);
	if (rc || !found)
		return key_fail(ctx, k, "no group \"%s\"%s%s (use a group name or a gid)", v,
				rc ? ": " : "", rc ? strerror(rc) : "");
	return 0;
}

static int parse_group(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	struct uzd_config *cfg = &ctx->cfg;
	gid_t gid = 0;
	int rc;

	if (strcmp(v, "none") == 0) {
		cfg->admin_group_set = false;
		cfg->admin_gid = 0;
		return 0;
	}
	rc = parse_one_gid(ctx, k, v, &gid);
	if (rc)
		return rc;
	cfg->admin_group_set = true;
	cfg->admin_gid = gid;
	return 0;
}

static void format_group(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			 size_t len)
{
	(void)k;
	if (cfg->admin_group_set)
		snprintf(buf, len, "%u", (unsigned int)cfg->admin_gid);
	else
		snprintf(buf, len, "none");
}

/* allow_groups: "none", or up to UZD_MAX_ALLOW_UIDS groups, comma-separated. */
static int parse_gid_item(struct parse_ctx *ctx, const struct key_def *k, const char *s, size_t len)
{
	struct uzd_config *cfg = &ctx->cfg;
	char item[64];
	gid_t gid = 0;
	int rc;

	if (len >= sizeof(item))
		return key_fail(ctx, k, "\"%.*s\" is too long for a group name", (int)len, s);
	snprintf(item, sizeof(item), "%.*s", (int)len, s);
	rc = parse_one_gid(ctx, k, item, &gid);
	if (rc)
		return rc;
	for (unsigned int i = 0; i < cfg->n_allow_gids; i++)
		if (cfg->allow_gids[i] == gid)
			return key_fail(ctx, k, "group %s (gid %u) is listed twice", item,
					(unsigned int)gid);
	if (cfg->n_allow_gids == UZD_MAX_ALLOW_UIDS)
		return key_fail(ctx, k, "more than %d groups", UZD_MAX_ALLOW_UIDS);
	cfg->allow_gids[cfg->n_allow_gids++] = gid;
	return 0;
}

static int parse_gids(struct parse_ctx *ctx, const struct key_def *k, const char *v)
{
	ctx->cfg.n_allow_gids = 0;
	if (strcmp(v, "none") == 0)
		return 0;
	return parse_list(ctx, k, v, "groups", parse_gid_item);
}

/* As gids, so that the file reads back the same whatever happens to the names. */
static void format_gids(const struct uzd_config *cfg, const struct key_def *k, char *buf,
			size_t len)
{
	(void)k;
	if (!cfg->n_allow_gids)
		snprintf(buf, len, "none");
	else
		format_id_list(buf, len, cfg->allow_gids, cfg->n_allow_gids);
}

struct type_ops {
	int (*parse)(struct parse_ctx *ctx, const struct key_def *k, const char *v);
	void (*format)(const struct uzd_config *cfg, const struct key_def *k, char *buf,
		       size_t len);
};

static const struct type_ops type_ops[] = {
	[T_PATH] = { parse_path, format_path },
	[T_MODE] = { parse_mode, format_mode },
	[T_UINT] = { parse_uint, format_uint },
	[T_LOGLEVEL] = { parse_loglevel, format_loglevel },
	[T_UIDS] = { parse_uids, format_uids },
	[T_SIZE] = { parse_size_key, format_size },
	[T_CENTI] = { parse_centi, format_centi },
	[T_CODEC] = { parse_codec, format_codec },
	[T_LEVEL] = { parse_level, format_level },
	[T_ALLOCATOR] = { parse_allocator, format_allocator },
	[T_POLICY] = { parse_policy, format_policy },
	[T_NICE] = { parse_nice, format_nice },
	[T_BOOL] = { parse_bool, format_bool },
	[T_BPATH] = { parse_bpath, format_path },
	[T_GROUP] = { parse_group, format_group },
	[T_GIDS] = { parse_gids, format_gids },
};

/* Big enough for any value: the longest is a full list of uids. */
#define VALUE_MAX 256

static void format_key(const struct uzd_config *cfg, enum key_id id, char *buf, size_t len)
{
	type_ops[keys[id].type].format(cfg, &keys[id], buf, len);
}

/* ---- defaults ---- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* One user's share of max_clients by default: half, so that no user can take them all. */
static unsigned int uid_clients_for(unsigned int max_clients)
{
	return max_clients > 1 ? max_clients / 2 : 1;
}

void uzd_config_defaults(struct uzd_config *cfg, uint64_t ram_bytes)
{
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->socket, UZD_DEFAULT_SOCKET, sizeof(UZD_DEFAULT_SOCKET));
	cfg->socket_mode = 0660;
	cfg->fault_threads = 1;
	cfg->log_level = UZD_LOG_INFO;

	cfg->allow_all_uids = true;
	cfg->admin_group_set = false;
	cfg->max_clients = 256;
	cfg->uid_max_clients = uid_clients_for(cfg->max_clients);
	cfg->uid_max_connections = cfg->uid_max_clients + DEF_UID_EXTRA_CONNECTIONS;
	cfg->uid_clients_derived = cfg->uid_connections_derived = true;
	cfg->uid_max_regions = DEF_UID_MAX_REGIONS;
	cfg->client_max_regions = UZD_REGION_MAX_PER_TABLE;
	cfg->uid_max_managed = percent_of(ram_bytes > MIN_BUDGET ? ram_bytes : MIN_BUDGET,
					  DEF_MANAGED_PCT);
	cfg->client_max_managed = cfg->uid_max_managed;

	cfg->max_resident = percent_of(ram_bytes, DEF_MAX_RESIDENT_PCT);
	cfg->client_max_resident = min_u64(DEF_CLIENT_MAX_RESIDENT, cfg->max_resident);
	cfg->uid_max_resident = cfg->max_resident;
	cfg->high_watermark = 100;
	cfg->low_watermark = 90;
	cfg->client_min_resident = min_u64(DEF_CLIENT_MIN_RESIDENT, cfg->client_max_resident);
	cfg->throttle_above = 150;

	cfg->psi_some_avg10_centi = DEF_PSI_SOME_AVG10_CENTI;
	cfg->min_available = percent_of(ram_bytes, DEF_MIN_AVAILABLE_PCT);
	cfg->interval_ms = 1000;

	/* Cannot fail: configure requires lz4.  The fallback is what it resolves to. */
	if (uzc_spec_parse("lz4", 0, &cfg->codec))
		cfg->codec = (struct uzc_spec){ .id = UZC_CODEC_LZ4, .level = 0 };
	cfg->max_compressed = UZC_DEFAULT_MAX_LEN;

	/* The registry lists its default first. */
	cfg->allocator = zpool_driver_names()[0];
	cfg->pool_max_size = percent_of(ram_bytes, DEF_POOL_MAX_SIZE_PCT);
	cfg->accept_threshold = DEF_ACCEPT_THRESHOLD;

	cfg->writeback = true;
	memcpy(cfg->backing_path, UZD_DEFAULT_BACKING, sizeof(UZD_DEFAULT_BACKING));
	cfg->backing_max_size = percent_of(ram_bytes, DEF_BACKING_MAX_SIZE_PCT);
	if (cfg->backing_max_size < MIN_BACKING_SIZE)
		cfg->backing_max_size = MIN_BACKING_SIZE;

	cfg->page_cluster = DEF_PAGE_CLUSTER;
	cfg->busy_poll_us = DEF_BUSY_POLL_US;
	cfg->policy = UZD_POLICY_WORKINGSET;
	cfg->reclaim_nice = -10;
	cfg->sample_pct = DEF_SAMPLE_PCT;
	cfg->sample_touched_pct = DEF_SAMPLE_TOUCHED_PCT;
}

/* ---- the reader: one whole line per call, and its shape checked ---- */

static bool line_is_key(const char *s)
{
	bool was_space = false;

	/* inih's rule: '=' or ':' before an inline comment (" ;"). */
	for (; *s; s++) {
		if (*s == '=' || *s == ':')
			return true;
		if (*s == ';' && was_space)
			return false;
		was_space = isspace((unsigned char)*s);
	}
	return false;
}

static bool section_known(const char *name, size_t len)
{
	for (size_t i = 0; i < K_COUNT; i++)
		if (strlen(keys[i].section) == len && memcmp(keys[i].section, name, len) == 0)
			return true;
	return false;
}

/* A "[section]" line, as inih reads it: the name is all up to the first ']'. */
static int check_section(struct parse_ctx *ctx, const char *s)
{
	const char *close = strchr(s + 1, ']');

	ctx->after_key = false;
	if (!close)
		return fail(ctx, "\"[\" without \"]\" in a section header");
	if (!section_known(s + 1, (size_t)(close - s - 1)))
		return fail(ctx, "unknown section [%.*s]", (int)(close - s - 1), s + 1);
	/* inih ignores what follows the ']': only blanks and a comment may. */
	for (const char *t = close + 1; *t && *t != ';' && *t != '#'; t++)
		if (!isspace((unsigned char)*t))
			return fail(ctx, "text after the section header [%.*s]",
				    (int)(close - s - 1), s + 1);
	return 0;
}

/*
 * Control characters other than tab and a CRLF or LF line end: no value
 * needs one, a path with one is a trap, and uzd_config_dump() could not
 * write it back (found by tests/fuzz/fuzz_config: a socket path with a CR).
 */
static bool has_control(const char *s, size_t len)
{
	if (len && s[len - 1] == '\n')
		len--;
	if (len && s[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < len; i++)
		if (iscntrl((unsigned char)s[i]) && s[i] != '\t')
			return true;
	return false;
}

static int check_line(struct parse_ctx *ctx, size_t len, int max)
{
	const char *s = ctx->line;

	if (len > (size_t)max - 1)
		return fail(ctx, "line is longer than %d characters", max - 2);
	if (strlen(s) != len)
		return fail(ctx, "line contains a NUL byte");
	if (has_control(s, len))
		return fail(ctx, "line contains a control character (only tabs and the line end "
				 "may be there)");
	if (ctx->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3; /* a UTF-8 byte-order mark, which inih skips too */
	while (isspace((unsigned char)*s))
		s++;
	if (!*s || *s == ';' || *s == '#')
		return 0;
	if (s > ctx->line && ctx->after_key)
		return fail(ctx, "indented line: continuation lines are not supported (remove the "
				 "indentation)");
	if (*s == '[')
		return check_section(ctx, s);
	if (!line_is_key(s))
		return fail(ctx, "expected \"key = value\", \"[section]\" or a comment");
	ctx->after_key = true;
	return 0;
}

static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	ssize_t len;

	if (ctx->rc)
		return NULL; /* stop at the first error */
	errno = 0;
	len = getline(&ctx->line, &ctx->cap, ctx->f);
	if (len < 0) {
		if (ferror(ctx->f))
			file_error(ctx, errno ? errno : EIO);
		else if (errno == ENOMEM)
			file_error(ctx, ENOMEM);
		return NULL;
	}
	ctx->lineno++;
	if (check_line(ctx, (size_t)len, num))
		return NULL;
	memcpy(str, ctx->line, (size_t)len + 1);
	return str;
}

/* ---- the handler: one key = value ---- */

static int key_find(const char *section, const char *name)
{
	for (int id = 0; id < K_COUNT; id++)
		if (strcmp(keys[id].section, section) == 0 && strcmp(keys[id].name, name) == 0)
			return id;
	return -1;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	int id;

	if (ctx->rc)
		return 0;
	if (!*section) {
		fail(ctx, "key \"%s\" is outside any section", name);
		return 0;
	}
	id = key_find(section, name);
	if (id < 0) {
		fail(ctx, "[%s] unknown key \"%s\"", section, name);
		return 0;
	}
	if (ctx->set_line[id]) {
		fail(ctx, "[%s] duplicate key \"%s\" (first set on line %d)", section, name,
		     ctx->set_line[id]);
		return 0;
	}
	if (type_ops[keys[id].type].parse(ctx, &keys[id], value))
		return 0;
	ctx->set_line[id] = ctx->lineno;
	return 1;
}

/* ---- after the file: what depends on more than one key ---- */

static int resolve_codec(struct parse_ctx *ctx)
{
	const char *name = uzc_codec_name(ctx->codec_id);
	int min = 0, max = 0, def = 0;

	if (uzc_spec_parse(name, ctx->level, &ctx->cfg.codec) == 0)
		return 0;
	uzc_codec_levels(ctx->codec_id, &min, &max, &def);
	return key_fail_at(ctx, ctx->set_line[K_LEVEL], &keys[K_LEVEL],
			   "%d is out of range for %s (%d..%d, 0 = default)", ctx->level, name, min,
			   max);
}

/* Per-client defaults shrink to fit a small global budget, as in uzd_config_defaults(). */
static void derive_defaults(struct parse_ctx *ctx)
{
	struct uzd_config *cfg = &ctx->cfg;

	cfg->uid_clients_derived = !ctx->set_line[K_UID_MAX_CLIENTS];
	cfg->uid_connections_derived = !ctx->set_line[K_UID_MAX_CONNECTIONS];
	if (cfg->uid_clients_derived)
		cfg->uid_max_clients = uid_clients_for(cfg->max_clients);
	if (cfg->uid_connections_derived)
		cfg->uid_max_connections = cfg->uid_max_clients + DEF_UID_EXTRA_CONNECTIONS;
	if (!ctx->set_line[K_UID_MAX_RESIDENT])
		cfg->uid_max_resident = cfg->max_resident;
	if (!ctx->set_line[K_CLIENT_MAX_RESIDENT])
		cfg->client_max_resident = min_u64(DEF_CLIENT_MAX_RESIDENT, cfg->uid_max_resident);
	if (!ctx->set_line[K_CLIENT_MAX_MANAGED])
		cfg->client_max_managed = cfg->uid_max_managed;
	if (!ctx->set_line[K_CLIENT_MAX_REGIONS] && cfg->client_max_regions > cfg->uid_max_regions)
		cfg->client_max_regions = cfg->uid_max_regions;
	if (!ctx->set_line[K_CLIENT_MIN_RESIDENT])
		cfg->client_min_resident = min_u64(DEF_CLIENT_MIN_RESIDENT,
						   cfg->client_max_resident);
}

static uint64_t key_number(const struct uzd_config *cfg, enum key_id id)
{
	if (keys[id].type == T_SIZE)
		return *(const uint64_t *)cfield(cfg, &keys[id]);
	return *(const unsigned int *)cfield(cfg, &keys[id]);
}

/* lo must not exceed hi; why says what would go wrong otherwise. */
struct order_rule {
	enum key_id lo, hi;
	const char *why;
};

static const struct order_rule order_rules[] = {
	{ K_LOW_WATERMARK, K_HIGH_WATERMARK, "reclaim would stop above the level it starts at" },
	{ K_CLIENT_MIN_RESIDENT, K_CLIENT_MAX_RESIDENT,
	  "a client's floor would be above its budget" },
	{ K_CLIENT_MAX_RESIDENT, K_MAX_RESIDENT,
	  "one client could hold more than all clients together" },
	{ K_CLIENT_MAX_RESIDENT, K_UID_MAX_RESIDENT,
	  "one client could hold more than all of its user's clients together" },
	{ K_CLIENT_MAX_MANAGED, K_UID_MAX_MANAGED,
	  "one client could manage more than all of its user's clients together" },
	{ K_CLIENT_MAX_REGIONS, K_UID_MAX_REGIONS,
	  "one client could have more regions than all of its user's clients together" },
	{ K_UID_MAX_CLIENTS, K_UID_MAX_CONNECTIONS,
	  "a user's clients would be refused for want of connections" },
	{ K_UID_MAX_CLIENTS, K_MAX_CLIENTS,
	  "one user could have more clients than the daemon serves" },
};

static int check_order(struct parse_ctx *ctx, const struct order_rule *r)
{
	char lo[VALUE_MAX], hi[VALUE_MAX], where[32];
	bool blame_lo = ctx->set_line[r->lo] != 0;
	enum key_id other = blame_lo ? r->hi : r->lo;

	if (key_number(&ctx->cfg, r->lo) <= key_number(&ctx->cfg, r->hi))
		return 0;
	format_key(&ctx->cfg, r->lo, lo, sizeof(lo));
	format_key(&ctx->cfg, r->hi, hi, sizeof(hi));
	if (ctx->set_line[other])
		snprintf(where, sizeof(where), "line %d", ctx->set_line[other]);
	else
		snprintf(where, sizeof(where), "the default");
	if (blame_lo)
		return key_fail_at(ctx, ctx->set_line[r->lo], &keys[r->lo],
				   "%s is above %s %s (%s): %s", lo, keys[r->hi].name, hi, where,
				   r->why);
	return key_fail_at(ctx, ctx->set_line[r->hi], &keys[r->hi], "%s is below %s %s (%s): %s",
			   hi, keys[r->lo].name, lo, where, r->why);
}

static int resolve(struct parse_ctx *ctx)
{
	int rc = resolve_codec(ctx);

	if (rc)
		return rc;
	derive_defaults(ctx);
	for (size_t i = 0; i < sizeof(order_rules) / sizeof(order_rules[0]); i++) {
		rc = check_order(ctx, &order_rules[i]);
		if (rc)
			return rc;
	}
	return 0;
}

int uzd_config_refit_clients(struct uzd_config *cfg, unsigned int max_clients, char *err,
			     size_t errlen)
{
	if (cfg->uid_clients_derived)
		cfg->uid_max_clients = uid_clients_for(max_clients);
	if (cfg->uid_connections_derived)
		cfg->uid_max_connections = cfg->uid_max_clients + DEF_UID_EXTRA_CONNECTIONS;
	if (cfg->uid_max_clients > max_clients) {
		snprintf(err, errlen,
			 "[clients] uid_max_clients: %u is above the running max_clients %u, which "
			 "changes only with a restart: one user could have more clients than the "
			 "daemon serves",
			 cfg->uid_max_clients, max_clients);
		return -EINVAL;
	}
	if (cfg->uid_max_clients > cfg->uid_max_connections) {
		snprintf(err, errlen,
			 "[clients] uid_max_connections: %u is below uid_max_clients %u (half the "
			 "running max_clients %u): a user's clients would be refused for want of "
			 "connections",
			 cfg->uid_max_connections, cfg->uid_max_clients, max_clients);
		return -EINVAL;
	}
	return 0;
}

/* ---- load and dump ---- */

static int parse_file(struct parse_ctx *ctx)
{
	int ret = ini_parse_stream(read_line, ctx, on_key, ctx);

	if (ctx->rc)
		return ctx->rc;
	/* Our reader rejects what inih would; this is a safety net. */
	if (ret > 0)
		return key_fail_at(ctx, ret, NULL, "syntax error");
	if (ret < 0)
		return file_error(ctx, ENOMEM);
	return resolve(ctx);
}

int uzd_config_load(const char *path, uint64_t ram_bytes, struct uzd_config *cfg, char *err,
		    size_t errlen)
{
	struct parse_ctx ctx = { .path = path, .ram = ram_bytes, .err = err, .errlen = errlen };
	int rc;

	if (err && errlen)
		err[0] = '\0';
	ctx.f = fopen(path, "re");
	if (!ctx.f)
		return file_error(&ctx, errno);
	uzd_config_defaults(&ctx.cfg, ram_bytes);
	ctx.codec_id = ctx.cfg.codec.id;
	rc = parse_file(&ctx);
	free(ctx.line);
	fclose(ctx.f);
	if (rc)
		return rc;
	*cfg = ctx.cfg;
	return 0;
}

/* inih strips spaces around a value and cuts it at " ;": such a value would not read back. */
static bool value_survives_ini(const char *v)
{
	size_t len = strlen(v);

	if (!len || isspace((unsigned char)v[0]) || isspace((unsigned char)v[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '\n' || v[i] == '\r')
			return false;
		if (v[i] == ';' && i && isspace((unsigned char)v[i - 1]))
			return false;
	}
	return true;
}

/* Every value formatted, or -EINVAL when one would not read back the same. */
static int format_all(const struct uzd_config *cfg, char values[K_COUNT][VALUE_MAX])
{
	for (int id = 0; id < K_COUNT; id++) {
		format_key(cfg, (enum key_id)id, values[id], VALUE_MAX);
		if (!value_survives_ini(values[id]) ||
		    strlen(keys[id].name) + 3 + strlen(values[id]) > INI_MAX_LINE - 2)
			return -EINVAL;
	}
	return 0;
}

int uzd_config_dump(const struct uzd_config *cfg, FILE *f)
{
	char values[K_COUNT][VALUE_MAX];
	const char *section = NULL;
	int rc = format_all(cfg, values);

	if (rc)
		return rc;
	fprintf(f, "# uzswapd configuration, resolved: sizes in bytes with binary suffixes\n");
	for (int id = 0; id < K_COUNT; id++) {
		if (!section || strcmp(section, keys[id].section) != 0) {
			section = keys[id].section;
			fprintf(f, "\n[%s]\n", section);
		}
		fprintf(f, "%s = %s\n", keys[id].name, values[id]);
	}
	errno = 0;
	if (fflush(f) || ferror(f))
		return errno ? -errno : -EIO;
	return 0;
}

/* ---- what a reload changes ---- */

unsigned int uzd_config_diff(const struct uzd_config *a, const struct uzd_config *b,
			     uzd_config_diff_fn fn, void *arg)
{
	char va[VALUE_MAX], vb[VALUE_MAX];
	unsigned int n = 0;

	for (int id = 0; id < K_COUNT; id++) {
		format_key(a, (enum key_id)id, va, sizeof(va));
		format_key(b, (enum key_id)id, vb, sizeof(vb));
		if (strcmp(va, vb) == 0)
			continue;
		n++;
		if (fn)
			fn(arg, id, keys[id].section, keys[id].name, keys[id].live);
	}
	return n;
}

/* The fields a key owns: its own, and for two of them the ones beside it. */
void uzd_config_copy_key(struct uzd_config *dst, const struct uzd_config *src, int key)
{
	const struct key_def *k;

	if (key < 0 || key >= K_COUNT)
		return;
	k = &keys[key];
	memcpy(field(dst, k), cfield(src, k), k->size);
	if (k->type == T_UIDS) {
		dst->allow_all_uids = src->allow_all_uids;
		dst->n_allow_uids = src->n_allow_uids;
	} else if (k->type == T_GROUP) {
		dst->admin_group_set = src->admin_group_set;
	} else if (k->type == T_GIDS) {
		dst->n_allow_gids = src->n_allow_gids;
	}
}

int uzd_config_key_id(const char *section, const char *name)
{
	return key_find(section, name);
}
