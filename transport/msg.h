/*  transport/msg.h - typed messages over msgpack: decode, validate, encode.
 *
 *  The schema lives in transport/msgs.def; this header expands it into
 *    - tr_msg_type_t          TR_MSG_ERROR, TR_MSG_HEALTH, ...
 *    - tr_msg_<ident>_t       one struct per message, one member per field
 *    - TR_F_<ident>_<field>   field indices, for the `present` bit set
 *  and one generic, table-driven codec. A message on the wire is a msgpack map with
 *  string keys: `type` (required), `v` (version, default 1), `from` (optional) and the
 *  fields of its type.
 *
 *  Ownership (STYLE.md 2.4): a decoded tr_msg_t borrows strings and bins from the buffer
 *  it was decoded from, and owns a msgpack zone for everything else; both must outlive
 *  it. tr_msg_fini() frees the zone. To keep data, copy it. For encoding, the caller
 *  fills a tr_msg_t whose borrowed pointers stay valid until tr_msg_pack() returns.
 *  Thread-safety: none needed; a tr_msg_t belongs to one thread.
 *
 *      tr_msg_t m; tr_msg_err_t err;
 *      if (tr_msg_decode(&m, data, size, &err) != TR_OK)
 *          reply_error(err.code, err.text);            // names the field at fault
 *      else if (m.type == TR_MSG_HEALTH) ...
 *      tr_msg_fini(&m);
 *
 *      tr_msg_t out;
 *      tr_msg_init(&out, TR_MSG_ERROR);
 *      TR_MSG_SET(&out, error, code, tr_str_c("bad_request"));
 *      TR_MSG_SET(&out, error, message, tr_str_c("field 'x': expected int"));
 *      tr_msg_pack(&out, &sbuf);                                                    */
#ifndef TR_MSG_H
#define TR_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

/* ---- field storage types ---- */

typedef struct {
    const char *p;  /* borrowed; NOT NUL-terminated */
    uint32_t n;
} tr_str_t;

typedef struct {
    bool is_str;
    tr_str_t s;     /* is_str */
    int64_t i;      /* !is_str */
} tr_id_t;

typedef struct {
    const uint8_t *p; /* borrowed */
    uint32_t n;       /* bytes */
} tr_bin_t;

typedef struct {
    const uint8_t *p; /* borrowed: n little-endian int32, possibly unaligned: use tr_i32s_at */
    uint32_t n;       /* elements */
} tr_i32s_t;

typedef struct {
    const msgpack_object *items; /* decoded: borrowed array items (each a str) */
    const tr_str_t *strs;        /* to encode: caller's array */
    uint32_t n;
} tr_strs_t;

typedef struct {
    const msgpack_object *obj;   /* decoded: borrowed value */
    const char *packed;          /* to encode: pre-packed msgpack bytes of one value */
    size_t packed_n;
} tr_any_t;

/* ---- generated types ---- */

#define TR_FT_STR_CT tr_str_t
#define TR_FT_ID_CT tr_id_t
#define TR_FT_INT_CT int64_t
#define TR_FT_SINT_CT int64_t
#define TR_FT_FLOAT_CT double
#define TR_FT_BOOL_CT bool
#define TR_FT_BIN_CT tr_bin_t
#define TR_FT_I32S_CT tr_i32s_t
#define TR_FT_STRS_CT tr_strs_t
#define TR_FT_ANY_CT tr_any_t

#include "transport/msgs.def"

typedef enum {
    TR_MSG_NONE = 0,
#define X(E, ident, wire, ver, doc) TR_MSG_##E,
    TR_MSG_LIST(X)
#undef X
    TR_MSG_COUNT
} tr_msg_type_t;

#define TR_MSG_FIELD_MEMBER(ident, name, T, req, limit, doc) TR_FT_##T##_CT name;
#define X(E, ident, wire, ver, doc)                                                        \
    typedef struct {                                                                       \
        TR_FIELDS_##ident(TR_MSG_FIELD_MEMBER)                                             \
    } tr_msg_##ident##_t;
TR_MSG_LIST(X)
#undef X

#define TR_MSG_FIELD_ENUM(ident, name, T, req, limit, doc) TR_F_##ident##_##name,
#define X(E, ident, wire, ver, doc) enum { TR_FIELDS_##ident(TR_MSG_FIELD_ENUM) TR_F_##ident##__COUNT };
TR_MSG_LIST(X)
#undef X

#define TR_MSG_MAX_FRAMES 8

/* A message: its type, version, sender, which fields are present, and the fields. */
typedef struct tr_msg {
    tr_msg_type_t type;
    uint32_t v;
    tr_str_t from;           /* sender actor instance name; n == 0 when absent */
    uint64_t present;        /* bit TR_F_<ident>_<field> set when the field is present */
    union {
#define X(E, ident, wire, ver, doc) tr_msg_##ident##_t ident;
        TR_MSG_LIST(X)
#undef X
    } u;
    msgpack_zone *zone;      /* owned (decode only): arrays converted to bin form live here */
    const msgpack_object *root; /* decoded: the whole map, borrowed */
} tr_msg_t;

/* Sets a field and marks it present: TR_MSG_SET(&m, error, code, tr_str_c("x")). */
#define TR_MSG_SET(m, ident, field, value)                                                 \
    ((m)->u.ident.field = (value), (m)->present |= (1ull << TR_F_##ident##_##field))
#define TR_MSG_HAS(m, ident, field) (((m)->present >> TR_F_##ident##_##field) & 1u)

/* Decode failure: an error code for the reply, the field at fault, and a sentence. */
typedef struct {
    char code[32];           /* "bad_request", "unknown_type", "unsupported_version" */
    char field[128];         /* "" when no single field is at fault */
    char text[512];
    tr_id_t id;              /* the message's id when it could be read (for the reply) */
    bool has_id;
    char id_buf[257];        /* storage for id.s when has_id && id.is_str */
} tr_msg_err_t;

/* Prepares `m` for encoding a message of `type` (all fields absent, v = schema version). */
void tr_msg_init(tr_msg_t *m, tr_msg_type_t type);

/* Decodes one msgpack map from data[0..size). Strings and bins borrow `data`. On
 * failure returns TR_EPROTO with *err filled, and `m` needs no fini. On success the
 * caller must tr_msg_fini(m). Never reads past `size`; any bytes are safe input. */
int tr_msg_decode(tr_msg_t *m, const void *data, size_t size, tr_msg_err_t *err);

/* Decodes the first msgpack map of data[0..size) and sets *used to its length; the bytes
 * after it are left for the next call. For internal links only, whose frames may carry
 * several maps back to back (runtime/actor.c); client frames go through tr_msg_decode,
 * which refuses trailing bytes. Strings and bins borrow `data`; the object tree and
 * converted arrays go into `zone` (borrowed: the caller owns it, and the message is valid
 * until the zone is cleared or destroyed; m->zone stays NULL). Validation and errors are
 * those of tr_msg_decode. On failure *used is the map's length when its structure could
 * be read (the caller may go on with the next map), else 0 (the rest cannot be trusted). */
int tr_msg_decode_next(tr_msg_t *m, const void *data, size_t size, msgpack_zone *zone,
                       size_t *used, tr_msg_err_t *err);

/* Frees what decode allocated; safe on an init'ed message; idempotent. */
void tr_msg_fini(tr_msg_t *m);

/* Packs `m` (type, v, from when set, present fields) onto `pk`. Returns TR_OK, or
 * TR_EINVAL if a field breaks the schema (a required field absent, a limit exceeded). */
int tr_msg_pack(const tr_msg_t *m, msgpack_packer *pk);

/* An upper bound on the bytes tr_msg_pack(m) writes (to size a buffer once), or 0 when it
 * cannot be known cheaply (an ANY field given as a decoded object). */
size_t tr_msg_pack_bound(const tr_msg_t *m);

/* Packs m into buf[0..cap), the same bytes as tr_msg_pack, without a packer's callback per
 * item (the runtime's hot path). cap must be at least tr_msg_pack_bound(m), which must not
 * be 0. Returns TR_OK with *n set to the bytes written, or TR_EINVAL (as tr_msg_pack, or
 * for a bound of 0 or a short buffer). */
int tr_msg_pack_to(const tr_msg_t *m, void *buf, size_t cap, size_t *n);

/* Wire name of a type ("health"); "?" for out-of-range values. */
const char *tr_msg_type_name(tr_msg_type_t type);
/* Type from a wire name, TR_MSG_NONE when unknown. */
tr_msg_type_t tr_msg_type_from_name(const char *name, size_t n);

/* ---- helpers ---- */

/* Prepares an `error` message: code, text, and field/id when given (NULL/"" to omit).
 * Borrows every argument until the message is packed. */
void tr_msg_init_error(tr_msg_t *m, const tr_id_t *id, const char *code, const char *field,
                       const char *text);

/* Copies the message's `id` field into *id when its type has one and it is present;
 * returns 1 then, else 0. */
int tr_msg_id(const tr_msg_t *m, tr_id_t *id);

/* A tr_str_t over a NUL-terminated C string (borrowed). */
tr_str_t tr_str_c(const char *s);
/* Copies s into buf (NUL-terminated, truncated to bufsize-1); returns buf. */
char *tr_str_copy(tr_str_t s, char *buf, size_t bufsize);
/* 1 if s equals the C string c. */
int tr_str_eq(tr_str_t s, const char *c);
/* Element i of an int32 array (little-endian, any alignment). */
int32_t tr_i32s_at(tr_i32s_t a, uint32_t i);
/* Arrays of int64 / float32 that ride as a BIN of little-endian values (internal messages):
 * the element count, or -1 when the size is not a whole number of elements. */
int64_t tr_bin_count(tr_bin_t b, size_t width);
/* Element i (any alignment). */
int64_t tr_bin_i64(tr_bin_t b, uint32_t i);
float tr_bin_f32(tr_bin_t b, uint32_t i);
/* Item i of a string array. */
tr_str_t tr_strs_at(tr_strs_t a, uint32_t i);
/* Packs a tr_id_t as given (str or int). */
void tr_id_pack(msgpack_packer *pk, tr_id_t id);
/* Packs a C string as a msgpack str. */
void tr_pack_cstr(msgpack_packer *pk, const char *s);

/* ---- schema introspection (docs/protocol.md generator, tests) ---- */

typedef enum {
    TR_FT_STR = 1, TR_FT_ID, TR_FT_INT, TR_FT_SINT, TR_FT_FLOAT, TR_FT_BOOL,
    TR_FT_BIN, TR_FT_I32S, TR_FT_STRS, TR_FT_ANY
} tr_field_type_t;

typedef struct {
    const char *name;
    tr_field_type_t type;
    bool required;
    uint64_t limit;
    size_t offset;           /* within the message's struct */
    const char *doc;
    uint32_t name_n;         /* strlen(name) */
} tr_field_desc_t;

typedef struct {
    const char *name;
    uint32_t version;
    const char *doc;
    const tr_field_desc_t *fields;
    int n_fields;
    uint32_t name_n;         /* strlen(name) */
} tr_msg_desc_t;

/* Descriptor of a message type, NULL for TR_MSG_NONE / out of range. */
const tr_msg_desc_t *tr_msg_desc(tr_msg_type_t type);
const char *tr_field_type_name(tr_field_type_t t);

#endif
