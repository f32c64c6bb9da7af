/*  clients/c/client.h - a C client of a troupe server (docs/protocol.md, "Clients").
 *
 *  A tr_client_t is one ZeroMQ DEALER socket connected to the frontend's ROUTER. It sends
 *  requests built as tr_msg_t (transport/msgs.def) and receives replies as decoded
 *  tr_msg_t: `output`, `error`, `tokenize`, `model_info`, `health`, `stats`. Requests get
 *  integer ids chosen by the client (1, 2, 3, ... per client); every reply echoes its
 *  request's id, so many requests may be in flight at once and their replies interleave.
 *
 *  Owns:    its socket, and its ZeroMQ context when tr_client_new() was given none; the
 *           frame of the last message received (the decoded message borrows from it).
 *  Thread:  one thread at a time per client (a ZeroMQ socket is not thread-safe). Several
 *           clients may share one context across threads.
 *
 *  Blocking use (the main API):
 *
 *      tr_client_t *c = tr_client_new(NULL, "tcp://127.0.0.1:5555");
 *      tr_client_gen_t p;
 *      tr_client_gen_init(&p);
 *      p.prompt = "Once upon a time";
 *      p.max_tokens = 32;
 *      p.temperature = 0;
 *      int64_t id;
 *      tr_client_generate(c, &p, &id);
 *      for (;;) {
 *          tr_msg_t m;
 *          if (tr_client_recv(c, &m, 10000) != TR_OK) break;        // timeout, error
 *          if (m.type == TR_MSG_OUTPUT) fwrite(m.u.output.text.p, 1, m.u.output.text.n, stdout);
 *          int done = m.type == TR_MSG_ERROR || tr_client_output_is_final(&m);
 *          tr_msg_fini(&m);
 *          if (done) break;
 *      }
 *      tr_client_destroy(&c);
 *
 *  From an event loop: watch tr_client_fd() for readability (it is ZeroMQ's ZMQ_FD:
 *  edge-triggered, and it may not signal once per message), then drain with
 *  tr_client_recv(c, &m, 0) until it returns TR_AGAIN. Sending can make queued replies
 *  readable without a new edge, so drain again after each send (runtime/zwatch.c does
 *  this for libev; zmq_poll on tr_client_socket() is the simple alternative).          */
#ifndef TR_CLIENT_H
#define TR_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/msg.h"

typedef struct tr_client tr_client_t;

#define TR_CLIENT_ENDPOINT_DEFAULT "tcp://127.0.0.1:5555"

/* "Not set" for the integer fields of tr_client_gen_t; float fields use NAN, bools -1. */
#define TR_CLIENT_UNSET INT64_MIN

/* Parameters of one `generate` request. Start from tr_client_gen_init(), which leaves
 * every field unset (the server's defaults apply), then set what you need. Pointers are
 * borrowed until tr_client_generate() returns. */
typedef struct {
    const char *prompt;                 /* borrowed; NUL-terminated; one of prompt | tokens */
    const int32_t *tokens;              /* borrowed: n_tokens prompt token ids */
    uint32_t n_tokens;
    const char *const *stop;            /* borrowed: n_stop stop strings (<= 64) */
    uint32_t n_stop;
    const int32_t *stop_token_ids;      /* borrowed: n_stop_token_ids ids (<= 1024) */
    uint32_t n_stop_token_ids;
    int64_t max_tokens;                 /* >= 0, or TR_CLIENT_UNSET */
    double temperature;                 /* >= 0 (0 = greedy), or NAN */
    double top_p;                       /* (0, 1], or NAN */
    int64_t top_k;                      /* >= 0 (0 = off), or TR_CLIENT_UNSET */
    double min_p;                       /* [0, 1], or NAN */
    int64_t seed;                       /* >= 0, or TR_CLIENT_UNSET */
    int8_t ignore_eos;                  /* 0, 1, or -1 (unset) */
    int64_t logprobs;                   /* 0..20, or TR_CLIENT_UNSET */
    int8_t stream;                      /* 0, 1, or -1 (unset: the server streams) */
    int64_t n;                          /* choices 1..64, or TR_CLIENT_UNSET */
    int64_t priority;                   /* any sign (lower first), or TR_CLIENT_UNSET */
} tr_client_gen_t;

/* Usage and server-side timings of a final `output` (fields of its `usage` and `metrics`
 * maps). Absent values are -1 (counts) or NAN (times). */
typedef struct {
    int64_t prompt_tokens;
    int64_t completion_tokens;
    double queue_ms, ttft_ms, tpot_ms, e2e_ms;
} tr_client_usage_t;

/* ---- lifetime ---- */

/* Connects a DEALER socket to `endpoint` (tcp://, ipc://, inproc://). With zctx NULL the
 * client makes and owns a ZeroMQ context; otherwise it borrows zctx, which must outlive
 * it. The connection itself is made in the background: a server started later is found.
 * Returns NULL on failure (a malformed endpoint, no memory); the caller owns the result. */
tr_client_t *tr_client_new(void *zctx, const char *endpoint);

/* Closes the socket (unsent messages are dropped) and the owned context; frees *self_p
 * and sets it to NULL. NULL-safe. A message from tr_client_recv() must be fini'ed first. */
void tr_client_destroy(tr_client_t **self_p);

/* ---- requests: each returns TR_OK, TR_EINVAL (a parameter breaks the schema), TR_AGAIN
 * (the send queue is full) or TR_EZMQ, and stores the request's id in *id when id is not
 * NULL. Nothing is kept: the arguments are borrowed for the call only. ---- */

/* Leaves every field of *p unset. */
void tr_client_gen_init(tr_client_gen_t *p);

/* Sends `generate`. Replies: `output` messages (the last one per choice carries
 * finish_reason), or one `error`. */
int tr_client_generate(tr_client_t *self, const tr_client_gen_t *p, int64_t *id);

/* Sends `abort` for request `id`: each unfinished choice gets a final output with
 * finish_reason "abort". An unknown or finished id gets no reply. */
int tr_client_abort(tr_client_t *self, int64_t id);

/* Sends `tokenize` for `text`; add_special is 0, 1, or -1 for the server's default.
 * Reply: `tokenize` with `tokens`. */
int tr_client_tokenize(tr_client_t *self, const char *text, int add_special, int64_t *id);

/* Sends `model_info`, `health` or `stats`. */
int tr_client_model_info(tr_client_t *self, int64_t *id);
int tr_client_health(tr_client_t *self, int64_t *id);
int tr_client_stats(tr_client_t *self, int64_t *id);

/* Sends any client message `m` as it is (its id, if any, is the caller's business).
 * Does not take ownership; m's borrowed pointers must be valid during the call. */
int tr_client_send(tr_client_t *self, const tr_msg_t *m);

/* ---- replies ---- */

/* Waits up to timeout_ms (< 0: forever, 0: do not wait) for the next reply and decodes it
 * into *out. Returns
 *   TR_OK         *out holds the reply; the caller must tr_msg_fini(out). Its strings and
 *                 bins borrow the client's current frame: they stay valid until the next
 *                 tr_client_recv() on this client or its destroy, whichever comes first.
 *   TR_AGAIN      nothing arrived (timeout_ms == 0), or a signal interrupted the wait:
 *                 call again (after checking the flag your signal handler sets)
 *   TR_ETIMEDOUT  nothing arrived within timeout_ms > 0
 *   TR_EPROTO     a frame arrived that is not a valid message (tr_client_error() says
 *                 why); it is dropped, and the next call goes on with the next frame
 *   TR_EZMQ       the socket failed (the context was terminated)
 * *out needs no fini unless TR_OK was returned. */
int tr_client_recv(tr_client_t *self, tr_msg_t *out, int timeout_ms);

/* The reason for the last TR_EPROTO/TR_EZMQ/TR_EINVAL, as a sentence; "" when none. */
const char *tr_client_error(const tr_client_t *self);

/* 1 when m is an `output` carrying finish_reason (the last one of its choice). */
int tr_client_output_is_final(const tr_msg_t *m);

/* The integer id of a reply, or TR_CLIENT_UNSET when it has none or a string one. */
int64_t tr_client_reply_id(const tr_msg_t *m);

/* Reads `usage` and `metrics` of a final output into *out (absent values: -1 / NAN). */
void tr_client_output_usage(const tr_msg_t *m, tr_client_usage_t *out);

/* ---- event-loop integration ---- */

/* The DEALER socket (borrowed: do not close it; for zmq_poll). */
void *tr_client_socket(tr_client_t *self);
/* Its ZMQ_FD (edge-triggered; see the header comment), or -1 on failure. */
int tr_client_fd(tr_client_t *self);

#endif
