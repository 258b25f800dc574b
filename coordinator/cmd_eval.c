/*
 * coordinator/cmd_eval.c: `vaefarm eval --truth VIDEO --output VIDEO [--shots FILM.yaml |
 * --cuts F,...] [--per-frame] [--threads N] [--json]`: the quality of a colorized film against
 * its colour truth (DESIGN.md §8, docs/EVAL.md): PSNR and SSIM on R′G′B′ and on Lab a, b,
 * colourfulness, temporal flicker; with shots, the same per shot.
 *
 * The two films are decoded in lockstep (shard/'s decoder, VF_DECODE_RGB: full-range R′G′B′
 * planes, 8 or 16 bits, whatever the pixel format) and fed frame by frame to kernels/'
 * vf_quality_* functions; no more than one frame of each film is held.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "coordinator/coordinator.h"
#include "kernels/kernels.h"
#include "shard/shard.h"

static const char eval_usage[] =
    "usage: vaefarm eval --truth VIDEO --output VIDEO [--shots FILM.yaml | --cuts F,...]\n"
    "                    [--per-frame] [--threads N] [--json]\n";

static int usage(const char *msg)
{
    fprintf(stderr, "vaefarm eval: %s\n%s", msg, eval_usage);
    return VF_EXIT_USAGE;
}

/* A JSON number, or null for NAN/inf (JSON has neither). */
static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }
/* A frame index, or null where there is none (-1: a flicker of one frame, no pair). */
static json_t *frame_or_null(int64_t i) { return i >= 0 ? json_integer((json_int_t)i) : json_null(); }

static json_t *frame_json(int64_t i, const struct vf_quality_frame *f)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    struct { const char *k; json_t *v; } kv[] = {
        {"frame", json_integer((json_int_t)i)},
        {"psnr_rgb", num(f->psnr_rgb)},
        {"ssim_rgb", num(f->ssim_rgb)},
        {"mse_rgb", num(f->mse_rgb)},
        {"psnr_ab", num(f->psnr_ab)},
        {"ssim_ab", num(f->ssim_ab)},
        {"mse_ab", num(f->mse_ab)},
        {"colourfulness_output", num(f->colourfulness_output)},
        {"colourfulness_truth", num(f->colourfulness_truth)},
        {"flicker_output", num(f->flicker_output)},
        {"flicker_truth", num(f->flicker_truth)},
    };
    int bad = 0;
    for (size_t k = 0; k < sizeof kv / sizeof kv[0]; k++)
        bad |= json_object_set_new(o, kv[k].k, kv[k].v);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *pair_json(const struct vf_quality_stat *psnr, double pooled,
                         const struct vf_quality_stat *ssim, const struct vf_quality_stat *mse,
                         double range)
{
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:f}", "psnr", num(psnr->mean),
                     "psnr_min", num(psnr->min), "psnr_min_frame", frame_or_null(psnr->min_frame),
                     "psnr_pooled", num(pooled), "ssim", num(ssim->mean), "ssim_min",
                     num(ssim->min), "ssim_min_frame", frame_or_null(ssim->min_frame), "mse",
                     num(mse->mean), "data_range", range);
}

/* A span's metrics (the film's, or one shot's) into o: "rgb", "ab", "colourfulness",
 * "flicker". Nonzero if out of memory. */
static int put_metrics(json_t *o, const struct vf_quality_summary *s)
{
    return !o ||
           json_object_set_new(o, "rgb",
                               pair_json(&s->psnr_rgb, s->psnr_rgb_pooled, &s->ssim_rgb,
                                         &s->mse_rgb, VF_QUALITY_RGB_RANGE)) ||
           json_object_set_new(o, "ab",
                               pair_json(&s->psnr_ab, s->psnr_ab_pooled, &s->ssim_ab,
                                         &s->mse_ab, VF_QUALITY_AB_RANGE)) ||
           json_object_set_new(o, "colourfulness",
                               json_pack("{s:o, s:o}", "output",
                                         num(s->colourfulness_output.mean), "truth",
                                         num(s->colourfulness_truth.mean))) ||
           json_object_set_new(o, "flicker",
                               json_pack("{s:o, s:o, s:o, s:o}", "output",
                                         num(s->flicker_output.mean), "truth",
                                         num(s->flicker_truth.mean), "output_max",
                                         num(s->flicker_output.max), "output_max_frame",
                                         frame_or_null(s->flicker_output.max_frame)));
}

/* One shot's metrics (the film's keys, without the files'). */
static json_t *shot_json(size_t k, const struct vf_quality_summary *s)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I}", "shot", (json_int_t)k, "start",
                          (json_int_t)s->first_frame, "end",
                          (json_int_t)(s->first_frame + s->frames), "frames",
                          (json_int_t)s->frames);
    if (put_metrics(o, s)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *summary_json(const struct vf_media_info *t, const struct vf_media_info *o,
                            const struct vf_quality_summary *s, const char *shots_from,
                            json_t *shots, json_t *per_frame)
{
    json_t *doc = json_pack(
        "{s:o, s:o, s:s, s:s, s:I, s:i, s:i}", "truth", vf_json_text(t->path), "output",
        vf_json_text(o->path),
        "truth_pix_fmt", t->pix_fmt, "output_pix_fmt", o->pix_fmt, "frames",
        (json_int_t)s->frames, "width", t->width, "height", t->height);
    if (put_metrics(doc, s)) {
        json_decref(doc);
        return NULL;
    }
    json_t *flicker = json_object_get(doc, "flicker");
    if (json_object_set_new(flicker, "output_in_shots", num(s->flicker_output_in_shots.mean)) ||
        json_object_set_new(flicker, "truth_in_shots", num(s->flicker_truth_in_shots.mean)) ||
        json_object_set_new(doc, "conventions",
                            json_pack("{s:f, s:s}", "psnr_cap_db", VF_QUALITY_PSNR_CAP, "spec",
                                      "docs/EVAL.md")) ||
        json_object_set_new(doc, "shots_from",
                            vf_json_text(shots_from)) ||
        json_object_set(doc, "shots", shots) ||
        (per_frame && json_object_set(doc, "per_frame", per_frame))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static void print_psnr(const char *name, const struct vf_quality_stat *st, double pooled)
{
    printf("  %-16s %9.3f  %9.3f (frame %lld)  pooled %.3f\n", name, st->mean, st->min,
           (long long)st->min_frame, pooled);
}

static void print_human(const struct vf_media_info *t, const struct vf_media_info *o,
                        const struct vf_quality_summary *s)
{
    printf("eval: %lld frames, %dx%d\n", (long long)s->frames, t->width, t->height);
    printf("  truth   %s (%s)\n  output  %s (%s)\n\n", t->path, t->pix_fmt, o->path, o->pix_fmt);
    printf("  %-16s %9s  %s\n", "", "mean", "worst");
    print_psnr("PSNR RGB (dB)", &s->psnr_rgb, s->psnr_rgb_pooled);
    printf("  %-16s %9.5f  %9.5f (frame %lld)\n", "SSIM RGB", s->ssim_rgb.mean, s->ssim_rgb.min,
           (long long)s->ssim_rgb.min_frame);
    print_psnr("PSNR ab (dB)", &s->psnr_ab, s->psnr_ab_pooled);
    printf("  %-16s %9.5f  %9.5f (frame %lld)\n\n", "SSIM ab", s->ssim_ab.mean, s->ssim_ab.min,
           (long long)s->ssim_ab.min_frame);
    printf("  %-16s %9s  %9s\n", "", "output", "truth");
    printf("  %-16s %9.3f  %9.3f\n", "colourfulness", s->colourfulness_output.mean,
           s->colourfulness_truth.mean);
    if (s->flicker_output.n > 0)
        printf("  %-16s %9.4f  %9.4f   (output's worst: %.4f at frame %lld)\n", "flicker |Δab|",
               s->flicker_output.mean, s->flicker_truth.mean, s->flicker_output.max,
               (long long)s->flicker_output.max_frame);
    else
        printf("  %-16s %9s  %9s   (one frame: no consecutive pair)\n", "flicker |Δab|", "-",
               "-");
    if (s->flicker_output_in_shots.n != s->flicker_output.n && s->flicker_output_in_shots.n > 0)
        printf("  %-16s %9.4f  %9.4f   (frames after a shot's first: the jumps at the cuts left "
               "out)\n", "  within shots", s->flicker_output_in_shots.mean,
               s->flicker_truth_in_shots.mean);
    if (s->psnr_rgb.max >= VF_QUALITY_PSNR_CAP || s->psnr_ab.max >= VF_QUALITY_PSNR_CAP)
        printf("\n  PSNR is capped at %.0f dB: identical frames count as %.0f.\n",
               VF_QUALITY_PSNR_CAP, VF_QUALITY_PSNR_CAP);
    printf("  Definitions: docs/EVAL.md.\n");
}

/* The per-shot table (only with shots given). */
static void print_shots(const struct vf_quality *q, const char *from)
{
    printf("\n  Per shot (%s): means over the shot's frames; flicker without the cut\n", from);
    printf("  %5s %15s  %9s %8s  %9s %8s  %17s\n", "shot", "frames", "PSNR RGB", "SSIM RGB",
           "PSNR ab", "SSIM ab", "flicker out/truth");
    for (size_t k = 0; k < vf_quality_shots(q); k++) {
        struct vf_quality_summary s;
        vf_quality_summarize_shot(q, k, &s);
        char span[48];
        snprintf(span, sizeof span, "%lld-%lld", (long long)s.first_frame,
                 (long long)(s.first_frame + s.frames));
        printf("  %5zu %15s  %9.3f %8.5f  %9.3f %8.5f", k, span, s.psnr_rgb.mean, s.ssim_rgb.mean,
               s.psnr_ab.mean, s.ssim_ab.mean);
        if (s.flicker_output.n > 0)
            printf("  %8.4f/%-8.4f\n", s.flicker_output.mean, s.flicker_truth.mean);
        else
            printf("  %8s/%-8s\n", "-", "-");
    }
}

/* --cuts F,F,...: the first frames of the shots after the first, strictly increasing, >= 1.
 * Returns the count, or -1 with `msg` set. */
static long parse_cuts(const char *v, int64_t **cuts, char *msg, size_t len)
{
    size_t n = 1;
    for (const char *c = v; *c; c++)
        n += *c == ',';
    int64_t *a = malloc(n * sizeof *a);
    if (!a) {
        snprintf(msg, len, "out of memory for %zu cuts", n);
        return -1;
    }
    const char *p = v;
    for (size_t i = 0; i < n; i++) {
        char *e = (char *)p;
        errno = 0;
        long long x = *p >= '0' && *p <= '9' ? strtoll(p, &e, 10) : 0;  /* digits only */
        if (e == p || (*e && *e != ',') || errno || x < 1 || (i > 0 && x <= a[i - 1])) {
            snprintf(msg, len,
                     "--cuts wants the first frames of the shots after the first, increasing "
                     "whole numbers from 1 separated by commas (e.g. --cuts 116,240); got '%s'",
                     v);
            free(a);
            return -1;
        }
        a[i] = x;
        p = e + 1;
    }
    *cuts = a;
    return (long)n;
}

/* --shots FILM.yaml: the cuts of the film's plan (its shots list, EDL or detection on its
 * input: what `vaefarm plan` shows and `vaefarm run` colorized). Only what the plan needs is
 * checked: the input and the references, not the output's folder or the encoder. */
static int film_cuts(const char *yaml, int64_t frames, int64_t **cuts, size_t *n,
                     struct vf_error *err)
{
    struct vf_film *film = NULL;
    struct vf_media_info *info = NULL;
    struct vf_plan *plan = NULL;
    const char *from;
    int rc = vf_config_load(&film, yaml, err);
    if (rc >= 0 && (rc = vf_shard_probe(&info, film->input, err)) < 0)
        vf_error_prefix(err, "%s: input", film->path);
    if (rc >= 0) {
        char bad[VF_ERROR_MSG_MAX + 64] = "";
        json_t *record = film->chunk_length == VF_CHUNK_AUTO ? vf_plan_record(film, bad, sizeof bad)
                                                             : NULL;
        vf_plan_auto_ranks(film, record, bad, 1, "one process", &from);
        json_decref(record);
        rc = vf_film_plan(film, info, &plan, err);
    }
    if (rc < 0) {
        vf_error_prefix(err, "--shots");
        goto out;
    }
    if (plan->frames != frames) {
        rc = vf_error_set(err, VF_EINVAL,
                          "--shots %s plans %lld frames (its input %s), but the films have "
                          "%lld; give the film.yaml that made this output",
                          yaml, (long long)plan->frames, film->input, (long long)frames);
        goto out;
    }
    *n = plan->n_shots > 0 ? plan->n_shots - 1 : 0;
    if (!(*cuts = vf_calloc(plan->n_shots + 1, sizeof **cuts, err))) {
        rc = VF_ENOMEM;
        goto out;
    }
    for (size_t k = 1; k < plan->n_shots; k++)
        (*cuts)[k - 1] = plan->shots[k].start;
out:
    vf_shard_plan_destroy(&plan);
    vf_shard_media_info_destroy(&info);
    vf_config_destroy(&film);
    return rc;
}

static void print_frame_line(int64_t i, const struct vf_quality_frame *f)
{
    printf("  frame %6lld  PSNR %7.3f / %7.3f dB  SSIM %.5f / %.5f  M %7.3f / %7.3f  "
           "flicker %.4f / %.4f\n",
           (long long)i, f->psnr_rgb, f->psnr_ab, f->ssim_rgb, f->ssim_ab,
           f->colourfulness_output, f->colourfulness_truth, f->flicker_output, f->flicker_truth);
}

static struct vf_rgb_image rgb_image(const struct vf_frame *f)
{
    struct vf_rgb_image im = {f->width, f->height, f->rgb_bits, {f->rgb[0], f->rgb[1], f->rgb[2]},
                              f->rgb_stride};
    return im;
}

int vf_cmd_eval(int argc, char **argv, struct vf_cli *cli)
{
    const char *truth = NULL, *output = NULL, *shots_yaml = NULL, *cuts_arg = NULL;
    bool per_frame = false;
    int threads = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--truth") == 0 && v) {
            truth = v;
            i++;
        } else if (strcmp(a, "--output") == 0 && v) {
            output = v;
            i++;
        } else if (strcmp(a, "--shots") == 0 && v) {
            shots_yaml = v;
            i++;
        } else if (strcmp(a, "--cuts") == 0 && v) {
            cuts_arg = v;
            i++;
        } else if (strcmp(a, "--per-frame") == 0) {
            per_frame = true;
        } else if (strcmp(a, "--threads") == 0 && v) {
            char *e;
            errno = 0;
            long x = strtol(v, &e, 10);
            if (e == v || *e || errno || x < 0 || x > 1024)
                return usage("--threads wants 0..1024 (0: all cores)");
            threads = (int)x;
            i++;
        } else {
            char msg[256];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", a);
            return usage(msg);
        }
    }
    if (!truth || !output)
        return usage(!truth ? "--truth VIDEO is required (the colour original)"
                            : "--output VIDEO is required (the colorized film)");
    if (shots_yaml && cuts_arg)
        return usage("--shots and --cuts both say where the shots are: give one");
    int64_t *cuts = NULL;
    size_t n_cuts = 0;
    if (cuts_arg) {
        char msg[512];
        long n = parse_cuts(cuts_arg, &cuts, msg, sizeof msg);
        if (n < 0)
            return usage(msg);
        n_cuts = (size_t)n;
    }

    struct vf_error err = {0};
    struct vf_media_info *ti = NULL, *oi = NULL;
    struct vf_decoder *td = NULL, *od = NULL;
    struct vf_quality *q = NULL;
    json_t *frames_json = NULL, *shots_json = NULL;
    char *from = NULL;   /* "--shots PATH" or "--cuts LIST", as given */
    const bool have_shots = shots_yaml || cuts_arg;
    int rc, exit_code = VF_EXIT_OK;
    /* Both missing files at once, in words for this command (not the probe's film.yaml advice). */
    bool no_truth = access(truth, F_OK) != 0 && errno == ENOENT;
    bool no_output = access(output, F_OK) != 0 && errno == ENOENT;
    if (no_truth && no_output) {
        rc = vf_error_set(&err, VF_ENOENT,
                          "--truth %s does not exist, nor does --output %s; check the paths",
                          truth, output);
        goto out;
    }
    if (no_truth || no_output) {
        rc = vf_error_set(&err, VF_ENOENT, "%s %s does not exist; check the path",
                          no_truth ? "--truth" : "--output", no_truth ? truth : output);
        goto out;
    }
    if ((rc = vf_shard_probe(&ti, truth, &err)) < 0) {
        vf_error_prefix(&err, "--truth");
        goto out;
    }
    if ((rc = vf_shard_probe(&oi, output, &err)) < 0) {
        vf_error_prefix(&err, "--output");
        goto out;
    }
    if (ti->width != oi->width || ti->height != oi->height) {
        rc = vf_error_set(&err, VF_EINVAL,
                          "the films differ in size: the truth %s is %dx%d, the output %s is "
                          "%dx%d; eval compares at the truth's size: give the output made from "
                          "this truth's grey, or scale it first (ffmpeg -i %s -vf scale=%d:%d "
                          "-c:v ffv1 scaled.mkv)",
                          truth, ti->width, ti->height, output, oi->width, oi->height, output,
                          ti->width, ti->height);
        goto out;
    }
    if (ti->frames != oi->frames) {
        rc = vf_error_set(&err, VF_EINVAL,
                          "the films differ in length: the truth %s has %lld frames, the output "
                          "%s has %lld; eval compares frame i with frame i: give the output made "
                          "from this truth's grey, or cut both to the same frames",
                          truth, (long long)ti->frames, output, (long long)oi->frames);
        goto out;
    }
    if (shots_yaml && (rc = film_cuts(shots_yaml, ti->frames, &cuts, &n_cuts, &err)) < 0)
        goto out;
    if (n_cuts && cuts[n_cuts - 1] >= ti->frames) {
        rc = vf_error_set(&err, VF_EINVAL,
                          "--cuts %lld: the films have %lld frames (0 to %lld); a cut is the "
                          "first frame of a shot",
                          (long long)cuts[n_cuts - 1], (long long)ti->frames,
                          (long long)ti->frames - 1);
        goto out;
    }
    if (have_shots) {
        const char *what = shots_yaml ? "--shots" : "--cuts", *v = shots_yaml ? shots_yaml : cuts_arg;
        size_t len = strlen(what) + 1 + strlen(v) + 1;
        if (!(from = vf_calloc(len, 1, &err))) {
            rc = VF_ENOMEM;
            goto out;
        }
        snprintf(from, len, "%s %s", what, v);
    }
    if ((rc = vf_quality_create(&q, ti->width, ti->height, threads, &err)) < 0 ||
        (rc = vf_shard_decoder_create(&td, ti, VF_DECODE_RGB, &err)) < 0 ||
        (rc = vf_shard_decoder_create(&od, oi, VF_DECODE_RGB, &err)) < 0)
        goto out;
    if (per_frame && cli->json && !(frames_json = json_array())) {
        rc = vf_error_set(&err, VF_ENOMEM, "out of memory");
        goto out;
    }

    const bool progress = !cli->quiet && isatty(STDERR_FILENO);
    double last = vf_now();
    size_t next_cut = 0;
    for (int64_t i = 0; i < ti->frames; i++) {
        if (next_cut < n_cuts && cuts[next_cut] == i) {
            vf_quality_cut(q);
            next_cut++;
        }
        struct vf_frame tf, of;
        int r1 = vf_shard_decoder_read(td, &tf, &err);
        if (r1 < 0) {
            rc = r1;
            goto out;
        }
        int r2 = r1 > 0 ? vf_shard_decoder_read(od, &of, &err) : 0;
        if (r2 < 0) {
            rc = r2;
            goto out;
        }
        if (r1 == 0 || r2 == 0) { /* the decoders check their own counts: a bug if reached */
            rc = vf_error_set(&err, VF_EINTERNAL, "%s ended at frame %lld of %lld",
                              r1 == 0 ? truth : output, (long long)i, (long long)ti->frames);
            goto out;
        }
        struct vf_rgb_image t = rgb_image(&tf), o = rgb_image(&of);
        struct vf_quality_frame f;
        if ((rc = vf_quality_add(q, &t, &o, &f, &err)) < 0) {
            vf_error_prefix(&err, "frame %lld", (long long)i);
            goto out;
        }
        if (frames_json && json_array_append_new(frames_json, frame_json(i, &f))) {
            rc = vf_error_set(&err, VF_ENOMEM, "out of memory");
            goto out;
        }
        if (per_frame && !cli->json)
            print_frame_line(i, &f);
        if (progress && vf_now() - last > 0.5) {
            last = vf_now();
            fprintf(stderr, "\reval: frame %lld / %lld", (long long)i + 1, (long long)ti->frames);
        }
    }
    if (progress)
        fprintf(stderr, "\r\033[K");

    struct vf_quality_summary s;
    vf_quality_summarize(q, &s);
    if (cli->json) {
        if (!(shots_json = json_array())) {
            rc = vf_error_set(&err, VF_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t k = 0; have_shots && k < vf_quality_shots(q); k++) {
            struct vf_quality_summary ss;
            vf_quality_summarize_shot(q, k, &ss);
            if (json_array_append_new(shots_json, shot_json(k, &ss))) {
                rc = vf_error_set(&err, VF_ENOMEM, "out of memory");
                goto out;
            }
        }
        exit_code = vf_json_print(summary_json(ti, oi, &s, from, shots_json,
                                              frames_json));
    } else {
        if (per_frame)
            printf("\n");
        print_human(ti, oi, &s);
        if (have_shots)
            print_shots(q, from);
        exit_code = vf_stdout_done();
    }
    rc = VF_OK;

out:
    free(from);
    free(cuts);
    json_decref(shots_json);
    json_decref(frames_json);
    vf_shard_decoder_destroy(&od);
    vf_shard_decoder_destroy(&td);
    vf_quality_destroy(&q);
    vf_shard_media_info_destroy(&oi);
    vf_shard_media_info_destroy(&ti);
    return rc < 0 ? vf_report_error(&err) : exit_code;
}
