/*  actors/kv_pool.c - see kv_pool.h. The free list is a stack: a freed block is reused
 *  first (its memory is warm in the executor's caches). */
#include "actors/kv_pool.h"

#include <stdlib.h>

#include "runtime/status.h"

struct tr_kv_pool {
    int32_t n_blocks, block_size;
    int32_t *free;     /* owned: stack of free ids, n_free of them */
    int32_t n_free;
    int32_t *refs;     /* owned: (n_blocks) reference counts */
};

tr_kv_pool_t *tr_kv_pool_new(int32_t n_blocks, int32_t block_size) {
    if (n_blocks < 1 || block_size < 1) return NULL;
    tr_kv_pool_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->free = malloc((size_t)n_blocks * sizeof *self->free);
    self->refs = calloc((size_t)n_blocks, sizeof *self->refs);
    if (!self->free || !self->refs) {
        tr_kv_pool_destroy(&self);
        return NULL;
    }
    self->n_blocks = n_blocks;
    self->block_size = block_size;
    for (int32_t i = 0; i < n_blocks; i++) self->free[i] = n_blocks - 1 - i; /* 0 on top */
    self->n_free = n_blocks;
    return self;
}

void tr_kv_pool_destroy(tr_kv_pool_t **self_p) {
    tr_kv_pool_t *self = *self_p;
    if (!self) return;
    free(self->free);
    free(self->refs);
    free(self);
    *self_p = NULL;
}

int32_t tr_kv_pool_n_blocks(const tr_kv_pool_t *self) { return self->n_blocks; }
int32_t tr_kv_pool_block_size(const tr_kv_pool_t *self) { return self->block_size; }
int32_t tr_kv_pool_n_free(const tr_kv_pool_t *self) { return self->n_free; }

int32_t tr_kv_pool_blocks_for(const tr_kv_pool_t *self, int64_t n_tokens) {
    return (int32_t)((n_tokens + self->block_size - 1) / self->block_size);
}

int tr_kv_pool_alloc(tr_kv_pool_t *self, int32_t n, int32_t *ids) {
    if (n < 0) return TR_EINVAL;
    if (n > self->n_free) return TR_ENOMEM;
    for (int32_t i = 0; i < n; i++) {
        int32_t id = self->free[--self->n_free];
        self->refs[id] = 1;
        ids[i] = id;
    }
    return TR_OK;
}

int tr_kv_pool_ref(tr_kv_pool_t *self, const int32_t *ids, int32_t n) {
    int rc = TR_OK;
    for (int32_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= self->n_blocks || self->refs[ids[i]] == 0) rc = TR_EINVAL;
        else self->refs[ids[i]]++;
    }
    return rc;
}

int tr_kv_pool_unref(tr_kv_pool_t *self, const int32_t *ids, int32_t n) {
    int rc = TR_OK;
    for (int32_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= self->n_blocks || self->refs[id] == 0) {
            rc = TR_EINVAL;
            continue;
        }
        if (--self->refs[id] == 0) self->free[self->n_free++] = id;
    }
    return rc;
}

int32_t tr_kv_pool_refs(const tr_kv_pool_t *self, int32_t id) {
    return id < 0 || id >= self->n_blocks ? -1 : self->refs[id];
}
