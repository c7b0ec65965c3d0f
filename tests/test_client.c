/* SPDX-License-Identifier: MIT */
/*
 * tests/test_client.c - libuzswap's behaviour when no daemon answers: which
 * socket it tries, what it returns, and the line it writes for the user.
 *
 * Everything here is real and needs no daemon: a path with nothing at it,
 * a socket bound by this test but never listening (connect is refused, as
 * after a daemon crash left its socket file behind), $UZSWAP_SOCKET, paths
 * too long for an AF_UNIX address.  Connecting to a real daemon is for
 * tests/integration/.  Every failed connect must also leave no descriptor
 * behind (counted in /proc/self/fd).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "include/uzswap.h"
#include "tests/tap.h"

struct attempt {
	int err;
	char why[512];
	struct uzswap *u;
};

static char dir[] = "/tmp/uzswap-test-client-XXXXXX";

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static void attempt(struct attempt *a, const char *path)
{
	struct uzswap_options opt = { .error = a->why, .error_len = sizeof(a->why) };

	static char sentinel;

	memset(a, 0, sizeof(*a));
	a->u = (struct uzswap *)(void *)&sentinel; /* connect must reset it on failure */
	a->err = uzswap_connect(path, &opt, &a->u);
	if (a->err == 0) {
		uzswap_close(a->u);
		a->u = NULL;
	}
}

static void in_dir(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void says(const struct attempt *a, const char *what)
{
	if (!strstr(a->why, what))
		tap_diag("expected the message to name \"%s\", it says: \"%s\"", what, a->why);
}

static void test_absent_socket_is_enoent(void)
{
	char path[256];
	struct attempt a;

	in_dir(path, sizeof(path), "absent.sock");
	attempt(&a, path);
	if (!ok(a.err == -ENOENT, "connecting where no socket exists fails with -ENOENT"))
		tap_diag("got %d (%s)", a.err, strerror(-a.err));
	ok(strstr(a.why, path) != NULL, "the message names the socket path");
	says(&a, path);
	ok(a.u == NULL, "a failed connect leaves *out NULL");
}

static void test_socket_nobody_listens_on_is_refused(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct attempt a;
	int s;

	in_dir(sa.sun_path, sizeof(sa.sun_path), "stale.sock");
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		tap_skip("cannot bind a socket in %s: %s", dir, strerror(errno));
		return;
	}
	attempt(&a, sa.sun_path);
	if (!ok(a.err == -ECONNREFUSED,
		"connecting to a socket nobody listens on fails with -ECONNREFUSED"))
		tap_diag("got %d (%s)", a.err, strerror(-a.err));
	ok(strstr(a.why, sa.sun_path) != NULL, "the refusal's message names the socket path");
	says(&a, sa.sun_path);
	close(s);
	unlink(sa.sun_path);
}

static void test_environment_is_used_without_argument(void)
{
	char env[256];
	struct attempt a;

	in_dir(env, sizeof(env), "from-env.sock");
	setenv("UZSWAP_SOCKET", env, 1);
	attempt(&a, NULL);
	ok(a.err == -ENOENT && strstr(a.why, env),
	   "with no argument, the path in $UZSWAP_SOCKET is tried");
	says(&a, env);
	ok(strstr(a.why, "UZSWAP_SOCKET") != NULL, "the message says the path came from the "
						   "environment");
	unsetenv("UZSWAP_SOCKET");
}

static void test_argument_beats_environment(void)
{
	char env[256], arg[256];
	struct attempt a;

	in_dir(env, sizeof(env), "from-env.sock");
	in_dir(arg, sizeof(arg), "from-arg.sock");
	setenv("UZSWAP_SOCKET", env, 1);
	attempt(&a, arg);
	ok(a.err == -ENOENT && strstr(a.why, arg) && !strstr(a.why, env),
	   "an argument is tried instead of $UZSWAP_SOCKET");
	says(&a, arg);
	unsetenv("UZSWAP_SOCKET");
}

static void test_default_socket_without_either(void)
{
	struct attempt a;

	if (access(UZSWAP_DEFAULT_SOCKET, F_OK) == 0) {
		tap_skip("a socket exists at %s: a daemon may be running", UZSWAP_DEFAULT_SOCKET);
		return;
	}
	setenv("UZSWAP_SOCKET", "", 1);
	attempt(&a, NULL);
	ok(a.err == -ENOENT && strstr(a.why, UZSWAP_DEFAULT_SOCKET),
	   "with no argument and an empty $UZSWAP_SOCKET, %s is tried", UZSWAP_DEFAULT_SOCKET);
	says(&a, UZSWAP_DEFAULT_SOCKET);
	unsetenv("UZSWAP_SOCKET");
}

static void test_too_long_path_is_refused(void)
{
	struct sockaddr_un sa;
	char path[sizeof(sa.sun_path) + 64];
	struct attempt a;

	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	attempt(&a, path);
	if (!ok(a.err == -ENAMETOOLONG, "a path too long for AF_UNIX fails with -ENAMETOOLONG"))
		tap_diag("got %d (%s)", a.err, strerror(-a.err));
	ok(strstr(a.why, "/xxxxxxxx") && strstr(a.why, "at most"),
	   "its message shows the path and the limit");
	says(&a, "at most");

	memset(path, 'x', sizeof(sa.sun_path));
	path[0] = '/';
	path[sizeof(sa.sun_path)] = '\0'; /* one byte too many for the terminating NUL */
	attempt(&a, path);
	ok(a.err == -ENAMETOOLONG, "a path of exactly sizeof(sun_path) bytes is too long too");
}

static void test_bad_arguments(void)
{
	char why[8];
	struct uzswap_options opt = { .error = why, .error_len = sizeof(why) };
	struct uzswap *u = NULL;
	char path[256];

	ok(uzswap_connect("", NULL, &u) == -EINVAL && u == NULL, "an empty path is -EINVAL");
	in_dir(path, sizeof(path), "absent.sock");
	ok(uzswap_connect(path, NULL, NULL) == -EINVAL, "connect with no place for the result is "
							"-EINVAL");
	ok(uzswap_connect(path, NULL, &u) == -ENOENT, "connect works without options");
	memset(why, 'z', sizeof(why));
	ok(uzswap_connect(path, &opt, &u) == -ENOENT && strlen(why) == sizeof(why) - 1,
	   "a short error buffer gets a truncated, terminated line");
	uzswap_close(NULL);
	ok(true, "uzswap_close(NULL) is a no-op");
	ok(uzswap_last_error(NULL) != NULL, "uzswap_last_error(NULL) gives a string");
}

int main(void)
{
	int before, after;

	if (!mkdtemp(dir))
		tap_skip_all("cannot make a directory in /tmp: %s", strerror(errno));
	unsetenv("UZSWAP_SOCKET");
	before = open_fds();
	test_absent_socket_is_enoent();
	test_socket_nobody_listens_on_is_refused();
	test_environment_is_used_without_argument();
	test_argument_beats_environment();
	test_default_socket_without_either();
	test_too_long_path_is_refused();
	test_bad_arguments();
	after = open_fds();
	if (!ok(before == after, "failed connects leave no descriptor open"))
		tap_diag("%d descriptors open before, %d after", before, after);
	rmdir(dir);
	return tap_done();
}
