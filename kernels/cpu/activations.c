/*  kernels/cpu/activations.c - CPU SwiGLU, sigmoid, softmax and RMSNorm: the bodies of
 *  kernels/cpu/activations_isa.h split over the pool in chunks (elementwise) or rows.
 *  Oracles: kernels/ref/activations.c, kernels/ref/rmsnorm.c.                         */
#include "kernels/cpu/cpu_impl.h"

/* Elementwise work below this many values runs on the calling thread. */
#define TR_ACT_CHUNK 16384

typedef struct {
    void (*swiglu)(float *y, const float *g, const float *u, int64_t i0, int64_t i1);
    void (*sigmoid)(float *x, int64_t i0, int64_t i1);
    void (*softmax_row)(float *x, int32_t n);
    void (*rmsnorm_row)(float *y, const float *x, const float *w, int32_t D, float eps);
} s_isa_act_t;

#define TR_ISA_BODY "kernels/cpu/activations_isa.h"
#include "kernels/cpu/isa_instantiate.h"

static const s_isa_act_t *const s_isa[] = TR_ISA_TABLE(&s_act);

typedef struct {
    const s_isa_act_t *isa;
    float *y;
    const float *x, *u, *w;
    int64_t n;
    int32_t D, per_task;
    float eps;
} s_act_args_t;

static void s_swiglu_task(void *ctx, int32_t task, int32_t thread) {
    const s_act_args_t *a = ctx;
    int64_t i0 = (int64_t)task * TR_ACT_CHUNK, i1 = i0 + TR_ACT_CHUNK < a->n ? i0 + TR_ACT_CHUNK : a->n;
    a->isa->swiglu(a->y, a->x, a->u, i0, i1);
}

static void s_sigmoid_task(void *ctx, int32_t task, int32_t thread) {
    const s_act_args_t *a = ctx;
    int64_t i0 = (int64_t)task * TR_ACT_CHUNK, i1 = i0 + TR_ACT_CHUNK < a->n ? i0 + TR_ACT_CHUNK : a->n;
    a->isa->sigmoid(a->y, i0, i1);
}

static void s_softmax_task(void *ctx, int32_t task, int32_t thread) {
    const s_act_args_t *a = ctx;
    for (int64_t r = (int64_t)task * a->per_task; r < (task + 1) * (int64_t)a->per_task && r < a->n; r++)
        a->isa->softmax_row(a->y + r * a->D, a->D);
}

static void s_rmsnorm_task(void *ctx, int32_t task, int32_t thread) {
    const s_act_args_t *a = ctx;
    for (int64_t r = (int64_t)task * a->per_task; r < (task + 1) * (int64_t)a->per_task && r < a->n; r++)
        a->isa->rmsnorm_row(a->y + r * a->D, a->x + r * a->D, a->w, a->D, a->eps);
}

static int32_t s_chunks(int64_t n) {
    return (int32_t)((n + TR_ACT_CHUNK - 1) / TR_ACT_CHUNK);
}

/* rows per task so that each task has about TR_ACT_CHUNK values */
static int32_t s_rows_per_task(int32_t D) {
    return D >= TR_ACT_CHUNK ? 1 : TR_ACT_CHUNK / D;
}

int tr_cpu_swiglu(tr_ops_t *ops, float *y, const float *gate, const float *up, int64_t n) {
    tr_cpu_t *cpu = TR_CPU(ops);
    s_act_args_t a = {.isa = s_isa[TR_CPU_ISA(cpu)], .y = y, .x = gate, .u = up, .n = n};
    tr_pool_run(cpu->pool, s_chunks(n), s_swiglu_task, &a);
    return TR_OK;
}

int tr_cpu_sigmoid(tr_ops_t *ops, float *x, int64_t n) {
    tr_cpu_t *cpu = TR_CPU(ops);
    s_act_args_t a = {.isa = s_isa[TR_CPU_ISA(cpu)], .y = x, .n = n};
    tr_pool_run(cpu->pool, s_chunks(n), s_sigmoid_task, &a);
    return TR_OK;
}

int tr_cpu_softmax(tr_ops_t *ops, float *x, int32_t rows, int32_t n) {
    tr_cpu_t *cpu = TR_CPU(ops);
    s_act_args_t a = {.isa = s_isa[TR_CPU_ISA(cpu)], .y = x, .n = rows, .D = n,
                      .per_task = s_rows_per_task(n)};
    tr_pool_run(cpu->pool, (rows + a.per_task - 1) / a.per_task, s_softmax_task, &a);
    return TR_OK;
}

int tr_cpu_rmsnorm(tr_ops_t *ops, float *y, const float *x, const float *w, int32_t T,
                   int32_t D, float eps) {
    tr_cpu_t *cpu = TR_CPU(ops);
    s_act_args_t a = {.isa = s_isa[TR_CPU_ISA(cpu)], .y = y, .x = x, .w = w, .n = T, .D = D,
                      .eps = eps, .per_task = s_rows_per_task(D)};
    tr_pool_run(cpu->pool, (T + a.per_task - 1) / a.per_task, s_rmsnorm_task, &a);
    return TR_OK;
}
