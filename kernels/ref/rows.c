/*  kernels/ref/rows.c - reference row moves: scaled scatter-add, gather, embedding lookup. */
#include "kernels/ref/ref.h"

int tr_ref_add_rows(float *y, const float *x, const int32_t *idx, const float *scale,
                    int32_t rows, int32_t D) {
    for (int32_t i = 0; i < rows; i++) {
        float *yr = y + (size_t)(idx ? idx[i] : i) * D;
        const float *xr = x + (size_t)i * D;
        float s = scale ? scale[i] : 1.0f;
        for (int32_t d = 0; d < D; d++) yr[d] += s * xr[d];
    }
    return TR_OK;
}

int tr_ref_gather_rows(float *y, const float *x, const int32_t *idx, int32_t rows, int32_t D) {
    for (int32_t i = 0; i < rows; i++)
        memcpy(y + (size_t)i * D, x + (size_t)idx[i] * D, (size_t)D * sizeof(float));
    return TR_OK;
}

int tr_ref_embed(float *y, const void *table, tr_dtype_t dtype, const int32_t *ids, int32_t T,
                 int32_t D, int32_t V) {
    size_t row_bytes = tr_dtype_row_bytes(dtype, D);
    for (int32_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= V) return TR_EINVAL;
        tr_ref_dequantize_row(y + (size_t)t * D, (const char *)table + (size_t)ids[t] * row_bytes,
                              dtype, D);
    }
    return TR_OK;
}
