/*  models/tokenizer_gguf.c - tokenizer from GGUF tokenizer.ggml.* metadata (llama.cpp rules).
 *
 *  tokenizer.ggml.model
 *    "llama"  SentencePiece: tokens + scores + token_type; greedy pair merges by score
 *             (llm_tokenizer_spm); a space is prepended to every text fragment that starts
 *             the text or follows a special token (add_space_prefix), ' ' -> ▁, unknown
 *             characters become <0xNN> tokens.
 *    "gpt2"   byte-level BPE: tokens + merges, the regex list chosen by tokenizer.ggml.pre.
 *  Tokens of type CONTROL/UNKNOWN are matched in text with TR_TOK_PARSE_SPECIAL and
 *  USER_DEFINED ones always (llama.cpp tokenizer_st_partition), longest first at each
 *  position; their text is written raw on decode. BOS/EOS and add_bos/add_eos come from the
 *  metadata with llama.cpp's defaults per model type.
 *  Owns nothing after return; copies what it needs from the GGUF. Thread: any.            */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer_impl.h"
#include "runtime/log.h"
#include "runtime/status.h"

/* ---- pre-tokenizer regexes by tokenizer.ggml.pre (llama.cpp llama-vocab.cpp; the HF
 * originals where llama.cpp rewrote them for its own regex engine) ---- */

static const char *const s_re_gpt2[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", NULL};
static const char *const s_re_llama3[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const s_re_qwen2[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const s_re_deepseek_llm[] = {
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-"
    "ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-"
    "ὗὙὛὝὟ-\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌῐ-\\x{1FD3}ῖ-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{"
    "212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-"
    "ﬆﬓ-"
    "ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
    NULL};
static const char *const s_re_deepseek_coder[] = {
    "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}", NULL};
static const char *const s_re_starcoder[] = {
    "\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const s_re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "\\p{N}+",
    "[0-9][0-9][0-9]", NULL};

static const struct {
    const char *name;
    const char *const *re;
    bool ignore_merges, add_bos;
} s_pre_types[] = {
    {"default", s_re_default, false, false},
    {"gpt-2", s_re_gpt2, false, false},
    {"gpt2", s_re_gpt2, false, false},
    {"mpt", s_re_gpt2, false, false},
    {"olmo", s_re_gpt2, false, false},
    {"jais", s_re_gpt2, false, false},
    {"llama-bpe", s_re_llama3, true, true},
    {"llama3", s_re_llama3, true, true},
    {"llama-v3", s_re_llama3, true, true},
    {"dbrx", s_re_llama3, false, false},
    {"smaug-bpe", s_re_llama3, false, false},
    {"qwen2", s_re_qwen2, false, false},
    {"deepseek-llm", s_re_deepseek_llm, false, false},
    {"deepseek-coder", s_re_deepseek_coder, false, false},
    {"starcoder", s_re_starcoder, false, false},
    {"refact", s_re_starcoder, false, false},
    {"command-r", s_re_starcoder, false, false},
    {"smollm", s_re_starcoder, false, false},
};

typedef struct {
    tr_tokenizer_t *tok;
    char *err;
    size_t err_size;
} s_ctx_t;

#define s_FAIL(c, st, ...) tr_tok_impl_fail((c)->err, (c)->err_size, (st), __VA_ARGS__)

static int32_t s_id_key(const tr_gguf_t *g, const char *key, int32_t dflt, int32_t n_vocab) {
    uint32_t v;
    if (tr_gguf_get_u32(g, key, &v) != TR_OK) return dflt;
    return v < (uint32_t)n_vocab ? (int32_t)v : -1;
}

static bool s_bool_key(const tr_gguf_t *g, const char *key, bool dflt) {
    bool b;
    return tr_gguf_get_bool(g, key, &b) == TR_OK ? b : dflt;
}

/* Pieces, attributes, scores. */
static int s_load_vocab(s_ctx_t *c, const tr_gguf_t *g, bool need_scores) {
    tr_tokenizer_t *tok = c->tok;
    const tr_gguf_kv_t *toks = NULL, *scores = NULL, *types = NULL;
    if (tr_gguf_get_arr(g, "tokenizer.ggml.tokens", TR_GGUF_TYPE_STRING, &toks))
        return s_FAIL(c, TR_EPROTO, "GGUF: tokenizer.ggml.tokens missing or not a string array");
    if (toks->arr_n == 0 || toks->arr_n > (1u << 30))
        return s_FAIL(c, TR_EPROTO, "GGUF: %llu tokens", (unsigned long long)toks->arr_n);
    int32_t n = (int32_t)toks->arr_n;
    if (tr_gguf_get_arr(g, "tokenizer.ggml.scores", -1, &scores) == TR_OK &&
        scores->arr_n != toks->arr_n)
        return s_FAIL(c, TR_EPROTO, "GGUF: %llu scores for %d tokens",
                      (unsigned long long)scores->arr_n, n);
    if (need_scores && !scores)
        return s_FAIL(c, TR_EPROTO, "GGUF: a SentencePiece vocab needs tokenizer.ggml.scores");
    if (tr_gguf_get_arr(g, "tokenizer.ggml.token_type", -1, &types) == TR_OK &&
        types->arr_n != toks->arr_n)
        return s_FAIL(c, TR_EPROTO, "GGUF: %llu token types for %d tokens",
                      (unsigned long long)types->arr_n, n);
    if (tr_tok_impl_grow(tok, n)) return s_FAIL(c, TR_ENOMEM, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        tr_gguf_str_t s = toks->arr_str[i];
        double score = 0;
        int64_t type = 1;
        if (scores && tr_gguf_arr_get_f64(scores, (uint64_t)i, &score))
            return s_FAIL(c, TR_EPROTO, "GGUF: tokenizer.ggml.scores is not numeric");
        if (types && tr_gguf_arr_get_i64(types, (uint64_t)i, &type))
            return s_FAIL(c, TR_EPROTO, "GGUF: tokenizer.ggml.token_type is not an integer array");
        unsigned attr;
        switch (type) {
        case 2:
            attr = TR_TOK_ATTR_UNKNOWN;
            break;
        case 3:
            attr = TR_TOK_ATTR_CONTROL;
            break;
        case 4:
            attr = TR_TOK_ATTR_USER_DEFINED;
            break;
        case 5:
            attr = TR_TOK_ATTR_UNUSED;
            break;
        case 6:
            attr = TR_TOK_ATTR_BYTE;
            break;
        default:
            attr = TR_TOK_ATTR_NORMAL;
            break;
        }
        if (tr_tok_impl_set_piece(tok, i, s.data, (size_t)s.len, (float)score, attr))
            return s_FAIL(c, TR_ENOMEM, "out of memory");
        tok->pieces[i].special = (attr & (TR_TOK_ATTR_CONTROL | TR_TOK_ATTR_UNKNOWN)) != 0;
    }
    tok->map_last_wins = true; /* llama.cpp: token_to_id[text] = id in order */
    return tr_tok_impl_build_vocab_map(tok) ? s_FAIL(c, TR_ENOMEM, "out of memory") : TR_OK;
}

/* Control, unknown and user-defined tokens are matched in the text (tokenizer_st_partition). */
static int s_add_special_tokens(s_ctx_t *c, const tr_gguf_t *g) {
    tr_tokenizer_t *tok = c->tok;
    char name[64] = "";
    tr_gguf_str_t gn;
    if (tr_gguf_get_str(g, "general.name", &gn) == TR_OK) tr_gguf_str_copy(gn, name, sizeof name);
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    bool phi3 = strstr(name, "phi-3") || strstr(name, "phi3");
    for (int32_t i = 0; i < tok->n_vocab; i++) {
        const tr_tok_piece_t *p = &tok->pieces[i];
        unsigned a = p->attr;
        if (!(a & (TR_TOK_ATTR_CONTROL | TR_TOK_ATTR_USER_DEFINED | TR_TOK_ATTR_UNKNOWN))) continue;
        bool rstrip = false;
        if (phi3) { /* llama.cpp sets these attributes by model name */
            rstrip = true;
            if (!strcmp(p->text, "<unk>") || !strcmp(p->text, "<s>") ||
                !strcmp(p->text, "<|endoftext|>"))
                rstrip = false;
        }
        if (tr_tok_impl_add_token(tok, i, p->text, p->len, !(a & TR_TOK_ATTR_USER_DEFINED), false,
                                  rstrip, false))
            return s_FAIL(c, TR_ENOMEM, "out of memory");
    }
    tok->added_ascii_strip = true;
    return TR_OK;
}

static int s_load_merges(s_ctx_t *c, const tr_gguf_t *g) {
    tr_tokenizer_t *tok = c->tok;
    const tr_gguf_kv_t *m = NULL;
    if (tr_gguf_get_arr(g, "tokenizer.ggml.merges", TR_GGUF_TYPE_STRING, &m))
        return s_FAIL(c, TR_EPROTO, "GGUF: a gpt2 vocab needs tokenizer.ggml.merges");
    if (tr_tok_impl_reserve_merges(tok, (size_t)m->arr_n))
        return s_FAIL(c, TR_ENOMEM, "out of memory");
    for (uint64_t i = 0; i < m->arr_n; i++) {
        tr_gguf_str_t s = m->arr_str[i];
        const char *sp = s.len > 1 ? memchr(s.data + 1, ' ', (size_t)s.len - 1) : NULL;
        if (!sp)
            return s_FAIL(c, TR_EPROTO, "GGUF: merge %llu has no space", (unsigned long long)i);
        size_t la = (size_t)(sp - s.data), lb = (size_t)s.len - la - 1;
        int32_t a = tr_tok_impl_lookup(tok, s.data, la), b = tr_tok_impl_lookup(tok, sp + 1, lb);
        int rc = a < 0 || b < 0 ? TR_ENOENT : tr_tok_impl_add_merge(tok, a, b, (int32_t)i);
        if (rc == TR_ENOENT)
            return s_FAIL(c, TR_EPROTO, "GGUF: merge %llu '%.*s' uses a token not in the vocab",
                          (unsigned long long)i, (int)s.len, s.data);
        if (rc) return s_FAIL(c, rc, "out of memory");
    }
    return TR_OK;
}

tr_tokenizer_t *tr_tokenizer_new_gguf(const tr_gguf_t *g, int *status, char *err, size_t err_size) {
    s_ctx_t c = {.err = err, .err_size = err_size};
    int rc = TR_ENOMEM;
    char model[32] = "", pre[64] = "";
    tr_gguf_str_t s;
    c.tok = tr_tok_impl_alloc(0);
    if (!c.tok) {
        s_FAIL(&c, rc, "out of memory");
        goto fail;
    }
    if (tr_gguf_get_str(g, "tokenizer.ggml.model", &s)) {
        rc = s_FAIL(&c, TR_EPROTO, "GGUF: no tokenizer.ggml.model (no vocabulary in this file)");
        goto fail;
    }
    tr_gguf_str_copy(s, model, sizeof model);
    if (tr_gguf_get_str(g, "tokenizer.ggml.pre", &s) == TR_OK) tr_gguf_str_copy(s, pre, sizeof pre);
    tr_tokenizer_t *tok = c.tok;
    bool spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2")) {
        rc = s_FAIL(&c, TR_EINVAL, "GGUF: tokenizer.ggml.model '%s' is not supported (llama, gpt2)",
                    model);
        goto fail;
    }
    if ((rc = s_load_vocab(&c, g, spm))) goto fail;
    int32_t n = tok->n_vocab;
    bool add_bos, add_eos = s_bool_key(g, "tokenizer.ggml.add_eos_token", false);
    tr_tok_decoder_t *d = &tok->dec;
    d->raw_added = true;
    if (spm) {
        tok->engine = TR_TOK_ENGINE_SPM_SCORE;
        tok->bos = s_id_key(g, "tokenizer.ggml.bos_token_id", 1, n);
        tok->eos = s_id_key(g, "tokenizer.ggml.eos_token_id", 2, n);
        tok->unk = s_id_key(g, "tokenizer.ggml.unknown_token_id", 0, n);
        add_bos = s_bool_key(g, "tokenizer.ggml.add_bos_token", true);
        bool space = s_bool_key(g, "tokenizer.ggml.add_space_prefix", true);
        static const char ws[] = "\xe2\x96\x81"; /* ▁ */
        if ((space && tr_tok_impl_add_norm(tok, TR_TOK_NORM_PREPEND, ws, 3, NULL, 0)) ||
            tr_tok_impl_add_norm(tok, TR_TOK_NORM_REPLACE, " ", 1, ws, 3)) {
            rc = s_FAIL(&c, TR_ENOMEM, "out of memory");
            goto fail;
        }
        /* decode like HF's Llama decoder: ▁ -> ' ', <0xNN> runs, strip the added space */
        d->n_replace = 1;
        d->rep_from[0] = tr_tok_impl_strdup(tok, ws, 3);
        d->rep_to[0] = tr_tok_impl_strdup(tok, " ", 1);
        d->rep_from_len[0] = 3;
        d->rep_to_len[0] = 1;
        d->byte_fallback = true;
        d->strip_whole = true;
        d->strip_char = ' ';
        d->strip_start = space ? 1 : 0;
        snprintf(tok->kind, sizeof tok->kind, "gguf/llama");
    } else {
        tok->engine = TR_TOK_ENGINE_BPE_RANK;
        tok->bos = s_id_key(g, "tokenizer.ggml.bos_token_id", 11, n);
        tok->eos = s_id_key(g, "tokenizer.ggml.eos_token_id", 11, n);
        tok->unk = s_id_key(g, "tokenizer.ggml.unknown_token_id", -1, n);
        const char *const *re = NULL;
        bool dflt_bos = false;
        if (!pre[0]) {
            TR_WARN("GGUF: no tokenizer.ggml.pre; using llama.cpp's 'default' pre-tokenizer");
            strcpy(pre, "default");
        }
        for (size_t i = 0; i < TR_ARRAY_LEN(s_pre_types); i++)
            if (!strcmp(pre, s_pre_types[i].name)) {
                re = s_pre_types[i].re;
                tok->ignore_merges = s_pre_types[i].ignore_merges;
                dflt_bos = s_pre_types[i].add_bos;
            }
        if (!re) {
            rc = s_FAIL(&c, TR_EINVAL,
                        "GGUF: tokenizer.ggml.pre '%s' is not supported (gpt-2, "
                        "llama-bpe, qwen2, deepseek-llm, deepseek-coder, smollm, starcoder, "
                        "default, ...)",
                        pre);
            goto fail;
        }
        add_bos = s_bool_key(g, "tokenizer.ggml.add_bos_token", dflt_bos);
        for (int i = 0; re[i]; i++) {
            tr_tok_pre_t st;
            memset(&st, 0, sizeof st);
            st.kind = TR_TOK_PRE_SPLIT;
            st.behavior = TR_TOK_SPLIT_ISOLATED;
            if ((rc = tr_tok_impl_add_pre(tok, &st, re[i], err, err_size))) goto fail;
        }
        tok->bytelevel = true;
        if ((rc = s_load_merges(&c, g))) goto fail;
        d->bytelevel = true;
        snprintf(tok->kind, sizeof tok->kind, "gguf/gpt2");
    }
    tok->pad = s_id_key(g, "tokenizer.ggml.padding_token_id", -1, n);
    if (add_bos && tok->bos >= 0) tok->prefix_ids[tok->n_prefix++] = tok->bos;
    if (add_eos && tok->eos >= 0) tok->suffix_ids[tok->n_suffix++] = tok->eos;
    if ((rc = s_add_special_tokens(&c, g))) goto fail;
    if ((rc = tr_tok_impl_finish(tok, err, err_size))) goto fail;
    if (status) *status = TR_OK;
    return tok;
fail:
    tr_tokenizer_destroy(&c.tok);
    if (status) *status = rc;
    return NULL;
}
