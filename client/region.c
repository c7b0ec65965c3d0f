/* SPDX-License-Identifier: MIT */
/*
 * client/region.c - managed regions: memory whose cold pages uzswapd keeps.
 *
 * A region is a memfd, mapped once MAP_SHARED and registered MISSING|WP
 * with the connection's userfaultfd, then handed to the daemon with
 * REGISTER (design.md §1: the daemon can drop a page of shared memory by
 * punching the memfd, never one of private anonymous memory).  Creation
 * runs memfd -> size -> map -> register -> REGISTER; a failure undoes the
 * steps done, in reverse.  Release runs UNREGISTER -> unregister -> unmap.
 *
 * The memfd: the daemon receives its own copy with REGISTER, and the
 * mapping keeps the memory alive here, so the library closes its copy as
 * soon as REGISTER succeeds and keeps only (addr, length) per region in
 * u->regions.  That costs no descriptor per region, and leaves no second
 * way to write a region's pages: a write through another mapping or by
 * pwrite(2) would bypass the daemon's eviction fence (design.md §1).
 *
 * Locking: u->regions changes only under u->lock, in the same critical
 * section as the REGISTER or UNREGISTER that makes it true, so the watcher
 * (watch.c) always sees whether the daemon holds any of our memory.
 *
 * Never: map a region's memfd twice; munmap a range still registered with
 * the userfaultfd when the daemon may be gone (munmap waits for the UNMAP
 * event to be read, and nobody would read it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/internal.h"
#include "client/uffd.h"

/* Linux 6.3; the Debian 12 headers predate it. */
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

static const char *shown(const char *rname)
{
	return rname[0] ? rname : "(unnamed)";
}

/*
 * A memfd that can never be made executable: with vm.memfd_noexec = 2 the
 * kernel refuses any other kind.  Kernels before 6.3 do not know the flag
 * (EINVAL) and have nothing to refuse.
 */
static int memfd_noexec(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_NOEXEC_SEAL);

	if (fd < 0 && errno == EINVAL)
		fd = memfd_create(name, MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Round @length up to pages and copy @name into @rname: 0 or -EINVAL. */
static int region_args(struct uzswap *u, size_t *length, const char *name, char rname[UZP_NAME_MAX])
{
	size_t pg = (size_t)u->page_size;
	size_t n = name ? strnlen(name, UZP_NAME_MAX) : 0;

	memset(rname, 0, UZP_NAME_MAX);
	if (n)
		memcpy(rname, name, n < UZP_NAME_MAX ? n : UZP_NAME_MAX - 1);
	if (n == UZP_NAME_MAX)
		return uzs_fail(u, -EINVAL, "region name \"%s...\" is longer than %d bytes", rname,
				UZP_NAME_MAX - 1);
	if (*length == 0 || *length > SIZE_MAX - (pg - 1))
		return uzs_fail(u, -EINVAL, "region %s: invalid length %zu", shown(rname), *length);
	*length = (*length + pg - 1) & ~(pg - 1);
	return 0;
}

/* memfd, sized and mapped: *@memfd and *@map, or a negative errno. */
static int region_map(struct uzswap *u, size_t length, const char *rname, int *memfd, void **map)
{
	char mname[sizeof("uzswap:") + UZP_NAME_MAX];
	void *p;
	int fd, err;

	snprintf(mname, sizeof(mname), "uzswap:%s", rname);
	fd = memfd_noexec(mname);
	if (fd < 0)
		return uzs_fail(u, fd, "region %s: memfd_create: %s", shown(rname), strerror(-fd));
	if (ftruncate(fd, (off_t)length) < 0) {
		err = -errno;
		uzs_fail(u, err, "region %s: cannot size a memfd to %zu bytes: %s", shown(rname),
			 length, strerror(-err));
		goto err_close;
	}
	p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		err = -errno;
		uzs_fail(u, err, "region %s: cannot map %zu bytes: %s", shown(rname), length,
			 strerror(-err));
		goto err_close;
	}
	*memfd = fd;
	*map = p;
	return 0;

err_close:
	close(fd);
	return err;
}

/* REGISTER, and on success make the region the caller's, in one critical section. */
static int region_register(struct uzswap *u, struct uzs_region *r, int memfd, const char *rname)
{
	struct uzp_register req = {
		.addr = r->addr,
		.length = r->length,
		.memfd_offset = 0,
	};
	struct uzp_registered ok;
	int err;

	memcpy(req.name, rname, UZP_NAME_MAX);
	pthread_mutex_lock(&u->lock);
	err = uzs_conn_request(u, UZP_REGISTER, &req, sizeof(req), memfd, &ok, sizeof(ok), NULL);
	if (err == 0) {
		r->id = ok.region_id;
		r->next = u->regions;
		u->regions = r;
	}
	pthread_mutex_unlock(&u->lock);
	return err;
}

int uzswap_region_create(struct uzswap *u, size_t length, const char *name, void **addr)
{
	char rname[UZP_NAME_MAX];
	struct uzs_region *r;
	void *map = NULL;
	int memfd = -1, err;

	if (!u || !addr)
		return -EINVAL;
	err = region_args(u, &length, name, rname);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return uzs_fail(u, -ENOMEM, "region %s: out of memory", shown(rname));
	err = region_map(u, length, rname, &memfd, &map);
	if (err)
		goto err_free;
	r->addr = (uintptr_t)map;
	r->length = length;
	err = uzs_uffd_register(u->uffd, r->addr, length, UZP_UFFD_REGISTER_MODES, NULL);
	if (err) {
		uzs_fail(u, err,
			 "region %s: cannot register %zu bytes at %p with the userfaultfd: %s",
			 shown(rname), length, map, strerror(-err));
		goto err_unmap;
	}
	err = region_register(u, r, memfd, rname);
	if (err)
		goto err_unregister;
	close(memfd);
	*addr = map;
	return 0;

err_unregister:
	uzs_uffd_unregister(u->uffd, r->addr, length);
err_unmap:
	munmap(map, length);
	close(memfd);
err_free:
	free(r);
	return err;
}

/*
 * Under u->lock: the daemon forgets the region.  Its -ENOENT means it holds
 * nothing of that range (the program unmapped it, say): nothing is lost by
 * unmapping it here too.
 */
static int region_unregister(struct uzswap *u, const struct uzs_region *r)
{
	struct uzp_range req = { .addr = r->addr, .length = r->length };
	int err;

	err = uzs_conn_request(u, UZP_UNREGISTER, &req, sizeof(req), -1, NULL, 0, NULL);
	return err == -ENOENT ? 0 : err;
}

/*
 * Unregistered first, so munmap raises no UNMAP event that it would wait
 * for the daemon to read.  Only fails on arguments we made: nothing to do.
 */
static void region_unmap(struct uzswap *u, struct uzs_region *r)
{
	uzs_uffd_unregister(u->uffd, r->addr, r->length);
	munmap((void *)r->addr, r->length);
	free(r);
}

static struct uzs_region **region_find(struct uzswap *u, uintptr_t addr)
{
	struct uzs_region **link;

	for (link = &u->regions; *link; link = &(*link)->next) {
		if ((*link)->addr == addr)
			return link;
	}
	return NULL;
}

/*
 * The region leaves u->regions while UNREGISTER is in flight: if the
 * daemon goes away meanwhile, it takes nothing the program still wants,
 * and the release completes here.  A refusal puts the region back.
 */
int uzswap_region_release(struct uzswap *u, void *addr)
{
	struct uzs_region **link, *r;
	int err;

	if (!u)
		return -EINVAL;
	pthread_mutex_lock(&u->lock);
	link = region_find(u, (uintptr_t)addr);
	if (!link) {
		err = uzs_set_error(u, -ENOENT, "no region of this connection starts at %p", addr);
		pthread_mutex_unlock(&u->lock);
		return err;
	}
	r = *link;
	*link = r->next;
	err = region_unregister(u, r);
	if (err && !u->dead) {
		r->next = u->regions;
		u->regions = r;
		r = NULL;
	}
	pthread_mutex_unlock(&u->lock);
	if (!r)
		return err;
	region_unmap(u, r);
	return 0;
}

void uzs_region_release_all(struct uzswap *u)
{
	struct uzs_region *list, *r;

	pthread_mutex_lock(&u->lock);
	list = u->regions;
	u->regions = NULL;
	/* Errors do not matter: closing the socket next makes the daemon drop them all. */
	for (r = list; r; r = r->next)
		region_unregister(u, r);
	pthread_mutex_unlock(&u->lock);
	while ((r = list)) {
		list = r->next;
		region_unmap(u, r);
	}
}
