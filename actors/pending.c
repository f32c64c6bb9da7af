/*  actors/pending.c - the actors whose work arrives with the serving path (issue 4).
 *
 *  tokenizer, scheduler, kv_manager, executor and communicator are placed by topology
 *  files today, start on their own threads or processes, bind their inboxes and answer
 *  the runtime's built-ins (ping/pong with counters, peer_down), so that multi-process
 *  layouts, health and supervision are exercised end to end. They have no handlers of
 *  their own yet: any other message gets an `error{code: unknown_type}` reply from the
 *  runtime. Their configuration sections (kv:, scheduler:) are declared here so that
 *  topology files are validated against the keys they will read. Each moves to its own
 *  file (actors/<name>.c) when it gains handlers.                                      */
#include "actors/registry.h"

static const tr_conf_key_t s_scheduler_keys[] = {
    {"policy", TR_CONF_STR, "fcfs | priority"},
    {"max_batch_tokens", TR_CONF_INT, "token budget of one step"},
    {"max_seqs", TR_CONF_INT, "most sequences in one step"},
    {"chunked_prefill", TR_CONF_BOOL, "split long prompts into chunks"},
    {"chunk_size", TR_CONF_INT, "prefill chunk size in tokens"},
    {NULL, 0, NULL},
};

static const tr_conf_key_t s_kv_keys[] = {
    {"block_size", TR_CONF_INT, "tokens per KV block"},
    {"memory_fraction", TR_CONF_FLOAT, "share of free device memory for the KV pool"},
    {"n_blocks", TR_CONF_INT, "KV pool size in blocks (overrides memory_fraction)"},
    {"host_cache_gb", TR_CONF_FLOAT, "host-memory KV tier size"},
    {"prefix_cache", TR_CONF_BOOL, "reuse KV blocks across requests with a common prefix"},
    {NULL, 0, NULL},
};

const tr_actor_spec_t tr_tokenizer_spec = {
    .name = "tokenizer",
    .summary = "text <-> token ids, incremental detokenization, stop strings (pending)",
};

const tr_actor_spec_t tr_scheduler_spec = {
    .name = "scheduler",
    .summary = "continuous batching under a token budget (pending)",
    .conf_section = "scheduler",
    .conf_keys = s_scheduler_keys,
};

const tr_actor_spec_t tr_kv_manager_spec = {
    .name = "kv_manager",
    .summary = "paged KV block pool, block tables, prefix cache (pending)",
    .conf_section = "kv",
    .conf_keys = s_kv_keys,
};

const tr_actor_spec_t tr_executor_spec = {
    .name = "executor",
    .summary = "runs forward steps on one device (pending)",
    .ranked = 1,
};

const tr_actor_spec_t tr_communicator_spec = {
    .name = "communicator",
    .summary = "collectives of one rank: NCCL or CPU all-reduce (pending)",
    .ranked = 1,
};
