/*
 * kernels/cuda_backend.cu: a CUDA backend's context (kernels/cuda_ops.h, "the context"): the
 * device, one non-blocking compute stream, cuBLAS and cuDNN handles bound to it, device memory,
 * the staging of vf_tensor_upload/download, and stream capture into CUDA graphs.
 *
 * Staging: host data crosses the bus only through one pinned host buffer and one device f32
 * buffer, both sized when tensors are allocated (vf_cuda_reserve_staging: the largest tensor's
 * f32 size), so a run allocates nothing. An upload copies the caller's planar f32 into the
 * pinned buffer (after the previous transfer from it has finished: an event, not a stream
 * sync), enqueues the host-to-device copy and a kernel that writes the tensor's NHWC layout and
 * dtype; it returns without waiting for the GPU. A download enqueues the reverse and waits.
 *
 * Threads: CUDA's current device is per host thread. vf_cuda_stream() (which every launcher
 * calls to get its stream) and every function here make the backend's GPU current first, so a
 * backend created on one thread can be used from another (one thread at a time).
 *
 * Every CUDA, cuBLAS and cuDNN call's result is checked.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

extern "C" {
#include "kernels/cuda_ops.h"
#include "kernels/internal.h"
}
#include "kernels/elem.h"

#include "kernels/cuda_check.h"

struct vf_cuda_ctx {
    int device;
    int cc;                     /* compute capability, major·10 + minor */
    char name[256];
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudnnHandle_t cudnn;
    float *h_stage;             /* pinned host staging */
    float *d_stage;             /* device f32 staging */
    size_t stage_bytes;
    cudaEvent_t stage_free;     /* recorded after the last transfer out of h_stage */
    void *cublas_ws;            /* cuBLAS's workspace, set once: nothing allocated in a capture */
    size_t local_bytes;         /* kernels' local memory reserved at creation (an estimate) */
    bool capturing;
};

namespace {

/* Make the backend's GPU the calling thread's current device. */
int enter(const vf_cuda_ctx *cx, struct vf_error *err)
{
    int cur = -1;
    VF_CHECK_CUDA(cudaGetDevice(&cur), err, fail);
    if (cur != cx->device)
        VF_CHECK_CUDA(cudaSetDevice(cx->device), err, fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d", cx->device);
}

const int kThreads = 256;
const size_t kCublasWorkspace = (size_t)32 << 20;

unsigned grid_for(long long n)
{
    long long b = (n + kThreads - 1) / kThreads;
    const long long cap = 65536;
    return (unsigned)(b < 1 ? 1 : (b > cap ? cap : b));
}

__device__ __forceinline__ void store(void *data, int dtype, long long off, float x)
{
    switch (dtype) {
    case VF_BF16: static_cast<uint16_t *>(data)[off] = vf_f32_to_bf16(x); break;
    case VF_F16: static_cast<uint16_t *>(data)[off] = vf_f32_to_f16(x); break;
    default: static_cast<float *>(data)[off] = x; break;
    }
}

__device__ __forceinline__ float load(const void *data, int dtype, long long off)
{
    switch (dtype) {
    case VF_BF16: return vf_bf16_to_f32(static_cast<const uint16_t *>(data)[off]);
    case VF_F16: return vf_f16_to_f32(static_cast<const uint16_t *>(data)[off]);
    default: return static_cast<const float *>(data)[off];
    }
}

/* planar NCHW f32 → the tensor (NHWC, pixel stride ps, dtype). i runs over the tensor's
 * elements in NHWC order, so the stores are coalesced. */
__global__ void k_from_nchw(const float *src, void *dst, int dtype, int c, long long hw,
                            long long ps, long long total)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long p = i / c;
        int ch = (int)(i - p * c);
        long long img = p / hw, pos = p - img * hw;
        store(dst, dtype, p * ps + ch, src[(img * c + ch) * hw + pos]);
    }
}

/* the tensor → planar NCHW f32; i runs over the output in NCHW order (coalesced stores). */
__global__ void k_to_nchw(const void *src, int dtype, int c, long long hw, long long ps,
                          float *dst, long long total)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        long long pos = i % hw, t = i / hw;
        int ch = (int)(t % c);
        long long img = t / c;
        dst[i] = load(src, dtype, (img * hw + pos) * ps + ch);
    }
}

vf_cuda_ctx *ctx(const struct vf_backend *be) { return be->cuda; }

int staging_check(const vf_cuda_ctx *cx, const struct vf_tensor *t, const char *what,
                  struct vf_error *err)
{
    size_t bytes = vf_tensor_count(t) * sizeof(float);
    if (cx->capturing)
        return vf_error_set(err, VF_EINVAL, "%s: not allowed while a CUDA graph is being "
                            "captured (it waits for the GPU)", what);
    if (bytes > cx->stage_bytes)
        return vf_error_set(err, VF_EINTERNAL, "%s: %zu bytes exceed the staging buffers "
                            "(%zu bytes) reserved when the tensors were allocated", what, bytes,
                            cx->stage_bytes);
    return VF_OK;
}

} // namespace

/* The driver reserves a kernel's local memory (its per-thread stack frame × the threads the GPU
 * can hold at once) at the first launch that needs more than it holds, outside any allocation
 * of ours: the refinement's ~11 KB a thread is about 3 GB on an H100. Reserving it here, at the
 * stack-size limit, makes a GPU without that much free fail now, with the out-of-memory advice,
 * instead of at a frame's launch. */
static int reserve_local(struct vf_backend *be, vf_cuda_ctx *cx, struct vf_error *err)
{
    size_t need = 0, have = 0;
    int sms = 0, per_sm = 0;
    if (vf_cuda_ops_stack_bytes(&need, err))
        return err ? err->code : VF_EINTERNAL;
    VF_CHECK_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, cx->device), err,
                  fail);
    VF_CHECK_CUDA(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxThreadsPerMultiProcessor,
                                         cx->device), err, fail);
    cx->local_bytes = need * (size_t)sms * (size_t)per_sm;
    VF_CHECK_CUDA(cudaDeviceGetLimit(&have, cudaLimitStackSize), err, fail);
    if (need > have) {
        const cudaError_t rc = cudaDeviceSetLimit(cudaLimitStackSize, need);
        if (rc == cudaErrorMemoryAllocation) {
            (void)cudaGetLastError();
            size_t free_b = 0, total_b = 0;
            (void)cudaMemGetInfo(&free_b, &total_b); /* for the message only */
            (void)cudaGetLastError();
            return vf_error_set(err, VF_ENOMEM,
                                "GPU %d (%s): out of memory reserving the kernels' local memory "
                                "(%zu bytes a thread, about %zu MiB for the whole GPU; this rank "
                                "holds %zu bytes; the GPU has %zu MiB free of %zu MiB); use fewer "
                                "ranks per GPU or free the GPU (nvidia-smi)",
                                cx->device, cx->name, need, cx->local_bytes >> 20, be->bytes,
                                free_b >> 20, total_b >> 20);
        }
        VF_CHECK_CUDA(rc, err, fail);
    }
    return VF_OK;
fail:
    return vf_error_prefix(err, "reserving the kernels' local memory");
}

extern "C" int vf_cuda_init(struct vf_backend *be, int gpu, struct vf_error *err)
{
    int count = 0;
    vf_cuda_ctx *cx = nullptr;
    cudaError_t rc = cudaGetDeviceCount(&count);
    if (rc == cudaErrorNoDevice || rc == cudaErrorInsufficientDriver) {
        (void)cudaGetLastError();
        count = 0;
    } else {
        VF_CHECK_CUDA(rc, err, fail);
    }
    if (gpu < 0 || gpu >= count) {
        const char *vis = getenv("CUDA_VISIBLE_DEVICES");
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "GPU %d: no such device: this process sees %d GPU%s "
                            "(CUDA_VISIBLE_DEVICES=%s); check the allocation's GPUs per node "
                            "(--gpus-per-task) and nvidia-smi, or run on the CPU (a run: "
                            "CUDA_VISIBLE_DEVICES= ; bench: --device cpu)",
                            gpu, count, count == 1 ? "" : "s", vis ? vis : "(unset)");
    }
    cx = static_cast<vf_cuda_ctx *>(calloc(1, sizeof *cx));
    if (!cx)
        return vf_error_set(err, VF_ENOMEM, "GPU %d: out of host memory for the backend", gpu);
    be->cuda = cx;
    cx->device = gpu;
    VF_CHECK_CUDA(cudaSetDevice(gpu), err, fail);
    {
        cudaDeviceProp p;
        VF_CHECK_CUDA(cudaGetDeviceProperties(&p, gpu), err, fail);
        cx->cc = p.major * 10 + p.minor;
        snprintf(cx->name, sizeof cx->name, "%s", p.name);
    }
    VF_CHECK_CUDA(cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking), err, fail);
    VF_CHECK_CUDA(cudaEventCreateWithFlags(&cx->stage_free, cudaEventDisableTiming), err, fail);
    VF_CHECK_CUBLAS(cublasCreate(&cx->cublas), err, fail);
    VF_CHECK_CUBLAS(cublasSetStream(cx->cublas, cx->stream), err, fail);
    /* no TF32 behind f32's back: f32 products stay f32 (the golden tests' 1e-4) */
    VF_CHECK_CUBLAS(cublasSetMathMode(cx->cublas, CUBLAS_DEFAULT_MATH), err, fail);
    /* A workspace of our own (32 MiB, NVIDIA's advice for Hopper) so that cuBLAS allocates
     * nothing itself while a CUDA graph is captured. */
    VF_CHECK_CUDA(cudaMalloc(&cx->cublas_ws, kCublasWorkspace), err, fail);
    be->bytes += kCublasWorkspace;   /* held from here: vf_cuda_fini gives it back */
    VF_CHECK_CUBLAS(cublasSetWorkspace(cx->cublas, cx->cublas_ws, kCublasWorkspace), err, fail);
    VF_CHECK_CUDNN(cudnnCreate(&cx->cudnn), err, fail);
    VF_CHECK_CUDNN(cudnnSetStream(cx->cudnn, cx->stream), err, fail);
    if (reserve_local(be, cx, err))
        goto fail;
    return VF_OK;
fail:
    vf_cuda_fini(be);
    return vf_error_prefix(err, "GPU %d", gpu);
}

extern "C" void vf_cuda_fini(struct vf_backend *be)
{
    vf_cuda_ctx *cx = be->cuda;
    if (!cx)
        return;
    /* teardown: failures are reported, not fatal (the process is leaving this GPU anyway) */
    struct vf_error e = {};
    if (enter(cx, &e) == VF_OK && cx->stream) {
        cudaError_t rc = cudaStreamSynchronize(cx->stream);
        if (rc != cudaSuccess)
            fprintf(stderr, "vaefarm: GPU %d: cudaStreamSynchronize at teardown: %s\n",
                    cx->device, cudaGetErrorString(rc));
    }
    if (cx->cudnn && cudnnDestroy(cx->cudnn) != CUDNN_STATUS_SUCCESS)
        fprintf(stderr, "vaefarm: GPU %d: cudnnDestroy failed\n", cx->device);
    if (cx->cublas && cublasDestroy(cx->cublas) != CUBLAS_STATUS_SUCCESS)
        fprintf(stderr, "vaefarm: GPU %d: cublasDestroy failed\n", cx->device);
    if (cx->cublas_ws)
        be->bytes -= kCublasWorkspace;
    cudaError_t rcs[5] = {
        cx->cublas_ws ? cudaFree(cx->cublas_ws) : cudaSuccess,
        cx->h_stage ? cudaFreeHost(cx->h_stage) : cudaSuccess,
        cx->d_stage ? cudaFree(cx->d_stage) : cudaSuccess,
        cx->stage_free ? cudaEventDestroy(cx->stage_free) : cudaSuccess,
        cx->stream ? cudaStreamDestroy(cx->stream) : cudaSuccess,
    };
    for (cudaError_t rc : rcs)
        if (rc != cudaSuccess)
            fprintf(stderr, "vaefarm: GPU %d: releasing the backend: %s\n", cx->device,
                    cudaGetErrorString(rc));
    free(cx);
    be->cuda = nullptr;
}

extern "C" void *vf_cuda_alloc(struct vf_backend *be, size_t bytes, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(be);
    void *p = nullptr;
    if (cx->capturing) {
        /* cudaMalloc is refused in a capture (and would invalidate it); the memset would be
         * recorded into the graph */
        vf_error_set(err, VF_EINVAL, "GPU %d: device memory allocated during a CUDA graph "
                     "capture", cx->device);
        return nullptr;
    }
    if (enter(cx, err))
        return nullptr;
    cudaError_t rc = cudaMalloc(&p, bytes ? bytes : 1);
    if (rc == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        (void)cudaMemGetInfo(&free_b, &total_b); /* for the message only */
        (void)cudaGetLastError();
        vf_error_set(err, VF_ENOMEM,
                     "GPU %d (%s): out of memory allocating %zu bytes (this rank holds %zu "
                     "bytes, and about %zu MiB of kernels' local memory; the GPU has %zu MiB "
                     "free of %zu MiB); use a smaller inference size, a lower precision (bf16), "
                     "fewer ranks per GPU, or free the GPU (nvidia-smi)",
                     cx->device, cx->name, bytes, be->bytes, cx->local_bytes >> 20,
                     free_b >> 20, total_b >> 20);
        return nullptr;
    }
    VF_CHECK_CUDA(rc, err, fail);
    VF_CHECK_CUDA(cudaMemsetAsync(p, 0, bytes ? bytes : 1, cx->stream), err, fail);
    return p;
fail:
    if (p && cudaFree(p) != cudaSuccess)
        (void)cudaGetLastError();
    vf_error_prefix(err, "GPU %d", cx->device);
    return nullptr;
}

extern "C" void vf_cuda_free(struct vf_backend *be, void *p)
{
    vf_cuda_ctx *cx = ctx(be);
    if (!p)
        return;
    struct vf_error e = {};
    cudaError_t rc = enter(cx, &e) == VF_OK ? cudaFree(p) : cudaErrorInvalidDevice;
    if (rc != cudaSuccess)
        fprintf(stderr, "vaefarm: GPU %d: cudaFree: %s\n", cx->device, cudaGetErrorString(rc));
}

extern "C" int vf_cuda_sync(struct vf_backend *be, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(be);
    if (cx->capturing)
        return vf_error_set(err, VF_EINVAL, "GPU %d: vf_backend_sync while a CUDA graph is being "
                            "captured", cx->device);
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    VF_CHECK_CUDA(cudaStreamSynchronize(cx->stream), err, fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d (%s): a kernel failed", cx->device, cx->name);
}

extern "C" int vf_cuda_reserve_staging(struct vf_backend *be, size_t bytes, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(be);
    if (bytes <= cx->stage_bytes)
        return VF_OK;
    if (cx->capturing)
        return vf_error_set(err, VF_EINVAL, "GPU %d: tensor allocated during a CUDA graph "
                            "capture", cx->device);
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    /* the old buffers may still be in flight */
    VF_CHECK_CUDA(cudaStreamSynchronize(cx->stream), err, fail);
    /* forget each buffer before freeing it: a failed free is not retried by vf_cuda_fini */
    if (cx->d_stage) {
        float *d = cx->d_stage;
        cx->d_stage = nullptr;
        be->bytes -= cx->stage_bytes;
        cx->stage_bytes = 0;
        VF_CHECK_CUDA(cudaFree(d), err, fail);
    }
    cx->stage_bytes = 0;
    if (cx->h_stage) {
        float *h = cx->h_stage;
        cx->h_stage = nullptr;
        VF_CHECK_CUDA(cudaFreeHost(h), err, fail);
    }
    VF_CHECK_CUDA(cudaHostAlloc(reinterpret_cast<void **>(&cx->h_stage), bytes,
                                cudaHostAllocDefault), err, fail);
    cx->d_stage = static_cast<float *>(vf_cuda_alloc(be, bytes, err));
    if (!cx->d_stage)
        return vf_error_prefix(err, "upload/download staging");
    cx->stage_bytes = bytes;
    be->bytes += bytes;
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d: upload/download staging of %zu bytes", cx->device,
                           bytes);
}

extern "C" int vf_cuda_upload(struct vf_tensor *t, const float *nchw, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(t->be);
    int rc = staging_check(cx, t, "vf_tensor_upload", err);
    if (rc)
        return rc;
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    long long total = (long long)vf_tensor_count(t);
    size_t bytes = (size_t)total * sizeof(float);
    /* the previous transfer out of the pinned buffer must be done before it is overwritten */
    VF_CHECK_CUDA(cudaEventSynchronize(cx->stage_free), err, fail);
    memcpy(cx->h_stage, nchw, bytes);
    VF_CHECK_CUDA(cudaMemcpyAsync(cx->d_stage, cx->h_stage, bytes, cudaMemcpyHostToDevice,
                                  cx->stream), err, fail);
    VF_CHECK_CUDA(cudaEventRecord(cx->stage_free, cx->stream), err, fail);
    k_from_nchw<<<grid_for(total), kThreads, 0, cx->stream>>>(
        cx->d_stage, t->data, (int)t->dtype, t->c, (long long)t->h * t->w, t->pix_stride, total);
    VF_CHECK_CUDA(cudaGetLastError(), err, fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d: upload", cx->device);
}

extern "C" int vf_cuda_download(const struct vf_tensor *t, float *nchw, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(t->be);
    int rc = staging_check(cx, t, "vf_tensor_download", err);
    if (rc)
        return rc;
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    long long total = (long long)vf_tensor_count(t);
    size_t bytes = (size_t)total * sizeof(float);
    k_to_nchw<<<grid_for(total), kThreads, 0, cx->stream>>>(
        t->data, (int)t->dtype, t->c, (long long)t->h * t->w, t->pix_stride, cx->d_stage, total);
    VF_CHECK_CUDA(cudaGetLastError(), err, fail);
    VF_CHECK_CUDA(cudaMemcpyAsync(cx->h_stage, cx->d_stage, bytes, cudaMemcpyDeviceToHost,
                                  cx->stream), err, fail);
    VF_CHECK_CUDA(cudaEventRecord(cx->stage_free, cx->stream), err, fail);
    VF_CHECK_CUDA(cudaStreamSynchronize(cx->stream), err, fail);
    memcpy(nchw, cx->h_stage, bytes);
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d (%s): download (a kernel before it may have failed)",
                           cx->device, cx->name);
}

extern "C" int vf_cuda_zero(struct vf_tensor *t, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(t->be);
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    size_t es = vf_dtype_size(t->dtype);
    size_t npix = (size_t)t->n * t->h * t->w;
    if (t->pix_stride == t->c)
        VF_CHECK_CUDA(cudaMemsetAsync(t->data, 0, npix * t->c * es, cx->stream), err, fail);
    else
        VF_CHECK_CUDA(cudaMemset2DAsync(t->data, (size_t)t->pix_stride * es, 0, (size_t)t->c * es,
                                        npix, cx->stream), err, fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d: zero", cx->device);
}

extern "C" void *vf_cuda_stream(const struct vf_backend *be)
{
    const vf_cuda_ctx *cx = ctx(be);
    /* A failure here shows at the launch that follows (each launcher checks it). */
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != cx->device)
        if (cudaSetDevice(cx->device) != cudaSuccess)
            fprintf(stderr, "vaefarm: GPU %d: cudaSetDevice failed\n", cx->device);
    return cx->stream;
}

extern "C" void *vf_cuda_cublas(const struct vf_backend *be) { return ctx(be)->cublas; }
extern "C" void *vf_cuda_cudnn(const struct vf_backend *be) { return ctx(be)->cudnn; }
extern "C" int vf_cuda_device(const struct vf_backend *be) { return ctx(be)->device; }
extern "C" int vf_cuda_cc(const struct vf_backend *be) { return ctx(be)->cc; }
extern "C" bool vf_cuda_capturing(const struct vf_backend *be) { return ctx(be)->capturing; }

extern "C" int vf_cuda_capture_begin(struct vf_backend *be, struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(be);
    if (cx->capturing)
        return vf_error_set(err, VF_EINVAL, "GPU %d: a capture is already under way", cx->device);
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    /* thread-local mode: other threads' CUDA calls (the decoder's, say) are not disturbed */
    VF_CHECK_CUDA(cudaStreamBeginCapture(cx->stream, cudaStreamCaptureModeThreadLocal), err,
                  fail);
    cx->capturing = true;
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d: CUDA graph capture", cx->device);
}

extern "C" int vf_cuda_capture_end(struct vf_backend *be, void **graph_exec,
                                   struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(be);
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    *graph_exec = nullptr;
    if (!cx->capturing)
        return vf_error_set(err, VF_EINVAL, "GPU %d: no capture under way", cx->device);
    cx->capturing = false;
    /* The capture ends on every path, even when the device cannot be made current: a stream
     * left capturing would take every later call of this backend into a dead graph. */
    const int entered = enter(cx, err);
    const cudaError_t ended = cudaStreamEndCapture(cx->stream, &graph);
    if (entered)
        goto fail;
    VF_CHECK_CUDA(ended, err, fail);
    VF_CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0), err, fail);
    {
        const cudaError_t destroyed = cudaGraphDestroy(graph);
        graph = nullptr;   /* not again on the fail path, whatever it returned */
        VF_CHECK_CUDA(destroyed, err, fail);
    }
    *graph_exec = exec;
    return VF_OK;
fail:
    if (exec && cudaGraphExecDestroy(exec) != cudaSuccess)
        (void)cudaGetLastError();
    if (graph && cudaGraphDestroy(graph) != cudaSuccess)
        (void)cudaGetLastError();
    /* an invalidated capture leaves its (non-sticky) error behind: clear it, or the next
     * launch's check would report it */
    (void)cudaGetLastError();
    return vf_error_prefix(err, "GPU %d: ending a CUDA graph capture (an operator in it may "
                           "not be capturable)", cx->device);
}

extern "C" int vf_cuda_graph_launch(struct vf_backend *be, void *graph_exec,
                                    struct vf_error *err)
{
    vf_cuda_ctx *cx = ctx(be);
    if (enter(cx, err))
        return err ? err->code : VF_EINTERNAL;
    VF_CHECK_CUDA(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), cx->stream), err,
                  fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "GPU %d: CUDA graph launch", cx->device);
}

extern "C" void vf_cuda_graph_destroy(void *graph_exec)
{
    if (!graph_exec)
        return;
    cudaError_t rc = cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec));
    if (rc != cudaSuccess)
        fprintf(stderr, "vaefarm: cudaGraphExecDestroy: %s\n", cudaGetErrorString(rc));
}
