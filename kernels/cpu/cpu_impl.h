/*  kernels/cpu/cpu_impl.h - the CPU backend instance and its op entry points (private).
 *
 *  tr_cpu_t owns the thread pool, the chosen SIMD level and per-thread scratch arenas that
 *  grow on demand (reserved by the calling thread before a parallel run, never inside one).
 *  One thread drives an instance at a time.                                           */
#ifndef TR_KERNELS_CPU_IMPL_H
#define TR_KERNELS_CPU_IMPL_H

#include "kernels/cpu/pool.h"
#include "kernels/ops_impl.h"

typedef struct {
    tr_ops_t base;
    tr_ops_vtable_t vt;           /* copy of the table with this level's name */
    char name[32];
    tr_simd_t simd;               /* resolved: SCALAR, AVX2 or AVX512 */
    int vnni;                     /* AVX512 with AVX512-VNNI (packed q8_0 GEMV) */
    tr_pool_t *pool;              /* owned */
    int32_t n_scratch;
    void **scratch;               /* owned: one arena per pool thread */
    size_t scratch_bytes;         /* size of each arena */
    void *shared;                 /* owned: one arena shared by a run (e.g. packed x) */
    size_t shared_bytes;
} tr_cpu_t;

#define TR_CPU(ops) ((tr_cpu_t *)(ops))
/* Index of the per-ISA function tables. */
#define TR_CPU_ISA(cpu) ((int)(cpu)->simd - 1)

/* Grows every thread's arena to at least `bytes` (64-byte aligned). TR_ENOMEM on failure. */
int tr_cpu_reserve(tr_cpu_t *cpu, size_t bytes);
/* Grows the shared arena to at least `bytes`. */
int tr_cpu_reserve_shared(tr_cpu_t *cpu, size_t bytes);

/* The fewest units (rows, row groups) a memory-bound task should take so that it streams
 * at least `bytes` when each unit is `unit_bytes`, but never more than every thread's even
 * share of n_units: that minimum rounded down to a multiple of `mult`, or the share rounded
 * up. A task starts new streams, whose first lines arrive at memory latency. */
static inline int32_t tr_cpu_stream_units(size_t bytes, size_t unit_bytes, int32_t n_units,
                                          int32_t threads, int32_t mult) {
    int32_t min = (int32_t)((bytes + unit_bytes - 1) / unit_bytes);
    int32_t even = (n_units + threads - 1) / threads;
    return min < even ? min / mult * mult : (even + mult - 1) / mult * mult;
}

/* ---- packed q8_0 GEMV (kernels/cpu/pack_q8_0.c) ---- */

/* One packed GEMV run: x packed once by tr_cpu_q8p_plan, tasks of ng 16-row groups. */
typedef struct {
    const tr_matmul_params_t *p;  /* borrowed; p->w_packed is the packed weight */
    int32_t *xq;                  /* borrowed (M, K / 32, 32): per block 16 hi, 16 lo pairs */
    float *xs;                    /* borrowed (M, K / 32): block scales of x */
    int32_t ng, n_tasks;
} tr_q8p_gemv_t;

int tr_cpu_pack_weights(tr_ops_t *ops, const void *w, tr_dtype_t dtype, int32_t rows,
                        int32_t cols, void **out);
/* Bytes of the packed copy of a (rows, cols) q8_0 matrix, and of packed x (M, K). */
size_t tr_cpu_q8p_bytes(int32_t rows, int32_t cols);
size_t tr_cpu_q8p_x_bytes(int32_t M, int32_t K);
/* Packs p->x into buf (tr_cpu_q8p_x_bytes, 64-byte aligned) and plans the tasks. */
void tr_cpu_q8p_plan(tr_q8p_gemv_t *a, const tr_matmul_params_t *p, tr_cpu_t *cpu, void *buf);
/* The pool task for this instance's ISA; ctx is a tr_q8p_gemv_t. */
tr_pool_fn tr_cpu_q8p_gemv_fn(const tr_cpu_t *cpu);

int tr_cpu_matmul(tr_ops_t *ops, const tr_matmul_params_t *p);
int tr_cpu_matmul_batch(tr_ops_t *ops, const tr_matmul_params_t *p, int32_t n);
int tr_cpu_attention(tr_ops_t *ops, const tr_attn_params_t *p);
int tr_cpu_kv_store(tr_ops_t *ops, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D);
int tr_cpu_rmsnorm(tr_ops_t *ops, float *y, const float *x, const float *w, int32_t T,
                   int32_t D, float eps);
int tr_cpu_swiglu(tr_ops_t *ops, float *y, const float *gate, const float *up, int64_t n);
int tr_cpu_softmax(tr_ops_t *ops, float *x, int32_t rows, int32_t n);
int tr_cpu_sigmoid(tr_ops_t *ops, float *x, int64_t n);
int tr_cpu_add_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                    const float *scale, int32_t rows, int32_t D);
int tr_cpu_gather_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                       int32_t rows, int32_t D);
int tr_cpu_embed(tr_ops_t *ops, float *y, const void *table, tr_dtype_t dtype,
                 const int32_t *ids, int32_t T, int32_t D, int32_t V);
int tr_cpu_rope(tr_ops_t *ops, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                int32_t Hk, const int32_t *pos, int32_t T, int32_t D);
int tr_cpu_moe_route(tr_ops_t *ops, int32_t *ids, float *weights, const float *logits,
                     int32_t T, int32_t E, int32_t k, int32_t renormalize);
int tr_cpu_sample(tr_ops_t *ops, int32_t *tokens, float *logprobs, const float *logits,
                  int32_t B, int32_t V, const tr_sample_params_t *params);
int tr_cpu_quantize(tr_ops_t *ops, void *dst, tr_dtype_t dtype, const float *src, int64_t n);
int tr_cpu_dequantize(tr_ops_t *ops, float *dst, const void *src, tr_dtype_t dtype,
                      int64_t n);

#endif
