/*  kernels/cpu/pool.h - the CPU backend's persistent thread pool (private to kernels/cpu/).
 *
 *  tr_pool_run(pool, n_tasks, fn, ctx) runs fn(ctx, task, thread) for every task in
 *  [0, n_tasks) on the pool's threads plus the caller, handing tasks out through an atomic
 *  counter (the machine is shared, so no thread is assumed to be as fast as another), and
 *  returns when all are done. Between runs workers spin briefly (a model step issues its
 *  ops back to back) and then sleep on a condition variable, so an idle pool costs nothing.
 *  Owned by one tr_ops_t; tr_pool_run is called by one thread at a time.
 *
 *      tr_pool_t *pool = tr_pool_new(4);
 *      tr_pool_run(pool, n_rows, s_row_task, &args);
 *      tr_pool_destroy(&pool);                                                        */
#ifndef TR_KERNELS_CPU_POOL_H
#define TR_KERNELS_CPU_POOL_H

#include <stdint.h>

typedef struct tr_pool tr_pool_t;
/* One task; `thread` is in [0, tr_pool_threads()) and indexes per-thread scratch. */
typedef void (*tr_pool_fn)(void *ctx, int32_t task, int32_t thread);

/* New pool of n_threads (>= 1, counting the caller). NULL on failure. */
tr_pool_t *tr_pool_new(int32_t n_threads);
/* Joins the workers; NULL-safe; sets *self_p to NULL. */
void tr_pool_destroy(tr_pool_t **self_p);
int32_t tr_pool_threads(const tr_pool_t *self);
/* Sends spinning workers to sleep now instead of after their spin: the caller knows no run
 * comes soon. The next tr_pool_run wakes them as usual. */
void tr_pool_park(tr_pool_t *self);
/* Runs every task and waits for them. With one thread or one task, runs inline. */
void tr_pool_run(tr_pool_t *self, int32_t n_tasks, tr_pool_fn fn, void *ctx);

#endif
