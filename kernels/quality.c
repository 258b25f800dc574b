/*
 * kernels/quality.c: the image-quality metrics of `vaefarm eval` (docs/EVAL.md is the
 * specification; kernels.h the interface). Host memory, plain C, OpenMP over rows.
 *
 * Per frame pair, two parallel passes over rows:
 *   1. every pixel: squared R′G′B′ and ab differences, a and b of both images (elem.h's
 *      vf_rgb_to_lab, the network's own conversion) into this frame's ab planes, the
 *      colourfulness sums and the flicker sums against the previous frame's ab planes;
 *   2. every valid SSIM row: 5 channels (R′, G′, B′, a, b), the separable 11×11 Gaussian window
 *      applied vertically (11 rows into 5 column sums) then horizontally.
 * Each row writes its own partial sums (double); they are added in row order after the loop,
 * so the results do not depend on the thread count. Memory: the a, b planes of the current
 * and the previous frame of both films (8 float planes) and O(width) scratch per thread.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/elem.h"
#include "kernels/internal.h"
#include "kernels/kernels.h"

/* ssim_row, the hot loop, is VF_SIMD_CLONES (kernels/internal.h): the same bits on both builds. */

#define WIN VF_QUALITY_SSIM_WIN
#define SSIM_SIGMA 1.5
#define SSIM_K1 0.01
#define SSIM_K2 0.03

/* Pass 1's per-row sums. */
enum {
    S_SSE_RGB,              /* Σ (t − o)² over R′, G′, B′ (8-bit scale) */
    S_SSE_AB,               /* Σ (t − o)² over a, b */
    S_RG_T, S_YB_T, S_RG2_T, S_YB2_T,   /* truth: Σ rg, Σ yb, Σ rg², Σ yb² */
    S_RG_O, S_YB_O, S_RG2_O, S_YB2_O,   /* output */
    S_FLK_T, S_FLK_O,       /* Σ |Δa| + |Δb| against the previous frame */
    NSUM
};

/* The 5 SSIM channels. */
enum { C_R, C_G, C_B, C_A, C_BB, NCHAN };

/* Pass 2's scratch per thread, in rows of w doubles: 2 input rows, 5 column sums, 5 filtered. */
#define SCRATCH_ROWS 12

struct acc {
    double sum, min, max;
    int64_t min_at, max_at, n;
};

/* Every metric over a span of frames: the film, or one shot. */
struct accs {
    int64_t first;          /* the span's first frame */
    struct acc psnr_rgb, ssim_rgb, mse_rgb, psnr_ab, ssim_ab, mse_ab;
    struct acc col_t, col_o, flk_t, flk_o;
};

struct vf_quality {
    int w, h, threads;
    double g[WIN];          /* 1-D Gaussian, Σ = 1 */
    float *ab[2][2];        /* [0 truth, 1 output][0 current, 1 previous]: a plane then b plane */
    int64_t frames;
    double *rows;           /* h × NSUM (pass 1) */
    double *ssim_rows;      /* (h − WIN + 1) × NCHAN (pass 2) */
    double *scratch;        /* threads × SCRATCH_ROWS·w (pass 2) */
    /* Per sample value v of the truth [0] and the output [1], for the depth lut_bits[i]:
     * lin: vf_srgb_lin(v / (2^bits − 1)) (float, as vf_rgb_to_lab computes it);
     * v8: v·255 / (2^bits − 1) (double: exactly v for 8 bits, and for v·257 at 16 bits). */
    float *lin[2];
    double *v8[2];
    int lut_bits[2];        /* 0: not made yet */
    struct accs film;
    struct acc flk_t_in, flk_o_in;  /* flicker of the frames that are not a shot's first */
    struct accs *shots;     /* n_shots of them (cap_shots allocated); the last is open */
    size_t n_shots, cap_shots;
    bool cut;               /* vf_quality_cut: the next frame starts a new shot */
};

double vf_quality_psnr(double mse, double range)
{
    if (!(mse > 0))
        return VF_QUALITY_PSNR_CAP;
    double p = 10.0 * log10(range * range / mse);
    return p > VF_QUALITY_PSNR_CAP ? VF_QUALITY_PSNR_CAP : p;
}

static void acc_init(struct acc *a)
{
    memset(a, 0, sizeof *a);
    a->min_at = a->max_at = -1;
}

static void acc_add(struct acc *a, double v, int64_t frame)
{
    if (a->n == 0 || v < a->min) {
        a->min = v;
        a->min_at = frame;
    }
    if (a->n == 0 || v > a->max) {
        a->max = v;
        a->max_at = frame;
    }
    a->sum += v;
    a->n++;
}

static struct vf_quality_stat acc_stat(const struct acc *a)
{
    struct vf_quality_stat s = {NAN, NAN, NAN, -1, -1, 0};
    if (a->n > 0) {
        s.mean = a->sum / (double)a->n;
        s.min = a->min;
        s.max = a->max;
        s.min_frame = a->min_at;
        s.max_frame = a->max_at;
        s.n = a->n;
    }
    return s;
}

static void accs_init(struct accs *a, int64_t first)
{
    struct acc *all[] = {&a->psnr_rgb, &a->ssim_rgb, &a->mse_rgb, &a->psnr_ab, &a->ssim_ab,
                         &a->mse_ab,   &a->col_t,    &a->col_o,   &a->flk_t,   &a->flk_o};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        acc_init(all[i]);
    a->first = first;
}

/* Frame i's metrics; its flicker only where `flicker` (a previous frame in the span). */
static void accs_add(struct accs *a, const struct vf_quality_frame *f, int64_t i, bool flicker)
{
    acc_add(&a->psnr_rgb, f->psnr_rgb, i);
    acc_add(&a->ssim_rgb, f->ssim_rgb, i);
    acc_add(&a->mse_rgb, f->mse_rgb, i);
    acc_add(&a->psnr_ab, f->psnr_ab, i);
    acc_add(&a->ssim_ab, f->ssim_ab, i);
    acc_add(&a->mse_ab, f->mse_ab, i);
    acc_add(&a->col_t, f->colourfulness_truth, i);
    acc_add(&a->col_o, f->colourfulness_output, i);
    if (flicker) {
        acc_add(&a->flk_t, f->flicker_truth, i);
        acc_add(&a->flk_o, f->flicker_output, i);
    }
}

static void accs_summary(const struct accs *a, struct vf_quality_summary *out)
{
    memset(out, 0, sizeof *out);
    out->first_frame = a->first;
    out->frames = a->psnr_rgb.n;
    out->psnr_rgb = acc_stat(&a->psnr_rgb);
    out->ssim_rgb = acc_stat(&a->ssim_rgb);
    out->mse_rgb = acc_stat(&a->mse_rgb);
    out->psnr_ab = acc_stat(&a->psnr_ab);
    out->ssim_ab = acc_stat(&a->ssim_ab);
    out->mse_ab = acc_stat(&a->mse_ab);
    out->psnr_rgb_pooled = out->frames ? vf_quality_psnr(out->mse_rgb.mean, VF_QUALITY_RGB_RANGE) : NAN;
    out->psnr_ab_pooled = out->frames ? vf_quality_psnr(out->mse_ab.mean, VF_QUALITY_AB_RANGE) : NAN;
    out->colourfulness_truth = acc_stat(&a->col_t);
    out->colourfulness_output = acc_stat(&a->col_o);
    out->flicker_truth = out->flicker_truth_in_shots = acc_stat(&a->flk_t);
    out->flicker_output = out->flicker_output_in_shots = acc_stat(&a->flk_o);
}

int vf_quality_create(struct vf_quality **out, int width, int height, int threads,
                      struct vf_error *err)
{
    *out = NULL;
    if (width < WIN || height < WIN)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "frames of %dx%d are smaller than SSIM's %dx%d window; eval needs "
                            "frames at least %d pixels wide and high",
                            width, height, WIN, WIN, WIN);
    if (threads < 0)
        return vf_error_set(err, VF_EINVAL, "threads must be 0 (all cores) or more, not %d",
                            threads);
    struct vf_quality *q = vf_calloc(1, sizeof *q, err);
    if (!q)
        return VF_ENOMEM;
    q->w = width;
    q->h = height;
    q->threads = threads ? threads : omp_get_max_threads();
    if (q->threads < 1)
        q->threads = 1;
    double gs = 0;
    for (int k = 0; k < WIN; k++) {
        double d = k - (WIN - 1) / 2;
        q->g[k] = exp(-d * d / (2.0 * SSIM_SIGMA * SSIM_SIGMA));
        gs += q->g[k];
    }
    for (int k = 0; k < WIN; k++)
        q->g[k] /= gs;
    size_t px = (size_t)width * (size_t)height;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (!(q->ab[i][j] = vf_calloc(2 * px, sizeof(float), err)))
                goto fail;
    if (!(q->rows = vf_calloc((size_t)height * NSUM, sizeof(double), err)) ||
        !(q->ssim_rows = vf_calloc((size_t)(height - WIN + 1) * NCHAN, sizeof(double), err)) ||
        !(q->scratch = vf_calloc((size_t)q->threads * SCRATCH_ROWS, (size_t)width * sizeof(double),
                                 err)) ||
        !(q->lin[0] = vf_calloc(65536, sizeof(float), err)) ||
        !(q->lin[1] = vf_calloc(65536, sizeof(float), err)) ||
        !(q->v8[0] = vf_calloc(65536, sizeof(double), err)) ||
        !(q->v8[1] = vf_calloc(65536, sizeof(double), err)))
        goto fail;
    accs_init(&q->film, 0);
    acc_init(&q->flk_t_in);
    acc_init(&q->flk_o_in);
    *out = q;
    return VF_OK;
fail:
    vf_quality_destroy(&q);
    return VF_ENOMEM;
}

void vf_quality_destroy(struct vf_quality **qp)
{
    if (!qp || !*qp)
        return;
    struct vf_quality *q = *qp;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            free(q->ab[i][j]);
    free(q->shots);
    free(q->rows);
    free(q->ssim_rows);
    free(q->scratch);
    for (int i = 0; i < 2; i++) {
        free(q->lin[i]);
        free(q->v8[i]);
    }
    free(q);
    *qp = NULL;
}

static int check_image(const struct vf_quality *q, const struct vf_rgb_image *im,
                       const char *which, struct vf_error *err)
{
    if (im->width != q->w || im->height != q->h)
        return vf_error_set(err, VF_EINVAL, "the %s frame is %dx%d, not %dx%d like the others",
                            which, im->width, im->height, q->w, q->h);
    if (im->bits < 8 || im->bits > 16)
        return vf_error_set(err, VF_EINVAL, "the %s frame has %d-bit samples (8..16 only)",
                            which, im->bits);
    size_t bps = im->bits > 8 ? 2 : 1;
    if (im->stride < (ptrdiff_t)(bps * (size_t)q->w) || !im->plane[0] || !im->plane[1] ||
        !im->plane[2])
        return vf_error_set(err, VF_EINVAL, "the %s frame's planes or stride are invalid", which);
    return VF_OK;
}

/* Sample x of row y of plane c: its integer value. */
static inline unsigned sample(const struct vf_rgb_image *im, int c, int y, int x)
{
    const uint8_t *row = (const uint8_t *)im->plane[c] + (ptrdiff_t)y * im->stride;
    if (im->bits == 8)
        return row[x];
    uint16_t v;
    memcpy(&v, row + 2 * (size_t)x, sizeof v);
    return v;
}

/* One channel as SSIM reads it: an image plane (8-bit scale) or an a/b plane. */
struct chan {
    const struct vf_rgb_image *im; /* NULL: f */
    int plane;
    const double *v8;              /* im's sample → 8-bit scale table */
    const float *f;
    int w;
};

static void load_row(const struct chan *c, int y, double *dst)
{
    if (!c->im) {
        const float *r = c->f + (size_t)y * (size_t)c->w;
        for (int x = 0; x < c->w; x++)
            dst[x] = r[x];
        return;
    }
    const struct vf_rgb_image *im = c->im;
    const uint8_t *row = (const uint8_t *)im->plane[c->plane] + (ptrdiff_t)y * im->stride;
    if (im->bits == 8) {
        for (int x = 0; x < c->w; x++)
            dst[x] = row[x];
        return;
    }
    for (int x = 0; x < c->w; x++) {
        uint16_t v;
        memcpy(&v, row + 2 * (size_t)x, sizeof v);
        dst[x] = c->v8[v];
    }
}

/* Σ over the valid columns of output row r of the SSIM map of x against y (data range L).
 * Every loop runs over columns, so that it vectorises. */
VF_SIMD_CLONES
static double ssim_row(const struct chan *cx, const struct chan *cy, int r, double L,
                       const double *g, double *scratch)
{
    const int w = cx->w, ow = w - WIN + 1;
    double *tx = scratch, *ty = tx + w;
    double *m[5], *u[5];   /* column sums of x, y, x², y², xy; then filtered along rows */
    for (int k = 0; k < 5; k++) {
        m[k] = ty + (size_t)(1 + k) * (size_t)w;
        u[k] = ty + (size_t)(6 + k) * (size_t)w;
    }
    memset(m[0], 0, 10 * (size_t)w * sizeof(double));
    for (int k = 0; k < WIN; k++) {
        load_row(cx, r + k, tx);
        load_row(cy, r + k, ty);
        const double gk = g[k];
        double *restrict m0 = m[0], *restrict m1 = m[1], *restrict m2 = m[2],
                         *restrict m3 = m[3], *restrict m4 = m[4];
        for (int j = 0; j < w; j++) {
            const double x = tx[j], y = ty[j];
            m0[j] += gk * x;
            m1[j] += gk * y;
            m2[j] += gk * x * x;
            m3[j] += gk * y * y;
            m4[j] += gk * x * y;
        }
    }
    for (int q = 0; q < 5; q++) {
        double *restrict uq = u[q];
        const double *restrict mq = m[q];
        for (int k = 0; k < WIN; k++) {
            const double gk = g[k];
            for (int i = 0; i < ow; i++)
                uq[i] += gk * mq[i + k];
        }
    }
    const double c1 = (SSIM_K1 * L) * (SSIM_K1 * L), c2 = (SSIM_K2 * L) * (SSIM_K2 * L);
    double *restrict sm = tx; /* the map, reusing tx */
    for (int i = 0; i < ow; i++) {
        const double ux = u[0][i], uy = u[1][i];
        const double vx = u[2][i] - ux * ux, vy = u[3][i] - uy * uy, cxy = u[4][i] - ux * uy;
        sm[i] = ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
    }
    double s = 0;
    for (int i = 0; i < ow; i++)
        s += sm[i];
    return s;
}

/* Pass 1 over row y: see the S_* sums. */
static void pass1_row(struct vf_quality *q, const struct vf_rgb_image *t,
                      const struct vf_rgb_image *o, int y, bool have_prev)
{
    const int w = q->w;
    const size_t px = (size_t)w * (size_t)q->h, off = (size_t)y * (size_t)w;
    const float *tlin = q->lin[0], *olin = q->lin[1];
    const double *tv8 = q->v8[0], *ov8 = q->v8[1];
    float *ta = q->ab[0][0] + off, *tb = q->ab[0][0] + px + off;
    float *oa = q->ab[1][0] + off, *ob = q->ab[1][0] + px + off;
    const float *pta = q->ab[0][1] + off, *ptb = q->ab[0][1] + px + off;
    const float *poa = q->ab[1][1] + off, *pob = q->ab[1][1] + px + off;
    double s[NSUM] = {0};
    for (int x = 0; x < w; x++) {
        float tf[3], of[3]; /* linear light */
        double t8[3], o8[3];
        for (int c = 0; c < 3; c++) {
            const unsigned tv = sample(t, c, y, x), ov = sample(o, c, y, x);
            tf[c] = tlin[tv];
            of[c] = olin[ov];
            t8[c] = tv8[tv];
            o8[c] = ov8[ov];
            const double d = t8[c] - o8[c];
            s[S_SSE_RGB] += d * d;
        }
        /* = vf_rgb_to_lab(v / (2^bits − 1), ...), bit for bit */
        const vf_f3 tl = vf_lin_to_lab(tf[0], tf[1], tf[2]);
        const vf_f3 ol = vf_lin_to_lab(of[0], of[1], of[2]);
        ta[x] = tl.y;
        tb[x] = tl.z;
        oa[x] = ol.y;
        ob[x] = ol.z;
        const double da = (double)tl.y - ol.y, db = (double)tl.z - ol.z;
        s[S_SSE_AB] += da * da + db * db;
        const double rgt = t8[0] - t8[1], ybt = 0.5 * (t8[0] + t8[1]) - t8[2];
        const double rgo = o8[0] - o8[1], ybo = 0.5 * (o8[0] + o8[1]) - o8[2];
        s[S_RG_T] += rgt;
        s[S_YB_T] += ybt;
        s[S_RG2_T] += rgt * rgt;
        s[S_YB2_T] += ybt * ybt;
        s[S_RG_O] += rgo;
        s[S_YB_O] += ybo;
        s[S_RG2_O] += rgo * rgo;
        s[S_YB2_O] += ybo * ybo;
        if (have_prev) {
            s[S_FLK_T] += fabs((double)ta[x] - pta[x]) + fabs((double)tb[x] - ptb[x]);
            s[S_FLK_O] += fabs((double)oa[x] - poa[x]) + fabs((double)ob[x] - pob[x]);
        }
    }
    memcpy(q->rows + (size_t)y * NSUM, s, sizeof s);
}

/* Hasler & Süsstrunk's M from the sums over n pixels. */
static double colourfulness(double srg, double syb, double srg2, double syb2, double n)
{
    const double mrg = srg / n, myb = syb / n;
    double vrg = srg2 / n - mrg * mrg, vyb = syb2 / n - myb * myb;
    if (vrg < 0)
        vrg = 0;
    if (vyb < 0)
        vyb = 0;
    return sqrt(vrg + vyb) + 0.3 * sqrt(mrg * mrg + myb * myb);
}

int vf_quality_add(struct vf_quality *q, const struct vf_rgb_image *truth,
                   const struct vf_rgb_image *output, struct vf_quality_frame *frame,
                   struct vf_error *err)
{
    int rc;
    if ((rc = check_image(q, truth, "truth", err)) < 0 ||
        (rc = check_image(q, output, "output", err)) < 0)
        return rc;
    /* this frame opens a shot: its room first, so that a failure counts nothing */
    const bool new_shot = q->n_shots == 0 || q->cut;
    if (new_shot && q->n_shots == q->cap_shots) {
        size_t cap = q->cap_shots ? 2 * q->cap_shots : 16;
        struct accs *s = realloc(q->shots, cap * sizeof *s);
        if (!s)
            return vf_error_set(err, VF_ENOMEM, "out of memory for the metrics of %zu shots",
                                cap);
        q->shots = s;
        q->cap_shots = cap;
    }
    const int w = q->w, h = q->h, oh = h - WIN + 1, ow = w - WIN + 1;
    const bool have_prev = q->frames > 0;
    const struct vf_rgb_image *im[2] = {truth, output};
    for (int i = 0; i < 2; i++)
        if (q->lut_bits[i] != im[i]->bits) {
            const unsigned n = 1u << im[i]->bits;
            const float max = (float)(n - 1u);
            for (unsigned v = 0; v < n; v++) {
                q->lin[i][v] = vf_srgb_lin((float)v / max);
                q->v8[i][v] = v * VF_QUALITY_RGB_RANGE / (double)(n - 1u);
            }
            q->lut_bits[i] = im[i]->bits;
        }
    /* this frame's ab planes are the ones that were "previous" two frames ago */
    for (int i = 0; i < 2; i++) {
        float *t = q->ab[i][0];
        q->ab[i][0] = q->ab[i][1];
        q->ab[i][1] = t;
    }

#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int y = 0; y < h; y++)
        pass1_row(q, truth, output, y, have_prev);

    const size_t px = (size_t)w * (size_t)h;
    const struct chan ch[NCHAN][2] = {
        {{truth, 0, q->v8[0], NULL, w}, {output, 0, q->v8[1], NULL, w}},
        {{truth, 1, q->v8[0], NULL, w}, {output, 1, q->v8[1], NULL, w}},
        {{truth, 2, q->v8[0], NULL, w}, {output, 2, q->v8[1], NULL, w}},
        {{NULL, 0, NULL, q->ab[0][0], w}, {NULL, 0, NULL, q->ab[1][0], w}},
        {{NULL, 0, NULL, q->ab[0][0] + px, w}, {NULL, 0, NULL, q->ab[1][0] + px, w}},
    };
#pragma omp parallel for schedule(static) num_threads(q->threads)
    for (int r = 0; r < oh; r++) {
        double *scratch = q->scratch + (size_t)omp_get_thread_num() * SCRATCH_ROWS * (size_t)w;
        for (int c = 0; c < NCHAN; c++)
            q->ssim_rows[(size_t)r * NCHAN + c] =
                ssim_row(&ch[c][0], &ch[c][1], r,
                         c < C_A ? VF_QUALITY_RGB_RANGE : VF_QUALITY_AB_RANGE, q->g, scratch);
    }

    double s[NSUM] = {0}, ss[NCHAN] = {0};
    for (int y = 0; y < h; y++)
        for (int k = 0; k < NSUM; k++)
            s[k] += q->rows[(size_t)y * NSUM + k];
    for (int r = 0; r < oh; r++)
        for (int c = 0; c < NCHAN; c++)
            ss[c] += q->ssim_rows[(size_t)r * NCHAN + c];

    const double n = (double)px, nwin = (double)oh * (double)ow;
    struct vf_quality_frame f;
    f.mse_rgb = s[S_SSE_RGB] / (3 * n);
    f.psnr_rgb = vf_quality_psnr(f.mse_rgb, VF_QUALITY_RGB_RANGE);
    f.ssim_rgb = (ss[C_R] + ss[C_G] + ss[C_B]) / (3 * nwin);
    f.mse_ab = s[S_SSE_AB] / (2 * n);
    f.psnr_ab = vf_quality_psnr(f.mse_ab, VF_QUALITY_AB_RANGE);
    f.ssim_ab = (ss[C_A] + ss[C_BB]) / (2 * nwin);
    f.colourfulness_truth = colourfulness(s[S_RG_T], s[S_YB_T], s[S_RG2_T], s[S_YB2_T], n);
    f.colourfulness_output = colourfulness(s[S_RG_O], s[S_YB_O], s[S_RG2_O], s[S_YB2_O], n);
    f.flicker_truth = have_prev ? s[S_FLK_T] / (2 * n) : NAN;
    f.flicker_output = have_prev ? s[S_FLK_O] / (2 * n) : NAN;

    const int64_t i = q->frames;
    if (new_shot) {
        accs_init(&q->shots[q->n_shots++], i);
        q->cut = false;
    }
    accs_add(&q->film, &f, i, have_prev);
    accs_add(&q->shots[q->n_shots - 1], &f, i, have_prev && !new_shot);
    if (have_prev && !new_shot) {
        acc_add(&q->flk_t_in, f.flicker_truth, i);
        acc_add(&q->flk_o_in, f.flicker_output, i);
    }
    q->frames++;
    if (frame)
        *frame = f;
    return VF_OK;
}

void vf_quality_summarize(const struct vf_quality *q, struct vf_quality_summary *out)
{
    accs_summary(&q->film, out);
    out->flicker_truth_in_shots = acc_stat(&q->flk_t_in);
    out->flicker_output_in_shots = acc_stat(&q->flk_o_in);
}

void vf_quality_cut(struct vf_quality *q)
{
    if (q->frames > 0)
        q->cut = true;
}

size_t vf_quality_shots(const struct vf_quality *q)
{
    return q->n_shots;
}

void vf_quality_summarize_shot(const struct vf_quality *q, size_t k,
                               struct vf_quality_summary *out)
{
    if (k >= q->n_shots) {   /* a caller's bug: an empty span */
        struct accs none;
        accs_init(&none, -1);
        accs_summary(&none, out);
        return;
    }
    accs_summary(&q->shots[k], out);
}
