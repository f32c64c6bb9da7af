/*  kernels/cpu/attention.c - CPU paged attention driver and KV store.
 *  Oracle: kernels/ref/attention.c. Body: kernels/cpu/attention_isa.h (one per ISA).
 *
 *  Work is split into tiles of (sequence, kv head, token tile): the tile's R query rows
 *  (tile tokens x the G = H / Hk query heads of the kv head) read each of their K/V rows
 *  once. A row's keys are cut at absolute multiples of TR_ATTN_SEG into segments; each
 *  segment yields an unnormalised softmax partial (o, m, l), and a row's partials are
 *  folded in segment order by one function (s_fold in the body). A tile whose work would
 *  leave threads idle (one long prefill chunk, a few long decodes) is split into one task
 *  per segment and its partials are folded by a second pool run; other tiles fold as they
 *  go. Either way a row gets the same bits: they depend on its own sequence (the tile's
 *  row count picks the score path), never on the rest of the batch or the thread count.
 *  Tasks are handed out largest first.
 *
 *  B = sequences, T = new tokens, H = query heads, Hk = kv heads, G = H / Hk,
 *  D = head_dim, R = rows of a tile (tile tokens x G).                             */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_impl.h"

/* Keys per online-softmax step; steps start at absolute multiples of it. */
#define TR_ATTN_CH 32
/* Keys per segment (a multiple of TR_ATTN_CH): the unit of split-K and of the fold. */
#define TR_ATTN_SEG 256
/* Rows of a tile from which scores go with vectors along rows (prefill) instead of dot
 * products along D (decode). */
#define TR_ATTN_ROW_MIN 8
/* Target rows per tile (tile tokens x G). */
#define TR_ATTN_ROWS 64
/* A tile is split when its work exceeds total work / (TR_ATTN_SPLIT_PER_THREAD x threads):
 * enough pieces for the pool's dynamic hand-out to even out a shared machine. */
#define TR_ATTN_SPLIT_PER_THREAD 8

typedef struct {
    int32_t seq, kv_head, t0, t1;
    int32_t seg0, seg1;           /* segments [seg0, seg1) of this task */
    int32_t part;                 /* -1: fold and write out; else partial index of seg0 */
    int64_t work;                 /* rows x keys, for ordering */
} s_attn_tile_t;

typedef struct {
    const tr_attn_params_t *p;
    tr_cpu_t *cpu;
    const s_attn_tile_t *tasks;   /* split tiles for the merge run: seg0..seg1, part */
    float *parts;                 /* split partials: (n_parts, R_max, D + 2) */
    int32_t r_max;
} s_attn_t;

/* Keys [*jlo, *jhi] that some row of tokens [t0, t1) of sequence b sees. */
static void s_key_range(const tr_attn_params_t *p, int32_t b, int32_t t0, int32_t t1,
                        int32_t *jlo, int32_t *jhi) {
    int32_t pos0 = p->seq_pos[b] + (t0 - p->seq_start[b]);
    int32_t lo = p->sliding_window > 0 ? pos0 - p->sliding_window + 1 : 0;
    *jlo = lo < 0 ? 0 : lo;
    *jhi = pos0 + (t1 - t0) - 1;
}

/* Carves `n` floats, 64-byte aligned, off a scratch cursor (s_scratch_bytes counts them). */
static inline float *s_carve(char **cur, size_t n) {
    float *f = (float *)(((uintptr_t)*cur + 63) & ~(uintptr_t)63);
    *cur = (char *)(f + n);
    return f;
}

#define TR_ISA_BODY "kernels/cpu/attention_isa.h"
#include "kernels/cpu/isa_instantiate.h"

static const tr_pool_fn s_isa[] = TR_ISA_TABLE(s_attn_task);
static const tr_pool_fn s_isa_merge[] = TR_ISA_TABLE(s_merge_task);

static int s_cmp_work(const void *x, const void *y) {
    const s_attn_tile_t *a = x, *b = y;
    return a->work < b->work ? 1 : a->work > b->work ? -1 : 0;
}

int tr_cpu_attention(tr_ops_t *ops, const tr_attn_params_t *p) {
    tr_cpu_t *cpu = TR_CPU(ops);
    const int32_t G = p->n_heads / p->n_kv_heads, D = p->head_dim;
    int32_t qt = TR_ATTN_ROWS / G;
    qt = qt < 1 ? 1 : qt;
    /* tiles: a sequence's tokens in ceil(n / qt) tiles of nearly equal size */
    int64_t n_tiles = 0, total = 0;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t n = p->seq_start[b + 1] - p->seq_start[b];
        n_tiles += (int64_t)(n + qt - 1) / qt * p->n_kv_heads;
    }
    if (n_tiles == 0) return TR_OK;
    s_attn_tile_t *tiles = malloc((size_t)n_tiles * sizeof(*tiles));
    if (!tiles) return TR_ENOMEM;
    int64_t k = 0;
    int32_t r_max = 1;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t t0 = p->seq_start[b], n = p->seq_start[b + 1] - t0;
        if (n == 0) continue;
        int32_t nt = (n + qt - 1) / qt, q = (n + nt - 1) / nt;
        for (int32_t i = 0; i < nt; i++) {
            int32_t a0 = t0 + i * q, a1 = a0 + q < t0 + n ? a0 + q : t0 + n, jlo, jhi;
            if (a0 >= a1) continue;
            s_key_range(p, b, a0, a1, &jlo, &jhi);
            r_max = (a1 - a0) * G > r_max ? (a1 - a0) * G : r_max;
            for (int32_t g = 0; g < p->n_kv_heads; g++) {
                tiles[k] = (s_attn_tile_t){b, g, a0, a1, jlo / TR_ATTN_SEG,
                                           jhi / TR_ATTN_SEG + 1, -1,
                                           (int64_t)(a1 - a0) * G * (jhi - jlo + 1)};
                total += tiles[k++].work;
            }
        }
    }
    n_tiles = k;
    /* split-K: tiles too big for an even share become one task per segment */
    const int64_t share = total / (TR_ATTN_SPLIT_PER_THREAD * tr_pool_threads(cpu->pool));
    int64_t n_tasks = 0, n_split = 0;
    int32_t n_parts = 0;
    for (int64_t t = 0; t < n_tiles; t++) {
        int32_t ns = tiles[t].seg1 - tiles[t].seg0;
        if (ns > 1 && tiles[t].work > share) {
            tiles[t].part = n_parts;
            n_parts += ns, n_tasks += ns, n_split++;
        } else {
            n_tasks++;
        }
    }
    s_attn_tile_t *tasks = malloc((size_t)(n_tasks + n_split) * sizeof(*tasks));
    float *parts = n_parts ? malloc((size_t)n_parts * r_max * (D + 2) * sizeof(float)) : NULL;
    if (!tasks || (n_parts && !parts)) {
        free(tiles), free(tasks), free(parts);
        return TR_ENOMEM;
    }
    s_attn_tile_t *merges = tasks + n_tasks;
    k = 0;
    for (int64_t t = 0, m = 0; t < n_tiles; t++) {
        s_attn_tile_t tl = tiles[t];
        if (tl.part < 0) {
            tasks[k++] = tl;
            continue;
        }
        merges[m++] = tl;
        int32_t jlo, jhi;
        s_key_range(p, tl.seq, tl.t0, tl.t1, &jlo, &jhi);
        for (int32_t s = tl.seg0; s < tl.seg1; s++) {
            int32_t a0 = s * TR_ATTN_SEG > jlo ? s * TR_ATTN_SEG : jlo;
            int32_t a1 = s * TR_ATTN_SEG + TR_ATTN_SEG - 1 < jhi ? s * TR_ATTN_SEG + TR_ATTN_SEG - 1
                                                                : jhi;
            s_attn_tile_t st = tl;
            st.seg0 = s, st.seg1 = s + 1, st.part = tl.part + (s - tl.seg0);
            st.work = (int64_t)(tl.t1 - tl.t0) * G * (a1 - a0 + 1);
            tasks[k++] = st;
        }
    }
    free(tiles);
    qsort(tasks, (size_t)n_tasks, sizeof(*tasks), s_cmp_work);
    /* scratch per thread: see the carve at the top of s_attn_task */
    size_t rp = (size_t)r_max + 16, ch = TR_ATTN_CH + 8;
    size_t floats = 2 * (size_t)D * rp + ch * rp + rp * D + 5 * rp + D + 2 * ch * 2 + rp * 2;
    size_t bytes = (floats + 16 * 64) * sizeof(float);
    if (tr_cpu_reserve(cpu, bytes)) {
        free(tasks), free(parts);
        return TR_ENOMEM;
    }
    s_attn_t a = {.p = p, .cpu = cpu, .tasks = tasks, .parts = parts, .r_max = r_max};
    tr_pool_run(cpu->pool, (int32_t)n_tasks, s_isa[TR_CPU_ISA(cpu)], &a);
    if (n_split) {
        a.tasks = merges;
        tr_pool_run(cpu->pool, (int32_t)n_split, s_isa_merge[TR_CPU_ISA(cpu)], &a);
    }
    free(tasks), free(parts);
    return TR_OK;
}

typedef struct {
    float *k_cache, *v_cache;
    const float *k, *v;
    const int32_t *slots;
    size_t row;
} s_kv_t;

static void s_kv_task(void *ctx, int32_t t, int32_t thread) {
    const s_kv_t *a = ctx;
    memcpy(a->k_cache + (size_t)a->slots[t] * a->row, a->k + (size_t)t * a->row, a->row * 4);
    memcpy(a->v_cache + (size_t)a->slots[t] * a->row, a->v + (size_t)t * a->row, a->row * 4);
}

int tr_cpu_kv_store(tr_ops_t *ops, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D) {
    s_kv_t a = {k_cache, v_cache, k, v, slots, (size_t)Hk * D};
    /* a copy per token; only worth threads for long prefills */
    for (int32_t t = 0; t < T; t++) s_kv_task(&a, t, 0);
    return TR_OK;
}
