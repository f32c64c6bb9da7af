/*  tests/models/test_gguf.c - GGUF reader over llama.cpp's vocab files and built files.
 *
 *  1. The four llama.cpp vocab-only GGUFs in tests/data/tokenizers: header, metadata
 *     values and typed accessors (values as listed in tests/data/tokenizers/SOURCES.md).
 *  2. A GGUF written here with every value type, an alignment of 64 and f32/f16/bf16/q8_0
 *     tensors: dims, types, sizes, offsets and data pointers.
 *  3. Damaged copies: every truncation of the built file and many of a vocab file (as
 *     exact-size heap buffers so ASan catches any over-read), one targeted corruption per
 *     check in the parser, and random byte flips. Each must fail with a status and message
 *     (or, for flips, possibly succeed) and never crash.
 *  Single-threaded.                                                                        */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/gguf.h"
#include "runtime/status.h"
#include "tests/tap.h"

static char s_data_dir[1024];

static const char *s_path(const char *name) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/%s", s_data_dir, name);
    return buf;
}

static void *s_slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

/* ---- 1. llama.cpp vocab files ---- */

typedef struct {
    const char *file, *arch, *model, *pre;
    uint64_t n_tokens, n_merges;
    uint32_t bos, eos;
} s_vocab_case_t;

static const s_vocab_case_t s_vocab_cases[] = {
    {"ggml-vocab-llama-spm.gguf", "llama", "llama", NULL, 32000, 0, 1, 2},
    {"ggml-vocab-phi-3.gguf", "phi3", "llama", NULL, 32064, 0, 1, 32000},
    {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt2", "gpt-2", 50257, 50000, 50256, 50256},
    {"ggml-vocab-deepseek-llm.gguf", "llama", "gpt2", "deepseek-llm", 102400, 99757, 100000,
     100001},
};

static void s_test_vocab_file(const s_vocab_case_t *vc) {
    char err[256];
    int rc = -100;
    tr_gguf_t *g = tr_gguf_new(s_path(vc->file), &rc, err, sizeof err);
    if (!ok(g != NULL && rc == TR_OK, "%s: opens (%s)", vc->file, g ? "ok" : err)) return;
    ok(tr_gguf_version(g) == 3, "%s: version 3", vc->file);
    ok(tr_gguf_n_tensors(g) == 0, "%s: no tensors", vc->file);
    ok(tr_gguf_alignment(g) == 32, "%s: default alignment 32", vc->file);
    tr_gguf_str_t s = {0};
    char buf[64];
    rc = tr_gguf_get_str(g, "general.architecture", &s);
    ok(rc == TR_OK && tr_gguf_str_eq(s, vc->arch), "%s: general.architecture = %s (got %s)",
       vc->file, vc->arch, tr_gguf_str_copy(s, buf, sizeof buf));
    rc = tr_gguf_get_str(g, "tokenizer.ggml.model", &s);
    ok(rc == TR_OK && tr_gguf_str_eq(s, vc->model), "%s: tokenizer.ggml.model = %s", vc->file,
       vc->model);
    if (vc->pre) {
        rc = tr_gguf_get_str(g, "tokenizer.ggml.pre", &s);
        ok(rc == TR_OK && tr_gguf_str_eq(s, vc->pre), "%s: tokenizer.ggml.pre = %s", vc->file,
           vc->pre);
    }
    const tr_gguf_kv_t *arr = NULL;
    rc = tr_gguf_get_arr(g, "tokenizer.ggml.tokens", TR_GGUF_TYPE_STRING, &arr);
    ok(rc == TR_OK && arr->arr_n == vc->n_tokens, "%s: %llu tokens (got %llu)", vc->file,
       (unsigned long long)vc->n_tokens, arr ? (unsigned long long)arr->arr_n : 0ull);
    if (arr) {
        /* Every string of the array reads back within the file. */
        const char *lo = tr_gguf_base(g), *hi = lo + tr_gguf_size(g);
        int bad = 0;
        for (uint64_t i = 0; i < arr->arr_n; i++) {
            tr_gguf_str_t t;
            if (tr_gguf_arr_get_str(arr, i, &t) || t.data < lo || t.data + t.len > hi) bad++;
        }
        ok(bad == 0, "%s: every token string lies inside the file", vc->file);
        ok(tr_gguf_arr_get_str(arr, arr->arr_n, &s) == TR_ERANGE, "%s: index past end -> ERANGE",
           vc->file);
        int64_t x;
        ok(tr_gguf_arr_get_i64(arr, 0, &x) == TR_EINVAL, "%s: string array read as int -> EINVAL",
           vc->file);
    }
    if (vc->n_merges) {
        arr = NULL;
        rc = tr_gguf_get_arr(g, "tokenizer.ggml.merges", TR_GGUF_TYPE_STRING, &arr);
        ok(rc == TR_OK && arr->arr_n == vc->n_merges, "%s: %llu merges", vc->file,
           (unsigned long long)vc->n_merges);
    } else {
        const tr_gguf_kv_t *sc = NULL;
        rc = tr_gguf_get_arr(g, "tokenizer.ggml.scores", TR_GGUF_TYPE_FLOAT32, &sc);
        double f = 1;
        ok(rc == TR_OK && sc->arr_n == vc->n_tokens && !tr_gguf_arr_get_f64(sc, 0, &f),
           "%s: float32 scores, one per token", vc->file);
        const tr_gguf_kv_t *tt = NULL;
        int64_t t1 = -1;
        rc = tr_gguf_get_arr(g, "tokenizer.ggml.token_type", TR_GGUF_TYPE_INT32, &tt);
        ok(rc == TR_OK && tt->arr_n == vc->n_tokens && !tr_gguf_arr_get_i64(tt, 1, &t1) && t1 == 3,
           "%s: int32 token types, <s> is CONTROL (3) (got %lld)", vc->file, (long long)t1);
    }
    uint32_t u = 0;
    rc = tr_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u);
    ok(rc == TR_OK && u == vc->bos, "%s: bos %u (got %u)", vc->file, vc->bos, u);
    rc = tr_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u);
    ok(rc == TR_OK && u == vc->eos, "%s: eos %u (got %u)", vc->file, vc->eos, u);
    ok(tr_gguf_get_u32(g, "no.such.key", &u) == TR_ENOENT, "%s: missing key -> ENOENT", vc->file);
    ok(tr_gguf_get_u32(g, "general.architecture", &u) == TR_EINVAL,
       "%s: string read as u32 -> EINVAL", vc->file);
    ok(tr_gguf_get_str(g, "tokenizer.ggml.bos_token_id", &s) == TR_EINVAL,
       "%s: u32 read as string -> EINVAL", vc->file);
    /* Every key found by name is the kv at its index. */
    int bad = 0;
    for (int64_t i = 0; i < tr_gguf_n_kv(g); i++) {
        const tr_gguf_kv_t *kv = tr_gguf_kv_at(g, i);
        if (tr_gguf_find_kv(g, kv->key) != kv) bad++;
    }
    ok(bad == 0 && tr_gguf_n_kv(g) > 10, "%s: %lld keys, each found by name", vc->file,
       (long long)tr_gguf_n_kv(g));
    tr_gguf_destroy(&g);
    ok(g == NULL, "%s: destroy sets the pointer to NULL", vc->file);
}

/* ---- 2. a GGUF built here ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} s_buf_t;

static void s_put(s_buf_t *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void s_u32(s_buf_t *b, uint32_t x) {
    s_put(b, &x, 4);
}
static void s_u64(s_buf_t *b, uint64_t x) {
    s_put(b, &x, 8);
}
static void s_str(s_buf_t *b, const char *s) {
    s_u64(b, strlen(s));
    s_put(b, s, strlen(s));
}
static void s_key(s_buf_t *b, const char *k, uint32_t type) {
    s_str(b, k);
    s_u32(b, type);
}

/* Offsets of interesting fields in the built file, for targeted corruption. */
typedef struct {
    size_t version, n_tensors, n_kv, first_key_len, u8_type, arr_count, str_len, align_val;
    size_t t0_ndims, t0_type, t0_offset, t1_name, data;
} s_layout_t;

enum { s_ALIGN = 64 };

/* Writes the test file; the tensor data holds known patterns. */
static s_buf_t s_build(s_layout_t *L) {
    s_buf_t b = {0};
    s_u32(&b, TR_GGUF_MAGIC);
    L->version = b.n;
    s_u32(&b, 3);
    L->n_tensors = b.n;
    s_u64(&b, 4);
    L->n_kv = b.n;
    s_u64(&b, 17);
    L->first_key_len = b.n;
    s_key(&b, "t.u8", TR_GGUF_TYPE_UINT8);
    L->u8_type = b.n - 4;
    s_put(&b, "\xfe", 1);
    s_key(&b, "t.i8", TR_GGUF_TYPE_INT8);
    s_put(&b, "\xfe", 1);
    s_key(&b, "t.u16", TR_GGUF_TYPE_UINT16);
    uint16_t u16 = 65000;
    s_put(&b, &u16, 2);
    s_key(&b, "t.i16", TR_GGUF_TYPE_INT16);
    int16_t i16 = -32000;
    s_put(&b, &i16, 2);
    s_key(&b, "t.u32", TR_GGUF_TYPE_UINT32);
    s_u32(&b, 4000000000u);
    s_key(&b, "t.i32", TR_GGUF_TYPE_INT32);
    s_u32(&b, (uint32_t)-7);
    s_key(&b, "t.f32", TR_GGUF_TYPE_FLOAT32);
    float f = 1.5f;
    s_put(&b, &f, 4);
    s_key(&b, "t.bool", TR_GGUF_TYPE_BOOL);
    s_put(&b, "\x01", 1);
    s_key(&b, "t.str", TR_GGUF_TYPE_STRING);
    L->str_len = b.n;
    s_str(&b, "h\xc3\xa9llo");
    s_key(&b, "t.u64", TR_GGUF_TYPE_UINT64);
    s_u64(&b, 0xffffffffffffffffull);
    s_key(&b, "t.i64", TR_GGUF_TYPE_INT64);
    s_u64(&b, (uint64_t)INT64_MIN);
    s_key(&b, "t.f64", TR_GGUF_TYPE_FLOAT64);
    double d = -2.25;
    s_put(&b, &d, 8);
    s_key(&b, "t.arr_i32", TR_GGUF_TYPE_ARRAY); /* lands unaligned */
    s_u32(&b, TR_GGUF_TYPE_INT32);
    L->arr_count = b.n;
    s_u64(&b, 3);
    for (int32_t i = -1; i < 2; i++)
        s_u32(&b, (uint32_t)(i * 100));
    s_key(&b, "t.arr_f32", TR_GGUF_TYPE_ARRAY);
    s_u32(&b, TR_GGUF_TYPE_FLOAT32);
    s_u64(&b, 2);
    float fs[2] = {0.25f, -8.0f};
    s_put(&b, fs, 8);
    s_key(&b, "t.arr_str", TR_GGUF_TYPE_ARRAY);
    s_u32(&b, TR_GGUF_TYPE_STRING);
    s_u64(&b, 3);
    s_str(&b, "a");
    s_str(&b, "");
    s_str(&b, "\xe2\x96\x81z");
    s_key(&b, "t.arr_nested", TR_GGUF_TYPE_ARRAY);
    s_u32(&b, TR_GGUF_TYPE_ARRAY);
    s_u64(&b, 2);
    s_u32(&b, TR_GGUF_TYPE_UINT8);
    s_u64(&b, 2);
    s_put(&b, "\x01\x02", 2);
    s_u32(&b, TR_GGUF_TYPE_STRING);
    s_u64(&b, 1);
    s_str(&b, "x");
    s_key(&b, "general.alignment", TR_GGUF_TYPE_UINT32);
    L->align_val = b.n;
    s_u32(&b, s_ALIGN);
    /* Tensors: f32 (4,3) at 0, f16 (8) at 64, q8_0 (64,2) at 128, bf16 (2,2,1,2) at 256. */
    s_str(&b, "w.f32");
    L->t0_ndims = b.n;
    s_u32(&b, 2);
    s_u64(&b, 4);
    s_u64(&b, 3);
    L->t0_type = b.n;
    s_u32(&b, TR_GGML_TYPE_F32);
    L->t0_offset = b.n;
    s_u64(&b, 0);
    L->t1_name = b.n;
    s_str(&b, "w.f16");
    s_u32(&b, 1);
    s_u64(&b, 8);
    s_u32(&b, TR_GGML_TYPE_F16);
    s_u64(&b, 64);
    s_str(&b, "w.q8_0");
    s_u32(&b, 2);
    s_u64(&b, 64);
    s_u64(&b, 2);
    s_u32(&b, TR_GGML_TYPE_Q8_0);
    s_u64(&b, 128);
    s_str(&b, "w.bf16");
    s_u32(&b, 4);
    s_u64(&b, 2);
    s_u64(&b, 2);
    s_u64(&b, 1);
    s_u64(&b, 2);
    s_u32(&b, TR_GGML_TYPE_BF16);
    s_u64(&b, 256);
    while (b.n % s_ALIGN)
        s_put(&b, "\0", 1);
    L->data = b.n;
    uint8_t data[256 + 16];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    s_put(&b, data, sizeof data);
    return b;
}

static void s_test_built(void) {
    s_layout_t L;
    s_buf_t b = s_build(&L);
    char err[256];
    int rc = -100;
    tr_gguf_t *g = tr_gguf_new_from_memory(b.p, b.n, &rc, err, sizeof err);
    if (!ok(g != NULL, "built: parses (%s)", g ? "ok" : err)) {
        free(b.p);
        return;
    }
    ok(tr_gguf_n_kv(g) == 17 && tr_gguf_n_tensors(g) == 4, "built: 17 keys, 4 tensors");
    ok(tr_gguf_alignment(g) == s_ALIGN, "built: general.alignment = %d", s_ALIGN);
    ok(tr_gguf_data_offset(g) == L.data, "built: data section at %zu (got %zu)", L.data,
       tr_gguf_data_offset(g));
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f = 0;
    double d = 0;
    bool bo = false;
    tr_gguf_str_t s;
    ok(!tr_gguf_get_u32(g, "t.u8", &u32) && u32 == 254, "built: uint8 widens to u32");
    ok(!tr_gguf_get_i32(g, "t.i8", &i32) && i32 == -2, "built: int8 widens to i32");
    ok(tr_gguf_get_u32(g, "t.i8", &u32) == TR_EINVAL, "built: negative int8 as u32 -> EINVAL");
    ok(!tr_gguf_get_u32(g, "t.u16", &u32) && u32 == 65000, "built: uint16");
    ok(!tr_gguf_get_i32(g, "t.i16", &i32) && i32 == -32000, "built: int16");
    ok(!tr_gguf_get_u32(g, "t.u32", &u32) && u32 == 4000000000u, "built: uint32");
    ok(tr_gguf_get_i32(g, "t.u32", &i32) == TR_EINVAL, "built: 4e9 as i32 -> EINVAL");
    ok(!tr_gguf_get_i64(g, "t.i32", &i64) && i64 == -7, "built: int32 as i64");
    ok(!tr_gguf_get_f32(g, "t.f32", &f) && f == 1.5f, "built: float32");
    ok(tr_gguf_get_f32(g, "t.u32", &f) == TR_EINVAL, "built: uint32 as float -> EINVAL");
    ok(!tr_gguf_get_bool(g, "t.bool", &bo) && bo, "built: bool");
    ok(!tr_gguf_get_str(g, "t.str", &s) && tr_gguf_str_eq(s, "h\xc3\xa9llo"), "built: string");
    ok(!tr_gguf_get_u64(g, "t.u64", &u64) && u64 == UINT64_MAX, "built: uint64 max");
    ok(tr_gguf_get_i64(g, "t.u64", &i64) == TR_EINVAL, "built: uint64 max as i64 -> EINVAL");
    ok(!tr_gguf_get_i64(g, "t.i64", &i64) && i64 == INT64_MIN, "built: int64 min");
    ok(!tr_gguf_get_f64(g, "t.f64", &d) && d == -2.25, "built: float64");
    const tr_gguf_kv_t *a = NULL;
    ok(!tr_gguf_get_arr(g, "t.arr_i32", TR_GGUF_TYPE_INT32, &a) && a->arr_n == 3,
       "built: int32 array of 3");
    if (a) {
        int64_t x0 = 0, x2 = 0;
        double dx = 0;
        ok(!tr_gguf_arr_get_i64(a, 0, &x0) && !tr_gguf_arr_get_i64(a, 2, &x2) && x0 == -100 &&
               x2 == 100 && !tr_gguf_arr_get_f64(a, 1, &dx) && dx == 0,
           "built: unaligned int32 array elements read back");
    }
    ok(tr_gguf_get_arr(g, "t.arr_i32", TR_GGUF_TYPE_FLOAT32, &a) == TR_EINVAL,
       "built: element type mismatch -> EINVAL");
    ok(!tr_gguf_get_arr(g, "t.arr_f32", -1, &a) && a->arr_type == TR_GGUF_TYPE_FLOAT32 &&
           !tr_gguf_arr_get_f64(a, 1, &d) && d == -8.0,
       "built: float32 array");
    ok(!tr_gguf_get_arr(g, "t.arr_str", TR_GGUF_TYPE_STRING, &a) && a->arr_n == 3 &&
           tr_gguf_str_eq(a->arr_str[0], "a") && a->arr_str[1].len == 0 &&
           tr_gguf_str_eq(a->arr_str[2], "\xe2\x96\x81z"),
       "built: string array incl. empty string");
    ok(!tr_gguf_get_arr(g, "t.arr_nested", TR_GGUF_TYPE_ARRAY, &a) && a->arr_n == 2 &&
           tr_gguf_arr_get_i64(a, 0, &i64) == TR_EINVAL,
       "built: nested array is skipped, no access");

    static const struct {
        const char *name;
        int type;
        uint32_t n_dims;
        int64_t ne[4];
        uint64_t offset;
        size_t nbytes;
    } want[] = {
        {"w.f32", TR_GGML_TYPE_F32, 2, {4, 3, 1, 1}, 0, 48},
        {"w.f16", TR_GGML_TYPE_F16, 1, {8, 1, 1, 1}, 64, 16},
        {"w.q8_0", TR_GGML_TYPE_Q8_0, 2, {64, 2, 1, 1}, 128, 4 * 34},
        {"w.bf16", TR_GGML_TYPE_BF16, 4, {2, 2, 1, 2}, 256, 16},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(want); i++) {
        const tr_gguf_tensor_t *t = tr_gguf_find_tensor(g, want[i].name);
        int good = t && t == tr_gguf_tensor_at(g, (int64_t)i) && (int)t->type == want[i].type &&
                   t->n_dims == want[i].n_dims && !memcmp(t->ne, want[i].ne, sizeof t->ne) &&
                   t->offset == want[i].offset && t->nbytes == want[i].nbytes &&
                   (const uint8_t *)t->data == b.p + L.data + want[i].offset &&
                   ((const uint8_t *)t->data)[0] == (uint8_t)(want[i].offset * 7 + 1);
        ok(good, "built: tensor %s: %s, dims, %zu bytes at data+%llu", want[i].name,
           tr_ggml_type_name(want[i].type), want[i].nbytes, (unsigned long long)want[i].offset);
    }
    ok(tr_gguf_find_tensor(g, "nope") == NULL && tr_gguf_tensor_at(g, 4) == NULL,
       "built: unknown tensor -> NULL");
    tr_gguf_destroy(&g);

    /* The same bytes through a file. */
    char path[] = "/tmp/troupe_test_gguf_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0 && write(fd, b.p, b.n) == (ssize_t)b.n) {
        close(fd);
        g = tr_gguf_new(path, &rc, err, sizeof err);
        const tr_gguf_tensor_t *t = g ? tr_gguf_find_tensor(g, "w.bf16") : NULL;
        ok(t && ((const uint8_t *)t->data)[1] == (uint8_t)(257 * 7 + 1),
           "built: same file through mmap");
        tr_gguf_destroy(&g);
        /* A truncated file on disk. */
        if (truncate(path, (off_t)(b.n - 1)) == 0) {
            g = tr_gguf_new(path, &rc, err, sizeof err);
            ok(!g && rc == TR_EPROTO && strstr(err, "w.bf16") && strstr(err, path),
               "built: truncated file on disk -> EPROTO naming file and tensor (%s)", err);
        }
        unlink(path);
    } else {
        ok(0, "built: could not write %s", path);
        if (fd >= 0) close(fd);
    }

    /* ---- 3a. every truncation ---- */
    int crashes_not = 0, wrong = 0;
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        err[0] = 0;
        g = tr_gguf_new_from_memory(copy, n, &rc, err, sizeof err);
        if (g || rc != TR_EPROTO || !err[0]) {
            if (!wrong) diag("truncation to %zu bytes: rc %d err '%s'", n, rc, err);
            wrong++;
        }
        tr_gguf_destroy(&g);
        free(copy);
        crashes_not++;
    }
    ok(wrong == 0, "built: all %d truncations fail with EPROTO and a message", crashes_not);

    /* ---- 3b. targeted corruptions ---- */
    struct {
        const char *what, *expect;
        size_t off;
        uint64_t value;
        int width;
    } cases[] = {
        {"bad magic", "bad magic", 0, 0x46554746, 4},
        {"version 1", "version 1", L.version, 1, 4},
        {"version 4", "version 4", L.version, 4, 4},
        {"big-endian", "big-endian", L.version, 0x03000000, 4},
        {"absurd kv count", "absurd metadata count", L.n_kv, 1ull << 40, 8},
        {"absurd tensor count", "absurd tensor count", L.n_tensors, 1ull << 60, 8},
        {"key length past end", "exceeds", L.first_key_len, 1ull << 62, 8},
        {"unknown value type", "unknown value type", L.u8_type, 99, 4},
        {"array count past end", "exceeds", L.arr_count, 1ull << 61, 8},
        {"string length past end", "exceeds", L.str_len, 0xffffffffffffull, 8},
        {"alignment not a power of two", "power of two", L.align_val, 48, 4},
        {"alignment zero", "power of two", L.align_val, 0, 4},
        {"5 dimensions", "dimensions", L.t0_ndims, 5, 4},
        {"unknown ggml type", "unknown or retired ggml type", L.t0_type, 4, 4},
        {"unknown ggml type 1000", "unknown or retired ggml type", L.t0_type, 1000, 4},
        {"q8_0 with ne[0]=4", "block size", L.t0_type, TR_GGML_TYPE_Q8_0, 4},
        {"misaligned offset", "multiple of the alignment", L.t0_offset, 8, 8},
        {"offset out of bounds", "outside the data section", L.t0_offset, 1ull << 20, 8},
        {"offset wraps", "outside the data section", L.t0_offset, UINT64_MAX - 63, 8},
        {"duplicate tensor name", "duplicate tensor name", L.t1_name + 8 + 4, '2', 1},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        memcpy(copy + cases[i].off, &cases[i].value, (size_t)cases[i].width);
        if (!strcmp(cases[i].what, "duplicate tensor name")) copy[L.t1_name + 8 + 3] = '3';
        err[0] = 0;
        rc = 0;
        g = tr_gguf_new_from_memory(copy, b.n, &rc, err, sizeof err);
        ok(!g && rc == TR_EPROTO && strstr(err, cases[i].expect), "corrupt: %s -> EPROTO '%s'",
           cases[i].what, err);
        tr_gguf_destroy(&g);
        free(copy);
    }

    /* ---- 3c. random byte flips: no crash, no hang; the result is either way ---- */
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int n_ok = 0, n_err = 0, no_msg = 0;
    for (int it = 0; it < 3000; it++) {
        uint8_t *copy = malloc(b.n);
        memcpy(copy, b.p, b.n);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t pos = (size_t)(rng % L.data); /* the header and infos, not the data */
            copy[pos] = (uint8_t)(rng >> 32);
        }
        err[0] = 0;
        g = tr_gguf_new_from_memory(copy, b.n, &rc, err, sizeof err);
        if (g) {
            n_ok++;
            for (int64_t t = 0; t < tr_gguf_n_tensors(g); t++) { /* data stays inside */
                const tr_gguf_tensor_t *ti = tr_gguf_tensor_at(g, t);
                if ((const uint8_t *)ti->data + ti->nbytes > copy + b.n) no_msg++;
            }
        } else {
            n_err++;
            if (!err[0] || rc >= 0) no_msg++;
        }
        tr_gguf_destroy(&g);
        free(copy);
    }
    ok(no_msg == 0, "fuzz: 3000 flipped copies: %d parsed, %d refused with a message", n_ok, n_err);
    free(b.p);
}

static void s_test_vocab_damage(void) {
    size_t n = 0;
    uint8_t *p = s_slurp(s_path("ggml-vocab-llama-spm.gguf"), &n);
    if (!ok(p != NULL, "llama-spm vocab read into memory")) return;
    int wrong = 0, tries = 0;
    char err[256];
    int rc;
    /* Every prefix up to 4 KiB (header, first keys, start of the token array), then steps. */
    for (size_t cut = 0; cut < n; cut += cut < 4096 ? 1 : 9973) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, p, cut);
        tr_gguf_t *g = tr_gguf_new_from_memory(copy, cut, &rc, err, sizeof err);
        if (g || rc != TR_EPROTO) wrong++;
        tr_gguf_destroy(&g);
        free(copy);
        tries++;
    }
    ok(wrong == 0, "llama-spm vocab: %d truncated copies all fail with EPROTO", tries);
    free(p);

    int st = 0;
    char err2[256] = "";
    tr_gguf_t *g = tr_gguf_new(s_path("no-such-file.gguf"), &st, err2, sizeof err2);
    ok(!g && st == TR_ENOENT && strstr(err2, "no-such-file.gguf"),
       "missing file -> ENOENT with the path (%s)", err2);
    g = tr_gguf_new(s_path("ggml-vocab-gpt-2.gguf.inp"), &st, err2, sizeof err2);
    ok(!g && st == TR_EPROTO && strstr(err2, "bad magic"), "text file -> bad magic (%s)", err2);
    g = tr_gguf_new(s_data_dir, &st, err2, sizeof err2);
    ok(!g && st == TR_EIO, "a directory -> EIO (%s)", err2);
}

static void s_test_tables(void) {
    ok(tr_ggml_type_block_bytes(TR_GGML_TYPE_Q8_0) == 34 &&
           tr_ggml_type_block_size(TR_GGML_TYPE_Q8_0) == 32,
       "q8_0: 32 per 34-byte block");
    ok(tr_ggml_type_block_bytes(TR_GGML_TYPE_BF16) == 2 && tr_ggml_type_block_bytes(0) == 4 &&
           tr_ggml_type_block_bytes(1) == 2,
       "f32/f16/bf16 element sizes");
    ok(tr_ggml_type_block_bytes(TR_GGML_TYPE_Q4_K) == 144 &&
           tr_ggml_type_block_bytes(TR_GGML_TYPE_Q6_K) == 210,
       "k-quant block bytes");
    ok(tr_ggml_type_block_bytes(4) == 0 && tr_ggml_type_block_bytes(-1) == 0 &&
           tr_ggml_type_block_bytes(1000) == 0 && !strcmp(tr_ggml_type_name(4), "?"),
       "retired/unknown types have no size");
    ok(!strcmp(tr_gguf_type_name(TR_GGUF_TYPE_ARRAY), "array"), "value type names");
}

int main(void) {
    plan_lazy();
    const char *root = getenv("TROUPE_ROOT");
    snprintf(s_data_dir, sizeof s_data_dir, "%s/tests/data/tokenizers", root ? root : ".");
    s_test_tables();
    for (size_t i = 0; i < TR_ARRAY_LEN(s_vocab_cases); i++)
        s_test_vocab_file(&s_vocab_cases[i]);
    s_test_built();
    s_test_vocab_damage();
    return done_testing();
}
