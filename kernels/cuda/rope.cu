/*  kernels/cuda/rope.cu - rotary position embedding, NEOX and interleaved layouts.
 *  Oracle: kernels/ref/rope.c. The inverse frequencies come from tr_rope_inv_freq() on the
 *  host (the one function every backend shares, so they agree bit for bit) and travel as a
 *  kernel argument (R/2 <= 512 floats). One thread per (token, head, pair): angle =
 *  p' * inv_freq[i] with p' = pos (or pos / factor), cosf / sinf in full precision.
 *  R/2 > 512 (head_dim > 1024) is TR_EINVAL.                                           */
#include "kernels/cuda/cuda_impl.h"

#define S_MAX_PAIRS 512

typedef struct {
    float inv[S_MAX_PAIRS];
} s_freqs_t;

/* x (T, H, D): rotates pair i of every head at position pos[t] */
__global__ void s_rope(float *x, int32_t H, const int32_t *pos, int32_t T, int32_t D,
                       int32_t half, int neox, int linear, float factor, const s_freqs_t f) {
    int64_t total = (int64_t)T * H * half;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < total;
         j += (int64_t)gridDim.x * blockDim.x) {
        int32_t i = (int32_t)(j % half);
        int64_t th = j / half;                 /* t * H + h */
        int32_t t = (int32_t)(th / H);
        float p = (float)pos[t];
        if (linear) p = p / factor;
        float a = p * f.inv[i], cs = cosf(a), sn = sinf(a);
        float *v = x + th * D;
        int32_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
        float x0 = v[i0], x1 = v[i1];
        v[i0] = x0 * cs - x1 * sn;
        v[i1] = x1 * cs + x0 * sn;
    }
}

int tr_cuda_rope(tr_ops_t *ops, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                 int32_t Hk, const int32_t *pos, int32_t T, int32_t D) {
    int32_t R = rope->rot_dim > 0 ? rope->rot_dim : D, half = R / 2;
    if (half > S_MAX_PAIRS) {
        TR_ERROR("cuda rope: %d rotated dims, at most %d supported", R, 2 * S_MAX_PAIRS);
        return TR_EINVAL;
    }
    s_freqs_t f;
    tr_rope_inv_freq(rope, D, f.inv);
    cudaStream_t st = TR_CUDA(ops)->stream;
    int neox = rope->layout == TR_ROPE_NEOX, lin = rope->scaling == TR_ROPE_SCALING_LINEAR;
    s_rope<<<tr_cuda_grid((int64_t)T * Hq * half), 256, 0, st>>>(q, Hq, pos, T, D, half, neox, lin,
                                                                 rope->factor, f);
    TR_CUDA_LAUNCHED();
    if (k) {
        s_rope<<<tr_cuda_grid((int64_t)T * Hk * half), 256, 0, st>>>(k, Hk, pos, T, D, half, neox,
                                                                     lin, rope->factor, f);
        TR_CUDA_LAUNCHED();
    }
    return TR_OK;
}
