/*  bench/matmul.c - CPU matmul kernels: GEMV (decode) GB/s of weight streamed and GEMM
 *  (prefill, batched decode) GFLOP/s per weight dtype, for a few transformer-shaped
 *  problems, against the machine's read bandwidth and FMA peak (bench/bench_util.h).
 *
 *      build/bin/bench_matmul [threads] [--m 1,16,128,512] [--shape 2048x2048,576x576]
 *                             [--dtype f32,q8_0] [--reps 10]
 *
 *  A shape is NxK (output features x input features). q8_0 GEMVs (M <= 64) run twice: on
 *  the GGUF blocks and on the backend's repacked copy (tr_ops_pack_weights), marked
 *  "packed".
 *  GEMV sizes (M < 8) cycle through enough copies of the weights to pass 256 MB, so the
 *  weights come from memory, as in a decode step, not from the last-level cache (a 2048 x
 *  8192 q8_0 matrix is 18 MB). Times are the median of --reps runs after a warm-up.     */
#include <string.h>

#include "bench/bench_util.h"
#include "kernels/ops.h"

#define S_GEMV_BYTES (256u << 20)

/* Median time of one matmul, the weights taken from copies[r % n_copies] for run r (and
 * the packed weights from packed[r % n_copies] when packed is not NULL). */
static double s_time(tr_ops_t *ops, tr_matmul_params_t *p, void **copies, void **packed,
                     int n_copies, int reps) {
    p->w = copies[0];
    p->w_packed = packed ? packed[0] : NULL;
    tr_ops_matmul(ops, p);   /* warm */
    double *t = malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++) {
        p->w = copies[(r + 1) % n_copies];
        p->w_packed = packed ? packed[(r + 1) % n_copies] : NULL;
        double t0 = bench_now();
        tr_ops_matmul(ops, p);
        t[r] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), bench_cmp_double);
    double med = t[reps / 2];
    free(t);
    return med;
}

int main(int argc, char **argv) {
    int threads = bench_cores(), reps = 0;
    int32_t shapes[16][2] = {{2048, 2048}, {8192, 2048}, {2048, 8192}, {1536, 576}};
    int32_t Ms[16] = {1, 16, 128, 512};
    int n_shapes = 4, n_m = 4, want_dt[TR_DTYPE_COUNT];
    for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) want_dt[dt] = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(argv[i], "--m")) {
            n_m = 0;
            for (const char *s = v; *s && n_m < 16; s = strchr(s, ',') ? strchr(s, ',') + 1 : "")
                Ms[n_m++] = atoi(s);
            i++;
        } else if (!strcmp(argv[i], "--shape")) {
            n_shapes = 0;
            for (const char *s = v; *s && n_shapes < 16;
                 s = strchr(s, ',') ? strchr(s, ',') + 1 : "") {
                shapes[n_shapes][0] = atoi(s);
                shapes[n_shapes][1] = strchr(s, 'x') ? atoi(strchr(s, 'x') + 1) : 0;
                n_shapes++;
            }
            i++;
        } else if (!strcmp(argv[i], "--reps")) {
            reps = atoi(v);
            i++;
        } else if (!strcmp(argv[i], "--dtype")) {
            for (int dt = 0; dt < TR_DTYPE_COUNT; dt++)
                want_dt[dt] = strstr(v, tr_dtype_name(dt)) != NULL;
            i++;
        } else {
            threads = atoi(argv[i]);
        }
    }
    int32_t max_m = 1;
    for (int i = 0; i < n_m; i++) max_m = Ms[i] > max_m ? Ms[i] : max_m;
    tr_ops_cpu_opts_t o = {.n_threads = threads};
    tr_ops_t *ops = tr_ops_cpu_new(&o);
    printf("backend %s, %d threads\n", tr_ops_name(ops), threads);
    double bw = bench_membw(512u << 20, threads, 4), peak = bench_fma_peak(threads);
    printf("read bandwidth %.1f GB/s, FMA peak %.1f GFLOP/s\n", bw, peak);
    for (int s = 0; s < n_shapes; s++) {
        int32_t N = shapes[s][0], K = shapes[s][1];
        float *wf = malloc((size_t)N * K * 4);
        for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = (float)((i * 2654435761u) % 1000) / 1000 - 0.5f;
        float *x = malloc((size_t)max_m * K * 4), *y = malloc((size_t)max_m * N * 4);
        for (size_t i = 0; i < (size_t)max_m * K; i++) x[i] = (float)(i % 77) / 77 - 0.5f;
        for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) {
            if (!want_dt[dt] || K % tr_dtype_block_elems(dt)) continue;
            size_t wbytes = tr_dtype_row_bytes(dt, (int64_t)N * K);
            int n_copies = (int)((S_GEMV_BYTES + wbytes - 1) / wbytes);
            void **copies = malloc((size_t)n_copies * sizeof(void *));
            copies[0] = malloc(wbytes);
            tr_ops_quantize(ops, copies[0], dt, wf, (int64_t)N * K);
            for (int c = 1; c < n_copies; c++) {
                copies[c] = malloc(wbytes);
                memcpy(copies[c], copies[0], wbytes);
            }
            /* the backend's repacked copies (tr_ops_pack_weights: CPU q8_0), read by GEMVs */
            void **packed = calloc((size_t)n_copies, sizeof(void *));
            for (int c = 0; c < n_copies; c++)
                tr_ops_pack_weights(ops, copies[c], dt, N, K, &packed[c]);
            for (int mi = 0; mi < n_m; mi++) {
                int32_t M = Ms[mi];
                for (int pk = 0; pk < (packed[0] && M <= 64 ? 2 : 1); pk++) {
                    tr_matmul_params_t p = {.y = y, .x = x, .w_dtype = dt, .M = M, .N = N, .K = K};
                    int r = reps ? reps : M >= 128 ? 3 : 15;
                    double t = s_time(ops, &p, copies, pk ? packed : NULL, M < 8 ? n_copies : 1, r);
                    double gf = 2.0 * M * N * K / t / 1e9, gbs = wbytes / t / 1e9;
                    printf("N=%5d K=%5d %-5s%s M=%3d: %7.3f ms  %6.1f GFLOP/s (%3.0f%% peak)  %6.1f GB/s (%3.0f%% bw)\n",
                           N, K, tr_dtype_name(dt), pk ? " packed" : "", M, t * 1e3, gf,
                           100 * gf / peak, gbs, 100 * gbs / bw);
                }
            }
            for (int c = 0; c < n_copies; c++) free(copies[c]), tr_ops_free(ops, packed[c]);
            free(copies), free(packed);
        }
        free(wf), free(x), free(y);
    }
    tr_ops_destroy(&ops);
    return 0;
}
