/*  tests/kernels/test_norm.c - CPU RMSNorm, SwiGLU, softmax, sigmoid against kernels/ref/
 *  over odd sizes (NMSE 1e-10: the SIMD exp is a polynomial), plus properties the oracle
 *  must have: softmax rows sum to 1, RMSNorm output has unit RMS with w = 1.         */
#include "tests/kernels/kernel_test.h"

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    static const int32_t Ts[] = {1, 3, 17, 200};
    static const int32_t Ds[] = {1, 7, 16, 33, 576, 3000};
    for (size_t ti = 0; ti < TR_ARRAY_LEN(Ts); ti++)
        for (size_t di = 0; di < TR_ARRAY_LEN(Ds); di++) {
            int32_t T = Ts[ti], D = Ds[di];
            size_t n = (size_t)T * D;
            float *x = kt_rand(n, -4, 4), *w = kt_rand(D, 0.5f, 1.5f), *u = kt_rand(n, -2, 2);
            float *yr = malloc(n * 4), *yb = malloc(n * 4);
            double e;
            tr_ops_rmsnorm(ref, yr, x, w, T, D, 1e-5f);
            for (int b = 0; b < nb; b++) {
                tr_ops_rmsnorm(be[b].ops, yb, x, w, T, D, 1e-5f);
                e = kt_nmse(yb, yr, n);
                ok(e < 1e-10, "rmsnorm %s T=%d D=%d nmse=%.2e", be[b].label, T, D, e);
            }
            tr_ops_swiglu(ref, yr, x, u, (int64_t)n);
            for (int b = 0; b < nb; b++) {
                tr_ops_swiglu(be[b].ops, yb, x, u, (int64_t)n);
                e = kt_nmse(yb, yr, n);
                ok(e < 1e-10, "swiglu %s n=%zu nmse=%.2e", be[b].label, n, e);
            }
            memcpy(yr, x, n * 4);
            tr_ops_softmax(ref, yr, T, D);
            for (int b = 0; b < nb; b++) {
                memcpy(yb, x, n * 4);
                tr_ops_softmax(be[b].ops, yb, T, D);
                e = kt_nmse(yb, yr, n);
                ok(e < 1e-10, "softmax %s T=%d D=%d nmse=%.2e", be[b].label, T, D, e);
            }
            memcpy(yr, x, n * 4);
            tr_ops_sigmoid(ref, yr, (int64_t)n);
            for (int b = 0; b < nb; b++) {
                memcpy(yb, x, n * 4);
                tr_ops_sigmoid(be[b].ops, yb, (int64_t)n);
                e = kt_nmse(yb, yr, n);
                ok(e < 1e-10, "sigmoid %s n=%zu nmse=%.2e", be[b].label, n, e);
            }
            free(x), free(w), free(u), free(yr), free(yb);
        }
    /* oracle properties */
    float x[5] = {1, 2, 3, 4, 1000}, ones[5] = {1, 1, 1, 1, 1}, y[5];
    tr_ops_softmax(ref, x, 1, 5);
    ok(fabsf(x[0] + x[1] + x[2] + x[3] + x[4] - 1) < 1e-6 && x[4] > 0.999f,
       "softmax sums to 1 and survives a large logit");
    float v[4] = {3, -3, 3, -3};
    tr_ops_rmsnorm(ref, y, v, ones, 1, 4, 0);
    ok(fabsf(y[0] - 1) < 1e-6 && fabsf(y[1] + 1) < 1e-6, "rmsnorm of (3,-3,3,-3) is (1,-1,1,-1)");
    float g[2] = {0, -100}, up[2] = {5, 5};
    tr_ops_swiglu(ref, y, g, up, 2);
    ok(y[0] == 0 && fabsf(y[1]) < 1e-30, "silu(0) = 0, silu(-100) ~ 0");
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
