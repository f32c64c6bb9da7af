/*  bench/msg.c - runtime messaging vs raw libzmq: round trip latency and one-way
 *  throughput over inproc, ipc and tcp, for a small and a large payload.
 *
 *  Every cell (transport x payload) measures the same pattern twice, in the same run:
 *    raw      two threads, each with a PULL socket bound and a PUSH connected to the
 *             other's PULL (the runtime's own socket pattern). zmq_send copies the payload
 *             once into a fresh message; zmq_msg_recv reads it in place.
 *    runtime  two actors, "driver" and "echo" (defined below), in a topology built here:
 *             one process for inproc; for ipc and tcp a `processes:` section with one entry
 *             per actor, both nodes started inside this process on one ZeroMQ context.
 *             tr_actor_send packs a msgpack map whose bin payload is copied once; the
 *             receiver decodes it in place. So both sides copy the payload once per send.
 *  Patterns:
 *    round trip  the driver sends {seq, payload} and waits for the echo's answer, which
 *                carries the same seq and payload back; after a warm-up (10% of N), N timed
 *                round trips give p50 and p99.
 *    one-way     the driver sends a warm-up burst (10% of M), then a burst of M messages
 *                and a marker; the receiver answers the marker with the number of messages
 *                it received (checked). The time from the first send to the confirmation
 *                gives messages/s and MB/s (1 MB = 10^6 payload bytes).
 *  Both links are unbounded (HWM 0) in both cases, as the runtime's links are.
 *  Targets (the issue): runtime round trip p50 <= 1.5x raw; one-way messages/s >= 0.7x raw.
 *
 *  Runtime plumbing: the main thread starts the driver with a bench message sent into its
 *  inbox (one without `from`), then waits on a PULL socket of its own for the driver's
 *  report: bench{seq: 0, payload: the timings in ns as uint64} or an error. The threads
 *  share nothing but ZeroMQ messages. Thread: main() drives everything from one thread;
 *  the actors run on their node's threads, the raw echo on a thread of its own.
 *
 *      build/bin/bench_msg                      # full run, < 60 s on 2 cores
 *      build/bin/bench_msg --quick --json out.json
 *      build/bin/bench_msg --transports tcp --payloads 64 --repeat 3              */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "runtime/actor.h"
#include "runtime/log.h"
#include "transport/wire.h"

#define S_LARGE_PAYLOAD 65536    /* payloads from this size use the *_large counts */
#define S_BURST_SLICE 256        /* messages the driver sends per loop turn in a burst */
#define S_MAX_PAYLOADS 8

typedef enum { S_INPROC, S_IPC, S_TCP, S_N_TRANSPORTS } s_transport_t;
static const char *const s_transport_names[S_N_TRANSPORTS] = {"inproc", "ipc", "tcp"};

typedef enum { S_RTT, S_BURST } s_mode_t;

/* ==== the two bench actors ==== */

/* ---- driver: sends, times, reports ---- */

typedef struct {
    tr_actor_t *actor;           /* borrowed */
    s_mode_t mode;
    int64_t n_warmup, n_count;   /* round trips, or messages per burst */
    uint8_t *payload;            /* owned */
    uint32_t payload_n;
    void *report;                /* owned PUSH, connected to the bench's main thread */
    ev_idle burst_w;             /* sends the current burst, one slice per loop turn */
    int started;
    int measuring;               /* 0: warm-up, 1: timed */
    int64_t next;                /* rtt: seq in flight; burst: next seq to send */
    int64_t round_len;           /* burst: messages in the current burst */
    uint64_t t0_ns;              /* rtt: when the message in flight was sent; burst: start */
    uint64_t *samples;           /* owned: n_count round trip times, or one burst time (ns) */
} driver_self_t;

static int s_driver_on_bench(void *self, const tr_msg_t *msg);
static int s_driver_on_error(void *self, const tr_msg_t *msg);

static const tr_handler_t s_driver_handlers[] = {
    {TR_MSG_BENCH, s_driver_on_bench},   /* from main: start; from echo: an answer */
    {TR_MSG_ERROR, s_driver_on_error},   /* from echo: the run failed */
    {0, NULL},
};

static const tr_conf_key_t s_driver_keys[] = {
    {"mode", TR_CONF_STR, "rtt (round trips) or burst (one-way)"},
    {"count", TR_CONF_INT, "timed round trips, or messages in the timed burst"},
    {"warmup", TR_CONF_INT, "untimed round trips, or messages in the warm-up burst"},
    {"payload", TR_CONF_INT, "payload bytes"},
    {"report", TR_CONF_STR, "endpoint of the main thread's PULL socket"},
    {NULL, 0, NULL},
};

static void s_driver_on_burst(struct ev_loop *loop, ev_idle *w, int revents);

static void *s_driver_new(tr_actor_t *actor) {
    driver_self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->actor = actor;
    const tr_conf_section_t *conf = tr_actor_conf(actor);
    self->mode = strcmp(tr_conf_get_str(conf, "mode", "rtt"), "burst") == 0 ? S_BURST : S_RTT;
    self->n_count = tr_conf_get_int(conf, "count", 1000);
    self->n_warmup = tr_conf_get_int(conf, "warmup", 0);
    int64_t n = tr_conf_get_int(conf, "payload", 64);
    const char *report = tr_conf_get_str(conf, "report", NULL);
    if (n < 0 || n > 1073741824 || self->n_count < 1 || self->n_warmup < 0 || !report) {
        TR_ERROR("driver: bad configuration");
        goto fail;
    }
    self->payload_n = (uint32_t)n;
    self->payload = malloc(n ? (size_t)n : 1);
    self->samples = calloc(self->mode == S_RTT ? (size_t)self->n_count : 1, sizeof(uint64_t));
    if (!self->payload || !self->samples) goto fail;
    for (int64_t i = 0; i < n; i++) self->payload[i] = (uint8_t)(i * 131 + 7);
    self->report = zmq_socket(tr_actor_zctx(actor), ZMQ_PUSH);
    int linger = 1000;
    if (!self->report) goto fail;
    zmq_setsockopt(self->report, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(self->report, report) != 0) {
        TR_ERROR("driver: cannot connect to %s: %s", report, zmq_strerror(zmq_errno()));
        goto fail;
    }
    ev_idle_init(&self->burst_w, s_driver_on_burst);
    self->burst_w.data = self;
    return self;
fail:
    if (self->report) zmq_close(self->report);
    free(self->samples);
    free(self->payload);
    free(self);
    return NULL;
}

static void s_driver_destroy(void **self_p) {
    driver_self_t *self = *self_p;
    ev_idle_stop(tr_actor_loop(self->actor), &self->burst_w);
    zmq_close(self->report);
    free(self->samples);
    free(self->payload);
    free(self);
    *self_p = NULL;
}

/* Tells the main thread the run failed; stops sending. */
static int s_driver_fail(driver_self_t *self, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ev_idle_stop(tr_actor_loop(self->actor), &self->burst_w);
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_ERROR);
    TR_MSG_SET(&m, error, code, tr_str_c("internal"));
    TR_MSG_SET(&m, error, message, tr_str_c(text));
    tr_wire_send(self->report, &m, 0);
    return TR_ERR;
}

static int s_driver_report(driver_self_t *self) {
    int64_t n = self->mode == S_RTT ? self->n_count : 1;
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_BENCH);
    TR_MSG_SET(&m, bench, seq, 0);
    TR_MSG_SET(&m, bench, payload,
               ((tr_bin_t){(const uint8_t *)self->samples, (uint32_t)(n * sizeof(uint64_t))}));
    return tr_wire_send(self->report, &m, 0);
}

/* Sends bench{seq, reply?, payload?} to the echo. */
static int s_driver_send(driver_self_t *self, int64_t seq, int reply, int with_payload) {
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_BENCH);
    TR_MSG_SET(&m, bench, seq, seq);
    if (reply) TR_MSG_SET(&m, bench, reply, true);
    if (with_payload) TR_MSG_SET(&m, bench, payload, ((tr_bin_t){self->payload, self->payload_n}));
    return tr_actor_send(self->actor, "echo", &m);
}

static int s_driver_rtt_next(driver_self_t *self) {
    self->t0_ns = tr_now_ns();
    return s_driver_send(self, self->next, 1, 1);
}

static void s_driver_burst_begin(driver_self_t *self, int measuring) {
    self->measuring = measuring;
    self->round_len = measuring ? self->n_count : self->n_warmup;
    self->next = 0;
    self->t0_ns = tr_now_ns();
    ev_idle_start(tr_actor_loop(self->actor), &self->burst_w);
}

/* The driver's only timer-like work: one slice of the burst per loop turn, so the loop
 * keeps turning (and its inbox keeps draining) while a burst goes out. */
static void s_driver_on_burst(struct ev_loop *loop, ev_idle *w, int revents) {
    driver_self_t *self = w->data;
    for (int k = 0; k < S_BURST_SLICE && self->next < self->round_len; k++)
        if (s_driver_send(self, self->next++, 0, 1) != TR_OK) {
            s_driver_fail(self, "send failed at message %" PRId64, self->next - 1);
            return;
        }
    if (self->next == self->round_len) {
        ev_idle_stop(loop, w);
        if (s_driver_send(self, 0, 1, 0) != TR_OK) s_driver_fail(self, "marker send failed");
    }
}

static int s_driver_on_bench(void *self_, const tr_msg_t *msg) {
    driver_self_t *self = self_;
    uint64_t now = tr_now_ns();
    const tr_msg_bench_t *b = &msg->u.bench;
    if (msg->from.n == 0) { /* the main thread's start signal */
        if (self->started) return s_driver_fail(self, "started twice");
        self->started = 1;
        if (self->mode == S_BURST) {
            s_driver_burst_begin(self, self->n_warmup == 0);
            return TR_OK;
        }
        self->next = 0;
        self->measuring = self->n_warmup == 0;
        return s_driver_rtt_next(self);
    }
    if (self->mode == S_RTT) {
        uint32_t got = TR_MSG_HAS(msg, bench, payload) ? b->payload.n : 0;
        if (b->seq != self->next || got != self->payload_n)
            return s_driver_fail(self, "answer seq %" PRId64 " with %u bytes, expected seq %" PRId64
                                 " with %u", b->seq, got, self->next, self->payload_n);
        if (self->next >= self->n_warmup)
            self->samples[self->next - self->n_warmup] = now - self->t0_ns;
        if (++self->next == self->n_warmup + self->n_count) return s_driver_report(self);
        return s_driver_rtt_next(self);
    }
    if (b->seq != self->round_len)
        return s_driver_fail(self, "the echo counted %" PRId64 " of %" PRId64 " messages", b->seq,
                             self->round_len);
    if (!self->measuring) {
        s_driver_burst_begin(self, 1);
        return TR_OK;
    }
    self->samples[0] = now - self->t0_ns;
    return s_driver_report(self);
}

static int s_driver_on_error(void *self, const tr_msg_t *msg) {
    char text[256];
    return s_driver_fail(self, "echo answered an error: %s",
                         tr_str_copy(msg->u.error.message, text, sizeof text));
}

static const tr_actor_spec_t s_driver_spec = {
    .name = "driver",
    .summary = "bench/msg: sends round trips or bursts to the echo and times them",
    .handlers = s_driver_handlers,
    .conf_section = "driver",
    .conf_keys = s_driver_keys,
    .state_new = s_driver_new,
    .state_destroy = s_driver_destroy,
};

/* ---- echo: answers what asks for an answer, counts the rest ---- */

typedef struct {
    tr_actor_t *actor;           /* borrowed */
    int64_t n_oneway;            /* messages that asked for no answer, since the last answer */
} echo_self_t;

static int s_echo_on_bench(void *self, const tr_msg_t *msg);

static const tr_handler_t s_echo_handlers[] = {
    {TR_MSG_BENCH, s_echo_on_bench},     /* -> bench{seq + n_oneway, payload} when asked */
    {0, NULL},
};

static void *s_echo_new(tr_actor_t *actor) {
    echo_self_t *self = calloc(1, sizeof *self);
    if (self) self->actor = actor;
    return self;
}

static void s_echo_destroy(void **self_p) {
    free(*self_p);
    *self_p = NULL;
}

/* One rule for both patterns: the answer's seq is the request's seq plus the number of
 * one-way messages received since the previous answer (0 in a round trip; the burst
 * length for a burst's marker, whose seq is 0). The payload, if any, goes back. */
static int s_echo_on_bench(void *self_, const tr_msg_t *msg) {
    echo_self_t *self = self_;
    if (!(TR_MSG_HAS(msg, bench, reply) && msg->u.bench.reply)) {
        self->n_oneway++;
        return TR_OK;
    }
    tr_msg_t m;
    tr_msg_init(&m, TR_MSG_BENCH);
    TR_MSG_SET(&m, bench, seq, msg->u.bench.seq + self->n_oneway);
    if (TR_MSG_HAS(msg, bench, payload)) TR_MSG_SET(&m, bench, payload, msg->u.bench.payload);
    self->n_oneway = 0;
    return tr_actor_reply(self->actor, msg, &m);
}

static const tr_actor_spec_t s_echo_spec = {
    .name = "echo",
    .summary = "bench/msg: answers bench messages that ask for it, counts the others",
    .handlers = s_echo_handlers,
    .state_new = s_echo_new,
    .state_destroy = s_echo_destroy,
};

/* ---- the bench's own actor registry and topology schema ---- */

static const tr_actor_spec_t *s_lookup(const char *kind) {
    if (strcmp(kind, s_driver_spec.name) == 0) return &s_driver_spec;
    if (strcmp(kind, s_echo_spec.name) == 0) return &s_echo_spec;
    return NULL;
}

static int s_known(const char *kind) { return s_lookup(kind) != NULL; }
static int s_ranked(const char *kind) { return 0; }

static const tr_conf_key_t *s_section_keys(const char *name) {
    return strcmp(name, s_driver_spec.conf_section) == 0 ? s_driver_keys : NULL;
}

static const char *const s_bench_actors[] = {"driver", "echo", NULL};

static const tr_topo_schema_t s_schema = {
    .actor_known = s_known,
    .actor_ranked = s_ranked,
    .section_keys = s_section_keys,
    .default_actors = s_bench_actors,
    .required_actors = s_bench_actors,
};

/* ==== harness ==== */

typedef struct {
    int transports[S_N_TRANSPORTS];  /* 1: measure it */
    size_t payloads[S_MAX_PAYLOADS];
    int n_payloads;
    int64_t rtt_small, rtt_large;    /* timed round trips per cell */
    int64_t burst_small, burst_large;/* messages per timed burst */
    int repeat;                      /* runs per cell; the medians are reported */
    int timeout_s;
    const char *json_path;
    int check;                       /* exit 1 when a target is missed */
    int quick;
    cpu_set_t cpus;                  /* --cpus: where every thread runs; empty: anywhere */
    char cpus_text[64];
} s_opts_t;

/* One measurement: either timings (rtt: count samples; burst: one) or an error. */
typedef struct {
    uint64_t *ns;                    /* owned */
    int64_t n;
} s_timings_t;

/* What a cell reports, for one side (raw or runtime). */
typedef struct {
    double p50_us, p99_us;
    double msgs_per_s, mb_per_s;
} s_side_t;

typedef struct {
    s_transport_t transport;
    size_t payload;
    int64_t n_rtt, n_burst;
    s_side_t raw, rt;                /* medians over the runs */
    double ratio_p50, ratio_p99;     /* runtime / raw round trip: median of the per-run ratios */
    double ratio_tput;               /* runtime / raw messages/s: likewise */
    int ok;                          /* every measurement of the cell succeeded */
    char err[512];
} s_cell_t;

static unsigned s_run_counter;       /* names unique inproc endpoints; main thread only */

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return TR_ERR;
}

/* Two consecutive TCP ports on 127.0.0.1 that can be bound now (SO_REUSEADDR, as libzmq
 * binds), below the usual ephemeral range and within base_port's allowed range. */
static int s_free_port_pair(void) {
    int start = 20000 + (int)((unsigned)getpid() * 2 % 10000);
    for (int k = 0; k < 5000; k++) {
        int port = 20000 + (start - 20000 + 2 * k) % 12000;
        int okays = 0;
        for (int j = 0; j < 2; j++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
            if (fd < 0) return -1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_in sa = {.sin_family = AF_INET};
            sa.sin_port = htons((uint16_t)(port + j));
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            okays += bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
            close(fd);
        }
        if (okays == 2) return port;
    }
    return -1;
}

/* Makes a private run directory for ipc files under $TMPDIR (default /tmp). */
static int s_rundir_make(char *dir, size_t dirlen, char *err, size_t errlen) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, dirlen, "%s/troupe-bench-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) {
        int e = errno;
        dir[0] = '\0';
        return s_fail(err, errlen, "mkdtemp: %s", strerror(e));
    }
    return TR_OK;
}

/* Removes the run directory and the ipc socket files in it (libzmq 4.3 leaves them). */
static void s_rundir_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        char path[512];
        for (struct dirent *de; (de = readdir(d));) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0) TR_WARN("cannot remove %s: %s", dir, strerror(errno));
}

/* ---- runtime side ---- */

static int s_runtime_measure(const s_opts_t *o, s_transport_t tr, s_mode_t mode, size_t payload,
                             int64_t warmup, int64_t count, s_timings_t *out, char *err,
                             size_t errlen) {
    char rundir[128] = "", report_ep[128], yaml[2048];
    tr_topology_t *topo = NULL;
    tr_node_t *nodes[2] = {NULL, NULL};
    void *zctx = NULL, *report = NULL, *kick = NULL;
    int rc = TR_ERR, n_nodes = 0;
    zmq_msg_t zm;
    zmq_msg_init(&zm);
    out->ns = NULL;
    out->n = 0;

    snprintf(report_ep, sizeof report_ep, "inproc://bench-msg-report-%d-%u", (int)getpid(),
             ++s_run_counter);
    int n = 0;
    if (tr != S_INPROC) {
        if (s_rundir_make(rundir, sizeof rundir, err, errlen) != TR_OK) goto done;
        const char *host = tr == S_TCP ? ", host: 127.0.0.1" : "";
        n += snprintf(yaml + n, sizeof yaml - n,
                      "processes:\n"
                      "  - {name: p0, actors: [driver]%s}\n"
                      "  - {name: p1, actors: [echo]%s}\n", host, host);
        if (tr == S_TCP) {
            int port = s_free_port_pair();
            if (port < 0) {
                s_fail(err, errlen, "no free pair of tcp ports found");
                goto done;
            }
            n += snprintf(yaml + n, sizeof yaml - n, "base_port: %d\n", port);
        }
    }
    snprintf(yaml + n, sizeof yaml - n,
             "driver:\n  mode: %s\n  count: %" PRId64 "\n  warmup: %" PRId64 "\n"
             "  payload: %zu\n  report: %s\n",
             mode == S_RTT ? "rtt" : "burst", count, warmup, payload, report_ep);
    topo = tr_topo_load_string(yaml, "bench/msg", &s_schema, err, errlen);
    if (!topo) goto done;
    if (tr_topo_derive_endpoints(topo, rundir[0] ? rundir : NULL, err, errlen) != TR_OK) goto done;

    zctx = zmq_ctx_new();
    report = zctx ? zmq_socket(zctx, ZMQ_PULL) : NULL;
    if (!report) {
        s_fail(err, errlen, "zmq: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    int zero = 0, timeout_ms = o->timeout_s * 1000;
    zmq_setsockopt(report, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(report, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(report, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(report, report_ep) != 0) {
        s_fail(err, errlen, "bind %s: %s", report_ep, zmq_strerror(zmq_errno()));
        goto done;
    }
    for (int p = 0; p < topo->n_procs; p++) {
        nodes[p] = tr_node_new(topo, p, s_lookup, zctx);
        if (!nodes[p]) {
            s_fail(err, errlen, "tr_node_new failed for process %d", p);
            goto done;
        }
        n_nodes = p + 1;
        if (tr_node_start(nodes[p], err, errlen) != TR_OK) goto done;
    }

    /* start the driver: a bench message without `from`, straight into its inbox */
    const tr_topo_actor_t *driver = tr_topo_find_actor(topo, "driver");
    kick = zmq_socket(zctx, ZMQ_PUSH);
    if (!driver || !kick || zmq_connect(kick, driver->inproc) != 0) {
        s_fail(err, errlen, "cannot reach the driver: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    zmq_setsockopt(kick, ZMQ_LINGER, &zero, sizeof zero);
    tr_msg_t start;
    tr_msg_init(&start, TR_MSG_BENCH);
    TR_MSG_SET(&start, bench, seq, 0);
    if (tr_wire_send(kick, &start, 0) != TR_OK) {
        s_fail(err, errlen, "cannot start the driver");
        goto done;
    }

    if (zmq_msg_recv(&zm, report, 0) < 0) {
        s_fail(err, errlen, "no report from the driver within %d s (%s)", o->timeout_s,
               zmq_strerror(zmq_errno()));
        goto done;
    }
    tr_msg_t m;
    tr_msg_err_t merr;
    if (tr_msg_decode(&m, zmq_msg_data(&zm), zmq_msg_size(&zm), &merr) != TR_OK) {
        s_fail(err, errlen, "bad report: %s", merr.text);
        goto done;
    }
    int64_t want = mode == S_RTT ? count : 1;
    if (m.type == TR_MSG_ERROR) {
        char text[400];
        s_fail(err, errlen, "runtime: %s", tr_str_copy(m.u.error.message, text, sizeof text));
    } else if (m.type != TR_MSG_BENCH || !TR_MSG_HAS(&m, bench, payload) ||
               m.u.bench.payload.n != want * sizeof(uint64_t)) {
        s_fail(err, errlen, "unexpected report from the driver");
    } else if (!(out->ns = malloc((size_t)want * sizeof(uint64_t)))) {
        s_fail(err, errlen, "out of memory");
    } else {
        /* the bin may be unaligned: copy it out */
        memcpy(out->ns, m.u.bench.payload.p, (size_t)want * sizeof(uint64_t));
        out->n = want;
        rc = TR_OK;
    }
    tr_msg_fini(&m);

done:
    zmq_msg_close(&zm);
    if (kick) zmq_close(kick);
    if (report) zmq_close(report);
    for (int p = 0; p < n_nodes; p++) tr_node_stop(nodes[p]);
    for (int p = 0; p < n_nodes; p++) tr_node_destroy(&nodes[p]);
    if (zctx) zmq_ctx_term(zctx);
    tr_topo_destroy(&topo);
    if (rundir[0]) s_rundir_remove(rundir);
    return rc;
}

/* ---- raw libzmq side ---- */

typedef struct {
    void *zctx;                      /* borrowed */
    s_mode_t mode;
    int64_t warmup, count;
    int timeout_ms;
    char driver_ep[256];             /* the main thread's PULL (ro for the echo) */
    char echo_ep[256];               /* in: where to bind; out: where it is bound */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;                       /* 1: bound and connected; -1: failed */
    int status;
    char err[256];
} s_raw_echo_t;

static void *s_raw_echo_main(void *arg) {
    s_raw_echo_t *e = arg;
    int zero = 0;
    void *pull = zmq_socket(e->zctx, ZMQ_PULL), *push = zmq_socket(e->zctx, ZMQ_PUSH);
    size_t sz = sizeof e->echo_ep;
    e->status = TR_ERR;
    if (!pull || !push) goto fail;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &e->timeout_ms, sizeof e->timeout_ms);
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_LINGER, &e->timeout_ms, sizeof e->timeout_ms);
    if (zmq_bind(pull, e->echo_ep) != 0 ||
        zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, e->echo_ep, &sz) != 0 ||
        zmq_connect(push, e->driver_ep) != 0)
        goto fail;
    pthread_mutex_lock(&e->mu);
    e->ready = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);

    zmq_msg_t m;
    zmq_msg_init(&m);
    if (e->mode == S_RTT) {
        for (int64_t i = 0; i < e->warmup + e->count; i++) {
            if (zmq_msg_recv(&m, pull, 0) < 0) goto fail_msg;
            /* one copy, as the echo actor's answer copies the payload while packing */
            if (zmq_send(push, zmq_msg_data(&m), zmq_msg_size(&m), 0) < 0) goto fail_msg;
        }
    } else {
        for (int round = e->warmup > 0 ? 0 : 1; round < 2; round++) {
            uint64_t n = 0;
            for (;;) {
                if (zmq_msg_recv(&m, pull, 0) < 0) goto fail_msg;
                if (zmq_msg_size(&m) == 0) break; /* the marker */
                n++;
            }
            if (zmq_send(push, &n, sizeof n, 0) < 0) goto fail_msg;
        }
    }
    zmq_msg_close(&m);
    e->status = TR_OK;
    zmq_close(pull);
    zmq_close(push);
    return NULL;
fail_msg:
    zmq_msg_close(&m);
fail:
    snprintf(e->err, sizeof e->err, "raw echo: %s", zmq_strerror(zmq_errno()));
    if (pull) zmq_close(pull);
    if (push) zmq_close(push);
    pthread_mutex_lock(&e->mu);
    if (!e->ready) e->ready = -1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static int s_raw_measure(const s_opts_t *o, s_transport_t tr, s_mode_t mode, size_t payload,
                         int64_t warmup, int64_t count, s_timings_t *out, char *err,
                         size_t errlen) {
    char rundir[128] = "";
    int rc = TR_ERR, zero = 0, thread_started = 0;
    void *zctx = zmq_ctx_new(), *pull = NULL, *push = NULL;
    uint8_t *buf = malloc(payload ? payload : 1);
    s_raw_echo_t e = {.zctx = zctx, .mode = mode, .warmup = warmup, .count = count,
                      .timeout_ms = o->timeout_s * 1000};
    pthread_t th;
    pthread_mutex_init(&e.mu, NULL);
    pthread_cond_init(&e.cv, NULL);
    zmq_msg_t m;
    zmq_msg_init(&m);
    int64_t want = mode == S_RTT ? count : 1;
    out->n = 0;
    out->ns = malloc((size_t)want * sizeof(uint64_t));
    if (!zctx || !buf || !out->ns) {
        s_fail(err, errlen, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < payload; i++) buf[i] = (uint8_t)(i * 131 + 7);

    unsigned k = ++s_run_counter;
    if (tr == S_INPROC) {
        snprintf(e.driver_ep, sizeof e.driver_ep, "inproc://bench-msg-raw-%u-driver", k);
        snprintf(e.echo_ep, sizeof e.echo_ep, "inproc://bench-msg-raw-%u-echo", k);
    } else if (tr == S_IPC) {
        if (s_rundir_make(rundir, sizeof rundir, err, errlen) != TR_OK) goto done;
        snprintf(e.driver_ep, sizeof e.driver_ep, "ipc://%s/driver", rundir);
        snprintf(e.echo_ep, sizeof e.echo_ep, "ipc://%s/echo", rundir);
    } else {
        snprintf(e.driver_ep, sizeof e.driver_ep, "tcp://127.0.0.1:*");
        snprintf(e.echo_ep, sizeof e.echo_ep, "tcp://127.0.0.1:*");
    }
    pull = zmq_socket(zctx, ZMQ_PULL);
    push = zmq_socket(zctx, ZMQ_PUSH);
    size_t sz = sizeof e.driver_ep;
    int timeout_ms = o->timeout_s * 1000;
    if (!pull || !push) goto zfail;
    zmq_setsockopt(pull, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(pull, e.driver_ep) != 0 ||
        zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, e.driver_ep, &sz) != 0)
        goto zfail;
    if (pthread_create(&th, NULL, s_raw_echo_main, &e) != 0) {
        s_fail(err, errlen, "pthread_create: %s", strerror(errno));
        goto done;
    }
    thread_started = 1;
    pthread_mutex_lock(&e.mu);
    while (!e.ready) pthread_cond_wait(&e.cv, &e.mu);
    pthread_mutex_unlock(&e.mu);
    if (e.ready < 0) {
        s_fail(err, errlen, "%s", e.err);
        goto done;
    }
    if (zmq_connect(push, e.echo_ep) != 0) goto zfail;

    if (mode == S_RTT) {
        for (int64_t i = 0; i < warmup + count; i++) {
            uint64_t t0 = tr_now_ns();
            if (zmq_send(push, buf, payload, 0) < 0 || zmq_msg_recv(&m, pull, 0) < 0) goto zfail;
            uint64_t dt = tr_now_ns() - t0;
            if (zmq_msg_size(&m) != payload) {
                s_fail(err, errlen, "raw: answer of %zu bytes, expected %zu", zmq_msg_size(&m),
                       payload);
                goto done;
            }
            if (i >= warmup) out->ns[i - warmup] = dt;
        }
    } else {
        for (int round = warmup > 0 ? 0 : 1; round < 2; round++) {
            int64_t len = round ? count : warmup;
            uint64_t t0 = tr_now_ns();
            for (int64_t i = 0; i < len; i++)
                if (zmq_send(push, buf, payload, 0) < 0) goto zfail;
            if (zmq_send(push, "", 0, 0) < 0 || zmq_msg_recv(&m, pull, 0) < 0) goto zfail;
            uint64_t dt = tr_now_ns() - t0, got = 0;
            if (zmq_msg_size(&m) == sizeof got) memcpy(&got, zmq_msg_data(&m), sizeof got);
            if (got != (uint64_t)len) {
                s_fail(err, errlen, "raw: the echo counted %" PRIu64 " of %" PRId64 " messages",
                       got, len);
                goto done;
            }
            out->ns[0] = dt;
        }
    }
    out->n = want;
    rc = TR_OK;
    goto done;
zfail:
    s_fail(err, errlen, "raw: %s", zmq_strerror(zmq_errno()));
done:
    zmq_msg_close(&m);
    if (thread_started) {
        pthread_join(th, NULL);
        if (rc == TR_OK && e.status != TR_OK) rc = s_fail(err, errlen, "%s", e.err);
    }
    if (pull) zmq_close(pull);
    if (push) zmq_close(push);
    if (zctx) zmq_ctx_term(zctx);
    if (rundir[0]) s_rundir_remove(rundir);
    pthread_mutex_destroy(&e.mu);
    pthread_cond_destroy(&e.cv);
    free(buf);
    if (rc != TR_OK) {
        free(out->ns);
        out->ns = NULL;
        out->n = 0;
    }
    return rc;
}

/* ---- statistics ---- */

static int s_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n), q in (0, 1]. */
static uint64_t s_percentile(const uint64_t *v, int64_t n, double q) {
    int64_t i = (int64_t)ceil(q * (double)n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static int s_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double s_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- one cell: transport x payload, `repeat` runs of the four measurements ---- */

typedef int (*s_measure_fn)(const s_opts_t *, s_transport_t, s_mode_t, size_t, int64_t, int64_t,
                            s_timings_t *, char *, size_t);

/* Run r of one side: acc[r] = {p50 us, p99 us, msgs/s, MB/s}. */
static int s_measure_side(const s_opts_t *o, s_measure_fn fn, s_cell_t *c, int r,
                          double (*acc)[4]) {
    s_timings_t t;
    if (fn(o, c->transport, S_RTT, c->payload, c->n_rtt / 10, c->n_rtt, &t, c->err,
           sizeof c->err) != TR_OK)
        return TR_ERR;
    qsort(t.ns, (size_t)t.n, sizeof *t.ns, s_cmp_u64);
    acc[r][0] = (double)s_percentile(t.ns, t.n, 0.50) / 1e3;
    acc[r][1] = (double)s_percentile(t.ns, t.n, 0.99) / 1e3;
    free(t.ns);
    if (fn(o, c->transport, S_BURST, c->payload, c->n_burst / 10, c->n_burst, &t, c->err,
           sizeof c->err) != TR_OK)
        return TR_ERR;
    double s = (double)t.ns[0] / 1e9;
    acc[r][2] = (double)c->n_burst / s;
    acc[r][3] = (double)c->n_burst * (double)c->payload / s / 1e6;
    free(t.ns);
    return TR_OK;
}

static void s_fold(double (*acc)[4], int n, s_side_t *out) {
    double v[64];
    double *dst[4] = {&out->p50_us, &out->p99_us, &out->msgs_per_s, &out->mb_per_s};
    for (int j = 0; j < 4; j++) {
        for (int r = 0; r < n; r++) v[r] = acc[r][j];
        *dst[j] = s_median(v, n);
    }
}

/* Median over the runs of rt[r][j] / raw[r][j]: each run pairs the two sides measured
 * back to back, so load that comes and goes between runs cancels out. */
static double s_ratio(double (*rt)[4], double (*raw)[4], int n, int j) {
    double v[64];
    for (int r = 0; r < n; r++) v[r] = rt[r][j] / raw[r][j];
    return s_median(v, n);
}

static int s_measure_cell(const s_opts_t *o, s_cell_t *c) {
    double raw[64][4], rt[64][4];
    int large = c->payload >= S_LARGE_PAYLOAD;
    c->n_rtt = large ? o->rtt_large : o->rtt_small;
    c->n_burst = large ? o->burst_large : o->burst_small;
    for (int r = 0; r < o->repeat; r++) {
        /* raw first, then the runtime, within each run: slow drift hits both alike */
        if (s_measure_side(o, s_raw_measure, c, r, raw) != TR_OK ||
            s_measure_side(o, s_runtime_measure, c, r, rt) != TR_OK)
            return TR_ERR;
    }
    s_fold(raw, o->repeat, &c->raw);
    s_fold(rt, o->repeat, &c->rt);
    c->ratio_p50 = s_ratio(rt, raw, o->repeat, 0);
    c->ratio_p99 = s_ratio(rt, raw, o->repeat, 1);
    c->ratio_tput = s_ratio(rt, raw, o->repeat, 2);
    c->ok = 1;
    return TR_OK;
}

/* ---- output ---- */

#define S_RTT_TARGET 1.5
#define S_TPUT_TARGET 0.7

static const char *s_size_name(size_t n, char *buf, size_t bufsize) {
    if (n >= 1048576 && n % 1048576 == 0) snprintf(buf, bufsize, "%zu MiB", n / 1048576);
    else if (n >= 1024 && n % 1024 == 0) snprintf(buf, bufsize, "%zu KiB", n / 1024);
    else snprintf(buf, bufsize, "%zu B", n);
    return buf;
}


static void s_cpu_model(char *buf, size_t bufsize) {
    snprintf(buf, bufsize, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *p = strchr(line, ':');
        if (!p) break;
        p += strspn(p + 1, " \t") + 1;
        snprintf(buf, bufsize, "%.*s", (int)strcspn(p, "\n"), p);
        break;
    }
    fclose(f);
}

/* The 1-minute load average, or -1. */
static double s_load(void) {
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

static void s_print_header(const s_opts_t *o, const char *cpu, long ncpu, double load) {
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    printf("bench/msg: troupe runtime messaging vs raw libzmq %d.%d.%d (same pattern, one "
           "payload copy per send)\n", maj, min, pat);
    printf("machine: %ld cores, %s; load average %.2f at start (other work skews the figures)\n",
           ncpu, cpu, load);
    printf("round trip: %" PRId64 " timed (payload < 64 KiB) / %" PRId64 " (larger) after 10%% "
           "warm-up; p50/p99 in us\n", o->rtt_small, o->rtt_large);
    printf("one-way: bursts of %" PRId64 " / %" PRId64 " messages after a 10%% warm-up burst; "
           "messages/s (MB/s)\n", o->burst_small, o->burst_large);
    printf("threads: %s%s\n", o->cpus_text[0] ? "pinned to CPUs " : "not pinned",
           o->cpus_text);
    printf("figures: medians of %d run(s); ratios: runtime / raw, median of the per-run ratios\n",
           o->repeat);
    printf("targets: round trip p50 ratio <= %.1f, one-way msg/s ratio >= %.1f\n\n", S_RTT_TARGET,
           S_TPUT_TARGET);
    printf("%-9s %-8s | %-17s %-17s %-13s | %-21s %-21s %-9s\n", "", "", "round trip (us)", "", "",
           "one-way", "", "");
    printf("%-9s %-8s | %-17s %-17s %-13s | %-21s %-21s %-9s\n", "transport", "payload",
           "raw p50/p99", "runtime p50/p99", "ratio p50/99", "raw msg/s (MB/s)",
           "runtime msg/s (MB/s)", "ratio");
    fflush(stdout);
}

static void s_print_cell(const s_cell_t *c) {
    char size[32], a[32], b[32], d[40], e[40];
    s_size_name(c->payload, size, sizeof size);
    if (!c->ok) {
        printf("%-9s %-8s | FAILED: %s\n", s_transport_names[c->transport], size, c->err);
        fflush(stdout);
        return;
    }
    snprintf(a, sizeof a, "%.1f / %.1f", c->raw.p50_us, c->raw.p99_us);
    snprintf(b, sizeof b, "%.1f / %.1f", c->rt.p50_us, c->rt.p99_us);
    snprintf(d, sizeof d, "%.0f (%.0f)", c->raw.msgs_per_s, c->raw.mb_per_s);
    snprintf(e, sizeof e, "%.0f (%.0f)", c->rt.msgs_per_s, c->rt.mb_per_s);
    char r1[32], r2[32];
    snprintf(r1, sizeof r1, "%.2f/%.2f %s", c->ratio_p50, c->ratio_p99,
             c->ratio_p50 <= S_RTT_TARGET ? "ok" : "MISS");
    snprintf(r2, sizeof r2, "%.2f %s", c->ratio_tput,
             c->ratio_tput >= S_TPUT_TARGET ? "ok" : "MISS");
    printf("%-9s %-8s | %-17s %-17s %-13s | %-21s %-21s %-9s\n", s_transport_names[c->transport],
           size, a, b, r1, d, e, r2);
    fflush(stdout);
}

static json_t *s_side_json(const s_side_t *s) {
    return json_pack("{s:f, s:f, s:f, s:f}", "rtt_p50_us", s->p50_us, "rtt_p99_us", s->p99_us,
                     "msgs_per_s", s->msgs_per_s, "mb_per_s", s->mb_per_s);
}

static int s_write_json(const s_opts_t *o, const s_cell_t *cells, int n, const char *cpu,
                        long ncpu, double load0, double load1) {
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    char zv[32];
    snprintf(zv, sizeof zv, "%d.%d.%d", maj, min, pat);
    json_t *results = json_array();
    for (int i = 0; i < n; i++) {
        const s_cell_t *c = &cells[i];
        json_t *r = json_pack("{s:s, s:I, s:I, s:I, s:b}", "transport",
                              s_transport_names[c->transport], "payload_bytes",
                              (json_int_t)c->payload, "rtt_count", (json_int_t)c->n_rtt,
                              "burst_count", (json_int_t)c->n_burst, "ok", c->ok);
        if (c->ok) {
            json_object_set_new(r, "raw", s_side_json(&c->raw));
            json_object_set_new(r, "runtime", s_side_json(&c->rt));
            json_object_set_new(r, "ratio",
                                json_pack("{s:f, s:f, s:f}", "rtt_p50", c->ratio_p50, "rtt_p99",
                                          c->ratio_p99, "msgs_per_s", c->ratio_tput));
            json_object_set_new(r, "targets_met",
                                json_pack("{s:b, s:b}", "rtt", c->ratio_p50 <= S_RTT_TARGET,
                                          "oneway", c->ratio_tput >= S_TPUT_TARGET));
        } else {
            json_object_set_new(r, "error", json_string(c->err));
        }
        json_array_append_new(results, r);
    }
    json_t *root = json_pack(
        "{s:s, s:{s:I, s:s, s:s, s:f, s:f}, s:{s:I, s:I, s:I, s:I, s:i, s:b, s:s}, s:{s:f, s:f}, "
        "s:o}",
        "bench", "msg", "machine", "nproc", (json_int_t)ncpu, "cpu", cpu, "libzmq", zv,
        "load_avg_start", load0, "load_avg_end", load1, "options",
        "rtt_small", (json_int_t)o->rtt_small, "rtt_large", (json_int_t)o->rtt_large, "burst_small",
        (json_int_t)o->burst_small, "burst_large", (json_int_t)o->burst_large, "repeat", o->repeat,
        "quick", o->quick, "cpus", o->cpus_text, "targets", "rtt_ratio_max", S_RTT_TARGET,
        "oneway_ratio_min", S_TPUT_TARGET, "results", results);
    int rc = json_dump_file(root, o->json_path, JSON_INDENT(2)) == 0 ? TR_OK : TR_EIO;
    json_decref(root);
    return rc;
}

/* ---- options ---- */

static void s_usage(FILE *f) {
    fprintf(f,
            "usage: bench_msg [options]\n"
            "Round trip latency and one-way throughput of troupe's actor messaging beside the\n"
            "same pattern on raw libzmq, over inproc, ipc and tcp.\n\n"
            "  --transports LIST   comma-separated subset of inproc,ipc,tcp (default: all)\n"
            "  --payloads LIST     comma-separated payload sizes in bytes (default: 64,1048576)\n"
            "  --rtt N             timed round trips for payloads < 64 KiB (default 20000)\n"
            "  --rtt-large N       timed round trips for larger payloads (default 1000)\n"
            "  --burst M           messages per one-way burst, payloads < 64 KiB (default 200000)\n"
            "  --burst-large M     messages per one-way burst, larger payloads (default 1000)\n"
            "                      (warm-up: 10%% more round trips, and a burst of 10%% of M)\n"
            "  --repeat R          runs per cell; medians are reported (default 1)\n"
            "  --cpus LIST         run every thread on these CPUs (e.g. 0: one core, no\n"
            "                      cross-CPU wake-ups); default: wherever the kernel puts them\n"
            "  --quick             smoke run: small counts\n"
            "  --timeout S         seconds one measurement may take (default 60)\n"
            "  --json FILE         also write the figures as JSON\n"
            "  --check             exit 1 when a target is missed\n"
            "Targets: runtime round trip p50 <= 1.5x raw; runtime one-way msg/s >= 0.7x raw.\n"
            "TROUPE_LOG sets the runtime's log level (default warn).\n");
}

static int s_parse_i64(const char *s, int64_t lo, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s ? s : "", &end, 10);
    if (!s || !*s || *end || errno || v < lo) return TR_EINVAL;
    *out = v;
    return TR_OK;
}

static int s_parse_args(int argc, char **argv, s_opts_t *o) {
    *o = (s_opts_t){.transports = {1, 1, 1}, .payloads = {64, 1048576}, .n_payloads = 2,
                    .rtt_small = 20000, .rtt_large = 1000, .burst_small = 200000,
                    .burst_large = 1000, .repeat = 1, .timeout_s = 60};
    int64_t v;
    int set_rtt = 0, set_rtt_l = 0, set_burst = 0, set_burst_l = 0, i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s_usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o->quick = 1;
        } else if (!strcmp(a, "--check")) {
            o->check = 1;
        } else if (!strcmp(a, "--cpus")) {
            if (!val || strlen(val) >= sizeof o->cpus_text) goto bad;
            snprintf(o->cpus_text, sizeof o->cpus_text, "%s", val);
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%s", val);
            for (char *save, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (s_parse_i64(t, 0, &v) != TR_OK || v >= CPU_SETSIZE) goto bad;
                CPU_SET((int)v, &o->cpus);
            }
            i++;
        } else if (!strcmp(a, "--json")) {
            if (!val) goto bad;
            o->json_path = val;
            i++;
        } else if (!strcmp(a, "--transports")) {
            if (!val) goto bad;
            memset(o->transports, 0, sizeof o->transports);
            char tmp[128];
            snprintf(tmp, sizeof tmp, "%s", val);
            for (char *save, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                int k = 0;
                while (k < S_N_TRANSPORTS && strcmp(t, s_transport_names[k])) k++;
                if (k == S_N_TRANSPORTS) {
                    fprintf(stderr, "bench_msg: unknown transport '%s'\n", t);
                    return TR_EINVAL;
                }
                o->transports[k] = 1;
            }
            i++;
        } else if (!strcmp(a, "--payloads")) {
            if (!val) goto bad;
            char tmp[256];
            snprintf(tmp, sizeof tmp, "%s", val);
            o->n_payloads = 0;
            for (char *save, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (o->n_payloads == S_MAX_PAYLOADS || s_parse_i64(t, 1, &v) != TR_OK ||
                    v > 268435456) {
                    fprintf(stderr, "bench_msg: payloads: at most %d sizes in 1..268435456\n",
                            S_MAX_PAYLOADS);
                    return TR_EINVAL;
                }
                o->payloads[o->n_payloads++] = (size_t)v;
            }
            i++;
        } else if (!strcmp(a, "--rtt") || !strcmp(a, "--rtt-large") || !strcmp(a, "--burst") ||
                   !strcmp(a, "--burst-large") || !strcmp(a, "--repeat") ||
                   !strcmp(a, "--timeout")) {
            if (s_parse_i64(val, 1, &v) != TR_OK || v > 100000000) goto bad;
            if (!strcmp(a, "--rtt")) o->rtt_small = v, set_rtt = 1;
            else if (!strcmp(a, "--rtt-large")) o->rtt_large = v, set_rtt_l = 1;
            else if (!strcmp(a, "--burst")) o->burst_small = v, set_burst = 1;
            else if (!strcmp(a, "--burst-large")) o->burst_large = v, set_burst_l = 1;
            else if (!strcmp(a, "--repeat") && v <= 64) o->repeat = (int)v;
            else if (!strcmp(a, "--timeout") && v <= 86400) o->timeout_s = (int)v;
            else goto bad;
            i++;
        } else {
            goto bad;
        }
    }
    if (o->quick) { /* explicit counts still win */
        if (!set_rtt) o->rtt_small = 500;
        if (!set_rtt_l) o->rtt_large = 20;
        if (!set_burst) o->burst_small = 5000;
        if (!set_burst_l) o->burst_large = 20;
    }
    return TR_OK;
bad:
    fprintf(stderr, "bench_msg: bad or incomplete option '%s'\n", argv[i]);
    s_usage(stderr);
    return TR_EINVAL;
}

int main(int argc, char **argv) {
    const char *lvl = getenv("TROUPE_LOG");
    int level = lvl ? tr_log_parse_level(lvl) : TR_LOG_WARN;
    tr_log_set_level(level < 0 ? TR_LOG_WARN : (tr_log_level_t)level);
    s_opts_t o;
    if (s_parse_args(argc, argv, &o) != TR_OK) return 2;
    /* threads inherit the affinity of the thread that creates them: actor threads, the raw
     * echo thread and libzmq's I/O threads all start from this one */
    if (CPU_COUNT(&o.cpus) && sched_setaffinity(0, sizeof o.cpus, &o.cpus) != 0) {
        fprintf(stderr, "bench_msg: --cpus %s: %s\n", o.cpus_text, strerror(errno));
        return 2;
    }

    char cpu[256];
    s_cpu_model(cpu, sizeof cpu);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double load0 = s_load();
    s_print_header(&o, cpu, ncpu, load0);

    s_cell_t cells[S_N_TRANSPORTS * S_MAX_PAYLOADS];
    int n_cells = 0, n_failed = 0, n_missed = 0;
    uint64_t t0 = tr_now_ns();
    for (int t = 0; t < S_N_TRANSPORTS; t++) {
        if (!o.transports[t]) continue;
        for (int p = 0; p < o.n_payloads; p++) {
            s_cell_t *c = &cells[n_cells++];
            *c = (s_cell_t){.transport = (s_transport_t)t, .payload = o.payloads[p]};
            if (s_measure_cell(&o, c) != TR_OK) n_failed++;
            else n_missed += (c->ratio_p50 > S_RTT_TARGET) + (c->ratio_tput < S_TPUT_TARGET);
            s_print_cell(c);
        }
    }
    double load1 = s_load();
    printf("\n%d cell(s) in %.1f s, load average %.2f at the end; ", n_cells,
           (double)(tr_now_ns() - t0) / 1e9, load1);
    if (n_failed) printf("%d FAILED; ", n_failed);
    if (n_missed) printf("%d target(s) missed (MISS above)\n", n_missed);
    else printf("every target met\n");
    if (!o.cpus_text[0])
        printf("note: unpinned round trips depend on where the kernel puts the two threads (one\n"
               "core or two; on a VM, waking an idle vCPU costs tens of us); --cpus 0 compares\n"
               "the software paths alone (docs/perf.md)\n");
    if (o.json_path && s_write_json(&o, cells, n_cells, cpu, ncpu, load0, load1) != TR_OK) {
        fprintf(stderr, "bench_msg: cannot write %s\n", o.json_path);
        return 1;
    }
    return n_failed || (o.check && n_missed) ? 1 : 0;
}
