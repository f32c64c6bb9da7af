/*  tests/kernels/test_rope.c - rotary embedding: CPU against kernels/ref/rope.c for both
 *  layouts, partial rotary dims, linear and Llama-3 scaling; and checks of the oracle that
 *  do not lean on it: rotation preserves each pair's norm, position 0 is the identity, the
 *  NEOX and interleaved layouts are the same rotation under the llama.cpp Q/K permutation,
 *  and Llama-3 inverse frequencies follow the published formula (computed here in double). */
#include "tests/kernels/kernel_test.h"

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    tr_rope_t ropes[] = {
        {.theta = 10000, .layout = TR_ROPE_NEOX},
        {.theta = 10000, .layout = TR_ROPE_INTERLEAVED},
        {.theta = 500000, .layout = TR_ROPE_NEOX, .scaling = TR_ROPE_SCALING_LLAMA3,
         .factor = 8, .low_freq_factor = 1, .high_freq_factor = 4, .original_max_pos = 64},
        {.theta = 10000, .layout = TR_ROPE_NEOX, .rot_dim = 16},
        {.theta = 1e6f, .layout = TR_ROPE_INTERLEAVED, .scaling = TR_ROPE_SCALING_LINEAR,
         .factor = 4},
    };
    for (size_t r = 0; r < TR_ARRAY_LEN(ropes); r++) {
        int32_t T = 37, Hq = 6, Hk = 2, D = 64;
        int32_t *pos = malloc(T * sizeof(int32_t));
        for (int32_t t = 0; t < T; t++) pos[t] = kt_int(5000);
        size_t nq = (size_t)T * Hq * D, nk = (size_t)T * Hk * D;
        float *q = kt_rand(nq, -1, 1), *k = kt_rand(nk, -1, 1);
        float *qr = malloc(nq * 4), *kr = malloc(nk * 4), *qb = malloc(nq * 4), *kb = malloc(nk * 4);
        memcpy(qr, q, nq * 4);
        memcpy(kr, k, nk * 4);
        tr_ops_rope(ref, &ropes[r], qr, Hq, kr, Hk, pos, T, D);
        for (int b = 0; b < nb; b++) {
            memcpy(qb, q, nq * 4);
            memcpy(kb, k, nk * 4);
            int rc = tr_ops_rope(be[b].ops, &ropes[r], qb, Hq, kb, Hk, pos, T, D);
            double e = kt_nmse(qb, qr, nq) + kt_nmse(kb, kr, nk);
            ok(rc == TR_OK && e < 1e-12, "rope %s config %zu nmse=%.2e", be[b].label, r, e);
        }
        free(pos), free(q), free(k), free(qr), free(kr), free(qb), free(kb);
    }
    /* norm preservation and identity at position 0 */
    {
        int32_t D = 32, pos[2] = {0, 123};
        float *q = kt_rand(2 * D, -1, 1), q0[64];
        memcpy(q0, q, 2 * D * 4);
        tr_ops_rope(ref, &ropes[0], q, 1, NULL, 0, pos, 2, D);
        int same = memcmp(q, q0, D * 4) == 0;
        double worst = 0;
        for (int i = 0; i < D / 2; i++) {
            double a = hypot(q0[D + i], q0[D + i + D / 2]), b = hypot(q[D + i], q[D + i + D / 2]);
            worst = fmax(worst, fabs(a - b));
        }
        ok(same && worst < 1e-5, "position 0 is the identity; pair norms kept (%.1e)", worst);
        free(q);
    }
    /* NEOX on x equals interleaved on P x, with P the llama.cpp permutation (i -> 2i,
     * i + D/2 -> 2i + 1 within a head) */
    {
        int32_t D = 16, H = 3, T = 4, pos[4] = {1, 7, 100, 2047};
        size_t n = (size_t)T * H * D;
        float *x = kt_rand(n, -1, 1), *xp = malloc(n * 4), *y = malloc(n * 4);
        for (size_t row = 0; row < (size_t)T * H; row++)
            for (int i = 0; i < D / 2; i++) {
                xp[row * D + 2 * i] = x[row * D + i];
                xp[row * D + 2 * i + 1] = x[row * D + i + D / 2];
            }
        tr_ops_rope(ref, &ropes[0], x, H, NULL, 0, pos, T, D);
        tr_ops_rope(ref, &ropes[1], xp, H, NULL, 0, pos, T, D);
        for (size_t row = 0; row < (size_t)T * H; row++)
            for (int i = 0; i < D / 2; i++) {
                y[row * D + i] = xp[row * D + 2 * i];
                y[row * D + i + D / 2] = xp[row * D + 2 * i + 1];
            }
        ok(memcmp(x, y, n * 4) == 0, "interleaved rope of permuted Q/K = permuted NEOX rope");
        free(x), free(xp), free(y);
    }
    /* Llama-3 frequencies against the formula */
    {
        tr_rope_t r = ropes[2];
        float inv[64];
        tr_rope_inv_freq(&r, 128, inv);
        double worst = 0;
        for (int i = 0; i < 64; i++) {
            double f = 1.0 / pow(r.theta, 2.0 * i / 128), wl = 2 * M_PI / f;
            double lo = r.original_max_pos / r.low_freq_factor, hi = r.original_max_pos / r.high_freq_factor;
            double want = wl < hi ? f : wl > lo ? f / r.factor
                : (1 - (r.original_max_pos / wl - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor)) * f / r.factor +
                  (r.original_max_pos / wl - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor) * f;
            worst = fmax(worst, fabs(inv[i] - want) / want);
        }
        ok(worst < 1e-6, "llama3 inverse frequencies follow the formula (rel err %.1e)", worst);
    }
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
