/*  kernels/cpu/pack_q8_0_isa.h - the packed q8_0 GEMV body, included once per ISA by
 *  kernels/cpu/pack_q8_0.c (and a second time for AVX-512 with VNNI, TR_Q8P_VNNI set).
 *  Oracle: kernels/ref/matmul.c on the GGUF q8_0 weights. Layout and numerics: see there.
 *
 *  One 32-bit lane accumulates one block of one weight row: lane r of a 16-row group sums
 *  q[r][k] * x[k] over the 32 k of a block, two k per instruction (vpmaddwd / vpdpwssd of
 *  sign-extended quants against a broadcast pair of 16-bit x parts). x is split into a high
 *  and a low int16 (30 bits in all, below), so each block takes two integer sums; at the
 *  block's end both become f32, hi * 2^16 + lo, times the 16 weight scales times x's block
 *  scale, into one f32 accumulator per lane.                                          */

#undef Q_FN
#undef vi
#undef QI_ZERO
#undef QI_W16
#undef QI_SET1
#undef QI_DOT
#undef QI_CVT
#undef Q_MB

/* Q_MB: rows of x per weight pass (the register tile is Q_MB rows of x by one 16-row group):
 * AVX-512 has 32 registers for 2 Q_MB integer sums, Q_MB f32 sums and the quants, AVX2
 * (16, two vectors per group) and scalar code stop at 4. */
#if V_W == 16   /* not TR_ISA: the VNNI instance is included after isa_instantiate.h */
#define Q_MB 8
#else
#define Q_MB 4
#endif

#ifdef TR_Q8P_VNNI
#define Q_FN(name) TR_CAT(V_FN(name), vnni)
#else
#define Q_FN(name) V_FN(name)
#endif

/* vi        V_W int32 lanes, or V_W pairs of int16
 * QI_W16(p) 2 V_W int8 quants from p (lane r: p[2r], p[2r + 1]) as int16 pairs
 * QI_DOT    acc + a.lo16 * b.lo16 + a.hi16 * b.hi16 per lane (vpmaddwd + add, or vpdpwssd) */
#if TR_ISA == 1
#define vi int32_t
#define QI_ZERO() 0
#define QI_W16(p) ((int32_t)((uint32_t)(uint16_t)(int16_t)(int8_t)(p)[0] |                  \
                             (uint32_t)(int32_t)(int8_t)(p)[1] << 16))
#define QI_SET1(a) (a)
#define QI_DOT(acc, a, b)                                                                  \
    ((acc) + (int32_t)(int16_t)(a) * (int16_t)(b) + ((a) >> 16) * ((b) >> 16))
#define QI_CVT(v) ((float)(v))
#elif TR_ISA == 2
#define vi __m256i
#define QI_ZERO() _mm256_setzero_si256()
#define QI_W16(p) _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(p)))
#define QI_SET1(a) _mm256_set1_epi32(a)
#define QI_DOT(acc, a, b) _mm256_add_epi32((acc), _mm256_madd_epi16((a), (b)))
#define QI_CVT(v) _mm256_cvtepi32_ps(v)
#else
#define vi __m512i
#define QI_ZERO() _mm512_setzero_si512()
#define QI_W16(p) _mm512_cvtepi8_epi16(_mm256_load_si256((const __m256i *)(p)))
#define QI_SET1(a) _mm512_set1_epi32(a)
#ifdef TR_Q8P_VNNI
#define QI_DOT(acc, a, b) _mm512_dpwssd_epi32((acc), (a), (b))
#else
#define QI_DOT(acc, a, b) _mm512_add_epi32((acc), _mm512_madd_epi16((a), (b)))
#endif
#define QI_CVT(v) _mm512_cvtepi32_ps(v)
#endif

#ifndef TR_Q8P_VNNI   /* packing x needs no VNNI: one instance per ISA */

/* One block of 32 x values (numerics: kernels/cpu/pack_q8_0.c): the 16 hi pairs to
 * xq[0..15], the 16 lo pairs to xq[16..31]; returns the block scale. */
static inline TR_TARGET float Q_FN(s_q8p_pack_x_block)(const float *x, int32_t *xq) {
#if TR_ISA == 3
    __m512 a0 = _mm512_loadu_ps(x), a1 = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a0), _mm512_abs_ps(a1)));
    int nan = _mm512_cmp_ps_mask(a0, a1, _CMP_UNORD_Q) != 0;
#elif TR_ISA == 2
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 a[4], m = _mm256_setzero_ps(), un = _mm256_setzero_ps();
    for (int j = 0; j < 4; j++) {
        a[j] = _mm256_loadu_ps(x + 8 * j);
        m = _mm256_max_ps(m, _mm256_andnot_ps(sign, a[j]));
        un = _mm256_or_ps(un, _mm256_cmp_ps(a[j], a[j], _CMP_UNORD_Q));
    }
    float amax = s_hmax_avx2(m);
    int nan = _mm256_movemask_ps(un) != 0;
#else
    float amax = 0;
    int nan = 0;
    for (int j = 0; j < TR_Q8P_BLOCK; j++) {
        float a = fabsf(x[j]);
        nan |= a != a;
        amax = a > amax ? a : amax;
    }
#endif
    int32_t e = s_q8p_exp(amax);
    if (nan || e > 128 || e < -90) {   /* NaN, inf; below 2^-91 the block counts as zero */
        memset(xq, 0, TR_Q8P_BLOCK * sizeof(int32_t));
        return nan || e > 128 ? NAN : 0.0f;
    }
    float f = tr_bits_f32((uint32_t)(30 - e + 127) << 23);   /* 2^(30 - e), exact */
#if TR_ISA == 3
    const __m512i half = _mm512_set1_epi32(0x8000);
    __m512i v0 = _mm512_cvtps_epi32(_mm512_mul_ps(a0, _mm512_set1_ps(f)));
    __m512i v1 = _mm512_cvtps_epi32(_mm512_mul_ps(a1, _mm512_set1_ps(f)));
    __m512i h0 = _mm512_srai_epi32(_mm512_add_epi32(v0, half), 16);
    __m512i h1 = _mm512_srai_epi32(_mm512_add_epi32(v1, half), 16);
    __m512i l0 = _mm512_sub_epi32(v0, _mm512_slli_epi32(h0, 16));
    __m512i l1 = _mm512_sub_epi32(v1, _mm512_slli_epi32(h1, 16));
    _mm256_storeu_si256((__m256i *)xq, _mm512_cvtepi32_epi16(h0));
    _mm256_storeu_si256((__m256i *)(xq + 8), _mm512_cvtepi32_epi16(h1));
    _mm256_storeu_si256((__m256i *)(xq + 16), _mm512_cvtepi32_epi16(l0));
    _mm256_storeu_si256((__m256i *)(xq + 24), _mm512_cvtepi32_epi16(l1));
#elif TR_ISA == 2
    const __m256i half = _mm256_set1_epi32(0x8000);
    __m256i h[4], l[4];
    for (int j = 0; j < 4; j++) {
        __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(a[j], _mm256_set1_ps(f)));
        h[j] = _mm256_srai_epi32(_mm256_add_epi32(v, half), 16);
        l[j] = _mm256_sub_epi32(v, _mm256_slli_epi32(h[j], 16));
    }
    /* packs works within 128-bit halves: the permute restores the order */
    for (int j = 0; j < 2; j++) {
        _mm256_storeu_si256((__m256i *)(xq + 8 * j),
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(h[2 * j], h[2 * j + 1]), 0xd8));
        _mm256_storeu_si256((__m256i *)(xq + 16 + 8 * j),
                            _mm256_permute4x64_epi64(_mm256_packs_epi32(l[2 * j], l[2 * j + 1]), 0xd8));
    }
#else
    int16_t hl[2 * TR_Q8P_BLOCK];
    for (int j = 0; j < TR_Q8P_BLOCK; j++) {
        int32_t v = (int32_t)rintf(x[j] * f);   /* |v| <= 2^30 */
        int32_t h = (v + 0x8000) >> 16;
        hl[j] = (int16_t)h;
        hl[TR_Q8P_BLOCK + j] = (int16_t)(v - h * 65536);
    }
    memcpy(xq, hl, sizeof(hl));
#endif
    return tr_bits_f32((uint32_t)(e - 30 + 127) << 23);   /* 2^(e - 30) */
}

/* Packs rows [0, M) of x (M, K) into xq (M, K / 32, 32) and xs (M, K / 32). */
static TR_TARGET void Q_FN(s_q8p_pack_x)(const float *x, int32_t M, int32_t K, int32_t *xq,
                                         float *xs) {
    const int32_t nblk = K / TR_Q8P_BLOCK;
    for (int32_t m = 0; m < M; m++)
        for (int32_t b = 0; b < nblk; b++) {
            size_t i = (size_t)m * nblk + b;
            xs[i] = Q_FN(s_q8p_pack_x_block)(x + (size_t)m * K + (size_t)b * TR_Q8P_BLOCK,
                                              xq + i * TR_Q8P_BLOCK);
        }
}

#endif

/* out (MB, G * 16) = G consecutive 16-row groups at grp (nblk blocks each) times MB rows of
 * packed x. The loop over a block's 16 steps is the hot spot: per step one quant load and
 * widening per vector of rows, two dot instructions per vector and row of x. Meanwhile
 * pf_lines cache lines from pf (NULL: none) are prefetched, spread evenly over the blocks:
 * the caller points pf at the part of the next group this tile is to fetch, so that the
 * weights arrive while the dot products run (batched decode is compute-bound; waiting for
 * each group's first touch left the lm_head ~20% below the same kernel in cache). AHEAD
 * (batch 1, memory-bound) instead prefetches each group's stream TR_Q8P_PF_BYTES ahead of
 * its loads, a block's lines over its first steps. */
static inline __attribute__((always_inline)) TR_TARGET void
Q_FN(s_q8p_tile)(const uint8_t *grp, size_t grp_bytes, const int32_t *xq, const float *xs,
                 int32_t nblk, const int G, const int MB, float *out, const char *pf,
                 int32_t pf_lines, const int AHEAD) {
    enum { NV = TR_Q8P_ROWS / V_W };    /* vectors per group */
    vf acc[Q_MB][2 * NV];
#pragma GCC unroll 8
    for (int m = 0; m < MB; m++)
#pragma GCC unroll 32
        for (int v = 0; v < G * NV; v++) acc[m][v] = V_ZERO();
    for (int32_t b = 0; b < nblk; b++) {
        const uint8_t *blk = grp + (size_t)b * TR_Q8P_BLOCK_BYTES;
#if V_W > 1
        if (pf) {
            for (int32_t l = pf_lines * b / nblk; l < pf_lines * (b + 1) / nblk; l++)
                _mm_prefetch(pf + (size_t)l * 64, _MM_HINT_T0);
        }
#endif
        vi hi[Q_MB][2 * NV], lo[Q_MB][2 * NV];
#pragma GCC unroll 8
        for (int m = 0; m < MB; m++)
#pragma GCC unroll 32
            for (int v = 0; v < G * NV; v++) hi[m][v] = lo[m][v] = QI_ZERO();
#pragma GCC unroll 16
        for (int i = 0; i < TR_Q8P_BLOCK / 2; i++) {
#if V_W > 1
            if (AHEAD && i * 64 < TR_Q8P_BLOCK_BYTES)
#pragma GCC unroll 2
                for (int gi = 0; gi < G; gi++)
                    _mm_prefetch((const char *)blk + (size_t)gi * grp_bytes + TR_Q8P_PF_BYTES +
                                     i * 64, _MM_HINT_T0);
#endif
            vi w[2 * NV];
#pragma GCC unroll 32
            for (int v = 0; v < G * NV; v++)
                w[v] = QI_W16(blk + (size_t)(v / NV) * grp_bytes + TR_Q8P_SCALE_BYTES +
                              i * 2 * TR_Q8P_ROWS + (v % NV) * 2 * V_W);
#pragma GCC unroll 8
            for (int m = 0; m < MB; m++) {
                const int32_t *xb = xq + ((size_t)m * nblk + b) * TR_Q8P_BLOCK;
                vi xh = QI_SET1(xb[i]), xl = QI_SET1(xb[TR_Q8P_BLOCK / 2 + i]);
#pragma GCC unroll 32
                for (int v = 0; v < G * NV; v++) {
                    hi[m][v] = QI_DOT(hi[m][v], w[v], xh);
                    lo[m][v] = QI_DOT(lo[m][v], w[v], xl);
                }
            }
        }
#pragma GCC unroll 32
        for (int v = 0; v < G * NV; v++) {
            vf d = V_LOAD_F16((const uint16_t *)(blk + (size_t)(v / NV) * grp_bytes) + (v % NV) * V_W);
#pragma GCC unroll 8
            for (int m = 0; m < MB; m++) {
                vf s = V_MUL(d, V_SET1(xs[(size_t)m * nblk + b]));
                vf t = V_FMA(QI_CVT(hi[m][v]), V_SET1(65536.0f), QI_CVT(lo[m][v]));
                acc[m][v] = V_FMA(t, s, acc[m][v]);
            }
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MB; m++)
#pragma GCC unroll 32
        for (int v = 0; v < G * NV; v++) V_STORE(out + m * G * TR_Q8P_ROWS + v * V_W, acc[m][v]);
}

static inline __attribute__((always_inline)) TR_TARGET void
Q_FN(s_q8p_rows)(const tr_q8p_gemv_t *a, int32_t g, const int G, int32_t m0, const int MB,
                 const char *pf, int32_t pf_lines, const int AHEAD) {
    const tr_matmul_params_t *p = a->p;
    const int32_t N = p->N, nblk = p->K / TR_Q8P_BLOCK;
    const size_t grp_bytes = (size_t)nblk * TR_Q8P_BLOCK_BYTES;
    float out[Q_MB * 2 * TR_Q8P_ROWS];
    Q_FN(s_q8p_tile)((const uint8_t *)p->w_packed + (size_t)g * grp_bytes, grp_bytes,
                     a->xq + (size_t)m0 * nblk * TR_Q8P_BLOCK, a->xs + (size_t)m0 * nblk, nblk,
                     G, MB, out, pf, pf_lines, AHEAD);
    for (int m = 0; m < MB; m++) {
        float *y = p->y + (size_t)(m0 + m) * N;
        for (int32_t r = 0; r < G * TR_Q8P_ROWS; r++) {
            int32_t n = g * TR_Q8P_ROWS + r;
            if (n >= N) break;
            float v = out[m * G * TR_Q8P_ROWS + r] + (p->bias ? p->bias[n] : 0.0f);
            y[n] = p->accumulate ? y[n] + v : v;
        }
    }
}

/* Pool task: the 16-row groups [task * a->ng, ...) for every row of x. Each group's
 * weights are read from memory once and stay in L1/L2 while tiles of up to Q_MB rows of x
 * pass over them. A row's result does not depend on the tile it falls in, nor on M: every
 * lane runs the same integer sums and the same f32 steps in the same order, so a request
 * decodes bitwise the same alone and in a batch of any size up to TR_MM_MROW_MAX_M. */
static TR_TARGET void Q_FN(s_q8p_gemv)(void *ctx, int32_t task, int32_t thread) {
    const tr_q8p_gemv_t *a = ctx;
    const int32_t M = a->p->M, n_groups = (a->p->N + TR_Q8P_ROWS - 1) / TR_Q8P_ROWS;
    int32_t g0 = task * a->ng, g1 = g0 + a->ng < n_groups ? g0 + a->ng : n_groups;
    (void)thread;
    if (M == 1) {   /* two groups at a time: four independent integer chains per step;
                     * memory-bound, so each stream prefetches ahead */
        int32_t g = g0;
#if V_W > 1
        /* the lines before the prefetch distance at once: the task starts two new streams */
        const size_t grp_bytes = (size_t)(a->p->K / TR_Q8P_BLOCK) * TR_Q8P_BLOCK_BYTES;
        for (int32_t gi = g0; gi < g0 + 2 && gi < g1; gi++)
            for (int l = 0; l < TR_Q8P_PF_BYTES; l += 64)
                _mm_prefetch((const char *)a->p->w_packed + (size_t)gi * grp_bytes + l,
                             _MM_HINT_T0);
#endif
        for (; g + 2 <= g1; g += 2) Q_FN(s_q8p_rows)(a, g, 2, 0, 1, NULL, 0, 1);
        if (g < g1) Q_FN(s_q8p_rows)(a, g, 1, 0, 1, NULL, 0, 1);
        return;
    }
    /* tiles as even as Q_MB allows (M = 9: 5 + 4, not 8 + 1); from M = 8 (compute-bound)
     * each tile prefetches its share of the next group's lines */
    const int32_t n_tiles = (M + Q_MB - 1) / Q_MB;
    const size_t grp_bytes = (size_t)(a->p->K / TR_Q8P_BLOCK) * TR_Q8P_BLOCK_BYTES;
    const int32_t lines = (int32_t)(grp_bytes / 64);
    for (int32_t g = g0; g < g1; g++) {
        const char *next = M >= 8 && g + 1 < n_groups
                               ? (const char *)a->p->w_packed + (size_t)(g + 1) * grp_bytes
                               : NULL;
        for (int32_t t = 0, m0 = 0; t < n_tiles; t++) {
            const int32_t mt = M / n_tiles + (t < M % n_tiles);
            const int32_t l0 = lines * t / n_tiles, nl = lines * (t + 1) / n_tiles - l0;
            const char *pf = next ? next + (size_t)l0 * 64 : NULL;
#if V_W > 1
            /* and the tile's y lines of the next group: the lm_head's y rows (196 KB apart
             * at M = 16) miss every cache, and a missed store stalls the dot products */
            for (int32_t m = 0; next && m < mt; m++) {
                const float *y = a->p->y + (size_t)(m0 + m) * a->p->N + (g + 1) * TR_Q8P_ROWS;
                _mm_prefetch((const char *)y, _MM_HINT_T0);
                _mm_prefetch((const char *)(y + TR_Q8P_ROWS - 1), _MM_HINT_T0);
            }
#endif
            switch (mt) {
            case 1: Q_FN(s_q8p_rows)(a, g, 1, m0, 1, pf, nl, 0); break;
            case 2: Q_FN(s_q8p_rows)(a, g, 1, m0, 2, pf, nl, 0); break;
            case 3: Q_FN(s_q8p_rows)(a, g, 1, m0, 3, pf, nl, 0); break;
#if Q_MB > 4
            case 4: Q_FN(s_q8p_rows)(a, g, 1, m0, 4, pf, nl, 0); break;
            case 5: Q_FN(s_q8p_rows)(a, g, 1, m0, 5, pf, nl, 0); break;
            case 6: Q_FN(s_q8p_rows)(a, g, 1, m0, 6, pf, nl, 0); break;
            case 7: Q_FN(s_q8p_rows)(a, g, 1, m0, 7, pf, nl, 0); break;
#endif
            default: Q_FN(s_q8p_rows)(a, g, 1, m0, Q_MB, pf, nl, 0); break;
            }
            m0 += mt;
        }
    }
}
