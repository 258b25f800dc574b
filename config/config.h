/*
 * config/config.h: film.yaml v1 (DESIGN.md §8): parse with libyaml, validate, apply defaults.
 *
 * Every key is declared once in an option table (config/options.c): name, type, where it is
 * stored, default, bounds and help. Parsing, validation, defaults, "did you mean" suggestions and
 * the key reference in the README all come from that table.
 *
 * Errors name the file, line and column, the key, what was expected and what to do. Paths in the
 * returned struct are already resolved against the YAML file's folder (absolute when the YAML
 * path was absolute; otherwise relative to the current directory).
 *
 * Uses: common/, libyaml. Knows nothing of video or networks.
 */
#ifndef VF_CONFIG_H
#define VF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/common.h"

#define VF_CONFIG_VERSION 1

/* chunks.length: auto (struct vf_film::chunk_length): the planner cuts long shots for the rank
 * count (docs/PLAN.md "Auto chunking"). */
#define VF_CHUNK_AUTO 0

enum vf_precision { VF_PRECISION_DEFAULT = 0, VF_PRECISION_F32, VF_PRECISION_BF16, VF_PRECISION_F16 };
enum vf_detect { VF_DETECT_AUTO = 0, VF_DETECT_OFF };
enum vf_audio { VF_AUDIO_COPY = 0, VF_AUDIO_NONE };
enum vf_passthrough { VF_PASSTHROUGH_AUTO = 0, VF_PASSTHROUGH_OFF };

/* Where a value was written in the YAML file (1-based), for error messages downstream
 * (e.g. the planner reporting an overlapping shot). line 0 = not from the file (a default). */
struct vf_config_pos {
    int line;
    int col;
};

/* shots.list entry: frames [start, end), end exclusive. */
struct vf_shot_spec {
    int64_t start;
    int64_t end;
    char *reference;        /* resolved path; NULL: references / default_reference decide */
    struct vf_config_pos pos;           /* the entry ({...} or "- ") */
    struct vf_config_pos reference_pos; /* the reference value, {0,0} when absent */
};

/* references entry: applies to the detected shot containing `frame`. */
struct vf_reference_spec {
    int64_t frame;
    char *image;            /* resolved path */
    struct vf_config_pos pos;           /* the entry ({...} or "- ") */
    struct vf_config_pos image_pos;     /* the image value */
};

/* encode.options entry: passed to the encoder as an AVOption. */
struct vf_encode_option {
    char *key;
    char *value;
};

struct vf_film {
    int version;                /* always VF_CONFIG_VERSION once loaded */
    char *path;                 /* the YAML file as given */
    char *dir;                  /* its folder: the base of relative paths */

    char *input;                /* required */
    char *output;               /* required; container chosen by extension */
    char *model;                /* NULL: the bundled default model */
    char model_sha[65];         /* the model's sha256 hex, set by whoever loaded its bytes (run,
                                   plan); "": the plan hashes the file itself */
    char *work_dir;             /* default: "<output>.vaefarm" */

    int inference_h, inference_w; /* 0,0: the model's default at the film's aspect ratio */
    enum vf_precision precision;  /* DEFAULT: the fastest exact-enough for the backend */

    enum vf_detect detect;      /* shots.detect */
    double threshold;           /* shots.threshold, scene-cut sensitivity in (0, 1] */
    int64_t min_shot_length;    /* shots.min_length: frames; cuts closer than this are merged */
    char *edl;                  /* shots.edl: a CMX3600 EDL whose events define the shots, or NULL */
    struct vf_shot_spec *shots; /* shots.list, in file order; NULL/0 when absent */
    size_t n_shots;
    struct vf_config_pos shots_pos; /* the shots.list value, {0,0} when absent */

    struct vf_reference_spec *references;
    size_t n_references;
    char *default_reference;    /* NULL when absent */
    enum vf_passthrough passthrough; /* reference_passthrough: AUTO, a frame whose grey is its
                                   reference's luma takes the reference's colours (node.h) */

    int64_t chunk_length;       /* chunks.length: kept frames per chunk, >= 1, or VF_CHUNK_AUTO */
    int64_t ranks;              /* ranks: the rank count chunks.length auto plans for; 0 when
                                   absent (the coordinator then fills in the count recorded in
                                   the work folder's plan.json, or the MPI size) */
    int64_t warmup;             /* chunks.warmup: >= 0 */

    char *codec;                /* encode.codec */
    char *pix_fmt;              /* encode.pix_fmt, NULL: the codec's default */
    struct vf_encode_option *encode_options;
    size_t n_encode_options;

    enum vf_audio audio;

    /* Where each key's value was written, indexed by config/'s option table; read it with
     * vf_config_key_pos(). */
    struct vf_config_pos *key_pos;
};

/* Load and validate `path`. On error returns a negative code with err->msg like
 *   "film.yaml:12:5: chunks.lenght: unknown key (did you mean 'length'?)" */
int vf_config_load(struct vf_film **out, const char *path, struct vf_error *err);

/* Same, from a string; `name` is used in messages and `dir` is the base for relative paths. */
int vf_config_load_string(struct vf_film **out, const char *yaml, size_t len, const char *name,
                          const char *dir, struct vf_error *err);

/* Check, before any work starts, that the files the film needs are there: the input, every
 * reference, the default reference, the model and EDL when given, and that the output's folder
 * exists and is writable. Reports every problem at once (one per line), each with file:line:col
 * (a key the film leaves out: "(not set)"). *only_unwritable (when given): every problem is that
 * this user may not write a folder (`vaefarm plan` says those and goes on). */
int vf_config_check_files(const struct vf_film *film, bool *only_unwritable, struct vf_error *err);

void vf_config_destroy(struct vf_film **film);

/* Where `key` (a full key path such as "chunks.length" or "input") was written: the position of
 * its value, or {0, 0} when the key was absent (a default applies) or is not a film.yaml key. */
struct vf_config_pos vf_config_key_pos(const struct vf_film *film, const char *key);

/* The key reference (for --help and docs): one line per key with type, default and help. */
void vf_config_print_keys(FILE *f);

const char *vf_precision_name(enum vf_precision p);
/* The candidate `word` is most likely a typo of (film.yaml's "did you mean" rule: a few edits,
 * or one the start of the other), or NULL. */
const char *vf_config_suggest(const char *word, const char *const *cands, size_t n);

#endif /* VF_CONFIG_H */
