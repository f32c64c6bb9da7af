/*  cli/msgpack_json.c - msgpack objects as jansson values, for printing replies. */
#include "cli/cli.h"

#include <stdio.h>

#include "transport/msg.h"

json_t *tr_cli_json_from_msgpack(const msgpack_object *o) {
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: /* msgpack-c may leave ptr NULL for "" */
        return json_stringn(o->via.str.ptr ? o->via.str.ptr : "", o->via.str.size);
    case MSGPACK_OBJECT_BIN: return json_sprintf("<%u bytes>", o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            json_array_append_new(a, tr_cli_json_from_msgpack(&o->via.array.ptr[i]));
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[256];
            if (k->type == MSGPACK_OBJECT_STR)
                tr_str_copy((tr_str_t){k->via.str.ptr, k->via.str.size}, key, sizeof key);
            else
                snprintf(key, sizeof key, "?");
            json_object_set_new(m, key, tr_cli_json_from_msgpack(&o->via.map.ptr[i].val));
        }
        return m;
    }
    default: return json_null();
    }
}
