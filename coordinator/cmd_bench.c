/*
 * coordinator/cmd_bench.c: `vaefarm bench` (DESIGN.md §8): the network's speed on this machine,
 * per module (F, A, C, post-processing), against a reference convolution timed in the same run
 * (3×3, 256→256 at 56×96, same precision, same backend), so that the figure is a ratio that
 * means the same on any CPU; plus the memory a colorizer holds and whether it grows.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/coordinator.h"
#include "kernels/kernels.h"
#include "node/node.h"

struct bench_opts {
    const char *model;
    int h, w, fh, fw;
    enum vf_dtype dt;
    int frames, threads;
    bool no_ref;
    int device;                 /* -2: auto (GPU 0 when there is one), -1: the CPU, ≥ 0: GPU */
    int graph;                  /* -1: default (on for a GPU), 0, 1 */
};

/* A whole decimal number in [lo, hi], nothing after it (end: where it stopped, or NULL). */
static bool parse_int(const char *s, long lo, long hi, long *v, const char **end)
{
    char *e;
    errno = 0;
    long x = strtol(s, &e, 10);
    if (e == s || errno || x < lo || x > hi || (!end && *e)) return false;
    if (end) *end = e;
    *v = x;
    return true;
}

static int parse_size(const char *s, int *h, int *w)
{
    long a, b;
    const char *e;
    if (!parse_int(s, 1, 65536, &a, &e) || (*e != 'x' && *e != 'X') ||
        !parse_int(e + 1, 1, 65536, &b, NULL))
        return 0;
    *h = (int)a;
    *w = (int)b;
    return 1;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

/* A deterministic scene: smooth gradients, discs and stripes, moving with t. */
static void scene(float *rgb, int h, int w, int t)
{
    size_t n = (size_t)h * (size_t)w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double u = (x + 2.0 * t) / w, v = (double)y / h;
            double disc = (u - 0.5) * (u - 0.5) + (v - 0.5) * (v - 0.5) < 0.06 ? 0.4 : 0.0;
            double r = 0.3 + 0.3 * sin(6.0 * u) + disc, g = 0.5 + 0.2 * cos(5.0 * v),
                   b = 0.4 + 0.3 * sin(9.0 * (u + v)) * (x / 8 % 2 ? 1 : 0.5);
            rgb[(size_t)y * w + x] = (float)fmin(1, fmax(0, r));
            rgb[n + (size_t)y * w + x] = (float)fmin(1, fmax(0, g));
            rgb[2 * n + (size_t)y * w + x] = (float)fmin(1, fmax(0, b));
        }
}

static void to_grey(const float *rgb, float *grey, size_t n)
{
    for (size_t i = 0; i < n; i++)
        grey[i] = 0.2126f * rgb[i] + 0.7152f * rgb[n + i] + 0.0722f * rgb[2 * n + i];
}

/* The arch's propagate (post-processing 1b, docs/NETWORK.md) on one carried frame at the full
 * size, in ms: timed apart, since the bench's frames never follow a reference pass-through. g0,
 * g1: two consecutive full-size greys; the a, b carried are zeros (the cost is the matching). */
static int time_carry(struct vf_backend *be, const struct vf_arch *a, int fh, int fw,
                      const float *g0, const float *g1, double *ms, struct vf_error *err)
{
    struct vf_tensor t0 = {0}, t1 = {0}, pab = {0}, ab = {0}, scr = {0};
    int rc = vf_tensor_alloc(&t0, be, VF_F32, 1, 1, fh, fw, err);
    if (!rc) rc = vf_tensor_alloc(&t1, be, VF_F32, 1, 1, fh, fw, err);
    if (!rc) rc = vf_tensor_alloc(&pab, be, VF_F32, 1, 2, fh, fw, err);
    if (!rc) rc = vf_tensor_alloc(&ab, be, VF_F32, 1, 2, fh, fw, err);
    if (!rc && vf_backend_device(be) == VF_DEVICE_CPU)
        rc = vf_tensor_alloc(&scr, be, VF_F32, 1, (int)vf_carry_scratch_elems(fh, fw), 1, 1, err);
    if (!rc) rc = vf_tensor_upload(&t0, g0, err);
    if (!rc) rc = vf_tensor_upload(&t1, g1, err);
    if (!rc) rc = vf_tensor_zero(&pab, err);
    if (!rc) rc = vf_tensor_zero(&ab, err);
    const int reps = 3;
    double t = 0;
    for (int k = 0; !rc && k <= reps; k++) {   /* the first one warms up */
        if (k == 1) t = vf_now();
        rc = vf_op_carry_ab(&t1, &t0, &pab, &ab, a->prop_shares[0], a->prop_confidence,
                            a->prop_radius, a->prop_patch, a->prop_subpixel, &scr, err);
        if (!rc) rc = vf_backend_sync(be, err);
    }
    *ms = rc ? 0 : 1e3 * (vf_now() - t) / reps;
    vf_tensor_free(&t0);
    vf_tensor_free(&t1);
    vf_tensor_free(&pab);
    vf_tensor_free(&ab);
    vf_tensor_free(&scr);
    return rc;
}

/* GFLOP/s of the reference convolution on this backend and precision. */
static int reference_conv(struct vf_backend *be, enum vf_dtype dt, double *gflops, double *ms,
                          struct vf_error *err)
{
    const int ic = 256, oc = 256, h = 56, w = 96;
    struct vf_conv_desc d = {.ic = ic, .oc = oc, .kh = 3, .kw = 3, .stride = 1, .pad = 1,
                             .dilation = 1, .groups = 1};
    size_t nw = (size_t)oc * ic * 9;
    float *wt = malloc(nw * sizeof(float)), *bias = calloc((size_t)oc, sizeof(float));
    struct vf_conv *cv = NULL;
    struct vf_tensor src = {0}, dst = {0};
    int rc = VF_ENOMEM;
    if (!wt || !bias) {
        vf_error_set(err, VF_ENOMEM, "bench: out of memory");
        goto out;
    }
    for (size_t i = 0; i < nw; i++) wt[i] = (float)((i * 2654435761u % 1000) / 1000.0 - 0.5) * 0.05f;
    if ((rc = vf_conv_create(&cv, be, &d, dt, dt, 1, h, w, wt, bias, err)) ||
        (rc = vf_tensor_alloc(&src, be, dt, 1, ic, h, w, err)) ||
        (rc = vf_tensor_alloc(&dst, be, dt, 1, oc, h, w, err)))
        goto out;
    for (int i = 0; i < 3; i++)
        if ((rc = vf_conv_run(cv, &src, &dst, err))) goto out;
    if ((rc = vf_backend_sync(be, err))) goto out;
    int reps = 0;
    double t0 = vf_now(), t = 0;
    do {
        if ((rc = vf_conv_run(cv, &src, &dst, err)) || (rc = vf_backend_sync(be, err))) goto out;
        reps++;
        t = vf_now() - t0;
    } while (t < 1.0 || reps < 5);
    *ms = 1e3 * t / reps;
    *gflops = 2.0 * vf_conv_macs(cv) * reps / t / 1e9;
out:
    vf_conv_destroy(&cv);
    vf_tensor_free(&src);
    vf_tensor_free(&dst);
    free(wt);
    free(bias);
    return rc;
}

/* A figure of the reference convolution for the JSON document: null where it was not timed
 * (--no-reference-conv), as eval writes null for what it did not measure. */
static json_t *timed_or_null(double x)
{
    return x > 0 ? json_real(x) : json_null();
}

static int usage(const char *msg)
{
    fprintf(stderr, "vaefarm bench: %s\nusage: vaefarm bench [--model FILE|tiny|full] "
            "[--size HxW] [--full-size HxW] [--precision f32|bf16|f16] [--frames N] "
            "[--threads N] [--device auto|cpu|cuda[:N]] [--graph|--no-graph] "
            "[--no-reference-conv] [--json]\n", msg);
    return VF_EXIT_USAGE;
}

int vf_cmd_bench(int argc, char **argv, struct vf_cli *cli)
{
    struct bench_opts o = {.model = "tiny", .dt = VF_F32, .frames = 10, .device = -2,
                           .graph = -1};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--model") == 0 && v) o.model = argv[++i];
        else if (strcmp(a, "--size") == 0 && v) {
            if (!parse_size(argv[++i], &o.h, &o.w)) return usage("--size wants HxW, e.g. 216x384");
        } else if (strcmp(a, "--full-size") == 0 && v) {
            if (!parse_size(argv[++i], &o.fh, &o.fw))
                return usage("--full-size wants HxW, e.g. 1080x1920");
        } else if (strcmp(a, "--precision") == 0 && v) {
            if (vf_dtype_parse(argv[++i], &o.dt)) return usage("--precision is f32, bf16 or f16");
        } else if (strcmp(a, "--frames") == 0 && v) {
            long v;
            if (!parse_int(argv[++i], 1, 1000000, &v, NULL))
                return usage("--frames wants 1..1000000");
            o.frames = (int)v;
        } else if (strcmp(a, "--threads") == 0 && v) {
            long v;
            if (!parse_int(argv[++i], 0, 1024, &v, NULL))
                return usage("--threads wants 0..1024 (0: all cores)");
            o.threads = (int)v;
        } else if (strcmp(a, "--device") == 0 && v) {
            const char *d = argv[++i];
            long g = 0;
            if (strcmp(d, "auto") == 0) o.device = -2;
            else if (strcmp(d, "cpu") == 0) o.device = -1;
            else if (strcmp(d, "cuda") == 0) o.device = 0;
            else if (strncmp(d, "cuda:", 5) == 0 && parse_int(d + 5, 0, 1023, &g, NULL))
                o.device = (int)g;
            else return usage("--device is auto, cpu, cuda or cuda:N");
        } else if (strcmp(a, "--graph") == 0) o.graph = 1;
        else if (strcmp(a, "--no-graph") == 0) o.graph = 0;
        else if (strcmp(a, "--no-reference-conv") == 0) o.no_ref = true;
        else {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", a);
            return usage(msg);
        }
    }

    struct vf_error err = {0};
    struct vf_net *net = NULL;
    struct vf_backend *be = NULL;
    struct vf_colorizer *cz = NULL;
    float *ref = NULL, *rgb = NULL, *grey = NULL, *rgbf = NULL, *greyf = NULL, *ab = NULL,
          *cbcr = NULL;
    int rc;
    long rss0 = rss_kib();
    bool random = strcmp(o.model, "tiny") == 0 || strcmp(o.model, "full") == 0;
    if (random) {
        struct vf_arch arch;
        rc = vf_arch_preset(o.model, &arch, &err);
        if (!rc) rc = vf_net_random(&arch, 1, &net, &err);
    } else {
        rc = vf_net_load(o.model, &net, &err);
        if (rc == VF_ENOENT)
            vf_error_set(&err, VF_ENOENT, "%s: no such weights file (or give a preset: 'tiny' or "
                         "'full', random weights)", o.model);
    }
    if (rc) goto fail;
    const struct vf_arch *arch = vf_net_arch(net);
    if (!o.h) {
        o.h = arch->inference_h;
        o.w = arch->inference_w;
    }
    if (!o.fh) {
        o.fh = 2 * o.h;
        o.fw = 2 * o.w;
    }
    if (o.device == -2) {
        int gpus = 0;
        if (vf_kernels_gpu_count(&gpus, &err)) goto fail;
        o.device = gpus > 0 ? 0 : -1;
    }
    struct vf_backend_opts bo = {.device = o.device >= 0 ? VF_DEVICE_CUDA : VF_DEVICE_CPU,
                                 .gpu = o.device >= 0 ? o.device : 0, .threads = o.threads};
    if (o.device < 0 && (rc = vf_cpu_memory_budget(1, &bo.mem_budget, &err))) goto fail;
    if ((rc = vf_backend_create(&be, &bo, &err))) goto fail;
    o.threads = vf_backend_threads(be);     /* what ran, "all cores" resolved */
    if (o.graph < 0) o.graph = o.device >= 0;
    if (o.graph && !vf_backend_can_capture(be)) {
        rc = vf_error_set(&err, VF_EUNSUPPORTED, "bench: --graph needs a GPU (--device cuda)");
        goto fail;
    }
    char devname[160];
    if (o.device >= 0) {
        if ((rc = vf_kernels_gpu_describe(o.device, devname, sizeof devname, &err))) goto fail;
    } else {
        vf_kernels_cpu_describe(devname, sizeof devname);
    }
    struct vf_colorizer_opts co = {.be = be, .precision = o.dt, .h = o.h, .w = o.w,
                                   .full_h = o.fh, .full_w = o.fw, .graph = o.graph == 1};
    double t_create = vf_now();
    if ((rc = vf_colorizer_create(&cz, net, &co, &err))) goto fail;
    t_create = vf_now() - t_create;
    size_t n = (size_t)o.h * o.w, nf = (size_t)o.fh * o.fw;
    ref = malloc(3 * n * sizeof(float));
    rgb = malloc(3 * n * sizeof(float));
    grey = malloc(n * sizeof(float));
    rgbf = malloc(3 * nf * sizeof(float));
    greyf = malloc(nf * sizeof(float));
    ab = malloc(2 * n * sizeof(float));
    cbcr = malloc(2 * nf * sizeof(float));
    if (!ref || !rgb || !grey || !rgbf || !greyf || !ab || !cbcr) {
        rc = vf_error_set(&err, VF_ENOMEM, "bench: out of memory for the test frames");
        goto fail;
    }
    scene(ref, o.h, o.w, 0);
    if ((rc = vf_colorizer_set_reference(cz, ref, NULL, &err))) goto fail;
    /* Two warm-up frames (first-touch of every buffer, oneDNN's kernel caches). */
    for (int t = 0; t < 2; t++) {
        scene(rgb, o.h, o.w, t);
        to_grey(rgb, grey, n);
        scene(rgbf, o.fh, o.fw, 2 * t);
        to_grey(rgbf, greyf, nf);
        if ((rc = vf_colorizer_frame(cz, grey, ab, NULL, &err)) ||
            (rc = vf_colorizer_post(cz, greyf, NULL, cbcr, &err)))
            goto fail;
    }
    long rss1 = rss_kib();
    double ref_pass = vf_colorizer_times(cz)->reference;
    vf_colorizer_times_reset(cz);
    double t0 = vf_now();
    for (int t = 0; t < o.frames; t++) {
        /* Frames are made outside the timed calls' own clocks; the module times exclude it. */
        scene(rgb, o.h, o.w, t + 2);
        to_grey(rgb, grey, n);
        if ((rc = vf_colorizer_frame(cz, grey, ab, NULL, &err)) ||
            (rc = vf_colorizer_post(cz, greyf, NULL, cbcr, &err)))
            goto fail;
    }
    double wall = vf_now() - t0;
    long rss2 = rss_kib();
    const struct vf_colorizer_times *tm = vf_colorizer_times(cz);
    double fm, am, cm, attn;
    vf_net_macs(net, o.h, o.w, &fm, &am, &cm, &attn);
    double per = (tm->f + tm->a + tm->c + tm->graphed + tm->post) / o.frames;
    double gflop = 2.0 * (fm + am + cm) / 1e9;
    double ref_gflops = 0, ref_ms = 0;
    if (!o.no_ref && (rc = reference_conv(be, o.dt, &ref_gflops, &ref_ms, &err))) goto fail;
    double net_gflops = gflop / per;
    double carry_ms = 0;
    if (arch->prop_frames) {
        scene(rgbf, o.fh, o.fw, 3);   /* the frame after the warm-up's last (greyf: scene 2) */
        float *g1 = malloc(nf * sizeof(float));
        if (!g1) {
            rc = vf_error_set(&err, VF_ENOMEM, "bench: out of memory for the test frames");
            goto fail;
        }
        to_grey(rgbf, g1, nf);
        rc = time_carry(be, arch, o.fh, o.fw, greyf, g1, &carry_ms, &err);
        free(g1);
        if (rc) goto fail;
    }

    if (cli->json) {
        json_t *doc = json_pack(
            "{s:o, s:s, s:b, s:[i,i], s:[i,i], s:s, s:i, s:i, s:s, s:I,"
            " s:{s:f, s:f, s:f, s:f, s:f, s:f}, s:f, s:f, s:f, s:b,"
            " s:{s:f, s:f, s:f, s:f, s:f},"
            " s:{s:o, s:o, s:f}, s:{s:I, s:I, s:I, s:I}, s:o}",
            "model", vf_json_text(o.model), "architecture", arch->name, "random_weights", random,
            "size", o.h, o.w, "full_size", o.fh, o.fw, "precision", vf_dtype_name(o.dt),
            "frames", o.frames, "threads", o.threads, "device", devname,
            "parameters", (json_int_t)vf_net_params(net),
            "ms_per_frame", "F", 1e3 * tm->f / o.frames, "A", 1e3 * tm->a / o.frames,
            "C", 1e3 * tm->c / o.frames, "post", 1e3 * tm->post / o.frames,
            "graph", 1e3 * tm->graphed / o.frames, "total", 1e3 * per,
            "frames_per_second", 1.0 / per, "wall_frames_per_second", o.frames / wall,
            "reference_ms", 1e3 * ref_pass, "graph", o.graph == 1,
            "gmac_per_frame", "F", fm / 1e9, "A", am / 1e9, "attention", attn / 1e9, "C",
            cm / 1e9, "total", (fm + am + cm) / 1e9,
            "reference_conv", "gflops", timed_or_null(ref_gflops), "ms", timed_or_null(ref_ms),
            "network_gflops", net_gflops,
            "memory_kib", "rss_before", (json_int_t)rss0, "rss_after_create",
            (json_int_t)rss1, "rss_after_frames", (json_int_t)rss2, "backend",
            (json_int_t)(vf_backend_bytes(be) / 1024),
            "ratio_to_reference_conv",
            timed_or_null(ref_gflops > 0 ? net_gflops / ref_gflops : 0.0));
        if (!doc) {
            rc = vf_error_set(&err, VF_ENOMEM, "bench: could not build the JSON document");
            goto fail;
        }
        if (arch->prop_frames &&
            json_object_set_new(doc, "propagate_ms_per_carried_frame", json_real(carry_ms))) {
            json_decref(doc);
            rc = vf_error_set(&err, VF_ENOMEM, "bench: could not build the JSON document");
            goto fail;
        }
        rc = vf_json_print(doc);
    } else {
        printf("vaefarm bench: %s model (%s%s), %dx%d, %s, %d frames, %s, %d thread%s\n",
               arch->name, o.model, random ? ", random weights at seed 1" : "", o.h, o.w,
               vf_dtype_name(o.dt), o.frames, devname, o.threads, o.threads == 1 ? "" : "s");
        printf("  parameters      %.2f M\n", vf_net_params(net) / 1e6);
        if (tm->graphed > 0)
            printf("  per frame       F+A+C %.2f ms (one CUDA graph; --no-graph splits it)   "
                   "post (%dx%d) %.2f ms\n", 1e3 * tm->graphed / o.frames, o.fh, o.fw,
                   1e3 * tm->post / o.frames);
        else
            printf("  per frame       F %.1f ms   A %.1f ms   C %.1f ms   post (%dx%d) %.1f ms\n",
                   1e3 * tm->f / o.frames, 1e3 * tm->a / o.frames, 1e3 * tm->c / o.frames, o.fh,
                   o.fw, 1e3 * tm->post / o.frames);
        printf("  total           %.1f ms/frame = %.2f frames/s (reference pass %.1f ms, once "
               "per shot)\n", 1e3 * per, 1.0 / per,
               1e3 * ref_pass);
        if (arch->prop_frames)
            printf("  propagate       %.1f ms per carried frame (%dx%d, radius %d, patch %d%s; "
                   "the first %d frames after each pass-through)\n", carry_ms, o.fh, o.fw,
                   arch->prop_radius, arch->prop_patch,
                   arch->prop_subpixel ? ", sub-pixel step" : "", arch->prop_frames);
        printf("  work            %.2f GMAC/frame: F %.2f, A %.2f (attention %.2f), C %.2f\n",
               (fm + am + cm) / 1e9, fm / 1e9, am / 1e9, attn / 1e9, cm / 1e9);
        if (ref_gflops > 0)
            printf("  rate            network %.1f GFLOP/s; reference 3x3 conv 256->256 at 56x96 "
                   "%.1f GFLOP/s; ratio %.0f%%\n", net_gflops, ref_gflops,
                   100.0 * net_gflops / ref_gflops);
        printf("  memory          RSS %.1f MiB after create and 2 warm-up frames (+%.1f MiB), "
               "%.1f MiB after %d frames; backend holds %.1f MiB; created in %.2f s\n", rss1 / 1024.0,
               (rss1 - rss0) / 1024.0, rss2 / 1024.0, o.frames,
               vf_backend_bytes(be) / 1048576.0, t_create);
        rc = vf_stdout_done();
    }
    goto out;
fail:
    rc = vf_report_error(&err);
out:
    vf_colorizer_destroy(&cz);
    vf_backend_destroy(&be);
    vf_net_free(&net);
    free(ref);
    free(rgb);
    free(grey);
    free(rgbf);
    free(greyf);
    free(ab);
    free(cbcr);
    return rc;
}
