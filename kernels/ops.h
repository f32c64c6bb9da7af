/*  kernels/ops.h - the operations interface: every numerical kernel a model step needs.
 *
 *  A tr_ops_t is one backend instance: the naive reference (tr_ops_ref, the oracle every
 *  other backend is tested against), the CPU backend (tr_ops_cpu: a persistent thread pool
 *  owned by the instance, SIMD chosen at run time) and later CUDA (tr_ops_cuda). Callers
 *  write one code path and never #ifdef: pointers passed to the ops are "device" pointers
 *  of that backend, obtained from tr_ops_alloc() (plain host memory for ref and cpu), and
 *  weights are made usable with tr_ops_upload_weights() (zero-copy on the CPU).
 *
 *  Threading: one instance is used by one thread at a time (an executor owns its ops); the
 *  CPU backend's pool threads are internal. Every op returns TR_OK or a negative
 *  tr_status_t (TR_EINVAL for bad arguments, checked before the backend is entered).
 *
 *  Shapes (row-major, innermost last):
 *      T = tokens, B = sequences, H = query heads, Hk = kv heads, D = head_dim,
 *      M/N/K = matmul rows / output features / input features, V = vocab, E = experts.
 *
 *      tr_ops_t *ops = tr_ops_cpu();
 *      tr_matmul_params_t mm = { .y = y, .x = x, .w = w, .w_dtype = TR_DTYPE_BF16,
 *                                .M = T, .N = 4096, .K = 4096 };
 *      int rc = tr_ops_matmul(ops, &mm);             // y = x W^T
 *      tr_ops_destroy(&ops);                                                          */
#ifndef TR_OPS_H
#define TR_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dtype.h"
#include "runtime/status.h"

typedef struct tr_ops tr_ops_t;

/* ---- backends ---- */

/* SIMD level of the CPU backend; AUTO picks the best the machine supports. */
typedef enum {
    TR_SIMD_AUTO = 0,
    TR_SIMD_SCALAR = 1,
    TR_SIMD_AVX2 = 2,     /* AVX2 + FMA + F16C */
    TR_SIMD_AVX512 = 3,   /* AVX-512 F/BW/DQ/VL (+ BF16 conversions where present) */
} tr_simd_t;

typedef struct {
    int32_t n_threads;    /* 0: TROUPE_THREADS from the environment, else every online core */
    tr_simd_t simd;       /* TR_SIMD_AUTO, or a level to force (tests); must be supported */
} tr_ops_cpu_opts_t;

/* New CPU backend with default options. Caller owns it: tr_ops_destroy(). NULL on failure. */
tr_ops_t *tr_ops_cpu(void);
/* New CPU backend; NULL when the options are invalid or the SIMD level is unsupported. */
tr_ops_t *tr_ops_cpu_new(const tr_ops_cpu_opts_t *opts);
/* New reference backend: naive, single-threaded, f32 accumulation. Caller owns it. */
tr_ops_t *tr_ops_ref(void);
/* New CUDA backend on a device; NULL when CUDA is not built in or the device is absent. */
tr_ops_t *tr_ops_cuda(int device);
/* Whether tr_ops_cuda(device) can work, without creating a backend: TR_OK, or TR_ENOTSUP
 * with a one-line reason in why ("no usable GPU (CUDA driver version is insufficient ...)",
 * "no usable GPU: this build has no CUDA backend (scons cuda=0)"). why may be NULL. */
int tr_ops_cuda_probe(int device, char *why, size_t why_size);
/* Frees the instance and its threads; NULL-safe; sets *self_p to NULL. */
void tr_ops_destroy(tr_ops_t **self_p);

/* "ref", "cpu-avx512", ...; never NULL. */
const char *tr_ops_name(const tr_ops_t *ops);
/* Whether the CPU supports a SIMD level (TR_SIMD_AUTO and SCALAR: always). */
int tr_simd_supported(tr_simd_t level);
/* Name of a SIMD level ("avx2"). */
const char *tr_simd_name(tr_simd_t level);
/* Worker threads used by the backend (1 for ref); set_threads resizes the pool. */
int32_t tr_ops_threads(const tr_ops_t *ops);
int tr_ops_set_threads(tr_ops_t *ops, int32_t n_threads);
/* Says that no op will come for a while (the executor between steps): the CPU backend's
 * workers stop spinning for the next op and sleep, leaving the cores to other threads.
 * Only a hint: the next op works either way. */
void tr_ops_idle(tr_ops_t *ops);

/* ---- memory ---- */

/* Backend memory of `bytes` (64-byte aligned); NULL on failure. Free with tr_ops_free. */
void *tr_ops_alloc(tr_ops_t *ops, size_t bytes);
void tr_ops_free(tr_ops_t *ops, void *p);
/* Copies between host and backend memory (plain memcpy on ref and cpu). */
int tr_ops_to_device(tr_ops_t *ops, void *dst, const void *src, size_t bytes);
int tr_ops_to_host(tr_ops_t *ops, void *dst, const void *src, size_t bytes);
int tr_ops_memset(tr_ops_t *ops, void *dst, int value, size_t bytes);
/* Nonzero when backend memory is not host-readable (CUDA): host data must be copied in and
 * out, and argument checks cannot read device arrays. 0 for ref and cpu. */
int tr_ops_device_memory(const tr_ops_t *ops);
/* Free and total bytes of the memory the backend allocates from: the device's
 * (cudaMemGetInfo) on CUDA, available and total physical RAM on host backends. */
int tr_ops_memory_info(tr_ops_t *ops, size_t *free_bytes, size_t *total_bytes);
/* Host memory the backend copies to and from without staging (page-locked, cudaHostAlloc,
 * on CUDA; 64-byte aligned malloc elsewhere); NULL on failure. Free with tr_ops_host_free
 * (NULL-safe), after tr_ops_sync when copies from it may still be running. */
void *tr_ops_host_alloc(tr_ops_t *ops, size_t bytes);
void tr_ops_host_free(tr_ops_t *ops, void *p);
/* Copies enqueued in order with the backend's ops, returning before they are done: src of
 * to_device_async must stay unchanged, and dst of to_host_async unread, until tr_ops_sync.
 * Pass tr_ops_host_alloc memory (pageable memory makes CUDA stage it and wait). Host
 * backends copy at once. copy is backend to backend memory. */
int tr_ops_to_device_async(tr_ops_t *ops, void *dst, const void *src, size_t bytes);
int tr_ops_to_host_async(tr_ops_t *ops, void *dst, const void *src, size_t bytes);
int tr_ops_copy(tr_ops_t *ops, void *dst, const void *src, size_t bytes);
/* Waits for everything enqueued on the backend (a no-op on host backends). */
int tr_ops_sync(tr_ops_t *ops);
/* Makes host weights (e.g. an mmap) usable by the backend: *out is the pointer to pass to
 * the ops. CPU and ref return the same pointer (zero-copy) and release_weights is a no-op.
 * Does not take ownership of `host`. */
int tr_ops_upload_weights(tr_ops_t *ops, const void *host, size_t bytes, void **out);
void tr_ops_release_weights(tr_ops_t *ops, void *dev);
/* Offers a weight matrix W (rows, cols) in dtype, already usable by the backend (from
 * upload_weights), for a load-time repack into a layout of the backend's own that its
 * matmul reads faster. *out is the packed copy to pass as tr_matmul_params_t.w_packed
 * beside w (the caller owns it: tr_ops_free), or NULL when the backend has none for this
 * dtype (ref: never; CPU: q8_0, used by the GEMV). Does not take ownership of `w`, which
 * stays needed: the other paths (GEMM, embed) still read it. */
int tr_ops_pack_weights(tr_ops_t *ops, const void *w, tr_dtype_t dtype, int32_t rows,
                        int32_t cols, void **out);

/* ---- matmul: y (M, N) = x (M, K) . W (N, K)^T [+ bias] [+ y] ---- */

typedef struct {
    float *y;               /* (M, N) out */
    const float *x;         /* (M, K) */
    const void *w;          /* (N, K) row-major in w_dtype: one output feature per row */
    tr_dtype_t w_dtype;     /* K must be a multiple of the dtype's block (32 for q8_0) */
    const float *bias;      /* (N) or NULL */
    int32_t M, N, K;
    int32_t accumulate;     /* nonzero: y += result (fused residual add) */
    const void *w_packed;   /* NULL, or tr_ops_pack_weights() of w by this backend: read
                               instead of w where the backend prefers it */
} tr_matmul_params_t;

int tr_ops_matmul(tr_ops_t *ops, const tr_matmul_params_t *p);
/* n independent matmuls as one operation (no output may alias another's input): q, k and v,
 * or gate and up, of a decode step cost the CPU backend one wake-up of its pool, not three.
 * Backends without a batched form run them in order. */
int tr_ops_matmul_batch(tr_ops_t *ops, const tr_matmul_params_t *p, int32_t n);

/* ---- normalisation, activations, elementwise ---- */

/* y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, for T rows of D. y may equal x. */
int tr_ops_rmsnorm(tr_ops_t *ops, float *y, const float *x, const float *w, int32_t T,
                   int32_t D, float eps);
/* y = silu(gate) * up, n values (SwiGLU). y may alias gate or up. */
int tr_ops_swiglu(tr_ops_t *ops, float *y, const float *gate, const float *up, int64_t n);
/* In-place softmax of each of `rows` rows of n values. */
int tr_ops_softmax(tr_ops_t *ops, float *x, int32_t rows, int32_t n);
/* In-place logistic sigmoid of n values. */
int tr_ops_sigmoid(tr_ops_t *ops, float *x, int64_t n);
/* y[idx ? idx[i] : i] += (scale ? scale[i] : 1) * x[i] for rows i < rows of D values.
 * Residual adds (idx, scale NULL) and MoE combine (scatter with routing weights). Rows of
 * idx must be distinct. */
int tr_ops_add_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                    const float *scale, int32_t rows, int32_t D);
/* y[i] = x[idx[i]] for rows i < rows of D values (gather). */
int tr_ops_gather_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                       int32_t rows, int32_t D);
/* y[t] = table[ids[t]] as f32, T rows of D; table is (V, D) in dtype. ids must be < V. */
int tr_ops_embed(tr_ops_t *ops, float *y, const void *table, tr_dtype_t dtype,
                 const int32_t *ids, int32_t T, int32_t D, int32_t V);

/* ---- rotary position embedding ---- */

typedef enum {
    TR_ROPE_NEOX = 0,         /* rotate-half: pairs (i, i + R/2) (HF Llama, Qwen2, GPT-NeoX) */
    TR_ROPE_INTERLEAVED = 1,  /* pairs (2i, 2i + 1) (GPT-J, llama2.c, llama.cpp's permuted Q/K) */
} tr_rope_layout_t;

typedef enum {
    TR_ROPE_SCALING_NONE = 0,
    TR_ROPE_SCALING_LINEAR = 1,   /* positions divided by factor */
    TR_ROPE_SCALING_LLAMA3 = 2,   /* Llama 3.1 per-frequency scaling */
} tr_rope_scaling_t;

typedef struct {
    float theta;                  /* base, e.g. 10000 or 500000 */
    int32_t rot_dim;              /* rotated dims per head; 0: all of head_dim */
    tr_rope_layout_t layout;
    tr_rope_scaling_t scaling;
    float factor;                 /* linear / llama3 */
    float low_freq_factor;        /* llama3 */
    float high_freq_factor;       /* llama3 */
    int32_t original_max_pos;     /* llama3: original_max_position_embeddings */
    const float *freq_factors;    /* borrowed, host, (rot_dim / 2) or NULL: inv_freq[i] is
                                     divided by it (llama.cpp's rope_freqs tensor) */
} tr_rope_t;

/* Inverse frequencies of a rope config: inv_freq[i] for i < rot_dim/2 (f32, as HF), after
 * scaling and freq_factors. Every backend derives its angles from these. */
void tr_rope_inv_freq(const tr_rope_t *rope, int32_t head_dim, float *inv_freq);

/* Rotates q (T, Hq, D) and k (T, Hk, D) in place at positions pos (T). k may be NULL. */
int tr_ops_rope(tr_ops_t *ops, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                int32_t Hk, const int32_t *pos, int32_t T, int32_t D);

/* ---- paged KV cache and attention ---- */

/* One layer of the paged KV pool is (n_blocks, block_size, Hk, D) f32 for K and for V; a
 * token's slot is block * block_size + offset. Writes k, v (T, Hk, D) to slots (T). */
int tr_ops_kv_store(tr_ops_t *ops, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D);

/* Causal attention of a batch of sequences over the paged cache (prefill, chunked prefill
 * and decode are the same call). Sequence b owns new tokens [seq_start[b], seq_start[b+1])
 * at positions seq_pos[b], seq_pos[b]+1, ...; its K/V for positions 0 .. last are already
 * in the cache (tr_ops_kv_store first), reached through block_table[b * max_blocks + j]
 * for position p in block j = p / block_size. Query head h reads kv head h / (H / Hk). */
typedef struct {
    float *out;                   /* (T, H, D) */
    const float *q;               /* (T, H, D), rotated */
    const float *k_cache;         /* (n_blocks, block_size, Hk, D) this layer */
    const float *v_cache;         /* (n_blocks, block_size, Hk, D) this layer */
    const int32_t *seq_start;     /* (B + 1) token offsets, seq_start[0] = 0, [B] = T */
    const int32_t *seq_pos;       /* (B) position of each sequence's first new token */
    const int32_t *block_table;   /* (B, max_blocks) physical block ids */
    int32_t n_seqs, max_blocks, n_blocks;
    int32_t n_heads, n_kv_heads, head_dim, block_size;
    int32_t sliding_window;       /* 0: none; else key p' is seen from p when p - p' < window */
    float scale;                  /* score scale, usually 1/sqrt(D) */
    const int32_t *host_seq_start;  /* optional host copies of seq_start (B + 1) and seq_pos */
    const int32_t *host_seq_pos;    /* (B): a device backend sizes its launch from them (CUDA
                                       copies the device arrays back, a sync, when NULL) */
    int32_t decode_ctx;           /* 0, or a promise for graph capture: every sequence has
                                     exactly one new token (seq_start[b] = b) at a position
                                     < decode_ctx. A device backend then sizes the launch
                                     from n_seqs and decode_ctx alone and reads positions
                                     only on the device, so the call can be recorded in a
                                     graph (ops without graphs ignore it) */
} tr_attn_params_t;

int tr_ops_attention(tr_ops_t *ops, const tr_attn_params_t *p);

/* ---- mixture of experts ---- */

/* Router: for each of T tokens, softmax over E logits, keep the top k (ties: lower expert id
 * first), optionally renormalise the k weights to sum to 1. Writes ids (T, k), weights (T, k)
 * in descending weight order. */
int tr_ops_moe_route(tr_ops_t *ops, int32_t *ids, float *weights, const float *logits,
                     int32_t T, int32_t E, int32_t k, int32_t renormalize);

/* ---- sampling ---- */

/* Per-sequence sampling parameters. Randomness is counter-based: the uniform draw for a step
 * is a pure function of (seed, counter), so a sequence samples the same tokens whatever else
 * is in its batch; the caller advances counter (e.g. to the number of generated tokens). */
typedef struct {
    float temperature;            /* <= 0: greedy (argmax, lowest id on ties) */
    int32_t top_k;                /* <= 0: off */
    float top_p;                  /* >= 1 or <= 0: off */
    float min_p;                  /* <= 0: off; keeps p >= min_p * p_max */
    float repetition_penalty;     /* 1 or <= 0: off (CTRL/HF: logit > 0 ? l / r : l * r) */
    const int32_t *prev_tokens;   /* borrowed: tokens to penalise (prompt + generated) */
    int32_t n_prev;
    uint64_t seed;
    uint64_t counter;
} tr_sample_params_t;

/* One uniform draw in [0, 1) from (seed, counter) (splitmix64); shared by every backend. */
double tr_sample_uniform(uint64_t seed, uint64_t counter);

/* Samples one token for each of B rows of V logits. logits, tokens (B) and logprobs (B, may
 * be NULL) are backend memory; params (B) and their prev_tokens are host memory. logprobs
 * receives the log-softmax of the raw logits at the chosen token. Order: repetition penalty, temperature, top-k,
 * top-p, min-p, then a draw over the renormalised survivors. */
int tr_ops_sample(tr_ops_t *ops, int32_t *tokens, float *logprobs, const float *logits,
                  int32_t B, int32_t V, const tr_sample_params_t *params);

/* ---- graphs: record a fixed sequence of ops once, replay it many times ----
 *
 * Between graph_begin and graph_end the backend records the ops instead of running them; a
 * launch replays the same kernels on the same pointers, reading whatever those buffers hold
 * then (CUDA graphs: one launch instead of hundreds). So every input of a recorded op must
 * already sit in backend memory (no host arrays; attention needs decode_ctx), and nothing
 * recorded may allocate, copy from the host or wait. Backends without graphs (ref, cpu)
 * answer TR_ENOTSUP to graph_begin; a failed op or recording leaves no graph behind. */
typedef struct tr_ops_graph tr_ops_graph_t;

/* Whether the backend records graphs (nonzero: CUDA). */
int tr_ops_graphs_supported(const tr_ops_t *ops);
int tr_ops_graph_begin(tr_ops_t *ops);
/* Ends the recording; *out is the graph (caller owns it: tr_ops_graph_destroy), or NULL
 * when out is NULL (discard) or on failure: the recording is dropped, the error logged, and
 * the backend runs ops normally again. */
int tr_ops_graph_end(tr_ops_t *ops, tr_ops_graph_t **out);
/* Replays a graph in order with the backend's other ops. TR_AGAIN when backend scratch the
 * graph reads has been reallocated since it was recorded: destroy it and record again. */
int tr_ops_graph_launch(tr_ops_t *ops, tr_ops_graph_t *g);
/* NULL-safe; sets *g_p to NULL. */
void tr_ops_graph_destroy(tr_ops_t *ops, tr_ops_graph_t **g_p);

/* ---- quantize / dequantize ---- */

/* dst (n values in dtype) = src (n f32); n a multiple of the dtype's block. */
int tr_ops_quantize(tr_ops_t *ops, void *dst, tr_dtype_t dtype, const float *src, int64_t n);
/* dst (n f32) = src (n values in dtype). */
int tr_ops_dequantize(tr_ops_t *ops, float *dst, const void *src, tr_dtype_t dtype, int64_t n);

#endif
