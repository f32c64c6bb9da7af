/*  kernels/ref/matmul.c - reference matmul: y (M, N) = x (M, K) . W (N, K)^T [+ bias] [+ y].
 *  Each weight row is dequantized to f32, then a plain dot product with f32 accumulation
 *  (llm.c matmul_forward_naive).                                                     */
#include <stdlib.h>

#include "kernels/ref/ref.h"

int tr_ref_matmul(const tr_matmul_params_t *p) {
    float *wrow = malloc((size_t)p->K * sizeof(float));
    if (!wrow) return TR_ENOMEM;
    size_t row_bytes = tr_dtype_row_bytes(p->w_dtype, p->K);
    for (int32_t n = 0; n < p->N; n++) {
        tr_ref_dequantize_row(wrow, (const char *)p->w + (size_t)n * row_bytes, p->w_dtype,
                              p->K);
        for (int32_t m = 0; m < p->M; m++) {
            const float *x = p->x + (size_t)m * p->K;
            float acc = 0;
            for (int32_t k = 0; k < p->K; k++) acc += x[k] * wrow[k];
            if (p->bias) acc += p->bias[n];
            float *y = &p->y[(size_t)m * p->N + n];
            *y = p->accumulate ? *y + acc : acc;
        }
    }
    free(wrow);
    return TR_OK;
}
