/*  kernels/cpu/rows.c - CPU row moves: scaled scatter-add, gather, embedding lookup.
 *  Oracle: kernels/ref/rows.c. Memory-bound copies; threads only for large batches. Rows
 *  of the embedding table are widened with the reference row decoders.               */
#include <string.h>

#include "kernels/cpu/cpu_impl.h"
#include "kernels/ref/ref.h"

/* Rows per task: work below this many values is not worth a thread. */
#define TR_ROWS_CHUNK 32768

typedef struct {
    float *y;
    const float *x;
    const void *table;
    const int32_t *idx;
    const float *scale;
    int32_t rows, D, per_task, V;
    tr_dtype_t dtype;
    size_t row_bytes;
} s_rows_t;

static int32_t s_per_task(int32_t D) {
    return D >= TR_ROWS_CHUNK ? 1 : TR_ROWS_CHUNK / D;
}

static void s_add_task(void *ctx, int32_t task, int32_t thread) {
    const s_rows_t *a = ctx;
    for (int32_t i = task * a->per_task; i < (task + 1) * a->per_task && i < a->rows; i++) {
        float *yr = a->y + (size_t)(a->idx ? a->idx[i] : i) * a->D;
        const float *xr = a->x + (size_t)i * a->D;
        float s = a->scale ? a->scale[i] : 1.0f;
        for (int32_t d = 0; d < a->D; d++) yr[d] += s * xr[d];
    }
}

static void s_gather_task(void *ctx, int32_t task, int32_t thread) {
    const s_rows_t *a = ctx;
    for (int32_t i = task * a->per_task; i < (task + 1) * a->per_task && i < a->rows; i++)
        memcpy(a->y + (size_t)i * a->D, a->x + (size_t)a->idx[i] * a->D, (size_t)a->D * 4);
}

static void s_embed_task(void *ctx, int32_t task, int32_t thread) {
    const s_rows_t *a = ctx;
    for (int32_t i = task * a->per_task; i < (task + 1) * a->per_task && i < a->rows; i++)
        tr_ref_dequantize_row(a->y + (size_t)i * a->D,
                              (const char *)a->table + (size_t)a->idx[i] * a->row_bytes,
                              a->dtype, a->D);
}

static void s_run(tr_cpu_t *cpu, s_rows_t *a, tr_pool_fn fn) {
    a->per_task = s_per_task(a->D);
    tr_pool_run(cpu->pool, (a->rows + a->per_task - 1) / a->per_task, fn, a);
}

int tr_cpu_add_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                    const float *scale, int32_t rows, int32_t D) {
    s_rows_t a = {.y = y, .x = x, .idx = idx, .scale = scale, .rows = rows, .D = D};
    s_run(TR_CPU(ops), &a, s_add_task);
    return TR_OK;
}

int tr_cpu_gather_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                       int32_t rows, int32_t D) {
    s_rows_t a = {.y = y, .x = x, .idx = idx, .rows = rows, .D = D};
    s_run(TR_CPU(ops), &a, s_gather_task);
    return TR_OK;
}

int tr_cpu_embed(tr_ops_t *ops, float *y, const void *table, tr_dtype_t dtype,
                 const int32_t *ids, int32_t T, int32_t D, int32_t V) {
    for (int32_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= V) return TR_EINVAL;
    s_rows_t a = {.y = y, .table = table, .idx = ids, .rows = T, .D = D, .V = V,
                  .dtype = dtype, .row_bytes = tr_dtype_row_bytes(dtype, D)};
    s_run(TR_CPU(ops), &a, s_embed_task);
    return TR_OK;
}
