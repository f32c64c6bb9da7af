/*  kernels/ops.c - the public face of kernels/ops.h: argument checks, then the vtable.
 *
 *  Every shape and pointer check lives here, once, so backends start from valid input and a
 *  bad call is a TR_EINVAL with a log line rather than a crash. Also holds the dtype table,
 *  the rope frequency helper and the sampler's counter-based RNG that every backend shares.
 *  Thread-safe as far as the backend instance is (one caller per instance).          */
#include "kernels/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/ops_impl.h"
#include "runtime/log.h"

/* ---- dtypes ---- */

static const struct {
    const char *name;
    int32_t block_elems;
    size_t block_bytes;
} s_dtypes[] = {
#define TR_DTYPE(E, n, be, bb, nmse) {#n, be, bb},
#include "kernels/dtypes.def"
#undef TR_DTYPE
};

const char *tr_dtype_name(tr_dtype_t t) {
    return (unsigned)t < TR_DTYPE_COUNT ? s_dtypes[t].name : "?";
}

int tr_dtype_from_name(const char *name) {
    for (int i = 0; name && i < TR_DTYPE_COUNT; i++)
        if (strcmp(name, s_dtypes[i].name) == 0) return i;
    return -1;
}

int32_t tr_dtype_block_elems(tr_dtype_t t) {
    return (unsigned)t < TR_DTYPE_COUNT ? s_dtypes[t].block_elems : 0;
}

size_t tr_dtype_block_bytes(tr_dtype_t t) {
    return (unsigned)t < TR_DTYPE_COUNT ? s_dtypes[t].block_bytes : 0;
}

size_t tr_dtype_row_bytes(tr_dtype_t t, int64_t n) {
    if ((unsigned)t >= TR_DTYPE_COUNT || n < 0 || n % s_dtypes[t].block_elems) return 0;
    return (size_t)(n / s_dtypes[t].block_elems) * s_dtypes[t].block_bytes;
}

/* ---- rope frequencies (shared by every backend so they agree bit for bit) ---- */

void tr_rope_inv_freq(const tr_rope_t *rope, int32_t head_dim, float *inv_freq) {
    int32_t R = rope->rot_dim > 0 ? rope->rot_dim : head_dim;
    for (int32_t i = 0; i < R / 2; i++) {
        /* HF: 1 / base ** (arange(0, R, 2).float() / R), each step rounded to f32 */
        float expo = (float)(2 * i) / (float)R;
        float f = 1.0f / (float)pow((double)rope->theta, (double)expo);
        if (rope->scaling == TR_ROPE_SCALING_LLAMA3 && rope->factor > 0) {
            double lo_wl = rope->original_max_pos / (double)rope->low_freq_factor;
            double hi_wl = rope->original_max_pos / (double)rope->high_freq_factor;
            double wl = 2.0 * M_PI / f;
            if (wl > lo_wl) {
                f = (float)(f / rope->factor);
            } else if (wl >= hi_wl) {
                double smooth = (rope->original_max_pos / wl - rope->low_freq_factor) /
                                (rope->high_freq_factor - rope->low_freq_factor);
                f = (float)((1.0 - smooth) * f / rope->factor + smooth * f);
            }
        }
        if (rope->freq_factors) f = f / rope->freq_factors[i];
        inv_freq[i] = f;
    }
}

/* ---- sampling RNG: splitmix64 of (seed, counter) ---- */

double tr_sample_uniform(uint64_t seed, uint64_t counter) {
    uint64_t z = seed ^ (counter * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    for (int i = 0; i < 2; i++) {
        z += 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
    }
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);   /* 53 bits */
}

/* ---- backends ---- */

__attribute__((weak)) tr_ops_t *tr_ops_cuda(int device) {
    (void)device;
    return NULL;   /* replaced by kernels/cuda/ when it is built */
}

__attribute__((weak)) int tr_ops_cuda_probe(int device, char *why, size_t why_size) {
    (void)device;
    if (why && why_size)
        snprintf(why, why_size, "no usable GPU: this build has no CUDA backend (scons cuda=0, "
                                "or nvcc was not found)");
    return TR_ENOTSUP;
}

void tr_ops_destroy(tr_ops_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_ops_t *self = *self_p;
    assert(self->tag == TR_OPS_TAG);
    self->tag = TR_OPS_DEAD;
    self->vt->destroy(self);
    *self_p = NULL;
}

const char *tr_ops_name(const tr_ops_t *ops) {
    return ops ? ops->vt->name : "(null)";
}

int32_t tr_ops_threads(const tr_ops_t *ops) {
    return ops && ops->vt->threads ? ops->vt->threads(ops) : 1;
}

int tr_ops_set_threads(tr_ops_t *ops, int32_t n) {
    if (!ops || n < 0) return TR_EINVAL;
    return ops->vt->set_threads ? ops->vt->set_threads(ops, n) : TR_OK;
}

void tr_ops_idle(tr_ops_t *ops) {
    if (ops && ops->vt->idle) ops->vt->idle(ops);
}

/* ---- argument checks ---- */

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            TR_ERROR("%s: invalid argument: %s", __func__, #cond);                      \
            return TR_EINVAL;                                                           \
        }                                                                               \
    } while (0)
#define VALID(ops) ((ops) && (ops)->tag == TR_OPS_TAG)
#define IMPL(ops, fn) CHECK((ops)->vt->fn != NULL)

/* ---- memory ---- */

void *tr_ops_alloc(tr_ops_t *ops, size_t bytes) {
    if (!VALID(ops)) return NULL;
    if (ops->vt->alloc) return ops->vt->alloc(ops, bytes);
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    return p;
}

void tr_ops_free(tr_ops_t *ops, void *p) {
    if (!p) return;
    if (VALID(ops) && ops->vt->free)
        ops->vt->free(ops, p);
    else
        free(p);
}

int tr_ops_to_device(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    CHECK(VALID(ops) && (bytes == 0 || (dst && src)));
    if (ops->vt->to_device) return ops->vt->to_device(ops, dst, src, bytes);
    if (bytes) memmove(dst, src, bytes);
    return TR_OK;
}

int tr_ops_to_host(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    CHECK(VALID(ops) && (bytes == 0 || (dst && src)));
    if (ops->vt->to_host) return ops->vt->to_host(ops, dst, src, bytes);
    if (bytes) memmove(dst, src, bytes);
    return TR_OK;
}

int tr_ops_memset(tr_ops_t *ops, void *dst, int value, size_t bytes) {
    CHECK(VALID(ops) && (bytes == 0 || dst));
    if (ops->vt->memset) return ops->vt->memset(ops, dst, value, bytes);
    if (bytes) memset(dst, value, bytes);
    return TR_OK;
}

int tr_ops_device_memory(const tr_ops_t *ops) {
    return VALID(ops) && ops->vt->device_memory;
}

int tr_ops_memory_info(tr_ops_t *ops, size_t *free_bytes, size_t *total_bytes) {
    CHECK(VALID(ops) && free_bytes && total_bytes);
    if (ops->vt->memory_info) return ops->vt->memory_info(ops, free_bytes, total_bytes);
    long avail = sysconf(_SC_AVPHYS_PAGES), total = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (avail < 0 || total <= 0 || page <= 0) return TR_ENOTSUP;
    *free_bytes = (size_t)avail * (size_t)page;
    *total_bytes = (size_t)total * (size_t)page;
    return TR_OK;
}

void *tr_ops_host_alloc(tr_ops_t *ops, size_t bytes) {
    if (!VALID(ops)) return NULL;
    if (ops->vt->host_alloc) return ops->vt->host_alloc(ops, bytes);
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64)) return NULL;
    return p;
}

void tr_ops_host_free(tr_ops_t *ops, void *p) {
    if (!p) return;
    if (VALID(ops) && ops->vt->host_free)
        ops->vt->host_free(ops, p);
    else
        free(p);
}

int tr_ops_to_device_async(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    CHECK(VALID(ops) && (bytes == 0 || (dst && src)));
    if (ops->vt->to_device_async) return ops->vt->to_device_async(ops, dst, src, bytes);
    return tr_ops_to_device(ops, dst, src, bytes);
}

int tr_ops_to_host_async(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    CHECK(VALID(ops) && (bytes == 0 || (dst && src)));
    if (ops->vt->to_host_async) return ops->vt->to_host_async(ops, dst, src, bytes);
    return tr_ops_to_host(ops, dst, src, bytes);
}

int tr_ops_copy(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    CHECK(VALID(ops) && (bytes == 0 || (dst && src)));
    if (ops->vt->copy) return ops->vt->copy(ops, dst, src, bytes);
    if (bytes) memmove(dst, src, bytes);
    return TR_OK;
}

int tr_ops_sync(tr_ops_t *ops) {
    CHECK(VALID(ops));
    return ops->vt->sync ? ops->vt->sync(ops) : TR_OK;
}

int tr_ops_upload_weights(tr_ops_t *ops, const void *host, size_t bytes, void **out) {
    CHECK(VALID(ops) && host && out);
    if (ops->vt->upload_weights) return ops->vt->upload_weights(ops, host, bytes, out);
    *out = (void *)host;
    return TR_OK;
}

void tr_ops_release_weights(tr_ops_t *ops, void *dev) {
    if (VALID(ops) && dev && ops->vt->release_weights) ops->vt->release_weights(ops, dev);
}

int tr_ops_pack_weights(tr_ops_t *ops, const void *w, tr_dtype_t dtype, int32_t rows,
                        int32_t cols, void **out) {
    CHECK(VALID(ops) && w && out);
    *out = NULL;
    CHECK((unsigned)dtype < TR_DTYPE_COUNT && rows > 0 && cols > 0);
    CHECK(cols % tr_dtype_block_elems(dtype) == 0);
    return ops->vt->pack_weights ? ops->vt->pack_weights(ops, w, dtype, rows, cols, out) : TR_OK;
}

/* ---- graphs ---- */

int tr_ops_graphs_supported(const tr_ops_t *ops) {
    return VALID(ops) && ops->vt->graph_begin != NULL;
}

int tr_ops_graph_begin(tr_ops_t *ops) {
    CHECK(VALID(ops));
    return ops->vt->graph_begin ? ops->vt->graph_begin(ops) : TR_ENOTSUP;
}

int tr_ops_graph_end(tr_ops_t *ops, tr_ops_graph_t **out) {
    if (out) *out = NULL;
    CHECK(VALID(ops));
    return ops->vt->graph_end ? ops->vt->graph_end(ops, out) : TR_ENOTSUP;
}

int tr_ops_graph_launch(tr_ops_t *ops, tr_ops_graph_t *g) {
    CHECK(VALID(ops) && g);
    return ops->vt->graph_launch ? ops->vt->graph_launch(ops, g) : TR_ENOTSUP;
}

void tr_ops_graph_destroy(tr_ops_t *ops, tr_ops_graph_t **g_p) {
    if (!g_p || !*g_p) return;
    if (VALID(ops) && ops->vt->graph_destroy) ops->vt->graph_destroy(ops, *g_p);
    *g_p = NULL;
}

/* ---- ops ---- */

int tr_ops_matmul(tr_ops_t *ops, const tr_matmul_params_t *p) {
    CHECK(VALID(ops) && p);
    IMPL(ops, matmul);
    CHECK(p->y && p->x && p->w);
    CHECK((unsigned)p->w_dtype < TR_DTYPE_COUNT);
    CHECK(p->M >= 0 && p->N > 0 && p->K > 0);
    CHECK(p->K % tr_dtype_block_elems(p->w_dtype) == 0);
    if (p->M == 0) return TR_OK;
    return ops->vt->matmul(ops, p);
}

int tr_ops_matmul_batch(tr_ops_t *ops, const tr_matmul_params_t *p, int32_t n) {
    CHECK(VALID(ops) && p && n >= 0);
    IMPL(ops, matmul);
    for (int32_t i = 0; i < n; i++) {
        CHECK(p[i].y && p[i].x && p[i].w);
        CHECK((unsigned)p[i].w_dtype < TR_DTYPE_COUNT);
        CHECK(p[i].M >= 0 && p[i].N > 0 && p[i].K > 0);
        CHECK(p[i].K % tr_dtype_block_elems(p[i].w_dtype) == 0);
    }
    if (ops->vt->matmul_batch) return ops->vt->matmul_batch(ops, p, n);
    for (int32_t i = 0; i < n; i++) {
        int rc = p[i].M ? ops->vt->matmul(ops, &p[i]) : TR_OK;
        if (rc) return rc;
    }
    return TR_OK;
}

int tr_ops_rmsnorm(tr_ops_t *ops, float *y, const float *x, const float *w, int32_t T,
                   int32_t D, float eps) {
    CHECK(VALID(ops) && y && x && w && T >= 0 && D > 0 && eps >= 0);
    IMPL(ops, rmsnorm);
    return T ? ops->vt->rmsnorm(ops, y, x, w, T, D, eps) : TR_OK;
}

int tr_ops_swiglu(tr_ops_t *ops, float *y, const float *gate, const float *up, int64_t n) {
    CHECK(VALID(ops) && y && gate && up && n >= 0);
    IMPL(ops, swiglu);
    return n ? ops->vt->swiglu(ops, y, gate, up, n) : TR_OK;
}

int tr_ops_softmax(tr_ops_t *ops, float *x, int32_t rows, int32_t n) {
    CHECK(VALID(ops) && x && rows >= 0 && n > 0);
    IMPL(ops, softmax);
    return rows ? ops->vt->softmax(ops, x, rows, n) : TR_OK;
}

int tr_ops_sigmoid(tr_ops_t *ops, float *x, int64_t n) {
    CHECK(VALID(ops) && x && n >= 0);
    IMPL(ops, sigmoid);
    return n ? ops->vt->sigmoid(ops, x, n) : TR_OK;
}

int tr_ops_add_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                    const float *scale, int32_t rows, int32_t D) {
    CHECK(VALID(ops) && y && x && rows >= 0 && D > 0);
    IMPL(ops, add_rows);
    return rows ? ops->vt->add_rows(ops, y, x, idx, scale, rows, D) : TR_OK;
}

int tr_ops_gather_rows(tr_ops_t *ops, float *y, const float *x, const int32_t *idx,
                       int32_t rows, int32_t D) {
    CHECK(VALID(ops) && y && x && idx && rows >= 0 && D > 0);
    IMPL(ops, gather_rows);
    return rows ? ops->vt->gather_rows(ops, y, x, idx, rows, D) : TR_OK;
}

int tr_ops_embed(tr_ops_t *ops, float *y, const void *table, tr_dtype_t dtype,
                 const int32_t *ids, int32_t T, int32_t D, int32_t V) {
    CHECK(VALID(ops) && y && table && ids && T >= 0 && D > 0 && V > 0);
    CHECK((unsigned)dtype < TR_DTYPE_COUNT && D % tr_dtype_block_elems(dtype) == 0);
    IMPL(ops, embed);
    return T ? ops->vt->embed(ops, y, table, dtype, ids, T, D, V) : TR_OK;
}

int tr_ops_rope(tr_ops_t *ops, const tr_rope_t *rope, float *q, int32_t Hq, float *k,
                int32_t Hk, const int32_t *pos, int32_t T, int32_t D) {
    CHECK(VALID(ops) && rope && q && pos && Hq > 0 && (!k || Hk > 0) && T >= 0 && D > 0);
    CHECK(rope->theta > 0 && rope->rot_dim >= 0 && rope->rot_dim <= D);
    CHECK((rope->rot_dim ? rope->rot_dim : D) % 2 == 0);
    CHECK(rope->layout == TR_ROPE_NEOX || rope->layout == TR_ROPE_INTERLEAVED);
    CHECK(rope->scaling == TR_ROPE_SCALING_NONE || rope->factor > 0);
    CHECK(rope->scaling != TR_ROPE_SCALING_LLAMA3 ||
          (rope->original_max_pos > 0 && rope->high_freq_factor > rope->low_freq_factor));
    IMPL(ops, rope);
    return T ? ops->vt->rope(ops, rope, q, Hq, k, Hk, pos, T, D) : TR_OK;
}

int tr_ops_kv_store(tr_ops_t *ops, float *k_cache, float *v_cache, const float *k,
                    const float *v, const int32_t *slots, int32_t T, int32_t Hk, int32_t D) {
    CHECK(VALID(ops) && k_cache && v_cache && k && v && slots && T >= 0 && Hk > 0 && D > 0);
    IMPL(ops, kv_store);
    return T ? ops->vt->kv_store(ops, k_cache, v_cache, k, v, slots, T, Hk, D) : TR_OK;
}

int tr_ops_attention(tr_ops_t *ops, const tr_attn_params_t *p) {
    CHECK(VALID(ops) && p);
    IMPL(ops, attention);
    CHECK(p->out && p->q && p->k_cache && p->v_cache && p->seq_start && p->seq_pos);
    CHECK(p->block_table && p->n_seqs >= 0 && p->max_blocks > 0 && p->n_blocks > 0);
    CHECK(p->n_heads > 0 && p->n_kv_heads > 0 && p->n_heads % p->n_kv_heads == 0);
    CHECK(p->head_dim > 0 && p->block_size > 0 && p->sliding_window >= 0);
    CHECK(p->decode_ctx >= 0);
    if (p->n_seqs == 0) return TR_OK;
    /* device memory cannot be read here: check the host copies when the caller gave them,
     * and leave block ids to the backend's kernels */
    const int dev = ops->vt->device_memory;
    const int32_t *start = dev ? p->host_seq_start : p->seq_start;
    const int32_t *spos = dev ? p->host_seq_pos : p->seq_pos;
    if (!start || !spos) return ops->vt->attention(ops, p);
    CHECK(start[0] == 0);
    for (int32_t b = 0; b < p->n_seqs; b++) {
        int32_t n = start[b + 1] - start[b];
        CHECK(n >= 0 && spos[b] >= 0);
        CHECK(p->decode_ctx == 0 || (n == 1 && spos[b] < p->decode_ctx));
        /* every position the sequence reaches must have a block */
        int64_t last = (int64_t)spos[b] + n - 1;
        CHECK(last / p->block_size < p->max_blocks);
        for (int64_t j = 0; !dev && n > 0 && j <= last / p->block_size; j++) {
            int32_t blk = p->block_table[(int64_t)b * p->max_blocks + j];
            CHECK(blk >= 0 && blk < p->n_blocks);
        }
    }
    return ops->vt->attention(ops, p);
}

int tr_ops_moe_route(tr_ops_t *ops, int32_t *ids, float *weights, const float *logits,
                     int32_t T, int32_t E, int32_t k, int32_t renormalize) {
    CHECK(VALID(ops) && ids && weights && logits && T >= 0 && E > 0 && k > 0 && k <= E);
    IMPL(ops, moe_route);
    return T ? ops->vt->moe_route(ops, ids, weights, logits, T, E, k, renormalize) : TR_OK;
}

int tr_ops_sample(tr_ops_t *ops, int32_t *tokens, float *logprobs, const float *logits,
                  int32_t B, int32_t V, const tr_sample_params_t *params) {
    CHECK(VALID(ops) && tokens && logits && params && B >= 0 && V > 0);
    IMPL(ops, sample);
    for (int32_t b = 0; b < B; b++) {
        CHECK(params[b].n_prev >= 0 && (params[b].n_prev == 0 || params[b].prev_tokens));
        CHECK(!isnan(params[b].temperature) && !isnan(params[b].top_p));
        CHECK(!isnan(params[b].min_p) && !isnan(params[b].repetition_penalty));
    }
    return B ? ops->vt->sample(ops, tokens, logprobs, logits, B, V, params) : TR_OK;
}

int tr_ops_quantize(tr_ops_t *ops, void *dst, tr_dtype_t dtype, const float *src, int64_t n) {
    CHECK(VALID(ops) && dst && src && n >= 0 && (unsigned)dtype < TR_DTYPE_COUNT);
    CHECK(n % tr_dtype_block_elems(dtype) == 0);
    IMPL(ops, quantize);
    return n ? ops->vt->quantize(ops, dst, dtype, src, n) : TR_OK;
}

int tr_ops_dequantize(tr_ops_t *ops, float *dst, const void *src, tr_dtype_t dtype,
                      int64_t n) {
    CHECK(VALID(ops) && dst && src && n >= 0 && (unsigned)dtype < TR_DTYPE_COUNT);
    CHECK(n % tr_dtype_block_elems(dtype) == 0);
    IMPL(ops, dequantize);
    return n ? ops->vt->dequantize(ops, dst, src, dtype, n) : TR_OK;
}
