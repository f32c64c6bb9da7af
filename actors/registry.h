/*  actors/registry.h - every actor kind troupe knows, by name.
 *
 *  The registry is a constant table (actors/registry.c). To add an actor: write its
 *  file (copy examples/actors/reqlog.c), declare its spec here, and add it to the table.
 *  The registry also describes the actors to the topology loader (tr_registry_schema):
 *  which kinds exist, which carry ranks, which configuration sections they read.
 *  Thread-safe: constant data.                                                        */
#ifndef TR_REGISTRY_H
#define TR_REGISTRY_H

#include "runtime/actor.h"

extern const tr_actor_spec_t tr_frontend_spec;
extern const tr_actor_spec_t tr_tokenizer_spec;
extern const tr_actor_spec_t tr_scheduler_spec;
extern const tr_actor_spec_t tr_kv_manager_spec;
extern const tr_actor_spec_t tr_executor_spec;
extern const tr_actor_spec_t tr_communicator_spec;
extern const tr_actor_spec_t tr_reqlog_spec;      /* examples/actors/reqlog.c */

/* The spec of `kind`, or NULL. */
const tr_actor_spec_t *tr_registry_find(const char *kind);
/* Every spec, NULL-terminated. */
const tr_actor_spec_t *const *tr_registry_all(void);
/* The topology loader's view of the registry. */
const tr_topo_schema_t *tr_registry_schema(void);

#endif
