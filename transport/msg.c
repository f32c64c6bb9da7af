/*  transport/msg.c - the table-driven codec for every message in msgs.def.
 *
 *  Decode builds a msgpack object tree over untrusted bytes, then checks it:
 *    1. A map whose keys and values are all scalars (nearly every message) is read in one
 *       pass by s_build_flat, bounds-checking each item as it goes; the pair array is
 *       sized by a count already checked against the bytes left.
 *    2. Anything else first goes through s_scan, which walks the msgpack structure without
 *       allocating, checking that every container's declared count fits the bytes that
 *       remain and that nesting stays within TR_MSG_MAX_DEPTH (msgpack-c allocates arrays
 *       by their declared count, so without this a 5-byte frame could ask for a 96 GiB
 *       allocation); then msgpack_unpack builds the tree.
 *    Either way strings and bins point into the frame, the tree lives in a zone (a 512-byte
 *    one per message for tr_msg_decode, the caller's for tr_msg_decode_next), and the
 *    field pass checks each key against the type's field table.
 *  Encode walks the same table. Thread-safe: no state beyond the constant tables.      */
#include "transport/msg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TR_MSG_MAX_DEPTH 32
#define TR_MSG_STRS_ITEM_MAX 4096
#define TR_MSG_FROM_MAX 64

/* ---- descriptor tables, generated from msgs.def ---- */

#define TR_MSG_REQ true
#define TR_MSG_OPT false
#define TR_MSG_FIELD_DESC(ident, name, T, req, limit, doc)                                 \
    {#name, TR_FT_##T, TR_MSG_##req, (uint64_t)(limit), offsetof(tr_msg_##ident##_t, name), doc, \
     sizeof(#name) - 1},
#define X(E, ident, wire, ver, doc)                                                        \
    static const tr_field_desc_t s_fields_##ident[] = {TR_FIELDS_##ident(TR_MSG_FIELD_DESC)};
TR_MSG_LIST(X)
#undef X

static const tr_msg_desc_t s_descs[TR_MSG_COUNT] = {
    [TR_MSG_NONE] = {NULL, 0, NULL, NULL, 0, 0},
#define X(E, ident, wire, ver, doc)                                                        \
    [TR_MSG_##E] = {wire, ver, doc, s_fields_##ident, (int)TR_ARRAY_LEN(s_fields_##ident),     \
                    sizeof(wire) - 1},
    TR_MSG_LIST(X)
#undef X
};

_Static_assert(TR_MSG_COUNT < 64, "message types fit the tables");

const tr_msg_desc_t *tr_msg_desc(tr_msg_type_t type) {
    if (type <= TR_MSG_NONE || type >= TR_MSG_COUNT) return NULL;
    return &s_descs[type];
}

const char *tr_msg_type_name(tr_msg_type_t type) {
    const tr_msg_desc_t *d = tr_msg_desc(type);
    return d ? d->name : "?";
}

/* The last type found, per thread: an inbox mostly sees runs of one type. */
static _Thread_local int s_last_type = 1;

static inline int s_type_is(int t, const char *name, size_t n) {
    const tr_msg_desc_t *d = &s_descs[t];
    return d->name_n == n && (n == 0 || (d->name[0] == name[0] && memcmp(d->name, name, n) == 0));
}

tr_msg_type_t tr_msg_type_from_name(const char *name, size_t n) {
    if (s_type_is(s_last_type, name, n)) return (tr_msg_type_t)s_last_type;
    for (int t = 1; t < TR_MSG_COUNT; t++)
        if (s_type_is(t, name, n)) {
            s_last_type = t;
            return (tr_msg_type_t)t;
        }
    return TR_MSG_NONE;
}

const char *tr_field_type_name(tr_field_type_t t) {
    switch (t) {
    case TR_FT_STR: return "str";
    case TR_FT_ID: return "str | int";
    case TR_FT_INT: return "int >= 0";
    case TR_FT_SINT: return "int";
    case TR_FT_FLOAT: return "float";
    case TR_FT_BOOL: return "bool";
    case TR_FT_BIN: return "bin";
    case TR_FT_I32S: return "bin (int32 LE) | [int]";
    case TR_FT_STRS: return "[str]";
    case TR_FT_ANY: return "any";
    }
    return "?";
}

/* ---- small helpers ---- */

tr_str_t tr_str_c(const char *s) {
    tr_str_t r = {s, s ? (uint32_t)strlen(s) : 0};
    return r;
}

char *tr_str_copy(tr_str_t s, char *buf, size_t bufsize) {
    if (bufsize == 0) return buf;
    size_t n = s.n < bufsize - 1 ? s.n : bufsize - 1;
    if (n) memcpy(buf, s.p, n);
    buf[n] = '\0';
    return buf;
}

int tr_str_eq(tr_str_t s, const char *c) {
    size_t n = strlen(c);
    return s.n == n && (n == 0 || memcmp(s.p, c, n) == 0);
}

int32_t tr_i32s_at(tr_i32s_t a, uint32_t i) {
    const uint8_t *b = a.p + 4 * (size_t)i;
    return (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                     (uint32_t)b[3] << 24);
}

int64_t tr_bin_count(tr_bin_t b, size_t width) {
    return b.n % width ? -1 : (int64_t)(b.n / width);
}

int64_t tr_bin_i64(tr_bin_t b, uint32_t i) {
    int64_t v;
    memcpy(&v, b.p + 8 * (size_t)i, 8); /* little-endian hosts only (x86-64, aarch64) */
    return v;
}

float tr_bin_f32(tr_bin_t b, uint32_t i) {
    float v;
    memcpy(&v, b.p + 4 * (size_t)i, 4);
    return v;
}

tr_str_t tr_strs_at(tr_strs_t a, uint32_t i) {
    if (a.strs) return a.strs[i];
    tr_str_t r = {a.items[i].via.str.ptr, a.items[i].via.str.size};
    return r;
}

void tr_msg_init_error(tr_msg_t *m, const tr_id_t *id, const char *code, const char *field,
                       const char *text) {
    tr_msg_init(m, TR_MSG_ERROR);
    if (id) TR_MSG_SET(m, error, id, *id);
    TR_MSG_SET(m, error, code, tr_str_c(code));
    TR_MSG_SET(m, error, message, tr_str_c(text));
    if (field && *field) TR_MSG_SET(m, error, field, tr_str_c(field));
}

int tr_msg_id(const tr_msg_t *m, tr_id_t *id) {
    const tr_msg_desc_t *d = tr_msg_desc(m->type);
    for (int i = 0; d && i < d->n_fields; i++) {
        if (d->fields[i].type != TR_FT_ID || strcmp(d->fields[i].name, "id") != 0) continue;
        if (!(m->present >> i & 1)) return 0;
        memcpy(id, (const uint8_t *)&m->u + d->fields[i].offset, sizeof *id);
        return 1;
    }
    return 0;
}

void tr_pack_cstr(msgpack_packer *pk, const char *s) {
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void tr_id_pack(msgpack_packer *pk, tr_id_t id) {
    if (id.is_str) {
        msgpack_pack_str(pk, id.s.n);
        msgpack_pack_str_body(pk, id.s.p, id.s.n);
    } else {
        msgpack_pack_int64(pk, id.i);
    }
}

static const char *s_obj_type_name(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "?";
}

/* ---- pass 1: structural scan, no allocation ---- */

/* Reads a big-endian unsigned of `len` bytes. */
static uint64_t s_be(const uint8_t *p, int len) {
    uint64_t v = 0;
    for (int i = 0; i < len; i++) v = v << 8 | p[i];
    return v;
}

/* Scans one object at p[0..n); sets *used. Returns 0, or -1 (truncated / bad byte),
 * -2 (too deep), -3 (declared count exceeds the bytes left). */
static int s_scan(const uint8_t *p, size_t n, size_t *used, int depth) {
    if (depth > TR_MSG_MAX_DEPTH) return -2;
    if (n < 1) return -1;
    uint8_t b = p[0];
    size_t hdr = 1, body = 0;
    uint64_t items = 0; /* child objects to scan (maps count keys and values) */
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixint, nil, bool */
    } else if ((b & 0xf0) == 0x80) {
        items = 2u * (b & 0x0f);
    } else if ((b & 0xf0) == 0x90) {
        items = b & 0x0f;
    } else if ((b & 0xe0) == 0xa0) {
        body = b & 0x1f;
    } else {
        static const int8_t fixed[] = {
            /* c4 bin8 */ -1, -2, -4, /* c7 ext8 */ -1, -2, -4,
            /* ca f32 */ 4, 8, /* cc uint */ 1, 2, 4, 8, /* d0 int */ 1, 2, 4, 8,
            /* d4 fixext */ 2, 3, 5, 9, 17, /* d9 str */ -1, -2, -4,
            /* dc array */ -2, -4, /* de map */ -2, -4};
        if (b == 0xc1) return -1;
        int k = fixed[b - 0xc4];
        if (k > 0) {
            body = (size_t)k;
        } else {
            int len = -k;
            if (n < 1 + (size_t)len) return -1;
            uint64_t cnt = s_be(p + 1, len);
            hdr = 1 + (size_t)len;
            if (b >= 0xdc && b <= 0xdd) items = cnt;
            else if (b >= 0xde) items = 2 * cnt;
            else if (b >= 0xc7 && b <= 0xc9) body = (size_t)cnt + 1; /* ext: type byte */
            else body = (size_t)cnt;
        }
    }
    /* msgpack-c's unpacker holds at most 32 open containers (MSGPACK_EMBED_STACK_SIZE),
     * empty ones included: refuse the 33rd here, with the nesting error. */
    bool container = (b & 0xe0) == 0x80 || (b >= 0xdc && b <= 0xdf);
    if (container && depth >= TR_MSG_MAX_DEPTH) return -2;
    if (hdr > n || body > n - hdr) return -1;
    size_t off = hdr + body;
    if (items > n - off) return -3; /* every child needs at least one byte */
    for (uint64_t i = 0; i < items; i++) {
        size_t u;
        int rc = s_scan(p + off, n - off, &u, depth + 1);
        if (rc) return rc;
        off += u;
    }
    *used = off;
    return 0;
}

/* ---- pass 2: fields ---- */

__attribute__((format(printf, 4, 5))) static int s_fail(tr_msg_err_t *err, const char *code,
                                                        const char *field, const char *fmt, ...) {
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof err->text, fmt, ap);
    va_end(ap);
    return TR_EPROTO;
}

/* Keys are a few bytes: compare inline rather than call memcmp (hot: every key of every
 * message goes through here once per candidate name). */
static inline int s_key_is_n(const msgpack_object *k, const char *name, size_t n) {
    if (k->via.str.size != n) return 0;
    const char *p = k->via.str.ptr;
    for (size_t i = 0; i < n; i++)
        if (p[i] != name[i]) return 0;
    return 1;
}

/* For literals: the compiler folds the strlen. */
static int s_key_is(const msgpack_object *k, const char *name) {
    return s_key_is_n(k, name, strlen(name));
}

static int s_fail_dup(tr_msg_err_t *err, const msgpack_object *k) {
    char name[64];
    tr_str_t ks = {k->via.str.ptr, k->via.str.size};
    return s_fail(err, "bad_request", tr_str_copy(ks, name, sizeof name), "duplicate key '%s'",
                  name);
}

/* |v| <= limit (limit 0 = any), with no overflow at INT64_MIN. */
static int s_in_limit(int64_t v, uint64_t limit) {
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    return limit == 0 || mag <= limit;
}

static int s_get_int(const msgpack_object *o, int64_t *out) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return 0;
    }
    return -1;
}

/* Decodes one field value into its slot; on failure fills err. */
static int s_decode_field(const tr_field_desc_t *f, const msgpack_object *o, void *slot,
                          msgpack_zone *zone, tr_msg_err_t *err) {
    switch (f->type) {
    case TR_FT_STR: {
        if (o->type != MSGPACK_OBJECT_STR)
            return s_fail(err, "bad_request", f->name, "field '%s': expected str, got %s", f->name,
                          s_obj_type_name(o));
        if (f->limit && o->via.str.size > f->limit)
            return s_fail(err, "bad_request", f->name,
                          "field '%s': string of %u bytes exceeds the limit of %llu", f->name,
                          o->via.str.size, (unsigned long long)f->limit);
        tr_str_t *s = slot;
        s->p = o->via.str.ptr;
        s->n = o->via.str.size;
        return TR_OK;
    }
    case TR_FT_ID: {
        tr_id_t *id = slot;
        memset(id, 0, sizeof *id);
        if (o->type == MSGPACK_OBJECT_STR) {
            if (o->via.str.size > f->limit)
                return s_fail(err, "bad_request", f->name,
                              "field '%s': id of %u bytes exceeds the limit of %llu", f->name,
                              o->via.str.size, (unsigned long long)f->limit);
            id->is_str = true;
            id->s.p = o->via.str.ptr;
            id->s.n = o->via.str.size;
            return TR_OK;
        }
        if (s_get_int(o, &id->i) == 0) return TR_OK;
        return s_fail(err, "bad_request", f->name, "field '%s': expected str or int, got %s",
                      f->name, s_obj_type_name(o));
    }
    case TR_FT_INT:
    case TR_FT_SINT: {
        int64_t v;
        if (s_get_int(o, &v) != 0) {
            if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) {
                double d = o->via.f64;
                if (d == floor(d) && d >= -9.0e18 && d <= 9.0e18) {
                    v = (int64_t)d; /* 3.0 from a JSON-minded client is 3 */
                    goto range;
                }
            }
            return s_fail(err, "bad_request", f->name, "field '%s': expected int, got %s",
                          f->name, s_obj_type_name(o));
        }
    range:
        if (f->type == TR_FT_INT && v < 0)
            return s_fail(err, "bad_request", f->name,
                          "field '%s': must be >= 0, got %lld", f->name, (long long)v);
        if (!s_in_limit(v, f->limit))
            return s_fail(err, "bad_request", f->name, "field '%s': %lld exceeds the limit of %llu",
                          f->name, (long long)v, (unsigned long long)f->limit);
        *(int64_t *)slot = v;
        return TR_OK;
    }
    case TR_FT_FLOAT: {
        double d;
        int64_t i;
        if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) d = o->via.f64;
        else if (s_get_int(o, &i) == 0) d = (double)i;
        else
            return s_fail(err, "bad_request", f->name, "field '%s': expected float, got %s",
                          f->name, s_obj_type_name(o));
        if (!isfinite(d))
            return s_fail(err, "bad_request", f->name, "field '%s': must be finite", f->name);
        *(double *)slot = d;
        return TR_OK;
    }
    case TR_FT_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return s_fail(err, "bad_request", f->name, "field '%s': expected bool, got %s",
                          f->name, s_obj_type_name(o));
        *(bool *)slot = o->via.boolean;
        return TR_OK;
    case TR_FT_BIN: {
        if (o->type != MSGPACK_OBJECT_BIN)
            return s_fail(err, "bad_request", f->name, "field '%s': expected bin, got %s", f->name,
                          s_obj_type_name(o));
        if (f->limit && o->via.bin.size > f->limit)
            return s_fail(err, "bad_request", f->name,
                          "field '%s': %u bytes exceed the limit of %llu", f->name,
                          o->via.bin.size, (unsigned long long)f->limit);
        tr_bin_t *b = slot;
        b->p = (const uint8_t *)o->via.bin.ptr;
        b->n = o->via.bin.size;
        return TR_OK;
    }
    case TR_FT_I32S: {
        tr_i32s_t *a = slot;
        if (o->type == MSGPACK_OBJECT_BIN) {
            if (o->via.bin.size % 4)
                return s_fail(err, "bad_request", f->name,
                              "field '%s': bin of %u bytes is not a whole number of int32",
                              f->name, o->via.bin.size);
            a->p = (const uint8_t *)o->via.bin.ptr;
            a->n = o->via.bin.size / 4;
        } else if (o->type == MSGPACK_OBJECT_ARRAY) {
            uint32_t n = o->via.array.size;
            if (f->limit && n > f->limit) goto too_many;
            uint8_t *buf = n ? msgpack_zone_malloc(zone, 4 * (size_t)n) : NULL;
            if (n && !buf) return s_fail(err, "internal", f->name, "out of memory");
            for (uint32_t i = 0; i < n; i++) {
                int64_t v;
                if (s_get_int(&o->via.array.ptr[i], &v) != 0 || v < INT32_MIN || v > INT32_MAX)
                    return s_fail(err, "bad_request", f->name,
                                  "field '%s': item %u is not an int32 (%s)", f->name, i,
                                  s_obj_type_name(&o->via.array.ptr[i]));
                uint32_t u = (uint32_t)(int32_t)v;
                buf[4 * i] = (uint8_t)u;
                buf[4 * i + 1] = (uint8_t)(u >> 8);
                buf[4 * i + 2] = (uint8_t)(u >> 16);
                buf[4 * i + 3] = (uint8_t)(u >> 24);
            }
            a->p = buf;
            a->n = n;
        } else {
            return s_fail(err, "bad_request", f->name,
                          "field '%s': expected array of int or bin, got %s", f->name,
                          s_obj_type_name(o));
        }
        if (f->limit && a->n > f->limit) goto too_many;
        return TR_OK;
    too_many:
        return s_fail(err, "bad_request", f->name, "field '%s': more than %llu items", f->name,
                      (unsigned long long)f->limit);
    }
    case TR_FT_STRS: {
        tr_strs_t *a = slot;
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return s_fail(err, "bad_request", f->name, "field '%s': expected array of str, got %s",
                          f->name, s_obj_type_name(o));
        if (f->limit && o->via.array.size > f->limit)
            return s_fail(err, "bad_request", f->name, "field '%s': more than %llu items", f->name,
                          (unsigned long long)f->limit);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            const msgpack_object *it = &o->via.array.ptr[i];
            if (it->type != MSGPACK_OBJECT_STR)
                return s_fail(err, "bad_request", f->name, "field '%s': item %u is %s, not str",
                              f->name, i, s_obj_type_name(it));
            if (it->via.str.size > TR_MSG_STRS_ITEM_MAX)
                return s_fail(err, "bad_request", f->name,
                              "field '%s': item %u is longer than %d bytes", f->name, i,
                              TR_MSG_STRS_ITEM_MAX);
        }
        a->items = o->via.array.ptr;
        a->strs = NULL;
        a->n = o->via.array.size;
        return TR_OK;
    }
    case TR_FT_ANY: {
        tr_any_t *a = slot;
        a->obj = o;
        a->packed = NULL;
        a->packed_n = 0;
        return TR_OK;
    }
    }
    return s_fail(err, "internal", f->name, "field '%s': unknown field type", f->name);
}

void tr_msg_init(tr_msg_t *m, tr_msg_type_t type) {
    memset(m, 0, sizeof *m);
    m->type = type;
    const tr_msg_desc_t *d = tr_msg_desc(type);
    m->v = d ? d->version : 1;
}

void tr_msg_fini(tr_msg_t *m) {
    if (m->zone) msgpack_zone_free(m->zone);
    m->zone = NULL;
    m->root = NULL;
}

/* Reads `id` from the root map for error replies, before full validation. */
static void s_peek_id(const msgpack_object *root, tr_msg_err_t *err) {
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || !s_key_is(&kv->key, "id")) continue;
        const msgpack_object *o = &kv->val;
        if (o->type == MSGPACK_OBJECT_STR && o->via.str.size < sizeof err->id_buf) {
            if (o->via.str.size) memcpy(err->id_buf, o->via.str.ptr, o->via.str.size);
            err->id_buf[o->via.str.size] = '\0';
            err->id.is_str = true;
            err->id.s.p = err->id_buf;
            err->id.s.n = o->via.str.size;
            err->has_id = true;
        } else if (s_get_int(o, &err->id.i) == 0) {
            err->id.is_str = false;
            err->has_id = true;
        }
        return;
    }
}

/* ---- pass 2, fast: a flat map in one pass ---- */

/* Reads one scalar (nil, bool, int, float, str, bin) at p[0..n), n >= 1, into *o exactly
 * as msgpack-c's unpacker would; returns its length, or 0 for anything else (a container,
 * ext, a bad or truncated byte): the caller then takes the general path, which also gives
 * the error. Hot path: every message between actors goes through here. */
static size_t s_flat_scalar(const uint8_t *p, size_t n, msgpack_object *o) {
    uint8_t b = p[0];
    size_t hdr, len;
    if (b <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = b;
        return 1;
    }
    if (b >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t)b;
        return 1;
    }
    if ((b & 0xe0) == 0xa0) {
        hdr = 1;
        len = b & 0x1f;
        goto str;
    }
    switch (b) {
    case 0xc0: o->type = MSGPACK_OBJECT_NIL; return 1;
    case 0xc2:
    case 0xc3:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = b == 0xc3;
        return 1;
    case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
    case 0xd9: case 0xda: case 0xdb: { /* str 8/16/32 */
        int k = 1 << ((b >= 0xd9 ? b - 0xd9 : b - 0xc4));
        if (n < 1 + (size_t)k) return 0;
        hdr = 1 + (size_t)k;
        len = (size_t)s_be(p + 1, k);
        if (b <= 0xc6) {
            if (len > n - hdr) return 0;
            o->type = MSGPACK_OBJECT_BIN;
            o->via.bin.ptr = (const char *)p + hdr;
            o->via.bin.size = (uint32_t)len;
            return hdr + len;
        }
        goto str;
    }
    case 0xca: { /* float 32 */
        if (n < 5) return 0;
        uint32_t u = (uint32_t)s_be(p + 1, 4);
        float f;
        memcpy(&f, &u, 4);
        o->type = MSGPACK_OBJECT_FLOAT32;
        o->via.f64 = f;
        return 5;
    }
    case 0xcb: { /* float 64 */
        if (n < 9) return 0;
        uint64_t u = s_be(p + 1, 8);
        o->type = MSGPACK_OBJECT_FLOAT64;
        memcpy(&o->via.f64, &u, 8);
        return 9;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: { /* uint 8..64 */
        int k = 1 << (b - 0xcc);
        if (n < 1 + (size_t)k) return 0;
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = s_be(p + 1, k);
        return 1 + (size_t)k;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: { /* int 8..64 */
        int k = 1 << (b - 0xd0);
        if (n < 1 + (size_t)k) return 0;
        uint64_t u = s_be(p + 1, k);
        int64_t v = k == 8 ? (int64_t)u
                           : (int64_t)(u ^ (1ull << (8 * k - 1))) - (int64_t)(1ull << (8 * k - 1));
        if (v >= 0) {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = (uint64_t)v;
        } else {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = v;
        }
        return 1 + (size_t)k;
    }
    default: return 0;
    }
str:
    if (len > n - hdr) return 0;
    o->type = MSGPACK_OBJECT_STR;
    o->via.str.ptr = (const char *)p + hdr;
    o->via.str.size = (uint32_t)len;
    return hdr + len;
}

/* Builds *root for a map whose keys and values are all scalars (every message between
 * actors but pong, and most client requests), with no pre-scan: each item is
 * bounds-checked as it is read, and the pair array is sized by a count already checked
 * against the bytes left. Returns 1 (built; *used set), 0 (not flat or not valid: take the
 * general path) or -1 (out of memory). */
static int s_build_flat(const uint8_t *p, size_t n, msgpack_zone *zone, msgpack_object *root,
                        size_t *used) {
    uint8_t b = p[0];
    size_t off;
    uint64_t count;
    if ((b & 0xf0) == 0x80) {
        count = b & 0x0f;
        off = 1;
    } else if (b == 0xde || b == 0xdf) {
        int k = b == 0xde ? 2 : 4;
        if (n < 1 + (size_t)k) return 0;
        count = s_be(p + 1, k);
        off = 1 + (size_t)k;
    } else {
        return 0;
    }
    if (count > (n - off) / 2) return 0; /* every key and value needs a byte */
    msgpack_object_kv *kv = NULL;
    if (count) {
        kv = msgpack_zone_malloc(zone, (size_t)count * sizeof *kv);
        if (!kv) return -1;
    }
    for (uint64_t i = 0; i < count; i++) {
        size_t k, v;
        if (off >= n || !(k = s_flat_scalar(p + off, n - off, &kv[i].key))) return 0;
        off += k;
        if (off >= n || !(v = s_flat_scalar(p + off, n - off, &kv[i].val))) return 0;
        off += v;
    }
    root->type = MSGPACK_OBJECT_MAP;
    root->via.map.size = (uint32_t)count;
    root->via.map.ptr = kv;
    *used = off;
    return 1;
}

/* The object tree of the first object in data[0..size) into `zone`: the flat fast path,
 * else the structural scan and msgpack-c. strict: refuse bytes after it. */
static int s_build_tree(const uint8_t *data, size_t size, msgpack_zone *zone, int strict,
                        msgpack_object *root, size_t *used, tr_msg_err_t *err) {
    int fr = s_build_flat(data, size, zone, root, used);
    if (fr < 0) {
        *used = 0;
        return s_fail(err, "internal", NULL, "out of memory");
    }
    if (fr == 0) {
        int rc = s_scan(data, size, used, 0);
        if (rc == -2)
            return s_fail(err, "bad_request", NULL, "msgpack nested deeper than %d levels",
                          TR_MSG_MAX_DEPTH);
        if (rc == -3)
            return s_fail(err, "bad_request", NULL, "malformed msgpack: a container declares "
                          "more items than the message holds");
        if (rc != 0) return s_fail(err, "bad_request", NULL, "malformed or truncated msgpack");
    }
    if (strict && *used != size) {
        size_t extra = size - *used;
        *used = 0;
        return s_fail(err, "bad_request", NULL, "%zu trailing bytes after the msgpack map",
                      extra);
    }
    if (fr == 0) {
        size_t off = 0;
        msgpack_unpack_return ur = msgpack_unpack((const char *)data, *used, &off, zone, root);
        if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
            *used = 0;
            return s_fail(err, "internal", NULL, "out of memory");
        }
        if (ur != MSGPACK_UNPACK_SUCCESS)
            return s_fail(err, "bad_request", NULL, "malformed msgpack (unpack error %d)",
                          (int)ur);
    }
    return TR_OK;
}

/* Decodes the first object of data[0..size) into m, its tree in `zone` (borrowed).
 * *used: its length once its structure is known, else 0. */
static int s_decode(tr_msg_t *m, const void *data, size_t size, msgpack_zone *zone, int strict,
                    size_t *used, tr_msg_err_t *err) {
    memset(m, 0, sizeof *m);
    err->code[0] = err->field[0] = err->text[0] = '\0';
    err->has_id = false;
    *used = 0;
    if (size == 0) return s_fail(err, "bad_request", NULL, "empty message");
    msgpack_object *rootw = msgpack_zone_malloc(zone, sizeof(msgpack_object));
    if (!rootw) return s_fail(err, "internal", NULL, "out of memory");
    int rc = s_build_tree(data, size, zone, strict, rootw, used, err);
    if (rc != TR_OK) return rc;
    m->root = rootw;
    const msgpack_object *root = m->root;

    if (root->type != MSGPACK_OBJECT_MAP) {
        s_fail(err, "bad_request", NULL, "message must be a msgpack map, got %s",
               s_obj_type_name(root));
        goto fail;
    }

    /* envelope: type, v, from; duplicate or non-string keys are refused. Keys are compared
     * pairwise only among the first 65 (bounded work); past them, a repeated key the codec
     * reads is caught by its seen flag or present bit, and a repeated unknown key passes. */
    const msgpack_object *type_o = NULL;
    bool seen_v = false, seen_from = false;
    m->v = 1;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        const msgpack_object *val = &root->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) {
            s_fail(err, "bad_request", NULL, "map keys must be strings, got %s",
                   s_obj_type_name(k));
            goto fail;
        }
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *k2 = &root->via.map.ptr[j].key;
            if (s_key_is_n(k2, k->via.str.ptr, k->via.str.size)) { /* "" may have ptr NULL */
                s_fail_dup(err, k);
                goto fail;
            }
            if (j > 64) break; /* keys past the first 64 are checked against their field */
        }
        if (s_key_is(k, "type")) {
            if (type_o) {
                s_fail_dup(err, k);
                goto fail;
            }
            type_o = val;
        } else if (s_key_is(k, "v")) {
            if (seen_v) {
                s_fail_dup(err, k);
                goto fail;
            }
            seen_v = true;
            int64_t v;
            if (s_get_int(val, &v) != 0 || v < 1 || v > 1000000) {
                s_fail(err, "bad_request", "v", "field 'v': expected a positive int version");
                goto fail;
            }
            m->v = (uint32_t)v;
        } else if (s_key_is(k, "from")) {
            if (seen_from) {
                s_fail_dup(err, k);
                goto fail;
            }
            seen_from = true;
            if (val->type != MSGPACK_OBJECT_STR || val->via.str.size > TR_MSG_FROM_MAX) {
                s_fail(err, "bad_request", "from", "field 'from': expected str of <= %d bytes",
                       TR_MSG_FROM_MAX);
                goto fail;
            }
            m->from.p = val->via.str.ptr;
            m->from.n = val->via.str.size;
        }
    }
    if (!type_o) {
        s_fail(err, "bad_request", "type", "missing field 'type'");
        goto fail;
    }
    if (type_o->type != MSGPACK_OBJECT_STR) {
        s_fail(err, "bad_request", "type", "field 'type': expected str, got %s",
               s_obj_type_name(type_o));
        goto fail;
    }
    m->type = tr_msg_type_from_name(type_o->via.str.ptr, type_o->via.str.size);
    if (m->type == TR_MSG_NONE) {
        char name[64];
        tr_str_t ts = {type_o->via.str.ptr, type_o->via.str.size};
        s_fail(err, "unknown_type", "type", "unknown message type '%s'",
               tr_str_copy(ts, name, sizeof name));
        goto fail;
    }
    const tr_msg_desc_t *d = &s_descs[m->type];
    if (m->v > d->version) {
        s_fail(err, "unsupported_version", "v", "'%s' version %u is newer than supported (%u)",
               d->name, m->v, d->version);
        goto fail;
    }

    /* fields */
    uint8_t *base = (uint8_t *)&m->u;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key;
        for (int fi = 0; fi < d->n_fields; fi++) {
            const tr_field_desc_t *f = &d->fields[fi];
            if (!s_key_is_n(k, f->name, f->name_n)) continue;
            if (m->present >> fi & 1) { /* past the first 64 keys: the field was set */
                s_fail_dup(err, k);
                goto fail;
            }
            if (s_decode_field(f, &root->via.map.ptr[i].val, base + f->offset, zone, err))
                goto fail;
            m->present |= 1ull << fi;
            break;
        }
    }
    for (int fi = 0; fi < d->n_fields; fi++) {
        if (d->fields[fi].required && !(m->present >> fi & 1)) {
            s_fail(err, "bad_request", d->fields[fi].name, "'%s' is missing required field '%s'",
                   d->name, d->fields[fi].name);
            goto fail;
        }
    }
    return TR_OK;

fail:
    if (root->type == MSGPACK_OBJECT_MAP) s_peek_id(root, err); /* for the error reply */
    m->root = NULL;
    return TR_EPROTO;
}

/* Zone chunk for one decoded message: the root, its pairs and small converted arrays. */
#define TR_MSG_ZONE_CHUNK 512

int tr_msg_decode(tr_msg_t *m, const void *data, size_t size, tr_msg_err_t *err) {
    msgpack_zone *zone = msgpack_zone_new(TR_MSG_ZONE_CHUNK);
    size_t used;
    if (!zone) {
        memset(m, 0, sizeof *m);
        err->has_id = false;
        return s_fail(err, "internal", NULL, "out of memory");
    }
    int rc = s_decode(m, data, size, zone, 1, &used, err);
    if (rc != TR_OK) {
        msgpack_zone_free(zone);
        return rc;
    }
    m->zone = zone;
    return TR_OK;
}

int tr_msg_decode_next(tr_msg_t *m, const void *data, size_t size, msgpack_zone *zone,
                       size_t *used, tr_msg_err_t *err) {
    return s_decode(m, data, size, zone, 0, used, err);
}

/* ---- encode ---- */

/* Refuses (TR_EINVAL) every value decode would refuse, so that what one actor sends the
 * next one accepts. */
static int s_pack_field(const tr_field_desc_t *f, const void *slot, msgpack_packer *pk) {
    switch (f->type) {
    case TR_FT_STR: {
        const tr_str_t *s = slot;
        if (f->limit && s->n > f->limit) return TR_EINVAL;
        msgpack_pack_str(pk, s->n);
        return msgpack_pack_str_body(pk, s->p, s->n) ? TR_ENOMEM : TR_OK;
    }
    case TR_FT_ID: {
        const tr_id_t *id = slot;
        if (id->is_str && id->s.n > f->limit) return TR_EINVAL;
        tr_id_pack(pk, *id);
        return TR_OK;
    }
    case TR_FT_INT:
    case TR_FT_SINT: {
        int64_t v = *(const int64_t *)slot;
        if (f->type == TR_FT_INT && v < 0) return TR_EINVAL;
        if (!s_in_limit(v, f->limit)) return TR_EINVAL;
        return msgpack_pack_int64(pk, v) ? TR_ENOMEM : TR_OK;
    }
    case TR_FT_FLOAT:
        if (!isfinite(*(const double *)slot)) return TR_EINVAL;
        return msgpack_pack_double(pk, *(const double *)slot) ? TR_ENOMEM : TR_OK;
    case TR_FT_BOOL:
        return (*(const bool *)slot ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? TR_ENOMEM
                                                                                     : TR_OK;
    case TR_FT_BIN: {
        const tr_bin_t *b = slot;
        if (f->limit && b->n > f->limit) return TR_EINVAL;
        msgpack_pack_bin(pk, b->n);
        return msgpack_pack_bin_body(pk, b->p, b->n) ? TR_ENOMEM : TR_OK;
    }
    case TR_FT_I32S: {
        const tr_i32s_t *a = slot;
        if (f->limit && a->n > f->limit) return TR_EINVAL;
        msgpack_pack_bin(pk, 4 * (size_t)a->n);
        return msgpack_pack_bin_body(pk, a->p, 4 * (size_t)a->n) ? TR_ENOMEM : TR_OK;
    }
    case TR_FT_STRS: {
        const tr_strs_t *a = slot;
        if (f->limit && a->n > f->limit) return TR_EINVAL;
        for (uint32_t i = 0; i < a->n; i++)
            if (tr_strs_at(*a, i).n > TR_MSG_STRS_ITEM_MAX) return TR_EINVAL;
        msgpack_pack_array(pk, a->n);
        for (uint32_t i = 0; i < a->n; i++) {
            tr_str_t s = tr_strs_at(*a, i);
            msgpack_pack_str(pk, s.n);
            msgpack_pack_str_body(pk, s.p, s.n);
        }
        return TR_OK;
    }
    case TR_FT_ANY: {
        const tr_any_t *a = slot;
        if (a->packed) return pk->callback(pk->data, a->packed, a->packed_n) ? TR_ENOMEM : TR_OK;
        if (a->obj) return msgpack_pack_object(pk, *a->obj) ? TR_ENOMEM : TR_OK;
        return msgpack_pack_nil(pk) ? TR_ENOMEM : TR_OK;
    }
    }
    return TR_EINVAL;
}

static void s_pack_strn(msgpack_packer *pk, const char *s, size_t n) {
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int tr_msg_pack(const tr_msg_t *m, msgpack_packer *pk) {
    const tr_msg_desc_t *d = tr_msg_desc(m->type);
    if (!d || m->from.n > TR_MSG_FROM_MAX) return TR_EINVAL;
    uint32_t n = 2 + (m->from.n ? 1 : 0);
    for (int fi = 0; fi < d->n_fields; fi++) {
        int has = (int)(m->present >> fi & 1);
        if (d->fields[fi].required && !has) return TR_EINVAL;
        n += (uint32_t)has;
    }
    msgpack_pack_map(pk, n);
    s_pack_strn(pk, "type", 4);
    s_pack_strn(pk, d->name, d->name_n);
    s_pack_strn(pk, "v", 1);
    msgpack_pack_uint32(pk, m->v ? m->v : d->version);
    if (m->from.n) {
        s_pack_strn(pk, "from", 4);
        s_pack_strn(pk, m->from.p, m->from.n);
    }
    const uint8_t *base = (const uint8_t *)&m->u;
    for (int fi = 0; fi < d->n_fields; fi++) {
        if (!(m->present >> fi & 1)) continue;
        s_pack_strn(pk, d->fields[fi].name, d->fields[fi].name_n);
        int rc = s_pack_field(&d->fields[fi], base + d->fields[fi].offset, pk);
        if (rc) return rc;
    }
    return TR_OK;
}

/* Bytes of a msgpack str/bin/array/map header for n items or bytes, at most. */
#define TR_MSG_HDR_MAX 5

size_t tr_msg_pack_bound(const tr_msg_t *m) {
    const tr_msg_desc_t *d = tr_msg_desc(m->type);
    if (!d) return 0;
    /* map header; "type", its name; "v", uint32; "from", its value */
    size_t n = TR_MSG_HDR_MAX + (1 + 4) + (TR_MSG_HDR_MAX + d->name_n) + (1 + 1) + 5 +
               (1 + 4) + (TR_MSG_HDR_MAX + (size_t)m->from.n);
    const uint8_t *base = (const uint8_t *)&m->u;
    for (int fi = 0; fi < d->n_fields; fi++) {
        if (!(m->present >> fi & 1)) continue;
        const tr_field_desc_t *f = &d->fields[fi];
        const void *slot = base + f->offset;
        n += TR_MSG_HDR_MAX + f->name_n;
        switch (f->type) {
        case TR_FT_STR: n += TR_MSG_HDR_MAX + ((const tr_str_t *)slot)->n; break;
        case TR_FT_ID: n += TR_MSG_HDR_MAX + 9 + ((const tr_id_t *)slot)->s.n; break;
        case TR_FT_INT:
        case TR_FT_SINT:
        case TR_FT_FLOAT:
        case TR_FT_BOOL: n += 9; break;
        case TR_FT_BIN: n += TR_MSG_HDR_MAX + ((const tr_bin_t *)slot)->n; break;
        case TR_FT_I32S: n += TR_MSG_HDR_MAX + 4 * (size_t)((const tr_i32s_t *)slot)->n; break;
        case TR_FT_STRS: {
            const tr_strs_t *a = slot;
            n += TR_MSG_HDR_MAX;
            for (uint32_t i = 0; i < a->n; i++) n += TR_MSG_HDR_MAX + tr_strs_at(*a, i).n;
            break;
        }
        case TR_FT_ANY: {
            const tr_any_t *a = slot;
            if (a->packed) n += a->packed_n;
            else if (a->obj) return 0;
            else n += 1;
            break;
        }
        }
    }
    return n;
}

/* ---- encode into a flat buffer (tr_msg_pack_to) ----
 * The same bytes as msgpack-c's packer (smallest int form, fixstr/str8/16/32, bin8/16/32),
 * written straight into a buffer already sized by tr_msg_pack_bound: no callback per item.
 * The fuzz check compares both encoders on every decoded message. */

static inline uint8_t *s_put_be(uint8_t *p, uint64_t v, int k) {
    for (int i = k - 1; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
    return p + k;
}

static inline uint8_t *s_put_int(uint8_t *p, int64_t d) {
    if (d < -(1LL << 5)) {
        if (d < -(1LL << 15)) {
            if (d < -(1LL << 31)) { *p++ = 0xd3; return s_put_be(p, (uint64_t)d, 8); }
            *p++ = 0xd2;
            return s_put_be(p, (uint32_t)(int32_t)d, 4);
        }
        if (d < -(1 << 7)) { *p++ = 0xd1; return s_put_be(p, (uint16_t)(int16_t)d, 2); }
        *p++ = 0xd0;
        *p++ = (uint8_t)d;
        return p;
    }
    if (d < (1 << 7)) { *p++ = (uint8_t)d; return p; }
    if (d < (1LL << 8)) { *p++ = 0xcc; *p++ = (uint8_t)d; return p; }
    if (d < (1LL << 16)) { *p++ = 0xcd; return s_put_be(p, (uint64_t)d, 2); }
    if (d < (1LL << 32)) { *p++ = 0xce; return s_put_be(p, (uint64_t)d, 4); }
    *p++ = 0xcf;
    return s_put_be(p, (uint64_t)d, 8);
}

/* A str (tag 0) or bin (tag 1) header and body. */
static inline uint8_t *s_put_bytes(uint8_t *p, int bin, const void *b, size_t n) {
    if (!bin && n < 32) {
        *p++ = (uint8_t)(0xa0 | n);
    } else if (n < 256) {
        *p++ = bin ? 0xc4 : 0xd9;
        *p++ = (uint8_t)n;
    } else if (n < 65536) {
        *p++ = bin ? 0xc5 : 0xda;
        p = s_put_be(p, n, 2);
    } else {
        *p++ = bin ? 0xc6 : 0xdb;
        p = s_put_be(p, n, 4);
    }
    if (n) memcpy(p, b, n);
    return p + n;
}

static inline uint8_t *s_put_count(uint8_t *p, int map, uint32_t n) {
    if (n < 16) {
        *p++ = (uint8_t)((map ? 0x80 : 0x90) | n);
    } else if (n < 65536) {
        *p++ = map ? 0xde : 0xdc;
        p = s_put_be(p, n, 2);
    } else {
        *p++ = map ? 0xdf : 0xdd;
        p = s_put_be(p, n, 4);
    }
    return p;
}

/* Writes one field's value at *pp; the checks are s_pack_field's. */
static int s_put_field(const tr_field_desc_t *f, const void *slot, uint8_t **pp) {
    uint8_t *p = *pp;
    switch (f->type) {
    case TR_FT_STR: {
        const tr_str_t *s = slot;
        if (f->limit && s->n > f->limit) return TR_EINVAL;
        p = s_put_bytes(p, 0, s->p, s->n);
        break;
    }
    case TR_FT_ID: {
        const tr_id_t *id = slot;
        if (id->is_str && id->s.n > f->limit) return TR_EINVAL;
        p = id->is_str ? s_put_bytes(p, 0, id->s.p, id->s.n) : s_put_int(p, id->i);
        break;
    }
    case TR_FT_INT:
    case TR_FT_SINT: {
        int64_t v = *(const int64_t *)slot;
        if (f->type == TR_FT_INT && v < 0) return TR_EINVAL;
        if (!s_in_limit(v, f->limit)) return TR_EINVAL;
        p = s_put_int(p, v);
        break;
    }
    case TR_FT_FLOAT: {
        double d = *(const double *)slot;
        uint64_t u;
        if (!isfinite(d)) return TR_EINVAL;
        memcpy(&u, &d, 8);
        *p++ = 0xcb;
        p = s_put_be(p, u, 8);
        break;
    }
    case TR_FT_BOOL: *p++ = *(const bool *)slot ? 0xc3 : 0xc2; break;
    case TR_FT_BIN: {
        const tr_bin_t *b = slot;
        if (f->limit && b->n > f->limit) return TR_EINVAL;
        p = s_put_bytes(p, 1, b->p, b->n);
        break;
    }
    case TR_FT_I32S: {
        const tr_i32s_t *a = slot;
        if (f->limit && a->n > f->limit) return TR_EINVAL;
        p = s_put_bytes(p, 1, a->p, 4 * (size_t)a->n);
        break;
    }
    case TR_FT_STRS: {
        const tr_strs_t *a = slot;
        if (f->limit && a->n > f->limit) return TR_EINVAL;
        for (uint32_t i = 0; i < a->n; i++)
            if (tr_strs_at(*a, i).n > TR_MSG_STRS_ITEM_MAX) return TR_EINVAL;
        p = s_put_count(p, 0, a->n);
        for (uint32_t i = 0; i < a->n; i++) {
            tr_str_t s = tr_strs_at(*a, i);
            p = s_put_bytes(p, 0, s.p, s.n);
        }
        break;
    }
    case TR_FT_ANY: {
        const tr_any_t *a = slot;
        if (a->packed) {
            if (a->packed_n) memcpy(p, a->packed, a->packed_n);
            p += a->packed_n;
        } else if (a->obj) {
            return TR_EINVAL; /* tr_msg_pack_bound is 0: the caller uses tr_msg_pack */
        } else {
            *p++ = 0xc0;
        }
        break;
    }
    default: return TR_EINVAL;
    }
    *pp = p;
    return TR_OK;
}

int tr_msg_pack_to(const tr_msg_t *m, void *buf, size_t cap, size_t *n) {
    const tr_msg_desc_t *d = tr_msg_desc(m->type);
    size_t bound = tr_msg_pack_bound(m);
    if (!d || m->from.n > TR_MSG_FROM_MAX || bound == 0 || cap < bound) return TR_EINVAL;
    uint32_t count = 2 + (m->from.n ? 1 : 0);
    for (int fi = 0; fi < d->n_fields; fi++) {
        int has = (int)(m->present >> fi & 1);
        if (d->fields[fi].required && !has) return TR_EINVAL;
        count += (uint32_t)has;
    }
    uint8_t *p = s_put_count(buf, 1, count);
    p = s_put_bytes(p, 0, "type", 4);
    p = s_put_bytes(p, 0, d->name, d->name_n);
    p = s_put_bytes(p, 0, "v", 1);
    p = s_put_int(p, m->v ? m->v : d->version);
    if (m->from.n) {
        p = s_put_bytes(p, 0, "from", 4);
        p = s_put_bytes(p, 0, m->from.p, m->from.n);
    }
    const uint8_t *base = (const uint8_t *)&m->u;
    for (int fi = 0; fi < d->n_fields; fi++) {
        if (!(m->present >> fi & 1)) continue;
        const tr_field_desc_t *f = &d->fields[fi];
        p = s_put_bytes(p, 0, f->name, f->name_n);
        int rc = s_put_field(f, base + f->offset, &p);
        if (rc) return rc;
    }
    *n = (size_t)(p - (uint8_t *)buf);
    return TR_OK;
}
