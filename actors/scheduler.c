/*  actors/scheduler.c - iteration-level (continuous) batching under a token budget.
 *  Owns:    every request between tokenization and its last token: the waiting queue and
 *           the running set (ordered by the policy, actors/sched_policy.h), each sequence's
 *           tokens, block table mirror and sampling parameters; the step in flight.
 *  Accepts: generate (token ids, from a tokenizer), cancel (from a tokenizer), step_done
 *           (from executor rank 0), kv_grant (from the kv_manager), model_info (from each
 *           executor at start; from the frontend as a client request), peer_down.
 *  Sends:   step to every executor; kv_alloc / kv_free / kv_init to the kv_manager; deltas
 *           (new tokens, finish codes) and error (per request) to the request's tokenizer.
 *  Thread:  its own loop. Messages of one loop turn are all handled before the next step
 *           is planned (before_sleep), so the arrivals of a turn join one batch.
 *
 *  One step (DESIGN.md 4), planned only while no step is in flight:
 *    1. running sequences in policy order: decodes (one token) first, then unfinished
 *       prefills, each taking a chunk of at most chunk_size tokens of the budget; once
 *       decodes are in the step, the budget shrinks to mixed_batch_tokens (but leaves
 *       prefill at least a KV block), so a long prompt does not stall running streams;
 *    2. waiting sequences in policy order while the budget (max_batch_tokens tokens,
 *       max_seqs sequences) and free KV blocks allow; with chunked_prefill off a prompt
 *       must fit the remaining budget whole;
 *    3. if a running sequence needs a block and none is free, the running sequence that
 *       comes last in policy order is preempted: its blocks are freed and it goes back to
 *       waiting with all its tokens, to be recomputed (its sampling is counter-based, so
 *       it continues with the same tokens);
 *    4. new blocks are asked of the kv_manager (kv_alloc, answered by kv_grant) and the
 *       plan goes to the executors. The free count is mirrored here, so grants succeed.
 *  A sequence samples a token when the step computes the last of its known tokens.     */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/registry.h"
#include "actors/sched_policy.h"
#include "actors/serving.h"
#include "runtime/log.h"
#include "runtime/u64map.h"

enum { S_WAITING = 1, S_RUNNING = 2 };

typedef struct {
    tr_sched_info_t info;      /* what the policy sees */
    uint64_t rid;
    int tok;                   /* index of the tokenizer instance that owns it */
    int state;
    int32_t *toks;             /* owned: prompt then generated tokens */
    int32_t n_toks, cap;
    int32_t n_computed;        /* tokens whose K/V are in the cache */
    int32_t *blocks;           /* owned: block table (mirror of the kv_manager's) */
    int32_t n_blocks, blocks_cap;
    float temperature, top_p, min_p;
    int32_t top_k, n_top;
    bool want_lp;              /* the request asked for logprobs */
    uint64_t seed;
    int32_t *stop_ids;         /* owned */
    int32_t n_stop_ids;
    bool ignore_eos, max_given, checked;
    bool in_step, cancelled;
    int32_t step_chunk;        /* tokens it contributes to the step in flight */
    bool step_sample;
    uint64_t enqueue_ns, first_ns;
    int32_t n_preempted;
} s_seq_t;

typedef struct {
    s_seq_t **v;
    int n, cap;
} s_list_t;

typedef struct {
    tr_actor_t *actor;                 /* borrowed */
    const tr_topology_t *topo;         /* borrowed */
    const tr_sched_policy_t *policy;
    int64_t max_batch_tokens, max_seqs, chunk_size, mixed_batch_tokens;
    bool chunked;
    const char *kv_manager;            /* borrowed names from the topology */
    const char **executors;            /* owned array */
    int n_executors;
    const char **tokenizers;           /* owned array */
    int n_tokenizers;
    /* the model, from the executors' model_info */
    int n_info;
    bool ready, failed;
    char failed_why[400];              /* why no executor serves, when failed */
    char info_model[512], info_arch[64], info_dtype[16], info_device[64];
    int64_t n_params, vocab, ctx, bos, eos, kv_blocks, block_size, kv_bytes;
    int32_t free_blocks;               /* mirror of the kv_manager's free count */
    int32_t freed_pending;             /* blocks freed while a kv_alloc was in flight */
    uint8_t *reported;                 /* owned: (n_executors) model_info received */
    tr_u64map_t seqs;                  /* rid -> s_seq_t* (owned) */
    s_list_t waiting, running;
    uint64_t arrivals;
    /* the step in flight */
    int64_t step_id;
    bool in_flight, kv_pending;
    int64_t kv_seq;
    s_list_t batch;
    uint64_t step_sent_ns;
    tr_buf_t b_rids, b_ntok, b_toks, b_pos, b_tables, b_sample, b_temp, b_topp, b_topk, b_minp,
        b_seed, b_ntop, b_kvn;
    tr_deltas_buf_t *deltas;           /* owned: per tokenizer, the deltas of a step */
    /* counters */
    uint64_t steps, preemptions, prompt_tokens, gen_tokens, finished, errors, busy_ns;
    uint64_t batch_seqs_sum, batch_tokens_sum;
    int64_t mixed_tokens_max;  /* the most tokens of a step that carried decodes */
    bool plan_has_decodes;     /* the step being planned carries decodes */
} self_t;

static int s_on_generate(void *self, const tr_msg_t *msg);
static int s_on_cancel(void *self, const tr_msg_t *msg);
static int s_on_step_done(void *self, const tr_msg_t *msg);
static int s_on_kv_grant(void *self, const tr_msg_t *msg);
static int s_on_model_info(void *self, const tr_msg_t *msg);
static int s_on_error(void *self, const tr_msg_t *msg);
static int s_on_peer_down(void *self, const tr_msg_t *msg);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_GENERATE, s_on_generate},     /* -> queued (or error to the tokenizer) */
    {TR_MSG_CANCEL, s_on_cancel},         /* -> kv_free */
    {TR_MSG_STEP_DONE, s_on_step_done},   /* -> deltas to tokenizers, kv_free */
    {TR_MSG_KV_GRANT, s_on_kv_grant},     /* -> step to executors */
    {TR_MSG_MODEL_INFO, s_on_model_info}, /* executor: kv_init; client: model_info reply */
    {TR_MSG_ERROR, s_on_error},           /* an actor refused something we sent */
    {TR_MSG_PEER_DOWN, s_on_peer_down},   /* executor gone: fail its requests */
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"policy", TR_CONF_STR, "fcfs | priority | sjf (actors/sched_policy.c; default fcfs)"},
    {"max_batch_tokens", TR_CONF_INT, "token budget of one step (default 2048)"},
    {"max_seqs", TR_CONF_INT, "most sequences in one step (default 64)"},
    {"chunked_prefill", TR_CONF_BOOL, "split long prompts into chunks (default true)"},
    {"chunk_size", TR_CONF_INT, "prefill chunk size in tokens (default 512)"},
    {"mixed_batch_tokens", TR_CONF_INT,
     "token budget of a step that carries decodes (default max_batch_tokens): caps the "
     "prefill chunks that share a step with running streams, to keep their inter-token "
     "latency low"},
    {NULL, 0, NULL},
};

static void *s_self_new(tr_actor_t *actor);
static void s_self_destroy(void **self_p);
static void s_before_sleep(void *self);
static void s_stats(void *self, msgpack_packer *pk);

const tr_actor_spec_t tr_scheduler_spec = {
    .name = "scheduler",
    .summary = "continuous batching under a token budget, chunked prefill, preemption",
    .handlers = s_handlers,
    .conf_section = "scheduler",
    .conf_keys = s_conf_keys,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .before_sleep = s_before_sleep,
    .stats = s_stats,
};

#define S_STEP_BUFS(self)                                                                  \
    {&self->b_rids, &self->b_ntok, &self->b_toks,   &self->b_pos,  &self->b_tables,         \
     &self->b_sample, &self->b_temp, &self->b_topp, &self->b_topk, &self->b_minp,          \
     &self->b_seed, &self->b_ntop, &self->b_kvn}

/* ---- lists ordered by the policy ---- */

static int s_list_insert(self_t *self, s_list_t *l, s_seq_t *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        s_seq_t **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return TR_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    int i = l->n;
    while (i > 0 && self->policy->compare(&s->info, &l->v[i - 1]->info) < 0) {
        l->v[i] = l->v[i - 1];
        i--;
    }
    l->v[i] = s;
    l->n++;
    return TR_OK;
}

/* Re-sorts l by the policy (stable: insertion sort), after keys changed in place. */
static void s_list_resort(self_t *self, s_list_t *l) {
    for (int j = 1; j < l->n; j++) {
        s_seq_t *s = l->v[j];
        int i = j;
        while (i > 0 && self->policy->compare(&s->info, &l->v[i - 1]->info) < 0) {
            l->v[i] = l->v[i - 1];
            i--;
        }
        l->v[i] = s;
    }
}

static void s_list_remove(s_list_t *l, const s_seq_t *s) {
    for (int i = 0; i < l->n; i++)
        if (l->v[i] == s) {
            memmove(&l->v[i], &l->v[i + 1], (size_t)(l->n - i - 1) * sizeof *l->v);
            l->n--;
            return;
        }
}

/* ---- state ---- */

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    self->topo = tr_actor_topology(actor);
    tr_u64map_init(&self->seqs);
    tr_buf_t *bufs[] = S_STEP_BUFS(self);
    for (size_t i = 0; i < TR_ARRAY_LEN(bufs); i++) tr_buf_init(bufs[i]);
    const tr_conf_section_t *conf = tr_actor_conf(actor);
    const char *policy = tr_conf_get_str(conf, "policy", "fcfs");
    self->policy = tr_sched_policy_find(policy);
    self->max_batch_tokens = tr_conf_get_int(conf, "max_batch_tokens", 2048);
    self->max_seqs = tr_conf_get_int(conf, "max_seqs", 64);
    self->chunked = tr_conf_get_bool(conf, "chunked_prefill", 1);
    self->chunk_size = tr_conf_get_int(conf, "chunk_size", 512);
    self->mixed_batch_tokens = tr_conf_get_int(conf, "mixed_batch_tokens", self->max_batch_tokens);
    if (!self->policy) {
        TR_ERROR("scheduler.policy: unknown policy '%s' (fcfs, priority, sjf)", policy);
        goto fail;
    }
    if (self->max_batch_tokens < 1 || self->max_seqs < 1 || self->chunk_size < 1 ||
        self->mixed_batch_tokens < 1) {
        TR_ERROR("scheduler: max_batch_tokens, max_seqs, chunk_size and mixed_batch_tokens "
                 "must be >= 1");
        goto fail;
    }
    self->kv_manager = tr_serving_name(self->topo, "kv_manager", 0);
    self->n_executors = tr_serving_count(self->topo, "executor");
    self->n_tokenizers = tr_serving_count(self->topo, "tokenizer");
    if (!self->kv_manager || !self->n_executors || !self->n_tokenizers) {
        TR_ERROR("scheduler: the topology needs a kv_manager, an executor and a tokenizer");
        goto fail;
    }
    self->executors = calloc((size_t)self->n_executors, sizeof *self->executors);
    self->reported = calloc((size_t)self->n_executors, 1);
    self->tokenizers = calloc((size_t)self->n_tokenizers, sizeof *self->tokenizers);
    int nt = self->n_tokenizers;
    self->deltas = calloc((size_t)nt, sizeof *self->deltas);
    if (!self->deltas) goto fail;
    for (int t = 0; t < nt; t++) tr_deltas_buf_init(&self->deltas[t]);
    if (!self->executors || !self->tokenizers || !self->reported) goto fail;
    for (int i = 0; i < self->n_executors; i++)
        self->executors[i] = tr_serving_name(self->topo, "executor", i);
    for (int i = 0; i < nt; i++) self->tokenizers[i] = tr_serving_name(self->topo, "tokenizer", i);
    TR_INFO("policy %s, max_batch_tokens %lld (%lld with decodes), max_seqs %lld, chunked "
            "prefill %s (%lld)", self->policy->name, (long long)self->max_batch_tokens,
            (long long)self->mixed_batch_tokens, (long long)self->max_seqs,
            self->chunked ? "on" : "off", (long long)self->chunk_size);
    return self;
fail:;
    void *p = self;
    s_self_destroy(&p);
    return NULL;
}

static void s_seq_free(s_seq_t *s) {
    free(s->toks);
    free(s->blocks);
    free(s->stop_ids);
    free(s);
}

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    for (size_t i = 0; i < self->seqs.cap; i++)
        if (self->seqs.keys[i]) s_seq_free(self->seqs.vals[i]);
    tr_u64map_fini(&self->seqs);
    free(self->waiting.v);
    free(self->running.v);
    free(self->batch.v);
    tr_buf_t *bufs[] = S_STEP_BUFS(self);
    for (size_t i = 0; i < TR_ARRAY_LEN(bufs); i++) tr_buf_fini(bufs[i]);
    for (int t = 0; self->deltas && t < self->n_tokenizers; t++)
        tr_deltas_buf_fini(&self->deltas[t]);
    free(self->deltas);
    free(self->executors);
    free(self->reported);
    free(self->tokenizers);
    free(self);
    *self_p = NULL;
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    msgpack_pack_map(pk, 16);
    tr_pack_cstr(pk, "policy");
    tr_pack_cstr(pk, self->policy->name);
    tr_pack_cstr(pk, "ready");
    self->ready ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    tr_pack_cstr(pk, "waiting");
    msgpack_pack_int(pk, self->waiting.n);
    tr_pack_cstr(pk, "running");
    msgpack_pack_int(pk, self->running.n);
    tr_pack_cstr(pk, "steps");
    msgpack_pack_uint64(pk, self->steps);
    tr_pack_cstr(pk, "preemptions");
    msgpack_pack_uint64(pk, self->preemptions);
    tr_pack_cstr(pk, "prompt_tokens");
    msgpack_pack_uint64(pk, self->prompt_tokens);
    tr_pack_cstr(pk, "generated_tokens");
    msgpack_pack_uint64(pk, self->gen_tokens);
    tr_pack_cstr(pk, "finished");
    msgpack_pack_uint64(pk, self->finished);
    tr_pack_cstr(pk, "errors");
    msgpack_pack_uint64(pk, self->errors);
    tr_pack_cstr(pk, "kv_free_blocks");
    msgpack_pack_int32(pk, self->free_blocks);
    tr_pack_cstr(pk, "kv_blocks");
    msgpack_pack_int64(pk, self->kv_blocks);
    tr_pack_cstr(pk, "step_ms_mean");
    msgpack_pack_double(pk, self->steps ? (double)self->busy_ns / 1e6 / (double)self->steps : 0);
    tr_pack_cstr(pk, "batch_seqs_mean");
    msgpack_pack_double(pk, self->steps ? (double)self->batch_seqs_sum / (double)self->steps : 0);
    tr_pack_cstr(pk, "batch_tokens_mean");
    msgpack_pack_double(pk,
                        self->steps ? (double)self->batch_tokens_sum / (double)self->steps : 0);
    tr_pack_cstr(pk, "mixed_tokens_max");
    msgpack_pack_int64(pk, self->mixed_tokens_max);
}

/* ---- per-request errors and finishing ---- */

static int s_tok_index(self_t *self, tr_str_t from) {
    for (int i = 0; i < self->n_tokenizers; i++)
        if (tr_str_eq(from, self->tokenizers[i])) return i;
    return -1;
}

/* Ends request rid with an `error` (code, field or NULL, a sentence) to its tokenizer. */
static void s_refuse(self_t *self, uint64_t rid, int tok, const char *code, const char *field,
                     const char *text) {
    tr_id_t id = {.is_str = false, .i = (int64_t)rid};
    tr_msg_t e;
    tr_msg_init_error(&e, &id, code, field, text);
    if (tok >= 0) tr_actor_send(self->actor, self->tokenizers[tok], &e);
    self->errors++;
}

/* A request at fault (field given: bad_request, the message names the field) or failed
 * (field NULL: internal). */
__attribute__((format(printf, 5, 6))) static void
s_request_error(self_t *self, uint64_t rid, int tok, const char *field, const char *fmt, ...) {
    char text[512];
    int k = field ? snprintf(text, sizeof text, "field '%s': ", field) : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text + k, sizeof text - (size_t)k, fmt, ap);
    va_end(ap);
    s_refuse(self, rid, tok, field ? "bad_request" : "internal", field, text);
}

static void s_kv_free(self_t *self, const uint64_t *rids, int n) {
    if (!n) return;
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_KV_FREE);
    TR_MSG_SET(&m, kv_free, rids, ((tr_bin_t){(const uint8_t *)rids, (uint32_t)(8 * n)}));
    tr_actor_send(self->actor, self->kv_manager, &m);
}

/* Releases a sequence: its blocks, its list entry, its state. */
static void s_seq_drop(self_t *self, s_seq_t *s) {
    /* always: a kv_alloc in flight may have given it blocks we do not know of yet */
    s_kv_free(self, &s->rid, 1);
    self->free_blocks += s->n_blocks;
    if (self->kv_pending) self->freed_pending += s->n_blocks;
    s_list_remove(s->state == S_RUNNING ? &self->running : &self->waiting, s);
    tr_u64map_del(&self->seqs, s->rid);
    s_seq_free(s);
}

/* Moves a running sequence back to waiting; it will recompute its tokens. */
static void s_preempt(self_t *self, s_seq_t *s) {
    if (s->n_blocks) {
        s_kv_free(self, &s->rid, 1);
        self->free_blocks += s->n_blocks;
        if (self->kv_pending) self->freed_pending += s->n_blocks;
    }
    s->n_blocks = 0;
    s->n_computed = 0;
    s->n_preempted++;
    self->preemptions++;
    s_list_remove(&self->running, s);
    s->state = S_WAITING;
    s_list_insert(self, &self->waiting, s);
    TR_DEBUG("preempted request %llu (%d tokens) for lack of KV blocks",
             (unsigned long long)s->rid, s->n_toks);
}

/* Checks a request against the model once its shape is known; 0 if it was refused. */
static int s_check(self_t *self, s_seq_t *s) {
    if (s->checked) return 1;
    s->checked = true;
    for (int32_t i = 0; i < s->n_toks; i++)
        if (s->toks[i] < 0 || s->toks[i] >= self->vocab) {
            s_request_error(self, s->rid, s->tok, "tokens",
                            "token id %d at position %d is outside the vocabulary (0..%lld)",
                            s->toks[i], i, (long long)self->vocab - 1);
            return 0;
        }
    if (s->n_toks >= self->ctx) {
        s_request_error(self, s->rid, s->tok, "prompt",
                        "the prompt has %d tokens; the model's context is %lld tokens, and "
                        "at least one must be left to generate",
                        s->n_toks, (long long)self->ctx);
        return 0;
    }
    int64_t room = self->ctx - s->n_toks;
    if (!s->max_given) s->info.max_tokens = (int32_t)room;
    else if (s->info.max_tokens > room) {
        s_request_error(self, s->rid, s->tok, "max_tokens",
                        "max_tokens %d with a prompt of %d tokens exceeds the context of %lld "
                        "tokens (at most %lld)",
                        s->info.max_tokens, s->n_toks, (long long)self->ctx, (long long)room);
        return 0;
    }
    int64_t need = (s->n_toks + 1 + self->block_size - 1) / self->block_size;
    if (need > self->kv_blocks) {
        s_request_error(self, s->rid, s->tok, "prompt",
                        "the prompt needs %lld KV blocks; the pool has %lld (kv.n_blocks)",
                        (long long)need, (long long)self->kv_blocks);
        return 0;
    }
    if (!self->chunked && s->n_toks > self->max_batch_tokens) {
        s_request_error(self, s->rid, s->tok, "prompt",
                        "the prompt has %d tokens, more than scheduler.max_batch_tokens (%lld) "
                        "with chunked_prefill off",
                        s->n_toks, (long long)self->max_batch_tokens);
        return 0;
    }
    return 1;
}

/* ---- handlers ---- */

static int s_on_generate(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_generate_t *g = &msg->u.generate;
    int tok = s_tok_index(self, msg->from);
    if (tok < 0 || !TR_MSG_HAS(msg, generate, id) || g->id.is_str || g->id.i <= 0)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "id",
                                    "generate reaches the scheduler from a tokenizer, with an "
                                    "integer id");
    uint64_t rid = (uint64_t)g->id.i;
    if (tr_u64map_get(&self->seqs, rid)) {
        s_request_error(self, rid, tok, "id", "request %llu is already queued",
                        (unsigned long long)rid);
        return TR_EINVAL;
    }
    if (self->failed) {
        s_refuse(self, rid, tok, "unavailable", NULL, self->failed_why);
        return TR_EINVAL;
    }
    if (!TR_MSG_HAS(msg, generate, tokens) || g->tokens.n == 0) {
        s_request_error(self, rid, tok, "tokens", "the prompt is empty");
        return TR_EINVAL;
    }
    s_seq_t *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->rid = rid;
    s->tok = tok;
    s->cap = (int32_t)g->tokens.n + 64;
    s->toks = malloc((size_t)s->cap * sizeof *s->toks);
    if (!s->toks) goto oom;
    for (uint32_t i = 0; i < g->tokens.n; i++) s->toks[i] = tr_i32s_at(g->tokens, i);
    s->n_toks = (int32_t)g->tokens.n;
    s->info.arrival = ++self->arrivals;
    s->info.priority = TR_MSG_HAS(msg, generate, priority) ? g->priority : 0;
    s->info.n_prompt = s->n_toks;
    s->max_given = TR_MSG_HAS(msg, generate, max_tokens);
    s->info.max_tokens = s->max_given ? (int32_t)g->max_tokens : 0;
    s->temperature = TR_MSG_HAS(msg, generate, temperature) ? (float)g->temperature : 1.0f;
    s->top_p = TR_MSG_HAS(msg, generate, top_p) ? (float)g->top_p : 1.0f;
    s->min_p = TR_MSG_HAS(msg, generate, min_p) ? (float)g->min_p : 0.0f;
    s->top_k = TR_MSG_HAS(msg, generate, top_k) ? (int32_t)g->top_k : 0;
    s->n_top = TR_MSG_HAS(msg, generate, logprobs) ? (int32_t)g->logprobs : 0;
    s->want_lp = TR_MSG_HAS(msg, generate, logprobs);
    s->seed = TR_MSG_HAS(msg, generate, seed) ? (uint64_t)g->seed : tr_realtime_ns() ^ rid;
    s->ignore_eos = TR_MSG_HAS(msg, generate, ignore_eos) && g->ignore_eos;
    if (TR_MSG_HAS(msg, generate, stop_token_ids) && g->stop_token_ids.n) {
        s->stop_ids = malloc(g->stop_token_ids.n * sizeof *s->stop_ids);
        if (!s->stop_ids) goto oom;
        for (uint32_t i = 0; i < g->stop_token_ids.n; i++)
            s->stop_ids[i] = tr_i32s_at(g->stop_token_ids, i);
        s->n_stop_ids = (int32_t)g->stop_token_ids.n;
    }
    s->enqueue_ns = tr_now_ns();
    s->state = S_WAITING;
    if (self->ready && !s_check(self, s)) {
        s_seq_free(s);
        return TR_EINVAL;
    }
    if (tr_u64map_put(&self->seqs, rid, s) != TR_OK) goto oom;
    if (s_list_insert(self, &self->waiting, s) != TR_OK) {
        tr_u64map_del(&self->seqs, rid);
        goto oom;
    }
    return TR_OK;
oom:
    if (s) s_seq_free(s);
    s_request_error(self, rid, tok, NULL, "scheduler out of memory");
    return TR_ENOMEM;
}

static int s_on_cancel(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    int64_t n = tr_bin_count(msg->u.cancel.rids, 8);
    for (int64_t i = 0; i < n; i++) {
        s_seq_t *s = tr_u64map_get(&self->seqs, (uint64_t)tr_bin_i64(msg->u.cancel.rids,
                                                                      (uint32_t)i));
        if (!s) continue; /* finished meanwhile, or never here: not an error */
        if (s->in_step) s->cancelled = true;
        else s_seq_drop(self, s);
    }
    return TR_OK;
}

/* ---- planning ---- */

static int32_t s_blocks_for(const self_t *self, int64_t n_tokens) {
    return (int32_t)((n_tokens + self->block_size - 1) / self->block_size);
}

/* Tries to give s `chunk` more tokens in the batch; preempts from the back of the running
 * list when blocks are short. Returns 1 if s joined the batch, 0 if it could not (it may
 * have been preempted itself). */
static int s_take(self_t *self, s_seq_t *s, int32_t chunk, int64_t *budget) {
    int32_t need = s_blocks_for(self, s->n_computed + chunk) - s->n_blocks;
    if (s->state != S_RUNNING && self->running.n) {
        /* admissions leave a watermark (1% of the pool, at least one block) for the running
         * sequences to grow into, so that admitting does not at once force a preemption */
        int32_t reserve = self->kv_blocks / 100 > 1 ? (int32_t)(self->kv_blocks / 100) : 1;
        if (need > self->free_blocks - reserve) return 0;
    }
    while (need > self->free_blocks) {
        if (s->state != S_RUNNING) return 0; /* admissions wait; they never preempt */
        s_seq_t *victim = NULL;
        for (int i = self->running.n - 1; i >= 0 && !victim; i--)
            if (!self->running.v[i]->in_step) victim = self->running.v[i];
        if (!victim) return 0;
        s_preempt(self, victim);
        if (victim == s) return 0;
        need = s_blocks_for(self, s->n_computed + chunk) - s->n_blocks;
    }
    if (s->state != S_RUNNING) {
        s_list_remove(&self->waiting, s);
        s->state = S_RUNNING;
        s_list_insert(self, &self->running, s);
    }
    if (!s->first_ns) s->first_ns = tr_now_ns();
    self->free_blocks -= need > 0 ? need : 0;
    s->in_step = true;
    s->step_chunk = chunk;
    s->step_sample = s->n_computed + chunk == s->n_toks;
    *budget -= chunk;
    if (self->batch.n == self->batch.cap) {
        int cap = self->batch.cap ? 2 * self->batch.cap : 64;
        s_seq_t **v = realloc(self->batch.v, (size_t)cap * sizeof *v);
        if (!v) abort(); /* the batch holds at most max_seqs; see s_plan's reservation */
        self->batch.v = v;
        self->batch.cap = cap;
    }
    self->batch.v[self->batch.n++] = s;
    return 1;
}

static void s_send_step(self_t *self);
static void s_fail_batch(self_t *self, const char *why);

static void s_plan(self_t *self) {
    if (!self->ready || self->in_flight || self->kv_pending) return;
    if (!self->running.n && !self->waiting.n) return;
    if (self->batch.cap < self->max_seqs) {
        s_seq_t **v = realloc(self->batch.v, (size_t)self->max_seqs * sizeof *v);
        if (!v) return;
        self->batch.v = v;
        self->batch.cap = (int)self->max_seqs;
    }
    self->batch.n = 0;
    int64_t budget = self->max_batch_tokens;
    /* 1. decodes, then unfinished prefills, of running sequences (policy order). The list
     *    may shrink under us through preemption: walk it by index with care. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) self->plan_has_decodes = self->batch.n > 0;
        if (pass == 1 && self->batch.n) {
            /* the step carries decodes: what is left of the mixed budget goes to prefill,
             * but at least a KV block's worth, so that prompts never starve behind streams */
            int64_t mixed = self->mixed_batch_tokens - (self->max_batch_tokens - budget);
            int64_t least = self->block_size < self->chunk_size ? self->block_size
                                                                : self->chunk_size;
            if (mixed < least) mixed = least;
            if (mixed < budget) budget = mixed;
        }
        for (int i = 0; i < self->running.n; i++) {
            if (budget <= 0 || self->batch.n >= self->max_seqs) break;
            s_seq_t *s = self->running.v[i];
            if (s->in_step) continue;
            int32_t left = s->n_toks - s->n_computed;
            if ((pass == 0) != (left == 1)) continue;
            int32_t chunk = left;
            if (pass == 1) {
                /* a preempted sequence recomputes prompt + output: always in chunks */
                if (self->chunked || s->n_preempted) {
                    if (chunk > self->chunk_size) chunk = (int32_t)self->chunk_size;
                    if (chunk > budget) chunk = (int32_t)budget;
                } else if (chunk > budget) {
                    continue;
                }
            }
            int n_before = self->running.n;
            if (!s_take(self, s, chunk, &budget) && self->running.n < n_before) i = -1;
            /* preemption reorders nothing before i, but removed entries after it; restart
             * the scan (sequences already taken are skipped by in_step) */
        }
    }
    /* 2. admissions, in policy order, while blocks last (no preemption for them) */
    for (int i = 0; i < self->waiting.n;) {
        if (budget <= 0 || self->batch.n >= self->max_seqs) break;
        s_seq_t *s = self->waiting.v[i];
        if (!s->checked && !s_check(self, s)) {
            s_seq_drop(self, s);
            continue;
        }
        int32_t chunk = s->n_toks - s->n_computed;
        if (self->chunked || s->n_preempted) {
            if (chunk > self->chunk_size) chunk = (int32_t)self->chunk_size;
            if (chunk > budget) chunk = (int32_t)budget;
        } else if (chunk > budget) {
            break;
        }
        if (!s_take(self, s, chunk, &budget)) {
            if (!self->running.n && !self->batch.n) {
                /* nothing holds blocks, yet it does not fit: it never will */
                s_request_error(self, s->rid, s->tok, NULL,
                                "the KV pool (%lld blocks) cannot hold this request",
                                (long long)self->kv_blocks);
                s_seq_drop(self, s);
                continue;
            }
            break; /* head-of-line: wait for blocks */
        }
    }
    if (!self->batch.n) return;
    /* 3. blocks for the step */
    tr_buf_clear(&self->b_rids);
    tr_buf_clear(&self->b_kvn);
    for (int i = 0; i < self->batch.n; i++) {
        s_seq_t *s = self->batch.v[i];
        int32_t want = s_blocks_for(self, s->n_computed + s->step_chunk);
        if (want <= s->n_blocks) continue;
        tr_buf_i64(&self->b_rids, (int64_t)s->rid);
        tr_buf_i32(&self->b_kvn, want);
    }
    if (self->b_rids.n) {
        tr_msg_t a;
        tr_msg_init(&a, TR_MSG_KV_ALLOC);
        TR_MSG_SET(&a, kv_alloc, seq, ++self->kv_seq);
        TR_MSG_SET(&a, kv_alloc, rids, tr_buf_bin(&self->b_rids));
        TR_MSG_SET(&a, kv_alloc, n_blocks, tr_buf_i32s(&self->b_kvn));
        if (tr_actor_send(self->actor, self->kv_manager, &a) == TR_OK) {
            self->kv_pending = true;
            return;
        }
        TR_ERROR("cannot reach %s", self->kv_manager);
    }
    s_send_step(self);
}

static int s_on_kv_grant(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_kv_grant_t *g = &msg->u.kv_grant;
    if (!self->kv_pending || g->seq != self->kv_seq) return TR_OK; /* stale */
    self->kv_pending = false;
    int64_t n = tr_bin_count(g->rids, 8);
    uint64_t total = 0;
    for (int64_t i = 0; n > 0 && i < n && i < g->n_new.n; i++) {
        int32_t k = tr_i32s_at(g->n_new, (uint32_t)i);
        total += k > 0 ? (uint64_t)k : 0;
    }
    if (n < 0 || n != g->n_new.n || total != g->blocks.n) {
        TR_ERROR("malformed kv_grant from %.*s", (int)msg->from.n, msg->from.p);
        s_fail_batch(self, "the kv_manager answered with a malformed grant");
        return TR_EINVAL;
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        s_seq_t *s = tr_u64map_get(&self->seqs, (uint64_t)tr_bin_i64(g->rids, (uint32_t)i));
        int32_t k = tr_i32s_at(g->n_new, (uint32_t)i);
        if (k < 0) {
            /* our mirror was wrong: take this one out of the step, it will wait */
            TR_WARN("kv_manager refused blocks for request %lld", (long long)(s ? s->rid : 0));
            if (s) {
                s->in_step = false;
                s->step_chunk = 0;
            }
            continue;
        }
        if (!s) {
            off += (uint64_t)k;
            continue;
        }
        if (s->n_blocks + k > s->blocks_cap) {
            int32_t cap = s->n_blocks + k + 16;
            int32_t *b = realloc(s->blocks, (size_t)cap * sizeof *b);
            if (!b) abort();
            s->blocks = b;
            s->blocks_cap = cap;
        }
        for (int32_t j = 0; j < k; j++)
            s->blocks[s->n_blocks++] = tr_i32s_at(g->blocks, (uint32_t)off++);
    }
    self->free_blocks = (int32_t)g->free + self->freed_pending;
    self->freed_pending = 0;
    /* sequences refused above, or cancelled meanwhile, leave the batch */
    int w = 0;
    for (int i = 0; i < self->batch.n; i++) {
        s_seq_t *s = self->batch.v[i];
        if (s->in_step && s->cancelled) {
            s->in_step = false;
            s_seq_drop(self, s);
        } else if (s->in_step) {
            self->batch.v[w++] = s;
        } else if (s->cancelled) {
            s_seq_drop(self, s);
        }
    }
    self->batch.n = w;
    if (self->batch.n) s_send_step(self);
    return TR_OK;
}

static void s_send_step(self_t *self) {
    tr_buf_t *bufs[] = S_STEP_BUFS(self);
    for (size_t i = 0; i < TR_ARRAY_LEN(bufs); i++) tr_buf_clear(bufs[i]);
    int32_t max_blocks = 1;
    for (int i = 0; i < self->batch.n; i++)
        if (self->batch.v[i]->n_blocks > max_blocks) max_blocks = self->batch.v[i]->n_blocks;
    int any_top = 0, any_lp = 0;
    int64_t n_tok = 0;
    for (int i = 0; i < self->batch.n; i++) {
        s_seq_t *s = self->batch.v[i];
        tr_buf_i64(&self->b_rids, (int64_t)s->rid);
        tr_buf_i32(&self->b_ntok, s->step_chunk);
        tr_buf_put(&self->b_toks, s->toks + s->n_computed, 4 * (size_t)s->step_chunk);
        tr_buf_i32(&self->b_pos, s->n_computed);
        tr_buf_put(&self->b_tables, s->blocks, 4 * (size_t)s->n_blocks);
        tr_buf_put(&self->b_tables, NULL, 4 * (size_t)(max_blocks - s->n_blocks));
        uint8_t smp = s->step_sample;
        tr_buf_put(&self->b_sample, &smp, 1);
        tr_buf_f32(&self->b_temp, s->temperature);
        tr_buf_f32(&self->b_topp, s->top_p);
        tr_buf_i32(&self->b_topk, s->top_k);
        tr_buf_f32(&self->b_minp, s->min_p);
        tr_buf_i64(&self->b_seed, (int64_t)s->seed);
        tr_buf_i32(&self->b_ntop, s->n_top);
        any_top |= s->n_top > 0;
        any_lp |= s->want_lp;
        n_tok += s->step_chunk;
    }
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_STEP);
    TR_MSG_SET(&m, step, step, ++self->step_id);
    TR_MSG_SET(&m, step, rids, tr_buf_bin(&self->b_rids));
    TR_MSG_SET(&m, step, n_tokens, tr_buf_i32s(&self->b_ntok));
    TR_MSG_SET(&m, step, tokens, tr_buf_i32s(&self->b_toks));
    TR_MSG_SET(&m, step, start_pos, tr_buf_i32s(&self->b_pos));
    TR_MSG_SET(&m, step, max_blocks, max_blocks);
    TR_MSG_SET(&m, step, block_tables, tr_buf_i32s(&self->b_tables));
    TR_MSG_SET(&m, step, sample, tr_buf_bin(&self->b_sample));
    TR_MSG_SET(&m, step, temperature, tr_buf_bin(&self->b_temp));
    TR_MSG_SET(&m, step, top_p, tr_buf_bin(&self->b_topp));
    TR_MSG_SET(&m, step, top_k, tr_buf_i32s(&self->b_topk));
    TR_MSG_SET(&m, step, min_p, tr_buf_bin(&self->b_minp));
    TR_MSG_SET(&m, step, seed, tr_buf_bin(&self->b_seed));
    if (any_top) TR_MSG_SET(&m, step, n_top, tr_buf_i32s(&self->b_ntop));
    if (any_lp) TR_MSG_SET(&m, step, logprobs, true);
    int sent = 0;
    for (int e = 0; e < self->n_executors; e++) {
        int rc = tr_actor_send(self->actor, self->executors[e], &m);
        if (rc != TR_OK) TR_ERROR("step to %s: %s", self->executors[e], tr_strerror(rc));
        sent += rc == TR_OK;
    }
    self->in_flight = true;
    if (!sent) {
        s_fail_batch(self, "cannot send the step to any executor");
        return;
    }
    self->step_sent_ns = tr_now_ns();
    self->batch_seqs_sum += (uint64_t)self->batch.n;
    self->batch_tokens_sum += (uint64_t)n_tok;
    if (self->plan_has_decodes && n_tok > self->mixed_tokens_max) self->mixed_tokens_max = n_tok;
}

/* ---- results ---- */

static int s_is_stop(const self_t *self, const s_seq_t *s, int32_t tok) {
    if (!s->ignore_eos && tok == self->eos) return 1;
    for (int32_t i = 0; i < s->n_stop_ids; i++)
        if (s->stop_ids[i] == tok) return 1;
    return 0;
}

static void s_fail_batch(self_t *self, const char *why) {
    for (int i = 0; i < self->batch.n; i++) {
        s_seq_t *s = self->batch.v[i];
        s->in_step = false;
        if (!s->cancelled) s_request_error(self, s->rid, s->tok, NULL, "%s", why);
        s_seq_drop(self, s);
    }
    self->batch.n = 0;
    self->in_flight = false;
}

static int s_on_step_done(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_step_done_t *d = &msg->u.step_done;
    if (!self->in_flight || d->step != self->step_id) return TR_OK; /* stale */
    self->steps++;
    self->busy_ns += tr_now_ns() - self->step_sent_ns;
    if (TR_MSG_HAS(msg, step_done, error)) {
        char why[1100];
        snprintf(why, sizeof why, "the executor failed the step: %.*s", (int)d->error.n,
                 d->error.p);
        s_fail_batch(self, why);
        return TR_OK;
    }
    uint32_t r = 0, top_off = 0;
    uint32_t n_lp = (uint32_t)(tr_bin_count(d->logprobs, 4) > 0 ? tr_bin_count(d->logprobs, 4) : 0);
    uint32_t n_toplp =
        (uint32_t)(tr_bin_count(d->top_logprobs, 4) > 0 ? tr_bin_count(d->top_logprobs, 4) : 0);
    for (int t = 0; t < self->n_tokenizers; t++) tr_deltas_buf_clear(&self->deltas[t]);
    for (int i = 0; i < self->batch.n; i++) {
        s_seq_t *s = self->batch.v[i];
        s->in_step = false;
        s->n_computed += s->step_chunk;
        if (s->n_computed <= s->info.n_prompt) self->prompt_tokens += (uint64_t)s->step_chunk;
        if (!s->step_sample) {
            if (s->cancelled) s_seq_drop(self, s);
            continue;
        }
        if (r >= d->tokens.n) {
            s_request_error(self, s->rid, s->tok, NULL, "the executor returned too few tokens");
            s_seq_drop(self, s);
            continue;
        }
        int32_t tok = tr_i32s_at(d->tokens, r);
        float lp = r < n_lp ? tr_bin_f32(d->logprobs, r) : 0.0f;
        r++;
        uint32_t my_top = top_off;
        if (s->n_top > 0) top_off += (uint32_t)s->n_top;
        if (s->cancelled) {
            s_seq_drop(self, s);
            continue;
        }
        if (s->n_toks == s->cap) {
            int32_t cap = 2 * s->cap;
            int32_t *t = realloc(s->toks, (size_t)cap * sizeof *t);
            if (!t) {
                s_request_error(self, s->rid, s->tok, NULL, "scheduler out of memory");
                s_seq_drop(self, s);
                continue;
            }
            s->toks = t;
            s->cap = cap;
        }
        s->toks[s->n_toks++] = tok;
        s->info.n_generated = s->n_toks - s->info.n_prompt;
        self->gen_tokens++;
        int32_t fin = TR_FINISH_NONE, stop_tok = -1;
        if (s_is_stop(self, s, tok)) fin = TR_FINISH_STOP, stop_tok = tok;
        else if (s->info.n_generated >= s->info.max_tokens || s->n_toks >= self->ctx)
            fin = TR_FINISH_LENGTH;
        tr_deltas_buf_t *o = &self->deltas[s->tok];
        tr_buf_i64(&o->rids, (int64_t)s->rid);
        tr_buf_i32(&o->n_tokens, 1);
        tr_buf_i32(&o->tokens, tok);
        if (n_lp) tr_buf_f32(&o->logprobs, lp);   /* none computed: none sent */
        tr_buf_i32(&o->n_top, s->n_top);
        for (int32_t k = 0; k < s->n_top; k++) {
            uint32_t j = my_top + (uint32_t)k;
            tr_buf_i32(&o->top_tokens, j < d->top_tokens.n ? tr_i32s_at(d->top_tokens, j) : 0);
            tr_buf_f32(&o->top_logprobs, j < n_toplp ? tr_bin_f32(d->top_logprobs, j) : 0.0f);
        }
        tr_buf_i32(&o->finish, fin);
        tr_buf_i32(&o->stop_token, stop_tok);
        tr_buf_i32(&o->prompt_tokens, s->info.n_prompt);
        tr_buf_i64(&o->queue_us, (int64_t)((s->first_ns - s->enqueue_ns) / 1000));
        if (fin) {
            self->finished++;
            s_seq_drop(self, s);
        }
    }
    self->batch.n = 0;
    self->in_flight = false;
    for (int t = 0; t < self->n_tokenizers; t++)
        tr_deltas_buf_send(&self->deltas[t], self->actor, self->tokenizers[t]);
    return TR_OK;
}

static void s_before_sleep(void *self_) {
    s_plan(self_);
}

/* ---- the model, executors and failures ---- */

static void s_copy_str(char *dst, size_t n, tr_str_t s) {
    tr_str_copy(s, dst, n);
}

static int s_on_model_info(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_model_info_t *m = &msg->u.model_info;
    int ex = -1;
    for (int e = 0; e < self->n_executors; e++)
        if (tr_str_eq(msg->from, self->executors[e])) ex = e;
    if (ex >= 0) { /* an executor reports (a client's request never comes from one) */
        if (m->vocab_size < 1 || m->context_length < 1 || m->block_size < 1 || m->kv_blocks < 1 ||
            m->kv_blocks > INT32_MAX) {
            TR_ERROR("%.*s reported an impossible model (vocab %lld, context %lld, block size "
                     "%lld, %lld blocks)", (int)msg->from.n, msg->from.p,
                     (long long)m->vocab_size, (long long)m->context_length,
                     (long long)m->block_size, (long long)m->kv_blocks);
            return TR_EINVAL;
        }
        if (self->reported[ex]) return TR_OK; /* once each */
        self->reported[ex] = 1;
        int64_t blocks = m->kv_blocks;
        if (self->n_info == 0 || blocks < self->kv_blocks) self->kv_blocks = blocks;
        s_copy_str(self->info_model, sizeof self->info_model, m->model);
        s_copy_str(self->info_arch, sizeof self->info_arch, m->arch);
        s_copy_str(self->info_dtype, sizeof self->info_dtype, m->dtype);
        s_copy_str(self->info_device, sizeof self->info_device, m->device);
        self->n_params = m->n_params;
        self->vocab = m->vocab_size;
        self->ctx = m->context_length;
        self->bos = m->bos_id;
        self->eos = m->eos_id;
        self->block_size = m->block_size;
        self->kv_bytes = m->kv_bytes;
        if (++self->n_info < self->n_executors) return TR_OK;
        tr_msg_t k;
        tr_msg_init(&k, TR_MSG_KV_INIT);
        TR_MSG_SET(&k, kv_init, n_blocks, self->kv_blocks);
        TR_MSG_SET(&k, kv_init, block_size, self->block_size);
        tr_actor_send(self->actor, self->kv_manager, &k);
        self->free_blocks = (int32_t)self->kv_blocks;
        self->ready = true;
        self->failed = false;
        /* requests that waited for the model: check them now; a default max_tokens (the
         * room left in the context) changes the sjf key they were queued by */
        for (int i = 0; i < self->waiting.n;) {
            s_seq_t *s = self->waiting.v[i];
            if (!s->checked && !s_check(self, s))
                s_seq_drop(self, s);
            else
                i++;
        }
        s_list_resort(self, &self->waiting);
        TR_INFO("serving %s: context %lld, vocab %lld, KV %lld blocks x %lld", self->info_model,
                (long long)self->ctx, (long long)self->vocab, (long long)self->kv_blocks,
                (long long)self->block_size);
        return TR_OK;
    }
    if (!self->ready)
        return tr_actor_reply_error(self->actor, msg, "unavailable", NULL,
                                    self->failed ? "no executor is serving"
                                                 : "the model is still loading");
    tr_msg_t r;
    tr_msg_init(&r, TR_MSG_MODEL_INFO);
    if (TR_MSG_HAS(msg, model_info, id)) TR_MSG_SET(&r, model_info, id, m->id);
    TR_MSG_SET(&r, model_info, model, tr_str_c(self->info_model));
    TR_MSG_SET(&r, model_info, arch, tr_str_c(self->info_arch));
    TR_MSG_SET(&r, model_info, dtype, tr_str_c(self->info_dtype));
    TR_MSG_SET(&r, model_info, n_params, self->n_params);
    TR_MSG_SET(&r, model_info, vocab_size, self->vocab);
    TR_MSG_SET(&r, model_info, context_length, self->ctx);
    TR_MSG_SET(&r, model_info, bos_id, self->bos);
    TR_MSG_SET(&r, model_info, eos_id, self->eos);
    TR_MSG_SET(&r, model_info, device, tr_str_c(self->info_device));
    TR_MSG_SET(&r, model_info, world, self->n_executors);
    TR_MSG_SET(&r, model_info, kv_blocks, self->kv_blocks);
    TR_MSG_SET(&r, model_info, block_size, self->block_size);
    TR_MSG_SET(&r, model_info, kv_bytes, self->kv_bytes);
    return tr_actor_reply(self->actor, msg, &r);
}

static int s_on_error(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    TR_WARN("%.*s answered %.*s: %.*s", (int)msg->from.n, msg->from.p, (int)msg->u.error.code.n,
            msg->u.error.code.p, (int)msg->u.error.message.n, msg->u.error.message.p);
    if (tr_str_eq(msg->from, self->kv_manager) && self->kv_pending) {
        self->kv_pending = false;
        s_fail_batch(self, "the kv_manager refused the allocation");
    }
    return TR_OK;
}

static int s_on_peer_down(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    int lost = 0;
    for (uint32_t i = 0; i < msg->u.peer_down.actors.n; i++) {
        tr_str_t a = tr_strs_at(msg->u.peer_down.actors, i);
        for (int e = 0; e < self->n_executors; e++) lost |= tr_str_eq(a, self->executors[e]);
        lost |= tr_str_eq(a, self->kv_manager);
    }
    if (!lost) return TR_OK;
    char why[400];
    snprintf(why, sizeof why, "process %.*s ended (%.*s): its requests are lost",
             (int)msg->u.peer_down.process.n, msg->u.peer_down.process.p,
             (int)msg->u.peer_down.reason.n, msg->u.peer_down.reason.p);
    self->ready = false;
    self->failed = true;
    snprintf(self->failed_why, sizeof self->failed_why, "no executor serves: %s", why);
    self->kv_pending = false;
    s_fail_batch(self, why);
    /* everything else fails too: no executor will run it */
    while (self->running.n) {
        s_seq_t *s = self->running.v[0];
        s_request_error(self, s->rid, s->tok, NULL, "%s", why);
        s->n_blocks = 0;
        s_seq_drop(self, s);
    }
    while (self->waiting.n) {
        s_seq_t *s = self->waiting.v[0];
        s_request_error(self, s->rid, s->tok, NULL, "%s", why);
        s->n_blocks = 0;
        s_seq_drop(self, s);
    }
    return TR_OK;
}
