/*  runtime/actor.h - actors and the node that runs them.
 *
 *  An actor is a name, a state struct (`self`), a table of handlers keyed by message
 *  type, and optional hooks; it is described by a constant tr_actor_spec_t (the actor's
 *  file exports one, see actors/frontend.c and examples/actors/reqlog.c). The runtime
 *  owns everything else: each actor gets its own thread, libev loop and ZeroMQ inbox
 *  (a PULL socket bound at the endpoints the topology derived); messages to other actors
 *  go through PUSH sockets connected lazily by destination name. Incoming frames are
 *  decoded and validated against transport/msgs.def before a handler sees them.
 *
 *  Built in, for every actor: `ping` is answered with `pong` carrying the runtime's
 *  counters (and the spec's stats hook), so liveness is measured through the handler
 *  queue; `peer_down` is logged and then dispatched like any message; a message type the
 *  actor has no handler for is answered with an `error` (code unknown_type) when the
 *  sender is known, and counted.
 *
 *  Handlers: `int fn(void *self, const tr_msg_t *msg)`. The message (and everything it
 *  points to) is valid only until the handler returns. A handler never blocks; it
 *  returns TR_OK, or a negative status after it has answered the request with an error
 *  itself (the runtime counts it and logs at debug level). Slow work goes to another
 *  thread and comes back through an ev_async or a message to self.
 *
 *  Threads: every tr_actor_* function below is for the actor's own thread (its
 *  handlers and hooks), except where noted. tr_node_* functions are for the thread that
 *  created the node.
 *
 *      static const tr_handler_t s_handlers[] = {{TR_MSG_TAP, s_on_tap}, {0, NULL}};
 *      const tr_actor_spec_t tr_reqlog_spec = {
 *          .name = "reqlog", .handlers = s_handlers,
 *          .state_new = s_self_new, .state_destroy = s_self_destroy };               */
#ifndef TR_ACTOR_H
#define TR_ACTOR_H

#include <ev.h>
#include <msgpack.h>
#include <stdint.h>

#include "runtime/topology.h"
#include "runtime/zwatch.h"
#include "transport/msg.h"

typedef struct tr_actor tr_actor_t;
typedef struct tr_node tr_node_t;

typedef int (*tr_handler_fn)(void *self, const tr_msg_t *msg);

typedef struct {
    tr_msg_type_t type;
    tr_handler_fn fn;
} tr_handler_t;

typedef struct tr_actor_spec {
    const char *name;                  /* kind, as written in topology files */
    const char *summary;               /* one line for `troupe actors` and docs */
    int ranked;                        /* 1: one instance per rank (executor, communicator) */
    const tr_handler_t *handlers;      /* terminated by {0, NULL} */
    const char *conf_section;          /* its topology section ("kv"); NULL: none */
    const tr_conf_key_t *conf_keys;    /* the section's accepted keys, {NULL}-terminated */
    /* Creates the actor's state on its thread. May bind sockets and start watchers on
     * tr_actor_loop(). Returns NULL on failure (after logging why): the node fails to start. */
    void *(*state_new)(tr_actor_t *actor);
    /* Stops the state's watchers, closes its sockets, frees it, sets *self_p = NULL. */
    void (*state_destroy)(void **self_p);
    /* Called once per loop turn before the loop sleeps (redis beforeSleep): the scheduler
     * forms one batch from every message that arrived in the turn. May be NULL. */
    void (*before_sleep)(void *self);
    /* Packs the actor's own counters as one msgpack map (for `stats`). May be NULL. */
    void (*stats)(void *self, msgpack_packer *pk);
} tr_actor_spec_t;

/* ---- for actor code (its own thread) ---- */

const char *tr_actor_name(const tr_actor_t *a);      /* instance name: "executor.0" */
const char *tr_actor_kind(const tr_actor_t *a);
int tr_actor_rank(const tr_actor_t *a);               /* -1 for unranked kinds */
struct ev_loop *tr_actor_loop(const tr_actor_t *a);
void *tr_actor_zctx(const tr_actor_t *a);             /* the process's ZeroMQ context */
const tr_topology_t *tr_actor_topology(const tr_actor_t *a);
int tr_actor_process(const tr_actor_t *a);            /* index into topology->procs */
/* Its topology section (spec->conf_section), or NULL when the file has none. */
const tr_conf_section_t *tr_actor_conf(const tr_actor_t *a);

/* Sends m to the actor instance named `to` (sets m->from). Never blocks. Returns TR_OK,
 * TR_ENOENT (no such actor in the topology), TR_EINVAL (m breaks the schema) or TR_EZMQ.
 * m's borrowed data only needs to live until the call returns (it is packed at once).
 * Messages to one peer are coalesced: they leave, in order, in one frame after the
 * current inbox frame has been handled or before the loop sleeps, whichever comes first
 * (runtime/actor.c); a message over 8 KiB leaves at once. */
int tr_actor_send(tr_actor_t *a, const char *to, tr_msg_t *m);
/* Sends m to the sender of `req` (req->from). TR_ENOENT if req carries no sender. */
int tr_actor_reply(tr_actor_t *a, const tr_msg_t *req, tr_msg_t *m);
/* Answers req's sender with an error naming code/field; echoes req's id when it has one. */
int tr_actor_reply_error(tr_actor_t *a, const tr_msg_t *req, const char *code, const char *field,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Counts a message sent on a socket the actor owns itself (frontend's client socket). */
void tr_actor_count_out(tr_actor_t *a, uint64_t n);

/* Monotonic and realtime clocks in nanoseconds. Any thread. */
uint64_t tr_now_ns(void);
uint64_t tr_realtime_ns(void);

/* ---- nodes: the actors of one process ---- */

/* Looks up an actor spec by kind (actors/registry.c provides tr_registry_find). */
typedef const tr_actor_spec_t *(*tr_spec_lookup_fn)(const char *kind);

/* A node for process `process` of `topo` (borrowed; must outlive the node, with its
 * endpoints derived). zctx: the ZeroMQ context to use (borrowed), or NULL to own one.
 * Returns NULL if an actor kind is unknown (logged). */
tr_node_t *tr_node_new(const tr_topology_t *topo, int process, tr_spec_lookup_fn lookup,
                       void *zctx);
/* Starts every actor thread and waits until each has bound its inbox and created its
 * state. On failure stops those already started and returns an error (err says which
 * actor failed and why). */
int tr_node_start(tr_node_t *node, char *err, size_t errlen);
/* Graceful stop: each actor handles what is already in its inbox, then its state is
 * destroyed, its sockets closed and its thread joined. Idempotent. */
void tr_node_stop(tr_node_t *node);
/* Stops if needed, frees, terminates an owned context; NULL-safe; sets *node_p = NULL. */
void tr_node_destroy(tr_node_t **node_p);

int tr_node_n_actors(const tr_node_t *node);
const char *tr_node_actor_name(const tr_node_t *node, int i);
void *tr_node_zctx(const tr_node_t *node);

#endif
