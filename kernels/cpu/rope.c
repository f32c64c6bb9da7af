/*  kernels/cpu/rope.c - CPU rotary embedding. Oracle: kernels/ref/rope.c.
 *  Tokens are split over the pool; each task computes a token's cos/sin once (the same
 *  f32 angle = position * inv_freq[i] as the oracle) and rotates all of its q and k heads.
 *  The rotation is cheap next to cosf/sinf, so it stays scalar.                        */
#include <math.h>

#include "kernels/cpu/cpu_impl.h"

#define TR_ROPE_MAX_PAIRS 512   /* head_dim up to 1024 */

typedef struct {
    const tr_rope_t *rope;
    float *q, *k;
    int32_t Hq, Hk, D, R, T, per_task;
    const int32_t *pos;
    float inv[TR_ROPE_MAX_PAIRS];
} s_rope_t;

static void s_rotate(const s_rope_t *a, float *x, int32_t H, const float *cs, const float *sn) {
    const int32_t D = a->D, R = a->R, neox = a->rope->layout == TR_ROPE_NEOX;
    for (int32_t h = 0; h < H; h++) {
        float *v = x + (size_t)h * D;
        for (int32_t i = 0; i < R / 2; i++) {
            int32_t i0 = neox ? i : 2 * i, i1 = neox ? i + R / 2 : 2 * i + 1;
            float x0 = v[i0], x1 = v[i1];
            v[i0] = x0 * cs[i] - x1 * sn[i];
            v[i1] = x1 * cs[i] + x0 * sn[i];
        }
    }
}

static void s_rope_task(void *ctx, int32_t task, int32_t thread) {
    const s_rope_t *a = ctx;
    float cs[TR_ROPE_MAX_PAIRS], sn[TR_ROPE_MAX_PAIRS];
    for (int32_t t = task * a->per_task; t < (task + 1) * a->per_task && t < a->T; t++) {
        float p = (float)a->pos[t];
        if (a->rope->scaling == TR_ROPE_SCALING_LINEAR) p = p / a->rope->factor;
        for (int32_t i = 0; i < a->R / 2; i++) {
            float ang = p * a->inv[i];
            cs[i] = cosf(ang);
            sn[i] = sinf(ang);
        }
        s_rotate(a, a->q + (size_t)t * a->Hq * a->D, a->Hq, cs, sn);
        if (a->k) s_rotate(a, a->k + (size_t)t * a->Hk * a->D, a->Hk, cs, sn);
    }
}

int tr_cpu_rope(tr_ops_t *ops, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                int32_t Hk, const int32_t *pos, int32_t T, int32_t D) {
    s_rope_t a = {.rope = rope, .q = q, .k = k, .Hq = Hq, .Hk = Hk, .D = D, .T = T, .pos = pos};
    a.R = rope->rot_dim > 0 ? rope->rot_dim : D;
    if (a.R / 2 > TR_ROPE_MAX_PAIRS) return TR_EINVAL;
    tr_rope_inv_freq(rope, D, a.inv);
    a.per_task = 8;
    tr_pool_run(TR_CPU(ops)->pool, (T + a.per_task - 1) / a.per_task, s_rope_task, &a);
    return TR_OK;
}
