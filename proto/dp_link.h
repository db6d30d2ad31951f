/*  =========================================================================
    dp_link - an intrusive doubly-linked ring with a sentinel head

    Shared by the broker (jobs, chunks, workers) and the client (jobs,
    results): O(1) insert and unlink from anywhere, no allocation. A link
    that is on no list points to itself.
    =========================================================================
*/
#ifndef DP_LINK_H_INCLUDED
#define DP_LINK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct link {
    struct link *prev, *next;
} link_t;

static inline void link_init (link_t *head) { head->prev = head->next = head; }
static inline bool link_empty (const link_t *head) { return head->next == head; }
static inline bool link_linked (const link_t *item) { return item->next != item; }

//  Insert item just before `at` (before the head: at the tail).
static inline void
link_insert_before (link_t *at, link_t *item)
{
    item->next = at;
    item->prev = at->prev;
    at->prev->next = item;
    at->prev = item;
}

static inline void
link_append (link_t *head, link_t *item)
{
    link_insert_before (head, item);
}

static inline void
link_remove (link_t *item)
{
    item->prev->next = item->next;
    item->next->prev = item->prev;
    item->prev = item->next = item;
}

#define link_entry(ptr, type, member) ((type *) ((char *) (ptr) - offsetof (type, member)))

#endif
