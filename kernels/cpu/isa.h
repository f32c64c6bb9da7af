/*  kernels/cpu/isa.h - vector macros for one instruction set (private to kernels/cpu/).
 *
 *  The CPU kernels are written once, against these macros, in kernels/cpu/<op>_isa.h; each
 *  kernels/cpu/<op>.c includes kernels/cpu/isa_instantiate.h, which includes this header
 *  and the body once per ISA (scalar, AVX2+FMA+F16C, AVX-512) with TR_ISA set. Every
 *  function of a body is named V_FN(name) (name_scalar, name_avx2, name_avx512) and marked
 *  TR_TARGET, so the compiler emits that ISA for it without any -m flag on the command
 *  line; kernels/cpu/ops_cpu.c picks the table entry with __builtin_cpu_supports. The
 *  scalar instance is plain C (V_W == 1) and is what the SIMD instances are tested against.
 *
 *  vf            a vector of V_W floats
 *  V_LOAD/STORE  unaligned load / store of V_W floats
 *  V_FMA(a,b,c)  a * b + c;  V_ADD/SUB/MUL/DIV/MAX elementwise
 *  V_HSUM/HMAX   horizontal sum / max
 *  V_LOAD_BF16 / V_LOAD_F16 / V_LOAD_I8   V_W stored values widened to f32
 *  V_EXP         e^x (polynomial on SIMD ISAs, about 2 ulp; 0 below -87.3)
 *  V_F16_SCALAR  one f16 to f32 (F16C on SIMD ISAs)
 *  V_MR, V_NRV   GEMM micro-tile: V_MR weight rows times V_NRV vectors of tokens      */

#include <immintrin.h>
#include <math.h>

#include "kernels/dtype.h"

#undef TR_TARGET
#undef TR_ISA_NAME
#undef V_FN
#undef V_W
#undef V_MR
#undef V_NRV
#undef vf
#undef V_ZERO
#undef V_SET1
#undef V_LOAD
#undef V_STORE
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_FMA
#undef V_MAX
#undef V_HSUM
#undef V_HMAX
#undef V_LOAD_BF16
#undef V_LOAD_F16
#undef V_LOAD_I8
#undef V_EXP
#undef V_F16_SCALAR

#define TR_CAT2(a, b) a##_##b
#define TR_CAT(a, b) TR_CAT2(a, b)

#if TR_ISA == 1 /* ---------------- scalar ---------------- */

#define TR_ISA_NAME scalar
#define TR_TARGET
#define V_W 1
#define V_MR 4
#define V_NRV 4
#define vf float
#define V_ZERO() 0.0f
#define V_SET1(a) (a)
#define V_LOAD(p) (*(p))
#define V_STORE(p, v) (*(p) = (v))
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_FMA(a, b, c) ((a) * (b) + (c))
#define V_MAX(a, b) ((a) > (b) ? (a) : (b))
#define V_HSUM(v) (v)
#define V_HMAX(v) (v)
#define V_LOAD_BF16(p) tr_bf16_to_f32(*(p))
#define V_LOAD_F16(p) tr_f16_to_f32(*(p))
#define V_LOAD_I8(p) ((float)*(p))
#define V_EXP(v) expf(v)
#define V_F16_SCALAR(h) tr_f16_to_f32(h)

#elif TR_ISA == 2 /* ---------------- AVX2 + FMA + F16C ---------------- */

#define TR_ISA_NAME avx2
#define TR_TARGET __attribute__((target("avx2,fma,f16c")))
#define V_W 8
#define V_MR 6
#define V_NRV 2
#define vf __m256
#define V_ZERO() _mm256_setzero_ps()
#define V_SET1(a) _mm256_set1_ps(a)
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_ADD(a, b) _mm256_add_ps((a), (b))
#define V_SUB(a, b) _mm256_sub_ps((a), (b))
#define V_MUL(a, b) _mm256_mul_ps((a), (b))
#define V_DIV(a, b) _mm256_div_ps((a), (b))
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_MAX(a, b) _mm256_max_ps((a), (b))
#define V_LOAD_BF16(p)                                                                     \
    _mm256_castsi256_ps(                                                                   \
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define V_LOAD_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define V_LOAD_I8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))

static inline TR_TARGET float s_hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline TR_TARGET float s_hmax_avx2(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* e^x = 2^n e^r, n = round(x log2 e), r = x - n ln 2 (two-part ln 2), degree-6 Taylor on r. */
static inline TR_TARGET __m256 s_exp_avx2(__m256 x) {
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33f)), _mm256_set1_ps(88.72f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068203094173e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    /* 2^n in two halves so that n = 128 (x near 88.7) does not overflow the exponent */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i h = _mm256_srai_epi32(ni, 1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
    p = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    return _mm256_andnot_ps(tiny, p);
}

#define V_HSUM(v) s_hsum_avx2(v)
#define V_F16_SCALAR(h) _cvtsh_ss(h)
#define V_HMAX(v) s_hmax_avx2(v)
#define V_EXP(v) s_exp_avx2(v)

#elif TR_ISA == 3 /* ---------------- AVX-512 F/BW/DQ/VL ---------------- */

#define TR_ISA_NAME avx512
#define TR_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
#define V_W 16
#define V_MR 12
#define V_NRV 2
#define vf __m512
#define V_ZERO() _mm512_setzero_ps()
#define V_SET1(a) _mm512_set1_ps(a)
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_ADD(a, b) _mm512_add_ps((a), (b))
#define V_SUB(a, b) _mm512_sub_ps((a), (b))
#define V_MUL(a, b) _mm512_mul_ps((a), (b))
#define V_DIV(a, b) _mm512_div_ps((a), (b))
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_MAX(a, b) _mm512_max_ps((a), (b))
#define V_HSUM(v) _mm512_reduce_add_ps(v)
#define V_HMAX(v) _mm512_reduce_max_ps(v)
#define V_LOAD_BF16(p)                                                                     \
    _mm512_castsi512_ps(                                                                   \
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define V_LOAD_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define V_LOAD_I8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))

static inline TR_TARGET __m512 s_exp_avx512(__m512 x) {
    __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33f), _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.33f)), _mm512_set1_ps(88.72f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.4286068203094173e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_scalef_ps(p, n);   /* p * 2^n, exact, no exponent overflow tricks needed */
    return _mm512_maskz_mov_ps(~tiny, p);
}

#define V_EXP(v) s_exp_avx512(v)
#define V_F16_SCALAR(h) _cvtsh_ss(h)

#else
#error "TR_ISA must be 1 (scalar), 2 (avx2) or 3 (avx512)"
#endif

#define V_FN(name) TR_CAT(name, TR_ISA_NAME)

/* out[0..3] = horizontal sums of v[0..3] (one transpose-and-add tree, not four HSUMs). */
static inline TR_TARGET void V_FN(s_hsum4)(const vf *v, float *out) {
#if V_W == 16
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(v[2], v[3]), _mm512_unpackhi_ps(v[2], v[3]));
    __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
#elif V_W == 8
    __m256 t0 = _mm256_add_ps(_mm256_unpacklo_ps(v[0], v[1]), _mm256_unpackhi_ps(v[0], v[1]));
    __m256 t1 = _mm256_add_ps(_mm256_unpacklo_ps(v[2], v[3]), _mm256_unpackhi_ps(v[2], v[3]));
    __m256 u = _mm256_add_ps(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(u), _mm256_extractf128_ps(u, 1)));
#else
    for (int i = 0; i < 4; i++) out[i] = V_HSUM(v[i]);
#endif
}
