/*  actors/serving.h - small things the serving-path actors share.
 *
 *  Finish codes as they travel in `deltas` (the client sees their names), look-ups of
 *  actor instances by kind in the topology, the model path, and a growable byte buffer
 *  for building the arrays that messages carry as BIN / I32S.
 *  Thread: none of these keep state; a tr_buf_t belongs to one thread.               */
#ifndef TR_SERVING_H
#define TR_SERVING_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/actor.h"
#include "runtime/topology.h"
#include "transport/msg.h"

typedef enum {
    TR_FINISH_NONE = 0,   /* still running */
    TR_FINISH_STOP = 1,   /* EOS, a stop token or a stop string */
    TR_FINISH_LENGTH = 2, /* max_tokens or the context length */
    TR_FINISH_ABORT = 3,
    TR_FINISH_ERROR = 4,
} tr_finish_t;

/* "stop", "length", "abort", "error"; NULL for TR_FINISH_NONE and bad values. */
const char *tr_finish_name(int32_t finish);

/* Instances of `kind` in the topology, and the name of the i-th (NULL when out of range). */
int tr_serving_count(const tr_topology_t *topo, const char *kind);
const char *tr_serving_name(const tr_topology_t *topo, const char *kind, int i);

/* The model every actor serves: topo->model, else TROUPE_MODEL from the environment, else
 * the bundled default (tests/data/models/stories260K.bin of the source tree). */
const char *tr_serving_model(const tr_topology_t *topo);

/* ---- growable byte buffer ---- */
typedef struct {
    uint8_t *p;   /* owned */
    size_t n, cap;
} tr_buf_t;

void tr_buf_init(tr_buf_t *b);
void tr_buf_fini(tr_buf_t *b);
static inline void tr_buf_clear(tr_buf_t *b) { b->n = 0; }
/* Appends n bytes (zeros when data is NULL); TR_OK or TR_ENOMEM (the buffer is unchanged then). */
int tr_buf_put(tr_buf_t *b, const void *data, size_t n);
int tr_buf_i32(tr_buf_t *b, int32_t v);
int tr_buf_i64(tr_buf_t *b, int64_t v);
int tr_buf_f32(tr_buf_t *b, float v);
/* Views for message fields. */
static inline tr_bin_t tr_buf_bin(const tr_buf_t *b) { return (tr_bin_t){b->p, (uint32_t)b->n}; }
static inline tr_i32s_t tr_buf_i32s(const tr_buf_t *b) {
    return (tr_i32s_t){b->p, (uint32_t)(b->n / 4)};
}

/* ---- a `deltas` message being built, row by row (scheduler and tokenizer) ---- */
typedef struct {
    tr_buf_t rids, n_tokens, tokens, logprobs, n_top, top_tokens, top_logprobs, finish,
        stop_token, prompt_tokens, queue_us;
    tr_buf_t text, text_len, stop_str;   /* the tokenizer's additions; empty from the scheduler */
} tr_deltas_buf_t;

void tr_deltas_buf_init(tr_deltas_buf_t *d);
void tr_deltas_buf_fini(tr_deltas_buf_t *d);
void tr_deltas_buf_clear(tr_deltas_buf_t *d);
/* Packs what was appended into a `deltas` message and sends it to `to` when it holds at
 * least one row (the top-logprob and text fields only when they hold anything). */
void tr_deltas_buf_send(tr_deltas_buf_t *d, tr_actor_t *actor, const char *to);

#endif
