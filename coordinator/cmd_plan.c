/*
 * coordinator/cmd_plan.c: `vaefarm plan FILM.yaml [--json] [--simulate R] [--frame-ms MS]`:
 * the shots, chunks and references the film would be split into, with warnings, planned with the
 * model, inference size and precision a run resolves (so with a run's hashes), and what a run
 * started now would do with each chunk given the work folder's journal (docs/PLAN.md); with
 * --simulate, the makespan of a dynamic longest-first schedule on R equal ranks. Writes nothing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        int rc = vf_node_load_reference(path, S, S, rgb, err);
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
    }
    return VF_OK;
}

int vf_film_resolve_model(struct vf_film *film, struct vf_error *err)
{
    if (film->model)
        return VF_OK;
    const char *env = getenv("VAEFARM_MODEL");
    const char *path = env && *env ? env : VF_MODEL_DEFAULT;
    if (access(path, R_OK) != 0)
        return vf_error_set(err, VF_ENOENT,
                            "%s: no model given and the default model %s (%s) is missing (%s): "
                            "make it with scripts/make_model.sh, set VAEFARM_MODEL, or give "
                            "`model:` in film.yaml", film->path, path,
                            path == env ? "$VAEFARM_MODEL" : "the bundled one", strerror(errno));
    if (!(film->model = vf_strdup(path, err)))
        return VF_ENOMEM;
    return VF_OK;
}

/* A model that treats the first frames after a reference pass-through apart (C ramps in over
 * C.gate_ramp K frames; propagate carries a, b into len(propagate.shares) = n frames) counts
 * them in each chunk from the pass-throughs the chunk itself runs. A chunk whose warm-up begins
 * up to max(K − 1, n) frames after a passing frame gives its first kept frames C's whole
 * correction and no carried colours, where a sequential pass does not (docs/PLAN.md); with
 * chunks.warmup >= max(K − 1, n) that cannot happen. Which frames pass is known only when they
 * run (the reference may be any frame of its shot), so this warns on the settings, when some
 * chunk warms up from inside its shot (a chunk whose warm-up reaches its shot's first frame runs
 * every pass-through before it). */
void vf_plan_warn_after_passthrough(const struct vf_film *film, const struct vf_arch *a,
                                    const struct vf_plan *plan)
{
    if (film->passthrough == VF_PASSTHROUGH_OFF)
        return;
    const int ramp = a->c_gate_ramp > 1 ? a->c_gate_ramp - 1 : 0;
    const int need = ramp > a->prop_frames ? ramp : a->prop_frames;
    if (need < 1 || film->warmup >= need)
        return;
    size_t inside = 0;
    const struct vf_chunk *ex = NULL;
    for (size_t i = 0; i < plan->n_chunks; i++)
        if (plan->chunks[i].warm_start > plan->shots[plan->chunks[i].shot].start) {
            inside++;
            ex = ex ? ex : &plan->chunks[i];
        }
    if (!inside)
        return;
    /* what such a chunk's first kept frames lack: what the warm-up does not cover */
    const bool r = ramp > film->warmup, p = a->prop_frames > film->warmup;
    const char *what = r && p ? "C's whole correction and none of the carried colours"
                       : r    ? "C's whole correction"
                              : "none of the carried colours";
    vf_log(NULL, VF_LOG_WARN,
           "chunks.warmup %lld is under the %d frames after a reference pass-through that the "
           "model treats apart (C.gate_ramp - 1 = %d, len(propagate.shares) = %d): %zu chunks "
           "warm up from inside their shot (chunk %d at frame %lld, warm-up from %lld), and one "
           "whose warm-up begins up to %lld frames after a frame that passes through the shot's "
           "reference gives its first kept frames %s, unlike one pass over the shot "
           "(docs/PLAN.md). Set chunks.warmup to %d or more for output equal to one pass",
           (long long)film->warmup, need, ramp, a->prop_frames, inside, ex->id,
           (long long)ex->start, (long long)ex->warm_start,
           (long long)(need - film->warmup), what, need);
}

int vf_film_open(const char *yaml, struct vf_film **film, struct vf_media_info **info,
                 struct vf_error *err)
{
    int rc = vf_config_load(film, yaml, err);
    if (rc < 0)
        return rc;
    rc = vf_config_check_files(*film, err);
    if (rc < 0)
        return rc;
    rc = vf_shard_probe(info, (*film)->input, err);
    if (rc < 0)
        return vf_error_prefix(err, "%s: input", (*film)->path);
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
        struct vf_config_pos pos = vf_config_key_pos(*film, "output");
        if (pos.line > 0)
            return vf_error_prefix(err, "%s:%d:%d", (*film)->path, pos.line, pos.col);
        return vf_error_prefix(err, "%s", (*film)->path);
    }
    return VF_OK;
}

int vf_film_plan(const struct vf_film *film, const struct vf_media_info *info,
                 struct vf_plan **plan, struct vf_error *err)
{
    int64_t *cuts = NULL;
    size_t n_cuts = 0;
    int rc = VF_OK;
    if (film->n_shots == 0) {
        if (film->edl) {
            rc = vf_shard_edl_load(film->edl, info, &cuts, &n_cuts, err);
        } else if (film->detect == VF_DETECT_AUTO) {
            struct vf_shot_params p = {.threshold = film->threshold,
                                       .min_length = film->min_shot_length};
            vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_VERBOSE,
                   "detecting shots in %s (%lld frames)", film->input,
                   (long long)info->frames);
            rc = vf_shard_detect_cuts(info, &p, &cuts, &n_cuts, NULL, err);
        }
        if (rc < 0)
            goto out;
    }
    rc = vf_shard_plan_create(plan, film, info, cuts, n_cuts, err);
out:
    free(cuts);
    return rc;
}

void vf_plan_auto_ranks(struct vf_film *film, bool use_record, int fallback,
                        const char *fallback_name, const char **from)
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
    if (!use_record)
        return;
    struct vf_error err = {0};
    char *path = vf_path_join(film->work_dir, "plan.json", &err);
    json_error_t je;
    json_t *doc = path ? json_load_file(path, 0, &je) : NULL;
    json_t *chunking = json_object_get(doc, "chunking");
    json_t *ranks = json_object_get(chunking, "ranks");
    const char *length = json_string_value(json_object_get(chunking, "length"));
    if (length && !strcmp(length, "auto") && json_is_integer(ranks) &&
        json_integer_value(ranks) >= 1 && json_integer_value(ranks) <= (1 << 20)) {
        film->ranks = json_integer_value(ranks);
        *from = "the work folder's plan.json";
    } else if (path && !doc && access(path, F_OK) == 0) {
        vf_log(&(struct vf_log_ctx){.module = "plan", .rank = -1, .chunk = -1}, VF_LOG_WARN,
               "%s does not parse (%s): chunks.length auto plans for %s (%d) instead of the "
               "rank count it recorded", path, je.text, fallback_name, fallback);
    }
    json_decref(doc);
    free(path);
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
    int64_t rerun_makespan;     /* of the chunks a run now colorizes (how[i] REDO); -1: no memory */
};

static struct sim simulate(const struct vf_plan *plan, int ranks, const struct vf_resume *how)
{
    struct sim s = {.ranks = ranks, .rerun_makespan = -1};
    struct vf_plan left = *plan;
    if ((left.chunks = malloc((plan->n_chunks + 1) * sizeof *left.chunks))) {
        left.n_chunks = 0;
        for (size_t i = 0; i < plan->n_chunks; i++)
            if (how[i].how == VF_RESUME_REDO)
                left.chunks[left.n_chunks++] = plan->chunks[i];
        s.rerun_makespan = vf_shard_plan_simulate(&left, ranks);
        free(left.chunks);
    }
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
 * the model (film->model), the inference size, and precision: default. */
struct resolved {
    struct vf_net *net;
    char model_sha[65];
    const char *precision_from; /* precision: default: how it was resolved; NULL: film.yaml's */
};

/* precision: default as rank 0 of a run resolves it: its backend's fastest exact-enough type.
 * The rank that will run is not this process: the work folder's plan.json says what the last run
 * resolved it to; without one, a CPU rank on this machine. */
static int resolve_precision(struct vf_film *film, const char **from, struct vf_error *err)
{
    *from = NULL;
    if (film->precision != VF_PRECISION_DEFAULT)
        return VF_OK;
    char *path = vf_path_join(film->work_dir, "plan.json", err);
    if (!path)
        return VF_ENOMEM;
    json_t *doc = json_load_file(path, 0, NULL);
    free(path);
    enum vf_dtype dt;
    if (vf_dtype_parse(json_string_value(json_object_get(doc, "precision")), &dt) == 0) {
        *from = "as the last run in the work folder resolved it";
    } else {
        struct vf_backend *be = NULL;
        int rc = vf_backend_create(&be, &(struct vf_backend_opts){.device = VF_DEVICE_CPU,
                                                                 .threads = 1}, err);
        if (rc < 0) {
            json_decref(doc);
            return rc;
        }
        dt = vf_backend_supports(be, VF_BF16) ? VF_BF16 : VF_F32;
        vf_backend_destroy(&be);
        *from = "as a CPU rank on this machine would resolve it";
    }
    json_decref(doc);
    film->precision = dt == VF_BF16 ? VF_PRECISION_BF16
                      : dt == VF_F16 ? VF_PRECISION_F16 : VF_PRECISION_F32;
    return VF_OK;
}

static int resolve_like_run(struct vf_film *film, const struct vf_media_info *info,
                            struct resolved *r, struct vf_error *err)
{
    int rc = vf_film_resolve_model(film, err);
    if (rc < 0 || (rc = vf_net_load(film->model, &r->net, err)) < 0 ||
        (rc = vf_shard_file_checksum(film->model, r->model_sha, err)) < 0)
        return rc;
    if (film->inference_h == 0)
        vf_node_inference_size(vf_net_arch(r->net), info, &film->inference_h, &film->inference_w);
    return resolve_precision(film, &r->precision_from, err);
}

/* What a run in the film's work folder would do with each chunk now (its journal read, not
 * written): *j is the journal (NULL: none yet, every chunk is to do). */
static int rerun_view(const struct vf_film *film, const struct vf_plan *plan,
                      struct vf_journal **j, struct vf_resume **how, struct vf_error *err)
{
    *j = NULL;
    if (!(*how = vf_calloc(plan->n_chunks + 1, sizeof **how, err)))
        return VF_ENOMEM;
    char *path = vf_path_join(film->work_dir, "journal", err);
    if (!path)
        return VF_ENOMEM;
    int rc = vf_journal_read(j, path, err);
    free(path);
    if (rc == VF_ENOENT) {
        *err = (struct vf_error){0};
        return VF_OK;
    }
    if (rc < 0)
        return rc;
    const char **hash = vf_calloc(plan->n_chunks + 1, sizeof *hash, err);
    if (!hash)
        return VF_ENOMEM;
    for (size_t i = 0; i < plan->n_chunks; i++)
        hash[i] = plan->chunks[i].hash;
    rc = vf_farm_resume_decide(film->work_dir, *j, plan->n_chunks, hash, *how, err);
    free(hash);
    return rc;
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
    case VF_RESUME_MISSING: return "segment missing";
    case VF_RESUME_CHANGED: return "segment changed";
    case VF_RESUME_TAKEN: return "another plan's chunk took its name";
    }
    return "?";
}

struct rerun_sum {
    size_t keep, renumbered, redo;
    int64_t kept_done, kept_total, work_redo;
};

static struct rerun_sum rerun_sum(const struct vf_plan *plan, const struct vf_resume *how)
{
    struct rerun_sum s = {0};
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        s.kept_total += c->end - c->start;
        if (how[i].how == VF_RESUME_REDO) {
            s.redo++;
            s.work_redo += c->end - c->warm_start;
        } else {
            *(how[i].how == VF_RESUME_KEEP ? &s.keep : &s.renumbered) += 1;
            s.kept_done += c->end - c->start;
        }
    }
    return s;
}

static void print_human(const struct vf_film *film, const struct vf_media_info *info,
                        const struct vf_plan *plan, const char *ranks_from,
                        const struct resolved *r, const struct vf_journal *j,
                        const struct vf_resume *how)
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
    printf("\nchunks:\n  %5s %4s %8s %8s %8s %6s%s\n", "id", "shot", "decode", "keep", "end",
           "warmup", j ? "  a run now" : "");
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        char now[96] = "";
        if (j && how[i].how == VF_RESUME_RENUMBERED)
            snprintf(now, sizeof now, "  keeps chunk %d's segment (renumbered)",
                     how[i].entry->chunk);
        else if (j)
            snprintf(now, sizeof now, "  %s%s%s%s", how[i].how == VF_RESUME_KEEP ? "keeps it"
                                                                                : "colorizes it",
                     how[i].entry && how[i].how == VF_RESUME_REDO ? " (" : "",
                     how[i].entry && how[i].how == VF_RESUME_REDO ? why_name(how[i].why) : "",
                     how[i].entry && how[i].how == VF_RESUME_REDO ? ")" : "");
        printf("  %5d %4d %8lld %8lld %8lld %6lld%s\n", c->id, c->shot, (long long)c->warm_start,
               (long long)c->start, (long long)c->end, (long long)(c->start - c->warm_start), now);
    }
    for (size_t i = 0; i < plan->n_warnings; i++)
        printf("warning: %s\n", plan->warnings[i]);
    printf("\nmodel %s (%s, sha256 %.12s...), %s at %dx%d%s%s%s\n", film->model,
           vf_net_arch(r->net)->name, r->model_sha, vf_precision_name(film->precision), film->inference_h,
           film->inference_w, r->precision_from ? " (precision: default, " : "",
           r->precision_from ? r->precision_from : "", r->precision_from ? ")" : "");
    printf("plan hash %s\n", plan->hash);
    const struct rerun_sum rs = rerun_sum(plan, how);
    if (!j)
        printf("work folder %s: no journal yet: a run colorizes all %zu chunks (%lld frames of "
               "work)\n", film->work_dir, plan->n_chunks, (long long)rs.work_redo);
    else {
        char moved[80] = "";
        if (rs.renumbered)
            snprintf(moved, sizeof moved, "; %zu of them an earlier plan's under other ids",
                     rs.renumbered);
        printf("work folder %s: a run now keeps %zu of %zu chunks (%lld of %lld kept frames%s) "
               "and colorizes %zu (%lld frames of work)\n",
               film->work_dir, rs.keep + rs.renumbered, plan->n_chunks, (long long)rs.kept_done,
               (long long)rs.kept_total, moved, rs.redo, (long long)rs.work_redo);
    }
}

/* The --json document's additions: what the run resolves, and per chunk what it would do. */
static int add_rerun_json(json_t *doc, const struct vf_film *film, const struct resolved *r,
                          const struct vf_plan *plan, const struct vf_journal *j,
                          const struct vf_resume *how)
{
    json_t *chunks = json_object_get(doc, "chunks");
    for (size_t i = 0; i < plan->n_chunks; i++) {
        json_t *c = json_array_get(chunks, i);
        if (!c || json_object_set_new(c, "rerun", json_string(how_name(&how[i]))))
            return -1;
        if (how[i].how == VF_RESUME_RENUMBERED &&
            json_object_set_new(c, "from", json_integer(how[i].entry->chunk)))
            return -1;
        if (how[i].how == VF_RESUME_REDO &&
            json_object_set_new(c, "why", json_string(why_name(how[i].why))))
            return -1;
    }
    const struct rerun_sum rs = rerun_sum(plan, how);
    if (json_object_set_new(doc, "model", json_pack("{s:s, s:s, s:s}", "path", film->model,
                                                    "sha256", r->model_sha, "arch",
                                                    vf_net_arch(r->net)->name)) ||
        json_object_set_new(doc, "precision", json_string(vf_precision_name(film->precision))) ||
        json_object_set_new(doc, "inference_size",
                            json_pack("[i,i]", film->inference_h, film->inference_w)) ||
        json_object_set_new(doc, "rerun",
                            json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "work_dir",
                                      film->work_dir, "journal", j != NULL, "keep",
                                      (json_int_t)rs.keep, "renumbered", (json_int_t)rs.renumbered,
                                      "redo", (json_int_t)rs.redo, "kept_frames_done",
                                      (json_int_t)rs.kept_done, "kept_frames",
                                      (json_int_t)rs.kept_total, "work_frames",
                                      (json_int_t)rs.work_redo)))
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

    struct vf_error err = {0};
    struct vf_film *film = NULL;
    struct vf_media_info *info = NULL;
    struct vf_plan *plan = NULL;
    int rc = VF_EXIT_OK;
    const char *ranks_from = NULL;
    struct resolved res = {0};
    struct vf_journal *journal = NULL;
    struct vf_resume *how = NULL;
    if (vf_film_open(yaml, &film, &info, &err) < 0 || resolve_like_run(film, info, &res, &err) < 0) {
        rc = vf_report_error(&err);
        goto out;
    }
    /* chunks.length auto: --simulate R plans for R ranks; else as a run would (one process) */
    if (film->chunk_length == VF_CHUNK_AUTO && ranks_d > 0) {
        film->ranks = (int64_t)ranks_d;
        ranks_from = "--simulate";
    } else {
        vf_plan_auto_ranks(film, true, 1, "one process", &ranks_from);
    }
    if (vf_film_plan(film, info, &plan, &err) < 0 ||
        rerun_view(film, plan, &journal, &how, &err) < 0) {
        rc = vf_report_error(&err);
        goto out;
    }
    vf_plan_warn_after_passthrough(film, vf_net_arch(res.net), plan);
    struct sim s = {0};
    if (ranks_d > 0)
        s = simulate(plan, (int)ranks_d, how);
    if (cli->json) {
        json_t *doc = vf_plan_json(film, info, plan);
        if (doc && add_rerun_json(doc, film, &res, plan, journal, how) < 0) {
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
            if (sim && s.rerun_makespan >= 0)
                json_object_set_new(sim, "rerun_makespan_frames",
                                    json_integer((json_int_t)s.rerun_makespan));
            if (sim && frame_ms > 0)
                json_object_set_new(sim, "makespan_seconds",
                                    json_real(s.makespan * frame_ms / 1000.0));
            json_object_set_new(doc, "simulation", sim);
        }
        rc = vf_json_print(doc);
    } else {
        print_human(film, info, plan, ranks_from, &res, journal, how);
        if (ranks_d > 0) {
            printf("\nsimulated on %d ranks (longest chunk first): makespan %lld frames of work; "
                   "the least any cutting could reach is %lld: efficiency %.1f%% (this plan's "
                   "own bound: %lld)\n",
                   s.ranks, (long long)s.makespan, (long long)s.lower_bound,
                   100.0 * (double)s.lower_bound / (double)s.makespan, (long long)s.plan_bound);
            if (frame_ms > 0)
                printf("at %.3g ms per frame: %.1f s\n", frame_ms, s.makespan * frame_ms / 1000.0);
            const size_t left = rerun_sum(plan, how).redo;
            if (journal && left < plan->n_chunks && s.rerun_makespan >= 0) {
                printf("a run now, colorizing the %zu chunk%s left: makespan %lld frames of work\n",
                       left, left == 1 ? "" : "s", (long long)s.rerun_makespan);
                if (frame_ms > 0)
                    printf("at %.3g ms per frame: %.1f s\n", frame_ms,
                           s.rerun_makespan * frame_ms / 1000.0);
            }
        }
    }
out:
    free(how);
    vf_journal_close(&journal);
    vf_net_free(&res.net);
    vf_shard_plan_destroy(&plan);
    vf_shard_media_info_destroy(&info);
    vf_config_destroy(&film);
    return rc;
}
