/* SPDX-License-Identifier: MIT */
/*
 * daemon/admin.c - CLASSES and ADMIN requests, and SIGHUP (see admin.h).
 *
 * struct uzd_admin:
 *   async      wakes the loop when a thread has answered an op
 *   sighup     the reload signal
 *   lock       guards done, inflight and closed (a leaf: nothing is taken
 *              under it but libuv's async send, which takes nothing)
 *   done       ops a thread has finished, for the loop to answer
 *   inflight   ops handed to a thread and not yet freed, at most
 *              ADMIN_MAX_INFLIGHT, so that no client can queue unbounded
 *              work (or hold unbounded descriptors)
 *   closed     the loop is going: a thread that finishes an op answers it
 *              itself (the socket is the op's own dup, so this is safe
 *              from any thread)
 *
 * struct admin_op is one compaction, reclaim or writeback in flight: a dup
 * of the requester's socket (the reply reaches it even if the session is
 * torn down first; a send to a peer that left just fails), the request's
 * seq, and the reclaim or writeback request the thread fills.  The thread
 * owns it from submission to its done callback; then the loop (or, once
 * closed, that thread) replies and frees it.
 *
 * Permission: CLASSES is a read, for anyone allow_uids lets connect, as
 * STATUS is; ADMIN needs uid 0 or admin_group among the peer's groups at
 * connect time (SO_PEERCRED's gid, SO_PEERGROUPS).  Never: trust a pid or
 * uid a message carries, block the loop on a thread, or reply twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/admin.h"
#include "daemon/io.h"
#include "daemon/log.h"
#include "daemon/peer.h"
#include "daemon/reclaim.h"
#include "daemon/reload.h"
#include "daemon/sdnotify.h"
#include "daemon/server.h"
#include "daemon/writeback.h"

#define ADMIN_MAX_INFLIGHT 16
/* zsmalloc has 255 classes at most (32..4096 bytes in 16-byte steps). */
#define ADMIN_MAX_CLASSES 512

struct admin_op {
	struct uzd_admin *a;
	int sock;
	uint32_t seq;
	uint32_t op;
	pid_t pid;	/* RECLAIM: the target process */
	uint64_t asked; /* bytes */
	pid_t by_pid;	/* who asked, for the log */
	uid_t by_uid;
	struct uzd_reclaim_req rreq;
	struct uzd_wb_req wreq;
	struct admin_op *next;
};

struct uzd_admin {
	struct uzd_daemon *d;
	uv_async_t async;
	uv_signal_t sighup;
	pthread_mutex_t lock;
	struct admin_op *done;
	unsigned int inflight;
	bool closed;
};

static const char *const op_names[UZP_ADMIN_OPS] = {
	[UZP_ADMIN_SET_BUDGET] = "set",	 [UZP_ADMIN_COMPACT] = "compact",
	[UZP_ADMIN_RECLAIM] = "reclaim", [UZP_ADMIN_WRITEBACK] = "writeback",
	[UZP_ADMIN_RELOAD] = "reload",
};

static int refuse(char *msg, size_t len, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(char *msg, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return err;
}

/* "512 KiB", "12.0 MiB", "1.0 TiB": a size for messages a person reads. */
static const char *human_size(char *buf, size_t len, uint64_t bytes)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes / 1024;
	int u = 0;

	while (v >= 1024 && u < 5)
		v /= 1024, u++;
	snprintf(buf, len, "%.1f %ciB", v, units[u]);
	return buf;
}

/* ---- who may ---- */

bool uzd_admin_peer_is_admin(const struct uzd_daemon *d, int sock, uid_t uid, gid_t gid)
{
	if (uid == 0)
		return true;
	return d->cfg.admin_group_set && uzd_peer_in_group(sock, gid, d->cfg.admin_gid);
}

/* ---- CLASSES ---- */

static void class_from(struct uzp_class *out, const struct zpool_class_stat *cs)
{
	*out = (struct uzp_class){
		.index = cs->index,
		.size = cs->size,
		.pages_per_zspage = cs->pages_per_zspage,
		.objs_allocated = cs->objs_allocated,
		.objs_used = cs->objs_used,
		.pages_used = cs->pages_used,
		.pages_freeable = cs->pages_freeable,
	};
}

/* The classes into @fd from offset 0; *bytes its length.  0 or -errno. */
static int classes_write(struct uzd_daemon *d, int fd, uint64_t *bytes)
{
	struct zpool_class_stat *cs = calloc(ADMIN_MAX_CLASSES, sizeof(*cs));
	struct uzp_classes *hdr;
	struct uzp_class *out;
	size_t n, len;
	int ret;

	if (!cs)
		return -ENOMEM;
	n = zpool_class_stats(d->pool, cs, ADMIN_MAX_CLASSES);
	n = n < ADMIN_MAX_CLASSES ? n : ADMIN_MAX_CLASSES;
	len = sizeof(*hdr) + n * sizeof(*out);
	hdr = calloc(1, len);
	if (!hdr) {
		free(cs);
		return -ENOMEM;
	}
	hdr->magic = UZP_MAGIC;
	hdr->version = UZP_VERSION;
	hdr->n_classes = (uint32_t)n;
	hdr->kind = zpool_class_kind(d->pool) == ZPOOL_CLASSES_SIZE ? UZP_CLASSES_SIZE :
								      UZP_CLASSES_FILL;
	snprintf(hdr->allocator, sizeof(hdr->allocator), "%s", zpool_name(d->pool));
	out = (struct uzp_class *)(hdr + 1);
	for (size_t i = 0; i < n; i++)
		class_from(&out[i], &cs[i]);
	ret = uzd_pwrite_all(fd, hdr, len, 0);
	if (ret == 0 && ftruncate(fd, (off_t)len) < 0)
		ret = -errno;
	*bytes = len;
	free(hdr);
	free(cs);
	return ret;
}

static int on_classes(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
		      struct uzd_request *req, char *msg, size_t len)
{
	struct uzp_status_ok ok = { 0 };
	int ret;

	if (!uzd_peer_allowed(&d->cfg, peer->sock, peer->uid, peer->gid))
		ret = refuse(msg, len, -EACCES, UZD_PEER_REFUSED, (unsigned int)peer->uid);
	else if ((ret = classes_write(d, req->fd, &ok.bytes)) < 0)
		refuse(msg, len, ret, "CLASSES: writing the memfd: %s", strerror(-ret));
	close(req->fd);
	req->fd = -1;
	if (ret < 0)
		return ret;
	uzd_proto_reply(peer->sock, peer->seq, 0, &ok, sizeof(ok), -1, NULL);
	return 0;
}

/* ---- ops in flight ---- */

static void op_free(struct admin_op *op)
{
	struct uzd_admin *a = op->a;

	close(op->sock);
	free(op->rreq.clients);
	pthread_mutex_lock(&a->lock);
	a->inflight--;
	pthread_mutex_unlock(&a->lock);
	free(op);
}

static void reply_ok(const struct admin_op *op, const struct uzp_admin_ok *ok, const char *note)
{
	uzd_proto_reply(op->sock, op->seq, 0, ok, sizeof(*ok), -1, note && *note ? "%s" : NULL,
			note);
}

static void reply_err(const struct admin_op *op, int err, const char *msg)
{
	uzd_proto_reply(op->sock, op->seq, err, NULL, 0, -1, "%s", msg);
}

/* The reply to a compaction or reclaim, from what the reclaim thread did. */
static void answer_reclaim(struct admin_op *op, char *msg, size_t len)
{
	struct uzd_reclaim_req *r = &op->rreq;
	/* arg: the client count, kept there because the thread drops the references. */
	struct uzp_admin_ok ok = { .clients = (uint32_t)(uintptr_t)r->arg, .pages = r->done_pages };
	char a[32], b[32];

	if (op->op == UZP_ADMIN_COMPACT) {
		snprintf(msg, len, "compact: %" PRIu64 " pool pages freed", r->done_pages);
		if (r->status == -ESHUTDOWN)
			return reply_err(op, -ESHUTDOWN, "compact: uzswapd is stopping");
		return reply_ok(op, &ok, NULL);
	}
	snprintf(msg, len, "reclaim pid %d %s: %" PRIu64 " pages evicted", (int)op->pid,
		 human_size(a, sizeof(a), op->asked), r->done_pages);
	if (r->status == -ESHUTDOWN && !r->done_pages)
		return reply_err(op, -ESHUTDOWN, "reclaim: uzswapd is stopping");
	if (r->status == -ENOSPC && !r->done_pages)
		return reply_err(op, -ENOSPC,
				 "reclaim: the pool is full: no page could be evicted (see "
				 "[pool] max_size and uzswapctl writeback)");
	if (r->status == -ENOSPC)
		snprintf(b, sizeof(b), "the pool is full");
	else if (r->status == -ESHUTDOWN)
		snprintf(b, sizeof(b), "uzswapd is stopping");
	else
		b[0] = '\0';
	reply_ok(op, &ok, b[0] ? b : NULL);
}

/* Why a writeback that freed something stopped short, if it did. */
static const char *wb_partial_note(int status)
{
	switch (status) {
	case 0:
		return NULL;
	case -EIO:
		return "writes to the backing file failed: the rest stays in the pool";
	case -ESHUTDOWN:
		return "uzswapd is stopping";
	default:
		return "the backing file is full";
	}
}

static void answer_writeback(struct admin_op *op, char *msg, size_t len)
{
	struct uzd_wb_req *w = &op->wreq;
	struct uzp_admin_ok ok = { .pages = w->freed_pages,
				   .objects = w->written_objects,
				   .bytes = w->written_bytes };
	char a[32];

	snprintf(msg, len,
		 "writeback %s: %" PRIu64 " objects (%" PRIu64 " bytes) written, %" PRIu64
		 " put back into the pool after failed writes, %" PRIu64 " pool pages freed",
		 human_size(a, sizeof(a), op->asked), w->written_objects, w->written_bytes,
		 w->put_back, w->freed_pages);
	if (w->freed_pages || !w->status)
		return reply_ok(op, &ok, wb_partial_note(w->status));
	switch (w->status) {
	case -EOPNOTSUPP:
		return reply_err(op, w->status, "writeback: [backing] writeback is off");
	case -ENOSPC:
		return reply_err(op, w->status, "writeback: the backing file is full");
	case -EIO:
		return reply_err(op, w->status,
				 "writeback: writes to the backing file fail (see the daemon's "
				 "log); nothing was lost: the objects stay in the pool");
	case -ESHUTDOWN:
		return reply_err(op, w->status, "writeback: uzswapd is stopping");
	default:
		return reply_err(op, w->status,
				 "writeback: nothing in the pool could be written back now");
	}
}

/* Answer an op the thread finished; @log when on the loop (the log level is the loop's). */
static void op_answer(struct admin_op *op, bool log)
{
	char msg[256];

	msg[0] = '\0';
	if (op->op == UZP_ADMIN_WRITEBACK)
		answer_writeback(op, msg, sizeof(msg));
	else
		answer_reclaim(op, msg, sizeof(msg));
	if (log)
		uzd_log(op->a->d->cfg.log_level, UZD_LOG_INFO, "admin (pid %d uid %u): %s",
			(int)op->by_pid, (unsigned int)op->by_uid, msg);
	op_free(op);
}

/* A thread finished @op: to the loop, or answered here once the loop is gone. */
static void op_finished(struct admin_op *op)
{
	struct uzd_admin *a = op->a;

	pthread_mutex_lock(&a->lock);
	if (!a->closed) {
		op->next = a->done;
		a->done = op;
		uv_async_send(&a->async);
		pthread_mutex_unlock(&a->lock);
		return;
	}
	pthread_mutex_unlock(&a->lock);
	op_answer(op, false);
}

static void reclaim_done(struct uzd_reclaim_req *req)
{
	op_finished((struct admin_op *)((char *)req - offsetof(struct admin_op, rreq)));
}

static void wb_done(struct uzd_wb_req *req)
{
	op_finished((struct admin_op *)((char *)req - offsetof(struct admin_op, wreq)));
}

static struct admin_op *take_done(struct uzd_admin *a)
{
	struct admin_op *list;

	pthread_mutex_lock(&a->lock);
	list = a->done;
	a->done = NULL;
	pthread_mutex_unlock(&a->lock);
	return list;
}

static void on_async(uv_async_t *h)
{
	struct uzd_admin *a = h->data;

	for (struct admin_op *op = take_done(a), *next; op; op = next) {
		next = op->next;
		op_answer(op, true);
	}
}

/* A new op for @peer, counted in flight; NULL with @msg filled when none may be. */
static struct admin_op *op_new(struct uzd_admin *a, const struct uzd_admin_peer *peer,
			       const struct uzp_admin *req, char *msg, size_t len, int *err)
{
	struct admin_op *op;

	pthread_mutex_lock(&a->lock);
	if (a->closed || a->inflight >= ADMIN_MAX_INFLIGHT) {
		*err = a->closed ? -ESHUTDOWN : -EBUSY;
		pthread_mutex_unlock(&a->lock);
		refuse(msg, len, *err, "%s: %s", op_names[req->op],
		       *err == -EBUSY ? "too many admin requests are in progress; try again" :
					"uzswapd is stopping");
		return NULL;
	}
	a->inflight++;
	pthread_mutex_unlock(&a->lock);
	op = calloc(1, sizeof(*op));
	if (op)
		op->sock = fcntl(peer->sock, F_DUPFD_CLOEXEC, 0);
	if (!op || op->sock < 0) {
		*err = op ? -errno : -ENOMEM;
		refuse(msg, len, *err, "%s: %s", op_names[req->op], strerror(-*err));
		free(op);
		pthread_mutex_lock(&a->lock);
		a->inflight--;
		pthread_mutex_unlock(&a->lock);
		return NULL;
	}
	op->a = a;
	op->seq = peer->seq;
	op->op = req->op;
	op->pid = (pid_t)req->pid;
	op->asked = req->size;
	op->by_pid = peer->pid;
	op->by_uid = peer->uid;
	return op;
}

/* ---- the clients of a process ---- */

/* The clients of process @pid, each with a reference, in *@out (malloc'd); how many. */
static size_t clients_of(struct uzd_daemon *d, pid_t pid, struct uzd_client ***out)
{
	struct uzd_client **cs;
	size_t n = 0;

	*out = NULL;
	/* Only the loop adds and removes clients, and this is the loop: two passes agree. */
	pthread_mutex_lock(&d->clients_lock);
	for (size_t i = 0; i < d->n_clients; i++)
		n += d->clients[i]->pid == pid;
	pthread_mutex_unlock(&d->clients_lock);
	if (!n)
		return 0;
	cs = calloc(n, sizeof(*cs));
	if (!cs)
		return 0;
	n = 0;
	pthread_mutex_lock(&d->clients_lock);
	for (size_t i = 0; i < d->n_clients; i++) {
		if (d->clients[i]->pid == pid) {
			cs[n] = d->clients[i];
			uzd_client_get(cs[n++]);
		}
	}
	pthread_mutex_unlock(&d->clients_lock);
	*out = cs;
	return n;
}

static void put_all(struct uzd_client **cs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		uzd_client_put(cs[i]);
	free(cs);
}

/* ---- ADMIN ops ---- */

static int op_set_budget(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
			 const struct uzp_admin *req, char *msg, size_t len)
{
	struct uzp_admin_ok ok = { .bytes = req->size };
	struct uzd_client **cs;
	size_t n;
	char a[32], b[32];

	if (req->size > d->cfg.max_resident)
		return refuse(msg, len, -EINVAL,
			      "set: %s is above [budget] max_resident (%s): one client cannot "
			      "hold more than all of them together",
			      human_size(a, sizeof(a), req->size),
			      human_size(b, sizeof(b), d->cfg.max_resident));
	n = clients_of(d, (pid_t)req->pid, &cs);
	if (!n)
		return refuse(msg, len, -ESRCH, "set: no client with pid %" PRIu32, req->pid);
	for (size_t i = 0; i < n; i++) {
		cs[i]->budget_set = true;
		uzd_client_set_budget(cs[i], req->size / UZD_PAGE_SIZE);
	}
	put_all(cs, n);
	/* Down: reclaim evicts to it now.  Up: nothing to do, the client may grow. */
	uzd_reclaim_kick(d->rc);
	ok.clients = (uint32_t)n;
	uzd_log(d->cfg.log_level, UZD_LOG_INFO,
		"admin (pid %d uid %u): set pid %" PRIu32 " max-resident %s (%zu client(s))",
		(int)peer->pid, (unsigned int)peer->uid, req->pid,
		human_size(a, sizeof(a), req->size), n);
	uzd_proto_reply(peer->sock, peer->seq, 0, &ok, sizeof(ok), -1, NULL);
	return 0;
}

static int op_reload(struct uzd_daemon *d, const struct uzd_admin_peer *peer, char *msg, size_t len)
{
	struct uzd_reload_result res;
	struct uzp_admin_ok ok = { 0 };
	char who[64], note[UZP_MESSAGE_MAX + 1];
	int ret;

	snprintf(who, sizeof(who), "uzswapctl reload, pid %d uid %u", (int)peer->pid,
		 (unsigned int)peer->uid);
	uzd_sd_notify("RELOADING=1");
	ret = uzd_reload(d, who, &res, note, sizeof(note));
	uzd_sd_notify("READY=1");
	if (ret < 0)
		return refuse(msg, len, ret, "%s", note);
	ok.changed = res.changed;
	ok.kept = res.kept;
	uzd_proto_reply(peer->sock, peer->seq, 0, &ok, sizeof(ok), -1, note[0] ? "%s" : NULL, note);
	return 0;
}

/* Compaction and reclaim: to the reclaim thread. */
static int op_to_reclaim(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
			 const struct uzp_admin *req, char *msg, size_t len)
{
	struct admin_op *op;
	int err = 0;

	op = op_new(d->admin, peer, req, msg, len, &err);
	if (!op)
		return err;
	op->rreq.kind = req->op == UZP_ADMIN_COMPACT ? UZD_RECLAIM_COMPACT : UZD_RECLAIM_EVICT;
	op->rreq.pages = req->size / UZD_PAGE_SIZE;
	op->rreq.done = reclaim_done;
	if (req->op == UZP_ADMIN_RECLAIM) {
		op->rreq.n_clients = clients_of(d, (pid_t)req->pid, &op->rreq.clients);
		if (!op->rreq.n_clients) {
			op_free(op);
			return refuse(msg, len, -ESRCH, "reclaim: no client with pid %" PRIu32,
				      req->pid);
		}
	}
	/* The count survives the thread dropping its references. */
	op->rreq.arg = (void *)(uintptr_t)op->rreq.n_clients;
	err = uzd_reclaim_request(d->rc, &op->rreq);
	if (err < 0) {
		put_all(op->rreq.clients, op->rreq.n_clients);
		op->rreq.clients = NULL;
		op_free(op);
		return refuse(msg, len, err, "%s: uzswapd is stopping", op_names[req->op]);
	}
	return 0;
}

static int op_writeback(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
			const struct uzp_admin *req, char *msg, size_t len)
{
	struct admin_op *op;
	int err = 0;

	if (!d->wb)
		return refuse(msg, len, -EOPNOTSUPP,
			      "writeback: uzswapd runs without a backing file ([backing] "
			      "writeback = no at start)");
	if (!uzd_wb_enabled(d->wb))
		return refuse(msg, len, -EOPNOTSUPP,
			      "writeback: [backing] writeback is off (turned off by a reload)");
	op = op_new(d->admin, peer, req, msg, len, &err);
	if (!op)
		return err;
	op->wreq.pages = req->size / UZD_PAGE_SIZE;
	op->wreq.done = wb_done;
	err = uzd_wb_request(d->wb, &op->wreq);
	if (err < 0) {
		op_free(op);
		return refuse(msg, len, err, "writeback: uzswapd is stopping");
	}
	return 0;
}

static int on_admin(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
		    const struct uzp_admin *req, char *msg, size_t len)
{
	const char *name = op_names[req->op];

	if (!uzd_peer_allowed(&d->cfg, peer->sock, peer->uid, peer->gid))
		return refuse(msg, len, -EACCES, UZD_PEER_REFUSED, (unsigned int)peer->uid);
	if (!uzd_admin_peer_is_admin(d, peer->sock, peer->uid, peer->gid)) {
		if (d->cfg.admin_group_set)
			return refuse(msg, len, -EPERM,
				      "%s: permission denied: admin commands are for root and the "
				      "members of group %u ([clients] admin_group)",
				      name, (unsigned int)d->cfg.admin_gid);
		return refuse(msg, len, -EPERM,
			      "%s: permission denied: admin commands are for root (no [clients] "
			      "admin_group is set)",
			      name);
	}
	switch (req->op) {
	case UZP_ADMIN_SET_BUDGET:
		return op_set_budget(d, peer, req, msg, len);
	case UZP_ADMIN_RELOAD:
		return op_reload(d, peer, msg, len);
	case UZP_ADMIN_COMPACT:
	case UZP_ADMIN_RECLAIM:
		return op_to_reclaim(d, peer, req, msg, len);
	case UZP_ADMIN_WRITEBACK:
		return op_writeback(d, peer, req, msg, len);
	default:
		/* proto.c lets through known ops only. */
		return refuse(msg, len, -EINVAL, "ADMIN: unknown op %" PRIu32, req->op);
	}
}

int uzd_admin_request(struct uzd_daemon *d, const struct uzd_admin_peer *peer,
		      struct uzd_request *req, char *msg, size_t len)
{
	if (req->h.type == UZP_CLASSES)
		return on_classes(d, peer, req, msg, len);
	return on_admin(d, peer, &req->body.admin, msg, len);
}

/* ---- SIGHUP, and the life of it all ---- */

static void on_sighup(uv_signal_t *h, int signum)
{
	struct uzd_admin *a = h->data;
	struct uzd_reload_result res;
	char note[UZP_MESSAGE_MAX + 1];

	(void)signum;
	uzd_sd_notify("RELOADING=1");
	/* uzd_reload() logs the outcome, good or bad. */
	uzd_reload(a->d, "SIGHUP", &res, note, sizeof(note));
	uzd_sd_notify("READY=1");
}

int uzd_admin_start(struct uzd_daemon *d)
{
	struct uzd_admin *a = calloc(1, sizeof(*a));
	int ret;

	if (!a)
		return -ENOMEM;
	a->d = d;
	ret = -pthread_mutex_init(&a->lock, NULL);
	if (ret < 0)
		goto err_free;
	ret = uv_async_init(d->loop, &a->async, on_async);
	if (ret < 0)
		goto err_lock;
	a->async.data = a;
	uv_signal_init(d->loop, &a->sighup);
	a->sighup.data = a;
	d->admin = a;
	ret = uv_signal_start(&a->sighup, on_sighup, SIGHUP);
	/* Not fatal: uzswapctl reload still works. */
	if (ret < 0)
		uzd_log(d->cfg.log_level, UZD_LOG_WARN,
			"SIGHUP: %s: reload only through uzswapctl reload", uv_strerror(ret));
	return 0;

err_lock:
	pthread_mutex_destroy(&a->lock);
err_free:
	free(a);
	return ret;
}

void uzd_admin_stop(struct uzd_daemon *d)
{
	struct uzd_admin *a = d->admin;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (a->closed) {
		pthread_mutex_unlock(&a->lock);
		return;
	}
	a->closed = true;
	pthread_mutex_unlock(&a->lock);
	/* Finished but not yet answered: answered now, before the handle goes. */
	on_async(&a->async);
	uv_close((uv_handle_t *)&a->sighup, NULL);
	uv_close((uv_handle_t *)&a->async, NULL);
}

void uzd_admin_free(struct uzd_daemon *d)
{
	struct uzd_admin *a = d->admin;

	if (!a)
		return;
	/* The threads are joined: every op was answered (and freed) by now. */
	pthread_mutex_destroy(&a->lock);
	free(a);
	d->admin = NULL;
}
