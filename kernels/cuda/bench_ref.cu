/*  kernels/cuda/bench_ref.cu - the two ceilings that bench/gpu compares against, measured on
 *  the device in the same run (METHOD.md): a large device-to-device copy (bytes read plus
 *  bytes written per second) and a large bf16 cuBLASLt GEMM (f32 accumulation, bf16 out
 *  would be faster; f32 out is what tr_ops_matmul writes). Timed with events on the
 *  instance's stream after a warm-up; the median of `iters` runs. Inputs are random, never
 *  zeros. Declared in kernels/cuda/cuda.h.                                             */
#include "kernels/cuda/cuda_impl.h"

#include <stdlib.h>

extern "C" {
#include "kernels/cuda/cuda.h"
}

static int s_cmp(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

__global__ void s_fill(uint16_t *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        p[i] = tr_d_f32_to_bf16(((float)(h & 0xffff) / 65536.0f - 0.5f) * 0.1f);
    }
}

/* Times fn over iters runs (after 3 warm-ups); median milliseconds in *ms. */
template <typename F>
static int s_time(cudaStream_t st, int iters, F fn, float *ms) {
    cudaEvent_t a, b;
    TR_CUDA_TRY(cudaEventCreate(&a));
    TR_CUDA_TRY(cudaEventCreate(&b));
    float *t = (float *)calloc((size_t)iters, sizeof(float));
    int rc = TR_OK;
    for (int i = 0; i < 3 && !rc; i++) rc = fn();
    for (int i = 0; i < iters && !rc; i++) {
        cudaEventRecord(a, st);
        rc = fn();
        cudaEventRecord(b, st);
        if (cudaEventSynchronize(b) != cudaSuccess) rc = TR_ECUDA;
        cudaEventElapsedTime(&t[i], a, b);
    }
    qsort(t, (size_t)iters, sizeof(float), s_cmp);
    *ms = t[iters / 2];
    free(t);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return rc;
}

extern "C" int tr_cuda_bench_copy(tr_ops_t *ops, size_t bytes, int iters, double *gbps) {
    if (!ops || !ops->vt->device_memory || iters < 1) return TR_EINVAL;
    tr_cuda_t *self = TR_CUDA(ops);
    void *src = NULL, *dst = NULL;
    TR_CUDA_TRY(cudaMalloc(&src, bytes));
    if (cudaMalloc(&dst, bytes) != cudaSuccess) {
        cudaFree(src);
        return TR_ENOMEM;
    }
    s_fill<<<1024, 256, 0, self->stream>>>((uint16_t *)src, bytes / 2, 7);
    float ms = 0;
    int rc = s_time(self->stream, iters, [&]() {
        return cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, self->stream) ==
                       cudaSuccess ? TR_OK : TR_ECUDA;
    }, &ms);
    *gbps = 2.0 * (double)bytes / (ms * 1e-3) / 1e9;   /* read + write */
    cudaFree(src);
    cudaFree(dst);
    return rc;
}

extern "C" int tr_cuda_bench_gemm(tr_ops_t *ops, int32_t M, int32_t N, int32_t K, int iters,
                                  double *tflops) {
    if (!ops || !ops->vt->device_memory || iters < 1) return TR_EINVAL;
    tr_cuda_t *self = TR_CUDA(ops);
    uint16_t *a = NULL, *b = NULL;
    float *c = NULL;
    TR_CUDA_TRY(cudaMalloc(&a, (size_t)M * K * 2));
    TR_CUDA_TRY(cudaMalloc(&b, (size_t)N * K * 2));
    TR_CUDA_TRY(cudaMalloc(&c, (size_t)M * N * 4));
    s_fill<<<1024, 256, 0, self->stream>>>(a, (size_t)M * K, 1);
    s_fill<<<1024, 256, 0, self->stream>>>(b, (size_t)N * K, 2);
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0, rc = TR_ECUDA;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const float alpha = 1, beta = 0;
    float ms = 0;
    if (cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) ||
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) ||
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)) ||
        cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, K, N, K) ||
        cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, K, M, K) ||
        cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, N, M, N) ||
        cublasLtMatmulPreferenceCreate(&pref) ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &self->lt_ws_bytes, sizeof(self->lt_ws_bytes)) ||
        cublasLtMatmulAlgoGetHeuristic(self->lt, op, la, lb, lc, lc, pref, 1, &heur, &found) ||
        !found)
        goto out;
    rc = s_time(self->stream, iters, [&]() {
        return cublasLtMatmul(self->lt, op, &alpha, b, la, a, lb, &beta, c, lc, c, lc, &heur.algo,
                              self->lt_ws, self->lt_ws_bytes, self->stream) ==
                       CUBLAS_STATUS_SUCCESS ? TR_OK : TR_ECUDA;
    }, &ms);
    *tflops = 2.0 * M * N * (double)K / (ms * 1e-3) / 1e12;
out:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    cudaFree(a), cudaFree(b), cudaFree(c);
    return rc;
}
