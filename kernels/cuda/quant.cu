/*  kernels/cuda/quant.cu - dtype conversions on the device: f32, bf16, f16, q8_0.
 *  Oracle: kernels/ref/quant.c (and the scalar conversions of kernels/dtype.h, mirrored in
 *  cuda_impl.h: bf16 and f16 round to nearest even). q8_0 follows ggml as the ref does:
 *  d = max|x| / 127 stored as f16, q = roundf(x / d) with the f32 inverse; one thread per
 *  32-value block. dtype values come from kernels/dtypes.def; a dtype added there without
 *  a case here is TR_EINVAL with a log line.                                            */
#include "kernels/cuda/cuda_impl.h"

__global__ void s_quant(void *dst, int dtype, const float *src, int64_t n) {
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    int64_t i0 = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (dtype == TR_DTYPE_Q8_0) {
        for (int64_t b = i0; b < n / 32; b += step) {
            const float *x = src + b * 32;
            uint8_t *blk = (uint8_t *)dst + b * 34;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
            float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
            uint16_t dh = tr_d_f32_to_f16(d);
            blk[0] = (uint8_t)(dh & 0xff);
            blk[1] = (uint8_t)(dh >> 8);
            for (int j = 0; j < 32; j++) blk[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
        }
        return;
    }
    for (int64_t i = i0; i < n; i += step) {
        switch (dtype) {
        case TR_DTYPE_F32: ((float *)dst)[i] = src[i]; break;
        case TR_DTYPE_BF16: ((uint16_t *)dst)[i] = tr_d_f32_to_bf16(src[i]); break;
        case TR_DTYPE_F16: ((uint16_t *)dst)[i] = tr_d_f32_to_f16(src[i]); break;
        }
    }
}

__global__ void s_dequant(float *dst, const void *src, int dtype, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        switch (dtype) {
        case TR_DTYPE_F32: dst[i] = ((const float *)src)[i]; break;
        case TR_DTYPE_BF16: dst[i] = tr_d_bf16_to_f32(((const uint16_t *)src)[i]); break;
        case TR_DTYPE_F16: dst[i] = tr_d_f16_to_f32(((const uint16_t *)src)[i]); break;
        case TR_DTYPE_Q8_0: {
            const uint8_t *blk = (const uint8_t *)src + (i / 32) * 34;
            float d = tr_d_f16_to_f32((uint16_t)(blk[0] | (blk[1] << 8)));
            dst[i] = d * (float)(int8_t)blk[2 + i % 32];
            break;
        }
        }
    }
}

static int s_known(tr_dtype_t dtype) {
    switch (dtype) {
    case TR_DTYPE_F32:
    case TR_DTYPE_BF16:
    case TR_DTYPE_F16:
    case TR_DTYPE_Q8_0: return 1;
    default: TR_ERROR("cuda: dtype %s has no device conversion yet", tr_dtype_name(dtype)); return 0;
    }
}

int tr_cuda_quantize(tr_ops_t *ops, void *dst, tr_dtype_t dtype, const float *src, int64_t n) {
    if (!s_known(dtype)) return TR_EINVAL;
    int64_t work = dtype == TR_DTYPE_Q8_0 ? n / 32 : n;
    s_quant<<<tr_cuda_grid(work), 256, 0, TR_CUDA(ops)->stream>>>(dst, dtype, src, n);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}

int tr_cuda_dequantize(tr_ops_t *ops, float *dst, const void *src, tr_dtype_t dtype,
                       int64_t n) {
    if (!s_known(dtype)) return TR_EINVAL;
    s_dequant<<<tr_cuda_grid(n), 256, 0, TR_CUDA(ops)->stream>>>(dst, src, dtype, n);
    TR_CUDA_LAUNCHED();
    return TR_OK;
}
