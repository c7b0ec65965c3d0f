/* SPDX-License-Identifier: MIT */
/*
 * client/uzi.h - the LD_PRELOAD interposer's state, shared by its files.
 *
 * The interposer (libuzswap-preload.so) lives inside arbitrary programs, so
 * it has process-global state by necessity; all of it is the one struct
 * uzi_state below, `uzi`.  The files:
 *   interpose.c   the exported wrappers (mmap, munmap, mremap, mprotect,
 *                 madvise, __register_atfork) and the decision "managed or
 *                 not"; the constructor; connecting on first use
 *   uzi_table.c   the records of managed mappings and their memfd slots
 *   uzi_map.c     the mechanisms: make a mapping managed, give a range
 *                 back, move or resize one, drop pages
 *   uzi_fork.c    fork: the snapshot handshake with the daemon
 *   uzi_watch.c   the thread that stops the process when the daemon dies
 *   uzi_sys.h     raw system calls, which never come back into the wrappers
 *
 * The fd scheme: one sparse memfd per process (UZI_MEMFD_SIZE bytes, all
 * holes until written).  Each managed mapping owns a slot of 2^UZI_SLOT_SHIFT
 * bytes of it (1 TiB, the daemon's largest region) and maps the start of its
 * slot, so it can grow in place (mremap) without meeting another mapping's
 * file pages.  Pieces left by a partial munmap keep their offsets in the
 * slot; the slot is reused once no piece is left and the daemon has
 * forgotten it.  The process holds three descriptors whatever it maps: the
 * socket, its userfaultfd and the memfd (design.md §1: never two mappings of
 * a managed page, so the memfd is mapped only at each record's address).
 *
 * Locking: uzi.lock (a mutex) guards the table, the memfd, the connection
 * state and the fork handshake; it is taken by every wrapper that touches
 * managed memory, and held from the fork prepare handler until the parent or
 * child handler.  Lock order: uzi.lock, then uzi.conn.lock (conn.c).
 *
 * Never, in this library: call malloc (the program's malloc may be inside
 * an mmap of its own, or hold its locks across fork: every buffer is static
 * or mapped with a raw system call); touch managed memory while holding
 * uzi.lock (a fault there waits for the daemon, which may wait for us);
 * fail a program's call because uzswap could not manage it (fall back to
 * ordinary memory); let errno change on a call that succeeds.
 */
#ifndef UZSWAP_CLIENT_UZI_H
#define UZSWAP_CLIENT_UZI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/internal.h"

#define UZI_PAGE 4096UL
#define UZI_SLOT_SHIFT 40 /* 1 TiB of file space per managed mapping */
#define UZI_SLOT_SIZE (UINT64_C(1) << UZI_SLOT_SHIFT)
#define UZI_MEMFD_SIZE (UINT64_C(1) << 62) /* 4M slots; holes cost nothing */
#define UZI_MAX_SLOTS ((uint32_t)(UZI_MEMFD_SIZE >> UZI_SLOT_SHIFT))
#define UZI_DEFAULT_MIN_REGION (UINT64_C(1) << 20)

/* Record flags: fork behaviour the program asked for with madvise. */
#define UZI_REC_DONTFORK 0x1u	/* MADV_DONTFORK: the child gets nothing here */
#define UZI_REC_WIPEONFORK 0x2u /* MADV_WIPEONFORK: the child gets zeros here */

/*
 * One managed mapping, or a piece of one: [addr, addr + len) maps the memfd
 * at off, with protection prot.  Records are disjoint and sorted by addr;
 * pieces of one mapping share its slot (off >> UZI_SLOT_SHIFT).
 */
struct uzi_rec {
	uintptr_t addr;
	size_t len;
	uint64_t off;
	int prot;
	unsigned int flags;
};

/*
 * The records (v[0..n), capacity cap) and the slots: slot_refs[s] counts
 * the records in slot s, for s < next_slot; free_slots[0..nfree) are slots
 * with no record, to be reused.  All arrays are raw mappings that grow.
 */
struct uzi_table {
	struct uzi_rec *v;
	size_t n, cap;
	uint32_t *slot_refs;
	uint32_t *free_slots;
	size_t slots_cap; /* entries allocated in both slot arrays */
	uint32_t next_slot;
	size_t nfree;
};

enum uzi_mode {
	UZI_PREINIT, /* before the constructor: everything goes to the kernel */
	UZI_IDLE,    /* not connected yet: connect on the first eligible mmap */
	UZI_ON,	     /* connected: eligible mappings are managed */
	UZI_OFF,     /* unmanaged for good (no daemon, disabled, or it went away) */
};

/*
 * Counters, for the report and for tests (/proc is no help for them).
 *  managed      mappings made managed
 *  fallback     eligible mappings left ordinary because a step failed
 *  copied_remap mremaps done by copying (the file range was taken)
 */
struct uzi_counters {
	uint64_t managed, fallback, copied_remap, dropped;
};

/*
 * struct uzi_state - everything the interposer holds.
 *  lock        see above
 *  mode        enum uzi_mode; read without the lock by the wrappers' fast
 *              path (a stale UZI_IDLE/ON only sends them to the slow path)
 *  conn        the connection (client/conn.c), valid in UZI_ON
 *  memfd       the process's sparse memfd, valid in UZI_ON
 *  t           the records
 *  nrec        t.n, also readable without the lock (the fast path and the
 *              watcher: "does the process hold managed memory?")
 *  min_region, max_resident, strict, quiet   from the environment
 *  warned      the one warning line was printed
 *  over_quota  the daemon refused a region for a quota (EDQUOT): new
 *              mappings stay ordinary, unasked, until managed memory is
 *              given back
 *  pid         the process these fds belong to (a fork child resets them)
 *  child       the fork handshake in progress (uzi_fork.c)
 */
struct uzi_fork_state {
	bool active;		    /* prepare ran; parent or child handler pending */
	bool snapshot;		    /* the daemon holds a snapshot for the child */
	struct uzswap conn;	    /* the child's connection, made by the parent */
	int dev_fd;		    /* /dev/userfaultfd, for the child's userfaultfd */
	int memfd;		    /* the child's memfd, filled by the daemon */
	char failed[UZS_ERROR_MAX]; /* why prepare could not make the snapshot */
};

struct uzi_state {
	pthread_mutex_t lock;
	int mode;
	struct uzswap conn;
	int memfd;
	struct uzi_table t;
	size_t nrec;
	uint64_t min_region;
	uint64_t max_resident;
	bool strict, quiet, warned;
	bool over_quota;
	pid_t pid;
	struct uzi_fork_state fork;
	struct uzi_counters counters;
};

extern struct uzi_state uzi;

/* interpose.c */

/* The process's sparse memfd (UZI_MEMFD_SIZE bytes, close-on-exec); fd or -errno. */
int uzi_make_memfd(void);
/* Connect if not yet (uzi.lock held): true when mappings can be managed. */
bool uzi_ensure_connected(void);
/*
 * A request to the daemon failed with @err because the daemon is gone:
 * with managed memory held the process stops (never reads zeros where its
 * data was); else uzswap is off for good.  uzi.lock held.
 */
void uzi_conn_failed(int err);
/* One line on stderr, "uzswap: ...", unless quiet (async-signal-safe). */
void uzi_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* uzi_table.c */

/* Index of the first record ending after @addr (0..n). */
size_t uzi_table_first_after(const struct uzi_table *t, uintptr_t addr);
/* Does any record overlap [addr, addr + len)? */
bool uzi_table_overlaps(const struct uzi_table *t, uintptr_t addr, size_t len);
/* The record containing @addr, or NULL. */
struct uzi_rec *uzi_table_find(struct uzi_table *t, uintptr_t addr);
/* Make sure a record boundary falls at @addr (splitting one); 0 or -ENOMEM. */
int uzi_table_split_at(struct uzi_table *t, uintptr_t addr);
/* Insert @r (disjoint from every record); 0 or -ENOMEM. */
int uzi_table_insert(struct uzi_table *t, const struct uzi_rec *r);
/* Remove record @i. */
void uzi_table_remove(struct uzi_table *t, size_t i);
/* Reserve room for @extra more records; 0 or -ENOMEM. */
int uzi_table_reserve(struct uzi_table *t, size_t extra);
/* A free slot (its refs set to 0): 0 or -ENOSPC/-ENOMEM. */
int uzi_slot_alloc(struct uzi_table *t, uint32_t *slot);
/* A record of @slot was added (+1) or removed (-1); the slot frees at 0. */
void uzi_slot_ref(struct uzi_table *t, uint32_t slot, int delta);
/* Is [off, off + len) of the memfd used by a record other than @self? */
bool uzi_table_file_busy(const struct uzi_table *t, uint64_t off, size_t len,
			 const struct uzi_rec *self);

static inline uint32_t uzi_slot_of(uint64_t off)
{
	return (uint32_t)(off >> UZI_SLOT_SHIFT);
}

/* uzi_map.c */

/*
 * Turn the fresh anonymous mapping [addr, addr + len) into a managed one
 * (uzi.lock held).  0, or a negative errno with [addr, addr + len) still an
 * ordinary anonymous mapping of protection @prot (and @flags' NORESERVE).
 */
int uzi_map_manage(uintptr_t addr, size_t len, int prot, int flags);
/*
 * [addr, addr + len) is about to stop being managed memory (munmap, a
 * MAP_FIXED over it, mremap's released part): the daemon forgets it.
 * uzi.lock held; then the caller changes the mapping and calls
 * uzi_map_forget() for the same range.
 */
int uzi_map_release(uintptr_t addr, size_t len);
/* After the mapping changed: records trimmed, file pages punched, slots freed. */
void uzi_map_forget(uintptr_t addr, size_t len);
/* madvise(DONTNEED/FREE) on managed [addr, addr + len): a hole punch the daemon sees. */
int uzi_map_drop(uintptr_t addr, size_t len);
/* mprotect succeeded on [addr, addr + len): records split, prot noted. */
void uzi_map_protect(uintptr_t addr, size_t len, int prot);
/* madvise fork flags on managed memory: noted in the records. */
void uzi_map_fork_flags(uintptr_t addr, size_t len, unsigned int set, unsigned int clear);
/* mremap of managed memory (uzi.lock held); the wrapper's return value. */
void *uzi_map_remap(uintptr_t old, size_t old_len, size_t new_len, int flags, uintptr_t new_addr);

/* uzi_fork.c */

/* Register our handlers with glibc: first of all, so they run closest to the fork. */
void uzi_fork_register(void);

/* uzi_watch.c */

/*
 * Start watching uzi.conn's socket from a thread made with clone(2), which
 * calls nothing but raw system calls (it may start inside a fork child
 * handler, where malloc and pthread_create are off limits).  0 or -errno.
 */
int uzi_watch_start(void);
/* Set by the watcher once the daemon hung up (see uzi_watch.c on the race). */
extern int uzi_watch_dead;

#endif /* UZSWAP_CLIENT_UZI_H */
