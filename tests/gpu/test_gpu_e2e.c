/*  tests/gpu/test_gpu_e2e.c - the model forward on the GPU against the CPU backend, and
 *  recorded decode steps (CUDA graphs) against eager ones.
 *
 *  For each tiny test model (tests/data/models/stories260K.bin, tinystories-656k): a batch of
 *  two prompts prefilled together, then decode steps for both, on the CPU and on cuda:0
 *  with the same block tables. Every step's logits must match within the tolerance of the
 *  model's weight dtype (gpu_test.h), and the greedy token must match wherever the CPU's
 *  top-two margin exceeds 1e-3 of the logit range.
 *
 *  Graphs: two models on cuda:0, one with tr_model_enable_graphs, fed the same prefill of
 *  five prompts and then decode steps over changing subsets (batch buckets 1, 2, 4, 8,
 *  some rows without logits): logits within f32 NMSE of the eager model's, identical greedy
 *  tokens, and graphs recorded and replayed. Also tr_ops_memory_info on the device, which
 *  the executor sizes the KV pool from. Skipped without a GPU.                      */
#include "tests/gpu/gpu_test.h"

#include "models/model.h"

#define DATA "tests/data/models/"
#define B 2
#define STEPS 12

static void s_model(const char *path) {
    tr_ops_t *cpu = tr_ops_cpu(), *g = tr_ops_cuda(0);
    tr_model_t *mc = NULL, *mg = NULL;
    char err[512] = "";
    int rc = tr_model_load(&mc, path, cpu, NULL, err, sizeof(err));
    if (!rc) rc = tr_model_load(&mg, path, g, NULL, err, sizeof(err));
    if (!ok(rc == TR_OK, "load %s on cpu and %s %s", path, tr_ops_name(g), err)) goto out;
    const tr_model_config_t *c = tr_model_config(mc);
    const int32_t V = c->vocab_size, bs = 16, per = 8;
    double tol = gt_nmse_dtype(tr_model_weight_dtype(mc));
    tr_kv_cache_t kc, kg;
    rc = tr_kv_cache_init(&kc, cpu, c, B * per, bs);
    if (!rc) rc = tr_kv_cache_init(&kg, g, c, B * per, bs);
    if (!ok(rc == TR_OK, "kv caches")) goto out;
    int32_t table[B * 8];
    for (int32_t i = 0; i < B * per; i++) table[i] = B * per - 1 - i;   /* reversed blocks */
    int32_t n_tok[B] = {11, 5}, start[B] = {0, 0}, toks[16];
    for (int i = 0; i < 16; i++) toks[i] = 1 + kt_int(V - 1);
    float *lc = malloc((size_t)B * V * 4), *lg = malloc((size_t)B * V * 4);
    float *dl = tr_ops_alloc(g, (size_t)B * V * 4);
    int bad_tokens = 0, compared = 0;
    double worst = 0;
    for (int step = 0; step <= STEPS; step++) {
        tr_batch_t bt = {.n_seqs = B, .n_tokens = n_tok, .tokens = toks, .start_pos = start,
                         .block_tables = table, .max_blocks = per};
        tr_ops_memset(g, dl, 0xff, (size_t)B * V * 4);
        int r1 = tr_model_forward(mc, &kc, &bt, lc);
        int r2 = tr_model_forward(mg, &kg, &bt, dl);
        if (!r2) r2 = tr_ops_to_host(g, lg, dl, (size_t)B * V * 4);
        if (!ok(r1 == TR_OK && r2 == TR_OK, "%s step %d forward", path, step)) break;
        double e = kt_nmse(lg, lc, (size_t)B * V);
        worst = e > worst ? e : worst;
        int32_t next[B];
        for (int32_t b = 0; b < B; b++) {
            const float *x = lc + (size_t)b * V, *y = lg + (size_t)b * V;
            int32_t a = 0, a2 = -1, ag = 0;
            float lo = x[0], hi = x[0];
            for (int32_t i = 1; i < V; i++) {
                if (x[i] > x[a]) a2 = a, a = i;
                else if (a2 < 0 || x[i] > x[a2]) a2 = i;
                if (y[i] > y[ag]) ag = i;
                lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
            }
            if (x[a] - x[a2] > 1e-3f * (hi - lo)) {
                compared++;
                bad_tokens += a != ag;
            }
            next[b] = a;
            start[b] += n_tok[b];
        }
        toks[0] = next[0], toks[1] = next[1];
        n_tok[0] = n_tok[1] = 1;
    }
    ok(worst < tol, "%s: logits nmse worst %.2e over %d steps (threshold %.0e)", path, worst,
       STEPS + 1, tol);
    ok(bad_tokens == 0, "%s: greedy tokens equal where the margin allows (%d of %d compared)",
       path, compared - bad_tokens, compared);
    tr_ops_free(g, dl);
    free(lc), free(lg);
    tr_kv_cache_fini(&kc, cpu);
    tr_kv_cache_fini(&kg, g);
out:
    tr_model_destroy(&mg);
    tr_model_destroy(&mc);
    tr_ops_destroy(&g);
    tr_ops_destroy(&cpu);
}

/* ---- decode graphs against eager steps ---- */

#define GS 5            /* sequences */
#define GPER 8          /* blocks per sequence */

static void s_graphs(const char *path) {
    tr_ops_t *g = tr_ops_cuda(0);
    tr_model_t *me = NULL, *mg = NULL;
    char err[512] = "";
    int rc = tr_model_load(&me, path, g, NULL, err, sizeof(err));
    if (!rc) rc = tr_model_load(&mg, path, g, NULL, err, sizeof(err));
    if (!ok(rc == TR_OK, "graphs: load %s twice on %s %s", path, tr_ops_name(g), err)) goto out;
    const tr_model_config_t *c = tr_model_config(me);
    const int32_t V = c->vocab_size, bs = 16;
    ok(tr_model_enable_graphs(mg, true) == TR_OK, "graphs: recording on for %s", path);
    ok(tr_model_reserve(mg, 64, GS, (c->max_seq_len + bs - 1) / bs) == TR_OK, "graphs: reserve");
    tr_kv_cache_t ke, kg;
    rc = tr_kv_cache_init(&ke, g, c, GS * GPER + 1, bs);
    if (!rc) rc = tr_kv_cache_init(&kg, g, c, GS * GPER + 1, bs);
    if (!ok(rc == TR_OK, "graphs: kv caches")) goto out;
    kg.pad_block = GS * GPER;
    int32_t tables[GS][GPER], len[GS] = {11, 5, 20, 1, 7}, pos[GS], last[GS];
    for (int32_t s = 0; s < GS; s++)
        for (int32_t j = 0; j < GPER; j++) tables[s][j] = s * GPER + GPER - 1 - j;
    float *le = malloc((size_t)GS * V * 4), *lg = malloc((size_t)GS * V * 4);
    float *de = tr_ops_alloc(g, (size_t)GS * V * 4), *dg = tr_ops_alloc(g, (size_t)GS * V * 4);
    int32_t toks[64], n_tok[GS], start[GS], tab[GS * GPER], sel[GS];
    uint8_t want[GS];
    static const uint8_t subsets[][GS] = {
        {1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}, {0, 0, 0, 1, 0}, {0, 1, 0, 0, 1}, {1, 1, 1, 1, 1},
        {1, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {0, 0, 1, 0, 0}, {1, 1, 1, 1, 1}, {1, 1, 0, 1, 1},
    };
    double worst = 0;
    int steps = 0, bad_tokens = 0, failed = 0;
    for (int it = -1; it < 3 * (int)TR_ARRAY_LEN(subsets) && !failed; it++) {
        int32_t n = 0, t = 0;
        for (int32_t s = 0; s < GS; s++) {
            if (it < 0) {   /* the prefill */
                for (int32_t i = 0; i < len[s]; i++) toks[t++] = 1 + kt_int(V - 1);
                n_tok[n] = len[s], start[n] = 0, want[n] = 1, pos[s] = 0;
            } else {
                if (!subsets[it % TR_ARRAY_LEN(subsets)][s] || pos[s] >= GPER * bs) continue;
                toks[t++] = last[s];
                n_tok[n] = 1, start[n] = pos[s];
                want[n] = (uint8_t)(it / (int)TR_ARRAY_LEN(subsets) != 1 || (it + s) % 3);
            }
            memcpy(tab + n * GPER, tables[s], sizeof(tables[s]));
            sel[n++] = s;
        }
        tr_batch_t bt = {.n_seqs = n, .n_tokens = n_tok, .tokens = toks, .start_pos = start,
                         .block_tables = tab, .max_blocks = GPER, .want_logits = want};
        const int32_t rows = tr_batch_n_logits(&bt);
        tr_ops_memset(g, dg, 0xff, (size_t)GS * V * 4);
        int r1 = tr_model_forward(me, &ke, &bt, de);
        int r2 = tr_model_forward(mg, &kg, &bt, dg);
        if (!r1) r1 = tr_ops_to_host(g, le, de, (size_t)rows * V * 4);
        if (!r2) r2 = tr_ops_to_host(g, lg, dg, (size_t)rows * V * 4);
        if (!ok(r1 == TR_OK && r2 == TR_OK, "graphs: %s step %d", path, it)) failed = 1;
        double e = rows ? kt_nmse(lg, le, (size_t)rows * V) : 0;
        worst = e > worst ? e : worst;
        steps += it >= 0;
        for (int32_t i = 0, r = 0; i < n; i++) {
            int32_t s = sel[i];
            pos[s] += n_tok[i];
            if (!want[i]) continue;
            const float *x = le + (size_t)r * V, *y = lg + (size_t)r * V;
            int32_t a = 0, b = 0;
            for (int32_t v = 1; v < V; v++) {
                a = x[v] > x[a] ? v : a;
                b = y[v] > y[b] ? v : b;
            }
            bad_tokens += a != b;
            last[s] = a;
            r++;
        }
    }
    tr_model_graph_stats_t gs;
    tr_model_graph_stats(mg, &gs);
    ok(gs.on && !failed && worst < GT_NMSE_F32,
       "graphs: %s: logits nmse worst %.2e over %d decode steps (threshold %.0e)", path, worst,
       steps, GT_NMSE_F32);
    ok(bad_tokens == 0, "graphs: %s: greedy tokens equal (%d differ)", path, bad_tokens);
    ok(gs.recorded >= 4 && gs.replayed > 0 && gs.recorded + gs.replayed == (uint64_t)steps,
       "graphs: %s: %llu recorded, %llu replayed, %llu eager of %d steps", path,
       (unsigned long long)gs.recorded, (unsigned long long)gs.replayed,
       (unsigned long long)gs.eager, steps);
    tr_ops_free(g, de), tr_ops_free(g, dg);
    free(le), free(lg);
    tr_kv_cache_fini(&ke, g);
    tr_kv_cache_fini(&kg, g);
out:
    tr_model_destroy(&mg);
    tr_model_destroy(&me);
    tr_ops_destroy(&g);
}

int main(void) {
    plan_lazy();
    tr_ops_t *g = tr_ops_cuda(0);
    if (!g) {
        skip("no CUDA device (or built without CUDA): GPU end-to-end test not run");
        return done_testing();
    }
    tr_ops_destroy(&g);
    gt_seed();
    s_model(DATA "stories260K.bin");
    s_model(DATA "tinystories-656k");
    g = tr_ops_cuda(0);
    size_t fr = 0, tot = 0;
    int rc = g ? tr_ops_memory_info(g, &fr, &tot) : TR_ENOTSUP;
    ok(rc == TR_OK && fr > 0 && fr <= tot,
       "memory_info on cuda:0: %zu of %zu MiB free", fr >> 20, tot >> 20);
    tr_ops_destroy(&g);
    s_graphs(DATA "stories260K.bin");
    s_graphs(DATA "tinystories-656k");
    return done_testing();
}
