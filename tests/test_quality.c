/* tests/test_quality.c: the metrics of `vaefarm eval` (kernels/quality.c, docs/EVAL.md).
 *
 * Reference values come from outside the code under test:
 *   - closed forms: identical images (PSNR = the 100 dB cap, SSIM 1, MSE 0), a constant offset
 *     (MSE = d², PSNR = 10·log10(255²/d²)), SSIM of two flat images ((2xy + C1)/(x² + y² + C1)),
 *     Hasler & Süsstrunk's M of a grey image (0), of a flat colour (0.3·|μ|) and of a two-colour
 *     image (σ and μ by hand), flicker from grey to pure red (CIE Lab of sRGB red, D65:
 *     a = 80.0925, b = 67.2032, a textbook value);
 *   - tests/eval_ref.py synthetic: the same metrics written again in numpy float64 (2-D SSIM
 *     windows, float64 Lab) on two pairs of pseudo-random 23×17 images, values hard-coded below.
 * Tolerances: on R′G′B′ (MSE, PSNR, SSIM, colourfulness), where both sides do float64 on the
 * same integers, 1e-9 relative (seen: ≤ 6e-13); on a, b, where the C side converts in float32
 * (elem.h, the network's own conversion), MSE 1e-6 relative, PSNR 1e-5 dB, SSIM 1e-6, flicker
 * 1e-6 relative (seen: 7e-8, 4e-6 dB, 2e-8, 7e-8); the textbook red: flicker 0.01, ab MSE 0.02.
 * Also: a 16-bit image equal to an 8-bit one × 257 gives the same bits; 1, 2 and 3 threads give
 * the same bits; strides wider than the rows; errors for small frames, mismatched sizes and
 * depths; the film summary (means, worst frames, one-frame flicker); shots (each shot's
 * metrics are its frames' as a film of their own, the film's do not change with cuts).
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

#include "kernels/kernels.h"

#define W 23
#define H 17
#define PAD 7 /* stride = width + PAD samples */

/* An owned planar image. */
struct img {
    struct vf_rgb_image v;
    void *buf;
};

static struct img img_new(int w, int h, int bits)
{
    struct img m;
    size_t bps = bits > 8 ? 2 : 1;
    m.v.width = w;
    m.v.height = h;
    m.v.bits = bits;
    m.v.stride = (ptrdiff_t)((size_t)(w + PAD) * bps);
    m.buf = calloc(3, (size_t)m.v.stride * (size_t)h);
    assert_non_null(m.buf);
    for (int c = 0; c < 3; c++)
        m.v.plane[c] = (uint8_t *)m.buf + (size_t)c * (size_t)m.v.stride * (size_t)h;
    return m;
}

static void img_set(struct img *m, int c, int y, int x, unsigned v)
{
    uint8_t *row = (uint8_t *)m->v.plane[c] + (ptrdiff_t)y * m->v.stride;
    if (m->v.bits == 8) {
        row[x] = (uint8_t)v;
    } else {
        uint16_t s = (uint16_t)v;
        memcpy(row + 2 * (size_t)x, &s, sizeof s);
    }
}

static unsigned img_get(const struct img *m, int c, int y, int x)
{
    const uint8_t *row = (const uint8_t *)m->v.plane[c] + (ptrdiff_t)y * m->v.stride;
    if (m->v.bits == 8)
        return row[x];
    uint16_t s;
    memcpy(&s, row + 2 * (size_t)x, sizeof s);
    return s;
}

static void img_fill(struct img *m, unsigned r, unsigned g, unsigned b)
{
    for (int y = 0; y < m->v.height; y++)
        for (int x = 0; x < m->v.width; x++) {
            img_set(m, 0, y, x, r);
            img_set(m, 1, y, x, g);
            img_set(m, 2, y, x, b);
        }
}

/* tests/eval_ref.py's lcg_image: x ← x·1103515245 + 12345 (mod 2³¹), sample (x >> 16) & 255,
 * planes R, G, B, row by row. */
static struct img lcg_image(uint64_t seed)
{
    struct img m = img_new(W, H, 8);
    uint64_t x = seed;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int i = 0; i < W; i++) {
                x = (x * 1103515245u + 12345u) % (1u << 31);
                img_set(&m, c, y, i, (unsigned)((x >> 16) & 255));
            }
    return m;
}

/* The two frame pairs of eval_ref.py's synthetic(). */
static void synthetic_pairs(struct img t[2], struct img o[2])
{
    t[0] = lcg_image(1);
    struct img noise = lcg_image(2);
    o[0] = img_new(W, H, 8);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double v = nearbyint(0.75 * img_get(&t[0], c, y, x) + 0.25 * img_get(&noise, c, y, x));
                img_set(&o[0], c, y, x, (unsigned)(v < 0 ? 0 : v > 255 ? 255 : v));
            }
    free(noise.buf);
    t[1] = lcg_image(3);
    o[1] = img_new(W, H, 8);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                unsigned v = img_get(&t[1], c, y, x) + 9;
                img_set(&o[1], c, y, x, v > 255 ? 255 : v);
            }
}

static void run_pairs(int threads, int n, struct img *t, struct img *o,
                      struct vf_quality_frame *f, struct vf_quality_summary *s)
{
    struct vf_quality *q = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_quality_create(&q, t[0].v.width, t[0].v.height, threads, &err), VF_OK);
    for (int i = 0; i < n; i++)
        assert_int_equal(vf_quality_add(q, &t[i].v, &o[i].v, &f[i], &err), VF_OK);
    if (s)
        vf_quality_summarize(q, s);
    vf_quality_destroy(&q);
    assert_null(q);
}

static void near_rel(double got, double want, double tol, const char *what)
{
    double d = fabs(got - want), scale = fabs(want) > 1 ? fabs(want) : 1;
    if (!(d <= tol * scale)) {
        print_error("%s: got %.12g, want %.12g (tolerance %g relative)\n", what, got, want, tol);
        fail();
    }
}

static void near_abs(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("%s: got %.12g, want %.12g (tolerance %g)\n", what, got, want, tol);
        fail();
    }
}

/* ---- against tests/eval_ref.py synthetic ---------------------------------------------------- */

static void test_reference_values(void **state)
{
    (void)state;
    /* tests/eval_ref.py synthetic (numpy float64) */
    static const struct {
        double mse_rgb, psnr_rgb, ssim_rgb, mse_ab, psnr_ab, ssim_ab, col_t, col_o, flk_t, flk_o;
    } ref[2] = {
        {651.554134697, 19.9912985575, 0.924668701269, 218.412715356, 24.7720201249,
         0.811298999005, 139.929036587, 110.011849308, NAN, NAN},
        {78.7442455243, 29.1686153464, 0.9977305183, 0.942270059724, 48.4230453883,
         0.998142106907, 139.823868605, 139.216819883, 52.3213206575, 47.5631767477},
    };
    struct img t[2], o[2];
    synthetic_pairs(t, o);
    struct vf_quality_frame f[2];
    struct vf_quality_summary s;
    run_pairs(2, 2, t, o, f, &s);
    for (int i = 0; i < 2; i++) {
        /* the reference prints 12 significant digits */
        near_rel(f[i].mse_rgb, ref[i].mse_rgb, 1e-9, "mse_rgb");
        near_rel(f[i].psnr_rgb, ref[i].psnr_rgb, 1e-9, "psnr_rgb");
        near_rel(f[i].ssim_rgb, ref[i].ssim_rgb, 1e-9, "ssim_rgb");
        near_rel(f[i].colourfulness_truth, ref[i].col_t, 1e-9, "colourfulness truth");
        near_rel(f[i].colourfulness_output, ref[i].col_o, 1e-9, "colourfulness output");
        near_rel(f[i].mse_ab, ref[i].mse_ab, 1e-6, "mse_ab");
        near_abs(f[i].psnr_ab, ref[i].psnr_ab, 1e-5, "psnr_ab");
        near_abs(f[i].ssim_ab, ref[i].ssim_ab, 1e-6, "ssim_ab");
        if (i == 0) {
            assert_true(isnan(f[i].flicker_truth) && isnan(f[i].flicker_output));
        } else {
            near_rel(f[i].flicker_truth, ref[i].flk_t, 1e-6, "flicker truth");
            near_rel(f[i].flicker_output, ref[i].flk_o, 1e-6, "flicker output");
        }
    }
    /* the summary: means over frames, worst frames, pooled PSNR, flicker over frame 1 only */
    assert_int_equal(s.frames, 2);
    near_rel(s.psnr_rgb.mean, (ref[0].psnr_rgb + ref[1].psnr_rgb) / 2, 1e-9, "psnr mean");
    near_rel(s.psnr_rgb.min, ref[0].psnr_rgb, 1e-9, "psnr min");
    assert_int_equal(s.psnr_rgb.min_frame, 0);
    assert_int_equal(s.psnr_rgb.max_frame, 1);
    near_rel(s.ssim_ab.mean, (ref[0].ssim_ab + ref[1].ssim_ab) / 2, 1e-6, "ssim_ab mean");
    assert_int_equal(s.ssim_ab.min_frame, 0);
    near_rel(s.psnr_rgb_pooled,
             10 * log10(255.0 * 255.0 / ((ref[0].mse_rgb + ref[1].mse_rgb) / 2)), 1e-9,
             "pooled psnr");
    near_rel(s.colourfulness_output.mean, (ref[0].col_o + ref[1].col_o) / 2, 1e-9, "M mean");
    assert_int_equal(s.flicker_output.n, 1);
    assert_int_equal(s.flicker_output.max_frame, 1);
    near_rel(s.flicker_output.mean, ref[1].flk_o, 1e-6, "flicker mean");
    for (int i = 0; i < 2; i++) {
        free(t[i].buf);
        free(o[i].buf);
    }
}

/* ---- closed forms ------------------------------------------------------------------------- */

static void test_identical(void **state)
{
    (void)state;
    struct img t[2], o[2];
    synthetic_pairs(t, o);
    struct img same[2] = {t[0], t[0]};   /* the same frame twice: no flicker either */
    struct vf_quality_frame f[2];
    struct vf_quality_summary s;
    run_pairs(1, 2, same, same, f, &s);
    for (int i = 0; i < 2; i++) {
        assert_true(f[i].mse_rgb == 0 && f[i].mse_ab == 0);
        assert_true(f[i].psnr_rgb == VF_QUALITY_PSNR_CAP && f[i].psnr_ab == VF_QUALITY_PSNR_CAP);
        near_abs(f[i].ssim_rgb, 1, 1e-12, "ssim_rgb identical");
        near_abs(f[i].ssim_ab, 1, 1e-12, "ssim_ab identical");
        assert_true(f[i].colourfulness_output == f[i].colourfulness_truth);
    }
    assert_true(f[1].flicker_output == 0 && f[1].flicker_truth == 0);
    assert_true(s.psnr_rgb.mean == VF_QUALITY_PSNR_CAP && s.psnr_rgb_pooled == VF_QUALITY_PSNR_CAP);
    for (int i = 0; i < 2; i++) {
        free(t[i].buf);
        free(o[i].buf);
    }
}

static void test_offset_and_flat(void **state)
{
    (void)state;
    /* a constant offset of 5 on every sample, no clipping: MSE 25 */
    struct img t = lcg_image(7), o = img_new(W, H, 8);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                unsigned v = 20 + img_get(&t, c, y, x) * 180 / 255;
                img_set(&t, c, y, x, v);
                img_set(&o, c, y, x, v + 5);
            }
    struct vf_quality_frame f;
    run_pairs(3, 1, &t, &o, &f, NULL);
    near_rel(f.mse_rgb, 25, 1e-12, "offset mse");
    near_rel(f.psnr_rgb, 10 * log10(255.0 * 255.0 / 25), 1e-12, "offset psnr");
    assert_true(f.ssim_rgb < 1 && f.ssim_rgb > 0.99);

    /* two flat images 100 and 120: SSIM = (2·100·120 + C1)/(100² + 120² + C1) */
    img_fill(&t, 100, 100, 100);
    img_fill(&o, 120, 120, 120);
    run_pairs(1, 1, &t, &o, &f, NULL);
    const double c1 = (0.01 * 255) * (0.01 * 255);
    near_rel(f.ssim_rgb, (2 * 100.0 * 120 + c1) / (100.0 * 100 + 120.0 * 120 + c1), 1e-9,
             "flat ssim");
    near_rel(f.mse_rgb, 400, 1e-12, "flat mse");
    /* grey: colourfulness 0, a and b ≈ 0 */
    assert_true(f.colourfulness_truth == 0 && f.colourfulness_output == 0);
    near_abs(f.mse_ab, 0, 1e-6, "grey ab");
    free(t.buf);
    free(o.buf);
}

static void test_colourfulness(void **state)
{
    (void)state;
    struct img t = img_new(W + 1, H, 8), o = img_new(W + 1, H, 8); /* an even width */
    /* flat colour (200, 100, 50): σ = 0, μ_rg = 100, μ_yb = 150 − 50 = 100 */
    img_fill(&t, 200, 100, 50);
    /* left half red, right half blue: rg ∈ {255, 0}, yb ∈ {127.5, −255} */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W + 1; x++) {
            bool left = x < (W + 1) / 2;
            img_set(&o, 0, y, x, left ? 255 : 0);
            img_set(&o, 1, y, x, 0);
            img_set(&o, 2, y, x, left ? 0 : 255);
        }
    struct vf_quality_frame f;
    run_pairs(2, 1, &t, &o, &f, NULL);
    near_rel(f.colourfulness_truth, 0.3 * sqrt(100.0 * 100 + 100.0 * 100), 1e-12, "flat M");
    const double srg = 127.5, syb = 191.25, mrg = 127.5, myb = -63.75;
    near_rel(f.colourfulness_output, sqrt(srg * srg + syb * syb) + 0.3 * sqrt(mrg * mrg + myb * myb),
             1e-12, "two-colour M");
    free(t.buf);
    free(o.buf);
}

static void test_flicker_red(void **state)
{
    (void)state;
    struct img grey = img_new(W, H, 8), red = img_new(W, H, 8);
    img_fill(&grey, 128, 128, 128);
    img_fill(&red, 255, 0, 0);
    struct img t[2] = {grey, grey}, o[2] = {grey, red};
    struct vf_quality_frame f[2];
    run_pairs(1, 2, t, o, f, NULL);
    near_abs(f[1].flicker_truth, 0, 1e-4, "static grey");
    /* CIE Lab of sRGB red: (53.2408, 80.0925, 67.2032); grey: a = b = 0 */
    near_abs(f[1].flicker_output, (80.0925 + 67.2032) / 2, 0.01, "grey to red");
    near_abs(f[1].mse_ab, (80.0925 * 80.0925 + 67.2032 * 67.2032) / 2, 0.02, "red ab mse");
    free(grey.buf);
    free(red.buf);
}

/* ---- depths, threads, strides ------------------------------------------------------------ */

static struct img to16(const struct img *m)
{
    struct img d = img_new(m->v.width, m->v.height, 16);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < m->v.height; y++)
            for (int x = 0; x < m->v.width; x++)
                img_set(&d, c, y, x, img_get(m, c, y, x) * 257u);
    return d;
}

static void frames_equal(const struct vf_quality_frame *a, const struct vf_quality_frame *b,
                         int n)
{
    for (int i = 0; i < n; i++) {
        const double *x = &a[i].mse_rgb, *y = &b[i].mse_rgb;
        for (size_t k = 0; k < sizeof a[i] / sizeof(double); k++)
            if (!(x[k] == y[k] || (isnan(x[k]) && isnan(y[k])))) {
                print_error("frame %d field %zu: %.17g != %.17g\n", i, k, x[k], y[k]);
                fail();
            }
    }
}

static void test_depth_and_threads(void **state)
{
    (void)state;
    struct img t[2], o[2];
    synthetic_pairs(t, o);
    struct vf_quality_frame f1[2], f2[2], f3[2], fd[2], fm[2];
    run_pairs(1, 2, t, o, f1, NULL);
    run_pairs(2, 2, t, o, f2, NULL);
    run_pairs(3, 2, t, o, f3, NULL);
    frames_equal(f1, f2, 2);
    frames_equal(f1, f3, 2);
    /* 16-bit samples v·257 are the same colours: the same bits */
    struct img t16[2] = {to16(&t[0]), to16(&t[1])}, o16[2] = {to16(&o[0]), to16(&o[1])};
    run_pairs(2, 2, t16, o16, fd, NULL);
    frames_equal(f1, fd, 2);
    /* mixed: an 8-bit truth against a 16-bit output */
    run_pairs(2, 2, t, o16, fm, NULL);
    frames_equal(f1, fm, 2);
    for (int i = 0; i < 2; i++) {
        free(t[i].buf);
        free(o[i].buf);
        free(t16[i].buf);
        free(o16[i].buf);
    }
}

/* ---- errors and summary edge cases --------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    struct vf_quality *q = NULL;
    struct vf_error err = {0};
    assert_int_equal(vf_quality_create(&q, 10, 100, 0, &err), VF_EUNSUPPORTED);
    assert_null(q);
    assert_non_null(strstr(err.msg, "11x11"));
    assert_int_equal(vf_quality_create(&q, 100, 10, 0, &err), VF_EUNSUPPORTED);
    assert_int_equal(vf_quality_create(&q, 11, 11, -1, &err), VF_EINVAL);

    assert_int_equal(vf_quality_create(&q, W, H, 0, &err), VF_OK);
    struct vf_quality_summary s;
    vf_quality_summarize(q, &s);
    assert_int_equal(s.frames, 0);
    assert_true(isnan(s.psnr_rgb.mean) && s.psnr_rgb.min_frame == -1);
    struct img a = img_new(W, H, 8), b = img_new(W + 1, H, 8);
    assert_int_equal(vf_quality_add(q, &a.v, &b.v, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "output"));
    assert_int_equal(vf_quality_add(q, &b.v, &a.v, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "truth"));
    struct vf_rgb_image bad = a.v;
    bad.bits = 7;
    assert_int_equal(vf_quality_add(q, &a.v, &bad, NULL, &err), VF_EINVAL);
    bad = a.v;
    bad.stride = W - 1;
    assert_int_equal(vf_quality_add(q, &bad, &a.v, NULL, &err), VF_EINVAL);
    /* a failed add counts nothing; one good frame: no flicker (n = 0, NAN, frame −1) */
    assert_int_equal(vf_quality_add(q, &a.v, &a.v, NULL, &err), VF_OK);
    vf_quality_summarize(q, &s);
    assert_int_equal(s.frames, 1);
    assert_int_equal(s.flicker_output.n, 0);
    assert_true(isnan(s.flicker_output.mean) && s.flicker_output.max_frame == -1);
    assert_true(s.psnr_rgb.mean == VF_QUALITY_PSNR_CAP);
    vf_quality_destroy(&q);
    vf_quality_destroy(&q); /* NULL-safe */
    free(a.buf);
    free(b.buf);
}

/* ---- shots ------------------------------------------------------------------------------- */

static void stat_equal(const struct vf_quality_stat *a, const struct vf_quality_stat *b,
                       int64_t frame_offset, const char *what)
{
    if (!((a->mean == b->mean || (isnan(a->mean) && isnan(b->mean))) && a->n == b->n &&
          (a->n == 0 || (a->min == b->min && a->max == b->max &&
                         a->min_frame == b->min_frame + frame_offset &&
                         a->max_frame == b->max_frame + frame_offset)))) {
        print_error("%s: mean %.17g n %lld min %.17g@%lld against mean %.17g n %lld min "
                    "%.17g@%lld (+%lld)\n", what, a->mean, (long long)a->n, a->min,
                    (long long)a->min_frame, b->mean, (long long)b->n, b->min,
                    (long long)b->min_frame, (long long)frame_offset);
        fail();
    }
}

/* Every metric of a, against b's with its frame indices moved by frame_offset. */
static void summary_equal(const struct vf_quality_summary *a, const struct vf_quality_summary *b,
                          int64_t frame_offset)
{
    assert_int_equal(a->frames, b->frames);
    stat_equal(&a->psnr_rgb, &b->psnr_rgb, frame_offset, "psnr_rgb");
    stat_equal(&a->ssim_rgb, &b->ssim_rgb, frame_offset, "ssim_rgb");
    stat_equal(&a->mse_rgb, &b->mse_rgb, frame_offset, "mse_rgb");
    stat_equal(&a->psnr_ab, &b->psnr_ab, frame_offset, "psnr_ab");
    stat_equal(&a->ssim_ab, &b->ssim_ab, frame_offset, "ssim_ab");
    stat_equal(&a->mse_ab, &b->mse_ab, frame_offset, "mse_ab");
    stat_equal(&a->colourfulness_truth, &b->colourfulness_truth, frame_offset, "col_t");
    stat_equal(&a->colourfulness_output, &b->colourfulness_output, frame_offset, "col_o");
    stat_equal(&a->flicker_truth, &b->flicker_truth, frame_offset, "flicker_t");
    stat_equal(&a->flicker_output, &b->flicker_output, frame_offset, "flicker_o");
    assert_true(a->psnr_rgb_pooled == b->psnr_rgb_pooled);
    assert_true(a->psnr_ab_pooled == b->psnr_ab_pooled);
}

/* A film of five frame pairs cut before frames 2 and 4: each shot's metrics are those of its
 * frames evaluated as a film of their own (the flicker across the cut left out, frame indices
 * the film's); the film's own metrics do not change with cuts, and its flicker within shots is
 * the mean over the frames that are not a shot's first. */
static void test_shots(void **state)
{
    (void)state;
    struct img t2[2], o2[2];
    synthetic_pairs(t2, o2);
    struct img t[5] = {t2[0], t2[1], t2[0], t2[1], t2[1]};
    struct img o[5] = {o2[0], o2[1], o2[1], o2[0], o2[1]};
    struct vf_error err = {0};
    struct vf_quality *q = NULL, *plain = NULL;
    struct vf_quality_frame f[5];
    assert_int_equal(vf_quality_create(&q, W, H, 2, &err), VF_OK);
    assert_int_equal(vf_quality_create(&plain, W, H, 2, &err), VF_OK);
    assert_int_equal(vf_quality_shots(q), 0);
    vf_quality_cut(q);   /* before the first frame: nothing */
    for (int i = 0; i < 5; i++) {
        if (i == 2 || i == 4) {
            vf_quality_cut(q);
            vf_quality_cut(q);   /* twice before one frame: one cut */
        }
        assert_int_equal(vf_quality_add(q, &t[i].v, &o[i].v, &f[i], &err), VF_OK);
        assert_int_equal(vf_quality_add(plain, &t[i].v, &o[i].v, NULL, &err), VF_OK);
    }
    assert_int_equal(vf_quality_shots(q), 3);
    struct vf_quality_summary film, film_plain, shot, alone;
    vf_quality_summarize(q, &film);
    vf_quality_summarize(plain, &film_plain);
    summary_equal(&film, &film_plain, 0);
    stat_equal(&film_plain.flicker_output_in_shots, &film_plain.flicker_output, 0,
               "no cuts: in shots = all");
    assert_int_equal(film.flicker_output_in_shots.n, 2);   /* frames 1 and 3 */
    near_rel(film.flicker_output_in_shots.mean, (f[1].flicker_output + f[3].flicker_output) / 2,
             1e-15, "output flicker within shots");
    near_rel(film.flicker_truth_in_shots.mean, (f[1].flicker_truth + f[3].flicker_truth) / 2,
             1e-15, "truth flicker within shots");
    assert_true(film.flicker_output_in_shots.mean != film.flicker_output.mean);
    const int first[3] = {0, 2, 4}, n[3] = {2, 2, 1};
    for (int k = 0; k < 3; k++) {
        struct vf_quality_frame g[2];
        run_pairs(1, n[k], t + first[k], o + first[k], g, &alone);
        vf_quality_summarize_shot(q, (size_t)k, &shot);
        assert_int_equal(shot.first_frame, first[k]);
        summary_equal(&shot, &alone, first[k]);
        stat_equal(&shot.flicker_output_in_shots, &shot.flicker_output, 0, "shot: in shots");
    }
    vf_quality_summarize_shot(q, 3, &shot);   /* past the last: an empty span */
    assert_int_equal(shot.frames, 0);
    assert_true(isnan(shot.psnr_rgb.mean));
    vf_quality_destroy(&q);
    vf_quality_destroy(&plain);
    for (int i = 0; i < 2; i++) {
        free(t2[i].buf);
        free(o2[i].buf);
    }
}

static void test_psnr(void **state)
{
    (void)state;
    assert_true(vf_quality_psnr(0, 255) == VF_QUALITY_PSNR_CAP);
    assert_true(vf_quality_psnr(1e-30, 255) == VF_QUALITY_PSNR_CAP);
    near_rel(vf_quality_psnr(1, 255), 20 * log10(255.0), 1e-12, "psnr mse 1");
    near_rel(vf_quality_psnr(256.0 * 256.0, 256), 0, 1e-12, "psnr mse = range²");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_values),
        cmocka_unit_test(test_identical),
        cmocka_unit_test(test_offset_and_flat),
        cmocka_unit_test(test_colourfulness),
        cmocka_unit_test(test_flicker_red),
        cmocka_unit_test(test_depth_and_threads),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_shots),
        cmocka_unit_test(test_psnr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
