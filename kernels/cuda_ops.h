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

/* ============================== the context (kernels/cuda_backend.cu) ======================= */
/* A CUDA backend's private state: its device, its compute stream, its cuBLAS and cuDNN
 * handles (bound to the stream), and the staging buffers of upload/download (pinned host memory
 * and a device f32 buffer, both grown by vf_cuda_reserve_staging when a tensor is allocated,
 * never during a run). Opaque outside kernels/cuda_backend.cu. */
struct vf_cuda_ctx;

/* Make GPU `gpu` current for the calling thread and create be->cuda. Errors name the device and
 * say what to do (no such device, out of memory, driver failure). */
int vf_cuda_init(struct vf_backend *be, int gpu, struct vf_error *err);
void vf_cuda_fini(struct vf_backend *be);
/* Device memory (cudaMalloc; zeroed), accounted by the caller in be->bytes. */
void *vf_cuda_alloc(struct vf_backend *be, size_t bytes, struct vf_error *err);
void vf_cuda_free(struct vf_backend *be, void *p);
int vf_cuda_sync(struct vf_backend *be, struct vf_error *err);
/* Grow the upload/download staging to hold `bytes` of f32 (at tensor allocation only). */
int vf_cuda_reserve_staging(struct vf_backend *be, size_t bytes, struct vf_error *err);
/* vf_tensor_upload / _download / _zero on a CUDA tensor (already checked by backend.c). Upload
 * and download are synchronous for the host memory (the host buffer may be reused on return). */
int vf_cuda_upload(struct vf_tensor *t, const float *nchw, struct vf_error *err);
int vf_cuda_download(const struct vf_tensor *t, float *nchw, struct vf_error *err);
int vf_cuda_zero(struct vf_tensor *t, struct vf_error *err);
/* The backend's stream (a cudaStream_t), cuBLAS handle (cublasHandle_t) and cuDNN handle
 * (cudnnHandle_t), all bound to that stream. */
void *vf_cuda_stream(const struct vf_backend *be);
void *vf_cuda_cublas(const struct vf_backend *be);
void *vf_cuda_cudnn(const struct vf_backend *be);
/* The GPU's ordinal and compute capability (major·10 + minor). */
int vf_cuda_device(const struct vf_backend *be);
int vf_cuda_cc(const struct vf_backend *be);
/* Stream capture into a CUDA graph (vf_backend_capture_* of kernels.h). */
int vf_cuda_capture_begin(struct vf_backend *be, struct vf_error *err);
int vf_cuda_capture_end(struct vf_backend *be, void **graph_exec, struct vf_error *err);
int vf_cuda_graph_launch(struct vf_backend *be, void *graph_exec, struct vf_error *err);
void vf_cuda_graph_destroy(void *graph_exec);
bool vf_cuda_capturing(const struct vf_backend *be);

/* ============================== primitives (kernels/cudnn.cu) ============================== */
/* The CUDA backend's vf_conv / vf_pool / vf_matmul (kernels.h), created and run by kernels/dnnl.c
 * after it has validated the description (conv_validate etc.) and, per run, the tensors'
 * shapes and dtypes: these functions trust their arguments. Creation uploads the weights,
 * chooses the cuDNN algorithm once (deterministic, heuristic ranking) and reserves the
 * backend's shared workspace (vf_be_reserve_); a run only enqueues work on the backend's
 * stream (no allocation, no synchronisation). Each returns VF_OK, or an error with the failing
 * cuDNN/cuBLAS/CUDA call in err. The *_impl strings ("cudnn:implicit_precomp_gemm (fma)",
 * "cublas:gemmex bf16 tensor op, ...") are for tests and logs. */
#define VF_CUDA_IMPL_MAX 96

struct vf_cudnn_conv;
/* weight: OIHW f32 (host); bias: oc f32 (host) or NULL. */
int vf_cudnn_conv_create(struct vf_cudnn_conv **out, struct vf_backend *be,
                         const struct vf_conv_desc *d, enum vf_dtype dt, enum vf_dtype dst_dt,
                         int n, int h, int w, const float *weight, const float *bias,
                         struct vf_error *err);
/* src, dst: the created shapes and dtypes; either may be a channel-slice view. With
 * d->residual, dst holds the residual on entry. */
int vf_cudnn_conv_run(struct vf_cudnn_conv *cv, const struct vf_tensor *src,
                      struct vf_tensor *dst, struct vf_error *err);
const char *vf_cudnn_conv_impl(const struct vf_cudnn_conv *cv);
void vf_cudnn_conv_destroy(struct vf_cudnn_conv **cv);

struct vf_cudnn_pool;
int vf_cudnn_pool_create(struct vf_cudnn_pool **out, struct vf_backend *be,
                         const struct vf_pool_desc *d, enum vf_dtype dt, int n, int c, int h,
                         int w, struct vf_error *err);
int vf_cudnn_pool_run(struct vf_cudnn_pool *p, const struct vf_tensor *src,
                      struct vf_tensor *dst, struct vf_error *err);
const char *vf_cudnn_pool_impl(const struct vf_cudnn_pool *p);
void vf_cudnn_pool_destroy(struct vf_cudnn_pool **p);

struct vf_cublas_matmul;
int vf_cublas_matmul_create(struct vf_cublas_matmul **out, struct vf_backend *be,
                            const struct vf_matmul_desc *d, enum vf_dtype dt,
                            struct vf_error *err);
/* a, b: device pointers of the created dtype; c: device f32. */
int vf_cublas_matmul_run(struct vf_cublas_matmul *mm, const void *a, const void *b, float *c,
                         struct vf_error *err);
const char *vf_cublas_matmul_impl(const struct vf_cublas_matmul *mm);
void vf_cublas_matmul_destroy(struct vf_cublas_matmul **mm);

/* ============================== elementwise (kernels/elem_cuda.cu) ========================= */

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

/* ============================== operators (kernels/ops_cuda.cu) ============================ */
/* The rest of kernels.h's operators, called by kernels/ops.c after its checks (same contract as
 * above). Reductions run inside one block in a fixed order (per-thread sums in double, then a
 * tree over the threads), never with atomics: a result is the same bits run after run on the
 * same GPU. No allocation: statistics live in shared memory; guided upsampling uses the
 * caller's scratch. gamma, beta, slopes: c device floats, or NULL (1, 0, unused). */

/* vf_op_instance_norm: one block per image × 8 channels. */
int vf_cuda_instance_norm(const struct vf_tensor *src, struct vf_tensor *dst, float eps,
                          const float *gamma, const float *beta, enum vf_act act, float alpha,
                          const float *slopes, void *stream, struct vf_error *err);
/* vf_op_resize (not in place). */
int vf_cuda_resize(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_resize mode,
                   void *stream, struct vf_error *err);
/* vf_op_add (dst may be a or b). */
int vf_cuda_add(const struct vf_tensor *a, const struct vf_tensor *b, struct vf_tensor *dst,
                void *stream, struct vf_error *err);
/* vf_op_gated_add (dst may be w; factor NULL: 1; fdiv: the pixels that share one factor value,
 * ops.c's factor_div). */
int vf_cuda_gated_add(const struct vf_tensor *o, const struct vf_tensor *w, float scale,
                      const struct vf_tensor *factor, long fdiv, struct vf_tensor *dst, void *stream,
                      struct vf_error *err);
/* vf_op_motion_factor. */
int vf_cuda_motion_factor(const struct vf_tensor *a, const struct vf_tensor *b, float kappa,
                          int radius, struct vf_tensor *dst, void *stream, struct vf_error *err);
/* vf_op_concat: one vf_cuda_cast per source into its channels of dst. */
int vf_cuda_concat(const struct vf_tensor *const *srcs, int n, struct vf_tensor *dst,
                   void *stream, struct vf_error *err);
/* vf_op_l2norm; with centring, one block per image (its channel means in shared memory, so
 * c ≤ 8192). */
int vf_cuda_l2norm(const struct vf_tensor *src, struct vf_tensor *dst, bool center, float eps,
                   void *stream, struct vf_error *err);
/* vf_op_attention_rows: f, v, s (may be NULL), out: device f32; one block per row. */
int vf_cuda_attention_rows(const float *f, int rows, int ncols, int ld, float tau,
                           const float *v, int vc, float *s, float *out, void *stream,
                           struct vf_error *err);
/* vf_op_warp_refine: one thread per pixel (elem.h vf_refine_px); arguments checked by ops.c. */
int vf_cuda_warp_refine(const struct vf_tensor *grey, const struct vf_tensor *ref_y,
                        const struct vf_tensor *ref_ab, const struct vf_tensor *pos, int radius,
                        int patch, float inv_h2, const struct vf_refine_temporal_args *tp,
                        float scale, struct vf_tensor *dst, void *stream, struct vf_error *err);
/* vf_op_guided_upsample: scratch as kernels/ops.c's (vf_guided_scratch_elems, doubles). */
int vf_cuda_guided_upsample(const struct vf_tensor *grey_lo, const struct vf_tensor *ab_lo,
                            const struct vf_tensor *grey_full, struct vf_tensor *ab_full,
                            int radius, float eps, struct vf_tensor *scratch, void *stream,
                            struct vf_error *err);
/* The most local memory (stack frame) a thread of this file's kernels uses, in bytes (the
 * refinement's per-pixel arrays: about 11 KB a thread at sm_90); the device's current GPU. */
int vf_cuda_ops_stack_bytes(size_t *bytes, struct vf_error *err);
/* vf_op_carry_ab (no scratch: one thread per pixel, the window sums in Net.carry's order). */
int vf_cuda_carry_ab(const struct vf_tensor *grey, const struct vf_tensor *prev_grey,
                     const struct vf_tensor *prev_ab, struct vf_tensor *ab, float share,
                     float confidence, int radius, int patch, bool subpixel, void *stream,
                     struct vf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* VF_KERNELS_CUDA_OPS_H */
