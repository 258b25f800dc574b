/*
 * kernels/elem_cuda.cu: the CUDA backend's elementwise kernels: act, cast, grey → L, RGB ↔ Lab,
 * keep-luma. Their bodies are kernels/elem.h's, shared with the CPU loops of kernels/ops.c (one
 * source, two targets). Tensors are NHWC with a pixel stride, f32/bf16/f16 storage, f32
 * arithmetic (views, loads and stores: kernels/cuda_elem.cuh). Launch wrappers
 * (kernels/cuda_ops.h) check the launch with cudaGetLastError.
 */
#include <cuda_runtime.h>

extern "C" {
#include "kernels/cuda_ops.h"
}
#include "kernels/cuda_elem.cuh"

namespace {

__global__ void k_act(view s, view d, long long n, int act, float alpha, const float *slopes)
{
    GRID_STRIDE(i, n)
    {
        long long p = i / s.c;
        int ch = (int)(i - p * s.c);
        float x = vld(s, p * s.stride + ch);
        vst(d, p * d.stride + ch, vact(x, act, alpha, act == VF_ACT_PRELU ? slopes[ch] : 0.0f));
    }
}

__global__ void k_cast(view s, view d, long long n)
{
    GRID_STRIDE(i, n)
    {
        long long p = i / s.c;
        int ch = (int)(i - p * s.c);
        vst(d, p * d.stride + ch, vld(s, p * s.stride + ch));
    }
}

__global__ void k_grey_to_l(view g, view l, view fin, long long n)
{
    GRID_STRIDE(p, n)
    {
        float y = vld(g, p * g.stride);
        vst(l, p * l.stride, vf_grey_to_l(y));
        if (fin.data)
            for (int k = 0; k < 3; k++)
                vst(fin, p * fin.stride + k, vf_imnet_norm(y, k));
    }
}

__global__ void k_rgb_to_lab(view rgb, view lab, view fin, long long n)
{
    GRID_STRIDE(p, n)
    {
        float c[3];
        for (int k = 0; k < 3; k++)
            c[k] = vld(rgb, p * rgb.stride + k);
        vf_f3 o = vf_rgb_to_lab(c[0], c[1], c[2]);
        if (fin.data)
            for (int k = 0; k < 3; k++)
                vst(fin, p * fin.stride + k, vf_imnet_norm(c[k], k));
        vst(lab, p * lab.stride, o.x);
        vst(lab, p * lab.stride + 1, o.y);
        vst(lab, p * lab.stride + 2, o.z);
    }
}

__global__ void k_lab_to_rgb(view lab, view rgb, long long n)
{
    GRID_STRIDE(p, n)
    {
        vf_f3 o = vf_lab_to_rgb(vld(lab, p * lab.stride), vld(lab, p * lab.stride + 1),
                                vld(lab, p * lab.stride + 2));
        vst(rgb, p * rgb.stride, o.x);
        vst(rgb, p * rgb.stride + 1, o.y);
        vst(rgb, p * rgb.stride + 2, o.z);
    }
}

__global__ void k_keep_luma(view g, view ab, float kr, float kb, view rgb, view cbcr,
                            long long n)
{
    GRID_STRIDE(p, n)
    {
        vf_f3 c = vf_keep_luma_rgb(vld(g, p * g.stride), vld(ab, p * ab.stride),
                                   vld(ab, p * ab.stride + 1), kr, kb);
        if (rgb.data) {
            vst(rgb, p * rgb.stride, c.x);
            vst(rgb, p * rgb.stride + 1, c.y);
            vst(rgb, p * rgb.stride + 2, c.z);
        }
        if (cbcr.data) {
            vst(cbcr, p * cbcr.stride, vf_cb(c, kr, kb));
            vst(cbcr, p * cbcr.stride + 1, vf_cr(c, kr, kb));
        }
    }
}

} // namespace

extern "C" int vf_cuda_act(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_act act,
                           float alpha, const float *slopes, void *stream, struct vf_error *err)
{
    long long n = pixels(src) * src->c;
    if (n == 0)
        return VF_OK;
    k_act<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        make_view(src), make_view(dst), n, (int)act, alpha, slopes);
    return launched("vf_cuda_act", err);
}

extern "C" int vf_cuda_cast(const struct vf_tensor *src, struct vf_tensor *dst, void *stream,
                            struct vf_error *err)
{
    long long n = pixels(src) * src->c;
    if (n == 0)
        return VF_OK;
    k_cast<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        make_view(src), make_view(dst), n);
    return launched("vf_cuda_cast", err);
}

extern "C" int vf_cuda_grey_to_l(const struct vf_tensor *grey, struct vf_tensor *l,
                                 struct vf_tensor *fin, void *stream, struct vf_error *err)
{
    long long n = pixels(grey);
    if (n == 0)
        return VF_OK;
    k_grey_to_l<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        make_view(grey), make_view(l), make_view(fin), n);
    return launched("vf_cuda_grey_to_l", err);
}

extern "C" int vf_cuda_rgb_to_lab(const struct vf_tensor *rgb, struct vf_tensor *lab,
                                  struct vf_tensor *fin, void *stream, struct vf_error *err)
{
    long long n = pixels(rgb);
    if (n == 0)
        return VF_OK;
    k_rgb_to_lab<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        make_view(rgb), make_view(lab), make_view(fin), n);
    return launched("vf_cuda_rgb_to_lab", err);
}

extern "C" int vf_cuda_lab_to_rgb(const struct vf_tensor *lab, struct vf_tensor *rgb,
                                  void *stream, struct vf_error *err)
{
    long long n = pixels(lab);
    if (n == 0)
        return VF_OK;
    k_lab_to_rgb<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        make_view(lab), make_view(rgb), n);
    return launched("vf_cuda_lab_to_rgb", err);
}

extern "C" int vf_cuda_keep_luma(const struct vf_tensor *grey, const struct vf_tensor *ab,
                                 float kr, float kb, struct vf_tensor *rgb,
                                 struct vf_tensor *cbcr, void *stream, struct vf_error *err)
{
    long long n = pixels(grey);
    if (n == 0)
        return VF_OK;
    k_keep_luma<<<grid_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        make_view(grey), make_view(ab), kr, kb, make_view(rgb), make_view(cbcr), n);
    return launched("vf_cuda_keep_luma", err);
}
