/*  tests/kernels/kernel_test.h - shared helpers of the kernel tests.
 *
 *  Each test_<op>.c runs every backend instance in s_backends() (the CPU backend at every
 *  SIMD level the machine supports, with 1 and 3 threads so the pool runs with more threads
 *  than cores too) against the reference backend, comparing outputs by NMSE
 *  (sum (a - b)^2 / sum b^2, as ggml's test-backend-ops). A level the CPU lacks is a TAP
 *  skip. Random numbers come from a fixed-seed xorshift so failures reproduce.     */
#ifndef TR_TESTS_KERNEL_TEST_H
#define TR_TESTS_KERNEL_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/ops.h"
#include "tests/tap.h"

static uint64_t kt_rng = 0x9e3779b97f4a7c15ull;

static inline uint64_t kt_next(void) {
    kt_rng ^= kt_rng << 13;
    kt_rng ^= kt_rng >> 7;
    kt_rng ^= kt_rng << 17;
    return kt_rng;
}

/* uniform in [lo, hi) */
static inline float kt_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((kt_next() >> 40) * (1.0 / 16777216.0));
}

static inline int32_t kt_int(int32_t n) {
    return (int32_t)(kt_next() % (uint64_t)n);
}

static inline float *kt_rand(size_t n, float lo, float hi) {
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) p[i] = kt_uniform(lo, hi);
    return p;
}

static inline double kt_nmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? num / den : num;
}

typedef struct {
    tr_ops_t *ops;
    char label[48];
} kt_backend_t;

#define KT_MAX_BACKENDS 8

/* Fills out[] with the CPU backends to test; prints skips for missing levels. */
static inline int kt_backends(kt_backend_t *out) {
    int n = 0;
    static const int threads[] = {1, 3};
    for (int level = TR_SIMD_SCALAR; level <= TR_SIMD_AVX512; level++) {
        if (!tr_simd_supported(level)) {
            skip("cpu-%s: not supported by this CPU", tr_simd_name(level));
            continue;
        }
        for (int t = 0; t < 2; t++) {
            tr_ops_cpu_opts_t o = {.n_threads = threads[t], .simd = level};
            out[n].ops = tr_ops_cpu_new(&o);
            snprintf(out[n].label, sizeof(out[n].label), "cpu-%s/%dt", tr_simd_name(level),
                     threads[t]);
            if (!ok(out[n].ops != NULL, "create %s", out[n].label)) continue;
            n++;
        }
    }
    return n;
}

static inline void kt_backends_free(kt_backend_t *b, int n) {
    for (int i = 0; i < n; i++) tr_ops_destroy(&b[i].ops);
}

/* Quantizes n f32 to dtype with the reference backend; returns a malloc'd buffer. */
static inline void *kt_quantize(tr_ops_t *ref, tr_dtype_t dt, const float *x, int64_t n) {
    void *q = malloc(tr_dtype_row_bytes(dt, n) + 64);
    tr_ops_quantize(ref, q, dt, x, n);
    return q;
}

#endif
