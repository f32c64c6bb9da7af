/*  bench/matmul.c - CPU matmul kernels: GEMV (decode) GB/s of weight streamed and GEMM
 *  (prefill, batched decode) GFLOP/s per weight dtype, for a few transformer-shaped
 *  problems, against the machine's read bandwidth and FMA peak (bench/bench_util.h).
 *
 *      build/bin/bench_matmul [threads] [--m 1,16,128,512] [--shape 2048x2048,576x576]
 *                             [--dtype f32,q8_0]
 *
 *  A shape is NxK (output features x input features).                               */
#include "bench/bench_util.h"
#include "kernels/ops.h"

static double s_time(tr_ops_t *ops, tr_matmul_params_t *p, int reps) {
    tr_ops_matmul(ops, p);   /* warm */
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        tr_ops_matmul(ops, p);
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = bench_cores();
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
            void *w = malloc(tr_dtype_row_bytes(dt, (int64_t)N * K));
            tr_ops_quantize(ops, w, dt, wf, (int64_t)N * K);
            size_t wbytes = tr_dtype_row_bytes(dt, (int64_t)N * K);
            for (int mi = 0; mi < n_m; mi++) {
                int32_t M = Ms[mi];
                tr_matmul_params_t p = {.y = y, .x = x, .w = w, .w_dtype = dt, .M = M, .N = N, .K = K};
                double t = s_time(ops, &p, M >= 128 ? 3 : 10);
                double gf = 2.0 * M * N * K / t / 1e9, gbs = wbytes / t / 1e9;
                printf("N=%5d K=%5d %-5s M=%3d: %7.3f ms  %6.1f GFLOP/s (%3.0f%% peak)  %6.1f GB/s (%3.0f%% bw)\n",
                       N, K, tr_dtype_name(dt), M, t * 1e3, gf, 100 * gf / peak, gbs, 100 * gbs / bw);
            }
            free(w);
        }
        free(wf), free(x), free(y);
    }
    tr_ops_destroy(&ops);
    return 0;
}
