/*
 * kernels/cuda_ops.h: private to kernels/: host launchers of the CUDA backend's elementwise
 * kernels (kernels/elem_cuda.cu). Their per-element bodies are kernels/elem.h's, the same as
 * the CPU loops of kernels/ops.c (one source, two targets), so both backends compute the same
 * function of the same f32 values.
 *
 * Contract: every tensor is in the memory of the GPU the caller made current; shapes, dtypes
 * and channel counts are those the matching vf_op_* requires and have been checked by it (these
 * launchers only check that the launch itself succeeded). `stream` is a cudaStream_t (NULL: the
 * legacy default stream). The launch is asynchronous: results are there after the stream is
 * synchronised. Each returns VF_OK, or VF_EINTERNAL with the CUDA error in err.
 */
#ifndef VF_KERNELS_CUDA_OPS_H
#define VF_KERNELS_CUDA_OPS_H

#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dst = act(src) (vf_op_act); slopes: c device floats for VF_ACT_PRELU, else unused. */
int vf_cuda_act(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_act act,
                float alpha, const float *slopes, void *stream, struct vf_error *err);
/* dst = src converted to dst's dtype (vf_op_copy). */
int vf_cuda_cast(const struct vf_tensor *src, struct vf_tensor *dst, void *stream,
                 struct vf_error *err);
/* vf_op_grey_to_l (fin may be NULL). */
int vf_cuda_grey_to_l(const struct vf_tensor *grey, struct vf_tensor *l, struct vf_tensor *fin,
                      void *stream, struct vf_error *err);
/* vf_op_rgb_to_lab (fin may be NULL). */
int vf_cuda_rgb_to_lab(const struct vf_tensor *rgb, struct vf_tensor *lab,
                       struct vf_tensor *fin, void *stream, struct vf_error *err);
/* vf_op_lab_to_rgb. */
int vf_cuda_lab_to_rgb(const struct vf_tensor *lab, struct vf_tensor *rgb, void *stream,
                       struct vf_error *err);
/* vf_op_keep_luma (rgb or cbcr may be NULL). */
int vf_cuda_keep_luma(const struct vf_tensor *grey, const struct vf_tensor *ab, float kr,
                      float kb, struct vf_tensor *rgb, struct vf_tensor *cbcr, void *stream,
                      struct vf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* VF_KERNELS_CUDA_OPS_H */
