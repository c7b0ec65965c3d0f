/* SPDX-License-Identifier: MIT */
/*
 * tools/ctl_format.h - check and print the daemon's state for uzswapctl.
 *
 * uzswapctl reads the bytes STATUS wrote into its memfd (include/
 * uzswap_proto.h: one struct uzp_status, then its clients, then their
 * regions) and hands them here.  uzctl_status_parse() checks that the
 * buffer is exactly what the header says it is and returns a view into
 * it; the printers take only a view, so they never see a buffer that was
 * not checked.  Kept apart from the tool's socket code so that
 * tests/test_ctl_format.c can feed it synthetic buffers.
 */
#ifndef UZSWAP_TOOLS_CTL_FORMAT_H
#define UZSWAP_TOOLS_CTL_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "include/uzswap_proto.h"

/* The page size the daemon counts in (compression ratio, table sizes). */
#define UZCTL_PAGE_SIZE 4096u

/*
 * A checked status buffer.  Pointers into the caller's buffer, which must
 * outlive the view.  Invariants: every string is NUL-terminated within its
 * array; regions are grouped by client in client order, and client i owns
 * exactly clients[i].n_regions of them.
 */
struct uzctl_status_view {
	const struct uzp_status *st;
	const struct uzp_status_client *clients; /* st->n_clients */
	const struct uzp_status_region *regions; /* st->n_regions */
};

/*
 * Check the @len bytes at @buf (8-byte aligned, as malloc returns them) and
 * fill *@v.  -EBADMSG (with one line in @err) for a buffer that is
 * truncated, oversized, of another magic or version, or inconsistent;
 * -EINVAL for a misaligned @buf.
 */
int uzctl_status_parse(const void *buf, size_t len, struct uzctl_status_view *v, char *err,
		       size_t errlen);

/*
 * The derived figures, as the table and the JSON show them; each returns
 * -1 when undefined (nothing stored, an empty pool).
 * ratio: stored_pages * page size / compressed bytes (how much the codec saves);
 * efficiency: compressed bytes / pool bytes (how densely the allocator packs).
 */
double uzctl_compression_ratio(const struct uzp_status *st);
double uzctl_pool_efficiency(const struct uzp_status *st);
/* file space ratio: disk bytes of the backing file / compressed bytes stored in it. */
double uzctl_file_space_ratio(const struct uzp_status *st);

/* Print the human tables, or one JSON object; 0 or -EIO when @f fails. */
int uzctl_print_table(FILE *f, const struct uzctl_status_view *v);
int uzctl_print_json(FILE *f, const struct uzctl_status_view *v);

/*
 * uzswapctl clients: one row (or JSON object) per client, with its pid,
 * uid, process name, budget, managed, resident and evicted memory, its
 * compressed bytes in the pool and in the file, and its faults with their
 * p99.  0 or -errno when @f fails.
 */
int uzctl_print_clients_table(FILE *f, const struct uzctl_status_view *v);
int uzctl_print_clients_json(FILE *f, const struct uzctl_status_view *v);

/*
 * uzswapctl regions PID: the regions of every client of process @pid;
 * -ESRCH (nothing printed) when the view has no client of that pid.
 */
int uzctl_print_regions_table(FILE *f, const struct uzctl_status_view *v, uint32_t pid);
int uzctl_print_regions_json(FILE *f, const struct uzctl_status_view *v, uint32_t pid);

/*
 * The pool's classes (CLASSES: struct uzp_classes then its classes),
 * checked as uzctl_status_parse() checks a status: exact length, known
 * kind, terminated name, counts that add up (no more objects used than
 * allocated, nor pages freeable than used; size classes in increasing
 * order).  -EBADMSG with @err, or -EINVAL for a misaligned @buf.
 */
struct uzctl_classes_view {
	const struct uzp_classes *hdr;
	const struct uzp_class *classes; /* hdr->n_classes */
};

int uzctl_classes_parse(const void *buf, size_t len, struct uzctl_classes_view *v, char *err,
			size_t errlen);
int uzctl_print_classes_table(FILE *f, const struct uzctl_classes_view *v);
int uzctl_print_classes_json(FILE *f, const struct uzctl_classes_view *v);

/*
 * The valid UTF-8 sequence at @s (@n bytes left): its length and code
 * point; 0 for a byte that starts none (tools/ctl_metrics.c shares it).
 */
size_t uzctl_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* @bytes as "512 B", "4.00 KiB", "12.3 MiB" into @buf (UZCTL_SIZE_BUF bytes); returns @buf. */
#define UZCTL_SIZE_BUF 32
const char *uzctl_size_str(char *buf, uint64_t bytes);

#endif /* UZSWAP_TOOLS_CTL_FORMAT_H */
