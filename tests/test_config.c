/* SPDX-License-Identifier: MIT */
/*
 * tests/test_config.c - daemon/config.c: defaults, the shipped
 * etc/uzswapd.conf, every key, sizes, every kind of error with its line,
 * failed loads leaving the config alone, and dump -> load round trips.
 *
 * The shipped file is found through UZSWAP_SRCDIR (the top source
 * directory, exported by `make check`), else as etc/uzswapd.conf or
 * ../etc/uzswapd.conf from the working directory.  Files under test are
 * written with mkstemp under /tmp and removed once loaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress/codec.h"
#include "daemon/config.h"
#include "tests/tap.h"

#define KIB (1ULL << 10)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)
#define TIB (1ULL << 40)
#define RAM (8 * GIB)

#define ERRLEN 512

/* ---- helpers ---- */

static int write_temp(const char *text, char *path, size_t pathlen)
{
	FILE *f;
	int fd;

	snprintf(path, pathlen, "/tmp/uzswap-test-config-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return -errno;
	}
	fputs(text, f);
	if (fclose(f)) {
		unlink(path);
		return -EIO;
	}
	return 0;
}

/* Load @text as a file; @path receives the name it had (already removed). */
static int load_text(const char *text, uint64_t ram, struct uzd_config *cfg, char *err, char *path,
		     size_t pathlen)
{
	int rc = write_temp(text, path, pathlen);

	if (rc) {
		snprintf(err, ERRLEN, "cannot write a temporary file: %s", strerror(-rc));
		return rc;
	}
	rc = uzd_config_load(path, ram, cfg, err, ERRLEN);
	unlink(path);
	return rc;
}

/* The first field in which @a and @b differ, or NULL when they are the same. */
static const char *config_diff(const struct uzd_config *a, const struct uzd_config *b)
{
#define SAME(f)           \
	if (a->f != b->f) \
	return #f
	if (strcmp(a->socket, b->socket) != 0)
		return "socket";
	SAME(socket_mode);
	SAME(fault_threads);
	SAME(log_level);
	SAME(allow_all_uids);
	SAME(n_allow_uids);
	for (unsigned int i = 0; i < a->n_allow_uids && i < UZD_MAX_ALLOW_UIDS; i++)
		SAME(allow_uids[i]);
	SAME(n_allow_gids);
	for (unsigned int i = 0; i < a->n_allow_gids && i < UZD_MAX_ALLOW_UIDS; i++)
		SAME(allow_gids[i]);
	SAME(max_clients);
	SAME(uid_max_clients);
	SAME(uid_max_connections);
	SAME(client_max_regions);
	SAME(uid_max_regions);
	SAME(client_max_managed);
	SAME(uid_max_managed);
	SAME(uid_max_resident);
	SAME(admin_group_set);
	SAME(admin_gid);
	SAME(max_resident);
	SAME(client_max_resident);
	SAME(high_watermark);
	SAME(low_watermark);
	SAME(client_min_resident);
	SAME(psi_some_avg10_centi);
	SAME(min_available);
	SAME(interval_ms);
	SAME(codec.id);
	SAME(codec.level);
	SAME(max_compressed);
	if (!a->allocator || !b->allocator || strcmp(a->allocator, b->allocator) != 0)
		return "allocator";
	SAME(pool_max_size);
	SAME(accept_threshold);
	SAME(writeback);
	if (strcmp(a->backing_path, b->backing_path) != 0)
		return "backing_path";
	SAME(backing_max_size);
	SAME(page_cluster);
	SAME(busy_poll_us);
	SAME(policy);
	SAME(throttle_above);
	SAME(reclaim_nice);
	return NULL;
#undef SAME
}

static bool config_same(const struct uzd_config *a, const struct uzd_config *b, const char *what)
{
	const char *diff = config_diff(a, b);

	if (diff)
		tap_diag("%s: field %s differs", what, diff);
	return !diff;
}

static int read_all(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n == len - 1 ? -EFBIG : 0;
}

/* ---- the keys: a valid non-default value for each, and where it lands ---- */

struct key_case {
	const char *section, *key, *value;
	bool (*check)(const struct uzd_config *c);
};

#define CHECK(name, expr)                            \
	static bool name(const struct uzd_config *c) \
	{                                            \
		return expr;                         \
	}

CHECK(socket_set, strcmp(c->socket, "/tmp/uz.sock") == 0)
CHECK(socket_mode_set, c->socket_mode == 0600)
CHECK(fault_threads_set, c->fault_threads == 4)
CHECK(log_level_set, c->log_level == UZD_LOG_DEBUG)
CHECK(allow_uids_set, !c->allow_all_uids && c->n_allow_uids == 3 && c->allow_uids[0] == 0 &&
			      c->allow_uids[1] == 1000 && c->allow_uids[2] == 65534)
CHECK(allow_groups_set, c->n_allow_gids == 2 && c->allow_gids[0] == 0 && c->allow_gids[1] == 4242)
CHECK(max_clients_set, c->max_clients == 8)
CHECK(uid_max_clients_set, c->uid_max_clients == 5)
CHECK(uid_max_connections_set, c->uid_max_connections == 200)
CHECK(client_max_regions_set, c->client_max_regions == 100)
CHECK(uid_max_regions_set, c->uid_max_regions == 1000)
CHECK(client_max_managed_set, c->client_max_managed == 1 * GIB)
CHECK(uid_max_managed_set, c->uid_max_managed == 2 * RAM)
CHECK(uid_max_resident_set, c->uid_max_resident == 3 * GIB)
CHECK(admin_group_set, c->admin_group_set && c->admin_gid == 4242)
CHECK(max_resident_set, c->max_resident == 2 * GIB)
CHECK(client_max_resident_set, c->client_max_resident == 64 * MIB)
CHECK(high_watermark_set, c->high_watermark == 95)
CHECK(low_watermark_set, c->low_watermark == 80)
CHECK(client_min_resident_set, c->client_min_resident == 1 * MIB)
CHECK(psi_set, c->psi_some_avg10_centi == 250)
CHECK(min_available_set, c->min_available == RAM / 100)
CHECK(interval_set, c->interval_ms == 250)
CHECK(codec_set, c->codec.id == UZC_CODEC_ZSTD && c->codec.level == 3)
CHECK(level_set, c->codec.id == UZC_CODEC_LZ4 && c->codec.level == 5)
CHECK(max_compressed_set, c->max_compressed == 4096)
CHECK(allocator_set, strcmp(c->allocator, "zbud") == 0)
CHECK(max_size_set, c->pool_max_size == 512 * MIB)
CHECK(page_cluster_set, c->page_cluster == 0)
CHECK(busy_poll_us_set, c->busy_poll_us == 0)
CHECK(policy_set, c->policy == UZD_POLICY_FIFO)
CHECK(throttle_set, c->throttle_above == 0)
CHECK(nice_set, c->reclaim_nice == -3)
CHECK(sample_pct_set, c->sample_pct == 25)
CHECK(sample_touched_pct_set, c->sample_touched_pct == 0)
CHECK(accept_threshold_set, c->accept_threshold == 75)
CHECK(writeback_set, !c->writeback)
CHECK(backing_path_set, strcmp(c->backing_path, "/srv/uzswap/backing") == 0)
CHECK(backing_max_size_set, c->backing_max_size == 3 * GIB)

static const struct key_case key_cases[] = {
	{ "daemon", "socket", "/tmp/uz.sock", socket_set },
	{ "daemon", "socket_mode", "0600", socket_mode_set },
	{ "daemon", "fault_threads", "4", fault_threads_set },
	{ "daemon", "log_level", "debug", log_level_set },
	{ "clients", "allow_uids", "0, 1000,65534", allow_uids_set },
	{ "clients", "allow_groups", "root, 4242", allow_groups_set },
	{ "clients", "max_clients", "8", max_clients_set },
	{ "clients", "uid_max_clients", "5", uid_max_clients_set },
	{ "clients", "uid_max_connections", "200", uid_max_connections_set },
	{ "clients", "client_max_regions", "100", client_max_regions_set },
	{ "clients", "uid_max_regions", "1000", uid_max_regions_set },
	{ "clients", "client_max_managed", "1G", client_max_managed_set },
	{ "clients", "uid_max_managed", "200%", uid_max_managed_set },
	{ "clients", "admin_group", "4242", admin_group_set },
	{ "budget", "max_resident", "2G", max_resident_set },
	{ "budget", "client_max_resident", "64MiB", client_max_resident_set },
	{ "budget", "uid_max_resident", "3G", uid_max_resident_set },
	{ "budget", "high_watermark", "95", high_watermark_set },
	{ "budget", "low_watermark", "80", low_watermark_set },
	{ "budget", "client_min_resident", "1024K", client_min_resident_set },
	{ "pressure", "psi_some_avg10", "2.5", psi_set },
	{ "pressure", "min_available", "1%", min_available_set },
	{ "pressure", "interval_ms", "250", interval_set },
	{ "compress", "codec", "zstd", codec_set },
	{ "compress", "level", "5", level_set },
	{ "compress", "max_compressed", "4096", max_compressed_set },
	{ "pool", "allocator", "zbud", allocator_set },
	{ "pool", "max_size", "512M", max_size_set },
	{ "fault", "page_cluster", "0", page_cluster_set },
	{ "fault", "busy_poll_us", "0", busy_poll_us_set },
	{ "reclaim", "policy", "fifo", policy_set },
	{ "budget", "throttle_above", "0", throttle_set },
	{ "reclaim", "nice", "-3", nice_set },
	{ "reclaim", "sample_pct", "25", sample_pct_set },
	{ "reclaim", "sample_touched_pct", "0", sample_touched_pct_set },
	{ "pool", "accept_threshold", "75", accept_threshold_set },
	{ "backing", "writeback", "no", writeback_set },
	{ "backing", "path", "/srv/uzswap/backing", backing_path_set },
	{ "backing", "max_size", "3G", backing_max_size_set },
};
#define N_KEYS (sizeof(key_cases) / sizeof(key_cases[0]))

static void test_each_key_lands_in_its_field(void)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_case *kc = &key_cases[i];
		char text[256], path[64], err[ERRLEN];
		struct uzd_config cfg, def;
		int rc;

		snprintf(text, sizeof(text), "[%s]\n%s = %s\n", kc->section, kc->key, kc->value);
		uzd_config_defaults(&def, RAM);
		uzd_config_defaults(&cfg, RAM);
		rc = load_text(text, RAM, &cfg, err, path, sizeof(path));
		if (rc)
			tap_diag("load gave %d: %s", rc, err);
		ok(rc == 0 && kc->check(&cfg) && !kc->check(&def),
		   "[%s] %s = %s loads into its field", kc->section, kc->key, kc->value);
	}
}

/* Every key with its non-default value, one section header each. */
static void all_keys_text(char *text, size_t len)
{
	const char *section = NULL;
	size_t n = 0;

	for (size_t i = 0; i < N_KEYS && n < len; i++) {
		const struct key_case *kc = &key_cases[i];
		const char *value = kc->value;
		int w;

		if (strcmp(kc->key, "level") == 0)
			value = "7"; /* a zstd level now, not lz4's acceleration */
		if (!section || strcmp(section, kc->section) != 0) {
			section = kc->section;
			w = snprintf(text + n, len - n, "[%s]\n", section);
			n += w > 0 ? (size_t)w : 0;
		}
		w = snprintf(text + n, len - n, "%s = %s\n", kc->key, value);
		n += w > 0 ? (size_t)w : 0;
	}
}

static void test_all_keys_together(void)
{
	char text[2048], path[64], err[ERRLEN];
	struct uzd_config cfg;
	bool all = true;
	int rc;

	all_keys_text(text, sizeof(text));
	uzd_config_defaults(&cfg, RAM);
	rc = load_text(text, RAM, &cfg, err, path, sizeof(path));
	if (rc)
		tap_diag("load gave %d: %s", rc, err);
	for (size_t i = 0; rc == 0 && i < N_KEYS; i++) {
		const char *key = key_cases[i].key;

		if (strcmp(key, "codec") == 0 || strcmp(key, "level") == 0)
			continue;
		if (!key_cases[i].check(&cfg)) {
			tap_diag("%s did not land", key);
			all = false;
		}
	}
	ok(rc == 0 && all && cfg.codec.id == UZC_CODEC_ZSTD && cfg.codec.level == 7,
	   "a file setting every key loads them all, codec and level together");
}

/* ---- defaults and the shipped file ---- */

static void test_defaults(void)
{
	struct uzd_config c;

	uzd_config_defaults(&c, RAM);
	ok(strcmp(c.socket, UZD_DEFAULT_SOCKET) == 0 && c.socket_mode == 0660 &&
		   c.fault_threads == 1 && c.log_level == UZD_LOG_INFO && c.allow_all_uids &&
		   c.n_allow_uids == 0 && c.n_allow_gids == 0 && c.max_clients == 256,
	   "defaults of [daemon] and [clients] are the documented ones");
	ok(c.uid_max_connections == 144 && c.uid_max_clients == 128 &&
		   c.client_max_regions == 4096 && c.uid_max_regions == 16384 &&
		   c.client_max_managed == 4 * RAM && c.uid_max_managed == 4 * RAM &&
		   c.uid_max_resident == c.max_resident,
	   "the default quotas are the documented ones on 8 GiB of RAM");
	ok(c.max_resident == RAM / 2 && c.client_max_resident == 256 * MIB &&
		   c.high_watermark == 100 && c.low_watermark == 90 &&
		   c.client_min_resident == 4 * MIB,
	   "defaults of [budget] are the documented ones on 8 GiB of RAM");
	ok(c.psi_some_avg10_centi == 1000 && c.min_available == RAM * 5 / 100 &&
		   c.interval_ms == 1000 && c.codec.id == UZC_CODEC_LZ4 && c.codec.level == 0 &&
		   c.max_compressed == UZC_DEFAULT_MAX_LEN &&
		   strcmp(c.allocator, "zsmalloc") == 0 && c.pool_max_size == RAM / 4 &&
		   c.page_cluster == 3 && c.busy_poll_us == 50,
	   "defaults of [pressure], [compress], [pool] and [fault] are the documented ones");
	ok(c.accept_threshold == 90 && c.writeback &&
		   strcmp(c.backing_path, "/var/lib/uzswap/") == 0 && c.backing_max_size == RAM / 2,
	   "defaults of the pool limit and [backing] are the documented ones");

	uzd_config_defaults(&c, 256 * MIB);
	ok(c.max_resident == 128 * MIB && c.client_max_resident == 128 * MIB &&
		   c.client_min_resident == 4 * MIB,
	   "on 256 MiB of RAM the default client budget shrinks to max_resident");
}

static bool find_shipped(char *path, size_t len)
{
	const char *dir = getenv("UZSWAP_SRCDIR");
	static const char *const guesses[] = { "etc/uzswapd.conf", "../etc/uzswapd.conf" };

	if (dir && *dir) {
		snprintf(path, len, "%s/etc/uzswapd.conf", dir);
		return access(path, R_OK) == 0;
	}
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, len, "%s", guesses[i]);
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

/*
 * The shipped file with every "#key = value" line uncommented: the
 * documented defaults, written out, must be the code's defaults.
 */
static size_t uncomment_defaults(const char *in, char *out, size_t len)
{
	size_t n = 0, keys = 0;

	for (const char *l = in; *l && n + 1 < len;) {
		const char *nl = strchr(l, '\n');
		size_t ll = nl ? (size_t)(nl - l + 1) : strlen(l);
		size_t name = l[0] == '#' ? strspn(l + 1, "abcdefghijklmnopqrstuvwxyz_0123456789") :
					    0;
		bool is_default = name && strncmp(l + 1 + name, " = ", 3) == 0;

		if (is_default) {
			l++, ll--, keys++;
		}
		if (n + ll >= len)
			break;
		memcpy(out + n, l, ll);
		n += ll;
		l += ll;
	}
	out[n] = '\0';
	return keys;
}

static void test_shipped_file(void)
{
	static char text[32768], uncommented[32768];
	char path[4096], tmp[64], err[ERRLEN];
	struct uzd_config cfg, def;
	size_t keys;
	int rc;

	if (!find_shipped(path, sizeof(path))) {
		ok(false, "the shipped etc/uzswapd.conf is found");
		tap_diag("not found as %s; set UZSWAP_SRCDIR to the top source directory", path);
		return;
	}
	for (int i = 0; i < 2; i++) {
		uint64_t ram = i ? 256 * MIB : RAM;

		uzd_config_defaults(&def, ram);
		memset(&cfg, 0, sizeof(cfg));
		rc = uzd_config_load(path, ram, &cfg, err, sizeof(err));
		if (rc)
			tap_diag("load gave %d: %s", rc, err);
		ok(rc == 0 && config_same(&cfg, &def, "shipped"),
		   "the shipped file loads and equals the defaults with %llu MiB of RAM",
		   (unsigned long long)(ram / MIB));
	}

	rc = read_all(path, text, sizeof(text));
	keys = rc ? 0 : uncomment_defaults(text, uncommented, sizeof(uncommented));
	ok(keys == N_KEYS,
	   "the shipped file documents a default for each of the %zu keys (saw %zu)", N_KEYS, keys);
	for (size_t i = 0; i < N_KEYS; i++) {
		char line[64];

		snprintf(line, sizeof(line), "\n#%s = ", key_cases[i].key);
		if (!strstr(text, line))
			tap_diag("no default line for %s", key_cases[i].key);
	}
	uzd_config_defaults(&def, RAM);
	memset(&cfg, 0, sizeof(cfg));
	rc = load_text(uncommented, RAM, &cfg, err, tmp, sizeof(tmp));
	if (rc)
		tap_diag("load gave %d: %s", rc, err);
	ok(rc == 0 && config_same(&cfg, &def, "uncommented"),
	   "the shipped file with its defaults uncommented loads and equals the defaults");
}

/* ---- sizes ---- */

struct size_case {
	const char *s;
	bool percent;
	int rc;
	uint64_t want;
};

static const struct size_case size_cases[] = {
	{ "0", false, 0, 0 },
	{ "4096", false, 0, 4096 },
	{ "4K", false, 0, 4 * KIB },
	{ "4k", false, 0, 4 * KIB },
	{ "3M", false, 0, 3 * MIB },
	{ "2G", false, 0, 2 * GIB },
	{ "1T", false, 0, TIB },
	{ "4KiB", false, 0, 4 * KIB },
	{ "5MiB", false, 0, 5 * MIB },
	{ "6GiB", false, 0, 6 * GIB },
	{ "7TiB", false, 0, 7 * TIB },
	{ "18446744073709551615", false, 0, UINT64_MAX },
	{ "16777215T", false, 0, 16777215 * TIB },
	{ "50%", true, 0, RAM / 2 },
	{ "100%", true, 0, RAM },
	{ "1%", true, 0, RAM / 100 },
	{ "18446744073709551616", false, -ERANGE, 0 },
	{ "16777216T", false, -ERANGE, 0 },
	{ "17179869184G", false, -ERANGE, 0 },
	{ "0%", true, -ERANGE, 0 },
	{ "101%", true, -ERANGE, 0 },
	{ "50%", false, -EINVAL, 0 },
	{ "", false, -EINVAL, 0 },
	{ "-1", false, -EINVAL, 0 },
	{ "+1", false, -EINVAL, 0 },
	{ " 1", false, -EINVAL, 0 },
	{ "1 ", false, -EINVAL, 0 },
	{ "1 K", false, -EINVAL, 0 },
	{ "12X", false, -EINVAL, 0 },
	{ "1KB", false, -EINVAL, 0 },
	{ "1Ki", false, -EINVAL, 0 },
	{ "1.5G", false, -EINVAL, 0 },
	{ "0x10", false, -EINVAL, 0 },
	{ "K", false, -EINVAL, 0 },
	{ "%", true, -EINVAL, 0 },
	{ "5.5%", true, -EINVAL, 0 },
	{ "50%%", true, -EINVAL, 0 },
};

static void test_sizes(void)
{
	for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
		const struct size_case *sc = &size_cases[i];
		uint64_t out = 12345;
		int rc = uzd_config_parse_size(sc->s, RAM, sc->percent, &out);
		bool good = rc == sc->rc && (rc ? out == 12345 : out == sc->want);

		if (!good)
			tap_diag("expected %d, %llu; saw %d, %llu", sc->rc,
				 (unsigned long long)sc->want, rc, (unsigned long long)out);
		ok(good, "size \"%s\"%s %s", sc->s, sc->percent ? " (percent allowed)" : "",
		   sc->rc ? (sc->rc == -ERANGE ? "is out of range" : "is refused") : "parses");
	}
}

/* ---- errors: exactly one PATH:LINE: message, and the config untouched ---- */

struct error_case {
	const char *what, *text, *msg; /* msg: what follows "PATH:" */
};

static const struct error_case error_cases[] = {
	{ "an unknown section", "# c\n\n[foo]\nx = 1\n", "3: unknown section [foo]" },
	{ "an empty unknown section", "[daemon]\n[foo]\n", "2: unknown section [foo]" },
	{ "text after a section header", "[budget]\n[daemon] junk\n",
	  "2: text after the section header [daemon]" },
	{ "an unknown key", "[daemon]\nsocket = /a\n\nfualt_threads = 2\n",
	  "4: [daemon] unknown key \"fualt_threads\"" },
	{ "a key of another section", "[pool]\ncodec = lz4\n", "2: [pool] unknown key \"codec\"" },
	{ "a key outside any section", "log_level = info\n",
	  "1: key \"log_level\" is outside any section" },
	{ "a duplicate key", "[daemon]\nfault_threads = 2\n; again\nfault_threads = 3\n",
	  "4: [daemon] duplicate key \"fault_threads\" (first set on line 2)" },
	{ "a duplicate key in a repeated section",
	  "[daemon]\nlog_level = warn\n[pool]\nmax_size = 1G\n[daemon]\nlog_level = warn\n",
	  "6: [daemon] duplicate key \"log_level\" (first set on line 2)" },
	{ "a line without =", "[daemon]\nfault_threads\n",
	  "2: expected \"key = value\", \"[section]\" or a comment" },
	{ "a section without ]", "[daemon\n", "1: \"[\" without \"]\" in a section header" },
	{ "a continuation line", "[daemon]\nlog_level = info\n\n  debug\n",
	  "4: indented line: continuation lines are not supported (remove the indentation)" },
	{ "a relative socket path", "[daemon]\nsocket = run/uz.sock\n",
	  "2: [daemon] socket: \"run/uz.sock\" is not an absolute path" },
	{ "a socket path too long for sun_path",
	  "[daemon]\nsocket = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  "2: [daemon] socket: the path is 111 bytes long; a unix socket path holds 107" },
	{ "a non-octal socket mode", "[daemon]\nsocket_mode = 0680\n",
	  "2: [daemon] socket_mode: \"0680\" is not an octal file mode (0000..0777)" },
	{ "a socket mode with special bits", "[daemon]\nsocket_mode = 1777\n",
	  "2: [daemon] socket_mode: \"1777\" is not an octal file mode (0000..0777)" },
	{ "zero fault threads", "[daemon]\nfault_threads = 0\n",
	  "2: [daemon] fault_threads: 0 is out of range (1..64)" },
	{ "too many fault threads", "[daemon]\nfault_threads = 65\n",
	  "2: [daemon] fault_threads: 65 is out of range (1..64)" },
	{ "a negative number", "[daemon]\nfault_threads = -1\n",
	  "2: [daemon] fault_threads: \"-1\" is not a whole number" },
	{ "a number too large for 64 bits", "[clients]\nmax_clients = 99999999999999999999\n",
	  "2: [clients] max_clients: 99999999999999999999 is out of range (1..65536)" },
	{ "a word for a number", "[daemon]\nfault_threads = two\n",
	  "2: [daemon] fault_threads: \"two\" is not a whole number" },
	{ "a # after a value", "[daemon]\nfault_threads = 2 # two\n",
	  "2: [daemon] fault_threads: \"2 # two\" is not a whole number" },
	{ "an unknown log level", "[daemon]\nlog_level = verbose\n",
	  "2: [daemon] log_level: \"verbose\" is not one of error, warn, info, debug" },
	{ "a user name for a uid", "[clients]\nallow_uids = 1000, bob\n",
	  "2: [clients] allow_uids: \"bob\" is not a uid (use * or comma-separated numeric uids)" },
	{ "an empty uid entry", "[clients]\nallow_uids = 1000,,1001\n",
	  "2: [clients] allow_uids: empty entry in the list of uids" },
	{ "a uid listed twice", "[clients]\nallow_uids = 5, 6, 5\n",
	  "2: [clients] allow_uids: uid 5 is listed twice" },
	{ "* among uids", "[clients]\nallow_uids = *, 5\n",
	  "2: [clients] allow_uids: \"*\" is not a uid (use * or comma-separated numeric uids)" },
	{ "the uid -1", "[clients]\nallow_uids = 4294967295\n",
	  "2: [clients] allow_uids: 4294967295 is out of range for a uid" },
	{ "too many uids", "[clients]\nallow_uids = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n",
	  "2: [clients] allow_uids: more than 16 uids" },
	{ "zero max clients", "[clients]\nmax_clients = 0\n",
	  "2: [clients] max_clients: 0 is out of range (1..65536)" },
	{ "a size with a bad suffix", "[pool]\nmax_size = 12X\n",
	  "2: [pool] max_size: \"12X\" is not a size (use bytes with K/M/G/T suffix or a percentage "
	  "of RAM)" },
	{ "a percentage where only sizes go", "[budget]\nclient_max_resident = 10%\n",
	  "2: [budget] client_max_resident: \"10%\": a percentage of RAM is not accepted here (use "
	  "bytes with K/M/G/T suffix)" },
	{ "a percentage above 100", "[budget]\nmax_resident = 150%\n",
	  "2: [budget] max_resident: \"150%\" is not a percentage of RAM from 1% to 100%" },
	{ "a size that overflows", "[pool]\nmax_size = 99999999T\n",
	  "2: [pool] max_size: \"99999999T\" is too large" },
	{ "a budget below one page", "[budget]\nmax_resident = 100\n",
	  "2: [budget] max_resident: \"100\" is 100 bytes, below the minimum of 4096" },
	{ "an empty size", "[pool]\nmax_size =\n",
	  "2: [pool] max_size: \"\" is not a size (use bytes with K/M/G/T suffix or a percentage of "
	  "RAM)" },
	{ "a watermark below 50", "[budget]\nhigh_watermark = 40\n",
	  "2: [budget] high_watermark: 40 is out of range (50..100)" },
	{ "a low watermark below 10", "[budget]\nlow_watermark = 5\n",
	  "2: [budget] low_watermark: 5 is out of range (10..100)" },
	{ "a psi threshold with three decimals", "[pressure]\npsi_some_avg10 = 10.125\n",
	  "2: [pressure] psi_some_avg10: \"10.125\" is not a percentage from 0 to 100 with at most "
	  "two decimals" },
	{ "a psi threshold above 100", "[pressure]\npsi_some_avg10 = 100.01\n",
	  "2: [pressure] psi_some_avg10: \"100.01\" is not a percentage from 0 to 100 with at most "
	  "two decimals" },
	{ "a psi threshold with a % sign", "[pressure]\npsi_some_avg10 = 10%\n",
	  "2: [pressure] psi_some_avg10: \"10%\" is not a percentage from 0 to 100 with at most "
	  "two decimals" },
	{ "a pressure interval too short", "[pressure]\ninterval_ms = 99\n",
	  "2: [pressure] interval_ms: 99 is out of range (100..60000)" },
	{ "min_available above RAM", "[pressure]\nmin_available = 101%\n",
	  "2: [pressure] min_available: \"101%\" is not a percentage of RAM from 1% to 100%" },
	{ "an unknown codec", "[compress]\ncodec = lzo\n",
	  "2: [compress] codec: \"lzo\" is not one of lz4, lz4hc, zstd" },
	{ "the raw codec", "[compress]\ncodec = raw\n",
	  "2: [compress] codec: \"raw\" is not one of lz4, lz4hc, zstd" },
	{ "a word for a level", "[compress]\nlevel = max\n",
	  "2: [compress] level: \"max\" is not a whole number" },
	{ "an lz4hc level out of range", "[compress]\ncodec = lz4hc\n\nlevel = 13\n",
	  "4: [compress] level: 13 is out of range for lz4hc (1..12, 0 = default)" },
	{ "a level written before its codec", "[compress]\nlevel = -1\ncodec = lz4hc\n",
	  "2: [compress] level: -1 is out of range for lz4hc (1..12, 0 = default)" },
	{ "a level out of range for the default codec", "[compress]\nlevel = -1\n",
	  "2: [compress] level: -1 is out of range for lz4 (0..65537, 0 = default)" },
	{ "a tiny incompressible threshold", "[compress]\nmax_compressed = 63\n",
	  "2: [compress] max_compressed: 63 is out of range (64..4096)" },
	{ "an unknown allocator", "[pool]\nallocator = slab\n",
	  "2: [pool] allocator: \"slab\" is not one of zsmalloc, z3fold, zbud" },
	{ "a page cluster above 5", "[fault]\npage_cluster = 6\n",
	  "2: [fault] page_cluster: 6 is out of range (0..5)" },
	{ "a busy poll above 1000 us", "[fault]\nbusy_poll_us = 1001\n",
	  "2: [fault] busy_poll_us: 1001 is out of range (0..1000)" },
	{ "a nice value below -20", "[reclaim]\nnice = -21\n",
	  "2: [reclaim] nice: -21 is out of range (-20..19)" },
	{ "a carriage return inside a path", "[daemon]\nsocket = /tmp/a\rb.sock\n",
	  "2: line contains a control character (only tabs and the line end may be there)" },
	{ "a sampled share above 90%", "[reclaim]\nsample_pct = 91\n",
	  "2: [reclaim] sample_pct: 91 is out of range (0..90)" },
	{ "a break-even share above 100%", "[reclaim]\nsample_touched_pct = 101\n",
	  "2: [reclaim] sample_touched_pct: 101 is out of range (0..100)" },
	{ "an unknown reclaim policy", "[reclaim]\npolicy = lru\n",
	  "2: [reclaim] policy: \"lru\" is not one of workingset, fifo" },
	{ "a low watermark above the high one",
	  "[budget]\nhigh_watermark = 80\nlow_watermark = 85\n",
	  "3: [budget] low_watermark: 85 is above high_watermark 80 (line 2): reclaim would stop "
	  "above the level it starts at" },
	{ "a high watermark below the default low one", "[budget]\n\nhigh_watermark = 80\n",
	  "3: [budget] high_watermark: 80 is below low_watermark 90 (the default): reclaim would "
	  "stop above the level it starts at" },
	{ "a client floor above the client budget",
	  "[budget]\nclient_max_resident = 64M\nclient_min_resident = 65M\n",
	  "3: [budget] client_min_resident: 65M is above client_max_resident 64M (line 2): a "
	  "client's floor would be above its budget" },
	{ "a client floor above the default client budget", "[budget]\nclient_min_resident = 1G\n",
	  "2: [budget] client_min_resident: 1G is above client_max_resident 256M (the default): a "
	  "client's floor would be above its budget" },
	{ "a client budget above the global one",
	  "[budget]\nclient_max_resident = 8G\nmax_resident = 4G\n",
	  "2: [budget] client_max_resident: 8G is above max_resident 4G (line 3): one client could "
	  "hold more than all clients together" },
	{ "a client budget above the default global one", "[budget]\nclient_max_resident = 5G\n",
	  "2: [budget] client_max_resident: 5G is above max_resident 4G (the default): one client "
	  "could hold more than all clients together" },
	{ "more clients per uid than connections",
	  "[clients]\nuid_max_clients = 200\nuid_max_connections = 100\n",
	  "2: [clients] uid_max_clients: 200 is above uid_max_connections 100 (line 3): a "
	  "user's clients would be refused for want of connections" },
	{ "more clients per uid than the daemon serves",
	  "[clients]\nmax_clients = 64\nuid_max_clients = 100\nuid_max_connections = 200\n",
	  "3: [clients] uid_max_clients: 100 is above max_clients 64 (line 2): one user could "
	  "have more clients than the daemon serves" },
	{ "more clients per uid than the default max_clients",
	  "[clients]\nuid_max_clients = 300\nuid_max_connections = 400\n",
	  "2: [clients] uid_max_clients: 300 is above max_clients 256 (the default): one user "
	  "could have more clients than the daemon serves" },
	{ "an unknown group in allow_groups",
	  "[clients]\nallow_groups = root, no-such-group-uzswap\n",
	  "2: [clients] allow_groups: no group \"no-such-group-uzswap\" (use a group name or a "
	  "gid)" },
	{ "a group listed twice", "[clients]\nallow_groups = 0, root\n",
	  "2: [clients] allow_groups: group root (gid 0) is listed twice" },
	{ "an empty entry in allow_groups", "[clients]\nallow_groups = 1,,2\n",
	  "2: [clients] allow_groups: empty entry in the list of groups" },
	{ "a client's managed quota above its uid's",
	  "[clients]\nuid_max_managed = 1G\nclient_max_managed = 2G\n",
	  "3: [clients] client_max_managed: 2G is above uid_max_managed 1G (line 2): one client "
	  "could manage more than all of its user's clients together" },
	{ "a client's region quota above its uid's",
	  "[clients]\nclient_max_regions = 10\nuid_max_regions = 5\n",
	  "2: [clients] client_max_regions: 10 is above uid_max_regions 5 (line 3): one client "
	  "could have more regions than all of its user's clients together" },
	{ "a client budget above its uid's",
	  "[budget]\nuid_max_resident = 128M\n"
	  "client_max_resident = 256M\n",
	  "3: [budget] client_max_resident: 256M is above uid_max_resident 128M (line 2): one "
	  "client could hold more than all of its user's clients together" },
	{ "a managed percentage past 10000%", "[clients]\nuid_max_managed = 10001%\n",
	  "2: [clients] uid_max_managed: \"10001%\" is not a percentage of RAM from 1% to "
	  "10000%" },
	{ "an accept threshold below 50", "[pool]\naccept_threshold = 40\n",
	  "2: [pool] accept_threshold: 40 is out of range (50..100)" },
	{ "writeback neither yes nor no", "[backing]\nwriteback = maybe\n",
	  "2: [backing] writeback: \"maybe\" is not one of yes, no (or true, false, on, off, 1, "
	  "0)" },
	{ "a relative backing path", "[backing]\npath = var/lib/uzswap\n",
	  "2: [backing] path: \"var/lib/uzswap\" is not an absolute path" },
	{ "a backing file below four segments", "[backing]\nmax_size = 512K\n",
	  "2: [backing] max_size: \"512K\" is 524288 bytes, below the minimum of 1048576" },
	{ "only the first of two errors", "[daemon]\nfault_threads = 0\n[foo]\n",
	  "2: [daemon] fault_threads: 0 is out of range (1..64)" },
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
		const struct error_case *ec = &error_cases[i];
		char path[64], err[ERRLEN], want[ERRLEN];
		struct uzd_config cfg, before;
		int rc;

		memset(&cfg, 0xa5, sizeof(cfg));
		memcpy(&before, &cfg, sizeof(cfg));
		rc = load_text(ec->text, RAM, &cfg, err, path, sizeof(path));
		snprintf(want, sizeof(want), "%s:%s", path, ec->msg);
		if (rc != -EINVAL || strcmp(err, want) != 0)
			tap_diag("expected %d \"%s\"; saw %d \"%s\"", -EINVAL, want, rc, err);
		ok(rc == -EINVAL && strcmp(err, want) == 0 &&
			   memcmp(&cfg, &before, sizeof(cfg)) == 0,
		   "%s gives \"PATH:%.*s\" and leaves the config untouched", ec->what,
		   (int)strcspn(ec->msg, ":"), ec->msg);
	}
}

static void test_long_line(void)
{
	char text[512], path[64], err[ERRLEN], want[ERRLEN];
	struct uzd_config cfg;
	int rc;

	snprintf(text, sizeof(text), "[daemon]\n; %0250d\nlog_level = warn\n", 0);
	rc = load_text(text, RAM, &cfg, err, path, sizeof(path));
	snprintf(want, sizeof(want), "%s:2: line is longer than 198 characters", path);
	if (strcmp(err, want) != 0)
		tap_diag("saw %d \"%s\"", rc, err);
	ok(rc == -EINVAL && strcmp(err, want) == 0,
	   "a line longer than inih reads whole is an error on its own line");
}

static void test_missing_and_unreadable(void)
{
	const char *missing = "/tmp/uzswap-test-config-does-not-exist.conf";
	char err[ERRLEN], want[ERRLEN];
	struct uzd_config cfg, before;
	int rc;

	memset(&cfg, 0x5a, sizeof(cfg));
	memcpy(&before, &cfg, sizeof(cfg));
	unlink(missing);
	rc = uzd_config_load(missing, RAM, &cfg, err, sizeof(err));
	snprintf(want, sizeof(want), "%s: %s", missing, strerror(ENOENT));
	if (strcmp(err, want) != 0)
		tap_diag("saw %d \"%s\"", rc, err);
	ok(rc == -ENOENT && strcmp(err, want) == 0 && memcmp(&cfg, &before, sizeof(cfg)) == 0,
	   "a missing file gives -ENOENT and \"PATH: strerror\"");

	rc = uzd_config_load("/tmp", RAM, &cfg, err, sizeof(err));
	snprintf(want, sizeof(want), "/tmp: %s", strerror(EISDIR));
	if (strcmp(err, want) != 0)
		tap_diag("saw %d \"%s\"", rc, err);
	ok(rc == -EISDIR && strcmp(err, want) == 0 && memcmp(&cfg, &before, sizeof(cfg)) == 0,
	   "a directory gives -EISDIR and \"PATH: strerror\"");
}

static void test_error_buffer(void)
{
	char path[64], err[16];
	struct uzd_config cfg;
	int rc;

	memset(err, 'x', sizeof(err));
	rc = write_temp("[foo]\n", path, sizeof(path));
	if (rc == 0) {
		rc = uzd_config_load(path, RAM, &cfg, err, sizeof(err));
		ok(rc == -EINVAL && strlen(err) == sizeof(err) - 1 &&
			   strncmp(err, path, sizeof(err) - 1) == 0,
		   "a short error buffer gets the message truncated and terminated");
		rc = uzd_config_load(path, RAM, &cfg, NULL, 0);
		ok(rc == -EINVAL, "a load without an error buffer still fails");
		unlink(path);
	} else {
		ok(false, "a temporary file can be written");
	}
}

/* ---- syntax inih allows ---- */

static void test_syntax_accepted(void)
{
	static const char text[] = "\xEF\xBB\xBF; a comment\r\n"
				   "[daemon]\r\n"
				   "  fault_threads : 3 ; three\r\n"
				   "log_level=warn\r\n"
				   "  # indented comment\r\n"
				   "[clients]\n"
				   "allow_uids = *\n";
	char path[64], err[ERRLEN];
	struct uzd_config cfg;
	int rc;

	rc = load_text(text, RAM, &cfg, err, path, sizeof(path));
	if (rc)
		tap_diag("load gave %d: %s", rc, err);
	ok(rc == 0 && cfg.fault_threads == 3 && cfg.log_level == UZD_LOG_WARN && cfg.allow_all_uids,
	   "a BOM, CRLF, \":\", inline \" ;\" comments and indented keys after a header load");
}

static void test_derived_client_budget(void)
{
	char path[64], err[ERRLEN];
	struct uzd_config cfg;
	int rc;

	rc = load_text("[budget]\nmax_resident = 100M\n", RAM, &cfg, err, path, sizeof(path));
	if (rc)
		tap_diag("load gave %d: %s", rc, err);
	ok(rc == 0 && cfg.client_max_resident == 100 * MIB && cfg.client_min_resident == 4 * MIB,
	   "an unset client budget shrinks to a max_resident below 256M");
	rc = load_text("[budget]\nmax_resident = 2M\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == 0 && cfg.client_max_resident == 2 * MIB && cfg.client_min_resident == 2 * MIB,
	   "an unset client floor shrinks to the client budget");
}

/* ---- dump -> load ---- */

static int dump_to_text(const struct uzd_config *cfg, char *buf, size_t len)
{
	FILE *f = fmemopen(buf, len, "w");
	int rc;

	if (!f)
		return -errno;
	rc = uzd_config_dump(cfg, f);
	if (fclose(f) && !rc)
		rc = -EIO;
	return rc;
}

static void roundtrip(const struct uzd_config *cfg, uint64_t ram, const char *what)
{
	char text[4096], again[4096], path[64], err[ERRLEN];
	struct uzd_config back;
	int rc;

	rc = dump_to_text(cfg, text, sizeof(text));
	if (rc == 0)
		rc = load_text(text, ram, &back, err, path, sizeof(path));
	else
		snprintf(err, sizeof(err), "dump failed");
	if (rc)
		tap_diag("gave %d: %s", rc, err);
	ok(rc == 0 && config_same(cfg, &back, what), "dump then load gives the same config: %s",
	   what);
	ok(rc == 0 && dump_to_text(&back, again, sizeof(again)) == 0 && strcmp(text, again) == 0,
	   "dumping the reloaded config writes the same text: %s", what);
}

static void test_roundtrip(void)
{
	char text[2048], path[64], err[ERRLEN];
	struct uzd_config cfg;
	int rc;

	uzd_config_defaults(&cfg, RAM);
	roundtrip(&cfg, RAM, "defaults on 8 GiB");
	uzd_config_defaults(&cfg, 3 * GIB + 12345);
	roundtrip(&cfg, 3 * GIB + 12345, "defaults on an odd RAM size");

	all_keys_text(text, sizeof(text));
	rc = load_text(text, RAM, &cfg, err, path, sizeof(path));
	ok(rc == 0, "the file with every key set loads");
	if (rc == 0)
		roundtrip(&cfg, RAM, "every key set");

	uzd_config_defaults(&cfg, RAM);
	cfg.codec.id = UZC_CODEC_ZSTD;
	cfg.codec.level = -5;
	cfg.allow_all_uids = false;
	cfg.n_allow_uids = UZD_MAX_ALLOW_UIDS;
	for (unsigned int i = 0; i < UZD_MAX_ALLOW_UIDS; i++)
		cfg.allow_uids[i] = 4000000000u + i;
	cfg.psi_some_avg10_centi = 5;
	cfg.min_available = 0;
	roundtrip(&cfg, RAM, "negative zstd level, 16 ten-digit uids, psi 0.05, no min_available");

	uzd_config_defaults(&cfg, RAM);
	cfg.allow_all_uids = false;
	cfg.n_allow_uids = 0;
	cfg.n_allow_gids = UZD_MAX_ALLOW_UIDS;
	for (unsigned int i = 0; i < UZD_MAX_ALLOW_UIDS; i++)
		cfg.allow_gids[i] = 4000000000u + i;
	roundtrip(&cfg, RAM, "no uids (none) and 16 ten-digit gids");
}

/* ---- allow_groups and allow_uids = none ---- */

static void test_allow_groups(void)
{
	char path[64], err[ERRLEN];
	struct uzd_config cfg;
	int rc;

	rc = load_text("[clients]\nallow_uids = none\nallow_groups = root\n", RAM, &cfg, err, path,
		       sizeof(path));
	ok(rc == 0 && !cfg.allow_all_uids && cfg.n_allow_uids == 0 && cfg.n_allow_gids == 1 &&
		   cfg.allow_gids[0] == 0,
	   "allow_uids = none and allow_groups = root: no uid, gid 0 (%d: %s)", rc, err);
	rc = load_text("[clients]\nmax_clients = 32\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == 0 && cfg.uid_max_clients == 16 && cfg.uid_max_connections == 32,
	   "max_clients = 32 alone gives one uid 16 clients and 32 connections (%u, %u)",
	   cfg.uid_max_clients, cfg.uid_max_connections);
	rc = load_text("[clients]\nuid_max_clients = 200\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == 0 && cfg.uid_max_connections == 216,
	   "uid_max_clients = 200 alone gives 216 connections (%d: %s)", rc, err);
	rc = load_text("[clients]\nallow_groups = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n", RAM,
		       &cfg, err, path, sizeof(path));
	ok(rc == -EINVAL && strstr(err, ":2: [clients] allow_groups: more than 16 groups"),
	   "a 17th group is refused (%d: %s)", rc, err);
}

/* ---- admin_group ---- */

static void test_admin_group(void)
{
	char path[64], err[ERRLEN];
	struct uzd_config cfg;
	int rc;

	uzd_config_defaults(&cfg, RAM);
	ok(!cfg.admin_group_set, "by default there is no admin group: admin commands are root's");
	rc = load_text("[clients]\nadmin_group = root\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == 0 && cfg.admin_group_set && cfg.admin_gid == 0,
	   "admin_group = root resolves the name to gid 0 (%d: %s)", rc, err);
	rc = load_text("[clients]\nadmin_group = none\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == 0 && !cfg.admin_group_set, "admin_group = none sets no group (%d: %s)", rc, err);
	rc = load_text("[clients]\nadmin_group = no-such-group-uzswap\n", RAM, &cfg, err, path,
		       sizeof(path));
	ok(rc == -EINVAL && strstr(err, ":2: [clients] admin_group: no group "
					"\"no-such-group-uzswap\""),
	   "an unknown group name is refused with its line (%s)", err);
	rc = load_text("[clients]\nadmin_group = 12ab\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == -EINVAL && strstr(err, "\"12ab\" is not a gid"), "a bad gid is refused (%s)", err);
	rc = load_text("[clients]\nadmin_group = 4294967295\n", RAM, &cfg, err, path, sizeof(path));
	ok(rc == -EINVAL && strstr(err, "out of range for a gid"), "the gid -1 is refused (%s)",
	   err);
	uzd_config_defaults(&cfg, RAM);
	cfg.admin_group_set = true;
	cfg.admin_gid = 123456;
	roundtrip(&cfg, RAM, "an admin group by gid");
}

/* ---- what a reload sees ---- */

struct seen {
	char names[64][48];
	bool live[64];
	unsigned int n;
};

static void seen_key(void *arg, int id, const char *section, const char *name, bool live)
{
	struct seen *s = arg;

	(void)id;
	if (s->n < sizeof(s->live) / sizeof(s->live[0])) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "[%s] %s", section, name);
		s->live[s->n++] = live;
	}
}

static int seen_find(const struct seen *s, const char *name)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (!strcmp(s->names[i], name))
			return (int)i;
	return -1;
}

static void test_reload_view(void)
{
	static const char *const fixed[] = {
		"[daemon] socket",	 "[daemon] socket_mode", "[daemon] fault_threads",
		"[clients] max_clients", "[pool] allocator",	 "[backing] path",
		"[backing] max_size",
	};
	static const char *const live[] = {
		"[budget] client_max_resident",
		"[compress] codec",
		"[compress] level",
		"[pool] max_size",
		"[backing] writeback",
		"[fault] page_cluster",
		"[fault] busy_poll_us",
		"[clients] admin_group",
		"[clients] allow_groups",
		"[clients] uid_max_clients",
		"[clients] uid_max_connections",
		"[clients] client_max_managed",
		"[budget] uid_max_resident",
		"[daemon] log_level",
	};
	char text[2048], path[64], err[ERRLEN];
	struct uzd_config a, b;
	struct seen s = { .n = 0 };
	bool right = true;
	unsigned int n;
	int rc;

	uzd_config_defaults(&a, RAM);
	b = a;
	ok(uzd_config_diff(&a, &b, seen_key, &s) == 0 && s.n == 0,
	   "a config does not differ from itself");
	all_keys_text(text, sizeof(text));
	rc = load_text(text, RAM, &b, err, path, sizeof(path));
	n = uzd_config_diff(&a, &b, seen_key, &s);
	ok(rc == 0 && n == N_KEYS && s.n == N_KEYS,
	   "with every key changed, every key differs (%u of %zu)", n, N_KEYS);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		int k = seen_find(&s, fixed[i]);

		if (k < 0 || s.live[k]) {
			tap_diag("%s: expected fixed, saw %s", fixed[i],
				 k < 0 ? "nothing" : "live");
			right = false;
		}
	}
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		int k = seen_find(&s, live[i]);

		if (k < 0 || !s.live[k]) {
			tap_diag("%s: expected live, saw %s", live[i], k < 0 ? "nothing" : "fixed");
			right = false;
		}
	}
	ok(right, "the keys a running daemon cannot change are marked fixed, the rest live");
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		char section[16], name[32];

		sscanf(fixed[i], "[%15[^]]] %31s", section, name);
		uzd_config_copy_key(&b, &a, uzd_config_key_id(section, name));
	}
	s.n = 0;
	n = uzd_config_diff(&a, &b, seen_key, &s);
	right = n == N_KEYS - sizeof(fixed) / sizeof(fixed[0]);
	for (unsigned int i = 0; i < s.n; i++)
		right &= s.live[i];
	ok(right, "copying the fixed keys back leaves only live keys different (%u left)", n);
	b = a;
	b.allow_all_uids = false;
	b.n_allow_uids = 2;
	b.allow_uids[0] = 1;
	b.allow_uids[1] = 2;
	b.admin_group_set = true;
	b.admin_gid = 7;
	b.n_allow_gids = 1;
	b.allow_gids[0] = 9;
	uzd_config_copy_key(&a, &b, uzd_config_key_id("clients", "allow_uids"));
	uzd_config_copy_key(&a, &b, uzd_config_key_id("clients", "admin_group"));
	uzd_config_copy_key(&a, &b, uzd_config_key_id("clients", "allow_groups"));
	ok(uzd_config_diff(&a, &b, NULL, NULL) == 0,
	   "copying allow_uids, allow_groups and admin_group takes the fields beside them too");
	ok(uzd_config_key_id("backing", "writeback") >= 0 &&
		   uzd_config_key_id("backing", "nope") == -1,
	   "keys are found by section and name, and an unknown one is not");
}

/*
 * A reload keeps the running max_clients: the per-uid defaults the file's
 * max_clients gave are derived again from the running one, and a
 * uid_max_clients the file set above the running max_clients is refused.
 */
static void test_refit_clients(void)
{
	char path[64], err[ERRLEN] = "";
	struct uzd_config cfg;
	int rc;

	rc = load_text("[clients]\nmax_clients = 256\n", RAM, &cfg, err, path, sizeof(path));
	rc = rc ? rc : uzd_config_refit_clients(&cfg, 64, err, sizeof(err));
	ok(rc == 0 && cfg.uid_max_clients == 32 && cfg.uid_max_connections == 48,
	   "max_clients 256 in the file, 64 running: the defaults follow 64 (uid_max_clients %u, "
	   "uid_max_connections %u; %s)",
	   cfg.uid_max_clients, cfg.uid_max_connections, err);
	rc = load_text("[clients]\nuid_max_clients = 100\n", RAM, &cfg, err, path, sizeof(path));
	rc = rc ? rc : uzd_config_refit_clients(&cfg, 64, err, sizeof(err));
	ok(rc == -EINVAL &&
		   strcmp(err, "[clients] uid_max_clients: 100 is above the running max_clients "
			       "64, which changes only with a restart: one user could have more "
			       "clients than the daemon serves") == 0,
	   "uid_max_clients 100 set, max_clients 64 running: refused (%s)", err);
	rc = load_text("[clients]\nmax_clients = 64\nuid_max_connections = 40\n", RAM, &cfg, err,
		       path, sizeof(path));
	rc = rc ? rc : uzd_config_refit_clients(&cfg, 256, err, sizeof(err));
	ok(rc == -EINVAL && strstr(err, "uid_max_connections: 40 is below uid_max_clients 128"),
	   "uid_max_connections 40 set, the derived uid_max_clients 128 of a running 256 above "
	   "it: refused (%s)",
	   err);
	rc = load_text("[clients]\nuid_max_clients = 20\n", RAM, &cfg, err, path, sizeof(path));
	rc = rc ? rc : uzd_config_refit_clients(&cfg, 64, err, sizeof(err));
	ok(rc == 0 && cfg.uid_max_clients == 20 && cfg.uid_max_connections == 36,
	   "a uid_max_clients the file set stays as it is (%u, connections %u)",
	   cfg.uid_max_clients, cfg.uid_max_connections);
}

static void test_dump_refuses_what_cannot_read_back(void)
{
	char text[4096];
	struct uzd_config cfg;

	uzd_config_defaults(&cfg, RAM);
	snprintf(cfg.socket, sizeof(cfg.socket), "/run/a ;b");
	ok(dump_to_text(&cfg, text, sizeof(text)) == -EINVAL,
	   "dump refuses a socket path that inih would cut at \" ;\"");
	snprintf(cfg.socket, sizeof(cfg.socket), "/run/a ");
	ok(dump_to_text(&cfg, text, sizeof(text)) == -EINVAL,
	   "dump refuses a socket path with trailing space");
}

int main(void)
{
	test_defaults();
	test_shipped_file();
	test_each_key_lands_in_its_field();
	test_all_keys_together();
	test_sizes();
	test_errors();
	test_long_line();
	test_missing_and_unreadable();
	test_error_buffer();
	test_syntax_accepted();
	test_derived_client_budget();
	test_roundtrip();
	test_admin_group();
	test_allow_groups();
	test_reload_view();
	test_refit_clients();
	test_dump_refuses_what_cannot_read_back();
	return tap_done();
}
