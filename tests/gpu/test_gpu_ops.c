/*  tests/gpu/test_gpu_ops.c - every CUDA op against its C reference (kernels/ref).
 *
 *  Fresh random inputs each run, poisoned outputs, non-power-of-two sizes, thresholds per
 *  dtype (tests/gpu/gpu_test.h). Covers matmul (f32, bf16, f16, q8_0; bias; accumulate),
 *  rmsnorm, swiglu, softmax, sigmoid, add_rows, gather_rows, embed (every dtype), rope (both
 *  layouts, partial rotation, linear and llama3 scaling), kv_store, attention (prefill,
 *  chunked prefill, decode, GQA, windows, split-K forced and automatic, with and without
 *  host copies of seq_start), moe_route, sample (greedy, temperature, top-k, top-p, min-p,
 *  repetition penalty, logprobs) and quantize/dequantize. Skipped without a GPU.     */
#include "tests/gpu/gpu_test.h"

#include "kernels/cuda/cuda.h"

static tr_ops_t *g, *ref;

/* ---- matmul ---- */

static void s_matmul(tr_dtype_t dt, int32_t M, int32_t N, int32_t K, int bias, int acc) {
    float *x = kt_rand((size_t)M * K, -1, 1), *wf = kt_rand((size_t)N * K, -1, 1);
    float *b = kt_rand(N, -1, 1), *y0 = kt_rand((size_t)M * N, -1, 1);
    void *w = kt_quantize(ref, dt, wf, (int64_t)N * K);
    size_t wb = tr_dtype_row_bytes(dt, (int64_t)N * K), yb = (size_t)M * N * 4;
    float *yr = malloc(yb);
    memcpy(yr, y0, yb);
    tr_matmul_params_t p = {.y = yr, .x = x, .w = w, .w_dtype = dt, .bias = bias ? b : NULL,
                            .M = M, .N = N, .K = K, .accumulate = acc};
    tr_ops_matmul(ref, &p);
    float *dx = gt_up(g, x, (size_t)M * K * 4), *db = gt_up(g, b, N * 4);
    float *dy = acc ? gt_up(g, y0, yb) : gt_poisoned(g, yb);
    void *dw = NULL;
    tr_ops_upload_weights(g, w, wb, &dw);
    p = (tr_matmul_params_t){.y = dy, .x = dx, .w = dw, .w_dtype = dt, .bias = bias ? db : NULL,
                             .M = M, .N = N, .K = K, .accumulate = acc};
    int rc = tr_ops_matmul(g, &p);
    float *out = gt_down(g, dy, yb);
    double e = kt_nmse(out, yr, (size_t)M * N);
    ok(rc == TR_OK && e < gt_nmse_dtype(dt), "matmul %s M=%d N=%d K=%d bias=%d acc=%d nmse=%.2e",
       tr_dtype_name(dt), M, N, K, bias, acc, e);
    tr_ops_release_weights(g, dw);
    tr_ops_free(g, dx), tr_ops_free(g, db), tr_ops_free(g, dy);
    free(x), free(wf), free(b), free(y0), free(w), free(yr), free(out);
}

/* ---- elementwise and row ops ---- */

static void s_rows_ops(int32_t T, int32_t D) {
    size_t n = (size_t)T * D, nb = n * 4;
    float *x = kt_rand(n, -3, 3), *w = kt_rand(D, -1, 1), *u = kt_rand(n, -2, 2);
    float *dx = gt_up(g, x, nb), *dw = gt_up(g, w, D * 4), *du = gt_up(g, u, nb);
    float *dy = gt_poisoned(g, nb), *r = malloc(nb), *out;
    /* rmsnorm */
    tr_ops_rmsnorm(ref, r, x, w, T, D, 1e-5f);
    int rc = tr_ops_rmsnorm(g, dy, dx, dw, T, D, 1e-5f);
    out = gt_down(g, dy, nb);
    double e = kt_nmse(out, r, n);
    ok(rc == TR_OK && e < GT_NMSE_F32, "rmsnorm T=%d D=%d nmse=%.2e", T, D, e);
    free(out);
    /* swiglu */
    tr_ops_memset(g, dy, 0xff, nb);
    tr_ops_swiglu(ref, r, x, u, (int64_t)n);
    rc = tr_ops_swiglu(g, dy, dx, du, (int64_t)n);
    out = gt_down(g, dy, nb);
    e = kt_nmse(out, r, n);
    ok(rc == TR_OK && e < GT_NMSE_F32, "swiglu n=%zu nmse=%.2e", n, e);
    free(out);
    /* softmax and sigmoid, in place on a copy */
    memcpy(r, x, nb);
    tr_ops_softmax(ref, r, T, D);
    tr_ops_to_device(g, dy, x, nb);
    rc = tr_ops_softmax(g, dy, T, D);
    out = gt_down(g, dy, nb);
    e = kt_nmse(out, r, n);
    ok(rc == TR_OK && e < GT_NMSE_F32, "softmax rows=%d n=%d nmse=%.2e", T, D, e);
    free(out);
    memcpy(r, x, nb);
    tr_ops_sigmoid(ref, r, (int64_t)n);
    tr_ops_to_device(g, dy, x, nb);
    rc = tr_ops_sigmoid(g, dy, (int64_t)n);
    out = gt_down(g, dy, nb);
    e = kt_nmse(out, r, n);
    ok(rc == TR_OK && e < GT_NMSE_F32, "sigmoid n=%zu nmse=%.2e", n, e);
    free(out);
    /* add_rows: plain residual, then scatter with scales into a permutation */
    int32_t *idx = malloc(T * 4);
    for (int32_t i = 0; i < T; i++) idx[i] = i;
    for (int32_t i = T - 1; i > 0; i--) {
        int32_t j = kt_int(i + 1), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
    float *sc = kt_rand(T, -1, 1);
    int32_t *didx = gt_up(g, idx, T * 4);
    float *dsc = gt_up(g, sc, T * 4);
    for (int k = 0; k < 2; k++) {
        memcpy(r, u, nb);
        tr_ops_add_rows(ref, r, x, k ? idx : NULL, k ? sc : NULL, T, D);
        tr_ops_to_device(g, dy, u, nb);
        rc = tr_ops_add_rows(g, dy, dx, k ? didx : NULL, k ? dsc : NULL, T, D);
        out = gt_down(g, dy, nb);
        e = kt_nmse(out, r, n);
        ok(rc == TR_OK && e < GT_NMSE_F32, "add_rows %s T=%d D=%d nmse=%.2e",
           k ? "scatter+scale" : "residual", T, D, e);
        free(out);
    }
    /* gather */
    tr_ops_memset(g, dy, 0xff, nb);
    tr_ops_gather_rows(ref, r, x, idx, T, D);
    rc = tr_ops_gather_rows(g, dy, dx, didx, T, D);
    out = gt_down(g, dy, nb);
    ok(rc == TR_OK && memcmp(out, r, nb) == 0, "gather_rows T=%d D=%d exact", T, D);
    free(out);
    tr_ops_free(g, dx), tr_ops_free(g, dw), tr_ops_free(g, du), tr_ops_free(g, dy);
    tr_ops_free(g, didx), tr_ops_free(g, dsc);
    free(x), free(w), free(u), free(r), free(idx), free(sc);
}

static void s_embed_quant(tr_dtype_t dt, int32_t V, int32_t D, int32_t T) {
    float *tf = kt_rand((size_t)V * D, -2, 2);
    void *tab = kt_quantize(ref, dt, tf, (int64_t)V * D);
    size_t tb = tr_dtype_row_bytes(dt, (int64_t)V * D), yb = (size_t)T * D * 4;
    int32_t *ids = malloc(T * 4);
    for (int32_t t = 0; t < T; t++) ids[t] = kt_int(V);
    float *r = malloc(yb);
    tr_ops_embed(ref, r, tab, dt, ids, T, D, V);
    void *dtab = gt_up(g, tab, tb);
    int32_t *dids = gt_up(g, ids, T * 4);
    float *dy = gt_poisoned(g, yb);
    int rc = tr_ops_embed(g, dy, dtab, dt, dids, T, D, V);
    float *out = gt_down(g, dy, yb);
    ok(rc == TR_OK && memcmp(out, r, yb) == 0, "embed %s V=%d D=%d T=%d exact",
       tr_dtype_name(dt), V, D, T);
    free(out);
    /* quantize: device bytes == reference bytes; dequantize: exact */
    float *dtf = gt_up(g, tf, (size_t)V * D * 4);
    void *dq = gt_poisoned(g, tb);
    rc = tr_ops_quantize(g, dq, dt, dtf, (int64_t)V * D);
    void *q = gt_down(g, dq, tb);
    ok(rc == TR_OK && memcmp(q, tab, tb) == 0, "quantize %s n=%d exact", tr_dtype_name(dt), V * D);
    float *dd = gt_poisoned(g, (size_t)V * D * 4), *rr = malloc((size_t)V * D * 4);
    tr_ops_dequantize(ref, rr, tab, dt, (int64_t)V * D);
    rc = tr_ops_dequantize(g, dd, dtab, dt, (int64_t)V * D);
    out = gt_down(g, dd, (size_t)V * D * 4);
    ok(rc == TR_OK && memcmp(out, rr, (size_t)V * D * 4) == 0, "dequantize %s n=%d exact",
       tr_dtype_name(dt), V * D);
    tr_ops_free(g, dtab), tr_ops_free(g, dids), tr_ops_free(g, dy), tr_ops_free(g, dtf);
    tr_ops_free(g, dq), tr_ops_free(g, dd);
    free(tf), free(tab), free(ids), free(r), free(out), free(q), free(rr);
}

/* ---- rope ---- */

static void s_rope(tr_rope_layout_t layout, tr_rope_scaling_t sc, int32_t rot, int32_t T,
                   int32_t H, int32_t Hk, int32_t D) {
    tr_rope_t rp = {.theta = 10000, .rot_dim = rot, .layout = layout, .scaling = sc,
                    .factor = 8, .low_freq_factor = 1, .high_freq_factor = 4,
                    .original_max_pos = 8192};
    size_t qn = (size_t)T * H * D, kn = (size_t)T * Hk * D;
    float *q = kt_rand(qn, -1, 1), *k = kt_rand(kn, -1, 1);
    int32_t *pos = malloc(T * 4);
    for (int32_t t = 0; t < T; t++) pos[t] = kt_int(5000);
    float *dq = gt_up(g, q, qn * 4), *dk = gt_up(g, k, kn * 4);
    int32_t *dpos = gt_up(g, pos, T * 4);
    tr_ops_rope(ref, &rp, q, H, k, Hk, pos, T, D);
    int rc = tr_ops_rope(g, &rp, dq, H, dk, Hk, dpos, T, D);
    float *oq = gt_down(g, dq, qn * 4), *ok_ = gt_down(g, dk, kn * 4);
    double e = kt_nmse(oq, q, qn) + kt_nmse(ok_, k, kn);
    ok(rc == TR_OK && e < 1e-9, "rope %s scaling=%d rot=%d T=%d H=%d Hk=%d D=%d nmse=%.2e",
       layout == TR_ROPE_NEOX ? "neox" : "interleaved", sc, rot, T, H, Hk, D, e);
    tr_ops_free(g, dq), tr_ops_free(g, dk), tr_ops_free(g, dpos);
    free(q), free(k), free(pos), free(oq), free(ok_);
}

/* ---- kv store + attention ---- */

typedef struct {
    int32_t B, H, Hk, D, bs, window;
    int32_t n_new[4], pos[4];
} s_attn_case_t;

static void s_attention(const s_attn_case_t *c, int32_t splits, int host_copies) {
    int32_t T = 0, max_ctx = 0, seq_start[5] = {0};
    for (int32_t b = 0; b < c->B; b++) {
        T += c->n_new[b];
        seq_start[b + 1] = T;
        max_ctx = c->pos[b] + c->n_new[b] > max_ctx ? c->pos[b] + c->n_new[b] : max_ctx;
    }
    int32_t max_blocks = (max_ctx + c->bs - 1) / c->bs + 1, n_blocks = max_blocks * c->B + 3;
    int32_t *perm = malloc(n_blocks * 4);
    for (int32_t i = 0; i < n_blocks; i++) perm[i] = i;
    for (int32_t i = n_blocks - 1; i > 0; i--) {
        int32_t j = kt_int(i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    size_t pool = (size_t)n_blocks * c->bs * c->Hk * c->D, kvn = (size_t)T * c->Hk * c->D;
    size_t qn = (size_t)T * c->H * c->D;
    float *kc = kt_rand(pool, -1, 1), *vc = kt_rand(pool, -1, 1);
    float *k = kt_rand(kvn, -1, 1), *v = kt_rand(kvn, -1, 1), *q = kt_rand(qn, -2, 2);
    int32_t *slots = malloc((T + 1) * 4);
    for (int32_t b = 0; b < c->B; b++)
        for (int32_t t = seq_start[b]; t < seq_start[b + 1]; t++) {
            int32_t p = c->pos[b] + t - seq_start[b];
            slots[t] = perm[b * max_blocks + p / c->bs] * c->bs + p % c->bs;
        }
    float *dkc = gt_up(g, kc, pool * 4), *dvc = gt_up(g, vc, pool * 4);
    float *dk = gt_up(g, k, kvn * 4 + 4), *dv = gt_up(g, v, kvn * 4 + 4);
    float *dq = gt_up(g, q, qn * 4 + 4), *dout = gt_poisoned(g, qn * 4 + 4);
    int32_t *dslots = gt_up(g, slots, (T + 1) * 4), *dstart = gt_up(g, seq_start, 5 * 4);
    int32_t *dpos = gt_up(g, c->pos, 4 * 4), *dtable = gt_up(g, perm, n_blocks * 4);
    tr_ops_kv_store(ref, kc, vc, k, v, slots, T, c->Hk, c->D);
    int rc = tr_ops_kv_store(g, dkc, dvc, dk, dv, dslots, T, c->Hk, c->D);
    float *okc = gt_down(g, dkc, pool * 4), *ovc = gt_down(g, dvc, pool * 4);
    ok(rc == TR_OK && !memcmp(okc, kc, pool * 4) && !memcmp(ovc, vc, pool * 4),
       "kv_store T=%d Hk=%d D=%d exact", T, c->Hk, c->D);
    float *outr = malloc(qn * 4 + 4);
    tr_attn_params_t p = {.out = outr, .q = q, .k_cache = kc, .v_cache = vc,
                          .seq_start = seq_start, .seq_pos = c->pos, .block_table = perm,
                          .n_seqs = c->B, .max_blocks = max_blocks, .n_blocks = n_blocks,
                          .n_heads = c->H, .n_kv_heads = c->Hk, .head_dim = c->D,
                          .block_size = c->bs, .sliding_window = c->window,
                          .scale = 1.0f / sqrtf((float)c->D)};
    tr_ops_attention(ref, &p);
    p.out = dout, p.q = dq, p.k_cache = dkc, p.v_cache = dvc, p.seq_start = dstart;
    p.seq_pos = dpos, p.block_table = dtable;
    p.host_seq_start = host_copies ? seq_start : NULL;
    p.host_seq_pos = host_copies ? c->pos : NULL;
    tr_ops_cuda_set_attn_splits(g, splits);
    rc = tr_ops_attention(g, &p);
    tr_ops_cuda_set_attn_splits(g, 0);
    float *out = gt_down(g, dout, qn * 4);
    double e = kt_nmse(out, outr, qn);
    ok(rc == TR_OK && e < 1e-9,
       "attention B=%d T=%d H=%d Hk=%d D=%d bs=%d window=%d splits=%d%s nmse=%.2e", c->B, T,
       c->H, c->Hk, c->D, c->bs, c->window, splits, host_copies ? "" : " (no host copies)", e);
    tr_ops_free(g, dkc), tr_ops_free(g, dvc), tr_ops_free(g, dk), tr_ops_free(g, dv);
    tr_ops_free(g, dq), tr_ops_free(g, dout), tr_ops_free(g, dslots), tr_ops_free(g, dstart);
    tr_ops_free(g, dpos), tr_ops_free(g, dtable);
    free(perm), free(kc), free(vc), free(k), free(v), free(q), free(slots), free(okc);
    free(ovc), free(outr), free(out);
}

/* ---- moe routing ---- */

static void s_moe(int32_t T, int32_t E, int32_t k, int32_t renorm) {
    float *l = kt_rand((size_t)T * E, -4, 4);
    int32_t *ids = malloc((size_t)T * k * 4);
    float *w = malloc((size_t)T * k * 4);
    tr_ops_moe_route(ref, ids, w, l, T, E, k, renorm);
    float *dl = gt_up(g, l, (size_t)T * E * 4);
    int32_t *dids = gt_poisoned(g, (size_t)T * k * 4);
    float *dw = gt_poisoned(g, (size_t)T * k * 4);
    int rc = tr_ops_moe_route(g, dids, dw, dl, T, E, k, renorm);
    int32_t *oi = gt_down(g, dids, (size_t)T * k * 4);
    float *ow = gt_down(g, dw, (size_t)T * k * 4);
    double e = kt_nmse(ow, w, (size_t)T * k);
    ok(rc == TR_OK && !memcmp(oi, ids, (size_t)T * k * 4) && e < GT_NMSE_F32,
       "moe_route T=%d E=%d k=%d renorm=%d ids equal, weights nmse=%.2e", T, E, k, renorm, e);
    tr_ops_free(g, dl), tr_ops_free(g, dids), tr_ops_free(g, dw);
    free(l), free(ids), free(w), free(oi), free(ow);
}

/* ---- sampling ---- */

static void s_sample(int32_t B, int32_t V) {
    float *l = kt_rand((size_t)B * V, -6, 6);
    tr_sample_params_t *sp = calloc(B, sizeof(*sp));
    int32_t prev[40];
    for (int i = 0; i < 40; i++) prev[i] = kt_int(V);
    for (int32_t b = 0; b < B; b++) {
        sp[b].seed = kt_next();
        sp[b].counter = (uint64_t)kt_int(1000);
        switch (b % 6) {
        case 0: sp[b].temperature = 0; break;                                  /* greedy */
        case 1: sp[b].temperature = 0.8f; break;                               /* full */
        case 2: sp[b].temperature = 1.0f, sp[b].top_k = 1 + kt_int(50); break;
        case 3: sp[b].temperature = 0.7f, sp[b].top_p = 0.9f; break;
        case 4: sp[b].temperature = 1.2f, sp[b].min_p = 0.05f, sp[b].top_k = 200; break;
        case 5:
            sp[b].temperature = 0.9f, sp[b].top_p = 0.95f, sp[b].repetition_penalty = 1.3f;
            sp[b].prev_tokens = prev, sp[b].n_prev = 40;
            break;
        }
    }
    int32_t *tok = malloc(B * 4);
    float *lp = malloc(B * 4);
    tr_ops_sample(ref, tok, lp, l, B, V, sp);
    float *dl = gt_up(g, l, (size_t)B * V * 4), *dlp = gt_poisoned(g, B * 4);
    int32_t *dtok = gt_poisoned(g, B * 4);
    int rc = tr_ops_sample(g, dtok, dlp, dl, B, V, sp);
    int32_t *ot = gt_down(g, dtok, B * 4);
    float *olp = gt_down(g, dlp, B * 4);
    int same = 0;
    for (int32_t b = 0; b < B; b++) same += ot[b] == tok[b];
    double e = kt_nmse(olp, lp, B);
    ok(rc == TR_OK && same == B && e < GT_NMSE_F32,
       "sample B=%d V=%d: %d/%d tokens as the CPU, logprobs nmse=%.2e", B, V, same, B, e);
    tr_ops_free(g, dl), tr_ops_free(g, dlp), tr_ops_free(g, dtok);
    free(l), free(sp), free(tok), free(lp), free(ot), free(olp);
}

int main(void) {
    plan_lazy();
    g = tr_ops_cuda(0);
    if (!g) {
        skip("no CUDA device (or built without CUDA): GPU op tests not run");
        return done_testing();
    }
    gt_seed();
    ref = tr_ops_ref();
    diag("backend %s", tr_ops_name(g));
    static const tr_dtype_t dts[] = {TR_DTYPE_F32, TR_DTYPE_BF16, TR_DTYPE_F16, TR_DTYPE_Q8_0};
    for (size_t i = 0; i < TR_ARRAY_LEN(dts); i++) {
        s_matmul(dts[i], 1, 67, 96, 0, 0);
        s_matmul(dts[i], 7, 257, 160, 1, 0);
        s_matmul(dts[i], 33, 100, 64, 0, 1);
        s_matmul(dts[i], 130, 515, 288, 1, 1);
        s_embed_quant(dts[i], 301, 96, 37);
    }
    s_matmul(TR_DTYPE_BF16, 509, 1003, 2048, 0, 0);
    s_rows_ops(1, 7);
    s_rows_ops(13, 288);
    s_rows_ops(130, 4097);
    for (int lay = 0; lay < 2; lay++) {
        s_rope(lay, TR_ROPE_SCALING_NONE, 0, 9, 6, 2, 64);
        s_rope(lay, TR_ROPE_SCALING_LINEAR, 0, 5, 4, 4, 18);
        s_rope(lay, TR_ROPE_SCALING_LLAMA3, 0, 17, 8, 2, 128);
        s_rope(lay, TR_ROPE_SCALING_NONE, 32, 3, 5, 1, 80);   /* partial rotation */
    }
    static const s_attn_case_t ac[] = {
        {1, 4, 4, 16, 16, 0, {9}, {0}},
        {3, 8, 2, 64, 16, 0, {1, 1, 1}, {0, 17, 40}},
        {4, 6, 3, 32, 4, 0, {1, 7, 33, 2}, {20, 5, 0, 63}},
        {2, 6, 1, 17, 1, 0, {5, 3}, {2, 11}},
        {1, 16, 2, 128, 32, 0, {70}, {5}},
        {2, 4, 2, 24, 4, 5, {12, 1}, {0, 30}},
        {3, 8, 4, 80, 8, 16, {20, 3, 1}, {10, 0, 50}},
        {3, 4, 2, 16, 16, 0, {3, 0, 2}, {0, 4, 9}},
        {2, 8, 2, 64, 16, 0, {1, 1}, {300, 700}},
        {1, 32, 8, 128, 16, 0, {1}, {4000}},
        {1, 4, 2, 32, 8, 100, {1}, {900}},
        {2, 4, 1, 256, 4, 0, {1, 9}, {600, 20}},
        {1, 8, 8, 96, 16, 0, {300}, {0}},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(ac); i++) {
        s_attention(&ac[i], 0, 1);
        s_attention(&ac[i], 1, 1);
        s_attention(&ac[i], 7, i % 2);
    }
    s_moe(1, 8, 2, 1);
    s_moe(37, 60, 4, 0);
    s_moe(130, 128, 8, 1);
    s_sample(6, 7);
    s_sample(12, 32000);
    s_sample(7, 128256);
    /* unsupported shapes answer TR_EINVAL, not a crash */
    tr_attn_params_t bad = {.out = (float *)1, .q = (float *)1, .k_cache = (float *)1,
                            .v_cache = (float *)1, .seq_start = (int32_t *)1,
                            .seq_pos = (int32_t *)1, .block_table = (int32_t *)1, .n_seqs = 1,
                            .max_blocks = 1, .n_blocks = 1, .n_heads = 1, .n_kv_heads = 1,
                            .head_dim = 512, .block_size = 16, .scale = 1};
    ok(tr_ops_attention(g, &bad) == TR_EINVAL, "attention head_dim 512 is TR_EINVAL");
    tr_ops_destroy(&ref);
    tr_ops_destroy(&g);
    return done_testing();
}
