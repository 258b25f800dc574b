/*
 * kernels/cuda_elem.cuh: private to kernels/' .cu files: how the CUDA kernels see a tensor (a
 * view: data, dtype, channels, pixel stride), f32 loads and stores through kernels/elem.h's
 * storage conversions, the grid-stride loop, the launch size and the launch check. Included by
 * kernels/elem_cuda.cu and kernels/ops_cuda.cu after kernels/cuda_ops.h (for kernels.h's types).
 * Everything is in an unnamed namespace and inline: each .cu file has its own copy.
 */
#ifndef VF_KERNELS_CUDA_ELEM_CUH
#define VF_KERNELS_CUDA_ELEM_CUH

#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/cuda_check.h"
#include "kernels/elem.h"

namespace {

/* A tensor as the kernels see it. */
struct view {
    void *data;
    int dtype;
    int c;
    long long stride;   /* elements between pixels */
};

inline view make_view(const struct vf_tensor *t)
{
    view v;
    v.data = t ? t->data : nullptr;
    v.dtype = t ? (int)t->dtype : 0;
    v.c = t ? t->c : 0;
    v.stride = t ? t->pix_stride : 0;
    return v;
}

inline long long pixels(const struct vf_tensor *t) { return (long long)t->n * t->h * t->w; }

__device__ __forceinline__ float vld(const view &v, long long off)
{
    switch (v.dtype) {
    case VF_BF16: return vf_bf16_to_f32(static_cast<const uint16_t *>(v.data)[off]);
    case VF_F16: return vf_f16_to_f32(static_cast<const uint16_t *>(v.data)[off]);
    default: return static_cast<const float *>(v.data)[off];
    }
}

__device__ __forceinline__ void vst(const view &v, long long off, float x)
{
    switch (v.dtype) {
    case VF_BF16: static_cast<uint16_t *>(v.data)[off] = vf_f32_to_bf16(x); break;
    case VF_F16: static_cast<uint16_t *>(v.data)[off] = vf_f32_to_f16(x); break;
    default: static_cast<float *>(v.data)[off] = x; break;
    }
}

/* act(x) for vf_op_act's activations (slope: the channel's PReLU slope). */
__device__ __forceinline__ float vact(float x, int act, float alpha, float slope)
{
    switch (act) {
    case VF_ACT_RELU: return vf_relu(x);
    case VF_ACT_LRELU: return vf_lrelu(x, alpha);
    case VF_ACT_PRELU: return vf_prelu(x, slope);
    case VF_ACT_TANH: return vf_tanh(x);
    default: return x;
    }
}

#define GRID_STRIDE(i, n)                                                                      \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);            \
         i += (long long)gridDim.x * blockDim.x)

constexpr int kThreads = 256;

inline unsigned grid_for(long long n)
{
    long long b = (n + kThreads - 1) / kThreads;
    const long long cap = 65536;   /* grid-stride loops cover the rest */
    return (unsigned)(b < 1 ? 1 : (b > cap ? cap : b));
}

/* After a launch: the launch's own error (bad configuration, no device, ...). */
inline int launched(const char *what, struct vf_error *err)
{
    VF_CHECK_CUDA(cudaGetLastError(), err, fail);
    return VF_OK;
fail:
    return vf_error_prefix(err, "%s", what);
}

} // namespace

#endif /* VF_KERNELS_CUDA_ELEM_CUH */
