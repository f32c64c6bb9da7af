/*  kernels/cuda/attention.cu - causal paged attention with GQA for prefill and decode, one
 *  kernel: tiled, online softmax (flash-attention style), and split-K across KV blocks.
 *  Oracle: kernels/ref/attention.c (scores, softmax, weighted sum of V per query head).
 *
 *  Rows: the G = H / Hk query heads that share kv head g are stacked with the tokens, so row
 *  r of sequence b is token r / G, head g * G + r % G. One thread block takes S_BQ rows of
 *  one sequence for one kv head, and walks its keys in tiles of S_BK positions: K and V are
 *  loaded once from the paged cache into shared memory for all the heads of the group
 *  (decode with G = 4 fills 4 of the 16 rows with useful work instead of 1). Scores are
 *  s_ij = scale * q_i . k_j, masked causally (j <= position of row i) and by the sliding
 *  window (pos - j < window); each row keeps its running max m and sum l, and O is rescaled
 *  by exp(m_old - m_new) when the max grows. 128 threads: 8 per row.
 *
 *  Split-K ("multiblock"): grid.z = n_splits thread blocks share one work item's key range;
 *  each writes an unnormalised O with its (m, l) to scratch and s_combine merges them:
 *  m* = max m_s, l* = sum l_s e^(m_s - m*), out = sum O_s e^(m_s - m*) / l*. The split is
 *  chosen from the SM count and the longest context: enough blocks to fill the chip twice,
 *  no split shorter than 256 keys, at most 64 (tr_ops_cuda_set_attn_splits forces one).
 *
 *  The work list (b, first row) is built on the host from host_seq_start / host_seq_pos
 *  (or from a copy of the device arrays, which waits for the stream, when the caller gave
 *  none). With decode_ctx (one new token per sequence, positions < decode_ctx) there is no
 *  list: item x is sequence x / ceil(G / S_BQ), and the split count comes from decode_ctx,
 *  so the launch depends on (B, decode_ctx) only and can be recorded in a CUDA graph; a
 *  split whose share of a shorter context is empty leaves m = -inf, which s_combine skips.
 *  Block ids are device memory the wrappers cannot check: a key whose block id is outside
 *  [0, n_blocks) is masked out instead of read. head_dim <= 256.                    */
#include "kernels/cuda/cuda_impl.h"

#include <stdlib.h>
#include <string.h>

#define S_BQ 16          /* rows per block */
#define S_BK 32          /* keys per tile */
#define S_THREADS 128    /* 8 threads per row */
#define S_MAX_D 256
#define S_MIN_SPLIT_KEYS 256
#define S_MAX_SPLITS 64

typedef struct {
    int32_t b, row0;
} s_work_t;

typedef struct {
    float *out;
    const float *q, *k_cache, *v_cache;
    const int32_t *seq_start, *seq_pos, *block_table;
    const s_work_t *work;
    float *part_o;       /* (n_splits, T, H, D) when n_splits > 1 */
    float *part_ml;      /* (n_splits, T, H, 2) */
    int32_t T, H, Hk, D, bs, max_blocks, n_blocks, window, n_splits;
    float scale;
    int32_t items_per_seq;   /* work == NULL (decode_ctx): item x is (x / this, x % this) */
} s_args_t;

static size_t s_smem_bytes(int32_t D) {
    size_t floats = (size_t)S_BQ * (D + 1) + (size_t)S_BK * (D + 1) + (size_t)S_BK * D +
                    (size_t)S_BQ * S_BK + (size_t)S_BQ * D;
    return floats * sizeof(float) + S_BK * sizeof(int32_t);
}

__global__ void __launch_bounds__(S_THREADS) s_attn(const s_args_t a) {
    extern __shared__ float sm[];
    const int32_t D = a.D, DS = D + 1, G = a.H / a.Hk;
    float *Qs = sm, *Ks = Qs + S_BQ * DS, *Vs = Ks + S_BK * DS, *Ps = Vs + S_BK * D;
    float *Os = Ps + S_BQ * S_BK;
    int32_t *Kok = (int32_t *)(Os + S_BQ * D);
    const s_work_t w = a.work ? a.work[blockIdx.x]
                              : s_work_t{(int32_t)(blockIdx.x / a.items_per_seq),
                                         (int32_t)(blockIdx.x % a.items_per_seq) * S_BQ};
    const int32_t g = blockIdx.y, split = blockIdx.z, b = w.b;
    const int32_t tok0 = a.seq_start[b], n_new = a.seq_start[b + 1] - tok0, pos0 = a.seq_pos[b];
    const int32_t rows = n_new * G;
    const int32_t i = threadIdx.x / 8, sub = threadIdx.x % 8, r = w.row0 + i;
    const bool valid = r < rows;
    const int32_t p = pos0 + r / G;                           /* this row's position */
    const int32_t *table = a.block_table + (size_t)b * a.max_blocks;

    /* the keys this block's rows can see, and this split's share of them */
    const int32_t r_last = min(w.row0 + S_BQ, rows) - 1;
    const int32_t k_hi = pos0 + r_last / G;
    int32_t k_lo = a.window > 0 ? pos0 + w.row0 / G - a.window + 1 : 0;
    k_lo = max(k_lo, 0);
    int32_t per = (k_hi - k_lo + 1 + a.n_splits - 1) / a.n_splits;
    per = (per + S_BK - 1) / S_BK * S_BK;
    const int32_t s_lo = k_lo + split * per, s_hi = min(k_hi, s_lo + per - 1);

    for (int32_t e = threadIdx.x; e < S_BQ * D; e += S_THREADS) {
        int32_t ii = e / D, d = e % D, rr = w.row0 + ii;
        Qs[ii * DS + d] =
            rr < rows ? a.q[((size_t)(tok0 + rr / G) * a.H + g * G + rr % G) * D + d] : 0.0f;
        Os[e] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int32_t kt = s_lo; kt <= s_hi; kt += S_BK) {
        __syncthreads();   /* the previous tile is consumed */
        if (threadIdx.x < S_BK) {
            int32_t j = kt + threadIdx.x, blk = j <= s_hi ? table[j / a.bs] : -1;
            Kok[threadIdx.x] = blk >= 0 && blk < a.n_blocks ? blk * a.bs + j % a.bs : -1;
        }
        __syncthreads();
        for (int32_t e = threadIdx.x; e < S_BK * D; e += S_THREADS) {
            int32_t jj = e / D, d = e % D, slot = Kok[jj];
            size_t at = ((size_t)slot * a.Hk + g) * D + d;
            Ks[jj * DS + d] = slot >= 0 ? a.k_cache[at] : 0.0f;
            Vs[jj * D + d] = slot >= 0 ? a.v_cache[at] : 0.0f;
        }
        __syncthreads();
        /* scores of row i against keys sub, sub + 8, sub + 16, sub + 24 of the tile */
        float s[S_BK / 8], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < S_BK / 8; c++) {
            int32_t jj = sub + 8 * c, j = kt + jj;
            bool seen = valid && Kok[jj] >= 0 && j <= p && (a.window <= 0 || p - j < a.window);
            float acc = 0.0f;
            for (int32_t d = 0; seen && d < D; d++) acc += Qs[i * DS + d] * Ks[jj * DS + d];
            s[c] = seen ? acc * a.scale : -INFINITY;
            mx = fmaxf(mx, s[c]);
        }
        for (int o = 4; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o, 8));
        const float m_new = fmaxf(m, mx);
        const float corr = m == -INFINITY ? 0.0f : expf(m - m_new);
        float psum = 0.0f;
#pragma unroll
        for (int c = 0; c < S_BK / 8; c++) {
            float pv = s[c] == -INFINITY ? 0.0f : expf(s[c] - m_new);
            Ps[i * S_BK + sub + 8 * c] = pv;
            psum += pv;
        }
        for (int o = 4; o > 0; o >>= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o, 8);
        l = l * corr + psum;
        m = m_new;
        __syncwarp();      /* the 8 threads of a row are in one warp */
        for (int32_t d = sub; d < D; d += 8) {
            float acc = Os[i * D + d] * corr;
            for (int32_t jj = 0; jj < S_BK; jj++) acc += Ps[i * S_BK + jj] * Vs[jj * D + d];
            Os[i * D + d] = acc;
        }
    }
    if (!valid) return;
    const size_t th = (size_t)(tok0 + r / G) * a.H + g * G + r % G;   /* (token, head) */
    if (a.n_splits == 1) {
        float inv = l > 0.0f ? 1.0f / l : 0.0f;
        for (int32_t d = sub; d < D; d += 8) a.out[th * D + d] = Os[i * D + d] * inv;
        return;
    }
    const size_t base = (size_t)split * a.T * a.H;
    for (int32_t d = sub; d < D; d += 8) a.part_o[(base + th) * D + d] = Os[i * D + d];
    if (sub == 0) {
        a.part_ml[(base + th) * 2] = m;
        a.part_ml[(base + th) * 2 + 1] = l;
    }
}

/* one block per (token, head): merge the n_splits partial results */
__global__ void s_combine(float *out, const float *part_o, const float *part_ml, int32_t TH,
                          int32_t D, int32_t n_splits) {
    const size_t th = blockIdx.x;
    float mx = -INFINITY;
    for (int32_t s = 0; s < n_splits; s++) mx = fmaxf(mx, part_ml[((size_t)s * TH + th) * 2]);
    float lsum = 0.0f;
    for (int32_t s = 0; s < n_splits; s++) {
        float ms = part_ml[((size_t)s * TH + th) * 2];
        if (ms != -INFINITY) lsum += part_ml[((size_t)s * TH + th) * 2 + 1] * expf(ms - mx);
    }
    float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
    for (int32_t d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int32_t s = 0; s < n_splits; s++) {
            float ms = part_ml[((size_t)s * TH + th) * 2];
            if (ms != -INFINITY) acc += part_o[((size_t)s * TH + th) * D + d] * expf(ms - mx);
        }
        out[th * D + d] = acc * inv;
    }
}

int tr_cuda_attention_init(tr_cuda_t *self) {
    size_t want = s_smem_bytes(S_MAX_D);
    if (want > self->smem_optin) want = self->smem_optin;
    TR_CUDA_TRY(cudaFuncSetAttribute(s_attn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)want));
    return TR_OK;
}

/* How many blocks share each work item's keys. */
static int32_t s_choose_splits(const tr_cuda_t *self, int32_t n_items, int32_t Hk,
                               int32_t max_ctx) {
    if (self->attn_splits > 0) return self->attn_splits < S_MAX_SPLITS ? self->attn_splits
                                                                       : S_MAX_SPLITS;
    int64_t blocks = (int64_t)n_items * Hk, target = 2 * (int64_t)self->n_sm;
    if (blocks >= target) return 1;
    int64_t by_sm = (target + blocks - 1) / blocks;
    int64_t by_ctx = (max_ctx + S_MIN_SPLIT_KEYS - 1) / S_MIN_SPLIT_KEYS;
    int64_t n = by_sm < by_ctx ? by_sm : by_ctx;
    return (int32_t)(n < 1 ? 1 : n > S_MAX_SPLITS ? S_MAX_SPLITS : n);
}

/* Launches s_attn (and s_combine) for a filled-in a with n_items work items. */
static int s_launch(tr_cuda_t *self, s_args_t *a, int64_t n_items) {
    const size_t th = (size_t)a->T * a->H;
    if (a->n_splits > 1) {
        float *part = (float *)tr_cuda_scratch(self, TR_CUDA_SCRATCH_ATTN_PART,
                                               (size_t)a->n_splits * th * (a->D + 2) *
                                                   sizeof(float));
        if (!part) return TR_ENOMEM;
        a->part_o = part;
        a->part_ml = part + (size_t)a->n_splits * th * a->D;
    }
    dim3 grid((unsigned)n_items, (unsigned)a->Hk, (unsigned)a->n_splits);
    s_attn<<<grid, S_THREADS, s_smem_bytes(a->D), self->stream>>>(*a);
    TR_CUDA_LAUNCHED();
    if (a->n_splits > 1) {
        s_combine<<<(unsigned)th, 128, 0, self->stream>>>(a->out, a->part_o, a->part_ml,
                                                          (int32_t)th, a->D, a->n_splits);
        TR_CUDA_LAUNCHED();
    }
    return TR_OK;
}

/* Decode with decode_ctx: nothing read from the host, launch fixed by (B, decode_ctx). */
static int s_attention_decode(tr_cuda_t *self, const tr_attn_params_t *p) {
    const int32_t B = p->n_seqs, G = p->n_heads / p->n_kv_heads;
    const int32_t per_seq = (G + S_BQ - 1) / S_BQ;
    const int64_t n_items = (int64_t)B * per_seq;
    if (n_items > 0x7fffffff) return TR_EINVAL;
    s_args_t a = {p->out, p->q, p->k_cache, p->v_cache, p->seq_start, p->seq_pos,
                  p->block_table, NULL, NULL, NULL, B, p->n_heads, p->n_kv_heads,
                  p->head_dim, p->block_size, p->max_blocks, p->n_blocks,
                  p->sliding_window, 1, p->scale, per_seq};
    a.n_splits = s_choose_splits(self, (int32_t)n_items, p->n_kv_heads, p->decode_ctx);
    return s_launch(self, &a, n_items);
}

int tr_cuda_attention(tr_ops_t *ops, const tr_attn_params_t *p) {
    tr_cuda_t *self = TR_CUDA(ops);
    const int32_t B = p->n_seqs, H = p->n_heads, Hk = p->n_kv_heads, G = H / Hk;
    const int32_t D = p->head_dim;
    if (D > S_MAX_D || s_smem_bytes(D) > self->smem_optin) {
        TR_ERROR("cuda attention: head_dim %d is above the supported %d", D, S_MAX_D);
        return TR_EINVAL;
    }
    if (p->decode_ctx > 0) return s_attention_decode(self, p);
    int32_t *h = (int32_t *)malloc(((size_t)2 * B + 1) * sizeof(int32_t));
    if (!h) return TR_ENOMEM;
    int32_t *start = h, *pos = h + B + 1;
    int rc = TR_OK;
    if (p->host_seq_start && p->host_seq_pos) {
        memcpy(start, p->host_seq_start, ((size_t)B + 1) * sizeof(int32_t));
        memcpy(pos, p->host_seq_pos, (size_t)B * sizeof(int32_t));
    } else {
        rc = ops->vt->to_host(ops, start, p->seq_start, ((size_t)B + 1) * sizeof(int32_t));
        if (!rc) rc = ops->vt->to_host(ops, pos, p->seq_pos, (size_t)B * sizeof(int32_t));
    }
    int64_t n_items = 0;
    int32_t max_ctx = 1;
    for (int32_t b = 0; !rc && b < B; b++) {
        int32_t n = start[b + 1] - start[b];
        if (n < 0 || pos[b] < 0) rc = TR_EINVAL;
        else n_items += ((int64_t)n * G + S_BQ - 1) / S_BQ;
        if (!rc && pos[b] + n > max_ctx) max_ctx = pos[b] + n;
    }
    const int32_t T = start[B];
    s_work_t *work = NULL;
    if (!rc && n_items > 0) {
        work = (s_work_t *)malloc((size_t)n_items * sizeof(s_work_t));
        if (!work) rc = TR_ENOMEM;
        for (int32_t b = 0, at = 0; work && b < B; b++)
            for (int32_t r0 = 0; r0 < (start[b + 1] - start[b]) * G; r0 += S_BQ)
                work[at++] = (s_work_t){b, r0};
    }
    free(h);
    if (rc || n_items == 0) {
        free(work);
        return rc;
    }
    if (n_items > 0x7fffffff) {
        free(work);
        return TR_EINVAL;
    }
    s_args_t a = {p->out, p->q, p->k_cache, p->v_cache, p->seq_start, p->seq_pos,
                  p->block_table, NULL, NULL, NULL, T, H, Hk, D, p->block_size,
                  p->max_blocks, p->n_blocks, p->sliding_window, 1, p->scale, 1};
    a.n_splits = s_choose_splits(self, (int32_t)n_items, Hk, max_ctx);
    /* the work list goes up from pageable memory: staged before the call returns */
    a.work = (const s_work_t *)tr_cuda_scratch(self, TR_CUDA_SCRATCH_ATTN_WORK,
                                               (size_t)n_items * sizeof(s_work_t));
    cudaError_t e = a.work ? cudaMemcpyAsync((void *)a.work, work, (size_t)n_items * sizeof(s_work_t),
                                             cudaMemcpyHostToDevice, self->stream)
                           : cudaErrorMemoryAllocation;
    free(work);
    TR_CUDA_TRY(e);
    return s_launch(self, &a, n_items);
}
