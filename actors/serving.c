/*  actors/serving.c - see serving.h. */
#include "actors/serving.h"

#include "runtime/log.h"

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

/* The buffers of a tr_deltas_buf_t, for init / fini / clear. */
#define S_DELTAS_BUFS(d)                                                                   \
    {&(d)->rids,       &(d)->n_tokens,      &(d)->tokens,   &(d)->logprobs, &(d)->n_top,    \
     &(d)->top_tokens, &(d)->top_logprobs,  &(d)->finish,   &(d)->stop_token,              \
     &(d)->prompt_tokens, &(d)->queue_us,   &(d)->text,     &(d)->text_len, &(d)->stop_str}

void tr_deltas_buf_init(tr_deltas_buf_t *d) {
    tr_buf_t *b[] = S_DELTAS_BUFS(d);
    for (size_t i = 0; i < TR_ARRAY_LEN(b); i++) tr_buf_init(b[i]);
}

void tr_deltas_buf_fini(tr_deltas_buf_t *d) {
    tr_buf_t *b[] = S_DELTAS_BUFS(d);
    for (size_t i = 0; i < TR_ARRAY_LEN(b); i++) tr_buf_fini(b[i]);
}

void tr_deltas_buf_clear(tr_deltas_buf_t *d) {
    tr_buf_t *b[] = S_DELTAS_BUFS(d);
    for (size_t i = 0; i < TR_ARRAY_LEN(b); i++) tr_buf_clear(b[i]);
}

void tr_deltas_buf_send(tr_deltas_buf_t *d, tr_actor_t *actor, const char *to) {
    if (!d->rids.n) return;
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_DELTAS);
    TR_MSG_SET(&m, deltas, rids, tr_buf_bin(&d->rids));
    TR_MSG_SET(&m, deltas, n_tokens, tr_buf_i32s(&d->n_tokens));
    TR_MSG_SET(&m, deltas, tokens, tr_buf_i32s(&d->tokens));
    if (d->logprobs.n) TR_MSG_SET(&m, deltas, logprobs, tr_buf_bin(&d->logprobs));
    if (d->top_tokens.n) {
        TR_MSG_SET(&m, deltas, n_top, tr_buf_i32s(&d->n_top));
        TR_MSG_SET(&m, deltas, top_tokens, tr_buf_i32s(&d->top_tokens));
        TR_MSG_SET(&m, deltas, top_logprobs, tr_buf_bin(&d->top_logprobs));
    }
    TR_MSG_SET(&m, deltas, finish, tr_buf_i32s(&d->finish));
    TR_MSG_SET(&m, deltas, stop_token, tr_buf_i32s(&d->stop_token));
    TR_MSG_SET(&m, deltas, prompt_tokens, tr_buf_i32s(&d->prompt_tokens));
    TR_MSG_SET(&m, deltas, queue_us, tr_buf_bin(&d->queue_us));
    if (d->text_len.n) {
        TR_MSG_SET(&m, deltas, text, tr_buf_bin(&d->text));
        TR_MSG_SET(&m, deltas, text_len, tr_buf_i32s(&d->text_len));
        TR_MSG_SET(&m, deltas, stop_str, tr_buf_i32s(&d->stop_str));
    }
    int rc = tr_actor_send(actor, to, &m);
    if (rc != TR_OK) TR_ERROR("deltas to %s: %s", to, tr_strerror(rc));
}
