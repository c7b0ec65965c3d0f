/* SPDX-License-Identifier: MIT */
/*
 * daemon/fthread.c - the fault threads (see fthread.h).
 *
 * struct fthread, one per thread:
 *   epfd       its epoll set: the userfaultfds of its clients (data: the
 *              struct uzd_fthread_member) and evfd (data: NULL)
 *   evfd       an eventfd the server writes to wake the thread for a
 *              removal or the stop
 *   fc         its fault context (daemon/fault.h)
 *   members    every membership it holds (a reference each), and removed,
 *              those the server has asked it to let go; both under lock
 *   nclients   members not yet removed, for picking the least loaded thread
 *   cluster, cluster_want  the readahead its fault context has, and the one
 *              a reload asked for (relaxed atomic), applied by the thread
 *
 * uzd_fthreads.busy_poll_us, how long a thread polls after a batch that
 * served faults before it sleeps: relaxed atomic, set by the server.
 *
 * A membership is freed only by its thread, after the epoll batch that may
 * still name it: the thread takes the removal list before looking at the
 * batch and marks each removed member first, so an event for it is
 * skipped, never served after the server let the client go.
 *
 * Lock order: fthread.lock is a leaf (nothing is taken under it).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon/fault.h"
#include "daemon/fthread.h"

#define FTHREAD_EVENTS 64

struct fthread;

struct uzd_fthread_member {
	struct uzd_client *c;
	struct fthread *t;
	struct uzd_fthread_member *next, *prev; /* on t->members */
	struct uzd_fthread_member *next_removed;
	bool removed;  /* the server let go: skip its events (thread only) */
	bool watching; /* its uffd is in the epoll set (thread only) */
	bool muted;    /* throttled: in the set with no events until mute_until */
	uint64_t mute_until;
};

struct fthread {
	struct uzd_fthreads *ft;
	pthread_t thread;
	bool running;
	int epfd, evfd;
	struct uzd_fault_ctx *fc;
	pthread_mutex_t lock;
	bool lock_ready;
	struct uzd_fthread_member members; /* list head */
	struct uzd_fthread_member *removed;
	bool stop;
	unsigned int nclients;
	unsigned int nmuted; /* members muted now (thread only) */
	unsigned int cluster, cluster_want;
};

struct uzd_fthreads {
	unsigned int n;
	struct fthread *t;
	uzd_fthread_before_fn before;
	uzd_fthread_after_fn after;
	void *arg;
	unsigned int busy_poll_us;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wake(struct fthread *t)
{
	uint64_t one = 1;

	/* Cannot fail short of a counter overflow, which a pending wake-up covers. */
	if (write(t->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		fprintf(stderr, "uzswapd: fault thread: eventfd write: %s\n", strerror(errno));
}

static void drain_wake(struct fthread *t)
{
	uint64_t v;

	if (read(t->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		fprintf(stderr, "uzswapd: fault thread: eventfd read: %s\n", strerror(errno));
}

static void unwatch(struct fthread *t, struct uzd_fthread_member *m)
{
	if (!m->watching)
		return;
	epoll_ctl(t->epfd, EPOLL_CTL_DEL, m->c->uffd, NULL);
	m->watching = false;
	if (m->muted) {
		m->muted = false;
		t->nmuted--;
	}
}

/* Set what epoll reports for @m: EPOLLIN, or nothing while it is muted. */
static void listen_for(struct fthread *t, struct uzd_fthread_member *m, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = m };

	epoll_ctl(t->epfd, EPOLL_CTL_MOD, m->c->uffd, &ev);
}

/*
 * Throttle: the client's faults wait in the kernel for @ns, its userfaultfd
 * out of the epoll set's reports (level-triggered, it would otherwise be
 * reported again at once).  Other clients are served meanwhile.
 */
static void mute(struct fthread *t, struct uzd_fthread_member *m, uint64_t ns)
{
	listen_for(t, m, 0);
	m->muted = true;
	m->mute_until = now_ns() + ns;
	t->nmuted++;
}

/* Unmute the members whose time is up; returns ns until the next one is (0: none muted). */
static uint64_t unmute_due(struct fthread *t)
{
	uint64_t now = now_ns(), next = 0;

	if (!t->nmuted)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (struct uzd_fthread_member *m = t->members.next; m != &t->members; m = m->next) {
		if (!m->muted)
			continue;
		if (m->mute_until <= now) {
			listen_for(t, m, EPOLLIN);
			m->muted = false;
			t->nmuted--;
		} else if (!next || m->mute_until - now < next) {
			next = m->mute_until - now;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return next;
}

static void serve(struct fthread *t, struct uzd_fthread_member *m)
{
	int ret;

	if (m->removed || !m->watching || m->muted)
		return;
	if (t->ft->before) {
		uint64_t delay = t->ft->before(t->ft->arg, m->c);

		if (delay) {
			mute(t, m, delay);
			return;
		}
	}
	ret = uzd_fault_drain(t->fc, m->c);
	if (ret < 0) {
		/* Gone or broken: stop polling it; the server tears it down on the socket's EOF. */
		if (ret != -ESRCH)
			fprintf(stderr, "uzswapd: client %" PRIu32 ": userfaultfd: %s\n", m->c->id,
				strerror(-ret));
		unwatch(t, m);
	}
	if (t->ft->after)
		t->ft->after(t->ft->arg, m->c);
}

/* Let go of a member: out of the epoll set and the list, its reference dropped. */
static void release(struct fthread *t, struct uzd_fthread_member *m)
{
	unwatch(t, m);
	pthread_mutex_lock(&t->lock);
	m->prev->next = m->next;
	m->next->prev = m->prev;
	pthread_mutex_unlock(&t->lock);
	__atomic_fetch_sub(&t->nclients, 1, __ATOMIC_RELAXED);
	uzd_client_put(m->c);
	free(m);
}

static struct uzd_fthread_member *take_removed(struct fthread *t, bool *stop)
{
	struct uzd_fthread_member *list;

	pthread_mutex_lock(&t->lock);
	list = t->removed;
	t->removed = NULL;
	*stop = t->stop;
	pthread_mutex_unlock(&t->lock);
	for (struct uzd_fthread_member *m = list; m; m = m->next_removed)
		m->removed = true;
	return list;
}

/* A reload's readahead, into this thread's own context (between batches). */
static void apply_cluster(struct fthread *t)
{
	unsigned int want = __atomic_load_n(&t->cluster_want, __ATOMIC_RELAXED);

	if (want != t->cluster && uzd_fault_ctx_set_cluster(t->fc, want) == 0)
		t->cluster = want;
}

/*
 * The next batch of events.  After a batch that served faults (@polling),
 * the set is polled for up to busy_poll_us first: a paging client faults
 * again within microseconds, and a thread asleep by then is woken by an
 * IPI, which on a KVM guest that halts its idle vCPUs costs tens of µs
 * (BENCHMARKS.md).  Each empty poll yields the CPU: a client or reclaim
 * sharing it runs first (without the yield, p99 under eviction doubled).
 * Then sleep until an event, or @wait ns (0: none).
 */
static int next_events(struct fthread *t, struct epoll_event *ev, bool polling, uint64_t wait)
{
	uint64_t poll_ns = (uint64_t)__atomic_load_n(&t->ft->busy_poll_us, __ATOMIC_RELAXED) * 1000;
	struct timespec zero = { 0, 0 }, timeout;
	int n;

	if (polling && poll_ns) {
		uint64_t t0 = now_ns();

		while ((n = epoll_pwait2(t->epfd, ev, FTHREAD_EVENTS, &zero, NULL)) == 0 &&
		       now_ns() - t0 < poll_ns)
			sched_yield();
		if (n)
			return n;
	}
	timeout.tv_sec = (time_t)(wait / 1000000000u);
	timeout.tv_nsec = (long)(wait % 1000000000u);
	return epoll_pwait2(t->epfd, ev, FTHREAD_EVENTS, wait ? &timeout : NULL, NULL);
}

static void *fthread_main(void *arg)
{
	struct epoll_event ev[FTHREAD_EVENTS];
	struct fthread *t = arg;
	struct uzd_fthread_member *gone, *next;
	bool stop = false, served = false;
	int n;

	while (!stop) {
		n = next_events(t, ev, served, unmute_due(t));
		served = false;
		if (n < 0) {
			/* Nothing but EINTR is expected; never leave members the server still names. */
			if (errno != EINTR) {
				fprintf(stderr, "uzswapd: fault thread: epoll_wait: %s\n",
					strerror(errno));
				nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
			}
			n = 0;
		}
		/*
		 * The wake-up is consumed before the removals are taken, never
		 * after: a removal or stop asked in between leaves its own
		 * wake-up pending, so the next epoll_wait returns at once.
		 */
		drain_wake(t);
		apply_cluster(t);
		gone = take_removed(t, &stop);
		for (int i = 0; i < n; i++)
			if (ev[i].data.ptr) {
				serve(t, ev[i].data.ptr);
				served = true;
			}
		for (; gone; gone = next) {
			next = gone->next_removed;
			release(t, gone);
		}
	}
	/* Stopping: whatever the server did not remove is let go here. */
	while (t->members.next != &t->members)
		release(t, t->members.next);
	return NULL;
}

static int fthread_init(struct uzd_fthreads *ft, struct fthread *t, const struct uzc_spec *spec,
			unsigned int page_cluster)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int ret;

	t->ft = ft;
	t->members.next = t->members.prev = &t->members;
	ret = -pthread_mutex_init(&t->lock, NULL);
	if (ret < 0)
		return ret;
	t->lock_ready = true;
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	t->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->epfd < 0 || t->evfd < 0)
		return -errno;
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->evfd, &ev) < 0)
		return -errno;
	ret = uzd_fault_ctx_new(spec, &t->fc);
	t->cluster = t->cluster_want = page_cluster;
	return ret < 0 ? ret : uzd_fault_ctx_set_cluster(t->fc, page_cluster);
}

static void fthread_fini(struct fthread *t)
{
	if (t->fc)
		uzd_fault_ctx_free(t->fc);
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->evfd >= 0)
		close(t->evfd);
	if (t->lock_ready)
		pthread_mutex_destroy(&t->lock);
}

/* Fault threads take no signals: the server's loop handles them. */
static int spawn(struct fthread *t)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&t->thread, NULL, fthread_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	t->running = ret == 0;
	return ret;
}

int uzd_fthreads_start(unsigned int n, const struct uzc_spec *spec, unsigned int page_cluster,
		       uzd_fthread_before_fn before, uzd_fthread_after_fn after, void *arg,
		       struct uzd_fthreads **out)
{
	struct uzd_fthreads *ft = calloc(1, sizeof(*ft));
	int ret = -ENOMEM;

	if (!ft)
		return -ENOMEM;
	ft->before = before;
	ft->after = after;
	ft->arg = arg;
	ft->t = calloc(n, sizeof(*ft->t));
	if (!ft->t)
		goto err;
	for (unsigned int i = 0; i < n; i++) {
		ft->t[i].epfd = ft->t[i].evfd = -1;
		ft->n = i + 1;
		ret = fthread_init(ft, &ft->t[i], spec, page_cluster);
		if (ret == 0)
			ret = spawn(&ft->t[i]);
		if (ret < 0)
			goto err;
	}
	*out = ft;
	return 0;
err:
	uzd_fthreads_stop(ft);
	return ret;
}

static struct fthread *least_loaded(struct uzd_fthreads *ft)
{
	struct fthread *best = &ft->t[0];

	for (unsigned int i = 1; i < ft->n; i++)
		if (__atomic_load_n(&ft->t[i].nclients, __ATOMIC_RELAXED) <
		    __atomic_load_n(&best->nclients, __ATOMIC_RELAXED))
			best = &ft->t[i];
	return best;
}

int uzd_fthreads_add(struct uzd_fthreads *ft, struct uzd_client *c, struct uzd_fthread_member **out)
{
	struct uzd_fthread_member *m = calloc(1, sizeof(*m));
	struct epoll_event ev = { .events = EPOLLIN };
	struct fthread *t = least_loaded(ft);

	if (!m)
		return -ENOMEM;
	m->c = c;
	m->t = t;
	m->watching = true;
	uzd_client_get(c);
	pthread_mutex_lock(&t->lock);
	m->next = &t->members;
	m->prev = t->members.prev;
	t->members.prev->next = m;
	t->members.prev = m;
	pthread_mutex_unlock(&t->lock);
	__atomic_fetch_add(&t->nclients, 1, __ATOMIC_RELAXED);
	ev.data.ptr = m;
	/* epoll_ctl is safe while the thread waits in epoll_wait on the same set. */
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, c->uffd, &ev) < 0) {
		int err = -errno;

		m->watching = false;
		uzd_fthreads_remove(ft, m);
		return err;
	}
	*out = m;
	return 0;
}

void uzd_fthreads_remove(struct uzd_fthreads *ft, struct uzd_fthread_member *m)
{
	struct fthread *t = m->t;

	(void)ft;
	pthread_mutex_lock(&t->lock);
	m->next_removed = t->removed;
	t->removed = m;
	pthread_mutex_unlock(&t->lock);
	wake(t);
}

void uzd_fthreads_set_busy_poll(struct uzd_fthreads *ft, unsigned int us)
{
	__atomic_store_n(&ft->busy_poll_us, us, __ATOMIC_RELAXED);
}

int uzd_fthreads_set_cluster(struct uzd_fthreads *ft, unsigned int page_cluster)
{
	if (page_cluster > UZD_FAULT_MAX_CLUSTER)
		return -EINVAL;
	for (unsigned int i = 0; i < ft->n; i++) {
		__atomic_store_n(&ft->t[i].cluster_want, page_cluster, __ATOMIC_RELAXED);
		wake(&ft->t[i]);
	}
	return 0;
}

void uzd_fthreads_stop(struct uzd_fthreads *ft)
{
	if (!ft)
		return;
	for (unsigned int i = 0; i < ft->n; i++) {
		struct fthread *t = &ft->t[i];

		if (!t->running)
			continue;
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		pthread_mutex_unlock(&t->lock);
		wake(t);
		pthread_join(t->thread, NULL);
	}
	for (unsigned int i = 0; i < ft->n; i++)
		fthread_fini(&ft->t[i]);
	free(ft->t);
	free(ft);
}
