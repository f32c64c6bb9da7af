/*  actors/registry.c - the table of actor kinds; see registry.h. */
#include "actors/registry.h"

#include <string.h>

static const tr_actor_spec_t *const s_specs[] = {
    &tr_frontend_spec, &tr_tokenizer_spec, &tr_scheduler_spec, &tr_kv_manager_spec,
    &tr_executor_spec, &tr_communicator_spec, &tr_reqlog_spec, NULL,
};

/* Kinds a single-process troupe runs, and kinds every topology must place. */
static const char *const s_default_actors[] = {"frontend", "tokenizer", "scheduler", "kv_manager",
                                               "executor", "communicator", NULL};
static const char *const s_required_actors[] = {"frontend", "tokenizer", "scheduler",
                                                "kv_manager", "executor", "communicator", NULL};

const tr_actor_spec_t *tr_registry_find(const char *kind) {
    for (int i = 0; s_specs[i]; i++)
        if (strcmp(s_specs[i]->name, kind) == 0) return s_specs[i];
    return NULL;
}

const tr_actor_spec_t *const *tr_registry_all(void) {
    return s_specs;
}

static int s_known(const char *kind) {
    return tr_registry_find(kind) != NULL;
}

static int s_ranked(const char *kind) {
    const tr_actor_spec_t *s = tr_registry_find(kind);
    return s && s->ranked;
}

static const tr_conf_key_t *s_section_keys(const char *name) {
    for (int i = 0; s_specs[i]; i++)
        if (s_specs[i]->conf_section && strcmp(s_specs[i]->conf_section, name) == 0)
            return s_specs[i]->conf_keys;
    return NULL;
}

static const tr_topo_schema_t s_schema = {
    .actor_known = s_known,
    .actor_ranked = s_ranked,
    .section_keys = s_section_keys,
    .default_actors = s_default_actors,
    .required_actors = s_required_actors,
};

const tr_topo_schema_t *tr_registry_schema(void) {
    return &s_schema;
}
