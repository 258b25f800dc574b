/*
 * tests/test_plan.c: vf_shard_plan_create / simulate (shard.h "plan", docs/PLAN.md).
 *
 * Property tests over thousands of random films (fixed-seed PRNG, so a failure reproduces):
 * random frame counts, shot lists or cuts, chunk lengths, warm-ups, references and encode
 * settings. Each plan is checked against the invariants of docs/PLAN.md, and its hashes against
 * an independent oracle: the test writes out, per chunk, the tuple of everything that should
 * shape its output (with reference and model *contents*), and asserts that two chunk hashes are
 * equal exactly when their tuples are, and two plan hashes exactly when the tuple lists, the
 * audio setting and the frame count are. One random perturbation per film (an unrelated path, a
 * renamed-but-identical reference, the warm-up, a reference's content, ...) exercises both sides.
 *
 * Reference images and models are small temporary files (mkdtemp); only their bytes matter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shard/shard.h"

#define N_FILMS 2500       /* random films for the main property test */
#define N_ERROR_FILMS 1000 /* random broken shot lists */
#define MAX_SHOTS 48
#define MAX_REFS 8
#define MAX_OPTS 4
/* the hash of plan_hash_is_pinned's film: see there before changing it */
#define PINNED_HASH "fce98b2f0615cc6853cd90049f55e35660f2f06ac8898a077f79b024af457b37"

/* ---- PRNG: splitmix64 with a fixed seed --------------------------------------------------- */
static uint64_t rng_state = 0x5eed0fa11u;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static int64_t rnd(int64_t n) { return n <= 1 ? 0 : (int64_t)(rng_next() % (uint64_t)n); }

/* ---- temporary files: reference images and models ----------------------------------------- */
/* Files 0..N_POOL-1 have distinct contents except DUP, which holds file 0's bytes under another
 * name (renaming a reference must not change a hash). */
#define N_POOL 6
#define DUP (N_POOL - 1)
static char tmpdir[256];
static char pool_path[N_POOL][300];
static const char *pool_content[N_POOL] = {"PNG street", "PNG room", "PNG sea", "PNG sky",
                                           "PNG forest", "PNG street"};
static char model_path[2][300];
static const char *model_content[2] = {"safetensors tiny", "safetensors full"};

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, strlen(content), f), strlen(content));
    assert_int_equal(fclose(f), 0);
}

static int setup_files(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/vf_test_plan_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    for (int i = 0; i < N_POOL; i++) {
        snprintf(pool_path[i], sizeof pool_path[i], "%s/ref%d.png", tmpdir, i);
        write_file(pool_path[i], pool_content[i]);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(model_path[i], sizeof model_path[i], "%s/model%d.safetensors", tmpdir, i);
        write_file(model_path[i], model_content[i]);
    }
    return 0;
}

static int teardown_files(void **state)
{
    (void)state;
    for (int i = 0; i < N_POOL; i++)
        unlink(pool_path[i]);
    for (int i = 0; i < 2; i++)
        unlink(model_path[i]);
    rmdir(tmpdir);
    return 0;
}

static const char *content_of(const char *path)
{
    if (!path)
        return "bundled-default";
    for (int i = 0; i < N_POOL; i++)
        if (strcmp(path, pool_path[i]) == 0)
            return pool_content[i];
    for (int i = 0; i < 2; i++)
        if (strcmp(path, model_path[i]) == 0)
            return model_content[i];
    fail_msg("unknown test file %s", path);
    return NULL;
}

/* ---- a film built by hand (the config parser is not used here) ---------------------------- */
enum mode { MODE_LIST, MODE_CUTS, MODE_WHOLE };

struct tfilm {
    struct vf_film film;
    struct vf_media_info info;
    enum mode mode;
    struct vf_shot_spec shots[MAX_SHOTS];
    struct vf_reference_spec refs[MAX_REFS];
    struct vf_encode_option opts[MAX_OPTS];
    int64_t cuts[MAX_SHOTS];
    size_t n_cuts;
};

/* Point the film's arrays at this tfilm's own storage (after a struct copy). */
static void tfilm_fix(struct tfilm *t)
{
    t->film.shots = t->film.n_shots ? t->shots : NULL;
    t->film.references = t->film.n_references ? t->refs : NULL;
    t->film.encode_options = t->film.n_encode_options ? t->opts : NULL;
}

static void tfilm_copy(struct tfilm *dst, const struct tfilm *src)
{
    memcpy(dst, src, sizeof *dst);
    tfilm_fix(dst);
}

static void tfilm_base(struct tfilm *t, int64_t frames)
{
    memset(t, 0, sizeof *t);
    t->film.version = 1;
    t->film.path = "film.yaml";
    t->film.input = "reel1.mkv";
    t->film.output = "out/reel1_color.mkv";
    t->film.work_dir = "out/reel1_color.mkv.vaefarm";
    t->film.threshold = 0.3;
    t->film.min_shot_length = 12;
    t->film.chunk_length = 240;
    t->film.warmup = 16;
    t->film.codec = "ffv1";
    t->film.detect = VF_DETECT_OFF;
    t->info.frames = frames;
    t->info.width = 320;
    t->info.height = 180;
    t->info.fps_num = 25;
    t->info.fps_den = 1;
    t->info.tb_num = 1;
    t->info.tb_den = 1000;
    t->info.sar_num = 1;
    t->info.sar_den = 1;
    t->info.bits_per_sample = 8;
    snprintf(t->info.pix_fmt, sizeof t->info.pix_fmt, "yuv420p");
    snprintf(t->info.field_order, sizeof t->info.field_order, "progressive");
    snprintf(t->info.color_range, sizeof t->info.color_range, "tv");
    snprintf(t->info.color_space, sizeof t->info.color_space, "bt709");
    snprintf(t->info.color_transfer, sizeof t->info.color_transfer, "bt709");
    snprintf(t->info.color_primaries, sizeof t->info.color_primaries, "bt709");
    snprintf(t->info.path, sizeof t->info.path, "reel1.mkv");
    memset(t->info.video_digest, 'a', 64);
    t->mode = MODE_WHOLE;
}

static const char *rand_pool(void) { return pool_path[rnd(N_POOL)]; }

/* The input's stream properties the probe reports (shard.h): values it can take. */
static const char *const pix_fmts[] = {"yuv420p", "yuv422p10le", "gray", "yuvj420p", "bgr0"};
static const int pix_bits[] = {8, 10, 8, 8, 8};
static const char *const field_orders[] = {"progressive", "tt", "bb", "tb", "bt", "unknown"};
static const char *const ranges[] = {"tv", "pc", "unknown"};
static const char *const matrices[] = {"bt709", "smpte170m", "bt470bg", "bt2020nc", "unknown"};
static const char *const transfers[] = {"bt709", "smpte170m", "arib-std-b67", "unknown"};
static const char *const primaries[] = {"bt709", "smpte170m", "bt470bg", "bt2020", "unknown"};
#define PICK(a) ((a)[rnd((int64_t)(sizeof(a) / sizeof((a)[0])))])

/* Change one stream property of t's input to another value (P_STREAM). */
static void perturb_stream(struct vf_media_info *m)
{
    char *s = NULL;
    size_t size = 0;
    const char *const *vals = NULL;
    size_t n_vals = 0;
    switch (rnd(11)) {
    case 0: /* another pixel format of the same depth, or the same format at another depth */
        if (rnd(2))
            snprintf(m->pix_fmt, sizeof m->pix_fmt, "%s", strcmp(m->pix_fmt, "yuv444p") ? "yuv444p" : "nv12");
        else
            m->bits_per_sample += 2;
        return;
    case 1: m->sar_num += 1; return;
    case 2: m->sar_den += 1; return;
    case 3: m->tb_den *= 2; return;
    case 4: m->fps_num += 1; return;
    case 5: m->fps_den += 1; return;
    case 6: s = m->field_order, size = sizeof m->field_order, vals = field_orders, n_vals = 6; break;
    case 7: s = m->color_range, size = sizeof m->color_range, vals = ranges, n_vals = 3; break;
    case 8: s = m->color_space, size = sizeof m->color_space, vals = matrices, n_vals = 5; break;
    case 9: s = m->color_transfer, size = sizeof m->color_transfer, vals = transfers, n_vals = 4; break;
    default: s = m->color_primaries, size = sizeof m->color_primaries, vals = primaries, n_vals = 5; break;
    }
    const char *nu = s;
    while (!strcmp(nu, s))
        nu = vals[rnd((int64_t)n_vals)];
    snprintf(s, size, "%s", nu);
}

/* Distinct cut frames in (0, frames), ascending; at most max_n of them. */
static size_t rand_cuts(int64_t *cuts, size_t max_n, int64_t frames)
{
    if (frames < 2)
        return 0;
    size_t want = (size_t)rnd((int64_t)max_n + 1), n = 0;
    for (size_t i = 0; i < want; i++)
        cuts[n++] = 1 + rnd(frames - 1);
    for (size_t i = 1; i < n; i++) /* insertion sort + dedup */
        for (size_t j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
            int64_t x = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = x;
        }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || cuts[i] != cuts[m - 1])
            cuts[m++] = cuts[i];
    return m;
}

static void rand_film(struct tfilm *t)
{
    int64_t frames = rnd(8) == 0 ? 1 + rnd(20) : 1 + rnd(rnd(4) == 0 ? 20000 : 3000);
    tfilm_base(t, frames);
    for (int i = 0; i < 64; i++)
        t->info.video_digest[i] = "0123456789abcdef"[rnd(16)];
    t->info.width = 8 * (1 + (int)rnd(100));
    t->info.height = 8 * (1 + (int)rnd(100));
    int pf = (int)rnd(5);
    snprintf(t->info.pix_fmt, sizeof t->info.pix_fmt, "%s", pix_fmts[pf]);
    t->info.bits_per_sample = pix_bits[pf];
    t->info.sar_num = 1 + (int)rnd(4);
    t->info.sar_den = 1 + (int)rnd(4);
    t->info.tb_den = rnd(2) ? 1000 : 90000;
    t->info.fps_num = rnd(2) ? 25 : 30000;
    t->info.fps_den = t->info.fps_num == 25 ? 1 : 1001;
    snprintf(t->info.field_order, sizeof t->info.field_order, "%s", PICK(field_orders));
    snprintf(t->info.color_range, sizeof t->info.color_range, "%s", PICK(ranges));
    snprintf(t->info.color_space, sizeof t->info.color_space, "%s", PICK(matrices));
    snprintf(t->info.color_transfer, sizeof t->info.color_transfer, "%s", PICK(transfers));
    snprintf(t->info.color_primaries, sizeof t->info.color_primaries, "%s", PICK(primaries));
    t->mode = (enum mode)rnd(3);
    int64_t cuts[MAX_SHOTS];
    size_t n_cuts = rand_cuts(cuts, MAX_SHOTS - 1, frames);
    if (t->mode == MODE_LIST) {
        /* the partition given by the cuts, listed in a shuffled order */
        size_t n = n_cuts + 1;
        size_t order[MAX_SHOTS];
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        for (size_t i = n; i > 1; i--) {
            size_t j = (size_t)rnd((int64_t)i), x = order[i - 1];
            order[i - 1] = order[j];
            order[j] = x;
        }
        for (size_t i = 0; i < n; i++) {
            size_t k = order[i];
            struct vf_shot_spec *s = &t->shots[i];
            s->start = k == 0 ? 0 : cuts[k - 1];
            s->end = k == n_cuts ? frames : cuts[k];
            s->reference = rnd(10) == 0 ? NULL : (char *)rand_pool();
            s->pos = (struct vf_config_pos){.line = 20 + (int)i, .col = 7};
        }
        t->film.n_shots = n;
    } else if (t->mode == MODE_CUTS) {
        memcpy(t->cuts, cuts, n_cuts * sizeof *cuts);
        t->n_cuts = n_cuts;
        t->film.detect = VF_DETECT_AUTO;
        if (rnd(3) == 0)
            t->film.edl = "cuts.edl";
    }
    size_t n_refs = (size_t)rnd(t->mode == MODE_LIST ? 3 : MAX_REFS + 1);
    for (size_t j = 0; j < n_refs; j++)
        t->refs[j] = (struct vf_reference_spec){
            .frame = rnd(frames), .image = (char *)rand_pool(), .pos = {.line = 80 + (int)j, .col = 5}};
    t->film.n_references = n_refs;
    t->film.default_reference = rnd(10) < 7 ? (char *)rand_pool() : NULL;
    t->film.chunk_length = 1 + rnd(rnd(4) == 0 ? 12 : 400);
    t->film.warmup = rnd(4) == 0 ? 0 : rnd(64);
    if (rnd(5) == 0) { /* chunks.length: auto, for 1 to 2000 ranks */
        t->film.chunk_length = VF_CHUNK_AUTO;
        t->film.ranks = 1 + rnd(rnd(2) ? 16 : 2000);
    }
    static const char *codecs[] = {"ffv1", "prores_ks", "libx264", "libx265"};
    t->film.codec = (char *)codecs[rnd(4)];
    t->film.pix_fmt = rnd(2) ? NULL : "yuv444p10le";
    static const char *keys[MAX_OPTS] = {"crf", "preset", "g", "level"};
    static const char *vals[] = {"16", "slow", "1", "3"};
    size_t n_opts = (size_t)rnd(MAX_OPTS + 1);
    for (size_t i = 0; i < n_opts; i++)
        t->opts[i] = (struct vf_encode_option){(char *)keys[i], (char *)vals[rnd(4)]};
    t->film.n_encode_options = n_opts;
    t->film.precision = (enum vf_precision)rnd(4);
    t->film.inference_h = rnd(2) ? 0 : 8 * (int)(1 + rnd(60));
    t->film.inference_w = t->film.inference_h ? 8 * (int)(1 + rnd(80)) : 0;
    t->film.model = rnd(10) < 7 ? NULL : model_path[rnd(2)];
    t->film.audio = (enum vf_audio)rnd(2);
    t->film.passthrough = (enum vf_passthrough)rnd(2);
    tfilm_fix(t);
}

static int plan_of(struct vf_plan **p, const struct tfilm *t, struct vf_error *err)
{
    const bool cuts = t->mode == MODE_CUTS;
    return vf_shard_plan_create(p, &t->film, &t->info, cuts ? t->cuts : NULL, cuts ? t->n_cuts : 0,
                                err);
}

/* ---- the oracle --------------------------------------------------------------------------- */

struct expect {
    size_t n_shots;
    int64_t start[MAX_SHOTS], end[MAX_SHOTS];
    const char *ref[MAX_SHOTS];
    char origin[MAX_SHOTS]; /* 'l' list, 'r' references, 'd' default, 0 none */
    size_t entry[MAX_SHOTS]; /* list entry or references index that set it */
    bool missing;            /* some shot has no reference */
};

static void expect_of(struct expect *e, const struct tfilm *t)
{
    memset(e, 0, sizeof *e);
    const struct vf_film *f = &t->film;
    if (t->mode == MODE_LIST) {
        e->n_shots = f->n_shots;
        for (size_t k = 0; k < f->n_shots; k++) { /* sort by start: selection of the k-th */
            size_t best = SIZE_MAX;
            for (size_t i = 0; i < f->n_shots; i++)
                if (f->shots[i].start >= (k ? e->end[k - 1] : 0) &&
                    (best == SIZE_MAX || f->shots[i].start < f->shots[best].start))
                    best = i;
            assert_true(best != SIZE_MAX);
            e->start[k] = f->shots[best].start;
            e->end[k] = f->shots[best].end;
            e->ref[k] = f->shots[best].reference;
            e->origin[k] = e->ref[k] ? 'l' : 0;
            e->entry[k] = best;
        }
    } else {
        size_t n = t->mode == MODE_CUTS ? t->n_cuts : 0;
        e->n_shots = n + 1;
        for (size_t k = 0; k <= n; k++) {
            e->start[k] = k ? t->cuts[k - 1] : 0;
            e->end[k] = k < n ? t->cuts[k] : t->info.frames;
        }
    }
    for (size_t j = 0; j < f->n_references; j++)
        for (size_t k = 0; k < e->n_shots; k++)
            if (f->references[j].frame >= e->start[k] && f->references[j].frame < e->end[k] &&
                !e->origin[k]) {
                e->ref[k] = f->references[j].image;
                e->origin[k] = 'r';
                e->entry[k] = j;
            }
    for (size_t k = 0; k < e->n_shots; k++)
        if (!e->origin[k]) {
            if (f->default_reference) {
                e->ref[k] = f->default_reference;
                e->origin[k] = 'd';
            } else {
                e->missing = true;
            }
        }
}

/* Everything that should shape chunk i's output, written out plainly: the input (its digest,
 * geometry and the stream properties the segment is decoded as and tagged with), the chunk's
 * frames, its reference, the network and the encoder. */
static void chunk_tuple(char *buf, size_t n, const struct tfilm *t, const struct vf_chunk *c)
{
    const struct vf_film *f = &t->film;
    const struct vf_media_info *m = &t->info;
    /* the format the segment is encoded in (test_encode checks that segments have the one this
     * names): an unset pix_fmt and the codec's default written out are one */
    struct vf_encode_spec spec;
    vf_shard_encode_spec(f, &spec);
    const char *pix = vf_shard_encode_pix_fmt(&spec, m);
    int len = snprintf(buf, n, "%s %d-bit|sar %d:%d|tb %d/%d|fps %d/%d|%s|%s|%s|%s|%s|",
                       m->pix_fmt, m->bits_per_sample, m->sar_num, m->sar_den, m->tb_num,
                       m->tb_den, m->fps_num, m->fps_den, m->field_order, m->color_range,
                       m->color_space, m->color_transfer, m->color_primaries);
    len += snprintf(buf + len, n - (size_t)len, "%s|%" PRId64 "|%dx%d|%" PRId64 "|%" PRId64 "|%" PRId64 "|%s|%s|%dx%d|%d|%d|%s|%s|",
                       t->info.video_digest, t->info.frames, t->info.width, t->info.height,
                       c->warm_start, c->start, c->end, content_of(c->reference),
                       content_of(f->model), f->inference_h, f->inference_w, (int)f->precision,
                       (int)f->passthrough, f->codec, pix ? pix : "(none)");
    /* options sorted by key (keys are distinct in these films) */
    const char *done = "";
    for (size_t r = 0; r < f->n_encode_options; r++) {
        const struct vf_encode_option *best = NULL;
        for (size_t i = 0; i < f->n_encode_options; i++)
            if (strcmp(f->encode_options[i].key, done) > 0 &&
                (!best || strcmp(f->encode_options[i].key, best->key) < 0))
                best = &f->encode_options[i];
        len += snprintf(buf + len, n - (size_t)len, "%s=%s;", best->key, best->value);
        done = best->key;
    }
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", s[i]))
            return false;
    return true;
}

/* Every invariant of docs/PLAN.md for one plan of film t. */
static void check_plan(const struct vf_plan *p, const struct tfilm *t, const struct expect *e)
{
    const int64_t L = t->film.chunk_length, W = t->film.warmup;
    assert_int_equal(p->frames, t->info.frames);
    assert_int_equal(p->n_shots, e->n_shots);
    for (size_t k = 0; k < p->n_shots; k++) {
        assert_int_equal(p->shots[k].start, e->start[k]);
        assert_int_equal(p->shots[k].end, e->end[k]);
        assert_ptr_equal(p->shots[k].reference, e->ref[k]);
        const char *want = t->mode == MODE_LIST ? "list" : t->mode == MODE_WHOLE ? "whole"
                           : t->film.edl                 ? "edl"
                                                         : "detect";
        assert_string_equal(p->shots[k].source, want);
    }
    assert_true(p->n_chunks >= p->n_shots);
    int64_t at = 0;
    size_t first_of_shot = 0;
    for (size_t i = 0; i < p->n_chunks; i++) {
        const struct vf_chunk *c = &p->chunks[i];
        assert_int_equal(c->id, (int)i);
        assert_true(c->shot >= 0 && (size_t)c->shot < p->n_shots);
        const struct vf_shot *s = &p->shots[c->shot];
        /* kept frames partition [0, frames) once, in id order */
        assert_int_equal(c->start, at);
        assert_true(c->end > c->start);
        assert_true(L == VF_CHUNK_AUTO || c->end - c->start <= L);
        at = c->end;
        /* inside its shot; shots in film order */
        assert_true(c->start >= s->start && c->end <= s->end);
        if (i > 0)
            assert_true(c->shot == p->chunks[i - 1].shot || c->shot == p->chunks[i - 1].shot + 1);
        bool first = i == 0 || p->chunks[i - 1].shot != c->shot;
        if (first) {
            assert_int_equal(c->start, s->start);
            assert_int_equal(c->warm_start, c->start);
            first_of_shot = i;
        } else {
            int64_t want = c->start - W > s->start ? c->start - W : s->start;
            assert_int_equal(c->warm_start, want);
            assert_true(c->warm_start >= s->start); /* never crosses into the previous shot */
        }
        assert_non_null(c->reference);
        assert_ptr_equal(c->reference, s->reference);
        assert_true(is_hex64(c->hash));
        bool last = i + 1 == p->n_chunks || p->chunks[i + 1].shot != c->shot;
        if (last && L != VF_CHUNK_AUTO) { /* ceil(n / L) chunks, balanced: sizes differ by at
                                             most one, larger first */
            int64_t n = s->end - s->start, m = (int64_t)(i - first_of_shot + 1);
            assert_int_equal(m, (n + L - 1) / L);
            for (size_t j = first_of_shot; j <= i; j++) {
                int64_t len = p->chunks[j].end - p->chunks[j].start;
                assert_true(len == n / m || len == n / m + 1);
                if (j > first_of_shot)
                    assert_true(len <= p->chunks[j - 1].end - p->chunks[j - 1].start);
            }
        }
    }
    assert_int_equal(at, t->info.frames);
    assert_true(is_hex64(p->hash));
    assert_int_equal(p->warmup, W);
    assert_int_equal(p->auto_ranks, L == VF_CHUNK_AUTO ? (int)t->film.ranks : 0);
    if (L == VF_CHUNK_AUTO) /* the cutting aims at a load no schedule can go below */
        assert_true(p->auto_target >= vf_shard_plan_bound(p, p->auto_ranks));
}

/* Hashes vs the oracle: chunk hash i equal <=> tuple i equal; plan hash equal <=> all tuples,
 * audio and frames equal. Returns whether the plan hashes differ. */
static bool compare_hashes(const struct vf_plan *a, const struct tfilm *ta, const struct vf_plan *b,
                           const struct tfilm *tb)
{
    static char x[2048], y[2048];
    bool same_tuples = a->n_chunks == b->n_chunks && ta->info.frames == tb->info.frames &&
                       ta->film.audio == tb->film.audio;
    size_t n = a->n_chunks < b->n_chunks ? a->n_chunks : b->n_chunks;
    for (size_t i = 0; i < n; i++) {
        chunk_tuple(x, sizeof x, ta, &a->chunks[i]);
        chunk_tuple(y, sizeof y, tb, &b->chunks[i]);
        bool same = strcmp(x, y) == 0;
        if (same != (strcmp(a->chunks[i].hash, b->chunks[i].hash) == 0))
            fail_msg("chunk %zu: tuples %s:\n  %s\n  %s\nbut hashes %s", i,
                     same ? "equal" : "differ", x, y, same ? "differ" : "are equal");
        same_tuples = same_tuples && same;
    }
    bool differ = strcmp(a->hash, b->hash) != 0;
    if (same_tuples == differ)
        fail_msg("plan hashes %s but what shapes the output %s", differ ? "differ" : "are equal",
                 same_tuples ? "is the same" : "changed");
    return differ;
}

/* ---- the main property test --------------------------------------------------------------- */

enum perturb {
    P_OUTPUT, P_WORK_DIR, P_THRESHOLD, P_MIN_LENGTH, P_PATHS, P_OPT_ORDER, P_SAME_CONTENT,
    P_LIST_ORDER, P_PIX_FMT_DEFAULT, /* the above must not change the hash */
    P_WARMUP, P_LENGTH, /* change it exactly when the chunk geometry changes */
    P_REF_CONTENT, P_OPT_VALUE, P_OPT_ADD, P_CODEC, P_PIX_FMT, P_DIGEST, P_PRECISION, P_INFER_SIZE,
    P_MODEL, P_AUDIO, P_SIZE, P_STREAM, P_PASSTHROUGH, /* these must change it */
    P_COUNT
};

/* Apply perturbation `k` to t (a copy of the film plan `p` came from). Returns false when it
 * does not apply to this film (e.g. no options to reorder). */
static bool perturb(struct tfilm *t, enum perturb k, const struct vf_plan *p, size_t *changed_shot)
{
    struct vf_film *f = &t->film;
    *changed_shot = SIZE_MAX;
    switch (k) {
    case P_OUTPUT: f->output = "elsewhere/other.mov"; return true;
    case P_WORK_DIR: f->work_dir = "/scratch/w"; return true;
    case P_THRESHOLD: f->threshold = 0.7; return true;
    case P_MIN_LENGTH: f->min_shot_length = 99; return true;
    case P_PATHS:
        f->path = "/other/film.yaml";
        f->input = "/moved/reel.mkv";
        snprintf(t->info.path, sizeof t->info.path, "/moved/reel.mkv");
        return true;
    case P_OPT_ORDER:
        if (f->n_encode_options < 2)
            return false;
        for (size_t i = 0; i + 1 < f->n_encode_options; i += 2) {
            struct vf_encode_option o = t->opts[i];
            t->opts[i] = t->opts[i + 1];
            t->opts[i + 1] = o;
        }
        return true;
    case P_SAME_CONTENT: { /* every use of file 0 now names its copy DUP */
        bool any = false;
        for (size_t i = 0; i < f->n_shots; i++)
            if (t->shots[i].reference == pool_path[0])
                t->shots[i].reference = pool_path[DUP], any = true;
        for (size_t i = 0; i < f->n_references; i++)
            if (t->refs[i].image == pool_path[0])
                t->refs[i].image = pool_path[DUP], any = true;
        if (f->default_reference == pool_path[0])
            f->default_reference = pool_path[DUP], any = true;
        return any;
    }
    case P_LIST_ORDER:
        if (f->n_shots < 2)
            return false;
        struct vf_shot_spec s = t->shots[0];
        memmove(&t->shots[0], &t->shots[1], (f->n_shots - 1) * sizeof s);
        t->shots[f->n_shots - 1] = s;
        return true;
    case P_WARMUP: f->warmup = f->warmup + 1 + rnd(20); return true;
    case P_LENGTH: /* chunks.length, or the rank count auto chunking plans for */
        if (f->chunk_length == VF_CHUNK_AUTO && rnd(2))
            f->ranks += 1 + rnd(100);
        else
            f->chunk_length = f->chunk_length + 1 + rnd(50);
        return true;
    case P_REF_CONTENT: { /* one shot's reference -> an image with other bytes */
        size_t k = (size_t)rnd((int64_t)p->n_shots);
        const char *old = p->shots[k].reference;
        const char *nu = old;
        while (strcmp(content_of(nu), content_of(old)) == 0)
            nu = rand_pool();
        struct expect e;
        expect_of(&e, t);
        if (e.origin[k] == 'l') {
            t->shots[e.entry[k]].reference = (char *)nu;
            *changed_shot = k;
        } else if (e.origin[k] == 'r') {
            t->refs[e.entry[k]].image = (char *)nu;
            *changed_shot = k;
        } else {
            f->default_reference = (char *)nu;
        }
        return true;
    }
    case P_OPT_VALUE:
        if (!f->n_encode_options)
            return false;
        t->opts[rnd((int64_t)f->n_encode_options)].value = "different";
        return true;
    case P_OPT_ADD:
        if (f->n_encode_options == MAX_OPTS)
            return false;
        t->opts[f->n_encode_options++] = (struct vf_encode_option){"x265-params", "aq-mode=3"};
        tfilm_fix(t);
        return true;
    case P_CODEC: f->codec = strcmp(f->codec, "dnxhd") ? "dnxhd" : "ffv1"; return true;
    case P_PIX_FMT: /* to a format no codec takes by default */
        f->pix_fmt = f->pix_fmt && !strcmp(f->pix_fmt, "yuv444p12le") ? "gbrp12le" : "yuv444p12le";
        return true;
    case P_PIX_FMT_DEFAULT: { /* unset <-> the codec's default for the film, written out */
        struct vf_encode_spec spec;
        vf_shard_encode_spec(f, &spec);
        spec.pix_fmt = NULL;
        const char *def = vf_shard_encode_pix_fmt(&spec, &t->info);
        assert_non_null(def);
        if (f->pix_fmt && strcmp(f->pix_fmt, def))
            return false;
        f->pix_fmt = f->pix_fmt ? NULL : (char *)def;
        return true;
    }
    case P_DIGEST: t->info.video_digest[rnd(64)] ^= 1; return true;
    case P_PRECISION: f->precision = (enum vf_precision)((f->precision + 1 + rnd(3)) % 4); return true;
    case P_INFER_SIZE: f->inference_w += 8; f->inference_h = f->inference_h ? f->inference_h : 216; return true;
    case P_MODEL:
        f->model = f->model == NULL ? model_path[rnd(2)] : f->model == model_path[0] ? model_path[1] : NULL;
        return true;
    case P_AUDIO: f->audio = f->audio == VF_AUDIO_COPY ? VF_AUDIO_NONE : VF_AUDIO_COPY; return true;
    case P_SIZE: t->info.height += 2; return true;
    case P_STREAM: perturb_stream(&t->info); return true;
    case P_PASSTHROUGH:
        f->passthrough = f->passthrough == VF_PASSTHROUGH_AUTO ? VF_PASSTHROUGH_OFF : VF_PASSTHROUGH_AUTO;
        return true;
    case P_COUNT: break;
    }
    return false;
}

static void plan_random_films_keep_invariants_and_hash_contract(void **state)
{
    (void)state;
    struct tfilm *t = malloc(sizeof *t), *u = malloc(sizeof *u);
    assert_non_null(t);
    assert_non_null(u);
    size_t n_ok = 0, n_missing = 0, n_changed = 0, n_same = 0, applied[P_COUNT] = {0};
    size_t n_chunks_total = 0;
    for (int it = 0; it < N_FILMS; it++) {
        rand_film(t);
        struct expect e;
        expect_of(&e, t);
        struct vf_plan *p = NULL, *q = NULL;
        struct vf_error err = {0};
        int rc = plan_of(&p, t, &err);
        if (e.missing) { /* some shot has no reference: an error naming it */
            assert_int_equal(rc, VF_EINVAL);
            assert_null(p);
            assert_non_null(strstr(err.msg, "no colour reference"));
            assert_non_null(strstr(err.msg, "default_reference"));
            n_missing++;
            continue;
        }
        if (rc != 0)
            fail_msg("film %d: unexpected error: %s", it, err.msg);
        check_plan(p, t, &e);
        n_ok++;
        n_chunks_total += p->n_chunks;

        /* deterministic */
        assert_int_equal(plan_of(&q, t, &err), 0);
        assert_string_equal(p->hash, q->hash);
        for (size_t i = 0; i < p->n_chunks; i++)
            assert_string_equal(p->chunks[i].hash, q->chunks[i].hash);
        vf_shard_plan_destroy(&q);
        assert_null(q);

        /* one perturbation */
        enum perturb k = (enum perturb)rnd(P_COUNT);
        tfilm_copy(u, t);
        size_t changed_shot;
        if (!perturb(u, k, p, &changed_shot)) {
            vf_shard_plan_destroy(&p);
            continue;
        }
        applied[k]++;
        struct expect eu;
        expect_of(&eu, u);
        rc = plan_of(&q, u, &err);
        if (rc != 0)
            fail_msg("film %d, perturbation %d: unexpected error: %s", it, (int)k, err.msg);
        check_plan(q, u, &eu);
        bool differ = compare_hashes(p, t, q, u);
        bool same_geometry = p->n_chunks == q->n_chunks;
        for (size_t i = 0; same_geometry && i < p->n_chunks; i++)
            same_geometry = p->chunks[i].warm_start == q->chunks[i].warm_start &&
                            p->chunks[i].start == q->chunks[i].start &&
                            p->chunks[i].end == q->chunks[i].end;
        if (k < P_WARMUP)
            assert_false(differ);
        else if (k == P_WARMUP || k == P_LENGTH)
            assert_int_equal(differ, !same_geometry);
        else
            assert_true(differ);
        if (k == P_AUDIO) /* merge-only: no segment needs redoing */
            for (size_t i = 0; i < p->n_chunks; i++)
                assert_string_equal(p->chunks[i].hash, q->chunks[i].hash);
        if (changed_shot != SIZE_MAX) /* one shot's reference: only that shot's chunks change */
            for (size_t i = 0; i < p->n_chunks; i++)
                assert_int_equal(strcmp(p->chunks[i].hash, q->chunks[i].hash) != 0,
                                 (size_t)p->chunks[i].shot == changed_shot);
        differ ? n_changed++ : n_same++;
        vf_shard_plan_destroy(&q);
        vf_shard_plan_destroy(&p);
    }
    printf("plan: %d random films: %zu planned (%zu chunks), %zu refused for a missing reference; "
           "perturbed: %zu changed the hash, %zu did not\n",
           N_FILMS, n_ok, n_chunks_total, n_missing, n_changed, n_same);
    for (int k = 0; k < P_COUNT; k++)
        assert_true(applied[k] > 0); /* every perturbation was exercised */
    assert_true(n_ok > N_FILMS / 2);
    assert_true(n_missing > 0);
    free(t);
    free(u);
}

/* ---- errors ------------------------------------------------------------------------------- */

/* A list film with shots [0,100) [100,250) [250,400) at lines 10, 11, 12. */
static void list_film(struct tfilm *t)
{
    tfilm_base(t, 400);
    t->mode = MODE_LIST;
    int64_t b[] = {0, 100, 250, 400};
    for (int i = 0; i < 3; i++)
        t->shots[i] = (struct vf_shot_spec){.start = b[i], .end = b[i + 1], .reference = pool_path[i], .pos = {10 + i, 7}};
    t->film.n_shots = 3;
    tfilm_fix(t);
}

static void expect_error(const struct tfilm *t, int code, const char *const *needles)
{
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    int rc = plan_of(&p, t, &err);
    if (rc != code)
        fail_msg("expected error %d, got %d: %s", code, rc, err.msg);
    assert_null(p);
    for (; *needles; needles++)
        if (!strstr(err.msg, *needles))
            fail_msg("error message lacks \"%s\":\n%s", *needles, err.msg);
}

static void plan_rejects_overlapping_shots(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.shots[1].end = 260;
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:12:7", "shots.list[2]", "overlaps",
                                                  "shots.list[1]", "film.yaml:11:7", "[250, 260)", NULL});
}

static void plan_rejects_gap_between_shots(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.shots[1].end = 240;
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:12:7", "gap", "[240, 250)",
                                                  "shots.list[1]", NULL});
}

static void plan_rejects_shot_past_end(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.shots[2].end = 401;
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:12:7", "shots.list[2]", "past the end",
                                                  "400 frames", NULL});
}

static void plan_rejects_list_not_reaching_the_end(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.shots[2].end = 390;
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:12:7", "[390, 400)", "in no shot", NULL});
}

static void plan_rejects_list_not_starting_at_zero(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.shots[0].start = 5;
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:10:7", "[0, 5)", "start it at 0", NULL});
}

static void plan_rejects_empty_shot(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.shots[1].end = 100;
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:11:7", "empty", NULL});
}

static void plan_rejects_shot_without_reference(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 500);
    t.mode = MODE_CUTS;
    t.film.detect = VF_DETECT_AUTO;
    t.cuts[0] = 100;
    t.cuts[1] = 250;
    t.n_cuts = 2;
    t.refs[0] = (struct vf_reference_spec){.frame = 10, .image = pool_path[0], .pos = {30, 5}};
    t.film.n_references = 1;
    tfilm_fix(&t);
    expect_error(&t, VF_EINVAL, (const char *[]){"2 of 3 shots have no colour reference",
                                                  "shot 1 (frames [100, 250), 0:00:04.000-0:00:10.000",
                                                  "shot 2 (frames [250, 500)", "default_reference",
                                                  NULL});
}

static void plan_rejects_reference_frame_past_end(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 500);
    t.film.default_reference = pool_path[0];
    t.refs[0] = (struct vf_reference_spec){.frame = 500, .image = pool_path[1], .pos = {31, 5}};
    t.film.n_references = 1;
    tfilm_fix(&t);
    expect_error(&t, VF_EINVAL, (const char *[]){"film.yaml:31:5", "references[0]", "500 frames", NULL});
}

static void plan_rejects_missing_reference_file(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 500);
    t.film.default_reference = "/nonexistent/vaefarm/ref.png";
    expect_error(&t, VF_ENOENT, (const char *[]){"/nonexistent/vaefarm/ref.png", "shot 0", NULL});
}

static void plan_rejects_bad_cuts(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 500);
    t.mode = MODE_CUTS;
    t.film.detect = VF_DETECT_AUTO;
    t.film.default_reference = pool_path[0];
    t.cuts[0] = 300;
    t.cuts[1] = 200;
    t.n_cuts = 2;
    expect_error(&t, VF_EINVAL, (const char *[]){"ascending", NULL});
    t.cuts[1] = 500;
    expect_error(&t, VF_EINVAL, (const char *[]){"outside", NULL});
}

/* Random valid lists with one random defect: always refused, naming an entry and its line. */
static void plan_random_broken_lists_are_refused(void **state)
{
    (void)state;
    struct tfilm t;
    size_t kinds[4] = {0};
    for (int it = 0; it < N_ERROR_FILMS; it++) {
        do
            rand_film(&t);
        while (t.mode != MODE_LIST || t.film.n_shots < 2 || t.info.frames < 4);
        for (size_t i = 0; i < t.film.n_shots; i++)
            if (!t.shots[i].reference)
                t.shots[i].reference = pool_path[1];
        size_t i = (size_t)rnd((int64_t)t.film.n_shots);
        struct vf_shot_spec *s = &t.shots[i];
        int kind = (int)rnd(4);
        kinds[kind]++;
        switch (kind) {
        case 0: s->end += 1 + rnd(5); break;             /* overlap, or past the end */
        case 1: s->end -= 1 + rnd(s->end - s->start); break; /* gap, short, or empty */
        case 2: s->start -= 1 + rnd(5); break;           /* overlap or before 0 */
        case 3: t.shots[(i + 1) % t.film.n_shots] = *s; break; /* duplicate entry */
        }
        struct vf_plan *p = NULL;
        struct vf_error err = {0};
        int rc = plan_of(&p, &t, &err);
        if (rc != VF_EINVAL)
            fail_msg("broken list (kind %d) not refused: rc %d", kind, rc);
        assert_null(p);
        assert_non_null(strstr(err.msg, "shots.list["));
        assert_non_null(strstr(err.msg, "film.yaml:"));
    }
    for (int k = 0; k < 4; k++)
        assert_true(kinds[k] > 0);
}

/* ---- chunking and references by hand ------------------------------------------------------ */

static void plan_balances_chunks_and_warms_up_inside_the_shot(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 1000);
    t.mode = MODE_CUTS;
    t.film.detect = VF_DETECT_AUTO;
    t.cuts[0] = 10; /* shots [0,10) [10,1000) */
    t.n_cuts = 1;
    t.film.default_reference = pool_path[0];
    t.film.chunk_length = 400;
    t.film.warmup = 16;
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    assert_int_equal(plan_of(&p, &t, &err), 0);
    /* 990 frames, L = 400: 3 chunks of 330, not 400 + 400 + 190 */
    assert_int_equal(p->n_chunks, 4);
    int64_t want[][3] = {{0, 0, 10}, {10, 10, 340}, {324, 340, 670}, {654, 670, 1000}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(p->chunks[i].warm_start, want[i][0]);
        assert_int_equal(p->chunks[i].start, want[i][1]);
        assert_int_equal(p->chunks[i].end, want[i][2]);
    }
    vf_shard_plan_destroy(&p);

    t.film.chunk_length = 4; /* shot 0: 10 frames -> 4, 3, 3; warm-up cut at the shot start */
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_int_equal(p->chunks[1].start, 4);
    assert_int_equal(p->chunks[1].warm_start, 0);
    assert_int_equal(p->chunks[2].start, 7);
    assert_int_equal(p->chunks[2].warm_start, 0);
    assert_int_equal(p->chunks[3].start, 10);
    assert_int_equal(p->chunks[3].warm_start, 10);
    bool warned = false;
    for (size_t i = 0; i < p->n_warnings; i++)
        warned |= strstr(p->warnings[i], "warm-up shorter") != NULL;
    assert_true(warned);
    vf_shard_plan_destroy(&p);
    vf_shard_plan_destroy(&p); /* NULL-safe */
}

static bool has_warning(const struct vf_plan *p, const char *needle)
{
    for (size_t i = 0; i < p->n_warnings; i++)
        if (strstr(p->warnings[i], needle))
            return true;
    return false;
}

/* An interlaced input is warned of (what vaefarm does with its fields, and the fix); a
 * progressive or unknown one is not. */
static void plan_warns_of_an_interlaced_input(void **state)
{
    (void)state;
    static const char *const orders[] = {"progressive", "unknown", "tt", "bb", "tb", "bt"};
    for (size_t i = 0; i < sizeof orders / sizeof *orders; i++) {
        struct tfilm t;
        tfilm_base(&t, 48);
        t.film.default_reference = pool_path[0];
        snprintf(t.info.field_order, sizeof t.info.field_order, "%s", orders[i]);
        struct vf_plan *p = NULL;
        struct vf_error err = {0};
        assert_int_equal(plan_of(&p, &t, &err), 0);
        char want[64];
        snprintf(want, sizeof want, "reel1.mkv is interlaced (field order %s)", orders[i]);
        assert_int_equal(has_warning(p, want), i >= 2);
        assert_int_equal(has_warning(p, "ffmpeg -vf bwdif"), i >= 2);
        vf_shard_plan_destroy(&p);
    }
}

/* Video streams besides the coloured one (a second angle, a cover picture) are named in a
 * warning, as the colour film leaves them out; audio and subtitles are not. */
static void plan_warns_of_other_video_streams(void **state)
{
    (void)state;
    {   /* a film 5 frames long is one short shot, but no spurious cut: nothing to warn of */
        struct tfilm t;
        tfilm_base(&t, 5);
        t.film.default_reference = pool_path[0];
        struct vf_plan *p = NULL;
        struct vf_error err = {0};
        assert_int_equal(plan_of(&p, &t, &err), 0);
        assert_int_equal(p->n_warnings, 0);
        vf_shard_plan_destroy(&p);
    }
    struct vf_stream_info st[4] = {
        {.index = 0, .kind = VF_STREAM_AUDIO, .codec = "aac"},
        {.index = 1, .kind = VF_STREAM_VIDEO, .codec = "h264"},
        {.index = 2, .kind = VF_STREAM_SUBTITLE, .codec = "subrip"},
        {.index = 3, .kind = VF_STREAM_VIDEO, .codec = "png"},
    };
    for (int n = 3; n <= 4; n++) {
        struct tfilm t;
        tfilm_base(&t, 48);
        t.film.default_reference = pool_path[0];
        t.info.video_stream = 1;
        t.info.streams = st;
        t.info.n_streams = n;
        struct vf_plan *p = NULL;
        struct vf_error err = {0};
        assert_int_equal(plan_of(&p, &t, &err), 0);
        assert_int_equal(has_warning(p, "reel1.mkv has 1 video stream(s) besides #1, the one "
                                        "vaefarm colours: #3 (png)"), n == 4);
        assert_false(has_warning(p, "#0 (aac)"));
        vf_shard_plan_destroy(&p);
    }
}

/* L = 10, W = 8, an 11-frame shot: balanced chunks of 6 + 5, the second warmed up by only 6
 * frames although chunks.length (10) exceeds the warm-up. The advice must say why and what
 * works: chunks.length >= 2 * warmup (16), or warmup <= 6; following either silences it. */
static void plan_short_warmup_warning_gives_working_advice(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 11);
    t.film.default_reference = pool_path[0];
    t.film.chunk_length = 10;
    t.film.warmup = 8;
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_int_equal(p->n_chunks, 2);
    assert_int_equal(p->chunks[1].start, 6);
    assert_int_equal(p->chunks[1].warm_start, 0);
    const char *w = NULL;
    for (size_t i = 0; i < p->n_warnings; i++)
        if (strstr(p->warnings[i], "warm-up shorter"))
            w = p->warnings[i];
    if (!w) {
        fail_msg("no warm-up warning for an 11-frame shot at chunks.length 10, warmup 8");
        return;
    }
    print_message("plan: %s\n", w);
    static const char *const needles[] = {"as short as 6 frames", "chunks.length = 10",
                                          "balanced", "2 chunks of 5-6 frames",
                                          "at least 2 x chunks.warmup = 16",
                                          "lower chunks.warmup to 6", NULL};
    for (const char *const *n = needles; *n; n++)
        if (!strstr(w, *n))
            fail_msg("warning lacks \"%s\":\n%s", *n, w);
    assert_null(strstr(w, "at least 8"));
    vf_shard_plan_destroy(&p);

    /* the advice works: either fix silences it */
    t.film.chunk_length = 16;
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_false(has_warning(p, "warm-up shorter"));
    vf_shard_plan_destroy(&p);
    t.film.chunk_length = 10;
    t.film.warmup = 6;
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_false(has_warning(p, "warm-up shorter"));
    vf_shard_plan_destroy(&p);

    /* and 2 * warmup suffices for every shot length */
    for (int64_t n = 1; n <= 200; n++) {
        tfilm_base(&t, n);
        t.film.default_reference = pool_path[0];
        t.film.chunk_length = 16;
        t.film.warmup = 8;
        assert_int_equal(plan_of(&p, &t, &err), 0);
        assert_false(has_warning(p, "warm-up shorter"));
        vf_shard_plan_destroy(&p);
    }
}

static void plan_assigns_references_first_wins_and_warns(void **state)
{
    (void)state;
    struct tfilm t;
    tfilm_base(&t, 300);
    t.mode = MODE_CUTS;
    t.film.detect = VF_DETECT_AUTO;
    t.cuts[0] = 100;
    t.cuts[1] = 104; /* a 4-frame shot */
    t.n_cuts = 2;
    t.refs[0] = (struct vf_reference_spec){.frame = 50, .image = pool_path[1], .pos = {40, 5}};
    t.refs[1] = (struct vf_reference_spec){.frame = 20, .image = pool_path[2], .pos = {41, 5}};  /* same shot: ignored */
    t.refs[2] = (struct vf_reference_spec){.frame = 200, .image = pool_path[3], .pos = {42, 5}};
    t.film.n_references = 3;
    t.film.default_reference = pool_path[4];
    tfilm_fix(&t);
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_int_equal(p->n_shots, 3);
    assert_ptr_equal(p->shots[0].reference, pool_path[1]);
    assert_ptr_equal(p->shots[1].reference, pool_path[4]); /* default */
    assert_ptr_equal(p->shots[2].reference, pool_path[3]);
    assert_true(has_warning(p, "film.yaml:41:5: references[1]"));
    assert_true(has_warning(p, "first one wins"));
    assert_true(has_warning(p, "only 4 frame(s) long"));
    assert_true(has_warning(p, "check the cuts, or raise shots.threshold/shots.min_length"));
    vf_shard_plan_destroy(&p);
    /* the same cuts from an EDL: detection's settings are no remedy there */
    t.film.edl = "cuts.edl";
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_true(has_warning(p, "only 4 frame(s) long: a flash or a spurious cut? check the EDL's events around it"));
    assert_false(has_warning(p, "shots.threshold"));
    vf_shard_plan_destroy(&p);
    t.film.edl = NULL;
    /* ranks: with a fixed chunk length is read by nothing: said, not silently ignored */
    t.film.ranks = 4;
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_true(has_warning(p, "ranks: 4 is read only with chunks.length: auto"));
    vf_shard_plan_destroy(&p);
    t.film.ranks = 0;

    /* with a shot list, references entries for shots with their own reference are unused */
    list_film(&t);
    t.shots[1].reference = NULL;
    t.refs[0] = (struct vf_reference_spec){.frame = 50, .image = pool_path[1], .pos = {40, 5}};
    t.refs[1] = (struct vf_reference_spec){.frame = 150, .image = pool_path[3], .pos = {41, 5}};
    t.film.n_references = 2;
    tfilm_fix(&t);
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_ptr_equal(p->shots[0].reference, pool_path[0]);
    assert_ptr_equal(p->shots[1].reference, pool_path[3]);
    assert_true(has_warning(p, "references[0] {frame: 50} is not used"));
    vf_shard_plan_destroy(&p);
}

/* The serialisation is part of the on-disk contract (plan.json, the journal): this pins it.
 * If it fails after an intended change, bump PLAN_FORMAT in shard/plan.c and update the value. */
static void plan_hash_is_pinned(void **state)
{
    (void)state;
    struct tfilm t;
    list_film(&t);
    t.film.chunk_length = 120;
    t.opts[0] = (struct vf_encode_option){"level", "3"};
    t.opts[1] = (struct vf_encode_option){"g", "1"};
    t.film.n_encode_options = 2;
    tfilm_fix(&t);
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    assert_int_equal(plan_of(&p, &t, &err), 0);
    printf("plan: pinned film hash %s (%zu chunks)\n", p->hash, p->n_chunks);
    assert_int_equal(p->n_chunks, 1 + 2 + 2);
    assert_string_equal(p->hash, PINNED_HASH);
    vf_shard_plan_destroy(&p);
}

/* ---- the bound and auto chunking (docs/PLAN.md "Auto chunking") --------------------------- */

/* A plan holding only shots of the given lengths and a warm-up: what vf_shard_plan_bound
 * reads. */
struct shots_only {
    struct vf_shot s[16];
    struct vf_plan p;
};

static void shots_only(struct shots_only *o, const int64_t *len, size_t n, int64_t W)
{
    memset(o, 0, sizeof *o);
    int64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        o->s[i] = (struct vf_shot){.start = at, .end = at + len[i]};
        at += len[i];
    }
    o->p = (struct vf_plan){.frames = at, .shots = o->s, .n_shots = n, .warmup = W};
}

/* Cost of the piece [a, b) of a shot: its kept frames, plus min(W, a) warm-up when a > 0. */
static int64_t piece_cost(int64_t a, int64_t b, int64_t W) { return b - a + (a ? (a < W ? a : W) : 0); }

/* The least extra work (warm-up) over every way to cut a shot of L frames into pieces costing
 * at most T each, by trying all 2^(L-1) sets of cut points; -1 when none exists. */
static int64_t brute_least_extra(int64_t L, int64_t T, int64_t W)
{
    int64_t best = -1;
    for (uint32_t mask = 0; mask < (1u << (L - 1)); mask++) {
        int64_t a = 0, extra = 0;
        bool ok = true;
        for (int64_t f = 1; f <= L && ok; f++) {
            if (f < L && !(mask & (1u << (f - 1))))
                continue; /* no cut before frame f */
            ok = piece_cost(a, f, W) <= T;
            extra += a ? (a < W ? a : W) : 0;
            a = f;
        }
        if (ok && (best < 0 || extra < best))
            best = extra;
    }
    return best;
}

/* The definition, by brute force: the smallest T such that every shot can be cut into pieces
 * costing at most T and T x R >= frames + the least warm-up those cuts need. */
static int64_t brute_bound(const int64_t *len, size_t n, int64_t W, int64_t R)
{
    int64_t frames = 0;
    for (size_t i = 0; i < n; i++)
        frames += len[i];
    for (int64_t T = 1;; T++) {
        int64_t work = frames;
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            int64_t e = brute_least_extra(len[i], T, W);
            ok = e >= 0;
            work += e;
        }
        if (ok && T * R >= work)
            return T;
    }
}

/* The best makespan of any cutting and any assignment to R ranks, by brute force (tiny films). */
static int64_t brute_opt(const int64_t *len, size_t n, int64_t W, int64_t R)
{
    int64_t best = INT64_MAX, frames = 0;
    for (size_t i = 0; i < n; i++)
        frames += len[i];
    uint32_t bits = (uint32_t)(frames - (int64_t)n); /* cut points, all shots together */
    for (uint32_t mask = 0; mask < (1u << bits); mask++) {
        int64_t cost[16];
        size_t np = 0;
        uint32_t b = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t a = 0;
            for (int64_t f = 1; f <= len[i]; f++) {
                if (f < len[i] && !(mask & (1u << b++)))
                    continue;
                cost[np++] = piece_cost(a, f, W);
                a = f;
            }
        }
        uint32_t assign = 1; /* every assignment of the np pieces to R ranks */
        for (size_t k = 0; k < np; k++)
            assign *= (uint32_t)R;
        for (uint32_t code = 0; code < assign; code++) {
            int64_t load[8] = {0}, m = 0;
            uint32_t c = code;
            for (size_t k = 0; k < np; k++, c /= (uint32_t)R) {
                load[c % (uint32_t)R] += cost[k];
                m = load[c % (uint32_t)R] > m ? load[c % (uint32_t)R] : m;
            }
            best = m < best ? m : best;
        }
    }
    return best;
}

static void bound_matches_brute_force(void **state)
{
    (void)state;
    int tight = 0;
    for (int it = 0; it < 3000; it++) {
        size_t n = 1 + (size_t)rnd(4);
        int64_t len[4], W = rnd(6), R = 1 + rnd(6);
        for (size_t i = 0; i < n; i++)
            len[i] = 1 + rnd(12);
        struct shots_only o;
        shots_only(&o, len, n, W);
        int64_t b = vf_shard_plan_bound(&o.p, (int)R), want = brute_bound(len, n, W, R);
        if (b != want)
            fail_msg("shots %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " (%zu), W %" PRId64
                     ", R %" PRId64 ": bound %" PRId64 ", brute force %" PRId64,
                     len[0], len[1], len[2], len[3], n, W, R, b, want);
        /* no cutting and schedule does better (tiny films: every cutting, every assignment) */
        int64_t frames = 0;
        for (size_t i = 0; i < n; i++)
            frames += len[i];
        if (frames - (int64_t)n <= 7 && R <= 3) {
            int64_t opt = brute_opt(len, n, W, R);
            assert_true(b <= opt);
            tight += b == opt;
        }
    }
    assert_true(tight > 100); /* and it is often reached */
    struct shots_only o;
    shots_only(&o, (int64_t[]){10}, 1, 0);
    assert_int_equal(vf_shard_plan_bound(&o.p, 0), -1);
    assert_int_equal(vf_shard_plan_bound(&o.p, 4), 3); /* 10 frames, no warm-up: ceil(10 / 4) */
    o.p.warmup = 16; /* now any cut costs 16 more than its kept frames: cheaper not to cut */
    assert_int_equal(vf_shard_plan_bound(&o.p, 4), 10);
}

/* Log-normal shot lengths, mean `mean` frames, summing to exactly `frames` (the last shot takes
 * the rest; shots of at least 12 frames), like scripts/make_long_film.py. */
static size_t lognormal_shots(int64_t *len, size_t max, int64_t frames, double mean, double sigma)
{
    double mu = log(mean) - sigma * sigma / 2;
    size_t n = 0;
    int64_t total = 0;
    while (total < frames) {
        assert_true(n < max);
        double u1 = ((double)(rng_next() >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(rng_next() >> 11) / 9007199254740992.0;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        int64_t l = (int64_t)llround(exp(mu + sigma * z));
        l = l < 12 ? 12 : l;
        if (l >= frames - total || frames - total - l < 12)
            l = frames - total;
        len[n++] = l;
        total += l;
    }
    return n;
}

/* A list film of the given shots (default reference), planned with chunks.length L. */
static struct vf_plan *plan_shots(const int64_t *len, size_t n, int64_t L, int64_t W, int64_t R)
{
    struct tfilm *t = malloc(sizeof *t);
    struct vf_shot_spec *spec = calloc(n, sizeof *spec);
    assert_non_null(t);
    assert_non_null(spec);
    int64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        spec[i] = (struct vf_shot_spec){.start = at, .end = at + len[i], .pos = {10 + (int)i, 7}};
        at += len[i];
    }
    tfilm_base(t, at);
    t->film.shots = spec;
    t->film.n_shots = n;
    t->film.default_reference = pool_path[0];
    t->film.chunk_length = L;
    t->film.warmup = W;
    t->film.ranks = R;
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    if (vf_shard_plan_create(&p, &t->film, &t->info, NULL, 0, &err) != 0)
        fail_msg("plan: %s", err.msg);
    free(spec);
    free(t);
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The goal of issue 8: on 2-hour films (172,800 frames at 24 fps) with log-normal shots of
 * mean 8 s, chunks.length auto's simulated makespan is within 95% of the bound at 16 to 1024
 * ranks, where fixed 240-frame chunks fall to about 70% at 1024. Also: every chunk lies in
 * its shot with the warm-up rule, and planning takes well under a second. */
static void auto_reaches_95_percent_of_the_bound(void **state)
{
    (void)state;
    static int64_t len[4000];
    const int ranks[] = {16, 64, 256, 1024};
    const double sigmas[] = {0.8, 1.0, 1.2};
    double worst = 1, slowest = 0;
    rng_state = 0x10f1; /* the same films whatever ran before */
    for (size_t si = 0; si < 3; si++) {
        size_t n = lognormal_shots(len, 4000, 172800, 192.0, sigmas[si]);
        for (size_t ri = 0; ri < 4; ri++) {
            int R = ranks[ri];
            double t0 = now_s();
            struct vf_plan *p = plan_shots(len, n, VF_CHUNK_AUTO, 16, R);
            double dt = now_s() - t0;
            slowest = dt > slowest ? dt : slowest;
            int64_t bound = vf_shard_plan_bound(p, R), m = vf_shard_plan_simulate(p, R);
            double ratio = (double)bound / (double)m;
            printf("auto: sigma %.1f, %zu shots, %4d ranks: %zu chunks, makespan %" PRId64
                   ", bound %" PRId64 ": %.1f%% (planned in %.0f ms)\n",
                   sigmas[si], n, R, p->n_chunks, m, bound, 100 * ratio, 1e3 * dt);
            assert_true(ratio >= 0.95);
            worst = ratio < worst ? ratio : worst;
            assert_int_equal(p->auto_ranks, R);
            for (size_t i = 0; i < p->n_chunks; i++) {
                const struct vf_chunk *c = &p->chunks[i];
                const struct vf_shot *s = &p->shots[c->shot];
                assert_true(c->start >= s->start && c->end <= s->end && c->end > c->start);
                int64_t ws = c->start == s->start ? c->start
                             : c->start - 16 > s->start ? c->start - 16 : s->start;
                assert_int_equal(c->warm_start, ws);
                assert_true(c->end - c->start <= 2400); /* the cap */
            }
            if (si == 1 && R == 1024) { /* fixed 240-frame chunks, for contrast */
                struct vf_plan *q = plan_shots(len, n, 240, 16, 0);
                double fixed = (double)vf_shard_plan_bound(q, R) / vf_shard_plan_simulate(q, R);
                printf("fixed 240: %.1f%% at 1024 ranks\n", 100 * fixed);
                assert_true(fixed < 0.8);
                vf_shard_plan_destroy(&q);
            }
            vf_shard_plan_destroy(&p);
        }
    }
    printf("auto: worst %.1f%% of the bound; slowest plan %.0f ms\n", 100 * worst, 1e3 * slowest);
    assert_true(slowest < 5.0); /* < 0.1 s in a release build; generous for sanitizers */
}

/* Auto chunking is a function of the shot lengths, the warm-up and the rank count: the same
 * inputs give the same chunks and hashes; another rank count gives another cutting. One rank:
 * no cuts but the cap's. A rank count is required. */
static void auto_is_deterministic_and_follows_the_rank_count(void **state)
{
    (void)state;
    static int64_t len[1000];
    rng_state = 0xd37e;
    size_t n = lognormal_shots(len, 1000, 43200, 192.0, 1.0);
    struct vf_plan *a = plan_shots(len, n, VF_CHUNK_AUTO, 16, 300);
    struct vf_plan *b = plan_shots(len, n, VF_CHUNK_AUTO, 16, 300);
    struct vf_plan *c = plan_shots(len, n, VF_CHUNK_AUTO, 16, 301);
    assert_string_equal(a->hash, b->hash);
    assert_int_equal(a->n_chunks, b->n_chunks);
    for (size_t i = 0; i < a->n_chunks; i++) {
        assert_int_equal(a->chunks[i].warm_start, b->chunks[i].warm_start);
        assert_int_equal(a->chunks[i].end, b->chunks[i].end);
        assert_string_equal(a->chunks[i].hash, b->chunks[i].hash);
    }
    assert_int_equal(a->auto_target, b->auto_target);
    assert_string_not_equal(a->hash, c->hash);
    assert_true(a->n_chunks > n); /* 300 ranks on 30 minutes: long shots are cut */
    vf_shard_plan_destroy(&a);
    vf_shard_plan_destroy(&b);
    vf_shard_plan_destroy(&c);

    a = plan_shots(len, n, VF_CHUNK_AUTO, 16, 1);
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += (size_t)((len[i] + 2399) / 2400);
    assert_int_equal(a->n_chunks, want); /* one rank: whole shots, cut only at the cap */
    assert_int_equal(vf_shard_plan_simulate(a, 1), vf_shard_plan_bound(a, 1) + 16 * (int64_t)(want - n));
    vf_shard_plan_destroy(&a);

    struct tfilm t;
    tfilm_base(&t, 100);
    t.film.default_reference = pool_path[0];
    t.film.chunk_length = VF_CHUNK_AUTO;
    struct vf_plan *p = NULL;
    struct vf_error err = {0};
    assert_int_equal(plan_of(&p, &t, &err), VF_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err.msg, "set ranks:"));
    t.film.ranks = 4; /* one 100-frame shot on 4 ranks, no warm-up: 4 x 25 */
    t.film.warmup = 0;
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_int_equal(p->n_chunks, 4);
    assert_int_equal(vf_shard_plan_simulate(p, 4), 25);
    vf_shard_plan_destroy(&p);
    t.film.warmup = 4; /* with a warm-up of 4: the bound is 28 (100 + 3 x 4 = 112 = 4 x 28) */
    assert_int_equal(plan_of(&p, &t, &err), 0);
    assert_int_equal(vf_shard_plan_bound(p, 4), 28);
    assert_int_equal(vf_shard_plan_simulate(p, 4), 28);
    assert_int_equal(p->n_chunks, 4);
    assert_int_equal(p->chunks[0].end, 28);
    assert_int_equal(p->chunks[1].warm_start, 24);
    vf_shard_plan_destroy(&p);
}

/* ---- simulate ----------------------------------------------------------------------------- */

static void simulate_schedules_longest_first(void **state)
{
    (void)state;
    /* costs 5 4 3 3 3 on 2 ranks: LPT gives {5,3} {4,3,3} -> makespan 10 (optimal 9) */
    struct vf_chunk c[5] = {{.start = 0, .end = 3}, {.start = 3, .end = 8}, {.start = 8, .end = 11},
                            {.start = 11, .end = 15}, {.start = 15, .end = 18}};
    for (int i = 0; i < 5; i++)
        c[i].warm_start = c[i].start;
    struct vf_plan p = {.frames = 18, .chunks = c, .n_chunks = 5};
    assert_int_equal(vf_shard_plan_simulate(&p, 2), 10);
    assert_int_equal(vf_shard_plan_simulate(&p, 1), 18);
    assert_int_equal(vf_shard_plan_simulate(&p, 5), 5);
    assert_int_equal(vf_shard_plan_simulate(&p, 100), 5);
    assert_int_equal(vf_shard_plan_simulate(&p, 0), -1);
    c[1].warm_start = 0; /* warm-up frames cost too: 8 4 3 3 3 -> {8,3} {4,3,3} -> 11 */
    assert_int_equal(vf_shard_plan_simulate(&p, 2), 11);
}

static void simulate_random_plans_respect_bounds(void **state)
{
    (void)state;
    struct tfilm t;
    int n = 0;
    while (n < 500) {
        rand_film(&t);
        t.film.default_reference = pool_path[0];
        struct vf_plan *p = NULL;
        struct vf_error err = {0};
        assert_int_equal(plan_of(&p, &t, &err), 0);
        int64_t total = 0, longest = 0;
        for (size_t i = 0; i < p->n_chunks; i++) {
            int64_t c = p->chunks[i].end - p->chunks[i].warm_start;
            total += c;
            longest = c > longest ? c : longest;
        }
        assert_int_equal(vf_shard_plan_simulate(p, 1), total);
        for (int r = 2; r <= 64; r *= 2) {
            int64_t m = vf_shard_plan_simulate(p, r);
            assert_true(m >= (total + r - 1) / r);
            assert_true(m >= longest);
            assert_true(m <= total / r + longest); /* list scheduling's bound */
            assert_true(m <= total);
            /* no cutting of the shots does better than the bound, this one included */
            int64_t b = vf_shard_plan_bound(p, r);
            assert_true(b >= 1 && b <= m && b <= (m > longest ? m : longest));
        }
        vf_shard_plan_destroy(&p);
        n++;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plan_random_films_keep_invariants_and_hash_contract),
        cmocka_unit_test(plan_rejects_overlapping_shots),
        cmocka_unit_test(plan_rejects_gap_between_shots),
        cmocka_unit_test(plan_rejects_shot_past_end),
        cmocka_unit_test(plan_rejects_list_not_reaching_the_end),
        cmocka_unit_test(plan_rejects_list_not_starting_at_zero),
        cmocka_unit_test(plan_rejects_empty_shot),
        cmocka_unit_test(plan_rejects_shot_without_reference),
        cmocka_unit_test(plan_rejects_reference_frame_past_end),
        cmocka_unit_test(plan_rejects_missing_reference_file),
        cmocka_unit_test(plan_rejects_bad_cuts),
        cmocka_unit_test(plan_random_broken_lists_are_refused),
        cmocka_unit_test(plan_balances_chunks_and_warms_up_inside_the_shot),
        cmocka_unit_test(plan_assigns_references_first_wins_and_warns),
        cmocka_unit_test(plan_short_warmup_warning_gives_working_advice),
        cmocka_unit_test(plan_hash_is_pinned),
        cmocka_unit_test(simulate_schedules_longest_first),
        cmocka_unit_test(simulate_random_plans_respect_bounds),
        cmocka_unit_test(bound_matches_brute_force),
        cmocka_unit_test(auto_reaches_95_percent_of_the_bound),
        cmocka_unit_test(auto_is_deterministic_and_follows_the_rank_count),
        cmocka_unit_test(plan_warns_of_an_interlaced_input),
        cmocka_unit_test(plan_warns_of_other_video_streams),
    };
    return cmocka_run_group_tests(tests, setup_files, teardown_files);
}
