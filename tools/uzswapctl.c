/* SPDX-License-Identifier: MIT */
/*
 * tools/uzswapctl.c - the admin tool: ask uzswapd for its state and show it.
 *
 *   uzswapctl [--socket PATH] status [--json]
 *
 * status speaks the protocol of include/uzswap_proto.h without a HELLO: it
 * creates a memfd, sends it with a STATUS request, and reads back the
 * struct uzp_status the daemon wrote there (the state of hundreds of
 * clients does not fit one datagram).  tools/ctl_format.c checks those
 * bytes and prints them; this file only talks to the daemon.
 *
 * The socket is --socket, else $UZSWAP_SOCKET, else UZSWAP_DEFAULT_SOCKET:
 * the same precedence as libuzswap's, so the tool looks where clients do.
 *
 * Exit status: 0 on success, 1 when the daemon cannot be reached, refuses,
 * or answers something malformed (each with one line on stderr saying
 * which), 2 for a usage error.  It must never hang on a daemon that does
 * not answer: the socket has a receive timeout.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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

#define EXIT_USAGE 2
/* The daemon answers STATUS from its event loop at once; 10 s means it is stuck. */
#define REPLY_TIMEOUT_S 10
/* Far above 65536 clients with many regions each: a larger status is a daemon bug. */
#define STATUS_MAX_BYTES (1ULL << 30)

static const char usage_text[] =
	"Usage: uzswapctl [--socket PATH] COMMAND [OPTIONS]\n"
	"\n"
	"Ask uzswapd, the userspace compressed swap daemon, about its state.\n"
	"\n"
	"Commands:\n"
	"  status [--json]      the daemon, its pool, every client and region;\n"
	"                       --json prints one JSON object, for programs\n"
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

static int connect_daemon(const char *path, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };
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

/*
 * Check a REPLY to STATUS (@n bytes at @buf, aligned) and take the status
 * size from its body; 0, or the exit status after saying what was wrong.
 */
static int check_reply(const char *buf, size_t n, uint64_t *bytes)
{
	struct uzp_header h;
	struct uzp_reply rep;
	struct uzp_status_ok ok;
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
	if (rep.body_length != sizeof(ok))
		return fail("malformed reply: a %u-byte body, STATUS_OK is %zu", rep.body_length,
			    sizeof(ok));
	memcpy(&ok, body, sizeof(ok));
	*bytes = ok.bytes;
	return 0;
}

/* Send STATUS with @memfd and wait for its REPLY; 0, or the exit status. */
static int request_status(int sock, int memfd, uint64_t *bytes)
{
	struct uzp_header h = {
		.magic = UZP_MAGIC,
		.version = UZP_VERSION,
		.type = UZP_STATUS,
		.length = 0,
		.seq = 1,
	};
	/* The union aligns the buffer for the header; one spare byte shows oversize. */
	union {
		struct uzp_header h;
		char buf[UZP_DATAGRAM_MAX + 1];
	} msg;
	int fds[UZP_FDS_MAX], nfds = 0, r;
	ssize_t n;

	r = uzp_send(sock, &h, NULL, 0, &memfd, 1);
	if (r < 0)
		return fail("cannot send the STATUS request: %s", strerror(-r));
	n = uzp_recv(sock, msg.buf, sizeof(msg.buf), fds, &nfds);
	/* A REPLY to STATUS carries no descriptor: one that came anyway is not ours to keep. */
	while (nfds)
		close(fds[--nfds]);
	if (n == -EAGAIN || n == -EWOULDBLOCK)
		return fail("uzswapd did not answer within %d s", REPLY_TIMEOUT_S);
	if (n < 0)
		return fail("cannot receive the reply: %s", strerror((int)-n));
	if (n == 0)
		return fail("uzswapd closed the connection without answering");
	return check_reply(msg.buf, (size_t)n, bytes);
}

/* Read the @bytes the daemon wrote into @memfd; 0 and *@out (malloc'd), or the exit status. */
static int read_status(int memfd, uint64_t bytes, void **out)
{
	size_t off = 0, len = (size_t)bytes;
	char *buf;

	if (bytes > STATUS_MAX_BYTES)
		return fail("uzswapd reports a %" PRIu64
			    "-byte status, more than the %llu accepted",
			    bytes, STATUS_MAX_BYTES);
	buf = malloc(len ? len : 1);
	if (!buf)
		return fail("cannot allocate %zu bytes for the status", len);
	while (off < len) {
		ssize_t n = pread(memfd, buf + off, len - off, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return fail("cannot read the status memfd: %s", strerror(errno));
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

/* Fetch the status over the connected @sock, check it and print it; the exit status. */
static int show_status(int sock, bool json)
{
	struct uzctl_status_view v;
	char err[256];
	uint64_t bytes = 0;
	void *buf = NULL;
	int memfd, r;

	memfd = memfd_create("uzswapctl-status", MFD_CLOEXEC);
	if (memfd < 0)
		return fail("memfd_create: %s", strerror(errno));
	r = request_status(sock, memfd, &bytes);
	if (r)
		goto out_close;
	r = read_status(memfd, bytes, &buf);
	if (r)
		goto out_close;
	if (uzctl_status_parse(buf, (size_t)bytes, &v, err, sizeof(err)) < 0) {
		r = fail("uzswapd sent a bad status: %s", err);
		goto out_free;
	}
	r = json ? uzctl_print_json(stdout, &v) : uzctl_print_table(stdout, &v);
	r = r < 0 ? fail("cannot write the status: %s", strerror(-r)) : 0;
out_free:
	free(buf);
out_close:
	close(memfd);
	return r;
}

static int cmd_status(const char *path, int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c, sock = -1, r;

	/* 0, not 1: glibc then starts over on a new argument vector. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "+:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return bad_option(c, argv);
		}
	}
	if (optind < argc)
		return usage_error("status takes no argument, got '%s'", argv[optind]);
	r = connect_daemon(path, &sock);
	if (r < 0)
		return fail("cannot connect to %s: %s%s", path, strerror(-r),
			    r == -ENOENT || r == -ECONNREFUSED ? " (is uzswapd running?)" : "");
	r = show_status(sock, json);
	close(sock);
	return r;
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
	if (!strcmp(argv[optind], "status"))
		return cmd_status(path, argc - optind, argv + optind);
	return usage_error("unknown command '%s'", argv[optind]);
}
