/*  bench/forward.c - model forward on the CPU backend: prefill and decode throughput.
 *
 *      build/bin/bench_forward MODEL [MODEL ...] [--threads N] [--prefill 128,512]
 *                              [--decode 1,16] [--ctx 128] [--steps 16] [--reps 3]
 *
 *  Prefill: one sequence of T tokens from position 0, logits of the last; best of --reps.
 *  A length or batch of 0 (or an empty list) skips that part: --prefill 0 times decode only.
 *  Achieved GFLOP/s counts 2 FLOP per multiply-add of every matmul (the q/k/v/o and MLP
 *  weights of each layer for T tokens, the head for one) plus attention (QK^T and PV over
 *  the causal triangle: 4 H D T(T+1)/2 per layer), against the FMA peak that
 *  bench/bench_util.h measures on the same threads.
 *  Decode: B sequences, each with --ctx tokens already cached, advance one token per step
 *  for --steps steps; tokens/s = B / median step time. Achieved GB/s counts the bytes a
 *  step must read: every weight matrix once (tr_model_weight_bytes) plus each sequence's
 *  K and V cache, against the read bandwidth measured on the same threads: once as the
 *  best pass before the runs, and once paired, as a plain read of the same bytes right
 *  after each step (bench_bw_t): on a shared machine whose bandwidth moves from second to
 *  second, the median of the per-step ratios compares the two under the same load.  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "models/model.h"

static double s_layer_matmul_params(const tr_model_config_t *c) {
    double qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
    double attn = c->dim * (2 * qd + 2 * kvd);
    double mlp = c->n_experts ? (double)c->n_experts_used * 3 * c->moe_hidden_dim * c->dim +
                                    3.0 * c->shared_hidden_dim * c->dim
                              : 3.0 * c->hidden_dim * c->dim;
    return attn + mlp;
}

/* Fills tables for B sequences of up to max_pos positions: sequence b owns blocks b*per.. */
static void s_tables(int32_t *t, int32_t B, int32_t per) {
    for (int32_t i = 0; i < B * per; i++) t[i] = i;
}

static int s_bench(const char *path, int threads, const int32_t *pre, int n_pre,
                   const int32_t *dec, int n_dec, int32_t ctx, int32_t steps, int reps,
                   double peak, double bw, bench_bw_t *ring) {
    tr_ops_cpu_opts_t o = {.n_threads = threads};
    tr_ops_t *ops = tr_ops_cpu_new(&o);
    char err[512];
    tr_model_t *m = NULL;
    double t0 = bench_now();
    if (tr_model_load(&m, path, ops, NULL, err, sizeof(err))) {
        fprintf(stderr, "bench_forward: %s\n", err);
        tr_ops_destroy(&ops);
        return 1;
    }
    const tr_model_config_t *c = tr_model_config(m);
    const int32_t V = c->vocab_size, bs = 16;
    size_t wbytes = tr_model_weight_bytes(m);
    printf("\n%s: %s, %lld params, %s weights, %.1f MB read per decode step; loaded in %.2f s\n",
           path, tr_arch_name(c->arch), (long long)tr_model_n_params(m),
           tr_dtype_name(tr_model_weight_dtype(m)), wbytes / 1e6, bench_now() - t0);
    int32_t max_dec = 1, max_pre = 1;
    for (int i = 0; i < n_dec; i++) max_dec = dec[i] > max_dec ? dec[i] : max_dec;
    for (int i = 0; i < n_pre; i++) max_pre = pre[i] > max_pre ? pre[i] : max_pre;
    int32_t per = (ctx + steps + max_pre + bs) / bs + 1;
    int32_t n_seq = max_dec > 1 ? max_dec : 1;
    tr_kv_cache_t kv;
    if (tr_kv_cache_init(&kv, ops, c, per * n_seq, bs)) {
        fprintf(stderr, "bench_forward: cannot allocate the KV cache\n");
        return 1;
    }
    int32_t *tables = malloc((size_t)n_seq * per * sizeof(int32_t));
    s_tables(tables, n_seq, per);
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)(max_pre > n_seq * ctx ? max_pre : n_seq * ctx));
    for (int32_t i = 0; i < (max_pre > n_seq * ctx ? max_pre : n_seq * ctx); i++)
        tokens[i] = (int32_t)((i * 7919u + 13) % (uint32_t)V);
    float *logits = malloc((size_t)n_seq * V * sizeof(float));
    int32_t *n_tok = malloc(n_seq * sizeof(int32_t)), *start = malloc(n_seq * sizeof(int32_t));
    const double lp = s_layer_matmul_params(c);

    for (int i = 0; i < n_pre; i++) {
        int32_t T = pre[i], zero = 0;
        if (T <= 0) continue;   /* --prefill 0: none */
        tr_batch_t b = {.n_seqs = 1, .n_tokens = &T, .tokens = tokens, .start_pos = &zero,
                        .block_tables = tables, .max_blocks = per};
        double best = 1e9;
        for (int r = 0; r <= reps; r++) {   /* the first run warms up */
            double s = bench_now();
            if (tr_model_forward(m, &kv, &b, logits)) return 1;
            double dt = bench_now() - s;
            if (r > 0 && dt < best) best = dt;
        }
        double flops = 2.0 * T * lp * c->n_layers + 2.0 * c->dim * V +
                       4.0 * c->n_heads * c->head_dim * (double)T * (T + 1) / 2 * c->n_layers;
        printf("  prefill %4d tokens: %8.1f tokens/s  %6.1f GFLOP/s = %3.0f%% of FMA peak"
               " (%.1f ms)\n", T, T / best, flops / best / 1e9, 100 * flops / best / 1e9 / peak,
               best * 1e3);
    }
    for (int i = 0; i < n_dec; i++) {
        int32_t B = dec[i];
        if (B <= 0) continue;   /* --decode 0: none */
        /* prefill ctx tokens for every sequence */
        for (int32_t b = 0; b < B; b++) {
            n_tok[b] = ctx;
            start[b] = 0;
        }
        tr_batch_t pb = {.n_seqs = B, .n_tokens = n_tok, .tokens = tokens, .start_pos = start,
                         .block_tables = tables, .max_blocks = per};
        if (tr_model_forward(m, &kv, &pb, logits)) return 1;
        double kvb = 2.0 * B * c->n_layers * (ctx + steps / 2) * c->n_kv_heads * c->head_dim * 4;
        double bytes = (double)wbytes + kvb;
        double *dts = malloc(3 * steps * sizeof(double)), *rds = dts + steps, *ratio = rds + steps;
        for (int32_t s = 0; s < steps; s++) {
            for (int32_t b = 0; b < B; b++) {
                n_tok[b] = 1;
                start[b] = ctx + s;
            }
            tr_batch_t db = {.n_seqs = B, .n_tokens = n_tok, .tokens = tokens, .start_pos = start,
                             .block_tables = tables, .max_blocks = per};
            double t1 = bench_now();
            if (tr_model_forward(m, &kv, &db, logits)) return 1;
            dts[s] = bench_now() - t1;
            tr_ops_idle(ops);   /* the pool's workers stop spinning before the reader runs */
            rds[s] = bench_bw_pass(ring, (size_t)bytes);   /* the same bytes, plainly read */
            ratio[s] = rds[s] / dts[s];
        }
        qsort(dts, steps, sizeof(double), bench_cmp_double);
        qsort(rds, steps, sizeof(double), bench_cmp_double);
        qsort(ratio, steps, sizeof(double), bench_cmp_double);
        double med = dts[steps / 2];
        printf("  decode batch %2d:     %8.1f tokens/s  %6.1f GB/s = %3.0f%% of read bandwidth"
               " (%.2f ms/step, fastest %.2f)\n", B, B / med, bytes / med / 1e9,
               100 * bytes / med / 1e9 / bw, med * 1e3, dts[0] * 1e3);
        printf("    paired read after each step: %6.1f GB/s median; decode/read median %3.0f%%"
               " (quartiles %.0f-%.0f%%)\n", bytes / rds[steps / 2] / 1e9, 100 * ratio[steps / 2],
               100 * ratio[steps / 4], 100 * ratio[(3 * steps) / 4]);
        free(dts);
    }
    free(tables), free(tokens), free(logits), free(n_tok), free(start);
    tr_kv_cache_fini(&kv, ops);
    tr_model_destroy(&m);
    tr_ops_destroy(&ops);
    return 0;
}

int main(int argc, char **argv) {
    int threads = bench_cores(), reps = 3;
    int32_t pre[8] = {128, 512}, dec[8] = {1, 16}, ctx = 128, steps = 16;
    int n_pre = 2, n_dec = 2;
    const char *paths[16];
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--prefill")) n_pre = bench_list(v, pre, 8), i++;
        else if (!strcmp(a, "--decode")) n_dec = bench_list(v, dec, 8), i++;
        else if (!strcmp(a, "--ctx")) ctx = atoi(v), i++;
        else if (!strcmp(a, "--steps")) steps = atoi(v), i++;
        else if (!strcmp(a, "--reps")) reps = atoi(v), i++;
        else if (n_paths < 16) paths[n_paths++] = a;
    }
    if (!n_paths) {
        fprintf(stderr, "usage: bench_forward MODEL [MODEL ...] [--threads N] [--prefill 128,512]"
                        " [--decode 1,16] [--ctx 128] [--steps 16] [--reps 3]\n");
        return 2;
    }
    char cpu[128];
    bench_cpu_name(cpu, sizeof(cpu));
    double bw = bench_membw(1u << 30, threads, 6), peak = bench_fma_peak(threads);
    printf("cpu: %s, %d threads; read bandwidth %.1f GB/s, f32 FMA peak %.1f GFLOP/s\n", cpu,
           threads, bw, peak);
    bench_bw_t ring;
    if (bench_bw_open(&ring, 1u << 30, threads)) {
        fprintf(stderr, "bench_forward: cannot allocate the 1 GiB read buffer\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n_paths; i++)
        rc |= s_bench(paths[i], threads, pre, n_pre, dec, n_dec, ctx, steps, reps, peak, bw,
                      &ring);
    bench_bw_close(&ring);
    /* ceilings again: the machine is shared, so show how much they moved */
    printf("\nafter: read bandwidth %.1f GB/s, f32 FMA peak %.1f GFLOP/s\n",
           bench_membw(1u << 30, threads, 6), bench_fma_peak(threads));
    return rc;
}
