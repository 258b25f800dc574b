// needs: media
/*
 * tests/test_shots.c: scene-cut detection against the test films' known cuts, and CMX3600 EDL
 * import (shard.h "shots"; docs/SHOTS.md).
 *
 * Detection: each film of tests/MATERIAL.md is probed and its cuts detected with the film.yaml
 * defaults (threshold 0.3, min_length 12); a detected cut matches a true cut within +-1 frame
 * (each true cut matched at most once). Precision and recall must be >= 0.95 on the synthetic
 * films (film, hard, many); the real clip (city) is reported. Each prints
 *   shots: <film>: precision P recall R (tp/fp/fn)
 *
 * EDL: small EDL files written to a temporary folder, read against hand-made media infos.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shard/shard.h"

#define MIN_PRECISION 0.95
#define MIN_RECALL 0.95
#define TOLERANCE 1 /* frames */

static const char *data_dir(void)
{
    const char *d = getenv("VF_TEST_DATA");
    return d && *d ? d : VF_TEST_DATA;
}

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "%s/vf_test_shots_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- detection vs the films' true cuts ---------------------------------------------------- */

struct truth {
    int64_t frames;
    int64_t cuts[64];
    size_t n_cuts;
};

static void load_truth(struct truth *t, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/films/%s.json", data_dir(), name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root)
        fail_msg("%s: %s (line %d): make the test material first (ctest -R material)", path,
                 jerr.text, jerr.line);
    json_t *cuts = json_object_get(root, "cuts");
    assert_true(json_is_array(cuts));
    assert_true(json_array_size(cuts) <= 64);
    t->frames = json_integer_value(json_object_get(root, "frames"));
    t->n_cuts = json_array_size(cuts);
    for (size_t i = 0; i < t->n_cuts; i++)
        t->cuts[i] = json_integer_value(json_array_get(cuts, i));
    json_decref(root);
}

struct score {
    size_t tp, fp, fn;
    double precision, recall;
};

/* Match detected cuts to true ones within TOLERANCE, each true cut at most once. */
static struct score match(const int64_t *det, size_t n_det, const struct truth *t)
{
    bool used[64] = {false};
    struct score s = {0};
    for (size_t i = 0; i < n_det; i++) {
        size_t best = SIZE_MAX;
        for (size_t j = 0; j < t->n_cuts; j++) {
            int64_t d = llabs(det[i] - t->cuts[j]);
            if (!used[j] && d <= TOLERANCE && (best == SIZE_MAX || d < llabs(det[i] - t->cuts[best])))
                best = j;
        }
        if (best == SIZE_MAX)
            s.fp++;
        else
            used[best] = true, s.tp++;
    }
    s.fn = t->n_cuts - s.tp;
    s.precision = n_det ? (double)s.tp / (double)n_det : 1.0;
    s.recall = t->n_cuts ? (double)s.tp / (double)t->n_cuts : 1.0;
    return s;
}

static void print_cuts(const char *what, const int64_t *c, size_t n)
{
    printf("shots:   %s:", what);
    for (size_t i = 0; i < n; i++)
        printf(" %" PRId64, c[i]);
    printf("\n");
}

/* Detect the cuts of films/<name>_grey.mkv (or `file` when not NULL) and score them. */
static struct score detect_film(const char *name, const char *file, double threshold)
{
    struct truth t;
    load_truth(&t, name);
    char path[1024];
    if (file)
        snprintf(path, sizeof path, "%s", file);
    else
        snprintf(path, sizeof path, "%s/films/%s_grey.mkv", data_dir(), name);
    struct vf_media_info *info = NULL;
    struct vf_error err = {0};
    if (vf_shard_probe(&info, path, &err) < 0)
        fail_msg("probe: %s", err.msg);
    assert_int_equal(info->frames, t.frames);
    struct vf_shot_params p = {.threshold = threshold, .min_length = 12};
    int64_t *cuts = NULL;
    size_t n = 0;
    double *scores = NULL;
    double t0 = vf_now();
    if (vf_shard_detect_cuts(info, &p, &cuts, &n, &scores, &err) < 0)
        fail_msg("detect: %s", err.msg);
    double secs = vf_now() - t0;
    for (int64_t i = 0; i < info->frames; i++)
        assert_true(scores[i] >= 0.0 && scores[i] <= 1.0);
    for (size_t i = 1; i < n; i++)
        assert_true(cuts[i] - cuts[i - 1] >= p.min_length);
    struct score s = match(cuts, n, &t);
    printf("shots: %s: precision %.3f recall %.3f (%zu/%zu/%zu)%s  [%" PRId64 " frames, %.2f s]\n",
           name, s.precision, s.recall, s.tp, s.fp, s.fn, file ? " (modified copy)" : "",
           info->frames, secs);
    if (s.fp || s.fn) {
        print_cuts("true", t.cuts, t.n_cuts);
        print_cuts("detected", cuts, n);
    }
    /* the margin: the weakest true cut's score and the strongest other score */
    double weakest = 1.0, strongest_other = 0.0;
    for (int64_t i = 1; i < info->frames; i++) {
        bool near = false;
        for (size_t j = 0; j < t.n_cuts; j++)
            near |= llabs(i - t.cuts[j]) <= TOLERANCE;
        bool at = false;
        for (size_t j = 0; j < t.n_cuts; j++)
            at |= i == t.cuts[j];
        if (at && scores[i] < weakest)
            weakest = scores[i];
        if (!near && scores[i] > strongest_other)
            strongest_other = scores[i];
    }
    printf("shots: %s: weakest true cut scores %.3f, strongest other frame %.3f\n", name, weakest,
           strongest_other);
    free(scores);
    free(cuts);
    vf_shard_media_info_destroy(&info);
    return s;
}

static void detect_finds_cuts_in_film(void **state)
{
    (void)state;
    struct score s = detect_film("film", NULL, 0.3);
    assert_true(s.precision >= MIN_PRECISION);
    assert_true(s.recall >= MIN_RECALL);
}

static void detect_finds_like_brightness_cuts_and_ignores_fast_zoom(void **state)
{
    (void)state;
    struct score s = detect_film("hard", NULL, 0.3);
    assert_true(s.precision >= MIN_PRECISION);
    assert_true(s.recall >= MIN_RECALL);
}

static void detect_finds_many_short_shots(void **state)
{
    (void)state;
    struct score s = detect_film("many", NULL, 0.3);
    assert_true(s.precision >= MIN_PRECISION);
    assert_true(s.recall >= MIN_RECALL);
}

/* Real footage: reported, and its one cut must be found. */
static void detect_reports_city(void **state)
{
    (void)state;
    struct score s = detect_film("city", NULL, 0.3);
    assert_int_equal(s.tp, 1);
}

/* A 10-bit copy of "hard" gives the same cuts: bit depth is normalised away. */
static void detect_handles_10_bit_luma(void **state)
{
    (void)state;
    char out[512], cmd[2048];
    snprintf(out, sizeof out, "%s/hard_gray10.mkv", tmpdir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -i '%s/films/hard_grey.mkv' -map 0:v "
             "-vf format=gray10le -c:v ffv1 -level 3 -pix_fmt gray10le '%s'",
             data_dir(), out);
    if (system(cmd) != 0)
        fail_msg("could not make a 10-bit film with: %s", cmd);
    struct score s = detect_film("hard", out, 0.3);
    assert_true(s.precision >= MIN_PRECISION);
    assert_true(s.recall >= MIN_RECALL);
}

/* A single white frame (a flash) and a single black one (a damaged frame) inside a shot of
 * "film" are not cuts; every true cut is still found. */
static void detect_ignores_single_frame_flashes(void **state)
{
    (void)state;
    char out[512], cmd[2048];
    snprintf(out, sizeof out, "%s/film_flash.mkv", tmpdir);
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -i '%s/films/film_grey.mkv' -map 0:v "
             "-vf \"geq=lum='if(eq(N,100),235,if(eq(N,170),16,lum(X,Y)))'\" -c:v ffv1 -level 3 "
             "-pix_fmt gray '%s'",
             data_dir(), out);
    if (system(cmd) != 0)
        fail_msg("could not make a film with flashes with: %s", cmd);
    struct score s = detect_film("film", out, 0.3);
    assert_int_equal(s.fp, 0);
    assert_int_equal(s.fn, 0);
}

static void detect_rejects_bad_threshold(void **state)
{
    (void)state;
    struct vf_media_info info = {.frames = 10, .fps_num = 25, .fps_den = 1};
    struct vf_shot_params p = {.threshold = 0.0, .min_length = 12};
    int64_t *cuts = NULL;
    size_t n = 0;
    struct vf_error err = {0};
    assert_int_equal(vf_shard_detect_cuts(&info, &p, &cuts, &n, NULL, &err), VF_EINVAL);
    assert_non_null(strstr(err.msg, "shots.threshold"));
    assert_null(cuts);
}

/* ---- EDL ---------------------------------------------------------------------------------- */

static const char *write_edl(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return path;
}

static struct vf_media_info media(int64_t frames, int num, int den, const char *timecode)
{
    struct vf_media_info m = {.frames = frames, .fps_num = num, .fps_den = den};
    snprintf(m.path, sizeof m.path, "reel1.mkv");
    snprintf(m.timecode, sizeof m.timecode, "%s", timecode ? timecode : "");
    return m;
}

static void expect_cuts(const char *path, const struct vf_media_info *m, const int64_t *want,
                        size_t n_want)
{
    int64_t *cuts = NULL;
    size_t n = 0;
    struct vf_error err = {0};
    if (vf_shard_edl_load(path, m, &cuts, &n, &err) < 0)
        fail_msg("%s", err.msg);
    if (n != n_want)
        print_cuts("got", cuts, n);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cuts[i], want[i]);
    free(cuts);
}

static void expect_edl_error(const char *path, const struct vf_media_info *m, int code,
                             const char *const *needles)
{
    int64_t *cuts = NULL;
    size_t n = 0;
    struct vf_error err = {0};
    int rc = vf_shard_edl_load(path, m, &cuts, &n, &err);
    if (rc != code)
        fail_msg("expected error %d, got %d: %s", code, rc, err.msg);
    assert_null(cuts);
    for (; *needles; needles++)
        if (!strstr(err.msg, *needles))
            fail_msg("error message lacks \"%s\":\n%s", *needles, err.msg);
}

static void edl_reads_cuts_at_25_fps(void **state)
{
    (void)state;
    const char *p = write_edl("good.edl",
                              "TITLE: REEL 1 CONFORM\r\n"
                              "FCM: NON-DROP FRAME\r\n"
                              "\r\n"
                              "001  AX       V     C        00:00:10:00 00:00:12:00 01:00:00:00 01:00:02:00\r\n"
                              "* FROM CLIP NAME: street.mov\r\n"
                              "001  AX       AA    C        00:00:10:00 00:00:12:00 01:00:00:00 01:00:02:00\r\n"
                              "002  BX       V     C        00:00:20:00 00:00:23:10 01:00:02:00 01:00:05:10\r\n"
                              "M2   BX       050.0          00:00:20:00\r\n"
                              "003  CX       V     C        00:00:30:00 00:00:30:00 01:00:05:10 01:00:05:10\r\n"
                              "003  DX       V     D    012 00:00:40:00 00:00:44:00 01:00:05:10 01:00:09:10\r\n"
                              "004  EX       AA/V  C        00:01:00:00 00:01:02:00 01:00:09:10 01:00:11:10\r\n");
    /* relative to the first event's record in: 50, 135, 235; the film has 285 frames */
    struct vf_media_info m = media(285, 25, 1, NULL);
    expect_cuts(p, &m, (const int64_t[]){50, 135, 235}, 3);
    /* a film longer than the EDL: the frames after the last event are a shot of their own */
    m = media(300, 25, 1, NULL);
    expect_cuts(p, &m, (const int64_t[]){50, 135, 235, 285}, 4);
    /* relative to the film's own timecode when it has one */
    m = media(400, 25, 1, "00:59:59:00");
    expect_cuts(p, &m, (const int64_t[]){25, 75, 160, 260, 310}, 5);
}

static void edl_reads_drop_frame_at_29_97(void **state)
{
    (void)state;
    const char *p = write_edl("df.edl",
                              "TITLE: DF\n"
                              "FCM: DROP FRAME\n"
                              "001  AX  V  C  00:00:00;00 00:01:00;02 00:00:00;00 00:01:00;02\n"
                              "002  AX  V  C  00:01:00;02 00:10:00;00 00:01:00;02 00:10:00;00\n"
                              "003  AX  V  C  00:10:00;00 00:10:01;00 00:10:00;00 00:10:01;00\n");
    /* 00:01:00;02 is frame 1800 (;00 and ;01 of minute 1 are skipped); 00:10:00;00 is
     * 10 * 1800 - 9 * 2 = 17982 (minute 10 skips nothing) */
    struct vf_media_info m = media(17982 + 30, 30000, 1001, NULL);
    expect_cuts(p, &m, (const int64_t[]){1800, 17982}, 2);
    /* the same timecodes read as non-drop at 29.97 (FCM absent, ':' separators) */
    p = write_edl("ndf2997.edl", "001  AX  V  C  00:00:00:00 00:01:00:02 00:00:00:00 00:01:00:02\n"
                                 "002  AX  V  C  00:01:00:02 00:01:01:00 00:01:00:02 00:01:01:00\n");
    m = media(1830, 30000, 1001, NULL);
    expect_cuts(p, &m, (const int64_t[]){1802}, 1);
}

static void edl_reads_23_976_24_and_30(void **state)
{
    (void)state;
    const char *p = write_edl("ndf.edl", "001  AX  V  C  00:00:00:00 00:00:01:00 10:00:00:00 10:00:01:00\n"
                                         "002  AX  V  C  00:00:00:00 00:00:01:05 10:00:01:00 10:00:02:05\n");
    struct vf_media_info m = media(24 + 29, 24000, 1001, NULL);
    expect_cuts(p, &m, (const int64_t[]){24}, 1);
    m = media(24 + 29, 24, 1, NULL);
    expect_cuts(p, &m, (const int64_t[]){24}, 1);
    m = media(30 + 35, 30, 1, NULL);
    expect_cuts(p, &m, (const int64_t[]){30}, 1);
}

/* Timecode is a time of day: a programme recorded from 23:59:58:00 crosses midnight, inside an
 * event (its out 00:00:01:00) and between events (the next one's in 00:00:01:00), and the film's
 * own timecode may sit on either side of it; the drop-frame day (2,589,408 frames at 29.97) too */
static void edl_crosses_midnight(void **state)
{
    (void)state;
    /* with Avid's audio events beside the video ones, the same times, one across midnight */
    const char *p = write_edl("midnight.edl",
                              "001  AX  V  C  00:00:00:00 00:00:02:00 23:59:58:00 00:00:00:00\n"
                              "001  AX  A  C  00:00:00:00 00:00:02:00 23:59:58:00 00:00:00:00\n"
                              "002  AX  V  C  00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00\n"
                              "002  AX  AA C  00:00:00:00 00:00:01:00 00:00:00:00 00:00:01:00\n"
                              "003  AX  V  C  00:00:00:00 00:00:02:00 00:00:01:00 00:00:03:00\n");
    struct vf_media_info m = media(125, 25, 1, NULL);
    expect_cuts(p, &m, (const int64_t[]){50, 75}, 2);
    m = media(125, 25, 1, "23:59:58:00");   /* the film's timecode before midnight */
    expect_cuts(p, &m, (const int64_t[]){50, 75}, 2);
    m = media(150, 25, 1, "23:59:57:00");   /* a second before the first event */
    expect_cuts(p, &m, (const int64_t[]){25, 75, 100}, 3);
    p = write_edl("midnight_df.edl",
                  "FCM: DROP FRAME\n"
                  "001  AX  V  C  00:00:00;00 00:00:02;00 23:59:59;00 00:00:01;00\n");
    m = media(60, 30000, 1001, NULL);
    expect_cuts(p, &m, (const int64_t[]){0}, 0);
    /* drop frame by its ';' alone (no FCM line): the same day of 2,589,408 frames; an audio
     * event across midnight between the video ones */
    p = write_edl("midnight_semi.edl",
                  "001  AX  V  C  00:00:00;00 00:00:02;00 23:59:59;00 00:00:01;00\n"
                  "001  AX  A  C  00:00:00;00 00:00:02;00 23:59:59;00 00:00:01;00\n"
                  "002  AX  V  C  00:00:02;00 00:00:04;00 00:00:01;00 00:00:03;00\n");
    m = media(120, 30000, 1001, NULL);
    expect_cuts(p, &m, (const int64_t[]){60}, 1);
    /* past midnight, a record in a few frames before the last out is still an overlap */
    p = write_edl("midnight_overlap.edl",
                  "001  AX  V  C  00:00:00:00 00:00:02:00 23:59:59:00 00:00:01:00\n"
                  "002  AX  V  C  00:00:00:00 00:00:02:00 00:00:00:20 00:00:02:20\n");
    m = media(125, 25, 1, NULL);
    expect_edl_error(p, &m, VF_EINVAL, (const char *const[]){"5 frames of overlap", NULL});
    /* a reversed event is still one (its out less than half a day before its in) */
    p = write_edl("rev.edl", "001  AX  V  C  00:00:00:00 00:00:02:00 12:00:02:00 12:00:00:00\n");
    m = media(125, 25, 1, NULL);
    expect_edl_error(p, &m, VF_EINVAL, (const char *const[]){"is before its in", NULL});
}

static void edl_rejects_bad_files_with_file_and_line(void **state)
{
    (void)state;
    struct vf_media_info m25 = media(1000, 25, 1, NULL);
    const char *head = "TITLE: BAD\nFCM: NON-DROP FRAME\n"
                       "001  AX  V  C  00:00:00:00 00:00:02:00 01:00:00:00 01:00:02:00\n";
    char text[1024];
#define BAD(name, line3, code, ...)                                                               \
    do {                                                                                          \
        snprintf(text, sizeof text, "%s%s\n", head, line3);                                       \
        expect_edl_error(write_edl(name, text), &m25, code, (const char *[]){__VA_ARGS__, NULL}); \
    } while (0)
    BAD("tc.edl", "002  AX  V  C  00:00:02:00 00:00:0a:00 01:00:02:00 01:00:04:00", VF_EINVAL,
        "tc.edl:4:", "event 002", "source out", "not a timecode");
    BAD("gap.edl", "002  AX  V  C  00:00:02:00 00:00:04:00 01:00:02:05 01:00:04:00", VF_EINVAL,
        "gap.edl:4:", "5 frames of gap", "line 3");
    BAD("overlap.edl", "002  AX  V  C  00:00:02:00 00:00:04:00 01:00:01:20 01:00:04:00", VF_EINVAL,
        "overlap.edl:4:", "of overlap");
    BAD("reversed.edl", "002  AX  V  C  00:00:02:00 00:00:04:00 01:00:04:00 01:00:02:00", VF_EINVAL,
        "reversed.edl:4:", "record out 01:00:02:00 is before its in 01:00:04:00");
    BAD("fields.edl", "002  AX  V  C  00:00:02:00 01:00:02:00 01:00:04:00", VF_EINVAL,
        "fields.edl:4:", "fields");
    BAD("key.edl", "002  AX  V  K  000 00:00:02:00 00:00:04:00 01:00:02:00 01:00:04:00",
        VF_EUNSUPPORTED, "key.edl:4:", "key");
    /* CMX's background key (K B): ten fields, still a key, not a malformed line */
    BAD("keyb.edl", "002  AX  V  K B  000 00:00:02:00 00:00:04:00 01:00:02:00 01:00:04:00",
        VF_EUNSUPPORTED, "keyb.edl:4:", "is a key (K)");
    BAD("trans.edl", "002  AX  V  X  00:00:02:00 00:00:04:00 01:00:02:00 01:00:04:00", VF_EINVAL,
        "trans.edl:4:", "unknown transition 'X'");
    BAD("dissolve.edl", "002  AX  V  D  00:00:02:00 00:00:04:00 01:00:02:00 01:00:04:00", VF_EINVAL,
        "dissolve.edl:4:", "needs a duration");
    BAD("frames.edl", "002  AX  V  C  00:00:02:00 00:00:04:00 01:00:02:00 01:00:04:25", VF_EINVAL,
        "frames.edl:4:", "out of range");
    BAD("past.edl", "002  AX  V  C  00:00:02:00 00:00:04:00 01:00:02:00 01:00:42:00", VF_EINVAL,
        "past.edl:4:", "past the end of the film (1000 frames");
    BAD("dfat25.edl", "FCM: DROP FRAME\n002  AX  V  C  00:00:02:00 00:00:04:00 01:00:02:00 01:00:04:00",
        VF_EINVAL, "dfat25.edl:5:", "drop-frame");
    BAD("fcm.edl", "FCM: SOMETIMES", VF_EINVAL, "fcm.edl:4:", "FCM");
#undef BAD
    /* a drop-frame timecode that does not exist */
    struct vf_media_info m2997 = media(5000, 30000, 1001, NULL);
    expect_edl_error(write_edl("nodf.edl", "FCM: DROP FRAME\n"
                                           "001  AX  V  C  00:00:00;00 00:01:00;00 00:00:00;00 00:01:00;00\n"),
                     &m2997, VF_EINVAL, (const char *[]){"nodf.edl:2:", "does not exist", NULL});
    /* before the film's own timecode */
    struct vf_media_info mtc = media(1000, 25, 1, "01:00:00:00");
    expect_edl_error(write_edl("early.edl", "001  AX  V  C  00:00:00:00 00:00:02:00 00:59:59:00 01:00:01:00\n"),
                     &mtc, VF_EINVAL, (const char *[]){"early.edl:1:", "25 frames before", NULL});
    /* no video events at all */
    expect_edl_error(write_edl("audio.edl", "001  AX  A  C  00:00:00:00 00:00:02:00 00:00:00:00 00:00:02:00\n"),
                     &m25, VF_EINVAL, (const char *[]){"no video events", NULL});
    /* a missing file */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/none.edl", tmpdir);
    expect_edl_error(missing, &m25, VF_ENOENT, (const char *[]){"none.edl", NULL});
    /* a rate without timecode */
    struct vf_media_info odd = media(100, 25, 3, NULL);
    expect_edl_error(write_edl("ok.edl", head), &odd, VF_EUNSUPPORTED, (const char *[]){"25/3", NULL});
}

int main(void)
{
    if (getenv("VF_SHOTS_DEBUG")) /* per-frame block/hist/d values, for tuning */
        vf_log_set_level(VF_LOG_DEBUG);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(detect_finds_cuts_in_film),
        cmocka_unit_test(detect_finds_like_brightness_cuts_and_ignores_fast_zoom),
        cmocka_unit_test(detect_finds_many_short_shots),
        cmocka_unit_test(detect_reports_city),
        cmocka_unit_test(detect_handles_10_bit_luma),
        cmocka_unit_test(detect_ignores_single_frame_flashes),
        cmocka_unit_test(detect_rejects_bad_threshold),
        cmocka_unit_test(edl_reads_cuts_at_25_fps),
        cmocka_unit_test(edl_reads_drop_frame_at_29_97),
        cmocka_unit_test(edl_reads_23_976_24_and_30),
        cmocka_unit_test(edl_crosses_midnight),
        cmocka_unit_test(edl_rejects_bad_files_with_file_and_line),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
