/*  models/model_impl.h - what the weight loaders share with models/model.c (private).
 *
 *  A loader parses its format's header into a tr_model_config_t and offers its tensors
 *  through a tr_weight_source_t that answers canonical names (HF Llama / Qwen2-MoE naming,
 *  listed below) with a view into its mapping. tr_model_build() checks the config, binds
 *  every tensor the config needs (shape, dtype and alignment checked, one message per
 *  problem), and hands the matrices to the backend. On success the loader gives its
 *  mappings to the model with tr_model_on_destroy(); on failure it frees them itself.
 *
 *  Canonical names (L = layer, E = expert):
 *      model.embed_tokens.weight, lm_head.weight, model.norm.weight,
 *      model.layers.L.{input_layernorm,post_attention_layernorm}.weight,
 *      model.layers.L.self_attn.{q,k,v,o}_proj.{weight,bias}, ...self_attn.{q,k}_norm.weight,
 *      model.layers.L.mlp.{gate,up,down}_proj.weight              (dense MLP)
 *      model.layers.L.mlp.gate.weight                             (router, (E, dim))
 *      model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight
 *      model.layers.L.mlp.shared_expert.{gate,up,down}_proj.weight
 *      model.layers.L.mlp.shared_expert_gate.weight               ((1, dim))
 *      rope.freq_factors                                          (optional, (head_dim / 2))  */
#ifndef TR_MODEL_IMPL_H
#define TR_MODEL_IMPL_H

#include <stdarg.h>

#include "models/model.h"

/* A tensor in a mapping: shape outermost first (PyTorch order: (rows, cols) for a matrix). */
typedef struct {
    const void *data;             /* borrowed */
    tr_dtype_t dtype;
    int32_t n_dims;
    int64_t shape[4];
} tr_tensor_view_t;

typedef struct {
    void *ctx;
    const char *what;             /* for messages: "model.safetensors", "x.gguf", ... */
    /* TR_OK and *out, TR_ENOENT when absent, another status (with err) when unusable. */
    int (*find)(void *ctx, const char *name, tr_tensor_view_t *out, char *err, size_t n);
    /* Optional: the tensor's name as the file spells it, for messages (buf, n bytes). */
    const char *(*file_name)(void *ctx, const char *name, char *buf, size_t n);
} tr_weight_source_t;

/* Builds a model from a config and a source. */
int tr_model_build(tr_model_t **out, const tr_model_config_t *cfg,
                   const tr_weight_source_t *src, tr_ops_t *ops,
                   const tr_model_load_opts_t *opts, char *err, size_t err_size);

/* Runs fn(arg) when the model is destroyed (after its weights are released): how loaders
 * hand over their mappings. TR_ENOMEM when the list cannot grow (fn not registered). */
int tr_model_on_destroy(tr_model_t *m, void (*fn)(void *), void *arg);

/* Writes a message to err (or logs it when err is NULL) and returns status. */
int tr_model_fail(char *err, size_t err_size, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Default config values (rope theta 10000, eps 1e-5, ids -1, moe_layer_step 1). */
void tr_model_config_defaults(tr_model_config_t *cfg);

#endif
