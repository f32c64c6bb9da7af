/*  cli/generate.c - `troupe generate "prompt"`: the whole troupe in this process.
 *
 *  Starts every actor as a thread (the default topology, or -c FILE without a processes:
 *  section), with the frontend listening on a private inproc:// endpoint, sends one
 *  generate request from a DEALER in the same ZeroMQ context, and writes the streamed
 *  text to stdout as it arrives. A summary (finish reason, tokens, TTFT, TPOT) goes to
 *  stderr. Ctrl-C aborts the request and exits 130.                                  */
#include <getopt.h>
#include <signal.h>
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

static volatile sig_atomic_t s_interrupted;

static void s_on_sigint(int sig) {
    (void)sig;
    s_interrupted = 1;
}

static void s_usage(FILE *f) {
    fprintf(f, "usage: troupe generate [-m MODEL] [-c FILE] [--max-tokens N] [--temperature T]\n"
               "                       [--top-p P] [--top-k K] [--min-p P] [--seed S]\n"
               "                       [--stop STR]... [--ignore-eos] [--log-level L] \"prompt\"\n"
               "Runs the troupe in this process on MODEL (default: the bundled stories260K)\n"
               "and streams the continuation of the prompt to stdout.\n"
               "Defaults: --max-tokens 256, --temperature 0 (greedy).\n");
}

/* Reads an `output` map's numbers for the summary. */
static double s_map_num(const msgpack_object *map, const char *key) {
    if (!map || map->type != MSGPACK_OBJECT_MAP) return 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != strlen(key) ||
            memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size) != 0)
            continue;
        switch (kv->val.type) {
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: return kv->val.via.f64;
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)kv->val.via.u64;
        default: return 0;
        }
    }
    return 0;
}

int tr_cli_generate(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},      {"config", required_argument, 0, 'c'},
        {"max-tokens", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 'T'},
        {"top-p", required_argument, 0, 'P'},      {"top-k", required_argument, 0, 'K'},
        {"min-p", required_argument, 0, 'M'},      {"seed", required_argument, 0, 'S'},
        {"stop", required_argument, 0, 's'},       {"ignore-eos", no_argument, 0, 'E'},
        {"log-level", required_argument, 0, 'L'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *model = NULL, *config = NULL, *level = "warn";
    tr_str_t stops[64];
    int n_stops = 0, ignore_eos = 0;
    long max_tokens = 256, top_k = -1, seed = -1;
    double temperature = 0, top_p = -1, min_p = -1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'c': config = optarg; break;
        case 'n': max_tokens = atol(optarg); break;
        case 'T': temperature = atof(optarg); break;
        case 'P': top_p = atof(optarg); break;
        case 'K': top_k = atol(optarg); break;
        case 'M': min_p = atof(optarg); break;
        case 'S': seed = atol(optarg); break;
        case 's':
            if (n_stops < 64) stops[n_stops++] = tr_str_c(optarg);
            break;
        case 'E': ignore_eos = 1; break;
        case 'L': level = optarg; break;
        case 'h': s_usage(stdout); return 0;
        default: s_usage(stderr); return TR_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return TR_EXIT_USAGE;
    }
    const char *prompt = argv[optind];
    int lvl = tr_log_parse_level(level);
    if (lvl < 0) {
        fprintf(stderr, "troupe generate: unknown log level '%s'\n", level);
        return TR_EXIT_USAGE;
    }
    if (!getenv("TROUPE_LOG")) tr_log_set_level((tr_log_level_t)lvl);

    char err[1024];
    tr_topology_t *topo = config ? tr_topo_load(config, tr_registry_schema(), err, sizeof err)
                                 : tr_topo_default(tr_registry_schema());
    if (!topo) {
        fprintf(stderr, "troupe: %s\n", config ? err : "cannot build the default topology");
        return TR_EXIT_USAGE;
    }
    if (topo->multiprocess) {
        fprintf(stderr, "troupe generate: %s has a processes: section; use troupe serve and "
                        "troupe client for multi-process topologies\n", config);
        tr_topo_destroy(&topo);
        return TR_EXIT_USAGE;
    }
    if (model) snprintf(topo->model, sizeof topo->model, "%s", model);
    snprintf(topo->listen, sizeof topo->listen, "inproc://troupe-generate-%d", (int)getpid());
    int code = TR_EXIT_START;
    tr_node_t *node = NULL;
    void *sock = NULL;
    if (tr_topo_derive_endpoints(topo, NULL, err, sizeof err) != TR_OK) {
        fprintf(stderr, "troupe: %s\n", err);
        goto done;
    }
    node = tr_node_new(topo, 0, tr_registry_find, NULL);
    if (!node || tr_node_start(node, err, sizeof err) != TR_OK) {
        fprintf(stderr, "troupe: cannot start: %s\n", node ? err : "bad topology");
        goto done;
    }
    sock = zmq_socket(tr_node_zctx(node), ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    if (!sock || zmq_connect(sock, topo->listen) != 0) {
        fprintf(stderr, "troupe: cannot connect to %s\n", topo->listen);
        goto done;
    }
    tr_msg_t g;
    tr_msg_init(&g, TR_MSG_GENERATE);
    TR_MSG_SET(&g, generate, id, ((tr_id_t){.is_str = false, .i = 1}));
    TR_MSG_SET(&g, generate, prompt, tr_str_c(prompt));
    TR_MSG_SET(&g, generate, max_tokens, max_tokens);
    TR_MSG_SET(&g, generate, temperature, temperature);
    if (top_p >= 0) TR_MSG_SET(&g, generate, top_p, top_p);
    if (top_k >= 0) TR_MSG_SET(&g, generate, top_k, top_k);
    if (min_p >= 0) TR_MSG_SET(&g, generate, min_p, min_p);
    if (seed >= 0) TR_MSG_SET(&g, generate, seed, seed);
    if (n_stops) TR_MSG_SET(&g, generate, stop, ((tr_strs_t){NULL, stops, (uint32_t)n_stops}));
    if (ignore_eos) TR_MSG_SET(&g, generate, ignore_eos, true);
    int rc = tr_wire_send(sock, &g, 0);
    if (rc != TR_OK) {
        fprintf(stderr, "troupe generate: bad request (%s)\n", tr_strerror(rc));
        code = TR_EXIT_USAGE;
        goto done;
    }
    struct sigaction sa = {.sa_handler = s_on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fputs(prompt, stdout);
    fflush(stdout);
    int aborted = 0;
    for (;;) {
        if (s_interrupted && !aborted) {
            tr_msg_t a;
            tr_msg_init(&a, TR_MSG_ABORT);
            TR_MSG_SET(&a, abort, id, ((tr_id_t){.is_str = false, .i = 1}));
            tr_wire_send(sock, &a, 0);
            aborted = 1;
        }
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) <= 0) continue;
        zmq_msg_t zm;
        zmq_msg_init(&zm);
        if (zmq_msg_recv(&zm, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&zm);
            continue;
        }
        tr_msg_t m;
        tr_msg_err_t derr;
        if (tr_msg_decode(&m, zmq_msg_data(&zm), zmq_msg_size(&zm), &derr) != TR_OK) {
            fprintf(stderr, "\ntroupe generate: undecodable reply: %s\n", derr.text);
            zmq_msg_close(&zm);
            code = TR_EXIT_CHILD_DIED;
            break;
        }
        int last = 1;
        if (m.type == TR_MSG_ERROR) {
            fprintf(stderr, "\ntroupe generate: %s: %.*s\n",
                    tr_str_eq(m.u.error.code, "bad_request") ? "refused" : "failed",
                    (int)m.u.error.message.n, m.u.error.message.p);
            code = tr_str_eq(m.u.error.code, "bad_request") ? TR_EXIT_USAGE : TR_EXIT_CHILD_DIED;
        } else if (m.type == TR_MSG_OUTPUT) {
            const tr_msg_output_t *o = &m.u.output;
            if (TR_MSG_HAS(&m, output, text)) fwrite(o->text.p, 1, o->text.n, stdout);
            fflush(stdout);
            last = TR_MSG_HAS(&m, output, finish_reason);
            if (last) {
                const msgpack_object *u = TR_MSG_HAS(&m, output, usage) ? o->usage.obj : NULL;
                const msgpack_object *mt = TR_MSG_HAS(&m, output, metrics) ? o->metrics.obj : NULL;
                fprintf(stdout, "\n");
                fprintf(stderr,
                        "[%.*s: %.0f prompt + %.0f generated tokens; ttft %.1f ms, tpot %.2f ms, "
                        "%.1f tokens/s]\n",
                        (int)o->finish_reason.n, o->finish_reason.p, s_map_num(u, "prompt_tokens"),
                        s_map_num(u, "completion_tokens"), s_map_num(mt, "ttft_ms"),
                        s_map_num(mt, "tpot_ms"),
                        s_map_num(mt, "tpot_ms") > 0 ? 1000.0 / s_map_num(mt, "tpot_ms") : 0);
                code = aborted ? 130 : 0;
            }
        } else {
            last = 0;
        }
        tr_msg_fini(&m);
        zmq_msg_close(&zm);
        if (last) break;
    }
done:
    if (sock) zmq_close(sock);
    tr_node_destroy(&node);
    tr_topo_destroy(&topo);
    return code;
}
