/*  tests/models/test_model_graphs.c - the device-backend paths of models/model.c, on the CPU.
 *
 *  Decode graphs pad a pure-decode step to a batch bucket and widen its block tables to a
 *  context bucket (models/model.h). CUDA records that layout; here it runs unrecorded
 *  (tr_model_enable_graphs(m, false)) on the reference backend, whose ops compute each row
 *  on its own, so the logits must equal those of the plain steps bit for bit, whatever the
 *  padding. A "device-like" reference backend (device_memory set, weights copied by
 *  upload_weights) takes the staging copy path and the weight-upload progress lines, and
 *  must give the same logits too. White-box: it copies the ref vtable (kernels/ops_impl.h).
 *
 *  B = sequences, V = vocab.                                                           */
#include <stdlib.h>
#include <string.h>

#include "kernels/ops_impl.h"
#include "models/model.h"
#include "tests/tap.h"

#define DATA "tests/data/models/"
#define NSEQ 5
#define PER 8          /* blocks per sequence */
#define BS 16

/* ---- a reference backend that pretends its memory is a device's ---- */

static tr_ops_vtable_t s_devlike_vt;
static size_t s_uploaded;

static int s_upload(tr_ops_t *self, const void *host, size_t bytes, void **out) {
    (void)self;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) return TR_ENOMEM;
    memcpy(p, host, bytes);
    s_uploaded += bytes;
    *out = p;
    return TR_OK;
}

static void s_release(tr_ops_t *self, void *dev) {
    (void)self;
    free(dev);
}

static tr_ops_t *s_devlike(void) {
    tr_ops_t *o = tr_ops_ref();
    s_devlike_vt = *o->vt;
    s_devlike_vt.device_memory = 1;
    s_devlike_vt.upload_weights = s_upload;
    s_devlike_vt.release_weights = s_release;
    o->vt = &s_devlike_vt;
    return o;
}

/* ---- one scenario: prefill NSEQ prompts, then decode steps over changing subsets ---- */

typedef struct {
    tr_model_t *m;
    tr_kv_cache_t kv;
} s_side_t;

/* Runs the batch on both sides; the logits must be identical. */
static int s_step(s_side_t *a, s_side_t *b, const tr_batch_t *bt, int32_t V, float *la,
                  float *lb, const char *what) {
    int32_t rows = tr_batch_n_logits(bt);
    memset(la, 0, (size_t)NSEQ * V * sizeof(float));
    memset(lb, 0xff, (size_t)NSEQ * V * sizeof(float));
    int ra = tr_model_forward(a->m, &a->kv, bt, la);
    int rb = tr_model_forward(b->m, &b->kv, bt, lb);
    if (ra != TR_OK || rb != TR_OK) {
        ok(0, "%s: forward (%d, %d)", what, ra, rb);
        return -1;
    }
    return memcmp(la, lb, (size_t)rows * V * sizeof(float)) == 0 ? 0 : 1;
}

static void s_scenario(const char *path, tr_ops_t *oa, tr_ops_t *ob, bool pad,
                       const tr_model_load_opts_t *lo_b, const char *name) {
    s_side_t a = {0}, b = {0};
    char err[512] = "";
    int rc = tr_model_load(&a.m, path, oa, NULL, err, sizeof err);
    if (!rc) rc = tr_model_load(&b.m, path, ob, lo_b, err, sizeof err);
    if (!ok(rc == TR_OK, "%s: load %s %s", name, path, err)) goto out;
    const tr_model_config_t *c = tr_model_config(a.m);
    const int32_t V = c->vocab_size;
    if (pad) {
        ok(tr_model_enable_graphs(b.m, true) == TR_ENOTSUP,
           "%s: recording graphs on %s is TR_ENOTSUP", name, tr_ops_name(ob));
        ok(tr_model_enable_graphs(b.m, false) == TR_OK, "%s: padding on", name);
        ok(tr_model_reserve(b.m, 64, NSEQ, (c->max_seq_len + BS - 1) / BS) == TR_OK,
           "%s: reserve", name);
    }
    rc = tr_kv_cache_init(&a.kv, oa, c, NSEQ * PER + 1, BS);
    if (!rc) rc = tr_kv_cache_init(&b.kv, ob, c, NSEQ * PER + 1, BS);
    if (!ok(rc == TR_OK, "%s: kv caches", name)) goto out;
    b.kv.pad_block = NSEQ * PER;   /* the last block: no sequence owns it */
    /* sequence s owns blocks s*PER .. s*PER+PER-1, in reverse order */
    int32_t tables[NSEQ][PER];
    for (int32_t s = 0; s < NSEQ; s++)
        for (int32_t j = 0; j < PER; j++) tables[s][j] = s * PER + PER - 1 - j;
    int32_t len[NSEQ] = {11, 5, 20, 1, 7}, pos[NSEQ] = {0}, last[NSEQ];
    float *la = malloc((size_t)NSEQ * V * sizeof(float));
    float *lb = malloc((size_t)NSEQ * V * sizeof(float));
    int32_t toks[64], n_tok[NSEQ], start[NSEQ], tab[NSEQ * PER];
    uint8_t want[NSEQ];
    /* prefill, all at once (not padded: not a decode step) */
    int32_t t = 0;
    for (int32_t s = 0; s < NSEQ; s++) {
        for (int32_t i = 0; i < len[s]; i++) toks[t++] = 1 + (s * 37 + i * 11) % (V - 1);
        n_tok[s] = len[s];
        start[s] = 0;
        memcpy(tab + s * PER, tables[s], sizeof tables[s]);
    }
    tr_batch_t bt = {.n_seqs = NSEQ, .n_tokens = n_tok, .tokens = toks, .start_pos = start,
                     .block_tables = tab, .max_blocks = PER};
    int diff = s_step(&a, &b, &bt, V, la, lb, name);
    for (int32_t s = 0; s < NSEQ; s++) {
        pos[s] = len[s];
        const float *row = la + (size_t)s * V;
        last[s] = 0;
        for (int32_t v = 1; v < V; v++) last[s] = row[v] > row[last[s]] ? v : last[s];
    }
    /* decode steps: subsets of 5 (bucket 8), 3 (bucket 4), 1, 2, and some without logits */
    static const uint8_t subsets[][NSEQ] = {
        {1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}, {0, 0, 0, 1, 0}, {0, 1, 0, 0, 1}, {1, 1, 1, 1, 1},
        {1, 0, 1, 1, 1}, {1, 1, 1, 1, 1}, {0, 0, 1, 0, 0}, {1, 1, 1, 1, 1}, {1, 1, 0, 1, 1},
    };
    int steps = 0, padded = 0, bad = diff != 0;
    for (int rep = 0; rep < 3 && diff >= 0; rep++)
        for (size_t k = 0; k < TR_ARRAY_LEN(subsets) && diff >= 0; k++) {
            int32_t n = 0, sel[NSEQ];
            for (int32_t s = 0; s < NSEQ; s++) {
                if (!subsets[k][s] || pos[s] >= PER * BS) continue;
                sel[n] = s;
                toks[n] = last[s];
                n_tok[n] = 1;
                start[n] = pos[s];
                want[n] = (uint8_t)(rep != 1 || (k + s) % 3 != 0);   /* some rows unwanted */
                memcpy(tab + n * PER, tables[s], sizeof tables[s]);
                n++;
            }
            tr_batch_t d = {.n_seqs = n, .n_tokens = n_tok, .tokens = toks, .start_pos = start,
                            .block_tables = tab, .max_blocks = PER, .want_logits = want};
            diff = s_step(&a, &b, &d, V, la, lb, name);
            bad += diff != 0;
            steps++;
            padded += n > 0 && tr_batch_n_logits(&d) > 0;   /* no logits: nothing to pad */
            int32_t r = 0;
            for (int32_t i = 0; i < n; i++) {
                int32_t s = sel[i];
                pos[s]++;
                if (!want[i]) continue;   /* keeps its token: fed again, like a re-decode */
                const float *row = la + (size_t)r++ * V;
                last[s] = 0;
                for (int32_t v = 1; v < V; v++) last[s] = row[v] > row[last[s]] ? v : last[s];
            }
        }
    ok(bad == 0, "%s: %s: logits identical over the prefill and %d decode steps", name, path,
       steps);
    tr_model_graph_stats_t g;
    tr_model_graph_stats(b.m, &g);
    if (pad)
        ok(g.on && g.recorded == 0 && g.replayed == 0 && g.eager == (uint64_t)padded,
           "%s: every decode step with logits went through the padded layout (%llu of %d)",
           name, (unsigned long long)g.eager, padded);
    free(la), free(lb);
    tr_kv_cache_fini(&a.kv, oa);
    tr_kv_cache_fini(&b.kv, ob);
out:
    tr_model_destroy(&a.m);
    tr_model_destroy(&b.m);
}

int main(void) {
    plan_lazy();
    tr_ops_t *ref = tr_ops_ref(), *ref2 = tr_ops_ref(), *dev = s_devlike();
    size_t fr = 0, tot = 0;
    int rc = tr_ops_memory_info(ref, &fr, &tot);
    ok(rc == TR_OK && fr > 0 && fr <= tot,
       "memory_info on the host: %zu of %zu MiB free", fr >> 20, tot >> 20);
    ok(!tr_ops_graphs_supported(ref) && tr_ops_graph_begin(ref) == TR_ENOTSUP,
       "ref records no graphs");
    void *h = tr_ops_host_alloc(ref, 100);
    ok(h && ((uintptr_t)h & 63) == 0, "host_alloc on the host: aligned memory");
    tr_ops_host_free(ref, h);
    for (int i = 0; i < 2; i++) {
        const char *path = i ? DATA "tinystories-656k" : DATA "stories260K.bin";
        s_scenario(path, ref, ref2, true, NULL, "padded decode");
        s_uploaded = 0;
        tr_model_load_opts_t lo = {.progress = 1};
        s_scenario(path, ref, dev, false, &lo, "device-like staging");
        ok(s_uploaded > 0, "device-like: weights were copied (%zu bytes)", s_uploaded);
        s_scenario(path, ref, dev, true, &lo, "device-like padded decode");
    }
    tr_ops_destroy(&dev);
    tr_ops_destroy(&ref2);
    tr_ops_destroy(&ref);
    return done_testing();
}
