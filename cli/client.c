/*  cli/client.c - `troupe client`: one generate request from the command line.
 *
 *    troupe client [--endpoint E] [--max-tokens N] [--temperature T] [--top-p P]
 *                  [--top-k K] [--min-p P] [--seed S] [--stop STR]... [--ignore-eos]
 *                  [--no-stream] [--json] [--timeout S] "prompt" | -
 *
 *  Text deltas go to stdout as they arrive (nothing added: stdout holds exactly the
 *  generated text, plus a newline when it is a terminal); a one-line summary goes to
 *  stderr: finish_reason, tokens, and TTFT/TPOT/end-to-end measured by this client (its
 *  TTFT includes connecting, which a fresh process must do) and by the server (the final
 *  output's metrics). --json prints one JSON object at the
 *  end instead of the text. Ctrl-C sends `abort`, waits briefly for the final output and
 *  exits 130; a second Ctrl-C exits at once.
 *  Exit (as troupe generate): 0 finish_reason stop or length; 1 bad usage or a bad_request
 *  reply; 3 any other error reply, finish_reason error or abort, or no answer within
 *  --timeout seconds of silence; 130 interrupted.
 *  Thread: main thread only.                                                          */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "clients/c/client.h"
#include "runtime/launcher.h"

#define S_MAX_STOP 64
#define S_EXIT_FAIL 3 /* "failure" in cli/cli.h's list (TR_EXIT_CHILD_DIED's value) */

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: troupe client [options] PROMPT     (PROMPT '-' or absent: read stdin)\n"
            "  -e, --endpoint E      frontend endpoint (default %s)\n"
            "  -n, --max-tokens N    most tokens to generate\n"
            "  -t, --temperature T   0 = greedy\n"
            "      --top-p P, --top-k K, --min-p P, --seed S\n"
            "      --stop STR        stop string (repeatable)\n"
            "      --ignore-eos      keep going past end-of-sequence\n"
            "      --no-stream       one reply at the end instead of deltas\n"
            "      --json            print one JSON object (text, tokens, usage, metrics)\n"
            "      --timeout S       give up after S seconds without a reply (default 60)\n",
            TR_CLIENT_ENDPOINT_DEFAULT);
}

/* Reads all of stdin into a fresh string (NULL when out of memory). */
static char *s_read_stdin(void) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, stdin)) > 0) {
        n += got;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) return free(buf), NULL;
            buf = nb;
        }
    }
    buf[n] = '\0';
    return buf;
}

/* Growable buffers for the text and the token ids of the reply. */
typedef struct {
    char *text;
    size_t n_text, cap_text;
    int32_t *tokens;
    size_t n_tokens, cap_tokens;
} s_acc_t;

static int s_acc_add(s_acc_t *a, const tr_msg_t *m) {
    tr_str_t t = m->u.output.text;
    if (a->n_text + t.n + 1 > a->cap_text) {
        size_t cap = (a->n_text + t.n + 1) * 2;
        char *p = realloc(a->text, cap);
        if (!p) return -1;
        a->text = p, a->cap_text = cap;
    }
    memcpy(a->text + a->n_text, t.p, t.n);
    a->n_text += t.n;
    a->text[a->n_text] = '\0';
    tr_i32s_t k = m->u.output.tokens;
    if (a->n_tokens + k.n > a->cap_tokens) {
        size_t cap = (a->n_tokens + k.n) * 2;
        int32_t *p = realloc(a->tokens, cap * sizeof *p);
        if (!p) return -1;
        a->tokens = p, a->cap_tokens = cap;
    }
    for (uint32_t i = 0; i < k.n; i++) a->tokens[a->n_tokens++] = tr_i32s_at(k, i);
    return 0;
}

static json_t *s_num_or_null(double v) {
    return isnan(v) ? json_null() : json_real(v);
}

int tr_cli_client_main(int argc, char **argv) {
    enum { O_TOPP = 256, O_TOPK, O_MINP, O_SEED, O_STOP, O_IGNEOS, O_NOSTREAM, O_JSON, O_TMO };
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'}, {"max-tokens", required_argument, 0, 'n'},
        {"temperature", required_argument, 0, 't'}, {"top-p", required_argument, 0, O_TOPP},
        {"top-k", required_argument, 0, O_TOPK}, {"min-p", required_argument, 0, O_MINP},
        {"seed", required_argument, 0, O_SEED},  {"stop", required_argument, 0, O_STOP},
        {"ignore-eos", no_argument, 0, O_IGNEOS}, {"no-stream", no_argument, 0, O_NOSTREAM},
        {"json", no_argument, 0, O_JSON},        {"timeout", required_argument, 0, O_TMO},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *endpoint = TR_CLIENT_ENDPOINT_DEFAULT;
    const char *stops[S_MAX_STOP];
    int json_out = 0;
    double timeout_s = 60;
    tr_client_gen_t p;
    tr_client_gen_init(&p);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:n:t:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'n': p.max_tokens = strtoll(optarg, &end, 10); break;
        case 't': p.temperature = strtod(optarg, &end); break;
        case O_TOPP: p.top_p = strtod(optarg, &end); break;
        case O_TOPK: p.top_k = strtoll(optarg, &end, 10); break;
        case O_MINP: p.min_p = strtod(optarg, &end); break;
        case O_SEED: p.seed = strtoll(optarg, &end, 10); break;
        case O_STOP:
            if (p.n_stop == S_MAX_STOP) {
                fprintf(stderr, "troupe client: at most %d --stop strings\n", S_MAX_STOP);
                return TR_EXIT_USAGE;
            }
            stops[p.n_stop++] = optarg;
            break;
        case O_IGNEOS: p.ignore_eos = 1; break;
        case O_NOSTREAM: p.stream = 0; break;
        case O_JSON: json_out = 1; break;
        case O_TMO: timeout_s = strtod(optarg, &end); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return TR_EXIT_USAGE;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, "troupe client: bad number '%s' for --%s\n", optarg,
                    c == 'n' ? "max-tokens" : c == 't' ? "temperature" : "option");
            return TR_EXIT_USAGE;
        }
    }
    if (p.n_stop) p.stop = stops;
    if (timeout_s <= 0) {
        fprintf(stderr, "troupe client: --timeout must be positive\n");
        return TR_EXIT_USAGE;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "troupe client: one prompt expected (quote it), got %d arguments\n",
                argc - optind);
        return TR_EXIT_USAGE;
    }
    char *prompt_buf = NULL;
    if (optind == argc || strcmp(argv[optind], "-") == 0) {
        if (optind == argc && isatty(0)) {
            s_usage(stderr);
            return TR_EXIT_USAGE;
        }
        prompt_buf = s_read_stdin();
        if (!prompt_buf) {
            fprintf(stderr, "troupe client: out of memory reading stdin\n");
            return S_EXIT_FAIL;
        }
    }
    p.prompt = prompt_buf ? prompt_buf : argv[optind];

    tr_client_t *cl = tr_client_new(NULL, endpoint);
    if (!cl) {
        fprintf(stderr, "troupe client: cannot connect to '%s'\n", endpoint);
        free(prompt_buf);
        return TR_EXIT_USAGE;
    }
    struct sigaction old_sa;
    tr_cli_catch(SIGINT, &old_sa);

    int code = S_EXIT_FAIL;
    s_acc_t acc = {0};
    json_t *jfinal = json_object();
    char finish[32] = "", err_text[4200] = "";
    int64_t id = 0;
    int n_outputs = 0, aborted = 0;
    double t_first = NAN, t_last = NAN, t_end = NAN, ttft = NAN, tpot = NAN, e2e = NAN;
    tr_client_usage_t usage = {-1, -1, NAN, NAN, NAN, NAN};
    double t0 = tr_cli_now_ms();
    int rc = tr_client_generate(cl, &p, &id);
    if (rc != TR_OK) {
        snprintf(err_text, sizeof err_text, "cannot send: %s", tr_client_error(cl));
        goto out;
    }
    double deadline = tr_cli_now_ms() + timeout_s * 1e3;
    for (;;) {
        if (tr_cli_interrupted && !aborted) {
            tr_client_abort(cl, id);
            aborted = 1;
            deadline = tr_cli_now_ms() + 2000; /* the final output should follow at once */
        }
        double left = deadline - tr_cli_now_ms();
        if (left <= 0) {
            snprintf(err_text, sizeof err_text, "no reply from %s within %.1f s", endpoint,
                     aborted ? 2.0 : timeout_s);
            break;
        }
        tr_msg_t m;
        rc = tr_client_recv(cl, &m, (int)ceil(left));
        if (rc == TR_AGAIN || rc == TR_ETIMEDOUT) continue;
        if (rc == TR_EPROTO) {
            fprintf(stderr, "troupe client: %s\n", tr_client_error(cl));
            continue;
        }
        if (rc != TR_OK) {
            snprintf(err_text, sizeof err_text, "%s", tr_client_error(cl));
            break;
        }
        deadline = tr_cli_now_ms() + (aborted ? 2000 : timeout_s * 1e3);
        if (tr_client_reply_id(&m) != id) { /* not ours (cannot happen on a fresh socket) */
            tr_msg_fini(&m);
            continue;
        }
        if (m.type == TR_MSG_ERROR) {
            char code_s[65], msg[4097];
            if (tr_str_eq(m.u.error.code, "bad_request")) code = TR_EXIT_USAGE;
            snprintf(err_text, sizeof err_text, "error %s: %s",
                     tr_str_copy(m.u.error.code, code_s, sizeof code_s),
                     tr_str_copy(m.u.error.message, msg, sizeof msg));
            tr_msg_fini(&m);
            break;
        }
        if (m.type != TR_MSG_OUTPUT) {
            tr_msg_fini(&m);
            continue;
        }
        double now = tr_cli_now_ms();
        n_outputs++;
        if (m.u.output.tokens.n) {
            if (isnan(t_first)) t_first = now;
            t_last = now;
        }
        if (s_acc_add(&acc, &m) != 0) {
            snprintf(err_text, sizeof err_text, "out of memory");
            tr_msg_fini(&m);
            break;
        }
        if (!json_out && m.u.output.text.n) {
            fwrite(m.u.output.text.p, 1, m.u.output.text.n, stdout);
            fflush(stdout);
        }
        if (tr_client_output_is_final(&m)) {
            t_end = now;
            tr_str_copy(m.u.output.finish_reason, finish, sizeof finish);
            tr_client_output_usage(&m, &usage);
            if (TR_MSG_HAS(&m, output, error)) {
                char e[4097];
                snprintf(err_text, sizeof err_text, "%s",
                         tr_str_copy(m.u.output.error, e, sizeof e));
            }
            if (TR_MSG_HAS(&m, output, stop_reason) && m.u.output.stop_reason.obj)
                json_object_set_new(jfinal, "stop_reason",
                                    tr_cli_json_from_msgpack(m.u.output.stop_reason.obj));
            if (TR_MSG_HAS(&m, output, usage) && m.u.output.usage.obj)
                json_object_set_new(jfinal, "usage", tr_cli_json_from_msgpack(m.u.output.usage.obj));
            if (TR_MSG_HAS(&m, output, metrics) && m.u.output.metrics.obj)
                json_object_set_new(jfinal, "metrics",
                                    tr_cli_json_from_msgpack(m.u.output.metrics.obj));
            tr_msg_fini(&m);
            break;
        }
        tr_msg_fini(&m);
    }
    if (finish[0])
        code = tr_cli_interrupted ? 130
               : (strcmp(finish, "stop") == 0 || strcmp(finish, "length") == 0) ? 0
                                                                                 : S_EXIT_FAIL;
    else if (tr_cli_interrupted)
        code = 130;

    /* client-side timings: TTFT to the first output carrying tokens, TPOT over the rest */
    ttft = t_first - t0, e2e = t_end - t0;
    if (acc.n_tokens > 1) tpot = (t_last - t_first) / (double)(acc.n_tokens - 1);
    if (!json_out && acc.n_text && isatty(1)) putchar('\n');
    if (json_out) {
        json_t *toks = json_array();
        for (size_t i = 0; i < acc.n_tokens; i++) json_array_append_new(toks, json_integer(acc.tokens[i]));
        json_t *j = json_object(); /* the main fields first, then the final output's maps */
        json_object_set_new(j, "id", json_integer(id));
        json_object_set_new(j, "text", json_stringn(acc.text ? acc.text : "", acc.n_text));
        json_object_set_new(j, "tokens", toks);
        json_object_set_new(j, "finish_reason", finish[0] ? json_string(finish) : json_null());
        if (err_text[0]) json_object_set_new(j, "error", json_string(err_text));
        json_object_update(j, jfinal);
        json_decref(jfinal);
        jfinal = j;
        json_object_set_new(jfinal, "client",
                            json_pack("{s:o, s:o, s:o, s:i}", "ttft_ms", s_num_or_null(ttft),
                                      "tpot_ms", s_num_or_null(tpot), "e2e_ms", s_num_or_null(e2e),
                                      "outputs", n_outputs));
        char *s = json_dumps(jfinal, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) printf("%s\n", s);
        free(s);
    }
out:
    if (finish[0]) {
        fprintf(stderr,
                "troupe client: finish_reason=%s tokens=%zu prompt_tokens=%lld outputs=%d "
                "ttft=%.1fms tpot=%.2fms e2e=%.1fms (server: ttft=%.1fms tpot=%.2fms e2e=%.1fms)%s%s\n",
                finish, acc.n_tokens, (long long)usage.prompt_tokens, n_outputs, ttft, tpot, e2e,
                usage.ttft_ms, usage.tpot_ms, usage.e2e_ms, err_text[0] ? ": " : "", err_text);
    } else {
        fprintf(stderr, "troupe client: %s\n", err_text[0] ? err_text : "interrupted");
    }
    tr_cli_restore(SIGINT, &old_sa);
    json_decref(jfinal);
    free(acc.text);
    free(acc.tokens);
    tr_client_destroy(&cl);
    free(prompt_buf);
    return code;
}
