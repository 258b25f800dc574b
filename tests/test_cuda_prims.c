/* tests/test_cuda_prims.c: the CUDA backend's primitives (kernels/cudnn.cu: cuDNN convolution
 * and pooling, cuBLAS matmul) against the CPU backend's (kernels/dnnl.c, themselves checked
 * against plain loops by tests/test_prims.c), with the same weights and inputs.
 *
 * Tolerances (relative L2: ‖cuda − cpu‖₂ / ‖cpu‖₂):
 *   f32:            ≤ 1e-4 against the CPU's f32 (TF32 must be off: it would give ~1e-3).
 *   bf16, f16:      ≤ 3e-2 against the CPU in the same dtypes where the CPU computes in them
 *                  (bf16 with avx512_bf16), else against the CPU's f32 result.
 *   Max pooling in f32: bit-exact.
 *   Determinism: two CUDA runs of one primitive give bit-identical results.
 * Every run must allocate nothing (vf_backend_bytes unchanged), and channels outside a
 * destination view must keep their values.
 *
 * Exits 77 ("skipped: no GPU") when the build has no CUDA backend or no GPU is visible. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "test_util.h"

static struct vf_backend *g_cpu, *g_gpu;

/* ============================== helpers ==================================================== */



static const enum vf_dtype k_dtypes[] = {VF_F32, VF_BF16, VF_F16};

/* The CPU's dtype to compare a CUDA result of `dt` with. */
static enum vf_dtype cpu_dt_for(enum vf_dtype dt)
{
    return vf_backend_supports(g_cpu, dt) ? dt : VF_F32;
}

static double tol_for(enum vf_dtype dt) { return dt == VF_F32 ? 1e-4 : 3e-2; }

static void sync_be(struct vf_backend *be)
{
    struct vf_error err = {0};
    if (vf_backend_sync(be, &err))
        fail_msg("vf_backend_sync: %s", err.msg);
}

/* Fill every element of a (parent) tensor with a pattern (exact in bf16 and f16). */



/* A dense tensor, or a view of channels [c0, c0 + c) of a parent with `extra` more channels
 * (filled with the sentinel pattern). */
static struct vf_tensor make_act(struct vf_backend *be, enum vf_dtype dt, int n, int c, int h,
                                 int w, int extra, int c0, struct vf_tensor *parent)
{
    struct vf_error err = {0};
    memset(parent, 0, sizeof *parent);
    struct vf_tensor t;
    if (!extra) {
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

static void check_results(const char *what, enum vf_dtype dt, const float *gpu,
                          const float *gpu2, const float *cpu, enum vf_dtype cpu_dt, size_t n,
                          const char *impl)
{
    const double e = rel_l2f(gpu, cpu, n), tol = tol_for(dt);
    printf("  %-34s %-4s vs cpu %-4s rel %.2e (<= %.0e)  %s\n", what, vf_dtype_name(dt),
           vf_dtype_name(cpu_dt), e, tol, impl);
    if (!(e <= tol))
        fail_msg("%s (%s): relative L2 %.3e above %.0e", what, vf_dtype_name(dt), e, tol);
    if (memcmp(gpu, gpu2, n * sizeof *gpu) != 0)
        fail_msg("%s (%s): two CUDA runs differ", what, vf_dtype_name(dt));
}

/* ============================== convolution ================================================ */

struct conv_case {
    const char *name;
    int n, ic, oc, h, w, k, stride, pad, dil, groups;
    enum vf_pad mode;
    bool bias, residual;
    enum vf_act act;
    float alpha, scale;
    int src_extra, src_c0, dst_extra, dst_c0; /* views: parent has c + extra channels */
};

static const struct conv_case conv_cases[] = {
    {"plain 3x3", 2, 8, 16, 9, 11, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_NONE, 0, 0,
     0, 0, 0, 0},
    {"no bias 3x3", 1, 16, 24, 10, 7, 3, 1, 1, 1, 1, VF_PAD_ZERO, false, false, VF_ACT_NONE, 0,
     0, 0, 0, 0, 0},
    {"stride 2", 1, 16, 32, 12, 10, 3, 2, 1, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_RELU, 0, 0,
     0, 0, 0, 0},
    {"dilation 2", 1, 16, 16, 13, 13, 3, 1, 2, 2, 1, VF_PAD_ZERO, true, false, VF_ACT_NONE, 0,
     0, 0, 0, 0, 0},
    {"depthwise 3x3", 2, 32, 32, 9, 9, 3, 1, 1, 1, 32, VF_PAD_ZERO, true, false, VF_ACT_NONE, 0,
     0, 0, 0, 0, 0},
    {"grouped 4", 1, 16, 32, 8, 8, 3, 1, 1, 1, 4, VF_PAD_ZERO, true, false, VF_ACT_NONE, 0, 0,
     0, 0, 0, 0},
    {"reflect pad 3, 7x7", 1, 4, 16, 16, 16, 7, 1, 3, 1, 1, VF_PAD_REFLECT, true, false,
     VF_ACT_NONE, 0, 0, 0, 0, 0, 0},
    {"reflect pad 1, stride 2", 1, 8, 8, 11, 9, 3, 2, 1, 1, 1, VF_PAD_REFLECT, true, false,
     VF_ACT_RELU, 0, 0, 0, 0, 0, 0},
    {"1x1 residual", 1, 32, 32, 8, 8, 1, 1, 0, 1, 1, VF_PAD_ZERO, true, true, VF_ACT_NONE, 0, 0,
     0, 0, 0, 0},
    {"residual + relu", 1, 16, 16, 8, 8, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, true, VF_ACT_RELU, 0,
     0, 0, 0, 0, 0},
    {"lrelu 0.2", 1, 16, 16, 8, 8, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_LRELU, 0.2f,
     0, 0, 0, 0, 0},
    {"tanh * 128", 1, 16, 2, 8, 8, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_TANH, 0,
     128.0f, 0, 0, 0, 0},
    {"scale 0.5, no activation", 1, 8, 8, 6, 6, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false,
     VF_ACT_NONE, 0, 0.5f, 0, 0, 0, 0},
    {"source view", 1, 8, 16, 9, 9, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_RELU, 0, 0,
     5, 2, 0, 0},
    {"destination view", 1, 8, 16, 9, 9, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, false, VF_ACT_NONE,
     0, 0, 0, 0, 7, 3},
    {"views + residual + lrelu", 2, 8, 8, 7, 7, 3, 1, 1, 1, 1, VF_PAD_ZERO, true, true,
     VF_ACT_LRELU, 0.1f, 2.0f, 3, 1, 4, 4},
    {"reflect from a view", 1, 6, 8, 8, 8, 3, 1, 1, 1, 1, VF_PAD_REFLECT, true, false,
     VF_ACT_NONE, 0, 0, 2, 2, 0, 0},
};

/* Run case c on be in dt → dst_dt `reps` times (re-uploading the residual each time); the
 * results (NCHW f32) go to outs[r]. Returns the primitive's impl in impl. */
static void run_conv(struct vf_backend *be, const struct conv_case *c, enum vf_dtype dt,
                     enum vf_dtype dst_dt, const float *x, const float *wt, const float *bias,
                     const float *res, int reps, float **outs, char *impl, size_t impl_len)
{
    struct vf_error err = {0};
    struct vf_conv_desc d = {.ic = c->ic, .oc = c->oc, .kh = c->k, .kw = c->k,
                             .stride = c->stride, .pad = c->pad, .pad_mode = c->mode,
                             .dilation = c->dil, .groups = c->groups, .residual = c->residual,
                             .act = c->act, .alpha = c->alpha, .scale = c->scale};
    int oh, ow;
    vf_conv_out_size(&d, c->h, c->w, &oh, &ow);
    struct vf_tensor sp, dp;
    struct vf_tensor src = make_act(be, dt, c->n, c->ic, c->h, c->w, c->src_extra, c->src_c0, &sp);
    struct vf_tensor dst =
        make_act(be, dst_dt, c->n, c->oc, oh, ow, c->dst_extra, c->dst_c0, &dp);
    assert_int_equal(vf_tensor_upload(&src, x, &err), VF_OK);

    struct vf_conv *cv = NULL;
    if (vf_conv_create(&cv, be, &d, dt, dst_dt, c->n, c->h, c->w, wt, bias, &err))
        fail_msg("%s (%s -> %s): %s", c->name, vf_dtype_name(dt), vf_dtype_name(dst_dt),
                 err.msg);
    snprintf(impl, impl_len, "%s", vf_conv_impl_(cv));
    assert_true(vf_conv_macs(cv) == (double)c->n * c->oc * oh * ow *
                                        (double)(c->ic / c->groups) * c->k * c->k);
    for (int r = 0; r < reps; r++) {
        if (res)
            assert_int_equal(vf_tensor_upload(&dst, res, &err), VF_OK);
        const size_t bytes = vf_backend_bytes(be);
        if (vf_conv_run(cv, &src, &dst, &err))
            fail_msg("%s: %s", c->name, err.msg);
        assert_int_equal(vf_backend_bytes(be), bytes); /* a run allocates nothing */
        sync_be(be);
        assert_int_equal(vf_tensor_download(&dst, outs[r], &err), VF_OK);
    }
    if (c->dst_extra)
        check_sentinel(&dp, c->dst_c0, c->oc, c->name);
    if (c->src_extra)
        check_sentinel(&sp, c->src_c0, c->ic, c->name);
    vf_conv_destroy(&cv);
    free_act(&src, &sp);
    free_act(&dst, &dp);
}

static void conv_case_all_dtypes(const struct conv_case *c)
{
    struct vf_conv_desc d = {.ic = c->ic, .oc = c->oc, .kh = c->k, .kw = c->k,
                             .stride = c->stride, .pad = c->pad, .pad_mode = c->mode,
                             .dilation = c->dil, .groups = c->groups};
    int oh, ow;
    vf_conv_out_size(&d, c->h, c->w, &oh, &ow);
    const size_t nx = (size_t)c->n * c->ic * c->h * c->w;
    const size_t nw = (size_t)c->oc * (c->ic / c->groups) * c->k * c->k;
    const size_t ny = (size_t)c->n * c->oc * oh * ow;
    float *x = rand_buf(nx, 1.0f), *wt = rand_buf(nw, 1.0f / sqrtf((float)(nw / c->oc)));
    float *bias = c->bias ? rand_buf((size_t)c->oc, 0.5f) : NULL;
    float *res = c->residual ? rand_buf(ny, 1.0f) : NULL;
    float *cpu = malloc(ny * sizeof *cpu), *g[2] = {malloc(ny * sizeof(float)),
                                                    malloc(ny * sizeof(float))};
    assert_non_null(cpu);
    assert_non_null(g[0]);
    assert_non_null(g[1]);
    char impl[128], cimpl[128];
    for (size_t i = 0; i < sizeof k_dtypes / sizeof *k_dtypes; i++) {
        const enum vf_dtype dt = k_dtypes[i];
        if (!vf_backend_supports(g_gpu, dt)) {
            printf("  %-34s %-4s skipped: the GPU cannot compute in it\n", c->name,
                   vf_dtype_name(dt));
            continue;
        }
        /* dst of dt, and (16-bit) an f32 dst of a dt convolution */
        for (int mixed = 0; mixed < (dt == VF_F32 ? 1 : 2); mixed++) {
            const enum vf_dtype dst_dt = mixed ? VF_F32 : dt;
            const enum vf_dtype cdt = cpu_dt_for(dt);
            const enum vf_dtype cdst = cdt == VF_F32 ? VF_F32 : dst_dt;
            float *co[1] = {cpu};
            run_conv(g_cpu, c, cdt, cdst, x, wt, bias, res, 1, co, cimpl, sizeof cimpl);
            run_conv(g_gpu, c, dt, dst_dt, x, wt, bias, res, 2, g, impl, sizeof impl);
            char what[96];
            snprintf(what, sizeof what, "conv %s%s", c->name, mixed ? " -> f32" : "");
            check_results(what, dt, g[0], g[1], cpu, cdt, ny, impl);
        }
    }
    free(x);
    free(wt);
    free(bias);
    free(res);
    free(cpu);
    free(g[0]);
    free(g[1]);
}

static void conv_matches_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof *conv_cases; i++)
        conv_case_all_dtypes(&conv_cases[i]);
}

/* ============================== pooling ==================================================== */

struct pool_case {
    const char *name;
    enum vf_pool_kind kind;
    int k, stride, pad;
    int n, c, h, w;
    int src_extra, src_c0, dst_extra, dst_c0;
};

static const struct pool_case pool_cases[] = {
    {"max 3x3 s2 p1", VF_POOL_MAX, 3, 2, 1, 2, 16, 13, 11, 0, 0, 0, 0},
    {"max 2x2 s2", VF_POOL_MAX, 2, 2, 0, 1, 8, 8, 8, 0, 0, 0, 0},
    {"avg 3x3 s2 p1 (exclude pad)", VF_POOL_AVG, 3, 2, 1, 2, 16, 13, 11, 0, 0, 0, 0},
    {"avg 4x4 s4", VF_POOL_AVG, 4, 4, 0, 1, 2, 16, 24, 0, 0, 0, 0},
    {"max 3x3 s1 p1, views", VF_POOL_MAX, 3, 1, 1, 1, 6, 7, 9, 3, 2, 5, 1},
    {"avg 3x3 s1 p1, views", VF_POOL_AVG, 3, 1, 1, 1, 6, 7, 9, 2, 0, 3, 3},
};

static void run_pool(struct vf_backend *be, const struct pool_case *c, enum vf_dtype dt,
                     const float *x, int reps, float **outs, char *impl, size_t impl_len)
{
    struct vf_error err = {0};
    struct vf_pool_desc d = {c->kind, c->k, c->stride, c->pad};
    int oh, ow;
    vf_pool_out_size(&d, c->h, c->w, &oh, &ow);
    struct vf_tensor sp, dp;
    struct vf_tensor src = make_act(be, dt, c->n, c->c, c->h, c->w, c->src_extra, c->src_c0, &sp);
    struct vf_tensor dst = make_act(be, dt, c->n, c->c, oh, ow, c->dst_extra, c->dst_c0, &dp);
    assert_int_equal(vf_tensor_upload(&src, x, &err), VF_OK);
    struct vf_pool *p = NULL;
    if (vf_pool_create(&p, be, &d, dt, c->n, c->c, c->h, c->w, &err))
        fail_msg("%s (%s): %s", c->name, vf_dtype_name(dt), err.msg);
    snprintf(impl, impl_len, "%s", vf_pool_impl_(p));
    for (int r = 0; r < reps; r++) {
        const size_t bytes = vf_backend_bytes(be);
        if (vf_pool_run(p, &src, &dst, &err))
            fail_msg("%s: %s", c->name, err.msg);
        assert_int_equal(vf_backend_bytes(be), bytes);
        sync_be(be);
        assert_int_equal(vf_tensor_download(&dst, outs[r], &err), VF_OK);
    }
    if (c->dst_extra)
        check_sentinel(&dp, c->dst_c0, c->c, c->name);
    vf_pool_destroy(&p);
    free_act(&src, &sp);
    free_act(&dst, &dp);
}

static void pool_matches_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof *pool_cases; i++) {
        const struct pool_case *c = &pool_cases[i];
        struct vf_pool_desc d = {c->kind, c->k, c->stride, c->pad};
        int oh, ow;
        vf_pool_out_size(&d, c->h, c->w, &oh, &ow);
        const size_t nx = (size_t)c->n * c->c * c->h * c->w, ny = (size_t)c->n * c->c * oh * ow;
        float *x = rand_buf(nx, 2.0f), *cpu = malloc(ny * sizeof *cpu);
        float *g[2] = {malloc(ny * sizeof(float)), malloc(ny * sizeof(float))};
        assert_non_null(cpu);
        assert_non_null(g[0]);
        assert_non_null(g[1]);
        char impl[128], cimpl[128];
        for (size_t j = 0; j < sizeof k_dtypes / sizeof *k_dtypes; j++) {
            const enum vf_dtype dt = k_dtypes[j];
            if (!vf_backend_supports(g_gpu, dt))
                continue;
            const enum vf_dtype cdt = cpu_dt_for(dt);
            float *co[1] = {cpu};
            run_pool(g_cpu, c, cdt, x, 1, co, cimpl, sizeof cimpl);
            run_pool(g_gpu, c, dt, x, 2, g, impl, sizeof impl);
            char what[96];
            snprintf(what, sizeof what, "pool %s", c->name);
            check_results(what, dt, g[0], g[1], cpu, cdt, ny, impl);
            if (dt == VF_F32 && c->kind == VF_POOL_MAX && memcmp(g[0], cpu, ny * sizeof *cpu))
                fail_msg("%s: f32 max pooling is not bit-exact", c->name);
        }
        free(x);
        free(cpu);
        free(g[0]);
        free(g[1]);
    }
}

/* ============================== matmul ===================================================== */

struct mm_case {
    int m, n, k, lda, ldb, ldc;
    bool trans_b;
};

static const struct mm_case mm_cases[] = {
    {37, 29, 45, 45, 29, 29, false},
    {37, 29, 45, 45, 45, 29, true},
    {64, 48, 40, 52, 56, 50, false},  /* lda > k, ldb > n, ldc > n */
    {64, 48, 40, 52, 44, 50, true},   /* lda > k, ldb > k */
    {300, 256, 256, 256, 256, 256, true},
    {128, 300, 64, 72, 300, 304, false},
};

/* Upload a rows × ld row-major host matrix into a tensor of rows (n 1, c ld, h rows, w 1). */
static void upload_rows(struct vf_tensor *t, const float *m, int rows, int ld)
{
    float *tmp = malloc((size_t)rows * ld * sizeof *tmp);
    assert_non_null(tmp);
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < ld; q++)
            tmp[(size_t)q * rows + r] = m[(size_t)r * ld + q];
    struct vf_error err = {0};
    assert_int_equal(vf_tensor_upload(t, tmp, &err), VF_OK);
    free(tmp);
}

static void download_rows(const struct vf_tensor *t, float *m, int rows, int ld)
{
    float *tmp = malloc((size_t)rows * ld * sizeof *tmp);
    assert_non_null(tmp);
    struct vf_error err = {0};
    assert_int_equal(vf_tensor_download(t, tmp, &err), VF_OK);
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < ld; q++)
            m[(size_t)r * ld + q] = tmp[(size_t)q * rows + r];
    free(tmp);
}

/* C (m × n of the m × ldc result, dense) of `reps` runs on be; checks C's padding columns. */
static void run_mm(struct vf_backend *be, const struct mm_case *c, enum vf_dtype dt,
                   const float *a, const float *b, int reps, float **outs, char *impl,
                   size_t impl_len)
{
    struct vf_error err = {0};
    const int brows = c->trans_b ? c->n : c->k;
    struct vf_tensor ta, tb, tc;
    assert_int_equal(vf_tensor_alloc(&ta, be, dt, 1, c->lda, c->m, 1, &err), VF_OK);
    assert_int_equal(vf_tensor_alloc(&tb, be, dt, 1, c->ldb, brows, 1, &err), VF_OK);
    assert_int_equal(vf_tensor_alloc(&tc, be, VF_F32, 1, c->ldc, c->m, 1, &err), VF_OK);
    upload_rows(&ta, a, c->m, c->lda);
    upload_rows(&tb, b, brows, c->ldb);
    const size_t nc = (size_t)c->m * c->ldc;
    float *cm = malloc(nc * sizeof *cm);
    assert_non_null(cm);
    for (size_t i = 0; i < nc; i++)
        cm[i] = -7.0f;
    upload_rows(&tc, cm, c->m, c->ldc);
    struct vf_matmul_desc d = {c->m, c->n, c->k, c->lda, c->ldb, c->ldc, c->trans_b};
    struct vf_matmul *mm = NULL;
    if (vf_matmul_create(&mm, be, &d, dt, &err))
        fail_msg("matmul (%s): %s", vf_dtype_name(dt), err.msg);
    snprintf(impl, impl_len, "%s", vf_matmul_impl_(mm));
    assert_true(vf_matmul_macs(mm) == (double)c->m * c->n * c->k);
    for (int r = 0; r < reps; r++) {
        const size_t bytes = vf_backend_bytes(be);
        if (vf_matmul_run(mm, ta.data, tb.data, (float *)tc.data, &err))
            fail_msg("matmul: %s", err.msg);
        assert_int_equal(vf_backend_bytes(be), bytes);
        sync_be(be);
        download_rows(&tc, cm, c->m, c->ldc);
        for (int i = 0; i < c->m; i++)
            for (int j = 0; j < c->ldc; j++) {
                if (j >= c->n) {
                    if (cm[(size_t)i * c->ldc + j] != -7.0f)
                        fail_msg("matmul wrote C's padding column %d of row %d", j, i);
                } else {
                    outs[r][(size_t)i * c->n + j] = cm[(size_t)i * c->ldc + j];
                }
            }
    }
    vf_matmul_destroy(&mm);
    free(cm);
    vf_tensor_free(&ta);
    vf_tensor_free(&tb);
    vf_tensor_free(&tc);
}

static void matmul_matches_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof mm_cases / sizeof *mm_cases; i++) {
        const struct mm_case *c = &mm_cases[i];
        const int brows = c->trans_b ? c->n : c->k;
        float *a = rand_buf((size_t)c->m * c->lda, 1.0f);
        float *b = rand_buf((size_t)brows * c->ldb, 1.0f);
        const size_t ny = (size_t)c->m * c->n;
        float *cpu = malloc(ny * sizeof *cpu);
        float *g[2] = {malloc(ny * sizeof(float)), malloc(ny * sizeof(float))};
        assert_non_null(cpu);
        assert_non_null(g[0]);
        assert_non_null(g[1]);
        char impl[128], cimpl[128];
        for (size_t j = 0; j < sizeof k_dtypes / sizeof *k_dtypes; j++) {
            const enum vf_dtype dt = k_dtypes[j];
            if (!vf_backend_supports(g_gpu, dt))
                continue;
            const enum vf_dtype cdt = cpu_dt_for(dt);
            float *co[1] = {cpu};
            run_mm(g_cpu, c, cdt, a, b, 1, co, cimpl, sizeof cimpl);
            run_mm(g_gpu, c, dt, a, b, 2, g, impl, sizeof impl);
            char what[96];
            snprintf(what, sizeof what, "matmul %dx%dx%d ld %d/%d/%d%s", c->m, c->n, c->k,
                     c->lda, c->ldb, c->ldc, c->trans_b ? " B^T" : "");
            check_results(what, dt, g[0], g[1], cpu, cdt, ny, impl);
        }
        free(a);
        free(b);
        free(cpu);
        free(g[0]);
        free(g[1]);
    }
}

/* A primitive created for one dtype refuses tensors of another on CUDA too (the shared
 * run-time checks of kernels/dnnl.c). */
static void cuda_run_checks_shapes(void **state)
{
    (void)state;
    struct vf_error err = {0};
    struct vf_conv_desc d = {.ic = 4, .oc = 4, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                             .dilation = 1, .groups = 1};
    float wt[4 * 4 * 9] = {0};
    struct vf_conv *cv = NULL;
    assert_int_equal(vf_conv_create(&cv, g_gpu, &d, VF_F32, VF_F32, 1, 5, 5, wt, NULL, &err),
                     VF_OK);
    struct vf_tensor src, dst;
    assert_int_equal(vf_tensor_alloc(&src, g_gpu, VF_F32, 1, 4, 6, 5, &err), VF_OK);
    assert_int_equal(vf_tensor_alloc(&dst, g_gpu, VF_F32, 1, 4, 5, 5, &err), VF_OK);
    assert_int_equal(vf_conv_run(cv, &src, &dst, &err), VF_EINVAL);
    printf("  %s\n", err.msg);
    vf_conv_destroy(&cv);
    vf_tensor_free(&src);
    vf_tensor_free(&dst);
}

/* A tensor far larger than any GPU (1 TiB): VF_ENOMEM whose message names the GPU, says out of
 * memory and what to do; the backend holds no more than before. */
static void out_of_memory_names_the_gpu(void **state)
{
    (void)state;
    size_t before = vf_backend_bytes(g_gpu);
    struct vf_tensor t;
    struct vf_error err = {0};
    assert_int_equal(vf_tensor_alloc(&t, g_gpu, VF_F32, 1, 64, 65536, 65536, &err), VF_ENOMEM);
    printf("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "GPU 0"));
    assert_non_null(strstr(err.msg, "out of memory"));
    assert_non_null(strstr(err.msg, "smaller inference size"));
    assert_int_equal(vf_backend_bytes(g_gpu), before);
}

int main(void)
{
    tu_xs_seed(0x2545f4914f6cdd1dull);
    int gpus = 0;
    struct vf_error err = {0};
    if (vf_kernels_has_cuda() && vf_kernels_gpu_count(&gpus, &err) != VF_OK) {
        fprintf(stderr, "%s\n", err.msg); /* a driver that is there but broken */
        return 1;
    }
    if (!vf_kernels_has_cuda() || gpus == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    struct vf_backend_opts co = {.device = VF_DEVICE_CPU, .threads = 0};
    struct vf_backend_opts go = {.device = VF_DEVICE_CUDA, .gpu = 0};
    if (vf_backend_create(&g_cpu, &co, &err) || vf_backend_create(&g_gpu, &go, &err)) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return 1;
    }
    char desc[256];
    if (vf_kernels_gpu_describe(0, desc, sizeof desc, &err) == VF_OK)
        printf("%s\n", desc);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_matches_cpu),
        cmocka_unit_test(pool_matches_cpu),
        cmocka_unit_test(matmul_matches_cpu),
        cmocka_unit_test(cuda_run_checks_shapes),
        cmocka_unit_test(out_of_memory_names_the_gpu),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    vf_backend_destroy(&g_gpu);
    vf_backend_destroy(&g_cpu);
    return rc;
}
