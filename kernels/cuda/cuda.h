/*  kernels/cuda/cuda.h - CUDA-only knobs for benchmarks and GPU tests (C).
 *
 *  The backend itself is reached through kernels/ops.h (tr_ops_cuda); callers of the model
 *  never include this. bench/gpu and tests/gpu use it to compare variants of a kernel.  */
#ifndef TR_KERNELS_CUDA_H
#define TR_KERNELS_CUDA_H

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Forces how many thread blocks split each sequence's keys in attention (1: one block per
 * sequence and head group, the "no split-K" baseline); 0 restores the automatic choice
 * from context length and SM count. TR_EINVAL for a non-CUDA instance. */
int tr_ops_cuda_set_attn_splits(tr_ops_t *ops, int32_t n);

/* The ceilings bench/gpu reports against, measured on the instance's device: a device copy
 * of `bytes` (*gbps counts bytes read plus written) and a bf16 GEMM (M, N, K) with f32
 * accumulation through cuBLASLt (*tflops); medians of `iters` event-timed runs. */
int tr_cuda_bench_copy(tr_ops_t *ops, size_t bytes, int iters, double *gbps);
int tr_cuda_bench_gemm(tr_ops_t *ops, int32_t M, int32_t N, int32_t K, int iters,
                       double *tflops);

#ifdef __cplusplus
}
#endif

#endif
