/*  runtime/u64map.c - see u64map.h. */
#include "runtime/u64map.h"

#include <stdlib.h>

#include "runtime/status.h"

static size_t s_hash(uint64_t k, size_t cap) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

void tr_u64map_init(tr_u64map_t *m) {
    *m = (tr_u64map_t){0};
}

void tr_u64map_fini(tr_u64map_t *m) {
    free(m->keys);
    free(m->vals);
    *m = (tr_u64map_t){0};
}

void *tr_u64map_get(const tr_u64map_t *m, uint64_t key) {
    if (!m->cap || !key) return NULL;
    for (size_t i = s_hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) return m->vals[i];
        if (!m->keys[i]) return NULL;
    }
}

static int s_grow(tr_u64map_t *m) {
    size_t cap = m->cap ? 2 * m->cap : 64;
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return TR_ENOMEM;
    }
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->keys[j]) continue;
        size_t i = s_hash(m->keys[j], cap);
        while (keys[i]) i = (i + 1) & (cap - 1);
        keys[i] = m->keys[j];
        vals[i] = m->vals[j];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return TR_OK;
}

int tr_u64map_put(tr_u64map_t *m, uint64_t key, void *val) {
    if (!key) return TR_EINVAL;
    if (2 * (m->n + 1) > m->cap && s_grow(m) != TR_OK) return TR_ENOMEM;
    size_t i = s_hash(key, m->cap);
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) m->n++;
    m->keys[i] = key;
    m->vals[i] = val;
    return TR_OK;
}

void *tr_u64map_del(tr_u64map_t *m, uint64_t key) {
    if (!m->cap || !key) return NULL;
    size_t mask = m->cap - 1, i = s_hash(key, m->cap);
    while (m->keys[i] != key) {
        if (!m->keys[i]) return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->vals[i];
    /* backward-shift: move later members of the probe run into the hole */
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = s_hash(m->keys[j], m->cap);
        /* j's entry may fill hole i when home is not in (i, j] cyclically */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->vals[i] = NULL;
    m->n--;
    return val;
}
