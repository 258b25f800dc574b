// needs: golden
/* tests/test_golden.c: the whole network in C against the PyTorch reference (train/golden.py):
 * `tiny` and `full` with random weights at a fixed seed, over 5 recurrent frames, every tensor
 * the reference wrote (F's four taps, the warp W^ab, the confidence S, C's ab, and the
 * post-processed full-size RGB and Cb/Cr) compared per tensor by the relative error
 *     rel = ‖c − g‖₂ / ‖g‖₂
 * asserted ≤ 1e-4 in f32 and ≤ 3e-2 in bf16 (against the same f32 reference). With A.refine
 * (tiny) the f32 bound of the warp and of what follows it (ab, rgb_full, cbcr_full) is 1e-3:
 * the refinement blends its windows bilinearly by the expected position, and the sharp softmax
 * (τ 0.005) over the random network's flat scores turns the features' float noise into position
 * noise (measured 2.3e-4 at worst; the output moves continuously with it). Also: the output
 * is bit-identical with 1 and 2 threads, and the same weights from a file and from a buffer
 * give the same output. Reference pass-through (pt_* tensors): a frame that is the reference's
 * own picture takes its colours, and the next frame runs from them; C's gate ramps in over the
 * frames after it (C.gate_ramp; f32 and bf16). The guided filter (post
 * step 1 at radius 2), which tiny does not take, against the reference's through it. On a CPU
 * without bf16 the bf16 cases are reported as skipped.
 * The CUDA backend (cuda_* cases): the same comparisons on GPU 0 in f32 (TF32 off), bf16 and
 * f16, each frame replayed from a CUDA graph; a graph replay gives the same bytes as the same
 * frames enqueued one operator at a time, and two runs give the same bytes. Where no GPU is
 * visible (or the build has no CUDA backend) they report "skipped: no GPU". */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/node.h"

#define FRAMES 5
#define TOL_F32 1e-4
#define TOL_BF16 3e-2                   /* bf16 and f16 */
#define TOL_REFINE_F32 1e-3             /* f32, the refined warp and what follows it */

struct golden {
    struct vf_safetensors *st;
    int h, w, fh, fw;
};

static const struct vf_st_tensor *need(const struct golden *g, const char *name)
{
    const struct vf_st_tensor *t = vf_safetensors_find(g->st, name);
    if (!t) fail_msg("golden file lacks tensor '%s' (remake it: scripts/make_golden.sh)", name);
    return t;
}

static float *as_f32(const struct vf_st_tensor *t)
{
    float *v = malloc((size_t)t->count * sizeof(float));
    assert_non_null(v);
    struct vf_error err = {0};
    if (vf_st_to_f32(t, v, &err)) fail_msg("%s", err.msg);
    return v;
}

static void golden_open(const char *arch, struct golden *g, char *model, size_t mlen)
{
    char path[1024];
    struct vf_error err = {0};
    snprintf(path, sizeof path, "%s/golden/%s/golden.safetensors", VF_TEST_DATA, arch);
    snprintf(model, mlen, "%s/golden/%s/model.safetensors", VF_TEST_DATA, arch);
    if (vf_safetensors_open(path, &g->st, &err)) fail_msg("%s", err.msg);
    const struct vf_st_tensor *grey = need(g, "grey_t0"), *full = need(g, "grey_full_t0");
    assert_int_equal(grey->ndim, 2);
    assert_int_equal(full->ndim, 2);
    g->h = (int)grey->shape[0];
    g->w = (int)grey->shape[1];
    g->fh = (int)full->shape[0];
    g->fw = (int)full->shape[1];
}

/* Relative L2 error of c against the golden tensor `name`; also reports the largest absolute
 * difference. */
static double compare(const struct golden *g, const char *name, const float *c, size_t n,
                      double *maxabs)
{
    const struct vf_st_tensor *t = need(g, name);
    if ((size_t)t->count != n) fail_msg("%s: %zu values in C, %lld in the golden file", name, n,
                                        (long long)t->count);
    float *ref = as_f32(t);
    double num = 0, den = 0, ma = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)c[i] - (double)ref[i];
        if (!isfinite(c[i])) d = INFINITY;
        num += d * d;
        den += (double)ref[i] * ref[i];
        if (fabs(d) > ma) ma = fabs(d);
    }
    free(ref);
    *maxabs = ma;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

struct outputs {
    float *tap[4], *warp, *conf, *ab, *rgb, *cbcr;
    size_t ntap[4];
};

static void outputs_alloc(struct outputs *o, struct vf_colorizer *cz, const struct golden *g)
{
    for (int k = 0; k < 4; k++) {
        int c, h, w;
        vf_colorizer_tap_shape(cz, k, &c, &h, &w);
        o->ntap[k] = (size_t)c * h * w;
        o->tap[k] = malloc(o->ntap[k] * sizeof(float));
    }
    size_t n = (size_t)g->h * g->w, nf = (size_t)g->fh * g->fw;
    o->warp = malloc(2 * n * sizeof(float));
    o->conf = malloc(n * sizeof(float));
    o->ab = malloc(2 * n * sizeof(float));
    o->rgb = malloc(3 * nf * sizeof(float));
    o->cbcr = malloc(2 * nf * sizeof(float));
    assert_true(o->warp && o->conf && o->ab && o->rgb && o->cbcr);
}

static void outputs_free(struct outputs *o)
{
    for (int k = 0; k < 4; k++) free(o->tap[k]);
    free(o->warp);
    free(o->conf);
    free(o->ab);
    free(o->rgb);
    free(o->cbcr);
}

static struct vf_colorizer *make_graph(struct vf_backend *be, const struct vf_net *net,
                                       const struct golden *g, enum vf_dtype dt, bool graph)
{
    struct vf_error err = {0};
    struct vf_colorizer *cz = NULL;
    struct vf_colorizer_opts o = {.be = be, .precision = dt, .h = g->h, .w = g->w,
                                  .full_h = g->fh, .full_w = g->fw, .kr = 0.2126f,
                                  .kb = 0.0722f, .graph = graph};
    if (vf_colorizer_create(&cz, net, &o, &err)) fail_msg("%s", err.msg);
    float *ref = as_f32(need(g, "ref_rgb"));
    if (vf_colorizer_set_reference(cz, ref, NULL, &err)) fail_msg("%s", err.msg);
    free(ref);
    return cz;
}

static struct vf_colorizer *make(struct vf_backend *be, const struct vf_net *net,
                                 const struct golden *g, enum vf_dtype dt)
{
    return make_graph(be, net, g, dt, false);
}

/* A backend on GPU 0, or the test reported as skipped (no CUDA build, no driver or no GPU:
 * vf_kernels_gpu_count says 0); a driver that fails otherwise fails the test, as test_cuda_ops
 * does, not a skip that reads as a pass. */
static struct vf_backend *cuda_backend_or_skip(void)
{
    struct vf_error err = {0};
    int gpus = 0;
    if (vf_kernels_has_cuda() && vf_kernels_gpu_count(&gpus, &err) != VF_OK)
        fail_msg("counting the GPUs: %s", err.msg);
    if (!vf_kernels_has_cuda() || gpus == 0) {
        printf("skipped: no GPU%s\n", vf_kernels_has_cuda() ? "" : " (built without CUDA)");
        skip();
    }
    struct vf_backend *be = NULL;
    struct vf_backend_opts bo = {.device = VF_DEVICE_CUDA, .gpu = 0};
    if (vf_backend_create(&be, &bo, &err)) fail_msg("%s", err.msg);
    return be;
}

/* Frame t's golden grey at inference size and at full size (malloc'd). */
static void frame_greys(const struct golden *g, int t, float **grey, float **greyf)
{
    char name[64];
    snprintf(name, sizeof name, "grey_t%d", t);
    *grey = as_f32(need(g, name));
    snprintf(name, sizeof name, "grey_full_t%d", t);
    *greyf = as_f32(need(g, name));
}

/* Run one frame t and fill o. */
static void run_frame(struct vf_colorizer *cz, const struct golden *g, int t, struct outputs *o)
{
    struct vf_error err = {0};
    float *grey, *greyf;
    frame_greys(g, t, &grey, &greyf);
    struct vf_colorizer_taps taps = {.warp_ab = o->warp, .conf = o->conf};
    for (int k = 0; k < 4; k++) taps.f_tap[k] = o->tap[k];
    if (vf_colorizer_frame(cz, grey, o->ab, &taps, &err)) fail_msg("frame %d: %s", t, err.msg);
    if (vf_colorizer_post(cz, greyf, o->rgb, o->cbcr, &err)) fail_msg("post %d: %s", t, err.msg);
    free(grey);
    free(greyf);
}

/* The network against the golden tensors. variant NULL: the arch's model.safetensors; "gated":
 * model_gated.safetensors (the same weights with a gate on C, arch C.gate) against gated_ab_t*,
 * gated_rgb_full_t* and gated_cbcr_full_t* (F's taps, the warp and conf are the plain model's:
 * the gate is after them and the warp's recurrent state is the warp's own); "motion":
 * model_motion.safetensors (that gate with C.gate_motion) against motion_ab_t* and so on;
 * "motion_px": model_motion_px.safetensors (the factor per pixel, C.gate_motion_radius);
 * "predict": model_predict.safetensors (the gated model with A.refine.predict) against its own
 * warp too, predict_warp_ab_t*. */
static void golden_run_variant(const char *arch, const char *variant, enum vf_dtype dt,
                               enum vf_device device)
{
    struct golden g = {0};
    char model[1024];
    struct vf_error err = {0};
    struct vf_backend *be = NULL;
    if (device == VF_DEVICE_CUDA) {
        be = cuda_backend_or_skip();
    } else {
        struct vf_backend_opts bo = {.device = VF_DEVICE_CPU, .threads = 0};
        assert_int_equal(vf_backend_create(&be, &bo, &err), VF_OK);
    }
    golden_open(arch, &g, model, sizeof model);
    if (variant)
        snprintf(model, sizeof model, "%s/golden/%s/model_%s.safetensors", VF_TEST_DATA, arch,
                 variant);
    if (dt != VF_F32 && !vf_backend_supports(be, dt)) {
        printf("skipped: %s %s: this %s has no native %s\n", arch, vf_dtype_name(dt),
               device == VF_DEVICE_CUDA ? "GPU" : "CPU", vf_dtype_name(dt));
        vf_backend_destroy(&be);
        vf_safetensors_close(&g.st);
        skip();
    }
    struct vf_net *net = NULL;
    if (vf_net_load(model, &net, &err)) fail_msg("%s", err.msg);
    struct vf_colorizer *cz = make_graph(be, net, &g, dt, device == VF_DEVICE_CUDA);
    struct outputs o = {0};
    outputs_alloc(&o, cz, &g);
    double tol = dt == VF_F32 ? TOL_F32 : TOL_BF16, worst = 0;
    const char *worst_name = "";
    char vfmt[4][48];   /* a variant's names of its outputs (worst_name may point here) */
    size_t n = (size_t)g.h * g.w, nf = (size_t)g.fh * g.fw;
    if (variant && !vf_net_arch(net)->c_gate)
        fail_msg("%s: the model is not gated", model);
    if (variant && (strncmp(variant, "motion", 6) == 0) != (vf_net_arch(net)->c_gate_motion > 0.0f))
        fail_msg("%s: C.gate_motion is %s", model, vf_net_arch(net)->c_gate_motion > 0.0f ? "set" : "missing");
    if (variant && (strcmp(variant, "motion_px") == 0) != vf_net_arch(net)->c_gate_motion_px)
        fail_msg("%s: C.gate_motion_radius is %s", model, vf_net_arch(net)->c_gate_motion_px ? "set" : "missing");
    const bool predict = variant && strcmp(variant, "predict") == 0;
    if (predict != (vf_net_arch(net)->a_refine_predict > 0))
        fail_msg("%s: A.refine.predict is %s", model, predict ? "missing" : "set");
    printf("%s%s%s %s on %s at %dx%d (post %dx%d), tolerance %.0e relative L2 per tensor\n", arch,
           variant ? " " : "", variant ? variant : "", vf_dtype_name(dt), device == VF_DEVICE_CUDA ? "GPU 0" : "the CPU", g.h, g.w, g.fh,
           g.fw, tol);
    for (int t = 0; t < FRAMES; t++) {
        run_frame(cz, &g, t, &o);
        /* on a GPU, frames after the first are graph replays: a capture that fell back to
         * eager execution (a warning in production) fails the test */
        if (device == VF_DEVICE_CUDA && t >= 1 && !(vf_colorizer_times(cz)->graphed > 0))
            fail_msg("%s %s: frame %d was not replayed from a CUDA graph (the capture failed: "
                     "see the warning above)", arch, vf_dtype_name(dt), t);
        struct { const char *fmt; int k; const float *v; size_t n; } items[] = {
            {"f_tap%d_t%d", 0, o.tap[0], o.ntap[0]}, {"f_tap%d_t%d", 1, o.tap[1], o.ntap[1]},
            {"f_tap%d_t%d", 2, o.tap[2], o.ntap[2]}, {"f_tap%d_t%d", 3, o.tap[3], o.ntap[3]},
            {"warp_ab_t%d", -1, o.warp, 2 * n}, {"conf_t%d", -1, o.conf, n},
            {"ab_t%d", -1, o.ab, 2 * n}, {"rgb_full_t%d", -1, o.rgb, 3 * nf},
            {"cbcr_full_t%d", -1, o.cbcr, 2 * nf},
        };
        if (variant) {   /* C's outputs and what follows them: the variant's own */
            const char *base[3] = {"ab_t%d", "rgb_full_t%d", "cbcr_full_t%d"};
            for (int k = 0; k < 3; k++) {
                snprintf(vfmt[k], sizeof vfmt[k], "%s_%s", variant, base[k]);
                items[6 + k].fmt = vfmt[k];
            }
            if (predict) {  /* and the warp, whose candidates differ */
                snprintf(vfmt[3], sizeof vfmt[3], "%s_warp_ab_t%%d", variant);
                items[4].fmt = vfmt[3];
            }
        }
        printf("  t=%d", t);
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            char name[64];
            if (items[i].k >= 0) snprintf(name, sizeof name, items[i].fmt, items[i].k, t);
            else snprintf(name, sizeof name, items[i].fmt, t);
            double ma, rel = compare(&g, name, items[i].v, items[i].n, &ma);
            printf("  %s %.1e (max |d| %.2g)", name, rel, ma);
            if (!(rel <= worst)) {
                worst = rel;
                worst_name = items[i].fmt;
            }
            double tl = tol;
            if (dt == VF_F32 && vf_net_arch(net)->a_refine_radius && i >= 4 && i != 5)
                tl = TOL_REFINE_F32;   /* warp_ab, ab, rgb_full, cbcr_full (not conf) */
            if (!(rel <= tl))
                fail_msg("\n%s %s: %s: relative error %.3e > %.0e", arch, vf_dtype_name(dt),
                         name, rel, tl);
        }
        printf("\n");
    }
    printf("  worst: %.2e (%s)\n", worst, worst_name);
    outputs_free(&o);
    vf_colorizer_destroy(&cz);
    vf_net_free(&net);
    vf_backend_destroy(&be);
    vf_safetensors_close(&g.st);
}

static void golden_run(const char *arch, enum vf_dtype dt, enum vf_device device)
{
    golden_run_variant(arch, NULL, dt, device);
}

static void tiny_f32(void **s) { (void)s; golden_run("tiny", VF_F32, VF_DEVICE_CPU); }
static void tiny_gated_f32(void **s) { (void)s; golden_run_variant("tiny", "gated", VF_F32, VF_DEVICE_CPU); }
static void tiny_gated_bf16(void **s) { (void)s; golden_run_variant("tiny", "gated", VF_BF16, VF_DEVICE_CPU); }
static void cuda_tiny_gated_f32(void **s) { (void)s; golden_run_variant("tiny", "gated", VF_F32, VF_DEVICE_CUDA); }
static void cuda_tiny_gated_bf16(void **s) { (void)s; golden_run_variant("tiny", "gated", VF_BF16, VF_DEVICE_CUDA); }
static void tiny_motion_f32(void **s) { (void)s; golden_run_variant("tiny", "motion", VF_F32, VF_DEVICE_CPU); }
static void tiny_motion_bf16(void **s) { (void)s; golden_run_variant("tiny", "motion", VF_BF16, VF_DEVICE_CPU); }
static void cuda_tiny_motion_f32(void **s) { (void)s; golden_run_variant("tiny", "motion", VF_F32, VF_DEVICE_CUDA); }
static void cuda_tiny_motion_bf16(void **s) { (void)s; golden_run_variant("tiny", "motion", VF_BF16, VF_DEVICE_CUDA); }
static void tiny_predict_f32(void **s) { (void)s; golden_run_variant("tiny", "predict", VF_F32, VF_DEVICE_CPU); }
static void tiny_predict_bf16(void **s) { (void)s; golden_run_variant("tiny", "predict", VF_BF16, VF_DEVICE_CPU); }
static void cuda_tiny_predict_f32(void **s) { (void)s; golden_run_variant("tiny", "predict", VF_F32, VF_DEVICE_CUDA); }
static void cuda_tiny_predict_bf16(void **s) { (void)s; golden_run_variant("tiny", "predict", VF_BF16, VF_DEVICE_CUDA); }
static void tiny_motion_px_f32(void **s) { (void)s; golden_run_variant("tiny", "motion_px", VF_F32, VF_DEVICE_CPU); }
static void tiny_motion_px_bf16(void **s) { (void)s; golden_run_variant("tiny", "motion_px", VF_BF16, VF_DEVICE_CPU); }
static void cuda_tiny_motion_px_f32(void **s) { (void)s; golden_run_variant("tiny", "motion_px", VF_F32, VF_DEVICE_CUDA); }
static void cuda_tiny_motion_px_bf16(void **s) { (void)s; golden_run_variant("tiny", "motion_px", VF_BF16, VF_DEVICE_CUDA); }
static void tiny_bf16(void **s) { (void)s; golden_run("tiny", VF_BF16, VF_DEVICE_CPU); }
static void full_f32(void **s) { (void)s; golden_run("full", VF_F32, VF_DEVICE_CPU); }
static void full_bf16(void **s) { (void)s; golden_run("full", VF_BF16, VF_DEVICE_CPU); }
static void cuda_tiny_f32(void **s) { (void)s; golden_run("tiny", VF_F32, VF_DEVICE_CUDA); }
static void cuda_tiny_bf16(void **s) { (void)s; golden_run("tiny", VF_BF16, VF_DEVICE_CUDA); }
static void cuda_tiny_f16(void **s) { (void)s; golden_run("tiny", VF_F16, VF_DEVICE_CUDA); }
static void cuda_full_f32(void **s) { (void)s; golden_run("full", VF_F32, VF_DEVICE_CUDA); }
static void cuda_full_bf16(void **s) { (void)s; golden_run("full", VF_BF16, VF_DEVICE_CUDA); }
static void cuda_full_f16(void **s) { (void)s; golden_run("full", VF_F16, VF_DEVICE_CUDA); }

/* On a GPU: frames replayed from a CUDA graph give the bytes of the same frames enqueued one
 * operator at a time (the same kernels in the same order), and a second run gives them again
 * (cuDNN's algorithms are chosen among the deterministic ones; no atomics in our kernels). */
static void cuda_graph_equals_eager_and_repeats(void **state)
{
    (void)state;
    struct vf_backend *be = cuda_backend_or_skip();
    struct golden g = {0};
    char model[1024];
    golden_open("tiny", &g, model, sizeof model);
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    if (vf_net_load(model, &net, &err)) fail_msg("%s", err.msg);
    struct outputs o[3];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 3; i++) {
        struct vf_colorizer *cz = make_graph(be, net, &g, VF_F32, i != 1);
        outputs_alloc(&o[i], cz, &g);
        for (int t = 0; t < 4; t++) run_frame(cz, &g, t, &o[i]);
        /* runs 0 and 2 replayed frames 1..3 from the graph, run 1 never did */
        assert_true((vf_colorizer_times(cz)->graphed > 0) == (i != 1));
        vf_colorizer_destroy(&cz);
    }
    size_t n = (size_t)g.h * g.w, nf = (size_t)g.fh * g.fw;
    for (int i = 1; i < 3; i++) {
        assert_memory_equal(o[0].ab, o[i].ab, 2 * n * sizeof(float));
        assert_memory_equal(o[0].warp, o[i].warp, 2 * n * sizeof(float));
        assert_memory_equal(o[0].cbcr, o[i].cbcr, 2 * nf * sizeof(float));
    }
    for (int i = 0; i < 3; i++) outputs_free(&o[i]);
    vf_net_free(&net);
    vf_backend_destroy(&be);
    vf_safetensors_close(&g.st);
}

/* DESIGN.md §4: a rank's output does not depend on its thread count. */
static void same_bytes_with_one_and_two_threads(void **state)
{
    (void)state;
    struct golden g = {0};
    char model[1024];
    golden_open("tiny", &g, model, sizeof model);
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    if (vf_net_load(model, &net, &err)) fail_msg("%s", err.msg);
    struct outputs o[2];
    memset(o, 0, sizeof o);
    for (int i = 0; i < 2; i++) {
        struct vf_backend *be = NULL;
        struct vf_backend_opts bo = {.device = VF_DEVICE_CPU, .threads = i + 1};
        assert_int_equal(vf_backend_create(&be, &bo, &err), VF_OK);
        struct vf_colorizer *cz = make(be, net, &g, VF_F32);
        outputs_alloc(&o[i], cz, &g);
        for (int t = 0; t < 3; t++) run_frame(cz, &g, t, &o[i]);
        vf_colorizer_destroy(&cz);
        vf_backend_destroy(&be);
    }
    size_t n = (size_t)g.h * g.w, nf = (size_t)g.fh * g.fw;
    assert_memory_equal(o[0].ab, o[1].ab, 2 * n * sizeof(float));
    assert_memory_equal(o[0].cbcr, o[1].cbcr, 2 * nf * sizeof(float));
    assert_memory_equal(o[0].warp, o[1].warp, 2 * n * sizeof(float));
    outputs_free(&o[0]);
    outputs_free(&o[1]);
    vf_net_free(&net);
    vf_safetensors_close(&g.st);
}

/* The weights read from a file and from a buffer (the coordinator broadcasts the file's bytes)
 * give the same bytes out. */
static void file_and_buffer_give_the_same_output(void **state)
{
    (void)state;
    struct golden g = {0};
    char model[1024];
    golden_open("tiny", &g, model, sizeof model);
    struct vf_error err = {0};
    FILE *f = fopen(model, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, len, f), len);
    fclose(f);
    struct vf_net *nets[2] = {NULL, NULL};
    if (vf_net_load(model, &nets[0], &err)) fail_msg("%s", err.msg);
    if (vf_net_load_buffer(buf, len, "buffer", &nets[1], &err)) fail_msg("%s", err.msg);
    free(buf);   /* the net keeps nothing of the buffer */
    struct outputs o[2];
    memset(o, 0, sizeof o);
    struct vf_backend *be = NULL;
    struct vf_backend_opts bo = {.device = VF_DEVICE_CPU};
    assert_int_equal(vf_backend_create(&be, &bo, &err), VF_OK);
    for (int i = 0; i < 2; i++) {
        struct vf_colorizer *cz = make(be, nets[i], &g, VF_F32);
        outputs_alloc(&o[i], cz, &g);
        for (int t = 0; t < 2; t++) run_frame(cz, &g, t, &o[i]);
        vf_colorizer_destroy(&cz);
    }
    assert_memory_equal(o[0].ab, o[1].ab, 2 * (size_t)g.h * g.w * sizeof(float));
    outputs_free(&o[0]);
    outputs_free(&o[1]);
    vf_backend_destroy(&be);
    vf_net_free(&nets[0]);
    vf_net_free(&nets[1]);
    vf_safetensors_close(&g.st);
}

/* Reference pass-through (opts.passthrough) against the reference's pt_* tensors: frame 0 is
 * the reference's own picture (its grey is the reference's luma with the film's Kr, Kb), so it
 * runs no network and takes the reference's a, b (at full size from the full-size reference);
 * frame 1 is not, and runs from that state. f32 tolerances as golden_run's. */
/* What a pass-through test holds: a backend, tiny's golden, a model file and a colorizer on it. */
struct pt_run {
    struct vf_backend *be;
    struct golden g;
    struct vf_net *net;
    struct vf_colorizer_opts co;
    struct vf_colorizer *cz;
};

/* tiny's golden and a colorizer with reference pass-through on device in precision dt (the
 * golden's Kr, Kb; a CUDA graph on a GPU; its options in r->co) for the model file variant (NULL:
 * model.safetensors, else model_<variant>.safetensors). A dt the device has no native support
 * for is reported as skipped. */
static void passthrough_open(enum vf_device device, const char *variant, enum vf_dtype dt,
                             struct pt_run *r)
{
    struct vf_error err = {0};
    *r = (struct pt_run){0};
    if (device == VF_DEVICE_CUDA) {
        r->be = cuda_backend_or_skip();
    } else {
        struct vf_backend_opts bo = {.device = VF_DEVICE_CPU};
        assert_int_equal(vf_backend_create(&r->be, &bo, &err), VF_OK);
    }
    if (dt != VF_F32 && !vf_backend_supports(r->be, dt)) {
        printf("skipped: pass-through %s: this %s has no native %s\n", vf_dtype_name(dt),
               device == VF_DEVICE_CUDA ? "GPU" : "CPU", vf_dtype_name(dt));
        vf_backend_destroy(&r->be);
        skip();
    }
    char model[1024];
    golden_open("tiny", &r->g, model, sizeof model);
    if (variant)
        snprintf(model, sizeof model, "%s/golden/tiny/model_%s.safetensors", VF_TEST_DATA, variant);
    if (vf_net_load(model, &r->net, &err)) fail_msg("%s", err.msg);
    r->co = (struct vf_colorizer_opts){.be = r->be, .precision = dt, .h = r->g.h, .w = r->g.w,
                                       .full_h = r->g.fh, .full_w = r->g.fw, .kr = 0.2126f,
                                       .kb = 0.0722f, .graph = device == VF_DEVICE_CUDA,
                                       .passthrough = true};
    if (vf_colorizer_create(&r->cz, r->net, &r->co, &err)) fail_msg("%s", err.msg);
}

static void passthrough_close(struct pt_run *r)
{
    vf_colorizer_destroy(&r->cz);
    vf_net_free(&r->net);
    vf_backend_destroy(&r->be);
    vf_safetensors_close(&r->g.st);
}

static void passthrough_run(enum vf_device device)
{
    struct vf_error err = {0};
    struct pt_run r;
    passthrough_open(device, NULL, VF_F32, &r);
    float *ref = as_f32(need(&r.g, "ref_rgb")), *ref_full = as_f32(need(&r.g, "ref_rgb_full"));
    if (vf_colorizer_set_reference(r.cz, ref, ref_full, &err)) fail_msg("%s", err.msg);
    struct outputs o = {0};
    outputs_alloc(&o, r.cz, &r.g);
    size_t n = (size_t)r.g.h * r.g.w, nf = (size_t)r.g.fh * r.g.fw;
    const double tl = vf_net_arch(r.net)->a_refine_radius ? TOL_REFINE_F32 : TOL_F32;
    for (int t = 0; t < 2; t++) {
        char name[64];
        float *grey, *greyf;
        frame_greys(&r.g, t, &grey, &greyf);
        if (vf_colorizer_frame(r.cz, grey, o.ab, NULL, &err)) fail_msg("frame %d: %s", t, err.msg);
        if (vf_colorizer_post(r.cz, greyf, NULL, o.cbcr, &err)) fail_msg("post %d: %s", t, err.msg);
        free(grey);
        free(greyf);
        assert_int_equal(vf_colorizer_times(r.cz)->passthrough, 1);   /* frame 0 only */
        double ma_ab, ma_cbcr;
        snprintf(name, sizeof name, "pt_ab_t%d", t);
        double rel_ab = compare(&r.g, name, o.ab, 2 * n, &ma_ab);
        snprintf(name, sizeof name, "pt_cbcr_full_t%d", t);
        double rel_cbcr = compare(&r.g, name, o.cbcr, 2 * nf, &ma_cbcr);
        /* frame 0 is a colour conversion (and keep-luma) of the reference alone */
        double tol = t == 0 ? TOL_F32 : tl;
        printf("  pass-through t=%d: ab %.1e (max |d| %.2g), cbcr_full %.1e (max |d| %.2g), "
               "tolerance %.0e\n", t, rel_ab, ma_ab, rel_cbcr, ma_cbcr, tol);
        if (!(rel_ab <= tol) || !(rel_cbcr <= tol))
            fail_msg("pass-through frame %d: relative error ab %.3e, cbcr_full %.3e > %.0e", t,
                     rel_ab, rel_cbcr, tol);
    }
    /* without a full-size reference a pass-through frame's a, b are upsampled from inference
     * size: the same frame, and still no network */
    float *grey = as_f32(need(&r.g, "grey_t0")), *greyf = as_f32(need(&r.g, "grey_full_t0"));
    float *ab0 = malloc(2 * n * sizeof(float));
    assert_non_null(ab0);
    if (vf_colorizer_set_reference(r.cz, ref, NULL, &err)) fail_msg("%s", err.msg);
    if (vf_colorizer_frame(r.cz, grey, ab0, NULL, &err)) fail_msg("%s", err.msg);
    if (vf_colorizer_post(r.cz, greyf, NULL, o.cbcr, &err)) fail_msg("%s", err.msg);
    assert_int_equal(vf_colorizer_times(r.cz)->passthrough, 2);
    double ma, rel = compare(&r.g, "pt_ab_t0", ab0, 2 * n, &ma);
    assert_true(rel <= TOL_F32);
    rel = compare(&r.g, "pt_cbcr_full_t0", o.cbcr, 2 * nf, &ma);
    printf("  pass-through t=0 without the full-size reference: cbcr_full %.1e (upsampled)\n", rel);
    assert_true(rel > TOL_F32 && rel < 0.2);
    free(ab0);
    free(grey);
    free(greyf);
    vf_colorizer_destroy(&r.cz);
    if (device == VF_DEVICE_CUDA) {
        /* frames replayed from a CUDA graph after a pass-through frame (frame 0 passes, 1 runs
         * eagerly, 2 and 3 replay) give the bytes of the same frames run eagerly */
        float *abs[2];
        for (int graph = 0; graph < 2; graph++) {
            r.co.graph = graph;
            if (vf_colorizer_create(&r.cz, r.net, &r.co, &err)) fail_msg("%s", err.msg);
            if (vf_colorizer_set_reference(r.cz, ref, ref_full, &err)) fail_msg("%s", err.msg);
            abs[graph] = malloc(4 * 2 * n * sizeof(float));
            assert_non_null(abs[graph]);
            for (int t = 0; t < 4; t++) {
                char name[64];
                snprintf(name, sizeof name, "grey_t%d", t);
                float *gt = as_f32(need(&r.g, name));
                if (vf_colorizer_frame(r.cz, gt, abs[graph] + (size_t)t * 2 * n, NULL, &err))
                    fail_msg("frame %d: %s", t, err.msg);
                free(gt);
            }
            assert_int_equal(vf_colorizer_times(r.cz)->passthrough, 1);
            assert_true((vf_colorizer_times(r.cz)->graphed > 0) == (graph == 1));
            vf_colorizer_destroy(&r.cz);
        }
        assert_memory_equal(abs[0], abs[1], 4 * 2 * n * sizeof(float));
        free(abs[0]);
        free(abs[1]);
    }
    free(ref);
    free(ref_full);
    outputs_free(&o);
    passthrough_close(&r);
}

/* A pass-through with the motion-predicted candidates (model_predict.safetensors): frames 2, 3
 * and 4 first (the scene pans beyond the temporal radius, so the carried motion is not 0), then
 * frame 0, the reference's own picture, passed through, then frame 1 against the reference's
 * frame 1 from the pass-through's state, whose motion is 0 (predict_pt_ab_t1): the motion of
 * frame 4 must not survive the pass-through. */
static void passthrough_predict_run(enum vf_device device)
{
    struct vf_error err = {0};
    struct pt_run r;
    passthrough_open(device, "predict", VF_F32, &r);
    assert_true(vf_net_arch(r.net)->a_refine_predict > 0);
    float *ref = as_f32(need(&r.g, "ref_rgb"));
    if (vf_colorizer_set_reference(r.cz, ref, NULL, &err)) fail_msg("%s", err.msg);
    size_t n = (size_t)r.g.h * r.g.w;
    float *ab = malloc(2 * n * sizeof(float));
    assert_non_null(ab);
    const int order[] = {2, 3, 4, 0, 1};
    for (int i = 0; i < 5; i++) {
        char name[64];
        snprintf(name, sizeof name, "grey_t%d", order[i]);
        float *grey = as_f32(need(&r.g, name));
        if (vf_colorizer_frame(r.cz, grey, ab, NULL, &err)) fail_msg("frame %d: %s", order[i], err.msg);
        free(grey);
    }
    assert_int_equal(vf_colorizer_times(r.cz)->passthrough, 1);   /* frame 0 only */
    double ma, rel = compare(&r.g, "predict_pt_ab_t1", ab, 2 * n, &ma);
    printf("  predict, frame 1 after a pass-through that followed frame 4: ab %.1e (max |d| %.2g), "
           "tolerance %.0e\n", rel, ma, TOL_REFINE_F32);
    assert_true(rel <= TOL_REFINE_F32);
    free(ab);
    free(ref);
    passthrough_close(&r);
}

/* The gate's ramp after a pass-through (model_ramp.safetensors: the gated model with C.gate_ramp
 * 3), three colorizers. (1) Frame 0 passes, and frames 1 to 4 run with C's correction scaled
 * by 1/3, 2/3, 1, 1, against the reference's ramp_pt_ab_t*; on a GPU frame 1 runs eagerly (the
 * warm-up), frame 2 is ramped and must run eagerly too (not be captured at its scale), frame 3
 * is captured and frame 4 replays it. (2) Frames 2 and 3 first, from the zero state: no ramp;
 * on a GPU frame 3 is captured there. Then frame 0 passes and frames 1 to 4 as in (1): the
 * ramped frames must not replay that graph. (3) With pass-through off, frames 0 to 4 from the
 * zero state are the gated model's own (gated_ab_t*): without a pass-through the ramp never
 * applies. */
static void passthrough_ramp_run(enum vf_device device, enum vf_dtype dt)
{
    struct vf_error err = {0};
    struct pt_run r;
    passthrough_open(device, "ramp", dt, &r);
    assert_int_equal(vf_net_arch(r.net)->c_gate_ramp, 3);
    float *ref = as_f32(need(&r.g, "ref_rgb"));
    size_t n = (size_t)r.g.h * r.g.w;
    float *ab = malloc(2 * n * sizeof(float));
    assert_non_null(ab);
    const double tl = dt != VF_F32 ? TOL_BF16
                      : vf_net_arch(r.net)->a_refine_radius ? TOL_REFINE_F32 : TOL_F32;
    /* per pass: the frames in order (-1: the end) and the index of the first one checked */
    const int order[3][7] = {{0, 1, 2, 3, 4, -1, -1}, {2, 3, 0, 1, 2, 3, 4}, {0, 1, 2, 3, 4, -1, -1}};
    const int first_checked[3] = {1, 3, 0};
    for (int pass = 0; pass < 3; pass++) {
        if (pass > 0) {   /* a fresh colorizer (passthrough_open's has pass-through on) */
            vf_colorizer_destroy(&r.cz);
            r.co.passthrough = pass < 2;   /* pass 2: every frame from the network, no ramp */
            if (vf_colorizer_create(&r.cz, r.net, &r.co, &err)) fail_msg("%s", err.msg);
        }
        if (vf_colorizer_set_reference(r.cz, ref, NULL, &err)) fail_msg("%s", err.msg);
        for (int i = 0; i < 7 && order[pass][i] >= 0; i++) {
            const int t = order[pass][i];
            char name[64];
            snprintf(name, sizeof name, "grey_t%d", t);
            float *grey = as_f32(need(&r.g, name));
            if (vf_colorizer_frame(r.cz, grey, ab, NULL, &err)) fail_msg("frame %d: %s", t, err.msg);
            free(grey);
            if (i < first_checked[pass]) continue;   /* before and at the pass-through */
            snprintf(name, sizeof name, pass < 2 ? "ramp_pt_ab_t%d" : "gated_ab_t%d", t);
            double ma, rel = compare(&r.g, name, ab, 2 * n, &ma);
            printf("  ramp %s, pass %d, %s: ab %.1e (max |d| %.2g), tolerance %.0e\n", vf_dtype_name(dt), pass,
                   name, rel, ma, tl);
            if (!(rel <= tl)) fail_msg("pass %d, %s: relative error %.3e > %.0e", pass, name, rel, tl);
        }
        assert_int_equal(vf_colorizer_times(r.cz)->passthrough, pass < 2);
        if (device == VF_DEVICE_CUDA)   /* a graph was captured and replayed at full scale */
            assert_true(vf_colorizer_times(r.cz)->graphed > 0);
    }
    free(ab);
    free(ref);
    passthrough_close(&r);
}

/* Film-size propagation (model_carry.safetensors: the plain model with the arch's propagate,
 * radius 7, patch 3, shares 1, 0.6, 0.3, confidence 12). (1) The operator alone: frame t's
 * upsampled a, b (carry_up_t{t}) with frame t−1's final ones (carry_ab_full_t{t−1}) carried in
 * are carry_ab_full_t{t}, t = 1 .. 3, and with propagate.subpixel carry_sub_ab_full_t{t}: the
 * moves are the reference's to the bit (costs in f64 without fused operations), and so are the
 * sub-pixel step and the blend on the CPU (0 difference); on a GPU exp's last bit may move the
 * share (TOL_CARRY). (2) A colorizer with pass-through: frame 0 passes, frames
 * 1 to 4 against carry_cbcr_full_t* (1 to 3 carried, 4 not), at the network's tolerance; frame
 * 2 post-processed twice gives the same colours. (3) Frame 1
 * post-processed with no outputs (a chunk's warm-up) gives frame 2 of (2); frame 1 not
 * post-processed leaves frame 2 nothing to carry (then it is not carry_cbcr_full_t2). */
#define TOL_CARRY 1e-6
static void carry_run(enum vf_device device, enum vf_dtype dt)
{
    struct vf_error err = {0};
    struct pt_run r;
    passthrough_open(device, "carry", dt, &r);
    const struct vf_arch *a = vf_net_arch(r.net);
    assert_int_equal(a->prop_frames, 3);
    assert_int_equal(a->prop_radius, 7);
    const size_t nf = (size_t)r.g.fh * r.g.fw;
    /* (1) the operator */
    if (dt == VF_F32) {
        struct vf_tensor g0 = {0}, g1 = {0}, pab = {0}, ab = {0}, scr = {0};
        const int fh = r.g.fh, fw = r.g.fw;
        if (vf_tensor_alloc(&g0, r.be, VF_F32, 1, 1, fh, fw, &err) ||
            vf_tensor_alloc(&g1, r.be, VF_F32, 1, 1, fh, fw, &err) ||
            vf_tensor_alloc(&pab, r.be, VF_F32, 1, 2, fh, fw, &err) ||
            vf_tensor_alloc(&ab, r.be, VF_F32, 1, 2, fh, fw, &err) ||
            vf_tensor_alloc(&scr, r.be, VF_F32, 1, (int)vf_carry_scratch_elems(fh, fw), 1, 1, &err))
            fail_msg("%s", err.msg);
        float *out = malloc(2 * nf * sizeof(float));
        assert_non_null(out);
        for (int t = 1; t <= a->prop_frames; t++) {
            char name[64];
            float *h[4];
            const char *fmt[4] = {"grey_full_t%d", "grey_full_t%d", "carry_ab_full_t%d",
                                  "carry_up_t%d"};
            struct vf_tensor *dst[4] = {&g0, &g1, &pab, &ab};
            for (int k = 0; k < 4; k++) {
                snprintf(name, sizeof name, fmt[k], k == 1 || k == 3 ? t : t - 1);
                h[k] = as_f32(need(&r.g, name));
                if (vf_tensor_upload(dst[k], h[k], &err)) fail_msg("%s", err.msg);
                free(h[k]);
            }
            for (int sub = 0; sub < 2; sub++) {   /* whole pixels, then propagate.subpixel */
                snprintf(name, sizeof name, "carry_up_t%d", t);
                h[3] = as_f32(need(&r.g, name));
                if (vf_tensor_upload(&ab, h[3], &err)) fail_msg("%s", err.msg);
                free(h[3]);
                if (vf_op_carry_ab(&g1, &g0, &pab, &ab, a->prop_shares[t - 1],
                                   a->prop_confidence, a->prop_radius, a->prop_patch, sub, &scr,
                                   &err) ||
                    vf_tensor_download(&ab, out, &err))
                    fail_msg("carry t=%d: %s", t, err.msg);
                snprintf(name, sizeof name, sub ? "carry_sub_ab_full_t%d" : "carry_ab_full_t%d",
                         t);
                double ma, rel = compare(&r.g, name, out, 2 * nf, &ma);
                /* the CPU: the same bits (its exp and PyTorch's agree on these shares); a GPU's
                 * exp may move a share's last bit */
                const double tol = device == VF_DEVICE_CPU ? 0.0 : TOL_CARRY;
                printf("  carry operator t=%d%s: ab_full %.1e (max |d| %.2g), tolerance %.0e\n", t,
                       sub ? " subpixel" : "", rel, ma, tol);
                if (!(device == VF_DEVICE_CPU ? ma == 0.0 : rel <= tol))
                    fail_msg("carry t=%d%s: relative error %.3e (max |d| %.3g), tolerance %.0e", t,
                             sub ? " subpixel" : "", rel, ma, tol);
            }
        }
        /* bad arguments name what is wrong */
        assert_int_equal(vf_op_carry_ab(&g1, &g0, &pab, &ab, 1.5f, 0, 3, 3, false, &scr, &err), VF_EINVAL);
        assert_non_null(strstr(err.msg, "share must be in [0, 1]"));
        assert_int_equal(vf_op_carry_ab(&g1, &g0, &pab, &ab, 1, 0, 3, 4, false, &scr, &err), VF_EINVAL);
        assert_non_null(strstr(err.msg, "patch odd"));
        assert_int_equal(vf_op_carry_ab(&g1, &g0, &ab, &g0, 1, 0, 3, 3, false, &scr, &err), VF_EINVAL);
        assert_non_null(strstr(err.msg, "must have 2 channels"));
        free(out);
        vf_tensor_free(&g0);
        vf_tensor_free(&g1);
        vf_tensor_free(&pab);
        vf_tensor_free(&ab);
        vf_tensor_free(&scr);
    }
    /* (2) and (3): the colorizer */
    const double tl = dt != VF_F32 ? TOL_BF16 : a->a_refine_radius ? TOL_REFINE_F32 : TOL_F32;
    float *ref = as_f32(need(&r.g, "ref_rgb")), *ref_full = as_f32(need(&r.g, "ref_rgb_full"));
    struct outputs o = {0};
    outputs_alloc(&o, r.cz, &r.g);
    const int passes = device == VF_DEVICE_CPU && dt == VF_F32 ? 3 : 1;
    for (int pass = 0; pass < passes; pass++) {
        if (vf_colorizer_set_reference(r.cz, ref, ref_full, &err)) fail_msg("%s", err.msg);
        for (int t = 0; t < (pass ? 3 : FRAMES); t++) {
            char name[64];
            float *grey, *greyf;
            frame_greys(&r.g, t, &grey, &greyf);
            if (vf_colorizer_frame(r.cz, grey, o.ab, NULL, &err)) fail_msg("frame %d: %s", t, err.msg);
            /* the next frame carries this one's a, b on frames 0 .. 2 (pass-through, 1, 2) */
            assert_int_equal(vf_colorizer_post_carries(r.cz), t < a->prop_frames);
            /* a warm-up frame: posted without outputs (pass 1) or not at all (2) */
            const bool dropped = pass && t == 1;
            if (!dropped && vf_colorizer_post(r.cz, greyf, NULL, o.cbcr, &err))
                fail_msg("post %d: %s", t, err.msg);
            if (pass == 0 && t == 2) {   /* the same frame again: the same colours (reused) */
                float *again = malloc(2 * nf * sizeof(float));
                assert_non_null(again);
                if (vf_colorizer_post(r.cz, greyf, NULL, again, &err)) fail_msg("%s", err.msg);
                assert_memory_equal(again, o.cbcr, 2 * nf * sizeof(float));
                free(again);
            }
            if (dropped && pass == 1 && vf_colorizer_post(r.cz, greyf, NULL, NULL, &err))
                fail_msg("post %d without outputs: %s", t, err.msg);
            free(grey);
            free(greyf);
            if (t == 0 || dropped) continue;
            snprintf(name, sizeof name, "carry_cbcr_full_t%d", t);
            double ma, rel = compare(&r.g, name, o.cbcr, 2 * nf, &ma);
            printf("  carry %s, pass %d, %s: %.1e (max |d| %.2g), tolerance %.0e\n",
                   vf_dtype_name(dt), pass, name, rel, ma, tl);
            if (pass < 2 && !(rel <= tl))
                fail_msg("pass %d, %s: relative error %.3e > %.0e", pass, name, rel, tl);
            if (pass == 2 && !(rel > 10 * tl))
                fail_msg("frame 2 carried with frame 1 not post-processed (%.3e)", rel);
        }
    }
    free(ref);
    free(ref_full);
    outputs_free(&o);
    passthrough_close(&r);
}

static void carry_matches_the_reference(void **s) { (void)s; carry_run(VF_DEVICE_CPU, VF_F32); }
static void carry_bf16(void **s) { (void)s; carry_run(VF_DEVICE_CPU, VF_BF16); }
static void cuda_carry(void **s) { (void)s; carry_run(VF_DEVICE_CUDA, VF_F32); }
static void cuda_carry_bf16(void **s) { (void)s; carry_run(VF_DEVICE_CUDA, VF_BF16); }

static void passthrough_matches_the_reference(void **s) { (void)s; passthrough_run(VF_DEVICE_CPU); }
static void passthrough_ramp(void **s) { (void)s; passthrough_ramp_run(VF_DEVICE_CPU, VF_F32); }
static void passthrough_ramp_bf16(void **s) { (void)s; passthrough_ramp_run(VF_DEVICE_CPU, VF_BF16); }
static void cuda_passthrough_ramp(void **s) { (void)s; passthrough_ramp_run(VF_DEVICE_CUDA, VF_F32); }
static void cuda_passthrough_ramp_bf16(void **s) { (void)s; passthrough_ramp_run(VF_DEVICE_CUDA, VF_BF16); }
static void passthrough_predict(void **s) { (void)s; passthrough_predict_run(VF_DEVICE_CPU); }
static void cuda_passthrough_predict(void **s) { (void)s; passthrough_predict_run(VF_DEVICE_CUDA); }
static void cuda_passthrough(void **s) { (void)s; passthrough_run(VF_DEVICE_CUDA); }

/* Post step 1 through the guided filter (upsample.radius > 0), which tiny does not take: the
 * golden's weights under radius 2 (model_guided.safetensors) against the reference's frame 0
 * post-processing with it; it must differ from tiny's bilinear one. */
static void guided_post_matches_the_reference(void **state)
{
    (void)state;
    struct golden g = {0};
    char model[1024];
    golden_open("tiny", &g, model, sizeof model);
    snprintf(model, sizeof model, "%s/golden/tiny/model_guided.safetensors", VF_TEST_DATA);
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    if (vf_net_load(model, &net, &err)) fail_msg("%s", err.msg);
    assert_int_equal(vf_net_arch(net)->up_radius, 2);
    struct vf_backend *be = NULL;
    struct vf_backend_opts bo = {.device = VF_DEVICE_CPU};
    assert_int_equal(vf_backend_create(&be, &bo, &err), VF_OK);
    struct vf_colorizer *cz = make(be, net, &g, VF_F32);
    struct outputs o = {0};
    outputs_alloc(&o, cz, &g);
    run_frame(cz, &g, 0, &o);
    size_t n = (size_t)g.h * g.w, nf = (size_t)g.fh * g.fw;
    double ma, rel_ab = compare(&g, "ab_t0", o.ab, 2 * n, &ma);
    double rel = compare(&g, "guided_cbcr_full_t0", o.cbcr, 2 * nf, &ma);
    double bil = compare(&g, "cbcr_full_t0", o.cbcr, 2 * nf, &ma);
    printf("  guided filter r 2: ab %.1e, cbcr_full %.1e (against the bilinear one: %.1e)\n",
           rel_ab, rel, bil);
    assert_true(rel_ab <= TOL_REFINE_F32);
    assert_true(rel <= TOL_REFINE_F32);
    assert_true(bil > 10 * TOL_REFINE_F32);
    outputs_free(&o);
    vf_colorizer_destroy(&cz);
    vf_backend_destroy(&be);
    vf_net_free(&net);
    vf_safetensors_close(&g.st);
}

/* The recurrence: reset gives the first frame's output again; a new reference too. */
static void reset_restarts_the_recurrence(void **state)
{
    (void)state;
    struct golden g = {0};
    char model[1024];
    golden_open("tiny", &g, model, sizeof model);
    struct vf_error err = {0};
    struct vf_net *net = NULL;
    if (vf_net_load(model, &net, &err)) fail_msg("%s", err.msg);
    struct vf_backend *be = NULL;
    struct vf_backend_opts bo = {.device = VF_DEVICE_CPU};
    assert_int_equal(vf_backend_create(&be, &bo, &err), VF_OK);
    struct vf_colorizer *cz = make(be, net, &g, VF_F32);
    struct outputs a = {0}, b = {0};
    outputs_alloc(&a, cz, &g);
    outputs_alloc(&b, cz, &g);
    size_t n = (size_t)g.h * g.w;
    run_frame(cz, &g, 0, &a);
    run_frame(cz, &g, 0, &b);   /* same grey, but X̂(t−1) is now frame 0's output */
    assert_true(memcmp(a.ab, b.ab, 2 * n * sizeof(float)) != 0);
    assert_int_equal(vf_colorizer_reset(cz, &err), VF_OK);
    run_frame(cz, &g, 0, &b);
    assert_memory_equal(a.ab, b.ab, 2 * n * sizeof(float));
    float *ref = as_f32(need(&g, "ref_rgb"));
    run_frame(cz, &g, 1, &b);
    assert_int_equal(vf_colorizer_set_reference(cz, ref, NULL, &err), VF_OK);   /* resets too */
    run_frame(cz, &g, 0, &b);
    assert_memory_equal(a.ab, b.ab, 2 * n * sizeof(float));
    free(ref);
    outputs_free(&a);
    outputs_free(&b);
    vf_colorizer_destroy(&cz);
    vf_backend_destroy(&be);
    vf_net_free(&net);
    vf_safetensors_close(&g.st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tiny_f32),
        cmocka_unit_test(tiny_bf16),
        cmocka_unit_test(tiny_gated_f32),
        cmocka_unit_test(tiny_gated_bf16),
        cmocka_unit_test(tiny_motion_f32),
        cmocka_unit_test(tiny_motion_bf16),
        cmocka_unit_test(tiny_motion_px_f32),
        cmocka_unit_test(tiny_motion_px_bf16),
        cmocka_unit_test(tiny_predict_f32),
        cmocka_unit_test(tiny_predict_bf16),
        cmocka_unit_test(full_f32),
        cmocka_unit_test(full_bf16),
        cmocka_unit_test(same_bytes_with_one_and_two_threads),
        cmocka_unit_test(reset_restarts_the_recurrence),
        cmocka_unit_test(file_and_buffer_give_the_same_output),
        cmocka_unit_test(passthrough_matches_the_reference),
        cmocka_unit_test(passthrough_predict),
        cmocka_unit_test(passthrough_ramp),
        cmocka_unit_test(passthrough_ramp_bf16),
        cmocka_unit_test(carry_matches_the_reference),
        cmocka_unit_test(carry_bf16),
        cmocka_unit_test(guided_post_matches_the_reference),
        cmocka_unit_test(cuda_tiny_f32),
        cmocka_unit_test(cuda_tiny_bf16),
        cmocka_unit_test(cuda_tiny_f16),
        cmocka_unit_test(cuda_tiny_gated_f32),
        cmocka_unit_test(cuda_tiny_gated_bf16),
        cmocka_unit_test(cuda_tiny_motion_f32),
        cmocka_unit_test(cuda_tiny_motion_bf16),
        cmocka_unit_test(cuda_tiny_motion_px_f32),
        cmocka_unit_test(cuda_tiny_motion_px_bf16),
        cmocka_unit_test(cuda_tiny_predict_f32),
        cmocka_unit_test(cuda_tiny_predict_bf16),
        cmocka_unit_test(cuda_full_f32),
        cmocka_unit_test(cuda_full_bf16),
        cmocka_unit_test(cuda_full_f16),
        cmocka_unit_test(cuda_graph_equals_eager_and_repeats),
        cmocka_unit_test(cuda_passthrough),
        cmocka_unit_test(cuda_passthrough_predict),
        cmocka_unit_test(cuda_passthrough_ramp),
        cmocka_unit_test(cuda_passthrough_ramp_bf16),
        cmocka_unit_test(cuda_carry),
        cmocka_unit_test(cuda_carry_bf16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
