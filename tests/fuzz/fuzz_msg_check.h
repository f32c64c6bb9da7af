/*  tests/fuzz/fuzz_msg_check.h - the one property every input to tr_msg_decode must keep.
 *
 *  Shared by the libFuzzer target (fuzz_msg_decode.c, built by clang) and the corpus
 *  replay test (test_fuzz_replay.c, built by gcc in the normal and asan builds), so that a
 *  crash file found by the fuzzer replays under exactly the same check.
 *
 *  For any bytes, tr_msg_check_input() requires that
 *    - decode either fails cleanly: TR_EPROTO, a code and a sentence, no zone left behind,
 *      an id (if one was read) stored in the error itself, and never because msgpack-c
 *      refused bytes the structural pre-scan had passed (the scan alone judges structure,
 *      so that msgpack-c never allocates by a count it has not checked); or
 *    - decode succeeds with a known type, a supported version and every required field,
 *      the message re-encodes with tr_msg_pack (what decode accepts, encode accepts), the
 *      encoding decodes again to the same type, version, sender, present bits and field
 *      values, and re-encoding that gives the same bytes (the encoding is canonical);
 *    - the object tree decode built (its one-pass reader for flat maps, or msgpack-c) is
 *      the one msgpack-c builds from the same bytes, and tr_msg_decode_next (internal
 *      links, trailing maps allowed) agrees with tr_msg_decode: on the whole input when
 *      that decodes, and on the prefix it reports as used when it succeeds; and
 *    - tr_msg_pack_to (the flat-buffer encoder) writes tr_msg_pack's bytes within the
 *      bound tr_msg_pack_bound gives.
 *  Returns 0 when the property holds, else -1 with a sentence in why[].
 *  Header-only (static functions): each program includes it once.                      */
#ifndef TR_FUZZ_MSG_CHECK_H
#define TR_FUZZ_MSG_CHECK_H

#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/msg.h"

__attribute__((format(printf, 3, 4))) static int s_check_fail(char *why, size_t why_n,
                                                              const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Packs `o` alone and compares the bytes: two objects are equal when their canonical
 * msgpack-c encodings are. */
static int s_check_obj_eq(const msgpack_object *a, const msgpack_object *b) {
    msgpack_sbuffer sa, sb;
    msgpack_packer pa, pb;
    msgpack_sbuffer_init(&sa);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pa, &sa, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pa, *a);
    msgpack_pack_object(&pb, *b);
    int eq = sa.size == sb.size && (sa.size == 0 || memcmp(sa.data, sb.data, sa.size) == 0);
    msgpack_sbuffer_destroy(&sa);
    msgpack_sbuffer_destroy(&sb);
    return eq;
}

static int s_check_str_eq(tr_str_t a, tr_str_t b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Field fi of two decoded messages of type d: equal values? */
static int s_check_field_eq(const tr_field_desc_t *f, const tr_msg_t *a, const tr_msg_t *b) {
    const void *x = (const uint8_t *)&a->u + f->offset;
    const void *y = (const uint8_t *)&b->u + f->offset;
    switch (f->type) {
    case TR_FT_STR:
        return s_check_str_eq(*(const tr_str_t *)x, *(const tr_str_t *)y);
    case TR_FT_ID: {
        const tr_id_t *p = x, *q = y;
        if (p->is_str != q->is_str) return 0;
        return p->is_str ? s_check_str_eq(p->s, q->s) : p->i == q->i;
    }
    case TR_FT_INT:
    case TR_FT_SINT:
        return *(const int64_t *)x == *(const int64_t *)y;
    case TR_FT_FLOAT:
        return *(const double *)x == *(const double *)y; /* finite: no NaN */
    case TR_FT_BOOL:
        return *(const bool *)x == *(const bool *)y;
    case TR_FT_BIN: {
        const tr_bin_t *p = x, *q = y;
        return p->n == q->n && (p->n == 0 || memcmp(p->p, q->p, p->n) == 0);
    }
    case TR_FT_I32S: {
        const tr_i32s_t *p = x, *q = y;
        if (p->n != q->n) return 0;
        for (uint32_t i = 0; i < p->n; i++)
            if (tr_i32s_at(*p, i) != tr_i32s_at(*q, i)) return 0;
        return 1;
    }
    case TR_FT_STRS: {
        const tr_strs_t *p = x, *q = y;
        if (p->n != q->n) return 0;
        for (uint32_t i = 0; i < p->n; i++)
            if (!s_check_str_eq(tr_strs_at(*p, i), tr_strs_at(*q, i))) return 0;
        return 1;
    }
    case TR_FT_ANY: {
        const tr_any_t *p = x, *q = y;
        return p->obj && q->obj && s_check_obj_eq(p->obj, q->obj);
    }
    }
    return 0;
}

/* Checks a decoded message against the schema: type, version, required fields. */
static int s_check_decoded(const tr_msg_t *m, char *why, size_t why_n) {
    const tr_msg_desc_t *d = tr_msg_desc(m->type);
    if (!d) return s_check_fail(why, why_n, "decoded type %d has no descriptor", (int)m->type);
    if (m->v < 1 || m->v > d->version)
        return s_check_fail(why, why_n, "decoded '%s' with version %u", d->name, m->v);
    if (m->from.n > 64) return s_check_fail(why, why_n, "decoded a 'from' of %u bytes", m->from.n);
    if (d->n_fields < 64 && (m->present >> d->n_fields) != 0)
        return s_check_fail(why, why_n, "present bits beyond the fields of '%s'", d->name);
    for (int fi = 0; fi < d->n_fields; fi++)
        if (d->fields[fi].required && !(m->present >> fi & 1))
            return s_check_fail(why, why_n, "'%s' decoded without required '%s'", d->name,
                                d->fields[fi].name);
    return 0;
}

static int s_check_pack(const tr_msg_t *m, msgpack_sbuffer *sb) {
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return tr_msg_pack(m, &pk);
}

/* tr_msg_decode_next against tr_msg_decode (m: the latter's result when rc == TR_OK). */
static int s_check_next(const uint8_t *data, size_t size, int rc, const tr_msg_t *m, char *why,
                        size_t why_n) {
    msgpack_zone *zone = msgpack_zone_new(512);
    if (!zone) return 0;
    tr_msg_t n, p;
    tr_msg_err_t err;
    size_t used = 0;
    int ret = 0;
    int rn = tr_msg_decode_next(&n, data, size, zone, &used, &err);
    if (rc == TR_OK) {
        if (rn != TR_OK || used != size || n.type != m->type || n.v != m->v ||
            n.present != m->present || !s_check_str_eq(n.from, m->from)) {
            ret = s_check_fail(why, why_n, "decode_next disagrees with decode (%s)", err.text);
        } else {
            const tr_msg_desc_t *d = tr_msg_desc(m->type);
            for (int fi = 0; fi < d->n_fields && !ret; fi++)
                if ((m->present >> fi & 1) && !s_check_field_eq(&d->fields[fi], m, &n))
                    ret = s_check_fail(why, why_n, "decode_next read field '%s' otherwise",
                                       d->fields[fi].name);
            msgpack_object o;
            size_t off = 0;
            if (!ret && msgpack_unpack((const char *)data, size, &off, zone, &o) ==
                            MSGPACK_UNPACK_SUCCESS && !s_check_obj_eq(&o, m->root))
                ret = s_check_fail(why, why_n, "the decoded tree differs from msgpack-c's");
        }
    } else if (rn == TR_OK) {
        if (used == 0 || used > size) {
            ret = s_check_fail(why, why_n, "decode_next used %zu of %zu bytes", used, size);
        } else if (tr_msg_decode(&p, data, used, &err) != TR_OK) {
            ret = s_check_fail(why, why_n, "decode_next accepted a prefix decode refuses: %s",
                               err.text);
        } else {
            if (p.type != n.type || p.present != n.present)
                ret = s_check_fail(why, why_n, "decode_next and decode differ on a prefix");
            tr_msg_fini(&p);
        }
    } else if (used > size) {
        ret = s_check_fail(why, why_n, "failed decode_next used %zu of %zu bytes", used, size);
    }
    tr_msg_fini(&n);
    msgpack_zone_free(zone);
    return ret;
}

static int tr_msg_check_input(const uint8_t *data, size_t size, char *why, size_t why_n) {
    tr_msg_t m, m2;
    tr_msg_err_t err;
    why[0] = '\0';
    int rc = tr_msg_decode(&m, data, size, &err);
    if (s_check_next(data, size, rc, &m, why, why_n)) {
        if (rc == TR_OK) tr_msg_fini(&m);
        return -1;
    }
    if (rc != TR_OK) {
        if (rc != TR_EPROTO) return s_check_fail(why, why_n, "decode returned %d", rc);
        if (!err.code[0] || !err.text[0])
            return s_check_fail(why, why_n, "decode failed without a code and a sentence");
        if (m.zone) return s_check_fail(why, why_n, "failed decode left a zone behind");
        /* msg.c's sentence for that case; a prefix, since later text may quote the input */
        static const char unpack_failed[] = "malformed msgpack (unpack error";
        if (strncmp(err.text, unpack_failed, sizeof unpack_failed - 1) == 0)
            return s_check_fail(why, why_n, "the pre-scan passed what msgpack-c refused: %s",
                                err.text);
        if (err.has_id && err.id.is_str &&
            (err.id.s.p != err.id_buf || err.id.s.n >= sizeof err.id_buf))
            return s_check_fail(why, why_n, "error id does not live in err.id_buf");
        return 0;
    }
    int ret = -1;
    msgpack_sbuffer s1, s2;
    int have1 = 0, have2 = 0, dec2 = 0;
    if (s_check_decoded(&m, why, why_n)) goto out;

    have1 = 1;
    rc = s_check_pack(&m, &s1);
    if (rc != TR_OK) {
        s_check_fail(why, why_n, "decoded '%s' does not re-encode (%s)", tr_msg_type_name(m.type),
                     tr_strerror(rc));
        goto out;
    }
    /* the flat-buffer encoder writes the same bytes, within its bound */
    size_t bound = tr_msg_pack_bound(&m);
    if (bound) {
        char *buf = malloc(bound);
        size_t n = 0;
        int rc2 = buf ? tr_msg_pack_to(&m, buf, bound, &n) : TR_OK;
        int same = !buf || (rc2 == TR_OK && n == s1.size && memcmp(buf, s1.data, n) == 0);
        free(buf);
        if (!same) {
            s_check_fail(why, why_n, "tr_msg_pack_to and tr_msg_pack differ on '%s'",
                         tr_msg_type_name(m.type));
            goto out;
        }
    }
    rc = tr_msg_decode(&m2, s1.data, s1.size, &err);
    if (rc != TR_OK) {
        s_check_fail(why, why_n, "re-encoded '%s' does not decode: %s", tr_msg_type_name(m.type),
                     err.text);
        goto out;
    }
    dec2 = 1;
    if (m2.type != m.type || m2.v != m.v || m2.present != m.present ||
        !s_check_str_eq(m2.from, m.from)) {
        s_check_fail(why, why_n, "round trip changed the envelope of '%s' (present %llx -> %llx)",
                     tr_msg_type_name(m.type), (unsigned long long)m.present,
                     (unsigned long long)m2.present);
        goto out;
    }
    const tr_msg_desc_t *d = tr_msg_desc(m.type);
    for (int fi = 0; fi < d->n_fields; fi++) {
        if ((m.present >> fi & 1) && !s_check_field_eq(&d->fields[fi], &m, &m2)) {
            s_check_fail(why, why_n, "round trip changed field '%s' of '%s'", d->fields[fi].name,
                         d->name);
            goto out;
        }
    }

    /* the second encoding must be byte-identical to the first */
    have2 = 1;
    rc = s_check_pack(&m2, &s2);
    if (rc != TR_OK || s2.size != s1.size || memcmp(s1.data, s2.data, s1.size) != 0) {
        s_check_fail(why, why_n, "encoding of '%s' is not stable (%zu then %zu bytes)",
                     tr_msg_type_name(m.type), s1.size, s2.size);
        goto out;
    }
    ret = 0;
out:
    if (dec2) tr_msg_fini(&m2);
    if (have2) msgpack_sbuffer_destroy(&s2);
    if (have1) msgpack_sbuffer_destroy(&s1);
    tr_msg_fini(&m);
    return ret;
}

#endif
