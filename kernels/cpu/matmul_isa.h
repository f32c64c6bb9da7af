/*  kernels/cpu/matmul_isa.h - matmul body, included once per ISA by kernels/cpu/matmul.c.
 *  Oracle: kernels/ref/matmul.c. Shapes: y (M, N) = x (M, K) . W (N, K)^T.
 *
 *  Weights of every dtype are consumed 32 values at a time through s_dec32_<dtype>, which
 *  widens them to f32 vectors (q8_0: d * q); K tails of plain dtypes go through the scalar
 *  s_dec1_<dtype>. Two kernels:
 *
 *  GEMV (small M, decode): each task owns a range of output features; a weight row is read
 *  once and dotted with up to four rows of x at a time. Memory-bound: streams W once, with
 *  software prefetches TR_MM_GEMV_PF_BYTES ahead (the task's rows are one linear stream).
 *
 *  Multi-row GEMV (8 <= M <= TR_MM_MROW_MAX_M, batched decode): each task owns a range of
 *  output features, taken V_NR weight rows at a time. The rows are read once, as f32 in
 *  place or decoded once into an L1-sized scratch (other dtypes), and run against every row
 *  of x in register tiles of V_NR weight rows x V_MT rows of x (vectors along K, one
 *  accumulator each, reduced four at a time at the end), so the weights stream straight
 *  from memory while the FMAs run and nothing is packed.
 *
 *  GEMM (larger M, prefill): x is first packed into panels of MP = V_NRV * V_W tokens laid
 *  out (K, MP), so one vector holds V_W tokens of one input feature (MP = V_W, one vector,
 *  when M <= V_W, so that a batch of 16 decodes wastes no lanes). A task owns NB output
 *  features; per KC slice of K it decodes its NB weight rows to f32 (no transpose needed)
 *  and runs MR x MP micro-tiles: acc[i][j] += broadcast(w[i][k]) * xpanel[k][j]. Results
 *  accumulate in a per-task transposed tile (NB, Mp) and are written to y once at the end,
 *  with bias and the optional residual add.                                         */

/* ---- weight decoders: 32 values from index k of a row, k a multiple of 32 ---- */

static inline TR_TARGET void V_FN(s_dec32_f32)(const void *row, int32_t k, vf *out) {
    const float *w = (const float *)row + k;
#pragma GCC unroll 32
    for (int j = 0; j < 32 / V_W; j++) out[j] = V_LOAD(w + j * V_W);
}

static inline TR_TARGET void V_FN(s_dec32_bf16)(const void *row, int32_t k, vf *out) {
    const uint16_t *w = (const uint16_t *)row + k;
#pragma GCC unroll 32
    for (int j = 0; j < 32 / V_W; j++) out[j] = V_LOAD_BF16(w + j * V_W);
}

static inline TR_TARGET void V_FN(s_dec32_f16)(const void *row, int32_t k, vf *out) {
    const uint16_t *w = (const uint16_t *)row + k;
#pragma GCC unroll 32
    for (int j = 0; j < 32 / V_W; j++) out[j] = V_LOAD_F16(w + j * V_W);
}

static inline TR_TARGET void V_FN(s_dec32_q8_0)(const void *row, int32_t k, vf *out) {
    const tr_block_q8_0_t *b = (const tr_block_q8_0_t *)row + k / TR_Q8_0_BLOCK;
    vf d = V_SET1(V_F16_SCALAR(b->d));
#pragma GCC unroll 32
    for (int j = 0; j < 32 / V_W; j++) out[j] = V_MUL(d, V_LOAD_I8(b->qs + j * V_W));
}

typedef void (*V_FN(s_dec32_fn))(const void *row, int32_t k, vf *out);

/* GEMV decoders: the same 32 values, but a block-scaled dtype returns its scale instead of
 * applying it, so that the GEMV multiplies once per block (sum of q x, times d). A plain
 * dtype's is its decoder returning 1. */
#define TR_GDEC32_PLAIN(n)                                                                 \
    static inline TR_TARGET float V_FN(s_gdec32_##n)(const void *row, int32_t k, vf *out) { \
        V_FN(s_dec32_##n)(row, k, out);                                                    \
        return 1.0f;                                                                       \
    }
TR_GDEC32_PLAIN(f32)
TR_GDEC32_PLAIN(bf16)
TR_GDEC32_PLAIN(f16)
#undef TR_GDEC32_PLAIN

static inline TR_TARGET float V_FN(s_gdec32_q8_0)(const void *row, int32_t k, vf *out) {
    const tr_block_q8_0_t *b = (const tr_block_q8_0_t *)row + k / TR_Q8_0_BLOCK;
#pragma GCC unroll 32
    for (int j = 0; j < 32 / V_W; j++) out[j] = V_LOAD_I8(b->qs + j * V_W);
    return V_F16_SCALAR(b->d);
}

typedef float (*V_FN(s_gdec32_fn))(const void *row, int32_t k, vf *out);

/* ---- GEMV ---- */

/* Prefetches, into L2, the lines of the `bytes` at pf + off (pf NULL: nothing). */
static inline __attribute__((always_inline)) void V_FN(s_gemv_pf)(const char *pf, size_t off,
                                                                  const int bytes) {
#if V_W > 1
    if (pf)
        for (int l = 0; l < bytes; l += 64) _mm_prefetch(pf + off + l, _MM_HINT_T1);
#else
    (void)pf, (void)off, (void)bytes;
#endif
}

/* out[i] = x_i . row for MB (1..4) rows of x, 32 weights at a time. SCALED dtypes (q8_0)
 * sum q x over a block and multiply by the block's scale once. SB: bytes of 32 weights;
 * pf (or NULL): the address to prefetch as the row is read, SB bytes per 32 weights. */
static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_gemv_tile)(const void *row, const float *x, int32_t K, const int MB, float *out,
                  V_FN(s_gdec32_fn) dec32, s_dec1_fn dec1, const int SCALED, const int SB,
                  const char *pf) {
    vf acc[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < MB; i++) acc[i][0] = acc[i][1] = V_ZERO();
    int32_t k = 0;
    if (SCALED) {
        /* two blocks per step on alternate accumulators: the per-block scale FMA is the
         * loop-carried chain, so two chains halve its latency */
        for (; k + 64 <= K; k += 64) {
            V_FN(s_gemv_pf)(pf, (size_t)(k / 32) * SB, 2 * SB);
            vf w0[32 / V_W], w1[32 / V_W];
            float d0 = dec32(row, k, w0), d1 = dec32(row, k + 32, w1);
#pragma GCC unroll 4
            for (int i = 0; i < MB; i++) {
                const float *xi = x + (size_t)i * K + k;
                vf b0 = V_MUL(w0[0], V_LOAD(xi)), b1 = V_MUL(w1[0], V_LOAD(xi + 32));
#pragma GCC unroll 32
                for (int j = 1; j < 32 / V_W; j++) {
                    b0 = V_FMA(w0[j], V_LOAD(xi + j * V_W), b0);
                    b1 = V_FMA(w1[j], V_LOAD(xi + 32 + j * V_W), b1);
                }
                acc[i][0] = V_FMA(V_SET1(d0), b0, acc[i][0]);
                acc[i][1] = V_FMA(V_SET1(d1), b1, acc[i][1]);
            }
        }
    }
#if V_W == 16
    if (!SCALED) {
        /* two steps at a time on four chains: with two, an FMA's latency bounded the row
         * (bf16 in L2 ran at 28 GB/s a core, against its ~60 of issue throughput) */
        vf acc2[4][2];
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) acc2[i][0] = acc2[i][1] = V_ZERO();
        for (; k + 64 <= K; k += 64) {
            V_FN(s_gemv_pf)(pf, (size_t)(k / 32) * SB, 2 * SB);
            vf w0[2], w1[2];
            dec32(row, k, w0);
            dec32(row, k + 32, w1);
#pragma GCC unroll 4
            for (int i = 0; i < MB; i++) {
                const float *xi = x + (size_t)i * K + k;
                acc[i][0] = V_FMA(w0[0], V_LOAD(xi), acc[i][0]);
                acc[i][1] = V_FMA(w0[1], V_LOAD(xi + 16), acc[i][1]);
                acc2[i][0] = V_FMA(w1[0], V_LOAD(xi + 32), acc2[i][0]);
                acc2[i][1] = V_FMA(w1[1], V_LOAD(xi + 48), acc2[i][1]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) {
            acc[i][0] = V_ADD(acc[i][0], acc2[i][0]);
            acc[i][1] = V_ADD(acc[i][1], acc2[i][1]);
        }
    }
#endif
    for (; k + 32 <= K; k += 32) {
        V_FN(s_gemv_pf)(pf, (size_t)(k / 32) * SB, SB);
        vf w[32 / V_W];
        float d = dec32(row, k, w);
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) {
            if (SCALED) {
                vf blk0 = V_ZERO(), blk1 = V_ZERO();
#pragma GCC unroll 32
                for (int j = 0; j < 32 / V_W; j += 2) {
                    blk0 = V_FMA(w[j], V_LOAD(x + (size_t)i * K + k + j * V_W), blk0);
                    if (j + 1 < 32 / V_W)
                        blk1 = V_FMA(w[j + 1], V_LOAD(x + (size_t)i * K + k + (j + 1) * V_W), blk1);
                }
                acc[i][0] = V_FMA(V_SET1(d), V_ADD(blk0, blk1), acc[i][0]);
            } else {
#pragma GCC unroll 32
                for (int j = 0; j < 32 / V_W; j++)
                    acc[i][j & 1] = V_FMA(w[j], V_LOAD(x + (size_t)i * K + k + j * V_W), acc[i][j & 1]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; i++) out[i] = V_HSUM(V_ADD(acc[i][0], acc[i][1]));
    for (; k < K; k++) {
        float w = dec1(row, k);
#pragma GCC unroll 4
        for (int i = 0; i < MB; i++) out[i] += w * x[(size_t)i * K + k];
    }
}

static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_gemv_generic)(void *ctx, int32_t task, V_FN(s_gdec32_fn) dec32, s_dec1_fn dec1,
                     const int SCALED, const int SB) {
    const s_mm_t *a = ctx;
    const tr_matmul_params_t *p = a->p;
    const int32_t K = p->K, M = p->M, N = p->N;
    int32_t n0 = task * a->nb, n1 = n0 + a->nb < N ? n0 + a->nb : N;
    /* the lines up to the prefetch distance at once: a task starts a new stream, whose
     * first loads would otherwise miss one after another */
    if (n0 < n1)
        V_FN(s_gemv_pf)((const char *)p->w, (size_t)n0 * a->row_bytes, TR_MM_GEMV_PF_BYTES);
    for (int32_t n = n0; n < n1; n++) {
        const void *row = (const char *)p->w + (size_t)n * a->row_bytes;
        float bias = p->bias ? p->bias[n] : 0.0f;
        for (int32_t m0 = 0; m0 < M; m0 += 4) {
            float out[4];
            const float *x = p->x + (size_t)m0 * K;
            /* the first pass over the row fetches what lies ahead; the rows are contiguous */
            const char *pf = m0 == 0 ? (const char *)row + TR_MM_GEMV_PF_BYTES : NULL;
            switch (M - m0) {
            case 1: V_FN(s_gemv_tile)(row, x, K, 1, out, dec32, dec1, SCALED, SB, pf); break;
            case 2: V_FN(s_gemv_tile)(row, x, K, 2, out, dec32, dec1, SCALED, SB, pf); break;
            case 3: V_FN(s_gemv_tile)(row, x, K, 3, out, dec32, dec1, SCALED, SB, pf); break;
            default: V_FN(s_gemv_tile)(row, x, K, 4, out, dec32, dec1, SCALED, SB, pf); break;
            }
            int32_t mb = M - m0 < 4 ? M - m0 : 4;
            for (int32_t i = 0; i < mb; i++) {
                float *y = &p->y[(size_t)(m0 + i) * N + n];
                *y = (p->accumulate ? *y : 0.0f) + out[i] + bias;
            }
        }
    }
}

/* ---- multi-row GEMV ---- */

/* Register tile: V_NR weight rows x V_MT rows of x, V_NR * V_MT accumulators. */
#if V_W == 16
#define V_NR 4
#define V_MT 6
#elif V_W == 8
#define V_NR 3
#define V_MT 4
#else
#define V_NR 4
#define V_MT 4
#endif

/* out[i * MT + m] = w_i . x_m for V_NR rows of f32 weights (stride ldw) and MT (1..V_MT)
 * rows of x (stride K). Meanwhile cache lines [l0, l1) of the V_NR stored rows at pf
 * (stride pf_stride bytes; pf may be NULL) are prefetched, spread evenly over the steps:
 * the caller points pf at the next group, so its rows arrive while these FMAs run at the
 * rate memory delivers them. A group's rows are short streams that the hardware
 * prefetcher does not pick up in time (the lm_head ran at a quarter of the bandwidth a
 * one-row GEMV gets). */
static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_mrow_tile)(const int MT, const float *w, int32_t ldw, const float *x, int32_t K,
                  float *out, const char *pf, size_t pf_stride, int32_t l0, int32_t l1) {
    vf acc[V_NR * V_MT];
#pragma GCC unroll 32
    for (int i = 0; i < V_NR * MT; i++) acc[i] = V_ZERO();
#if V_W > 1
    const int32_t steps = K / V_W, nl = pf ? l1 - l0 : 0;
    int32_t pacc = 0;
#else
    (void)pf, (void)pf_stride, (void)l0, (void)l1;
#endif
    int32_t k = 0;
    for (; k + V_W <= K; k += V_W) {
        vf wv[V_NR];
#if V_W > 1
        for (pacc += nl; pacc >= steps && l0 < l1; pacc -= steps, l0++) {
#pragma GCC unroll 8
            for (int i = 0; i < V_NR; i++)
                _mm_prefetch(pf + (size_t)i * pf_stride + (size_t)l0 * 64, _MM_HINT_T0);
        }
#endif
#pragma GCC unroll 8
        for (int i = 0; i < V_NR; i++) wv[i] = V_LOAD(w + (size_t)i * ldw + k);
#pragma GCC unroll 8
        for (int m = 0; m < MT; m++) {
            vf xv = V_LOAD(x + (size_t)m * K + k);
#pragma GCC unroll 8
            for (int i = 0; i < V_NR; i++) acc[i * MT + m] = V_FMA(wv[i], xv, acc[i * MT + m]);
        }
    }
    int i = 0;
#pragma GCC unroll 8
    for (; i + 4 <= V_NR * MT; i += 4) V_FN(s_hsum4)(acc + i, out + i);
#pragma GCC unroll 4
    for (; i < V_NR * MT; i++) out[i] = V_HSUM(acc[i]);
    for (; k < K; k++) {
        for (int r = 0; r < V_NR; r++)
            for (int m = 0; m < MT; m++)
                out[r * MT + m] += w[(size_t)r * ldw + k] * x[(size_t)m * K + k];
    }
}

/* One task: output features [task nb, +nb), V_NR rows at a time against every row of x.
 * F32: the rows are read in place (a short last group is copied into scratch); other
 * dtypes are decoded once per group into scratch, (V_NR, kp) f32. */
static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_mrow_generic)(void *ctx, int32_t task, int32_t thread, V_FN(s_dec32_fn) dec32,
                     s_dec1_fn dec1, const int F32) {
    const s_mm_t *a = ctx;
    const tr_matmul_params_t *p = a->p;
    const int32_t K = p->K, M = p->M, N = p->N, kp = a->kp;
    const int32_t n0 = task * a->nb, n1 = n0 + a->nb < N ? n0 + a->nb : N;
    float *wd = a->cpu->scratch[thread];            /* (V_NR, kp) decoded weights */
    for (int32_t n = n0; n < n1; n += V_NR) {
        const int32_t nr = n1 - n < V_NR ? n1 - n : V_NR;
        const float *w = wd;
        int32_t ldw = kp;
        if (F32 && nr == V_NR) {
            w = (const float *)p->w + (size_t)n * K;
            ldw = K;
        } else {
            for (int32_t i = 0; i < V_NR; i++) {
                float *dst = wd + (size_t)i * kp;
                if (i >= nr) {
                    memset(dst, 0, (size_t)K * sizeof(float));
                    continue;
                }
                const void *row = (const char *)p->w + (size_t)(n + i) * a->row_bytes;
                int32_t k = 0;
                for (; k + 32 <= K; k += 32) {
                    vf t[32 / V_W];
                    dec32(row, k, t);
#pragma GCC unroll 32
                    for (int j = 0; j < 32 / V_W; j++) V_STORE(dst + k + j * V_W, t[j]);
                }
                for (; k < K; k++) dst[k] = dec1(row, k);
            }
        }
        /* the next group's stored rows, prefetched a slice per tile; tiles of x rows as
         * even as V_MT allows (M = 8: 4 + 4, not 6 + 2) */
        const char *pf = n + 2 * V_NR <= N ? (const char *)p->w + (size_t)(n + V_NR) * a->row_bytes
                                           : NULL;
        const int32_t lines = (int32_t)((a->row_bytes + 63) / 64);
        const int32_t n_tiles = (M + V_MT - 1) / V_MT;
        for (int32_t t = 0, m0 = 0; t < n_tiles; t++) {
            float out[V_NR * V_MT];
            const float *x = p->x + (size_t)m0 * K;
            const int32_t mt = M / n_tiles + (t < M % n_tiles);
            const int32_t l0 = lines * t / n_tiles, l1 = lines * (t + 1) / n_tiles;
            const size_t rb = a->row_bytes;
            switch (mt) {
            case 1: V_FN(s_mrow_tile)(1, w, ldw, x, K, out, pf, rb, l0, l1); break;
            case 2: V_FN(s_mrow_tile)(2, w, ldw, x, K, out, pf, rb, l0, l1); break;
            case 3: V_FN(s_mrow_tile)(3, w, ldw, x, K, out, pf, rb, l0, l1); break;
#if V_MT > 4
            case 4: V_FN(s_mrow_tile)(4, w, ldw, x, K, out, pf, rb, l0, l1); break;
            case 5: V_FN(s_mrow_tile)(5, w, ldw, x, K, out, pf, rb, l0, l1); break;
#endif
            default: V_FN(s_mrow_tile)(V_MT, w, ldw, x, K, out, pf, rb, l0, l1); break;
            }
            for (int32_t m = 0; m < mt; m++) {
                float *y = p->y + (size_t)(m0 + m) * N + n;
                for (int32_t i = 0; i < nr; i++) {
                    float v = out[i * mt + m] + (p->bias ? p->bias[n + i] : 0.0f);
                    y[i] = p->accumulate ? y[i] + v : v;
                }
            }
            m0 += mt;
        }
    }
}

/* ---- GEMM ---- */

/* Packs token panel `task` of x into (K, MP), zero-padding tokens past M. K is taken in
 * slices of 16 so that the panel lines being written stay in L1: a whole column of the
 * panel (K lines 4 MP bytes apart) maps onto a fraction of L1's sets, and writing one token
 * down all of K at a time missed L1 on nearly every store (~7 cycles a value, 10% of a
 * 512-token prefill on one core). */
static TR_TARGET void V_FN(s_pack_x)(void *ctx, int32_t task, int32_t thread) {
    const s_mm_t *a = ctx;
    const tr_matmul_params_t *p = a->p;
    const int32_t K = p->K, MP = a->mp;
    float *xp = a->xp + (size_t)task * K * MP;
    for (int32_t k0 = 0; k0 < K; k0 += 16) {
        const int32_t kn = K - k0 < 16 ? K - k0 : 16;
        float *dst = xp + (size_t)k0 * MP;
        for (int32_t j = 0; j < MP; j++) {
            int32_t m = task * MP + j;
            if (m < p->M) {
                const float *x = p->x + (size_t)m * K + k0;
                for (int32_t t = 0; t < kn; t++) dst[(size_t)t * MP + j] = x[t];
            } else {
                for (int32_t t = 0; t < kn; t++) dst[(size_t)t * MP + j] = 0.0f;
            }
        }
    }
}

/* c (MR rows of NV vectors, row stride ldc) (+)= w (MR rows, stride ldw) . xp (kl, NV V_W).
 * MR and NV are constants at every call: (V_MR, V_NRV), or (2 V_MR, 1) for small M. */
static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_ukernel)(const int MR, const int NV, int32_t kl, const float *w, int32_t ldw,
                const float *xp, float *c, int32_t ldc, int first) {
    vf acc[2 * V_MR][V_NRV];
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++)
            acc[i][j] = first ? V_ZERO() : V_LOAD(c + (size_t)i * ldc + j * V_W);
    }
    for (int32_t k = 0; k < kl; k++) {
        vf xv[V_NRV];
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) xv[j] = V_LOAD(xp + (size_t)k * NV * V_W + j * V_W);
#pragma GCC unroll 32
        for (int i = 0; i < MR; i++) {
            vf wb = V_SET1(w[(size_t)i * ldw + k]);
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) acc[i][j] = V_FMA(wb, xv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < NV; j++) V_STORE(c + (size_t)i * ldc + j * V_W, acc[i][j]);
    }
}

static inline __attribute__((always_inline)) TR_TARGET void
V_FN(s_gemm_generic)(void *ctx, int32_t task, int32_t thread, V_FN(s_dec32_fn) dec32,
                     s_dec1_fn dec1) {
    const s_mm_t *a = ctx;
    const tr_matmul_params_t *p = a->p;
    const int32_t K = p->K, M = p->M, N = p->N, MP = a->mp, Mp = a->Mp, MR = a->mr;
    const int32_t n0 = task * a->nb, nb = n0 + a->nb < N ? a->nb : N - n0;
    const int32_t nbp = (nb + MR - 1) / MR * MR;
    float *wf = a->cpu->scratch[thread];            /* (nbp, TR_MM_KC) decoded weights */
    float *ct = wf + (size_t)nbp * TR_MM_KC;        /* (nbp, Mp) transposed result */
    for (int32_t kc = 0; kc < K; kc += TR_MM_KC) {
        int32_t kl = K - kc < TR_MM_KC ? K - kc : TR_MM_KC;
        for (int32_t i = 0; i < nb; i++) {
            const void *row = (const char *)p->w + (size_t)(n0 + i) * a->row_bytes;
            float *dst = wf + (size_t)i * TR_MM_KC;
            int32_t k = 0;
            for (; k + 32 <= kl; k += 32) {
                vf t[32 / V_W];
                dec32(row, kc + k, t);
#pragma GCC unroll 32
                for (int j = 0; j < 32 / V_W; j++) V_STORE(dst + k + j * V_W, t[j]);
            }
            for (; k < kl; k++) dst[k] = dec1(row, kc + k);
        }
        for (int32_t i = nb; i < nbp; i++) memset(wf + (size_t)i * TR_MM_KC, 0, kl * 4);
        for (int32_t mp = 0; mp < Mp; mp += MP) {
            const float *xp = a->xp + (size_t)mp * K + (size_t)kc * MP;
            for (int32_t i0 = 0; i0 < nbp; i0 += MR) {
                if (MP == V_W * V_NRV)
                    V_FN(s_ukernel)(V_MR, V_NRV, kl, wf + (size_t)i0 * TR_MM_KC, TR_MM_KC, xp,
                                    ct + (size_t)i0 * Mp + mp, Mp, kc == 0);
                else
                    V_FN(s_ukernel)(2 * V_MR, 1, kl, wf + (size_t)i0 * TR_MM_KC, TR_MM_KC, xp,
                                    ct + (size_t)i0 * Mp + mp, Mp, kc == 0);
            }
        }
    }
    for (int32_t m = 0; m < M; m++) {
        float *y = p->y + (size_t)m * N + n0;
        for (int32_t i = 0; i < nb; i++) {
            float v = ct[(size_t)i * Mp + m] + (p->bias ? p->bias[n0 + i] : 0.0f);
            y[i] = p->accumulate ? y[i] + v : v;
        }
    }
}

/* ---- per-dtype entry points, from kernels/dtypes.def ---- */

#define TR_DTYPE(E, n, be, bb, nmse)                                                       \
    static TR_TARGET void V_FN(s_gemv_##n)(void *ctx, int32_t task, int32_t thread) {      \
        V_FN(s_gemv_generic)(ctx, task, V_FN(s_gdec32_##n), s_dec1_##n, be > 1, bb * 32 / be); \
    }                                                                                      \
    static TR_TARGET void V_FN(s_gemm_##n)(void *ctx, int32_t task, int32_t thread) {      \
        V_FN(s_gemm_generic)(ctx, task, thread, V_FN(s_dec32_##n), s_dec1_##n);             \
    }                                                                                      \
    static TR_TARGET void V_FN(s_mrow_##n)(void *ctx, int32_t task, int32_t thread) {      \
        V_FN(s_mrow_generic)(ctx, task, thread, V_FN(s_dec32_##n), s_dec1_##n,              \
                             TR_DTYPE_##E == TR_DTYPE_F32);                                \
    }
#include "kernels/dtypes.def"
#undef TR_DTYPE

static const s_isa_mm_t V_FN(s_mm) = {
    .mr = V_MR,
    .mp = V_NRV * V_W,
    .w = V_W,
    .nr = V_NR,
    .pack_x = V_FN(s_pack_x),
    .gemv = {
#define TR_DTYPE(E, n, be, bb, nmse) [TR_DTYPE_##E] = V_FN(s_gemv_##n),
#include "kernels/dtypes.def"
#undef TR_DTYPE
    },
    .gemm = {
#define TR_DTYPE(E, n, be, bb, nmse) [TR_DTYPE_##E] = V_FN(s_gemm_##n),
#include "kernels/dtypes.def"
#undef TR_DTYPE
    },
    .mrow = {
#define TR_DTYPE(E, n, be, bb, nmse) [TR_DTYPE_##E] = V_FN(s_mrow_##n),
#include "kernels/dtypes.def"
#undef TR_DTYPE
    },
};

#undef V_NR
#undef V_MT
