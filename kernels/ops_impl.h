/*  kernels/ops_impl.h - the backend vtable behind kernels/ops.h (private to kernels/).
 *
 *  A backend fills one const tr_ops_vtable_t and embeds tr_ops_t as the first member of its
 *  instance struct (ggml's ggml_backend_i). The public wrappers in kernels/ops.c check every
 *  argument before calling in, so implementations may assume sane shapes, non-NULL required
 *  pointers and valid dtypes. A NULL entry means "not supported" (TR_EINVAL to the caller).
 *  Memory hooks may be NULL, meaning host memory (aligned malloc and memcpy).           */
#ifndef TR_OPS_IMPL_H
#define TR_OPS_IMPL_H

#include "kernels/ops.h"

typedef struct tr_ops_vtable {
    const char *name;
    int device_memory;            /* nonzero: backend memory is not host-readable, so the
                                     wrappers check no array contents (block ids, positions);
                                     the backend's kernels guard them instead */
    void (*destroy)(tr_ops_t *self);
    int32_t (*threads)(const tr_ops_t *self);
    int (*set_threads)(tr_ops_t *self, int32_t n);
    void (*idle)(tr_ops_t *self);                                                  /* optional */

    /* memory: NULL means host memory (sync, memory_info: sysconf figures) */
    void *(*alloc)(tr_ops_t *self, size_t bytes);
    void (*free)(tr_ops_t *self, void *p);
    int (*to_device)(tr_ops_t *self, void *dst, const void *src, size_t bytes);
    int (*to_host)(tr_ops_t *self, void *dst, const void *src, size_t bytes);
    int (*memset)(tr_ops_t *self, void *dst, int value, size_t bytes);
    int (*upload_weights)(tr_ops_t *self, const void *host, size_t bytes, void **out);
    void (*release_weights)(tr_ops_t *self, void *dev);
    int (*pack_weights)(tr_ops_t *self, const void *w, tr_dtype_t dtype, int32_t rows,
                        int32_t cols, void **out);                                 /* optional */
    int (*memory_info)(tr_ops_t *self, size_t *free_bytes, size_t *total_bytes);
    void *(*host_alloc)(tr_ops_t *self, size_t bytes);
    void (*host_free)(tr_ops_t *self, void *p);
    int (*to_device_async)(tr_ops_t *self, void *dst, const void *src, size_t bytes);
    int (*to_host_async)(tr_ops_t *self, void *dst, const void *src, size_t bytes);
    int (*copy)(tr_ops_t *self, void *dst, const void *src, size_t bytes);
    int (*sync)(tr_ops_t *self);

    /* graphs: all NULL when the backend has none */
    int (*graph_begin)(tr_ops_t *self);
    int (*graph_end)(tr_ops_t *self, tr_ops_graph_t **out);
    int (*graph_launch)(tr_ops_t *self, tr_ops_graph_t *g);
    void (*graph_destroy)(tr_ops_t *self, tr_ops_graph_t *g);

    int (*matmul)(tr_ops_t *self, const tr_matmul_params_t *p);
    int (*matmul_batch)(tr_ops_t *self, const tr_matmul_params_t *p, int32_t n);  /* optional */
    int (*rmsnorm)(tr_ops_t *self, float *y, const float *x, const float *w, int32_t T,
                   int32_t D, float eps);
    int (*swiglu)(tr_ops_t *self, float *y, const float *gate, const float *up, int64_t n);
    int (*softmax)(tr_ops_t *self, float *x, int32_t rows, int32_t n);
    int (*sigmoid)(tr_ops_t *self, float *x, int64_t n);
    int (*add_rows)(tr_ops_t *self, float *y, const float *x, const int32_t *idx,
                    const float *scale, int32_t rows, int32_t D);
    int (*gather_rows)(tr_ops_t *self, float *y, const float *x, const int32_t *idx,
                       int32_t rows, int32_t D);
    int (*embed)(tr_ops_t *self, float *y, const void *table, tr_dtype_t dtype,
                 const int32_t *ids, int32_t T, int32_t D, int32_t V);
    int (*rope)(tr_ops_t *self, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                int32_t Hk, const int32_t *pos, int32_t T, int32_t D);
    int (*kv_store)(tr_ops_t *self, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D);
    int (*attention)(tr_ops_t *self, const tr_attn_params_t *p);
    int (*moe_route)(tr_ops_t *self, int32_t *ids, float *weights, const float *logits,
                     int32_t T, int32_t E, int32_t k, int32_t renormalize);
    int (*sample)(tr_ops_t *self, int32_t *tokens, float *logprobs, const float *logits,
                  int32_t B, int32_t V, const tr_sample_params_t *params);
    int (*quantize)(tr_ops_t *self, void *dst, tr_dtype_t dtype, const float *src, int64_t n);
    int (*dequantize)(tr_ops_t *self, float *dst, const void *src, tr_dtype_t dtype,
                      int64_t n);
} tr_ops_vtable_t;

/* First member of every backend instance. */
struct tr_ops {
    const tr_ops_vtable_t *vt;
    uint32_t tag;                 /* TR_OPS_TAG while alive, poisoned on destroy */
};

#define TR_OPS_TAG 0x0b5ea11du
#define TR_OPS_DEAD 0xdeadbeefu

#endif
