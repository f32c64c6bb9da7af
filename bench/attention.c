/*  bench/attention.c - CPU paged attention (tr_ops_attention) for chunked prefill over a
 *  long cached context, the shape that stalls decoding streams while a long prompt is
 *  prefilled in chunks (docs/perf.md, "Chunked-prefill attention").
 *
 *      build/bin/bench_attention [--threads N] [--chunk 16,32,64,512] [--pos 0,1000,1936]
 *                                [--decode 8] [--decode-ctx 300] [--heads 9,3,64]
 *                                [--bs 16] [--reps 20]
 *
 *  Each case is one sequence of C new tokens at start position P (its K/V for positions
 *  0 .. P + C - 1 already in the cache), alone and then beside --decode sequences of one
 *  token each at context --decode-ctx, as a serving step mixing a prefill chunk and decode
 *  streams would call it. The cache's blocks are handed out in a shuffled order, as a
 *  paged pool does after some traffic. Every case runs on --threads threads (default: all
 *  cores) and on one. Prints the median and the best time of --reps calls and the
 *  effective GFLOP/s of the median, counting 4 D FLOP per (query head, visible key) pair
 *  (QK^T and PV), against the FMA peak of bench/bench_util.h on the same threads.
 *
 *  H = query heads, Hk = kv heads, D = head_dim, C = chunk tokens, P = chunk start.  */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "kernels/ops.h"

#define S_MAX_LIST 16

static uint64_t s_rng = 0x2545f4914f6cdd1dull;

static float s_uniform(void) {
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (float)((s_rng >> 40) * (2.0 / 16777216.0)) - 1.0f;
}

typedef struct {
    int32_t H, Hk, D, bs;
    int32_t n_blocks, max_blocks;
    float *k_cache, *v_cache;     /* owned: (n_blocks, bs, Hk, D) */
    int32_t *table;               /* owned: (S_MAX_SEQS, max_blocks), shuffled block ids */
} s_pool_t;

#define S_MAX_SEQS 65

/* Median and best seconds of `reps` calls of one batch; FLOP of the batch in *flop. */
static void s_time(tr_ops_t *ops, const s_pool_t *pl, int32_t C, int32_t P, int32_t n_dec,
                   int32_t dec_ctx, int reps, double *med, double *best, double *flop) {
    int32_t B = 1 + n_dec, T = C + n_dec;
    int32_t seq_start[S_MAX_SEQS + 1], seq_pos[S_MAX_SEQS];
    seq_start[0] = 0;
    seq_pos[0] = P;
    seq_start[1] = C;
    double pairs = (double)C * P + (double)C * (C + 1) / 2;
    for (int32_t b = 1; b < B; b++) {
        seq_pos[b] = dec_ctx - 1;
        seq_start[b + 1] = seq_start[b] + 1;
        pairs += dec_ctx;
    }
    *flop = pairs * pl->H * 4.0 * pl->D;
    size_t qn = (size_t)T * pl->H * pl->D;
    float *q = malloc(qn * sizeof(float)), *out = malloc(qn * sizeof(float));
    for (size_t i = 0; i < qn; i++) q[i] = s_uniform();
    tr_attn_params_t p = {.out = out, .q = q, .k_cache = pl->k_cache, .v_cache = pl->v_cache,
                          .seq_start = seq_start, .seq_pos = seq_pos, .block_table = pl->table,
                          .n_seqs = B, .max_blocks = pl->max_blocks, .n_blocks = pl->n_blocks,
                          .n_heads = pl->H, .n_kv_heads = pl->Hk, .head_dim = pl->D,
                          .block_size = pl->bs, .scale = 1.0f / sqrtf((float)pl->D)};
    double *t = malloc((size_t)reps * sizeof(double));
    if (tr_ops_attention(ops, &p) != TR_OK) fprintf(stderr, "attention failed\n");  /* warm */
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        tr_ops_attention(ops, &p);
        t[r] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), bench_cmp_double);
    *med = t[reps / 2];
    *best = t[0];
    free(t), free(q), free(out);
}

int main(int argc, char **argv) {
    int32_t chunks[S_MAX_LIST] = {16, 32, 64, 512}, pos[S_MAX_LIST] = {0, 1000, 1936};
    int32_t heads[3] = {9, 3, 64};
    int n_chunks = 4, n_pos = 3, reps = 20, threads = bench_cores();
    int32_t n_dec = 8, dec_ctx = 300, bs = 16;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--chunk")) n_chunks = bench_list(v, chunks, S_MAX_LIST), i++;
        else if (!strcmp(a, "--pos")) n_pos = bench_list(v, pos, S_MAX_LIST), i++;
        else if (!strcmp(a, "--heads")) bench_list(v, heads, 3), i++;
        else if (!strcmp(a, "--decode")) n_dec = atoi(v), i++;
        else if (!strcmp(a, "--decode-ctx")) dec_ctx = atoi(v), i++;
        else if (!strcmp(a, "--bs")) bs = atoi(v), i++;
        else if (!strcmp(a, "--reps")) reps = atoi(v), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else {
            fprintf(stderr, "usage: bench_attention [--threads N] [--chunk 16,32,64,512] "
                            "[--pos 0,1000,1936] [--decode 8] [--decode-ctx 300] "
                            "[--heads H,Hk,D] [--bs 16] [--reps 20]\n");
            return 2;
        }
    }
    if (n_dec < 0 || n_dec > S_MAX_SEQS - 1 || reps < 1 || bs < 1 || threads < 1 ||
        heads[0] % heads[1] != 0 || dec_ctx < 1) {
        fprintf(stderr, "bench_attention: bad arguments\n");
        return 2;
    }
    s_pool_t pl = {.H = heads[0], .Hk = heads[1], .D = heads[2], .bs = bs};
    int32_t max_ctx = dec_ctx;
    for (int i = 0; i < n_chunks; i++)
        for (int j = 0; j < n_pos; j++)
            max_ctx = pos[j] + chunks[i] > max_ctx ? pos[j] + chunks[i] : max_ctx;
    pl.max_blocks = (max_ctx + bs - 1) / bs;
    pl.n_blocks = pl.max_blocks * (1 + n_dec);
    size_t pool = (size_t)pl.n_blocks * bs * pl.Hk * pl.D;
    pl.k_cache = malloc(pool * sizeof(float));
    pl.v_cache = malloc(pool * sizeof(float));
    pl.table = malloc((size_t)pl.n_blocks * sizeof(int32_t));
    if (!pl.k_cache || !pl.v_cache || !pl.table) {
        fprintf(stderr, "bench_attention: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < pool; i++) pl.k_cache[i] = s_uniform(), pl.v_cache[i] = s_uniform();
    /* every sequence owns max_blocks entries of one shuffled permutation of the pool */
    for (int32_t i = 0; i < pl.n_blocks; i++) pl.table[i] = i;
    for (int32_t i = pl.n_blocks - 1; i > 0; i--) {
        s_uniform();
        int32_t j = (int32_t)(s_rng % (uint64_t)(i + 1)), t = pl.table[i];
        pl.table[i] = pl.table[j];
        pl.table[j] = t;
    }
    double peak_n = bench_fma_peak(threads), peak_1 = bench_fma_peak(1);
    tr_ops_cpu_opts_t o = {.n_threads = threads};
    tr_ops_t *ops = tr_ops_cpu_new(&o);
    if (!ops) return 1;
    printf("# bench_attention: %s, H %d, Hk %d, D %d, block %d, %d reps; FMA peak %.1f "
           "GFLOP/s (%d threads), %.1f (1)\n", tr_ops_name(ops), pl.H, pl.Hk, pl.D, bs, reps,
           peak_n, threads, peak_1);
    printf("| C | P | decode | threads | median ms | best ms | GFLOP/s | %% peak |\n");
    printf("|---:|---:|---|---:|---:|---:|---:|---:|\n");
    for (int j = 0; j < n_pos; j++)
        for (int i = 0; i < n_chunks; i++)
            for (int with_dec = 0; with_dec <= (n_dec > 0); with_dec++)
                for (int th = 0; th < 2; th++) {
                    int32_t nt = th ? 1 : threads;
                    if (th && threads == 1) continue;
                    tr_ops_set_threads(ops, nt);
                    double med, best, flop;
                    s_time(ops, &pl, chunks[i], pos[j], with_dec ? n_dec : 0, dec_ctx, reps,
                           &med, &best, &flop);
                    char dec[32] = "-";
                    if (with_dec) snprintf(dec, sizeof(dec), "%d x %d", n_dec, dec_ctx);
                    printf("| %d | %d | %s | %d | %.3f | %.3f | %.1f | %.0f%% |\n", chunks[i],
                           pos[j], dec, nt, med * 1e3, best * 1e3, flop / med * 1e-9,
                           100.0 * flop / med * 1e-9 / (th ? peak_1 : peak_n));
                    fflush(stdout);
                }
    tr_ops_set_threads(ops, threads);
    tr_ops_destroy(&ops);
    free(pl.k_cache), free(pl.v_cache), free(pl.table);
    return 0;
}
