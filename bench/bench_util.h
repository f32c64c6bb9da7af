/*  bench/bench_util.h - shared pieces of the benchmarks: a monotonic clock, the machine's
 *  read bandwidth (bench_membw: every core streams its slice of a buffer far larger than
 *  the last-level cache, summing it with the widest vector loads the CPU has; best of
 *  several passes; bench_bw_t keeps such a reader open so that a benchmark can time a read
 *  of the same bytes beside each step it measures) and its FMA peak (bench_fma_peak: every core runs independent chains
 *  of vector FMAs; FLOP = 2 per lane per FMA). Header-only; each benchmark is one program.
 *  The figures are what forward.c compares its decode GB/s and prefill GFLOP/s against. */
#ifndef TR_BENCH_UTIL_H
#define TR_BENCH_UTIL_H

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "1,16,64" -> out[0..n); returns n (at most max). */
static inline int bench_list(const char *s, int32_t *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        s = strchr(s, ',');
        if (!s) break;
        s++;
    }
    return n;
}

/* qsort order of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline int bench_cores(void) {
    const char *env = getenv("TROUPE_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---- read bandwidth ---- */

__attribute__((target("avx512f"))) static float bench_sum_avx512(const float *p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) static float bench_sum_avx2(const float *p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    float t[8];
    _mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

static float bench_sum(const float *p, size_t n) {
    return __builtin_cpu_supports("avx512f") ? bench_sum_avx512(p, n) : bench_sum_avx2(p, n);
}

/* A streaming reader: `threads` threads that, per pass, each sum their share of the next
 * bytes of a ring buffer far larger than the last-level cache. A pass starts where the
 * last one stopped, so passes shorter than the ring never find their lines in cache. */
typedef struct bench_bw bench_bw_t;

typedef struct {
    bench_bw_t *bw;
    int t;
} bench_bw_arg_t;

struct bench_bw {
    float *buf;
    size_t n;              /* floats in buf, a multiple of 64 */
    size_t pos, len;       /* this pass: floats [pos, pos + len) modulo n */
    int threads, stop;
    pthread_t *th;
    bench_bw_arg_t *args;
    pthread_barrier_t bar;
    volatile float sink;
};

static void *bench_bw_thread(void *argp) {
    bench_bw_arg_t *a = argp;
    bench_bw_t *bw = a->bw;
    for (;;) {
        pthread_barrier_wait(&bw->bar);
        if (bw->stop) break;
        /* this thread's share, in whole 64-float lines, cut where the ring wraps */
        size_t share = (bw->len / 64 + bw->threads - 1) / bw->threads * 64;
        size_t lo = share * a->t, hi = lo + share < bw->len ? lo + share : bw->len;
        float s = 0;
        for (size_t i = lo; i < hi;) {
            size_t at = (bw->pos + i) % bw->n, run = bw->n - at < hi - i ? bw->n - at : hi - i;
            s += bench_sum(bw->buf + at, run);
            i += run;
        }
        if (s == -1.0f) bw->sink = s;   /* the sums are used */
        pthread_barrier_wait(&bw->bar);
    }
    return NULL;
}

/* Allocates and faults in a ring of `bytes` and starts its threads; 0, or -1. */
static inline int bench_bw_open(bench_bw_t *bw, size_t bytes, int threads) {
    memset(bw, 0, sizeof(*bw));
    bw->n = bytes / sizeof(float) / 64 * 64;
    bw->threads = threads;
    if (!bw->n || posix_memalign((void **)&bw->buf, 64, bw->n * sizeof(float))) return -1;
    for (size_t i = 0; i < bw->n; i++) bw->buf[i] = (float)(i & 1023);   /* fault pages in */
    pthread_barrier_init(&bw->bar, NULL, (unsigned)threads + 1);
    bw->th = calloc(threads, sizeof(pthread_t));
    bw->args = calloc(threads, sizeof(bench_bw_arg_t));
    for (int t = 0; t < threads; t++) {
        bw->args[t] = (bench_bw_arg_t){bw, t};
        pthread_create(&bw->th[t], NULL, bench_bw_thread, &bw->args[t]);
    }
    return 0;
}

/* Seconds the threads take to read the ring's next `bytes` (wrapping as often as needed). */
static inline double bench_bw_pass(bench_bw_t *bw, size_t bytes) {
    bw->len = bytes / sizeof(float) / 64 * 64;
    pthread_barrier_wait(&bw->bar);
    double t0 = bench_now();
    pthread_barrier_wait(&bw->bar);
    double dt = bench_now() - t0;
    bw->pos = (bw->pos + bw->len) % bw->n;
    return dt;
}

static inline void bench_bw_close(bench_bw_t *bw) {
    if (!bw->buf) return;
    bw->stop = 1;
    pthread_barrier_wait(&bw->bar);
    for (int t = 0; t < bw->threads; t++) pthread_join(bw->th[t], NULL);
    pthread_barrier_destroy(&bw->bar);
    free(bw->th), free(bw->args), free(bw->buf);
    memset(bw, 0, sizeof(*bw));
}

/* Best read bandwidth in GB/s over `passes` passes of a `bytes` buffer with `threads`. */
static inline double bench_membw(size_t bytes, int threads, int passes) {
    bench_bw_t bw;
    if (bench_bw_open(&bw, bytes, threads)) return 0;
    double best = 0;
    for (int i = 0; i < passes; i++) {
        double gbs = bw.n * sizeof(float) / bench_bw_pass(&bw, bw.n * sizeof(float)) / 1e9;
        best = gbs > best ? gbs : best;
    }
    bench_bw_close(&bw);
    return best;
}

/* ---- FMA peak ---- */

typedef struct {
    long iters;
    float out;
    pthread_barrier_t *bar;
} bench_fma_arg_t;

#define BENCH_FMA_CHAINS 12   /* independent accumulators: more than latency x throughput */

__attribute__((target("avx512f"))) static float bench_fma_avx512(long iters) {
    __m512 acc[BENCH_FMA_CHAINS], a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
    for (int i = 0; i < BENCH_FMA_CHAINS; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < BENCH_FMA_CHAINS; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    }
    for (int i = 1; i < BENCH_FMA_CHAINS; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma"))) static float bench_fma_avx2(long iters) {
    __m256 acc[BENCH_FMA_CHAINS], a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < BENCH_FMA_CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < BENCH_FMA_CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    float t[8];
    for (int i = 1; i < BENCH_FMA_CHAINS; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(t, acc[0]);
    return t[0] + t[7];
}

static int bench_fma_width(void) {
    return __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("fma") ? 8 : 0;
}

static void *bench_fma_thread(void *argp) {
    bench_fma_arg_t *a = argp;
    pthread_barrier_wait(a->bar);
    a->out = bench_fma_width() == 16 ? bench_fma_avx512(a->iters) : bench_fma_avx2(a->iters);
    pthread_barrier_wait(a->bar);
    return NULL;
}

/* Best f32 FMA throughput in GFLOP/s of `threads` cores (best of 3 runs of ~0.3 s). */
static inline double bench_fma_peak(int threads) {
    int w = bench_fma_width();
    if (!w) return 0;
    double best = 0;
    long iters = 20 * 1000 * 1000;
    for (int run = 0; run < 3; run++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
        pthread_t *th = calloc(threads, sizeof(pthread_t));
        bench_fma_arg_t *args = calloc(threads, sizeof(bench_fma_arg_t));
        for (int t = 0; t < threads; t++) {
            args[t] = (bench_fma_arg_t){iters, 0, &bar};
            pthread_create(&th[t], NULL, bench_fma_thread, &args[t]);
        }
        pthread_barrier_wait(&bar);
        double t0 = bench_now();
        pthread_barrier_wait(&bar);
        double dt = bench_now() - t0;
        for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&bar);
        double gf = 2.0 * w * BENCH_FMA_CHAINS * (double)iters * threads / dt / 1e9;
        best = gf > best ? gf : best;
        free(th), free(args);
    }
    return best;
}

/* "2026-11-23 ..., <model name> (<n> cores)" for the reports */
static inline void bench_cpu_name(char *out, size_t n) {
    snprintf(out, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                snprintf(out, n, "%s", c + 2);
                out[strcspn(out, "\n")] = 0;
            }
            break;
        }
    }
    fclose(f);
}

#endif
