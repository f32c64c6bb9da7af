/*  bench/gpu/gpu.c - GPU benchmarks of issue 5 on the CUDA backend (build/bin/bench_gpu).
 *
 *      bench_gpu [all|ceilings|decode|prefill|attn]
 *
 *  ceilings: device copy bandwidth (bytes read + written, 1 GiB) and a large bf16 cuBLASLt
 *            GEMM (8192^3), measured here, in the same run, as the denominators below.
 *  decode:   a Llama-3.2-1B-shaped model (dim 2048, 16 layers, 32/8 heads of 64, MLP 8192,
 *            vocab 128256, tied embeddings) with random bf16 weights; B = 1, 8, 64, 256
 *            sequences with 512 tokens cached advance one token per step; tokens/s = B /
 *            median step; bytes per step = every weight once + each sequence's K and V
 *            (f32 cache); achieved GB/s as % of the copy bandwidth (target: >= 75% at B=1).
 *  prefill:  one sequence of 512, 2048, 8192 tokens from position 0; FLOPs = 2 * matmul
 *            params * T + causal attention 4 H D T(T+1)/2 per layer; % of the GEMM (>= 60%).
 *  attn:     decode attention alone at context 4k, 32k, 128k, B = 1 and 8, automatic split-K
 *            against one block per sequence and kv head (tr_ops_cuda_set_attn_splits(1)).
 *
 *  Step times are host clocks around a call that ends in a device-to-host copy (which waits
 *  for the stream): median of the runs after warm-ups. No number here has been measured yet
 *  (docs/cuda.md); without a GPU the program says so and exits 0.                    */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "kernels/cuda/cuda.h"
#include "models/model_impl.h"

static int s_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), s_cmp_double);
    return t[n / 2];
}

/* ---- a random-weight Llama-3.2-1B-shaped model ---- */

typedef struct {
    uint16_t *mat;     /* random bf16, as large as the largest matrix; every matrix views it */
    uint16_t *ones;    /* bf16 1.0 for the norms */
    tr_model_config_t cfg;
} s_src_t;

static int s_find(void *ctx, const char *name, tr_tensor_view_t *out, char *err, size_t n) {
    s_src_t *s = ctx;
    const tr_model_config_t *c = &s->cfg;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t r = 0, k = c->dim;
    if (strstr(name, "norm.weight")) {
        *out = (tr_tensor_view_t){s->ones, TR_DTYPE_BF16, 1, {c->dim}};
        return TR_OK;
    }
    if (!strcmp(name, "model.embed_tokens.weight")) r = c->vocab_size;
    else if (strstr(name, "q_proj.weight")) r = qd;
    else if (strstr(name, "k_proj.weight") || strstr(name, "v_proj.weight")) r = kvd;
    else if (strstr(name, "o_proj.weight")) r = c->dim, k = qd;
    else if (strstr(name, "gate_proj.weight") || strstr(name, "up_proj.weight")) r = c->hidden_dim;
    else if (strstr(name, "down_proj.weight")) r = c->dim, k = c->hidden_dim;
    else return TR_ENOENT;
    *out = (tr_tensor_view_t){s->mat, TR_DTYPE_BF16, 2, {r, k}};
    return TR_OK;
}

static tr_model_t *s_llama1b(tr_ops_t *ops, s_src_t *src) {
    tr_model_config_t *c = &src->cfg;
    tr_model_config_defaults(c);
    c->arch = 0;
    c->dim = 2048, c->hidden_dim = 8192, c->n_layers = 16, c->n_heads = 32, c->n_kv_heads = 8;
    c->head_dim = 64, c->vocab_size = 128256, c->max_seq_len = 131072, c->norm_eps = 1e-5f;
    c->rope.theta = 500000, c->tie_embeddings = true;
    size_t big = (size_t)c->vocab_size * c->dim;
    src->mat = malloc(big * 2);
    src->ones = malloc((size_t)c->dim * 2);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < big; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        src->mat[i] = tr_f32_to_bf16(((float)(x >> 40) / 16777216.0f - 0.5f) * 0.04f);
    }
    for (int32_t i = 0; i < c->dim; i++) src->ones[i] = tr_f32_to_bf16(1.0f);
    tr_weight_source_t ws = {.ctx = src, .what = "random llama-1b", .find = s_find};
    tr_model_t *m = NULL;
    char err[512];
    if (tr_model_build(&m, c, &ws, ops, NULL, err, sizeof(err))) {
        fprintf(stderr, "bench_gpu: building the model failed: %s\n", err);
        return NULL;
    }
    return m;
}

/* ---- decode and prefill ---- */

static void s_decode(tr_ops_t *g, tr_model_t *m, double copy_gbps) {
    const tr_model_config_t *c = tr_model_config(m);
    static const int32_t Bs[] = {1, 8, 64, 256};
    const int32_t ctx = 512, bs = 16, per = (ctx + 64) / bs + 1, steps = 20;
    printf("\n## decode (llama-1b shape, bf16 weights, %d cached tokens)\n", ctx);
    printf("%6s %12s %12s %10s %8s\n", "batch", "step ms", "tokens/s", "GB/s", "% copy");
    for (size_t bi = 0; bi < TR_ARRAY_LEN(Bs); bi++) {
        int32_t B = Bs[bi];
        tr_kv_cache_t kv;
        if (tr_kv_cache_init(&kv, g, c, B * per, bs)) {
            printf("%6d  (KV cache does not fit)\n", B);
            continue;
        }
        int32_t *table = malloc((size_t)B * per * 4), *n = malloc(B * 4), *pos = malloc(B * 4);
        int32_t *tok = malloc(B * 4);
        for (int32_t i = 0; i < B * per; i++) table[i] = i;
        for (int32_t b = 0; b < B; b++) n[b] = 1, pos[b] = ctx, tok[b] = 1000 + b;
        float *logits = tr_ops_alloc(g, (size_t)B * c->vocab_size * 4), one;
        double t[32];
        int rc = 0;
        for (int32_t s = -3; s < steps && !rc; s++) {
            tr_batch_t bt = {.n_seqs = B, .n_tokens = n, .tokens = tok, .start_pos = pos,
                             .block_tables = table, .max_blocks = per};
            double t0 = bench_now();
            rc = tr_model_forward(m, &kv, &bt, logits);
            if (!rc) rc = tr_ops_to_host(g, &one, logits, 4);
            if (s >= 0) t[s] = bench_now() - t0;
            for (int32_t b = 0; b < B; b++) pos[b]++;
        }
        if (rc) {
            printf("%6d  forward failed: %s\n", B, tr_strerror(rc));
        } else {
            double med = s_median(t, steps);
            double bytes = (double)tr_model_weight_bytes(m) +
                           (double)B * (ctx + steps / 2) * c->n_layers * 2.0 * c->n_kv_heads *
                               c->head_dim * 4;
            double gbps = bytes / med / 1e9;
            printf("%6d %12.3f %12.1f %10.1f %7.1f%%\n", B, med * 1e3, B / med, gbps,
                   100 * gbps / copy_gbps);
        }
        tr_ops_free(g, logits);
        tr_kv_cache_fini(&kv, g);
        free(table), free(n), free(pos), free(tok);
    }
}

static void s_prefill(tr_ops_t *g, tr_model_t *m, double gemm_tflops) {
    const tr_model_config_t *c = tr_model_config(m);
    static const int32_t Ts[] = {512, 2048, 8192};
    const int32_t bs = 16;
    printf("\n## prefill (llama-1b shape, bf16 weights, one sequence)\n");
    printf("%6s %12s %12s %10s %8s\n", "tokens", "ms", "tokens/s", "TFLOP/s", "% gemm");
    double qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
    double layer = c->dim * (2 * qd + 2 * kvd) + 3.0 * c->hidden_dim * c->dim;
    for (size_t ti = 0; ti < TR_ARRAY_LEN(Ts); ti++) {
        int32_t T = Ts[ti], per = T / bs + 1, zero = 0;
        tr_kv_cache_t kv;
        if (tr_kv_cache_init(&kv, g, c, per, bs)) continue;
        int32_t *table = malloc(per * 4), *tok = malloc(T * 4);
        for (int32_t i = 0; i < per; i++) table[i] = i;
        for (int32_t i = 0; i < T; i++) tok[i] = (i * 7919) % c->vocab_size;
        float *logits = tr_ops_alloc(g, (size_t)c->vocab_size * 4), one;
        double t[5];
        int rc = 0;
        for (int r = -1; r < 5 && !rc; r++) {
            tr_batch_t bt = {.n_seqs = 1, .n_tokens = &T, .tokens = tok, .start_pos = &zero,
                             .block_tables = table, .max_blocks = per};
            double t0 = bench_now();
            rc = tr_model_forward(m, &kv, &bt, logits);
            if (!rc) rc = tr_ops_to_host(g, &one, logits, 4);
            if (r >= 0) t[r] = bench_now() - t0;
        }
        if (!rc) {
            double med = s_median(t, 5);
            double flops = 2.0 * layer * c->n_layers * T + 2.0 * c->dim * c->vocab_size +
                           4.0 * c->n_heads * c->head_dim * T * (T + 1.0) / 2 * c->n_layers;
            double tf = flops / med / 1e12;
            printf("%6d %12.2f %12.0f %10.1f %7.1f%%\n", T, med * 1e3, T / med, tf,
                   100 * tf / gemm_tflops);
        } else {
            printf("%6d  forward failed: %s\n", T, tr_strerror(rc));
        }
        tr_ops_free(g, logits);
        tr_kv_cache_fini(&kv, g);
        free(table), free(tok);
    }
}

/* ---- decode attention alone: split-K vs one block per sequence ---- */

static double s_attn_time(tr_ops_t *g, tr_attn_params_t *p, int splits) {
    tr_ops_cuda_set_attn_splits(g, splits);
    double t[15];
    float one;
    for (int r = -3; r < 15; r++) {
        double t0 = bench_now();
        int rc = tr_ops_attention(g, p);
        if (!rc) rc = tr_ops_to_host(g, &one, p->out, 4);
        if (rc) return -1;
        if (r >= 0) t[r] = bench_now() - t0;
    }
    tr_ops_cuda_set_attn_splits(g, 0);
    return s_median(t, 15);
}

static void s_attn(tr_ops_t *g) {
    static const int32_t ctxs[] = {4096, 32768, 131072}, Bs[] = {1, 8};
    const int32_t H = 32, Hk = 8, D = 64, bs = 16;
    printf("\n## decode attention (H=%d Hk=%d D=%d, f32 KV, block %d)\n", H, Hk, D, bs);
    printf("%8s %6s %14s %14s %8s\n", "context", "batch", "split-K ms", "1 block ms", "speedup");
    for (size_t ci = 0; ci < TR_ARRAY_LEN(ctxs); ci++)
        for (size_t bi = 0; bi < TR_ARRAY_LEN(Bs); bi++) {
            int32_t ctx = ctxs[ci], B = Bs[bi], per = ctx / bs + 1, nb = B * per;
            size_t pool = (size_t)nb * bs * Hk * D;
            float *kc = tr_ops_alloc(g, pool * 4), *vc = tr_ops_alloc(g, pool * 4);
            float *hq = malloc((size_t)B * H * D * 4);
            for (size_t i = 0; i < (size_t)B * H * D; i++) hq[i] = (float)((i * 37) % 101) / 101.0f;
            float *q = tr_ops_alloc(g, (size_t)B * H * D * 4), *out = tr_ops_alloc(g, (size_t)B * H * D * 4);
            int32_t *ht = malloc((size_t)nb * 4), hs[9], hp[8];
            for (int32_t i = 0; i < nb; i++) ht[i] = i;
            for (int32_t b = 0; b <= B; b++) hs[b] = b;
            for (int32_t b = 0; b < B; b++) hp[b] = ctx - 1;
            int32_t *dt = tr_ops_alloc(g, (size_t)nb * 4), *ds = tr_ops_alloc(g, 9 * 4),
                    *dp = tr_ops_alloc(g, 8 * 4);
            if (!kc || !vc || !q || !out || !dt) {
                printf("%8d %6d  (does not fit)\n", ctx, B);
            } else {
                /* fill the cache with non-zero values: a dequantize of the q pattern */
                tr_ops_to_device(g, q, hq, (size_t)B * H * D * 4);
                for (size_t off = 0; off < pool; off += (size_t)B * H * D) {
                    size_t n = pool - off < (size_t)B * H * D ? pool - off : (size_t)B * H * D;
                    tr_ops_to_device(g, kc + off, hq, n * 4);
                    tr_ops_to_device(g, vc + off, hq, n * 4);
                }
                tr_ops_to_device(g, dt, ht, (size_t)nb * 4);
                tr_ops_to_device(g, ds, hs, (B + 1) * 4);
                tr_ops_to_device(g, dp, hp, B * 4);
                tr_attn_params_t p = {.out = out, .q = q, .k_cache = kc, .v_cache = vc,
                                      .seq_start = ds, .seq_pos = dp, .block_table = dt,
                                      .n_seqs = B, .max_blocks = per, .n_blocks = nb,
                                      .n_heads = H, .n_kv_heads = Hk, .head_dim = D,
                                      .block_size = bs, .scale = 0.125f, .host_seq_start = hs,
                                      .host_seq_pos = hp};
                double a = s_attn_time(g, &p, 0), b1 = s_attn_time(g, &p, 1);
                printf("%8d %6d %14.3f %14.3f %7.2fx\n", ctx, B, a * 1e3, b1 * 1e3, b1 / a);
            }
            tr_ops_free(g, kc), tr_ops_free(g, vc), tr_ops_free(g, q), tr_ops_free(g, out);
            tr_ops_free(g, dt), tr_ops_free(g, ds), tr_ops_free(g, dp);
            free(hq), free(ht);
        }
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    tr_ops_t *g = tr_ops_cuda(0);
    if (!g) {
        printf("bench_gpu: no CUDA device (or built without CUDA); nothing measured\n");
        return 0;
    }
    int all = !strcmp(what, "all");
    double copy = 0, gemm = 0;
    if (all || !strcmp(what, "ceilings") || !strcmp(what, "decode") || !strcmp(what, "prefill")) {
        tr_cuda_bench_copy(g, (size_t)1 << 30, 20, &copy);
        tr_cuda_bench_gemm(g, 8192, 8192, 8192, 10, &gemm);
        printf("## ceilings on %s\ndevice copy: %.1f GB/s (read + write)\n"
               "bf16 GEMM 8192^3 (cuBLASLt, f32 accumulate): %.1f TFLOP/s\n",
               tr_ops_name(g), copy, gemm);
    }
    if (all || !strcmp(what, "decode") || !strcmp(what, "prefill")) {
        s_src_t src;
        memset(&src, 0, sizeof(src));
        tr_model_t *m = s_llama1b(g, &src);
        if (m && (all || !strcmp(what, "decode"))) s_decode(g, m, copy);
        if (m && (all || !strcmp(what, "prefill"))) s_prefill(g, m, gemm);
        tr_model_destroy(&m);
        free(src.mat), free(src.ones);
    }
    if (all || !strcmp(what, "attn")) s_attn(g);
    tr_ops_destroy(&g);
    return 0;
}
