/*  kernels/ref/ops_ref.c - the reference backend: the kernels/ref/ oracles behind the vtable.
 *  Host memory, one thread, no state beyond the tag. Slow on purpose: it is what the other
 *  backends and the model tests are checked against.                                  */
#include <stdlib.h>

#include "kernels/ops_impl.h"
#include "kernels/ref/ref.h"

typedef struct {
    tr_ops_t base;
} s_ref_t;

static void s_destroy(tr_ops_t *self) {
    free(self);
}

static int s_matmul(tr_ops_t *o, const tr_matmul_params_t *p) {
    return tr_ref_matmul(p);
}
static int s_rmsnorm(tr_ops_t *o, float *y, const float *x, const float *w, int32_t T,
                     int32_t D, float eps) {
    return tr_ref_rmsnorm(y, x, w, T, D, eps);
}
static int s_swiglu(tr_ops_t *o, float *y, const float *g, const float *u, int64_t n) {
    return tr_ref_swiglu(y, g, u, n);
}
static int s_softmax(tr_ops_t *o, float *x, int32_t rows, int32_t n) {
    return tr_ref_softmax(x, rows, n);
}
static int s_sigmoid(tr_ops_t *o, float *x, int64_t n) {
    return tr_ref_sigmoid(x, n);
}
static int s_add_rows(tr_ops_t *o, float *y, const float *x, const int32_t *idx,
                      const float *scale, int32_t rows, int32_t D) {
    return tr_ref_add_rows(y, x, idx, scale, rows, D);
}
static int s_gather_rows(tr_ops_t *o, float *y, const float *x, const int32_t *idx,
                         int32_t rows, int32_t D) {
    return tr_ref_gather_rows(y, x, idx, rows, D);
}
static int s_embed(tr_ops_t *o, float *y, const void *table, tr_dtype_t dt, const int32_t *ids,
                   int32_t T, int32_t D, int32_t V) {
    return tr_ref_embed(y, table, dt, ids, T, D, V);
}
static int s_rope(tr_ops_t *o, const tr_rope_t *r, float *q, int32_t Hq, float *k, int32_t Hk,
                  const int32_t *pos, int32_t T, int32_t D) {
    return tr_ref_rope(r, q, Hq, k, Hk, pos, T, D);
}
static int s_kv_store(tr_ops_t *o, float *kc, float *vc, const float *k, const float *v,
                      const int32_t *slots, int32_t T, int32_t Hk, int32_t D) {
    return tr_ref_kv_store(kc, vc, k, v, slots, T, Hk, D);
}
static int s_attention(tr_ops_t *o, const tr_attn_params_t *p) {
    return tr_ref_attention(p);
}
static int s_moe_route(tr_ops_t *o, int32_t *ids, float *w, const float *logits, int32_t T,
                       int32_t E, int32_t k, int32_t renorm) {
    return tr_ref_moe_route(ids, w, logits, T, E, k, renorm);
}
static int s_sample(tr_ops_t *o, int32_t *tokens, float *lp, const float *logits, int32_t B,
                    int32_t V, const tr_sample_params_t *params) {
    return tr_ref_sample(tokens, lp, logits, B, V, params);
}
static int s_quantize(tr_ops_t *o, void *dst, tr_dtype_t dt, const float *src, int64_t n) {
    return tr_ref_quantize(dst, dt, src, n);
}
static int s_dequantize(tr_ops_t *o, float *dst, const void *src, tr_dtype_t dt, int64_t n) {
    return tr_ref_dequantize(dst, src, dt, n);
}

static const tr_ops_vtable_t s_vtable = {
    .name = "ref",
    .destroy = s_destroy,
    .matmul = s_matmul,
    .rmsnorm = s_rmsnorm,
    .swiglu = s_swiglu,
    .softmax = s_softmax,
    .sigmoid = s_sigmoid,
    .add_rows = s_add_rows,
    .gather_rows = s_gather_rows,
    .embed = s_embed,
    .rope = s_rope,
    .kv_store = s_kv_store,
    .attention = s_attention,
    .moe_route = s_moe_route,
    .sample = s_sample,
    .quantize = s_quantize,
    .dequantize = s_dequantize,
};

tr_ops_t *tr_ops_ref(void) {
    s_ref_t *self = calloc(1, sizeof(*self));
    if (!self) return NULL;
    self->base.vt = &s_vtable;
    self->base.tag = TR_OPS_TAG;
    return &self->base;
}
