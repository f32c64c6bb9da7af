/*  models/tokenizer.h - text <-> token ids for every model format troupe loads.
 *
 *  One tr_tokenizer_t holds a vocabulary and the pipeline that turns text into ids and back:
 *    added/special tokens -> normalizer -> pre-tokenizer -> model (BPE) -> post-processor
 *    ids -> decoder (byte-level, <0xNN> byte fallback, "▁" -> space, ...) -> UTF-8 text.
 *  It is built from
 *    - a HuggingFace tokenizer.json (+ tokenizer_config.json when present): BPE models, both
 *      byte-level (GPT-2, Llama-3, Qwen2, SmolLM) and SentencePiece-style (Llama-2, TinyLlama,
 *      Mistral: Prepend/Replace normalizers or Metaspace, byte_fallback);
 *    - a GGUF file's tokenizer.ggml.* metadata: model "llama" (SentencePiece scores) or
 *      "gpt2" (byte-level BPE merges, with the regex chosen by tokenizer.ggml.pre);
 *    - a llama2.c tokenizer.bin (scores, greedy merges, byte fallback at id 3 + byte).
 *  The result follows the reference of each format exactly: HF `tokenizers` for tokenizer.json,
 *  llama.cpp for GGUF, llama2.c run.c for tokenizer.bin (docs/tokenizers.md lists what is
 *  tested against what). A feature the loader does not implement is an error naming it,
 *  never a silent approximation.
 *
 *  Owns: the vocabulary, merges, compiled regexes and a cache of encoded words.
 *  Thread: tr_tokenizer_encode updates the word cache, so one thread at a time may encode
 *  with a given tokenizer (the tokenizer actor owns one). Decoding and every getter only
 *  read it: any number of threads may decode concurrently, each with its own stream.
 *
 *      char err[256];
 *      int rc;
 *      tr_tokenizer_t *tok = tr_tokenizer_new("models/tinyllama", &rc, err, sizeof err);
 *      if (!tok) { TR_ERROR("%s", err); return rc; }
 *      tr_tok_ids_t ids;
 *      tr_tok_ids_init(&ids);
 *      rc = tr_tokenizer_encode(tok, "Hello world", 11, TR_TOK_ADD_SPECIAL | TR_TOK_PARSE_SPECIAL,
 *                               &ids);                                   // <s> ▁Hello ▁world
 *      tr_tok_stream_t *st = tr_tok_stream_new(tok, 0);
 *      tr_tok_text_t out;
 *      tr_tok_text_init(&out);
 *      for (size_t i = 0; i < ids.n; i++) tr_tok_stream_push(st, ids.ids[i], &out); // whole
 *      tr_tok_stream_flush(st, &out);                                   // UTF-8 chars only
 *      tr_tok_stream_destroy(&st);
 *      tr_tok_text_fini(&out);
 *      tr_tok_ids_fini(&ids);
 *      tr_tokenizer_destroy(&tok);                                                        */
#ifndef TR_TOKENIZER_H
#define TR_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/gguf.h"

typedef struct tr_tokenizer tr_tokenizer_t;
typedef struct tr_tok_stream tr_tok_stream_t;

/* ---- encode flags ---- */
enum {
    /* Apply the post-processor: BOS (and EOS) as the model's tokenizer adds them
     * (tokenizer.json TemplateProcessing / tokenizer_config.json add_bos_token, GGUF
     * tokenizer.ggml.add_bos_token, BOS=1 for llama2.c). */
    TR_TOK_ADD_SPECIAL = 1u << 0,
    /* Recognise special (control) tokens written in the text, e.g. "<|im_start|>". Added
     * tokens that are not special (HF special=false, GGUF USER_DEFINED) are always
     * recognised, as in HF tokenizers and llama.cpp. */
    TR_TOK_PARSE_SPECIAL = 1u << 1,
};

/* ---- decode flags ---- */
enum {
    TR_TOK_SKIP_SPECIAL = 1u << 0, /* leave special (control) tokens out of the text */
};

/* Token attributes (bits), llama.cpp's token types. */
enum {
    TR_TOK_ATTR_NORMAL = 1u << 0,
    TR_TOK_ATTR_UNKNOWN = 1u << 1,
    TR_TOK_ATTR_CONTROL = 1u << 2,      /* special: BOS, EOS, <|im_start|>, ... */
    TR_TOK_ATTR_USER_DEFINED = 1u << 3, /* added, not special: always matched in text */
    TR_TOK_ATTR_UNUSED = 1u << 4,
    TR_TOK_ATTR_BYTE = 1u << 5, /* <0xNN> byte-fallback token */
};

/* A growable id vector in caller storage (init/fini; the buffer is owned by the vector). */
typedef struct {
    int32_t *ids; /* owned */
    size_t n, cap;
} tr_tok_ids_t;

/* A growable text buffer in caller storage; data is NUL-terminated when non-NULL. */
typedef struct {
    char *data; /* owned */
    size_t len, cap;
} tr_tok_text_t;

void tr_tok_ids_init(tr_tok_ids_t *v);
void tr_tok_ids_fini(tr_tok_ids_t *v);
void tr_tok_text_init(tr_tok_text_t *t);
void tr_tok_text_fini(tr_tok_text_t *t);

/* ---- construction ---- */
/* Every constructor returns a tokenizer the caller owns, or NULL; on NULL, *status (if not
 * NULL) holds the tr_status_t (TR_ENOENT missing file, TR_EPROTO malformed file, TR_EINVAL
 * unsupported feature, TR_ENOMEM) and err (if not NULL) a one-line message. */

/* Picks the loader from the path: a directory (tokenizer.json [+ tokenizer_config.json]),
 * *.json, *.gguf, or anything else as a llama2.c tokenizer.bin (vocab size from the file).
 * SentencePiece *.model files are refused (TR_EINVAL). */
tr_tokenizer_t *tr_tokenizer_new(const char *path, int *status, char *err, size_t err_size);

/* HF tokenizer.json; config_path (tokenizer_config.json) may be NULL. */
tr_tokenizer_t *tr_tokenizer_new_hf(const char *json_path, const char *config_path, int *status,
                                    char *err, size_t err_size);
/* The same from JSON text in memory (config_json may be NULL); for tests and embedding. */
tr_tokenizer_t *tr_tokenizer_new_hf_from_string(const char *json, size_t len,
                                                const char *config_json, int *status, char *err,
                                                size_t err_size);

/* The tokenizer.ggml.* metadata of an open GGUF. Does not take ownership of `gguf`; copies
 * what it needs, so the GGUF may be destroyed afterwards. */
tr_tokenizer_t *tr_tokenizer_new_gguf(const tr_gguf_t *gguf, int *status, char *err,
                                      size_t err_size);

/* llama2.c tokenizer.bin. n_vocab is the model's vocab_size (the format does not store
 * it); 0 reads tokens until the end of the file. */
tr_tokenizer_t *tr_tokenizer_new_llama2c(const char *path, int32_t n_vocab, int *status, char *err,
                                         size_t err_size);

/* The tokenizer that goes with a model path as tr_model_load takes it: an HF directory's
 * tokenizer.json, a GGUF's embedded vocabulary, or for a llama2.c checkpoint the
 * tok<vocab_size>.bin or tokenizer.bin beside it. */
tr_tokenizer_t *tr_tokenizer_for_model(const char *model_path, int *status, char *err,
                                       size_t err_size);

/* Frees *self_p and sets it to NULL; NULL-safe. Streams created from it must be gone. */
void tr_tokenizer_destroy(tr_tokenizer_t **self_p);

/* ---- vocabulary ---- */
int32_t tr_tokenizer_n_vocab(const tr_tokenizer_t *self); /* ids are 0 .. n_vocab-1 */
int32_t tr_tokenizer_bos(const tr_tokenizer_t *self);     /* -1 when the model has none */
int32_t tr_tokenizer_eos(const tr_tokenizer_t *self);     /* -1 when the model has none */
int32_t tr_tokenizer_unk(const tr_tokenizer_t *self);
int32_t tr_tokenizer_pad(const tr_tokenizer_t *self);
/* Whether TR_TOK_ADD_SPECIAL puts a BOS / EOS around the text. */
bool tr_tokenizer_adds_bos(const tr_tokenizer_t *self);
bool tr_tokenizer_adds_eos(const tr_tokenizer_t *self);
/* "hf", "gguf" or "llama2c", then the model: e.g. "hf/bpe-bytelevel", "gguf/llama". */
const char *tr_tokenizer_kind(const tr_tokenizer_t *self);
/* The token's vocabulary string (borrowed, NUL-terminated; *len gets its length when len is
 * not NULL), or NULL for an id out of range or unused. "▁hello", "Ġworld", "<0x0A>", "<s>". */
const char *tr_tokenizer_token_text(const tr_tokenizer_t *self, int32_t id, size_t *len);
/* Id of an exact vocabulary string, or -1. */
int32_t tr_tokenizer_token_id(const tr_tokenizer_t *self, const char *text, size_t len);
/* TR_TOK_ATTR_* bits of a token (0 for an id out of range). */
unsigned tr_tokenizer_token_attr(const tr_tokenizer_t *self, int32_t id);

/* Turns the word cache on (the default) or off (and empties it). Off, every word goes
 * through BPE: for benchmarks and for memory-tight embedders. Same thread rule as encode. */
void tr_tokenizer_set_cache(tr_tokenizer_t *self, bool enabled);

/* Whether s[0..n) is well-formed UTF-8 (Unicode Table 3-7: no overlongs, surrogates or
 * code points past U+10FFFF). */
bool tr_utf8_valid(const char *s, size_t n);

/* ---- encode ---- */
/* Appends the ids of `len` bytes of UTF-8 text to *out. TR_EINVAL for text that is not valid
 * UTF-8, TR_ENOMEM. Not thread-safe per tokenizer (word cache). */
int tr_tokenizer_encode(tr_tokenizer_t *self, const char *text, size_t len, unsigned flags,
                        tr_tok_ids_t *out);

/* ---- decode ---- */
/* Appends the text of ids[0..n) to *out (NUL-terminated, valid UTF-8: bytes that do not form
 * UTF-8 become U+FFFD exactly as the reference decoder does). TR_EINVAL for an id out of
 * range. Equal to pushing every id through a stream and flushing it. */
int tr_tokenizer_decode(const tr_tokenizer_t *self, const int32_t *ids, size_t n, unsigned flags,
                        tr_tok_text_t *out);

/* Streaming decode: one stream per sequence; the tokenizer is borrowed and must outlive it.
 * push appends only complete UTF-8 characters that no later token can change (a partial
 * character or an unfinished run of byte tokens is held back); flush appends what is held
 * (as U+FFFD where it is not valid UTF-8) and resets the stream. The concatenation of all
 * appended text equals tr_tokenizer_decode of the same ids. */
tr_tok_stream_t *tr_tok_stream_new(const tr_tokenizer_t *tok, unsigned flags);
int tr_tok_stream_push(tr_tok_stream_t *self, int32_t id, tr_tok_text_t *out);
int tr_tok_stream_flush(tr_tok_stream_t *self, tr_tok_text_t *out);
void tr_tok_stream_destroy(tr_tok_stream_t **self_p);

#endif
