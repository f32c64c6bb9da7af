/*  tests/kernels/test_attention.c - CPU paged attention and KV store against
 *  kernels/ref/attention.c: batches mixing prefill, chunked prefill and decode sequences,
 *  shuffled physical blocks, block sizes 1..32, GQA ratios 1..8, odd head dims, sliding
 *  windows, long decodes and prefill chunks late in a long context (which the CPU backend
 *  splits over the keys and merges). NMSE threshold 1e-10 (f32 throughout; only summation
 *  order and the SIMD exp differ). Bitwise: a SIMD level gives the same output on 1 and
 *  3 threads, and a sequence's rows are the same alone and inside a larger batch (where
 *  the backend tiles and splits the work differently).                              */
#include "tests/kernels/kernel_test.h"

typedef struct {
    int32_t B, H, Hk, D, bs, window;
    int32_t n_new[4], pos[4];
} s_case_t;

static void s_run_case(tr_ops_t *ref, kt_backend_t *be, int nb, const s_case_t *c) {
    int32_t T = 0, max_ctx = 0;
    int32_t seq_start[5] = {0};
    for (int32_t b = 0; b < c->B; b++) {
        T += c->n_new[b];
        seq_start[b + 1] = T;
        int32_t ctx = c->pos[b] + c->n_new[b];
        max_ctx = ctx > max_ctx ? ctx : max_ctx;
    }
    int32_t max_blocks = (max_ctx + c->bs - 1) / c->bs + 1;
    int32_t n_blocks = max_blocks * c->B + 3;
    /* a random permutation of physical blocks shared out to the sequences */
    int32_t *perm = malloc(n_blocks * sizeof(int32_t));
    for (int32_t i = 0; i < n_blocks; i++) perm[i] = i;
    for (int32_t i = n_blocks - 1; i > 0; i--) {
        int32_t j = kt_int(i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int32_t *table = malloc((size_t)c->B * max_blocks * sizeof(int32_t));
    for (int32_t i = 0; i < c->B * max_blocks; i++) table[i] = perm[i];
    size_t pool = (size_t)n_blocks * c->bs * c->Hk * c->D;
    /* the cache holds older context already; the new tokens' K/V go in through kv_store */
    float *kc = kt_rand(pool, -1, 1), *vc = kt_rand(pool, -1, 1);
    float *k = kt_rand((size_t)T * c->Hk * c->D, -1, 1), *v = kt_rand((size_t)T * c->Hk * c->D, -1, 1);
    float *q = kt_rand((size_t)T * c->H * c->D, -2, 2);
    int32_t *slots = malloc((T + 1) * sizeof(int32_t));
    for (int32_t b = 0; b < c->B; b++)
        for (int32_t t = seq_start[b]; t < seq_start[b + 1]; t++) {
            int32_t p = c->pos[b] + t - seq_start[b];
            slots[t] = table[b * max_blocks + p / c->bs] * c->bs + p % c->bs;
        }
    float *kc2 = malloc(pool * 4), *vc2 = malloc(pool * 4);
    memcpy(kc2, kc, pool * 4);
    memcpy(vc2, vc, pool * 4);
    tr_ops_kv_store(ref, kc, vc, k, v, slots, T, c->Hk, c->D);
    float *outr = malloc((size_t)T * c->H * c->D * 4 + 4), *outb = malloc((size_t)T * c->H * c->D * 4 + 4);
    float *outp = malloc((size_t)T * c->H * c->D * 4 + 4);
    tr_attn_params_t p = {.out = outr, .q = q, .k_cache = kc, .v_cache = vc,
                          .seq_start = seq_start, .seq_pos = c->pos, .block_table = table,
                          .n_seqs = c->B, .max_blocks = max_blocks, .n_blocks = n_blocks,
                          .n_heads = c->H, .n_kv_heads = c->Hk, .head_dim = c->D,
                          .block_size = c->bs, .sliding_window = c->window,
                          .scale = 1.0f / sqrtf((float)c->D)};
    int rc = tr_ops_attention(ref, &p);
    ok(rc == TR_OK, "ref attention B=%d H=%d Hk=%d D=%d bs=%d window=%d", c->B, c->H, c->Hk,
       c->D, c->bs, c->window);
    for (int b = 0; b < nb; b++) {
        float *kb = malloc(pool * 4), *vb = malloc(pool * 4);
        memcpy(kb, kc2, pool * 4);
        memcpy(vb, vc2, pool * 4);
        int rs = tr_ops_kv_store(be[b].ops, kb, vb, k, v, slots, T, c->Hk, c->D);
        ok(rs == TR_OK && memcmp(kb, kc, pool * 4) == 0 && memcmp(vb, vc, pool * 4) == 0,
           "kv_store %s T=%d", be[b].label, T);
        p.out = outb;
        p.k_cache = kb;
        p.v_cache = vb;
        rs = tr_ops_attention(be[b].ops, &p);
        double e = kt_nmse(outb, outr, (size_t)T * c->H * c->D);
        ok(rs == TR_OK && e < 1e-10,
           "attention %s B=%d T=%d H=%d Hk=%d D=%d bs=%d window=%d nmse=%.2e", be[b].label,
           c->B, T, c->H, c->Hk, c->D, c->bs, c->window, e);
        /* the same SIMD level on another thread count: the same bits */
        if (b > 0 && !strncmp(be[b].label, be[b - 1].label, strcspn(be[b].label, "/")))
            ok(!memcmp(outb, outp, (size_t)T * c->H * c->D * 4), "attention %s = %s bitwise",
               be[b].label, be[b - 1].label);
        memcpy(outp, outb, (size_t)T * c->H * c->D * 4);
        free(kb), free(vb);
    }
    free(perm), free(table), free(kc), free(vc), free(kc2), free(vc2), free(k), free(v);
    free(q), free(slots), free(outr), free(outb), free(outp);
}

/* A sequence's rows are the same bits alone as inside a batch that changes how the
 * backend tiles and splits the work (more tiles, so no split-K for small ones). */
static void s_batch_invariance(kt_backend_t *be, int nb) {
    enum { B = 4, H = 9, Hk = 3, D = 64, BS = 16, MAXB = 80 };
    const int32_t n_new[B] = {16, 1, 1, 300}, pos[B] = {1000, 700, 1200, 0};
    int32_t n_blocks = B * MAXB, table[B * MAXB], start[B + 1] = {0};
    for (int32_t i = 0; i < n_blocks; i++) table[i] = (i * 37) % n_blocks;   /* 37 coprime */
    for (int32_t b = 0; b < B; b++) start[b + 1] = start[b] + n_new[b];
    size_t pool = (size_t)n_blocks * BS * Hk * D, T = (size_t)start[B];
    float *kc = kt_rand(pool, -1, 1), *vc = kt_rand(pool, -1, 1);
    float *q = kt_rand(T * H * D, -2, 2);
    float *all = malloc(T * H * D * 4), *one = malloc(T * H * D * 4);
    tr_attn_params_t p = {.k_cache = kc, .v_cache = vc, .max_blocks = MAXB, .n_blocks = n_blocks,
                          .n_heads = H, .n_kv_heads = Hk, .head_dim = D, .block_size = BS,
                          .scale = 0.125f};
    for (int i = 0; i < nb; i++) {
        p.out = all, p.q = q, p.seq_start = start, p.seq_pos = pos, p.block_table = table;
        p.n_seqs = B;
        int rc = tr_ops_attention(be[i].ops, &p);
        int same = rc == TR_OK;
        for (int32_t b = 0; b < B; b++) {
            int32_t st1[2] = {0, n_new[b]};
            p.out = one, p.q = q + (size_t)start[b] * H * D, p.seq_start = st1;
            p.seq_pos = pos + b, p.block_table = table + b * MAXB, p.n_seqs = 1;
            rc = tr_ops_attention(be[i].ops, &p);
            same &= rc == TR_OK && !memcmp(one, all + (size_t)start[b] * H * D,
                                           (size_t)n_new[b] * H * D * 4);
        }
        ok(same, "attention %s: every sequence alone = in the batch, bitwise", be[i].label);
    }
    free(kc), free(vc), free(q), free(all), free(one);
}

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    static const s_case_t cases[] = {
        /* one prompt from position 0 (prefill) */
        {1, 4, 4, 16, 16, 0, {9}, {0}},
        /* decode: one token each, various contexts */
        {3, 8, 2, 64, 16, 0, {1, 1, 1}, {0, 17, 40}},
        /* continuous batching: decode + chunked prefill + fresh prefill */
        {4, 6, 3, 32, 4, 0, {1, 7, 33, 2}, {20, 5, 0, 63}},
        /* odd head dim, tiny blocks, MQA */
        {2, 6, 1, 17, 1, 0, {5, 3}, {2, 11}},
        /* GQA 8, head dim 128 (several D blocks of four vectors), long prompt */
        {1, 16, 2, 128, 32, 0, {70}, {5}},
        /* sliding window shorter than the context */
        {2, 4, 2, 24, 4, 5, {12, 1}, {0, 30}},
        {3, 8, 4, 80, 8, 16, {20, 3, 1}, {10, 0, 50}},
        /* empty sequence in the batch */
        {3, 4, 2, 16, 16, 0, {3, 0, 2}, {0, 4, 9}},
        /* long decodes: the CPU backend splits the keys (split-K) and merges */
        {2, 8, 2, 64, 16, 0, {1, 1}, {300, 700}},
        {1, 9, 3, 64, 16, 0, {1}, {1000}},
        /* split-K with a window: early slices see nothing */
        {1, 4, 2, 32, 8, 100, {1}, {900}},
        /* a long decode next to a prefill chunk */
        {2, 4, 1, 48, 4, 0, {1, 9}, {600, 20}},
        /* SmolLM2-135M heads: prefill chunks late in a long context (split over the keys
         * when alone), beside decodes, at odd chunk sizes and starts */
        {1, 9, 3, 64, 16, 0, {64}, {1936}},
        {1, 9, 3, 64, 16, 0, {16}, {1000}},
        {3, 9, 3, 64, 16, 0, {37, 1, 1}, {777, 300, 299}},
        {2, 9, 3, 64, 16, 0, {130, 1}, {513, 1200}},
        /* GQA 1 and 8 on the row path, odd head dims, tiny and odd blocks */
        {1, 4, 4, 32, 16, 0, {40}, {700}},
        {2, 16, 2, 64, 8, 0, {20, 3}, {530, 64}},
        {2, 6, 2, 17, 5, 0, {30, 1}, {300, 600}},
        {1, 3, 1, 80, 3, 0, {50}, {257}},
        {1, 8, 8, 24, 1, 0, {9}, {511}},
        /* sliding windows across segment and step edges, split */
        {1, 8, 2, 32, 16, 300, {48}, {900}},
        {2, 9, 3, 64, 16, 33, {70, 1}, {250, 400}},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) s_run_case(ref, be, nb, &cases[i]);
    s_batch_invariance(be, nb);
    /* a block table entry out of range is refused, not read */
    float x[64];
    int32_t st[2] = {0, 1}, pos[1] = {0}, bt[1] = {5};
    tr_attn_params_t bad = {.out = x, .q = x, .k_cache = x, .v_cache = x, .seq_start = st,
                            .seq_pos = pos, .block_table = bt, .n_seqs = 1, .max_blocks = 1,
                            .n_blocks = 2, .n_heads = 1, .n_kv_heads = 1, .head_dim = 4,
                            .block_size = 4, .scale = 1};
    ok(tr_ops_attention(ref, &bad) == TR_EINVAL, "block id past n_blocks is TR_EINVAL");
    bt[0] = 1;
    pos[0] = 4;
    ok(tr_ops_attention(ref, &bad) == TR_EINVAL, "position past the block table is TR_EINVAL");
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
