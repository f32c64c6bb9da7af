/*  kernels/ref/ref.h - the naive reference kernels (private to kernels/).
 *
 *  One obviously correct implementation per op: plain loops, f32 accumulation (the sampler
 *  and softmax sums in double), weights dequantized row by row. They are the oracle the
 *  tests hold every other backend to, and the "ref" backend (tr_ops_ref) is just these
 *  behind the vtable. Arguments have been checked by kernels/ops.c. Single-threaded,
 *  reentrant; scratch memory comes from malloc (TR_ENOMEM when it fails).           */
#ifndef TR_KERNELS_REF_H
#define TR_KERNELS_REF_H

#include "kernels/ops.h"

/* dst (n f32) = row (n values of dtype); n a multiple of the dtype block. */
void tr_ref_dequantize_row(float *dst, const void *row, tr_dtype_t dtype, int64_t n);
/* dst (n values of dtype) = src (n f32) */
void tr_ref_quantize_row(void *dst, const float *src, tr_dtype_t dtype, int64_t n);

int tr_ref_matmul(const tr_matmul_params_t *p);
int tr_ref_rmsnorm(float *y, const float *x, const float *w, int32_t T, int32_t D, float eps);
int tr_ref_swiglu(float *y, const float *gate, const float *up, int64_t n);
int tr_ref_softmax(float *x, int32_t rows, int32_t n);
int tr_ref_sigmoid(float *x, int64_t n);
int tr_ref_add_rows(float *y, const float *x, const int32_t *idx, const float *scale,
                    int32_t rows, int32_t D);
int tr_ref_gather_rows(float *y, const float *x, const int32_t *idx, int32_t rows, int32_t D);
int tr_ref_embed(float *y, const void *table, tr_dtype_t dtype, const int32_t *ids, int32_t T,
                 int32_t D, int32_t V);
int tr_ref_rope(const tr_rope_t *rope, float *q, int32_t Hq, float *k, int32_t Hk,
                const int32_t *pos, int32_t T, int32_t D);
int tr_ref_kv_store(float *k_cache, float *v_cache, const float *k, const float *v,
                    const int32_t *slots, int32_t T, int32_t Hk, int32_t D);
int tr_ref_attention(const tr_attn_params_t *p);
int tr_ref_moe_route(int32_t *ids, float *weights, const float *logits, int32_t T, int32_t E,
                     int32_t k, int32_t renormalize);
int tr_ref_sample(int32_t *tokens, float *logprobs, const float *logits, int32_t B,
                  int32_t V, const tr_sample_params_t *params);
int tr_ref_quantize(void *dst, tr_dtype_t dtype, const float *src, int64_t n);
int tr_ref_dequantize(float *dst, const void *src, tr_dtype_t dtype, int64_t n);

#endif
