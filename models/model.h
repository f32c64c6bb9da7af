/*  models/model.h - decoder-only transformers over a paged KV cache.
 *
 *  One implementation, parameterised by tr_model_config_t, covers Llama 2/3 (GQA, Llama-3
 *  rope scaling, tied or untied embeddings), Mistral (sliding window), Qwen2 (qkv bias),
 *  SmolLM, Mixtral (softmax top-k routing) and Qwen2-MoE / OLMoE (norm_topk_prob or not,
 *  shared expert with a sigmoid gate, q/k norms). Weights come from a llama2.c .bin, an HF
 *  directory (config.json + safetensors) or a GGUF file, mmap'd and used in place when the
 *  backend allows (f32, bf16, f16, q8_0 matrices; norms and biases are widened to f32).
 *
 *  A forward step takes a batch of sequences: their new tokens concatenated, each one's start
 *  position (tokens already in its cache) and block table into a physical paged KV pool
 *  (tr_kv_cache_t, owned by the caller: the executor), and which sequences want logits (of
 *  their last token). Prefill, chunked prefill, decode and any mix of them are the same call.
 *
 *  Ownership: tr_model_t owns its weights' mappings and scratch; the ops backend is borrowed
 *  and must outlive it. Threads: one thread drives a model at a time (the ops backend runs its
 *  own pool). Errors: loaders return TR_ENOENT (missing file or tensor), TR_EPROTO (bad magic,
 *  truncated or inconsistent file), TR_EINVAL (unsupported architecture, dtype or shape)
 *  with a one-line message in err.
 *
 *      tr_ops_t *ops = tr_ops_cpu();
 *      tr_model_t *m;
 *      char err[256];
 *      if (tr_model_load(&m, "tests/data/models/stories260K.bin", ops, NULL, err, sizeof err))
 *          fprintf(stderr, "%s\n", err);
 *      tr_kv_cache_t kv;
 *      tr_kv_cache_init(&kv, ops, tr_model_config(m), 64, 16);    // 64 blocks of 16 tokens
 *      int32_t tok = 1, n = 1, pos = 0, table[4] = {0, 1, 2, 3};
 *      tr_batch_t b = {.n_seqs = 1, .n_tokens = &n, .tokens = &tok, .start_pos = &pos,
 *                      .block_tables = table, .max_blocks = 4};
 *      float logits[512];
 *      tr_model_forward(m, &kv, &b, logits);
 *      tr_kv_cache_fini(&kv, ops);
 *      tr_model_destroy(&m);                                                          */
#ifndef TR_MODEL_H
#define TR_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"

typedef enum {
    TR_ARCH_LLAMA = 0,     /* Llama 2/3, SmolLM, TinyLlama, llama2.c */
    TR_ARCH_MISTRAL = 1,   /* Llama + sliding window */
    TR_ARCH_QWEN2 = 2,     /* Llama + q/k/v bias */
    TR_ARCH_MIXTRAL = 3,   /* Llama + MoE (renormalised top-k) */
    TR_ARCH_QWEN2_MOE = 4, /* Qwen2 + MoE (+ gated shared expert) */
    TR_ARCH_OLMOE = 5,     /* Llama + MoE + q/k RMSNorm */
    TR_ARCH_COUNT
} tr_arch_t;

/* "llama", "mistral", "qwen2", "mixtral", "qwen2_moe", "olmoe"; "?" otherwise. */
const char *tr_arch_name(tr_arch_t arch);

/* Everything the forward pass needs to know about a model's shape. Plain data. */
typedef struct {
    tr_arch_t arch;
    int32_t dim;               /* hidden size */
    int32_t hidden_dim;        /* dense MLP intermediate size */
    int32_t n_layers;
    int32_t n_heads;           /* query heads */
    int32_t n_kv_heads;        /* key/value heads (GQA: divides n_heads) */
    int32_t head_dim;
    int32_t vocab_size;
    int32_t max_seq_len;       /* positions the model was trained for (informational) */
    float norm_eps;            /* RMSNorm epsilon */
    tr_rope_t rope;            /* freq_factors, if any, point into the model */
    int32_t sliding_window;    /* 0: full causal attention */
    bool tie_embeddings;       /* lm_head is the embedding table */
    bool qkv_bias;             /* q, k, v projections have biases (Qwen2, Llama attention_bias) */
    bool o_bias;               /* output projection has a bias (Llama attention_bias) */
    bool qk_norm;              /* RMSNorm over the q and k projections (OLMoE) */
    /* mixture of experts (n_experts == 0: dense) */
    int32_t n_experts;
    int32_t n_experts_used;    /* top-k */
    int32_t moe_hidden_dim;    /* each expert's intermediate size */
    bool norm_topk_prob;       /* renormalise the k routing weights to sum to 1 */
    int32_t shared_hidden_dim; /* shared expert's intermediate size; 0: none */
    bool shared_expert_gate;   /* shared expert output scaled by sigmoid(x . w_gate) */
    int32_t moe_layer_step;    /* layer l is MoE when (l + 1) % step == 0 (Qwen2-MoE); 1: all */
    uint64_t dense_layers;     /* bit l: layer l uses the dense MLP anyway (mlp_only_layers) */
    /* tokens */
    int32_t bos_id, eos_id;    /* -1 when unknown */
} tr_model_config_t;

/* Whether layer l of a config uses the MoE block. */
bool tr_model_layer_is_moe(const tr_model_config_t *cfg, int32_t l);

/* Tensor-parallel shard of a load: rank r of world w will hold 1/w of the heads and MLP
 * columns. Only world <= 1 is implemented (TR_EINVAL otherwise); the descriptor is part of
 * the load call now so that the executor's interface does not change when it is. */
typedef struct {
    int32_t rank, world;
} tr_shard_t;

typedef struct {
    tr_shard_t shard;          /* {0, 0} or {0, 1}: the whole model */
    int32_t progress;          /* weights copied to a device backend: 0 reports progress when
                                  they are >= 64 MiB, 1 always, -1 never (stderr line on a
                                  terminal, else INFO lines with MiB and MiB/s) */
} tr_model_load_opts_t;

typedef struct tr_model tr_model_t;

/* Loads a model: a directory is an HF checkpoint (config.json + model.safetensors or
 * model.safetensors.index.json), a file starting with "GGUF" a GGUF v2/v3 file, anything
 * else a llama2.c checkpoint (legacy v0 or version 1). ops is borrowed. opts may be NULL.
 * On failure *out is NULL and err (may be NULL) holds a one-line reason. */
int tr_model_load(tr_model_t **out, const char *path, tr_ops_t *ops,
                  const tr_model_load_opts_t *opts, char *err, size_t err_size);
/* The same, for a known format. */
int tr_model_load_hf(tr_model_t **out, const char *dir, tr_ops_t *ops,
                     const tr_model_load_opts_t *opts, char *err, size_t err_size);
int tr_model_load_gguf(tr_model_t **out, const char *path, tr_ops_t *ops,
                       const tr_model_load_opts_t *opts, char *err, size_t err_size);
int tr_model_load_llama2c(tr_model_t **out, const char *path, tr_ops_t *ops,
                          const tr_model_load_opts_t *opts, char *err, size_t err_size);

/* Frees the model, its scratch and mappings; NULL-safe; sets *self_p to NULL. */
void tr_model_destroy(tr_model_t **self_p);

/* The model's configuration (valid as long as the model). */
const tr_model_config_t *tr_model_config(const tr_model_t *m);
/* The dtype its matrices were loaded in (of the q projection of layer 0). */
tr_dtype_t tr_model_weight_dtype(const tr_model_t *m);
/* Bytes of weights a decode step reads (every matrix once, plus one embedding row). */
size_t tr_model_weight_bytes(const tr_model_t *m);
/* Parameters in the matrices and norms (embedding counted once when tied). */
int64_t tr_model_n_params(const tr_model_t *m);

/* ---- paged KV cache ---- */

/* K and V of every layer: (n_layers, n_blocks, block_size, n_kv_heads, head_dim) f32 each,
 * backend memory. Owned by whoever called tr_kv_cache_init (the executor); any sequence's
 * block table may name any block. */
typedef struct {
    float *k;
    float *v;
    int32_t n_layers, n_blocks, block_size, n_kv_heads, head_dim;
    int32_t pad_block;         /* -1 (init), or a block the owner gives to no sequence: where
                                  the padding of decode graphs writes (tr_model_enable_graphs) */
} tr_kv_cache_t;

/* Bytes that tr_kv_cache_init allocates for a config. */
size_t tr_kv_cache_bytes(const tr_model_config_t *cfg, int32_t n_blocks, int32_t block_size);
/* Allocates (zeroed) in caller storage; TR_ENOMEM / TR_EINVAL. Free with tr_kv_cache_fini. */
int tr_kv_cache_init(tr_kv_cache_t *kv, tr_ops_t *ops, const tr_model_config_t *cfg,
                     int32_t n_blocks, int32_t block_size);
void tr_kv_cache_fini(tr_kv_cache_t *kv, tr_ops_t *ops);

/* ---- forward ---- */

/* A batch: B sequences, each contributing n_tokens[b] >= 0 new tokens (prompt chunk or one
 * decode token) at positions start_pos[b] .. start_pos[b] + n_tokens[b] - 1. Arrays are host
 * memory and borrowed for the call. */
typedef struct {
    int32_t n_seqs;                /* B */
    const int32_t *n_tokens;       /* (B) */
    const int32_t *tokens;         /* (sum of n_tokens) concatenated in sequence order */
    const int32_t *start_pos;      /* (B) tokens of the sequence already in the cache */
    const int32_t *block_tables;   /* (B, max_blocks) physical block ids */
    int32_t max_blocks;
    const uint8_t *want_logits;    /* (B) nonzero: logits of the sequence's last new token;
                                      NULL: every sequence with n_tokens > 0 */
} tr_batch_t;

/* Number of logits rows a batch produces. */
int32_t tr_batch_n_logits(const tr_batch_t *batch);

/* Runs the batch: writes each new token's K/V into the cache, and, for every sequence that
 * wants them (in batch order), its last token's logits as one row of vocab_size floats in
 * `logits` (backend memory; may be NULL when no sequence wants logits). TR_EINVAL for token
 * ids out of range, block tables too short or block ids out of the cache. On device backends
 * the step's integer inputs go up through one pinned staging buffer in one async copy; the
 * call waits for the previous step's copy before reusing it, never for the step itself. */
int tr_model_forward(tr_model_t *m, const tr_kv_cache_t *kv, const tr_batch_t *batch,
                     float *logits);

/* Allocates the activations for any batch of up to max_tokens new tokens, max_seqs
 * sequences and block tables max_blocks wide now rather than on the first steps, so that
 * memory figures taken afterwards (tr_ops_memory_info) are what the KV pool may use. Call
 * after tr_model_enable_graphs (padded steps need more). TR_ENOMEM / TR_EINVAL. */
int tr_model_reserve(tr_model_t *m, int32_t max_tokens, int32_t max_seqs, int32_t max_blocks);

/* ---- decode graphs ----
 *
 * After tr_model_enable_graphs, a pure-decode step (every sequence exactly one new token, at
 * most 256 sequences, logits wanted, kv->pad_block set) is padded to a batch bucket (1, 2,
 * 4, ..., 256) with sequences that read token 0 at position 0 and write their K/V into
 * kv->pad_block, a block of the pool no sequence may own; its block tables are widened to a
 * context bucket (powers of two from 512, capped at the model's context). The first step
 * of each (batch bucket, context bucket) runs eagerly and is then recorded
 * (tr_ops_graph_begin); later ones copy their inputs into the same buffers and replay it. A
 * failed recording logs one warning and turns graphs off for the model. Logits are those of
 * the unpadded step. */
typedef struct {
    bool on;                   /* padding (and recording) active */
    int32_t n_graphs;          /* recorded graphs held now */
    uint64_t recorded;         /* graphs recorded so far */
    uint64_t replayed;         /* steps that replayed one */
    uint64_t eager;            /* padded steps run eagerly (each new bucket, or pad only) */
} tr_model_graph_stats_t;

/* record = false pads and lays out decode steps the same way without recording, so a
 * backend without graphs can check the padding against plain steps (tests). TR_ENOTSUP
 * when the backend records no graphs (and record is set) or the model has MoE layers (the
 * routing waits for the host). */
int tr_model_enable_graphs(tr_model_t *m, bool record);
void tr_model_graph_stats(const tr_model_t *m, tr_model_graph_stats_t *out);

#endif
