/*  kernels/cuda_stubs.c - weak stand-ins for kernels/cuda/cuda.h when troupe is built without
 *  CUDA (scons cuda=0, or no nvcc). kernels/cuda/ replaces them with strong definitions.
 *  Without CUDA tr_ops_cuda() is NULL (kernels/ops.c), so these only ever see callers that
 *  ignored that; they answer TR_EINVAL.                                               */
#include "kernels/cuda/cuda.h"

__attribute__((weak)) int tr_ops_cuda_set_attn_splits(tr_ops_t *ops, int32_t n) {
    (void)ops, (void)n;
    return TR_EINVAL;
}

__attribute__((weak)) int tr_cuda_bench_copy(tr_ops_t *ops, size_t bytes, int iters,
                                             double *gbps) {
    (void)ops, (void)bytes, (void)iters, (void)gbps;
    return TR_EINVAL;
}

__attribute__((weak)) int tr_cuda_bench_gemm(tr_ops_t *ops, int32_t M, int32_t N, int32_t K,
                                             int iters, double *tflops) {
    (void)ops, (void)M, (void)N, (void)K, (void)iters, (void)tflops;
    return TR_EINVAL;
}
