/*  actors/executor.c - runs forward steps on one device.
 *  Owns:    the model (weights mmap'd or uploaded), the physical KV pool, the logits and
 *           sampling scratch (pinned host staging on device backends), the ops backend of
 *           its device.
 *  Accepts: step (from the scheduler).
 *  Sends:   model_info to the scheduler once loaded (model shape, KV pool size);
 *           step_done (sampled tokens, logprobs, timings) to the step's sender.
 *  Thread:  its own loop. A step runs to completion inside its handler: the executor has
 *           nothing else to do meanwhile, and the backend's own pool does the parallel work.
 *           A ping waits behind a running step, so health measures the step loop itself.
 *
 *  The executor keeps no per-sequence state: a step carries each sequence's new tokens,
 *  start position, block table and sampling parameters (DESIGN.md 4). Sampling randomness
 *  is counter-based on (seed, sequence length), so a sequence samples the same tokens in
 *  any batch, and again after a preemption recomputes it.
 *
 *  Device backends (`device: cuda:N`): no usable GPU ends the start with one error naming
 *  the device. After the weights are up, the activations for the largest step the
 *  scheduler may send are reserved, then the KV pool takes kv.memory_fraction of the memory
 *  still free (unless kv.n_blocks or kv.memory_gb say otherwise). With executor.cuda_graphs
 *  the last block of the pool is kept out of the scheduler's hands for the padding of
 *  recorded decode steps (models/model.h). Sampled tokens come back through pinned memory.
 *
 *  Parallel layouts: the executor's rank and world come from the topology; the model load
 *  takes the shard descriptor (models/model.h) and only rank 0 of the last stage answers
 *  steps. Loading a shard of world > 1 is refused by the models library today, so a
 *  tensor-parallel topology fails at start with that reason.                         */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/registry.h"
#include "actors/serving.h"
#include "kernels/ops.h"
#include "models/model.h"
#include "runtime/log.h"

typedef struct {
    tr_actor_t *actor;          /* borrowed */
    tr_ops_t *ops;              /* owned */
    tr_model_t *model;          /* owned */
    tr_kv_cache_t kv;           /* owned memory */
    int32_t rank, world;
    char device[32];
    bool park;                  /* executor.park: tr_ops_idle after each step */
    char model_path[512];
    const char *scheduler;      /* borrowed from the topology */
    /* scratch, grown on demand */
    tr_buf_t n_tokens, tokens, start_pos, tables, out_tokens, out_lp, top_ids, top_lp;
    float *logits;              /* backend memory: (rows, V) */
    int32_t logits_rows;
    int32_t kv_usable;          /* blocks the scheduler may hand out (the pad block is not) */
    /* device backends: sampled tokens and logprobs (rows each) in backend memory, and the
     * pinned host copy they come back to; a host row of logits for top logprobs */
    void *d_out, *h_out;
    float *h_row;
    tr_sample_params_t *params;
    int32_t params_cap;
    uint64_t steps, tokens_in, tokens_out, forward_ns, sample_ns, errors;
} self_t;

static int s_on_step(void *self, const tr_msg_t *msg);

static const tr_handler_t s_handlers[] = {
    {TR_MSG_STEP, s_on_step}, /* -> step_done */
    {0, NULL},
};

static const tr_conf_key_t s_conf_keys[] = {
    {"threads", TR_CONF_INT, "CPU worker threads (default: TROUPE_THREADS, else every core)"},
    {"park", TR_CONF_BOOL,
     "send the CPU workers to sleep after each step instead of letting them spin for the "
     "next op (default true: the scheduler and the streaming actors need the cores then)"},
    {"cuda_graphs", TR_CONF_BOOL,
     "record pure-decode steps as CUDA graphs per batch bucket (default true; cuda only)"},
    {NULL, 0, NULL},
};

static void *s_self_new(tr_actor_t *actor);
static void s_self_destroy(void **self_p);
static void s_stats(void *self, msgpack_packer *pk);

const tr_actor_spec_t tr_executor_spec = {
    .name = "executor",
    .summary = "runs forward steps on one device: weights, physical KV memory, sampling",
    .ranked = 1,
    .handlers = s_handlers,
    .conf_section = "executor",
    .conf_keys = s_conf_keys,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .stats = s_stats,
};

/* KV pool size: kv.n_blocks, else kv.memory_gb; else on a device backend
 * kv.memory_fraction of the device memory free now (after weights and activations), and on
 * the host room for max_seqs full contexts capped at 2 GiB and at 30% of the memory
 * available now. -1 with a log line when the device cannot say how much is free. */
static int32_t s_kv_blocks(const tr_topology_t *topo, tr_ops_t *ops,
                           const tr_model_config_t *cfg, int32_t block_size) {
    const tr_conf_section_t *kv = tr_topo_section(topo, "kv");
    int64_t n = tr_conf_get_int(kv, "n_blocks", 0);
    if (n > 0) return n > INT32_MAX ? INT32_MAX : (int32_t)n;
    size_t per_block = tr_kv_cache_bytes(cfg, 1, block_size);
    double gb = tr_conf_get_float(kv, "memory_gb", 0);
    size_t bytes;
    if (gb > 0) {
        bytes = (size_t)(gb * (double)(1ull << 30));
    } else if (tr_ops_device_memory(ops)) {
        size_t free_b = 0, total_b = 0;
        int rc = tr_ops_memory_info(ops, &free_b, &total_b);
        if (rc != TR_OK) {
            TR_ERROR("%s: cannot read free memory to size the KV pool (%s); set kv.n_blocks or "
                     "kv.memory_gb", tr_ops_name(ops), tr_strerror(rc));
            return -1;
        }
        double f = tr_conf_get_float(kv, "memory_fraction", 0.9);
        bytes = (size_t)((double)free_b * f);
        TR_INFO("%s: %.0f of %.0f MiB free after weights and activations; KV pool %.0f MiB "
                "(kv.memory_fraction %.2f)", tr_ops_name(ops), (double)free_b / (1 << 20),
                (double)total_b / (1 << 20), (double)bytes / (1 << 20), f);
    } else {
        int64_t max_seqs = tr_conf_get_int(tr_topo_section(topo, "scheduler"), "max_seqs", 64);
        bytes = (size_t)max_seqs * (size_t)((cfg->max_seq_len + block_size - 1) / block_size) *
                per_block;
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        size_t cap = pages > 0 && page > 0 ? (size_t)pages * (size_t)page / 10 * 3 : bytes;
        if (cap > (2ull << 30)) cap = 2ull << 30;
        if (bytes > cap) bytes = cap;
    }
    size_t blocks = bytes / per_block;
    return blocks < 1 ? 1 : blocks > INT32_MAX ? INT32_MAX : (int32_t)blocks;
}

/* Logits and sampling outputs for `rows` rows; on device backends the outputs live in
 * backend memory and come back through pinned memory. Grows only. */
static int s_out_reserve(self_t *self, int32_t rows) {
    if (rows <= self->logits_rows) return TR_OK;
    const int32_t V = tr_model_config(self->model)->vocab_size;
    tr_ops_free(self->ops, self->logits);
    self->logits = tr_ops_alloc(self->ops, (size_t)rows * (size_t)V * sizeof(float));
    self->logits_rows = self->logits ? rows : 0;
    if (!self->logits) return TR_ENOMEM;
    if (!tr_ops_device_memory(self->ops)) return TR_OK;
    tr_ops_free(self->ops, self->d_out);
    tr_ops_host_free(self->ops, self->h_out);
    self->d_out = tr_ops_alloc(self->ops, (size_t)rows * 8);   /* tokens, then logprobs */
    self->h_out = tr_ops_host_alloc(self->ops, (size_t)rows * 8);
    if (!self->h_row) self->h_row = malloc((size_t)V * sizeof(float));
    if (!self->d_out || !self->h_out || !self->h_row) {
        self->logits_rows = 0;   /* try again on the next step */
        return TR_ENOMEM;
    }
    return TR_OK;
}

static void s_send_info(self_t *self) {
    const tr_model_config_t *cfg = tr_model_config(self->model);
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_MODEL_INFO);
    TR_MSG_SET(&m, model_info, model, tr_str_c(self->model_path));
    TR_MSG_SET(&m, model_info, arch, tr_str_c(tr_arch_name(cfg->arch)));
    TR_MSG_SET(&m, model_info, dtype, tr_str_c(tr_dtype_name(tr_model_weight_dtype(self->model))));
    TR_MSG_SET(&m, model_info, n_params, tr_model_n_params(self->model));
    TR_MSG_SET(&m, model_info, vocab_size, cfg->vocab_size);
    TR_MSG_SET(&m, model_info, context_length, cfg->max_seq_len);
    TR_MSG_SET(&m, model_info, bos_id, cfg->bos_id);
    TR_MSG_SET(&m, model_info, eos_id, cfg->eos_id);
    TR_MSG_SET(&m, model_info, device, tr_str_c(self->device));
    TR_MSG_SET(&m, model_info, rank, self->rank);
    TR_MSG_SET(&m, model_info, world, self->world);
    TR_MSG_SET(&m, model_info, kv_blocks, self->kv_usable);
    TR_MSG_SET(&m, model_info, block_size, self->kv.block_size);
    TR_MSG_SET(&m, model_info, kv_bytes,
               (int64_t)tr_kv_cache_bytes(cfg, self->kv.n_blocks, self->kv.block_size));
    if (tr_actor_send(self->actor, self->scheduler, &m) != TR_OK)
        TR_ERROR("cannot send model_info to %s", self->scheduler);
}

/* Device backends, after the weights are up: decode graphs (executor.cuda_graphs), the
 * activations and logits of the largest step the scheduler may send, and the output
 * staging, all allocated before the KV pool is sized from what remains free. */
static int s_device_setup(self_t *self, const tr_topology_t *topo, int32_t bs, int *graphs) {
    const tr_model_config_t *cfg = tr_model_config(self->model);
    const tr_conf_section_t *sch = tr_topo_section(topo, "scheduler");
    int64_t max_tokens = tr_conf_get_int(sch, "max_batch_tokens", 2048);
    int64_t max_seqs = tr_conf_get_int(sch, "max_seqs", 64);
    max_tokens = max_tokens < 1 ? 1 : max_tokens > (1 << 20) ? (1 << 20) : max_tokens;
    max_seqs = max_seqs < 1 ? 1 : max_seqs > (1 << 16) ? (1 << 16) : max_seqs;
    *graphs = 0;
    if (tr_conf_get_bool(tr_actor_conf(self->actor), "cuda_graphs", 1)) {
        int rc = tr_model_enable_graphs(self->model, true);
        *graphs = rc == TR_OK;
        if (rc == TR_OK)
            TR_INFO("decode graphs on: batch buckets 1..256, context buckets from 512");
        else
            TR_INFO("decode graphs off: %s", rc == TR_ENOTSUP
                    ? "the backend records none, or the model routes experts on the host"
                    : tr_strerror(rc));
    }
    int32_t max_blocks = (cfg->max_seq_len + bs - 1) / bs;
    int rc = tr_model_reserve(self->model, (int32_t)max_tokens, (int32_t)max_seqs, max_blocks);
    if (rc != TR_OK) {
        TR_ERROR("%s: cannot reserve activations for %lld tokens and %lld sequences (%s)",
                 tr_ops_name(self->ops), (long long)max_tokens, (long long)max_seqs,
                 tr_strerror(rc));
        return rc;
    }
    rc = s_out_reserve(self, (int32_t)max_seqs);
    if (rc != TR_OK) {
        TR_ERROR("%s: cannot allocate logits for %lld sequences", tr_ops_name(self->ops),
                 (long long)max_seqs);
        return rc;
    }
    return TR_OK;
}

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    const tr_topology_t *topo = tr_actor_topology(actor);
    self->rank = tr_actor_rank(actor) < 0 ? 0 : tr_actor_rank(actor);
    self->world = tr_serving_count(topo, "executor");
    self->scheduler = tr_serving_name(topo, "scheduler", 0);
    self->park = tr_conf_get_bool(tr_actor_conf(actor), "park", 1);
    snprintf(self->device, sizeof self->device, "%s", topo->procs[tr_actor_process(actor)].device);
    snprintf(self->model_path, sizeof self->model_path, "%s", tr_serving_model(topo));
    tr_buf_t *bufs[] = {&self->n_tokens, &self->tokens,     &self->start_pos, &self->tables,
                        &self->out_tokens, &self->out_lp,   &self->top_ids,   &self->top_lp};
    for (size_t i = 0; i < TR_ARRAY_LEN(bufs); i++) tr_buf_init(bufs[i]);
    if (!self->scheduler) {
        TR_ERROR("the topology has no scheduler for the executor to serve");
        goto fail;
    }
    /* configuration first: a bad value should not wait for a model load */
    const tr_conf_section_t *kv = tr_topo_section(topo, "kv");
    int64_t bs = tr_conf_get_int(kv, "block_size", 16);
    if (bs < 1 || bs > 65536) {
        TR_ERROR("kv.block_size must be within 1..65536, got %lld", (long long)bs);
        goto fail;
    }
    if (tr_conf_get_int(kv, "n_blocks", 0) < 0 || tr_conf_get_float(kv, "memory_gb", 0) < 0) {
        TR_ERROR("kv.n_blocks and kv.memory_gb must not be negative");
        goto fail;
    }
    double frac = tr_conf_get_float(kv, "memory_fraction", 0.9);
    if (!(frac > 0 && frac <= 1)) {
        TR_ERROR("kv.memory_fraction must be in (0, 1], got %g", frac);
        goto fail;
    }
    if (strncmp(self->device, "cuda", 4) == 0) {
        int dev = self->device[4] == ':' ? atoi(self->device + 5) : 0;
        char why[256];
        if (tr_ops_cuda_probe(dev, why, sizeof why) != TR_OK) {
            TR_ERROR("device %s: %s", self->device, why);
            goto fail;
        }
        self->ops = tr_ops_cuda(dev);
        if (!self->ops) {
            TR_ERROR("device %s: no usable GPU: the CUDA backend could not start (see above)",
                     self->device);
            goto fail;
        }
    } else {
        int64_t threads = tr_conf_get_int(tr_actor_conf(actor), "threads", 0);
        tr_ops_cpu_opts_t o = {.n_threads = (int32_t)threads};
        self->ops = tr_ops_cpu_new(&o);
        if (!self->ops) {
            TR_ERROR("cannot start the CPU backend (executor.threads = %lld)", (long long)threads);
            goto fail;
        }
    }
    char err[512];
    tr_model_load_opts_t lo = {.shard = {self->rank, self->world}};
    uint64_t t0 = tr_now_ns();
    if (tr_model_load(&self->model, self->model_path, self->ops, &lo, err, sizeof err) != TR_OK) {
        TR_ERROR("cannot load the model: %s", err);
        goto fail;
    }
    const tr_model_config_t *cfg = tr_model_config(self->model);
    int graphs = 0;
    if (tr_ops_device_memory(self->ops) && s_device_setup(self, topo, (int32_t)bs, &graphs))
        goto fail;
    int32_t n_blocks = s_kv_blocks(topo, self->ops, cfg, (int32_t)bs);
    if (n_blocks < 0) goto fail;
    if (tr_kv_cache_init(&self->kv, self->ops, cfg, n_blocks, (int32_t)bs) != TR_OK) {
        TR_ERROR("cannot allocate the KV pool (%d blocks, %zu bytes)", n_blocks,
                 tr_kv_cache_bytes(cfg, n_blocks, (int32_t)bs));
        goto fail;
    }
    self->kv_usable = n_blocks;
    if (graphs && n_blocks >= 2) {   /* the last block takes the padding of recorded steps */
        self->kv.pad_block = n_blocks - 1;
        self->kv_usable = n_blocks - 1;
    } else if (graphs) {
        TR_WARN("decode graphs off: a KV pool of one block leaves none for padding");
    }
    TR_INFO("%s: %s %s, %lld params, %d layers, vocab %d, context %d; %s; KV %d blocks x %d "
            "tokens (%.1f MiB); loaded in %.0f ms",
            self->model_path, tr_arch_name(cfg->arch),
            tr_dtype_name(tr_model_weight_dtype(self->model)),
            (long long)tr_model_n_params(self->model), cfg->n_layers, cfg->vocab_size,
            cfg->max_seq_len, tr_ops_name(self->ops), n_blocks, (int)bs,
            (double)tr_kv_cache_bytes(cfg, n_blocks, (int32_t)bs) / (1 << 20),
            (double)(tr_now_ns() - t0) / 1e6);
    s_send_info(self);
    return self;
fail:;
    void *p = self;
    s_self_destroy(&p);
    return NULL;
}

static void s_self_destroy(void **self_p) {
    self_t *self = *self_p;
    if (self->kv.k) tr_kv_cache_fini(&self->kv, self->ops);
    if (self->logits) tr_ops_free(self->ops, self->logits);
    tr_ops_free(self->ops, self->d_out);
    tr_ops_host_free(self->ops, self->h_out);
    free(self->h_row);
    tr_model_destroy(&self->model);
    tr_ops_destroy(&self->ops);
    tr_buf_t *bufs[] = {&self->n_tokens, &self->tokens,     &self->start_pos, &self->tables,
                        &self->out_tokens, &self->out_lp,   &self->top_ids,   &self->top_lp};
    for (size_t i = 0; i < TR_ARRAY_LEN(bufs); i++) tr_buf_fini(bufs[i]);
    free(self->params);
    free(self);
    *self_p = NULL;
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    tr_model_graph_stats_t g = {0};
    if (self->model) tr_model_graph_stats(self->model, &g);
    msgpack_pack_map(pk, 12);
    tr_pack_cstr(pk, "device");
    tr_pack_cstr(pk, self->device);
    tr_pack_cstr(pk, "backend");
    tr_pack_cstr(pk, tr_ops_name(self->ops));
    tr_pack_cstr(pk, "kv_blocks");
    msgpack_pack_int32(pk, self->kv.n_blocks);
    tr_pack_cstr(pk, "steps");
    msgpack_pack_uint64(pk, self->steps);
    tr_pack_cstr(pk, "tokens_in");
    msgpack_pack_uint64(pk, self->tokens_in);
    tr_pack_cstr(pk, "tokens_out");
    msgpack_pack_uint64(pk, self->tokens_out);
    tr_pack_cstr(pk, "forward_ms");
    msgpack_pack_double(pk, (double)self->forward_ns / 1e6);
    tr_pack_cstr(pk, "sample_ms");
    msgpack_pack_double(pk, (double)self->sample_ns / 1e6);
    tr_pack_cstr(pk, "errors");
    msgpack_pack_uint64(pk, self->errors);
    tr_pack_cstr(pk, "graphs");   /* decode graphs held; replays; padded steps run eagerly */
    msgpack_pack_int32(pk, g.on ? g.n_graphs : -1);
    tr_pack_cstr(pk, "graph_steps");
    msgpack_pack_uint64(pk, g.replayed);
    tr_pack_cstr(pk, "graph_eager_steps");
    msgpack_pack_uint64(pk, g.eager);
}

/* Copies an I32S field into aligned scratch. */
static const int32_t *s_ints(tr_buf_t *b, tr_i32s_t a) {
    tr_buf_clear(b);
    if (tr_buf_put(b, a.p, 4 * (size_t)a.n) != TR_OK) return NULL;
    return (const int32_t *)b->p;
}

static int s_step_error(self_t *self, const tr_msg_t *msg, const char *text) {
    self->errors++;
    TR_WARN("step %lld failed: %s", (long long)msg->u.step.step, text);
    tr_msg_t r;
    tr_msg_init(&r, TR_MSG_STEP_DONE);
    TR_MSG_SET(&r, step_done, step, msg->u.step.step);
    TR_MSG_SET(&r, step_done, rank, self->rank);
    TR_MSG_SET(&r, step_done, error, tr_str_c(text));
    tr_actor_reply(self->actor, msg, &r);
    return TR_EINVAL;
}

/* Top-n log-probabilities of one row of logits (n <= 20, small against V). */
static int s_top_logprobs(self_t *self, const float *row, int32_t V, int32_t n) {
    float mx = row[0];
    for (int32_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
    double sum = 0;
    for (int32_t v = 0; v < V; v++) sum += exp((double)(row[v] - mx));
    float lse = mx + (float)log(sum);
    int32_t ids[32];
    int32_t k = 0;
    for (int32_t v = 0; v < V; v++) {
        if (k == n && row[v] <= row[ids[k - 1]]) continue;
        int32_t j = k < n ? k++ : n - 1;
        while (j > 0 && row[ids[j - 1]] < row[v]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = v;
    }
    for (int32_t j = 0; j < n; j++) {
        int32_t id = j < k ? ids[j] : 0;
        if (tr_buf_i32(&self->top_ids, id) || tr_buf_f32(&self->top_lp, row[id] - lse))
            return TR_ENOMEM;
    }
    return TR_OK;
}

/* Samples `rows` rows of logits into out_tokens / out_lp. The CPU samples straight into
 * them; a device backend samples into backend memory and copies the results back through
 * pinned memory, the one wait of the step. */
static int s_sample(self_t *self, int32_t rows, int32_t V, int want_lp) {
    int32_t *out = (int32_t *)self->out_tokens.p;
    float *lp = want_lp ? (float *)self->out_lp.p : NULL;
    if (!tr_ops_device_memory(self->ops))
        return tr_ops_sample(self->ops, out, lp, self->logits, rows, V, self->params);
    int32_t *d_tok = self->d_out;
    float *d_lp = want_lp ? (float *)(d_tok + self->logits_rows) : NULL;
    int32_t *h_tok = self->h_out;
    float *h_lp = (float *)(h_tok + self->logits_rows);
    int rc = tr_ops_sample(self->ops, d_tok, d_lp, self->logits, rows, V, self->params);
    if (!rc) rc = tr_ops_to_host_async(self->ops, h_tok, d_tok, (size_t)rows * 4);
    if (!rc && want_lp) rc = tr_ops_to_host_async(self->ops, h_lp, d_lp, (size_t)rows * 4);
    if (!rc) rc = tr_ops_sync(self->ops);
    if (rc) return rc;
    memcpy(out, h_tok, (size_t)rows * 4);
    if (want_lp) memcpy(lp, h_lp, (size_t)rows * 4);
    return TR_OK;
}

static int s_on_step(void *self_, const tr_msg_t *msg) {
    self_t *self = self_;
    const tr_msg_step_t *m = &msg->u.step;
    int64_t B = tr_bin_count(m->rids, 8);
    if (B < 0 || m->n_tokens.n != B || m->start_pos.n != B || m->sample.n != B ||
        tr_bin_count(m->temperature, 4) != B || tr_bin_count(m->top_p, 4) != B ||
        m->top_k.n != B || tr_bin_count(m->min_p, 4) != B || tr_bin_count(m->seed, 8) != B ||
        (TR_MSG_HAS(msg, step, n_top) && m->n_top.n != B))
        return s_step_error(self, msg, "step: per-sequence arrays disagree on the batch size");
    if (m->max_blocks < 1 || (int64_t)m->block_tables.n != B * m->max_blocks)
        return s_step_error(self, msg, "step: block_tables is not (B, max_blocks)");
    const int32_t *n_tokens = s_ints(&self->n_tokens, m->n_tokens);
    const int32_t *tokens = s_ints(&self->tokens, m->tokens);
    const int32_t *start_pos = s_ints(&self->start_pos, m->start_pos);
    const int32_t *tables = s_ints(&self->tables, m->block_tables);
    if ((B && (!n_tokens || !start_pos)) || (m->tokens.n && !tokens) || !tables)
        return s_step_error(self, msg, "out of memory");
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) {
        if (n_tokens[b] < 0 || start_pos[b] < 0)
            return s_step_error(self, msg, "step: negative n_tokens or start_pos");
        total += n_tokens[b];
    }
    if (total != m->tokens.n) return s_step_error(self, msg, "step: tokens do not add up");
    const tr_model_config_t *cfg = tr_model_config(self->model);
    /* every block a sequence's attention reads must exist: positions 0 .. start + n - 1 */
    for (int64_t b = 0; b < B; b++) {
        int64_t end = (int64_t)start_pos[b] + n_tokens[b];
        if (end > cfg->max_seq_len)
            return s_step_error(self, msg, "step: a sequence runs past the context length");
        int64_t nb = (end + self->kv.block_size - 1) / self->kv.block_size;
        if (nb > m->max_blocks) return s_step_error(self, msg, "step: a block table is too short");
        for (int64_t j = 0; j < nb; j++) {
            int32_t id = tables[b * m->max_blocks + j];
            if (id < 0 || id >= self->kv_usable)
                return s_step_error(self, msg, "step: a block id is outside the KV pool");
        }
    }
    int32_t V = cfg->vocab_size;
    tr_batch_t batch = {.n_seqs = (int32_t)B, .n_tokens = n_tokens, .tokens = tokens,
                        .start_pos = start_pos, .block_tables = tables,
                        .max_blocks = (int32_t)m->max_blocks, .want_logits = m->sample.p};
    int32_t rows = tr_batch_n_logits(&batch);
    if (s_out_reserve(self, rows) != TR_OK)
        return s_step_error(self, msg, "out of memory (logits)");
    uint64_t t0 = tr_now_ns();
    int rc = tr_model_forward(self->model, &self->kv, &batch, self->logits);
    uint64_t t1 = tr_now_ns();
    if (rc != TR_OK) {
        char text[128];
        snprintf(text, sizeof text, "forward failed: %s", tr_strerror(rc));
        return s_step_error(self, msg, text);
    }
    if (rows > self->params_cap) {
        tr_sample_params_t *p = realloc(self->params, (size_t)rows * sizeof *p);
        if (!p) return s_step_error(self, msg, "out of memory");
        self->params = p;
        self->params_cap = rows;
    }
    int32_t r = 0;
    for (int64_t b = 0; b < B; b++) {
        if (!m->sample.p[b] || n_tokens[b] == 0) continue;
        uint32_t i = (uint32_t)b;
        self->params[r++] = (tr_sample_params_t){
            .temperature = tr_bin_f32(m->temperature, i), .top_k = tr_i32s_at(m->top_k, i),
            .top_p = tr_bin_f32(m->top_p, i), .min_p = tr_bin_f32(m->min_p, i),
            .seed = (uint64_t)tr_bin_i64(m->seed, i),
            .counter = (uint64_t)start_pos[b] + (uint64_t)n_tokens[b]};
    }
    tr_buf_clear(&self->out_tokens);
    tr_buf_clear(&self->out_lp);
    tr_buf_clear(&self->top_ids);
    tr_buf_clear(&self->top_lp);
    if (tr_buf_put(&self->out_tokens, NULL, 4 * (size_t)rows) ||
        tr_buf_put(&self->out_lp, NULL, 4 * (size_t)rows))
        return s_step_error(self, msg, "out of memory");
    /* the log-softmax over the vocabulary costs as much as the argmax: only when asked */
    int want_lp = TR_MSG_HAS(msg, step, logprobs) && m->logprobs;
    if (rows && s_sample(self, rows, V, want_lp) != TR_OK)
        return s_step_error(self, msg, "sampling failed");
    if (TR_MSG_HAS(msg, step, n_top)) {
        const int dev = tr_ops_device_memory(self->ops);
        r = 0;
        for (int64_t b = 0; b < B; b++) {
            if (!m->sample.p[b] || n_tokens[b] == 0) continue;
            int32_t k = tr_i32s_at(m->n_top, (uint32_t)b);
            if (k > 20) k = 20;
            if (k > V) k = V;
            const float *row = self->logits + (size_t)r * V;
            if (k > 0 && dev) {   /* rare (logprobs requests): one row back, waiting */
                if (tr_ops_to_host(self->ops, self->h_row, row, (size_t)V * sizeof(float)))
                    return s_step_error(self, msg, "copying logits back failed");
                row = self->h_row;
            }
            if (k > 0 && s_top_logprobs(self, row, V, k) != TR_OK)
                return s_step_error(self, msg, "out of memory");
            r++;
        }
    }
    uint64_t t2 = tr_now_ns();
    /* the scheduler needs the cores now to plan the next step, and so do the actors that
     * stream this one's tokens: do not let the backend's workers spin them away */
    if (self->park) tr_ops_idle(self->ops);
    self->steps++;
    self->tokens_in += (uint64_t)total;
    self->tokens_out += (uint64_t)rows;
    self->forward_ns += t1 - t0;
    self->sample_ns += t2 - t1;
    if (self->rank != 0) return TR_OK; /* rank 0 answers for the group */
    tr_msg_t d;
    tr_msg_init(&d, TR_MSG_STEP_DONE);
    TR_MSG_SET(&d, step_done, step, m->step);
    TR_MSG_SET(&d, step_done, rank, self->rank);
    TR_MSG_SET(&d, step_done, tokens, tr_buf_i32s(&self->out_tokens));
    if (want_lp) TR_MSG_SET(&d, step_done, logprobs, tr_buf_bin(&self->out_lp));
    if (self->top_ids.n) {
        TR_MSG_SET(&d, step_done, top_tokens, tr_buf_i32s(&self->top_ids));
        TR_MSG_SET(&d, step_done, top_logprobs, tr_buf_bin(&self->top_lp));
    }
    TR_MSG_SET(&d, step_done, forward_us, (int64_t)((t1 - t0) / 1000));
    TR_MSG_SET(&d, step_done, sample_us, (int64_t)((t2 - t1) / 1000));
    tr_actor_reply(self->actor, msg, &d);
    return TR_OK;
}
