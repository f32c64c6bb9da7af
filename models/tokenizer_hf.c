/*  models/tokenizer_hf.c - HuggingFace tokenizer.json (+ tokenizer_config.json) loader.
 *
 *  Reads the file with jansson and maps each component onto the core pipeline:
 *    model        BPE (vocab, merges "a b" or ["a","b"], byte_fallback, unk_token, fuse_unk,
 *                 ignore_merges); any other model type is refused by name.
 *    normalizer   Sequence, Prepend, Replace (String pattern), Strip.
 *    pre_tokenizer Sequence, Split (Regex or String; five behaviours; invert), ByteLevel,
 *                 Digits, Metaspace, WhitespaceSplit.
 *    post_processor TemplateProcessing (single), ByteLevel (no-op), Roberta/BertProcessing,
 *                 Sequence; tokenizer_config.json add_bos_token / add_eos_token override it
 *                 for the Llama tokenizer classes, as transformers does.
 *    decoder      Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace.
 *    added_tokens special/normalized/lstrip/rstrip (single_word is refused).
 *  Anything else yields TR_EINVAL with a message naming the component.
 *  Owns nothing after return. Thread: any.                                                */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer_impl.h"
#include "runtime/log.h"
#include "runtime/status.h"

typedef struct {
    tr_tokenizer_t *tok;
    char *err;
    size_t err_size;
    const char *what; /* file name for messages */
} s_ctx_t;

#define s_FAIL(c, st, ...) tr_tok_impl_fail((c)->err, (c)->err_size, (st), __VA_ARGS__)

static bool s_bool(const json_t *obj, const char *key, bool dflt) {
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static const char *s_str(const json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static const char *s_type(const json_t *obj) {
    const char *t = s_str(obj, "type");
    return t ? t : "";
}

/* An AddedToken may be written as a string or as {"content": ...}. */
static const char *s_token_content(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return s_str(v, "content");
    return NULL;
}

/* ---- model ---- */

static int s_load_model(s_ctx_t *c, const json_t *model) {
    tr_tokenizer_t *tok = c->tok;
    if (!json_is_object(model)) return s_FAIL(c, TR_EPROTO, "%s: no \"model\" object", c->what);
    const char *type = s_str(model, "type");
    if (!type && json_object_get(model, "merges")) type = "BPE";
    if (!type || strcmp(type, "BPE"))
        return s_FAIL(c, TR_EINVAL, "%s: tokenizer model type '%s' is not supported (only BPE)",
                      c->what, type ? type : "?");
    const json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return s_FAIL(c, TR_EINVAL, "%s: BPE dropout is not supported", c->what);
    const char *csp = s_str(model, "continuing_subword_prefix");
    const char *eows = s_str(model, "end_of_word_suffix");
    if ((csp && *csp) || (eows && *eows))
        return s_FAIL(c, TR_EINVAL,
                      "%s: BPE continuing_subword_prefix/end_of_word_suffix is not "
                      "supported",
                      c->what);
    const json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab))
        return s_FAIL(c, TR_EPROTO, "%s: model.vocab is not an object", c->what);
    int64_t max_id = -1;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= (1 << 30))
            return s_FAIL(c, TR_EPROTO, "%s: vocab entry '%.40s' has no valid id", c->what, key);
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    if (tr_tok_impl_grow(tok, (int32_t)(max_id + 1))) return s_FAIL(c, TR_ENOMEM, "out of memory");
    json_object_foreach((json_t *)vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        if (tok->pieces[id].text)
            return s_FAIL(c, TR_EPROTO, "%s: vocab id %d appears twice", c->what, id);
        if (tr_tok_impl_set_piece(tok, id, key, strlen(key), 0.0f, TR_TOK_ATTR_NORMAL))
            return s_FAIL(c, TR_ENOMEM, "out of memory");
    }
    tok->byte_fallback = s_bool(model, "byte_fallback", false);
    tok->fuse_unk = s_bool(model, "fuse_unk", false);
    tok->ignore_merges = s_bool(model, "ignore_merges", false);
    const char *unk = s_str(model, "unk_token");
    if (unk) {
        const json_t *u = json_object_get(vocab, unk);
        if (!json_is_integer(u))
            return s_FAIL(c, TR_EPROTO, "%s: unk_token '%s' is not in the vocab", c->what, unk);
        tok->unk = (int32_t)json_integer_value(u);
        tok->pieces[tok->unk].attr = TR_TOK_ATTR_UNKNOWN;
    }
    return tr_tok_impl_build_vocab_map(tok) ? s_FAIL(c, TR_ENOMEM, "out of memory") : TR_OK;
}

static int s_load_merges(s_ctx_t *c, const json_t *model) {
    tr_tokenizer_t *tok = c->tok;
    const json_t *merges = json_object_get(model, "merges");
    if (!merges || json_is_null(merges)) return TR_OK;
    if (!json_is_array(merges))
        return s_FAIL(c, TR_EPROTO, "%s: model.merges is not an array", c->what);
    size_t n = json_array_size(merges);
    if (tr_tok_impl_reserve_merges(tok, n)) return s_FAIL(c, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *a, *b;
        size_t la, lb;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s + (s[0] ? 1 : 0), ' ');
            if (!sp)
                return s_FAIL(c, TR_EPROTO, "%s: merge %zu '%.40s' has no space", c->what, i, s);
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            la = json_string_length(json_array_get(m, 0));
            lb = json_string_length(json_array_get(m, 1));
        } else {
            return s_FAIL(c, TR_EPROTO, "%s: merge %zu is neither \"a b\" nor [a, b]", c->what, i);
        }
        int32_t ia = tr_tok_impl_lookup(tok, a, la), ib = tr_tok_impl_lookup(tok, b, lb);
        int rc = ia < 0 || ib < 0 ? TR_ENOENT : tr_tok_impl_add_merge(tok, ia, ib, (int32_t)i);
        if (rc == TR_ENOENT)
            return s_FAIL(c, TR_EPROTO,
                          "%s: merge %zu '%.*s' + '%.*s' uses a token that is not in "
                          "the vocab",
                          c->what, i, (int)la, a, (int)lb, b);
        if (rc) return s_FAIL(c, rc, "out of memory");
    }
    return TR_OK;
}

/* ---- normalizer ---- */

static int s_load_normalizer(s_ctx_t *c, const json_t *n) {
    if (!n || json_is_null(n)) return TR_OK;
    const char *t = s_type(n);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(n, "normalizers");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v) {
            int rc = s_load_normalizer(c, v);
            if (rc) return rc;
        }
        return TR_OK;
    }
    if (!strcmp(t, "Prepend")) {
        const char *p = s_str(n, "prepend");
        if (!p) return s_FAIL(c, TR_EPROTO, "%s: Prepend normalizer without 'prepend'", c->what);
        return tr_tok_impl_add_norm(c->tok, TR_TOK_NORM_PREPEND, p, strlen(p), NULL, 0)
                   ? s_FAIL(c, TR_ENOMEM, "out of memory")
                   : TR_OK;
    }
    if (!strcmp(t, "Replace")) {
        const json_t *pat = json_object_get(n, "pattern");
        const char *s = s_str(pat, "String"), *content = s_str(n, "content");
        if (!s || !content)
            return s_FAIL(c, TR_EINVAL,
                          "%s: Replace normalizer with a Regex pattern is not "
                          "supported (String only)",
                          c->what);
        return tr_tok_impl_add_norm(c->tok, TR_TOK_NORM_REPLACE, s, strlen(s), content,
                                    strlen(content))
                   ? s_FAIL(c, TR_ENOMEM, "out of memory")
                   : TR_OK;
    }
    static const struct {
        const char *name;
        tr_tok_norm_kind_t kind;
    } forms[] = {{"NFC", TR_TOK_NORM_NFC},
                 {"NFD", TR_TOK_NORM_NFD},
                 {"NFKC", TR_TOK_NORM_NFKC},
                 {"NFKD", TR_TOK_NORM_NFKD}};
    for (size_t i = 0; i < TR_ARRAY_LEN(forms); i++)
        if (!strcmp(t, forms[i].name))
            return tr_tok_impl_add_norm(c->tok, forms[i].kind, NULL, 0, NULL, 0)
                       ? s_FAIL(c, TR_ENOMEM, "out of memory")
                       : TR_OK;
    if (!strcmp(t, "Strip")) {
        if (tr_tok_impl_add_norm(c->tok, TR_TOK_NORM_STRIP, NULL, 0, NULL, 0))
            return s_FAIL(c, TR_ENOMEM, "out of memory");
        tr_tok_norm_t *st = &c->tok->norm[c->tok->n_norm - 1];
        st->left = s_bool(n, "strip_left", true);
        st->right = s_bool(n, "strip_right", true);
        return TR_OK;
    }
    return s_FAIL(c, TR_EINVAL,
                  "%s: normalizer '%s' is not supported (Sequence, Prepend, "
                  "Replace, Strip, NFC, NFD, NFKC, NFKD)",
                  c->what, t);
}

/* ---- pre-tokenizer ---- */

static const char s_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int s_behavior(s_ctx_t *c, const char *b, tr_tok_split_behavior_t *out) {
    static const struct {
        const char *name;
        tr_tok_split_behavior_t b;
    } names[] = {
        {"Removed", TR_TOK_SPLIT_REMOVED},
        {"Isolated", TR_TOK_SPLIT_ISOLATED},
        {"MergedWithPrevious", TR_TOK_SPLIT_MERGED_WITH_PREVIOUS},
        {"MergedWithNext", TR_TOK_SPLIT_MERGED_WITH_NEXT},
        {"Contiguous", TR_TOK_SPLIT_CONTIGUOUS},
    };
    for (size_t i = 0; b && i < TR_ARRAY_LEN(names); i++)
        if (!strcmp(b, names[i].name)) {
            *out = names[i].b;
            return TR_OK;
        }
    return s_FAIL(c, TR_EINVAL, "%s: Split behavior '%s' is not supported", c->what, b ? b : "?");
}

static int s_prepend_scheme(const json_t *p, tr_tok_prepend_t *out) {
    const char *scheme = s_str(p, "prepend_scheme");
    if (scheme) {
        if (!strcmp(scheme, "always"))
            *out = TR_TOK_PREPEND_ALWAYS;
        else if (!strcmp(scheme, "first"))
            *out = TR_TOK_PREPEND_FIRST;
        else if (!strcmp(scheme, "never"))
            *out = TR_TOK_PREPEND_NEVER;
        else
            return TR_EINVAL;
        return TR_OK;
    }
    *out = s_bool(p, "add_prefix_space", true) ? TR_TOK_PREPEND_ALWAYS : TR_TOK_PREPEND_NEVER;
    return TR_OK;
}

static int s_load_pre(s_ctx_t *c, const json_t *p) {
    if (!p || json_is_null(p)) return TR_OK;
    tr_tokenizer_t *tok = c->tok;
    const char *t = s_type(p);
    if (tok->bytelevel)
        return s_FAIL(c, TR_EINVAL, "%s: pre-tokenizer '%s' after ByteLevel is not supported",
                      c->what, t);
    tr_tok_pre_t st;
    memset(&st, 0, sizeof st);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(p, "pretokenizers");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v) {
            int rc = s_load_pre(c, v);
            if (rc) return rc;
        }
        return TR_OK;
    }
    if (!strcmp(t, "Split")) {
        const json_t *pat = json_object_get(p, "pattern");
        const char *re = s_str(pat, "Regex"), *lit = s_str(pat, "String");
        st.kind = TR_TOK_PRE_SPLIT;
        int rc = s_behavior(c, s_str(p, "behavior"), &st.behavior);
        if (rc) return rc;
        st.invert = s_bool(p, "invert", false);
        if (lit) {
            st.literal = tr_tok_impl_strdup(tok, lit, strlen(lit));
            st.literal_len = (uint32_t)strlen(lit);
            if (!st.literal_len)
                return s_FAIL(c, TR_EINVAL, "%s: Split with an empty String pattern", c->what);
        } else if (!re) {
            return s_FAIL(c, TR_EPROTO, "%s: Split without a Regex or String pattern", c->what);
        }
        return tr_tok_impl_add_pre(tok, &st, lit ? NULL : re, c->err, c->err_size);
    }
    if (!strcmp(t, "ByteLevel")) {
        st.kind = TR_TOK_PRE_BYTELEVEL;
        st.add_prefix_space = s_bool(p, "add_prefix_space", true);
        int rc = tr_tok_impl_add_pre(tok, &st, s_bool(p, "use_regex", true) ? s_gpt2_regex : NULL,
                                     c->err, c->err_size);
        tok->bytelevel = true;
        return rc;
    }
    if (!strcmp(t, "Digits")) {
        st.kind = TR_TOK_PRE_SPLIT;
        st.behavior = TR_TOK_SPLIT_ISOLATED; /* HF: Contiguous over single digits == \p{N}+ */
        return tr_tok_impl_add_pre(tok, &st,
                                   s_bool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+",
                                   c->err, c->err_size);
    }
    if (!strcmp(t, "WhitespaceSplit")) {
        st.kind = TR_TOK_PRE_SPLIT;
        st.behavior = TR_TOK_SPLIT_REMOVED;
        return tr_tok_impl_add_pre(tok, &st, "\\s+", c->err, c->err_size);
    }
    if (!strcmp(t, "Metaspace")) {
        st.kind = TR_TOK_PRE_METASPACE;
        const char *r = s_str(p, "replacement");
        if (!r || !*r || strlen(r) > 4)
            return s_FAIL(c, TR_EPROTO, "%s: Metaspace without a one-character replacement",
                          c->what);
        memcpy(st.replacement, r, strlen(r));
        st.replacement_len = (uint32_t)strlen(r);
        if (s_prepend_scheme(p, &st.prepend))
            return s_FAIL(c, TR_EINVAL, "%s: Metaspace prepend_scheme '%s' is not supported",
                          c->what, s_str(p, "prepend_scheme"));
        st.split = s_bool(p, "split", true);
        return tr_tok_impl_add_pre(tok, &st, NULL, c->err, c->err_size);
    }
    return s_FAIL(c, TR_EINVAL,
                  "%s: pre-tokenizer '%s' is not supported (Sequence, Split, "
                  "ByteLevel, Digits, Metaspace, WhitespaceSplit)",
                  c->what, t);
}

/* ---- post-processor ---- */

static int s_push_special(s_ctx_t *c, bool prefix, int32_t id) {
    tr_tokenizer_t *tok = c->tok;
    int *n = prefix ? &tok->n_prefix : &tok->n_suffix;
    int32_t *v = prefix ? tok->prefix_ids : tok->suffix_ids;
    if (*n >= 4)
        return s_FAIL(c, TR_EINVAL, "%s: more than 4 special tokens around the text", c->what);
    if (id < 0 || id >= tok->n_vocab)
        return s_FAIL(c, TR_EPROTO, "%s: post-processor token id %d out of range", c->what, id);
    v[(*n)++] = id;
    return TR_OK;
}

static int s_load_post(s_ctx_t *c, const json_t *p) {
    if (!p || json_is_null(p)) return TR_OK;
    const char *t = s_type(p);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(p, "processors");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v) {
            int rc = s_load_post(c, v);
            if (rc) return rc;
        }
        return TR_OK;
    }
    if (!strcmp(t, "ByteLevel")) return TR_OK; /* offsets only */
    if (!strcmp(t, "TemplateProcessing")) {
        const json_t *single = json_object_get(p, "single"),
                     *specials = json_object_get(p, "special_tokens");
        bool seen_a = false;
        size_t i;
        const json_t *item;
        json_array_foreach(single, i, item) {
            const json_t *sp = json_object_get(item, "SpecialToken");
            const json_t *seq = json_object_get(item, "Sequence");
            if (seq) {
                if (seen_a)
                    return s_FAIL(c, TR_EINVAL,
                                  "%s: TemplateProcessing with two sequences in "
                                  "'single'",
                                  c->what);
                seen_a = true;
                continue;
            }
            const char *name = s_str(sp, "id");
            const json_t *def = json_object_get(specials, name ? name : "");
            const json_t *ids = json_object_get(def, "ids");
            if (!name || !json_is_array(ids))
                return s_FAIL(c, TR_EPROTO, "%s: TemplateProcessing special token '%s' has no ids",
                              c->what, name ? name : "?");
            size_t k;
            const json_t *idv;
            json_array_foreach(ids, k, idv) {
                int rc = s_push_special(c, !seen_a, (int32_t)json_integer_value(idv));
                if (rc) return rc;
            }
        }
        return TR_OK;
    }
    if (!strcmp(t, "RobertaProcessing") || !strcmp(t, "BertProcessing")) {
        const json_t *cls = json_object_get(p, "cls"), *sep = json_object_get(p, "sep");
        int rc = s_push_special(c, true, (int32_t)json_integer_value(json_array_get(cls, 1)));
        if (!rc) rc = s_push_special(c, false, (int32_t)json_integer_value(json_array_get(sep, 1)));
        return rc;
    }
    return s_FAIL(c, TR_EINVAL, "%s: post-processor '%s' is not supported", c->what, t);
}

/* ---- decoder ---- */

typedef struct {
    bool saw_byte_fallback, saw_fuse, saw_other;
} s_dec_state_t;

static int s_load_decoder(s_ctx_t *c, const json_t *d, s_dec_state_t *ds) {
    tr_tok_decoder_t *dec = &c->tok->dec;
    const char *t = s_type(d);
    if (!strcmp(t, "Sequence")) {
        const json_t *list = json_object_get(d, "decoders");
        size_t i;
        const json_t *v;
        json_array_foreach(list, i, v) {
            int rc = s_load_decoder(c, v, ds);
            if (rc) return rc;
        }
        return TR_OK;
    }
    if (!strcmp(t, "Replace")) {
        const char *from = s_str(json_object_get(d, "pattern"), "String"),
                   *to = s_str(d, "content");
        if (!from || !to)
            return s_FAIL(c, TR_EINVAL, "%s: Replace decoder with a Regex pattern is not supported",
                          c->what);
        if (dec->n_replace == 4 || ds->saw_byte_fallback || ds->saw_fuse)
            return s_FAIL(c, TR_EINVAL,
                          "%s: Replace decoder after ByteFallback/Fuse (or more than "
                          "4) is not supported",
                          c->what);
        int r = dec->n_replace++;
        dec->rep_from[r] = tr_tok_impl_strdup(c->tok, from, strlen(from));
        dec->rep_to[r] = tr_tok_impl_strdup(c->tok, to, strlen(to));
        dec->rep_from_len[r] = (uint32_t)strlen(from);
        dec->rep_to_len[r] = (uint32_t)strlen(to);
        return dec->rep_from[r] && dec->rep_to[r] ? TR_OK : s_FAIL(c, TR_ENOMEM, "out of memory");
    }
    if (!strcmp(t, "ByteFallback")) {
        dec->byte_fallback = true;
        ds->saw_byte_fallback = true;
        return TR_OK;
    }
    if (!strcmp(t, "Fuse")) { /* concatenation is implicit; it only matters for Strip */
        ds->saw_fuse = true;
        return TR_OK;
    }
    if (!strcmp(t, "Strip")) {
        const char *content = s_str(d, "content");
        uint32_t cp = ' ';
        if (content && *content) tr_tok_impl_utf8_get(content, strlen(content), &cp);
        dec->strip_char = cp;
        dec->strip_start = (uint32_t)json_integer_value(json_object_get(d, "start"));
        dec->strip_stop = (uint32_t)json_integer_value(json_object_get(d, "stop"));
        if (ds->saw_fuse && dec->strip_stop)
            return s_FAIL(c, TR_EINVAL,
                          "%s: Strip decoder with stop > 0 after Fuse is not "
                          "supported (it needs the end of the text)",
                          c->what);
        dec->strip_whole = ds->saw_fuse; /* else per token */
        return TR_OK;
    }
    if (!strcmp(t, "ByteLevel")) {
        dec->bytelevel = true;
        return TR_OK;
    }
    if (!strcmp(t, "Metaspace")) {
        const char *r = s_str(d, "replacement");
        if (!r || !*r)
            return s_FAIL(c, TR_EPROTO, "%s: Metaspace decoder without replacement", c->what);
        dec->metaspace = true;
        tr_tok_impl_utf8_get(r, strlen(r), &dec->metaspace_char);
        tr_tok_prepend_t pp;
        if (s_prepend_scheme(d, &pp))
            return s_FAIL(c, TR_EINVAL, "%s: Metaspace decoder prepend_scheme is not supported",
                          c->what);
        dec->metaspace_strip_first = pp != TR_TOK_PREPEND_NEVER;
        return TR_OK;
    }
    ds->saw_other = true;
    return s_FAIL(c, TR_EINVAL,
                  "%s: decoder '%s' is not supported (Sequence, Replace, ByteFallback, "
                  "Fuse, Strip, ByteLevel, Metaspace)",
                  c->what, t);
}

/* ---- added tokens ---- */

static int s_load_added(s_ctx_t *c, const json_t *added) {
    tr_tokenizer_t *tok = c->tok;
    if (!added || json_is_null(added)) return TR_OK;
    if (!json_is_array(added))
        return s_FAIL(c, TR_EPROTO, "%s: added_tokens is not an array", c->what);
    size_t i;
    const json_t *a;
    /* First every id exists (some added ids are past the model vocab). */
    json_array_foreach(added, i, a) {
        const json_t *idv = json_object_get(a, "id");
        const char *content = s_str(a, "content");
        if (!json_is_integer(idv) || !content || json_integer_value(idv) < 0 ||
            json_integer_value(idv) >= (1 << 30))
            return s_FAIL(c, TR_EPROTO, "%s: added token %zu has no id or content", c->what, i);
        int32_t id = (int32_t)json_integer_value(idv);
        if (id >= tok->n_vocab || !tok->pieces[id].text) {
            if (tr_tok_impl_set_piece(tok, id, content, strlen(content), 0, TR_TOK_ATTR_NORMAL))
                return s_FAIL(c, TR_ENOMEM, "out of memory");
        }
    }
    if (tr_tok_impl_build_vocab_map(tok)) return s_FAIL(c, TR_ENOMEM, "out of memory");
    json_array_foreach(added, i, a) {
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        const char *content = s_str(a, "content");
        bool special = s_bool(a, "special", false);
        bool normalized = s_bool(a, "normalized", !special);
        if (s_bool(a, "single_word", false))
            return s_FAIL(c, TR_EINVAL,
                          "%s: added token '%.40s' has single_word=true, which is not "
                          "supported",
                          c->what, content);
        tr_tok_piece_t *p = &tok->pieces[id];
        p->special = special;
        p->attr = id == tok->unk ? TR_TOK_ATTR_UNKNOWN
                  : special      ? TR_TOK_ATTR_CONTROL
                                 : TR_TOK_ATTR_USER_DEFINED;
        /* A normalized token is matched in normalized text: normalize its content. */
        const char *pat = content;
        size_t pat_len = strlen(content);
        char *owned = NULL;
        if (normalized && tok->n_norm) {
            if (tr_tok_impl_normalize(tok, content, pat_len, &owned, &pat_len))
                return s_FAIL(c, TR_ENOMEM, "out of memory");
            pat = owned;
        }
        int rc = tr_tok_impl_add_token(tok, id, pat, pat_len, special, s_bool(a, "lstrip", false),
                                       s_bool(a, "rstrip", false), normalized && tok->n_norm);
        free(owned);
        if (rc) return s_FAIL(c, TR_ENOMEM, "out of memory");
    }
    return TR_OK;
}

/* ---- tokenizer_config.json ---- */

static int32_t s_config_id(s_ctx_t *c, const json_t *cfg, const char *key) {
    const char *content = s_token_content(json_object_get(cfg, key));
    return content ? tr_tok_impl_lookup(c->tok, content, strlen(content)) : -1;
}

static int s_apply_config(s_ctx_t *c, const json_t *cfg) {
    tr_tokenizer_t *tok = c->tok;
    int32_t id;
    if ((id = s_config_id(c, cfg, "bos_token")) >= 0) tok->bos = id;
    if ((id = s_config_id(c, cfg, "eos_token")) >= 0) tok->eos = id;
    if ((id = s_config_id(c, cfg, "pad_token")) >= 0) tok->pad = id;
    if ((id = s_config_id(c, cfg, "unk_token")) >= 0 && tok->unk < 0) tok->unk = id;
    const char *cls = s_str(cfg, "tokenizer_class");
    bool llama_like =
        cls && (!strncmp(cls, "LlamaTokenizer", 14) || !strncmp(cls, "CodeLlamaTokenizer", 18) ||
                !strncmp(cls, "GemmaTokenizer", 14));
    const json_t *ab = json_object_get(cfg, "add_bos_token"),
                 *ae = json_object_get(cfg, "add_eos_token");
    if (llama_like) {
        /* transformers' LlamaTokenizerFast.update_post_processor(): bos? $A eos? */
        bool add_bos = json_is_boolean(ab) ? json_is_true(ab) : true;
        bool add_eos = json_is_boolean(ae) ? json_is_true(ae) : false;
        tok->n_prefix = tok->n_suffix = 0;
        if (add_bos) {
            if (tok->bos < 0)
                return s_FAIL(c, TR_EPROTO, "%s: add_bos_token without a bos_token", c->what);
            tok->prefix_ids[tok->n_prefix++] = tok->bos;
        }
        if (add_eos) {
            if (tok->eos < 0)
                return s_FAIL(c, TR_EPROTO, "%s: add_eos_token without an eos_token", c->what);
            tok->suffix_ids[tok->n_suffix++] = tok->eos;
        }
    }
    const json_t *aps = json_object_get(cfg, "add_prefix_space");
    if (json_is_boolean(aps))
        for (int k = 0; k < tok->n_pre; k++)
            if (tok->pre[k].kind == TR_TOK_PRE_BYTELEVEL)
                tok->pre[k].add_prefix_space = json_is_true(aps);
    if (json_is_true(json_object_get(cfg, "clean_up_tokenization_spaces")))
        TR_WARN("%s: clean_up_tokenization_spaces=true is a transformers decode post-processing "
                "step that troupe does not apply",
                c->what);
    return TR_OK;
}

/* ---- entry points ---- */

static char *s_slurp(const char *path, size_t *len, int *status, char *err, size_t err_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (status) *status = e == ENOENT ? TR_ENOENT : TR_EIO;
        tr_tok_impl_fail(err, err_size, 0, "%s: %s", path, strerror(e));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                if (status) *status = TR_ENOMEM;
                tr_tok_impl_fail(err, err_size, 0, "%s: out of memory", path);
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r < 65536) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        if (status) *status = TR_EIO;
        tr_tok_impl_fail(err, err_size, 0, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static tr_tokenizer_t *s_load(const char *what, const char *json, size_t len, const char *cfg_text,
                              size_t cfg_len, int *status, char *err, size_t err_size) {
    s_ctx_t c = {.err = err, .err_size = err_size, .what = what};
    int rc = TR_ENOMEM;
    json_t *root = NULL, *cfg = NULL;
    json_error_t je;
    c.tok = tr_tok_impl_alloc(0);
    if (!c.tok) {
        s_FAIL(&c, rc, "out of memory");
        goto fail;
    }
    root = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    if (!root) {
        rc = s_FAIL(&c, TR_EPROTO, "%s: not valid JSON: %s (line %d, column %d)", what, je.text,
                    je.line, je.column);
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = s_FAIL(&c, TR_EPROTO, "%s: the top level is not a JSON object", what);
        goto fail;
    }
    if (cfg_text) {
        cfg = json_loadb(cfg_text, cfg_len, JSON_DECODE_INT_AS_REAL, &je);
        if (!cfg || !json_is_object(cfg)) {
            rc = s_FAIL(&c, TR_EPROTO,
                        "tokenizer_config.json: not a valid JSON object: %s (line %d)",
                        cfg ? "" : je.text, cfg ? 0 : je.line);
            goto fail;
        }
    }
    const json_t *model = json_object_get(root, "model");
    if ((rc = s_load_model(&c, model))) goto fail;
    if ((rc = s_load_normalizer(&c, json_object_get(root, "normalizer")))) goto fail;
    if ((rc = s_load_pre(&c, json_object_get(root, "pre_tokenizer")))) goto fail;
    if ((rc = s_load_added(&c, json_object_get(root, "added_tokens")))) goto fail;
    if ((rc = s_load_merges(&c, model))) goto fail;
    if ((rc = s_load_post(&c, json_object_get(root, "post_processor")))) goto fail;
    const json_t *dec = json_object_get(root, "decoder");
    if (!dec || json_is_null(dec)) {
        c.tok->dec.join_space = true;
    } else {
        s_dec_state_t ds = {0};
        if ((rc = s_load_decoder(&c, dec, &ds))) goto fail;
        if (c.tok->dec.bytelevel &&
            (c.tok->dec.byte_fallback || c.tok->dec.metaspace || c.tok->dec.n_replace)) {
            rc = s_FAIL(&c, TR_EINVAL,
                        "%s: ByteLevel decoder combined with other decoders is not "
                        "supported",
                        what);
            goto fail;
        }
    }
    c.tok->engine = TR_TOK_ENGINE_BPE_RANK;
    if (c.tok->n_prefix == 1) c.tok->bos = c.tok->prefix_ids[0];
    if (cfg && (rc = s_apply_config(&c, cfg))) goto fail;
    snprintf(c.tok->kind, sizeof c.tok->kind, "hf/bpe-%s", c.tok->bytelevel ? "bytelevel" : "spm");
    if ((rc = tr_tok_impl_finish(c.tok, err, err_size))) goto fail;
    json_decref(root);
    json_decref(cfg);
    if (status) *status = TR_OK;
    return c.tok;
fail:
    json_decref(root);
    json_decref(cfg);
    tr_tokenizer_destroy(&c.tok);
    if (status) *status = rc;
    return NULL;
}

tr_tokenizer_t *tr_tokenizer_new_hf_from_string(const char *json, size_t len,
                                                const char *config_json, int *status, char *err,
                                                size_t err_size) {
    return s_load("tokenizer.json", json, len, config_json, config_json ? strlen(config_json) : 0,
                  status, err, err_size);
}

tr_tokenizer_t *tr_tokenizer_new_hf(const char *json_path, const char *config_path, int *status,
                                    char *err, size_t err_size) {
    size_t len = 0, cfg_len = 0;
    char *json = s_slurp(json_path, &len, status, err, err_size);
    if (!json) return NULL;
    char *cfg = NULL;
    if (config_path && !(cfg = s_slurp(config_path, &cfg_len, status, err, err_size))) {
        free(json);
        return NULL;
    }
    tr_tokenizer_t *t = s_load(json_path, json, len, cfg, cfg_len, status, err, err_size);
    free(json);
    free(cfg);
    return t;
}
