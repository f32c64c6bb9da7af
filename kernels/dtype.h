/*  kernels/dtype.h - weight dtypes and their scalar conversions.
 *
 *  The dtype enum comes from kernels/dtypes.def. This header also holds the exact scalar
 *  conversions every backend and loader shares: bf16 and IEEE f16 to and from f32 (round
 *  to nearest even, NaN kept a NaN), and ggml's q8_0 block (32 int8 values and one f16
 *  scale d: x = d * q). All of it is pure and thread-safe.
 *
 *      size_t bytes = tr_dtype_row_bytes(TR_DTYPE_Q8_0, 4096);   // 4352
 *      float x = tr_bf16_to_f32(0x3f80);                          // 1.0f              */
#ifndef TR_DTYPE_H
#define TR_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
#define TR_DTYPE(E, n, be, bb, nmse) TR_DTYPE_##E,
#include "kernels/dtypes.def"
#undef TR_DTYPE
    TR_DTYPE_COUNT
} tr_dtype_t;

/* ggml's Q8_0 block: 32 values x = d * qs[i]. */
#define TR_Q8_0_BLOCK 32
typedef struct {
    uint16_t d;                 /* f16 scale */
    int8_t qs[TR_Q8_0_BLOCK];   /* quants */
} tr_block_q8_0_t;
#ifdef __cplusplus   /* kernels/cuda/ includes this from C++ */
static_assert(sizeof(tr_block_q8_0_t) == 34, "q8_0 block is 34 bytes");
#else
_Static_assert(sizeof(tr_block_q8_0_t) == 34, "q8_0 block is 34 bytes");
#endif

/* "f32", "bf16", ...; "?" for an invalid value. */
const char *tr_dtype_name(tr_dtype_t t);
/* Parses a name from tr_dtype_name(); -1 when unknown. */
int tr_dtype_from_name(const char *name);
/* Values per storage block (1, or 32 for q8_0) and bytes per block. */
int32_t tr_dtype_block_elems(tr_dtype_t t);
size_t tr_dtype_block_bytes(tr_dtype_t t);
/* Bytes of n values; n must be a multiple of the block size (0 is returned otherwise). */
size_t tr_dtype_row_bytes(tr_dtype_t t, int64_t n);

/* ---- scalar conversions ---- */

static inline uint32_t tr_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float tr_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float tr_bf16_to_f32(uint16_t h) {
    return tr_bits_f32((uint32_t)h << 16);
}

/* Round to nearest even, as torch does; NaN stays a (quiet) NaN. */
static inline uint16_t tr_f32_to_bf16(float f) {
    uint32_t u = tr_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float tr_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return tr_bits_f32(sign | 0x7f800000u | (mant << 13));   /* inf, NaN */
    if (exp == 0) {
        if (mant == 0) return tr_bits_f32(sign);
        /* subnormal: mant * 2^-24, exact in f32 */
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return tr_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

/* Round to nearest even; overflow gives inf; NaN stays a (quiet) NaN. */
static inline uint16_t tr_f32_to_f16(float f) {
    uint32_t x = tr_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return sign | 0x7c00 | (x > 0x7f800000u ? 0x200 : 0);
    if (x >= 0x477ff000u) return sign | 0x7c00;   /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {                         /* below 2^-14: subnormal or zero */
        if (x < 0x33000000u) return sign;          /* below 2^-25 */
        uint32_t e = x >> 23, m = (x & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;                  /* 14..24 */
        uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t y = x - (112u << 23);
    y = (y + 0xfffu + ((y >> 13) & 1u)) >> 13;
    return sign | (uint16_t)y;
}

#endif
