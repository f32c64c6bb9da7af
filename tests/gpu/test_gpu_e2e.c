/*  tests/gpu/test_gpu_e2e.c - the model forward on the GPU against the CPU backend.
 *
 *  For each tiny test model (tests/data/models/stories260K.bin, tinystories-656k): a batch of
 *  two prompts prefilled together, then decode steps for both, on the CPU and on cuda:0
 *  with the same block tables. Every step's logits must match within the tolerance of the
 *  model's weight dtype (gpu_test.h), and the greedy token must match wherever the CPU's
 *  top-two margin exceeds 1e-3 of the logit range. Skipped without a GPU.          */
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
    return done_testing();
}
