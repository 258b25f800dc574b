/*
 * shard/plan.c: shots -> chunks, each with its reference and a hash of everything that shapes
 * its output (DESIGN.md §4, §6, §8; the rules are written down in docs/PLAN.md).
 *
 * Invariants of a plan that vf_shard_plan_create returns:
 *   - shots partition [0, frames) in film order, each with a reference;
 *   - chunks' kept ranges partition [0, frames) in id order; each chunk lies in one shot;
 *   - a shot of n frames has ceil(n / L) chunks whose kept sizes differ by at most one
 *     (the larger ones first), so no chunk is longer than L and there is no tiny tail chunk;
 *     with chunks.length: auto, chunking.c decides the cuts for film->ranks ranks instead;
 *   - warm_start == start for a shot's first chunk, else max(shot start, start - warmup);
 *   - a chunk hash covers exactly what shapes that chunk's encoded segment, the plan hash
 *     covers every chunk hash plus what shapes the merge.
 *
 * Planning is pure: no decoding (the caller passes the cut frames), only the reference images
 * and the model file (unless film->model_sha already gives the hash of the bytes loaded) are
 * read, to hash their contents.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/error.h>
#include <libavutil/hash.h>

#include "shard/internal.h"

#define PLAN_FORMAT "vaefarm-plan-v5" /* bump when the hash serialisation or chunking changes */
#define SHORT_SHOT_FRAMES 8           /* shots shorter than this get a warning */
#define MAX_DETAILS 8                 /* per-kind lines in a message before "and N more" */

struct file_hash {
    const char *path; /* borrowed from the film spec */
    char hex[65];
};

/* Everything one vf_shard_plan_create call works with. */
struct builder {
    const struct vf_film *film;
    const struct vf_media_info *info;
    const char *yaml;         /* film->path, or "film.yaml" for messages */
    struct vf_plan *plan;
    size_t cap_warnings;
    char *ref_origin;         /* per shot: 0 none, 'l' list, 'r' references, 'd' default */
    size_t *ref_entry;        /* per shot: the references[] index that set it (origin 'r') */
    struct file_hash *files;  /* content hashes of the reference images, one per path */
    size_t n_files, cap_files;
};

static const struct vf_log_ctx log_ctx = {.module = "plan", .rank = -1, .chunk = -1};

/* ---- small helpers ------------------------------------------------------------------------ */

static int add_warning(struct builder *b, struct vf_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int add_warning(struct builder *b, struct vf_error *err, const char *fmt, ...)
{
    struct vf_plan *p = b->plan;
    if (p->n_warnings == b->cap_warnings) {
        size_t cap = b->cap_warnings ? 2 * b->cap_warnings : 8;
        char **w = realloc(p->warnings, cap * sizeof *w);
        if (!w)
            return vf_error_set(err, VF_ENOMEM, "out of memory recording a plan warning");
        p->warnings = w;
        b->cap_warnings = cap;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    vf_escape_controls(line, sizeof line);
    char *s = vf_strdup(line, err);
    if (!s)
        return VF_ENOMEM;
    p->warnings[p->n_warnings++] = s;
    return 0;
}

/* "h:mm:ss.mmm" of frame `f` at the film's nominal rate, or "?" without one. */
static const char *frame_time(char buf[32], int64_t f, const struct vf_media_info *info)
{
    if (info->fps_num <= 0 || info->fps_den <= 0) {
        snprintf(buf, 32, "?");
        return buf;
    }
    int64_t ms = (int64_t)((double)f * 1000.0 * info->fps_den / info->fps_num + 0.5);
    snprintf(buf, 32, "%" PRId64 ":%02d:%02d.%03d", ms / 3600000, (int)(ms / 60000 % 60),
             (int)(ms / 1000 % 60), (int)(ms % 1000));
    return buf;
}

/* "film.yaml:12:5" for a YAML position, or just "film.yaml" when the value was not in the file. */
static const char *where(char buf[512], const struct builder *b, struct vf_config_pos pos)
{
    if (pos.line > 0)
        snprintf(buf, 512, "%s:%d:%d", b->yaml, pos.line, pos.col);
    else
        snprintf(buf, 512, "%s", b->yaml);
    return buf;
}

/* Describe shot `i` for messages: "shot 3 (frames [240, 611), 0:00:09.600-0:00:24.440, list)". */
static const char *shot_desc(char buf[160], const struct builder *b, size_t i)
{
    const struct vf_shot *s = &b->plan->shots[i];
    char t0[32], t1[32];
    snprintf(buf, 160, "shot %zu (frames [%" PRId64 ", %" PRId64 "), %s-%s, %s)", i, s->start,
             s->end, frame_time(t0, s->start, b->info), frame_time(t1, s->end, b->info),
             s->source);
    return buf;
}

/* ---- hashing: sha256 over length-prefixed, tagged fields ---------------------------------- */
/* Every field is written as u64 len(tag), tag, u64 len(value), value (little-endian lengths),
 * so no two different field sequences serialise to the same bytes. */

static void put_u64le(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

static void put_field(struct AVHashContext *h, const char *tag, const void *data, size_t len)
{
    uint8_t n[8];
    put_u64le(n, strlen(tag));
    av_hash_update(h, n, 8);
    av_hash_update(h, (const uint8_t *)tag, strlen(tag));
    put_u64le(n, len);
    av_hash_update(h, n, 8);
    if (len)
        av_hash_update(h, data, len);
}

static void put_str(struct AVHashContext *h, const char *tag, const char *s)
{
    put_field(h, tag, s, strlen(s));
}

/* A string that may be absent: a presence flag, then the string when present. */
static void put_opt_str(struct AVHashContext *h, const char *tag, const char *s)
{
    uint8_t present = s != NULL;
    put_field(h, tag, &present, 1);
    if (s)
        put_str(h, tag, s);
}

static void put_i64(struct AVHashContext *h, const char *tag, int64_t v)
{
    uint8_t b[8];
    put_u64le(b, (uint64_t)v);
    put_field(h, tag, b, 8);
}

static int hash_alloc(struct AVHashContext **h, struct vf_error *err)
{
    int rc = av_hash_alloc(h, "SHA256");
    if (rc < 0) {
        char msg[128];
        av_strerror(rc, msg, sizeof msg);
        return vf_error_set(err, VF_EINTERNAL, "av_hash_alloc(\"SHA256\") failed in %s (%s:%d): %s",
                            __func__, __FILE__, __LINE__, msg);
    }
    av_hash_init(*h);
    return 0;
}

/* sha256 hex of a file's bytes; `what` names the file's role for messages. */
static int hash_file(const char *path, char hex[65], const char *what, struct vf_error *err)
{
    int rc = vf_shard_file_checksum(path, hex, err);
    if (rc < 0 && err) {
        vf_error_prefix(err, "the %s cannot be read", what);
        vf_error_suffix(err, "; check the path in the film.yaml");
    }
    return rc;
}

/* The content hash of a reference image, read once per distinct path. */
static int reference_hash(struct builder *b, const char *path, const char **hex, size_t shot,
                          struct vf_error *err)
{
    for (size_t i = 0; i < b->n_files; i++)
        if (strcmp(b->files[i].path, path) == 0) {
            *hex = b->files[i].hex;
            return 0;
        }
    if (b->n_files == b->cap_files) {
        size_t cap = b->cap_files ? 2 * b->cap_files : 8;
        struct file_hash *f = realloc(b->files, cap * sizeof *f);
        if (!f)
            return vf_error_set(err, VF_ENOMEM, "out of memory");
        b->files = f;
        b->cap_files = cap;
    }
    struct file_hash *fh = &b->files[b->n_files];
    int rc = hash_file(path, fh->hex, "reference image", err);
    if (rc < 0) {
        char d[160];
        return vf_error_prefix(err, "%s", shot_desc(d, b, shot));
    }
    fh->path = path;
    b->n_files++;
    *hex = fh->hex;
    return 0;
}

static int cmp_option(const void *a, const void *b)
{
    const struct vf_encode_option *x = *(const struct vf_encode_option *const *)a;
    const struct vf_encode_option *y = *(const struct vf_encode_option *const *)b;
    int c = strcmp(x->key ? x->key : "", y->key ? y->key : "");
    return c ? c : strcmp(x->value ? x->value : "", y->value ? y->value : "");
}

/* ---- shots -------------------------------------------------------------------------------- */

struct list_item {
    int64_t start, end;
    size_t entry; /* index in film->shots */
};

static int cmp_list_item(const void *a, const void *b)
{
    const struct list_item *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x->entry < y->entry ? -1 : x->entry > y->entry;
}

static int alloc_shots(struct builder *b, size_t n, struct vf_error *err)
{
    b->plan->shots = vf_calloc(n, sizeof *b->plan->shots, err);
    b->ref_origin = vf_calloc(n, 1, err);
    b->ref_entry = vf_calloc(n, sizeof *b->ref_entry, err);
    if (!b->plan->shots || !b->ref_origin || !b->ref_entry)
        return VF_ENOMEM;
    b->plan->n_shots = n;
    return 0;
}

/* shots.list: sort by start, then check that the entries tile [0, frames) exactly. */
static int shots_from_list(struct builder *b, struct vf_error *err)
{
    const struct vf_film *film = b->film;
    const int64_t frames = b->info->frames;
    const size_t n = film->n_shots;
    char w[512], w2[512];
    struct list_item *items = vf_calloc(n, sizeof *items, err);
    if (!items)
        return VF_ENOMEM;
    for (size_t i = 0; i < n; i++)
        items[i] = (struct list_item){film->shots[i].start, film->shots[i].end, i};
    qsort(items, n, sizeof *items, cmp_list_item);

    int rc = 0;
    int64_t covered = 0; /* frames [0, covered) are in a shot */
    for (size_t k = 0; k < n && rc == 0; k++) {
        const struct list_item *it = &items[k];
        const struct vf_shot_spec *s = &film->shots[it->entry];
        where(w, b, s->pos);
        if (it->start < 0 || it->end <= it->start)
            rc = vf_error_set(err, VF_EINVAL,
                              "%s: shots.list[%zu] {start: %" PRId64 ", end: %" PRId64 "} is %s: "
                              "a shot covers frames [start, end), end exclusive, with 0 <= start < end",
                              w, it->entry, it->start, it->end,
                              it->start < 0 ? "before frame 0" : "empty or reversed");
        else if (it->end > frames)
            rc = vf_error_set(err, VF_EINVAL,
                              "%s: shots.list[%zu] {start: %" PRId64 ", end: %" PRId64 "} runs past "
                              "the end of the film, which has %" PRId64 " frames (0..%" PRId64 "): "
                              "set its end to at most %" PRId64,
                              w, it->entry, it->start, it->end, frames, frames - 1, frames);
        else if (it->start < covered) {
            const struct list_item *prev = &items[k - 1];
            rc = vf_error_set(err, VF_EINVAL,
                              "%s: shots.list[%zu] {start: %" PRId64 ", end: %" PRId64 "} overlaps "
                              "shots.list[%zu] {start: %" PRId64 ", end: %" PRId64 "} (%s): frames "
                              "[%" PRId64 ", %" PRId64 ") are in both; start each shot where the "
                              "previous one ends (end is exclusive)",
                              w, it->entry, it->start, it->end, prev->entry, prev->start, prev->end,
                              where(w2, b, film->shots[prev->entry].pos), it->start,
                              it->end < covered ? it->end : covered);
        } else if (it->start > covered) {
            char t0[32], t1[32];
            if (k == 0)
                rc = vf_error_set(err, VF_EINVAL,
                                  "%s: shots.list[%zu] {start: %" PRId64 ", end: %" PRId64 "} is "
                                  "the first shot but frames [0, %" PRId64 ") (%s-%s) are in no "
                                  "shot: start it at 0 or add a shot for them",
                                  w, it->entry, it->start, it->end, it->start,
                                  frame_time(t0, 0, b->info), frame_time(t1, it->start, b->info));
            else
                rc = vf_error_set(err, VF_EINVAL,
                                  "%s: gap before shots.list[%zu] {start: %" PRId64 ", end: %" PRId64
                                  "}: frames [%" PRId64 ", %" PRId64 ") (%s-%s) are in no shot; "
                                  "end shots.list[%zu] (%s) at %" PRId64 " or add a shot for them",
                                  w, it->entry, it->start, it->end, covered, it->start,
                                  frame_time(t0, covered, b->info),
                                  frame_time(t1, it->start, b->info), items[k - 1].entry,
                                  where(w2, b, film->shots[items[k - 1].entry].pos), it->start);
        }
        covered = it->end;
    }
    if (rc == 0 && covered < frames) {
        char t0[32], t1[32];
        const struct list_item *last = &items[n - 1];
        rc = vf_error_set(err, VF_EINVAL,
                          "%s: shots.list[%zu] {start: %" PRId64 ", end: %" PRId64 "} is the last "
                          "shot but the film has %" PRId64 " frames: frames [%" PRId64 ", %" PRId64
                          ") (%s-%s) are in no shot; set its end to %" PRId64 " or add a shot",
                          where(w, b, film->shots[last->entry].pos), last->entry, last->start,
                          last->end, frames, covered, frames, frame_time(t0, covered, b->info),
                          frame_time(t1, frames, b->info), frames);
    }
    if (rc == 0)
        rc = alloc_shots(b, n, err);
    for (size_t k = 0; k < n && rc == 0; k++) {
        struct vf_shot *s = &b->plan->shots[k];
        const struct vf_shot_spec *spec = &film->shots[items[k].entry];
        s->start = spec->start;
        s->end = spec->end;
        s->reference = spec->reference;
        snprintf(s->source, sizeof s->source, "list");
        if (spec->reference)
            b->ref_origin[k] = 'l';
    }
    free(items);
    return rc;
}

/* Cuts from detection or an EDL (or none): shots between consecutive cuts. */
static int shots_from_cuts(struct builder *b, const int64_t *cuts, size_t n_cuts,
                           struct vf_error *err)
{
    const struct vf_film *film = b->film;
    const int64_t frames = b->info->frames;
    const char *source = film->edl ? "edl" : film->detect == VF_DETECT_AUTO ? "detect" : "whole";
    if (!cuts)
        n_cuts = 0;
    for (size_t i = 0; i < n_cuts; i++) {
        if (cuts[i] <= 0 || cuts[i] >= frames)
            return vf_error_set(err, VF_EINVAL,
                                "%s cut %zu at frame %" PRId64 " is outside (0, %" PRId64 "): "
                                "a cut is the first frame of a shot other than the first",
                                source, i, cuts[i], frames);
        if (i > 0 && cuts[i] <= cuts[i - 1])
            return vf_error_set(err, VF_EINVAL,
                                "%s cuts are not strictly ascending: cut %zu at frame %" PRId64
                                " follows a cut at frame %" PRId64,
                                source, i, cuts[i], cuts[i - 1]);
    }
    if (n_cuts >= (size_t)INT_MAX)
        return vf_error_set(err, VF_EUNSUPPORTED, "%zu cuts: too many shots", n_cuts);
    int rc = alloc_shots(b, n_cuts + 1, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i <= n_cuts; i++) {
        struct vf_shot *s = &b->plan->shots[i];
        s->start = i == 0 ? 0 : cuts[i - 1];
        s->end = i == n_cuts ? frames : cuts[i];
        snprintf(s->source, sizeof s->source, "%s", source);
    }
    return 0;
}

/* The shot holding frame f (shots partition [0, frames)). */
static size_t shot_of_frame(const struct vf_plan *p, int64_t f)
{
    size_t lo = 0, hi = p->n_shots;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->shots[mid].start <= f)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* ---- references (DESIGN.md §8) ------------------------------------------------------------ */
/* A shots.list entry's own reference first; then the first `references` entry whose frame lies
 * in the shot; then default_reference; else the shot is an error. */
static int assign_references(struct builder *b, struct vf_error *err)
{
    const struct vf_film *film = b->film;
    struct vf_plan *p = b->plan;
    char w[512], w2[512], d[160];
    int rc;
    for (size_t j = 0; j < film->n_references; j++) {
        const struct vf_reference_spec *r = &film->references[j];
        if (r->frame < 0 || r->frame >= p->frames)
            return vf_error_set(err, VF_EINVAL,
                                "%s: references[%zu] {frame: %" PRId64 "} is outside the film, which "
                                "has %" PRId64 " frames (0..%" PRId64 "): give a frame of the shot "
                                "this image is for",
                                where(w, b, r->pos), j, r->frame, p->frames, p->frames - 1);
        if (!r->image)
            return vf_error_set(err, VF_EINVAL, "%s: references[%zu] has no image",
                                where(w, b, r->pos), j);
        size_t k = shot_of_frame(p, r->frame);
        if (b->ref_origin[k] == 'l') {
            rc = add_warning(b, err,
                             "%s: references[%zu] {frame: %" PRId64 "} is not used: %s has its own "
                             "reference in shots.list",
                             where(w, b, r->pos), j, r->frame, shot_desc(d, b, k));
        } else if (b->ref_origin[k] == 'r') {
            rc = add_warning(b, err,
                             "%s: references[%zu] {frame: %" PRId64 "} lands in %s, which "
                             "references[%zu] (%s) already covers: the first one wins",
                             where(w, b, r->pos), j, r->frame, shot_desc(d, b, k), b->ref_entry[k],
                             where(w2, b, film->references[b->ref_entry[k]].pos));
        } else {
            p->shots[k].reference = r->image;
            b->ref_origin[k] = 'r';
            b->ref_entry[k] = j;
            rc = 0;
        }
        if (rc < 0)
            return rc;
    }
    size_t missing = 0;
    char msg[VF_ERROR_MSG_MAX];
    size_t len = 0;
    for (size_t k = 0; k < p->n_shots; k++) {
        if (b->ref_origin[k])
            continue;
        if (film->default_reference) {
            p->shots[k].reference = film->default_reference;
            b->ref_origin[k] = 'd';
            continue;
        }
        if (missing++ < MAX_DETAILS && len < sizeof msg)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s  %s", missing > 1 ? "\n" : "",
                                    shot_desc(d, b, k));
    }
    if (missing) {
        if (missing > MAX_DETAILS && len < sizeof msg)
            snprintf(msg + len, sizeof msg - len, "\n  ... and %zu more", missing - MAX_DETAILS);
        return vf_error_set(err, VF_EINVAL,
                            "%s: %zu of %zu shots have no colour reference:\n%s\nadd a `references` "
                            "entry { frame: F, image: ... } with F inside each such shot%s, or set "
                            "default_reference for all shots no reference covers",
                            b->yaml, missing, p->n_shots, msg,
                            film->n_shots ? " (or a reference: in its shots.list entry)" : "");
    }
    return 0;
}

/* ---- chunks ------------------------------------------------------------------------------- */

/* ceil(n / d) for n >= 0, d >= 1, without overflow. */
static int64_t ceil_div(int64_t n, int64_t d) { return n / d + (n % d != 0); }

/* chunks.length: auto: the pieces chunking.c cuts for film->ranks ranks, in film order. A
 * warm-up cut short by its shot's start is not warned about here: it starts at the shot's
 * first frame, exactly as a sequential pass does. */
static int build_chunks_auto(struct builder *b, struct vf_error *err)
{
    struct vf_plan *p = b->plan;
    const int64_t W = b->film->warmup;
    int64_t *len = vf_calloc(p->n_shots, sizeof *len, err);
    if (!len)
        return VF_ENOMEM;
    for (size_t k = 0; k < p->n_shots; k++)
        len[k] = p->shots[k].end - p->shots[k].start;
    struct vf_piece_ *pc = NULL;
    size_t n = 0;
    int rc = vf_shard_auto_cut_(len, p->n_shots, W, b->film->ranks, &pc, &n, &p->auto_target,
                                err);
    free(len);
    if (rc < 0)
        return rc;
    if (n > INT_MAX) {
        free(pc);
        return vf_error_set(err, VF_EUNSUPPORTED, "%s: %zu chunks is too many for ranks: %" PRId64,
                            b->yaml, n, b->film->ranks);
    }
    p->chunks = vf_calloc(n, sizeof *p->chunks, err);
    if (!p->chunks) {
        free(pc);
        return VF_ENOMEM;
    }
    p->n_chunks = n;
    p->auto_ranks = (int)b->film->ranks;
    for (size_t i = 0; i < n; i++) {
        const struct vf_shot *s = &p->shots[pc[i].shot];
        struct vf_chunk *ch = &p->chunks[i];
        ch->id = (int)i;
        ch->shot = (int)pc[i].shot;
        ch->start = s->start + pc[i].off;
        ch->end = ch->start + pc[i].kept;
        ch->warm_start = pc[i].off == 0 ? ch->start
                         : ch->start - W > s->start ? ch->start - W : s->start;
        ch->reference = s->reference;
        VF_ASSERT(i == 0 || ch->start == p->chunks[i - 1].end);
    }
    VF_ASSERT(n && p->chunks[n - 1].end == p->frames);
    free(pc);
    return 0;
}

static int build_chunks(struct builder *b, struct vf_error *err)
{
    struct vf_plan *p = b->plan;
    const int64_t L = b->film->chunk_length, W = b->film->warmup;
    p->warmup = W;
    if (L == VF_CHUNK_AUTO)
        return build_chunks_auto(b, err);
    uint64_t total = 0;
    for (size_t k = 0; k < p->n_shots; k++)
        total += (uint64_t)ceil_div(p->shots[k].end - p->shots[k].start, L);
    if (total > INT_MAX)
        return vf_error_set(err, VF_EUNSUPPORTED,
                            "%s: %" PRIu64 " chunks is too many: raise chunks.length (now %" PRId64 ")",
                            b->yaml, total, L);
    p->chunks = vf_calloc((size_t)total, sizeof *p->chunks, err);
    if (!p->chunks)
        return VF_ENOMEM;
    p->n_chunks = (size_t)total;

    size_t id = 0, n_short_warm = 0, first_short_warm = 0;
    int64_t min_warm = W;
    for (size_t k = 0; k < p->n_shots; k++) {
        const struct vf_shot *s = &p->shots[k];
        const int64_t n = s->end - s->start;
        const int64_t m = ceil_div(n, L);     /* chunks in this shot */
        const int64_t base = n / m, extra = n % m; /* the first `extra` chunks get base + 1 */
        int64_t at = s->start;
        for (int64_t c = 0; c < m; c++) {
            struct vf_chunk *ch = &p->chunks[id];
            ch->id = (int)id;
            ch->shot = (int)k;
            ch->start = at;
            ch->end = at + base + (c < extra);
            ch->warm_start = c == 0 ? at : (at - W > s->start ? at - W : s->start);
            ch->reference = s->reference;
            if (c > 0 && at - ch->warm_start < W) {
                if (n_short_warm++ == 0)
                    first_short_warm = id;
                if (at - ch->warm_start < min_warm)
                    min_warm = at - ch->warm_start;
            }
            at = ch->end;
            id++;
        }
        VF_ASSERT(at == s->end);
    }
    VF_ASSERT(id == p->n_chunks);

    int rc = 0;
    if (n_short_warm) {
        /* A warm-up is short when its chunk starts fewer than W frames into its shot, which
         * happens only when the shot's first chunk (ceil(n / m) frames) is shorter than W.
         * Chunks are balanced, so a shot just over L frames splits into two of about L/2; for
         * m >= 2, n > (m-1)L gives n/m > L/2, so chunks.length >= 2 * chunks.warmup avoids it
         * for every shot, and chunks.warmup <= min_warm avoids it for this film. */
        const struct vf_chunk *c = &p->chunks[first_short_warm];
        const struct vf_shot *s = &p->shots[c->shot];
        const int64_t n = s->end - s->start, m = ceil_div(n, L);
        char sizes[48];
        if (n % m)
            snprintf(sizes, sizeof sizes, "%" PRId64 "-%" PRId64, n / m, n / m + 1);
        else
            snprintf(sizes, sizeof sizes, "%" PRId64, n / m);
        rc = add_warning(b, err,
                         "%zu chunk(s) get a warm-up shorter than chunks.warmup = %" PRId64
                         " (as short as %" PRId64 " frames): a warm-up never reaches back past "
                         "its shot's start, and chunks are balanced within a shot, so a shot a "
                         "little longer than chunks.length = %" PRId64 " splits into chunks of "
                         "about half that. E.g. chunk %d (kept [%" PRId64 ", %" PRId64 ")) gets "
                         "%" PRId64 " warm-up frames: its shot %d (frames [%" PRId64 ", %" PRId64
                         "), %" PRId64 " frames) is split into %" PRId64 " chunks of %s frames. Set chunks.length to at least 2 x chunks.warmup = %" PRId64
                         " to avoid this for every shot, or lower chunks.warmup to %" PRId64,
                         n_short_warm, W, min_warm, L, c->id, c->start, c->end,
                         c->start - c->warm_start, c->shot, s->start, s->end, n, m, sizes, 2 * W,
                         min_warm);
    }
    if (rc == 0 && W > 0 && W >= L)
        rc = add_warning(b, err,
                         "chunks.warmup (%" PRId64 ") is not smaller than chunks.length (%" PRId64
                         "): at least half of the work on long shots is warm-up that is thrown "
                         "away; make chunks longer",
                         W, L);
    return rc;
}

static int warn_short_shots(struct builder *b, struct vf_error *err)
{
    const struct vf_plan *p = b->plan;
    size_t n_short = 0;
    char d[160];
    int rc = 0;
    for (size_t k = 0; k < p->n_shots && rc == 0; k++) {
        /* a shot that is the whole film has no cut to be spurious */
        if (p->shots[k].end - p->shots[k].start >= SHORT_SHOT_FRAMES ||
            (p->shots[k].start == 0 && p->shots[k].end == b->info->frames))
            continue;
        /* the advice for where the cut came from: detection's settings, or the list or EDL */
        const char *src = p->shots[k].source;
        const char *fix = !strcmp(src, "detect") ? "check the cuts, or raise "
                                                   "shots.threshold/shots.min_length"
                          : !strcmp(src, "edl")  ? "check the EDL's events around it"
                                                 : "check shots.list";
        if (n_short++ < MAX_DETAILS)
            rc = add_warning(b, err,
                             "%s is only %" PRId64 " frame(s) long: a flash or a spurious cut? %s",
                             shot_desc(d, b, k), p->shots[k].end - p->shots[k].start, fix);
    }
    if (rc == 0 && n_short > MAX_DETAILS)
        rc = add_warning(b, err, "... and %zu more shots shorter than %d frames",
                         n_short - MAX_DETAILS, SHORT_SHOT_FRAMES);
    return rc;
}

/* ---- hashes ------------------------------------------------------------------------------- */

/* Chunk hash: the input's identity, the chunk's frames, its reference and model contents, and
 * every setting that shapes the pixels or bytes of its segment. Not: paths, ids, audio, the
 * detector's settings (they act only through the frames), work_dir. */
static int hash_chunks(struct builder *b, struct vf_error *err)
{
    const struct vf_film *film = b->film;
    const struct vf_media_info *info = b->info;
    struct vf_plan *p = b->plan;
    char model_hex[65] = "bundled-default";
    const struct vf_encode_option **opts = NULL;
    struct AVHashContext *h = NULL;
    struct vf_encode_spec spec;
    int rc = 0;

    vf_shard_encode_spec(film, &spec);
    if (film->model_sha[0]) {
        snprintf(model_hex, sizeof model_hex, "%s", film->model_sha); /* the bytes loaded */
    } else if (film->model) {
        rc = hash_file(film->model, model_hex, "model", err);
        if (rc < 0)
            return rc;
    }
    if (film->n_encode_options) {
        opts = vf_calloc(film->n_encode_options, sizeof *opts, err);
        if (!opts)
            return VF_ENOMEM;
        for (size_t i = 0; i < film->n_encode_options; i++)
            opts[i] = &film->encode_options[i];
        qsort(opts, film->n_encode_options, sizeof *opts, cmp_option);
    }
    rc = hash_alloc(&h, err);
    for (size_t i = 0; i < p->n_chunks && rc == 0; i++) {
        struct vf_chunk *c = &p->chunks[i];
        const char *ref_hex = NULL;
        rc = reference_hash(b, c->reference, &ref_hex, (size_t)c->shot, err);
        if (rc < 0)
            break;
        snprintf(c->reference_sha, sizeof c->reference_sha, "%s", ref_hex);
        av_hash_init(h);
        put_str(h, "format", PLAN_FORMAT);
        put_str(h, "input", info->video_digest);
        put_i64(h, "frames", info->frames);
        put_i64(h, "width", info->width);
        put_i64(h, "height", info->height);
        /* what the segment is decoded as and tagged with (encode.c copies these from the
         * probe); the digest covers the stream's declarations, these are the probe's reading
         * of them (unknowns filled from the first frame) */
        put_str(h, "pix_fmt_in", info->pix_fmt);
        put_i64(h, "bits_per_sample", info->bits_per_sample);
        put_i64(h, "sar_num", info->sar_num);
        put_i64(h, "sar_den", info->sar_den);
        put_i64(h, "tb_num", info->tb_num);
        put_i64(h, "tb_den", info->tb_den);
        put_i64(h, "fps_num", info->fps_num);
        put_i64(h, "fps_den", info->fps_den);
        put_str(h, "field_order", info->field_order);
        put_str(h, "color_range", info->color_range);
        put_str(h, "color_space", info->color_space);
        put_str(h, "color_transfer", info->color_transfer);
        put_str(h, "color_primaries", info->color_primaries);
        put_i64(h, "warm_start", c->warm_start);
        put_i64(h, "start", c->start);
        put_i64(h, "end", c->end);
        put_str(h, "reference", ref_hex);
        put_str(h, "model", model_hex);
        put_i64(h, "inference_h", film->inference_h);
        put_i64(h, "inference_w", film->inference_w);
        put_str(h, "precision", vf_precision_name(film->precision));
        put_str(h, "reference_passthrough",
                film->passthrough == VF_PASSTHROUGH_OFF ? "off" : "auto");
        put_opt_str(h, "codec", film->codec);
        /* the format it encodes in: film.yaml's, or the codec's default it names */
        put_opt_str(h, "pix_fmt", vf_shard_encode_pix_fmt(&spec, info));
        put_i64(h, "options", (int64_t)film->n_encode_options);
        for (size_t k = 0; k < film->n_encode_options; k++) {
            put_opt_str(h, "option.key", opts[k]->key);
            put_opt_str(h, "option.value", opts[k]->value);
        }
        av_hash_final_hex(h, (uint8_t *)c->hash, sizeof c->hash);
    }
    if (rc == 0) {
        /* Plan hash: every chunk hash in order and what shapes the merge. */
        av_hash_init(h);
        put_str(h, "format", PLAN_FORMAT);
        put_i64(h, "frames", info->frames);
        put_str(h, "audio", film->audio == VF_AUDIO_NONE ? "none" : "copy");
        put_i64(h, "chunks", (int64_t)p->n_chunks);
        for (size_t i = 0; i < p->n_chunks; i++)
            put_str(h, "chunk", p->chunks[i].hash);
        av_hash_final_hex(h, (uint8_t *)p->hash, sizeof p->hash);
    }
    av_hash_freep(&h);
    free(opts);
    return rc;
}

/* ---- public ------------------------------------------------------------------------------- */

int vf_shard_plan_create(struct vf_plan **out, const struct vf_film *film,
                         const struct vf_media_info *info, const int64_t *cuts, size_t n_cuts,
                         struct vf_error *err)
{
    VF_ASSERT(out && film && info);
    *out = NULL;
    struct builder b = {.film = film, .info = info, .yaml = film->path ? film->path : "film.yaml"};
    if (info->frames < 1)
        return vf_error_set(err, VF_EINVAL, "%s: the input has no video frames to plan", info->path);
    if (film->chunk_length < 1 && film->chunk_length != VF_CHUNK_AUTO)
        return vf_error_set(err, VF_EINVAL,
                            "%s: chunks.length is %" PRId64 ": it must be at least 1 frame", b.yaml,
                            film->chunk_length);
    if (film->chunk_length == VF_CHUNK_AUTO && (film->ranks < 1 || film->ranks > INT_MAX))
        return vf_error_set(err, VF_EINVAL,
                            "%s: chunks.length is auto but the rank count to plan for is %" PRId64
                            ": set ranks: in the film.yaml (a positive number)",
                            b.yaml, film->ranks);
    if (film->warmup < 0)
        return vf_error_set(err, VF_EINVAL,
                            "%s: chunks.warmup is %" PRId64 ": it must be 0 or more frames", b.yaml,
                            film->warmup);
    b.plan = calloc(1, sizeof *b.plan);
    if (!b.plan)
        return vf_error_set(err, VF_ENOMEM, "out of memory allocating the plan");
    b.plan->frames = info->frames;

    int rc;
    if (film->n_shots > 0)
        rc = shots_from_list(&b, err);
    else
        rc = shots_from_cuts(&b, cuts, n_cuts, err);
    if (rc == 0)
        rc = assign_references(&b, err);
    if (rc == 0)
        rc = build_chunks(&b, err);
    if (rc == 0)
        rc = warn_short_shots(&b, err);
    if (rc == 0) {   /* other video streams (a second angle, a cover picture) are not copied */
        char list[256] = "";
        int n_other = 0;
        for (int i = 0; i < info->n_streams; i++) {
            const struct vf_stream_info *st = &info->streams[i];
            if (st->kind != VF_STREAM_VIDEO || st->index == info->video_stream)
                continue;
            size_t len = strlen(list);
            if (len < sizeof list - 48)
                snprintf(list + len, sizeof list - len, "%s#%d (%s)", n_other ? ", " : "",
                         st->index, st->codec);
            n_other++;
        }
        if (n_other)
            rc = add_warning(&b, err,
                             "%s has %d video stream(s) besides #%d, the one vaefarm colours: %s; "
                             "the colour film leaves them out (a second picture or a cover "
                             "image), copying only audio, subtitles and fonts",
                             info->path, n_other, info->video_stream, list);
    }
    if (rc == 0 && vf_shard_interlaced(info))
        rc = add_warning(&b, err,
                         "%s is interlaced (field order %s): each frame is coloured whole, its "
                         "two fields together, so where things move the colour of one field's "
                         "picture spreads onto the other's; the colour film keeps the field "
                         "order (coded as fields where encode.codec can). For clean colour on "
                         "movement deinterlace the film first (ffmpeg -vf bwdif), or "
                         "inverse-telecine film transferred to video (-vf fieldmatch,decimate)",
                         info->path, info->field_order);
    if (rc == 0 && film->ranks > 0 && film->chunk_length != VF_CHUNK_AUTO) {
        char w[512];
        rc = add_warning(&b, err, "%s: ranks: %" PRId64 " is read only with chunks.length: auto; "
                         "these chunks are cut at %" PRId64 " frames whatever the rank count: "
                         "write chunks.length: auto to cut for the ranks, or remove ranks:",
                         where(w, &b, vf_config_key_pos(film, "ranks")), film->ranks,
                         film->chunk_length);
    }
    if (rc == 0)
        rc = hash_chunks(&b, err);

    free(b.ref_origin);
    free(b.ref_entry);
    free(b.files);
    if (rc < 0) {
        vf_shard_plan_destroy(&b.plan);
        return rc;
    }
    for (size_t i = 0; i < b.plan->n_warnings; i++)
        vf_log(&log_ctx, VF_LOG_VERBOSE, "%s", b.plan->warnings[i]);
    *out = b.plan;
    return 0;
}

void vf_shard_plan_destroy(struct vf_plan **plan)
{
    if (!plan || !*plan)
        return;
    struct vf_plan *p = *plan;
    for (size_t i = 0; i < p->n_warnings; i++)
        free(p->warnings[i]);
    free(p->warnings);
    free(p->shots);
    free(p->chunks);
    free(p);
    *plan = NULL;
}

/* Longest chunk first onto the rank that frees up first (chunking.c's model of the farm). */
int64_t vf_shard_plan_simulate(const struct vf_plan *plan, int ranks)
{
    if (!plan || ranks < 1)
        return -1;
    const size_t n = plan->n_chunks;
    int64_t *cost = malloc((n ? n : 1) * sizeof *cost);
    if (!cost)
        return -1;
    for (size_t i = 0; i < n; i++)
        cost[i] = plan->chunks[i].end - plan->chunks[i].warm_start;
    int64_t makespan = vf_shard_makespan_(cost, n, ranks);
    free(cost);
    return makespan;
}
