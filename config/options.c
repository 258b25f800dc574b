/*
 * config/options.c: the film.yaml v1 option table (DESIGN.md §8) and what reads it besides
 * the parser: "did you mean" suggestions, the wording of "expected ..." and the key reference
 * (vf_config_print_keys, for --help and docs/CONFIG.md).
 *
 * Every key is declared here once. To add a key: add a field to struct vf_film (config.h), a
 * row here, an example line in config/examples/full.yaml, and a test in tests/test_config.c.
 * Rows are printed in table order, so keep a section's keys right after the section.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

/* The largest frame number or count accepted: far beyond any film (a 24 fps film of this many
 * frames runs 1450 years) and small enough that sums of two never overflow int64_t downstream. */
#define MAX_FRAMES (INT64_C(1) << 40)

_Static_assert(sizeof(enum vf_precision) == sizeof(int) && sizeof(enum vf_detect) == sizeof(int) &&
                   sizeof(enum vf_audio) == sizeof(int) && sizeof(enum vf_passthrough) == sizeof(int),
               "ENUM options are stored as int");

static const char *const precision_names[] = {"f32", "bf16", "f16", NULL};
static const int precision_values[] = {VF_PRECISION_F32, VF_PRECISION_BF16, VF_PRECISION_F16};
static const char *const detect_names[] = {"auto", "off", NULL};
static const int detect_values[] = {VF_DETECT_AUTO, VF_DETECT_OFF};
static const char *const audio_names[] = {"copy", "none", NULL};
static const int audio_values[] = {VF_AUDIO_COPY, VF_AUDIO_NONE};
static const char *const passthrough_names[] = {"auto", "off", NULL};
static const int passthrough_values[] = {VF_PASSTHROUGH_AUTO, VF_PASSTHROUGH_OFF};
static const char *const codec_names[] = {"ffv1",  "prores_ks",  "libx264",    "libx265",
                                          "dnxhd", "h264_nvenc", "hevc_nvenc", NULL};

#define FILM(field) offsetof(struct vf_film, field)
#define SHOT(field) offsetof(struct vf_shot_spec, field)
#define REF(field) offsetof(struct vf_reference_spec, field)

const struct cfg_option cfg_options[] = {
    {.name = "version", .type = CFG_T_VERSION, .flags = CFG_F_REQUIRED, .offset = FILM(version),
     .example = "version: 1",
     .help = "the film.yaml format version; this vaefarm reads version 1"},
    {.name = "input", .type = CFG_T_PATH, .flags = CFG_F_REQUIRED, .offset = FILM(input),
     .example = "input: reels/reel1.mkv",
     .help = "the black-and-white film: any video FFmpeg reads; never written to"},
    {.name = "output", .type = CFG_T_PATH, .flags = CFG_F_REQUIRED, .offset = FILM(output),
     .example = "output: out/reel1_color.mkv",
     .help = "the colour film; the container is chosen by the extension (.mkv, .mov, .mp4)"},
    {.name = "model", .type = CFG_T_PATH, .offset = FILM(model),
     .def_doc = "the bundled tiny model", .example = "model: models/vaefarm-tiny.safetensors",
     .help = "the network's weights (.safetensors)"},
    {.name = "inference_size", .type = CFG_T_SIZE, .flags = CFG_F_MULTIPLE_OF_8,
     .offset = FILM(inference_h), .offset2 = FILM(inference_w), .imin = 32, .imax = 8192,
     .def_doc = "the model's nominal pixel count at the film's aspect ratio",
     .example = "inference_size: [216, 384]",
     .help = "[height, width] the network runs at; colour is upsampled to the film's size"},
    {.name = "precision", .type = CFG_T_ENUM, .offset = FILM(precision), .names = precision_names,
     .values = precision_values, .def_doc = "the fastest exact-enough for the backend",
     .example = "precision: bf16", .help = "arithmetic precision of the network"},

    {.name = "shots", .type = CFG_T_SECTION, .example = "shots: {detect: auto}",
     .help = "how the film is cut into shots: an explicit list, an EDL, or detection"},
    {.name = "shots.detect", .type = CFG_T_ENUM, .offset = FILM(detect), .names = detect_names,
     .values = detect_values, .sdef = "auto", .example = "detect: auto",
     .help = "scene-cut detection when neither shots.list nor shots.edl is given; off: the "
             "whole film is one shot"},
    {.name = "shots.threshold", .type = CFG_T_NUMBER, .flags = CFG_F_MIN_EXCLUSIVE,
     .offset = FILM(threshold), .dmin = 0.0, .dmax = 1.0, .ddef = 0.3,
     .example = "threshold: 0.3", .help = "scene-cut sensitivity of detection: lower finds more cuts"},
    {.name = "shots.min_length", .type = CFG_T_INT, .offset = FILM(min_shot_length), .imin = 1,
     .imax = MAX_FRAMES, .idef = 12, .example = "min_length: 12",
     .help = "frames; detected cuts closer than this to the previous cut are merged"},
    {.name = "shots.edl", .type = CFG_T_PATH, .offset = FILM(edl),
     .example = "edl: reel1.edl", .help = "a CMX3600 EDL whose events define the shots"},
    {.name = "shots.list", .type = CFG_T_LIST, .offset = FILM(shots), .offset2 = FILM(n_shots),
     .item_size = sizeof(struct vf_shot_spec), .item_pos = SHOT(pos),
     .example = "list: [{start: 0, end: 240, reference: refs/street.png}]",
     .help = "explicit shots in ascending order, frames [start, end) (end exclusive), each with "
             "its reference"},
    {.name = "shots.list[].start", .type = CFG_T_INT, .flags = CFG_F_REQUIRED,
     .offset = SHOT(start), .pos_offset = CFG_NO_POS, .imin = 0, .imax = MAX_FRAMES,
     .example = "start: 0", .help = "first frame of the shot (0-based)"},
    {.name = "shots.list[].end", .type = CFG_T_INT, .flags = CFG_F_REQUIRED, .offset = SHOT(end),
     .pos_offset = CFG_NO_POS, .imin = 1, .imax = MAX_FRAMES, .example = "end: 240",
     .help = "exclusive: the frame after the shot's last one; > start"},
    {.name = "shots.list[].reference", .type = CFG_T_PATH, .offset = SHOT(reference),
     .pos_offset = SHOT(reference_pos), .def_doc = "from references or default_reference",
     .example = "reference: refs/street.png", .help = "colour reference image for the shot"},
    {.name = "references", .type = CFG_T_LIST, .offset = FILM(references),
     .offset2 = FILM(n_references), .item_size = sizeof(struct vf_reference_spec),
     .item_pos = REF(pos), .example = "references: [{frame: 0, image: refs/street.png}]",
     .help = "for detected or EDL shots: each image applies to the shot containing its frame"},
    {.name = "references[].frame", .type = CFG_T_INT, .flags = CFG_F_REQUIRED,
     .offset = REF(frame), .pos_offset = CFG_NO_POS, .imin = 0, .imax = MAX_FRAMES,
     .example = "frame: 0", .help = "a frame of the shot the image colours (0-based)"},
    {.name = "references[].image", .type = CFG_T_PATH, .flags = CFG_F_REQUIRED,
     .offset = REF(image), .pos_offset = REF(image_pos), .example = "image: refs/street.png",
     .help = "colour reference image"},
    {.name = "default_reference", .type = CFG_T_PATH, .offset = FILM(default_reference),
     .def_doc = "none; a shot no reference covers is an error", .example = "default_reference: refs/any.png",
     .help = "reference for shots that no other reference covers"},
    {.name = "reference_passthrough", .type = CFG_T_ENUM, .offset = FILM(passthrough),
     .names = passthrough_names, .values = passthrough_values, .sdef = "auto",
     .example = "reference_passthrough: auto",
     .help = "auto: a frame that is its reference's own picture (its grey matches the "
             "reference's luma) takes the reference's colours, and the next frame starts from "
             "them; off: every frame goes through the network"},

    {.name = "ranks", .type = CFG_T_INT, .offset = FILM(ranks), .imin = 1, .imax = 1 << 20,
     .def_doc = "the plan.json of an earlier run in work_dir, else the MPI size",
     .example = "ranks: 64",
     .help = "the rank count chunks.length: auto plans for; later runs with another -np keep "
             "that plan"},
    {.name = "chunks", .type = CFG_T_SECTION, .example = "chunks: {length: 240, warmup: 16}",
     .help = "how shots are cut into units of work"},
    {.name = "chunks.length", .type = CFG_T_INT, .flags = CFG_F_AUTO, .offset = FILM(chunk_length),
     .imin = 1, .imax = MAX_FRAMES, .idef = 240, .example = "length: 240",
     .help = "kept frames per chunk; auto: cut long shots for the rank count (see ranks), "
             "counting each cut's warm-up"},
    {.name = "chunks.warmup", .type = CFG_T_INT, .offset = FILM(warmup), .imin = 0,
     .imax = MAX_FRAMES, .idef = 16, .example = "warmup: 16",
     .help = "frames colorized and discarded before each non-first chunk of a shot"},

    {.name = "encode", .type = CFG_T_SECTION, .example = "encode: {codec: ffv1}",
     .help = "how the colour film is encoded"},
    {.name = "encode.codec", .type = CFG_T_CHOICE, .offset = FILM(codec), .names = codec_names,
     .sdef = "ffv1", .example = "codec: ffv1", .help = "video encoder"},
    {.name = "encode.pix_fmt", .type = CFG_T_STRING, .offset = FILM(pix_fmt),
     .def_doc = "per codec", .example = "pix_fmt: yuv444p10le",
     .help = "encoder pixel format (an FFmpeg pix_fmt name)"},
    {.name = "encode.options", .type = CFG_T_STRMAP, .offset = FILM(encode_options),
     .offset2 = FILM(n_encode_options), .def_doc = "none", .example = "options: {crf: \"16\"}",
     .help = "encoder AVOptions, passed as strings"},

    {.name = "audio", .type = CFG_T_ENUM, .offset = FILM(audio), .names = audio_names,
     .values = audio_values, .sdef = "copy", .example = "audio: copy",
     .help = "copy: the source's audio (and subtitles) into the output; none: drop them"},
    {.name = "work_dir", .type = CFG_T_PATH, .offset = FILM(work_dir),
     .def_doc = "<output>.vaefarm", .example = "work_dir: out/reel1.vaefarm",
     .help = "plan, journal, segments and report; keep it to resume"},
};

const size_t cfg_n_options = sizeof cfg_options / sizeof cfg_options[0];

const struct cfg_option *cfg_option_find(const char *name)
{
    for (size_t i = 0; i < cfg_n_options; i++)
        if (!strcmp(cfg_options[i].name, name))
            return &cfg_options[i];
    return NULL;
}

size_t cfg_option_index(const struct cfg_option *opt)
{
    VF_ASSERT(opt >= cfg_options && opt < cfg_options + cfg_n_options);
    return (size_t)(opt - cfg_options);
}

bool cfg_option_is_child(const struct cfg_option *opt, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *rest = opt->name;
    if (n) {
        if (strncmp(opt->name, prefix, n) || opt->name[n] != '.')
            return false;
        rest = opt->name + n + 1;
    }
    return !strchr(rest, '.');
}

const char *cfg_option_leaf(const struct cfg_option *opt)
{
    const char *dot = strrchr(opt->name, '.');
    return dot ? dot + 1 : opt->name;
}

/* ---- suggestions -------------------------------------------------------------------------- */

int cfg_distance(const char *a, const char *b)
{
    enum { N = 64 };
    int la = (int)strnlen(a, N), lb = (int)strnlen(b, N);
    int d[N + 1][N + 1];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++) {
        for (int j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1; /* transposition: "lenght" -> "length" */
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

static bool has_prefix_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++)
        if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix))
            return false;
    return true;
}

const char *cfg_suggest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    if (len == 0 || len > 64)
        return NULL;
    /* Close enough to be a typo: one edit in short words, up to three in long ones; or one
     * word the start of the other ("work" for "work_dir"). */
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    const char *best = NULL;
    int best_d = 1 << 30;
    for (size_t i = 0; i < n; i++) {
        int d = cfg_distance(word, cands[i]);
        size_t lc = strlen(cands[i]);
        bool prefix = (len >= 3 && has_prefix_ci(cands[i], word)) ||
                      (lc >= 3 && has_prefix_ci(word, cands[i]));
        if ((d <= limit && (size_t)d < len) || prefix) {
            if (d < best_d) {
                best = cands[i];
                best_d = d;
            }
        }
    }
    return best;
}

const char *vf_config_suggest(const char *word, const char *const *cands, size_t n)
{
    return cfg_suggest(word, cands, n);
}

/* ---- wording ------------------------------------------------------------------------------ */

static void append(char *buf, size_t size, size_t *o, const char *fmt, const char *s)
{
    if (*o < size) {
        int n = snprintf(buf + *o, size - *o, fmt, s);
        if (n > 0)
            *o += (size_t)n;
    }
    if (*o >= size)
        *o = size - 1;
}

/* "{start, end, reference}" / "detect, threshold, ...": the keys inside a section or list item. */
static const char *child_keys(const char *prefix, const char *sep, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg_n_options; i++) {
        if (!cfg_option_is_child(&cfg_options[i], prefix))
            continue;
        if (o)
            append(buf, size, &o, "%s", sep);
        append(buf, size, &o, "%s", cfg_option_leaf(&cfg_options[i]));
    }
    return buf;
}

static const char *names_list(const char *const *names, const char *sep, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i]; i++) {
        if (i)
            append(buf, size, &o, "%s", sep);
        append(buf, size, &o, "%s", names[i]);
    }
    return buf;
}

const char *cfg_expected(const struct cfg_option *opt, char *buf, size_t size)
{
    char keys[256], item[300];
    switch (opt->type) {
    case CFG_T_SECTION:
        snprintf(buf, size, "a mapping of the keys %s", child_keys(opt->name, ", ", keys, sizeof keys));
        break;
    case CFG_T_VERSION: snprintf(buf, size, "%d", VF_CONFIG_VERSION); break;
    case CFG_T_INT:
        snprintf(buf, size, "an integer >= %" PRId64 "%s", opt->imin,
                 opt->flags & CFG_F_AUTO ? " or auto" : "");
        break;
    case CFG_T_NUMBER:
        snprintf(buf, size, "a number %s %g and <= %g",
                 opt->flags & CFG_F_MIN_EXCLUSIVE ? ">" : ">=", opt->dmin, opt->dmax);
        break;
    case CFG_T_STRING: snprintf(buf, size, "a text value"); break;
    case CFG_T_PATH: snprintf(buf, size, "a file path"); break;
    case CFG_T_ENUM:
    case CFG_T_CHOICE:
        snprintf(buf, size, "one of %s", names_list(opt->names, ", ", keys, sizeof keys));
        break;
    case CFG_T_SIZE:
        snprintf(buf, size, "[height, width], two multiples of 8 from %" PRId64 " to %" PRId64,
                 opt->imin, opt->imax);
        break;
    case CFG_T_LIST:
        snprintf(item, sizeof item, "%s[]", opt->name);
        snprintf(buf, size, "a list of {%s}", child_keys(item, ", ", keys, sizeof keys));
        break;
    case CFG_T_STRMAP: snprintf(buf, size, "a mapping of option: value"); break;
    }
    return buf;
}

/* ---- the key reference -------------------------------------------------------------------- */

static const char *type_doc(const struct cfg_option *opt, char *buf, size_t size)
{
    char keys[256], item[300];
    switch (opt->type) {
    case CFG_T_SECTION: snprintf(buf, size, "mapping"); break;
    case CFG_T_VERSION: snprintf(buf, size, "integer, must be %d", VF_CONFIG_VERSION); break;
    case CFG_T_INT:
        if (opt->imax == MAX_FRAMES)   /* frames and counts: the 2^40 bound CONFIG.md states */
            snprintf(buf, size, "integer >= %" PRId64 "%s", opt->imin,
                     opt->flags & CFG_F_AUTO ? " | auto" : "");
        else
            snprintf(buf, size, "integer in [%" PRId64 ", %" PRId64 "]%s", opt->imin, opt->imax,
                     opt->flags & CFG_F_AUTO ? " | auto" : "");
        break;
    case CFG_T_NUMBER:
        snprintf(buf, size, "number in %s%g, %g]", opt->flags & CFG_F_MIN_EXCLUSIVE ? "(" : "[",
                 opt->dmin, opt->dmax);
        break;
    case CFG_T_STRING: snprintf(buf, size, "string"); break;
    case CFG_T_PATH: snprintf(buf, size, "path"); break;
    case CFG_T_ENUM:
    case CFG_T_CHOICE: names_list(opt->names, " | ", buf, size); break;
    case CFG_T_SIZE: snprintf(buf, size, "[H, W], multiples of 8 in [%" PRId64 ", %" PRId64 "]",
                              opt->imin, opt->imax); break;
    case CFG_T_LIST:
        snprintf(item, sizeof item, "%s[]", opt->name);
        snprintf(buf, size, "list of {%s}", child_keys(item, ", ", keys, sizeof keys));
        break;
    case CFG_T_STRMAP: snprintf(buf, size, "mapping of name: value"); break;
    }
    return buf;
}

static const char *default_doc(const struct cfg_option *opt, char *buf, size_t size)
{
    if (opt->flags & CFG_F_REQUIRED)
        snprintf(buf, size, "required");
    else if (opt->def_doc)
        snprintf(buf, size, "default: %s", opt->def_doc);
    else if (opt->type == CFG_T_INT)
        snprintf(buf, size, "default %" PRId64, opt->idef);
    else if (opt->type == CFG_T_NUMBER)
        snprintf(buf, size, "default %g", opt->ddef);
    else if (opt->sdef)
        snprintf(buf, size, "default %s", opt->sdef);
    else
        snprintf(buf, size, "optional");
    return buf;
}

void vf_config_print_keys(FILE *f)
{
    char t[256], d[160];
    fprintf(f, "film.yaml v%d keys (relative paths are relative to the film.yaml's folder;\n"
               "list entries are shown as list[].key):\n",
            VF_CONFIG_VERSION);
    for (size_t i = 0; i < cfg_n_options; i++) {
        const struct cfg_option *o = &cfg_options[i];
        fprintf(f, "  %-24s %s (%s): %s\n", o->name, type_doc(o, t, sizeof t),
                default_doc(o, d, sizeof d), o->help);
    }
}
