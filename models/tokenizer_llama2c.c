/*  models/tokenizer_llama2c.c - llama2.c tokenizer.bin loader (karpathy/llama2.c run.c).
 *
 *  Format: int32 max_token_length, then per token: float32 score, int32 length, the bytes.
 *  The vocabulary size is the model's (not stored): n_vocab tokens are read, or all of them
 *  when n_vocab is 0. Encoding follows run.c encode(): a dummy-prefix " " before non-empty
 *  text, characters missing from the vocabulary become <0xNN> tokens (id = byte + 3) at
 *  once, then the adjacent pair whose concatenation has the highest score (> -1e10) merges,
 *  leftmost first, until none does; BOS = 1 with TR_TOK_ADD_SPECIAL. Decoding follows
 *  run.c decode(): <0xNN> is the raw byte, and a piece after BOS loses its leading space.
 *  Owns nothing after return. Thread: any.                                                */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/tokenizer_impl.h"
#include "runtime/status.h"

tr_tokenizer_t *tr_tokenizer_new_llama2c(const char *path, int32_t n_vocab, int *status, char *err,
                                         size_t err_size) {
    int rc = TR_ENOMEM;
    tr_tokenizer_t *tok = NULL;
    char *piece = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        rc = tr_tok_impl_fail(err, err_size, e == ENOENT ? TR_ENOENT : TR_EIO, "%s: %s", path,
                              strerror(e));
        goto fail;
    }
    int32_t max_len;
    if (fread(&max_len, 4, 1, f) != 1 || max_len <= 0 || max_len > (1 << 20)) {
        rc = tr_tok_impl_fail(err, err_size, TR_EPROTO,
                              "%s: not a llama2.c tokenizer (bad "
                              "max_token_length)",
                              path);
        goto fail;
    }
    if (n_vocab < 0) {
        rc = tr_tok_impl_fail(err, err_size, TR_EINVAL, "%s: negative vocab size", path);
        goto fail;
    }
    tok = tr_tok_impl_alloc(0);
    if (!tok) goto nomem;
    piece = malloc((size_t)max_len + 1);
    if (!piece) goto nomem;
    for (int32_t i = 0; n_vocab == 0 || i < n_vocab; i++) {
        float score;
        int32_t len;
        size_t got = fread(&score, 4, 1, f);
        if (got != 1 && n_vocab == 0 && feof(f) && i > 0) break;
        if (got != 1 || fread(&len, 4, 1, f) != 1) {
            rc = tr_tok_impl_fail(err, err_size, TR_EPROTO, "%s: truncated at token %d", path, i);
            goto fail;
        }
        if (len < 0 || len > max_len) {
            rc = tr_tok_impl_fail(err, err_size, TR_EPROTO, "%s: token %d has length %d (max %d)",
                                  path, i, len, max_len);
            goto fail;
        }
        if (fread(piece, 1, (size_t)len, f) != (size_t)len) {
            rc = tr_tok_impl_fail(err, err_size, TR_EPROTO, "%s: truncated at token %d", path, i);
            goto fail;
        }
        if (memchr(piece, 0, (size_t)len)) {
            rc = tr_tok_impl_fail(err, err_size, TR_EPROTO, "%s: token %d contains a NUL byte",
                                  path, i);
            goto fail;
        }
        unsigned attr = i == 0   ? TR_TOK_ATTR_UNKNOWN
                        : i <= 2 ? TR_TOK_ATTR_CONTROL
                                 : TR_TOK_ATTR_NORMAL;
        if (tr_tok_impl_set_piece(tok, i, piece, (size_t)len, score, attr)) goto nomem;
        tok->pieces[i].special = i <= 2;
    }
    if (tok->n_vocab < 3) {
        rc = tr_tok_impl_fail(err, err_size, TR_EPROTO, "%s: only %d tokens", path, tok->n_vocab);
        goto fail;
    }
    fclose(f);
    f = NULL;
    free(piece);
    piece = NULL;
    tok->engine = TR_TOK_ENGINE_SPM_SCORE;
    tok->spm_bytes_early = true;
    tok->spm_min_score = -1e10f;
    tok->unk = 0;
    tok->bos = 1;
    tok->eos = 2;
    tok->prefix_ids[tok->n_prefix++] = 1;
    if (tr_tok_impl_add_norm(tok, TR_TOK_NORM_PREPEND, " ", 1, NULL, 0))
        goto nomem; /* dummy prefix */
    tok->dec.lossy_bytes = true;
    tok->dec.strip_after_bos = true;
    snprintf(tok->kind, sizeof tok->kind, "llama2c/spm");
    if ((rc = tr_tok_impl_finish(tok, err, err_size))) goto fail;
    /* run.c: byte b is token b + 3 whatever its text */
    if (tok->n_vocab >= 259)
        for (int b = 0; b < 256; b++)
            tok->byte_ids[b] = b + 3;
    if (status) *status = TR_OK;
    return tok;
nomem:
    rc = tr_tok_impl_fail(err, err_size, TR_ENOMEM, "%s: out of memory", path);
fail:
    if (f) fclose(f);
    free(piece);
    tr_tokenizer_destroy(&tok);
    if (status) *status = rc;
    return NULL;
}
