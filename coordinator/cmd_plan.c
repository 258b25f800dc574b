/*
 * coordinator/cmd_plan.c: `vaefarm plan FILM.yaml [--json] [--simulate R] [--frame-ms MS]`:
 * the shots, chunks and references the film would be split into, with warnings, planned with the
 * model, inference size and precision a run resolves (so with a run's hashes), and what a run
 * started now would do with each chunk given the work folder's journal (docs/PLAN.md); with
 * --simulate, the makespan of a dynamic longest-first schedule on R equal ranks. Writes nothing.
 */
#define _GNU_SOURCE 1 /* F_OFD_GETLK */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "config/config.h"
#include "coordinator/coordinator.h"
#include "coordinator/farm.h"
#include "node/node.h"
#include "shard/shard.h"

#ifndef VF_MODEL_DEFAULT
#define VF_MODEL_DEFAULT "models/vaefarm-tiny.safetensors"
#endif

/* Every reference image the film names decodes to a picture (at 32 × 32; each file once), now
 * rather than when its chunk runs, hours in; a grey one (no chroma anywhere) is said: the film
 * would stay grey where it applies. Errors at the key's film.yaml:line:col. */
static int check_references(const struct vf_film *film, struct vf_error *err)
{
    const size_t n = film->n_shots + film->n_references + 1;
    for (size_t i = 0; i < n; i++) {
        const char *path;
        struct vf_config_pos pos;
        if (i < film->n_shots) {
            path = film->shots[i].reference;
            pos = film->shots[i].reference_pos;
        } else if (i < film->n_shots + film->n_references) {
            path = film->references[i - film->n_shots].image;
            pos = film->references[i - film->n_shots].image_pos;
        } else {
            path = film->default_reference;
            pos = vf_config_key_pos(film, "default_reference");
        }
        if (!path)
            continue;
        bool seen = false;   /* the same file named earlier: checked there */
        for (size_t j = 0; j < i && !seen && j < film->n_shots; j++)
            seen = film->shots[j].reference && !strcmp(film->shots[j].reference, path);
        for (size_t j = film->n_shots; j < i && !seen && j < film->n_shots + film->n_references; j++)
            seen = !strcmp(film->references[j - film->n_shots].image, path);
        if (seen)
            continue;
        enum { S = 32 };
        float rgb[3 * S * S];
        int64_t frames = 0;
        int rc = vf_node_load_reference(path, S, S, rgb, &frames, err);
        if (rc < 0)
            return pos.line > 0 ? vf_error_prefix(err, "%s:%d:%d", film->path, pos.line, pos.col)
                                : vf_error_prefix(err, "%s", film->path);
        float chroma = 0.0f;
        for (int p = 0; p < S * S; p++) {
            const float r = rgb[p], g = rgb[S * S + p], b = rgb[2 * S * S + p];
            const float d = fabsf(r - g) > fabsf(g - b) ? fabsf(r - g) : fabsf(g - b);
            chroma = d > chroma ? d : chroma;
        }
        if (chroma < 2.0f / 255.0f)
            vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_WARN,
                   "%s:%d:%d: reference image %s is grey (no colour in it): the shots it "
                   "colours will stay grey; give a colour image", film->path, pos.line, pos.col,
                   path);
        /* a video (a colour print of the reel, say) is read for its first frame only */
        if (frames > 1)
            vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_WARN,
                   "%s:%d:%d: reference %s is a video of %lld frames: its first frame is the "
                   "reference; to use another, save it as a picture (ffmpeg -ss SECONDS -i %s "
                   "-frames:v 1 ref.png)", film->path, pos.line, pos.col, path,
                   (long long)frames, path);
    }
    return VF_OK;
}

/* Whether s is UTF-8 (jansson's own test: what it refuses, plan.json could not hold). */
static bool is_utf8(const char *s)
{
    json_t *j = s ? json_string(s) : NULL;
    json_decref(j);
    return !s || j;
}

int vf_film_resolve_model(struct vf_film *film, struct vf_error *err)
{
    if (film->model)
        return VF_OK;
    const char *env = getenv("VAEFARM_MODEL");
    const char *path = env && *env ? env : VF_MODEL_DEFAULT;
    struct vf_error e = {0};
    int fd = vf_open_regular(path, NULL, &e);
    if (fd < 0 && path == env)
        return vf_error_set(err, e.code, "%s: no `model:` given, and $VAEFARM_MODEL's model "
                            "cannot be read: %s: fix the variable, unset it for the bundled "
                            "model, or give `model:` in film.yaml", film->path, e.msg);
    if (fd < 0)
        return vf_error_set(err, e.code, "%s: no model given, and the bundled model cannot be "
                            "read: %s: make it with scripts/make_model.sh, set VAEFARM_MODEL, or "
                            "give `model:` in film.yaml", film->path, e.msg);
    close(fd);
    if (!is_utf8(path))   /* plan.json and report.json record it (check_utf8_paths) */
        return vf_error_set(err, VF_EINVAL, "%s: the model's path %s is not UTF-8: vaefarm records "
                            "it in plan.json and report.json, which are UTF-8 text; %s", film->path,
                            path, path == env ? "give $VAEFARM_MODEL a UTF-8 path" :
                            "set VAEFARM_MODEL to a copy of the model at a UTF-8 path");
    if (!(film->model = vf_strdup(path, err)))
        return VF_ENOMEM;
    return VF_OK;
}

bool vf_plan_passthrough_warning(const struct vf_film *film, const struct vf_arch *a,
                                 const struct vf_plan *plan, char *buf, size_t n)
{
    if (film->passthrough == VF_PASSTHROUGH_OFF)
        return false;
    const int ramp = a->c_gate_ramp > 1 ? a->c_gate_ramp - 1 : 0;
    const int need = ramp > a->prop_frames ? ramp : a->prop_frames;
    if (need < 1 || film->warmup >= need)
        return false;
    size_t inside = 0;
    const struct vf_chunk *ex = NULL;
    for (size_t i = 0; i < plan->n_chunks; i++)
        if (plan->chunks[i].warm_start > plan->shots[plan->chunks[i].shot].start) {
            inside++;
            ex = ex ? ex : &plan->chunks[i];
        }
    if (!inside)
        return false;
    /* what such a chunk's first kept frames lack: what the warm-up does not cover */
    const bool r = ramp > film->warmup, p = a->prop_frames > film->warmup;
    const char *what = r && p ? "C's whole correction and none of the carried colours"
                       : r    ? "C's whole correction"
                              : "none of the carried colours";
    snprintf(buf, n,
             "chunks.warmup %lld is under the %d frames after a reference pass-through that the "
             "model treats apart (C.gate_ramp - 1 = %d, len(propagate.shares) = %d): %zu chunks "
             "warm up from inside their shot (chunk %d at frame %lld, warm-up from %lld), and one "
             "whose warm-up begins up to %lld frames after a frame that passes through the shot's "
             "reference gives its first kept frames %s, unlike one pass over the shot "
             "(docs/PLAN.md). Set chunks.warmup to %d or more for output equal to one pass",
             (long long)film->warmup, need, ramp, a->prop_frames, inside, ex->id,
             (long long)ex->start, (long long)ex->warm_start, (long long)(need - film->warmup),
             what, need);
    return true;
}

/* Every path a run records in plan.json, report.json and the journal is UTF-8 (JSON text). Paths
 * inside film.yaml are (YAML is UTF-8), so a path that is not comes from the command line: the
 * film.yaml's folder (a Latin-1 name on an old file server). */
static int check_utf8_paths(const struct vf_film *film, struct vf_error *err)
{
    const char *bad = NULL;
    const char *paths[] = {film->path, film->input, film->output, film->work_dir, film->model,
                           film->edl, film->default_reference};
    for (size_t i = 0; !bad && i < sizeof paths / sizeof paths[0]; i++)
        if (!is_utf8(paths[i]))
            bad = paths[i];
    for (size_t i = 0; !bad && i < film->n_shots; i++)
        if (!is_utf8(film->shots[i].reference))
            bad = film->shots[i].reference;
    for (size_t i = 0; !bad && i < film->n_references; i++)
        if (!is_utf8(film->references[i].image))
            bad = film->references[i].image;
    if (!bad)
        return VF_OK;
    return vf_error_set(err, VF_EINVAL,
                        "%s: the path %s is not UTF-8 (a folder named in another encoding, from "
                        "the command line): vaefarm records its paths in plan.json and "
                        "report.json, which are UTF-8 text; run it from inside the film's folder "
                        "(cd to it, then vaefarm film.yaml), or rename the folder to UTF-8 "
                        "(convmv -f latin1 -t utf-8)", film->path, bad);
}

int vf_film_open(const char *yaml, char *unwritable, size_t n, struct vf_film **film,
                 struct vf_media_info **info, struct vf_error *err)
{
    int rc = vf_config_load(film, yaml, err);
    if (rc < 0)
        return rc;
    if ((rc = check_utf8_paths(*film, err)) < 0)
        return rc;
    bool only_unwritable = false;
    rc = vf_config_check_files(*film, &only_unwritable, err);
    if (unwritable)
        unwritable[0] = '\0';
    if (rc < 0 && only_unwritable && unwritable) {
        /* only folders this user may not write: `plan` still shows another user's film */
        snprintf(unwritable, n, "%s", err->msg);
        *err = (struct vf_error){0};
        rc = VF_OK;
    }
    if (rc < 0)
        return rc;
    rc = vf_shard_probe(info, (*film)->input, err);
    if (rc < 0)
        return vf_error_prefix(err, "%s: input", (*film)->path);
    char gap[320];
    if (vf_media_gap(*info, gap, sizeof gap))
        vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_WARN,
               "%s: input %s: its frame times jump by %s", (*film)->path, (*film)->input, gap);
    /* the encoder settings are checked now, not at the first segment after hours of work */
    struct vf_encode_spec spec;
    vf_shard_encode_spec(*film, &spec);
    rc = vf_shard_encoder_check(&spec, *info, err);
    if (rc < 0) {
        /* point at the key the message names (encode.options / pix_fmt / codec) */
        static const char *const keys[] = {"encode.options", "encode.pix_fmt", "encode.codec"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            struct vf_config_pos pos = vf_config_key_pos(*film, keys[k]);
            if (pos.line > 0 && (strstr(err->msg, keys[k]) || k == 2))
                return vf_error_prefix(err, "%s:%d:%d", (*film)->path, pos.line, pos.col);
        }
        return vf_error_prefix(err, "%s", (*film)->path);
    }
    /* the pipeline writes the pixel format asked for */
    if ((*film)->pix_fmt && (rc = vf_node_check_pix_fmt((*film)->pix_fmt, err)) < 0) {
        struct vf_config_pos pos = vf_config_key_pos(*film, "encode.pix_fmt");
        return pos.line > 0 ? vf_error_prefix(err, "%s:%d:%d", (*film)->path, pos.line, pos.col)
                            : vf_error_prefix(err, "%s", (*film)->path);
    }
    /* every reference is a picture */
    if ((rc = check_references(*film, err)) < 0)
        return rc;
    /* and the output's container takes that video and the copied audio and subtitles (else the
     * merge would refuse them after the whole film) */
    const struct vf_merge_spec ms = {.output = (*film)->output, .source = *info,
                                     .copy_audio = (*film)->audio == VF_AUDIO_COPY,
                                     .copy_subtitles = (*film)->audio == VF_AUDIO_COPY};
    rc = vf_shard_output_check(&ms, &spec, err);
    if (rc < 0) {
        /* its one refusal about the input (a first frame before 0) is at the input's line */
        struct vf_config_pos pos = vf_config_key_pos(
            *film, (*info)->frames > 0 && (*info)->start_pts < 0 ? "input" : "output");
        if (pos.line > 0)
            return vf_error_prefix(err, "%s:%d:%d", (*film)->path, pos.line, pos.col);
        return vf_error_prefix(err, "%s", (*film)->path);
    }
    return VF_OK;
}

/* The cut frames the shots come from: none for a shot list or detect: off. */
static int film_cuts(const struct vf_film *film, const struct vf_media_info *info, int64_t **cuts,
                     size_t *n_cuts, struct vf_error *err)
{
    *cuts = NULL;
    *n_cuts = 0;
    if (film->n_shots)
        return VF_OK;
    if (film->edl)
        return vf_shard_edl_load(film->edl, info, cuts, n_cuts, err);
    if (film->detect != VF_DETECT_AUTO)
        return VF_OK;
    struct vf_shot_params p = {.threshold = film->threshold, .min_length = film->min_shot_length};
    vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_VERBOSE,
           "detecting shots in %s (%lld frames)", film->input, (long long)info->frames);
    return vf_shard_detect_cuts(info, &p, cuts, n_cuts, NULL, err);
}

int vf_film_plan(const struct vf_film *film, const struct vf_media_info *info,
                 struct vf_plan **plan, struct vf_error *err)
{
    int64_t *cuts = NULL;
    size_t n_cuts = 0;
    int rc = film_cuts(film, info, &cuts, &n_cuts, err);
    if (rc == VF_OK)
        rc = vf_shard_plan_create(plan, film, info, cuts, n_cuts, err);
    free(cuts);
    return rc;
}

/* The work folder's JSON file `name` (plan.json, report.json): NULL when there is none, or it
 * is not a regular file (a FIFO would block the reader), or it does not parse (bad, n bytes,
 * then says why; "" otherwise). */
static json_t *load_work_json(const struct vf_film *film, const char *name, char *bad, size_t n)
{
    struct vf_error err = {0};
    bad[0] = '\0';
    char *path = vf_path_join(film->work_dir, name, &err);
    int fd = path ? vf_open_regular(path, NULL, &err) : -1;
    json_error_t je;
    json_t *doc = fd >= 0 ? json_loadfd(fd, 0, &je) : NULL;
    if (fd >= 0 && !doc)
        snprintf(bad, n, "%s does not parse (%s)", path, je.text);
    else if (fd < 0 && err.code != VF_ENOENT)
        snprintf(bad, n, "%s", err.msg);
    if (fd >= 0)
        close(fd);
    free(path);
    return doc;
}

json_t *vf_plan_record(const struct vf_film *film, char *bad, size_t n)
{
    return load_work_json(film, "plan.json", bad, n);
}

void vf_plan_auto_ranks(struct vf_film *film, const json_t *record, const char *record_bad,
                        int fallback, const char *fallback_name, const char **from)
{
    *from = NULL;
    if (film->chunk_length != VF_CHUNK_AUTO)
        return;
    if (film->ranks > 0) {
        *from = "film.yaml ranks:";
        return;
    }
    film->ranks = fallback;
    *from = fallback_name;
    const json_t *chunking = json_object_get(record, "chunking");
    json_t *ranks = json_object_get(chunking, "ranks");
    const char *length = json_string_value(json_object_get(chunking, "length"));
    if (length && !strcmp(length, "auto") && json_is_integer(ranks) &&
        json_integer_value(ranks) >= 1 && json_integer_value(ranks) <= (1 << 20)) {
        film->ranks = json_integer_value(ranks);
        *from = "the work folder's plan.json";
    } else if (record_bad && record_bad[0]) {
        vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_WARN,
               "%s: chunks.length auto plans for %s (%d) instead of the rank count it recorded",
               record_bad, fallback_name, fallback);
    }
}

json_t *vf_plan_json(const struct vf_film *film, const struct vf_media_info *info,
                         const struct vf_plan *plan)
{
    json_t *shots = json_array(), *chunks = json_array(), *warnings = json_array();
    if (!shots || !chunks || !warnings)
        goto fail;
    for (size_t i = 0; i < plan->n_shots; i++) {
        const struct vf_shot *s = &plan->shots[i];
        if (json_array_append_new(shots, json_pack("{s:I, s:I, s:I, s:s, s:s?}", "index",
                                                   (json_int_t)i, "start", (json_int_t)s->start,
                                                   "end", (json_int_t)s->end, "source", s->source,
                                                   "reference", s->reference)))
            goto fail;
    }
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        if (json_array_append_new(
                chunks, json_pack("{s:i, s:i, s:I, s:I, s:I, s:I, s:s?, s:s}", "id", c->id,
                                  "shot", c->shot, "warm_start", (json_int_t)c->warm_start,
                                  "start", (json_int_t)c->start, "end", (json_int_t)c->end,
                                  "warmup", (json_int_t)(c->start - c->warm_start), "reference",
                                  c->reference, "hash", c->hash)))
            goto fail;
    }
    for (size_t i = 0; i < plan->n_warnings; i++)
        if (json_array_append_new(warnings, json_string(plan->warnings[i])))
            goto fail;
    /* chunks.length: auto records the rank count it was planned for: later runs in this work
     * folder plan for that count again, whatever their -np (vf_plan_auto_ranks) */
    json_t *length = plan->auto_ranks ? json_string("auto")
                                      : json_integer((json_int_t)film->chunk_length);
    json_t *chunking = plan->auto_ranks
                           ? json_pack("{s:s, s:I, s:i, s:I}", "length", "auto", "warmup",
                                       (json_int_t)film->warmup, "ranks", plan->auto_ranks,
                                       "target_frames", (json_int_t)plan->auto_target)
                           : json_pack("{s:I, s:I}", "length", (json_int_t)film->chunk_length,
                                       "warmup", (json_int_t)film->warmup);
    return json_pack("{s:s, s:s, s:I, s:o, s:o, s:I, s:o, s:s, s:o, s:o, s:o}", "film", film->path,
                     "input", film->input, "frames", (json_int_t)plan->frames, "frame_rate",
                     json_pack("[ii]", info->fps_num, info->fps_den), "chunk_length", length,
                     "warmup", (json_int_t)film->warmup, "chunking", chunking, "hash",
                     plan->hash, "shots", shots, "chunks", chunks, "warnings", warnings);
fail:
    json_decref(shots);
    json_decref(chunks);
    json_decref(warnings);
    return NULL;
}

/* The simulated schedule, in frames of work: its makespan against the least makespan any
 * cutting of the shots could reach (vf_shard_plan_bound: efficiency = bound / makespan), and
 * against this plan's own bound max(ceil(work / R), longest chunk). */
struct sim {
    int ranks;
    int64_t work, longest, makespan, lower_bound, plan_bound;
};

static struct sim simulate(const struct vf_plan *plan, int ranks)
{
    struct sim s = {.ranks = ranks};
    for (size_t i = 0; i < plan->n_chunks; i++) {
        int64_t cost = plan->chunks[i].end - plan->chunks[i].warm_start;
        s.work += cost;
        if (cost > s.longest)
            s.longest = cost;
    }
    s.makespan = vf_shard_plan_simulate(plan, ranks);
    s.plan_bound = (s.work + ranks - 1) / ranks;
    if (s.longest > s.plan_bound)
        s.plan_bound = s.longest;
    s.lower_bound = vf_shard_plan_bound(plan, ranks);
    return s;
}

/* ---- what a run would use and do ----------------------------------------------------------- */

/* What a run resolves before it plans, resolved here the same way so that the hashes are a run's:
 * the model (film->model and its film->model_sha), the inference size, and precision: default. */
struct resolved {
    struct vf_net *net;
    char precision_from[112];   /* precision: default: how it was resolved; "": film.yaml's */
    json_t *record;             /* the work folder's plan.json (load_record), read once; or NULL */
    char record_bad[VF_ERROR_MSG_MAX + 64];  /* why it could not be read ("": it was, or none) */
};

/* Whether rank 0 of a run on this machine computes in each of dts[0..n_dt): yes[i]. On its first
 * GPU where CUDA sees one (the device's attributes only: no context's handles or memory on a GPU
 * a render may hold), else (no GPU, or one that does not answer, where a run's rank 0 takes the
 * CPU too) on the CPU. `where` names which, for a message. */
static int this_machine_supports(const enum vf_dtype *dts, bool *yes, size_t n_dt, char *where,
                                 size_t n, struct vf_error *err)
{
    int gpus = 0, cc = 0;
    struct vf_error e = {0};
    if (vf_kernels_has_cuda() && vf_kernels_gpu_count(&gpus, &e) == VF_OK && gpus > 0 &&
        vf_kernels_gpu_cc(0, &cc, &e) == VF_OK) {
        for (size_t i = 0; i < n_dt; i++)
            yes[i] = vf_kernels_cc_supports(cc, dts[i]);
        snprintf(where, n, "rank 0 on this machine's GPU 0 (compute capability %d.%d)", cc / 10,
                 cc % 10);
        return VF_OK;
    }
    struct vf_backend *be = NULL;
    int rc = vf_backend_create(&be, &(struct vf_backend_opts){.device = VF_DEVICE_CPU,
                                                             .threads = 1}, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n_dt; i++)
        yes[i] = vf_backend_supports(be, dts[i]);
    vf_backend_destroy(&be);
    snprintf(where, n, "a CPU rank on this machine");
    return VF_OK;
}

/* precision: default as rank 0 of a run resolves it: its backend's fastest exact-enough type,
 * bf16 or f32. The rank that will run is not this process: the work folder's plan.json says what
 * the last run resolved a default to; without one (or when that run was given a precision), what
 * rank 0 would resolve it to on this machine (its first GPU where CUDA sees one, else its CPU). */
static int resolve_default_precision(struct vf_film *film, const json_t *doc, char *from,
                                     size_t n, struct vf_error *err)
{
    from[0] = '\0';
    if (film->precision != VF_PRECISION_DEFAULT)
        return VF_OK;
    const char *rec = json_string_value(json_object_get(doc, "precision"));
    bool bf16;
    if (json_is_true(json_object_get(doc, "precision_default")) && rec &&
        (!strcmp(rec, "bf16") || !strcmp(rec, "f32"))) {
        bf16 = !strcmp(rec, "bf16");
        snprintf(from, n, "as the last run in the work folder resolved it");
    } else {
        char where[80];
        if (this_machine_supports(&(enum vf_dtype){VF_BF16}, &bf16, 1, where, sizeof where,
                                  err) < 0)
            return vf_error_prefix(err, "%s: precision: default (resolving it as a CPU rank "
                                   "would)", film->path);
        snprintf(from, n, "as %s would resolve it", where);
    }
    film->precision = bf16 ? VF_PRECISION_BF16 : VF_PRECISION_F32;
    return VF_OK;
}

static int resolve_like_run(struct vf_film *film, const struct vf_media_info *info,
                            struct resolved *r, struct vf_error *err)
{
    int rc = vf_film_resolve_model(film, err);
    void *weights = NULL;
    size_t len = 0;
    /* read once, as a run does: the bytes loaded are the bytes hashed */
    if (rc == VF_OK && (rc = vf_read_regular(film->model, &weights, &len, err)) < 0)
        vf_error_prefix(err, "model");
    if (rc == VF_OK && (rc = vf_net_load_buffer(weights, len, film->model, &r->net, err)) == VF_OK)
        rc = vf_shard_buffer_checksum(weights, len, film->model_sha, err);
    free(weights);
    if (rc < 0)
        return rc;
    if (film->inference_h == 0)
        vf_node_inference_size(vf_net_arch(r->net), info, &film->inference_h, &film->inference_w);
    r->record = vf_plan_record(film, r->record_bad, sizeof r->record_bad);
    return resolve_default_precision(film, r->record, r->precision_from, sizeof r->precision_from,
                                     err);
}

/* What a run started now would do with each chunk of its plan, from the work folder's journal
 * (read, not written). `plan` is the run's plan: the one shown, or, when --simulate cut an auto-
 * chunked film for its own rank count, the one a run would cut (`own`). */
struct rerun {
    const struct vf_plan *plan;
    struct vf_plan *own;        /* the run's plan when it is not the one shown; NULL otherwise */
    const char *ranks_from;     /* own: where the run's rank count comes from */
    struct vf_journal *j;       /* NULL: no journal (yet, or unreadable: `unread`) */
    struct vf_resume *how;      /* plan->n_chunks */
    char unread[VF_ERROR_MSG_MAX];  /* why the journal could not be read; "": it was, or is none */
    json_t *changed;            /* changed_since_record, or NULL */
    size_t keep, renumbered, redo;
    int64_t kept_done, kept_total, work_redo;
};

/* Fill r->how and the totals for r->plan. Only running out of memory is an error: a journal that
 * cannot be read is said (a warning, and r->unread) and every chunk counted as to do. */
static int rerun_view(const struct vf_film *film, struct rerun *r, struct vf_error *err)
{
    const struct vf_plan *plan = r->plan;
    if (!(r->how = vf_calloc(plan->n_chunks + 1, sizeof *r->how, err)))
        return VF_ENOMEM;
    char *path = vf_path_join(film->work_dir, "journal", err);
    if (!path)
        return VF_ENOMEM;
    struct vf_error e = {0};
    int rc = vf_journal_read(&r->j, path, &e);
    free(path);
    const char **hash = NULL;
    if (rc == VF_ENOMEM) {
        *err = e;
        return rc;
    }
    if (rc == VF_OK) {
        if (!(hash = vf_calloc(plan->n_chunks + 1, sizeof *hash, err)))
            return VF_ENOMEM;
        for (size_t i = 0; i < plan->n_chunks; i++)
            hash[i] = plan->chunks[i].hash;
        rc = vf_farm_resume_decide(film->work_dir, r->j, plan->n_chunks, hash, r->how, &e);
        free(hash);
        if (rc == VF_ENOMEM) {
            *err = e;
            return rc;
        }
    }
    if (rc < 0 && rc != VF_ENOENT) {
        vf_journal_close(&r->j);
        memset(r->how, 0, (plan->n_chunks + 1) * sizeof *r->how);
        snprintf(r->unread, sizeof r->unread, "%s", e.msg);
    }
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        r->kept_total += c->end - c->start;
        if (r->how[i].how == VF_RESUME_REDO) {
            r->redo++;
            r->work_redo += c->end - c->warm_start;
        } else {
            *(r->how[i].how == VF_RESUME_KEEP ? &r->keep : &r->renumbered) += 1;
            r->kept_done += c->end - c->start;
        }
    }
    return VF_OK;
}

static void rerun_free(struct rerun *r)
{
    json_decref(r->changed);
    free(r->how);
    vf_journal_close(&r->j);
    vf_shard_plan_destroy(&r->own);
}

/* The makespan, on `ranks`, of the chunks a run now would colorize; -1 when out of memory. */
static int64_t rerun_makespan(const struct rerun *r, int ranks)
{
    struct vf_plan left = *r->plan;
    if (!(left.chunks = malloc((r->plan->n_chunks + 1) * sizeof *left.chunks)))
        return -1;
    left.n_chunks = 0;
    for (size_t i = 0; i < r->plan->n_chunks; i++)
        if (r->how[i].how == VF_RESUME_REDO)
            left.chunks[left.n_chunks++] = r->plan->chunks[i];
    int64_t m = vf_shard_plan_simulate(&left, ranks);
    free(left.chunks);
    return m;
}

/* What the last run in the work folder (its plan.json) resolved otherwise than a run now would:
 * each of these changes every chunk's hash. {"<what>": ["<then>", "<now>"], ...}; NULL without
 * a record (or out of memory). */
static json_t *changed_since_record(const struct vf_film *film, const struct vf_media_info *info,
                                    const struct resolved *res)
{
    const json_t *doc = res->record;
    json_t *out = doc ? json_object() : NULL;
    if (!out)
        return NULL;
    char then[64], now[64];
    const char *was = json_string_value(json_object_get(json_object_get(doc, "model"), "sha256"));
    if (was && strcmp(was, film->model_sha))
        json_object_set_new(out, "model sha256", json_pack("[ss]", was, film->model_sha));
    was = json_string_value(json_object_get(doc, "precision"));
    if (was && strcmp(was, vf_precision_name(film->precision)))
        json_object_set_new(out, "precision",
                            json_pack("[ss]", was, vf_precision_name(film->precision)));
    json_t *size = json_object_get(doc, "inference_size");
    snprintf(then, sizeof then, "%lldx%lld", (long long)json_integer_value(json_array_get(size, 0)),
             (long long)json_integer_value(json_array_get(size, 1)));
    snprintf(now, sizeof now, "%dx%d", film->inference_h, film->inference_w);
    if (json_is_array(size) && strcmp(then, now))
        json_object_set_new(out, "inference size", json_pack("[ss]", then, now));
    was = json_string_value(json_object_get(doc, "input_digest"));
    if (was && strcmp(was, info->video_digest))
        json_object_set_new(out, "input video digest", json_pack("[ss]", was, info->video_digest));
    json_t *pass = json_object_get(doc, "reference_passthrough");
    const bool on = film->passthrough != VF_PASSTHROUGH_OFF;
    if (json_is_boolean(pass) && json_is_true(pass) != on)
        json_object_set_new(out, "reference_passthrough",
                            json_pack("[ss]", json_is_true(pass) ? "auto" : "off", on ? "auto" : "off"));
    return out;
}

/* The last colorizing run's speed in this work folder (its report.json): ms of a rank's busy time
 * per frame of work (kept + warm-up), over every rank; 0 when there is none to read (no run
 * colorized anything, or no report). The device it ran on goes into `backend`. */
static double measured_ms_per_frame(const struct vf_film *film, char *backend, size_t n)
{
    char bad[VF_ERROR_MSG_MAX + 64];   /* no report, or a damaged one: no measured speed */
    json_t *doc = load_work_json(film, "report.json", bad, sizeof bad);
    double busy = 0, frames = 0;
    const char *mode = json_string_value(json_object_get(doc, "mode"));
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(doc, "per_rank"), i, r) {
        busy += json_number_value(json_object_get(r, "busy_s"));
        frames += (double)json_integer_value(json_object_get(r, "frames")) +
                  (double)json_integer_value(json_object_get(r, "warmup_frames"));
    }
    snprintf(backend, n, "%s", json_string_value(json_object_get(doc, "backend")) ?: "?");
    const double ms = mode && !strcmp(mode, "colorize") && busy > 0 && frames > 0 &&
                      isfinite(busy) ? 1000.0 * busy / frames : 0;
    json_decref(doc);
    return ms;
}

static const char *how_name(const struct vf_resume *r)
{
    return r->how == VF_RESUME_KEEP ? "keep" : r->how == VF_RESUME_RENUMBERED ? "renumbered" : "redo";
}

static const char *why_name(enum vf_resume_why w)
{
    switch (w) {
    case VF_RESUME_NOT_JOURNALED: return "not journaled";
    case VF_RESUME_WRONG_NAME: return "journaled under another name";
    case VF_RESUME_MISSING: return "segment missing or unreadable";
    case VF_RESUME_CHANGED: return "segment changed";
    case VF_RESUME_TAKEN: return "another plan's chunk took its name";
    }
    return "?";
}

/* What a run now does, in a sentence (no newline). */
static void rerun_line(const struct vf_film *film, const struct rerun *r, char *buf, size_t n)
{
    char whose[160] = "";
    if (r->own)
        snprintf(whose, sizeof whose, " (with its own chunks: %zu, cut for %d rank%s, %s, not "
                 "for --simulate's)", r->plan->n_chunks, r->plan->auto_ranks,
                 r->plan->auto_ranks == 1 ? "" : "s", r->ranks_from ? r->ranks_from : "?");
    if (r->unread[0])
        snprintf(buf, n, "work folder %s: its journal cannot be read, so what a run would keep is "
                 "not known (and a run would stop at it): %s", film->work_dir, r->unread);
    else if (!r->j)
        snprintf(buf, n, "work folder %s: no journal yet: a run%s colorizes all %zu chunks (%lld "
                 "frames of work)", film->work_dir, whose, r->plan->n_chunks,
                 (long long)r->work_redo);
    else {
        char moved[80] = "";
        if (r->renumbered)
            snprintf(moved, sizeof moved, "; %zu of them an earlier plan's under other ids",
                     r->renumbered);
        snprintf(buf, n, "work folder %s: a run now%s keeps %zu of %zu chunks (%lld of %lld kept "
                 "frames%s) and colorizes %zu (%lld frames of work)", film->work_dir, whose,
                 r->keep + r->renumbered, r->plan->n_chunks, (long long)r->kept_done,
                 (long long)r->kept_total, moved, r->redo, (long long)r->work_redo);
    }
}

/* Warnings beyond the planner's own, printed and carried in --json's `warnings` with them. */
struct notes {
    char text[8][VF_ERROR_MSG_MAX + 160];
    size_t n;
};

static void note(struct notes *nt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct notes *nt, const char *fmt, ...)
{
    if (nt->n == sizeof nt->text / sizeof nt->text[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nt->text[nt->n], sizeof nt->text[0], fmt, ap);
    va_end(ap);
    vf_escape_controls(nt->text[nt->n], sizeof nt->text[0]);
    nt->n++;
}

/* Who holds the run's lock on <work_dir>/lock now, looked at without taking it (so a run starting
 * meanwhile is never refused because of `plan`):
 * - a run on this machine: /proc/locks lists its flock by device and inode (matched by the pid
 *   the lock's text names where the device numbers differ: a btrfs subvolume, an overlay file
 *   system report others than /proc/locks does);
 * - a run on another node of a shared file system whose flock is a lock of the server's (NFS
 *   takes flock as a whole-file POSIX lock): a POSIX test lock over the file (F_OFD_GETLK)
 *   conflicts with it; the holder is the pid and host the lock's text names.
 * `held` stays false where neither sees one (a node-local flock elsewhere, e.g. Lustre's
 * localflock or NFS's local_lock=flock, is not seen: nor would a run there be kept out). */
struct lock_holder {
    bool held;                  /* a holder was seen */
    bool here;                  /* in /proc/locks */
    long pid;                   /* here: /proc/locks'; else the lock's text's, 0 when it has none */
    char host[64];              /* from the lock's text; "" where it names none */
};

static void lock_holder(const char *work_dir, struct lock_holder *h)
{
    struct vf_error err = {0};
    char *path = vf_path_join(work_dir, "lock", &err);
    struct stat st;
    long wrote = 0;
    memset(h, 0, sizeof *h);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) : -1;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        vf_farm_lock_read(fd, &wrote, h->host, sizeof h->host);
        FILE *f = fopen("/proc/locks", "re");
        char line[256];
        while (f && !h->held && fgets(line, sizeof line, f)) {
            char kind[16];
            long who;
            unsigned maj, min;
            unsigned long long ino;
            if (sscanf(line, "%*[^:]: %15s %*s %*s %ld %x:%x:%llu", kind, &who, &maj, &min,
                       &ino) == 5 && !strcmp(kind, "FLOCK") && ino == (unsigned long long)st.st_ino &&
                ((maj == major(st.st_dev) && min == minor(st.st_dev)) || (wrote && who == wrote)))
                h->pid = who, h->here = h->held = true;
        }
        if (f)
            fclose(f);
        struct flock probe = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (!h->held && fcntl(fd, F_OFD_GETLK, &probe) == 0 && probe.l_type != F_UNLCK)
            h->pid = wrote, h->held = true;
    }
    if (fd >= 0)
        close(fd);
    free(path);
}

/* A precision film.yaml gives that rank 0 of a run on this machine does not compute in: such a
 * run is refused at its start (cmd_run.c resolve_precision). A warning, not an error: the run may
 * be meant for other nodes (plan on a login node, run on GPU nodes). */
static void precision_note(const struct vf_film *film, const struct resolved *res,
                           struct notes *nt)
{
    if (res->precision_from[0] || film->precision == VF_PRECISION_DEFAULT)
        return;   /* a default was resolved to what this machine computes in */
    const enum vf_dtype dt = film->precision == VF_PRECISION_F16    ? VF_F16
                             : film->precision == VF_PRECISION_BF16 ? VF_BF16
                                                                    : VF_F32;
    bool yes[2];   /* the film's precision, bf16 (for the advice) */
    char where[80];
    struct vf_error err = {0};
    if (this_machine_supports((const enum vf_dtype[]){dt, VF_BF16}, yes, 2, where, sizeof where,
                              &err) < 0 ||
        yes[0])
        return;
    const bool bf16 = yes[1];
    struct vf_config_pos pos = vf_config_key_pos(film, "precision");
    note(nt, "%s:%d:%d: precision %s: %s does not compute in it, so a run started here would be "
         "refused (exit 3); use f32%s, or leave precision out, unless the run is for other nodes",
         film->path, pos.line, pos.col, vf_precision_name(film->precision), where,
         bf16 ? " or bf16" : "");
}

/* What would stop a run at its start in the work folder, said now: a run holding it, a segments
 * folder that is not one or that this user cannot write, a plan.json that is a folder. */
static void work_folder_notes(const struct vf_film *film, const struct resolved *res,
                              struct notes *nt)
{
    struct lock_holder h;
    lock_holder(film->work_dir, &h);
    if (h.here)
        note(nt, "a run (pid %ld, on this machine) is working in %s now: a run started now would "
             "be refused until it ends, and what it would keep grows meanwhile", h.pid,
             film->work_dir);
    else if (h.held) {
        char who[128] = "pid unknown";
        if (h.pid)
            snprintf(who, sizeof who, "pid %ld on %s, by the lock's text", h.pid,
                     h.host[0] ? h.host : "a host it does not name");
        note(nt, "a run (%s) holds %s's lock through the shared file system now: a run started "
             "now would be refused until it ends, and what it would keep grows meanwhile", who,
             film->work_dir);
    }
    struct vf_error err = {0};
    char *seg = vf_path_join(film->work_dir, "segments", &err);
    char *rec = vf_path_join(film->work_dir, "plan.json", &err);
    struct stat st;
    if (seg && stat(seg, &st) == 0 && !S_ISDIR(st.st_mode))
        note(nt, "%s is not a folder: a run would stop at it; remove it, or give another work_dir",
             seg);
    else if (seg && stat(seg, &st) == 0 && access(seg, W_OK | X_OK) != 0)
        note(nt, "the work folder's segments folder %s cannot be written (%s): a run by this user "
             "would be refused; make it writable for this user, or give another work_dir", seg,
             strerror(errno));
    if (rec && stat(rec, &st) == 0 && S_ISDIR(st.st_mode)) {
        note(nt, "%s is a folder: a run would fail writing its plan there; remove it", rec);
    } else if (rec && stat(rec, &st) == 0 && S_ISREG(st.st_mode) && res->record_bad[0]) {
        note(nt, "%s: the last run's record is not read (a run writes a new one)",
             res->record_bad);
    }
    /* the files a run opens to write at its start, when another user's run left them */
    static const char *const opened[] = {"lock", "journal", "vaefarm.log"};
    for (size_t i = 0; i < sizeof opened / sizeof opened[0]; i++) {
        char *path = vf_path_join(film->work_dir, opened[i], &err);
        if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, W_OK) != 0)
            note(nt, "%s cannot be written (%s): a run by this user would stop at it; make it "
                 "writable for this user, or give another work_dir", path, strerror(errno));
        free(path);
    }
    free(seg);
    free(rec);
}

static void print_human(const struct vf_film *film, const struct vf_media_info *info,
                        const struct vf_plan *plan, const char *ranks_from,
                        const struct resolved *res, const struct rerun *r, const struct notes *nt)
{
    double fps = info->fps_den ? (double)info->fps_num / info->fps_den : 25.0;
    int64_t warm = 0;
    for (size_t i = 0; i < plan->n_chunks; i++)
        warm += plan->chunks[i].start - plan->chunks[i].warm_start;
    char cut[160];
    if (plan->auto_ranks)
        snprintf(cut, sizeof cut, "cut for %d rank%s (chunks.length auto, %s; %lld frames of "
                 "work per rank aimed at)", plan->auto_ranks, plan->auto_ranks == 1 ? "" : "s",
                 ranks_from ? ranks_from : "?", (long long)plan->auto_target);
    else
        snprintf(cut, sizeof cut, "of <= %lld kept frames", (long long)film->chunk_length);
    printf("%s: %lld frames (%.1f s at %.3f fps), %zu shots, %zu chunks %s, "
           "%lld warm-up frames (%.1f%% extra work)\n",
           film->path, (long long)plan->frames, plan->frames / fps, fps, plan->n_shots,
           plan->n_chunks, cut, (long long)warm, plan->frames ? 100.0 * warm / plan->frames : 0.0);
    printf("\nshots:\n  %4s %8s %8s %8s  %-7s %s\n", "#", "start", "end", "seconds", "from",
           "reference");
    for (size_t i = 0; i < plan->n_shots; i++) {
        const struct vf_shot *s = &plan->shots[i];
        printf("  %4zu %8lld %8lld %8.2f  %-7s %s\n", i, (long long)s->start, (long long)s->end,
               (s->end - s->start) / fps, s->source, s->reference ? s->reference : "-");
    }
    /* what a run now does with each chunk, where these are the run's chunks and it has a journal */
    const bool each = r->j && !r->own;
    printf("\nchunks:\n  %5s %4s %8s %8s %8s %6s%s\n", "id", "shot", "decode", "keep", "end",
           "warmup", each ? "  a run now" : "");
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        const struct vf_resume *h = each ? &r->how[i] : NULL;   /* r->how is the run's plan's */
        char now[96] = "";
        if (each && h->how == VF_RESUME_RENUMBERED)
            snprintf(now, sizeof now, "  keeps chunk %d's segment (renumbered)", h->entry->chunk);
        else if (each && h->how == VF_RESUME_KEEP)
            snprintf(now, sizeof now, "  keeps it");
        else if (each && h->entry)
            snprintf(now, sizeof now, "  colorizes it (%s)", why_name(h->why));
        else if (each)
            snprintf(now, sizeof now, "  colorizes it");
        printf("  %5d %4d %8lld %8lld %8lld %6lld%s\n", c->id, c->shot, (long long)c->warm_start,
               (long long)c->start, (long long)c->end, (long long)(c->start - c->warm_start), now);
    }
    for (size_t i = 0; i < plan->n_warnings; i++)
        printf("warning: %s\n", plan->warnings[i]);
    for (size_t i = 0; i < nt->n; i++)
        printf("warning: %s\n", nt->text[i]);
    printf("\nmodel %s (%s, sha256 %.12s...), %s at %dx%d%s%s%s\n", film->model,
           vf_net_arch(res->net)->name, film->model_sha, vf_precision_name(film->precision),
           film->inference_h, film->inference_w,
           res->precision_from[0] ? " (precision: default, " : "", res->precision_from,
           res->precision_from[0] ? ")" : "");
    printf("plan hash %s\n", plan->hash);
    char line[VF_ERROR_MSG_MAX + 512];
    rerun_line(film, r, line, sizeof line);
    printf("%s\n", line);
    const char *what;
    json_t *pair;
    json_object_foreach(r->changed, what, pair) {
        const char *a = json_string_value(json_array_get(pair, 0));
        const char *b = json_string_value(json_array_get(pair, 1));
        printf("  since the last run (its plan.json): %s %.*s%s -> %.*s%s: every chunk's hash "
               "differs\n", what, 16, a, strlen(a) > 16 ? "..." : "", 16, b,
               strlen(b) > 16 ? "..." : "");
    }
}

/* The --json document's additions: what the run resolves, and what a run now would do. */
static int add_rerun_json(json_t *doc, const struct vf_film *film, const struct resolved *res,
                          const struct rerun *r, const struct notes *nt)
{
    json_t *chunks = json_object_get(doc, "chunks");
    for (size_t i = 0; !r->own && i < r->plan->n_chunks; i++) {
        const struct vf_resume *h = &r->how[i];
        json_t *c = json_array_get(chunks, i);
        if (!c || json_object_set_new(c, "rerun", json_string(how_name(h))))
            return -1;
        if (h->how == VF_RESUME_RENUMBERED &&
            json_object_set_new(c, "from", json_integer(h->entry->chunk)))
            return -1;
        if (h->how == VF_RESUME_REDO && json_object_set_new(c, "why", json_string(why_name(h->why))))
            return -1;
    }
    json_t *rr = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "work_dir",
                           film->work_dir, "journal", r->j != NULL, "chunks",
                           (json_int_t)r->plan->n_chunks, "keep", (json_int_t)r->keep,
                           "renumbered", (json_int_t)r->renumbered, "redo", (json_int_t)r->redo,
                           "kept_frames_done", (json_int_t)r->kept_done, "kept_frames",
                           (json_int_t)r->kept_total, "work_frames", (json_int_t)r->work_redo);
    if (rr && r->own)
        json_object_set_new(rr, "ranks", json_integer(r->plan->auto_ranks));
    if (rr && r->unread[0])
        json_object_set_new(rr, "error", json_string(r->unread));
    if (rr && r->changed)
        json_object_set(rr, "changed", r->changed);
    if (!rr || json_object_set_new(doc, "rerun", rr) ||
        json_object_set_new(doc, "model", json_pack("{s:s, s:s, s:s}", "path", film->model,
                                                    "sha256", film->model_sha, "arch",
                                                    vf_net_arch(res->net)->name)) ||
        json_object_set_new(doc, "precision", json_string(vf_precision_name(film->precision))) ||
        json_object_set_new(doc, "inference_size",
                            json_pack("[i,i]", film->inference_h, film->inference_w)))
        return -1;
    for (size_t i = 0; i < nt->n; i++)
        if (json_array_append_new(json_object_get(doc, "warnings"), json_string(nt->text[i])))
            return -1;
    return 0;
}

static int parse_positive(const char *opt, const char *s, double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || errno || end == s || *end || !(v > 0) || v > max) {
        fprintf(stderr, "vaefarm plan: %s needs a positive number (at most %.0f), got '%s'\n", opt,
                max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int vf_cmd_plan(int argc, char **argv, struct vf_cli *cli)
{
    const char *yaml = NULL;
    double ranks_d = 0, frame_ms = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--simulate") == 0) {
            if (parse_positive("--simulate", i + 1 < argc ? argv[++i] : NULL, 1 << 20, &ranks_d))
                return VF_EXIT_USAGE;
            if (ranks_d != (int)ranks_d) {
                fprintf(stderr, "vaefarm plan: --simulate needs a whole number of ranks\n");
                return VF_EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--frame-ms") == 0) {
            if (parse_positive("--frame-ms", i + 1 < argc ? argv[++i] : NULL, 1e7, &frame_ms))
                return VF_EXIT_USAGE;
        } else if (argv[i][0] == '-' || yaml) {
            fprintf(stderr, "vaefarm plan: unexpected argument '%s'\n"
                            "usage: vaefarm plan FILM.yaml [--json] [--simulate RANKS] "
                            "[--frame-ms MS]\n", argv[i]);
            return VF_EXIT_USAGE;
        } else {
            yaml = argv[i];
        }
    }
    if (!yaml) {
        fprintf(stderr, "usage: vaefarm plan FILM.yaml [--json] [--simulate RANKS] [--frame-ms MS]\n");
        return VF_EXIT_USAGE;
    }
    if (frame_ms > 0 && !(ranks_d > 0)) {
        fprintf(stderr, "vaefarm plan: --frame-ms turns --simulate's makespan into seconds: give "
                        "--simulate RANKS with it\n");
        return VF_EXIT_USAGE;
    }

    struct vf_error err = {0};
    struct vf_film *film = NULL;
    struct vf_media_info *info = NULL;
    struct vf_plan *plan = NULL;
    int64_t *cuts = NULL;
    size_t n_cuts = 0;
    int rc = VF_EXIT_OK;
    const char *ranks_from = NULL;
    struct resolved res = {0};
    struct rerun rr = {0};
    struct notes nt = {0};
    char unwritable[VF_ERROR_MSG_MAX];
    if (vf_film_open(yaml, unwritable, sizeof unwritable, &film, &info, &err) < 0 ||
        resolve_like_run(film, info, &res, &err) < 0 ||
        film_cuts(film, info, &cuts, &n_cuts, &err) < 0) {
        rc = vf_report_error(&err);
        goto out;
    }
    if (unwritable[0])
        note(&nt, "%s\n(a run by this user would stop there; the plan is shown all the same)",
             unwritable);
    /* chunks.length auto: --simulate R plans for R ranks; else as a run would (film.yaml's
     * ranks:, the work folder's record, else one process). What a run now does is always the
     * run's own plan's: film.yaml's ranks:, the record, else (a first run) --simulate's R. */
    vf_plan_auto_ranks(film, res.record, res.record_bad, ranks_d > 0 ? (int)ranks_d : 1,
                       ranks_d > 0 ? "--simulate" : "one process", &ranks_from);
    const int64_t run_ranks = film->ranks;
    const char *run_ranks_from = ranks_from;
    if (film->chunk_length == VF_CHUNK_AUTO && ranks_d > 0) {
        film->ranks = (int64_t)ranks_d;
        ranks_from = "--simulate";
    }
    if (vf_shard_plan_create(&plan, film, info, cuts, n_cuts, &err) < 0) {
        rc = vf_report_error(&err);
        goto out;
    }
    rr.plan = plan;
    if (film->ranks != run_ranks) {
        film->ranks = run_ranks;
        if (vf_shard_plan_create(&rr.own, film, info, cuts, n_cuts, &err) < 0) {
            rc = vf_report_error(&err);
            goto out;
        }
        rr.plan = rr.own;
        rr.ranks_from = run_ranks_from;
        film->ranks = (int64_t)ranks_d;
    }
    if (rerun_view(film, &rr, &err) < 0) {
        rc = vf_report_error(&err);
        goto out;
    }
    rr.changed = changed_since_record(film, info, &res);
    if (vf_plan_passthrough_warning(film, vf_net_arch(res.net), plan, nt.text[nt.n],
                                    sizeof nt.text[0]))
        nt.n++;
    precision_note(film, &res, &nt);
    work_folder_notes(film, &res, &nt);
    struct sim s = {0};
    int64_t rerun_ms = -1;
    char backend[32] = "";
    /* seconds: at --frame-ms, else at the last run's measured speed */
    double ms = frame_ms;
    const char *ms_from = "--frame-ms";
    if (ranks_d > 0) {
        s = simulate(plan, (int)ranks_d);
        rerun_ms = rerun_makespan(&rr, (int)ranks_d);
        if (!(ms > 0) && (ms = measured_ms_per_frame(film, backend, sizeof backend)) > 0)
            ms_from = "report.json";
    }
    if (cli->json) {
        json_t *doc = vf_plan_json(film, info, plan);
        if (doc && add_rerun_json(doc, film, &res, &rr, &nt) < 0) {
            json_decref(doc);
            doc = NULL;
        }
        if (doc && ranks_d > 0) {
            json_t *sim = json_pack("{s:i, s:I, s:I, s:I, s:I, s:f}", "ranks", s.ranks,
                                    "work_frames", (json_int_t)s.work, "makespan_frames",
                                    (json_int_t)s.makespan, "lower_bound_frames",
                                    (json_int_t)s.lower_bound, "plan_lower_bound_frames",
                                    (json_int_t)s.plan_bound, "efficiency",
                                    (double)s.lower_bound / (double)s.makespan);
            if (sim && rerun_ms >= 0)
                json_object_set_new(sim, "rerun_makespan_frames", json_integer((json_int_t)rerun_ms));
            if (sim && ms > 0) {
                json_object_set_new(sim, "ms_per_frame", json_real(ms));
                json_object_set_new(sim, "ms_per_frame_from", json_string(ms_from));
                json_object_set_new(sim, "makespan_seconds", json_real(s.makespan * ms / 1000.0));
                if (rerun_ms >= 0)
                    json_object_set_new(sim, "rerun_makespan_seconds",
                                        json_real(rerun_ms * ms / 1000.0));
            }
            json_object_set_new(doc, "simulation", sim);
        }
        rc = vf_json_print(doc);
    } else {
        print_human(film, info, plan, ranks_from, &res, &rr, &nt);
        if (ranks_d > 0) {
            printf("\nsimulated on %d ranks (longest chunk first): makespan %lld frames of work; "
                   "the least any cutting could reach is %lld: efficiency %.1f%% (this plan's "
                   "own bound: %lld)\n",
                   s.ranks, (long long)s.makespan, (long long)s.lower_bound,
                   100.0 * (double)s.lower_bound / (double)s.makespan, (long long)s.plan_bound);
            char at[128] = "";
            if (ms > 0 && frame_ms > 0)
                snprintf(at, sizeof at, "at %.3g ms per frame", ms);
            else if (ms > 0)
                snprintf(at, sizeof at, "at the last run's %.3g ms per frame of work per rank (%s, "
                         "its report.json)", ms, backend);
            if (ms > 0)
                printf("%s: %.1f s\n", at, s.makespan * ms / 1000.0);
            if (rr.j && rr.redo == 0) {
                printf("a run now colorizes nothing (every chunk is kept): it only merges\n");
            } else if (rr.j && rr.redo < rr.plan->n_chunks && rerun_ms >= 0) {
                printf("a run now on %d ranks, colorizing the %zu chunk%s left: makespan %lld "
                       "frames of work\n", s.ranks, rr.redo, rr.redo == 1 ? "" : "s",
                       (long long)rerun_ms);
                if (ms > 0)
                    printf("%s: %.1f s\n", at, rerun_ms * ms / 1000.0);
            }
        }
        rc = vf_stdout_done();
    }
out:
    free(cuts);
    rerun_free(&rr);
    vf_net_free(&res.net);
    json_decref(res.record);
    vf_shard_plan_destroy(&plan);
    vf_shard_media_info_destroy(&info);
    vf_config_destroy(&film);
    return rc;
}
