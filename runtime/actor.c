/*  runtime/actor.c - the actor runtime: threads, loops, inboxes, outboxes, dispatch.
 *
 *  Owns: each actor's thread, libev loop, inbox (PULL, bound) and outboxes (PUSH,
 *  connected on first send to a destination), the dispatch of decoded messages to the
 *  spec's handler table, the built-in ping/pong, and the graceful stop protocol:
 *  tr_node_stop() sets a flag and wakes the loop through ev_async; the actor then
 *  handles everything already queued in its inbox (bounded), destroys its state, closes
 *  its sockets with a bounded linger, and its thread exits; the node joins it.
 *
 *  Coalescing: tr_actor_send packs a message into its destination's batch; the batches go
 *  out, one frame each, after every inbox frame has been handled (so what the handlers of
 *  one frame sent leaves before the next receive, which keeps round trips short) and from
 *  a prepare watcher of the lowest priority (after every other before-sleep hook, for what
 *  timers, idle watchers and hooks sent) before the loop sleeps. The maps of a frame sit
 *  back to back; the receiving runtime decodes them in turn (tr_msg_decode_next). A message of
 *  more than TR_ACTOR_BATCH_DIRECT bytes goes out at once in a frame of its own (packed
 *  once, handed to ZeroMQ without a copy), after whatever was queued for the same peer; a
 *  batch that reaches TR_ACTOR_BATCH_MAX bytes goes out at once too. So per destination the
 *  order of messages is kept, a message waits at most until the end of the loop turn, and
 *  a burst of small messages costs one ZeroMQ send and one receive per turn instead of one
 *  per message. Frames from outside the runtime (the bench's or the CLI's single maps)
 *  are the special case of one map; client frames never reach an inbox (frontend.c).
 *
 *  Links between actors have unbounded high water marks: a PUSH to a peer that is not
 *  (yet) bound queues instead of blocking or dropping, so start-up order never matters
 *  and nothing is lost while both sides live. The cost is memory when a consumer falls
 *  behind; a later issue adds credit-based flow control where it matters (step plans).
 *
 *  Thread: see actor.h.                                                                */
#include "runtime/actor.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "runtime/log.h"
#include "transport/wire.h"

#define TR_ACTOR_LINGER_MS 1000       /* on close: how long queued sends may still go out */
#define TR_ACTOR_DRAIN_MAX 100000     /* on stop: most queued messages still handled */
#define TR_ACTOR_BATCH_DIRECT 8192    /* larger messages get a frame of their own */
#define TR_ACTOR_BATCH_MAX 65536      /* a batch this large goes out at once */
#define TR_ACTOR_ZONE_CHUNK 2048      /* decode zone, reused for every message */

typedef struct {
    char name[TR_TOPO_NAME_MAX];
    void *sock;                        /* owned PUSH */
    char *batch;                       /* owned: maps packed this turn, back to back */
    size_t batch_n, batch_cap;
} s_outbox_t;

struct tr_actor {
    const tr_actor_spec_t *spec;       /* borrowed, constant */
    tr_node_t *node;                   /* borrowed: owner */
    const tr_topo_actor_t *tinfo;      /* borrowed from the topology */
    pthread_t thread;
    int thread_started;
    struct ev_loop *loop;              /* owned */
    void *inbox;                       /* owned PULL */
    tr_zwatch_t inbox_w;
    ev_async stop_w;
    ev_prepare before_sleep_w;
    ev_prepare flush_w;                /* sends the batches; EV_MINPRI: after every hook */
    msgpack_zone zone;                 /* decoded messages' trees; cleared after each */
    uint32_t name_n;                   /* strlen(tinfo->name), for `from` */
    atomic_int stop_requested;
    void *self;                        /* owned via spec->state_destroy */
    s_outbox_t *outs;                  /* owned */
    int n_outs, cap_outs;
    int init_status;                   /* set once the thread finished init */
    char init_err[512];
    /* counters, reported in pong */
    uint64_t msgs_in, msgs_out, decode_errors, handler_errors, unhandled;
    uint64_t busy_ns, max_handler_ns;
    uint64_t started_ns;
};

struct tr_node {
    const tr_topology_t *topo;         /* borrowed */
    int process;
    void *zctx;
    int owns_zctx;
    tr_actor_t *actors;                /* owned array */
    int n_actors;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_init_done;
    int started, stopped;
};

/* ---- clocks ---- */

uint64_t tr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t tr_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- accessors ---- */

const char *tr_actor_name(const tr_actor_t *a) { return a->tinfo->name; }
const char *tr_actor_kind(const tr_actor_t *a) { return a->spec->name; }
int tr_actor_rank(const tr_actor_t *a) { return a->tinfo->rank; }
struct ev_loop *tr_actor_loop(const tr_actor_t *a) { return a->loop; }
void *tr_actor_zctx(const tr_actor_t *a) { return a->node->zctx; }
const tr_topology_t *tr_actor_topology(const tr_actor_t *a) { return a->node->topo; }
int tr_actor_process(const tr_actor_t *a) { return a->node->process; }

const tr_conf_section_t *tr_actor_conf(const tr_actor_t *a) {
    return a->spec->conf_section ? tr_topo_section(a->node->topo, a->spec->conf_section) : NULL;
}

void tr_actor_count_out(tr_actor_t *a, uint64_t n) { a->msgs_out += n; }

/* ---- sending ---- */

static s_outbox_t *s_outbox(tr_actor_t *a, const char *to) {
    for (int i = 0; i < a->n_outs; i++)
        if (strcmp(a->outs[i].name, to) == 0) return &a->outs[i];
    const tr_topo_actor_t *dst = tr_topo_find_actor(a->node->topo, to);
    if (!dst) return NULL;
    const char *ep = tr_topo_endpoint_for(a->node->topo, a->node->process, dst);
    if (a->n_outs == a->cap_outs) {
        int cap = a->cap_outs ? 2 * a->cap_outs : 8;
        s_outbox_t *o = realloc(a->outs, (size_t)cap * sizeof *o);
        if (!o) return NULL;
        a->outs = o;
        a->cap_outs = cap;
    }
    void *s = zmq_socket(a->node->zctx, ZMQ_PUSH);
    int zero = 0, linger = TR_ACTOR_LINGER_MS;
    if (!s) goto fail;
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, ep) != 0) goto fail;
    s_outbox_t *o = &a->outs[a->n_outs++];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", to);
    o->sock = s;
    TR_DEBUG("connected to %s at %s", to, ep);
    return o;
fail:
    TR_ERROR("cannot connect to actor %s at %s: %s", to, ep, zmq_strerror(zmq_errno()));
    if (s) zmq_close(s);
    return NULL;
}

/* Sends o's batch as one frame (ZeroMQ copies it; the buffer stays for the next turn). */
static int s_flush(s_outbox_t *o) {
    if (o->batch_n == 0) return TR_OK;
    int rc = zmq_send(o->sock, o->batch, o->batch_n, ZMQ_DONTWAIT) < 0 ? TR_EZMQ : TR_OK;
    if (rc != TR_OK)
        TR_WARN("send of %zu bytes to %s failed: %s", o->batch_n, o->name,
                zmq_strerror(zmq_errno()));
    o->batch_n = 0;
    return rc;
}

static void s_flush_all(tr_actor_t *a) {
    for (int i = 0; i < a->n_outs; i++) s_flush(&a->outs[i]);
}

/* Packs m at the end of o's batch (bound: tr_msg_pack_bound(m), not 0); on failure the
 * batch is left as it was. */
static int s_batch_add(s_outbox_t *o, const tr_msg_t *m, size_t bound) {
    if (bound > o->batch_cap - o->batch_n) {
        size_t cap = o->batch_cap ? o->batch_cap : 4096;
        while (cap < o->batch_n + bound) cap *= 2;
        char *b = realloc(o->batch, cap);
        if (!b) return TR_ENOMEM;
        o->batch = b;
        o->batch_cap = cap;
    }
    size_t n;
    int rc = tr_msg_pack_to(m, o->batch + o->batch_n, o->batch_cap - o->batch_n, &n);
    if (rc == TR_OK) o->batch_n += n;
    return rc;
}

int tr_actor_send(tr_actor_t *a, const char *to, tr_msg_t *m) {
    s_outbox_t *o = s_outbox(a, to);
    if (!o) return tr_topo_find_actor(a->node->topo, to) ? TR_EZMQ : TR_ENOENT;
    m->from = (tr_str_t){a->tinfo->name, a->name_n};
    size_t bound = tr_msg_pack_bound(m);
    int rc;
    if (bound && bound <= TR_ACTOR_BATCH_DIRECT) {
        rc = s_batch_add(o, m, bound);
        if (rc == TR_OK && o->batch_n >= TR_ACTOR_BATCH_MAX) rc = s_flush(o);
    } else { /* large (or of unknown size): a frame of its own, after what is queued */
        rc = s_flush(o);
        if (rc == TR_OK) rc = tr_wire_send(o->sock, m, 0);
    }
    if (rc == TR_OK) a->msgs_out++;
    else TR_WARN("send %s to %s failed: %s", tr_msg_type_name(m->type), to, tr_strerror(rc));
    return rc;
}

int tr_actor_reply(tr_actor_t *a, const tr_msg_t *req, tr_msg_t *m) {
    char to[TR_TOPO_NAME_MAX];
    if (req->from.n == 0 || req->from.n >= sizeof to) return TR_ENOENT;
    return tr_actor_send(a, tr_str_copy(req->from, to, sizeof to), m);
}

int tr_actor_reply_error(tr_actor_t *a, const tr_msg_t *req, const char *code, const char *field,
                         const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tr_msg_t m;
    tr_id_t id;
    tr_msg_init_error(&m, tr_msg_id(req, &id) ? &id : NULL, code, field, text);
    return tr_actor_reply(a, req, &m);
}

/* ---- built-ins ---- */

static void s_pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v) {
    tr_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void s_on_ping(tr_actor_t *a, const tr_msg_t *msg) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, a->spec->stats ? 9 : 8);
    s_pack_kv_u64(&pk, "msgs_in", a->msgs_in);
    s_pack_kv_u64(&pk, "msgs_out", a->msgs_out);
    s_pack_kv_u64(&pk, "decode_errors", a->decode_errors);
    s_pack_kv_u64(&pk, "handler_errors", a->handler_errors);
    s_pack_kv_u64(&pk, "unhandled", a->unhandled);
    s_pack_kv_u64(&pk, "busy_us", a->busy_ns / 1000);
    s_pack_kv_u64(&pk, "max_handler_us", a->max_handler_ns / 1000);
    s_pack_kv_u64(&pk, "uptime_ms", (tr_now_ns() - a->started_ns) / 1000000);
    if (a->spec->stats) {
        tr_pack_cstr(&pk, "actor");
        a->spec->stats(a->self, &pk);
    }
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_PONG);
    TR_MSG_SET(&m, pong, seq, msg->u.ping.seq);
    if (TR_MSG_HAS(msg, ping, sent_ns)) TR_MSG_SET(&m, pong, sent_ns, msg->u.ping.sent_ns);
    TR_MSG_SET(&m, pong, kind, tr_str_c(a->spec->name));
    tr_any_t st = {NULL, sb.data, sb.size};
    TR_MSG_SET(&m, pong, stats, st);
    tr_actor_reply(a, msg, &m);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- dispatch ---- */

/* Runs the handler for one decoded message. */
static void s_handle(tr_actor_t *a, const tr_msg_t *msg) {
    if (msg->type == TR_MSG_PING) {
        s_on_ping(a, msg);
    } else {
        if (msg->type == TR_MSG_PEER_DOWN) {
            char proc[TR_TOPO_NAME_MAX], reason[256];
            TR_WARN("process %s is down (%s)",
                    tr_str_copy(msg->u.peer_down.process, proc, sizeof proc),
                    tr_str_copy(msg->u.peer_down.reason, reason, sizeof reason));
        }
        tr_handler_fn fn = NULL;
        for (const tr_handler_t *h = a->spec->handlers; h && h->fn; h++)
            if (h->type == msg->type) {
                fn = h->fn;
                break;
            }
        if (fn) {
            int rc = fn(a->self, msg);
            if (rc != TR_OK) {
                a->handler_errors++;
                TR_DEBUG("handler for %s returned %s", tr_msg_type_name(msg->type),
                         tr_strerror(rc));
            }
        } else if (msg->type != TR_MSG_PEER_DOWN && msg->type != TR_MSG_ERROR &&
                   msg->type != TR_MSG_PONG) {
            a->unhandled++;
            TR_DEBUG("no handler for %s", tr_msg_type_name(msg->type));
            tr_actor_reply_error(a, msg, "unknown_type", "type", "actor '%s' does not handle '%s'",
                                 a->tinfo->name, tr_msg_type_name(msg->type));
        } else {
            a->unhandled++;
        }
    }
}

/* Decodes and handles every map in one inbox frame (see the top of the file); returns how
 * many it held. A map that breaks the schema is counted and skipped; bytes that are not
 * msgpack end the frame. The clock is read once per frame (a read costs as much as
 * decoding a small message): busy time counts decoding and handlers, and the slowest
 * "handler" is the slowest frame, one handler or the handlers of coalesced messages. */
static int s_dispatch_frame(tr_actor_t *a, const uint8_t *data, size_t size) {
    uint64_t t0 = tr_now_ns();
    size_t off = 0;
    int n = 0;
    do {
        tr_msg_t msg;
        tr_msg_err_t err;
        size_t used;
        a->msgs_in++;
        n++;
        int rc = tr_msg_decode_next(&msg, data + off, size - off, &a->zone, &used, &err);
        if (rc == TR_OK) s_handle(a, &msg);
        msgpack_zone_clear(&a->zone);
        if (rc != TR_OK) {
            a->decode_errors++;
            TR_WARN("dropped a malformed message (%zu bytes): %s", used ? used : size - off,
                    err.text);
            if (used == 0) break;
        }
        off += used;
    } while (off < size);
    uint64_t dt = tr_now_ns() - t0;
    a->busy_ns += dt;
    if (dt > a->max_handler_ns) a->max_handler_ns = dt;
    return n;
}

/* Receives and dispatches frames until `budget` messages were handled or the inbox is
 * empty; returns how many were handled. */
static int s_drain_inbox(tr_actor_t *a, int budget) {
    int n = 0, drained = 0;
    zmq_msg_t zm;
    zmq_msg_init(&zm);
    while (n < budget) {
        if (zmq_msg_recv(&zm, a->inbox, ZMQ_DONTWAIT) < 0) {
            drained = zmq_errno() != EINTR;
            break;
        }
        int more = zmq_msg_more(&zm);
        n += s_dispatch_frame(a, zmq_msg_data(&zm), zmq_msg_size(&zm));
        s_flush_all(a); /* the answers go out before the receive that ends in EAGAIN */
        while (more) { /* extra frames are not part of any message yet: drop them */
            if (zmq_msg_recv(&zm, a->inbox, ZMQ_DONTWAIT) < 0) break;
            more = zmq_msg_more(&zm);
            a->decode_errors++;
            TR_WARN("dropped an unexpected extra frame");
        }
    }
    zmq_msg_close(&zm);
    tr_zwatch_drained(&a->inbox_w, drained);
    return n;
}

static void s_on_inbox(struct ev_loop *loop, tr_zwatch_t *w, int revents) {
    s_drain_inbox(w->data, TR_ZWATCH_BUDGET);
}

static void s_on_stop(struct ev_loop *loop, ev_async *w, int revents) {
    tr_actor_t *a = w->data;
    int n = s_drain_inbox(a, TR_ACTOR_DRAIN_MAX);
    TR_DEBUG("stopping; handled %d queued message(s)", n);
    ev_break(loop, EVBREAK_ALL);
}

static void s_on_before_sleep(struct ev_loop *loop, ev_prepare *w, int revents) {
    tr_actor_t *a = w->data;
    a->spec->before_sleep(a->self);
}

static void s_on_flush(struct ev_loop *loop, ev_prepare *w, int revents) {
    s_flush_all(w->data);
}

/* ---- the actor thread ---- */

static void s_init_done(tr_actor_t *a, int status) {
    tr_node_t *n = a->node;
    pthread_mutex_lock(&n->mu);
    a->init_status = status;
    n->n_init_done++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

static int s_bind(tr_actor_t *a, const char *ep) {
    if (zmq_bind(a->inbox, ep) == 0) return TR_OK;
    snprintf(a->init_err, sizeof a->init_err, "cannot bind %s: %s", ep, zmq_strerror(zmq_errno()));
    return TR_EZMQ;
}

static void s_close_sockets(tr_actor_t *a) {
    for (int i = 0; i < a->n_outs; i++) {
        zmq_close(a->outs[i].sock);
        free(a->outs[i].batch);
    }
    free(a->outs);
    a->outs = NULL;
    a->n_outs = a->cap_outs = 0;
    if (a->inbox) {
        int zero = 0;
        zmq_setsockopt(a->inbox, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(a->inbox);
        a->inbox = NULL;
    }
}

static void *s_actor_main(void *arg) {
    tr_actor_t *a = arg;
    tr_log_set_name(a->tinfo->name);
    a->started_ns = tr_now_ns();
    a->name_n = (uint32_t)strlen(a->tinfo->name);
    if (!msgpack_zone_init(&a->zone, TR_ACTOR_ZONE_CHUNK)) {
        snprintf(a->init_err, sizeof a->init_err, "out of memory");
        s_init_done(a, TR_ENOMEM);
        return NULL;
    }
    int rc = TR_ERR, zero = 0;
    a->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (!a->loop) {
        snprintf(a->init_err, sizeof a->init_err, "cannot create an event loop");
        goto fail;
    }
    a->inbox = zmq_socket(a->node->zctx, ZMQ_PULL);
    if (!a->inbox) {
        snprintf(a->init_err, sizeof a->init_err, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    zmq_setsockopt(a->inbox, ZMQ_RCVHWM, &zero, sizeof zero);
    if ((rc = s_bind(a, a->tinfo->inproc)) != TR_OK) goto fail;
    if (a->tinfo->remote[0] && (rc = s_bind(a, a->tinfo->remote)) != TR_OK) goto fail;
    if ((rc = tr_zwatch_init(&a->inbox_w, a->inbox, ZMQ_POLLIN, s_on_inbox, a)) != TR_OK) {
        snprintf(a->init_err, sizeof a->init_err, "cannot watch the inbox");
        goto fail;
    }
    tr_zwatch_set_exclusive(&a->inbox_w, 1); /* only s_drain_inbox reads it; no sends */
    ev_async_init(&a->stop_w, s_on_stop);
    a->stop_w.data = a;
    ev_async_start(a->loop, &a->stop_w);
    if (a->spec->state_new) {
        a->self = a->spec->state_new(a);
        if (!a->self) {
            rc = TR_ERR;
            snprintf(a->init_err, sizeof a->init_err, "failed to initialise (see the log above)");
            goto fail;
        }
    }
    if (a->spec->before_sleep) {
        ev_prepare_init(&a->before_sleep_w, s_on_before_sleep);
        a->before_sleep_w.data = a;
        ev_prepare_start(a->loop, &a->before_sleep_w);
    }
    ev_prepare_init(&a->flush_w, s_on_flush);
    ev_set_priority(&a->flush_w, EV_MINPRI);
    a->flush_w.data = a;
    ev_prepare_start(a->loop, &a->flush_w);
    tr_zwatch_start(a->loop, &a->inbox_w);
    TR_DEBUG("started (%s%s%s)", a->tinfo->inproc, a->tinfo->remote[0] ? ", " : "",
             a->tinfo->remote);
    s_init_done(a, TR_OK);
    if (!atomic_load(&a->stop_requested)) ev_run(a->loop, 0);
    else s_on_stop(a->loop, &a->stop_w, 0);

    tr_zwatch_stop(a->loop, &a->inbox_w);
    if (a->spec->before_sleep) ev_prepare_stop(a->loop, &a->before_sleep_w);
    ev_prepare_stop(a->loop, &a->flush_w);
    ev_async_stop(a->loop, &a->stop_w);
    s_flush_all(a); /* what the last turn sent */
    if (a->self && a->spec->state_destroy) a->spec->state_destroy(&a->self);
    s_flush_all(a); /* what state_destroy sent */
    s_close_sockets(a);
    msgpack_zone_destroy(&a->zone);
    ev_loop_destroy(a->loop);
    a->loop = NULL;
    TR_DEBUG("stopped");
    return NULL;

fail:
    TR_ERROR("%s", a->init_err);
    s_close_sockets(a);
    msgpack_zone_destroy(&a->zone);
    if (a->loop) ev_loop_destroy(a->loop);
    a->loop = NULL;
    s_init_done(a, rc == TR_OK ? TR_ERR : rc);
    return NULL;
}

/* ---- nodes ---- */

tr_node_t *tr_node_new(const tr_topology_t *topo, int process, tr_spec_lookup_fn lookup,
                       void *zctx) {
    tr_node_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->topo = topo;
    n->process = process;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    for (int i = 0; i < topo->n_actors; i++) n->n_actors += topo->actors[i].process == process;
    n->actors = calloc((size_t)(n->n_actors ? n->n_actors : 1), sizeof *n->actors);
    if (!n->actors) goto fail;
    int k = 0;
    for (int i = 0; i < topo->n_actors; i++) {
        if (topo->actors[i].process != process) continue;
        tr_actor_t *a = &n->actors[k++];
        a->node = n;
        a->tinfo = &topo->actors[i];
        a->spec = lookup(topo->actors[i].kind);
        if (!a->spec) {
            TR_ERROR("unknown actor kind '%s'", topo->actors[i].kind);
            goto fail;
        }
    }
    if (zctx) {
        n->zctx = zctx;
    } else {
        n->zctx = zmq_ctx_new();
        n->owns_zctx = 1;
        if (!n->zctx) goto fail;
    }
    return n;
fail:
    free(n->actors);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
    return NULL;
}

int tr_node_start(tr_node_t *n, char *err, size_t errlen) {
    if (n->started) return TR_OK;
    n->started = 1;
    int rc = TR_OK;
    for (int i = 0; i < n->n_actors; i++) {
        tr_actor_t *a = &n->actors[i];
        if (pthread_create(&a->thread, NULL, s_actor_main, a) != 0) {
            snprintf(err, errlen, "%s: cannot create thread: %s", a->tinfo->name, strerror(errno));
            rc = TR_ERR;
            break;
        }
        a->thread_started = 1;
        /* wait for this actor before starting the next: start-up is ordered and an error
         * names the first actor that failed */
        pthread_mutex_lock(&n->mu);
        while (n->n_init_done < i + 1) pthread_cond_wait(&n->cv, &n->mu);
        pthread_mutex_unlock(&n->mu);
        if (a->init_status != TR_OK) {
            snprintf(err, errlen, "actor %s: %s", a->tinfo->name, a->init_err);
            rc = a->init_status;
            break;
        }
    }
    if (rc != TR_OK) tr_node_stop(n);
    return rc;
}

void tr_node_stop(tr_node_t *n) {
    if (!n || n->stopped) return;
    n->stopped = 1;
    for (int i = 0; i < n->n_actors; i++) {
        tr_actor_t *a = &n->actors[i];
        if (!a->thread_started) continue;
        atomic_store(&a->stop_requested, 1);
        if (a->init_status == TR_OK && a->loop) ev_async_send(a->loop, &a->stop_w);
    }
    for (int i = 0; i < n->n_actors; i++) {
        tr_actor_t *a = &n->actors[i];
        if (!a->thread_started) continue;
        pthread_join(a->thread, NULL);
        a->thread_started = 0;
    }
}

void tr_node_destroy(tr_node_t **node_p) {
    if (!node_p || !*node_p) return;
    tr_node_t *n = *node_p;
    tr_node_stop(n);
    if (n->owns_zctx) zmq_ctx_term(n->zctx);
    free(n->actors);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
    *node_p = NULL;
}

int tr_node_n_actors(const tr_node_t *n) { return n->n_actors; }
const char *tr_node_actor_name(const tr_node_t *n, int i) { return n->actors[i].tinfo->name; }
void *tr_node_zctx(const tr_node_t *n) { return n->zctx; }
