/*  tests/kernels/test_sample.c - sampling.
 *
 *  The CPU sampler must pick the same token as kernels/ref/sample.c for every parameter mix
 *  (it sorts a pruned prefix instead of the whole vocabulary). The oracle itself is checked
 *  against definitions: greedy is the argmax, top_k = 1 is greedy, tokens outside the top-k
 *  / nucleus / min-p set are never drawn, empirical frequencies over 20000 counters match
 *  the softmax at temperature 1 (chi-square), the draw depends only on (seed, counter),
 *  the repetition penalty divides positive and multiplies negative logits, and logprobs
 *  are the log-softmax of the raw logits.                                          */
#include "tests/kernels/kernel_test.h"

static tr_sample_params_t s_params(float temp, int32_t top_k, float top_p, float min_p,
                                   uint64_t seed, uint64_t counter) {
    return (tr_sample_params_t){.temperature = temp, .top_k = top_k, .top_p = top_p,
                                .min_p = min_p, .repetition_penalty = 1, .seed = seed,
                                .counter = counter};
}

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);

    /* CPU = ref over many random rows and parameter mixes */
    {
        int32_t B = 64, V = 5000;
        float *lg = kt_rand((size_t)B * V, -4, 4);
        for (int32_t b = 0; b < B; b += 3) lg[(size_t)b * V + kt_int(V)] += 12;   /* peaked rows */
        int32_t prev[6] = {1, 5, 5, 4999, 77, 1};
        tr_sample_params_t *sp = malloc(B * sizeof(*sp));
        int32_t *tr = malloc(B * 4), *tb = malloc(B * 4);
        float *lr = malloc(B * 4), *lb = malloc(B * 4);
        for (int round = 0; round < 6; round++) {
            for (int32_t b = 0; b < B; b++) {
                sp[b] = s_params(kt_uniform(0, 1.5f), kt_int(3) ? 0 : 1 + kt_int(50),
                                 kt_int(2) ? kt_uniform(0.3f, 1.0f) : 1.0f,
                                 kt_int(3) ? 0 : kt_uniform(0, 0.3f), 42 + b, round);
                if (b % 5 == 0) sp[b].temperature = 0;
                if (b % 4 == 0) {
                    sp[b].repetition_penalty = 1.3f;
                    sp[b].prev_tokens = prev;
                    sp[b].n_prev = 6;
                }
            }
            tr_ops_sample(ref, tr, lr, lg, B, V, sp);
            for (int b = 0; b < nb; b++) {
                int rc = tr_ops_sample(be[b].ops, tb, lb, lg, B, V, sp);
                ok(rc == TR_OK && memcmp(tb, tr, B * 4) == 0 && memcmp(lb, lr, B * 4) == 0,
                   "sample %s round %d: same tokens and logprobs as ref", be[b].label, round);
            }
        }
        free(lg), free(sp), free(tr), free(tb), free(lr), free(lb);
    }

    /* oracle against definitions, on a small vocabulary */
    float l[8] = {0.5f, 2.0f, -1.0f, 1.5f, 2.0f, -3.0f, 0.0f, 1.0f};
    double p[8], z = 0;
    for (int i = 0; i < 8; i++) z += exp(l[i]);
    for (int i = 0; i < 8; i++) p[i] = exp(l[i]) / z;
    int32_t tok;
    float lp;
    tr_sample_params_t sp = s_params(0, 0, 1, 0, 1, 0);
    tr_ops_sample(ref, &tok, &lp, l, 1, 8, &sp);
    ok(tok == 1, "greedy picks the argmax, lowest id on ties (got %d)", tok);
    ok(fabs(lp - log(p[1])) < 1e-5, "logprob is the log-softmax (%f vs %f)", lp, log(p[1]));
    int all_greedy = 1;
    for (int c = 0; c < 50; c++) {
        sp = s_params(1.0f, 1, 1, 0, 7, c);
        tr_ops_sample(ref, &tok, NULL, l, 1, 8, &sp);
        all_greedy &= tok == 1;
    }
    ok(all_greedy, "top_k = 1 is greedy");
    int counts[8] = {0}, outside_k = 0, outside_p = 0, outside_min = 0;
    for (int c = 0; c < 20000; c++) {
        sp = s_params(1.0f, 0, 1, 0, 99, c);
        tr_ops_sample(ref, &tok, NULL, l, 1, 8, &sp);
        counts[tok]++;
        sp = s_params(1.0f, 3, 1, 0, 99, c);    /* top 3: ids 1, 4, 3 */
        tr_ops_sample(ref, &tok, NULL, l, 1, 8, &sp);
        outside_k += !(tok == 1 || tok == 4 || tok == 3);
        sp = s_params(1.0f, 0, 0.5f, 0, 99, c); /* 0.5 of mass: ids 1 and 4 */
        tr_ops_sample(ref, &tok, NULL, l, 1, 8, &sp);
        outside_p += !(tok == 1 || tok == 4);
        sp = s_params(1.0f, 0, 1, 0.5f, 99, c); /* p >= 0.5 p_max: ids 1, 4, 3 (e^-0.5 = 0.61) */
        tr_ops_sample(ref, &tok, NULL, l, 1, 8, &sp);
        outside_min += !(tok == 1 || tok == 4 || tok == 3);
    }
    double chi2 = 0;
    for (int i = 0; i < 8; i++) chi2 += pow(counts[i] - 20000 * p[i], 2) / (20000 * p[i]);
    ok(chi2 < 24.3, "frequencies match softmax at temperature 1 (chi2 = %.1f, 7 dof, p=0.001)", chi2);
    ok(outside_k == 0 && outside_p == 0 && outside_min == 0,
       "nothing drawn outside top-k / top-p / min-p sets (%d %d %d)", outside_k, outside_p, outside_min);
    int32_t a1, a2, b1;
    sp = s_params(1.0f, 0, 1, 0, 5, 11);
    tr_ops_sample(ref, &a1, NULL, l, 1, 8, &sp);
    tr_ops_sample(ref, &a2, NULL, l, 1, 8, &sp);
    int differs = 0;
    for (uint64_t c = 0; c < 20; c++) {
        sp = s_params(1.0f, 0, 1, 0, 5, c);
        tr_ops_sample(ref, &b1, NULL, l, 1, 8, &sp);
        differs |= b1 != a1;
    }
    ok(a1 == a2 && differs, "the draw is a function of (seed, counter)");
    ok(tr_sample_uniform(1, 2) == tr_sample_uniform(1, 2) && tr_sample_uniform(1, 2) != tr_sample_uniform(2, 2) &&
           tr_sample_uniform(3, 4) >= 0 && tr_sample_uniform(3, 4) < 1, "uniform draws are pure and in [0, 1)");
    /* repetition penalty: 2.0 on ids 1 and 4 (positive) makes 3 the argmax; on a negative
     * logit it pushes further down */
    int32_t prev[3] = {1, 4, 1};
    sp = s_params(0, 0, 1, 0, 0, 0);
    sp.repetition_penalty = 2.0f;
    sp.prev_tokens = prev;
    sp.n_prev = 3;
    tr_ops_sample(ref, &tok, NULL, l, 1, 8, &sp);
    ok(tok == 3, "repetition penalty divides positive logits (argmax moves to 3, got %d)", tok);
    float neg[3] = {-1.0f, -1.5f, -10.0f};
    int32_t prev2[1] = {0};
    sp.prev_tokens = prev2;
    sp.n_prev = 1;
    tr_ops_sample(ref, &tok, NULL, neg, 1, 3, &sp);
    ok(tok == 1, "repetition penalty multiplies negative logits (got %d)", tok);
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
