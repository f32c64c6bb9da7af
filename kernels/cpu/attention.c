/*  kernels/cpu/attention.c - CPU paged attention driver and KV store.
 *  Oracle: kernels/ref/attention.c. Splits the batch into (sequence, kv head, token tile)
 *  tasks, longest-context tiles first so the pool's dynamic hand-out balances the causal
 *  triangle, reserves each thread's scratch and runs kernels/cpu/attention_isa.h.      */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_impl.h"

/* Keys per online-softmax step (a multiple of every ISA's vector width). */
#define TR_ATTN_CH 16
/* Query rows per task from which the transposed-K score path pays off. */
#define TR_ATTN_KT_MIN_ROWS 8
/* Target query rows per task (tile tokens x query heads per kv head). */
#define TR_ATTN_ROWS 64

/* Keys per split-K slice at least (a slice must be worth a task). */
#define TR_ATTN_SPLIT_MIN_KEYS 128

typedef struct {
    int32_t seq, kv_head, t0, t1;
    int32_t part;                 /* -1, or this split-K slice's partial result index */
    int32_t k0, k1;               /* split-K: key positions [k0, k1) */
} s_attn_tile_t;

typedef struct {
    const tr_attn_params_t *p;
    tr_cpu_t *cpu;
    const s_attn_tile_t *tiles;
    float *parts;                 /* split-K partials: (n_parts, R, D + 2) */
} s_attn_t;

#define TR_ISA_BODY "kernels/cpu/attention_isa.h"
#include "kernels/cpu/isa_instantiate.h"

static const tr_pool_fn s_isa[] = TR_ISA_TABLE(s_attn_task);

int tr_cpu_attention(tr_ops_t *ops, const tr_attn_params_t *p) {
    tr_cpu_t *cpu = TR_CPU(ops);
    const int32_t G = p->n_heads / p->n_kv_heads, D = p->head_dim;
    int32_t qt = TR_ATTN_ROWS / G;
    qt = qt < 1 ? 1 : qt;
    int64_t n_tiles = 0;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t n = p->seq_start[b + 1] - p->seq_start[b];
        n_tiles += (int64_t)(n + qt - 1) / qt * p->n_kv_heads;
    }
    if (n_tiles == 0) return TR_OK;
    /* split-K when there are too few tiles to keep the threads busy (decode of a small
     * batch): each single-token tile's keys are cut into `split` slices */
    const int32_t threads = tr_pool_threads(cpu->pool);
    int32_t split = 1;
    if (n_tiles < 4 * threads) {
        int32_t max_ctx = 0;
        for (int32_t b = 0; b < p->n_seqs; b++)
            if (p->seq_start[b + 1] - p->seq_start[b] == 1 && p->seq_pos[b] + 1 > max_ctx)
                max_ctx = p->seq_pos[b] + 1;
        split = (int32_t)((4 * threads + n_tiles - 1) / n_tiles);
        if (split > max_ctx / TR_ATTN_SPLIT_MIN_KEYS) split = max_ctx / TR_ATTN_SPLIT_MIN_KEYS;
        if (split < 1) split = 1;
    }
    s_attn_tile_t *tiles = malloc((size_t)n_tiles * split * sizeof(*tiles));
    if (!tiles) return TR_ENOMEM;
    /* tiles ordered by descending end position: the largest work is handed out first */
    int64_t k = 0;
    int32_t n_parts = 0;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t t0 = p->seq_start[b], n = p->seq_start[b + 1] - t0;
        int32_t ctx = p->seq_pos[b] + n;
        int32_t s_here = n == 1 && split > 1 && ctx >= 2 * TR_ATTN_SPLIT_MIN_KEYS ? split : 1;
        for (int32_t i = (n + qt - 1) / qt - 1; i >= 0; i--)
            for (int32_t g = 0; g < p->n_kv_heads; g++) {
                int32_t t1 = t0 + (i + 1) * qt < t0 + n ? t0 + (i + 1) * qt : t0 + n;
                if (s_here == 1) {
                    tiles[k++] = (s_attn_tile_t){b, g, t0 + i * qt, t1, -1, 0, 0};
                    continue;
                }
                for (int32_t sp = 0; sp < s_here; sp++)
                    tiles[k++] = (s_attn_tile_t){b, g, t0, t1, n_parts++,
                                                 (int32_t)((int64_t)ctx * sp / s_here),
                                                 (int32_t)((int64_t)ctx * (sp + 1) / s_here)};
            }
    }
    n_tiles = k;
    size_t R = (size_t)qt * G;
    size_t bytes = (R * D + 2 * R + R * TR_ATTN_CH + (size_t)D * TR_ATTN_CH) * sizeof(float) +
                   (R + 2 * TR_ATTN_CH) * sizeof(float *) + 64;
    float *parts = n_parts ? malloc((size_t)n_parts * G * (D + 2) * sizeof(float)) : NULL;
    if (tr_cpu_reserve(cpu, bytes) || (n_parts && !parts)) {
        free(tiles), free(parts);
        return TR_ENOMEM;
    }
    s_attn_t a = {.p = p, .cpu = cpu, .tiles = tiles, .parts = parts};
    tr_pool_run(cpu->pool, (int32_t)n_tiles, s_isa[TR_CPU_ISA(cpu)], &a);
    /* merge split-K partials: m = max m_s, out = sum o_s e^(m_s - m) / sum l_s e^(m_s - m) */
    for (int64_t t = 0; t < n_tiles; t++) {
        const s_attn_tile_t *tl = &tiles[t];
        if (tl->part < 0 || tl->k0 != 0) continue;   /* once per group: at its first slice */
        int32_t n_s = 1;
        while (t + n_s < n_tiles && tiles[t + n_s].part == tl->part + n_s && tiles[t + n_s].k0 != 0) n_s++;
        for (int32_t r = 0; r < G; r++) {
            float mx = -INFINITY;
            for (int32_t sp = 0; sp < n_s; sp++) {
                const float *pt = parts + (size_t)(tl->part + sp) * G * (D + 2);
                mx = pt[(size_t)G * D + r] > mx ? pt[(size_t)G * D + r] : mx;
            }
            float *out = p->out + ((size_t)tl->t0 * p->n_heads + tl->kv_head * G + r) * D;
            float l = 0;
            for (int32_t d = 0; d < D; d++) out[d] = 0;
            for (int32_t sp = 0; sp < n_s; sp++) {
                const float *pt = parts + (size_t)(tl->part + sp) * G * (D + 2);
                float ms = pt[(size_t)G * D + r];
                if (ms == -INFINITY) continue;
                float w = expf(ms - mx);
                l += pt[(size_t)G * (D + 1) + r] * w;
                for (int32_t d = 0; d < D; d++) out[d] += pt[(size_t)r * D + d] * w;
            }
            for (int32_t d = 0; d < D; d++) out[d] /= l;
        }
    }
    free(tiles), free(parts);
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
