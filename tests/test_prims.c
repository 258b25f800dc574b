/* tests/test_prims.c: the CPU backend's tensors and oneDNN primitives (kernels/backend.c,
 * kernels/dnnl.c) against plain C loops that are obviously correct (direct convolution in
 * double with explicit zero/reflect padding, naive matmul and pooling).
 *
 * Tolerances (relative L2: ‖out − ref‖₂ / ‖ref‖₂):
 *   f32 source and weights, f32 destination:            ≤ 1e-5 against the double loop.
 *   bf16 source and weights, f32 destination:            ≤ 1e-4 against the double loop fed with
 *                                                          the bf16-rounded inputs, weights and
 *                                                          residual (so only f32 accumulation
 *                                                          error is left).
 *   bf16 source and weights, bf16 destination:           ≤ 1e-3 against that loop's result
 *                                                          rounded to bf16 (one final rounding
 *                                                          that may fall the other way), and
 *                                                          ≤ 1e-2 against the unrounded loop.
 *   Max pooling: bit-exact. Average pooling: ≤ 1e-6 (f32), ≤ 1e-3 (bf16 vs rounded ref).
 *   Upload/download: exact (f32), equal to an independent rounding (bf16, f16).
 *   Thread determinism: bit-identical results with 1 and 2 threads.
 * bf16 cases print "skipped: no bf16 ISA" where the backend does not support bf16. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "test_util.h"

/* ============================== helpers ==================================================== */


/* bf16 rounding, written independently of backend.c: nearest, ties to even, via the double
 * value of the two neighbours. */
static float ref_bf16(float x)
{
    if (isnan(x) || isinf(x) || x == 0.0f)
        return x;
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t lo_u = u & 0xffff0000u, hi_u = lo_u + 0x10000u; /* the two bf16 neighbours */
    float lo, hi;
    memcpy(&lo, &lo_u, 4);
    memcpy(&hi, &hi_u, 4);
    double dhi = isinf(hi) ? copysign(0x1p128, x) : (double)hi; /* Inf rounds like 2^128 */
    double dl = fabs((double)x - (double)lo), dh = fabs(dhi - (double)x);
    if (dl < dh)
        return lo;
    if (dh < dl)
        return hi;
    return (lo_u >> 16) & 1u ? hi : lo;
}

static void round_buf_bf16(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = ref_bf16(p[i]);
}

/* On AVX2 and better, no primitive may fall back to oneDNN's slow reference code. */
static void assert_not_ref(const char *what, const char *impl)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx2) == dnnl_cpu_isa_avx2 && strncmp(impl, "ref", 3) == 0)
        fail_msg("%s runs oneDNN's reference implementation (%s)", what, impl);
}


static struct vf_backend *make_backend(int threads)
{
    struct vf_error err = {0};
    struct vf_backend *be = NULL;
    struct vf_backend_opts o = {.device = VF_DEVICE_CPU, .threads = threads};
    int rc = vf_backend_create(&be, &o, &err);
    if (rc)
        fail_msg("vf_backend_create: %s", err.msg);
    return be;
}

/* ============================== naive convolution ========================================= */

struct conv_case {
    const char *name;
    int n, ic, oc, h, w, k, stride, pad, dil, groups;
    enum vf_pad mode;
    bool bias, residual;
    enum vf_act act;
    float alpha, scale;
    int src_extra, src_c0, dst_extra, dst_c0; /* views: parent has c + extra channels */
};

/* out (n × oc × oh × ow, NCHW) = act(conv(x) + bias + residual) · scale, in double with the
 * padding made explicit first. */
static void naive_conv(const struct conv_case *c, const float *x, const float *wt,
                       const float *bias, const float *res, float *out, int oh, int ow)
{
    const int hp = c->h + 2 * c->pad, wp = c->w + 2 * c->pad;
    double *xp = calloc((size_t)c->n * c->ic * hp * wp, sizeof *xp);
    assert_non_null(xp);
    for (int i = 0; i < c->n; i++)
        for (int ch = 0; ch < c->ic; ch++)
            for (int y = 0; y < hp; y++)
                for (int xx = 0; xx < wp; xx++) {
                    int sy = y - c->pad, sx = xx - c->pad;
                    if (c->mode == VF_PAD_REFLECT) {
                        if (sy < 0) sy = -sy;
                        if (sy >= c->h) sy = 2 * (c->h - 1) - sy;
                        if (sx < 0) sx = -sx;
                        if (sx >= c->w) sx = 2 * (c->w - 1) - sx;
                    } else if (sy < 0 || sy >= c->h || sx < 0 || sx >= c->w) {
                        continue; /* zero */
                    }
                    xp[(((size_t)i * c->ic + ch) * hp + y) * wp + xx] =
                        x[(((size_t)i * c->ic + ch) * c->h + sy) * c->w + sx];
                }
    const int icg = c->ic / c->groups, ocg = c->oc / c->groups;
    for (int i = 0; i < c->n; i++)
        for (int o = 0; o < c->oc; o++) {
            const int g = o / ocg;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = bias ? bias[o] : 0.0;
                    for (int ci = 0; ci < icg; ci++)
                        for (int ky = 0; ky < c->k; ky++)
                            for (int kx = 0; kx < c->k; kx++) {
                                int y = oy * c->stride + ky * c->dil;
                                int xx = ox * c->stride + kx * c->dil;
                                s += xp[(((size_t)i * c->ic + g * icg + ci) * hp + y) * wp + xx] *
                                     wt[(((size_t)o * icg + ci) * c->k + ky) * c->k + kx];
                            }
                    size_t oi = (((size_t)i * c->oc + o) * oh + oy) * ow + ox;
                    if (c->residual)
                        s += res[oi];
                    switch (c->act) {
                    case VF_ACT_RELU: s = s > 0 ? s : 0; break;
                    case VF_ACT_LRELU: s = s > 0 ? s : s * c->alpha; break;
                    case VF_ACT_TANH: s = tanh(s); break;
                    default: break;
                    }
                    if (c->scale != 0.0f)
                        s *= c->scale;
                    out[oi] = (float)s;
                }
        }
    free(xp);
}



/* A tensor or a view of a freshly allocated parent. */
static struct vf_tensor make_act(struct vf_backend *be, enum vf_dtype dt, int n, int c, int h,
                                 int w, int extra, int c0, struct vf_tensor *parent)
{
    struct vf_error err = {0};
    memset(parent, 0, sizeof *parent);
    if (!extra) {
        struct vf_tensor t;
        if (vf_tensor_alloc(&t, be, dt, n, c, h, w, &err))
            fail_msg("%s", err.msg);
        return t;
    }
    if (vf_tensor_alloc(parent, be, dt, n, c + extra, h, w, &err))
        fail_msg("%s", err.msg);
    fill_sentinel(parent);
    return vf_tensor_slice(parent, c0, c);
}

static void free_act(struct vf_tensor *t, struct vf_tensor *parent)
{
    vf_tensor_free(t);
    vf_tensor_free(parent);
}

static void run_conv_case(struct vf_backend *be, const struct conv_case *c, enum vf_dtype dt,
                          enum vf_dtype dst_dt)
{
    struct vf_error err = {0};
    struct vf_conv_desc d = {.ic = c->ic, .oc = c->oc, .kh = c->k, .kw = c->k,
                             .stride = c->stride, .pad = c->pad, .pad_mode = c->mode,
                             .dilation = c->dil, .groups = c->groups, .residual = c->residual,
                             .act = c->act, .alpha = c->alpha, .scale = c->scale};
    int oh, ow;
    vf_conv_out_size(&d, c->h, c->w, &oh, &ow);
    const size_t nx = (size_t)c->n * c->ic * c->h * c->w;
    const size_t nw = (size_t)c->oc * (c->ic / c->groups) * c->k * c->k;
    const size_t ny = (size_t)c->n * c->oc * oh * ow;
    float *x = rand_buf(nx, 1.0f), *wt = rand_buf(nw, 1.0f / sqrtf((float)(nw / c->oc)));
    float *bias = c->bias ? rand_buf((size_t)c->oc, 0.5f) : NULL;
    float *res = c->residual ? rand_buf(ny, 1.0f) : NULL;
    float *ref = malloc(ny * sizeof *ref), *out = malloc(ny * sizeof *out);
    assert_non_null(ref);
    assert_non_null(out);
    /* reference inputs: what the primitive actually sees */
    float *xr = malloc(nx * sizeof *xr), *wr = malloc(nw * sizeof *wr);
    float *rr = res ? malloc(ny * sizeof *rr) : NULL;
    memcpy(xr, x, nx * sizeof *xr);
    memcpy(wr, wt, nw * sizeof *wr);
    if (rr)
        memcpy(rr, res, ny * sizeof *rr);
    if (dt == VF_BF16) {
        round_buf_bf16(xr, nx);
        round_buf_bf16(wr, nw);
    }
    if (rr && dst_dt == VF_BF16)
        round_buf_bf16(rr, ny);
    naive_conv(c, xr, wr, bias, rr, ref, oh, ow);

    struct vf_tensor sp, dp;
    struct vf_tensor src = make_act(be, dt, c->n, c->ic, c->h, c->w, c->src_extra, c->src_c0, &sp);
    struct vf_tensor dst =
        make_act(be, dst_dt, c->n, c->oc, oh, ow, c->dst_extra, c->dst_c0, &dp);
    assert_int_equal(vf_tensor_upload(&src, x, &err), VF_OK);
    if (res)
        assert_int_equal(vf_tensor_upload(&dst, res, &err), VF_OK);

    struct vf_conv *cv = NULL;
    if (vf_conv_create(&cv, be, &d, dt, dst_dt, c->n, c->h, c->w, wt, bias, &err))
        fail_msg("%s: %s", c->name, err.msg);
    size_t bytes = vf_backend_bytes(be);
    if (vf_conv_run(cv, &src, &dst, &err))
        fail_msg("%s: %s", c->name, err.msg);
    assert_int_equal(vf_backend_bytes(be), bytes); /* a run allocates nothing */
    assert_int_equal(vf_tensor_download(&dst, out, &err), VF_OK);

    double e = rel_l2f(out, ref, ny);
    const char *tol_what;
    double tol;
    if (dt == VF_F32) {
        tol = 1e-5;
        tol_what = "f32";
    } else if (dst_dt == VF_F32) {
        tol = 1e-4;
        tol_what = "bf16->f32 vs rounded-input ref";
    } else {
        double e_raw = e;
        assert_true(e_raw <= 1e-2);
        round_buf_bf16(ref, ny);
        e = rel_l2f(out, ref, ny);
        tol = 1e-3;
        tol_what = "bf16->bf16 vs bf16-rounded ref";
    }
    printf("  %-34s %-4s->%-4s rel %.2e (<= %.0e, %s)  impl %s\n", c->name, vf_dtype_name(dt),
           vf_dtype_name(dst_dt), e, tol, tol_what, vf_conv_impl_(cv));
    assert_not_ref(c->name, vf_conv_impl_(cv));
    if (!(e <= tol))
        fail_msg("%s (%s -> %s): relative L2 error %g > %g", c->name, vf_dtype_name(dt),
                 vf_dtype_name(dst_dt), e, tol);
    if (c->src_extra)
        check_sentinel(&sp, c->src_c0, c->ic, c->name);
    if (c->dst_extra)
        check_sentinel(&dp, c->dst_c0, c->oc, c->name);
    if (!c->residual) { /* a second run (workspace reused) gives the same bits */
        float *again = malloc(ny * sizeof *again);
        assert_non_null(again);
        if (vf_conv_run(cv, &src, &dst, &err))
            fail_msg("%s: %s", c->name, err.msg);
        assert_int_equal(vf_tensor_download(&dst, again, &err), VF_OK);
        assert_memory_equal(again, out, ny * sizeof *again);
        free(again);
    }
    /* MACs as documented: n·oc·oh·ow·(ic/groups)·kh·kw */
    assert_true(vf_conv_macs(cv) == (double)c->n * c->oc * oh * ow * (c->ic / c->groups) *
                                        c->k * c->k);

    vf_conv_destroy(&cv);
    assert_null(cv);
    free_act(&src, &sp);
    free_act(&dst, &dp);
    free(x);
    free(wt);
    free(bias);
    free(res);
    free(ref);
    free(out);
    free(xr);
    free(wr);
    free(rr);
}

static const struct conv_case conv_cases[] = {
    {"3x3 zero pad 1, relu", 1, 16, 32, 27, 48, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"3x3 stride 2 zero pad 1", 1, 8, 16, 27, 48, 3, 2, 1, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"3x3 reflect 1, lrelu 0.2", 1, 16, 16, 7, 12, 3, 1, 1, 1, 1, VF_PAD_REFLECT, true, false,
     VF_ACT_LRELU, 0.2f, 0, 0, 0, 0, 0},
    {"3x3 dilation 2 reflect 2, relu", 1, 32, 32, 27, 48, 3, 1, 2, 2, 1, VF_PAD_REFLECT, true,
     false, VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"3x3 dilation 4 zero 4", 1, 8, 8, 13, 17, 3, 1, 4, 4, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"7x7 stride 2 zero 3, no bias", 1, 3, 16, 27, 48, 7, 2, 3, 1, 1, VF_PAD_ZERO, false, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"depthwise 1x1 stride 2, no bias", 1, 16, 16, 27, 48, 1, 2, 0, 1, 16, VF_PAD_ZERO, false,
     false, VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"depthwise 3x3 zero 1", 2, 32, 32, 9, 10, 3, 1, 1, 1, 32, VF_PAD_ZERO, true, false,
     VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"1x1 64->2 tanh x128", 1, 64, 2, 7, 12, 1, 1, 0, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_TANH, 0, 128.0f, 0, 0, 0, 0},
    {"1x1 7->16 lrelu", 1, 7, 16, 27, 48, 1, 1, 0, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_LRELU,
     0.2f, 0, 0, 0, 0, 0},
    {"3x3 reflect residual+relu n=2", 2, 16, 16, 9, 10, 3, 1, 1, 1, 1, VF_PAD_REFLECT, true,
     true, VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"3x3 stride 2 reflect n=2 odd", 2, 8, 24, 27, 47, 3, 2, 1, 1, 1, VF_PAD_REFLECT, true,
     false, VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"3x3 reflect, views src+dst, resid", 1, 16, 16, 7, 12, 3, 1, 1, 1, 1, VF_PAD_REFLECT, true,
     true, VF_ACT_RELU, 0, 0, 24, 8, 32, 16},
    {"3x3 zero, view src", 2, 16, 32, 9, 10, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 8, 0, 0, 0},
    {"1x1 view dst (concat slot)", 1, 16, 8, 7, 12, 1, 1, 0, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 24, 8},
    {"1x1 stride 2 dw view src, n=2", 2, 8, 8, 9, 11, 1, 2, 0, 1, 8, VF_PAD_ZERO, false, false,
     VF_ACT_NONE, 0, 0, 8, 8, 0, 0},
    {"5x5 reflect 2 lrelu", 1, 4, 8, 12, 11, 5, 1, 2, 1, 1, VF_PAD_REFLECT, true, false,
     VF_ACT_LRELU, 0.1f, 0, 0, 0, 0, 0},
    {"1x1 stride 2 32->64 (downsample)", 1, 32, 64, 27, 48, 1, 2, 0, 1, 1, VF_PAD_ZERO, false,
     false, VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"grouped 3x3 g=4", 1, 16, 32, 9, 10, 3, 1, 1, 1, 4, VF_PAD_ZERO, true, false, VF_ACT_NONE,
     0, 0, 0, 0, 0, 0},
};

static void conv_f32_matches_naive_loop(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(0);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        run_conv_case(be, &conv_cases[i], VF_F32, VF_F32);
    vf_backend_destroy(&be);
}

static void conv_bf16_matches_naive_loop(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(0);
    if (!vf_backend_supports(be, VF_BF16)) {
        printf("skipped: no bf16 ISA\n");
        vf_backend_destroy(&be);
        return;
    }
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        run_conv_case(be, &conv_cases[i], VF_BF16, VF_BF16);
        run_conv_case(be, &conv_cases[i], VF_BF16, VF_F32);
    }
    vf_backend_destroy(&be);
}

static void conv_rejects_bad_descriptions(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(1);
    struct vf_error err = {0};
    struct vf_conv *cv = NULL;
    float w[16 * 16 * 9] = {0};
    struct vf_conv_desc d = {.ic = 16, .oc = 16, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                             .dilation = 1, .groups = 1, .act = VF_ACT_PRELU};
    assert_int_equal(vf_conv_create(&cv, be, &d, VF_F32, VF_F32, 1, 8, 8, w, NULL, &err),
                     VF_EINVAL);
    assert_non_null(strstr(err.msg, "PReLU"));
    assert_null(cv);
    d.act = VF_ACT_NONE;
    d.pad_mode = VF_PAD_REFLECT;
    d.pad = 4; /* reflect pad must be < input size */
    assert_int_equal(vf_conv_create(&cv, be, &d, VF_F32, VF_F32, 1, 4, 8, w, NULL, &err),
                     VF_EINVAL);
    d.pad = 1;
    d.groups = 3;
    assert_int_equal(vf_conv_create(&cv, be, &d, VF_F32, VF_F32, 1, 8, 8, w, NULL, &err),
                     VF_EINVAL);
    d.groups = 1;
    assert_int_equal(vf_conv_create(&cv, be, &d, VF_F16, VF_F16, 1, 8, 8, w, NULL, &err),
                     VF_EUNSUPPORTED);
    assert_int_equal(vf_conv_create(&cv, be, &d, VF_F32, VF_BF16, 1, 8, 8, w, NULL, &err),
                     VF_EINVAL);
    /* a shape mismatch at run time */
    assert_int_equal(vf_conv_create(&cv, be, &d, VF_F32, VF_F32, 1, 8, 8, w, NULL, &err), VF_OK);
    struct vf_tensor a, b;
    assert_int_equal(vf_tensor_alloc(&a, be, VF_F32, 1, 16, 8, 9, &err), VF_OK);
    assert_int_equal(vf_tensor_alloc(&b, be, VF_F32, 1, 16, 8, 8, &err), VF_OK);
    assert_int_equal(vf_conv_run(cv, &a, &b, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "8 x 9"));
    /* a tensor of another backend (on a GPU: a host pointer handed to cuDNN) */
    struct vf_backend *other = make_backend(1);
    struct vf_tensor c;
    assert_int_equal(vf_tensor_alloc(&c, other, VF_F32, 1, 16, 8, 8, &err), VF_OK);
    assert_int_equal(vf_conv_run(cv, &c, &b, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "convolution source: the tensor belongs to another backend"));
    vf_tensor_free(&c);
    vf_backend_destroy(&other);
    vf_conv_destroy(&cv);
    vf_conv_destroy(&cv); /* idempotent */
    vf_tensor_free(&a);
    vf_tensor_free(&b);
    vf_backend_destroy(&be);
}

/* ============================== matmul ===================================================== */

struct mm_case {
    int m, n, k, lda, ldb, ldc;
    bool trans_b;
};

static void run_mm_case(struct vf_backend *be, const struct mm_case *c, enum vf_dtype dt)
{
    struct vf_error err = {0};
    const size_t na = (size_t)c->m * c->lda;
    const size_t nb = (size_t)(c->trans_b ? c->n : c->k) * c->ldb;
    const size_t nc = (size_t)c->m * c->ldc;
    float *a = rand_buf(na, 1.0f), *b = rand_buf(nb, 1.0f);
    if (dt == VF_BF16) {
        round_buf_bf16(a, na);
        round_buf_bf16(b, nb);
    }
    float *ref = calloc(nc, sizeof *ref);
    for (int i = 0; i < c->m; i++)
        for (int j = 0; j < c->n; j++) {
            double s = 0;
            for (int q = 0; q < c->k; q++)
                s += (double)a[(size_t)i * c->lda + q] *
                     (c->trans_b ? b[(size_t)j * c->ldb + q] : b[(size_t)q * c->ldb + j]);
            ref[(size_t)i * c->ldc + j] = (float)s;
        }
    /* device copies: a tensor of rows (n = 1, h = rows, w = 1, c = columns) */
    struct vf_tensor ta, tb, tc;
    assert_int_equal(vf_tensor_alloc(&ta, be, dt, 1, c->lda, c->m, 1, &err), VF_OK);
    assert_int_equal(vf_tensor_alloc(&tb, be, dt, 1, c->ldb, c->trans_b ? c->n : c->k, 1, &err),
                     VF_OK);
    assert_int_equal(vf_tensor_alloc(&tc, be, VF_F32, 1, c->ldc, c->m, 1, &err), VF_OK);
    /* rows × cols host arrays are NCHW with h = rows, c = cols: transpose for upload */
    float *tmp = malloc((na > nb ? na : nb) * sizeof *tmp);
    for (int r = 0; r < c->m; r++)
        for (int q = 0; q < c->lda; q++)
            tmp[(size_t)q * c->m + r] = a[(size_t)r * c->lda + q];
    assert_int_equal(vf_tensor_upload(&ta, tmp, &err), VF_OK);
    int brows = c->trans_b ? c->n : c->k;
    for (int r = 0; r < brows; r++)
        for (int q = 0; q < c->ldb; q++)
            tmp[(size_t)q * brows + r] = b[(size_t)r * c->ldb + q];
    assert_int_equal(vf_tensor_upload(&tb, tmp, &err), VF_OK);
    /* sentinel in C's padding columns: must stay */
    float *cd = (float *)tc.data;
    for (size_t i = 0; i < nc; i++)
        cd[i] = -7.0f;

    struct vf_matmul_desc d = {c->m, c->n, c->k, c->lda, c->ldb, c->ldc, c->trans_b};
    struct vf_matmul *mm = NULL;
    if (vf_matmul_create(&mm, be, &d, dt, &err))
        fail_msg("%s", err.msg);
    if (vf_matmul_run(mm, ta.data, tb.data, cd, &err))
        fail_msg("%s", err.msg);
    float *out = malloc(nc * sizeof *out), *refc = malloc(nc * sizeof *refc);
    size_t cnt = 0;
    for (int i = 0; i < c->m; i++)
        for (int j = 0; j < c->ldc; j++) {
            if (j >= c->n) {
                assert_true(cd[(size_t)i * c->ldc + j] == -7.0f);
                continue;
            }
            out[cnt] = cd[(size_t)i * c->ldc + j];
            refc[cnt++] = ref[(size_t)i * c->ldc + j];
        }
    double e = rel_l2f(out, refc, cnt), tol = dt == VF_F32 ? 1e-5 : 1e-4;
    printf("  matmul %dx%dx%d ld %d/%d/%d%s %-4s rel %.2e (<= %.0e)  impl %s\n", c->m, c->n, c->k,
           c->lda, c->ldb, c->ldc, c->trans_b ? " B^T" : "", vf_dtype_name(dt), e, tol,
           vf_matmul_impl_(mm));
    assert_true(e <= tol);
    assert_not_ref("matmul", vf_matmul_impl_(mm));
    assert_true(vf_matmul_macs(mm) == (double)c->m * c->n * c->k);
    vf_matmul_destroy(&mm);
    vf_tensor_free(&ta);
    vf_tensor_free(&tb);
    vf_tensor_free(&tc);
    free(a);
    free(b);
    free(ref);
    free(tmp);
    free(out);
    free(refc);
}

static const struct mm_case mm_cases[] = {
    {64, 64, 128, 128, 64, 64, false},  {17, 23, 31, 40, 30, 25, false},
    {17, 23, 31, 40, 33, 25, true},     {100, 200, 64, 64, 64, 200, true},
    {96, 96, 64, 64, 64, 96, true},     {5, 3, 500, 500, 3, 3, false},
    {1, 40, 7, 7, 7, 40, true},
};

static void matmul_matches_naive_loop(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(0);
    for (size_t i = 0; i < sizeof mm_cases / sizeof mm_cases[0]; i++)
        run_mm_case(be, &mm_cases[i], VF_F32);
    if (!vf_backend_supports(be, VF_BF16))
        printf("skipped: no bf16 ISA\n");
    else
        for (size_t i = 0; i < sizeof mm_cases / sizeof mm_cases[0]; i++)
            run_mm_case(be, &mm_cases[i], VF_BF16);
    struct vf_error err = {0};
    struct vf_matmul *mm = NULL;
    struct vf_matmul_desc bad = {4, 4, 8, 7, 4, 4, false}; /* lda < k */
    assert_int_equal(vf_matmul_create(&mm, be, &bad, VF_F32, &err), VF_EINVAL);
    assert_null(mm);
    vf_backend_destroy(&be);
}

/* ============================== pooling ==================================================== */

struct pool_case {
    enum vf_pool_kind kind;
    int k, stride, pad, n, c, h, w;
    int src_extra, src_c0, dst_extra, dst_c0;
};

static void run_pool_case(struct vf_backend *be, const struct pool_case *c, enum vf_dtype dt)
{
    struct vf_error err = {0};
    struct vf_pool_desc d = {c->kind, c->k, c->stride, c->pad};
    int oh, ow;
    vf_pool_out_size(&d, c->h, c->w, &oh, &ow);
    const size_t nx = (size_t)c->n * c->c * c->h * c->w, ny = (size_t)c->n * c->c * oh * ow;
    float *x = rand_buf(nx, 3.0f), *ref = malloc(ny * sizeof *ref), *out = malloc(ny * sizeof *out);
    if (dt == VF_BF16)
        round_buf_bf16(x, nx);
    for (int i = 0; i < c->n; i++)
        for (int ch = 0; ch < c->c; ch++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double mx = -INFINITY, sum = 0;
                    int cnt = 0;
                    for (int ky = 0; ky < c->k; ky++)
                        for (int kx = 0; kx < c->k; kx++) {
                            int y = oy * c->stride - c->pad + ky, xx = ox * c->stride - c->pad + kx;
                            if (y < 0 || y >= c->h || xx < 0 || xx >= c->w)
                                continue; /* padding: never the max, never counted */
                            double v = x[(((size_t)i * c->c + ch) * c->h + y) * c->w + xx];
                            mx = v > mx ? v : mx;
                            sum += v;
                            cnt++;
                        }
                    ref[(((size_t)i * c->c + ch) * oh + oy) * ow + ox] =
                        (float)(c->kind == VF_POOL_MAX ? mx : sum / cnt);
                }
    struct vf_tensor sp, dp;
    struct vf_tensor src = make_act(be, dt, c->n, c->c, c->h, c->w, c->src_extra, c->src_c0, &sp);
    struct vf_tensor dst = make_act(be, dt, c->n, c->c, oh, ow, c->dst_extra, c->dst_c0, &dp);
    assert_int_equal(vf_tensor_upload(&src, x, &err), VF_OK);
    struct vf_pool *p = NULL;
    if (vf_pool_create(&p, be, &d, dt, c->n, c->c, c->h, c->w, &err))
        fail_msg("%s", err.msg);
    if (vf_pool_run(p, &src, &dst, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(vf_tensor_download(&dst, out, &err), VF_OK);
    if (dt == VF_BF16)
        round_buf_bf16(ref, ny);
    double e = rel_l2f(out, ref, ny);
    double tol = c->kind == VF_POOL_MAX ? 0.0 : dt == VF_F32 ? 1e-6 : 1e-3;
    printf("  %s pool %dx%d s%d p%d %dx%dx%dx%d%s %-4s rel %.2e (<= %.0e)  impl %s\n",
           c->kind == VF_POOL_MAX ? "max" : "avg", c->k, c->k, c->stride, c->pad, c->n, c->c,
           c->h, c->w, c->src_extra || c->dst_extra ? " views" : "", vf_dtype_name(dt), e, tol,
           vf_pool_impl_(p));
    assert_true(e <= tol);
    assert_not_ref("pooling", vf_pool_impl_(p));
    if (c->src_extra)
        check_sentinel(&sp, c->src_c0, c->c, "pooling");
    if (c->dst_extra)
        check_sentinel(&dp, c->dst_c0, c->c, "pooling");
    vf_pool_destroy(&p);
    free_act(&src, &sp);
    free_act(&dst, &dp);
    free(x);
    free(ref);
    free(out);
}

static const struct pool_case pool_cases[] = {
    {VF_POOL_MAX, 3, 2, 1, 2, 16, 27, 48, 0, 0, 0, 0},
    {VF_POOL_MAX, 3, 2, 1, 1, 16, 54, 96, 0, 0, 0, 0},
    {VF_POOL_AVG, 4, 4, 0, 1, 2, 28, 48, 0, 0, 0, 0},
    {VF_POOL_AVG, 3, 2, 1, 2, 8, 27, 47, 0, 0, 0, 0},
    {VF_POOL_AVG, 3, 1, 1, 1, 5, 7, 12, 0, 0, 0, 0},
    {VF_POOL_MAX, 2, 2, 0, 1, 8, 7, 12, 8, 4, 16, 8},
    {VF_POOL_AVG, 4, 4, 0, 1, 2, 28, 48, 3, 1, 4, 2},
};

static void pool_matches_naive_loop(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(0);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        run_pool_case(be, &pool_cases[i], VF_F32);
    if (!vf_backend_supports(be, VF_BF16))
        printf("skipped: no bf16 ISA\n");
    else
        for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
            run_pool_case(be, &pool_cases[i], VF_BF16);
    vf_backend_destroy(&be);
}

/* ============================== tensors ==================================================== */

static void bf16_rounds_to_nearest_even(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(1);
    struct vf_error err = {0};
    const float in[] = {1.0f,        1.00390625f,      /* 1 + 2^-8: tie -> 1.0 (even) */
                        1.01171875f,                   /* 1 + 3·2^-8: tie -> 1 + 2^-6 */
                        0x1.010002p+0f,                /* just above the tie -> 1 + 2^-7 */
                        -1.00390625f, 0.0f,  -0.0f,   3.3895314e38f, /* largest finite bf16 */
                        FLT_MAX,                       /* rounds to +Inf */
                        INFINITY,    -INFINITY, NAN,  1e-40f /* subnormal */, 65504.0f};
    const float want[] = {1.0f,        1.0f,  1.015625f, 1.0078125f, -1.0f, 0.0f, -0.0f,
                          3.3895314e38f, INFINITY, INFINITY, -INFINITY, NAN, 0, 65536.0f};
    const int n = (int)(sizeof in / sizeof in[0]);
    struct vf_tensor t;
    assert_int_equal(vf_tensor_alloc(&t, be, VF_BF16, 1, n, 1, 1, &err), VF_OK);
    float out[sizeof in / sizeof in[0]];
    assert_int_equal(vf_tensor_upload(&t, in, &err), VF_OK);
    assert_int_equal(vf_tensor_download(&t, out, &err), VF_OK);
    for (int i = 0; i < n; i++) {
        float w = want[i];
        if (in[i] == 1e-40f)
            w = ref_bf16(1e-40f); /* independent rounding of a subnormal */
        if (isnan(w)) {
            assert_true(isnan(out[i]));
            continue;
        }
        if (!(out[i] == w && signbit(out[i]) == signbit(w)))
            fail_msg("bf16(%.9g) = %.9g, want %.9g", in[i], out[i], w);
        assert_true(ref_bf16(in[i]) == w); /* and the test's own rounding agrees */
    }
    vf_tensor_free(&t);
    vf_backend_destroy(&be);
}

static void f16_converts_like_ieee_half(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(1);
    struct vf_error err = {0};
    const float in[] = {1.0f, 65504.0f, 65519.0f, 65520.0f, 1e-8f, 0x1p-24f, 0x1p-25f,
                        0x1.8p-25f, 0.1f, 1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, -2.5f,
                        0x1p-14f, 0x1.ffcp-15f, -0.0f, INFINITY, -1e6f, NAN, 3.1415927f};
    const float want[] = {1.0f, 65504.0f, 65504.0f, INFINITY, 0.0f, 0x1p-24f, 0.0f,
                          0x1p-24f, 0.0999755859375f, 1.0f, 1.0f + 0x1p-9f, -2.5f,
                          0x1p-14f, 0x1p-14f, -0.0f, INFINITY, -INFINITY, NAN, 3.140625f};
    const int n = (int)(sizeof in / sizeof in[0]);
    struct vf_tensor t;
    assert_int_equal(vf_tensor_alloc(&t, be, VF_F16, 1, n, 1, 1, &err), VF_OK);
    float out[sizeof in / sizeof in[0]];
    assert_int_equal(vf_tensor_upload(&t, in, &err), VF_OK);
    assert_int_equal(vf_tensor_download(&t, out, &err), VF_OK);
    for (int i = 0; i < n; i++) {
        if (isnan(want[i])) {
            assert_true(isnan(out[i]));
            continue;
        }
        if (!(out[i] == want[i] && signbit(out[i]) == signbit(want[i])))
            fail_msg("f16(%.9g) = %.9g, want %.9g", in[i], out[i], want[i]);
    }
#ifdef __FLT16_MAX__
    /* exhaustive-ish against the compiler's _Float16 on random values of every magnitude */
    enum { N = 1 << 14 };
    float *r = malloc(N * sizeof *r), *o = malloc(N * sizeof *o);
    for (int i = 0; i < N; i++) {
        tu_xs_state = tu_xs_state * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(tu_xs_state >> 32);
        /* sign, and magnitudes from 2^-31 (below half's subnormals) to 2^17 (above its max) */
        u = (u & 0x80000000u) | (0x30000000u + (u & 0x1fffffffu) % 0x18000000u);
        memcpy(&r[i], &u, 4);
    }
    struct vf_tensor t2;
    assert_int_equal(vf_tensor_alloc(&t2, be, VF_F16, 1, 1, N, 1, &err), VF_OK);
    assert_int_equal(vf_tensor_upload(&t2, r, &err), VF_OK);
    assert_int_equal(vf_tensor_download(&t2, o, &err), VF_OK);
    for (int i = 0; i < N; i++) {
        float w = (float)(_Float16)r[i];
        if (!(o[i] == w))
            fail_msg("f16(%a) = %a, _Float16 gives %a", r[i], o[i], w);
    }
    vf_tensor_free(&t2);
    free(r);
    free(o);
#endif
    vf_tensor_free(&t);
    vf_backend_destroy(&be);
}

static void upload_download_round_trip_all_dtypes_and_views(void **state)
{
    (void)state;
    struct vf_backend *be = make_backend(2);
    struct vf_error err = {0};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16, VF_F16};
    const int n = 2, c = 5, h = 7, w = 9;
    const size_t cnt = (size_t)n * c * h * w;
    float *x = rand_buf(cnt, 4.0f), *y = malloc(cnt * sizeof *y);
    for (int di = 0; di < 3; di++) {
        enum vf_dtype dt = dts[di];
        size_t before = vf_backend_bytes(be);
        struct vf_tensor t;
        assert_int_equal(vf_tensor_alloc(&t, be, dt, n, c, h, w, &err), VF_OK);
        assert_int_equal(vf_backend_bytes(be), before + cnt * vf_dtype_size(dt));
        assert_int_equal(t.pix_stride, c);
        assert_int_equal(vf_tensor_count(&t), cnt);
        /* zero-filled */
        assert_int_equal(vf_tensor_download(&t, y, &err), VF_OK);
        for (size_t i = 0; i < cnt; i++)
            assert_true(y[i] == 0.0f);
        assert_int_equal(vf_tensor_upload(&t, x, &err), VF_OK);
        assert_int_equal(vf_tensor_download(&t, y, &err), VF_OK);
        for (size_t i = 0; i < cnt; i++) {
            float want = x[i];
            if (dt == VF_BF16)
                want = ref_bf16(x[i]);
#ifdef __FLT16_MAX__
            if (dt == VF_F16)
                want = (float)(_Float16)x[i];
#else
            if (dt == VF_F16 && fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-11f)
                want = y[i];
#endif
            if (!(y[i] == want))
                fail_msg("%s round trip [%zu]: %a -> %a, want %a", vf_dtype_name(dt), i, x[i],
                         y[i], want);
        }
        /* NHWC layout: element (i, y, x, ch) at ((i·h + y)·w + x)·c + ch */
        if (dt == VF_F32) {
            const float *d = t.data;
            assert_true(d[((1 * h + 3) * w + 4) * c + 2] ==
                        x[(((size_t)1 * c + 2) * h + 3) * w + 4]);
        }
        /* a view: channels [1, 4) of a 2 x 5 x 7 x 9 parent */
        struct vf_tensor v = vf_tensor_slice(&t, 1, 3);
        assert_int_equal(v.c, 3);
        assert_int_equal(v.pix_stride, 5);
        assert_false(v.owned);
        const size_t vc = (size_t)n * 3 * h * w;
        float *vx = rand_buf(vc, 2.0f), *vy = malloc(vc * sizeof *vy);
        assert_int_equal(vf_tensor_upload(&v, vx, &err), VF_OK);
        assert_int_equal(vf_tensor_download(&v, vy, &err), VF_OK);
        assert_int_equal(vf_tensor_download(&t, y, &err), VF_OK);
        const size_t hw = (size_t)h * w;
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (size_t q = 0; q < hw; q++) {
                    size_t pi = ((size_t)i * c + ch) * hw + q;
                    float got = y[pi];
                    float want;
                    if (ch >= 1 && ch < 4) {
                        size_t vi = ((size_t)i * 3 + (ch - 1)) * hw + q;
                        assert_true(vy[vi] == got); /* the view reads what the parent holds */
                        want = vx[vi];
                    } else {
                        want = x[pi]; /* untouched */
                    }
                    if (dt == VF_BF16)
                        want = ref_bf16(want);
#ifdef __FLT16_MAX__
                    if (dt == VF_F16)
                        want = (float)(_Float16)want;
#else
                    if (dt == VF_F16)
                        want = got;
#endif
                    if (!(got == want))
                        fail_msg("%s view [%d,%d,%zu]: %g want %g", vf_dtype_name(dt), i, ch, q,
                                 got, want);
                }
        /* zeroing the view zeroes only its channels */
        assert_int_equal(vf_tensor_zero(&v, &err), VF_OK);
        assert_int_equal(vf_tensor_download(&t, y, &err), VF_OK);
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (size_t q = 0; q < hw; q++) {
                    size_t pi = ((size_t)i * c + ch) * hw + q;
                    if (ch >= 1 && ch < 4)
                        assert_true(y[pi] == 0.0f);
                    else
                        assert_true(y[pi] != 0.0f || x[pi] == 0.0f);
                }
        vf_tensor_free(&v); /* a view: frees nothing */
        assert_int_equal(vf_backend_bytes(be), before + cnt * vf_dtype_size(dt));
        assert_int_equal(vf_tensor_zero(&t, &err), VF_OK);
        assert_int_equal(vf_tensor_download(&t, y, &err), VF_OK);
        for (size_t i = 0; i < cnt; i++)
            assert_true(y[i] == 0.0f);
        vf_tensor_free(&t);
        assert_null(t.data);
        vf_tensor_free(&t); /* idempotent */
        vf_tensor_free(NULL);
        assert_int_equal(vf_backend_bytes(be), before);
        free(vx);
        free(vy);
    }
    free(x);
    free(y);
    vf_backend_destroy(&be);
}

static void backend_and_dtype_basics(void **state)
{
    (void)state;
    struct vf_error err = {0};
    enum vf_dtype dt;
    assert_int_equal(vf_dtype_parse("bf16", &dt), VF_OK);
    assert_int_equal(dt, VF_BF16);
    assert_int_equal(vf_dtype_parse("f16", &dt), VF_OK);
    assert_int_equal(dt, VF_F16);
    assert_int_equal(vf_dtype_parse("f32", &dt), VF_OK);
    assert_int_equal(dt, VF_F32);
    assert_int_equal(vf_dtype_parse("fp32", &dt), VF_EINVAL);
    assert_int_equal(vf_dtype_size(VF_F32), 4);
    assert_int_equal(vf_dtype_size(VF_BF16), 2);
    assert_int_equal(vf_dtype_size(VF_F16), 2);
    assert_string_equal(vf_dtype_name(VF_BF16), "bf16");

    struct vf_backend *be = NULL;
    /* a GPU one past the last visible one (there are none here): refused, saying why */
    int gpus = -1;
    assert_int_equal(vf_kernels_gpu_count(&gpus, &err), VF_OK);
    struct vf_backend_opts cuda = {.device = VF_DEVICE_CUDA, .gpu = gpus};
    assert_int_equal(vf_backend_create(&be, &cuda, &err), VF_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, vf_kernels_has_cuda() ? "no such device"
                                                          : "built without the CUDA backend"));
    assert_null(be);
    struct vf_backend_opts neg = {.device = VF_DEVICE_CPU, .threads = -1};
    assert_int_equal(vf_backend_create(&be, &neg, &err), VF_EINVAL);
    be = make_backend(0);
    assert_int_equal(vf_backend_device(be), VF_DEVICE_CPU);
    assert_true(vf_backend_supports(be, VF_F32));
    assert_false(vf_backend_supports(be, VF_F16));
    printf("  bf16 supported: %s\n", vf_backend_supports(be, VF_BF16) ? "yes" : "no");
    assert_int_equal(vf_backend_sync(be, &err), VF_OK);
    assert_int_equal(vf_backend_bytes(be), 0);
    struct vf_tensor t;
    assert_int_equal(vf_tensor_alloc(&t, be, VF_F32, 1, 0, 4, 4, &err), VF_EINVAL);
    assert_int_equal(vf_tensor_alloc(&t, be, VF_F32, 1, 3, 4, 5, &err), VF_OK);
    assert_int_equal((uintptr_t)t.data % 64, 0);
    vf_tensor_free(&t);
    vf_backend_destroy(&be);
    assert_null(be);
    vf_backend_destroy(&be);
}

/* ============================== thread determinism ========================================= */

/* Run one primitive on backends with 1 and 2 threads; outputs must be bit-identical. */
static void conv_on(struct vf_backend *be, const struct conv_case *c, enum vf_dtype dt,
                    const float *x, const float *wt, const float *bias, float *out)
{
    struct vf_error err = {0};
    struct vf_conv_desc d = {.ic = c->ic, .oc = c->oc, .kh = c->k, .kw = c->k,
                             .stride = c->stride, .pad = c->pad, .pad_mode = c->mode,
                             .dilation = c->dil, .groups = c->groups, .act = c->act,
                             .alpha = c->alpha, .scale = c->scale};
    int oh, ow;
    vf_conv_out_size(&d, c->h, c->w, &oh, &ow);
    struct vf_tensor s, o;
    assert_int_equal(vf_tensor_alloc(&s, be, dt, c->n, c->ic, c->h, c->w, &err), VF_OK);
    assert_int_equal(vf_tensor_alloc(&o, be, VF_F32, c->n, c->oc, oh, ow, &err), VF_OK);
    assert_int_equal(vf_tensor_upload(&s, x, &err), VF_OK);
    struct vf_conv *cv = NULL;
    if (vf_conv_create(&cv, be, &d, dt, VF_F32, c->n, c->h, c->w, wt, bias, &err))
        fail_msg("%s", err.msg);
    if (vf_conv_run(cv, &s, &o, &err))
        fail_msg("%s", err.msg);
    memcpy(out, o.data, vf_tensor_count(&o) * sizeof(float));
    vf_conv_destroy(&cv);
    vf_tensor_free(&s);
    vf_tensor_free(&o);
}

static const struct conv_case det_conv_cases[] = {
    {"3x3 64->64 54x96", 1, 64, 64, 54, 96, 3, 1, 1, 1, 1, VF_PAD_REFLECT, true, false,
     VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"7x7 s2 3->64 108x192", 1, 3, 64, 108, 192, 7, 2, 3, 1, 1, VF_PAD_ZERO, false, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"1x1 256->64 27x48", 1, 256, 64, 27, 48, 1, 1, 0, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"3x3 s2 128->128 14x24", 1, 128, 128, 14, 24, 3, 2, 1, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"3x3 d2 512->512 7x12 (1 px)", 1, 512, 512, 7, 12, 3, 1, 2, 2, 1, VF_PAD_REFLECT, true,
     false, VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"1x1 2048->16 4x6", 1, 2048, 16, 4, 6, 1, 1, 0, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"dw 1x1 s2 64", 2, 64, 64, 27, 48, 1, 2, 0, 1, 64, VF_PAD_ZERO, false, false, VF_ACT_NONE,
     0, 0, 0, 0, 0, 0},
    {"3x3 d4 256->256 13x17", 1, 256, 256, 13, 17, 3, 1, 4, 4, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"grouped 3x3 g=4 256->256", 1, 256, 256, 14, 24, 3, 1, 1, 1, 4, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
};

/* Backends with these thread counts must give bit-identical results (the machine may have
 * fewer cores: oversubscription still changes oneDNN's work partition). */
static const int det_threads[] = {1, 2, 3, 4};
#define NDET ((int)(sizeof det_threads / sizeof det_threads[0]))

static size_t count_diff(const float *a, const float *b, size_t n)
{
    size_t d = 0;
    for (size_t q = 0; q < n; q++)
        d += memcmp(&a[q], &b[q], 4) != 0;
    return d;
}

static void results_do_not_depend_on_thread_count(void **state)
{
    (void)state;
    struct vf_backend *bes[NDET];
    for (int r = 0; r < NDET; r++)
        bes[r] = make_backend(det_threads[r]);
    struct vf_error err = {0};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (int di = 0; di < 2; di++) {
        enum vf_dtype dt = dts[di];
        if (!vf_backend_supports(bes[0], dt)) {
            printf("skipped: no bf16 ISA\n");
            continue;
        }
        for (size_t i = 0; i < sizeof det_conv_cases / sizeof det_conv_cases[0]; i++) {
            const struct conv_case *c = &det_conv_cases[i];
            struct vf_conv_desc d = {.kh = c->k, .kw = c->k, .stride = c->stride, .pad = c->pad,
                                     .dilation = c->dil};
            int oh, ow;
            vf_conv_out_size(&d, c->h, c->w, &oh, &ow);
            size_t nx = (size_t)c->n * c->ic * c->h * c->w;
            size_t nw = (size_t)c->oc * (c->ic / c->groups) * c->k * c->k;
            size_t ny = (size_t)c->n * c->oc * oh * ow;
            float *x = rand_buf(nx, 1.0f), *wt = rand_buf(nw, 0.1f), *bias = rand_buf(c->oc, 0.1f);
            float *o[NDET];
            size_t diff = 0;
            for (int r = 0; r < NDET; r++) {
                o[r] = malloc(ny * 4);
                conv_on(bes[r], c, dt, x, wt, bias, o[r]);
                if (r)
                    diff += count_diff(o[0], o[r], ny);
            }
            printf("  conv %-28s %-4s threads 1,2,3,4: %zu of %zu differ\n", c->name,
                   vf_dtype_name(dt), diff, ny);
            assert_int_equal(diff, 0);
            for (int r = 0; r < NDET; r++)
                free(o[r]);
            free(x);
            free(wt);
            free(bias);
        }
        const struct mm_case mmc[] = {
            {1296, 1296, 64, 64, 64, 1296, true}, {8, 8, 4096, 4096, 8, 8, false},
            {2, 3, 20000, 20000, 20000, 3, true}, {300, 17, 1000, 1000, 17, 17, false},
            {54, 96, 200, 210, 210, 100, true},   {4, 4, 30000, 30001, 30001, 5, true},
            {6, 5, 30000, 30001, 7, 9, false}};
        for (size_t i = 0; i < sizeof mmc / sizeof mmc[0]; i++) {
            const struct mm_case *c = &mmc[i];
            struct vf_matmul_desc d = {c->m, c->n, c->k, c->lda, c->ldb, c->ldc, c->trans_b};
            size_t na = (size_t)c->m * c->lda, nb = (size_t)(c->trans_b ? c->n : c->k) * c->ldb;
            size_t nc = (size_t)c->m * c->ldc;
            float *a = rand_buf(na, 1.0f), *b = rand_buf(nb, 1.0f);
            float *o[NDET];
            const char *impl = "";
            size_t diff = 0;
            for (int r = 0; r < NDET; r++) {
                struct vf_tensor ta, tb;
                assert_int_equal(vf_tensor_alloc(&ta, bes[r], dt, 1, 1, (int)na, 1, &err), VF_OK);
                assert_int_equal(vf_tensor_alloc(&tb, bes[r], dt, 1, 1, (int)nb, 1, &err), VF_OK);
                assert_int_equal(vf_tensor_upload(&ta, a, &err), VF_OK);
                assert_int_equal(vf_tensor_upload(&tb, b, &err), VF_OK);
                o[r] = calloc(nc, 4);
                struct vf_matmul *mm = NULL;
                if (vf_matmul_create(&mm, bes[r], &d, dt, &err))
                    fail_msg("%s", err.msg);
                impl = vf_matmul_impl_(mm);
                assert_int_equal(vf_matmul_run(mm, ta.data, tb.data, o[r], &err), VF_OK);
                if (r == NDET - 1)
                    printf("  matmul %dx%dx%d%s %-4s (%s)", c->m, c->n, c->k,
                           c->trans_b ? " B^T" : "", vf_dtype_name(dt), impl);
                vf_matmul_destroy(&mm);
                vf_tensor_free(&ta);
                vf_tensor_free(&tb);
                if (r)
                    diff += count_diff(o[0], o[r], nc);
            }
            printf(" threads 1,2,3,4: %zu of %zu differ\n", diff, nc);
            assert_int_equal(diff, 0);
            for (int r = 0; r < NDET; r++)
                free(o[r]);
            free(a);
            free(b);
        }
        for (int k = 0; k < 2; k++) {
            struct vf_pool_desc pd = {k ? VF_POOL_AVG : VF_POOL_MAX, 3, 2, 1};
            int oh, ow;
            vf_pool_out_size(&pd, 54, 96, &oh, &ow);
            size_t nx = (size_t)2 * 64 * 54 * 96, ny = (size_t)2 * 64 * oh * ow;
            float *x = rand_buf(nx, 1.0f), *o[NDET];
            size_t diff = 0;
            for (int r = 0; r < NDET; r++) {
                struct vf_tensor s, t;
                assert_int_equal(vf_tensor_alloc(&s, bes[r], dt, 2, 64, 54, 96, &err), VF_OK);
                assert_int_equal(vf_tensor_alloc(&t, bes[r], dt, 2, 64, oh, ow, &err), VF_OK);
                assert_int_equal(vf_tensor_upload(&s, x, &err), VF_OK);
                struct vf_pool *p = NULL;
                assert_int_equal(vf_pool_create(&p, bes[r], &pd, dt, 2, 64, 54, 96, &err), VF_OK);
                assert_int_equal(vf_pool_run(p, &s, &t, &err), VF_OK);
                o[r] = malloc(ny * 4);
                assert_int_equal(vf_tensor_download(&t, o[r], &err), VF_OK);
                vf_pool_destroy(&p);
                vf_tensor_free(&s);
                vf_tensor_free(&t);
                if (r)
                    diff += count_diff(o[0], o[r], ny);
            }
            printf("  pool %s 3x3 s2 %-4s threads 1,2,3,4: %zu of %zu differ\n",
                   k ? "avg" : "max", vf_dtype_name(dt), diff, ny);
            assert_int_equal(diff, 0);
            for (int r = 0; r < NDET; r++)
                free(o[r]);
            free(x);
        }
    }
    for (int r = 0; r < NDET; r++)
        vf_backend_destroy(&bes[r]);
}

/* The paths for CPUs without AVX-512 (chunked gemm:jit matmul, one-thread gemm convolution,
 * no bf16) are taken on this machine too, by running this program again in a child with
 * oneDNN capped at AVX2 (the ISA is fixed per process at oneDNN's first use). */
static void avx2_paths_in_a_child_process(void **state)
{
    (void)state;
    if (getenv("VF_PRIMS_CHILD")) {
        printf("  (this is the AVX2 child)\n");
        return;
    }
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if ((isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core) {
        printf("  skipped: this CPU already takes the non-AVX-512 paths\n");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("VF_PRIMS_CHILD", "1", 1);
        setenv("ONEDNN_MAX_CPU_ISA", "AVX2", 1);
        execl("/proc/self/exe", "test_prims", (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    tu_xs_seed(0x9e3779b97f4a7c15ull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backend_and_dtype_basics),
        cmocka_unit_test(bf16_rounds_to_nearest_even),
        cmocka_unit_test(f16_converts_like_ieee_half),
        cmocka_unit_test(upload_download_round_trip_all_dtypes_and_views),
        cmocka_unit_test(conv_f32_matches_naive_loop),
        cmocka_unit_test(conv_bf16_matches_naive_loop),
        cmocka_unit_test(conv_rejects_bad_descriptions),
        cmocka_unit_test(matmul_matches_naive_loop),
        cmocka_unit_test(pool_matches_naive_loop),
        cmocka_unit_test(results_do_not_depend_on_thread_count),
        cmocka_unit_test(avx2_paths_in_a_child_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
