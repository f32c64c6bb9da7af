/*  models/loader_hf.c - HF transformers checkpoints: config.json (jansson) + safetensors.
 *
 *  config.json's model_type picks the architecture (llama, mistral, qwen2, mixtral,
 *  qwen2_moe, olmoe); its fields fill tr_model_config_t with transformers' defaults where a
 *  field is absent. Tensor names are HF's, which are the canonical names of models/
 *  model_impl.h except Mixtral's block_sparse_moe.{gate, experts.E.w1/w3/w2}, translated
 *  here. Anything the decoder cannot run (another activation, MLP biases, rope types other
 *  than default / linear / llama3, Qwen2's per-layer sliding windows) is refused by name.  */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_impl.h"
#include "models/safetensors.h"

#define FAIL(status, ...) tr_model_fail(err, err_size, (status), __VA_ARGS__)

typedef struct {
    tr_st_t *st;
    tr_arch_t arch;
} s_hf_src_t;

/* ---- config.json ---- */

static int64_t s_int(json_t *cfg, const char *key, int64_t dflt) {
    json_t *v = json_object_get(cfg, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static double s_num(json_t *cfg, const char *key, double dflt) {
    json_t *v = json_object_get(cfg, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static bool s_bool(json_t *cfg, const char *key, bool dflt) {
    json_t *v = json_object_get(cfg, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* first of an int or a list of ints (eos_token_id may be either) */
static int32_t s_token_id(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    return json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
}

static int s_parse_config(json_t *j, const char *path, tr_model_config_t *c, char *err,
                          size_t err_size) {
    static const struct {
        const char *name;
        tr_arch_t arch;
        double eps;
    } types[] = {
        {"llama", TR_ARCH_LLAMA, 1e-6},       {"mistral", TR_ARCH_MISTRAL, 1e-6},
        {"qwen2", TR_ARCH_QWEN2, 1e-6},       {"mixtral", TR_ARCH_MIXTRAL, 1e-5},
        {"qwen2_moe", TR_ARCH_QWEN2_MOE, 1e-6}, {"olmoe", TR_ARCH_OLMOE, 1e-5},
    };
    tr_model_config_defaults(c);
    const char *mt = json_string_value(json_object_get(j, "model_type"));
    if (!mt) return FAIL(TR_EPROTO, "%s: no model_type", path);
    size_t t = 0;
    while (t < TR_ARRAY_LEN(types) && strcmp(types[t].name, mt)) t++;
    if (t == TR_ARRAY_LEN(types))
        return FAIL(TR_EINVAL, "%s: model_type \"%s\" is not supported (llama, mistral, qwen2,"
                    " mixtral, qwen2_moe, olmoe are)", path, mt);
    c->arch = types[t].arch;
    const char *act = json_string_value(json_object_get(j, "hidden_act"));
    if (act && strcmp(act, "silu"))
        return FAIL(TR_EINVAL, "%s: hidden_act \"%s\" is not supported (silu is)", path, act);
    if (s_bool(j, "mlp_bias", false)) return FAIL(TR_EINVAL, "%s: mlp_bias is not supported", path);
    c->dim = (int32_t)s_int(j, "hidden_size", 0);
    c->hidden_dim = (int32_t)s_int(j, "intermediate_size", 0);
    c->n_layers = (int32_t)s_int(j, "num_hidden_layers", 0);
    c->n_heads = (int32_t)s_int(j, "num_attention_heads", 0);
    c->n_kv_heads = (int32_t)s_int(j, "num_key_value_heads", c->n_heads);
    c->head_dim = (int32_t)s_int(j, "head_dim", c->n_heads > 0 ? c->dim / c->n_heads : 0);
    c->vocab_size = (int32_t)s_int(j, "vocab_size", 0);
    c->max_seq_len = (int32_t)s_int(j, "max_position_embeddings", 0);
    c->norm_eps = (float)s_num(j, "rms_norm_eps", types[t].eps);
    c->rope.theta = (float)s_num(j, "rope_theta", c->arch == TR_ARCH_MIXTRAL ? 1e6 : 1e4);
    c->rope.layout = TR_ROPE_NEOX;
    c->tie_embeddings = s_bool(j, "tie_word_embeddings", false);
    c->bos_id = s_token_id(j, "bos_token_id");
    c->eos_id = s_token_id(j, "eos_token_id");
    if (s_num(j, "partial_rotary_factor", 1.0) != 1.0)
        return FAIL(TR_EINVAL, "%s: partial_rotary_factor is not supported", path);

    json_t *rs = json_object_get(j, "rope_scaling");
    if (json_is_object(rs)) {
        const char *type = json_string_value(json_object_get(rs, "rope_type"));
        if (!type) type = json_string_value(json_object_get(rs, "type"));
        if (!type || strcmp(type, "default") == 0) {
        } else if (strcmp(type, "linear") == 0) {
            c->rope.scaling = TR_ROPE_SCALING_LINEAR;
            c->rope.factor = (float)s_num(rs, "factor", 0);
        } else if (strcmp(type, "llama3") == 0) {
            c->rope.scaling = TR_ROPE_SCALING_LLAMA3;
            c->rope.factor = (float)s_num(rs, "factor", 0);
            c->rope.low_freq_factor = (float)s_num(rs, "low_freq_factor", 1);
            c->rope.high_freq_factor = (float)s_num(rs, "high_freq_factor", 4);
            c->rope.original_max_pos = (int32_t)s_int(rs, "original_max_position_embeddings", 8192);
        } else {
            return FAIL(TR_EINVAL, "%s: rope_scaling type \"%s\" is not supported (linear, llama3"
                        " are)", path, type);
        }
    }
    switch (c->arch) {
    case TR_ARCH_LLAMA:
    case TR_ARCH_MISTRAL:
    case TR_ARCH_MIXTRAL:
    case TR_ARCH_OLMOE:
        c->qkv_bias = c->o_bias = s_bool(j, "attention_bias", false);
        if (c->arch != TR_ARCH_LLAMA) c->sliding_window = (int32_t)s_int(j, "sliding_window", 0);
        break;
    case TR_ARCH_QWEN2:
    case TR_ARCH_QWEN2_MOE:
        c->qkv_bias = true;
        if (s_bool(j, "use_sliding_window", false))
            return FAIL(TR_EINVAL, "%s: Qwen2's use_sliding_window is not supported", path);
        break;
    default: break;
    }
    if (c->arch == TR_ARCH_MIXTRAL) {
        c->n_experts = (int32_t)s_int(j, "num_local_experts", 8);
        c->n_experts_used = (int32_t)s_int(j, "num_experts_per_tok", 2);
        c->moe_hidden_dim = c->hidden_dim;
        c->norm_topk_prob = true;
    } else if (c->arch == TR_ARCH_QWEN2_MOE) {
        c->n_experts = (int32_t)s_int(j, "num_experts", 60);
        c->n_experts_used = (int32_t)s_int(j, "num_experts_per_tok", 4);
        c->moe_hidden_dim = (int32_t)s_int(j, "moe_intermediate_size", 0);
        c->shared_hidden_dim = (int32_t)s_int(j, "shared_expert_intermediate_size", 0);
        c->shared_expert_gate = c->shared_hidden_dim > 0;
        c->norm_topk_prob = s_bool(j, "norm_topk_prob", false);
        c->moe_layer_step = (int32_t)s_int(j, "decoder_sparse_step", 1);
        json_t *dense = json_object_get(j, "mlp_only_layers");
        for (size_t i = 0; json_is_array(dense) && i < json_array_size(dense); i++) {
            int64_t l = json_integer_value(json_array_get(dense, i));
            if (l < 0 || l >= 64)
                return FAIL(TR_EINVAL, "%s: mlp_only_layers entry %lld out of range", path, (long long)l);
            c->dense_layers |= 1ull << l;
        }
    } else if (c->arch == TR_ARCH_OLMOE) {
        c->n_experts = (int32_t)s_int(j, "num_experts", 64);
        c->n_experts_used = (int32_t)s_int(j, "num_experts_per_tok", 8);
        c->moe_hidden_dim = c->hidden_dim;
        c->norm_topk_prob = s_bool(j, "norm_topk_prob", false);
        c->qk_norm = true;
        if (json_is_number(json_object_get(j, "clip_qkv")))
            return FAIL(TR_EINVAL, "%s: OLMoE clip_qkv is not supported", path);
    }
    return TR_OK;
}

/* ---- weight source ---- */

/* canonical -> Mixtral name; false when the name needs no translation */
static bool s_mixtral_name(const char *name, char *out, size_t n) {
    int l, e, used = 0;
    char proj[16];
    if (sscanf(name, "model.layers.%d.mlp.gate.weight%n", &l, &used) == 1 && name[used] == 0) {
        snprintf(out, n, "model.layers.%d.block_sparse_moe.gate.weight", l);
        return true;
    }
    if (sscanf(name, "model.layers.%d.mlp.experts.%d.%15[a-z]_proj.weight%n", &l, &e, proj, &used) == 3 &&
        name[used] == 0) {
        const char *w = strcmp(proj, "gate") == 0 ? "w1" : strcmp(proj, "up") == 0 ? "w3" : "w2";
        snprintf(out, n, "model.layers.%d.block_sparse_moe.experts.%d.%s.weight", l, e, w);
        return true;
    }
    return false;
}

static const char *s_hf_file_name(void *ctx, const char *name, char *buf, size_t n) {
    s_hf_src_t *src = ctx;
    return src->arch == TR_ARCH_MIXTRAL && s_mixtral_name(name, buf, n) ? buf : name;
}

static int s_hf_find(void *ctx, const char *name, tr_tensor_view_t *out, char *err,
                     size_t err_size) {
    s_hf_src_t *src = ctx;
    char buf[160];
    if (strcmp(name, "rope.freq_factors") == 0) return TR_ENOENT;
    if (src->arch == TR_ARCH_MIXTRAL && s_mixtral_name(name, buf, sizeof(buf))) name = buf;
    return tr_st_find(src->st, name, out, err, err_size);
}

static void s_src_free(void *arg) {
    s_hf_src_t *src = arg;
    tr_st_destroy(&src->st);
    free(src);
}

int tr_model_load_hf(tr_model_t **out, const char *dir, tr_ops_t *ops,
                     const tr_model_load_opts_t *opts, char *err, size_t err_size) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) {
        FILE *f = fopen(path, "r");
        if (!f) return FAIL(TR_ENOENT, "%s: no config.json", dir);
        fclose(f);
        return FAIL(TR_EPROTO, "%s:%d: %s", path, je.line, je.text);
    }
    tr_model_config_t cfg;
    int rc = s_parse_config(j, path, &cfg, err, err_size);
    json_decref(j);
    if (rc) return rc;
    tr_st_t *st = tr_st_open(dir, &rc, err, err_size);
    if (!st) return rc;
    s_hf_src_t *ctx = malloc(sizeof(*ctx));
    if (!ctx) {
        tr_st_destroy(&st);
        return FAIL(TR_ENOMEM, "out of memory");
    }
    *ctx = (s_hf_src_t){st, cfg.arch};
    tr_weight_source_t src = {ctx, dir, s_hf_find, s_hf_file_name};
    rc = tr_model_build(out, &cfg, &src, ops, opts, err, err_size);
    if (rc == TR_OK && tr_model_on_destroy(*out, s_src_free, ctx) == TR_OK) return TR_OK;
    if (rc == TR_OK) {
        tr_model_destroy(out);
        rc = FAIL(TR_ENOMEM, "out of memory");
    }
    s_src_free(ctx);
    return rc;
}
