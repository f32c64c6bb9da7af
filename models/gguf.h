/*  models/gguf.h - read-only GGUF (v2, v3) file reader over mmap.
 *
 *  A tr_gguf_t maps one GGUF file (or borrows a caller's buffer), checks every count, length
 *  and offset against the size of the mapping, and exposes
 *    - the header (version, counts, alignment),
 *    - the metadata key/values, scalars and arrays (of numbers, bools or strings), with typed
 *      accessors (tr_gguf_get_u32, tr_gguf_get_str, tr_gguf_get_arr, ...),
 *    - the tensor infos (name, dims in ggml order, ggml type, offset, byte size) with a
 *      pointer to each tensor's bytes inside the mapping.
 *  Owns: the mapping, key and tensor names (NUL-terminated copies), the metadata index.
 *  String values point into the mapping (tr_gguf_str_t: pointer + length, NOT NUL-terminated)
 *  and live as long as the tr_gguf_t. Numeric array elements may be unaligned in the file:
 *  read them with tr_gguf_arr_get_* (which memcpy), never by casting arr->data.
 *  A malformed file (bad magic, unsupported version, truncation, absurd counts, offsets out
 *  of bounds, unknown types) gives a status (TR_EPROTO, TR_EIO, TR_ENOENT, TR_ENOMEM) and a
 *  one-line message; it never crashes.
 *  Thread: a tr_gguf_t is immutable after tr_gguf_new*; any thread may read it concurrently.
 *
 *      char err[256];
 *      int rc;
 *      tr_gguf_t *g = tr_gguf_new("model.gguf", &rc, err, sizeof err);
 *      if (!g) { TR_ERROR("%s", err); return rc; }
 *      uint32_t n_layer;
 *      rc = tr_gguf_get_u32(g, "llama.block_count", &n_layer);
 *      const tr_gguf_tensor_t *t = tr_gguf_find_tensor(g, "token_embd.weight");
 *      if (t && t->type == TR_GGML_TYPE_F16) use((const uint16_t *)t->data, t->ne[0], t->ne[1]);
 *      tr_gguf_destroy(&g);                                                            */
#ifndef TR_GGUF_H
#define TR_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TR_GGUF_MAGIC             0x46554747u /* "GGUF" read as a little-endian uint32 */
#define TR_GGUF_DEFAULT_ALIGNMENT 32
#define TR_GGUF_MAX_DIMS          4

/* ---- metadata value types (the numbers are the file format's) ---- */
typedef enum {
    TR_GGUF_TYPE_UINT8 = 0,
    TR_GGUF_TYPE_INT8 = 1,
    TR_GGUF_TYPE_UINT16 = 2,
    TR_GGUF_TYPE_INT16 = 3,
    TR_GGUF_TYPE_UINT32 = 4,
    TR_GGUF_TYPE_INT32 = 5,
    TR_GGUF_TYPE_FLOAT32 = 6,
    TR_GGUF_TYPE_BOOL = 7,
    TR_GGUF_TYPE_STRING = 8,
    TR_GGUF_TYPE_ARRAY = 9,
    TR_GGUF_TYPE_UINT64 = 10,
    TR_GGUF_TYPE_INT64 = 11,
    TR_GGUF_TYPE_FLOAT64 = 12,
    TR_GGUF_TYPE_COUNT
} tr_gguf_type_t;

/* ---- ggml tensor types (the numbers are ggml's; gaps are retired types) ---- */
typedef enum {
    TR_GGML_TYPE_F32 = 0,
    TR_GGML_TYPE_F16 = 1,
    TR_GGML_TYPE_Q4_0 = 2,
    TR_GGML_TYPE_Q4_1 = 3,
    TR_GGML_TYPE_Q5_0 = 6,
    TR_GGML_TYPE_Q5_1 = 7,
    TR_GGML_TYPE_Q8_0 = 8,
    TR_GGML_TYPE_Q8_1 = 9,
    TR_GGML_TYPE_Q2_K = 10,
    TR_GGML_TYPE_Q3_K = 11,
    TR_GGML_TYPE_Q4_K = 12,
    TR_GGML_TYPE_Q5_K = 13,
    TR_GGML_TYPE_Q6_K = 14,
    TR_GGML_TYPE_Q8_K = 15,
    TR_GGML_TYPE_IQ2_XXS = 16,
    TR_GGML_TYPE_IQ2_XS = 17,
    TR_GGML_TYPE_IQ3_XXS = 18,
    TR_GGML_TYPE_IQ1_S = 19,
    TR_GGML_TYPE_IQ4_NL = 20,
    TR_GGML_TYPE_IQ3_S = 21,
    TR_GGML_TYPE_IQ2_S = 22,
    TR_GGML_TYPE_IQ4_XS = 23,
    TR_GGML_TYPE_I8 = 24,
    TR_GGML_TYPE_I16 = 25,
    TR_GGML_TYPE_I32 = 26,
    TR_GGML_TYPE_I64 = 27,
    TR_GGML_TYPE_F64 = 28,
    TR_GGML_TYPE_IQ1_M = 29,
    TR_GGML_TYPE_BF16 = 30,
    TR_GGML_TYPE_TQ1_0 = 34,
    TR_GGML_TYPE_TQ2_0 = 35,
    TR_GGML_TYPE_MXFP4 = 39,
    TR_GGML_TYPE_NVFP4 = 40,
    TR_GGML_TYPE_Q1_0 = 41,
    TR_GGML_TYPE_COUNT = 42
} tr_ggml_type_t;

/* A string inside the mapping: borrowed, `len` bytes, not NUL-terminated. */
typedef struct {
    const char *data; /* borrowed: points into the file mapping */
    uint64_t len;
} tr_gguf_str_t;

/* One metadata key/value. Scalars are widened into `v`; arrays keep a pointer to their
 * elements in the mapping (numbers, possibly unaligned) or an index of their strings. */
typedef struct {
    const char *key;     /* owned by the tr_gguf_t, NUL-terminated */
    tr_gguf_type_t type; /* value type; TR_GGUF_TYPE_ARRAY for arrays */
    union {
        uint64_t u64;      /* UINT8/16/32/64 */
        int64_t i64;       /* INT8/16/32/64 */
        double f64;        /* FLOAT32/64 */
        bool b;            /* BOOL */
        tr_gguf_str_t str; /* STRING */
    } v;
    /* arrays only: */
    tr_gguf_type_t arr_type;      /* element type (ARRAY for nested arrays: no element access) */
    uint64_t arr_n;               /* number of elements */
    const void *arr_data;         /* borrowed: first element in the mapping (numbers, bools) */
    const tr_gguf_str_t *arr_str; /* owned by the tr_gguf_t: arr_n strings (string arrays) */
} tr_gguf_kv_t;

/* One tensor info. ne[0] is the fastest-varying dimension (ggml order); unused dims are 1. */
typedef struct {
    const char *name; /* owned by the tr_gguf_t, NUL-terminated */
    uint32_t n_dims;
    int64_t ne[TR_GGUF_MAX_DIMS];
    tr_ggml_type_t type;
    uint64_t offset;    /* from the start of the data section (a multiple of the alignment) */
    int64_t n_elements; /* product of ne */
    size_t nbytes;      /* n_elements / block size * block bytes */
    const void *data;   /* borrowed: the tensor's bytes in the mapping */
} tr_gguf_tensor_t;

typedef struct tr_gguf tr_gguf_t;

/* ---- open / close ---- */

/* Maps and parses the GGUF file at `path`. Returns the reader (the caller owns it) or NULL;
 * on NULL, *status (if not NULL) holds the tr_status_t and err (if not NULL) a message of at
 * most err_size bytes naming the file and the problem. */
tr_gguf_t *tr_gguf_new(const char *path, int *status, char *err, size_t err_size);

/* Same over a caller's buffer, which is borrowed: it must outlive the reader. */
tr_gguf_t *tr_gguf_new_from_memory(const void *data, size_t size, int *status, char *err,
                                   size_t err_size);

/* Unmaps and frees *self_p and sets it to NULL; NULL-safe. Every pointer obtained from the
 * reader (keys, strings, tensor data) becomes invalid. */
void tr_gguf_destroy(tr_gguf_t **self_p);

/* ---- header ---- */
uint32_t tr_gguf_version(const tr_gguf_t *self);
uint32_t tr_gguf_alignment(const tr_gguf_t *self);
/* Byte offset of the data section from the start of the file. */
size_t tr_gguf_data_offset(const tr_gguf_t *self);
/* The whole file (or buffer): borrowed. */
const void *tr_gguf_base(const tr_gguf_t *self);
size_t tr_gguf_size(const tr_gguf_t *self);

/* ---- metadata ---- */
int64_t tr_gguf_n_kv(const tr_gguf_t *self);
/* i-th key/value in file order, or NULL when i is out of range. Borrowed. */
const tr_gguf_kv_t *tr_gguf_kv_at(const tr_gguf_t *self, int64_t i);
/* Key lookup (hash map; the last duplicate wins), or NULL. Borrowed. */
const tr_gguf_kv_t *tr_gguf_find_kv(const tr_gguf_t *self, const char *key);

/* Typed getters. Return TR_OK, TR_ENOENT (no such key) or TR_EINVAL (the value has another
 * type or does not fit: the integer getters accept any integer type whose value fits, the
 * float getters accept FLOAT32/FLOAT64). *out is left untouched on failure. */
int tr_gguf_get_u32(const tr_gguf_t *self, const char *key, uint32_t *out);
int tr_gguf_get_i32(const tr_gguf_t *self, const char *key, int32_t *out);
int tr_gguf_get_u64(const tr_gguf_t *self, const char *key, uint64_t *out);
int tr_gguf_get_i64(const tr_gguf_t *self, const char *key, int64_t *out);
int tr_gguf_get_f32(const tr_gguf_t *self, const char *key, float *out);
int tr_gguf_get_f64(const tr_gguf_t *self, const char *key, double *out);
int tr_gguf_get_bool(const tr_gguf_t *self, const char *key, bool *out);
/* String value (borrowed, not NUL-terminated). */
int tr_gguf_get_str(const tr_gguf_t *self, const char *key, tr_gguf_str_t *out);
/* Array value: *out points at the kv (type ARRAY). `elem_type` checks the element type
 * unless it is -1. */
int tr_gguf_get_arr(const tr_gguf_t *self, const char *key, int elem_type,
                    const tr_gguf_kv_t **out);

/* Array elements (kv must be an array; i < kv->arr_n). Integer reads accept every integer
 * element type and BOOL; float reads accept FLOAT32/FLOAT64 and integers. Return TR_OK,
 * TR_ERANGE (index) or TR_EINVAL (type). */
int tr_gguf_arr_get_i64(const tr_gguf_kv_t *kv, uint64_t i, int64_t *out);
int tr_gguf_arr_get_f64(const tr_gguf_kv_t *kv, uint64_t i, double *out);
int tr_gguf_arr_get_str(const tr_gguf_kv_t *kv, uint64_t i, tr_gguf_str_t *out);

/* Copies the string into buf as a NUL-terminated string, truncating to buf_size - 1 bytes;
 * returns buf. */
char *tr_gguf_str_copy(tr_gguf_str_t s, char *buf, size_t buf_size);
/* True when the GGUF string equals the C string. */
bool tr_gguf_str_eq(tr_gguf_str_t s, const char *cstr);

/* ---- tensors ---- */
int64_t tr_gguf_n_tensors(const tr_gguf_t *self);
const tr_gguf_tensor_t *tr_gguf_tensor_at(const tr_gguf_t *self, int64_t i);
const tr_gguf_tensor_t *tr_gguf_find_tensor(const tr_gguf_t *self, const char *name);

/* ---- type tables (constant; any thread) ---- */
/* "f32", "q8_0", ...; "?" for an unknown type. */
const char *tr_ggml_type_name(int type);
/* Elements per block (1 for plain types) and bytes per block; 0 for an unknown/retired type. */
int64_t tr_ggml_type_block_size(int type);
size_t tr_ggml_type_block_bytes(int type);
/* "uint8" ... "float64"; "?" for an unknown type. */
const char *tr_gguf_type_name(int type);

#endif
