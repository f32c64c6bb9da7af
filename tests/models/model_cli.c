/*  tests/models/model_cli.c - loads a model and prints logits and greedy continuations as
 *  JSON, for the Python reference tests (tests/models/test_*.py) and for poking at models.
 *
 *      model_cli MODEL --prompt 1,2,3 [--prompt 4,5] [--gen N] [--chunk C] [--batch]
 *                [--block-size B] [--shuffle-blocks] [--backend cpu|ref] [--threads N]
 *                [--simd scalar|avx2|avx512] [--no-logits]
 *
 *  Each prompt is a sequence. Its prompt is fed in chunks of C tokens (0: all at once), and
 *  the logits of the last token of every chunk are printed with that token's position; then
 *  N tokens are generated greedily (tr_ops_sample, temperature 0), one decode step each.
 *  With --batch every sequence advances in the same forward call (continuous batching);
 *  without, sequences run one after another. --shuffle-blocks hands out physical KV blocks
 *  in a scrambled order. Output:
 *      {"config": {...}, "seqs": [{"positions": [...], "logits": [[...], ...],
 *                                  "generated": [...]}, ...]}                          */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"

typedef struct {
    int32_t *prompt, n_prompt;
    int32_t n_fed;                 /* tokens in the cache */
    int32_t *gen, n_gen;           /* generated so far */
    int32_t *table;                /* (max_blocks) */
    int32_t *pos_out, n_out;       /* positions of printed logits rows */
    float *logits_out;             /* (n_out, V) */
} s_seq_t;

static int32_t *s_parse_ids(const char *s, int32_t *n) {
    int32_t cap = 16, *ids = malloc(cap * sizeof(int32_t));
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        if (*n == cap) ids = realloc(ids, (cap *= 2) * sizeof(int32_t));
        ids[(*n)++] = (int32_t)v;
        s = *end == ',' ? end + 1 : end;
    }
    return ids;
}

static int s_usage(void) {
    fprintf(stderr, "usage: model_cli MODEL --prompt 1,2,3 [--prompt ...] [--gen N] [--chunk C]"
                    " [--batch] [--block-size B] [--shuffle-blocks] [--backend cpu|ref]"
                    " [--threads N] [--simd level] [--no-logits]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) return s_usage();
    const char *path = argv[1], *backend = "cpu", *simd = NULL;
    int32_t gen = 0, chunk = 0, bs = 16, threads = 0, batch = 0, shuffle = 0, print_logits = 1;
    s_seq_t seqs[64];
    int32_t B = 0;
    memset(seqs, 0, sizeof(seqs));
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--prompt") && v && B < 64) {
            seqs[B].prompt = s_parse_ids(v, &seqs[B].n_prompt);
            B++, i++;
        }
        else if (!strcmp(a, "--gen") && v) gen = atoi(v), i++;
        else if (!strcmp(a, "--chunk") && v) chunk = atoi(v), i++;
        else if (!strcmp(a, "--block-size") && v) bs = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--backend") && v) backend = v, i++;
        else if (!strcmp(a, "--simd") && v) simd = v, i++;
        else if (!strcmp(a, "--batch")) batch = 1;
        else if (!strcmp(a, "--shuffle-blocks")) shuffle = 1;
        else if (!strcmp(a, "--no-logits")) print_logits = 0;
        else return s_usage();
    }
    if (B == 0 || bs <= 0) return s_usage();
    for (int32_t b = 0; b < B; b++)
        if (seqs[b].n_prompt == 0) {
            fprintf(stderr, "model_cli: empty prompt\n");
            return 2;
        }
    tr_ops_t *ops = NULL;
    if (!strcmp(backend, "ref")) {
        ops = tr_ops_ref();
    } else {
        tr_ops_cpu_opts_t o = {.n_threads = threads};
        for (int l = TR_SIMD_SCALAR; simd && l <= TR_SIMD_AVX512; l++)
            if (!strcmp(simd, tr_simd_name(l))) o.simd = l;
        ops = tr_ops_cpu_new(&o);
    }
    if (!ops) {
        fprintf(stderr, "model_cli: cannot create backend %s\n", backend);
        return 1;
    }
    char err[512];
    tr_model_t *m = NULL;
    int rc = tr_model_load(&m, path, ops, NULL, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "model_cli: %s\n", err);
        tr_ops_destroy(&ops);
        return 1;
    }
    const tr_model_config_t *c = tr_model_config(m);
    const int32_t V = c->vocab_size;
    /* KV blocks: enough for every sequence, handed out in order or scrambled */
    int32_t max_blocks = 0, n_blocks = 0;
    for (int32_t b = 0; b < B; b++) {
        int32_t need = (seqs[b].n_prompt + gen + bs - 1) / bs;
        max_blocks = need > max_blocks ? need : max_blocks;
        n_blocks += need;
    }
    n_blocks += 3;
    int32_t *perm = malloc(n_blocks * sizeof(int32_t));
    for (int32_t i = 0; i < n_blocks; i++) perm[i] = i;
    uint64_t rng = 12345;
    for (int32_t i = n_blocks - 1; shuffle && i > 0; i--) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int32_t j = (int32_t)((rng >> 33) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int32_t next_block = 0;
    for (int32_t b = 0; b < B; b++) {
        seqs[b].table = calloc(max_blocks, sizeof(int32_t));
        int32_t need = (seqs[b].n_prompt + gen + bs - 1) / bs;
        for (int32_t j = 0; j < need; j++) seqs[b].table[j] = perm[next_block++];
        seqs[b].gen = calloc(gen + 1, sizeof(int32_t));
        int32_t max_out = seqs[b].n_prompt + gen + 1;
        seqs[b].pos_out = calloc(max_out, sizeof(int32_t));
        seqs[b].logits_out = print_logits ? calloc((size_t)max_out * V, sizeof(float)) : NULL;
    }
    tr_kv_cache_t kv;
    if (tr_kv_cache_init(&kv, ops, c, n_blocks, bs)) {
        fprintf(stderr, "model_cli: cannot allocate the KV cache\n");
        return 1;
    }
    int32_t *n_tok = calloc(B, sizeof(int32_t)), *start = calloc(B, sizeof(int32_t));
    int32_t *tables = calloc((size_t)B * max_blocks, sizeof(int32_t));
    int32_t *tokens = malloc(sizeof(int32_t) * 4096 * 64);
    uint8_t *want = calloc(B, 1);
    int32_t *owner = calloc(B, sizeof(int32_t)), *next = calloc(B, sizeof(int32_t));
    float *logits = malloc((size_t)B * V * sizeof(float));
    tr_sample_params_t *sp = calloc(B, sizeof(*sp));
    for (int32_t cur = 0; cur < B && rc == TR_OK;) {
        /* one step: every active sequence (or the current one) contributes its next tokens */
        int32_t nb = 0, T = 0;
        for (int32_t b = batch ? 0 : cur; b < (batch ? B : cur + 1); b++) {
            s_seq_t *s = &seqs[b];
            int32_t n = 0;
            if (s->n_fed < s->n_prompt) {
                n = chunk > 0 ? chunk : s->n_prompt;
                if (n > s->n_prompt - s->n_fed) n = s->n_prompt - s->n_fed;
                memcpy(tokens + T, s->prompt + s->n_fed, n * sizeof(int32_t));
            } else if (s->n_gen < gen && s->n_fed < s->n_prompt + s->n_gen) {
                n = 1;   /* feed the last generated token */
                tokens[T] = s->gen[s->n_gen - 1];
            }
            if (n == 0) continue;
            owner[nb] = b;
            n_tok[nb] = n;
            start[nb] = s->n_fed;
            want[nb] = 1;
            memcpy(tables + (size_t)nb * max_blocks, s->table, max_blocks * sizeof(int32_t));
            nb++;
            T += n;
        }
        if (nb == 0) {
            cur = batch ? B : cur + 1;
            continue;
        }
        tr_batch_t tb = {.n_seqs = nb, .n_tokens = n_tok, .tokens = tokens, .start_pos = start,
                         .block_tables = tables, .max_blocks = max_blocks, .want_logits = want};
        rc = tr_model_forward(m, &kv, &tb, logits);
        if (rc) break;
        rc = tr_ops_sample(ops, next, NULL, logits, nb, V, sp);
        for (int32_t i = 0; i < nb && rc == TR_OK; i++) {
            s_seq_t *s = &seqs[owner[i]];
            s->n_fed += n_tok[i];
            if (s->logits_out) memcpy(s->logits_out + (size_t)s->n_out * V, logits + (size_t)i * V, V * sizeof(float));
            s->pos_out[s->n_out++] = s->n_fed - 1;
            if (s->n_fed >= s->n_prompt && s->n_gen < gen) s->gen[s->n_gen++] = next[i];
        }
    }
    if (rc) {
        fprintf(stderr, "model_cli: forward failed: %s\n", tr_strerror(rc));
        return 1;
    }
    printf("{\"config\": {\"arch\": \"%s\", \"dim\": %d, \"n_layers\": %d, \"vocab_size\": %d,"
           " \"dtype\": \"%s\", \"backend\": \"%s\"},\n \"seqs\": [", tr_arch_name(c->arch), c->dim,
           c->n_layers, V, tr_dtype_name(tr_model_weight_dtype(m)), tr_ops_name(ops));
    for (int32_t b = 0; b < B; b++) {
        s_seq_t *s = &seqs[b];
        printf("%s\n  {\"positions\": [", b ? "," : "");
        for (int32_t i = 0; i < s->n_out; i++) printf("%s%d", i ? ", " : "", s->pos_out[i]);
        printf("], \"generated\": [");
        for (int32_t i = 0; i < s->n_gen; i++) printf("%s%d", i ? ", " : "", s->gen[i]);
        printf("], \"logits\": [");
        for (int32_t i = 0; s->logits_out && i < s->n_out; i++) {
            printf("%s[", i ? ", " : "");
            for (int32_t v = 0; v < V; v++) printf("%s%.9g", v ? "," : "", s->logits_out[(size_t)i * V + v]);
            printf("]");
        }
        printf("]}");
        free(s->prompt), free(s->gen), free(s->table), free(s->pos_out), free(s->logits_out);
    }
    printf("\n]}\n");
    free(n_tok), free(start), free(tables), free(tokens), free(want), free(owner), free(next);
    free(logits), free(sp), free(perm);
    tr_kv_cache_fini(&kv, ops);
    tr_model_destroy(&m);
    tr_ops_destroy(&ops);
    return 0;
}
