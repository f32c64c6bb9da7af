/*  kernels/cpu/moe.c - CPU MoE router. Oracle: kernels/ref/moe.c (same f32 softmax, same
 *  tie rule). Tokens are independent; E is small, so a token is one pass to find the top k
 *  by insertion into a sorted list of k.                                              */
#include <math.h>

#include "kernels/cpu/cpu_impl.h"

#define TR_MOE_MAX_K 64

typedef struct {
    int32_t *ids;
    float *weights;
    const float *logits;
    int32_t T, E, k, renormalize;
} s_route_t;

static void s_route_task(void *ctx, int32_t t, int32_t thread) {
    const s_route_t *a = ctx;
    const float *l = a->logits + (size_t)t * a->E;
    float mx = l[0];
    for (int32_t e = 1; e < a->E; e++) mx = l[e] > mx ? l[e] : mx;
    double sum = 0;
    for (int32_t e = 0; e < a->E; e++) sum += expf(l[e] - mx);
    float inv = (float)(1.0 / sum);
    int32_t top[TR_MOE_MAX_K];
    float tp[TR_MOE_MAX_K];
    int32_t n = 0;
    for (int32_t e = 0; e < a->E; e++) {
        float pe = expf(l[e] - mx) * inv;
        if (n == a->k && pe <= tp[n - 1]) continue;   /* ties keep the lower id */
        int32_t i = n < a->k ? n++ : n - 1;
        while (i > 0 && tp[i - 1] < pe) {
            tp[i] = tp[i - 1];
            top[i] = top[i - 1];
            i--;
        }
        tp[i] = pe;
        top[i] = e;
    }
    float s = 0;
    for (int32_t i = 0; i < a->k; i++) s += tp[i];
    for (int32_t i = 0; i < a->k; i++) {
        a->ids[(size_t)t * a->k + i] = top[i];
        a->weights[(size_t)t * a->k + i] = a->renormalize ? tp[i] / s : tp[i];
    }
}

int tr_cpu_moe_route(tr_ops_t *ops, int32_t *ids, float *weights, const float *logits,
                     int32_t T, int32_t E, int32_t k, int32_t renormalize) {
    if (k > TR_MOE_MAX_K) return TR_EINVAL;
    s_route_t a = {ids, weights, logits, T, E, k, renormalize};
    tr_pool_fn fn = s_route_task;
    if ((int64_t)T * E < 65536)
        for (int32_t t = 0; t < T; t++) fn(&a, t, 0);
    else
        tr_pool_run(TR_CPU(ops)->pool, T, fn, &a);
    return TR_OK;
}
