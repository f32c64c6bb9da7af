/*  runtime/zwatch.h - a libev watcher for a ZeroMQ socket.
 *
 *  ZMQ_FD is edge-triggered and signals "look at ZMQ_EVENTS", not "a message is here";
 *  one notification may stand for many messages, and a send may consume the edge a
 *  receive was waiting for. The watcher therefore (flux-core's ev_zmq pattern):
 *    prepare: if ZMQ_EVENTS already shows what we wait for, start an idle watcher so the
 *             loop does not block; otherwise watch ZMQ_FD for readability.
 *    check:   stop both; if ZMQ_EVENTS shows what we wait for, call the callback.
 *  ZMQ_EVENTS is read again before every loop iteration, i.e. after every send made by
 *  any handler, so no edge is ever lost. The callback should drain with a budget
 *  (TR_ZWATCH_BUDGET messages) and return; if more remain, the next iteration calls it
 *  again without blocking, and other watchers on the loop get their turn in between.
 *
 *
 *  Exclusive mode (tr_zwatch_set_exclusive), for a socket that only the callback reads
 *  and that nothing sends on (an actor's PULL inbox): the callback says through
 *  tr_zwatch_drained() whether its last receive ended in EAGAIN. After EAGAIN libzmq has
 *  processed its commands and will make ZMQ_FD readable when a message arrives, so the
 *  watcher waits on ZMQ_FD without asking ZMQ_EVENTS (each call is a process_commands in
 *  libzmq, two per loop turn otherwise) and calls back when ZMQ_FD fired; after a receive
 *  that stopped at the budget it calls back on the next turn without blocking.
 *
 *  Thread: the loop's thread only. The watcher is embedded in the owner's state
 *  (STYLE.md 2.4 rule 7) and must be stopped before that state is freed.
 *
 *      tr_zwatch_init(&self->zw, sock, ZMQ_POLLIN, s_on_readable, self);
 *      tr_zwatch_start(loop, &self->zw);
 *      ...
 *      tr_zwatch_stop(loop, &self->zw);                                              */
#ifndef TR_ZWATCH_H
#define TR_ZWATCH_H

#include <ev.h>

#define TR_ZWATCH_BUDGET 64

typedef struct tr_zwatch tr_zwatch_t;
/* revents: the ZMQ_POLLIN/ZMQ_POLLOUT bits that are ready. */
typedef void (*tr_zwatch_cb)(struct ev_loop *loop, tr_zwatch_t *w, int revents);

struct tr_zwatch {
    ev_prepare prepare;
    ev_check check;
    ev_idle idle;
    ev_io io;
    void *sock;          /* borrowed ZeroMQ socket */
    int events;          /* ZMQ_POLLIN and/or ZMQ_POLLOUT wanted */
    tr_zwatch_cb cb;
    void *data;          /* caller's */
    int active;
    int exclusive;       /* see above; 0 after init */
    int drained;         /* exclusive: the callback's last receive ended in EAGAIN */
    int fired;           /* exclusive: ZMQ_FD woke the loop this turn */
};

/* Prepares the watcher; returns TR_OK or TR_EZMQ when ZMQ_FD cannot be read. */
int tr_zwatch_init(tr_zwatch_t *w, void *sock, int events, tr_zwatch_cb cb, void *data);
void tr_zwatch_start(struct ev_loop *loop, tr_zwatch_t *w);
void tr_zwatch_stop(struct ev_loop *loop, tr_zwatch_t *w);
/* Exclusive mode on or off (POLLIN only; see above). */
void tr_zwatch_set_exclusive(tr_zwatch_t *w, int on);
/* Exclusive mode: the callback reports whether its receives ended in EAGAIN (1) or
 * stopped with messages left (0). */
static inline void tr_zwatch_drained(tr_zwatch_t *w, int drained) { w->drained = drained; }
/* Changes the wanted events (e.g. add ZMQ_POLLOUT while a send queue is non-empty). */
void tr_zwatch_set_events(tr_zwatch_t *w, int events);

#endif
