/*  cli/generate.c - `troupe generate "prompt"`: the whole troupe in this process.
 *
 *  Starts every actor as a thread (the default topology, or -c FILE without a processes:
 *  section), with the frontend listening on a private inproc:// endpoint, sends one
 *  generate request through the C client (clients/c/client.h) in the same ZeroMQ context,
 *  and writes the streamed text to stdout as it arrives. A summary (finish reason, tokens,
 *  TTFT, TPOT) goes to stderr. Ctrl-C aborts the request and exits 130.              */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actors/registry.h"
#include "cli/cli.h"
#include "clients/c/client.h"
#include "runtime/launcher.h"
#include "runtime/log.h"

static void s_usage(FILE *f) {
    fprintf(f, "usage: troupe generate [-m MODEL] [-c FILE] [--max-tokens N] [--temperature T]\n"
               "                       [--top-p P] [--top-k K] [--min-p P] [--seed S]\n"
               "                       [--stop STR]... [--ignore-eos] [--log-level L] \"prompt\"\n"
               "Runs the troupe in this process on MODEL (default: the bundled stories260K)\n"
               "and streams the continuation of the prompt to stdout.\n"
               "Defaults: --max-tokens 256, --temperature 0 (greedy).\n");
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
    const char *stops[64];
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
            if (n_stops < 64) stops[n_stops++] = optarg;
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
    tr_client_t *cl = NULL;
    if (tr_topo_derive_endpoints(topo, NULL, err, sizeof err) != TR_OK) {
        fprintf(stderr, "troupe: %s\n", err);
        goto done;
    }
    node = tr_node_new(topo, 0, tr_registry_find, NULL);
    if (!node || tr_node_start(node, err, sizeof err) != TR_OK) {
        fprintf(stderr, "troupe: cannot start: %s\n", node ? err : "bad topology");
        goto done;
    }
    cl = tr_client_new(tr_node_zctx(node), topo->listen);
    if (!cl) {
        fprintf(stderr, "troupe: cannot connect to %s\n", topo->listen);
        goto done;
    }
    tr_client_gen_t g;
    tr_client_gen_init(&g);
    g.prompt = prompt;
    g.max_tokens = max_tokens;
    g.temperature = temperature;
    if (top_p >= 0) g.top_p = top_p;
    if (top_k >= 0) g.top_k = top_k;
    if (min_p >= 0) g.min_p = min_p;
    if (seed >= 0) g.seed = seed;
    g.stop = stops;
    g.n_stop = (uint32_t)n_stops;
    if (ignore_eos) g.ignore_eos = 1;
    int64_t id;
    int rc = tr_client_generate(cl, &g, &id);
    if (rc != TR_OK) {
        fprintf(stderr, "troupe generate: bad request (%s)\n", tr_client_error(cl));
        code = TR_EXIT_USAGE;
        goto done;
    }
    tr_cli_catch(SIGINT, NULL);
    tr_cli_catch(SIGTERM, NULL);
    fputs(prompt, stdout);
    fflush(stdout);
    int aborted = 0;
    for (;;) {
        if (tr_cli_interrupted && !aborted) {
            tr_client_abort(cl, id);
            aborted = 1;
        }
        tr_msg_t m;
        rc = tr_client_recv(cl, &m, 200);
        if (rc == TR_AGAIN || rc == TR_ETIMEDOUT) continue;
        if (rc != TR_OK) {
            fprintf(stderr, "\ntroupe generate: %s\n", tr_client_error(cl));
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
            last = tr_client_output_is_final(&m);
            if (last) {
                tr_client_usage_t u;
                tr_client_output_usage(&m, &u);
                fprintf(stdout, "\n");
                fprintf(stderr,
                        "[%.*s: %lld prompt + %lld generated tokens; ttft %.1f ms, tpot %.2f ms, "
                        "%.1f tokens/s]\n",
                        (int)o->finish_reason.n, o->finish_reason.p, (long long)u.prompt_tokens,
                        (long long)u.completion_tokens, u.ttft_ms, u.tpot_ms,
                        u.tpot_ms > 0 ? 1000.0 / u.tpot_ms : 0);
                code = aborted ? 130 : 0;
            }
        } else {
            last = 0;
        }
        tr_msg_fini(&m);
        if (last) break;
    }
done:
    tr_client_destroy(&cl);
    tr_node_destroy(&node);
    tr_topo_destroy(&topo);
    return code;
}
