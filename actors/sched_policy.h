/*  actors/sched_policy.h - the scheduler's ordering policies.
 *
 *  A policy orders requests: the waiting queue is admitted in this order, running
 *  sequences get their decode slots in this order, and when KV blocks run out the
 *  running sequence that comes last is preempted (its blocks freed, recomputed later).
 *  That one comparison is the whole interface; to add a policy, write a compare function
 *  below the others in sched_policy.c and add a row to its table. The scheduler picks one
 *  by name from the topology: `scheduler: {policy: fcfs}`.
 *
 *  Thread: constant data; compare functions must be pure.                               */
#ifndef TR_SCHED_POLICY_H
#define TR_SCHED_POLICY_H

#include <stdint.h>

/* What a policy may look at. */
typedef struct {
    uint64_t arrival;        /* arrival order at the scheduler (1, 2, ...) */
    int64_t priority;        /* the request's `priority` (default 0) */
    int32_t n_prompt;        /* prompt tokens */
    int32_t n_generated;     /* tokens generated so far */
    int32_t max_tokens;      /* most tokens it may generate */
} tr_sched_info_t;

typedef struct {
    const char *name;
    const char *doc;
    /* < 0: a is served before b; > 0: after; never 0 for different requests. */
    int (*compare)(const tr_sched_info_t *a, const tr_sched_info_t *b);
} tr_sched_policy_t;

/* The policy called `name`, or NULL. */
const tr_sched_policy_t *tr_sched_policy_find(const char *name);
/* Every policy, NULL-terminated (for `troupe actors` and docs). */
const tr_sched_policy_t *const *tr_sched_policy_all(void);

#endif
