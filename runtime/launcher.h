/*  runtime/launcher.h - running the actors of a process, and supervising processes.
 *
 *  tr_run_process() runs one process entry of a topology: it starts a node with that
 *  entry's actors, tells the launcher (if any) that they are ready, and serves until
 *  SIGINT or SIGTERM, then stops gracefully (every actor drains its inbox, threads are
 *  joined, sockets closed).
 *
 *  tr_launch() is the supervisor for topologies with a `processes:` section. It makes a
 *  private run directory (ipc:// files), spawns one OS process per local entry by
 *  re-executing this binary (`troupe serve --child NAME --rundir DIR ...`), waits until
 *  every one reports `ready`, then watches them:
 *    - a child that exits is reported with its status or signal; the actors of the other
 *      processes are sent `peer_down`; with on_failure: shutdown (default) the rest are
 *      stopped and the launcher exits TR_EXIT_CHILD_DIED; with keep, the rest go on;
 *    - SIGINT/SIGTERM stop every child (SIGTERM, then SIGKILL after a grace period);
 *    - children get PR_SET_PDEATHSIG, so even a killed launcher leaves no orphans, and
 *      their own process group, so a terminal's Ctrl-C reaches the launcher only.
 *  The run directory is removed on every exit path.
 *  Thread: the process's main thread (uses libev's default loop for signals/children). */
#ifndef TR_LAUNCHER_H
#define TR_LAUNCHER_H

#include "runtime/actor.h"

/* Exit codes of `troupe serve` (documented in docs/topology.md). */
enum {
    TR_EXIT_OK = 0,          /* stopped by SIGINT/SIGTERM after a clean run */
    TR_EXIT_USAGE = 1,       /* bad command line or topology file */
    TR_EXIT_START = 2,       /* an actor or process failed to start or to get ready */
    TR_EXIT_CHILD_DIED = 3,  /* a process of the troupe ended while serving */
};

typedef struct {
    const char *exe;             /* path of this binary, for re-exec ("/proc/self/exe") */
    char *const *child_args;     /* extra args for children (-c FILE, -m, --listen, ...) */
    int n_child_args;
    double ready_timeout_s;      /* how long processes may take to get ready (60) */
    double stop_grace_s;         /* SIGTERM -> SIGKILL delay at shutdown (10) */
} tr_launch_opts_t;

/* Runs process `process` of `topo` (endpoints derived) until SIGINT/SIGTERM. When
 * topo->supervisor is set, reports `ready` there. Returns a TR_EXIT_* code. */
int tr_run_process(const tr_topology_t *topo, int process, tr_spec_lookup_fn lookup);

/* Supervises a multi-process topology (endpoints not yet derived: the launcher makes the
 * run directory). Returns a TR_EXIT_* code. */
int tr_launch(tr_topology_t *topo, const tr_launch_opts_t *opts);

#endif
