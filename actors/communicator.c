/*  actors/communicator.c - the collectives of one rank.
 *  Owns:    (later) the rank's groups: tensor-parallel all-reduce, pipeline neighbours,
 *           expert all-to-all; the NCCL bootstrap (unique id exchanged over ZeroMQ).
 *  Accepts: the runtime's built-ins (ping, peer_down).   Sends: nothing yet.
 *  Thread:  its own loop.
 *
 *  Today every topology that serves is a single-rank group (world 1): the executor needs
 *  no collective, and the communicator only takes its place in the topology, answers
 *  health and stats, and reports its group. The step plan already goes to every executor
 *  of the group and only rank 0 answers, which is the shape tensor parallelism needs.   */
#include <stdlib.h>

#include "actors/registry.h"
#include "actors/serving.h"

typedef struct {
    int32_t rank, world;
} self_t;

static void *s_self_new(tr_actor_t *actor) {
    self_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->rank = tr_actor_rank(actor) < 0 ? 0 : tr_actor_rank(actor);
    self->world = tr_serving_count(tr_actor_topology(actor), "communicator");
    return self;
}

static void s_self_destroy(void **self_p) {
    free(*self_p);
    *self_p = NULL;
}

static void s_stats(void *self_, msgpack_packer *pk) {
    self_t *self = self_;
    msgpack_pack_map(pk, 3);
    tr_pack_cstr(pk, "rank");
    msgpack_pack_int32(pk, self->rank);
    tr_pack_cstr(pk, "world");
    msgpack_pack_int32(pk, self->world);
    tr_pack_cstr(pk, "backend");
    tr_pack_cstr(pk, self->world > 1 ? "none (multi-rank groups are not implemented)" : "single");
}

static const tr_handler_t s_handlers[] = {{0, NULL}};

const tr_actor_spec_t tr_communicator_spec = {
    .name = "communicator",
    .summary = "collectives of one rank (single-rank group today; NCCL / CPU all-reduce later)",
    .ranked = 1,
    .handlers = s_handlers,
    .state_new = s_self_new,
    .state_destroy = s_self_destroy,
    .stats = s_stats,
};
