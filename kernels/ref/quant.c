/*  kernels/ref/quant.c - reference dtype conversions: one decoder and one encoder per row of
 *  kernels/dtypes.def (the tables below fail to compile when a dtype lacks either).
 *  q8_0 follows ggml: d = max|x| / 127, q = round(x / d), d stored as f16.        */
#include <math.h>

#include "kernels/ref/ref.h"

/* ---- decoders: dst (n f32) from n stored values ---- */

static void s_dequant_f32(float *dst, const void *src, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void s_dequant_bf16(float *dst, const void *src, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = tr_bf16_to_f32(s[i]);
}

static void s_dequant_f16(float *dst, const void *src, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = tr_f16_to_f32(s[i]);
}

static void s_dequant_q8_0(float *dst, const void *src, int64_t n) {
    const tr_block_q8_0_t *b = src;
    for (int64_t i = 0; i < n / TR_Q8_0_BLOCK; i++) {
        float d = tr_f16_to_f32(b[i].d);
        for (int j = 0; j < TR_Q8_0_BLOCK; j++) dst[i * TR_Q8_0_BLOCK + j] = d * b[i].qs[j];
    }
}

/* ---- encoders ---- */

static void s_quant_f32(void *dst, const float *src, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void s_quant_bf16(void *dst, const float *src, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = tr_f32_to_bf16(src[i]);
}

static void s_quant_f16(void *dst, const float *src, int64_t n) {
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = tr_f32_to_f16(src[i]);
}

static void s_quant_q8_0(void *dst, const float *src, int64_t n) {
    tr_block_q8_0_t *b = dst;
    for (int64_t i = 0; i < n / TR_Q8_0_BLOCK; i++) {
        const float *x = src + i * TR_Q8_0_BLOCK;
        float amax = 0;
        for (int j = 0; j < TR_Q8_0_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
        b[i].d = tr_f32_to_f16(d);
        for (int j = 0; j < TR_Q8_0_BLOCK; j++) b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void (*const s_dequant[TR_DTYPE_COUNT])(float *, const void *, int64_t) = {
#define TR_DTYPE(E, n, be, bb, nmse) [TR_DTYPE_##E] = s_dequant_##n,
#include "kernels/dtypes.def"
#undef TR_DTYPE
};

static void (*const s_quant[TR_DTYPE_COUNT])(void *, const float *, int64_t) = {
#define TR_DTYPE(E, n, be, bb, nmse) [TR_DTYPE_##E] = s_quant_##n,
#include "kernels/dtypes.def"
#undef TR_DTYPE
};

void tr_ref_dequantize_row(float *dst, const void *row, tr_dtype_t dtype, int64_t n) {
    s_dequant[dtype](dst, row, n);
}

void tr_ref_quantize_row(void *dst, const float *src, tr_dtype_t dtype, int64_t n) {
    s_quant[dtype](dst, src, n);
}

int tr_ref_quantize(void *dst, tr_dtype_t dtype, const float *src, int64_t n) {
    s_quant[dtype](dst, src, n);
    return TR_OK;
}

int tr_ref_dequantize(float *dst, const void *src, tr_dtype_t dtype, int64_t n) {
    s_dequant[dtype](dst, src, n);
    return TR_OK;
}
