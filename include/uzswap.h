/* SPDX-License-Identifier: MIT */
/*
 * include/uzswap.h - libuzswap: put a process's memory under uzswapd.
 *
 * A program connects once, then creates managed regions: memory that reads
 * and writes like a zero-filled anonymous mapping, but whose cold pages the
 * daemon compresses into its pool and restores on the next touch.
 *
 *	struct uzswap *u;
 *	void *p;
 *
 *	if (uzswap_connect(NULL, NULL, &u) < 0) ...
 *	if (uzswap_region_create(u, 1UL << 30, "cache", &p) < 0) ...
 *	... use p[0 .. 1 GiB) ...
 *	uzswap_region_release(u, p);
 *	uzswap_close(u);
 *
 * Every function returns 0 or a negative errno; after a failure
 * uzswap_last_error() says what went wrong in one line (the daemon's own
 * message when the daemon refused); a failed connect writes that line into
 * the caller's buffer (struct uzswap_options.error).  A struct uzswap may be used from
 * several threads: requests are serialised inside.
 *
 * The daemon connection is watched, by one thread per connection that
 * blocks every signal: if uzswapd dies (or drops this client) while the
 * process holds a region, the process is stopped at once with a message
 * on stderr and exit status UZSWAP_EXIT_DAEMON_GONE (by _exit(2): atexit
 * handlers do not run and stdio buffers are not flushed), because its
 * evicted pages are gone and it must never read zeros where its data was.
 * If it holds none, nothing is lost: later calls fail with -ENOTCONN.
 *
 * Within a region: madvise(MADV_REMOVE) frees pages (they read back as
 * zeros); munmap of part of a region gives that part back (the daemon
 * forgets it).  MADV_DONTNEED does not free a page of a region (regions
 * are shared memory): use MADV_REMOVE.  A forked child must not touch a
 * region.
 */
#ifndef UZSWAP_H
#define UZSWAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where clients find the daemon when neither an argument nor UZSWAP_SOCKET says. */
#define UZSWAP_DEFAULT_SOCKET "/run/uzswap/uzswapd.sock"
/* Exit status of a process stopped because the daemon went away. */
#define UZSWAP_EXIT_DAEMON_GONE 86
/* Exit status of a program under uzswap-run --strict (UZSWAP_STRICT=1) that found no daemon. */
#define UZSWAP_EXIT_NO_DAEMON 85

struct uzswap;

struct uzswap_options {
	uint64_t max_resident; /* bytes to keep resident; 0: the daemon's default */
	const char *name;      /* shown in statistics; NULL: the process name */
	char *error;	       /* when not NULL, connect writes why it failed here */
	size_t error_len;
};

struct uzswap_stats {
	uint64_t max_resident;	/* the budget the daemon granted, bytes */
	uint64_t managed_pages; /* pages in this client's regions */
	uint64_t resident_pages;
	uint64_t same_pages; /* evicted, kept as one word */
	uint64_t pool_pages; /* evicted, compressed in the pool */
	uint64_t file_pages; /* evicted, in the backing file */
	uint64_t pool_bytes; /* compressed bytes of this client's pool pages */
	uint64_t faults;     /* all faults served */
	uint64_t faults_zero;
	uint64_t evictions;
	uint64_t rejections; /* evictions refused (pool full, busy...) */
	uint64_t fault_p50_ns, fault_p99_ns;
	uint64_t evict_ns; /* time the daemon spent evicting this client's pages */
};

/*
 * Connect to uzswapd at @socket_path (NULL: $UZSWAP_SOCKET, then
 * UZSWAP_DEFAULT_SOCKET), say hello, and hand the daemon a userfaultfd.
 * @opt may be NULL.  -ENOENT/-ECONNREFUSED: no daemon there; -EACCES: the
 * daemon's policy refused this user; -EPROTO: protocol mismatch.
 */
int uzswap_connect(const char *socket_path, const struct uzswap_options *opt, struct uzswap **out);

/*
 * Release every region still held, then disconnect.  After this the
 * process no longer depends on the daemon.  NULL is a no-op.
 */
void uzswap_close(struct uzswap *u);

/*
 * A new managed region of @length bytes (rounded up to pages), zero-filled,
 * readable and writable; *@addr gets its start.  @name (may be NULL) is
 * for statistics, at most 31 bytes.  -EINVAL, -ENOMEM, or the daemon's
 * refusal (-ENOSPC when the client holds too many regions...).
 */
int uzswap_region_create(struct uzswap *u, size_t length, const char *name, void **addr);

/*
 * Give back a whole region created here, by its start address: the daemon
 * forgets it, then it is unmapped.  -ENOENT when no region of @u starts at
 * @addr; if the daemon refuses, the region stays as it was.
 */
int uzswap_region_release(struct uzswap *u, void *addr);

/* This client's statistics, as the daemon counts them. */
int uzswap_stats(struct uzswap *u, struct uzswap_stats *st);

/*
 * One line about the last failure on @u ("" when none), kept in @u until
 * uzswap_close(); the next failing call on @u, from any thread, rewrites it.
 */
const char *uzswap_last_error(const struct uzswap *u);

#ifdef __cplusplus
}
#endif

#endif /* UZSWAP_H */
