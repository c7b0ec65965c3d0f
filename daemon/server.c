/* SPDX-License-Identifier: MIT */
/*
 * daemon/server.c - uzswapd's control plane: connections, protocol, policy.
 *
 * One libuv loop on the main thread owns every connection.  A connection
 * (struct uzd_session) goes through three states:
 *
 *   HELLO  just accepted; only HELLO (and STATUS) are answered.  HELLO is
 *          checked against the peer's SO_PEERCRED uid (allow_uids) and
 *          max_clients; an accepted client gets its budget and a
 *          descriptor of /dev/userfaultfd (design.md §1)
 *   UFFD   waiting for SET_UFFD: the client's userfaultfd, checked for
 *          the features uzswap needs, is then handed to a fault thread and
 *          the client joins the list reclaim works on
 *   READY  REGISTER, UNREGISTER, STATS, STATUS
 *
 * CLASSES and ADMIN (uzswapctl) are answered in any state by
 * daemon/admin.c, which also owns SIGHUP (reload, daemon/reload.c).
 *
 * A malformed or out-of-order request gets an error reply with a message
 * and is logged with the client's pid (rate-limited per connection); a
 * connection that keeps sending them is dropped.  Nothing a client sends
 * can affect another client: every request names only the sender's own
 * table, and a REGISTERed range must be registered with the sender's own
 * userfaultfd (checked with a write-protect call that touches nothing).
 *
 * Teardown (EOF, error, or the daemon stopping) drops the server's
 * reference and asks the fault thread to drop its own; the client's pages
 * and pool objects are freed by whichever goes last (daemon/client.h).
 *
 * Never: block the loop on a fault thread or reclaim; serve a fault here;
 * keep a descriptor a client sent that was not accepted.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/admin.h"
#include "daemon/fork.h"
#include "daemon/fthread.h"
#include "daemon/peer.h"
#include "daemon/proto.h"
#include "daemon/quota.h"
#include "daemon/reclaim.h"
#include "daemon/reload.h"
#include "daemon/sdnotify.h"
#include "daemon/server.h"
#include "daemon/uffd.h"
#include "daemon/writeback.h"

#define SESSION_BATCH 32	  /* requests read per wake-up, for fairness */
#define SESSION_MAX_ERRORS 64	  /* protocol errors before a connection is dropped */
#define SESSION_LOG_ERRORS 8	  /* of which logged */
#define REGISTER_EAGAIN_TRIES 100 /* range probes retried while an event is in flight */
#define ACCEPT_PAUSE_MS 100	  /* after accept ran out of descriptors */
/* Connections at once, HELLO said or not: the clients and a few uzswapctl. */
#define SESSION_LIMIT(d) ((size_t)(d)->cfg.max_clients + 16)
#define SESSION_ROOT_RESERVE 8 /* more, for root alone */
/*
 * A connection that has sent nothing this long is closed, so that silent
 * ones cannot sit on slots (a client says HELLO, uzswapctl its request, at
 * once).
 */
#define SESSION_SILENT_MS 10000
#define UZD_THROTTLE_NS 200000 /* a throttled client's faults wait this long, then recheck */

enum session_state {
	S_HELLO,
	S_UFFD,
	S_READY,
};

/*
 *  poll     libuv watches sock (readable, hang-up); its close frees this
 *  pid,uid,gid  SO_PEERCRED at accept
 *  c        the client, from an accepted HELLO (a reference)
 *  member   its membership of a fault thread, from SET_UFFD
 *  listed   c is in d->clients
 *  accepted_ns, spoke   when it was accepted, and whether it has sent anything
 */
struct uzd_session {
	struct uzd_daemon *d;
	uv_poll_t poll;
	int sock;
	enum session_state state;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct uzd_client *c;
	struct uzd_fthread_member *member;
	bool listed, closing, spoke;
	unsigned int errors, refusals;
	uint64_t accepted_ns;
	struct uzd_session *next, *prev;
};

struct server {
	struct uzd_daemon d;
	uv_loop_t loop;
	uv_poll_t listen_poll;
	uv_signal_t sigterm, sigint;
	uv_timer_t accept_timer;
	uv_timer_t sd_timer;	 /* systemd STATUS and watchdog keep-alives */
	uv_timer_t silent_timer; /* closes connections that said nothing (SESSION_SILENT_MS) */
	bool stopping;
};

static void slog(const struct uzd_daemon *d, enum uzd_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void slog(const struct uzd_daemon *d, enum uzd_log_level lvl, const char *fmt, ...)
{
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char line[512];
	va_list ap;

	if (lvl > d->cfg.log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "uzswapd: %s: %s\n", tag[lvl], line);
}

uint64_t uzd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the client list (shared with reclaim and status) ---- */

static int clients_add(struct uzd_daemon *d, struct uzd_client *c)
{
	pthread_mutex_lock(&d->clients_lock);
	/* max_clients bounds accepted HELLOs, so the array never overflows. */
	d->clients[d->n_clients++] = c;
	pthread_mutex_unlock(&d->clients_lock);
	return 0;
}

static void clients_remove(struct uzd_daemon *d, struct uzd_client *c)
{
	pthread_mutex_lock(&d->clients_lock);
	for (size_t i = 0; i < d->n_clients; i++) {
		if (d->clients[i] == c) {
			d->clients[i] = d->clients[--d->n_clients];
			break;
		}
	}
	pthread_mutex_unlock(&d->clients_lock);
}

static size_t clients_snapshot(void *arg, struct uzd_client **out, size_t max)
{
	struct uzd_daemon *d = arg;
	size_t n;

	pthread_mutex_lock(&d->clients_lock);
	n = d->n_clients < max ? d->n_clients : max;
	for (size_t i = 0; i < n; i++) {
		out[i] = d->clients[i];
		uzd_client_get(out[i]);
	}
	pthread_mutex_unlock(&d->clients_lock);
	return n;
}

/* Writeback's owner lookup: the client with @id, with a reference. */
/* uzd_wb_ids_fn: the live clients' ids (writeback looks for a shared object's owners). */
static size_t client_ids(void *arg, uint32_t *ids, size_t max)
{
	struct uzd_daemon *d = arg;
	size_t n;

	pthread_mutex_lock(&d->clients_lock);
	n = d->n_clients < max ? d->n_clients : max;
	for (size_t i = 0; i < n; i++)
		ids[i] = d->clients[i]->id;
	pthread_mutex_unlock(&d->clients_lock);
	return n;
}

static struct uzd_client *client_by_id(void *arg, uint32_t id)
{
	struct uzd_daemon *d = arg;
	struct uzd_client *c = NULL;

	pthread_mutex_lock(&d->clients_lock);
	for (size_t i = 0; i < d->n_clients && !c; i++) {
		if (d->clients[i]->id == id) {
			c = d->clients[i];
			uzd_client_get(c);
		}
	}
	pthread_mutex_unlock(&d->clients_lock);
	return c;
}

static uint64_t pct_of(uint64_t v, unsigned int percent)
{
	return v / 100 * percent + v % 100 * percent / 100;
}

/* Fault thread, after draining @c: over its high watermark, reclaim should not wait. */
static void after_drain(void *arg, struct uzd_client *c)
{
	struct uzd_daemon *d = arg;

	/* A reload may move the watermark and the budget: both are read afresh (reload.c). */
	if (uzd_client_resident(c) >
	    pct_of(uzd_client_budget(c),
		   __atomic_load_n(&d->live_high_watermark, __ATOMIC_RELAXED)))
		uzd_reclaim_kick(d->rc);
}

/*
 * Fault thread, before draining @c.  Restoring a page costs a fraction of
 * evicting one (design.md §1: ~2 us of lz4 against 7-13 us), so a client
 * faulting with several threads at full speed can outrun reclaim and grow
 * far past its budget however eviction is scheduled.  Past throttle_above
 * percent of its budget its faults are held back for a moment, as the
 * kernel throttles a cgroup over memory.high: they wait for CPU time to go
 * to reclaim, never for an eviction to finish, and not at all when reclaim
 * cannot make progress (a full pool: throttling would only slow the client).
 */
static uint64_t before_drain(void *arg, struct uzd_client *c)
{
	struct uzd_daemon *d = arg;

	unsigned int throttle = __atomic_load_n(&d->live_throttle_above, __ATOMIC_RELAXED);

	if (!throttle || __atomic_load_n(&c->reclaim_stalled, __ATOMIC_RELAXED))
		return 0;
	if (uzd_client_resident(c) <= pct_of(uzd_client_budget(c), throttle))
		return 0;
	uzd_reclaim_kick(d->rc);
	return UZD_THROTTLE_NS;
}

/* ---- sessions ---- */

static void on_session_closed(uv_handle_t *h)
{
	struct uzd_session *s = h->data;
	struct uzd_daemon *d = s->d;

	close(s->sock);
	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	d->n_sessions--;
	free(s);
}

static void session_close(struct uzd_session *s, const char *why)
{
	struct uzd_daemon *d = s->d;

	if (s->closing)
		return;
	s->closing = true;
	if (s->c)
		slog(d, UZD_LOG_INFO, "client %" PRIu32 " (pid %d): %s", s->c->id, (int)s->pid,
		     why);
	if (s->member)
		uzd_fthreads_remove(d->ft, s->member);
	s->member = NULL;
	if (s->listed)
		clients_remove(d, s->c);
	s->listed = false;
	if (s->c)
		uzd_client_put(s->c);
	s->c = NULL;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_session_closed);
}

static void reply_error(struct uzd_session *s, uint32_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Refuse a request: answer it, log it (a few per connection), count it. */
static void reply_error(struct uzd_session *s, uint32_t seq, int err, const char *fmt, ...)
{
	struct uzd_daemon *d = s->d;
	char msg[UZP_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->counters.protocol_errors++;
	if (s->errors++ < SESSION_LOG_ERRORS)
		slog(d, UZD_LOG_WARN, "pid %d (uid %u): request refused: %s", (int)s->pid,
		     (unsigned int)s->uid, msg);
	if (uzd_proto_reply(s->sock, seq, err, NULL, 0, -1, "%s", msg) < 0)
		session_close(s, "reply failed: connection dropped");
	else if (s->errors >= SESSION_MAX_ERRORS) {
		d->counters.clients_dropped++;
		session_close(s, "too many bad requests: connection dropped");
	}
}

/*
 * Refuse a well-formed request the daemon cannot grant (a quota, a region
 * there already, a full table): answer it and log the first few, but it
 * is no protocol error, and never gets the connection dropped.
 */
static void reply_refused(struct uzd_session *s, uint32_t seq, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_refused(struct uzd_session *s, uint32_t seq, int err, const char *fmt, ...)
{
	char msg[UZP_MESSAGE_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s->refusals++ < SESSION_LOG_ERRORS)
		slog(s->d, UZD_LOG_INFO, "pid %d (uid %u): request refused: %s", (int)s->pid,
		     (unsigned int)s->uid, msg);
	if (uzd_proto_reply(s->sock, seq, err, NULL, 0, -1, "%s", msg) < 0)
		session_close(s, "reply failed: connection dropped");
}

static void reply_ok(struct uzd_session *s, uint32_t seq, const void *body, size_t len, int fd)
{
	if (uzd_proto_reply(s->sock, seq, 0, body, len, fd, NULL) < 0)
		session_close(s, "reply failed: connection dropped");
}

/* What @uid's sessions hold now (quota.h). */
static void uid_use(const struct uzd_daemon *d, uid_t uid, struct uzd_quota_use *use)
{
	*use = (struct uzd_quota_use){ 0 };
	for (const struct uzd_session *s = d->sessions; s; s = s->next) {
		size_t regions, pages;

		if (s->uid != uid || s->closing)
			continue;
		use->connections++;
		if (!s->c)
			continue;
		use->clients++;
		uzd_region_table_size(&s->c->regions, &regions, &pages);
		use->regions += regions;
		use->managed += (uint64_t)pages * UZD_PAGE_SIZE;
	}
}

static void client_use(struct uzd_client *c, struct uzd_quota_use *use)
{
	size_t regions, pages;

	uzd_region_table_size(&c->regions, &regions, &pages);
	*use = (struct uzd_quota_use){ .connections = 1,
				       .clients = 1,
				       .regions = regions,
				       .managed = (uint64_t)pages * UZD_PAGE_SIZE };
}

/* The client's budget: what it asked for, within the configured one, whole pages. */
static uint64_t pick_budget(const struct uzd_daemon *d, uint64_t asked)
{
	return uzd_reload_budget_pages(&d->cfg, asked);
}

static size_t live_clients(const struct uzd_daemon *d)
{
	size_t n = 0;

	for (const struct uzd_session *s = d->sessions; s; s = s->next)
		n += s->c != NULL;
	return n;
}

/*
 * Access sampling needs the client process itself (daemon/sample.h): a
 * pidfd of the socket's peer, and its pagemap.  Without them (an older
 * kernel, a client in another pid namespace) reclaim goes without.
 */
static void open_sampler(struct uzd_session *s, struct uzd_client *c)
{
	socklen_t len = sizeof(int);
	int pidfd = -1, ret;

	if (getsockopt(s->sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
		pidfd = -1;
	ret = uzd_sampler_open(&c->sampler, pidfd, s->pid);
	if (ret < 0)
		slog(s->d, UZD_LOG_INFO, "client %" PRIu32 " (pid %d): no access sampling: %s",
		     c->id, (int)s->pid, strerror(-ret));
}

static void on_hello(struct uzd_session *s, const struct uzd_request *req)
{
	struct uzd_daemon *d = s->d;
	const struct uzp_hello *h = &req->body.hello;
	struct uzp_hello_ok ok = { 0 };
	struct uzd_quota_use use;
	char msg[UZP_MESSAGE_MAX];
	struct uzd_client *c;
	int ret;

	if (s->state != S_HELLO)
		return reply_error(s, req->h.seq, -EPROTO,
				   "HELLO: this connection already said hello");
	if (!uzd_peer_allowed(&d->cfg, s->sock, s->uid, s->gid)) {
		d->counters.clients_refused++;
		reply_error(s, req->h.seq, -EACCES, UZD_PEER_REFUSED, (unsigned int)s->uid);
		return session_close(s, "refused by allow_uids and allow_groups");
	}
	if (live_clients(d) >= d->cfg.max_clients) {
		d->counters.clients_refused++;
		reply_error(s, req->h.seq, -EUSERS, "max_clients (%u) are connected",
			    d->cfg.max_clients);
		return session_close(s, "refused: max_clients reached");
	}
	uid_use(d, s->uid, &use);
	ret = uzd_quota_hello(&d->cfg, s->uid, &use, msg, sizeof(msg));
	if (ret < 0) {
		d->counters.clients_refused++;
		d->counters.quota_refused++;
		reply_refused(s, req->h.seq, ret, "%s", msg);
		return session_close(s, "refused: over uid_max_clients");
	}
	if (++d->next_client_id == 0)
		d->next_client_id = 1;
	ret = uzd_client_new(d->next_client_id, d->pool, &c);
	if (ret < 0)
		return reply_error(s, req->h.seq, ret, "out of memory for a new client");
	c->regions.max_regions = d->cfg.client_max_regions;
	c->wb = d->wb;
	c->pid = s->pid;
	c->uid = s->uid;
	c->shared = d->shared;
	memcpy(c->comm, h->comm, sizeof(c->comm));
	c->comm[sizeof(c->comm) - 1] = '\0';
	c->budget_pages = pick_budget(d, h->max_resident);
	c->asked_bytes = h->max_resident;
	c->hot_distance = uzd_reclaim_hot_distance(d->cfg.policy, c->budget_pages, 0);
	open_sampler(s, c);
	s->c = c;
	s->state = S_UFFD;
	d->counters.clients_accepted++;
	ok.client_id = c->id;
	ok.max_resident = c->budget_pages * UZD_PAGE_SIZE;
	ok.page_size = UZD_PAGE_SIZE;
	slog(d, UZD_LOG_INFO, "client %" PRIu32 ": pid %d uid %u (%s), budget %" PRIu64 " KiB",
	     c->id, (int)s->pid, (unsigned int)s->uid, c->comm, ok.max_resident >> 10);
	reply_ok(s, req->h.seq, &ok, sizeof(ok), d->dev_uffd);
}

static void on_set_uffd(struct uzd_session *s, struct uzd_request *req)
{
	struct uzd_daemon *d = s->d;
	char why[160] = "";
	int ret;

	if (s->state != S_UFFD) {
		close(req->fd);
		return reply_error(s, req->h.seq, -EPROTO, "SET_UFFD: %s",
				   s->state == S_HELLO ? "HELLO comes first" :
							 "this connection has its userfaultfd");
	}
	ret = uzd_uffd_check(req->fd, NULL, why, sizeof(why));
	if (ret < 0) {
		close(req->fd);
		return reply_error(s, req->h.seq, ret, "SET_UFFD: %s", why);
	}
	s->c->uffd = req->fd;
	req->fd = -1;
	clients_add(d, s->c);
	s->listed = true;
	ret = uzd_fthreads_add(d->ft, s->c, &s->member);
	if (ret < 0) {
		clients_remove(d, s->c);
		s->listed = false;
		close(s->c->uffd);
		s->c->uffd = -1;
		return reply_error(s, req->h.seq, ret,
				   "SET_UFFD: no fault thread could take it: %s", strerror(-ret));
	}
	s->state = S_READY;
	reply_ok(s, req->h.seq, NULL, 0, -1);
}

/*
 * Is [addr, addr+len) registered with the client's own userfaultfd?
 * Clearing write protection where none is set changes nothing, and the
 * kernel refuses it (-ENOENT) for a range outside the uffd's registration:
 * so a client can only register its own memory.
 */
static int probe_range(struct uzd_client *c, uint64_t addr, uint64_t len)
{
	struct timespec pause = { 0, 100000 };
	int ret;

	for (int i = 0; i < REGISTER_EAGAIN_TRIES; i++) {
		ret = uzd_uffd_writeprotect(c->uffd, addr, len, false, false);
		if (ret != -EAGAIN)
			return ret;
		/* An event is in flight; the fault thread reads it. */
		nanosleep(&pause, NULL);
	}
	return ret;
}

static bool range_has_region(struct uzd_client *c, uint64_t addr, uint64_t len)
{
	bool found = false;

	uzd_region_read_lock(&c->regions);
	for (size_t i = 0; i < c->regions.n && !found; i++) {
		const struct uzd_region *r = c->regions.regions[i];

		found = r->start < addr + len && addr < r->start + r->len;
	}
	uzd_region_read_unlock(&c->regions);
	return found;
}

static const char *register_error(int err)
{
	switch (err) {
	case -EEXIST:
		return "it overlaps a region already registered";
	case -ENOSPC:
		return "the client has the most regions it may";
	case -E2BIG:
		return "the region is larger than one region may be";
	case -EINVAL:
		return "the range or name is invalid";
	default:
		return strerror(-err);
	}
}

static void on_register(struct uzd_session *s, struct uzd_request *req)
{
	const struct uzp_register *r = &req->body.reg;
	struct uzd_region_args a = { 0 };
	struct uzp_registered ok = { 0 };
	struct uzd_quota_use mine, all;
	char msg[UZP_MESSAGE_MAX];
	int ret;

	if (s->state != S_READY) {
		close(req->fd);
		return reply_error(s, req->h.seq, -EPROTO, "REGISTER before SET_UFFD");
	}
	/*
	 * Overlap first: the probe clears write protection, which on a page of
	 * an existing region could lift reclaim's fence mid-eviction and lose
	 * a write.  Outside every region no fence can be (only this thread
	 * creates regions).
	 */
	if (range_has_region(s->c, r->addr, r->length)) {
		close(req->fd);
		return reply_refused(s, req->h.seq, -EEXIST,
				     "REGISTER %#" PRIx64 "+%#" PRIx64 ": %s", r->addr, r->length,
				     register_error(-EEXIST));
	}
	client_use(s->c, &mine);
	uid_use(s->d, s->uid, &all);
	ret = uzd_quota_register(&s->d->cfg, s->uid, &mine, &all, r->length, msg, sizeof(msg));
	if (ret < 0) {
		close(req->fd);
		s->d->counters.quota_refused++;
		return reply_refused(s, req->h.seq, ret, "REGISTER %#" PRIx64 "+%#" PRIx64 ": %s",
				     r->addr, r->length, msg);
	}
	ret = probe_range(s->c, r->addr, r->length);
	if (ret < 0) {
		close(req->fd);
		return reply_error(s, req->h.seq, ret == -EINVAL ? -ENOENT : ret,
				   "REGISTER %#" PRIx64 "+%#" PRIx64
				   ": not registered with this client's userfaultfd (%s)",
				   r->addr, r->length, strerror(-ret));
	}
	a.start = r->addr;
	a.len = r->length;
	a.memfd = req->fd;
	a.memfd_off = r->memfd_offset;
	a.name = r->name;
	ret = uzd_region_create(&s->c->regions, &a, &ok.region_id);
	if (ret < 0) {
		close(req->fd);
		/* Invalid ranges and fds are the client's fault; the rest are refusals. */
		if (ret == -EINVAL || ret == -EBADF)
			return reply_error(s, req->h.seq, ret,
					   "REGISTER %#" PRIx64 "+%#" PRIx64 ": %s", r->addr,
					   r->length, register_error(ret));
		return reply_refused(s, req->h.seq, ret, "REGISTER %#" PRIx64 "+%#" PRIx64 ": %s",
				     r->addr, r->length, register_error(ret));
	}
	req->fd = -1;
	slog(s->d, UZD_LOG_DEBUG,
	     "client %" PRIu32 ": region %" PRIu32 " \"%s\" %#" PRIx64 "+%#" PRIx64, s->c->id,
	     ok.region_id, r->name, r->addr, r->length);
	reply_ok(s, req->h.seq, &ok, sizeof(ok), -1);
}

static void on_unregister(struct uzd_session *s, const struct uzd_request *req)
{
	const struct uzp_range *r = &req->body.range;
	int ret;

	if (s->state != S_READY)
		return reply_error(s, req->h.seq, -EPROTO, "UNREGISTER before SET_UFFD");
	if (!range_has_region(s->c, r->addr, r->length))
		return reply_error(s, req->h.seq, -ENOENT,
				   "UNREGISTER %#" PRIx64 "+%#" PRIx64
				   ": no region of this client there",
				   r->addr, r->length);
	ret = uzd_region_unmap_range(&s->c->regions, r->addr, r->length, uzd_client_release, s->c,
				     NULL);
	if (ret < 0)
		return reply_error(s, req->h.seq, ret, "UNREGISTER: %s", strerror(-ret));
	reply_ok(s, req->h.seq, NULL, 0, -1);
}

/* ---- fork (daemon/fork.h) ---- */

/* The child's session of a FORK: a connection the same process opened, not yet served. */
static struct uzd_session *fork_child(struct uzd_session *s, uint32_t child_id)
{
	for (struct uzd_session *o = s->d->sessions; o; o = o->next) {
		if (o != s && !o->closing && o->c && o->c->id == child_id && o->pid == s->pid &&
		    o->uid == s->uid && o->state == S_UFFD)
			return o;
	}
	return NULL;
}

static void on_fork(struct uzd_session *s, struct uzd_request *req)
{
	struct uzd_quota_use mine, all;
	char msg[UZP_MESSAGE_MAX];
	struct uzp_forked ok = { 0 };
	struct uzd_fork_result res;
	struct uzd_session *child;
	int ret;

	if (s->state != S_READY) {
		close(req->fd);
		return reply_error(s, req->h.seq, -EPROTO, "FORK before SET_UFFD");
	}
	child = fork_child(s, req->body.fork.child_id);
	if (!child || child->c->regions.n) {
		close(req->fd);
		return reply_error(s, req->h.seq, -ENOENT,
				   "FORK: client %" PRIu32
				   " is not a fresh connection of this process",
				   req->body.fork.child_id);
	}
	client_use(s->c, &mine);
	uid_use(s->d, s->uid, &all);
	ret = uzd_quota_fork(&s->d->cfg, s->uid, &mine, &all, msg, sizeof(msg));
	if (ret < 0) {
		close(req->fd);
		s->d->counters.quota_refused++;
		return reply_refused(s, req->h.seq, ret, "FORK: %s", msg);
	}
	ret = uzd_fork_snapshot(s->c, child->c, req->fd, &res);
	close(req->fd);
	req->fd = -1;
	if (ret < 0)
		return reply_error(s, req->h.seq, ret, "FORK: snapshot for client %" PRIu32 ": %s",
				   child->c->id, strerror(-ret));
	slog(s->d, UZD_LOG_DEBUG,
	     "client %" PRIu32 ": fork snapshot for client %" PRIu32 ": %" PRIu64
	     " regions, %" PRIu64 " pages copied, %" PRIu64 " shared",
	     s->c->id, child->c->id, res.regions, res.copied_pages, res.shared_pages);
	ok.regions = res.regions;
	ok.copied_pages = res.copied_pages;
	ok.shared_pages = res.shared_pages;
	reply_ok(s, req->h.seq, &ok, sizeof(ok), -1);
}

static void on_fork_done(struct uzd_session *s, const struct uzd_request *req)
{
	if (s->state != S_READY)
		return reply_error(s, req->h.seq, -EPROTO, "FORK_DONE before SET_UFFD");
	uzd_fork_done(s->c);
	reply_ok(s, req->h.seq, NULL, 0, -1);
}

/* Field @key ("PPid:", "Uid:") of /proc/@pid/status; -1 when unreadable. */
static long proc_status_field(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0) {
			v = strtol(line + klen, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/*
 * The child's SET_UFFD: it names its own pid (SO_PEERCRED gave its parent's,
 * whose connection it inherited).  The pid is believed only if it is a
 * child of that parent, of the same user: the daemon samples the accesses
 * of the process it names (daemon/sample.h), and must not be pointed at
 * anyone else's.  A pid that does not check out keeps the parent's for
 * statistics and leaves the client unsampled.
 */
static void on_fork_attach(struct uzd_session *s, struct uzd_request *req)
{
	pid_t pid = (pid_t)req->body.attach.pid;
	int ret;

	if (s->state == S_UFFD && pid > 0) {
		uzd_sampler_close(&s->c->sampler);
		if (proc_status_field(pid, "PPid:") == (long)s->pid &&
		    proc_status_field(pid, "Uid:") == (long)s->uid) {
			s->c->pid = pid;
			ret = uzd_sampler_open(&s->c->sampler, -1, pid);
			if (ret < 0)
				slog(s->d, UZD_LOG_INFO,
				     "client %" PRIu32 " (pid %d): no access sampling: %s",
				     s->c->id, (int)pid, strerror(-ret));
		} else {
			slog(s->d, UZD_LOG_WARN,
			     "client %" PRIu32 ": FORK_ATTACH names pid %d, not a child of pid %d "
			     "of uid %u: kept pid %d, no access sampling",
			     s->c->id, (int)pid, (int)s->pid, (unsigned int)s->uid, (int)s->pid);
		}
	}
	on_set_uffd(s, req);
}

static uint64_t stat_load(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void fill_client_stats(struct uzd_client *c, struct uzp_client_stats *st)
{
	const struct uzd_client_stats *cs = &c->stats;
	struct uzd_region_counts rc;

	uzd_region_table_counts(&c->regions, &rc);
	memset(st, 0, sizeof(*st));
	st->resident_pages = rc.resident;
	st->same_pages = rc.same;
	st->pool_pages = rc.pool;
	st->file_pages = rc.file;
	uzd_region_read_lock(&c->regions);
	for (size_t i = 0; i < c->regions.n; i++)
		st->managed_pages += c->regions.regions[i]->npages;
	uzd_region_read_unlock(&c->regions);
	st->pool_bytes = stat_load(&cs->pool_bytes);
	st->faults_zero = stat_load(&cs->faults_zero);
	st->faults = st->faults_zero + stat_load(&cs->faults_same) + stat_load(&cs->faults_pool) +
		     stat_load(&cs->faults_file);
	st->evictions = stat_load(&cs->evicted_same) + stat_load(&cs->evicted_pool);
	st->rejections = stat_load(&cs->rejected_pool_full) + stat_load(&cs->rejected_busy) +
			 stat_load(&cs->rejected_error);
	st->fault_p50_ns = uzd_hist_quantile(&cs->fault_ns, 0.5);
	st->fault_p99_ns = uzd_hist_quantile(&cs->fault_ns, 0.99);
	st->evict_ns = stat_load(&cs->evict_ns);
}

static void on_stats(struct uzd_session *s, const struct uzd_request *req)
{
	struct uzp_client_stats st;

	if (s->state == S_HELLO)
		return reply_error(s, req->h.seq, -EPROTO, "STATS before HELLO");
	fill_client_stats(s->c, &st);
	reply_ok(s, req->h.seq, &st, sizeof(st), -1);
}

static void on_status(struct uzd_session *s, struct uzd_request *req)
{
	struct uzp_status_ok ok = { 0 };
	int ret;

	if (!uzd_peer_allowed(&s->d->cfg, s->sock, s->uid, s->gid)) {
		close(req->fd);
		return reply_error(s, req->h.seq, -EACCES, UZD_PEER_REFUSED, (unsigned int)s->uid);
	}
	ret = uzd_status_write_as(s->d, s->uid,
				  uzd_admin_peer_is_admin(s->d, s->sock, s->uid, s->gid), req->fd,
				  &ok.bytes);
	close(req->fd);
	req->fd = -1;
	if (ret < 0)
		return reply_error(s, req->h.seq, ret, "STATUS: writing the memfd: %s",
				   strerror(-ret));
	reply_ok(s, req->h.seq, &ok, sizeof(ok), -1);
}

/* uzswapctl's CLASSES and ADMIN, in any state (daemon/admin.h). */
static void on_admin(struct uzd_session *s, struct uzd_request *req)
{
	struct uzd_admin_peer peer = {
		.sock = s->sock, .seq = req->h.seq, .pid = s->pid, .uid = s->uid, .gid = s->gid
	};
	char msg[UZP_MESSAGE_MAX];
	int ret = uzd_admin_request(s->d, &peer, req, msg, sizeof(msg));

	if (req->fd >= 0)
		close(req->fd);
	req->fd = -1;
	if (ret < 0)
		reply_error(s, req->h.seq, ret, "%s", msg);
}

/*
 * Events the client's own threads raised before this request may be read
 * and not yet handled (client.h, events_busy): wait for the fault thread,
 * which handles them at once, so the request sees the client's memory as
 * the client does.  Bounded: a stuck fault thread must not stop the loop.
 */
static void wait_events_handled(struct uzd_client *c)
{
	struct timespec pause = { 0, 20000 };

	for (int i = 0; i < 50000 && __atomic_load_n(&c->events_busy, __ATOMIC_ACQUIRE); i++)
		nanosleep(&pause, NULL);
}

static void dispatch(struct uzd_session *s, struct uzd_request *req)
{
	if (s->c && s->state == S_READY)
		wait_events_handled(s->c);
	switch (req->h.type) {
	case UZP_HELLO:
		return on_hello(s, req);
	case UZP_SET_UFFD:
		return on_set_uffd(s, req);
	case UZP_REGISTER:
		return on_register(s, req);
	case UZP_UNREGISTER:
		return on_unregister(s, req);
	case UZP_STATS:
		return on_stats(s, req);
	case UZP_STATUS:
		return on_status(s, req);
	case UZP_FORK:
		return on_fork(s, req);
	case UZP_FORK_DONE:
		return on_fork_done(s, req);
	case UZP_FORK_ATTACH:
		return on_fork_attach(s, req);
	case UZP_CLASSES:
	case UZP_ADMIN:
		return on_admin(s, req);
	default:
		/* proto.c lets through requests only. */
		if (req->fd >= 0)
			close(req->fd);
		return reply_error(s, req->h.seq, -EBADMSG, "unexpected message type %u",
				   req->h.type);
	}
}

static void on_session_event(uv_poll_t *h, int status, int events)
{
	struct uzd_session *s = h->data;
	char why[UZD_PROTO_WHY_MAX];
	struct uzd_request req;
	int ret;

	if (status < 0)
		return session_close(s, "connection error");
	(void)events;
	for (int i = 0; i < SESSION_BATCH && !s->closing; i++) {
		ret = uzd_proto_recv(s->sock, &req, why, sizeof(why));
		if (ret == -EAGAIN)
			return;
		if (ret == 1)
			return session_close(s, "disconnected");
		s->spoke = true;
		if (ret == -EBADMSG || ret == -EPROTO) {
			reply_error(s, req.h.seq, ret, "%s", why);
			continue;
		}
		if (ret < 0)
			return session_close(s, "connection failed");
		dispatch(s, &req);
	}
}

/* ---- accepting ---- */

/* Tell a connection why it is refused, close it, and log that (one line a second). */
static void refuse_connection(struct uzd_daemon *d, int fd, const struct ucred *cred, int err,
			      const char *msg)
{
	uint64_t now = uzd_now_ns();

	d->counters.clients_refused++;
	uzd_proto_shutdown(fd, err, "%s", msg);
	close(fd);
	if (now - d->refused_logged_ns >= 1000000000u) {
		d->refused_logged_ns = now;
		slog(d, UZD_LOG_WARN, "connection of pid %d (uid %u) refused: %s", (int)cred->pid,
		     (unsigned int)cred->uid, msg);
	}
}

/*
 * Refused at the door, before it holds a slot: a peer the allow-lists do
 * not admit, a uid at uid_max_connections (or one user's flood would shut
 * everyone out), and anyone but root once the table is full (root keeps a
 * few slots, so that uzswapctl can always reach the daemon).
 */
static bool refused_at_accept(struct uzd_daemon *d, int fd, const struct ucred *cred)
{
	struct uzd_quota_use use;
	char msg[UZP_MESSAGE_MAX];
	size_t limit = SESSION_LIMIT(d) + (cred->uid == 0 ? SESSION_ROOT_RESERVE : 0);

	if (!uzd_peer_allowed(&d->cfg, fd, cred->uid, cred->gid)) {
		snprintf(msg, sizeof(msg), UZD_PEER_REFUSED, (unsigned int)cred->uid);
		refuse_connection(d, fd, cred, -EACCES, msg);
		return true;
	}
	if (d->n_sessions >= limit) {
		snprintf(msg, sizeof(msg), "the daemon has %zu connections, its most",
			 d->n_sessions);
		refuse_connection(d, fd, cred, -EUSERS, msg);
		return true;
	}
	uid_use(d, cred->uid, &use);
	if (uzd_quota_connect(&d->cfg, cred->uid, &use, msg, sizeof(msg)) == 0)
		return false;
	d->counters.quota_refused++;
	refuse_connection(d, fd, cred, -EDQUOT, msg);
	return true;
}

static void session_new(struct server *sv, int fd)
{
	struct uzd_daemon *d = &sv->d;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct uzd_session *s;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		slog(d, UZD_LOG_WARN, "accept: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (refused_at_accept(d, fd, &cred))
		return;
	s = calloc(1, sizeof(*s));
	if (!s || uv_poll_init(&sv->loop, &s->poll, fd) < 0) {
		slog(d, UZD_LOG_ERROR, "accept: out of memory: connection of pid %d dropped",
		     (int)cred.pid);
		free(s);
		close(fd);
		return;
	}
	s->d = d;
	s->sock = fd;
	s->pid = cred.pid;
	s->uid = cred.uid;
	s->gid = cred.gid;
	s->accepted_ns = uzd_now_ns();
	s->poll.data = s;
	s->next = d->sessions;
	if (d->sessions)
		d->sessions->prev = s;
	d->sessions = s;
	d->n_sessions++;
	uv_poll_start(&s->poll, UV_READABLE | UV_DISCONNECT, on_session_event);
}

static void on_listen(uv_poll_t *h, int status, int events);

static void close_silent(uv_timer_t *t)
{
	struct server *sv = t->data;
	uint64_t now = uzd_now_ns();

	for (struct uzd_session *s = sv->d.sessions; s; s = s->next) {
		if (s->spoke || s->closing ||
		    now - s->accepted_ns < (uint64_t)SESSION_SILENT_MS * 1000000u)
			continue;
		uzd_proto_shutdown(s->sock, -ETIMEDOUT, "said nothing for %d s: connection closed",
				   SESSION_SILENT_MS / 1000);
		session_close(s, "silent");
	}
}

static void resume_accepting(uv_timer_t *t)
{
	struct server *sv = t->data;

	if (!sv->stopping)
		uv_poll_start(&sv->listen_poll, UV_READABLE, on_listen);
}

/*
 * Out of descriptors (or memory): the listening socket stays readable, and
 * a level-triggered poll would spin on it.  Stop listening for a while,
 * say so once, and try again.
 */
static void pause_accepting(struct server *sv, int err)
{
	slog(&sv->d, UZD_LOG_WARN, "accept: %s: not accepting connections for %d ms", strerror(err),
	     ACCEPT_PAUSE_MS);
	uv_poll_stop(&sv->listen_poll);
	uv_timer_start(&sv->accept_timer, resume_accepting, ACCEPT_PAUSE_MS, 0);
}

static void on_listen(uv_poll_t *h, int status, int events)
{
	struct server *sv = h->data;
	int fd;

	(void)events;
	if (status < 0)
		return;
	/* A batch at a time: a flood of connections must not keep the loop from the rest. */
	for (int i = 0; i < SESSION_BATCH; i++) {
		fd = accept4(sv->d.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_accepting(sv, errno);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				slog(&sv->d, UZD_LOG_WARN, "accept: %s", strerror(errno));
			return;
		}
		/* Connections that never say HELLO count too (refused_at_accept). */
		session_new(sv, fd);
	}
}

/* ---- the listening socket ---- */

/* A socket file left by a daemon that died is removed; a live daemon's is an error. */
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (ret == 0)
		return -EADDRINUSE;
	return unlink(path) < 0 ? -errno : 0;
}

static int make_parent(const char *path)
{
	char dir[UZD_SOCKET_PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int listen_socket(struct uzd_daemon *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = d->cfg.socket;
	int fd, ret;

	fd = uzd_sd_listen_fd();
	if (fd >= 0) {
		d->listen_fd = fd;
		slog(d, UZD_LOG_INFO, "listening on the socket systemd passed");
		return 0;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ret = make_parent(path);
	if (ret == 0)
		ret = clear_stale(path, &sa);
	if (ret < 0) {
		slog(d, UZD_LOG_ERROR, "socket %s: %s", path,
		     ret == -EADDRINUSE ? "another uzswapd is listening there" : strerror(-ret));
		return ret;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(path, d->cfg.socket_mode) < 0 || listen(fd, 128) < 0) {
		ret = -errno;
		slog(d, UZD_LOG_ERROR, "socket %s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	d->listen_fd = fd;
	d->listen_owned = true;
	slog(d, UZD_LOG_INFO, "listening on %s", path);
	return 0;
}

/* ---- start and stop ---- */

static void stop_serving(struct server *sv, const char *why)
{
	struct uzd_daemon *d = &sv->d;

	if (sv->stopping)
		return;
	sv->stopping = true;
	slog(d, UZD_LOG_INFO, "%s: stopping", why);
	uv_poll_stop(&sv->listen_poll);
	uv_close((uv_handle_t *)&sv->listen_poll, NULL);
	uv_close((uv_handle_t *)&sv->accept_timer, NULL);
	uv_close((uv_handle_t *)&sv->sd_timer, NULL);
	uv_close((uv_handle_t *)&sv->silent_timer, NULL);
	uzd_sd_notify("STOPPING=1");
	uv_close((uv_handle_t *)&sv->sigterm, NULL);
	uv_close((uv_handle_t *)&sv->sigint, NULL);
	uzd_admin_stop(d);
	for (struct uzd_session *s = d->sessions; s; s = s->next) {
		if (s->c)
			uzd_proto_shutdown(s->sock, 0, "uzswapd is stopping (%s)", why);
		session_close(s, "daemon stopping");
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	stop_serving(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---- the service manager (daemon/sdnotify.h) ---- */

/* STATUS= refreshed this often (ms), or at half the watchdog interval if shorter. */
#define SD_STATUS_MS 5000

/* One line for `systemctl status`: clients, memory, pool. */
static void sd_status_line(struct uzd_daemon *d, char *buf, size_t len)
{
	struct uzd_region_counts sum = { 0 }, one;
	size_t n;

	pthread_mutex_lock(&d->clients_lock);
	n = d->n_clients;
	for (size_t i = 0; i < n; i++) {
		uzd_region_table_counts(&d->clients[i]->regions, &one);
		sum.resident += one.resident;
		sum.same += one.same;
		sum.pool += one.pool;
		sum.file += one.file;
	}
	pthread_mutex_unlock(&d->clients_lock);
	snprintf(buf, len,
		 "STATUS=%zu client(s); %" PRIu64 " MiB resident, %" PRIu64
		 " MiB evicted; pool %zu MiB (%s)",
		 n, sum.resident >> 8, (sum.same + sum.pool + sum.file) >> 8,
		 zpool_total_size(d->pool) >> 20, d->cfg.allocator);
}

static void on_sd_timer(uv_timer_t *t)
{
	struct server *sv = t->data;
	char line[256];
	size_t n;

	sd_status_line(&sv->d, line, sizeof(line));
	n = strlen(line);
	if (uzd_sd_watchdog_usec() && n + 12 < sizeof(line))
		memcpy(line + n, "\nWATCHDOG=1", 12);
	uzd_sd_notify(line);
}

/*
 * READY=1 once the socket listens and the threads run; then STATUS and the
 * watchdog from the loop itself, so a loop that hangs stops the keep-alives
 * and systemd restarts the daemon.
 */
static void sd_start(struct server *sv)
{
	uint64_t period = SD_STATUS_MS, wd_usec = uzd_sd_watchdog_usec();
	char line[256] = "READY=1\n";

	if (wd_usec && wd_usec / 2000 < period)
		period = wd_usec / 2000 ? wd_usec / 2000 : 1;
	sd_status_line(&sv->d, line + 8, sizeof(line) - 8);
	uzd_sd_notify(line);
	uv_timer_start(&sv->sd_timer, on_sd_timer, period, period);
}

static int start_loop(struct server *sv)
{
	int ret = uv_loop_init(&sv->loop);

	if (ret < 0)
		return ret;
	sv->d.loop = &sv->loop;
	uv_poll_init(&sv->loop, &sv->listen_poll, sv->d.listen_fd);
	sv->listen_poll.data = sv;
	uv_poll_start(&sv->listen_poll, UV_READABLE, on_listen);
	uv_timer_init(&sv->loop, &sv->accept_timer);
	sv->accept_timer.data = sv;
	uv_timer_init(&sv->loop, &sv->sd_timer);
	sv->sd_timer.data = sv;
	uv_timer_init(&sv->loop, &sv->silent_timer);
	sv->silent_timer.data = sv;
	uv_timer_start(&sv->silent_timer, close_silent, 1000, 1000);
	uv_signal_init(&sv->loop, &sv->sigterm);
	uv_signal_init(&sv->loop, &sv->sigint);
	sv->sigterm.data = sv->sigint.data = sv;
	uv_signal_start(&sv->sigterm, on_signal, SIGTERM);
	uv_signal_start(&sv->sigint, on_signal, SIGINT);
	return 0;
}

/* The backing file first: the pool's evict callback is writeback's. */
static int open_pool(struct uzd_daemon *d)
{
	/* No limit of its own: eviction keeps the pool within max_size, which a reload may move. */
	struct zpool_config pc = { .max_pages = 0 };
	char why[512];
	int ret;

	if (d->cfg.writeback) {
		ret = uzd_wb_create(&d->cfg, client_by_id, d, &d->wb, why, sizeof(why));
		if (ret < 0) {
			slog(d, UZD_LOG_ERROR, "backing file: %s", why);
			return ret;
		}
		uzd_wb_pool_config(d->wb, &pc);
	}
	ret = zpool_create(d->cfg.allocator, &pc, &d->pool);
	if (ret < 0)
		slog(d, UZD_LOG_ERROR, "pool (%s): %s", d->cfg.allocator, strerror(-ret));
	return ret;
}

static void open_dev_uffd(struct uzd_daemon *d)
{
	d->dev_uffd = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (d->dev_uffd < 0)
		slog(d, UZD_LOG_WARN,
		     "/dev/userfaultfd: %s: only clients allowed to call userfaultfd(2) can connect",
		     strerror(errno));
}

static int start_threads(struct uzd_daemon *d)
{
	int ret = uzd_reclaim_start(&d->cfg, d->pool, clients_snapshot, d, &d->rc);

	if (ret < 0) {
		slog(d, UZD_LOG_ERROR, "reclaim thread: %s", strerror(-ret));
		return ret;
	}
	ret = uzd_fthreads_start(d->cfg.fault_threads, &d->cfg.codec, d->cfg.page_cluster,
				 before_drain, after_drain, d, &d->ft);
	if (ret < 0) {
		slog(d, UZD_LOG_ERROR, "fault threads: %s", strerror(-ret));
		return ret;
	}
	uzd_fthreads_set_busy_poll(d->ft, d->cfg.busy_poll_us);
	if (d->wb)
		uzd_wb_set_owners(d->wb, client_ids, d, d->shared);
	ret = d->wb ? uzd_wb_start(d->wb, d->pool) : 0;
	if (ret < 0)
		slog(d, UZD_LOG_ERROR, "writeback thread: %s", strerror(-ret));
	return ret;
}

static void teardown(struct server *sv)
{
	struct uzd_daemon *d = &sv->d;

	/* Fault threads first: they kick reclaim.  Each drops its client references. */
	uzd_fthreads_stop(d->ft);
	uzd_reclaim_stop(d->rc);
	uzd_wb_stop(d->wb);
	/* After the threads: each answered its admin requests as it stopped. */
	uzd_admin_free(d);
	if (d->pool)
		zpool_destroy(d->pool);
	/* Every client is gone by now, and with them every record of the file. */
	uzd_wb_free(d->wb);
	/* Last: every client's release went through it. */
	uzd_shared_free(d->shared);
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	if (d->listen_owned)
		unlink(d->cfg.socket);
	if (d->dev_uffd >= 0)
		close(d->dev_uffd);
	free(d->clients);
	pthread_mutex_destroy(&d->clients_lock);
}

int uzd_server_run(const struct uzd_config *cfg)
{
	return uzd_server_run_file(cfg, NULL, false);
}

/*
 * The path a reload reads: absolute, since the working directory is not
 * ours to rely on; symbolic links are not resolved, so that a reload reads
 * what the name points to then.
 */
static void config_path_keep(struct uzd_daemon *d, const char *path)
{
	char cwd[sizeof(d->config_path)];

	if (path[0] != '/' && getcwd(cwd, sizeof(cwd)))
		snprintf(d->config_path, sizeof(d->config_path), "%.2000s/%.2000s", cwd, path);
	else
		snprintf(d->config_path, sizeof(d->config_path), "%s", path);
}

int uzd_server_run_file(const struct uzd_config *cfg, const char *config_path,
			bool socket_overridden)
{
	struct server *sv = calloc(1, sizeof(*sv));
	struct uzd_daemon *d;
	int status = 1;

	if (!sv) {
		fprintf(stderr, "uzswapd: out of memory\n");
		return 1;
	}
	d = &sv->d;
	d->cfg = *cfg;
	d->live_high_watermark = cfg->high_watermark;
	d->live_throttle_above = cfg->throttle_above;
	d->socket_overridden = socket_overridden;
	if (config_path)
		config_path_keep(d, config_path);
	d->listen_fd = d->dev_uffd = -1;
	d->start_ns = uzd_now_ns();
	pthread_mutex_init(&d->clients_lock, NULL);
	d->clients = calloc(cfg->max_clients, sizeof(*d->clients));
	/* Replies use MSG_NOSIGNAL; this covers every other write to a closed peer. */
	signal(SIGPIPE, SIG_IGN);
	if (!d->clients) {
		slog(d, UZD_LOG_ERROR, "out of memory for %u clients", cfg->max_clients);
		goto out;
	}
	if (uzd_shared_new(&d->shared) < 0) {
		slog(d, UZD_LOG_ERROR, "out of memory for the shared-page table");
		goto out;
	}
	if (open_pool(d) < 0 || listen_socket(d) < 0)
		goto out;
	open_dev_uffd(d);
	if (start_threads(d) < 0 || start_loop(sv) < 0 || uzd_admin_start(d) < 0)
		goto out;
	slog(d, UZD_LOG_INFO,
	     "ready: pool %s (max %" PRIu64 " MiB), codec %s level %d, %u fault thread(s), "
	     "client budget %" PRIu64 " MiB, policy %s",
	     cfg->allocator, cfg->pool_max_size >> 20, uzc_codec_name(cfg->codec.id),
	     cfg->codec.level, cfg->fault_threads, cfg->client_max_resident >> 20,
	     cfg->policy == UZD_POLICY_FIFO ? "fifo" : "workingset");
	if (cfg->writeback)
		slog(d, UZD_LOG_INFO,
		     "writeback: backing file %s (max %" PRIu64
		     " MiB), the pool accepts again below "
		     "%u%%",
		     cfg->backing_path, cfg->backing_max_size >> 20, cfg->accept_threshold);
	else
		slog(d, UZD_LOG_INFO, "writeback: off");
	sd_start(sv);
	uv_run(&sv->loop, UV_RUN_DEFAULT);
	uv_loop_close(&sv->loop);
	status = 0;
out:
	teardown(sv);
	free(sv);
	return status;
}
