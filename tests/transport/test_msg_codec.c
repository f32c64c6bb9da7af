/*  tests/transport/test_msg_codec.c - transport/msg.c: decode, validate, encode.
 *
 *  Walks the schema through tr_msg_desc, so a row added to msgs.def is covered with no
 *  edit here: every type round-trips with every field set, at and past every limit, with
 *  only its required fields, and with each field given a wrong-typed value. Then the
 *  envelope (type, v, from), numeric conversions, I32S/STRS forms, keys (unknown,
 *  duplicate, non-string), non-map and truncated input, trailing bytes, nesting, hostile
 *  container sizes, every msgpack encoding inside ANY fields, error ids, and the encoder's
 *  refusals. Input is always decoded from a malloc'd copy of exactly its size, so that
 *  the asan build sees any read past the end.                                          */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport/msg.h"
#include "tests/tap.h"

/* ---- building input ---- */

static msgpack_sbuffer g_sb; /* the message being built */
static msgpack_packer g_pk;
#define P (&g_pk)

static void s_reset(void) {
    g_sb.size = 0;
}

static void s_raw(const void *p, size_t n) {
    msgpack_sbuffer_write(&g_sb, p, n);
}

/* Appends n raw bytes given as ints: s_bytes(3, 0x91, 0x91, 0xc0). */
static void s_bytes(int n, ...) {
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        char c = (char)va_arg(ap, int);
        s_raw(&c, 1);
    }
    va_end(ap);
}

static void s_cstr(const char *s) {
    tr_pack_cstr(P, s);
}

/* Starts a map of n entries whose first entry is type: t. */
static void s_begin(uint32_t n, const char *t) {
    s_reset();
    msgpack_pack_map(P, n);
    s_cstr("type");
    s_cstr(t);
}

/* Test storage: s_alloc'd blocks live until s_free_all(). */
static void *g_allocs[8192];
static int g_n_allocs;

static void *s_alloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p || g_n_allocs == (int)TR_ARRAY_LEN(g_allocs)) abort(); /* test harness only */
    g_allocs[g_n_allocs++] = p;
    return p;
}

static void s_free_all(void) {
    while (g_n_allocs)
        free(g_allocs[--g_n_allocs]);
}

/* A string of n copies of c, in s_alloc storage. */
static tr_str_t s_str_n(size_t n, char c) {
    char *p = s_alloc(n);
    memset(p, c, n);
    tr_str_t s = {p, (uint32_t)n};
    return s;
}

static void s_pack_str_n(size_t n, char c) {
    tr_str_t s = s_str_n(n, c);
    msgpack_pack_str(P, s.n);
    msgpack_pack_str_body(P, s.p, s.n);
}

/* ---- decoding from an exact-size copy ---- */

static uint8_t *g_in; /* the copy the last decoded message borrows */

static int s_decode_buf(tr_msg_t *m, const void *p, size_t n, tr_msg_err_t *err) {
    free(g_in);
    g_in = malloc(n ? n : 1);
    if (n) memcpy(g_in, p, n);
    return tr_msg_decode(m, g_in, n, err);
}

static int s_decode(tr_msg_t *m, tr_msg_err_t *err) {
    return s_decode_buf(m, g_sb.data, g_sb.size, err);
}

/* Decodes the built message and expects success; the caller finis m when 1. */
static int s_expect_ok(tr_msg_t *m, const char *what) {
    tr_msg_err_t err;
    int rc = s_decode(m, &err);
    if (!ok(rc == TR_OK, "%s: accepted", what))
        diag("refused: %s [%s, field '%s']", err.text, err.code, err.field);
    return rc == TR_OK;
}

/* Decodes the built message and expects TR_EPROTO with `code` and `field`; the text must
 * hold `needle`, or the field's name when needle is NULL. */
static int s_expect_fail(tr_msg_err_t *err, const char *what, const char *code, const char *field,
                         const char *needle) {
    tr_msg_t m;
    int rc = s_decode(&m, err);
    if (rc == TR_OK) tr_msg_fini(&m);
    if (!needle) needle = field;
    int good = rc == TR_EPROTO && strcmp(err->code, code) == 0 && strcmp(err->field, field) == 0 &&
               strstr(err->text, needle) != NULL && m.zone == NULL;
    if (!ok(good, "%s: refused (%s, field '%s')", what, code, field))
        diag("got rc %d, code '%s', field '%s', text '%s'", rc, rc ? err->code : "",
             rc ? err->field : "", rc ? err->text : "");
    return good;
}

/* ---- schema-driven values ---- */

static uint32_t s_min_u32(uint64_t a, uint64_t b) {
    return (uint32_t)(a < b ? a : b);
}

/* Packs `slot` (encode-side storage) exactly as given, with no limit checks: the test's
 * own encoder, for input the codec's encoder would refuse. */
static void s_pack_slot(const tr_field_desc_t *f, const void *slot, int i32s_as_array) {
    switch (f->type) {
    case TR_FT_STR: {
        const tr_str_t *s = slot;
        msgpack_pack_str(P, s->n);
        msgpack_pack_str_body(P, s->p, s->n);
        break;
    }
    case TR_FT_ID:
        tr_id_pack(P, *(const tr_id_t *)slot);
        break;
    case TR_FT_INT:
    case TR_FT_SINT:
        msgpack_pack_int64(P, *(const int64_t *)slot);
        break;
    case TR_FT_FLOAT:
        msgpack_pack_double(P, *(const double *)slot);
        break;
    case TR_FT_BOOL:
        *(const bool *)slot ? msgpack_pack_true(P) : msgpack_pack_false(P);
        break;
    case TR_FT_BIN: {
        const tr_bin_t *b = slot;
        msgpack_pack_bin(P, b->n);
        msgpack_pack_bin_body(P, b->p, b->n);
        break;
    }
    case TR_FT_I32S: {
        const tr_i32s_t *a = slot;
        if (i32s_as_array) {
            msgpack_pack_array(P, a->n);
            for (uint32_t i = 0; i < a->n; i++)
                msgpack_pack_int32(P, tr_i32s_at(*a, i));
        } else {
            msgpack_pack_bin(P, 4 * (size_t)a->n);
            msgpack_pack_bin_body(P, a->p, 4 * (size_t)a->n);
        }
        break;
    }
    case TR_FT_STRS: {
        const tr_strs_t *a = slot;
        msgpack_pack_array(P, a->n);
        for (uint32_t i = 0; i < a->n; i++) {
            tr_str_t s = tr_strs_at(*a, i);
            msgpack_pack_str(P, s.n);
            msgpack_pack_str_body(P, s.p, s.n);
        }
        break;
    }
    case TR_FT_ANY: {
        const tr_any_t *a = slot;
        s_raw(a->packed, a->packed_n);
        break;
    }
    }
}

/* Fills `slot` with a distinctive value of `size` (bytes, items or the int itself; 0 picks
 * a small default that respects the limit). Storage comes from s_alloc. */
static void s_fill(const tr_field_desc_t *f, void *slot, int salt, uint64_t size) {
    switch (f->type) {
    case TR_FT_STR: {
        uint32_t n = size ? (uint32_t)size : s_min_u32(f->limit ? f->limit : 40, 40);
        *(tr_str_t *)slot = s_str_n(n, (char)('a' + salt % 26));
        break;
    }
    case TR_FT_ID: {
        tr_id_t *id = slot;
        memset(id, 0, sizeof *id);
        if (size || salt % 2 == 0) {
            id->is_str = true;
            id->s = s_str_n(size ? size : 12, (char)('A' + salt % 26));
        } else {
            id->i = -1000 - salt; /* ids may be any int, echoed as given */
        }
        break;
    }
    case TR_FT_INT:
        *(int64_t *)slot = size ? (int64_t)size : f->limit ? (int64_t)f->limit : INT64_MAX;
        break;
    case TR_FT_SINT:
        *(int64_t *)slot = size ? -(int64_t)size : f->limit ? -(int64_t)f->limit : INT64_MIN;
        break;
    case TR_FT_FLOAT:
        *(double *)slot = (salt + 1) / 3.0;
        break;
    case TR_FT_BOOL:
        *(bool *)slot = true;
        break;
    case TR_FT_BIN: {
        uint32_t n = size ? (uint32_t)size : s_min_u32(f->limit ? f->limit : 300, 300);
        uint8_t *p = s_alloc(n);
        for (uint32_t i = 0; i < n; i++)
            p[i] = (uint8_t)(i * 7 + (uint32_t)salt);
        tr_bin_t b = {p, n};
        *(tr_bin_t *)slot = b;
        break;
    }
    case TR_FT_I32S: {
        static const int32_t v[] = {INT32_MIN, -1, 0, 1, INT32_MAX, 50256};
        uint32_t n = size ? (uint32_t)size : s_min_u32(f->limit ? f->limit : 6, 6);
        uint8_t *p = s_alloc(4 * (size_t)n);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)(i < 6 ? v[i] : (int32_t)(i * 31 + (uint32_t)salt));
            p[4 * i] = (uint8_t)u;
            p[4 * i + 1] = (uint8_t)(u >> 8);
            p[4 * i + 2] = (uint8_t)(u >> 16);
            p[4 * i + 3] = (uint8_t)(u >> 24);
        }
        tr_i32s_t a = {p, n};
        *(tr_i32s_t *)slot = a;
        break;
    }
    case TR_FT_STRS: {
        uint32_t n = size ? (uint32_t)size : s_min_u32(f->limit ? f->limit : 3, 3);
        tr_str_t *s = s_alloc(n * sizeof *s);
        for (uint32_t i = 0; i < n; i++)
            s[i] = s_str_n(i % 4, (char)('k' + i % 8));
        tr_strs_t a = {NULL, s, n};
        *(tr_strs_t *)slot = a;
        break;
    }
    case TR_FT_ANY: {
        /* {"a": [1, -1, 1.5, nil, true, "s", bin "b"], "m": {"salt": salt}} */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        tr_pack_cstr(&pk, "a");
        msgpack_pack_array(&pk, 7);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_int(&pk, -1);
        msgpack_pack_double(&pk, 1.5);
        msgpack_pack_nil(&pk);
        msgpack_pack_true(&pk);
        tr_pack_cstr(&pk, "s");
        msgpack_pack_bin(&pk, 1);
        msgpack_pack_bin_body(&pk, "b", 1);
        tr_pack_cstr(&pk, "m");
        msgpack_pack_map(&pk, 1);
        tr_pack_cstr(&pk, "salt");
        msgpack_pack_int(&pk, salt);
        char *p = s_alloc(sb.size);
        memcpy(p, sb.data, sb.size);
        tr_any_t a = {NULL, p, sb.size};
        *(tr_any_t *)slot = a;
        msgpack_sbuffer_destroy(&sb);
        break;
    }
    }
}

static int s_bytes_eq(const void *a, size_t an, const void *b, size_t bn) {
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* Does the decoded slot `got` hold the value of encode-side slot `want`? */
static int s_slot_eq(const tr_field_desc_t *f, const void *want, const void *got) {
    switch (f->type) {
    case TR_FT_STR: {
        const tr_str_t *w = want, *g = got;
        return s_bytes_eq(w->p, w->n, g->p, g->n);
    }
    case TR_FT_ID: {
        const tr_id_t *w = want, *g = got;
        return w->is_str == g->is_str &&
               (w->is_str ? s_bytes_eq(w->s.p, w->s.n, g->s.p, g->s.n) : w->i == g->i);
    }
    case TR_FT_INT:
    case TR_FT_SINT:
        return *(const int64_t *)want == *(const int64_t *)got;
    case TR_FT_FLOAT:
        return *(const double *)want == *(const double *)got;
    case TR_FT_BOOL:
        return *(const bool *)want == *(const bool *)got;
    case TR_FT_BIN: {
        const tr_bin_t *w = want, *g = got;
        return s_bytes_eq(w->p, w->n, g->p, g->n);
    }
    case TR_FT_I32S: {
        const tr_i32s_t *w = want, *g = got;
        if (w->n != g->n) return 0;
        for (uint32_t i = 0; i < w->n; i++)
            if (tr_i32s_at(*w, i) != tr_i32s_at(*g, i)) return 0;
        return 1;
    }
    case TR_FT_STRS: {
        const tr_strs_t *w = want, *g = got;
        if (w->n != g->n || g->strs != NULL) return 0;
        for (uint32_t i = 0; i < w->n; i++) {
            tr_str_t a = tr_strs_at(*w, i), b = tr_strs_at(*g, i);
            if (!s_bytes_eq(a.p, a.n, b.p, b.n)) return 0;
        }
        return 1;
    }
    case TR_FT_ANY: {
        const tr_any_t *w = want, *g = got;
        if (!g->obj || g->packed) return 0;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, *g->obj);
        int eq = s_bytes_eq(w->packed, w->packed_n, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return eq;
    }
    }
    return 0;
}

static void *s_slot(tr_msg_t *m, const tr_field_desc_t *f) {
    return (uint8_t *)&m->u + f->offset;
}

static uint64_t s_required_mask(const tr_msg_desc_t *d) {
    uint64_t mask = 0;
    for (int fi = 0; fi < d->n_fields; fi++)
        if (d->fields[fi].required) mask |= 1ull << fi;
    return mask;
}

/* An encode-side message of `type` with the fields in `mask` filled (defaults). */
static void s_make(tr_msg_t *m, tr_msg_type_t type, uint64_t mask) {
    const tr_msg_desc_t *d = tr_msg_desc(type);
    tr_msg_init(m, type);
    for (int fi = 0; fi < d->n_fields; fi++) {
        if (!(mask >> fi & 1)) continue;
        s_fill(&d->fields[fi], s_slot(m, &d->fields[fi]), fi + (int)type, 0);
        m->present |= 1ull << fi;
    }
}

/* Packs m with the codec's encoder into g_sb; returns its status. */
static int s_pack(const tr_msg_t *m) {
    s_reset();
    return tr_msg_pack(m, P);
}

/* Packs m with the test's own encoder (no checks): type, required and present fields. */
static void s_pack_unchecked(const tr_msg_t *m, int i32s_as_array) {
    const tr_msg_desc_t *d = tr_msg_desc(m->type);
    uint32_t n = 1;
    for (int fi = 0; fi < d->n_fields; fi++)
        n += (uint32_t)(m->present >> fi & 1);
    s_begin(n, d->name);
    for (int fi = 0; fi < d->n_fields; fi++) {
        if (!(m->present >> fi & 1)) continue;
        s_cstr(d->fields[fi].name);
        s_pack_slot(&d->fields[fi], (const uint8_t *)&m->u + d->fields[fi].offset, i32s_as_array);
    }
}

/* ---- the schema itself ---- */

static void test_schema(void) {
    ok(tr_msg_desc(TR_MSG_NONE) == NULL && tr_msg_desc(TR_MSG_COUNT) == NULL &&
           strcmp(tr_msg_type_name(TR_MSG_NONE), "?") == 0,
       "no descriptor for TR_MSG_NONE / TR_MSG_COUNT");
    int bad = 0;
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        if (!d || !d->name || d->n_fields >= 64 || d->version < 1 ||
            tr_msg_type_from_name(d->name, strlen(d->name)) != (tr_msg_type_t)t) {
            bad++;
            diag("type %d: bad descriptor", t);
            continue;
        }
        for (int fi = 0; fi < d->n_fields; fi++) {
            const tr_field_desc_t *f = &d->fields[fi];
            if (strcmp(tr_field_type_name(f->type), "?") == 0 || !strcmp(f->name, "type") ||
                !strcmp(f->name, "v") || !strcmp(f->name, "from")) {
                bad++;
                diag("%s.%s: bad field", d->name, f->name);
            }
            for (int fj = 0; fj < fi; fj++)
                if (strcmp(d->fields[fj].name, f->name) == 0) bad++;
        }
    }
    ok(bad == 0, "%d types: names map back, < 64 unique fields, none named type/v/from",
       TR_MSG_COUNT - 1);
    ok(tr_msg_type_from_name("", 0) == TR_MSG_NONE &&
           tr_msg_type_from_name("pin", 3) == TR_MSG_NONE,
       "unknown names give TR_MSG_NONE");
}

/* ---- round trips ---- */

static void test_round_trip_all(void) {
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        tr_msg_t m, got;
        s_make(&m, (tr_msg_type_t)t, ~0ull >> (64 - d->n_fields));
        m.from = tr_str_c("actor-7");
        ok(s_pack(&m) == TR_OK, "%s: every field set encodes", d->name);
        if (!s_expect_ok(&got, d->name)) {
            s_free_all();
            continue;
        }
        int same = got.type == m.type && got.v == d->version && got.present == m.present &&
                   tr_str_eq(got.from, "actor-7");
        for (int fi = 0; fi < d->n_fields; fi++) {
            const tr_field_desc_t *f = &d->fields[fi];
            if (!s_slot_eq(f, s_slot(&m, f), s_slot(&got, f))) {
                same = 0;
                diag("%s.%s differs after the round trip", d->name, f->name);
            }
        }
        ok(same, "%s: type, v, from, present bits and all %d field values come back", d->name,
           d->n_fields);
        tr_msg_fini(&got);
        tr_msg_fini(&got); /* idempotent */
        s_free_all();
    }

    /* the other wire forms: I32S as an array, ids as ints (and as strs for odd types) */
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        tr_msg_t m, got;
        s_make(&m, (tr_msg_type_t)t, ~0ull >> (64 - d->n_fields));
        for (int fi = 0; fi < d->n_fields; fi++)
            if (d->fields[fi].type == TR_FT_ID)
                s_fill(&d->fields[fi], s_slot(&m, &d->fields[fi]), fi + t + 1, 0);
        s_pack_unchecked(&m, 1);
        if (s_expect_ok(&got, "I32S as array, other id form")) {
            int same = got.present == m.present;
            for (int fi = 0; fi < d->n_fields; fi++)
                same &= s_slot_eq(&d->fields[fi], s_slot(&m, &d->fields[fi]),
                                  s_slot(&got, &d->fields[fi]));
            ok(same, "%s: same values from arrays of ints and the other id form", d->name);
            tr_msg_fini(&got);
        }
        s_free_all();
    }
}

static void test_optional_absent(void) {
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        uint64_t req = s_required_mask(d);
        tr_msg_t m, got;
        s_make(&m, (tr_msg_type_t)t, req);
        ok(s_pack(&m) == TR_OK, "%s: required fields only encodes", d->name);
        /* on the wire: type, v and the required fields, nothing else */
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        int n_keys = -1;
        if (msgpack_unpack_next(&up, g_sb.data, g_sb.size, NULL) == MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_MAP)
            n_keys = (int)up.data.via.map.size;
        msgpack_unpacked_destroy(&up);
        ok(n_keys == 2 + __builtin_popcountll(req),
           "%s: %d keys on the wire (type, v, %d required)", d->name, n_keys,
           __builtin_popcountll(req));
        if (s_expect_ok(&got, d->name)) {
            ok(got.present == req && got.from.n == 0 && got.v == 1,
               "%s: optional fields stay absent (present %llx), no from", d->name,
               (unsigned long long)got.present);
            tr_msg_fini(&got);
        }
        s_free_all();
    }
    /* absent means zeroed storage too */
    tr_msg_t got;
    s_begin(2, "ping");
    s_cstr("seq");
    msgpack_pack_int(P, 5);
    if (s_expect_ok(&got, "ping with seq only")) {
        ok(!TR_MSG_HAS(&got, ping, sent_ns) && got.u.ping.sent_ns == 0 && got.u.ping.seq == 5,
           "absent sent_ns: bit clear, value 0");
        tr_msg_fini(&got);
    }
}

/* ---- envelope ---- */

static void test_envelope(void) {
    tr_msg_t m;
    tr_msg_err_t err;
    s_begin(3, "ping");
    s_cstr("seq");
    msgpack_pack_int(P, 1);
    s_cstr("v");
    msgpack_pack_int(P, 1);
    if (s_expect_ok(&m, "v: 1 explicit")) {
        ok(m.type == TR_MSG_PING && m.v == 1, "type ping, v 1");
        tr_msg_fini(&m);
    }
    /* envelope keys anywhere in the map, type last */
    s_reset();
    msgpack_pack_map(P, 4);
    s_cstr("from");
    s_cstr("kv_manager.0");
    s_cstr("seq");
    msgpack_pack_int(P, 2);
    s_cstr("v");
    msgpack_pack_int(P, 1);
    s_cstr("type");
    s_cstr("pong");
    if (s_expect_ok(&m, "envelope keys in any order")) {
        ok(m.type == TR_MSG_PONG && tr_str_eq(m.from, "kv_manager.0") && m.u.pong.seq == 2,
           "type pong, from kv_manager.0, seq 2");
        tr_msg_fini(&m);
    }

    struct {
        const char *what;
        int kind; /* 0: int v, 1: str v, 2: from str of n bytes, 3: from int, 4: float v */
        int64_t val;
        const char *code, *field;
    } cases[] = {
        {"v 2 (newer than supported)", 0, 2, "unsupported_version", "v"},
        {"v 1000000", 0, 1000000, "unsupported_version", "v"},
        {"v 0", 0, 0, "bad_request", "v"},
        {"v -1", 0, -1, "bad_request", "v"},
        {"v 1000001", 0, 1000001, "bad_request", "v"},
        {"v \"1\"", 1, 0, "bad_request", "v"},
        {"v 1.5", 4, 0, "bad_request", "v"},
        {"from of 65 bytes", 2, 65, "bad_request", "from"},
        {"from an int", 3, 0, "bad_request", "from"},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        s_begin(3, "ping");
        s_cstr("seq");
        msgpack_pack_int(P, 1);
        s_cstr(cases[i].kind >= 2 && cases[i].kind <= 3 ? "from" : "v");
        if (cases[i].kind == 0)
            msgpack_pack_int64(P, cases[i].val);
        else if (cases[i].kind == 1)
            s_cstr("1");
        else if (cases[i].kind == 2)
            s_pack_str_n((size_t)cases[i].val, 'f');
        else if (cases[i].kind == 3)
            msgpack_pack_int(P, 7);
        else
            msgpack_pack_double(P, 1.5);
        s_expect_fail(&err, cases[i].what, cases[i].code, cases[i].field, NULL);
    }
    s_begin(3, "ping");
    s_cstr("seq");
    msgpack_pack_int(P, 1);
    s_cstr("from");
    s_pack_str_n(64, 'f');
    if (s_expect_ok(&m, "from of 64 bytes")) tr_msg_fini(&m);
    s_free_all();
}

/* ---- numbers ---- */

static void s_one_field(const char *type, const char *field) {
    s_begin(2, type);
    s_cstr(field);
}

static void test_numbers(void) {
    tr_msg_t m;
    tr_msg_err_t err;
    s_one_field("generate", "max_tokens");
    msgpack_pack_double(P, 3.0);
    if (s_expect_ok(&m, "INT max_tokens 3.0 (float64)")) {
        ok(m.u.generate.max_tokens == 3, "3.0 reads as 3");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "max_tokens");
    msgpack_pack_float(P, 7.0f);
    if (s_expect_ok(&m, "INT max_tokens 7.0 (float32)")) {
        ok(m.u.generate.max_tokens == 7, "7.0f reads as 7");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "priority");
    msgpack_pack_double(P, -3.0);
    if (s_expect_ok(&m, "SINT priority -3.0")) {
        ok(m.u.generate.priority == -3, "-3.0 reads as -3");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "priority");
    msgpack_pack_int64(P, INT64_MIN);
    if (s_expect_ok(&m, "SINT priority INT64_MIN")) {
        ok(m.u.generate.priority == INT64_MIN, "INT64_MIN kept");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "seed");
    msgpack_pack_uint64(P, (uint64_t)INT64_MAX);
    if (s_expect_ok(&m, "INT seed INT64_MAX")) {
        ok(m.u.generate.seed == INT64_MAX, "INT64_MAX kept");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "seed");
    msgpack_pack_double(P, -0.0);
    if (s_expect_ok(&m, "INT seed -0.0")) {
        ok(m.u.generate.seed == 0, "-0.0 reads as 0");
        tr_msg_fini(&m);
    }

    struct {
        const char *what, *field;
        int kind; /* 0 double, 1 int64, 2 uint64, 3 str, 4 bool, 5 float32 */
        double d;
        int64_t i;
        const char *needle;
    } bad[] = {
        {"INT 3.5", "max_tokens", 0, 3.5, 0, "expected int"},
        {"INT -1", "max_tokens", 1, 0, -1, ">= 0"},
        {"INT -1.0", "max_tokens", 0, -1.0, 0, ">= 0"},
        {"INT -2 in seed (limit 0 = any non-negative)", "seed", 1, 0, -2, ">= 0"},
        {"INT 1e19", "seed", 0, 1e19, 0, "expected int"},
        {"INT NaN", "seed", 0, NAN, 0, "expected int"},
        {"INT inf", "seed", 0, INFINITY, 0, "expected int"},
        {"INT UINT64_MAX", "seed", 2, 0, 0, "seed"},
        {"INT 2.5f", "top_k", 5, 2.5, 0, "expected int"},
        {"INT \"3\"", "max_tokens", 3, 0, 0, "expected int"},
        {"INT true", "max_tokens", 4, 0, 0, "expected int"},
        {"SINT 0.5", "priority", 0, 0.5, 0, "expected int"},
        {"FLOAT NaN", "temperature", 0, NAN, 0, "finite"},
        {"FLOAT +inf", "temperature", 0, INFINITY, 0, "finite"},
        {"FLOAT -inf (float32)", "top_p", 5, -INFINITY, 0, "finite"},
        {"FLOAT \"0.5\"", "min_p", 3, 0, 0, "expected float"},
        {"FLOAT UINT64_MAX", "temperature", 2, 0, 0, "expected float"},
        {"BOOL 1", "stream", 1, 0, 1, "expected bool"},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
        s_one_field("generate", bad[i].field);
        switch (bad[i].kind) {
        case 0:
            msgpack_pack_double(P, bad[i].d);
            break;
        case 1:
            msgpack_pack_int64(P, bad[i].i);
            break;
        case 2:
            msgpack_pack_uint64(P, UINT64_MAX);
            break;
        case 3:
            s_cstr("3");
            break;
        case 4:
            msgpack_pack_true(P);
            break;
        case 5:
            msgpack_pack_float(P, (float)bad[i].d);
            break;
        }
        s_expect_fail(&err, bad[i].what, "bad_request", bad[i].field, bad[i].needle);
        ok(strstr(err.text, bad[i].field) != NULL, "%s: the sentence names '%s'", bad[i].what,
           bad[i].field);
    }

    s_one_field("generate", "temperature");
    msgpack_pack_int(P, 2);
    if (s_expect_ok(&m, "FLOAT temperature given the int 2")) {
        ok(m.u.generate.temperature == 2.0, "2 reads as 2.0");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "top_p");
    msgpack_pack_float(P, 0.75f);
    if (s_expect_ok(&m, "FLOAT top_p as float32")) {
        ok(m.u.generate.top_p == 0.75, "0.75f reads as 0.75");
        tr_msg_fini(&m);
    }
}

/* ---- limits, decode and encode, for every limited field of every type ---- */

#define BIG_MAX ((uint64_t)32 << 20) /* skip limits whose values would pass 32 MiB */

static uint64_t s_limit_bytes(const tr_field_desc_t *f, uint64_t n) {
    switch (f->type) {
    case TR_FT_I32S:
        return 4 * n;
    case TR_FT_STRS:
        return 16 * n;
    default:
        return n;
    }
}

static void test_limits(void) {
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        for (int fi = 0; fi < d->n_fields; fi++) {
            const tr_field_desc_t *f = &d->fields[fi];
            int sized = f->type == TR_FT_STR || f->type == TR_FT_ID || f->type == TR_FT_INT ||
                        f->type == TR_FT_SINT || f->type == TR_FT_BIN || f->type == TR_FT_I32S ||
                        f->type == TR_FT_STRS;
            if (!sized || f->limit == 0) continue;
            if (s_limit_bytes(f, f->limit + 1) > BIG_MAX) {
                skip("%s.%s: limit %llu is too large to build here", d->name, f->name,
                     (unsigned long long)f->limit);
                continue;
            }
            for (int over = 0; over <= 1; over++) {
                for (int as_array = 0; as_array <= (f->type == TR_FT_I32S); as_array++) {
                    tr_msg_t m, got;
                    tr_msg_err_t err;
                    s_make(&m, (tr_msg_type_t)t, s_required_mask(d));
                    s_fill(f, s_slot(&m, f), fi, f->limit + (uint64_t)over);
                    m.present |= 1ull << fi;
                    char what[160];
                    snprintf(what, sizeof what, "%s.%s %s the limit of %llu%s", d->name, f->name,
                             over ? "past" : "at", (unsigned long long)f->limit,
                             as_array ? " (array)" : "");
                    int rc = s_pack(&m);
                    ok(over ? rc == TR_EINVAL : rc == TR_OK, "encode %s: %s", what,
                       tr_strerror(rc));
                    s_pack_unchecked(&m, as_array);
                    if (over) {
                        s_expect_fail(&err, what, "bad_request", f->name, NULL);
                    } else if (s_expect_ok(&got, what)) {
                        ok(s_slot_eq(f, s_slot(&m, f), s_slot(&got, f)), "%s: value kept", what);
                        tr_msg_fini(&got);
                    }
                    s_free_all();
                }
            }
        }
    }

    /* STRS items: at most 4096 bytes each, both ways */
    for (int over = 0; over <= 1; over++) {
        tr_msg_t m, got;
        tr_msg_err_t err;
        tr_str_t items[2] = {tr_str_c("x"), s_str_n(4096 + (size_t)over, 's')};
        tr_msg_init(&m, TR_MSG_GENERATE);
        tr_strs_t a = {NULL, items, 2};
        TR_MSG_SET(&m, generate, stop, a);
        int rc = s_pack(&m);
        ok(over ? rc == TR_EINVAL : rc == TR_OK, "encode STRS item of %d bytes: %s", 4096 + over,
           tr_strerror(rc));
        s_pack_unchecked(&m, 0);
        if (over)
            s_expect_fail(&err, "STRS item of 4097 bytes", "bad_request", "stop", NULL);
        else if (s_expect_ok(&got, "STRS item of 4096 bytes"))
            tr_msg_fini(&got);
        s_free_all();
    }
}

/* ---- I32S and STRS forms ---- */

static void test_i32s(void) {
    tr_msg_t m;
    tr_msg_err_t err;
    /* 1, -2, INT32_MAX, INT32_MIN as little-endian bytes, at an odd offset in the frame */
    const uint8_t le[16] = {1,    0,    0,    0,    0xfe, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0x7f, 0,    0,    0,    0x80};
    s_begin(3, "generate");
    s_cstr("id");
    s_cstr("x");
    s_cstr("tokens");
    msgpack_pack_bin(P, sizeof le);
    msgpack_pack_bin_body(P, le, sizeof le);
    if (s_expect_ok(&m, "I32S from bin (unaligned)")) {
        tr_i32s_t a = m.u.generate.tokens;
        ok(a.n == 4 && tr_i32s_at(a, 0) == 1 && tr_i32s_at(a, 1) == -2 &&
               tr_i32s_at(a, 2) == INT32_MAX && tr_i32s_at(a, 3) == INT32_MIN,
           "bin gives 1, -2, INT32_MAX, INT32_MIN in place (n %u)", a.n);
        ok(a.p >= g_in && a.p < g_in + g_sb.size, "bin form borrows the input frame");
        tr_msg_fini(&m);
    }
    s_one_field("generate", "tokens");
    msgpack_pack_array(P, 4);
    msgpack_pack_int(P, 1);
    msgpack_pack_int(P, -2);
    msgpack_pack_int32(P, INT32_MAX);
    msgpack_pack_int32(P, INT32_MIN);
    if (s_expect_ok(&m, "I32S from array")) {
        tr_i32s_t a = m.u.generate.tokens;
        ok(a.n == 4 && tr_i32s_at(a, 0) == 1 && tr_i32s_at(a, 1) == -2 &&
               tr_i32s_at(a, 2) == INT32_MAX && tr_i32s_at(a, 3) == INT32_MIN,
           "array gives 1, -2, INT32_MAX, INT32_MIN (n %u)", a.n);
        tr_msg_fini(&m);
    }
    for (int kind = 0; kind < 2; kind++) {
        s_one_field("generate", "stop_token_ids");
        if (kind)
            msgpack_pack_array(P, 0);
        else
            msgpack_pack_bin(P, 0);
        if (s_expect_ok(&m, kind ? "I32S empty array" : "I32S empty bin")) {
            ok(TR_MSG_HAS(&m, generate, stop_token_ids) && m.u.generate.stop_token_ids.n == 0,
               "present with 0 items");
            tr_msg_fini(&m);
        }
    }
    static const int odd[] = {1, 2, 3, 5, 7, 4099};
    for (size_t i = 0; i < TR_ARRAY_LEN(odd); i++) {
        s_begin(3, "generate");
        s_cstr("id");
        s_cstr("req-9");
        s_cstr("tokens");
        msgpack_pack_bin(P, (size_t)odd[i]);
        uint8_t *b = s_alloc((size_t)odd[i]);
        msgpack_pack_bin_body(P, b, (size_t)odd[i]);
        char what[64];
        snprintf(what, sizeof what, "I32S bin of %d bytes", odd[i]);
        s_expect_fail(&err, what, "bad_request", "tokens", "whole number of int32");
        s_free_all();
    }
    struct {
        const char *what;
        int kind;
    } bad[] = {{"I32S item 2^31", 0}, {"I32S item -2^31-1", 1}, {"I32S item \"1\"", 2},
               {"I32S item 1.0", 3},  {"I32S item nil", 4},     {"I32S as a str", 5},
               {"I32S as a map", 6}};
    for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
        s_one_field("generate", "tokens");
        if (bad[i].kind < 5) {
            msgpack_pack_array(P, 2);
            msgpack_pack_int(P, 5);
        }
        switch (bad[i].kind) {
        case 0:
            msgpack_pack_int64(P, (int64_t)INT32_MAX + 1);
            break;
        case 1:
            msgpack_pack_int64(P, (int64_t)INT32_MIN - 1);
            break;
        case 2:
            s_cstr("1");
            break;
        case 3:
            msgpack_pack_double(P, 1.0);
            break;
        case 4:
            msgpack_pack_nil(P);
            break;
        case 5:
            s_cstr("1 2 3");
            break;
        case 6:
            msgpack_pack_map(P, 0);
            break;
        }
        s_expect_fail(&err, bad[i].what, "bad_request", "tokens", NULL);
    }
}

static void test_strs(void) {
    tr_msg_t m;
    tr_msg_err_t err;
    s_one_field("generate", "stop");
    msgpack_pack_array(P, 3);
    s_cstr("\n\n");
    s_cstr("");
    s_cstr("END");
    if (s_expect_ok(&m, "STRS of three strings")) {
        tr_strs_t a = m.u.generate.stop;
        ok(a.n == 3 && tr_str_eq(tr_strs_at(a, 0), "\n\n") && tr_str_eq(tr_strs_at(a, 1), "") &&
               tr_str_eq(tr_strs_at(a, 2), "END"),
           "items read back in order");
        tr_msg_fini(&m);
    }
    for (int kind = 0; kind < 5; kind++) {
        static const char *const names[] = {"int", "nil", "bin", "array", "map"};
        s_one_field("generate", "stop");
        msgpack_pack_array(P, 2);
        s_cstr("ok");
        switch (kind) {
        case 0:
            msgpack_pack_int(P, 3);
            break;
        case 1:
            msgpack_pack_nil(P);
            break;
        case 2:
            msgpack_pack_bin(P, 1);
            msgpack_pack_bin_body(P, "x", 1);
            break;
        case 3:
            msgpack_pack_array(P, 0);
            break;
        case 4:
            msgpack_pack_map(P, 0);
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "STRS with a %s item", names[kind]);
        s_expect_fail(&err, what, "bad_request", "stop", "item 1");
    }
    s_one_field("ready", "actors");
    s_cstr("a");
    s_expect_fail(&err, "STRS given a str", "bad_request", "actors", "expected array of str");
}

/* ---- keys ---- */

static void test_keys(void) {
    tr_msg_t m;
    tr_msg_err_t err;
    s_begin(6, "ping");
    s_cstr("seq");
    msgpack_pack_int(P, 4);
    s_cstr("zzz_future");
    msgpack_pack_map(P, 1);
    s_cstr("nested");
    msgpack_pack_array(P, 2);
    msgpack_pack_int(P, 1);
    msgpack_pack_nil(P);
    s_cstr("prompt"); /* a field of another type: unknown here */
    msgpack_pack_int(P, 5);
    s_cstr("");
    msgpack_pack_nil(P);
    s_cstr("SEQ");
    s_cstr("case matters");
    if (s_expect_ok(&m, "unknown keys (nested maps, other types' fields, '', case)")) {
        ok(m.present == 1 && m.u.ping.seq == 4, "unknown keys ignored; seq 4");
        tr_msg_fini(&m);
    }

    /* Both occurrences after `late` unknown keys: the check must not stop at the first 64. */
    struct {
        const char *what, *key;
        int late;
    } dups[] = {{"duplicate field", "seq", 0},
                {"duplicate type", "type", 0},
                {"duplicate v", "v", 0},
                {"duplicate from", "from", 0},
                {"duplicate unknown key", "x", 0},
                {"duplicate empty key (a NULL str pointer in msgpack-c)", "", 0},
                {"duplicate field after 70 keys", "seq", 70},
                {"duplicate type after 70 keys", "type", 70},
                {"duplicate v after 70 keys", "v", 70},
                {"duplicate from after 70 keys", "from", 70},
                {"duplicate field after 1000 keys", "seq", 1000}};
    for (size_t i = 0; i < TR_ARRAY_LEN(dups); i++) {
        const char *key = dups[i].key;
        int extra = strcmp(key, "type") != 0 && strcmp(key, "seq") != 0; /* first occurrence */
        s_reset();
        msgpack_pack_map(P, (uint32_t)(dups[i].late + 3 + extra));
        for (int k = 0; k < dups[i].late; k++) {
            char name[16];
            snprintf(name, sizeof name, "k%d", k);
            s_cstr(name);
            msgpack_pack_nil(P);
        }
        s_cstr("type");
        s_cstr("ping");
        s_cstr("seq");
        msgpack_pack_int(P, 1);
        for (int copy = 0; copy < 1 + extra; copy++) {
            s_cstr(key);
            if (!strcmp(key, "type"))
                s_cstr("ping");
            else if (!strcmp(key, "from"))
                s_cstr(copy ? "b" : "a");
            else
                msgpack_pack_int(P, 1);
        }
        s_expect_fail(&err, dups[i].what, "bad_request", key, "duplicate");
    }

    for (int kind = 0; kind < 6; kind++) {
        static const char *const names[] = {"int", "nil", "bin 'type'", "array", "map", "float"};
        s_reset();
        msgpack_pack_map(P, 3);
        s_cstr("seq");
        msgpack_pack_int(P, 1);
        switch (kind) {
        case 0:
            msgpack_pack_int(P, 1);
            break;
        case 1:
            msgpack_pack_nil(P);
            break;
        case 2:
            msgpack_pack_bin(P, 4);
            msgpack_pack_bin_body(P, "type", 4);
            break;
        case 3:
            msgpack_pack_array(P, 0);
            break;
        case 4:
            msgpack_pack_map(P, 0);
            break;
        case 5:
            msgpack_pack_double(P, 1.0);
            break;
        }
        s_cstr(kind == 2 ? "ping" : "v");
        s_cstr("type");
        s_cstr("ping");
        char what[64];
        snprintf(what, sizeof what, "a %s key", names[kind]);
        s_expect_fail(&err, what, "bad_request", "", "keys must be strings");
    }
}

/* ---- type, top level, truncation, trailing bytes ---- */

static void test_type_and_top_level(void) {
    tr_msg_err_t err;
    s_reset();
    msgpack_pack_map(P, 1);
    s_cstr("seq");
    msgpack_pack_int(P, 1);
    s_expect_fail(&err, "missing type", "bad_request", "type", NULL);
    s_reset();
    msgpack_pack_map(P, 0);
    s_expect_fail(&err, "empty map", "bad_request", "type", NULL);
    for (int kind = 0; kind < 5; kind++) {
        static const char *const names[] = {"int", "nil", "bin", "array", "bool"};
        s_reset();
        msgpack_pack_map(P, 1);
        s_cstr("type");
        switch (kind) {
        case 0:
            msgpack_pack_int(P, TR_MSG_PING);
            break;
        case 1:
            msgpack_pack_nil(P);
            break;
        case 2:
            msgpack_pack_bin(P, 4);
            msgpack_pack_bin_body(P, "ping", 4);
            break;
        case 3:
            msgpack_pack_array(P, 1);
            s_cstr("ping");
            break;
        case 4:
            msgpack_pack_true(P);
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "type given as %s", names[kind]);
        s_expect_fail(&err, what, "bad_request", "type", "expected str");
    }
    s_begin(1, "generat");
    s_expect_fail(&err, "unknown type 'generat'", "unknown_type", "type", "generat");
    s_begin(1, "");
    s_expect_fail(&err, "empty type", "unknown_type", "type", "unknown message type");
    s_reset();
    msgpack_pack_map(P, 1);
    s_cstr("type");
    s_pack_str_n(1000, 't');
    s_expect_fail(&err, "type of 1000 bytes", "unknown_type", "type", "ttttttt");
    ok(strlen(err.text) < sizeof err.text, "long type names are cut in the sentence");
    s_free_all();

    for (int kind = 0; kind < 9; kind++) {
        static const char *const names[] = {"int", "negative int", "array", "nil", "str",
                                            "bin", "float",        "bool",  "ext"};
        s_reset();
        switch (kind) {
        case 0:
            msgpack_pack_int(P, 7);
            break;
        case 1:
            msgpack_pack_int(P, -7);
            break;
        case 2:
            msgpack_pack_array(P, 2);
            s_cstr("type");
            s_cstr("ping");
            break;
        case 3:
            msgpack_pack_nil(P);
            break;
        case 4:
            s_cstr("ping");
            break;
        case 5:
            msgpack_pack_bin(P, 2);
            msgpack_pack_bin_body(P, "\x81\xc0", 2);
            break;
        case 6:
            msgpack_pack_double(P, 1.5);
            break;
        case 7:
            msgpack_pack_false(P);
            break;
        case 8:
            msgpack_pack_ext(P, 1, 1);
            msgpack_pack_ext_body(P, "x", 1);
            break;
        }
        char what[64];
        snprintf(what, sizeof what, "top level %s", names[kind]);
        s_expect_fail(&err, what, "bad_request", "", "must be a msgpack map");
    }
    tr_msg_t m;
    int rc = tr_msg_decode(&m, NULL, 0, &err);
    ok(rc == TR_EPROTO && strstr(err.text, "empty") != NULL && m.zone == NULL,
       "zero bytes (NULL data): refused as empty");
}

/* Every proper prefix of each type's full message fails cleanly; trailing bytes too. */
static void test_truncation(void) {
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        tr_msg_t m, got;
        tr_msg_err_t err;
        s_make(&m, (tr_msg_type_t)t, ~0ull >> (64 - d->n_fields));
        m.from = tr_str_c("actor");
        s_pack(&m);
        size_t n = g_sb.size;
        uint8_t *full = malloc(n);
        memcpy(full, g_sb.data, n);
        int bad = 0;
        for (size_t len = 0; len < n; len++) {
            int rc = s_decode_buf(&got, full, len, &err);
            if (rc == TR_OK) tr_msg_fini(&got);
            if (rc != TR_EPROTO || got.zone || !err.text[0]) {
                if (!bad) diag("%s: prefix of %zu bytes: rc %d", d->name, len, rc);
                bad++;
            }
        }
        ok(bad == 0, "%s: each of the %zu proper prefixes fails cleanly", d->name, n);
        int rc = s_decode_buf(&got, full, n, &err);
        if (rc == TR_OK) tr_msg_fini(&got);
        ok(rc == TR_OK, "%s: the whole message decodes", d->name);

        /* trailing bytes */
        uint8_t *more = malloc(n + 9);
        memcpy(more, full, n);
        memcpy(more + n, full, n < 9 ? n : 9);
        rc = s_decode_buf(&got, more, n + 1, &err);
        ok(rc == TR_EPROTO && strstr(err.text, "trailing") != NULL,
           "%s: one trailing byte refused (%s)", d->name, err.text);
        rc = s_decode_buf(&got, more, n + (n < 9 ? n : 9), &err);
        ok(rc == TR_EPROTO && strstr(err.text, "trailing") != NULL, "%s: trailing bytes refused",
           d->name);
        free(more);
        free(full);
        s_free_all();
    }
}

/* ---- nesting and hostile sizes ---- */

/* pong whose stats holds `levels` - 1 nested containers (the root map is level 1);
 * innermost is a scalar, or an empty container when `empty`. */
static void s_nested(int levels, int empty, int maps) {
    s_begin(3, "pong");
    s_cstr("seq");
    msgpack_pack_int(P, 0);
    s_cstr("stats");
    int wrappers = levels - 1 - (empty ? 1 : 0);
    for (int i = 0; i < wrappers; i++) {
        if (maps) {
            msgpack_pack_map(P, 1);
            s_cstr("k");
        } else {
            msgpack_pack_array(P, 1);
        }
    }
    if (empty)
        maps ? msgpack_pack_map(P, 0) : msgpack_pack_array(P, 0);
    else
        msgpack_pack_int(P, 1);
}

static void test_nesting(void) {
    tr_msg_t m;
    tr_msg_err_t err;
    for (int maps = 0; maps <= 1; maps++) {
        for (int empty = 0; empty <= 1; empty++) {
            char what[96];
            const char *form = maps ? "maps" : "arrays";
            const char *inner = empty ? "an empty container" : "a scalar";
            s_nested(32, empty, maps);
            snprintf(what, sizeof what, "32 levels of %s, %s innermost", form, inner);
            if (s_expect_ok(&m, what)) tr_msg_fini(&m);
            s_nested(33, empty, maps);
            snprintf(what, sizeof what, "33 levels of %s, %s innermost", form, inner);
            s_expect_fail(&err, what, "bad_request", "", "nested deeper than 32");
        }
    }
    s_nested(40, 0, 0);
    s_expect_fail(&err, "40 levels", "bad_request", "", "nested deeper than 32");
    /* a million open arrays: the scan stops at the limit, no deep recursion */
    s_nested(1000000, 0, 0);
    s_expect_fail(&err, "1000000 levels", "bad_request", "", "nested deeper than 32");
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_hostile_sizes(void) {
    static const struct {
        const char *what;
        uint8_t b[8];
        int n;
        const char *needle;
    } cases[] = {
        {"array32 of 4294967295", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5, "declares more items"},
        {"map32 of 4294967295", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5, "declares more items"},
        {"array16 of 65535", {0xdc, 0xff, 0xff, 0xc0, 0xc0}, 5, "declares more items"},
        {"map16 of 65535", {0xde, 0xff, 0xff, 0xa0, 0xc0}, 5, "declares more items"},
        {"array32 of 2^31 then 3 nils",
         {0xdd, 0x80, 0, 0, 0, 0xc0, 0xc0, 0xc0},
         8,
         "declares more items"},
        {"bin32 of 4294967295", {0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 8, "truncated"},
        {"str32 of 2147483647", {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'}, 8, "truncated"},
        {"ext32 of 4294967295", {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0}, 7, "truncated"},
        {"bin16 of 65535", {0xc5, 0xff, 0xff, 0}, 4, "truncated"},
        {"array32 header cut short", {0xdd, 0xff, 0xff}, 3, "truncated"},
        {"the never-used byte 0xc1", {0xc1}, 1, "malformed"},
    };
    tr_msg_err_t err;
    double worst = 0;
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        for (int inside = 0; inside <= 1; inside++) {
            /* alone, and as the value of an unknown key in a valid ping */
            s_reset();
            if (inside) {
                s_begin(3, "ping");
                s_cstr("seq");
                msgpack_pack_int(P, 1);
                s_cstr("junk");
            }
            s_raw(cases[i].b, (size_t)cases[i].n);
            char what[96];
            snprintf(what, sizeof what, "%s%s", cases[i].what, inside ? " in a field" : "");
            double t0 = s_now();
            s_expect_fail(&err, what, "bad_request", "", cases[i].needle);
            double dt = s_now() - t0;
            if (dt > worst) worst = dt;
        }
    }
    /* the pre-scan refused each of these before msgpack-c could allocate by count */
    ok(worst < 0.25, "each hostile size refused fast (slowest %.3f ms)", worst * 1e3);
}

/* ---- every msgpack encoding inside an ANY field ---- */

static void test_every_msgpack_type(void) {
    static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0, 0};             /* 1.5f */
    static const uint8_t f64[] = {0xcb, 0x40, 0x02, 0, 0, 0, 0, 0, 0}; /* 2.25 */
    /* clang-format off */
    static const uint8_t items[] = {
        0xc0, 0xc2, 0xc3, 0x05, 0xe0,                             /*  0-4  nil, bool, int */
        0xcc, 0xff, 0xcd, 0xff, 0xff, 0xce, 0x80, 0, 0, 0,        /*  5-7  uint8/16/32 */
        0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0,                          /*  8    uint64 2^63 */
        0xd0, 0x80, 0xd1, 0xfe, 0xd4, 0xd2, 0xff, 0xfe, 0xee, 0x90, /*  9-11 int8/16/32 */
        0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,     /* 12    int64 -1 */
        0xa3, 'f', 'i', 'x',                                      /* 13    fixstr */
        0xd9, 1, 's', 0xda, 0, 1, 's', 0xdb, 0, 0, 0, 1, 's',     /* 14-16 str8/16/32 */
        0xc4, 1, 'b', 0xc5, 0, 0, 0xc6, 0, 0, 0, 2, 'b', 'b',     /* 17-19 bin8/16/32 */
        0xd4, 1, 'a', 0xd5, 2, 'a', 'b', 0xd6, 3, 1, 2, 3, 4,     /* 20-22 fixext 1/2/4 */
        0xd7, 4, 1, 2, 3, 4, 5, 6, 7, 8,                          /* 23    fixext 8 */
        0xd8, 5, 1, 2, 3, 4, 5, 6, 7, 8,                          /* 24    fixext 16 */
        9, 10, 11, 12, 13, 14, 15, 16,
        0xc7, 2, 6, 'e', '8', 0xc8, 0, 1, 0xf9, 'x',              /* 25-26 ext8, ext16 */
        0xc9, 0, 0, 0, 0, 8,                                      /* 27    ext32, empty */
        0x90, 0xdc, 0, 1, 1, 0xdd, 0, 0, 0, 2, 2, 3,              /* 28-30 arrays */
        0x80, 0xde, 0, 1, 0xa1, 'a',                              /* 31-32 {}, and map16: */
        0x81, 0xa4, 'd', 'e', 'e', 'p',                           /* {a: {deep: {er: [{}]}}} */
        0x81, 0xa2, 'e', 'r', 0x91, 0x80,
        0xdf, 0, 0, 0, 1, 0xa1, 'b', 0xc0,                        /* 33    map32 */
        0x83, 1, 0xa1, 'i', 0xc4, 1, 'k', 2, 0xc0, 3,             /* 34    int/bin/nil keys */
    };
    /* clang-format on */
    enum { N_ITEMS = 37 }; /* 35 above, plus f32 and f64 */
    tr_msg_t m;
    s_reset();
    msgpack_pack_map(P, 2);
    s_raw("\xdb\0\0\0\x04type", 9); /* str32 "type" */
    s_raw("\xd9\x06health", 8);     /* str8 "health" */
    s_raw("\xda\0\6actors", 9);     /* str16 "actors" */
    s_raw("\xdc\0", 2);
    s_bytes(1, N_ITEMS);
    s_raw(items, sizeof items);
    s_raw(f32, sizeof f32);
    s_raw(f64, sizeof f64);
    if (!s_expect_ok(&m, "every msgpack encoding inside an ANY field")) return;
    const msgpack_object *a = m.u.health.actors.obj;
    int good = a && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == N_ITEMS;
    ok(good, "ANY holds the %d items (got %u)", N_ITEMS, a ? a->via.array.size : 0);
    if (good) {
        const msgpack_object *it = a->via.array.ptr;
        ok(it[0].type == MSGPACK_OBJECT_NIL && it[2].type == MSGPACK_OBJECT_BOOLEAN &&
               it[8].via.u64 == 1ull << 63 && it[12].via.i64 == -1 &&
               it[16].type == MSGPACK_OBJECT_STR && it[19].type == MSGPACK_OBJECT_BIN &&
               it[19].via.bin.size == 2,
           "scalars, str32 and bin32 decode");
        ok(it[20].type == MSGPACK_OBJECT_EXT && it[24].via.ext.type == 5 &&
               it[24].via.ext.size == 16 && it[26].via.ext.type == -7 &&
               it[27].type == MSGPACK_OBJECT_EXT && it[27].via.ext.size == 0,
           "fixext 1..16, ext8/16/32 (negative and empty) decode");
        ok(it[30].type == MSGPACK_OBJECT_ARRAY && it[30].via.array.size == 2 &&
               it[32].type == MSGPACK_OBJECT_MAP && it[34].type == MSGPACK_OBJECT_MAP &&
               it[34].via.map.size == 3 && it[34].via.map.ptr[1].key.type == MSGPACK_OBJECT_BIN,
           "array32, nested maps, and non-str keys inside ANY decode");
        ok(it[35].type == MSGPACK_OBJECT_FLOAT32 && it[35].via.f64 == 1.5 &&
               it[36].type == MSGPACK_OBJECT_FLOAT64 && it[36].via.f64 == 2.25,
           "float32 and float64 decode");
    }
    tr_msg_fini(&m);

    /* non-minimal int forms in an INT field */
    s_reset();
    msgpack_pack_map(P, 2);
    s_cstr("type");
    s_cstr("pong");
    s_cstr("seq");
    s_raw("\xcf\0\0\0\0\0\0\0\x09", 9); /* uint64 form of 9 */
    if (s_expect_ok(&m, "wide int forms in INT fields")) {
        ok(m.u.pong.seq == 9, "uint64-encoded 9 reads as 9");
        tr_msg_fini(&m);
    }
}

/* ---- every field names itself when it is wrong ---- */

static void test_field_names(void) {
    int bad = 0, n = 0;
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        for (int fi = 0; fi < d->n_fields; fi++) {
            const tr_field_desc_t *f = &d->fields[fi];
            if (f->type == TR_FT_ANY) continue; /* anything goes */
            tr_msg_t m, got;
            tr_msg_err_t err;
            s_make(&m, (tr_msg_type_t)t, s_required_mask(d));
            m.present &= ~(1ull << fi);
            s_pack_unchecked(&m, 0);
            /* add the field as nil: wrong for every non-ANY type */
            uint8_t *map = (uint8_t *)g_sb.data;
            if ((map[0] & 0xf0) != 0x80 || (map[0] & 0x0f) == 0x0f) {
                bad++;
                continue;
            }
            map[0]++;
            s_cstr(f->name);
            msgpack_pack_nil(P);
            int rc = s_decode(&got, &err);
            if (rc == TR_OK) tr_msg_fini(&got);
            n++;
            if (rc != TR_EPROTO || strcmp(err.field, f->name) != 0 ||
                strstr(err.text, f->name) == NULL || strstr(err.text, "nil") == NULL) {
                bad++;
                diag("%s.%s = nil: rc %d field '%s' text '%s'", d->name, f->name, rc, err.field,
                     err.text);
            }
            s_free_all();
        }
        /* a missing required field is named too */
        for (int fi = 0; fi < d->n_fields; fi++) {
            if (!d->fields[fi].required) continue;
            tr_msg_t m, got;
            tr_msg_err_t err;
            s_make(&m, (tr_msg_type_t)t, s_required_mask(d) & ~(1ull << fi));
            s_pack_unchecked(&m, 0);
            int rc = s_decode(&got, &err);
            if (rc == TR_OK) tr_msg_fini(&got);
            n++;
            if (rc != TR_EPROTO || strcmp(err.field, d->fields[fi].name) != 0 ||
                strstr(err.text, d->fields[fi].name) == NULL ||
                strstr(err.text, "missing") == NULL) {
                bad++;
                diag("%s without %s: rc %d field '%s' text '%s'", d->name, d->fields[fi].name, rc,
                     err.field, err.text);
            }
            s_free_all();
        }
    }
    ok(bad == 0, "%d wrong-typed (nil) or missing fields: err.field and the sentence name them", n);
}

/* ---- the id for error replies ---- */

static void test_error_id(void) {
    tr_msg_err_t err;
    s_begin(3, "generate");
    s_cstr("id");
    s_cstr("req-7");
    s_cstr("max_tokens");
    s_cstr("many");
    s_expect_fail(&err, "bad max_tokens", "bad_request", "max_tokens", NULL);
    ok(err.has_id && err.id.is_str && tr_str_eq(err.id.s, "req-7"), "id 'req-7' read anyway");
    free(g_in); /* the id lives in err itself, not in the frame */
    g_in = NULL;
    ok(err.has_id && err.id.s.p == err.id_buf && tr_str_eq(err.id.s, "req-7"),
       "id survives the frame (err.id_buf)");

    s_reset();
    msgpack_pack_map(P, 3);
    s_cstr("temperature");
    s_cstr("hot");
    s_cstr("id");
    msgpack_pack_int(P, -12);
    s_cstr("type");
    s_cstr("generate");
    s_expect_fail(&err, "bad temperature before the id", "bad_request", "temperature", NULL);
    ok(err.has_id && !err.id.is_str && err.id.i == -12, "int id -12 read anyway");

    struct {
        const char *what, *code, *field;
        int kind;
    } cases[] = {
        {"unknown type", "unknown_type", "type", 0},
        {"missing type", "bad_request", "type", 1},
        {"version too new", "unsupported_version", "v", 2},
        {"non-string key", "bad_request", "", 3},
        {"duplicate key", "bad_request", "stream", 4},
        {"missing required field", "bad_request", "id", 5},
    };
    for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
        s_reset();
        int k = cases[i].kind;
        msgpack_pack_map(P, k == 1 ? 1 : k == 5 ? 2 : 3);
        if (k != 1) {
            s_cstr("type");
            s_cstr(k == 0 ? "nope" : k == 5 ? "abort" : "generate");
        }
        if (k == 5) {
            s_cstr("ID"); /* not the id */
            s_cstr("r-5");
        } else {
            s_cstr("id");
            s_cstr("r-5");
        }
        if (k == 2) {
            s_cstr("v");
            msgpack_pack_int(P, 2);
        } else if (k == 3) {
            msgpack_pack_int(P, 1);
            msgpack_pack_int(P, 1);
        } else if (k == 4) {
            /* id, then stream twice: rewrite as a 4-entry map */
            g_sb.size = 0;
            msgpack_pack_map(P, 4);
            s_cstr("type");
            s_cstr("generate");
            s_cstr("id");
            s_cstr("r-5");
            s_cstr("stream");
            msgpack_pack_true(P);
            s_cstr("stream");
            msgpack_pack_false(P);
        } else if (k == 0) {
            s_cstr("x");
            msgpack_pack_nil(P);
        }
        s_expect_fail(&err, cases[i].what, cases[i].code, cases[i].field,
                      k == 3 ? "keys must be strings" : NULL);
        if (k == 5)
            ok(!err.has_id, "%s: no id to echo ('ID' is another key)", cases[i].what);
        else
            ok(err.has_id && tr_str_eq(err.id.s, "r-5"), "%s: id 'r-5' read anyway", cases[i].what);
    }

    /* an empty str id: msgpack-c hands out a NULL pointer for it */
    tr_msg_t m;
    s_begin(2, "generate");
    s_cstr("id");
    s_cstr("");
    if (s_expect_ok(&m, "empty str id")) {
        ok(m.u.generate.id.is_str && m.u.generate.id.s.n == 0, "id is the empty str");
        tr_msg_fini(&m);
    }
    s_begin(3, "generate");
    s_cstr("id");
    s_cstr("");
    s_cstr("n");
    msgpack_pack_int(P, 65);
    s_expect_fail(&err, "empty str id, n 65", "bad_request", "n", "'n'");
    ok(err.has_id && err.id.is_str && err.id.s.n == 0 && err.id_buf[0] == '\0',
       "empty id read for the error reply");

    for (int n = 256; n <= 257; n++) {
        s_begin(3, "generate");
        s_cstr("id");
        s_pack_str_n((size_t)n, 'i');
        s_cstr("top_k");
        msgpack_pack_int(P, -1);
        s_expect_fail(&err, n == 256 ? "id of 256 bytes, bad top_k" : "id of 257 bytes, bad top_k",
                      "bad_request", n == 256 ? "top_k" : "id", NULL);
        if (n == 256)
            ok(err.has_id && err.id.s.n == 256 && err.id_buf[255] == 'i' && err.id_buf[256] == '\0',
               "256-byte id copied whole");
        else
            ok(!err.has_id, "257-byte id: too long to echo");
        s_free_all();
    }
    s_begin(2, "generate");
    s_cstr("id");
    msgpack_pack_nil(P);
    s_expect_fail(&err, "id nil", "bad_request", "id", NULL);
    ok(!err.has_id, "nil id: nothing to echo");
    s_reset();
    msgpack_pack_array(P, 2);
    s_cstr("id");
    s_cstr("r");
    s_expect_fail(&err, "top-level array", "bad_request", "", "must be a msgpack map");
    ok(!err.has_id, "not a map: no id");
}

/* ---- the encoder's refusals ---- */

static void test_encode_errors(void) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_PING);
    ok(s_pack(&m) == TR_EINVAL, "ping without its required seq: TR_EINVAL");
    tr_msg_init(&m, TR_MSG_NONE);
    ok(s_pack(&m) == TR_EINVAL, "TR_MSG_NONE: TR_EINVAL");
    tr_msg_init(&m, TR_MSG_COUNT);
    ok(s_pack(&m) == TR_EINVAL, "TR_MSG_COUNT: TR_EINVAL");

    tr_msg_init(&m, TR_MSG_PING);
    TR_MSG_SET(&m, ping, seq, 1);
    m.from = s_str_n(65, 'f');
    ok(s_pack(&m) == TR_EINVAL, "from of 65 bytes: TR_EINVAL");
    m.from = s_str_n(64, 'f');
    ok(s_pack(&m) == TR_OK, "from of 64 bytes: TR_OK");

    tr_msg_init(&m, TR_MSG_PING);
    TR_MSG_SET(&m, ping, seq, -1);
    ok(s_pack(&m) == TR_EINVAL, "INT seq -1: TR_EINVAL");

    static const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
        tr_msg_init(&m, TR_MSG_GENERATE);
        TR_MSG_SET(&m, generate, temperature, bad[i]);
        ok(s_pack(&m) == TR_EINVAL, "FLOAT temperature %g: TR_EINVAL", bad[i]);
    }

    /* a packed message decodes; tr_msg_id reads its id */
    tr_msg_t got;
    tr_id_t id = {false, {NULL, 0}, 77}, out;
    tr_msg_init(&m, TR_MSG_ABORT);
    TR_MSG_SET(&m, abort, id, id);
    ok(s_pack(&m) == TR_OK, "abort with int id encodes");
    if (s_expect_ok(&got, "abort")) {
        ok(tr_msg_id(&got, &out) == 1 && !out.is_str && out.i == 77, "tr_msg_id gives 77");
        tr_msg_fini(&got);
    }
    tr_msg_init(&m, TR_MSG_HEALTH);
    ok(tr_msg_id(&m, &out) == 0, "tr_msg_id: 0 when the id is absent");
    tr_msg_init(&m, TR_MSG_PING);
    ok(tr_msg_id(&m, &out) == 0, "tr_msg_id: 0 for a type without an id");
    s_free_all();
}

static void test_helpers(void) {
    char buf[4];
    ok(strcmp(tr_str_copy(tr_str_c("abcdef"), buf, sizeof buf), "abc") == 0,
       "tr_str_copy truncates to bufsize - 1");
    ok(tr_str_eq(tr_str_c(""), "") && !tr_str_eq(tr_str_c("a"), "ab") &&
           tr_str_eq(tr_str_c("ab"), "ab"),
       "tr_str_eq");
    tr_str_t none = tr_str_c(NULL);
    ok(none.n == 0, "tr_str_c(NULL) is empty");
}

/* ---- several maps in one frame (internal links) ---- */

static void test_decode_next(void) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_PING);
    TR_MSG_SET(&m, ping, seq, 7);
    tr_msg_pack(&m, &pk);
    size_t first = sb.size;
    msgpack_pack_map(&pk, 2); /* an error without its required 'code': well-formed, refused */
    tr_pack_cstr(&pk, "type");
    tr_pack_cstr(&pk, "error");
    tr_pack_cstr(&pk, "message");
    tr_pack_cstr(&pk, "x");
    size_t second = sb.size;
    tr_pack_cstr(&pk, "from"); /* not a map, but msgpack: skipped */
    size_t third = sb.size;
    msgpack_sbuffer_write(&sb, "\xc1\x80", 2); /* not msgpack: ends the frame */

    tr_msg_err_t err;
    ok(tr_msg_decode(&m, sb.data, sb.size, &err) == TR_EPROTO && strstr(err.text, "trailing"),
       "tr_msg_decode refuses maps after the first (%s)", err.text);

    msgpack_zone *zone = msgpack_zone_new(512);
    size_t used = 0, off = 0;
    int rc = tr_msg_decode_next(&m, sb.data, sb.size, zone, &used, &err);
    ok(rc == TR_OK && used == first && m.type == TR_MSG_PING && m.u.ping.seq == 7 && !m.zone,
       "decode_next: the first map, its length, no zone of its own");
    tr_msg_fini(&m);
    msgpack_zone_clear(zone);
    off += used;
    rc = tr_msg_decode_next(&m, sb.data + off, sb.size - off, zone, &used, &err);
    ok(rc == TR_EPROTO && used == second - first,
       "decode_next: a map that breaks the schema is refused with its length (%s)", err.text);
    off += used;
    rc = tr_msg_decode_next(&m, sb.data + off, sb.size - off, zone, &used, &err);
    ok(rc == TR_EPROTO && used == third - second, "decode_next: a str is refused, skippable");
    off += used;
    rc = tr_msg_decode_next(&m, sb.data + off, sb.size - off, zone, &used, &err);
    ok(rc == TR_EPROTO && used == 0, "decode_next: bytes that are not msgpack end the frame");
    rc = tr_msg_decode_next(&m, sb.data, 0, zone, &used, &err);
    ok(rc == TR_EPROTO && used == 0, "decode_next: empty input");

    /* tr_msg_pack_to writes tr_msg_pack's bytes; refuses a short buffer */
    tr_msg_init(&m, TR_MSG_PING);
    TR_MSG_SET(&m, ping, seq, 300);
    m.from = tr_str_c("driver");
    msgpack_sbuffer_clear(&sb);
    tr_msg_pack(&m, &pk);
    char buf[256];
    size_t n = 0, bound = tr_msg_pack_bound(&m);
    ok(bound >= sb.size && bound <= sizeof buf, "pack_bound %zu covers %zu bytes", bound, sb.size);
    ok(tr_msg_pack_to(&m, buf, sizeof buf, &n) == TR_OK && n == sb.size &&
       memcmp(buf, sb.data, n) == 0, "pack_to writes tr_msg_pack's bytes");
    ok(tr_msg_pack_to(&m, buf, bound - 1, &n) == TR_EINVAL, "pack_to refuses a short buffer");
    msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&sb);
}

int main(void) {
    plan_lazy();
    msgpack_sbuffer_init(&g_sb);
    msgpack_packer_init(&g_pk, &g_sb, msgpack_sbuffer_write);

    test_schema();
    test_round_trip_all();
    test_optional_absent();
    test_envelope();
    test_numbers();
    test_limits();
    test_i32s();
    test_strs();
    test_keys();
    test_type_and_top_level();
    test_truncation();
    test_nesting();
    test_hostile_sizes();
    test_every_msgpack_type();
    test_field_names();
    test_error_id();
    test_encode_errors();
    test_helpers();
    test_decode_next();

    free(g_in);
    msgpack_sbuffer_destroy(&g_sb);
    return done_testing();
}
