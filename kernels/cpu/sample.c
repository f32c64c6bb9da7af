/*  kernels/cpu/sample.c - CPU sampler. Oracle: kernels/ref/sample.c, which it matches token
 *  for token: the same double-precision probabilities, the same (p desc, id asc) order, the
 *  same cuts and draw. The difference is that only a prefix of the sorted order is sorted:
 *  a threshold t is lowered until S = {p >= t} provably holds every survivor (|S| >= top_k,
 *  or mass(S) >= top_p, or t <= min_p * p_max); S is a prefix of the full order, so the
 *  cuts give what the full sort gives. Rows of the batch run in parallel.             */
#include <math.h>
#include <stdlib.h>

#include "kernels/cpu/cpu_impl.h"

typedef struct {
    double p;
    int32_t id;
} s_cand_t;

typedef struct {
    tr_cpu_t *cpu;
    int32_t *tokens;
    float *logprobs;
    const float *logits;
    int32_t V;
    const tr_sample_params_t *params;
} s_sample_t;

static int s_cmp_cand(const void *a, const void *b) {
    const s_cand_t *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int32_t s_draw(const tr_sample_params_t *sp, double *pr, s_cand_t *c, int32_t V) {
    double pmax = 0;
    for (int32_t i = 0; i < V; i++) pmax = pr[i] > pmax ? pr[i] : pmax;
    int top_p = sp->top_p > 0 && sp->top_p < 1;
    int32_t n = V;
    if (sp->top_k > 0 || top_p || sp->min_p > 0) {
        for (double t = pmax * 0.5;; t *= 1.0 / 16) {
            if (t < 1e-300) {
                t = 0;   /* take everything */
            }
            double mass = 0;
            n = 0;
            for (int32_t i = 0; i < V; i++)
                if (pr[i] >= t) {
                    c[n++] = (s_cand_t){pr[i], i};
                    mass += pr[i];
                }
            if (t == 0 || (sp->top_k > 0 && n >= sp->top_k) || (top_p && mass >= sp->top_p) ||
                (sp->min_p > 0 && t <= sp->min_p * pmax))
                break;
        }
    } else {
        for (int32_t i = 0; i < V; i++) c[i] = (s_cand_t){pr[i], i};
    }
    qsort(c, (size_t)n, sizeof(*c), s_cmp_cand);
    int32_t keep = n;
    if (sp->top_k > 0 && sp->top_k < keep) keep = sp->top_k;
    if (top_p) {
        double cum = 0;
        for (int32_t i = 0; i < keep; i++) {
            cum += c[i].p;
            if (cum >= sp->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (sp->min_p > 0) {
        double thr = sp->min_p * c[0].p;
        while (keep > 1 && c[keep - 1].p < thr) keep--;
    }
    double mass = 0;
    for (int32_t i = 0; i < keep; i++) mass += c[i].p;
    double u = tr_sample_uniform(sp->seed, sp->counter) * mass, acc = 0;
    for (int32_t i = 0; i < keep; i++) {
        acc += c[i].p;
        if (u < acc) return c[i].id;
    }
    return c[keep - 1].id;
}

static void s_sample_task(void *ctx, int32_t b, int32_t thread) {
    const s_sample_t *a = ctx;
    const tr_sample_params_t *sp = &a->params[b];
    const int32_t V = a->V;
    const float *row = a->logits + (size_t)b * V;
    double *l = a->cpu->scratch[thread];
    s_cand_t *c = (s_cand_t *)(l + V);
    uint8_t *seen = (uint8_t *)(c + V);
    float r = sp->repetition_penalty;
    int penalty = r > 0 && r != 1.0f && sp->n_prev > 0;
    int32_t tok = 0;
    if (sp->temperature <= 0 && !penalty) {
        /* plain greedy: the argmax of the floats is the argmax of their double copies */
        float best = row[0];
        for (int32_t i = 1; i < V; i++)
            if (row[i] > best) best = row[i], tok = i;
    } else {
        for (int32_t i = 0; i < V; i++) l[i] = row[i];
        if (penalty) {
            memset(seen, 0, (size_t)V);
            for (int32_t i = 0; i < sp->n_prev; i++) {
                int32_t id = sp->prev_tokens[i];
                if (id < 0 || id >= V || seen[id]) continue;
                seen[id] = 1;
                l[id] = l[id] > 0 ? l[id] / r : l[id] * r;
            }
        }
        if (sp->temperature <= 0) {
            for (int32_t i = 1; i < V; i++)
                if (l[i] > l[tok]) tok = i;
        } else {
            double mx = -INFINITY, z = 0;
            for (int32_t i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            for (int32_t i = 0; i < V; i++) z += exp((l[i] - mx) / sp->temperature);
            for (int32_t i = 0; i < V; i++) l[i] = exp((l[i] - mx) / sp->temperature) / z;
            tok = s_draw(sp, l, c, V);
        }
    }
    a->tokens[b] = tok;
    if (a->logprobs) {
        float mx = row[0];
        for (int32_t i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
        double z = 0;
        for (int32_t i = 0; i < V; i++) z += exp((double)row[i] - mx);
        a->logprobs[b] = (float)((double)row[tok] - mx - log(z));
    }
}

int tr_cpu_sample(tr_ops_t *ops, int32_t *tokens, float *logprobs, const float *logits,
                  int32_t B, int32_t V, const tr_sample_params_t *params) {
    tr_cpu_t *cpu = TR_CPU(ops);
    if (tr_cpu_reserve(cpu, (size_t)V * (sizeof(double) + sizeof(s_cand_t) + 1)))
        return TR_ENOMEM;
    s_sample_t a = {cpu, tokens, logprobs, logits, V, params};
    tr_pool_run(cpu->pool, B, s_sample_task, &a);
    return TR_OK;
}
