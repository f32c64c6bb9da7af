/*  kernels/ref/attention.c - reference paged causal attention with GQA, and the KV store.
 *
 *  For each new token t of sequence b at position p and each query head h (kv head
 *  g = h / (H / Hk)): scores s_j = scale * q . K[j] over cached positions j in
 *  [max(0, p - window + 1), p], softmax, out = sum_j softmax_j V[j]. K[j] lives at slot
 *  block_table[b][j / block_size] * block_size + j % block_size of the layer's pool.  */
#include <math.h>
#include <stdlib.h>

#include "kernels/ref/ref.h"

int tr_ref_kv_store(float *k_cache, float *v_cache, const float *k, const float *v,
                    const int32_t *slots, int32_t T, int32_t Hk, int32_t D) {
    size_t row = (size_t)Hk * D;
    for (int32_t t = 0; t < T; t++) {
        memcpy(k_cache + (size_t)slots[t] * row, k + (size_t)t * row, row * sizeof(float));
        memcpy(v_cache + (size_t)slots[t] * row, v + (size_t)t * row, row * sizeof(float));
    }
    return TR_OK;
}

int tr_ref_attention(const tr_attn_params_t *p) {
    const int32_t H = p->n_heads, Hk = p->n_kv_heads, D = p->head_dim, bs = p->block_size;
    int32_t max_ctx = 1;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t n = p->seq_pos[b] + p->seq_start[b + 1] - p->seq_start[b];
        max_ctx = n > max_ctx ? n : max_ctx;
    }
    float *s = malloc((size_t)max_ctx * sizeof(float));
    if (!s) return TR_ENOMEM;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        const int32_t *table = p->block_table + (size_t)b * p->max_blocks;
        for (int32_t t = p->seq_start[b]; t < p->seq_start[b + 1]; t++) {
            int32_t pos = p->seq_pos[b] + (t - p->seq_start[b]);
            int32_t lo = p->sliding_window > 0 ? pos - p->sliding_window + 1 : 0;
            lo = lo < 0 ? 0 : lo;
            for (int32_t h = 0; h < H; h++) {
                const float *q = p->q + ((size_t)t * H + h) * D;
                int32_t g = h / (H / Hk);
                float mx = -INFINITY;
                for (int32_t j = lo; j <= pos; j++) {
                    size_t slot = (size_t)table[j / bs] * bs + j % bs;
                    const float *kr = p->k_cache + (slot * Hk + g) * D;
                    float acc = 0;
                    for (int32_t d = 0; d < D; d++) acc += q[d] * kr[d];
                    s[j] = acc * p->scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                double sum = 0;
                for (int32_t j = lo; j <= pos; j++) {
                    s[j] = expf(s[j] - mx);
                    sum += s[j];
                }
                float *o = p->out + ((size_t)t * H + h) * D;
                for (int32_t d = 0; d < D; d++) o[d] = 0;
                for (int32_t j = lo; j <= pos; j++) {
                    size_t slot = (size_t)table[j / bs] * bs + j % bs;
                    const float *vr = p->v_cache + (slot * Hk + g) * D;
                    float w = (float)(s[j] / sum);
                    for (int32_t d = 0; d < D; d++) o[d] += w * vr[d];
                }
            }
        }
    }
    free(s);
    return TR_OK;
}
