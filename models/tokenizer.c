/*  models/tokenizer.c - tokenizer core: tables, encode pipeline, BPE engines, decoders.
 *
 *  Encode runs, for one text:
 *    1. added tokens matched in the raw text (leftmost-longest; special ones only with
 *       TR_TOK_PARSE_SPECIAL), lstrip/rstrip absorbing whitespace;
 *    2. each remaining segment normalized (Prepend / Replace / Strip), then tokens marked
 *       `normalized` matched in the normalized text (HF's two-pass AddedVocabulary);
 *    3. pre-tokenizer steps (regex Split with HF's five behaviours, ByteLevel, Metaspace)
 *       cut the segment into words; without a pre-tokenizer (SentencePiece style) a long
 *       segment is cut only where no vocabulary token can span the cut (exact, see
 *       s_split_guard) so that the word cache works;
 *    4. each word goes through the word cache, else through one of two engines over a linked
 *       list of symbols with a binary heap of candidate pairs:
 *         BPE_RANK  - HF BPE / llama.cpp BPE: lowest merge rank first, then leftmost;
 *         SPM_SCORE - llama.cpp SPM / llama2.c: highest vocabulary score first, then leftmost;
 *    5. the post-processor's prefix/suffix ids with TR_TOK_ADD_SPECIAL.
 *  Decode is a stream (one token at a time) so that tr_tokenizer_decode and the streaming
 *  API agree by construction; see the "decode" section for the reference rules it follows.
 *  Owns: everything in struct tr_tokenizer (tokenizer_impl.h). Thread: see tokenizer.h.  */
#include "models/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/tokenizer_impl.h"
#include "runtime/status.h"

#define s_ARENA_BLOCK     (1u << 20)
#define s_CACHE_MAX_WORD  256         /* longer words are not cached */
#define s_CACHE_MAX_BYTES (16u << 20) /* the cache is cleared when its arena passes this */
#define s_GUARD_MIN       64          /* segments shorter than this are not cut */

static const char s_fffd[3] = {(char)0xef, (char)0xbf, (char)0xbd};

/* ---- UTF-8 ---- */

static int s_utf8_len(uint8_t c) {
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) return 2;
    if ((c & 0xf0) == 0xe0) return 3;
    if ((c & 0xf8) == 0xf0) return 4;
    return 1;
}

int tr_tok_impl_utf8_get(const char *s, size_t n, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    int len = s_utf8_len(u[0]);
    if ((size_t)len > n) len = 1;
    switch (len) {
    case 1:
        *cp = u[0];
        break;
    case 2:
        *cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
        break;
    case 3:
        *cp = ((uint32_t)(u[0] & 0x0f) << 12) | ((uint32_t)(u[1] & 0x3f) << 6) | (u[2] & 0x3f);
        break;
    default:
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3f) << 12) |
              ((uint32_t)(u[2] & 0x3f) << 6) | (u[3] & 0x3f);
    }
    return len;
}

int tr_tok_impl_utf8_put(uint32_t cp, char *out) {
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xc0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xe0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (uint8_t)(0xf0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* Valid range of the second byte of a sequence led by c (Unicode Table 3-7); 0 if c is not a
 * lead byte. */
static int s_utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80, *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c == 0xe0) *lo = 0xa0;
    if (c == 0xed) *hi = 0x9f;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c == 0xf0) *lo = 0x90;
    if (c == 0xf4) *hi = 0x8f;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;
}

/* Length of the longest valid UTF-8 prefix of s[0..n). */
static size_t s_utf8_valid_prefix(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint8_t lo, hi;
        int len = s_utf8_lead(s[i], &lo, &hi);
        if (!len || i + (size_t)len > n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (int k = 2; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += (size_t)len;
    }
    return n;
}

bool tr_utf8_valid(const char *s, size_t n) {
    return s_utf8_valid_prefix((const uint8_t *)s, n) == n;
}

/* Unicode White_Space (Rust char::is_whitespace, Oniguruma \s). */
static bool s_is_space_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

/* GPT-2 bytes_to_unicode: printable Latin-1 maps to itself, the rest to 256 + n. */
uint32_t tr_tok_impl_byte_to_cp(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    if (b <= 32) return 256u + b; /* 0..32 -> 256..288 */
    if (b == 127) return 256u + 33;
    if (b <= 160) return 256u + 34 + (uint32_t)(b - 128); /* 128..160 -> 290..322 */
    return 256u + 67;                                     /* 173 */
}

/* Inverse: code point -> byte, or -1. Code points 256.. are the unprintable bytes in order. */
static const uint8_t s_bl_inv[68] = {
    0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,  11,  12,  13,  14,  15,  16,
    17,  18,  19,  20,  21,  22,  23,  24,  25,  26,  27,  28,  29,  30,  31,  32,  127,
    128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144,
    145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 173};

static int s_cp_to_byte(uint32_t cp) {
    if (cp < 256)
        return (cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174 ? (int)cp : -1;
    return cp < 256 + 68 ? s_bl_inv[cp - 256] : -1;
}

/* ---- errors ---- */

int tr_tok_impl_fail(char *err, size_t err_size, int status, const char *fmt, ...) {
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ---- growable vectors in caller storage ---- */

void tr_tok_ids_init(tr_tok_ids_t *v) {
    memset(v, 0, sizeof *v);
}
void tr_tok_ids_fini(tr_tok_ids_t *v) {
    free(v->ids);
    memset(v, 0, sizeof *v);
}
void tr_tok_text_init(tr_tok_text_t *t) {
    memset(t, 0, sizeof *t);
}
void tr_tok_text_fini(tr_tok_text_t *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}

static int s_ids_push(tr_tok_ids_t *v, int32_t id) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->ids, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        v->ids = p;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return TR_OK;
}

static int s_text_append(tr_tok_text_t *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *p = realloc(t->data, cap);
        if (!p) return TR_ENOMEM;
        t->data = p;
        t->cap = cap;
    }
    if (n) memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
    return TR_OK;
}

/* A byte buffer with a length, for scratch work. */
typedef struct {
    char *p;
    size_t len, cap;
} s_buf_t;

static int s_buf_reserve(s_buf_t *b, size_t n) {
    if (b->len + n <= b->cap) return TR_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return TR_ENOMEM;
    b->p = p;
    b->cap = cap;
    return TR_OK;
}

static int s_buf_put(s_buf_t *b, const void *s, size_t n) {
    if (s_buf_reserve(b, n)) return TR_ENOMEM;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    return TR_OK;
}

/* ---- hashing ---- */

static uint64_t s_hash(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = (h ^ (k * 0xc2b2ae3d27d4eb4full)) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    memcpy(&k, p, n);
    h = (h ^ (k * 0xc2b2ae3d27d4eb4full)) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 32;
    return h ? h : 1;
}

static uint64_t s_mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t s_pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* ---- construction helpers ---- */

tr_tokenizer_t *tr_tok_impl_alloc(int32_t n_vocab) {
    tr_tokenizer_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->bos = self->eos = self->unk = self->pad = -1;
    self->spm_min_score = -INFINITY;
    for (int i = 0; i < 256; i++)
        self->byte_ids[i] = self->bl_ids[i] = -1;
    for (int i = 0; i < 128; i++)
        self->ascii_ids[i] = -1;
    if (n_vocab > 0 && tr_tok_impl_grow(self, n_vocab)) {
        free(self);
        return NULL;
    }
    return self;
}

int tr_tok_impl_grow(tr_tokenizer_t *self, int32_t n_vocab) {
    if (n_vocab <= self->n_vocab) return TR_OK;
    if (n_vocab > self->pieces_cap) { /* geometric: loaders may grow one id at a time */
        int32_t cap = self->pieces_cap > n_vocab / 2 ? self->pieces_cap * 2 : n_vocab;
        tr_tok_piece_t *p = realloc(self->pieces, (size_t)cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        self->pieces = p;
        self->pieces_cap = cap;
    }
    memset(self->pieces + self->n_vocab, 0,
           (size_t)(n_vocab - self->n_vocab) * sizeof *self->pieces);
    self->n_vocab = n_vocab;
    return TR_OK;
}

char *tr_tok_impl_strdup(tr_tokenizer_t *self, const char *s, size_t len) {
    if (len + 1 > s_ARENA_BLOCK) { /* a block of its own */
        char *big = malloc(len + 1);
        if (!big) return NULL;
        char **blocks = realloc(self->arena_blocks, (self->n_arena_blocks + 1) * sizeof *blocks);
        if (!blocks) {
            free(big);
            return NULL;
        }
        self->arena_blocks = blocks;
        /* keep the current block last so that arena_used keeps referring to it */
        if (self->n_arena_blocks) {
            blocks[self->n_arena_blocks] = blocks[self->n_arena_blocks - 1];
            blocks[self->n_arena_blocks - 1] = big;
        } else {
            blocks[0] = big;
            self->arena_used = self->arena_cap = 0;
        }
        self->n_arena_blocks++;
        memcpy(big, s, len);
        big[len] = '\0';
        return big;
    }
    if (!self->n_arena_blocks || self->arena_used + len + 1 > self->arena_cap) {
        char **blocks = realloc(self->arena_blocks, (self->n_arena_blocks + 1) * sizeof *blocks);
        if (!blocks) return NULL;
        self->arena_blocks = blocks;
        blocks[self->n_arena_blocks] = malloc(s_ARENA_BLOCK);
        if (!blocks[self->n_arena_blocks]) return NULL;
        self->n_arena_blocks++;
        self->arena_used = 0;
        self->arena_cap = s_ARENA_BLOCK;
    }
    char *p = self->arena_blocks[self->n_arena_blocks - 1] + self->arena_used;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    self->arena_used += len + 1;
    return p;
}

int tr_tok_impl_set_piece(tr_tokenizer_t *self, int32_t id, const char *text, size_t len,
                          float score, unsigned attr) {
    if (id < 0) return TR_EINVAL;
    if (id >= self->n_vocab && tr_tok_impl_grow(self, id + 1)) return TR_ENOMEM;
    if (len > UINT32_MAX) return TR_ERANGE;
    tr_tok_piece_t *p = &self->pieces[id];
    p->text = tr_tok_impl_strdup(self, text, len);
    if (!p->text) return TR_ENOMEM;
    p->len = (uint32_t)len;
    p->score = score;
    p->attr = (uint8_t)attr;
    p->special = (attr & (TR_TOK_ATTR_CONTROL)) != 0;
    return TR_OK;
}

int tr_tok_impl_add_token(tr_tokenizer_t *self, int32_t id, const char *text, size_t len,
                          bool special, bool lstrip, bool rstrip, bool normalized) {
    if (!len) return TR_OK; /* an empty token can never match */
    if (self->n_added == self->cap_added) {
        int cap = self->cap_added ? self->cap_added * 2 : 16;
        tr_tok_added_t *p = realloc(self->added, (size_t)cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        self->added = p;
        self->cap_added = cap;
    }
    tr_tok_added_t *a = &self->added[self->n_added];
    a->text = tr_tok_impl_strdup(self, text, len);
    if (!a->text) return TR_ENOMEM;
    a->id = id;
    a->len = (uint32_t)len;
    a->special = special;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->normalized = normalized;
    self->n_added++;
    return TR_OK;
}

int tr_tok_impl_add_norm(tr_tokenizer_t *self, tr_tok_norm_kind_t kind, const char *a, size_t a_len,
                         const char *b, size_t b_len) {
    tr_tok_norm_t *p = realloc(self->norm, (size_t)(self->n_norm + 1) * sizeof *p);
    if (!p) return TR_ENOMEM;
    self->norm = p;
    tr_tok_norm_t *n = &self->norm[self->n_norm];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    if (a) {
        n->a = tr_tok_impl_strdup(self, a, a_len);
        n->a_len = (uint32_t)a_len;
    }
    if (b) {
        n->b = tr_tok_impl_strdup(self, b, b_len);
        n->b_len = (uint32_t)b_len;
    }
    if ((a && !n->a) || (b && !n->b)) return TR_ENOMEM;
    self->n_norm++;
    return TR_OK;
}

/* Rewrites Oniguruma \s / \S (Unicode White_Space) into explicit PCRE2 classes, since PCRE2's
 * \s also matches U+180E. Everything else is passed through. */
static char *s_rewrite_regex(const char *re) {
    static const char ws[] = "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}"
                             "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
    size_t n = strlen(re);
    char *out = malloc(n * (sizeof ws + 4) + 1);
    if (!out) return NULL;
    size_t o = 0;
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = re[i];
        if (c == '\\' && i + 1 < n) {
            char d = re[i + 1];
            if (d == 's' || (d == 'S' && !in_class)) {
                if (!in_class) out[o++] = '[';
                if (d == 'S') out[o++] = '^';
                memcpy(out + o, ws, sizeof ws - 1);
                o += sizeof ws - 1;
                if (!in_class) out[o++] = ']';
            } else {
                out[o++] = c;
                out[o++] = d;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out[o++] = c;
            if (i + 1 < n && re[i + 1] == '^') out[o++] = re[++i];
            if (i + 1 < n && re[i + 1] == ']') out[o++] = re[++i]; /* literal ] first */
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && re[i + 1] == ':') { /* [:alpha:] */
            const char *end = strstr(re + i + 2, ":]");
            if (end) {
                size_t k = (size_t)(end - (re + i)) + 2;
                memcpy(out + o, re + i, k);
                o += k;
                i += k - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

int tr_tok_impl_add_pre(tr_tokenizer_t *self, const tr_tok_pre_t *step, const char *regex,
                        char *err, size_t err_size) {
    tr_tok_pre_t *p = realloc(self->pre, (size_t)(self->n_pre + 1) * sizeof *p);
    if (!p) return tr_tok_impl_fail(err, err_size, TR_ENOMEM, "out of memory");
    self->pre = p;
    tr_tok_pre_t s = *step;
    s.re = NULL;
    if (regex) {
        char *rw = s_rewrite_regex(regex);
        if (!rw) return tr_tok_impl_fail(err, err_size, TR_ENOMEM, "out of memory");
        int ec;
        PCRE2_SIZE eo;
        s.re = pcre2_compile((PCRE2_SPTR)rw, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &eo,
                             NULL);
        free(rw);
        if (!s.re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return tr_tok_impl_fail(err, err_size, TR_EINVAL,
                                    "pre-tokenizer regex does not compile with PCRE2 (%s at %zu): "
                                    "%.200s",
                                    (char *)msg, (size_t)eo, regex);
        }
        pcre2_jit_compile(s.re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    }
    self->pre[self->n_pre++] = s;
    return TR_OK;
}

/* ---- vocabulary map ---- */

static int32_t s_map_find(const tr_tok_strmap_t *m, const tr_tok_piece_t *pieces, const char *s,
                          size_t len, uint32_t h) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        int32_t id = m->ids[i];
        if (id < 0) return -1;
        if (m->hashes[i] == h && pieces[id].len == len && !memcmp(pieces[id].text, s, len))
            return id;
    }
}

int tr_tok_impl_build_vocab_map(tr_tokenizer_t *self) {
    tr_tok_strmap_t *m = &self->vocab_map;
    free(m->hashes);
    free(m->ids);
    m->cap = s_pow2_at_least((size_t)self->n_vocab * 2 + 1);
    m->hashes = malloc(m->cap * sizeof *m->hashes);
    m->ids = malloc(m->cap * sizeof *m->ids);
    if (!m->hashes || !m->ids) return TR_ENOMEM;
    memset(m->ids, 0xff, m->cap * sizeof *m->ids);
    size_t mask = m->cap - 1;
    for (int32_t id = 0; id < self->n_vocab; id++) {
        const tr_tok_piece_t *p = &self->pieces[id];
        if (!p->text) continue;
        uint32_t h = (uint32_t)s_hash(p->text, p->len);
        size_t i = h & mask;
        for (;; i = (i + 1) & mask) {
            int32_t o = m->ids[i];
            if (o < 0) {
                m->ids[i] = id;
                m->hashes[i] = h;
                break;
            }
            if (m->hashes[i] == h && self->pieces[o].len == p->len &&
                !memcmp(self->pieces[o].text, p->text, p->len)) {
                if (self->map_last_wins) m->ids[i] = id; /* else the first id keeps it */
                break;
            }
        }
    }
    return TR_OK;
}

int32_t tr_tok_impl_lookup(const tr_tokenizer_t *self, const char *s, size_t len) {
    return s_map_find(&self->vocab_map, self->pieces, s, len, (uint32_t)s_hash(s, len));
}

/* ---- merge map ---- */

int tr_tok_impl_reserve_merges(tr_tokenizer_t *self, size_t n) {
    tr_tok_mergemap_t *m = &self->merges;
    free(m->keys);
    free(m->rank);
    free(m->merged);
    m->cap = s_pow2_at_least(n * 2 + 1);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = malloc(m->cap * sizeof *m->rank);
    m->merged = malloc(m->cap * sizeof *m->merged);
    return m->keys && m->rank && m->merged ? TR_OK : TR_ENOMEM;
}

static inline bool s_merge_find(const tr_tok_mergemap_t *m, int32_t a, int32_t b, int32_t *rank,
                                int32_t *merged) {
    if (!m->cap) return false;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = m->cap - 1, i = s_mix64(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (m->keys[i] == key) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return true;
        }
        if (!m->keys[i]) return false;
    }
}

int tr_tok_impl_add_merge(tr_tokenizer_t *self, int32_t a, int32_t b, int32_t rank) {
    if (a < 0 || b < 0 || a >= self->n_vocab || b >= self->n_vocab) return TR_ENOENT;
    const tr_tok_piece_t *pa = &self->pieces[a], *pb = &self->pieces[b];
    char stack[512];
    size_t n = (size_t)pa->len + pb->len;
    char *cat = n <= sizeof stack ? stack : malloc(n);
    if (!cat) return TR_ENOMEM;
    memcpy(cat, pa->text, pa->len);
    memcpy(cat + pa->len, pb->text, pb->len);
    int32_t merged = tr_tok_impl_lookup(self, cat, n);
    if (cat != stack) free(cat);
    if (merged < 0) return TR_ENOENT;
    tr_tok_mergemap_t *m = &self->merges;
    if (!m->cap) return TR_EINVAL; /* reserve first */
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = m->cap - 1, i = s_mix64(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (m->keys[i] == key) return TR_OK; /* duplicate merge: the first (best) rank stays */
        if (!m->keys[i]) break;
    }
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
    return TR_OK;
}

/* ---- 64-bit set ---- */

static bool s_set_has(const tr_tok_set64_t *s, uint64_t key) {
    if (!s->cap) return false;
    size_t mask = s->cap - 1, i = s_mix64(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (s->keys[i] == key) return true;
        if (!s->keys[i]) return false;
    }
}

static int s_set_add(tr_tok_set64_t *s, uint64_t key) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        uint64_t *k = calloc(cap, sizeof *k);
        if (!k) return TR_ENOMEM;
        for (size_t i = 0; i < s->cap; i++) {
            if (!s->keys[i]) continue;
            size_t j = s_mix64(s->keys[i]) & (cap - 1);
            while (k[j])
                j = (j + 1) & (cap - 1);
            k[j] = s->keys[i];
        }
        free(s->keys);
        s->keys = k;
        s->cap = cap;
    }
    size_t mask = s->cap - 1, i = s_mix64(key) & mask;
    for (;; i = (i + 1) & mask) {
        if (s->keys[i] == key) return TR_OK;
        if (!s->keys[i]) break;
    }
    s->keys[i] = key;
    s->n++;
    return TR_OK;
}

static uint64_t s_pair_key(uint32_t a, uint32_t b) {
    return ((uint64_t)a << 32 | b) + 1;
}

/* ---- finish ---- */

/* Parses "<0xNN>" into the byte; -1 otherwise. */
static int s_byte_token(const char *t, size_t len) {
    if (len != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int tr_tok_impl_finish(tr_tokenizer_t *self, char *err, size_t err_size) {
    int rc;
    if (!self->vocab_map.cap && (rc = tr_tok_impl_build_vocab_map(self)))
        return tr_tok_impl_fail(err, err_size, rc, "out of memory");
    /* byte-fallback tokens, byte-level chars, ASCII chars */
    for (int b = 0; b < 256; b++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        self->byte_ids[b] = tr_tok_impl_lookup(self, t, 6);
        int n = tr_tok_impl_utf8_put(tr_tok_impl_byte_to_cp((uint8_t)b), t);
        self->bl_ids[b] = tr_tok_impl_lookup(self, t, (size_t)n);
        if (b < 128) {
            t[0] = (char)b;
            self->ascii_ids[b] = tr_tok_impl_lookup(self, t, 1);
        }
    }
    for (int32_t id = 0; id < self->n_vocab; id++) {
        tr_tok_piece_t *p = &self->pieces[id];
        if (p->text && s_byte_token(p->text, p->len) >= 0 && !(p->attr & ~TR_TOK_ATTR_NORMAL))
            p->attr = TR_TOK_ATTR_BYTE;
    }
    /* Added tokens: first-byte bitsets of both sets. */
    memset(self->added_first_raw, 0, sizeof self->added_first_raw);
    memset(self->added_first_norm, 0, sizeof self->added_first_norm);
    for (int i = 0; i < self->n_added; i++) {
        uint8_t c = (uint8_t)self->added[i].text[0];
        uint8_t *set = self->added[i].normalized ? self->added_first_norm : self->added_first_raw;
        set[c >> 3] |= (uint8_t)(1u << (c & 7));
    }
    /* ... and buckets by first byte, longest first, so a match is found by one short scan */
    free(self->added_order);
    self->added_order = malloc((size_t)(self->n_added ? self->n_added : 1) * sizeof(int32_t));
    if (!self->added_order) return tr_tok_impl_fail(err, err_size, TR_ENOMEM, "out of memory");
    memset(self->added_bucket, 0, sizeof self->added_bucket);
    for (int i = 0; i < self->n_added; i++)
        self->added_bucket[(uint8_t)self->added[i].text[0] + 1]++;
    for (int b = 0; b < 256; b++)
        self->added_bucket[b + 1] += self->added_bucket[b];
    int32_t fill[256];
    memcpy(fill, self->added_bucket, sizeof fill);
    for (int i = 0; i < self->n_added; i++) {
        uint8_t c = (uint8_t)self->added[i].text[0];
        int32_t j = fill[c]++;
        while (j > self->added_bucket[c] &&
               self->added[self->added_order[j - 1]].len < self->added[i].len) {
            self->added_order[j] = self->added_order[j - 1]; /* insertion: longest first, stable */
            j--;
        }
        self->added_order[j] = i;
    }
    /* Split guard: without a pre-tokenizer, a SentencePiece-style model sees the whole text as
     * one word. A merge only ever produces a vocabulary token, and a vocabulary token's text is
     * a substring of the word, so no symbol can span a boundary between two code points that
     * never stand side by side inside a vocabulary token: the word can be cut there and the
     * parts encoded independently (and cached) with the same result. Byte-fallback and unk
     * symbols have texts that are not substrings, so the guard is off when a merge uses one. */
    self->can_split_words = self->n_pre == 0 && !self->bytelevel;
    if (self->can_split_words && self->merges.cap) {
        for (size_t i = 0; i < self->merges.cap && self->can_split_words; i++) {
            uint64_t k = self->merges.keys[i];
            if (!k) continue;
            k -= 1;
            int32_t a = (int32_t)(k >> 32), b = (int32_t)(uint32_t)k;
            if ((self->pieces[a].attr & (TR_TOK_ATTR_BYTE | TR_TOK_ATTR_UNKNOWN)) ||
                (self->pieces[b].attr & (TR_TOK_ATTR_BYTE | TR_TOK_ATTR_UNKNOWN)) ||
                a == self->unk || b == self->unk)
                self->can_split_words = false;
        }
    }
    if (self->can_split_words) {
        for (int32_t id = 0; id < self->n_vocab; id++) {
            const tr_tok_piece_t *p = &self->pieces[id];
            if (!p->text || p->len < 2) continue;
            uint32_t prev = 0, cp;
            bool have = false;
            for (size_t o = 0; o < p->len;) {
                o += (size_t)tr_tok_impl_utf8_get(p->text + o, p->len - o, &cp);
                if (have && s_set_add(&self->adjacent, s_pair_key(prev, cp)))
                    return tr_tok_impl_fail(err, err_size, TR_ENOMEM, "out of memory");
                if (have && prev < 128 && cp < 128) {
                    uint32_t bit = prev * 128 + cp;
                    self->adjacent_ascii[bit >> 3] |= (uint8_t)(1u << (bit & 7));
                }
                prev = cp;
                have = true;
            }
        }
    }
    self->md = pcre2_match_data_create(8, NULL);
    if (!self->md) return tr_tok_impl_fail(err, err_size, TR_ENOMEM, "out of memory");
    return TR_OK;
}

/* ---- destroy ---- */

void tr_tokenizer_destroy(tr_tokenizer_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_tokenizer_t *self = *self_p;
    for (size_t i = 0; i < self->n_arena_blocks; i++)
        free(self->arena_blocks[i]);
    free(self->arena_blocks);
    free(self->pieces);
    free(self->vocab_map.hashes);
    free(self->vocab_map.ids);
    free(self->added);
    free(self->added_order);
    free(self->norm);
    for (int i = 0; i < self->n_pre; i++)
        pcre2_code_free(self->pre[i].re);
    free(self->pre);
    free(self->merges.keys);
    free(self->merges.rank);
    free(self->merges.merged);
    free(self->adjacent.keys);
    free(self->cache.hashes);
    free(self->cache.off);
    free(self->cache.word_len);
    free(self->cache.n_ids);
    free(self->cache.bytes);
    free(self->scratch_sym);
    free(self->scratch_heap);
    for (int i = 0; i < 3; i++)
        free(self->scratch_buf[i]);
    if (self->md) pcre2_match_data_free(self->md);
    memset(self, 0x5a, sizeof *self);
    free(self);
    *self_p = NULL;
}

/* ---- getters ---- */

int32_t tr_tokenizer_n_vocab(const tr_tokenizer_t *self) {
    return self->n_vocab;
}
int32_t tr_tokenizer_bos(const tr_tokenizer_t *self) {
    return self->bos;
}
int32_t tr_tokenizer_eos(const tr_tokenizer_t *self) {
    return self->eos;
}
int32_t tr_tokenizer_unk(const tr_tokenizer_t *self) {
    return self->unk;
}
int32_t tr_tokenizer_pad(const tr_tokenizer_t *self) {
    return self->pad;
}
const char *tr_tokenizer_kind(const tr_tokenizer_t *self) {
    return self->kind;
}

bool tr_tokenizer_adds_bos(const tr_tokenizer_t *self) {
    return self->bos >= 0 && self->n_prefix > 0 && self->prefix_ids[0] == self->bos;
}

bool tr_tokenizer_adds_eos(const tr_tokenizer_t *self) {
    return self->eos >= 0 && self->n_suffix > 0 &&
           self->suffix_ids[self->n_suffix - 1] == self->eos;
}

const char *tr_tokenizer_token_text(const tr_tokenizer_t *self, int32_t id, size_t *len) {
    if (id < 0 || id >= self->n_vocab || !self->pieces[id].text) return NULL;
    if (len) *len = self->pieces[id].len;
    return self->pieces[id].text;
}

int32_t tr_tokenizer_token_id(const tr_tokenizer_t *self, const char *text, size_t len) {
    return tr_tok_impl_lookup(self, text, len);
}

unsigned tr_tokenizer_token_attr(const tr_tokenizer_t *self, int32_t id) {
    if (id < 0 || id >= self->n_vocab) return 0;
    return self->pieces[id].attr;
}

/* ====================================================================================== */
/* ---- encode ---- */

/* A span of text: a piece of a segment, or an added token (id >= 0). */
typedef struct {
    uint32_t off, len;
    int32_t id;
    bool first; /* starts at offset 0 of the input (Metaspace prepend_scheme "first") */
} s_span_t;

typedef struct {
    s_span_t *v;
    size_t n, cap;
} s_spans_t;

static int s_spans_push(s_spans_t *s, size_t off, size_t len, int32_t id, bool first) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        s_span_t *p = realloc(s->v, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = (s_span_t){(uint32_t)off, (uint32_t)len, id, first};
    return TR_OK;
}

/* Length of whitespace at the end of s[0..n) / at the start. */
static size_t s_space_tail(const char *s, size_t n, bool ascii) {
    size_t i = n;
    while (i > 0) {
        size_t j = i - 1;
        while (j > 0 && ((uint8_t)s[j] & 0xc0) == 0x80)
            j--;
        uint32_t cp;
        tr_tok_impl_utf8_get(s + j, i - j, &cp);
        if (ascii ? !(cp < 0x80 && (cp == ' ' || (cp >= 9 && cp <= 13))) : !s_is_space_cp(cp))
            break;
        i = j;
    }
    return n - i;
}

static size_t s_space_head(const char *s, size_t n, bool ascii) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = tr_tok_impl_utf8_get(s + i, n - i, &cp);
        if (ascii ? !(cp < 0x80 && (cp == ' ' || (cp >= 9 && cp <= 13))) : !s_is_space_cp(cp))
            break;
        i += (size_t)l;
    }
    return i;
}

/* Splits s[0..n) by the added tokens of one set (leftmost-longest), appending spans with
 * offsets relative to s (plus base). */
static int s_split_added(const tr_tokenizer_t *self, const char *s, size_t n, bool normalized,
                         unsigned flags, bool first, s_spans_t *out) {
    const uint8_t *firsts = normalized ? self->added_first_norm : self->added_first_raw;
    bool any = false;
    for (int i = 0; i < 32 && !any; i++)
        any = firsts[i] != 0;
    size_t start = 0; /* start of the pending text */
    if (any) {
        for (size_t pos = 0; pos < n;) {
            uint8_t c = (uint8_t)s[pos];
            if (!(firsts[c >> 3] & (1u << (c & 7)))) {
                pos++;
                continue;
            }
            const tr_tok_added_t *best = NULL; /* the bucket is longest first */
            for (int32_t j = self->added_bucket[c]; j < self->added_bucket[c + 1] && !best; j++) {
                const tr_tok_added_t *a = &self->added[self->added_order[j]];
                if (a->normalized != normalized) continue;
                if (a->special && !(flags & TR_TOK_PARSE_SPECIAL)) continue;
                if (a->len <= n - pos && !memcmp(s + pos, a->text, a->len)) best = a;
            }
            if (!best) {
                pos++;
                continue;
            }
            size_t ts = pos, te = pos + best->len;
            if (best->lstrip) ts -= s_space_tail(s + start, pos - start, self->added_ascii_strip);
            if (best->rstrip) te += s_space_head(s + te, n - te, self->added_ascii_strip);
            if (ts > start && s_spans_push(out, start, ts - start, -1, first && start == 0))
                return TR_ENOMEM;
            if (s_spans_push(out, ts, te - ts, best->id, false)) return TR_ENOMEM;
            start = pos = te;
        }
    }
    if (n > start && s_spans_push(out, start, n - start, -1, first && start == 0)) return TR_ENOMEM;
    return TR_OK;
}

/* ---- Unicode normalization (UAX #15) over the generated tables ---- */

extern const uint32_t tr_tok_ccc[];
extern const size_t tr_tok_n_ccc;
extern const uint32_t tr_tok_canon_index[][3], tr_tok_canon_pool[];
extern const size_t tr_tok_n_canon;
extern const uint32_t tr_tok_compat_index[][3], tr_tok_compat_pool[];
extern const size_t tr_tok_n_compat;
extern const uint64_t tr_tok_comp_key[];
extern const uint32_t tr_tok_comp_val[];
extern const size_t tr_tok_n_comp;

enum {
    s_SBASE = 0xac00,
    s_LBASE = 0x1100,
    s_VBASE = 0x1161,
    s_TBASE = 0x11a7,
    s_LCOUNT = 19,
    s_VCOUNT = 21,
    s_TCOUNT = 28,
    s_SCOUNT = 19 * 21 * 28
};

static int s_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = tr_tok_n_ccc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        uint32_t c = tr_tok_ccc[mid] >> 8;
        if (c == cp) return (int)(tr_tok_ccc[mid] & 0xff);
        if (c < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static const uint32_t *s_decomp(uint32_t cp, bool compat, uint32_t *len) {
    const uint32_t(*idx)[3] = compat ? tr_tok_compat_index : tr_tok_canon_index;
    size_t lo = 0, hi = compat ? tr_tok_n_compat : tr_tok_n_canon;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (idx[mid][0] == cp) {
            *len = idx[mid][2];
            return (compat ? tr_tok_compat_pool : tr_tok_canon_pool) + idx[mid][1];
        }
        if (idx[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static uint32_t s_compose(uint32_t a, uint32_t b) {
    if (a >= s_LBASE && a < s_LBASE + s_LCOUNT && b >= s_VBASE && b < s_VBASE + s_VCOUNT)
        return s_SBASE + ((a - s_LBASE) * s_VCOUNT + (b - s_VBASE)) * s_TCOUNT;
    if (a >= s_SBASE && a < s_SBASE + s_SCOUNT && (a - s_SBASE) % s_TCOUNT == 0 && b > s_TBASE &&
        b < s_TBASE + s_TCOUNT)
        return a + (b - s_TBASE);
    uint64_t key = ((uint64_t)a << 32) | b;
    size_t lo = 0, hi = tr_tok_n_comp;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tr_tok_comp_key[mid] == key) return tr_tok_comp_val[mid];
        if (tr_tok_comp_key[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} s_cps_t;

static int s_cps_push(s_cps_t *c, uint32_t cp) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint32_t *p = realloc(c->v, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        c->v = p;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return TR_OK;
}

/* Normalizes b in place to NFC/NFD/NFKC/NFKD. */
static int s_unicode_normalize(s_buf_t *b, tr_tok_norm_kind_t form) {
    bool ascii = true;
    for (size_t i = 0; i < b->len && ascii; i++)
        ascii = (uint8_t)b->p[i] < 0x80;
    if (ascii) return TR_OK; /* ASCII is invariant under every form */
    bool compat = form == TR_TOK_NORM_NFKC || form == TR_TOK_NORM_NFKD;
    bool compose = form == TR_TOK_NORM_NFC || form == TR_TOK_NORM_NFKC;
    s_cps_t c = {0};
    int rc = TR_ENOMEM;
    for (size_t i = 0; i < b->len;) { /* decompose */
        uint32_t cp;
        i += (size_t)tr_tok_impl_utf8_get(b->p + i, b->len - i, &cp);
        uint32_t len;
        const uint32_t *d;
        if (cp >= s_SBASE && cp < s_SBASE + s_SCOUNT) {
            uint32_t si = cp - s_SBASE;
            if (s_cps_push(&c, s_LBASE + si / (s_VCOUNT * s_TCOUNT)) ||
                s_cps_push(&c, s_VBASE + (si % (s_VCOUNT * s_TCOUNT)) / s_TCOUNT) ||
                (si % s_TCOUNT && s_cps_push(&c, s_TBASE + si % s_TCOUNT)))
                goto done;
        } else if (cp >= 0xa0 && (d = s_decomp(cp, compat, &len))) {
            for (uint32_t k = 0; k < len; k++)
                if (s_cps_push(&c, d[k])) goto done;
        } else if (s_cps_push(&c, cp)) {
            goto done;
        }
    }
    for (size_t i = 1; i < c.n; i++) { /* canonical ordering: stable by ccc among marks */
        int k = s_ccc(c.v[i]);
        if (!k) continue;
        size_t j = i;
        uint32_t x = c.v[i];
        while (j > 0 && s_ccc(c.v[j - 1]) > k) {
            c.v[j] = c.v[j - 1];
            j--;
        }
        c.v[j] = x;
    }
    if (compose && c.n) { /* canonical composition (UAX #15 sample algorithm) */
        size_t starter = 0, out = 1;
        int last = s_ccc(c.v[0]) ? 256 : 0;
        for (size_t i = 1; i < c.n; i++) {
            uint32_t ch = c.v[i];
            int k = s_ccc(ch);
            uint32_t comp = s_compose(c.v[starter], ch);
            if (comp && (last < k || last == 0)) {
                c.v[starter] = comp;
            } else {
                if (!k) starter = out;
                last = k;
                c.v[out++] = ch;
            }
        }
        c.n = out;
    }
    b->len = 0;
    for (size_t i = 0; i < c.n; i++) {
        char t[4];
        if (s_buf_put(b, t, (size_t)tr_tok_impl_utf8_put(c.v[i], t))) goto done;
    }
    rc = TR_OK;
done:
    free(c.v);
    return rc;
}

/* Applies the normalizer to s[0..n) into b (b->len = 0 first). */
static int s_normalize(const tr_tokenizer_t *self, const char *s, size_t n, s_buf_t *b) {
    b->len = 0;
    if (s_buf_put(b, s, n)) return TR_ENOMEM;
    s_buf_t t = {0};
    for (int k = 0; k < self->n_norm; k++) {
        const tr_tok_norm_t *st = &self->norm[k];
        switch (st->kind) {
        case TR_TOK_NORM_PREPEND:
            if (!b->len) break;
            if (s_buf_reserve(b, st->a_len)) goto nomem;
            memmove(b->p + st->a_len, b->p, b->len);
            memcpy(b->p, st->a, st->a_len);
            b->len += st->a_len;
            break;
        case TR_TOK_NORM_REPLACE: {
            if (!st->a_len) break;
            t.len = 0;
            size_t i = 0;
            while (i < b->len) {
                const char *hit = memmem(b->p + i, b->len - i, st->a, st->a_len);
                size_t upto = hit ? (size_t)(hit - b->p) : b->len;
                if (s_buf_put(&t, b->p + i, upto - i)) goto nomem;
                if (!hit) break;
                if (s_buf_put(&t, st->b, st->b_len)) goto nomem;
                i = upto + st->a_len;
            }
            char *swap = b->p; /* swap buffers instead of copying back */
            size_t cap = b->cap;
            b->p = t.p;
            b->len = t.len;
            b->cap = t.cap;
            t.p = swap;
            t.cap = cap;
            t.len = 0;
            break;
        }
        case TR_TOK_NORM_STRIP: {
            size_t head = st->left ? s_space_head(b->p, b->len, false) : 0;
            size_t tail = st->right ? s_space_tail(b->p + head, b->len - head, false) : 0;
            memmove(b->p, b->p + head, b->len - head - tail);
            b->len -= head + tail;
            break;
        }
        case TR_TOK_NORM_NFC:
        case TR_TOK_NORM_NFD:
        case TR_TOK_NORM_NFKC:
        case TR_TOK_NORM_NFKD:
            if (s_unicode_normalize(b, st->kind)) goto nomem;
            break;
        }
    }
    free(t.p);
    return TR_OK;
nomem:
    free(t.p);
    return TR_ENOMEM;
}

int tr_tok_impl_normalize(const tr_tokenizer_t *self, const char *s, size_t n, char **out,
                          size_t *out_len) {
    s_buf_t b = {0};
    int rc = s_normalize(self, s, n, &b);
    if (!rc && s_buf_reserve(&b, 1)) rc = TR_ENOMEM;
    if (rc) {
        free(b.p);
        return rc;
    }
    b.p[b.len] = '\0';
    *out = b.p;
    *out_len = b.len;
    return TR_OK;
}

/* ---- pre-tokenization ---- */

/* Pieces of pre-tokenized text: spans into buf. */
typedef struct {
    s_buf_t buf;
    s_spans_t sp;
} s_pieces_t;

/* Match spans of one step over one piece: (start, end, is_match). */
typedef struct {
    size_t s, e;
    bool m;
} s_mspan_t;

typedef struct {
    s_mspan_t *v;
    size_t n, cap;
} s_mspans_t;

static int s_mspans_push(s_mspans_t *m, size_t s, size_t e, bool is_match) {
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        s_mspan_t *p = realloc(m->v, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        m->v = p;
        m->cap = cap;
    }
    m->v[m->n++] = (s_mspan_t){s, e, is_match};
    return TR_OK;
}

/* HF Pattern::find_matches: every byte of s in exactly one span, matches flagged. */
static int s_find_matches(const tr_tokenizer_t *self, const tr_tok_pre_t *st, const char *s,
                          size_t n, s_mspans_t *m) {
    m->n = 0;
    if (!n) return TR_OK;
    size_t prev = 0;
    if (st->re) {
        size_t pos = 0;
        while (pos <= n) {
            int rc = pcre2_jit_match(st->re, (PCRE2_SPTR)s, n, pos, 0, self->md, NULL);
            if (rc == PCRE2_ERROR_JIT_BADOPTION)
                rc = pcre2_match(st->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, self->md, NULL);
            if (rc < 0) break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(self->md);
            size_t ms = ov[0], me = ov[1];
            if (ms > prev && s_mspans_push(m, prev, ms, false)) return TR_ENOMEM;
            if (s_mspans_push(m, ms, me, true)) return TR_ENOMEM;
            prev = me;
            if (me == ms) { /* empty match: step one character */
                if (me >= n) break;
                pos = me + (size_t)s_utf8_len((uint8_t)s[me]);
            } else {
                pos = me;
            }
        }
    } else if (st->literal_len) {
        for (size_t pos = 0; pos + st->literal_len <= n;) {
            const char *hit = memmem(s + pos, n - pos, st->literal, st->literal_len);
            if (!hit) break;
            size_t ms = (size_t)(hit - s), me = ms + st->literal_len;
            if (ms > prev && s_mspans_push(m, prev, ms, false)) return TR_ENOMEM;
            if (s_mspans_push(m, ms, me, true)) return TR_ENOMEM;
            prev = pos = me;
        }
    }
    if (prev < n && s_mspans_push(m, prev, n, false)) return TR_ENOMEM;
    return TR_OK;
}

/* HF NormalizedString::split with a behaviour: spans (in place) -> kept spans. */
static size_t s_apply_behavior(s_mspan_t *v, size_t n, tr_tok_split_behavior_t b, bool invert) {
    if (invert)
        for (size_t i = 0; i < n; i++)
            v[i].m = !v[i].m;
    size_t o = 0;
    bool prev_match = false;
    switch (b) {
    case TR_TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            v[o++] = (s_mspan_t){v[i].s, v[i].e, false};
        break;
    case TR_TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!v[i].m) v[o++] = v[i];
        break;
    case TR_TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            bool m = v[i].m; /* read before v[o] (o <= i) is overwritten */
            if (m == prev_match && o > 0)
                v[o - 1].e = v[i].e;
            else
                v[o++] = (s_mspan_t){v[i].s, v[i].e, false};
            prev_match = m;
        }
        break;
    case TR_TOK_SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < n; i++) {
            bool m = v[i].m;
            if (m && !prev_match && o > 0)
                v[o - 1].e = v[i].e;
            else
                v[o++] = (s_mspan_t){v[i].s, v[i].e, false};
            prev_match = m;
        }
        break;
    case TR_TOK_SPLIT_MERGED_WITH_NEXT: {
        /* right to left, then reverse */
        size_t k = n;
        for (size_t i = n; i-- > 0;) {
            bool m = v[i].m; /* read before v[k - 1] (k - 1 >= i) is overwritten */
            if (m && !prev_match && k < n)
                v[k].s = v[i].s;
            else
                v[--k] = (s_mspan_t){v[i].s, v[i].e, false};
            prev_match = m;
        }
        for (size_t i = k; i < n; i++)
            v[o++] = v[i];
        break;
    }
    }
    return o;
}

/* Runs one pre-tokenizer step: in -> out. */
static int s_pre_step(const tr_tokenizer_t *self, const tr_tok_pre_t *st, const s_pieces_t *in,
                      s_pieces_t *out, s_mspans_t *m, s_buf_t *tmp) {
    out->buf.len = 0;
    out->sp.n = 0;
    for (size_t k = 0; k < in->sp.n; k++) {
        const s_span_t *pc = &in->sp.v[k];
        const char *s = in->buf.p + pc->off;
        size_t n = pc->len;
        tmp->len = 0;
        tr_tok_pre_t split = *st; /* what to split with after the step's own rewriting */
        split.behavior = TR_TOK_SPLIT_ISOLATED;
        split.invert = false;
        if (st->kind == TR_TOK_PRE_BYTELEVEL) {
            if (st->add_prefix_space && (n == 0 || s[0] != ' ') && s_buf_put(tmp, " ", 1))
                return TR_ENOMEM;
            if (s_buf_put(tmp, s, n)) return TR_ENOMEM;
            s = tmp->p;
            n = tmp->len;
            split.literal_len = 0;
        } else if (st->kind == TR_TOK_PRE_METASPACE) {
            const char *r = st->replacement;
            size_t rl = st->replacement_len;
            bool starts = false;
            /* replace ' ' by the replacement */
            for (size_t i = 0; i < n; i++) {
                if (s[i] == ' ') {
                    if (s_buf_put(tmp, r, rl)) return TR_ENOMEM;
                } else if (s_buf_put(tmp, s + i, 1)) {
                    return TR_ENOMEM;
                }
            }
            starts = tmp->len >= rl && !memcmp(tmp->p, r, rl);
            bool prepend = st->prepend == TR_TOK_PREPEND_ALWAYS ||
                           (st->prepend == TR_TOK_PREPEND_FIRST && pc->first);
            if (prepend && !starts) {
                if (s_buf_reserve(tmp, rl)) return TR_ENOMEM;
                memmove(tmp->p + rl, tmp->p, tmp->len);
                memcpy(tmp->p, r, rl);
                tmp->len += rl;
            }
            s = tmp->p;
            n = tmp->len;
            split.re = NULL;
            split.literal = st->split ? (char *)r : NULL;
            split.literal_len = st->split ? (uint32_t)rl : 0;
            split.behavior = TR_TOK_SPLIT_MERGED_WITH_NEXT;
        } else {
            split.behavior = st->behavior;
            split.invert = st->invert;
        }
        if (!split.re && !split.literal_len) { /* no split: the piece as it is */
            if (n) {
                if (s_spans_push(&out->sp, out->buf.len, n, -1, pc->first)) return TR_ENOMEM;
                if (s_buf_put(&out->buf, s, n)) return TR_ENOMEM;
            }
            continue;
        }
        if (s_find_matches(self, &split, s, n, m)) return TR_ENOMEM;
        size_t kept = s_apply_behavior(m->v, m->n, split.behavior, split.invert);
        for (size_t i = 0; i < kept; i++) {
            size_t len = m->v[i].e - m->v[i].s;
            if (!len) continue;
            if (s_spans_push(&out->sp, out->buf.len, len, -1, pc->first && m->v[i].s == 0))
                return TR_ENOMEM;
            if (s_buf_put(&out->buf, s + m->v[i].s, len)) return TR_ENOMEM;
        }
    }
    return TR_OK;
}

/* ---- engines ---- */

typedef struct {
    int32_t id; /* token id; -1: not resolved yet (SPM chars) */
    int32_t prev, next;
    uint32_t start, len; /* bytes of the word */
    bool fixed;          /* byte-fallback symbol that never merges (llama2.c) */
} s_sym_t;

typedef struct {
    uint64_t key; /* priority: smaller first */
    int32_t left, right;
    int32_t merged;
    uint32_t size; /* SPM: combined length when queued */
} s_cand_t;

typedef struct {
    s_cand_t *v;
    size_t n, cap;
} s_heap_t;

static int s_heap_push(s_heap_t *h, s_cand_t c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        s_cand_t *p = realloc(h->v, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        h->v = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent].key <= c.key) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = c;
    return TR_OK;
}

static s_cand_t s_heap_pop(s_heap_t *h) {
    s_cand_t top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key) c++;
        if (h->v[c].key >= last.key) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Float order -> unsigned order. */
static uint32_t s_float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

typedef struct {
    s_sym_t *sym;
    size_t n, cap;
    s_heap_t heap;
} s_work_t;

static int s_sym_push(s_work_t *w, int32_t id, uint32_t start, uint32_t len, bool fixed) {
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        s_sym_t *p = realloc(w->sym, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        w->sym = p;
        w->cap = cap;
    }
    int32_t i = (int32_t)w->n;
    w->sym[w->n++] = (s_sym_t){id, i - 1, i + 1, start, len, fixed};
    return TR_OK;
}

static int s_rank_pair(const tr_tokenizer_t *self, s_work_t *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || (size_t)r >= w->n) return TR_OK;
    int32_t rank, merged;
    if (w->sym[l].id < 0 || w->sym[r].id < 0) return TR_OK;
    if (!s_merge_find(&self->merges, w->sym[l].id, w->sym[r].id, &rank, &merged)) return TR_OK;
    s_cand_t c = {((uint64_t)(uint32_t)rank << 32) | (uint32_t)l, l, r, merged, 0};
    return s_heap_push(&w->heap, c);
}

/* BPE by rank over w->sym (already filled with ids); appends the result to out. */
static int s_bpe_rank(const tr_tokenizer_t *self, s_work_t *w, tr_tok_ids_t *out) {
    if (w->n) w->sym[w->n - 1].next = -1;
    w->heap.n = 0;
    for (size_t i = 0; i + 1 < w->n; i++)
        if (s_rank_pair(self, w, (int32_t)i, (int32_t)i + 1)) return TR_ENOMEM;
    while (w->heap.n) {
        s_cand_t c = s_heap_pop(&w->heap);
        s_sym_t *L = &w->sym[c.left];
        if (!L->len || L->next != c.right) continue;
        s_sym_t *R = &w->sym[c.right];
        int32_t rank, merged;
        if (!s_merge_find(&self->merges, L->id, R->id, &rank, &merged) || merged != c.merged)
            continue; /* stale */
        L->id = merged;
        L->len += R->len;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = c.left;
        if (s_rank_pair(self, w, L->prev, c.left) || s_rank_pair(self, w, c.left, L->next))
            return TR_ENOMEM;
    }
    for (int32_t i = w->n ? 0 : -1; i >= 0; i = w->sym[i].next)
        if (w->sym[i].id >= 0 && s_ids_push(out, w->sym[i].id)) return TR_ENOMEM;
    return TR_OK;
}

static int s_spm_pair(const tr_tokenizer_t *self, s_work_t *w, const char *word, int32_t l,
                      int32_t r) {
    if (l < 0 || r < 0) return TR_OK;
    const s_sym_t *L = &w->sym[l], *R = &w->sym[r];
    if (L->fixed || R->fixed) return TR_OK;
    uint32_t size = L->len + R->len;
    int32_t id = tr_tok_impl_lookup(self, word + L->start, size);
    if (id < 0) return TR_OK;
    float score = self->pieces[id].score;
    if (!(score > self->spm_min_score)) return TR_OK;
    /* highest score first, then leftmost: key = (order of -score, left) */
    s_cand_t c = {((uint64_t)s_float_key(-score) << 32) | (uint32_t)l, l, r, id, size};
    return s_heap_push(&w->heap, c);
}

/* SentencePiece greedy merge by score (llama.cpp llm_tokenizer_spm, llama2.c encode). */
static int s_spm_score(const tr_tokenizer_t *self, const char *word, size_t n, tr_tok_ids_t *out,
                       s_work_t *w) {
    w->n = 0;
    for (size_t o = 0; o < n;) {
        size_t cl = (size_t)s_utf8_len((uint8_t)word[o]);
        if (cl > n - o) cl = n - o;
        if (self->spm_bytes_early && tr_tok_impl_lookup(self, word + o, cl) < 0) {
            for (size_t k = 0; k < cl; k++) {
                int32_t b = self->byte_ids[(uint8_t)word[o + k]];
                if (s_sym_push(w, b >= 0 ? b : self->unk, (uint32_t)(o + k), 1, true))
                    return TR_ENOMEM;
            }
        } else if (s_sym_push(w, -1, (uint32_t)o, (uint32_t)cl, false)) {
            return TR_ENOMEM;
        }
        o += cl;
    }
    if (!w->n) return TR_OK;
    w->sym[w->n - 1].next = -1;
    w->heap.n = 0;
    for (size_t i = 0; i + 1 < w->n; i++)
        if (s_spm_pair(self, w, word, (int32_t)i, (int32_t)i + 1)) return TR_ENOMEM;
    while (w->heap.n) {
        s_cand_t c = s_heap_pop(&w->heap);
        s_sym_t *L = &w->sym[c.left], *R = &w->sym[c.right];
        if (!L->len || !R->len || L->next != c.right || L->len + R->len != c.size) continue;
        L->len += R->len;
        L->id = c.merged;
        R->len = 0;
        L->next = R->next;
        if (R->next >= 0) w->sym[R->next].prev = c.left;
        if (s_spm_pair(self, w, word, L->prev, c.left) ||
            s_spm_pair(self, w, word, c.left, L->next))
            return TR_ENOMEM;
    }
    for (int32_t i = 0; i >= 0; i = w->sym[i].next) {
        const s_sym_t *S = &w->sym[i];
        int32_t id = S->fixed ? S->id : tr_tok_impl_lookup(self, word + S->start, S->len);
        if (id >= 0) {
            if (s_ids_push(out, id)) return TR_ENOMEM;
            continue;
        }
        for (uint32_t k = 0; k < S->len; k++) { /* no token: bytes */
            int32_t b = self->byte_ids[(uint8_t)word[S->start + k]];
            if (b < 0) b = self->unk;
            if (b >= 0 && s_ids_push(out, b)) return TR_ENOMEM;
        }
    }
    return TR_OK;
}

/* HF BPE::merge_word: symbols from chars (or bytes for byte-level), byte fallback, unk. */
static int s_bpe_word(const tr_tokenizer_t *self, const char *word, size_t n, tr_tok_ids_t *out,
                      s_work_t *w, s_buf_t *mapped) {
    w->n = 0;
    if (self->ignore_merges) {
        const char *key = word;
        size_t klen = n;
        if (self->bytelevel) {
            mapped->len = 0;
            for (size_t i = 0; i < n; i++) {
                char t[4];
                int l = tr_tok_impl_utf8_put(tr_tok_impl_byte_to_cp((uint8_t)word[i]), t);
                if (s_buf_put(mapped, t, (size_t)l)) return TR_ENOMEM;
            }
            key = mapped->p;
            klen = mapped->len;
        }
        int32_t id = tr_tok_impl_lookup(self, key, klen);
        if (id >= 0) return s_ids_push(out, id);
    }
    int32_t unk_pending = -1; /* fused unk */
    for (size_t o = 0; o < n;) {
        size_t cl;
        int32_t id;
        if (self->bytelevel) {
            cl = 1;
            id = self->bl_ids[(uint8_t)word[o]];
        } else {
            cl = (size_t)s_utf8_len((uint8_t)word[o]);
            if (cl > n - o) cl = n - o;
            uint8_t c0 = (uint8_t)word[o];
            id = cl == 1 && c0 < 128 ? self->ascii_ids[c0] : tr_tok_impl_lookup(self, word + o, cl);
        }
        if (id >= 0) {
            if (unk_pending >= 0) {
                if (s_sym_push(w, self->unk, (uint32_t)o, 0, false)) return TR_ENOMEM;
                unk_pending = -1;
            }
            if (s_sym_push(w, id, (uint32_t)o, (uint32_t)cl, false)) return TR_ENOMEM;
        } else {
            bool done = false;
            if (self->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < cl; k++)
                    all = all && self->byte_ids[(uint8_t)word[o + k]] >= 0;
                if (all) {
                    for (size_t k = 0; k < cl; k++)
                        if (s_sym_push(w, self->byte_ids[(uint8_t)word[o + k]], (uint32_t)(o + k),
                                       1, false))
                            return TR_ENOMEM;
                    done = true;
                }
            }
            if (!done && self->unk >= 0) {
                if (unk_pending >= 0 && !self->fuse_unk) {
                    if (s_sym_push(w, self->unk, (uint32_t)o, 0, false)) return TR_ENOMEM;
                }
                unk_pending = self->unk;
            }
        }
        o += cl;
    }
    if (unk_pending >= 0 && s_sym_push(w, self->unk, (uint32_t)n, 0, false)) return TR_ENOMEM;
    /* give zero-length unk symbols a length so that the merge loop keeps them */
    for (size_t i = 0; i < w->n; i++)
        if (!w->sym[i].len) w->sym[i].len = 1;
    return s_bpe_rank(self, w, out);
}

/* ---- word cache ---- */

static bool s_cache_get(const tr_tokenizer_t *self, const char *w, size_t n, uint64_t h,
                        tr_tok_ids_t *out, int *rc) {
    const tr_tok_cache_t *c = &self->cache;
    if (!c->cap || self->no_cache) return false;
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (!c->hashes[i]) return false;
        if (c->hashes[i] == h && c->word_len[i] == n && !memcmp(c->bytes + c->off[i], w, n)) {
            const uint8_t *p = c->bytes + c->off[i] + ((n + 3) & ~(size_t)3);
            for (uint32_t k = 0; k < c->n_ids[i]; k++) {
                int32_t id;
                memcpy(&id, p + 4 * k, 4);
                if ((*rc = s_ids_push(out, id))) return true;
            }
            *rc = TR_OK;
            return true;
        }
    }
}

static void s_cache_clear(tr_tok_cache_t *c) {
    if (c->hashes) memset(c->hashes, 0, c->cap * sizeof *c->hashes);
    c->n = 0;
    c->bytes_len = 0;
}

static void s_cache_put(tr_tokenizer_t *self, const char *w, size_t n, uint64_t h,
                        const int32_t *ids, size_t n_ids) {
    tr_tok_cache_t *c = &self->cache;
    if (self->no_cache) return;
    size_t need = ((n + 3) & ~(size_t)3) + 4 * n_ids;
    if (!c->cap) {
        c->cap = 1u << 16;
        c->hashes = calloc(c->cap, sizeof *c->hashes);
        c->off = malloc(c->cap * sizeof *c->off);
        c->word_len = malloc(c->cap * sizeof *c->word_len);
        c->n_ids = malloc(c->cap * sizeof *c->n_ids);
        if (!c->hashes || !c->off || !c->word_len || !c->n_ids) { /* run without a cache */
            free(c->hashes);
            free(c->off);
            free(c->word_len);
            free(c->n_ids);
            memset(c, 0, sizeof *c);
            return;
        }
    }
    if ((c->n + 1) * 10 > c->cap * 7 || c->bytes_len + need > s_CACHE_MAX_BYTES) s_cache_clear(c);
    if (c->bytes_len + need > c->bytes_cap) {
        size_t cap = c->bytes_cap ? c->bytes_cap * 2 : 1u << 16;
        while (cap < c->bytes_len + need)
            cap *= 2;
        uint8_t *p = realloc(c->bytes, cap);
        if (!p) return;
        c->bytes = p;
        c->bytes_cap = cap;
    }
    size_t mask = c->cap - 1, i = h & mask;
    while (c->hashes[i])
        i = (i + 1) & mask;
    c->hashes[i] = h;
    c->off[i] = (uint32_t)c->bytes_len;
    c->word_len[i] = (uint32_t)n;
    c->n_ids[i] = (uint32_t)n_ids;
    memcpy(c->bytes + c->bytes_len, w, n);
    memcpy(c->bytes + c->bytes_len + ((n + 3) & ~(size_t)3), ids, 4 * n_ids);
    c->bytes_len += need;
    c->n++;
}

void tr_tokenizer_set_cache(tr_tokenizer_t *self, bool enabled) {
    self->no_cache = !enabled;
    if (!enabled) s_cache_clear(&self->cache);
}

/* Encodes one word (cached). */
static int s_encode_word(tr_tokenizer_t *self, const char *w, size_t n, tr_tok_ids_t *out,
                         s_work_t *work, s_buf_t *mapped) {
    if (!n) return TR_OK;
    uint64_t h = 0;
    int rc = TR_OK;
    if (n <= s_CACHE_MAX_WORD) {
        h = s_hash(w, n);
        if (s_cache_get(self, w, n, h, out, &rc)) return rc;
    }
    size_t before = out->n;
    if (self->engine == TR_TOK_ENGINE_SPM_SCORE)
        rc = s_spm_score(self, w, n, out, work);
    else
        rc = s_bpe_word(self, w, n, out, work, mapped);
    if (!rc && n <= s_CACHE_MAX_WORD)
        s_cache_put(self, w, n, h, out->ids + before, out->n - before);
    return rc;
}

/* Cuts a long segment where no vocabulary token spans the cut (see tr_tok_impl_finish). */
static int s_encode_guarded(tr_tokenizer_t *self, const char *s, size_t n, tr_tok_ids_t *out,
                            s_work_t *work, s_buf_t *mapped) {
    if (!self->can_split_words || n < s_GUARD_MIN)
        return s_encode_word(self, s, n, out, work, mapped);
    size_t start = 0, o = 0, prev_o = 0;
    uint32_t prev = 0;
    bool have = false;
    /* fused unk symbols join consecutive unknown characters: never cut between two */
    bool fuse = self->fuse_unk && self->unk >= 0 && self->engine == TR_TOK_ENGINE_BPE_RANK;
    while (o < n) {
        uint32_t cp;
        int l = tr_tok_impl_utf8_get(s + o, n - o, &cp);
        bool adj =
            prev < 128 && cp < 128
                ? (self->adjacent_ascii[(prev * 128 + cp) >> 3] >> ((prev * 128 + cp) & 7)) & 1
                : s_set_has(&self->adjacent, s_pair_key(prev, cp));
        if (have && !adj &&
            !(fuse && tr_tok_impl_lookup(self, s + prev_o, o - prev_o) < 0 &&
              tr_tok_impl_lookup(self, s + o, (size_t)l) < 0)) {
            int rc = s_encode_word(self, s + start, o - start, out, work, mapped);
            if (rc) return rc;
            start = o;
        }
        prev = cp;
        prev_o = o;
        have = true;
        o += (size_t)l;
    }
    return s_encode_word(self, s + start, n - start, out, work, mapped);
}

typedef struct {
    s_work_t work;
    s_buf_t mapped, norm, tmp;
    s_pieces_t pa, pb;
    s_mspans_t ms;
    s_spans_t seg1, seg2;
} s_enc_t;

static void s_enc_free(s_enc_t *e) {
    free(e->work.sym);
    free(e->work.heap.v);
    free(e->mapped.p);
    free(e->norm.p);
    free(e->tmp.p);
    free(e->pa.buf.p);
    free(e->pa.sp.v);
    free(e->pb.buf.p);
    free(e->pb.sp.v);
    free(e->ms.v);
    free(e->seg1.v);
    free(e->seg2.v);
}

/* Pre-tokenizes and encodes one text segment (normalized, no added tokens in it). */
static int s_encode_segment(tr_tokenizer_t *self, const char *s, size_t n, bool first,
                            tr_tok_ids_t *out, s_enc_t *e) {
    if (!self->n_pre) return s_encode_guarded(self, s, n, out, &e->work, &e->mapped);
    s_pieces_t *in = &e->pa, *o = &e->pb;
    in->buf.len = 0;
    in->sp.n = 0;
    if (s_buf_put(&in->buf, s, n) || s_spans_push(&in->sp, 0, n, -1, first)) return TR_ENOMEM;
    for (int k = 0; k < self->n_pre; k++) {
        int rc = s_pre_step(self, &self->pre[k], in, o, &e->ms, &e->tmp);
        if (rc) return rc;
        s_pieces_t *t = in;
        in = o;
        o = t;
    }
    for (size_t k = 0; k < in->sp.n; k++) {
        int rc = s_encode_word(self, in->buf.p + in->sp.v[k].off, in->sp.v[k].len, out, &e->work,
                               &e->mapped);
        if (rc) return rc;
    }
    return TR_OK;
}

int tr_tokenizer_encode(tr_tokenizer_t *self, const char *text, size_t len, unsigned flags,
                        tr_tok_ids_t *out) {
    if (!text && len) return TR_EINVAL;
    if (s_utf8_valid_prefix((const uint8_t *)text, len) != len) return TR_EINVAL;
    int rc = TR_OK;
    s_enc_t e;
    memset(&e, 0, sizeof e);
    if (flags & TR_TOK_ADD_SPECIAL)
        for (int i = 0; i < self->n_prefix; i++)
            if ((rc = s_ids_push(out, self->prefix_ids[i]))) goto done;
    if ((rc = s_split_added(self, text, len, false, flags, true, &e.seg1))) goto done;
    bool have_norm_added = false;
    for (int i = 0; i < 32; i++)
        have_norm_added |= self->added_first_norm[i] != 0;
    for (size_t i = 0; i < e.seg1.n; i++) {
        const s_span_t *sp = &e.seg1.v[i];
        if (sp->id >= 0) {
            if ((rc = s_ids_push(out, sp->id))) goto done;
            continue;
        }
        const char *s = text + sp->off;
        size_t n = sp->len;
        if (self->n_norm) {
            if ((rc = s_normalize(self, s, n, &e.norm))) goto done;
            s = e.norm.p;
            n = e.norm.len;
        }
        if (!have_norm_added) {
            if ((rc = s_encode_segment(self, s, n, sp->first, out, &e))) goto done;
            continue;
        }
        e.seg2.n = 0;
        if ((rc = s_split_added(self, s, n, true, flags, sp->first, &e.seg2))) goto done;
        for (size_t k = 0; k < e.seg2.n; k++) {
            const s_span_t *q = &e.seg2.v[k];
            if (q->id >= 0)
                rc = s_ids_push(out, q->id);
            else
                rc = s_encode_segment(self, s + q->off, q->len, q->first, out, &e);
            if (rc) goto done;
        }
    }
    if (flags & TR_TOK_ADD_SPECIAL)
        for (int i = 0; i < self->n_suffix; i++)
            if ((rc = s_ids_push(out, self->suffix_ids[i]))) goto done;
done:
    s_enc_free(&e);
    return rc;
}

/* ====================================================================================== */
/* ---- decode ----
 *
 * The stream reproduces, token by token, the reference decoders:
 *   HF Replace / ByteFallback / Fuse / Strip (Llama-2, Mistral): each token's text has its
 *     replacements applied; a run of <0xNN> tokens becomes its bytes when the whole run is
 *     valid UTF-8, else one U+FFFD per byte token (so a run is held until it ends); Strip
 *     after Fuse removes leading characters of the whole text.
 *   HF ByteLevel (GPT-2, Llama-3, Qwen2): chars -> bytes, then String::from_utf8_lossy over
 *     everything: a maximal invalid subpart becomes one U+FFFD.
 *   HF Metaspace: ▁ -> ' ', and the first token loses its ▁ (prepend_scheme != never).
 *   llama.cpp (GGUF): added/control tokens are written as their raw text.
 *   llama2.c: <0xNN> -> the byte, a piece after BOS loses its leading space, lossy UTF-8.  */

struct tr_tok_stream {
    const tr_tokenizer_t *tok; /* borrowed */
    unsigned flags;
    uint8_t *run; /* owned: pending <0xNN> bytes */
    size_t run_len, run_cap;
    uint8_t pend[4]; /* lossy assembler: incomplete sequence */
    int pend_len, pend_need;
    uint8_t pend_lo, pend_hi; /* allowed range of the second byte */
    uint32_t strip_left;      /* whole-text strip still allowed */
    int64_t n_tokens;         /* tokens that reached the decoder */
    int32_t prev_id;
    s_buf_t tmp;
};

static void s_stream_reset(tr_tok_stream_t *st) {
    st->run_len = 0;
    st->pend_len = st->pend_need = 0;
    st->strip_left = st->tok->dec.strip_whole ? st->tok->dec.strip_start : 0;
    st->n_tokens = 0;
    st->prev_id = -1;
}

tr_tok_stream_t *tr_tok_stream_new(const tr_tokenizer_t *tok, unsigned flags) {
    tr_tok_stream_t *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->tok = tok;
    st->flags = flags;
    s_stream_reset(st);
    return st;
}

void tr_tok_stream_destroy(tr_tok_stream_t **self_p) {
    if (!self_p || !*self_p) return;
    free((*self_p)->run);
    free((*self_p)->tmp.p);
    free(*self_p);
    *self_p = NULL;
}

/* Valid UTF-8 text to the output, through the whole-text strip. */
static int s_emit_text(tr_tok_stream_t *st, const char *s, size_t n, tr_tok_text_t *out) {
    while (st->strip_left && n) {
        uint32_t cp;
        int l = tr_tok_impl_utf8_get(s, n, &cp);
        if (cp != st->tok->dec.strip_char) {
            st->strip_left = 0;
            break;
        }
        s += l;
        n -= (size_t)l;
        st->strip_left--;
    }
    if (n && st->tok->dec.strip_whole) st->strip_left = 0;
    return s_text_append(out, s, n);
}

/* Bytes through the lossy UTF-8 assembler (Rust from_utf8_lossy, maximal subparts). */
static int s_emit_bytes(tr_tok_stream_t *st, const uint8_t *s, size_t n, tr_tok_text_t *out) {
    size_t i = 0, run_start = 0; /* [run_start, i) is valid text not yet written */
    int rc;
    while (i < n) {
        uint8_t c = s[i];
        if (st->pend_len) {
            bool ok =
                st->pend_len == 1 ? (c >= st->pend_lo && c <= st->pend_hi) : (c & 0xc0) == 0x80;
            if (ok) {
                st->pend[st->pend_len++] = c;
                i++;
                if (st->pend_len == st->pend_need) {
                    if ((rc = s_emit_text(st, (const char *)st->pend, (size_t)st->pend_len, out)))
                        return rc;
                    st->pend_len = 0;
                }
                run_start = i;
                continue;
            }
            /* maximal subpart ends here: one U+FFFD, then look at c again */
            st->pend_len = 0;
            if ((rc = s_emit_text(st, s_fffd, 3, out))) return rc;
            run_start = i;
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        uint8_t lo, hi;
        int len = s_utf8_lead(c, &lo, &hi);
        if (len && i + (size_t)len <= n && s[i + 1] >= lo && s[i + 1] <= hi &&
            (len < 3 || (s[i + 2] & 0xc0) == 0x80) && (len < 4 || (s[i + 3] & 0xc0) == 0x80)) {
            i += (size_t)len; /* complete and valid in this chunk */
            continue;
        }
        if (i > run_start &&
            (rc = s_emit_text(st, (const char *)s + run_start, i - run_start, out)))
            return rc;
        if (!len) { /* not a lead byte */
            if ((rc = s_emit_text(st, s_fffd, 3, out))) return rc;
            run_start = ++i;
            continue;
        }
        st->pend[0] = c;
        st->pend_len = 1;
        st->pend_need = len;
        st->pend_lo = lo;
        st->pend_hi = hi;
        run_start = ++i;
    }
    if (i > run_start) return s_emit_text(st, (const char *)s + run_start, i - run_start, out);
    return TR_OK;
}

/* A token-level string (HF decoder list element): per-token strip, then out. */
static int s_emit_token_text(tr_tok_stream_t *st, const char *s, size_t n, tr_tok_text_t *out) {
    const tr_tok_decoder_t *d = &st->tok->dec;
    if (!d->strip_whole && (d->strip_start || d->strip_stop)) {
        for (uint32_t k = 0; k < d->strip_start && n; k++) {
            uint32_t cp;
            int l = tr_tok_impl_utf8_get(s, n, &cp);
            if (cp != d->strip_char) break;
            s += l;
            n -= (size_t)l;
        }
        for (uint32_t k = 0; k < d->strip_stop && n; k++) {
            size_t j = n - 1;
            while (j > 0 && ((uint8_t)s[j] & 0xc0) == 0x80)
                j--;
            uint32_t cp;
            tr_tok_impl_utf8_get(s + j, n - j, &cp);
            if (cp != d->strip_char) break;
            n = j;
        }
    }
    return s_emit_text(st, s, n, out);
}

/* Ends a run of byte tokens. */
static int s_resolve_run(tr_tok_stream_t *st, tr_tok_text_t *out) {
    if (!st->run_len) return TR_OK;
    size_t n = st->run_len;
    st->run_len = 0;
    if (s_utf8_valid_prefix(st->run, n) == n)
        return s_emit_token_text(st, (const char *)st->run, n, out);
    for (size_t i = 0; i < n; i++) {
        int rc = s_emit_token_text(st, s_fffd, 3, out);
        if (rc) return rc;
    }
    return TR_OK;
}

int tr_tok_stream_push(tr_tok_stream_t *st, int32_t id, tr_tok_text_t *out) {
    const tr_tokenizer_t *tok = st->tok;
    const tr_tok_decoder_t *d = &tok->dec;
    if (id < 0 || id >= tok->n_vocab) return TR_EINVAL;
    const tr_tok_piece_t *p = &tok->pieces[id];
    int32_t prev = st->prev_id;
    st->prev_id = id;
    if (!p->text) return TR_OK;
    if ((st->flags & TR_TOK_SKIP_SPECIAL) && p->special) return TR_OK;
    int rc;
    const char *s = p->text;
    size_t n = p->len;
    if (d->lossy_bytes) { /* llama2.c */
        int b = s_byte_token(s, n);
        if (b >= 0) {
            uint8_t byte = (uint8_t)b;
            return s_emit_bytes(st, &byte, 1, out);
        }
        if (d->strip_after_bos && prev == tok->bos && prev >= 0 && n && s[0] == ' ') s++, n--;
        return s_emit_bytes(st, (const uint8_t *)s, n, out);
    }
    if (d->raw_added && (p->attr & (TR_TOK_ATTR_CONTROL | TR_TOK_ATTR_USER_DEFINED))) {
        if ((rc = s_resolve_run(st, out))) return rc;
        if (st->pend_len) { /* the pending bytes can no longer complete */
            st->pend_len = 0;
            if ((rc = s_emit_text(st, s_fffd, 3, out))) return rc;
        }
        st->n_tokens++;
        return s_emit_text(st, s, n, out);
    }
    /* per-token replacements */
    if (d->n_replace || d->metaspace) {
        st->tmp.len = 0;
        for (size_t i = 0; i < n;) {
            bool hit = false;
            for (int r = 0; r < d->n_replace && !hit; r++) {
                if (d->rep_from_len[r] && i + d->rep_from_len[r] <= n &&
                    !memcmp(s + i, d->rep_from[r], d->rep_from_len[r])) {
                    if (s_buf_put(&st->tmp, d->rep_to[r], d->rep_to_len[r])) return TR_ENOMEM;
                    i += d->rep_from_len[r];
                    hit = true;
                }
            }
            if (hit) continue;
            if (d->metaspace) {
                uint32_t cp;
                int l = tr_tok_impl_utf8_get(s + i, n - i, &cp);
                if (cp == d->metaspace_char) {
                    bool drop = st->n_tokens == 0 && d->metaspace_strip_first;
                    if (!drop && s_buf_put(&st->tmp, " ", 1)) return TR_ENOMEM;
                    i += (size_t)l;
                    continue;
                }
            }
            if (s_buf_put(&st->tmp, s + i, 1)) return TR_ENOMEM;
            i++;
        }
        s = st->tmp.p;
        n = st->tmp.len;
    }
    if (d->byte_fallback) {
        int b = s_byte_token(s, n);
        if (b >= 0) {
            if (st->run_len == st->run_cap) {
                size_t cap = st->run_cap ? st->run_cap * 2 : 16;
                uint8_t *q = realloc(st->run, cap);
                if (!q) return TR_ENOMEM;
                st->run = q;
                st->run_cap = cap;
            }
            st->run[st->run_len++] = (uint8_t)b;
            st->n_tokens++;
            return TR_OK;
        }
        if ((rc = s_resolve_run(st, out))) return rc;
    }
    if (d->join_space && st->n_tokens > 0 && (rc = s_emit_text(st, " ", 1, out))) return rc;
    st->n_tokens++;
    if (d->bytelevel) {
        /* every char must map to a byte, else the token's own bytes (HF ByteLevel) */
        bool all = true;
        for (size_t i = 0; i < n && all;) {
            uint32_t cp;
            i += (size_t)tr_tok_impl_utf8_get(s + i, n - i, &cp);
            all = s_cp_to_byte(cp) >= 0;
        }
        if (!all) return s_emit_bytes(st, (const uint8_t *)s, n, out);
        uint8_t buf[64];
        size_t k = 0;
        for (size_t i = 0; i < n;) {
            uint32_t cp;
            i += (size_t)tr_tok_impl_utf8_get(s + i, n - i, &cp);
            buf[k++] = (uint8_t)s_cp_to_byte(cp);
            if (k == sizeof buf) {
                if ((rc = s_emit_bytes(st, buf, k, out))) return rc;
                k = 0;
            }
        }
        return s_emit_bytes(st, buf, k, out);
    }
    return s_emit_token_text(st, s, n, out);
}

int tr_tok_stream_flush(tr_tok_stream_t *st, tr_tok_text_t *out) {
    int rc = s_resolve_run(st, out);
    if (!rc && st->pend_len) {
        st->pend_len = 0;
        rc = s_emit_text(st, s_fffd, 3, out);
    }
    if (!rc && !out->data) rc = s_text_append(out, "", 0); /* NUL-terminated even when empty */
    s_stream_reset(st);
    return rc;
}

int tr_tokenizer_decode(const tr_tokenizer_t *self, const int32_t *ids, size_t n, unsigned flags,
                        tr_tok_text_t *out) {
    tr_tok_stream_t st;
    memset(&st, 0, sizeof st);
    st.tok = self;
    st.flags = flags;
    s_stream_reset(&st);
    int rc = TR_OK;
    for (size_t i = 0; i < n && !rc; i++)
        rc = tr_tok_stream_push(&st, ids[i], out);
    if (!rc) rc = tr_tok_stream_flush(&st, out);
    free(st.run);
    free(st.tmp.p);
    return rc;
}

/* ---- construction by path ---- */

static bool s_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

tr_tokenizer_t *tr_tokenizer_new(const char *path, int *status, char *err, size_t err_size) {
    struct stat stt;
    if (stat(path, &stt) != 0) {
        int e = errno;
        if (status) *status = e == ENOENT ? TR_ENOENT : TR_EIO;
        tr_tok_impl_fail(err, err_size, 0, "%s: %s", path, strerror(e));
        return NULL;
    }
    if (S_ISDIR(stt.st_mode)) {
        char js[4096], cfg[4096];
        snprintf(js, sizeof js, "%s/tokenizer.json", path);
        snprintf(cfg, sizeof cfg, "%s/tokenizer_config.json", path);
        bool have_cfg = stat(cfg, &stt) == 0;
        return tr_tokenizer_new_hf(js, have_cfg ? cfg : NULL, status, err, err_size);
    }
    if (s_ends_with(path, ".json")) return tr_tokenizer_new_hf(path, NULL, status, err, err_size);
    if (s_ends_with(path, ".model")) {
        if (status) *status = TR_EINVAL;
        tr_tok_impl_fail(err, err_size, 0,
                         "%s: SentencePiece .model (protobuf) files are not "
                         "supported; use the model's tokenizer.json or GGUF",
                         path);
        return NULL;
    }
    if (s_ends_with(path, ".gguf")) {
        tr_gguf_t *g = tr_gguf_new(path, status, err, err_size);
        if (!g) return NULL;
        tr_tokenizer_t *t = tr_tokenizer_new_gguf(g, status, err, err_size);
        tr_gguf_destroy(&g);
        return t;
    }
    return tr_tokenizer_new_llama2c(path, 0, status, err, err_size);
}

/* ---- the tokenizer that goes with a model ---- */

/* vocab_size from a llama2.c checkpoint's header (legacy v0 or version 1), or -1. */
static int32_t s_llama2c_vocab(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int32_t h[9] = {0};
    size_t n = fread(h, 4, 9, f);
    fclose(f);
    if (n < 7) return -1;
    int v1 = (uint32_t)h[0] == 0x616b3432u; /* "ak42" */
    if (v1 && n < 9) return -1;
    int32_t vocab = h[v1 ? 7 : 5];
    return vocab < 0 ? -vocab : vocab;
}

tr_tokenizer_t *tr_tokenizer_for_model(const char *model_path, int *status, char *err,
                                       size_t err_size) {
    struct stat stt;
    if (stat(model_path, &stt) != 0) {
        int e = errno;
        if (status) *status = e == ENOENT ? TR_ENOENT : TR_EIO;
        tr_tok_impl_fail(err, err_size, 0, "%s: %s", model_path, strerror(e));
        return NULL;
    }
    char magic[4] = {0};
    FILE *f = S_ISDIR(stt.st_mode) ? NULL : fopen(model_path, "rb");
    if (f) {
        if (fread(magic, 1, 4, f) != 4) memset(magic, 0, 4);
        fclose(f);
    }
    if (S_ISDIR(stt.st_mode) || s_ends_with(model_path, ".gguf") || memcmp(magic, "GGUF", 4) == 0) {
        if (!S_ISDIR(stt.st_mode) && !s_ends_with(model_path, ".gguf")) {
            tr_gguf_t *g = tr_gguf_new(model_path, status, err, err_size);
            if (!g) return NULL;
            tr_tokenizer_t *t = tr_tokenizer_new_gguf(g, status, err, err_size);
            tr_gguf_destroy(&g);
            return t;
        }
        return tr_tokenizer_new(model_path, status, err, err_size);
    }
    int32_t vocab = s_llama2c_vocab(model_path);
    if (vocab <= 0) {
        if (status) *status = TR_EPROTO;
        tr_tok_impl_fail(err, err_size, 0, "%s: not an HF directory, a GGUF or a llama2.c checkpoint",
                         model_path);
        return NULL;
    }
    char dir[4096], cand[4200];
    snprintf(dir, sizeof dir, "%s", model_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    snprintf(cand, sizeof cand, "%s/tok%d.bin", dir, (int)vocab);
    if (stat(cand, &stt) != 0) snprintf(cand, sizeof cand, "%s/tokenizer.bin", dir);
    if (stat(cand, &stt) != 0) {
        if (status) *status = TR_ENOENT;
        tr_tok_impl_fail(err, err_size, 0,
                         "%s: a llama2.c checkpoint needs its tokenizer beside it "
                         "(%s/tok%d.bin or %s/tokenizer.bin)",
                         model_path, dir, (int)vocab, dir);
        return NULL;
    }
    return tr_tokenizer_new_llama2c(cand, vocab, status, err, err_size);
}
