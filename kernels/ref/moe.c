/*  kernels/ref/moe.c - reference MoE router: softmax over E experts (f32, as HF's
 *  F.softmax(..., dtype=float)), top-k by repeated argmax (ties: lower id), optional
 *  renormalisation of the k weights.                                                 */
#include <math.h>
#include <stdlib.h>

#include "kernels/ref/ref.h"

int tr_ref_moe_route(int32_t *ids, float *weights, const float *logits, int32_t T, int32_t E,
                     int32_t k, int32_t renormalize) {
    float *pr = malloc((size_t)E * sizeof(float));
    if (!pr) return TR_ENOMEM;
    for (int32_t t = 0; t < T; t++) {
        memcpy(pr, logits + (size_t)t * E, (size_t)E * sizeof(float));
        tr_ref_softmax(pr, 1, E);
        float sum = 0;
        for (int32_t i = 0; i < k; i++) {
            int32_t best = -1;
            for (int32_t e = 0; e < E; e++)
                if (pr[e] >= 0 && (best < 0 || pr[e] > pr[best])) best = e;
            ids[(size_t)t * k + i] = best;
            weights[(size_t)t * k + i] = pr[best];
            sum += pr[best];
            pr[best] = -1;   /* taken */
        }
        if (renormalize)
            for (int32_t i = 0; i < k; i++) weights[(size_t)t * k + i] /= sum;
    }
    free(pr);
    return TR_OK;
}
