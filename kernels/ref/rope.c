/*  kernels/ref/rope.c - reference rotary embedding. For pair i of a head (i < R/2) at
 *  position p, angle = p' * inv_freq[i] with p' = p (or p / factor for linear scaling), and
 *  (a, b) -> (a cos - b sin, b cos + a sin). NEOX pairs (i, i + R/2); interleaved pairs
 *  (2i, 2i + 1). Dims past R are left alone.                                          */
#include <math.h>
#include <stdlib.h>

#include "kernels/ref/ref.h"

static void s_rotate(const tr_rope_t *rope, float *x, int32_t H, int32_t D, const float *cs,
                     const float *sn) {
    int32_t R = rope->rot_dim > 0 ? rope->rot_dim : D;
    for (int32_t h = 0; h < H; h++) {
        float *v = x + (size_t)h * D;
        for (int32_t i = 0; i < R / 2; i++) {
            int32_t i0 = rope->layout == TR_ROPE_NEOX ? i : 2 * i;
            int32_t i1 = rope->layout == TR_ROPE_NEOX ? i + R / 2 : 2 * i + 1;
            float a = v[i0], b = v[i1];
            v[i0] = a * cs[i] - b * sn[i];
            v[i1] = b * cs[i] + a * sn[i];
        }
    }
}

int tr_ref_rope(const tr_rope_t *rope, float *q, int32_t Hq, float *k, int32_t Hk,
                const int32_t *pos, int32_t T, int32_t D) {
    float *buf = malloc((size_t)D * 3 * sizeof(float));
    if (!buf) return TR_ENOMEM;
    float *inv = buf, *cs = buf + D, *sn = buf + 2 * D;
    tr_rope_inv_freq(rope, D, inv);
    int32_t R = rope->rot_dim > 0 ? rope->rot_dim : D;
    for (int32_t t = 0; t < T; t++) {
        float p = (float)pos[t];
        if (rope->scaling == TR_ROPE_SCALING_LINEAR) p = p / rope->factor;
        for (int32_t i = 0; i < R / 2; i++) {
            float a = p * inv[i];
            cs[i] = cosf(a);
            sn[i] = sinf(a);
        }
        s_rotate(rope, q + (size_t)t * Hq * D, Hq, D, cs, sn);
        if (k) s_rotate(rope, k + (size_t)t * Hk * D, Hk, D, cs, sn);
    }
    free(buf);
    return TR_OK;
}
