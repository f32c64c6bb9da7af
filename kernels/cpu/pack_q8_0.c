/*  kernels/cpu/pack_q8_0.c - q8_0 weights repacked at load time for the decode GEMV
 *  (M = 1 .. TR_MM_MROW_MAX_M rows of x: batch 1 and batched decode).
 *  Oracle: kernels/ref/matmul.c on the GGUF q8_0 weights (tests/kernels/test_pack.c).
 *
 *  Why: in the GGUF layout each 34-byte block (an f16 scale, 32 int8) must be widened to
 *  f32 before the multiply-adds, about 10 vector instructions per block, so the GEMV is
 *  compute-bound at ~19 GB/s per core (docs/perf.md). Here one 32-bit lane accumulates one
 *  block in integers, about 3 instructions per block at 16 lanes.
 *
 *  Layout (tr_ops_pack_weights, the CPU backend's answer for q8_0): rows in groups of 16
 *  (the last zero-padded), each group K / 32 packed blocks of 544 bytes, in K order:
 *      16 f16 scales, one per row (32 bytes)
 *      16 steps of 32 bytes: step i holds q[r][2i], q[r][2i + 1] for rows r = 0..15
 *  The same 34 bytes per 32 weights as GGUF, plus the padding rows; 32-byte aligned loads.
 *  Rows of a group are interleaved, so a row is no longer a contiguous slice: only this
 *  GEMV reads the packed copy, and the GEMM, the embedding lookup and the other backends
 *  keep reading the GGUF tensor (tr_matmul_params_t carries both).
 *
 *  Numerics: x is turned, per 32-value block and row, into integers v = x * 2^(30 - e)
 *  rounded to nearest, with 2^e > max|x| of the block (e from frexp; a power of two, so the
 *  scaling is exact). |v| < 2^30 splits into hi = round(v / 2^16) and lo = v - hi 2^16, both
 *  int16. A value within 2^-6 of the block max keeps every bit of its f32 mantissa; the
 *  error of any other is at most 2^-31 of the block max (compare int16 activations: 2^-16,
 *  rejected by the HF reference checks). The integer sums are exact; the f32 steps after
 *  them round as an f32 dot product does. A block with a NaN or an infinity gives NaN.
 *
 *  Thread: x is packed by the calling thread before the pool run; tasks own 16-row groups. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kernels/cpu/cpu_impl.h"

#define TR_Q8P_ROWS 16
#define TR_Q8P_BLOCK 32
#define TR_Q8P_SCALE_BYTES (TR_Q8P_ROWS * 2)
#define TR_Q8P_BLOCK_BYTES (TR_Q8P_SCALE_BYTES + TR_Q8P_ROWS * TR_Q8P_BLOCK)   /* 544 */
/* Batch-1 GEMV: each group's weights are prefetched this many bytes ahead of the loads (as
 * the plain GEMV does, kernels/cpu/matmul.c): on a 2-vCPU Xeon 10.7 -> 12.5 GB/s on one
 * core, 18.1 -> 20.8 on two (1536 x 576); 2-4 KB do alike, 8 KB less. */
#define TR_Q8P_PF_BYTES 2048
/* Batch-1 GEMV tasks stream at least this many bytes (kernels/cpu/matmul.c does alike). */
#define TR_Q8P_TASK_BYTES (64 << 10)

/* e with amax < 2^e for a normal amax (frexp's exponent); below -125 for zero and
 * subnormals, above 128 for inf and NaN. */
static inline int32_t s_q8p_exp(float amax) {
    return (int32_t)((tr_f32_bits(amax) >> 23) & 0xff) - 126;
}

typedef void (*s_pack_x_fn)(const float *x, int32_t M, int32_t K, int32_t *xq, float *xs);

#define TR_ISA_BODY "kernels/cpu/pack_q8_0_isa.h"
#include "kernels/cpu/isa_instantiate.h"

/* AVX-512 again, with VNNI's vpdpwssd in place of vpmaddwd + vpaddd (isa.h still holds the
 * AVX-512 macros from the last instance). */
#undef TR_TARGET
#define TR_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c,avx512vnni")))
#define TR_Q8P_VNNI 1
#include "kernels/cpu/pack_q8_0_isa.h"
#undef TR_Q8P_VNNI

static const tr_pool_fn s_gemv[] = TR_ISA_TABLE(s_q8p_gemv);
static const s_pack_x_fn s_pack_x[] = TR_ISA_TABLE(s_q8p_pack_x);

/* ---- packing the weights (load time) ---- */

typedef struct {
    const tr_block_q8_0_t *src;
    uint8_t *dst;
    int32_t rows, nblk;
} s_pack_t;

/* Pool task: one 16-row group. */
static void s_pack_group(void *ctx, int32_t g, int32_t thread) {
    const s_pack_t *a = ctx;
    (void)thread;
    for (int32_t b = 0; b < a->nblk; b++) {
        uint8_t *dst = a->dst + ((size_t)g * a->nblk + b) * TR_Q8P_BLOCK_BYTES;
        memset(dst, 0, TR_Q8P_BLOCK_BYTES);
        for (int32_t r = 0; r < TR_Q8P_ROWS; r++) {
            int32_t n = g * TR_Q8P_ROWS + r;
            if (n >= a->rows) break;
            const tr_block_q8_0_t *blk = a->src + (size_t)n * a->nblk + b;
            memcpy(dst + 2 * r, &blk->d, 2);
            for (int i = 0; i < TR_Q8P_BLOCK / 2; i++) {
                dst[TR_Q8P_SCALE_BYTES + i * 2 * TR_Q8P_ROWS + 2 * r] = (uint8_t)blk->qs[2 * i];
                dst[TR_Q8P_SCALE_BYTES + i * 2 * TR_Q8P_ROWS + 2 * r + 1] = (uint8_t)blk->qs[2 * i + 1];
            }
        }
    }
}

size_t tr_cpu_q8p_bytes(int32_t rows, int32_t cols) {
    return (size_t)((rows + TR_Q8P_ROWS - 1) / TR_Q8P_ROWS) * (cols / TR_Q8P_BLOCK) *
           TR_Q8P_BLOCK_BYTES;
}

/* The packed copy, freed by tr_ops_free (free()). From 2 MiB up it is 2 MiB aligned and
 * its whole 2 MiB extents ask for transparent huge pages (the tail keeps 4 KiB pages, so no
 * huge page is filled with nothing): batched decode walks a group of 16 rows at a time, up
 * to 26 KB (K = 1536), so with 4 KiB pages every few groups miss the TLB, and a matrix
 * larger than the L2 TLB's reach (the 28 MB lm_head of SmolLM) stalls on page walks. */
static void *s_alloc_packed(tr_ops_t *ops, size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    if (bytes < huge) return tr_ops_alloc(ops, bytes);
    void *p = NULL;
    if (posix_memalign(&p, huge, (bytes + 63) & ~(size_t)63)) return NULL;
    (void)madvise(p, bytes & ~(huge - 1), MADV_HUGEPAGE);   /* advice: 4 KiB pages work too */
    return p;
}

int tr_cpu_pack_weights(tr_ops_t *ops, const void *w, tr_dtype_t dtype, int32_t rows,
                        int32_t cols, void **out) {
    if (dtype != TR_DTYPE_Q8_0) return TR_OK;   /* *out stays NULL: nothing to gain */
    uint8_t *dst = s_alloc_packed(ops, tr_cpu_q8p_bytes(rows, cols));
    if (!dst) return TR_ENOMEM;
    s_pack_t a = {.src = w, .dst = dst, .rows = rows, .nblk = cols / TR_Q8P_BLOCK};
    tr_pool_run(TR_CPU(ops)->pool, (rows + TR_Q8P_ROWS - 1) / TR_Q8P_ROWS, s_pack_group, &a);
    *out = dst;
    return TR_OK;
}

/* ---- packing x (every call) ---- */

size_t tr_cpu_q8p_x_bytes(int32_t M, int32_t K) {
    size_t nblk = (size_t)M * (K / TR_Q8P_BLOCK);
    return nblk * TR_Q8P_BLOCK * sizeof(int32_t) + nblk * sizeof(float) + 64;
}

/* Packs x (M, K) into buf (tr_cpu_q8p_x_bytes) and fills the run's task layout; buf NULL:
 * the layout only (the caller sets xq and xs to an earlier packing of the same x). */
void tr_cpu_q8p_plan(tr_q8p_gemv_t *a, const tr_matmul_params_t *p, tr_cpu_t *cpu, void *buf) {
    const int32_t nblk = p->K / TR_Q8P_BLOCK, n_groups = (p->N + TR_Q8P_ROWS - 1) / TR_Q8P_ROWS;
    const int32_t threads = tr_pool_threads(cpu->pool);
    a->p = p;
    a->xq = buf;
    a->xs = buf ? (float *)(a->xq + (size_t)p->M * nblk * TR_Q8P_BLOCK) : NULL;
    if (buf) s_pack_x[TR_CPU_ISA(cpu)](p->x, p->M, p->K, a->xq, a->xs);
    /* about 8 tasks per thread of 2..16 groups (even, so that M = 1 runs pairs); one task
     * when the whole matmul is small */
    int64_t work = (int64_t)p->M * p->N * p->K;
    int32_t per = n_groups / (threads * 8);
    per = per < 2 ? 2 : per > 16 ? 16 : per & ~1;
    if (p->M < 8) {   /* memory-bound: at least TR_Q8P_TASK_BYTES a task */
        int32_t min = tr_cpu_stream_units(TR_Q8P_TASK_BYTES, (size_t)nblk * TR_Q8P_BLOCK_BYTES,
                                          n_groups, threads, 2);
        per = per > min ? per : min;
    }
    a->ng = work < 65536 ? n_groups : per;
    a->n_tasks = (n_groups + a->ng - 1) / a->ng;
}

tr_pool_fn tr_cpu_q8p_gemv_fn(const tr_cpu_t *cpu) {
    if (cpu->vnni) return s_q8p_gemv_avx512_vnni;
    return s_gemv[TR_CPU_ISA(cpu)];
}
