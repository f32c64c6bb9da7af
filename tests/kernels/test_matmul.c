/*  tests/kernels/test_matmul.c - CPU matmul (GEMV, multi-row GEMV and GEMM paths, every
 *  dtype, every SIMD level) against kernels/ref/matmul.c over odd shapes, with bias and the
 *  accumulate flag, by NMSE against the threshold of the dtype in kernels/dtypes.def.  */
#include "tests/kernels/kernel_test.h"

static const double s_nmse[] = {
#define TR_DTYPE(E, n, be, bb, nmse) nmse,
#include "kernels/dtypes.def"
#undef TR_DTYPE
};

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    static const int32_t Ms[] = {1, 2, 3, 5, 16, 17, 40};
    static const int32_t Ns[] = {1, 7, 33, 130};
    static const int32_t Ks[] = {32, 96, 288, 1, 7, 300};
    for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) {
        int32_t blk = tr_dtype_block_elems(dt);
        for (size_t ki = 0; ki < TR_ARRAY_LEN(Ks); ki++) {
            int32_t K = Ks[ki];
            if (K % blk) continue;
            for (size_t ni = 0; ni < TR_ARRAY_LEN(Ns); ni++) {
                int32_t N = Ns[ni];
                float *wf = kt_rand((size_t)N * K, -1, 1);
                void *w = kt_quantize(ref, dt, wf, (int64_t)N * K);
                float *bias = kt_rand(N, -1, 1);
                for (size_t mi = 0; mi < TR_ARRAY_LEN(Ms); mi++) {
                    int32_t M = Ms[mi];
                    float *x = kt_rand((size_t)M * K, -1, 1);
                    float *y0 = kt_rand((size_t)M * N, -1, 1);
                    float *yr = malloc((size_t)M * N * 4), *yb = malloc((size_t)M * N * 4);
                    int acc = (int)(mi + ni) % 2, use_bias = (int)(ki + mi) % 2;
                    tr_matmul_params_t p = {.y = yr, .x = x, .w = w, .w_dtype = dt,
                                            .bias = use_bias ? bias : NULL, .M = M, .N = N,
                                            .K = K, .accumulate = acc};
                    memcpy(yr, y0, (size_t)M * N * 4);
                    tr_ops_matmul(ref, &p);
                    for (int b = 0; b < nb; b++) {
                        memcpy(yb, y0, (size_t)M * N * 4);
                        p.y = yb;
                        int rc = tr_ops_matmul(be[b].ops, &p);
                        double e = kt_nmse(yb, yr, (size_t)M * N);
                        if (rc != TR_OK || e > s_nmse[dt] || b == 0)
                            ok(rc == TR_OK && e <= s_nmse[dt],
                               "matmul %s %s M=%d N=%d K=%d acc=%d bias=%d nmse=%.2e",
                               be[b].label, tr_dtype_name(dt), M, N, K, acc, use_bias, e);
                    }
                    free(x), free(y0), free(yr), free(yb);
                }
                free(wf), free(w), free(bias);
            }
        }
    }
    /* a larger prefill-sized case per dtype: several K slices, many tasks */
    for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) {
        int32_t M = 77, N = 300, K = 576;
        float *wf = kt_rand((size_t)N * K, -1, 1), *x = kt_rand((size_t)M * K, -1, 1);
        void *w = kt_quantize(ref, dt, wf, (int64_t)N * K);
        float *yr = malloc((size_t)M * N * 4), *yb = malloc((size_t)M * N * 4);
        tr_matmul_params_t p = {.y = yr, .x = x, .w = w, .w_dtype = dt, .M = M, .N = N, .K = K};
        tr_ops_matmul(ref, &p);
        for (int b = 0; b < nb; b++) {
            p.y = yb;
            int rc = tr_ops_matmul(be[b].ops, &p);
            double e = kt_nmse(yb, yr, (size_t)M * N);
            ok(rc == TR_OK && e <= s_nmse[dt], "matmul %s %s M=%d N=%d K=%d nmse=%.2e",
               be[b].label, tr_dtype_name(dt), M, N, K, e);
        }
        free(wf), free(x), free(w), free(yr), free(yb);
    }
    /* multi-row GEMV (batched decode, 8 <= M <= 64) and its edges: M = 7 (GEMV), 65 (GEMM);
     * x tiles of every size, N not a multiple of the row group and spanning many tasks
     * (the next group's prefetch), K with vector tails and long enough for several lines */
    {
        static const int32_t mM[] = {7, 8, 9, 13, 24, 31, 64, 65};
        static const int32_t mN[] = {5, 131, 1030};
        static const int32_t mK[] = {64, 100, 1056};
        for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) {
            for (size_t ki = 0; ki < TR_ARRAY_LEN(mK); ki++) {
                int32_t K = mK[ki];
                if (K % tr_dtype_block_elems(dt)) continue;
                for (size_t ni = 0; ni < TR_ARRAY_LEN(mN); ni++) {
                    int32_t N = mN[ni];
                    float *wf = kt_rand((size_t)N * K, -1, 1), *bias = kt_rand(N, -1, 1);
                    void *w = kt_quantize(ref, dt, wf, (int64_t)N * K);
                    for (size_t mi = 0; mi < TR_ARRAY_LEN(mM); mi++) {
                        int32_t M = mM[mi];
                        float *x = kt_rand((size_t)M * K, -1, 1);
                        float *y0 = kt_rand((size_t)M * N, -1, 1);
                        float *yr = malloc((size_t)M * N * 4), *yb = malloc((size_t)M * N * 4);
                        int acc = (int)(mi + ki) % 2, use_bias = (int)(ni + mi) % 2;
                        tr_matmul_params_t p = {.y = yr, .x = x, .w = w, .w_dtype = dt,
                                                .bias = use_bias ? bias : NULL, .M = M, .N = N,
                                                .K = K, .accumulate = acc};
                        memcpy(yr, y0, (size_t)M * N * 4);
                        tr_ops_matmul(ref, &p);
                        for (int b = 0; b < nb; b++) {
                            memcpy(yb, y0, (size_t)M * N * 4);
                            p.y = yb;
                            int rc = tr_ops_matmul(be[b].ops, &p);
                            double e = kt_nmse(yb, yr, (size_t)M * N);
                            ok(rc == TR_OK && e <= s_nmse[dt],
                               "multi-row %s %s M=%d N=%d K=%d acc=%d bias=%d nmse=%.2e",
                               be[b].label, tr_dtype_name(dt), M, N, K, acc, use_bias, e);
                        }
                        free(x), free(y0), free(yr), free(yb);
                    }
                    free(wf), free(w), free(bias);
                }
            }
        }
    }
    /* batched: several independent matmuls (mixed dtypes, GEMV and GEMM sizes) in one call */
    {
        static const int32_t shape[][3] = {{1, 96, 64}, {1, 33, 64}, {3, 130, 288}, {40, 70, 96},
                                           {16, 37, 160}, {9, 130, 64}, {77, 20, 32}};
        enum { NS = 7 };
        tr_matmul_params_t pr[NS], pb[NS];
        float *ys[NS], *yb[NS];
        void *ws[NS];
        float *xs[NS];
        for (int i = 0; i < NS; i++) {
            int32_t M = shape[i][0], N = shape[i][1], K = shape[i][2];
            tr_dtype_t dt = (tr_dtype_t)(i % TR_DTYPE_COUNT);
            float *wf = kt_rand((size_t)N * K, -1, 1);
            ws[i] = kt_quantize(ref, dt, wf, (int64_t)N * K);
            free(wf);
            xs[i] = kt_rand((size_t)M * K, -1, 1);
            ys[i] = calloc((size_t)M * N, 4);
            yb[i] = calloc((size_t)M * N, 4);
            pr[i] = (tr_matmul_params_t){.y = ys[i], .x = xs[i], .w = ws[i], .w_dtype = dt,
                                         .M = M, .N = N, .K = K, .accumulate = i == 1};
            pb[i] = pr[i];
            pb[i].y = yb[i];
            tr_ops_matmul(ref, &pr[i]);
        }
        for (int b = 0; b < nb; b++) {
            for (int i = 0; i < NS; i++) memset(yb[i], 0, (size_t)shape[i][0] * shape[i][1] * 4);
            int rc = tr_ops_matmul_batch(be[b].ops, pb, NS);
            double e = 0;
            for (int i = 0; i < NS; i++)
                e += kt_nmse(yb[i], ys[i], (size_t)shape[i][0] * shape[i][1]);
            ok(rc == TR_OK && e < 1e-10, "matmul_batch %s: %d matmuls (GEMV, multi-row, GEMM),"
               " nmse %.2e", be[b].label, NS, e);
        }
        for (int i = 0; i < NS; i++) free(ys[i]), free(yb[i]), free(ws[i]), free(xs[i]);
    }
    /* argument checks */
    float y[4], x[4];
    tr_matmul_params_t bad = {.y = y, .x = x, .w = x, .w_dtype = TR_DTYPE_Q8_0, .M = 1, .N = 1,
                              .K = 4};
    ok(tr_ops_matmul(ref, &bad) == TR_EINVAL, "q8_0 with K not a multiple of 32 is TR_EINVAL");
    bad.w_dtype = TR_DTYPE_COUNT;
    ok(tr_ops_matmul(ref, &bad) == TR_EINVAL, "unknown dtype is TR_EINVAL");
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    ok(ref == NULL, "destroy nulls the pointer");
    return done_testing();
}
