/* SPDX-License-Identifier: MIT */
/*
 * daemon/fthread.h - the fault threads: wait on clients' userfaultfds and
 * drain them (daemon/fault.c does the serving).
 *
 * fault_threads threads (config), each with its own epoll set and fault
 * context; every client is given to one of them, the one with the fewest
 * clients, for its whole life, so one client's events and faults are
 * always handled by one thread in order (fault.c relies on it: a drop of
 * a range and a restore in it never run at once).  Control traffic runs on
 * the server's libuv loop and never delays a fault: the only thing the
 * server asks a fault thread is to take a client or let it go, through a
 * command queue and an eventfd in the thread's epoll set.
 *
 * Before draining a client the thread asks @before whether to hold its
 * faults back for a moment (the server throttles a client far over its
 * budget, daemon/server.c); after draining, it calls @after (the server
 * kicks reclaim when the client is over its high watermark).
 */
#ifndef UZSWAP_DAEMON_FTHREAD_H
#define UZSWAP_DAEMON_FTHREAD_H

#include "compress/codec.h"
#include "daemon/client.h"

struct uzd_fthreads;

/*
 * Before draining a client: 0 to serve it now, or a delay in ns during
 * which its faults wait (throttling a client that outruns reclaim).
 */
typedef uint64_t (*uzd_fthread_before_fn)(void *arg, struct uzd_client *c);
typedef void (*uzd_fthread_after_fn)(void *arg, struct uzd_client *c);

/*
 * Start @n threads, each reading ahead 2^@page_cluster pages per pool fault
 * (daemon/fault.h).  -ENOMEM, -EMFILE..., -EINVAL, or the codec's error.
 */
int uzd_fthreads_start(unsigned int n, const struct uzc_spec *spec, unsigned int page_cluster,
		       uzd_fthread_before_fn before, uzd_fthread_after_fn after, void *arg,
		       struct uzd_fthreads **out);

/* A client's membership of a thread, from add to remove. */
struct uzd_fthread_member;

/*
 * Hand client @c (its uffd set) to the least loaded thread, which takes a
 * reference; *@m names the membership for uzd_fthreads_remove().
 * -ENOMEM, or -errno from epoll_ctl.
 */
int uzd_fthreads_add(struct uzd_fthreads *ft, struct uzd_client *c, struct uzd_fthread_member **m);

/*
 * The thread stops watching the client and drops its reference, on its
 * next wake-up; this returns at once and cannot fail (add reserved all it
 * needs).  @m is gone after the call.
 */
void uzd_fthreads_remove(struct uzd_fthreads *ft, struct uzd_fthread_member *m);

/*
 * Readahead of 2^@page_cluster pages from now on (a reload; any thread):
 * each thread takes the value at its next wake-up, which this causes, and
 * applies it to its own fault context, so no context is changed under a
 * fault being served.  -EINVAL above UZD_FAULT_MAX_CLUSTER.
 */
int uzd_fthreads_set_cluster(struct uzd_fthreads *ft, unsigned int page_cluster);

/*
 * How long, in µs, a thread polls its clients after a batch that served
 * faults, before it sleeps (0: never); any thread, taken at the next batch.
 */
void uzd_fthreads_set_busy_poll(struct uzd_fthreads *ft, unsigned int us);

/* Stop and join every thread; each drops the references it holds. */
void uzd_fthreads_stop(struct uzd_fthreads *ft);

#endif /* UZSWAP_DAEMON_FTHREAD_H */
