/*  runtime/u64map.h - a hash map from uint64 keys to pointers (request ids -> state).
 *
 *  Open addressing with linear probing and backward-shift deletion; grows at 1/2 load.
 *  Key 0 is reserved (never a valid key). Owns its table, not the values.
 *  Thread: none; a map belongs to one actor.
 *
 *      tr_u64map_t m;
 *      tr_u64map_init(&m);
 *      tr_u64map_put(&m, rid, req);
 *      req_t *r = tr_u64map_get(&m, rid);
 *      tr_u64map_del(&m, rid);
 *      tr_u64map_fini(&m);                                                               */
#ifndef TR_U64MAP_H
#define TR_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys;   /* owned; 0 = empty slot */
    void **vals;      /* owned array; the values are borrowed */
    size_t cap;       /* power of two, or 0 */
    size_t n;
} tr_u64map_t;

void tr_u64map_init(tr_u64map_t *m);
void tr_u64map_fini(tr_u64map_t *m);
/* The value under key, or NULL. */
void *tr_u64map_get(const tr_u64map_t *m, uint64_t key);
/* Inserts or replaces. TR_OK, TR_ENOMEM, TR_EINVAL (key 0). */
int tr_u64map_put(tr_u64map_t *m, uint64_t key, void *val);
/* Removes key; returns its value or NULL. */
void *tr_u64map_del(tr_u64map_t *m, uint64_t key);

/* Iteration: for (size_t i = 0; i < m.cap; i++) if (m.keys[i]) ... m.vals[i]; do not put or
 * del while iterating (collect the keys first). */

#endif
