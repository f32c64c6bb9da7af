/*  kernels/ref/sample.c - reference sampler: the whole vocabulary sorted every time.
 *
 *  Per row: repetition penalty on the distinct previous tokens (CTRL / HF: a positive logit
 *  is divided by r, a negative one multiplied), then greedy argmax when temperature <= 0;
 *  else logits / temperature, softmax in double (sum in id order), candidates sorted by
 *  (probability desc, id asc), cut by top-k, then top-p (smallest prefix whose mass reaches
 *  top_p), then min-p (p >= min_p * p_max), and a draw u * kept_mass walked down the list.
 *  The uniform draw is tr_sample_uniform(seed, counter).                              */
#include <math.h>
#include <stdlib.h>

#include "kernels/ref/ref.h"

typedef struct {
    double p;
    int32_t id;
} s_cand_t;

static int s_cmp_cand(const void *a, const void *b) {
    const s_cand_t *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void s_penalize(double *l, int32_t V, const tr_sample_params_t *sp, uint8_t *seen) {
    float r = sp->repetition_penalty;
    if (r <= 0 || r == 1.0f || sp->n_prev == 0) return;
    memset(seen, 0, (size_t)V);
    for (int32_t i = 0; i < sp->n_prev; i++) {
        int32_t id = sp->prev_tokens[i];
        if (id < 0 || id >= V || seen[id]) continue;
        seen[id] = 1;
        l[id] = l[id] > 0 ? l[id] / r : l[id] * r;
    }
}

static float s_logprob(const float *logits, int32_t V, int32_t tok) {
    float mx = logits[0];
    for (int32_t i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double z = 0;
    for (int32_t i = 0; i < V; i++) z += exp((double)logits[i] - mx);
    return (float)((double)logits[tok] - mx - log(z));
}

int tr_ref_sample(int32_t *tokens, float *logprobs, const float *logits, int32_t B,
                  int32_t V, const tr_sample_params_t *params) {
    double *l = malloc((size_t)V * sizeof(double));
    s_cand_t *c = malloc((size_t)V * sizeof(s_cand_t));
    uint8_t *seen = malloc((size_t)V);
    if (!l || !c || !seen) {
        free(l), free(c), free(seen);
        return TR_ENOMEM;
    }
    for (int32_t b = 0; b < B; b++) {
        const tr_sample_params_t *sp = &params[b];
        const float *row = logits + (size_t)b * V;
        for (int32_t i = 0; i < V; i++) l[i] = row[i];
        s_penalize(l, V, sp, seen);
        int32_t tok = 0;
        if (sp->temperature <= 0) {
            for (int32_t i = 1; i < V; i++)
                if (l[i] > l[tok]) tok = i;
        } else {
            double mx = -INFINITY, z = 0;
            for (int32_t i = 0; i < V; i++) mx = l[i] > mx ? l[i] : mx;
            for (int32_t i = 0; i < V; i++) z += exp((l[i] - mx) / sp->temperature);
            for (int32_t i = 0; i < V; i++)
                c[i] = (s_cand_t){exp((l[i] - mx) / sp->temperature) / z, i};
            qsort(c, (size_t)V, sizeof(*c), s_cmp_cand);
            int32_t keep = V;
            if (sp->top_k > 0 && sp->top_k < keep) keep = sp->top_k;
            if (sp->top_p > 0 && sp->top_p < 1) {
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
            tok = c[keep - 1].id;
            for (int32_t i = 0; i < keep; i++) {
                acc += c[i].p;
                if (u < acc) {
                    tok = c[i].id;
                    break;
                }
            }
        }
        tokens[b] = tok;
        if (logprobs) logprobs[b] = s_logprob(row, V, tok);
    }
    free(l), free(c), free(seen);
    return TR_OK;
}
