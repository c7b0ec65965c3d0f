/* SPDX-License-Identifier: MIT */
/*
 * client/libuzswap.c - the entry points of include/uzswap.h: connect,
 * statistics, close.  Regions are in region.c, the socket in conn.c.
 *
 * Connecting is a fixed conversation (include/uzswap_proto.h):
 *   socket -> HELLO -> REPLY {HELLO_OK} + /dev/userfaultfd
 *          -> our userfaultfd (USERFAULTFD_IOC_NEW on that descriptor, or
 *             userfaultfd(2) when none came) -> SET_UFFD + the userfaultfd
 *          -> the watcher thread starts.
 * The daemon opens /dev/userfaultfd for us so that an unprivileged client
 * still gets a userfaultfd that handles kernel-mode faults (design.md §1);
 * we close that descriptor at once, as it could make more.  Our own copy of
 * the userfaultfd stays open until uzswap_close(): with every copy closed
 * the kernel would forget the registrations, and evicted pages would read
 * as zeros.
 *
 * Closing gives back every region, stops the watcher (so that our own
 * hangup cannot stop the process), then closes the socket: the daemon
 * drops whatever it still held of this client.
 *
 * Never: keep a struct uzswap half-made (a failed connect frees it); let
 * the watcher see a closed socket before it is stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "client/internal.h"
#include "client/uffd.h"

int uzs_conn_init(struct uzswap *u)
{
	memset(u, 0, sizeof(*u));
	if (pthread_mutex_init(&u->lock, NULL))
		return -ENOMEM;
	u->sock = -1;
	u->uffd = -1;
	u->stop_fd = -1;
	return 0;
}

static struct uzswap *conn_alloc(void)
{
	struct uzswap *u = malloc(sizeof(*u));

	if (!u)
		return NULL;
	if (uzs_conn_init(u)) {
		free(u);
		return NULL;
	}
	return u;
}

static void conn_free(struct uzswap *u)
{
	uzs_watch_stop(u);
	if (u->sock >= 0)
		close(u->sock);
	if (u->uffd >= 0)
		close(u->uffd);
	if (u->stop_fd >= 0)
		close(u->stop_fd);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

void uzs_process_name(char comm[16])
{
	ssize_t n = -1;
	int fd;

	memset(comm, 0, 16);
	fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, comm, 15);
		close(fd);
	}
	if (n > 0) {
		comm[strcspn(comm, "\n")] = '\0';
		return;
	}
	if (prctl(PR_GET_NAME, comm) < 0)
		memset(comm, 0, 16);
	comm[15] = '\0';
}

int uzs_hello(struct uzswap *u, uint64_t max_resident, const char comm[16], int *dev_fd)
{
	struct uzp_hello hello = {
		.pid = (uint32_t)getpid(),
		.flags = 0,
		.max_resident = max_resident,
	};
	struct uzp_hello_ok ok;
	long page = sysconf(_SC_PAGESIZE);
	int err;

	memcpy(hello.comm, comm, sizeof(hello.comm));
	err = uzs_conn_request(u, UZP_HELLO, &hello, sizeof(hello), -1, &ok, sizeof(ok), dev_fd);
	if (err)
		return err;
	if (ok.page_size != (uint64_t)page) {
		if (*dev_fd >= 0)
			close(*dev_fd);
		*dev_fd = -1;
		return uzs_set_error(u, -EPROTO,
				     "uzswapd (%s) pages in %llu-byte pages, this process in %ld",
				     u->path, (unsigned long long)ok.page_size, page);
	}
	u->client_id = ok.client_id;
	u->max_resident = ok.max_resident;
	u->page_size = ok.page_size;
	return 0;
}

int uzs_hand_uffd(struct uzswap *u, int dev_fd)
{
	char why[256] = "";
	int fd;

	fd = uzs_uffd_create(dev_fd, why, sizeof(why));
	if (dev_fd >= 0)
		close(dev_fd);
	if (fd < 0)
		return uzs_set_error(u, fd, "cannot create a userfaultfd for uzswapd (%s): %s",
				     u->path, why);
	u->uffd = fd;
	return uzs_conn_request(u, UZP_SET_UFFD, NULL, 0, fd, NULL, 0, NULL);
}

/* The whole conversation of a connect, on a connected socket. */
static int conn_setup(struct uzswap *u, uint64_t max_resident, const char comm[16])
{
	int dev_fd = -1, err;

	pthread_mutex_lock(&u->lock);
	err = uzs_hello(u, max_resident, comm, &dev_fd);
	if (err == 0)
		err = uzs_hand_uffd(u, dev_fd);
	pthread_mutex_unlock(&u->lock);
	if (err == 0)
		err = uzs_watch_start(u);
	return err;
}

static void report(const struct uzswap_options *opt, const char *line)
{
	if (opt && opt->error && opt->error_len)
		snprintf(opt->error, opt->error_len, "%s", line);
}

int uzswap_connect(const char *socket_path, const struct uzswap_options *opt, struct uzswap **out)
{
	uint64_t max_resident = opt ? opt->max_resident : 0;
	struct uzswap *u;
	char comm[16];
	int err;

	if (!out) {
		report(opt, "uzswap_connect: no place for the result (out is NULL)");
		return -EINVAL;
	}
	*out = NULL;
	if (opt && opt->name) {
		memset(comm, 0, sizeof(comm));
		strncpy(comm, opt->name, sizeof(comm) - 1);
	} else {
		uzs_process_name(comm);
	}
	u = conn_alloc();
	if (!u) {
		report(opt, "uzswap_connect: out of memory");
		return -ENOMEM;
	}
	err = uzs_conn_open(u, socket_path);
	if (err == 0)
		err = conn_setup(u, max_resident, comm);
	if (err) {
		report(opt, u->error);
		conn_free(u);
		return err;
	}
	report(opt, "");
	*out = u;
	return 0;
}

void uzswap_close(struct uzswap *u)
{
	if (!u)
		return;
	uzs_region_release_all(u);
	conn_free(u);
}

int uzswap_stats(struct uzswap *u, struct uzswap_stats *st)
{
	struct uzp_client_stats cs;
	uint64_t max_resident;
	int err;

	if (!u || !st)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	err = uzs_conn_request(u, UZP_STATS, NULL, 0, -1, &cs, sizeof(cs), NULL);
	max_resident = u->max_resident;
	pthread_mutex_unlock(&u->lock);
	if (err)
		return err;
	*st = (struct uzswap_stats){
		.max_resident = max_resident,
		.managed_pages = cs.managed_pages,
		.resident_pages = cs.resident_pages,
		.same_pages = cs.same_pages,
		.pool_pages = cs.pool_pages,
		.file_pages = cs.file_pages,
		.pool_bytes = cs.pool_bytes,
		.faults = cs.faults,
		.faults_zero = cs.faults_zero,
		.evictions = cs.evictions,
		.rejections = cs.rejections,
		.fault_p50_ns = cs.fault_p50_ns,
		.evict_ns = cs.evict_ns,
		.fault_p99_ns = cs.fault_p99_ns,
	};
	return 0;
}

const char *uzswap_last_error(const struct uzswap *u)
{
	return u ? u->error : "no uzswap connection";
}
