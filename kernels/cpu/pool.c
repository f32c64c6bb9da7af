/*  kernels/cpu/pool.c - persistent worker threads for the CPU backend.
 *
 *  A run publishes (fn, ctx, n_tasks) and bumps `gen`; workers that see the new generation
 *  pull task numbers from `next` until it passes n_tasks, then add themselves to `done`.
 *  A worker waits for the next generation by spinning for about TR_POOL_SPIN_NS, then under
 *  the mutex (re-checking gen there, so a wake-up cannot be lost: the runner bumps gen
 *  before it takes the mutex to broadcast).                                          */
#include "kernels/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#define TR_POOL_SPIN_NS 2000000   /* 2 ms: longer than the gap between two ops of a step */

struct tr_pool {
    int32_t n_threads;
    pthread_t *workers;           /* n_threads - 1 */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t n_sleeping;           /* under mu */
    int quit;                     /* under mu */
    _Atomic uint32_t gen;
    _Atomic int32_t next;
    _Atomic int32_t done;
    tr_pool_fn fn;
    void *ctx;
    int32_t n_tasks;
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

static void s_work(tr_pool_t *self, int32_t thread) {
    for (;;) {
        int32_t t = atomic_fetch_add_explicit(&self->next, 1, memory_order_relaxed);
        if (t >= self->n_tasks) break;
        self->fn(self->ctx, t, thread);
    }
}

static void *s_worker_main(void *argp) {
    s_worker_arg_t *arg = argp;
    tr_pool_t *self = arg->pool;
    int32_t index = arg->index;
    free(arg);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = atomic_load_explicit(&self->gen, memory_order_acquire);
        if (g == seen) {
            int64_t t0 = s_now_ns();
            for (int i = 1; g == seen; i++) {
                s_cpu_relax();
                g = atomic_load_explicit(&self->gen, memory_order_acquire);
                if (g == seen && (i & 255) == 0 && s_now_ns() - t0 > TR_POOL_SPIN_NS) break;
            }
        }
        if (g == seen) {
            pthread_mutex_lock(&self->mu);
            self->n_sleeping++;
            while (!self->quit &&
                   (g = atomic_load_explicit(&self->gen, memory_order_acquire)) == seen)
                pthread_cond_wait(&self->cv, &self->mu);
            self->n_sleeping--;
            int quit = self->quit;
            pthread_mutex_unlock(&self->mu);
            if (quit) return NULL;
        }
        seen = g;
        if (self->fn == NULL) return NULL;   /* the destroy generation */
        s_work(self, index);
        atomic_fetch_add_explicit(&self->done, 1, memory_order_release);
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
    self->fn = NULL;
    atomic_fetch_add_explicit(&self->gen, 1, memory_order_release);
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

void tr_pool_run(tr_pool_t *self, int32_t n_tasks, tr_pool_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (self->n_threads == 1 || n_tasks == 1) {
        for (int32_t t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    self->fn = fn;
    self->ctx = ctx;
    self->n_tasks = n_tasks;
    atomic_store_explicit(&self->next, 0, memory_order_relaxed);
    atomic_store_explicit(&self->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&self->gen, 1, memory_order_release);
    pthread_mutex_lock(&self->mu);
    if (self->n_sleeping) pthread_cond_broadcast(&self->cv);
    pthread_mutex_unlock(&self->mu);
    s_work(self, 0);
    int32_t workers = self->n_threads - 1;
    for (int i = 1; atomic_load_explicit(&self->done, memory_order_acquire) < workers; i++) {
        s_cpu_relax();
        if ((i & 1023) == 0) sched_yield();   /* a worker may be descheduled */
    }
}
