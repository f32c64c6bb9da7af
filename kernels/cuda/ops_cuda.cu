/*  kernels/cuda/ops_cuda.cu - the CUDA backend: instance, stream, memory, weights, vtable.
 *
 *  tr_ops_cuda(device) returns NULL with one log line when no device is usable (no driver,
 *  no GPU, device index out of range); when troupe is built without CUDA the weak stub in
 *  kernels/ops.c answers NULL instead. One stream per instance (non-blocking); every op is
 *  enqueued on it. Memory is cudaMalloc'd device memory; to_device stages pageable host
 *  memory and waits for the copy (so the host buffer may be reused at once), to_host waits.
 *  Weights are uploaded once (cudaMalloc + copy) and released with cudaFree.
 *
 *  Ops: every vtable entry is implemented (kernels/cuda/<op>.cu, each beside its oracle in
 *  kernels/ref/). Limits that answer TR_EINVAL with a log line rather than crash: matmul
 *  with q8_0 weights runs a plain (slow) dequantizing kernel, not cuBLAS; rope needs
 *  rot_dim <= 1024; attention needs head_dim <= 256. Pinned host memory (host_alloc) and
 *  async copies serve the executor's staging; graphs are CUDA graphs captured on the
 *  instance's stream (thread-local capture mode), stale once forward scratch is reallocated.
 *  Compiled, but NOT yet run on a GPU: see docs/cuda.md.                              */
#include "kernels/cuda/cuda_impl.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- scratch ---- */

void *tr_cuda_scratch(tr_cuda_t *self, tr_cuda_scratch_t which, size_t bytes) {
    if (bytes <= self->scratch_bytes[which] && self->scratch[which]) return self->scratch[which];
    if (self->capturing) {   /* cudaFree/cudaMalloc are not recordable; the caller warms up */
        TR_ERROR("cuda scratch %d would grow to %zu bytes while a graph is recorded", (int)which,
                 bytes);
        return NULL;
    }
    /* sampling runs outside graphs; any other slot may be baked into one */
    if (which != TR_CUDA_SCRATCH_SAMPLE_SORT && which != TR_CUDA_SCRATCH_SAMPLE_ARGS)
        self->scratch_gen++;
    bytes = (bytes + 4095) & ~(size_t)4095;
    if (self->scratch[which]) cudaFree(self->scratch[which]);
    self->scratch[which] = NULL;
    self->scratch_bytes[which] = 0;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        TR_ERROR("cuda scratch of %zu bytes: %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    self->scratch[which] = p;
    self->scratch_bytes[which] = bytes;
    return p;
}

/* ---- instance ---- */

static int s_graph_end(tr_ops_t *ops, tr_ops_graph_t **out);

static void s_destroy(tr_ops_t *ops) {
    tr_cuda_t *self = TR_CUDA(ops);
    cudaSetDevice(self->device);
    if (self->capturing) s_graph_end(ops, NULL);
    if (self->stream) cudaStreamSynchronize(self->stream);
    for (int i = 0; i < TR_CUDA_SCRATCH_COUNT; i++)
        if (self->scratch[i]) cudaFree(self->scratch[i]);
    if (self->lt_ws) cudaFree(self->lt_ws);
    if (self->lt) cublasLtDestroy(self->lt);
    if (self->stream) cudaStreamDestroy(self->stream);
    free(self);
}

/* ---- memory ---- */

static void *s_alloc(tr_ops_t *ops, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? (bytes + 255) & ~(size_t)255 : 256);
    if (e != cudaSuccess) {
        TR_ERROR("cudaMalloc(%zu): %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

static void s_free(tr_ops_t *ops, void *p) {
    /* stream-ordered: work already enqueued that uses p finishes first */
    cudaStreamSynchronize(TR_CUDA(ops)->stream);
    cudaFree(p);
}

static int s_to_device(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    cudaStream_t st = TR_CUDA(ops)->stream;
    if (!bytes) return TR_OK;
    TR_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st));
    TR_CUDA_TRY(cudaStreamSynchronize(st));   /* the caller may reuse src at once */
    return TR_OK;
}

static int s_to_host(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    cudaStream_t st = TR_CUDA(ops)->stream;
    if (!bytes) return TR_OK;
    TR_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st));
    TR_CUDA_TRY(cudaStreamSynchronize(st));
    return TR_OK;
}

static int s_memset(tr_ops_t *ops, void *dst, int value, size_t bytes) {
    if (!bytes) return TR_OK;
    TR_CUDA_TRY(cudaMemsetAsync(dst, value, bytes, TR_CUDA(ops)->stream));
    return TR_OK;
}

static int s_memory_info(tr_ops_t *ops, size_t *free_bytes, size_t *total_bytes) {
    TR_CUDA_TRY(cudaSetDevice(TR_CUDA(ops)->device));
    TR_CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
    return TR_OK;
}

/* Page-locked, so cudaMemcpyAsync from and to it is a real DMA on the stream rather than a
 * staged copy the host waits for. */
static void *s_host_alloc(tr_ops_t *ops, size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 64, cudaHostAllocDefault);
    if (e != cudaSuccess) {
        TR_ERROR("cudaHostAlloc(%zu): %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

static void s_host_free(tr_ops_t *ops, void *p) {
    cudaStreamSynchronize(TR_CUDA(ops)->stream);   /* a copy from p may still be queued */
    cudaFreeHost(p);
}

static int s_copy_async(tr_ops_t *ops, void *dst, const void *src, size_t bytes) {
    if (!bytes) return TR_OK;
    TR_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, TR_CUDA(ops)->stream));
    return TR_OK;
}

static int s_sync(tr_ops_t *ops) {
    TR_CUDA_TRY(cudaStreamSynchronize(TR_CUDA(ops)->stream));
    return TR_OK;
}

/* ---- graphs ---- */

static int s_graph_begin(tr_ops_t *ops) {
    tr_cuda_t *self = TR_CUDA(ops);
    if (self->capturing) return TR_EINVAL;
    /* thread-local mode: only this thread's unsafe calls (a stray cudaMalloc) end it */
    TR_CUDA_TRY(cudaStreamBeginCapture(self->stream, cudaStreamCaptureModeThreadLocal));
    self->capturing = 1;
    return TR_OK;
}

static int s_graph_end(tr_ops_t *ops, tr_ops_graph_t **out) {
    tr_cuda_t *self = TR_CUDA(ops);
    if (!self->capturing) return TR_EINVAL;
    self->capturing = 0;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(self->stream, &g);
    if (e != cudaSuccess || !g) {
        TR_ERROR("cuda graph capture failed: %s", cudaGetErrorString(e));
        cudaGetLastError();   /* an invalidated capture leaves a sticky-free error behind */
        if (g) cudaGraphDestroy(g);
        return TR_ECUDA;
    }
    if (!out) {
        cudaGraphDestroy(g);
        return TR_OK;
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        TR_ERROR("cudaGraphInstantiate: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return TR_ECUDA;
    }
    tr_ops_graph_t *r = (tr_ops_graph_t *)malloc(sizeof(*r));
    if (!r) {
        cudaGraphExecDestroy(exec);
        return TR_ENOMEM;
    }
    r->exec = exec;
    r->scratch_gen = self->scratch_gen;
    *out = r;
    return TR_OK;
}

static int s_graph_launch(tr_ops_t *ops, tr_ops_graph_t *g) {
    tr_cuda_t *self = TR_CUDA(ops);
    if (g->scratch_gen != self->scratch_gen) return TR_AGAIN;
    TR_CUDA_TRY(cudaGraphLaunch(g->exec, self->stream));
    return TR_OK;
}

static void s_graph_destroy(tr_ops_t *ops, tr_ops_graph_t *g) {
    cudaStreamSynchronize(TR_CUDA(ops)->stream);   /* a replay may still be running */
    cudaGraphExecDestroy(g->exec);
    free(g);
}

static int s_upload_weights(tr_ops_t *ops, const void *host, size_t bytes, void **out) {
    void *dev = s_alloc(ops, bytes);
    if (!dev) return TR_ENOMEM;
    int rc = s_to_device(ops, dev, host, bytes);
    if (rc) {
        cudaFree(dev);
        return rc;
    }
    *out = dev;
    return TR_OK;
}

static void s_release_weights(tr_ops_t *ops, void *dev) {
    s_free(ops, dev);
}

static const tr_ops_vtable_t s_vtable = {
    .name = "cuda",
    .device_memory = 1,
    .destroy = s_destroy,
    .threads = NULL,
    .set_threads = NULL,
    .alloc = s_alloc,
    .free = s_free,
    .to_device = s_to_device,
    .to_host = s_to_host,
    .memset = s_memset,
    .upload_weights = s_upload_weights,
    .release_weights = s_release_weights,
    .memory_info = s_memory_info,
    .host_alloc = s_host_alloc,
    .host_free = s_host_free,
    .to_device_async = s_copy_async,
    .to_host_async = s_copy_async,
    .copy = s_copy_async,
    .sync = s_sync,
    .graph_begin = s_graph_begin,
    .graph_end = s_graph_end,
    .graph_launch = s_graph_launch,
    .graph_destroy = s_graph_destroy,
    .matmul = tr_cuda_matmul,
    .matmul_batch = NULL,   /* the wrapper runs them in order: each is one cuBLASLt call */
    .rmsnorm = tr_cuda_rmsnorm,
    .swiglu = tr_cuda_swiglu,
    .softmax = tr_cuda_softmax,
    .sigmoid = tr_cuda_sigmoid,
    .add_rows = tr_cuda_add_rows,
    .gather_rows = tr_cuda_gather_rows,
    .embed = tr_cuda_embed,
    .rope = tr_cuda_rope,
    .kv_store = tr_cuda_kv_store,
    .attention = tr_cuda_attention,
    .moe_route = tr_cuda_moe_route,
    .sample = tr_cuda_sample,
    .quantize = tr_cuda_quantize,
    .dequantize = tr_cuda_dequantize,
};

extern "C" int tr_ops_cuda_probe(int device, char *why, size_t why_size) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (why && why_size)
            snprintf(why, why_size, "no usable GPU (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();
        return TR_ENOTSUP;
    }
    if (device < 0 || device >= n) {
        if (why && why_size)
            snprintf(why, why_size, "no usable GPU: device %d does not exist (%d present)",
                     device, n);
        return TR_ENOTSUP;
    }
    return TR_OK;
}

extern "C" tr_ops_t *tr_ops_cuda(int device) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        TR_WARN("cuda: no usable GPU (%s); the CUDA backend is unavailable",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        cudaGetLastError();   /* clear the sticky-free error so later calls start clean */
        return NULL;
    }
    if (device < 0 || device >= n) {
        TR_WARN("cuda: device %d does not exist (%d present)", device, n);
        return NULL;
    }
    tr_cuda_t *self = (tr_cuda_t *)calloc(1, sizeof(*self));
    if (!self) return NULL;
    self->device = device;
    cudaDeviceProp prop;
    if (cudaSetDevice(device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess)
        goto fail;
    self->n_sm = prop.multiProcessorCount;
    self->smem_optin = prop.sharedMemPerBlockOptin;
    if (cudaStreamCreateWithFlags(&self->stream, cudaStreamNonBlocking) != cudaSuccess) goto fail;
    if (cublasLtCreate(&self->lt) != CUBLAS_STATUS_SUCCESS) goto fail;
    self->lt_ws_bytes = 32u << 20;
    if (cudaMalloc(&self->lt_ws, self->lt_ws_bytes) != cudaSuccess) goto fail;
    if (tr_cuda_attention_init(self) != TR_OK) goto fail;
    self->vt = s_vtable;
    snprintf(self->name, sizeof(self->name), "cuda:%d", device);
    self->vt.name = self->name;
    self->base.vt = &self->vt;
    self->base.tag = TR_OPS_TAG;
    TR_INFO("cuda:%d %s, %d SMs, cc %d.%d", device, prop.name, prop.multiProcessorCount,
            prop.major, prop.minor);
    return &self->base;
fail:
    TR_ERROR("cuda: could not set up device %d: %s", device,
             cudaGetErrorString(cudaGetLastError()));
    s_destroy(&self->base);
    return NULL;
}

/* Forces the split count of decode attention (0: automatic). For bench/gpu and tests. */
extern "C" int tr_ops_cuda_set_attn_splits(tr_ops_t *ops, int32_t n) {
    if (!ops || ops->tag != TR_OPS_TAG || !ops->vt->device_memory || n < 0) return TR_EINVAL;
    TR_CUDA(ops)->attn_splits = n;
    return TR_OK;
}
