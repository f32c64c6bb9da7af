/*  kernels/cuda/matmul.cu - y (M, N) = x (M, K) . W (N, K)^T [+ bias] [+ y].
 *  Oracle: kernels/ref/matmul.c (dequantize a weight row, f32 dot product).
 *
 *  f32, bf16 and f16 weights go through cuBLASLt with f32 accumulation (CUBLAS_COMPUTE_32F,
 *  no TF32): x is first rounded to the weight dtype (bf16 or f16; f32 stays f32) in scratch,
 *  because cuBLASLt wants both operands in one type. The row-major product is the
 *  column-major y^T (N, M) = W (K, N)^T . x^T (K, M): A = W transposed, B = x, ldc = N.
 *  accumulate is beta = 1 (the fused residual add); a bias is broadcast into y first
 *  (y = bias, or y += bias when accumulating) and then beta = 1 as well.
 *  q8_0 weights run s_matmul_q8_0: one warp per output, dequantizing on the fly (plain, not
 *  tuned; the CPU's q8_0 path is the fast one for now).                                */
#include "kernels/cuda/cuda_impl.h"

/* x (n f32) -> dst in the weight's 16-bit dtype */
__global__ void s_round_x(uint16_t *dst, const float *x, int64_t n, int to_bf16) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = to_bf16 ? tr_d_f32_to_bf16(x[i]) : tr_d_f32_to_f16(x[i]);
}

/* y[m, n] = (accumulate ? y[m, n] : 0) + bias[n] */
__global__ void s_bias(float *y, const float *bias, int32_t M, int32_t N, int accumulate) {
    int64_t total = (int64_t)M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = (accumulate ? y[i] : 0.0f) + bias[i % N];
}

/* One warp per (m, n): dot of x row m with dequantized weight row n (ref order: per block
 * d * q, f32 sums; the warp sums lanes at the end). */
__global__ void s_matmul_q8_0(float *y, const float *x, const uint8_t *w, const float *bias,
                              int32_t M, int32_t N, int32_t K, int accumulate) {
    int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (warp >= (int64_t)M * N) return;
    int32_t m = (int32_t)(warp / N), n = (int32_t)(warp % N);
    const int32_t nb = K / 32;
    const uint8_t *row = w + (size_t)n * nb * 34;
    const float *xr = x + (size_t)m * K;
    float acc = 0;
    for (int32_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + (size_t)b * 34;
        float d = tr_d_f16_to_f32((uint16_t)(blk[0] | (blk[1] << 8)));
        acc += xr[b * 32 + lane] * (d * (float)(int8_t)blk[2 + lane]);
    }
    acc = tr_warp_sum(acc);
    if (lane == 0) {
        if (bias) acc += bias[n];
        float *yp = &y[(size_t)m * N + n];
        *yp = accumulate ? *yp + acc : acc;
    }
}

static int s_lt_matmul(tr_cuda_t *self, const tr_matmul_params_t *p, const void *x,
                       cudaDataType_t ab_type, float beta) {
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0, rc = TR_ECUDA;
    const float alpha = 1.0f;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    if (cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F) ||
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)) ||
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)) ||
        cublasLtMatrixLayoutCreate(&la, ab_type, p->K, p->N, p->K) ||
        cublasLtMatrixLayoutCreate(&lb, ab_type, p->K, p->M, p->K) ||
        cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, p->N, p->M, p->N) ||
        cublasLtMatmulPreferenceCreate(&pref) ||
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &self->lt_ws_bytes, sizeof(self->lt_ws_bytes))) {
        TR_ERROR("cublasLt: descriptor setup failed (M=%d N=%d K=%d)", p->M, p->N, p->K);
        goto out;
    }
    if (cublasLtMatmulAlgoGetHeuristic(self->lt, op, la, lb, lc, lc, pref, 1, &heur, &found) ||
        found == 0) {
        TR_ERROR("cublasLt: no algorithm for M=%d N=%d K=%d", p->M, p->N, p->K);
        goto out;
    }
    if (cublasLtMatmul(self->lt, op, &alpha, p->w, la, x, lb, &beta, p->y, lc, p->y, lc,
                       &heur.algo, self->lt_ws, self->lt_ws_bytes, self->stream)) {
        TR_ERROR("cublasLtMatmul failed (M=%d N=%d K=%d)", p->M, p->N, p->K);
        goto out;
    }
    rc = TR_OK;
out:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return rc;
}

int tr_cuda_matmul(tr_ops_t *ops, const tr_matmul_params_t *p) {
    tr_cuda_t *self = TR_CUDA(ops);
    cudaStream_t st = self->stream;
    if (p->w_dtype == TR_DTYPE_Q8_0) {
        int64_t threads = (int64_t)p->M * p->N * 32;
        s_matmul_q8_0<<<(unsigned)((threads + 255) / 256), 256, 0, st>>>(
            p->y, p->x, (const uint8_t *)p->w, p->bias, p->M, p->N, p->K, p->accumulate);
        TR_CUDA_LAUNCHED();
        return TR_OK;
    }
    float beta = p->accumulate ? 1.0f : 0.0f;
    if (p->bias) {
        s_bias<<<tr_cuda_grid((int64_t)p->M * p->N), 256, 0, st>>>(p->y, p->bias, p->M, p->N,
                                                                   p->accumulate);
        TR_CUDA_LAUNCHED();
        beta = 1.0f;
    }
    const void *x = p->x;
    cudaDataType_t type = CUDA_R_32F;
    if (p->w_dtype == TR_DTYPE_BF16 || p->w_dtype == TR_DTYPE_F16) {
        int64_t n = (int64_t)p->M * p->K;
        uint16_t *xs = (uint16_t *)tr_cuda_scratch(self, TR_CUDA_SCRATCH_MM_X, (size_t)n * 2);
        if (!xs) return TR_ENOMEM;
        int bf = p->w_dtype == TR_DTYPE_BF16;
        s_round_x<<<tr_cuda_grid(n), 256, 0, st>>>(xs, p->x, n, bf);
        TR_CUDA_LAUNCHED();
        x = xs;
        type = bf ? CUDA_R_16BF : CUDA_R_16F;
    }
    return s_lt_matmul(self, p, x, type, beta);
}
