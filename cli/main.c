/*  cli/main.c - the troupe command line.
 *
 *    troupe serve [-c FILE] [-m MODEL] [--listen EP] [--log-level L]   run a troupe
 *    troupe generate [-m MODEL] [sampling flags] "prompt"              one-shot, in process
 *    troupe health|stats [--endpoint EP] [--timeout S]                 ask a running one
 *    troupe actors                                                     known actor kinds
 *
 *  serve without -c runs every actor as a thread of this process; with a topology file
 *  that has a `processes:` section it becomes the launcher of one process per entry
 *  (runtime/launcher.h). Exit codes: see runtime/launcher.h and docs/topology.md.      */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "actors/registry.h"
#include "cli/cli.h"
#include "runtime/launcher.h"
#include "runtime/log.h"
#include "transport/wire.h"

#define TR_VERSION "0.1.0"

static void s_usage(FILE *f) {
    fprintf(f,
            "troupe %s - an actor-style LLM inference runtime\n\n"
            "usage:\n"
            "  troupe serve [-c FILE] [-m MODEL] [--listen EP] [--log-level LEVEL]\n"
            "               [--process NAME --rundir DIR] [--ready-timeout S]\n"
            "  troupe generate [-m MODEL] [--max-tokens N] [--temperature T] ... \"prompt\"\n"
            "  troupe health [--endpoint EP] [--timeout S]\n"
            "  troupe stats  [--endpoint EP] [--timeout S]\n"
            "  troupe actors            list actor kinds and their configuration keys\n"
            "  troupe schema            every message and field, as markdown tables\n"
            "  troupe client [opts] PROMPT | bench [opts]   generate / benchmark (--help)\n"
            "  troupe version\n\n"
            "MODEL: an HF directory, a .gguf or a llama2.c .bin (default: the bundled\n"
            "stories260K). serve runs every actor as a thread of one process, or, when FILE has a\n"
            "`processes:` section, one process per entry (docs/topology.md).\n"
            "Logging: --log-level or TROUPE_LOG = error|warn|info|debug|trace.\n",
            TR_VERSION);
}

static int s_set_log_level(const char *s) {
    int lvl = tr_log_parse_level(s);
    if (lvl < 0) {
        fprintf(stderr, "troupe: unknown log level '%s' (error|warn|info|debug|trace)\n", s);
        return -1;
    }
    tr_log_set_level((tr_log_level_t)lvl);
    return 0;
}

/* ---- serve ---- */

static int s_cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},   {"model", required_argument, 0, 'm'},
        {"listen", required_argument, 0, 'l'},   {"log-level", required_argument, 0, 'L'},
        {"process", required_argument, 0, 'p'},  {"rundir", required_argument, 0, 'r'},
        {"child", required_argument, 0, 'C'},    {"ready-timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *config = NULL, *model = NULL, *listen = NULL, *process = NULL, *rundir = NULL;
    const char *level = NULL;
    int child = 0;
    double ready_timeout = 60;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:m:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'm': model = optarg; break;
        case 'l': listen = optarg; break;
        case 'L': level = optarg; break;
        case 'p': process = optarg; break;
        case 'C': process = optarg; child = 1; break;
        case 'r': rundir = optarg; break;
        case 't': ready_timeout = atof(optarg); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return TR_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "troupe serve: unexpected argument '%s'\n", argv[optind]);
        return TR_EXIT_USAGE;
    }
    if (level && s_set_log_level(level) < 0) return TR_EXIT_USAGE;
    if (ready_timeout <= 0) {
        fprintf(stderr, "troupe serve: --ready-timeout must be positive\n");
        return TR_EXIT_USAGE;
    }

    char err[1024];
    tr_topology_t *topo = config ? tr_topo_load(config, tr_registry_schema(), err, sizeof err)
                                 : tr_topo_default(tr_registry_schema());
    if (!topo) {
        fprintf(stderr, "troupe: %s\n", config ? err : "cannot build the default topology");
        return TR_EXIT_USAGE;
    }
    if (model) snprintf(topo->model, sizeof topo->model, "%s", model);
    if (listen) {
        if (strncmp(listen, "tcp://", 6) && strncmp(listen, "ipc://", 6) &&
            strncmp(listen, "inproc://", 9)) {
            fprintf(stderr, "troupe serve: --listen must start with tcp://, ipc:// or inproc://\n");
            tr_topo_destroy(&topo);
            return TR_EXIT_USAGE;
        }
        snprintf(topo->listen, sizeof topo->listen, "%s", listen);
    }

    int code;
    if (process) { /* one entry of a multi-process topology: a launcher's child, or by hand */
        int idx = tr_topo_find_process(topo, process);
        if (idx < 0) {
            fprintf(stderr, "troupe serve: no process named '%s' in %s\n", process,
                    config ? config : "the default topology");
            code = TR_EXIT_USAGE;
        } else if (topo->multiprocess && !rundir) {
            fprintf(stderr, "troupe serve: --process needs --rundir DIR (shared by the "
                            "processes of this machine)\n");
            code = TR_EXIT_USAGE;
        } else if (tr_topo_derive_endpoints(topo, rundir, err, sizeof err) != TR_OK) {
            fprintf(stderr, "troupe: %s\n", err);
            code = TR_EXIT_USAGE;
        } else {
            if (!child) topo->supervisor[0] = '\0'; /* started by hand: nobody to report to */
            char name[80];
            snprintf(name, sizeof name, "%s", topo->procs[idx].name);
            tr_log_set_name(name);
            code = tr_run_process(topo, idx, tr_registry_find);
        }
    } else if (topo->multiprocess) {
        /* children get the same file and overrides */
        char *child_args[8];
        int n = 0;
        child_args[n++] = "-c";
        child_args[n++] = (char *)config;
        if (model) child_args[n++] = "-m", child_args[n++] = (char *)model;
        if (listen) child_args[n++] = "--listen", child_args[n++] = (char *)listen;
        static const char *levels[] = {"error", "warn", "info", "debug", "trace"};
        child_args[n++] = "--log-level";
        child_args[n++] = (char *)levels[tr_log_get_level()];
        tr_log_set_name("launcher");
        tr_launch_opts_t lo = {"/proc/self/exe", child_args, n, ready_timeout, 10.0};
        code = tr_launch(topo, &lo);
    } else if (tr_topo_derive_endpoints(topo, NULL, err, sizeof err) != TR_OK) {
        fprintf(stderr, "troupe: %s\n", err);
        code = TR_EXIT_USAGE;
    } else {
        code = tr_run_process(topo, 0, tr_registry_find);
    }
    tr_topo_destroy(&topo);
    return code;
}

/* ---- health / stats: a minimal client ---- */

static int s_cmd_query(int argc, char **argv, tr_msg_type_t type) {
    static const struct option opts[] = {
        {"endpoint", required_argument, 0, 'e'}, {"timeout", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0},
    };
    const char *endpoint = "tcp://127.0.0.1:5555";
    double timeout = 5;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 't': timeout = atof(optarg); break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return 1;
        }
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = (int)(timeout * 1000);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    int code = 1;
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "troupe: cannot connect to %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        goto out;
    }
    tr_msg_t m;
    tr_msg_init(&m, type);
    zmq_msg_t zm;
    if (tr_wire_encode(&m, &zm) != TR_OK || zmq_msg_send(&zm, s, 0) < 0) {
        fprintf(stderr, "troupe: send failed: %s\n", zmq_strerror(zmq_errno()));
        goto out;
    }
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    if (zmq_msg_recv(&reply, s, 0) < 0) {
        fprintf(stderr, "troupe: no answer from %s within %.1f s\n", endpoint, timeout);
        zmq_msg_close(&reply);
        goto out;
    }
    tr_msg_t r;
    tr_msg_err_t err;
    if (tr_msg_decode(&r, zmq_msg_data(&reply), zmq_msg_size(&reply), &err) != TR_OK) {
        fprintf(stderr, "troupe: bad reply: %s\n", err.text);
    } else {
        json_t *j = tr_cli_json_from_msgpack(r.root);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "null");
        free(text);
        json_decref(j);
        code = r.type == TR_MSG_ERROR ? 1
               : type == TR_MSG_HEALTH ? !tr_str_eq(r.u.health.status, "ok")
                                       : 0;
        tr_msg_fini(&r);
    }
    zmq_msg_close(&reply);
out:
    zmq_close(s);
    zmq_ctx_term(ctx);
    return code;
}

/* ---- schema: the message tables of docs/protocol.md ---- */

/* Prints s for a markdown table cell: '|' escaped. */
static void s_md(const char *s) {
    for (; *s; s++) {
        if (*s == '|') putchar('\\');
        putchar(*s);
    }
}

static int s_cmd_schema(void) {
    for (int t = 1; t < TR_MSG_COUNT; t++) {
        const tr_msg_desc_t *d = tr_msg_desc((tr_msg_type_t)t);
        printf("### `%s` (v%u)\n\n%s.\n\n", d->name, d->version, d->doc);
        printf("| field | type | required | limit | meaning |\n|---|---|---|---|---|\n");
        for (int i = 0; i < d->n_fields; i++) {
            const tr_field_desc_t *f = &d->fields[i];
            char limit[32] = "";
            if (f->limit) snprintf(limit, sizeof limit, "%llu", (unsigned long long)f->limit);
            printf("| `%s` | ", f->name);
            s_md(tr_field_type_name(f->type));
            printf(" | %s | %s | ", f->required ? "yes" : "no", limit);
            s_md(f->doc);
            printf(" |\n");
        }
        printf("\n");
    }
    return 0;
}

/* ---- actors ---- */

static const char *s_conf_type(tr_conf_type_t t) {
    switch (t) {
    case TR_CONF_STR: return "str";
    case TR_CONF_INT: return "int";
    case TR_CONF_FLOAT: return "float";
    case TR_CONF_BOOL: return "bool";
    case TR_CONF_STRLIST: return "[str]";
    }
    return "?";
}

static int s_cmd_actors(void) {
    for (const tr_actor_spec_t *const *s = tr_registry_all(); *s; s++) {
        printf("%-14s %s%s\n", (*s)->name, (*s)->ranked ? "[ranked] " : "", (*s)->summary);
        if ((*s)->conf_section) {
            printf("%-14s   section `%s:`\n", "", (*s)->conf_section);
            for (const tr_conf_key_t *k = (*s)->conf_keys; k && k->key; k++)
                printf("%-14s     %-20s %-6s %s\n", "", k->key, s_conf_type(k->type), k->help);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *env_level = getenv("TROUPE_LOG");
    if (env_level && s_set_log_level(env_level) < 0) return TR_EXIT_USAGE;
    if (argc < 2) {
        s_usage(stderr);
        return TR_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return s_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "generate") == 0) return tr_cli_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "health") == 0) return s_cmd_query(argc - 1, argv + 1, TR_MSG_HEALTH);
    if (strcmp(cmd, "stats") == 0) return s_cmd_query(argc - 1, argv + 1, TR_MSG_STATS);
    if (strcmp(cmd, "actors") == 0) return s_cmd_actors();
    if (strcmp(cmd, "schema") == 0) return s_cmd_schema();
    if (strcmp(cmd, "client") == 0) return tr_cli_client_main(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return tr_cli_bench_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("troupe %s\n", TR_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        s_usage(stdout);
        return 0;
    }
    fprintf(stderr, "troupe: unknown command '%s'\n\n", cmd);
    s_usage(stderr);
    return TR_EXIT_USAGE;
}
