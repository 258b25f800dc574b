/*
 * kernels/ops.c: the C operators of the CPU backend (kernels.h, "operators"). Tensors are NHWC
 * with a pixel stride (channel-slice views), stored as f32, bf16 or f16; arithmetic is f32 (a few
 * reductions in double, said where), loads and stores go through kernels/elem.h's conversions.
 *
 * Determinism: every output value is computed by one loop iteration, in a fixed order that does
 * not depend on the thread count: reductions (instance-norm statistics, l2 norms, centring
 * means, softmax sums, box sums) run sequentially inside the iteration that owns the output.
 * No OpenMP reduction clause, no atomics. So a result is bit-identical with 1 or N threads.
 *
 * No allocation: the few per-iteration buffers are small fixed arrays on the stack; the guided
 * upsampling uses the caller's scratch tensor.
 *
 * CUDA: after its checks, each operator hands a CUDA backend's tensors to its launcher in
 * kernels/cuda_ops.h (kernels/elem_cuda.cu, kernels/ops_cuda.cu), enqueued on the backend's
 * stream; the per-element bodies of both sides are kernels/elem.h's (one source, two targets).
 */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "kernels/elem.h"
#include "kernels/internal.h"
#include "kernels/lanes.h"
#ifdef VF_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

/* Channels handled per stack buffer. */
#define CHUNK 64
/* Channels per instance-norm task (one thread computes their statistics). */
#define IN_CH 8
/* Loops smaller than this (elements touched) stay on one thread; the result is the same. */
#define PAR_MIN 16384L
/* vf_op_l2norm with centring keeps one mean per channel on the stack. */
#define L2_CENTER_MAX 8192

/* ============================== checks ===================================================== */

static const char *dt_name(enum vf_dtype dt)
{
    switch (dt) {
    case VF_F32: return "f32";
    case VF_BF16: return "bf16";
    case VF_F16: return "f16";
    }
    return "?";
}

static bool dt_valid(enum vf_dtype dt) { return dt == VF_F32 || dt == VF_BF16 || dt == VF_F16; }

/* "2×5×27×48 f32" (n×c×h×w), plus the pixel stride for a view. */
static const char *shape_str(const struct vf_tensor *t, char *buf, size_t len)
{
    if (!t) {
        snprintf(buf, len, "(none)");
        return buf;
    }
    int k = snprintf(buf, len, "%d×%d×%d×%d %s", t->n, t->c, t->h, t->w, dt_name(t->dtype));
    if (t->pix_stride != t->c && k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, " (view, pixel stride %d)", t->pix_stride);
    return buf;
}

static int bad_shapes(struct vf_error *err, const char *op, const char *na,
                      const struct vf_tensor *a, const char *nb, const struct vf_tensor *b,
                      const char *why)
{
    char sa[96], sb[96];
    return vf_error_set(err, VF_EINVAL, "%s: %s is %s but %s is %s (%s)", op, na,
                        shape_str(a, sa, sizeof sa), nb, shape_str(b, sb, sizeof sb), why);
}

/* A usable tensor: data, positive sizes, a valid dtype, pix_stride ≥ c; on `be` when given.
 * Each operator then runs on its tensors' backend: the C loops below on the CPU, the launchers
 * of kernels/cuda_ops.h (kernels/elem_cuda.cu, kernels/ops_cuda.cu) on a GPU. */
static int check_tensor(struct vf_error *err, const char *op, const char *name,
                        const struct vf_tensor *t, const struct vf_backend *be)
{
    char s[96];
    if (!t)
        return vf_error_set(err, VF_EINVAL, "%s: %s is missing", op, name);
    if (!t->data || !t->be)
        return vf_error_set(err, VF_EINVAL, "%s: %s (%s) has no memory or no backend", op, name,
                            shape_str(t, s, sizeof s));
    if (!dt_valid(t->dtype) || t->n < 1 || t->c < 1 || t->h < 1 || t->w < 1 ||
        t->pix_stride < t->c)
        return vf_error_set(err, VF_EINVAL, "%s: %s has an invalid shape or dtype: %s", op, name,
                            shape_str(t, s, sizeof s));
    if (be && t->be != be)
        return vf_error_set(err, VF_EINVAL, "%s: %s (%s) belongs to another backend", op, name,
                            shape_str(t, s, sizeof s));
#ifndef VF_HAVE_CUDA
    /* a build without the CUDA backend never creates one: not a tensor of this build */
    if (t->be->device != VF_DEVICE_CPU)
        return vf_error_set(err, VF_EUNSUPPORTED, "%s: %s is on a GPU but this vaefarm was "
                            "built without the CUDA backend", op, name);
#endif
    return VF_OK;
}

static bool same_shape(const struct vf_tensor *a, const struct vf_tensor *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

static bool same_image(const struct vf_tensor *a, const struct vf_tensor *b)
{
    return a->n == b->n && a->h == b->h && a->w == b->w;
}

#define TRYC(expr)                                                                             \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != VF_OK)                                                                      \
            return rc_;                                                                        \
    } while (0)

/* A per-channel f32 parameter vector (slopes, gamma, beta): c values, contiguous. */
static int check_vec(struct vf_error *err, const char *op, const char *name,
                     const struct vf_tensor *v, int c, const struct vf_backend *be)
{
    char s[96];
    TRYC(check_tensor(err, op, name, v, be));
    size_t pix = (size_t)v->n * (size_t)v->h * (size_t)v->w;
    if (v->dtype != VF_F32 || pix * (size_t)v->c != (size_t)c || (pix > 1 && v->pix_stride != v->c))
        return vf_error_set(err, VF_EINVAL, "%s: %s must be a dense f32 tensor of %d values "
                            "(1×%d×1×1), not %s", op, name, c, c, shape_str(v, s, sizeof s));
    return VF_OK;
}

static int check_act(struct vf_error *err, const char *op, enum vf_act act, int c,
                     const struct vf_tensor *slopes, const struct vf_backend *be)
{
    switch (act) {
    case VF_ACT_NONE:
    case VF_ACT_RELU:
    case VF_ACT_LRELU:
    case VF_ACT_TANH: return VF_OK;
    case VF_ACT_PRELU: return check_vec(err, op, "slopes", slopes, c, be);
    }
    return vf_error_set(err, VF_EINVAL, "%s: unknown activation %d", op, (int)act);
}

/* ============================== element access ============================================= */

static inline size_t px_off(const struct vf_tensor *t, long p)
{
    return (size_t)p * (size_t)t->pix_stride;
}

static inline float ld1(const struct vf_tensor *t, size_t off)
{
    switch (t->dtype) {
    case VF_BF16: return vf_bf16_to_f32(((const uint16_t *)t->data)[off]);
    case VF_F16: return vf_f16_to_f32(((const uint16_t *)t->data)[off]);
    default: return ((const float *)t->data)[off];
    }
}

static inline void st1(const struct vf_tensor *t, size_t off, float v)
{
    switch (t->dtype) {
    case VF_BF16: ((uint16_t *)t->data)[off] = vf_f32_to_bf16(v); break;
    case VF_F16: ((uint16_t *)t->data)[off] = vf_f32_to_f16(v); break;
    default: ((float *)t->data)[off] = v; break;
    }
}

/* n consecutive elements from element offset `off` ↔ f32. */
static inline void ld_span(const struct vf_tensor *t, size_t off, int n, float *out)
{
    switch (t->dtype) {
    case VF_BF16: {
        const uint16_t *p = (const uint16_t *)t->data + off;
        for (int i = 0; i < n; i++)
            out[i] = vf_bf16_to_f32(p[i]);
        break;
    }
    case VF_F16: {
        const uint16_t *p = (const uint16_t *)t->data + off;
        for (int i = 0; i < n; i++)
            out[i] = vf_f16_to_f32(p[i]);
        break;
    }
    default: memcpy(out, (const float *)t->data + off, (size_t)n * sizeof(float)); break;
    }
}

static inline void st_span(const struct vf_tensor *t, size_t off, int n, const float *in)
{
    switch (t->dtype) {
    case VF_BF16: {
        uint16_t *p = (uint16_t *)t->data + off;
        for (int i = 0; i < n; i++)
            p[i] = vf_f32_to_bf16(in[i]);
        break;
    }
    case VF_F16: {
        uint16_t *p = (uint16_t *)t->data + off;
        for (int i = 0; i < n; i++)
            p[i] = vf_f32_to_f16(in[i]);
        break;
    }
    default: memmove((float *)t->data + off, in, (size_t)n * sizeof(float)); break;
    }
}

static inline void act_span(float *x, int n, enum vf_act act, float alpha, const float *slopes)
{
    switch (act) {
    case VF_ACT_RELU:
        for (int i = 0; i < n; i++)
            x[i] = vf_relu(x[i]);
        break;
    case VF_ACT_LRELU:
        for (int i = 0; i < n; i++)
            x[i] = vf_lrelu(x[i], alpha);
        break;
    case VF_ACT_PRELU:
        for (int i = 0; i < n; i++)
            x[i] = vf_prelu(x[i], slopes[i]);
        break;
    case VF_ACT_TANH:
        for (int i = 0; i < n; i++)
            x[i] = vf_tanh(x[i]);
        break;
    default: break;
    }
}

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

static long npix(const struct vf_tensor *t) { return (long)t->n * t->h * t->w; }

/* ============================== act ======================================================== */

int vf_op_act(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_act act, float alpha,
              const struct vf_tensor *slopes, struct vf_error *err)
{
    static const char op[] = "vf_op_act";
    TRYC(check_tensor(err, op, "src", src, NULL));
    TRYC(check_tensor(err, op, "dst", dst, src->be));
    if (!same_shape(src, dst))
        return bad_shapes(err, op, "src", src, "dst", dst, "they must have the same shape");
    TRYC(check_act(err, op, act, src->c, slopes, src->be));
    const float *sl = act == VF_ACT_PRELU ? (const float *)slopes->data : NULL;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(src->be))
        return vf_cuda_act(src, dst, act, alpha, sl, vf_cuda_stream(src->be), err);
#endif
    const long np = npix(src);
    const int c = src->c;
    vf_be_enter_(src->be);
#pragma omp parallel for schedule(static) if (np * c > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float buf[CHUNK];
        for (int c0 = 0; c0 < c; c0 += CHUNK) {
            int nc = imin(CHUNK, c - c0);
            ld_span(src, px_off(src, p) + (size_t)c0, nc, buf);
            act_span(buf, nc, act, alpha, sl ? sl + c0 : NULL);
            st_span(dst, px_off(dst, p) + (size_t)c0, nc, buf);
        }
    }
    return VF_OK;
}

/* ============================== instance norm ============================================== */

int vf_op_instance_norm(const struct vf_tensor *src, struct vf_tensor *dst, float eps,
                        const struct vf_tensor *gamma, const struct vf_tensor *beta,
                        enum vf_act act, float alpha, const struct vf_tensor *slopes,
                        struct vf_error *err)
{
    static const char op[] = "vf_op_instance_norm";
    TRYC(check_tensor(err, op, "src", src, NULL));
    TRYC(check_tensor(err, op, "dst", dst, src->be));
    if (!same_shape(src, dst))
        return bad_shapes(err, op, "src", src, "dst", dst, "they must have the same shape");
    if (gamma)
        TRYC(check_vec(err, op, "gamma", gamma, src->c, src->be));
    if (beta)
        TRYC(check_vec(err, op, "beta", beta, src->c, src->be));
    TRYC(check_act(err, op, act, src->c, slopes, src->be));
    if (!(eps >= 0.0f) || !isfinite(eps))
        return vf_error_set(err, VF_EINVAL, "%s: eps must be a finite value ≥ 0, not %g", op,
                            (double)eps);
    const float *g = gamma ? (const float *)gamma->data : NULL;
    const float *b = beta ? (const float *)beta->data : NULL;
    const float *sl = act == VF_ACT_PRELU ? (const float *)slopes->data : NULL;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(src->be))
        return vf_cuda_instance_norm(src, dst, eps, g, b, act, alpha, sl,
                                     vf_cuda_stream(src->be), err);
#endif
    const int c = src->c, nchunk = (c + IN_CH - 1) / IN_CH;
    const long hw = (long)src->h * src->w, ntask = (long)src->n * nchunk;
    vf_be_enter_(src->be);
    /* One task = one image × IN_CH channels: their statistics (two passes, double, positions in
     * order), then the normalised, affine, activated output of those channels. Tasks touch
     * disjoint channels, so in place is safe. */
#pragma omp parallel for schedule(static) if (ntask > 1 && hw * c > PAR_MIN)
    for (long t = 0; t < ntask; t++) {
        const long img = t / nchunk;
        const int c0 = (int)(t % nchunk) * IN_CH, nc = imin(IN_CH, c - c0);
        const long base = img * hw;
        float buf[IN_CH];
        double sum[IN_CH] = {0}, sq[IN_CH] = {0};
        for (long q = 0; q < hw; q++) {
            ld_span(src, px_off(src, base + q) + (size_t)c0, nc, buf);
            for (int k = 0; k < nc; k++)
                sum[k] += (double)buf[k];
        }
        double mean[IN_CH];
        for (int k = 0; k < nc; k++)
            mean[k] = sum[k] / (double)hw;
        for (long q = 0; q < hw; q++) {
            ld_span(src, px_off(src, base + q) + (size_t)c0, nc, buf);
            for (int k = 0; k < nc; k++) {
                double d = (double)buf[k] - mean[k];
                sq[k] += d * d;
            }
        }
        float mf[IN_CH], rs[IN_CH], gk[IN_CH], bk[IN_CH];
        for (int k = 0; k < nc; k++) {
            mf[k] = (float)mean[k];
            rs[k] = vf_in_rstd(sq[k], hw, eps);
            gk[k] = g ? g[c0 + k] : 1.0f;
            bk[k] = b ? b[c0 + k] : 0.0f;
        }
        for (long q = 0; q < hw; q++) {
            ld_span(src, px_off(src, base + q) + (size_t)c0, nc, buf);
            for (int k = 0; k < nc; k++)
                buf[k] = vf_in_affine(buf[k], mf[k], rs[k], gk[k], bk[k]);
            act_span(buf, nc, act, alpha, sl ? sl + c0 : NULL);
            st_span(dst, px_off(dst, base + q) + (size_t)c0, nc, buf);
        }
    }
    return VF_OK;
}

/* ============================== resize ===================================================== */

/* The source indices and weights: kernels/elem.h's vf_nearest_src, vf_linear_src (PyTorch's
 * conventions, shared with the CUDA kernels). */

/* Bilinear resizes of this many channels or fewer take each value with ld1 and st1. */
#define RESIZE_FEW 4
int vf_op_resize(const struct vf_tensor *src, struct vf_tensor *dst, enum vf_resize mode,
                 struct vf_error *err)
{
    static const char op[] = "vf_op_resize";
    TRYC(check_tensor(err, op, "src", src, NULL));
    TRYC(check_tensor(err, op, "dst", dst, src->be));
    if (src->n != dst->n || src->c != dst->c)
        return bad_shapes(err, op, "src", src, "dst", dst,
                          "they must have the same images and channels");
    if (mode != VF_RESIZE_NEAREST && mode != VF_RESIZE_BILINEAR)
        return vf_error_set(err, VF_EINVAL, "%s: unknown mode %d", op, (int)mode);
    if (src->data == dst->data)
        return vf_error_set(err, VF_EINVAL, "%s: cannot run in place", op);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(src->be))
        return vf_cuda_resize(src, dst, mode, vf_cuda_stream(src->be), err);
#endif
    const int c = src->c, ih = src->h, iw = src->w, oh = dst->h, ow = dst->w;
    const long rows = (long)dst->n * oh;
    vf_be_enter_(src->be);
#pragma omp parallel for schedule(static) if (rows * ow * c > PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const long img = r / oh;
        const int y = (int)(r % oh);
        const long irow = img * ih;
        float a[CHUNK], b[CHUNK], cc[CHUNK], d[CHUNK];
        if (mode == VF_RESIZE_NEAREST) {
            const int sy = vf_nearest_src(y, ih, oh);
            for (int x = 0; x < ow; x++) {
                const int sx = vf_nearest_src(x, iw, ow);
                const long sp = (irow + sy) * iw + sx, dp = r * ow + x;
                for (int c0 = 0; c0 < c; c0 += CHUNK) {
                    int nc = imin(CHUNK, c - c0);
                    ld_span(src, px_off(src, sp) + (size_t)c0, nc, a);
                    st_span(dst, px_off(dst, dp) + (size_t)c0, nc, a);
                }
            }
        } else {
            int y0, y1;
            float hy0, hy1;
            vf_linear_src(y, ih, oh, &y0, &y1, &hy0, &hy1);
            for (int x = 0; x < ow; x++) {
                int x0, x1;
                float wx0, wx1;
                vf_linear_src(x, iw, ow, &x0, &x1, &wx0, &wx1);
                const long p00 = (irow + y0) * iw + x0, p01 = (irow + y0) * iw + x1;
                const long p10 = (irow + y1) * iw + x0, p11 = (irow + y1) * iw + x1;
                const long dp = r * ow + x;
                if (c <= RESIZE_FEW) {         /* a, b or R′G′B′ at a film's size: no spans */
                    const size_t o00 = px_off(src, p00), o01 = px_off(src, p01);
                    const size_t o10 = px_off(src, p10), o11 = px_off(src, p11);
                    const size_t od = px_off(dst, dp);
                    for (int k = 0; k < c; k++)
                        st1(dst, od + (size_t)k,
                            vf_bilerp(hy0, hy1, wx0, wx1, ld1(src, o00 + (size_t)k),
                                      ld1(src, o01 + (size_t)k), ld1(src, o10 + (size_t)k),
                                      ld1(src, o11 + (size_t)k)));
                    continue;
                }
                for (int c0 = 0; c0 < c; c0 += CHUNK) {
                    int nc = imin(CHUNK, c - c0);
                    ld_span(src, px_off(src, p00) + (size_t)c0, nc, a);
                    ld_span(src, px_off(src, p01) + (size_t)c0, nc, b);
                    ld_span(src, px_off(src, p10) + (size_t)c0, nc, cc);
                    ld_span(src, px_off(src, p11) + (size_t)c0, nc, d);
                    for (int k = 0; k < nc; k++)
                        a[k] = vf_bilerp(hy0, hy1, wx0, wx1, a[k], b[k], cc[k], d[k]);
                    st_span(dst, px_off(dst, dp) + (size_t)c0, nc, a);
                }
            }
        }
    }
    return VF_OK;
}

/* ============================== add, gated add, concat, copy =============================== */

int vf_op_add(const struct vf_tensor *a, const struct vf_tensor *b, struct vf_tensor *dst,
              struct vf_error *err)
{
    static const char op[] = "vf_op_add";
    TRYC(check_tensor(err, op, "a", a, NULL));
    TRYC(check_tensor(err, op, "b", b, a->be));
    TRYC(check_tensor(err, op, "dst", dst, a->be));
    if (!same_shape(a, b))
        return bad_shapes(err, op, "a", a, "b", b, "they must have the same shape");
    if (!same_shape(a, dst))
        return bad_shapes(err, op, "a", a, "dst", dst, "they must have the same shape");
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(a->be))
        return vf_cuda_add(a, b, dst, vf_cuda_stream(a->be), err);
#endif
    const long np = npix(a);
    const int c = a->c;
    vf_be_enter_(a->be);
#pragma omp parallel for schedule(static) if (np * c > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float x[CHUNK], y[CHUNK];
        for (int c0 = 0; c0 < c; c0 += CHUNK) {
            int nc = imin(CHUNK, c - c0);
            ld_span(a, px_off(a, p) + (size_t)c0, nc, x);
            ld_span(b, px_off(b, p) + (size_t)c0, nc, y);
            for (int k = 0; k < nc; k++)
                x[k] += y[k];
            st_span(dst, px_off(dst, p) + (size_t)c0, nc, x);
        }
    }
    return VF_OK;
}

/* Copy channels of src into channels [dc0, dc0 + src.c) of dst (same images). */
static void copy_into(const struct vf_tensor *src, const struct vf_tensor *dst, int dc0)
{
    const long np = npix(src);
    const int c = src->c;
#pragma omp parallel for schedule(static) if (np * c > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float x[CHUNK];
        for (int c0 = 0; c0 < c; c0 += CHUNK) {
            int nc = imin(CHUNK, c - c0);
            ld_span(src, px_off(src, p) + (size_t)c0, nc, x);
            st_span(dst, px_off(dst, p) + (size_t)(dc0 + c0), nc, x);
        }
    }
}

/* factor (named fname, against the tensor named iname): NULL, or a dense f32 n × 1 × 1 × 1 of
 * img's images on its backend (a gated add's factor, a motion factor's dst). */
static int check_factor(struct vf_error *err, const char *op, const char *fname,
                        const struct vf_tensor *factor, const char *iname,
                        const struct vf_tensor *img, bool per_pixel)
{
    if (!factor)
        return VF_OK;
    TRYC(check_tensor(err, op, fname, factor, img->be));
    const bool one = factor->h == 1 && factor->w == 1;
    const bool px = factor->h == img->h && factor->w == img->w;
    if (factor->dtype != VF_F32 || factor->n != img->n || factor->c != 1 || !(one || (per_pixel && px)) ||
        factor->pix_stride != 1)
        return bad_shapes(err, op, fname, factor, iname, img,
                          per_pixel ? "it must be a dense f32 tensor of one value per image (n × 1 × 1 × 1) "
                                      "or per pixel (n × 1 × h × w)"
                                    : "it must be a dense f32 tensor of one value per image (n × 1 × 1 × 1)");
    return VF_OK;
}

/* The pixels that share one value of a factor checked by check_factor: 1 per pixel, h·w per image. */
static long factor_div(const struct vf_tensor *factor, const struct vf_tensor *img)
{
    return factor && factor->h == 1 && factor->w == 1 ? (long)img->h * img->w : 1;
}

int vf_op_gated_add(const struct vf_tensor *o, const struct vf_tensor *w, float scale,
                    const struct vf_tensor *factor, struct vf_tensor *dst, struct vf_error *err)
{
    static const char op[] = "vf_op_gated_add";
    TRYC(check_tensor(err, op, "o", o, NULL));
    TRYC(check_tensor(err, op, "w", w, o->be));
    TRYC(check_tensor(err, op, "dst", dst, o->be));
    if (!same_image(o, w) || o->c != w->c + 1 || w->c > CHUNK)
        return bad_shapes(err, op, "o", o, "w", w,
                          "o must have w's images and one more channel, the gate; w at most 64 channels");
    if (!same_shape(w, dst))
        return bad_shapes(err, op, "w", w, "dst", dst, "they must have the same shape");
    TRYC(check_factor(err, op, "factor", factor, "w", w, true));
    const long fdiv = factor_div(factor, w);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(o->be))
        return vf_cuda_gated_add(o, w, scale, factor, fdiv, dst, vf_cuda_stream(o->be), err);
#endif
    const long np = npix(o);
    const int c = w->c;
    vf_be_enter_(o->be);
#pragma omp parallel for schedule(static) if (np * c > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float x[CHUNK + 1], y[CHUNK];
        const float f = factor ? ld1(factor, px_off(factor, p / fdiv)) : 1.0f;
        ld_span(o, px_off(o, p), c + 1, x);
        ld_span(w, px_off(w, p), c, y);
        for (int k = 0; k < c; k++)
            y[k] = vf_gated(y[k], x[k], x[c], scale, f);
        st_span(dst, px_off(dst, p), c, y);
    }
    return VF_OK;
}

/* C.gate_motion_radius's factor at pixel (y, x) of the image at pixel offset p0 (H × W): the
 * mean of |a − b| over the (2r + 1)² window clipped at the borders, in double, row by row
 * (ops_cuda.cu's k_motion_map sums in the same order). */
static float motion_window(const struct vf_tensor *a, const struct vf_tensor *b, long p0, int H, int W,
                           int y, int x, int r, float kappa)
{
    const int y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= H ? H - 1 : y + r;
    const int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= W ? W - 1 : x + r;
    double s = 0.0;
    for (int v = y0; v <= y1; v++)
        for (int u = x0; u <= x1; u++) {
            const long p = p0 + (long)v * W + u;
            s += fabs((double)ld1(a, px_off(a, p)) - (double)ld1(b, px_off(b, p)));
        }
    return vf_motion_factor(s / ((double)(y1 - y0 + 1) * (x1 - x0 + 1)), kappa);
}

/* One row y of the per-pixel factor (image at p0), each pixel's window summed in
 * motion_window's order (rows outer, columns inner, in double) but a window row at a time for
 * the whole row: drow holds that row's |(double)a − (double)b|, acc each pixel's running sum
 * (W doubles each), and the pixels whose windows are not clipped take it 8 at a time. */
typedef double mf_d __attribute__((vector_size(8 * sizeof(double))));
#define MOTION_ROW_MAX 4096     /* widths up to this: 64 KiB of stack per thread */
static VF_SIMD_CLONES_512 VF_FLATTEN void motion_row(const struct vf_tensor *a,
                                                     const struct vf_tensor *b, long p0, int H,
                                                     int W, int y, int r, float kappa,
                                                     struct vf_tensor *dst, double *acc,
                                                     double *drow)
{
    const int y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= H ? H - 1 : y + r;
    for (int x = 0; x < W; x++)
        acc[x] = 0.0;
    for (int v = y0; v <= y1; v++) {
        for (int u = 0; u < W; u++) {
            const long p = p0 + (long)v * W + u;
            drow[u] = fabs((double)ld1(a, px_off(a, p)) - (double)ld1(b, px_off(b, p)));
        }
        int x = 0;
        while (x < W) {
            if (x - r < 0 || x + 7 + r > W - 1) {   /* a clipped window: one pixel */
                const int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= W ? W - 1 : x + r;
                for (int u = x0; u <= x1; u++)
                    acc[x] += drow[u];
                x++;
                continue;
            }
            mf_d s8;
            memcpy(&s8, acc + x, sizeof s8);
            for (int u = x - r; u <= x + r; u++) {
                mf_d d8;
                memcpy(&d8, drow + u, sizeof d8);
                s8 += d8;
            }
            memcpy(acc + x, &s8, sizeof s8);
            x += 8;
        }
    }
    for (int x = 0; x < W; x++) {
        const int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= W ? W - 1 : x + r;
        st1(dst, px_off(dst, p0 + (long)y * W + x),
            vf_motion_factor(acc[x] / ((double)(y1 - y0 + 1) * (x1 - x0 + 1)), kappa));
    }
}

int vf_op_motion_factor(const struct vf_tensor *a, const struct vf_tensor *b, float kappa,
                        int radius, struct vf_tensor *dst, struct vf_error *err)
{
    static const char op[] = "vf_op_motion_factor";
    TRYC(check_tensor(err, op, "a", a, NULL));
    TRYC(check_tensor(err, op, "b", b, a->be));
    TRYC(check_tensor(err, op, "dst", dst, a->be));
    if (a->c != 1 || !same_shape(a, b))
        return bad_shapes(err, op, "a", a, "b", b, "they must have the same shape, one channel");
    if (radius > VF_MOTION_RADIUS_MAX)
        return vf_error_set(err, VF_EINVAL, "%s: radius must be at most %d, got %d", op,
                            VF_MOTION_RADIUS_MAX, radius);
    TRYC(check_factor(err, op, "dst", dst, "a", a, radius >= 0));
    if (radius >= 0 && (dst->h != a->h || dst->w != a->w))
        return bad_shapes(err, op, "dst", dst, "a", a, "a factor per pixel (radius >= 0) must be n × 1 × h × w");
    if (!(kappa >= 1e-6f) || !isfinite(kappa))
        return vf_error_set(err, VF_EINVAL, "%s: kappa must be a number >= 1e-6, got %g", op,
                            (double)kappa);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(a->be))
        return vf_cuda_motion_factor(a, b, kappa, radius, dst, vf_cuda_stream(a->be), err);
#endif
    const long hw = (long)a->h * a->w;
    vf_be_enter_(a->be);
    if (radius >= 0 && a->w <= MOTION_ROW_MAX) {   /* a row at a time (motion_row): the same bits */
        const int H = a->h, W = a->w;
#pragma omp parallel if (npix(a) * (2 * radius + 1) * (2 * radius + 1) > PAR_MIN)
        {
            double acc[MOTION_ROW_MAX], drow[MOTION_ROW_MAX];
#pragma omp for schedule(static)
            for (long row = 0; row < (long)a->n * H; row++)
                motion_row(a, b, row / H * hw, H, W, (int)(row % H), radius, kappa, dst, acc, drow);
        }
        return VF_OK;
    }
    if (radius >= 0) {   /* each pixel's window in row-major order (the CUDA kernel's order) */
        const int H = a->h, W = a->w;
#pragma omp parallel for schedule(static) if (npix(a) * (2 * radius + 1) * (2 * radius + 1) > PAR_MIN)
        for (long p = 0; p < npix(a); p++) {
            const long i = p / hw, q = p - i * hw;
            const int y = (int)(q / W), x = (int)(q - (long)y * W);
            st1(dst, px_off(dst, p), motion_window(a, b, i * hw, H, W, y, x, radius, kappa));
        }
        return VF_OK;
    }
    for (int i = 0; i < a->n; i++) {   /* one image's sum in pixel order (the same on any thread count) */
        double s = 0.0;
        for (long p = (long)i * hw; p < (long)(i + 1) * hw; p++)
            s += fabs((double)ld1(a, px_off(a, p)) - (double)ld1(b, px_off(b, p)));
        st1(dst, px_off(dst, i), vf_motion_factor(s / (double)hw, kappa));
    }
    return VF_OK;
}

int vf_op_concat(const struct vf_tensor *const *srcs, int n, struct vf_tensor *dst,
                 struct vf_error *err)
{
    static const char op[] = "vf_op_concat";
    TRYC(check_tensor(err, op, "dst", dst, NULL));
    if (!srcs || n < 1)
        return vf_error_set(err, VF_EINVAL, "%s: no sources", op);
    long total = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "srcs[%d]", i);
        TRYC(check_tensor(err, op, name, srcs[i], dst->be));
        if (!same_image(srcs[i], dst))
            return bad_shapes(err, op, name, srcs[i], "dst", dst,
                              "they must have the same images, height and width");
        total += srcs[i]->c;
    }
    if (total != dst->c) {
        char s[96];
        return vf_error_set(err, VF_EINVAL, "%s: the sources have %ld channels in all but dst "
                            "is %s", op, total, shape_str(dst, s, sizeof s));
    }
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(dst->be))
        return vf_cuda_concat(srcs, n, dst, vf_cuda_stream(dst->be), err);
#endif
    vf_be_enter_(dst->be);
    int dc0 = 0;
    for (int i = 0; i < n; i++) {
        copy_into(srcs[i], dst, dc0);
        dc0 += srcs[i]->c;
    }
    return VF_OK;
}

int vf_op_copy(const struct vf_tensor *src, struct vf_tensor *dst, struct vf_error *err)
{
    static const char op[] = "vf_op_copy";
    TRYC(check_tensor(err, op, "src", src, NULL));
    TRYC(check_tensor(err, op, "dst", dst, src->be));
    if (!same_shape(src, dst))
        return bad_shapes(err, op, "src", src, "dst", dst, "they must have the same shape");
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(src->be))
        return vf_cuda_cast(src, dst, vf_cuda_stream(src->be), err);
#endif
    vf_be_enter_(src->be);
    copy_into(src, dst, 0);
    return VF_OK;
}

/* ============================== l2norm ===================================================== */

int vf_op_l2norm(const struct vf_tensor *src, struct vf_tensor *dst, bool center, float eps,
                 struct vf_error *err)
{
    static const char op[] = "vf_op_l2norm";
    TRYC(check_tensor(err, op, "src", src, NULL));
    TRYC(check_tensor(err, op, "dst", dst, src->be));
    if (!same_shape(src, dst))
        return bad_shapes(err, op, "src", src, "dst", dst, "they must have the same shape");
    if (!(eps >= 0.0f) || !isfinite(eps))
        return vf_error_set(err, VF_EINVAL, "%s: eps must be a finite value ≥ 0, not %g", op,
                            (double)eps);
    const int c = src->c;
    if (center && c > L2_CENTER_MAX)
        return vf_error_set(err, VF_EUNSUPPORTED, "%s: centring supports at most %d channels, "
                            "not %d", op, L2_CENTER_MAX, c);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(src->be))
        return vf_cuda_l2norm(src, dst, center, eps, vf_cuda_stream(src->be), err);
#endif
    const long hw = (long)src->h * src->w;
    float mean[L2_CENTER_MAX];
    vf_be_enter_(src->be);
    for (int img = 0; img < src->n; img++) {
        const long base = (long)img * hw;
        if (center) {
            /* each channel's mean over the positions, double, positions in order */
            const int nchunk = (c + IN_CH - 1) / IN_CH;
#pragma omp parallel for schedule(static) if (nchunk > 1 && hw * c > PAR_MIN)
            for (int t = 0; t < nchunk; t++) {
                const int c0 = t * IN_CH, nc = imin(IN_CH, c - c0);
                double sum[IN_CH] = {0};
                float buf[IN_CH];
                for (long q = 0; q < hw; q++) {
                    ld_span(src, px_off(src, base + q) + (size_t)c0, nc, buf);
                    for (int k = 0; k < nc; k++)
                        sum[k] += (double)buf[k];
                }
                for (int k = 0; k < nc; k++)
                    mean[c0 + k] = (float)(sum[k] / (double)hw);
            }
        }
        /* per position: ‖x − μ‖ (double, channels in order), then (x − μ) / max(‖·‖, eps) */
#pragma omp parallel for schedule(static) if (hw * c > PAR_MIN)
        for (long q = 0; q < hw; q++) {
            const size_t so = px_off(src, base + q), doff = px_off(dst, base + q);
            float buf[CHUNK];
            double ss = 0.0;
            for (int c0 = 0; c0 < c; c0 += CHUNK) {
                int nc = imin(CHUNK, c - c0);
                ld_span(src, so + (size_t)c0, nc, buf);
                for (int k = 0; k < nc; k++) {
                    float d = center ? buf[k] - mean[c0 + k] : buf[k];
                    ss += (double)d * (double)d;
                }
            }
            const float den = vf_l2_den(ss, eps);
            for (int c0 = 0; c0 < c; c0 += CHUNK) {
                int nc = imin(CHUNK, c - c0);
                ld_span(src, so + (size_t)c0, nc, buf);
                for (int k = 0; k < nc; k++)
                    buf[k] = (center ? buf[k] - mean[c0 + k] : buf[k]) / den;
                st_span(dst, doff + (size_t)c0, nc, buf);
            }
        }
    }
    return VF_OK;
}

/* ============================== attention rows ============================================= */

/* Value channels accumulated per pass over a row (vc ≠ 2). */
#define ATT_VC 16

/* exp of the softmax weights: kernels/elem.h's vf_att_exp (shared with the CUDA kernel). */

/* Lanes of the column loops, and columns per f32 block: inside a block each lane sums its
 * ATT_B / ATT_L columns in f32; after the block the lanes are added, in lane order, to the row's
 * double sums. The order is fixed by (ncols, ATT_L, ATT_B) alone. */
#define ATT_L 16
#define ATT_B 64

int vf_op_attention_rows(struct vf_backend *be, const float *f, int rows, int ncols, int ld,
                         float tau, const float *v, int vc, float *s, float *out,
                         struct vf_error *err)
{
    static const char op[] = "vf_op_attention_rows";
    if (!be)
        return vf_error_set(err, VF_EINVAL, "%s: no backend", op);
#ifndef VF_HAVE_CUDA
    if (be->device != VF_DEVICE_CPU)
        return vf_error_set(err, VF_EUNSUPPORTED, "%s: a GPU backend, but this vaefarm was "
                            "built without the CUDA backend", op);
#endif
    if (rows < 0 || ncols < 1 || ld < ncols || vc < 1)
        return vf_error_set(err, VF_EINVAL, "%s: invalid sizes: %d rows × %d columns (leading "
                            "dimension %d), %d value channels", op, rows, ncols, ld, vc);
    if (!(tau > 0.0f) || !isfinite(tau))
        return vf_error_set(err, VF_EINVAL, "%s: the temperature must be > 0, not %g", op,
                            (double)tau);
    if (rows == 0)
        return VF_OK;
    if (!f || !v || !out)
        return vf_error_set(err, VF_EINVAL, "%s: missing scores, values or output", op);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be))
        return vf_cuda_attention_rows(f, rows, ncols, ld, tau, v, vc, s, out,
                                      vf_cuda_stream(be), err);
#endif
    vf_be_enter_(be);
#pragma omp parallel for schedule(static) if ((long)rows * ncols > PAR_MIN)
    for (int r = 0; r < rows; r++) {
        const float *fr = f + (size_t)r * (size_t)ld;
        /* max: lane l takes columns l, l + ATT_L, ...; ties and NaN as a plain scan from fr[0] */
        float ml[ATT_L];
        for (int l = 0; l < ATT_L; l++)
            ml[l] = fr[0];
        int j = 0;
        for (; j + ATT_L <= ncols; j += ATT_L)
            for (int l = 0; l < ATT_L; l++)
                ml[l] = fr[j + l] > ml[l] ? fr[j + l] : ml[l];
        for (; j < ncols; j++)
            ml[0] = fr[j] > ml[0] ? fr[j] : ml[0];
        float m = ml[0];
        for (int l = 1; l < ATT_L; l++)
            m = ml[l] > m ? ml[l] : m;
        if (s)
            s[r] = m;
        /* p_j ∝ exp((f_j − max)/τ) ∈ [0, 1]; f32 blocks, double across blocks */
        double sum = 0.0, acc2[2] = {0.0, 0.0};
        double *acc = NULL, accv[ATT_VC];
        for (int c0 = 0; c0 < vc; c0 += (vc == 2 ? vc : ATT_VC)) {
            const int nc = vc == 2 ? 2 : imin(ATT_VC, vc - c0);
            acc = vc == 2 ? acc2 : accv;
            for (int k = 0; k < nc; k++)
                acc[k] = 0.0;
            sum = 0.0;
            for (int j0 = 0; j0 < ncols; j0 += ATT_B) {
                const int nb = imin(ATT_B, ncols - j0);
                float e[ATT_B];
                if (nb == ATT_B) {
#pragma omp simd
                    for (int b = 0; b < ATT_B; b++)
                        e[b] = vf_att_exp((fr[j0 + b] - m) / tau);
                } else {
                    for (int b = 0; b < ATT_B; b++)
                        e[b] = b < nb ? vf_att_exp((fr[j0 + b] - m) / tau) : 0.0f;
                }
                float sl[ATT_L] = {0};
                for (int b = 0; b < ATT_B; b += ATT_L)
#pragma omp simd
                    for (int l = 0; l < ATT_L; l++)
                        sl[l] += e[b + l];
                for (int l = 0; l < ATT_L; l++)
                    sum += (double)sl[l];
                if (vc == 2) {
                    float a0[ATT_L] = {0}, a1[ATT_L] = {0};
                    const float *vj = v + (size_t)j0 * 2;
                    if (nb == ATT_B) {
                        for (int b = 0; b < ATT_B; b += ATT_L)
#pragma omp simd
                            for (int l = 0; l < ATT_L; l++) {
                                a0[l] += e[b + l] * vj[2 * (b + l)];
                                a1[l] += e[b + l] * vj[2 * (b + l) + 1];
                            }
                    } else {
                        for (int b = 0; b < nb; b++) {
                            a0[b % ATT_L] += e[b] * vj[2 * b];
                            a1[b % ATT_L] += e[b] * vj[2 * b + 1];
                        }
                    }
                    for (int l = 0; l < ATT_L; l++) {
                        acc[0] += (double)a0[l];
                        acc[1] += (double)a1[l];
                    }
                } else {
                    for (int b = 0; b < nb; b++) {
                        const float *vj = v + (size_t)(j0 + b) * (size_t)vc + c0;
                        for (int k = 0; k < nc; k++)
                            acc[k] += (double)e[b] * (double)vj[k];
                    }
                }
            }
            float *o = out + (size_t)r * (size_t)vc + c0;
            for (int k = 0; k < nc; k++)
                o[k] = (float)(acc[k] / sum);
        }
    }
    return VF_OK;
}

/* ============================== colour ===================================================== */

static int check_channels(struct vf_error *err, const char *op, const char *name,
                          const struct vf_tensor *t, int c)
{
    char s[96];
    if (t->c != c)
        return vf_error_set(err, VF_EINVAL, "%s: %s must have %d channel%s, not %s", op, name, c,
                            c == 1 ? "" : "s", shape_str(t, s, sizeof s));
    return VF_OK;
}

/* t must be on ref's backend, have c channels and ref's batch and size. */
static int check_like(struct vf_error *err, const char *op, const char *rname,
                      const struct vf_tensor *ref, const char *name, const struct vf_tensor *t,
                      int c)
{
    TRYC(check_tensor(err, op, name, t, ref->be));
    TRYC(check_channels(err, op, name, t, c));
    if (!same_image(ref, t))
        return bad_shapes(err, op, rname, ref, name, t, "they must have the same size");
    return VF_OK;
}

int vf_op_grey_to_l(const struct vf_tensor *grey, struct vf_tensor *l, struct vf_tensor *fin,
                    struct vf_error *err)
{
    static const char op[] = "vf_op_grey_to_l";
    TRYC(check_tensor(err, op, "grey", grey, NULL));
    TRYC(check_tensor(err, op, "l", l, grey->be));
    TRYC(check_channels(err, op, "grey", grey, 1));
    TRYC(check_channels(err, op, "l", l, 1));
    if (!same_image(grey, l))
        return bad_shapes(err, op, "grey", grey, "l", l, "they must have the same size");
    if (fin) {
        TRYC(check_like(err, op, "grey", grey, "fin", fin, 3));
    }
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(grey->be))
        return vf_cuda_grey_to_l(grey, l, fin, vf_cuda_stream(grey->be), err);
#endif
    const long np = npix(grey);
    vf_be_enter_(grey->be);
#pragma omp parallel for schedule(static) if (np > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float y = ld1(grey, px_off(grey, p));
        st1(l, px_off(l, p), vf_grey_to_l(y));
        if (fin) {
            size_t o = px_off(fin, p);
            for (int k = 0; k < 3; k++)
                st1(fin, o + (size_t)k, vf_imnet_norm(y, k));
        }
    }
    return VF_OK;
}

int vf_op_rgb_to_lab(const struct vf_tensor *rgb, struct vf_tensor *lab, struct vf_tensor *fin,
                     struct vf_error *err)
{
    static const char op[] = "vf_op_rgb_to_lab";
    TRYC(check_tensor(err, op, "rgb", rgb, NULL));
    TRYC(check_tensor(err, op, "lab", lab, rgb->be));
    TRYC(check_channels(err, op, "rgb", rgb, 3));
    TRYC(check_channels(err, op, "lab", lab, 3));
    if (!same_image(rgb, lab))
        return bad_shapes(err, op, "rgb", rgb, "lab", lab, "they must have the same size");
    if (fin) {
        TRYC(check_like(err, op, "rgb", rgb, "fin", fin, 3));
    }
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(rgb->be))
        return vf_cuda_rgb_to_lab(rgb, lab, fin, vf_cuda_stream(rgb->be), err);
#endif
    const long np = npix(rgb);
    vf_be_enter_(rgb->be);
#pragma omp parallel for schedule(static) if (np > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float c[3];
        ld_span(rgb, px_off(rgb, p), 3, c);
        vf_f3 o = vf_rgb_to_lab(c[0], c[1], c[2]);
        float res[3] = {o.x, o.y, o.z};
        if (fin) {
            float nf[3];
            for (int k = 0; k < 3; k++)
                nf[k] = vf_imnet_norm(c[k], k);
            st_span(fin, px_off(fin, p), 3, nf);
        }
        st_span(lab, px_off(lab, p), 3, res);
    }
    return VF_OK;
}

int vf_op_lab_to_rgb(const struct vf_tensor *lab, struct vf_tensor *rgb, struct vf_error *err)
{
    static const char op[] = "vf_op_lab_to_rgb";
    TRYC(check_tensor(err, op, "lab", lab, NULL));
    TRYC(check_tensor(err, op, "rgb", rgb, lab->be));
    TRYC(check_channels(err, op, "lab", lab, 3));
    TRYC(check_channels(err, op, "rgb", rgb, 3));
    if (!same_image(lab, rgb))
        return bad_shapes(err, op, "lab", lab, "rgb", rgb, "they must have the same size");
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(lab->be))
        return vf_cuda_lab_to_rgb(lab, rgb, vf_cuda_stream(lab->be), err);
#endif
    const long np = npix(lab);
    vf_be_enter_(lab->be);
#pragma omp parallel for schedule(static) if (np > PAR_MIN)
    for (long p = 0; p < np; p++) {
        float c[3];
        ld_span(lab, px_off(lab, p), 3, c);
        vf_f3 o = vf_lab_to_rgb(c[0], c[1], c[2]);
        float res[3] = {o.x, o.y, o.z};
        st_span(rgb, px_off(rgb, p), 3, res);
    }
    return VF_OK;
}

/* ============================== warp refinement ============================================ */

static int check_dense_f32(struct vf_error *err, const char *op, const char *name,
                           const struct vf_tensor *t, int c)
{
    char s[96];
    TRYC(check_channels(err, op, name, t, c));
    if (t->dtype != VF_F32 || t->pix_stride != t->c)
        return vf_error_set(err, VF_EINVAL, "%s: %s must be a dense f32 tensor, not %s", op, name,
                            shape_str(t, s, sizeof s));
    return VF_OK;
}

/* ---- the refinement, RL pixels of a row at a time ----
 * vf_refine_px for RL neighbouring pixels of a row, each in its own lane of a GCC vector (rl_f):
 * every lane runs vf_refine_px's operations on its pixel's values in vf_refine_px's order (each
 * sum over the same terms in the same order, no FMA contraction, the same expf), so the output
 * is vf_refine_px's bit for bit (tests/test_ops.c warp_refine_lanes_match_px). The minima keep
 * vf_min_run's meaning (the smallest value that is not NaN, the start if none is smaller;
 * costs are never −0, so the order does not show). What one pixel runs as chains of dependent
 * adds (the patch differences, the window sums) runs RL pixels side by side; what differs
 * between the pixels and is cheap runs lane by lane on vf_refine_px's own helpers: positions,
 * clamped copies, the candidates near the borders, the motion-predicted candidates, the
 * cheapest temporal index and the sub-pixel candidate. */
enum {
    RL_D = 2 * VF_REFINE_MAX_RADIUS + 2,
    RL_G = RL_D + VF_REFINE_MAX_PATCH - 1,
    RL_P = VF_REFINE_MAX_PATCH * VF_REFINE_MAX_PATCH,
    RL_TT = (2 * VF_REFINE_MAX_TEMPORAL + 1) * (2 * VF_REFINE_MAX_TEMPORAL + 1),
    RL_TQ = (2 * VF_REFINE_MAX_PREDICT + 1) * (2 * VF_REFINE_MAX_PREDICT + 1),
    RL_T = RL_TT + RL_TQ + 1
};
/* reg holds the spatial region, then (near the borders) the temporal one */
_Static_assert((2 * VF_REFINE_MAX_TEMPORAL + VF_REFINE_MAX_PATCH) <= RL_G, "refine scratch");
/* Each lane's values, candidate-major (x[k][lane]): 182 KiB at the kernels' limits, on the
 * stack of the thread that runs the row. */
struct rl_scratch {
    float gp[RL_P][RL], cp[RL_P][RL], reg[RL_G * RL_G][RL];
    float cost[RL_D * RL_D][RL], e[RL_D * RL_D][RL], ca[RL_D * RL_D][RL], cb[RL_D * RL_D][RL];
    float tcost[RL_T][RL], te[RL_T][RL], ta[RL_T][RL], tb[RL_T][RL];
    float wv[RL_D * RL_D + RL_T][RL];       /* a window's weights where a lane has its own minimum */
    float lane[RL_T], lane_a[RL_T], lane_b[RL_T], lane_p[RL_P];
};

/* vf_patch_ssd_grid for every lane: the n × n candidates' Σ (p − window)² · f into out, each
 * lane's sum in vf_patch_ssd's order; the window of candidate (i, j) at patch position (u, v)
 * is the RL floats at reg + (i + u)·rs + (j + v)·cs, one per lane. */
static inline void rl_ssd_grid(const float (*p)[RL], const float *reg, long rs, long cs, int n,
                               int patch, float f, float (*out)[RL])
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            rl_f acc = {0};
            for (int u = 0; u < patch; u++) {
                const float *row = reg + (i + u) * rs + j * cs;
                for (int v = 0; v < patch; v++) {
                    const rl_f d = RL_LD(p[u * patch + v]) - RL_LD(row + v * cs);
                    acc += d * d;
                }
            }
            RL_ST(out[i * n + j], acc * f);
        }
}

/* The n × n window of img (H × W) with top left (y0, x0 + lane), coordinates clamped, into
 * out[k][lane] for every lane (vf_window_clamped per lane). */
static inline void rl_window_clamped(const float *img, int H, int W, int y0, int x0, int n,
                                     float (*out)[RL])
{
    for (int u = 0; u < n; u++) {
        const float *row = img + (size_t)vf_clampi(y0 + u, 0, H - 1) * (size_t)W;
        for (int v = 0; v < n; v++)
            for (int l = 0; l < RL; l++)
                out[u * n + v][l] = row[vf_clampi(x0 + l + v, 0, W - 1)];
    }
}

/* Lane l's column of x (n values) into the contiguous col, and back. */
static inline void rl_get(const float (*x)[RL], int n, int l, float *col)
{
    for (int k = 0; k < n; k++)
        col[k] = x[k][l];
}
static inline void rl_put(float (*x)[RL], int n, int l, const float *col)
{
    for (int k = 0; k < n; k++)
        x[k][l] = col[k];
}

/* w = exp(−(c − m)·inv_h2) in the lanes of `lanes` (all where NULL), as vf_refine_window and
 * vf_refine_px compute it (vf_refine_weight: expf called only where the weight is not 0); the
 * others keep w. With RL_EXP_VECTOR such lanes or more, the lanes' expf (kernels/lanes_impl.h)
 * where the CPU has AVX-512F (libm's bits). */
#define RL_EXP_VECTOR 4
static inline void rl_exp(const float *c, const float *m, float inv_h2, const rl_i *lanes,
                          float *w)
{
    const rl_f t = -(RL_LD(c) - RL_LD(m)) * inv_h2, zero = {0};
    const rl_i want = lanes ? *lanes : zero == zero;
    const rl_i live = ~(t < VF_REFINE_EXP_MIN) & want;     /* NaN too */
    unsigned bits = 0;
    for (int l = 0; l < RL; l++)
        bits |= (unsigned)(live[l] & 1) << l;
    float o[RL], tt[RL];
    RL_ST(o, RL_SEL(want, zero, RL_LD(w)));
    if (bits) {
        RL_ST(tt, t);
#if VF_HAVE_LANES
        const struct vf_lanes *vl;
        if (__builtin_popcount(bits) >= RL_EXP_VECTOR && (vl = vf_lanes_()) && vl->expf) {
            vl->expf(tt, bits, o);              /* libm's expf, 16 at a time */
            bits = 0;
        }
#endif
        for (; bits; bits &= bits - 1) {
            const int l = __builtin_ctz(bits);
            o[l] = expf(tt[l]);
        }
    }
    memcpy(w, o, sizeof o);
}

/* vf_refine_px for pixels (y, x0 + lane), lane < RL, all inside the row: their (a, b) into
 * out (interleaved, at (y·W + x0)·2); py, px: each lane's expected position (its cell's). */
static inline void refine_lanes(const float *grey, const float *ry, const float *rab, int H,
                                int W, int y, int x0, const float *py, const float *px,
                                int radius, int patch, float inv_h2,
                                const struct vf_refine_prev *tp, struct rl_scratch *s, float *out)
{
    const int r = patch / 2, D = 2 * radius + 2, G = D + patch - 1, K = D - 1;
    const float inv_n = 1.0f / (float)(patch * patch);
    int by[RL], bx[RL];
    float fy[RL], fx[RL];
    for (int l = 0; l < RL; l++) {
        const float vy = py[l] + (float)(y % 4), vx = px[l] + (float)((x0 + l) % 4);
        by[l] = (int)floorf(vy);
        bx[l] = (int)floorf(vx);
        fy[l] = vy - (float)by[l];
        fx[l] = vx - (float)bx[l];
    }
    rl_window_clamped(grey, H, W, y - r, x0 - r, patch, s->gp);
    /* the reference candidates: a, b and the region of each lane; the costs side by side */
    for (int l = 0; l < RL; l++) {
        for (int i = 0; i < D; i++) {
            const int sy = vf_clampi(by[l] - radius + i, 0, H - 1);
            for (int j = 0; j < D; j++) {
                const int sx = vf_clampi(bx[l] - radius + j, 0, W - 1);
                const size_t o = ((size_t)sy * (size_t)W + (size_t)sx) * 2;
                s->ca[i * D + j][l] = rab[o];
                s->cb[i * D + j][l] = rab[o + 1];
            }
        }
        for (int u = 0; u < G; u++) {
            const float *row = ry + (size_t)vf_clampi(by[l] - radius - r + u, 0, H - 1) * (size_t)W;
            for (int v = 0; v < G; v++)
                s->reg[u * G + v][l] = row[vf_clampi(bx[l] - radius - r + v, 0, W - 1)];
        }
    }
    rl_ssd_grid(s->gp, &s->reg[0][0], (long)G * RL, RL, D, patch, inv_n, s->cost);
    for (int l = 0; l < RL; l++) {
        if (vf_refine_spatial_inside(H, W, by[l], bx[l], radius))
            continue;
        /* a candidate leaves the image: vf_refine_px's clamped costs for this lane, where the
         * candidate clamps (elsewhere the region's clamped window is the candidate's) */
        rl_get(s->gp, patch * patch, l, s->lane_p);
        for (int i = 0; i < D; i++) {
            const int cy = by[l] - radius + i, sy = vf_clampi(cy, 0, H - 1);
            for (int j = 0; j < D; j++) {
                const int cx = bx[l] - radius + j, sx = vf_clampi(cx, 0, W - 1);
                if (sy != cy || sx != cx)
                    s->cost[i * D + j][l] =
                        vf_patch_ssd_clamped(s->lane_p, ry, H, W, sy, sx, patch) * inv_n;
            }
        }
    }
    int nt = 0;
    rl_f tmin;
    for (int l = 0; l < RL; l++)
        tmin[l] = INFINITY;
    if (tp && tp->l) {
        const int tr = tp->radius, T = 2 * tr + 1;
        const float f = vf_refine_temporal_f(tp->scale, patch);
        rl_window_clamped(tp->l, H, W, y - r, x0 - r, patch, s->cp);
        nt = T * T;
        /* each candidate's a, b, at the clamped candidate (vf_refine_temporal's); without the
         * clamps where the block's candidates are all inside (with them, A took 6% longer) */
        const int inside = vf_refine_temporal_inside(H, W, y, x0, x0 + RL - 1, tr, r);
        for (int i = 0; i < T; i++) {
            const int sy = vf_clampi(y - tr + i, 0, H - 1);
            for (int j = 0; j < T; j++) {
                const float *row = tp->prev_ab + (size_t)sy * (size_t)W * 2;
                if (inside)
                    for (int l = 0; l < RL; l++) {
                        s->ta[i * T + j][l] = row[(size_t)(x0 + l - tr + j) * 2];
                        s->tb[i * T + j][l] = row[(size_t)(x0 + l - tr + j) * 2 + 1];
                    }
                else
                    for (int l = 0; l < RL; l++) {
                        const size_t o = (size_t)vf_clampi(x0 + l - tr + j, 0, W - 1) * 2;
                        s->ta[i * T + j][l] = row[o];
                        s->tb[i * T + j][l] = row[o + 1];
                    }
            }
        }
        if (inside) {
            /* every lane's windows inside: vf_refine_temporal's region is frame t−1's L */
            rl_ssd_grid(s->cp, tp->prev_l + (size_t)(y - tr - r) * (size_t)W + (x0 - tr - r), W, 1,
                        T, patch, f, s->tcost);
        } else {
            /* near a border: each lane's clamped region (vf_refine_temporal's, in reg), and
             * vf_refine_temporal's clamped costs where the lane's window leaves the image and
             * the candidate clamps (elsewhere the region's clamped window is the candidate's) */
            const int TG = T + patch - 1;
            rl_window_clamped(tp->prev_l, H, W, y - tr - r, x0 - tr - r, TG, s->reg);
            rl_ssd_grid(s->cp, &s->reg[0][0], (long)TG * RL, RL, T, patch, f, s->tcost);
            for (int l = 0; l < RL; l++) {
                const int x = x0 + l;
                if (vf_refine_temporal_inside(H, W, y, x, x, tr, r))
                    continue;
                rl_get(s->cp, patch * patch, l, s->lane_p);
                for (int i = 0; i < T; i++) {
                    const int cy = y - tr + i, sy = vf_clampi(cy, 0, H - 1);
                    for (int j = 0; j < T; j++) {
                        const int cx = x - tr + j, sx = vf_clampi(cx, 0, W - 1);
                        if (sy != cy || sx != cx)
                            s->tcost[i * T + j][l] =
                                vf_patch_ssd_clamped(s->lane_p, tp->prev_l, H, W, sy, sx, patch) * f;
                    }
                }
            }
        }
        const int Q = 2 * tp->predict + 1, nq = tp->predict ? Q * Q : 0;
        int my[RL] = {0}, mx[RL] = {0};
        if (tp->predict)
            for (int l = 0; l < RL; l++) {
                const size_t o = ((size_t)y * (size_t)W + (size_t)(x0 + l)) * 2;
                my[l] = vf_motion_read(tp->motion[o], H);
                mx[l] = vf_motion_read(tp->motion[o + 1], W);
                rl_get(s->cp, patch * patch, l, s->lane_p);
                vf_refine_predicted(s->lane_p, tp->prev_l, tp->prev_ab, H, W, y, x0 + l, tr,
                                    tp->predict, my[l], mx[l], patch, tp->scale, s->lane,
                                    s->lane_a, s->lane_b);
                rl_put(s->tcost + nt, nq, l, s->lane);
                rl_put(s->ta + nt, nq, l, s->lane_a);
                rl_put(s->tb + nt, nq, l, s->lane_b);
            }
        nt += nq;
        for (int k = 0; k < nt; k++)
            RL_MIN(tmin, RL_LD(s->tcost[k]));
        if (tp->subpixel || tp->predict) {
            for (int l = 0; l < RL; l++) {
                const int x = x0 + l;
                rl_get(s->tcost, nt, l, s->lane);
                const int best = vf_refine_best(s->lane, nt, tmin[l]);
                int dy, dx;
                vf_refine_disp(best, tr, tp->predict, my[l], mx[l], &dy, &dx);
                if (tp->predict)
                    vf_refine_motion_out(tp, H, W, y, x, dy, dx);
                if (tp->subpixel)
                    vf_refine_subpixel(dy, dx, s->tcost[best][l], tp->l, tp->prev_l, tp->prev_ab,
                                       H, W, y, x, patch, &s->tcost[nt][l], &s->ta[nt][l],
                                       &s->tb[nt][l]);
            }
            if (tp->subpixel)
                nt++;
        }
    }
    rl_f gmin = tmin;
    for (int k = 0; k < D * D; k++)
        RL_MIN(gmin, RL_LD(s->cost[k]));
    float gm[RL];
    RL_ST(gm, gmin);
    for (int k = 0; k < D * D; k++)
        rl_exp(s->cost[k], gm, inv_h2, NULL, s->e[k]);
    for (int k = 0; k < nt; k++)
        rl_exp(s->tcost[k], gm, inv_h2, NULL, s->te[k]);
    const rl_f vfy = RL_LD(fy), vfx = RL_LD(fx);
    rl_f a = {0}, b = {0};
    for (int oy = 0; oy <= 1; oy++)
        for (int ox = 0; ox <= 1; ox++) {
            const rl_f blend = (oy ? vfy : 1.0f - vfy) * (ox ? vfx : 1.0f - vfx);
            const rl_i use = blend > 0.0f;
            if (!rl_any(&use))
                continue;
            /* vf_refine_window per lane */
            rl_f cmin = tmin;
            for (int i = oy; i < oy + K; i++)
                for (int j = ox; j < ox + K; j++)
                    RL_MIN(cmin, RL_LD(s->cost[i * D + j]));
            const rl_i shared = cmin == gmin, own = ~shared & use;
            const int all = !rl_any(&own);
            /* the weights first when some lane has its own minimum (expf calls clobber the
             * vector registers), then the sums, a plain chain in registers */
            const float (*ws)[RL] = s->e, (*wt)[RL] = s->te;
            int ld = D, n0 = oy * D + ox;
            if (!all) {
                float cm[RL];
                RL_ST(cm, cmin);
                int n = 0;
                for (int i = oy; i < oy + K; i++)
                    for (int j = ox; j < ox + K; j++, n++) {
                        memcpy(s->wv[n], s->e[i * D + j], sizeof s->wv[n]);
                        rl_exp(s->cost[i * D + j], cm, inv_h2, &own, s->wv[n]);
                    }
                for (int k = 0; k < nt; k++) {
                    memcpy(s->wv[K * K + k], s->te[k], sizeof s->wv[0]);
                    rl_exp(s->tcost[k], cm, inv_h2, &own, s->wv[K * K + k]);
                }
                ws = s->wv;
                wt = s->wv + K * K;
                ld = K;
                n0 = 0;
            }
            rl_f sw = {0}, sa = {0}, sb = {0};
            for (int i = 0; i < K; i++)
                for (int j = 0; j < K; j++) {
                    const int k = (oy + i) * D + ox + j;
                    const rl_f wk = RL_LD(ws[n0 + i * ld + j]);
                    sw += wk;
                    sa += wk * RL_LD(s->ca[k]);
                    sb += wk * RL_LD(s->cb[k]);
                }
            for (int k = 0; k < nt; k++) {
                const rl_f wk = RL_LD(wt[k]);
                sw += wk;
                sa += wk * RL_LD(s->ta[k]);
                sb += wk * RL_LD(s->tb[k]);
            }
            a = RL_SEL(use, a + blend * (sa / sw), a);
            b = RL_SEL(use, b + blend * (sb / sw), b);
        }
    float *o = out + ((size_t)y * (size_t)W + (size_t)x0) * 2;
    for (int l = 0; l < RL; l++) {
        o[2 * l] = a[l];
        o[2 * l + 1] = b[l];
    }
}

/* One row of the refined warp (elem.h vf_refine_px per pixel): RL pixels at a time
 * (refine_lanes), the rest of the row one by one, with everything inlined (VF_FLATTEN) into each
 * of the clones, AVX-512 among them (VF_SIMD_CLONES_512, kernels/internal.h): the same bits
 * from every clone (no FMA contraction, no reassociation). */
static VF_SIMD_CLONES_512 VF_FLATTEN void
refine_row(const float *g, const float *ry, const float *rab, const struct vf_tensor *pos,
           const float *ps, int img, int H, int W, int y, int radius, int patch, float inv_h2,
           const struct vf_refine_prev *prev, float *out)
{
    const int w4 = W / 4;
    const long cells = ((long)img * (H / 4) + y / 4) * w4;
    struct rl_scratch s;
    int x = 0;
    for (; x + RL <= W; x += RL) {
        float py[RL], px[RL];
        for (int l = 0; l < RL; l++) {
            const float *pp = ps + px_off(pos, cells + (x + l) / 4);
            py[l] = pp[0];
            px[l] = pp[1];
        }
        refine_lanes(g, ry, rab, H, W, y, x, py, px, radius, patch, inv_h2, prev, &s, out);
    }
    for (; x < W; x++) {
        const float *pp = ps + px_off(pos, cells + x / 4);
        const size_t o = ((size_t)y * (size_t)W + (size_t)x) * 2;
        vf_refine_px(g, ry, rab, H, W, y, x, pp[0], pp[1], radius, patch, inv_h2, prev, out + o,
                     out + o + 1);
    }
}

int vf_op_warp_refine(const struct vf_tensor *grey, const struct vf_tensor *ref_y,
                      const struct vf_tensor *ref_ab, const struct vf_tensor *pos, int radius,
                      int patch, float h, const struct vf_refine_temporal_args *tp,
                      struct vf_tensor *dst, struct vf_error *err)
{
    static const char op[] = "vf_op_warp_refine";
    TRYC(check_tensor(err, op, "grey", grey, NULL));
    TRYC(check_tensor(err, op, "ref_y", ref_y, grey->be));
    TRYC(check_tensor(err, op, "ref_ab", ref_ab, grey->be));
    TRYC(check_tensor(err, op, "pos", pos, grey->be));
    TRYC(check_tensor(err, op, "dst", dst, grey->be));
    TRYC(check_dense_f32(err, op, "grey", grey, 1));
    TRYC(check_dense_f32(err, op, "ref_y", ref_y, 1));
    TRYC(check_dense_f32(err, op, "ref_ab", ref_ab, 2));
    TRYC(check_dense_f32(err, op, "dst", dst, 2));
    TRYC(check_channels(err, op, "pos", pos, 2));
    if (pos->dtype != VF_F32)
        return vf_error_set(err, VF_EINVAL, "%s: pos must be f32", op);
    if (!same_image(grey, ref_y) || !same_image(grey, ref_ab) || !same_image(grey, dst))
        return bad_shapes(err, op, "grey", grey, "ref_y, ref_ab or dst", same_image(grey, ref_y)
                          ? (same_image(grey, ref_ab) ? dst : ref_ab) : ref_y,
                          "they must have the same size");
    if (grey->h % 4 || grey->w % 4 || pos->n != grey->n || pos->h != grey->h / 4 ||
        pos->w != grey->w / 4)
        return bad_shapes(err, op, "grey", grey, "pos", pos,
                          "pos must be a quarter of grey's size, which must be a multiple of 4");
    if (radius < 1 || radius > VF_REFINE_MAX_RADIUS || patch < 1 || patch > VF_REFINE_MAX_PATCH ||
        patch % 2 == 0 || !(h > 0.0f) || !isfinite(h))
        return vf_error_set(err, VF_EINVAL, "%s: radius must be in [1, %d], patch odd in [1, %d] "
                            "and h > 0 (got %d, %d, %g)", op, VF_REFINE_MAX_RADIUS,
                            VF_REFINE_MAX_PATCH, radius, patch, (double)h);
    if (tp) {
        TRYC(check_tensor(err, op, "l", tp->l, grey->be));
        TRYC(check_tensor(err, op, "prev_l", tp->prev_l, grey->be));
        TRYC(check_tensor(err, op, "prev_ab", tp->prev_ab, grey->be));
        TRYC(check_dense_f32(err, op, "l", tp->l, 1));
        TRYC(check_dense_f32(err, op, "prev_l", tp->prev_l, 1));
        TRYC(check_dense_f32(err, op, "prev_ab", tp->prev_ab, 2));
        if (!same_image(grey, tp->l) || !same_image(grey, tp->prev_l) ||
            !same_image(grey, tp->prev_ab))
            return bad_shapes(err, op, "grey", grey, "l, prev_l or prev_ab",
                              same_image(grey, tp->l)
                              ? (same_image(grey, tp->prev_l) ? tp->prev_ab : tp->prev_l) : tp->l,
                              "they must have the same size");
        if (tp->radius < 1 || tp->radius > VF_REFINE_MAX_TEMPORAL || !(tp->h > 0.0f) ||
            !isfinite(tp->h))
            return vf_error_set(err, VF_EINVAL, "%s: the temporal radius must be in [1, %d] and "
                                "its h > 0 (got %d, %g)", op, VF_REFINE_MAX_TEMPORAL, tp->radius,
                                (double)tp->h);
        if (tp->predict < 0 || tp->predict > VF_REFINE_MAX_PREDICT)
            return vf_error_set(err, VF_EINVAL, "%s: the motion-predicted radius must be in "
                                "[0, %d] (got %d)", op, VF_REFINE_MAX_PREDICT, tp->predict);
        if (tp->predict) {
            TRYC(check_tensor(err, op, "motion", tp->motion, grey->be));
            TRYC(check_tensor(err, op, "motion_out", tp->motion_out, grey->be));
            TRYC(check_dense_f32(err, op, "motion", tp->motion, 2));
            TRYC(check_dense_f32(err, op, "motion_out", tp->motion_out, 2));
            if (!same_image(grey, tp->motion) || !same_image(grey, tp->motion_out))
                return bad_shapes(err, op, "grey", grey, "motion or motion_out",
                                  same_image(grey, tp->motion) ? tp->motion_out : tp->motion,
                                  "they must have the same size");
            const void *reads[] = {grey->data, ref_y->data, ref_ab->data, pos->data, dst->data,
                                   tp->l->data, tp->prev_l->data, tp->prev_ab->data,
                                   tp->motion->data};
            for (size_t i = 0; i < sizeof reads / sizeof *reads; i++)
                if (reads[i] == tp->motion_out->data)
                    return vf_error_set(err, VF_EINVAL, "%s: motion_out must not be the same "
                                        "memory as %s (the op reads it while it writes)", op,
                                        i == 8 ? "motion" : "an input or dst");
        }
    }
    const float inv_h2 = 1.0f / (h * h);
    /* the temporal costs in the reference candidates' units: × (h / h_t)² */
    const float scale = tp ? (h / tp->h) * (h / tp->h) : 0.0f;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(grey->be))
        return vf_cuda_warp_refine(grey, ref_y, ref_ab, pos, radius, patch, inv_h2, tp, scale,
                                   dst, vf_cuda_stream(grey->be), err);
#endif
    vf_be_enter_(grey->be);
    const int H = grey->h, W = grey->w;
    const size_t P = (size_t)H * (size_t)W;
    for (int img = 0; img < grey->n; img++) {
        const float *g = (const float *)grey->data + (size_t)img * P;
        const float *ry = (const float *)ref_y->data + (size_t)img * P;
        const float *rab = (const float *)ref_ab->data + (size_t)img * P * 2;
        const float *ps = (const float *)pos->data;
        float *out = (float *)dst->data + (size_t)img * P * 2;
        struct vf_refine_prev prev = {0};
        if (tp)
            prev = (struct vf_refine_prev){
                .l = (const float *)tp->l->data + (size_t)img * P,
                .prev_l = (const float *)tp->prev_l->data + (size_t)img * P,
                .prev_ab = (const float *)tp->prev_ab->data + (size_t)img * P * 2,
                .radius = tp->radius, .scale = scale, .subpixel = tp->subpixel,
                .predict = tp->predict,
                .motion = tp->predict ? (const float *)tp->motion->data + (size_t)img * P * 2 : NULL,
                .motion_out = tp->predict ? (float *)tp->motion_out->data + (size_t)img * P * 2 : NULL};
        const long work = (long)P * radius * patch +
                          (tp ? (long)P * (tp->radius + tp->predict) * patch : 0);
#pragma omp parallel for schedule(static) if (work > PAR_MIN)
        for (int y = 0; y < H; y++)
            refine_row(g, ry, rab, pos, ps, img, H, W, y, radius, patch, inv_h2, &prev, out);
    }
    return VF_OK;
}

/* ============================== guided upsampling ========================================== */

/* Scratch, in doubles (two f32 elements each), for an H × W guide: VF_GU_HS (6) planes of
 * horizontal window sums and VF_GU_AB (4) planes of A, B (then of box(A), box(B)); the layout
 * and the per-pixel bodies are kernels/elem.h's, shared with the CUDA kernels. */
size_t vf_guided_scratch_elems(int h, int w)
{
    if (h < 1 || w < 1)
        return 0;
    return 2 * (size_t)(VF_GU_HS + VF_GU_AB) * (size_t)h * (size_t)w;
}

/* An operator's scratch: a dense, 8-byte aligned f32 tensor of at least `need` elements (what
 * fn(h, w) says). */
static int check_scratch(struct vf_error *err, const char *op, const struct vf_tensor *scratch,
                         size_t need, const char *fn, int h, int w)
{
    size_t spix = (size_t)scratch->n * (size_t)scratch->h * (size_t)scratch->w;
    if (scratch->dtype != VF_F32 || (spix > 1 && scratch->pix_stride != scratch->c) ||
        spix * (size_t)scratch->c < need || ((uintptr_t)scratch->data % sizeof(double)) != 0) {
        char s[96];
        return vf_error_set(err, VF_EINVAL, "%s: scratch must be a dense, 8-byte aligned f32 "
                            "tensor of at least %zu elements (%s(%d, %d)), not %s", op, need, fn,
                            h, w, shape_str(scratch, s, sizeof s));
    }
    return VF_OK;
}

/* The 6 quantities of stage 1 at one low-resolution pixel: I, I², pa, pb, I·pa, I·pb. */
static inline void gu_q1(const struct vf_tensor *grey, const struct vf_tensor *ab, long pix,
                         double q[VF_GU_HS])
{
    size_t o = px_off(ab, pix);
    vf_gu_quantities(ld1(grey, px_off(grey, pix)), ld1(ab, o), ld1(ab, o + 1), q);
}

int vf_op_guided_upsample(const struct vf_tensor *grey_lo, const struct vf_tensor *ab_lo,
                          const struct vf_tensor *grey_full, struct vf_tensor *ab_full,
                          int radius, float eps, struct vf_tensor *scratch,
                          struct vf_error *err)
{
    static const char op[] = "vf_op_guided_upsample";
    TRYC(check_tensor(err, op, "grey_lo", grey_lo, NULL));
    TRYC(check_tensor(err, op, "ab_lo", ab_lo, grey_lo->be));
    TRYC(check_tensor(err, op, "grey_full", grey_full, grey_lo->be));
    TRYC(check_tensor(err, op, "ab_full", ab_full, grey_lo->be));
    TRYC(check_tensor(err, op, "scratch", scratch, grey_lo->be));
    TRYC(check_channels(err, op, "grey_lo", grey_lo, 1));
    TRYC(check_channels(err, op, "ab_lo", ab_lo, 2));
    TRYC(check_channels(err, op, "grey_full", grey_full, 1));
    TRYC(check_channels(err, op, "ab_full", ab_full, 2));
    if (!same_image(grey_lo, ab_lo))
        return bad_shapes(err, op, "grey_lo", grey_lo, "ab_lo", ab_lo,
                          "they must have the same size");
    if (!same_image(grey_full, ab_full))
        return bad_shapes(err, op, "grey_full", grey_full, "ab_full", ab_full,
                          "they must have the same size");
    if (grey_lo->n != grey_full->n)
        return bad_shapes(err, op, "grey_lo", grey_lo, "grey_full", grey_full,
                          "they must have the same number of images");
    if (radius < 0 || !(eps > 0.0f) || !isfinite(eps))
        return vf_error_set(err, VF_EINVAL, "%s: radius must be ≥ 0 and eps > 0 (got %d, %g)",
                            op, radius, (double)eps);
    const int H = grey_lo->h, W = grey_lo->w, h = grey_full->h, w = grey_full->w;
    TRYC(check_scratch(err, op, scratch, vf_guided_scratch_elems(H, W), "vf_guided_scratch_elems",
                       H, W));
    const long P = (long)H * W;
    double *hs = (double *)scratch->data;
    double *abp = hs + (size_t)VF_GU_HS * (size_t)P;
    const int r = radius;
    const double deps = (double)eps;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(grey_lo->be))
        return vf_cuda_guided_upsample(grey_lo, ab_lo, grey_full, ab_full, radius, eps,
                                       scratch, vf_cuda_stream(grey_lo->be), err);
#endif
    vf_be_enter_(grey_lo->be);
    for (int img = 0; img < grey_lo->n; img++) {
        const long lo0 = (long)img * P;
        /* 1. horizontal sums of I, I², p, I·p */
#pragma omp parallel for schedule(static) if (P * r > PAR_MIN / 4)
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double acc[VF_GU_HS] = {0}, q[VF_GU_HS];
                for (int xx = imax(x - r, 0); xx <= imin(x + r, W - 1); xx++) {
                    gu_q1(grey_lo, ab_lo, lo0 + (long)y * W + xx, q);
                    for (int k = 0; k < VF_GU_HS; k++)
                        acc[k] += q[k];
                }
                for (int k = 0; k < VF_GU_HS; k++)
                    hs[(size_t)k * P + (size_t)y * W + x] = acc[k];
            }
        }
        /* 2. vertical sums → box means → A, B per ab channel */
#pragma omp parallel for schedule(static) if (P * r > PAR_MIN / 4)
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double m[VF_GU_HS], c[VF_GU_AB];
                vf_gu_vmean(hs, (size_t)P, H, W, y, x, r, VF_GU_HS, m);
                vf_gu_coef(m, deps, c);
                for (int k = 0; k < VF_GU_AB; k++)
                    abp[(size_t)k * P + (size_t)y * W + x] = c[k];
            }
        }
        /* 3. horizontal sums of A, B */
#pragma omp parallel for schedule(static) if (P * r > PAR_MIN / 4)
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double acc[VF_GU_AB];
                vf_gu_hsum(abp, (size_t)P, W, y, x, r, VF_GU_AB, acc);
                for (int k = 0; k < VF_GU_AB; k++)
                    hs[(size_t)k * P + (size_t)y * W + x] = acc[k];
            }
        }
        /* 4. vertical sums → box(A), box(B) (over the A, B planes, no longer needed) */
#pragma omp parallel for schedule(static) if (P * r > PAR_MIN / 4)
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double m[VF_GU_AB];
                vf_gu_vmean(hs, (size_t)P, H, W, y, x, r, VF_GU_AB, m);
                for (int k = 0; k < VF_GU_AB; k++)
                    abp[(size_t)k * P + (size_t)y * W + x] = m[k];
            }
        }
        /* 5. full resolution: ab = up(box A)·Ifull + up(box B), bilinear as PyTorch */
        const long full0 = (long)img * h * w;
#pragma omp parallel for schedule(static) if ((long)h * w > PAR_MIN)
        for (int y = 0; y < h; y++) {
            int y0, y1;
            float hy0, hy1;
            vf_linear_src(y, H, h, &y0, &y1, &hy0, &hy1);
            for (int x = 0; x < w; x++) {
                int x0, x1;
                float wx0, wx1;
                vf_linear_src(x, W, w, &x0, &x1, &wx0, &wx1);
                double up[VF_GU_AB];
                vf_gu_upsample(abp, (size_t)P, W, y0, y1, hy0, hy1, x0, x1, wx0, wx1, up);
                const long fp = full0 + (long)y * w + x;
                const float I = ld1(grey_full, px_off(grey_full, fp));
                const size_t o = px_off(ab_full, fp);
                st1(ab_full, o, vf_gu_apply(up, I, 0));
                st1(ab_full, o + 1, vf_gu_apply(up, I, 1));
            }
        }
    }
    return VF_OK;
}

/* ============================== keep luma ================================================== */

static int lanes_cap = 512;

void vf_lanes_cap_(int bits) { lanes_cap = bits; }

const struct vf_lanes *vf_lanes_(void)
{
#if VF_HAVE_LANES
    if (lanes_cap >= 512 && __builtin_cpu_supports("avx512f"))
        return &vf_lanes512_;
    if (lanes_cap >= 256 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &vf_lanes256_;
#endif
    return NULL;
}

bool vf_libm_lanes_(bool exp, const float *x, long n, float y, float *out)
{
    long i = 0;
    const struct vf_lanes *vl = vf_lanes_();
    if (vl && (exp ? vl->expf != NULL : vl->powf != NULL))
        for (; i + RL <= n; i += RL) {
            if (exp)
                vl->expf(x + i, (1u << RL) - 1, out + i);
            else
                vl->powf(x + i, y, out + i);
        }
    const bool lanes = i > 0;
    for (; i < n; i++)
        out[i] = exp ? expf(x[i]) : powf(x[i], y);
    return lanes;
}

/* Pixels [p0, p1) of the operator: RL at a time through vl's keep_luma where there are lanes
 * (the last lanes of a short block repeat the block's first pixel, unwritten), else
 * vf_keep_luma_rgb one by one; the same bits. */
#define KL_BLOCK 256
static void keep_luma_span(const struct vf_tensor *grey, const struct vf_tensor *ab, float kr,
                           float kb, const struct vf_tensor *rgb, const struct vf_tensor *cbcr,
                           long p0, long p1, const struct vf_lanes *vl)
{
    for (long p = p0; p < p1; p += RL) {
        const int n = p1 - p < RL ? (int)(p1 - p) : RL;
        float g[RL], a[RL], b[RL], c[3 * RL];
        for (int l = 0; l < RL; l++) {
            const long q = l < n ? p + l : p;
            const size_t ao = px_off(ab, q);
            g[l] = ld1(grey, px_off(grey, q));
            a[l] = ld1(ab, ao);
            b[l] = ld1(ab, ao + 1);
        }
        if (vl)
            vl->keep_luma(g, a, b, kr, kb, c);
        for (int l = 0; l < n; l++) {
            vf_f3 v = vl ? vf_f3_make(c[3 * l], c[3 * l + 1], c[3 * l + 2])
                            : vf_keep_luma_rgb(g[l], a[l], b[l], kr, kb);
            if (rgb) {
                const float o[3] = {v.x, v.y, v.z};
                st_span(rgb, px_off(rgb, p + l), 3, o);
            }
            if (cbcr) {
                const float o[2] = {vf_cb(v, kr, kb), vf_cr(v, kr, kb)};
                st_span(cbcr, px_off(cbcr, p + l), 2, o);
            }
        }
    }
}

int vf_op_keep_luma(const struct vf_tensor *grey, const struct vf_tensor *ab, float kr, float kb,
                    struct vf_tensor *rgb, struct vf_tensor *cbcr, struct vf_error *err)
{
    static const char op[] = "vf_op_keep_luma";
    TRYC(check_tensor(err, op, "grey", grey, NULL));
    TRYC(check_tensor(err, op, "ab", ab, grey->be));
    TRYC(check_channels(err, op, "grey", grey, 1));
    TRYC(check_channels(err, op, "ab", ab, 2));
    if (!same_image(grey, ab))
        return bad_shapes(err, op, "grey", grey, "ab", ab, "they must have the same size");
    if (!rgb && !cbcr)
        return vf_error_set(err, VF_EINVAL, "%s: neither rgb nor cbcr asked for", op);
    if (rgb) {
        TRYC(check_like(err, op, "grey", grey, "rgb", rgb, 3));
    }
    if (cbcr) {
        TRYC(check_like(err, op, "grey", grey, "cbcr", cbcr, 2));
    }
    if (!(kr > 0.0f && kb > 0.0f && kr + kb < 1.0f))
        return vf_error_set(err, VF_EINVAL, "%s: Kr = %g, Kb = %g is not a luma matrix (need "
                            "Kr, Kb > 0 and Kr + Kb < 1)", op, (double)kr, (double)kb);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(grey->be))
        return vf_cuda_keep_luma(grey, ab, kr, kb, rgb, cbcr, vf_cuda_stream(grey->be), err);
#endif
    const long np = npix(grey), nb = (np + KL_BLOCK - 1) / KL_BLOCK;
    const struct vf_lanes *vl = vf_lanes_();
    vf_be_enter_(grey->be);
#pragma omp parallel for schedule(static) if (np > PAR_MIN / 64)
    for (long q = 0; q < nb; q++)
        keep_luma_span(grey, ab, kr, kb, rgb, cbcr, q * KL_BLOCK,
                       q * KL_BLOCK + KL_BLOCK < np ? q * KL_BLOCK + KL_BLOCK : np, vl);
    return VF_OK;
}

/* ============================== film-size propagation ====================================== */

/* The CPU operator works in strips of rows, each strip taking every move in turn while its rows'
 * best costs, moves, window row sums and greys stay in cache; a worker's strip buffers are one
 * slot. Strips hold about CARRY_STRIP_PIX pixels, 16 to 64 rows (at least 16, so that the rows
 * above and below that a strip's windows reach, recomputed by each strip, stay a fraction). */
#define CARRY_STRIP_PIX 32768
#define CARRY_SLOTS 64

static int carry_strip_rows(int w)
{
    return vf_clampi(CARRY_STRIP_PIX / w, 16, 64);
}

/* One slot, in doubles: the window row sums of a strip's rows and the rows above and below that
 * its windows reach (at most VF_PROPAGATE_MAX_PATCH / 2 each side), and one row of work. */
static size_t carry_slot_doubles(int h, int w)
{
    const int rows = vf_imin(h, carry_strip_rows(w) + 2 * (VF_PROPAGATE_MAX_PATCH / 2));
    return ((size_t)rows + 1) * (size_t)w;
}

static int carry_slots(int h, int w)
{
    const int strip = carry_strip_rows(w);
    return vf_imin(CARRY_SLOTS, (h + strip - 1) / strip);
}

size_t vf_carry_scratch_elems(int h, int w)
{
    if (h < 1 || w < 1)
        return 0;
    /* one double plane (the best cost), three 4-byte planes (the best move, the grey and the
     * previous grey as f32), then the slots' doubles */
    return 5 * (size_t)h * (size_t)w + 2 * (size_t)carry_slots(h, w) * carry_slot_doubles(h, w);
}

/* Pixels whose window sums carry_hsum_row and carry_cost_row keep in registers at a time. */
#define CARRY_BLK 8

/* One row of a move's squared differences: sq[x] = vf_carry_sq(cur[x], prev[clamp(x + dx)]),
 * prev the row the move lands on. */
static VF_SIMD_CLONES void carry_sq_row(const float *cur, const float *prev, int w, int dx,
                                        double *sq)
{
    const int x0 = vf_clampi(-dx, 0, w), x1 = vf_clampi(w - dx, x0, w);
    for (int x = 0; x < x0; x++)
        sq[x] = vf_carry_sq(cur[x], prev[vf_clampi(x + dx, 0, w - 1)]);
    for (int x = x0; x < x1; x++)
        sq[x] = vf_carry_sq(cur[x], prev[x + dx]);
    for (int x = x1; x < w; x++)
        sq[x] = vf_carry_sq(cur[x], prev[vf_clampi(x + dx, 0, w - 1)]);
}

static inline double carry_hsum_edge(const double *sq, int w, int r, int x)
{
    double v = 0.0;
    for (int o = -r; o <= r; o++)
        v += sq[vf_clampi(x + o, 0, w - 1)];
    return v;
}

/* The window's row sums (Net.carry's hsum): hs[x] = 0 + sq[clamp(x − r)] + ... + sq[clamp(x + r)],
 * in that order for every pixel (the interior a column of the window at a time, vectorised across
 * pixels: each pixel's sum is still taken in the reference's order). */
static VF_SIMD_CLONES void carry_hsum_row(const double *sq, int w, int r, double *hs)
{
    const int xa = vf_imin(r, w), xb = vf_imax(w - r, xa);
    int x = xa;
    for (; x + CARRY_BLK <= xb; x += CARRY_BLK) {   /* CARRY_BLK sums in registers */
        double acc[CARRY_BLK];
        for (int j = 0; j < CARRY_BLK; j++)
            acc[j] = 0.0 + sq[x + j - r];
        for (int o = -r + 1; o <= r; o++)
            for (int j = 0; j < CARRY_BLK; j++)
                acc[j] += sq[x + j + o];
        memcpy(hs + x, acc, sizeof acc);
    }
    for (; x < xb; x++)
        hs[x] = carry_hsum_edge(sq, w, r, x);
    for (x = 0; x < xa; x++)
        hs[x] = carry_hsum_edge(sq, w, r, x);
    for (x = xb; x < w; x++)
        hs[x] = carry_hsum_edge(sq, w, r, x);
}

/* One row's costs for a move: the window's column of row sums (rows[0..2r], the clamped rows
 * above to below, in that order) plus the tie-break, kept where it beats the best so far. */
static VF_SIMD_CLONES void carry_cost_row(const double *const *rows, int w, int r, double tie,
                                          int32_t m, double *best, int32_t *move)
{
    for (int x = 0; x < w; x += CARRY_BLK) {        /* CARRY_BLK sums in registers */
        const int n = vf_imin(CARRY_BLK, w - x);
        double acc[CARRY_BLK];
        if (n == CARRY_BLK) {
            for (int j = 0; j < CARRY_BLK; j++)
                acc[j] = 0.0 + rows[0][x + j];
            for (int k = 1; k <= 2 * r; k++)
                for (int j = 0; j < CARRY_BLK; j++)
                    acc[j] += rows[k][x + j];
        } else {
            for (int j = 0; j < n; j++) {
                acc[j] = 0.0 + rows[0][x + j];
                for (int k = 1; k <= 2 * r; k++)
                    acc[j] += rows[k][x + j];
            }
        }
        for (int j = 0; j < n; j++) {
            const double v = acc[j] + tie;
            const bool lt = v < best[x + j];
            best[x + j] = lt ? v : best[x + j];
            move[x + j] = lt ? m : move[x + j];
        }
    }
}

/* Every move of one strip (rows y0 .. y1 − 1) of one image: cur and prev the f32 greys. */
static void carry_strip(const float *cur, const float *prev, int h, int w, int y0, int y1,
                        int radius, int patch, double *slot, double *best, int32_t *move)
{
    const int r = patch / 2, side = 2 * radius + 1;
    const int ylo = vf_imax(0, y0 - r), yhi = vf_imin(h, y1 + r);
    double *hs = slot, *work = slot + (size_t)(yhi - ylo) * w;
    const double *rows[VF_PROPAGATE_MAX_PATCH];
    for (int dy = -radius; dy <= radius; dy++) {
        for (int dx = -radius; dx <= radius; dx++) {
            for (int y = ylo; y < yhi; y++) {
                carry_sq_row(cur + (size_t)y * w, prev + (size_t)vf_clampi(y + dy, 0, h - 1) * w,
                             w, dx, work);
                carry_hsum_row(work, w, r, hs + (size_t)(y - ylo) * w);
            }
            const double tie = vf_carry_tie(dy, dx);
            const int32_t m = (dy + radius) * side + (dx + radius);
            for (int y = y0; y < y1; y++) {
                for (int o = -r; o <= r; o++)
                    rows[o + r] = hs + (size_t)(vf_clampi(y + o, 0, h - 1) - ylo) * w;
                carry_cost_row(rows, w, r, tie, m, best + (size_t)y * w, move + (size_t)y * w);
            }
        }
    }
}

/* The sub-pixel step at pixel (y, x) moved by (dy, dx) (Net._carry_subpixel): the window's
 * Lucas–Kanade sums over the f32 greys, then the step. */
static void carry_lk_at(const float *cur, const float *prev, int h, int w, int y, int x, int dy,
                        int dx, int r, double *oy, double *ox)
{
    double S[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    for (int a = -r; a <= r; a++) {
        const int qy = vf_clampi(y + a, 0, h - 1), my = vf_clampi(qy + dy, 0, h - 1);
        const float *row = prev + (size_t)my * w;
        const float *up = prev + (size_t)vf_clampi(my - 1, 0, h - 1) * w;
        const float *down = prev + (size_t)vf_clampi(my + 1, 0, h - 1) * w;
        for (int b = -r; b <= r; b++) {
            const int qx = vf_clampi(x + b, 0, w - 1), mx = vf_clampi(qx + dx, 0, w - 1);
            vf_carry_lk_add(S, cur[(size_t)qy * w + qx], row[mx], row[vf_clampi(mx - 1, 0, w - 1)],
                            row[vf_clampi(mx + 1, 0, w - 1)], up[mx], down[mx]);
        }
    }
    vf_carry_lk(S, oy, ox);
}

int vf_op_carry_ab(const struct vf_tensor *grey, const struct vf_tensor *prev_grey,
                   const struct vf_tensor *prev_ab, struct vf_tensor *ab, float share,
                   float confidence, int radius, int patch, bool subpixel,
                   struct vf_tensor *scratch, struct vf_error *err)
{
    static const char op[] = "vf_op_carry_ab";
    TRYC(check_tensor(err, op, "grey", grey, NULL));
    TRYC(check_channels(err, op, "grey", grey, 1));
    TRYC(check_like(err, op, "grey", grey, "prev_grey", prev_grey, 1));
    TRYC(check_like(err, op, "grey", grey, "prev_ab", prev_ab, 2));
    TRYC(check_like(err, op, "grey", grey, "ab", ab, 2));
    if (radius < 1 || radius > VF_PROPAGATE_MAX_RADIUS || patch < 1 ||
        patch > VF_PROPAGATE_MAX_PATCH || patch % 2 == 0)
        return vf_error_set(err, VF_EINVAL, "%s: radius must be in [1, %d] and patch odd in "
                            "[1, %d] (got %d, %d)", op, VF_PROPAGATE_MAX_RADIUS,
                            VF_PROPAGATE_MAX_PATCH, radius, patch);
    if (ab->data == prev_ab->data)
        return vf_error_set(err, VF_EINVAL, "%s: ab and prev_ab share memory (ab is written while "
                            "prev_ab is read)", op);
    if (!(share >= 0.0f && share <= 1.0f) || !(confidence >= 0.0f) || !isfinite(confidence))
        return vf_error_set(err, VF_EINVAL, "%s: share must be in [0, 1] and confidence a "
                            "finite number ≥ 0 (got %g, %g)", op, (double)share,
                            (double)confidence);
    const int h = grey->h, w = grey->w;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(grey->be))
        return vf_cuda_carry_ab(grey, prev_grey, prev_ab, ab, share, confidence, radius, patch,
                                subpixel, vf_cuda_stream(grey->be), err);
#endif
    TRYC(check_tensor(err, op, "scratch", scratch, grey->be));
    TRYC(check_scratch(err, op, scratch, vf_carry_scratch_elems(h, w), "vf_carry_scratch_elems",
                       h, w));
    const long P = (long)h * w;
    double *best = (double *)scratch->data;
    double *slots = best + P;
    int32_t *move = (int32_t *)(slots + (size_t)carry_slots(h, w) * carry_slot_doubles(h, w));
    float *cur = (float *)(move + P), *prev = cur + P;
    const int side = 2 * radius + 1, strip = carry_strip_rows(w), nstrip = (h + strip - 1) / strip;
    const size_t slot_doubles = carry_slot_doubles(h, w);
    vf_be_enter_(grey->be);
    const int workers = vf_imin(omp_get_max_threads(), carry_slots(h, w));
    for (int img = 0; img < grey->n; img++) {
        const long p0 = (long)img * P;
        for (long i = 0; i < P; i++) {   /* (0, 0) where no cost is finite, as the others */
            best[i] = INFINITY;
            move[i] = radius * side + radius;
            cur[i] = ld1(grey, px_off(grey, p0 + i));
            prev[i] = ld1(prev_grey, px_off(prev_grey, p0 + i));
        }
#pragma omp parallel for schedule(dynamic) num_threads(workers) if (workers > 1)
        for (int s = 0; s < nstrip; s++)
            carry_strip(cur, prev, h, w, s * strip, vf_imin(h, (s + 1) * strip), radius, patch,
                        slots + (size_t)omp_get_thread_num() * slot_doubles, best, move);
#pragma omp parallel for schedule(static) if (P > PAR_MIN / 16)
        for (long i = 0; i < P; i++) {
            const int y = (int)(i / w), x = (int)(i - (long)y * w);
            const int dy = move[i] / side - radius, dx = move[i] % side - radius;
            const float s = vf_carry_share(share, confidence, patch, best[i]);
            const size_t o = px_off(ab, p0 + i);
            float carried[2];
            if (subpixel) {
                double oy, ox, wy, wx;
                int y0, y1, x0, x1;
                carry_lk_at(cur, prev, h, w, y, x, dy, dx, patch / 2, &oy, &ox);
                vf_carry_taps(y + dy, oy, h, &y0, &y1, &wy);
                vf_carry_taps(x + dx, ox, w, &x0, &x1, &wx);
                const size_t o00 = px_off(prev_ab, p0 + (long)y0 * w + x0);
                const size_t o01 = px_off(prev_ab, p0 + (long)y0 * w + x1);
                const size_t o10 = px_off(prev_ab, p0 + (long)y1 * w + x0);
                const size_t o11 = px_off(prev_ab, p0 + (long)y1 * w + x1);
                for (int ch = 0; ch < 2; ch++)
                    carried[ch] = vf_carry_bilinear(ld1(prev_ab, o00 + ch), ld1(prev_ab, o01 + ch),
                                                    ld1(prev_ab, o10 + ch), ld1(prev_ab, o11 + ch),
                                                    wy, wx);
            } else {
                const size_t so = px_off(prev_ab, p0 + (long)vf_clampi(y + dy, 0, h - 1) * w +
                                                      vf_clampi(x + dx, 0, w - 1));
                carried[0] = ld1(prev_ab, so);
                carried[1] = ld1(prev_ab, so + 1);
            }
            st1(ab, o, vf_carry_mix(s, carried[0], ld1(ab, o)));
            st1(ab, o + 1, vf_carry_mix(s, carried[1], ld1(ab, o + 1)));
        }
    }
    return VF_OK;
}
