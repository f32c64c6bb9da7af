/*  runtime/topology.h - topology files: where each actor runs and how they connect.
 *
 *  A topology is read from a YAML file (DESIGN.md section 6, docs/topology.md) with
 *  libyaml, validated, and expanded into a flat list of actor instances, each placed in
 *  one process and given its endpoints. Without a file, tr_topo_default() gives the
 *  single-process layout (every actor a thread, inproc:// only).
 *
 *  Errors are reported as "FILE:LINE: reason" in the caller's buffer: unknown keys,
 *  wrong types, impossible parallel sizes, duplicate ranks or names, unknown actors.
 *
 *  Actor instance names: actors that carry a rank (executor, communicator: the schema
 *  says which) are named "<kind>.<rank>"; others are named "<kind>", or "<kind>.<i>"
 *  (i = 0, 1, ... in file order) when the kind appears in several processes.
 *
 *  Endpoints: every actor binds its inbox at inproc://troupe-<uid>/<name> (uid unique
 *  per tr_topology_t, so several troupes can share a process). With a `processes:`
 *  section it also binds a remote endpoint: ipc://<rundir>/<name> when its process
 *  names no host, tcp://<host>:<base_port + index> when it does. A sender in the same
 *  process connects to the inproc endpoint, any other sender to the remote one
 *  (tr_topo_endpoint_for).
 *
 *  Not thread-safe while loading; a loaded topology is read-only and may be shared.
 *
 *      char err[512];
 *      tr_topology_t *topo = tr_topo_load("t.yaml", &schema, err, sizeof err);
 *      if (!topo) { fprintf(stderr, "%s\n", err); return 1; }
 *      tr_topo_derive_endpoints(topo, "/tmp/troupe-abc123");
 *      ...
 *      tr_topo_destroy(&topo);                                                        */
#ifndef TR_TOPOLOGY_H
#define TR_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

/* ---- configuration sections (kv:, scheduler:, frontend:, or a custom actor's) ---- */

typedef enum {
    TR_CONF_STR = 1,
    TR_CONF_INT,      /* YAML integer */
    TR_CONF_FLOAT,    /* YAML number (integers accepted) */
    TR_CONF_BOOL,     /* true/false (also yes/no, on/off) */
    TR_CONF_STRLIST,  /* sequence of scalars, or a flow sequence [a, b] */
} tr_conf_type_t;

/* One accepted key of a section; tables end with {NULL}. */
typedef struct {
    const char *key;
    tr_conf_type_t type;
    const char *help;  /* one line for docs and --help */
} tr_conf_key_t;

typedef struct {
    char *key;          /* owned */
    tr_conf_type_t type;
    char *str;          /* owned: STR value, and the source text of every scalar */
    int64_t i;          /* INT, and BOOL as 0/1 */
    double f;           /* FLOAT (also set for INT) */
    char **list;        /* owned: STRLIST items */
    int n_list;
    int line;           /* 1-based line in the file; 0 when set from the command line */
} tr_conf_val_t;

typedef struct {
    char *name;         /* owned: "kv", "scheduler", "frontend", "reqlog", ... */
    tr_conf_val_t *vals;/* owned */
    int n_vals;
    int line;
} tr_conf_section_t;

/* Look-ups on a section; `sec` may be NULL (section absent). Return `def` when unset. */
const char *tr_conf_get_str(const tr_conf_section_t *sec, const char *key, const char *def);
int64_t tr_conf_get_int(const tr_conf_section_t *sec, const char *key, int64_t def);
double tr_conf_get_float(const tr_conf_section_t *sec, const char *key, double def);
int tr_conf_get_bool(const tr_conf_section_t *sec, const char *key, int def);
/* The value itself, or NULL when unset. */
const tr_conf_val_t *tr_conf_get(const tr_conf_section_t *sec, const char *key);

/* ---- what the loader needs to know about actors (filled from the actor registry) ---- */

typedef struct {
    /* Returns 1 if `kind` names a registered actor, else 0. */
    int (*actor_known)(const char *kind);
    /* Returns 1 if instances of `kind` carry a rank (executor, communicator). */
    int (*actor_ranked)(const char *kind);
    /* Accepted keys of top-level section `name` (e.g. "kv", "scheduler", "frontend",
     * "reqlog"), or NULL if no such section exists. */
    const tr_conf_key_t *(*section_keys)(const char *name);
    /* Actor kinds used when no `processes:` section is given, NULL-terminated; ranked
     * kinds get one instance per rank (tensor x pipeline x expert). */
    const char *const *default_actors;
    /* Kinds that must be present at least once in any topology, NULL-terminated. */
    const char *const *required_actors;
} tr_topo_schema_t;

/* ---- the topology ---- */

#define TR_TOPO_NAME_MAX 64
#define TR_TOPO_ENDPOINT_MAX 256

typedef struct {
    char name[TR_TOPO_NAME_MAX];   /* process entry's name ("front", "rank0"); "main" by default */
    char **actors;                 /* owned: actor kinds as written, in order */
    int n_actors;
    int rank;                      /* -1 when the entry names none */
    char device[32];               /* "cpu" (default) or "cuda:N" */
    char host[128];                /* "" = this machine (ipc://); else tcp:// on that host */
    int line;
} tr_topo_process_t;

typedef struct {
    char name[TR_TOPO_NAME_MAX];   /* instance name: "frontend", "executor.0", "tokenizer.1" */
    char kind[TR_TOPO_NAME_MAX];   /* registry name: "executor" */
    int process;                   /* index into procs */
    int rank;                      /* rank for ranked kinds, else -1 */
    char inproc[TR_TOPO_ENDPOINT_MAX];  /* set by tr_topo_derive_endpoints */
    char remote[TR_TOPO_ENDPOINT_MAX];  /* "" in single-process topologies */
} tr_topo_actor_t;

typedef struct {
    char path[512];                /* file it came from; "" for the default */
    char model[512];               /* "" when not given */
    char listen[TR_TOPO_ENDPOINT_MAX]; /* client endpoint, default tcp://127.0.0.1:5555 */
    int tensor, pipeline, expert;  /* parallel sizes, each >= 1 */
    int world_size;                /* tensor * pipeline * expert */
    int multiprocess;              /* 1 when a `processes:` section was given */
    int base_port;                 /* first tcp port for actors on named hosts (default 57100) */
    char on_failure[16];           /* "shutdown" (default) or "keep" */
    tr_topo_process_t *procs;      /* owned; one entry "main" when single-process */
    int n_procs;
    tr_topo_actor_t *actors;       /* owned; every instance, in process order */
    int n_actors;
    tr_conf_section_t *sections;   /* owned; every config section present in the file */
    int n_sections;
    char supervisor[TR_TOPO_ENDPOINT_MAX]; /* launcher's endpoint (ipc://<rundir>/supervisor) */
    uint64_t uid;                  /* makes inproc endpoints unique in the process */
} tr_topology_t;

/* Loads and validates `path`. On failure returns NULL and writes "FILE:LINE: reason"
 * (or "FILE: reason" when no line applies) into err. The caller owns the result. */
tr_topology_t *tr_topo_load(const char *path, const tr_topo_schema_t *schema, char *err,
                            size_t errlen);

/* Same, from a string (tests); `name` stands in for the file name in errors. */
tr_topology_t *tr_topo_load_string(const char *yaml, const char *name,
                                   const tr_topo_schema_t *schema, char *err, size_t errlen);

/* The single-process topology: schema->default_actors as threads of process "main". */
tr_topology_t *tr_topo_default(const tr_topo_schema_t *schema);

/* Fills every actor's inproc and remote endpoints and topo->supervisor. `rundir` is the
 * private run directory for ipc:// files; it may be NULL for single-process topologies.
 * Returns TR_OK, or TR_EINVAL (with err) if an ipc path would exceed the socket path limit. */
int tr_topo_derive_endpoints(tr_topology_t *topo, const char *rundir, char *err, size_t errlen);

/* The endpoint a sender living in process `from_proc` connects to for actor `to`
 * (its inproc endpoint when in the same process, else its remote one). */
const char *tr_topo_endpoint_for(const tr_topology_t *topo, int from_proc,
                                 const tr_topo_actor_t *to);

/* Look-ups; NULL / -1 when absent. */
const tr_topo_actor_t *tr_topo_find_actor(const tr_topology_t *topo, const char *name);
int tr_topo_find_process(const tr_topology_t *topo, const char *name);
const tr_conf_section_t *tr_topo_section(const tr_topology_t *topo, const char *name);

/* Frees everything; NULL-safe; sets *topo_p = NULL. */
void tr_topo_destroy(tr_topology_t **topo_p);

#endif
