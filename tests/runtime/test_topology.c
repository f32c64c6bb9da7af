/*  tests/runtime/test_topology.c - topology files: loading, validation, expansion, endpoints.
 *
 *  Uses a schema of its own (below) so that it does not depend on the actor registry:
 *  kinds frontend, tokenizer, scheduler, kv_manager, executor (ranked), communicator
 *  (ranked), reqlog; sections kv, scheduler, frontend, reqlog.
 *  Loads every file in examples/topologies/ and every bad file in tests/data/topologies/.
 *  A bad file starts with two comment lines,
 *      # expect: <substring of the reason>
 *      # line: <N>
 *  and must fail with an error that is exactly "<path>:<N>: ..." and holds the substring.
 *  Paths are relative to TROUPE_ROOT (the runner sets it; else the current directory). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/status.h"
#include "runtime/topology.h"
#include "tests/tap.h"

/* ---- the test schema ---- */

static const char *const s_kinds[] = {"frontend", "tokenizer",    "scheduler", "kv_manager",
                                      "executor", "communicator", "reqlog",    NULL};
static const char *const s_defaults[] = {"frontend", "tokenizer",    "scheduler", "kv_manager",
                                         "executor", "communicator", NULL};
static const char *const s_required[] = {"frontend",   "tokenizer", "scheduler",
                                         "kv_manager", "executor",  NULL};

static const tr_conf_key_t s_kv_keys[] = {
    {"block_size", TR_CONF_INT, "tokens per KV block"},
    {"memory_fraction", TR_CONF_FLOAT, "share of device memory for KV blocks"},
    {"host_cache_gb", TR_CONF_FLOAT, "host tier size"},
    {"prefix_cache", TR_CONF_BOOL, "reuse blocks across requests"},
    {NULL, 0, NULL},
};
static const tr_conf_key_t s_scheduler_keys[] = {
    {"policy", TR_CONF_STR, "fcfs or priority"},
    {"max_batch_tokens", TR_CONF_INT, "token budget per step"},
    {"max_seqs", TR_CONF_INT, "sequences per step"},
    {"chunked_prefill", TR_CONF_BOOL, "split long prompts"},
    {NULL, 0, NULL},
};
static const tr_conf_key_t s_frontend_keys[] = {
    {"tap", TR_CONF_STRLIST, "actors that get a copy of each request"},
    {"max_queue", TR_CONF_INT, "requests waiting at most"},
    {"greeting", TR_CONF_STR, "sent on health"},
    {NULL, 0, NULL},
};
static const tr_conf_key_t s_reqlog_keys[] = {
    {"path", TR_CONF_STR, "file to append to"},
    {"sample", TR_CONF_FLOAT, "fraction of requests logged"},
    {"flush", TR_CONF_BOOL, "flush after each line"},
    {NULL, 0, NULL},
};

static int s_known(const char *kind) {
    for (int i = 0; s_kinds[i]; i++)
        if (!strcmp(s_kinds[i], kind)) return 1;
    return 0;
}

static int s_ranked(const char *kind) {
    return !strcmp(kind, "executor") || !strcmp(kind, "communicator");
}

static const tr_conf_key_t *s_section_keys(const char *name) {
    if (!strcmp(name, "kv")) return s_kv_keys;
    if (!strcmp(name, "scheduler")) return s_scheduler_keys;
    if (!strcmp(name, "frontend")) return s_frontend_keys;
    if (!strcmp(name, "reqlog")) return s_reqlog_keys;
    return NULL;
}

static const tr_topo_schema_t s_schema = {
    .actor_known = s_known,
    .actor_ranked = s_ranked,
    .section_keys = s_section_keys,
    .default_actors = s_defaults,
    .required_actors = s_required,
};

/* ---- helpers ---- */

static char s_root[600] = ".";

static void s_path(char *buf, size_t n, const char *rel) {
    snprintf(buf, n, "%s/%s", s_root, rel);
}

/* "name@process" for every actor, space-separated: one string to compare. */
static const char *s_layout(const tr_topology_t *topo, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < topo->n_actors; i++) {
        int w = snprintf(buf + used, n - used, "%s%s@%s", i ? " " : "", topo->actors[i].name,
                         topo->procs[topo->actors[i].process].name);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    return buf;
}

static tr_topology_t *s_load_str(const char *yaml, char *err, size_t errlen) {
    return tr_topo_load_string(yaml, "t.yaml", &s_schema, err, errlen);
}

/* Expects loading `yaml` to fail with exactly "t.yaml:<line>: ...<substr>...". */
static void s_expect_fail(const char *yaml, int line, const char *substr) {
    char err[512] = "", prefix[64];
    tr_topology_t *topo = s_load_str(yaml, err, sizeof err);
    snprintf(prefix, sizeof prefix, "t.yaml:%d: ", line);
    ok(!topo && !strncmp(err, prefix, strlen(prefix)) && strstr(err, substr),
       "string fails with %s...%s (got: %s)", prefix, substr, err);
    tr_topo_destroy(&topo);
}

/* ---- the default topology ---- */

static void s_test_default(void) {
    char buf[1024];
    tr_topology_t *topo = tr_topo_default(&s_schema);
    ok(topo != NULL, "default topology");
    if (!topo) return;
    ok(topo->n_procs == 1 && !strcmp(topo->procs[0].name, "main") && topo->procs[0].rank == -1 &&
           !strcmp(topo->procs[0].device, "cpu") && topo->procs[0].host[0] == '\0',
       "default: one process 'main' on cpu, no rank, no host");
    ok(topo->procs[0].n_actors == 6 && !strcmp(topo->procs[0].actors[4], "executor"),
       "default: process lists the default actors");
    ok(!strcmp(s_layout(topo, buf, sizeof buf),
               "frontend@main tokenizer@main scheduler@main kv_manager@main executor.0@main "
               "communicator.0@main"),
       "default: instances %s", buf);
    const tr_topo_actor_t *ex = tr_topo_find_actor(topo, "executor.0");
    const tr_topo_actor_t *fe = tr_topo_find_actor(topo, "frontend");
    ok(ex && ex->rank == 0 && !strcmp(ex->kind, "executor") && fe && fe->rank == -1,
       "default: executor.0 has rank 0, frontend rank -1");
    ok(!strcmp(topo->listen, "tcp://127.0.0.1:5555") && topo->tensor == 1 && topo->pipeline == 1 &&
           topo->expert == 1 && topo->world_size == 1 && topo->base_port == 57100 &&
           !strcmp(topo->on_failure, "shutdown") && topo->multiprocess == 0 &&
           topo->path[0] == '\0' && topo->model[0] == '\0' && topo->n_sections == 0,
       "default: listen, sizes, base_port, on_failure, single-process");
    ok(tr_topo_find_process(topo, "main") == 0 && tr_topo_find_process(topo, "front") == -1,
       "find_process");
    ok(tr_topo_find_actor(topo, "executor.1") == NULL && tr_topo_find_actor(topo, "x") == NULL,
       "find_actor on absent names");
    ok(tr_topo_section(topo, "kv") == NULL, "no sections in the default");

    char err[256] = "";
    int rc = tr_topo_derive_endpoints(topo, NULL, err, sizeof err);
    char want[128];
    snprintf(want, sizeof want, "inproc://troupe-%llx/frontend", (unsigned long long)topo->uid);
    ok(rc == TR_OK && !strcmp(fe->inproc, want) && fe->remote[0] == '\0' &&
           topo->supervisor[0] == '\0',
       "default endpoints: %s, no remote, no supervisor without rundir", fe->inproc);
    ok(tr_topo_endpoint_for(topo, 0, ex) == ex->inproc, "endpoint_for in the same process");
    rc = tr_topo_derive_endpoints(topo, "/tmp/troupe-x", err, sizeof err);
    ok(rc == TR_OK && !strcmp(topo->supervisor, "ipc:///tmp/troupe-x/supervisor") &&
           fe->remote[0] == '\0',
       "single process with rundir: supervisor %s, still no remote", topo->supervisor);

    tr_topology_t *other = tr_topo_default(&s_schema);
    tr_topo_derive_endpoints(other, NULL, err, sizeof err);
    ok(other && other->uid != topo->uid &&
           strcmp(tr_topo_find_actor(other, "frontend")->inproc, fe->inproc) != 0,
       "two topologies in one process get different inproc endpoints");
    tr_topo_destroy(&other);
    tr_topo_destroy(&topo);
    ok(topo == NULL, "destroy sets the pointer to NULL");
    tr_topo_destroy(&topo);
    tr_topo_destroy(NULL);
    ok(1, "destroy is NULL-safe");
}

/* ---- the example files ---- */

static tr_topology_t *s_load_example(const char *file) {
    char path[1200], rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "examples/topologies/%s", file);
    s_path(path, sizeof path, rel);
    tr_topology_t *topo = tr_topo_load(path, &s_schema, err, sizeof err);
    ok(topo != NULL, "%s loads%s%s", rel, topo ? "" : ": ", topo ? "" : err);
    if (topo) ok(!strcmp(topo->path, path), "%s: path recorded", rel);
    return topo;
}

static void s_test_examples(void) {
    char buf[1024], err[256];
    int n_files = 0;
    char dir[1200];
    s_path(dir, sizeof dir, "examples/topologies");
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml")) continue;
        tr_topology_t *topo = s_load_example(de->d_name);
        if (topo)
            ok(tr_topo_derive_endpoints(topo, "/tmp/troupe-ex", err, sizeof err) == TR_OK,
               "%s: endpoints derive", de->d_name);
        tr_topo_destroy(&topo);
        n_files++;
    }
    if (d) closedir(d);
    ok(n_files >= 5, "examples/topologies holds %d files", n_files);

    tr_topology_t *topo = s_load_example("single.yaml");
    if (topo) {
        ok(!topo->multiprocess && topo->n_procs == 1 && !strcmp(topo->procs[0].name, "main") &&
               topo->n_actors == 6 && topo->model[0] == 0,
           "single.yaml: one process, six actors, the default model (\"%s\")", topo->model);
        const tr_conf_section_t *kv = tr_topo_section(topo, "kv");
        ok(kv && tr_conf_get_int(kv, "block_size", 0) == 16 &&
               tr_conf_get_float(kv, "memory_fraction", 0) == 0.9 &&
               tr_conf_get_bool(kv, "prefix_cache", 0) == 1,
           "single.yaml: kv section");
        ok(!strcmp(tr_conf_get_str(tr_topo_section(topo, "scheduler"), "policy", ""), "fcfs"),
           "single.yaml: scheduler policy");
    }
    tr_topo_destroy(&topo);

    topo = s_load_example("two-process.yaml");
    if (topo) {
        ok(topo->multiprocess && topo->n_procs == 2 &&
               !strcmp(s_layout(topo, buf, sizeof buf),
                       "frontend@front tokenizer@front scheduler@front kv_manager@front "
                       "executor.0@rank0 communicator.0@rank0"),
           "two-process.yaml: %s", buf);
        ok(topo->procs[1].rank == 0 && topo->procs[0].rank == -1 &&
               !strcmp(topo->procs[1].device, "cpu"),
           "two-process.yaml: rank0 has rank 0, front none");
        ok(tr_topo_derive_endpoints(topo, "/tmp/troupe-2p", err, sizeof err) == TR_OK,
           "two-process.yaml: endpoints");
        const tr_topo_actor_t *ex = tr_topo_find_actor(topo, "executor.0");
        const tr_topo_actor_t *sch = tr_topo_find_actor(topo, "scheduler");
        int front = tr_topo_find_process(topo, "front"),
            rank0 = tr_topo_find_process(topo, "rank0");
        ok(ex && !strcmp(ex->remote, "ipc:///tmp/troupe-2p/executor.0"),
           "ipc endpoint without host: %s", ex ? ex->remote : "");
        ok(ex && !strncmp(ex->inproc, "inproc://troupe-", 16) &&
               !strcmp(ex->inproc + strlen(ex->inproc) - 11, "/executor.0"),
           "inproc endpoint too: %s", ex ? ex->inproc : "");
        ok(ex && sch && tr_topo_endpoint_for(topo, front, ex) == ex->remote &&
               tr_topo_endpoint_for(topo, rank0, ex) == ex->inproc &&
               tr_topo_endpoint_for(topo, rank0, sch) == sch->remote &&
               tr_topo_endpoint_for(topo, front, sch) == sch->inproc,
           "endpoint_for: inproc in the same process, remote from the other");
        ok(tr_topo_endpoint_for(topo, 0, NULL) == NULL, "endpoint_for(NULL actor) is NULL");
        ok(!strcmp(topo->supervisor, "ipc:///tmp/troupe-2p/supervisor"), "supervisor endpoint");
        int rc = tr_topo_derive_endpoints(topo, NULL, err, sizeof err);
        ok(rc == TR_EINVAL && strstr(err, "run directory"),
           "multi-process without rundir is refused: %s", err);
        char longdir[200];
        memset(longdir, 'd', sizeof longdir);
        longdir[0] = '/';
        longdir[100] = '\0'; /* 100 + "/supervisor" is over 107 */
        rc = tr_topo_derive_endpoints(topo, longdir, err, sizeof err);
        ok(rc == TR_EINVAL && strstr(err, "107") && strstr(err, "shorter"),
           "ipc path over 107 bytes is refused: %.60s...", err);
        longdir[93] = '\0'; /* supervisor fits (104), communicator.0 does not (108) */
        rc = tr_topo_derive_endpoints(topo, longdir, err, sizeof err);
        ok(rc == TR_EINVAL && strstr(err, "communicator.0"), "an actor's ipc path too: %.70s...",
           err);
        longdir[92] = '\0'; /* 92 + "/communicator.0" = 107, the most allowed */
        ok(tr_topo_derive_endpoints(topo, longdir, err, sizeof err) == TR_OK &&
               strlen(tr_topo_find_actor(topo, "communicator.0")->remote) == 6 + 107,
           "a 107-byte ipc path is fine");
    }
    tr_topo_destroy(&topo);

    topo = s_load_example("three-process.yaml");
    if (topo) {
        ok(topo->n_procs == 3 &&
               !strcmp(s_layout(topo, buf, sizeof buf),
                       "frontend@front scheduler@front kv_manager@front tokenizer@tok "
                       "executor.0@rank0 communicator.0@rank0"),
           "three-process.yaml: tokenizer only in tok: %s", buf);
    }
    tr_topo_destroy(&topo);

    topo = s_load_example("tp2.yaml");
    if (topo) {
        ok(topo->tensor == 2 && topo->world_size == 2 &&
               !strcmp(s_layout(topo, buf, sizeof buf),
                       "frontend@front tokenizer@front scheduler@front kv_manager@front "
                       "executor.0@rank0 communicator.0@rank0 executor.1@rank1 "
                       "communicator.1@rank1"),
           "tp2.yaml: %s", buf);
        const tr_topo_actor_t *ex1 = tr_topo_find_actor(topo, "executor.1");
        ok(ex1 && ex1->rank == 1 && !strcmp(topo->procs[ex1->process].device, "cuda:1"),
           "tp2.yaml: executor.1 on cuda:1");
        const tr_conf_section_t *kv = tr_topo_section(topo, "kv");
        ok(tr_conf_get_float(kv, "host_cache_gb", 0) == 4.0 &&
               tr_conf_get(kv, "host_cache_gb")->type == TR_CONF_FLOAT,
           "tp2.yaml: a float key given as an integer");
    }
    tr_topo_destroy(&topo);

    topo = s_load_example("reqlog.yaml");
    if (topo) {
        ok(topo->n_procs == 1 && tr_topo_find_actor(topo, "reqlog") &&
               tr_topo_find_actor(topo, "executor.0"),
           "reqlog.yaml: reqlog runs beside the usual actors");
        const tr_conf_section_t *rl = tr_topo_section(topo, "reqlog");
        ok(rl && !strcmp(tr_conf_get_str(rl, "path", ""), "requests.jsonl") &&
               tr_conf_get_float(rl, "sample", 0) == 1.0,
           "reqlog.yaml: reqlog section");
        const tr_conf_val_t *tap = tr_conf_get(tr_topo_section(topo, "frontend"), "tap");
        ok(tap && tap->type == TR_CONF_STRLIST && tap->n_list == 1 &&
               !strcmp(tap->list[0], "reqlog"),
           "reqlog.yaml: frontend.tap = [reqlog]");
    }
    tr_topo_destroy(&topo);
}

/* ---- naming, ranks, hosts ---- */

static void s_test_naming(void) {
    char buf[1024], err[512] = "";
    tr_topology_t *topo = s_load_str("processes:\n"
                                     "  - {name: front, actors: [frontend, scheduler, kv_manager, "
                                     "tokenizer]}\n"
                                     "  - {name: tok1, actors: [tokenizer]}\n"
                                     "  - {name: tok2, actors: [tokenizer, reqlog]}\n"
                                     "  - {name: rank0, actors: [executor]}\n",
                                     err, sizeof err);
    ok(topo && !strcmp(s_layout(topo, buf, sizeof buf),
                       "frontend@front scheduler@front kv_manager@front tokenizer.0@front "
                       "tokenizer.1@tok1 tokenizer.2@tok2 reqlog@tok2 executor.0@rank0"),
       "replicas are numbered in file order: %s", topo ? buf : err);
    ok(topo && topo->procs[3].rank == 0, "world size 1: rank defaults to 0");
    tr_topo_destroy(&topo);

    topo = s_load_str("parallel: {tensor: 2, pipeline: 2}\n", err, sizeof err);
    ok(topo && topo->world_size == 4 && topo->n_actors == 12 &&
           tr_topo_find_actor(topo, "communicator.3") &&
           tr_topo_find_actor(topo, "communicator.3")->process == 0,
       "single process, world 4: every rank in 'main'");
    tr_topo_destroy(&topo);

    topo = s_load_str("base_port: 6000\n"
                      "processes:\n"
                      "  - {name: front, host: node1, actors: [frontend, tokenizer, scheduler, "
                      "kv_manager]}\n"
                      "  - {name: rank0, host: 10.0.0.2, rank: 0, actors: [executor]}\n"
                      "  - {name: rank1, host: 'fd00::3', rank: 1, actors: [executor]}\n"
                      "parallel: {pipeline: 2}\n",
                      err, sizeof err);
    ok(topo != NULL, "hosts load%s%s", topo ? "" : ": ", topo ? "" : err);
    if (topo) {
        int rc = tr_topo_derive_endpoints(topo, NULL, err, sizeof err);
        ok(rc == TR_OK, "tcp endpoints need no run directory");
        ok(!strcmp(topo->actors[0].remote, "tcp://node1:6000") &&
               !strcmp(topo->actors[3].remote, "tcp://node1:6003") &&
               !strcmp(tr_topo_find_actor(topo, "executor.0")->remote, "tcp://10.0.0.2:6004") &&
               !strcmp(tr_topo_find_actor(topo, "executor.1")->remote, "tcp://[fd00::3]:6005"),
           "tcp://<host>:<base_port + index>, IPv6 in brackets");
        ok(topo->supervisor[0] == '\0', "no supervisor endpoint without rundir");
    }
    tr_topo_destroy(&topo);
}

/* ---- configuration values ---- */

static void s_test_conf(void) {
    char err[512] = "";
    tr_topology_t *topo = s_load_str("kv: {block_size: 32, memory_fraction: 1, prefix_cache: off}\n"
                                     "scheduler:\n"
                                     "  policy: \"priority\"\n"
                                     "  max_seqs: -3\n"
                                     "  chunked_prefill: Yes\n"
                                     "frontend:\n"
                                     "  tap:\n"
                                     "    - reqlog\n"
                                     "    - 'x y'\n"
                                     "reqlog: {sample: 2.5e-1, flush: on, path: 12}\n",
                                     err, sizeof err);
    ok(topo != NULL, "conf sections load%s%s", topo ? "" : ": ", topo ? "" : err);
    if (!topo) return;
    ok(topo->n_sections == 4, "four sections");
    const tr_conf_section_t *kv = tr_topo_section(topo, "kv");
    const tr_conf_section_t *sch = tr_topo_section(topo, "scheduler");
    const tr_conf_section_t *fe = tr_topo_section(topo, "frontend");
    const tr_conf_section_t *rl = tr_topo_section(topo, "reqlog");
    ok(kv && kv->line == 1 && sch && sch->line == 2 && fe && fe->line == 6,
       "sections keep their lines");
    ok(tr_conf_get_int(kv, "block_size", 0) == 32 && tr_conf_get_float(kv, "block_size", 0) == 32,
       "int key");
    ok(tr_conf_get_int(kv, "host_cache_gb", 7) == 7 &&
           tr_conf_get_float(kv, "host_cache_gb", 1.5) == 1.5,
       "unset keys give the default");
    ok(tr_conf_get_float(kv, "memory_fraction", 0) == 1.0 &&
           tr_conf_get(kv, "memory_fraction")->type == TR_CONF_FLOAT,
       "float key accepts an integer");
    ok(tr_conf_get_bool(kv, "prefix_cache", 1) == 0 &&
           tr_conf_get_bool(sch, "chunked_prefill", 0) == 1,
       "bool: off, Yes");
    ok(tr_conf_get_bool(rl, "flush", 0) == 1, "bool: on");
    ok(!strcmp(tr_conf_get_str(sch, "policy", ""), "priority") &&
           tr_conf_get_int(sch, "max_seqs", 0) == -3,
       "quoted string, negative int");
    ok(tr_conf_get_float(rl, "sample", 0) == 0.25, "float 2.5e-1");
    ok(!strcmp(tr_conf_get_str(rl, "path", ""), "12") &&
           tr_conf_get(rl, "path")->type == TR_CONF_STR,
       "a number where a string is wanted stays text");
    ok(!strcmp(tr_conf_get_str(kv, "block_size", ""), "32"), "get_str gives the source text");
    const tr_conf_val_t *tap = tr_conf_get(fe, "tap");
    ok(tap && tap->n_list == 2 && !strcmp(tap->list[1], "x y") && tap->line == 8,
       "block-style string list");
    ok(tr_conf_get_int(fe, "tap", 5) == 5 && tr_conf_get_bool(fe, "tap", 1) == 1,
       "int/bool getters on a list give the default");
    ok(tr_conf_get_str(NULL, "x", "d")[0] == 'd' && tr_conf_get_int(NULL, "x", 4) == 4 &&
           tr_conf_get_float(NULL, "x", 0.5) == 0.5 && tr_conf_get_bool(NULL, "x", 1) == 1 &&
           tr_conf_get(NULL, "x") == NULL,
       "getters on an absent section give the default");
    tr_topo_destroy(&topo);

    topo = s_load_str("kv:\nfrontend: {}\n", err, sizeof err);
    ok(topo && topo->n_sections == 2 && tr_topo_section(topo, "kv")->n_vals == 0,
       "empty sections are allowed");
    tr_topo_destroy(&topo);
}

/* ---- errors from strings (details the bad files do not pin down) ---- */

static void s_test_errors(void) {
    char err[512] = "";
    tr_topology_t *topo =
        tr_topo_load("tests/data/topologies/no-such-file.yaml", &s_schema, err, sizeof err);
    ok(!topo && !strcmp(err, "tests/data/topologies/no-such-file.yaml: cannot open: No such file "
                             "or directory"),
       "missing file: %s", err);
    s_expect_fail("parallel: {tensor: \"2\"}\n", 1, "got \"2\" (quoted, so a string)");
    s_expect_fail("model: x\n---\nmodel: y\n", 3, "second YAML document");
    s_expect_fail("listen: tcp://\n", 1, "no address after tcp://");
    s_expect_fail("kv: [1]\n", 1, "'kv' must be a mapping of settings (accepted: block_size");
    s_expect_fail("processes: []\n", 1, "'processes' is empty");
    s_expect_fail("processes:\n  - {name: a, actors: [frontend, tokenizer, scheduler, "
                  "kv_manager, executor]}\n  - name: b\n    actors: [executor]\n",
                  3, "duplicate rank 0 (also on line 2)");
    s_expect_fail("parallel: {tensor: 4}\nprocesses:\n  - {name: a, actors: [frontend, "
                  "tokenizer, scheduler, kv_manager, executor], rank: 4}\n",
                  3, "rank 4 out of range: world size is 4 (tensor 4 x pipeline 1 x expert 1)");
    s_expect_fail("model: \"a\\0b\"\n", 1, "NUL byte");
    s_expect_fail("1: x\n", 1, "unknown key '1'");
    s_expect_fail("? [a]\n: x\n", 1, "keys must be plain names");
    topo = tr_topo_load_string("model: x\n", "t.yaml", &s_schema, NULL, 0);
    ok(topo != NULL, "a NULL error buffer is allowed");
    tr_topo_destroy(&topo);
    topo = tr_topo_load_string("model: [\n", "t.yaml", &s_schema, NULL, 0);
    ok(topo == NULL, "failure with a NULL error buffer");
    char small[12];
    topo = tr_topo_load_string("modle: x\n", "t.yaml", &s_schema, small, sizeof small);
    ok(topo == NULL && strlen(small) == sizeof small - 1, "errors are cut to the buffer");
}

/* ---- every bad file in tests/data/topologies ---- */

static int s_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void s_test_bad_file(const char *file) {
    char path[1200], rel[512], err[1024] = "", line1[512] = "", line2[512] = "";
    snprintf(rel, sizeof rel, "tests/data/topologies/%s", file);
    s_path(path, sizeof path, rel);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line1, sizeof line1, f) || !fgets(line2, sizeof line2, f)) {
        ok(0, "%s: cannot read its header", rel);
        if (f) fclose(f);
        return;
    }
    fclose(f);
    line1[strcspn(line1, "\n")] = '\0';
    int want_line = 0;
    if (strncmp(line1, "# expect: ", 10) || sscanf(line2, "# line: %d", &want_line) != 1) {
        ok(0, "%s: header is not '# expect: ...' and '# line: N'", rel);
        return;
    }
    const char *expect = line1 + 10;
    tr_topology_t *topo = tr_topo_load(path, &s_schema, err, sizeof err);
    char prefix[1300];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, want_line);
    ok(!topo && !strncmp(err, prefix, strlen(prefix)) && strstr(err + strlen(prefix), expect),
       "%s -> %s", rel, err[0] ? err + strlen(path) : "(loaded)");
    if (!topo && strncmp(err, prefix, strlen(prefix))) diag("wanted line %d", want_line);
    if (!topo && !strstr(err, expect)) diag("wanted: %s", expect);
    tr_topo_destroy(&topo);
}

static void s_test_bad_files(void) {
    char dir[1200];
    s_path(dir, sizeof dir, "tests/data/topologies");
    DIR *d = opendir(dir);
    ok(d != NULL, "open %s", dir);
    if (!d) return;
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < (int)TR_ARRAY_LEN(names)) {
        size_t len = strlen(de->d_name);
        if (len > 5 && !strcmp(de->d_name + len - 5, ".yaml")) names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], s_cmp);
    ok(n >= 15, "%d bad files", n);
    for (int i = 0; i < n; i++) {
        s_test_bad_file(names[i]);
        free(names[i]);
    }
}

int main(void) {
    plan_lazy();
    const char *root = getenv("TROUPE_ROOT");
    if (root && *root) snprintf(s_root, sizeof s_root, "%s", root);
    s_test_default();
    s_test_examples();
    s_test_naming();
    s_test_conf();
    s_test_errors();
    s_test_bad_files();
    return done_testing();
}
