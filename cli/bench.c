/*  cli/bench.c - `troupe bench`: a serving benchmark client.
 *
 *  One process, one DEALER socket (clients/c/client.h), many requests in flight, one
 *  zmq_poll loop. For each load level (a --concurrency value: closed loop, N requests
 *  always in flight; or a --rate value: open loop, Poisson arrivals from a seeded
 *  generator) it sends --num-prompts generate requests and times every reply with its
 *  own monotonic clock:
 *    TTFT  send -> first output carrying tokens
 *    TPOT  (last token output - first token output) / (output tokens - 1)
 *    ITL   gaps between successive outputs carrying tokens
 *    E2E   send -> final output
 *  and keeps the server's own figures (the final output's `metrics`) beside them. A level
 *  reports p50/p90/p99 and mean of each, request and output-token throughput, and goodput:
 *  requests per second that finished ok within --slo-ttft-ms and --slo-tpot-ms. Errors
 *  (error replies, finish_reason error/abort, silence past --timeout) are counted, never
 *  fatal. stdout gets one markdown table, a row per level; --json FILE gets every figure,
 *  the per-request records and the run's configuration (tools/plot_bench.py draws it).
 *
 *  Prompts: synthetic (random token ids, `tokens` field, ignore_eos, max_tokens = output
 *  length; lengths fixed or uniform in A:B) or --prompts FILE.jsonl ({"prompt" | "tokens",
 *  "max_tokens"?} per line). The same prompts, in the same order, serve every level.
 *  Thread: main thread only.                                                          */
#include <errno.h>
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

#define S_MAX_LEVELS 32

/* ---- configuration ---- */

typedef struct {
    int32_t lo, hi;                 /* uniform in [lo, hi]; lo == hi: fixed */
} s_range_t;

typedef struct {
    const char *endpoint;
    int mode_rate;                  /* 0: closed loop over concurrency[], 1: open over rate[] */
    int64_t concurrency[S_MAX_LEVELS];
    double rate[S_MAX_LEVELS];
    int n_levels;
    int64_t max_concurrency;        /* open loop: cap on requests in flight (0 = none) */
    int64_t num_prompts;            /* < 0: all of --prompts, or 100 */
    s_range_t input_len, output_len;
    const char *prompts_file;
    uint64_t seed;
    double temperature;
    int ignore_eos;                 /* -1: synthetic prompts yes, file prompts server default */
    double slo_ttft_ms, slo_tpot_ms;/* NAN: no objective */
    const char *json_file;
    int progress;
    double timeout_s;               /* silence with requests in flight before they count as errors */
    int64_t vocab;                  /* synthetic token ids in [3, vocab); 0: ask model_info */
    int64_t warmup;
    int server_stats;
} s_conf_t;

/* One prompt: text or token ids, and its output length. */
typedef struct {
    char *text;                     /* owned, or NULL */
    int32_t *tokens;                /* owned, or NULL */
    int32_t n_tokens;
    int64_t max_tokens;             /* TR_CLIENT_UNSET: the server's default */
} s_prompt_t;

/* One request's timeline and outcome; times are ms since the level started. */
typedef struct {
    int64_t id;
    int32_t prompt;
    int state;                      /* S_PENDING, S_FLIGHT, S_OK, S_ERR */
    double t_send, t_first, t_last, t_end;
    int64_t n_out;                  /* tokens received */
    int32_t n_outputs;
    double *itl;                    /* owned: n_itl gaps */
    int32_t n_itl, cap_itl;
    char finish[16];
    char error[160];                /* error code (error reply) or reason */
    tr_client_usage_t srv;
} s_req_t;

enum { S_PENDING = 0, S_FLIGHT, S_OK, S_ERR };

/* ---- a seeded generator (splitmix64), so runs are reproducible ---- */

static uint64_t s_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double s_rand01(uint64_t *state) {
    return (double)(s_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

static int32_t s_rand_in(uint64_t *state, s_range_t r) {
    if (r.hi <= r.lo) return r.lo;
    return r.lo + (int32_t)(s_rand(state) % (uint64_t)(r.hi - r.lo + 1));
}

/* ---- statistics ---- */

typedef struct {
    int64_t n;
    double mean, p50, p90, p99, min, max;
} s_dist_t;

static int s_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentiles by linear interpolation between order statistics (so p50 <= p90 <= p99);
 * NaN values are left out. Sorts v in place. */
static s_dist_t s_dist(double *v, int64_t n) {
    s_dist_t d = {0, NAN, NAN, NAN, NAN, NAN, NAN};
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(v[i])) v[k++] = v[i];
    if (k == 0) return d;
    qsort(v, (size_t)k, sizeof *v, s_cmp_double);
    double sum = 0;
    for (int64_t i = 0; i < k; i++) sum += v[i];
    d.n = k;
    d.mean = sum / (double)k;
    d.min = v[0];
    d.max = v[k - 1];
    double q[3] = {0.5, 0.9, 0.99}, *out[3] = {&d.p50, &d.p90, &d.p99};
    for (int j = 0; j < 3; j++) {
        double pos = q[j] * (double)(k - 1);
        int64_t lo = (int64_t)floor(pos);
        int64_t hi = lo + 1 < k ? lo + 1 : lo;
        *out[j] = v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
    }
    return d;
}

static json_t *s_num(double v) {
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *s_dist_json(s_dist_t d) {
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "n", (json_int_t)d.n, "mean",
                     s_num(d.mean), "p50", s_num(d.p50), "p90", s_num(d.p90), "p99",
                     s_num(d.p99), "min", s_num(d.min), "max", s_num(d.max));
}

/* ---- argument parsing ---- */

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: troupe bench [options]\n"
            "  -e, --endpoint E        frontend endpoint (default %s)\n"
            "  -c, --concurrency LIST  closed loop: requests kept in flight, e.g. 1,4,16 (default 1)\n"
            "  -r, --rate LIST         open loop: Poisson arrivals, requests/s, e.g. 2,4,8\n"
            "      --max-concurrency N open loop: at most N in flight (default: no cap)\n"
            "  -n, --num-prompts N     requests per level (default 100, or the lines of --prompts)\n"
            "      --input-len L|A:B   synthetic prompt tokens, fixed or uniform (default 128)\n"
            "      --output-len L|A:B  tokens to generate (default 128)\n"
            "      --prompts FILE      JSON lines: {\"prompt\": str | \"tokens\": [int], \"max_tokens\"?}\n"
            "      --seed S            prompts and arrivals (default 0)\n"
            "      --temperature T     (default 0: greedy)\n"
            "      --ignore-eos / --no-ignore-eos  (default: on for synthetic prompts)\n"
            "      --vocab N           synthetic ids in [3, N) (default: the server's model_info)\n"
            "      --slo-ttft-ms X     goodput counts requests with TTFT <= X ...\n"
            "      --slo-tpot-ms Y     ... and TPOT <= Y (unset: no objective)\n"
            "      --warmup N          N untimed requests before the first level (default 0)\n"
            "      --timeout S         silence (s) before in-flight requests count as errors (default 120)\n"
            "      --no-server-stats   do not ask the server for `stats` after each level\n"
            "      --json FILE         every figure, per-request records and the config\n"
            "      --progress          progress bar on stderr even when it is not a terminal\n",
            TR_CLIENT_ENDPOINT_DEFAULT);
}

static int s_parse_range(const char *s, s_range_t *r) {
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end == s) return -1;
    if (*end == ':') {
        const char *t = end + 1;
        b = strtol(t, &end, 10);
        if (end == t) return -1;
    }
    if (*end || a < 0 || b < a || b > 1048576) return -1;
    r->lo = (int32_t)a, r->hi = (int32_t)b;
    return 0;
}

static int s_parse_list(const char *s, s_conf_t *c, int rate) {
    c->n_levels = 0;
    c->mode_rate = rate;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v <= 0 || c->n_levels == S_MAX_LEVELS) return -1;
        if (rate)
            c->rate[c->n_levels++] = v;
        else {
            if (v != floor(v)) return -1;
            c->concurrency[c->n_levels++] = (int64_t)v;
        }
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return c->n_levels ? 0 : -1;
}

/* ---- prompts ---- */

static void s_prompts_free(s_prompt_t *p, int64_t n) {
    for (int64_t i = 0; p && i < n; i++) free(p[i].text), free(p[i].tokens);
    free(p);
}

/* Reads FILE.jsonl into *out (n_out prompts). Returns 0, or -1 with a message printed. */
static int s_prompts_load(const s_conf_t *c, s_prompt_t **out, int64_t *n_out) {
    FILE *f = fopen(c->prompts_file, "r");
    if (!f) {
        fprintf(stderr, "troupe bench: cannot open %s: %s\n", c->prompts_file, strerror(errno));
        return -1;
    }
    s_prompt_t *p = NULL;
    int64_t n = 0, cap = 0, line_no = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    while (getline(&line, &line_cap, f) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        json_t *jp = j ? json_object_get(j, "prompt") : NULL;
        json_t *jt = j ? json_object_get(j, "tokens") : NULL;
        json_t *jm = j ? json_object_get(j, "max_tokens") : NULL;
        if (!j || !json_is_object(j) || (!json_is_string(jp) && !json_is_array(jt)) ||
            (jm && !json_is_integer(jm))) {
            fprintf(stderr, "troupe bench: %s:%lld: expected {\"prompt\": str | \"tokens\": [int], "
                            "\"max_tokens\": int?}%s%s\n",
                    c->prompts_file, (long long)line_no, j ? "" : ": ", j ? "" : je.text);
            json_decref(j);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            s_prompt_t *np = realloc(p, (size_t)cap * sizeof *p);
            if (!np) {
                json_decref(j);
                rc = -1;
                break;
            }
            p = np;
        }
        s_prompt_t *q = &p[n++];
        memset(q, 0, sizeof *q);
        q->max_tokens = jm ? json_integer_value(jm) : TR_CLIENT_UNSET;
        if (json_is_string(jp)) {
            q->text = strdup(json_string_value(jp));
        } else {
            q->n_tokens = (int32_t)json_array_size(jt);
            q->tokens = malloc(((size_t)q->n_tokens + 1) * sizeof(int32_t));
            for (int32_t i = 0; q->tokens && i < q->n_tokens; i++)
                q->tokens[i] = (int32_t)json_integer_value(json_array_get(jt, (size_t)i));
        }
        json_decref(j);
        if (!q->text && !q->tokens) {
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc == 0 && n == 0) {
        fprintf(stderr, "troupe bench: %s holds no prompts\n", c->prompts_file);
        rc = -1;
    }
    if (rc != 0) {
        s_prompts_free(p, n);
        return -1;
    }
    *out = p, *n_out = n;
    return 0;
}

/* num_prompts synthetic prompts: random ids in [3, vocab) (past the usual specials). */
static s_prompt_t *s_prompts_synth(const s_conf_t *c, int64_t vocab) {
    s_prompt_t *p = calloc((size_t)c->num_prompts, sizeof *p);
    if (!p) return NULL;
    uint64_t rng = c->seed * 0x2545f4914f6cdd1dull + 1;
    for (int64_t i = 0; i < c->num_prompts; i++) {
        p[i].n_tokens = s_rand_in(&rng, c->input_len);
        p[i].max_tokens = s_rand_in(&rng, c->output_len);
        p[i].tokens = malloc(((size_t)p[i].n_tokens + 1) * sizeof(int32_t));
        if (!p[i].tokens) return s_prompts_free(p, c->num_prompts), NULL;
        for (int32_t k = 0; k < p[i].n_tokens; k++)
            p[i].tokens[k] = 3 + (int32_t)(s_rand(&rng) % (uint64_t)(vocab > 4 ? vocab - 3 : 1));
    }
    return p;
}

/* ---- one level ---- */

typedef struct {
    tr_client_t *cl;
    const s_conf_t *conf;
    const s_prompt_t *prompts;
    int64_t n_prompts;
    int32_t *id2req;                /* owned: request index by client id (-1: not ours) */
    int64_t id_cap;
    json_t *server_stats;           /* the last `stats` reply, or NULL */
} s_bench_t;

static int s_map_id(s_bench_t *b, int64_t id, int32_t idx) {
    if (id >= b->id_cap) {
        int64_t cap = (id + 1) * 2;
        int32_t *p = realloc(b->id2req, (size_t)cap * sizeof *p);
        if (!p) return -1;
        for (int64_t i = b->id_cap; i < cap; i++) p[i] = -1;
        b->id2req = p, b->id_cap = cap;
    }
    b->id2req[id] = idx;
    return 0;
}

static int s_send(s_bench_t *b, s_req_t *r, int32_t idx, double t0) {
    const s_prompt_t *pr = &b->prompts[r->prompt];
    tr_client_gen_t p;
    tr_client_gen_init(&p);
    if (pr->text) p.prompt = pr->text;
    else p.tokens = pr->tokens, p.n_tokens = (uint32_t)pr->n_tokens;
    p.max_tokens = pr->max_tokens;
    p.temperature = b->conf->temperature;
    int ign = b->conf->ignore_eos;
    if (ign < 0) ign = pr->text ? -1 : 1;
    p.ignore_eos = (int8_t)ign;
    if (b->conf->temperature > 0) p.seed = (int64_t)((b->conf->seed + (uint64_t)r->prompt) & INT64_MAX);
    r->t_send = tr_cli_now_ms() - t0;
    int rc = tr_client_generate(b->cl, &p, &r->id);
    if (rc != TR_OK) {
        r->state = S_ERR;
        r->t_end = r->t_send;
        snprintf(r->error, sizeof r->error, "send: %s", tr_client_error(b->cl));
        return 0;
    }
    r->state = S_FLIGHT;
    return s_map_id(b, r->id, idx);
}

/* Applies one reply; returns 1 when it finished its request. */
static int s_on_reply(s_bench_t *b, s_req_t *reqs, const tr_msg_t *m, double now) {
    int64_t id = tr_client_reply_id(m);
    if (id < 0 || id >= b->id_cap || b->id2req[id] < 0) {
        if (m->type == TR_MSG_STATS && m->root) {
            json_decref(b->server_stats);
            b->server_stats = tr_cli_json_from_msgpack(m->root);
        }
        return 0;
    }
    s_req_t *r = &reqs[b->id2req[id]];
    if (r->state != S_FLIGHT) return 0; /* late replies to a request given up on */
    if (m->type == TR_MSG_ERROR) {
        char code[65];
        snprintf(r->error, sizeof r->error, "%s", tr_str_copy(m->u.error.code, code, sizeof code));
        r->state = S_ERR;
        r->t_end = now;
        return 1;
    }
    if (m->type != TR_MSG_OUTPUT) return 0;
    r->n_outputs++;
    uint32_t nt = m->u.output.tokens.n;
    if (nt) {
        if (r->n_out == 0) {
            r->t_first = now;
        } else {
            if (r->n_itl == r->cap_itl) {
                int32_t cap = r->cap_itl ? 2 * r->cap_itl : 16;
                double *p = realloc(r->itl, (size_t)cap * sizeof *p);
                if (p) r->itl = p, r->cap_itl = cap;
            }
            if (r->n_itl < r->cap_itl) r->itl[r->n_itl++] = now - r->t_last;
        }
        r->t_last = now;
        r->n_out += nt;
    }
    if (!tr_client_output_is_final(m)) return 0;
    r->t_end = now;
    tr_str_copy(m->u.output.finish_reason, r->finish, sizeof r->finish);
    tr_client_output_usage(m, &r->srv);
    int good = strcmp(r->finish, "stop") == 0 || strcmp(r->finish, "length") == 0;
    r->state = good ? S_OK : S_ERR;
    if (!good) {
        char e[128] = "";
        if (TR_MSG_HAS(m, output, error)) tr_str_copy(m->u.output.error, e, sizeof e);
        snprintf(r->error, sizeof r->error, "finish_reason %s%s%s", r->finish, e[0] ? ": " : "", e);
    }
    return 1;
}

static void s_progress(const char *label, int64_t done, int64_t n, int64_t errs, double secs,
                       int final) {
    int width = 30, fill = n ? (int)(width * done / n) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r%-18s [%s] %lld/%lld  err %lld  %.1f s%s", label, bar, (long long)done,
            (long long)n, (long long)errs, secs, final ? "\n" : "");
    fflush(stderr);
}

/* Runs n requests (prompts 0..n-1, cycling) at one load level. *t_span gets the span from
 * the first send to the last reply, in ms. Returns the requests (caller frees). */
static s_req_t *s_run_level(s_bench_t *b, int level, int64_t n, const char *label, int show,
                            double *t_span) {
    const s_conf_t *c = b->conf;
    s_req_t *reqs = calloc((size_t)n, sizeof *reqs);
    double *arrival = calloc((size_t)n, sizeof *arrival);
    if (!reqs || !arrival) {
        free(reqs), free(arrival);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        reqs[i].prompt = (int32_t)(i % b->n_prompts);
        reqs[i].srv = (tr_client_usage_t){-1, -1, NAN, NAN, NAN, NAN};
    }
    int64_t cap_flight = c->mode_rate ? (c->max_concurrency > 0 ? c->max_concurrency : INT64_MAX)
                                      : c->concurrency[level];
    if (c->mode_rate) { /* Poisson process: exponential gaps, the same seed every level */
        uint64_t rng = c->seed ^ 0x5bd1e995u;
        double t = 0;
        for (int64_t i = 0; i < n; i++) {
            arrival[i] = t;
            t += -log(1.0 - s_rand01(&rng)) / c->rate[level] * 1e3;
        }
    }
    double t0 = tr_cli_now_ms(), last_activity = t0, last_draw = 0;
    int64_t next = 0, flight = 0, done = 0, errs = 0;
    while (done < n) {
        double now = tr_cli_now_ms() - t0;
        /* issue what the load model allows */
        while (!tr_cli_interrupted && next < n && flight < cap_flight &&
               (!c->mode_rate || arrival[next] <= now)) {
            if (s_send(b, &reqs[next], (int32_t)next, t0) != 0) {
                reqs[next].state = S_ERR;
                snprintf(reqs[next].error, sizeof reqs[next].error, "out of memory");
            }
            if (reqs[next].state == S_FLIGHT) flight++, last_activity = tr_cli_now_ms();
            else done++, errs++;
            next++;
        }
        if (tr_cli_interrupted) { /* stop: abort what is in flight, count the rest as not run */
            for (int64_t i = 0; i < n; i++) {
                if (reqs[i].state == S_FLIGHT) tr_client_abort(b->cl, reqs[i].id);
                if (reqs[i].state <= S_FLIGHT) {
                    reqs[i].state = S_ERR;
                    snprintf(reqs[i].error, sizeof reqs[i].error, "interrupted");
                    done++, errs++;
                }
            }
            break;
        }
        /* wait for replies, at most until the next arrival or a progress redraw */
        int wait = 100;
        if (c->mode_rate && next < n && flight < cap_flight) {
            double dt = arrival[next] - (tr_cli_now_ms() - t0);
            wait = dt <= 0 ? 0 : dt < 100 ? (int)ceil(dt) : 100;
        }
        tr_msg_t m;
        int rc = tr_client_recv(b->cl, &m, wait);
        while (rc == TR_OK || rc == TR_EPROTO) {
            if (rc == TR_OK) {
                double t = tr_cli_now_ms();
                last_activity = t;
                if (s_on_reply(b, reqs, &m, t - t0)) {
                    flight--, done++;
                    s_req_t *r = &reqs[b->id2req[tr_client_reply_id(&m)]];
                    if (r->state == S_ERR) errs++;
                }
                tr_msg_fini(&m);
            }
            rc = tr_client_recv(b->cl, &m, 0); /* drain what is queued before sending more */
        }
        if (rc == TR_EZMQ) {
            fprintf(stderr, "troupe bench: %s\n", tr_client_error(b->cl));
            tr_cli_interrupted = 1;
        }
        double t = tr_cli_now_ms();
        if (flight > 0 && t - last_activity > c->timeout_s * 1e3) {
            for (int64_t i = 0; i < n; i++) {
                if (reqs[i].state != S_FLIGHT) continue;
                tr_client_abort(b->cl, reqs[i].id);
                reqs[i].state = S_ERR;
                reqs[i].t_end = t - t0;
                snprintf(reqs[i].error, sizeof reqs[i].error, "timeout");
                flight--, done++, errs++;
            }
            last_activity = t;
        }
        if (show && t - last_draw > 100) {
            s_progress(label, done, n, errs, (t - t0) / 1e3, 0);
            last_draw = t;
        }
    }
    if (show) s_progress(label, done, n, errs, (tr_cli_now_ms() - t0) / 1e3, 1);
    for (int64_t i = 0; i < n; i++) /* late replies to this level must not reach the next */
        if (reqs[i].id > 0 && reqs[i].id < b->id_cap) b->id2req[reqs[i].id] = -1;
    double first = INFINITY, last = 0;
    for (int64_t i = 0; i < n; i++) {
        if (reqs[i].t_send < first) first = reqs[i].t_send;
        if (reqs[i].t_end > last) last = reqs[i].t_end;
    }
    *t_span = n && last > first ? last - first : 0;
    free(arrival);
    return reqs;
}

/* ---- one level's figures ---- */

typedef struct {
    int64_t n, ok, err, in_tokens, out_tokens, good;
    double duration_s, req_per_s, tok_per_s, goodput;
    s_dist_t ttft, tpot, itl, e2e;
    s_dist_t srv_queue, srv_ttft, srv_tpot, srv_e2e;
} s_summary_t;

static double s_req_tpot(const s_req_t *r) {
    return r->n_out > 1 ? (r->t_last - r->t_first) / (double)(r->n_out - 1) : NAN;
}

static int s_req_good(const s_conf_t *c, const s_req_t *r) {
    if (r->state != S_OK) return 0;
    if (!isnan(c->slo_ttft_ms) && !(r->n_out > 0 && r->t_first - r->t_send <= c->slo_ttft_ms))
        return 0;
    double tpot = s_req_tpot(r);
    if (!isnan(c->slo_tpot_ms) && !isnan(tpot) && tpot > c->slo_tpot_ms) return 0;
    return 1;
}

static s_summary_t s_summarize(const s_bench_t *b, const s_req_t *reqs, int64_t n, double span_ms) {
    s_summary_t s = {0};
    s.n = n;
    int64_t n_itl = 0;
    for (int64_t i = 0; i < n; i++) n_itl += reqs[i].n_itl;
    double *v = malloc(((size_t)(n > n_itl ? n : n_itl) + 1) * sizeof *v);
    if (!v) return s;
#define S_DIST(field, expr)                                                                \
    do {                                                                                   \
        int64_t k = 0;                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                  \
            const s_req_t *r = &reqs[i];                                                   \
            if (r->state == S_OK) v[k++] = (expr);                                         \
        }                                                                                  \
        s.field = s_dist(v, k);                                                            \
    } while (0)
    S_DIST(ttft, r->n_out ? r->t_first - r->t_send : NAN);
    S_DIST(tpot, s_req_tpot(r));
    S_DIST(e2e, r->t_end - r->t_send);
    S_DIST(srv_queue, r->srv.queue_ms);
    S_DIST(srv_ttft, r->srv.ttft_ms);
    S_DIST(srv_tpot, r->srv.tpot_ms);
    S_DIST(srv_e2e, r->srv.e2e_ms);
#undef S_DIST
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        const s_req_t *r = &reqs[i];
        if (r->state == S_OK)
            for (int32_t j = 0; j < r->n_itl; j++) v[k++] = r->itl[j];
        if (r->state == S_OK) {
            s.ok++;
            s.out_tokens += r->n_out;
            const s_prompt_t *p = &b->prompts[r->prompt];
            s.in_tokens += r->srv.prompt_tokens >= 0 ? r->srv.prompt_tokens : p->n_tokens;
        } else {
            s.err++;
        }
        s.good += s_req_good(b->conf, r);
    }
    s.itl = s_dist(v, k);
    free(v);
    s.duration_s = span_ms / 1e3;
    if (s.duration_s > 0) {
        s.req_per_s = (double)s.ok / s.duration_s;
        s.tok_per_s = (double)s.out_tokens / s.duration_s;
        s.goodput = (double)s.good / s.duration_s;
    }
    return s;
}

static json_t *s_summary_json(const s_summary_t *s, const s_req_t *reqs) {
    json_t *errors = json_object();
    for (int64_t i = 0; i < s->n; i++) {
        if (reqs[i].state != S_ERR) continue;
        char key[64];
        snprintf(key, sizeof key, "%.*s", (int)strcspn(reqs[i].error, ":"), reqs[i].error);
        json_t *c = json_object_get(errors, key);
        json_object_set_new(errors, key, json_integer(c ? json_integer_value(c) + 1 : 1));
    }
    return json_pack("{s:I, s:I, s:I, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o,"
                     " s:{s:o, s:o, s:o, s:o}}",
                     "requests", (json_int_t)s->n, "ok", (json_int_t)s->ok, "errors",
                     (json_int_t)s->err, "errors_by_kind", errors, "input_tokens",
                     (json_int_t)s->in_tokens, "output_tokens", (json_int_t)s->out_tokens,
                     "duration_s", s_num(s->duration_s), "request_throughput", s_num(s->req_per_s),
                     "output_throughput", s_num(s->tok_per_s), "goodput", s_num(s->goodput),
                     "good_requests", (json_int_t)s->good, "ttft_ms", s_dist_json(s->ttft),
                     "tpot_ms", s_dist_json(s->tpot), "itl_ms", s_dist_json(s->itl), "e2e_ms",
                     s_dist_json(s->e2e), "server", "queue_ms", s_dist_json(s->srv_queue),
                     "ttft_ms", s_dist_json(s->srv_ttft), "tpot_ms", s_dist_json(s->srv_tpot),
                     "e2e_ms", s_dist_json(s->srv_e2e));
}

static json_t *s_requests_json(const s_bench_t *b, const s_req_t *reqs, int64_t n) {
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++) {
        const s_req_t *r = &reqs[i];
        const s_prompt_t *p = &b->prompts[r->prompt];
        json_t *itl = json_array();
        for (int32_t j = 0; j < r->n_itl; j++) json_array_append_new(itl, json_real(r->itl[j]));
        json_t *o = json_pack(
            "{s:I, s:i, s:b, s:o, s:o, s:I, s:I, s:i, s:o, s:o, s:o, s:o, s:o, s:b,"
            " s:{s:o, s:o, s:o, s:o, s:o, s:o}}",
            "id", (json_int_t)r->id, "prompt", r->prompt, "ok", r->state == S_OK,
            "finish_reason", r->finish[0] ? json_string(r->finish) : json_null(), "error",
            r->error[0] ? json_string(r->error) : json_null(), "prompt_tokens",
            (json_int_t)(r->srv.prompt_tokens >= 0 ? r->srv.prompt_tokens : p->n_tokens),
            "output_tokens", (json_int_t)r->n_out, "outputs", r->n_outputs, "send_ms",
            s_num(r->t_send), "ttft_ms", s_num(r->n_out ? r->t_first - r->t_send : NAN),
            "tpot_ms", s_num(s_req_tpot(r)), "e2e_ms",
            s_num(r->state == S_OK || r->t_end > 0 ? r->t_end - r->t_send : NAN), "itl_ms", itl,
            "good", s_req_good(b->conf, r), "server", "queue_ms", s_num(r->srv.queue_ms),
            "ttft_ms", s_num(r->srv.ttft_ms), "tpot_ms", s_num(r->srv.tpot_ms), "e2e_ms",
            s_num(r->srv.e2e_ms), "prompt_tokens",
            r->srv.prompt_tokens >= 0 ? json_integer(r->srv.prompt_tokens) : json_null(),
            "completion_tokens",
            r->srv.completion_tokens >= 0 ? json_integer(r->srv.completion_tokens) : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

/* ---- the table ---- */

static void s_table_head(const s_conf_t *c) {
    printf("| %s | ok | err | req/s | out tok/s | goodput req/s | TTFT p50 / p90 / p99 ms | "
           "TPOT p50 / p90 / p99 ms | ITL p50 / p90 / p99 ms | E2E p50 / p90 / p99 ms |\n",
           c->mode_rate ? "rate req/s" : "concurrency");
    printf("|---:|---:|---:|---:|---:|---:|---|---|---|---|\n");
}

static void s_table_row(const char *load, const s_summary_t *s) {
    printf("| %s | %lld | %lld | %.2f | %.1f | %.2f | %.1f / %.1f / %.1f | %.2f / %.2f / %.2f | "
           "%.2f / %.2f / %.2f | %.1f / %.1f / %.1f |\n",
           load, (long long)s->ok, (long long)s->err, s->req_per_s, s->tok_per_s, s->goodput,
           s->ttft.p50, s->ttft.p90, s->ttft.p99, s->tpot.p50, s->tpot.p90, s->tpot.p99,
           s->itl.p50, s->itl.p90, s->itl.p99, s->e2e.p50, s->e2e.p90, s->e2e.p99);
    fflush(stdout);
}

/* ---- setup ---- */

/* Asks model_info (which also opens the connection before any timing starts): the
 * vocabulary size (0 when unknown), the context length, and the reply as JSON (*info). */
static int64_t s_ask_model(tr_client_t *cl, int64_t *ctx_len, json_t **info) {
    int64_t id;
    *ctx_len = 0;
    *info = NULL;
    if (tr_client_model_info(cl, &id) != TR_OK) return 0;
    double deadline = tr_cli_now_ms() + 10000;
    while (tr_cli_now_ms() < deadline && !tr_cli_interrupted) {
        tr_msg_t m;
        int rc = tr_client_recv(cl, &m, 200);
        if (rc != TR_OK) continue;
        int64_t got = 0;
        int mine = tr_client_reply_id(&m) == id;
        if (mine && m.type == TR_MSG_MODEL_INFO) {
            if (TR_MSG_HAS(&m, model_info, vocab_size)) got = m.u.model_info.vocab_size;
            if (TR_MSG_HAS(&m, model_info, context_length)) *ctx_len = m.u.model_info.context_length;
            if (m.root) *info = tr_cli_json_from_msgpack(m.root);
        }
        tr_msg_fini(&m);
        if (mine) return got;
    }
    return 0;
}

/* Sends `stats` and waits up to 3 s for the reply (kept in b->server_stats). */
static void s_fetch_stats(s_bench_t *b) {
    int64_t id;
    json_decref(b->server_stats);
    b->server_stats = NULL;
    if (tr_client_stats(b->cl, &id) != TR_OK) return;
    double deadline = tr_cli_now_ms() + 3000;
    while (!b->server_stats && tr_cli_now_ms() < deadline && !tr_cli_interrupted) {
        tr_msg_t m;
        if (tr_client_recv(b->cl, &m, 100) != TR_OK) continue;
        if (tr_client_reply_id(&m) == id && m.type == TR_MSG_STATS && m.root)
            b->server_stats = tr_cli_json_from_msgpack(m.root);
        tr_msg_fini(&m);
    }
}

static json_t *s_conf_json(const s_conf_t *c, int64_t vocab) {
    json_t *loads = json_array();
    for (int i = 0; i < c->n_levels; i++)
        json_array_append_new(loads, c->mode_rate ? json_real(c->rate[i])
                                                  : json_integer(c->concurrency[i]));
    return json_pack("{s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:o, s:I, s:f, s:o, s:o, s:o, s:I, "
                     "s:f, s:I}",
                     "endpoint", c->endpoint, "mode", c->mode_rate ? "rate" : "concurrency",
                     "loads", loads, "max_concurrency", (json_int_t)c->max_concurrency,
                     "num_prompts", (json_int_t)c->num_prompts, "input_len",
                     c->prompts_file ? json_null()
                                     : json_pack("[i, i]", c->input_len.lo, c->input_len.hi),
                     "output_len", json_pack("[i, i]", c->output_len.lo, c->output_len.hi),
                     "prompts_file", c->prompts_file ? json_string(c->prompts_file) : json_null(),
                     "seed", (json_int_t)c->seed, "temperature", c->temperature, "ignore_eos",
                     c->ignore_eos < 0 ? json_null() : json_boolean(c->ignore_eos), "slo_ttft_ms",
                     s_num(c->slo_ttft_ms), "slo_tpot_ms", s_num(c->slo_tpot_ms), "vocab",
                     (json_int_t)vocab, "timeout_s", c->timeout_s, "warmup",
                     (json_int_t)c->warmup);
}

int tr_cli_bench_main(int argc, char **argv) {
    enum {
        O_MAXC = 256, O_IN, O_OUT, O_PROMPTS, O_SEED, O_TEMP, O_IGN, O_NOIGN, O_VOCAB, O_SLOT,
        O_SLOP, O_WARM, O_TMO, O_NOSTATS, O_JSON, O_PROG
    };
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'},   {"concurrency", required_argument, 0, 'c'},
        {"rate", required_argument, 0, 'r'},       {"max-concurrency", required_argument, 0, O_MAXC},
        {"num-prompts", required_argument, 0, 'n'}, {"input-len", required_argument, 0, O_IN},
        {"output-len", required_argument, 0, O_OUT}, {"prompts", required_argument, 0, O_PROMPTS},
        {"seed", required_argument, 0, O_SEED},     {"temperature", required_argument, 0, O_TEMP},
        {"ignore-eos", no_argument, 0, O_IGN},      {"no-ignore-eos", no_argument, 0, O_NOIGN},
        {"vocab", required_argument, 0, O_VOCAB},   {"slo-ttft-ms", required_argument, 0, O_SLOT},
        {"slo-tpot-ms", required_argument, 0, O_SLOP}, {"warmup", required_argument, 0, O_WARM},
        {"timeout", required_argument, 0, O_TMO},   {"no-server-stats", no_argument, 0, O_NOSTATS},
        {"json", required_argument, 0, O_JSON},     {"progress", no_argument, 0, O_PROG},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0},
    };
    s_conf_t c = {
        .endpoint = TR_CLIENT_ENDPOINT_DEFAULT, .concurrency = {1}, .n_levels = 1,
        .num_prompts = -1, .input_len = {128, 128}, .output_len = {128, 128},
        .ignore_eos = -1, .slo_ttft_ms = NAN, .slo_tpot_ms = NAN, .timeout_s = 120,
        .server_stats = 1,
    };
    int have_conc = 0, have_rate = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "e:c:r:n:h", opts, NULL)) != -1) {
        char *end = NULL;
        int bad = 0;
        switch (o) {
        case 'e': c.endpoint = optarg; break;
        case 'c': bad = s_parse_list(optarg, &c, 0), have_conc = 1; break;
        case 'r': bad = s_parse_list(optarg, &c, 1), have_rate = 1; break;
        case O_MAXC: c.max_concurrency = strtoll(optarg, &end, 10); break;
        case 'n': c.num_prompts = strtoll(optarg, &end, 10), bad = c.num_prompts <= 0; break;
        case O_IN: bad = s_parse_range(optarg, &c.input_len); break;
        case O_OUT: bad = s_parse_range(optarg, &c.output_len); break;
        case O_PROMPTS: c.prompts_file = optarg; break;
        case O_SEED: c.seed = strtoull(optarg, &end, 10); break;
        case O_TEMP: c.temperature = strtod(optarg, &end), bad = !(c.temperature >= 0); break;
        case O_IGN: c.ignore_eos = 1; break;
        case O_NOIGN: c.ignore_eos = 0; break;
        case O_VOCAB: c.vocab = strtoll(optarg, &end, 10), bad = c.vocab < 4; break;
        case O_SLOT: c.slo_ttft_ms = strtod(optarg, &end); break;
        case O_SLOP: c.slo_tpot_ms = strtod(optarg, &end); break;
        case O_WARM: c.warmup = strtoll(optarg, &end, 10), bad = c.warmup < 0; break;
        case O_TMO: c.timeout_s = strtod(optarg, &end), bad = !(c.timeout_s > 0); break;
        case O_NOSTATS: c.server_stats = 0; break;
        case O_JSON: c.json_file = optarg; break;
        case O_PROG: c.progress = 1; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 1;
        }
        if (bad || (end && (*end || end == optarg))) {
            fprintf(stderr, "troupe bench: bad value '%s' for %s\n", optarg, argv[optind - 1]);
            return 1;
        }
    }
    if (optind < argc || (have_conc && have_rate)) {
        fprintf(stderr, "troupe bench: %s\n", optind < argc ? "unexpected argument"
                                                             : "--concurrency and --rate exclude each other "
                                                               "(cap an open loop with --max-concurrency)");
        return 1;
    }
    int show = c.progress || isatty(2);

    tr_client_t *cl = tr_client_new(NULL, c.endpoint);
    if (!cl) {
        fprintf(stderr, "troupe bench: cannot connect to '%s'\n", c.endpoint);
        return 1;
    }
    struct sigaction old_sa;
    tr_cli_catch(SIGINT, &old_sa);

    int code = 1;
    s_bench_t b = {.cl = cl, .conf = &c};
    json_t *jout = NULL, *jlevels = json_array();
    s_prompt_t *prompts = NULL;
    int64_t n_prompts = 0, vocab = c.vocab, ctx_len = 0;
    json_t *jmodel = NULL;
    int64_t served_vocab = s_ask_model(cl, &ctx_len, &jmodel);
    if (c.prompts_file) {
        if (s_prompts_load(&c, &prompts, &n_prompts) != 0) goto out;
        if (c.num_prompts < 0) c.num_prompts = n_prompts;
        for (int64_t i = 0; i < n_prompts; i++)
            if (prompts[i].max_tokens == TR_CLIENT_UNSET && c.output_len.lo == c.output_len.hi)
                prompts[i].max_tokens = c.output_len.lo;
    } else {
        if (c.num_prompts < 0) c.num_prompts = 100;
        if (!vocab) vocab = served_vocab;
        if (!vocab) {
            fprintf(stderr, "troupe bench: no model_info from %s; synthetic ids below 256 "
                            "(--vocab N to choose)\n", c.endpoint);
            vocab = 256;
        }
        if (ctx_len && c.input_len.hi + c.output_len.hi > ctx_len)
            fprintf(stderr, "troupe bench: warning: input + output up to %d tokens, the model's "
                            "context is %lld: such requests will fail\n",
                    c.input_len.hi + c.output_len.hi, (long long)ctx_len);
        n_prompts = c.num_prompts;
        prompts = s_prompts_synth(&c, vocab);
        if (!prompts) {
            fprintf(stderr, "troupe bench: out of memory\n");
            goto out;
        }
    }
    b.prompts = prompts;
    b.n_prompts = n_prompts;

    if (c.warmup > 0) {
        double span;
        s_conf_t wc = c;
        wc.mode_rate = 0;
        wc.concurrency[0] = c.mode_rate ? 1 : c.concurrency[0];
        b.conf = &wc;
        s_req_t *w = s_run_level(&b, 0, c.warmup, "warmup", show, &span);
        for (int64_t i = 0; w && i < c.warmup; i++) free(w[i].itl);
        free(w);
        b.conf = &c;
    }

    s_table_head(&c);
    for (int lv = 0; lv < c.n_levels && !tr_cli_interrupted; lv++) {
        char load[32], label[48];
        if (c.mode_rate) snprintf(load, sizeof load, "%g", c.rate[lv]);
        else snprintf(load, sizeof load, "%lld", (long long)c.concurrency[lv]);
        snprintf(label, sizeof label, "%s %s", c.mode_rate ? "rate" : "concurrency", load);
        double span;
        s_req_t *reqs = s_run_level(&b, lv, c.num_prompts, label, show, &span);
        if (!reqs) {
            fprintf(stderr, "troupe bench: out of memory\n");
            goto out;
        }
        s_summary_t s = s_summarize(&b, reqs, c.num_prompts, span);
        s_table_row(load, &s);
        if (c.server_stats && !tr_cli_interrupted) s_fetch_stats(&b);
        json_t *jl = json_pack("{s:s, s:o, s:o}", "mode", c.mode_rate ? "rate" : "concurrency",
                               "load", c.mode_rate ? json_real(c.rate[lv])
                                                   : json_integer(c.concurrency[lv]),
                               "summary", s_summary_json(&s, reqs));
        json_object_set_new(jl, "server_stats", b.server_stats ? json_incref(b.server_stats)
                                                               : json_null());
        if (c.json_file) json_object_set_new(jl, "requests", s_requests_json(&b, reqs, c.num_prompts));
        json_array_append_new(jlevels, jl);
        for (int64_t i = 0; i < c.num_prompts; i++) free(reqs[i].itl);
        free(reqs);
    }
    code = tr_cli_interrupted ? 130 : 0;
    if (c.json_file) {
        jout = json_pack("{s:o, s:O, s:O}", "config", s_conf_json(&c, vocab), "model",
                         jmodel ? jmodel : json_null(), "levels", jlevels);
        if (json_dump_file(jout, c.json_file, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0) {
            fprintf(stderr, "troupe bench: cannot write %s\n", c.json_file);
            code = 1;
        }
    }
out:
    tr_cli_restore(SIGINT, &old_sa);
    json_decref(jout);
    json_decref(jlevels);
    json_decref(jmodel);
    json_decref(b.server_stats);
    free(b.id2req);
    s_prompts_free(prompts, n_prompts);
    tr_client_destroy(&cl);
    return code;
}
