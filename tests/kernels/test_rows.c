/*  tests/kernels/test_rows.c - CPU add_rows (residual and scaled scatter), gather_rows and
 *  embedding lookup in every dtype against kernels/ref/rows.c (exact: no arithmetic beyond
 *  one multiply-add or a dequantization).                                           */
#include "tests/kernels/kernel_test.h"

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    int32_t rows = 300, D = 96, V = 1000;
    size_t n = (size_t)rows * D;
    float *x = kt_rand(n, -1, 1), *y0 = kt_rand((size_t)V * D, -1, 1), *s = kt_rand(rows, 0, 1);
    int32_t *idx = malloc(rows * sizeof(int32_t)), *perm = malloc(V * sizeof(int32_t));
    for (int32_t i = 0; i < V; i++) perm[i] = i;
    for (int32_t i = V - 1; i > 0; i--) {
        int32_t j = kt_int(i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    for (int32_t i = 0; i < rows; i++) idx[i] = perm[i];   /* distinct rows */
    float *yr = malloc((size_t)V * D * 4), *yb = malloc((size_t)V * D * 4);
    for (int mode = 0; mode < 3; mode++) {
        const int32_t *ix = mode == 0 ? NULL : idx;
        const float *sc = mode == 2 ? s : NULL;
        memcpy(yr, y0, (size_t)V * D * 4);
        tr_ops_add_rows(ref, yr, x, ix, sc, rows, D);
        for (int b = 0; b < nb; b++) {
            memcpy(yb, y0, (size_t)V * D * 4);
            tr_ops_add_rows(be[b].ops, yb, x, ix, sc, rows, D);
            ok(memcmp(yb, yr, (size_t)V * D * 4) == 0, "add_rows %s mode %d", be[b].label, mode);
        }
    }
    tr_ops_gather_rows(ref, yr, y0, idx, rows, D);
    for (int b = 0; b < nb; b++) {
        tr_ops_gather_rows(be[b].ops, yb, y0, idx, rows, D);
        ok(memcmp(yb, yr, n * 4) == 0, "gather_rows %s", be[b].label);
    }
    for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) {
        void *table = kt_quantize(ref, dt, y0, (int64_t)V * D);
        tr_ops_embed(ref, yr, table, dt, idx, rows, D, V);
        for (int b = 0; b < nb; b++) {
            tr_ops_embed(be[b].ops, yb, table, dt, idx, rows, D, V);
            ok(memcmp(yb, yr, n * 4) == 0, "embed %s %s", be[b].label, tr_dtype_name(dt));
        }
        free(table);
    }
    int32_t bad_id = V;
    ok(tr_ops_embed(ref, yr, y0, TR_DTYPE_F32, &bad_id, 1, D, V) == TR_EINVAL &&
           (nb == 0 || tr_ops_embed(be[0].ops, yr, y0, TR_DTYPE_F32, &bad_id, 1, D, V) == TR_EINVAL),
       "token id >= V is TR_EINVAL");
    free(x), free(y0), free(s), free(idx), free(perm), free(yr), free(yb);
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
