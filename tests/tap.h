/*  tests/tap.h - minimal TAP output for C tests (flux-core's ok()).
 *
 *      plan_lazy();
 *      ok(x == 3, "x is three (got %d)", x);
 *      return done_testing();
 *
 *  Each test program prints "ok N - ..." / "not ok N - ..." lines and a plan; the runner
 *  (tests/run_tests.py) counts them. skip() prints "ok N # skip reason".        */
#ifndef TR_TAP_H
#define TR_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n = 0, tap_failed = 0;

static inline void plan_lazy(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
}

__attribute__((format(printf, 2, 3))) static inline int ok(int cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond) tap_failed++;
    fflush(stdout);
    return cond;
}

__attribute__((format(printf, 1, 2))) static inline void skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("ok %d # skip ", ++tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

static inline int done_testing(void) {
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
