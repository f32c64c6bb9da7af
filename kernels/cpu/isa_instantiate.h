/*  kernels/cpu/isa_instantiate.h - includes the body named by TR_ISA_BODY once per ISA.
 *
 *      #define TR_ISA_BODY "kernels/cpu/matmul_isa.h"
 *      #include "kernels/cpu/isa_instantiate.h"
 *      static const s_fn_t s_table[] = TR_ISA_TABLE(s_gemv);   // {scalar, avx2, avx512}
 *
 *  The table is indexed by tr_simd_t - 1 (TR_SIMD_SCALAR = 1 .. TR_SIMD_AVX512 = 3).  */

#define TR_ISA 1
#include "kernels/cpu/isa.h"
#include TR_ISA_BODY
#undef TR_ISA

#define TR_ISA 2
#include "kernels/cpu/isa.h"
#include TR_ISA_BODY
#undef TR_ISA

#define TR_ISA 3
#include "kernels/cpu/isa.h"
#include TR_ISA_BODY
#undef TR_ISA

#undef TR_ISA_BODY

#ifndef TR_ISA_TABLE
#define TR_ISA_TABLE(name) {name##_scalar, name##_avx2, name##_avx512}
#endif
