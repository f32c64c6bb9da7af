/*  transport/wire.h - sending and receiving tr_msg_t over ZeroMQ sockets.
 *
 *  Encoding packs into a msgpack_sbuffer whose memory is handed to zmq_msg_init_data
 *  (zero copy; freed by tr_wire_free_cb, which is thread-safe). Every send uses
 *  ZMQ_DONTWAIT: a caller on an event loop never blocks. Internal links set their high
 *  water marks to 0 (unbounded; see runtime/actor.c), so a send to a connected or
 *  connecting PUSH peer only fails when the socket is closed.
 *  Thread: the calling thread must own the socket.                                 */
#ifndef TR_WIRE_H
#define TR_WIRE_H

#include <stddef.h>
#include <zmq.h>

#include "transport/msg.h"

/* zmq_free_fn for buffers released from a msgpack_sbuffer. */
void tr_wire_free_cb(void *data, void *hint);

/* Packs m into a fresh zmq_msg_t (caller owns it: send or close it). */
int tr_wire_encode(const tr_msg_t *m, zmq_msg_t *out);

/* Encodes and sends m as one frame (flags: extra zmq flags, e.g. ZMQ_SNDMORE).
 * Returns TR_OK, TR_EINVAL (m breaks the schema), TR_AGAIN (would block) or TR_EZMQ. */
int tr_wire_send(void *sock, const tr_msg_t *m, int flags);

/* For ROUTER sockets: sends [routing id, m]. */
int tr_wire_send_routed(void *sock, const void *rid, size_t rid_n, const tr_msg_t *m);

/* Sends an error message (code, message, optional field and id) on `sock`, routed when
 * rid != NULL. */
int tr_wire_send_error(void *sock, const void *rid, size_t rid_n, const tr_id_t *id,
                       const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif
