/*  runtime/zwatch.c - see zwatch.h. The only place that reads ZMQ_FD. */
#include "runtime/zwatch.h"

#include <stddef.h>
#include <zmq.h>

#include "runtime/log.h"
#include "runtime/status.h"

#define CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static int s_events(tr_zwatch_t *w) {
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(w->sock, ZMQ_EVENTS, &ev, &sz) != 0) return ZMQ_POLLERR;
    return ev;
}

static void s_on_prepare(struct ev_loop *loop, ev_prepare *p, int revents) {
    tr_zwatch_t *w = CONTAINER(p, tr_zwatch_t, prepare);
    if (w->exclusive) {
        w->fired = 0;
        if (w->drained) ev_io_start(loop, &w->io);
        else ev_idle_start(loop, &w->idle);
        return;
    }
    if (s_events(w) & (w->events | ZMQ_POLLERR))
        ev_idle_start(loop, &w->idle);
    else
        ev_io_start(loop, &w->io);
}

static void s_on_check(struct ev_loop *loop, ev_check *c, int revents) {
    tr_zwatch_t *w = CONTAINER(c, tr_zwatch_t, check);
    if (w->exclusive) {
        /* libev runs check watchers before the io watcher's callback (it queues them
         * last and runs a priority's queue from the end): ask whether ZMQ_FD fired before
         * stopping the io watcher clears that; `fired` covers the other order */
        int woke = ev_is_pending(&w->io) || w->fired || !w->drained;
        ev_io_stop(loop, &w->io);
        ev_idle_stop(loop, &w->idle);
        if (woke) w->cb(loop, w, ZMQ_POLLIN);
        return;
    }
    ev_io_stop(loop, &w->io);
    ev_idle_stop(loop, &w->idle);
    int ev = s_events(w);
    if (ev & (w->events | ZMQ_POLLERR)) w->cb(loop, w, ev & (w->events | ZMQ_POLLERR));
}

/* io and idle only wake the loop; the check watcher does the work. */
static void s_on_wake_io(struct ev_loop *loop, ev_io *io, int revents) {
    CONTAINER(io, tr_zwatch_t, io)->fired = 1;
}
static void s_on_wake_idle(struct ev_loop *loop, ev_idle *i, int revents) {}

int tr_zwatch_init(tr_zwatch_t *w, void *sock, int events, tr_zwatch_cb cb, void *data) {
    int fd;
    size_t sz = sizeof fd;
    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &sz) != 0) {
        TR_ERROR("zmq_getsockopt(ZMQ_FD): %s", zmq_strerror(zmq_errno()));
        return TR_EZMQ;
    }
    w->sock = sock;
    w->events = events;
    w->cb = cb;
    w->data = data;
    w->active = 0;
    w->exclusive = 0;
    w->drained = 0;
    w->fired = 0;
    ev_prepare_init(&w->prepare, s_on_prepare);
    ev_check_init(&w->check, s_on_check);
    ev_idle_init(&w->idle, s_on_wake_idle);
    ev_io_init(&w->io, s_on_wake_io, fd, EV_READ);
    return TR_OK;
}

void tr_zwatch_start(struct ev_loop *loop, tr_zwatch_t *w) {
    if (w->active) return;
    ev_prepare_start(loop, &w->prepare);
    ev_check_start(loop, &w->check);
    w->active = 1;
}

void tr_zwatch_stop(struct ev_loop *loop, tr_zwatch_t *w) {
    if (!w->active) return;
    ev_prepare_stop(loop, &w->prepare);
    ev_check_stop(loop, &w->check);
    ev_io_stop(loop, &w->io);
    ev_idle_stop(loop, &w->idle);
    w->active = 0;
}

void tr_zwatch_set_exclusive(tr_zwatch_t *w, int on) {
    w->exclusive = on;
    w->drained = 0; /* look once before trusting ZMQ_FD */
}

void tr_zwatch_set_events(tr_zwatch_t *w, int events) {
    w->events = events;
}
