/*  transport/wire.c - see wire.h. */
#include "transport/wire.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/log.h"

void tr_wire_free_cb(void *data, void *hint) {
    (void)hint;
    free(data);
}

int tr_wire_encode(const tr_msg_t *m, zmq_msg_t *out) {
    /* one allocation of the right size: an empty sbuffer's first write takes 8 KiB, and a
     * 1 MiB payload would grow it to 2 MiB by doubling */
    size_t bound = tr_msg_pack_bound(m), size;
    char *data;
    if (bound) {
        if (!(data = malloc(bound))) return TR_ENOMEM;
        int rc = tr_msg_pack_to(m, data, bound, &size);
        if (rc != TR_OK) {
            free(data);
            return rc;
        }
    } else { /* an ANY field given as a decoded object: its size is not known */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        int rc = tr_msg_pack(m, &pk);
        if (rc != TR_OK) {
            msgpack_sbuffer_destroy(&sb);
            return rc;
        }
        size = sb.size;
        data = msgpack_sbuffer_release(&sb);
    }
    if (zmq_msg_init_data(out, data, size, tr_wire_free_cb, NULL) != 0) {
        free(data);
        return TR_EZMQ;
    }
    return TR_OK;
}

static int s_send_frame(void *sock, zmq_msg_t *zm, int flags) {
    if (zmq_msg_send(zm, sock, flags | ZMQ_DONTWAIT) >= 0) return TR_OK;
    int e = errno;
    zmq_msg_close(zm); /* on failure ownership stays with us (zmq_msg_send.adoc) */
    if (e == EAGAIN) return TR_AGAIN;
    TR_DEBUG("zmq_msg_send: %s", zmq_strerror(e));
    return TR_EZMQ;
}

int tr_wire_send(void *sock, const tr_msg_t *m, int flags) {
    zmq_msg_t zm;
    int rc = tr_wire_encode(m, &zm);
    if (rc != TR_OK) return rc;
    return s_send_frame(sock, &zm, flags);
}

int tr_wire_send_routed(void *sock, const void *rid, size_t rid_n, const tr_msg_t *m) {
    zmq_msg_t zm;
    int rc = tr_wire_encode(m, &zm);
    if (rc != TR_OK) return rc;
    if (zmq_send(sock, rid, rid_n, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&zm);
        return errno == EAGAIN ? TR_AGAIN : TR_EZMQ;
    }
    return s_send_frame(sock, &zm, 0);
}

int tr_wire_send_error(void *sock, const void *rid, size_t rid_n, const tr_id_t *id,
                       const char *code, const char *field, const char *fmt, ...) {
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tr_msg_t m;
    tr_msg_init_error(&m, id, code, field, text);
    return rid ? tr_wire_send_routed(sock, rid, rid_n, &m) : tr_wire_send(sock, &m, 0);
}
