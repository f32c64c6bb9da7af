/*  runtime/log.c - see log.h. One formatted buffer, one write(2) per line. */
#include "runtime/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static atomic_int s_level = TR_LOG_INFO;
static _Thread_local char s_name[48] = "main";

void tr_log_set_level(tr_log_level_t level) {
    atomic_store(&s_level, (int)level);
}

tr_log_level_t tr_log_get_level(void) {
    return (tr_log_level_t)atomic_load_explicit(&s_level, memory_order_relaxed);
}

int tr_log_parse_level(const char *s) {
    static const char *names[] = {"error", "warn", "info", "debug", "trace"};
    if (!s) return TR_LOG_INFO;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(s, names[i]) == 0) return i;
    if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0') return s[0] - '0';
    return -1;
}

void tr_log_set_name(const char *name) {
    snprintf(s_name, sizeof s_name, "%s", name ? name : "main");
}

const char *tr_log_get_name(void) {
    return s_name;
}

void tr_log_write(tr_log_level_t level, const char *file, int line, const char *fmt, ...) {
    static const char letters[] = "EWIDT";
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(buf + n, sizeof buf - (size_t)n, ".%03ldZ %c %s[%d] ", ts.tv_nsec / 1000000,
                  letters[level], s_name, (int)getpid());
    if (level >= TR_LOG_DEBUG) {
        const char *base = strrchr(file, '/');
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s:%d: ", base ? base + 1 : file, line);
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    n += m;
    if (n > (int)sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}
