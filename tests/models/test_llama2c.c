/*  tests/models/test_llama2c.c - the bundled llama2.c model, stories260K.bin.
 *
 *  Golden: greedy decoding from BOS reproduces llama2.c's own output token for token
 *  (stories260K_greedy_ids.txt: BOS + 200 argmax ids) and, decoded with tok512.bin the way
 *  run.c decodes, byte for byte (stories260K_greedy_expected.txt, from llama2.c's
 *  test_all.py). Run on the CPU backend at every SIMD level and on the reference backend.
 *  Consistency: the same logits whether the 40-token prompt is one prefill, 7-token chunks
 *  or single-token decodes, and whether sequences run alone or batched together with
 *  scrambled KV blocks of size 1, 5 or 16 (max abs difference < 1e-4).               */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "tests/tap.h"

#define DATA "tests/data/models/"

static int32_t s_golden[256], s_n_golden;

static int s_read_golden(void) {
    FILE *f = fopen(DATA "stories260K_greedy_ids.txt", "r");
    if (!f) return 0;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#') continue;
        for (char *p = strtok(line, " \n"); p && s_n_golden < 256; p = strtok(NULL, " \n"))
            s_golden[s_n_golden++] = atoi(p);
    }
    fclose(f);
    return s_n_golden == 201;
}

/* run.c's decoder: tok512.bin is int32 max_len, then per token f32 score, int32 len, bytes */
static char *s_decode(const int32_t *ids, int32_t n) {
    FILE *f = fopen(DATA "tok512.bin", "rb");
    if (!f) return NULL;
    static char vocab[512][64];
    int32_t max_len, len;
    float score;
    if (fread(&max_len, 4, 1, f) != 1) return NULL;
    for (int i = 0; i < 512; i++) {
        if (fread(&score, 4, 1, f) != 1 || fread(&len, 4, 1, f) != 1 || len < 0 || len > 63 ||
            fread(vocab[i], 1, (size_t)len, f) != (size_t)len)
            return NULL;
        vocab[i][len] = 0;
    }
    fclose(f);
    char *out = calloc(1, 65536);
    size_t o = 0;
    for (int32_t i = 1; i < n; i++) {
        const char *piece = vocab[ids[i]];
        if (ids[i - 1] == 1 && piece[0] == ' ') piece++;
        unsigned char byte;
        char one[2] = {0};
        if (sscanf(piece, "<0x%02hhX>", &byte) == 1) {
            one[0] = (char)byte;
            piece = one;
        }
        /* run.c's safe_printf skips single non-printable bytes */
        if (piece[0] && !piece[1] && !(piece[0] >= 32 || piece[0] == '\n' || piece[0] == '\t' || piece[0] == '\r'))
            continue;
        o += (size_t)snprintf(out + o, 65536 - o, "%s", piece);
    }
    return out;
}

/* Greedy continuation of BOS for n steps, one token per forward. */
static int s_greedy(tr_model_t *m, tr_ops_t *ops, int32_t *ids, int32_t n) {
    const tr_model_config_t *c = tr_model_config(m);
    tr_kv_cache_t kv;
    if (tr_kv_cache_init(&kv, ops, c, 16, 16)) return -1;
    int32_t table[16];
    for (int i = 0; i < 16; i++) table[i] = 15 - i;
    float *logits = malloc(c->vocab_size * sizeof(float));
    tr_sample_params_t sp = {.temperature = 0};
    ids[0] = 1;
    int rc = 0;
    for (int32_t p = 0; p < n && !rc; p++) {
        int32_t one = 1;
        tr_batch_t b = {.n_seqs = 1, .n_tokens = &one, .tokens = &ids[p], .start_pos = &p,
                        .block_tables = table, .max_blocks = 16};
        rc = tr_model_forward(m, &kv, &b, logits);
        if (!rc) rc = tr_ops_sample(ops, &ids[p + 1], NULL, logits, 1, c->vocab_size, &sp);
    }
    free(logits);
    tr_kv_cache_fini(&kv, ops);
    return rc;
}

/* Logits at positions fed in chunks of `chunk` for each of B prompts, run batched or not,
 * with block size bs and scrambled blocks. out: (B, n_prompt, V) for fed positions ends. */
typedef struct {
    int32_t chunk, bs, batched;
} s_mode_t;

static int s_logits(tr_model_t *m, tr_ops_t *ops, int32_t B, const int32_t *prompts, int32_t T,
                    s_mode_t mode, float *out) {
    const int32_t V = tr_model_config(m)->vocab_size;
    const int32_t per = (T + mode.bs - 1) / mode.bs, n_blocks = per * B + 2;
    tr_kv_cache_t kv;
    if (tr_kv_cache_init(&kv, ops, tr_model_config(m), n_blocks, mode.bs)) return -1;
    int32_t *tables = malloc((size_t)B * per * sizeof(int32_t));
    for (int32_t i = 0; i < B * per; i++) tables[i] = (i * 7 + 3) % (B * per);   /* scrambled */
    float *logits = malloc((size_t)B * V * sizeof(float));
    int32_t *n = calloc(B, 4), *start = calloc(B, 4), *toks = malloc((size_t)B * T * 4);
    int rc = 0;
    for (int32_t fed = 0; fed < T && !rc; fed += mode.chunk) {
        int32_t k = mode.chunk < T - fed ? mode.chunk : T - fed;
        for (int32_t b0 = 0; b0 < B && !rc; b0 += mode.batched ? B : 1) {
            int32_t nb = mode.batched ? B : 1, t = 0;
            for (int32_t i = 0; i < nb; i++) {
                n[i] = k;
                start[i] = fed;
                memcpy(toks + t, prompts + (size_t)(b0 + i) * T + fed, k * 4);
                t += k;
            }
            tr_batch_t b = {.n_seqs = nb, .n_tokens = n, .tokens = toks, .start_pos = start,
                            .block_tables = tables + (size_t)b0 * per, .max_blocks = per};
            rc = tr_model_forward(m, &kv, &b, logits);
            for (int32_t i = 0; i < nb && !rc; i++)
                memcpy(out + ((size_t)(b0 + i) * T + fed + k - 1) * V, logits + (size_t)i * V, V * 4);
        }
    }
    free(tables), free(logits), free(n), free(start), free(toks);
    tr_kv_cache_fini(&kv, ops);
    return rc;
}

int main(void) {
    plan_lazy();
    if (!ok(s_read_golden(), "read %d golden ids", s_n_golden)) return done_testing();
    FILE *f = fopen(DATA "stories260K_greedy_expected.txt", "rb");
    static char expected[4096];
    size_t n_expected = f ? fread(expected, 1, sizeof(expected) - 1, f) : 0;
    if (f) fclose(f);
    ok(n_expected == 464, "read the expected text (%zu bytes)", n_expected);
    char *golden_text = s_decode(s_golden, s_n_golden);
    ok(golden_text && strcmp(golden_text, expected) == 0,
       "the golden ids decode to llama2.c's expected text (checks this test's decoder)");
    free(golden_text);

    for (int level = TR_SIMD_AUTO; level <= TR_SIMD_AVX512 + 1; level++) {
        tr_ops_t *ops;
        if (level == TR_SIMD_AVX512 + 1) {
            ops = tr_ops_ref();
        } else if (level > TR_SIMD_AUTO && !tr_simd_supported(level)) {
            skip("cpu-%s not supported here", tr_simd_name(level));
            continue;
        } else {
            tr_ops_cpu_opts_t o = {.n_threads = 2, .simd = level};
            ops = tr_ops_cpu_new(&o);
        }
        char err[256] = "";
        tr_model_t *m = NULL;
        int rc = tr_model_load(&m, DATA "stories260K.bin", ops, NULL, err, sizeof(err));
        if (!ok(rc == TR_OK, "load stories260K.bin on %s %s", tr_ops_name(ops), err)) {
            tr_ops_destroy(&ops);
            continue;
        }
        const tr_model_config_t *c = tr_model_config(m);
        if (level == TR_SIMD_AUTO)
            ok(c->dim == 64 && c->hidden_dim == 172 && c->n_layers == 5 && c->n_heads == 8 &&
                   c->n_kv_heads == 4 && c->vocab_size == 512 && c->max_seq_len == 512 &&
                   c->tie_embeddings && c->rope.layout == TR_ROPE_INTERLEAVED,
               "config from the header: dim 64, hidden 172, 5 layers, 8/4 heads, vocab 512, tied");
        int32_t ids[256];
        rc = s_greedy(m, ops, ids, 200);
        int first_diff = -1;
        for (int i = 0; i < 201 && first_diff < 0; i++)
            if (ids[i] != s_golden[i]) first_diff = i;
        ok(rc == TR_OK && first_diff < 0, "%s: 200 greedy tokens equal llama2.c's (first diff at %d)",
           tr_ops_name(ops), first_diff);
        char *text = s_decode(ids, 201);
        ok(text && strcmp(text, expected) == 0, "%s: decoded text equals llama2.c's output byte for byte",
           tr_ops_name(ops));
        free(text);
        tr_model_destroy(&m);
        ok(m == NULL, "destroy nulls the model");
        tr_ops_destroy(&ops);
    }

    /* consistency of prefill / chunked / decode / batched, blocks scrambled */
    tr_ops_t *ops = tr_ops_cpu();
    tr_model_t *m = NULL;
    char err[256];
    tr_model_load(&m, DATA "stories260K.bin", ops, NULL, err, sizeof(err));
    const int32_t B = 3, T = 40, V = 512;
    int32_t prompts[3 * 40];
    for (int i = 0; i < B * T; i++) prompts[i] = i % T == 0 ? 1 : s_golden[(i * 37) % 200 + 1];
    static const s_mode_t modes[] = {{40, 16, 0}, {7, 16, 0}, {1, 16, 0}, {40, 16, 1},
                                     {7, 5, 1}, {1, 1, 1}, {3, 5, 0}};
    float *ref = calloc((size_t)B * T * V, 4), *got = calloc((size_t)B * T * V, 4);
    s_logits(m, ops, B, prompts, T, (s_mode_t){1, 16, 0}, ref);   /* every position */
    for (size_t i = 0; i < TR_ARRAY_LEN(modes); i++) {
        memset(got, 0, (size_t)B * T * V * 4);
        int rc = s_logits(m, ops, B, prompts, T, modes[i], got);
        double worst = 0;
        int compared = 0;
        for (int32_t b = 0; b < B; b++)
            for (int32_t t = 0; t < T; t++) {
                if (got[((size_t)b * T + t) * V] == 0 && got[((size_t)b * T + t) * V + 1] == 0) continue;
                compared++;
                for (int32_t v = 0; v < V; v++) {
                    double d = fabs(got[((size_t)b * T + t) * V + v] - ref[((size_t)b * T + t) * V + v]);
                    worst = d > worst ? d : worst;
                }
            }
        ok(rc == TR_OK && compared > 0 && worst < 1e-4,
           "chunk %d, block size %d, %s: %d logits rows match decode-by-decode (max diff %.1e)",
           modes[i].chunk, modes[i].bs, modes[i].batched ? "batched" : "alone", compared, worst);
    }
    /* bad batches are refused */
    tr_kv_cache_t kv;
    tr_kv_cache_init(&kv, ops, tr_model_config(m), 2, 4);
    int32_t one = 1, pos = 0, tok = 600, table[1] = {0};
    float logits[512];
    tr_batch_t bad = {.n_seqs = 1, .n_tokens = &one, .tokens = &tok, .start_pos = &pos,
                      .block_tables = table, .max_blocks = 1};
    ok(tr_model_forward(m, &kv, &bad, logits) == TR_EINVAL, "token id past the vocabulary is TR_EINVAL");
    tok = 1;
    pos = 4;
    ok(tr_model_forward(m, &kv, &bad, logits) == TR_EINVAL, "position past the block table is TR_EINVAL");
    pos = 0;
    table[0] = 2;
    ok(tr_model_forward(m, &kv, &bad, logits) == TR_EINVAL, "block id past the cache is TR_EINVAL");
    tr_kv_cache_fini(&kv, ops);
    free(ref), free(got);
    tr_model_destroy(&m);
    tr_ops_destroy(&ops);
    return done_testing();
}
