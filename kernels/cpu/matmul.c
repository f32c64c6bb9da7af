/*  kernels/cpu/matmul.c - CPU matmul driver: picks GEMV, multi-row GEMV or GEMM by M, sizes
 *  the tasks, runs them on the pool. Oracle: kernels/ref/matmul.c. The kernels are in
 *  kernels/cpu/matmul_isa.h, instantiated for each ISA below; see there for the algorithms. */
#include <string.h>

#include "kernels/cpu/cpu_impl.h"

/* K slice of the GEMM: the decoded weight block (NB x KC f32) stays in L2, a micro-tile's
 * V_MR rows of it in L1. */
#define TR_MM_KC 256
/* Multi-row GEMV from this many rows of x; below, the GEMV (memory-bound decode) path. */
#define TR_MM_GEMM_MIN_M 8
/* Up to this many rows of x (batched decode), the multi-row GEMV: weights streamed once,
 * nothing packed; above it (prefill), the packed GEMM. q8_0 weights with a packed copy run
 * the packed GEMV (kernels/cpu/pack_q8_0.c) for every M up to here instead. */
#define TR_MM_MROW_MAX_M 64
/* The GEMV prefetches its weights this many bytes ahead of the loads, into L2. A decode
 * GEMV is one linear stream per task, but its loop does enough work per cache line that the
 * out-of-order window covers too few lines to keep a core's memory requests in flight: on a
 * 2-vCPU Xeon (Emerald Rapids) bf16 went from 9.0 to 12.3 GB/s on one core and 18 to 27 GB/s
 * on two, f32 13.8 to 14.8 (docs/perf.md, session 4); 2-8 KB all do about as well. */
#define TR_MM_GEMV_PF_BYTES 4096
/* A GEMV task streams at least this many bytes of weights (when there are enough for every
 * thread): each task starts a new stream, whose first lines arrive at memory latency. */
#define TR_MM_GEMV_TASK_BYTES (64 << 10)

typedef struct {
    const tr_matmul_params_t *p;
    tr_cpu_t *cpu;
    size_t row_bytes;             /* bytes of one weight row */
    int32_t nb;                   /* output features per task */
    int32_t kp;                   /* multi-row GEMV: stride of the decoded weight rows */
    int32_t mr, mp;               /* GEMM: weight rows and tokens per micro-tile */
    int32_t Mp;                   /* GEMM: M rounded up to the token panel */
    float *xp;                    /* GEMM: packed x, (Mp / MP, K, MP) */
} s_mm_t;

typedef float (*s_dec1_fn)(const void *row, int32_t k);

/* ---- scalar decoders of one value (K tails), one per dtype ---- */

static inline float s_dec1_f32(const void *row, int32_t k) {
    return ((const float *)row)[k];
}
static inline float s_dec1_bf16(const void *row, int32_t k) {
    return tr_bf16_to_f32(((const uint16_t *)row)[k]);
}
static inline float s_dec1_f16(const void *row, int32_t k) {
    return tr_f16_to_f32(((const uint16_t *)row)[k]);
}
static inline float s_dec1_q8_0(const void *row, int32_t k) {
    const tr_block_q8_0_t *b = (const tr_block_q8_0_t *)row + k / TR_Q8_0_BLOCK;
    return tr_f16_to_f32(b->d) * b->qs[k % TR_Q8_0_BLOCK];
}

typedef struct {
    int32_t mr, mp, w;            /* micro-tile rows, token panel, vector width */
    int32_t nr;                   /* multi-row GEMV: weight rows per register tile */
    tr_pool_fn pack_x;
    tr_pool_fn gemv[TR_DTYPE_COUNT];
    tr_pool_fn mrow[TR_DTYPE_COUNT];
    tr_pool_fn gemm[TR_DTYPE_COUNT];
} s_isa_mm_t;

#define TR_ISA_BODY "kernels/cpu/matmul_isa.h"
#include "kernels/cpu/isa_instantiate.h"

static const s_isa_mm_t *const s_isa[] = TR_ISA_TABLE(&s_mm);

/* Tasks of `unit`-multiple sizes: about 8 per thread so that a slow thread does not hold
 * the others up, never more than max_units units per task. */
static int32_t s_task_size(int32_t n, int32_t unit, int32_t threads, int32_t max_units) {
    int32_t units = (n + unit - 1) / unit;
    int32_t per = units / (threads * 8);
    per = per < 1 ? 1 : per > max_units ? max_units : per;
    return per * unit;
}

/* GEMV tasks: small outputs are not worth waking threads for */
static void s_gemv_plan(s_mm_t *a, const tr_matmul_params_t *p, tr_cpu_t *cpu) {
    int32_t threads = tr_pool_threads(cpu->pool);
    *a = (s_mm_t){.p = p, .cpu = cpu, .row_bytes = tr_dtype_row_bytes(p->w_dtype, p->K)};
    int64_t work = (int64_t)p->M * p->N * p->K;
    a->nb = work < 65536 ? p->N : s_task_size(p->N, 4, threads, 64);
    int32_t min_rows = tr_cpu_stream_units(TR_MM_GEMV_TASK_BYTES, a->row_bytes, p->N, threads, 4);
    a->nb = a->nb > min_rows ? a->nb : min_rows;
}

/* GEMV on q8_0 weights repacked at load (kernels/cpu/pack_q8_0.c): decode sizes, batch 1
 * to TR_MM_MROW_MAX_M. One kernel for all of them, so that a row's result does not depend
 * on how many other rows share the step (a request decodes the same alone and batched). */
static int s_is_q8p(const tr_matmul_params_t *p) {
    return p->w_packed && p->M <= TR_MM_MROW_MAX_M;
}

static int s_is_mrow(const tr_matmul_params_t *p) {
    return !s_is_q8p(p) && p->M >= TR_MM_GEMM_MIN_M && p->M <= TR_MM_MROW_MAX_M;
}

/* Multi-row GEMV tasks: groups of nr rows, at most 8 groups (a task's weights stay in L2). */
static void s_mrow_plan(s_mm_t *a, const tr_matmul_params_t *p, tr_cpu_t *cpu, int32_t nr) {
    int32_t threads = tr_pool_threads(cpu->pool);
    *a = (s_mm_t){.p = p, .cpu = cpu, .row_bytes = tr_dtype_row_bytes(p->w_dtype, p->K)};
    a->kp = (p->K + 15) / 16 * 16;
    a->nb = s_task_size(p->N, nr, threads, 8);
}

/* Scratch of the multi-row GEMV: nr decoded rows per thread. */
static size_t s_mrow_scratch(const tr_matmul_params_t *p, int32_t nr) {
    return (size_t)nr * ((p->K + 15) / 16 * 16) * sizeof(float);
}

/* Several GEMVs and multi-row GEMVs (q, k, v or gate, up of a decode step) in one pool run:
 * task t belongs to the matmul whose range holds it. */
#define TR_MM_BATCH_MAX 8

typedef struct {
    s_mm_t mm[TR_MM_BATCH_MAX];
    tr_q8p_gemv_t q8p[TR_MM_BATCH_MAX];   /* GEMVs on packed q8_0 weights */
    void *ctx[TR_MM_BATCH_MAX];           /* &mm[i] or &q8p[i] */
    int32_t first[TR_MM_BATCH_MAX + 1];   /* first task of each matmul */
    tr_pool_fn fn[TR_MM_BATCH_MAX];
    int32_t n;
} s_mm_batch_t;

static void s_batch_task(void *ctx, int32_t task, int32_t thread) {
    s_mm_batch_t *b = ctx;
    int32_t i = 0;
    while (task >= b->first[i + 1]) i++;
    b->fn[i](b->ctx[i], task - b->first[i], thread);
}

/* Packs x for the packed GEMVs of a batch into the shared arena, once per distinct x (q, k
 * and v share theirs), and plans them. */
static int s_q8p_plan_batch(tr_cpu_t *cpu, s_mm_batch_t *b, const tr_matmul_params_t **p) {
    size_t bytes = 0;
    for (int32_t i = 0; i < b->n; i++)
        if (s_is_q8p(p[i])) bytes += tr_cpu_q8p_x_bytes(p[i]->M, p[i]->K);
    if (bytes == 0) return TR_OK;
    if (tr_cpu_reserve_shared(cpu, bytes)) return TR_ENOMEM;
    char *buf = cpu->shared;
    for (int32_t i = 0; i < b->n; i++) {
        if (!s_is_q8p(p[i])) continue;
        int32_t j = 0;
        while (j < i && !(s_is_q8p(p[j]) && p[j]->x == p[i]->x && p[j]->M == p[i]->M &&
                          p[j]->K == p[i]->K))
            j++;
        if (j < i) {   /* same x: reuse its packing */
            tr_q8p_gemv_t x = b->q8p[j];
            tr_cpu_q8p_plan(&b->q8p[i], p[i], cpu, NULL);
            b->q8p[i].xq = x.xq, b->q8p[i].xs = x.xs;
        } else {
            tr_cpu_q8p_plan(&b->q8p[i], p[i], cpu, buf);
            buf += tr_cpu_q8p_x_bytes(p[i]->M, p[i]->K);
        }
    }
    return TR_OK;
}

int tr_cpu_matmul_batch(tr_ops_t *ops, const tr_matmul_params_t *p, int32_t n) {
    tr_cpu_t *cpu = TR_CPU(ops);
    const s_isa_mm_t *isa = s_isa[TR_CPU_ISA(cpu)];
    s_mm_batch_t b = {.n = 0};
    size_t scratch = 0;
    for (int32_t i = 0; i < n; i++)
        if (s_is_mrow(&p[i]) && s_mrow_scratch(&p[i], isa->nr) > scratch)
            scratch = s_mrow_scratch(&p[i], isa->nr);
    if (scratch && tr_cpu_reserve(cpu, scratch)) return TR_ENOMEM;
    const tr_matmul_params_t *bp[TR_MM_BATCH_MAX];
    for (int32_t i = 0; i < n; i++) {
        if (p[i].M == 0) continue;
        if (p[i].M > TR_MM_MROW_MAX_M || b.n == TR_MM_BATCH_MAX) {
            int rc = tr_cpu_matmul(ops, &p[i]);   /* big: its own run */
            if (rc) return rc;
            continue;
        }
        bp[b.n++] = &p[i];
    }
    if (s_q8p_plan_batch(cpu, &b, bp)) return TR_ENOMEM;
    for (int32_t i = 0; i < b.n; i++) {
        int32_t tasks;
        if (s_is_q8p(bp[i])) {
            b.fn[i] = tr_cpu_q8p_gemv_fn(cpu);
            b.ctx[i] = &b.q8p[i];
            tasks = b.q8p[i].n_tasks;
        } else if (s_is_mrow(bp[i])) {
            s_mrow_plan(&b.mm[i], bp[i], cpu, isa->nr);
            b.fn[i] = isa->mrow[bp[i]->w_dtype];
            b.ctx[i] = &b.mm[i];
            tasks = (bp[i]->N + b.mm[i].nb - 1) / b.mm[i].nb;
        } else {
            s_gemv_plan(&b.mm[i], bp[i], cpu);
            b.fn[i] = isa->gemv[bp[i]->w_dtype];
            b.ctx[i] = &b.mm[i];
            tasks = (bp[i]->N + b.mm[i].nb - 1) / b.mm[i].nb;
        }
        b.first[i + 1] = b.first[i] + tasks;
    }
    tr_pool_run(cpu->pool, b.first[b.n], s_batch_task, &b);
    return TR_OK;
}

int tr_cpu_matmul(tr_ops_t *ops, const tr_matmul_params_t *p) {
    tr_cpu_t *cpu = TR_CPU(ops);
    const s_isa_mm_t *isa = s_isa[TR_CPU_ISA(cpu)];
    int32_t threads = tr_pool_threads(cpu->pool);
    s_mm_t a;
    if (s_is_q8p(p)) {
        tr_q8p_gemv_t g;
        if (tr_cpu_reserve_shared(cpu, tr_cpu_q8p_x_bytes(p->M, p->K))) return TR_ENOMEM;
        tr_cpu_q8p_plan(&g, p, cpu, cpu->shared);
        tr_pool_run(cpu->pool, g.n_tasks, tr_cpu_q8p_gemv_fn(cpu), &g);
        return TR_OK;
    }
    if (p->M < TR_MM_GEMM_MIN_M) {
        s_gemv_plan(&a, p, cpu);
        tr_pool_run(cpu->pool, (p->N + a.nb - 1) / a.nb, isa->gemv[p->w_dtype], &a);
        return TR_OK;
    }
    if (s_is_mrow(p)) {
        if (tr_cpu_reserve(cpu, s_mrow_scratch(p, isa->nr))) return TR_ENOMEM;
        s_mrow_plan(&a, p, cpu, isa->nr);
        tr_pool_run(cpu->pool, (p->N + a.nb - 1) / a.nb, isa->mrow[p->w_dtype], &a);
        return TR_OK;
    }
    a = (s_mm_t){.p = p, .cpu = cpu, .row_bytes = tr_dtype_row_bytes(p->w_dtype, p->K)};
    /* one-vector token panels (and twice the weight rows) when M fits one vector */
    a.mp = p->M <= isa->w && isa->w > 1 ? isa->w : isa->mp;
    a.mr = a.mp == isa->mp ? isa->mr : 2 * isa->mr;
    a.Mp = (p->M + a.mp - 1) / a.mp * a.mp;
    a.nb = s_task_size(p->N, a.mr, threads, 128 / a.mr);
    size_t nbp = (size_t)(a.nb + a.mr - 1) / a.mr * a.mr;
    if (tr_cpu_reserve(cpu, nbp * (TR_MM_KC + (size_t)a.Mp) * sizeof(float)) ||
        tr_cpu_reserve_shared(cpu, (size_t)a.Mp * p->K * sizeof(float)))
        return TR_ENOMEM;
    a.xp = cpu->shared;
    tr_pool_run(cpu->pool, a.Mp / a.mp, isa->pack_x, &a);
    tr_pool_run(cpu->pool, (p->N + a.nb - 1) / a.nb, isa->gemm[p->w_dtype], &a);
    return TR_OK;
}
