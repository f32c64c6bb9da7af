/*  models/model.c - the decoder: config checks, weight binding, KV cache, forward pass.
 *
 *  Read top to bottom like llama2.c's run.c: the structs that carry shapes, then building a
 *  model from a loader's weight source, then one forward step. Every numerical step is an op
 *  of the borrowed backend (kernels/ops.h), so this file runs unchanged on any backend; the
 *  only host work is bookkeeping: positions, KV slots and, for MoE, which tokens go to which
 *  expert (the router's choices are copied back once per layer).
 *
 *  Device backends: weights are uploaded once (with progress lines for large models: the
 *  binding runs twice, first only to add up the bytes); a step's integer inputs are laid out
 *  in one host-pinned staging buffer and sent with one async copy; pure-decode steps can be
 *  recorded as graphs per (batch bucket, context bucket) and replayed (s_forward_graph).
 *
 *  B = sequences, T = new tokens in the batch, H = query heads, Hk = kv heads, D = head_dim,
 *  E = experts, k = experts per token, V = vocab.                                      */
#include "models/model_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/log.h"

/* ---- structs ---- */

typedef struct {
    const void *data;             /* backend pointer (the mapping itself on the CPU) */
    tr_dtype_t dtype;
    int32_t rows, cols;
    const void *packed;           /* owned or NULL: the backend's repacked copy (CPU q8_0) */
} s_mat_t;

typedef struct {
    s_mat_t gate, up, down;       /* (hidden, dim), (hidden, dim), (dim, hidden) */
} s_mlp_t;

typedef struct {
    float *attn_norm, *ffn_norm;  /* (dim) owned */
    s_mat_t wq, wk, wv, wo;       /* (H D, dim), (Hk D, dim), (Hk D, dim), (dim, H D) */
    float *bq, *bk, *bv, *bo;     /* owned or NULL */
    float *q_norm, *k_norm;       /* (H D), (Hk D) owned or NULL (OLMoE) */
    bool moe;
    s_mlp_t mlp;                  /* dense layers */
    s_mat_t router;               /* (E, dim) */
    s_mlp_t *experts;             /* (E) owned array */
    s_mlp_t shared;               /* shared expert (rows 0 if none) */
    s_mat_t shared_gate;          /* (1, dim) */
} s_layer_t;

/* Activations for up to cap_t tokens and cap_out logits rows, backend memory. */
typedef struct {
    int32_t cap_t, cap_out;
    float *x, *xb, *q, *k, *v, *att;          /* (T, dim), (T, dim), (T, H D), ... */
    float *hb, *hb2;                          /* (T, max hidden) */
    float *xe, *ye;                           /* MoE: gathered tokens, expert output (T, dim) */
    float *router, *route_w, *sh_gate;        /* (T, E), (T, k), (T) */
    int32_t *route_ids;                       /* (T, k) */
    float *perm_w;                            /* (T k) weights sorted by expert */
    int32_t *perm_t;                          /* (T k) tokens sorted by expert */
    float *xo;                                /* (n_out, dim) rows that want logits */
    int32_t cap_table;                        /* block-table entries the step layout allows */
    /* a step's integer inputs, packed by s_layout (tokens, positions, slots, seq_start,
     * seq_pos, block table, logits rows): ints in backend memory, h_ints its host staging
     * (pinned on device backends; the same buffer on host backends, so no copy) */
    int32_t *ints, *h_ints;
    size_t cap_ints;
    /* host mirrors for MoE routing */
    int32_t *h_ids, *h_perm_t, *h_count;
    float *h_w, *h_perm_w;
} s_scratch_t;

/* Where a step's inputs sit in s_scratch_t.ints (offsets in ints) and its shape. */
typedef struct {
    int32_t T, B, n_out, max_blocks, decode_ctx;
    size_t o_tokens, o_pos, o_slots, o_start, o_spos, o_table, o_out, n_ints;
} s_step_t;

/* A recorded decode step: batch bucket, context bucket and the KV pool it was recorded on. */
typedef struct {
    int32_t bucket, ctx;
    const float *kv_k;
    tr_ops_graph_t *g;            /* owned */
} s_graph_t;

/* Upload progress of a model load (s_progress). */
typedef struct {
    size_t total, done;           /* bytes; total 0: not reporting */
    uint64_t t0, t_last;
    int decile, tty;
} s_progress_t;

typedef struct {
    void (*fn)(void *);
    void *arg;
} s_cleanup_t;

struct tr_model {
    tr_model_config_t cfg;
    tr_ops_t *ops;                /* borrowed */
    s_mat_t embed;                /* (V, dim) */
    s_mat_t lm_head;              /* (V, dim), the embedding when tied */
    float *final_norm;            /* (dim) owned */
    float *freq_factors;          /* host, owned, or NULL */
    s_layer_t *layers;            /* (n_layers) owned */
    int32_t max_hidden;
    void **owned;                 /* backend allocations to free */
    int32_t n_owned, cap_owned;
    void **uploaded;              /* tr_ops_upload_weights results to release */
    int32_t n_uploaded, cap_uploaded;
    s_cleanup_t *cleanups;        /* loaders' mappings */
    int32_t n_cleanups, cap_cleanups;
    s_scratch_t s;
    bool sizing;                  /* binding pass that only adds up upload bytes */
    s_progress_t up;
    /* decode graphs (tr_model_enable_graphs) */
    int graph_mode;               /* 0 off, 1 record and replay, 2 pad only (no recording) */
    s_graph_t *graphs;            /* owned */
    int32_t n_graphs, cap_graphs;
    float *logits_g;              /* owned, backend: (logits_g_rows, V) rows of padded steps */
    int32_t logits_g_rows;
    tr_model_graph_stats_t gstats;
};

#define S_MAX_BUCKET 256          /* largest decode batch that is padded and recorded */
#define S_MIN_CTX_BUCKET 512      /* smallest context bucket of a recorded decode step */

static const char *const s_arch_names[TR_ARCH_COUNT] = {
    "llama", "mistral", "qwen2", "mixtral", "qwen2_moe", "olmoe",
};

const char *tr_arch_name(tr_arch_t arch) {
    return (unsigned)arch < TR_ARCH_COUNT ? s_arch_names[arch] : "?";
}

bool tr_model_layer_is_moe(const tr_model_config_t *cfg, int32_t l) {
    if (cfg->n_experts == 0) return false;
    if (l < 64 && (cfg->dense_layers >> l) & 1) return false;
    int32_t step = cfg->moe_layer_step > 0 ? cfg->moe_layer_step : 1;
    return (l + 1) % step == 0;
}

void tr_model_config_defaults(tr_model_config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->norm_eps = 1e-5f;
    cfg->rope.theta = 10000.0f;
    cfg->rope.layout = TR_ROPE_NEOX;
    cfg->moe_layer_step = 1;
    cfg->bos_id = cfg->eos_id = -1;
}

int tr_model_fail(char *err, size_t err_size, int status, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (err && err_size)
        snprintf(err, err_size, "%s", buf);
    else
        TR_ERROR("%s", buf);
    return status;
}

#define FAIL(status, ...) tr_model_fail(err, err_size, (status), __VA_ARGS__)

/* ---- resources ---- */

/* Adds backend memory to the model's list; TR_ENOMEM (p not added) when it cannot grow. */
static int s_own(tr_model_t *m, void *p) {
    if (m->n_owned == m->cap_owned) {
        int32_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **q = realloc(m->owned, (size_t)cap * sizeof(void *));
        if (!q) return TR_ENOMEM;
        m->owned = q;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return TR_OK;
}

static void *s_alloc(tr_model_t *m, size_t bytes) {
    void *p = tr_ops_alloc(m->ops, bytes);
    if (p && s_own(m, p)) {
        tr_ops_free(m->ops, p);
        return NULL;
    }
    return p;
}

int tr_model_on_destroy(tr_model_t *m, void (*fn)(void *), void *arg) {
    if (m->n_cleanups == m->cap_cleanups) {
        int32_t cap = m->cap_cleanups ? 2 * m->cap_cleanups : 8;
        s_cleanup_t *p = realloc(m->cleanups, (size_t)cap * sizeof(*p));
        if (!p) return TR_ENOMEM;
        m->cleanups = p;
        m->cap_cleanups = cap;
    }
    m->cleanups[m->n_cleanups++] = (s_cleanup_t){fn, arg};
    return TR_OK;
}

static void s_scratch_free(tr_model_t *m);
static void s_graphs_clear(tr_model_t *m);

void tr_model_destroy(tr_model_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_model_t *m = *self_p;
    s_scratch_free(m);
    free(m->graphs);
    tr_ops_free(m->ops, m->logits_g);
    for (int32_t i = 0; i < m->n_uploaded; i++) tr_ops_release_weights(m->ops, m->uploaded[i]);
    for (int32_t i = 0; i < m->n_owned; i++) tr_ops_free(m->ops, m->owned[i]);
    for (int32_t l = 0; m->layers && l < m->cfg.n_layers; l++) free(m->layers[l].experts);
    for (int32_t i = m->n_cleanups - 1; i >= 0; i--) m->cleanups[i].fn(m->cleanups[i].arg);
    free(m->layers), free(m->owned), free(m->uploaded), free(m->cleanups);
    free(m->freq_factors);
    free(m);
    *self_p = NULL;
}

const tr_model_config_t *tr_model_config(const tr_model_t *m) {
    return &m->cfg;
}

tr_dtype_t tr_model_weight_dtype(const tr_model_t *m) {
    return m->layers[0].wq.dtype;
}

static size_t s_mat_bytes(const s_mat_t *w) {
    return w->rows ? tr_dtype_row_bytes(w->dtype, w->cols) * (size_t)w->rows : 0;
}

static size_t s_mlp_bytes(const s_mlp_t *p) {
    return s_mat_bytes(&p->gate) + s_mat_bytes(&p->up) + s_mat_bytes(&p->down);
}

size_t tr_model_weight_bytes(const tr_model_t *m) {
    size_t b = s_mat_bytes(&m->lm_head) + tr_dtype_row_bytes(m->embed.dtype, m->embed.cols);
    for (int32_t l = 0; l < m->cfg.n_layers; l++) {
        const s_layer_t *L = &m->layers[l];
        b += s_mat_bytes(&L->wq) + s_mat_bytes(&L->wk) + s_mat_bytes(&L->wv) + s_mat_bytes(&L->wo);
        if (!L->moe) {
            b += s_mlp_bytes(&L->mlp);
        } else {   /* a decode step reads all experts only in a large batch; count them all */
            b += s_mat_bytes(&L->router) + s_mlp_bytes(&L->shared) + s_mat_bytes(&L->shared_gate);
            for (int32_t e = 0; e < m->cfg.n_experts; e++) b += s_mlp_bytes(&L->experts[e]);
        }
    }
    return b;
}

int64_t tr_model_n_params(const tr_model_t *m) {
    const tr_model_config_t *c = &m->cfg;
    int64_t n = (int64_t)c->vocab_size * c->dim * (c->tie_embeddings ? 1 : 2) + c->dim;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    for (int32_t l = 0; l < c->n_layers; l++) {
        n += 2 * c->dim + 2 * qd * c->dim + 2 * kvd * c->dim;
        if (!tr_model_layer_is_moe(c, l)) {
            n += 3LL * c->hidden_dim * c->dim;
        } else {
            n += (int64_t)c->n_experts * (c->dim + 3LL * c->moe_hidden_dim * c->dim);
            n += 3LL * c->shared_hidden_dim * c->dim + (c->shared_expert_gate ? c->dim : 0);
        }
    }
    return n;
}

/* ---- config checks ---- */

static int s_check_config(const tr_model_config_t *c, char *err, size_t err_size) {
    if ((unsigned)c->arch >= TR_ARCH_COUNT) return FAIL(TR_EINVAL, "unknown architecture");
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->vocab_size <= 0)
        return FAIL(TR_EPROTO, "config: dim %d, layers %d, heads %d, kv heads %d, head_dim %d,"
                    " vocab %d must all be positive", c->dim, c->n_layers, c->n_heads,
                    c->n_kv_heads, c->head_dim, c->vocab_size);
    if (c->n_heads % c->n_kv_heads)
        return FAIL(TR_EPROTO, "config: %d heads is not a multiple of %d kv heads", c->n_heads,
                    c->n_kv_heads);
    if (c->head_dim % 2 || (c->rope.rot_dim && (c->rope.rot_dim % 2 || c->rope.rot_dim > c->head_dim)))
        return FAIL(TR_EPROTO, "config: head_dim %d / rotary dims %d must be even", c->head_dim,
                    c->rope.rot_dim);
    if (!(c->norm_eps >= 0) || !(c->rope.theta > 0))
        return FAIL(TR_EPROTO, "config: bad rms eps %g or rope theta %g", c->norm_eps, c->rope.theta);
    if (c->rope.scaling != TR_ROPE_SCALING_NONE && !(c->rope.factor > 0))
        return FAIL(TR_EPROTO, "config: rope scaling factor %g must be positive", c->rope.factor);
    if (c->rope.scaling == TR_ROPE_SCALING_LLAMA3 &&
        !(c->rope.original_max_pos > 0 && c->rope.high_freq_factor > c->rope.low_freq_factor))
        return FAIL(TR_EPROTO, "config: llama3 rope scaling needs original_max_position_embeddings"
                    " and high_freq_factor > low_freq_factor");
    if (c->sliding_window < 0) return FAIL(TR_EPROTO, "config: negative sliding window");
    bool any_dense = false, any_moe = false;
    for (int32_t l = 0; l < c->n_layers; l++) {
        if (tr_model_layer_is_moe(c, l)) any_moe = true;
        else any_dense = true;
    }
    if (any_dense && c->hidden_dim <= 0)
        return FAIL(TR_EPROTO, "config: intermediate size %d must be positive", c->hidden_dim);
    if (c->n_experts < 0 || (c->n_experts > 0 &&
        (c->n_experts_used <= 0 || c->n_experts_used > c->n_experts || c->moe_hidden_dim <= 0)))
        return FAIL(TR_EPROTO, "config: %d experts, %d per token, expert size %d", c->n_experts,
                    c->n_experts_used, c->moe_hidden_dim);
    if (any_moe && c->n_experts_used > 64) return FAIL(TR_EINVAL, "more than 64 experts per token");
    if (c->shared_hidden_dim < 0) return FAIL(TR_EPROTO, "config: negative shared expert size");
    return TR_OK;
}

/* ---- binding weights ---- */

/* The tensor's name as its file spells it (GGUF's blk.0.attn_q.weight), for messages. */
static const char *s_shown(const tr_weight_source_t *src, const char *name, char *buf, size_t n) {
    return src->file_name ? src->file_name(src->ctx, name, buf, n) : name;
}

static int s_find(const tr_weight_source_t *src, const char *name, tr_tensor_view_t *v,
                  bool required, char *err, size_t err_size) {
    char why[256] = "", shown[160];
    int rc = src->find(src->ctx, name, v, why, sizeof(why));
    if (rc == TR_ENOENT && !required) return TR_ENOENT;
    name = s_shown(src, name, shown, sizeof(shown));
    if (rc == TR_ENOENT) return FAIL(TR_ENOENT, "%s: missing tensor %s", src->what, name);
    if (rc) return FAIL(rc, "%s: tensor %s: %s", src->what, name, why[0] ? why : tr_strerror(rc));
    return TR_OK;
}

static int64_t s_numel(const tr_tensor_view_t *v) {
    int64_t n = 1;
    for (int32_t i = 0; i < v->n_dims; i++) n *= v->shape[i];
    return n;
}

static void s_shape_str(const tr_tensor_view_t *v, char *out, size_t n) {
    int len = snprintf(out, n, "(");
    for (int32_t i = 0; i < v->n_dims && len < (int)n; i++)
        len += snprintf(out + len, n - len, i ? ", %lld" : "%lld", (long long)v->shape[i]);
    snprintf(out + (len < (int)n ? len : (int)n - 1), n - (len < (int)n ? len : (int)n - 1), ")");
}

/* ---- upload progress ---- */

static uint64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Counts bytes handed to the backend and reports: on a terminal one line redrawn at every
 * 10% or quarter second, otherwise an INFO line at every 10% or 10 s (logs stay short). */
static void s_progress(tr_model_t *m, size_t bytes) {
    s_progress_t *p = &m->up;
    if (!p->total) return;
    p->done += bytes;
    const uint64_t now = s_now_ns();
    const int decile = p->done >= p->total ? 10 : (int)(p->done * 10 / p->total);
    const uint64_t every = p->tty ? 250000000ull : 10000000000ull;
    if (decile == p->decile && now - p->t_last < every) return;
    p->decile = decile;
    p->t_last = now;
    const double mib = (double)p->done / (1 << 20), total = (double)p->total / (1 << 20);
    const double secs = (double)(now - p->t0) / 1e9;
    const double rate = secs > 0 ? mib / secs : 0;
    const int pct = (int)(100.0 * (double)p->done / (double)p->total);
    if (p->tty)
        fprintf(stderr, "\rweights to %s: %3d%% %8.0f / %.0f MiB  %6.0f MiB/s%s",
                tr_ops_name(m->ops), pct, mib, total, rate, decile == 10 ? "\n" : "");
    else
        TR_INFO("weights to %s: %d%%, %.0f of %.0f MiB, %.0f MiB/s", tr_ops_name(m->ops), pct,
                mib, total, rate);
}

/* Offers a bound matrix to the backend for repacking (tr_ops_pack_weights); the packed copy,
 * when there is one, is read by the matmuls that prefer it, beside the original. */
static int s_pack_mat(tr_model_t *m, s_mat_t *w, const char *name, char *err, size_t err_size) {
    void *packed = NULL;
    int rc = tr_ops_pack_weights(m->ops, w->data, w->dtype, w->rows, w->cols, &packed);
    if (rc) return FAIL(rc, "repacking %s: %s", name, tr_strerror(rc));
    if (packed && s_own(m, packed)) {
        tr_ops_free(m->ops, packed);
        return FAIL(TR_ENOMEM, "out of memory");
    }
    w->packed = packed;
    return TR_OK;
}

/* A matrix of (rows, cols), used in place (uploaded) unless misaligned, then offered to the
 * backend for repacking. */
static int s_bind_mat(tr_model_t *m, const tr_weight_source_t *src, const char *name,
                      int32_t rows, int32_t cols, s_mat_t *out, char *err, size_t err_size) {
    tr_tensor_view_t v;
    int rc = s_find(src, name, &v, true, err, err_size);
    if (rc) return rc;
    char shown[160];
    name = s_shown(src, name, shown, sizeof(shown));
    bool ok = (v.n_dims == 2 && v.shape[0] == rows && v.shape[1] == cols) ||
              (v.n_dims == 1 && rows == 1 && v.shape[0] == cols);
    if (!ok) {
        char got[96];
        s_shape_str(&v, got, sizeof(got));
        return FAIL(TR_EPROTO, "%s: tensor %s has shape %s, expected (%d, %d)", src->what, name,
                    got, rows, cols);
    }
    if (cols % tr_dtype_block_elems(v.dtype))
        return FAIL(TR_EPROTO, "%s: tensor %s: %d columns is not a multiple of the %s block",
                    src->what, name, cols, tr_dtype_name(v.dtype));
    size_t bytes = tr_dtype_row_bytes(v.dtype, cols) * (size_t)rows;
    const void *host = v.data;
    if (m->sizing) {   /* first pass: checks only, and the total for the progress lines */
        m->up.total += bytes;
        *out = (s_mat_t){host, v.dtype, rows, cols, NULL};
        return TR_OK;
    }
    size_t align = v.dtype == TR_DTYPE_F32 ? 4 : 2;
    if ((uintptr_t)host % align) {   /* e.g. odd safetensors offsets: copy to aligned memory */
        void *copy = s_alloc(m, bytes);
        if (!copy) return FAIL(TR_ENOMEM, "out of memory copying %s", name);
        rc = tr_ops_to_device(m->ops, copy, host, bytes);
        if (rc) return FAIL(rc, "copying %s to the backend failed", name);
        s_progress(m, bytes);
        *out = (s_mat_t){copy, v.dtype, rows, cols, NULL};
        return s_pack_mat(m, out, name, err, err_size);
    }
    void *dev = NULL;
    rc = tr_ops_upload_weights(m->ops, host, bytes, &dev);
    if (rc) return FAIL(rc, "uploading %s failed", name);
    if (dev != host) {
        s_progress(m, bytes);
        if (m->n_uploaded == m->cap_uploaded) {
            int32_t cap = m->cap_uploaded ? 2 * m->cap_uploaded : 64;
            void **p = realloc(m->uploaded, (size_t)cap * sizeof(void *));
            if (!p) {
                tr_ops_release_weights(m->ops, dev);
                return FAIL(TR_ENOMEM, "out of memory");
            }
            m->uploaded = p;
            m->cap_uploaded = cap;
        }
        m->uploaded[m->n_uploaded++] = dev;
    }
    *out = (s_mat_t){dev, v.dtype, rows, cols, NULL};
    return s_pack_mat(m, out, name, err, err_size);
}

/* A vector of n values, widened to f32 into backend memory the model owns. */
static int s_bind_vec(tr_model_t *m, const tr_weight_source_t *src, const char *name, int32_t n,
                      float **out, char *err, size_t err_size) {
    tr_tensor_view_t v;
    int rc = s_find(src, name, &v, true, err, err_size);
    if (rc) return rc;
    char shown[160];
    name = s_shown(src, name, shown, sizeof(shown));
    if (s_numel(&v) != n || v.n_dims > 2 || (v.n_dims == 2 && v.shape[0] != 1)) {
        char got[96];
        s_shape_str(&v, got, sizeof(got));
        return FAIL(TR_EPROTO, "%s: tensor %s has shape %s, expected (%d)", src->what, name, got, n);
    }
    if (n % tr_dtype_block_elems(v.dtype))
        return FAIL(TR_EPROTO, "%s: tensor %s: %d values is not a multiple of the %s block",
                    src->what, name, n, tr_dtype_name(v.dtype));
    if (m->sizing) return TR_OK;   /* vectors are small: not counted */
    float *host = malloc((size_t)n * sizeof(float));
    tr_ops_t *ref = tr_ops_ref();   /* host conversion, whatever the backend */
    float *dev = host && ref ? s_alloc(m, (size_t)n * sizeof(float)) : NULL;
    rc = dev ? tr_ops_dequantize(ref, host, v.data, v.dtype, n) : TR_ENOMEM;
    if (!rc) rc = tr_ops_to_device(m->ops, dev, host, (size_t)n * sizeof(float));
    tr_ops_destroy(&ref);
    free(host);
    if (rc) return FAIL(rc, "converting %s: %s", name, tr_strerror(rc));
    *out = dev;
    return TR_OK;
}

static int s_bind_mlp(tr_model_t *m, const tr_weight_source_t *src, const char *prefix,
                      int32_t hidden, s_mlp_t *out, char *err, size_t err_size) {
    char name[160];
    const int32_t dim = m->cfg.dim;
    int rc;
    snprintf(name, sizeof(name), "%s.gate_proj.weight", prefix);
    if ((rc = s_bind_mat(m, src, name, hidden, dim, &out->gate, err, err_size))) return rc;
    snprintf(name, sizeof(name), "%s.up_proj.weight", prefix);
    if ((rc = s_bind_mat(m, src, name, hidden, dim, &out->up, err, err_size))) return rc;
    snprintf(name, sizeof(name), "%s.down_proj.weight", prefix);
    return s_bind_mat(m, src, name, dim, hidden, &out->down, err, err_size);
}

static int s_bind_layer(tr_model_t *m, const tr_weight_source_t *src, int32_t l, char *err,
                        size_t err_size) {
    const tr_model_config_t *c = &m->cfg;
    s_layer_t *L = &m->layers[l];
    const int32_t dim = c->dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    char name[160], pre[64];
    int rc;
#define NAME(fmt) (snprintf(name, sizeof(name), "model.layers.%d." fmt, l), name)
    if ((rc = s_bind_vec(m, src, NAME("input_layernorm.weight"), dim, &L->attn_norm, err, err_size)) ||
        (rc = s_bind_vec(m, src, NAME("post_attention_layernorm.weight"), dim, &L->ffn_norm, err, err_size)) ||
        (rc = s_bind_mat(m, src, NAME("self_attn.q_proj.weight"), qd, dim, &L->wq, err, err_size)) ||
        (rc = s_bind_mat(m, src, NAME("self_attn.k_proj.weight"), kvd, dim, &L->wk, err, err_size)) ||
        (rc = s_bind_mat(m, src, NAME("self_attn.v_proj.weight"), kvd, dim, &L->wv, err, err_size)) ||
        (rc = s_bind_mat(m, src, NAME("self_attn.o_proj.weight"), dim, qd, &L->wo, err, err_size)))
        return rc;
    if (c->qkv_bias &&
        ((rc = s_bind_vec(m, src, NAME("self_attn.q_proj.bias"), qd, &L->bq, err, err_size)) ||
         (rc = s_bind_vec(m, src, NAME("self_attn.k_proj.bias"), kvd, &L->bk, err, err_size)) ||
         (rc = s_bind_vec(m, src, NAME("self_attn.v_proj.bias"), kvd, &L->bv, err, err_size))))
        return rc;
    if (c->o_bias && (rc = s_bind_vec(m, src, NAME("self_attn.o_proj.bias"), dim, &L->bo, err, err_size)))
        return rc;
    if (c->qk_norm &&
        ((rc = s_bind_vec(m, src, NAME("self_attn.q_norm.weight"), qd, &L->q_norm, err, err_size)) ||
         (rc = s_bind_vec(m, src, NAME("self_attn.k_norm.weight"), kvd, &L->k_norm, err, err_size))))
        return rc;
    L->moe = tr_model_layer_is_moe(c, l);
    if (!L->moe) {
        snprintf(pre, sizeof(pre), "model.layers.%d.mlp", l);
        return s_bind_mlp(m, src, pre, c->hidden_dim, &L->mlp, err, err_size);
    }
    if ((rc = s_bind_mat(m, src, NAME("mlp.gate.weight"), c->n_experts, dim, &L->router, err, err_size)))
        return rc;
    if (!L->experts) L->experts = calloc((size_t)c->n_experts, sizeof(s_mlp_t));
    if (!L->experts) return FAIL(TR_ENOMEM, "out of memory");
    for (int32_t e = 0; e < c->n_experts; e++) {
        snprintf(pre, sizeof(pre), "model.layers.%d.mlp.experts.%d", l, e);
        if ((rc = s_bind_mlp(m, src, pre, c->moe_hidden_dim, &L->experts[e], err, err_size))) return rc;
    }
    if (c->shared_hidden_dim > 0) {
        snprintf(pre, sizeof(pre), "model.layers.%d.mlp.shared_expert", l);
        if ((rc = s_bind_mlp(m, src, pre, c->shared_hidden_dim, &L->shared, err, err_size))) return rc;
        if (c->shared_expert_gate &&
            (rc = s_bind_mat(m, src, NAME("mlp.shared_expert_gate.weight"), 1, dim, &L->shared_gate, err, err_size)))
            return rc;
    }
#undef NAME
    return TR_OK;
}

static int s_bind_all(tr_model_t *m, const tr_weight_source_t *src, char *err,
                      size_t err_size);

int tr_model_build(tr_model_t **out, const tr_model_config_t *cfg,
                   const tr_weight_source_t *src, tr_ops_t *ops,
                   const tr_model_load_opts_t *opts, char *err, size_t err_size) {
    *out = NULL;
    int rc = s_check_config(cfg, err, err_size);
    if (rc) return rc;
    if (opts && (opts->shard.world > 1 || opts->shard.rank != 0))
        return FAIL(TR_EINVAL, "tensor-parallel loading (rank %d of %d) is not implemented yet",
                    opts->shard.rank, opts->shard.world);
    tr_model_t *m = calloc(1, sizeof(*m));
    if (!m) return FAIL(TR_ENOMEM, "out of memory");
    m->cfg = *cfg;
    m->ops = ops;
    m->layers = calloc((size_t)cfg->n_layers, sizeof(s_layer_t));
    if (!m->layers) {
        rc = FAIL(TR_ENOMEM, "out of memory");
        goto fail;
    }
    tr_tensor_view_t v;
    /* optional per-frequency rope factors (GGUF rope_freqs) */
    rc = s_find(src, "rope.freq_factors", &v, false, err, err_size);
    if (rc == TR_OK) {
        int32_t R = (cfg->rope.rot_dim ? cfg->rope.rot_dim : cfg->head_dim) / 2;
        if (s_numel(&v) != R || v.dtype != TR_DTYPE_F32) {
            rc = FAIL(TR_EPROTO, "%s: rope frequency factors must be %d f32 values", src->what, R);
            goto fail;
        }
        m->freq_factors = malloc((size_t)R * sizeof(float));
        if (!m->freq_factors) {
            rc = FAIL(TR_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(m->freq_factors, v.data, (size_t)R * sizeof(float));
        m->cfg.rope.freq_factors = m->freq_factors;
    } else if (rc != TR_ENOENT) {
        goto fail;
    }
    /* a backend that copies weights gets progress lines: a first pass adds up the bytes */
    const int32_t want = opts ? opts->progress : 0;
    if (tr_ops_device_memory(ops) && want >= 0) {
        m->sizing = true;
        rc = s_bind_all(m, src, err, err_size);
        m->sizing = false;
        if (rc) goto fail;
        if (want == 0 && m->up.total < (64u << 20)) m->up.total = 0;
        m->up.t0 = m->up.t_last = s_now_ns();
        m->up.tty = isatty(2);
    }
    if ((rc = s_bind_all(m, src, err, err_size))) goto fail;
    m->max_hidden = cfg->hidden_dim;
    if (cfg->moe_hidden_dim > m->max_hidden) m->max_hidden = cfg->moe_hidden_dim;
    if (cfg->shared_hidden_dim > m->max_hidden) m->max_hidden = cfg->shared_hidden_dim;
    *out = m;
    return TR_OK;
fail:
    m->n_cleanups = 0;   /* the loader still owns its mappings */
    tr_model_destroy(&m);
    return rc;
}

/* Binds every tensor the config needs, in file-independent order. */
static int s_bind_all(tr_model_t *m, const tr_weight_source_t *src, char *err,
                      size_t err_size) {
    const tr_model_config_t *cfg = &m->cfg;
    const int32_t V = cfg->vocab_size, dim = cfg->dim;
    int rc;
    /* embeddings: a tied checkpoint may store the table under either name (tinystories-656k
     * keeps only lm_head.weight) */
    tr_tensor_view_t v;
    const char *emb_name = "model.embed_tokens.weight";
    if (cfg->tie_embeddings && s_find(src, emb_name, &v, false, err, err_size) == TR_ENOENT) {
        emb_name = "lm_head.weight";
        if (s_find(src, emb_name, &v, false, err, err_size) == TR_ENOENT) {
            char a[160], b[160];
            return FAIL(TR_ENOENT, "%s: missing tensor %s (or %s: the embeddings are tied)",
                        src->what, s_shown(src, "model.embed_tokens.weight", a, sizeof(a)),
                        s_shown(src, "lm_head.weight", b, sizeof(b)));
        }
    }
    if ((rc = s_bind_mat(m, src, emb_name, V, dim, &m->embed, err, err_size))) return rc;
    if (cfg->tie_embeddings)
        m->lm_head = m->embed;
    else if ((rc = s_bind_mat(m, src, "lm_head.weight", V, dim, &m->lm_head, err, err_size)))
        return rc;
    if ((rc = s_bind_vec(m, src, "model.norm.weight", dim, &m->final_norm, err, err_size)))
        return rc;
    for (int32_t l = 0; l < cfg->n_layers; l++)
        if ((rc = s_bind_layer(m, src, l, err, err_size))) return rc;
    return TR_OK;
}

/* ---- KV cache ---- */

size_t tr_kv_cache_bytes(const tr_model_config_t *cfg, int32_t n_blocks, int32_t block_size) {
    return 2 * (size_t)cfg->n_layers * n_blocks * block_size * cfg->n_kv_heads * cfg->head_dim *
           sizeof(float);
}

int tr_kv_cache_init(tr_kv_cache_t *kv, tr_ops_t *ops, const tr_model_config_t *cfg,
                     int32_t n_blocks, int32_t block_size) {
    memset(kv, 0, sizeof(*kv));
    if (n_blocks <= 0 || block_size <= 0) return TR_EINVAL;
    size_t half = tr_kv_cache_bytes(cfg, n_blocks, block_size) / 2;
    kv->k = tr_ops_alloc(ops, half);
    kv->v = tr_ops_alloc(ops, half);
    if (!kv->k || !kv->v) {
        tr_kv_cache_fini(kv, ops);
        return TR_ENOMEM;
    }
    tr_ops_memset(ops, kv->k, 0, half);
    tr_ops_memset(ops, kv->v, 0, half);
    *kv = (tr_kv_cache_t){kv->k, kv->v, cfg->n_layers, n_blocks, block_size, cfg->n_kv_heads,
                          cfg->head_dim, -1};
    return TR_OK;
}

void tr_kv_cache_fini(tr_kv_cache_t *kv, tr_ops_t *ops) {
    tr_ops_free(ops, kv->k);
    tr_ops_free(ops, kv->v);
    memset(kv, 0, sizeof(*kv));
}

/* ---- scratch ---- */

static void s_scratch_free(tr_model_t *m) {
    s_scratch_t *s = &m->s;
    s_graphs_clear(m);   /* recorded steps point into this scratch */
    void *dev[] = {s->x, s->xb, s->q, s->k, s->v, s->att, s->hb, s->hb2, s->xe, s->ye,
                   s->router, s->route_w, s->sh_gate, s->route_ids, s->perm_w, s->perm_t,
                   s->xo, s->ints};
    for (size_t i = 0; i < TR_ARRAY_LEN(dev); i++) tr_ops_free(m->ops, dev[i]);
    if (s->h_ints != s->ints) tr_ops_host_free(m->ops, s->h_ints);
    free(s->h_ids), free(s->h_perm_t), free(s->h_count), free(s->h_w), free(s->h_perm_w);
    memset(s, 0, sizeof(*s));
}

/* Ints a step of T tokens, B sequences and n_table block-table entries lays out. */
static size_t s_ints_for(int32_t T, int32_t B, int32_t n_table) {
    return 3 * (size_t)T + 3 * (size_t)B + 1 + (size_t)n_table;
}

/* Grows the activations to T tokens, B sequences, n_table block-table entries. */
static int s_scratch_reserve(tr_model_t *m, int32_t T, int32_t B, int32_t n_table) {
    s_scratch_t *s = &m->s;
    const tr_model_config_t *c = &m->cfg;
    if (T <= s->cap_t && B <= s->cap_out && n_table <= s->cap_table) return TR_OK;
    T = T > s->cap_t ? T : s->cap_t;
    B = B > s->cap_out ? B : s->cap_out;
    n_table = n_table > s->cap_table ? n_table : s->cap_table;
    s_scratch_free(m);
    tr_ops_t *o = m->ops;
    const size_t f = sizeof(float), t = (size_t)T;
    const size_t qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    const size_t k = c->n_experts_used > 0 ? (size_t)c->n_experts_used : 1;
    const size_t E = c->n_experts > 0 ? (size_t)c->n_experts : 1;
    const size_t n_ints = s_ints_for(T, B, n_table);
    s->x = tr_ops_alloc(o, t * c->dim * f);
    s->xb = tr_ops_alloc(o, t * c->dim * f);
    s->q = tr_ops_alloc(o, t * qd * f);
    s->k = tr_ops_alloc(o, t * kvd * f);
    s->v = tr_ops_alloc(o, t * kvd * f);
    s->att = tr_ops_alloc(o, t * qd * f);
    s->hb = tr_ops_alloc(o, t * m->max_hidden * f);
    s->hb2 = tr_ops_alloc(o, t * m->max_hidden * f);
    s->xe = tr_ops_alloc(o, t * c->dim * f);
    s->ye = tr_ops_alloc(o, t * c->dim * f);
    s->router = tr_ops_alloc(o, t * E * f);
    s->route_w = tr_ops_alloc(o, t * k * f);
    s->route_ids = tr_ops_alloc(o, t * k * sizeof(int32_t));
    s->sh_gate = tr_ops_alloc(o, t * f);
    s->perm_w = tr_ops_alloc(o, t * k * f);
    s->perm_t = tr_ops_alloc(o, t * k * sizeof(int32_t));
    s->xo = tr_ops_alloc(o, (size_t)B * c->dim * f);
    s->ints = tr_ops_alloc(o, n_ints * sizeof(int32_t));
    /* host backends read the staging buffer in place; device backends copy it in one go */
    s->h_ints = tr_ops_device_memory(o) ? tr_ops_host_alloc(o, n_ints * sizeof(int32_t))
                                        : s->ints;
    s->h_ids = malloc(t * k * sizeof(int32_t));
    s->h_perm_t = malloc(t * k * sizeof(int32_t));
    s->h_count = malloc((E + 1) * sizeof(int32_t));
    s->h_w = malloc(t * k * f);
    s->h_perm_w = malloc(t * k * f);
    if (!s->x || !s->xb || !s->q || !s->k || !s->v || !s->att || !s->hb || !s->hb2 || !s->xe ||
        !s->ye || !s->router || !s->route_w || !s->route_ids || !s->sh_gate || !s->perm_w ||
        !s->perm_t || !s->xo || !s->ints || !s->h_ints || !s->h_ids || !s->h_perm_t ||
        !s->h_count || !s->h_w || !s->h_perm_w) {
        s_scratch_free(m);
        return TR_ENOMEM;
    }
    s->cap_t = T;
    s->cap_out = B;
    s->cap_table = n_table;
    s->cap_ints = n_ints;
    return TR_OK;
}

/* Decode batches of up to this many sequences are padded to a power of two and recorded. */
static int32_t s_bucket(int32_t B) {
    int32_t b = 1;
    while (b < B) b <<= 1;
    return b;
}

int tr_model_reserve(tr_model_t *m, int32_t max_tokens, int32_t max_seqs, int32_t max_blocks) {
    if (!m || max_tokens < 1 || max_seqs < 1 || max_blocks < 1) return TR_EINVAL;
    int32_t T = max_tokens, B = max_seqs;
    if (m->graph_mode && B <= S_MAX_BUCKET) {   /* a padded decode step has bucket(B) rows */
        B = s_bucket(B);
        T = T > B ? T : B;
    }
    if ((int64_t)B * max_blocks > INT32_MAX / 4) return TR_EINVAL;
    int rc = s_scratch_reserve(m, T, B, B * max_blocks);
    if (rc || !m->graph_mode || B > S_MAX_BUCKET || B <= m->logits_g_rows) return rc;
    s_graphs_clear(m);   /* recorded steps write their logits there */
    tr_ops_free(m->ops, m->logits_g);
    m->logits_g = tr_ops_alloc(m->ops, (size_t)B * m->cfg.vocab_size * sizeof(float));
    m->logits_g_rows = m->logits_g ? B : 0;
    return m->logits_g ? TR_OK : TR_ENOMEM;
}

/* ---- forward ---- */

#define TRY(x)                                                                             \
    do {                                                                                   \
        int rc_ = (x);                                                                     \
        if (rc_) return rc_;                                                               \
    } while (0)

static tr_matmul_params_t s_mm(float *y, const float *x, const s_mat_t *w, const float *bias,
                               int32_t M, int accumulate) {
    return (tr_matmul_params_t){.y = y, .x = x, .w = w->data, .w_dtype = w->dtype, .bias = bias,
                                .M = M, .N = w->rows, .K = w->cols, .accumulate = accumulate,
                                .w_packed = w->packed};
}

static int s_matmul(tr_ops_t *o, float *y, const float *x, const s_mat_t *w, const float *bias,
                    int32_t M, int accumulate) {
    tr_matmul_params_t p = s_mm(y, x, w, bias, M, accumulate);
    return tr_ops_matmul(o, &p);
}

/* out (T, dim) = SwiGLU MLP of x (T, dim); accumulate: out += instead of = */
static int s_mlp(tr_model_t *m, const s_mlp_t *p, float *out, const float *x, int32_t T,
                 int accumulate) {
    tr_ops_t *o = m->ops;
    tr_matmul_params_t gu[2] = {s_mm(m->s.hb, x, &p->gate, NULL, T, 0),
                                s_mm(m->s.hb2, x, &p->up, NULL, T, 0)};
    TRY(tr_ops_matmul_batch(o, gu, 2));
    TRY(tr_ops_swiglu(o, m->s.hb, m->s.hb, m->s.hb2, (int64_t)T * p->gate.rows));
    return s_matmul(o, out, m->s.hb, &p->down, NULL, T, accumulate);
}

/* x += MoE(xb): route, then each expert on the tokens that chose it, scatter-added with the
 * routing weights; plus the (gated) shared expert. */
static int s_moe(tr_model_t *m, const s_layer_t *L, int32_t T) {
    tr_ops_t *o = m->ops;
    const tr_model_config_t *c = &m->cfg;
    s_scratch_t *s = &m->s;
    const int32_t E = c->n_experts, k = c->n_experts_used, dim = c->dim;
    TRY(s_matmul(o, s->router, s->xb, &L->router, NULL, T, 0));
    TRY(tr_ops_moe_route(o, s->route_ids, s->route_w, s->router, T, E, k, c->norm_topk_prob));
    TRY(tr_ops_to_host(o, s->h_ids, s->route_ids, (size_t)T * k * sizeof(int32_t)));
    TRY(tr_ops_to_host(o, s->h_w, s->route_w, (size_t)T * k * sizeof(float)));
    /* counting sort of (token, weight) pairs by expert */
    int32_t *start = s->h_count;
    memset(start, 0, ((size_t)E + 1) * sizeof(int32_t));
    for (int32_t i = 0; i < T * k; i++) start[s->h_ids[i] + 1]++;
    for (int32_t e = 0; e < E; e++) start[e + 1] += start[e];
    for (int32_t i = 0; i < T * k; i++) {
        int32_t e = s->h_ids[i], at = start[e]++;
        s->h_perm_t[at] = i / k;
        s->h_perm_w[at] = s->h_w[i];
    }
    for (int32_t e = E; e > 0; e--) start[e] = start[e - 1];
    start[0] = 0;
    TRY(tr_ops_to_device(o, s->perm_t, s->h_perm_t, (size_t)T * k * sizeof(int32_t)));
    TRY(tr_ops_to_device(o, s->perm_w, s->h_perm_w, (size_t)T * k * sizeof(float)));
    for (int32_t e = 0; e < E; e++) {
        int32_t n = start[e + 1] - start[e];
        if (n == 0) continue;
        TRY(tr_ops_gather_rows(o, s->xe, s->xb, s->perm_t + start[e], n, dim));
        TRY(s_mlp(m, &L->experts[e], s->ye, s->xe, n, 0));
        TRY(tr_ops_add_rows(o, s->x, s->ye, s->perm_t + start[e], s->perm_w + start[e], n, dim));
    }
    if (c->shared_hidden_dim > 0) {
        TRY(s_mlp(m, &L->shared, s->ye, s->xb, T, 0));
        const float *scale = NULL;
        if (c->shared_expert_gate) {
            TRY(s_matmul(o, s->sh_gate, s->xb, &L->shared_gate, NULL, T, 0));
            TRY(tr_ops_sigmoid(o, s->sh_gate, T));
            scale = s->sh_gate;
        }
        TRY(tr_ops_add_rows(o, s->x, s->ye, NULL, scale, T, dim));
    }
    return TR_OK;
}

int32_t tr_batch_n_logits(const tr_batch_t *batch) {
    int32_t n = 0;
    for (int32_t b = 0; b < batch->n_seqs; b++)
        if (batch->n_tokens[b] > 0 && (!batch->want_logits || batch->want_logits[b])) n++;
    return n;
}

/* Offsets of a step's inputs in the ints buffer (s_ints_for counts the same). */
static s_step_t s_layout(int32_t T, int32_t B, int32_t n_out, int32_t max_blocks,
                         int32_t decode_ctx) {
    s_step_t st = {.T = T, .B = B, .n_out = n_out, .max_blocks = max_blocks,
                   .decode_ctx = decode_ctx};
    st.o_tokens = 0;
    st.o_pos = (size_t)T;
    st.o_slots = 2 * (size_t)T;
    st.o_start = 3 * (size_t)T;
    st.o_spos = st.o_start + (size_t)B + 1;
    st.o_table = st.o_spos + (size_t)B;
    st.o_out = st.o_table + (size_t)B * max_blocks;
    st.n_ints = st.o_out + (size_t)B;
    return st;
}

/* Host staging may still be the source of the previous step's copy: wait before reuse. */
static int s_stage_begin(tr_model_t *m) {
    return m->s.h_ints != m->s.ints ? tr_ops_sync(m->ops) : TR_OK;
}

/* Sends the staged ints to the backend: one async copy (none on host backends). */
static int s_stage_send(tr_model_t *m, const s_step_t *st) {
    s_scratch_t *s = &m->s;
    if (s->h_ints == s->ints) return TR_OK;
    return tr_ops_to_device_async(m->ops, s->ints, s->h_ints, st->n_ints * sizeof(int32_t));
}

/* Position p of sequence b: its KV slot through the block table, or -1 with a log line. */
static int32_t s_slot(const tr_model_t *m, const tr_kv_cache_t *kv, const tr_batch_t *batch,
                      int32_t b, int32_t t, int32_t p) {
    const int32_t *table = batch->block_tables + (size_t)b * batch->max_blocks;
    const int32_t j = p / kv->block_size;
    if (batch->tokens[t] < 0 || batch->tokens[t] >= m->cfg.vocab_size) {
        TR_ERROR("model forward: token id %d out of range [0, %d)", batch->tokens[t],
                 m->cfg.vocab_size);
        return -1;
    }
    if (j >= batch->max_blocks || table[j] < 0 || table[j] >= kv->n_blocks) {
        TR_ERROR("model forward: sequence %d position %d has no valid block", b, p);
        return -1;
    }
    return table[j] * kv->block_size + p % kv->block_size;
}

/* Stages a batch as it is: T tokens, B sequences, the caller's block-table width. */
static int s_stage(tr_model_t *m, const tr_kv_cache_t *kv, const tr_batch_t *batch, int32_t T,
                   s_step_t *st) {
    const int32_t B = batch->n_seqs;
    *st = s_layout(T, B, tr_batch_n_logits(batch), batch->max_blocks, 0);
    TRY(s_stage_begin(m));
    int32_t *h = m->s.h_ints;
    int32_t t = 0, r = 0;
    h[st->o_start] = 0;
    for (int32_t b = 0; b < B; b++) {
        for (int32_t i = 0; i < batch->n_tokens[b]; i++, t++) {
            int32_t p = batch->start_pos[b] + i, slot = s_slot(m, kv, batch, b, t, p);
            if (slot < 0) return TR_EINVAL;
            h[st->o_pos + t] = p;
            h[st->o_slots + t] = slot;
        }
        h[st->o_start + b + 1] = t;
        h[st->o_spos + b] = batch->start_pos[b];
        if (batch->n_tokens[b] > 0 && (!batch->want_logits || batch->want_logits[b]))
            h[st->o_out + r++] = t - 1;
    }
    memcpy(h + st->o_tokens, batch->tokens, (size_t)T * sizeof(int32_t));
    memcpy(h + st->o_table, batch->block_tables,
           (size_t)B * batch->max_blocks * sizeof(int32_t));
    return s_stage_send(m, st);
}

/* Stages a pure-decode batch padded to Bp sequences with tables ctx / block_size wide:
 * padding sequences read token 0 at position 0 and write their K/V to the pad block; the
 * wanted logits rows come first, the padding's rows (ignored) after them. */
static int s_stage_padded(tr_model_t *m, const tr_kv_cache_t *kv, const tr_batch_t *batch,
                          int32_t Bp, int32_t ctx, s_step_t *st) {
    const int32_t B = batch->n_seqs, bs = kv->block_size, mb = (ctx + bs - 1) / bs;
    *st = s_layout(Bp, Bp, Bp, mb, ctx);
    TRY(s_stage_begin(m));
    int32_t *h = m->s.h_ints, r = 0;
    for (int32_t b = 0; b < Bp; b++) {
        const bool real = b < B;
        const int32_t p = real ? batch->start_pos[b] : 0;
        int32_t slot = real ? s_slot(m, kv, batch, b, b, p) : kv->pad_block * bs;
        if (slot < 0) return TR_EINVAL;
        h[st->o_tokens + b] = real ? batch->tokens[b] : 0;
        h[st->o_pos + b] = p;
        h[st->o_slots + b] = slot;
        h[st->o_start + b] = b;
        h[st->o_spos + b] = p;
        int32_t *row = h + st->o_table + (size_t)b * mb;
        const int32_t *src = real ? batch->block_tables + (size_t)b * batch->max_blocks : NULL;
        for (int32_t j = 0; j < mb; j++)
            row[j] = src && j < batch->max_blocks ? src[j] : kv->pad_block;
        if (real && (!batch->want_logits || batch->want_logits[b])) h[st->o_out + r++] = b;
    }
    h[st->o_start + Bp] = Bp;
    for (int32_t i = r; i < Bp; i++) h[st->o_out + i] = 0;
    return s_stage_send(m, st);
}

/* The network over a staged step: every op reads its inputs from backend memory, so the
 * same call can be recorded as a graph (decode_ctx set) and replayed with new inputs. */
static int s_network(tr_model_t *m, const tr_kv_cache_t *kv, const s_step_t *st,
                     float *logits) {
    const tr_model_config_t *c = &m->cfg;
    tr_ops_t *o = m->ops;
    s_scratch_t *s = &m->s;
    const int32_t T = st->T, dim = c->dim, H = c->n_heads, Hk = c->n_kv_heads;
    const int32_t D = c->head_dim, qd = H * D, kvd = Hk * D, bs = kv->block_size;
    const int32_t *I = s->ints, *h = s->h_ints;
    TRY(tr_ops_embed(o, s->x, m->embed.data, m->embed.dtype, I + st->o_tokens, T, dim,
                     c->vocab_size));
    const size_t layer_kv = (size_t)kv->n_blocks * bs * kvd;
    tr_attn_params_t ap = {.out = s->att, .q = s->q, .seq_start = I + st->o_start,
                           .seq_pos = I + st->o_spos, .block_table = I + st->o_table,
                           .n_seqs = st->B, .max_blocks = st->max_blocks,
                           .n_blocks = kv->n_blocks, .n_heads = H, .n_kv_heads = Hk,
                           .head_dim = D, .block_size = bs, .sliding_window = c->sliding_window,
                           .scale = 1.0f / sqrtf((float)D), .host_seq_start = h + st->o_start,
                           .host_seq_pos = h + st->o_spos, .decode_ctx = st->decode_ctx};
    for (int32_t l = 0; l < c->n_layers; l++) {
        const s_layer_t *L = &m->layers[l];
        float *kc = kv->k + l * layer_kv, *vc = kv->v + l * layer_kv;
        /* attention */
        TRY(tr_ops_rmsnorm(o, s->xb, s->x, L->attn_norm, T, dim, c->norm_eps));
        tr_matmul_params_t qkv[3] = {s_mm(s->q, s->xb, &L->wq, L->bq, T, 0),
                                     s_mm(s->k, s->xb, &L->wk, L->bk, T, 0),
                                     s_mm(s->v, s->xb, &L->wv, L->bv, T, 0)};
        TRY(tr_ops_matmul_batch(o, qkv, 3));
        if (c->qk_norm) {
            TRY(tr_ops_rmsnorm(o, s->q, s->q, L->q_norm, T, qd, c->norm_eps));
            TRY(tr_ops_rmsnorm(o, s->k, s->k, L->k_norm, T, kvd, c->norm_eps));
        }
        TRY(tr_ops_rope(o, &c->rope, s->q, H, s->k, Hk, I + st->o_pos, T, D));
        TRY(tr_ops_kv_store(o, kc, vc, s->k, s->v, I + st->o_slots, T, Hk, D));
        ap.k_cache = kc;
        ap.v_cache = vc;
        TRY(tr_ops_attention(o, &ap));
        TRY(s_matmul(o, s->x, s->att, &L->wo, L->bo, T, 1));   /* x += att Wo^T */
        /* feed-forward */
        TRY(tr_ops_rmsnorm(o, s->xb, s->x, L->ffn_norm, T, dim, c->norm_eps));
        if (L->moe)
            TRY(s_moe(m, L, T));
        else
            TRY(s_mlp(m, &L->mlp, s->x, s->xb, T, 1));          /* x += MLP(xb) */
    }
    if (st->n_out == 0) return TR_OK;
    /* only the rows that want logits go through the final norm and the head */
    TRY(tr_ops_gather_rows(o, s->xo, s->x, I + st->o_out, st->n_out, dim));
    TRY(tr_ops_rmsnorm(o, s->xo, s->xo, m->final_norm, st->n_out, dim, c->norm_eps));
    return s_matmul(o, logits, s->xo, &m->lm_head, NULL, st->n_out, 0);
}

/* ---- decode graphs ---- */

static void s_graphs_clear(tr_model_t *m) {
    for (int32_t i = 0; i < m->n_graphs; i++) tr_ops_graph_destroy(m->ops, &m->graphs[i].g);
    m->n_graphs = 0;
    m->gstats.n_graphs = 0;
}

int tr_model_enable_graphs(tr_model_t *m, bool record) {
    if (!m) return TR_EINVAL;
    for (int32_t l = 0; l < m->cfg.n_layers; l++)   /* routing waits for the host */
        if (tr_model_layer_is_moe(&m->cfg, l)) return TR_ENOTSUP;
    if (record && !tr_ops_graphs_supported(m->ops)) return TR_ENOTSUP;
    m->graph_mode = record ? 1 : 2;
    m->gstats.on = true;
    return TR_OK;
}

void tr_model_graph_stats(const tr_model_t *m, tr_model_graph_stats_t *out) {
    *out = m->gstats;
}

/* Records the staged step as the graph for (Bp, ctx). A failure turns recording off for
 * good, with one warning: the step itself has already run eagerly. */
static void s_graph_record(tr_model_t *m, const tr_kv_cache_t *kv, const s_step_t *st,
                           int32_t Bp, int32_t ctx) {
    tr_ops_graph_t *g = NULL;
    int rc = tr_ops_graph_begin(m->ops);
    if (rc == TR_OK) {
        int net = s_network(m, kv, st, m->logits_g);
        rc = tr_ops_graph_end(m->ops, net ? NULL : &g);
        if (net) rc = net;
    }
    if (rc == TR_OK && m->n_graphs == m->cap_graphs) {
        int32_t cap = m->cap_graphs ? 2 * m->cap_graphs : 16;
        s_graph_t *p = realloc(m->graphs, (size_t)cap * sizeof(*p));
        if (p) m->graphs = p, m->cap_graphs = cap;
        else rc = TR_ENOMEM;
    }
    if (rc != TR_OK || !g) {
        tr_ops_graph_destroy(m->ops, &g);
        TR_WARN("decode graphs off: recording a step of %d sequences failed (%s); every step "
                "runs eagerly from now on", Bp, tr_strerror(rc ? rc : TR_ERR));
        s_graphs_clear(m);
        m->graph_mode = 0;
        m->gstats.on = false;
        return;
    }
    m->graphs[m->n_graphs++] = (s_graph_t){Bp, ctx, kv->k, g};
    m->gstats.recorded++;
    m->gstats.n_graphs = m->n_graphs;
}

/* A pure-decode step through the padded layout: replay the graph of its (batch bucket,
 * context bucket), or run it eagerly and then record that graph. */
static int s_forward_graph(tr_model_t *m, const tr_kv_cache_t *kv, const tr_batch_t *batch,
                           float *logits) {
    const tr_model_config_t *c = &m->cfg;
    const int32_t B = batch->n_seqs, Bp = s_bucket(B), bs = kv->block_size;
    int32_t need = 1;
    for (int32_t b = 0; b < B; b++)
        need = batch->start_pos[b] + 1 > need ? batch->start_pos[b] + 1 : need;
    /* context bucket: a power of two from S_MIN_CTX_BUCKET, at most the model's context
     * (rounded to blocks) unless this step already goes past it */
    int32_t cap = need > c->max_seq_len ? need : c->max_seq_len;
    cap = (cap + bs - 1) / bs * bs;
    int32_t ctx = S_MIN_CTX_BUCKET;
    while (ctx < need) ctx <<= 1;
    if (ctx > cap) ctx = cap;
    TRY(s_scratch_reserve(m, Bp, Bp, Bp * ((ctx + bs - 1) / bs)));
    if (Bp > m->logits_g_rows) {
        s_graphs_clear(m);
        tr_ops_free(m->ops, m->logits_g);
        m->logits_g = tr_ops_alloc(m->ops, (size_t)Bp * c->vocab_size * sizeof(float));
        m->logits_g_rows = m->logits_g ? Bp : 0;
        if (!m->logits_g) return TR_ENOMEM;
    }
    s_step_t st;
    TRY(s_stage_padded(m, kv, batch, Bp, ctx, &st));
    s_graph_t *g = NULL;
    for (int32_t i = 0; m->graph_mode == 1 && i < m->n_graphs; i++)
        if (m->graphs[i].bucket == Bp && m->graphs[i].ctx == ctx) g = &m->graphs[i];
    if (g && g->kv_k != kv->k) {   /* recorded on another KV pool: record again */
        tr_ops_graph_destroy(m->ops, &g->g);
        *g = m->graphs[--m->n_graphs];
        g = NULL;
    }
    int rc = g ? tr_ops_graph_launch(m->ops, g->g) : TR_ENOENT;
    if (rc == TR_OK) {
        m->gstats.replayed++;
    } else {
        if (rc == TR_AGAIN) s_graphs_clear(m);   /* backend scratch moved: all are stale */
        else if (rc != TR_ENOENT) return rc;
        TRY(s_network(m, kv, &st, m->logits_g));
        m->gstats.eager++;
        if (m->graph_mode == 1) s_graph_record(m, kv, &st, Bp, ctx);
    }
    const int32_t n_out = tr_batch_n_logits(batch);
    return tr_ops_copy(m->ops, logits, m->logits_g,
                       (size_t)n_out * c->vocab_size * sizeof(float));
}

int tr_model_forward(tr_model_t *m, const tr_kv_cache_t *kv, const tr_batch_t *batch,
                     float *logits) {
    const tr_model_config_t *c = &m->cfg;
    const int32_t B = batch->n_seqs, Hk = c->n_kv_heads, D = c->head_dim;
    if (B < 0 || (B > 0 && (!batch->n_tokens || !batch->start_pos || !batch->block_tables)) ||
        batch->max_blocks <= 0 || !kv || !kv->k || kv->n_layers != c->n_layers ||
        kv->n_kv_heads != Hk || kv->head_dim != D) {
        TR_ERROR("model forward: bad batch or a KV cache of another shape");
        return TR_EINVAL;
    }
    int64_t T64 = 0;
    bool decode = B > 0;
    for (int32_t b = 0; b < B; b++) {
        if (batch->n_tokens[b] < 0 || batch->start_pos[b] < 0) return TR_EINVAL;
        T64 += batch->n_tokens[b];
        decode = decode && batch->n_tokens[b] == 1;
    }
    if (T64 > INT32_MAX / 8) return TR_EINVAL;
    const int32_t T = (int32_t)T64, n_out = tr_batch_n_logits(batch);
    if (T == 0) return TR_OK;
    if (!batch->tokens || (n_out > 0 && !logits)) return TR_EINVAL;
    if (m->graph_mode && decode && n_out > 0 && B <= S_MAX_BUCKET && kv->pad_block >= 0 &&
        kv->pad_block < kv->n_blocks)
        return s_forward_graph(m, kv, batch, logits);
    TRY(s_scratch_reserve(m, T, B, B * batch->max_blocks));
    s_step_t st;
    TRY(s_stage(m, kv, batch, T, &st));
    return s_network(m, kv, &st, logits);
}
