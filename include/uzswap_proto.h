/* SPDX-License-Identifier: MIT */
/*
 * include/uzswap_proto.h - the wire protocol between libuzswap and uzswapd.
 *
 * The one header the client library and the daemon share.  Transport: an
 * AF_UNIX SOCK_SEQPACKET socket, so every message is one datagram and its
 * boundaries are kept; descriptors travel as SCM_RIGHTS with the message
 * that names them.  Both ends are on one machine, so integers are in host
 * order and structs are fixed-size with explicit padding: a message is
 * valid only if its length is exactly what its type says (uzp_body_size),
 * which makes validation a table lookup and leaves no parsing to get wrong.
 *
 * A conversation:
 *   client                                  daemon
 *   HELLO {pid, limits}            ------>  checks SO_PEERCRED against policy
 *                                  <------  REPLY {status, HELLO_OK} + /dev/userfaultfd
 *   SET_UFFD {}  + its userfaultfd ------>  REPLY {status}
 *   REGISTER {range, name} + memfd ------>  REPLY {status, REGISTERED}
 *   UNREGISTER {range}             ------>  REPLY {status}
 *   STATS {}                       ------>  REPLY {status, CLIENT_STATS}
 *                                  <------  SHUTDOWN {reason} (unsolicited; the daemon is going)
 *
 * fork (the interposer, client/uzi_fork.c): in the atfork prepare handler
 * the parent opens the child's connection itself (HELLO on a second socket,
 * which the child inherits), then, on its own connection:
 *   FORK {child id} + child's memfd ------>  fence the parent, snapshot its
 *                                  <------  REPLY {FORKED}   regions into the child's
 *   (fork)                                                   client
 *   FORK_DONE {child id}           ------>  lift the fence
 * and the child, on the inherited socket, once its mappings are in place:
 *   FORK_ATTACH {pid} + its userfaultfd --> REPLY {status}: served from now on
 * A fork that fails closes the child's socket: the snapshot goes with it.
 *
 * An admin tool (uzswapctl) asks for the daemon's whole state without a
 * HELLO; the state does not fit a datagram, so it travels in a memfd the
 * tool creates and the daemon writes (struct uzp_status, below):
 *   STATUS {} + a memfd            ------>  REPLY {status, STATUS_OK}
 *   CLASSES {} + a memfd           ------>  REPLY {status, STATUS_OK}: the pool's
 *                                           size classes (struct uzp_classes)
 *   ADMIN {op, pid, size}          ------>  REPLY {status, ADMIN_OK}: set a budget,
 *                                           compact, reclaim, write back, reload
 * ADMIN is for root and the members of [clients] admin_group only; the
 * reply to a reclaim or a writeback comes once the daemon's thread for it
 * has done the work, and other requests on the connection may be answered
 * first (match replies by seq).
 *
 * Every request gets exactly one REPLY with the request's seq.  A reply's
 * status is 0 or a negative errno, its body is the request's result (empty
 * on error) and it ends with a human-readable message (always set on error;
 * on success empty, except that an ADMIN reply may carry a note, such as
 * the settings a reload could not apply).  A message that is malformed or
 * out of order is answered with an error, and the daemon may then
 * disconnect that client; no other client notices.
 */
#ifndef UZSWAP_PROTO_H
#define UZSWAP_PROTO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "include/uffd_compat.h"

#define UZP_MAGIC 0x57535a55u /* "UZSW" in memory on little-endian */
#define UZP_VERSION 1
#define UZP_NAME_MAX 32	    /* region names, NUL-padded */
#define UZP_MESSAGE_MAX 256 /* reply text, not NUL-terminated on the wire */
/* The largest datagram either side sends: a reply with the largest body. */
#define UZP_DATAGRAM_MAX 1024

/*
 * The features every uzswap userfaultfd has: the client enables them with
 * UFFDIO_API, the daemon refuses a SET_UFFD descriptor without them.
 * Events, so the daemon forgets ranges the client drops or moves
 * (design.md §1, "Request EVENT_REMOVE, EVENT_UNMAP and EVENT_REMAP");
 * MISSING and WP faults on shmem for restore and the eviction fence; POISON
 * for pages whose backing file copy is lost.  Without EVENT_FORK a child's
 * copy is unregistered: the client library handles fork (design.md §1,
 * "Fork").
 */
#define UZP_UFFD_FEATURES                                                                  \
	(UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP | \
	 UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP |                     \
	 UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_POISON)

/* What the client registers each region for: restore and eviction fence. */
#define UZP_UFFD_REGISTER_MODES (UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)

enum uzp_type {
	UZP_HELLO = 1,	 /* c->d  struct uzp_hello */
	UZP_SET_UFFD,	 /* c->d  no body; 1 fd: the client's userfaultfd */
	UZP_REGISTER,	 /* c->d  struct uzp_register; 1 fd: the region's memfd */
	UZP_STATUS,	 /* c->d  no body; 1 fd: a memfd for struct uzp_status */
	UZP_UNREGISTER,	 /* c->d  struct uzp_range */
	UZP_STATS,	 /* c->d  no body */
	UZP_REPLY,	 /* d->c  struct uzp_reply, then a body, then the message */
	UZP_SHUTDOWN,	 /* d->c  struct uzp_shutdown, then the message */
	UZP_FORK,	 /* c->d  struct uzp_fork; 1 fd: the child's memfd */
	UZP_FORK_DONE,	 /* c->d  struct uzp_fork */
	UZP_FORK_ATTACH, /* c->d  struct uzp_fork_attach; 1 fd: the child's userfaultfd */
	UZP_CLASSES,	 /* c->d  no body; 1 fd: a memfd for struct uzp_classes */
	UZP_ADMIN,	 /* c->d  struct uzp_admin */
	UZP_TYPE_COUNT,
};

struct uzp_header {
	uint32_t magic;	  /* UZP_MAGIC */
	uint16_t version; /* UZP_VERSION */
	uint16_t type;	  /* enum uzp_type */
	uint32_t length;  /* bytes after this header */
	uint32_t seq;	  /* chosen by the requester; echoed by the reply */
};

struct uzp_hello {
	uint32_t pid;	       /* informational: the daemon trusts SO_PEERCRED */
	uint32_t flags;	       /* none defined yet: must be 0 */
	uint64_t max_resident; /* bytes the client asks to keep resident; 0: default */
	char comm[16];	       /* process name, for statistics */
};

struct uzp_register {
	uint64_t addr;		 /* page-aligned start of the client's mapping */
	uint64_t length;	 /* bytes, a page multiple */
	uint64_t memfd_offset;	 /* page-aligned offset of addr within the memfd */
	char name[UZP_NAME_MAX]; /* for statistics; NUL-padded */
};

struct uzp_range {
	uint64_t addr;
	uint64_t length;
};

/*
 * FORK and FORK_DONE: the child's client (the id its HELLO was given, on a
 * connection the same process opened).
 */
struct uzp_fork {
	uint32_t child_id;
	uint32_t flags; /* none defined yet: must be 0 */
};

struct uzp_fork_attach {
	uint32_t pid;	   /* the child's, for statistics (SO_PEERCRED names the parent) */
	uint32_t reserved; /* 0 */
};

/*
 * ADMIN operations.  pid names a client process (every connection it has
 * with a userfaultfd); size is bytes, a non-zero multiple of 4096 for the
 * ops that take one.  A field an op does not take must be 0.
 */
enum uzp_admin_op {
	UZP_ADMIN_SET_BUDGET = 1, /* pid, size: the process's resident budget, until it leaves */
	UZP_ADMIN_COMPACT,	  /* the pool: move objects to give pool pages back */
	UZP_ADMIN_RECLAIM,	  /* pid, size: evict up to size of its resident pages now */
	UZP_ADMIN_WRITEBACK,	  /* size: move up to size of pool pages to the backing file */
	UZP_ADMIN_RELOAD,	  /* re-read the config file (as SIGHUP does) */
	UZP_ADMIN_OPS,
};

struct uzp_admin {
	uint32_t op;	   /* enum uzp_admin_op */
	uint32_t pid;	   /* SET_BUDGET, RECLAIM; else 0 */
	uint64_t size;	   /* SET_BUDGET, RECLAIM, WRITEBACK; else 0 */
	uint32_t flags;	   /* none defined yet: must be 0 */
	uint32_t reserved; /* 0 */
};

/* Bodies of a successful REPLY, by the request they answer. */
struct uzp_hello_ok {
	uint32_t client_id;
	uint32_t flags;	       /* none defined yet */
	uint64_t max_resident; /* the budget granted */
	uint64_t page_size;
};

struct uzp_registered {
	uint32_t region_id;
	uint32_t reserved; /* 0 */
};

/* What an ADMIN op did. */
struct uzp_admin_ok {
	uint32_t clients;  /* SET_BUDGET, RECLAIM: the clients of the process it applied to */
	uint32_t reserved; /* 0 */
	uint64_t pages;	   /* RECLAIM: pages evicted; COMPACT, WRITEBACK: pool pages freed */
	uint64_t objects;  /* WRITEBACK: objects written to the backing file */
	uint64_t bytes;	   /* WRITEBACK: their compressed bytes; SET_BUDGET: the budget set */
	uint64_t changed;  /* RELOAD: settings that changed and now apply */
	uint64_t kept;	   /* RELOAD: settings that changed but cannot while running */
};

struct uzp_client_stats {
	uint64_t managed_pages;
	uint64_t resident_pages;
	uint64_t same_pages;  /* evicted pages kept as one word */
	uint64_t pool_pages;  /* evicted pages in the compressed pool */
	uint64_t file_pages;  /* evicted pages in the backing file */
	uint64_t pool_bytes;  /* compressed bytes of this client's pool pages */
	uint64_t faults;      /* all faults served */
	uint64_t faults_zero; /* of which first touches */
	uint64_t evictions;   /* pages evicted */
	uint64_t rejections;  /* evictions refused (pool full...) */
	uint64_t fault_p50_ns, fault_p99_ns;
	uint64_t evict_ns; /* time reclaim spent evicting this client's pages */
};

/* FORK: what the snapshot holds. */
struct uzp_forked {
	uint64_t regions;
	uint64_t copied_pages; /* resident pages copied into the child's memfd */
	uint64_t shared_pages; /* evicted pages the child shares with the parent */
};

/*
 * The daemon's state, as STATUS writes it into the memfd from offset 0:
 * one struct uzp_status, then n_clients struct uzp_status_client, then
 * n_regions struct uzp_status_region (grouped by client, in client order).
 * The reply's struct uzp_status_ok gives the bytes written.  Counters are
 * totals since the daemon (or the client) started; latencies are in ns
 * from reading a fault to waking the faulting thread.
 */
enum uzp_fault_kind {
	UZP_FAULT_ZERO, /* first touch: a zero page */
	UZP_FAULT_SAME, /* restored from a same-filled word */
	UZP_FAULT_POOL, /* restored from the compressed pool */
	UZP_FAULT_KINDS,
};

struct uzp_fault_lat {
	uint64_t count, p50_ns, p99_ns;
};

struct uzp_status {
	uint32_t magic;	    /* UZP_MAGIC */
	uint32_t version;   /* UZP_VERSION */
	uint32_t n_clients; /* connected and registered with a userfaultfd */
	uint32_t n_regions;
	uint32_t pid;
	uint32_t fault_threads;
	char allocator[16]; /* pool allocator, NUL-terminated */
	char codec[16];	    /* "lz4", "zstd"... */
	int32_t codec_level;
	uint32_t reserved; /* 0 */
	uint64_t uptime_ms;
	uint64_t max_resident;		/* global budget, bytes */
	uint64_t pool_max_bytes;	/* configured pool limit */
	uint64_t pool_total_bytes;	/* pool pages held, bytes */
	uint64_t pool_compressed_bytes; /* bytes of live objects */
	uint64_t pool_stored_pages;	/* pages those objects hold */
	uint64_t pool_meta_bytes;	/* the pool's own tables beside its pages */
	uint64_t mem_available;		/* MemAvailable, bytes (0: unknown) */
	uint64_t psi_some_avg10_centi;	/* memory PSI some avg10, 1/100 % */
	uint64_t pressure_rounds;	/* reclaim rounds driven by pressure */
	uint64_t clients_accepted;	/* since start */
	uint64_t clients_refused;	/* by policy or limits */
	uint64_t clients_dropped;	/* for protocol errors */
	uint64_t protocol_errors;	/* malformed or refused requests */
	/* The pool limit and the backing-file tier (writeback). */
	uint32_t writeback;		  /* 1: the tier is on; the file_* and wb_* below count;
					   * 2: a reload turned it off: they still count, and
					   * the file's pages are still restored */
	uint32_t pool_closed;		  /* 1: full, refusing stores until below the threshold */
	uint64_t pool_accept_bytes;	  /* once full, stores resume below this */
	uint64_t pool_full_events;	  /* times the pool reached its limit */
	uint64_t wb_written_pages;	  /* pool objects written back to the file */
	uint64_t wb_written_bytes;	  /* their compressed bytes */
	uint64_t wb_rejected_file_full;	  /* left in the pool: the file was full */
	uint64_t wb_rejected_write_error; /* left in the pool: writes were failing */
	uint64_t wb_rejected_raced;	  /* left in the pool: the page changed meanwhile */
	uint64_t wb_rejected_owner_gone;  /* left in the pool: its client was going */
	uint64_t wb_put_back;		  /* written, then back to the pool: a write failed */
	uint64_t file_max_bytes;	  /* [backing] max_size */
	uint64_t file_size_bytes;	  /* the file's length */
	uint64_t file_disk_bytes;	  /* blocks allocated on disk */
	uint64_t file_live_bytes;	  /* live records, headers included */
	uint64_t file_stored_bytes;	  /* their compressed bytes */
	uint64_t file_records;		  /* live records (pages in the file) */
	uint64_t file_reads;		  /* records read back */
	uint64_t file_reads_staged;	  /* of which from memory, their write in flight */
	uint64_t file_restore_p50_ns;	  /* fault latency of restores from the file */
	uint64_t file_restore_p99_ns;
	uint64_t file_write_enospc;	/* writes failed for want of space */
	uint64_t file_write_eio;	/* writes failed otherwise */
	uint64_t file_short_writes;	/* writes that stopped short (completed after) */
	uint64_t file_read_errors;	/* reads failed: their pages poisoned */
	uint64_t file_short_reads;	/* reads that found the file's end: poisoned */
	uint64_t file_bad_records;	/* records failing their checksum: poisoned */
	uint64_t file_punched_blocks;	/* blocks given back to the file system */
	uint64_t file_cleaned_segments; /* segments compacted */
	uint64_t file_cleaned_records;	/* records moved by compaction */
	uint64_t wb_busy_ns;		/* time the writeback thread spent writing back */
	uint64_t wb_clean_ns;		/* and compacting the file */
	uint64_t quota_refusals;	/* connections and registrations over a quota */
};

struct uzp_status_client {
	uint32_t id, pid, uid, n_regions;
	char comm[16];
	uint64_t budget_bytes; /* resident budget granted */
	uint64_t managed_pages, resident_pages, same_pages, pool_pages, file_pages;
	uint64_t pool_bytes; /* compressed bytes of its pool objects */
	struct uzp_fault_lat faults[UZP_FAULT_KINDS];
	uint64_t faults_raced; /* already there when served (EEXIST) */
	uint64_t refaults_hot; /* restored pages found hot */
	uint64_t evicted_same, evicted_pool;
	uint64_t rejected_pool_full;	  /* evictions refused: pool full */
	uint64_t rejected_busy;		  /* victims skipped: a fault owned them */
	uint64_t rejected_error;	  /* evictions failed on a memfd call */
	uint64_t poisoned;		  /* pages poisoned (corrupt or unmanaged) */
	uint64_t readahead;		  /* pages filled ahead of a fault that came in order */
	struct uzp_fault_lat faults_file; /* restored from the backing file */
	uint64_t written_back;		  /* its pool objects written back to the file */
	uint64_t file_bytes;		  /* compressed bytes of its pages in the file */
	uint64_t sampled;		  /* resident pages unmapped for access sampling */
	uint64_t sampled_touched;	  /* of which touched again: protected */
	uint64_t sampled_idle;		  /* of which untouched: offered to eviction */
	/*
	 * The process's private anonymous resident memory (RssAnon of
	 * /proc/PID/status): the part of its anonymous memory that is not
	 * managed, for coverage = data pages / (data pages + this).
	 */
	uint64_t anon_rss_bytes;
	struct uzp_fault_lat faults_all; /* every fault served, whatever it restored */
	uint32_t budget_set;		 /* 1: the budget was set by an admin (uzswapctl set) */
	/* Its victim batches that access sampling judges, 1/100 %; 0: not sampled */
	uint32_t sample_share_centi;
};

struct uzp_status_region {
	uint32_t client_id, region_id;
	char name[UZP_NAME_MAX];
	uint64_t addr, length;
	uint64_t resident_pages, same_pages, pool_pages, file_pages;
};

/*
 * The pool's classes, as CLASSES writes them into the memfd from offset 0:
 * one struct uzp_classes, then n_classes struct uzp_class.  What a class is
 * depends on the allocator (kind): zsmalloc's size classes, smallest first;
 * for z3fold and zbud, which pack a few objects per page, the pool pages
 * grouped by how many objects each holds.
 */
enum uzp_classes_kind {
	UZP_CLASSES_SIZE = 1, /* index: class number; size: bytes per object slot */
	UZP_CLASSES_FILL,     /* index: objects in the page (0: a headless, page-sized one) */
};

struct uzp_classes {
	uint32_t magic;	  /* UZP_MAGIC */
	uint32_t version; /* UZP_VERSION */
	uint32_t n_classes;
	uint32_t kind;	    /* enum uzp_classes_kind */
	char allocator[16]; /* NUL-terminated */
};

struct uzp_class {
	uint32_t index;
	uint32_t size;		   /* SIZE: object slot bytes; FILL: 0 */
	uint32_t pages_per_zspage; /* SIZE: pages a zspage spans; FILL: 1 */
	uint32_t reserved;	   /* 0 */
	uint64_t objs_allocated;   /* object slots in the class's pages */
	uint64_t objs_used;	   /* of which live */
	uint64_t pages_used;	   /* pool pages of the class */
	uint64_t pages_freeable;   /* pages compaction could free now (FILL: 0, none can) */
};

struct uzp_status_ok {
	uint64_t bytes; /* written into the memfd from offset 0 */
};

struct uzp_reply {
	int32_t status;		 /* 0 or a negative errno */
	uint16_t body_length;	 /* bytes of body after this struct */
	uint16_t message_length; /* bytes of message after the body, <= UZP_MESSAGE_MAX */
};

struct uzp_shutdown {
	int32_t reason; /* 0: the daemon is stopping; else a negative errno */
	uint16_t message_length;
	uint16_t reserved;
};

/*
 * Size of the fixed part of a message of @type after the header, and how
 * many descriptors it carries.  REPLY and SHUTDOWN are followed by
 * variable bytes, which their fixed part counts; every request is exactly
 * its fixed part.  -1 for an unknown type.
 */
static inline long uzp_body_size(unsigned int type)
{
	switch (type) {
	case UZP_HELLO:
		return sizeof(struct uzp_hello);
	case UZP_SET_UFFD:
	case UZP_STATS:
	case UZP_STATUS:
	case UZP_CLASSES:
		return 0;
	case UZP_ADMIN:
		return sizeof(struct uzp_admin);
	case UZP_REGISTER:
		return sizeof(struct uzp_register);
	case UZP_UNREGISTER:
		return sizeof(struct uzp_range);
	case UZP_FORK:
	case UZP_FORK_DONE:
		return sizeof(struct uzp_fork);
	case UZP_FORK_ATTACH:
		return sizeof(struct uzp_fork_attach);
	case UZP_REPLY:
		return sizeof(struct uzp_reply);
	case UZP_SHUTDOWN:
		return sizeof(struct uzp_shutdown);
	default:
		return -1;
	}
}

/*
 * Descriptors a message of @type carries: SET_UFFD, REGISTER, STATUS, FORK,
 * FORK_ATTACH and CLASSES exactly one; a REPLY one only when it accepts a HELLO
 * (/dev/userfaultfd); no other message any.  A receiver closes every
 * descriptor it did not expect.
 */
static inline int uzp_fds_required(unsigned int type)
{
	return type == UZP_SET_UFFD || type == UZP_REGISTER || type == UZP_STATUS ||
			       type == UZP_FORK || type == UZP_FORK_ATTACH || type == UZP_CLASSES ?
		       1 :
		       0;
}

static inline int uzp_fds_max(unsigned int type)
{
	return uzp_fds_required(type) || type == UZP_REPLY ? 1 : 0;
}

/*
 * Transport, shared by both ends: one datagram out or in, with descriptors.
 * These only move bytes and descriptors; what a message must look like is
 * each side's business (daemon/proto.c checks requests).
 */
#define UZP_FDS_MAX 1

/* Send header + @len bytes of @body, and @nfds descriptors; 0 or -errno. */
static inline int uzp_send(int sock, const struct uzp_header *h, const void *body, size_t len,
			   const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * UZP_FDS_MAX)];
	} control;
	struct iovec iov[2] = { { (void *)h, sizeof(*h) }, { (void *)body, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	ssize_t n;

	if (nfds < 0 || nfds > UZP_FDS_MAX)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(*h) + len ? 0 : -EMSGSIZE;
}

/*
 * Receive one datagram of at most @cap bytes into @buf and the descriptors
 * that came with it (close-on-exec) into @fds, up to UZP_FDS_MAX; returns
 * the datagram's length, 0 when the peer has closed (or sent an empty
 * datagram, which is taken the same way), or -errno.  A datagram longer
 * than @cap, or with more descriptors than fit, is -EMSGSIZE.  Every
 * descriptor that came with a datagram not returned whole, or with an empty
 * one, is closed: a caller never leaks one.
 */
static inline ssize_t uzp_recv(int sock, void *buf, size_t cap, int *fds, int *nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * (UZP_FDS_MAX + 4))];
	} control;
	struct iovec iov = { buf, cap };
	struct msghdr msg = { .msg_iov = &iov,
			      .msg_iovlen = 1,
			      .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	int got = 0, err = 0;
	ssize_t n;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < UZP_FDS_MAX) {
				fds[got++] = fd;
			} else {
				close(fd);
				err = -EMSGSIZE;
			}
		}
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		err = -EMSGSIZE;
	/* 0 reads as "the peer closed": an empty datagram's descriptors go too. */
	if (err || n == 0) {
		while (got)
			close(fds[--got]);
	}
	*nfds = got;
	return err ? err : n;
}

_Static_assert(sizeof(struct uzp_header) == 16, "header layout");
_Static_assert(sizeof(struct uzp_hello) == 32, "hello layout");
_Static_assert(sizeof(struct uzp_register) == 56, "register layout");
_Static_assert(sizeof(struct uzp_client_stats) == 104, "stats layout");
_Static_assert(sizeof(struct uzp_status) % 8 == 0, "status layout");
_Static_assert(sizeof(struct uzp_status_client) % 8 == 0, "status client layout");
_Static_assert(sizeof(struct uzp_status_region) % 8 == 0, "status region layout");
_Static_assert(sizeof(struct uzp_admin) == 24, "admin layout");
_Static_assert(sizeof(struct uzp_admin_ok) == 48, "admin reply layout");
_Static_assert(sizeof(struct uzp_classes) == 32, "classes layout");
_Static_assert(sizeof(struct uzp_class) == 48, "class layout");
_Static_assert(sizeof(struct uzp_header) + sizeof(struct uzp_reply) +
			       sizeof(struct uzp_client_stats) + UZP_MESSAGE_MAX <=
		       UZP_DATAGRAM_MAX,
	       "the largest reply fits in one datagram");

#endif /* UZSWAP_PROTO_H */
