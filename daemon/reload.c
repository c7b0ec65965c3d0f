/* SPDX-License-Identifier: MIT */
/*
 * daemon/reload.c - live reload (see reload.h): the new settings, checked
 * whole, then handed to each thread the way that thread can take them.
 *
 * Who reads what, and how a new value reaches it:
 *   loop thread   d->cfg itself: log_level, allow_uids, admin_group,
 *                 client budgets at HELLO, what status shows.  Assigned
 *                 here, on the loop: nothing else reads those fields.
 *   fault threads d->live_high_watermark and d->live_throttle_above (the
 *                 server's drain callbacks): relaxed atomic stores here,
 *                 loads there; page_cluster through the fault threads' own
 *                 setter, which each applies between batches, and
 *                 busy_poll_us through theirs (a relaxed atomic).
 *   reclaim       a whole copy of the settings (uzd_reclaim_set_config),
 *                 applied between two rounds: budgets' arithmetic,
 *                 watermarks, pressure, policy, sampling, nice, the codec
 *                 and level for new evictions (restores decode any codec),
 *                 the pool limit when there is no backing file.
 *   writeback     the pool limit, accept threshold, on/off and nice
 *                 (uzd_wb_set_config), relaxed atomics.
 *   clients       each budget, recomputed from the new default and what the
 *                 client asked for at HELLO, unless an admin set it
 *                 (uzswapctl set): that one stays until the client leaves.
 * Nothing waits for another thread: each takes its new values at its next
 * look, and no reader needs two values to change at the same instant.
 *
 * Lock order: clients_lock only (the budgets), as the loop takes it
 * elsewhere.  This file never applies part of a file that failed to load,
 * and never changes a FIXED setting: those keep their running value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/fthread.h"
#include "daemon/log.h"
#include "daemon/reclaim.h"
#include "daemon/reload.h"
#include "daemon/server.h"
#include "daemon/writeback.h"

/* Names of changed keys, joined, for the log and the reply; cut with "..." when full. */
struct key_list {
	char text[384];
	size_t len;
	bool cut;
	unsigned int n;
};

static void keys_add(struct key_list *l, const char *section, const char *name)
{
	int w;

	l->n++;
	if (l->cut)
		return;
	w = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s[%s] %s", l->len ? ", " : "",
		     section, name);
	if (w < 0 || (size_t)w >= sizeof(l->text) - l->len - 4) {
		/* Room was kept for the mark. */
		l->text[l->len] = '\0';
		snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s...", l->len ? ", " : "");
		l->len = strlen(l->text);
		l->cut = true;
		return;
	}
	l->len += (size_t)w;
}

struct plan {
	struct uzd_daemon *d;
	struct uzd_config *next;
	struct key_list changed, kept;
	int writeback_key;
};

/*
 * uzd_config_diff_fn: a key the file changed.  A FIXED one, and turning
 * writeback on in a daemon that started without the backing file (there
 * is no file, and the pool has no evict callback), keep the running value.
 */
static void plan_key(void *arg, int id, const char *section, const char *name, bool live)
{
	struct plan *p = arg;

	if (id == p->writeback_key && p->next->writeback && !p->d->wb)
		live = false;
	if (live) {
		keys_add(&p->changed, section, name);
		return;
	}
	keys_add(&p->kept, section, name);
	uzd_config_copy_key(p->next, &p->d->cfg, id);
}

uint64_t uzd_reload_budget_pages(const struct uzd_config *cfg, uint64_t asked)
{
	uint64_t b = cfg->client_max_resident;

	if (asked && asked < b)
		b = asked;
	b /= UZD_PAGE_SIZE;
	return b ? b : 1;
}

/* Every client's budget under the new default, unless an admin set it. */
static void apply_budgets(struct uzd_daemon *d, const struct uzd_config *next)
{
	pthread_mutex_lock(&d->clients_lock);
	for (size_t i = 0; i < d->n_clients; i++) {
		struct uzd_client *c = d->clients[i];

		if (!c->budget_set)
			uzd_client_set_budget(c, uzd_reload_budget_pages(next, c->asked_bytes));
	}
	pthread_mutex_unlock(&d->clients_lock);
}

/* Hand @next to every thread (see the top of this file); loop thread. */
static void apply(struct uzd_daemon *d, const struct uzd_config *next)
{
	bool cluster = next->page_cluster != d->cfg.page_cluster;

	d->cfg = *next;
	__atomic_store_n(&d->live_high_watermark, next->high_watermark, __ATOMIC_RELAXED);
	__atomic_store_n(&d->live_throttle_above, next->throttle_above, __ATOMIC_RELAXED);
	if (cluster && d->ft)
		uzd_fthreads_set_cluster(d->ft, next->page_cluster);
	if (d->ft)
		uzd_fthreads_set_busy_poll(d->ft, next->busy_poll_us);
	if (d->wb)
		uzd_wb_set_config(d->wb, next);
	apply_budgets(d, next);
	if (d->rc) {
		uzd_reclaim_set_config(d->rc, next);
		uzd_reclaim_kick(d->rc);
	}
}

static uint64_t ram_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

static int load(struct uzd_daemon *d, const char *who, struct uzd_config *next, char *note,
		size_t len)
{
	char err[512];
	int ret;

	if (!d->config_path[0]) {
		snprintf(note, len, "uzswapd was started without a config file: nothing to reload");
		uzd_log(d->cfg.log_level, UZD_LOG_WARN, "reload (%s): %s", who, note);
		return -ENOENT;
	}
	ret = uzd_config_load(d->config_path, ram_bytes(), next, err, sizeof(err));
	if (ret < 0) {
		snprintf(note, len, "%s", err);
		uzd_log(d->cfg.log_level, UZD_LOG_ERROR,
			"reload (%s): %s: the running configuration is kept", who, err);
		return ret;
	}
	/* The command line's socket overrides the file's, now as at start. */
	if (d->socket_overridden)
		memcpy(next->socket, d->cfg.socket, sizeof(next->socket));
	return 0;
}

int uzd_reload(struct uzd_daemon *d, const char *who, struct uzd_reload_result *res, char *note,
	       size_t len)
{
	struct uzd_config next;
	struct plan p = { .d = d, .next = &next };
	char err[256];
	int ret;

	note[0] = '\0';
	memset(res, 0, sizeof(*res));
	ret = load(d, who, &next, note, len);
	if (ret < 0)
		return ret;
	ret = uzd_config_refit_clients(&next, d->cfg.max_clients, err, sizeof(err));
	if (ret < 0) {
		snprintf(note, len, "%s: %s", d->config_path, err);
		uzd_log(d->cfg.log_level, UZD_LOG_ERROR,
			"reload (%s): %s: the running configuration is kept", who, note);
		return ret;
	}
	p.writeback_key = uzd_config_key_id("backing", "writeback");
	uzd_config_diff(&d->cfg, &next, plan_key, &p);
	res->changed = p.changed.n;
	res->kept = p.kept.n;
	if (p.kept.n) {
		snprintf(note, len, "not changed while running (restart uzswapd to apply): %s",
			 p.kept.text);
		uzd_log(d->cfg.log_level, UZD_LOG_WARN, "reload (%s): %s: %s", who, d->config_path,
			note);
	}
	apply(d, &next);
	uzd_log(d->cfg.log_level, UZD_LOG_INFO, "reload (%s): %s: %u setting(s) changed%s%s", who,
		d->config_path, p.changed.n, p.changed.n ? ": " : "", p.changed.text);
	return 0;
}
