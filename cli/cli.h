/*  cli/cli.h - the troupe subcommands that live in their own files.
 *  Each takes the arguments after `troupe` (argv[0] is the subcommand) and returns the
 *  process exit code (runtime/launcher.h: 0 ok, 1 usage, 2 start, 3 failure; 130 after
 *  Ctrl-C). Thread: the main thread; each installs its own SIGINT handler while it runs. */
#ifndef TR_CLI_H
#define TR_CLI_H

#include <jansson.h>
#include <msgpack.h>
#include <signal.h>

int tr_cli_generate(int argc, char **argv);

/* troupe client: one generate request to a running server, text streamed to stdout
 * (cli/client.c). */
int tr_cli_client_main(int argc, char **argv);

/* troupe bench: a serving benchmark client (cli/bench.c). */
int tr_cli_bench_main(int argc, char **argv);

/* A JSON value of a msgpack object (bins become "<N bytes>"); the caller owns the result
 * (json_decref). NULL only when out of memory (cli/msgpack_json.c). */
json_t *tr_cli_json_from_msgpack(const msgpack_object *o);

/* Set by a signal caught with tr_cli_catch (SIGINT, SIGTERM); a second one exits at once
 * (130) (cli/util.c). catch saves the old action in *old (may be NULL) for restore. */
extern volatile sig_atomic_t tr_cli_interrupted;
void tr_cli_catch(int sig, struct sigaction *old);
void tr_cli_restore(int sig, const struct sigaction *old);
/* CLOCK_MONOTONIC in milliseconds. */
double tr_cli_now_ms(void);

#endif
