/*
 * kernels/kernels.h: tensors and operators behind a small backend interface: a CPU backend
 * (oneDNN + C) and a CUDA backend (cuDNN, cuBLAS, .cu kernels, later). The network (node/) is
 * written against this header only; it never sees oneDNN or CUDA.
 *
 * Model of execution (the same for both backends):
 *   - A backend owns a device (the CPU, or one GPU) and one stream. Every operator is enqueued on
 *     the backend's stream in call order; vf_backend_sync() waits for all of them. On the CPU
 *     the operators run synchronously, so sync is free, but callers must not rely on that.
 *   - Tensor memory belongs to the backend's device. Host data enters and leaves only through
 *     vf_tensor_upload / vf_tensor_download (pinned staging on CUDA).
 *   - Everything with a fixed shape (a convolution, a matmul, a pooling) is a "primitive"
 *     created once, with its weights and scratch, then run per frame with no allocation.
 *   - Precision: a tensor's dtype is its storage type. Arithmetic is f32 whatever the storage;
 *     oneDNN's primitives accumulate in f32, the C operators' reductions (norms, means, softmax
 *     sums, box filters) in double, always in a fixed order. Convolutions and matmuls take the dtype they were
 *     created with for source and weights; their destination may be f32 or that dtype.
 *   - Determinism: every operator's result is independent of the thread count and of the call
 *     history (fixed reduction order), so a rank's output does not depend on how many threads it
 *     runs (DESIGN.md §4).
 *
 * Uses: common/, oneDNN, the CUDA runtime (when built with it). Knows nothing of video or MPI.
 */
#ifndef VF_KERNELS_H
#define VF_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

/* ============================== build and devices ========================================== */

/* True when this build has the CUDA backend (CMake found nvcc; -DVF_CUDA). */
bool vf_kernels_has_cuda(void);

/* GPUs this process can use. 0, without error, when the build has no CUDA backend, when no
 * driver is installed or when no device is visible: the rank then uses the CPU backend. A
 * driver that is present but broken is an error. */
int vf_kernels_gpu_count(int *count, struct vf_error *err);

/* One line about GPU `device`: name, memory, compute capability. */
int vf_kernels_gpu_describe(int device, char *buf, size_t len, struct vf_error *err);

/* One line about the CPU backend: oneDNN's version and the ISA its kernels dispatch to
 * (e.g. "oneDNN 2.6.3, ISA avx512_core_bf16"). */
void vf_kernels_cpu_describe(char *buf, size_t len);

/* ============================== types ====================================================== */

enum vf_dtype { VF_F32 = 0, VF_BF16 = 1, VF_F16 = 2 };
enum vf_device { VF_DEVICE_CPU = 0, VF_DEVICE_CUDA = 1 };

size_t vf_dtype_size(enum vf_dtype dt);
const char *vf_dtype_name(enum vf_dtype dt);          /* "f32", "bf16", "f16" */
/* Parse "f32"/"bf16"/"f16"; returns VF_EINVAL for anything else. */
int vf_dtype_parse(const char *s, enum vf_dtype *dt);
/* Whether a GPU of compute capability `cc` (major * 10 + minor) computes in `dt` with the CUDA
 * backend: f32 always, f16 from Volta (70), bf16 from Ampere (80). */
bool vf_kernels_cc_supports(int cc, enum vf_dtype dt);
/* GPU `device`'s compute capability (major * 10 + minor), read without creating a context's
 * handles or memory (`vaefarm plan` asks it of a GPU a render may hold). */
int vf_kernels_gpu_cc(int device, int *cc, struct vf_error *err);

struct vf_backend;

struct vf_backend_opts {
    enum vf_device device;
    int gpu;                    /* CUDA device ordinal (VF_DEVICE_CUDA) */
    int threads;                /* CPU threads for this backend's operators; 0 = all cores */
    size_t mem_budget;          /* CPU: the bytes this backend may hold (tensors, weights, the
                                   workspace); an allocation past it fails with VF_ENOMEM, saying
                                   what to do, before the system's out-of-memory killer would end
                                   the process; 0: no limit */
};

int vf_backend_create(struct vf_backend **out, const struct vf_backend_opts *opts,
                      struct vf_error *err);
/* Change a CPU backend's budget (opts.mem_budget, 0: no limit) before it allocates what it must
 * hold: a caller that learns later what else its process holds beside the backend. */
void vf_backend_set_mem_budget(struct vf_backend *be, size_t bytes);
void vf_backend_destroy(struct vf_backend **be);
enum vf_device vf_backend_device(const struct vf_backend *be);
/* The CPU threads its operators run on (opts.threads, or all cores for 0); 1 on a GPU. */
int vf_backend_threads(const struct vf_backend *be);
/* Whether this backend can compute in `dt` (the CPU: f32 always, bf16 when the ISA has it,
 * f16 never on oneDNN 2.6 for convolutions). */
bool vf_backend_supports(const struct vf_backend *be, enum vf_dtype dt);
/* Wait until everything enqueued on the backend's stream has finished. */
int vf_backend_sync(struct vf_backend *be, struct vf_error *err);
/* Bytes of device memory this backend holds now: tensors, primitives' weights and the shared
 * workspace (which only grows, at primitive creation). oneDNN's own allocations (JIT code) are
 * not counted. One backend serves one thread at a time: its workspace is shared. */
size_t vf_backend_bytes(const struct vf_backend *be);

/* CUDA graphs: everything a sequence of operator calls enqueues on the backend's stream is
 * recorded once (capture) and replayed per frame with one launch. Only a CUDA backend can
 * capture (vf_backend_can_capture); during a capture nothing may wait for the stream (no sync,
 * no upload or download) and every pointer the calls use is baked into the graph, so replay
 * reads and writes the same tensors. */
struct vf_graph;
bool vf_backend_can_capture(const struct vf_backend *be);
int vf_backend_capture_begin(struct vf_backend *be, struct vf_error *err);
/* End the capture: *out replays what was enqueued since vf_backend_capture_begin. On failure
 * the capture is ended and discarded. */
int vf_backend_capture_end(struct vf_backend *be, struct vf_graph **out, struct vf_error *err);
/* False when a primitive created after the capture grew the backend's shared workspace: the
 * graph holds the old buffer's address, so it must be destroyed and captured again. */
bool vf_graph_current(const struct vf_graph *g);
/* Enqueue one replay on the backend's stream (asynchronous, like any operator); a stale graph
 * (vf_graph_current false) is refused. */
int vf_graph_launch(struct vf_graph *g, struct vf_error *err);
void vf_graph_destroy(struct vf_graph **g);

/* A 4-D activation tensor, logically n × c × h × w, stored channels-last (NHWC): element
 * (i, y, x, ch) is at data + ((i·h + y)·w + x)·pix_stride + ch elements. pix_stride ≥ c;
 * pix_stride > c only for a channel-slice view (vf_tensor_slice). A weight-free plain array
 * (attention rows, say) is a tensor with n = 1, h = rows, w = 1, c = columns. */
struct vf_tensor {
    enum vf_dtype dtype;
    int n, c, h, w;
    int pix_stride;             /* elements between consecutive pixels */
    void *data;                 /* device memory of `be` */
    struct vf_backend *be;
    bool owned;                 /* vf_tensor_free releases data */
};

/* Allocate a dense tensor (pix_stride = c), zero-filled. */
int vf_tensor_alloc(struct vf_tensor *t, struct vf_backend *be, enum vf_dtype dt, int n, int c,
                    int h, int w, struct vf_error *err);
/* Release an owned tensor's memory (views: nothing); zeroes *t. NULL-safe, idempotent. */
void vf_tensor_free(struct vf_tensor *t);
/* A view of channels [c0, c0 + nc) of t (no copy, not owned). */
struct vf_tensor vf_tensor_slice(const struct vf_tensor *t, int c0, int nc);
size_t vf_tensor_count(const struct vf_tensor *t);   /* n·c·h·w */
/* Host f32 data in planar NCHW order ↔ the tensor (converted to/from its dtype and layout). */
int vf_tensor_upload(struct vf_tensor *t, const float *nchw, struct vf_error *err);
int vf_tensor_download(const struct vf_tensor *t, float *nchw, struct vf_error *err);
/* Set every element to 0. */
int vf_tensor_zero(struct vf_tensor *t, struct vf_error *err);

/* ============================== primitives (oneDNN / cuDNN / cuBLAS) ======================== */

enum vf_act { VF_ACT_NONE = 0, VF_ACT_RELU, VF_ACT_LRELU, VF_ACT_PRELU, VF_ACT_TANH };
enum vf_pad { VF_PAD_ZERO = 0, VF_PAD_REFLECT };

struct vf_conv_desc {
    int ic, oc;
    int kh, kw;
    int stride;
    int pad;                    /* each side; for VF_PAD_REFLECT the primitive reflects into
                                   the backend's workspace, then convolves unpadded */
    enum vf_pad pad_mode;
    int dilation;               /* 1 = dense */
    int groups;                 /* 1, or ic == oc == groups for depthwise */
    bool residual;              /* dst += conv(src) before the activation (dst holds the
                                   residual on entry) */
    enum vf_act act;            /* NONE, RELU, LRELU or TANH (PReLU: use vf_op_act) */
    float alpha;                /* LRELU slope */
    float scale;                /* multiply the result after the activation (0 means 1): the
                                   "128 · tanh" of C's output */
};

struct vf_conv;

/* Output size of a convolution over an h × w input. */
void vf_conv_out_size(const struct vf_conv_desc *d, int h, int w, int *oh, int *ow);
/* Create a convolution for an n × ic × h × w source of `dt` (weights are converted to `dt`;
 * bias, if given, stays f32). weight: OIHW f32 (oc × ic/groups × kh × kw); bias: oc f32 or
 * NULL. dst_dt: the destination's dtype (`dt` or VF_F32). */
int vf_conv_create(struct vf_conv **out, struct vf_backend *be, const struct vf_conv_desc *d,
                   enum vf_dtype dt, enum vf_dtype dst_dt, int n, int h, int w,
                   const float *weight, const float *bias, struct vf_error *err);
/* Run: src n × ic × h × w, dst n × oc × oh × ow, both of the created dtypes. Views are
 * accepted (pix_stride > channels). No allocation. */
int vf_conv_run(struct vf_conv *cv, const struct vf_tensor *src, struct vf_tensor *dst,
                struct vf_error *err);
/* Multiply-accumulates per run. */
double vf_conv_macs(const struct vf_conv *cv);
void vf_conv_destroy(struct vf_conv **cv);

/* Row-major matrix product: C = A · B (or Bᵀ), for m × k A and k × n B (n × k when
 * trans_b), with leading dimensions lda, ldb, ldc in elements. A and B are of `dt`; C is f32. */
struct vf_matmul_desc {
    int m, n, k;
    int lda, ldb, ldc;
    bool trans_b;
};
struct vf_matmul;
int vf_matmul_create(struct vf_matmul **out, struct vf_backend *be,
                     const struct vf_matmul_desc *d, enum vf_dtype dt, struct vf_error *err);
/* a, b, c: device pointers (e.g. tensor data, offset to a block of rows). */
int vf_matmul_run(struct vf_matmul *mm, const void *a, const void *b, float *c,
                  struct vf_error *err);
double vf_matmul_macs(const struct vf_matmul *mm);
void vf_matmul_destroy(struct vf_matmul **mm);

enum vf_pool_kind { VF_POOL_MAX = 0, VF_POOL_AVG };
struct vf_pool_desc {
    enum vf_pool_kind kind;
    int k, stride, pad;         /* square window; AVG excludes padding from the count */
};
struct vf_pool;
void vf_pool_out_size(const struct vf_pool_desc *d, int h, int w, int *oh, int *ow);
int vf_pool_create(struct vf_pool **out, struct vf_backend *be, const struct vf_pool_desc *d,
                   enum vf_dtype dt, int n, int c, int h, int w, struct vf_error *err);
int vf_pool_run(struct vf_pool *p, const struct vf_tensor *src, struct vf_tensor *dst,
                struct vf_error *err);
void vf_pool_destroy(struct vf_pool **p);

/* ============================== operators (C on the CPU; .cu on CUDA) ======================= */
/* Each takes tensors of any dtype (f32 arithmetic inside), accepts channel-slice views, and
 * may run in place (src == dst) where said. Shapes are checked: a mismatch is VF_EINVAL with
 * both shapes in the message. The per-element bodies live in kernels/elem.h and are shared by
 * the CPU loops and the CUDA kernels (one source, two targets). */

/* dst = act(src). PRELU: one slope per channel, `slopes` an f32 tensor of 1 × c × 1 × 1 on the
 * same backend (filled once with vf_tensor_upload); LRELU uses alpha. In place allowed. */
int vf_op_act(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_act act, float alpha,
              const struct vf_tensor *slopes, struct vf_error *err);

/* Instance norm per (image, channel) over its h·w positions, biased variance, then
 * gamma·x̂ + beta (gamma, beta: f32 tensors of c values, or NULL for 1 and 0), then an
 * activation as vf_op_act. In place allowed. */
int vf_op_instance_norm(const struct vf_tensor *src, struct vf_tensor *dst, float eps,
                        const struct vf_tensor *gamma, const struct vf_tensor *beta,
                        enum vf_act act, float alpha, const struct vf_tensor *slopes,
                        struct vf_error *err);

enum vf_resize { VF_RESIZE_NEAREST = 0, VF_RESIZE_BILINEAR };
/* Resize to dst's h × w with PyTorch's conventions: nearest (src index = floor(dst · in/out)),
 * bilinear with align_corners=False (half-pixel centres, clamped), no antialias. */
int vf_op_resize(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_resize mode,
                 struct vf_error *err);

/* dst = a + b (elementwise, same shapes). In place allowed (dst == a or b). */
int vf_op_add(const struct vf_tensor *a, const struct vf_tensor *b, struct vf_tensor *dst,
              struct vf_error *err);
/* The gated residual of C (arch C.gate): dst[c] = w[c] + f·σ(o[C])·scale·tanh(o[c]) for c < C,
 * where C = w.c and o has C + 1 channels (the last is the gate); f is the factor (C.gate_motion,
 * from vf_op_motion_factor: a dense f32 tensor, n × 1 × 1 × 1 for one value per image or
 * n × 1 × h × w for one per pixel), or 1 when factor is NULL. w, dst: the same shape; in place
 * allowed (dst == w). f32, bf16 or f16 tensors, computed in f32. */
int vf_op_gated_add(const struct vf_tensor *o, const struct vf_tensor *w, float scale,
                    const struct vf_tensor *factor, struct vf_tensor *dst, struct vf_error *err);
/* C.gate_motion's factor (docs/NETWORK.md "C"): m / (m + kappa), m a mean of |a − b| (a, b: L(t)
 * and L(t−1), single-channel, the same shape, any dtype; summed in double in a fixed order).
 * radius < 0: per image, m over the whole image, dst dense f32 n × 1 × 1 × 1; radius r >= 0
 * (C.gate_motion_radius, at most VF_MOTION_RADIUS_MAX): per pixel, m over its (2r + 1)² window
 * clipped at the image's borders (the mean of the pixels inside), dst dense f32 n × 1 × h × w.
 * kappa >= 1e-6. */
#define VF_MOTION_RADIUS_MAX 16
int vf_op_motion_factor(const struct vf_tensor *a, const struct vf_tensor *b, float kappa,
                        int radius, struct vf_tensor *dst, struct vf_error *err);
/* Concatenate along channels: dst.c = Σ srcs[i].c. */
int vf_op_concat(const struct vf_tensor *const *srcs, int n, struct vf_tensor *dst,
                 struct vf_error *err);
/* Convert dtype (or copy) between tensors of the same shape. */
int vf_op_copy(const struct vf_tensor *src, struct vf_tensor *dst, struct vf_error *err);

/* Per position, divide the channel vector by max(‖x‖₂, eps); with `center`, first subtract each
 * channel's mean over the image's positions. In place allowed. */
int vf_op_l2norm(const struct vf_tensor *src, struct vf_tensor *dst, bool center, float eps,
                 struct vf_error *err);

/* Attention rows: for rows r of the f32 score block f (rows × ncols, leading dimension ld):
 * s[r] = max_j f[r][j]; p = softmax_j((f[r][j] − max)/τ) (computed stably, f32, fixed order);
 * out[r][ch] = Σ_j p_j · v[j][ch] for v (ncols × vc, f32, row-major). s (rows) and out
 * (rows × vc) are device f32 pointers. */
/* (s may be NULL; f32 within blocks of 64 columns, combined in double in a fixed order) */
int vf_op_attention_rows(struct vf_backend *be, const float *f, int rows, int ncols, int ld,
                         float tau, const float *v, int vc, float *s, float *out,
                         struct vf_error *err);

/* The refined warp (docs/NETWORK.md, "A", refine): for each pixel of dst (2 ch, H × W), the
 * reference's a, b (ref_ab, 2 ch) averaged over a (2·radius + 1)² window of positions around
 * the attention's expected position of its cell (pos, 2 ch (y, x), H/4 × W/4; a channel view is
 * fine), weighted by the luma match of patch × patch windows of grey (the frame's Y′, 1 ch) and
 * ref_y (the reference's, 1 ch): elem.h vf_refine_px. grey, ref_y, ref_ab and dst: dense f32,
 * one size; H and W multiples of 4; radius in [1, VF_REFINE_MAX_RADIUS], patch odd in
 * [1, VF_REFINE_MAX_PATCH], h > 0. tp (NULL: none): the temporal candidates, frame t−1's warp
 * a, b (tp->prev_ab) around each pixel weighted by the lightness match of tp->l (the frame's L)
 * and tp->prev_l (frame t−1's), width tp->h: elem.h vf_refine_temporal. l, prev_l (1 ch) and prev_ab (2 ch):
 * dense f32, grey's size; radius in [1, VF_REFINE_MAX_TEMPORAL]. Where prev_l holds
 * VF_REFINE_NO_PREV (the zero state, the first frame of a shot), those candidates weigh exactly
 * nothing, for any h, h_t < 10: the output is the one without them. tp->subpixel (not 0): also
 * the sub-pixel temporal candidate: elem.h vf_refine_subpixel. tp->predict (in
 * [0, VF_REFINE_MAX_PREDICT]; 0: none): also the motion-predicted candidates around frame t−1's
 * motion tp->motion (elem.h vf_refine_predicted), and each pixel's cheapest temporal
 * displacement (dy, dx; 0 where prev_l holds VF_REFINE_NO_PREV) into tp->motion_out, the next
 * frame's tp->motion. motion and motion_out: dense f32 2 ch, grey's size, not the same memory. */
#define VF_REFINE_MAX_RADIUS 7
#define VF_REFINE_MAX_PATCH 9
#define VF_REFINE_MAX_TEMPORAL 5
#define VF_REFINE_MAX_PREDICT 3
#define VF_REFINE_NO_PREV 1.0e6f
struct vf_refine_temporal_args {
    const struct vf_tensor *l, *prev_l, *prev_ab;
    int radius;
    float h;
    int subpixel;
    int predict;
    const struct vf_tensor *motion;
    struct vf_tensor *motion_out;
};
int vf_op_warp_refine(const struct vf_tensor *grey, const struct vf_tensor *ref_y,
                      const struct vf_tensor *ref_ab, const struct vf_tensor *pos, int radius,
                      int patch, float h, const struct vf_refine_temporal_args *tp,
                      struct vf_tensor *dst, struct vf_error *err);

/* ---- colour ---- */
/* Grey Y′ (1 channel, [0,1]) → L (1 channel, 0..100, neutral-grey reading, NETWORK.md) and,
 * when fin != NULL, F's 3-channel ImageNet-normalised input (Y′,Y′,Y′). */
int vf_op_grey_to_l(const struct vf_tensor *grey, struct vf_tensor *l, struct vf_tensor *fin,
                    struct vf_error *err);
/* sRGB (3 ch, [0,1]) → Lab (3 ch) and, when fin != NULL, F's normalised input. */
int vf_op_rgb_to_lab(const struct vf_tensor *rgb, struct vf_tensor *lab, struct vf_tensor *fin,
                     struct vf_error *err);
/* Lab (3 ch) → sRGB (3 ch, clamped to [0,1]). */
int vf_op_lab_to_rgb(const struct vf_tensor *lab, struct vf_tensor *rgb, struct vf_error *err);

/* Guided upsampling of ab (NETWORK.md, post-processing 1): guide grey_lo (1 ch, H × W), ab_lo
 * (2 ch, H × W), grey_full (1 ch, h × w) → ab_full (2 ch, h × w). scratch: f32 tensor of at
 * least vf_guided_scratch_elems(H, W) elements (allocated once by the caller). */
size_t vf_guided_scratch_elems(int h, int w);
int vf_op_guided_upsample(const struct vf_tensor *grey_lo, const struct vf_tensor *ab_lo,
                          const struct vf_tensor *grey_full, struct vf_tensor *ab_full,
                          int radius, float eps, struct vf_tensor *scratch,
                          struct vf_error *err);
/* Film-size propagation (arch "propagate"; NETWORK.md, post-processing 1b): ab (2 ch, h × w,
 * the frame's a, b after the upsampling) blended in place with prev_ab (frame t−1's final a, b)
 * carried by block matching of grey against prev_grey (1 ch each, Y′ in [0, 1], the same size):
 * per pixel the move within ±radius whose patch × patch window (coordinates clamped to the
 * picture) has the least sum of squared differences of 255·Y′, plus 1e-3·|move|² (rows of moves
 * outer, columns inner, the first of equal costs); the pixel takes s = share · exp(−cost /
 * (patch² · confidence²)) (share alone with confidence 0) of the carried a, b. subpixel: the
 * move refined by one Lucas–Kanade step over the window and prev_ab sampled there bilinearly
 * (Net.carry's subpixel; kernels/elem.h vf_carry_lk_add...). Costs in f64
 * without fused operations: the moves are train/vaefarm_ref Net.carry's to the bit. radius in
 * [1, VF_PROPAGATE_MAX_RADIUS], patch odd in [1, VF_PROPAGATE_MAX_PATCH], share in [0, 1];
 * scratch: f32 tensor of at least vf_carry_scratch_elems(h, w) elements, 8-byte aligned (the
 * CPU backend's per-pixel best cost and move, the greys as f32, and each worker's window row sums
 * for a strip of rows, about 5·h·w elements in all; the CUDA backend needs none). */
#define VF_PROPAGATE_MAX_RADIUS 16
#define VF_PROPAGATE_MAX_PATCH 15
size_t vf_carry_scratch_elems(int h, int w);
int vf_op_carry_ab(const struct vf_tensor *grey, const struct vf_tensor *prev_grey,
                   const struct vf_tensor *prev_ab, struct vf_tensor *ab, float share,
                   float confidence, int radius, int patch, bool subpixel,
                   struct vf_tensor *scratch, struct vf_error *err);
/* Keep the film's luma (NETWORK.md, post-processing 2): grey (1 ch, Y′ in [0,1]) and ab (2 ch)
 * at the same size → rgb (3 ch R′G′B′, may be NULL) and cbcr (2 ch, Cb and Cr in [−0.5, 0.5],
 * may be NULL), for the output matrix's kr, kb. */
int vf_op_keep_luma(const struct vf_tensor *grey, const struct vf_tensor *ab, float kr, float kb,
                    struct vf_tensor *rgb, struct vf_tensor *cbcr, struct vf_error *err);

/* ============================== image quality (`vaefarm eval`) ============================= */
/* Plain host functions over R′G′B′ images (no backend, no tensors): the metrics of
 * `vaefarm eval`, specified in docs/EVAL.md. Lab comes from the same per-element conversion as
 * vf_op_rgb_to_lab (CIE Lab, D65, from sRGB; docs/NETWORK.md). One state per film pair: frames
 * go in one at a time, in film order (two decoders in lockstep), and nothing of a frame is kept
 * but its a, b planes for the next frame's flicker. Every result is independent of the thread
 * count (per-row sums in double, added in row order). */

#define VF_QUALITY_PSNR_CAP 100.0   /* dB: identical images (MSE 0) and anything above report this */
#define VF_QUALITY_RGB_RANGE 255.0  /* PSNR/SSIM data range on R′G′B′ (8-bit scale) */
#define VF_QUALITY_AB_RANGE 256.0   /* PSNR/SSIM data range on a, b (C's tanh·128, DESIGN.md §3) */
#define VF_QUALITY_SSIM_WIN 11      /* SSIM window: 11×11 Gaussian, σ = 1.5 (Wang et al. 2004) */

/* One full-range R′G′B′ image, planar (what the decoder's VF_DECODE_RGB gives). */
struct vf_rgb_image {
    int width, height;
    int bits;                   /* 8: uint8_t samples; 9..16: uint16_t samples (native endian),
                                   full scale 2^bits − 1 */
    const void *plane[3];       /* R′, G′, B′ */
    ptrdiff_t stride;           /* bytes between rows, the same for the three planes */
};

/* One frame pair's metrics (docs/EVAL.md). */
struct vf_quality_frame {
    double mse_rgb, psnr_rgb, ssim_rgb;   /* over R′, G′, B′ on the 8-bit scale */
    double mse_ab, psnr_ab, ssim_ab;      /* over a, b */
    double colourfulness_truth, colourfulness_output;  /* Hasler & Süsstrunk's M */
    double flicker_truth, flicker_output; /* mean |Δa|, |Δb| from the previous frame; NAN for
                                             the first frame */
};

/* A metric over the frames: mean, and the first frame reaching the minimum and the maximum.
 * n == 0 (flicker of a one-frame film): mean, min, max are NAN and the frames −1. */
struct vf_quality_stat {
    double mean, min, max;
    int64_t min_frame, max_frame;
    int64_t n;
};

struct vf_quality_summary {
    int64_t first_frame;        /* the span's first frame (0 for the film) */
    int64_t frames;
    struct vf_quality_stat psnr_rgb, ssim_rgb, mse_rgb;
    struct vf_quality_stat psnr_ab, ssim_ab, mse_ab;
    double psnr_rgb_pooled, psnr_ab_pooled;   /* PSNR of the mean MSE over all frames */
    struct vf_quality_stat colourfulness_truth, colourfulness_output;
    struct vf_quality_stat flicker_truth, flicker_output;   /* frames 1..N−1 (of a shot:
                                                               all but its first) */
    /* the film's flicker without the jumps across its cuts: the frames that are not the first
     * of a shot (vf_quality_cut); the same as flicker_* without cuts, and for a shot */
    struct vf_quality_stat flicker_truth_in_shots, flicker_output_in_shots;
};

struct vf_quality;

/* A state for width × height frames; threads: OpenMP threads (0: all cores). Frames smaller
 * than the SSIM window in either direction are VF_EUNSUPPORTED. */
int vf_quality_create(struct vf_quality **out, int width, int height, int threads,
                      struct vf_error *err);
/* Add the next frame pair (frame index = the number added before). Both images must be
 * width × height (VF_EINVAL otherwise). `frame` (may be NULL) gets this pair's metrics. */
int vf_quality_add(struct vf_quality *q, const struct vf_rgb_image *truth,
                   const struct vf_rgb_image *output, struct vf_quality_frame *frame,
                   struct vf_error *err);
/* The metrics over the frames added so far. */
void vf_quality_summarize(const struct vf_quality *q, struct vf_quality_summary *out);
/* Shots (docs/EVAL.md "Shots"): the next frame added starts a new shot. The first frame
 * always starts one, so a cut before it, or a second cut before the next frame, changes
 * nothing. A shot's flicker leaves out its first frame (the jump across the cut); the film's
 * flicker keeps it, its flicker_*_in_shots leave it out. */
void vf_quality_cut(struct vf_quality *q);
/* The shots so far: 0 before the first frame, 1 + the cuts that took effect after it. */
size_t vf_quality_shots(const struct vf_quality *q);
/* Shot k's metrics (k < vf_quality_shots; else an empty span): its frames only, with the
 * film's frame indices (first_frame, min_frame, max_frame). */
void vf_quality_summarize_shot(const struct vf_quality *q, size_t k,
                               struct vf_quality_summary *out);
void vf_quality_destroy(struct vf_quality **q);
/* 10·log10(range² / mse), capped at VF_QUALITY_PSNR_CAP (mse 0 included). */
double vf_quality_psnr(double mse, double range);

#endif /* VF_KERNELS_H */
