/*  tests/kernels/test_pool.c - the CPU backend's thread pool under churn: many short runs
 *  back to back with changing task counts and one context address, on more threads than
 *  cores (so workers are descheduled at any point, as on a shared machine). Every task of
 *  every run must execute exactly once, inside its run: a worker that saw a generation
 *  late once claimed a task past the old run's end with the next run's arguments, which ran
 *  a task twice and let the caller return before its own tasks had finished.        */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cpu/pool.h"
#include "tests/tap.h"

#define S_MAX_TASKS 8

typedef struct {
    int32_t n_tasks;
    _Atomic int32_t count[S_MAX_TASKS];
    _Atomic int32_t bad;           /* tasks outside [0, n_tasks) */
} s_run_t;

static _Atomic int64_t s_executed;

static void s_task(void *ctx, int32_t task, int32_t thread) {
    s_run_t *r = ctx;
    (void)thread;
    if (task < 0 || task >= r->n_tasks || task >= S_MAX_TASKS)
        atomic_fetch_add(&r->bad, 1);
    else
        atomic_fetch_add(&r->count[task], 1);
    atomic_fetch_add(&s_executed, 1);
}

static double s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    plan_lazy();
    static const int32_t counts[] = {2, 5, 3, 7, 2, 8, 4, 6, 3};
    const int32_t n_counts = (int32_t)(sizeof(counts) / sizeof(counts[0]));
    for (int32_t threads = 2; threads <= 4; threads += 2) {
        tr_pool_t *pool = tr_pool_new(threads);
        if (!ok(pool != NULL, "pool of %d threads", threads)) continue;
        s_run_t run;   /* one address for every run, as a caller's stack frame is */
        int64_t expected = 0, runs = 0, wrong_runs = 0;
        atomic_store(&s_executed, 0);
        double t_end = s_now() + 1.5;
        while (s_now() < t_end) {
            for (int32_t i = 0; i < 2000; i++, runs++) {
                int32_t n = counts[runs % n_counts];
                run.n_tasks = n;
                atomic_store(&run.bad, 0);
                for (int32_t t = 0; t < S_MAX_TASKS; t++) atomic_store(&run.count[t], 0);
                tr_pool_run(pool, n, s_task, &run);
                int good = atomic_load(&run.bad) == 0;
                for (int32_t t = 0; t < n; t++) good &= atomic_load(&run.count[t]) == 1;
                wrong_runs += !good;
                expected += n;
            }
        }
        tr_pool_destroy(&pool);   /* joins the workers: every execution has been counted */
        ok(wrong_runs == 0, "%d threads: %lld runs, each task once inside its run (%lld runs off)",
           threads, (long long)runs, (long long)wrong_runs);
        ok(atomic_load(&s_executed) == expected,
           "%d threads: %lld task executions for %lld tasks", threads,
           (long long)atomic_load(&s_executed), (long long)expected);
    }
    return done_testing();
}
