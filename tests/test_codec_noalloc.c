/* SPDX-License-Identifier: MIT */
/*
 * tests/test_codec_noalloc.c - once a context exists, compressing and
 * decompressing pages allocates nothing: codec state is made once per
 * thread and reused (a fault must not wait on the heap, and a page must not
 * cost a 100 KiB zstd context).
 *
 * Allocations are counted while a switch is on.  In the plain build this
 * program defines malloc and friends itself, forwarding to glibc; the
 * dynamic linker makes liblz4 and libzstd call them too.  Under
 * AddressSanitizer, which owns malloc, it installs the sanitizer's malloc
 * hook instead.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress/codec.h"
#include "tests/tap.h"

#define CYCLES 2000

static volatile unsigned long allocations;
static volatile int counting;

/* gcc says __SANITIZE_ADDRESS__; clang says __has_feature(address_sanitizer). */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UZ_ASAN 1
#endif

#ifdef UZ_ASAN
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));

static void count_malloc(const volatile void *p, size_t n)
{
	(void)p;
	(void)n;
	if (counting)
		allocations++;
}

static void ignore_free(const volatile void *p)
{
	(void)p;
}

static int install_counter(void)
{
	return __sanitizer_install_malloc_and_free_hooks(count_malloc, ignore_free) ? 0 : -ENOSYS;
}
#else
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);

static void *counted(void *p)
{
	if (counting)
		allocations++;
	return p;
}

void *malloc(size_t n)
{
	return counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t size)
{
	return counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t n)
{
	return counted(__libc_realloc(p, n));
}

void *aligned_alloc(size_t align, size_t n)
{
	return counted(__libc_memalign(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = counted(__libc_memalign(align, n));

	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

static int install_counter(void)
{
	return 0;
}
#endif

static void fill_page(unsigned char *p, unsigned seed)
{
	for (size_t i = 0; i < UZC_PAGE_SIZE; i++)
		p[i] = (unsigned char)("page fault ratio zstd "[(i * seed + i / 97) % 22]);
}

/* A page compressed by each real codec, made before counting starts. */
struct foreign {
	unsigned char buf[2][UZC_PAGE_SIZE];
	size_t len[2];
	enum uzc_codec_id id[2];
};

static int make_foreign(const unsigned char *page, struct foreign *f)
{
	static const char *const names[] = { "lz4", "zstd" };

	for (int i = 0; i < 2; i++) {
		struct uzc_spec spec;
		struct uzc_ctx *ctx = NULL;
		ssize_t len = -EINVAL;

		if (!uzc_spec_parse(names[i], 0, &spec) &&
		    !uzc_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &ctx))
			len = uzc_compress(ctx, page, f->buf[i], UZC_PAGE_SIZE);
		uzc_ctx_free(ctx);
		if (len <= 0)
			return -EINVAL;
		f->len[i] = (size_t)len;
		f->id[i] = spec.id;
	}
	return 0;
}

/* Count allocations over CYCLES pages; *bad counts pages that did not round-trip. */
static unsigned long count_during_cycles(struct uzc_ctx *ctx, const unsigned char *page,
					 const struct foreign *f, int *bad)
{
	unsigned char dst[UZC_PAGE_SIZE], back[UZC_PAGE_SIZE], other[UZC_PAGE_SIZE];
	unsigned long before;

	memcpy(other, page, UZC_PAGE_SIZE);
	*bad = 0;
	before = allocations;
	counting = 1;
	for (int i = 0; i < CYCLES; i++) {
		const unsigned char *src = i % 2 ? other : page;
		ssize_t len;

		other[i % UZC_PAGE_SIZE] ^= 0x5a;
		len = uzc_compress(ctx, src, dst, sizeof(dst));
		if (len <= 0 || uzc_decompress(ctx, uzc_ctx_spec(ctx).id, dst, (size_t)len, back) ||
		    memcmp(back, src, UZC_PAGE_SIZE))
			(*bad)++;
		/* Loading a page of another codec must not build that codec's state now. */
		if (uzc_decompress(ctx, f->id[i % 2], f->buf[i % 2], f->len[i % 2], back) ||
		    memcmp(back, page, UZC_PAGE_SIZE))
			(*bad)++;
	}
	counting = 0;
	return allocations - before;
}

static void test_counter_sees_allocations(void)
{
	/* volatile: the compiler may otherwise drop a malloc whose result is unused. */
	static void *volatile sink;
	unsigned long before = allocations;

	counting = 1;
	sink = malloc(64);
	counting = 0;
	ok(allocations == before + 1, "the allocation counter sees a malloc (%lu counted)",
	   allocations - before);
	free(sink);
}

int main(void)
{
	static const char *const names[] = { "lz4", "lz4hc", "zstd" };
	unsigned char page[UZC_PAGE_SIZE];
	static struct foreign f;

	if (install_counter())
		tap_skip_all("no way to count allocations in this build");
	test_counter_sees_allocations();
	fill_page(page, 7);
	if (!ok(make_foreign(page, &f) == 0, "a page compresses with lz4 and with zstd"))
		return tap_done();
	for (size_t i = 0; i < 3; i++) {
		struct uzc_spec spec;
		struct uzc_ctx *ctx = NULL;
		unsigned long n = 0;
		int bad = 0, err = uzc_spec_parse(names[i], 0, &spec);

		if (!err)
			err = uzc_ctx_new(&spec, UZC_DEFAULT_MAX_LEN, &ctx);
		if (!err)
			n = count_during_cycles(ctx, page, &f, &bad);
		ok(!err && n == 0 && bad == 0,
		   "%s: a new context's first %d compress and decompress cycles allocate nothing "
		   "(%lu allocations, %d pages wrong)",
		   names[i], CYCLES, n, bad);
		uzc_ctx_free(ctx);
	}
	return tap_done();
}
