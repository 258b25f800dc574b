/*
 * coordinator/cmd_plan.c: `vaefarm plan FILM.yaml [--json] [--simulate R] [--frame-ms MS]`:
 * the shots, chunks and references the film would be split into, with warnings; with
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
#include "node/node.h"
#include "shard/shard.h"

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

/* Load, check and plan a film: the steps `run` shares with `plan`. */
int vf_plan_film(const char *yaml, struct vf_film **film, struct vf_media_info **info,
                 struct vf_plan **plan, struct vf_error *err)
{
    int rc = vf_film_open(yaml, film, info, err);
    if (rc < 0)
        return rc;
    const char *from;
    vf_plan_auto_ranks(*film, true, 1, "one process", &from);
    return vf_film_plan(*film, *info, plan, err);
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

static void print_human(const struct vf_film *film, const struct vf_media_info *info,
                        const struct vf_plan *plan, const char *ranks_from)
{
    double fps = info->fps_den ? (double)info->fps_num / info->fps_den : 25.0;
    int64_t warm = 0;
    for (size_t i = 0; i < plan->n_chunks; i++)
        warm += plan->chunks[i].start - plan->chunks[i].warm_start;
    char how[160];
    if (plan->auto_ranks)
        snprintf(how, sizeof how, "cut for %d rank%s (chunks.length auto, %s; %lld frames of "
                 "work per rank aimed at)", plan->auto_ranks, plan->auto_ranks == 1 ? "" : "s",
                 ranks_from ? ranks_from : "?", (long long)plan->auto_target);
    else
        snprintf(how, sizeof how, "of <= %lld kept frames", (long long)film->chunk_length);
    printf("%s: %lld frames (%.1f s at %.3f fps), %zu shots, %zu chunks %s, "
           "%lld warm-up frames (%.1f%% extra work)\n",
           film->path, (long long)plan->frames, plan->frames / fps, fps, plan->n_shots,
           plan->n_chunks, how, (long long)warm, plan->frames ? 100.0 * warm / plan->frames : 0.0);
    printf("\nshots:\n  %4s %8s %8s %8s  %-7s %s\n", "#", "start", "end", "seconds", "from",
           "reference");
    for (size_t i = 0; i < plan->n_shots; i++) {
        const struct vf_shot *s = &plan->shots[i];
        printf("  %4zu %8lld %8lld %8.2f  %-7s %s\n", i, (long long)s->start, (long long)s->end,
               (s->end - s->start) / fps, s->source, s->reference ? s->reference : "-");
    }
    printf("\nchunks:\n  %5s %4s %8s %8s %8s %6s\n", "id", "shot", "decode", "keep", "end",
           "warmup");
    for (size_t i = 0; i < plan->n_chunks; i++) {
        const struct vf_chunk *c = &plan->chunks[i];
        printf("  %5d %4d %8lld %8lld %8lld %6lld\n", c->id, c->shot, (long long)c->warm_start,
               (long long)c->start, (long long)c->end, (long long)(c->start - c->warm_start));
    }
    for (size_t i = 0; i < plan->n_warnings; i++)
        printf("warning: %s\n", plan->warnings[i]);
    printf("\nplan hash %s\n", plan->hash);
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
    if (vf_film_open(yaml, &film, &info, &err) < 0) {
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
    if (vf_film_plan(film, info, &plan, &err) < 0) {
        rc = vf_report_error(&err);
        goto out;
    }
    struct sim s = {0};
    if (ranks_d > 0)
        s = simulate(plan, (int)ranks_d);
    if (cli->json) {
        json_t *doc = vf_plan_json(film, info, plan);
        if (doc && ranks_d > 0) {
            json_t *sim = json_pack("{s:i, s:I, s:I, s:I, s:I, s:f}", "ranks", s.ranks,
                                    "work_frames", (json_int_t)s.work, "makespan_frames",
                                    (json_int_t)s.makespan, "lower_bound_frames",
                                    (json_int_t)s.lower_bound, "plan_lower_bound_frames",
                                    (json_int_t)s.plan_bound, "efficiency",
                                    (double)s.lower_bound / (double)s.makespan);
            if (sim && frame_ms > 0)
                json_object_set_new(sim, "makespan_seconds",
                                    json_real(s.makespan * frame_ms / 1000.0));
            json_object_set_new(doc, "simulation", sim);
        }
        rc = vf_json_print(doc);
    } else {
        print_human(film, info, plan, ranks_from);
        if (ranks_d > 0) {
            printf("\nsimulated on %d ranks (longest chunk first): makespan %lld frames of work; "
                   "the least any cutting could reach is %lld: efficiency %.1f%% (this plan's "
                   "own bound: %lld)\n",
                   s.ranks, (long long)s.makespan, (long long)s.lower_bound,
                   100.0 * (double)s.lower_bound / (double)s.makespan, (long long)s.plan_bound);
            if (frame_ms > 0)
                printf("at %.3g ms per frame: %.1f s\n", frame_ms, s.makespan * frame_ms / 1000.0);
        }
    }
out:
    vf_shard_plan_destroy(&plan);
    vf_shard_media_info_destroy(&info);
    vf_config_destroy(&film);
    return rc;
}
