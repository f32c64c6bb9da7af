/*  kernels/ref/rmsnorm.c - reference RMSNorm: y = x / sqrt(mean(x^2) + eps) * w, per row.
 *  The mean is taken in f32 like HF's (hidden.pow(2).mean) for f32 models.         */
#include <math.h>

#include "kernels/ref/ref.h"

int tr_ref_rmsnorm(float *y, const float *x, const float *w, int32_t T, int32_t D, float eps) {
    for (int32_t t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * D;
        float *yr = y + (size_t)t * D;
        float ss = 0;
        for (int32_t i = 0; i < D; i++) ss += xr[i] * xr[i];
        float r = 1.0f / sqrtf(ss / (float)D + eps);
        for (int32_t i = 0; i < D; i++) yr[i] = w[i] * (xr[i] * r);
    }
    return TR_OK;
}
