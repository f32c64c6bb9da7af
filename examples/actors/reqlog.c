/*  examples/actors/reqlog.c - a request logger: the actor to copy when adding your own.
 *  Owns:    an open log file (JSON Lines), a sampling accumulator, counters.
 *  Accepts: TAP (a copy of each client request, sent by the frontend to every actor
 *           listed in `frontend: {tap: [...]}`).   Sends: nothing.
 *  Thread:  its own loop; handlers never block (one buffered fwrite per request).
 *
 *  Wire it in through a topology file (examples/topologies/reqlog.yaml):
 *      processes:
 *        - {name: main, actors: [frontend, tokenizer, scheduler, kv_manager,
 *                                executor, communicator, reqlog]}
 *      frontend: {tap: [reqlog]}
 *      reqlog: {path: requests.jsonl, sample: 1.0}
 *
 *  To make your own: copy this file, rename the spec and its section, declare the spec in
 *  actors/registry.h and add it to the table in actors/registry.c. Handlers receive
 *  decoded, validated messages (transport/msgs.def); add a row there for a new type.   */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/registry.h"
#include "runtime/log.h"

typedef struct {
    tr_actor_t *actor;  /* borrowed */
    FILE *out;          /* owned unless it is stderr */
    double sample;      /* fraction of requests logged, in [0, 1] */
    double acc;         /* sampling accumulator: deterministic, no RNG */
    uint64_t seen, logged;
} self_t;

static int s_on_tap(void *self, const tr_msg_t *msg);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_TAP, s_on_tap}, /* -> one JSON line */
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"path", TR_CONF_STR, "file to append JSON lines to; \"-\" for stderr (default)"},
    {"sample", TR_CONF_FLOAT, "fraction of requests to log, 0..1 (default 1)"},
    {NULL, 0, NULL},
};

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    const tr_conf_section_t *conf = tr_actor_conf(actor);
    const char *path = tr_conf_get_str(conf, "path", "-");
    self->sample = tr_conf_get_float(conf, "sample", 1.0);
    if (self->sample < 0 || self->sample > 1) {
        TR_ERROR("reqlog.sample must be within [0, 1], got %g", self->sample);
        free(self);
        return NULL;
    }
    self->out = strcmp(path, "-") == 0 ? stderr : fopen(path, "a");
    if (!self->out) {
        TR_ERROR("reqlog: cannot open %s: %m", path);
        free(self);
        return NULL;
    }
    return self;
}

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    if (self->out != stderr) fclose(self->out);
    else fflush(stderr);
    free(self);
    *self_p = NULL;
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    msgpack_pack_map(pk, 2);
    tr_pack_cstr(pk, "seen");
    msgpack_pack_uint64(pk, self->seen);
    tr_pack_cstr(pk, "logged");
    msgpack_pack_uint64(pk, self->logged);
}

/* The request's "type" and "id" from the tapped map, as JSON values. */
static void s_add_request_fields(json_t *line, const msgpack_object *req) {
    if (!req || req->type != MSGPACK_OBJECT_MAP) return;
    for (uint32_t i = 0; i < req->via.map.size; i++) {
        const msgpack_object *k = &req->via.map.ptr[i].key, *v = &req->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) continue;
        tr_str_t key = {k->via.str.ptr, k->via.str.size};
        if (!tr_str_eq(key, "type") && !tr_str_eq(key, "id")) continue;
        char name[8];
        tr_str_copy(key, name, sizeof name);
        if (v->type == MSGPACK_OBJECT_STR) { /* msgpack-c may leave ptr NULL for "" */
            const char *p = v->via.str.ptr ? v->via.str.ptr : "";
            json_object_set_new(line, name, json_stringn(p, v->via.str.size));
        } else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            json_object_set_new(line, name, json_integer((json_int_t)v->via.u64));
        } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            json_object_set_new(line, name, json_integer((json_int_t)v->via.i64));
        }
    }
}

static int s_on_tap(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_tap_t *t = &msg->u.tap;
    self->seen++;
    self->acc += self->sample;
    if (self->acc < 1.0) return TR_OK;
    self->acc -= 1.0;

    char client[2 * 256 + 1];
    for (uint32_t i = 0; i < t->client.n && i < 256; i++)
        snprintf(client + 2 * i, 3, "%02x", t->client.p[i]);
    client[2 * (t->client.n < 256 ? t->client.n : 256)] = '\0';

    json_t *line = json_object();
    json_object_set_new(line, "t_ns", json_integer((json_int_t)t->recv_ns));
    json_object_set_new(line, "client", json_string(client));
    json_object_set_new(line, "bytes", json_integer((json_int_t)t->size));
    if (TR_MSG_HAS(msg, tap, request)) s_add_request_fields(line, t->request.obj);
    if (TR_MSG_HAS(msg, tap, error))
        json_object_set_new(line, "error", json_stringn(t->error.p ? t->error.p : "", t->error.n));
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (!text) return TR_ENOMEM;
    fprintf(self->out, "%s\n", text);
    fflush(self->out);
    free(text);
    self->logged++;
    return TR_OK;
}

const tr_actor_spec_t tr_reqlog_spec = {
    .name = "reqlog",
    .summary = "example: logs every client request tapped from the frontend as JSON lines",
    .handlers = s_handlers,
    .conf_section = "reqlog",
    .conf_keys = s_conf_keys,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .stats = s_stats,
};
