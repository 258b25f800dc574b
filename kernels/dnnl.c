/* kernels/dnnl.c: the CPU backend's primitives on oneDNN 2.6 (C API): convolution (NHWC,
 * weights reordered once, fused residual/activation/scale, reflect padding), matmul, pooling.
 *
 * Layout: every primitive is created for DENSE NHWC tensors. oneDNN 2.6 runs channel-slice
 * views (pix_stride > c, i.e. non-dense strides) only with its reference implementation
 * ("ref:any", orders of magnitude slower), so a view is copied into (or out of) the backend's
 * shared workspace around the run instead. Reflect padding also fills the workspace. The
 * workspace is sized at creation (vf_be_reserve_), so a run never allocates.
 *
 * Threads: each create and run first sets the backend's OpenMP thread count (vf_be_enter_),
 * so a primitive runs with the thread count it was created (and blocked) for.
 *
 * CUDA: on a CUDA backend (VF_BE_CUDA) each vf_*_create validates exactly as for the CPU, then
 * creates the cuDNN/cuBLAS primitive of kernels/cudnn.cu (kernels/cuda_ops.h, "primitives"),
 * which run, macs, impl and destroy dispatch to; the run-time tensor checks are shared too. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/internal.h"
#ifdef VF_HAVE_CUDA
#include "kernels/cuda_ops.h"
#endif

#define IMPL_MAX 96

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

static dnnl_data_type_t dnnl_dt(enum vf_dtype dt)
{
    switch (dt) {
    case VF_F32: return dnnl_f32;
    case VF_BF16: return dnnl_bf16;
    case VF_F16: return dnnl_f16;
    }
    return dnnl_data_type_undef;
}

static dnnl_status_t md_nhwc(dnnl_memory_desc_t *md, int n, int c, int h, int w,
                             enum vf_dtype dt)
{
    dnnl_dims_t dims = {n, c, h, w};
    return dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_dt(dt), dnnl_nhwc);
}

static void query_impl(const_dnnl_primitive_desc_t pd, char *buf)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl)
        impl = "unknown";
    snprintf(buf, IMPL_MAX, "%s", impl);
}

/* Which dtypes a primitive may be created for on this backend. */
static int check_compute_dtype(const struct vf_backend *be, enum vf_dtype dt, const char *what,
                               struct vf_error *err)
{
    if (dt != VF_F32 && dt != VF_BF16 && dt != VF_F16)
        return vf_error_set(err, VF_EINVAL, "%s: unknown dtype %d", what, (int)dt);
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be)) {
        if (!vf_backend_supports(be, dt))
            return vf_error_set(err, VF_EUNSUPPORTED,
                                "%s: the CUDA backend cannot compute in %s on GPU %d (compute "
                                "capability %d.%d; f16 needs 7.0, bf16 8.0); use precision f32",
                                what, vf_dtype_name(dt), vf_cuda_device(be), vf_cuda_cc(be) / 10,
                                vf_cuda_cc(be) % 10);
        return VF_OK;
    }
#endif
    if (!vf_backend_supports(be, dt))
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "%s: the CPU backend cannot compute in %s on this machine (%s); use "
                            "precision f32%s",
                            what, vf_dtype_name(dt),
                            dt == VF_F16 ? "oneDNN 2.6 has no f16 CPU kernels"
                                         : "the CPU has no avx512_bf16",
                            dt == VF_F16 && be->has_bf16 ? " or bf16" : "");
    return VF_OK;
}

/* Copy npix pixels of c elements (es bytes each) between pixel strides (in elements). */
static void copy_pixels(void *dst, size_t dps, const void *src, size_t sps, size_t npix, size_t c,
                        size_t es)
{
    const size_t row = c * es, dstep = dps * es, sstep = sps * es;
    const long long np = (long long)npix;
#pragma omp parallel for schedule(static)
    for (long long p = 0; p < np; p++)
        memcpy((char *)dst + (size_t)p * dstep, (const char *)src + (size_t)p * sstep, row);
}

/* PyTorch ReflectionPad2d index: mirror without repeating the edge (valid for pad < n). */
static inline int reflect_index(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * (n - 1) - i;
    return i;
}

/* Fill the dense NHWC (n, h+2p, w+2p, c) buffer dst from t by reflection. */
static void reflect_fill(void *dst, const struct vf_tensor *t, int pad)
{
    const size_t es = vf_dtype_size(t->dtype), row = (size_t)t->c * es;
    const int hp = t->h + 2 * pad, wp = t->w + 2 * pad;
    const long long rows = (long long)t->n * hp;
#pragma omp parallel for schedule(static)
    for (long long r = 0; r < rows; r++) {
        const int i = (int)(r / hp), y = (int)(r % hp);
        const int sy = reflect_index(y - pad, t->h);
        const char *srow =
            (const char *)t->data + ((size_t)i * t->h + sy) * t->w * t->pix_stride * es;
        char *drow = (char *)dst + (size_t)r * wp * row;
        for (int x = 0; x < wp; x++) {
            const int sx = reflect_index(x - pad, t->w);
            memcpy(drow + (size_t)x * row, srow + (size_t)sx * t->pix_stride * es, row);
        }
    }
}

/* Backend, shape and dtype check of a run's tensor: one of another backend would hand a host
 * pointer to cuDNN, or a device pointer to oneDNN (ops.c refuses the same). */
static int check_act(const struct vf_tensor *t, const struct vf_backend *be, const char *what,
                     enum vf_dtype dt, int n, int c, int h, int w, struct vf_error *err)
{
    if (!t || !t->data)
        return vf_error_set(err, VF_EINVAL, "%s: tensor has no data", what);
    if (t->be != be)
        return vf_error_set(err, VF_EINVAL, "%s: the tensor belongs to another backend than "
                            "the primitive", what);
    if (t->dtype != dt || t->n != n || t->c != c || t->h != h || t->w != w ||
        t->pix_stride < t->c)
        return vf_error_set(err, VF_EINVAL,
                            "%s: tensor is %s %d x %d x %d x %d (pix_stride %d), the primitive "
                            "was created for %s %d x %d x %d x %d",
                            what, vf_dtype_name(t->dtype), t->n, t->c, t->h, t->w, t->pix_stride,
                            vf_dtype_name(dt), n, c, h, w);
    return VF_OK;
}

/* ============================== convolution ================================================ */

struct vf_conv {
    struct vf_backend *be;
    struct vf_conv_desc d;
    enum vf_dtype dt, dst_dt;
    int n, h, w, oh, ow;
    int ch, cw;                   /* the convolution's input size (padded for reflect) */
    bool reflect;
    bool serial;                  /* runs on one thread (see conv_impl_is_deterministic) */
    dnnl_primitive_t prim;
    dnnl_memory_t src_m, wei_m, bias_m, dst_m, sp_m;
    void *wei;
    size_t wei_bytes;
    float *bias;
    size_t bias_bytes;
    size_t in_off, out_off, sp_off; /* regions of the backend workspace */
    double macs;
    char impl[IMPL_MAX];
    struct vf_cudnn_conv *cu;     /* a CUDA backend's primitive (kernels/cudnn.cu), or NULL */
};

void vf_conv_out_size(const struct vf_conv_desc *d, int h, int w, int *oh, int *ow)
{
    const int s = d->stride > 0 ? d->stride : 1, dil = d->dilation > 0 ? d->dilation : 1;
    *oh = (h + 2 * d->pad - dil * (d->kh - 1) - 1) / s + 1;
    *ow = (w + 2 * d->pad - dil * (d->kw - 1) - 1) / s + 1;
}

static int conv_validate(const struct vf_conv_desc *d, enum vf_dtype dt, enum vf_dtype dst_dt,
                         int n, int h, int w, const float *weight, struct vf_error *err)
{
    const char *bad = NULL;
    if (d->ic <= 0 || d->oc <= 0)
        bad = "channel counts must be positive";
    else if (d->kh <= 0 || d->kw <= 0)
        bad = "kernel size must be positive";
    else if (d->stride <= 0)
        bad = "stride must be positive";
    else if (d->dilation <= 0)
        bad = "dilation must be positive (1 = dense)";
    else if (d->pad < 0)
        bad = "pad must not be negative";
    else if (d->groups <= 0 || d->ic % d->groups || d->oc % d->groups)
        bad = "groups must divide ic and oc";
    else if (d->pad_mode != VF_PAD_ZERO && d->pad_mode != VF_PAD_REFLECT)
        bad = "unknown padding mode";
    else if (d->act == VF_ACT_PRELU)
        bad = "PReLU is not fused into convolutions; run vf_op_act after it";
    else if (d->act != VF_ACT_NONE && d->act != VF_ACT_RELU && d->act != VF_ACT_LRELU &&
             d->act != VF_ACT_TANH)
        bad = "unknown activation";
    else if (dst_dt != dt && dst_dt != VF_F32)
        bad = "the destination dtype must be the source dtype or f32";
    else if (n <= 0 || h <= 0 || w <= 0)
        bad = "input size must be positive";
    else if (!weight)
        bad = "no weights given";
    else if (d->pad_mode == VF_PAD_REFLECT && (d->pad >= h || d->pad >= w))
        bad = "reflect padding must be smaller than the input (PyTorch ReflectionPad2d)";
    if (!bad) {
        int oh, ow;
        vf_conv_out_size(d, h, w, &oh, &ow);
        if (oh <= 0 || ow <= 0)
            bad = "the kernel is larger than the padded input";
    }
    if (bad)
        return vf_error_set(err, VF_EINVAL,
                            "convolution %d -> %d, %dx%d stride %d pad %d%s dilation %d groups %d "
                            "over %d x %d x %d: %s",
                            d->ic, d->oc, d->kh, d->kw, d->stride, d->pad,
                            d->pad_mode == VF_PAD_REFLECT ? " reflect" : "", d->dilation,
                            d->groups, n, h, w, bad);
    return VF_OK;
}

/* oneDNN's direct JIT convolutions ("brgconv", "brdgmm_dw", "jit:", "jit_1x1:", "jit_dw:") and
 * the reference one ("ref:") reduce each output in one thread in a fixed order, whatever the
 * thread count (tests/test_prims.c checks 1-4 threads). The gemm-based convolution
 * ("gemm:jit", chosen e.g. for dilation > 2 or grouped convolutions on AVX2-only CPUs) splits
 * its GEMM by thread count and its bits change with it: such a primitive is created and run on
 * one thread. */
static bool conv_impl_is_deterministic(const char *impl)
{
    return strncmp(impl, "brg", 3) == 0 || strncmp(impl, "brdgmm", 6) == 0 ||
           strncmp(impl, "jit", 3) == 0 || strncmp(impl, "ref", 3) == 0;
}

static dnnl_status_t conv_post_ops(dnnl_primitive_attr_t attr, const struct vf_conv_desc *d)
{
    dnnl_post_ops_t po = NULL;
    dnnl_status_t st = dnnl_post_ops_create(&po);
    if (st != dnnl_success)
        return st;
    if (d->residual)
        st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success) {
        switch (d->act) {
        case VF_ACT_RELU:
            st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
            break;
        case VF_ACT_LRELU:
            st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, d->alpha, 0.0f);
            break;
        case VF_ACT_TANH:
            st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_tanh, 0.0f, 0.0f);
            break;
        default: break;
        }
    }
    if (st == dnnl_success && d->scale != 0.0f && d->scale != 1.0f)
        st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, d->scale, 0.0f);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    return st;
}

/* What every convolution records of its creation, whichever backend runs it: the description,
 * dtypes, shapes, output size, reflect geometry and multiply-accumulates. */
static void conv_init(struct vf_conv *cv, struct vf_backend *be, const struct vf_conv_desc *d,
                      enum vf_dtype dt, enum vf_dtype dst_dt, int n, int h, int w)
{
    cv->be = be;
    cv->d = *d;
    cv->dt = dt;
    cv->dst_dt = dst_dt;
    cv->n = n;
    cv->h = h;
    cv->w = w;
    vf_conv_out_size(d, h, w, &cv->oh, &cv->ow);
    cv->reflect = d->pad_mode == VF_PAD_REFLECT && d->pad > 0;
    cv->ch = cv->reflect ? h + 2 * d->pad : h;
    cv->cw = cv->reflect ? w + 2 * d->pad : w;
    cv->macs = (double)n * d->oc * cv->oh * cv->ow * (double)(d->ic / d->groups) * d->kh * d->kw;
}

#ifdef VF_HAVE_CUDA
/* A CUDA backend's convolution: the same shape bookkeeping, the work in kernels/cudnn.cu. */
static int conv_create_cuda(struct vf_conv **out, struct vf_backend *be,
                            const struct vf_conv_desc *d, enum vf_dtype dt, enum vf_dtype dst_dt,
                            int n, int h, int w, const float *weight, const float *bias,
                            struct vf_error *err)
{
    struct vf_conv *cv = vf_calloc(1, sizeof *cv, err);
    if (!cv)
        return VF_ENOMEM;
    conv_init(cv, be, d, dt, dst_dt, n, h, w);
    int rc = vf_cudnn_conv_create(&cv->cu, be, d, dt, dst_dt, n, h, w, weight, bias, err);
    if (rc) {
        if (err)
            vf_error_prefix(err, "convolution %d -> %d %dx%d (%s%s%s, GPU %d)", d->ic, d->oc,
                            d->kh, d->kw, vf_dtype_name(dt), dst_dt != dt ? " -> " : "",
                            dst_dt != dt ? vf_dtype_name(dst_dt) : "", vf_cuda_device(be));
        free(cv);
        return rc;
    }
    snprintf(cv->impl, sizeof cv->impl, "%s", vf_cudnn_conv_impl(cv->cu));
    *out = cv;
    return VF_OK;
}
#endif

int vf_conv_create(struct vf_conv **out, struct vf_backend *be, const struct vf_conv_desc *d,
                   enum vf_dtype dt, enum vf_dtype dst_dt, int n, int h, int w,
                   const float *weight, const float *bias, struct vf_error *err)
{
    *out = NULL;
    int rc = conv_validate(d, dt, dst_dt, n, h, w, weight, err);
    if (rc)
        return rc;
    if ((rc = check_compute_dtype(be, dt, "convolution", err)))
        return rc;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be))
        return conv_create_cuda(out, be, d, dt, dst_dt, n, h, w, weight, bias, err);
#endif

    struct vf_conv *cv = vf_calloc(1, sizeof *cv, err);
    if (!cv)
        return VF_ENOMEM;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t user_w = NULL;
    rc = VF_EINTERNAL;

    conv_init(cv, be, d, dt, dst_dt, n, h, w);
    const int dpad = cv->reflect ? 0 : d->pad;
    const int g = d->groups;
    vf_be_enter_(be);

    dnnl_memory_desc_t src_md, dst_md, wei_md, bias_md, user_md;
    VF_CHECK_DNNL(md_nhwc(&src_md, n, d->ic, cv->ch, cv->cw, dt), err, fail);
    VF_CHECK_DNNL(md_nhwc(&dst_md, n, d->oc, cv->oh, cv->ow, dst_dt), err, fail);
    if (g == 1) {
        dnnl_dims_t wd = {d->oc, d->ic, d->kh, d->kw};
        VF_CHECK_DNNL(dnnl_memory_desc_init_by_tag(&wei_md, 4, wd, dnnl_dt(dt),
                                                   dnnl_format_tag_any), err, fail);
        VF_CHECK_DNNL(dnnl_memory_desc_init_by_tag(&user_md, 4, wd, dnnl_f32, dnnl_oihw), err,
                      fail);
    } else {
        dnnl_dims_t wd = {g, d->oc / g, d->ic / g, d->kh, d->kw};
        VF_CHECK_DNNL(dnnl_memory_desc_init_by_tag(&wei_md, 5, wd, dnnl_dt(dt),
                                                   dnnl_format_tag_any), err, fail);
        VF_CHECK_DNNL(dnnl_memory_desc_init_by_tag(&user_md, 5, wd, dnnl_f32, dnnl_goihw), err,
                      fail);
    }
    dnnl_dims_t bd = {d->oc};
    VF_CHECK_DNNL(dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_a), err, fail);
    dnnl_dims_t strides = {d->stride, d->stride}, dil = {d->dilation - 1, d->dilation - 1};
    dnnl_dims_t pads = {dpad, dpad};
    dnnl_convolution_desc_t cd;
    VF_CHECK_DNNL(dnnl_dilated_convolution_forward_desc_init(
                      &cd, dnnl_forward_inference, dnnl_convolution_direct, &src_md, &wei_md,
                      bias ? &bias_md : NULL, &dst_md, strides, dil, pads, pads),
                  err, fail);
    VF_CHECK_DNNL(dnnl_primitive_attr_create(&attr), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), err,
                  fail);
    VF_CHECK_DNNL(conv_post_ops(attr, d), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_desc_create(&pd, &cd, attr, be->engine, NULL), err, fail);
    query_impl(pd, cv->impl);
    if (!conv_impl_is_deterministic(cv->impl) && be->threads > 1) {
        /* re-create it for one thread (some implementations size their work split at
         * creation), and run it on one */
        cv->serial = true;
        dnnl_primitive_desc_destroy(pd);
        pd = NULL;
        omp_set_num_threads(1);
        dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, be->engine, NULL);
        vf_be_enter_(be);
        VF_CHECK_DNNL(st, err, fail);
        char impl[IMPL_MAX];
        query_impl(pd, impl);
        snprintf(cv->impl, sizeof cv->impl, "%.70s, 1 thread", impl);
    }

    /* weights: reorder once from OIHW f32 into the primitive's preferred layout and dtype */
    const dnnl_memory_desc_t *pw = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    cv->wei_bytes = dnnl_memory_desc_get_size(pw);
    if (!(cv->wei = vf_be_alloc_(be, cv->wei_bytes, err))) {
        rc = VF_ENOMEM;
        goto fail;
    }
    VF_CHECK_DNNL(dnnl_memory_create(&cv->wei_m, pw, be->engine, cv->wei), err, fail);
    VF_CHECK_DNNL(dnnl_memory_create(&user_w, &user_md, be->engine, (void *)(uintptr_t)weight),
                  err, fail);
    VF_CHECK_DNNL(dnnl_reorder_primitive_desc_create(&rpd, &user_md, be->engine, pw, be->engine,
                                                     NULL), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_create(&reorder, rpd), err, fail);
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, cv->wei_m}};
    VF_CHECK_DNNL(dnnl_primitive_execute(reorder, be->stream, 2, rargs), err, fail);
    VF_CHECK_DNNL(dnnl_stream_wait(be->stream), err, fail);

    if (bias) {
        cv->bias_bytes = (size_t)d->oc * sizeof(float);
        if (!(cv->bias = vf_be_alloc_(be, cv->bias_bytes, err))) {
            rc = VF_ENOMEM;
            goto fail;
        }
        memcpy(cv->bias, bias, cv->bias_bytes);
        VF_CHECK_DNNL(dnnl_memory_create(&cv->bias_m, &bias_md, be->engine, cv->bias), err, fail);
    }
    VF_CHECK_DNNL(dnnl_memory_create(&cv->src_m,
                                     dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                                     be->engine, DNNL_MEMORY_NONE), err, fail);
    VF_CHECK_DNNL(dnnl_memory_create(&cv->dst_m,
                                     dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
                                     be->engine, DNNL_MEMORY_NONE), err, fail);
    const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sp_bytes = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    if (sp_bytes)
        VF_CHECK_DNNL(dnnl_memory_create(&cv->sp_m, spmd, be->engine, DNNL_MEMORY_NONE), err,
                      fail);
    if (cv->serial)
        omp_set_num_threads(1);
    dnnl_status_t pst = dnnl_primitive_create(&cv->prim, pd);
    vf_be_enter_(be);
    VF_CHECK_DNNL(pst, err, fail);

    /* workspace: [dense/padded source | dense destination | scratchpad] */
    const size_t in_bytes =
        (size_t)n * cv->ch * cv->cw * d->ic * vf_dtype_size(dt);
    const size_t out_bytes = (size_t)n * cv->oh * cv->ow * d->oc * vf_dtype_size(dst_dt);
    cv->in_off = 0;
    cv->out_off = align64(in_bytes);
    cv->sp_off = cv->out_off + align64(out_bytes);
    if ((rc = vf_be_reserve_(be, cv->sp_off + align64(sp_bytes), err)))
        goto fail;

    rc = VF_OK;
    *out = cv;
    goto done;
fail:
    if (err && rc != VF_OK)
        vf_error_prefix(err, "convolution %d -> %d %dx%d (%s%s%s)", d->ic, d->oc, d->kh, d->kw,
                        vf_dtype_name(dt), dst_dt != dt ? " -> " : "",
                        dst_dt != dt ? vf_dtype_name(dst_dt) : "");
    vf_conv_destroy(&cv);
done:
    if (reorder)
        dnnl_primitive_destroy(reorder);
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    if (user_w)
        dnnl_memory_destroy(user_w);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

int vf_conv_run(struct vf_conv *cv, const struct vf_tensor *src, struct vf_tensor *dst,
                struct vf_error *err)
{
    int rc;
    if ((rc = check_act(src, cv->be, "convolution source", cv->dt, cv->n, cv->d.ic, cv->h, cv->w,
                        err)))
        return rc;
    if ((rc = check_act(dst, cv->be, "convolution destination", cv->dst_dt, cv->n, cv->d.oc, cv->oh,
                        cv->ow, err)))
        return rc;
#ifdef VF_HAVE_CUDA
    if (cv->cu)
        return vf_cudnn_conv_run(cv->cu, src, dst, err);
#endif
    struct vf_backend *be = cv->be;
    vf_be_enter_(be);
    char *ws = be->ws;
    const size_t es = vf_dtype_size(cv->dt), des = vf_dtype_size(cv->dst_dt);
    void *in = src->data;
    if (cv->reflect) {
        in = ws + cv->in_off;
        reflect_fill(in, src, cv->d.pad);
    } else if (src->pix_stride != src->c) {
        in = ws + cv->in_off;
        copy_pixels(in, (size_t)src->c, src->data, (size_t)src->pix_stride,
                    (size_t)src->n * src->h * src->w, (size_t)src->c, es);
    }
    const bool dview = dst->pix_stride != dst->c;
    const size_t dpix = (size_t)dst->n * dst->h * dst->w;
    void *o = dst->data;
    if (dview) {
        o = ws + cv->out_off;
        if (cv->d.residual)
            copy_pixels(o, (size_t)dst->c, dst->data, (size_t)dst->pix_stride, dpix,
                        (size_t)dst->c, des);
    }
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(cv->src_m, in), err, fail);
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(cv->dst_m, o), err, fail);
    dnnl_exec_arg_t args[5];
    int na = 0;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, cv->src_m};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, cv->wei_m};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, cv->dst_m};
    if (cv->bias_m)
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, cv->bias_m};
    if (cv->sp_m) {
        VF_CHECK_DNNL(dnnl_memory_set_data_handle(cv->sp_m, ws + cv->sp_off), err, fail);
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, cv->sp_m};
    }
    if (cv->serial)
        omp_set_num_threads(1);
    dnnl_status_t st = dnnl_primitive_execute(cv->prim, be->stream, na, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(be->stream);
    vf_be_enter_(be);
    VF_CHECK_DNNL(st, err, fail);
    if (dview)
        copy_pixels(dst->data, (size_t)dst->pix_stride, o, (size_t)dst->c, dpix, (size_t)dst->c,
                    des);
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

double vf_conv_macs(const struct vf_conv *cv) { return cv ? cv->macs : 0.0; }

const char *vf_conv_impl_(const struct vf_conv *cv) { return cv ? cv->impl : ""; }

void vf_conv_destroy(struct vf_conv **cvp)
{
    if (!cvp || !*cvp)
        return;
    struct vf_conv *cv = *cvp;
#ifdef VF_HAVE_CUDA
    vf_cudnn_conv_destroy(&cv->cu);
#endif
    if (cv->prim)
        dnnl_primitive_destroy(cv->prim);
    if (cv->src_m)
        dnnl_memory_destroy(cv->src_m);
    if (cv->wei_m)
        dnnl_memory_destroy(cv->wei_m);
    if (cv->bias_m)
        dnnl_memory_destroy(cv->bias_m);
    if (cv->dst_m)
        dnnl_memory_destroy(cv->dst_m);
    if (cv->sp_m)
        dnnl_memory_destroy(cv->sp_m);
    vf_be_free_(cv->be, cv->wei, cv->wei_bytes);
    vf_be_free_(cv->be, cv->bias, cv->bias_bytes);
    free(cv);
    *cvp = NULL;
}

/* ============================== matmul ===================================================== */
/* Determinism. oneDNN's brgemm matmul ("brg:...") reduces each output over k in one thread, in
 * a fixed order, whatever the thread count; it needs dense operands (lda = k, ldc = n, ldb = n
 * or k when transposed), so strided operands are copied through the workspace. The
 * gemm-based matmul ("gemm:jit": strided operands, or CPUs without AVX-512) splits k across
 * threads when m·n is small, so its bits depend on the thread count. When brgemm is not
 * available we therefore cut m into fixed chunks of VF_MM_ROWS rows and run each chunk on one
 * thread (an OpenMP loop over chunks; oneDNN runs sequentially inside a parallel region), with
 * primitives created for one thread: the result depends on the chunking, never on threads. */
#define VF_MM_ROWS 32

struct mm_thread {                /* chunked mode: what one OpenMP thread uses */
    dnnl_stream_t stream;
    dnnl_memory_t a[2], c[2], b[2], sp[2]; /* [0] full chunk, [1] tail chunk */
};

struct vf_matmul {
    struct vf_backend *be;
    struct vf_matmul_desc d;
    enum vf_dtype dt;
    bool chunked;
    /* dense mode (brgemm) */
    bool copy_a, copy_b, copy_c;
    size_t a_off, b_off, c_off, sp_off;
    dnnl_primitive_t prim;
    dnnl_memory_t a_m, b_m, c_m, sp_m;
    /* chunked mode */
    int nfull, tail, nthr;
    dnnl_primitive_t part[2];     /* VF_MM_ROWS rows, tail rows */
    struct mm_thread *thr;
    size_t sp_stride;
    char impl[IMPL_MAX];
    struct vf_cublas_matmul *cu;  /* a CUDA backend's matmul (kernels/cudnn.cu), or NULL */
};

/* Memory descriptors of an m-row (sub)problem; dense: leading dimensions = row lengths. */
static dnnl_status_t mm_mds(const struct vf_matmul_desc *d, enum vf_dtype dt, int rows,
                            bool dense, dnnl_memory_desc_t *a, dnnl_memory_desc_t *b,
                            dnnl_memory_desc_t *c)
{
    const dnnl_dim_t lda = dense ? d->k : d->lda, ldc = dense ? d->n : d->ldc;
    const dnnl_dim_t ldb = dense ? (d->trans_b ? d->k : d->n) : d->ldb;
    dnnl_dims_t ad = {rows, d->k}, as = {lda, 1};
    dnnl_dims_t bd = {d->k, d->n}, bs_n = {ldb, 1}, bs_t = {1, ldb};
    dnnl_dims_t cd = {rows, d->n}, cs = {ldc, 1};
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(a, 2, ad, dnnl_dt(dt), as);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(b, 2, bd, dnnl_dt(dt), d->trans_b ? bs_t : bs_n);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(c, 2, cd, dnnl_f32, cs);
    return st;
}

static dnnl_status_t mm_pd(dnnl_primitive_desc_t *pd, struct vf_backend *be,
                           const_dnnl_primitive_attr_t attr, const dnnl_memory_desc_t *a,
                           const dnnl_memory_desc_t *b, const dnnl_memory_desc_t *c)
{
    dnnl_matmul_desc_t md;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, a, b, NULL, c);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &md, attr, be->engine, NULL);
    return st;
}

static size_t pd_scratchpad_bytes(const_dnnl_primitive_desc_t pd)
{
    const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return m ? dnnl_memory_desc_get_size(m) : 0;
}

/* Copy `rows` rows of `cols` elements between leading dimensions. */
static void copy_rows(void *dst, size_t dld, const void *src, size_t sld, size_t rows,
                      size_t cols, size_t es)
{
    copy_pixels(dst, dld, src, sld, rows, cols, es);
}

static int mm_create_dense(struct vf_matmul *mm, const_dnnl_primitive_desc_t pd,
                           const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b,
                           const dnnl_memory_desc_t *c, struct vf_error *err)
{
    struct vf_backend *be = mm->be;
    const struct vf_matmul_desc *d = &mm->d;
    const size_t es = vf_dtype_size(mm->dt);
    mm->copy_a = d->lda != d->k;
    mm->copy_b = d->ldb != (d->trans_b ? d->k : d->n);
    mm->copy_c = d->ldc != d->n;
    size_t off = 0;
    mm->a_off = off;
    off += mm->copy_a ? align64((size_t)d->m * d->k * es) : 0;
    mm->b_off = off;
    off += mm->copy_b ? align64((size_t)d->k * d->n * es) : 0;
    mm->c_off = off;
    off += mm->copy_c ? align64((size_t)d->m * d->n * sizeof(float)) : 0;
    mm->sp_off = off;
    const size_t sp = pd_scratchpad_bytes(pd);
    VF_CHECK_DNNL(dnnl_memory_create(&mm->a_m, a, be->engine, DNNL_MEMORY_NONE), err, fail);
    VF_CHECK_DNNL(dnnl_memory_create(&mm->b_m, b, be->engine, DNNL_MEMORY_NONE), err, fail);
    VF_CHECK_DNNL(dnnl_memory_create(&mm->c_m, c, be->engine, DNNL_MEMORY_NONE), err, fail);
    if (sp)
        VF_CHECK_DNNL(dnnl_memory_create(&mm->sp_m,
                                         dnnl_primitive_desc_query_md(
                                             pd, dnnl_query_scratchpad_md, 0),
                                         be->engine, DNNL_MEMORY_NONE), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_create(&mm->prim, pd), err, fail);
    return vf_be_reserve_(be, off + align64(sp), err);
fail:
    return VF_EINTERNAL;
}

static int mm_create_chunked(struct vf_matmul *mm, const_dnnl_primitive_attr_t attr,
                             struct vf_error *err)
{
    struct vf_backend *be = mm->be;
    const struct vf_matmul_desc *d = &mm->d;
    dnnl_primitive_desc_t pd[2] = {NULL, NULL};
    dnnl_memory_desc_t a[2], b[2], c[2];
    size_t sp[2] = {0, 0};
    int rc = VF_EINTERNAL;
    mm->chunked = true;
    mm->nfull = d->m / VF_MM_ROWS;
    mm->tail = d->m % VF_MM_ROWS;
    mm->nthr = be->threads;
    /* primitives for one thread: each chunk runs sequentially on one OpenMP thread */
    omp_set_num_threads(1);
    for (int i = 0; i < 2; i++) {
        const int rows = i == 0 ? VF_MM_ROWS : mm->tail;
        if (i == 0 ? mm->nfull == 0 : mm->tail == 0)
            continue;
        VF_CHECK_DNNL(mm_mds(d, mm->dt, rows, false, &a[i], &b[i], &c[i]), err, fail);
        VF_CHECK_DNNL(mm_pd(&pd[i], be, attr, &a[i], &b[i], &c[i]), err, fail);
        sp[i] = pd_scratchpad_bytes(pd[i]);
        VF_CHECK_DNNL(dnnl_primitive_create(&mm->part[i], pd[i]), err, fail);
        if (!mm->impl[0]) {
            char impl[IMPL_MAX];
            query_impl(pd[i], impl);
            snprintf(mm->impl, sizeof mm->impl, "%.60s, %d-row chunks", impl, VF_MM_ROWS);
        }
    }
    vf_be_enter_(be);
    if (!(mm->thr = vf_calloc((size_t)mm->nthr, sizeof *mm->thr, err))) {
        rc = VF_ENOMEM;
        goto fail;
    }
    for (int t = 0; t < mm->nthr; t++) {
        struct mm_thread *th = &mm->thr[t];
        VF_CHECK_DNNL(dnnl_stream_create(&th->stream, be->engine, dnnl_stream_default_flags),
                      err, fail);
        for (int i = 0; i < 2; i++) {
            if (!mm->part[i])
                continue;
            VF_CHECK_DNNL(dnnl_memory_create(&th->a[i], &a[i], be->engine, DNNL_MEMORY_NONE),
                          err, fail);
            VF_CHECK_DNNL(dnnl_memory_create(&th->b[i], &b[i], be->engine, DNNL_MEMORY_NONE),
                          err, fail);
            VF_CHECK_DNNL(dnnl_memory_create(&th->c[i], &c[i], be->engine, DNNL_MEMORY_NONE),
                          err, fail);
            if (sp[i])
                VF_CHECK_DNNL(dnnl_memory_create(&th->sp[i],
                                                 dnnl_primitive_desc_query_md(
                                                     pd[i], dnnl_query_scratchpad_md, 0),
                                                 be->engine, DNNL_MEMORY_NONE), err, fail);
        }
    }
    mm->sp_stride = align64(sp[0] > sp[1] ? sp[0] : sp[1]);
    rc = vf_be_reserve_(be, mm->sp_stride * (size_t)mm->nthr, err);
fail:
    vf_be_enter_(be);
    for (int i = 0; i < 2; i++)
        if (pd[i])
            dnnl_primitive_desc_destroy(pd[i]);
    return rc;
}

int vf_matmul_create(struct vf_matmul **out, struct vf_backend *be,
                     const struct vf_matmul_desc *d, enum vf_dtype dt, struct vf_error *err)
{
    *out = NULL;
    if (d->m <= 0 || d->n <= 0 || d->k <= 0 || d->lda < d->k ||
        d->ldb < (d->trans_b ? d->k : d->n) || d->ldc < d->n)
        return vf_error_set(err, VF_EINVAL,
                            "matmul m %d n %d k %d lda %d ldb %d ldc %d%s: sizes must be positive "
                            "and each leading dimension at least its row length",
                            d->m, d->n, d->k, d->lda, d->ldb, d->ldc,
                            d->trans_b ? " (B transposed)" : "");
    int rc = check_compute_dtype(be, dt, "matmul", err);
    if (rc)
        return rc;
    struct vf_matmul *mm = vf_calloc(1, sizeof *mm, err);
    if (!mm)
        return VF_ENOMEM;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be)) {
        mm->be = be;
        mm->d = *d;
        mm->dt = dt;
        if ((rc = vf_cublas_matmul_create(&mm->cu, be, d, dt, err))) {
            if (err)
                vf_error_prefix(err, "matmul %d x %d x %d (%s, GPU %d)", d->m, d->n, d->k,
                                vf_dtype_name(dt), vf_cuda_device(be));
            free(mm);
            return rc;
        }
        snprintf(mm->impl, sizeof mm->impl, "%s", vf_cublas_matmul_impl(mm->cu));
        *out = mm;
        return VF_OK;
    }
#endif
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    rc = VF_EINTERNAL;
    mm->be = be;
    mm->d = *d;
    mm->dt = dt;
    vf_be_enter_(be);
    VF_CHECK_DNNL(dnnl_primitive_attr_create(&attr), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), err,
                  fail);
    dnnl_memory_desc_t a, b, c;
    VF_CHECK_DNNL(mm_mds(d, dt, d->m, true, &a, &b, &c), err, fail);
    char impl[IMPL_MAX] = "";
    if (mm_pd(&pd, be, attr, &a, &b, &c) == dnnl_success)
        query_impl(pd, impl);
    if (strncmp(impl, "brg", 3) == 0) {
        snprintf(mm->impl, sizeof mm->impl, "%s", impl);
        rc = mm_create_dense(mm, pd, &a, &b, &c, err);
    } else {
        rc = mm_create_chunked(mm, attr, err);
    }
    if (rc)
        goto fail;
    *out = mm;
    goto done;
fail:
    if (err && rc != VF_OK)
        vf_error_prefix(err, "matmul %d x %d x %d (%s)", d->m, d->n, d->k, vf_dtype_name(dt));
    vf_matmul_destroy(&mm);
    if (rc == VF_OK)
        rc = VF_EINTERNAL;
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

static int mm_run_chunked(struct vf_matmul *mm, const char *a, const char *b, float *c,
                          struct vf_error *err)
{
    const struct vf_matmul_desc *d = &mm->d;
    const size_t es = vf_dtype_size(mm->dt);
    const int nchunks = mm->nfull + (mm->tail ? 1 : 0);
    char *ws = mm->be->ws;
    dnnl_status_t failed = dnnl_success;
#pragma omp parallel for schedule(static) num_threads(mm->nthr)
    for (int ch = 0; ch < nchunks; ch++) {
        const int t = omp_get_thread_num(), i = ch < mm->nfull ? 0 : 1;
        struct mm_thread *th = &mm->thr[t];
        const size_t r0 = (size_t)ch * VF_MM_ROWS;
        dnnl_status_t st = dnnl_memory_set_data_handle(
            th->a[i], (void *)(uintptr_t)(a + r0 * d->lda * es));
        if (st == dnnl_success)
            st = dnnl_memory_set_data_handle(th->b[i], (void *)(uintptr_t)b);
        if (st == dnnl_success)
            st = dnnl_memory_set_data_handle(th->c[i], c + r0 * d->ldc);
        if (st == dnnl_success && th->sp[i])
            st = dnnl_memory_set_data_handle(th->sp[i], ws + (size_t)t * mm->sp_stride);
        if (st == dnnl_success) {
            dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, th->a[i]},
                                       {DNNL_ARG_WEIGHTS, th->b[i]},
                                       {DNNL_ARG_DST, th->c[i]},
                                       {DNNL_ARG_SCRATCHPAD, th->sp[i]}};
            st = dnnl_primitive_execute(mm->part[i], th->stream, th->sp[i] ? 4 : 3, args);
        }
        if (st == dnnl_success)
            st = dnnl_stream_wait(th->stream);
        if (st != dnnl_success) {
#pragma omp atomic write
            failed = st;
        }
    }
    VF_CHECK_DNNL(failed, err, fail);
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

int vf_matmul_run(struct vf_matmul *mm, const void *a, const void *b, float *c,
                  struct vf_error *err)
{
    if (!a || !b || !c)
        return vf_error_set(err, VF_EINVAL, "matmul: a NULL operand");
#ifdef VF_HAVE_CUDA
    if (mm->cu)
        return vf_cublas_matmul_run(mm->cu, a, b, c, err);
#endif
    struct vf_backend *be = mm->be;
    const struct vf_matmul_desc *d = &mm->d;
    vf_be_enter_(be);
    if (mm->chunked)
        return mm_run_chunked(mm, a, b, c, err);
    char *ws = be->ws;
    const size_t es = vf_dtype_size(mm->dt);
    const void *ea = a, *eb = b;
    float *ec = c;
    if (mm->copy_a) {
        copy_rows(ws + mm->a_off, (size_t)d->k, a, (size_t)d->lda, (size_t)d->m, (size_t)d->k, es);
        ea = ws + mm->a_off;
    }
    if (mm->copy_b) {
        const size_t rows = d->trans_b ? d->n : d->k, cols = d->trans_b ? d->k : d->n;
        copy_rows(ws + mm->b_off, cols, b, (size_t)d->ldb, rows, cols, es);
        eb = ws + mm->b_off;
    }
    if (mm->copy_c)
        ec = (float *)(void *)(ws + mm->c_off);
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(mm->a_m, (void *)(uintptr_t)ea), err, fail);
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(mm->b_m, (void *)(uintptr_t)eb), err, fail);
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(mm->c_m, ec), err, fail);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, mm->a_m},
                               {DNNL_ARG_WEIGHTS, mm->b_m},
                               {DNNL_ARG_DST, mm->c_m},
                               {DNNL_ARG_SCRATCHPAD, mm->sp_m}};
    if (mm->sp_m)
        VF_CHECK_DNNL(dnnl_memory_set_data_handle(mm->sp_m, ws + mm->sp_off), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_execute(mm->prim, be->stream, mm->sp_m ? 4 : 3, args), err,
                  fail);
    VF_CHECK_DNNL(dnnl_stream_wait(be->stream), err, fail);
    if (mm->copy_c)
        copy_rows(c, (size_t)d->ldc, ec, (size_t)d->n, (size_t)d->m, (size_t)d->n,
                  sizeof(float));
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

double vf_matmul_macs(const struct vf_matmul *mm)
{
    return mm ? (double)mm->d.m * mm->d.n * mm->d.k : 0.0;
}

const char *vf_matmul_impl_(const struct vf_matmul *mm) { return mm ? mm->impl : ""; }

static void destroy_mem(dnnl_memory_t m)
{
    if (m)
        dnnl_memory_destroy(m);
}

void vf_matmul_destroy(struct vf_matmul **mmp)
{
    if (!mmp || !*mmp)
        return;
    struct vf_matmul *mm = *mmp;
#ifdef VF_HAVE_CUDA
    vf_cublas_matmul_destroy(&mm->cu);
#endif
    if (mm->prim)
        dnnl_primitive_destroy(mm->prim);
    destroy_mem(mm->a_m);
    destroy_mem(mm->b_m);
    destroy_mem(mm->c_m);
    destroy_mem(mm->sp_m);
    for (int i = 0; i < 2; i++)
        if (mm->part[i])
            dnnl_primitive_destroy(mm->part[i]);
    if (mm->thr) {
        for (int t = 0; t < mm->nthr; t++) {
            struct mm_thread *th = &mm->thr[t];
            for (int i = 0; i < 2; i++) {
                destroy_mem(th->a[i]);
                destroy_mem(th->b[i]);
                destroy_mem(th->c[i]);
                destroy_mem(th->sp[i]);
            }
            if (th->stream)
                dnnl_stream_destroy(th->stream);
        }
        free(mm->thr);
    }
    free(mm);
    *mmp = NULL;
}

/* ============================== pooling ==================================================== */

struct vf_pool {
    struct vf_backend *be;
    struct vf_pool_desc d;
    enum vf_dtype dt;
    int n, c, h, w, oh, ow;
    dnnl_primitive_t prim;
    dnnl_memory_t src_m, dst_m, sp_m;
    size_t in_off, out_off, sp_off;
    char impl[IMPL_MAX];
    struct vf_cudnn_pool *cu;     /* a CUDA backend's pooling (kernels/cudnn.cu), or NULL */
};

void vf_pool_out_size(const struct vf_pool_desc *d, int h, int w, int *oh, int *ow)
{
    const int s = d->stride > 0 ? d->stride : 1;
    *oh = (h + 2 * d->pad - d->k) / s + 1;
    *ow = (w + 2 * d->pad - d->k) / s + 1;
}

int vf_pool_create(struct vf_pool **out, struct vf_backend *be, const struct vf_pool_desc *d,
                   enum vf_dtype dt, int n, int c, int h, int w, struct vf_error *err)
{
    *out = NULL;
    int oh = 0, ow = 0;
    if (d->k > 0 && d->stride > 0)
        vf_pool_out_size(d, h, w, &oh, &ow);
    if ((d->kind != VF_POOL_MAX && d->kind != VF_POOL_AVG) || d->k <= 0 || d->stride <= 0 ||
        d->pad < 0 || d->pad >= d->k || n <= 0 || c <= 0 || h <= 0 || w <= 0 || oh <= 0 ||
        ow <= 0)
        return vf_error_set(err, VF_EINVAL,
                            "pooling kind %d, %dx%d stride %d pad %d over %d x %d x %d x %d: the "
                            "window, stride and size must be positive and pad smaller than the "
                            "window",
                            (int)d->kind, d->k, d->k, d->stride, d->pad, n, c, h, w);
    int rc = check_compute_dtype(be, dt, "pooling", err);
    if (rc)
        return rc;
    struct vf_pool *p = vf_calloc(1, sizeof *p, err);
    if (!p)
        return VF_ENOMEM;
#ifdef VF_HAVE_CUDA
    if (VF_BE_CUDA(be)) {
        p->be = be;
        p->d = *d;
        p->dt = dt;
        p->n = n;
        p->c = c;
        p->h = h;
        p->w = w;
        p->oh = oh;
        p->ow = ow;
        if ((rc = vf_cudnn_pool_create(&p->cu, be, d, dt, n, c, h, w, err))) {
            if (err)
                vf_error_prefix(err, "pooling %dx%d over %d x %d x %d x %d (%s, GPU %d)", d->k,
                                d->k, n, c, h, w, vf_dtype_name(dt), vf_cuda_device(be));
            free(p);
            return rc;
        }
        snprintf(p->impl, sizeof p->impl, "%s", vf_cudnn_pool_impl(p->cu));
        *out = p;
        return VF_OK;
    }
#endif
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    rc = VF_EINTERNAL;
    p->be = be;
    p->d = *d;
    p->dt = dt;
    p->n = n;
    p->c = c;
    p->h = h;
    p->w = w;
    p->oh = oh;
    p->ow = ow;
    vf_be_enter_(be);

    dnnl_memory_desc_t src_md, dst_md;
    VF_CHECK_DNNL(md_nhwc(&src_md, n, c, h, w, dt), err, fail);
    VF_CHECK_DNNL(md_nhwc(&dst_md, n, c, oh, ow, dt), err, fail);
    dnnl_dims_t strides = {d->stride, d->stride}, kernel = {d->k, d->k}, pads = {d->pad, d->pad};
    dnnl_pooling_desc_t pdsc;
    VF_CHECK_DNNL(dnnl_pooling_forward_desc_init(
                      &pdsc, dnnl_forward_inference,
                      d->kind == VF_POOL_MAX ? dnnl_pooling_max : dnnl_pooling_avg_exclude_padding,
                      &src_md, &dst_md, strides, kernel, pads, pads),
                  err, fail);
    VF_CHECK_DNNL(dnnl_primitive_attr_create(&attr), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), err,
                  fail);
    VF_CHECK_DNNL(dnnl_primitive_desc_create(&pd, &pdsc, attr, be->engine, NULL), err, fail);
    query_impl(pd, p->impl);
    VF_CHECK_DNNL(dnnl_memory_create(&p->src_m, &src_md, be->engine, DNNL_MEMORY_NONE), err,
                  fail);
    VF_CHECK_DNNL(dnnl_memory_create(&p->dst_m, &dst_md, be->engine, DNNL_MEMORY_NONE), err,
                  fail);
    const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t sp_bytes = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    if (sp_bytes)
        VF_CHECK_DNNL(dnnl_memory_create(&p->sp_m, spmd, be->engine, DNNL_MEMORY_NONE), err,
                      fail);
    VF_CHECK_DNNL(dnnl_primitive_create(&p->prim, pd), err, fail);
    const size_t es = vf_dtype_size(dt);
    p->in_off = 0;
    p->out_off = align64((size_t)n * c * h * w * es);
    p->sp_off = p->out_off + align64((size_t)n * c * oh * ow * es);
    if ((rc = vf_be_reserve_(be, p->sp_off + align64(sp_bytes), err)))
        goto fail;
    rc = VF_OK;
    *out = p;
    goto done;
fail:
    if (err && rc != VF_OK)
        vf_error_prefix(err, "pooling %dx%d over %d x %d x %d x %d (%s)", d->k, d->k, n, c, h, w,
                        vf_dtype_name(dt));
    vf_pool_destroy(&p);
done:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

int vf_pool_run(struct vf_pool *p, const struct vf_tensor *src, struct vf_tensor *dst,
                struct vf_error *err)
{
    int rc;
    if ((rc = check_act(src, p->be, "pooling source", p->dt, p->n, p->c, p->h, p->w, err)))
        return rc;
    if ((rc = check_act(dst, p->be, "pooling destination", p->dt, p->n, p->c, p->oh, p->ow, err)))
        return rc;
#ifdef VF_HAVE_CUDA
    if (p->cu)
        return vf_cudnn_pool_run(p->cu, src, dst, err);
#endif
    struct vf_backend *be = p->be;
    vf_be_enter_(be);
    char *ws = be->ws;
    const size_t es = vf_dtype_size(p->dt);
    void *in = src->data;
    if (src->pix_stride != src->c) {
        in = ws + p->in_off;
        copy_pixels(in, (size_t)src->c, src->data, (size_t)src->pix_stride,
                    (size_t)src->n * src->h * src->w, (size_t)src->c, es);
    }
    const bool dview = dst->pix_stride != dst->c;
    void *o = dview ? ws + p->out_off : dst->data;
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(p->src_m, in), err, fail);
    VF_CHECK_DNNL(dnnl_memory_set_data_handle(p->dst_m, o), err, fail);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->src_m},
                               {DNNL_ARG_DST, p->dst_m},
                               {DNNL_ARG_SCRATCHPAD, p->sp_m}};
    if (p->sp_m)
        VF_CHECK_DNNL(dnnl_memory_set_data_handle(p->sp_m, ws + p->sp_off), err, fail);
    VF_CHECK_DNNL(dnnl_primitive_execute(p->prim, be->stream, p->sp_m ? 3 : 2, args), err, fail);
    VF_CHECK_DNNL(dnnl_stream_wait(be->stream), err, fail);
    if (dview)
        copy_pixels(dst->data, (size_t)dst->pix_stride, o, (size_t)dst->c,
                    (size_t)dst->n * dst->h * dst->w, (size_t)dst->c, es);
    return VF_OK;
fail:
    return VF_EINTERNAL;
}

const char *vf_pool_impl_(const struct vf_pool *p) { return p ? p->impl : ""; }

void vf_pool_destroy(struct vf_pool **pp)
{
    if (!pp || !*pp)
        return;
    struct vf_pool *p = *pp;
#ifdef VF_HAVE_CUDA
    vf_cudnn_pool_destroy(&p->cu);
#endif
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    if (p->src_m)
        dnnl_memory_destroy(p->src_m);
    if (p->dst_m)
        dnnl_memory_destroy(p->dst_m);
    if (p->sp_m)
        dnnl_memory_destroy(p->sp_m);
    free(p);
    *pp = NULL;
}
