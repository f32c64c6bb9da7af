/*  kernels/cuda/rows.cu - row moves: embedding lookup, gather, scaled scatter-add, KV store.
 *  Oracles: kernels/ref/rows.c (embed, gather_rows, add_rows) and kernels/ref/attention.c
 *  (kv_store). One thread per value, grid-strided; rows of idx are distinct (the contract),
 *  so add_rows needs no atomics. Ids are device memory the wrappers cannot check: an
 *  embedding id outside [0, V) writes a row of zeros instead of reading out of bounds.   */
#include "kernels/cuda/cuda_impl.h"

/* y[t] = table[ids[t]] widened to f32; table (V, D) in dtype */
__global__ void s_embed(float *y, const void *table, int dtype, const int32_t *ids, int32_t T,
                        int32_t D, int32_t V) {
    int64_t total = (int64_t)T * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int32_t t = (int32_t)(i / D), d = (int32_t)(i % D), id = ids[t];
        float v = 0.0f;
        if (id >= 0 && id < V) {
            size_t at = (size_t)id * D + d;
            switch (dtype) {
            case TR_DTYPE_F32: v = ((const float *)table)[at]; break;
            case TR_DTYPE_BF16: v = tr_d_bf16_to_f32(((const uint16_t *)table)[at]); break;
            case TR_DTYPE_F16: v = tr_d_f16_to_f32(((const uint16_t *)table)[at]); break;
            case TR_DTYPE_Q8_0: {
                const uint8_t *blk = (const uint8_t *)table + (at / 32) * 34;
                float dd = tr_d_f16_to_f32((uint16_t)(blk[0] | (blk[1] << 8)));
                v = dd * (float)(int8_t)blk[2 + at % 32];
                break;
            }
            }
        }
        y[i] = v;
    }
}

__global__ void s_gather(float *y, const float *x, const int32_t *idx, int32_t rows, int32_t D) {
    int64_t total = (int64_t)rows * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = x[(size_t)idx[i / D] * D + i % D];
}

__global__ void s_add_rows(float *y, const float *x, const int32_t *idx, const float *scale,
                           int32_t rows, int32_t D) {
    int64_t total = (int64_t)rows * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        int32_t r = (int32_t)(i / D);
        float s = scale ? scale[r] : 1.0f;
        y[(size_t)(idx ? idx[r] : r) * D + i % D] += s * x[i];
    }
}

/* k, v (T, Hk*D) -> cache rows slots[t] */
__global__ void s_kv_store(float *kc, float *vc, const float *k, const float *v,
                           const int32_t *slots, int32_t T, int32_t row) {
    int64_t total = (int64_t)T * row;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        size_t at = (size_t)slots[i / row] * row + i % row;
        kc[at] = k[i];
        vc[at] = v[i];
    }
}

int tr_cuda_embed(tr_ops_t *ops, float *y, const void *table, tr_dtype_t dtype,
                  const int32_t *ids, int32_t T, int32_t D, int32_t V) {
    s_embed<<<tr_cuda_grid((int64_t)T * D), 256, 0, TR_CUDA(ops)->stream>>>(y, table, dtype, ids,
                                                                           T, D, V);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}

int tr_cuda_gather_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                        int32_t rows, int32_t D) {
    s_gather<<<tr_cuda_grid((int64_t)rows * D), 256, 0, TR_CUDA(ops)->stream>>>(y, x, idx, rows,
                                                                               D);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}

int tr_cuda_add_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                     const float *scale, int32_t rows, int32_t D) {
    s_add_rows<<<tr_cuda_grid((int64_t)rows * D), 256, 0, TR_CUDA(ops)->stream>>>(y, x, idx, scale,
                                                                                 rows, D);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}

int tr_cuda_kv_store(tr_ops_t *ops, float *k_cache, float *v_cache, const float *k,
                     const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D) {
    int32_t row = Hk * D;
    s_kv_store<<<tr_cuda_grid((int64_t)T * row), 256, 0, TR_CUDA(ops)->stream>>>(
        k_cache, v_cache, k, v, slots, T, row);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}
