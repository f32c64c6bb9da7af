/*  models/loader_llama2c.c - llama2.c checkpoints (Karpathy's run.c format), mmap'd.
 *
 *  Legacy v0: seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 *  seq_len; a negative vocab_size means an unshared classifier), then f32 tensors: token
 *  embedding, every layer's attention norm, wq, wk, wv, wo, ffn norm, w1, w2, w3 (each
 *  group for all layers in turn), the final norm, the unused freq_cis_real/imag tables
 *  (seq_len * head_size / 2 each), and the classifier when unshared.
 *  Version 1: magic "ak42" (0x616b3432), int32 version = 1, the same seven int32, a
 *  shared-classifier byte, zero padding to 256 bytes; then all norms first (attention norms,
 *  ffn norms, final norm), the embedding, wq..wo, w1, w2, w3, and the classifier if unshared.
 *  Rope is llama2.c's: interleaved pairs, theta 10000; RMSNorm eps 1e-5; BOS 1, EOS 2. The
 *  file size must be exactly what the header implies, so truncation and foreign files are
 *  reported rather than read past.                                                   */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/model_impl.h"

#define FAIL(status, ...) tr_model_fail(err, err_size, (status), __VA_ARGS__)

#define TR_LLAMA2C_MAGIC 0x616b3432u

typedef struct {
    char name[96];
    tr_tensor_view_t v;
} s_entry_t;

typedef struct {
    void *map;
    size_t size;
    s_entry_t *entries;
    int32_t n_entries;
} s_l2c_t;

static void s_free(void *arg) {
    s_l2c_t *f = arg;
    if (f->map) munmap(f->map, f->size);
    free(f->entries);
    free(f);
}

static int s_find(void *ctx, const char *name, tr_tensor_view_t *out, char *err,
                  size_t err_size) {
    s_l2c_t *f = ctx;
    for (int32_t i = 0; i < f->n_entries; i++)
        if (strcmp(f->entries[i].name, name) == 0) {
            *out = f->entries[i].v;
            return TR_OK;
        }
    return TR_ENOENT;
}

/* Appends n_layers tensors named by fmt (or one when per_layer is 0) of shape (rows, cols)
 * at *off, advancing it. */
static void s_add(s_l2c_t *f, size_t *off, const char *fmt, int32_t n_layers, int per_layer,
                  int64_t rows, int64_t cols) {
    for (int32_t l = 0; l < (per_layer ? n_layers : 1); l++) {
        s_entry_t *e = &f->entries[f->n_entries++];
        snprintf(e->name, sizeof(e->name), fmt, l);
        e->v = (tr_tensor_view_t){(const char *)f->map + *off, TR_DTYPE_F32, cols ? 2 : 1,
                                  {rows, cols}};
        if (!cols) e->v.shape[1] = 0;
        *off += (size_t)rows * (cols ? cols : 1) * sizeof(float);
    }
}

int tr_model_load_llama2c(tr_model_t **out, const char *path, tr_ops_t *ops,
                          const tr_model_load_opts_t *opts, char *err, size_t err_size) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FAIL(errno == ENOENT ? TR_ENOENT : TR_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return FAIL(TR_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 28) {
        close(fd);
        return FAIL(TR_EPROTO, "%s: %zu bytes is too short for a llama2.c checkpoint", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return FAIL(TR_EIO, "%s: mmap: %s", path, strerror(errno));
    s_l2c_t *f = calloc(1, sizeof(*f));
    if (!f) {
        munmap(map, size);
        return FAIL(TR_ENOMEM, "out of memory");
    }
    f->map = map;
    f->size = size;
    int rc;
    const uint8_t *p = map;
    uint32_t magic;
    memcpy(&magic, p, 4);
    int version = 0;
    int32_t h[7];
    bool shared;
    size_t off;
    if (magic == TR_LLAMA2C_MAGIC) {
        int32_t ver;
        memcpy(&ver, p + 4, 4);
        if (ver != 1) {
            rc = FAIL(TR_EINVAL, "%s: llama2.c format version %d is not supported (0 and 1 are)",
                      path, ver);
            goto fail;
        }
        if (size < 256) {
            rc = FAIL(TR_EPROTO, "%s: truncated header", path);
            goto fail;
        }
        version = 1;
        memcpy(h, p + 8, sizeof(h));
        shared = p[36] != 0;
        off = 256;
    } else {
        memcpy(h, p, sizeof(h));
        shared = h[5] > 0;
        h[5] = h[5] < 0 ? -h[5] : h[5];
        off = 28;
    }
    const int32_t dim = h[0], hidden = h[1], L = h[2], nh = h[3], nkv = h[4], V = h[5], seq = h[6];
    if (dim <= 0 || hidden <= 0 || L <= 0 || nh <= 0 || nkv <= 0 || V <= 0 || seq <= 0 ||
        dim > (1 << 16) || hidden > (1 << 18) || L > 1024 || V > (1 << 22) || seq > (1 << 24) ||
        nh > dim || dim % nh || nh % nkv || (dim / nh) % 2) {
        rc = FAIL(TR_EPROTO, "%s: not a llama2.c checkpoint (header dim %d hidden %d layers %d"
                  " heads %d kv heads %d vocab %d seq_len %d)", path, dim, hidden, L, nh, nkv, V, seq);
        goto fail;
    }
    const int64_t hs = dim / nh, kvd = (int64_t)nkv * hs;
    uint64_t floats = (uint64_t)V * dim * (shared ? 1 : 2) + (uint64_t)L * (2 * dim +
                      (uint64_t)dim * dim * 2 + 2 * (uint64_t)dim * kvd + 3 * (uint64_t)dim * hidden) + dim;
    if (version == 0) floats += (uint64_t)seq * hs;   /* freq_cis_real + imag */
    if (off + floats * 4 != size) {
        rc = FAIL(TR_EPROTO, "%s: the header (dim %d, %d layers, vocab %d) implies %llu bytes,"
                  " the file has %zu (%s)", path, dim, L, V, (unsigned long long)(off + floats * 4),
                  size, off + floats * 4 > size ? "truncated" : "trailing data or another format");
        goto fail;
    }
    f->entries = calloc((size_t)L * 9 + 4, sizeof(s_entry_t));
    if (!f->entries) {
        rc = FAIL(TR_ENOMEM, "out of memory");
        goto fail;
    }
    if (version == 1) {
        s_add(f, &off, "model.layers.%d.input_layernorm.weight", L, 1, dim, 0);
        s_add(f, &off, "model.layers.%d.post_attention_layernorm.weight", L, 1, dim, 0);
        s_add(f, &off, "model.norm.weight", L, 0, dim, 0);
        s_add(f, &off, "model.embed_tokens.weight", L, 0, V, dim);
    } else {
        s_add(f, &off, "model.embed_tokens.weight", L, 0, V, dim);
        s_add(f, &off, "model.layers.%d.input_layernorm.weight", L, 1, dim, 0);
    }
    s_add(f, &off, "model.layers.%d.self_attn.q_proj.weight", L, 1, dim, dim);
    s_add(f, &off, "model.layers.%d.self_attn.k_proj.weight", L, 1, kvd, dim);
    s_add(f, &off, "model.layers.%d.self_attn.v_proj.weight", L, 1, kvd, dim);
    s_add(f, &off, "model.layers.%d.self_attn.o_proj.weight", L, 1, dim, dim);
    if (version == 0) s_add(f, &off, "model.layers.%d.post_attention_layernorm.weight", L, 1, dim, 0);
    s_add(f, &off, "model.layers.%d.mlp.gate_proj.weight", L, 1, hidden, dim);
    s_add(f, &off, "model.layers.%d.mlp.down_proj.weight", L, 1, dim, hidden);
    s_add(f, &off, "model.layers.%d.mlp.up_proj.weight", L, 1, hidden, dim);
    if (version == 0) {
        s_add(f, &off, "model.norm.weight", L, 0, dim, 0);
        off += (size_t)seq * hs * sizeof(float);   /* freq_cis tables, unused */
    }
    if (!shared) s_add(f, &off, "lm_head.weight", L, 0, V, dim);

    tr_model_config_t cfg;
    tr_model_config_defaults(&cfg);
    cfg.arch = TR_ARCH_LLAMA;
    cfg.dim = dim;
    cfg.hidden_dim = hidden;
    cfg.n_layers = L;
    cfg.n_heads = nh;
    cfg.n_kv_heads = nkv;
    cfg.head_dim = (int32_t)hs;
    cfg.vocab_size = V;
    cfg.max_seq_len = seq;
    cfg.norm_eps = 1e-5f;
    cfg.rope.theta = 10000.0f;
    cfg.rope.layout = TR_ROPE_INTERLEAVED;
    cfg.tie_embeddings = shared;
    cfg.bos_id = 1;
    cfg.eos_id = 2;
    tr_weight_source_t src = {f, path, s_find, NULL};
    rc = tr_model_build(out, &cfg, &src, ops, opts, err, err_size);
    if (rc == TR_OK && tr_model_on_destroy(*out, s_free, f) == TR_OK) return TR_OK;
    if (rc == TR_OK) {
        tr_model_destroy(out);
        rc = FAIL(TR_ENOMEM, "out of memory");
    }
fail:
    s_free(f);
    return rc;
}
