/* SPDX-License-Identifier: MIT */
/*
 * daemon/status.c - the daemon's state for uzswapctl, written into a memfd.
 *
 * The layout is the protocol's (struct uzp_status, then one struct
 * uzp_status_client per client, then their regions grouped by client):
 * uzswapctl formats it.  Everything is read without stopping anyone:
 * counters with relaxed loads, page counts under each client's table read
 * lock, the client list under clients_lock with a reference per client,
 * so a figure may be a moment older than another but never torn.
 *
 * Runs on the loop thread; takes clients_lock, then table read locks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/io.h"
#include "daemon/reclaim.h"
#include "daemon/server.h"
#include "daemon/writeback.h"
#include "include/uzswap_proto.h"

/* A growing byte buffer; on failure err is set and further appends are dropped. */
struct sbuf {
	unsigned char *p;
	size_t len, cap;
	int err;
};

static void *sbuf_append(struct sbuf *b, size_t len)
{
	void *at;

	if (b->err)
		return NULL;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		unsigned char *p;

		while (cap < b->len + len)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->p = p;
		b->cap = cap;
	}
	at = b->p + b->len;
	memset(at, 0, len);
	b->len += len;
	return at;
}

static uint64_t ld(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void fill_lat(struct uzp_fault_lat *l, const struct uzd_hist *h)
{
	l->count = uzd_hist_count(h);
	l->p50_ns = uzd_hist_quantile(h, 0.5);
	l->p99_ns = uzd_hist_quantile(h, 0.99);
}

/* RssAnon of @pid: the anonymous memory uzswap does not manage (managed pages are shmem). */
static uint64_t anon_rss(pid_t pid)
{
	char path[64], line[128];
	unsigned long long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib * 1024;
}

/* The share of @c's victim batches sampling judges, 1/100 %; 0 when it is not sampled. */
static uint32_t sample_share_centi(struct uzd_client *c)
{
	if (!__atomic_load_n(&c->sample_pages, __ATOMIC_RELAXED))
		return 0;
	return __atomic_load_n(&c->share.share, __ATOMIC_RELAXED) * 10000u / UZD_SHARE_ONE;
}

static void fill_client(struct uzp_status_client *sc, struct uzd_client *c)
{
	const struct uzd_client_stats *cs = &c->stats;

	sc->id = c->id;
	sc->pid = (uint32_t)c->pid;
	sc->uid = (uint32_t)c->uid;
	memcpy(sc->comm, c->comm, sizeof(sc->comm));
	sc->comm[sizeof(sc->comm) - 1] = '\0';
	sc->budget_bytes = uzd_client_budget(c) * UZD_PAGE_SIZE;
	sc->budget_set = c->budget_set;
	sc->pool_bytes = ld(&cs->pool_bytes);
	for (int k = 0; k < UZP_FAULT_KINDS; k++)
		fill_lat(&sc->faults[k], &cs->kind_ns[k]);
	fill_lat(&sc->faults_file, &cs->kind_ns[UZD_FAULT_FILE]);
	fill_lat(&sc->faults_all, &cs->fault_ns);
	sc->written_back = ld(&cs->written_back);
	sc->file_bytes = ld(&cs->file_bytes);
	sc->faults_raced = ld(&cs->faults_raced);
	sc->refaults_hot = ld(&cs->refaults_hot);
	sc->evicted_same = ld(&cs->evicted_same);
	sc->evicted_pool = ld(&cs->evicted_pool);
	sc->rejected_pool_full = ld(&cs->rejected_pool_full);
	sc->rejected_busy = ld(&cs->rejected_busy);
	sc->rejected_error = ld(&cs->rejected_error);
	sc->poisoned = ld(&cs->poisoned);
	sc->readahead = ld(&cs->readahead);
	sc->sampled = ld(&cs->sampled);
	sc->sampled_touched = ld(&cs->sampled_touched);
	sc->sampled_idle = ld(&cs->sampled_idle);
	sc->sample_share_centi = sample_share_centi(c);
	sc->anon_rss_bytes = anon_rss(c->pid);
}

/* The client's regions into @regions, its page totals into @sc; table read lock. */
static void fill_regions(struct uzp_status_client *sc, struct uzd_client *c, struct sbuf *regions)
{
	uzd_region_read_lock(&c->regions);
	for (size_t i = 0; i < c->regions.n; i++) {
		const struct uzd_region *r = c->regions.regions[i];
		struct uzp_status_region *sr = sbuf_append(regions, sizeof(*sr));
		struct uzd_region_counts rc;

		uzd_region_counts(r, &rc);
		sc->n_regions++;
		sc->managed_pages += r->npages;
		sc->resident_pages += rc.resident;
		sc->same_pages += rc.same;
		sc->pool_pages += rc.pool;
		sc->file_pages += rc.file;
		if (!sr)
			continue;
		sr->client_id = c->id;
		sr->region_id = r->id;
		memcpy(sr->name, r->name,
		       sizeof(sr->name) < sizeof(r->name) ? sizeof(sr->name) : sizeof(r->name));
		sr->name[sizeof(sr->name) - 1] = '\0';
		sr->addr = r->start;
		sr->length = r->len;
		sr->resident_pages = rc.resident;
		sr->same_pages = rc.same;
		sr->pool_pages = rc.pool;
		sr->file_pages = rc.file;
	}
	uzd_region_read_unlock(&c->regions);
}

/* The pool limit and the backing file; all 0 when writeback is off. */
static void fill_writeback(struct uzp_status *st, struct uzd_daemon *d)
{
	struct uzd_bfile_stats fs;
	struct uzd_wb_stats ws;

	if (!d->wb)
		return;
	uzd_wb_stats(d->wb, &ws, &fs);
	st->writeback = uzd_wb_enabled(d->wb) ? 1 : 2;
	st->pool_closed = ws.pool_closed;
	st->pool_accept_bytes = ws.accept_bytes;
	st->pool_full_events = ws.pool_full;
	st->wb_written_pages = ws.written_pages;
	st->wb_written_bytes = ws.written_bytes;
	st->wb_rejected_file_full = ws.rejected_file_full;
	st->wb_rejected_write_error = ws.rejected_write_error;
	st->wb_rejected_raced = ws.rejected_raced;
	st->wb_rejected_owner_gone = ws.rejected_owner_gone;
	st->wb_put_back = ws.put_back;
	st->file_max_bytes = fs.max_bytes;
	st->file_size_bytes = fs.size_bytes;
	st->file_disk_bytes = fs.disk_bytes;
	st->file_live_bytes = fs.live_bytes;
	st->file_stored_bytes = fs.stored_bytes;
	st->file_records = fs.records;
	st->file_reads = fs.reads;
	st->file_reads_staged = fs.reads_staged;
	st->file_restore_p50_ns = uzd_hist_quantile(&ws.restore_ns, 0.5);
	st->file_restore_p99_ns = uzd_hist_quantile(&ws.restore_ns, 0.99);
	st->file_write_enospc = fs.write_enospc;
	st->file_write_eio = fs.write_eio;
	st->file_short_writes = fs.short_writes;
	st->file_read_errors = fs.read_errors;
	st->file_short_reads = fs.short_reads;
	st->file_bad_records = fs.bad_records;
	st->file_punched_blocks = fs.punched_blocks;
	st->file_cleaned_segments = fs.cleaned_segments;
	st->file_cleaned_records = fs.cleaned_records;
	st->wb_busy_ns = ws.busy_ns;
	st->wb_clean_ns = ws.clean_ns;
}

static void fill_daemon(struct uzp_status *st, struct uzd_daemon *d)
{
	struct uzd_reclaim_stats rs;
	struct zpool_stats ps;

	st->magic = UZP_MAGIC;
	st->version = UZP_VERSION;
	st->pid = (uint32_t)getpid();
	st->fault_threads = d->cfg.fault_threads;
	strncpy(st->allocator, d->cfg.allocator, sizeof(st->allocator) - 1);
	strncpy(st->codec, uzc_codec_name(d->cfg.codec.id), sizeof(st->codec) - 1);
	st->codec_level = d->cfg.codec.level;
	st->uptime_ms = (uzd_now_ns() - d->start_ns) / 1000000u;
	st->max_resident = d->cfg.max_resident;
	st->pool_max_bytes = d->cfg.pool_max_size;
	zpool_stats(d->pool, &ps);
	st->pool_total_bytes = zpool_total_size(d->pool);
	st->pool_compressed_bytes = ps.object_bytes;
	st->pool_stored_pages = ps.objects;
	st->pool_meta_bytes = ps.meta_bytes;
	uzd_reclaim_stats(d->rc, &rs);
	st->mem_available = rs.mem_available;
	st->psi_some_avg10_centi = rs.psi_some_avg10_centi;
	st->pressure_rounds = rs.pressure_rounds;
	st->clients_accepted = d->counters.clients_accepted;
	st->clients_refused = d->counters.clients_refused;
	st->quota_refusals = d->counters.quota_refused;
	st->clients_dropped = d->counters.clients_dropped;
	st->protocol_errors = d->counters.protocol_errors;
	fill_writeback(st, d);
}

int uzd_status_write(struct uzd_daemon *d, uid_t viewer, int fd, uint64_t *bytes)
{
	return uzd_status_write_as(d, viewer, viewer == 0, fd, bytes);
}

int uzd_status_write_as(struct uzd_daemon *d, uid_t viewer, bool see_all, int fd, uint64_t *bytes)
{
	struct sbuf out = { 0 }, regions = { 0 };
	struct uzd_client **cs;
	size_t n;
	int ret;

	cs = calloc(d->cfg.max_clients, sizeof(*cs));
	if (!cs)
		return -ENOMEM;
	pthread_mutex_lock(&d->clients_lock);
	n = 0;
	for (size_t i = 0; i < d->n_clients; i++) {
		/* Who runs what where is not every user's business: admins see all. */
		if (!see_all && d->clients[i]->uid != viewer)
			continue;
		cs[n] = d->clients[i];
		uzd_client_get(cs[n++]);
	}
	pthread_mutex_unlock(&d->clients_lock);

	sbuf_append(&out, sizeof(struct uzp_status));
	for (size_t i = 0; i < n; i++) {
		struct uzp_status_client *sc = sbuf_append(&out, sizeof(*sc));

		if (sc) {
			fill_client(sc, cs[i]);
			fill_regions(sc, cs[i], &regions);
		}
		uzd_client_put(cs[i]);
	}
	free(cs);
	ret = out.err ? out.err : regions.err;
	if (ret == 0) {
		struct uzp_status *st = (struct uzp_status *)out.p;

		fill_daemon(st, d);
		st->n_clients = (uint32_t)n;
		st->n_regions = (uint32_t)(regions.len / sizeof(struct uzp_status_region));
		ret = uzd_pwrite_all(fd, out.p, out.len, 0);
		if (ret == 0)
			ret = uzd_pwrite_all(fd, regions.p, regions.len, (off_t)out.len);
		if (ret == 0 && ftruncate(fd, (off_t)(out.len + regions.len)) < 0)
			ret = -errno;
		*bytes = out.len + regions.len;
	}
	free(out.p);
	free(regions.p);
	return ret;
}
