/*  runtime/log.h - logging with timestamp, level, process and actor name.
 *
 *  Lines go to stderr as
 *      2026-11-23T05:16:41.123Z I frontend[4711] listening on tcp://127.0.0.1:5555
 *  The level is global to the process (set once at start-up from --log-level or the
 *  TROUPE_LOG environment variable: error, warn, info, debug, trace). The actor name is
 *  thread-local: the runtime sets it when an actor thread starts. Each line is written
 *  with one write(2), so lines from different threads and processes never interleave.
 *  Thread-safe.
 *
 *      tr_log_set_level(tr_log_parse_level(getenv("TROUPE_LOG")));
 *      TR_INFO("listening on %s", endpoint);                                        */
#ifndef TR_LOG_H
#define TR_LOG_H

typedef enum {
    TR_LOG_ERROR = 0,
    TR_LOG_WARN = 1,
    TR_LOG_INFO = 2,
    TR_LOG_DEBUG = 3,
    TR_LOG_TRACE = 4,
} tr_log_level_t;

/* Sets the process-wide level. */
void tr_log_set_level(tr_log_level_t level);
tr_log_level_t tr_log_get_level(void);
/* Parses "error".."trace" (or "0".."4"); returns -1 for anything else, TR_LOG_INFO for NULL. */
int tr_log_parse_level(const char *s);
/* Sets the calling thread's name shown in each line (copied; NULL resets to "main"). */
void tr_log_set_name(const char *name);
const char *tr_log_get_name(void);

void tr_log_write(tr_log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define TR_LOG(lvl, ...)                                                                     \
    do {                                                                                     \
        if ((lvl) <= tr_log_get_level()) tr_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
#define TR_ERROR(...) TR_LOG(TR_LOG_ERROR, __VA_ARGS__)
#define TR_WARN(...) TR_LOG(TR_LOG_WARN, __VA_ARGS__)
#define TR_INFO(...) TR_LOG(TR_LOG_INFO, __VA_ARGS__)
#define TR_DEBUG(...) TR_LOG(TR_LOG_DEBUG, __VA_ARGS__)
#define TR_TRACE(...) TR_LOG(TR_LOG_TRACE, __VA_ARGS__)

#endif
