/* SPDX-License-Identifier: MIT */
/*
 * client/uzi_fork.c - fork: the child gets a private copy of the managed
 * memory, and neither side ever reads a zero page where data was.
 *
 * Managed memory is shared memory (a memfd), which fork would share, and
 * its registration with our userfaultfd is not inherited (design.md §1).
 * So every managed mapping is MADV_DONTFORK (the child gets a hole), and
 * glibc's atfork handlers do the rest with the daemon (daemon/fork.h):
 *   prepare  take uzi.lock (until parent/child); open the child's
 *            connection now (HELLO on a second socket, which the child
 *            inherits) and its memfd; FORK: the daemon fences us (our other
 *            threads' writes and faults wait) and copies our resident pages
 *            into the child's memfd, sharing the evicted ones by refcount
 *   parent   FORK_DONE lifts the fence; close the child's descriptors.  If
 *            fork failed, closing the child's socket frees the snapshot.
 *   child    drop the parent's descriptors; map the child's memfd where
 *            each record was, with its protection, DONTFORK, registered
 *            with a new userfaultfd; FORK_ATTACH; start a watcher.  Records
 *            the program marked MADV_DONTFORK are dropped, WIPEONFORK ones
 *            start again from zeros.  If any step fails the child stops
 *            with a message: it must not run with holes or zeros where its
 *            data was.
 * A process holding no managed memory does none of this; its child starts
 * unconnected and connects on its first eligible mmap.
 *
 * Order matters: prepare handlers run in reverse order of registration and
 * the others in order, and ours must be the last prepare (after e.g.
 * jemalloc's, which locks its managed metadata) and the first child and
 * parent handler (before jemalloc's touches it).  So __register_atfork is
 * interposed: ours is registered with glibc before anybody else's,
 * whatever the order of the libraries' constructors.
 *
 * Never, in the handlers: malloc (other handlers hold the allocator's
 * locks), pthread_create (it mallocs), or touch managed memory.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/uffd.h"
#include "client/uzi.h"
#include "client/uzi_sys.h"

extern void *__dso_handle;

typedef int (*register_fn)(void (*)(void), void (*)(void), void (*)(void), void *);

static register_fn real_register;
static int registered; /* 0, 1 while registering, 2 done */

/* ---- the child's connection, made by the parent ---- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void child_conn_close(void)
{
	close_fd(&uzi.fork.conn.sock);
	close_fd(&uzi.fork.conn.uffd);
	close_fd(&uzi.fork.dev_fd);
	close_fd(&uzi.fork.memfd);
}

static int child_conn_open(void)
{
	char comm[16];
	int err;

	err = uzs_conn_init(&uzi.fork.conn);
	if (err)
		return err;
	err = uzs_conn_open(&uzi.fork.conn, uzi.conn.path);
	if (err)
		return err;
	uzs_process_name(comm);
	pthread_mutex_lock(&uzi.fork.conn.lock);
	err = uzs_hello(&uzi.fork.conn, uzi.max_resident, comm, &uzi.fork.dev_fd);
	pthread_mutex_unlock(&uzi.fork.conn.lock);
	if (err == 0 && uzi.fork.dev_fd < 0)
		err = -EPROTO; /* the child needs /dev/userfaultfd for its own userfaultfd */
	if (err == 0) {
		uzi.fork.memfd = uzi_make_memfd();
		if (uzi.fork.memfd < 0)
			err = uzi.fork.memfd;
	}
	return err;
}

static int request_fork(void)
{
	struct uzp_fork req = { .child_id = uzi.fork.conn.client_id };
	struct uzp_forked ok;
	int err;

	pthread_mutex_lock(&uzi.conn.lock);
	err = uzs_conn_request(&uzi.conn, UZP_FORK, &req, sizeof(req), uzi.fork.memfd, &ok,
			       sizeof(ok), NULL);
	pthread_mutex_unlock(&uzi.conn.lock);
	return err;
}

/* ---- the handlers ---- */

static void prepare(void)
{
	int err;

	pthread_mutex_lock(&uzi.lock);
	uzi.fork.active = true;
	uzi.fork.snapshot = false;
	uzi.fork.failed[0] = '\0';
	uzi.fork.dev_fd = uzi.fork.memfd = -1;
	uzi.fork.conn.sock = uzi.fork.conn.uffd = -1;
	if (uzi.mode != UZI_ON || uzi.t.n == 0)
		return;
	err = child_conn_open();
	if (err == 0)
		err = request_fork();
	if (err == 0) {
		uzi.fork.snapshot = true;
		return;
	}
	snprintf(uzi.fork.failed, sizeof(uzi.fork.failed), "%s",
		 uzi.fork.conn.error[0] ? uzi.fork.conn.error :
		 uzi.conn.error[0]	? uzi.conn.error :
					  strerror(-err));
	child_conn_close();
	if (err == -ENOTCONN)
		uzi_conn_failed(err); /* our daemon is gone: we stop too */
}

static void parent(void)
{
	struct uzp_fork req = { .child_id = uzi.fork.conn.client_id };
	int err = 0;

	if (uzi.fork.snapshot) {
		pthread_mutex_lock(&uzi.conn.lock);
		err = uzs_conn_request(&uzi.conn, UZP_FORK_DONE, &req, sizeof(req), -1, NULL, 0,
				       NULL);
		pthread_mutex_unlock(&uzi.conn.lock);
		/* The child (if there is one) keeps its copies; a failed fork frees the snapshot. */
		child_conn_close();
	}
	uzi.fork.active = false;
	if (err == -ENOTCONN)
		uzi_conn_failed(err);
	pthread_mutex_unlock(&uzi.lock);
}

__attribute__((noreturn)) static void child_stop(const char *what, const char *why)
{
	char line[UZS_ERROR_MAX + 256];
	int n = snprintf(line, sizeof(line),
			 "uzswap: pid %d: fork: %s: %s; the child cannot have its memory: "
			 "stopping it\n",
			 (int)getpid(), what, why);

	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		n = 0;
	_exit(UZSWAP_EXIT_DAEMON_GONE);
}

/* Map the child's memfd at record @r, as the parent had it. */
static int child_map(const struct uzi_rec *r)
{
	void *p = uzi_sys_mmap((void *)r->addr, r->len, r->prot, MAP_SHARED | MAP_FIXED, uzi.memfd,
			       (off_t)r->off);

	if (p == MAP_FAILED)
		return -errno;
	if (uzi_sys_madvise(p, r->len, MADV_DONTFORK) < 0)
		return -errno;
	return uzs_uffd_register(uzi.conn.uffd, r->addr, r->len, UZP_UFFD_REGISTER_MODES, NULL);
}

static int child_attach(void)
{
	struct uzp_fork_attach req = { .pid = (uint32_t)getpid() };
	int err;

	pthread_mutex_lock(&uzi.conn.lock);
	err = uzs_conn_request(&uzi.conn, UZP_FORK_ATTACH, &req, sizeof(req), uzi.conn.uffd, NULL,
			       0, NULL);
	pthread_mutex_unlock(&uzi.conn.lock);
	return err;
}

/* Records the program marked DONTFORK go; WIPEONFORK ones start from zeros. */
static void child_fork_flags(void)
{
	for (size_t i = 0; i < uzi.t.n;) {
		struct uzi_rec r = uzi.t.v[i];

		if (!(r.flags & (UZI_REC_DONTFORK | UZI_REC_WIPEONFORK))) {
			i++;
			continue;
		}
		uzi_map_release(r.addr, r.len);
		if (r.flags & UZI_REC_DONTFORK) {
			uzi_sys_munmap((void *)r.addr, r.len);
			uzi_map_forget(r.addr, r.len); /* removes record i */
			continue;
		}
		/* WIPEONFORK: the daemon forgot the copy; the mapping reads zeros from now. */
		uzi_map_forget(r.addr, r.len);
		uzi_sys_munmap((void *)r.addr, r.len);
		if (uzi_sys_mmap((void *)r.addr, r.len, r.prot,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
				 0) == (void *)r.addr &&
		    r.prot == (PROT_READ | PROT_WRITE))
			uzi_map_manage(r.addr, r.len, r.prot, 0);
		i = uzi_table_first_after(&uzi.t, r.addr + r.len);
	}
}

static void child_take_connection(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	char why[256] = "";
	int uffd, err;

	/* The parent's descriptors are not ours: never use its connection or memfd. */
	close_fd(&uzi.conn.sock);
	close_fd(&uzi.conn.uffd);
	close_fd(&uzi.memfd);
	uzi.conn = uzi.fork.conn;
	uzi.conn.lock = fresh;
	uzi.memfd = uzi.fork.memfd;
	uffd = uzs_uffd_create(uzi.fork.dev_fd, why, sizeof(why));
	close_fd(&uzi.fork.dev_fd);
	if (uffd < 0)
		child_stop("cannot create a userfaultfd", why);
	uzi.conn.uffd = uffd;
	for (size_t i = 0; i < uzi.t.n; i++) {
		err = child_map(&uzi.t.v[i]);
		if (err)
			child_stop("cannot map its copy of managed memory", strerror(-err));
	}
	err = child_attach();
	if (err)
		child_stop("uzswapd refused the child's userfaultfd", uzswap_last_error(&uzi.conn));
	child_fork_flags();
	err = uzi_watch_start();
	if (err)
		child_stop("cannot start watching uzswapd", strerror(-err));
}

static void child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

	/* The only thread now; the lock was ours in the parent. */
	uzi.lock = fresh;
	uzi.pid = getpid();
	uzi.over_quota = false; /* a client of its own */
	if (uzi.fork.snapshot) {
		child_take_connection();
	} else {
		if (uzi.mode == UZI_ON && uzi.t.n)
			child_stop("uzswapd could not copy the managed memory", uzi.fork.failed);
		close_fd(&uzi.conn.sock);
		close_fd(&uzi.conn.uffd);
		close_fd(&uzi.memfd);
		if (uzi.mode == UZI_ON)
			uzi.mode = UZI_IDLE; /* connect again on the first eligible mmap */
	}
	uzi.fork.active = false;
}

/* ---- registration ---- */

static int register_ours(void)
{
	if (!real_register)
		real_register = (register_fn)dlsym(RTLD_NEXT, "__register_atfork");
	if (!real_register)
		return -ENOSYS;
	if (__atomic_load_n(&registered, __ATOMIC_ACQUIRE) == 2)
		return 0;
	registered = 1;
	real_register(prepare, parent, child, &__dso_handle);
	__atomic_store_n(&registered, 2, __ATOMIC_RELEASE);
	return 0;
}

void uzi_fork_register(void)
{
	if (register_ours() < 0)
		uzi_say("cannot find glibc's __register_atfork: fork of managed memory is unsafe");
}

/*
 * Every library's pthread_atfork() comes here (glibc's is a static stub
 * calling this): ours goes first, so that it runs closest to the fork.
 */
int __register_atfork(void (*pre)(void), void (*par)(void), void (*chi)(void), void *dso)
{
	if (__atomic_load_n(&registered, __ATOMIC_ACQUIRE) != 1 && register_ours() < 0)
		return ENOSYS;
	return real_register(pre, par, chi, dso);
}
