/*  cli/cli.h - the troupe subcommands that live in their own files.
 *  Each takes the arguments after `troupe` (argv[0] is the subcommand) and returns the
 *  process exit code (runtime/launcher.h: 0 ok, 1 usage, 2 start, 3 failure).        */
#ifndef TR_CLI_H
#define TR_CLI_H

int tr_cli_generate(int argc, char **argv);

#endif
