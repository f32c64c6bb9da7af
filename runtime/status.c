/*  runtime/status.c - names of status codes. */
#include "runtime/status.h"

const char *tr_strerror(int status) {
    switch (status) {
    case TR_OK: return "TR_OK: success";
    case TR_ERR: return "TR_ERR: failure";
    case TR_AGAIN: return "TR_AGAIN: try again";
    case TR_ENOMEM: return "TR_ENOMEM: out of memory";
    case TR_EPROTO: return "TR_EPROTO: protocol error";
    case TR_ECUDA: return "TR_ECUDA: CUDA error";
    case TR_ENCCL: return "TR_ENCCL: NCCL error";
    case TR_ECLOSED: return "TR_ECLOSED: closed";
    case TR_ETIMEDOUT: return "TR_ETIMEDOUT: timed out";
    case TR_EINVAL: return "TR_EINVAL: invalid argument";
    case TR_ENOENT: return "TR_ENOENT: not found";
    case TR_EZMQ: return "TR_EZMQ: ZeroMQ error";
    case TR_EIO: return "TR_EIO: I/O error";
    case TR_ERANGE: return "TR_ERANGE: out of range";
    case TR_ENOTSUP: return "TR_ENOTSUP: not supported";
    default: return "unknown status";
    }
}
