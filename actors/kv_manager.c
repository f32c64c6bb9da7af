/*  actors/kv_manager.c - paged KV accounting: which blocks each sequence holds.
 *  Owns:    the block pool (actors/kv_pool.h) and one block table per sequence.
 *  Accepts: kv_init (pool size, from the scheduler once the executors report theirs),
 *           kv_alloc (grow tables: answered by kv_grant), kv_free (release tables).
 *  Sends:   kv_grant to the scheduler.
 *  Thread:  its own loop; every handler is O(blocks touched).
 *
 *  The scheduler mirrors the free count, so a kv_alloc it sends normally succeeds; a
 *  sequence that cannot get its blocks is refused (n_new = -1) and keeps what it had. An
 *  unknown sequence in kv_free is ignored (frees are idempotent, like aborts). Counters
 *  in `stats`: blocks_total, blocks_used, blocks_free, seqs, allocs, frees, refused.    */
#include <stdlib.h>
#include <string.h>

#include "actors/kv_pool.h"
#include "actors/registry.h"
#include "runtime/log.h"
#include "runtime/u64map.h"

typedef struct {
    int32_t *blocks;   /* owned */
    int32_t n, cap;
} s_table_t;

typedef struct {
    tr_actor_t *actor;     /* borrowed */
    tr_kv_pool_t *pool;    /* owned; NULL until kv_init */
    tr_u64map_t tables;    /* rid -> s_table_t* (owned) */
    int32_t conf_block_size;
    uint64_t allocs, frees, refused;
} self_t;

static int s_on_kv_init(void *self, const tr_msg_t *msg);
static int s_on_kv_alloc(void *self, const tr_msg_t *msg);
static int s_on_kv_free(void *self, const tr_msg_t *msg);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_KV_INIT, s_on_kv_init},   /* -> (re)creates the pool */
    {TR_MSG_KV_ALLOC, s_on_kv_alloc}, /* -> kv_grant */
    {TR_MSG_KV_FREE, s_on_kv_free},
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"block_size", TR_CONF_INT, "tokens per KV block (default 16)"},
    {"memory_fraction", TR_CONF_FLOAT,
     "share of the device memory free after weights and activations for the KV pool (cuda; "
     "0 < f <= 1, default 0.9)"},
    {"memory_gb", TR_CONF_FLOAT, "KV pool size in GiB (default on cpu: enough for max_seqs "
                                 "full contexts, at most 2 GiB and 30% of available RAM)"},
    {"n_blocks", TR_CONF_INT, "KV pool size in blocks (overrides memory_*)"},
    {"host_cache_gb", TR_CONF_FLOAT, "host-memory KV tier size (not implemented yet)"},
    {"prefix_cache", TR_CONF_BOOL, "reuse KV blocks across requests (not implemented yet)"},
    {NULL, 0, NULL},
};

static void *s_self_new(tr_actor_t *actor);
static void s_self_destroy(void **self_p);
static void s_stats(void *self, msgpack_packer *pk);

const tr_actor_spec_t tr_kv_manager_spec = {
    .name = "kv_manager",
    .summary = "paged KV block accounting: block tables and reference counts",
    .handlers = s_handlers,
    .conf_section = "kv",
    .conf_keys = s_conf_keys,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .stats = s_stats,
};

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    tr_u64map_init(&self->tables);
    return self;
}

static void s_table_free(self_t *self, uint64_t rid) {
    s_table_t *t = tr_u64map_del(&self->tables, rid);
    if (!t) return;
    if (self->pool) tr_kv_pool_unref(self->pool, t->blocks, t->n);
    free(t->blocks);
    free(t);
    self->frees++;
}

static void s_drop_all(self_t *self) {
    for (size_t i = 0; i < self->tables.cap; i++) {
        s_table_t *t = self->tables.keys[i] ? self->tables.vals[i] : NULL;
        if (!t) continue;
        free(t->blocks);
        free(t);
    }
    tr_u64map_fini(&self->tables);
    tr_u64map_init(&self->tables);
}

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    s_drop_all(self);
    tr_u64map_fini(&self->tables);
    tr_kv_pool_destroy(&self->pool);
    free(self);
    *self_p = NULL;
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    int32_t total = self->pool ? tr_kv_pool_n_blocks(self->pool) : 0;
    int32_t nfree = self->pool ? tr_kv_pool_n_free(self->pool) : 0;
    msgpack_pack_map(pk, 8);
    tr_pack_cstr(pk, "blocks_total");
    msgpack_pack_int32(pk, total);
    tr_pack_cstr(pk, "blocks_used");
    msgpack_pack_int32(pk, total - nfree);
    tr_pack_cstr(pk, "blocks_free");
    msgpack_pack_int32(pk, nfree);
    tr_pack_cstr(pk, "block_size");
    msgpack_pack_int32(pk, self->pool ? tr_kv_pool_block_size(self->pool) : 0);
    tr_pack_cstr(pk, "seqs");
    msgpack_pack_uint64(pk, self->tables.n);
    tr_pack_cstr(pk, "allocs");
    msgpack_pack_uint64(pk, self->allocs);
    tr_pack_cstr(pk, "frees");
    msgpack_pack_uint64(pk, self->frees);
    tr_pack_cstr(pk, "refused");
    msgpack_pack_uint64(pk, self->refused);
}

static int s_on_kv_init(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_kv_init_t *m = &msg->u.kv_init;
    if (m->n_blocks < 1 || m->block_size < 1)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "n_blocks",
                                    "kv_init: n_blocks and block_size must be >= 1");
    if (self->tables.n) TR_WARN("kv_init with %zu sequences holding blocks: dropping them",
                                self->tables.n);
    s_drop_all(self);
    tr_kv_pool_destroy(&self->pool);
    self->pool = tr_kv_pool_new((int32_t)m->n_blocks, (int32_t)m->block_size);
    if (!self->pool)
        return tr_actor_reply_error(self->actor, msg, "internal", NULL, "out of memory");
    TR_INFO("KV pool: %lld blocks of %lld tokens", (long long)m->n_blocks,
            (long long)m->block_size);
    return TR_OK;
}

static int s_on_kv_alloc(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_kv_alloc_t *m = &msg->u.kv_alloc;
    int64_t n = tr_bin_count(m->rids, 8);
    if (n < 0 || n != m->n_blocks.n)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "rids",
                                    "kv_alloc: rids and n_blocks must have one entry per sequence");
    if (!self->pool)
        return tr_actor_reply_error(self->actor, msg, "unavailable", NULL,
                                    "kv_alloc before kv_init");
    int32_t *n_new = calloc((size_t)n + 1, sizeof *n_new);
    size_t blocks_cap = 64, n_out = 0;
    int32_t *blocks = malloc(blocks_cap * sizeof *blocks);
    if (!n_new || !blocks) goto oom;
    for (int64_t i = 0; i < n; i++) {
        uint64_t rid = (uint64_t)tr_bin_i64(m->rids, (uint32_t)i);
        int32_t want = tr_i32s_at(m->n_blocks, (uint32_t)i);
        s_table_t *t = tr_u64map_get(&self->tables, rid);
        int32_t have = t ? t->n : 0, need = want - have;
        if (need <= 0) continue;
        if (need > tr_kv_pool_n_free(self->pool) || !rid) {
            n_new[i] = -1;
            self->refused++;
            continue;
        }
        if (!t) {
            t = calloc(1, sizeof *t);
            if (!t || tr_u64map_put(&self->tables, rid, t) != TR_OK) {
                free(t);
                goto oom;
            }
        }
        if (want > t->cap) {
            int32_t cap = want < 2 * t->cap ? 2 * t->cap : want;
            int32_t *b = realloc(t->blocks, (size_t)cap * sizeof *b);
            if (!b) goto oom;
            t->blocks = b;
            t->cap = cap;
        }
        while (n_out + (size_t)need > blocks_cap) {
            int32_t *b = realloc(blocks, 2 * blocks_cap * sizeof *b);
            if (!b) goto oom;
            blocks = b;
            blocks_cap *= 2;
        }
        tr_kv_pool_alloc(self->pool, need, t->blocks + t->n);
        memcpy(blocks + n_out, t->blocks + t->n, (size_t)need * sizeof *blocks);
        t->n += need;
        n_out += (size_t)need;
        n_new[i] = need;
        self->allocs++;
    }
    tr_msg_t g;
    tr_msg_init(&g, TR_MSG_KV_GRANT);
    TR_MSG_SET(&g, kv_grant, seq, m->seq);
    TR_MSG_SET(&g, kv_grant, rids, m->rids);
    TR_MSG_SET(&g, kv_grant, n_new, ((tr_i32s_t){(const uint8_t *)n_new, (uint32_t)n}));
    TR_MSG_SET(&g, kv_grant, blocks, ((tr_i32s_t){(const uint8_t *)blocks, (uint32_t)n_out}));
    TR_MSG_SET(&g, kv_grant, free, tr_kv_pool_n_free(self->pool));
    tr_actor_reply(self->actor, msg, &g);
    free(n_new);
    free(blocks);
    return TR_OK;
oom:
    free(n_new);
    free(blocks);
    return tr_actor_reply_error(self->actor, msg, "internal", NULL, "kv_alloc: out of memory");
}

static int s_on_kv_free(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    int64_t n = tr_bin_count(msg->u.kv_free.rids, 8);
    if (n < 0)
        return tr_actor_reply_error(self->actor, msg, "bad_request", "rids",
                                    "kv_free: rids is not a whole number of int64");
    for (int64_t i = 0; i < n; i++)
        s_table_free(self, (uint64_t)tr_bin_i64(msg->u.kv_free.rids, (uint32_t)i));
    return TR_OK;
}
