/* SPDX-License-Identifier: MIT */
/*
 * alloc/list.h - circular doubly linked lists embedded in their elements,
 * as in the kernel: O(1) insert and unlink with no allocation, which pool
 * code needs on every malloc and free.  An unlinked node points to itself,
 * so list_linked() tells whether a node is on some list.
 */
#ifndef UZSWAP_ALLOC_LIST_H
#define UZSWAP_ALLOC_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
	struct list_node *next, *prev;
};

#define list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

static inline void list_init(struct list_node *n)
{
	n->next = n->prev = n;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

static inline bool list_linked(const struct list_node *n)
{
	return n->next != n;
}

static inline void list_insert_after(struct list_node *n, struct list_node *at)
{
	n->prev = at;
	n->next = at->next;
	at->next->prev = n;
	at->next = n;
}

/* Front of the list: the most recently used end, for LRUs. */
static inline void list_add(struct list_node *n, struct list_node *head)
{
	list_insert_after(n, head);
}

static inline void list_add_tail(struct list_node *n, struct list_node *head)
{
	list_insert_after(n, head->prev);
}

static inline void list_del(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

#endif /* UZSWAP_ALLOC_LIST_H */
