/* SPDX-License-Identifier: MIT */
/*
 * tools/uzswapctl.c - the admin tool: show uzswapd's state, and tune it.
 *
 *   uzswapctl [--socket PATH] COMMAND [ARGS]
 *     read:  status, clients, regions PID, classes   (each with --json), metrics
 *     admin: set PID max-resident SIZE, compact, reclaim PID SIZE,
 *            writeback SIZE, reload
 *
 * Each command is one request on one connection, in the protocol of
 * include/uzswap_proto.h, without a HELLO.  The read commands fetch the
 * daemon's state (STATUS) or the pool's classes (CLASSES) through a memfd
 * the tool creates and the daemon writes (hundreds of clients do not fit a
 * datagram); tools/ctl_format.c checks those bytes and prints them, and
 * tools/ctl_metrics.c prints them for Prometheus.  The admin commands send
 * one ADMIN request and print what the reply says was done; the daemon
 * decides who may (root, or [clients] admin_group) and says why not.
 * This file only parses the command line and talks to the daemon.
 *
 * The socket is --socket, else $UZSWAP_SOCKET, else UZSWAP_DEFAULT_SOCKET:
 * the same precedence as libuzswap's, so the tool looks where clients do.
 *
 * Exit status: 0 on success, 1 when the daemon cannot be reached, refuses,
 * or answers something malformed (each with one line on stderr saying
 * which), 2 for a usage error.  It must never hang on a daemon that does
 * not answer: the socket has a receive timeout, longer for the admin
 * commands that wait for the daemon to do the work.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "include/uzswap_proto.h"
#include "tools/ctl_format.h"
#include "tools/ctl_metrics.h"

#define EXIT_USAGE 2
/* The daemon answers reads from its event loop at once; 10 s means it is stuck. */
#define REPLY_TIMEOUT_S 10
/* Reclaim and writeback answer when done: gigabytes at disk speed, on a busy machine. */
#define ADMIN_TIMEOUT_S 300
/* Far above 65536 clients with many regions each: a larger status is a daemon bug. */
#define STATUS_MAX_BYTES (1ULL << 30)

static const char usage_text[] =
	"Usage: uzswapctl [--socket PATH] COMMAND [ARGS]\n"
	"\n"
	"Show the state of uzswapd, the userspace compressed swap daemon, and tune it.\n"
	"\n"
	"Commands that read (for every user the daemon lets connect; --json prints\n"
	"one JSON object, for programs):\n"
	"  status [--json]          the daemon, its pool, every client and region\n"
	"  clients [--json]         one row per client: pid, uid, command, budget,\n"
	"                           managed, resident and evicted memory, compressed\n"
	"                           bytes in the pool and the file, faults, p99\n"
	"  regions PID [--json]     the regions of process PID\n"
	"  classes [--json]         the pool allocator's classes\n"
	"  metrics                  everything, in Prometheus text format\n"
	"\n"
	"Admin commands (root, or a member of the daemon's [clients] admin_group):\n"
	"  set PID max-resident SIZE  give process PID a resident budget of SIZE\n"
	"  compact                  compact the pool, giving its free pages back\n"
	"  reclaim PID SIZE         evict up to SIZE of process PID's resident memory\n"
	"  writeback SIZE           write up to SIZE of the pool to the backing file\n"
	"  reload                   re-read the daemon's config file (as SIGHUP)\n"
	"\n"
	"SIZE is bytes with an optional K, M, G or T suffix (1024-based), a whole\n"
	"number of 4 KiB pages.\n"
	"\n"
	"Options:\n"
	"  -s, --socket PATH    the daemon's socket (default: $UZSWAP_SOCKET, then\n"
	"                       " UZSWAP_DEFAULT_SOCKET ")\n"
	"  -h, --help           show this help and exit\n"
	"  -V, --version        show the version and exit\n"
	"\n"
	"Exit status: 0 on success, 1 on failure, 2 on a usage error.\n"
	"See uzswapctl(8).\n";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr; returns the exit status 1. */
static int fail(const char *fmt, ...)
{
	va_list ap;

	fputs("uzswapctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("uzswapctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'uzswapctl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* getopt's '?' and ':' as our own messages, with the option as typed. */
static int bad_option(int c, char *const argv[])
{
	const char *opt = argv[optind - 1];

	if (c == ':')
		return usage_error("option '%s' needs an argument", opt);
	if (optopt && opt[0] == '-' && opt[1] != '-')
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", opt);
}

/* ---- arguments ---- */

/* A pid: a decimal number from 1 to INT_MAX. */
static int parse_pid(const char *s, uint32_t *pid)
{
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > INT_MAX)
		return -EINVAL;
	*pid = (uint32_t)v;
	return 0;
}

/* A size as the config file writes one: digits and K, M, G, T (or KiB...), 1024-based. */
static int parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	unsigned int shift = 0;
	const char *u;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end) {
		u = strchr(units, end[0] >= 'a' ? end[0] - 'a' + 'A' : end[0]);
		if (!u || !*u || (end[1] && strcmp(end + 1, "iB") != 0))
			return -EINVAL;
		shift = 10 * (unsigned int)(u - units + 1);
	}
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

/* SIZE of an admin command: a size, non-zero, whole pages. */
static int size_arg(const char *cmd, const char *s, uint64_t *out)
{
	int r = parse_size(s, out);

	if (r == -ERANGE)
		return usage_error("%s: SIZE '%s' is too large", cmd, s);
	if (r < 0)
		return usage_error("%s: SIZE '%s' is not a size (bytes, or with a K, M, G or T "
				   "suffix)",
				   cmd, s);
	if (*out == 0 || *out % UZCTL_PAGE_SIZE)
		return usage_error("%s: SIZE '%s' is not a whole number of 4 KiB pages (at least "
				   "4K)",
				   cmd, s);
	return 0;
}

static int pid_arg(const char *cmd, const char *s, uint32_t *pid)
{
	if (parse_pid(s, pid) < 0)
		return usage_error("%s: PID '%s' is not a process id (a number from 1)", cmd, s);
	return 0;
}

/* ---- talking to the daemon ---- */

static int connect_daemon(const char *path, int timeout_s, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	int fd, err;

	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The caller checked that the path fits, NUL included. */
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto err_close;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		goto err_close;
	*out = fd;
	return 0;
err_close:
	err = -errno;
	close(fd);
	return err;
}

/*
 * The daemon's message, which is not NUL-terminated, in plain ASCII: the
 * daemon writes English, and nothing in it may reach the terminal as a command.
 */
static void put_message(const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];

		fputc(c < 0x20 || c >= 0x7f ? '?' : c, stderr);
	}
}

/* One exchange: what was asked, and where the answer goes. */
struct call {
	const char *what; /* "STATUS", "reclaim"... for messages */
	int timeout_s;	  /* how long the daemon may take */
	void *body;	  /* the reply's body on success, exactly body_len bytes */
	size_t body_len;
	char note[UZP_MESSAGE_MAX + 1]; /* a successful reply's message, sanitised ("" none) */
};

/* A reply's message, printable, into @out. */
static void copy_note(char *out, const char *msg, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];

		out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	out[len] = '\0';
}

/*
 * Check a REPLY to seq 1 (@n bytes at @buf) and take its body; 0, or the
 * exit status after saying what was wrong.
 */
static int check_reply(const char *buf, size_t n, struct call *call)
{
	struct uzp_header h;
	struct uzp_reply rep;
	const char *body = buf + sizeof(h) + sizeof(rep);

	if (n < sizeof(h))
		return fail("malformed reply: %zu bytes, shorter than a header", n);
	memcpy(&h, buf, sizeof(h));
	if (h.magic != UZP_MAGIC || h.version != UZP_VERSION)
		return fail("malformed reply: magic 0x%08" PRIx32 " version %u, expected 0x%08x "
			    "version %d (is the daemon a uzswapd of this version?)",
			    h.magic, h.version, UZP_MAGIC, UZP_VERSION);
	if (h.type == UZP_SHUTDOWN)
		return fail("uzswapd is shutting down");
	if (h.type != UZP_REPLY || h.seq != 1)
		return fail("unexpected message: type %u seq %" PRIu32
			    ", expected a REPLY to seq 1",
			    h.type, h.seq);
	if (h.length != n - sizeof(h) || h.length < sizeof(rep))
		return fail("malformed reply: length field %" PRIu32 ", %zu bytes arrived",
			    h.length, n - sizeof(h));
	memcpy(&rep, buf + sizeof(h), sizeof(rep));
	if (sizeof(rep) + rep.body_length + rep.message_length != h.length ||
	    rep.message_length > UZP_MESSAGE_MAX)
		return fail(
			"malformed reply: body %u and message %u bytes do not add up to %" PRIu32,
			rep.body_length, rep.message_length, h.length);
	if (rep.status < 0) {
		fputs("uzswapctl: the daemon refused: ", stderr);
		if (rep.message_length)
			put_message(body + rep.body_length, rep.message_length);
		else
			fputs(strerror(-rep.status), stderr);
		fputc('\n', stderr);
		return 1;
	}
	if (rep.body_length != call->body_len)
		return fail("malformed reply to %s: a %u-byte body, expected %zu", call->what,
			    rep.body_length, call->body_len);
	memcpy(call->body, body, call->body_len);
	copy_note(call->note, body + rep.body_length, rep.message_length);
	return 0;
}

/* Send @type with @req (and @fd when >= 0), wait for its REPLY; 0, or the exit status. */
static int transact(int sock, uint16_t type, const void *req, size_t req_len, int fd,
		    struct call *call)
{
	struct uzp_header h = {
		.magic = UZP_MAGIC,
		.version = UZP_VERSION,
		.type = type,
		.length = (uint32_t)req_len,
		.seq = 1,
	};
	/* The union aligns the buffer for the header; one spare byte shows oversize. */
	union {
		struct uzp_header h;
		char buf[UZP_DATAGRAM_MAX + 1];
	} msg;
	int fds[UZP_FDS_MAX], nfds = 0, r;
	ssize_t n;

	r = uzp_send(sock, &h, req, req_len, &fd, fd >= 0 ? 1 : 0);
	if (r < 0)
		return fail("cannot send the %s request: %s", call->what, strerror(-r));
	n = uzp_recv(sock, msg.buf, sizeof(msg.buf), fds, &nfds);
	/* A reply to these carries no descriptor: one that came anyway is not ours to keep. */
	while (nfds)
		close(fds[--nfds]);
	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return fail("uzswapd did not answer within %d s", call->timeout_s);
	if (n < 0)
		return fail("cannot receive the reply: %s", strerror((int)-n));
	if (n == 0)
		return fail("uzswapd closed the connection without answering");
	return check_reply(msg.buf, (size_t)n, call);
}

/* Connect for @what with the timeout its answer may take; 0, or the exit status. */
static int open_conn(const char *path, int timeout_s, int *sock)
{
	int r = connect_daemon(path, timeout_s, sock);

	if (r < 0)
		return fail("cannot connect to %s: %s%s", path, strerror(-r),
			    r == -ENOENT || r == -ECONNREFUSED ? " (is uzswapd running?)" : "");
	return 0;
}

/* Read the @bytes the daemon wrote into @memfd; 0 and *@out (malloc'd), or the exit status. */
static int read_memfd(int memfd, uint64_t bytes, void **out)
{
	size_t off = 0, len = (size_t)bytes;
	char *buf;

	if (bytes > STATUS_MAX_BYTES)
		return fail("uzswapd reports %" PRIu64 " bytes, more than the %llu accepted", bytes,
			    STATUS_MAX_BYTES);
	buf = malloc(len ? len : 1);
	if (!buf)
		return fail("cannot allocate %zu bytes for the answer", len);
	while (off < len) {
		ssize_t n = pread(memfd, buf + off, len - off, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return fail("cannot read the memfd: %s", strerror(errno));
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	if (off < len) {
		free(buf);
		return fail("uzswapd says it wrote %zu bytes, the memfd holds %zu", len, off);
	}
	*out = buf;
	return 0;
}

/* STATUS or CLASSES over @sock: the bytes the daemon wrote, malloc'd; 0, or the exit status. */
static int fetch(int sock, uint16_t type, const char *what, void **buf, size_t *len)
{
	struct uzp_status_ok ok = { 0 };
	struct call call = {
		.what = what, .timeout_s = REPLY_TIMEOUT_S, .body = &ok, .body_len = sizeof(ok)
	};
	int memfd, r;

	memfd = memfd_create("uzswapctl", MFD_CLOEXEC);
	if (memfd < 0)
		return fail("memfd_create: %s", strerror(errno));
	r = transact(sock, type, NULL, 0, memfd, &call);
	if (r == 0)
		r = read_memfd(memfd, ok.bytes, buf);
	if (r == 0)
		*len = (size_t)ok.bytes;
	close(memfd);
	return r;
}

/*
 * The daemon's status, on a connection of its own to @path, checked: *@buf
 * holds it (free it), *@v views it.
 */
static int get_status(const char *path, void **buf, struct uzctl_status_view *v)
{
	char err[256];
	size_t len = 0;
	int sock, r = open_conn(path, REPLY_TIMEOUT_S, &sock);

	if (r)
		return r;
	r = fetch(sock, UZP_STATUS, "STATUS", buf, &len);
	close(sock);
	if (r)
		return r;
	if (uzctl_status_parse(*buf, len, v, err, sizeof(err)) < 0) {
		free(*buf);
		*buf = NULL;
		return fail("uzswapd sent a bad status: %s", err);
	}
	return 0;
}

/* The pool's classes, as get_status() gets the status. */
static int get_classes(const char *path, void **buf, struct uzctl_classes_view *v)
{
	char err[256];
	size_t len = 0;
	int sock, r = open_conn(path, REPLY_TIMEOUT_S, &sock);

	if (r)
		return r;
	r = fetch(sock, UZP_CLASSES, "CLASSES", buf, &len);
	close(sock);
	if (r)
		return r;
	if (uzctl_classes_parse(*buf, len, v, err, sizeof(err)) < 0) {
		free(*buf);
		*buf = NULL;
		return fail("uzswapd sent bad classes: %s", err);
	}
	return 0;
}

static int printed(int r)
{
	return r < 0 ? fail("cannot write the output: %s", strerror(-r)) : 0;
}

/* ---- commands ---- */

/* What a command got from its command line. */
struct args {
	const char *socket;
	bool json;
	int argc; /* positional arguments after the command's name */
	char **argv;
};

struct command {
	const char *name;
	const char *usage; /* its arguments, for messages */
	int nargs;	   /* positional arguments it takes */
	bool json;	   /* takes --json */
	int (*run)(const struct args *a);
};

static int cmd_status(const struct args *a)
{
	struct uzctl_status_view v;
	void *buf = NULL;
	int r = get_status(a->socket, &buf, &v);

	if (r)
		return r;
	r = printed(a->json ? uzctl_print_json(stdout, &v) : uzctl_print_table(stdout, &v));
	free(buf);
	return r;
}

static int cmd_clients(const struct args *a)
{
	struct uzctl_status_view v;
	void *buf = NULL;
	int r = get_status(a->socket, &buf, &v);

	if (r)
		return r;
	r = printed(a->json ? uzctl_print_clients_json(stdout, &v) :
			      uzctl_print_clients_table(stdout, &v));
	free(buf);
	return r;
}

static int cmd_regions(const struct args *a)
{
	struct uzctl_status_view v;
	void *buf = NULL;
	uint32_t pid;
	int r = pid_arg("regions", a->argv[0], &pid);

	if (r)
		return r;
	r = get_status(a->socket, &buf, &v);
	if (r)
		return r;
	r = a->json ? uzctl_print_regions_json(stdout, &v, pid) :
		      uzctl_print_regions_table(stdout, &v, pid);
	free(buf);
	if (r == -ESRCH)
		return fail("regions: no client with pid %" PRIu32 "%s", pid,
			    geteuid() ? " among your own (other users' are shown to admins)" : "");
	return printed(r);
}

static int cmd_classes(const struct args *a)
{
	struct uzctl_classes_view v;
	void *buf = NULL;
	int r = get_classes(a->socket, &buf, &v);

	if (r)
		return r;
	r = printed(a->json ? uzctl_print_classes_json(stdout, &v) :
			      uzctl_print_classes_table(stdout, &v));
	free(buf);
	return r;
}

/* The status and the classes, from one connection each: both are one request. */
static int cmd_metrics(const struct args *a)
{
	struct uzctl_status_view v;
	struct uzctl_classes_view cv;
	void *sbuf = NULL, *cbuf = NULL;
	int r = get_status(a->socket, &sbuf, &v);

	if (r)
		return r;
	r = get_classes(a->socket, &cbuf, &cv);
	if (r == 0)
		r = printed(uzctl_print_metrics(stdout, &v, &cv));
	free(cbuf);
	free(sbuf);
	return r;
}

/* One ADMIN request; *@ok its result.  Prints the reply's note, if any, on stderr. */
static int admin(const struct args *a, const char *what, const struct uzp_admin *req,
		 struct uzp_admin_ok *ok)
{
	struct call call = {
		.what = what, .timeout_s = ADMIN_TIMEOUT_S, .body = ok, .body_len = sizeof(*ok)
	};
	int sock, r = open_conn(a->socket, ADMIN_TIMEOUT_S, &sock);

	if (r)
		return r;
	r = transact(sock, UZP_ADMIN, req, sizeof(*req), -1, &call);
	close(sock);
	if (r == 0 && call.note[0])
		fprintf(stderr, "uzswapctl: %s: %s\n", what, call.note);
	return r;
}

static int cmd_set(const struct args *a)
{
	struct uzp_admin req = { .op = UZP_ADMIN_SET_BUDGET };
	struct uzp_admin_ok ok = { 0 };
	char s[UZCTL_SIZE_BUF];
	int r = pid_arg("set", a->argv[0], &req.pid);

	if (r)
		return r;
	if (strcmp(a->argv[1], "max-resident") != 0)
		return usage_error("set: unknown setting '%s' (max-resident is the one there is)",
				   a->argv[1]);
	r = size_arg("set", a->argv[2], &req.size);
	if (r)
		return r;
	r = admin(a, "set", &req, &ok);
	if (r)
		return r;
	printf("pid %" PRIu32 ": resident budget %s (%" PRIu32 " client%s)\n", req.pid,
	       uzctl_size_str(s, ok.bytes), ok.clients, ok.clients == 1 ? "" : "s");
	return 0;
}

static int cmd_compact(const struct args *a)
{
	struct uzp_admin req = { .op = UZP_ADMIN_COMPACT };
	struct uzp_admin_ok ok = { 0 };
	char s[UZCTL_SIZE_BUF];
	int r = admin(a, "compact", &req, &ok);

	if (r)
		return r;
	printf("compact: %" PRIu64 " pool pages freed (%s)\n", ok.pages,
	       uzctl_size_str(s, ok.pages * UZCTL_PAGE_SIZE));
	return 0;
}

static int cmd_reclaim(const struct args *a)
{
	struct uzp_admin req = { .op = UZP_ADMIN_RECLAIM };
	struct uzp_admin_ok ok = { 0 };
	char s[UZCTL_SIZE_BUF], t[UZCTL_SIZE_BUF];
	int r = pid_arg("reclaim", a->argv[0], &req.pid);

	if (r)
		return r;
	r = size_arg("reclaim", a->argv[1], &req.size);
	if (r)
		return r;
	r = admin(a, "reclaim", &req, &ok);
	if (r)
		return r;
	printf("reclaim pid %" PRIu32 ": %" PRIu64 " pages evicted (%s of %s asked, %" PRIu32
	       " client%s)\n",
	       req.pid, ok.pages, uzctl_size_str(s, ok.pages * UZCTL_PAGE_SIZE),
	       uzctl_size_str(t, req.size), ok.clients, ok.clients == 1 ? "" : "s");
	return 0;
}

static int cmd_writeback(const struct args *a)
{
	struct uzp_admin req = { .op = UZP_ADMIN_WRITEBACK };
	struct uzp_admin_ok ok = { 0 };
	char s[UZCTL_SIZE_BUF], t[UZCTL_SIZE_BUF];
	int r = size_arg("writeback", a->argv[0], &req.size);

	if (r)
		return r;
	r = admin(a, "writeback", &req, &ok);
	if (r)
		return r;
	printf("writeback: %" PRIu64 " objects (%s compressed) written, %" PRIu64
	       " pool pages (%s) freed\n",
	       ok.objects, uzctl_size_str(s, ok.bytes), ok.pages,
	       uzctl_size_str(t, ok.pages * UZCTL_PAGE_SIZE));
	return 0;
}

static int cmd_reload(const struct args *a)
{
	struct uzp_admin req = { .op = UZP_ADMIN_RELOAD };
	struct uzp_admin_ok ok = { 0 };
	int r = admin(a, "reload", &req, &ok);

	if (r)
		return r;
	printf("reload: %" PRIu64 " setting%s changed", ok.changed, ok.changed == 1 ? "" : "s");
	if (ok.kept)
		printf(", %" PRIu64 " kept at the running value (see above)", ok.kept);
	putchar('\n');
	return 0;
}

static const struct command commands[] = {
	{ "status", "", 0, true, cmd_status },
	{ "clients", "", 0, true, cmd_clients },
	{ "regions", " PID", 1, true, cmd_regions },
	{ "classes", "", 0, true, cmd_classes },
	{ "metrics", "", 0, false, cmd_metrics },
	{ "set", " PID max-resident SIZE", 3, false, cmd_set },
	{ "compact", "", 0, false, cmd_compact },
	{ "reclaim", " PID SIZE", 2, false, cmd_reclaim },
	{ "writeback", " SIZE", 1, false, cmd_writeback },
	{ "reload", "", 0, false, cmd_reload },
};

/* The command's options and arguments (@argv[0] is its name); then run it. */
static int run_command(const struct command *cmd, const char *path, int argc, char *argv[])
{
	static const struct option with_json[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct args a = { .socket = path };
	int c;

	/* 0, not 1: glibc then starts over on a new argument vector. */
	optind = 0;
	while ((c = getopt_long(argc, argv, cmd->json ? ":jh" : ":h",
				cmd->json ? with_json : with_json + 1, NULL)) != -1) {
		switch (c) {
		case 'j':
			a.json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			if (!cmd->json && !strcmp(argv[optind - 1], "--json"))
				return usage_error("%s has no --json%s", cmd->name,
						   !strcmp(cmd->name, "metrics") ?
							   ": it prints Prometheus text; the same "
							   "figures as JSON are status --json and "
							   "classes --json" :
							   "");
			return bad_option(c, argv);
		}
	}
	a.argc = argc - optind;
	a.argv = argv + optind;
	if (a.argc < cmd->nargs)
		return usage_error("%s: missing argument: uzswapctl %s%s%s", cmd->name, cmd->name,
				   cmd->usage, cmd->json ? " [--json]" : "");
	if (a.argc > cmd->nargs)
		return usage_error("%s takes %s, got '%s'", cmd->name,
				   cmd->nargs ? cmd->usage + 1 : "no argument", a.argv[cmd->nargs]);
	return cmd->run(&a);
}

int main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	int c;

	opterr = 0;
	/* "+": options after the command are the command's. */
	while ((c = getopt_long(argc, argv, "+:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			path = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("uzswapctl (uzswap) %s\n", PACKAGE_VERSION);
			return 0;
		default:
			return bad_option(c, argv);
		}
	}
	/* An empty $UZSWAP_SOCKET counts as unset, as in libuzswap; an empty --socket is an error. */
	if (!path) {
		path = secure_getenv("UZSWAP_SOCKET");
		if (!path || !*path)
			path = UZSWAP_DEFAULT_SOCKET;
	}
	if (!*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return usage_error("socket path '%s' is empty or longer than %zu bytes", path,
				   sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (optind >= argc)
		return usage_error("no command given");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[optind], commands[i].name))
			return run_command(&commands[i], path, argc - optind, argv + optind);
	return usage_error("unknown command '%s'", argv[optind]);
}
