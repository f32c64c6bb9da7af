/*  actors/frontend.c - the client-facing actor.
 *  Owns:    the client ROUTER socket (default tcp://127.0.0.1:5555), the request table
 *           (internal request id <-> client routing id, client id, choice index, what has
 *           been streamed), pending health/stats gathers, per-error-code counters, the
 *           list of tap actors.
 *  Accepts: from clients (one msgpack map per frame): generate, abort, tokenize,
 *           model_info, health, stats. From actors: deltas and error (per request),
 *           tokenize and model_info replies, pong, peer_down.
 *  Sends:   to clients: output, error, tokenize, model_info, health, stats. To actors:
 *           generate, cancel and tokenize to a tokenizer (round robin), model_info to the
 *           scheduler, ping (gathers), tap (copies of client requests to frontend.tap).
 *
 *  Requests: a generate with n choices becomes n internal requests (rids, int64, unique in
 *  this frontend), each with seed + index. Every choice ends with exactly one final
 *  `output` (finish_reason set) or, when nothing was streamed yet, the request with one
 *  `error`. A client whose socket is gone (the send fails with EHOSTUNREACH) has its
 *  requests cancelled, which frees their KV blocks.
 *  Thread:  its own loop; handlers never block. A health or stats request pings every
 *           actor through its inbox (liveness on the data path, DESIGN.md 3) and answers
 *           when all have ponged or health_timeout_ms has passed.                        */
#include "actors/registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <errno.h>

#include "actors/serving.h"
#include "models/tokenizer.h"
#include "runtime/log.h"
#include "runtime/u64map.h"
#include "transport/wire.h"

#define TR_FRONTEND_MAX_GATHERS 64
#define TR_RID_MAX 256

enum { S_WAITING = 0, S_OK = 1, S_TIMEOUT = 2, S_DOWN = 3 };
static const char *s_status_names[] = {"waiting", "ok", "timeout", "down"};

typedef struct {
    int status;
    uint64_t latency_ns;
    msgpack_sbuffer stats;           /* owned: the actor's pong stats, re-packed */
} s_reply_t;

typedef struct {
    int active;
    uint64_t seq;
    tr_msg_type_t kind;              /* TR_MSG_HEALTH or TR_MSG_STATS */
    uint8_t rid[TR_RID_MAX];
    size_t rid_n;
    tr_id_t id;
    bool has_id;
    char id_buf[257];
    int n_waiting;
    s_reply_t *replies;              /* owned: one per topology actor */
    ev_timer timer;
    void *self;
} s_gather_t;

typedef struct {
    uint64_t count;
    char code[32];
} s_err_count_t;

enum { R_GENERATE = 1, R_TOKENIZE, R_MODEL_INFO };

/* The choices of one generate request. */
typedef struct {
    int n, n_open;                   /* choices, and those without their final message */
    bool sent;                       /* an output went to the client already */
    bool stream, want_lp;
    int32_t n_top;
    uint64_t first_rid;
    char **stops;                    /* owned: the stop strings, for stop_reason */
    int n_stops;
} s_group_t;

/* One internal request: a choice of a generate, or a tokenize / model_info in flight. */
typedef struct {
    uint64_t rid;
    int kind;
    uint8_t client[TR_RID_MAX];      /* ZeroMQ routing id */
    size_t client_n;
    tr_id_t id;                      /* the client's id (id.s points into id_buf) */
    bool has_id;
    char id_buf[257];
    int index;                       /* choice */
    int tok;                         /* tokenizer instance */
    s_group_t *group;                /* shared by the choices (owned by the last one) */
    uint64_t arrival_ns, first_ns;
    int64_t n_out;                   /* tokens received */
    int32_t n_prompt;                /* prompt tokens, once the scheduler has said */
    /* stream = false: everything so far */
    tr_buf_t toks, text, lp, top, toplp;
} s_req_t;

typedef struct {
    tr_actor_t *actor;               /* borrowed: loop, sockets, topology */
    const tr_topology_t *topo;       /* borrowed */
    void *sock;                      /* owned: client ROUTER */
    tr_zwatch_t sock_w;
    char listen[TR_TOPO_ENDPOINT_MAX];
    size_t max_message_bytes;
    double health_timeout_s;
    const tr_conf_val_t *taps;       /* borrowed from the topology: frontend.tap */
    s_gather_t gathers[TR_FRONTEND_MAX_GATHERS];
    uint64_t next_seq;
    uint8_t *down;                   /* owned: per topology actor, 1 once reported down */
    uint64_t requests, bytes_in, replies_out;
    s_err_count_t errors[16];
    uint64_t started_ns;
    /* serving */
    tr_u64map_t reqs;                /* rid -> s_req_t* (owned) */
    uint64_t next_rid;
    int64_t max_requests;
    const char **tokenizers;         /* owned array of borrowed names */
    int n_tokenizers;
    unsigned next_tok;
    const char *scheduler;           /* borrowed */
    uint64_t generated, finished, aborted, disconnects;
    tr_buf_t scratch;
} self_t;

static int s_on_deltas(void *self, const tr_msg_t *msg);
static int s_on_error(void *self, const tr_msg_t *msg);
static int s_on_reply(void *self, const tr_msg_t *msg);

static int s_on_pong(void *self, const tr_msg_t *msg);
static int s_on_peer_down(void *self, const tr_msg_t *msg);
static void s_fail_lost(self_t *self, const char *why);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_PONG, s_on_pong},           /* -> completes a gather: health / stats reply */
    {TR_MSG_PEER_DOWN, s_on_peer_down}, /* -> marks that process's actors down */
    {TR_MSG_DELTAS, s_on_deltas},       /* -> output messages to clients */
    {TR_MSG_ERROR, s_on_error},         /* a request failed -> error / final output */
    {TR_MSG_TOKENIZE, s_on_reply},      /* tokenizer's answer -> client */
    {TR_MSG_MODEL_INFO, s_on_reply},    /* scheduler's answer -> client */
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"max_message_bytes", TR_CONF_INT, "largest client frame accepted (default 16 MiB)"},
    {"health_timeout_ms", TR_CONF_INT, "how long health/stats wait for each actor (1000)"},
    {"tap", TR_CONF_STRLIST, "actors that receive a copy of every client request"},
    {"max_requests", TR_CONF_INT, "most requests (choices) in flight; more are refused busy "
                                  "(default 100000)"},
    {NULL, 0, NULL},
};

static void *s_self_new(tr_actor_t *actor);
static void s_self_destroy(void **self_p);
static void s_stats(void *self, msgpack_packer *pk);

const tr_actor_spec_t tr_frontend_spec = {
    .name = "frontend",
    .summary = "client socket: validates requests, answers health/stats, streams outputs",
    .handlers = s_handlers,
    .conf_section = "frontend",
    .conf_keys = s_conf_keys,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .stats = s_stats,
};

static void s_on_client(struct ev_loop *loop, tr_zwatch_t *w, int revents);

/* ---- state ---- */

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    self->topo = tr_actor_topology(actor);
    self->started_ns = tr_now_ns();
    const tr_conf_section_t *conf = tr_actor_conf(actor);
    int64_t max_bytes = tr_conf_get_int(conf, "max_message_bytes", 16 << 20);
    int64_t timeout_ms = tr_conf_get_int(conf, "health_timeout_ms", 1000);
    if (max_bytes < 1024 || timeout_ms < 1) {
        TR_ERROR("frontend.max_message_bytes must be >= 1024 and health_timeout_ms >= 1");
        goto fail;
    }
    self->max_message_bytes = (size_t)max_bytes;
    self->health_timeout_s = (double)timeout_ms / 1000.0;
    self->taps = tr_conf_get(conf, "tap");
    if (self->taps) {
        for (int i = 0; i < self->taps->n_list; i++)
            if (!tr_topo_find_actor(self->topo, self->taps->list[i])) {
                TR_ERROR("frontend.tap: no actor named '%s' in the topology",
                         self->taps->list[i]);
                goto fail;
            }
    }
    self->down = calloc((size_t)self->topo->n_actors, 1);
    if (!self->down) goto fail;
    tr_u64map_init(&self->reqs);
    tr_buf_init(&self->scratch);
    self->max_requests = tr_conf_get_int(conf, "max_requests", 100000);
    self->n_tokenizers = tr_serving_count(self->topo, "tokenizer");
    self->tokenizers = calloc((size_t)self->n_tokenizers + 1, sizeof *self->tokenizers);
    if (!self->tokenizers) goto fail;
    for (int i = 0; i < self->n_tokenizers; i++)
        self->tokenizers[i] = tr_serving_name(self->topo, "tokenizer", i);
    self->scheduler = tr_serving_name(self->topo, "scheduler", 0);
    {   /* rids: this frontend's index in the top bits, so replicated frontends never clash */
        int me = 0;
        for (int i = 0; i < self->topo->n_actors; i++)
            if (strcmp(self->topo->actors[i].name, tr_actor_name(actor)) == 0) me = i;
        self->next_rid = ((uint64_t)me << 48) + 1;
    }
    snprintf(self->listen, sizeof self->listen, "%s", self->topo->listen);
    self->sock = zmq_socket(tr_actor_zctx(actor), ZMQ_ROUTER);
    if (!self->sock) goto fail;
    int one = 1, hwm = 100000, zero = 0;
    zmq_setsockopt(self->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(self->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(self->sock, self->listen) != 0) {
        TR_ERROR("cannot listen on %s: %s", self->listen, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (tr_zwatch_init(&self->sock_w, self->sock, ZMQ_POLLIN, s_on_client, self) != TR_OK)
        goto fail;
    tr_zwatch_start(tr_actor_loop(actor), &self->sock_w);
    TR_INFO("listening on %s", self->listen);
    return self;
fail:
    if (self->sock) zmq_close(self->sock);
    free(self->down);
    free(self->tokenizers);
    free(self);
    return NULL;
}

static void s_req_free(s_req_t *r) {
    tr_buf_fini(&r->toks);
    tr_buf_fini(&r->text);
    tr_buf_fini(&r->lp);
    tr_buf_fini(&r->top);
    tr_buf_fini(&r->toplp);
    if (r->group && --r->group->n_open == 0) {
        for (int i = 0; i < r->group->n_stops; i++) free(r->group->stops[i]);
        free(r->group->stops);
        free(r->group);
    }
    free(r);
}

static void s_gather_end(self_t *self, s_gather_t *g);

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    struct ev_loop *loop = tr_actor_loop(self->actor);
    for (int i = 0; i < TR_FRONTEND_MAX_GATHERS; i++)
        if (self->gathers[i].active) s_gather_end(self, &self->gathers[i]);
    tr_zwatch_stop(loop, &self->sock_w);
    zmq_close(self->sock);
    for (size_t i = 0; i < self->reqs.cap; i++)
        if (self->reqs.keys[i]) s_req_free(self->reqs.vals[i]);
    tr_u64map_fini(&self->reqs);
    tr_buf_fini(&self->scratch);
    free(self->tokenizers);
    free(self->down);
    free(self);
    *self_p = NULL;
}

static void s_count_error(self_t *self, const char *code) {
    for (size_t i = 0; i < TR_ARRAY_LEN(self->errors); i++) {
        if (self->errors[i].count && strcmp(self->errors[i].code, code) != 0) continue;
        snprintf(self->errors[i].code, sizeof self->errors[i].code, "%s", code);
        self->errors[i].count++;
        return;
    }
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    int n_err = 0;
    while (n_err < (int)TR_ARRAY_LEN(self->errors) && self->errors[n_err].count) n_err++;
    msgpack_pack_map(pk, 10);
    tr_pack_cstr(pk, "active");
    msgpack_pack_uint64(pk, self->reqs.n);
    tr_pack_cstr(pk, "generate");
    msgpack_pack_uint64(pk, self->generated);
    tr_pack_cstr(pk, "finished");
    msgpack_pack_uint64(pk, self->finished);
    tr_pack_cstr(pk, "aborted");
    msgpack_pack_uint64(pk, self->aborted);
    tr_pack_cstr(pk, "disconnects");
    msgpack_pack_uint64(pk, self->disconnects);
    tr_pack_cstr(pk, "listen");
    tr_pack_cstr(pk, self->listen);
    tr_pack_cstr(pk, "requests");
    msgpack_pack_uint64(pk, self->requests);
    tr_pack_cstr(pk, "bytes_in");
    msgpack_pack_uint64(pk, self->bytes_in);
    tr_pack_cstr(pk, "replies");
    msgpack_pack_uint64(pk, self->replies_out);
    tr_pack_cstr(pk, "errors");
    msgpack_pack_map(pk, (size_t)n_err);
    for (int i = 0; i < n_err; i++) {
        tr_pack_cstr(pk, self->errors[i].code);
        msgpack_pack_uint64(pk, self->errors[i].count);
    }
}

/* ---- replies to clients ---- */

static void s_client_gone(self_t *self, const uint8_t *client, size_t client_n);

static int s_send_client(self_t *self, const uint8_t *rid, size_t rid_n, const tr_msg_t *m) {
    int rc = tr_wire_send_routed(self->sock, rid, rid_n, m);
    if (rc == TR_OK) {
        self->replies_out++;
        tr_actor_count_out(self->actor, 1);
        return TR_OK;
    }
    int e = zmq_errno();
    TR_DEBUG("reply to a client failed (%s): it may have gone", tr_strerror(rc));
    if (rc == TR_EZMQ && e == EHOSTUNREACH) s_client_gone(self, rid, rid_n);
    return rc;
}

__attribute__((format(printf, 7, 8))) static void
s_client_error(self_t *self, const uint8_t *rid, size_t rid_n, const tr_id_t *id, const char *code,
               const char *field, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tr_msg_t m;
    tr_msg_init_error(&m, id, code, field, text);
    s_count_error(self, code);
    s_send_client(self, rid, rid_n, &m);
}

/* ---- gathers: health and stats ---- */

static void s_gather_reply(self_t *self, s_gather_t *g) {
    const tr_topology_t *topo = self->topo;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int all_ok = 1;
    tr_msg_t m;
    double uptime = (double)(tr_now_ns() - self->started_ns) / 1e9;
    if (g->kind == TR_MSG_HEALTH) {
        msgpack_pack_array(&pk, (size_t)topo->n_actors);
        for (int i = 0; i < topo->n_actors; i++) {
            const s_reply_t *r = &g->replies[i];
            int st = r->status == S_WAITING ? S_TIMEOUT : r->status;
            all_ok &= st == S_OK;
            msgpack_pack_map(&pk, st == S_OK ? 5 : 4);
            tr_pack_cstr(&pk, "name");
            tr_pack_cstr(&pk, topo->actors[i].name);
            tr_pack_cstr(&pk, "kind");
            tr_pack_cstr(&pk, topo->actors[i].kind);
            tr_pack_cstr(&pk, "process");
            tr_pack_cstr(&pk, topo->procs[topo->actors[i].process].name);
            tr_pack_cstr(&pk, "status");
            tr_pack_cstr(&pk, s_status_names[st]);
            if (st == S_OK) {
                tr_pack_cstr(&pk, "latency_us");
                msgpack_pack_uint64(&pk, r->latency_ns / 1000);
            }
        }
        tr_msg_init(&m, TR_MSG_HEALTH);
        TR_MSG_SET(&m, health, status, tr_str_c(all_ok ? "ok" : "degraded"));
        TR_MSG_SET(&m, health, actors, ((tr_any_t){NULL, sb.data, sb.size}));
        TR_MSG_SET(&m, health, uptime_s, uptime);
        if (g->has_id) TR_MSG_SET(&m, health, id, g->id);
    } else {
        msgpack_pack_map(&pk, (size_t)topo->n_actors);
        for (int i = 0; i < topo->n_actors; i++) {
            const s_reply_t *r = &g->replies[i];
            tr_pack_cstr(&pk, topo->actors[i].name);
            if (r->status == S_OK && r->stats.size) {
                pk.callback(pk.data, r->stats.data, r->stats.size);
            } else {
                msgpack_pack_map(&pk, 1);
                tr_pack_cstr(&pk, "status");
                tr_pack_cstr(&pk, s_status_names[r->status == S_WAITING ? S_TIMEOUT : r->status]);
            }
        }
        tr_msg_init(&m, TR_MSG_STATS);
        TR_MSG_SET(&m, stats, actors, ((tr_any_t){NULL, sb.data, sb.size}));
        TR_MSG_SET(&m, stats, uptime_s, uptime);
        if (g->has_id) TR_MSG_SET(&m, stats, id, g->id);
    }
    s_send_client(self, g->rid, g->rid_n, &m);
    msgpack_sbuffer_destroy(&sb);
}

static void s_gather_end(self_t *self, s_gather_t *g) {
    ev_timer_stop(tr_actor_loop(self->actor), &g->timer);
    for (int i = 0; i < self->topo->n_actors; i++) msgpack_sbuffer_destroy(&g->replies[i].stats);
    free(g->replies);
    g->replies = NULL;
    g->active = 0;
}

static void s_on_gather_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
    s_gather_t *g = w->data;
    self_t *self = g->self;
    TR_DEBUG("gather %llu timed out with %d actor(s) silent", (unsigned long long)g->seq,
             g->n_waiting);
    s_gather_reply(self, g);
    s_gather_end(self, g);
}

static void s_gather_start(self_t *self, const tr_msg_t *msg, const uint8_t *rid, size_t rid_n) {
    s_gather_t *g = NULL;
    for (int i = 0; i < TR_FRONTEND_MAX_GATHERS && !g; i++)
        if (!self->gathers[i].active) g = &self->gathers[i];
    tr_id_t id = msg->type == TR_MSG_HEALTH ? msg->u.health.id : msg->u.stats.id;
    bool has_id = msg->type == TR_MSG_HEALTH ? TR_MSG_HAS(msg, health, id)
                                             : TR_MSG_HAS(msg, stats, id);
    if (!g) {
        s_client_error(self, rid, rid_n, has_id ? &id : NULL, "busy", NULL,
                       "too many health/stats requests in flight (%d)", TR_FRONTEND_MAX_GATHERS);
        return;
    }
    int n = self->topo->n_actors;
    g->replies = calloc((size_t)n, sizeof *g->replies);
    if (!g->replies) {
        s_client_error(self, rid, rid_n, has_id ? &id : NULL, "internal", NULL, "out of memory");
        return;
    }
    g->active = 1;
    g->self = self;
    g->seq = ++self->next_seq;
    g->kind = msg->type;
    memcpy(g->rid, rid, rid_n);
    g->rid_n = rid_n;
    g->has_id = has_id;
    g->id = id;
    if (has_id && id.is_str) { /* the request frame goes away: keep our own copy */
        tr_str_copy(id.s, g->id_buf, sizeof g->id_buf);
        g->id.s.p = g->id_buf;
    }
    g->n_waiting = 0;
    uint64_t now = tr_now_ns();
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer_init(&g->replies[i].stats);
        if (self->down[i]) {
            g->replies[i].status = S_DOWN;
            continue;
        }
        tr_msg_t ping;
        tr_msg_init(&ping, TR_MSG_PING);
        TR_MSG_SET(&ping, ping, seq, (int64_t)g->seq);
        TR_MSG_SET(&ping, ping, sent_ns, (int64_t)now);
        if (tr_actor_send(self->actor, self->topo->actors[i].name, &ping) == TR_OK)
            g->n_waiting++;
        else
            g->replies[i].status = S_DOWN;
    }
    ev_timer_init(&g->timer, s_on_gather_timeout, self->health_timeout_s, 0.);
    g->timer.data = g;
    if (g->n_waiting == 0) {
        s_gather_reply(self, g);
        s_gather_end(self, g);
        return;
    }
    ev_timer_start(tr_actor_loop(self->actor), &g->timer);
}

static int s_on_pong(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    uint64_t seq = (uint64_t)msg->u.pong.seq;
    s_gather_t *g = NULL;
    for (int i = 0; i < TR_FRONTEND_MAX_GATHERS && !g; i++)
        if (self->gathers[i].active && self->gathers[i].seq == seq) g = &self->gathers[i];
    if (!g) return TR_OK; /* a late pong for a gather that already timed out */
    char from[TR_TOPO_NAME_MAX];
    tr_str_copy(msg->from, from, sizeof from);
    int idx = -1;
    for (int i = 0; i < self->topo->n_actors; i++)
        if (strcmp(self->topo->actors[i].name, from) == 0) idx = i;
    if (idx < 0 || g->replies[idx].status != S_WAITING) return TR_OK;
    s_reply_t *r = &g->replies[idx];
    r->status = S_OK;
    if (TR_MSG_HAS(msg, pong, sent_ns)) r->latency_ns = tr_now_ns() - (uint64_t)msg->u.pong.sent_ns;
    if (TR_MSG_HAS(msg, pong, stats) && msg->u.pong.stats.obj) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &r->stats, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *msg->u.pong.stats.obj);
    }
    if (--g->n_waiting == 0) {
        s_gather_reply(self, g);
        s_gather_end(self, g);
    }
    return TR_OK;
}

static int s_on_peer_down(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    for (uint32_t i = 0; i < msg->u.peer_down.actors.n; i++) {
        tr_str_t name = tr_strs_at(msg->u.peer_down.actors, i);
        for (int k = 0; k < self->topo->n_actors; k++)
            if (tr_str_eq(name, self->topo->actors[k].name)) self->down[k] = 1;
    }
    char why[400];
    snprintf(why, sizeof why, "process %.*s ended (%.*s)", (int)msg->u.peer_down.process.n,
             msg->u.peer_down.process.p, (int)msg->u.peer_down.reason.n,
             msg->u.peer_down.reason.p);
    s_fail_lost(self, why);
    return TR_OK;
}


/* ---- serving: generate, abort, tokenize, model_info ---- */

/* Whether the launcher has reported the actor `name` down. */
static int s_is_down(const self_t *self, const char *name) {
    for (int i = 0; name && i < self->topo->n_actors; i++)
        if (strcmp(self->topo->actors[i].name, name) == 0) return self->down[i];
    return name == NULL;
}

/* The next live tokenizer, round robin; -1 when none. */
static int s_pick_tokenizer(self_t *self) {
    for (int k = 0; k < self->n_tokenizers; k++) {
        int t = (int)(self->next_tok++ % (unsigned)self->n_tokenizers);
        if (!s_is_down(self, self->tokenizers[t])) return t;
    }
    return -1;
}

static void s_id_keep(tr_id_t *dst, char *buf, size_t n, tr_id_t src) {
    *dst = src;
    if (src.is_str) {
        tr_str_copy(src.s, buf, n);
        dst->s.p = buf;
    }
}

static int s_id_eq(const tr_id_t *a, const tr_id_t *b) {
    if (a->is_str != b->is_str) return 0;
    if (!a->is_str) return a->i == b->i;
    return a->s.n == b->s.n && (a->s.n == 0 || memcmp(a->s.p, b->s.p, a->s.n) == 0);
}

static s_req_t *s_req_new(self_t *self, int kind, const uint8_t *client, size_t client_n,
                          const tr_id_t *id) {
    s_req_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->rid = self->next_rid++;
    r->kind = kind;
    memcpy(r->client, client, client_n);
    r->client_n = client_n;
    if (id) {
        r->has_id = true;
        s_id_keep(&r->id, r->id_buf, sizeof r->id_buf, *id);
    }
    r->arrival_ns = tr_now_ns();
    if (tr_u64map_put(&self->reqs, r->rid, r) != TR_OK) {
        free(r);
        return NULL;
    }
    return r;
}

static void s_req_drop(self_t *self, s_req_t *r) {
    tr_u64map_del(&self->reqs, r->rid);
    s_req_free(r);
}

/* Drops request rid if it is still there: a send to a client that has gone cancels and
 * drops every request of that client, so after s_send_client look requests up again. */
static void s_req_done(self_t *self, uint64_t rid) {
    s_req_t *r = tr_u64map_get(&self->reqs, rid);
    if (r) s_req_drop(self, r);
}

static void s_cancel(self_t *self, const s_req_t *r, const char *reason) {
    tr_msg_t c;
    tr_msg_init(&c, TR_MSG_CANCEL);
    TR_MSG_SET(&c, cancel, rids, ((tr_bin_t){(const uint8_t *)&r->rid, 8}));
    TR_MSG_SET(&c, cancel, reason, tr_str_c(reason));
    tr_actor_send(self->actor, self->tokenizers[r->tok], &c);
}

/* The generate choices that belong to (client, id). */
static int s_find_choices(self_t *self, const uint8_t *client, size_t client_n, const tr_id_t *id,
                          s_req_t **out, int max) {
    int n = 0;
    for (size_t i = 0; i < self->reqs.cap && n < max; i++) {
        s_req_t *r = self->reqs.keys[i] ? self->reqs.vals[i] : NULL;
        if (!r || r->kind != R_GENERATE || r->client_n != client_n ||
            memcmp(r->client, client, client_n) != 0)
            continue;
        if (id ? (r->has_id && s_id_eq(&r->id, id)) : 1) out[n++] = r;
    }
    return n;
}

static void s_client_gone(self_t *self, const uint8_t *client_, size_t client_n) {
    /* client_ may point into one of the requests dropped below: keep a copy */
    uint8_t client[TR_RID_MAX];
    if (client_n > sizeof client) return;
    memcpy(client, client_, client_n);
    s_req_t *rs[256];
    int n;
    int any = 0;
    while ((n = s_find_choices(self, client, client_n, NULL, rs, 256)) > 0) {
        for (int i = 0; i < n; i++) {
            s_cancel(self, rs[i], "disconnect");
            s_req_drop(self, rs[i]);
        }
        any = 1;
    }
    if (any) {
        self->disconnects++;
        TR_INFO("a client went away: its requests are cancelled");
    }
}

static void s_generate(self_t *self, const tr_msg_t *msg, const uint8_t *client, size_t client_n) {
    const tr_msg_generate_t *g = &msg->u.generate;
    bool has_id = TR_MSG_HAS(msg, generate, id);
    const tr_id_t *id = has_id ? &g->id : NULL;
#define REFUSE(field, ...)                                                                 \
    do {                                                                                   \
        s_client_error(self, client, client_n, id, "bad_request", field, __VA_ARGS__);     \
        return;                                                                            \
    } while (0)
    bool has_prompt = TR_MSG_HAS(msg, generate, prompt), has_tokens = TR_MSG_HAS(msg, generate, tokens);
    if (!has_prompt && !has_tokens) REFUSE("prompt", "field 'prompt': give a prompt (or tokens)");
    if (has_prompt && has_tokens)
        REFUSE("prompt", "field 'prompt': give prompt or tokens, not both");
    if (has_prompt && g->prompt.n == 0) REFUSE("prompt", "field 'prompt': the prompt is empty");
    if (has_tokens && g->tokens.n == 0) REFUSE("tokens", "field 'tokens': the prompt is empty");
    if (TR_MSG_HAS(msg, generate, max_tokens) && g->max_tokens < 1)
        REFUSE("max_tokens", "field 'max_tokens': must be at least 1");
    if (TR_MSG_HAS(msg, generate, temperature) && g->temperature < 0)
        REFUSE("temperature", "field 'temperature': must be >= 0 (0 = greedy), got %g",
               g->temperature);
    if (TR_MSG_HAS(msg, generate, top_p) && !(g->top_p > 0 && g->top_p <= 1))
        REFUSE("top_p", "field 'top_p': must be in (0, 1], got %g", g->top_p);
    if (TR_MSG_HAS(msg, generate, min_p) && !(g->min_p >= 0 && g->min_p <= 1))
        REFUSE("min_p", "field 'min_p': must be in [0, 1], got %g", g->min_p);
    if (TR_MSG_HAS(msg, generate, n) && g->n < 1) REFUSE("n", "field 'n': must be at least 1");
    /* a stop string comes back in stop_reason, which clients decode as UTF-8 */
    for (uint32_t i = 0; TR_MSG_HAS(msg, generate, stop) && i < g->stop.n; i++) {
        tr_str_t st = tr_strs_at(g->stop, i);
        if (!tr_utf8_valid(st.p, st.n))
            REFUSE("stop", "field 'stop': string %u is not valid UTF-8", i);
    }
    if (!self->n_tokenizers || !self->scheduler) {
        s_client_error(self, client, client_n, id, "unavailable", NULL,
                       "this topology has no tokenizer or scheduler");
        return;
    }
    int n = TR_MSG_HAS(msg, generate, n) ? (int)g->n : 1;
    if (id) {
        s_req_t *dup[1];
        if (s_find_choices(self, client, client_n, id, dup, 1))
            REFUSE("id", "field 'id': a request with this id is still running");
    }
#undef REFUSE
    if ((int64_t)self->reqs.n + n > self->max_requests) {
        s_client_error(self, client, client_n, id, "busy", NULL,
                       "%zu requests in flight (frontend.max_requests = %lld)", self->reqs.n,
                       (long long)self->max_requests);
        return;
    }
    s_group_t *grp = calloc(1, sizeof *grp);
    if (!grp) {
        s_client_error(self, client, client_n, id, "internal", NULL, "out of memory");
        return;
    }
    grp->n = n;
    grp->n_open = 1; /* our own reference until the loop is done */
    grp->stream = !TR_MSG_HAS(msg, generate, stream) || g->stream;
    grp->want_lp = TR_MSG_HAS(msg, generate, logprobs);
    grp->n_top = grp->want_lp ? (int32_t)g->logprobs : 0;
    if (TR_MSG_HAS(msg, generate, stop) && g->stop.n) {
        grp->stops = calloc(g->stop.n, sizeof *grp->stops);
        for (uint32_t i = 0; grp->stops && i < g->stop.n; i++) {
            tr_str_t st = tr_strs_at(g->stop, i);
            if (!st.n) continue; /* the tokenizer skips empty ones: keep the indices alike */
            grp->stops[grp->n_stops] = malloc(st.n + 1);
            if (grp->stops[grp->n_stops]) tr_str_copy(st, grp->stops[grp->n_stops], st.n + 1);
            grp->n_stops++;
        }
    }
    int tok = s_pick_tokenizer(self);
    if (tok < 0) {
        s_client_error(self, client, client_n, id, "unavailable", NULL,
                       "every tokenizer is down");
        return;
    }
    uint64_t seed = TR_MSG_HAS(msg, generate, seed) ? (uint64_t)g->seed : tr_realtime_ns();
    for (int i = 0; i < n; i++) {
        s_req_t *r = s_req_new(self, R_GENERATE, client, client_n, id);
        if (!r) {
            s_client_error(self, client, client_n, id, "internal", NULL, "out of memory");
            break; /* the choices already sent finish normally */
        }
        r->index = i;
        r->tok = tok;
        r->group = grp;
        grp->n_open++;
        if (i == 0) grp->first_rid = r->rid;
        tr_msg_t f;
        tr_msg_init(&f, TR_MSG_GENERATE);
        f.u.generate = *g;
        f.present = msg->present & ~(1ull << TR_F_generate_n) & ~(1ull << TR_F_generate_stream);
        TR_MSG_SET(&f, generate, id, ((tr_id_t){.is_str = false, .i = (int64_t)r->rid}));
        TR_MSG_SET(&f, generate, seed, (int64_t)((seed + (uint64_t)i) & INT64_MAX));
        if (tr_actor_send(self->actor, self->tokenizers[tok], &f) != TR_OK) {
            s_req_drop(self, r);
            s_client_error(self, client, client_n, id, "unavailable", NULL,
                           "cannot reach %s", self->tokenizers[tok]);
            break;
        }
        self->generated++;
    }
    if (--grp->n_open == 0) {
        for (int i = 0; i < grp->n_stops; i++) free(grp->stops[i]);
        free(grp->stops);
        free(grp);
    }
}

static void s_pack_final(self_t *self, s_req_t *r, int32_t prompt, int64_t queue_us,
                         msgpack_sbuffer *usage, msgpack_sbuffer *metrics);

static void s_abort(self_t *self, const tr_msg_t *msg, const uint8_t *client, size_t client_n) {
    s_req_t *rs[64];
    uint64_t rids[64];
    int n = s_find_choices(self, client, client_n, &msg->u.abort.id, rs, 64);
    for (int i = 0; i < n; i++) rids[i] = rs[i]->rid;
    for (int i = 0; i < n; i++) {
        s_req_t *r = tr_u64map_get(&self->reqs, rids[i]);
        if (!r) continue;
        s_cancel(self, r, "abort");
        tr_msg_t o;
        tr_msg_init(&o, TR_MSG_OUTPUT);
        TR_MSG_SET(&o, output, id, r->id);
        TR_MSG_SET(&o, output, index, r->index);
        TR_MSG_SET(&o, output, finish_reason, tr_str_c("abort"));
        msgpack_sbuffer usage, metrics;
        msgpack_sbuffer_init(&usage);
        msgpack_sbuffer_init(&metrics);
        s_pack_final(self, r, r->n_prompt, 0, &usage, &metrics);
        TR_MSG_SET(&o, output, usage, ((tr_any_t){NULL, usage.data, usage.size}));
        TR_MSG_SET(&o, output, metrics, ((tr_any_t){NULL, metrics.data, metrics.size}));
        if (!r->group->stream) {
            TR_MSG_SET(&o, output, tokens, tr_buf_i32s(&r->toks));
            TR_MSG_SET(&o, output, text, ((tr_str_t){(const char *)r->text.p, (uint32_t)r->text.n}));
        }
        self->aborted++;
        s_send_client(self, r->client, r->client_n, &o);
        msgpack_sbuffer_destroy(&usage);
        msgpack_sbuffer_destroy(&metrics);
        s_req_done(self, rids[i]);
    }
}

static void s_forward(self_t *self, const tr_msg_t *msg, const uint8_t *client, size_t client_n) {
    tr_id_t cid;
    bool has_id = tr_msg_id(msg, &cid);
    int tok = msg->type == TR_MSG_TOKENIZE ? s_pick_tokenizer(self) : -1;
    const char *to = msg->type == TR_MSG_TOKENIZE ? (tok >= 0 ? self->tokenizers[tok] : NULL)
                                                  : (s_is_down(self, self->scheduler) ? NULL
                                                                                      : self->scheduler);
    if (!to) {
        s_client_error(self, client, client_n, has_id ? &cid : NULL, "unavailable", NULL,
                       "no %s is serving", msg->type == TR_MSG_TOKENIZE ? "tokenizer"
                                                                        : "scheduler");
        return;
    }
    s_req_t *r = s_req_new(self, msg->type == TR_MSG_TOKENIZE ? R_TOKENIZE : R_MODEL_INFO,
                           client, client_n, has_id ? &cid : NULL);
    if (!r) {
        s_client_error(self, client, client_n, has_id ? &cid : NULL, "internal", NULL,
                       "out of memory");
        return;
    }
    r->tok = tok;
    tr_msg_t f; /* only what the request may carry: a client cannot pose as an executor */
    tr_msg_init(&f, msg->type);
    tr_id_t rid = {.is_str = false, .i = (int64_t)r->rid};
    if (msg->type == TR_MSG_TOKENIZE) {
        TR_MSG_SET(&f, tokenize, id, rid);
        if (TR_MSG_HAS(msg, tokenize, text)) TR_MSG_SET(&f, tokenize, text, msg->u.tokenize.text);
        if (TR_MSG_HAS(msg, tokenize, add_special))
            TR_MSG_SET(&f, tokenize, add_special, msg->u.tokenize.add_special);
    } else {
        TR_MSG_SET(&f, model_info, id, rid);
    }
    if (tr_actor_send(self->actor, to, &f) != TR_OK) {
        s_req_drop(self, r);
        s_client_error(self, client, client_n, has_id ? &cid : NULL, "unavailable", NULL,
                       "cannot reach %s", to);
    }
}

/* The request an actor's reply is about (its id is our rid), or NULL. */
static s_req_t *s_req_of(self_t *self, const tr_id_t *id) {
    if (id->is_str || id->i <= 0) return NULL;
    return tr_u64map_get(&self->reqs, (uint64_t)id->i);
}

static int s_on_reply(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    tr_id_t id;
    if (!tr_msg_id(msg, &id)) return TR_OK;
    s_req_t *r = s_req_of(self, &id);
    if (!r || r->kind == R_GENERATE) return TR_OK;
    tr_msg_t f = *msg;
    f.zone = NULL;
    f.from = (tr_str_t){NULL, 0};
    if (msg->type == TR_MSG_TOKENIZE) {
        f.present &= ~(1ull << TR_F_tokenize_id);
        if (r->has_id) TR_MSG_SET(&f, tokenize, id, r->id);
    } else {
        f.present &= ~((1ull << TR_F_model_info_id) | (1ull << TR_F_model_info_rank));
        if (r->has_id) TR_MSG_SET(&f, model_info, id, r->id);
    }
    uint64_t rid = r->rid;
    s_send_client(self, r->client, r->client_n, &f);
    s_req_done(self, rid);
    return TR_OK;
}

/* Ends request r (and, when nothing was streamed yet, its sibling choices) with an error:
 * one `error` reply if the client has seen nothing of the request, else a final output
 * with finish_reason error. */
static void s_fail_req(self_t *self, s_req_t *r, const char *code, const char *field,
                       const char *text);

static int s_on_error(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_error_t *e = &msg->u.error;
    s_req_t *r = TR_MSG_HAS(msg, error, id) ? s_req_of(self, &e->id) : NULL;
    if (!r) {
        TR_WARN("%.*s: %.*s: %.*s", (int)msg->from.n, msg->from.p, (int)e->code.n, e->code.p,
                (int)e->message.n, e->message.p);
        return TR_OK;
    }
    char code[32], field[128], text[4097];
    tr_str_copy(e->code, code, sizeof code);
    tr_str_copy(TR_MSG_HAS(msg, error, field) ? e->field : (tr_str_t){NULL, 0}, field, sizeof field);
    tr_str_copy(e->message, text, sizeof text);
    s_fail_req(self, r, code, field[0] ? field : NULL, text);
    return TR_OK;
}

static void s_fail_req(self_t *self, s_req_t *r, const char *code, const char *field,
                       const char *text) {
    s_count_error(self, code);
    if (r->kind != R_GENERATE || !r->group->sent) {
        /* nothing streamed yet: the request (every choice) ends with one error */
        tr_msg_t m;
        tr_msg_init_error(&m, r->has_id ? &r->id : NULL, code, field, text);
        uint64_t rid = r->rid;
        s_send_client(self, r->client, r->client_n, &m);
        if (!(r = tr_u64map_get(&self->reqs, rid))) return;
        if (r->kind == R_GENERATE) { /* the siblings: rids first_rid .. first_rid + n - 1 */
            s_group_t *grp = r->group;
            for (int i = 0; i < grp->n; i++) {
                s_req_t *o = tr_u64map_get(&self->reqs, grp->first_rid + (uint64_t)i);
                if (!o || o == r || o->group != grp) continue;
                s_cancel(self, o, "error");
                s_req_drop(self, o);
            }
        }
        s_req_drop(self, r);
        return;
    }
    tr_msg_t o;
    tr_msg_init(&o, TR_MSG_OUTPUT);
    TR_MSG_SET(&o, output, id, r->id);
    TR_MSG_SET(&o, output, index, r->index);
    TR_MSG_SET(&o, output, finish_reason, tr_str_c("error"));
    TR_MSG_SET(&o, output, error, tr_str_c(text));
    uint64_t rid = r->rid;
    s_send_client(self, r->client, r->client_n, &o);
    s_req_done(self, rid);
}

static void s_fail_lost(self_t *self, const char *why) {
    bool sched_down = s_is_down(self, self->scheduler);
    uint64_t *rids = malloc((self->reqs.n + 1) * sizeof *rids);
    size_t n = 0;
    if (!rids) return;
    for (size_t i = 0; i < self->reqs.cap; i++) {
        s_req_t *r = self->reqs.keys[i] ? self->reqs.vals[i] : NULL;
        if (!r) continue;
        bool tok_down = r->kind != R_MODEL_INFO && s_is_down(self, self->tokenizers[r->tok]);
        if (tok_down || (sched_down && r->kind != R_TOKENIZE)) rids[n++] = r->rid;
    }
    char text[512];
    snprintf(text, sizeof text, "%s: the request is lost", why);
    for (size_t i = 0; i < n; i++) {
        s_req_t *r = tr_u64map_get(&self->reqs, rids[i]);
        if (r) s_fail_req(self, r, "unavailable", NULL, text);
    }
    free(rids);
}

/* Packs {prompt_tokens, completion_tokens} and the metrics of a finished choice. */
static void s_pack_final(self_t *self, s_req_t *r, int32_t prompt, int64_t queue_us,
                         msgpack_sbuffer *usage, msgpack_sbuffer *metrics) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, usage, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    tr_pack_cstr(&pk, "prompt_tokens");
    msgpack_pack_int32(&pk, prompt);
    tr_pack_cstr(&pk, "completion_tokens");
    msgpack_pack_int64(&pk, r->n_out);
    uint64_t now = tr_now_ns();
    double e2e = (double)(now - r->arrival_ns) / 1e6;
    double ttft = r->first_ns ? (double)(r->first_ns - r->arrival_ns) / 1e6 : e2e;
    double tpot = r->n_out > 1 ? (double)(now - r->first_ns) / 1e6 / (double)(r->n_out - 1) : 0;
    msgpack_packer_init(&pk, metrics, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    tr_pack_cstr(&pk, "queue_ms");
    msgpack_pack_double(&pk, (double)queue_us / 1e3);
    tr_pack_cstr(&pk, "ttft_ms");
    msgpack_pack_double(&pk, ttft);
    tr_pack_cstr(&pk, "tpot_ms");
    msgpack_pack_double(&pk, tpot);
    tr_pack_cstr(&pk, "e2e_ms");
    msgpack_pack_double(&pk, e2e);
}

static int s_on_deltas(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_deltas_t *d = &msg->u.deltas;
    int64_t n = tr_bin_count(d->rids, 8);
    if (n < 0 || d->n_tokens.n != n || d->finish.n != n ||
        (TR_MSG_HAS(msg, deltas, text_len) && d->text_len.n != n) ||
        (TR_MSG_HAS(msg, deltas, n_top) && d->n_top.n != n)) {
        TR_WARN("malformed deltas from %.*s", (int)msg->from.n, msg->from.p);
        return TR_EINVAL;
    }
    {   /* every row's slices must lie inside the arrays: check once, in 64 bits */
        uint64_t nt_sum = 0, top_sum = 0, text_sum = 0;
        for (uint32_t i = 0; i < (uint32_t)n; i++) {
            int64_t nt = tr_i32s_at(d->n_tokens, i);
            int64_t k = TR_MSG_HAS(msg, deltas, n_top) ? tr_i32s_at(d->n_top, i) : 0;
            int64_t tl = TR_MSG_HAS(msg, deltas, text_len) ? tr_i32s_at(d->text_len, i) : 0;
            if (nt < 0 || k < 0 || k > 20 || tl < 0) nt_sum = UINT64_MAX / 2;
            nt_sum += (uint64_t)nt;
            top_sum += (uint64_t)(k * nt);
            text_sum += (uint64_t)tl;
        }
        if (nt_sum > d->tokens.n || text_sum > d->text.n ||
            (top_sum && top_sum > d->top_tokens.n)) {
            TR_WARN("deltas from %.*s: rows exceed the arrays", (int)msg->from.n, msg->from.p);
            return TR_EINVAL;
        }
    }
    int64_t n_lp = tr_bin_count(d->logprobs, 4), n_toplp = tr_bin_count(d->top_logprobs, 4);
    uint32_t tok_off = 0, top_off = 0, text_off = 0;
    uint64_t now = tr_now_ns();
    for (uint32_t i = 0; i < (uint32_t)n; i++) {
        int32_t nt = tr_i32s_at(d->n_tokens, i);
        int32_t n_top = TR_MSG_HAS(msg, deltas, n_top) ? tr_i32s_at(d->n_top, i) : 0;
        int32_t tl = TR_MSG_HAS(msg, deltas, text_len) ? tr_i32s_at(d->text_len, i) : 0;
        if (nt < 0 || tl < 0 || tok_off + (uint32_t)nt > d->tokens.n ||
            text_off + (uint32_t)tl > d->text.n)
            break;
        uint32_t my_tok = tok_off, my_top = top_off, my_text = text_off;
        tok_off += (uint32_t)nt;
        text_off += (uint32_t)tl;
        if (n_top > 0) top_off += (uint32_t)(n_top * nt);
        s_req_t *r = tr_u64map_get(&self->reqs, (uint64_t)tr_bin_i64(d->rids, i));
        if (!r || r->kind != R_GENERATE) continue; /* aborted or gone */
        s_group_t *grp = r->group;
        if (nt > 0 && !r->first_ns) r->first_ns = now;
        if (d->prompt_tokens.n > i) r->n_prompt = tr_i32s_at(d->prompt_tokens, i);
        r->n_out += nt;
        int32_t fin = tr_i32s_at(d->finish, i);
        tr_i32s_t toks = {d->tokens.p + 4 * (size_t)my_tok, (uint32_t)nt};
        tr_str_t text = {(const char *)d->text.p + my_text, (uint32_t)tl};
        bool lp_ok = grp->want_lp && n_lp >= (int64_t)(my_tok + (uint32_t)nt);
        tr_bin_t lp = {lp_ok ? d->logprobs.p + 4 * (size_t)my_tok : NULL, lp_ok ? 4 * (uint32_t)nt : 0};
        bool top_ok = grp->n_top > 0 && n_top == grp->n_top &&
                      my_top + (uint32_t)(n_top * nt) <= d->top_tokens.n &&
                      n_toplp >= (int64_t)(my_top + (uint32_t)(n_top * nt));
        tr_i32s_t top = {top_ok ? d->top_tokens.p + 4 * (size_t)my_top : NULL,
                         top_ok ? (uint32_t)(n_top * nt) : 0};
        tr_bin_t toplp = {top_ok ? d->top_logprobs.p + 4 * (size_t)my_top : NULL,
                          top_ok ? 4 * (uint32_t)(n_top * nt) : 0};
        if (!grp->stream) { /* keep it for the one final message */
            tr_buf_put(&r->toks, toks.p, 4 * (size_t)toks.n);
            tr_buf_put(&r->text, text.p, text.n);
            if (lp_ok) tr_buf_put(&r->lp, lp.p, lp.n);
            if (top_ok) {
                tr_buf_put(&r->top, top.p, 4 * (size_t)top.n);
                tr_buf_put(&r->toplp, toplp.p, toplp.n);
            }
            if (fin == TR_FINISH_NONE) continue;
            toks = tr_buf_i32s(&r->toks);
            text = (tr_str_t){(const char *)r->text.p, (uint32_t)r->text.n};
            lp = tr_buf_bin(&r->lp);
            top = tr_buf_i32s(&r->top);
            toplp = tr_buf_bin(&r->toplp);
        }
        tr_msg_t o;
        tr_msg_init(&o, TR_MSG_OUTPUT);
        TR_MSG_SET(&o, output, id,
                   r->has_id ? r->id : ((tr_id_t){.is_str = false, .i = (int64_t)grp->first_rid}));
        TR_MSG_SET(&o, output, index, r->index);
        TR_MSG_SET(&o, output, tokens, toks);
        TR_MSG_SET(&o, output, text, text);
        if (grp->want_lp) TR_MSG_SET(&o, output, logprobs, lp);
        if (grp->n_top > 0) {
            TR_MSG_SET(&o, output, top_tokens, top);
            TR_MSG_SET(&o, output, top_logprobs, toplp);
        }
        msgpack_sbuffer usage, metrics, stop;
        msgpack_sbuffer_init(&usage);
        msgpack_sbuffer_init(&metrics);
        msgpack_sbuffer_init(&stop);
        if (fin != TR_FINISH_NONE) {
            const char *why = tr_finish_name(fin);
            TR_MSG_SET(&o, output, finish_reason, tr_str_c(why ? why : "error"));
            int32_t prompt = d->prompt_tokens.n > i ? tr_i32s_at(d->prompt_tokens, i) : 0;
            int64_t queue = tr_bin_count(d->queue_us, 8) > (int64_t)i ? tr_bin_i64(d->queue_us, i) : 0;
            s_pack_final(self, r, prompt, queue, &usage, &metrics);
            TR_MSG_SET(&o, output, usage, ((tr_any_t){NULL, usage.data, usage.size}));
            TR_MSG_SET(&o, output, metrics, ((tr_any_t){NULL, metrics.data, metrics.size}));
            int32_t stop_tok = d->stop_token.n > i ? tr_i32s_at(d->stop_token, i) : -1;
            int32_t stop_str = d->stop_str.n > i ? tr_i32s_at(d->stop_str, i) : -1;
            msgpack_packer pk;
            msgpack_packer_init(&pk, &stop, msgpack_sbuffer_write);
            if (fin == TR_FINISH_STOP && stop_str >= 0 && stop_str < grp->n_stops &&
                grp->stops[stop_str])
                tr_pack_cstr(&pk, grp->stops[stop_str]);
            else if (fin == TR_FINISH_STOP && stop_tok >= 0)
                msgpack_pack_int32(&pk, stop_tok);
            if (stop.size)
                TR_MSG_SET(&o, output, stop_reason, ((tr_any_t){NULL, stop.data, stop.size}));
        }
        grp->sent = true;
        uint64_t rid = r->rid;
        int rc = s_send_client(self, r->client, r->client_n, &o);
        if (rc == TR_EINVAL || rc == TR_AGAIN) {
            /* too large for the protocol (e.g. stream=false with many logprobs), or a client
             * that does not read: end the choice rather than lose its final message */
            s_req_t *still = tr_u64map_get(&self->reqs, rid);
            if (still) {
                if (fin == TR_FINISH_NONE) s_cancel(self, still, "error");
                tr_msg_t e;
                tr_msg_init(&e, TR_MSG_OUTPUT);
                TR_MSG_SET(&e, output, id, o.u.output.id);
                TR_MSG_SET(&e, output, index, still->index);
                TR_MSG_SET(&e, output, finish_reason, tr_str_c("error"));
                TR_MSG_SET(&e, output, error,
                           tr_str_c(rc == TR_EINVAL ? "the output exceeds the protocol's limits"
                                                    : "the client does not read its replies"));
                s_count_error(self, rc == TR_EINVAL ? "too_large" : "busy");
                s_send_client(self, still->client, still->client_n, &e);
                s_req_done(self, rid);
            }
        } else if (fin != TR_FINISH_NONE) {
            self->finished++;
            s_req_done(self, rid);
        }
        msgpack_sbuffer_destroy(&usage);
        msgpack_sbuffer_destroy(&metrics);
        msgpack_sbuffer_destroy(&stop);
    }
    return TR_OK;
}

/* ---- client socket ---- */

static void s_tap(self_t *self, const uint8_t *rid, size_t rid_n, size_t size,
                  const tr_msg_t *decoded, const char *error_code) {
    if (!self->taps) return;
    tr_msg_t t;
    tr_msg_init(&t, TR_MSG_TAP);
    TR_MSG_SET(&t, tap, client, ((tr_bin_t){rid, (uint32_t)rid_n}));
    TR_MSG_SET(&t, tap, recv_ns, (int64_t)tr_realtime_ns());
    TR_MSG_SET(&t, tap, size, (int64_t)size);
    if (decoded) TR_MSG_SET(&t, tap, request, ((tr_any_t){decoded->root, NULL, 0}));
    if (error_code) TR_MSG_SET(&t, tap, error, tr_str_c(error_code));
    for (int i = 0; i < self->taps->n_list; i++) tr_actor_send(self->actor, self->taps->list[i], &t);
}

/* Handles one client message: [routing id][payload] (more payload frames are an error). */
static void s_client_message(self_t *self, const uint8_t *rid, size_t rid_n, const void *data,
                             size_t size, int extra_frames) {
    self->requests++;
    self->bytes_in += size;
    if (extra_frames) {
        s_client_error(self, rid, rid_n, NULL, "bad_request", NULL,
                       "expected one frame holding one msgpack map, got %d frames",
                       extra_frames + 1);
        s_tap(self, rid, rid_n, size, NULL, "bad_request");
        return;
    }
    if (size > self->max_message_bytes) {
        s_client_error(self, rid, rid_n, NULL, "too_large", NULL,
                       "message of %zu bytes exceeds the limit of %zu bytes "
                       "(frontend.max_message_bytes)",
                       size, self->max_message_bytes);
        s_tap(self, rid, rid_n, size, NULL, "too_large");
        return;
    }
    tr_msg_t msg;
    tr_msg_err_t err;
    if (tr_msg_decode(&msg, data, size, &err) != TR_OK) {
        s_client_error(self, rid, rid_n, err.has_id ? &err.id : NULL, err.code, err.field, "%s",
                       err.text);
        s_tap(self, rid, rid_n, size, NULL, err.code);
        return;
    }
    const char *error_code = NULL;
    switch (msg.type) {
    case TR_MSG_HEALTH:
    case TR_MSG_STATS:
        s_gather_start(self, &msg, rid, rid_n);
        break;
    case TR_MSG_GENERATE:
        s_generate(self, &msg, rid, rid_n);
        break;
    case TR_MSG_ABORT:
        s_abort(self, &msg, rid, rid_n);
        break;
    case TR_MSG_TOKENIZE:
    case TR_MSG_MODEL_INFO:
        s_forward(self, &msg, rid, rid_n);
        break;
    default:
        error_code = "unknown_type";
        s_client_error(self, rid, rid_n, NULL, error_code, "type",
                       "'%s' is an internal message, not a client request",
                       tr_msg_type_name(msg.type));
        break;
    }
    s_tap(self, rid, rid_n, size, &msg, error_code);
    tr_msg_fini(&msg);
}

static void s_on_client(struct ev_loop *loop, tr_zwatch_t *w, int revents) {
    self_t *self = w->data;
    for (int n = 0; n < TR_ZWATCH_BUDGET; n++) {
        uint8_t rid[TR_RID_MAX];
        int rid_n = zmq_recv(self->sock, rid, sizeof rid, ZMQ_DONTWAIT);
        if (rid_n < 0) return;
        int more = 0;
        size_t sz = sizeof more;
        zmq_getsockopt(self->sock, ZMQ_RCVMORE, &more, &sz);
        if (!more || rid_n > (int)sizeof rid) continue; /* cannot happen with ROUTER */
        zmq_msg_t payload;
        zmq_msg_init(&payload);
        if (zmq_msg_recv(&payload, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&payload);
            continue;
        }
        int extra = 0;
        for (int more_frames = zmq_msg_more(&payload); more_frames; extra++) {
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            if (zmq_msg_recv(&junk, self->sock, ZMQ_DONTWAIT) < 0) more_frames = 0;
            else more_frames = zmq_msg_more(&junk);
            zmq_msg_close(&junk);
        }
        s_client_message(self, rid, (size_t)rid_n, zmq_msg_data(&payload), zmq_msg_size(&payload),
                         extra);
        zmq_msg_close(&payload);
    }
}
