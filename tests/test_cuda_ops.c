/* tests/test_cuda_ops.c: the CUDA backend's operators (kernels/elem_cuda.cu, kernels/ops_cuda.cu)
 * against the CPU backend's (kernels/ops.c, itself checked against double references by
 * tests/test_ops.c). Exits 77 ("skipped: no GPU") where the build has no CUDA backend or no GPU
 * is visible (ctest label "cuda", SKIP_RETURN_CODE 77).
 *
 * Every case fills its tensors from a fixed seed, uploads the same values to a CPU and a CUDA
 * backend, runs the operator on the CPU once and on the GPU twice (inputs uploaded again before
 * each run, so in-place cases start from the same data), and downloads every output tensor
 * whole (for a channel-slice view: the whole base tensor, so the channels outside the view must
 * come back untouched on both sides).
 *   - Determinism: the two GPU runs must be bit-identical (fixed-order reductions, no atomics).
 *   - Agreement with the CPU: err = max_i |gpu_i − cpu_i| / max(1, max_i |cpu_i|) over the whole
 *     downloaded tensor (an error relative to the tensor's scale, with an absolute floor of 1
 *     so tensors of small values are held to an absolute bound): ≤ 1e-4 for f32 storage, ≤ 3e-2
 *     for bf16 and f16 storage (one rounding of the stored result apart, 2⁻⁸ or 2⁻¹¹ of the
 *     value, plus the arithmetic's differences before it); copy, concat and nearest resize
 *     exactly. NaN must match NaN.
 * Shapes include odd sizes (7×13, 27×50, 1×1 images), n = 2, channel-slice views of every
 * operand, in-place calls, f32, bf16 and f16 storage.
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
#include "test_util.h"

#define TOL_F32 1e-4
#define TOL_HALF 3e-2

static struct vf_backend *g_be[2];   /* [0] the CPU, [1] GPU 0 */

static int setup(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_backend_opts cpu = {.device = VF_DEVICE_CPU, .gpu = 0, .threads = 2};
    struct vf_backend_opts gpu = {.device = VF_DEVICE_CUDA, .gpu = 0, .threads = 0};
    if (vf_backend_create(&g_be[0], &cpu, &err) != VF_OK ||
        vf_backend_create(&g_be[1], &gpu, &err) != VF_OK) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vf_backend_destroy(&g_be[0]);
    vf_backend_destroy(&g_be[1]);
    return 0;
}

/* ============================== helpers ==================================================== */


static const char *dtn(enum vf_dtype dt)
{
    return dt == VF_F32 ? "f32" : dt == VF_BF16 ? "bf16" : "f16";
}

/* A tensor on both backends with the same contents: `t[s]` is the operand on side s, either all
 * of base[s] or channels [2, 2 + c) of a base with 3 more channels. host: base's NCHW values. */
struct pair {
    struct vf_tensor base[2], t[2];
    float *host;
    size_t count;
    int off;                    /* the operand's first channel in base */
};

static void pair_make(struct pair *p, enum vf_dtype dt, int n, int c, int h, int w, int view,
                      double lo, double hi)
{
    memset(p, 0, sizeof *p);
    p->off = view ? 2 : 0;
    const int bc = c + (view ? 3 : 0);
    for (int s = 0; s < 2; s++) {
        struct vf_error err = {0};
        if (vf_tensor_alloc(&p->base[s], g_be[s], dt, n, bc, h, w, &err) != VF_OK)
            fail_msg("vf_tensor_alloc (%s): %s", s ? "cuda" : "cpu", err.msg);
        p->t[s] = view ? vf_tensor_slice(&p->base[s], 2, c) : p->base[s];
    }
    p->count = vf_tensor_count(&p->base[0]);
    p->host = malloc(p->count * sizeof(float));
    assert_non_null(p->host);
    for (size_t i = 0; i < p->count; i++)
        p->host[i] = (float)rnd(lo, hi);
}

/* Refill the operand's channel ch with values in [lo, hi]. */
static void pair_fill(struct pair *p, int ch, double lo, double hi)
{
    const struct vf_tensor *b = &p->base[0];
    const size_t plane = (size_t)b->h * (size_t)b->w;
    for (int i = 0; i < b->n; i++) {
        float *d = p->host + ((size_t)i * b->c + (size_t)(p->off + ch)) * plane;
        for (size_t k = 0; k < plane; k++)
            d[k] = (float)rnd(lo, hi);
    }
}

static void pair_load(struct pair *p, int side)
{
    struct vf_error err = {0};
    if (vf_tensor_upload(&p->base[side], p->host, &err) != VF_OK)
        fail_msg("vf_tensor_upload (%s): %s", side ? "cuda" : "cpu", err.msg);
}

static float *pair_read(const struct pair *p, int side)
{
    struct vf_error err = {0};
    float *out = malloc(p->count * sizeof(float));
    assert_non_null(out);
    if (vf_tensor_download(&p->base[side], out, &err) != VF_OK)
        fail_msg("vf_tensor_download (%s): %s", side ? "cuda" : "cpu", err.msg);
    return out;
}

static void pair_free(struct pair *p)
{
    vf_tensor_free(&p->base[0]);
    vf_tensor_free(&p->base[1]);
    free(p->host);
    memset(p, 0, sizeof *p);
}

/* ============================== the case runner ============================================ */

#define MAXP 10
#define MAXO 4

struct op_case;
typedef int (*op_fn)(const struct op_case *k, int side, struct vf_error *err);

struct op_case {
    char name[160];
    op_fn run;
    struct pair *in[MAXP];      /* every tensor the call touches: uploaded before each run */
    int nin;
    struct pair *out[MAXO];     /* compared after the run */
    int nout;
    bool exact;                 /* the GPU must give the CPU's bits */
    double tol;                 /* when > 0: this bound instead of the storage type's */
    /* parameters (each operator reads its own) */
    enum vf_act act;
    float alpha, eps, tau, kr, kb;
    int mode, radius, rows, ncols, ld, vc;
    bool center, with_s;
    struct pair *src, *src2, *dst, *gamma, *beta, *slopes, *x3, *x4;
    struct pair *x5, *x6, *x7;  /* the refinement's temporal candidates (x5 NULL: none) */
    struct pair *x8, *x9;       /* and the motion-predicted ones' motion in and out */
    int tradius, predict;
    int subpixel;               /* vf_op_carry_ab's sub-pixel step */
};

static void compare(const char *what, const float *cpu, const float *gpu, size_t n, double tol)
{
    double md = 0.0, mr = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        const bool nc = isnan(cpu[i]), ng = isnan(gpu[i]);
        if (nc || ng) {
            if (nc != ng)
                fail_msg("%s: element %zu: cpu %g, cuda %g", what, i, (double)cpu[i],
                         (double)gpu[i]);
            continue;
        }
        const double d = fabs((double)gpu[i] - (double)cpu[i]);
        if (d > md) {
            md = d;
            worst = i;
        }
        mr = fabs((double)cpu[i]) > mr ? fabs((double)cpu[i]) : mr;
    }
    const double e = md / (mr > 1.0 ? mr : 1.0);
    if (!(e <= tol))
        fail_msg("%s: error %.3g > %.3g (element %zu: cpu %.9g, cuda %.9g)", what, e, tol, worst,
                 (double)cpu[worst], (double)gpu[worst]);
}

static void run_case(struct op_case *k)
{
    float *res[3][MAXO];
    for (int run = 0; run < 3; run++) {             /* the CPU, the GPU, the GPU again */
        const int side = run == 0 ? 0 : 1;
        for (int i = 0; i < k->nin; i++)
            pair_load(k->in[i], side);
        struct vf_error err = {0};
        if (k->run(k, side, &err) != VF_OK)
            fail_msg("%s (%s): %s", k->name, side ? "cuda" : "cpu", err.msg);
        if (vf_backend_sync(g_be[side], &err) != VF_OK)
            fail_msg("%s (%s): sync: %s", k->name, side ? "cuda" : "cpu", err.msg);
        for (int o = 0; o < k->nout; o++)
            res[run][o] = pair_read(k->out[o], side);
    }
    for (int o = 0; o < k->nout; o++) {
        const struct pair *p = k->out[o];
        char what[200];
        snprintf(what, sizeof what, "%s, output %d", k->name, o);
        if (memcmp(res[1][o], res[2][o], p->count * sizeof(float)) != 0)
            fail_msg("%s: two CUDA runs differ (not deterministic)", what);
        enum vf_dtype dt = p->base[0].dtype;
        compare(what, res[0][o], res[1][o], p->count,
                k->exact ? 0.0 : k->tol > 0 ? k->tol : (dt == VF_F32 ? TOL_F32 : TOL_HALF));
        for (int r = 0; r < 3; r++)
            free(res[r][o]);
    }
}

#define T(p, s) (&(p)->t[s])
#define TOPT(p, s) ((p) ? &(p)->t[s] : NULL)

static const enum vf_dtype DTS[3] = {VF_F32, VF_BF16, VF_F16};

/* ============================== act ======================================================== */

static int run_act(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_act(T(k->src, s), T(k->dst, s), k->act, k->alpha, TOPT(k->slopes, s), err);
}

static void act_matches_cpu(void **state)
{
    (void)state;
    const enum vf_act acts[5] = {VF_ACT_NONE, VF_ACT_RELU, VF_ACT_LRELU, VF_ACT_PRELU,
                                 VF_ACT_TANH};
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++)
            for (int inplace = 0; inplace < 2; inplace++)
                for (int a = 0; a < 5; a++) {
                    struct pair src, dst, sl;
                    pair_make(&src, DTS[di], 2, 19, 7, 13, view, -3, 3);
                    pair_make(&dst, DTS[di], 2, 19, 7, 13, !view, -3, 3);
                    pair_make(&sl, VF_F32, 1, 19, 1, 1, 0, 0, 0.5);
                    struct op_case k = {.run = run_act, .act = acts[a], .alpha = 0.1f,
                                        .src = &src, .dst = inplace ? &src : &dst,
                                        .slopes = &sl, .in = {&src, &dst, &sl}, .nin = 3,
                                        .out = {inplace ? &src : &dst}, .nout = 1};
                    snprintf(k.name, sizeof k.name, "act %d %s view %d in place %d", a,
                             dtn(DTS[di]), view, inplace);
                    run_case(&k);
                    pair_free(&src);
                    pair_free(&dst);
                    pair_free(&sl);
                }
}

/* ============================== instance norm ============================================== */

static int run_in(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_instance_norm(T(k->src, s), T(k->dst, s), k->eps, TOPT(k->gamma, s),
                               TOPT(k->beta, s), k->act, k->alpha, TOPT(k->slopes, s), err);
}

static void instance_norm_matches_cpu(void **state)
{
    (void)state;
    const int shapes[][4] = {{2, 19, 7, 13}, {1, 64, 27, 48}, {2, 5, 1, 1}, {1, 3, 1, 300}};
    const enum vf_act acts[3] = {VF_ACT_NONE, VF_ACT_PRELU, VF_ACT_RELU};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int view = 0; view < 2; view++)
                for (int v = 0; v < 3; v++) {
                    const int n = shapes[si][0], c = shapes[si][1], h = shapes[si][2],
                              w = shapes[si][3];
                    const bool inplace = v == 1;
                    struct pair src, dst, g, b, sl;
                    pair_make(&src, DTS[di], n, c, h, w, view, 2, 5);   /* mean far from 0 */
                    pair_make(&dst, DTS[di], n, c, h, w, view, -1, 1);
                    pair_make(&g, VF_F32, 1, c, 1, 1, 0, 0.5, 2);
                    pair_make(&b, VF_F32, 1, c, 1, 1, 0, -1, 1);
                    pair_make(&sl, VF_F32, 1, c, 1, 1, 0, 0, 0.5);
                    struct op_case k = {.run = run_in, .act = acts[v], .alpha = 0.2f,
                                        .eps = 1e-5f, .src = &src,
                                        .dst = inplace ? &src : &dst,
                                        .gamma = v == 0 ? NULL : &g, .beta = v == 1 ? &b : NULL,
                                        .slopes = &sl, .in = {&src, &dst, &g, &b, &sl},
                                        .nin = 5, .out = {inplace ? &src : &dst}, .nout = 1};
                    snprintf(k.name, sizeof k.name, "instance norm %dx%dx%dx%d %s view %d "
                             "variant %d", n, c, h, w, dtn(DTS[di]), view, v);
                    run_case(&k);
                    pair_free(&src);
                    pair_free(&dst);
                    pair_free(&g);
                    pair_free(&b);
                    pair_free(&sl);
                }
}

/* ============================== resize ===================================================== */

static int run_resize(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_resize(T(k->src, s), T(k->dst, s), (enum vf_resize)k->mode, err);
}

static void resize_matches_cpu(void **state)
{
    (void)state;
    const int sizes[][2] = {{16, 9}, {14, 26}, {3, 5}, {7, 13}, {27, 50}, {1, 1}};
    for (int mode = 0; mode < 2; mode++)
        for (int di = 0; di < 3; di++)
            for (int view = 0; view < 2; view++)
                for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                    struct pair src, dst;
                    pair_make(&src, DTS[di], 2, 11, 7, 13, view, -50, 50);
                    pair_make(&dst, DTS[(di + view) % 3], 2, 11, sizes[si][0], sizes[si][1],
                              !view, -1, 1);
                    struct op_case k = {.run = run_resize, .mode = mode, .src = &src,
                                        .dst = &dst, .in = {&src, &dst}, .nin = 2,
                                        .out = {&dst}, .nout = 1,
                                        .exact = mode == VF_RESIZE_NEAREST};
                    snprintf(k.name, sizeof k.name, "resize %s %s → %s 7x13 → %dx%d view %d",
                             mode ? "bilinear" : "nearest", dtn(DTS[di]),
                             dtn(DTS[(di + view) % 3]), sizes[si][0], sizes[si][1], view);
                    run_case(&k);
                    pair_free(&src);
                    pair_free(&dst);
                }
}

/* ============================== add, gated add, concat, copy =============================== */

static int run_add(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_add(T(k->src, s), T(k->src2, s), T(k->dst, s), err);
}

static void add_matches_cpu(void **state)
{
    (void)state;
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++)
            for (int where = 0; where < 3; where++) {   /* dst separate, = a, = b */
                struct pair a, b, dst;
                pair_make(&a, DTS[di], 2, 21, 7, 13, view, -10, 10);
                pair_make(&b, DTS[(di + 1) % 3], 2, 21, 7, 13, !view, -10, 10);
                pair_make(&dst, DTS[(di + 2) % 3], 2, 21, 7, 13, view, -1, 1);
                struct pair *d = where == 0 ? &dst : where == 1 ? &a : &b;
                struct op_case k = {.run = run_add, .src = &a, .src2 = &b, .dst = d,
                                    .in = {&a, &b, &dst}, .nin = 3, .out = {d}, .nout = 1};
                snprintf(k.name, sizeof k.name, "add %s view %d dst %d", dtn(DTS[di]), view,
                         where);
                run_case(&k);
                pair_free(&a);
                pair_free(&b);
                pair_free(&dst);
            }
}

static int run_gated_add(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_gated_add(T(k->src, s), T(k->src2, s), k->alpha, k->x3 ? T(k->x3, s) : NULL,
                           T(k->dst, s), err);
}

/* C's gated residual (arch C.gate): o's 3 channels (the last the gate) over w's 2, in place or
 * not, each dtype, without and with a factor per image (C.gate_motion) or per pixel
 * (C.gate_motion_radius). */
static void gated_add_matches_cpu(void **state)
{
    (void)state;
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++)
            for (int where = 0; where < 4; where++) {   /* dst separate, = w, separate with factors
                                                           per image, per pixel */
                struct pair o, w, dst, f;
                pair_make(&o, DTS[di], 2, 3, 7, 13, view, -6, 6);
                pair_make(&w, DTS[(di + 1) % 3], 2, 2, 7, 13, !view, -100, 100);
                pair_make(&dst, DTS[di], 2, 2, 7, 13, view, -1, 1);
                pair_make(&f, VF_F32, 2, 1, where == 3 ? 7 : 1, where == 3 ? 13 : 1, 0, 0, 1);
                struct pair *d = where == 1 ? &w : &dst;
                struct op_case k = {.run = run_gated_add, .src = &o, .src2 = &w, .dst = d,
                                    .x3 = where >= 2 ? &f : NULL, .alpha = 128.0f,
                                    .in = {&o, &w, &dst, &f}, .nin = 4, .out = {d}, .nout = 1};
                snprintf(k.name, sizeof k.name, "gated add %s view %d dst %d", dtn(DTS[di]),
                         view, where);
                run_case(&k);
                pair_free(&o);
                pair_free(&w);
                pair_free(&dst);
                pair_free(&f);
            }
}

static int run_motion_factor(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_motion_factor(T(k->src, s), T(k->src2, s), k->alpha, k->radius, T(k->dst, s), err);
}

/* C.gate_motion's factor: three images of L(t) and L(t−1), each dtype, dense and as views, per
 * image (one block per image on the GPU against the CPU's pixel-order sum) and per pixel
 * (C.gate_motion_radius 0 and 4: one thread a pixel, each window in the CPU's order). */
static void motion_factor_matches_cpu(void **state)
{
    (void)state;
    const int radii[] = {-1, 0, 4};
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++)
            for (int ri = 0; ri < 3; ri++) {
                const int r = radii[ri];
                struct pair a, b, f;
                pair_make(&a, DTS[di], 3, 1, 37, 61, view, 0, 100);
                pair_make(&b, DTS[(di + 1) % 3], 3, 1, 37, 61, !view, 0, 100);
                pair_make(&f, VF_F32, 3, 1, r < 0 ? 1 : 37, r < 0 ? 1 : 61, 0, -1, 1);
                struct op_case k = {.run = run_motion_factor, .src = &a, .src2 = &b, .dst = &f,
                                    .alpha = 20.0f, .radius = r, .in = {&a, &b, &f}, .nin = 3,
                                    .out = {&f}, .nout = 1, .exact = r >= 0};   /* per pixel: the CPU's order */
                snprintf(k.name, sizeof k.name, "motion factor %s view %d radius %d", dtn(DTS[di]),
                         view, r);
                run_case(&k);
                pair_free(&a);
                pair_free(&b);
                pair_free(&f);
            }
}

static int run_concat(const struct op_case *k, int s, struct vf_error *err)
{
    const struct vf_tensor *srcs[3] = {T(k->src, s), T(k->src2, s), T(k->x3, s)};
    return vf_op_concat(srcs, 3, T(k->dst, s), err);
}

static int run_copy(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_copy(T(k->src, s), T(k->dst, s), err);
}

static void concat_and_copy_are_exact(void **state)
{
    (void)state;
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++) {
            struct pair a, b, c, dst;
            pair_make(&a, VF_F32, 2, 3, 7, 13, 0, -300, 300);
            pair_make(&b, VF_BF16, 2, 5, 7, 13, 1, -300, 300);
            pair_make(&c, VF_F16, 2, 1, 7, 13, view, -300, 300);
            pair_make(&dst, DTS[di], 2, 9, 7, 13, view, -1, 1);
            struct op_case k = {.run = run_concat, .src = &a, .src2 = &b, .x3 = &c, .dst = &dst,
                                .in = {&a, &b, &c, &dst}, .nin = 4, .out = {&dst}, .nout = 1,
                                .exact = true};
            snprintf(k.name, sizeof k.name, "concat into %s view %d", dtn(DTS[di]), view);
            run_case(&k);
            for (int dj = 0; dj < 3; dj++) {
                struct pair cp;
                pair_make(&cp, DTS[dj], 2, 9, 7, 13, !view, -1, 1);
                struct op_case kc = {.run = run_copy, .src = &dst, .dst = &cp,
                                     .in = {&dst, &cp}, .nin = 2, .out = {&cp}, .nout = 1,
                                     .exact = true};
                snprintf(kc.name, sizeof kc.name, "copy %s → %s view %d", dtn(DTS[di]),
                         dtn(DTS[dj]), view);
                run_case(&kc);
                pair_free(&cp);
            }
            pair_free(&a);
            pair_free(&b);
            pair_free(&c);
            pair_free(&dst);
        }
}

/* ============================== l2norm ===================================================== */

static int run_l2(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_l2norm(T(k->src, s), T(k->dst, s), k->center, k->eps, err);
}

static void l2norm_matches_cpu(void **state)
{
    (void)state;
    const int shapes[][4] = {{2, 5, 7, 13}, {2, 70, 7, 13}, {1, 256, 27, 48}, {1, 1, 1, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int view = 0; view < 2; view++)
                for (int center = 0; center < 2; center++)
                    for (int inplace = 0; inplace < 2; inplace++) {
                        const int n = shapes[si][0], c = shapes[si][1], h = shapes[si][2],
                                  w = shapes[si][3];
                        struct pair src, dst;
                        pair_make(&src, DTS[di], n, c, h, w, view, -1, 3);
                        pair_make(&dst, DTS[di], n, c, h, w, !view, -1, 1);
                        struct op_case k = {.run = run_l2, .center = center, .eps = 1e-6f,
                                            .src = &src, .dst = inplace ? &src : &dst,
                                            .in = {&src, &dst}, .nin = 2,
                                            .out = {inplace ? &src : &dst}, .nout = 1};
                        snprintf(k.name, sizeof k.name, "l2norm %dx%dx%dx%d %s view %d center "
                                 "%d in place %d", n, c, h, w, dtn(DTS[di]), view, center,
                                 inplace);
                        run_case(&k);
                        pair_free(&src);
                        pair_free(&dst);
                    }
}

/* ============================== attention rows ============================================= */

/* f: 1 × ld × rows × 1 (row-major rows of ld), v: 1 × vc × ncols × 1, s: rows, out: rows × vc. */
static int run_att(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_attention_rows(g_be[s], (const float *)k->src->t[s].data, k->rows, k->ncols,
                                k->ld, k->tau, (const float *)k->src2->t[s].data, k->vc,
                                k->with_s ? (float *)k->x3->t[s].data : NULL,
                                (float *)k->dst->t[s].data, err);
}

static void attention_rows_match_cpu(void **state)
{
    (void)state;
    const int sizes[][3] = {{37, 200, 203}, {5, 1, 1}, {300, 1500, 1500}, {1, 64, 70}};
    const int vcs[3] = {2, 1, 11};
    const float taus[2] = {1.0f, 0.01f};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int vi = 0; vi < 3; vi++)
            for (int ti = 0; ti < 2; ti++) {
                const int rows = sizes[si][0], ncols = sizes[si][1], ld = sizes[si][2];
                const int vc = vcs[vi];
                struct pair f, v, s, out;
                pair_make(&f, VF_F32, 1, ld, rows, 1, 0, -5, 5);
                pair_make(&v, VF_F32, 1, vc, ncols, 1, 0, -100, 100);
                pair_make(&s, VF_F32, 1, 1, rows, 1, 0, 0, 0);
                pair_make(&out, VF_F32, 1, vc, rows, 1, 0, 0, 0);
                struct op_case k = {.run = run_att, .rows = rows, .ncols = ncols, .ld = ld,
                                    .vc = vc, .tau = taus[ti], .with_s = (vi + ti) % 2 == 0,
                                    .src = &f, .src2 = &v, .x3 = &s, .dst = &out,
                                    .in = {&f, &v, &s, &out}, .nin = 4, .out = {&out, &s},
                                    .nout = 2};
                snprintf(k.name, sizeof k.name, "attention %d rows × %d columns (ld %d), vc %d, "
                         "τ %g, s %d", rows, ncols, ld, vc, (double)taus[ti], k.with_s);
                run_case(&k);
                pair_free(&f);
                pair_free(&v);
                pair_free(&s);
                pair_free(&out);
            }
}

/* ============================== colour ===================================================== */

static int run_grey_to_l(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_grey_to_l(T(k->src, s), T(k->dst, s), TOPT(k->x3, s), err);
}

static int run_rgb_to_lab(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_rgb_to_lab(T(k->src, s), T(k->dst, s), TOPT(k->x3, s), err);
}

static int run_lab_to_rgb(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_lab_to_rgb(T(k->src, s), T(k->dst, s), err);
}

static int run_keep_luma(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_keep_luma(T(k->src, s), T(k->src2, s), k->kr, k->kb, TOPT(k->dst, s),
                           TOPT(k->x3, s), err);
}

static void colour_ops_match_cpu(void **state)
{
    (void)state;
    for (int di = 0; di < 3; di++)
        for (int view = 0; view < 2; view++) {
            const enum vf_dtype dt = DTS[di];
            struct pair grey, l, fin, rgb, lab, rgb2, ab, kr, cbcr;
            pair_make(&grey, dt, 2, 1, 7, 13, view, 0, 1);
            pair_make(&l, dt, 2, 1, 7, 13, !view, 0, 0);
            pair_make(&fin, dt, 2, 3, 7, 13, view, 0, 0);
            pair_make(&rgb, dt, 2, 3, 7, 13, view, 0, 1);
            pair_make(&lab, dt, 2, 3, 7, 13, !view, -100, 100);
            pair_fill(&lab, 0, 0, 100);
            pair_make(&rgb2, dt, 2, 3, 7, 13, view, 0, 0);
            pair_make(&ab, dt, 2, 2, 7, 13, !view, view ? -150 : -60, view ? 150 : 60);
            pair_make(&kr, dt, 2, 3, 7, 13, view, 0, 0);
            pair_make(&cbcr, dt, 2, 2, 7, 13, !view, 0, 0);

            struct op_case k1 = {.run = run_grey_to_l, .src = &grey, .dst = &l,
                                 .x3 = view ? NULL : &fin, .in = {&grey, &l, &fin}, .nin = 3,
                                 .out = {&l, &fin}, .nout = 2};
            snprintf(k1.name, sizeof k1.name, "grey_to_l %s view %d", dtn(dt), view);
            run_case(&k1);

            struct op_case k2 = {.run = run_rgb_to_lab, .src = &rgb, .dst = &lab,
                                 .x3 = view ? &fin : NULL, .in = {&rgb, &lab, &fin}, .nin = 3,
                                 .out = {&lab, &fin}, .nout = 2};
            snprintf(k2.name, sizeof k2.name, "rgb_to_lab %s view %d", dtn(dt), view);
            run_case(&k2);

            struct op_case k3 = {.run = run_lab_to_rgb, .src = &lab, .dst = &rgb2,
                                 .in = {&lab, &rgb2}, .nin = 2, .out = {&rgb2}, .nout = 1};
            snprintf(k3.name, sizeof k3.name, "lab_to_rgb %s view %d", dtn(dt), view);
            run_case(&k3);

            for (int m = 0; m < 2; m++) {   /* BT.709, BT.601 */
                struct op_case k4 = {.run = run_keep_luma, .src = &grey, .src2 = &ab,
                                     .kr = m ? 0.299f : 0.2126f, .kb = m ? 0.114f : 0.0722f,
                                     .dst = m ? NULL : &kr, .x3 = &cbcr,
                                     .in = {&grey, &ab, &kr, &cbcr}, .nin = 4,
                                     .out = {&kr, &cbcr}, .nout = 2};
                snprintf(k4.name, sizeof k4.name, "keep_luma %s view %d matrix %d", dtn(dt),
                         view, m);
                run_case(&k4);
            }
            pair_free(&grey);
            pair_free(&l);
            pair_free(&fin);
            pair_free(&rgb);
            pair_free(&lab);
            pair_free(&rgb2);
            pair_free(&ab);
            pair_free(&kr);
            pair_free(&cbcr);
        }
}

/* ============================== guided upsampling ========================================== */

static int run_guided(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_guided_upsample(T(k->src, s), T(k->src2, s), T(k->x3, s), T(k->dst, s),
                                 k->radius, k->eps, T(k->x4, s), err);
}

static void guided_upsample_matches_cpu(void **state)
{
    (void)state;
    const int sizes[][4] = {{7, 13, 27, 50}, {7, 13, 7, 13}, {1, 1, 4, 3}, {20, 30, 80, 120}};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int view = 0; view < 2; view++)
                for (int r = 0; r < 3; r++) {
                    const int H = sizes[si][0], W = sizes[si][1], h = sizes[si][2],
                              w = sizes[si][3];
                    const enum vf_dtype dt = DTS[di];
                    struct pair gl, al, gf, af, scr;
                    pair_make(&gl, dt, 2, 1, H, W, view, 0, 1);
                    pair_make(&al, dt, 2, 2, H, W, !view, -80, 80);
                    pair_make(&gf, dt, 2, 1, h, w, !view, 0, 1);
                    pair_make(&af, dt, 2, 2, h, w, view, 0, 0);
                    pair_make(&scr, VF_F32, 1, (int)vf_guided_scratch_elems(H, W), 1, 1, 0, 0,
                              0);
                    struct op_case k = {.run = run_guided, .radius = r, .eps = 1e-4f,
                                        .src = &gl, .src2 = &al, .x3 = &gf, .dst = &af,
                                        .x4 = &scr, .in = {&gl, &al, &gf, &af, &scr}, .nin = 5,
                                        .out = {&af}, .nout = 1};
                    snprintf(k.name, sizeof k.name, "guided %dx%d → %dx%d r %d %s view %d", H,
                             W, h, w, r, dtn(dt), view);
                    run_case(&k);
                    pair_free(&gl);
                    pair_free(&al);
                    pair_free(&gf);
                    pair_free(&af);
                    pair_free(&scr);
                }
}

/* ============================== film-size propagation ====================================== */

static int run_carry(const struct op_case *k, int s, struct vf_error *err)
{
    return vf_op_carry_ab(T(k->src, s), T(k->src2, s), T(k->x3, s), T(k->dst, s), k->alpha,
                          k->eps, k->radius, k->mode, k->subpixel, T(k->x4, s), err);
}

/* vf_op_carry_ab: the GPU picks the CPU's moves (both sum the costs in f64 in Net.carry's order,
 * without FMA), so the results differ at most by exp's last bit in a share: f32 1e-6 of the
 * a, b scale, halves their storage's rounding. Two images, views of wider tensors (a pixel
 * stride above the channels), the three storage types, with and without the confidence and the
 * sub-pixel step (f64 sums in the same order on both, no FMA), a radius that reaches past the
 * picture's edge; the grey of frame t is frame t−1's moved by (−2, +3), with noise. */
static void carry_matches_cpu(void **state)
{
    (void)state;
    const int sizes[][2] = {{9, 14}, {40, 64}};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int di = 0; di < 3; di++)
            for (int view = 0; view < 2; view++)
                for (int conf = 0; conf < 4; conf++) {   /* 2, 3: the sub-pixel step */
                    const int h = sizes[si][0], w = sizes[si][1];
                    const enum vf_dtype dt = DTS[di];
                    struct pair g, pg, pab, ab, scr;
                    pair_make(&pg, dt, 2, 1, h, w, view, 0, 1);
                    pair_make(&g, dt, 2, 1, h, w, !view, 0, 1);
                    const size_t plane = (size_t)h * w;
                    for (int n = 0; n < 2; n++) {   /* g(y, x) = pg(y − 2, x + 3) + noise */
                        const float *src =
                            pg.host + ((size_t)n * pg.base[0].c + (size_t)pg.off) * plane;
                        float *dst = g.host + ((size_t)n * g.base[0].c + (size_t)g.off) * plane;
                        for (int y = 0; y < h; y++)
                            for (int x = 0; x < w; x++) {
                                const int sy = y - 2 < 0 ? 0 : y - 2;
                                const int sx = x + 3 >= w ? w - 1 : x + 3;
                                dst[(size_t)y * w + x] =
                                    src[(size_t)sy * w + sx] + (float)rnd(-0.01, 0.01);
                            }
                    }
                    pair_make(&pab, dt, 2, 2, h, w, view, -80, 80);
                    pair_make(&ab, dt, 2, 2, h, w, !view, -80, 80);
                    pair_make(&scr, VF_F32, 1, (int)vf_carry_scratch_elems(h, w), 1, 1, 0, 0, 0);
                    struct op_case k = {.run = run_carry, .alpha = 0.8f,
                                        .eps = conf % 2 ? 12.0f : 0.0f, .radius = 4, .mode = 3,
                                        .subpixel = conf / 2,
                                        .src = &g, .src2 = &pg, .x3 = &pab, .dst = &ab,
                                        .x4 = &scr, .in = {&g, &pg, &pab, &ab, &scr}, .nin = 5,
                                        .out = {&ab}, .nout = 1,
                                        .tol = dt == VF_F32 ? 1e-6 : 0};
                    snprintf(k.name, sizeof k.name, "carry %dx%d %s view %d confidence %d%s", h,
                             w, dtn(dt), view, conf % 2, conf / 2 ? " subpixel" : "");
                    run_case(&k);
                    pair_free(&g);
                    pair_free(&pg);
                    pair_free(&pab);
                    pair_free(&ab);
                    pair_free(&scr);
                }
}

/* ============================== warp refinement ============================================ */

static int run_refine(const struct op_case *k, int s, struct vf_error *err)
{
    const struct vf_refine_temporal_args tp = {.l = k->x5 ? T(k->x5, s) : NULL,
                                               .prev_l = k->x5 ? T(k->x6, s) : NULL,
                                               .prev_ab = k->x5 ? T(k->x7, s) : NULL,
                                               .radius = k->tradius, .h = k->tau,
                                               .subpixel = k->tradius != 4,
                                               .predict = k->predict,
                                               .motion = k->predict ? T(k->x8, s) : NULL,
                                               .motion_out = k->predict ? T(k->x9, s) : NULL};
    return vf_op_warp_refine(T(k->src, s), T(k->src2, s), T(k->x3, s), T(k->x4, s), k->radius,
                             k->mode, k->eps, k->x5 ? &tp : NULL, T(k->dst, s), err);
}

/* Dense f32 only (the op's contract). Bound 1e-3 of the a, b scale: the costs' sums are
 * contracted into FMAs differently by nvcc and gcc, and 1/h² (4·10⁴ at h = 0.005) turns their
 * last-bit differences into weight differences of ~1e-4. Without and with temporal candidates
 * (radius 1 to 3; X̂(t−1)'s L near the frame's, so they compete; and the zero state's
 * VF_REFINE_NO_PREV, where they must weigh nothing on the GPU too), with the sub-pixel
 * candidate at every radius but 4 (run_refine), and at radius 2, 3 (the zero state: motion
 * out 0) and 5 the motion-predicted candidates (radius 2, 1 and 3) around a random whole-pixel
 * motion, whose motion out is compared too. */
static void warp_refine_matches_cpu(void **state)
{
    (void)state;
    const int sizes[][2] = {{32, 48}, {8, 4}, {36, 64}};
    const int rp[][2] = {{4, 5}, {1, 1}, {7, 9}, {2, 3}};
    const float hs[] = {0.005f, 0.05f};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (size_t ri = 0; ri < sizeof rp / sizeof rp[0]; ri++)
            for (size_t hi = 0; hi < sizeof hs / sizeof hs[0]; hi++)
                for (int tr = 0; tr <= VF_REFINE_MAX_TEMPORAL; tr++) {
                    const int H = sizes[si][0], W = sizes[si][1];
                    struct pair g, ry, ab, pos, out, l, pl, pab;
                    pair_make(&g, VF_F32, 2, 1, H, W, 0, 0, 1);
                    pair_make(&ry, VF_F32, 2, 1, H, W, 0, 0, 1);
                    pair_make(&ab, VF_F32, 2, 2, H, W, 0, -80, 80);
                    pair_make(&pos, VF_F32, 2, 2, H / 4, W / 4, 0, -2, H);
                    pair_fill(&pos, 1, -2, W);
                    pair_make(&out, VF_F32, 2, 2, H, W, 0, 0, 0);
                    pair_make(&l, VF_F32, 2, 1, H, W, 0, 40, 42);
                    /* tr = 3: the zero state */
                    pair_make(&pl, VF_F32, 2, 1, H, W, 0, tr == 3 ? VF_REFINE_NO_PREV : 40,
                              tr == 3 ? VF_REFINE_NO_PREV : 42);
                    pair_make(&pab, VF_F32, 2, 2, H, W, 0, -80, 80);
                    const int pr = tr == 2 ? 2 : tr == 3 ? 1 : tr == 5 ? 3 : 0;
                    struct pair mv, mo;
                    pair_make(&mv, VF_F32, 2, 2, H, W, 0, -8, 8);
                    for (size_t i = 0; i < mv.count; i++)   /* whole pixels, as the state holds */
                        mv.host[i] = roundf(mv.host[i]);
                    pair_make(&mo, VF_F32, 2, 2, H, W, 0, 0, 0);
                    struct op_case k = {.run = run_refine, .radius = rp[ri][0], .mode = rp[ri][1],
                                        .eps = hs[hi], .tol = 1e-3, .src = &g, .src2 = &ry,
                                        .x3 = &ab, .x4 = &pos, .dst = &out,
                                        .x5 = tr ? &l : NULL, .x6 = &pl, .x7 = &pab,
                                        .x8 = &mv, .x9 = &mo, .tradius = tr, .predict = pr,
                                        .tau = hs[hi] / 2,
                                        .in = {&g, &ry, &ab, &pos, &out, &l, &pl, &pab, &mv, &mo},
                                        .nin = 10, .out = {&out, &mo}, .nout = pr ? 2 : 1};
                    snprintf(k.name, sizeof k.name, "warp refine %dx%d radius %d patch %d h %g "
                             "temporal %d%s predict %d", H, W, rp[ri][0], rp[ri][1],
                             (double)hs[hi], tr, tr && tr != 4 ? " sub-pixel" : "", pr);
                    run_case(&k);
                    pair_free(&g);
                    pair_free(&ry);
                    pair_free(&ab);
                    pair_free(&pos);
                    pair_free(&out);
                    pair_free(&l);
                    pair_free(&pl);
                    pair_free(&pab);
                    pair_free(&mv);
                    pair_free(&mo);
                }
}

/* ============================== errors ===================================================== */

static void mixed_backends_are_refused(void **state)
{
    (void)state;
    struct pair a;
    pair_make(&a, VF_F32, 1, 4, 3, 3, 0, 0, 1);
    struct vf_error err = {0};
    assert_int_equal(vf_op_add(&a.t[0], &a.t[1], &a.t[1], &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "another backend"));
    pair_free(&a);
}

int main(void)
{
    tu_lcg_seed(0x2545f4914f6cdd1dull);
    if (!vf_kernels_has_cuda()) {
        printf("skipped: no GPU (this build has no CUDA backend)\n");
        return 77;
    }
    int count = 0;
    struct vf_error err = {0};
    if (vf_kernels_gpu_count(&count, &err) != VF_OK) {
        fprintf(stderr, "test_cuda_ops: %s\n", err.msg);
        return 1;
    }
    if (count < 1) {
        printf("skipped: no GPU\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(act_matches_cpu),
        cmocka_unit_test(instance_norm_matches_cpu),
        cmocka_unit_test(resize_matches_cpu),
        cmocka_unit_test(add_matches_cpu),
        cmocka_unit_test(gated_add_matches_cpu),
        cmocka_unit_test(motion_factor_matches_cpu),
        cmocka_unit_test(concat_and_copy_are_exact),
        cmocka_unit_test(l2norm_matches_cpu),
        cmocka_unit_test(attention_rows_match_cpu),
        cmocka_unit_test(colour_ops_match_cpu),
        cmocka_unit_test(guided_upsample_matches_cpu),
        cmocka_unit_test(warp_refine_matches_cpu),
        cmocka_unit_test(carry_matches_cpu),
        cmocka_unit_test(mixed_backends_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
