/*  bench/tokenize.c - tokenizer throughput: MB/s of English text encoded and decoded.
 *
 *      build/bin/bench_tokenize [--mb N] [--text FILE] [TOKENIZER ...]
 *
 *  The text is bench/data/english.txt (original prose, 6.9 KB) repeated to N MB (default 4).
 *  Each tokenizer (default: every one bundled in tests/data/tokenizers) is timed on one core:
 *    encode      the whole text in one call, word cache on (the default; steady state)
 *    no-cache    the same with the word cache off: every word goes through BPE
 *    decode      the resulting ids back to text (MB/s of text produced)
 *  Prints figures, not pass/fail. Single-threaded.                                      */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/tokenizer.h"
#include "runtime/status.h"

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *s_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (!p || fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        fclose(f);
        return NULL;
    }
    fclose(f);
    p[len] = 0;
    *n = (size_t)len;
    return p;
}

/* Encodes text once; returns seconds (or -1). */
static double s_encode(tr_tokenizer_t *tok, const char *text, size_t n, tr_tok_ids_t *ids) {
    ids->n = 0;
    double t0 = s_now();
    int rc = tr_tokenizer_encode(tok, text, n, 0, ids);
    double dt = s_now() - t0;
    return rc ? -1 : dt;
}

int main(int argc, char **argv) {
    const char *root = getenv("TROUPE_ROOT");
    char text_path[2048], data[2048];
    snprintf(text_path, sizeof text_path, "%s/bench/data/english.txt", root ? root : ".");
    snprintf(data, sizeof data, "%s/tests/data/tokenizers", root ? root : ".");
    double mb = 4;
    const char *paths[32];
    int n_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mb") && i + 1 < argc)
            mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--text") && i + 1 < argc)
            snprintf(text_path, sizeof text_path, "%s", argv[++i]);
        else if (n_paths < 32)
            paths[n_paths++] = argv[i];
    }
    static char defaults[8][2100];
    static const char *const names[] = {"tinyllama-1.1b-chat-v1.0",
                                        "minueza-32m-ultrachat",
                                        "smollm-135m",
                                        "tinystories-656k",
                                        "ggml-vocab-llama-spm.gguf",
                                        "ggml-vocab-gpt-2.gguf",
                                        "ggml-vocab-deepseek-llm.gguf",
                                        "tokenizer.bin"};
    if (!n_paths)
        for (int i = 0; i < 8; i++) {
            snprintf(defaults[i], sizeof defaults[i], "%s/%s", data, names[i]);
            paths[n_paths++] = defaults[i];
        }
    size_t sample_len;
    char *sample = s_slurp(text_path, &sample_len);
    if (!sample || !sample_len) {
        fprintf(stderr, "cannot read %s (set TROUPE_ROOT or use --text)\n", text_path);
        return 1;
    }
    size_t n = (size_t)(mb * 1e6);
    if (n < sample_len) n = sample_len;
    char *text = malloc(n + 1);
    for (size_t o = 0; o < n; o += sample_len)
        memcpy(text + o, sample, o + sample_len <= n ? sample_len : n - o);
    /* do not end inside a UTF-8 sequence */
    while (n > 0 && ((unsigned char)text[n - 1] & 0xc0) == 0x80)
        n--;
    if (n > 0 && (unsigned char)text[n - 1] >= 0xc0) n--;
    text[n] = 0;

    printf("# bench_tokenize: %.2f MB of English (%s x%.0f), one core\n", (double)n / 1e6,
           text_path, (double)n / (double)sample_len);
    printf("%-30s %-18s %8s %8s %10s %10s %10s\n", "tokenizer", "kind", "load_ms", "tok/KB",
           "encode", "no-cache", "decode");
    printf("%-30s %-18s %8s %8s %10s %10s %10s\n", "", "", "", "", "MB/s", "MB/s", "MB/s");
    for (int k = 0; k < n_paths; k++) {
        char err[512];
        int rc;
        double t0 = s_now();
        tr_tokenizer_t *tok = tr_tokenizer_new(paths[k], &rc, err, sizeof err);
        double load = s_now() - t0;
        const char *base = strrchr(paths[k], '/') ? strrchr(paths[k], '/') + 1 : paths[k];
        if (!tok) {
            printf("%-30s load failed: %s\n", base, err);
            continue;
        }
        tr_tok_ids_t ids;
        tr_tok_ids_init(&ids);
        s_encode(tok, text, n, &ids); /* warm the word cache */
        double enc = s_encode(tok, text, n, &ids);
        size_t n_ids = ids.n;
        tr_tokenizer_set_cache(tok, false);
        size_t n_nc = n < 1000000 ? n : 1000000; /* no-cache on the first MB */
        while (n_nc > 0 && ((unsigned char)text[n_nc] & 0xc0) == 0x80)
            n_nc--;
        tr_tok_ids_t ids2;
        tr_tok_ids_init(&ids2);
        double nc = s_encode(tok, text, n_nc, &ids2);
        tr_tokenizer_set_cache(tok, true);
        tr_tok_text_t out;
        tr_tok_text_init(&out);
        t0 = s_now();
        rc = tr_tokenizer_decode(tok, ids.ids, ids.n, 0, &out);
        double dec = s_now() - t0;
        printf("%-30s %-18s %8.1f %8.1f %10.1f %10.1f %10.1f\n", base, tr_tokenizer_kind(tok),
               load * 1e3, (double)n_ids / ((double)n / 1e3), enc > 0 ? (double)n / 1e6 / enc : 0,
               nc > 0 ? (double)n_nc / 1e6 / nc : 0, !rc ? (double)out.len / 1e6 / dec : 0);
        fflush(stdout);
        tr_tok_text_fini(&out);
        tr_tok_ids_fini(&ids);
        tr_tok_ids_fini(&ids2);
        tr_tokenizer_destroy(&tok);
    }
    free(text);
    free(sample);
    return 0;
}
