/*  kernels/cpu/quant.c - CPU quantize / dequantize: the reference row codecs
 *  (kernels/ref/quant.c) over chunks of the array on the pool. Used at load time and by
 *  tests, not in a model step, so they stay simple.                                   */
#include "kernels/cpu/cpu_impl.h"
#include "kernels/ref/ref.h"

#define TR_QUANT_CHUNK (1 << 16)   /* values per task, a multiple of every block size */

typedef struct {
    void *q;
    float *f;
    const void *cq;
    const float *cf;
    tr_dtype_t dtype;
    int64_t n;
} s_quant_t;

static void s_quant_task(void *ctx, int32_t task, int32_t thread) {
    const s_quant_t *a = ctx;
    int64_t i0 = (int64_t)task * TR_QUANT_CHUNK, n = a->n - i0 < TR_QUANT_CHUNK ? a->n - i0 : TR_QUANT_CHUNK;
    tr_ref_quantize_row((char *)a->q + tr_dtype_row_bytes(a->dtype, i0), a->cf + i0, a->dtype, n);
}

static void s_dequant_task(void *ctx, int32_t task, int32_t thread) {
    const s_quant_t *a = ctx;
    int64_t i0 = (int64_t)task * TR_QUANT_CHUNK, n = a->n - i0 < TR_QUANT_CHUNK ? a->n - i0 : TR_QUANT_CHUNK;
    tr_ref_dequantize_row(a->f + i0, (const char *)a->cq + tr_dtype_row_bytes(a->dtype, i0), a->dtype, n);
}

int tr_cpu_quantize(tr_ops_t *ops, void *dst, tr_dtype_t dtype, const float *src, int64_t n) {
    s_quant_t a = {.q = dst, .cf = src, .dtype = dtype, .n = n};
    tr_pool_run(TR_CPU(ops)->pool, (int32_t)((n + TR_QUANT_CHUNK - 1) / TR_QUANT_CHUNK), s_quant_task, &a);
    return TR_OK;
}

int tr_cpu_dequantize(tr_ops_t *ops, float *dst, const void *src, tr_dtype_t dtype, int64_t n) {
    s_quant_t a = {.f = dst, .cq = src, .dtype = dtype, .n = n};
    tr_pool_run(TR_CPU(ops)->pool, (int32_t)((n + TR_QUANT_CHUNK - 1) / TR_QUANT_CHUNK), s_dequant_task, &a);
    return TR_OK;
}
