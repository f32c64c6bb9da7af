/*  models/loader_gguf.c - GGUF v2/v3 checkpoints through models/gguf.h (mmap'd, bounds-checked).
 *
 *  general.architecture picks the decoder: llama (Llama, Mistral, SmolLM; Mixtral when it has
 *  experts), qwen2, qwen2moe, olmoe. Shapes come from "<arch>.*" metadata as llama.cpp writes
 *  it; tensors are f32, f16, bf16 or q8_0, used in place. Names map from the canonical ones
 *  of models/model_impl.h to llama.cpp's (blk.L.attn_q.weight, ...); MoE experts are views
 *  into the stacked ffn_{gate,up,down}_exps tensors.
 *
 *  llama.cpp's converter permutes the rows of Q and K of llama-arch models within each head
 *  (HF's rotate-half pairs (i, i + D/2) become adjacent rows (2i, 2i + 1)). Rotating adjacent
 *  pairs (TR_ROPE_INTERLEAVED) undoes that exactly: q . k is the same under the same
 *  permutation of both, so the weights are used as stored, without a copy. qwen2, qwen2moe
 *  and olmoe are not permuted and use rotate-half. Llama-3 rope scaling arrives as the
 *  rope_freqs tensor (per-frequency divisors).                                        */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "models/model_impl.h"

#define FAIL(status, ...) tr_model_fail(err, err_size, (status), __VA_ARGS__)

typedef struct {
    tr_gguf_t *g;
    char path[512];
} s_gguf_src_t;

static void s_free(void *arg) {
    s_gguf_src_t *s = arg;
    tr_gguf_destroy(&s->g);
    free(s);
}

static int s_dtype(int ggml, tr_dtype_t *out) {
    switch (ggml) {
    case TR_GGML_TYPE_F32: *out = TR_DTYPE_F32; return TR_OK;
    case TR_GGML_TYPE_F16: *out = TR_DTYPE_F16; return TR_OK;
    case TR_GGML_TYPE_BF16: *out = TR_DTYPE_BF16; return TR_OK;
    case TR_GGML_TYPE_Q8_0: *out = TR_DTYPE_Q8_0; return TR_OK;
    default: return TR_EINVAL;
    }
}

static int s_view(const tr_gguf_tensor_t *t, tr_tensor_view_t *out, char *err, size_t err_size) {
    if (s_dtype(t->type, &out->dtype))
        return FAIL(TR_EINVAL, "ggml type %s is not supported (f32, f16, bf16, q8_0 are)",
                    tr_ggml_type_name(t->type));
    out->data = t->data;
    out->n_dims = (int32_t)t->n_dims;
    for (uint32_t i = 0; i < t->n_dims; i++) out->shape[i] = t->ne[t->n_dims - 1 - i];
    return TR_OK;
}

static const struct {
    const char *hf, *gguf;
} s_fixed[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"lm_head.weight", "output.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"rope.freq_factors", "rope_freqs.weight"},
}, s_layer[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate.weight", "ffn_gate_inp.weight"},
    {"mlp.shared_expert.gate_proj.weight", "ffn_gate_shexp.weight"},
    {"mlp.shared_expert.up_proj.weight", "ffn_up_shexp.weight"},
    {"mlp.shared_expert.down_proj.weight", "ffn_down_shexp.weight"},
    {"mlp.shared_expert_gate.weight", "ffn_gate_inp_shexp.weight"},
};

/* canonical name -> GGUF name; *expert >= 0 for a slice of a stacked expert tensor */
static bool s_map(const char *name, char *out, size_t n, int *expert) {
    int l, e, used = 0;
    char rest[96], proj[16];
    *expert = -1;
    for (size_t i = 0; i < TR_ARRAY_LEN(s_fixed); i++)
        if (strcmp(name, s_fixed[i].hf) == 0) {
            snprintf(out, n, "%s", s_fixed[i].gguf);
            return true;
        }
    if (sscanf(name, "model.layers.%d.mlp.experts.%d.%15[a-z]_proj.weight%n", &l, &e, proj,
               &used) == 3 && name[used] == 0) {
        snprintf(out, n, "blk.%d.ffn_%s_exps.weight", l, proj);
        *expert = e;
        return true;
    }
    if (sscanf(name, "model.layers.%d.%95s", &l, rest) == 2)
        for (size_t i = 0; i < TR_ARRAY_LEN(s_layer); i++)
            if (strcmp(rest, s_layer[i].hf) == 0) {
                snprintf(out, n, "blk.%d.%s", l, s_layer[i].gguf);
                return true;
            }
    return false;
}

static const char *s_file_name(void *ctx, const char *name, char *buf, size_t n) {
    int e;
    if (!s_map(name, buf, n, &e)) return name;
    if (e >= 0) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, " (expert %d)", e);
    }
    return buf;
}

static int s_find(void *ctx, const char *name, tr_tensor_view_t *out, char *err,
                  size_t err_size) {
    s_gguf_src_t *s = ctx;
    char gname[128];
    int e;
    if (!s_map(name, gname, sizeof(gname), &e)) return TR_ENOENT;
    const tr_gguf_tensor_t *t = tr_gguf_find_tensor(s->g, gname);
    if (!t) return TR_ENOENT;
    int rc = s_view(t, out, err, err_size);
    if (rc || e < 0) return rc;
    /* expert e of a stacked (E, rows, cols) tensor */
    if (t->n_dims != 3 || e >= t->ne[2])
        return FAIL(TR_EPROTO, "%s is not a stack of at least %d experts", gname, e + 1);
    size_t row_bytes = tr_dtype_row_bytes(out->dtype, t->ne[0]);
    if (!row_bytes) return FAIL(TR_EPROTO, "%s: bad row length %lld", gname, (long long)t->ne[0]);
    out->data = (const char *)t->data + (size_t)e * (size_t)t->ne[1] * row_bytes;
    out->n_dims = 2;
    out->shape[0] = t->ne[1];
    out->shape[1] = t->ne[0];
    return TR_OK;
}

/* ---- metadata ---- */

static int s_u32(const tr_gguf_t *g, const char *arch, const char *key, int32_t *out,
                 bool required, const char *path, char *err, size_t err_size) {
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    uint32_t v;
    int rc = tr_gguf_get_u32(g, k, &v);
    if (rc == TR_ENOENT && !required) return TR_OK;
    if (rc == TR_ENOENT) return FAIL(TR_EPROTO, "%s: missing metadata %s", path, k);
    if (rc || v > INT32_MAX) return FAIL(TR_EPROTO, "%s: metadata %s is not a 32-bit count", path, k);
    *out = (int32_t)v;
    return TR_OK;
}

static int s_f32(const tr_gguf_t *g, const char *arch, const char *key, float *out,
                 const char *path, char *err, size_t err_size) {
    char k[128];
    snprintf(k, sizeof(k), "%s.%s", arch, key);
    int rc = tr_gguf_get_f32(g, k, out);
    if (rc && rc != TR_ENOENT) return FAIL(TR_EPROTO, "%s: metadata %s is not a float", path, k);
    return TR_OK;
}

static int s_config(const tr_gguf_t *g, const char *path, tr_model_config_t *c, char *err,
                    size_t err_size) {
    tr_model_config_defaults(c);
    tr_gguf_str_t as;
    char arch[32];
    if (tr_gguf_get_str(g, "general.architecture", &as))
        return FAIL(TR_EPROTO, "%s: no general.architecture", path);
    tr_gguf_str_copy(as, arch, sizeof(arch));
    if (strcmp(arch, "llama") == 0) {
        c->arch = TR_ARCH_LLAMA;
        c->rope.layout = TR_ROPE_INTERLEAVED;   /* see the top of this file */
    } else if (strcmp(arch, "qwen2") == 0) {
        c->arch = TR_ARCH_QWEN2;
    } else if (strcmp(arch, "qwen2moe") == 0) {
        c->arch = TR_ARCH_QWEN2_MOE;
    } else if (strcmp(arch, "olmoe") == 0) {
        c->arch = TR_ARCH_OLMOE;
        c->qk_norm = true;
    } else {
        return FAIL(TR_EINVAL, "%s: architecture \"%s\" is not supported (llama, qwen2, qwen2moe,"
                    " olmoe are)", path, arch);
    }
    int rc;
#define U32(key, field, req) \
    if ((rc = s_u32(g, arch, key, &c->field, req, path, err, err_size))) return rc
    U32("embedding_length", dim, true);
    U32("block_count", n_layers, true);
    U32("feed_forward_length", hidden_dim, false);
    U32("attention.head_count", n_heads, true);
    c->n_kv_heads = c->n_heads;
    U32("attention.head_count_kv", n_kv_heads, false);
    c->head_dim = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    U32("attention.key_length", head_dim, false);
    U32("context_length", max_seq_len, false);
    int32_t rot = 0;
    if ((rc = s_u32(g, arch, "rope.dimension_count", &rot, false, path, err, err_size))) return rc;
    if (rot && rot != c->head_dim) c->rope.rot_dim = rot;
    U32("expert_count", n_experts, false);
    U32("expert_used_count", n_experts_used, false);
    c->moe_hidden_dim = c->hidden_dim;
    U32("expert_feed_forward_length", moe_hidden_dim, false);
    U32("expert_shared_feed_forward_length", shared_hidden_dim, false);
#undef U32
    if ((rc = s_f32(g, arch, "attention.layer_norm_rms_epsilon", &c->norm_eps, path, err, err_size)) ||
        (rc = s_f32(g, arch, "rope.freq_base", &c->rope.theta, path, err, err_size)))
        return rc;
    char k[128];
    snprintf(k, sizeof(k), "%s.rope.scaling.type", arch);
    tr_gguf_str_t st;
    if (tr_gguf_get_str(g, k, &st) == TR_OK && !tr_gguf_str_eq(st, "none")) {
        if (!tr_gguf_str_eq(st, "linear"))
            return FAIL(TR_EINVAL, "%s: rope scaling \"%.*s\" is not supported (linear is; llama3"
                        " comes as rope_freqs)", path, (int)st.len, st.data);
        c->rope.scaling = TR_ROPE_SCALING_LINEAR;
        if ((rc = s_f32(g, arch, "rope.scaling.factor", &c->rope.factor, path, err, err_size)))
            return rc;
    }
    if (c->n_experts > 0 && c->arch == TR_ARCH_LLAMA) c->arch = TR_ARCH_MIXTRAL;
    c->norm_topk_prob = c->arch == TR_ARCH_MIXTRAL;
    snprintf(k, sizeof(k), "%s.expert_weights_norm", arch);
    bool norm;
    if (tr_gguf_get_bool(g, k, &norm) == TR_OK) c->norm_topk_prob = norm;
    /* shapes and options that only the tensor list tells */
    const tr_gguf_tensor_t *emb = tr_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2) return FAIL(TR_EPROTO, "%s: missing tensor token_embd.weight", path);
    if (emb->ne[1] > INT32_MAX) return FAIL(TR_EPROTO, "%s: vocabulary too large", path);
    c->vocab_size = (int32_t)emb->ne[1];
    c->tie_embeddings = tr_gguf_find_tensor(g, "output.weight") == NULL;
    c->qkv_bias = tr_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    c->o_bias = tr_gguf_find_tensor(g, "blk.0.attn_output.bias") != NULL;
    c->shared_expert_gate = tr_gguf_find_tensor(g, "blk.0.ffn_gate_inp_shexp.weight") != NULL;
    if (c->n_experts > 0) {
        for (int32_t l = 0; l < c->n_layers && l < 64; l++) {
            snprintf(k, sizeof(k), "blk.%d.ffn_gate_inp.weight", l);
            if (!tr_gguf_find_tensor(g, k)) c->dense_layers |= 1ull << l;
        }
        const tr_gguf_tensor_t *sh = tr_gguf_find_tensor(g, "blk.0.ffn_gate_shexp.weight");
        if (!c->shared_hidden_dim && sh && sh->n_dims == 2) c->shared_hidden_dim = (int32_t)sh->ne[1];
    }
    int32_t id;
    if (tr_gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &id) == TR_OK) c->bos_id = id;
    if (tr_gguf_get_i32(g, "tokenizer.ggml.eos_token_id", &id) == TR_OK) c->eos_id = id;
    return TR_OK;
}

int tr_model_load_gguf(tr_model_t **out, const char *path, tr_ops_t *ops,
                       const tr_model_load_opts_t *opts, char *err, size_t err_size) {
    *out = NULL;
    s_gguf_src_t *s = calloc(1, sizeof(*s));
    if (!s) return FAIL(TR_ENOMEM, "out of memory");
    snprintf(s->path, sizeof(s->path), "%s", path);
    int rc = TR_OK;
    s->g = tr_gguf_new(path, &rc, err, err_size);
    if (!s->g) {
        free(s);
        if (!err) tr_model_fail(NULL, 0, rc, "%s: cannot read GGUF", path);
        return rc ? rc : TR_EPROTO;
    }
    tr_model_config_t cfg;
    rc = s_config(s->g, path, &cfg, err, err_size);
    if (rc == TR_OK) {
        tr_weight_source_t src = {s, s->path, s_find, s_file_name};
        rc = tr_model_build(out, &cfg, &src, ops, opts, err, err_size);
        if (rc == TR_OK && tr_model_on_destroy(*out, s_free, s) == TR_OK) return TR_OK;
        if (rc == TR_OK) {
            tr_model_destroy(out);
            rc = FAIL(TR_ENOMEM, "out of memory");
        }
    }
    s_free(s);
    return rc;
}
