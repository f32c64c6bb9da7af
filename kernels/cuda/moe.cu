/*  kernels/cuda/moe.cu - MoE router: softmax over E experts, top k, optional renormalise.
 *  Oracle: kernels/ref/moe.c, followed step for step: one 32-thread block per token; the
 *  lanes compute expf(l - max) into shared memory, lane 0 sums them in double (id order, as
 *  tr_ref_softmax), scales by (float)(1 / sum), then takes the top k by repeated argmax
 *  (ties: lower id) and renormalises. E is small (8..256), so the serial part is short;
 *  tokens run in parallel. The expert computation itself is the model's per-expert
 *  gather / matmul / scatter-add (models/model.c s_moe) on the cuBLASLt matmul.        */
#include "kernels/cuda/cuda_impl.h"

__global__ void s_route(int32_t *ids, float *weights, const float *logits, int32_t E, int32_t k,
                        int32_t renormalize) {
    extern __shared__ float pr[];
    const int32_t t = blockIdx.x;
    const float *lr = logits + (size_t)t * E;
    float mx = -INFINITY;
    for (int32_t e = threadIdx.x; e < E; e += 32) mx = fmaxf(mx, lr[e]);
    mx = tr_warp_max(mx);
    for (int32_t e = threadIdx.x; e < E; e += 32) pr[e] = expf(lr[e] - mx);
    __syncwarp();
    if (threadIdx.x != 0) return;
    double sum = 0;
    for (int32_t e = 0; e < E; e++) sum += pr[e];
    float inv = (float)(1.0 / sum), wsum = 0;
    for (int32_t e = 0; e < E; e++) pr[e] *= inv;
    for (int32_t i = 0; i < k; i++) {
        int32_t best = -1;
        for (int32_t e = 0; e < E; e++)
            if (pr[e] >= 0 && (best < 0 || pr[e] > pr[best])) best = e;
        ids[(size_t)t * k + i] = best;
        weights[(size_t)t * k + i] = pr[best];
        wsum += pr[best];
        pr[best] = -1;   /* taken */
    }
    if (renormalize)
        for (int32_t i = 0; i < k; i++) weights[(size_t)t * k + i] /= wsum;
}

int tr_cuda_moe_route(tr_ops_t *ops, int32_t *ids, float *weights, const float *logits,
                      int32_t T, int32_t E, int32_t k, int32_t renormalize) {
    if ((size_t)E * sizeof(float) > 48 * 1024) {
        TR_ERROR("cuda moe_route: %d experts, at most 12288 supported", E);
        return TR_EINVAL;
    }
    s_route<<<T, 32, (size_t)E * sizeof(float), TR_CUDA(ops)->stream>>>(ids, weights, logits, E,
                                                                        k, renormalize);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}
