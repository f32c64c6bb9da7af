/*  kernels/cuda/cuda_impl.h - the CUDA backend instance and its launchers (private).
 *
 *  tr_cuda_t owns one device's stream, the cuBLASLt handle and its workspace, and scratch
 *  buffers that grow on demand. Every launcher enqueues on self->stream and returns a
 *  tr_status_t without synchronizing; only to_host (and the attention fallback that reads
 *  seq_start back when the caller gave no host copy) waits for the stream. Scratch is reused
 *  in stream order, so a later op may overwrite what an earlier one left there. One thread
 *  drives an instance at a time. Included by the .cu files only (C++).
 *
 *  Dimension letters: T = tokens, B = sequences, H = query heads, Hk = kv heads, G = H / Hk,
 *  D = head_dim, M/N/K = matmul rows / output features / input features, V = vocab.      */
#ifndef TR_KERNELS_CUDA_IMPL_H
#define TR_KERNELS_CUDA_IMPL_H

#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <stdint.h>

extern "C" {
#include "kernels/ops_impl.h"
#include "runtime/log.h"
}

/* Logs file:line and the CUDA error string, returns TR_ECUDA (STYLE 2.3: no exit). */
#define TR_CUDA_TRY(x)                                                                     \
    do {                                                                                   \
        cudaError_t e_ = (x);                                                              \
        if (e_ != cudaSuccess) {                                                           \
            TR_ERROR("%s: %s", #x, cudaGetErrorString(e_));                                \
            return TR_ECUDA;                                                               \
        }                                                                                  \
    } while (0)
#define TR_CUBLAS_TRY(x)                                                                   \
    do {                                                                                   \
        cublasStatus_t s_ = (x);                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                 \
            TR_ERROR("%s: cublas status %d", #x, (int)s_);                                 \
            return TR_ECUDA;                                                               \
        }                                                                                  \
    } while (0)
/* After every launch. */
#define TR_CUDA_LAUNCHED() TR_CUDA_TRY(cudaGetLastError())

/* Scratch slots; each grows independently. */
typedef enum {
    TR_CUDA_SCRATCH_MM_X = 0,      /* matmul: activations converted to the weight dtype */
    TR_CUDA_SCRATCH_ATTN_WORK,     /* attention: the work list (b, first row) */
    TR_CUDA_SCRATCH_ATTN_PART,     /* attention: split-K partial outputs and (m, l) */
    TR_CUDA_SCRATCH_SAMPLE_SORT,   /* sampling: (p, id) candidates per row */
    TR_CUDA_SCRATCH_SAMPLE_ARGS,   /* sampling: per-row parameters and previous tokens */
    TR_CUDA_SCRATCH_COUNT
} tr_cuda_scratch_t;

typedef struct {
    tr_ops_t base;
    tr_ops_vtable_t vt;            /* copy of the table with this device's name */
    char name[32];
    int device;
    int n_sm;                      /* multiprocessors: sizes the split-K of decode attention */
    size_t smem_optin;             /* most dynamic shared memory one block may ask for */
    cudaStream_t stream;           /* owned: every op of this instance runs on it */
    cublasLtHandle_t lt;           /* owned */
    void *lt_ws;                   /* owned: cuBLASLt workspace */
    size_t lt_ws_bytes;
    void *scratch[TR_CUDA_SCRATCH_COUNT];         /* owned */
    size_t scratch_bytes[TR_CUDA_SCRATCH_COUNT];
    int32_t attn_splits;           /* 0: choose from context and SM count; else forced (bench) */
    int capturing;                 /* between graph_begin and graph_end: scratch may not grow */
    uint64_t scratch_gen;          /* bumped whenever scratch a forward reads is reallocated:
                                      graphs recorded before then point at freed memory */
} tr_cuda_t;

/* A recorded graph (kernels/ops.h tr_ops_graph_t) and the scratch generation it saw. */
struct tr_ops_graph {
    cudaGraphExec_t exec;          /* owned */
    uint64_t scratch_gen;
};

#define TR_CUDA(ops) ((tr_cuda_t *)(ops))

/* Device scratch of at least `bytes` in slot `which` (old contents are lost); NULL on failure.
 * Growing frees the old buffer (cudaFree waits for the device, so in-flight users finish) and
 * makes graphs recorded earlier stale; while a graph is being recorded it fails instead. */
void *tr_cuda_scratch(tr_cuda_t *self, tr_cuda_scratch_t which, size_t bytes);

int tr_cuda_matmul(tr_ops_t *ops, const tr_matmul_params_t *p);
int tr_cuda_rmsnorm(tr_ops_t *ops, float *y, const float *x, const float *w, int32_t T,
                    int32_t D, float eps);
int tr_cuda_swiglu(tr_ops_t *ops, float *y, const float *gate, const float *up, int64_t n);
int tr_cuda_softmax(tr_ops_t *ops, float *x, int32_t rows, int32_t n);
int tr_cuda_sigmoid(tr_ops_t *ops, float *x, int64_t n);
int tr_cuda_add_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                     const float *scale, int32_t rows, int32_t D);
int tr_cuda_gather_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                        int32_t rows, int32_t D);
int tr_cuda_embed(tr_ops_t *ops, float *y, const void *table, tr_dtype_t dtype,
                  const int32_t *ids, int32_t T, int32_t D, int32_t V);
int tr_cuda_rope(tr_ops_t *ops, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                 int32_t Hk, const int32_t *pos, int32_t T, int32_t D);
int tr_cuda_kv_store(tr_ops_t *ops, float *k_cache, float *v_cache, const float *k,
                     const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D);
int tr_cuda_attention(tr_ops_t *ops, const tr_attn_params_t *p);
int tr_cuda_moe_route(tr_ops_t *ops, int32_t *ids, float *weights, const float *logits,
                      int32_t T, int32_t E, int32_t k, int32_t renormalize);
int tr_cuda_sample(tr_ops_t *ops, int32_t *tokens, float *logprobs, const float *logits,
                   int32_t B, int32_t V, const tr_sample_params_t *params);
int tr_cuda_quantize(tr_ops_t *ops, void *dst, tr_dtype_t dtype, const float *src, int64_t n);
int tr_cuda_dequantize(tr_ops_t *ops, float *dst, const void *src, tr_dtype_t dtype,
                       int64_t n);
/* One-time kernel attributes (shared-memory limits); called by tr_ops_cuda. */
int tr_cuda_attention_init(tr_cuda_t *self);

/* ---- device helpers shared by the kernels ---- */

/* Grid of 256-thread blocks covering n elements, capped (the kernels stride). */
static inline unsigned tr_cuda_grid(int64_t n) {
    int64_t g = (n + 255) / 256;
    return (unsigned)(g < 1 ? 1 : g > 65535 * 8 ? 65535 * 8 : g);
}

__device__ __forceinline__ float tr_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float tr_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Block-wide sum / max for blockDim.x a multiple of 32 (<= 1024); every thread gets it.
 * `red` is 32 floats of shared memory; the function syncs before returning. */
__device__ __forceinline__ float tr_block_sum(float v, float *red) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = tr_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    v = tr_warp_sum(v);
    return v;
}

__device__ __forceinline__ float tr_block_max(float v, float *red) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = tr_warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    v = tr_warp_max(v);
    return v;
}

/* The exact conversions of kernels/dtype.h on the device (round to nearest even). */
__device__ __forceinline__ float tr_d_bf16_to_f32(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}
__device__ __forceinline__ uint16_t tr_d_f32_to_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
__device__ __forceinline__ float tr_d_f16_to_f32(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
__device__ __forceinline__ uint16_t tr_d_f32_to_f16(float f) {
    return __half_as_ushort(__float2half_rn(f));
}

#endif
