/*  actors/tokenizer.c - text to token ids and back, with stop strings.
 *  Owns:    the model's tokenizer (models/tokenizer.h) and, per request it forwarded, an
 *           incremental decoder, its stop strings and the text held back while it could
 *           still be the start of a stop string.
 *  Accepts: generate (prompt text or ids, from a frontend), cancel (from a frontend),
 *           tokenize (from a frontend), deltas (new tokens, from the scheduler), error
 *           (a request the scheduler refused or failed).
 *  Sends:   generate with token ids and cancel to the scheduler; deltas with text, error and
 *           tokenize replies to the frontend the request came from.
 *  Thread:  its own loop. Several tokenizers may run (tokenizer.0, tokenizer.1, ...): the
 *           frontend spreads requests over them, and each request's deltas come back to
 *           the tokenizer that forwarded it (the scheduler remembers who sent it).
 *
 *  Stop strings: text is emitted only once no stop string can begin in it. A stop string
 *  split across tokens is found in the held-back text; text from its first byte on is
 *  dropped, the request finishes with `stop`, and the scheduler is told to cancel it.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/registry.h"
#include "actors/serving.h"
#include "models/tokenizer.h"
#include "runtime/log.h"
#include "runtime/u64map.h"

typedef struct {
    uint64_t rid;
    char frontend[TR_TOPO_NAME_MAX];
    tr_tok_stream_t *stream;   /* owned */
    char **stops;              /* owned strings */
    size_t *stop_lens;
    int n_stops;
    size_t max_stop;           /* longest stop string in bytes */
    bool from_tokens;          /* the client gave ids, not text */
    tr_tok_text_t held;        /* decoded, not yet emitted */
} s_req_t;

typedef struct {
    tr_actor_t *actor;         /* borrowed */
    tr_tokenizer_t *tok;       /* owned */
    const char *scheduler;     /* borrowed from the topology */
    tr_u64map_t reqs;          /* rid -> s_req_t* (owned) */
    tr_tok_ids_t ids;          /* scratch */
    /* the deltas being built for one frontend */
    tr_deltas_buf_t out;       /* the deltas being built for one frontend */
    tr_buf_t cancels;          /* rids the scheduler must drop (stop string hit, error) */
    uint64_t requests, prompt_tokens, tokenize_calls, stops_hit, errors, encode_ns;
} self_t;

static int s_on_generate(void *self, const tr_msg_t *msg);
static int s_on_cancel(void *self, const tr_msg_t *msg);
static int s_on_tokenize(void *self, const tr_msg_t *msg);
static int s_on_deltas(void *self, const tr_msg_t *msg);
static int s_on_error(void *self, const tr_msg_t *msg);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_GENERATE, s_on_generate}, /* -> generate (ids) to the scheduler */
    {TR_MSG_CANCEL, s_on_cancel},     /* -> cancel to the scheduler */
    {TR_MSG_TOKENIZE, s_on_tokenize}, /* -> tokenize reply */
    {TR_MSG_DELTAS, s_on_deltas},     /* -> deltas with text to frontends */
    {TR_MSG_ERROR, s_on_error},       /* -> error to the request's frontend */
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"path", TR_CONF_STR, "tokenizer to load instead of the model's own (tokenizer.json, "
                          ".gguf or llama2.c tokenizer.bin)"},
    {NULL, 0, NULL},
};

static void *s_self_new(tr_actor_t *actor);
static void s_self_destroy(void **self_p);
static void s_stats(void *self, msgpack_packer *pk);

const tr_actor_spec_t tr_tokenizer_spec = {
    .name = "tokenizer",
    .summary = "text <-> token ids, incremental detokenization, stop strings",
    .handlers = s_handlers,
    .conf_section = "tokenizer",
    .conf_keys = s_conf_keys,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .stats = s_stats,
};

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    const tr_topology_t *topo = tr_actor_topology(actor);
    tr_u64map_init(&self->reqs);
    tr_tok_ids_init(&self->ids);
    tr_deltas_buf_init(&self->out);
    tr_buf_init(&self->cancels);
    self->scheduler = tr_serving_name(topo, "scheduler", 0);
    if (!self->scheduler) {
        TR_ERROR("the topology has no scheduler for the tokenizer to feed");
        goto fail;
    }
    const char *path = tr_conf_get_str(tr_actor_conf(actor), "path", NULL);
    char err[512];
    int rc;
    self->tok = path ? tr_tokenizer_new(path, &rc, err, sizeof err)
                     : tr_tokenizer_for_model(tr_serving_model(topo), &rc, err, sizeof err);
    if (!self->tok) {
        TR_ERROR("cannot load the tokenizer: %s", err);
        goto fail;
    }
    TR_INFO("tokenizer %s, %d tokens, bos %d, eos %d", tr_tokenizer_kind(self->tok),
            tr_tokenizer_n_vocab(self->tok), tr_tokenizer_bos(self->tok),
            tr_tokenizer_eos(self->tok));
    return self;
fail:;
    void *p = self;
    s_self_destroy(&p);
    return NULL;
}

static void s_req_free(s_req_t *r) {
    tr_tok_stream_destroy(&r->stream);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->stop_lens);
    tr_tok_text_fini(&r->held);
    free(r);
}

static void s_req_drop(self_t *self, uint64_t rid) {
    s_req_t *r = tr_u64map_del(&self->reqs, rid);
    if (r) s_req_free(r);
}

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    for (size_t i = 0; i < self->reqs.cap; i++)
        if (self->reqs.keys[i]) s_req_free(self->reqs.vals[i]);
    tr_u64map_fini(&self->reqs);
    tr_tok_ids_fini(&self->ids);
    tr_deltas_buf_fini(&self->out);
    tr_buf_fini(&self->cancels);
    tr_tokenizer_destroy(&self->tok);
    free(self);
    *self_p = NULL;
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    msgpack_pack_map(pk, 7);
    tr_pack_cstr(pk, "active");
    msgpack_pack_uint64(pk, self->reqs.n);
    tr_pack_cstr(pk, "requests");
    msgpack_pack_uint64(pk, self->requests);
    tr_pack_cstr(pk, "prompt_tokens");
    msgpack_pack_uint64(pk, self->prompt_tokens);
    tr_pack_cstr(pk, "tokenize");
    msgpack_pack_uint64(pk, self->tokenize_calls);
    tr_pack_cstr(pk, "stop_strings_hit");
    msgpack_pack_uint64(pk, self->stops_hit);
    tr_pack_cstr(pk, "errors");
    msgpack_pack_uint64(pk, self->errors);
    tr_pack_cstr(pk, "encode_ms");
    msgpack_pack_double(pk, (double)self->encode_ns / 1e6);
}

/* ---- requests in ---- */

static int s_on_generate(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_generate_t *g = &msg->u.generate;
    if (!TR_MSG_HAS(msg, generate, id) || g->id.is_str || g->id.i <= 0)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "id",
                                    "generate reaches a tokenizer from the frontend, with an "
                                    "integer id");
    uint64_t rid = (uint64_t)g->id.i;
    bool has_prompt = TR_MSG_HAS(msg, generate, prompt), has_tokens = TR_MSG_HAS(msg, generate, tokens);
    if (has_prompt == has_tokens)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "prompt",
                                    "give exactly one of prompt (text) and tokens (ids)");
    if (tr_u64map_get(&self->reqs, rid))
        return tr_actor_reply_error(self->actor, msg, "bad_request", "id",
                                    "request %llu is already active", (unsigned long long)rid);
    tr_tok_ids_t *ids = &self->ids;
    ids->n = 0;
    if (has_prompt) {
        if (g->prompt.n == 0)
            return tr_actor_reply_error(self->actor, msg, "bad_request", "prompt",
                                        "field 'prompt': the prompt is empty");
        uint64_t t0 = tr_now_ns();
        int rc = tr_tokenizer_encode(self->tok, g->prompt.p, g->prompt.n,
                                     TR_TOK_ADD_SPECIAL | TR_TOK_PARSE_SPECIAL, ids);
        self->encode_ns += tr_now_ns() - t0;
        if (rc == TR_EINVAL)
            return tr_actor_reply_error(self->actor, msg, "bad_request", "prompt",
                                        "the prompt is not valid UTF-8");
        if (rc != TR_OK)
            return tr_actor_reply_error(self->actor, msg, "internal", NULL,
                                        "encoding the prompt failed: %s", tr_strerror(rc));
    } else {
        if (g->tokens.n == 0)
            return tr_actor_reply_error(self->actor, msg, "bad_request", "tokens",
                                        "the prompt is empty");
        int32_t V = tr_tokenizer_n_vocab(self->tok);
        for (uint32_t i = 0; i < g->tokens.n; i++) {
            int32_t t = tr_i32s_at(g->tokens, i);
            if (t < 0 || t >= V)
                return tr_actor_reply_error(self->actor, msg, "bad_request", "tokens",
                                            "field 'tokens': token id %d at position %u is "
                                            "outside the "
                                            "vocabulary (0..%d)",
                                            t, i, V - 1);
        }
    }
    s_req_t *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    r->rid = rid;
    r->from_tokens = has_tokens;
    tr_str_copy(msg->from, r->frontend, sizeof r->frontend);
    tr_tok_text_init(&r->held);
    r->stream = tr_tok_stream_new(self->tok, 0);
    if (!r->stream) goto oom;
    if (TR_MSG_HAS(msg, generate, stop) && g->stop.n) {
        r->stops = calloc(g->stop.n, sizeof *r->stops);
        r->stop_lens = calloc(g->stop.n, sizeof *r->stop_lens);
        if (!r->stops || !r->stop_lens) goto oom;
        for (uint32_t i = 0; i < g->stop.n; i++) {
            tr_str_t s = tr_strs_at(g->stop, i);
            if (s.n == 0) continue; /* an empty stop string would match everywhere */
            char *c = malloc(s.n + 1);
            if (!c) goto oom;
            memcpy(c, s.p, s.n);
            c[s.n] = '\0';
            r->stops[r->n_stops] = c;
            r->stop_lens[r->n_stops++] = s.n;
            if (s.n > r->max_stop) r->max_stop = s.n;
        }
    }
    if (tr_u64map_put(&self->reqs, rid, r) != TR_OK) goto oom;
    /* forward: the same request, as ids, without what only the tokenizer needs */
    tr_msg_t f;
    tr_msg_init(&f, TR_MSG_GENERATE);
    f.u.generate = *g;
    f.present = msg->present;
    f.present &= ~(1ull << TR_F_generate_prompt);
    f.present &= ~(1ull << TR_F_generate_stop);
    if (has_prompt)
        TR_MSG_SET(&f, generate, tokens, ((tr_i32s_t){(const uint8_t *)ids->ids, (uint32_t)ids->n}));
    if (tr_actor_send(self->actor, self->scheduler, &f) != TR_OK) {
        s_req_drop(self, rid);
        return tr_actor_reply_error(self->actor, msg, "unavailable", NULL,
                                    "cannot reach the scheduler");
    }
    self->requests++;
    self->prompt_tokens += has_prompt ? ids->n : g->tokens.n;
    return TR_OK;
oom:
    if (r) s_req_free(r);
    return tr_actor_reply_error(self->actor, msg, "internal", NULL, "tokenizer out of memory");
}

static int s_on_cancel(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    int64_t n = tr_bin_count(msg->u.cancel.rids, 8);
    for (int64_t i = 0; i < n; i++) s_req_drop(self, (uint64_t)tr_bin_i64(msg->u.cancel.rids, (uint32_t)i));
    tr_msg_t f;
    tr_msg_init(&f, TR_MSG_CANCEL);
    f.u.cancel = msg->u.cancel;
    f.present = msg->present;
    tr_actor_send(self->actor, self->scheduler, &f);
    return TR_OK;
}

static int s_on_tokenize(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_tokenize_t *t = &msg->u.tokenize;
    unsigned flags = TR_TOK_PARSE_SPECIAL;
    if (!TR_MSG_HAS(msg, tokenize, add_special) || t->add_special) flags |= TR_TOK_ADD_SPECIAL;
    self->ids.n = 0;
    self->tokenize_calls++;
    int rc = tr_tokenizer_encode(self->tok, TR_MSG_HAS(msg, tokenize, text) ? t->text.p : "",
                                 TR_MSG_HAS(msg, tokenize, text) ? t->text.n : 0, flags, &self->ids);
    if (rc == TR_EINVAL)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "text",
                                    "the text is not valid UTF-8");
    if (rc != TR_OK)
        return tr_actor_reply_error(self->actor, msg, "internal", NULL, "encoding failed: %s",
                                    tr_strerror(rc));
    tr_msg_t r;
    tr_msg_init(&r, TR_MSG_TOKENIZE);
    if (TR_MSG_HAS(msg, tokenize, id)) TR_MSG_SET(&r, tokenize, id, t->id);
    TR_MSG_SET(&r, tokenize, tokens,
               ((tr_i32s_t){(const uint8_t *)self->ids.ids, (uint32_t)self->ids.n}));
    return tr_actor_reply(self->actor, msg, &r);
}

static int s_on_error(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_error_t *e = &msg->u.error;
    if (!TR_MSG_HAS(msg, error, id) || e->id.is_str) {
        TR_WARN("%.*s: %.*s", (int)e->code.n, e->code.p, (int)e->message.n, e->message.p);
        return TR_OK;
    }
    s_req_t *r = tr_u64map_get(&self->reqs, (uint64_t)e->id.i);
    if (!r) return TR_OK; /* cancelled meanwhile */
    self->errors++;
    tr_msg_t f;
    tr_msg_init(&f, TR_MSG_ERROR);
    f.u.error = *e;
    f.present = msg->present;
    /* the scheduler sees ids only: a prompt the client gave as ids is field 'tokens' */
    char text[4200];
    if (r->from_tokens && TR_MSG_HAS(msg, error, field) && tr_str_eq(e->field, "prompt")) {
        const char *pre = "field 'prompt': ";
        size_t k = strlen(pre);
        tr_str_t m = e->message;
        if (m.n >= k && memcmp(m.p, pre, k) == 0) m = (tr_str_t){m.p + k, m.n - (uint32_t)k};
        snprintf(text, sizeof text, "field 'tokens': %.*s", (int)m.n, m.p);
        f.u.error.field = tr_str_c("tokens");
        f.u.error.message = tr_str_c(text);
    }
    tr_actor_send(self->actor, r->frontend, &f);
    s_req_drop(self, r->rid);
    return TR_OK;
}

/* ---- tokens in, text out ---- */

/* Length of the longest prefix of s[0..n) that ends on a UTF-8 character boundary. */
static size_t s_utf8_floor(const char *s, size_t n) {
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--;
    if (i == 0) return 0;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return n - (i - 1) >= want ? n : i - 1;
}

/* Decodes one request's new tokens, applies stop strings, appends its row to the output.
 * Returns the finish code it ends with. */
static int32_t s_detok(self_t *self, s_req_t *r, const tr_msg_deltas_t *d, uint32_t i,
                       uint32_t tok_off, uint32_t top_off, int32_t n_top) {
    int32_t n = tr_i32s_at(d->n_tokens, i), fin = tr_i32s_at(d->finish, i);
    for (int32_t k = 0; k < n; k++) {
        int32_t t = tr_i32s_at(d->tokens, tok_off + (uint32_t)k);
        if (tr_tok_stream_push(r->stream, t, &r->held) != TR_OK) {
            fin = TR_FINISH_ERROR;
            break;
        }
    }
    if (fin != TR_FINISH_NONE) tr_tok_stream_flush(r->stream, &r->held);
    /* earliest stop string in the held text */
    size_t cut = (size_t)-1;
    int32_t which = -1;
    for (int s = 0; s < r->n_stops && r->held.len; s++) {
        const char *at = memmem(r->held.data, r->held.len, r->stops[s], r->stop_lens[s]);
        if (at && (size_t)(at - r->held.data) < cut) {
            cut = (size_t)(at - r->held.data);
            which = s;
        }
    }
    size_t emit;
    if (which >= 0) {
        emit = cut;
        fin = TR_FINISH_STOP;
        self->stops_hit++;
    } else if (fin != TR_FINISH_NONE) {
        emit = r->held.len;
    } else {
        size_t keep = r->max_stop ? r->max_stop - 1 : 0;
        emit = r->held.len > keep ? s_utf8_floor(r->held.data, r->held.len - keep) : 0;
    }
    tr_buf_i64(&self->out.rids, (int64_t)r->rid);
    tr_buf_i32(&self->out.n_tokens, n);
    tr_buf_put(&self->out.tokens, d->tokens.p + 4 * (size_t)tok_off, 4 * (size_t)n);
    /* logprobs ride along only when the step computed them (some request asked) */
    if (tr_bin_count(d->logprobs, 4) >= (int64_t)(tok_off + (uint32_t)n))
        tr_buf_put(&self->out.logprobs, d->logprobs.p + 4 * (size_t)tok_off, 4 * (size_t)n);
    else if (d->logprobs.n)
        tr_buf_put(&self->out.logprobs, NULL, 4 * (size_t)n);
    tr_buf_i32(&self->out.n_top, n_top);
    if (n_top > 0) {
        size_t cnt = (size_t)n_top * (size_t)n;
        bool ok = top_off + cnt <= d->top_tokens.n &&
                  tr_bin_count(d->top_logprobs, 4) >= (int64_t)(top_off + cnt);
        tr_buf_put(&self->out.top_tokens, ok ? d->top_tokens.p + 4 * (size_t)top_off : NULL,
                   4 * cnt);
        tr_buf_put(&self->out.top_logprobs, ok ? d->top_logprobs.p + 4 * (size_t)top_off : NULL,
                   4 * cnt);
    }
    tr_buf_i32(&self->out.finish, fin);
    tr_buf_i32(&self->out.stop_token,
               d->stop_token.n > i && which < 0 ? tr_i32s_at(d->stop_token, i) : -1);
    tr_buf_i32(&self->out.prompt_tokens,
               d->prompt_tokens.n > i ? tr_i32s_at(d->prompt_tokens, i) : 0);
    tr_buf_i64(&self->out.queue_us,
               tr_bin_count(d->queue_us, 8) > (int64_t)i ? tr_bin_i64(d->queue_us, i) : 0);
    tr_buf_put(&self->out.text, r->held.data, emit);
    tr_buf_i32(&self->out.text_len, (int32_t)emit);
    tr_buf_i32(&self->out.stop_str, which);
    if (fin == TR_FINISH_NONE) { /* keep the rest */
        memmove(r->held.data, r->held.data + emit, r->held.len - emit);
        r->held.len -= emit;
        if (r->held.data) r->held.data[r->held.len] = '\0';
    }
    return fin;
}

static int s_on_deltas(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_deltas_t *d = &msg->u.deltas;
    int64_t n = tr_bin_count(d->rids, 8);
    if (n < 0 || d->n_tokens.n != n || d->finish.n != n ||
        (TR_MSG_HAS(msg, deltas, n_top) && d->n_top.n != n)) {
        TR_WARN("malformed deltas from %.*s", (int)msg->from.n, msg->from.p);
        return TR_EINVAL;
    }
    /* One output message per frontend; with one frontend (the usual case) a single pass. */
    const char *done_for[8];
    int n_done = 0;
    for (;;) {
        char frontend[TR_TOPO_NAME_MAX] = "";
        tr_deltas_buf_clear(&self->out);
        tr_buf_clear(&self->cancels);
        uint32_t tok_off = 0, top_off = 0;
        for (uint32_t i = 0; i < (uint32_t)n; i++) {
            int32_t nt = tr_i32s_at(d->n_tokens, i);
            int32_t n_top = TR_MSG_HAS(msg, deltas, n_top) ? tr_i32s_at(d->n_top, i) : 0;
            uint32_t my_tok = tok_off, my_top = top_off;
            tok_off += (uint32_t)(nt > 0 ? nt : 0);
            if (n_top > 0) top_off += (uint32_t)(n_top * (nt > 0 ? nt : 0));
            if (nt < 0 || tok_off > d->tokens.n) break;
            s_req_t *r = tr_u64map_get(&self->reqs, (uint64_t)tr_bin_i64(d->rids, i));
            if (!r) continue; /* cancelled or stopped by a stop string already */
            int seen = 0;
            for (int k = 0; k < n_done; k++) seen |= strcmp(done_for[k], r->frontend) == 0;
            if (seen) continue;
            if (!frontend[0]) snprintf(frontend, sizeof frontend, "%s", r->frontend);
            else if (strcmp(frontend, r->frontend) != 0) continue;
            int32_t fin = s_detok(self, r, d, i, my_tok, my_top, n_top);
            if (fin != TR_FINISH_NONE) {
                if (tr_i32s_at(d->finish, i) == TR_FINISH_NONE) /* a stop string, an error */
                    tr_buf_i64(&self->cancels, (int64_t)r->rid);
                s_req_drop(self, r->rid);
            }
        }
        if (!frontend[0]) break;
        tr_deltas_buf_send(&self->out, self->actor, frontend);
        if (self->cancels.n) {
            tr_msg_t c;
            tr_msg_init(&c, TR_MSG_CANCEL);
            TR_MSG_SET(&c, cancel, rids, tr_buf_bin(&self->cancels));
            TR_MSG_SET(&c, cancel, reason, tr_str_c("stop"));
            tr_actor_send(self->actor, self->scheduler, &c);
        }
        if (n_done == (int)TR_ARRAY_LEN(done_for)) break;
        const tr_topo_actor_t *a = tr_topo_find_actor(tr_actor_topology(self->actor), frontend);
        if (!a) break;
        done_for[n_done++] = a->name;
    }
    return TR_OK;
}
