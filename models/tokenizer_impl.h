/*  models/tokenizer_impl.h - the tokenizer's private state, shared by its source files.
 *
 *    tokenizer.c          core: vocabulary map, added-token matching, normalizers,
 *                         pre-tokenizers, the two BPE engines, encode, decode and streams
 *    tokenizer_hf.c       loader for tokenizer.json (+ tokenizer_config.json)
 *    tokenizer_gguf.c     loader for GGUF tokenizer.ggml.* metadata
 *    tokenizer_llama2c.c  loader for llama2.c tokenizer.bin
 *  A loader fills a tr_tokenizer_t with tr_tok_impl_* helpers and calls
 *  tr_tok_impl_finish(), which builds the lookup tables. Nothing here is public API.
 *  Thread: as tokenizer.h.                                                                 */
#ifndef TR_TOKENIZER_IMPL_H
#define TR_TOKENIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "models/tokenizer.h"

/* ---- vocabulary ---- */
typedef struct {
    char *text; /* owned by the arena; NULL for an unused id */
    uint32_t len;
    float score;  /* SentencePiece score (SPM engine), 0 otherwise */
    uint8_t attr; /* TR_TOK_ATTR_* */
    bool special; /* skipped by TR_TOK_SKIP_SPECIAL; needs TR_TOK_PARSE_SPECIAL in text */
} tr_tok_piece_t;

/* ---- added tokens (matched in the text before the model runs) ---- */
typedef struct {
    int32_t id;
    char *text; /* what is matched (for HF normalized tokens: the normalized content) */
    uint32_t len;
    bool special;    /* only matched with TR_TOK_PARSE_SPECIAL */
    bool lstrip;     /* absorbs whitespace before it */
    bool rstrip;     /* absorbs whitespace after it */
    bool normalized; /* HF: matched in the normalized text */
} tr_tok_added_t;

/* ---- normalizer steps ---- */
typedef enum {
    TR_TOK_NORM_PREPEND, /* a = string; only when the piece is not empty */
    TR_TOK_NORM_REPLACE, /* a -> b, literal */
    TR_TOK_NORM_STRIP,   /* n_left/n_right flags: strip Unicode whitespace */
    TR_TOK_NORM_NFC,     /* Unicode normalization forms (tables: tokenizer_unicode.c) */
    TR_TOK_NORM_NFD,
    TR_TOK_NORM_NFKC,
    TR_TOK_NORM_NFKD,
} tr_tok_norm_kind_t;

typedef struct {
    tr_tok_norm_kind_t kind;
    char *a, *b; /* owned */
    uint32_t a_len, b_len;
    bool left, right;
} tr_tok_norm_t;

/* ---- pre-tokenizer steps ---- */
typedef enum {
    TR_TOK_PRE_SPLIT,     /* regex or literal, HF SplitDelimiterBehavior, invert */
    TR_TOK_PRE_BYTELEVEL, /* optional prefix space, optional GPT-2 regex; then byte mapping */
    TR_TOK_PRE_METASPACE, /* ' ' -> replacement, prepend scheme, optional split */
} tr_tok_pre_kind_t;

typedef enum {
    TR_TOK_SPLIT_REMOVED,
    TR_TOK_SPLIT_ISOLATED,
    TR_TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TR_TOK_SPLIT_MERGED_WITH_NEXT,
    TR_TOK_SPLIT_CONTIGUOUS,
} tr_tok_split_behavior_t;

typedef enum {
    TR_TOK_PREPEND_ALWAYS,
    TR_TOK_PREPEND_FIRST,
    TR_TOK_PREPEND_NEVER,
} tr_tok_prepend_t;

typedef struct {
    tr_tok_pre_kind_t kind;
    pcre2_code *re; /* owned: SPLIT regex, BYTELEVEL use_regex */
    char *literal;  /* owned: SPLIT with a String pattern */
    uint32_t literal_len;
    tr_tok_split_behavior_t behavior;
    bool invert;
    bool add_prefix_space; /* BYTELEVEL */
    char replacement[8];   /* METASPACE, UTF-8 */
    uint32_t replacement_len;
    tr_tok_prepend_t prepend;
    bool split; /* METASPACE */
} tr_tok_pre_t;

/* ---- model ---- */
typedef enum {
    TR_TOK_ENGINE_BPE_RANK,  /* merges by rank (HF BPE, GGUF gpt2) */
    TR_TOK_ENGINE_SPM_SCORE, /* greedy pair merges by vocabulary score (GGUF llama, llama2.c) */
} tr_tok_engine_t;

/* ---- decoder ---- */
typedef struct {
    int n_replace;
    char *rep_from[4], *rep_to[4]; /* owned: per-token literal replacements, in order */
    uint32_t rep_from_len[4], rep_to_len[4];
    bool byte_fallback; /* <0xNN> runs -> bytes (whole run U+FFFD per byte when invalid) */
    bool bytelevel;     /* GPT-2 byte-level chars -> bytes, lossy UTF-8 */
    bool strip_whole;   /* Strip came after Fuse: it applies to the whole text */
    uint32_t strip_start, strip_stop;
    uint32_t strip_char; /* code point */
    bool metaspace;      /* ▁ -> ' ' and the first token loses one leading space */
    uint32_t metaspace_char;
    bool metaspace_strip_first;
    bool join_space;      /* no decoder at all: HF joins tokens with ' ' */
    bool lossy_bytes;     /* llama2.c: <0xNN> -> raw byte, lossy UTF-8 */
    bool strip_after_bos; /* llama2.c: a piece after BOS loses its leading space */
    bool raw_added;       /* llama.cpp: control/user-defined tokens are written raw */
} tr_tok_decoder_t;

/* Open-addressing map of (hash, id) with keys compared against the piece text. */
typedef struct {
    uint32_t *hashes;
    int32_t *ids;
    size_t cap; /* power of two */
} tr_tok_strmap_t;

/* Map (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t *keys; /* (a << 32 | b) + 1; 0 = empty */
    int32_t *rank;
    int32_t *merged;
    size_t cap;
} tr_tok_mergemap_t;

/* Set of 64-bit keys (0 is never stored). */
typedef struct {
    uint64_t *keys;
    size_t cap, n;
} tr_tok_set64_t;

/* Cache of encoded words: word bytes -> ids. */
typedef struct {
    uint64_t *hashes; /* 0 = empty */
    uint32_t *off;    /* into bytes: word, then ids */
    uint32_t *word_len;
    uint32_t *n_ids;
    size_t cap, n;
    uint8_t *bytes; /* arena */
    size_t bytes_len, bytes_cap;
} tr_tok_cache_t;

struct tr_tokenizer {
    char kind[32];
    /* vocabulary */
    int32_t n_vocab;
    tr_tok_piece_t *pieces; /* owned: n_vocab (capacity pieces_cap) */
    int32_t pieces_cap;
    tr_tok_strmap_t vocab_map; /* owned */
    bool map_last_wins;        /* duplicate strings: last id wins (llama.cpp) */
    char **arena_blocks;       /* owned: text storage */
    size_t n_arena_blocks, arena_used, arena_cap;
    int32_t bos, eos, unk, pad;
    /* added tokens */
    tr_tok_added_t *added; /* owned */
    int n_added, cap_added;
    bool added_ascii_strip;   /* lstrip/rstrip with ASCII isspace (llama.cpp) */
    bool added_longest_first; /* llama.cpp: partition by token length, not leftmost */
    uint8_t added_first_raw[32], added_first_norm[32]; /* bitsets of first bytes */
    int32_t *added_order;      /* owned: added indices by (first byte, longest first) */
    int32_t added_bucket[257]; /* bucket of first byte b: added_order[bucket[b]..bucket[b+1]) */
    /* pipeline */
    tr_tok_norm_t *norm; /* owned */
    int n_norm;
    tr_tok_pre_t *pre; /* owned */
    int n_pre;
    bool bytelevel; /* words are mapped to GPT-2 byte chars before the model */
    /* model */
    tr_tok_engine_t engine;
    tr_tok_mergemap_t merges; /* BPE_RANK */
    bool byte_fallback;       /* unknown chars -> <0xNN> tokens */
    int32_t byte_ids[256];    /* <0xNN> token ids, -1 when missing */
    int32_t bl_ids[256];      /* byte-level char token id per byte, -1 when missing */
    int32_t ascii_ids[128];   /* single-char token ids for ASCII, -1 when missing */
    bool fuse_unk;
    bool ignore_merges;
    bool spm_bytes_early;    /* llama2.c: unknown chars become bytes before merging */
    float spm_min_score;     /* llama2.c: pairs must score above -1e10 */
    tr_tok_set64_t adjacent; /* code-point pairs found inside vocab tokens (split guard) */
    uint8_t adjacent_ascii[128 * 128 / 8]; /* the same for ASCII pairs, as a bitmap */
    bool can_split_words;                  /* long words may be cut where no token spans the cut */
    /* post-processor */
    int32_t prefix_ids[4], suffix_ids[4];
    int n_prefix, n_suffix;
    /* decoder */
    tr_tok_decoder_t dec;
    /* scratch for encode (not thread-safe) */
    tr_tok_cache_t cache;
    bool no_cache;
    void *scratch_sym; /* symbols */
    size_t scratch_sym_cap;
    void *scratch_heap;
    size_t scratch_heap_cap;
    char *scratch_buf[3]; /* normalized text, pre-tokenized pieces, mapped word */
    size_t scratch_buf_cap[3];
    pcre2_match_data *md;
};

/* ---- helpers for loaders (tokenizer.c) ---- */

/* Formats the error message: "what: message". Returns status. */
int tr_tok_impl_fail(char *err, size_t err_size, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Allocates the tokenizer with n_vocab empty pieces. */
tr_tokenizer_t *tr_tok_impl_alloc(int32_t n_vocab);
/* Grows the vocabulary to n_vocab ids (new ones unused). */
int tr_tok_impl_grow(tr_tokenizer_t *self, int32_t n_vocab);
/* Copies text into the arena; returns NULL on ENOMEM. */
char *tr_tok_impl_strdup(tr_tokenizer_t *self, const char *s, size_t len);
/* Sets piece `id` (copying text). */
int tr_tok_impl_set_piece(tr_tokenizer_t *self, int32_t id, const char *text, size_t len,
                          float score, unsigned attr);
/* Adds a token matched in the text. */
int tr_tok_impl_add_token(tr_tokenizer_t *self, int32_t id, const char *text, size_t len,
                          bool special, bool lstrip, bool rstrip, bool normalized);
int tr_tok_impl_add_norm(tr_tokenizer_t *self, tr_tok_norm_kind_t kind, const char *a, size_t a_len,
                         const char *b, size_t b_len);
/* Adds a pre-tokenizer step; the regex (HF/Oniguruma syntax) is compiled with PCRE2 UTF+UCP
 * after \s/\S are rewritten to Unicode White_Space. */
int tr_tok_impl_add_pre(tr_tokenizer_t *self, const tr_tok_pre_t *step, const char *regex,
                        char *err, size_t err_size);
/* Builds the vocabulary map (call before merges that need lookups). */
int tr_tok_impl_build_vocab_map(tr_tokenizer_t *self);
int32_t tr_tok_impl_lookup(const tr_tokenizer_t *self, const char *s, size_t len);
/* Adds merge (a, b) with the given rank; the merged token is the vocab entry a+b. Returns
 * TR_ENOENT when a, b or a+b is not in the vocabulary. */
int tr_tok_impl_add_merge(tr_tokenizer_t *self, int32_t a, int32_t b, int32_t rank);
int tr_tok_impl_reserve_merges(tr_tokenizer_t *self, size_t n);
/* Builds the remaining tables (byte ids, split guard); call once at the end. */
int tr_tok_impl_finish(tr_tokenizer_t *self, char *err, size_t err_size);

/* Runs the normalizer over s[0..n); *out is malloc'd (caller frees). */
int tr_tok_impl_normalize(const tr_tokenizer_t *self, const char *s, size_t n, char **out,
                          size_t *out_len);

/* GPT-2 byte -> code point map. */
uint32_t tr_tok_impl_byte_to_cp(uint8_t b);
/* Encodes a code point as UTF-8 into out (4 bytes); returns the length. */
int tr_tok_impl_utf8_put(uint32_t cp, char *out);
/* Decodes one UTF-8 char at s (n bytes left, valid UTF-8 assumed); returns its length. */
int tr_tok_impl_utf8_get(const char *s, size_t n, uint32_t *cp);

#endif
