/*  kernels/cpu/ops_cpu.c - the CPU backend: instance, SIMD level, thread pool, scratch.
 *
 *  tr_ops_cpu_new() resolves the SIMD level once (TR_SIMD_AUTO: the best of AVX-512,
 *  AVX2+FMA+F16C and scalar that __builtin_cpu_supports reports, or TROUPE_SIMD=scalar|
 *  avx2|avx512 from the environment), starts the pool and fills the vtable. Kernels index
 *  their per-ISA tables with that level; at AVX-512 the packed q8_0 GEMV also uses VNNI
 *  when the CPU has it, unless TROUPE_NO_VNNI is set (so tests reach the other path).
 *  Memory is host memory.                                                            */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kernels/cpu/cpu_impl.h"
#include "runtime/log.h"

static const char *const s_simd_names[] = {"auto", "scalar", "avx2", "avx512"};

const char *tr_simd_name(tr_simd_t level) {
    return (unsigned)level < TR_ARRAY_LEN(s_simd_names) ? s_simd_names[level] : "?";
}

int tr_simd_supported(tr_simd_t level) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    switch (level) {
    case TR_SIMD_AUTO:
    case TR_SIMD_SCALAR: return 1;
    case TR_SIMD_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    case TR_SIMD_AVX512:
        return tr_simd_supported(TR_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
    }
    return 0;
#else
    return level == TR_SIMD_AUTO || level == TR_SIMD_SCALAR;
#endif
}

static tr_simd_t s_resolve(tr_simd_t want) {
    if (want != TR_SIMD_AUTO) return tr_simd_supported(want) ? want : TR_SIMD_AUTO;
    const char *env = getenv("TROUPE_SIMD");
    if (env && *env) {
        for (int l = TR_SIMD_SCALAR; l <= TR_SIMD_AVX512; l++)
            if (strcasecmp(env, s_simd_names[l]) == 0 && tr_simd_supported(l)) return l;
        TR_WARN("TROUPE_SIMD=%s is unknown or unsupported here; choosing automatically", env);
    }
    for (int l = TR_SIMD_AVX512; l > TR_SIMD_SCALAR; l--)
        if (tr_simd_supported(l)) return l;
    return TR_SIMD_SCALAR;
}

static int32_t s_default_threads(void) {
    const char *env = getenv("TROUPE_THREADS");
    if (env && atoi(env) > 0) return atoi(env);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}

/* ---- scratch ---- */

static void s_free_scratch(tr_cpu_t *cpu) {
    for (int32_t i = 0; cpu->scratch && i < cpu->n_scratch; i++) free(cpu->scratch[i]);
    free(cpu->scratch);
    cpu->scratch = NULL;
    cpu->n_scratch = 0;
    cpu->scratch_bytes = 0;
}

int tr_cpu_reserve(tr_cpu_t *cpu, size_t bytes) {
    int32_t threads = tr_pool_threads(cpu->pool);
    if (bytes <= cpu->scratch_bytes && cpu->n_scratch == threads) return TR_OK;
    if (bytes < cpu->scratch_bytes) bytes = cpu->scratch_bytes;
    bytes = (bytes + 4095) & ~(size_t)4095;
    s_free_scratch(cpu);
    cpu->scratch = calloc((size_t)threads, sizeof(void *));
    if (!cpu->scratch) return TR_ENOMEM;
    cpu->n_scratch = threads;
    for (int32_t i = 0; i < threads; i++) {
        if (posix_memalign(&cpu->scratch[i], 64, bytes)) {
            cpu->scratch[i] = NULL;
            s_free_scratch(cpu);
            return TR_ENOMEM;
        }
    }
    cpu->scratch_bytes = bytes;
    return TR_OK;
}

int tr_cpu_reserve_shared(tr_cpu_t *cpu, size_t bytes) {
    if (bytes <= cpu->shared_bytes) return TR_OK;
    bytes = (bytes + 4095) & ~(size_t)4095;
    free(cpu->shared);
    cpu->shared = NULL;
    cpu->shared_bytes = 0;
    if (posix_memalign(&cpu->shared, 64, bytes)) {
        cpu->shared = NULL;
        return TR_ENOMEM;
    }
    cpu->shared_bytes = bytes;
    return TR_OK;
}

/* ---- instance ---- */

static void s_destroy(tr_ops_t *ops) {
    tr_cpu_t *cpu = TR_CPU(ops);
    tr_pool_destroy(&cpu->pool);
    s_free_scratch(cpu);
    free(cpu->shared);
    free(cpu);
}

static int32_t s_threads(const tr_ops_t *ops) {
    return tr_pool_threads(((const tr_cpu_t *)ops)->pool);
}

static int s_set_threads(tr_ops_t *ops, int32_t n) {
    tr_cpu_t *cpu = TR_CPU(ops);
    if (n == 0) n = s_default_threads();
    if (n == tr_pool_threads(cpu->pool)) return TR_OK;
    tr_pool_t *pool = tr_pool_new(n);
    if (!pool) return TR_ENOMEM;
    tr_pool_destroy(&cpu->pool);
    cpu->pool = pool;
    size_t keep = cpu->scratch_bytes;
    s_free_scratch(cpu);
    return keep ? tr_cpu_reserve(cpu, keep) : TR_OK;
}

static void s_idle(tr_ops_t *ops) {
    tr_pool_park(TR_CPU(ops)->pool);
}

static const tr_ops_vtable_t s_vtable = {
    .name = "cpu",
    .destroy = s_destroy,
    .threads = s_threads,
    .set_threads = s_set_threads,
    .idle = s_idle,
    .pack_weights = tr_cpu_pack_weights,
    .matmul = tr_cpu_matmul,
    .matmul_batch = tr_cpu_matmul_batch,
    .rmsnorm = tr_cpu_rmsnorm,
    .swiglu = tr_cpu_swiglu,
    .softmax = tr_cpu_softmax,
    .sigmoid = tr_cpu_sigmoid,
    .add_rows = tr_cpu_add_rows,
    .gather_rows = tr_cpu_gather_rows,
    .embed = tr_cpu_embed,
    .rope = tr_cpu_rope,
    .kv_store = tr_cpu_kv_store,
    .attention = tr_cpu_attention,
    .moe_route = tr_cpu_moe_route,
    .sample = tr_cpu_sample,
    .quantize = tr_cpu_quantize,
    .dequantize = tr_cpu_dequantize,
};

tr_ops_t *tr_ops_cpu_new(const tr_ops_cpu_opts_t *opts) {
    tr_ops_cpu_opts_t o = opts ? *opts : (tr_ops_cpu_opts_t){0};
    if (o.n_threads < 0 || (unsigned)o.simd > TR_SIMD_AVX512) return NULL;
    tr_simd_t simd = s_resolve(o.simd);
    if (simd == TR_SIMD_AUTO) return NULL;   /* a forced level the machine lacks */
    tr_cpu_t *cpu = calloc(1, sizeof(*cpu));
    if (!cpu) return NULL;
    cpu->simd = simd;
    cpu->vnni = simd == TR_SIMD_AVX512 && __builtin_cpu_supports("avx512vnni") &&
                !getenv("TROUPE_NO_VNNI");
    cpu->pool = tr_pool_new(o.n_threads ? o.n_threads : s_default_threads());
    if (!cpu->pool) goto fail;
    cpu->vt = s_vtable;
    snprintf(cpu->name, sizeof(cpu->name), "cpu-%s", tr_simd_name(simd));
    cpu->vt.name = cpu->name;
    cpu->base.vt = &cpu->vt;
    cpu->base.tag = TR_OPS_TAG;
    return &cpu->base;
fail:
    tr_pool_destroy(&cpu->pool);
    free(cpu);
    return NULL;
}

tr_ops_t *tr_ops_cpu(void) {
    return tr_ops_cpu_new(NULL);
}
