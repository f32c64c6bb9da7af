/*  kernels/cpu/pool.c - persistent worker threads for the CPU backend.
 *
 *  A run publishes (fn, ctx, n_tasks) and then a new generation g in `claim`, a 64-bit word
 *  holding (g << 32 | next task). Anyone, the caller included, takes task i by moving claim
 *  from (g, i) to (g, i + 1) with a compare-and-swap, so a worker that wakes late for g, or
 *  after g has finished, can never run a task of another job with g's arguments: its CAS
 *  fails once the generation moves on; before the next run's arguments are written the old
 *  generation is closed (its next task set past any n_tasks), so a worker holding the old
 *  generation cannot claim with the new arguments either. The caller returns when
 *  `completed` reaches n_tasks;
 *  it never waits for a worker that took nothing (the machine may be oversubscribed and a
 *  worker descheduled). A worker waits for the next generation by spinning for about
 *  TR_POOL_SPIN_NS, then on the condition variable, re-checking under the mutex (the caller
 *  publishes before it takes the mutex to broadcast, so a wake-up cannot be lost).      */
#include "kernels/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define TR_POOL_SPIN_NS 1000000   /* 1 ms: longer than the gap between two ops of a step */
/* Task index of a finished generation: above any n_tasks, so nothing more is claimed. */
#define TR_POOL_CLOSED 0x7fffffffu

struct tr_pool {
    int32_t n_threads;
    pthread_t *workers;           /* n_threads - 1 */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_sleeping;           /* under mu */
    int quit;                     /* under mu */
    _Atomic uint64_t claim;       /* generation << 32 | next task */
    _Atomic int32_t completed;
    _Atomic(tr_pool_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int32_t n_tasks;
    _Atomic int park;             /* tr_pool_park: stop spinning; cleared by the next run */
};

typedef struct {
    tr_pool_t *pool;
    int32_t index;
} s_worker_arg_t;

static inline void s_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t s_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint32_t s_gen(uint64_t claim) {
    return (uint32_t)(claim >> 32);
}

/* Runs tasks of generation g until none is left. */
static void s_work(tr_pool_t *self, uint32_t g, int32_t thread) {
    tr_pool_fn fn = atomic_load_explicit(&self->fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&self->ctx, memory_order_relaxed);
    uint32_t n = (uint32_t)atomic_load_explicit(&self->n_tasks, memory_order_relaxed);
    /* pairs with the release fence in tr_pool_run: arguments of a later run come with g
     * closed, so they are never used for a task of g */
    atomic_thread_fence(memory_order_acquire);
    uint64_t v = atomic_load_explicit(&self->claim, memory_order_acquire);
    while (s_gen(v) == g && (uint32_t)v < n) {
        if (!atomic_compare_exchange_weak_explicit(&self->claim, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;   /* v was reloaded */
        fn(ctx, (int32_t)(uint32_t)v, thread);
        atomic_fetch_add_explicit(&self->completed, 1, memory_order_release);
        v = atomic_load_explicit(&self->claim, memory_order_acquire);
    }
}

static void *s_worker_main(void *argp) {
    s_worker_arg_t *arg = argp;
    tr_pool_t *self = arg->pool;
    int32_t index = arg->index;
    free(arg);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = s_gen(atomic_load_explicit(&self->claim, memory_order_acquire));
        if (g == seen) {
            int64_t t0 = s_now_ns();
            for (int i = 1; g == seen; i++) {
                s_cpu_relax();
                g = s_gen(atomic_load_explicit(&self->claim, memory_order_acquire));
                if (g == seen && (i & 255) == 0 &&
                    (atomic_load_explicit(&self->park, memory_order_relaxed) ||
                     s_now_ns() - t0 > TR_POOL_SPIN_NS))
                    break;
            }
        }
        if (g == seen) {
            pthread_mutex_lock(&self->mu);
            self->n_sleeping++;
            while (!self->quit &&
                   (g = s_gen(atomic_load_explicit(&self->claim, memory_order_acquire))) == seen)
                pthread_cond_wait(&self->cv, &self->mu);
            self->n_sleeping--;
            int quit = self->quit;
            pthread_mutex_unlock(&self->mu);
            if (quit) return NULL;
        }
        seen = g;
        s_work(self, g, index);
    }
}

tr_pool_t *tr_pool_new(int32_t n_threads) {
    if (n_threads < 1) return NULL;
    tr_pool_t *self = calloc(1, sizeof(*self));
    if (!self) return NULL;
    self->n_threads = 1;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    self->workers = calloc((size_t)n_threads, sizeof(pthread_t));
    if (!self->workers) goto fail;
    for (int32_t i = 1; i < n_threads; i++) {
        s_worker_arg_t *arg = malloc(sizeof(*arg));
        if (!arg) goto fail;
        *arg = (s_worker_arg_t){self, i};
        if (pthread_create(&self->workers[i - 1], NULL, s_worker_main, arg)) {
            free(arg);
            goto fail;
        }
        self->n_threads++;
    }
    return self;
fail:
    tr_pool_destroy(&self);
    return NULL;
}

void tr_pool_destroy(tr_pool_t **self_p) {
    if (!self_p || !*self_p) return;
    tr_pool_t *self = *self_p;
    pthread_mutex_lock(&self->mu);
    self->quit = 1;
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    /* spinning workers see quit only through a new generation with nothing to do */
    atomic_store_explicit(&self->n_tasks, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->claim, (uint64_t)1 << 32, memory_order_release);
    pthread_mutex_lock(&self->mu);
    pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    for (int32_t i = 1; i < self->n_threads; i++) pthread_join(self->workers[i - 1], NULL);
    pthread_cond_destroy(&self->cv);
    pthread_mutex_destroy(&self->mu);
    free(self->workers);
    free(self);
    *self_p = NULL;
}

int32_t tr_pool_threads(const tr_pool_t *self) {
    return self->n_threads;
}

void tr_pool_park(tr_pool_t *self) {
    atomic_store_explicit(&self->park, 1, memory_order_relaxed);
}

void tr_pool_run(tr_pool_t *self, int32_t n_tasks, tr_pool_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (self->n_threads == 1 || n_tasks == 1) {
        for (int32_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    /* close the previous generation before its arguments are overwritten: a worker that
     * saw it late has read (or will read) this run's fn, ctx and n_tasks, and with the old
     * generation still open at its last task index it could claim a task past the old
     * run's end with them, run it against a context being planned and count it in this
     * run's `completed` (seen as garbage outputs and crashes under load) */
    uint32_t g = s_gen(atomic_load_explicit(&self->claim, memory_order_relaxed)) + 1;
    atomic_store_explicit(&self->claim, (uint64_t)(g - 1) << 32 | TR_POOL_CLOSED,
                          memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&self->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&self->ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&self->n_tasks, n_tasks, memory_order_relaxed);
    atomic_store_explicit(&self->completed, 0, memory_order_relaxed);
    atomic_store_explicit(&self->park, 0, memory_order_relaxed);
    atomic_store_explicit(&self->claim, (uint64_t)g << 32, memory_order_release);
    pthread_mutex_lock(&self->mu);
    if (self->n_sleeping) pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    s_work(self, g, 0);
    for (int i = 1; atomic_load_explicit(&self->completed, memory_order_acquire) < n_tasks; i++) {
        s_cpu_relax();
        if ((i & 1023) == 0) sched_yield();   /* the worker holding a task may be descheduled */
    }
}
