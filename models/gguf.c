/*  models/gguf.c - GGUF v2/v3 reader (see gguf.h).
 *
 *  The parser walks the file once with a bounds-checked cursor: every read first checks that
 *  the bytes exist, every count is checked against the bytes left before anything is
 *  allocated, and every tensor's [offset, offset + nbytes) must lie inside the data section.
 *  Keys and tensor names are copied (NUL-terminated) into one owned arena; strings and
 *  array elements stay in the mapping. Lookups go through small open-addressing hash maps.
 *  Owns: the mmap (or nothing, for tr_gguf_new_from_memory), the arena and the tables.
 *  Thread: immutable after construction.                                                  */
#include "models/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/status.h"

#define TR_GGUF_MAX_NESTING 4

struct tr_gguf {
    const uint8_t *base; /* borrowed or mapped */
    size_t size;
    bool mapped; /* base came from mmap */
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;
    int64_t n_kv;
    tr_gguf_kv_t *kv; /* owned: n_kv */
    int64_t n_tensors;
    tr_gguf_tensor_t *tensors; /* owned: n_tensors */
    char *names;               /* owned: arena of NUL-terminated keys and tensor names */
    size_t names_used, names_cap;
    tr_gguf_str_t *strs; /* owned: the strings of every string array, back to back */
    size_t strs_used, strs_cap;
    int32_t *kv_map; /* owned: open addressing, -1 empty; size kv_map_cap */
    size_t kv_map_cap;
    int32_t *t_map; /* owned: same for tensors */
    size_t t_map_cap;
};

/* ---- type tables ---- */

typedef struct {
    const char *name;
    int64_t block_size;
    size_t block_bytes;
} s_ggml_traits_t;

/* Block sizes and bytes from ggml's type_traits (ggml.c), checked against gguf-py's
 * GGML_QUANT_SIZES by tests/models/test_gguf_py.py; retired ids stay zero. */
static const s_ggml_traits_t s_ggml_traits[TR_GGML_TYPE_COUNT] = {
    [TR_GGML_TYPE_F32] = {"f32", 1, 4},
    [TR_GGML_TYPE_F16] = {"f16", 1, 2},
    [TR_GGML_TYPE_Q4_0] = {"q4_0", 32, 18},
    [TR_GGML_TYPE_Q4_1] = {"q4_1", 32, 20},
    [TR_GGML_TYPE_Q5_0] = {"q5_0", 32, 22},
    [TR_GGML_TYPE_Q5_1] = {"q5_1", 32, 24},
    [TR_GGML_TYPE_Q8_0] = {"q8_0", 32, 34},
    [TR_GGML_TYPE_Q8_1] = {"q8_1", 32, 36},
    [TR_GGML_TYPE_Q2_K] = {"q2_K", 256, 84},
    [TR_GGML_TYPE_Q3_K] = {"q3_K", 256, 110},
    [TR_GGML_TYPE_Q4_K] = {"q4_K", 256, 144},
    [TR_GGML_TYPE_Q5_K] = {"q5_K", 256, 176},
    [TR_GGML_TYPE_Q6_K] = {"q6_K", 256, 210},
    [TR_GGML_TYPE_Q8_K] = {"q8_K", 256, 292},
    [TR_GGML_TYPE_IQ2_XXS] = {"iq2_xxs", 256, 66},
    [TR_GGML_TYPE_IQ2_XS] = {"iq2_xs", 256, 74},
    [TR_GGML_TYPE_IQ3_XXS] = {"iq3_xxs", 256, 98},
    [TR_GGML_TYPE_IQ1_S] = {"iq1_s", 256, 50},
    [TR_GGML_TYPE_IQ4_NL] = {"iq4_nl", 32, 18},
    [TR_GGML_TYPE_IQ3_S] = {"iq3_s", 256, 110},
    [TR_GGML_TYPE_IQ2_S] = {"iq2_s", 256, 82},
    [TR_GGML_TYPE_IQ4_XS] = {"iq4_xs", 256, 136},
    [TR_GGML_TYPE_I8] = {"i8", 1, 1},
    [TR_GGML_TYPE_I16] = {"i16", 1, 2},
    [TR_GGML_TYPE_I32] = {"i32", 1, 4},
    [TR_GGML_TYPE_I64] = {"i64", 1, 8},
    [TR_GGML_TYPE_F64] = {"f64", 1, 8},
    [TR_GGML_TYPE_IQ1_M] = {"iq1_m", 256, 56},
    [TR_GGML_TYPE_BF16] = {"bf16", 1, 2},
    [TR_GGML_TYPE_TQ1_0] = {"tq1_0", 256, 54},
    [TR_GGML_TYPE_TQ2_0] = {"tq2_0", 256, 66},
    [TR_GGML_TYPE_MXFP4] = {"mxfp4", 32, 17},
    [TR_GGML_TYPE_NVFP4] = {"nvfp4", 64, 36},
    [TR_GGML_TYPE_Q1_0] = {"q1_0", 128, 18},
};

static const char *s_gguf_type_names[TR_GGUF_TYPE_COUNT] = {
    "uint8", "int8",   "uint16", "int16",  "uint32", "int32",   "float32",
    "bool",  "string", "array",  "uint64", "int64",  "float64",
};

/* Size in bytes of a fixed-size value type; 0 for STRING/ARRAY/unknown. */
static size_t s_type_size(uint32_t t) {
    switch (t) {
    case TR_GGUF_TYPE_UINT8:
    case TR_GGUF_TYPE_INT8:
    case TR_GGUF_TYPE_BOOL:
        return 1;
    case TR_GGUF_TYPE_UINT16:
    case TR_GGUF_TYPE_INT16:
        return 2;
    case TR_GGUF_TYPE_UINT32:
    case TR_GGUF_TYPE_INT32:
    case TR_GGUF_TYPE_FLOAT32:
        return 4;
    case TR_GGUF_TYPE_UINT64:
    case TR_GGUF_TYPE_INT64:
    case TR_GGUF_TYPE_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *tr_ggml_type_name(int type) {
    if (type < 0 || type >= TR_GGML_TYPE_COUNT || !s_ggml_traits[type].name) return "?";
    return s_ggml_traits[type].name;
}

int64_t tr_ggml_type_block_size(int type) {
    if (type < 0 || type >= TR_GGML_TYPE_COUNT) return 0;
    return s_ggml_traits[type].block_size;
}

size_t tr_ggml_type_block_bytes(int type) {
    if (type < 0 || type >= TR_GGML_TYPE_COUNT) return 0;
    return s_ggml_traits[type].block_bytes;
}

const char *tr_gguf_type_name(int type) {
    if (type < 0 || type >= TR_GGUF_TYPE_COUNT) return "?";
    return s_gguf_type_names[type];
}

/* ---- parse state ---- */

typedef struct {
    const uint8_t *p, *end, *base;
    char *err;
    size_t err_size;
    const char *what; /* file name or "<memory>" for messages */
} s_cursor_t;

__attribute__((format(printf, 3, 4))) static int s_fail(s_cursor_t *c, int status, const char *fmt,
                                                        ...) {
    if (c->err && c->err_size) {
        int n = snprintf(c->err, c->err_size, "%s: ", c->what);
        if (n < 0) n = 0;
        if ((size_t)n < c->err_size) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->err + n, c->err_size - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return status;
}

static size_t s_left(const s_cursor_t *c) {
    return (size_t)(c->end - c->p);
}

static size_t s_pos(const s_cursor_t *c) {
    return (size_t)(c->p - c->base);
}

static int s_read(s_cursor_t *c, void *out, size_t n, const char *what) {
    if (s_left(c) < n)
        return s_fail(c, TR_EPROTO, "truncated file: %s at offset %zu needs %zu bytes, %zu left",
                      what, s_pos(c), n, s_left(c));
    memcpy(out, c->p, n);
    c->p += n;
    return TR_OK;
}

static int s_read_u32(s_cursor_t *c, uint32_t *out, const char *what) {
    return s_read(c, out, 4, what);
}

static int s_read_u64(s_cursor_t *c, uint64_t *out, const char *what) {
    return s_read(c, out, 8, what);
}

static int s_read_str(s_cursor_t *c, tr_gguf_str_t *out, const char *what) {
    uint64_t len = 0;
    int rc = s_read_u64(c, &len, what);
    if (rc) return rc;
    if (len > s_left(c))
        return s_fail(c, TR_EPROTO,
                      "%s at offset %zu: string length %llu exceeds the %zu bytes "
                      "left",
                      what, s_pos(c) - 8, (unsigned long long)len, s_left(c));
    out->data = (const char *)c->p;
    out->len = len;
    c->p += len;
    return TR_OK;
}

/* ---- arenas and hash maps ---- */

static int s_name_dup(tr_gguf_t *self, tr_gguf_str_t s, const char **out) {
    size_t need = (size_t)s.len + 1;
    if (self->names_used + need > self->names_cap) {
        size_t cap = self->names_cap ? self->names_cap : 4096;
        while (cap < self->names_used + need)
            cap *= 2;
        /* Names are referenced by offset until the end of parsing (the arena may move). */
        char *p = realloc(self->names, cap);
        if (!p) return TR_ENOMEM;
        self->names = p;
        self->names_cap = cap;
    }
    memcpy(self->names + self->names_used, s.data, (size_t)s.len);
    self->names[self->names_used + s.len] = '\0';
    *out = (const char *)(uintptr_t)self->names_used; /* offset; fixed up in s_fix_names */
    self->names_used += need;
    return TR_OK;
}

static uint64_t s_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static size_t s_map_cap(int64_t n) {
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap *= 2;
    return cap;
}

/* ---- values ---- */

static int s_skip_array(s_cursor_t *c, uint32_t elem_type, uint64_t n, int depth);

/* Reads one scalar of type t into kv->v. */
static int s_read_scalar(s_cursor_t *c, uint32_t t, tr_gguf_kv_t *kv) {
    uint8_t b[8];
    size_t sz = s_type_size(t);
    int rc;
    if (t == TR_GGUF_TYPE_STRING) return s_read_str(c, &kv->v.str, "string value");
    if (!sz) return s_fail(c, TR_EPROTO, "unknown value type %u at offset %zu", t, s_pos(c) - 4);
    if ((rc = s_read(c, b, sz, "value"))) return rc;
    switch (t) {
    case TR_GGUF_TYPE_UINT8:
        kv->v.u64 = b[0];
        break;
    case TR_GGUF_TYPE_INT8:
        kv->v.i64 = (int8_t)b[0];
        break;
    case TR_GGUF_TYPE_BOOL:
        if (b[0] > 1)
            return s_fail(c, TR_EPROTO, "bool value %u at offset %zu", b[0], s_pos(c) - 1);
        kv->v.b = b[0] != 0;
        break;
    case TR_GGUF_TYPE_UINT16: {
        uint16_t x;
        memcpy(&x, b, 2);
        kv->v.u64 = x;
        break;
    }
    case TR_GGUF_TYPE_INT16: {
        int16_t x;
        memcpy(&x, b, 2);
        kv->v.i64 = x;
        break;
    }
    case TR_GGUF_TYPE_UINT32: {
        uint32_t x;
        memcpy(&x, b, 4);
        kv->v.u64 = x;
        break;
    }
    case TR_GGUF_TYPE_INT32: {
        int32_t x;
        memcpy(&x, b, 4);
        kv->v.i64 = x;
        break;
    }
    case TR_GGUF_TYPE_FLOAT32: {
        float x;
        memcpy(&x, b, 4);
        kv->v.f64 = x;
        break;
    }
    case TR_GGUF_TYPE_UINT64:
        memcpy(&kv->v.u64, b, 8);
        break;
    case TR_GGUF_TYPE_INT64:
        memcpy(&kv->v.i64, b, 8);
        break;
    case TR_GGUF_TYPE_FLOAT64:
        memcpy(&kv->v.f64, b, 8);
        break;
    }
    return TR_OK;
}

/* Checks and steps over the elements of an array (used for nested arrays). */
static int s_skip_array(s_cursor_t *c, uint32_t elem_type, uint64_t n, int depth) {
    if (depth > TR_GGUF_MAX_NESTING)
        return s_fail(c, TR_EPROTO, "arrays nested deeper than %d at offset %zu",
                      TR_GGUF_MAX_NESTING, s_pos(c));
    size_t sz = s_type_size(elem_type);
    if (sz) {
        if (n > s_left(c) / sz)
            return s_fail(c, TR_EPROTO, "array of %llu %s at offset %zu exceeds the %zu bytes left",
                          (unsigned long long)n, tr_gguf_type_name((int)elem_type), s_pos(c),
                          s_left(c));
        c->p += n * sz;
        return TR_OK;
    }
    if (elem_type == TR_GGUF_TYPE_STRING) {
        if (n > s_left(c) / 8)
            return s_fail(c, TR_EPROTO, "array of %llu strings at offset %zu exceeds the file",
                          (unsigned long long)n, s_pos(c));
        for (uint64_t i = 0; i < n; i++) {
            tr_gguf_str_t s;
            int rc = s_read_str(c, &s, "array string");
            if (rc) return rc;
        }
        return TR_OK;
    }
    if (elem_type == TR_GGUF_TYPE_ARRAY) {
        if (n > s_left(c) / 12)
            return s_fail(c, TR_EPROTO, "array of %llu arrays at offset %zu exceeds the file",
                          (unsigned long long)n, s_pos(c));
        for (uint64_t i = 0; i < n; i++) {
            uint32_t t;
            uint64_t m;
            int rc;
            if ((rc = s_read_u32(c, &t, "nested array type"))) return rc;
            if ((rc = s_read_u64(c, &m, "nested array length"))) return rc;
            if ((rc = s_skip_array(c, t, m, depth + 1))) return rc;
        }
        return TR_OK;
    }
    return s_fail(c, TR_EPROTO, "unknown array element type %u at offset %zu", elem_type, s_pos(c));
}

static int s_read_array(tr_gguf_t *self, s_cursor_t *c, tr_gguf_kv_t *kv) {
    uint32_t t;
    uint64_t n;
    int rc;
    if ((rc = s_read_u32(c, &t, "array element type"))) return rc;
    if ((rc = s_read_u64(c, &n, "array length"))) return rc;
    kv->arr_type = (tr_gguf_type_t)t;
    kv->arr_n = n;
    kv->arr_data = c->p;
    if (t != TR_GGUF_TYPE_STRING) return s_skip_array(c, t, n, 1);
    if (n > s_left(c) / 8)
        return s_fail(c, TR_EPROTO,
                      "key '%s': array of %llu strings at offset %zu exceeds the "
                      "%zu bytes left",
                      self->names + (uintptr_t)kv->key, (unsigned long long)n, s_pos(c), s_left(c));
    if (self->strs_used + n > self->strs_cap) {
        size_t cap = self->strs_cap ? self->strs_cap : 1024;
        while (cap < self->strs_used + n)
            cap *= 2;
        tr_gguf_str_t *p = realloc(self->strs, cap * sizeof *p);
        if (!p)
            return s_fail(c, TR_ENOMEM, "out of memory for %llu strings", (unsigned long long)n);
        self->strs = p;
        self->strs_cap = cap;
    }
    /* Offset into strs until parsing ends (strs may move); fixed up in s_fix_names. */
    kv->arr_str = (const tr_gguf_str_t *)(uintptr_t)self->strs_used;
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = s_read_str(c, &self->strs[self->strs_used + i], "array string"))) return rc;
    }
    self->strs_used += n;
    return TR_OK;
}

/* ---- main parse ---- */

static void s_fix_names(tr_gguf_t *self) {
    for (int64_t i = 0; i < self->n_kv; i++) {
        tr_gguf_kv_t *kv = &self->kv[i];
        kv->key = self->names + (uintptr_t)kv->key;
        if (kv->type == TR_GGUF_TYPE_ARRAY && kv->arr_type == TR_GGUF_TYPE_STRING)
            kv->arr_str = self->strs + (uintptr_t)kv->arr_str;
        else
            kv->arr_str = NULL;
    }
    for (int64_t i = 0; i < self->n_tensors; i++)
        self->tensors[i].name = self->names + (uintptr_t)self->tensors[i].name;
}

static int s_build_maps(tr_gguf_t *self, s_cursor_t *c) {
    self->kv_map_cap = s_map_cap(self->n_kv);
    self->t_map_cap = s_map_cap(self->n_tensors);
    self->kv_map = malloc(self->kv_map_cap * sizeof(int32_t));
    self->t_map = malloc(self->t_map_cap * sizeof(int32_t));
    if (!self->kv_map || !self->t_map) return s_fail(c, TR_ENOMEM, "out of memory");
    memset(self->kv_map, 0xff, self->kv_map_cap * sizeof(int32_t));
    memset(self->t_map, 0xff, self->t_map_cap * sizeof(int32_t));
    for (int64_t i = 0; i < self->n_kv; i++) {
        size_t m = self->kv_map_cap - 1, h = s_hash(self->kv[i].key) & m;
        while (self->kv_map[h] >= 0 && strcmp(self->kv[self->kv_map[h]].key, self->kv[i].key))
            h = (h + 1) & m;
        self->kv_map[h] = (int32_t)i; /* a duplicate key replaces the earlier one */
    }
    for (int64_t i = 0; i < self->n_tensors; i++) {
        size_t m = self->t_map_cap - 1, h = s_hash(self->tensors[i].name) & m;
        while (self->t_map[h] >= 0) {
            if (!strcmp(self->tensors[self->t_map[h]].name, self->tensors[i].name))
                return s_fail(c, TR_EPROTO, "duplicate tensor name '%s'", self->tensors[i].name);
            h = (h + 1) & m;
        }
        self->t_map[h] = (int32_t)i;
    }
    return TR_OK;
}

static int s_parse_tensor(tr_gguf_t *self, s_cursor_t *c, int64_t i) {
    tr_gguf_tensor_t *t = &self->tensors[i];
    tr_gguf_str_t name;
    uint32_t n_dims, type;
    int rc;
    if ((rc = s_read_str(c, &name, "tensor name"))) return rc;
    if ((rc = s_name_dup(self, name, &t->name)))
        return s_fail(c, rc, "out of memory for tensor names");
    const char *nm = self->names + (uintptr_t)t->name;
    if ((rc = s_read_u32(c, &n_dims, "tensor n_dims"))) return rc;
    if (n_dims > TR_GGUF_MAX_DIMS)
        return s_fail(c, TR_EPROTO, "tensor '%s': %u dimensions (at most %d)", nm, n_dims,
                      TR_GGUF_MAX_DIMS);
    t->n_dims = n_dims;
    int64_t ne_total = 1;
    for (int d = 0; d < TR_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if ((uint32_t)d < n_dims && (rc = s_read_u64(c, &ne, "tensor dimension"))) return rc;
        if (ne > (uint64_t)INT64_MAX)
            return s_fail(c, TR_EPROTO, "tensor '%s': dimension %d is negative", nm, d);
        t->ne[d] = (int64_t)ne;
        if (ne && ne_total > INT64_MAX / (int64_t)ne)
            return s_fail(c, TR_EPROTO, "tensor '%s': element count overflows", nm);
        ne_total *= (int64_t)ne;
    }
    t->n_elements = ne_total;
    if ((rc = s_read_u32(c, &type, "tensor type"))) return rc;
    if (!tr_ggml_type_block_bytes((int)type))
        return s_fail(c, TR_EPROTO, "tensor '%s': unknown or retired ggml type %u", nm, type);
    t->type = (tr_ggml_type_t)type;
    int64_t bs = tr_ggml_type_block_size((int)type);
    if (t->ne[0] % bs)
        return s_fail(c, TR_EPROTO,
                      "tensor '%s': ne[0]=%lld is not a multiple of the %s block "
                      "size %lld",
                      nm, (long long)t->ne[0], tr_ggml_type_name((int)type), (long long)bs);
    uint64_t blocks = (uint64_t)(ne_total / bs), bb = tr_ggml_type_block_bytes((int)type);
    if (blocks > SIZE_MAX / bb || blocks * bb > self->size)
        return s_fail(c, TR_EPROTO, "tensor '%s': %llu bytes is larger than the file", nm,
                      (unsigned long long)(blocks > UINT64_MAX / bb ? UINT64_MAX : blocks * bb));
    t->nbytes = (size_t)(blocks * bb);
    if ((rc = s_read_u64(c, &t->offset, "tensor offset"))) return rc;
    return TR_OK;
}

static int s_parse(tr_gguf_t *self, s_cursor_t *c) {
    uint32_t magic, version;
    uint64_t n_tensors, n_kv;
    int rc;
    if (self->size < 4)
        return s_fail(c, TR_EPROTO, "truncated file: %zu bytes, too short for a GGUF header",
                      self->size);
    if ((rc = s_read_u32(c, &magic, "magic"))) return rc;
    if (magic != TR_GGUF_MAGIC)
        return s_fail(c, TR_EPROTO, "bad magic %02x %02x %02x %02x (not a GGUF file)",
                      self->base[0], self->base[1], self->base[2], self->base[3]);
    if ((rc = s_read_u32(c, &version, "version"))) return rc;
    if (version == 1) return s_fail(c, TR_EPROTO, "GGUF version 1 is not supported (only 2 and 3)");
    if ((version & 0xffff) == 0 && version != 0)
        return s_fail(c, TR_EPROTO, "big-endian GGUF (version field 0x%08x) is not supported",
                      version);
    if (version != 2 && version != 3)
        return s_fail(c, TR_EPROTO, "unsupported GGUF version %u (only 2 and 3)", version);
    self->version = version;
    if ((rc = s_read_u64(c, &n_tensors, "tensor count"))) return rc;
    if ((rc = s_read_u64(c, &n_kv, "metadata count"))) return rc;
    /* Counts are checked against the bytes left before anything is allocated: a key/value
     * takes at least 13 bytes (8 key length, 4 type, 1 value), a tensor info at least 24
     * (8 name length, 4 n_dims, 4 type, 8 offset). */
    if (n_kv > s_left(c) / 13 || n_kv > INT32_MAX)
        return s_fail(c, TR_EPROTO, "absurd metadata count %llu for a %zu-byte file",
                      (unsigned long long)n_kv, self->size);
    if (n_tensors > s_left(c) / 24 || n_tensors > INT32_MAX)
        return s_fail(c, TR_EPROTO, "absurd tensor count %llu for a %zu-byte file",
                      (unsigned long long)n_tensors, self->size);
    self->kv = calloc(n_kv ? n_kv : 1, sizeof *self->kv);
    self->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *self->tensors);
    if (!self->kv || !self->tensors) return s_fail(c, TR_ENOMEM, "out of memory");

    self->alignment = TR_GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        tr_gguf_kv_t *kv = &self->kv[i];
        tr_gguf_str_t key;
        uint32_t type;
        if ((rc = s_read_str(c, &key, "metadata key"))) return rc;
        if ((rc = s_name_dup(self, key, &kv->key))) return s_fail(c, rc, "out of memory");
        self->n_kv = (int64_t)i + 1; /* so s_fix_names covers it even on failure paths */
        if ((rc = s_read_u32(c, &type, "metadata value type"))) return rc;
        if (type >= TR_GGUF_TYPE_COUNT)
            return s_fail(c, TR_EPROTO, "key '%.*s': unknown value type %u", (int)key.len, key.data,
                          type);
        kv->type = (tr_gguf_type_t)type;
        rc = type == TR_GGUF_TYPE_ARRAY ? s_read_array(self, c, kv) : s_read_scalar(c, type, kv);
        if (rc) return rc;
        if (key.len == 17 && !memcmp(key.data, "general.alignment", 17)) {
            if (type != TR_GGUF_TYPE_UINT32)
                return s_fail(c, TR_EPROTO, "general.alignment has type %s (expected uint32)",
                              tr_gguf_type_name((int)type));
            uint64_t a = kv->v.u64;
            if (a == 0 || (a & (a - 1)) || a > (1u << 30))
                return s_fail(c, TR_EPROTO, "general.alignment %llu is not a power of two",
                              (unsigned long long)a);
            self->alignment = (uint32_t)a;
        }
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        self->n_tensors = (int64_t)i + 1;
        if ((rc = s_parse_tensor(self, c, (int64_t)i))) return rc;
    }
    size_t pos = s_pos(c), a = self->alignment;
    self->data_offset = (pos + a - 1) / a * a;
    if (n_tensors && self->data_offset > self->size)
        return s_fail(c, TR_EPROTO,
                      "truncated file: data section at offset %zu, file has %zu "
                      "bytes",
                      self->data_offset, self->size);
    s_fix_names(self);
    size_t data_size = self->data_offset <= self->size ? self->size - self->data_offset : 0;
    for (int64_t i = 0; i < self->n_tensors; i++) {
        tr_gguf_tensor_t *t = &self->tensors[i];
        if (t->offset % a)
            return s_fail(c, TR_EPROTO,
                          "tensor '%s': offset %llu is not a multiple of the "
                          "alignment %zu",
                          t->name, (unsigned long long)t->offset, a);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return s_fail(c, TR_EPROTO,
                          "tensor '%s': bytes [%llu, %llu) lie outside the data "
                          "section (%zu bytes; truncated file?)",
                          t->name, (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->nbytes), data_size);
        t->data = self->base + self->data_offset + t->offset;
    }
    return s_build_maps(self, c);
}

static tr_gguf_t *s_new(const uint8_t *base, size_t size, bool mapped, const char *what,
                        int *status, char *err, size_t err_size) {
    s_cursor_t c = {.p = base,
                    .end = base + size,
                    .base = base,
                    .err = err,
                    .err_size = err_size,
                    .what = what};
    int rc = TR_ENOMEM;
    tr_gguf_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_fail(&c, rc, "out of memory");
        goto fail;
    }
    self->base = base;
    self->size = size;
    self->mapped = mapped;
    if ((rc = s_parse(self, &c))) goto fail;
    if (status) *status = TR_OK;
    return self;
fail:
    if (status) *status = rc;
    if (self) {
        self->mapped = false;             /* the caller unmaps */
        self->n_kv = self->n_tensors = 0; /* names may still be offsets: do not fix them */
        tr_gguf_destroy(&self);
    }
    return NULL;
}

tr_gguf_t *tr_gguf_new_from_memory(const void *data, size_t size, int *status, char *err,
                                   size_t err_size) {
    if (err && err_size) err[0] = '\0';
    return s_new(data, size, false, "<memory>", status, err, err_size);
}

tr_gguf_t *tr_gguf_new(const char *path, int *status, char *err, size_t err_size) {
    if (err && err_size) err[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (err && err_size) snprintf(err, err_size, "%s: %s", path, strerror(e));
        if (status) *status = e == ENOENT ? TR_ENOENT : TR_EIO;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (err && err_size) snprintf(err, err_size, "%s: not a regular file", path);
        if (status) *status = TR_EIO;
        close(fd);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    void *base = NULL;
    if (size > 0) {
        base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (base == MAP_FAILED) {
            int e = errno;
            if (err && err_size) snprintf(err, err_size, "%s: mmap: %s", path, strerror(e));
            if (status) *status = TR_EIO;
            close(fd);
            return NULL;
        }
    }
    close(fd);
    static const uint8_t empty[1];
    tr_gguf_t *self = s_new(base ? base : empty, size, base != NULL, path, status, err, err_size);
    if (!self && base) munmap(base, size);
    return self;
}

void tr_gguf_destroy(tr_gguf_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_gguf_t *self = *self_p;
    if (self->mapped) munmap((void *)self->base, self->size);
    free(self->kv);
    free(self->tensors);
    free(self->names);
    free(self->strs);
    free(self->kv_map);
    free(self->t_map);
    memset(self, 0x5a, sizeof *self); /* poison */
    free(self);
    *self_p = NULL;
}

/* ---- header ---- */

uint32_t tr_gguf_version(const tr_gguf_t *self) {
    return self->version;
}
uint32_t tr_gguf_alignment(const tr_gguf_t *self) {
    return self->alignment;
}
size_t tr_gguf_data_offset(const tr_gguf_t *self) {
    return self->data_offset;
}
const void *tr_gguf_base(const tr_gguf_t *self) {
    return self->base;
}
size_t tr_gguf_size(const tr_gguf_t *self) {
    return self->size;
}

/* ---- metadata ---- */

int64_t tr_gguf_n_kv(const tr_gguf_t *self) {
    return self->n_kv;
}

const tr_gguf_kv_t *tr_gguf_kv_at(const tr_gguf_t *self, int64_t i) {
    return i >= 0 && i < self->n_kv ? &self->kv[i] : NULL;
}

const tr_gguf_kv_t *tr_gguf_find_kv(const tr_gguf_t *self, const char *key) {
    size_t m = self->kv_map_cap - 1, h = s_hash(key) & m;
    for (int32_t j; (j = self->kv_map[h]) >= 0; h = (h + 1) & m)
        if (!strcmp(self->kv[j].key, key)) return &self->kv[j];
    return NULL;
}

static bool s_is_uint(int t) {
    return t == TR_GGUF_TYPE_UINT8 || t == TR_GGUF_TYPE_UINT16 || t == TR_GGUF_TYPE_UINT32 ||
           t == TR_GGUF_TYPE_UINT64;
}

static bool s_is_sint(int t) {
    return t == TR_GGUF_TYPE_INT8 || t == TR_GGUF_TYPE_INT16 || t == TR_GGUF_TYPE_INT32 ||
           t == TR_GGUF_TYPE_INT64;
}

/* Integer value of a scalar kv as (negative?, magnitude-ish) pair through i64/u64. */
static int s_get_int(const tr_gguf_t *self, const char *key, int64_t lo, uint64_t hi, bool *neg,
                     uint64_t *u, int64_t *s) {
    const tr_gguf_kv_t *kv = tr_gguf_find_kv(self, key);
    if (!kv) return TR_ENOENT;
    if (s_is_uint(kv->type)) {
        if (kv->v.u64 > hi) return TR_EINVAL;
        *neg = false;
        *u = kv->v.u64;
        *s = (int64_t)kv->v.u64;
        return TR_OK;
    }
    if (s_is_sint(kv->type)) {
        if (kv->v.i64 < lo || (kv->v.i64 >= 0 && (uint64_t)kv->v.i64 > hi)) return TR_EINVAL;
        *neg = kv->v.i64 < 0;
        *u = (uint64_t)kv->v.i64;
        *s = kv->v.i64;
        return TR_OK;
    }
    return TR_EINVAL;
}

int tr_gguf_get_u32(const tr_gguf_t *self, const char *key, uint32_t *out) {
    bool neg;
    uint64_t u;
    int64_t s;
    int rc = s_get_int(self, key, 0, UINT32_MAX, &neg, &u, &s);
    if (!rc) *out = (uint32_t)u;
    return rc;
}

int tr_gguf_get_i32(const tr_gguf_t *self, const char *key, int32_t *out) {
    bool neg;
    uint64_t u;
    int64_t s;
    int rc = s_get_int(self, key, INT32_MIN, INT32_MAX, &neg, &u, &s);
    if (!rc) *out = (int32_t)s;
    return rc;
}

int tr_gguf_get_u64(const tr_gguf_t *self, const char *key, uint64_t *out) {
    bool neg;
    uint64_t u;
    int64_t s;
    int rc = s_get_int(self, key, 0, UINT64_MAX, &neg, &u, &s);
    if (!rc) *out = u;
    return rc;
}

int tr_gguf_get_i64(const tr_gguf_t *self, const char *key, int64_t *out) {
    bool neg;
    uint64_t u;
    int64_t s;
    int rc = s_get_int(self, key, INT64_MIN, INT64_MAX, &neg, &u, &s);
    if (!rc) *out = s;
    return rc;
}

int tr_gguf_get_f64(const tr_gguf_t *self, const char *key, double *out) {
    const tr_gguf_kv_t *kv = tr_gguf_find_kv(self, key);
    if (!kv) return TR_ENOENT;
    if (kv->type != TR_GGUF_TYPE_FLOAT32 && kv->type != TR_GGUF_TYPE_FLOAT64) return TR_EINVAL;
    *out = kv->v.f64;
    return TR_OK;
}

int tr_gguf_get_f32(const tr_gguf_t *self, const char *key, float *out) {
    double d;
    int rc = tr_gguf_get_f64(self, key, &d);
    if (!rc) *out = (float)d;
    return rc;
}

int tr_gguf_get_bool(const tr_gguf_t *self, const char *key, bool *out) {
    const tr_gguf_kv_t *kv = tr_gguf_find_kv(self, key);
    if (!kv) return TR_ENOENT;
    if (kv->type != TR_GGUF_TYPE_BOOL) return TR_EINVAL;
    *out = kv->v.b;
    return TR_OK;
}

int tr_gguf_get_str(const tr_gguf_t *self, const char *key, tr_gguf_str_t *out) {
    const tr_gguf_kv_t *kv = tr_gguf_find_kv(self, key);
    if (!kv) return TR_ENOENT;
    if (kv->type != TR_GGUF_TYPE_STRING) return TR_EINVAL;
    *out = kv->v.str;
    return TR_OK;
}

int tr_gguf_get_arr(const tr_gguf_t *self, const char *key, int elem_type,
                    const tr_gguf_kv_t **out) {
    const tr_gguf_kv_t *kv = tr_gguf_find_kv(self, key);
    if (!kv) return TR_ENOENT;
    if (kv->type != TR_GGUF_TYPE_ARRAY) return TR_EINVAL;
    if (elem_type >= 0 && (int)kv->arr_type != elem_type) return TR_EINVAL;
    *out = kv;
    return TR_OK;
}

int tr_gguf_arr_get_i64(const tr_gguf_kv_t *kv, uint64_t i, int64_t *out) {
    if (kv->type != TR_GGUF_TYPE_ARRAY) return TR_EINVAL;
    if (i >= kv->arr_n) return TR_ERANGE;
    const uint8_t *p = (const uint8_t *)kv->arr_data + i * s_type_size(kv->arr_type);
    switch (kv->arr_type) {
    case TR_GGUF_TYPE_UINT8:
    case TR_GGUF_TYPE_BOOL:
        *out = p[0];
        return TR_OK;
    case TR_GGUF_TYPE_INT8:
        *out = (int8_t)p[0];
        return TR_OK;
    case TR_GGUF_TYPE_UINT16: {
        uint16_t x;
        memcpy(&x, p, 2);
        *out = x;
        return TR_OK;
    }
    case TR_GGUF_TYPE_INT16: {
        int16_t x;
        memcpy(&x, p, 2);
        *out = x;
        return TR_OK;
    }
    case TR_GGUF_TYPE_UINT32: {
        uint32_t x;
        memcpy(&x, p, 4);
        *out = x;
        return TR_OK;
    }
    case TR_GGUF_TYPE_INT32: {
        int32_t x;
        memcpy(&x, p, 4);
        *out = x;
        return TR_OK;
    }
    case TR_GGUF_TYPE_UINT64: {
        uint64_t x;
        memcpy(&x, p, 8);
        if (x > (uint64_t)INT64_MAX) return TR_EINVAL;
        *out = (int64_t)x;
        return TR_OK;
    }
    case TR_GGUF_TYPE_INT64:
        memcpy(out, p, 8);
        return TR_OK;
    default:
        return TR_EINVAL;
    }
}

int tr_gguf_arr_get_f64(const tr_gguf_kv_t *kv, uint64_t i, double *out) {
    if (kv->type != TR_GGUF_TYPE_ARRAY) return TR_EINVAL;
    if (i >= kv->arr_n) return TR_ERANGE;
    const uint8_t *p = (const uint8_t *)kv->arr_data + i * s_type_size(kv->arr_type);
    if (kv->arr_type == TR_GGUF_TYPE_FLOAT32) {
        float x;
        memcpy(&x, p, 4);
        *out = x;
        return TR_OK;
    }
    if (kv->arr_type == TR_GGUF_TYPE_FLOAT64) {
        memcpy(out, p, 8);
        return TR_OK;
    }
    int64_t v;
    int rc = tr_gguf_arr_get_i64(kv, i, &v);
    if (!rc) *out = (double)v;
    return rc;
}

int tr_gguf_arr_get_str(const tr_gguf_kv_t *kv, uint64_t i, tr_gguf_str_t *out) {
    if (kv->type != TR_GGUF_TYPE_ARRAY || kv->arr_type != TR_GGUF_TYPE_STRING) return TR_EINVAL;
    if (i >= kv->arr_n) return TR_ERANGE;
    *out = kv->arr_str[i];
    return TR_OK;
}

char *tr_gguf_str_copy(tr_gguf_str_t s, char *buf, size_t buf_size) {
    if (!buf_size) return buf;
    size_t n = s.len < buf_size - 1 ? (size_t)s.len : buf_size - 1;
    memcpy(buf, s.data, n);
    buf[n] = '\0';
    return buf;
}

bool tr_gguf_str_eq(tr_gguf_str_t s, const char *cstr) {
    size_t n = strlen(cstr);
    return n == s.len && !memcmp(s.data, cstr, n);
}

/* ---- tensors ---- */

int64_t tr_gguf_n_tensors(const tr_gguf_t *self) {
    return self->n_tensors;
}

const tr_gguf_tensor_t *tr_gguf_tensor_at(const tr_gguf_t *self, int64_t i) {
    return i >= 0 && i < self->n_tensors ? &self->tensors[i] : NULL;
}

const tr_gguf_tensor_t *tr_gguf_find_tensor(const tr_gguf_t *self, const char *name) {
    size_t m = self->t_map_cap - 1, h = s_hash(name) & m;
    for (int32_t j; (j = self->t_map[h]) >= 0; h = (h + 1) & m)
        if (!strcmp(self->tensors[j].name, name)) return &self->tensors[j];
    return NULL;
}
