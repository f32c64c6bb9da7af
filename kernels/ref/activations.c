/*  kernels/ref/activations.c - reference SwiGLU, softmax and sigmoid (expf, f32; softmax
 *  sums in double).                                                                  */
#include <math.h>

#include "kernels/ref/ref.h"

int tr_ref_swiglu(float *y, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        y[i] = g / (1.0f + expf(-g)) * up[i];
    }
    return TR_OK;
}

int tr_ref_softmax(float *x, int32_t rows, int32_t n) {
    for (int32_t r = 0; r < rows; r++) {
        float *v = x + (size_t)r * n;
        float mx = v[0];
        for (int32_t i = 1; i < n; i++) mx = v[i] > mx ? v[i] : mx;
        double sum = 0;
        for (int32_t i = 0; i < n; i++) {
            v[i] = expf(v[i] - mx);
            sum += v[i];
        }
        float inv = (float)(1.0 / sum);
        for (int32_t i = 0; i < n; i++) v[i] *= inv;
    }
    return TR_OK;
}

int tr_ref_sigmoid(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
    return TR_OK;
}
