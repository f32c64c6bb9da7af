/*  tests/clients/test_client.c - the C client library (clients/c/client.h).
 *
 *  Part 1 checks what tr_client_generate puts on the wire: a ROUTER on inproc:// in this
 *  process receives the request and decodes it. Part 2 talks to tests/mock_frontend.py (a
 *  pyzmq stand-in for the frontend, started as a child process): streamed outputs, stop
 *  strings, stream=false, requests in flight together, abort, errors, timeouts.        */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <zmq.h>

#include "clients/c/client.h"
#include "tests/tap.h"

/* ---- part 1: the request on the wire ---- */

static void s_test_wire(void) {
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    ok(zmq_bind(router, "inproc://client-test") == 0, "inproc ROUTER bound");
    tr_client_t *c = tr_client_new(ctx, "inproc://client-test");
    ok(c != NULL, "client on a borrowed context");
    ok(tr_client_fd(c) >= 0 && tr_client_socket(c) != NULL, "socket and fd exposed");

    static const int32_t toks[] = {5, 6, 70000};
    static const int32_t stop_ids[] = {2};
    static const char *const stops[] = {"\n\n", "The end"};
    tr_client_gen_t p;
    tr_client_gen_init(&p);
    p.tokens = toks, p.n_tokens = 3;
    p.stop = stops, p.n_stop = 2;
    p.stop_token_ids = stop_ids, p.n_stop_token_ids = 1;
    p.max_tokens = 17, p.temperature = 0.5, p.top_p = 0.9, p.top_k = 40, p.min_p = 0.05;
    p.seed = 1234, p.ignore_eos = 1, p.logprobs = 3, p.stream = 0, p.n = 2, p.priority = -3;
    int64_t id1 = 0, id2 = 0;
    ok(tr_client_generate(c, &p, &id1) == TR_OK && id1 == 1, "generate sent with id 1");

    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    zmq_msg_recv(&rid, router, 0);
    zmq_msg_recv(&body, router, 0);
    tr_msg_t m;
    tr_msg_err_t err;
    int rc = tr_msg_decode(&m, zmq_msg_data(&body), zmq_msg_size(&body), &err);
    ok(rc == TR_OK && m.type == TR_MSG_GENERATE, "the server decodes a generate (%s)",
       rc ? err.text : "ok");
    if (rc == TR_OK) {
        tr_msg_generate_t *g = &m.u.generate;
        ok(tr_client_reply_id(&m) == 1, "id 1 on the wire");
        ok(!TR_MSG_HAS(&m, generate, prompt) && g->tokens.n == 3 && tr_i32s_at(g->tokens, 2) == 70000,
           "tokens as int32, no prompt");
        ok(g->stop.n == 2 && tr_str_eq(tr_strs_at(g->stop, 1), "The end"), "stop strings");
        ok(g->stop_token_ids.n == 1 && tr_i32s_at(g->stop_token_ids, 0) == 2, "stop token ids");
        ok(g->max_tokens == 17 && g->temperature == 0.5 && g->top_p == 0.9 && g->top_k == 40 &&
               g->min_p == 0.05 && g->seed == 1234,
           "max_tokens, temperature, top_p, top_k, min_p, seed");
        ok(g->ignore_eos && g->logprobs == 3 && !g->stream && g->n == 2 && g->priority == -3,
           "ignore_eos, logprobs, stream, n, priority");
        tr_msg_fini(&m);
    }
    zmq_msg_close(&rid);
    zmq_msg_close(&body);

    tr_client_gen_init(&p);
    p.prompt = "hello";
    ok(tr_client_generate(c, &p, &id2) == TR_OK && id2 == 2, "second generate gets id 2");
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    zmq_msg_recv(&rid, router, 0);
    zmq_msg_recv(&body, router, 0);
    rc = tr_msg_decode(&m, zmq_msg_data(&body), zmq_msg_size(&body), &err);
    ok(rc == TR_OK && tr_str_eq(m.u.generate.prompt, "hello") &&
           (m.present & ~((1ull << TR_F_generate_id) | (1ull << TR_F_generate_prompt))) == 0,
       "unset parameters stay off the wire");
    if (rc == TR_OK) tr_msg_fini(&m);
    zmq_msg_close(&rid);
    zmq_msg_close(&body);

    tr_client_gen_init(&p);
    ok(tr_client_generate(c, &p, NULL) == TR_EINVAL && strstr(tr_client_error(c), "prompt"),
       "generate without prompt or tokens: TR_EINVAL (%s)", tr_client_error(c));
    p.prompt = "x";
    p.top_p = INFINITY;
    ok(tr_client_generate(c, &p, NULL) == TR_EINVAL, "a non-finite float: TR_EINVAL");

    tr_msg_t r;
    ok(tr_client_recv(c, &r, 0) == TR_AGAIN, "recv(0) with nothing queued: TR_AGAIN");
    ok(tr_client_recv(c, &r, 30) == TR_ETIMEDOUT, "recv(30 ms) with nothing queued: TR_ETIMEDOUT");

    tr_client_destroy(&c);
    ok(c == NULL, "destroy sets the pointer to NULL");
    tr_client_destroy(&c); /* NULL-safe */
    zmq_close(router);
    ok(zmq_ctx_term(ctx) == 0, "the borrowed context is left to its owner");
    ok(tr_client_new(NULL, "nonsense://x") == NULL, "a malformed endpoint: NULL");
}

/* ---- part 2: against tests/mock_frontend.py ---- */

static FILE *s_mock;
static pid_t s_mock_pid;

static int s_start_mock(char *endpoint, size_t n) {
    const char *root = getenv("TROUPE_ROOT") ? getenv("TROUPE_ROOT") : ".";
    char py[1024], cmd[3072];
    if (getenv("TROUPE_PYTHON"))
        snprintf(py, sizeof py, "%s", getenv("TROUPE_PYTHON"));
    else {
        snprintf(py, sizeof py, "%s/.venv/bin/python", root);
        if (access(py, X_OK) != 0) snprintf(py, sizeof py, "python3");
    }
    snprintf(cmd, sizeof cmd, "'%s' -u '%s/tests/mock_frontend.py' --token-ms 1 --ttft-ms 2", py, root);
    s_mock = popen(cmd, "r");
    if (!s_mock) return -1;
    char line[512];
    int pid = 0;
    if (!fgets(line, sizeof line, s_mock) || sscanf(line, "ready %255s %d", endpoint, &pid) != 2)
        return -1;
    (void)n;
    s_mock_pid = pid;
    return 0;
}

static void s_stop_mock(void) {
    if (s_mock_pid > 0) kill(s_mock_pid, SIGTERM);
    if (s_mock) pclose(s_mock);
}

/* Receives every reply to request `id` until its final output (or error); appends the
 * text to buf. Returns the number of outputs, -1 on timeout or a stray reply. */
static int s_collect(tr_client_t *c, int64_t id, char *buf, size_t bufsize, char *finish,
                     tr_client_usage_t *usage, char *err_code) {
    int n = 0;
    for (;;) {
        tr_msg_t m;
        int rc = tr_client_recv(c, &m, 5000);
        if (rc != TR_OK) return -1;
        if (tr_client_reply_id(&m) != id) {
            tr_msg_fini(&m);
            return -1;
        }
        if (m.type == TR_MSG_ERROR) {
            tr_str_copy(m.u.error.code, err_code, 64);
            tr_msg_fini(&m);
            return n;
        }
        n++;
        size_t len = strlen(buf);
        tr_str_t t = m.u.output.text;
        if (len + t.n < bufsize) memcpy(buf + len, t.p, t.n), buf[len + t.n] = '\0';
        int fin = tr_client_output_is_final(&m);
        if (fin) {
            tr_str_copy(m.u.output.finish_reason, finish, 16);
            tr_client_output_usage(&m, usage);
        }
        tr_msg_fini(&m);
        if (fin) return n;
    }
}

static void s_test_mock(void) {
    char ep[256];
    if (s_start_mock(ep, sizeof ep) != 0) {
        skip("tests/mock_frontend.py did not start (no python with pyzmq?)");
        s_stop_mock();
        return;
    }
    tr_client_t *c = tr_client_new(NULL, ep);
    ok(c != NULL, "client connected to the mock at %s", ep);
    int64_t id;
    tr_msg_t m;

    ok(tr_client_health(c, &id) == TR_OK, "health sent");
    ok(tr_client_recv(c, &m, 5000) == TR_OK && m.type == TR_MSG_HEALTH &&
           tr_client_reply_id(&m) == id && tr_str_eq(m.u.health.status, "ok"),
       "health answered, id echoed");
    tr_msg_fini(&m);

    tr_client_model_info(c, &id);
    ok(tr_client_recv(c, &m, 5000) == TR_OK && m.type == TR_MSG_MODEL_INFO &&
           m.u.model_info.vocab_size == 512,
       "model_info answered");
    tr_msg_fini(&m);

    tr_client_tokenize(c, "ab", -1, &id);
    ok(tr_client_recv(c, &m, 5000) == TR_OK && m.type == TR_MSG_TOKENIZE &&
           m.u.tokenize.tokens.n == 3 && tr_i32s_at(m.u.tokenize.tokens, 1) == 'a',
       "tokenize answered with tokens");
    tr_msg_fini(&m);

    tr_client_stats(c, &id);
    ok(tr_client_recv(c, &m, 5000) == TR_OK && m.type == TR_MSG_STATS, "stats answered");
    tr_msg_fini(&m);

    /* streaming */
    tr_client_gen_t p;
    tr_client_gen_init(&p);
    p.prompt = "Once";
    p.max_tokens = 4;
    char text[256] = "", fin[16] = "", code[64] = "";
    tr_client_usage_t u;
    tr_client_generate(c, &p, &id);
    int n = s_collect(c, id, text, sizeof text, fin, &u, code);
    ok(n == 4 && strcmp(text, "t0 t1 t2 t3 ") == 0 && strcmp(fin, "length") == 0,
       "4 streamed outputs, text concatenates, finish length (n=%d text='%s' fin=%s)", n, text, fin);
    ok(u.completion_tokens == 4 && u.prompt_tokens == 5 && u.ttft_ms > 0 && !isnan(u.e2e_ms),
       "usage and metrics of the final output");

    /* stop strings, stream=false */
    static const char *const stops[] = {"t2"};
    p.stop = stops, p.n_stop = 1, p.max_tokens = 10;
    text[0] = '\0';
    tr_client_generate(c, &p, &id);
    n = s_collect(c, id, text, sizeof text, fin, &u, code);
    ok(strcmp(fin, "stop") == 0 && strcmp(text, "t0 t1 t2 ") == 0, "stop string ends the choice");
    p.n_stop = 0, p.stream = 0, p.max_tokens = 5;
    text[0] = '\0';
    tr_client_generate(c, &p, &id);
    n = s_collect(c, id, text, sizeof text, fin, &u, code);
    ok(n == 1 && strcmp(text, "t0 t1 t2 t3 t4 ") == 0, "stream=false: one output with everything");

    /* requests in flight together */
    tr_client_gen_init(&p);
    p.prompt = "x";
    int64_t ids[3];
    int outs[3] = {0}, done = 0, stray = 0;
    for (int i = 0; i < 3; i++) {
        p.max_tokens = 3 + i;
        tr_client_generate(c, &p, &ids[i]);
    }
    while (done < 3) {
        if (tr_client_recv(c, &m, 5000) != TR_OK) break;
        int64_t rid = tr_client_reply_id(&m);
        int k = rid == ids[0] ? 0 : rid == ids[1] ? 1 : rid == ids[2] ? 2 : -1;
        if (k < 0) stray++;
        else outs[k]++, done += tr_client_output_is_final(&m);
        tr_msg_fini(&m);
    }
    ok(done == 3 && !stray && outs[0] == 3 && outs[1] == 4 && outs[2] == 5,
       "3 requests in flight: each gets its own outputs (%d %d %d)", outs[0], outs[1], outs[2]);

    /* abort */
    p.max_tokens = 100000;
    tr_client_generate(c, &p, &id);
    ok(tr_client_recv(c, &m, 5000) == TR_OK && m.type == TR_MSG_OUTPUT, "a long request streams");
    tr_msg_fini(&m);
    ok(tr_client_abort(c, id) == TR_OK, "abort sent");
    fin[0] = '\0';
    text[0] = '\0';
    s_collect(c, id, text, sizeof text, fin, &u, code);
    ok(strcmp(fin, "abort") == 0, "aborted request ends with finish_reason abort (%s)", fin);

    /* errors */
    p.prompt = "!error";
    tr_client_generate(c, &p, &id);
    ok(tr_client_recv(c, &m, 5000) == TR_OK && m.type == TR_MSG_ERROR &&
           tr_client_reply_id(&m) == id && tr_str_eq(m.u.error.code, "bad_request") &&
           tr_str_eq(m.u.error.field, "prompt"),
       "a refused request: error with id, code and field");
    tr_msg_fini(&m);
    p.prompt = "!fail";
    fin[0] = '\0';
    tr_client_generate(c, &p, &id);
    s_collect(c, id, text, sizeof text, fin, &u, code);
    ok(strcmp(fin, "error") == 0, "a request that fails: finish_reason error");
    p.prompt = "!hang";
    tr_client_generate(c, &p, &id);
    ok(tr_client_recv(c, &m, 100) == TR_ETIMEDOUT, "no answer: TR_ETIMEDOUT after the timeout");

    tr_client_destroy(&c);
    s_stop_mock();
}

int main(void) {
    plan_lazy();
    s_test_wire();
    s_test_mock();
    return done_testing();
}
