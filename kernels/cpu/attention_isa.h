/*  kernels/cpu/attention_isa.h - paged attention body, included once per ISA by
 *  kernels/cpu/attention.c. Oracle: kernels/ref/attention.c.
 *
 *  One task = one sequence, one kv head g and a tile of that sequence's new tokens. Its R
 *  query rows (tile tokens x the H / Hk query heads sharing g) walk the keys in chunks of
 *  TR_ATTN_CH consecutive positions with an online softmax (running max m, sum l, output o
 *  rescaled by e^(m_old - m_new)), so K/V are read once per task whatever the context.
 *  Scores: with many rows, the chunk's keys are transposed once into kt (D, CH) and each
 *  row's scores are D broadcast-FMAs over vectors of keys (no horizontal sums); with few
 *  rows (decode), plain dot products. Masking: key position > row position, or outside the
 *  sliding window, scores -inf. A split-K task (decode with few tiles) covers a slice of
 *  the keys and leaves its unnormalised (o, m, l) for the driver to merge.          */

/* s[r * CH + j] = q_r . k_j for j < nk, four rows at a time for independent FMA chains. */
static inline TR_TARGET void V_FN(s_scores_kt)(const float *const *qr, int32_t R, int32_t D,
                                               const float *kt, float *s) {
    int32_t r = 0;
    for (; r + 4 <= R; r += 4) {
        vf acc[4][TR_ATTN_CH / V_W];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 16
            for (int c = 0; c < TR_ATTN_CH / V_W; c++) acc[i][c] = V_ZERO();
        for (int32_t d = 0; d < D; d++) {
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                vf qd = V_SET1(qr[r + i][d]);
#pragma GCC unroll 16
                for (int c = 0; c < TR_ATTN_CH / V_W; c++)
                    acc[i][c] = V_FMA(qd, V_LOAD(kt + (size_t)d * TR_ATTN_CH + c * V_W), acc[i][c]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 16
            for (int c = 0; c < TR_ATTN_CH / V_W; c++)
                V_STORE(s + (size_t)(r + i) * TR_ATTN_CH + c * V_W, acc[i][c]);
    }
    for (; r < R; r++) {
        vf acc[TR_ATTN_CH / V_W];
#pragma GCC unroll 16
        for (int c = 0; c < TR_ATTN_CH / V_W; c++) acc[c] = V_ZERO();
        for (int32_t d = 0; d < D; d++) {
            vf qd = V_SET1(qr[r][d]);
#pragma GCC unroll 16
            for (int c = 0; c < TR_ATTN_CH / V_W; c++)
                acc[c] = V_FMA(qd, V_LOAD(kt + (size_t)d * TR_ATTN_CH + c * V_W), acc[c]);
        }
#pragma GCC unroll 16
        for (int c = 0; c < TR_ATTN_CH / V_W; c++)
            V_STORE(s + (size_t)r * TR_ATTN_CH + c * V_W, acc[c]);
    }
}

static inline TR_TARGET float V_FN(s_dot)(const float *a, const float *b, int32_t D) {
    vf s0 = V_ZERO(), s1 = V_ZERO();
    int32_t d = 0;
    for (; d + 2 * V_W <= D; d += 2 * V_W) {
        s0 = V_FMA(V_LOAD(a + d), V_LOAD(b + d), s0);
        s1 = V_FMA(V_LOAD(a + d + V_W), V_LOAD(b + d + V_W), s1);
    }
    float s = V_HSUM(V_ADD(s0, s1));
    for (; d < D; d++) s += a[d] * b[d];
    return s;
}

/* o = o * alpha + sum_j p[j] v_j over D, four vectors of o held in registers at a time. */
static inline TR_TARGET void V_FN(s_pv)(float *o, float alpha, const float *p,
                                        const float *const *vr, int32_t nk, int32_t D) {
    int32_t d = 0;
    vf al = V_SET1(alpha);
    for (; d + 4 * V_W <= D; d += 4 * V_W) {
        vf o0 = V_MUL(V_LOAD(o + d), al), o1 = V_MUL(V_LOAD(o + d + V_W), al);
        vf o2 = V_MUL(V_LOAD(o + d + 2 * V_W), al), o3 = V_MUL(V_LOAD(o + d + 3 * V_W), al);
        for (int32_t j = 0; j < nk; j++) {
            if (p[j] == 0.0f) continue;
            vf pj = V_SET1(p[j]);
            const float *v = vr[j] + d;
            o0 = V_FMA(pj, V_LOAD(v), o0);
            o1 = V_FMA(pj, V_LOAD(v + V_W), o1);
            o2 = V_FMA(pj, V_LOAD(v + 2 * V_W), o2);
            o3 = V_FMA(pj, V_LOAD(v + 3 * V_W), o3);
        }
        V_STORE(o + d, o0);
        V_STORE(o + d + V_W, o1);
        V_STORE(o + d + 2 * V_W, o2);
        V_STORE(o + d + 3 * V_W, o3);
    }
    for (; d + V_W <= D; d += V_W) {
        vf o0 = V_MUL(V_LOAD(o + d), al);
        for (int32_t j = 0; j < nk; j++) o0 = V_FMA(V_SET1(p[j]), V_LOAD(vr[j] + d), o0);
        V_STORE(o + d, o0);
    }
    for (; d < D; d++) {
        float acc = o[d] * alpha;
        for (int32_t j = 0; j < nk; j++) acc += p[j] * vr[j][d];
        o[d] = acc;
    }
}

static TR_TARGET void V_FN(s_attn_task)(void *ctx, int32_t task, int32_t thread) {
    const s_attn_t *a = ctx;
    const tr_attn_params_t *p = a->p;
    const s_attn_tile_t tile = a->tiles[task];
    const int32_t H = p->n_heads, Hk = p->n_kv_heads, D = p->head_dim, G = H / Hk;
    const int32_t bs = p->block_size, b = tile.seq, g = tile.kv_head;
    const int32_t nq = tile.t1 - tile.t0, R = nq * G;
    const int32_t *table = p->block_table + (size_t)b * p->max_blocks;
    const int32_t pos0 = p->seq_pos[b] + (tile.t0 - p->seq_start[b]);

    /* scratch: o (R, D), m, l (R), s (R, CH), kt (D, CH), row and key pointers */
    float *o = a->cpu->scratch[thread];
    float *m = o + (size_t)R * D, *l = m + R, *s = l + R, *kt = s + (size_t)R * TR_ATTN_CH;
    const float **qr = (const float **)(((uintptr_t)(kt + (size_t)D * TR_ATTN_CH) + 7) & ~(uintptr_t)7);
    const float **kr = qr + R, **vr = kr + TR_ATTN_CH;

    for (int32_t r = 0; r < R; r++) {
        int32_t i = r / G, h = g * G + r % G;
        qr[r] = p->q + ((size_t)(tile.t0 + i) * H + h) * D;
        m[r] = -INFINITY;
        l[r] = 0;
    }
    memset(o, 0, (size_t)R * D * sizeof(float));
    int32_t jlo = p->sliding_window > 0 ? pos0 - p->sliding_window + 1 : 0;
    jlo = jlo < 0 ? 0 : jlo;
    int32_t jhi = pos0 + nq - 1;
    if (tile.part >= 0) {   /* split-K: this task sees keys [k0, k1) of the tile's range */
        jlo = jlo > tile.k0 ? jlo : tile.k0;
        jhi = jhi < tile.k1 - 1 ? jhi : tile.k1 - 1;
    }
    const int use_kt = R >= TR_ATTN_KT_MIN_ROWS;

    for (int32_t j0 = jlo; j0 <= jhi; j0 += TR_ATTN_CH) {
        int32_t nk = jhi - j0 + 1 < TR_ATTN_CH ? jhi - j0 + 1 : TR_ATTN_CH;
        for (int32_t j = 0; j < nk; j++) {
            int32_t pj = j0 + j;
            size_t slot = (size_t)table[pj / bs] * bs + pj % bs;
            kr[j] = p->k_cache + (slot * Hk + g) * D;
            vr[j] = p->v_cache + (slot * Hk + g) * D;
        }
#if V_W > 1
        /* the next chunk's K and V rows, fetched while this one is scored: a decode task
         * reads each from memory once, and its rows are paged, a stride the hardware
         * prefetcher does not follow */
        for (int32_t pj = j0 + TR_ATTN_CH; pj <= jhi && pj < j0 + 2 * TR_ATTN_CH; pj++) {
            size_t slot = (size_t)table[pj / bs] * bs + pj % bs;
            const char *kn = (const char *)(p->k_cache + (slot * Hk + g) * D);
            const char *vn = (const char *)(p->v_cache + (slot * Hk + g) * D);
            for (int32_t off = 0; off < D * (int32_t)sizeof(float); off += 64) {
                _mm_prefetch(kn + off, _MM_HINT_T0);
                _mm_prefetch(vn + off, _MM_HINT_T0);
            }
        }
#endif
        if (use_kt) {
            for (int32_t j = 0; j < TR_ATTN_CH; j++)
                for (int32_t d = 0; d < D; d++)
                    kt[(size_t)d * TR_ATTN_CH + j] = j < nk ? kr[j][d] : 0.0f;
            V_FN(s_scores_kt)(qr, R, D, kt, s);
        } else {
            for (int32_t r = 0; r < R; r++)
                for (int32_t j = 0; j < nk; j++)
                    s[(size_t)r * TR_ATTN_CH + j] = V_FN(s_dot)(qr[r], kr[j], D);
        }
        for (int32_t r = 0; r < R; r++) {
            int32_t pos = pos0 + r / G;
            int32_t lo = p->sliding_window > 0 ? pos - p->sliding_window + 1 : 0;
            float *sr = s + (size_t)r * TR_ATTN_CH;
            float cmax = -INFINITY;
            for (int32_t j = 0; j < TR_ATTN_CH; j++) {
                int32_t pj = j0 + j;
                sr[j] = (j < nk && pj <= pos && pj >= lo) ? sr[j] * p->scale : -INFINITY;
                cmax = sr[j] > cmax ? sr[j] : cmax;
            }
            if (cmax == -INFINITY) continue;   /* nothing visible in this chunk */
            float mnew = m[r] > cmax ? m[r] : cmax;
            float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
            vf sum = V_ZERO(), mv = V_SET1(mnew);
#pragma GCC unroll 16
            for (int c = 0; c < TR_ATTN_CH / V_W; c++) {
                vf e = V_EXP(V_SUB(V_LOAD(sr + c * V_W), mv));
                V_STORE(sr + c * V_W, e);
                sum = V_ADD(sum, e);
            }
            l[r] = l[r] * alpha + V_HSUM(sum);
            V_FN(s_pv)(o + (size_t)r * D, alpha, sr, vr, nk, D);
            m[r] = mnew;
        }
    }
    if (tile.part >= 0) {   /* unnormalised partial: o, then m and l, merged by the driver */
        float *part = a->parts + (size_t)tile.part * R * (D + 2);
        memcpy(part, o, (size_t)R * D * sizeof(float));
        memcpy(part + (size_t)R * D, m, (size_t)R * sizeof(float));
        memcpy(part + (size_t)R * (D + 1), l, (size_t)R * sizeof(float));
        return;
    }
    for (int32_t r = 0; r < R; r++) {
        int32_t i = r / G, h = g * G + r % G;
        float *out = p->out + ((size_t)(tile.t0 + i) * H + h) * D;
        float inv = 1.0f / l[r];
        for (int32_t d = 0; d < D; d++) out[d] = o[(size_t)r * D + d] * inv;
    }
}

