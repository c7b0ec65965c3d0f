/* SPDX-License-Identifier: MIT */
/*
 * client/uzi_sys.h - the memory system calls, made directly.
 *
 * The interposer defines mmap, munmap, mremap, mprotect and madvise; a call
 * to them from inside the interposer would come back into its own wrappers.
 * These go to the kernel through syscall(2) (errno set as libc would), and
 * uzi_raw3/6() through an inline system call instruction that touches no
 * thread-local state at all (not even errno), for the watcher thread, which
 * runs on the TLS of the thread that made it (uzi_watch.c).
 */
#ifndef UZSWAP_CLIENT_UZI_SYS_H
#define UZSWAP_CLIENT_UZI_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline void *uzi_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

static inline int uzi_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

static inline void *uzi_sys_mremap(void *old, size_t old_len, size_t new_len, int flags,
				   void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

static inline int uzi_sys_mprotect(void *addr, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, addr, len, prot);
}

static inline int uzi_sys_madvise(void *addr, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, addr, len, advice);
}

#if defined(__x86_64__)
static inline long uzi_raw6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#elif defined(__aarch64__)
static inline long uzi_raw6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;

	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
			 : "memory");
	return x0;
}
#else
#error "uzi_raw6: add the system call instruction of this architecture"
#endif

static inline long uzi_raw3(long n, long a, long b, long c)
{
	return uzi_raw6(n, a, b, c, 0, 0, 0);
}

#endif /* UZSWAP_CLIENT_UZI_SYS_H */
