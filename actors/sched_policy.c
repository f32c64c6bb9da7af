/*  actors/sched_policy.c - see sched_policy.h. */
#include "actors/sched_policy.h"

#include <string.h>

static int s_by_arrival(const tr_sched_info_t *a, const tr_sched_info_t *b) {
    return a->arrival < b->arrival ? -1 : a->arrival > b->arrival;
}

/* First come, first served. */
static int s_fcfs(const tr_sched_info_t *a, const tr_sched_info_t *b) {
    return s_by_arrival(a, b);
}

/* Lower `priority` value first (as vLLM), then arrival. */
static int s_priority(const tr_sched_info_t *a, const tr_sched_info_t *b) {
    if (a->priority != b->priority) return a->priority < b->priority ? -1 : 1;
    return s_by_arrival(a, b);
}

/* Shortest job first, by prompt plus requested output: an example of a policy that
 * trades fairness for mean latency. */
static int s_sjf(const tr_sched_info_t *a, const tr_sched_info_t *b) {
    int64_t ja = (int64_t)a->n_prompt + a->max_tokens, jb = (int64_t)b->n_prompt + b->max_tokens;
    if (ja != jb) return ja < jb ? -1 : 1;
    return s_by_arrival(a, b);
}

static const tr_sched_policy_t s_fcfs_policy = {"fcfs", "first come, first served", s_fcfs};
static const tr_sched_policy_t s_priority_policy = {
    "priority", "lower `priority` first, then arrival; preempts the least urgent", s_priority};
static const tr_sched_policy_t s_sjf_policy = {
    "sjf", "shortest (prompt + max_tokens) first, then arrival", s_sjf};

static const tr_sched_policy_t *const s_policies[] = {&s_fcfs_policy, &s_priority_policy,
                                                      &s_sjf_policy, NULL};

const tr_sched_policy_t *tr_sched_policy_find(const char *name) {
    for (int i = 0; s_policies[i]; i++)
        if (strcmp(s_policies[i]->name, name) == 0) return s_policies[i];
    return NULL;
}

const tr_sched_policy_t *const *tr_sched_policy_all(void) {
    return s_policies;
}
