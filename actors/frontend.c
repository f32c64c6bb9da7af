/*  actors/frontend.c - the client-facing actor.
 *  Owns:    the client ROUTER socket (default tcp://127.0.0.1:5555), pending health/stats
 *           gathers, per-error-code counters, the list of tap actors.
 *  Accepts: from clients (one msgpack map per frame): health, stats; generate, abort,
 *           tokenize, model_info answer `error{code: unavailable}` until the serving path
 *           lands. From actors: pong, peer_down.
 *  Sends:   to clients: health, stats, error. To actors: ping (gathers), tap (copies of
 *           client requests to the actors named in frontend.tap).
 *  Thread:  its own loop; handlers never block. A health or stats request pings every
 *           actor through its inbox (liveness on the data path, DESIGN.md 3) and answers
 *           when all have ponged or health_timeout_ms has passed.                        */
#include "actors/registry.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "runtime/log.h"
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
} self_t;

static int s_on_pong(void *self, const tr_msg_t *msg);
static int s_on_peer_down(void *self, const tr_msg_t *msg);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_PONG, s_on_pong},           /* -> completes a gather: health / stats reply */
    {TR_MSG_PEER_DOWN, s_on_peer_down}, /* -> marks that process's actors down */
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"max_message_bytes", TR_CONF_INT, "largest client frame accepted (default 16 MiB)"},
    {"health_timeout_ms", TR_CONF_INT, "how long health/stats wait for each actor (1000)"},
    {"tap", TR_CONF_STRLIST, "actors that receive a copy of every client request"},
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
    free(self);
    return NULL;
}

static void s_gather_end(self_t *self, s_gather_t *g);

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    struct ev_loop *loop = tr_actor_loop(self->actor);
    for (int i = 0; i < TR_FRONTEND_MAX_GATHERS; i++)
        if (self->gathers[i].active) s_gather_end(self, &self->gathers[i]);
    tr_zwatch_stop(loop, &self->sock_w);
    zmq_close(self->sock);
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
    msgpack_pack_map(pk, 5);
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

static void s_send_client(self_t *self, const uint8_t *rid, size_t rid_n, const tr_msg_t *m) {
    int rc = tr_wire_send_routed(self->sock, rid, rid_n, m);
    if (rc == TR_OK) {
        self->replies_out++;
        tr_actor_count_out(self->actor, 1);
    } else {
        TR_DEBUG("reply to a client failed (%s): it may have gone", tr_strerror(rc));
    }
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
    tr_id_t id;
    switch (msg.type) {
    case TR_MSG_HEALTH:
    case TR_MSG_STATS:
        s_gather_start(self, &msg, rid, rid_n);
        break;
    case TR_MSG_GENERATE:
    case TR_MSG_ABORT:
    case TR_MSG_TOKENIZE:
    case TR_MSG_MODEL_INFO:
        error_code = "unavailable";
        s_client_error(self, rid, rid_n, tr_msg_id(&msg, &id) ? &id : NULL, error_code, NULL,
                       "'%s' is not served yet: this build has no serving path "
                       "(tokenizer/scheduler/executor)",
                       tr_msg_type_name(msg.type));
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
