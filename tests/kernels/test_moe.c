/*  tests/kernels/test_moe.c - MoE router: CPU against kernels/ref/moe.c (identical ids,
 *  weights within 1e-6), and the oracle against a hand-computed case: softmax, top 2,
 *  with and without renormalisation, ties to the lower expert id.                   */
#include "tests/kernels/kernel_test.h"

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    float l[4] = {1.0f, 3.0f, 2.0f, 3.0f};
    int32_t ids[2];
    float w[2];
    tr_ops_moe_route(ref, ids, w, l, 1, 4, 2, 0);
    double z = exp(1) + 2 * exp(3) + exp(2);
    ok(ids[0] == 1 && ids[1] == 3, "top-2 of (1,3,2,3) is experts 1 then 3 (tie: lower id first)");
    ok(fabs(w[0] - exp(3) / z) < 1e-6 && fabs(w[1] - exp(3) / z) < 1e-6, "weights are softmax probabilities");
    tr_ops_moe_route(ref, ids, w, l, 1, 4, 2, 1);
    ok(fabs(w[0] - 0.5) < 1e-6 && fabs(w[1] - 0.5) < 1e-6, "renormalised weights sum to 1");
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    static const int32_t cfg[][3] = {{8, 2, 1}, {60, 4, 0}, {64, 8, 0}, {3, 3, 1}, {128, 1, 0}};
    for (size_t c = 0; c < TR_ARRAY_LEN(cfg); c++) {
        int32_t T = 333, E = cfg[c][0], k = cfg[c][1], rn = cfg[c][2];
        float *lg = kt_rand((size_t)T * E, -3, 3);
        for (int32_t i = 0; i < T * E; i += 7) lg[i] = lg[i + 1 < T * E ? i + 1 : i];   /* ties */
        int32_t *ir = malloc((size_t)T * k * 4), *ib = malloc((size_t)T * k * 4);
        float *wr = malloc((size_t)T * k * 4), *wb = malloc((size_t)T * k * 4);
        tr_ops_moe_route(ref, ir, wr, lg, T, E, k, rn);
        for (int b = 0; b < nb; b++) {
            tr_ops_moe_route(be[b].ops, ib, wb, lg, T, E, k, rn);
            double e = kt_nmse(wb, wr, (size_t)T * k);
            ok(memcmp(ib, ir, (size_t)T * k * 4) == 0 && e < 1e-12,
               "moe_route %s E=%d k=%d renorm=%d nmse=%.1e", be[b].label, E, k, rn, e);
        }
        free(lg), free(ir), free(ib), free(wr), free(wb);
    }
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
