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

typedef struct {
    int32_t seq, kv_head, t0, t1;
} s_attn_tile_t;

typedef struct {
    const tr_attn_params_t *p;
    tr_cpu_t *cpu;
    const s_attn_tile_t *tiles;
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
    s_attn_tile_t *tiles = malloc((size_t)n_tiles * sizeof(*tiles));
    if (!tiles) return TR_ENOMEM;
    /* tiles ordered by descending end position: the largest work is handed out first */
    int64_t k = 0;
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t t0 = p->seq_start[b], n = p->seq_start[b + 1] - t0;
        for (int32_t i = (n + qt - 1) / qt - 1; i >= 0; i--)
            for (int32_t g = 0; g < p->n_kv_heads; g++)
                tiles[k++] = (s_attn_tile_t){b, g, t0 + i * qt, t0 + (i + 1) * qt < t0 + n ? t0 + (i + 1) * qt : t0 + n};
    }
    size_t R = (size_t)qt * G;
    size_t bytes = (R * D + 2 * R + R * TR_ATTN_CH + (size_t)D * TR_ATTN_CH) * sizeof(float) +
                   (R + 2 * TR_ATTN_CH) * sizeof(float *) + 64;
    if (tr_cpu_reserve(cpu, bytes)) {
        free(tiles);
        return TR_ENOMEM;
    }
    s_attn_t a = {.p = p, .cpu = cpu, .tiles = tiles};
    tr_pool_run(cpu->pool, (int32_t)n_tiles, s_isa[TR_CPU_ISA(cpu)], &a);
    free(tiles);
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
