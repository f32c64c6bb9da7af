/*  clients/c/client.c - see client.h.
 *
 *  Every request is a tr_msg_t sent with tr_wire_send (msgs.def is the only schema);
 *  replies are decoded with tr_msg_decode. The socket's high-water marks are 0
 *  (unbounded): a ROUTER drops replies to a peer whose queue is full, so a client that
 *  streams many requests must never let its receive queue cap out.                   */
#include "clients/c/client.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "transport/wire.h"

#define TR_CLIENT_TAG 0x636c6965u   /* "clie": a live client (STYLE.md 2.4) */
#define TR_CLIENT_DEAD 0xdeadc1e0u

struct tr_client {
    uint32_t tag;                   /* TR_CLIENT_TAG while alive */
    void *zctx;                     /* owned when own_ctx, else borrowed */
    bool own_ctx;
    void *sock;                     /* owned: DEALER */
    zmq_msg_t frame;                /* owned: the last frame received (decoded replies borrow it) */
    int64_t next_id;
    char err[600];
};

static int s_fail(tr_client_t *self, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(tr_client_t *self, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->err, sizeof self->err, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- lifetime ---- */

tr_client_t *tr_client_new(void *zctx, const char *endpoint) {
    tr_client_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->tag = TR_CLIENT_TAG;
    self->next_id = 1;
    zmq_msg_init(&self->frame);
    self->zctx = zctx;
    if (!self->zctx) {
        self->zctx = zmq_ctx_new();
        self->own_ctx = true;
        if (!self->zctx) goto fail;
    }
    self->sock = zmq_socket(self->zctx, ZMQ_DEALER);
    if (!self->sock) goto fail;
    int zero = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &zero, sizeof zero);
    if (!endpoint || zmq_connect(self->sock, endpoint) != 0) goto fail;
    return self;
fail:
    if (self->sock) zmq_close(self->sock);
    if (self->own_ctx && self->zctx) zmq_ctx_term(self->zctx);
    zmq_msg_close(&self->frame);
    free(self);
    return NULL;
}

void tr_client_destroy(tr_client_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_client_t *self = *self_p;
    assert(self->tag == TR_CLIENT_TAG);
    zmq_msg_close(&self->frame);
    zmq_close(self->sock);
    if (self->own_ctx) zmq_ctx_term(self->zctx);
    self->tag = TR_CLIENT_DEAD;
    free(self);
    *self_p = NULL;
}

/* ---- requests ---- */

void tr_client_gen_init(tr_client_gen_t *p) {
    memset(p, 0, sizeof *p);
    p->max_tokens = p->top_k = p->seed = p->logprobs = p->n = p->priority = TR_CLIENT_UNSET;
    p->temperature = p->top_p = p->min_p = NAN;
    p->ignore_eos = p->stream = -1;
}

int tr_client_send(tr_client_t *self, const tr_msg_t *m) {
    int rc = tr_wire_send(self->sock, m, 0);
    if (rc == TR_EINVAL)
        return s_fail(self, rc, "%s: a field breaks the schema (transport/msgs.def)",
                      tr_msg_type_name(m->type));
    if (rc == TR_EZMQ) return s_fail(self, rc, "send: %s", zmq_strerror(zmq_errno()));
    if (rc == TR_AGAIN) return s_fail(self, rc, "send: queue full");
    return rc;
}

/* Gives the next id, and sends m with it (m's `id` field is at the same offset in every
 * client message, but we set it through the type's own member to stay honest). */
static int s_send_with_id(tr_client_t *self, tr_msg_t *m, tr_id_t *slot, int bit, int64_t *id) {
    int64_t my = self->next_id++;
    slot->is_str = false;
    slot->i = my;
    m->present |= 1ull << bit;
    int rc = tr_client_send(self, m);
    if (rc == TR_OK && id) *id = my;
    return rc;
}

/* Token ids ride as a bin of little-endian int32: in place on little-endian hosts. */
static const uint8_t *s_i32_le(const int32_t *v, uint32_t n, uint8_t **tmp) {
    *tmp = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *b = malloc(4 * (size_t)n + 1);
    if (!b) return NULL;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)v[i];
        b[4 * i] = u & 0xff, b[4 * i + 1] = u >> 8 & 0xff;
        b[4 * i + 2] = u >> 16 & 0xff, b[4 * i + 3] = u >> 24;
    }
    *tmp = b;
    return b;
#else
    (void)n;
    return (const uint8_t *)v;
#endif
}

int tr_client_generate(tr_client_t *self, const tr_client_gen_t *p, int64_t *id) {
    if (p->n_stop > 64) return s_fail(self, TR_EINVAL, "generate: more than 64 stop strings");
    if (!p->prompt && !p->tokens)
        return s_fail(self, TR_EINVAL, "generate: neither prompt nor tokens given");
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_GENERATE);
    uint8_t *tmp_tok = NULL, *tmp_stop = NULL;
    tr_str_t stops[64];
    if (p->prompt) TR_MSG_SET(&m, generate, prompt, tr_str_c(p->prompt));
    if (p->tokens) {
        const uint8_t *b = s_i32_le(p->tokens, p->n_tokens, &tmp_tok);
        if (!b) return s_fail(self, TR_ENOMEM, "generate: out of memory");
        TR_MSG_SET(&m, generate, tokens, ((tr_i32s_t){b, p->n_tokens}));
    }
    if (p->n_stop) {
        for (uint32_t i = 0; i < p->n_stop; i++) stops[i] = tr_str_c(p->stop[i]);
        TR_MSG_SET(&m, generate, stop, ((tr_strs_t){NULL, stops, p->n_stop}));
    }
    if (p->n_stop_token_ids) {
        const uint8_t *b = s_i32_le(p->stop_token_ids, p->n_stop_token_ids, &tmp_stop);
        if (!b) {
            free(tmp_tok);
            return s_fail(self, TR_ENOMEM, "generate: out of memory");
        }
        TR_MSG_SET(&m, generate, stop_token_ids, ((tr_i32s_t){b, p->n_stop_token_ids}));
    }
    if (p->max_tokens != TR_CLIENT_UNSET) TR_MSG_SET(&m, generate, max_tokens, p->max_tokens);
    if (!isnan(p->temperature)) TR_MSG_SET(&m, generate, temperature, p->temperature);
    if (!isnan(p->top_p)) TR_MSG_SET(&m, generate, top_p, p->top_p);
    if (p->top_k != TR_CLIENT_UNSET) TR_MSG_SET(&m, generate, top_k, p->top_k);
    if (!isnan(p->min_p)) TR_MSG_SET(&m, generate, min_p, p->min_p);
    if (p->seed != TR_CLIENT_UNSET) TR_MSG_SET(&m, generate, seed, p->seed);
    if (p->ignore_eos >= 0) TR_MSG_SET(&m, generate, ignore_eos, p->ignore_eos != 0);
    if (p->logprobs != TR_CLIENT_UNSET) TR_MSG_SET(&m, generate, logprobs, p->logprobs);
    if (p->stream >= 0) TR_MSG_SET(&m, generate, stream, p->stream != 0);
    if (p->n != TR_CLIENT_UNSET) TR_MSG_SET(&m, generate, n, p->n);
    if (p->priority != TR_CLIENT_UNSET) TR_MSG_SET(&m, generate, priority, p->priority);
    int rc = s_send_with_id(self, &m, &m.u.generate.id, TR_F_generate_id, id);
    free(tmp_tok);
    free(tmp_stop);
    return rc;
}

int tr_client_abort(tr_client_t *self, int64_t id) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_ABORT);
    TR_MSG_SET(&m, abort, id, ((tr_id_t){.is_str = false, .i = id}));
    return tr_client_send(self, &m);
}

int tr_client_tokenize(tr_client_t *self, const char *text, int add_special, int64_t *id) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_TOKENIZE);
    TR_MSG_SET(&m, tokenize, text, tr_str_c(text ? text : ""));
    if (add_special >= 0) TR_MSG_SET(&m, tokenize, add_special, add_special != 0);
    return s_send_with_id(self, &m, &m.u.tokenize.id, TR_F_tokenize_id, id);
}

int tr_client_model_info(tr_client_t *self, int64_t *id) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_MODEL_INFO);
    return s_send_with_id(self, &m, &m.u.model_info.id, TR_F_model_info_id, id);
}

int tr_client_health(tr_client_t *self, int64_t *id) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_HEALTH);
    return s_send_with_id(self, &m, &m.u.health.id, TR_F_health_id, id);
}

int tr_client_stats(tr_client_t *self, int64_t *id) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_STATS);
    return s_send_with_id(self, &m, &m.u.stats.id, TR_F_stats_id, id);
}

/* ---- replies ---- */

int tr_client_recv(tr_client_t *self, tr_msg_t *out, int timeout_ms) {
    if (timeout_ms != 0) {
        zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, timeout_ms < 0 ? -1 : timeout_ms);
        if (n < 0) {
            if (zmq_errno() == EINTR) return TR_AGAIN;
            return s_fail(self, TR_EZMQ, "poll: %s", zmq_strerror(zmq_errno()));
        }
        if (n == 0) return TR_ETIMEDOUT;
    }
    /* the previous reply's frame goes now (the caller was told so) */
    zmq_msg_close(&self->frame);
    zmq_msg_init(&self->frame);
    if (zmq_msg_recv(&self->frame, self->sock, ZMQ_DONTWAIT) < 0) {
        int e = zmq_errno();
        if (e == EAGAIN || e == EINTR) return TR_AGAIN;
        return s_fail(self, TR_EZMQ, "recv: %s", zmq_strerror(e));
    }
    if (zmq_msg_more(&self->frame)) { /* replies are one frame: drop the rest */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        int more = 1;
        while (more && zmq_msg_recv(&extra, self->sock, ZMQ_DONTWAIT) >= 0)
            more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        return s_fail(self, TR_EPROTO, "a reply of several frames (expected one)");
    }
    tr_msg_err_t err;
    if (tr_msg_decode(out, zmq_msg_data(&self->frame), zmq_msg_size(&self->frame), &err) != TR_OK)
        return s_fail(self, TR_EPROTO, "undecodable reply (%s): %s", err.code, err.text);
    self->err[0] = '\0';
    return TR_OK;
}

const char *tr_client_error(const tr_client_t *self) {
    return self->err;
}

int tr_client_output_is_final(const tr_msg_t *m) {
    return m->type == TR_MSG_OUTPUT && TR_MSG_HAS(m, output, finish_reason);
}

int64_t tr_client_reply_id(const tr_msg_t *m) {
    tr_id_t id;
    if (!tr_msg_id(m, &id) || id.is_str) return TR_CLIENT_UNSET;
    return id.i;
}

/* A number from a msgpack map by key, or `dflt`. */
static double s_map_num(const tr_any_t *a, const char *key, double dflt) {
    const msgpack_object *o = a->obj;
    if (!o || o->type != MSGPACK_OBJECT_MAP) return dflt;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || !tr_str_eq((tr_str_t){k->via.str.ptr, k->via.str.size}, key))
            continue;
        switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)v->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)v->via.i64;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: return v->via.f64;
        default: return dflt;
        }
    }
    return dflt;
}

void tr_client_output_usage(const tr_msg_t *m, tr_client_usage_t *out) {
    out->prompt_tokens = out->completion_tokens = -1;
    out->queue_ms = out->ttft_ms = out->tpot_ms = out->e2e_ms = NAN;
    if (m->type != TR_MSG_OUTPUT) return;
    if (TR_MSG_HAS(m, output, usage)) {
        out->prompt_tokens = (int64_t)s_map_num(&m->u.output.usage, "prompt_tokens", -1);
        out->completion_tokens = (int64_t)s_map_num(&m->u.output.usage, "completion_tokens", -1);
    }
    if (TR_MSG_HAS(m, output, metrics)) {
        out->queue_ms = s_map_num(&m->u.output.metrics, "queue_ms", NAN);
        out->ttft_ms = s_map_num(&m->u.output.metrics, "ttft_ms", NAN);
        out->tpot_ms = s_map_num(&m->u.output.metrics, "tpot_ms", NAN);
        out->e2e_ms = s_map_num(&m->u.output.metrics, "e2e_ms", NAN);
    }
}

/* ---- event-loop integration ---- */

void *tr_client_socket(tr_client_t *self) {
    return self->sock;
}

int tr_client_fd(tr_client_t *self) {
    int fd = -1;
    size_t n = sizeof fd;
    if (zmq_getsockopt(self->sock, ZMQ_FD, &fd, &n) != 0) return -1;
    return fd;
}
