/*  tests/kernels/test_pack.c - tr_ops_pack_weights and the matmuls that read packed weights
 *  (the CPU backend's q8_0 GEMV, kernels/cpu/pack_q8_0.c) against kernels/ref/matmul.c on
 *  the GGUF weights: every SIMD level (AVX-512 also without VNNI), 1 and 3 threads, odd row
 *  counts (padding rows of the last 16-row group), K from one block up, M = 1..64 (the
 *  packed GEMV) and 65+ (GEMM, which ignores the packed copy), alone and in batches, x with
 *  zero, tiny, huge and NaN blocks; and batching invariance: a row of x gives bitwise the
 *  same output row whatever M and whichever rows share the call. */
#include "tests/kernels/kernel_test.h"

/* Packs w on `ops`, runs the matmul with and without the packed copy, compares with ref. */
static void s_check(tr_ops_t *ref, const kt_backend_t *be, const void *w, int32_t M,
                    int32_t N, int32_t K, int acc, int use_bias, int always_report) {
    float *x = kt_rand((size_t)M * K, -1, 1), *bias = kt_rand(N, -1, 1);
    float *y0 = kt_rand((size_t)M * N, -1, 1);
    float *yr = malloc((size_t)M * N * 4), *yb = malloc((size_t)M * N * 4);
    void *packed = NULL;
    int rc = tr_ops_pack_weights(be->ops, w, TR_DTYPE_Q8_0, N, K, &packed);
    tr_matmul_params_t p = {.y = yr, .x = x, .w = w, .w_dtype = TR_DTYPE_Q8_0,
                            .bias = use_bias ? bias : NULL, .M = M, .N = N, .K = K,
                            .accumulate = acc};
    memcpy(yr, y0, (size_t)M * N * 4);
    tr_ops_matmul(ref, &p);
    memcpy(yb, y0, (size_t)M * N * 4);
    p.y = yb;
    p.w_packed = packed;
    if (!rc) rc = tr_ops_matmul(be->ops, &p);
    double e = kt_nmse(yb, yr, (size_t)M * N);
    if (rc || !packed || e > 1e-10 || always_report)
        ok(rc == TR_OK && packed && e <= 1e-10, "packed q8_0 %s M=%d N=%d K=%d acc=%d bias=%d nmse=%.2e",
           be->label, M, N, K, acc, use_bias, e);
    tr_ops_free(be->ops, packed);
    free(x), free(bias), free(y0), free(yr), free(yb);
}

static void s_test_shapes(tr_ops_t *ref, const kt_backend_t *be, int nb) {
    static const int32_t Ms[] = {1, 2, 3, 4, 5, 7, 8, 17, 64, 65};
    static const int32_t Ns[] = {1, 7, 16, 17, 33, 130, 300};
    static const int32_t Ks[] = {32, 96, 288, 576};
    for (size_t ki = 0; ki < TR_ARRAY_LEN(Ks); ki++) {
        for (size_t ni = 0; ni < TR_ARRAY_LEN(Ns); ni++) {
            int32_t N = Ns[ni], K = Ks[ki];
            float *wf = kt_rand((size_t)N * K, -1, 1);
            void *w = kt_quantize(ref, TR_DTYPE_Q8_0, wf, (int64_t)N * K);
            for (size_t mi = 0; mi < TR_ARRAY_LEN(Ms); mi++)
                for (int b = 0; b < nb; b++)
                    s_check(ref, &be[b], w, Ms[mi], N, K, (int)(mi + ni) % 2, (int)(ki + mi) % 2,
                            mi == 0 && ni == TR_ARRAY_LEN(Ns) - 1);
            free(wf), free(w);
        }
    }
    /* larger: several tasks per thread, pairs of groups and a lone last group */
    int32_t N = 16 * 37 + 5, K = 1536;
    float *wf = kt_rand((size_t)N * K, -1, 1);
    void *w = kt_quantize(ref, TR_DTYPE_Q8_0, wf, (int64_t)N * K);
    for (int b = 0; b < nb; b++)
        for (int32_t M = 1; M <= 3; M++) s_check(ref, &be[b], w, M, N, K, 1, 1, 1);
    free(wf), free(w);
}

/* Batching invariance (decode of a request must not depend on its batch): y rows from
 * M = 64 rows of x at once are compared bit for bit with the same rows computed in calls of
 * M = 1 .. 64 rows, each call's rows a different slice of x, and with each row alone. */
static void s_test_invariance(tr_ops_t *ref, const kt_backend_t *be, int nb) {
    static const int32_t shape[][2] = {{33, 96}, {300, 576}};
    static const int32_t Ms[] = {1, 2, 3, 5, 7, 8, 9, 13, 16, 17, 31, 40, 64};
    enum { MX = 64 };
    for (size_t si = 0; si < TR_ARRAY_LEN(shape); si++) {
        const int32_t N = shape[si][0], K = shape[si][1];
        float *wf = kt_rand((size_t)N * K, -1, 1), *x = kt_rand((size_t)MX * K, -1, 1);
        void *w = kt_quantize(ref, TR_DTYPE_Q8_0, wf, (int64_t)N * K);
        float *yall = malloc((size_t)MX * N * 4), *y = malloc((size_t)MX * N * 4);
        for (int b = 0; b < nb; b++) {
            void *packed = NULL;
            tr_ops_pack_weights(be[b].ops, w, TR_DTYPE_Q8_0, N, K, &packed);
            tr_matmul_params_t p = {.y = yall, .x = x, .w = w, .w_packed = packed,
                                    .w_dtype = TR_DTYPE_Q8_0, .M = MX, .N = N, .K = K};
            int rc = tr_ops_matmul(be[b].ops, &p);
            int32_t diff = 0, calls = 0;
            for (size_t mi = 0; mi < TR_ARRAY_LEN(Ms); mi++) {
                /* rows [m0, m0 + M) of x, m0 moving so that each row meets other batches */
                for (int32_t m0 = 0; m0 + Ms[mi] <= MX; m0 += Ms[mi] + 3) {
                    p.y = y;
                    p.x = x + (size_t)m0 * K;
                    p.M = Ms[mi];
                    rc |= tr_ops_matmul(be[b].ops, &p);
                    diff += memcmp(y, yall + (size_t)m0 * N, (size_t)Ms[mi] * N * 4) != 0;
                    calls++;
                }
            }
            ok(rc == TR_OK && packed && diff == 0,
               "packed q8_0 %s N=%d K=%d: rows bitwise equal for M = 1..64 (%d of %d calls differ)",
               be[b].label, N, K, diff, calls);
            tr_ops_free(be[b].ops, packed);
        }
        free(wf), free(x), free(w), free(yall), free(y);
    }
}

/* x blocks the activation packing must get right: zeros, tiny and huge magnitudes, one
 * large outlier among small values; and a NaN, which must come out NaN. */
static void s_test_x(tr_ops_t *ref, const kt_backend_t *be, int nb) {
    const int32_t N = 40, K = 32 * 6;
    float *wf = kt_rand((size_t)N * K, -1, 1);
    void *w = kt_quantize(ref, TR_DTYPE_Q8_0, wf, (int64_t)N * K);
    float *x = kt_rand(K, -1, 1), *yr = malloc(N * 4), *yb = malloc(N * 4);
    for (int j = 0; j < 32; j++) x[j] = 0;                /* block 0: zeros */
    for (int j = 32; j < 64; j++) x[j] *= 1e-30f;         /* block 1: tiny */
    for (int j = 64; j < 96; j++) x[j] *= 1e30f;          /* block 2: huge */
    for (int j = 96; j < 128; j++) x[j] *= 1e-4f;         /* block 3: small ... */
    x[100] = 3.0f;                                        /* ... with one outlier */
    for (int b = 0; b < nb; b++) {
        void *packed = NULL;
        tr_ops_pack_weights(be[b].ops, w, TR_DTYPE_Q8_0, N, K, &packed);
        tr_matmul_params_t p = {.y = yr, .x = x, .w = w, .w_dtype = TR_DTYPE_Q8_0, .M = 1,
                                .N = N, .K = K};
        tr_ops_matmul(ref, &p);
        p.y = yb;
        p.w_packed = packed;
        int rc = tr_ops_matmul(be[b].ops, &p);
        double e = kt_nmse(yb, yr, N);
        ok(rc == TR_OK && e <= 1e-10, "packed q8_0 %s: zero, tiny, huge, outlier x blocks nmse=%.2e",
           be[b].label, e);
        x[150] = NAN;
        rc = tr_ops_matmul(be[b].ops, &p);
        int nans = 0;
        for (int32_t n = 0; n < N; n++) nans += isnan(yb[n]) != 0;
        ok(rc == TR_OK && nans == N, "packed q8_0 %s: a NaN in x gives NaN (%d of %d)",
           be[b].label, nans, N);
        x[150] = 0.5f;
        tr_ops_free(be[b].ops, packed);
    }
    free(wf), free(w), free(x), free(yr), free(yb);
}

/* q, k, v sharing x; gate and a plain bf16 GEMV; a batched-decode (M = 9) and a GEMM-sized
 * (M = 70) packed matmul in between */
static void s_test_batch(tr_ops_t *ref, const kt_backend_t *be, int nb) {
    static const int32_t shape[][3] = {{1, 96, 64}, {1, 33, 64}, {1, 17, 64}, {2, 130, 288},
                                       {9, 40, 96}, {70, 40, 96}, {1, 50, 96}};
    enum { NM = 7 };
    tr_matmul_params_t pr[NM], pb[NM];
    float *yr[NM], *yb[NM], *xs[NM];
    void *ws[NM];
    float *xshared = kt_rand(64, -1, 1);
    for (int i = 0; i < NM; i++) {
        int32_t M = shape[i][0], N = shape[i][1], K = shape[i][2];
        tr_dtype_t dt = i == NM - 1 ? TR_DTYPE_BF16 : TR_DTYPE_Q8_0;
        float *wf = kt_rand((size_t)N * K, -1, 1);
        ws[i] = kt_quantize(ref, dt, wf, (int64_t)N * K);
        free(wf);
        xs[i] = i < 3 ? xshared : kt_rand((size_t)M * K, -1, 1);
        yr[i] = calloc((size_t)M * N, 4);
        yb[i] = calloc((size_t)M * N, 4);
        pr[i] = (tr_matmul_params_t){.y = yr[i], .x = xs[i], .w = ws[i], .w_dtype = dt,
                                     .M = M, .N = N, .K = K, .accumulate = i == 1};
        tr_ops_matmul(ref, &pr[i]);
    }
    for (int b = 0; b < nb; b++) {
        void *packed[NM] = {0};
        for (int i = 0; i < NM; i++) {
            pb[i] = pr[i];
            pb[i].y = yb[i];
            memset(yb[i], 0, (size_t)shape[i][0] * shape[i][1] * 4);
            tr_ops_pack_weights(be[b].ops, ws[i], pb[i].w_dtype, pb[i].N, pb[i].K, &packed[i]);
            pb[i].w_packed = packed[i];
        }
        int rc = tr_ops_matmul_batch(be[b].ops, pb, NM);
        double e = 0;
        for (int i = 0; i < NM; i++) e += kt_nmse(yb[i], yr[i], (size_t)shape[i][0] * shape[i][1]);
        ok(rc == TR_OK && e < 1e-10 && packed[0] && !packed[NM - 1],
           "matmul_batch %s: %d matmuls, packed and not, nmse %.2e", be[b].label, NM, e);
        for (int i = 0; i < NM; i++) tr_ops_free(be[b].ops, packed[i]);
    }
    for (int i = 0; i < NM; i++) {
        free(yr[i]), free(yb[i]), free(ws[i]);
        if (i >= 3) free(xs[i]);
    }
    free(xshared);
}

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    /* the hook: ref keeps GGUF q8_0; nothing to pack for plain dtypes; bad arguments */
    float w[64] = {0};
    void *packed = (void *)w;
    ok(tr_ops_pack_weights(ref, w, TR_DTYPE_Q8_0, 1, 32, &packed) == TR_OK && packed == NULL,
       "ref packs nothing");
    packed = (void *)w;
    ok(tr_ops_pack_weights(be[0].ops, w, TR_DTYPE_F32, 2, 32, &packed) == TR_OK && !packed,
       "cpu packs nothing for f32");
    ok(tr_ops_pack_weights(be[0].ops, w, TR_DTYPE_Q8_0, 1, 33, &packed) == TR_EINVAL,
       "q8_0 with 33 columns is TR_EINVAL");
    s_test_shapes(ref, be, nb);
    s_test_x(ref, be, nb);
    s_test_batch(ref, be, nb);
    s_test_invariance(ref, be, nb);
    kt_backends_free(be, nb);
    /* AVX-512 without VNNI (vpmaddwd + vpaddd), on a machine that has VNNI */
    if (tr_simd_supported(TR_SIMD_AVX512)) {
        setenv("TROUPE_NO_VNNI", "1", 1);
        kt_backend_t nv[2];
        for (int t = 0; t < 2; t++) {
            tr_ops_cpu_opts_t o = {.n_threads = 1 + 2 * t, .simd = TR_SIMD_AVX512};
            nv[t].ops = tr_ops_cpu_new(&o);
            snprintf(nv[t].label, sizeof(nv[t].label), "cpu-avx512-novnni/%dt", 1 + 2 * t);
        }
        unsetenv("TROUPE_NO_VNNI");
        s_test_shapes(ref, nv, 2);
        s_test_x(ref, nv, 2);
        s_test_batch(ref, nv, 2);
        s_test_invariance(ref, nv, 2);
        kt_backends_free(nv, 2);
    }
    tr_ops_destroy(&ref);
    return done_testing();
}
