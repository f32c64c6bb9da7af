/*  runtime/launcher.c - see launcher.h.
 *
 *  The launcher's loop is libev's default loop: ev_child reaps children, ev_signal takes
 *  SIGINT/SIGTERM, a tr_zwatch on the supervisor socket receives `ready`, and timers
 *  bound the start-up and the shutdown. Nothing here blocks except the final wait in
 *  zmq_ctx_term, whose sockets all have a bounded linger.                              */
#include "runtime/launcher.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/log.h"
#include "transport/wire.h"

/* ---- one process: run a node until a signal ---- */

static void s_on_stop_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    TR_INFO("signal %d: stopping", w->signum);
    ev_break(loop, EVBREAK_ALL);
}

static int s_send_ready(const tr_topology_t *topo, int process, tr_node_t *node) {
    void *s = zmq_socket(tr_node_zctx(node), ZMQ_PUSH);
    int linger = 2000, rc = TR_EZMQ;
    if (!s) return rc;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s, topo->supervisor) == 0) {
        int n = tr_node_n_actors(node);
        tr_str_t *names = calloc((size_t)(n ? n : 1), sizeof *names);
        if (names) {
            for (int i = 0; i < n; i++) names[i] = tr_str_c(tr_node_actor_name(node, i));
            tr_msg_t m;
            tr_msg_init(&m, TR_MSG_READY);
            TR_MSG_SET(&m, ready, process, tr_str_c(topo->procs[process].name));
            TR_MSG_SET(&m, ready, pid, (int64_t)getpid());
            TR_MSG_SET(&m, ready, actors, ((tr_strs_t){NULL, names, (uint32_t)n}));
            rc = tr_wire_send(s, &m, 0);
            free(names);
        }
    }
    zmq_close(s);
    return rc;
}

int tr_run_process(const tr_topology_t *topo, int process, tr_spec_lookup_fn lookup) {
    signal(SIGPIPE, SIG_IGN);
    struct ev_loop *loop = ev_default_loop(0);
    tr_node_t *node = tr_node_new(topo, process, lookup, NULL);
    if (!node) return TR_EXIT_START;

    /* actor threads inherit a mask without the stop signals: only this thread takes them */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    char err[512];
    int rc = tr_node_start(node, err, sizeof err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != TR_OK) {
        TR_ERROR("process %s failed to start: %s", topo->procs[process].name, err);
        tr_node_destroy(&node);
        return TR_EXIT_START;
    }
    ev_signal sigint_w, sigterm_w;
    ev_signal_init(&sigint_w, s_on_stop_signal, SIGINT);
    ev_signal_init(&sigterm_w, s_on_stop_signal, SIGTERM);
    ev_signal_start(loop, &sigint_w);
    ev_signal_start(loop, &sigterm_w);

    if (topo->supervisor[0]) {
        if (s_send_ready(topo, process, node) != TR_OK)
            TR_WARN("could not report ready to the launcher at %s", topo->supervisor);
    } else {
        int fe = 0;
        for (int i = 0; i < tr_node_n_actors(node); i++)
            fe |= strcmp(tr_node_actor_name(node, i), "frontend") == 0;
        TR_INFO("ready: %d actor(s)%s%s", tr_node_n_actors(node), fe ? ", listening on " : "",
                fe ? topo->listen : "");
        printf("troupe: ready\n");
        fflush(stdout);
    }
    ev_run(loop, 0);
    ev_signal_stop(loop, &sigint_w);
    ev_signal_stop(loop, &sigterm_w);
    tr_node_destroy(&node);
    TR_INFO("stopped");
    return TR_EXIT_OK;
}

/* ---- the launcher ---- */

typedef struct {
    int index;                 /* into topo->procs */
    pid_t pid;
    int ready;
    int exited;
    ev_child child_w;
    void *self;
} s_child_t;

typedef struct {
    tr_topology_t *topo;       /* borrowed */
    const tr_launch_opts_t *opts;
    struct ev_loop *loop;
    char rundir[256];
    void *zctx;
    void *sup;                 /* supervisor PULL */
    tr_zwatch_t sup_w;
    s_child_t *children;
    int n_children, n_live, n_ready;
    int stopping;
    int exit_code;
    ev_signal sigint_w, sigterm_w;
    ev_timer ready_timer, kill_timer;
} s_launcher_t;

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

static void s_stop_children(s_launcher_t *L, int exit_code) {
    if (!L->stopping) {
        L->stopping = 1;
        if (L->exit_code == TR_EXIT_OK) L->exit_code = exit_code; /* the first failure wins */
    }
    ev_timer_stop(L->loop, &L->ready_timer);
    for (int i = 0; i < L->n_children; i++)
        if (!L->children[i].exited) kill(L->children[i].pid, SIGTERM);
    if (L->n_live == 0) {
        ev_break(L->loop, EVBREAK_ALL);
        return;
    }
    if (!ev_is_active(&L->kill_timer)) ev_timer_start(L->loop, &L->kill_timer);
}

static void s_on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents) {
    s_launcher_t *L = w->data;
    for (int i = 0; i < L->n_children; i++) {
        if (L->children[i].exited) continue;
        TR_WARN("process %s (pid %d) did not stop within %.0f s: killing it",
                L->topo->procs[L->children[i].index].name, (int)L->children[i].pid,
                L->opts->stop_grace_s);
        kill(L->children[i].pid, SIGKILL);
    }
}

static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
    s_launcher_t *L = w->data;
    TR_INFO("signal %d: stopping %d process(es)", w->signum, L->n_live);
    s_stop_children(L, TR_EXIT_OK);
}

static void s_on_ready_timeout(struct ev_loop *loop, ev_timer *w, int revents) {
    s_launcher_t *L = w->data;
    for (int i = 0; i < L->n_children; i++)
        if (!L->children[i].ready)
            TR_ERROR("process %s did not get ready within %.0f s",
                     L->topo->procs[L->children[i].index].name, L->opts->ready_timeout_s);
    s_stop_children(L, TR_EXIT_START);
}

/* Tells every actor outside `dead` that its process ended. */
static void s_send_peer_down(s_launcher_t *L, int dead, const char *reason) {
    tr_topology_t *topo = L->topo;
    tr_str_t *names = calloc((size_t)topo->n_actors, sizeof *names);
    if (!names) return;
    uint32_t n = 0;
    for (int i = 0; i < topo->n_actors; i++)
        if (topo->actors[i].process == dead) names[n++] = tr_str_c(topo->actors[i].name);
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_PEER_DOWN);
    m.from = tr_str_c("launcher");
    TR_MSG_SET(&m, peer_down, process, tr_str_c(topo->procs[dead].name));
    TR_MSG_SET(&m, peer_down, actors, ((tr_strs_t){NULL, names, n}));
    TR_MSG_SET(&m, peer_down, reason, tr_str_c(reason));
    for (int i = 0; i < topo->n_actors; i++) {
        const tr_topo_actor_t *a = &topo->actors[i];
        int alive = 0;
        for (int c = 0; c < L->n_children; c++)
            alive |= L->children[c].index == a->process && !L->children[c].exited;
        if (a->process == dead || !alive || !a->remote[0]) continue;
        void *s = zmq_socket(L->zctx, ZMQ_PUSH);
        int linger = 500;
        if (!s) continue;
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(s, a->remote) == 0) tr_wire_send(s, &m, 0);
        zmq_close(s);
    }
    free(names);
}

static void s_on_child(struct ev_loop *loop, ev_child *w, int revents) {
    s_child_t *c = w->data;
    s_launcher_t *L = c->self;
    ev_child_stop(loop, w);
    c->exited = 1;
    L->n_live--;
    const char *name = L->topo->procs[c->index].name;
    char reason[128];
    if (WIFSIGNALED(w->rstatus))
        snprintf(reason, sizeof reason, "killed by signal %d (%s)", WTERMSIG(w->rstatus),
                 strsignal(WTERMSIG(w->rstatus)));
    else
        snprintf(reason, sizeof reason, "exited with status %d", WEXITSTATUS(w->rstatus));
    if (L->stopping) {
        int clean = WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0;
        if (clean) {
            TR_INFO("process %s (pid %d) %s", name, (int)c->pid, reason);
        } else {
            /* a child that fails its own shutdown (or a sanitizer's leak report) counts */
            TR_ERROR("process %s (pid %d) %s while stopping", name, (int)c->pid, reason);
            if (L->exit_code == TR_EXIT_OK) L->exit_code = TR_EXIT_CHILD_DIED;
        }
        if (L->n_live == 0) ev_break(loop, EVBREAK_ALL);
        return;
    }
    TR_ERROR("process %s (pid %d) %s%s", name, (int)c->pid, reason,
             c->ready ? "" : " before it was ready");
    fprintf(stderr, "troupe: process %s (pid %d) %s\n", name, (int)c->pid, reason);
    s_send_peer_down(L, c->index, reason);
    if (!c->ready) {
        s_stop_children(L, TR_EXIT_START);
    } else if (strcmp(L->topo->on_failure, "keep") == 0 && L->n_live > 0) {
        L->exit_code = TR_EXIT_CHILD_DIED; /* keep serving; report the loss at exit */
    } else {
        s_stop_children(L, TR_EXIT_CHILD_DIED);
    }
}

static void s_on_ready_msg(struct ev_loop *loop, tr_zwatch_t *w, int revents) {
    s_launcher_t *L = w->data;
    for (int n = 0; n < TR_ZWATCH_BUDGET; n++) {
        zmq_msg_t zm;
        zmq_msg_init(&zm);
        if (zmq_msg_recv(&zm, L->sup, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&zm);
            return;
        }
        tr_msg_t m;
        tr_msg_err_t err;
        if (tr_msg_decode(&m, zmq_msg_data(&zm), zmq_msg_size(&zm), &err) != TR_OK ||
            m.type != TR_MSG_READY) {
            TR_WARN("supervisor: ignored a message: %s", err.text[0] ? err.text : "not 'ready'");
            if (m.zone) tr_msg_fini(&m);
            zmq_msg_close(&zm);
            continue;
        }
        for (int i = 0; i < L->n_children; i++) {
            s_child_t *c = &L->children[i];
            if (!tr_str_eq(m.u.ready.process, L->topo->procs[c->index].name) || c->ready) continue;
            c->ready = 1;
            L->n_ready++;
            TR_INFO("process %s (pid %d) ready with %u actor(s)", L->topo->procs[c->index].name,
                    (int)c->pid, m.u.ready.actors.n);
        }
        tr_msg_fini(&m);
        zmq_msg_close(&zm);
        if (L->n_ready == L->n_children && !L->stopping) {
            ev_timer_stop(loop, &L->ready_timer);
            TR_INFO("ready: %d process(es), %d actor(s), listening on %s", L->n_children,
                    L->topo->n_actors, L->topo->listen);
            printf("troupe: ready\n");
            fflush(stdout);
        }
    }
}

static pid_t s_spawn(s_launcher_t *L, int index) {
    const tr_launch_opts_t *o = L->opts;
    int argc = 0;
    char **argv = calloc((size_t)o->n_child_args + 8, sizeof *argv);
    if (!argv) return -1;
    argv[argc++] = (char *)o->exe;
    argv[argc++] = "serve";
    argv[argc++] = "--child";
    argv[argc++] = L->topo->procs[index].name;
    argv[argc++] = "--rundir";
    argv[argc++] = L->rundir;
    for (int i = 0; i < o->n_child_args; i++) argv[argc++] = o->child_args[i];
    argv[argc] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);                       /* Ctrl-C goes to the launcher only */
        prctl(PR_SET_PDEATHSIG, SIGTERM);    /* no orphans if the launcher is killed */
        if (getppid() != parent) _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(o->exe, argv);
        fprintf(stderr, "troupe: cannot exec %s: %s\n", o->exe, strerror(errno));
        _exit(127);
    }
    free(argv);
    return pid;
}

int tr_launch(tr_topology_t *topo, const tr_launch_opts_t *opts) {
    s_launcher_t L;
    memset(&L, 0, sizeof L);
    L.topo = topo;
    L.opts = opts;
    L.exit_code = TR_EXIT_OK;
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR");
    snprintf(L.rundir, sizeof L.rundir, "%s/troupe-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(L.rundir)) {
        TR_ERROR("cannot create a run directory %s: %s", L.rundir, strerror(errno));
        return TR_EXIT_START;
    }
    char err[512];
    int code = TR_EXIT_START;
    if (tr_topo_derive_endpoints(topo, L.rundir, err, sizeof err) != TR_OK) {
        TR_ERROR("%s", err);
        goto out;
    }
    L.loop = ev_default_loop(0);
    L.zctx = zmq_ctx_new();
    L.sup = L.zctx ? zmq_socket(L.zctx, ZMQ_PULL) : NULL;
    if (!L.sup || zmq_bind(L.sup, topo->supervisor) != 0 ||
        tr_zwatch_init(&L.sup_w, L.sup, ZMQ_POLLIN, s_on_ready_msg, &L) != TR_OK) {
        TR_ERROR("cannot bind the supervisor socket %s: %s", topo->supervisor,
                 zmq_strerror(zmq_errno()));
        goto out;
    }
    tr_zwatch_start(L.loop, &L.sup_w);
    L.children = calloc((size_t)topo->n_procs, sizeof *L.children);
    if (!L.children) goto out;
    ev_signal_init(&L.sigint_w, s_on_signal, SIGINT);
    ev_signal_init(&L.sigterm_w, s_on_signal, SIGTERM);
    L.sigint_w.data = L.sigterm_w.data = &L;
    ev_signal_start(L.loop, &L.sigint_w);
    ev_signal_start(L.loop, &L.sigterm_w);
    ev_timer_init(&L.ready_timer, s_on_ready_timeout, opts->ready_timeout_s, 0.);
    ev_timer_init(&L.kill_timer, s_on_kill_timer, opts->stop_grace_s, 0.);
    L.ready_timer.data = L.kill_timer.data = &L;

    for (int i = 0; i < topo->n_procs; i++) {
        const char *host = topo->procs[i].host;
        if (host[0] && strcmp(host, "localhost") != 0 && strcmp(host, "127.0.0.1") != 0) {
            TR_INFO("process %s runs on %s: start it there with `troupe serve -c FILE "
                    "--process %s`", topo->procs[i].name, host, topo->procs[i].name);
            continue;
        }
        s_child_t *c = &L.children[L.n_children];
        c->index = i;
        c->self = &L;
        c->pid = s_spawn(&L, i);
        if (c->pid < 0) {
            TR_ERROR("cannot start process %s: %s", topo->procs[i].name, strerror(errno));
            s_stop_children(&L, TR_EXIT_START);
            break;
        }
        ev_child_init(&c->child_w, s_on_child, c->pid, 0);
        c->child_w.data = c;
        ev_child_start(L.loop, &c->child_w);
        L.n_children++;
        L.n_live++;
        TR_INFO("started process %s (pid %d)", topo->procs[i].name, (int)c->pid);
    }
    if (!L.stopping) ev_timer_start(L.loop, &L.ready_timer);
    if (L.n_live > 0) ev_run(L.loop, 0);
    code = L.exit_code;

    ev_timer_stop(L.loop, &L.ready_timer);
    ev_timer_stop(L.loop, &L.kill_timer);
    ev_signal_stop(L.loop, &L.sigint_w);
    ev_signal_stop(L.loop, &L.sigterm_w);
    tr_zwatch_stop(L.loop, &L.sup_w);
out:
    for (int i = 0; i < L.n_children; i++) /* never leave one behind, whatever happened */
        if (!L.children[i].exited) {
            kill(L.children[i].pid, SIGKILL);
            waitpid(L.children[i].pid, NULL, 0);
        }
    free(L.children);
    if (L.sup) zmq_close(L.sup);
    if (L.zctx) zmq_ctx_term(L.zctx);
    nftw(L.rundir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    TR_INFO("launcher exiting with code %d", code);
    return code;
}
