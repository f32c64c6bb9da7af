/*  tests/kernels/test_quant.c - dtype conversions and quantize / dequantize.
 *
 *  f16: all 65536 values widened against the CPU's own F16C instruction, and 2^20 random
 *  f32 (plus edge cases) narrowed against it: the hardware is the reference. bf16: round to
 *  nearest even on hand-picked ties, NaN kept. q8_0: the ggml block layout by hand (scale =
 *  max|x| / 127 as f16, rounded quants), round-trip error <= d/2 + 127 ulp(d), the CPU backend
 *  bit-identical to the reference for every dtype.                                   */
#include <immintrin.h>

#include "tests/kernels/kernel_test.h"

__attribute__((target("f16c"))) static float s_hw_h2f(uint16_t h) {
    return _cvtsh_ss(h);
}

__attribute__((target("f16c"))) static uint16_t s_hw_f2h(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

static int s_same_float(float a, float b) {
    return (isnan(a) && isnan(b)) || tr_f32_bits(a) == tr_f32_bits(b);
}

static void s_test_f16(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c")) {
        skip("no F16C to compare against");
        return;
    }
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++)
        if (!s_same_float(tr_f16_to_f32((uint16_t)h), s_hw_h2f((uint16_t)h))) bad++;
    ok(bad == 0, "f16 -> f32 equals F16C for all 65536 values (%d differ)", bad);
    bad = 0;
    static const float edge[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e9f, -1e9f,
                                 6.1035156e-05f, 5.9604645e-08f, 2.9802322e-08f,
                                 2.9802326e-08f, 8.940697e-08f, 1.0f / 3, INFINITY, -INFINITY};
    for (size_t i = 0; i < TR_ARRAY_LEN(edge); i++)
        if (tr_f32_to_f16(edge[i]) != s_hw_f2h(edge[i])) bad++;
    for (int i = 0; i < (1 << 20); i++) {
        float f = tr_bits_f32((uint32_t)kt_next());
        if (isnan(f)) continue;
        if (tr_f32_to_f16(f) != s_hw_f2h(f)) bad++;
    }
    ok(bad == 0, "f32 -> f16 equals F16C on edge cases and 2^20 random floats (%d differ)", bad);
    ok((tr_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (tr_f32_to_f16(NAN) & 0x3ff),
       "f32 -> f16 keeps NaN a NaN");
}

static void s_test_bf16(void) {
    ok(tr_f32_to_bf16(1.0f) == 0x3f80, "bf16(1) = 0x3f80");
    ok(tr_f32_to_bf16(tr_bits_f32(0x3f808000)) == 0x3f80, "bf16 tie rounds to even (down)");
    ok(tr_f32_to_bf16(tr_bits_f32(0x3f818000)) == 0x3f82, "bf16 tie rounds to even (up)");
    ok(tr_f32_to_bf16(tr_bits_f32(0x3f808001)) == 0x3f81, "bf16 above a tie rounds up");
    ok(tr_f32_to_bf16(tr_bits_f32(0x7f7fffff)) == 0x7f80, "bf16 of FLT_MAX overflows to inf");
    uint16_t n = tr_f32_to_bf16(NAN);
    ok((n & 0x7f80) == 0x7f80 && (n & 0x7f), "bf16 keeps NaN a NaN");
    ok(tr_bf16_to_f32(0xc040) == -3.0f, "bf16 0xc040 = -3");
}

static void s_test_q8_0(tr_ops_t *ref) {
    float x[32];
    for (int i = 0; i < 32; i++) x[i] = (float)(i - 16) * 0.1f;
    tr_block_q8_0_t b;
    tr_ops_quantize(ref, &b, TR_DTYPE_Q8_0, x, 32);
    float d = 1.6f / 127.0f;
    ok(b.d == tr_f32_to_f16(d), "q8_0 scale is max|x| / 127 stored as f16");
    ok(b.qs[0] == -127 && b.qs[16] == 0 && b.qs[31] == (int8_t)roundf(1.5f / d),
       "q8_0 quants are round(x / d) (%d %d %d)", b.qs[0], b.qs[16], b.qs[31]);
    float z[32] = {0};
    tr_ops_quantize(ref, &b, TR_DTYPE_Q8_0, z, 32);
    ok(b.d == 0 && b.qs[5] == 0, "q8_0 of zeros has d = 0");
    int n = 32 * 64;
    float *r = kt_rand(n, -3, 3), *back = malloc(n * 4);
    for (int i = 0; i < n; i += 97) r[i] *= 40;   /* outliers in some blocks */
    void *q = kt_quantize(ref, TR_DTYPE_Q8_0, r, n);
    tr_ops_dequantize(ref, back, q, TR_DTYPE_Q8_0, n);
    int bad = 0;
    const tr_block_q8_0_t *qb = q;
    for (int i = 0; i < n; i++) {
        float dd = tr_f16_to_f32(qb[i / 32].d);
        /* quants use the unrounded scale (as ggml): add 127 x the f16 rounding of d */
        if (fabsf(back[i] - r[i]) > 0.5f * dd + 127.0f * dd / 2048.0f + 1e-6f) bad++;
    }
    ok(bad == 0, "q8_0 round trip within d/2 + 127 ulp_f16(d) (%d outside)", bad);
    free(r), free(back), free(q);
}

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref();
    s_test_f16();
    s_test_bf16();
    s_test_q8_0(ref);
    ok(tr_dtype_row_bytes(TR_DTYPE_Q8_0, 64) == 68 && tr_dtype_row_bytes(TR_DTYPE_Q8_0, 33) == 0,
       "row bytes of q8_0");
    ok(tr_dtype_from_name("bf16") == TR_DTYPE_BF16 && tr_dtype_from_name("x") == -1,
       "dtype names parse");
    kt_backend_t be[KT_MAX_BACKENDS];
    int nb = kt_backends(be);
    int64_t n = 32 * 3001;
    float *x = kt_rand(n, -5, 5);
    for (int dt = 0; dt < TR_DTYPE_COUNT; dt++) {
        size_t bytes = tr_dtype_row_bytes(dt, n);
        void *qr = malloc(bytes), *qb = malloc(bytes);
        float *fr = malloc(n * 4), *fb = malloc(n * 4);
        tr_ops_quantize(ref, qr, dt, x, n);
        tr_ops_dequantize(ref, fr, qr, dt, n);
        for (int b = 0; b < nb; b++) {
            memset(qb, 0, bytes);
            int rc = tr_ops_quantize(be[b].ops, qb, dt, x, n);
            rc |= tr_ops_dequantize(be[b].ops, fb, qr, dt, n);
            ok(rc == TR_OK && memcmp(qb, qr, bytes) == 0 && memcmp(fb, fr, n * 4) == 0,
               "quantize/dequantize %s %s bit-identical to ref", be[b].label, tr_dtype_name(dt));
        }
        free(qr), free(qb), free(fr), free(fb);
    }
    free(x);
    kt_backends_free(be, nb);
    tr_ops_destroy(&ref);
    return done_testing();
}
