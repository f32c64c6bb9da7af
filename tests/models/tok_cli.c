/*  tests/models/tok_cli.c - JSON in, JSON out driver of models/tokenizer for Python tests.
 *
 *      tok_cli TOKENIZER REQUEST.json      (TOKENIZER: dir, .json, .gguf or llama2.c .bin)
 *
 *  REQUEST: {"encode": ["text", ...], "decode": [[id, ...], ...]}
 *  stdout:  {"kind", "n_vocab", "bos", "eos", "adds_bos",
 *            "encode": [{"ids": ADD_SPECIAL|PARSE_SPECIAL, "ids_noadd": PARSE_SPECIAL,
 *                        "ids_raw": no flags}, ...],
 *            "decode": [{"text": ..., "text_skip": SKIP_SPECIAL, "stream_ok": bool,
 *                        "stream_msg": first problem}, ...]}
 *  The stream check pushes ids one at a time: every chunk must be valid UTF-8 and the
 *  chunks must add up to tr_tokenizer_decode. Exit status 2 when the tokenizer does not
 *  load (message on stderr). Single-threaded.                                           */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer.h"
#include "runtime/status.h"

static bool s_valid_utf8(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n || (len == 2 && c < 0xc2)) return false;
        for (size_t k = 1; k < len; k++)
            if ((u[i + k] & 0xc0) != 0x80) return false;
        i += len;
    }
    return true;
}

static json_t *s_ids_json(const tr_tok_ids_t *v) {
    json_t *a = json_array();
    for (size_t i = 0; i < v->n; i++)
        json_array_append_new(a, json_integer(v->ids[i]));
    return a;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: tok_cli TOKENIZER REQUEST.json\n");
        return 1;
    }
    char err[512];
    int rc;
    tr_tokenizer_t *tok = tr_tokenizer_new(argv[1], &rc, err, sizeof err);
    if (!tok) {
        fprintf(stderr, "%s (%s)\n", err, tr_strerror(rc));
        return 2;
    }
    json_error_t je;
    json_t *req = json_load_file(argv[2], JSON_ALLOW_NUL, &je);
    if (!req) {
        fprintf(stderr, "%s: %s\n", argv[2], je.text);
        return 1;
    }
    json_t *res = json_object();
    json_object_set_new(res, "kind", json_string(tr_tokenizer_kind(tok)));
    json_object_set_new(res, "n_vocab", json_integer(tr_tokenizer_n_vocab(tok)));
    json_object_set_new(res, "bos", json_integer(tr_tokenizer_bos(tok)));
    json_object_set_new(res, "eos", json_integer(tr_tokenizer_eos(tok)));
    json_object_set_new(res, "adds_bos", json_boolean(tr_tokenizer_adds_bos(tok)));
    json_t *enc = json_array(), *dec = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(req, "encode"), i, v) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        static const unsigned flags[3] = {TR_TOK_ADD_SPECIAL | TR_TOK_PARSE_SPECIAL,
                                          TR_TOK_PARSE_SPECIAL, 0};
        static const char *names[3] = {"ids", "ids_noadd", "ids_raw"};
        json_t *o = json_object();
        for (int k = 0; k < 3; k++) {
            tr_tok_ids_t ids;
            tr_tok_ids_init(&ids);
            rc = tr_tokenizer_encode(tok, s, n, flags[k], &ids);
            json_object_set_new(o, names[k], rc ? json_string(tr_strerror(rc)) : s_ids_json(&ids));
            tr_tok_ids_fini(&ids);
        }
        json_array_append_new(enc, o);
    }
    json_array_foreach(json_object_get(req, "decode"), i, v) {
        size_t n = json_array_size(v);
        int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
        for (size_t k = 0; k < n; k++)
            ids[k] = (int32_t)json_integer_value(json_array_get(v, k));
        json_t *o = json_object();
        for (int skip = 0; skip < 2; skip++) {
            tr_tok_text_t t;
            tr_tok_text_init(&t);
            rc = tr_tokenizer_decode(tok, ids, n, skip ? TR_TOK_SKIP_SPECIAL : 0, &t);
            json_object_set_new(o, skip ? "text_skip" : "text",
                                rc ? json_null() : json_stringn(t.data ? t.data : "", t.len));
            if (rc) json_object_set_new(o, "error", json_string(tr_strerror(rc)));
            if (!skip && !rc) { /* streaming check against the full decode */
                tr_tok_stream_t *st = tr_tok_stream_new(tok, 0);
                tr_tok_text_t all, chunk;
                tr_tok_text_init(&all);
                tr_tok_text_init(&chunk);
                const char *problem = NULL;
                char msg[160] = "";
                for (size_t k = 0; k <= n && !problem; k++) {
                    chunk.len = 0;
                    int r = k < n ? tr_tok_stream_push(st, ids[k], &chunk)
                                  : tr_tok_stream_flush(st, &chunk);
                    if (r)
                        problem = "stream error";
                    else if (!s_valid_utf8(chunk.data ? chunk.data : "", chunk.len)) {
                        snprintf(msg, sizeof msg, "chunk after id #%zu is not valid UTF-8", k);
                        problem = msg;
                    } else if (chunk.len) {
                        tr_tok_text_t *a = &all;
                        size_t need = a->len + chunk.len + 1;
                        if (need > a->cap) {
                            a->cap = need * 2;
                            a->data = realloc(a->data, a->cap);
                        }
                        memcpy(a->data + a->len, chunk.data, chunk.len);
                        a->len += chunk.len;
                        a->data[a->len] = 0;
                    }
                }
                if (!problem && (all.len != t.len || (t.len && memcmp(all.data, t.data, t.len))))
                    problem = "concatenated chunks differ from the full decode";
                json_object_set_new(o, "stream_ok", json_boolean(!problem));
                if (problem) json_object_set_new(o, "stream_msg", json_string(problem));
                tr_tok_text_fini(&all);
                tr_tok_text_fini(&chunk);
                tr_tok_stream_destroy(&st);
            }
            tr_tok_text_fini(&t);
        }
        free(ids);
        json_array_append_new(dec, o);
    }
    json_object_set_new(res, "encode", enc);
    json_object_set_new(res, "decode", dec);
    char *out = json_dumps(res, JSON_COMPACT);
    puts(out);
    free(out);
    json_decref(res);
    json_decref(req);
    tr_tokenizer_destroy(&tok);
    return 0;
}
