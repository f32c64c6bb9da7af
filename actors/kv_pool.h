/*  actors/kv_pool.h - logical KV blocks: a free list and reference counts.
 *
 *  The kv_manager's accounting of the executor's physical KV memory: n_blocks blocks of
 *  block_size tokens, identified by their index (the executors index the same physical
 *  blocks). A block is free when its reference count is 0. Blocks are shared by raising
 *  their count (prefix caching, forked sequences), released with unref. This is the seam
 *  for the prefix cache (a block-hash chain over full blocks kept with count 0 in an LRU
 *  instead of the free list) and for a host tier (swap lists).
 *
 *  Owns: its arrays. Thread: one (the kv_manager's).
 *
 *      tr_kv_pool_t *p = tr_kv_pool_new(1024, 16);
 *      int32_t ids[4];
 *      if (tr_kv_pool_alloc(p, 4, ids) == TR_OK) ...;      // all or nothing
 *      tr_kv_pool_unref(p, ids, 4);
 *      tr_kv_pool_destroy(&p);                                                          */
#ifndef TR_KV_POOL_H
#define TR_KV_POOL_H

#include <stdint.h>

typedef struct tr_kv_pool tr_kv_pool_t;

/* NULL on bad sizes or out of memory. */
tr_kv_pool_t *tr_kv_pool_new(int32_t n_blocks, int32_t block_size);
void tr_kv_pool_destroy(tr_kv_pool_t **self_p);

int32_t tr_kv_pool_n_blocks(const tr_kv_pool_t *self);
int32_t tr_kv_pool_block_size(const tr_kv_pool_t *self);
int32_t tr_kv_pool_n_free(const tr_kv_pool_t *self);
/* Blocks needed to hold n_tokens tokens. */
int32_t tr_kv_pool_blocks_for(const tr_kv_pool_t *self, int64_t n_tokens);

/* Takes n free blocks (reference count 1 each) into ids, or none: TR_ENOMEM. */
int tr_kv_pool_alloc(tr_kv_pool_t *self, int32_t n, int32_t *ids);
/* Adds a reference to each block (they must be in use). TR_EINVAL for a free or bad id. */
int tr_kv_pool_ref(tr_kv_pool_t *self, const int32_t *ids, int32_t n);
/* Drops a reference from each block; a block whose count reaches 0 is free again.
 * TR_EINVAL (and nothing changed for that id) for a free or bad id. */
int tr_kv_pool_unref(tr_kv_pool_t *self, const int32_t *ids, int32_t n);
/* The reference count of a block (0: free), -1 for a bad id. */
int32_t tr_kv_pool_refs(const tr_kv_pool_t *self, int32_t id);

#endif
