/* tests/test_ops.c: the C operators of the CPU backend (kernels/ops.c, kernels/elem.h) against
 * plain reference loops written here, independently, in double precision over planar NCHW
 * arrays, with PyTorch's conventions spelled out.
 *
 * Every operator runs on three backends (1, 2 and 3 threads) and must give bit-identical
 * results; shapes include odd sizes, n = 2, channel-slice views (pix_stride > c, whose other
 * channels must stay untouched) and f32/bf16 (some f16) storage. The reference reads the
 * inputs as stored (so bf16 cases measure the operator, not the input rounding).
 *
 * Tolerances (relative L2 error ‖out − ref‖/‖ref‖ unless said):
 *   f32 storage 1e-6, bf16 storage 1e-2, f16 storage 2e-3;
 *   copy/concat: exact (the RNE conversion of the stored value);
 *   attention rows: 1e-6 (f32, τ = 1 and τ = 0.01);
 *   colour known values: white → (100, 0, 0) within 1e-4, red → (53.24, 80.09, 67.20) within
 *   0.01, grey 0 → L 0 and grey 1 → L 100 within 1e-4, Lab → RGB ∘ RGB → Lab ≤ 1e-4 (max abs);
 *   keep luma: output luma = grey within 1e-4 (max abs) where no channel is clipped, |Cb|, |Cr|
 *   ≤ 1e-5 for a = b = 0, R′G′B′/CbCr vs the double bisection ≤ 1e-4 (max abs); the Newton
 *   solver vs the plain float 20-step bisection over a dense (grey, a, b) grid to |ab| = 200:
 *   R′G′B′ ≤ 1e-4 (max abs);
 *   guided upsampling: constant → that constant within 1e-4 (abs), radius 0 → bilinear
 *   upsampling of ab within 1e-6, linear function of the grey
 *   → that function within 1e-3 (abs, ab values up to ~100, ε = 1e-8).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/elem.h"
#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "test_util.h"

#define NBE 3
static struct vf_backend *g_be[NBE];
static const int g_threads[NBE] = {1, 2, 3};

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < NBE; i++) {
        struct vf_error err = {0};
        struct vf_backend_opts o = {.device = VF_DEVICE_CPU, .gpu = 0, .threads = g_threads[i]};
        if (vf_backend_create(&g_be[i], &o, &err) != VF_OK) {
            fprintf(stderr, "backend: %s\n", err.msg);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < NBE; i++)
        vf_backend_destroy(&g_be[i]);
    return 0;
}

/* ============================== helpers ==================================================== */


static double *dalloc(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* The value a double becomes when stored as dt. */
static double quant(enum vf_dtype dt, double x)
{
    float f = (float)x;
    switch (dt) {
    case VF_BF16: return vf_bf16_to_f32(vf_f32_to_bf16(f));
    case VF_F16: return vf_f16_to_f32(vf_f32_to_f16(f));
    default: return f;
    }
}

static double tol_of(enum vf_dtype dt) { return dt == VF_F32 ? 1e-6 : (dt == VF_BF16 ? 1e-2 : 2e-3); }

static const double SENTINEL = 1024.0;  /* exact in every dtype */

/* A test tensor: `t` is the operand, either all of `base` or a view of channels [2, 2 + c) of
 * a tensor with 3 more channels (the rest hold SENTINEL and must keep it). */
struct tt {
    struct vf_tensor base, t;
    int view;
};

static size_t el_off(const struct vf_tensor *t, int i, int ch, int y, int x)
{
    return (((size_t)i * t->h + y) * t->w + x) * (size_t)t->pix_stride + ch;
}

static double el_get(const struct vf_tensor *t, size_t off)
{
    switch (t->dtype) {
    case VF_BF16: return vf_bf16_to_f32(((const uint16_t *)t->data)[off]);
    case VF_F16: return vf_f16_to_f32(((const uint16_t *)t->data)[off]);
    default: return ((const float *)t->data)[off];
    }
}

static void el_set(const struct vf_tensor *t, size_t off, double v)
{
    switch (t->dtype) {
    case VF_BF16: ((uint16_t *)t->data)[off] = vf_f32_to_bf16((float)v); break;
    case VF_F16: ((uint16_t *)t->data)[off] = vf_f32_to_f16((float)v); break;
    default: ((float *)t->data)[off] = (float)v; break;
    }
}

static void tt_make(struct tt *x, struct vf_backend *be, enum vf_dtype dt, int n, int c, int h,
                    int w, int view)
{
    struct vf_error err = {0};
    x->view = view;
    int rc = vf_tensor_alloc(&x->base, be, dt, n, c + (view ? 3 : 0), h, w, &err);
    if (rc != VF_OK)
        fail_msg("vf_tensor_alloc: %s", err.msg);
    x->t = view ? vf_tensor_slice(&x->base, 2, c) : x->base;
    const struct vf_tensor *b = &x->base;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < w; xx++)
                for (int ch = 0; ch < b->c; ch++)
                    el_set(b, el_off(b, i, ch, y, xx), SENTINEL);
}

static void tt_put(struct tt *x, const double *nchw)
{
    const struct vf_tensor *t = &x->t;
    size_t k = 0;
    for (int i = 0; i < t->n; i++)
        for (int ch = 0; ch < t->c; ch++)
            for (int y = 0; y < t->h; y++)
                for (int xx = 0; xx < t->w; xx++)
                    el_set(t, el_off(t, i, ch, y, xx), nchw[k++]);
}

static void tt_get(const struct tt *x, double *nchw)
{
    const struct vf_tensor *t = &x->t;
    size_t k = 0;
    for (int i = 0; i < t->n; i++)
        for (int ch = 0; ch < t->c; ch++)
            for (int y = 0; y < t->h; y++)
                for (int xx = 0; xx < t->w; xx++)
                    nchw[k++] = el_get(t, el_off(t, i, ch, y, xx));
}

/* The channels outside a view still hold SENTINEL. */
static void tt_check_pad(const struct tt *x)
{
    if (!x->view)
        return;
    const struct vf_tensor *b = &x->base;
    for (int i = 0; i < b->n; i++)
        for (int y = 0; y < b->h; y++)
            for (int xx = 0; xx < b->w; xx++)
                for (int ch = 0; ch < b->c; ch++) {
                    if (ch >= 2 && ch < 2 + x->t.c)
                        continue;
                    double v = el_get(b, el_off(b, i, ch, y, xx));
                    if (v != SENTINEL)
                        fail_msg("a view's neighbour channel %d was written (%g)", ch, v);
                }
}

static void tt_free(struct tt *x) { vf_tensor_free(&x->base); }

static size_t tcount(int n, int c, int h, int w) { return (size_t)n * c * h * w; }

/* Relative L2 error; prints it with the case's name. */
static double rel_l2(const double *out, const double *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i]))
            return INFINITY;
        num += (out[i] - ref[i]) * (out[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static double max_abs(const double *out, const double *ref, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(out[i] - ref[i]);
        if (!(d <= m))
            m = d;   /* NaN propagates */
    }
    return m;
}

static void check_close(const char *what, const double *out, const double *ref, size_t n,
                        double tol)
{
    double e = rel_l2(out, ref, n);
    if (getenv("VF_OPS_VERBOSE"))
        printf("%-64s rel L2 %.3g (tolerance %.3g)\n", what, e, tol);
    if (!(e <= tol))
        fail_msg("%s: relative L2 error %.3g > %.3g", what, e, tol);
}

/* Outputs of the three backends are bit-identical (doubles hold the stored values exactly). */
static void check_same_bits(const char *what, double *const outs[NBE], size_t n)
{
    for (int b = 1; b < NBE; b++)
        if (memcmp(outs[0], outs[b], n * sizeof(double)) != 0)
            fail_msg("%s: %d threads and 1 thread differ", what, g_threads[b]);
}

static void ok(int rc, const struct vf_error *err)
{
    if (rc != VF_OK)
        fail_msg("operator failed (%d): %s", rc, err->msg);
}

struct shape {
    int n, c, h, w;
};

static const char *dtn(enum vf_dtype dt) { return dt == VF_F32 ? "f32" : dt == VF_BF16 ? "bf16" : "f16"; }

/* ============================== conversions ================================================ */

static void bf16_conversion_rounds_to_nearest_even(void **state)
{
    (void)state;
    assert_int_equal(vf_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(vf_f32_to_bf16(-2.5f), 0xc020);
    float f;
    uint32_t u = 0x3f808000u; /* halfway between 0x3f80 and 0x3f81: to even */
    memcpy(&f, &u, 4);
    assert_int_equal(vf_f32_to_bf16(f), 0x3f80);
    u = 0x3f818000u; /* halfway between 0x3f81 and 0x3f82: to even */
    memcpy(&f, &u, 4);
    assert_int_equal(vf_f32_to_bf16(f), 0x3f82);
    u = 0x3f808001u;
    memcpy(&f, &u, 4);
    assert_int_equal(vf_f32_to_bf16(f), 0x3f81);
    assert_true(isnan(vf_bf16_to_f32(vf_f32_to_bf16(NAN))));
    u = 0x7f800001u; /* signalling NaN whose payload is all in the low bits: stays NaN */
    memcpy(&f, &u, 4);
    assert_true(isnan(vf_bf16_to_f32(vf_f32_to_bf16(f))));
    assert_true(isinf(vf_bf16_to_f32(vf_f32_to_bf16(INFINITY))));
    assert_true(isinf(vf_bf16_to_f32(vf_f32_to_bf16(3.4e38f)))); /* rounds up past the max */
    /* every bf16 value round-trips */
    for (uint32_t h = 0; h < 65536; h++) {
        float v = vf_bf16_to_f32((uint16_t)h);
        if (isnan(v))
            assert_true(isnan(vf_bf16_to_f32(vf_f32_to_bf16(v))));
        else
            assert_int_equal(vf_f32_to_bf16(v), h);
    }
    /* random floats against a double-based round to nearest even */
    for (int i = 0; i < 200000; i++) {
        float x = (float)(rnd(-1, 1) * pow(2.0, rnd(-60, 60)));
        uint16_t hb = vf_f32_to_bf16(x);
        double lo = vf_bf16_to_f32(hb), d = fabs((double)x - lo);
        /* the neighbours are no closer */
        double up = vf_bf16_to_f32((uint16_t)(hb + 1)), dn = vf_bf16_to_f32((uint16_t)(hb - 1));
        assert_true(d <= fabs((double)x - up) && d <= fabs((double)x - dn));
    }
}

static void f16_conversion_is_exact_and_rounds_to_nearest_even(void **state)
{
    (void)state;
    assert_int_equal(vf_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(vf_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(vf_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(vf_f32_to_f16(65520.0f), 0x7c00); /* halfway to 65536: to even = inf */
    assert_int_equal(vf_f32_to_f16(-1e9f), 0xfc00);
    assert_int_equal(vf_f32_to_f16(5.9604645e-8f), 0x0001);  /* 2^-24, smallest subnormal */
    assert_int_equal(vf_f32_to_f16(2.9802322e-8f), 0x0000);  /* 2^-25: tie to even 0 */
    assert_int_equal(vf_f32_to_f16(4.4703484e-8f), 0x0001);  /* 1.5·2^-25: up */
    assert_int_equal(vf_f32_to_f16(6.1035156e-5f), 0x0400);  /* 2^-14, smallest normal */
    assert_true(isnan(vf_f16_to_f32(vf_f32_to_f16(NAN))));
    float f;
    uint32_t u = 0x7f800001u;
    memcpy(&f, &u, 4);
    assert_true(isnan(vf_f16_to_f32(vf_f32_to_f16(f))));
    for (uint32_t h = 0; h < 65536; h++) {
        float v = vf_f16_to_f32((uint16_t)h);
        if (isnan(v))
            assert_true(isnan(vf_f16_to_f32(vf_f32_to_f16(v))));
        else
            assert_int_equal(vf_f32_to_f16(v), h);
    }
#if defined(__FLT16_MAX__)
    /* the compiler's own _Float16 conversion (round to nearest even) agrees */
    for (int i = 0; i < 400000; i++) {
        float x = (float)(rnd(-1, 1) * pow(2.0, rnd(-30, 17)));
        _Float16 hc = (_Float16)x;
        uint16_t hb;
        memcpy(&hb, &hc, 2);
        if (vf_f32_to_f16(x) != hb)
            fail_msg("f16 of %.9g: 0x%04x, compiler 0x%04x", (double)x, vf_f32_to_f16(x), hb);
    }
#endif
}

/* ============================== act ======================================================== */

static double ref_act(double x, enum vf_act act, double alpha, double slope)
{
    switch (act) {
    case VF_ACT_RELU: return x > 0 ? x : 0;
    case VF_ACT_LRELU: return x > 0 ? x : alpha * x;
    case VF_ACT_PRELU: return x > 0 ? x : slope * x;
    case VF_ACT_TANH: return tanh(x);
    default: return x;
    }
}

static void put_vec(struct vf_tensor *v, struct vf_backend *be, const double *x, int c)
{
    struct vf_error err = {0};
    ok(vf_tensor_alloc(v, be, VF_F32, 1, c, 1, 1, &err), &err);
    for (int i = 0; i < c; i++)
        ((float *)v->data)[i] = (float)x[i];
}

static void act_matches_reference(void **state)
{
    (void)state;
    const struct shape shapes[] = {{2, 5, 27, 48}, {1, 70, 7, 12}, {2, 19, 54, 96}};
    const enum vf_act acts[] = {VF_ACT_NONE, VF_ACT_RELU, VF_ACT_LRELU, VF_ACT_PRELU, VF_ACT_TANH};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16, VF_F16};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (size_t di = 0; di < 3; di++)
            for (size_t ai = 0; ai < 5; ai++)
                for (int mode = 0; mode < 3; mode++) { /* 0 dense, 1 views, 2 in place */
                    const struct shape s = shapes[si];
                    const enum vf_dtype dt = dts[di];
                    const enum vf_act act = acts[ai];
                    size_t cnt = tcount(s.n, s.c, s.h, s.w);
                    double *in = dalloc(cnt), *qin = dalloc(cnt), *ref = dalloc(cnt);
                    double *sl = dalloc((size_t)s.c), *outs[NBE];
                    for (size_t i = 0; i < cnt; i++) {
                        in[i] = rnd(-3, 3);
                        qin[i] = quant(dt, in[i]);
                    }
                    for (int c = 0; c < s.c; c++)
                        sl[c] = (float)rnd(0, 0.5);
                    for (int b = 0; b < NBE; b++) {
                        struct vf_error err = {0};
                        struct tt src, dst;
                        struct vf_tensor slopes = {0};
                        put_vec(&slopes, g_be[b], sl, s.c);
                        tt_make(&src, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                        tt_put(&src, in);
                        outs[b] = dalloc(cnt);
                        if (mode == 2) {
                            ok(vf_op_act(&src.t, &src.t, act, 0.2f, &slopes, &err), &err);
                            tt_get(&src, outs[b]);
                        } else {
                            tt_make(&dst, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                            ok(vf_op_act(&src.t, &dst.t, act, 0.2f, &slopes, &err), &err);
                            tt_get(&dst, outs[b]);
                            tt_check_pad(&dst);
                            tt_free(&dst);
                        }
                        tt_check_pad(&src);
                        tt_free(&src);
                        vf_tensor_free(&slopes);
                    }
                    size_t plane = (size_t)s.h * s.w;
                    for (size_t i = 0; i < cnt; i++)
                        ref[i] = ref_act(qin[i], act, (double)0.2f, sl[(i / plane) % s.c]);
                    char what[128];
                    snprintf(what, sizeof what, "act %d %s %dx%dx%dx%d mode %d", (int)act,
                             dtn(dt), s.n, s.c, s.h, s.w, mode);
                    check_same_bits(what, outs, cnt);
                    check_close(what, outs[0], ref, cnt, tol_of(dt));
                    for (int b = 0; b < NBE; b++)
                        free(outs[b]);
                    free(in), free(qin), free(ref), free(sl);
                }
}

/* ============================== instance norm ============================================== */

static void instance_norm_matches_reference(void **state)
{
    (void)state;
    const struct shape shapes[] = {{2, 19, 27, 48}, {1, 3, 7, 12}, {2, 24, 54, 96}, {1, 1, 1, 1}};
    const enum vf_act acts[] = {VF_ACT_NONE, VF_ACT_RELU, VF_ACT_LRELU, VF_ACT_PRELU};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    const float eps = 1e-5f;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (size_t di = 0; di < 2; di++)
            for (size_t ai = 0; ai < 4; ai++)
                for (int mode = 0; mode < 3; mode++) {
                    const struct shape s = shapes[si];
                    const enum vf_dtype dt = dts[di];
                    const enum vf_act act = acts[ai];
                    const int affine = (int)(ai + (size_t)mode) % 2 == 0;
                    size_t cnt = tcount(s.n, s.c, s.h, s.w), plane = (size_t)s.h * s.w;
                    double *in = dalloc(cnt), *qin = dalloc(cnt), *ref = dalloc(cnt);
                    double *g = dalloc((size_t)s.c), *be_ = dalloc((size_t)s.c);
                    double *sl = dalloc((size_t)s.c), *outs[NBE];
                    for (int c = 0; c < s.c; c++) {
                        g[c] = affine ? (float)rnd(0.5, 2) : 1.0;
                        be_[c] = affine ? (float)rnd(-1, 1) : 0.0;
                        sl[c] = (float)rnd(0, 0.5);
                    }
                    for (size_t i = 0; i < cnt; i++) {
                        size_t c = (i / plane) % (size_t)s.c;
                        in[i] = 10.0 + (double)c + rnd(-2, 2) * (1 + (double)c / 4);
                        qin[i] = quant(dt, in[i]);
                    }
                    for (int b = 0; b < NBE; b++) {
                        struct vf_error err = {0};
                        struct tt src, dst;
                        struct vf_tensor gt = {0}, bt = {0}, st = {0};
                        put_vec(&gt, g_be[b], g, s.c);
                        put_vec(&bt, g_be[b], be_, s.c);
                        put_vec(&st, g_be[b], sl, s.c);
                        tt_make(&src, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                        tt_put(&src, in);
                        outs[b] = dalloc(cnt);
                        const struct vf_tensor *gp = affine ? &gt : NULL, *bp = affine ? &bt : NULL;
                        if (mode == 2) {
                            ok(vf_op_instance_norm(&src.t, &src.t, eps, gp, bp, act, 0.2f, &st, &err),
                               &err);
                            tt_get(&src, outs[b]);
                        } else {
                            tt_make(&dst, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                            ok(vf_op_instance_norm(&src.t, &dst.t, eps, gp, bp, act, 0.2f, &st, &err),
                               &err);
                            tt_get(&dst, outs[b]);
                            tt_check_pad(&dst);
                            tt_free(&dst);
                        }
                        tt_check_pad(&src);
                        tt_free(&src);
                        vf_tensor_free(&gt), vf_tensor_free(&bt), vf_tensor_free(&st);
                    }
                    /* reference: per image and channel, biased variance, then affine, act */
                    for (int i = 0; i < s.n; i++)
                        for (int c = 0; c < s.c; c++) {
                            const double *x = qin + ((size_t)i * s.c + c) * plane;
                            double *y = ref + ((size_t)i * s.c + c) * plane;
                            double m = 0, v = 0;
                            for (size_t k = 0; k < plane; k++)
                                m += x[k];
                            m /= (double)plane;
                            for (size_t k = 0; k < plane; k++)
                                v += (x[k] - m) * (x[k] - m);
                            v /= (double)plane;
                            for (size_t k = 0; k < plane; k++)
                                y[k] = ref_act((x[k] - m) / sqrt(v + (double)eps) * g[c] + be_[c],
                                               act, (double)0.2f, sl[c]);
                        }
                    char what[128];
                    snprintf(what, sizeof what, "instance norm act %d %s %dx%dx%dx%d mode %d aff %d",
                             (int)act, dtn(dt), s.n, s.c, s.h, s.w, mode, affine);
                    check_same_bits(what, outs, cnt);
                    if (plane == 1) { /* a single position: x̂ = 0, output = act(beta) */
                        for (size_t k = 0; k < cnt; k++)
                            assert_true(fabs(outs[0][k] - ref[k]) <= 1e-6 + tol_of(dt) * fabs(ref[k]));
                    } else {
                        check_close(what, outs[0], ref, cnt, tol_of(dt));
                    }
                    for (int b = 0; b < NBE; b++)
                        free(outs[b]);
                    free(in), free(qin), free(ref), free(g), free(be_), free(sl);
                }
}

/* ============================== resize ===================================================== */

/* nearest: src = floor(dst · in / out), exactly (integers) */
static void ref_nearest_plane(const double *in, int ih, int iw, double *out, int oh, int ow)
{
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sy = (int)(((long)y * ih) / oh), sx = (int)(((long)x * iw) / ow);
            out[(size_t)y * ow + x] = in[(size_t)sy * iw + sx];
        }
}

/* PyTorch bilinear, align_corners=False: real = scale·(dst + 0.5) − 0.5, clamped below at 0;
 * i0 = floor(real) (≤ in − 1), i1 = min(i0 + 1, in − 1), λ = real − i0. PyTorch's scale is
 * in/out rounded to float (area_pixel_compute_scale<float>); the rest is done in double here. */
static void lin_idx(int dst, int in, int out, int *i0, int *i1, double *l)
{
    const double scale = (double)((float)in / (float)out);
    double real = scale * (dst + 0.5) - 0.5;
    if (real < 0)
        real = 0;
    int i = (int)floor(real);
    if (i > in - 1)
        i = in - 1;
    *i0 = i;
    *i1 = i + 1 < in ? i + 1 : in - 1;
    *l = real - i;
}

static void ref_bilinear_plane(const double *in, int ih, int iw, double *out, int oh, int ow)
{
    for (int y = 0; y < oh; y++) {
        int y0, y1;
        double ly;
        lin_idx(y, ih, oh, &y0, &y1, &ly);
        for (int x = 0; x < ow; x++) {
            int x0, x1;
            double lx;
            lin_idx(x, iw, ow, &x0, &x1, &lx);
            double top = (1 - lx) * in[(size_t)y0 * iw + x0] + lx * in[(size_t)y0 * iw + x1];
            double bot = (1 - lx) * in[(size_t)y1 * iw + x0] + lx * in[(size_t)y1 * iw + x1];
            out[(size_t)y * ow + x] = (1 - ly) * top + ly * bot;
        }
    }
}

struct rcase {
    int n, c, ih, iw, oh, ow;
};

static void run_resize_cases(enum vf_resize mode, const struct rcase *cases, size_t ncases)
{
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t ci = 0; ci < ncases; ci++)
        for (size_t di = 0; di < 2; di++)
            for (int view = 0; view < 2; view++) {
                const struct rcase r = cases[ci];
                const enum vf_dtype dt = dts[di];
                size_t icnt = tcount(r.n, r.c, r.ih, r.iw), ocnt = tcount(r.n, r.c, r.oh, r.ow);
                double *in = dalloc(icnt), *qin = dalloc(icnt), *ref = dalloc(ocnt), *outs[NBE];
                for (size_t i = 0; i < icnt; i++) {
                    in[i] = rnd(-1, 1);
                    qin[i] = quant(dt, in[i]);
                }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt src, dst;
                    tt_make(&src, g_be[b], dt, r.n, r.c, r.ih, r.iw, view);
                    tt_make(&dst, g_be[b], dt, r.n, r.c, r.oh, r.ow, view);
                    tt_put(&src, in);
                    outs[b] = dalloc(ocnt);
                    ok(vf_op_resize(&src.t, &dst.t, mode, &err), &err);
                    tt_get(&dst, outs[b]);
                    tt_check_pad(&dst);
                    tt_free(&src), tt_free(&dst);
                }
                for (int p = 0; p < r.n * r.c; p++) {
                    const double *ip = qin + (size_t)p * r.ih * r.iw;
                    double *op = ref + (size_t)p * r.oh * r.ow;
                    if (mode == VF_RESIZE_NEAREST)
                        ref_nearest_plane(ip, r.ih, r.iw, op, r.oh, r.ow);
                    else
                        ref_bilinear_plane(ip, r.ih, r.iw, op, r.oh, r.ow);
                }
                char what[128];
                snprintf(what, sizeof what, "resize %s %s %dx%dx%dx%d -> %dx%d view %d",
                         mode == VF_RESIZE_NEAREST ? "nearest" : "bilinear", dtn(dt), r.n, r.c,
                         r.ih, r.iw, r.oh, r.ow, view);
                check_same_bits(what, outs, ocnt);
                if (mode == VF_RESIZE_NEAREST) /* a copy: exact */
                    check_close(what, outs[0], ref, ocnt, 0.0);
                else
                    check_close(what, outs[0], ref, ocnt, tol_of(dt));
                for (int b = 0; b < NBE; b++)
                    free(outs[b]);
                free(in), free(qin), free(ref);
            }
}

static void resize_nearest_matches_reference(void **state)
{
    (void)state;
    const struct rcase cases[] = {
        {2, 2, 7, 12, 28, 48},   /* ×4 (W^ab, S) */
        {2, 5, 27, 48, 54, 96},  /* ×2 (decoder) */
        {1, 3, 27, 48, 27, 48},  /* identity */
        {2, 3, 7, 12, 10, 17},   /* a non-integer ratio */
        {1, 4, 54, 96, 27, 48},  /* down */
        {1, 70, 36, 64, 144, 256},
    };
    run_resize_cases(VF_RESIZE_NEAREST, cases, sizeof cases / sizeof *cases);
}

/* Bilinear resizes of up to RESIZE_FEW (4) channels take their own loop (kernels/ops.c): each
 * channel view of 1 to 4 channels of a 9-channel tensor, f32 and bf16, gives the bits of the
 * whole tensor's resize (the channel-span loop) in its channels. */
static void resize_few_channels_match_spans(void **state)
{
    (void)state;
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t di = 0; di < 2; di++) {
        struct vf_error err = {0};
        struct tt src, whole, part;
        const int n = 2, c = 9, ih = 13, iw = 21, oh = 40, ow = 57;
        double *in = dalloc(tcount(n, c, ih, iw)), *a = dalloc(tcount(n, c, oh, ow));
        for (size_t i = 0; i < tcount(n, c, ih, iw); i++)
            in[i] = rnd(-2, 2);
        tt_make(&src, g_be[1], dts[di], n, c, ih, iw, 0);
        tt_make(&whole, g_be[1], dts[di], n, c, oh, ow, 0);
        tt_put(&src, in);
        ok(vf_op_resize(&src.t, &whole.t, VF_RESIZE_BILINEAR, &err), &err);
        tt_get(&whole, a);
        for (int nc = 1; nc <= 4; nc++)
            for (int c0 = 0; c0 + nc <= c; c0 += 2) {
                const struct vf_tensor sv = vf_tensor_slice(&src.t, c0, nc);
                tt_make(&part, g_be[1], dts[di], n, nc, oh, ow, nc % 2);
                ok(vf_op_resize(&sv, &part.t, VF_RESIZE_BILINEAR, &err), &err);
                double *b = dalloc(tcount(n, nc, oh, ow));
                tt_get(&part, b);
                tt_check_pad(&part);
                for (int i = 0; i < n; i++)
                    for (int k = 0; k < nc; k++)
                        assert_memory_equal(b + ((size_t)i * nc + k) * oh * ow,
                                            a + ((size_t)i * c + c0 + k) * oh * ow,
                                            (size_t)oh * ow * sizeof(double));
                free(b);
                tt_free(&part);
            }
        tt_free(&src), tt_free(&whole);
        free(in), free(a);
    }
}

static void resize_bilinear_matches_reference(void **state)
{
    (void)state;
    const struct rcase cases[] = {
        {2, 3, 7, 12, 54, 96},   /* layer4 tap → H/4 */
        {2, 5, 27, 48, 54, 96},  /* layer2 tap → H/4 */
        {1, 3, 14, 24, 54, 96},
        {1, 2, 54, 96, 54, 96},  /* identity */
        {1, 3, 27, 48, 7, 12},   /* down, no antialias */
        {1, 3, 5, 7, 13, 11},
        {1, 1, 1, 1, 3, 4},      /* a single pixel */
        {1, 17, 36, 64, 72, 128},
    };
    run_resize_cases(VF_RESIZE_BILINEAR, cases, sizeof cases / sizeof *cases);
}

/* ============================== add, concat, copy ========================================== */

static void add_matches_reference(void **state)
{
    (void)state;
    const struct shape shapes[] = {{2, 5, 27, 48}, {1, 70, 7, 12}, {2, 19, 54, 96}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t si = 0; si < 3; si++)
        for (size_t di = 0; di < 2; di++)
            for (int mode = 0; mode < 4; mode++) { /* dense, views, dst == a, dst == b */
                const struct shape s = shapes[si];
                const enum vf_dtype dt = dts[di], dtb = mode == 1 ? VF_F32 : dt;
                size_t cnt = tcount(s.n, s.c, s.h, s.w);
                double *a = dalloc(cnt), *bb = dalloc(cnt), *ref = dalloc(cnt), *outs[NBE];
                for (size_t i = 0; i < cnt; i++) {
                    a[i] = rnd(-2, 2);
                    bb[i] = rnd(-2, 2);
                    ref[i] = quant(dt, a[i]) + quant(dtb, bb[i]);
                }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt ta, tb, td;
                    tt_make(&ta, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                    tt_make(&tb, g_be[b], dtb, s.n, s.c, s.h, s.w, mode == 1);
                    tt_put(&ta, a);
                    tt_put(&tb, bb);
                    outs[b] = dalloc(cnt);
                    if (mode >= 2) {
                        struct tt *d = mode == 2 ? &ta : &tb;
                        ok(vf_op_add(&ta.t, &tb.t, &d->t, &err), &err);
                        tt_get(d, outs[b]);
                    } else {
                        tt_make(&td, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                        ok(vf_op_add(&ta.t, &tb.t, &td.t, &err), &err);
                        tt_get(&td, outs[b]);
                        tt_check_pad(&td);
                        tt_free(&td);
                    }
                    tt_free(&ta), tt_free(&tb);
                }
                char what[128];
                snprintf(what, sizeof what, "add %s %dx%dx%dx%d mode %d", dtn(dt), s.n, s.c,
                         s.h, s.w, mode);
                check_same_bits(what, outs, cnt);
                check_close(what, outs[0], ref, cnt, mode == 3 ? tol_of(dtb) : tol_of(dt));
                for (int b = 0; b < NBE; b++)
                    free(outs[b]);
                free(a), free(bb), free(ref);
            }
}

/* vf_op_gated_add against w + f·σ(g)·128·tanh(o) in double, on f32 and bf16 operands, dense, as
 * views and in place (dst == w), without a factor (f = 1), with one per image (C.gate_motion) and
 * one per pixel (C.gate_motion_radius);
 * gates of ±100 close the correction exactly (dst == w, bit for bit) or open it fully, with no
 * NaN. */
static void gated_add_matches_reference(void **state)
{
    (void)state;
    const struct shape shapes[] = {{2, 2, 27, 48}, {1, 5, 7, 12}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    const double scale = 128, factors[2] = {0.375, 0.8125};   /* per image, exact in f32 */
    for (size_t si = 0; si < 2; si++)
        for (size_t di = 0; di < 2; di++)
            for (int mode = 0; mode < 5; mode++) { /* dense, views, dst == w, with factors per
                                                      image, per pixel */
                const struct shape s = shapes[si];
                const bool fac = mode >= 3, fpx = mode == 4;
                const enum vf_dtype dt = dts[di];
                const size_t cnt = tcount(s.n, s.c, s.h, s.w), hw = (size_t)s.h * s.w;
                const size_t ocnt = tcount(s.n, s.c + 1, s.h, s.w);
                double *o = dalloc(ocnt), *w = dalloc(cnt), *ref = dalloc(cnt), *outs[NBE];
                double *fp = dalloc((size_t)s.n * hw);   /* per pixel: multiples of 1/64, exact in f32 */
                for (size_t i = 0; i < (size_t)s.n * hw; i++)
                    fp[i] = floor(rnd(0, 64)) / 64;
                for (size_t i = 0; i < ocnt; i++)
                    o[i] = rnd(-3, 3);
                for (size_t i = 0; i < cnt; i++)
                    w[i] = rnd(-100, 100);
                for (int n = 0; n < s.n; n++) {
                    double *g = o + ((size_t)n * (s.c + 1) + s.c) * hw;   /* the gate plane */
                    g[0] = -100, g[1] = 100;   /* closed, open */
                    for (int c = 0; c < s.c; c++)
                        for (size_t p = 0; p < hw; p++) {
                            size_t i = ((size_t)n * s.c + c) * hw + p;
                            double og = quant(dt, o[((size_t)n * (s.c + 1) + c) * hw + p]);
                            const double f = fpx ? fp[(size_t)n * hw + p] : fac ? factors[n] : 1.0;
                            ref[i] = quant(dt, w[i]) + f * scale * tanh(og) / (1 + exp(-quant(dt, g[p])));
                        }
                }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt to, tw, td, tf;
                    if (fac) {
                        tt_make(&tf, g_be[b], VF_F32, s.n, 1, fpx ? s.h : 1, fpx ? s.w : 1, false);
                        tt_put(&tf, fpx ? fp : factors);
                    }
                    tt_make(&to, g_be[b], dt, s.n, s.c + 1, s.h, s.w, mode == 1);
                    tt_make(&tw, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                    tt_put(&to, o);
                    tt_put(&tw, w);
                    outs[b] = dalloc(cnt);
                    struct tt *d = &tw;
                    if (mode != 2) {
                        tt_make(&td, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                        d = &td;
                    }
                    ok(vf_op_gated_add(&to.t, &tw.t, (float)scale, fac ? &tf.t : NULL, &d->t, &err), &err);
                    tt_get(d, outs[b]);
                    tt_check_pad(d);
                    if (mode != 2)
                        tt_free(&td);
                    if (fac)
                        tt_free(&tf);
                    tt_free(&to), tt_free(&tw);
                }
                char what[128];
                snprintf(what, sizeof what, "gated add %s %dx%dx%dx%d mode %d", dtn(dt), s.n, s.c,
                         s.h, s.w, mode);
                check_same_bits(what, outs, cnt);
                check_close(what, outs[0], ref, cnt, tol_of(dt));
                for (int n = 0; n < s.n; n++)
                    for (int c = 0; c < s.c; c++) {
                        size_t i = ((size_t)n * s.c + c) * hw;
                        if (outs[0][i] != quant(dt, w[i]))
                            fail_msg("%s: a closed gate changed w: %.9g -> %.9g", what,
                                     quant(dt, w[i]), outs[0][i]);
                        if (!(fabs(outs[0][i + 1] - ref[i + 1]) <= 1e-4 * scale + fabs(ref[i + 1]) * tol_of(dt)))
                            fail_msg("%s: an open gate: %.9g, want %.9g", what, outs[0][i + 1], ref[i + 1]);
                    }
                for (int b = 0; b < NBE; b++)
                    free(outs[b]);
                free(o), free(w), free(ref), free(fp);
            }
}

/* vf_op_motion_factor against m / (m + κ) in double, m the mean |a − b| of each image, on f32 and
 * bf16 operands, dense and as views: images 0 and 2 differ, image 1 is the same picture twice (a
 * held shot: factor exactly 0); on 1, 2 and 3 threads alike (one serial sum per image; the GPU's
 * own order is test_cuda_ops'). */
static void motion_factor_matches_reference(void **state)
{
    (void)state;
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    const int n = 3, h = 37, w = 61;
    const double kappa = 1.25;
    const size_t hw = (size_t)h * w, cnt = (size_t)n * hw;
    for (size_t di = 0; di < 2; di++)
        for (int view = 0; view < 2; view++) {
            const enum vf_dtype dt = dts[di];
            double *a = dalloc(cnt), *bb = dalloc(cnt), ref[3], outs[NBE][3];
            for (size_t i = 0; i < cnt; i++) {
                a[i] = rnd(0, 100);
                bb[i] = i / hw == 1 ? a[i] : a[i] + rnd(-3, 3) * (double)(i / hw + 1);
            }
            for (int k = 0; k < n; k++) {
                double m = 0;
                for (size_t p = 0; p < hw; p++)
                    m += fabs(quant(dt, a[k * hw + p]) - quant(dt, bb[k * hw + p]));
                m /= (double)hw;
                ref[k] = m / (m + kappa);
            }
            for (int b = 0; b < NBE; b++) {
                struct vf_error err = {0};
                struct tt ta, tb, tf;
                tt_make(&ta, g_be[b], dt, n, 1, h, w, view);
                tt_make(&tb, g_be[b], dt, n, 1, h, w, view);
                tt_make(&tf, g_be[b], VF_F32, n, 1, 1, 1, false);
                tt_put(&ta, a);
                tt_put(&tb, bb);
                ok(vf_op_motion_factor(&ta.t, &tb.t, (float)kappa, -1, &tf.t, &err), &err);
                tt_get(&tf, outs[b]);
                tt_free(&ta), tt_free(&tb), tt_free(&tf);
            }
            char what[96];
            snprintf(what, sizeof what, "motion factor %s view %d", dtn(dt), view);
            for (int b = 1; b < NBE; b++)
                if (memcmp(outs[0], outs[b], sizeof outs[0]))
                    fail_msg("%s: backend %d differs", what, b);
            if (outs[0][1] != 0.0)
                fail_msg("%s: a held image's factor is %.9g, want 0", what, outs[0][1]);
            for (int k = 0; k < n; k++)
                if (!(fabs(outs[0][k] - ref[k]) <= 1e-6))
                    fail_msg("%s: image %d: %.9g, want %.9g", what, k, outs[0][k], ref[k]);
            if (!(ref[0] > 0.2 && ref[2] > ref[0]))
                fail_msg("%s: the case does not span the factor: %g %g", what, ref[0], ref[2]);
            free(a), free(bb);
        }
}

/* The mean |a − b| (as dt stores them) over pixel (y, x)'s (2r + 1)² window of the h × w image
 * at a + base, b + base, clipped at the borders: summed in double, rows outer, then divided by
 * the count inside (the definition's order, ops.c motion_window). */
static double motion_mean_ref(const double *a, const double *b, enum vf_dtype dt, size_t base,
                              int h, int w, int y, int x, int r)
{
    const int y0 = y - r < 0 ? 0 : y - r, y1 = y + r >= h ? h - 1 : y + r;
    const int x0 = x - r < 0 ? 0 : x - r, x1 = x + r >= w ? w - 1 : x + r;
    double m = 0.0;
    for (int v = y0; v <= y1; v++)
        for (int u = x0; u <= x1; u++) {
            const size_t q = base + (size_t)v * w + u;
            m += fabs(quant(dt, a[q]) - quant(dt, b[q]));
        }
    return m / ((double)(y1 - y0 + 1) * (x1 - x0 + 1));
}

/* vf_op_motion_factor per pixel (a window row at a time for a whole row, 8 pixels at a time,
 * ops.c motion_row) against each pixel's window summed as the definition sums it (rows outer,
 * in double, |(double)a − (double)b|, divided by the count inside, then elem.h
 * vf_motion_factor), bit for bit: radii 0 to 16, widths with and without whole blocks, f32 and
 * bf16, dense and as views (the colorizer's L(t − 1) is a slice of C's input), a NaN and an
 * infinity in a second image, and a row wider than the row buffers (the pixel-by-pixel path),
 * on every backend. */
static void motion_factor_rows_match_windows(void **state)
{
    (void)state;
    /* 4104 columns: over ops.c's MOTION_ROW_MAX, the pixel-by-pixel path */
    const int radii[] = {0, 1, 3, 8, 16}, sizes[][3] = {{2, 13, 72}, {1, 20, 41}, {1, 3, 4104}};
    const float kappa = 8.0f;
    tu_lcg_seed(61);
    for (int form = 0; form < 4; form++)
        for (size_t si = 0; si < 3; si++)
            for (size_t ri = 0; ri < 5; ri++) {
                const int n = sizes[si][0], h = sizes[si][1], w = sizes[si][2], r = radii[ri];
                const enum vf_dtype dt = form & 1 ? VF_BF16 : VF_F32;
                const bool view = form & 2;
                const size_t hw = (size_t)h * w, cnt = (size_t)n * hw;
                double *a = dalloc(cnt), *bb = dalloc(cnt), *want = dalloc(cnt), *got = dalloc(cnt);
                for (size_t i = 0; i < cnt; i++) {   /* magnitudes 1e-6 to 5e8: double sums round */
                    const double mag = i % 5 == 0 ? 1e7 : i % 5 == 1 ? 1e-6 : 1.0;
                    a[i] = (float)(rnd(-50, 50) * mag);
                    bb[i] = (float)(a[i] + rnd(-3, 3) * mag);
                }
                if (n == 2) {   /* in image 1 only: image 0's factors stay finite */
                    a[hw + hw / 3] = NAN;
                    bb[hw + hw / 2] = INFINITY;
                }
                for (int k = 0; k < n; k++)
                    for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                            const double m = motion_mean_ref(a, bb, dt, (size_t)k * hw, h, w, y,
                                                             x, r);
                            want[(size_t)k * hw + (size_t)y * w + x] = vf_motion_factor(m, kappa);
                        }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt ta, tb, tf;
                    tt_make(&ta, g_be[b], dt, n, 1, h, w, view);
                    tt_make(&tb, g_be[b], dt, n, 1, h, w, !view);
                    tt_make(&tf, g_be[b], VF_F32, n, 1, h, w, false);
                    tt_put(&ta, a);
                    tt_put(&tb, bb);
                    ok(vf_op_motion_factor(&ta.t, &tb.t, kappa, r, &tf.t, &err), &err);
                    tt_get(&tf, got);
                    for (size_t i = 0; i < cnt; i++)
                        if (memcmp(&got[i], &want[i], sizeof got[i]))
                            fail_msg("motion factor %s%s %dx%dx%d r %d, %d threads: pixel %zu is "
                                     "%.17g, its window gives %.17g", dtn(dt), view ? " view" : "",
                                     n, h, w, r, g_threads[b], i, got[i], want[i]);
                    tt_free(&ta), tt_free(&tb), tt_free(&tf);
                }
                free(a), free(bb), free(want), free(got);
            }
}

/* vf_op_motion_factor per pixel (C.gate_motion_radius r = 0, 2, 5) against m / (m + κ) in double,
 * m the mean |a − b| over each pixel's (2r + 1)² window clipped at the borders, on f32 and bf16
 * operands, dense and as views; image 1 is held (every factor exactly 0), and in image 0 only the
 * left half moves, so that the factor falls to 0 past r pixels from it; on every backend alike. */
static void motion_factor_per_pixel_matches_reference(void **state)
{
    (void)state;
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    const int radii[] = {0, 2, 5, 16};   /* 16: windows larger than the image's height */
    const int n = 2, h = 23, w = 40;
    const double kappa = 2.5;
    const size_t hw = (size_t)h * w, cnt = (size_t)n * hw;
    for (size_t di = 0; di < 2; di++)
        for (size_t ri = 0; ri < 4; ri++)
            for (int view = 0; view < 2; view++) {
                const enum vf_dtype dt = dts[di];
                const int r = radii[ri];
                double *a = dalloc(cnt), *bb = dalloc(cnt), *ref = dalloc(cnt), *outs[NBE];
                for (size_t i = 0; i < cnt; i++) {
                    const int x = (int)(i % w);
                    a[i] = rnd(0, 100);
                    const double d = rnd(1, 6);   /* ≥ 1: still ≥ 0.5 once a and b are bf16 */
                    bb[i] = i / hw == 1 || x >= w / 2 ? a[i] : a[i] + (rnd(0, 1) < 0.5 ? -d : d);
                }
                for (int k = 0; k < n; k++)
                    for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                            const double m = motion_mean_ref(a, bb, dt, (size_t)k * hw, h, w, y,
                                                             x, r);
                            ref[(size_t)k * hw + (size_t)y * w + x] = m / (m + kappa);
                        }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt ta, tb, tf;
                    tt_make(&ta, g_be[b], dt, n, 1, h, w, view);
                    tt_make(&tb, g_be[b], dt, n, 1, h, w, !view);   /* a and b of different strides */
                    tt_make(&tf, g_be[b], VF_F32, n, 1, h, w, false);
                    tt_put(&ta, a);
                    tt_put(&tb, bb);
                    ok(vf_op_motion_factor(&ta.t, &tb.t, (float)kappa, r, &tf.t, &err), &err);
                    outs[b] = dalloc(cnt);
                    tt_get(&tf, outs[b]);
                    tt_free(&ta), tt_free(&tb), tt_free(&tf);
                }
                char what[96];
                snprintf(what, sizeof what, "motion factor per pixel %s r %d view %d", dtn(dt), r, view);
                check_same_bits(what, outs, cnt);
                check_close(what, outs[0], ref, cnt, 1e-6);
                for (size_t p = hw; p < cnt; p++)
                    if (outs[0][p] != 0.0)
                        fail_msg("%s: a held image's factor is %.9g at %zu, want 0", what, outs[0][p], p - hw);
                for (int y = 0; y < h; y++)   /* still past r pixels from the moving half: 0 */
                    if (outs[0][(size_t)y * w + w / 2 + r] != 0.0 || !(outs[0][(size_t)y * w] > 0.15))
                        fail_msg("%s: row %d: %.9g at the still side, %.9g at the moving side", what, y,
                                 outs[0][(size_t)y * w + w / 2 + r], outs[0][(size_t)y * w]);
                for (int b = 0; b < NBE; b++)
                    free(outs[b]);
                free(a), free(bb), free(ref);
            }
}

static void concat_and_copy_convert_exactly(void **state)
{
    (void)state;
    const int n = 2, h = 27, w = 48;
    const int cs[3] = {3, 5, 70};
    const enum vf_dtype sdt[3] = {VF_F32, VF_BF16, VF_F16};
    const enum vf_dtype ddts[3] = {VF_F32, VF_BF16, VF_F16};
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++) {
            const enum vf_dtype ddt = ddts[di];
            const int ctot = cs[0] + cs[1] + cs[2];
            size_t cnt = tcount(n, ctot, h, w), plane = (size_t)h * w;
            double *src[3], *ref = dalloc(cnt), *outs[NBE];
            size_t k = 0;
            for (int i = 0; i < 3; i++)
                src[i] = dalloc(tcount(n, cs[i], h, w));
            for (int img = 0; img < n; img++)
                for (int i = 0; i < 3; i++)
                    for (size_t e = 0; e < (size_t)cs[i] * plane; e++) {
                        double v = rnd(-100, 100);
                        src[i][(size_t)img * cs[i] * plane + e] = v;
                        ref[k++] = quant(ddt, quant(sdt[i], v));
                    }
            for (int b = 0; b < NBE; b++) {
                struct vf_error err = {0};
                struct tt ts[3], td;
                const struct vf_tensor *sp[3];
                for (int i = 0; i < 3; i++) {
                    tt_make(&ts[i], g_be[b], sdt[i], n, cs[i], h, w, view && i != 1);
                    tt_put(&ts[i], src[i]);
                    sp[i] = &ts[i].t;
                }
                tt_make(&td, g_be[b], ddt, n, ctot, h, w, view);
                ok(vf_op_concat(sp, 3, &td.t, &err), &err);
                outs[b] = dalloc(cnt);
                tt_get(&td, outs[b]);
                tt_check_pad(&td);
                /* copy: the middle source to a tensor of ddt, then back to its own dtype */
                struct tt c1, c2;
                tt_make(&c1, g_be[b], ddt, n, cs[1], h, w, view);
                tt_make(&c2, g_be[b], sdt[1], n, cs[1], h, w, !view);
                ok(vf_op_copy(&ts[1].t, &c1.t, &err), &err);
                ok(vf_op_copy(&c1.t, &c2.t, &err), &err);
                size_t c1n = tcount(n, cs[1], h, w);
                double *o1 = dalloc(c1n), *o2 = dalloc(c1n);
                tt_get(&c1, o1);
                tt_get(&c2, o2);
                tt_check_pad(&c1), tt_check_pad(&c2);
                for (size_t e = 0; e < c1n; e++) {
                    double sv = quant(sdt[1], src[1][e]);
                    assert_true(o1[e] == quant(ddt, sv));
                    assert_true(o2[e] == quant(sdt[1], quant(ddt, sv)));
                }
                free(o1), free(o2);
                tt_free(&c1), tt_free(&c2);
                for (int i = 0; i < 3; i++)
                    tt_free(&ts[i]);
                tt_free(&td);
            }
            char what[64];
            snprintf(what, sizeof what, "concat to %s view %d", dtn(ddt), view);
            check_same_bits(what, outs, cnt);
            for (size_t e = 0; e < cnt; e++)
                if (outs[0][e] != ref[e])
                    fail_msg("%s: element %zu is %g, expected %g", what, e, outs[0][e], ref[e]);
            for (int b = 0; b < NBE; b++)
                free(outs[b]);
            for (int i = 0; i < 3; i++)
                free(src[i]);
            free(ref);
        }
}

/* ============================== l2norm ===================================================== */

static void l2norm_matches_reference(void **state)
{
    (void)state;
    const struct shape shapes[] = {{2, 37, 27, 48}, {1, 130, 7, 12}, {2, 16, 54, 96}, {1, 3, 1, 1}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    const float eps = 1e-6f;
    for (size_t si = 0; si < 4; si++)
        for (size_t di = 0; di < 2; di++)
            for (int center = 0; center < 2; center++)
                for (int mode = 0; mode < 3; mode++) {
                    const struct shape s = shapes[si];
                    const enum vf_dtype dt = dts[di];
                    size_t cnt = tcount(s.n, s.c, s.h, s.w), plane = (size_t)s.h * s.w;
                    double *in = dalloc(cnt), *q = dalloc(cnt), *ref = dalloc(cnt), *outs[NBE];
                    for (size_t i = 0; i < cnt; i++) {
                        size_t c = (i / plane) % (size_t)s.c;
                        in[i] = rnd(-1, 1) + (center ? 0.3 * (double)(c % 5) : 0.0);
                        /* a few all-zero positions (norm 0 < eps) without centring */
                        if (!center && (i % plane) == 3)
                            in[i] = 0;
                        q[i] = quant(dt, in[i]);
                    }
                    for (int b = 0; b < NBE; b++) {
                        struct vf_error err = {0};
                        struct tt src, dst;
                        tt_make(&src, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                        tt_put(&src, in);
                        outs[b] = dalloc(cnt);
                        if (mode == 2) {
                            ok(vf_op_l2norm(&src.t, &src.t, center, eps, &err), &err);
                            tt_get(&src, outs[b]);
                        } else {
                            tt_make(&dst, g_be[b], dt, s.n, s.c, s.h, s.w, mode == 1);
                            ok(vf_op_l2norm(&src.t, &dst.t, center, eps, &err), &err);
                            tt_get(&dst, outs[b]);
                            tt_check_pad(&dst);
                            tt_free(&dst);
                        }
                        tt_check_pad(&src);
                        tt_free(&src);
                    }
                    for (int i = 0; i < s.n; i++) {
                        double *mean = dalloc((size_t)s.c);
                        const double *x = q + (size_t)i * s.c * plane;
                        if (center)
                            for (int c = 0; c < s.c; c++) {
                                for (size_t p = 0; p < plane; p++)
                                    mean[c] += x[(size_t)c * plane + p];
                                mean[c] /= (double)plane;
                            }
                        for (size_t p = 0; p < plane; p++) {
                            double ss = 0;
                            for (int c = 0; c < s.c; c++) {
                                double d = x[(size_t)c * plane + p] - mean[c];
                                ss += d * d;
                            }
                            double den = fmax(sqrt(ss), (double)eps);
                            for (int c = 0; c < s.c; c++)
                                ref[((size_t)i * s.c + c) * plane + p] =
                                    (x[(size_t)c * plane + p] - mean[c]) / den;
                        }
                        free(mean);
                    }
                    char what[128];
                    snprintf(what, sizeof what, "l2norm %s %dx%dx%dx%d center %d mode %d",
                             dtn(dt), s.n, s.c, s.h, s.w, center, mode);
                    check_same_bits(what, outs, cnt);
                    if (plane == 1 && center) { /* centred single position: all zero */
                        for (size_t e = 0; e < cnt; e++)
                            assert_true(outs[0][e] == 0.0);
                    } else {
                        check_close(what, outs[0], ref, cnt, tol_of(dt));
                    }
                    for (int b = 0; b < NBE; b++)
                        free(outs[b]);
                    free(in), free(q), free(ref);
                }
}

/* ============================== attention rows ============================================= */

static void attention_rows_match_double_loop(void **state)
{
    (void)state;
    struct acase {
        int rows, ncols, ld, vc;
        float tau;
    } cases[] = {
        {37, 53, 60, 2, 0.01f}, {37, 53, 53, 2, 1.0f}, {29, 41, 45, 19, 0.01f},
        {300, 700, 704, 2, 0.01f}, {5, 1, 1, 3, 0.01f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const struct acase a = cases[ci];
        float *f = calloc((size_t)a.rows * a.ld, sizeof *f);
        float *v = calloc((size_t)a.ncols * a.vc, sizeof *v);
        assert_non_null(f);
        assert_non_null(v);
        for (size_t i = 0; i < (size_t)a.rows * a.ld; i++)
            f[i] = (float)rnd(-1, 1); /* cosine similarities: |f| ≤ 1, so f/τ up to ±100 */
        for (size_t i = 0; i < (size_t)a.ncols * a.vc; i++)
            v[i] = (float)rnd(-100, 100);
        size_t on = (size_t)a.rows * a.vc;
        double *outs[NBE], *ss[NBE], *ref = dalloc(on), *sref = dalloc((size_t)a.rows);
        for (int b = 0; b < NBE; b++) {
            struct vf_error err = {0};
            float *out = calloc(on, sizeof *out), *s = calloc((size_t)a.rows, sizeof *s);
            assert_non_null(out);
            assert_non_null(s);
            ok(vf_op_attention_rows(g_be[b], f, a.rows, a.ncols, a.ld, a.tau, v, a.vc, s, out,
                                    &err), &err);
            outs[b] = dalloc(on);
            ss[b] = dalloc((size_t)a.rows);
            for (size_t i = 0; i < on; i++)
                outs[b][i] = out[i];
            for (int r = 0; r < a.rows; r++)
                ss[b][r] = s[r];
            free(out), free(s);
        }
        for (int r = 0; r < a.rows; r++) {
            const float *fr = f + (size_t)r * a.ld;
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < a.ncols; j++)
                m = fmax(m, fr[j]);
            sref[r] = m;
            for (int k = 0; k < a.vc; k++)
                ref[(size_t)r * a.vc + k] = 0;
            for (int j = 0; j < a.ncols; j++) {
                double e = exp((fr[j] - m) / (double)a.tau);
                sum += e;
                for (int k = 0; k < a.vc; k++)
                    ref[(size_t)r * a.vc + k] += e * v[(size_t)j * a.vc + k];
            }
            for (int k = 0; k < a.vc; k++)
                ref[(size_t)r * a.vc + k] /= sum;
        }
        char what[96];
        snprintf(what, sizeof what, "attention %d rows x %d cols, vc %d, tau %g", a.rows,
                 a.ncols, a.vc, (double)a.tau);
        check_same_bits(what, outs, on);
        check_same_bits(what, ss, (size_t)a.rows);
        for (size_t i = 0; i < on; i++)
            assert_true(isfinite(outs[0][i]));
        check_close(what, outs[0], ref, on, 1e-6);
        assert_true(max_abs(ss[0], sref, (size_t)a.rows) == 0.0);
        for (int b = 0; b < NBE; b++)
            free(outs[b]), free(ss[b]);
        free(ref), free(sref), free(f), free(v);
    }
}

/* ============================== colour references (double) ================================= */

static const double DM[3][3] = {{0.4124564, 0.3575761, 0.1804375},
                                {0.2126729, 0.7151522, 0.0721750},
                                {0.0193339, 0.1191920, 0.9503041}};
static const double DMI[3][3] = {{3.2404542, -1.5371385, -0.4985314},
                                 {-0.9692660, 1.8760108, 0.0415560},
                                 {0.0556434, -0.2040259, 1.0572252}};
static const double DWHITE[3] = {0.95047, 1.0, 1.08883};
static const double IMN_MEAN[3] = {0.485, 0.456, 0.406}, IMN_STD[3] = {0.229, 0.224, 0.225};

static double d_lin(double c) { return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4); }
static double d_gam(double c)
{
    return c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055;
}
static double d_f(double t)
{
    const double d = 6.0 / 29.0;
    return t > d * d * d ? cbrt(t) : t / (3 * d * d) + 4.0 / 29.0;
}
static double d_finv(double t)
{
    const double d = 6.0 / 29.0;
    return t > d ? t * t * t : 3 * d * d * (t - 4.0 / 29.0);
}
static double d_clamp01(double x) { return x < 0 ? 0 : (x > 1 ? 1 : x); }

static void d_rgb_to_lab(const double rgb[3], double lab[3])
{
    double l[3], xyz[3];
    for (int k = 0; k < 3; k++)
        l[k] = d_lin(rgb[k]);
    for (int r = 0; r < 3; r++)
        xyz[r] = DM[r][0] * l[0] + DM[r][1] * l[1] + DM[r][2] * l[2];
    double fx = d_f(xyz[0] / DWHITE[0]), fy = d_f(xyz[1] / DWHITE[1]), fz = d_f(xyz[2] / DWHITE[2]);
    lab[0] = 116 * fy - 16;
    lab[1] = 500 * (fx - fy);
    lab[2] = 200 * (fy - fz);
}

static void d_lab_to_rgb(const double lab[3], double rgb[3])
{
    double fy = (lab[0] + 16) / 116, fx = fy + lab[1] / 500, fz = fy - lab[2] / 200;
    double xyz[3] = {DWHITE[0] * d_finv(fx), DWHITE[1] * d_finv(fy), DWHITE[2] * d_finv(fz)};
    for (int r = 0; r < 3; r++)
        rgb[r] = d_clamp01(d_gam(DMI[r][0] * xyz[0] + DMI[r][1] * xyz[1] + DMI[r][2] * xyz[2]));
}

static double d_grey_to_l(double y) { return 116 * d_f(d_lin(y)) - 16; }

static double d_luma(const double c[3], double kr, double kb)
{
    return kr * c[0] + (1 - kr - kb) * c[1] + kb * c[2];
}

/* ============================== warp refinement ============================================ */

/* The tensors of one refinement on a backend: the frame's grey, the reference's luma and a, b,
 * the cells' positions and the output; with cl (not NULL) also the temporal candidates' frame L,
 * frame t−1's L and a, b (ta points at them, radius and h to set). Uploaded from the arrays. */
struct refine_fx {
    struct vf_tensor g, ry, ab, pos, dst, l, prev_l, prev_ab;
    struct vf_refine_temporal_args ta;
    struct vf_tensor *alloced[8];   /* what refine_fx_init allocated, for refine_fx_free */
    int n_alloced;
};

static void refine_fx_init(struct refine_fx *f, struct vf_backend *be, int H, int W,
                           const float *g, const float *ry, const float *ab, const float *pos,
                           const float *cl, const float *pl, const float *pab)
{
    struct vf_error err = {0};
    memset(f, 0, sizeof *f);
    struct { struct vf_tensor *t; int c, h, w; const float *src; } ts[8] = {
        {&f->g, 1, H, W, g},           {&f->ry, 1, H, W, ry},        {&f->ab, 2, H, W, ab},
        {&f->pos, 2, H / 4, W / 4, pos}, {&f->dst, 2, H, W, NULL},   {&f->l, 1, H, W, cl},
        {&f->prev_l, 1, H, W, pl},     {&f->prev_ab, 2, H, W, pab}};
    for (int i = 0; i < (cl != NULL ? 8 : 5); i++) {   /* the last 3: temporal candidates */
        ok(vf_tensor_alloc(ts[i].t, be, VF_F32, 1, ts[i].c, ts[i].h, ts[i].w, &err), &err);
        f->alloced[f->n_alloced++] = ts[i].t;
        if (ts[i].src)
            ok(vf_tensor_upload(ts[i].t, ts[i].src, &err), &err);
    }
    f->ta = (struct vf_refine_temporal_args){.l = &f->l, .prev_l = &f->prev_l, .prev_ab = &f->prev_ab};
}

static void refine_fx_free(struct refine_fx *f)
{
    for (int i = 0; i < f->n_alloced; i++)
        vf_tensor_free(f->alloced[i]);
}

/* vf_op_warp_refine of the fixture (h 0.005; tp NULL: no temporal candidates) into out. */
static void refine_fx_run(struct refine_fx *f, int radius, int patch,
                          const struct vf_refine_temporal_args *tp, float *out)
{
    struct vf_error err = {0};
    ok(vf_op_warp_refine(&f->g, &f->ry, &f->ab, &f->pos, radius, patch, 0.005f, tp, &f->dst, &err),
       &err);
    ok(vf_tensor_download(&f->dst, out, &err), &err);
}

/* One refinement on backend 0 (1 thread) of a 32×48 frame: positions pos0 + off (cells). */
static void refine_once(const float *g, const float *ry, const float *ab, const float *pos0,
                        float oy, float ox, int H, int W, float *out)
{
    const int h4 = H / 4, w4 = W / 4;
    const size_t n4 = (size_t)h4 * w4;
    float *pos = malloc(2 * n4 * sizeof *pos);
    assert_non_null(pos);
    for (size_t i = 0; i < n4; i++) {
        pos[i] = pos0[i] + oy;
        pos[n4 + i] = pos0[n4 + i] + ox;
    }
    struct refine_fx f;
    refine_fx_init(&f, g_be[0], H, W, g, ry, ab, pos, NULL, NULL, NULL);
    refine_fx_run(&f, 4, 5, NULL, out);
    refine_fx_free(&f);
    free(pos);
}

/* The refined warp moves continuously with the expected positions: positions that straddle an
 * integer by 1e-4 px (where a window centred on floor() or round() of the position would jump
 * by a whole pixel) give outputs within 0.05 of each other (a, b span ±50); half way between
 * two centres the output is the mean of theirs; and the two centres do differ. The frame's luma
 * is unrelated to the reference's, so every candidate's cost matters. */
static void warp_refine_is_continuous(void **state)
{
    (void)state;
    const int H = 32, W = 48, h4 = H / 4, w4 = W / 4;
    const size_t P = (size_t)H * W, n4 = (size_t)h4 * w4;
    float *ry = malloc(P * sizeof *ry), *g = malloc(P * sizeof *g), *ab = malloc(2 * P * sizeof *ab);
    float *pos = malloc(2 * n4 * sizeof *pos), *o[5];
    assert_true(ry && g && ab && pos);
    tu_lcg_seed(11);
    for (size_t i = 0; i < P; i++) {
        ry[i] = (float)urand();
        g[i] = (float)urand();
        ab[i] = (float)rnd(-50.0, 50.0);
        ab[P + i] = (float)rnd(-50.0, 50.0);
    }
    for (size_t i = 0; i < 2 * n4; i++)
        pos[i] = (float)(int)rnd(0.0, 40.0);
    const float offs[5][2] = {{-1e-4f, -1e-4f}, {1e-4f, 1e-4f}, {0, 0}, {0.5f, 0}, {1.0f, 0}};
    for (int k = 0; k < 5; k++) {
        o[k] = malloc(2 * P * sizeof(float));
        assert_non_null(o[k]);
        refine_once(g, ry, ab, pos, offs[k][0], offs[k][1], H, W, o[k]);
    }
    double jump = 0, mid = 0, apart = 0;
    for (size_t i = 0; i < 2 * P; i++) {
        jump = fmax(jump, fabs((double)o[0][i] - o[1][i]));
        mid = fmax(mid, fabs((double)o[3][i] - 0.5 * ((double)o[2][i] + o[4][i])));
        apart = fmax(apart, fabs((double)o[2][i] - o[4][i]));
    }
    printf("warp refine: straddling an integer moves it by %.2g at most; half way off the mean by "
           "%.2g; the two centres differ by up to %.3g\n", jump, mid, apart);
    assert_true(jump < 0.05 && mid < 1e-3 && apart > 1.0);
    for (int k = 0; k < 5; k++)
        free(o[k]);
    free(ry);
    free(g);
    free(ab);
    free(pos);
}

/* A frame that is the reference moved by (2, −3) pixels, and cell positions that do not know
 * it (each cell on itself): the refinement must find, for every pixel away from the borders,
 * the reference pixel it came from, and carry that pixel's a, b; identical bits with 1, 2 and
 * 3 threads; bad arguments are refused with the argument named. */
static void warp_refine_recovers_a_shift(void **state)
{
    (void)state;
    const int H = 32, W = 48, h4 = H / 4, w4 = W / 4, R = 4, PATCH = 5, DY = 2, DX = -3;
    const size_t P = (size_t)H * W;
    float *ry = calloc(P, sizeof *ry), *g = calloc(P, sizeof *g), *ab = calloc(2 * P, sizeof *ab);
    float *pos = calloc(2 * (size_t)h4 * w4, sizeof *pos), *outs[NBE];
    assert_true(ry && g && ab && pos);
    tu_lcg_seed(7);
    for (size_t i = 0; i < P; i++) {
        ry[i] = (float)urand();
        ab[i] = (float)rnd(-50.0, 50.0);
        ab[P + i] = (float)rnd(-50.0, 50.0);
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int sy = y + DY < 0 ? 0 : (y + DY >= H ? H - 1 : y + DY);
            int sx = x + DX < 0 ? 0 : (x + DX >= W ? W - 1 : x + DX);
            g[y * W + x] = ry[sy * W + sx];
        }
    for (int y = 0; y < h4; y++)
        for (int x = 0; x < w4; x++) {
            pos[y * w4 + x] = 4.0f * (float)y;
            pos[(size_t)h4 * w4 + y * w4 + x] = 4.0f * (float)x;
        }
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct refine_fx f;
        struct vf_tensor bad;
        refine_fx_init(&f, g_be[b], H, W, g, ry, ab, pos, NULL, NULL, NULL);
        ok(vf_tensor_alloc(&bad, g_be[b], VF_F32, 1, 2, h4 + 1, w4, &err), &err);
        outs[b] = calloc(2 * P, sizeof(float));
        assert_non_null(outs[b]);
        refine_fx_run(&f, R, PATCH, NULL, outs[b]);
        /* refused: an even patch, a radius over the limit, positions of the wrong size */
        assert_int_equal(vf_op_warp_refine(&f.g, &f.ry, &f.ab, &f.pos, R, 4, 0.005f, NULL, &f.dst,
                                           &err), VF_EINVAL);
        assert_non_null(strstr(err.msg, "patch odd"));
        assert_int_equal(vf_op_warp_refine(&f.g, &f.ry, &f.ab, &f.pos, VF_REFINE_MAX_RADIUS + 1,
                                           PATCH, 0.005f, NULL, &f.dst, &err), VF_EINVAL);
        assert_int_equal(vf_op_warp_refine(&f.g, &f.ry, &f.ab, &bad, R, PATCH, 0.005f, NULL,
                                           &f.dst, &err), VF_EINVAL);
        assert_non_null(strstr(err.msg, "pos"));
        refine_fx_free(&f);
        vf_tensor_free(&bad);
    }
    const int m = R + PATCH / 2 + 1;   /* no clamped coordinate in any window */
    double worst = 0;
    int checked = 0;
    for (int y = m; y < H - m; y++)
        for (int x = m; x < W - m; x++)
            for (int ch = 0; ch < 2; ch++) {
                double d = fabs((double)outs[0][ch * P + (size_t)y * W + x] -
                                (double)ab[ch * P + (size_t)(y + DY) * W + (x + DX)]);
                worst = d > worst ? d : worst;
                checked++;
            }
    printf("warp refine: %d values away from the borders, worst |ab − shifted reference| %.2g\n",
           checked, worst);
    assert_true(checked > 500 && worst < 1e-3);
    for (int b = 1; b < NBE; b++)
        if (memcmp(outs[0], outs[b], 2 * P * sizeof(float)))
            fail_msg("warp refine: %d threads and 1 thread differ", g_threads[b]);
    for (int b = 0; b < NBE; b++)
        free(outs[b]);
    free(ry);
    free(g);
    free(ab);
    free(pos);
}

/* The host arrays of a temporal refinement case (refine_temporal_case, warp_refine_subpixel), a
 * 32×48 frame: the grey, the reference's luma and its a, b random, whole-cell positions random;
 * frame t's L (cl), frame t−1's L and a, b (pl, pab) for the case to fill; the zero state's
 * lightness (none); and per backend the output (outs). */
enum { TC_H = 32, TC_W = 48, TC_P = TC_H * TC_W };
struct tcase {
    float *ry, *g, *ab, *cl, *pl, *pab, *none, *pos, *outs[NBE];
};

static float *falloc(size_t n)
{
    float *p = calloc(n, sizeof *p);
    assert_non_null(p);
    return p;
}

static void tcase_init(struct tcase *c, uint64_t seed)
{
    const size_t n4 = (size_t)(TC_H / 4) * (TC_W / 4);
    c->ry = falloc(TC_P), c->g = falloc(TC_P), c->ab = falloc(2 * TC_P), c->cl = falloc(TC_P);
    c->pl = falloc(TC_P), c->pab = falloc(2 * TC_P), c->none = falloc(TC_P), c->pos = falloc(2 * n4);
    for (int b = 0; b < NBE; b++)
        c->outs[b] = falloc(2 * TC_P);
    tu_lcg_seed(seed);
    for (size_t i = 0; i < TC_P; i++) {
        c->ry[i] = (float)urand();
        c->g[i] = (float)urand();
        c->ab[i] = (float)rnd(-50.0, 50.0);
        c->ab[TC_P + i] = (float)rnd(-50.0, 50.0);
        c->none[i] = VF_REFINE_NO_PREV;
    }
    for (size_t i = 0; i < 2 * n4; i++)
        c->pos[i] = (float)(int)rnd(0.0, 28.0);
}

/* Every backend's output must equal 1 thread's bit for bit; then everything is freed. */
static void tcase_same_bits_and_free(struct tcase *c, const char *what)
{
    for (int b = 1; b < NBE; b++)
        if (memcmp(c->outs[0], c->outs[b], 2 * TC_P * sizeof(float)))
            fail_msg("warp refine, %s: %d threads and 1 thread differ", what, g_threads[b]);
    float *all[] = {c->ry, c->g, c->ab, c->cl, c->pl, c->pab, c->none, c->pos};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    for (int b = 0; b < NBE; b++)
        free(c->outs[b]);
}

/* Frame t−1's lightness and a, b random, and the frame's lightness frame t−1's moved by (dy, dx)
 * pixels (clamped at the borders): cl(y, x) = pl(y + dy, x + dx). */
static void tcase_moved(struct tcase *c, int dy, int dx)
{
    const int H = TC_H, W = TC_W;
    const size_t P = TC_P;
    for (size_t i = 0; i < P; i++) {
        c->pl[i] = (float)rnd(0.0, 100.0);
        c->pab[i] = (float)rnd(-50.0, 50.0);
        c->pab[P + i] = (float)rnd(-50.0, 50.0);
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int sy = vf_imin(vf_imax(y + dy, 0), H - 1), sx = vf_imin(vf_imax(x + dx, 0), W - 1);
            c->cl[y * W + x] = c->pl[sy * W + sx];
        }
}

/* vf_op_warp_refine of the fixture with its temporal arguments f->ta must be refused (VF_EINVAL)
 * with a message that names want. */
static void refine_refused(struct refine_fx *f, const char *want)
{
    struct vf_error err = {0};
    assert_int_equal(vf_op_warp_refine(&f->g, &f->ry, &f->ab, &f->pos, 4, 5, 0.005f, &f->ta,
                                       &f->dst, &err), VF_EINVAL);
    if (!strstr(err.msg, want))
        fail_msg("warp refine refused with \"%s\", not naming \"%s\"", err.msg, want);
}

/* Away from the borders (m pixels), how far out (2 planes, H × W) is from frame t−1's a, b pab
 * moved by (dy, dx) (worst) and from plain (moved); counts the values (checked). */
static void refine_moved(const float *out, const float *plain, const float *pab, int m, int dy,
                         int dx, double *worst, double *moved, int *checked)
{
    const int H = TC_H, W = TC_W;
    const size_t P = TC_P;
    for (int y = m; y < H - m; y++)
        for (int x = m; x < W - m; x++)
            for (int ch = 0; ch < 2; ch++) {
                const size_t i = ch * P + (size_t)y * W + x;
                *worst = fmax(*worst, fabs((double)out[i] - pab[ch * P + (size_t)(y + dy) * W + (x + dx)]));
                *moved = fmax(*moved, fabs((double)out[i] - plain[i]));
                (*checked)++;
            }
}

/* The temporal candidates (docs/NETWORK.md, "A", refine, temporal) at radius TR. The frame's
 * lightness is X̂(t−1)'s moved by (DY, DX) pixels and its grey has nothing to do with the
 * reference's luma: away from the borders the refinement must carry X̂(t−1)'s a, b from where
 * each pixel came from (radius TR reaches it). With prev_l at VF_REFINE_NO_PREV (a reset: the
 * zero state) the output is the one without candidates, bit for bit. 1, 2 and 3 threads give
 * the same bits; a temporal radius over the limit and a prev_ab of another size are refused. */
static void refine_temporal_case(const int TR, const int DY, const int DX)
{
    const int H = TC_H, W = TC_W;
    const size_t P = TC_P;
    struct tcase c;
    tcase_init(&c, 13);
    float *plain = falloc(2 * P), *reset = falloc(2 * P);
    tcase_moved(&c, DY, DX);
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct refine_fx f;
        struct vf_tensor bad;
        refine_fx_init(&f, g_be[b], H, W, c.g, c.ry, c.ab, c.pos, c.cl, c.pl, c.pab);
        ok(vf_tensor_alloc(&bad, g_be[b], VF_F32, 1, 2, H, W + 4, &err), &err);
        f.ta.radius = TR;
        f.ta.h = 0.0025f;
        refine_fx_run(&f, 4, 5, &f.ta, c.outs[b]);
        if (b == 0) {
            refine_fx_run(&f, 4, 5, NULL, plain);
            ok(vf_tensor_upload(&f.prev_l, c.none, &err), &err);
            refine_fx_run(&f, 4, 5, &f.ta, reset);
        }
        f.ta.radius = VF_REFINE_MAX_TEMPORAL + 1;
        refine_refused(&f, "temporal radius");
        f.ta.radius = TR;
        f.ta.prev_ab = &bad;
        refine_refused(&f, "prev_ab");
        refine_fx_free(&f);
        vf_tensor_free(&bad);
    }
    double worst = 0, moved = 0;
    int checked = 0;
    /* no clamped coordinate in any window (patch 5) */
    refine_moved(c.outs[0], plain, c.pab, TR + 2 + 1, DY, DX, &worst, &moved, &checked);
    printf("warp refine, temporal radius %d, moved (%d, %d): %d values away from the borders, "
           "worst |ab − moved X(t-1)| %.2g (without the candidates up to %.3g away)\n", TR, DY, DX,
           checked, worst, moved);
    assert_true(checked > 500 && worst < 1e-3 && moved > 10);
    assert_memory_equal(reset, plain, 2 * P * sizeof(float));
    tcase_same_bits_and_free(&c, "temporal");
    free(plain);
    free(reset);
}

static void warp_refine_temporal(void **state)
{
    (void)state;
    refine_temporal_case(2, 1, -2);
    refine_temporal_case(3, -3, 2);
    /* the most the kernels take (the bundled model's, since session 15); a move only it reaches */
    refine_temporal_case(VF_REFINE_MAX_TEMPORAL, -VF_REFINE_MAX_TEMPORAL, VF_REFINE_MAX_TEMPORAL);
}

/* The motion-predicted temporal candidates (docs/NETWORK.md, "A", refine, predict; elem.h
 * vf_refine_predicted) at temporal radius 2, predicted radius 2. The frame's lightness is
 * frame t−1's moved by (1, 5), beyond the temporal window: with frame t−1's motion (0, 4) the
 * predicted window holds the move, and away from the borders the refinement carries frame
 * t−1's a, b from where each pixel came from and writes the move as the pixel's motion; with
 * predict 0 it cannot (the output differs by over 10); with a motion of 0 every predicted
 * candidate lies in the temporal window, and the output is predict 0's bit for bit; from the
 * zero state (prev_l VF_REFINE_NO_PREV) the motion written is 0. 1, 2 and 3 threads give the
 * same bits (output and motion); a predicted radius over the limit, a motion of another size
 * and a motion_out that is the motion or the output are refused. */
static void warp_refine_predict(void **state)
{
    (void)state;
    enum { TR = 2, PR = 2, DY = 1, DX = 5 };
    const int H = TC_H, W = TC_W;
    const size_t P = TC_P;
    struct tcase c;
    tcase_init(&c, 17);
    float *plain = falloc(2 * P), *zero_m = falloc(2 * P), *guess = falloc(2 * P);
    float *mout[NBE], *mzero = falloc(2 * P), *mreset = falloc(2 * P), *tmp = falloc(2 * P);
    tcase_moved(&c, DY, DX);
    for (size_t i = 0; i < P; i++) {
        guess[i] = 0.0f;            /* frame t−1's motion: (0, 4) */
        guess[P + i] = 4.0f;
    }
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct refine_fx f;
        struct vf_tensor m, mo, bad;
        mout[b] = falloc(2 * P);
        refine_fx_init(&f, g_be[b], H, W, c.g, c.ry, c.ab, c.pos, c.cl, c.pl, c.pab);
        ok(vf_tensor_alloc(&m, g_be[b], VF_F32, 1, 2, H, W, &err), &err);
        ok(vf_tensor_alloc(&mo, g_be[b], VF_F32, 1, 2, H, W, &err), &err);
        ok(vf_tensor_alloc(&bad, g_be[b], VF_F32, 1, 2, H, W + 4, &err), &err);
        ok(vf_tensor_upload(&m, guess, &err), &err);
        f.ta.radius = TR;
        f.ta.h = 0.0025f;
        f.ta.predict = PR;
        f.ta.motion = &m;
        f.ta.motion_out = &mo;
        refine_fx_run(&f, 4, 5, &f.ta, c.outs[b]);
        ok(vf_tensor_download(&mo, mout[b], &err), &err);
        if (b == 0) {
            f.ta.predict = 0;
            refine_fx_run(&f, 4, 5, &f.ta, plain);
            f.ta.predict = PR;
            ok(vf_tensor_zero(&m, &err), &err);
            refine_fx_run(&f, 4, 5, &f.ta, zero_m);
            ok(vf_tensor_download(&mo, mzero, &err), &err);
            ok(vf_tensor_upload(&f.prev_l, c.none, &err), &err);
            ok(vf_tensor_upload(&m, guess, &err), &err);
            refine_fx_run(&f, 4, 5, &f.ta, tmp);
            ok(vf_tensor_download(&mo, mreset, &err), &err);
        }
        f.ta.predict = VF_REFINE_MAX_PREDICT + 1;
        refine_refused(&f, "motion-predicted radius");
        f.ta.predict = PR;
        f.ta.motion = &bad;
        refine_refused(&f, "motion or motion_out");
        f.ta.motion = &mo;
        refine_refused(&f, "same memory as motion");
        f.ta.motion = &m;
        f.ta.motion_out = &f.dst;
        refine_refused(&f, "same memory as an input or dst");
        refine_fx_free(&f);
        vf_tensor_free(&m);
        vf_tensor_free(&mo);
        vf_tensor_free(&bad);
    }
    const int m = DX + 2 + 1;   /* no clamped coordinate in any window (patch 5) */
    double worst = 0, moved = 0;
    int checked = 0, found = 0;
    refine_moved(c.outs[0], plain, c.pab, m, DY, DX, &worst, &moved, &checked);
    for (int y = m; y < H - m; y++)
        for (int x = m; x < W - m; x++) {
            const size_t o = (size_t)y * W + x;
            found += mout[0][o] == (float)DY && mout[0][P + o] == (float)DX;   /* planar */
        }
    printf("warp refine, motion-predicted radius %d around (0, 4), moved (%d, %d): %d values away "
           "from the borders, worst |ab − moved X(t-1)| %.2g (without them up to %.3g away); "
           "motion found at %d of %d pixels\n", PR, DY, DX, checked, worst, moved, found, checked / 2);
    assert_true(checked > 300 && worst < 1e-3 && moved > 10 && found == checked / 2);
    assert_memory_equal(zero_m, plain, 2 * P * sizeof(float));
    for (size_t i = 0; i < 2 * P; i++) {
        assert_true(mreset[i] == 0.0f);
        assert_true(fabsf(mzero[i]) <= (float)TR);
    }
    for (int b = 1; b < NBE; b++)
        if (memcmp(mout[0], mout[b], 2 * P * sizeof(float)))
            fail_msg("warp refine, predict: %d threads and 1 thread write other motions", g_threads[b]);
    tcase_same_bits_and_free(&c, "predict");
    for (int b = 0; b < NBE; b++)
        free(mout[b]);
    free(plain);
    free(zero_m);
    free(guess);
    free(mzero);
    free(mreset);
    free(tmp);
}

/* vf_op_warp_refine (which runs 16 pixels of a row at a time, kernels/ops.c refine_lanes, and
 * the rest of the row one by one) against vf_refine_px called pixel by pixel, its definition:
 * the output and the motion written must be the same bits, on 1, 2 and 3 threads. Rows of 72
 * and 40 pixels (whole blocks and a rest); random luma with NaN at a few pixels of the frame
 * (every cost of a pixel NaN) and of the reference and frame t−1 (some costs NaN); positions that
 * put candidates outside the image; frame t−1's lightness the frame's moved and noisy, with
 * "no frame t−1" pixels (VF_REFINE_NO_PREV); motions random per pixel, the same over whole
 * rows, or NaN; h small (most weights underflow to 0) and large (none do); radii and patches
 * from the least to the kernels' limits, without temporal candidates, with them, with the
 * sub-pixel and motion-predicted ones. */
struct lanes_cfg { int radius, patch, tr, predict, subpixel; float h, ht; };

static void refine_lanes_case(int H, int W, const struct lanes_cfg *k, uint64_t seed)
{
    const int h4 = H / 4, w4 = W / 4;
    const size_t P = (size_t)H * W, n4 = (size_t)h4 * w4;
    float *g = falloc(P), *ry = falloc(P), *ab = falloc(2 * P), *pos = falloc(2 * n4);
    float *cl = falloc(P), *pl = falloc(P), *pab = falloc(2 * P), *mot = falloc(2 * P);
    float *abi = falloc(2 * P), *pabi = falloc(2 * P), *moti = falloc(2 * P);
    float *want = falloc(2 * P), *mwant = falloc(2 * P), *got = falloc(2 * P), *mgot = falloc(2 * P);
    tu_lcg_seed(seed);
    for (size_t i = 0; i < P; i++) {
        g[i] = (float)urand();
        ry[i] = (float)urand();
        cl[i] = (float)rnd(0.0, 100.0);
        for (int ch = 0; ch < 2; ch++) {
            ab[ch * P + i] = abi[2 * i + ch] = (float)rnd(-60.0, 60.0);
            pab[ch * P + i] = pabi[2 * i + ch] = (float)rnd(-60.0, 60.0);
        }
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int sy = vf_clampi(y - 1, 0, H - 1), sx = vf_clampi(x + 2, 0, W - 1);
            pl[y * W + x] = cl[sy * W + sx] + (float)rnd(-0.5, 0.5);
            if (urand() < 0.03)
                pl[y * W + x] = VF_REFINE_NO_PREV;
            for (int ch = 0; ch < 2; ch++) {
                const float v = y % 3 == 0 ? (float)(ch ? 2 - x % 5 : 1)   /* regular */
                                           : (float)(int)rnd(-6.0, 7.0);
                mot[ch * P + y * W + x] = moti[(y * W + x) * 2 + ch] =
                    y % 7 == 5 && x % 3 == 0 ? NAN : v;
            }
        }
    for (int i = 0; i < 9; i++) {   /* NaN costs: all of a pixel's (g), or only some (ry, cl, pl) */
        g[(size_t)(urand() * (double)P)] = NAN;
        ry[(size_t)(urand() * (double)P)] = NAN;
        cl[(size_t)(urand() * (double)P)] = NAN;
        pl[(size_t)(urand() * (double)P)] = NAN;
    }
    for (size_t i = 0; i < n4; i++) {          /* up to 8 px beyond every border */
        pos[i] = (float)rnd(-8.0, H + 4.0);
        pos[n4 + i] = (float)rnd(-8.0, W + 4.0);
    }
    const bool temporal = k->tr > 0;
    const float inv_h2 = 1.0f / (k->h * k->h);
    const struct vf_refine_prev prev = {
        .l = cl, .prev_l = pl, .prev_ab = pabi, .radius = k->tr,
        .scale = temporal ? (k->h / k->ht) * (k->h / k->ht) : 0.0f, .subpixel = k->subpixel,
        .predict = k->predict, .motion = moti, .motion_out = mwant};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t c = (size_t)(y / 4) * w4 + x / 4, o = ((size_t)y * W + x) * 2;
            vf_refine_px(g, ry, abi, H, W, y, x, pos[c], pos[n4 + c], k->radius, k->patch, inv_h2,
                         temporal ? &prev : NULL, &want[o], &want[o + 1]);
        }
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct refine_fx f;
        struct vf_tensor m, mo;
        refine_fx_init(&f, g_be[b], H, W, g, ry, ab, pos, cl, pl, pab);
        ok(vf_tensor_alloc(&m, g_be[b], VF_F32, 1, 2, H, W, &err), &err);
        ok(vf_tensor_alloc(&mo, g_be[b], VF_F32, 1, 2, H, W, &err), &err);
        ok(vf_tensor_upload(&m, mot, &err), &err);
        ok(vf_tensor_zero(&mo, &err), &err);
        f.ta.radius = k->tr;
        f.ta.h = k->ht;
        f.ta.subpixel = k->subpixel;
        f.ta.predict = k->predict;
        f.ta.motion = &m;
        f.ta.motion_out = &mo;
        ok(vf_op_warp_refine(&f.g, &f.ry, &f.ab, &f.pos, k->radius, k->patch, k->h,
                             temporal ? &f.ta : NULL, &f.dst, &err), &err);
        ok(vf_tensor_download(&f.dst, got, &err), &err);
        ok(vf_tensor_download(&mo, mgot, &err), &err);
        for (size_t i = 0; i < P; i++)
            for (int ch = 0; ch < 2; ch++) {
                const float w = want[2 * i + ch], v = got[ch * P + i];
                if (memcmp(&w, &v, sizeof w))
                    fail_msg("warp refine %dx%d, radius %d patch %d temporal %d predict %d "
                             "subpixel %d h %g, %d threads: pixel (%d, %d) ch %d is %.9g, "
                             "vf_refine_px gives %.9g", H, W, k->radius, k->patch, k->tr,
                             k->predict, k->subpixel, (double)k->h, g_threads[b],
                             (int)(i / W), (int)(i % W), ch, (double)v, (double)w);
                if (temporal && k->predict && mgot[ch * P + i] != mwant[2 * i + ch])
                    fail_msg("warp refine %dx%d, predict %d, %d threads: pixel (%d, %d)'s "
                             "motion %g, vf_refine_px writes %g", H, W, k->predict,
                             g_threads[b], (int)(i / W), (int)(i % W),
                             (double)mgot[ch * P + i], (double)mwant[2 * i + ch]);
            }
        refine_fx_free(&f);
        vf_tensor_free(&m);
        vf_tensor_free(&mo);
    }
    float *all[] = {g, ry, ab, pos, cl, pl, pab, mot, abi, pabi, moti, want, mwant, got, mgot};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
}

/* The lane paths this CPU runs (kernels/internal.h vf_lanes_cap_: AVX-512F, AVX2), widest
 * first, then the scalar path (0); returns how many. vf_lanes_cap_(bits[i]) selects one. */
static int lane_paths(int bits[3])
{
    int n = 0;
    const struct vf_lanes *seen = NULL;
    for (int cap = 512; cap >= 256; cap /= 2) {
        vf_lanes_cap_(cap);
        const struct vf_lanes *vl = vf_lanes_();
        if (vl && vl != seen)
            bits[n++] = cap;
        seen = vl;
    }
    vf_lanes_cap_(512);
    bits[n++] = 0;
    return n;
}

/* The name of the path vf_lanes_cap_(bits) selects; *expf (may be NULL): whether its lanes
 * compute expf (else libm's). */
static const char *lane_path_name(int bits, bool *expf)
{
    vf_lanes_cap_(bits);
    const struct vf_lanes *vl = vf_lanes_();
    vf_lanes_cap_(512);
    if (expf)
        *expf = vl && vl->expf;
    return vl ? vl->isa : "scalar";
}

static void warp_refine_lanes_match_px(void **state)
{
    (void)state;
    const struct lanes_cfg cfgs[] = {
        {4, 5, 5, 3, 1, 0.005f, 0.0025f},      /* the bundled model's */
        {4, 5, 5, 3, 1, 0.5f, 0.25f},          /* no weight underflows */
        {4, 5, 0, 0, 0, 0.005f, 0.0f},         /* no temporal candidates */
        {1, 1, 1, 0, 0, 0.02f, 0.01f},
        {2, 3, 2, 2, 0, 0.01f, 0.005f},
        {3, 5, 3, 0, 1, 0.005f, 0.0025f},
        {VF_REFINE_MAX_RADIUS, VF_REFINE_MAX_PATCH, VF_REFINE_MAX_TEMPORAL, VF_REFINE_MAX_PREDICT,
         1, 0.05f, 0.02f}};
    /* the weights' expf by each of the lanes this CPU runs (kernels/lanes_impl.h), and by libm
     * alone */
    int bits[3];
    const int paths = lane_paths(bits);
    bool libm_done = false;
    for (int path = 0; path < paths; path++) {
        bool vector;
        const char *name = lane_path_name(bits[path], &vector);
        if (!vector && libm_done)
            continue;                   /* libm's expf again (the AVX2 path has no expf) */
        libm_done |= !vector;
        vf_lanes_cap_(bits[path]);
        for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
            refine_lanes_case(28, 72, &cfgs[i], 100 + i);
            refine_lanes_case(24, 40, &cfgs[i], 200 + i);
        }
        vf_lanes_cap_(512);
        printf("warp refine (expf: %s): %zu settings on 28x72 and 24x40, 1, 2 and 3 threads: "
               "vf_refine_px's bits\n", vector ? name : "libm's", sizeof cfgs / sizeof *cfgs);
    }
}

/* The cheapest of n temporal costs by its definition, the first on ties (model.py
 * temporal_best): one chain of compares, which keeps index 0 where tcost[0] is NaN. */
static int best_chain(const float *tcost, int n)
{
    int best = 0;
    for (int k = 1; k < n; k++)
        best = tcost[k] < tcost[best] ? k : best;
    return best;
}

/* The refinement's minimum and cheapest index as vf_refine_px takes them (kernels/elem.h
 * vf_min_run: four running minima; vf_refine_best: a scan for the minimum) against their
 * definitions, one chain of compares (best_chain, and the loop written out here), bit for
 * bit: every length from 1 to the most candidates a pixel has (171: temporal radius 5, predict
 * 3), costs drawn from a few values (ties everywhere), +∞ and NaN among them, NaN first
 * (best_chain then keeps index 0); starting minima that tie with or lie between the costs;
 * and the minimum taken in rows of 1 to 5, each row's vf_min_run starting from the last, as
 * vf_refine_window takes a window's. */
static void refine_min_and_best_match_chains(void **state)
{
    (void)state;
    enum { N = 171 };
    float c[N];
    const float vals[] = {0.0f, 0.25f, 0.5f, 3.0f, 1.0e30f, INFINITY, NAN};
    const float starts[] = {INFINITY, 0.25f, 0.4f, 3.0f};
    tu_lcg_seed(41);
    int cases = 0, below = 0;
    for (int n = 1; n <= N; n++)
        for (int rep = 0; rep < 16; rep++) {
            const int nv = rep < 4 ? 5 : 7;      /* no NaN or +∞ in the first four */
            for (int k = 0; k < n; k++)
                c[k] = vals[(int)rnd(0.0, (double)nv - 1e-9)];
            if (rep % 8 == 7)
                c[0] = NAN;
            const float start = starts[rep % 4];
            if (rep >= 8 && rep % 4 != 0)        /* nothing under the start: it wins or ties */
                for (int k = 0; k < n; k++)
                    c[k] = c[k] < start ? vals[3] : c[k];
            float m = start;
            for (int k = 0; k < n; k++)
                m = c[k] < m ? c[k] : m;
            below += m < start;
            const float got = vf_min_run(c, n, start);
            assert_memory_equal(&got, &m, sizeof m);
            const int row = 1 + rep % 5;
            float chained = start;
            for (int k = 0; k < n; k += row)
                chained = vf_min_run(c + k, n - k < row ? n - k : row, chained);
            assert_memory_equal(&chained, &m, sizeof m);
            if (start == INFINITY)
                assert_int_equal(vf_refine_best(c, n, got), best_chain(c, n));
            cases++;
        }
    assert_int_equal(cases, N * 16);
    assert_true(below > N * 4 && cases - below > N * 4);   /* starts that lose, and win */
}

/* vf_refine_subpixel (kernels/elem.h) against the same definition in double precision
 * (docs/NETWORK.md, "A", refine, sub-pixel; model.py temporal_subpixel, which
 * train/test_reference.py checks the same way): random lightness, random costs with their
 * minimum planted at every displacement in turn, pixels inside, at the borders and at the
 * corners; a tie (equal costs: the first, rows outer) and a flat frame t−1 (no gradient: o = 0). */
static void subpixel_matches_double(void **state)
{
    (void)state;
    enum { H = 12, W = 16, TR = 2, T = 2 * TR + 1 };
    float cl[H * W], pl[H * W], pab[H * W * 2], flat[H * W], tcost[T * T];
    tu_lcg_seed(29);
    for (int i = 0; i < H * W; i++) {
        cl[i] = (float)rnd(-50.0, 50.0);
        pl[i] = (float)rnd(-50.0, 50.0);
        flat[i] = 7.0f;
        pab[2 * i] = (float)rnd(-80.0, 80.0);
        pab[2 * i + 1] = (float)rnd(-80.0, 80.0);
    }
    const int px[][2] = {{5, 7}, {0, 0}, {H - 1, W - 1}, {0, 9}, {6, W - 1}, {2, 1}};
    double worst = 0;
    int cases = 0;
    for (int c = 0; c < 6; c++)
        for (int best = 0; best <= T * T; best++) {   /* T·T: every cost equal (a tie) */
            const int y = px[c][0], x = px[c][1];
            for (int k = 0; k < T * T; k++)
                tcost[k] = best == T * T ? 1.0f : (float)rnd(1.0, 2.0);
            if (best < T * T)
                tcost[best] = 0.5f;
            const float *prev = best % 7 == 3 ? flat : pl;
            float sc, sa, sb;
            const int kb = best == T * T ? 0 : best;
            assert_int_equal(best_chain(tcost, T * T), kb);
            assert_int_equal(vf_refine_best(tcost, T * T, vf_min_run(tcost, T * T, INFINITY)), kb);
            int dy, dx;
            vf_refine_disp(kb, TR, 0, 0, 0, &dy, &dx);
            assert_true(dy == kb / T - TR && dx == kb % T - TR);
            vf_refine_subpixel(dy, dx, tcost[kb], cl, prev, pab, H, W, y, x, 5, &sc, &sa, &sb);
            /* the definition, in double */
            const int sy = vf_imin(vf_imax(y + kb / T - TR, 0), H - 1);
            const int sx = vf_imin(vf_imax(x + kb % T - TR, 0), W - 1);
            double g[2][2] = {{0, 0}, {0, 0}}, bv[2] = {0, 0};
#define CL(a, n) ((a) < 0 ? 0 : (a) > (n) - 1 ? (n) - 1 : (a))
            for (int u = -2; u <= 2; u++)
                for (int v = -2; v <= 2; v++) {
                    const int qy = CL(sy + u, H), qx = CL(sx + v, W);
                    const double gr[2] = {0.5 * ((double)prev[CL(qy + 1, H) * W + qx] -
                                                 prev[CL(qy - 1, H) * W + qx]),
                                          0.5 * ((double)prev[qy * W + CL(qx + 1, W)] -
                                                 prev[qy * W + CL(qx - 1, W)])};
                    const double e = (double)cl[CL(y + u, H) * W + CL(x + v, W)] - prev[qy * W + qx];
                    for (int i = 0; i < 2; i++) {
                        bv[i] += gr[i] * e;
                        for (int j = 0; j < 2; j++)
                            g[i][j] += gr[i] * gr[j];
                    }
                }
            const double lam = 0.01 * 0.5 * (g[0][0] + g[1][1]);
            const double det = (g[0][0] + lam) * (g[1][1] + lam) - g[0][1] * g[0][1];
            double oy = 0, ox = 0;
            if (det > 0) {
                oy = fmin(fmax(((g[1][1] + lam) * bv[0] - g[0][1] * bv[1]) / det, -0.5), 0.5);
                ox = fmin(fmax(((g[0][0] + lam) * bv[1] - g[0][1] * bv[0]) / det, -0.5), 0.5);
            }
            if (prev == flat)
                assert_true(oy == 0.0 && ox == 0.0);
            const double fyy = fmin(fmax(sy + oy, 0.0), H - 1.0), fxx = fmin(fmax(sx + ox, 0.0), W - 1.0);
            const int y0 = vf_imin((int)floor(fyy), H - 2), x0 = vf_imin((int)floor(fxx), W - 2);
            const double fy = fyy - y0, fx = fxx - x0;
            for (int ch = 0; ch < 2; ch++) {
                const double want = (1 - fy) * ((1 - fx) * pab[(y0 * W + x0) * 2 + ch] +
                                                fx * pab[(y0 * W + x0 + 1) * 2 + ch]) +
                                    fy * ((1 - fx) * pab[((y0 + 1) * W + x0) * 2 + ch] +
                                          fx * pab[((y0 + 1) * W + x0 + 1) * 2 + ch]);
                worst = fmax(worst, fabs((ch ? sb : sa) - want));
            }
#undef CL
            assert_true(sc == tcost[kb]);
            cases++;
        }
    printf("sub-pixel candidate: %d cases, worst |ab − double| %.2g\n", cases, worst);
    assert_true(worst < 1e-3);
}

/* A smooth, textured lightness field and linear a, b (bilinear sampling reproduces them
 * exactly) for the sub-pixel case. */
static double sp_l(double y, double x)
{
    return 50.0 + 20.0 * sin(0.7 * y + 0.3 * x) + 15.0 * cos(0.4 * x - 0.5 * y);
}

static double sp_ab(int ch, double y, double x)
{
    return ch ? -y + 3.0 * x - 40.0 : 2.0 * y - x + 5.0;
}

/* The sub-pixel temporal candidate (docs/NETWORK.md, "A", refine, sub-pixel): frame t−1's
 * lightness moved by (0.4, −0.3) pixels (exactly: an analytic field), a, b linear in the
 * position and a reference that matches nothing. Away from the borders the whole-pixel
 * candidates can only blend neighbours; with the sub-pixel one the output must be nearer
 * X̂(t−1)'s a, b at the true sub-pixel source. Unmoved, the candidate is the whole pixel's own
 * a, b: the output is X̂(t−1)'s. 1, 2 and 3 threads give the same bits and the zero state
 * ignores the candidate bit for bit. */
static void warp_refine_subpixel(void **state)
{
    (void)state;
    const int H = TC_H, W = TC_W, TR = 2;
    const double DY = 0.4, DX = -0.3;
    const size_t P = TC_P;
    struct tcase c;
    tcase_init(&c, 17);
    float *whole = falloc(2 * P), *still = falloc(2 * P), *plain = falloc(2 * P), *reset = falloc(2 * P);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const size_t i = (size_t)y * W + x;
            c.pl[i] = (float)sp_l(y, x);
            c.cl[i] = (float)sp_l(y + DY, x + DX);
            c.pab[i] = (float)sp_ab(0, y, x);
            c.pab[P + i] = (float)sp_ab(1, y, x);
        }
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct refine_fx f;
        refine_fx_init(&f, g_be[b], H, W, c.g, c.ry, c.ab, c.pos, c.cl, c.pl, c.pab);
        f.ta.radius = TR;
        f.ta.h = 0.0025f;
        f.ta.subpixel = 1;
        refine_fx_run(&f, 4, 5, &f.ta, c.outs[b]);
        if (b == 0) {
            f.ta.subpixel = 0;
            refine_fx_run(&f, 4, 5, &f.ta, whole);
            refine_fx_run(&f, 4, 5, NULL, plain);
            f.ta.subpixel = 1;
            ok(vf_tensor_upload(&f.l, c.pl, &err), &err);     /* unmoved */
            refine_fx_run(&f, 4, 5, &f.ta, still);
            ok(vf_tensor_upload(&f.prev_l, c.none, &err), &err);
            refine_fx_run(&f, 4, 5, &f.ta, reset);
        }
        refine_fx_free(&f);
    }
    const int m = TR + 2 + 2;   /* no clamped coordinate in any window (patch 5), and a margin */
    double e_sub = 0, e_whole = 0, e_still = 0, w_sub = 0;
    int checked = 0;
    for (int y = m; y < H - m; y++)
        for (int x = m; x < W - m; x++)
            for (int ch = 0; ch < 2; ch++) {
                const size_t i = ch * P + (size_t)y * W + x;
                const double t = sp_ab(ch, y + DY, x + DX);
                e_sub += fabs(c.outs[0][i] - t);
                e_whole += fabs(whole[i] - t);
                e_still = fmax(e_still, fabs(still[i] - sp_ab(ch, y, x)));
                w_sub = fmax(w_sub, fabs(c.outs[0][i] - t));
                checked++;
            }
    printf("warp refine, sub-pixel candidate, moved (%.1f, %.1f): %d values away from the "
           "borders, mean |ab − X(t-1) at the source| %.3f with it (worst %.3f), %.3f with whole "
           "pixels only; unmoved, worst |ab − X(t-1)| %.2g\n", DY, DX, checked, e_sub / checked,
           w_sub, e_whole / checked, e_still);
    assert_true(checked > 500);
    /* it shares the cheapest whole pixel's weight (their costs are equal) */
    assert_true(e_sub < 0.8 * e_whole && w_sub < 2.0);
    assert_true(e_still < 1e-3);
    assert_memory_equal(reset, plain, 2 * P * sizeof(float));
    tcase_same_bits_and_free(&c, "sub-pixel");
    free(whole);
    free(still);
    free(plain);
    free(reset);
}

/* ============================== grey → L, RGB ↔ Lab ======================================== */

static void grey_to_l_matches_reference(void **state)
{
    (void)state;
    /* known values */
    assert_true(fabs(vf_grey_to_l(0.0f) - 0.0) <= 1e-4);
    assert_true(fabs(vf_grey_to_l(1.0f) - 100.0) <= 1e-4);
    const struct shape shapes[] = {{2, 1, 27, 48}, {1, 1, 144, 256}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t si = 0; si < 2; si++)
        for (size_t di = 0; di < 2; di++)
            for (int view = 0; view < 2; view++)
                for (int with_fin = 0; with_fin < 2; with_fin++) {
                    const struct shape s = shapes[si];
                    const enum vf_dtype dt = dts[di];
                    size_t cnt = tcount(s.n, 1, s.h, s.w), plane = (size_t)s.h * s.w;
                    double *in = dalloc(cnt), *ref = dalloc(cnt), *fref = dalloc(3 * cnt);
                    double *outs[NBE], *fouts[NBE];
                    for (size_t i = 0; i < cnt; i++)
                        in[i] = i == 0 ? 0.0 : (i == 1 ? 1.0 : urand());
                    for (int i = 0; i < s.n; i++)
                        for (size_t p = 0; p < plane; p++) {
                            double y = quant(dt, in[(size_t)i * plane + p]);
                            ref[(size_t)i * plane + p] = d_grey_to_l(y);
                            for (int k = 0; k < 3; k++)
                                fref[((size_t)i * 3 + k) * plane + p] = (y - IMN_MEAN[k]) / IMN_STD[k];
                        }
                    for (int b = 0; b < NBE; b++) {
                        struct vf_error err = {0};
                        struct tt g, l, fin;
                        tt_make(&g, g_be[b], dt, s.n, 1, s.h, s.w, view);
                        tt_make(&l, g_be[b], dt, s.n, 1, s.h, s.w, view);
                        tt_make(&fin, g_be[b], dt, s.n, 3, s.h, s.w, view);
                        tt_put(&g, in);
                        ok(vf_op_grey_to_l(&g.t, &l.t, with_fin ? &fin.t : NULL, &err), &err);
                        outs[b] = dalloc(cnt);
                        fouts[b] = dalloc(3 * cnt);
                        tt_get(&l, outs[b]);
                        tt_get(&fin, fouts[b]);
                        tt_check_pad(&l), tt_check_pad(&fin);
                        tt_free(&g), tt_free(&l), tt_free(&fin);
                    }
                    char what[96];
                    snprintf(what, sizeof what, "grey_to_l %s %dx%d view %d fin %d", dtn(dt),
                             s.h, s.w, view, with_fin);
                    check_same_bits(what, outs, cnt);
                    check_close(what, outs[0], ref, cnt, tol_of(dt));
                    if (dt == VF_F32) {
                        assert_true(fabs(outs[0][0]) <= 1e-4);
                        assert_true(fabs(outs[0][1] - 100.0) <= 1e-4);
                    }
                    if (with_fin) {
                        check_same_bits(what, fouts, 3 * cnt);
                        check_close(what, fouts[0], fref, 3 * cnt, tol_of(dt));
                    } else {
                        for (size_t i = 0; i < 3 * cnt; i++) /* untouched */
                            assert_true(fouts[0][i] == SENTINEL || fouts[0][i] == 0.0);
                    }
                    for (int b = 0; b < NBE; b++)
                        free(outs[b]), free(fouts[b]);
                    free(in), free(ref), free(fref);
                }
}

static void rgb_to_lab_known_values_and_reference(void **state)
{
    (void)state;
    vf_f3 w = vf_rgb_to_lab(1, 1, 1);
    assert_true(fabs(w.x - 100.0) <= 1e-4 && fabs(w.y) <= 1e-4 && fabs(w.z) <= 1e-4);
    vf_f3 r = vf_rgb_to_lab(1, 0, 0);
    assert_true(fabs(r.x - 53.24) <= 0.01 && fabs(r.y - 80.09) <= 0.01 && fabs(r.z - 67.20) <= 0.01);
    vf_f3 k = vf_rgb_to_lab(0, 0, 0);
    assert_true(fabs(k.x) <= 1e-6 && fabs(k.y) <= 1e-6 && fabs(k.z) <= 1e-6);

    const struct shape shapes[] = {{2, 3, 27, 48}, {1, 3, 144, 256}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t si = 0; si < 2; si++)
        for (size_t di = 0; di < 2; di++)
            for (int view = 0; view < 2; view++) {
                const struct shape s = shapes[si];
                const enum vf_dtype dt = dts[di];
                size_t cnt = tcount(s.n, 3, s.h, s.w), plane = (size_t)s.h * s.w;
                double *in = dalloc(cnt), *ref = dalloc(cnt), *fref = dalloc(cnt);
                double *outs[NBE], *fouts[NBE];
                for (size_t i = 0; i < cnt; i++)
                    in[i] = urand();
                for (int i = 0; i < s.n; i++)
                    for (size_t p = 0; p < plane; p++) {
                        double c[3], lab[3];
                        for (int kk = 0; kk < 3; kk++)
                            c[kk] = quant(dt, in[((size_t)i * 3 + kk) * plane + p]);
                        d_rgb_to_lab(c, lab);
                        for (int kk = 0; kk < 3; kk++) {
                            ref[((size_t)i * 3 + kk) * plane + p] = lab[kk];
                            fref[((size_t)i * 3 + kk) * plane + p] =
                                (c[kk] - IMN_MEAN[kk]) / IMN_STD[kk];
                        }
                    }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt rgb, lab, fin;
                    tt_make(&rgb, g_be[b], dt, s.n, 3, s.h, s.w, view);
                    tt_make(&lab, g_be[b], dt, s.n, 3, s.h, s.w, view);
                    tt_make(&fin, g_be[b], dt, s.n, 3, s.h, s.w, view);
                    tt_put(&rgb, in);
                    ok(vf_op_rgb_to_lab(&rgb.t, &lab.t, &fin.t, &err), &err);
                    outs[b] = dalloc(cnt);
                    fouts[b] = dalloc(cnt);
                    tt_get(&lab, outs[b]);
                    tt_get(&fin, fouts[b]);
                    tt_check_pad(&lab), tt_check_pad(&fin);
                    tt_free(&rgb), tt_free(&lab), tt_free(&fin);
                }
                char what[96];
                snprintf(what, sizeof what, "rgb_to_lab %s %dx%d view %d", dtn(dt), s.h, s.w, view);
                check_same_bits(what, outs, cnt);
                check_same_bits(what, fouts, cnt);
                check_close(what, outs[0], ref, cnt, tol_of(dt));
                check_close(what, fouts[0], fref, cnt, tol_of(dt));
                for (int b = 0; b < NBE; b++)
                    free(outs[b]), free(fouts[b]);
                free(in), free(ref), free(fref);
            }
}

static void lab_to_rgb_round_trip_and_reference(void **state)
{
    (void)state;
    /* round trip over an 11³ grid of sRGB (elementwise bodies, f32) */
    double worst = 0;
    for (int i = 0; i <= 10; i++)
        for (int j = 0; j <= 10; j++)
            for (int k = 0; k <= 10; k++) {
                float r = (float)i / 10, g = (float)j / 10, b = (float)k / 10;
                vf_f3 lab = vf_rgb_to_lab(r, g, b);
                vf_f3 back = vf_lab_to_rgb(lab.x, lab.y, lab.z);
                worst = fmax(worst, fabs(back.x - r));
                worst = fmax(worst, fabs(back.y - g));
                worst = fmax(worst, fabs(back.z - b));
            }
    if (!(worst <= 1e-4))
        fail_msg("Lab round trip: max error %.3g", worst);

    /* the operator against the double reference over Lab in and out of gamut */
    const struct shape shapes[] = {{2, 3, 27, 48}, {1, 3, 144, 256}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t si = 0; si < 2; si++)
        for (size_t di = 0; di < 2; di++)
            for (int view = 0; view < 2; view++) {
                const struct shape s = shapes[si];
                const enum vf_dtype dt = dts[di];
                size_t cnt = tcount(s.n, 3, s.h, s.w), plane = (size_t)s.h * s.w;
                double *in = dalloc(cnt), *ref = dalloc(cnt), *outs[NBE];
                for (int i = 0; i < s.n; i++)
                    for (size_t p = 0; p < plane; p++) {
                        double lab[3] = {rnd(0, 100), rnd(-110, 110), rnd(-110, 110)}, rgb[3];
                        for (int kk = 0; kk < 3; kk++) {
                            in[((size_t)i * 3 + kk) * plane + p] = lab[kk];
                            lab[kk] = quant(dt, lab[kk]);
                        }
                        d_lab_to_rgb(lab, rgb);
                        for (int kk = 0; kk < 3; kk++)
                            ref[((size_t)i * 3 + kk) * plane + p] = rgb[kk];
                    }
                for (int b = 0; b < NBE; b++) {
                    struct vf_error err = {0};
                    struct tt lab, rgb;
                    tt_make(&lab, g_be[b], dt, s.n, 3, s.h, s.w, view);
                    tt_make(&rgb, g_be[b], dt, s.n, 3, s.h, s.w, view);
                    tt_put(&lab, in);
                    ok(vf_op_lab_to_rgb(&lab.t, &rgb.t, &err), &err);
                    outs[b] = dalloc(cnt);
                    tt_get(&rgb, outs[b]);
                    tt_check_pad(&rgb);
                    tt_free(&lab), tt_free(&rgb);
                }
                char what[96];
                snprintf(what, sizeof what, "lab_to_rgb %s %dx%d view %d", dtn(dt), s.h, s.w, view);
                check_same_bits(what, outs, cnt);
                check_close(what, outs[0], ref, cnt, tol_of(dt));
                for (size_t i = 0; i < cnt; i++)
                    assert_true(outs[0][i] >= 0.0 && outs[0][i] <= 1.0);
                for (int b = 0; b < NBE; b++)
                    free(outs[b]);
                free(in), free(ref);
            }
}

/* ============================== guided upsampling ========================================== */

/* mean over the (2r+1)² window clipped at the borders */
static void ref_box(const double *in, int H, int W, int r, double *out)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double s = 0;
            int cnt = 0;
            for (int yy = y - r; yy <= y + r; yy++)
                for (int xx = x - r; xx <= x + r; xx++)
                    if (yy >= 0 && yy < H && xx >= 0 && xx < W) {
                        s += in[(size_t)yy * W + xx];
                        cnt++;
                    }
            out[(size_t)y * W + x] = s / cnt;
        }
}

/* NETWORK.md post-processing 1, per image: I (H×W), ab (2×H×W), If (h×w) → out (2×h×w). */
static void ref_guided(const double *I, const double *ab, int H, int W, const double *If, int h,
                       int w, int r, double eps, double *out)
{
    size_t P = (size_t)H * W, Q = (size_t)h * w;
    double *t = dalloc(P), *mI = dalloc(P), *mII = dalloc(P), *mp = dalloc(P), *mIp = dalloc(P);
    double *A = dalloc(P), *B = dalloc(P), *bA = dalloc(P), *bB = dalloc(P);
    double *uA = dalloc(Q), *uB = dalloc(Q);
    ref_box(I, H, W, r, mI);
    for (size_t i = 0; i < P; i++)
        t[i] = I[i] * I[i];
    ref_box(t, H, W, r, mII);
    for (int ch = 0; ch < 2; ch++) {
        const double *p = ab + ch * P;
        ref_box(p, H, W, r, mp);
        for (size_t i = 0; i < P; i++)
            t[i] = I[i] * p[i];
        ref_box(t, H, W, r, mIp);
        for (size_t i = 0; i < P; i++) {
            A[i] = (mIp[i] - mI[i] * mp[i]) / (mII[i] - mI[i] * mI[i] + eps);
            B[i] = mp[i] - A[i] * mI[i];
        }
        ref_box(A, H, W, r, bA);
        ref_box(B, H, W, r, bB);
        ref_bilinear_plane(bA, H, W, uA, h, w);
        ref_bilinear_plane(bB, H, W, uB, h, w);
        for (size_t i = 0; i < Q; i++)
            out[ch * Q + i] = uA[i] * If[i] + uB[i];
    }
    free(t), free(mI), free(mII), free(mp), free(mIp), free(A), free(B), free(bA), free(bB);
    free(uA), free(uB);
}

/* Runs the operator on all backends; outs[b] gets n×2×h×w. kind: 0 random, 1 constant ab,
 * 2 ab linear in the grey. */
static void guided_case(int n, int H, int W, int h, int w, int r, float eps, enum vf_dtype dt,
                        int view, int kind)
{
    size_t P = (size_t)H * W, Q = (size_t)h * w;
    double *I = dalloc(n * P), *ab = dalloc(n * 2 * P), *If = dalloc(n * Q);
    double *ref = dalloc(n * 2 * Q), *outs[NBE];
    const double al[2] = {60, -40}, bl[2] = {-20, 35}, cst[2] = {17.5, -42.25};
    for (size_t i = 0; i < n * P; i++)
        I[i] = urand();
    for (size_t i = 0; i < n * Q; i++)
        If[i] = urand();
    for (int img = 0; img < n; img++)
        for (int ch = 0; ch < 2; ch++)
            for (size_t i = 0; i < P; i++) {
                double y = quant(dt, I[img * P + i]);
                double v = kind == 0 ? rnd(-80, 80) : kind == 1 ? cst[ch] : al[ch] * y + bl[ch];
                ab[(img * 2 + ch) * P + i] = v;
            }
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct tt gl, al_, gf, af;
        struct vf_tensor scratch = {0};
        tt_make(&gl, g_be[b], dt, n, 1, H, W, view);
        tt_make(&al_, g_be[b], dt, n, 2, H, W, view);
        tt_make(&gf, g_be[b], VF_F32, n, 1, h, w, view);
        tt_make(&af, g_be[b], VF_F32, n, 2, h, w, view);
        tt_put(&gl, I), tt_put(&al_, ab), tt_put(&gf, If);
        ok(vf_tensor_alloc(&scratch, g_be[b], VF_F32, 1, (int)vf_guided_scratch_elems(H, W), 1, 1,
                           &err), &err);
        ok(vf_op_guided_upsample(&gl.t, &al_.t, &gf.t, &af.t, r, eps, &scratch, &err), &err);
        outs[b] = dalloc(n * 2 * Q);
        tt_get(&af, outs[b]);
        tt_check_pad(&af);
        tt_free(&gl), tt_free(&al_), tt_free(&gf), tt_free(&af);
        vf_tensor_free(&scratch);
    }
    double *qI = dalloc(n * P), *qab = dalloc(n * 2 * P);
    for (size_t i = 0; i < n * P; i++)
        qI[i] = quant(dt, I[i]);
    for (size_t i = 0; i < n * 2 * P; i++)
        qab[i] = quant(dt, ab[i]);
    for (int img = 0; img < n; img++)
        ref_guided(qI + img * P, qab + img * 2 * P, H, W, If + img * Q, h, w, r, (double)eps,
                   ref + img * 2 * Q);
    char what[128];
    snprintf(what, sizeof what, "guided %s n %d %dx%d -> %dx%d r %d kind %d view %d", dtn(dt), n,
             H, W, h, w, r, kind, view);
    size_t on = n * 2 * Q;
    check_same_bits(what, outs, on);
    /* the operator computes in double and stores f32: f32 tolerance whatever the input dtype */
    check_close(what, outs[0], ref, on, 1e-6);
    if (r == 0) {   /* windows of one pixel: A = 0, B = ab: plain bilinear upsampling of ab */
        for (int k = 0; k < 2 * n; k++)
            ref_bilinear_plane(qab + k * P, H, W, ref + k * Q, h, w);
        strncat(what, " = bilinear", sizeof what - strlen(what) - 1);
        check_close(what, outs[0], ref, on, 1e-6);
    }
    if (kind == 1) {
        for (int img = 0; img < n; img++)
            for (int ch = 0; ch < 2; ch++)
                for (size_t i = 0; i < Q; i++)
                    if (!(fabs(outs[0][(img * 2 + ch) * Q + i] - quant(dt, cst[ch])) <= 1e-4))
                        fail_msg("%s: constant not kept: %g", what, outs[0][(img * 2 + ch) * Q + i]);
    } else if (kind == 2) {
        double worst = 0;
        for (int img = 0; img < n; img++)
            for (int ch = 0; ch < 2; ch++)
                for (size_t i = 0; i < Q; i++)
                    worst = fmax(worst, fabs(outs[0][(img * 2 + ch) * Q + i] -
                                             (al[ch] * If[img * Q + i] + bl[ch])));
        /* bf16 storage of ab breaks the exact linearity by its rounding (≤ 0.25 at |ab| ≤ 100) */
        double lim = dt == VF_F32 ? 1e-3 : 0.5;
        if (!(worst <= lim))
            fail_msg("%s: linear function not kept: max error %.3g", what, worst);
    }
    for (int b = 0; b < NBE; b++)
        free(outs[b]);
    free(I), free(ab), free(If), free(ref), free(qI), free(qab);
}

static void guided_upsample_matches_reference(void **state)
{
    (void)state;
    guided_case(2, 27, 48, 54, 96, 2, 1e-3f, VF_F32, 0, 0);
    guided_case(1, 7, 12, 54, 96, 2, 1e-3f, VF_F32, 1, 0);
    guided_case(1, 36, 64, 144, 256, 2, 1e-3f, VF_F32, 0, 0);
    guided_case(1, 27, 48, 37, 61, 3, 1e-3f, VF_BF16, 1, 0);
    guided_case(1, 5, 4, 9, 7, 2, 1e-3f, VF_F32, 0, 0);       /* window larger than the image */
    guided_case(2, 27, 48, 54, 96, 2, 1e-3f, VF_F32, 1, 1);   /* constant */
    guided_case(1, 27, 48, 81, 144, 2, 1e-3f, VF_BF16, 0, 1);
    guided_case(2, 27, 48, 54, 96, 2, 1e-8f, VF_F32, 0, 2);   /* linear in the grey */
    guided_case(1, 36, 64, 72, 128, 2, 1e-8f, VF_BF16, 1, 2);
    guided_case(2, 27, 48, 54, 96, 0, 1e-3f, VF_F32, 0, 0);   /* radius 0: bilinear */
    guided_case(1, 108, 192, 144, 256, 0, 1e-3f, VF_BF16, 1, 0);   /* ×4/3 (a scale exact in binary) */
    guided_case(1, 5, 4, 9, 7, 0, 1e-3f, VF_F32, 0, 1);
}

/* ============================== film-size propagation ====================================== */

/* Net.carry (train/vaefarm_ref/model.py) written out pixel by pixel: for each move, rows of
 * moves outer, the window's rows of (0 + its columns' squared differences of 255·Y′, left to
 * right) summed top to bottom from 0, then the tie-break; the first least cost; the share and
 * the f32 blend as the reference writes them. The operator works in strips and vectorised rows:
 * it must give these bits exactly. */
static void ref_carry(const double *g, const double *pg, const double *pab, double *ab, int h,
                      int w, float share, float conf, int radius, int patch, int sub)
{
    const int r = patch / 2;
    const size_t P = (size_t)h * w;
#define CL(v, n) ((v) < 0 ? 0 : (v) >= (n) ? (n) - 1 : (v))
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double best = INFINITY;
            int by = 0, bx = 0;
            for (int dy = -radius; dy <= radius; dy++)
                for (int dx = -radius; dx <= radius; dx++) {
                    double c = 0.0;
                    for (int oy = -r; oy <= r; oy++) {
                        const int qy = CL(y + oy, h), sy = CL(qy + dy, h);
                        double row = 0.0;
                        for (int ox = -r; ox <= r; ox++) {
                            const int qx = CL(x + ox, w), sx = CL(qx + dx, w);
                            const double d = (double)(float)g[(size_t)qy * w + qx] * 255.0 -
                                             (double)(float)pg[(size_t)sy * w + sx] * 255.0;
                            row += d * d;
                        }
                        c += row;
                    }
                    c += 1e-3 * (double)(dx * dx + dy * dy);
                    if (c < best)
                        best = c, by = dy, bx = dx;
                }
            float s = share;
            if (conf > 0)
                s = (float)((double)share *
                            exp(-best / ((double)(patch * patch) * (double)conf * (double)conf)));
            const size_t i = (size_t)y * w + x;
            /* the sub-pixel step (Net._carry_subpixel): Lucas–Kanade sums over the window at the
             * moved pixels, the step, then bilinear taps; whole pixels: oy = ox = 0 */
            double oy = 0.0, ox = 0.0;
            if (sub) {
                double sxx = 0, sxy = 0, syy = 0, sxe = 0, sye = 0;
#define PG(yy, xx) ((double)(float)pg[(size_t)CL(yy, h) * w + CL(xx, w)] * 255.0)
                for (int a = -r; a <= r; a++)
                    for (int b = -r; b <= r; b++) {
                        const int qy = CL(y + a, h), qx = CL(x + b, w);
                        const int my = CL(qy + by, h), mx = CL(qx + bx, w);
                        const double gx = (PG(my, mx + 1) - PG(my, mx - 1)) * 0.5;
                        const double gy = (PG(my + 1, mx) - PG(my - 1, mx)) * 0.5;
                        const double e = (double)(float)g[(size_t)qy * w + qx] * 255.0 - PG(my, mx);
                        sxx += gx * gx, sxy += gx * gy, syy += gy * gy, sxe += gx * e, sye += gy * e;
                    }
#undef PG
                const double det = sxx * syy - sxy * sxy;
                if (det > 1e-6 * ((sxx + syy) * (sxx + syy)) + 1e-9) {
                    ox = fmin(fmax((syy * sxe - sxy * sye) / det, -1.0), 1.0);
                    oy = fmin(fmax((sxx * sye - sxy * sxe) / det, -1.0), 1.0);
                }
            }
            const double fy = fmin(fmax((double)(y + by) + oy, 0.0), (double)(h - 1));
            const double fx = fmin(fmax((double)(x + bx) + ox, 0.0), (double)(w - 1));
            const int y0 = (int)floor(fy), x0 = (int)floor(fx);
            const int y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            const double wy = fy - y0, wx = fx - x0;
            for (int ch = 0; ch < 2; ch++) {
                const double *v = pab + ch * P;
#define V(yy, xx) ((double)(float)v[(size_t)(yy) * w + (xx)])
                const float carried = (float)((1.0 - wy) * ((1.0 - wx) * V(y0, x0) + wx * V(y0, x1)) +
                                              wy * ((1.0 - wx) * V(y1, x0) + wx * V(y1, x1)));
#undef V
                const float own = (float)ab[ch * P + i];
                ab[ch * P + i] = s * carried + (1.0f - s) * own;
            }
        }
#undef CL
}

/* stripes 0: the grey is prev_grey moved by (2, −3) plus noise, with a flat band of rows and a
 * flat column (equal costs there: the tie-break decides). stripes 1: columns alternating 0.3 and
 * 0.7, the grey moved by one column: moves (dy, −1) and (dy, +1) match alike, and the first of
 * them must win. */
static void carry_case(int n, int h, int w, int radius, int patch, float conf, int view,
                       int stripes, int sub)
{
    const size_t P = (size_t)h * w;
    double *g = dalloc(n * P), *pg = dalloc(n * P), *pab = dalloc(n * 2 * P);
    double *ab = dalloc(n * 2 * P), *ref = dalloc(n * 2 * P), *outs[NBE];
    for (int img = 0; img < n; img++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const size_t i = img * P + (size_t)y * w + x;
                pg[i] = stripes                       ? 0.3 + 0.4 * (x % 2)
                        : y % 7 == 3 || x == w / 2 ? 0.5
                                                   : 0.5 + 0.4 * sin(0.37 * x + 0.23 * y + img);
            }
    for (int img = 0; img < n; img++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const int sy = y - 2 < 0 ? 0 : y - 2, sx = x + 3 >= w ? w - 1 : x + 3;
                g[img * P + (size_t)y * w + x] =
                    stripes ? 0.3 + 0.4 * ((x + 1) % 2)
                            : pg[img * P + (size_t)sy * w + sx] + (y % 7 == 3 ? 0 : rnd(-0.02, 0.02));
            }
    for (size_t i = 0; i < n * 2 * P; i++)
        pab[i] = rnd(-80, 80), ab[i] = rnd(-80, 80);
    const float share = 0.8f;
    for (int b = 0; b < NBE; b++) {
        struct vf_error err = {0};
        struct tt tg, tpg, tpab, tab;
        struct vf_tensor scratch = {0};
        tt_make(&tg, g_be[b], VF_F32, n, 1, h, w, view);
        tt_make(&tpg, g_be[b], VF_F32, n, 1, h, w, !view);
        tt_make(&tpab, g_be[b], VF_F32, n, 2, h, w, view);
        tt_make(&tab, g_be[b], VF_F32, n, 2, h, w, !view);
        tt_put(&tg, g), tt_put(&tpg, pg), tt_put(&tpab, pab), tt_put(&tab, ab);
        ok(vf_tensor_alloc(&scratch, g_be[b], VF_F32, 1, (int)vf_carry_scratch_elems(h, w), 1, 1,
                           &err), &err);
        ok(vf_op_carry_ab(&tg.t, &tpg.t, &tpab.t, &tab.t, share, conf, radius, patch, sub,
                          &scratch, &err), &err);
        outs[b] = dalloc(n * 2 * P);
        tt_get(&tab, outs[b]);
        tt_check_pad(&tab);
        tt_free(&tg), tt_free(&tpg), tt_free(&tpab), tt_free(&tab);
        vf_tensor_free(&scratch);
    }
    memcpy(ref, ab, n * 2 * P * sizeof *ref);
    for (int img = 0; img < n; img++)
        ref_carry(g + img * P, pg + img * P, pab + img * 2 * P, ref + img * 2 * P, h, w, share,
                  conf, radius, patch, sub);
    char what[128];
    snprintf(what, sizeof what, "carry n %d %dx%d radius %d patch %d confidence %g view %d%s%s",
             n, h, w, radius, patch, (double)conf, view, stripes ? " stripes" : "",
             sub ? " subpixel" : "");
    check_same_bits(what, outs, n * 2 * P);
    size_t moved = 0;
    for (size_t i = 0; i < n * 2 * P; i++) {
        if (outs[0][i] != ref[i])
            fail_msg("%s: element %zu is %.9g, the per-pixel sums give %.9g", what, i,
                     outs[0][i], ref[i]);
        moved += ref[i] != ab[i];
    }
    if (moved < n * P)   /* most pixels take a share of a carried value */
        fail_msg("%s: only %zu of %zu values changed", what, moved, n * 2 * P);
    for (int b = 0; b < NBE; b++)
        free(outs[b]);
    free(g), free(pg), free(pab), free(ab), free(ref);
}

/* Sizes around the CPU operator's strips (about 32,768 pixels, 16 to 64 rows: one strip, a
 * short last strip, windows reaching across strips, 16-row strips of very wide pictures) and
 * pictures smaller than the window or the moves; n 2; views; the sub-pixel step (its sums, its
 * clamps, its taps at the picture's edges) on the same pictures. */
static void carry_matches_per_pixel_sums(void **state)
{
    (void)state;
    for (int sub = 0; sub < 2; sub++) {
        carry_case(1, 1, 1, 1, 1, 0.0f, 0, 0, sub);
        carry_case(2, 3, 2, 6, 5, 12.0f, 1, 0, sub);
        carry_case(1, 70, 5, 3, 15, 12.0f, 0, 0, sub);
        carry_case(2, 20, 40, 16, 7, 0.0f, 1, 0, sub);
        carry_case(1, 130, 300, 2, 3, 12.0f, 1, 0, sub);
        carry_case(1, 100, 700, 3, 5, 12.0f, 0, 0, sub);
        carry_case(1, 40, 8200, 1, 5, 4.0f, 0, 0, sub);
        carry_case(2, 90, 400, 2, 3, 12.0f, 1, 1, sub);
    }
}

/* ============================== keep luma ================================================== */

static void d_keep_luma(double grey, double a, double b, double kr, double kb, double rgb[3])
{
    double lo = 0, hi = 100;
    for (int i = 0; i < 20; i++) {
        double mid = (lo + hi) / 2, lab[3] = {mid, a, b}, c[3];
        d_lab_to_rgb(lab, c);
        if (d_luma(c, kr, kb) < grey)
            lo = mid;
        else
            hi = mid;
    }
    double lab[3] = {(lo + hi) / 2, a, b};
    d_lab_to_rgb(lab, rgb);
}

static void keep_luma_keeps_the_grey(void **state)
{
    (void)state;
    const float mats[2][2] = {{0.2126f, 0.0722f}, {0.299f, 0.114f}};
    const struct shape shapes[] = {{2, 1, 27, 48}, {1, 1, 144, 256}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    for (size_t si = 0; si < 2; si++)
        for (size_t di = 0; di < 2; di++)
            for (int mi = 0; mi < 2; mi++)
                for (int neutral = 0; neutral < 2; neutral++) {
                    const struct shape s = shapes[si];
                    const enum vf_dtype dt = dts[di];
                    const int view = (int)(si + di) % 2;
                    const double kr = mats[mi][0], kb = mats[mi][1];
                    size_t P = (size_t)s.h * s.w, cnt = s.n * P;
                    double *g = dalloc(cnt), *ab = dalloc(2 * cnt);
                    double *rgb_ref = dalloc(3 * cnt), *cc_ref = dalloc(2 * cnt);
                    double *outs[NBE], *couts[NBE];
                    for (size_t i = 0; i < cnt; i++)
                        g[i] = (double)i / (double)(cnt - 1) * 0.98 + 0.01 * (1 + urand());
                    for (int img = 0; img < s.n; img++)
                        for (int ch = 0; ch < 2; ch++)
                            for (size_t i = 0; i < P; i++)
                                ab[(img * 2 + ch) * P + i] = neutral ? 0.0 : rnd(-40, 40);
                    for (int img = 0; img < s.n; img++)
                        for (size_t i = 0; i < P; i++) {
                            double c[3];
                            d_keep_luma(quant(dt, g[img * P + i]), quant(dt, ab[img * 2 * P + i]),
                                        quant(dt, ab[(img * 2 + 1) * P + i]), kr, kb, c);
                            double y = d_luma(c, kr, kb);
                            for (int k = 0; k < 3; k++)
                                rgb_ref[(img * 3 + k) * P + i] = c[k];
                            cc_ref[(img * 2) * P + i] = (c[2] - y) / (2 * (1 - kb));
                            cc_ref[(img * 2 + 1) * P + i] = (c[0] - y) / (2 * (1 - kr));
                        }
                    for (int b = 0; b < NBE; b++) {
                        struct vf_error err = {0};
                        struct tt tg, tab, trgb, tcc;
                        tt_make(&tg, g_be[b], dt, s.n, 1, s.h, s.w, view);
                        tt_make(&tab, g_be[b], dt, s.n, 2, s.h, s.w, view);
                        tt_make(&trgb, g_be[b], VF_F32, s.n, 3, s.h, s.w, view);
                        tt_make(&tcc, g_be[b], VF_F32, s.n, 2, s.h, s.w, view);
                        tt_put(&tg, g), tt_put(&tab, ab);
                        ok(vf_op_keep_luma(&tg.t, &tab.t, (float)kr, (float)kb, &trgb.t, &tcc.t,
                                           &err), &err);
                        outs[b] = dalloc(3 * cnt);
                        couts[b] = dalloc(2 * cnt);
                        tt_get(&trgb, outs[b]);
                        tt_get(&tcc, couts[b]);
                        tt_check_pad(&trgb), tt_check_pad(&tcc);
                        /* cbcr alone gives the same */
                        struct tt tcc2;
                        tt_make(&tcc2, g_be[b], VF_F32, s.n, 2, s.h, s.w, 0);
                        ok(vf_op_keep_luma(&tg.t, &tab.t, (float)kr, (float)kb, NULL, &tcc2.t,
                                           &err), &err);
                        double *c2 = dalloc(2 * cnt);
                        tt_get(&tcc2, c2);
                        assert_memory_equal(c2, couts[b], 2 * cnt * sizeof(double));
                        free(c2);
                        tt_free(&tcc2);
                        tt_free(&tg), tt_free(&tab), tt_free(&trgb), tt_free(&tcc);
                    }
                    char what[128];
                    snprintf(what, sizeof what, "keep_luma %s %dx%d Kr %.4f neutral %d view %d",
                             dtn(dt), s.h, s.w, kr, neutral, view);
                    check_same_bits(what, outs, 3 * cnt);
                    check_same_bits(what, couts, 2 * cnt);
                    double e1 = max_abs(outs[0], rgb_ref, 3 * cnt);
                    double e2 = max_abs(couts[0], cc_ref, 2 * cnt);
                    if (!(e1 <= 1e-4 && e2 <= 1e-4))
                        fail_msg("%s: vs double bisection: rgb %.3g, cbcr %.3g", what, e1, e2);
                    /* the luma is the grey where no channel is clipped */
                    size_t in_gamut = 0;
                    double worst = 0;
                    for (int img = 0; img < s.n; img++)
                        for (size_t i = 0; i < P; i++) {
                            double c[3];
                            for (int k = 0; k < 3; k++)
                                c[k] = outs[0][(img * 3 + k) * P + i];
                            if (c[0] <= 0 || c[0] >= 1 || c[1] <= 0 || c[1] >= 1 || c[2] <= 0 ||
                                c[2] >= 1)
                                continue;
                            in_gamut++;
                            worst = fmax(worst, fabs(d_luma(c, kr, kb) - quant(dt, g[img * P + i])));
                        }
                    if (!(worst <= 1e-4))
                        fail_msg("%s: luma differs from the grey by %.3g", what, worst);
                    assert_true(in_gamut > cnt / 3);
                    if (neutral)
                        for (size_t i = 0; i < 2 * cnt; i++)
                            if (!(fabs(couts[0][i]) <= 1e-5))
                                fail_msg("%s: a = b = 0 gives chroma %.3g", what, couts[0][i]);
                    for (size_t i = 0; i < 2 * cnt; i++)
                        assert_true(couts[0][i] >= -0.5 - 1e-6 && couts[0][i] <= 0.5 + 1e-6);
                    for (int b = 0; b < NBE; b++)
                        free(outs[b]), free(couts[b]);
                    free(g), free(ab), free(rgb_ref), free(cc_ref);
                }
}

/* libm's expf(x) (exp) or powf(x, y): what vf_libm_lanes_ must give. */
static float libm_ref(bool exp, float x, float y) { return exp ? expf(x) : powf(x, y); }

/* vf_libm_lanes_ against libm_ref, bit for bit, for expf (exp) or powf at y: every float whose
 * bits lie in [first, last] (in chunks padded to a multiple of 16, so that every value takes the
 * vector path), then each of the ne edge values in every lane among fill + step·i. Returns how
 * many floats; *vector: whether the vector path ran. */
static long lanes_match_libm(bool exp, float y, uint32_t first, uint32_t last, const float *edge,
                             int ne, float fill, float step, bool *vector)
{
    const char *name = exp ? "expf" : "powf";
    enum { CH = 1 << 20 };           /* a multiple of 16 */
    float *x = malloc(CH * sizeof *x), *o = malloc(CH * sizeof *o);
    assert_non_null(x);
    assert_non_null(o);
    long n = 0;
    for (uint64_t u = first; u <= last;) {
        int m = 0;
        for (; m < CH && u <= last; m++, u++)
            memcpy(&x[m], &(uint32_t){(uint32_t)u}, 4);
        int padded = m;
        for (; padded % 16; padded++)
            x[padded] = x[m - 1];
        *vector |= vf_libm_lanes_(exp, x, padded, y, o);
        for (int i = 0; i < m; i++)
            if (memcmp(&o[i], &(float){libm_ref(exp, x[i], y)}, 4) != 0)
                fail_msg("%s lanes: at %a, y %a: %a, libm %a", name, (double)x[i], (double)y,
                         (double)o[i], (double)libm_ref(exp, x[i], y));
        n += m;
    }
    for (int e = 0; e < ne; e++)
        for (int l = 0; l < 16; l++) {
            for (int i = 0; i < 16; i++)
                x[i] = i == l ? edge[e] : fill + step * (float)i;
            vf_libm_lanes_(exp, x, 16, y, o);
            for (int i = 0; i < 16; i++)
                if (memcmp(&o[i], &(float){libm_ref(exp, x[i], y)}, 4) != 0)
                    fail_msg("%s lanes: at %a, y %a, lane %d: %a, libm %a", name, (double)x[i],
                             (double)y, i, (double)o[i], (double)libm_ref(exp, x[i], y));
        }
    free(x);
    free(o);
    return n;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* The lanes' vector powf (kernels/lanes_impl.h, the keep-luma operator's) against libm's powf, bit for
 * bit, on every float of the interval where its vector path runs, for both exponents it serves;
 * and outside it (0, negative, NaN, ±∞, subnormal, above the interval: libm's own powf), each
 * edge value in every lane. */
static void keep_luma_powf_lanes_match_libm(void **state)
{
    (void)state;
    const float edge[] = {VF_POWF_LANES_LO, VF_POWF_LANES_HI, 0.0f, -0.0f, -0.5f, NAN, INFINITY,
                          -INFINITY, 1e-40f, 2.0f, 1.5f, 0.001f, 3e38f, 0.5f};
    const int ne = (int)(sizeof edge / sizeof *edge);
    const uint32_t first = f32_bits(VF_POWF_LANES_LO) + 1, last = f32_bits(VF_POWF_LANES_HI) - 1;
    int bits[3];
    const int paths = lane_paths(bits);
    /* every vector path this CPU runs; the scalar one is libm's own (only where there is none) */
    for (int path = 0; path < (paths > 1 ? paths - 1 : 1); path++) {
        vf_lanes_cap_(bits[path]);
        bool vector = false;
        long n = 0;
        n += lanes_match_libm(false, 1.0f / 2.4f, first, last, edge, ne, 0.25f, 0.01f, &vector);
        n += lanes_match_libm(false, 0.8f, first, last, edge, ne, 0.25f, 0.01f, &vector);
        vf_lanes_cap_(512);
        assert_true(n == 2L * (long)(last - first + 1));
        assert_true(vector == (bits[path] != 0));
        printf("powf lanes (%s): all %ld floats of (%g, %g), y = 1/2.4 and 0.8, and %d edge "
               "values in every lane: libm's bits\n",
               vector ? lane_path_name(bits[path], NULL) : "no lanes here: libm's own", n / 2,
               (double)VF_POWF_LANES_LO, (double)VF_POWF_LANES_HI, ne);
    }
}

/* The lanes' vector expf (the refinement's weights) against libm's expf, bit for bit,
 * on every float of [VF_EXPF_LANES_LO, VF_EXPF_LANES_HI] where its vector path runs, and outside
 * it (0, −0, tiny, NaN, ±∞, positive, below −69: libm's own expf), each edge value in every
 * lane. */
static void refine_expf_lanes_match_libm(void **state)
{
    (void)state;
    const float edge[] = {VF_EXPF_LANES_LO, VF_EXPF_LANES_HI, 0.0f, -0.0f, -1e-20f, -0x1p-13f,
                          NAN, INFINITY, -INFINITY, 0.5f, 88.0f, -69.5f, -103.0f, -1e-40f,
                          -1.0f};
    const int ne = (int)(sizeof edge / sizeof *edge);
    /* negative floats: the bits grow with the magnitude */
    const uint32_t first = f32_bits(VF_EXPF_LANES_HI), last = f32_bits(VF_EXPF_LANES_LO);
    int bits[3];
    const int paths = lane_paths(bits);
    int ran = 0;
    for (int path = 0; path < paths; path++) {
        bool has;
        lane_path_name(bits[path], &has);
        if (!has && (ran || path < paths - 1))
            continue;   /* libm against libm: only where no lanes compute expf at all */
        ran++;
        vf_lanes_cap_(bits[path]);
        bool vector = false;
        const long n = lanes_match_libm(true, 0.0f, first, last, edge, ne, -0.5f, -0.25f,
                                        &vector);
        const struct vf_lanes *vl = vf_lanes_();
        vf_lanes_cap_(512);
        assert_true(n == (long)(last - first + 1));
        assert_true(vector == (vl && vl->expf));   /* the AVX2 lanes have none: libm's */
        printf("expf lanes (%s): all %ld floats of [%g, %g] and %d edge values in every lane: "
               "libm's bits\n", vector ? vl->isa : "no lanes here: libm's own",
               n, (double)VF_EXPF_LANES_LO, (double)VF_EXPF_LANES_HI, ne);
    }
}

/* The operator (RL pixels at a time, kernels/lanes_impl.h keep_luma_lanes) against vf_keep_luma_rgb
 * pixel by pixel, bit for bit, rgb and cbcr: greys over [0, 1] and beyond, around the start's
 * branch point 0.04045, NaN and ±∞; chroma from 0 to past the Newton limit (120) and far out of
 * gamut, NaN and ±∞ in a or b; both matrices, f32 and bf16 inputs, views, sizes that leave
 * short last blocks, 1, 2 and 3 threads. */
static void keep_luma_lanes_case(void)
{
    const float mats[3][2] = {{0.2126f, 0.0722f}, {0.299f, 0.114f}, {0.05f, 0.9f}};
    const float specials[] = {NAN, INFINITY, -INFINITY, -0.25f, 1.5f, 0.04045f, 0.0404f, 0.0405f,
                              0.0f, 1.0f, 1e-30f, -0.0f};
    const int sizes[][3] = {{1, 37, 29}, {2, 16, 17}, {1, 1, 5}};
    const enum vf_dtype dts[] = {VF_F32, VF_BF16};
    long pixels = 0, bisect = 0;
    tu_lcg_seed(77);
    for (int si = 0; si < 3; si++)
        for (int di = 0; di < 2; di++)
            for (int mi = 0; mi < 3; mi++) {
                const int N = sizes[si][0], H = sizes[si][1], W = sizes[si][2];
                const enum vf_dtype dt = dts[di];
                const int view = (si + di + mi) % 2;
                const float kr = mats[mi][0], kb = mats[mi][1];
                const size_t P = (size_t)H * W, cnt = (size_t)N * P;
                double *g = dalloc(cnt), *ab = dalloc(2 * cnt), *rgb = dalloc(3 * cnt),
                       *cc = dalloc(2 * cnt);
                for (int img = 0; img < N; img++)
                    for (size_t i = 0; i < P; i++) {
                        const size_t q = (size_t)img * P + i;
                        const int kind = (int)(q % 11);
                        double gv = urand(), a = rnd(-60, 60), b = rnd(-60, 60);
                        if (kind == 1)
                            gv = specials[q / 11 % (sizeof specials / sizeof *specials)];
                        else if (kind == 2)
                            a = rnd(-130, 130), b = rnd(-130, 130);   /* around the limit */
                        else if (kind == 3)
                            a = rnd(-400, 400), b = rnd(-400, 400);
                        else if (kind == 4)
                            a = b = 0.0;
                        else if (kind == 5)
                            gv = 0.0404 + 0.0002 * urand();
                        else if (kind == 6) {
                            const double sp[] = {NAN, INFINITY, -INFINITY, 1e30};
                            if (q / 11 % 2)
                                a = sp[q / 22 % 4];
                            else
                                b = sp[q / 22 % 4];
                        } else if (kind == 7)
                            gv = rnd(-0.1, 0.02);
                        g[q] = gv;
                        ab[(size_t)img * 2 * P + i] = a;
                        ab[((size_t)img * 2 + 1) * P + i] = b;
                    }
                for (int bi = 0; bi < NBE; bi++) {
                    struct vf_error err = {0};
                    struct tt tg, tab, trgb, tcc;
                    tt_make(&tg, g_be[bi], dt, N, 1, H, W, view);
                    tt_make(&tab, g_be[bi], dt, N, 2, H, W, view);
                    tt_make(&trgb, g_be[bi], VF_F32, N, 3, H, W, view);
                    tt_make(&tcc, g_be[bi], VF_F32, N, 2, H, W, !view);
                    tt_put(&tg, g), tt_put(&tab, ab);
                    ok(vf_op_keep_luma(&tg.t, &tab.t, kr, kb, &trgb.t, &tcc.t, &err), &err);
                    double *gq = dalloc(cnt), *abq = dalloc(2 * cnt);
                    tt_get(&tg, gq);
                    tt_get(&tab, abq);
                    tt_get(&trgb, rgb);
                    tt_get(&tcc, cc);
                    tt_check_pad(&trgb), tt_check_pad(&tcc);
                    for (int img = 0; img < N; img++)
                        for (size_t i = 0; i < P; i++) {
                            const float gv = (float)gq[(size_t)img * P + i];
                            const float a = (float)abq[(size_t)img * 2 * P + i];
                            const float b = (float)abq[((size_t)img * 2 + 1) * P + i];
                            const vf_f3 c = vf_keep_luma_rgb(gv, a, b, kr, kb);
                            const float want[5] = {c.x, c.y, c.z, vf_cb(c, kr, kb),
                                                   vf_cr(c, kr, kb)};
                            float got[5];
                            for (int k = 0; k < 3; k++)
                                got[k] = (float)rgb[((size_t)img * 3 + k) * P + i];
                            for (int k = 0; k < 2; k++)
                                got[3 + k] = (float)cc[((size_t)img * 2 + k) * P + i];
                            if (memcmp(got, want, sizeof got) != 0)
                                fail_msg("keep_luma lanes %s Kr %g, %d threads, pixel %zu of "
                                         "image %d (grey %a, a %a, b %a): %a %a %a / %a %a, "
                                         "solver %a %a %a / %a %a", dtn(dt), (double)kr,
                                         g_threads[bi], i, img, (double)gv, (double)a,
                                         (double)b, (double)got[0], (double)got[1],
                                         (double)got[2], (double)got[3], (double)got[4],
                                         (double)want[0], (double)want[1], (double)want[2],
                                         (double)want[3], (double)want[4]);
                            if (bi == 0) {
                                pixels++;
                                bisect += !(a * a + b * b < VF_KEEP_LUMA_CHROMA2);
                            }
                        }
                    free(gq), free(abq);
                    tt_free(&tg), tt_free(&tab), tt_free(&trgb), tt_free(&tcc);
                }
                free(g), free(ab), free(rgb), free(cc);
            }
    assert_true(bisect > 100 && bisect < pixels / 2);
    const struct vf_lanes *vl = vf_lanes_();
    printf("keep_luma lanes (%s): %ld pixels (%ld by the bisection alone), 3 matrices, f32 and "
           "bf16, 1, 2 and 3 threads: vf_keep_luma_rgb's bits\n",
           vl ? vl->isa : "scalar, one at a time", pixels, bisect);
}

/* ... on every path this CPU runs: AVX-512F, AVX2 and the scalar one (the path of CPUs with
 * neither). */
static void keep_luma_lanes_match_the_solver(void **state)
{
    (void)state;
    int bits[3];
    const int paths = lane_paths(bits);
    for (int path = 0; path < paths; path++) {
        vf_lanes_cap_(bits[path]);
        keep_luma_lanes_case();
    }
    vf_lanes_cap_(512);
}

/* The plain 20-step bisection of NETWORK.md in float, as kernels/elem.h first had it: the
 * reference for the faster root-finder vf_keep_luma_rgb. */
static vf_f3 ref_keep_luma_bisect(float grey, float a, float b, float kr, float kb)
{
    float lo = 0.0f, hi = 100.0f;
    for (int i = 0; i < 20; i++) {
        float mid = 0.5f * (lo + hi);
        if (vf_luma(vf_lab_to_rgb(mid, a, b), kr, kb) < grey)
            lo = mid;
        else
            hi = mid;
    }
    return vf_lab_to_rgb(0.5f * (lo + hi), a, b);
}

static void keep_luma_solver_matches_the_bisection(void **state)
{
    (void)state;
    const float mats[2][2] = {{0.2126f, 0.0722f}, {0.299f, 0.114f}};
    /* a dense grid: greys 0..1, chroma to ±200 (Lab's range is about ±128: saturated and far
     * out of gamut), plus random points; max |ΔR′G′B′| ≤ 1e-4 */
    double worst = 0;
    float wg = 0, wa = 0, wb = 0;
    for (int mi = 0; mi < 2; mi++) {
        const float kr = mats[mi][0], kb = mats[mi][1];
        for (int gi = 0; gi <= 50; gi++)
            for (int ai = -200; ai <= 200; ai += 8)
                for (int bi = -200; bi <= 200; bi += 8) {
                    const float g = (float)gi / 50.0f, a = (float)ai + 0.5f * (float)mi;
                    const float b = (float)bi - 0.25f * (float)mi;
                    vf_f3 p = ref_keep_luma_bisect(g, a, b, kr, kb);
                    vf_f3 q = vf_keep_luma_rgb(g, a, b, kr, kb);
                    double e = fmax(fabs(p.x - q.x), fmax(fabs(p.y - q.y), fabs(p.z - q.z)));
                    if (!(e <= worst)) {
                        worst = e;
                        wg = g, wa = a, wb = b;
                    }
                }
        for (int i = 0; i < 20000; i++) {
            const float g = (float)urand(), a = (float)rnd(-130, 130), b = (float)rnd(-130, 130);
            vf_f3 p = ref_keep_luma_bisect(g, a, b, kr, kb);
            vf_f3 q = vf_keep_luma_rgb(g, a, b, kr, kb);
            double e = fmax(fabs(p.x - q.x), fmax(fabs(p.y - q.y), fabs(p.z - q.z)));
            if (!(e <= worst)) {
                worst = e;
                wg = g, wa = a, wb = b;
            }
        }
    }
    if (!(worst <= 1e-4))
        fail_msg("keep-luma solver vs 20-step bisection: |dRGB| %.3g at grey %.6g, a %g, b %g",
                 worst, (double)wg, (double)wa, (double)wb);
    /* a = b = 0: the neutral reading, R′ = G′ = B′ */
    for (int gi = 0; gi <= 1000; gi++) {
        const float g = (float)gi / 1000.0f;
        vf_f3 q = vf_keep_luma_rgb(g, 0.0f, 0.0f, 0.2126f, 0.0722f);
        vf_f3 p = ref_keep_luma_bisect(g, 0.0f, 0.0f, 0.2126f, 0.0722f);
        assert_true(fabs(q.x - p.x) <= 1e-5 && fabs(q.y - p.y) <= 1e-5 && fabs(q.z - p.z) <= 1e-5);
    }
    /* NaN in, the bisection's answer out (a NaN grey reads as "never below") */
    vf_f3 n1 = vf_keep_luma_rgb(NAN, 10.0f, 10.0f, 0.2126f, 0.0722f);
    vf_f3 n2 = ref_keep_luma_bisect(NAN, 10.0f, 10.0f, 0.2126f, 0.0722f);
    assert_memory_equal(&n1, &n2, sizeof n1);
    /* Newton runs only below VF_KEEP_LUMA_CHROMA2, where the luma must not decrease with L*
     * for either matrix (scan: chroma step 6, L* step 0.25) */
    for (int mi = 0; mi < 2; mi++)
        for (int ai = -120; ai <= 120; ai += 6)
            for (int bi = -120; bi <= 120; bi += 6) {
                const float a = (float)ai, b = (float)bi;
                if (!(a * a + b * b < VF_KEEP_LUMA_CHROMA2))
                    continue;
                float prev = -1.0f;
                for (int li = 0; li <= 400; li++) {
                    float y = vf_luma(vf_lab_to_rgb(0.25f * (float)li, a, b), mats[mi][0],
                                      mats[mi][1]);
                    if (!(y >= prev - 1e-6f))
                        fail_msg("luma decreases with L* at a %g, b %g, L* %g (Kr %g)",
                                 (double)a, (double)b, 0.25 * li, (double)mats[mi][0]);
                    prev = y > prev ? y : prev;
                }
            }
}

/* ============================== errors ===================================================== */

static void shape_mismatches_are_einval_with_both_shapes(void **state)
{
    (void)state;
    struct vf_backend *be = g_be[0];
    struct vf_error err = {0};
    struct vf_tensor a = {0}, b = {0}, c3 = {0}, sc = {0}, l = {0}, ab = {0}, f2 = {0}, f2x2 = {0};
    ok(vf_tensor_alloc(&a, be, VF_F32, 2, 5, 27, 48, &err), &err);
    ok(vf_tensor_alloc(&b, be, VF_BF16, 2, 5, 27, 49, &err), &err);
    ok(vf_tensor_alloc(&c3, be, VF_F32, 2, 3, 27, 48, &err), &err);
    ok(vf_tensor_alloc(&sc, be, VF_F32, 1, 10, 1, 1, &err), &err);
    ok(vf_tensor_alloc(&l, be, VF_F32, 2, 1, 27, 48, &err), &err);
    ok(vf_tensor_alloc(&ab, be, VF_F32, 2, 2, 27, 48, &err), &err);
    ok(vf_tensor_alloc(&f2, be, VF_F32, 2, 1, 1, 1, &err), &err);
    ok(vf_tensor_alloc(&f2x2, be, VF_F32, 2, 2, 1, 1, &err), &err);

    assert_int_equal(vf_op_act(&a, &b, VF_ACT_RELU, 0, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "2×5×27×48 f32"));
    assert_non_null(strstr(err.msg, "2×5×27×49 bf16"));
    assert_int_equal(vf_op_add(&a, &a, &b, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "2×5×27×48"));
    assert_non_null(strstr(err.msg, "2×5×27×49"));
    assert_int_equal(vf_op_copy(&a, &b, &err), VF_EINVAL);
    assert_int_equal(vf_op_gated_add(&ab, &ab, 128.0f, NULL, &ab, &err), VF_EINVAL);   /* no gate */
    assert_non_null(strstr(err.msg, "one more channel"));
    assert_int_equal(vf_op_gated_add(&c3, &ab, 128.0f, NULL, &l, &err), VF_EINVAL);   /* dst: 1 ch */
    assert_int_equal(vf_op_gated_add(&c3, &ab, 128.0f, &sc, &ab, &err), VF_EINVAL);   /* factor: 1 image */
    assert_non_null(strstr(err.msg, "factor is 1×10×1×1"));
    assert_non_null(strstr(err.msg, "one value per image"));
    assert_int_equal(vf_op_motion_factor(&l, &ab, 1.0f, -1, &f2, &err), VF_EINVAL);   /* b: 2 channels */
    assert_non_null(strstr(err.msg, "one channel"));
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, -1, &sc, &err), VF_EINVAL);    /* dst: 1 × 10 */
    assert_non_null(strstr(err.msg, "dst is 1×10×1×1"));
    struct vf_tensor f2v = vf_tensor_slice(&f2x2, 0, 1);                         /* dst: strided */
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, -1, &f2v, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "dense"));
    assert_int_equal(vf_op_motion_factor(&l, &l, 0.0f, -1, &f2, &err), VF_EINVAL);   /* κ = 0 */
    assert_non_null(strstr(err.msg, "kappa"));
    assert_int_equal(vf_op_motion_factor(&l, &l, 1e-9f, -1, &f2, &err), VF_EINVAL);  /* κ ≈ 0 */
    assert_int_equal(vf_op_motion_factor(&l, &l, NAN, -1, &f2, &err), VF_EINVAL);
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, -1, &f2, &err), VF_OK);       /* and right */
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, -1, NULL, &err), VF_EINVAL);  /* no dst */
    /* per pixel (C.gate_motion_radius): dst n × 1 × h × w, radius at most 16 */
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, 2, &f2, &err), VF_EINVAL);   /* dst: 1 value */
    assert_non_null(strstr(err.msg, "per pixel"));
    struct vf_tensor l2 = {0};
    ok(vf_tensor_alloc(&l2, be, VF_F32, 2, 1, 27, 48, &err), &err);
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, 17, &l2, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "radius must be at most 16"));
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, -1, &l2, &err), VF_EINVAL);  /* per image: 1 value */
    assert_int_equal(vf_op_motion_factor(&l, &l, 1.0f, 3, &l2, &err), VF_OK);
    assert_int_equal(vf_op_gated_add(&c3, &ab, 128.0f, &l2, &ab, &err), VF_OK);      /* a factor per pixel */
    struct vf_tensor lsmall = {0};
    ok(vf_tensor_alloc(&lsmall, be, VF_F32, 2, 1, 27, 47, &err), &err);
    assert_int_equal(vf_op_gated_add(&c3, &ab, 128.0f, &lsmall, &ab, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "per pixel (n × 1 × h × w)"));
    vf_tensor_free(&l2);
    vf_tensor_free(&lsmall);
    assert_int_equal(vf_op_instance_norm(&a, &b, 1e-5f, NULL, NULL, VF_ACT_NONE, 0, NULL, &err),
                     VF_EINVAL);
    assert_int_equal(vf_op_l2norm(&a, &b, true, 1e-6f, &err), VF_EINVAL);
    assert_int_equal(vf_op_resize(&a, &c3, VF_RESIZE_NEAREST, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "2×3×27×48"));
    assert_int_equal(vf_op_act(&a, &a, VF_ACT_PRELU, 0, NULL, &err), VF_EINVAL); /* no slopes */
    assert_int_equal(vf_op_act(&a, &a, VF_ACT_PRELU, 0, &c3, &err), VF_EINVAL); /* wrong count */
    struct vf_tensor v = vf_tensor_slice(&a, 1, 3);
    const struct vf_tensor *srcs[2] = {&c3, &v};
    assert_int_equal(vf_op_concat(srcs, 2, &a, &err), VF_EINVAL); /* 6 channels into 5 */
    assert_non_null(strstr(err.msg, "6 channels"));
    assert_int_equal(vf_op_rgb_to_lab(&a, &c3, NULL, &err), VF_EINVAL);
    assert_int_equal(vf_op_grey_to_l(&c3, &l, NULL, &err), VF_EINVAL);
    assert_int_equal(vf_op_keep_luma(&l, &ab, 0.2126f, 0.0722f, NULL, NULL, &err), VF_EINVAL);
    assert_int_equal(vf_op_keep_luma(&l, &ab, 0.7f, 0.4f, NULL, &ab, &err), VF_EINVAL);
    assert_int_equal(vf_op_keep_luma(&l, &c3, 0.2126f, 0.0722f, NULL, &ab, &err), VF_EINVAL);
    assert_int_equal(vf_op_guided_upsample(&l, &ab, &l, &ab, 2, 1e-3f, &sc, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "scratch"));
    float f[4] = {0}, vv[4] = {0}, s[2], o[4];
    assert_int_equal(vf_op_attention_rows(be, f, 2, 2, 2, 0.0f, vv, 2, s, o, &err), VF_EINVAL);
    assert_int_equal(vf_op_attention_rows(be, f, 2, 2, 1, 0.01f, vv, 2, s, o, &err), VF_EINVAL);
    /* a resize cannot run in place */
    assert_int_equal(vf_op_resize(&a, &a, VF_RESIZE_BILINEAR, &err), VF_EINVAL);
    vf_tensor_free(&a), vf_tensor_free(&b), vf_tensor_free(&c3), vf_tensor_free(&sc);
    vf_tensor_free(&l), vf_tensor_free(&ab), vf_tensor_free(&f2), vf_tensor_free(&f2x2);
}

int main(void)
{
    tu_lcg_seed(0x9e3779b97f4a7c15ull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bf16_conversion_rounds_to_nearest_even),
        cmocka_unit_test(f16_conversion_is_exact_and_rounds_to_nearest_even),
        cmocka_unit_test(act_matches_reference),
        cmocka_unit_test(instance_norm_matches_reference),
        cmocka_unit_test(resize_nearest_matches_reference),
        cmocka_unit_test(resize_bilinear_matches_reference),
        cmocka_unit_test(resize_few_channels_match_spans),
        cmocka_unit_test(add_matches_reference),
        cmocka_unit_test(gated_add_matches_reference),
        cmocka_unit_test(motion_factor_matches_reference),
        cmocka_unit_test(motion_factor_per_pixel_matches_reference),
        cmocka_unit_test(motion_factor_rows_match_windows),
        cmocka_unit_test(concat_and_copy_convert_exactly),
        cmocka_unit_test(l2norm_matches_reference),
        cmocka_unit_test(attention_rows_match_double_loop),
        cmocka_unit_test(warp_refine_recovers_a_shift),
        cmocka_unit_test(warp_refine_is_continuous),
        cmocka_unit_test(warp_refine_temporal),
        cmocka_unit_test(warp_refine_predict),
        cmocka_unit_test(warp_refine_lanes_match_px),
        cmocka_unit_test(refine_min_and_best_match_chains),
        cmocka_unit_test(subpixel_matches_double),
        cmocka_unit_test(warp_refine_subpixel),
        cmocka_unit_test(grey_to_l_matches_reference),
        cmocka_unit_test(rgb_to_lab_known_values_and_reference),
        cmocka_unit_test(lab_to_rgb_round_trip_and_reference),
        cmocka_unit_test(guided_upsample_matches_reference),
        cmocka_unit_test(carry_matches_per_pixel_sums),
        cmocka_unit_test(keep_luma_keeps_the_grey),
        cmocka_unit_test(keep_luma_solver_matches_the_bisection),
        cmocka_unit_test(keep_luma_powf_lanes_match_libm),
        cmocka_unit_test(refine_expf_lanes_match_libm),
        cmocka_unit_test(keep_luma_lanes_match_the_solver),
        cmocka_unit_test(shape_mismatches_are_einval_with_both_shapes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
