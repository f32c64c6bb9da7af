/*  runtime/topology.c - loads, validates and expands topology files (runtime/topology.h).
 *
 *  The file is read whole and parsed with libyaml's document API, which gives every node
 *  its line. Loading has three phases, each stopping at the first error:
 *    1. parse:    walk the document in file order; check keys, scalar types, ranges,
 *                 names and actor kinds entry by entry (s_parse_*);
 *    2. validate: rules across entries: ranks cover [0, world_size) exactly once, every
 *                 required actor runs somewhere, hosts all given or none (s_validate);
 *    3. expand:   one tr_topo_actor_t per instance, with its name (s_expand).
 *  Endpoints are filled later by tr_topo_derive_endpoints, once the run directory is known.
 *  Errors are "FILE:LINE: reason" with 1-based lines (libyaml's marks are 0-based).
 *
 *  Owns: the tr_topology_t it returns and everything hanging from it. The yaml document
 *  and parser live only inside one load call. Not thread-safe while loading; the uid
 *  counter is atomic, so loads in different threads are fine.                          */
#include "runtime/topology.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "runtime/status.h"

/* ---- limits (docs/topology.md) ---- */

#define S_PARALLEL_MAX    1024 /* each of tensor, pipeline, expert */
#define S_WORLD_MAX       4096 /* their product */
#define S_BASE_PORT_MIN   1024
#define S_BASE_PORT_MAX   65000
#define S_CUDA_DEVICE_MAX 1023
#define S_IPC_PATH_MAX    107                    /* sizeof(sockaddr_un.sun_path) - 1 on Linux */
#define S_KIND_MAX        (TR_TOPO_NAME_MAX - 8) /* leaves room for ".<index>" */

static const char *const s_top_keys[] = {"model",      "listen",    "parallel", "processes",
                                         "on_failure", "base_port", NULL};
static const char *const s_parallel_keys[] = {"tensor", "pipeline", "expert", NULL};
static const char *const s_process_keys[] = {"name", "actors", "rank", "device", "host", NULL};

/* Per-process facts needed only while loading (lines for messages). */
typedef struct {
    int name_line;
    int rank_line; /* line of `rank:`, or 0 when absent */
    int ranked;    /* runs at least one ranked actor */
    int host_line;
} proc_info_t;

typedef struct {
    const char *name;               /* file name used in messages */
    const tr_topo_schema_t *schema; /* borrowed */
    yaml_document_t *doc;           /* borrowed */
    tr_topology_t *topo;            /* being built */
    proc_info_t *info;              /* owned: one per topo->procs entry */
    int procs_line;                 /* line of the `processes:` key */
    char *err;
    size_t errlen;
} loader_t;

static atomic_uint_fast32_t s_uid_counter;

/* ---- small helpers ---- */

static void s_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int s_line(const yaml_node_t *node) {
    return node ? (int)node->start_mark.line + 1 : 1;
}

/* Writes "FILE:LINE: reason" (line 0: "FILE: reason"); returns TR_EPROTO. */
static int s_fail(loader_t *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(loader_t *ld, int line, const char *fmt, ...) {
    if (!ld->err || ld->errlen == 0) return TR_EPROTO;
    int n = line > 0 ? snprintf(ld->err, ld->errlen, "%s:%d: ", ld->name, line)
                     : snprintf(ld->err, ld->errlen, "%s: ", ld->name);
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return TR_EPROTO;
}

static yaml_node_t *s_node(const loader_t *ld, int id) {
    return yaml_document_get_node(ld->doc, id);
}

static const char *s_text(const yaml_node_t *node) {
    return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

static int s_is_plain(const yaml_node_t *node) {
    return node->type == YAML_SCALAR_NODE && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A YAML null: an empty value, `~` or `null`, unquoted. */
static int s_is_null(const yaml_node_t *node) {
    if (!s_is_plain(node)) return 0;
    const char *s = s_text(node);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* How a value reads in a message: 'text' (cut at 60 bytes), or what it is instead. */
static const char *s_got(const yaml_node_t *node, char *buf, size_t n) {
    if (node->type == YAML_MAPPING_NODE) return "a mapping";
    if (node->type == YAML_SEQUENCE_NODE) return "a list";
    if (s_is_null(node)) return "nothing";
    const char *s = s_text(node);
    const char *more = strlen(s) > 60 ? "..." : "";
    /* a quoted "2" or "true" is a string in YAML: say so when refusing it */
    int looks_typed = *s && (strspn(s, "0123456789+-.eE") == strlen(s) || !strcasecmp(s, "true") ||
                             !strcasecmp(s, "false") || !strcasecmp(s, "yes") ||
                             !strcasecmp(s, "no") || !strcasecmp(s, "on") || !strcasecmp(s, "off"));
    if (s_is_plain(node))
        snprintf(buf, n, "'%.60s%s'", s, more);
    else
        snprintf(buf, n, "\"%.60s%s\"%s", s, more, looks_typed ? " (quoted, so a string)" : "");
    return buf;
}

/* "a, b, c" from a NULL-terminated list (or a conf-key table) into buf. */
static const char *s_join(const char *const *names, const tr_conf_key_t *keys, char *buf,
                          size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names ? names[i] != NULL : keys[i].key != NULL; i++) {
        int w =
            snprintf(buf + used, n - used, "%s%s", i ? ", " : "", names ? names[i] : keys[i].key);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    return buf;
}

/* Decimal integer, optional sign, unquoted. */
static int s_parse_int(const yaml_node_t *node, int64_t *out) {
    if (!s_is_plain(node)) return -1;
    const char *s = s_text(node);
    const char *p = (*s == '-' || *s == '+') ? s + 1 : s;
    if (!*p) return -1;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = (int64_t)v;
    return 0;
}

/* Finite decimal number (integers too), unquoted. */
static int s_parse_float(const yaml_node_t *node, double *out) {
    if (!s_is_plain(node)) return -1;
    const char *s = s_text(node);
    if (!*s || strspn(s, "0123456789+-.eE") != strlen(s)) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* true/false, yes/no, on/off (any case), unquoted. */
static int s_parse_bool(const yaml_node_t *node, int *out) {
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    if (!s_is_plain(node)) return -1;
    const char *s = s_text(node);
    for (int i = 0; yes[i]; i++) {
        if (!strcasecmp(s, yes[i])) return *out = 1, 0;
        if (!strcasecmp(s, no[i])) return *out = 0, 0;
    }
    return -1;
}

/* Copies a string value into a fixed field, or fails with a reason. */
static int s_want_str(loader_t *ld, const char *key, const yaml_node_t *node, char *dst,
                      size_t dstlen) {
    char got[100];
    if (node->type != YAML_SCALAR_NODE || s_is_null(node))
        return s_fail(ld, s_line(node), "'%s' must be a string, got %s", key,
                      s_got(node, got, sizeof got));
    if (strlen(s_text(node)) != node->data.scalar.length)
        return s_fail(ld, s_line(node), "'%s' contains a NUL byte", key);
    if (node->data.scalar.length >= dstlen)
        return s_fail(ld, s_line(node), "'%s' is too long (at most %zu bytes)", key, dstlen - 1);
    memcpy(dst, s_text(node), node->data.scalar.length + 1);
    return TR_OK;
}

/* Every key a non-empty plain string, and none twice. */
static int s_check_keys(loader_t *ld, const yaml_node_t *map) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = s_node(ld, p->key);
        if (k->type != YAML_SCALAR_NODE || !*s_text(k))
            return s_fail(ld, s_line(k), "keys must be plain names");
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *k2 = s_node(ld, q->key);
            if (k2->type == YAML_SCALAR_NODE && !strcmp(s_text(k), s_text(k2)))
                return s_fail(ld, s_line(k), "duplicate key '%s' (also on line %d)", s_text(k),
                              s_line(k2));
        }
    }
    return TR_OK;
}

static int s_valid_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-') return 0;
    return 1;
}

static int s_actor_known(const tr_topo_schema_t *schema, const char *kind) {
    return !schema->actor_known || schema->actor_known(kind);
}

static int s_actor_ranked(const tr_topo_schema_t *schema, const char *kind) {
    return schema->actor_ranked && schema->actor_ranked(kind);
}

static const tr_conf_key_t *s_section_keys(const tr_topo_schema_t *schema, const char *name) {
    return schema->section_keys ? schema->section_keys(name) : NULL;
}

/* ---- creating and freeing ---- */

static tr_topology_t *s_topo_new(void) {
    tr_topology_t *topo = calloc(1, sizeof *topo);
    if (!topo) return NULL;
    snprintf(topo->listen, sizeof topo->listen, "tcp://127.0.0.1:5555");
    topo->tensor = topo->pipeline = topo->expert = topo->world_size = 1;
    topo->base_port = 57100;
    snprintf(topo->on_failure, sizeof topo->on_failure, "shutdown");
    /* pid in the high half, a per-process counter in the low half: unique within the
     * process, and unlikely to repeat across processes sharing an ipc namespace. */
    uint32_t n = (uint32_t)atomic_fetch_add(&s_uid_counter, 1) + 1;
    topo->uid = ((uint64_t)(uint32_t)getpid() << 32) | n;
    return topo;
}

static void s_process_fini(tr_topo_process_t *proc) {
    for (int i = 0; i < proc->n_actors; i++)
        free(proc->actors[i]);
    free(proc->actors);
}

static void s_val_fini(tr_conf_val_t *val) {
    free(val->key);
    free(val->str);
    for (int i = 0; i < val->n_list; i++)
        free(val->list[i]);
    free(val->list);
}

static void s_section_fini(tr_conf_section_t *sec) {
    free(sec->name);
    for (int i = 0; i < sec->n_vals; i++)
        s_val_fini(&sec->vals[i]);
    free(sec->vals);
}

void tr_topo_destroy(tr_topology_t **topo_p) {
    if (!topo_p || !*topo_p) return;
    tr_topology_t *topo = *topo_p;
    for (int i = 0; i < topo->n_procs; i++)
        s_process_fini(&topo->procs[i]);
    free(topo->procs);
    free(topo->actors);
    for (int i = 0; i < topo->n_sections; i++)
        s_section_fini(&topo->sections[i]);
    free(topo->sections);
    free(topo);
    *topo_p = NULL;
}

/* Appends a process entry with the given actor kinds (copied). */
static tr_topo_process_t *s_add_process(tr_topology_t *topo, const char *name) {
    tr_topo_process_t *procs = realloc(topo->procs, (size_t)(topo->n_procs + 1) * sizeof *procs);
    if (!procs) return NULL;
    topo->procs = procs;
    tr_topo_process_t *proc = &procs[topo->n_procs++];
    memset(proc, 0, sizeof *proc);
    snprintf(proc->name, sizeof proc->name, "%s", name);
    proc->rank = -1;
    snprintf(proc->device, sizeof proc->device, "cpu");
    return proc;
}

static int s_process_add_kind(tr_topo_process_t *proc, const char *kind) {
    char *copy = strdup(kind);
    char **actors =
        copy ? realloc(proc->actors, (size_t)(proc->n_actors + 1) * sizeof *actors) : NULL;
    if (!actors) {
        free(copy);
        return TR_ENOMEM;
    }
    proc->actors = actors;
    proc->actors[proc->n_actors++] = copy;
    return TR_OK;
}

static int s_add_actor(tr_topology_t *topo, int process, const char *kind, int rank,
                       const char *name) {
    tr_topo_actor_t *actors = realloc(topo->actors, (size_t)(topo->n_actors + 1) * sizeof *actors);
    if (!actors) return TR_ENOMEM;
    topo->actors = actors;
    tr_topo_actor_t *a = &actors[topo->n_actors++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    snprintf(a->kind, sizeof a->kind, "%s", kind);
    a->process = process;
    a->rank = rank;
    return TR_OK;
}

/* ---- phase 1: parse, in file order ---- */

static int s_parse_parallel(loader_t *ld, const yaml_node_t *key, const yaml_node_t *map) {
    char got[100], buf[128];
    tr_topology_t *topo = ld->topo;
    if (map->type != YAML_MAPPING_NODE)
        return s_fail(ld, s_line(map), "'parallel' must be a mapping (keys: %s), got %s",
                      s_join(s_parallel_keys, NULL, buf, sizeof buf), s_got(map, got, sizeof got));
    int rc = s_check_keys(ld, map);
    if (rc) return rc;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = s_node(ld, p->key), *v = s_node(ld, p->value);
        const char *name = s_text(k);
        int *field = !strcmp(name, "tensor")     ? &topo->tensor
                     : !strcmp(name, "pipeline") ? &topo->pipeline
                     : !strcmp(name, "expert")   ? &topo->expert
                                                 : NULL;
        if (!field)
            return s_fail(ld, s_line(k), "unknown key '%s' in 'parallel' (accepted: %s)", name,
                          s_join(s_parallel_keys, NULL, buf, sizeof buf));
        int64_t n;
        if (s_parse_int(v, &n) || n < 1)
            return s_fail(ld, s_line(v), "'%s' must be a positive integer, got %s", name,
                          s_got(v, got, sizeof got));
        if (n > S_PARALLEL_MAX)
            return s_fail(ld, s_line(v), "'%s' must be at most %d, got %s", name, S_PARALLEL_MAX,
                          s_got(v, got, sizeof got));
        *field = (int)n;
    }
    int64_t world = (int64_t)topo->tensor * topo->pipeline * topo->expert;
    if (world > S_WORLD_MAX)
        return s_fail(ld, s_line(key),
                      "parallel sizes too large: tensor %d x pipeline %d x expert %d = %" PRId64
                      " ranks, more than %d",
                      topo->tensor, topo->pipeline, topo->expert, world, S_WORLD_MAX);
    topo->world_size = (int)world;
    return TR_OK;
}

static int s_parse_actors(loader_t *ld, tr_topo_process_t *proc, proc_info_t *info,
                          const yaml_node_t *seq) {
    char got[100];
    if (seq->type != YAML_SEQUENCE_NODE ||
        seq->data.sequence.items.start == seq->data.sequence.items.top)
        return s_fail(ld, s_line(seq), "'actors' must be a non-empty list of actor kinds, got %s",
                      seq->type == YAML_SEQUENCE_NODE ? "an empty list"
                                                      : s_got(seq, got, sizeof got));
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        const yaml_node_t *v = s_node(ld, *it);
        if (v->type != YAML_SCALAR_NODE || s_is_null(v))
            return s_fail(ld, s_line(v), "'actors' items must be actor kinds, got %s",
                          s_got(v, got, sizeof got));
        const char *kind = s_text(v);
        if (!s_actor_known(ld->schema, kind))
            return s_fail(ld, s_line(v), "unknown actor '%s'", kind);
        if (strlen(kind) > S_KIND_MAX)
            return s_fail(ld, s_line(v), "actor kind '%.20s...' is too long (at most %d bytes)",
                          kind, S_KIND_MAX);
        for (int i = 0; i < proc->n_actors; i++)
            if (!strcmp(proc->actors[i], kind))
                return s_fail(ld, s_line(v), "actor '%s' is listed twice in one process entry",
                              kind);
        if (s_process_add_kind(proc, kind)) return s_fail(ld, s_line(v), "out of memory");
        if (s_actor_ranked(ld->schema, kind)) info->ranked = 1;
    }
    return TR_OK;
}

static int s_parse_device(loader_t *ld, tr_topo_process_t *proc, const yaml_node_t *v) {
    char got[100];
    const char *s = s_text(v);
    int ok = s && !s_is_null(v) && !strcmp(s, "cpu");
    if (s && !strncmp(s, "cuda:", 5) && s[5]) {
        const char *d = s + 5;
        ok = strspn(d, "0123456789") == strlen(d) && strlen(d) <= 4 && atoi(d) <= S_CUDA_DEVICE_MAX;
    }
    if (!ok)
        return s_fail(ld, s_line(v), "'device' must be 'cpu' or 'cuda:N' (N = 0..%d), got %s",
                      S_CUDA_DEVICE_MAX, s_got(v, got, sizeof got));
    snprintf(proc->device, sizeof proc->device, "%s", s);
    return TR_OK;
}

static int s_parse_host(loader_t *ld, tr_topo_process_t *proc, const yaml_node_t *v) {
    char got[100];
    int rc = s_want_str(ld, "host", v, proc->host, sizeof proc->host);
    if (rc) return rc;
    /* names, IPv4 and IPv6 addresses; nothing that would break "tcp://host:port" */
    if (strspn(proc->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") !=
        strlen(proc->host))
        return s_fail(ld, s_line(v), "'host' must be a host name or address, got %s",
                      s_got(v, got, sizeof got));
    return TR_OK;
}

static int s_parse_process(loader_t *ld, const yaml_node_t *map) {
    char got[100], buf[128];
    if (map->type != YAML_MAPPING_NODE)
        return s_fail(ld, s_line(map),
                      "each 'processes' entry must be a mapping (keys: %s), got %s",
                      s_join(s_process_keys, NULL, buf, sizeof buf), s_got(map, got, sizeof got));
    int rc = s_check_keys(ld, map);
    if (rc) return rc;

    /* The name first, so that later messages can say which entry they are about. */
    const yaml_node_t *name = NULL, *actors = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = s_text(s_node(ld, p->key));
        if (!strcmp(k, "name")) name = s_node(ld, p->value);
        if (!strcmp(k, "actors")) actors = s_node(ld, p->value);
    }
    if (!name) return s_fail(ld, s_line(map), "process entry has no 'name'");
    char pname[TR_TOPO_NAME_MAX];
    if ((rc = s_want_str(ld, "name", name, pname, sizeof pname))) return rc;
    if (!s_valid_name(pname))
        return s_fail(ld, s_line(name), "'name' must match [A-Za-z0-9_-]+, got %s",
                      s_got(name, got, sizeof got));
    for (int i = 0; i < ld->topo->n_procs; i++)
        if (!strcmp(ld->topo->procs[i].name, pname))
            return s_fail(ld, s_line(name), "duplicate process name '%s' (also on line %d)", pname,
                          ld->info[i].name_line);
    if (!actors) return s_fail(ld, s_line(map), "process '%s' has no 'actors'", pname);

    proc_info_t *info = realloc(ld->info, (size_t)(ld->topo->n_procs + 1) * sizeof *info);
    if (!info) return s_fail(ld, s_line(map), "out of memory");
    ld->info = info;
    tr_topo_process_t *proc = s_add_process(ld->topo, pname);
    if (!proc) return s_fail(ld, s_line(map), "out of memory");
    info = &ld->info[ld->topo->n_procs - 1];
    memset(info, 0, sizeof *info);
    info->name_line = s_line(name);
    proc->line = s_line(map);

    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = s_node(ld, p->key), *v = s_node(ld, p->value);
        const char *key = s_text(k);
        if (!strcmp(key, "name")) {
            continue;
        } else if (!strcmp(key, "actors")) {
            rc = s_parse_actors(ld, proc, info, v);
        } else if (!strcmp(key, "rank")) {
            int64_t r;
            if (s_parse_int(v, &r) || r < 0 || r >= S_WORLD_MAX)
                return s_fail(ld, s_line(v), "'rank' must be a non-negative integer, got %s",
                              s_got(v, got, sizeof got));
            proc->rank = (int)r;
            info->rank_line = s_line(v);
        } else if (!strcmp(key, "device")) {
            rc = s_parse_device(ld, proc, v);
        } else if (!strcmp(key, "host")) {
            rc = s_parse_host(ld, proc, v);
            info->host_line = s_line(v);
        } else {
            return s_fail(ld, s_line(k), "unknown key '%s' in process '%s' (accepted: %s)", key,
                          pname, s_join(s_process_keys, NULL, buf, sizeof buf));
        }
        if (rc) return rc;
    }
    return TR_OK;
}

static int s_parse_processes(loader_t *ld, const yaml_node_t *key, const yaml_node_t *seq) {
    char got[100];
    if (seq->type != YAML_SEQUENCE_NODE)
        return s_fail(ld, s_line(seq), "'processes' must be a list of process entries, got %s",
                      s_got(seq, got, sizeof got));
    if (seq->data.sequence.items.start == seq->data.sequence.items.top)
        return s_fail(ld, s_line(key), "'processes' is empty (leave it out for one process)");
    ld->topo->multiprocess = 1;
    ld->procs_line = s_line(key);
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        int rc = s_parse_process(ld, s_node(ld, *it));
        if (rc) return rc;
    }
    return TR_OK;
}

static int s_parse_conf_val(loader_t *ld, const char *sec, const tr_conf_key_t *spec,
                            const yaml_node_t *v, tr_conf_val_t *val) {
    char got[100];
    val->type = spec->type;
    val->line = s_line(v);
    if (!(val->key = strdup(spec->key))) return s_fail(ld, val->line, "out of memory");
    if (spec->type == TR_CONF_STRLIST) {
        if (v->type != YAML_SEQUENCE_NODE)
            return s_fail(ld, val->line, "'%s.%s' must be a list of strings, got %s", sec,
                          spec->key, s_got(v, got, sizeof got));
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n && !(val->list = calloc(n, sizeof *val->list)))
            return s_fail(ld, val->line, "out of memory");
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            const yaml_node_t *item = s_node(ld, *it);
            if (item->type != YAML_SCALAR_NODE || s_is_null(item))
                return s_fail(ld, s_line(item), "'%s.%s' must be a list of strings, got item %s",
                              sec, spec->key, s_got(item, got, sizeof got));
            if (!(val->list[val->n_list] = strdup(s_text(item))))
                return s_fail(ld, val->line, "out of memory");
            val->n_list++;
        }
        return TR_OK;
    }
    if (v->type != YAML_SCALAR_NODE || s_is_null(v)) {
        static const char *const what[] = {"",         "a string",      "an integer",
                                           "a number", "true or false", ""};
        return s_fail(ld, val->line, "'%s.%s' must be %s, got %s", sec, spec->key, what[spec->type],
                      s_got(v, got, sizeof got));
    }
    if (!(val->str = strdup(s_text(v)))) return s_fail(ld, val->line, "out of memory");
    int b;
    switch (spec->type) {
    case TR_CONF_STR:
        break;
    case TR_CONF_INT:
        if (s_parse_int(v, &val->i))
            return s_fail(ld, val->line, "'%s.%s' must be an integer, got %s", sec, spec->key,
                          s_got(v, got, sizeof got));
        val->f = (double)val->i;
        break;
    case TR_CONF_FLOAT:
        if (s_parse_float(v, &val->f))
            return s_fail(ld, val->line, "'%s.%s' must be a number, got %s", sec, spec->key,
                          s_got(v, got, sizeof got));
        val->i = (int64_t)val->f;
        break;
    case TR_CONF_BOOL:
        if (s_parse_bool(v, &b))
            return s_fail(ld, val->line, "'%s.%s' must be true or false, got %s", sec, spec->key,
                          s_got(v, got, sizeof got));
        val->i = b;
        val->f = b;
        break;
    default:
        return s_fail(ld, val->line, "'%s.%s' has an unknown type in the schema", sec, spec->key);
    }
    return TR_OK;
}

static int s_parse_section(loader_t *ld, const yaml_node_t *key, const yaml_node_t *map,
                           const tr_conf_key_t *keys) {
    char got[100], buf[512];
    const char *name = s_text(key);
    if (map->type != YAML_MAPPING_NODE && !s_is_null(map))
        return s_fail(ld, s_line(map), "'%s' must be a mapping of settings (accepted: %s), got %s",
                      name, s_join(NULL, keys, buf, sizeof buf), s_got(map, got, sizeof got));
    tr_topology_t *topo = ld->topo;
    tr_conf_section_t *secs =
        realloc(topo->sections, (size_t)(topo->n_sections + 1) * sizeof *secs);
    if (!secs) return s_fail(ld, s_line(key), "out of memory");
    topo->sections = secs;
    tr_conf_section_t *sec = &secs[topo->n_sections++];
    memset(sec, 0, sizeof *sec);
    sec->line = s_line(key);
    if (!(sec->name = strdup(name))) return s_fail(ld, s_line(key), "out of memory");
    if (map->type != YAML_MAPPING_NODE) return TR_OK; /* `kv:` with nothing under it */

    int rc = s_check_keys(ld, map);
    if (rc) return rc;
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n && !(sec->vals = calloc(n, sizeof *sec->vals)))
        return s_fail(ld, s_line(key), "out of memory");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = s_node(ld, p->key);
        const tr_conf_key_t *spec = keys;
        while (spec->key && strcmp(spec->key, s_text(k)))
            spec++;
        if (!spec->key)
            return s_fail(ld, s_line(k), "unknown key '%s' in section '%s' (accepted: %s)",
                          s_text(k), name, s_join(NULL, keys, buf, sizeof buf));
        /* counted before parsing, so that a half-filled value is freed with the section */
        rc = s_parse_conf_val(ld, name, spec, s_node(ld, p->value), &sec->vals[sec->n_vals++]);
        if (rc) return rc;
    }
    return TR_OK;
}

static int s_parse_listen(loader_t *ld, const yaml_node_t *v) {
    char got[100];
    static const char *const schemes[] = {"tcp://", "ipc://", "inproc://", NULL};
    tr_topology_t *topo = ld->topo;
    int rc = s_want_str(ld, "listen", v, topo->listen, sizeof topo->listen);
    if (rc) return rc;
    for (int i = 0; schemes[i]; i++) {
        size_t n = strlen(schemes[i]);
        if (!strncmp(topo->listen, schemes[i], n)) {
            if (!topo->listen[n])
                return s_fail(ld, s_line(v), "'listen' has no address after %s", schemes[i]);
            return TR_OK;
        }
    }
    return s_fail(ld, s_line(v), "'listen' must start with tcp://, ipc:// or inproc://, got %s",
                  s_got(v, got, sizeof got));
}

static int s_parse_top(loader_t *ld, const yaml_node_t *root) {
    char got[100], buf[128];
    if (root->type != YAML_MAPPING_NODE)
        return s_fail(ld, s_line(root), "the top level must be a mapping of keys (%s, ...), got %s",
                      s_join(s_top_keys, NULL, buf, sizeof buf), s_got(root, got, sizeof got));
    int rc = s_check_keys(ld, root);
    if (rc) return rc;
    tr_topology_t *topo = ld->topo;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = s_node(ld, p->key), *v = s_node(ld, p->value);
        const char *key = s_text(k);
        const tr_conf_key_t *keys;
        if (!strcmp(key, "model")) {
            rc = s_want_str(ld, key, v, topo->model, sizeof topo->model);
        } else if (!strcmp(key, "listen")) {
            rc = s_parse_listen(ld, v);
        } else if (!strcmp(key, "parallel")) {
            rc = s_parse_parallel(ld, k, v);
        } else if (!strcmp(key, "processes")) {
            rc = s_parse_processes(ld, k, v);
        } else if (!strcmp(key, "on_failure")) {
            const char *s = s_text(v);
            if (!s || (strcmp(s, "shutdown") && strcmp(s, "keep")))
                return s_fail(ld, s_line(v), "'on_failure' must be 'shutdown' or 'keep', got %s",
                              s_got(v, got, sizeof got));
            snprintf(topo->on_failure, sizeof topo->on_failure, "%s", s);
        } else if (!strcmp(key, "base_port")) {
            int64_t port;
            if (s_parse_int(v, &port) || port < S_BASE_PORT_MIN || port > S_BASE_PORT_MAX)
                return s_fail(ld, s_line(v), "'base_port' must be an integer in %d..%d, got %s",
                              S_BASE_PORT_MIN, S_BASE_PORT_MAX, s_got(v, got, sizeof got));
            topo->base_port = (int)port;
        } else if ((keys = s_section_keys(ld->schema, key)) != NULL) {
            rc = s_parse_section(ld, k, v, keys);
        } else {
            return s_fail(ld, s_line(k),
                          "unknown key '%s' (top-level keys: %s, and config sections)", key,
                          s_join(s_top_keys, NULL, buf, sizeof buf));
        }
        if (rc) return rc;
    }
    return TR_OK;
}

/* ---- phase 2: rules across process entries ---- */

static int s_validate(loader_t *ld) {
    tr_topology_t *topo = ld->topo;
    const tr_topo_schema_t *schema = ld->schema;
    char sizes[96];
    snprintf(sizes, sizeof sizes, "tensor %d x pipeline %d x expert %d", topo->tensor,
             topo->pipeline, topo->expert);

    int first_ranked = -1;
    for (int i = 0; i < topo->n_procs; i++) {
        tr_topo_process_t *proc = &topo->procs[i];
        proc_info_t *info = &ld->info[i];
        if (!info->ranked) {
            if (info->rank_line)
                return s_fail(ld, info->rank_line,
                              "process '%s' has a 'rank' but runs no ranked actor", proc->name);
            continue;
        }
        if (!info->rank_line) {
            if (topo->world_size > 1)
                return s_fail(ld, proc->line,
                              "process '%s' runs ranked actors but has no 'rank' (world size is "
                              "%d: %s)",
                              proc->name, topo->world_size, sizes);
            proc->rank = 0;
        }
        int line = info->rank_line ? info->rank_line : proc->line;
        if (proc->rank >= topo->world_size)
            return s_fail(ld, line, "rank %d out of range: world size is %d (%s)", proc->rank,
                          topo->world_size, sizes);
        for (int j = 0; j < i; j++)
            if (ld->info[j].ranked && topo->procs[j].rank == proc->rank)
                return s_fail(ld, line, "duplicate rank %d (also on line %d)", proc->rank,
                              ld->info[j].rank_line ? ld->info[j].rank_line : topo->procs[j].line);
        /* every rank runs the same ranked actors (executor with its communicator) */
        if (first_ranked < 0) {
            first_ranked = i;
            continue;
        }
        const tr_topo_process_t *ref = &topo->procs[first_ranked];
        for (int pass = 0; pass < 2; pass++) {
            const tr_topo_process_t *a = pass ? proc : ref, *b = pass ? ref : proc;
            for (int k = 0; k < a->n_actors; k++) {
                if (!s_actor_ranked(schema, a->actors[k])) continue;
                int found = 0;
                for (int m = 0; m < b->n_actors; m++)
                    found |= !strcmp(a->actors[k], b->actors[m]);
                if (!found)
                    return s_fail(ld, proc->line,
                                  "ranked actor '%s' runs on rank %d but not on rank %d: every "
                                  "rank needs the same ranked actors",
                                  a->actors[k], a->rank, b->rank);
            }
        }
    }
    if (first_ranked >= 0) {
        for (int r = 0; r < topo->world_size; r++) {
            int found = 0;
            for (int i = 0; i < topo->n_procs && !found; i++)
                found = ld->info[i].ranked && topo->procs[i].rank == r;
            if (!found)
                return s_fail(ld, ld->procs_line, "rank %d has no process (world size is %d: %s)",
                              r, topo->world_size, sizes);
        }
    }
    for (int k = 0; schema->required_actors && schema->required_actors[k]; k++) {
        const char *kind = schema->required_actors[k];
        int found = 0;
        for (int i = 0; i < topo->n_procs && !found; i++)
            for (int j = 0; j < topo->procs[i].n_actors && !found; j++)
                found = !strcmp(topo->procs[i].actors[j], kind);
        if (!found) return s_fail(ld, ld->procs_line, "no process runs actor '%s'", kind);
    }
    /* ipc:// reaches only this machine: either every process names its host, or none does */
    for (int i = 1; i < topo->n_procs; i++) {
        const tr_topo_process_t *a = &topo->procs[0], *b = &topo->procs[i];
        if (!a->host[0] != !b->host[0]) {
            int with = a->host[0] ? 0 : i, without = a->host[0] ? i : 0;
            return s_fail(ld, topo->procs[without].line,
                          "process '%s' names no host but process '%s' does (line %d): give "
                          "every process a host, or none",
                          topo->procs[without].name, topo->procs[with].name,
                          ld->info[with].host_line);
        }
    }
    return TR_OK;
}

/* ---- phase 3: actor instances ---- */

/* Number of process entries that list `kind`. */
static int s_count_kind(const tr_topology_t *topo, const char *kind) {
    int n = 0;
    for (int i = 0; i < topo->n_procs; i++)
        for (int j = 0; j < topo->procs[i].n_actors; j++)
            n += !strcmp(topo->procs[i].actors[j], kind);
    return n;
}

/* Expands topo->procs into topo->actors. Single-process topologies (one "main" holding
 * every kind) expand ranked kinds once per rank; otherwise a process holds one rank. */
static int s_expand(tr_topology_t *topo, const tr_topo_schema_t *schema) {
    char name[TR_TOPO_NAME_MAX];
    for (int p = 0; p < topo->n_procs; p++) {
        const tr_topo_process_t *proc = &topo->procs[p];
        for (int j = 0; j < proc->n_actors; j++) {
            const char *kind = proc->actors[j];
            if (s_actor_ranked(schema, kind)) {
                int r0 = topo->multiprocess ? proc->rank : 0;
                int r1 = topo->multiprocess ? proc->rank + 1 : topo->world_size;
                for (int r = r0; r < r1; r++) {
                    snprintf(name, sizeof name, "%s.%d", kind, r);
                    if (s_add_actor(topo, p, kind, r, name)) return TR_ENOMEM;
                }
            } else if (s_count_kind(topo, kind) > 1) {
                int i = 0; /* replicas in file order: this is the i-th entry listing it */
                for (int q = 0; q < p; q++)
                    for (int m = 0; m < topo->procs[q].n_actors; m++)
                        i += !strcmp(topo->procs[q].actors[m], kind);
                snprintf(name, sizeof name, "%s.%d", kind, i);
                if (s_add_actor(topo, p, kind, -1, name)) return TR_ENOMEM;
            } else {
                if (s_add_actor(topo, p, kind, -1, kind)) return TR_ENOMEM;
            }
        }
    }
    return TR_OK;
}

static int s_add_main(tr_topology_t *topo, const tr_topo_schema_t *schema) {
    tr_topo_process_t *main_proc = s_add_process(topo, "main");
    if (!main_proc) return TR_ENOMEM;
    for (int i = 0; schema->default_actors && schema->default_actors[i]; i++)
        if (s_process_add_kind(main_proc, schema->default_actors[i])) return TR_ENOMEM;
    return TR_OK;
}

/* ---- loading ---- */

static tr_topology_t *s_load(const char *yaml, size_t len, const char *name,
                             const tr_topo_schema_t *schema, char *err, size_t errlen) {
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int have_doc = 0;
    loader_t ld = {.name = name, .schema = schema, .doc = &doc, .err = err, .errlen = errlen};
    s_set_err(err, errlen, "%s: failed", name);

    tr_topology_t *topo = ld.topo = s_topo_new();
    if (!topo || !yaml_parser_initialize(&parser)) {
        s_set_err(err, errlen, "%s: out of memory", name);
        tr_topo_destroy(&topo);
        return NULL;
    }
    snprintf(topo->path, sizeof topo->path, "%s", name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) goto syntax;
    have_doc = 1;

    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        s_fail(&ld, 1, "file is empty: no YAML document");
        goto fail;
    }
    if (!yaml_parser_load(&parser, &extra)) goto syntax;
    int more = yaml_document_get_root_node(&extra) != NULL;
    int more_line = more ? s_line(yaml_document_get_root_node(&extra)) : 0;
    yaml_document_delete(&extra);
    if (more) {
        s_fail(&ld, more_line, "a second YAML document: a topology file holds one");
        goto fail;
    }

    if (s_parse_top(&ld, root)) goto fail;
    if (topo->multiprocess) {
        if (s_validate(&ld)) goto fail;
    } else if (s_add_main(topo, schema)) {
        s_fail(&ld, 0, "out of memory");
        goto fail;
    }
    if (s_expand(topo, schema)) {
        s_fail(&ld, 0, "out of memory");
        goto fail;
    }
    for (int i = 0; i < topo->n_actors; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(topo->actors[i].name, topo->actors[j].name)) {
                s_fail(&ld, topo->procs[topo->actors[i].process].line,
                       "actor instance name '%s' is used twice", topo->actors[i].name);
                goto fail;
            }

    free(ld.info);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (err && errlen) err[0] = '\0';
    return topo;

syntax:
    /* libyaml's loader fails without setting an error when some of its stacks cannot grow */
    if (parser.error == YAML_MEMORY_ERROR || parser.error == YAML_NO_ERROR)
        s_fail(&ld, 0, "out of memory");
    else if (parser.context)
        s_fail(&ld, (int)parser.problem_mark.line + 1, "YAML syntax error: %s (%s on line %d)",
               parser.problem ? parser.problem : "unknown problem", parser.context,
               (int)parser.context_mark.line + 1);
    else
        s_fail(&ld, (int)parser.problem_mark.line + 1, "YAML syntax error: %s",
               parser.problem ? parser.problem : "unknown problem");
fail:
    free(ld.info);
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    tr_topo_destroy(&topo);
    return NULL;
}

tr_topology_t *tr_topo_load_string(const char *yaml, const char *name,
                                   const tr_topo_schema_t *schema, char *err, size_t errlen) {
    if (!name) name = "<string>";
    if (!yaml || !schema) {
        s_set_err(err, errlen, "%s: no text or no schema", name);
        return NULL;
    }
    return s_load(yaml, strlen(yaml), name, schema, err, errlen);
}

tr_topology_t *tr_topo_load(const char *path, const tr_topo_schema_t *schema, char *err,
                            size_t errlen) {
    char *buf = NULL;
    size_t len = 0, cap = 0;
    tr_topology_t *topo = NULL;
    if (!path || !schema) {
        s_set_err(err, errlen, "%s: no path or no schema", path ? path : "(null)");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        s_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nbuf = realloc(buf, cap);
            if (!nbuf) {
                s_set_err(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = nbuf;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        s_set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    topo = s_load(buf, len, path, schema, err, errlen);
fail:
    fclose(f);
    free(buf);
    return topo;
}

tr_topology_t *tr_topo_default(const tr_topo_schema_t *schema) {
    tr_topology_t *topo = schema ? s_topo_new() : NULL;
    if (!topo) return NULL;
    if (s_add_main(topo, schema) || s_expand(topo, schema)) tr_topo_destroy(&topo);
    return topo;
}

/* ---- endpoints ---- */

int tr_topo_derive_endpoints(tr_topology_t *topo, const char *rundir, char *err, size_t errlen) {
    if (!topo) {
        s_set_err(err, errlen, "no topology");
        return TR_EINVAL;
    }
    if (rundir && !*rundir) rundir = NULL;
    topo->supervisor[0] = '\0';
    if (rundir) {
        size_t plen = strlen(rundir) + strlen("/supervisor");
        if (plen > S_IPC_PATH_MAX) {
            s_set_err(err, errlen,
                      "ipc path '%s/supervisor' is %zu bytes, more than the %d allowed for "
                      "Unix sockets: use a shorter run directory",
                      rundir, plen, S_IPC_PATH_MAX);
            return TR_EINVAL;
        }
        snprintf(topo->supervisor, sizeof topo->supervisor, "ipc://%s/supervisor", rundir);
    }
    if (topo->multiprocess && topo->base_port + topo->n_actors - 1 > 65535) {
        s_set_err(err, errlen, "base_port %d + %d actors goes past port 65535", topo->base_port,
                  topo->n_actors);
        return TR_EINVAL;
    }
    for (int i = 0; i < topo->n_actors; i++) {
        tr_topo_actor_t *a = &topo->actors[i];
        const tr_topo_process_t *proc = &topo->procs[a->process];
        snprintf(a->inproc, sizeof a->inproc, "inproc://troupe-%" PRIx64 "/%s", topo->uid, a->name);
        a->remote[0] = '\0';
        if (!topo->multiprocess) continue;
        if (proc->host[0]) {
            /* IPv6 addresses go in brackets: tcp://[::1]:57100 */
            int v6 = strchr(proc->host, ':') != NULL;
            snprintf(a->remote, sizeof a->remote, "tcp://%s%s%s:%d", v6 ? "[" : "", proc->host,
                     v6 ? "]" : "", topo->base_port + i);
            continue;
        }
        if (!rundir) {
            s_set_err(err, errlen,
                      "actor '%s' needs an ipc:// endpoint, but no run directory was given",
                      a->name);
            return TR_EINVAL;
        }
        size_t plen = strlen(rundir) + 1 + strlen(a->name);
        if (plen > S_IPC_PATH_MAX) {
            s_set_err(err, errlen,
                      "ipc path '%s/%s' is %zu bytes, more than the %d allowed for Unix "
                      "sockets: use a shorter run directory",
                      rundir, a->name, plen, S_IPC_PATH_MAX);
            return TR_EINVAL;
        }
        snprintf(a->remote, sizeof a->remote, "ipc://%s/%s", rundir, a->name);
    }
    return TR_OK;
}

const char *tr_topo_endpoint_for(const tr_topology_t *topo, int from_proc,
                                 const tr_topo_actor_t *to) {
    if (!topo || !to) return NULL;
    if (to->process == from_proc || !to->remote[0]) return to->inproc;
    return to->remote;
}

/* ---- look-ups ---- */

const tr_topo_actor_t *tr_topo_find_actor(const tr_topology_t *topo, const char *name) {
    for (int i = 0; topo && name && i < topo->n_actors; i++)
        if (!strcmp(topo->actors[i].name, name)) return &topo->actors[i];
    return NULL;
}

int tr_topo_find_process(const tr_topology_t *topo, const char *name) {
    for (int i = 0; topo && name && i < topo->n_procs; i++)
        if (!strcmp(topo->procs[i].name, name)) return i;
    return -1;
}

const tr_conf_section_t *tr_topo_section(const tr_topology_t *topo, const char *name) {
    for (int i = 0; topo && name && i < topo->n_sections; i++)
        if (!strcmp(topo->sections[i].name, name)) return &topo->sections[i];
    return NULL;
}

/* ---- configuration values ---- */

const tr_conf_val_t *tr_conf_get(const tr_conf_section_t *sec, const char *key) {
    for (int i = 0; sec && key && i < sec->n_vals; i++)
        if (sec->vals[i].key && !strcmp(sec->vals[i].key, key)) return &sec->vals[i];
    return NULL;
}

const char *tr_conf_get_str(const tr_conf_section_t *sec, const char *key, const char *def) {
    const tr_conf_val_t *v = tr_conf_get(sec, key);
    return v && v->str ? v->str : def;
}

int64_t tr_conf_get_int(const tr_conf_section_t *sec, const char *key, int64_t def) {
    const tr_conf_val_t *v = tr_conf_get(sec, key);
    if (!v) return def;
    switch (v->type) {
    case TR_CONF_INT:
    case TR_CONF_BOOL:
    case TR_CONF_FLOAT:
        return v->i;
    default:
        return def;
    }
}

double tr_conf_get_float(const tr_conf_section_t *sec, const char *key, double def) {
    const tr_conf_val_t *v = tr_conf_get(sec, key);
    if (!v) return def;
    switch (v->type) {
    case TR_CONF_INT:
    case TR_CONF_BOOL:
    case TR_CONF_FLOAT:
        return v->f;
    default:
        return def;
    }
}

int tr_conf_get_bool(const tr_conf_section_t *sec, const char *key, int def) {
    const tr_conf_val_t *v = tr_conf_get(sec, key);
    if (!v) return def;
    switch (v->type) {
    case TR_CONF_INT:
    case TR_CONF_BOOL:
        return v->i != 0;
    default:
        return def;
    }
}
