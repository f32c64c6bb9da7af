/*  tests/gpu/gpu_test.h - helpers of the GPU tests: device buffers, poisoning, NMSE.
 *
 *  Every check draws fresh inputs (the seed is printed, TROUPE_GPU_SEED=N repeats a run),
 *  poisons the output with 0xff bytes (NaN floats, so an element the kernel did not write
 *  fails the NMSE), runs the op on the CUDA backend and on the reference backend, and
 *  compares. Thresholds are per dtype, as METHOD.md: f32 arithmetic 1e-10 in NMSE, f16
 *  operands 1e-5 (relative L2 ~3e-3), bf16 operands 1e-4 (relative L2 1e-2). Without a GPU
 *  (tr_ops_cuda returns NULL) a test prints one TAP skip and passes.              */
#ifndef TR_TESTS_GPU_TEST_H
#define TR_TESTS_GPU_TEST_H

#include <stdio.h>
#include <time.h>

#include "tests/kernels/kernel_test.h"

#define GT_NMSE_F32 1e-10
#define GT_NMSE_F16 1e-5
#define GT_NMSE_BF16 1e-4

static inline double gt_nmse_dtype(tr_dtype_t dt) {
    return dt == TR_DTYPE_BF16 ? GT_NMSE_BF16 : dt == TR_DTYPE_F16 ? GT_NMSE_F16 : GT_NMSE_F32;
}

/* Seeds the shared xorshift from the clock (or TROUPE_GPU_SEED) and says which. */
static inline void gt_seed(void) {
    const char *env = getenv("TROUPE_GPU_SEED");
    uint64_t s = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) * 2654435761ull + 1;
    kt_rng = s ? s : 1;
    diag("seed %llu (TROUPE_GPU_SEED to repeat)", (unsigned long long)kt_rng);
}

/* A device copy of n bytes of host memory. */
static inline void *gt_up(tr_ops_t *g, const void *h, size_t n) {
    void *d = tr_ops_alloc(g, n);
    if (d && tr_ops_to_device(g, d, h, n)) {
        tr_ops_free(g, d);
        return NULL;
    }
    return d;
}

/* A device buffer of n bytes poisoned with 0xff (NaN as floats). */
static inline void *gt_poisoned(tr_ops_t *g, size_t n) {
    void *d = tr_ops_alloc(g, n);
    if (d) tr_ops_memset(g, d, 0xff, n);
    return d;
}

/* Host copy of n bytes of device memory (malloc'd; NaN-filled on failure). */
static inline void *gt_down(tr_ops_t *g, const void *d, size_t n) {
    void *h = malloc(n + 64);
    memset(h, 0xff, n);
    if (tr_ops_to_host(g, h, d, n)) memset(h, 0xff, n);
    return h;
}

#endif
