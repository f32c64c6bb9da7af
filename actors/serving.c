/*  actors/serving.c - see serving.h. */
#include "actors/serving.h"

#include <stdlib.h>
#include <string.h>

#ifndef TR_DEFAULT_MODEL
#define TR_DEFAULT_MODEL "tests/data/models/stories260K.bin"
#endif

const char *tr_finish_name(int32_t finish) {
    static const char *const names[] = {NULL, "stop", "length", "abort", "error"};
    return finish > 0 && finish < (int32_t)TR_ARRAY_LEN(names) ? names[finish] : NULL;
}

int tr_serving_count(const tr_topology_t *topo, const char *kind) {
    int n = 0;
    for (int i = 0; i < topo->n_actors; i++) n += strcmp(topo->actors[i].kind, kind) == 0;
    return n;
}

const char *tr_serving_name(const tr_topology_t *topo, const char *kind, int k) {
    for (int i = 0; i < topo->n_actors; i++)
        if (strcmp(topo->actors[i].kind, kind) == 0 && k-- == 0) return topo->actors[i].name;
    return NULL;
}

const char *tr_serving_model(const tr_topology_t *topo) {
    if (topo->model[0]) return topo->model;
    const char *env = getenv("TROUPE_MODEL");
    return env && *env ? env : TR_DEFAULT_MODEL;
}

void tr_buf_init(tr_buf_t *b) {
    *b = (tr_buf_t){0};
}

void tr_buf_fini(tr_buf_t *b) {
    free(b->p);
    *b = (tr_buf_t){0};
}

int tr_buf_put(tr_buf_t *b, const void *data, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return TR_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n && data) memcpy(b->p + b->n, data, n);
    else if (n) memset(b->p + b->n, 0, n);
    b->n += n;
    return TR_OK;
}

int tr_buf_i32(tr_buf_t *b, int32_t v) { return tr_buf_put(b, &v, 4); }
int tr_buf_i64(tr_buf_t *b, int64_t v) { return tr_buf_put(b, &v, 8); }
int tr_buf_f32(tr_buf_t *b, float v) { return tr_buf_put(b, &v, 4); }
