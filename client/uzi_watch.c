/* SPDX-License-Identifier: MIT */
/*
 * client/uzi_watch.c - stop the process when uzswapd goes away while it
 * holds managed memory (the interposer's form of client/watch.c).
 *
 * Once the daemon is gone, the pages it evicted are gone and a thread that
 * touches one blocks for ever in a fault nobody serves (our copy of the
 * userfaultfd keeps the registration, so it never reads zeros: design.md
 * §1).  So the process must stop at once, with a clear line on stderr and
 * exit status UZSWAP_EXIT_DAEMON_GONE.  A process that holds no managed
 * memory loses nothing: uzswap just turns itself off.
 *
 * The watcher is a thread made with clone(2), not pthread_create: a fork
 * child starts its own watcher from the atfork child handler, where malloc
 * (which pthread_create needs) may deadlock on locks the parent held.  It
 * runs on a stack mapped here and on the TLS of the thread that made it, so
 * it calls nothing that reads or writes thread-local state: raw system
 * calls only (uzi_sys.h), and no sanitizer instrumentation.  Every signal is
 * blocked in it, so the program's handlers run elsewhere; exit_group ends
 * the whole process.  It is never stopped: exec and exit end it.
 *
 * Held memory and the hangup race: the watcher sets uzi_watch_dead, then
 * looks at uzi.nrec; uzi_map_manage() adds its record, then looks at
 * uzi_watch_dead.  With a full barrier between each store and load, one of
 * the two sees the other, so a record made as the daemon dies still stops
 * the process.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "client/uzi.h"
#include "client/uzi_sys.h"

#define WATCH_STACK (64 * 1024)
#define NOSAN __attribute__((no_sanitize("address", "undefined", "thread")))

int uzi_watch_dead;

static struct {
	int sock;
	char line[UZS_ERROR_MAX + 160]; /* the message, up to the detail */
	size_t len;
} watch;

/* memcpy without a call: nothing in the watcher may be intercepted or instrumented. */
NOSAN static size_t put(char *dst, size_t at, size_t cap, const char *src, size_t n)
{
	for (size_t i = 0; i < n && at < cap; i++)
		dst[at++] = src[i];
	return at;
}

NOSAN static size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

/* A SHUTDOWN still queued says why the daemon went: its text, or nothing. */
NOSAN static size_t farewell(char *buf, size_t cap)
{
	union {
		struct uzp_header h;
		unsigned char b[UZP_DATAGRAM_MAX];
	} m;
	struct uzp_shutdown s;
	long n = uzi_raw6(SYS_recvfrom, watch.sock, (long)m.b, sizeof(m.b), MSG_DONTWAIT, 0, 0);
	size_t at = 0;

	/* Consumed, not peeked: the process is ending. */
	if (n < (long)(sizeof(m.h) + sizeof(s)) || m.h.magic != UZP_MAGIC ||
	    m.h.type != UZP_SHUTDOWN)
		return 0;
	for (size_t i = 0; i < sizeof(s); i++)
		((unsigned char *)&s)[i] = m.b[sizeof(m.h) + i];
	if (s.message_length > n - (long)(sizeof(m.h) + sizeof(s)))
		return 0;
	at = put(buf, at, cap, ": it said \"", 11);
	at = put(buf, at, cap, (const char *)m.b + sizeof(m.h) + sizeof(s), s.message_length);
	return put(buf, at, cap, "\"", 1);
}

NOSAN static int watch_main(void *arg)
{
	struct pollfd p = { .fd = watch.sock, .events = POLLRDHUP };
	static const char gone[] = "; its evicted memory is gone: stopping it\n";
	char tail[UZP_MESSAGE_MAX + 64];
	size_t n;

	(void)arg;
	for (;;) {
		p.revents = 0;
		if (uzi_raw3(SYS_poll, (long)&p, 1, -1) > 0 &&
		    (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
			break;
	}
	__atomic_store_n(&uzi_watch_dead, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&uzi.nrec, __ATOMIC_SEQ_CST) == 0) {
		/* Nothing held: no more managed memory, and nothing lost. */
		__atomic_store_n(&uzi.mode, UZI_OFF, __ATOMIC_RELEASE);
		uzi_raw3(SYS_exit, 0, 0, 0);
	}
	n = farewell(tail, sizeof(tail));
	uzi_raw3(SYS_write, 2, (long)watch.line, (long)watch.len);
	uzi_raw3(SYS_write, 2, (long)tail, (long)n);
	uzi_raw3(SYS_write, 2, (long)gone, sizeof(gone) - 1);
	for (;;)
		uzi_raw3(SYS_exit_group, UZSWAP_EXIT_DAEMON_GONE, 0, 0);
	return 0;
}

int uzi_watch_start(void)
{
	sigset_t all, old;
	void *stack;
	int tid;

	watch.sock = uzi.conn.sock;
	snprintf(watch.line, sizeof(watch.line), "uzswap: pid %d: uzswapd (%s) went away",
		 (int)uzi.pid, uzi.conn.path);
	watch.len = slen(watch.line);
	stack = uzi_sys_mmap(NULL, WATCH_STACK, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -errno;
	__atomic_store_n(&uzi_watch_dead, 0, __ATOMIC_SEQ_CST);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	tid = clone(watch_main, (char *)stack + WATCH_STACK,
		    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			    CLONE_SYSVSEM,
		    NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (tid < 0) {
		int err = -errno;

		uzi_sys_munmap(stack, WATCH_STACK);
		return err;
	}
	return 0;
}
