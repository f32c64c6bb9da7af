/*  runtime/status.h - status codes shared by every module.
 *
 *  Functions that can fail return an int holding a tr_status_t: TR_OK (0) or a negative
 *  code. tr_strerror() names it. Constructors return NULL on failure instead.
 *  TR_ALWAYS/TR_NEVER guard "cannot happen" cases without crashing release builds
 *  (sqlite's ALWAYS/NEVER): they assert in debug builds and evaluate to the condition.
 *  Thread-safe: pure functions and constant tables only.                              */
#ifndef TR_STATUS_H
#define TR_STATUS_H

#include <assert.h>

typedef enum {
    TR_OK = 0,
    TR_ERR = -1,        /* generic failure; the log says why */
    TR_AGAIN = -2,      /* try again later (would block, queue full) */
    TR_ENOMEM = -3,     /* allocation failed */
    TR_EPROTO = -4,     /* malformed or invalid message / file contents */
    TR_ECUDA = -5,      /* CUDA runtime or driver error */
    TR_ENCCL = -6,      /* NCCL error */
    TR_ECLOSED = -7,    /* peer or socket closed */
    TR_ETIMEDOUT = -8,  /* a wait ran out */
    TR_EINVAL = -9,     /* bad argument or configuration */
    TR_ENOENT = -10,    /* missing file, tensor, actor or key */
    TR_EZMQ = -11,      /* ZeroMQ call failed */
    TR_EIO = -12,       /* read/write/mmap failed */
    TR_ERANGE = -13,    /* value or size out of the allowed range */
    TR_ENOTSUP = -14,   /* the backend or build does not offer this (no GPU, no graphs) */
} tr_status_t;

/* Name of a status code ("TR_EPROTO: protocol error"); never NULL. */
const char *tr_strerror(int status);

#ifdef NDEBUG
#define TR_ALWAYS(x) (x)
#define TR_NEVER(x) (x)
#else
#define TR_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define TR_NEVER(x) ((x) ? (assert(0 && #x), 1) : 0)
#endif

#define TR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
