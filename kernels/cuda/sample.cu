/*  kernels/cuda/sample.cu - sampling on the GPU: greedy, temperature, top-k, top-p, min-p,
 *  repetition penalty, log-probabilities; seeded, counter-based.
 *  Oracle: kernels/ref/sample.c, whose order this follows: penalty on the distinct previous
 *  tokens, then argmax (temperature <= 0, lowest id on ties), else p = softmax(l / temp) in
 *  double, candidates sorted by (p desc, id asc), cut by top-k, top-p (smallest prefix whose
 *  mass reaches top_p), min-p, and a draw u * kept_mass walked down the sorted list. u is
 *  tr_sample_uniform(seed, counter), computed on the host by the same function the CPU uses,
 *  so a row draws the same token on either backend unless probabilities tie within
 *  rounding (the sums here are parallel reductions, the ref's are sequential).
 *
 *  One 1024-thread block per row; the sort is a bitonic sort of (p, id) pairs in global
 *  scratch padded to a power of two (readable, not fast: a radix select would avoid the full
 *  sort, see docs/cuda.md); the cumulative walks are serial in thread 0 and stop at the cut.
 *  Rows go in chunks so the scratch stays under 64 MiB.                               */
#include "kernels/cuda/cuda_impl.h"

#include <stdlib.h>

#define S_THREADS 1024

typedef struct {
    double u;                 /* tr_sample_uniform(seed, counter) */
    float temperature, top_p, min_p, rep;
    int32_t top_k, n_prev, prev_off, pad;
} s_row_t;

typedef struct {
    double p;
    int32_t id, pad;
} s_cand_t;

__device__ __forceinline__ bool s_before(const s_cand_t &a, const s_cand_t &b) {
    return a.p > b.p || (a.p == b.p && a.id < b.id);
}

/* block-wide reductions in double; red holds 32 doubles */
__device__ double s_sum_d(double v, double *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (threadIdx.x & 31) < (blockDim.x >> 5) ? red[threadIdx.x & 31] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* max of v, and the lowest index holding it */
__device__ void s_argmax_d(double *v, int32_t *at, double *red, int32_t *redi) {
    for (int o = 16; o > 0; o >>= 1) {
        double ov = __shfl_xor_sync(0xffffffffu, *v, o);
        int32_t oi = __shfl_xor_sync(0xffffffffu, *at, o);
        if (ov > *v || (ov == *v && oi < *at)) *v = ov, *at = oi;
    }
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = *v, redi[threadIdx.x >> 5] = *at;
    __syncthreads();
    bool in = (threadIdx.x & 31) < (blockDim.x >> 5);
    *v = in ? red[threadIdx.x & 31] : -INFINITY;
    *at = in ? redi[threadIdx.x & 31] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        double ov = __shfl_xor_sync(0xffffffffu, *v, o);
        int32_t oi = __shfl_xor_sync(0xffffffffu, *at, o);
        if (ov > *v || (ov == *v && oi < *at)) *v = ov, *at = oi;
    }
}

__global__ void __launch_bounds__(S_THREADS)
    s_sample(int32_t *tokens, float *logprobs, const float *logits, int32_t row0, int32_t V,
             int32_t Vp, const s_row_t *rows, const int32_t *prev, double *lw, s_cand_t *cand) {
    __shared__ double red[32];
    __shared__ int32_t redi[32];
    const int32_t b = row0 + blockIdx.x;
    const s_row_t sp = rows[b];
    const float *row = logits + (size_t)b * V;
    double *l = lw + (size_t)blockIdx.x * V;
    s_cand_t *c = cand + (size_t)blockIdx.x * Vp;

    /* repetition penalty on the distinct previous tokens */
    for (int32_t i = threadIdx.x; i < V; i += S_THREADS) l[i] = row[i];
    __syncthreads();
    if (sp.rep > 0 && sp.rep != 1.0f) {
        const int32_t *pt = prev + sp.prev_off;
        for (int32_t i = threadIdx.x; i < sp.n_prev; i += S_THREADS) {
            int32_t id = pt[i];
            bool first = id >= 0 && id < V;
            for (int32_t j = 0; first && j < i; j++) first = pt[j] != id;
            if (first) l[id] = l[id] > 0 ? l[id] / sp.rep : l[id] * sp.rep;
        }
        __syncthreads();
    }
    int32_t tok = 0;
    double best = -INFINITY;
    int32_t at = 0x7fffffff;
    for (int32_t i = threadIdx.x; i < V; i += S_THREADS)
        if (l[i] > best) best = l[i], at = i;   /* strided, so the first max seen is lowest */
    s_argmax_d(&best, &at, red, redi);
    if (sp.temperature <= 0) {
        tok = at;
    } else {
        const double mx = best, temp = sp.temperature;
        double z = 0;
        for (int32_t i = threadIdx.x; i < V; i += S_THREADS) z += exp((l[i] - mx) / temp);
        z = s_sum_d(z, red);
        for (int32_t i = threadIdx.x; i < Vp; i += S_THREADS)
            c[i] = i < V ? s_cand_t{exp((l[i] - mx) / temp) / z, i, 0}
                         : s_cand_t{-1.0, 0x7fffffff, 0};
        __syncthreads();
        /* bitonic sort into s_before order */
        for (int32_t k = 2; k <= Vp; k <<= 1)
            for (int32_t j = k >> 1; j > 0; j >>= 1) {
                for (int32_t i = threadIdx.x; i < Vp; i += S_THREADS) {
                    int32_t ixj = i ^ j;
                    if (ixj <= i) continue;
                    bool up = (i & k) == 0;
                    s_cand_t x = c[i], y = c[ixj];
                    if (up ? s_before(y, x) : s_before(x, y)) c[i] = y, c[ixj] = x;
                }
                __syncthreads();
            }
        if (threadIdx.x == 0) {
            int32_t keep = V;
            if (sp.top_k > 0 && sp.top_k < keep) keep = sp.top_k;
            if (sp.top_p > 0 && sp.top_p < 1) {
                double cum = 0;
                for (int32_t i = 0; i < keep; i++) {
                    cum += c[i].p;
                    if (cum >= sp.top_p) {
                        keep = i + 1;
                        break;
                    }
                }
            }
            if (sp.min_p > 0) {
                double thr = sp.min_p * c[0].p;
                while (keep > 1 && c[keep - 1].p < thr) keep--;
            }
            double mass = 0;
            for (int32_t i = 0; i < keep; i++) mass += c[i].p;
            double u = sp.u * mass, acc = 0;
            tok = c[keep - 1].id;
            for (int32_t i = 0; i < keep; i++) {
                acc += c[i].p;
                if (u < acc) {
                    tok = c[i].id;
                    break;
                }
            }
        }
    }
    if (threadIdx.x == 0) tokens[b] = tok;
    if (!logprobs) return;
    /* log-softmax of the raw logits at tok (every thread needs tok: go through shared) */
    __shared__ int32_t s_tok;
    if (threadIdx.x == 0) s_tok = tok;
    float fmx = -INFINITY;
    for (int32_t i = threadIdx.x; i < V; i += S_THREADS) fmx = fmaxf(fmx, row[i]);
    __syncthreads();
    double dm = fmx;
    int32_t dummy = 0;
    s_argmax_d(&dm, &dummy, red, redi);
    double zz = 0;
    for (int32_t i = threadIdx.x; i < V; i += S_THREADS) zz += exp((double)row[i] - dm);
    zz = s_sum_d(zz, red);
    if (threadIdx.x == 0) logprobs[b] = (float)((double)row[s_tok] - dm - log(zz));
}

int tr_cuda_sample(tr_ops_t *ops, int32_t *tokens, float *logprobs, const float *logits,
                   int32_t B, int32_t V, const tr_sample_params_t *params) {
    tr_cuda_t *self = TR_CUDA(ops);
    int64_t n_prev = 0;
    for (int32_t b = 0; b < B; b++) n_prev += params[b].n_prev;
    size_t args_bytes = (size_t)B * sizeof(s_row_t) + (size_t)n_prev * sizeof(int32_t) + 16;
    char *h = (char *)malloc(args_bytes);
    if (!h) return TR_ENOMEM;
    s_row_t *rows = (s_row_t *)h;
    int32_t *prev = (int32_t *)(h + (size_t)B * sizeof(s_row_t));
    int64_t off = 0;
    for (int32_t b = 0; b < B; b++) {
        const tr_sample_params_t *sp = &params[b];
        rows[b] = s_row_t{tr_sample_uniform(sp->seed, sp->counter), sp->temperature, sp->top_p,
                          sp->min_p, sp->repetition_penalty, sp->top_k, sp->n_prev,
                          (int32_t)off, 0};
        if (sp->n_prev) memcpy(prev + off, sp->prev_tokens, (size_t)sp->n_prev * sizeof(int32_t));
        off += sp->n_prev;
    }
    char *d = (char *)tr_cuda_scratch(self, TR_CUDA_SCRATCH_SAMPLE_ARGS, args_bytes);
    cudaError_t e = d ? cudaMemcpyAsync(d, h, args_bytes, cudaMemcpyHostToDevice, self->stream)
                      : cudaErrorMemoryAllocation;
    free(h);   /* pageable: staged before cudaMemcpyAsync returned */
    TR_CUDA_TRY(e);
    int32_t Vp = 1;
    while (Vp < V) Vp <<= 1;
    size_t per_row = (size_t)V * sizeof(double) + (size_t)Vp * sizeof(s_cand_t);
    int32_t chunk = (int32_t)((64u << 20) / per_row);
    chunk = chunk < 1 ? 1 : chunk > B ? B : chunk;
    char *scr = (char *)tr_cuda_scratch(self, TR_CUDA_SCRATCH_SAMPLE_SORT, per_row * chunk);
    if (!scr) return TR_ENOMEM;
    double *lw = (double *)scr;
    s_cand_t *cand = (s_cand_t *)(scr + (size_t)chunk * V * sizeof(double));
    for (int32_t r0 = 0; r0 < B; r0 += chunk) {
        int32_t n = B - r0 < chunk ? B - r0 : chunk;
        s_sample<<<n, S_THREADS, 0, self->stream>>>(tokens, logprobs, logits, r0, V, Vp,
                                                    (const s_row_t *)d,
                                                    (const int32_t *)(d + (size_t)B * sizeof(s_row_t)),
                                                    lw, cand);
        TR_CUDA_LAUNCHED();
    }
    return TR_OK;
}
