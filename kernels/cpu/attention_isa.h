/*  kernels/cpu/attention_isa.h - paged attention body, included once per ISA by
 *  kernels/cpu/attention.c. Oracle: kernels/ref/attention.c.
 *
 *  One task = one tile (sequence, kv head g, token tile) and the segments [seg0, seg1) of
 *  its keys. The tile's R query rows walk the keys in steps of at most TR_ATTN_CH
 *  consecutive positions (step boundaries at absolute multiples of TR_ATTN_CH) with an
 *  online softmax per segment (running max m, sum l, output o rescaled by
 *  e^(m_old - m_new)); each segment's (o, m, l) is folded into the row's result
 *  (s_fold) or, for a split tile, left for the merge run.
 *
 *  Row path (R >= TR_ATTN_ROW_MIN: prefill and chunked prefill). Q is transposed once per
 *  task into qt (D, Rp), Rp = R rounded up to the vector width, so a vector holds one
 *  value of V_W rows: scores st (keys, Rp) come from S_NJ x S_NRV register tiles of FMAs
 *  (a broadcast K value times a vector of Q^T), the softmax (max, exp, sum) runs on
 *  vectors of rows with no horizontal operation, and P V accumulates S_NPR rows x four
 *  vectors along D in registers, broadcasting each probability. The causal mask (and a
 *  sliding window's edge) costs something only in steps that cross it: per key, the rows
 *  that may not see it are a prefix (causal) and a suffix (window) of the tile.
 *  Dot path (fewer rows: decode): per row and key a dot product along D (four keys' sums
 *  in one transpose-and-add tree), the step's scores exponentiated along keys.
 *
 *  Every score, maximum, exponential and sum of a row is computed by the same sequence of
 *  operations whatever the tile's other rows and whatever register tile it falls in, so
 *  a row's bits depend only on its own sequence's tiling (which path).               */

#undef S_NJ
#undef S_NRV
#undef S_NPR
/* Score tile: S_NJ keys x S_NRV vectors of rows. PV tile: S_NPR rows x 4 vectors of D.
 * AVX2 has 16 registers, AVX-512 32. */
#define S_NJ 4
#define S_NRV (V_W == 8 ? 2 : 4)
#define S_NPR (V_W == 8 ? 2 : 4)

/* ---- row path ---- */

/* st[jj * Rp + i * V_W ..] = scale * (q . k_jj) for S_NJ keys and nrv vectors of rows;
 * qt and st already point at the first row vector. */
static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_qk_tile)(const float *qt, int32_t Rp, int32_t D, const float *const *kr, float *st,
                float scale, const int nrv) {
    vf acc[S_NJ][4];   /* nrv <= 4; S_NRV bounds it only in the main loop of the caller */
#pragma GCC unroll 4
    for (int jj = 0; jj < S_NJ; jj++)
#pragma GCC unroll 4
        for (int i = 0; i < nrv; i++) acc[jj][i] = V_ZERO();
    const float *k0 = kr[0], *k1 = kr[1], *k2 = kr[2], *k3 = kr[3];
    for (int32_t d = 0; d < D; d++) {
        vf qv[4];
#pragma GCC unroll 4
        for (int i = 0; i < nrv; i++) qv[i] = V_LOAD(qt + (size_t)d * Rp + i * V_W);
        vf b0 = V_SET1(k0[d]), b1 = V_SET1(k1[d]), b2 = V_SET1(k2[d]), b3 = V_SET1(k3[d]);
#pragma GCC unroll 4
        for (int i = 0; i < nrv; i++) {
            acc[0][i] = V_FMA(b0, qv[i], acc[0][i]);
            acc[1][i] = V_FMA(b1, qv[i], acc[1][i]);
            acc[2][i] = V_FMA(b2, qv[i], acc[2][i]);
            acc[3][i] = V_FMA(b3, qv[i], acc[3][i]);
        }
    }
    vf sc = V_SET1(scale);
#pragma GCC unroll 4
    for (int jj = 0; jj < S_NJ; jj++)
#pragma GCC unroll 4
        for (int i = 0; i < nrv; i++)
            V_STORE(st + (size_t)jj * Rp + i * V_W, V_MUL(acc[jj][i], sc));
}

/* o[i] = o[i] * alpha[i] + sum_j st[j * Rp + i] v_j for npr rows (o row-major, stride D;
 * st and alpha already point at the first row), four vectors of D at a time. */
static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_pv_tile)(float *o, int32_t D, const float *alpha, const float *st, int32_t Rp,
                const float *const *vr, int32_t nk, const int npr) {
    int32_t d = 0;
    for (; d + 4 * V_W <= D; d += 4 * V_W) {
        vf acc[S_NPR][4];
#pragma GCC unroll 4
        for (int i = 0; i < npr; i++) {
            vf al = V_SET1(alpha[i]);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++)
                acc[i][c] = V_MUL(V_LOAD(o + (size_t)i * D + d + c * V_W), al);
        }
        for (int32_t j = 0; j < nk; j++) {
            const float *v = vr[j] + d;
            vf v0 = V_LOAD(v), v1 = V_LOAD(v + V_W), v2 = V_LOAD(v + 2 * V_W);
            vf v3 = V_LOAD(v + 3 * V_W);
#pragma GCC unroll 4
            for (int i = 0; i < npr; i++) {
                vf pj = V_SET1(st[(size_t)j * Rp + i]);
                acc[i][0] = V_FMA(pj, v0, acc[i][0]);
                acc[i][1] = V_FMA(pj, v1, acc[i][1]);
                acc[i][2] = V_FMA(pj, v2, acc[i][2]);
                acc[i][3] = V_FMA(pj, v3, acc[i][3]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < npr; i++)
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) V_STORE(o + (size_t)i * D + d + c * V_W, acc[i][c]);
    }
    for (; d + V_W <= D; d += V_W) {
        vf acc[S_NPR];
#pragma GCC unroll 4
        for (int i = 0; i < npr; i++)
            acc[i] = V_MUL(V_LOAD(o + (size_t)i * D + d), V_SET1(alpha[i]));
        for (int32_t j = 0; j < nk; j++) {
            vf v0 = V_LOAD(vr[j] + d);
#pragma GCC unroll 4
            for (int i = 0; i < npr; i++)
                acc[i] = V_FMA(V_SET1(st[(size_t)j * Rp + i]), v0, acc[i]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < npr; i++) V_STORE(o + (size_t)i * D + d, acc[i]);
    }
    for (; d < D; d++)
        for (int i = 0; i < npr; i++) {
            float acc = o[(size_t)i * D + d] * alpha[i];
            for (int32_t j = 0; j < nk; j++) acc += st[(size_t)j * Rp + i] * vr[j][d];
            o[(size_t)i * D + d] = acc;
        }
}

/* One step of the row path over keys j0 .. j0 + nk - 1 (kr, vr: their rows, padded to a
 * multiple of S_NJ with a row of zeros). */
static TR_TARGET void V_FN(s_step_rows)(const tr_attn_params_t *p, int32_t R, int32_t Rp,
                                        int32_t G, int32_t pos0, int32_t j0, int32_t nk,
                                        const float *qt, float *st, const float *const *kr,
                                        const float *const *vr, float *o, float *m, float *l,
                                        float *al) {
    const int32_t D = p->head_dim, W = p->sliding_window, nrv = Rp / V_W;
    for (int32_t j = 0; j < nk; j += S_NJ) {
        int32_t rv = 0;
        for (; rv + S_NRV <= nrv; rv += S_NRV)
            V_FN(s_qk_tile)(qt + rv * V_W, Rp, D, kr + j, st + (size_t)j * Rp + rv * V_W,
                            p->scale, S_NRV);
        /* the rest in one tile: a single row vector would leave 4 FMA chains, too few to
         * cover the FMA latency (tiles of 48 rows are common: 16 tokens x G = 3) */
        const float *q = qt + rv * V_W;
        float *sj = st + (size_t)j * Rp + rv * V_W;
        if (nrv - rv == 3) V_FN(s_qk_tile)(q, Rp, D, kr + j, sj, p->scale, 3);
        else if (nrv - rv == 2) V_FN(s_qk_tile)(q, Rp, D, kr + j, sj, p->scale, 2);
        else if (nrv - rv == 1) V_FN(s_qk_tile)(q, Rp, D, kr + j, sj, p->scale, 1);
    }
    /* mask: row r (token r / G at pos0 + r / G) sees key q when q <= its position and,
     * with a window, q > its position - W; only steps that cross an edge pay for it */
    const int32_t last = pos0 + (R - 1) / G;
    if (j0 + nk - 1 > pos0 || (W > 0 && j0 <= last - W)) {
        for (int32_t j = 0; j < nk; j++) {
            int64_t q = j0 + j;
            int64_t hide = (q - pos0) * G, keep = W > 0 ? (q + W - pos0) * G : R;
            hide = hide < 0 ? 0 : hide > R ? R : hide;
            keep = keep < hide ? hide : keep > R ? R : keep;
            float *sj = st + (size_t)j * Rp;
            for (int64_t r = 0; r < hide; r++) sj[r] = -INFINITY;
            for (int64_t r = keep; r < R; r++) sj[r] = -INFINITY;
        }
    }
    /* online softmax along keys, on vectors of rows; a masked score is -inf and
     * max(m_new, -FLT_MAX) keeps -inf - -inf out of the exponent */
    for (int32_t r = 0; r < Rp; r += V_W) {
        vf mo = V_LOAD(m + r), mx = V_SET1(-INFINITY);
        for (int32_t j = 0; j < nk; j++) mx = V_MAX(mx, V_LOAD(st + (size_t)j * Rp + r));
        vf mn = V_MAX(mo, mx), ms = V_MAX(mn, V_SET1(-FLT_MAX));
        vf a = V_EXP(V_SUB(mo, ms)), ls = V_MUL(V_LOAD(l + r), a);
        for (int32_t j = 0; j < nk; j++) {
            vf e = V_EXP(V_SUB(V_LOAD(st + (size_t)j * Rp + r), ms));
            V_STORE(st + (size_t)j * Rp + r, e);
            ls = V_ADD(ls, e);
        }
        V_STORE(m + r, mn);
        V_STORE(l + r, ls);
        V_STORE(al + r, a);
    }
    int32_t r = 0;
    for (; r + S_NPR <= R; r += S_NPR)
        V_FN(s_pv_tile)(o + (size_t)r * D, D, al + r, st + r, Rp, vr, nk, S_NPR);
    for (; r < R; r++) V_FN(s_pv_tile)(o + (size_t)r * D, D, al + r, st + r, Rp, vr, nk, 1);
}

/* ---- dot path ---- */

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

/* s[r * CH + j] = q_r . k_j for the step's nk keys: per key a vector of products along D,
 * four keys' vectors summed by one transpose-and-add tree (a horizontal sum per key cost
 * as much as the products); keys past the last group of four take s_dot. A key's score
 * depends only on its place in the step, which absolute positions fix. */
static inline TR_TARGET void V_FN(s_scores_dot)(const float *const *qr, int32_t R, int32_t D,
                                                const float *const *kr, int32_t nk, float *s) {
    const int32_t Dv = D / V_W * V_W;
    for (int32_t r = 0; r < R; r++) {
        const float *q = qr[r];
        float *sr = s + (size_t)r * TR_ATTN_CH;
        int32_t j = 0;
        for (; j + 4 <= nk; j += 4) {
            const float *k0 = kr[j], *k1 = kr[j + 1], *k2 = kr[j + 2], *k3 = kr[j + 3];
            vf acc[4] = {V_ZERO(), V_ZERO(), V_ZERO(), V_ZERO()};
            for (int32_t d = 0; d < Dv; d += V_W) {
                vf qd = V_LOAD(q + d);
                acc[0] = V_FMA(qd, V_LOAD(k0 + d), acc[0]);
                acc[1] = V_FMA(qd, V_LOAD(k1 + d), acc[1]);
                acc[2] = V_FMA(qd, V_LOAD(k2 + d), acc[2]);
                acc[3] = V_FMA(qd, V_LOAD(k3 + d), acc[3]);
            }
            V_FN(s_hsum4)(acc, sr + j);
            for (int32_t d = Dv; d < D; d++) {
                sr[j] += q[d] * k0[d];
                sr[j + 1] += q[d] * k1[d];
                sr[j + 2] += q[d] * k2[d];
                sr[j + 3] += q[d] * k3[d];
            }
        }
        for (; j < nk; j++) sr[j] = V_FN(s_dot)(q, kr[j], D);
    }
}

/* One step of the dot path over keys j0 .. j0 + nk - 1; s is (R, TR_ATTN_CH). */
static TR_TARGET void V_FN(s_step_dots)(const tr_attn_params_t *p, int32_t R, int32_t G,
                                        int32_t pos0, int32_t j0, int32_t nk,
                                        const float *const *qr, float *s,
                                        const float *const *kr, const float *const *vr,
                                        float *o, float *m, float *l) {
    const int32_t D = p->head_dim;
    V_FN(s_scores_dot)(qr, R, D, kr, nk, s);
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
        if (cmax == -INFINITY) continue;   /* nothing visible in this step */
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

/* ---- segments ---- */

/* Folds one segment's partial (o, m, l) of a row into the row's running (O, M, L), where
 * M starts at -inf and O, L at 0: M' = max(M, m), O' = O e^(M - M') + o e^(m - M'), the
 * same for L. Tasks and the split-K merge both call this, in segment order, so a split
 * tile gives the same bits as an unsplit one. */
static TR_TARGET void V_FN(s_fold)(float *O, float *M, float *L, const float *o, float m,
                                   float l, int32_t D) {
    if (m == -INFINITY) return;   /* the row sees no key of this segment */
    float mn = *M > m ? *M : m;
    float a = expf(*M - mn), b = expf(m - mn);
    vf va = V_SET1(a), vb = V_SET1(b);
    int32_t d = 0;
    for (; d + V_W <= D; d += V_W)
        V_STORE(O + d, V_FMA(V_LOAD(o + d), vb, V_MUL(V_LOAD(O + d), va)));
    for (; d < D; d++) O[d] = O[d] * a + o[d] * b;
    *L = *L * a + l * b;
    *M = mn;
}

static TR_TARGET void V_FN(s_finish)(float *out, const float *O, float L, int32_t D) {
    vf inv = V_SET1(1.0f / L);
    int32_t d = 0;
    for (; d + V_W <= D; d += V_W) V_STORE(out + d, V_MUL(V_LOAD(O + d), inv));
    for (; d < D; d++) out[d] = O[d] * (1.0f / L);
}

/* Merge run: one task per split tile, its partials folded row by row in segment order. */
static TR_TARGET void V_FN(s_merge_task)(void *ctx, int32_t task, int32_t thread) {
    const s_attn_t *a = ctx;
    const tr_attn_params_t *p = a->p;
    const s_attn_tile_t *tl = &a->tasks[task];
    const int32_t H = p->n_heads, D = p->head_dim, G = H / p->n_kv_heads;
    const int32_t R = (tl->t1 - tl->t0) * G;
    const size_t stride = (size_t)a->r_max * (D + 2);
    float *O = a->cpu->scratch[thread];
    for (int32_t r = 0; r < R; r++) {
        float M = -INFINITY, L = 0;
        memset(O, 0, (size_t)D * sizeof(float));
        for (int32_t s = 0; s < tl->seg1 - tl->seg0; s++) {
            const float *pt = a->parts + (size_t)(tl->part + s) * stride;
            V_FN(s_fold)(O, &M, &L, pt + (size_t)r * D, pt[(size_t)R * D + r],
                         pt[(size_t)R * (D + 1) + r], D);
        }
        int32_t i = r / G, h = tl->kv_head * G + r % G;
        V_FN(s_finish)(p->out + ((size_t)(tl->t0 + i) * H + h) * D, O, L, D);
    }
}

/* ---- task ---- */

static TR_TARGET void V_FN(s_attn_task)(void *ctx, int32_t task, int32_t thread) {
    const s_attn_t *a = ctx;
    const tr_attn_params_t *p = a->p;
    const s_attn_tile_t tile = a->tasks[task];
    const int32_t H = p->n_heads, Hk = p->n_kv_heads, D = p->head_dim, G = H / Hk;
    const int32_t bs = p->block_size, b = tile.seq, g = tile.kv_head;
    const int32_t nq = tile.t1 - tile.t0, R = nq * G, Rp = (R + V_W - 1) / V_W * V_W;
    const int32_t *table = p->block_table + (size_t)b * p->max_blocks;
    const int32_t pos0 = p->seq_pos[b] + (tile.t0 - p->seq_start[b]);
    const int rows = R >= TR_ATTN_ROW_MIN;

    /* scratch (sized in tr_cpu_attention): qt (D, Rp), st (CH, Rp), o and O (Rp, D), m, l,
     * M, L, alpha (Rp), a zero K row (D), key and query row pointers */
    char *cur = a->cpu->scratch[thread];
    float *qt = s_carve(&cur, (size_t)D * Rp), *st = s_carve(&cur, (size_t)TR_ATTN_CH * Rp);
    float *o = s_carve(&cur, (size_t)Rp * D), *O = s_carve(&cur, (size_t)Rp * D);
    float *m = s_carve(&cur, Rp), *l = s_carve(&cur, Rp), *M = s_carve(&cur, Rp);
    float *L = s_carve(&cur, Rp), *al = s_carve(&cur, Rp), *zero = s_carve(&cur, D);
    const float **kr = (const float **)s_carve(&cur, 2 * (TR_ATTN_CH + S_NJ));
    const float **vr = (const float **)s_carve(&cur, 2 * (TR_ATTN_CH + S_NJ));
    const float **qr = (const float **)s_carve(&cur, 2 * (size_t)Rp);

    for (int32_t r = 0; r < R; r++)
        qr[r] = p->q + ((size_t)(tile.t0 + r / G) * H + g * G + r % G) * D;
    if (rows) {
        for (int32_t d = 0; d < D; d++)
            for (int32_t r = 0; r < Rp; r++) qt[(size_t)d * Rp + r] = r < R ? qr[r][d] : 0.0f;
        memset(zero, 0, (size_t)D * sizeof(float));
        for (int32_t j = 0; j < TR_ATTN_CH + S_NJ; j++) kr[j] = vr[j] = zero;
    }
    if (tile.part < 0) {
        memset(O, 0, (size_t)R * D * sizeof(float));
        for (int32_t r = 0; r < R; r++) M[r] = -INFINITY, L[r] = 0;
    }
    int32_t jlo, jhi;
    s_key_range(p, b, tile.t0, tile.t1, &jlo, &jhi);

    for (int32_t sg = tile.seg0; sg < tile.seg1; sg++) {
        memset(o, 0, (size_t)Rp * D * sizeof(float));
        for (int32_t r = 0; r < Rp; r++) m[r] = -INFINITY, l[r] = 0;
        int32_t s0 = sg * TR_ATTN_SEG > jlo ? sg * TR_ATTN_SEG : jlo;
        int32_t s1 = sg * TR_ATTN_SEG + TR_ATTN_SEG - 1 < jhi ? sg * TR_ATTN_SEG + TR_ATTN_SEG - 1
                                                             : jhi;
        for (int32_t j0 = s0; j0 <= s1;) {
            int32_t end = (j0 / TR_ATTN_CH + 1) * TR_ATTN_CH - 1;
            end = end < s1 ? end : s1;
            int32_t nk = end - j0 + 1;
            /* consecutive positions: walk (block, offset) instead of dividing per key */
            int32_t blk = j0 / bs, boff = j0 % bs;
            for (int32_t j = 0; j < nk; j++) {
                size_t slot = (size_t)table[blk] * bs + boff;
                kr[j] = p->k_cache + (slot * Hk + g) * D;
                vr[j] = p->v_cache + (slot * Hk + g) * D;
                if (++boff == bs) blk++, boff = 0;
            }
            for (int32_t j = nk; rows && j < (nk + S_NJ - 1) / S_NJ * S_NJ; j++) kr[j] = zero;
#if V_W > 1
            /* the next step's K and V rows, fetched while this one is scored: rows are
             * paged, a stride the hardware prefetcher does not follow */
            for (int32_t pj = end + 1; pj <= jhi && pj <= end + TR_ATTN_CH; pj++) {
                size_t slot = (size_t)table[blk] * bs + boff;
                if (++boff == bs) blk++, boff = 0;
                const char *kn = (const char *)(p->k_cache + (slot * Hk + g) * D);
                const char *vn = (const char *)(p->v_cache + (slot * Hk + g) * D);
                for (int32_t off = 0; off < D * (int32_t)sizeof(float); off += 64) {
                    _mm_prefetch(kn + off, _MM_HINT_T0);
                    _mm_prefetch(vn + off, _MM_HINT_T0);
                }
            }
#endif
            if (rows)
                V_FN(s_step_rows)(p, R, Rp, G, pos0, j0, nk, qt, st, kr, vr, o, m, l, al);
            else
                V_FN(s_step_dots)(p, R, G, pos0, j0, nk, qr, st, kr, vr, o, m, l);
            j0 = end + 1;
        }
        if (tile.part >= 0) {   /* split: this segment's partial o, m, l for the merge run */
            float *part = a->parts + (size_t)tile.part * a->r_max * (D + 2);
            memcpy(part, o, (size_t)R * D * sizeof(float));
            memcpy(part + (size_t)R * D, m, (size_t)R * sizeof(float));
            memcpy(part + (size_t)R * (D + 1), l, (size_t)R * sizeof(float));
            return;
        }
        for (int32_t r = 0; r < R; r++)
            V_FN(s_fold)(O + (size_t)r * D, &M[r], &L[r], o + (size_t)r * D, m[r], l[r], D);
    }
    for (int32_t r = 0; r < R; r++)
        V_FN(s_finish)(p->out + ((size_t)(tile.t0 + r / G) * H + g * G + r % G) * D,
                 O + (size_t)r * D, L[r], D);
}
