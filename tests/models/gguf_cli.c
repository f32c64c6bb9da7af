/*  tests/models/gguf_cli.c - dump of models/gguf's view of a file, as JSON, for
 *  tests/models/test_gguf_py.py to compare with gguf-py's GGUFReader.
 *
 *      gguf_cli FILE.gguf     -> {"version", "alignment", "data_offset", "kv": [...],
 *                                 "tensors": [...], "types": [[block_size, block_bytes], ...]}
 *      gguf_cli --types       -> {"types": ...} only
 *
 *  Array values are written in full (strings as JSON strings), tensors with a 64-bit FNV-1a
 *  hash of their bytes. Exit status 2 with the message on stderr when the file is refused.
 *  Single-threaded.                                                                      */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/gguf.h"
#include "runtime/status.h"

static json_t *s_types(void) {
    json_t *a = json_array();
    for (int t = 0; t < TR_GGML_TYPE_COUNT; t++) {
        json_t *p = json_array();
        json_array_append_new(p, json_integer(tr_ggml_type_block_size(t)));
        json_array_append_new(p, json_integer((json_int_t)tr_ggml_type_block_bytes(t)));
        json_array_append_new(a, p);
    }
    return a;
}

static json_t *s_scalar(const tr_gguf_kv_t *kv) {
    switch (kv->type) {
    case TR_GGUF_TYPE_UINT8:
    case TR_GGUF_TYPE_UINT16:
    case TR_GGUF_TYPE_UINT32:
    case TR_GGUF_TYPE_UINT64:
        return kv->v.u64 > (uint64_t)INT64_MAX ? json_real((double)kv->v.u64)
                                               : json_integer((json_int_t)kv->v.u64);
    case TR_GGUF_TYPE_INT8:
    case TR_GGUF_TYPE_INT16:
    case TR_GGUF_TYPE_INT32:
    case TR_GGUF_TYPE_INT64:
        return json_integer((json_int_t)kv->v.i64);
    case TR_GGUF_TYPE_FLOAT32:
    case TR_GGUF_TYPE_FLOAT64:
        return json_real(kv->v.f64);
    case TR_GGUF_TYPE_BOOL:
        return json_boolean(kv->v.b);
    case TR_GGUF_TYPE_STRING:
        return json_stringn(kv->v.str.data, (size_t)kv->v.str.len);
    default:
        return json_null();
    }
}

static json_t *s_array(const tr_gguf_kv_t *kv) {
    json_t *a = json_array();
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        if (kv->arr_type == TR_GGUF_TYPE_STRING) {
            tr_gguf_str_t s;
            tr_gguf_arr_get_str(kv, i, &s);
            json_array_append_new(a, json_stringn(s.data, (size_t)s.len));
        } else if (kv->arr_type == TR_GGUF_TYPE_FLOAT32 || kv->arr_type == TR_GGUF_TYPE_FLOAT64) {
            double d = 0;
            tr_gguf_arr_get_f64(kv, i, &d);
            json_array_append_new(a, json_real(d));
        } else if (kv->arr_type == TR_GGUF_TYPE_BOOL) {
            int64_t x = 0;
            tr_gguf_arr_get_i64(kv, i, &x);
            json_array_append_new(a, json_boolean(x));
        } else {
            int64_t x = 0;
            tr_gguf_arr_get_i64(kv, i, &x);
            json_array_append_new(a, json_integer((json_int_t)x));
        }
    }
    return a;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gguf_cli FILE.gguf | --types\n");
        return 1;
    }
    json_t *o = json_object();
    json_object_set_new(o, "types", s_types());
    if (strcmp(argv[1], "--types")) {
        char err[256];
        int rc;
        tr_gguf_t *g = tr_gguf_new(argv[1], &rc, err, sizeof err);
        if (!g) {
            fprintf(stderr, "%s (%s)\n", err, tr_strerror(rc));
            return 2;
        }
        json_object_set_new(o, "version", json_integer(tr_gguf_version(g)));
        json_object_set_new(o, "alignment", json_integer(tr_gguf_alignment(g)));
        json_object_set_new(o, "data_offset", json_integer((json_int_t)tr_gguf_data_offset(g)));
        json_t *kvs = json_array();
        for (int64_t i = 0; i < tr_gguf_n_kv(g); i++) {
            const tr_gguf_kv_t *kv = tr_gguf_kv_at(g, i);
            json_t *k = json_object();
            json_object_set_new(k, "key", json_string(kv->key));
            json_object_set_new(k, "type", json_integer(kv->type));
            if (kv->type == TR_GGUF_TYPE_ARRAY) {
                json_object_set_new(k, "arr_type", json_integer(kv->arr_type));
                json_object_set_new(k, "value", s_array(kv));
            } else {
                json_object_set_new(k, "value", s_scalar(kv));
            }
            json_array_append_new(kvs, k);
        }
        json_object_set_new(o, "kv", kvs);
        json_t *ts = json_array();
        for (int64_t i = 0; i < tr_gguf_n_tensors(g); i++) {
            const tr_gguf_tensor_t *t = tr_gguf_tensor_at(g, i);
            json_t *j = json_object(), *ne = json_array();
            for (uint32_t d = 0; d < t->n_dims; d++)
                json_array_append_new(ne, json_integer(t->ne[d]));
            uint64_t h = 1469598103934665603ull;
            for (size_t b = 0; b < t->nbytes; b++)
                h = (h ^ ((const uint8_t *)t->data)[b]) * 1099511628211ull;
            char hex[32];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
            json_object_set_new(j, "name", json_string(t->name));
            json_object_set_new(j, "type", json_integer(t->type));
            json_object_set_new(j, "ne", ne);
            json_object_set_new(j, "n_elements", json_integer(t->n_elements));
            json_object_set_new(j, "offset", json_integer((json_int_t)t->offset));
            json_object_set_new(
                j, "file_offset",
                json_integer((json_int_t)((const char *)t->data - (const char *)tr_gguf_base(g))));
            json_object_set_new(j, "nbytes", json_integer((json_int_t)t->nbytes));
            json_object_set_new(j, "hash", json_string(hex));
            json_array_append_new(ts, j);
        }
        json_object_set_new(o, "tensors", ts);
        tr_gguf_destroy(&g);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    puts(s);
    free(s);
    json_decref(o);
    return 0;
}
